#!/usr/bin/env bash
# A throw-away PostgreSQL on loopback, for the tests and for trying the store by hand.
#
#   scripts/postgres.sh start DIR   # install if missing (root), init DIR once, start; prints the URL
#   scripts/postgres.sh stop DIR    # fast shutdown; DIR keeps the data, `start DIR` brings it back
#   scripts/postgres.sh install     # only the install step
#
# Re-runnable: `start` on a running server prints its URL again; a restart keeps port and data.
# Durability is off (fsync=off): never point it at data you want to keep.
set -euo pipefail

DB_NAME=curator
DB_USER=curator

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $dir/initdb && -x $dir/pg_ctl ]] && { echo "$dir"; return 0; }
    done
    dir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
    [[ -x $dir/initdb && -x $dir/pg_ctl ]] && { echo "$dir"; return 0; }
    return 1
}

install_postgres() {
    find_bindir >/dev/null && return 0
    [[ $(id -u) == 0 ]] || die "no PostgreSQL server binaries (initdb, pg_ctl) found; install them
  (Debian: apt-get install postgresql) or set CURATOR_SKIP_POSTGRES=1 to skip those tests"
    echo "postgres.sh: installing PostgreSQL with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get install -y -q --no-install-recommends postgresql)
    # A fresh image often has no package lists yet; update only when the first try needs it.
    "${apt[@]}" >&2 || { apt-get update -q >&2 && "${apt[@]}" >&2; } \
        || die "apt-get install postgresql failed"
    find_bindir >/dev/null || die "PostgreSQL installed, but no initdb under /usr/lib/postgresql"
}

# The server refuses to run as root: as root, every server command runs as the postgres user.
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A port nobody listens on (bash's /dev/tcp: no python or iproute2 needed on a bare machine),
# below the kernel's ephemeral range (32768+), where an outgoing connection could hold it when
# the server binds or restarts, and apart from the ports the tests' servers use (20000-29999).
free_port() {
    local port _
    for _ in $(seq 100); do
        port=$((30000 + RANDOM % 2768))
        (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
    done
    die "no free loopback port found"
}

url() {
    echo "postgresql+psycopg://$DB_USER:$(cat "$1/password")@127.0.0.1:$(cat "$1/port")/$DB_NAME"
}

start() {
    local dir=$1 bin
    install_postgres
    bin=$(find_bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) == 0 ]]; then
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" \
            || die "the postgres user cannot write to $dir (a parent folder is private?)"
    fi
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        rm -rf "$dir/data"
        as_owner sh -c "umask 077; head -c 18 /dev/urandom | base64 | tr '+/' '-_' > '$dir/password'"
        free_port >"$dir/port"
        as_owner "$bin/initdb" -D "$dir/data" -U "$DB_USER" --pwfile="$dir/password" \
            --auth=scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || die "initdb failed: $(cat "$dir/initdb.log")"
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "\
            -c port=$(cat "$dir/port") -c listen_addresses=127.0.0.1 \
            -c unix_socket_directories='$dir' -c max_connections=200 \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null \
            || die "the server did not start: $(tail -n 20 "$dir/server.log")"
    fi
    export PGPASSWORD
    PGPASSWORD=$(cat "$dir/password")
    local psql=("$bin/psql" -h 127.0.0.1 -p "$(cat "$dir/port")" -U "$DB_USER" -d postgres -qtA)
    if [[ $("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") != 1 ]]; then
        "${psql[@]}" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null
    fi
    url "$dir"
}

stop() {
    local dir=$1 bin
    [[ -f $dir/data/PG_VERSION ]] || return 0
    bin=$(find_bindir) || die "no PostgreSQL binaries to stop $dir with"
    if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
}

case ${1:-} in
    start) [[ $# == 2 ]] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [[ $# == 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
    install) install_postgres ;;
    *) die "usage: $0 start DIR | stop DIR | install" ;;
esac
