# pg.sh: a throwaway PostgreSQL cluster for tests, meant to be sourced.
#
#   . tests/store/pg.sh
#   pg_start || exit 1      # exports HARK_TEST_PG=postgres://hark@127.0.0.1:PORT/hark_test
#   ...                     # the cluster is stopped and removed on exit
#
# pg_start makes a cluster with initdb in a fresh mktemp directory, starts
# it with pg_ctl on a free TCP port on 127.0.0.1 only (its Unix socket goes
# into the same directory, never into /var/run), creates the database
# hark_test and exports HARK_TEST_PG. Authentication is "trust": the
# cluster listens on loopback only and lives as long as the test run.
# An EXIT trap stops the server and removes the directory, so no server is
# ever left running; pg_stop does the same at once.
#
# PostgreSQL refuses to run as root. When the tests run as root (CI, a
# container) the server runs as the system user "nobody", which exists on
# every Debian system, so nothing is added to /etc/passwd; the temporary
# directory is given to that user. Otherwise it runs as the calling user.
# The server binaries are found with pg_config or under
# /usr/lib/postgresql/*/bin (Debian's postgresql package); PG_BIN
# overrides. synchronous_commit is off, which like the SQLite store's
# synchronous=NORMAL keeps every commit through a process crash but not
# through a power loss.

PG_DIR=
PG_PORT=
PG_USER_OS=

# Runs a command as the cluster's owner, from its directory.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$PG_DIR" && runuser -u "$PG_USER_OS" -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

# Prints the folder holding initdb and pg_ctl, or nothing.
pg_find_bin() {
    if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then
        echo "$PG_BIN"
        return
    fi
    if command -v pg_config >/dev/null 2>&1; then
        local b
        b=$(pg_config --bindir 2>/dev/null)
        if [ -x "$b/initdb" ] && [ -x "$b/pg_ctl" ]; then
            echo "$b"
            return
        fi
    fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    done
}

# True when nothing accepts connections on 127.0.0.1:$1.
pg_port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_stop() {
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
        if [ -f "$PG_DIR/data/postmaster.pid" ]; then
            pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
        fi
        rm -rf "$PG_DIR"
    fi
    PG_DIR=
}

# Starts the cluster and exports HARK_TEST_PG; returns 1 (with a line on
# stderr) when PostgreSQL is not installed or does not start.
pg_start() {
    PG_BINDIR=$(pg_find_bin)
    if [ -z "$PG_BINDIR" ]; then
        echo "pg.sh: no PostgreSQL server binaries (install Debian's postgresql)" >&2
        return 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        PG_USER_OS=nobody
        if ! id "$PG_USER_OS" >/dev/null 2>&1; then
            echo "pg.sh: running as root and there is no user '$PG_USER_OS' to run PostgreSQL" >&2
            return 1
        fi
    else
        PG_USER_OS=$(id -un)
    fi
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hark-pg.XXXXXX") || return 1
    trap pg_stop EXIT
    chmod 700 "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER_OS" "$PG_DIR"
    if ! pg_as_owner "$PG_BINDIR/initdb" -D "$PG_DIR/data" -U hark -A trust -E UTF8 --no-locale \
        >"$PG_DIR/initdb.log" 2>&1; then
        echo "pg.sh: initdb failed:" >&2
        tail -n 5 "$PG_DIR/initdb.log" >&2
        pg_stop
        return 1
    fi
    local try started=0
    for try in 1 2 3 4 5 6 7 8; do
        PG_PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        pg_port_free "$PG_PORT" || continue
        if pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
            -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c synchronous_commit=off" \
            start >/dev/null 2>&1; then
            started=1
            break
        fi
    done
    if [ "$started" -ne 1 ]; then
        echo "pg.sh: the server did not start:" >&2
        tail -n 5 "$PG_DIR/server.log" >&2 2>/dev/null
        pg_stop
        return 1
    fi
    if ! "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U hark -d postgres \
        -c "CREATE DATABASE hark_test" >/dev/null 2>"$PG_DIR/psql.log"; then
        echo "pg.sh: could not create the test database:" >&2
        cat "$PG_DIR/psql.log" >&2
        pg_stop
        return 1
    fi
    export HARK_TEST_PG="postgres://hark@127.0.0.1:$PG_PORT/hark_test"
    return 0
}
