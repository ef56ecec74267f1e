#!/usr/bin/env bash
# Start, stop or query a private PostgreSQL cluster whose data, socket and log all live
# under one folder, so several clusters can run side by side on one machine (tests,
# benchmarks, a single-machine deployment) without systemd.
#
#   deploy/postgres/postgres.sh start  DIR PORT   install if missing, initdb, start, wait
#                                                 until ready, create role and database
#                                                 `passerelle`, print the URL on stdout
#   deploy/postgres/postgres.sh stop   DIR PORT   stop cleanly (pg_ctl stop -m fast)
#   deploy/postgres/postgres.sh status DIR PORT   exit 0 when running and ready, 3 otherwise
#
# The server listens on 127.0.0.1:PORT only and its Unix socket is in DIR/socket.
# Durability is traded for speed (fsync, synchronous_commit and full_page_writes are
# off): this cluster is for tests and benchmarks, not for production data.
# `start` on a running cluster returns 0 and prints the URL; `stop` on a stopped one
# returns 0.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status DIR PORT" >&2
    exit 2
}

[ $# -eq 3 ] || usage
cmd=$1
dir=$2
port=$3
case $port in
    '' | *[!0-9]*) echo "postgres.sh: port must be a number, got '$port'" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "postgres.sh: port must be in 1..65535, got $port" >&2
    exit 2
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data="$dir/data"
socket="$dir/socket"
log="$dir/postgres.log"
url="postgres://passerelle:passerelle@127.0.0.1:$port/passerelle"

pg_bindir() {
    # Debian installs one folder per major version; take the newest.
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

install_if_missing() {
    if pg_bindir >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "postgres.sh: postgresql is not installed and installing it needs root" >&2
        exit 1
    fi
    echo "postgres.sh: installing postgresql from Debian" >&2
    # A lock keeps two concurrent starts from running apt-get at the same time.
    (
        flock 9
        if ! pg_bindir >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q >&2
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends postgresql >&2
        fi
    ) 9>/tmp/passerelle-postgres-install.lock
}

# Runs a PostgreSQL tool as the `postgres` user when we are root (initdb and the server
# refuse to run as root), directly otherwise.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

is_ready() {
    [ -f "$data/PG_VERSION" ] || return 1
    local bin
    bin=$(pg_bindir) || return 1
    as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 &&
        "$bin/pg_isready" -q -h "$socket" -p "$port" >/dev/null 2>&1
}

psql_admin() {
    # Through the private socket as the bootstrap superuser `postgres`.
    as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -U postgres -d postgres "$@"
}

start() {
    install_if_missing
    bin=$(pg_bindir)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    if ! is_ready; then
        if [ ! -f "$data/PG_VERSION" ]; then
            as_pg mkdir -p "$data"
            as_pg "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
            cat >>"$data/postgresql.conf" <<CONF
# Set by deploy/postgres/postgres.sh: private socket, loopback only, test durability.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$socket'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
            # Password authentication over TCP, trust over the private socket (only the
            # owner of DIR can reach it).
            cat >"$data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
        fi
        as_pg mkdir -p "$socket"
        # A stale pid file from a killed server would make pg_ctl refuse to start.
        if [ -f "$data/postmaster.pid" ] && ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
            rm -f "$data/postmaster.pid"
        fi
        as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null ||
            { echo "postgres.sh: server did not start, see $log" >&2; exit 1; }
        for _ in $(seq 1 120); do
            "$bin/pg_isready" -q -h "$socket" -p "$port" && break
            sleep 0.5
        done
    fi
    psql_admin <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'passerelle') THEN
        CREATE ROLE passerelle LOGIN SUPERUSER PASSWORD 'passerelle';
    END IF;
END
\$\$;
SQL
    if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'passerelle'")" ]; then
        psql_admin -c "CREATE DATABASE passerelle OWNER passerelle"
    fi
    echo "$url"
}

stop() {
    bin=$(pg_bindir) || return 0
    [ -f "$data/PG_VERSION" ] || return 0
    if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
}

case $cmd in
    start) start ;;
    stop) stop ;;
    status) if is_ready; then exit 0; else exit 3; fi ;;
    *) usage ;;
esac
