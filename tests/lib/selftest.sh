#!/bin/bash
# tests/lib/selftest.sh [--keep] [--verbose]
# Self-test of tests/lib and tests/fixtures/supabase, and a report of what plain
# pg_dump / pg_restore get wrong on a Supabase database (see tests/fixtures/supabase/README.md).
#
#  1. fixture: roles.sql is idempotent; two databases built from roles+init+sample-data have the
#     same fingerprint; make-storage.sh is deterministic and matches storage.objects;
#     target-prepared.sql applies.
#  2. backup of the source: pg_dump -Fc, pg_dumpall --globals-only and --roles-only, and the
#     extension owners (which pg_dump does not record).
#  3. restore scenarios into new clusters, each compared with db_fingerprint/roles_fingerprint:
#     A naive       psql -f globals.sql; createdb; pg_restore -d           -> gaps reported
#     B --create    roles; pg_restore --create -d postgres                  -> gaps reported
#     C faithful    the recipe below                                       -> must be identical
#     D prepared    into a fresh instance's database (target-prepared.sql): plain, --clean
#                   --if-exists (gaps reported), and the faithful recipe into a staging
#                   database swapped in by rename (must be identical)
#     E demoted     pg_restore as a non-superuser "postgres" in a cluster bootstrapped by
#                   supabase_admin (as a real instance is): errors; then as supabase_admin
#     F data-only   schema first, then --data-only with and without --disable-triggers; then
#                   --section=pre-data / data / post-data
# Ends with "N passed, N failed"; exit status 0 only if nothing failed. The "gap:" lines are
# findings, not failures. --keep keeps the work dir (dumps, lists, fingerprints, logs).
set -uo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIX=$(cd "$LIB/../fixtures/supabase" && pwd)
. "$LIB/pg.sh"
. "$LIB/dbcompare.sh"

KEEP=0
VERBOSE=0
for a in "$@"; do
    case $a in
    --keep) KEEP=1 ;;
    --verbose) VERBOSE=1 ;;
    *) echo "usage: $0 [--keep] [--verbose]" >&2; exit 2 ;;
    esac
done

T=$(mktemp -d /tmp/sm-selftest.XXXXXX)
chmod 755 "$T"
CLUSTERS=()
cleanup() {
    local d
    for d in "${CLUSTERS[@]}"; do pg_stop "$d" >/dev/null 2>&1; done
    if [ "$KEEP" = 1 ]; then echo "# work dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

PASSED=0
FAILED=0
ok() { echo "ok - $*"; PASSED=$((PASSED + 1)); }
not_ok() { echo "not ok - $*"; FAILED=$((FAILED + 1)); }
check() { # check NAME CMD...: ok if CMD succeeds
    local name=$1
    shift
    if "$@" >"$T/check.out" 2>&1; then ok "$name"; else not_ok "$name"; sed 's/^/    /' "$T/check.out" | head -40; fi
}
gap() { echo "  gap: $*"; }
note() { echo "# $*"; }

# new_cluster NAME: starts a cluster in $T/NAME; sets PORT
new_cluster() {
    PORT=$(pg_free_port) || exit 1
    pg_start "$T/$1" "$PORT" || { echo "cannot start cluster $1" >&2; exit 1; }
    CLUSTERS+=("$T/$1")
}
run_sql() { # run_sql PORT DB FILE
    pg_psql "$1" "$2" -f "$3" >"$T/psql.out" 2>&1 || { cat "$T/psql.out" >&2; return 1; }
}
build_source() { # build_source PORT DB
    pg_createdb "$1" "$2" && run_sql "$1" "$2" "$FIX/init.sql" && run_sql "$1" "$2" "$FIX/sample-data.sql"
}
# error_summary LOG: distinct server errors of a psql/pg_restore log, with counts
error_summary() {
    grep -oE '(ERROR|FATAL): .*' "$1" |
        sed -E 's/"[^"]*"/"…"/g; s/ [0-9]+$//' | sort | uniq -c | sort -rn | head -n "${2:-12}" | sed 's/^/      /'
}
# section_diff A B: which fingerprint sections differ, with the lines lost (-) and gained (+)
section_diff() {
    local a=$1 b=$2 s sections
    sections=$(grep -h '^## ' "$a" "$b" | awk '!seen[$0]++')
    while IFS= read -r s; do
        awk -v s="$s" '$0 == s {on = 1; next} /^## / {on = 0} on' "$a" >"$T/sa"
        awk -v s="$s" '$0 == s {on = 1; next} /^## / {on = 0} on' "$b" >"$T/sb"
        cmp -s "$T/sa" "$T/sb" && continue
        local lost gained
        lost=$(diff "$T/sa" "$T/sb" | grep -c '^<')
        gained=$(diff "$T/sa" "$T/sb" | grep -c '^>')
        echo "    section '${s#\#\# }': $lost line(s) only in source, $gained only in restored"
        diff "$T/sa" "$T/sb" | grep -E '^[<>]' | grep -vE '^[<>] (--|$)' |
            head -n "$([ "$VERBOSE" = 1 ] && echo 60 || echo 8)" | cut -c1-160 | sed 's/^/      /'
    done <<<"$sections"
}
compare_db() { # compare_db LABEL SRC_URL DST_URL: 0 if identical, else prints the section diff
    db_fingerprint "$2" "$T/$1.src.fp" || return 2
    db_fingerprint "$3" "$T/$1.dst.fp" || return 2
    cmp -s "$T/$1.src.fp" "$T/$1.dst.fp" && return 0
    section_diff "$T/$1.src.fp" "$T/$1.dst.fp"
    return 1
}
compare_roles() { # compare_roles LABEL SRC_URL DST_URL
    roles_fingerprint "$2" "$T/$1.src.roles" || return 2
    roles_fingerprint "$3" "$T/$1.dst.roles" || return 2
    cmp -s "$T/$1.src.roles" "$T/$1.dst.roles" && return 0
    section_diff "$T/$1.src.roles" "$T/$1.dst.roles"
    return 1
}

# ---------------------------------------------------------------------------------------------
# The faithful recipe. Inputs (what a backup must hold): the custom-format dump, the
# roles-only globals, and the extension owners (extname schema version owner per line).
#   restore_globals PORT ROLES_SQL
#   restore_database PORT DUMP EXTOWNERS DBNAME
# DBNAME may differ from the dumped name (staged restore): the database-level statements are
# then rewritten from the dumped name to DBNAME.
# ---------------------------------------------------------------------------------------------

# Roles: pg_dumpall emits a bare "CREATE ROLE x;" per role, which fails for roles the target
# already has (always postgres; on a fresh Supabase instance all of them). Make each one
# conditional; the ALTER ROLE that follows sets attributes and the password either way.
restore_globals() {
    local port=$1 sql=$2
    sed -E 's/^CREATE ROLE (.+);$/DO $sm$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE quote_ident(rolname) = $q$\1$q$) THEN CREATE ROLE \1; END IF; END $sm$;/' \
        "$sql" >"$T/globals.cond.sql"
    pg_psql "$port" postgres -f "$T/globals.cond.sql" >"$T/globals.log" 2>&1
}

restore_database() {
    local port=$1 dump=$2 extowners=$3 db=$4
    local src e s v o
    pg_restore -l --create "$dump" >"$T/toc.full" || return 1
    src=$(sed -n 's/^; *dbname: //p' "$T/toc.full")
    # 1. the database itself: CREATE DATABASE, owner, comment, ACL, ALTER DATABASE/ROLE .. SET.
    #    Only `--create` emits these entries. Rendered to SQL so that the name can be changed.
    grep -E '^[0-9]+; [0-9]+ [0-9]+ (DATABASE|COMMENT - DATABASE|ACL - DATABASE|DATABASE PROPERTIES) ' "$T/toc.full" >"$T/toc.db"
    pg_restore --create -L "$T/toc.db" -f "$T/db.sql" "$dump" || return 1
    if [ "$db" != "$src" ]; then
        # identifiers as pg_dump quotes them; only the database's own statements are in db.sql
        local qs qd
        qs=$(pg_psql "$port" postgres -Atc "SELECT quote_ident('${src//\'/\'\'}')")
        qd=$(pg_psql "$port" postgres -Atc "SELECT quote_ident('${db//\'/\'\'}')")
        DB_SRC=$qs DB_DST=$qd perl -pi -e '
            my ($s, $d) = ($ENV{DB_SRC}, $ENV{DB_DST});
            s/^(CREATE DATABASE |ALTER DATABASE |\\connect )\Q$s\E(?=[ ;]|$)/$1$d/;
            s/ ON DATABASE \Q$s\E([ ;])/ ON DATABASE $d$1/;
            s/^(COMMENT ON DATABASE )\Q$s\E /$1$d /;
            s/( IN DATABASE )\Q$s\E /$1$d /;' "$T/db.sql"
    fi
    pg_psql "$port" postgres -f "$T/db.sql" >"$T/db.log" 2>&1 || { cat "$T/db.log"; return 1; }
    # 2. the schemas extensions live in, then each extension created by its original owner
    #    (CREATE EXTENSION makes the current user the owner of the extension and its members;
    #    pg_restore's own CREATE EXTENSION IF NOT EXISTS then does nothing).
    : >"$T/toc.extschemas"
    for s in $(awk '{print $2}' "$extowners" | sort -u); do
        grep -E "^[0-9]+; [0-9]+ [0-9]+ SCHEMA - $s " "$T/toc.full" >>"$T/toc.extschemas" || true
    done
    if [ -s "$T/toc.extschemas" ]; then
        pg_restore -d "$(pg_url "$port" "$db")" -L "$T/toc.extschemas" "$dump" || return 1
    fi
    while read -r e s v o; do
        [ -n "$e" ] || continue
        pg_psql "$port" "$db" -c "SET ROLE \"$o\"" -c "CREATE EXTENSION IF NOT EXISTS \"$e\" WITH SCHEMA \"$s\" VERSION '$v'" \
            -c "RESET ROLE" || return 1
    done <"$extowners"
    # 3. everything else, with session_replication_role=replica so that event triggers
    #    restored earlier in the run (or already in the target) and ordinary triggers do not
    #    fire (pg_restore restores event triggers before REFRESH MATERIALIZED VIEW).
    grep -v -F -x -f "$T/toc.db" "$T/toc.full" | grep -v -F -x -f "$T/toc.extschemas" >"$T/toc.rest"
    PGOPTIONS='-c session_replication_role=replica' \
        pg_restore --exit-on-error -d "$(pg_url "$port" "$db")" -L "$T/toc.rest" "$dump"
}

# ---------------------------------------------------------------------------------------------
note "work dir $T"
note "1. fixture"
new_cluster src
SRC=$PORT
SRC_URL=$(pg_url "$SRC" proj)
check "roles.sql applies" run_sql "$SRC" postgres "$FIX/roles.sql"
roles_fingerprint "$(pg_url "$SRC")" "$T/roles.1"
run_sql "$SRC" postgres "$FIX/roles.sql"
roles_fingerprint "$(pg_url "$SRC")" "$T/roles.2"
check "roles.sql is idempotent (same roles fingerprint after a second run)" fp_diff "$T/roles.1" "$T/roles.2"
t0=$(date +%s%N)
check "init.sql + sample-data.sql build database proj" build_source "$SRC" proj
note "  built in $((($(date +%s%N) - t0) / 1000000)) ms"
check "a second build (proj2) succeeds" build_source "$SRC" proj2
check "proj and proj2 have the same fingerprint (the fixture is deterministic)" \
    db_compare "$SRC_URL" "$(pg_url "$SRC" proj2)"
check "make-storage.sh builds the storage tree" bash "$FIX/make-storage.sh" "$T/storage1"
bash "$FIX/make-storage.sh" "$T/storage2" >/dev/null 2>&1
storage_fingerprint "$T/storage1" "$T/storage1.fp"
storage_fingerprint "$T/storage2" "$T/storage2.fp"
check "make-storage.sh is deterministic (same storage fingerprint twice)" fp_diff "$T/storage1.fp" "$T/storage2.fp"
check "storage.objects rows match the tree (path, size, md5, xattrs)" storage_objects_check "$SRC_URL" "$T/storage1"
pg_createdb "$SRC" fresh >/dev/null
check "target-prepared.sql applies to an empty database" run_sql "$SRC" fresh "$FIX/target-prepared.sql"
# it changed passwords cluster-wide: put the source's back
run_sql "$SRC" postgres "$FIX/roles.sql"
pg_psql "$SRC" postgres -c "DROP DATABASE fresh" -c "DROP DATABASE proj2" >/dev/null

note "2. backup"
check "pg_dump -Fc" pg_dump -Fc -f "$T/proj.dump" -d "$SRC_URL"
check "pg_dumpall --globals-only" pg_dumpall -d "$(pg_url "$SRC")" --globals-only -f "$T/globals.sql"
check "pg_dumpall --roles-only" pg_dumpall -d "$(pg_url "$SRC")" --roles-only -f "$T/roles.sql"
pg_psql "$SRC" proj -At -F ' ' -c "
    SELECT e.extname, n.nspname, e.extversion, pg_get_userbyid(e.extowner)
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname <> 'plpgsql' ORDER BY e.oid" >"$T/extowners.txt"
if pg_dumpall -d "postgresql://authenticator@127.0.0.1:$SRC/postgres" --roles-only >/dev/null 2>"$T/nonsuper.err"; then
    gap "pg_dumpall --roles-only as a non-superuser unexpectedly worked"
else
    gap "pg_dumpall as a non-superuser: $(grep -o 'ERROR: .*' "$T/nonsuper.err" | head -1) (only --no-role-passwords works, and loses every password)"
fi

# ---------------------------------------------------------------------------------------------
note "3A. naive: psql -f globals.sql; createdb proj; pg_restore -d proj proj.dump"
new_cluster a
pg_psql "$PORT" postgres -v ON_ERROR_STOP=0 -f "$T/globals.sql" >"$T/a.globals.log" 2>&1
gap "globals.sql errors: $(grep -c 'ERROR' "$T/a.globals.log")"
error_summary "$T/a.globals.log"
pg_createdb "$PORT" proj
pg_restore -d "$(pg_url "$PORT" proj)" "$T/proj.dump" >"$T/a.restore.log" 2>&1
gap "pg_restore exit status $?, $(grep -c 'ERROR' "$T/a.restore.log") errors"
if compare_db A "$SRC_URL" "$(pg_url "$PORT" proj)" >"$T/A.diff"; then
    not_ok "naive restore differs from the source (fingerprint should have caught the lost database settings)"
else
    ok "naive restore differs from the source, as expected; gaps:"
    cat "$T/A.diff"
fi
compare_roles A "$SRC_URL" "$(pg_url "$PORT" proj)" >"$T/A.roles.diff" && ok "naive: roles identical (globals.sql ran; only 'role postgres already exists' failed)" ||
    { gap "naive: roles differ"; cat "$T/A.roles.diff"; }

# ---------------------------------------------------------------------------------------------
note "3B. pg_restore --create -d postgres (roles restored first)"
new_cluster b
restore_globals "$PORT" "$T/roles.sql" || not_ok "roles restore"
pg_restore --create -d "$(pg_url "$PORT")" "$T/proj.dump" >"$T/b.restore.log" 2>&1
gap "pg_restore exit status $?, $(grep -c 'ERROR' "$T/b.restore.log") errors"
if compare_db B "$SRC_URL" "$(pg_url "$PORT" proj)" >"$T/B.diff"; then
    ok "--create restore is identical"
else
    ok "--create restore still differs (extension owners; event trigger fired during restore):"
    cat "$T/B.diff"
fi

# ---------------------------------------------------------------------------------------------
note "3C. faithful recipe (restore_globals + restore_database in this file)"
new_cluster c
check "roles restore (CREATE ROLE made conditional)" restore_globals "$PORT" "$T/roles.sql"
check "database restore" restore_database "$PORT" "$T/proj.dump" "$T/extowners.txt" proj
check "faithful restore: database fingerprint identical" compare_db C "$SRC_URL" "$(pg_url "$PORT" proj)"
check "faithful restore: roles fingerprint identical" compare_roles C "$SRC_URL" "$(pg_url "$PORT" proj)"

# ---------------------------------------------------------------------------------------------
note "3D. import into a fresh instance's database (target-prepared.sql)"
new_cluster d
D=$PORT
# a fresh instance's database: CREATE DATABASE ... TEMPLATE would not copy its settings, ACL
# and comment, so each attempt rebuilds it
reset_target() {
    pg_psql "$D" postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS proj" \
        -c "CREATE DATABASE proj" >/dev/null &&
        run_sql "$D" proj "$FIX/target-prepared.sql"
}
reset_target || not_ok "target-prepared.sql"
pg_restore -d "$(pg_url "$D" proj)" "$T/proj.dump" >"$T/d1.restore.log" 2>&1
gap "plain pg_restore into it: exit status $?, $(grep -c 'ERROR' "$T/d1.restore.log") errors, most frequent:"
error_summary "$T/d1.restore.log" 8
compare_db D1 "$SRC_URL" "$(pg_url "$D" proj)" >"$T/D1.diff" || { gap "result differs:"; cat "$T/D1.diff"; }

reset_target
pg_restore --clean --if-exists -d "$(pg_url "$D" proj)" "$T/proj.dump" >"$T/d2.restore.log" 2>&1
gap "pg_restore --clean --if-exists into it: exit status $?, $(grep -c 'ERROR' "$T/d2.restore.log") errors"
error_summary "$T/d2.restore.log" 8
compare_db D2 "$SRC_URL" "$(pg_url "$D" proj)" >"$T/D2.diff" && ok "--clean --if-exists result identical" ||
    { gap "--clean --if-exists result differs:"; cat "$T/D2.diff"; }

reset_target
check "staged: roles restore over the instance's roles" restore_globals "$D" "$T/roles.sql"
check "staged: database restore into proj_staging" restore_database "$D" "$T/proj.dump" "$T/extowners.txt" proj_staging
check "staged: swap by rename (proj -> proj_old, proj_staging -> proj)" \
    pg_psql "$D" postgres -c "ALTER DATABASE proj RENAME TO proj_old" -c "ALTER DATABASE proj_staging RENAME TO proj"
check "staged import: database fingerprint identical" compare_db D3 "$SRC_URL" "$(pg_url "$D" proj)"
check "staged import: roles fingerprint identical" compare_roles D3 "$SRC_URL" "$(pg_url "$D" proj)"

# ---------------------------------------------------------------------------------------------
note "3E. pg_restore as a demoted postgres (cluster bootstrapped by supabase_admin, postgres NOSUPERUSER, as in a real image)"
PG_SUPERUSER=supabase_admin new_cluster e
E=$PORT
PG_SUPERUSER=supabase_admin restore_globals "$E" "$T/roles.sql" >/dev/null
PG_SUPERUSER=supabase_admin pg_psql "$E" postgres \
    -c "ALTER ROLE postgres NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS" \
    -c "CREATE DATABASE proj OWNER postgres" >/dev/null
pg_restore -d "postgresql://postgres@127.0.0.1:$E/proj" "$T/proj.dump" >"$T/e.restore.log" 2>&1
gap "pg_restore as non-superuser postgres: exit status $?, $(grep -c 'ERROR' "$T/e.restore.log") errors:"
grep -oE 'ERROR: .*' "$T/e.restore.log" | sed -E 's/ [0-9]+$//' | sort | uniq -c | sort -rn | head -20 | sed 's/^/      /'
PG_SUPERUSER=supabase_admin pg_psql "$E" postgres -c "CREATE DATABASE proj2" >/dev/null
PG_SUPERUSER=supabase_admin pg_restore -d "postgresql://supabase_admin@127.0.0.1:$E/proj2" "$T/proj.dump" >"$T/e2.restore.log" 2>&1
rc=$?
[ "$rc" = 0 ] && ok "the same restore as supabase_admin (the real superuser) has no errors" ||
    { not_ok "the same restore as supabase_admin: exit status $rc"; error_summary "$T/e2.restore.log"; }

# ---------------------------------------------------------------------------------------------
note "3F. data-only restore into a schema restored separately"
new_cluster f
F=$PORT
restore_globals "$F" "$T/roles.sql" >/dev/null
pg_psql "$F" postgres -c "CREATE DATABASE proj" >/dev/null
pg_restore --schema-only -d "$(pg_url "$F" proj)" "$T/proj.dump" >"$T/f.schema.log" 2>&1
pg_psql "$F" postgres -c "CREATE DATABASE schema_only TEMPLATE proj" >/dev/null
pg_restore --data-only -d "$(pg_url "$F" proj)" "$T/proj.dump" >"$T/f1.restore.log" 2>&1
gap "--data-only with triggers enabled: exit status $?, $(grep -c 'ERROR' "$T/f1.restore.log") errors"
error_summary "$T/f1.restore.log" 6
compare_db F1 "$SRC_URL" "$(pg_url "$F" proj)" >"$T/F1.diff" || { gap "result differs:"; cat "$T/F1.diff"; }
pg_psql "$F" postgres -c "DROP DATABASE proj" -c "CREATE DATABASE proj TEMPLATE schema_only" >/dev/null
PGOPTIONS='-c session_replication_role=replica' pg_restore --data-only --disable-triggers \
    -d "$(pg_url "$F" proj)" "$T/proj.dump" >"$T/f2.restore.log" 2>&1
gap "--data-only --disable-triggers + session_replication_role=replica: exit status $?, $(grep -c 'ERROR' "$T/f2.restore.log") errors"
compare_db F2 "$SRC_URL" "$(pg_url "$F" proj)" >"$T/F2.diff" && ok "data-only restore with triggers off: identical" ||
    { gap "result differs (what the plain schema-only step lost):"; cat "$T/F2.diff"; }

pg_psql "$F" postgres -c "DROP DATABASE proj" -c "CREATE DATABASE proj" >/dev/null
rc=0
for sec in pre-data data post-data; do
    PGOPTIONS='-c session_replication_role=replica' pg_restore --section=$sec \
        -d "$(pg_url "$F" proj)" "$T/proj.dump" >>"$T/f3.restore.log" 2>&1 || rc=$?
done
gap "--section=pre-data, data, post-data (session_replication_role=replica): exit status $rc, $(grep -c 'ERROR' "$T/f3.restore.log") errors"
compare_db F3 "$SRC_URL" "$(pg_url "$F" proj)" >"$T/F3.diff" && ok "sectioned restore identical" ||
    { gap "result differs (no --create, no extension owners):"; grep "section '" "$T/F3.diff"; }
if grep -q "section 'row counts'" "$T/F3.diff"; then
    not_ok "sectioned restore: row counts differ"
else
    ok "sectioned restore: every table and materialized view has its rows"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
