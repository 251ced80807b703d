#!/bin/bash
# Point-in-time recovery from the web UI, against a real PostgreSQL 15 with WAL
# archiving: the Backups page shows the recoverable window the service reports,
# and a restore to a second picked before a table was dropped by mistake,
# started and followed in the browser, brings the table back with the rows
# committed before that second and none of those after it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"
. "$(dirname "$0")/lib_ui.sh"

# the server runs our binary as its archive_command: a copy it can reach
mkdir -p "$T/bin" && cp "$SM" "$T/bin/supamanager" && chmod 755 "$T/bin" "$T/bin/supamanager"
start_cluster src empty
pg_createdb "$PORT" proj || fail "createdb"
DATA=$T/pg-src
mkdir -p "$T/storage"
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
sm project add pitr1 --name "PITR app" --db-url "$(pg_url "$PORT" proj)" --storage-dir "$T/storage" \
  --owner user-owner 2>/dev/null || fail "project add"
out=$(sm pitr enable pitr1 --data-dir "$DATA" --stop-cmd "bash $SOURCE_ROOT/tests/lib/pg.sh stop $DATA" \
  --start-cmd "bash $SOURCE_ROOT/tests/lib/pg.sh start $DATA $PORT" --binary "$T/bin/supamanager" 2>&1) ||
  fail "pitr enable: $out"
q() { pg_psql "$PORT" proj -tAc "$1"; }

# rows to keep; the target: a whole second after their commit; then rows after it, and the mistake
q "CREATE TABLE orders (id serial PRIMARY KEY, item text)" &&
  q "INSERT INTO orders (item) SELECT 'kept ' || g FROM generate_series(1, 500) g" >/dev/null || fail "insert"
TARGET=$(q "SELECT to_char(date_trunc('second', clock_timestamp() AT TIME ZONE 'UTC') + interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS')")
sleep 1.5
q "INSERT INTO orders (item) SELECT 'lost ' || g FROM generate_series(1, 20) g" >/dev/null && q "DROP TABLE orders" ||
  fail "the mistake"
last=$(q "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 100); do
  [[ ! "$(q "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")" < "$last" ]] && break
  sleep 0.1
done
sm pitr push pitr1 2>/dev/null || fail "pitr push"
start_service

SHOTS=${BUILD_ROOT:-$T}/ui-screenshots
mkdir -p "$SHOTS" || fail "cannot make $SHOTS"
run_ui ui-pitr.mjs TARGET="$TARGET" SHOTS="$SHOTS" || fail "browser checks (service log: $T/serve.log)"
[ "$(q "SELECT count(*) FILTER (WHERE item LIKE 'kept %') || '/' || count(*) FROM orders")" = 500/500 ] ||
  fail "after the restore to $TARGET: $(q 'SELECT count(*) FROM orders' 2>&1)"
ok "the restore from the browser to $TARGET UTC brought back the 500 rows kept, none of the 20 after"
stop_service "$DAEMON" "$T/serve.log"
