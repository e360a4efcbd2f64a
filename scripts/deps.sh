#!/usr/bin/env bash
# deps.sh installs and starts what medianet's tests and demo need on a
# Debian machine: the real peers named in DESIGN.md. It is idempotent: on a
# machine that has everything it only checks, and it never touches the
# machine's own interfaces.
#
#   scripts/deps.sh            install packages, configure podman, start dockerd
#   scripts/deps.sh packages   only the Debian packages
#   scripts/deps.sh dockerd    only make sure dockerd is running
#   scripts/deps.sh demo       packages and podman, what make demo needs
set -euo pipefail

PKGS=(
	iproute2 iptables nftables kmod procps psmisc
	podman runc containernetworking-plugins busybox-static
	docker.io
	etcd-server etcd-client
	coturn
	openssl ca-certificates
)

log() { printf 'deps: %s\n' "$*" >&2; }

need_root() {
	if [ "$(id -u)" != 0 ]; then
		log "must run as root (installs packages, starts dockerd)"
		exit 1
	fi
}

install_packages() {
	local missing=()
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1
	apt-get update -qq
	# With recommends, as on the machines where this was verified.
	apt-get install -y -qq "${missing[@]}" >/dev/null
	# Debian starts the packaged daemons; tests start their own copies on
	# ports they choose, so stop the system ones where init is absent.
	pkill -x turnserver 2>/dev/null || true
	pkill -x etcd 2>/dev/null || true
}

configure_podman() {
	# podman 4.3 on this kind of machine: CNI backend, runc (crun fails under
	# cgroup v1), cgroupfs manager since there is no systemd.
	mkdir -p /etc/containers
	local conf=/etc/containers/containers.conf
	if ! grep -q 'medianet: managed' "$conf" 2>/dev/null; then
		log "writing $conf (network_backend=cni, runtime=runc)"
		cat >"$conf" <<'CONF'
# medianet: managed by scripts/deps.sh
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/local/libexec/cni", "/usr/lib/cni", "/opt/cni/bin"]
CONF
	fi
	if [ ! -f /etc/containers/policy.json ]; then
		printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >/etc/containers/policy.json
	fi
}

ensure_dockerd() {
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	log "starting dockerd"
	mkdir -p /var/log
	# --iptables stays on: the natprobe tests need Docker's own NAT.
	nohup dockerd --host unix:///var/run/docker.sock >/var/log/medianet-dockerd.log 2>&1 &
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	log "dockerd did not start; see /var/log/medianet-dockerd.log"
	tail -20 /var/log/medianet-dockerd.log >&2 || true
	exit 1
}

need_root
case "${1:-all}" in
packages) install_packages ;;
dockerd) ensure_dockerd ;;
demo)
	install_packages
	configure_podman
	;;
all)
	install_packages
	configure_podman
	ensure_dockerd
	;;
*)
	log "unknown step ${1}; use packages, dockerd or all"
	exit 2
	;;
esac
