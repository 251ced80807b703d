#!/bin/bash
# Generate the deterministic benchmark dataset.
#
#   bench/gen-dataset.sh DIR [SCALE]
#
# SCALE (float, default 1.0): 1.0 = about 1 GB of plain pg_dump output plus
# about 1 GiB of storage files; scripts are tested with e.g. 0.02.
#
# Creates (everything under DIR is replaced):
#   DIR/bin/benchgen      the generator (built from bench/benchgen.c)
#   DIR/pg, DIR/pg.sock   a PostgreSQL 15 cluster (port $BENCH_PG_PORT, default 55811)
#                         with database "bench" and its untouched copy "bench_pristine"
#                         (reset with: DROP DATABASE bench; CREATE DATABASE bench TEMPLATE bench_pristine)
#   DIR/files/            storage tree: a few thousand files in nested dirs, 60 % of the
#                         bytes incompressible, 30 % of files with xattr user.supabase.content-type
#   DIR/dataset.env       SCALE and row counts
# BENCH_GEN_VACUUM=1 vacuums the loaded tables (see below for what that changes).
# The cluster is stopped when the script exits.  Same DIR + SCALE => same bytes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
DIR=$(abspath "$1")
SCALE=${2:-1}
awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 100) }' || die "bad SCALE $SCALE"
[ "$(id -u)" = 0 ] || die "run as root (postgres is started through runuser -u postgres)"

mkdir -p "$DIR"
chmod 755 "$DIR"
pg_check_dir "$DIR"
pg_stop "$DIR"
rm -rf "$DIR/pg" "$DIR/pg.sock" "$DIR/files" "$DIR/dataset.env"
bench_build_gen "$DIR"
GEN=$DIR/bin/benchgen

cleanup() { pg_stop "$DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$EPOCHREALTIME
say "generating storage files (scale $SCALE) in $DIR/files"
"$GEN" files "$DIR/files" "$SCALE" 2>"$DIR/files.log" &
files_pid=$!

say "starting PostgreSQL (bulk-load settings) on port $BENCH_PG_PORT"
pg_start "$DIR" load
psql_ "$DIR" postgres -c "CREATE DATABASE bench"

declare -A DDL=(
	[users]="CREATE TABLE auth.users (
		id uuid NOT NULL, email text, encrypted_password text, email_confirmed_at timestamptz,
		phone text, created_at timestamptz, updated_at timestamptz, last_sign_in_at timestamptz,
		raw_app_meta_data jsonb, raw_user_meta_data jsonb, role text)"
	[orders]="CREATE TABLE public.orders (
		id bigint NOT NULL, user_id uuid NOT NULL, status text NOT NULL, currency char(3) NOT NULL,
		amount numeric(12,2) NOT NULL, tax numeric(12,2) NOT NULL, items integer NOT NULL,
		created_at timestamptz NOT NULL, note text)"
	[posts]="CREATE TABLE public.posts (
		id bigint NOT NULL, author_id uuid NOT NULL, title text NOT NULL, slug text NOT NULL,
		body text NOT NULL, published boolean NOT NULL, created_at timestamptz NOT NULL,
		updated_at timestamptz NOT NULL)"
	[events]="CREATE TABLE public.events (
		id bigint NOT NULL, user_id uuid, type text NOT NULL, payload jsonb NOT NULL,
		created_at timestamptz NOT NULL)"
	[attachments]="CREATE TABLE public.attachments (
		id bigint NOT NULL, owner uuid NOT NULL, name text NOT NULL, mime text NOT NULL,
		size integer NOT NULL, data bytea NOT NULL, created_at timestamptz NOT NULL)"
)
# Every table is created and loaded in one
# transaction so that, with wal_level=minimal, COPY skips the WAL.
psql_ "$DIR" bench -c "CREATE SCHEMA auth"
NUSERS=$(bench_rows users "$SCALE")
load_table() {
	local t=$1 n
	n=$(bench_rows "$t" "$SCALE")
	psql_ "$DIR" bench -1 -c "${DDL[$t]}" \
		-c "COPY ${BENCH_QTABLE[$t]} FROM PROGRAM '$GEN rows $t 1 $n $NUSERS'"
}
say "loading tables (2 at a time)"
(load_table posts && load_table users && load_table events) &
lp1=$!
(load_table attachments && load_table orders) &
lp2=$!
wait $lp1 || die "loading posts/users/events failed"
wait $lp2 || die "loading attachments/orders failed"

say "adding keys and indexes"
psql_ "$DIR" bench <<'SQL'
ALTER TABLE auth.users ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX users_email_key ON auth.users (email);
ALTER TABLE public.orders ADD PRIMARY KEY (id);
ALTER TABLE public.posts ADD PRIMARY KEY (id);
ALTER TABLE public.events ADD PRIMARY KEY (id);
ALTER TABLE public.attachments ADD PRIMARY KEY (id);
CREATE INDEX orders_user_id_idx ON public.orders (user_id);
CREATE UNIQUE INDEX posts_slug_key ON public.posts (slug);
CREATE INDEX posts_author_id_idx ON public.posts (author_id);
CREATE INDEX events_user_created_idx ON public.events (user_id, created_at);
ALTER TABLE public.orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id);
ALTER TABLE public.posts ADD CONSTRAINT posts_author_id_fkey FOREIGN KEY (author_id) REFERENCES auth.users (id);
ALTER TABLE public.events ADD CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id);
ALTER TABLE public.attachments ADD CONSTRAINT attachments_owner_fkey FOREIGN KEY (owner) REFERENCES auth.users (id);
SQL
# No VACUUM by default: without a free-space map PostgreSQL puts rows inserted later at the
# end of each table, so an append shows up at the end of each table's COPY block in the dump.
# After a VACUUM (BENCH_GEN_VACUUM=1) new rows are scattered into the leftover space of old
# pages, which turns an "append" into a change spread over the whole dump.
if [ "${BENCH_GEN_VACUUM:-0}" = 1 ]; then
	psql_ "$DIR" bench -c "VACUUM (FREEZE, ANALYZE)"
else
	psql_ "$DIR" bench -c "ANALYZE"
fi
# read everything once so the hint bits are set before the template copy (keeps the
# benchmark's pg_dump runs from writing them back)
pg_dump_ "$DIR" bench >/dev/null
psql_ "$DIR" postgres -c "CHECKPOINT" -c "CREATE DATABASE bench_pristine TEMPLATE bench STRATEGY FILE_COPY"
DBSIZE=$(psql_ "$DIR" postgres -At -c "SELECT pg_database_size('bench')")

wait $files_pid || { cat "$DIR/files.log" >&2; die "file generation failed"; }
pg_stop "$DIR"
sync

{
	echo "SCALE=$SCALE"
	echo "GEN_SRC=$(cat "$DIR/bin/benchgen.src")"
	for t in "${BENCH_TABLES[@]}"; do echo "ROWS_$t=$(bench_rows "$t" "$SCALE")"; done
	echo "DB_BYTES=$DBSIZE"
	echo "VACUUM=${BENCH_GEN_VACUUM:-0}"
} >"$DIR/dataset.env"
say "$(cat "$DIR/files.log")"
say "database bench: $((DBSIZE / 1000000)) MB on disk; dataset ready in $DIR ($(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s)"
