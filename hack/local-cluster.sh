#!/usr/bin/env bash
# Runs the local control plane of internal/testenv (etcd, kube-apiserver,
# controllers, scheduler, a kwok node, Istio's CRDs, Prometheus) in the
# background for people and tools to use, without Docker or a real cluster.
#
# Usage: hack/local-cluster.sh up|down|status
#   up      build what is missing, start the stack (once), print KUBECONFIG
#           and the Prometheus URL; a second `up` reuses the running stack
#   down    stop the stack and make sure none of its processes is left
#   status  print where the running stack is; exit 1 when it is not running
#
# MESHCANARY_SCRAPE_CONFIG=FILE (for `up`): Prometheus scrape_configs items
# the stack starts with.
#
# State lives in $MESHCANARY_LOCAL_CLUSTER_DIR (default
# ${TMPDIR:-/tmp}/meshcanary-local-cluster): env.json (written by the stack
# once it is ready), localcluster.log and the localcluster binary.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${MESHCANARY_LOCAL_CLUSTER_DIR:-${TMPDIR:-/tmp}/meshcanary-local-cluster}
envjson=$state/env.json
pidfile=$state/localcluster.pid
log=$state/localcluster.log

say() { printf '[local-cluster] %s\n' "$*" >&2; }

# json_field NAME: a string or number field of env.json (flat, written by Go).
json_field() {
  sed -n 's/^ *"'"$1"'": *"\{0,1\}\([^",]*\)"\{0,1\},\{0,1\}$/\1/p' "$envjson" | head -n1
}

# pid of our localcluster when it runs, empty otherwise. The command line is
# checked so that a recycled pid is never taken for the stack.
running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "localcluster"; then
    echo "$pid"
  fi
}

# Every component runs in its own process group but inside the session that
# setsid gave localcluster (session id = its pid), so the session finds them
# all, even after localcluster itself is gone.
session_pids() { pgrep -s "$1" 2>/dev/null || true; }

# wait_gone SID SECONDS: true once no process of the session is left.
wait_gone() {
  local sid=$1 deadline=$((SECONDS + $2))
  while [ -n "$(session_pids "$sid")" ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

print_info() {
  local kubeconfig prom
  kubeconfig=$(json_field kubeconfig)
  prom=$(json_field prometheusURL)
  echo "export KUBECONFIG=$kubeconfig"
  echo "# Prometheus: $prom"
  echo "# logs: $(dirname "$kubeconfig")/logs/ and $log"
}

apiserver_ready() {
  kubectl --kubeconfig "$(json_field kubeconfig)" get --raw /readyz >/dev/null 2>&1
}

# stop_session SID: SIGTERM to localcluster (which stops its components in
# order), then SIGKILL to whatever of the session is left after a bounded wait.
stop_session() {
  local sid=$1
  kill -TERM "$sid" 2>/dev/null || true
  if ! wait_gone "$sid" 20; then
    say "processes still running after 20s, killing: $(session_pids "$sid" | tr '\n' ' ')"
    pkill -KILL -s "$sid" 2>/dev/null || true
    if ! wait_gone "$sid" 5; then
      say "could not stop: $(session_pids "$sid" | tr '\n' ' ')"
      return 1
    fi
  fi
}

up() {
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ] && [ -s "$envjson" ] && apiserver_ready; then
    say "already running (pid $pid)"
    print_info
    return 0
  fi
  if [ -n "$pid" ]; then
    say "a previous stack (pid $pid) is not healthy; restarting it"
    stop_session "$pid"
  else
    # A localcluster killed with SIGKILL leaves no process (Pdeathsig), but
    # its pid may still name a session of stragglers.
    local old
    old=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$old" ] && [ -n "$(session_pids "$old")" ]; then stop_session "$old"; fi
  fi
  rm -f "$envjson" "$pidfile"
  mkdir -p "$state"

  "$root/hack/tools.sh" cluster
  say "building hack/localcluster"
  (cd "$root" && go build -o "$state/localcluster" ./hack/localcluster)

  say "starting (log: $log)"
  # setsid: own session, so that neither the terminal's Ctrl-C nor this
  # script's exit reaches the stack, and `down` can find all of it.
  # MESHCANARY_SCRAPE_CONFIG names a file of Prometheus scrape_configs items
  # (the demo uses it to have its mesh and controller scraped).
  setsid nohup "$state/localcluster" --dir "$state" ${MESHCANARY_SCRAPE_CONFIG:+--scrape-config "$MESHCANARY_SCRAPE_CONFIG"} >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"

  local deadline=$((SECONDS + 180))
  until [ -s "$envjson" ] && apiserver_ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "localcluster exited during start-up; last lines of $log:"
      tail -n 40 "$log" >&2
      rm -f "$pidfile"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "not ready after 180s; stopping it. Last lines of $log:"
      tail -n 40 "$log" >&2
      stop_session "$pid" || true
      rm -f "$pidfile" "$envjson"
      return 1
    fi
    sleep 0.2
  done
  say "ready (pid $pid)"
  print_info
}

down() {
  local pid
  pid=$(running_pid)
  if [ -z "$pid" ]; then
    local old
    old=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$old" ] && [ -n "$(session_pids "$old")" ]; then
      say "localcluster is gone but its session $old is not; stopping it"
      stop_session "$old"
    else
      say "not running"
    fi
    rm -f "$pidfile" "$envjson"
    return 0
  fi
  say "stopping (pid $pid)"
  stop_session "$pid"
  rm -f "$pidfile" "$envjson"
  say "stopped"
}

status() {
  local pid
  pid=$(running_pid)
  if [ -z "$pid" ]; then
    say "not running"
    return 1
  fi
  if [ ! -s "$envjson" ]; then
    say "starting (pid $pid); log: $log"
    return 1
  fi
  if apiserver_ready; then
    say "running (pid $pid), API server ready"
  else
    say "running (pid $pid), API server NOT ready"
  fi
  print_info
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
