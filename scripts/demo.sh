#!/usr/bin/env bash
# demo.sh: medianet's story in two minutes, on this machine, touching none
# of its interfaces. It builds a small world of network namespaces:
#
#   node-a NIC (mnd-a) --+                         +-- mnd-inet: "the internet",
#   node-b NIC (mnd-b) --+-- mnd-lan (bridge) -- mnd-gw      natprobe serve on
#                                       gateway 192.168.100.254   203.0.113.10/.11
#   podman NAT bridge -- root namespace (MASQUERADE) -- mnd-up --+
#
# then runs media containers with podman on a medianet network on each
# simulated node (one shared config with static node ranges), shows their
# addresses come from each node's own range, and probes NAT from a
# container behind a NAT network and from a medianet container. Everything
# it made is removed at the end, also when interrupted.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MEDIANET_BIN:-$ROOT/bin}
WORK=/run/medianet-demo
IMAGE=localhost/medianet-busybox:demo
P=mnd                          # prefix of everything the demo creates
SUBNET=192.168.100.0/24
GW=192.168.100.254
RANGE_A=192.168.100.32/28
RANGE_B=192.168.100.48/28
STUN1=203.0.113.10 STUN2=203.0.113.11
UPLINK_ROOT=198.51.100.1 UPLINK_INET=198.51.100.2

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }

podman_() { CONTAINERS_CONF=$WORK/containers.conf podman --network-config-dir "$WORK/net.d" "$@"; }

# The NAT network's CNI firewall plugin adds the chains CNI-FORWARD and
# CNI-ADMIN and a jump to them from FORWARD, and never removes them. When
# the demo made them, cleanup removes them, once no one else's rule is in
# them.
remove_fw_chains() {
	local n
	n=$(iptables -w -S CNI-FORWARD 2>/dev/null | grep -cv -e '^-N CNI-FORWARD' -e '-j CNI-ADMIN$') || true
	[ "$n" = 0 ] || return 0
	n=$(iptables -w -S CNI-ADMIN 2>/dev/null | grep -cv '^-N CNI-ADMIN') || true
	[ "$n" = 0 ] || return 0
	iptables -w -D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
	iptables -w -F CNI-FORWARD
	iptables -w -X CNI-FORWARD
	iptables -w -X CNI-ADMIN
}

cleanup() {
	set +e
	if [ -d "$WORK" ]; then
		for c in $(podman_ ps -aq --filter label=medianet-demo 2>/dev/null); do
			podman_ rm -f -t 0 "$c" >/dev/null 2>&1
		done
	fi
	[ -f "$WORK/natprobe.pid" ] && kill "$(cat "$WORK/natprobe.pid")" 2>/dev/null
	ip route del 203.0.113.0/24 2>/dev/null
	# The root namespace's forwarding and firewall chains as they were.
	[ -f "$WORK/ip_forward" ] && sysctl -qw net.ipv4.ip_forward="$(cat "$WORK/ip_forward")"
	[ -f "$WORK/fw-chains-ours" ] && remove_fw_chains
	for l in $P-a $P-b $P-up $P-nat0; do ip link del "$l" 2>/dev/null; done
	for n in $P-lan $P-gw $P-inet; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$WORK"
}

trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it creates network namespaces and runs podman)" >&2
	exit 1
fi
for b in medianet medianet-ipam natprobe; do
	[ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing: run make build" >&2; exit 1; }
done

step "cleaning up what an earlier run may have left"
cleanup
mkdir -p "$WORK/net.d" "$WORK/cni-bin" "$WORK/node-a" "$WORK/node-b"
iptables -w -n -L CNI-FORWARD >/dev/null 2>&1 || touch "$WORK/fw-chains-ours"

step "building a LAN, a gateway and an 'internet' in network namespaces"
for n in lan gw inet; do ip netns add $P-$n; ip -n $P-$n link set lo up; done
ip -n $P-lan link add br0 type bridge
ip -n $P-lan link set br0 up
# Two simulated nodes' NICs: root-namespace veths whose peers plug into the LAN.
for node in a b; do
	ip link add $P-$node type veth peer name lan-$node netns $P-lan
	ip -n $P-lan link set lan-$node master br0 up
	ip link set $P-$node up
done
ip link add gw-lan netns $P-gw type veth peer name lan-gw netns $P-lan
ip -n $P-lan link set lan-gw master br0 up
ip -n $P-gw addr add $GW/24 dev gw-lan
ip -n $P-gw link set gw-lan up
ip link add gw-inet netns $P-gw type veth peer name inet-gw netns $P-inet
ip -n $P-gw addr add 203.0.113.1/24 dev gw-inet
ip -n $P-gw link set gw-inet up
ip netns exec $P-gw sysctl -qw net.ipv4.ip_forward=1
ip -n $P-inet addr add $STUN1/24 dev inet-gw
ip -n $P-inet addr add $STUN2/24 dev inet-gw
ip -n $P-inet link set inet-gw up
ip -n $P-inet route add $SUBNET via 203.0.113.1
# The NAT path: the root namespace (where podman's NAT network masquerades)
# reaches the internet namespace over its own veth, by a route to 203.0.113.0/24
# that is added here and removed by cleanup.
ip link add $P-up type veth peer name up0 netns $P-inet
ip addr add $UPLINK_ROOT/30 dev $P-up
ip link set $P-up up
ip -n $P-inet addr add $UPLINK_INET/30 dev up0
ip -n $P-inet link set up0 up
ip route add 203.0.113.0/24 via $UPLINK_INET dev $P-up
sysctl -n net.ipv4.ip_forward >"$WORK/ip_forward" # cleanup puts it back
sysctl -qw net.ipv4.ip_forward=1
info "LAN $SUBNET, gateway $GW, STUN server on $STUN1 and $STUN2"

step "starting natprobe serve in the internet namespace"
ip netns exec $P-inet "$BIN/natprobe" serve --primary $STUN1:3478 --alternate $STUN2:3479 \
	>"$WORK/natprobe-serve.log" 2>&1 &
echo $! >"$WORK/natprobe.pid"

step "configuring podman: medianet networks for node-a and node-b, and a NAT network"
ln -s "$BIN/medianet" "$BIN/medianet-ipam" "$WORK/cni-bin/"
{
	echo "[containers]"
	echo "default_ulimits = [\"nofile=$(ulimit -Hn):$(ulimit -Hn)\", \"nproc=32768:32768\"]"
	echo "[engine]"
	echo 'runtime = "runc"'
	echo 'cgroup_manager = "cgroupfs"'
	echo 'events_logger = "file"'
	echo "[network]"
	echo 'network_backend = "cni"'
	echo "cni_plugin_dirs = [\"$WORK/cni-bin\", \"/usr/lib/cni\", \"/opt/cni/bin\"]"
} >"$WORK/containers.conf"
for node in a b; do
	cat >"$WORK/net.d/media-$node.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "media-$node",
  "plugins": [{
    "type": "medianet",
    "master": "$P-$node",
    "mode": "bridge",
    "ipam": {
      "type": "medianet-ipam",
      "subnet": "$SUBNET",
      "gateway": "$GW",
      "node": "node-$node",
      "nodeRanges": {"node-a": ["$RANGE_A"], "node-b": ["$RANGE_B"]},
      "dataDir": "$WORK/node-$node"
    }
  }]
}
JSON
done
cat >"$WORK/net.d/nat.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$P-nat",
  "plugins": [{
    "type": "bridge", "bridge": "$P-nat0", "isGateway": true, "ipMasq": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.77.0/24"}]],
             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$WORK/host-local"}
  }, {
    "type": "firewall"
  }]
}
JSON
info "both nodes share one config: node-a owns $RANGE_A, node-b owns $RANGE_B"

step "importing a busybox image (no registry needed)"
if ! podman_ image exists $IMAGE; then
	rootfs=$WORK/rootfs
	mkdir -p "$rootfs/bin"
	cp /usr/bin/busybox "$rootfs/bin/busybox"
	for a in sh sleep ping ip cat; do ln -s busybox "$rootfs/bin/$a"; done
	tar -C "$rootfs" -cf "$WORK/busybox.tar" .
	podman_ import -q --change 'CMD ["/bin/sh"]' "$WORK/busybox.tar" $IMAGE >/dev/null
fi

step "running media containers on each node's medianet network"
run() { podman_ run -d --label medianet-demo --name "$1" --network "$2" $IMAGE sleep 600 >/dev/null; }
addr() { podman_ inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }
for node in a b; do
	for i in 1 2; do
		run "$P-$node$i" "media-$node"
		info "node-$node  $P-$node$i  $(addr "$P-$node$i" "media-$node")   (node-$node range $( [ $node = a ] && echo $RANGE_A || echo $RANGE_B))"
	done
done
run "$P-natted" "$P-nat"
info "NAT     $P-natted  $(addr "$P-natted" "$P-nat")   (behind MASQUERADE)"

step "a container on node-a reaches one on node-b over the LAN, without NAT"
B1=$(addr "$P-b1" media-b)
podman_ exec "$P-a1" ping -c 1 -W 2 "$B1" | grep -E 'bytes from|packets' | sed 's/^/    /'

probe() {
	local name=$1 rc=0
	"$BIN/natprobe" probe --runtime podman --container "$(podman_ inspect -f '{{.Id}}' "$name")" \
		--server $STUN1:3478 --json >"$WORK/$name.json" || rc=$?
	printf '    %-10s natPresent=%s mapping=%s filtering=%s unsolicitedInboundRemaps=%s verdict=%s (exit %d)\n' "$name" \
		"$(sed -n 's/.*"natPresent": *\([a-z]*\).*/\1/p' "$WORK/$name.json")" \
		"$(sed -n 's/.*"mapping": *"\([^"]*\)".*/\1/p' "$WORK/$name.json")" \
		"$(sed -n 's/.*"filtering": *"\([^"]*\)".*/\1/p' "$WORK/$name.json")" \
		"$(sed -n 's/.*"unsolicitedInboundRemaps": *\([a-z]*\).*/\1/p' "$WORK/$name.json")" \
		"$(sed -n 's/.*"verdict": *"\([^"]*\)".*/\1/p' "$WORK/$name.json")" "$rc"
}
step "probing NAT from inside the containers (natprobe probe --container)"
probe "$P-natted"
probe "$P-a1"
info "behind NAT, ICE needs TURN for some clients; on its own medianet IP it works directly"

step "removing everything the demo made"
cleanup
trap - EXIT
info "done"
