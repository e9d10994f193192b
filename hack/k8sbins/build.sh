#!/usr/bin/env bash
# Builds the kube-apiserver and etcd binaries that internal/kubetest (envtest)
# runs, from the versions pinned in this directory's go.mod. Nothing is
# downloaded except Go modules through the module proxy.
#
# Usage: hack/k8sbins/build.sh [OUTPUT_DIR]
#   OUTPUT_DIR defaults to $AMTRIAGE_KUBE_ASSETS, else
#   $HOME/.cache/amtriage/kube-assets/v1.37.2-etcd-v3.7.0.
# Progress goes to stderr; the last line of stdout is the output directory,
# suitable for KUBEBUILDER_ASSETS. When both binaries are already there and
# report the pinned versions, nothing is built.
#
# Cost: a cold build (empty Go caches) takes ~4-5 min and ~2.4 GB RAM; with the
# Go build cache kept, a few seconds.
set -euo pipefail

# Keep in step with go.mod and internal/kubetest.
readonly KUBE_VERSION=v1.37.2
readonly ETCD_VERSION=v3.7.0

GO="${GO:-go}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${AMTRIAGE_KUBE_ASSETS:-$HOME/.cache/amtriage/kube-assets/${KUBE_VERSION}-etcd-${ETCD_VERSION}}}"

log() { printf 'k8sbins: %s\n' "$*" >&2; }

# up_to_date succeeds when both binaries exist, run, and report the pinned
# versions (a stale or truncated binary from elsewhere is rebuilt).
up_to_date() {
	[ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ] || return 1
	# Capture first: `cmd | grep -q` fails under pipefail when grep exits early.
	local v
	v="$("$out/kube-apiserver" --version 2>/dev/null)" || return 1
	[ "$v" = "Kubernetes ${KUBE_VERSION}" ] || return 1
	v="$("$out/etcd" --version 2>/dev/null)" || return 1
	grep -qx "etcd Version: ${ETCD_VERSION#v}" <<<"$v"
}

if up_to_date; then
	log "up to date: $out"
	echo "$out"
	exit 0
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
# Build next to the output directory (same file system), then rename each
# binary into place: rename is atomic, so an interrupted build leaves either
# the old binary or the new one, never half of one.
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

major="${KUBE_VERSION#v}"
major="${major%%.*}"
minor="${KUBE_VERSION#v*.}"
minor="${minor%%.*}"
# Without these, /version reports v0.0.0-master. No build date, so builds are
# byte-identical.
v=k8s.io/component-base/version
kube_ldflags="-s -w -X $v.gitVersion=${KUBE_VERSION} -X $v.gitMajor=${major} -X $v.gitMinor=${minor} -X $v.gitTreeState=clean"

cd "$here"
export CGO_ENABLED=0 GOWORK=off
start=$SECONDS
log "building kube-apiserver ${KUBE_VERSION} and etcd ${ETCD_VERSION} into $out"
"$GO" build -mod=readonly -trimpath -ldflags "$kube_ldflags" \
	-o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
"$GO" build -mod=readonly -trimpath -ldflags "-s -w" \
	-o "$tmp/etcd" go.etcd.io/etcd/server/v3
mv -f "$tmp/etcd" "$out/etcd"
mv -f "$tmp/kube-apiserver" "$out/kube-apiserver"

up_to_date || {
	log "error: built binaries do not report ${KUBE_VERSION} / ${ETCD_VERSION}"
	exit 1
}
log "built in $((SECONDS - start))s"
echo "$out"
