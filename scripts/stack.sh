#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2015  # bash -c snippets expand in the child; "a && b || true" is meant
# The project's own local stack for development and tests: Redis, etcd, MariaDB and
# RabbitMQ, each on the project's own port, with data, logs and pid files under .stack/.
#
#   scripts/stack.sh up              start what does not answer yet, reuse what does
#   scripts/stack.sh status          what answers, and whether it is ours; exit 1 if any is down
#   scripts/stack.sh down [--purge]  stop exactly the processes this script started
#   scripts/stack.sh purge           down, then delete .stack/ data and logs
#
# Addresses come from the same variables the service reads, with the same defaults, written once
# in config/stack.env:
#   REDIS_NODES     comma-separated host:port; one redis per local port
#   ETCD_ENDPOINTS  peer port of ours = client port + 1
#   MYSQL_URL, AMQP_URL
# Knobs of this script only (defaults in brackets; README "The local stack"):
#   STACK_RABBITMQ_NODE [inventory@localhost]   STACK_RABBITMQ_DIST_PORT [AMQP port + 20000]
#   STACK_WAIT_SECS [30]   STACK_RABBITMQ_WAIT_SECS [60]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STACK="$ROOT/.stack"

# A variable set in the environment wins over config/stack.env.
while IFS='=' read -r name value; do
  [[ $name =~ ^[A-Z_]+$ ]] || continue
  [[ -n ${!name:-} ]] || printf -v "$name" '%s' "$value"
done <"$ROOT/config/stack.env"
RMQ_NODE="${STACK_RABBITMQ_NODE:-inventory@localhost}"
WAIT_SECS="${STACK_WAIT_SECS:-30}"
RMQ_WAIT_SECS="${STACK_RABBITMQ_WAIT_SECS:-60}"
RMQ_LIB=/usr/lib/rabbitmq/bin   # Debian's real scripts; /usr/sbin ones su to user rabbitmq
RMQ_DIR="$STACK/rabbitmq"

die() { printf 'stack: %s\n' "$*" >&2; exit 1; }
note() { printf 'stack: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- addresses

is_local() { case "$1" in 127.*|localhost|::1|'[::1]') return 0 ;; *) return 1 ;; esac; }
unbracket() { local h=${1#[}; printf '%s' "${h%]}"; }
urldecode() { printf '%b' "${1//%/\\x}"; }

# split_url URL DEFAULT_PORT -> U_USER U_PASS U_HOST U_PORT U_PATH
split_url() {
  local re='^([A-Za-z][A-Za-z0-9+.-]*://)?(([^:@/]*)(:([^@/]*))?@)?(\[[^]/]*\]|[^:/?#]+)(:([0-9]+))?(/([^?#]*))?'
  [[ $1 =~ $re ]] || die "cannot parse address: $1"
  U_USER=$(urldecode "${BASH_REMATCH[3]}")
  U_PASS=$(urldecode "${BASH_REMATCH[5]}")
  U_HOST=${BASH_REMATCH[6]}
  U_PORT=${BASH_REMATCH[8]:-$2}
  U_PATH=${BASH_REMATCH[10]}
}

# Units: one per server this script looks after. KIND/HOST/PORT/ADDR are keyed by unit name,
# which also names the pid file, the log and the data folder (.stack/<unit>.pid ...).
declare -a UNITS=()
declare -A KIND=() HOST=() PORT=() ADDR=() ACTION=() PID=()

add_unit() { # name kind host port display-address
  local n=$1
  [[ -n ${KIND[$n]:-} ]] && return 0   # the same node listed twice
  UNITS+=("$n"); KIND[$n]=$2; HOST[$n]=$3; PORT[$n]=$4; ADDR[$n]=$5
}

load_config() {
  local e i=0
  IFS=, read -ra nodes <<<"$REDIS_NODES"
  for e in "${nodes[@]}"; do
    e=${e//[[:space:]]/}; [[ -n $e ]] || continue
    split_url "$e" 6379
    if is_local "$U_HOST"; then add_unit "redis-$U_PORT" redis "$U_HOST" "$U_PORT" "$U_HOST:$U_PORT"
    else i=$((i + 1)); add_unit "redis-remote$i" redis "$U_HOST" "$U_PORT" "$U_HOST:$U_PORT"; fi
  done

  # A client with several endpoints is happy when any answers; we can only start the first.
  ETCD_EPS=()
  IFS=, read -ra ETCD_EPS <<<"$ETCD_ENDPOINTS"
  split_url "${ETCD_EPS[0]//[[:space:]]/}" 2379
  ETCD_SCHEME=${ETCD_EPS[0]%%://*}; [[ $ETCD_SCHEME == "${ETCD_EPS[0]}" ]] && ETCD_SCHEME=http
  add_unit etcd etcd "$U_HOST" "$U_PORT" "$ETCD_SCHEME://$U_HOST:$U_PORT"

  split_url "$MYSQL_URL" 3306
  M_USER=${U_USER:-root} M_PASS=$U_PASS M_DB=${U_PATH%%/*}
  [[ -z $M_DB || $M_DB =~ ^[A-Za-z0-9_$-]+$ ]] || die "unsupported database name in MYSQL_URL: $M_DB"
  add_unit mariadb mariadb "$U_HOST" "$U_PORT" "$U_HOST:$U_PORT${M_DB:+/$M_DB}"

  split_url "$AMQP_URL" 5672
  A_USER=${U_USER:-guest} A_PASS=${U_PASS:-guest} A_VHOST=$(urldecode "${U_PATH:-/}")
  [[ -z $A_VHOST ]] && A_VHOST=/
  RMQ_DIST_PORT="${STACK_RABBITMQ_DIST_PORT:-$((U_PORT + 20000))}"
  add_unit rabbitmq rabbitmq "$U_HOST" "$U_PORT" "$U_HOST:$U_PORT"
}

# ---------------------------------------------------------------- probes (all bounded)

tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$(unbracket "$1")" "$2" 2>/dev/null; }

# Inline PING over /dev/tcp: a real protocol check that needs no redis-cli. A password-protected
# redis (NOAUTH) answers too, so it is reused rather than clashed with.
redis_probe() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && IFS= read -r l <&3 &&
    [[ $l == +PONG* || $l == -NOAUTH* ]]' "$(unbracket "${HOST[$1]}")" "${PORT[$1]}" 2>/dev/null
}

etcd_health() { # url -> 0 if /health says true
  local out
  if command -v curl >/dev/null; then
    out=$(curl -fsS --max-time 2 "$1/health" 2>/dev/null) || return 1
  else
    [[ $1 == http://* ]] || return 1
    split_url "$1" 2379
    out=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3 &&
      cat <&3' "$(unbracket "$U_HOST")" "$U_PORT" 2>/dev/null) || return 1
  fi
  [[ $out == *'"health":"true"'* ]]
}
etcd_probe() {
  local ep
  for ep in "${ETCD_EPS[@]}"; do etcd_health "${ep//[[:space:]]/}" && return 0; done
  return 1
}

mariadb_client() { command -v mariadb || command -v mysql; }
# sql USER PASS STATEMENTS: over TCP, ignoring my.cnf so a local [client] section cannot interfere
sql() {
  local cli; cli=$(mariadb_client) || return 1
  MYSQL_PWD=$2 "$cli" --no-defaults --protocol=tcp --connect-timeout=2 -h "$(unbracket "${HOST[mariadb]}")" \
    -P "${PORT[mariadb]}" -u "$1" -N -B -e "$3"
}
# Reuse check with the service's own credentials; creating the database here is what makes
# a reused server ready for the service too. A client-less box can only check TCP.
mariadb_probe() {
  if ! mariadb_client >/dev/null; then tcp_open "${HOST[mariadb]}" "${PORT[mariadb]}"; return; fi
  if [[ -n $M_DB ]]; then
    sql "$M_USER" "$M_PASS" "CREATE DATABASE IF NOT EXISTS \`$M_DB\`" >/dev/null 2>&1 && return 0
  fi
  sql "$M_USER" "$M_PASS" 'SELECT 1' >/dev/null 2>&1 || return 1
  [[ -n $M_DB ]] && note "mariadb: cannot create database $M_DB as $M_USER; create it yourself"
  return 0
}

rabbitmq_probe() { tcp_open "${HOST[rabbitmq]}" "${PORT[rabbitmq]}"; }

probe() { "${KIND[$1]}_probe" "$1"; }

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
    redis-*) echo redis-server ;; etcd) echo etcd ;; mariadb) echo mariadbd ;; rabbitmq) echo beam.smp ;;
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
    redis) ;;   # the unit name carries the port
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

# ---------------------------------------------------------------- packages

APT_UPDATED=
install_pkgs() {
  [[ $# -gt 0 ]] || return 0
  local hint="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $*"
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing package(s): $* -- install them first: sudo $hint"
  fi
  note "installing $* (apt-get; log in .stack/apt.log)"
  local aptopt=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if [[ -z $APT_UPDATED ]]; then
    apt-get "${aptopt[@]}" update >>"$STACK/apt.log" 2>&1 9>&- || { tail -n 20 "$STACK/apt.log" >&2; die "apt-get update failed; install yourself: $hint"; }
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get "${aptopt[@]}" install -y --no-install-recommends "$@" \
    </dev/null >>"$STACK/apt.log" 2>&1 9>&- || { tail -n 20 "$STACK/apt.log" >&2; die "apt-get install failed; install yourself: $hint"; }
}

have() { command -v "$1" >/dev/null || [[ -x /usr/sbin/$1 ]]; }
sbin() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }

missing_pkgs() { # unit -> packages needed to start our own server for it
  case ${KIND[$1]} in
    redis) have redis-server || echo redis-server; have redis-cli || echo redis-tools ;;
    etcd) have etcd || echo etcd-server; have etcdctl || echo etcd-client ;;
    mariadb) { have mariadbd && have mariadb-install-db; } || echo mariadb-server
             mariadb_client >/dev/null || echo mariadb-client ;;
    rabbitmq) [[ -x $RMQ_LIB/rabbitmq-server ]] || echo rabbitmq-server ;;
  esac
}

# ---------------------------------------------------------------- starting servers

redis_start() {
  local u=$1 p=${PORT[$1]}
  mkdir -p "$STACK/$u"
  # noeviction: the service keeps state in redis, silently dropping keys would corrupt it.
  # "-::1" binds ::1 too when the box has IPv6 (node may resolve localhost to ::1 first).
  # auto-aof-rewrite-min-size: Redis's default (64mb) has a Reserve-heavy load (~1.5 kB of AOF per
  # Reserve) fork a rewrite every few seconds at peak, each taking a core for most of a second and
  # stalling the sale's slowest calls. At 1gb a sale's burst sets none off: a rewrite comes once
  # the file is past 1gb and has doubled since the last one.
  launch "$u" "$STACK/$u" "$(sbin redis-server)" --port "$p" --bind 127.0.0.1 -::1 --protected-mode yes \
    --daemonize no --supervised no --dir "$STACK/$u" --logfile "" \
    --save "" --appendonly yes --appendfsync everysec --auto-aof-rewrite-min-size 1gb \
    --maxmemory-policy noeviction
}

etcd_start() {
  local h=${HOST[etcd]} p=${PORT[etcd]} peer
  peer=$((p + 1))
  [[ $ETCD_SCHEME == http ]] || die "etcd: can only start a plain http etcd, not ${ADDR[etcd]}"
  is_local_v6 "$h" && h='[::1]' || h=127.0.0.1
  tcp_open "$h" "$peer" && die "etcd: peer port $peer (client port + 1) is taken by something else"
  mkdir -p "$STACK/etcd/data"
  chmod 700 "$STACK/etcd/data"   # etcd warns about (and 3.5+ refuses) a group-readable data dir
  launch etcd "$STACK/etcd" "$(sbin etcd)" --name inventory --data-dir "$STACK/etcd/data" \
    --listen-client-urls "http://$h:$p" --advertise-client-urls "http://$h:$p" \
    --listen-peer-urls "http://$h:$peer" --initial-advertise-peer-urls "http://$h:$peer" \
    --initial-cluster "inventory=http://$h:$peer" --initial-cluster-state new \
    --auto-compaction-mode periodic --auto-compaction-retention 1h --logger zap --log-outputs stderr
}
is_local_v6() { [[ $1 == '::1' || $1 == '[::1]' ]]; }

mariadb_start() {
  local d="$STACK/mariadb" bind=127.0.0.1
  is_local_v6 "${HOST[mariadb]}" && bind=::1
  mkdir -p "$d"
  # Initialise once; the marker tells a finished init from one that was interrupted.
  if [[ ! -f $d/data/.stack-initialized ]]; then
    rm -rf "$d/data"
    # normal auth: root@127.0.0.1 etc. with an EMPTY password (not unix_socket), for TCP clients
    "$(sbin mariadb-install-db)" --no-defaults --datadir="$d/data" --user=root \
      --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
      >>"$STACK/mariadb.log" 2>&1 9>&- || { tail -n 30 "$STACK/mariadb.log" >&2; die "mariadb: mariadb-install-db failed"; }
    touch "$d/data/.stack-initialized"
  fi
  # --no-defaults: the system's /etc/mysql config (port 3306, its socket, datadir) must not leak in.
  launch mariadb "$d" "$(sbin mariadbd)" --no-defaults --datadir="$d/data" --port="${PORT[mariadb]}" \
    --bind-address="$bind" --socket="$d/mariadb.sock" --pid-file="$STACK/mariadb.pid" --user=root \
    --log-error="$STACK/mariadb.log" --skip-name-resolve --max-connections=500 \
    --innodb-flush-log-at-trx-commit=1 --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
}

# Root's plain `rabbitmqctl` is Debian's wrapper, which su's to user rabbitmq and so uses
# ~rabbitmq/.erlang.cookie. Our node uses a copy of that cookie (never changing the original),
# so `rabbitmqctl -n inventory@localhost status` just works. If the system broker never ran
# there is no such cookie yet: create it the way the broker itself would (only if absent).
rmq_cookie() {
  local home sys="" cookie="" ours="$RMQ_DIR/.erlang.cookie"
  home=$(getent passwd rabbitmq | cut -d: -f6 || true)
  if [[ -n $home && -d $home ]]; then
    sys="$home/.erlang.cookie"
    if [[ ! -e $sys ]]; then
      (umask 077; set -o noclobber; printf '%s' "$(new_cookie)" >"$sys") 2>/dev/null &&
        chown rabbitmq:rabbitmq "$sys" 2>/dev/null && chmod 400 "$sys" || true
    fi
    [[ -r $sys ]] && cookie=$(cat "$sys")
  fi
  [[ -z $cookie && -s $ours ]] && cookie=$(cat "$ours")
  [[ -n $cookie ]] || cookie=$(new_cookie)
  if [[ ! -f $ours ]] || [[ $(cat "$ours") != "$cookie" ]]; then
    rm -f "$ours"; (umask 077; printf '%s' "$cookie" >"$ours"); chmod 400 "$ours"
  fi
}
new_cookie() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n' | tr a-f A-F; }
rmq_cookie_shared() {
  local home; home=$(getent passwd rabbitmq | cut -d: -f6 || true)
  [[ -n $home && -r $home/.erlang.cookie && -r $RMQ_DIR/.erlang.cookie ]] &&
    [[ $(cat "$home/.erlang.cookie") == "$(cat "$RMQ_DIR/.erlang.cookie")" ]]
}

# The environment our node and our rabbitmqctl calls run with: everything under .stack/rabbitmq,
# our own env file instead of /etc/rabbitmq/rabbitmq-env.conf (which names the system node).
rmq_env() {
  local v
  for v in $(compgen -e); do if [[ $v == RABBITMQ_* ]]; then unset "$v"; fi; done
  export HOME="$RMQ_DIR" RABBITMQ_NODENAME="$RMQ_NODE" RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
  export ERL_EPMD_ADDRESS=127.0.0.1
}

rabbitmq_start() {
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  tcp_open 127.0.0.1 "$RMQ_DIST_PORT" && die "rabbitmq: distribution port $RMQ_DIST_PORT is taken by something else"
  rmq_cookie
  printf '# stack.sh: keeps /etc/rabbitmq/rabbitmq-env.conf out of our node\n' >"$RMQ_DIR/rabbitmq-env.conf"
  printf '[].\n' >"$RMQ_DIR/enabled_plugins"
  printf '%s\n' "# written by scripts/stack.sh" "loopback_users.guest = true" \
    "disk_free_limit.absolute = 50MB" >"$RMQ_DIR/rabbitmq.conf"
  # Debian's /usr/sbin/rabbitmq-server would su to user rabbitmq; the real script runs as us.
  # RABBITMQ_ALLOW_INPUT makes it exec the VM (no signal-forwarding shell in between), so the
  # pid we record is beam.smp's own; -noinput restores what that variable drops.
  (
    rmq_env
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="${PORT[rabbitmq]}" \
      RABBITMQ_DIST_PORT="$RMQ_DIST_PORT" RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" \
      RABBITMQ_LOG_BASE="$RMQ_DIR/log" RABBITMQ_LOGS=- RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf" \
      RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins" RABBITMQ_ALLOW_INPUT=1 \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-noinput -kernel inet_dist_use_interface {127,0,0,1}" \
      ERL_CRASH_DUMP="$RMQ_DIR/erl_crash.dump"
    launch rabbitmq "$RMQ_DIR" "$RMQ_LIB/rabbitmq-server"
  )
}

rmqctl() { (rmq_env; "$RMQ_LIB/rabbitmqctl" -n "$RMQ_NODE" "$@"); }

# After our server answers: make the service's own credentials work.
mariadb_ready() {
  sql root "" 'SELECT 1' >/dev/null 2>&1 || return 1
  local q="" u p
  [[ -n $M_DB ]] && q="CREATE DATABASE IF NOT EXISTS \`$M_DB\`;"
  if [[ $M_USER != root ]]; then
    u=${M_USER//\'/\'\'} p=${M_PASS//\'/\'\'}
    q+="CREATE USER IF NOT EXISTS '$u'@'%' IDENTIFIED BY '$p'; GRANT ALL PRIVILEGES ON *.* TO '$u'@'%';"
  fi
  [[ -z $q ]] || sql root "" "$q" >/dev/null
}
redis_ready() { redis_probe "$1"; }
etcd_ready() { etcd_health "http://$(is_local_v6 "${HOST[etcd]}" && echo '[::1]' || echo 127.0.0.1):${PORT[etcd]}"; }
rabbitmq_ready() { rabbitmq_probe rabbitmq; }

rabbitmq_after() { # only when started by us and the URL asks for more than guest on /
  [[ $A_USER == guest && $A_PASS == guest && $A_VHOST == / ]] && return 0
  rmqctl await_startup >/dev/null 2>&1 || true
  [[ $A_VHOST == / ]] || rmqctl add_vhost "$A_VHOST" >/dev/null 2>&1 || true
  if [[ $A_USER != guest ]]; then
    rmqctl add_user "$A_USER" "$A_PASS" >/dev/null 2>&1 || rmqctl change_password "$A_USER" "$A_PASS" >/dev/null 2>&1 || true
  fi
  rmqctl set_permissions -p "$A_VHOST" "$A_USER" '.*' '.*' '.*' >/dev/null 2>&1 || true
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
  # 4. summary
  printf 'stack up (%s ms):\n' "$(($(now_ms) - t0))"
  for u in "${UNITS[@]}"; do
    local how=reused
    [[ ${ACTION[$u]} == start ]] && how=started
    [[ -n ${PID[$u]:-} ]] && how+=" (ours, pid ${PID[$u]})" || how+=" (external)"
    printf '  %-9s %-28s %-27s %s\n' "${KIND[$u]}" "${ADDR[$u]}" "$how" "$(cli_hint "$u")"
  done
  ((started)) && printf '  data and logs: %s (stop with: scripts/stack.sh down)\n' "$STACK"
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

case ${1:-} in
  up) load_config; cmd_up ;;
  status) load_config; cmd_status ;;
  down) if [[ ${2:-} == --purge ]]; then cmd_purge; else cmd_down; fi ;;
  purge) cmd_purge ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
