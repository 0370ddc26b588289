#!/usr/bin/env bash
# Builds and caches the local control plane and the tools the Makefile needs.
#
# Every binary is built from its Go module (no prebuilt downloads can be had
# here), into a cache outside the work tree so fresh clones on the same machine
# reuse it. The first run costs ~15 minutes on 2 cores; later runs take seconds
# because every step first checks for its stamped binary.
#
# Usage: hack/tools.sh [all|cluster|helm|lint|gotestsum|controller-gen|prometheus]   (default: all)
# Prints nothing but progress on stderr; `hack/tools.sh bindir` prints the
# binary folder.
set -euo pipefail

ETCD_VERSION=v3.6.16
K8S_VERSION=v1.35.4
K8S_STAGING_VERSION=v0.35.4
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
GOLANGCI_VERSION=v2.15.0
GOTESTSUM_VERSION=v1.13.0
# The controller-tools release built against our k8s.io minor (v0.35).
CONTROLLER_GEN_VERSION=v0.20.1

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${MESHCANARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshcanary}
bin=$cache/bin
src=$cache/src
mkdir -p "$bin" "$src"

say() { printf '[tools] %s\n' "$*" >&2; }

# have NAME VERSION: true when the cached binary was built at that version.
have() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$bin/.$1.version"; }

first_notice_done=
first_notice() {
  [ -n "$first_notice_done" ] && return
  first_notice_done=1
  say "building the local control plane into $bin: this happens once and takes several minutes; later runs reuse it"
}

build_etcd() {
  have etcd "$ETCD_VERSION" && return
  first_notice
  say "building etcd $ETCD_VERSION (~1 min)"
  local d=$src/etcd
  rm -rf "$d" && mkdir -p "$d"
  (cd "$d" && cat >go.mod <<MOD
module meshcanary.local/etcdbuild

go 1.26
MOD
    cat >tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go mod tidy >/dev/null 2>&1 || true
    go build -o "$bin/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd "$ETCD_VERSION"
}

build_kube() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler) missing=()
  for b in "${want[@]}"; do have "$b" "$K8S_VERSION" || missing+=("$b"); done
  [ ${#missing[@]} -eq 0 ] && return
  first_notice
  say "building ${missing[*]} $K8S_VERSION (~10 min on 2 cores)"
  local d=$src/kube
  mkdir -p "$d"
  local kdir
  kdir=$(cd "$d" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  (cd "$d"
    {
      echo "module meshcanary.local/kubebuild"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      # The staging modules are replaced by local paths in kubernetes' own
      # go.mod; outside its tree they must point at the published tags.
      sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$K8S_STAGING_VERSION"'#p' "$kdir/go.mod"
      echo ")"
    } >go.mod
    cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
    [ -f go.sum ] || go mod tidy
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35"
    for b in "${missing[@]}"; do
      say "  go build $b"
      go build -ldflags "$ld" -o "$bin/$b" "k8s.io/kubernetes/cmd/$b"
      stamp "$b" "$K8S_VERSION"
    done)
}

build_gomod_tool() { # name version package
  have "$1" "$2" && return
  first_notice
  say "building $1 $2"
  GOBIN=$bin go install -ldflags "-s -w" "$3@$2"
  stamp "$1" "$2"
}

build_kwok() {
  build_gomod_tool kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  # kwok's stage definitions ship in its module: one file with the node and
  # pod lifecycles we need (kustomization.yaml left out).
  if [ ! -s "$cache/kwok-stages.yaml" ] || [ "$(cat "$cache/.kwok-stages.version" 2>/dev/null)" != "$KWOK_VERSION" ]; then
    local kdir
    kdir=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    local f out=$cache/kwok-stages.yaml
    : >"$out"
    for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---" >>"$out"
      cat "$kdir/kustomize/stage/$f" >>"$out"
    done
    echo "$KWOK_VERSION" >"$cache/.kwok-stages.version"
  fi
}

istio_crds() {
  # The CRDs come from the istio.io/api version that our istio.io/client-go
  # requires, so the schema the tests meet is the one our client speaks.
  local v
  v=$(cd "$root" && go list -m -f '{{.Version}}' istio.io/api)
  if [ ! -s "$cache/istio-crds.yaml" ] || [ "$(cat "$cache/.istio-crds.version" 2>/dev/null)" != "$v" ]; then
    local d
    d=$(cd "$root" && go mod download -json "istio.io/api@$v" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    cp "$d/kubernetes/customresourcedefinitions.gen.yaml" "$cache/istio-crds.yaml"
    chmod u+w "$cache/istio-crds.yaml"
    echo "$v" >"$cache/.istio-crds.version"
  fi
}

prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return; fi
  say "installing prometheus from Debian (~1 min)"
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Debian's package starts a system service; the project starts its own.
  $sudo systemctl stop prometheus >/dev/null 2>&1 || true
  pkill -x -u prometheus prometheus >/dev/null 2>&1 || true
}

case "${1:-all}" in
  bindir) echo "$bin" ;;
  cachedir) echo "$cache" ;;
  cluster) build_etcd; build_kube; build_kwok; istio_crds; prometheus ;;
  helm) build_gomod_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm ;;
  lint) build_gomod_tool golangci-lint "$GOLANGCI_VERSION" github.com/golangci/golangci-lint/v2/cmd/golangci-lint ;;
  prometheus) prometheus ;;
  gotestsum) build_gomod_tool gotestsum "$GOTESTSUM_VERSION" gotest.tools/gotestsum ;;
  controller-gen) build_gomod_tool controller-gen "$CONTROLLER_GEN_VERSION" sigs.k8s.io/controller-tools/cmd/controller-gen ;;
  all) build_etcd; build_kube; build_kwok; istio_crds; prometheus
       build_gomod_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm ;;
  *) echo "usage: $0 [all|cluster|helm|lint|gotestsum|controller-gen|prometheus|bindir|cachedir]" >&2; exit 2 ;;
esac
