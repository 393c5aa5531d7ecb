# shellcheck shell=bash
# shellcheck disable=SC2016,SC2153  # the bash -c snippet expands in the child; KIND is common.sh's
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns our processes: pid files,
# telling our servers from others, launching one, waiting until it answers, stopping it.

# ---------------------------------------------------------------- our processes

# is_ours PID PROGRAM: the pid runs PROGRAM and belongs to this stack (its command line or
# working directory is under .stack/), so a recycled pid is never mistaken for ours.
is_ours() {
  local pid=$1 prog=$2 cmd cwd
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null) || return 1
  [[ $cmd == *"$prog"* ]] || return 1
  cwd=$(readlink /proc/"$pid"/cwd 2>/dev/null || true)
  [[ $cmd == *"$STACK/"* || $cwd == "$STACK"/* ]]
}

prog_of() {
  case $1 in
    redis-*|rcluster-*) echo redis-server ;; etcd|etcd-*) echo etcd ;; mariadb) echo mariadbd ;; rabbitmq) echo beam.smp ;;
    *) return 1 ;;
  esac
}

our_pid() { # unit -> prints the live pid of our server for it
  local pidfile="$STACK/$1.pid" pid prog
  [[ -f $pidfile ]] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  prog=$(prog_of "$1") || return 1
  is_ours "$pid" "$prog" && printf '%s' "$pid"
}

# our_live UNIT: our_pid, and that process serves the port configured now (our etcd on 2389 is
# not "ours" when ETCD_ENDPOINTS points at some other etcd).
our_live() {
  local pid cmd
  pid=$(our_pid "$1") || return 1
  cmd=$(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null) || return 1
  case ${KIND[$1]} in
    redis|rcluster) ;;   # the unit name carries the port
    etcd) local re="--listen-client-urls http://[^ ]*:${PORT[$1]} "; [[ $cmd =~ $re ]] || return 1 ;;
    mariadb) [[ $cmd == *"--port=${PORT[$1]} "* ]] || return 1 ;;
    rabbitmq) tr '\0' '\n' </proc/"$pid"/environ 2>/dev/null | grep -qx "RABBITMQ_NODE_PORT=${PORT[$1]}" || return 1 ;;
  esac
  printf '%s' "$pid"
}

# launch UNIT DIR CMD...: run CMD in a session of its own (it survives our shell, its Ctrl-C
# and CI's process-group kill), cwd DIR, output to .stack/UNIT.log, and the pid of CMD itself
# in .stack/UNIT.pid: the inner bash writes its own pid and then execs CMD. fd 9 (our lock)
# is closed so the servers do not keep holding it.
launch() {
  local unit=$1 dir=$2; shift 2
  rm -f "$STACK/$unit.pid"
  (cd "$dir" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$STACK/$unit.pid" "$@") \
    </dev/null >>"$STACK/$unit.log" 2>&1 9>&- &
}

# wait_ready UNIT: poll until our server answers; fail fast if it died, and show its log.
wait_ready() {
  local u=$1 kind=${KIND[$1]} secs=$WAIT_SECS deadline pid=""
  [[ $kind == rabbitmq ]] && secs=$RMQ_WAIT_SECS
  deadline=$(($(now_ms) + secs * 1000))
  while :; do
    if "${kind}_ready" "$u" 2>/dev/null; then
      [[ $kind == rabbitmq && ${ACTION[$u]} == start ]] && rabbitmq_after
      [[ $kind == mariadb ]] || break
      mariadb_probe mariadb && break   # the service's own login must work too
    fi
    [[ -z $pid && -s $STACK/$u.pid ]] && pid=$(cat "$STACK/$u.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail_unit "$u" "exited during startup"
    fi
    (($(now_ms) < deadline)) || fail_unit "$u" "did not answer within ${secs}s"
    sleep 0.2
  done
  # shellcheck disable=SC2004,SC2034  # PID: a table of common.sh (declare -A)
  PID[$u]=$(our_live "$u" || true)
}

fail_unit() {
  local u=$1 pid
  printf 'stack: %s at %s %s; last lines of .stack/%s.log:\n' "${KIND[$u]}" "${ADDR[$u]}" "$2" "$u" >&2
  tail -n 30 "$STACK/$u.log" >&2 2>/dev/null || true
  # Do not leave a half-started server behind; the others are fine and stay up.
  if pid=$(our_pid "$u"); then stop_pid "$u" "$pid" >/dev/null; rm -f "$STACK/$u.pid"; fi
  exit 1
}

stop_pid() { # unit pid: SIGTERM, up to 20 s, then SIGKILL
  local u=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    note "$u (pid $pid) ignored SIGTERM for 20s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 25; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
}
