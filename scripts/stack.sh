#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015  # "a && b || c" is meant
# The project's own local stack for development and tests: Redis, etcd, MariaDB and
# RabbitMQ, each on the project's own port, with data, logs and pid files under .stack/.
#
#   scripts/stack.sh up              start what does not answer yet, reuse what does
#   scripts/stack.sh up --etcd-cluster   the same with a 3-member etcd in place of the one
#   scripts/stack.sh up --redis-cluster  also a Redis Cluster (3 masters + 3 replicas); prints REDIS_CLUSTER
#   scripts/stack.sh status [--etcd-cluster] [--redis-cluster]  what answers, and whether it is ours; exit 1 if any is down
#   scripts/stack.sh down [--purge]  stop exactly the processes this script started
#   scripts/stack.sh purge           down, then delete .stack/ data and logs
#   scripts/stack.sh browser         install Debian's chromium and chromium-driver when missing (npm test's browser test)
#
# Addresses come from the same variables the service reads, with the same defaults, written once
# in config/stack.env:
#   REDIS_NODES     comma-separated host:port; one redis per local port
#   ETCD_ENDPOINTS  peer port of ours = client port + 1
#   MYSQL_URL, AMQP_URL
# Knobs of this script only (defaults in brackets; README "The local stack"):
#   STACK_RABBITMQ_NODE [inventory@localhost]   STACK_RABBITMQ_DIST_PORT [AMQP port + 20000]
#   STACK_WAIT_SECS [30]   STACK_RABBITMQ_WAIT_SECS [60]
#   STACK_REDIS_MAXMEMORY [1gb]   maxmemory of the Redis we start (noeviction: past it writes fail)
#   STACK_ETCD_CLUSTER [0]   1: as --etcd-cluster
#   STACK_ETCD_CLUSTER_PORT [2479]   the cluster's first client port; members on it, +2, +4 (peers +1)
#   STACK_REDIS_CLUSTER [0]   1: as --redis-cluster   STACK_REDIS_CLUSTER_PORT [6400]   first of its 6 ports
#   STACK_REDIS_CLUSTER_NODE_TIMEOUT [5000]   ms a master may be silent before its replica takes over
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STACK="$ROOT/.stack"

# The parts, each owning one seam (see its header). Sourced here at the top level, so their
# declares and variables are global; they define functions and read config, nothing more.
# shellcheck source=stack/common.sh
source "$ROOT/scripts/stack/common.sh"      # addresses, knobs, messages, units
# shellcheck source=stack/procs.sh
source "$ROOT/scripts/stack/procs.sh"       # pid files, launch, wait, stop
# shellcheck source=stack/packages.sh
source "$ROOT/scripts/stack/packages.sh"    # apt-get of what is missing
# shellcheck source=stack/redis.sh
source "$ROOT/scripts/stack/redis.sh"
# shellcheck source=stack/redis-cluster.sh
source "$ROOT/scripts/stack/redis-cluster.sh"
# shellcheck source=stack/etcd.sh
source "$ROOT/scripts/stack/etcd.sh"
# shellcheck source=stack/mariadb.sh
source "$ROOT/scripts/stack/mariadb.sh"
# shellcheck source=stack/rabbitmq.sh
source "$ROOT/scripts/stack/rabbitmq.sh"

# ---------------------------------------------------------------- commands

lock() {
  mkdir -p "$STACK"
  command -v flock >/dev/null || return 0
  exec 9>"$STACK/.lock"
  flock -w 600 9 || die "another stack.sh is still busy (lock .stack/.lock)"
}

cli_hint() {
  case ${KIND[$1]} in
    redis) printf 'redis-cli -h %s -p %s ping' "$(unbracket "${HOST[$1]}")" "${PORT[$1]}" ;;
    rcluster) printf 'redis-cli -c -p %s cluster info' "${PORT[$1]}" ;;
    etcd) printf 'etcdctl --endpoints=%s endpoint health' "${ADDR[$1]}" ;;
    mariadb) printf 'mariadb -h %s -P %s -u%s%s%s' "$(unbracket "${HOST[$1]}")" "${PORT[$1]}" "$M_USER" \
      "${M_PASS:+ -p}" "${M_DB:+ $M_DB}" ;;
    rabbitmq)
      if [[ -n ${PID[$1]:-} ]] || our_live rabbitmq >/dev/null || ! rabbitmq_probe; then
        if rmq_cookie_shared; then printf 'rabbitmqctl -n %s status' "$RMQ_NODE"
        else printf 'HOME=%s %s/rabbitmqctl -n %s status' "$RMQ_DIR" "$RMQ_LIB" "$RMQ_NODE"; fi
      else printf '(external broker: AMQP only)'; fi ;;
  esac
}

cmd_up() {
  local t0 u pkgs=() p started=0
  t0=$(now_ms)
  lock
  # 1. what answers already is reused; decide what we must start
  for u in "${UNITS[@]}"; do
    if probe "$u"; then
      ACTION[$u]=reuse; PID[$u]=$(our_live "$u" || true)
    elif ! is_local "${HOST[$u]}"; then
      die "${KIND[$u]} at ${ADDR[$u]} is unreachable (not a local address, so not started here)"
    elif PID[$u]=$(our_live "$u"); then
      ACTION[$u]="wait"  # ours but not answering (yet): give it the startup timeout
    elif p=$(our_pid "$u"); then
      # one data folder, one process: a second one on the new port would fight over it
      die "our ${KIND[$u]} (pid $p) still runs with other settings than ${ADDR[$u]}; run scripts/stack.sh down first"
    elif tcp_open "${HOST[$u]}" "${PORT[$u]}"; then
      die "${ADDR[$u]} is taken by something that does not answer as ${KIND[$u]} (try: $(cli_hint "$u"))"
    else
      ACTION[$u]=start
      for p in $(missing_pkgs "$u"); do [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p"); done
    fi
  done
  # 2. one apt-get for everything missing
  install_pkgs "${pkgs[@]}"
  # 3. start in parallel (rabbitmq is the slow one), then wait for each
  for u in "${UNITS[@]}"; do
    if [[ ${ACTION[$u]} == start ]]; then "${KIND[$u]}_start" "$u"; started=1; fi
  done
  for u in "${UNITS[@]}"; do
    if [[ ${ACTION[$u]} != reuse ]]; then wait_ready "$u"; fi
  done
  [[ $ETCD_CLUSTER == 1 ]] && etcd_cluster_ready
  # a reused server keeps its settings; its part may say what we would have set otherwise
  for u in "${UNITS[@]}"; do
    if [[ ${ACTION[$u]} == reuse ]] && declare -F "${KIND[$u]}_reused" >/dev/null; then "${KIND[$u]}_reused" "$u"; fi
  done
  rcluster_wanted && rcluster_form
  # 4. summary
  printf 'stack up (%s ms):\n' "$(($(now_ms) - t0))"
  for u in "${UNITS[@]}"; do
    local how=reused
    [[ ${ACTION[$u]} == start ]] && how=started
    [[ -n ${PID[$u]:-} ]] && how+=" (ours, pid ${PID[$u]})" || how+=" (external)"
    printf '  %-9s %-28s %-27s %s\n' "${KIND[$u]}" "${ADDR[$u]}" "$how" "$(cli_hint "$u")"
  done
  [[ $ETCD_CLUSTER == 1 ]] && printf '  point the service at the cluster: ETCD_ENDPOINTS=%s\n' "$(IFS=,; echo "${ETCD_EPS[*]}")"
  ((started)) && printf '  data and logs: %s (stop with: scripts/stack.sh down)\n' "$STACK"
  rcluster_wanted && printf '  use the cluster with: REDIS_CLUSTER=%s (and no REDIS_NODES)\n' "$(rcluster_addresses)"
  return 0
}

cmd_status() {
  local u rc=0 ans who pid
  for u in "${UNITS[@]}"; do
    if probe "$u"; then ans=answers; else ans="NOT answering"; rc=1; fi
    if pid=$(our_live "$u"); then PID[$u]=$pid; who="ours (pid $pid)"
    elif [[ $ans == answers ]]; then who=external; else who=-; fi
    printf '  %-9s %-28s %-14s %-20s %s\n' "${KIND[$u]}" "${ADDR[$u]}" "$ans" "$who" "$(cli_hint "$u")"
  done
  return $rc
}

# Stops what the pid files name, not what the config says, so a stack started with other
# REDIS_NODES is still stopped in full; anything else on those ports is left alone.
cmd_down() {
  local f u pid prog units=() pids=() i
  lock
  shopt -s nullglob
  for f in "$STACK"/*.pid; do
    u=$(basename "$f" .pid)
    prog=$(prog_of "$u") || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if is_ours "$pid" "$prog"; then
      kill -TERM "$pid" 2>/dev/null || true
      units+=("$u"); pids+=("$pid")
    else
      rm -f "$f"; note "$u: pid file was stale, removed"
    fi
  done
  for i in "${!units[@]}"; do
    stop_pid "${units[$i]}" "${pids[$i]}"
    rm -f "$STACK/${units[$i]}.pid"
    printf 'stopped %s (pid %s)\n' "${units[$i]}" "${pids[$i]}"
  done
  ((${#units[@]})) || echo "nothing of ours was running"
}

cmd_purge() {
  cmd_down
  # keep .lock (we hold it) and apt.log; everything else is ours to delete
  find "$STACK" -mindepth 1 -maxdepth 1 ! -name .lock ! -name apt.log -exec rm -rf {} +
  echo "purged $STACK"
}

usage() { awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"; }

if [[ ${1:-} =~ ^(up|status)$ ]]; then
  for flag in "${@:2}"; do
    case $flag in
      --etcd-cluster) ETCD_CLUSTER=1 ;;
      --redis-cluster) STACK_REDIS_CLUSTER=1 ;;
      *) echo "stack.sh: unknown option $flag (see scripts/stack.sh help)" >&2; exit 2 ;;
    esac
  done
fi

case ${1:-} in
  up) load_config; rcluster_wanted && rcluster_units; cmd_up ;;
  status) load_config; rcluster_wanted && rcluster_units; cmd_status ;;
  down) if [[ ${2:-} == --purge ]]; then cmd_purge; else cmd_down; fi ;;
  purge) cmd_purge ;;
  # shellcheck disable=SC2046  # one package name a word
  browser) lock; install_pkgs $(missing_browser_pkgs) ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
