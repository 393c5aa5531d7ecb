# shellcheck shell=bash
# shellcheck disable=SC2015  # "a && b || true" is meant
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns RabbitMQ: the AMQP port
# probe, the Erlang cookie, the node's environment under .stack/rabbitmq, starting our broker,
# rabbitmqctl against it, and the vhost and user the AMQP URL asks for.

RMQ_LIB=/usr/lib/rabbitmq/bin   # Debian's real scripts; /usr/sbin ones su to user rabbitmq
RMQ_DIR="$STACK/rabbitmq"

rabbitmq_probe() { tcp_open "${HOST[rabbitmq]}" "${PORT[rabbitmq]}"; }

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
