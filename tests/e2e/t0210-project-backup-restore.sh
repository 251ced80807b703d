#!/bin/bash
# The core promise: back up a Supabase-shaped project (database, roles,
# storage files with xattrs, config, pgsodium key), damage every part,
# restore, and get back exactly what was there: the database as pg_dump
# prints it, database-level settings, roles with passwords and settings, the
# storage tree (content, modes, owners, times, xattrs, symlinks) and config.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
make_project_files "$T/p"
URL=$(pg_url "$PORT" proj)
sm project add abc123 --name "My App" --db-url "$URL" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" --pgsodium-key "$T/p/pgsodium_root.key" 2>"$T/err" || fail "project add: $(cat "$T/err")"
fingerprint_project "$PORT" proj "$T/p" "$T/fp0"
cp "$T/p/pgsodium_root.key" "$T/key0"

id=$(sm backup create abc123 --type full 2>"$T/err") || fail "backup create: $(cat "$T/err")"
[[ $id =~ ^backup_abc123_[0-9]{8}_[0-9]{6}(_[0-9]+)?$ ]] || fail "backup id '$id'"
sm backup list abc123 >"$T/list" && grep -q "$id *FULL *COMPLETED" "$T/list" && grep -q "^Total: 1 backups" "$T/list" ||
  fail "backup list: $(cat "$T/list")"
sm backup show "$id" --json >"$T/show.json" || fail "backup show"
python3 - "$T/show.json" <<'PY' || fail "backup metadata: $(head -c 2000 "$T/show.json")"
import json, sys
b = json.load(open(sys.argv[1]))
parts = b["meta"]["parts"]
for p in ("database", "globals", "storage", "config"):
    assert parts[p]["sha256"].startswith("sha256:") and len(parts[p]["sha256"]) == 71, p
    assert parts[p]["size"] > 0, p
pg = b["meta"]["postgres"]
assert pg["server_version"].startswith("15"), pg["server_version"]
assert pg["row_counts"]["public.comments"] == 5000, pg["row_counts"].get("public.comments")
assert pg["row_counts"]["auth.users"] == 200
assert b["status"] == "COMPLETED" and b["type"] == "FULL" and b["size"] > 0
PY
ok "a full backup is COMPLETED with checksums, sizes, row counts and the PostgreSQL version"

sm backup verify "$id" --restore-test 2>"$T/verr" || fail "verify --restore-test: $(cat "$T/verr")"
grep -q "test restore matched every table's row count" "$T/verr" || fail "verify output: $(cat "$T/verr")"
[ -z "$(pg_psql "$PORT" postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE '%smverify%'")" ] ||
  fail "the scratch database of the restore test was left behind"
ok "verify --restore-test restores into a scratch database, compares row counts, drops it"

# damage every part
pg_psql "$PORT" proj -c "DROP TABLE public.comments CASCADE" \
  -c "UPDATE auth.users SET email = 'evil-' || id || '@example.com'" \
  -c "INSERT INTO storage.buckets (id, name) VALUES ('evil', 'evil')" >/dev/null || fail "damage db"
pg_psql "$PORT" postgres -c "ALTER DATABASE proj SET app.settings.jwt_exp = '1'" \
  -c "ALTER ROLE authenticator SET statement_timeout = '1s'" \
  -c "ALTER ROLE anon CREATEDB" -c "ALTER ROLE authenticator PASSWORD 'changed'" >/dev/null || fail "damage roles"
find "$T/p/storage" -type f | head -3 | xargs rm -f
f=$(find "$T/p/storage" -type f | head -1); echo junk >"$f"; chmod 600 "$f"
find "$T/p/storage" -type l -delete
echo "JWT_SECRET=stolen" >"$T/p/config/.env"
rm "$T/p/pgsodium_root.key"
fingerprint_project "$PORT" proj "$T/p" "$T/fp1" 2>/dev/null
! cmp -s "$T/fp0/db" "$T/fp1/db" && ! cmp -s "$T/fp0/storage" "$T/fp1/storage" || fail "the damage did not show (test setup)"

expect_fail 2 "no terminal to ask for confirmation" -- sm restore abc123 "$id"
sm restore abc123 "$id" --yes 2>"$T/rerr" || fail "restore: $(cat "$T/rerr")"
fingerprint_project "$PORT" proj "$T/p" "$T/fp2"
same_fingerprints "$T/fp0" "$T/fp2" "after restore"
cmp "$T/key0" "$T/p/pgsodium_root.key" || fail "the pgsodium root key was not restored"
[ -z "$(pg_psql "$PORT" postgres -Atc "SELECT datname FROM pg_database WHERE datname ~ '_sm(r|prev)_'")" ] ||
  fail "staging or previous databases left behind"
[ -z "$(ls -d "$T/p/"*.sm* 2>/dev/null)" ] || fail "staging or previous directories left behind: $(ls -d "$T/p/"*.sm*)"
ok "every damaged part is restored exactly (database, settings, roles, storage, config, pgsodium key)"

sm backup list abc123 --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
kinds = [b["kind"] for b in d["backups"]]
assert kinds.count("safety") == 1 and d["backups"][0]["kind"] == "safety", kinds
' || fail "no safety backup was taken before the restore"
ok "a safety backup of the damaged state was taken first"

sm backup delete "$id" --yes 2>/dev/null || fail "backup delete"
expect_fail 3 "unknown backup '$id'" -- sm backup show "$id"
ok "backup delete"
