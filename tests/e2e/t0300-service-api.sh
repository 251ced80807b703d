#!/bin/bash
# The service end to end: a backup created through the API reaches COMPLETED
# with progress 100 and its events arrive in order; the download link gives an
# archive pg_restore reads, an altered or expired link gets 403; a restore
# through the API brings the data back; the schedule is stored and validated;
# Studio's endpoints answer in Studio's shapes; health, metrics and the
# OpenAPI document (walked: every documented route exists, every route is
# documented).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
make_project_files "$T/p"
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
sm project add abc123 --name "My App" --db-url "$(pg_url "$PORT" proj)" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" --owner user-owner 2>/dev/null || fail "project add"
start_service

PYTHONPATH="$(dirname "$0")" API=$API PGPORT_SRC=$PORT T=$T SOURCE_ROOT=$SOURCE_ROOT /usr/bin/python3 - <<'PY' || fail "API checks (service log: $T/serve.log)"
import json, os, re, subprocess, sys, tarfile, time, urllib.parse
from apiclient import Api, token
secret = os.environ["JWT_SECRET"]
api = Api(int(os.environ["API"]), token(secret, "service_role"))
T = os.environ["T"]
def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
def ok(what):
    print("ok -", what)

# --- a backup through the API, followed by events ---
st, doc, _, hdr = api.post("/platform/projects/abc123/backups", {"type": "FULL", "compression": True, "encryption": False})
check(st == 202 and doc["status"] == "CREATING" and doc["progress"] == 0 and doc["backup_id"].startswith("backup_abc123_"), "POST /backups: %s %s" % (st, doc))
check("estimated_time" in doc and "x-request-id" in hdr, "estimated_time and X-Request-Id")
bid = doc["backup_id"]
est, events = api.events("/platform/projects/abc123/backups/%s/events" % bid)
check(est == 200 and events and events[-1][0] == "done", "events end with done: %s" % events[-3:])
progress = [json.loads(d).get("progress", 0) for e, d in events]
check(progress == sorted(progress), "progress is monotonic: %s" % progress)
b = api.wait_backup("abc123", bid)
check(b["status"] == "COMPLETED" and b["progress"] == 100, "backup COMPLETED with progress 100: %s" % b)
check(all(v.startswith("sha256:") for v in b["checksums"].values()) and set(b["checksums"]) >= {"database", "globals", "storage", "config"}, "checksums: %s" % b["checksums"])
ok("a backup created through the API reaches COMPLETED with progress 100; events arrive in order")

st, doc, _, _ = api.get("/platform/projects/abc123/backups?limit=10&offset=0")
check(st == 200 and doc["total_count"] == 1 and doc["total_size"] == b["size"] and doc["backups"][0]["id"] == bid, "list: %s" % doc)
ok("list with totals and paging")

# --- download ---
st, link, _, _ = api.get("/platform/projects/abc123/backups/%s/download" % bid)
check(st == 200 and link["size"] > 0 and link["download_url"].startswith("http://127.0.0.1:"), "download link: %s %s" % (st, link))
u = urllib.parse.urlparse(link["download_url"])
anon = Api(api.port)
st, _, body, hdr = anon.get(u.path + "?" + u.query)
check(st == 200 and len(body) == link["size"] and int(hdr["content-length"]) == link["size"], "download without Authorization: %s %s" % (st, hdr))
open(T + "/dl.tar.gz", "wb").write(body)
tf = tarfile.open(T + "/dl.tar.gz")
names = tf.getnames()
check("database.dump" in names and "metadata.json" in names, "archive entries: %s" % names[:10])
tf.extract("database.dump", T + "/dl")
r = subprocess.run(["pg_restore", "-l", T + "/dl/database.dump"], capture_output=True, text=True)
check(r.returncode == 0 and "TABLE DATA public comments" in r.stdout, "pg_restore reads database.dump: %s" % r.stderr)
st, _, part, hdr = anon.get(u.path + "?" + u.query, headers={"Range": "bytes=10-109"})
check(st == 206 and part == body[10:110] and hdr["content-range"] == "bytes 10-109/%d" % len(body), "Range: %s %s" % (st, hdr))
q = urllib.parse.parse_qs(u.query)
for bad in ("expires=%d&sig=%s" % (int(q["expires"][0]) + 60, q["sig"][0]),
            "expires=%s&sig=%s" % (q["expires"][0], "0" * 64),
            "expires=%d&sig=%s" % (int(time.time()) - 10, q["sig"][0])):
    st, doc, _, _ = anon.get(u.path + "?" + bad)
    check(st == 403 and doc["error"] == "forbidden", "altered link: %s %s" % (st, doc))
st, doc, _, _ = anon.get(u.path.replace("abc123", "abc124") + "?" + u.query)
check(st == 403, "link for another project: %s" % st)
ok("the download link streams an archive pg_restore reads (with Range); altered or expired links get 403")

# --- restore through the API ---
subprocess.run(["psql", "-h", "127.0.0.1", "-p", os.environ["PGPORT_SRC"], "-U", "postgres", "-d", "proj", "-qc", "DELETE FROM public.comments"], check=True)
st, job, _, _ = api.post("/platform/projects/abc123/backups/%s/restore" % bid, {"database": True, "storage": False, "config": False})
check(st == 202 and job["job_id"], "restore accepted: %s %s" % (st, job))
st2, doc2, _, _ = api.post("/platform/projects/abc123/backups", {"type": "DATABASE"})
check(st2 == 409 and doc2["error"] == "conflict" and "busy" in doc2["message"], "a backup during the restore is refused: %s %s" % (st2, doc2))
done = api.wait_job(job["job_id"])
check(done["status"] == "COMPLETED" and done["progress"] == 100, "restore job: %s" % done)
n = subprocess.run(["psql", "-h", "127.0.0.1", "-p", os.environ["PGPORT_SRC"], "-U", "postgres", "-d", "proj", "-Atc", "SELECT count(*) FROM public.comments"], capture_output=True, text=True).stdout.strip()
check(n == "5000", "comments after restore: %s" % n)
ok("a restore through the API brings the data back; a second job meanwhile gets 409")

# --- schedule ---
st, doc, _, _ = api.put("/platform/projects/abc123/backup-schedule", {"enabled": True, "frequency": "daily", "time": "02:00", "type": "FULL", "retention": 7})
check(st == 200 and doc["next_run_at"] and doc["next_run_at"].endswith("T02:00:00Z"), "schedule: %s %s" % (st, doc))
for bad, field in (({"frequency": "monthly"}, "frequency"), ({"time": "25:00"}, "time"), ({"time": "2:00"}, "time"),
                   ({"retention": 0}, "retention"), ({"retention": "7"}, "retention"), ({"type": "BOGUS"}, "type"),
                   ({"enabled": "yes"}, "enabled")):
    st, doc, _, _ = api.put("/platform/projects/abc123/backup-schedule", bad)
    check(st == 400 and doc["error"] == "invalid_request" and field in doc["message"], "bad schedule %s: %s %s" % (bad, st, doc))
st, doc, _, _ = api.get("/platform/projects/abc123/backup-schedule")
check(doc["frequency"] == "daily" and doc["retention"] == 7 and doc["enabled"] is True, "bad schedules changed nothing: %s" % doc)
ok("schedules are stored with next_run_at; bad ones get 400 and change nothing")

# --- Studio ---
st, doc, _, _ = api.get("/platform/database/abc123/backups")
check(st == 200 and set(doc) >= {"region", "pitr_enabled", "walg_enabled", "backups", "physicalBackupData"}, "studio list: %s" % doc)
sb = [x for x in doc["backups"] if x["backup_id"] == bid][0]
check(isinstance(sb["id"], int) and sb["isPhysicalBackup"] is False and sb["status"] == "COMPLETED" and sb["inserted_at"], "studio backup shape: %s" % sb)
st, doc, _, _ = api.post("/platform/database/abc123/backups/download", {"id": sb["id"]})
check(st == 201 and doc["fileUrl"].startswith("http"), "studio download: %s %s" % (st, doc))
ok("Supabase Studio's backup endpoints answer in Studio's shapes")

# --- health, metrics, OpenAPI ---
st, doc, _, _ = anon.get("/health")
check(st == 200 and doc["status"] == "ok" and doc["catalog"] == "ok" and doc["store"] == "ok", "health: %s" % doc)
st, _, body, hdr = anon.get("/metrics")
text = body.decode()
check(st == 200 and "supamanager_jobs{state=\"completed\"}" in text and 'supamanager_backup_last_success_timestamp_seconds{project="abc123"}' in text, "metrics: %s" % text[:800])
st, spec, _, _ = anon.get("/openapi.json")
check(st == 200 and spec["openapi"].startswith("3."), "openapi")
src = open(os.environ["SOURCE_ROOT"] + "/src/service/routes.c").read()
served = set(re.findall(r'\{"(GET|POST|PUT|DELETE)", "([^"]+)", h_', src))
documented = set((m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m in ("get", "post", "put", "delete"))
check(served == documented, "routes vs OpenAPI: only served %s, only documented %s" % (served - documented, documented - served))
for method, path in sorted(documented):
    concrete = path.replace("{id}", "abc123").replace("{ref}", "abc123").replace("{backupID}", bid).replace("{jobId}", job["job_id"]).replace("{org}", "no-org")
    st, doc, _, _ = api.req(method, concrete, body={} if method in ("POST", "PUT") and "import" not in path else None)
    check(st != 405 and not (st == 404 and doc and "no such endpoint" in doc.get("message", "")), "%s %s answered %s %s" % (method, concrete, st, doc))
    check(str(st) in spec["paths"][path][method.lower()]["responses"] or st in (200, 201, 202), "%s %s: status %s is not documented" % (method, path, st))
ok("health, metrics, and an OpenAPI document that matches the routes")
PY
stop_service "$DAEMON" "$T/serve.log"
