#!/bin/bash
# A wrong restore is never final (restore --undo), restores can pick parts,
# clone into another project (--to-project), and incremental backups reuse
# unchanged files and restore exactly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
make_project_files "$T/p"
URL=$(pg_url "$PORT" proj)
sm project add abc123 --name App --db-url "$URL" --storage-dir "$T/p/storage" --config-dir "$T/p/config" 2>/dev/null ||
  fail "project add"
id1=$(sm backup create abc123 2>/dev/null) || fail "backup 1"

# later changes, then a wrong restore of the old backup, then undo
pg_psql "$PORT" proj -c "INSERT INTO public.posts (title, body) SELECT 'new ' || g, 'b' FROM generate_series(1, 10) g" >/dev/null 2>&1 ||
  pg_psql "$PORT" proj -c "CREATE TABLE public.newer (x int); INSERT INTO public.newer VALUES (1)" >/dev/null
echo "new file" >"$T/p/storage/new.txt"
fingerprint_project "$PORT" proj "$T/p" "$T/fp-new"
sm restore abc123 "$id1" --yes 2>/dev/null || fail "restore"
[ ! -e "$T/p/storage/new.txt" ] || fail "restore kept a newer file"
sm restore --undo abc123 --yes 2>"$T/uerr" || fail "restore --undo: $(cat "$T/uerr")"
fingerprint_project "$PORT" proj "$T/p" "$T/fp-undo"
same_fingerprints "$T/fp-new" "$T/fp-undo" "after undo"
ok "restore --undo puts back the state from before the restore"

# only the database: storage untouched
echo "only here" >"$T/p/storage/keep.txt"
pg_psql "$PORT" proj -c "CREATE TABLE public.temp_only (x int)" >/dev/null
sm restore abc123 "$id1" --parts database --yes 2>/dev/null || fail "restore --parts database"
[ -f "$T/p/storage/keep.txt" ] || fail "--parts database touched the storage"
[ "$(pg_psql "$PORT" proj -Atc "SELECT count(*) FROM pg_tables WHERE tablename = 'temp_only'")" = 0 ] ||
  fail "--parts database did not restore the database"
ok "--parts database restores the database and leaves storage alone"

# clone into another project on another database
pg_createdb "$PORT" clone
mkdir -p "$T/c/storage" "$T/c/config"
sm project add clone1 --name Clone --db-url "$(pg_url "$PORT" clone)" --storage-dir "$T/c/storage" \
  --config-dir "$T/c/config" 2>"$T/cerr" || fail "add clone: $(cat "$T/cerr")"
sm restore abc123 "$id1" --to-project clone1 --yes 2>"$T/cerr" || fail "clone: $(cat "$T/cerr")"
for t in public.comments auth.users; do
  [ "$(pg_psql "$PORT" proj -Atc "SELECT count(*) FROM $t")" = "$(pg_psql "$PORT" clone -Atc "SELECT count(*) FROM $t")" ] ||
    fail "clone: $t differs"
done
[ "$(pg_psql "$PORT" clone -Atc "SHOW app.settings.jwt_exp")" = "$(pg_psql "$PORT" proj -Atc "SHOW app.settings.jwt_exp")" ] ||
  fail "clone: database settings were not carried"
ok "--to-project clones a backup into another registered project"

# incremental: unchanged files are not read again, and it restores exactly
sm backup create abc123 --type incremental --json >"$T/inc.json" 2>/dev/null || fail "incremental"
python3 - "$T/inc.json" <<'PY' || fail "incremental did not reuse files: $(head -c 1500 "$T/inc.json")"
import json, sys
b = json.load(open(sys.argv[1]))
assert b["type"] == "INCREMENTAL" and b["parent_id"], b
st = b["meta"]["parts"]["storage"]
assert st["files_unchanged"] >= st["files"] - 2, st
PY
fingerprint_project "$PORT" proj "$T/p" "$T/fp-inc"
inc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/inc.json")
find "$T/p/storage" -type f -name '*.txt' -delete
sm restore abc123 "$inc" --yes 2>/dev/null || fail "restore incremental"
fingerprint_project "$PORT" proj "$T/p" "$T/fp-inc2"
same_fingerprints "$T/fp-inc" "$T/fp-inc2" "after restoring the incremental backup"
ok "an incremental backup reuses unchanged files and restores exactly"

# safety backups are kept SUPAMANAGER_SAFETY_DAYS (7) days: 8 days later the
# next backup deletes them; and backup ids are unique even twice in one second
# (the clock is driven)
nsafety() { sm backup list abc123 --json | python3 -c 'import json,sys; print(sum(b["kind"]=="safety" for b in json.load(sys.stdin)["backups"]))'; }
[ "$(nsafety)" -ge 1 ] || fail "no safety backups to expire (test setup)"
t0=$(( $(date +%s) + 8 * 86400 ))
want="backup_abc123_$(date -u -d "@$t0" +%Y%m%d_%H%M%S)"
a=$(SUPAMANAGER_NOW=$t0 "$SM" backup create abc123 --type storage 2>/dev/null) || fail "backup at a driven time"
[ "$(nsafety)" = 0 ] || fail "expired safety backups were not deleted"
ok "expired safety backups are deleted by the next backup"
b=$(SUPAMANAGER_NOW=$t0 "$SM" backup create abc123 --type storage 2>/dev/null) || fail "second backup in the same second"
[ "$a" = "$want" ] && [ "$b" = "${want}_2" ] || fail "ids '$a' and '$b', expected '$want' and '${want}_2'"
ok "backup ids are backup_<project>_<UTC time>, unique within one second"

# on a terminal: a progress bar with percent, rate and ETA
script -qec "'$SM' backup create abc123 --type storage" /dev/null >"$T/tty.out" 2>&1 || fail "backup on a terminal"
grep -q "\[###*.*\] *100%" "$T/tty.out" && grep -q "/s" "$T/tty.out" || fail "no progress bar on a terminal: $(tr '\r' '\n' <"$T/tty.out" | tail -5)"
ok "a progress bar on a terminal"
