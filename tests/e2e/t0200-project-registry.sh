#!/bin/bash
# Projects: add (with checks of the database URL and paths), list, show,
# edit, remove; bad ids and unreachable or unprivileged databases get clear
# errors and register nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_project.sh"

start_cluster src source
make_project_files "$T/p"
URL=$(pg_url "$PORT" proj)

sm project add abc123 --name "My App" --db-url "$URL" --storage-dir "$T/p/storage" \
  --config-dir "$T/p/config" 2>"$T/err" || fail "project add: $(cat "$T/err")"
sm project list | grep -q "^abc123 *My App" || fail "project list: $(sm project list)"
sm project show abc123 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["storage_dir"].endswith("/p/storage") and d["name"]=="My App", d' ||
  fail "project show --json"
[ -f "$SUPAMANAGER_HOME/catalog.db" ] || fail "no catalog under SUPAMANAGER_HOME"
ok "add, list, show"

expect_fail 1 "project 'abc123' already exists" -- sm project add abc123 --name X --db-url "$URL" --storage-dir "$T/p/storage"
expect_fail 2 "invalid project id 'Bad_Id'" -- sm project add Bad_Id --name X --db-url "$URL" --storage-dir "$T/p/storage"
expect_fail 2 "invalid project id 'ab'" -- sm project add ab --name X --db-url "$URL" --storage-dir "$T/p/storage"
expect_fail 3 "storage directory '$T/nope' is missing" -- sm project add p2-x --name X --db-url "$URL" --storage-dir "$T/nope"
dead=$(pg_free_port)
expect_fail 1 "cannot connect to PostgreSQL at 127.0.0.1:$dead" -- sm project add p3-x --name X \
  --db-url "postgresql://postgres@127.0.0.1:$dead/proj" --storage-dir "$T/p/storage"
pg_psql "$PORT" postgres -c "CREATE ROLE plainuser LOGIN" >/dev/null
out=$(sm project add p4-x --name X --db-url "postgresql://plainuser@127.0.0.1:$PORT/proj" --storage-dir "$T/p/storage" 2>&1)
[ $? -ne 0 ] && grep -q "plainuser" <<<"$out" || fail "a non-superuser role was accepted: $out"
[ "$(sm project list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
  fail "a failed add registered a project"
ok "bad ids, missing dirs, unreachable and unprivileged databases are refused clearly"

sm project edit abc123 --name "Renamed" --pause-cmd "true" 2>/dev/null || fail "edit"
sm project show abc123 | grep -q "name: *Renamed" || fail "edit did not change the name"
expect_fail 3 "unknown project 'nope'" -- sm project show nope
expect_fail 2 "no terminal to ask for confirmation" -- sm project remove abc123
sm project show abc123 >/dev/null || fail "an unconfirmed remove removed the project"
sm project remove abc123 --yes 2>/dev/null || fail "remove"
expect_fail 3 "unknown project 'abc123'" -- sm project show abc123
ok "edit and remove"

# the repository location: s3:// or a directory (a relative one is made absolute)
expect_fail 2 "--store must be s3://BUCKET[/PREFIX] or a directory, not 'ftp://x'" -- \
  sm project add st1 --name S --db-url "$URL" --storage-dir "$T/p/storage" --store ftp://x
(cd "$T" && "$SM" project add st1 --name S --db-url "$URL" --storage-dir "$T/p/storage" --store repos/st1 2>/dev/null) ||
  fail "project add with a relative --store"
sm project show st1 | grep -qx "store: *$T/repos/st1" || fail "relative store not made absolute: $(sm project show st1 | grep store)"
ok "--store takes s3:// or a directory, made absolute"

# one repository per project: a store inside, around or equal to another
# project's location (its default directory too) is refused
expect_fail 5 "the store '$T/repos//./st1/' shares its objects with project 'st1', whose backups are in '$T/repos/st1'" -- \
  sm project add st2 --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "$T/repos//./st1/"
expect_fail 5 "shares its objects with project 'st1'" -- \
  sm project add st2 --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "$T/repos/st1/x/../inner"
expect_fail 5 "shares its objects with project 'st1'" -- \
  sm project add st2 --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "$T/repos"
sm project add st2 --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "$T/repos/st10" 2>/dev/null ||
  fail "a sibling whose name starts like another's was refused"
expect_fail 5 "shares its objects with project 'st2', whose backups are in '$T/repos/st10'" -- \
  sm project edit st1 --store "$T/repos/st10/sub"
sm project add st3 --name S --db-url "$URL" --storage-dir "$T/p/storage" 2>/dev/null || fail "project add st3"
expect_fail 5 "shares its objects with project 'st3', whose backups are in '$SUPAMANAGER_HOME/backups/st3'" -- \
  sm project add st4 --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "$SUPAMANAGER_HOME/backups"
sm project add s3a --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "s3://bkt/team/a?endpoint=http://127.0.0.1:9" 2>/dev/null ||
  fail "project add s3a"
expect_fail 5 "shares its objects with project 's3a'" -- \
  sm project add s3b --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "s3://bkt/team?endpoint=http://other:9"
sm project add s3b --name S --db-url "$URL" --storage-dir "$T/p/storage" --store "s3://bkt/team/ab" 2>/dev/null ||
  fail "a prefix that only starts like another's was refused"
ok "a store that shares objects with another project's (equal, inside, around; S3 by bucket and prefix) is refused"
