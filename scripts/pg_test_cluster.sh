#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the storage tests (there is no docker engine here).
#
#   scripts/pg_test_cluster.sh start       install PostgreSQL if missing, start a cluster in a new
#                                          temp dir on a free 127.0.0.1 port, and print two lines:
#                                          LENDGATE_TEST_DATABASE_URL=postgresql://...
#                                          LENDGATE_TEST_PG_DIR=/tmp/...
#   scripts/pg_test_cluster.sh stop DIR    stop that cluster and delete DIR
#
# Installs Debian's `postgresql` package with apt-get when initdb/pg_ctl are missing (as root,
# or through sudo). initdb refuses to run as root, so as root the cluster runs as the
# `postgres` system user (created if absent). Everything it prints but the URL goes to stderr.
set -euo pipefail

log() { echo "pg_test_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

sudo_if_needed() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

find_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return 0; }
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

ensure_postgres() {
    find_bindir && return 0
    log "PostgreSQL is missing: installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    sudo_if_needed apt-get update -qq >&2
    sudo_if_needed apt-get install -y -qq --no-install-recommends postgresql >&2
    find_bindir || die "initdb/pg_ctl not found after installing postgresql"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Run a command as the cluster's owner: ourselves, or `postgres` when we are root.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        # From /, so postgres is not left in a working directory it may not enter.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

start() {
    local dir bindir port
    bindir=$(ensure_postgres)
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    # mktemp's parent (TMPDIR or /tmp) is world-traversable, so `postgres` can reach it.
    dir=$(mktemp -d "${TMPDIR:-/tmp}/lendgate-pg.XXXXXX")
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
    as_owner "$bindir/initdb" -D "$dir/data" -U lendgate --auth=trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    port=$(free_port)
    # Settings for a throwaway test server: loopback only, socket in the cluster dir.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" \
        -o "-c max_connections=100 -c shared_buffers=256MB -c max_wal_size=2GB" \
        start >&2 || { cat "$dir/server.log" >&2; die "the server did not start"; }
    echo "$bindir" >"$dir/bindir"
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U lendgate lendgate_test
    echo "LENDGATE_TEST_DATABASE_URL=postgresql://lendgate@127.0.0.1:$port/lendgate_test"
    echo "LENDGATE_TEST_PG_DIR=$dir"
}

stop() {
    local dir=$1
    [[ -d $dir/data ]] || { log "no cluster in $dir"; return 0; }
    as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    rm -rf "$dir"
}

case ${1:-} in
    start) start ;;
    stop) stop "${2:?usage: $0 stop DIR}" ;;
    *) die "usage: $0 start | $0 stop DIR" ;;
esac
