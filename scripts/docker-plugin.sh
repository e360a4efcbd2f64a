#!/usr/bin/env bash
# docker-plugin.sh builds medianetd as a Docker managed (v2) plugin from a
# local directory and installs it as "medianet", replacing an older one. No
# registry is involved: `docker plugin create NAME DIR` reads DIR/config.json
# and DIR/rootfs.
#
#   ENGINE_SOCKET=/var/run/docker.sock scripts/docker-plugin.sh                build, create, set, enable
#   SCOPE=global ENGINE_SOCKET=/run/medianet/engine.sock scripts/docker-plugin.sh   for Swarm, through the proxy
#
# Environment:
#   ENGINE_SOCKET  required, the engine API socket the plugin may read (docs/swarm.md,
#                "The engine's socket"): /var/run/docker.sock (the engine itself: full
#                control of dockerd), the socket of medianet-engine-proxy (read-only),
#                or none (state Docker forgets is never dropped)
#   PLUGIN_NAME  plugin name (default medianet; Docker adds :latest)
#   SCOPE        local (default) or global: the plugin's SCOPE setting
#   NODE         this host's name in --ipam-opt node-ranges (default hostname)
#   DATA_DIR     host directory for docker.db and ipam.db (default /var/lib/medianet)
#   MEDIANETD    a prebuilt static medianetd to use instead of building one
#   NO_ENABLE    set to leave the plugin disabled (for more `docker plugin set`)
#
# The settings can be changed later while the plugin is disabled:
#   docker plugin disable medianet
#   docker plugin set medianet SCOPE=global NODE=node-a data.source=/srv/medianet
#   docker plugin set medianet docker.source=/run/medianet/engine.sock   # the read-only proxy
#   docker plugin enable medianet
set -euo pipefail

NAME=${PLUGIN_NAME:-medianet}
SCOPE=${SCOPE:-local}
NODE=${NODE:-}
DATA_DIR=${DATA_DIR:-/var/lib/medianet}

log() { printf 'docker-plugin: %s\n' "$*" >&2; }

case "${ENGINE_SOCKET:-}" in
"")
	log "ENGINE_SOCKET is not set: choose the engine API socket the plugin may read:"
	log "  ENGINE_SOCKET=/var/run/docker.sock        the engine's own socket: it grants full control of dockerd"
	log "  ENGINE_SOCKET=/run/medianet/engine.sock   medianet-engine-proxy's socket: only the GETs medianetd makes"
	log "  ENGINE_SOCKET=none                        no engine: state Docker forgets (a killed dockerd's, a former"
	log "                                            Swarm leader's) is never dropped; see docs/swarm.md"
	exit 2
	;;
none) ;;
/*) ;;
*)
	log "ENGINE_SOCKET=$ENGINE_SOCKET: give an absolute socket path, or none"
	exit 2
	;;
esac

case "$SCOPE" in
local | global) ;;
*)
	log "SCOPE=$SCOPE: use local or global"
	exit 2
	;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
# rootfs/run/docker/plugins must exist: Docker mounts the socket directory there.
mkdir -p "$rootfs/run/docker/plugins" "$rootfs/var/lib/medianet" "$rootfs/var/run/docker/netns" "$rootfs/tmp"

if [ -n "${MEDIANETD:-}" ]; then
	cp "$MEDIANETD" "$rootfs/medianetd"
else
	GO=${GO:-go}
	command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go
	log "building static medianetd"
	(cd "$top" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags '-s -w' -o "$rootfs/medianetd" ./cmd/medianetd)
fi
chmod 0755 "$rootfs/medianetd"

cat >"$work/config.json" <<'JSON'
{
  "description": "medianet: macvlan network driver and IPAM driver with per-node address blocks",
  "documentation": "https://github.com/medianet/medianet/blob/main/docs/docker.md",
  "entrypoint": ["/medianetd", "--socket", "/run/docker/plugins/medianet.sock", "--data-dir", "/var/lib/medianet"],
  "workdir": "/",
  "interface": {
    "types": ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"],
    "socket": "medianet.sock"
  },
  "network": {"type": "host"},
  "linux": {"capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]},
  "mounts": [
    {
      "name": "data",
      "description": "medianetd state (docker.db, ipam.db); survives plugin upgrades",
      "source": "/var/lib/medianet",
      "destination": "/var/lib/medianet",
      "type": "bind",
      "options": ["rbind", "rw"],
      "settable": ["source"]
    },
    {
      "name": "netns",
      "description": "Docker's sandbox namespaces",
      "source": "/var/run/docker/netns",
      "destination": "/var/run/docker/netns",
      "type": "bind",
      "options": ["rbind"]
    },
    {
      "name": "docker",
      "description": "the engine's API socket (or a read-only proxy's), read (GET /networks, /networks/ID, /info, /nodes/ID) to drop state Docker never released",
      "source": "/var/run/docker.sock",
      "destination": "/var/run/docker.sock",
      "type": "bind",
      "options": ["bind"],
      "settable": ["source"]
    }
  ],
  "env": [
    {"name": "SCOPE", "description": "local (standalone hosts) or global (Swarm)", "settable": ["value"], "value": "local"},
    {"name": "NODE", "description": "this host's name in --ipam-opt node-ranges (default: hostname)", "settable": ["value"], "value": ""},
    {"name": "DEBUG", "description": "non-empty: log every call", "settable": ["value"], "value": ""},
    {"name": "DOCKER_HOST", "description": "none: do not read the engine (set by ENGINE_SOCKET=none)", "settable": ["value"], "value": ""}
  ]
}
JSON

mkdir -p "$DATA_DIR" /var/run/docker/netns
if docker plugin inspect "$NAME" >/dev/null 2>&1; then
	log "removing the older $NAME"
	docker plugin rm -f "$NAME" >/dev/null
fi
log "docker plugin create $NAME"
docker plugin create "$NAME" "$work" >/dev/null
settings=("SCOPE=$SCOPE" "data.source=$DATA_DIR")
if [ "$ENGINE_SOCKET" = none ]; then
	settings+=("docker.source=/dev/null" "DOCKER_HOST=none")
else
	settings+=("docker.source=$ENGINE_SOCKET")
fi
[ -n "$NODE" ] && settings+=("NODE=$NODE")
docker plugin set "$NAME" "${settings[@]}"
if [ -z "${NO_ENABLE:-}" ]; then
	docker plugin enable "$NAME" >/dev/null
	log "$NAME enabled (SCOPE=$SCOPE, data in $DATA_DIR, engine $ENGINE_SOCKET); use it as -d $NAME:latest --ipam-driver $NAME:latest"
fi
