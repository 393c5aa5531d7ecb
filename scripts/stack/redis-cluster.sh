# shellcheck shell=bash
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns the optional Redis Cluster
# (`up --redis-cluster`, or STACK_REDIS_CLUSTER=1): 3 masters with 1 replica each on ports
# STACK_REDIS_CLUSTER_PORT..+5 (default 6400..6405; cluster bus on port + 10000), the same
# settings as the single Redis (redis.sh: redis_args) plus cluster mode, formed once with
# `redis-cli --cluster create --cluster-replicas 1` (a restart keeps each node's nodes.conf, so an
# existing cluster is not formed again). The service uses it with REDIS_CLUSTER=<the addresses>.

RCLUSTER_BASE="${STACK_REDIS_CLUSTER_PORT:-6400}"
# How long a master may be silent before its replica takes over (cluster-node-timeout, ms).
RCLUSTER_NODE_TIMEOUT="${STACK_REDIS_CLUSTER_NODE_TIMEOUT:-5000}"

rcluster_wanted() { [[ ${STACK_REDIS_CLUSTER:-0} == 1 ]]; }

rcluster_units() {
  local i p
  for i in 0 1 2 3 4 5; do
    p=$((RCLUSTER_BASE + i))
    add_unit "rcluster-$p" rcluster 127.0.0.1 "$p" "127.0.0.1:$p"
  done
}

rcluster_addresses() {
  local u out=()
  for u in "${UNITS[@]}"; do [[ ${KIND[$u]} == rcluster ]] && out+=("${ADDR[$u]}"); done
  (IFS=,; printf '%s' "${out[*]}")
}

rcluster_probe() { redis_probe "$1"; }
rcluster_ready() { redis_probe "$1"; }

rcluster_start() {
  local u=$1
  redis_args "${PORT[$1]}" "$STACK/$u"
  mkdir -p "$STACK/$u"
  launch "$u" "$STACK/$u" "$(sbin redis-server)" "${REDIS_ARGS[@]}" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "$RCLUSTER_NODE_TIMEOUT"
}

rcluster_info() { # UNIT FIELD -> the field of CLUSTER INFO
  redis-cli -h 127.0.0.1 -p "${PORT[$1]}" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

# Forms the cluster unless its nodes know each other already, then waits for cluster_state:ok on
# every node. A node answering without cluster mode (someone else's redis) is refused.
rcluster_form() {
  local u units=() addrs=() deadline
  for u in "${UNITS[@]}"; do [[ ${KIND[$u]} == rcluster ]] && units+=("$u") && addrs+=("${ADDR[$u]}"); done
  for u in "${units[@]}"; do
    [[ -n $(rcluster_info "$u" cluster_state) ]] ||
      die "${ADDR[$u]} answers but is not in cluster mode; pick other ports with STACK_REDIS_CLUSTER_PORT"
  done
  if [[ $(rcluster_info "${units[0]}" cluster_known_nodes) != "${#units[@]}" ]]; then
    note "forming the Redis cluster (${addrs[*]}; log in .stack/rcluster-create.log)"
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >>"$STACK/rcluster-create.log" 2>&1 9>&- ||
      { tail -n 20 "$STACK/rcluster-create.log" >&2; die "redis-cli --cluster create failed"; }
  fi
  deadline=$(($(now_ms) + WAIT_SECS * 1000))
  for u in "${units[@]}"; do
    until [[ $(rcluster_info "$u" cluster_state) == ok ]]; do
      (($(now_ms) < deadline)) || die "redis cluster: ${ADDR[$u]} not cluster_state:ok within ${WAIT_SECS}s"
      sleep 0.2
    done
  done
}
