# shellcheck shell=bash
# Part of scripts/stack.sh (sourced by it, not run on its own). Owns MariaDB: the client and
# its probe with the service's credentials, initialising and starting our mariadbd, and making
# the service's database and user once it answers.

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
