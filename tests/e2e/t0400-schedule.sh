#!/bin/bash
# Schedules on a driven clock (SUPAMANAGER_NOW=@FILE), with the real daemon
# and PostgreSQL: a week of hourly, daily and weekly schedules runs in half-hour
# steps and produces backups for exactly the right UTC slots; retention keeps
# exactly N and frees the space of the backups it deletes; after three days of
# downtime each project gets one catch-up run, never a burst; a run due while
# the previous one still goes is recorded as SKIPPED; bad schedules are
# refused (API and CLI) and change nothing; the free-space guard refuses a
# backup before it starts.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
pg_createdb "$PORT" busy && pg_psql "$PORT" busy -c "CREATE TABLE t (i int); INSERT INTO t VALUES (1)" >/dev/null ||
  fail "busy database"
make_project_files "$T/p"
mkdir -p "$T/hourly" "$T/daily" "$T/weekly" "$T/busy"
echo "one small file" >"$T/hourly/a.txt"
echo "weekly" >"$T/weekly/w.txt"
echo "busy" >"$T/busy/b.txt"
cp -a "$T/p/storage/." "$T/daily/"
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
export SUPAMANAGER_NOW=@$T/now
echo 2026-11-23T00:00:00Z >"$T/now" # a Monday
URL=$(pg_url "$PORT" proj)
sm project add hourly1 --name Hourly --db-url "$URL" --storage-dir "$T/hourly" 2>/dev/null &&
  sm project add daily1 --name Daily --db-url "$URL" --storage-dir "$T/daily" 2>/dev/null &&
  sm project add weekly1 --name Weekly --db-url "$URL" --storage-dir "$T/weekly" 2>/dev/null &&
  sm project add busy1 --name Busy --db-url "$(pg_url "$PORT" busy)" --storage-dir "$T/busy" 2>/dev/null ||
  fail "project add"
sm schedule set hourly1 --frequency hourly --time 00:15 --type storage --retention 5 >/dev/null &&
  sm schedule set daily1 --frequency daily --time 02:00 --type full --retention 3 >/dev/null &&
  sm schedule set weekly1 --frequency weekly --time 03:30 --type storage --retention 2 >/dev/null ||
  fail "schedule set"
out=$(sm schedule show hourly1) || fail "schedule show"
grep -q "hourly at minute 15" <<<"$out" && grep -q "next run:      2026-11-23T00:15:00Z" <<<"$out" ||
  fail "schedule show: $out"
ok "schedules set from the command line; show gives the next run (2026-11-23T00:15:00Z)"

# bad schedules from the command line: refused, exit 2, nothing changes
before=$(sm schedule show daily1 --json)
for bad in "--time 25:00" "--time 2:00" "--retention 0" "--retention 100000" "--frequency fortnightly" \
  "--type weekly" "--jitter 99999" "--email not-an-address" "--webhook ftp://x" "--restore-test daily"; do
  expect_fail 2 "supamanager: error: " -- sm schedule set daily1 $bad
done
[ "$before" = "$(sm schedule show daily1 --json)" ] || fail "a refused schedule changed something"
err=$(sm schedule set daily1 --time 25:00 2>&1)
grep -q "'time' must be \"HH:MM\" (UTC, 00:00 to 23:59), not '25:00'" <<<"$err" || fail "message: $err"
ok "bad schedules from the command line are refused with exit 2 and a message; nothing changes"

# the free-space guard (the CLI; the daemon runs the same code)
err=$(SUPAMANAGER_MIN_FREE=100% sm backup create daily1 --type database 2>&1)
rc=$?
[ $rc -eq 6 ] || fail "guard: exit $rc: $err"
grep -q "backup refused before it started" <<<"$err" && grep -q "SUPAMANAGER_MIN_FREE=100%" <<<"$err" ||
  fail "guard message: $err"
err=$(SUPAMANAGER_MIN_FREE=lots sm backup create daily1 --type database 2>&1) && fail "a bad threshold was taken"
grep -q "SUPAMANAGER_MIN_FREE 'lots' is not a valid threshold" <<<"$err" || fail "bad threshold message: $err"
n=$(sm backup list daily1 --json | python3 -c 'import json,sys; print(sum(1 for b in json.load(sys.stdin)["backups"] if b["status"] == "COMPLETED"))')
[ "$n" = 0 ] || fail "the guard left a completed backup"
ok "the free-space guard refuses a backup before it starts (exit 6, says what to change)"

API=$(pg_free_port)
start_daemon() {
  "$SM" serve --listen "127.0.0.1:$API" >>"$T/serve.out" 2>>"$T/serve.log" &
  DAEMON=$!
  for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$API/health" >/dev/null && return; sleep 0.1; done
  fail "the service did not start: $(tail -5 "$T/serve.log")"
}
start_daemon
on_exit 'kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null'

cat >"$T/driver.py" <<'PY'
import datetime, json, os, sqlite3, sys, time
sys.path.insert(0, os.environ["E2E_DIR"])
from apiclient import Api, token
T = os.environ["T"]
api = Api(int(os.environ["API"]), token(os.environ["JWT_SECRET"], "service_role", exp_in=400 * 86400))
def iso(t): return t.strftime("%Y-%m-%dT%H:%M:%SZ")
def parse(s): return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
def check(c, msg):
    if not c:
        print("FAIL: " + msg, file=sys.stderr); sys.exit(1)
def settle(now, idle=True):
    """Moves the clock to now and waits for the scheduler to act on it (and, with idle, for the jobs it started)."""
    with open(T + "/now.tmp", "w") as f: f.write(iso(now) + "\n")
    os.rename(T + "/now.tmp", T + "/now")
    for _ in range(3000):
        st, h, _, _ = api.get("/health")
        sch = h.get("scheduler", {}) if h else {}
        if sch.get("now") == iso(now) and sch.get("pending") == 0:
            if not idle:
                return
            st, jobs, _, _ = api.get("/platform/jobs")
            if jobs == []:
                # a job's end reaches the scheduler a moment after the job leaves the list
                time.sleep(0.05)
                st, h, _, _ = api.get("/health")
                if h["scheduler"]["pending"] == 0 and api.get("/platform/jobs")[1] == []:
                    return
        time.sleep(0.02)
    check(False, "the scheduler did not settle at %s: %s" % (iso(now), h))
def runs(pid):
    db = sqlite3.connect(os.environ["SUPAMANAGER_HOME"] + "/catalog.db")
    r = db.execute("SELECT slot, status, backup_id, reason FROM schedule_runs WHERE project_id = ? ORDER BY id", (pid,)).fetchall()
    db.close()
    return r
def backups(pid):
    st, doc, _, _ = api.get("/platform/projects/%s/backups" % pid)
    return doc["backups"]
def repo_bytes(pid):
    d = os.environ["SUPAMANAGER_HOME"] + "/backups/" + pid
    return sum(os.path.getsize(os.path.join(a, f)) for a, _, fs in os.walk(d) for f in fs)
PY

E2E_DIR=$(dirname "$0") API=$API T=$T /usr/bin/python3 - <<'PY' || fail "a week of schedules"
import os, sys
sys.path.insert(0, os.environ["T"]); exec(open(os.environ["T"] + "/driver.py").read())
t0 = datetime.datetime(2026, 11, 23)
step = datetime.timedelta(minutes=30)
first_daily = None
now = t0
day_file = 0
while now < t0 + datetime.timedelta(days=7):
    now += step
    if now.hour == 1 and now.minute == 0:
        # new data before each daily backup: a unique file replaces yesterday's
        for f in os.listdir(T + "/daily"):
            if f.startswith("day-"):
                os.unlink(T + "/daily/" + f)
        day_file += 1
        with open(T + "/daily/day-%d.bin" % day_file, "wb") as f:
            f.write(os.urandom(512 * 1024))
    settle(now)
    if first_daily is None and runs("daily1"):
        first_daily = repo_bytes("daily1")
h, d, w = runs("hourly1"), runs("daily1"), runs("weekly1")
want_h = [iso(t0 + datetime.timedelta(hours=i, minutes=15)) for i in range(168)]
want_d = [iso(t0 + datetime.timedelta(days=i, hours=2)) for i in range(7)]
check([r[0] for r in h] == want_h, "hourly slots: %d runs, first %s, last %s" % (len(h), h[:2], h[-2:]))
check([r[0] for r in d] == want_d, "daily slots: %s" % [r[0] for r in d])
check([r[0] for r in w] == ["2026-11-29T03:30:00Z"], "weekly slots: %s" % w)
check(all(r[1] == "COMPLETED" and r[3] is None for r in h + d + w), "not all runs completed on time: %s" % [r for r in h + d + w if r[1] != "COMPLETED" or r[3]][:3])
print("ok - a week on the driven clock: 168 hourly runs at :15, 7 daily at 02:00, 1 weekly on Sunday 03:30, all completed")
# retention: exactly N scheduled backups, the newest ones, created in their slot's half hour
for pid, n, rs in (("hourly1", 5, h), ("daily1", 3, d), ("weekly1", 2, w)):
    bs = [b for b in backups(pid) if b["kind"] == "scheduled" and b["status"] == "COMPLETED"]
    check(len(bs) == min(n, len(rs)), "%s keeps %d scheduled backups, not %d" % (pid, len(bs), n))
    check(sorted(b["id"] for b in bs) == sorted(r[2] for r in rs[-n:]), "%s keeps other backups than the newest" % pid)
    for b in bs:
        slot = parse([r[0] for r in rs if r[2] == b["id"]][0])
        made = parse(b["created_at"])
        check(slot <= made < slot + step, "%s: backup %s created at %s for slot %s" % (pid, b["id"], b["created_at"], slot))
# the space of deleted backups is freed: 6 unique 512 KiB files were written after the first daily backup,
# the 3 kept backups reference 3 of them (1.5 MiB) and the first one is gone: without
# retention the repository would grow by 3 MiB
end = repo_bytes("daily1")
check(end - first_daily < 2048 * 1024, "daily1 repository grew by %d bytes: retention did not free space" % (end - first_daily))
check(end - first_daily > 768 * 1024, "daily1 repository grew by only %d bytes" % (end - first_daily))
st, sch, _, _ = api.get("/platform/projects/daily1/backup-schedule")
check(sch["next_run_at"] == "2026-11-30T02:00:00Z" and sch["runs"][0]["status"] == "COMPLETED" and sch["status"]["overdue"] is False, "schedule document: %s" % sch)
print("ok - retention keeps exactly 5 / 3 / 2, the newest, made in their slot; the repository shrinks back (grew %d KiB for 6 x 512 KiB written)" % ((end - first_daily) // 1024))
PY

# three days down, then one catch-up run per project, never a burst
stop_service "$DAEMON" "$T/serve.log" >/dev/null
echo 2026-12-03T00:05:00Z >"$T/now"
start_daemon
E2E_DIR=$(dirname "$0") API=$API T=$T /usr/bin/python3 - <<'PY' || fail "catch-up"
import os, sys
sys.path.insert(0, os.environ["T"]); exec(open(os.environ["T"] + "/driver.py").read())
now = datetime.datetime(2026, 12, 3, 0, 5)
settle(now)
h, d, w = runs("hourly1"), runs("daily1"), runs("weekly1")
check(len(h) == 169, "hourly runs after downtime: %d" % len(h))
check(h[-1][0] == "2026-12-02T23:15:00Z" and h[-1][1] == "COMPLETED" and "catch-up run: 71 earlier runs were missed" in (h[-1][3] or ""), "hourly catch-up: %s" % (h[-1],))
check(len(d) == 8 and d[-1][0] == "2026-12-02T02:00:00Z" and "2 earlier runs were missed" in (d[-1][3] or ""), "daily catch-up: %s" % (d[-2:],))
check(len(w) == 1, "weekly ran without a missed slot: %s" % w)
for minutes in (5, 9):
    settle(now + datetime.timedelta(minutes=minutes))
check(len(runs("hourly1")) == 169, "a burst after the catch-up: %s" % runs("hourly1")[-3:])
settle(now + datetime.timedelta(minutes=10))
h = runs("hourly1")
check(len(h) == 170 and h[-1][0] == "2026-12-03T00:15:00Z" and h[-1][3] is None, "the next slot after the catch-up: %s" % (h[-1],))
print("ok - after three days down: one catch-up run per project (reason names the missed runs), then the normal slots")
PY

# a run due while the previous one is still going is skipped
sm schedule set busy1 --frequency hourly --time 00:45 --type database --retention 2 >/dev/null || fail "schedule busy1"
psql -h 127.0.0.1 -p "$PORT" -U postgres -d busy -v ON_ERROR_STOP=1 \
  -c "BEGIN" -c "LOCK TABLE t IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
LOCKER=$!
on_exit "kill $LOCKER 2>/dev/null"
sleep 0.5
E2E_DIR=$(dirname "$0") API=$API T=$T LOCKER=$LOCKER PGPORT=$PORT /usr/bin/python3 - <<'PY' || fail "skip"
import os, signal, sys
sys.path.insert(0, os.environ["T"]); exec(open(os.environ["T"] + "/driver.py").read())
now = datetime.datetime(2026, 12, 3, 0, 45)
settle(now, idle=False)
r = runs("busy1")
check(len(r) == 1 and r[0][1] == "STARTED", "busy1 first run: %s" % r)
settle(now + datetime.timedelta(hours=1), idle=False)
r = runs("busy1")
check(len(r) == 2 and r[1][0] == "2026-12-03T01:45:00Z" and r[1][1] == "SKIPPED" and "is busy" in r[1][3] and r[0][2] in r[1][3], "busy1 second run: %s" % r)
import subprocess
subprocess.run(["psql", "-h", "127.0.0.1", "-p", os.environ["PGPORT"], "-U", "postgres", "-d", "postgres", "-Atc",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()"],
               check=True, capture_output=True)
try:
    os.kill(int(os.environ["LOCKER"]), signal.SIGTERM)
except ProcessLookupError:
    pass  # psql ended with its session
settle(now + datetime.timedelta(hours=1, minutes=1))
r = runs("busy1")
check(r[0][1] == "COMPLETED", "the blocked run did not complete: %s" % r)
st, sch, _, _ = api.get("/platform/projects/busy1/backup-schedule")
check([x["status"] for x in sch["runs"]] == ["SKIPPED", "COMPLETED"], "runs in the API: %s" % sch["runs"])
st, m, _, _ = api.get("/metrics")
check(st == 200, "metrics")
print("ok - a run due while the previous one goes on is SKIPPED with the reason; the blocked run completes")
# bad schedules through the API change nothing
st, before, _, _ = api.get("/platform/projects/busy1/backup-schedule")
for body, words in (({"time": "24:00"}, "'time'"), ({"frequency": "monthly"}, "frequency"), ({"retention": 0}, "'retention'"),
                    ({"retention": "7"}, "'retention'"), ({"type": "weekly"}, "backup type"), ({"enabled": "yes"}, "'enabled'"),
                    ({"jitter_minutes": -5}, "'jitter_minutes'"), ({"notify": {"email": ["x"]}}, "notify.email"),
                    ({"notify": {"webhook": "gopher://x"}}, "notify.webhook"), ({"colour": "blue"}, "unknown schedule field 'colour'"),
                    ([1, 2], "JSON object")):
    st, doc, _, _ = api.put("/platform/projects/busy1/backup-schedule", body)
    check(st == 400 and doc["error"] == "invalid_request" and words in doc["message"], "PUT %s: %s %s" % (body, st, doc))
st, after, _, _ = api.get("/platform/projects/busy1/backup-schedule")
for k in ("runs", "status"):
    before.pop(k); after.pop(k)
check(before == after, "a refused PUT changed the schedule: %s -> %s" % (before, after))
# a partial PUT changes only what it names; the secret stays hidden and kept
st, doc, _, _ = api.put("/platform/projects/busy1/backup-schedule", {"notify": {"webhook": "http://127.0.0.1:9/h", "webhook_secret": "s3cret"}})
check(st == 200 and doc["frequency"] == "hourly" and doc["time"] == "00:45" and doc["notify"]["webhook_secret_set"] is True and "webhook_secret" not in doc["notify"], "partial PUT: %s" % doc)
st, doc, _, _ = api.put("/platform/projects/busy1/backup-schedule", doc)
check(st == 200 and doc["notify"]["webhook_secret_set"] is True, "a GET document put back lost the secret: %s" % doc)
print("ok - bad schedules through the API get 400 naming the field and change nothing; PUT changes only what it names")
PY

stop_service "$DAEMON" "$T/serve.log"
