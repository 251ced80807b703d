#!/bin/bash
# tests/lib/dbcompare.sh: fingerprints of what a restore must reproduce, for test assertions.
#
#     . tests/lib/dbcompare.sh
#     db_fingerprint "$SRC_URL" src.fp          # one database
#     db_fingerprint "$DST_URL" dst.fp
#     fp_diff src.fp dst.fp                     # 0 if identical, else prints a unified diff, 1
#     roles_fingerprint "$SRC_URL" src.roles    # the cluster's roles (any database of it)
#     db_compare URL1 URL2 / roles_compare URL1 URL2   # fingerprint both, then fp_diff
#     storage_fingerprint DIR OUT               # a storage tree: paths, types, modes, owners,
#                                               # sizes, mtimes, link targets, xattrs, sha256
#     storage_objects_check URL DIR             # storage.objects rows <-> file backend tree
#
# Both URLs are libpq connection strings; connect as a superuser (pg_authid, large objects and
# every schema must be readable). Database fingerprints do not contain the database name or
# oid, so a restore under another name (staged restore, then rename) compares equal.
#
# db_fingerprint sections:
#   ## pg_dump        plain pg_dump (schema + data + large objects) of the database, with
#                     lines that differ between two dumps of the same data removed: the
#                     \restrict / \unrestrict KEY lines (pg_dump >= 15.14 puts a random key
#                     there) and the "Dumped from/by version" comments; rows inside each COPY
#                     block sorted (physical row order is not something a restore must keep).
#   ## database       what only `pg_dump --create` carries: owner, encoding, locale, connection
#                     limit, allow-connections, ACL, comment, ALTER DATABASE ... SET and
#                     ALTER ROLE ... IN DATABASE ... SET.
#   ## extensions     name, version, schema, owner, and the owners of the member objects (pg_dump
#                     never records who owns an extension; the restoring user ends up owning it).
#   ## event triggers name, event, tags, enabled state, owner, function.
#   ## sequences      last_value (NULL when never called) of every sequence.
#   ## large objects  oid, owner, size, md5, ACL.
#   ## row counts     per table (a quick view of what a diff of the data section is about).
# roles_fingerprint sections: roles (pg_authid, with password hashes), role comments,
# memberships (with grantor and admin option), role settings (setdatabase = 0) and
# parameter privileges (pg_parameter_acl, PostgreSQL 15+). Predefined pg_* roles are skipped
# as members but kept as granted roles.
#
# Needs pg_dump and psql of the server's major version (tests/lib/pg.sh puts
# /usr/lib/postgresql/15/bin first on PATH).

: "${PG_BIN:=/usr/lib/postgresql/15/bin}"
case ":$PATH:" in *":$PG_BIN:"*) ;; *) PATH="$PG_BIN:$PATH" ;; esac

_dbc_psql() { # URL SQL: tab-separated, unaligned, no headers
    PGTZ=UTC PGDATESTYLE=ISO PGOPTIONS="${PGOPTIONS:-} -c extra_float_digits=3 -c search_path=pg_catalog" \
        psql -X -q -v ON_ERROR_STOP=1 -At -F $'\t' -d "$1" -c "$2"
}

# Normalizes a plain pg_dump: drops lines that differ between dumps of identical databases and
# sorts the rows inside each COPY ... FROM stdin; block.
dump_normalize() {
    LC_ALL=C awk '
        /^\\(un)?restrict / { next }
        /^-- Dumped (from database|by pg_dump) version / { next }
        incopy && $0 == "\\." { close(cmd); fflush(); print; incopy = 0; next }
        incopy { print | cmd; next }
        /^COPY .* FROM stdin;$/ { print; fflush(); incopy = 1; cmd = "LC_ALL=C sort"; next }
        { print }
    '
}

db_fingerprint() {
    local url=${1:?usage: db_fingerprint URL OUTFILE} out=${2:?usage: db_fingerprint URL OUTFILE}
    (
        set -o pipefail
        echo "## pg_dump"
        PGTZ=UTC pg_dump --no-password -d "$url" | dump_normalize || exit 1

        echo "## database"
        _dbc_psql "$url" "
            SELECT v.k, v.v FROM pg_database d CROSS JOIN LATERAL (VALUES
                (1, 'owner', pg_get_userbyid(d.datdba)::text),
                (2, 'encoding', pg_encoding_to_char(d.encoding)::text),
                (3, 'collate', d.datcollate::text),
                (4, 'ctype', d.datctype::text),
                (5, 'locale provider', d.datlocprovider::text),
                (6, 'icu locale', coalesce(d.daticulocale, '')),
                (7, 'connection limit', d.datconnlimit::text),
                (8, 'allow connections', d.datallowconn::text),
                (9, 'is template', d.datistemplate::text),
                (10, 'comment', coalesce(shobj_description(d.oid, 'pg_database'), ''))
            ) AS v(n, k, v)
            WHERE d.datname = current_database() ORDER BY v.n" || exit 1
        _dbc_psql "$url" "
            SELECT 'acl', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                   a.privilege_type, 'grantor=' || pg_get_userbyid(a.grantor), 'grantable=' || a.is_grantable
            FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
            WHERE d.datname = current_database()
            ORDER BY 2, 3, 4" || exit 1
        _dbc_psql "$url" "
            SELECT CASE WHEN s.setrole = 0 THEN 'ALTER DATABASE SET'
                        ELSE 'ALTER ROLE ' || quote_ident(pg_get_userbyid(s.setrole)) || ' IN DATABASE SET' END,
                   c.cfg
            FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c(cfg)
            WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY 1, 2" || exit 1

        echo "## extensions"
        _dbc_psql "$url" "
            SELECT e.extname, e.extversion, n.nspname, pg_get_userbyid(e.extowner), e.extrelocatable
            FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            ORDER BY 1" || exit 1
        _dbc_psql "$url" "
            SELECT e.extname, 'members owned by', o.owner, count(*)
            FROM pg_depend d
            JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
            CROSS JOIN LATERAL (
                SELECT pg_get_userbyid(p.proowner) FROM pg_proc p WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid
                UNION ALL SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE d.classid = 'pg_class'::regclass AND c.oid = d.objid
                UNION ALL SELECT pg_get_userbyid(t.typowner) FROM pg_type t WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                UNION ALL SELECT pg_get_userbyid(o.oprowner) FROM pg_operator o WHERE d.classid = 'pg_operator'::regclass AND o.oid = d.objid
            ) AS o(owner)
            WHERE d.deptype = 'e'
            GROUP BY 1, 3 ORDER BY 1, 3" || exit 1

        echo "## event triggers"
        _dbc_psql "$url" "
            SELECT evtname, evtevent, coalesce(array_to_string(evttags, ','), ''), evtenabled,
                   pg_get_userbyid(evtowner), evtfoid::regprocedure
            FROM pg_event_trigger ORDER BY 1" || exit 1

        echo "## sequences"
        _dbc_psql "$url" "
            SELECT s.seqrelid::regclass, coalesce(pg_sequence_last_value(s.seqrelid)::text, 'NULL')
            FROM pg_sequence s ORDER BY s.seqrelid::regclass::text" || exit 1

        echo "## large objects"
        _dbc_psql "$url" "
            SELECT m.oid, pg_get_userbyid(m.lomowner), length(lo_get(m.oid)), md5(lo_get(m.oid)),
                   coalesce(m.lomacl::text, '')
            FROM pg_largeobject_metadata m ORDER BY 1" || exit 1

        echo "## row counts"
        _dbc_psql "$url" "
            SELECT format('%I.%I', n.nspname, c.relname),
                   (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
              AND (c.relkind <> 'm' OR c.relispopulated)
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
            ORDER BY 1" || exit 1
    ) >"$out"
}

roles_fingerprint() {
    local url=${1:?usage: roles_fingerprint URL OUTFILE} out=${2:?usage: roles_fingerprint URL OUTFILE}
    (
        set -o pipefail
        echo "## roles (name super inherit createrole createdb login replication bypassrls connlimit validuntil password)"
        _dbc_psql "$url" "
            SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
                   rolreplication, rolbypassrls, rolconnlimit, coalesce(rolvaliduntil::text, 'NULL'),
                   coalesce(rolpassword, 'NULL')
            FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY 1" || exit 1
        echo "## role comments"
        _dbc_psql "$url" "
            SELECT rolname, d.description FROM pg_authid a
            JOIN pg_shdescription d ON d.objoid = a.oid AND d.classoid = 'pg_authid'::regclass
            ORDER BY 1" || exit 1
        echo "## memberships (role member grantor admin_option)"
        _dbc_psql "$url" "
            SELECT pg_get_userbyid(m.roleid), pg_get_userbyid(m.member), pg_get_userbyid(m.grantor), m.admin_option
            FROM pg_auth_members m
            WHERE pg_get_userbyid(m.member) !~ '^pg_'
            ORDER BY 1, 2, 3" || exit 1
        echo "## role settings"
        _dbc_psql "$url" "
            SELECT pg_get_userbyid(s.setrole), c.cfg
            FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c(cfg)
            WHERE s.setdatabase = 0 ORDER BY 1, 2" || exit 1
        echo "## parameter privileges"
        if [ "$(_dbc_psql "$url" "SELECT current_setting('server_version_num')::int >= 150000")" = t ]; then
            _dbc_psql "$url" "
                SELECT p.parname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                       a.privilege_type, pg_get_userbyid(a.grantor), a.is_grantable
                FROM pg_parameter_acl p CROSS JOIN LATERAL aclexplode(p.paracl) a
                ORDER BY 1, 2, 3" || exit 1
        fi
    ) >"$out"
}

# storage_fingerprint DIR OUT: one line per entry below DIR, sorted by path.
storage_fingerprint() {
    local dir=${1:?usage: storage_fingerprint DIR OUTFILE} out=${2:?usage: storage_fingerprint DIR OUTFILE}
    (
        set -o pipefail
        cd "$dir" || exit 1
        find . -mindepth 1 -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' p; do
            local type sum xattrs
            type=$(stat -c '%F' -- "$p")
            sum=-
            [ -f "$p" ] && [ ! -L "$p" ] && sum=$(sha256sum <"$p" | cut -c1-64)
            xattrs=$(getfattr -h -d -m - --absolute-names -- "$p" 2>/dev/null | grep -v '^#' | grep -v '^$' | LC_ALL=C sort | tr '\n' ' ')
            printf '%s\t%s\t%s\t%s:%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$type" "$(stat -c '%a' -- "$p")" \
                "$(stat -c '%u' -- "$p")" "$(stat -c '%g' -- "$p")" \
                "$( [ -d "$p" ] && echo - || stat -c '%s' -- "$p")" \
                "$(stat -c '%Y' -- "$p")" "$(readlink -- "$p" || true)" "$sum" "$xattrs"
        done
    ) >"$out"
}

# storage_objects_check URL DIR [PREFIX]: every storage.objects row of the database at URL has
# its file at DIR/PREFIX/<bucket_id>/<name>/<version> (PREFIX defaults to stub/stub, the file
# backend's GLOBAL_S3_BUCKET/TENANT_ID) with the size, md5 eTag, content type and cache control
# of its metadata (the last two as the file backend's user.supabase.* xattrs). Prints one line
# per problem and a summary; returns 1 if any.
storage_objects_check() {
    local url=${1:?usage: storage_objects_check URL DIR [PREFIX]} dir=${2:?usage: storage_objects_check URL DIR [PREFIX]}
    local prefix=${3:-stub/stub} n=0 bad=0 rows f got
    local bucket name version size etag mime cache
    rows=$(_dbc_psql "$url" "
        SELECT bucket_id, name, coalesce(version, ''), metadata->>'size', metadata->>'eTag',
               metadata->>'mimetype', metadata->>'cacheControl'
        FROM storage.objects ORDER BY bucket_id, name") || return 1
    while IFS=$'\t' read -r bucket name version size etag mime cache; do
        [ -n "$bucket" ] || continue
        n=$((n + 1))
        f="$dir/$prefix/$bucket/$name${version:+/$version}"
        if [ ! -f "$f" ]; then echo "missing: $f"; bad=$((bad + 1)); continue; fi
        got=$(stat -c %s -- "$f")
        [ "$got" = "$size" ] || { echo "size $got, metadata says $size: $f"; bad=$((bad + 1)); }
        got=\"$(md5sum <"$f" | cut -c1-32)\"
        [ "$got" = "$etag" ] || { echo "md5 $got, eTag says $etag: $f"; bad=$((bad + 1)); }
        got=$(getfattr --only-values -n user.supabase.content-type -- "$f" 2>/dev/null)
        [ "$got" = "$mime" ] || { echo "content-type xattr '$got', metadata says '$mime': $f"; bad=$((bad + 1)); }
        got=$(getfattr --only-values -n user.supabase.cache-control -- "$f" 2>/dev/null)
        [ "$got" = "$cache" ] || { echo "cache-control xattr '$got', metadata says '$cache': $f"; bad=$((bad + 1)); }
    done <<<"$rows"
    echo "$n objects checked, $bad problems"
    [ "$bad" = 0 ]
}

# fp_diff A B: 0 if identical; else a unified diff (at most FP_DIFF_LINES lines, default 200).
fp_diff() {
    local a=${1:?usage: fp_diff A B} b=${2:?usage: fp_diff A B}
    if cmp -s "$a" "$b"; then return 0; fi
    diff -u "$a" "$b" | head -n "${FP_DIFF_LINES:-200}"
    return 1
}

db_compare() {
    local t rc
    t=$(mktemp -d) || return 1
    db_fingerprint "${1:?usage: db_compare URL1 URL2}" "$t/a" && db_fingerprint "${2:?usage: db_compare URL1 URL2}" "$t/b" &&
        fp_diff "$t/a" "$t/b"
    rc=$?
    rm -rf "$t"
    return $rc
}

roles_compare() {
    local t rc
    t=$(mktemp -d) || return 1
    roles_fingerprint "${1:?usage: roles_compare URL1 URL2}" "$t/a" && roles_fingerprint "${2:?usage: roles_compare URL1 URL2}" "$t/b" &&
        fp_diff "$t/a" "$t/b"
    rc=$?
    rm -rf "$t"
    return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cmd=${1:-}
    shift || true
    case $cmd in
    db) db_fingerprint "$@" ;;
    roles) roles_fingerprint "$@" ;;
    storage) storage_fingerprint "$@" ;;
    db-compare) db_compare "$@" ;;
    storage-check) storage_objects_check "$@" ;;
    roles-compare) roles_compare "$@" ;;
    *)
        echo "usage: $0 db URL OUT | roles URL OUT | storage DIR OUT | storage-check URL DIR [PREFIX]" >&2
        echo "       $0 db-compare URL1 URL2 | roles-compare URL1 URL2" >&2
        exit 2
        ;;
    esac
fi
