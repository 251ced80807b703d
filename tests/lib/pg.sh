#!/bin/bash
# tests/lib/pg.sh: throwaway PostgreSQL 15 clusters for tests (loopback only, trust auth).
#
# Source it from a test:
#     . tests/lib/pg.sh
#     port=$(pg_free_port)                  # reserves the port for this shell ($$)
#     pg_start "$tmp/pg" "$port"            # [ARCHIVE_DIR] turns on WAL archiving
#     pg_psql "$port" postgres -c 'select 1'
#     url=$(pg_url "$port" proj)            # postgresql://postgres@127.0.0.1:PORT/proj
#     pg_stop "$tmp/pg"                     # also frees the port reservation
# or run it:
#     bash tests/lib/pg.sh start DIR PORT [ARCHIVE_DIR] | stop DIR | status DIR | destroy DIR
#     bash tests/lib/pg.sh free-port | url PORT [DB] | psql PORT DB [psql args...]
#   (the CLI's free-port cannot hold its reservation: the reserving shell exits at once)
#
# Functions (all return non-zero on failure and print the reason on stderr; stdout carries
# only the value a function is asked for):
#   pg_start DIR PORT [ARCHIVE_DIR]  initdb DIR if it has no cluster (a copy of a cached template:
#                                    ~0.4 s in all, ~1.5 s the first time), start it on 127.0.0.1:PORT with
#                                    its unix socket in DIR.sock and its log in DIR.log (both kept
#                                    out of DIR, so base backups of DIR stay clean), wait until ready.
#                                    Already running on PORT: returns 0. Running on another port: 1.
#                                    With ARCHIVE_DIR: archive_mode=on and archive_command=
#                                    $PG_ARCHIVE_COMMAND or a cp into ARCHIVE_DIR. wal_level is
#                                    logical (as on Supabase; a superset of replica) unless
#                                    PG_WAL_LEVEL says otherwise. pg_stat_statements is preloaded.
#   pg_stop DIR                      fast shutdown (immediate if that hangs); no-op if not running.
#   pg_destroy DIR                   pg_stop, then remove DIR, DIR.sock and DIR.log.
#   pg_status DIR                    0 if a server runs in DIR; prints its port.
#   pg_free_port                     prints a free port in [PG_PORT_MIN, PG_PORT_MAX] (21000-29999):
#                                    no TCP listener on it, no /tmp/.s.PGSQL.PORT socket, and not
#                                    reserved by another test (atomic mkdir in $PG_LOCK_DIR).
#   pg_url PORT [DB]                 postgresql://postgres@127.0.0.1:PORT/DB (DB defaults to postgres;
#                                    the user is $PG_SUPERUSER)
#   pg_psql PORT DB ARGS...          psql -X -q -v ON_ERROR_STOP=1 to DB as $PG_SUPERUSER
#   pg_createdb PORT DB [OWNER]      CREATE DATABASE (no-op if it exists)
#   pg_sockdir DIR                   the socket directory used for DIR
#
# Settings (environment): PG_BIN (default /usr/lib/postgresql/15/bin), PG_PORT_MIN, PG_PORT_MAX,
# PG_LOCK_DIR (default /tmp/supamanager-pg), PG_SUPERUSER (bootstrap superuser of new clusters
# and the user of pg_url/pg_psql, default postgres; a real Supabase image uses supabase_admin
# and demotes postgres), PG_INITDB_OPTS (more initdb options), PG_ARCHIVE_COMMAND (%p/%f as in
# postgresql.conf), PG_EXTRA_OPTS (more "-c name=value" server options, appended verbatim),
# PG_WAL_LEVEL (default logical), PG_FSYNC (default off: fast, and safe for everything short
# of an OS crash; set on for durability tests).
#
# PostgreSQL refuses to run as root: as root every server-side command runs as user postgres via
# runuser, from cwd /, and DIR's parent folders must be traversable by postgres (/tmp is, /root is
# not). As any other user the commands run as that user.
#
# Server options go on the pg_ctl command line (-o), never into DIR, so a copy of DIR (a base
# backup being restored) started with pg_start gets its own port, socket and archive settings.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT_MIN=${PG_PORT_MIN:-21000}
PG_PORT_MAX=${PG_PORT_MAX:-29999}
PG_LOCK_DIR=${PG_LOCK_DIR:-/tmp/supamanager-pg}
PG_SUPERUSER=${PG_SUPERUSER:-postgres}

case ":$PATH:" in *":$PG_BIN:"*) ;; *) PATH="$PG_BIN:$PATH" ;; esac

_pg_err() { echo "pg.sh: $*" >&2; return 1; }

_pg_abs() {
    case $1 in /*) printf '%s\n' "${1%/}" ;; *) printf '%s\n' "$PWD/${1%/}" ;; esac
}

# Runs a command as the server's OS user: postgres when we are root, else ourselves.
_pg_as() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

_pg_own() { # chown to the server user when root
    [ "$(id -u)" = 0 ] || return 0
    chown postgres:postgres "$@"
}

_pg_ensure_installed() {
    [ -x "$PG_BIN/initdb" ] && return 0
    [ "$(id -u)" = 0 ] || _pg_err "$PG_BIN/initdb not found (install postgresql-15)" || return 1
    echo "pg.sh: installing postgresql-15" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends postgresql-15 postgresql-client-15 postgresql-contrib) >&2 ||
        _pg_err "cannot install postgresql-15"
}

_pg_lockdir() {
    mkdir -p "$PG_LOCK_DIR" 2>/dev/null
    chmod 1777 "$PG_LOCK_DIR" 2>/dev/null
    [ -d "$PG_LOCK_DIR" ] && [ -w "$PG_LOCK_DIR" ] || _pg_err "cannot use lock dir $PG_LOCK_DIR"
}

# Socket directory for DIR: DIR.sock, or a short path under /tmp when DIR.sock would make the
# socket path longer than the 107 bytes a unix socket address holds.
pg_sockdir() {
    local dir
    dir=$(_pg_abs "${1:?usage: pg_sockdir DIR}")
    if [ ${#dir} -le 80 ]; then
        printf '%s\n' "$dir.sock"
    else
        printf '/tmp/pgsock.%s\n' "$(printf '%s' "$dir" | md5sum | cut -c1-16)"
    fi
}

_pg_port_listening() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ] && return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    return 1
}

_pg_pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Port reservation: $PG_LOCK_DIR/port.N/ (mkdir is atomic) holding "pid" (the reserving shell)
# and, once a server runs there, "dir". It is stale when neither that shell nor a server in that
# dir is alive.
_pg_port_reserved() {
    local l="$PG_LOCK_DIR/port.$1" pid dir
    [ -d "$l" ] || return 1
    pid=$(cat "$l/pid" 2>/dev/null)
    dir=$(cat "$l/dir" 2>/dev/null)
    _pg_pid_alive "$pid" && return 0
    if [ -n "$dir" ] && [ -f "$dir/postmaster.pid" ] && _pg_pid_alive "$(head -1 "$dir/postmaster.pid")"; then
        return 0
    fi
    if [ -z "$pid" ] && [ -z "$dir" ]; then
        # being created right now by another shell (mkdir done, pid not yet written)?
        local age=$(($(date +%s) - $(stat -c %Y "$l" 2>/dev/null || echo 0)))
        [ "$age" -lt 10 ] && return 0
    fi
    rm -rf "$l"
    return 1
}

_pg_reserve() {
    local port=$1 l="$PG_LOCK_DIR/port.$1"
    mkdir "$l" 2>/dev/null || return 1
    echo $$ >"$l/pid"
    return 0
}

pg_free_port() {
    _pg_lockdir || return 1
    local range=$((PG_PORT_MAX - PG_PORT_MIN + 1)) start i port
    start=$(((RANDOM * 32768 + RANDOM + $$) % range))
    for ((i = 0; i < range; i++)); do
        port=$((PG_PORT_MIN + (start + i) % range))
        [ -e "/tmp/.s.PGSQL.$port" ] && continue
        [ -e "/tmp/.s.PGSQL.$port.lock" ] && continue
        _pg_port_reserved "$port" && continue
        _pg_port_listening "$port" && continue
        _pg_reserve "$port" || continue
        # re-check after reserving: someone may have bound it meanwhile
        if _pg_port_listening "$port"; then
            rm -rf "$PG_LOCK_DIR/port.$port"
            continue
        fi
        printf '%s\n' "$port"
        return 0
    done
    _pg_err "no free port in $PG_PORT_MIN-$PG_PORT_MAX"
}

# Creates (once per machine, under flock) a freshly initdb'ed cluster to copy from.
_pg_template() {
    local key tpl
    key=$(printf '%s|%s|%s|%s' "$PG_BIN" "$(id -u)" "$PG_SUPERUSER" "${PG_INITDB_OPTS:-}" | md5sum | cut -c1-12)
    tpl="$PG_LOCK_DIR/template.$key"
    if [ ! -s "$tpl/PG_VERSION" ]; then
        (
            flock 9
            if [ ! -s "$tpl/PG_VERSION" ]; then
                rm -rf "$tpl.tmp"
                mkdir -p "$tpl.tmp" && _pg_own "$tpl.tmp" && chmod 700 "$tpl.tmp" || exit 1
                # shellcheck disable=SC2086
                if ! _pg_as "$PG_BIN/initdb" -D "$tpl.tmp" -U "$PG_SUPERUSER" --auth=trust -E UTF8 \
                    --locale=C.UTF-8 --no-sync ${PG_INITDB_OPTS:-} >"$tpl.log" 2>&1; then
                    cat "$tpl.log" >&2
                    exit 1
                fi
                mv "$tpl.tmp" "$tpl"
            fi
        ) 9>"$tpl.lock" || { _pg_err "initdb failed"; return 1; }
    fi
    printf '%s\n' "$tpl"
}

_pg_running_port() { # prints the port of the server running in DIR; 1 if none runs
    local dir=$1
    [ -f "$dir/postmaster.pid" ] || return 1
    _pg_as "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1 || return 1
    sed -n 4p "$dir/postmaster.pid"
}

pg_status() {
    local dir
    dir=$(_pg_abs "${1:?usage: pg_status DIR}")
    _pg_running_port "$dir"
}

pg_start() {
    local dir=${1:?usage: pg_start DIR PORT [ARCHIVE_DIR]} port=${2:?usage: pg_start DIR PORT [ARCHIVE_DIR]}
    local arch=${3:-} sock running tpl parent
    local -a opts
    _pg_ensure_installed || return 1
    _pg_lockdir || return 1
    dir=$(_pg_abs "$dir")
    [ -z "$arch" ] || arch=$(_pg_abs "$arch")
    sock=$(pg_sockdir "$dir")

    if running=$(_pg_running_port "$dir"); then
        [ "$running" = "$port" ] && return 0
        _pg_err "a server already runs in $dir on port $running, not $port"
        return 1
    fi

    parent=$(dirname "$dir")
    mkdir -p "$parent" || return 1
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
        _pg_err "user postgres cannot reach $parent (chmod 755 it and its parents, e.g. after mktemp -d, or use a dir under /tmp)"
        return 1
    fi
    if [ ! -s "$dir/PG_VERSION" ]; then
        if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
            _pg_err "$dir is neither empty nor a cluster"
            return 1
        fi
        tpl=$(_pg_template) || return 1
        rm -rf "$dir" && cp -a "$tpl" "$dir" || { _pg_err "cannot copy the template cluster to $dir"; return 1; }
    fi
    _pg_own "$dir" && chmod 700 "$dir" || return 1
    mkdir -p "$sock" && _pg_own "$sock" || return 1
    touch "$dir.log" && _pg_own "$dir.log" || return 1

    opts=(-p "$port" -k "$sock" -c listen_addresses=127.0.0.1 -c "fsync=${PG_FSYNC:-off}"
        -c "wal_level=${PG_WAL_LEVEL:-logical}" -c shared_preload_libraries=pg_stat_statements)
    if [ -n "$arch" ]; then
        mkdir -p "$arch" && _pg_own "$arch" || return 1
        opts+=(-c archive_mode=on -c archive_timeout=0
            -c "archive_command=${PG_ARCHIVE_COMMAND:-test ! -f $arch/%f && cp %p $arch/%f}")
    fi
    local o q=""
    for o in "${opts[@]}"; do q+=" $(printf '%q' "$o")"; done
    # PG_EXTRA_OPTS is appended verbatim, e.g. "-c max_wal_senders=4"
    q+=" ${PG_EXTRA_OPTS:-}"

    if ! _pg_as "$PG_BIN/pg_ctl" -D "$dir" -l "$dir.log" -o "$q" -w -t 60 start >/dev/null 2>"$dir.ctl.err"; then
        cat "$dir.ctl.err" >&2
        tail -20 "$dir.log" >&2
        rm -f "$dir.ctl.err"
        _pg_err "cannot start the server in $dir on port $port"
        return 1
    fi
    rm -f "$dir.ctl.err"
    if ! _pg_as "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30; then
        tail -20 "$dir.log" >&2
        _pg_err "server in $dir does not answer on port $port"
        return 1
    fi
    # the reservation (if we made one) now belongs to the server in DIR
    if [ -d "$PG_LOCK_DIR/port.$port" ] || mkdir "$PG_LOCK_DIR/port.$port" 2>/dev/null; then
        printf '%s\n' "$dir" >"$PG_LOCK_DIR/port.$port/dir"
    fi
    return 0
}

pg_stop() {
    local dir port
    dir=$(_pg_abs "${1:?usage: pg_stop DIR}")
    port=$(sed -n 4p "$dir/postmaster.pid" 2>/dev/null)
    if [ -f "$dir/postmaster.pid" ]; then
        if ! _pg_as "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null 2>&1; then
            _pg_as "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w -t 30 stop >/dev/null 2>&1
        fi
    fi
    if [ -n "$port" ] && [ "$(cat "$PG_LOCK_DIR/port.$port/dir" 2>/dev/null)" = "$dir" ]; then
        rm -rf "$PG_LOCK_DIR/port.$port"
    fi
    if [ -f "$dir/postmaster.pid" ] && _pg_running_port "$dir" >/dev/null; then
        _pg_err "server in $dir did not stop"
        return 1
    fi
    return 0
}

pg_destroy() {
    local dir
    dir=$(_pg_abs "${1:?usage: pg_destroy DIR}")
    pg_stop "$dir" || return 1
    rm -rf "$dir" "$(pg_sockdir "$dir")" "$dir.log"
}

pg_url() {
    local port=${1:?usage: pg_url PORT [DB]} db=${2:-postgres}
    printf 'postgresql://%s@127.0.0.1:%s/%s\n' "$PG_SUPERUSER" "$port" "$db"
}

pg_psql() {
    local port=${1:?usage: pg_psql PORT DB ARGS...} db=${2:?usage: pg_psql PORT DB ARGS...}
    shift 2
    PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d "$db" "$@"
}

pg_createdb() {
    local port=${1:?usage: pg_createdb PORT DB [OWNER]} db=${2:?usage: pg_createdb PORT DB [OWNER]} owner=${3:-}
    local exists
    exists=$(pg_psql "$port" postgres -Atc "select 1 from pg_database where datname = '${db//\'/\'\'}'") || return 1
    [ "$exists" = 1 ] && return 0
    pg_psql "$port" postgres -c "CREATE DATABASE \"${db//\"/\"\"}\"${owner:+ OWNER \"${owner//\"/\"\"}\"}"
}

# ---- CLI ----------------------------------------------------------------------------------
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    cmd=${1:-}
    shift || true
    case $cmd in
    start)
        [ $# -ge 2 ] || { echo "usage: $0 start DIR PORT [ARCHIVE_DIR]" >&2; exit 2; }
        pg_start "$@" || exit 1
        echo "postgres ready: $(pg_url "$2")  (socket dir $(pg_sockdir "$1"), log $(_pg_abs "$1").log)"
        echo "stop: bash $0 stop $(_pg_abs "$1")"
        ;;
    stop) pg_stop "${1:?usage: $0 stop DIR}" || exit 1 ;;
    destroy) pg_destroy "${1:?usage: $0 destroy DIR}" || exit 1 ;;
    status)
        if port=$(pg_status "${1:?usage: $0 status DIR}"); then echo "running on port $port"; else echo "not running"; exit 3; fi
        ;;
    free-port) pg_free_port || exit 1 ;;
    url) pg_url "$@" ;;
    psql) pg_psql "$@" ;;
    createdb) pg_createdb "$@" ;;
    *)
        echo "usage: $0 start DIR PORT [ARCHIVE_DIR] | stop DIR | destroy DIR | status DIR" >&2
        echo "       $0 free-port | url PORT [DB] | psql PORT DB [ARGS...] | createdb PORT DB [OWNER]" >&2
        exit 2
        ;;
    esac
fi
