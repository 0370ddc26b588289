# Sourced by hack/deploy-canary.sh and hack/rollback.sh: finds the meshcanary
# command and the namespace flags, the same way for both.
#
# meshcanary_cmd NAME fills the array mc with the command to run: $MESHCANARY,
# else `kubectl meshcanary` when the plugin is installed, else `meshcanary` on
# PATH, else bin/meshcanary of this repository. NAME prefixes the error.
meshcanary_cmd() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [[ -n ${MESHCANARY:-} ]]; then
    read -r -a mc <<<"$MESHCANARY"
  elif command -v kubectl >/dev/null && command -v kubectl-meshcanary >/dev/null; then
    mc=(kubectl meshcanary)
  elif command -v meshcanary >/dev/null; then
    mc=(meshcanary)
  elif [[ -x $root/bin/meshcanary ]]; then
    mc=("$root/bin/meshcanary")
  else
    echo "$1: meshcanary not found: install the kubectl plugin (kubectl-meshcanary), put meshcanary on PATH, or run make build" >&2
    exit 1
  fi
}

# namespace_flags fills the array ns from $NAMESPACE (empty: kubectl's
# current namespace). Callers expand it as ${ns[@]+"${ns[@]}"}: an empty
# array is "unbound" to set -u in bash 3 (macOS).
namespace_flags() {
  ns=()
  if [[ -n ${NAMESPACE:-} ]]; then
    ns=(-n "$NAMESPACE")
  fi
}
