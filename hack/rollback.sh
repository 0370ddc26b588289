#!/usr/bin/env bash
# Rolls the release in flight back and returns once stable serves 100% of
# the managed route.
#
# Usage: hack/rollback.sh <deployment> <reason>
#   <deployment>  the stable Deployment (opted in to meshcanary)
#   <reason>      why; recorded in the release history
#   NAMESPACE     (environment) the namespace; default: kubectl's current one
#   MESHCANARY    (environment) the meshcanary command to use; default:
#                 `kubectl meshcanary` when the plugin is installed, else
#                 `meshcanary` on PATH, else bin/meshcanary of this repository
#   TIMEOUT       (environment) how long to wait; default 2m
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}
[[ $# -eq 2 && -n $2 && $1 != -* ]] || usage
deployment=$1
reason=$2

# shellcheck source=lib/meshcanary.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/meshcanary.sh"
meshcanary_cmd rollback
namespace_flags

exec "${mc[@]}" ${ns[@]+"${ns[@]}"} rollback "$deployment" --reason "$reason" --wait --timeout "${TIMEOUT:-2m}"
