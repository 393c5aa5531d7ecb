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

redis_ready() { redis_probe "$1"; }
