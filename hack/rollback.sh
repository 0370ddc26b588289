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

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# meshcanary_cmd fills the array mc with the meshcanary command to run.
meshcanary_cmd() {
  if [[ -n ${MESHCANARY:-} ]]; then
    read -r -a mc <<<"$MESHCANARY"
  elif command -v kubectl >/dev/null && command -v kubectl-meshcanary >/dev/null; then
    mc=(kubectl meshcanary)
  elif command -v meshcanary >/dev/null; then
    mc=(meshcanary)
  elif [[ -x $root/bin/meshcanary ]]; then
    mc=("$root/bin/meshcanary")
  else
    echo "rollback: meshcanary not found: install the kubectl plugin (kubectl-meshcanary), put meshcanary on PATH, or run make build" >&2
    exit 1
  fi
}
meshcanary_cmd

# ${ns[@]+...} below: an empty array is "unbound" to set -u in bash 3
# (macOS).
ns=()
if [[ -n ${NAMESPACE:-} ]]; then
  ns=(-n "$NAMESPACE")
fi

exec "${mc[@]}" ${ns[@]+"${ns[@]}"} rollback "$deployment" --reason "$reason" --wait --timeout "${TIMEOUT:-2m}"
