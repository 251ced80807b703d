#!/bin/bash
# Point-in-time recovery benchmark (issue "point-in-time recovery"): supamanager
# beside pgBackRest on one PostgreSQL 15 cluster (pgbench data), in one run:
#   1. a full base backup: time and repository bytes
#   2. after a 1 % change: supamanager's next base backup (deduplicated) vs
#      pgBackRest's incremental backup: time and bytes added
#   3. WAL archiving throughput: K finished 16 MiB segments archived one by one
#      as archive_command does (wal-push into the spool, then the move into the
#      repository) vs `pgbackrest archive-push` (synchronous, its default)
#   4. a restore to a point in time (stop, restore, replay, promote, ready)
# Both archive every WAL file during the run (archive_command runs both).
#
#   bench/pitr.sh [PGBENCH_SCALE]   (default 60: ~900 MB of tables)
#
# Writes bench/results/<date>-pitr.md. A benchmark: never part of the tests.
set -euo pipefail
BENCH_HOME=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$BENCH_HOME/.." && pwd)
. "$REPO_ROOT/tests/lib/pg.sh"
SCALE=${1:-60}
K=${BENCH_WAL_SEGMENTS:-48}
SM_BUILD=${SUPAMANAGER:-$REPO_ROOT/build/supamanager}
W=${BENCH_DIR:-/var/tmp/supamanager-bench}/pitr-work
OUT=$BENCH_HOME/results/$(date -u +%Y-%m-%dT%H%M%SZ)-pitr.md
export ENCRYPTION_SECRET=bench-pitr-secret SUPAMANAGER_HOME=$W/home SUPAMANAGER_LOG=warn
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$SM_BUILD" ] || die "no binary at $SM_BUILD"
command -v pgbackrest >/dev/null || die "apt-get install pgbackrest"
rm -rf "$W" && mkdir -p "$W/bin" "$W/storage" && chmod 755 "$W" "$W/bin"
cp "$SM_BUILD" "$W/bin/supamanager" && chmod 755 "$W/bin/supamanager"
SM=$W/bin/supamanager
PORT=$(pg_free_port)
DATA=$W/pg
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
mkdir -p "$W/pgbr" && chown postgres:postgres "$W/pgbr"
BR=(pgbackrest --stanza=bench --repo1-path="$W/pgbr" --pg1-path="$DATA" --pg1-port="$PORT"
  --pg1-socket-path="$(pg_sockdir "$DATA")" --log-level-console=warn --log-path="$W/pgbr"
  --lock-path="$W/pgbr")
br() { (cd / && runuser -u postgres -- "${BR[@]}" "$@"); }
cleanup() { pg_destroy "$DATA" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT

# timed CMD...: wall seconds into T_S
timed() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); T_S=$(printf '%.2f' "$(echo "$t1 - $t0" | bc)"); }
q() { pg_psql "$PORT" bench -tAc "$1"; }

say "cluster and pgbench -i -s $SCALE"
PG_EXTRA_OPTS="-c wal_keep_size=4GB -c max_wal_size=4GB" pg_start "$DATA" "$PORT" >/dev/null
pg_createdb "$PORT" bench
(cd / && runuser -u postgres -- "$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PORT" bench) >/dev/null 2>&1
DBSIZE=$(q "SELECT pg_database_size('bench')")
"$SM" project add bench --name Bench --db-url "$(pg_url "$PORT" bench)" --storage-dir "$W/storage" >/dev/null 2>&1
"$SM" pitr enable bench --data-dir "$DATA" --stop-cmd "bash $REPO_ROOT/tests/lib/pg.sh stop $DATA" \
  --start-cmd "PG_EXTRA_OPTS='-c wal_keep_size=4GB -c max_wal_size=4GB' bash $REPO_ROOT/tests/lib/pg.sh start $DATA $PORT" \
  --binary "$SM" --no-base-backup >/dev/null 2>&1 || die "pitr enable"
OURS=$(q "SHOW archive_command")
br stanza-create >/dev/null
q "ALTER SYSTEM SET archive_command = '$OURS && pgbackrest --stanza=bench --repo1-path=$W/pgbr --pg1-path=$DATA --log-path=$W/pgbr --lock-path=$W/pgbr --log-level-console=warn archive-push %p'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
repo_bytes() { du -sb "$SUPAMANAGER_HOME/backups/bench" | cut -f1; }
br_bytes() { du -sb "$W/pgbr/backup" | cut -f1; }

say "1. full base backups"
timed "$SM" pitr base-backup bench --json >"$W/base1.json"
SM_FULL_S=$T_S
SM_FULL_B=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored"])' "$W/base1.json")
timed br backup --type=full --start-fast --archive-timeout=120 --repo1-retention-full=9
BR_FULL_S=$T_S
BR_FULL_B=$(br_bytes)

say "2. a 1 % change, then the next backup"
q "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0" >/dev/null
q "CHECKPOINT" >/dev/null
timed "$SM" pitr base-backup bench --json >"$W/base2.json"
SM_INC_S=$T_S
SM_INC_B=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored"])' "$W/base2.json")
timed br backup --type=incr --start-fast --archive-timeout=120 --repo1-retention-full=9
BR_INC_S=$T_S
BR_INC_B=$(( $(br_bytes) - BR_FULL_B ))

say "3. WAL archiving throughput ($K segments)"
first=$(q "SELECT pg_walfile_name(pg_current_wal_lsn())")
q "CREATE TABLE walfill (id int, pad text)" >/dev/null
until [ "$(q "SELECT count(*) FROM pg_ls_waldir() WHERE name > '$first' AND name ~ '^[0-9A-F]{24}$'")" -ge $((K + 2)) ]; do
  q "INSERT INTO walfill SELECT g, md5(g::text) || repeat(md5(random()::text), 6) FROM generate_series(1, 200000) g" >/dev/null
done
q "SELECT pg_switch_wal()" >/dev/null
mkdir -p "$W/segs" "$W/tspool"
for f in $(q "SELECT name FROM pg_ls_waldir() WHERE name > '$first' AND name ~ '^[0-9A-F]{24}$' ORDER BY name LIMIT $K"); do
  cp "$DATA/pg_wal/$f" "$W/segs/"
done
N=$(ls "$W/segs" | wc -l)
chown -R postgres:postgres "$W/segs" "$W/tspool"
sync
timed bash -c "for f in $W/segs/*; do runuser -u postgres -- $SM wal-push --spool $W/tspool \$f || exit 1; done"
SM_PUSH_S=$T_S
args=()
for f in "$W"/tspool/*; do args+=("wal-$(basename "$f")=$f"); done
"$SM" repo init --repo "$W/walrepo" >/dev/null 2>&1
timed "$SM" repo backup --repo "$W/walrepo" "${args[@]}" >/dev/null 2>&1
SM_MOVE_S=$T_S
SM_WAL_B=$(du -sb "$W/walrepo" | cut -f1)
mkdir -p "$W/pgbr2" && chown postgres:postgres "$W/pgbr2"
BR2=(pgbackrest --stanza=bench --repo1-path="$W/pgbr2" --pg1-path="$DATA" --log-level-console=warn
  --log-path="$W/pgbr2" --lock-path="$W/pgbr2")
(cd / && runuser -u postgres -- "${BR2[@]}" --pg1-port="$PORT" --pg1-socket-path="$(pg_sockdir "$DATA")" stanza-create) >/dev/null
timed bash -c "cd / && for f in $W/segs/*; do runuser -u postgres -- ${BR2[*]} archive-push \$f || exit 1; done"
BR_PUSH_S=$T_S
BR_WAL_B=$(du -sb "$W/pgbr2/archive" | cut -f1)

say "4. restore to a point in time"
q "CREATE TABLE marker AS SELECT 1 AS x" >/dev/null
sleep 1.2
TARGET=$(q "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.2
q "DROP TABLE marker" >/dev/null
q "SELECT pg_switch_wal()" >/dev/null
sleep 3
timed "$SM" restore bench --target-time "$TARGET" --yes --json >"$W/restore.json"
SM_RESTORE_S=$T_S
SM_DOWN_S=$(python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["downtime_s"])' "$W/restore.json")
[ "$(q 'SELECT count(*) FROM marker')" = 1 ] || die "supamanager's restore lost the marker"
q "DROP TABLE marker" >/dev/null
q "SELECT pg_switch_wal()" >/dev/null
sleep 3
restore_br() {
  bash "$REPO_ROOT/tests/lib/pg.sh" stop "$DATA" >/dev/null
  (cd / && runuser -u postgres -- pgbackrest --stanza=bench --repo1-path="$W/pgbr" --pg1-path="$DATA" \
    --log-level-console=warn --log-path="$W/pgbr" --lock-path="$W/pgbr" restore --delta --type=time "--target=$TARGET" --target-action=promote --target-timeline=current) >/dev/null
  PG_EXTRA_OPTS="-c wal_keep_size=4GB -c max_wal_size=4GB" bash "$REPO_ROOT/tests/lib/pg.sh" start "$DATA" "$PORT" >/dev/null
  until [ "$(q 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.2; done
}
timed restore_br
BR_RESTORE_S=$T_S
[ "$(q 'SELECT count(*) FROM marker')" = 1 ] || die "pgBackRest's restore lost the marker"

mb() { echo "scale=1; $1 / 1048576" | bc; }
rate() { printf '%.1f' "$(echo "scale=3; $N / $1" | bc)"; }
mkdir -p "$BENCH_HOME/results"
cat >"$OUT" <<EOF
# Point-in-time recovery: supamanager vs pgBackRest

- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)
- PostgreSQL $(q "SHOW server_version"), pgbench scale $SCALE (database $(mb "$DBSIZE") MiB)
- supamanager $("$SM" version | cut -d' ' -f2) (zstd level 2, AES-256-GCM); pgBackRest $(pgbackrest version | cut -d' ' -f2) (defaults: gz level 6, no encryption)

| | supamanager | pgBackRest |
|---|---|---|
| full base backup: time | ${SM_FULL_S} s | ${BR_FULL_S} s |
| full base backup: repository bytes | $(mb "$SM_FULL_B") MiB | $(mb "$BR_FULL_B") MiB |
| after 1 % of rows updated: time | ${SM_INC_S} s (a new deduplicated base backup) | ${BR_INC_S} s (incremental) |
| after 1 % of rows updated: bytes added | $(mb "$SM_INC_B") MiB | $(mb "$BR_INC_B") MiB |
| WAL archiving, $N segments one by one: archive_command | ${SM_PUSH_S} s ($(rate "$SM_PUSH_S") seg/s, wal-push into the spool) | ${BR_PUSH_S} s ($(rate "$BR_PUSH_S") seg/s, archive-push) |
| WAL into the repository | ${SM_MOVE_S} s (the spool's move, one batch) | (included above) |
| WAL archive bytes for $N segments | $(mb "$SM_WAL_B") MiB | $(mb "$BR_WAL_B") MiB |
| restore to a point in time (stop, restore, replay, promote) | ${SM_RESTORE_S} s | ${BR_RESTORE_S} s (--delta) |
| of which the database was down (stop to promoted) | ${SM_DOWN_S} s | ${BR_RESTORE_S} s (it stops first) |
EOF
cat "$OUT"
