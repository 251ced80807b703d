#!/bin/bash
# Point-in-time recovery against a real PostgreSQL 15 with WAL archiving:
# rows with known commit times over several WAL segments, a table dropped by
# mistake, a restore to one second before the drop (every row committed
# before the target is there, none after), a second restore on the new
# timeline, a restore to an LSN before the earlier restores, base-backup
# deduplication and retention, a missing WAL segment found by `pitr check`
# and refused by restore (nothing changed), wal-push idempotent / conflicting
# / killed with -9 (never acknowledged without being stored).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

# the server runs our binary as archive_command: a copy it can reach
mkdir -p "$T/bin" && cp "$SM" "$T/bin/supamanager" && chmod 755 "$T/bin" "$T/bin/supamanager"
start_cluster src empty
pg_createdb "$PORT" proj || fail "createdb"
URL=$(pg_url "$PORT" proj)
DATA=$T/pg-src
mkdir -p "$T/storage"
sm project add pitr1 --name "PITR app" --db-url "$URL" --storage-dir "$T/storage" 2>/dev/null ||
  fail "project add"
q() { pg_psql "$PORT" proj -tAc "$1"; }
STOP="bash $SOURCE_ROOT/tests/lib/pg.sh stop $DATA"
START="bash $SOURCE_ROOT/tests/lib/pg.sh start $DATA $PORT"

expect_fail 2 "pitr enable needs the data directory, a stop command and a start command" -- \
  sm pitr enable pitr1 --data-dir "$DATA"
expect_fail 3 "'$T/nowhere' is not a PostgreSQL data directory" -- \
  sm pitr enable pitr1 --data-dir "$T/nowhere" --stop-cmd "$STOP" --start-cmd "$START"
expect_fail 2 "point-in-time recovery is not enabled for project 'pitr1'" -- sm pitr base-backup pitr1
ok "pitr enable checks its input"

out=$(sm pitr enable pitr1 --data-dir "$DATA" --stop-cmd "$STOP" --start-cmd "$START" \
  --binary "$T/bin/supamanager" --keep-bases 2 2>&1) || fail "pitr enable: $out"
grep -q "WAL archiving is on" <<<"$out" || fail "enable said: $out"
[ "$(q 'SHOW archive_mode')" = on ] || fail "archive_mode is not on"
q 'SHOW archive_command' | grep -q "wal-push --spool" || fail "archive_command not set"
ok "pitr enable turns archiving on (restarting the server) and takes a first base backup"

# an archive_command that fails (the spool as the server sees it is missing): enable fails at
# its check and puts the working settings back
expect_fail 3 "the server cannot run '$T/bin/missing'" -- sm pitr enable pitr1 --data-dir "$DATA" \
  --stop-cmd "$STOP" --start-cmd "$START" --binary "$T/bin/missing" --no-base-backup
expect_fail 1 "the server's archive_command failed on" -- sm pitr enable pitr1 --data-dir "$DATA" \
  --stop-cmd "$STOP" --start-cmd "$START" --binary "$T/bin/supamanager" --db-spool-dir "$T/nowhere" \
  --no-base-backup
q 'SHOW archive_command' | grep -q "$DATA.wal-spool" || fail "archive_command not put back: $(q 'SHOW archive_command')"
sm pitr status pitr1 --json | grep -q "\"db_spool_dir\": \"$DATA.wal-spool\"" || fail "the settings were not put back"
ok "an archive_command that fails is caught by enable, which puts the previous settings back"

# switch to a new WAL segment, wait until the server has archived it, move the spool into the repository
switch_push() {
  local name i last
  name=$(q "SELECT pg_walfile_name(pg_switch_wal())")
  for i in $(seq 100); do
    last=$(q "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    [[ ${#last} = 24 && ! "$last" < "$name" ]] && break
    sleep 0.1
  done
  sm pitr push pitr1 2>/dev/null || fail "pitr push"
  echo "$name"
}
q "SELECT txid_current()" >/dev/null
first=$(sm pitr status pitr1 --json | python3 -c '
import json, sys
hi, lo = json.load(sys.stdin)["base_backups"][0]["start_lsn"].split("/")
seg = (int(hi, 16) << 32 | int(lo, 16)) >> 24
print("00000001%08X%08X" % (seg >> 8, seg & 0xff))')
switch_push >/dev/null
sm wal-fetch --project pitr1 "$first" "$T/first" || fail "the first base backup's WAL segment $first is not archived"

# batches of rows, a second apart, over several WAL segments
q "CREATE TABLE t (id serial PRIMARY KEY, batch int, pad text)" || fail "create"
declare -A AT
batch() { # N: insert 3000 rows in one transaction, remember the time after its commit
  q "INSERT INTO t (batch, pad) SELECT $1, repeat(md5(g::text), 8) FROM generate_series(1, 3000) g" >/dev/null ||
    fail "insert $1"
  AT[$1]=$(q "SELECT clock_timestamp()")
  sleep 1.2
}
batch 1
batch 2
LSN2=$(q "SELECT pg_current_wal_lsn()")
q "SELECT pg_switch_wal()" >/dev/null
batch 3
base2=$(sm pitr base-backup pitr1 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["id"], d["size"], d["stored"])') ||
  fail "second base backup"
batch 4
q "SELECT pg_switch_wal()" >/dev/null
batch 5
batch 6
q "SELECT pg_switch_wal()" >/dev/null
sleep 1
DROP_AT=$(q "SELECT clock_timestamp()")
q "DROP TABLE t" || fail "drop"
counts() { q "SELECT string_agg(batch || ':' || n, ',' ORDER BY batch) FROM (SELECT batch, count(*) n FROM t GROUP BY batch) x"; }
TARGET=$(python3 -c "
from datetime import datetime, timedelta
print((datetime.fromisoformat('$DROP_AT'.replace(' ', 'T')) - timedelta(seconds=1)).isoformat(sep=' '))")

read -r bid bsize bstored <<<"$base2"
[ "$bstored" -lt $((bsize / 3)) ] || fail "the second base backup is not deduplicated: $bstored of $bsize bytes stored"
ok "a second base backup stores only what changed ($bstored of $bsize bytes)"

st=$(sm pitr status pitr1 --json) || fail "status"
python3 -c '
import json, sys
s = json.loads(sys.argv[1])
assert s["enabled"] and s["earliest"] and s["latest"], s
assert len(s["base_backups"]) == 2 and s["wal_files"] >= 3 and not s["gaps"], s' "$st" ||
  fail "status: $st"
sm pitr check pitr1 >/dev/null || fail "pitr check with a complete archive"
ok "status shows the recoverable window; check finds no gap"

# 1. one second before the drop: every batch is there
out=$(sm restore pitr1 --target-time "$TARGET" --yes 2>&1) || fail "restore to $TARGET: $out"
grep -q "now on timeline 2" <<<"$out" || fail "restore said: $out"
[ "$(counts)" = "1:3000,2:3000,3:3000,4:3000,5:3000,6:3000" ] || fail "after restore to $TARGET: $(counts)"
[ "$(q 'SELECT pg_is_in_recovery()')" = f ] || fail "still in recovery"
q "SHOW restore_command" | grep -q supamanager && fail "restore_command left behind"
ls -d "$DATA".smr-* 2>/dev/null && fail "staging directories left behind"
ok "restore to one second before the drop brings every row back (timeline 2)"

# 2. new rows on timeline 2, then a restore to a time between them
batch 7
T7=$(python3 -c "
from datetime import datetime, timedelta
print((datetime.fromisoformat('${AT[7]}'.replace(' ', 'T')) + timedelta(seconds=0.5)).isoformat(sep=' '))")
batch 8
q "SELECT pg_switch_wal()" >/dev/null
out=$(sm restore pitr1 --target-time "$T7" --yes 2>&1) || fail "restore to $T7: $out"
[ "$(counts)" = "1:3000,2:3000,3:3000,4:3000,5:3000,6:3000,7:3000" ] || fail "after restore to $T7: $(counts)"
ok "a second restore to a time on the new timeline: batch 7 there, batch 8 not"

# 3. to an LSN before both restores (the oldest base backup is picked)
out=$(sm restore pitr1 --target-lsn "$LSN2" --yes --json 2>&1) || fail "restore to $LSN2: $out"
[ "$(counts)" = "1:3000,2:3000" ] || fail "after restore to $LSN2: $(counts)"
# the report: the database was down for part of the restore only (the base
# and the WAL archived so far were staged while it ran)
python3 -c '
import json, sys
d = json.loads(sys.argv[1][sys.argv[1].index("{"):])
assert d["wal_files"] >= 3 and d["timeline"] == 4, d
assert 0 < d["downtime_s"] < d["duration_s"], d' "$out" || fail "restore report: $out"
ok "restore to an LSN before the earlier restores: batches 1 and 2 only"

# 3b. a time that lies only on a timeline later restores left behind (T7 was on timeline 2;
# timelines 3 and 4 branched off elsewhere): the restore follows the timeline the server was
# on at that time, not the newest (whose path would stop at its branch point, batches 1-2)
out=$(sm restore pitr1 --target-time "$T7" --yes --json 2>&1) || fail "restore to $T7 again: $out"
[ "$(counts)" = "1:3000,2:3000,3:3000,4:3000,5:3000,6:3000,7:3000" ] ||
  fail "after restoring to $T7 from timeline 4: $(counts)"
python3 -c '
import json, sys
d = json.loads(sys.argv[1][sys.argv[1].index("{"):])
assert d["timeline"] == 5, d' "$out" || fail "restore report: $out"
ok "a time on a timeline that later restores left behind is restored from that timeline (batches 1-7, now timeline 5)"

# 4. the API: the window, WAL moved into the repository by the service on its own, a restore job
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
start_service
batch 9
AFTER9=$(python3 -c "
from datetime import datetime, timedelta, timezone
t = datetime.fromisoformat('${AT[9]}'.replace(' ', 'T')) + timedelta(seconds=0.5)
print(t.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))")
batch 10
last=$(q "SELECT pg_walfile_name(pg_switch_wal())")
PYTHONPATH="$(dirname "$0")" API=$API LAST=$last AFTER9=$AFTER9 /usr/bin/python3 - <<'PY' || fail "API checks (service log: $T/serve.log)"
import os, sys, time
from apiclient import Api, token
api = Api(int(os.environ["API"]), token(os.environ["JWT_SECRET"], "service_role"))
def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
deadline = time.time() + 60
while True:
    st, w, _, _ = api.get("/platform/projects/pitr1/pitr")
    check(st == 200 and w["enabled"] and w["earliest"] and w["latest"], "GET /pitr: %s %s" % (st, w))
    if w["spool_pending"] == 0 and w["last_archived_at"] and w["latest"] >= os.environ["AFTER9"][:19] + "Z":
        break
    check(time.time() < deadline, "the service did not move %s into the repository: %s" % (os.environ["LAST"], w))
    time.sleep(0.3)
check("settings" not in w and w["lag_seconds"] == w["archive_lag_s"] and w["gaps"] == [], "window: %s" % w)
print("ok - GET /pitr: the window reaches the newest WAL, moved into the repository by the service")
for body, part in (({}, "give one of target_time"), ({"target_time": "soon"}, "cannot read the target time 'soon'"),
                   ({"target_time": 5}, "must be strings")):
    st, doc, _, _ = api.post("/platform/projects/pitr1/pitr/restore", body)
    check(st == 400 and part in doc["message"], "bad restore body %s: %s %s" % (body, st, doc))
st, doc, _, _ = api.post("/platform/projects/pitr1/pitr/restore", {"target_time": os.environ["AFTER9"]})
check(st == 202 and doc["job_id"], "POST /pitr/restore: %s %s" % (st, doc))
job = api.wait_job(doc["job_id"], timeout=300)
check(job["status"] == "COMPLETED" and job["progress"] == 100 and job["result"]["timeline"] >= 5, "restore job: %s" % job)
print("ok - POST /pitr/restore runs the restore as a job to COMPLETED; bad bodies get 400 with the reason")
PY
[ "$(counts)" = "1:3000,2:3000,3:3000,4:3000,5:3000,6:3000,7:3000,9:3000" ] || fail "after the API restore to $AFTER9: $(counts)"
ok "the API restore brought batch 9 back, not batch 10"
stop_service "$DAEMON" "$T/serve.log"

# the service takes a base backup when the newest is older than the interval (24 h): a day later
nb() { sm pitr status pitr1 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["base_backups"]))'; }
echo $(( $(date +%s) + 25 * 3600 )) >"$T/now"
SUPAMANAGER_NOW=@$T/now start_service
for _ in $(seq 300); do
  [ "$(sm pitr status pitr1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["base_backups"][-1]["finished_at"] > sys.argv[1])' "$(date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ)")" = True ] && break
  sleep 0.2
done
[ "$(sm pitr status pitr1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["base_backups"][-1]["finished_at"] > sys.argv[1])' "$(date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ)")" = True ] ||
  fail "no scheduled base backup a day later: $(tail -5 "$T/serve.log")"
stop_service "$DAEMON" "$T/serve.log"
ok "the service takes a base backup when the newest is a day old"

# a time before the first base backup is refused, the future too
expect_fail 2 "is before the earliest restorable point" -- sm restore pitr1 --target-time "2001-01-01 00:00:00+00" --yes
expect_fail 2 "is in the future" -- sm restore pitr1 --target-time "2099-01-01 00:00:00Z" --yes
expect_fail 2 "cannot read the target time 'yesterday'" -- sm restore pitr1 --target-time yesterday --yes
ok "targets outside the window are refused clearly"

# retention: a third base backup drops the oldest (keep 2) and the WAL only it needed
before=$(sm pitr status pitr1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["wal_files"])')
sm pitr base-backup pitr1 >/dev/null 2>&1 || fail "third base backup"
after=$(sm pitr status pitr1 --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(len(s["base_backups"]), s["wal_files"])')
read -r nb nw <<<"$after"
[ "$nb" = 2 ] || fail "retention: $nb base backups"
expect_fail 3 "WAL file $first is not in the archive" -- sm wal-fetch --project pitr1 "$first" "$T/first2"
ok "retention keeps 2 base backups and prunes the WAL only the oldest needed ($before -> $nw files)"

# a restore killed while it builds the restored cluster changes nothing; the next one cleans up
"$SM" restore pitr1 --latest --yes >/dev/null 2>&1 &
pid=$!
for _ in $(seq 400); do compgen -G "$DATA.smr-pitr-*" >/dev/null && break; sleep 0.02; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
compgen -G "$DATA.smr-pitr-*" >/dev/null || fail "the killed restore left no staging directory (too late?)"
[ "$(counts)" = "1:3000,2:3000,3:3000,4:3000,5:3000,6:3000,7:3000,9:3000" ] || fail "a killed restore changed the data: $(counts)"
ok "a restore killed while staging leaves the running database as it was"

# to a transaction id; then --latest, which also replays what the server had not archived yet
q "CREATE TABLE x1 AS SELECT 1 AS v" >/dev/null
XID=$(q "BEGIN; CREATE TABLE x2 AS SELECT 2 AS v; SELECT txid_current(); COMMIT;" | head -1)
q "CREATE TABLE x3 AS SELECT 3 AS v" >/dev/null
q "SELECT pg_switch_wal()" >/dev/null
out=$(sm restore pitr1 --target-xid "$XID" --yes 2>&1) || fail "restore to xid $XID: $out"
[ "$(q "SELECT count(*) FROM pg_tables WHERE tablename IN ('x1', 'x2', 'x3')")" = 2 ] &&
  [ "$(q "SELECT to_regclass('x3') IS NULL")" = t ] || fail "after restore to xid $XID: $(q "SELECT string_agg(tablename, ',') FROM pg_tables WHERE tablename LIKE 'x_'")"
q "CREATE TABLE unarchived AS SELECT 42 AS v" >/dev/null # still in pg_wal, not archived
out=$(sm restore pitr1 --latest --yes 2>&1) || fail "restore --latest: $out"
[ "$(q "SELECT v FROM unarchived")" = 42 ] && [ "$(q "SELECT count(*) FROM x2")" = 1 ] || fail "--latest lost the newest, unarchived commit"
compgen -G "$DATA.smr-*" >/dev/null && fail "leftovers of the killed restore remain: $(ls -d "$DATA".smr-*)"
ok "restore to a transaction id, and --latest with the server's unarchived WAL"

# 4. a WAL segment lost before it reached the repository
SPOOL=$DATA.wal-spool
q "CREATE TABLE g1 AS SELECT 1 AS x" >/dev/null
switch_push >/dev/null
q "CREATE TABLE g2 AS SELECT 1 AS x" >/dev/null
lost=$(q "SELECT pg_walfile_name(pg_current_wal_lsn())")
q "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 100); do [ -f "$SPOOL/$lost" ] && break; sleep 0.1; done
[ -f "$SPOOL/$lost" ] || fail "$lost is not in the spool"
rm -f "$SPOOL/$lost" # lost before it reached the repository
q "CREATE TABLE g3 AS SELECT 1 AS x" >/dev/null
switch_push >/dev/null
expect_fail 4 "has 1 gap" -- sm pitr check pitr1
sm pitr check pitr1 2>/dev/null | grep -q "GAP: segments $lost..$lost are missing" || fail "check does not name $lost"
rows=$(counts)
expect_fail 4 "the WAL archive is missing segment $lost" -- sm restore pitr1 --latest --yes
[ "$(counts)" = "$rows" ] && [ "$(q 'SELECT count(*) FROM g3')" = 1 ] || fail "a refused restore changed the data"
ok "a missing segment is found by pitr check and refused by restore; nothing changed"

# 5. wal-push: idempotent, conflicts fail, kill -9 never acknowledges a partial file
S2=$T/spool2
mkdir -p "$S2"
head -c 1048576 /dev/urandom >"$T/000000010000000000000099"
sm wal-push --spool "$S2" "$T/000000010000000000000099" || fail "wal-push"
sm wal-push --spool "$S2" "$T/000000010000000000000099" || fail "wal-push again (same content)"
cp "$T/000000010000000000000099" "$T/keep"
head -c 1048576 /dev/urandom >"$T/000000010000000000000099"
expect_fail 5 "WAL file 000000010000000000000099 is already archived with different content" -- \
  sm wal-push --spool "$S2" "$T/000000010000000000000099"
cmp -s "$S2/000000010000000000000099" "$T/keep" || fail "a conflicting push changed the spooled file"
expect_fail 2 "'notwal' is not a WAL file name" -- sm wal-push --spool "$S2" "$T/notwal"
ok "wal-push is idempotent and refuses different content under an archived name"

mkdir -p "$T/w"
head -c $((16 * 1048576)) /dev/urandom >"$T/w/0000000100000000000000A0"
for i in $(seq 12); do
  rm -f "$S2/0000000100000000000000A0"
  "$SM" wal-push --spool "$S2" "$T/w/0000000100000000000000A0" &
  pid=$!
  sleep "0.0$((RANDOM % 9))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" && acked=1 || acked=0
  if [ -e "$S2/0000000100000000000000A0" ]; then
    cmp -s "$S2/0000000100000000000000A0" "$T/w/0000000100000000000000A0" || fail "round $i: a partial file under the final name"
  elif [ $acked = 1 ]; then
    fail "round $i: acknowledged but not stored"
  fi
done
sm wal-push --spool "$S2" "$T/w/0000000100000000000000A0" || fail "wal-push after the kills"
cmp -s "$S2/0000000100000000000000A0" "$T/w/0000000100000000000000A0" || fail "stored copy differs"
ok "kill -9 during wal-push never leaves a partial file under the WAL name"

# --project mode: straight into the repository, fetched back identical
sm wal-push --project pitr1 "$T/w/0000000100000000000000A0" || fail "wal-push --project"
sm wal-fetch --project pitr1 0000000100000000000000A0 "$T/fetched" || fail "wal-fetch"
cmp -s "$T/fetched" "$T/w/0000000100000000000000A0" || fail "wal-fetch returned other bytes"
expect_fail 3 "WAL file 0000000100000000000000FF is not in the archive" -- \
  sm wal-fetch --project pitr1 0000000100000000000000FF "$T/x"
ok "wal-push --project stores in the repository; wal-fetch returns the same bytes"

sm pitr disable pitr1 2>/dev/null || fail "disable"
[ "$(q 'SHOW archive_mode')" = off ] || fail "archive_mode still on after disable"
ok "pitr disable turns archiving off"
