# shellcheck shell=bash
# shellcheck disable=SC2016  # the bash -c snippet expands in the child
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns Redis: the PING probe,
# starting our redis-server (one per local port in REDIS_NODES) and its readiness check.

# Inline PING over /dev/tcp: a real protocol check that needs no redis-cli. A password-protected
# redis (NOAUTH) answers too, so it is reused rather than clashed with.
redis_probe() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && IFS= read -r l <&3 &&
    [[ $l == +PONG* || $l == -NOAUTH* ]]' "$(unbracket "${HOST[$1]}")" "${PORT[$1]}" 2>/dev/null
}

redis_start() {
  local u=$1
  redis_args "${PORT[$1]}" "$STACK/$u"
  mkdir -p "$STACK/$u"
  launch "$u" "$STACK/$u" "$(sbin redis-server)" "${REDIS_ARGS[@]}"
}

# redis_args PORT DIR: sets REDIS_ARGS, the settings of every redis-server we start (also the
# cluster's nodes, redis-cluster.sh), and why each.
redis_args() {
  local p=$1 dir=$2
  # noeviction: the service keeps state in redis, silently dropping keys would corrupt it.
  # maxmemory: without one Redis grows until the machine runs out; with one the limit is known, and
  # the server watches it (REDIS_MEMORY_WARN_RATIO) before writes start failing.
  # "-::1" binds ::1 too when the box has IPv6 (node may resolve localhost to ::1 first).
  # auto-aof-rewrite-min-size: Redis's default (64mb) has a Reserve-heavy load (~1.5 kB of AOF per
  # Reserve) fork a rewrite every few seconds at peak, each taking a core for most of a second and
  # stalling the sale's slowest calls. At 1gb a sale's burst sets none off: a rewrite comes once
  # the file is past 1gb and has doubled since the last one.
  # hash-max-listpack-value 1024: an order's hash holds a JSON field over Redis's default of 64
  # bytes, which makes the whole hash a hashtable; as a listpack an order takes ~40% less memory.
  REDIS_ARGS=(--port "$p" --bind 127.0.0.1 -::1 --protected-mode yes
    --daemonize no --supervised no --dir "$dir" --logfile ""
    --save "" --appendonly yes --appendfsync everysec --auto-aof-rewrite-min-size 1gb
    --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy noeviction --hash-max-listpack-value 1024)
}

# redis_maxmemory UNIT: prints the node's maxmemory in bytes (INFO memory; 0 = none), or fails.
redis_maxmemory() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "INFO memory\r\n" >&3 &&
    while IFS= read -r l <&3; do [[ $l == maxmemory:* ]] && { printf "%s" "${l//[^0-9]/}"; exit 0; }; done; exit 1' \
    "$(unbracket "${HOST[$1]}")" "${PORT[$1]}" 2>/dev/null
}

# A reused Redis is left as it is (it may be a shop's own), but one without maxmemory is worth a note.
redis_reused() {
  [[ $(redis_maxmemory "$1") == 0 ]] || return 0
  note "redis at ${ADDR[$1]} has no maxmemory: it grows until the machine runs out. Left as it is;" \
    "give it one (ours start with --maxmemory $REDIS_MAXMEMORY):" \
    "redis-cli -h $(unbracket "${HOST[$1]}") -p ${PORT[$1]} config set maxmemory $REDIS_MAXMEMORY," \
    "or, if this stack started it, scripts/stack.sh down && scripts/stack.sh up"
}

redis_ready() { redis_probe "$1"; }
