#!/bin/bash
# Access control and errors of the API: the auth matrix (service role, owner,
# org admin, member, stranger, forged, expired, none) on every endpoint, and
# each error status: 400, 401, 403, 404 (including path tricks), 405, 409,
# 413, 415. A hostile archive imported over HTTP changes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
make_project_files "$T/p"
mkdir -p "$T/p2/storage"
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
sm org add acme --name Acme 2>/dev/null && sm member add acme user-admin --role admin 2>/dev/null &&
  sm member add acme user-member --role member 2>/dev/null || fail "org setup"
sm project add abc123 --name "My App" --db-url "$(pg_url "$PORT" proj)" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" --org acme --owner user-owner 2>/dev/null || fail "project add"
id=$(sm backup create abc123 --type database 2>/dev/null) || fail "backup"
API=$(pg_free_port)
SUPAMANAGER_MAX_UPLOAD=2M "$SM" serve --listen "127.0.0.1:$API" >"$T/serve.out" 2>"$T/serve.log" &
DAEMON=$!
on_exit "kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null"
for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$API/health" >/dev/null && break; sleep 0.1; done

PYTHONPATH="$(dirname "$0")" API=$API BID=$id T=$T PGPORT_SRC=$PORT SOURCE_ROOT=$SOURCE_ROOT /usr/bin/python3 - <<'PY' || fail "API checks (service log: $T/serve.log)"
import io, json, os, re, subprocess, sys, tarfile, time
from apiclient import Api, token
secret, bid, T = os.environ["JWT_SECRET"], os.environ["BID"], os.environ["T"]
port = int(os.environ["API"])
def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
def ok(what):
    print("ok -", what)

who = {
    "service": token(secret, "service_role"),
    "owner": token(secret, "authenticated", "user-owner"),
    "admin": token(secret, "authenticated", "user-admin"),
    "member": token(secret, "authenticated", "user-member"),
    "stranger": token(secret, "authenticated", "user-stranger"),
    "forged": token("not-the-secret-at-all", "service_role"),
    "expired": token(secret, "service_role", exp_in=-60),
    "alg-none": token(secret, "service_role", alg="none"),
    "hs512": token(secret, "service_role", alg="HS512"),
    "none": None,
}
P = "/platform/projects/abc123"
svc = Api(port, who["service"])
def wait_idle():
    for _ in range(1200):
        st, jobs, _, _ = svc.get("/platform/jobs")
        if st == 200 and not jobs:
            return
        time.sleep(0.1)
    raise AssertionError("jobs do not finish: %s" % jobs)
def new_backup(kind="DATABASE"):
    wait_idle()
    st, doc, _, _ = svc.post(P + "/backups", {"type": kind})
    assert st == 202, (st, doc)
    b = svc.wait_backup("abc123", doc["backup_id"])["id"]
    wait_idle()  # the job ends a moment after its backup is COMPLETED
    return b
def studio_num(b):
    st, doc, _, _ = svc.get("/platform/database/abc123/backups")
    return [x["id"] for x in doc["backups"] if x["backup_id"] == b][0]
full = new_backup("FULL")
wait_idle()
st, exp, _, _ = svc.post(P + "/export", {})
assert st == 202, (st, exp)
export_job = svc.wait_job(exp["job_id"])["id"]
st, link, _, _ = svc.get(P + "/backups/%s/download" % full)
import urllib.parse
u = urllib.parse.urlparse(link["download_url"])
signed = u.path + "?" + u.query
n = [0]
def uniq(prefix):
    n[0] += 1
    return "%s-%d" % (prefix, n[0])
def garbage():
    return b"not an archive"
dburl = "postgresql://postgres@127.0.0.1:%s/proj" % os.environ["PGPORT_SRC"]
V, M, S = "view", "manage", "service-only"
# (method, path or callable giving it, body or callable, rule)
#   rule: a dict of expected status for service/owner/admin/member/stranger; invalid tokens get 401
#   unless the route is public
routes = [
    ("GET", "/platform/projects", None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
    ("POST", "/platform/projects", lambda: {"id": uniq("newp"), "name": "N", "db_url": dburl, "storage_dir": T + "/p2/storage", "org_id": "acme"},
     dict(service=201, owner=403, admin=403, member=403, stranger=403)),
    ("UPLOAD", "/platform/projects/import", lambda: {"new_project_name": "Imp", "id": uniq("imp"), "db_url": dburl, "storage_dir": T + "/imp-" + str(n[0]), "org_id": "acme"},
     dict(service=202, owner=403, admin=403, member=403, stranger=403)),
    ("GET", P, None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    # store settings only; an empty store is the default directory the project already uses
    ("PATCH", P, {"store": ""}, dict(service=200, owner=200, admin=200, member=403, stranger=404)),
    ("POST", P + "/store/check", {}, dict(service=200, owner=200, admin=200, member=403, stranger=404)),
    ("GET", P + "/backups", None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("POST", P + "/backups", {"type": "DATABASE"}, dict(service=202, owner=202, admin=202, member=403, stranger=404)),
    ("GET", lambda: P + "/backups/" + full, None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("DELETE", lambda: P + "/backups/" + new_backup(), None, dict(service=202, owner=202, admin=202, member=403, stranger=404)),
    ("POST", lambda: P + "/backups/%s/restore" % full, {"database": False, "storage": False, "config": True}, dict(service=202, owner=202, admin=202, member=403, stranger=404)),
    ("POST", lambda: P + "/backups/%s/verify" % full, {}, dict(service=202, owner=202, admin=202, member=403, stranger=404)),
    ("GET", lambda: P + "/backups/%s/download" % full, None, dict(service=200, owner=200, admin=200, member=403, stranger=404)),
    ("EVENTS", lambda: P + "/backups/%s/events" % full, None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("GET", P + "/pitr", None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("POST", P + "/pitr/restore", {"latest": True}, dict(service=400, owner=400, admin=400, member=403, stranger=404)),
    ("POST", P + "/pitr/base-backups", {}, dict(service=400, owner=400, admin=400, member=403, stranger=404)),
    ("GET", P + "/backup-schedule", None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("PUT", P + "/backup-schedule", {"enabled": False}, dict(service=200, owner=200, admin=200, member=403, stranger=404)),
    ("POST", P + "/export", {}, dict(service=202, owner=202, admin=202, member=403, stranger=404)),
    ("PUBLIC", lambda: signed, None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
    ("GET", "/platform/jobs", None, dict(service=200, owner=403, admin=403, member=403, stranger=403)),
    ("GET", lambda: "/platform/jobs/" + export_job, None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("EVENTS", lambda: "/platform/jobs/%s/events" % export_job, None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("GET", lambda: "/platform/jobs/%s/download" % export_job, None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("GET", "/platform/organizations", None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
    ("POST", "/platform/organizations", lambda: {"id": uniq("org"), "name": "O"}, dict(service=201, owner=403, admin=403, member=403, stranger=403)),
    ("GET", "/platform/organizations/acme/members", None, dict(service=200, owner=404, admin=200, member=200, stranger=404)),
    ("POST", "/platform/organizations/acme/members", {"user_id": "user-extra", "role": "member"}, dict(service=201, owner=403, admin=201, member=403, stranger=403)),
    ("GET", "/platform/database/abc123/backups", None, dict(service=200, owner=200, admin=200, member=200, stranger=404)),
    ("POST", "/platform/database/abc123/backups/restore", lambda: {"id": studio_num(new_backup())}, dict(service=201, owner=201, admin=201, member=403, stranger=404)),
    ("POST", "/platform/database/abc123/backups/download", lambda: {"id": studio_num(full)}, dict(service=201, owner=201, admin=201, member=403, stranger=404)),
    ("PUBLIC", "/health", None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
    ("PUBLIC", "/metrics", None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
    ("PUBLIC", "/openapi.json", None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
    ("PUBLIC", "/", None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
    ("PUBLIC", "/ui/app.js", None, dict(service=200, owner=200, admin=200, member=200, stranger=200)),
]
checked = 0
for method, path, body, rule in routes:
    for name in who:
        wait_idle()
        pth = path() if callable(path) else path
        bod = body() if callable(body) else body
        public = method == "PUBLIC"
        want = rule.get(name, rule["service"] if public else 401)
        api = Api(port, who[name])
        if method == "UPLOAD":
            st, doc, _, hdr = api.upload(pth, bod, "x.tar.gz", garbage())
        elif method == "EVENTS":
            st, evs = api.events(pth, timeout=120)
            doc, hdr = None, {}
        elif public:
            st, doc, _, hdr = api.get(pth)
        else:
            st, doc, _, hdr = api.req(method, pth, body=bod)
        check(st == want, "%s %s as %s: %s, expected %s (%s)" % (method, pth, name, st, want, doc))
        if st >= 400 and method != "EVENTS":
            check(doc and doc.get("error") and doc.get("message") and doc.get("request_id") == hdr.get("x-request-id"), "error body %s" % doc)
        if st == 401 and method != "EVENTS":
            check(hdr.get("www-authenticate", "").startswith("Bearer"), "401 without WWW-Authenticate: %s %s as %s %s" % (method, pth, name, hdr))
        checked += 1
wait_idle()
served = set(re.findall(r'\{"(GET|POST|PUT|PATCH|DELETE)", "([^"]+)", (?:h|ui)_', open(os.environ["SOURCE_ROOT"] + "/src/service/routes.c").read()))
check(len(routes) == len(served), "the matrix covers %d routes, the server has %d" % (len(routes), len(served)))
st, doc, _, _ = svc.get(P)
check(st == 200 and doc["store"] is None, "the PATCHes of the matrix kept the default store: %s" % doc)
# a stranger's project list is empty; a member sees it read-only
st, doc, _, _ = Api(port, who["stranger"]).get("/platform/projects")
check(st == 200 and doc == [], "stranger sees projects: %s" % doc)
st, doc, _, _ = Api(port, who["member"]).get("/platform/projects")
check(st == 200 and "abc123" in [p["id"] for p in doc] and [p for p in doc if p["id"] == "abc123"][0]["can_manage"] is False, "member list: %s" % doc)
st, doc, _, _ = Api(port, who["stranger"]).get("/platform/projects/nope99")
st2, doc2, _, _ = Api(port, who["stranger"]).get(P)
check(st == st2 == 404 and doc["error"] == doc2["error"] == "not_found", "a hidden project answers like a missing one")
# token messages say what is wrong
for name, part in (("expired", "expired"), ("forged", "signature"), ("alg-none", "alg"), ("none", "Authorization")):
    st, doc, _, _ = Api(port, who[name]).get(P)
    check(st == 401 and part.lower() in doc["message"].lower(), "%s: %s" % (name, doc))
ok("the auth matrix on all %d routes x %d callers (%d requests): service role, owner, org admin, member, stranger, forged, expired, alg none, HS512, none" % (len(routes), len(who), checked))

# what names the host (its database, directories, commands, files) is the
# operator's: only the service role registers or imports projects, puts
# backups in a directory of the server or names its S3 credentials file; and
# no store may share objects with another project's
admin = Api(port, who["admin"])
st, doc, _, _ = admin.post("/platform/projects", {"id": "sneaky", "name": "N", "db_url": dburl, "storage_dir": "/etc", "org_id": "acme", "pause_cmd": "touch /tmp/pwned"})
check(st == 403 and doc["message"] == "only the service role may register projects: a project names the server's database, directories and commands, which only the host's operator may choose", "admin registers a project: %s %s" % (st, doc))
st, doc, _, _ = admin.upload("/platform/projects/import", {"new_project_name": "Imp", "db_url": dburl, "storage_dir": "/root/.ssh", "org_id": "acme"}, "x.tar.gz", garbage())
check(st == 403 and doc["message"].startswith("only the service role may import projects: "), "admin imports: %s %s" % (st, doc))
for name in ("owner", "admin"):
    api = Api(port, who[name])
    st, doc, _, _ = api.req("PATCH", P, body={"store": T + "/elsewhere"})
    check(st == 403 and doc["message"] == "only the service role may put backups in a directory of the server. Use an S3 location, or the default directory (an empty store), or ask the host's operator.", "%s sets a directory store: %s %s" % (name, st, doc))
    st, doc, _, _ = api.req("PATCH", P, body={"store": "s3://bkt/abc?credentials=/root/.aws/credentials&profile=prod"})
    check(st == 403 and doc["message"].startswith("only the service role may name the server's S3 credentials file or profile (credentials=, profile=)"), "%s names a credentials file: %s %s" % (name, st, doc))
    st, doc, _, _ = api.post(P + "/store/check", {"store": T + "/elsewhere"})
    check(st == 403, "%s checks a directory store: %s %s" % (name, st, doc))
st, doc, _, _ = Api(port, who["owner"]).req("PATCH", P, body={"store": "s3://bkt/abc", "s3_endpoint": "http://127.0.0.1:9"})
check(st == 200 and doc["store"] == "s3://bkt/abc?endpoint=http://127.0.0.1:9", "owner sets an S3 store: %s %s" % (st, doc))
st, doc, _, _ = svc.post("/platform/projects", {"id": "other1", "name": "O", "db_url": dburl, "storage_dir": T + "/p2/storage", "store": "s3://bkt/abc/inner"})
check(st == 409 and doc["message"].startswith("the store 's3://bkt/abc/inner' shares its objects with project 'abc123', whose backups are in 's3://bkt/abc?endpoint=http://127.0.0.1:9'. Each project needs a repository of its own"), "a store inside another project's: %s %s" % (st, doc))
st, doc, _, _ = svc.post("/platform/projects", {"id": "other1", "name": "O", "db_url": dburl, "storage_dir": T + "/p2/storage"})
check(st == 201, "register other1: %s %s" % (st, doc))
st, doc, _, _ = svc.req("PATCH", P, body={"store": ""})
check(st == 200 and doc["store"] is None, "back to the default: %s %s" % (st, doc))
home = os.environ["SUPAMANAGER_HOME"]
st, doc, _, _ = svc.req("PATCH", "/platform/projects/other1", body={"store": home + "/backups/abc123/"})
check(st == 409 and "shares its objects with project 'abc123'" in doc["message"], "a store on another project's default directory: %s %s" % (st, doc))
st, doc, _, _ = svc.req("PATCH", "/platform/projects/other1", body={"store": T + "/other1-repo"})
check(st == 200 and doc["store"] == T + "/other1-repo", "the service role sets a directory store: %s %s" % (st, doc))
ok("only the service role registers and imports projects, puts backups in a server directory or names S3 credentials files; stores never overlap (409)")

wait_idle()
svc = Api(port, who["service"])
def err(st, doc, code, status):
    check(st == status and doc and doc["error"] == code, "expected %s %s, got %s %s" % (status, code, st, doc))
st, doc, _, _ = svc.req("POST", P + "/backups", raw=b"{not json", content_type="application/json"); err(st, doc, "invalid_json", 400)
st, doc, _, _ = svc.post(P + "/backups", {"type": 5}); err(st, doc, "invalid_request", 400)
st, doc, _, _ = svc.post(P + "/backups", {"type": "WEEKLY"}); err(st, doc, "invalid_request", 400)
check("WEEKLY" in doc["message"], "unknown type named: %s" % doc)
st, doc, _, _ = svc.post(P + "/backups", {"compression": "yes"}); err(st, doc, "invalid_request", 400)
st, doc, _, _ = svc.put(P + "/backup-schedule", {"frequency": "fortnightly"}); err(st, doc, "invalid_request", 400)
st, doc, _, _ = svc.get("/platform/projects/Bad_Id/backups"); err(st, doc, "invalid_request", 400)
st, doc, _, _ = svc.req("POST", P + "/backups", raw=b"type=FULL", content_type="application/x-www-form-urlencoded"); err(st, doc, "unsupported_media_type", 415)
st, doc, _, _ = svc.get(P + "/backups/backup_nope_20250101_000000"); err(st, doc, "not_found", 404)
for trick in ("/platform/projects/abc123/backups/..%2f..%2fetc%2fpasswd", "/platform/projects/%2e%2e/backups", "/platform/projects/abc123/backups/%2e%2e%2f"):
    st, doc, _, _ = svc.get(trick); err(st, doc, "not_found", 404)
st, doc, _, hdr = svc.req("PATCH", P + "/backups"); check(st == 405 and "allow" in hdr, "405 with Allow: %s %s" % (st, hdr))
st, doc, _, _ = svc.upload("/platform/projects/import", {"new_project_name": "Big", "db_url": "postgresql://x@127.0.0.1:1/x", "storage_dir": T + "/big"}, "big.tar.gz", b"\0" * (3 << 20))
err(st, doc, "payload_too_large", 413)
ok("errors: 400 (malformed JSON, wrong types, unknown type and frequency, bad id), 404 (path tricks), 405, 413, 415")

# a hostile archive over HTTP changes nothing
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tf:
    md = json.dumps({"format": "supamanager-export", "version": 1, "backup_id": "backup_x_20250101_000000",
                     "type": "FULL", "created_at": "2025-01-01T00:00:00Z", "checksums": {}}).encode()
    ti = tarfile.TarInfo("metadata.json"); ti.size = len(md); tf.addfile(ti, io.BytesIO(md))
    ti = tarfile.TarInfo("../../../tmp/escape-%d" % os.getpid()); ti.size = 3; tf.addfile(ti, io.BytesIO(b"bad"))
st, doc, _, _ = svc.upload("/platform/projects/import", {"new_project_name": "Evil", "id": "evil1", "db_url": "postgresql://postgres@127.0.0.1:%s/evildb" % os.environ["PGPORT_SRC"], "storage_dir": T + "/evil-storage"}, "evil.tar.gz", buf.getvalue())
check(st == 202, "import accepted for checking: %s %s" % (st, doc))
job = svc.wait_job(doc["job_id"])
check(job["status"] == "FAILED" and ".." in job["error"], "hostile import: %s" % job)
st, _, _, _ = svc.get("/platform/projects/evil1"); check(st == 404, "the hostile import left a project")
check(not os.path.exists("/tmp/escape-%d" % os.getpid()) and not os.path.exists(T + "/evil-storage"), "the hostile import wrote files")
r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", os.environ["PGPORT_SRC"], "-U", "postgres", "-d", "postgres", "-Atc", "SELECT count(*) FROM pg_database WHERE datname = 'evildb'"], capture_output=True, text=True)
check(r.stdout.strip() == "0", "the hostile import left a database")
ok("a hostile archive imported over HTTP changes nothing")
PY
stop_service "$DAEMON" "$T/serve.log"
