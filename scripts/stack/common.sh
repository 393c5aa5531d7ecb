# shellcheck shell=bash
# shellcheck disable=SC2016,SC2034  # bash -c snippets expand in the child; globals used by other parts
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns the addresses and knobs
# (config/stack.env, where a variable set in the environment wins), the messages, URL parsing,
# and the units: the table of servers (KIND/HOST/PORT/ADDR by unit name) the other parts work on.

# A variable set in the environment wins over config/stack.env.
while IFS='=' read -r name value; do
  [[ $name =~ ^[A-Z_]+$ ]] || continue
  [[ -n ${!name:-} ]] || printf -v "$name" '%s' "$value"
done <"$ROOT/config/stack.env"
RMQ_NODE="${STACK_RABBITMQ_NODE:-inventory@localhost}"
WAIT_SECS="${STACK_WAIT_SECS:-30}"
RMQ_WAIT_SECS="${STACK_RABBITMQ_WAIT_SECS:-60}"
REDIS_MAXMEMORY="${STACK_REDIS_MAXMEMORY:-1gb}"
ETCD_CLUSTER="${STACK_ETCD_CLUSTER:-0}"   # 1 (or up --etcd-cluster): a 3-member etcd instead of the one
ETCD_CLUSTER_PORT="${STACK_ETCD_CLUSTER_PORT:-2479}"

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

is_local_v6() { [[ $1 == '::1' || $1 == '[::1]' ]]; }

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

  if [[ $ETCD_CLUSTER == 1 ]]; then
    etcd_cluster_units
  else
    # A client with several endpoints is happy when any answers; we can only start the first.
    ETCD_EPS=()
    IFS=, read -ra ETCD_EPS <<<"$ETCD_ENDPOINTS"
    split_url "${ETCD_EPS[0]//[[:space:]]/}" 2379
    ETCD_SCHEME=${ETCD_EPS[0]%%://*}; [[ $ETCD_SCHEME == "${ETCD_EPS[0]}" ]] && ETCD_SCHEME=http
    add_unit etcd etcd "$U_HOST" "$U_PORT" "$ETCD_SCHEME://$U_HOST:$U_PORT"
  fi

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

# ---------------------------------------------------------------- probes (all bounded; one per kind in its part)

tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$(unbracket "$1")" "$2" 2>/dev/null; }

probe() { "${KIND[$1]}_probe" "$1"; }
