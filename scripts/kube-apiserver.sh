#!/usr/bin/env bash
# kube-apiserver.sh builds a real kube-apiserver from the Kubernetes source
# on the Go module proxy, once per machine, and prints the binary's path.
# The tests of the kubernetes IPAM source (internal/kubetest) run it
# against Debian's etcd; make test calls this script before the tests, as
# it installs etcd and containerd through scripts/deps.sh.
#
# k8s.io/kubernetes cannot be built as a dependency as it is: its go.mod
# maps 33 staging modules to ./staging/..., which a module in the cache
# does not have. The script writes a small wrapper module that requires
# k8s.io/kubernetes and replaces each staging module with the same module
# published at the matching v0 version, reading the list from the go.mod
# in the module cache, and builds k8s.io/kubernetes/cmd/kube-apiserver.
#
# The binary is kept in $KUBE_APISERVER_CACHE (default: medianet/ beside
# the Go build cache, which CI keeps between runs on a machine), named by
# version; a second run only prints the path. A build takes 6 minutes on
# two idle cores and runs under nice.
#
#   scripts/kube-apiserver.sh          build when missing, print the path
#   scripts/kube-apiserver.sh path     print the path it would have
#
# KUBE_VERSION overrides the Kubernetes version (default 1.37.2).
set -euo pipefail

GO=${GO:-go}
KUBE_VERSION=${KUBE_VERSION:-1.37.2}
STAGING_VERSION=v0.${KUBE_VERSION#*.}
CACHE=${KUBE_APISERVER_CACHE:-$(dirname "$($GO env GOCACHE)")/medianet}
BIN=$CACHE/kube-apiserver-v$KUBE_VERSION

log() { printf 'kube-apiserver: %s\n' "$*" >&2; }

if [ "${1:-}" = path ]; then
	echo "$BIN"
	exit 0
fi
if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$CACHE"
# One build at a time on a machine: a second caller waits for the first.
exec 9>"$CACHE/.kube-apiserver.lock"
flock 9
if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/medianet-kube-apiserver.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

cat >go.mod <<EOF
module medianet.local/kube-apiserver-build

go $($GO env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')
EOF

log "downloading k8s.io/kubernetes v$KUBE_VERSION"
MOD=$(GOFLAGS=-mod=mod $GO mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
if [ -z "$MOD" ] || [ ! -f "$MOD" ]; then
	log "no go.mod for k8s.io/kubernetes v$KUBE_VERSION in the module cache"
	exit 1
fi

STAGING=$(sed -n 's|^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*|\1|p' "$MOD")
n=$(printf '%s\n' "$STAGING" | grep -c .)
if [ "$n" -eq 0 ]; then
	log "no ./staging replacements in $MOD: the layout of k8s.io/kubernetes changed"
	exit 1
fi
log "replacing $n staging modules with their $STAGING_VERSION releases"

{
	echo
	echo "require k8s.io/kubernetes v$KUBE_VERSION"
	echo
	echo "replace ("
	for m in $STAGING; do
		echo "	$m => $m $STAGING_VERSION"
	done
	echo ")"
} >>go.mod
cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
EOF

GOFLAGS=-mod=mod $GO mod tidy -e >/dev/null 2>"$WORK/tidy.log" || {
	cat "$WORK/tidy.log" >&2
	exit 1
}
log "building k8s.io/kubernetes/cmd/kube-apiserver (minutes; once per machine)"
CGO_ENABLED=0 nice -n 10 $GO build -trimpath -ldflags=-s -o "$WORK/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
"$WORK/kube-apiserver" --version >&2
mv "$WORK/kube-apiserver" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
