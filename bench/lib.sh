# shellcheck shell=bash
# Shared helpers for the benchmark scripts (sourced, not executed).
# PostgreSQL handling follows the project's throwaway-cluster recipe: the
# server refuses to run as root, so initdb/pg_ctl run as "postgres" (after
# cd /), settings are passed with -o so they are not stored in the data dir,
# and the unix socket lives beside it in DIR/pg.sock.

BENCH_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_PG_PORT=${BENCH_PG_PORT:-55811}
export LC_ALL=C

# Row counts at SCALE 1 (about 1 GB of plain pg_dump output in total).
declare -A BENCH_ROWS=([users]=250000 [orders]=1500000 [posts]=120000 [events]=650000 [attachments]=14000)
# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_TABLES=(users orders posts events attachments)
# shellcheck disable=SC2034
declare -A BENCH_QTABLE=([users]=auth.users [orders]=public.orders [posts]=public.posts
	[events]=public.events [attachments]=public.attachments)

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

# Compile bench/benchgen.c into DIR/bin/benchgen unless an up-to-date build is there.
bench_build_gen() {
	local dir=$1 src=$BENCH_HOME/benchgen.c sum
	command -v cc >/dev/null || die "a C compiler (cc) is needed to build benchgen (apt-get install gcc)"
	sum=$(sha256sum "$src" | cut -c1-16)
	mkdir -p "$dir/bin"
	if [ ! -x "$dir/bin/benchgen" ] || [ "$(cat "$dir/bin/benchgen.src" 2>/dev/null)" != "$sum" ]; then
		cc -O2 -o "$dir/bin/benchgen.tmp" "$src" -lm || die "cannot build benchgen"
		mv "$dir/bin/benchgen.tmp" "$dir/bin/benchgen"
		echo "$sum" >"$dir/bin/benchgen.src"
	fi
	chmod 755 "$dir/bin" "$dir/bin/benchgen"
}

# The postgres OS user must reach DIR (COPY FROM PROGRAM runs DIR/bin/benchgen as postgres).
pg_check_dir() {
	local dir=$1
	case $dir in *[[:space:]\'\"\\]*) die "dataset dir must not contain spaces or quotes: $dir" ;; esac
	runuser -u postgres -- test -x "$dir" ||
		die "user postgres cannot traverse $dir: use a dir under /var/tmp or /tmp"
}

as_pg() { (cd / && runuser -u postgres -- "$@"); }

pg_running() { [ -f "$1/pg/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$1/pg" status >/dev/null 2>&1; }

# pg_start DIR MODE: MODE=load (fast, non-durable bulk load) or run (default durability).
pg_start() {
	local dir=$1 mode=${2:-run} opts
	[ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 server binaries not found in $PG_BIN (apt-get install postgresql-15)"
	mkdir -p "$dir/pg" "$dir/pg.sock"
	chown postgres:postgres "$dir/pg" "$dir/pg.sock"
	chmod 700 "$dir/pg"
	if [ ! -s "$dir/pg/PG_VERSION" ]; then
		as_pg "$PG_BIN/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
			>"$dir/pg.initdb.log" 2>&1 || { cat "$dir/pg.initdb.log" >&2; die "initdb failed"; }
	fi
	if pg_running "$dir"; then
		say "postgres already running in $dir/pg"
		return 0
	fi
	opts="-p $BENCH_PG_PORT -k $dir/pg.sock -c listen_addresses=127.0.0.1 -c autovacuum=off"
	opts="$opts -c max_parallel_workers_per_gather=0 -c synchronize_seqscans=off"
	if [ "$mode" = load ]; then
		opts="$opts -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c wal_level=minimal"
		opts="$opts -c max_wal_senders=0 -c max_wal_size=8GB -c maintenance_work_mem=512MB"
	fi
	as_pg "$PG_BIN/pg_ctl" -D "$dir/pg" -l "$dir/pg/server.log" -o "$opts" -w -t 60 start >/dev/null ||
		{ tail -20 "$dir/pg/server.log" >&2; die "postgres did not start (port $BENCH_PG_PORT busy? set BENCH_PG_PORT)"; }
}

pg_stop() {
	local dir=$1
	if [ -f "$dir/pg/postmaster.pid" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$dir/pg" -m fast -w -t 120 stop >/dev/null 2>&1 || true
	fi
}

# Port of the running cluster (line 4 of postmaster.pid).
pg_port() { sed -n 4p "$1/pg/postmaster.pid"; }

# psql_ DIR DB [psql args...]
psql_() {
	local dir=$1 db=$2
	shift 2
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/pg.sock" -p "$(pg_port "$dir")" -U postgres -d "$db" "$@"
}

# pg_dump_ DIR DB [pg_dump args...]
pg_dump_() {
	local dir=$1 db=$2
	shift 2
	"$PG_BIN/pg_dump" -h "$dir/pg.sock" -p "$(pg_port "$dir")" -U postgres "$@" "$db"
}

# Row count for SCALE (at least 20 rows).
bench_rows() { awk -v n="${BENCH_ROWS[$1]}" -v s="$2" 'BEGIN { r = int(n * s + 0.5); if (r < 20) r = 20; print r }'; }
