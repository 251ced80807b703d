#!/bin/bash
# A Supabase-shaped project whose backups live in radosgw: registered with --store s3://
# and the --s3-* flags, checked with `store check`, backed up, damaged, restored exactly;
# backup delete frees its objects; a wrong secret fails with a clear message; the API
# takes the same fields (create, PATCH) and checks a store (POST .../store/check: a good
# store, proposed settings with an unreachable endpoint, a service with a wrong secret,
# refused fields, a member and a stranger).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"
. "$(dirname "$0")/lib_s3.sh"

rgw_up
s3_mb "$RGW" sm-proj
start_cluster src source
make_project_files "$T/p"
URL=$(pg_url "$PORT" proj)
sm project add abc123 --name "My App" --db-url "$URL" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" --pgsodium-key "$T/p/pgsodium_root.key" \
  --store s3://sm-proj/projects/abc123 --s3-endpoint "$RGW/" --s3-region us-east-1 \
  --s3-storage-class STANDARD 2>"$T/err" || fail "project add: $(cat "$T/err")"
sm project show abc123 | grep -qx "store: *s3://sm-proj/projects/abc123?endpoint=$RGW&region=us-east-1&storage_class=STANDARD" ||
  fail "project show: $(sm project show abc123)"
ok "project add folds --s3-endpoint, --s3-region and --s3-storage-class into the store location"

sm store check abc123 >"$T/check.out" 2>&1 && grep -q "the store is usable" "$T/check.out" || fail "store check: $(cat "$T/check.out")"
ok "store check of a project checks its S3 store"

fingerprint_project "$PORT" proj "$T/p" "$T/fp0"
id=$(sm backup create abc123 --type full 2>"$T/err") || fail "backup create: $(cat "$T/err")"
sm backup verify "$id" 2>"$T/err" || fail "backup verify: $(cat "$T/err")"
[ "$(s3_count "$RGW" sm-proj projects/abc123/snapshots/)" = 1 ] || fail "no snapshot object in the bucket"
[ ! -e "$SUPAMANAGER_HOME/backups/abc123" ] || fail "the backup went to the local directory too"
cls=$(awsx "$RGW" s3api list-objects-v2 --bucket sm-proj --prefix projects/abc123/data/ --query 'Contents[0].StorageClass' --output text)
[ "$cls" = STANDARD ] || fail "storage class: $cls"
ok "a full backup goes to the bucket (packs, index, snapshot) and verifies"

pg_psql "$PORT" proj -c "DROP TABLE public.comments CASCADE" -c "UPDATE auth.users SET email = 'x' || id" >/dev/null || fail "damage db"
find "$T/p/storage" -type f | head -3 | xargs rm -f
echo "JWT_SECRET=stolen" >"$T/p/config/.env"
sm restore abc123 "$id" --yes 2>"$T/rerr" || fail "restore: $(cat "$T/rerr")"
fingerprint_project "$PORT" proj "$T/p" "$T/fp1"
same_fingerprints "$T/fp0" "$T/fp1" "after a restore from S3"
ok "a restore from radosgw brings back the database, roles, storage and config exactly"

# the restore took a safety backup; delete it and the first one: their objects go
before=$(s3_count "$RGW" sm-proj projects/abc123/)
id2=$(sm backup create abc123 --type full 2>"$T/err") || fail "second backup: $(cat "$T/err")"
sm backup list abc123 --json | python3 -c 'import json,sys; [print(b["id"]) for b in json.load(sys.stdin)["backups"]]' >"$T/ids"
for b in $(grep -v "^$id2\$" "$T/ids"); do sm backup delete "$b" --yes 2>"$T/err" || fail "backup delete $b: $(cat "$T/err")"; done
[ "$(s3_count "$RGW" sm-proj projects/abc123/snapshots/)" = 1 ] || fail "deleted backups left snapshots"
sm backup verify "$id2" 2>"$T/err" || fail "verify after deletes: $(cat "$T/err")"
ok "backup delete removes snapshots from the bucket ($before objects before) and the rest verifies"

AWS_SECRET_ACCESS_KEY=wrong-secret sm backup create abc123 --type full >/dev/null 2>"$T/bad"
[ $? -ne 0 ] && grep -q "in S3 bucket 'sm-proj': HTTP 403 SignatureDoesNotMatch" "$T/bad" &&
  grep -q "hint: Check the S3 access key and secret" "$T/bad" || fail "wrong secret: $(cat "$T/bad")"
ok "a wrong S3 secret fails the backup with HTTP 403 SignatureDoesNotMatch and a hint"

# the API takes the same fields
export JWT_SECRET=e2e-jwt-secret-0123456789abcdef
start_service
PYTHONPATH="$(dirname "$0")" API=$API RGW=$RGW URL=$URL T=$T /usr/bin/python3 - <<'PY' || fail "API (log: $T/serve.log)"
import os, sys
from apiclient import Api, token
api = Api(int(os.environ["API"]), token(os.environ["JWT_SECRET"], "service_role"))
rgw, T = os.environ["RGW"], os.environ["T"]
def check(c, what):
    if not c:
        print("FAIL:", what, file=sys.stderr); sys.exit(1)
os.makedirs(T + "/p2/storage", exist_ok=True)
st, _, _, _ = api.post("/platform/organizations", {"id": "acme", "name": "Acme"})
check(st == 201, "org: %s" % st)
st, _, _, _ = api.post("/platform/organizations/acme/members", {"user_id": "user-member", "role": "member"})
check(st == 201, "member: %s" % st)
st, doc, _, _ = api.post("/platform/projects", {"id": "def456", "name": "Two", "db_url": os.environ["URL"], "org_id": "acme",
    "storage_dir": T + "/p2/storage", "store": "s3://sm-proj/projects/def456", "s3_endpoint": rgw,
    "s3_region": "us-east-1", "s3_storage_class": "STANDARD"})
check(st == 201 and doc["store"] == "s3://sm-proj/projects/def456?endpoint=%s&region=us-east-1&storage_class=STANDARD" % rgw, "create: %s %s" % (st, doc))
st, doc, _, _ = api.req("PATCH", "/platform/projects/def456", body={"s3_storage_class": "STANDARD_IA"})
check(st == 200 and doc["store"].endswith("&storage_class=STANDARD_IA"), "patch: %s %s" % (st, doc))
st, doc, _, _ = api.req("PATCH", "/platform/projects/def456", body={"name": "renamed"})
check(st == 400 and "only store" in doc["message"], "patch of another field: %s %s" % (st, doc))
st, doc, _, _ = api.req("PATCH", "/platform/projects/def456", body={"store": "s3://sm-proj/x?color=red"})
check(st == 400 and "unknown S3 setting 'color'" in doc["message"], "patch with a bad location: %s %s" % (st, doc))
st, doc, _, _ = api.post("/platform/projects", {"id": "ghi789", "name": "Three", "db_url": os.environ["URL"],
    "storage_dir": T + "/p2/storage", "s3_region": "eu-west-1"})
check(st == 400 and "S3 settings need an S3 store location" in doc["message"], "s3 field without store: %s %s" % (st, doc))
# the service's job workers back up and verify the S3 project too
st, doc, _, _ = api.post("/platform/projects/abc123/backups", {"type": "FULL"})
check(st == 202, "backup through the API: %s %s" % (st, doc))
job = api.wait_job(doc["job_id"])  # the job ends a moment after its backup is COMPLETED
b = api.wait_backup("abc123", doc["backup_id"])
check(job["status"] == "COMPLETED" and b["status"] == "COMPLETED" and b["size"] > 0, "API backup to S3: %s %s" % (job, b))
st, doc, _, _ = api.post("/platform/projects/abc123/backups/%s/verify" % b["id"], {})
check(st == 202 and api.wait_job(doc["job_id"])["status"] == "COMPLETED", "API verify of an S3 backup: %s" % doc)
anon = Api(int(os.environ["API"]), token(os.environ["JWT_SECRET"], "authenticated", sub="user-stranger"))
st, doc, _, _ = anon.req("PATCH", "/platform/projects/def456", body={"s3_region": "x"})
check(st == 404, "a stranger's PATCH: %s %s" % (st, doc))
print("ok - the service backs up and verifies an S3 project; the API creates projects with S3 stores and PATCH changes their store settings (a stranger gets 404)")

# POST .../store/check: the checks of `store check`, on the saved store or on proposed settings
import re, socket, time
CK = "/platform/projects/def456/store/check"
# def456 was PATCHed to STANDARD_IA, a storage class this radosgw does not have
st, doc, _, _ = api.post(CK, {})
check(st == 200 and doc["ok"] is False and doc["proposed"] is False and
      re.match(r"^the store is NOT usable for backups: cannot write 'projects/def456/check/probe-[0-9a-f]{16}' in S3 bucket 'sm-proj': HTTP 400 InvalidArgument$", doc["message"]) and
      [(c["step"], c["status"], c["message"] if c["status"] != "failed" else "") for c in doc["checks"]] == [
          ("write", "failed", ""), ("read", "skipped", "needs the probe object"), ("list", "ok", "listing allowed"),
          ("delete", "skipped", "needs the probe object")], "check of a store with a storage class the server lacks: %s %s" % (st, doc))
print("ok - POST store/check of the saved store: a storage class the server does not have fails the write (HTTP 400 InvalidArgument), the list works")
usable = {"ok": True, "location": "s3://sm-proj/projects/def456",
    "message": "the store is usable: write, read, list and delete all work", "checks": [
        {"step": "write", "status": "ok", "message": "a 4 KiB probe object"},
        {"step": "read", "status": "ok", "message": "the probe object read back intact"},
        {"step": "list", "status": "ok", "message": "the listing shows the probe object"},
        {"step": "delete", "status": "ok", "message": "the probe object is gone"}]}
st, doc, _, _ = api.post(CK, {"s3_storage_class": "STANDARD"})
check(st == 200 and doc == dict(usable, proposed=True), "check of proposed good settings: %s %s" % (st, doc))
check(api.get("/platform/projects/def456")[1]["store"].endswith("&storage_class=STANDARD_IA"), "a check of proposed settings saved them")
st, doc, _, _ = api.req("PATCH", "/platform/projects/def456", body={"s3_storage_class": "STANDARD"})
check(st == 200, "patch: %s %s" % (st, doc))
st, doc, _, _ = api.post(CK)
check(st == 200 and doc == dict(usable, proposed=False), "check of a good store (no body): %s %s" % (st, doc))
saved = api.get("/platform/projects/def456")[1]["store"]
print("ok - POST store/check of proposed settings (STANDARD) answers ok without saving them; once saved, the store's check answers ok with the four checks")

s = socket.socket(); s.bind(("127.0.0.1", 0)); dead = s.getsockname()[1]; s.close()
t0 = time.time()
st, doc, _, _ = api.post(CK, {"s3_endpoint": "http://127.0.0.1:%d" % dead})
took = time.time() - t0
hint = "Check the S3 endpoint (http://127.0.0.1:%d) and that the server is reachable." % dead
refused = r"Failed to connect to 127\.0\.0\.1 port %d .*\(curl error 7\)$" % dead
check(st == 200 and doc["ok"] is False and doc["proposed"] is True and doc["location"] == "s3://sm-proj/projects/def456" and
      re.match(r"^the store is NOT usable for backups: cannot write 'projects/def456/check/probe-[0-9a-f]+' in S3 bucket 'sm-proj': " + refused, doc["message"]) and
      doc["hint"] == hint and [(c["step"], c["status"]) for c in doc["checks"]] == [("write", "failed"), ("read", "skipped"), ("list", "failed"), ("delete", "skipped")] and
      doc["checks"][0]["hint"] == hint and doc["checks"][1]["message"] == "needs the probe object" and
      re.match(r"^cannot list 'projects/def456/check/' in S3 bucket 'sm-proj': " + refused, doc["checks"][2]["message"]) and doc["checks"][2]["hint"] == hint and
      "hint" not in doc["checks"][1], "check of an unreachable endpoint: %s %s" % (st, doc))
check(took < 20, "an unreachable endpoint took %.1f s" % took)
check(api.get("/platform/projects/def456")[1]["store"] == saved, "a check of proposed settings saved them")
print("ok - POST store/check of proposed settings with an unreachable endpoint names the endpoint and the fix, at once (%.1f s), and saves nothing" % took)

st, doc, _, _ = api.post(CK, {"aws_secret_access_key": "s3cr3t-in-the-body"})
check(st == 400 and doc["error"] == "invalid_request" and doc["message"] ==
      "'aws_secret_access_key' cannot be checked here: only store, s3_endpoint, s3_region and s3_storage_class", "unknown field: %s %s" % (st, doc))
st, doc, _, _ = api.post(CK, {"s3_endpoint": "http://AKIDX:s3cr3t-in-the-url@127.0.0.1:%d" % dead})
check(st == 400 and doc["message"] == "'s3_endpoint' must not hold credentials (USER:SECRET@). The service signs with its own "
      "S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials file): set them where the service runs." and "s3cr3t" not in str(doc), "credentials in the endpoint: %s %s" % (st, doc))
st, doc, _, _ = api.post(CK, {"store": "s3://sm-proj/x?color=red"})
check(st == 400 and doc["message"] == "unknown S3 setting 'color'. Known settings: endpoint, region, path_style, storage_class, "
      "sse, sse_kms_key_id, credentials, profile, content_md5, part_size, multipart_threshold, parallel, retries, retry_base_ms, "
      "timeout, readahead, cache.", "bad location: %s %s" % (st, doc))
print("ok - POST store/check refuses other fields and credentials in a URL without repeating them, and bad locations as the PATCH does")

member = Api(int(os.environ["API"]), token(os.environ["JWT_SECRET"], "authenticated", sub="user-member"))
st, doc, _, _ = member.post(CK, {})
check(st == 403 and doc["error"] == "forbidden" and doc["message"] ==
      "you may view project 'def456' but not change it: ask its owner or an admin of its organization", "member: %s %s" % (st, doc))
st, doc, _, _ = anon.post(CK, {})
check(st == 404 and doc["error"] == "not_found" and doc["message"] == "unknown project 'def456'", "stranger: %s %s" % (st, doc))
print("ok - a member may not check the store (403: manage right, as for the PATCH), a stranger gets 404")
PY
stop_service "$DAEMON" "$T/serve.log"
! grep -q "s3cr3t" "$T/serve.log" || fail "a secret of a request body is in the service log"
[ "$(s3_count "$RGW" sm-proj projects/def456/check/)" = 0 ] || fail "store checks left probe objects"
ok "store checks leave no probe object behind and no secret of a request body in the log"

# the service's own credentials are wrong: the check says so, and what to fix
good_secret=$AWS_SECRET_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=wrong-secret
start_service
export AWS_SECRET_ACCESS_KEY=$good_secret
PYTHONPATH="$(dirname "$0")" API=$API /usr/bin/python3 - <<'PY' || fail "API store check with a wrong secret (log: $T/serve.log)"
import os, re, sys
from apiclient import Api, token
api = Api(int(os.environ["API"]), token(os.environ["JWT_SECRET"], "service_role"))
st, doc, _, _ = api.post("/platform/projects/def456/store/check", {})
hint = "Check the S3 access key and secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the credentials file)."
good = (st == 200 and doc["ok"] is False and doc["proposed"] is False and doc["hint"] == hint and
        re.match(r"^the store is NOT usable for backups: cannot write 'projects/def456/check/probe-[0-9a-f]+' in S3 bucket 'sm-proj': HTTP 403 SignatureDoesNotMatch", doc["message"]) and
        [(c["step"], c["status"]) for c in doc["checks"]] == [("write", "failed"), ("read", "skipped"), ("list", "failed"), ("delete", "skipped")] and
        doc["checks"][2]["message"].startswith("cannot list 'projects/def456/check/' in S3 bucket 'sm-proj': HTTP 403 SignatureDoesNotMatch") and
        all(c.get("hint") == hint for c in doc["checks"] if c["status"] == "failed") and "wrong-secret" not in str(doc))
if not good:
    print("FAIL: wrong secret: %s %s" % (st, doc), file=sys.stderr); sys.exit(1)
print("ok - POST store/check with the service's secret key wrong: HTTP 403 SignatureDoesNotMatch on write and list, and the hint to check the key")
PY
stop_service "$DAEMON" "$T/serve.log"

# the server is lost, the bucket is not: on a new server (an empty home), the
# project registered on the same S3 location lists its backups at once, and
# one restores; a backup the catalog lost track of is repaired by backup sync
id3=$(sm backup create abc123 --type full 2>"$T/err") || fail "backup before the loss: $(cat "$T/err")"
fingerprint_project "$PORT" proj "$T/p" "$T/fp3"
nb=$(sm backup list abc123 --json | python3 -c 'import json,sys; print(len([b for b in json.load(sys.stdin)["backups"] if b["status"] == "COMPLETED"]))')
loc=$(sm project show abc123 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["store"])')
NEW=$T/home-new
SUPAMANAGER_HOME=$NEW sm project add abc123 --name "My App" --db-url "$URL" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" --pgsodium-key "$T/p/pgsodium_root.key" --store "$loc" 2>"$T/adopt.err" ||
  fail "project add on the new server: $(cat "$T/adopt.err")"
grep -qx "its repository already holds $nb backups: $nb added to the catalog" "$T/adopt.err" ||
  fail "project add on the new server said: $(cat "$T/adopt.err")"
SUPAMANAGER_HOME=$NEW sm backup show "$id3" --json | python3 -c '
import json, sys
b = json.load(sys.stdin)
assert b["status"] == "COMPLETED" and b["type"] == "FULL" and b["size"] > 0 and b["snapshot_id"], b
assert set(b["meta"]["parts"]) >= {"database", "storage", "config"} and b["meta"]["project"]["id"] == "abc123", b' ||
  fail "the adopted backup: $(SUPAMANAGER_HOME=$NEW sm backup show "$id3" --json)"
pg_psql "$PORT" proj -c "DROP TABLE public.comments CASCADE" >/dev/null || fail "damage db"
SUPAMANAGER_HOME=$NEW sm restore abc123 "$id3" --yes --no-safety-backup 2>"$T/rerr" || fail "restore on the new server: $(cat "$T/rerr")"
fingerprint_project "$PORT" proj "$T/p" "$T/fp4"
same_fingerprints "$T/fp3" "$T/fp4" "after a restore on a new server"
python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE backups SET status = ?, snapshot_id = NULL WHERE id = ?", ("INTERRUPTED", sys.argv[2]))
c.execute("DELETE FROM backups WHERE id != ?", (sys.argv[2],))
c.commit()' "$NEW/catalog.db" "$id3" || fail "catalog edit"
SUPAMANAGER_HOME=$NEW sm backup sync abc123 2>"$T/sync.err" || fail "backup sync: $(cat "$T/sync.err")"
grep -qx "project 'abc123': $nb backups in the repository; $((nb - 1)) added to the catalog, 1 marked completed" "$T/sync.err" ||
  fail "backup sync said: $(cat "$T/sync.err")"
SUPAMANAGER_HOME=$NEW sm backup sync abc123 --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["added"] == [] and r["repaired"] == [] and r["found"] == int(sys.argv[1]), r' "$nb" || fail "a second sync changed something"
SUPAMANAGER_HOME=$NEW sm backup verify "$id3" 2>/dev/null || fail "verify of the repaired backup"
ok "after losing the server, a new one lists the $nb backups in the bucket, restores one exactly, and backup sync repairs the catalog"

# removing the project with --purge deletes its repository's objects from the bucket, and only those
[ "$(s3_count "$RGW" sm-proj projects/abc123/)" -gt 3 ] || fail "the repository is not in the bucket before the purge"
others=$(s3_count "$RGW" sm-proj projects/def456/)
ncache=$(find "$SUPAMANAGER_CACHE" -mindepth 1 -maxdepth 1 -type d | wc -l)
[ "$ncache" -ge 1 ] || fail "no local cache of trees for the S3 repository"
sm project remove abc123 --purge --yes 2>"$T/err" || fail "project remove --purge: $(cat "$T/err")"
[ "$(find "$SUPAMANAGER_CACHE" -mindepth 1 -maxdepth 1 -type d | wc -l)" = $((ncache - 1)) ] ||
  fail "the purge left the repository's local cache of trees"
[ "$(s3_count "$RGW" sm-proj projects/abc123/)" = 0 ] || fail "objects left after --purge: $(s3_count "$RGW" sm-proj projects/abc123/)"
[ "$(s3_count "$RGW" sm-proj projects/def456/)" = "$others" ] || fail "the purge touched another project's objects"
ok "project remove --purge deletes the repository's objects from the bucket, and its local cache of trees"
