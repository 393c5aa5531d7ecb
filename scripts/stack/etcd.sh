# shellcheck shell=bash
# shellcheck disable=SC2016,SC2015  # bash -c snippets expand in the child; "a && b || c" is meant
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns etcd: the /health probe
# over every endpoint, starting our etcd (peer port = client port + 1) and its readiness check.

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

etcd_ready() { etcd_health "http://$(is_local_v6 "${HOST[etcd]}" && echo '[::1]' || echo 127.0.0.1):${PORT[etcd]}"; }
