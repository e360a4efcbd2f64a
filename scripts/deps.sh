#!/usr/bin/env bash
# deps.sh installs what medianet's tests and demo need on a Debian machine
# (the real peers of docs/design.md) and starts dockerd when it is not
# running. It is idempotent: on a machine that has everything it only
# checks. It is safe on a user's machine:
#
# - it changes no configuration of the machine: the tests and the demo
#   point podman at a private containers.conf of their own (CONTAINERS_CONF,
#   see internal/podmantest) and never use /etc/containers/containers.conf;
# - it kills no process: packaged daemons (etcd, coturn, prometheus,
#   containerd...) are kept from starting during the install by a
#   temporary /usr/sbin/policy-rc.d, written only when the machine has
#   none and removed when the install ends, also on failure; the tests
#   start their own copies on ports they choose;
# - it never touches the machine's interfaces.
#
#   scripts/deps.sh            install packages, start dockerd
#   scripts/deps.sh packages   only the Debian packages
#   scripts/deps.sh dockerd    only make sure dockerd is running
#   scripts/deps.sh demo       the packages make demo needs
#
# DEPS_POLICY_RC_D overrides the policy-rc.d path (for the script's test).
set -euo pipefail

PKGS=(
	iproute2 iptables nftables kmod procps psmisc util-linux
	podman runc containernetworking-plugins busybox-static
	docker.io docker-compose containerd
	etcd-server etcd-client
	coturn prometheus janus
	kea-dhcp4-server dnsmasq
	openssl ca-certificates curl
	git make time strace
)

POLICY=${DEPS_POLICY_RC_D:-/usr/sbin/policy-rc.d}
POLICY_MARK="written by medianet scripts/deps.sh"
POLICY_OURS=

log() { printf 'deps: %s\n' "$*" >&2; }

need_root() {
	if [ "$(id -u)" != 0 ]; then
		log "must run as root (installs packages, starts dockerd)"
		exit 1
	fi
}

# hold_daemons writes a policy-rc.d that forbids every daemon start
# (exit 101), unless the machine has one already: that one is the
# machine's policy and stays as it is.
hold_daemons() {
	if ! (
		set -o noclobber
		printf '#!/bin/sh\n# %s for the length of one install; it removes it.\nexit 101\n' "$POLICY_MARK" >"$POLICY"
	) 2>/dev/null; then
		log "keeping the machine's $POLICY"
		return 0
	fi
	POLICY_OURS=1
	chmod 755 "$POLICY"
	trap release_daemons EXIT
	trap 'release_daemons; exit 130' INT TERM
}

# release_daemons removes the policy-rc.d hold_daemons wrote, and only it.
release_daemons() {
	if [ -n "$POLICY_OURS" ] && grep -qF "$POLICY_MARK" "$POLICY" 2>/dev/null; then
		rm -f "$POLICY"
	fi
	POLICY_OURS=
}

install_packages() {
	local missing=()
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1
	hold_daemons
	apt-get update -qq
	# With recommends, as on the machines where this was verified.
	apt-get install -y -qq "${missing[@]}" >/dev/null
	release_daemons
	quiet_dhcp_units "${missing[@]}"
}

# quiet_dhcp_units keeps the DHCP servers this run installed from serving
# the machine's own LAN at the next boot (the tests run their own copies
# inside test namespaces): their units are disabled, and stopped should a
# machine policy have let them start. A server that was installed before
# is the machine's and is left alone.
quiet_dhcp_units() {
	[ -d /run/systemd/system ] || return 0
	local p
	for p in "$@"; do
		case "$p" in
		kea-dhcp4-server | dnsmasq) systemctl disable --now "$p.service" >/dev/null 2>&1 || true ;;
		esac
	done
}

ensure_dockerd() {
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	if [ -d /run/systemd/system ] && systemctl cat docker.service >/dev/null 2>&1; then
		log "starting docker.service"
		systemctl start docker.service
	else
		log "starting dockerd (no systemd); its log: /var/log/medianet-dockerd.log"
		mkdir -p /var/log
		# --iptables stays on: the natprobe tests need Docker's own NAT.
		nohup dockerd --host unix:///var/run/docker.sock >>/var/log/medianet-dockerd.log 2>&1 &
	fi
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	log "dockerd did not start; see /var/log/medianet-dockerd.log or journalctl -u docker"
	tail -20 /var/log/medianet-dockerd.log >&2 2>/dev/null || true
	exit 1
}

need_root
case "${1:-all}" in
packages | demo) install_packages ;;
dockerd) ensure_dockerd ;;
all)
	install_packages
	ensure_dockerd
	;;
*)
	log "unknown step ${1}; use packages, dockerd, demo or all"
	exit 2
	;;
esac
