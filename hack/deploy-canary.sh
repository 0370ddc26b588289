#!/usr/bin/env bash
# Releases a new image through meshcanary: sets it on the canary Deployment
# and follows the release until it ends.
#
# Usage: hack/deploy-canary.sh <deployment> <container>=<image>
#   <deployment>  the stable Deployment (opted in to meshcanary)
#   NAMESPACE     (environment) the namespace; default: kubectl's current one
#   MESHCANARY    (environment) the meshcanary command to use; default:
#                 `kubectl meshcanary` when the plugin is installed, else
#                 `meshcanary` on PATH, else bin/meshcanary of this repository
#   WAIT_START    (environment) how long the release may take to start; 2m
#
# The canary is the Deployment the meshcanary.io/canary annotation names
# (default <deployment>-canary). The exit code is that of
# `meshcanary status -w`: 0 when the release was promoted, 1 when it was
# rolled back or never started, 2 on a usage error.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}
[[ $# -eq 2 && $2 == *=* && $1 != -* ]] || usage
deployment=$1
image=$2

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
    echo "deploy-canary: meshcanary not found: install the kubectl plugin (kubectl-meshcanary), put meshcanary on PATH, or run make build" >&2
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

canary=$(kubectl ${ns[@]+"${ns[@]}"} get deployment "$deployment" -o 'jsonpath={.metadata.annotations.meshcanary\.io/canary}')
canary=${canary:-$deployment-canary}

echo "deploy-canary: deployment/$canary: setting $image" >&2
kubectl ${ns[@]+"${ns[@]}"} set image "deployment/$canary" "$image"
# The controller may not have seen the change yet: wait for the release to
# start, then follow it to its end.
exec "${mc[@]}" ${ns[@]+"${ns[@]}"} status "$deployment" -w --wait-start "${WAIT_START:-2m}"
