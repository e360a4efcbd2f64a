#!/usr/bin/env bash
# whereabouts.sh builds Whereabouts' CNI IPAM binary from its module on the
# Go module proxy, once per machine, and prints the binary's path; with
# the argument crds it prints the directory of its CRDs instead. make
# scale runs Whereabouts' ADDs through it against the same kube-apiserver
# as medianet's kubernetes source (test/scale, TestScaleSources).
#
# Whereabouts' module cannot be built as a dependency of another module
# (its go.mod replaces gogo/protobuf), so the script copies the module
# from the module cache into a scratch directory and builds its ./cmd
# there, under nice. The binary is kept in $KUBE_APISERVER_CACHE (default:
# medianet/ beside the Go build cache), named by version.
#
#   scripts/whereabouts.sh        build when missing, print the path
#   scripts/whereabouts.sh crds   print the directory of its CRDs
#
# WHEREABOUTS_VERSION overrides the version (default v0.9.2).
set -euo pipefail

GO=${GO:-go}
VERSION=${WHEREABOUTS_VERSION:-v0.9.2}
MODULE=github.com/k8snetworkplumbingwg/whereabouts
CACHE=${KUBE_APISERVER_CACHE:-$(dirname "$($GO env GOCACHE)")/medianet}
BIN=$CACHE/whereabouts-$VERSION

log() { printf 'whereabouts: %s\n' "$*" >&2; }

moddir() {
	GOFLAGS=-mod=mod $GO mod download -json "$MODULE@$VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

if [ "${1:-}" = crds ]; then
	dir=$(moddir)
	[ -d "$dir/doc/crds" ] || { log "no doc/crds in $dir"; exit 1; }
	echo "$dir/doc/crds"
	exit 0
fi
if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.whereabouts.lock"
flock 9
if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi

dir=$(moddir)
[ -n "$dir" ] && [ -d "$dir" ] || { log "cannot download $MODULE@$VERSION"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/medianet-whereabouts.XXXXXX")
trap 'chmod -R u+w "$WORK"; rm -rf "$WORK"' EXIT
cp -r "$dir" "$WORK/src"
chmod -R u+w "$WORK/src"
log "building $MODULE $VERSION ./cmd (minutes; once per machine)"
(cd "$WORK/src" && CGO_ENABLED=0 nice -n 10 $GO build -trimpath -ldflags=-s -o "$WORK/whereabouts" ./cmd)
mv "$WORK/whereabouts" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
