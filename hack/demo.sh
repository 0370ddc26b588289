#!/usr/bin/env bash
# `make demo`: the story of a release on a real local control plane.
#   hack/demo.sh        run it (KEEP=1 leaves everything running)
#   hack/demo.sh down   stop what a KEEP=1 run left behind
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x bin/meshcanary ] || go build -o bin/meshcanary ./cmd/meshcanary
go build -o "${TMPDIR:-/tmp}/meshcanary-demo-runner" ./hack/demo
exec "${TMPDIR:-/tmp}/meshcanary-demo-runner" "$@"
