#!/bin/bash
# Scheduled backups and what they tell people, on a driven clock with the real
# daemon, PostgreSQL, an SMTP server (aiosmtpd) and a webhook receiver: a
# failing scheduled backup sends an e-mail that arrives with the project, the
# backup id and the reason, and a signed webhook that is retried after 500s;
# a successful one is verified with a restore test (the project then shows its
# RTO) and, with on_success, announced; a notifier that fails never fails the
# backup; a project whose backups keep failing becomes "overdue" once (e-mail,
# /metrics, the schedule's status); the daily digest arrives at its time.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"
PY=/usr/bin/python3
RECEIVER="$SOURCE_ROOT/tests/e2e/notify_receiver.py"
for v in SMTP_URL SMTP_FROM SMTP_USER SMTP_PASSWORD NOTIFY_EMAIL WEBHOOK_URL WEBHOOK_SECRET; do
  unset "SUPAMANAGER_$v"
done
$PY -c 'import aiosmtpd' 2>/dev/null || fail "python3-aiosmtpd is missing (scripts/install-deps.sh installs it)"

start_cluster src source
pg_createdb "$PORT" gone || fail "createdb"
make_project_files "$T/p"
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
export SUPAMANAGER_NOW=@$T/now
echo 2026-11-23T00:00:00Z >"$T/now"

# the SMTP server: every message becomes a file in $MAIL/new
SMTP_PORT=$(pg_free_port) || fail "no free port"
MAIL=$T/mail
mkdir -p "$MAIL"/{tmp,new,cur}
$PY -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$MAIL" >"$T/smtp.log" 2>&1 &
on_exit "kill $!"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT" && head -c3 <&3 | grep -q 220) 2>/dev/null && break
  sleep 0.1
done
# the global webhook: answers 500 to its first two requests
$PY "$RECEIVER" "$T/hook" --fail 2 >"$T/hook.log" 2>&1 &
on_exit "kill $!"
for _ in $(seq 100); do [ -f "$T/hook/port" ] && break; sleep 0.1; done
HOOK_PORT=$(cat "$T/hook/port") || fail "webhook receiver"
DEAD_PORT=$(pg_free_port)

cat >"$T/config.json" <<EOF
{"notifications": {
   "smtp": {"url": "smtp://127.0.0.1:$SMTP_PORT", "from": "SupaManager <backup@example.test>", "tls": "none"},
   "email": ["ops@example.test"],
   "webhook": {"url": "http://127.0.0.1:$HOOK_PORT/hook", "secret": "global-hook-secret"},
   "digest_time": "06:00",
   "webhook_attempts": 4, "webhook_backoff_ms": 100, "timeout_s": 5}}
EOF
sm project add fail1 --name "Failing App" --db-url "$(pg_url "$PORT" gone)" --storage-dir "$T/p/storage" 2>/dev/null &&
  sm project add good1 --name "Good App" --db-url "$(pg_url "$PORT" proj)" --storage-dir "$T/p/storage" 2>/dev/null ||
  fail "project add"
pg_psql "$PORT" postgres -c "DROP DATABASE gone" >/dev/null || fail "drop database"
sm schedule set fail1 --frequency daily --time 02:00 --type database >/dev/null &&
  sm schedule set good1 --frequency daily --time 03:00 --type database --verify --restore-test weekly \
    --notify-success --email dev@example.test --webhook "http://127.0.0.1:$DEAD_PORT/nobody" >/dev/null ||
  fail "schedule set"

API=$(pg_free_port)
"$SM" serve --listen "127.0.0.1:$API" --config "$T/config.json" >"$T/serve.out" 2>"$T/serve.log" &
DAEMON=$!
on_exit 'kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null'
for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$API/health" >/dev/null && break; sleep 0.1; done

E2E_DIR=$(dirname "$0") API=$API T=$T MAIL=$MAIL /usr/bin/python3 - <<'PY' || fail "notifications (service log: $T/serve.log)"
import datetime, email, email.policy, hashlib, hmac, json, os, sys, time
sys.path.insert(0, os.environ["E2E_DIR"])
from apiclient import Api, token
T, MAIL = os.environ["T"], os.environ["MAIL"]
api = Api(int(os.environ["API"]), token(os.environ["JWT_SECRET"], "service_role", exp_in=400 * 86400))
def iso(t): return t.strftime("%Y-%m-%dT%H:%M:%SZ")
def check(c, msg):
    if not c:
        print("FAIL: " + msg, file=sys.stderr); sys.exit(1)
def settle(now):
    with open(T + "/now.tmp", "w") as f: f.write(iso(now) + "\n")
    os.rename(T + "/now.tmp", T + "/now")
    for _ in range(3000):
        st, h, _, _ = api.get("/health")
        if h["scheduler"]["now"] == iso(now) and h["scheduler"]["pending"] == 0:
            st, jobs, _, _ = api.get("/platform/jobs")
            if jobs == []:
                # a job's end reaches the scheduler a moment after the job leaves the list
                time.sleep(0.2)
                if api.get("/platform/jobs")[1] == [] and api.get("/health")[1]["scheduler"]["pending"] == 0:
                    return
        time.sleep(0.02)
    check(False, "the scheduler did not settle at %s" % iso(now))
def mails(n, timeout=20):
    """Waits for n messages in the maildir; returns them parsed, oldest first."""
    for _ in range(int(timeout / 0.1)):
        files = sorted(os.listdir(MAIL + "/new"), key=lambda f: os.path.getmtime(MAIL + "/new/" + f))
        if len(files) >= n:
            break
        time.sleep(0.1)
    return [email.message_from_binary_file(open(MAIL + "/new/" + f, "rb"), policy=email.policy.default) for f in files]
def hooks(n, timeout=20):
    for _ in range(int(timeout / 0.1)):
        try:
            reqs = [json.loads(l) for l in open(T + "/hook/requests.jsonl")]
        except FileNotFoundError:
            reqs = []
        if len(reqs) >= n:
            return reqs
        time.sleep(0.1)
    return reqs
def signed(r, secret):
    t, v1 = dict(p.split("=", 1) for p in r["headers"]["x-supamanager-signature"].split(",")).values()
    want = hmac.new(secret.encode(), (t + "." + r["body"]).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, v1)

t0 = datetime.datetime(2026, 11, 23)
# 02:00: the scheduled backup of fail1 fails (its database is gone)
settle(t0 + datetime.timedelta(hours=2))
st, doc, _, _ = api.get("/platform/projects/fail1/backups")
b = doc["backups"][0]
check(b["status"] == "FAILED" and b["kind"] == "scheduled", "fail1 backup: %s" % b)
m = mails(1)
check(len(m) == 1, "%d e-mails after the failure" % len(m))
body = m[0].get_content()
check(m[0]["Subject"] == "[SupaManager] Backup FAILED: Failing App (fail1)" and m[0]["To"] == "ops@example.test"
      and b["id"] in body and "does not exist" in body and "Failing App (fail1)" in body, "failure e-mail: %s\n%s" % (dict(m[0]), body))
# the webhook: retried after two 500s under one delivery id, each attempt signed
reqs = hooks(3)
check(len(reqs) == 3 and [r["status"] for r in reqs] == [500, 500, 200], "webhook attempts: %s" % [r["status"] for r in reqs])
check(len({r["headers"]["x-supamanager-delivery"] for r in reqs}) == 1, "delivery ids differ across retries")
check(all(signed(r, "global-hook-secret") for r in reqs), "a webhook attempt is not signed with the secret")
ev = json.loads(reqs[-1]["body"])
check(ev["event"] == "backup.failed" and ev["project_id"] == "fail1" and ev["data"]["backup_id"] == b["id"]
      and "does not exist" in ev["data"]["error"] and ev["data"]["scheduled_for"] == "2026-11-23T02:00:00Z", "webhook body: %s" % ev)
print("ok - a failing scheduled backup: e-mail with project, backup id and reason; signed webhook retried after 500s")

# 03:00: good1 backs up, is verified with a restore test, and (on_success) announced;
# its own webhook is dead, which fails nothing
settle(t0 + datetime.timedelta(hours=3))
st, doc, _, _ = api.get("/platform/projects/good1/backups")
check(doc["backups"][0]["status"] == "COMPLETED", "good1 backup: %s" % doc["backups"][0])
st, sch, _, _ = api.get("/platform/projects/good1/backup-schedule")
check(isinstance(sch["status"]["rto_s"], float) and sch["status"]["rto_s"] > 0 and sch["status"]["last_restore_test_at"] == "2026-11-23T03:00:00Z",
      "RTO after the restore test: %s" % sch["status"])
check(sch["status"]["rpo_s"] == 0 and sch["status"]["overdue"] is False and sch["runs"][0]["status"] == "COMPLETED", "status: %s" % sch)
m = mails(2)
ok_mail = [x for x in m if "completed" in x["Subject"]]
check(len(ok_mail) == 1 and ok_mail[0]["Subject"] == "[SupaManager] Backup completed: Good App (good1)"
      and "ops@example.test" in ok_mail[0]["To"] and "dev@example.test" in ok_mail[0]["To"], "success e-mail: %s" % [dict(x) for x in m])
reqs = hooks(4)
check(json.loads(reqs[3]["body"])["event"] == "backup.completed" and signed(reqs[3], "global-hook-secret"), "success webhook: %s" % reqs[3:])
for _ in range(200):
    st, _, met, _ = api.get("/metrics")
    if 'supamanager_notifications_total{channel="webhook",result="failed"} 1' in met.decode():
        break
    time.sleep(0.1)
met = met.decode()
check('supamanager_notifications_total{channel="webhook",result="failed"} 1' in met, "the dead webhook is not counted: %s" % [l for l in met.splitlines() if "notif" in l])
check('supamanager_project_rto_seconds{project="good1"}' in met, "RTO metric missing")
print("ok - a good scheduled backup: verified with a restore test (RTO %.2f s), announced by e-mail and webhook; a dead webhook only counts as a failed notification" % sch["status"]["rto_s"])

# 06:00: the daily digest
settle(t0 + datetime.timedelta(hours=6))
m = mails(3)
dig = [x for x in m if "digest" in x["Subject"]]
check(len(dig) == 1, "digest e-mails: %s" % [x["Subject"] for x in m])
text = dig[0].get_content()
check(dig[0]["Subject"] == "[SupaManager] Daily digest 2026-11-23: 2 projects" and "Failing App (fail1)" in text
      and "failures in the last 24 h: 1" in text and "Good App (good1)" in text, "digest: %s" % text)
print("ok - the daily digest arrives at 06:00 with each project's last good backup, failures and sizes")

# 08:01: fail1 has had no good backup since its schedule's promise (02:00 + 6 h grace): overdue, once
settle(t0 + datetime.timedelta(hours=8, minutes=1))
m = mails(4)
od = [x for x in m if "OVERDUE" in x["Subject"]]
check(len(od) == 1 and od[0]["Subject"] == "[SupaManager] Backups OVERDUE: Failing App (fail1)" and "2026-11-23T08:00:00Z" in od[0].get_content(),
      "overdue e-mail: %s" % [x["Subject"] for x in m])
st, _, met, _ = api.get("/metrics")
met = met.decode()
check('supamanager_backup_overdue{project="fail1"} 1' in met and 'supamanager_backup_overdue{project="good1"} 0' in met, "overdue metrics")
st, sch, _, _ = api.get("/platform/projects/fail1/backup-schedule")
check(sch["status"]["overdue"] is True and sch["status"]["overdue_since"] == "2026-11-23T08:00:00Z" and sch["status"]["rpo_s"] is None, "fail1 status: %s" % sch["status"])
settle(t0 + datetime.timedelta(hours=9))
time.sleep(0.5)
check(len([x for x in mails(5, timeout=1) if "OVERDUE" in x["Subject"]]) == 1, "the overdue alert repeats")
print("ok - a project with no good backup past its schedule's promise is overdue: one e-mail, /metrics, its status")
PY
stop_service "$DAEMON" "$T/serve.log"
