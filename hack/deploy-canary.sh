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

# shellcheck source=lib/meshcanary.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/meshcanary.sh"
meshcanary_cmd deploy-canary
namespace_flags

canary=$(kubectl ${ns[@]+"${ns[@]}"} get deployment "$deployment" -o 'jsonpath={.metadata.annotations.meshcanary\.io/canary}')
canary=${canary:-$deployment-canary}

echo "deploy-canary: deployment/$canary: setting $image" >&2
kubectl ${ns[@]+"${ns[@]}"} set image "deployment/$canary" "$image"
# The controller may not have seen the change yet: wait for the release to
# start, then follow it to its end.
exec "${mc[@]}" ${ns[@]+"${ns[@]}"} status "$deployment" -w --wait-start "${WAIT_START:-2m}"
