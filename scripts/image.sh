#!/usr/bin/env bash
# image.sh builds the installer image of deploy/kubernetes/daemonset.yaml
# from bin/ (make build) and Debian's busybox-static, with docker build and
# no registry. IMAGE overrides the tag (default ghcr.io/medianet/medianet:latest).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MEDIANET_BIN:-$ROOT/bin}
IMAGE=${IMAGE:-ghcr.io/medianet/medianet:latest}
BUSYBOX=${BUSYBOX:-/usr/bin/busybox}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
for b in medianet medianet-ipam medianet-ipam-etcd medianet-ipam-kube medianetctl medianetd; do
	[ -x "$BIN/$b" ] || { echo "image: $BIN/$b missing: run make build" >&2; exit 1; }
	cp "$BIN/$b" "$ctx/"
done
cp "$BUSYBOX" "$ctx/busybox"
cp "$ROOT/deploy/kubernetes/Dockerfile" "$ctx/"
docker build -q -t "$IMAGE" "$ctx" >/dev/null
echo "$IMAGE"
