# shellcheck shell=bash
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns the install path: which
# Debian packages a unit needs, and one apt-get for all that is missing (log in .stack/apt.log).

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
    redis|rcluster) have redis-server || echo redis-server; have redis-cli || echo redis-tools ;;
    etcd) have etcd || echo etcd-server; have etcdctl || echo etcd-client ;;
    mariadb) { have mariadbd && have mariadb-install-db; } || echo mariadb-server
             mariadb_client >/dev/null || echo mariadb-client ;;
    rabbitmq) [[ -x $RMQ_LIB/rabbitmq-server ]] || echo rabbitmq-server ;;
  esac
}

missing_browser_pkgs() { # the browser the web console's test drives (playwright-core on Debian's chromium)
  have chromium || echo chromium
  have chromedriver || echo chromium-driver
}
