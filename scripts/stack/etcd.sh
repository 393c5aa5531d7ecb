# shellcheck shell=bash
# shellcheck disable=SC2016,SC2015  # bash -c snippets expand in the child; "a && b || c" is meant
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns etcd: the /health probe
# over every endpoint, starting our etcd (peer port = client port + 1) and its readiness check;
# or, with STACK_ETCD_CLUSTER=1 (up --etcd-cluster), a 3-member cluster: one unit per member,
# etcd-<client port>, clients on STACK_ETCD_CLUSTER_PORT, +2 and +4, each peer port client + 1.

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
  # A member answers for itself: /health is true only while it sees a leader.
  [[ $ETCD_CLUSTER == 1 ]] && { etcd_health "${ADDR[$1]}"; return; }
  for ep in "${ETCD_EPS[@]}"; do etcd_health "${ep//[[:space:]]/}" && return 0; done
  return 1
}

etcd_start() {
  local u=$1 h=${HOST[$1]} p=${PORT[$1]} peer name=inventory cluster
  peer=$((p + 1))
  [[ $ETCD_SCHEME == http ]] || die "etcd: can only start a plain http etcd, not ${ADDR[$u]}"
  is_local_v6 "$h" && h='[::1]' || h=127.0.0.1
  tcp_open "$h" "$peer" && die "etcd: peer port $peer (client port + 1) is taken by something else"
  cluster="$name=http://$h:$peer"
  # Members are named after their units; a member started again on its data rejoins (etcd then
  # ignores --initial-cluster), so down/up keeps the cluster.
  [[ $ETCD_CLUSTER == 1 ]] && name=$u && cluster=$ETCD_INITIAL_CLUSTER
  mkdir -p "$STACK/$u/data"
  chmod 700 "$STACK/$u/data"   # etcd warns about (and 3.5+ refuses) a group-readable data dir
  launch "$u" "$STACK/$u" "$(sbin etcd)" --name "$name" --data-dir "$STACK/$u/data" \
    --listen-client-urls "http://$h:$p" --advertise-client-urls "http://$h:$p" \
    --listen-peer-urls "http://$h:$peer" --initial-advertise-peer-urls "http://$h:$peer" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    --auto-compaction-mode periodic --auto-compaction-retention 1h --logger zap --log-outputs stderr
}

etcd_ready() { etcd_health "http://$(is_local_v6 "${HOST[$1]}" && echo '[::1]' || echo 127.0.0.1):${PORT[$1]}"; }

# ---------------------------------------------------------------- the 3-member cluster

etcd_cluster_units() {
  local i p
  ETCD_SCHEME=http ETCD_EPS=() ETCD_INITIAL_CLUSTER=
  [[ $ETCD_CLUSTER_PORT =~ ^[0-9]+$ ]] || die "STACK_ETCD_CLUSTER_PORT must be a port number, not $ETCD_CLUSTER_PORT"
  for i in 0 1 2; do
    p=$((ETCD_CLUSTER_PORT + 2 * i))
    add_unit "etcd-$p" etcd 127.0.0.1 "$p" "http://127.0.0.1:$p"
    ETCD_EPS+=("http://127.0.0.1:$p")
    ETCD_INITIAL_CLUSTER+="${ETCD_INITIAL_CLUSTER:+,}etcd-$p=http://127.0.0.1:$((p + 1))"
  done
}

# After every member answers: the cluster as a whole, as etcdctl sees it (members it lists included).
etcd_cluster_ready() {
  local eps deadline
  eps=$(IFS=,; echo "${ETCD_EPS[*]}")
  command -v etcdctl >/dev/null || return 0
  deadline=$(($(now_ms) + WAIT_SECS * 1000))
  until ETCDCTL_API=3 etcdctl --endpoints="$eps" --command-timeout=2s endpoint health --cluster >/dev/null 2>&1; do
    (($(now_ms) < deadline)) || die "etcd cluster $eps: etcdctl endpoint health --cluster still fails after ${WAIT_SECS}s"
    sleep 0.2
  done
}
