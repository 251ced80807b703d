/* src/source/pg.c against real PostgreSQL 15 clusters (tests/lib/pg.sh): probe and its errors,
 * snapshot metadata, dumps through pipes, the exact restore recipe into a Supabase-shaped
 * instance (tests/fixtures/supabase) checked with tests/lib/dbcompare.sh fingerprints, swap,
 * and what a failed restore leaves behind.
 *
 * One group: its setup starts two throwaway clusters, "src" (roles.sql + init.sql +
 * sample-data.sql in database proj) and "dst" (a fresh instance: target-prepared.sql in
 * database proj); its teardown stops them. Needs SOURCE_ROOT (tests/meson.build sets it). */
#include "../unit_helpers.h"

#include "core/log.h"
#include "source/pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>

#define PW "pw-s3cret-9f2"

typedef struct world {
    char *root; /* the source tree */
    char *dir;  /* our temporary directory (mode 755: the server user must reach it) */
    int src_port, dst_port;
    char src_url[256], dst_url[256]; /* .../proj as postgres */
    pg_server src, dst;
    /* made on first use */
    char *dump_path, *globals_path;
    json_t *meta;
    int globals_on_dst;
} world;

/* ---- helpers ---- */

/* Runs a shell command line (the test's own fixed commands only); returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    va_list ap;
    char cmd[4096];
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* First line of a command's stdout (caller frees), NULL on failure. */
static char *sh_line(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    char line[512];
    char *out = NULL;

    if (!f)
        return NULL;
    if (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        out = sm_xstrdup(line);
    }
    if (pclose(f) != 0) {
        free(out);
        out = NULL;
    }
    return out;
}

static int start_cluster(world *w, const char *name)
{
    char cmd[1024];
    char *port;

    snprintf(cmd, sizeof(cmd),
             "bash -c '. \"%s/tests/lib/pg.sh\" && p=$(pg_free_port) && pg_start \"%s/%s\" $p >&2 "
             "&& echo $p'",
             w->root, w->dir, name);
    port = sh_line(cmd);
    if (!port)
        return -1;
    int p = atoi(port);
    free(port);
    return p;
}

static void stop_cluster(world *w, const char *name)
{
    sh("bash \"%s/tests/lib/pg.sh\" stop \"%s/%s\" >/dev/null 2>&1", w->root, w->dir, name);
}

static int psql_file(world *w, int port, const char *db, const char *file)
{
    return sh("bash \"%s/tests/lib/pg.sh\" psql %d %s -f \"%s/tests/fixtures/supabase/%s\" "
              ">/dev/null",
              w->root, port, db, w->root, file);
}

static char *url_of(int port, const char *user, const char *db)
{
    return sm_xasprintf("postgresql://%s@127.0.0.1:%d/%s", user, port, db);
}

/* Runs SQL through libpq; fails the test on error. */
static void q_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r;

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", url, PQerrorMessage(c));
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* The first value of a query (caller frees). */
static char *q_val(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r;
    char *v;

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", url, PQerrorMessage(c));
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    v = sm_xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

static long long q_int(const char *url, const char *sql)
{
    char *v = q_val(url, sql);
    long long n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

static int db_exists(world *w, const char *dbname)
{
    char *maint = url_of(w->dst_port, "postgres", "postgres");
    char *sql = sm_xasprintf("SELECT count(*) FROM pg_database WHERE datname = '%s'", dbname);
    int n = (int)q_int(maint, sql);
    free(sql);
    free(maint);
    return n;
}

/* Reads a process's stdout into a file, then finishes it. */
static int drain_to_file(pg_proc *p, const char *path, sm_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char buf[65536];
    ssize_t n;

    assert_true(fd >= 0);
    while ((n = read(p->fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_msg("read: %s", strerror(errno));
        }
        assert_int_equal(sm_write_all(fd, buf, (size_t)n, path, err), 0);
    }
    assert_int_equal(close(fd), 0);
    return pg_proc_finish(p, err);
}

/* The dump, globals and metadata of src/proj, made once. */
static void ensure_backup(world *w)
{
    sm_err err = SM_ERR_INIT;
    pg_session *s = NULL;
    pg_proc p = PG_PROC_INIT;

    if (w->meta)
        return;
    w->dump_path = th_path(w->dir, "proj.dump");
    w->globals_path = th_path(w->dir, "globals.sql");
    if (pg_snapshot_begin(&s, w->src_url, &w->src, &err) < 0)
        fail_msg("pg_snapshot_begin: %s", err.msg);
    w->meta = pg_snapshot_metadata(s, &err);
    if (!w->meta)
        fail_msg("pg_snapshot_metadata: %s", err.msg);
    if (pg_dump_start(&p, &w->src, w->src_url, pg_snapshot_id(s), &err) < 0 ||
        drain_to_file(&p, w->dump_path, &err) < 0)
        fail_msg("pg_dump: %s", err.msg);
    pg_snapshot_end(s);
    if (pg_globals_start(&p, &w->src, w->src_url, &err) < 0 ||
        drain_to_file(&p, w->globals_path, &err) < 0)
        fail_msg("pg_dumpall: %s", err.msg);
}

static void ensure_globals_on_dst(world *w)
{
    sm_err err = SM_ERR_INIT;
    pg_restore_opts o = {0};

    ensure_backup(w);
    if (w->globals_on_dst)
        return;
    o.work_dir = w->dir;
    if (pg_restore_globals(&w->dst, w->dst_url, w->globals_path, &o, &err) < 0)
        fail_msg("pg_restore_globals: %s (%s)", err.msg, err.hint);
    w->globals_on_dst = 1;
}

/* ---- group setup ---- */

static int group_teardown(void **state)
{
    world *w = *state;

    if (!w)
        return 0;
    stop_cluster(w, "src");
    stop_cluster(w, "dst");
    if (w->dir && getenv("KEEP_PGTEST") == NULL)
        sh("rm -rf \"%s\"", w->dir);
    json_decref(w->meta);
    free(w->dump_path);
    free(w->globals_path);
    free(w->dir);
    free(w->root);
    free(w);
    return 0;
}

static int group_setup(void **state)
{
    world *w = sm_xcalloc(1, sizeof(*w));
    sm_err err = SM_ERR_INIT;
    char tmpl[] = "/tmp/sm-pgtest.XXXXXX";
    char *url = NULL;

    *state = w;
    w->root = sm_xstrdup(getenv("SOURCE_ROOT") ? getenv("SOURCE_ROOT") : ".");
    if (!mkdtemp(tmpl) || chmod(tmpl, 0755) != 0)
        return -1;
    w->dir = sm_xstrdup(tmpl);
    w->src_port = start_cluster(w, "src");
    w->dst_port = start_cluster(w, "dst");
    if (w->src_port <= 0 || w->dst_port <= 0)
        goto fail;
    snprintf(w->src_url, sizeof(w->src_url), "postgresql://postgres@127.0.0.1:%d/proj",
             w->src_port);
    snprintf(w->dst_url, sizeof(w->dst_url), "postgresql://postgres@127.0.0.1:%d/proj",
             w->dst_port);

    /* the source project, plus a password-only superuser (scram in pg_hba.conf) */
    if (psql_file(w, w->src_port, "postgres", "roles.sql") != 0 ||
        sh("bash \"%s/tests/lib/pg.sh\" createdb %d proj", w->root, w->src_port) != 0 ||
        psql_file(w, w->src_port, "proj", "init.sql") != 0 ||
        psql_file(w, w->src_port, "proj", "sample-data.sql") != 0)
        goto fail;
    url = url_of(w->src_port, "postgres", "postgres");
    q_exec(url, "CREATE ROLE pwadmin SUPERUSER LOGIN PASSWORD '" PW "'");
    if (sh("sed -i '1i host all pwadmin 127.0.0.1/32 scram-sha-256' \"%s/src/pg_hba.conf\"",
           w->dir) != 0)
        goto fail;
    q_exec(url, "SELECT pg_reload_conf()");
    free(url);
    url = NULL;

    /* the target: a fresh Supabase instance */
    if (sh("bash \"%s/tests/lib/pg.sh\" createdb %d proj", w->root, w->dst_port) != 0 ||
        psql_file(w, w->dst_port, "proj", "target-prepared.sql") != 0)
        goto fail;

    if (pg_probe(w->src_url, &w->src, &err) < 0 || pg_probe(w->dst_url, &w->dst, &err) < 0) {
        fprintf(stderr, "pg_probe: %s\n", err.msg);
        goto fail;
    }
    return 0;
fail:
    free(url);
    group_teardown(state);
    *state = NULL;
    return -1;
}

/* ---- probe ---- */

static void probe_reads_version_superuser_and_bindir(void **state)
{
    world *w = *state;
    pg_server s;
    sm_err err = SM_ERR_INIT;
    char port[16];

    assert_int_equal(pg_probe(w->src_url, &s, &err), 0);
    assert_true(s.version_num >= 150000 && s.version_num < 160000);
    assert_int_equal(s.major, 15);
    assert_true(!strncmp(s.version, "15.", 3) && !strchr(s.version, ' '));
    assert_int_equal(s.superuser, 1);
    assert_string_equal(s.bindir, "/usr/lib/postgresql/15/bin");
    assert_string_equal(s.host, "127.0.0.1");
    snprintf(port, sizeof(port), "%d", w->src_port);
    assert_string_equal(s.port, port);
    assert_string_equal(s.dbname, "proj");
    assert_string_equal(s.user, "postgres");
}

static void probe_of_a_port_with_nothing_listening_fails_with_db(void **state)
{
    pg_server s;
    sm_err err = SM_ERR_INIT;
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char *url, want[256];

    (void)state;
    /* bound but not listening: connections are refused for as long as we hold it */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    url = url_of(ntohs(a.sin_port), "postgres", "proj");
    assert_int_equal(pg_probe(url, &s, &err), -1);
    snprintf(want, sizeof(want), "cannot connect to PostgreSQL at 127.0.0.1:%d: Connection refused",
             ntohs(a.sin_port));
    assert_err(&err, SM_E_DB, want);
    snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(a.sin_port));
    assert_non_null(strstr(err.hint, want));
    close(fd);
    free(url);
}

static void probe_as_a_non_superuser_fails_with_forbidden(void **state)
{
    world *w = *state;
    pg_server s;
    sm_err err = SM_ERR_INIT;
    char *url = url_of(w->src_port, "authenticator", "proj"), want[256];

    assert_int_equal(pg_probe(url, &s, &err), -1);
    snprintf(want, sizeof(want),
             "role 'authenticator' is not a superuser on PostgreSQL at "
             "127.0.0.1:%d",
             w->src_port);
    assert_err(&err, SM_E_FORBIDDEN, want);
    assert_non_null(strstr(err.hint, "superuser"));
    assert_int_equal(s.superuser, 0);
    assert_int_equal(s.major, 15); /* filled in anyway */
    free(url);
}

static void probe_with_an_unknown_role_fails_with_auth(void **state)
{
    world *w = *state;
    pg_server s;
    sm_err err = SM_ERR_INIT;
    char *url = url_of(w->src_port, "nobody", "proj"), want[256];

    assert_int_equal(pg_probe(url, &s, &err), -1);
    snprintf(want, sizeof(want),
             "cannot log in to PostgreSQL at 127.0.0.1:%d as 'nobody': role "
             "\"nobody\" does not exist",
             w->src_port);
    assert_err(&err, SM_E_AUTH, want);
    assert_true(err.hint[0] != '\0');
    free(url);
}

static void probe_with_a_wrong_password_fails_with_auth_and_hides_it(void **state)
{
    world *w = *state;
    pg_server s;
    sm_err err = SM_ERR_INIT;
    char *bad = url_of(w->src_port, "pwadmin:wrong-pw-77", "proj");
    char *good = url_of(w->src_port, "pwadmin:" PW, "proj");
    char want[256];

    assert_int_equal(pg_probe(bad, &s, &err), -1);
    snprintf(want, sizeof(want),
             "cannot log in to PostgreSQL at 127.0.0.1:%d as 'pwadmin': "
             "password authentication failed for user \"pwadmin\"",
             w->src_port);
    assert_err(&err, SM_E_AUTH, want);
    assert_null(strstr(err.hint, "wrong-pw-77"));
    sm_err_clear(&err);
    assert_int_equal(pg_probe(good, &s, &err), 0);
    assert_int_equal(s.superuser, 1);
    free(bad);
    free(good);
}

static void probe_of_a_missing_database_fails_with_not_found(void **state)
{
    world *w = *state;
    pg_server s;
    sm_err err = SM_ERR_INIT;
    char *url = url_of(w->src_port, "postgres", "nodb"), want[256];

    assert_int_equal(pg_probe(url, &s, &err), -1);
    snprintf(want, sizeof(want), "database 'nodb' does not exist on PostgreSQL at 127.0.0.1:%d",
             w->src_port);
    assert_err(&err, SM_E_NOTFOUND, want);
    free(url);
}

static void probe_of_a_bad_url_fails_without_showing_the_password(void **state)
{
    pg_server s;
    sm_err err = SM_ERR_INIT;

    (void)state;
    assert_int_equal(pg_probe("postgresql://u:se%zzcret@127.0.0.1:1/x", &s, &err), -1);
    assert_int_equal(err.code, SM_E_INVALID);
    assert_true(!strncmp(err.msg, "invalid database URL: ", 22));
    assert_null(strstr(err.msg, "cret"));
}

static void find_bindir_of_a_missing_major_names_the_package(void **state)
{
    char dir[256];
    sm_err err = SM_ERR_INIT;

    (void)state;
    assert_int_equal(pg_find_bindir(99, dir, sizeof(dir), &err), -1);
    assert_err(&err, SM_E_NOTFOUND,
               "no pg_dump of PostgreSQL 99 found (looked in "
               "/usr/lib/postgresql/99/bin and /usr/pgsql-99/bin)");
    assert_non_null(strstr(err.hint, "apt-get install postgresql-client-99"));
    assert_int_equal(pg_find_bindir(15, dir, sizeof(dir), &err), 0);
    assert_string_equal(dir, "/usr/lib/postgresql/15/bin");
}

/* ---- URLs and SQL rewriting (no server) ---- */

static void url_with_db_replaces_only_the_database(void **state)
{
    char *u;
    PQconninfoOption *o;

    (void)state;
    u = pg_url_with_db("postgresql://u:p%40ss@h:5432/proj?sslmode=disable&dbname=x&"
                       "application_name=a",
                       "other db");
    assert_string_equal(u, "postgresql://u:p%40ss@h:5432/other%20db?sslmode=disable&"
                           "application_name=a");
    free(u);
    u = pg_url_with_db("postgres://h", "postgres");
    assert_string_equal(u, "postgres://h/postgres");
    free(u);
    u = pg_url_with_db("postgresql://u:a?b@h/proj", "x");
    assert_string_equal(u, "postgresql://u:a?b@h/x");
    free(u);
    u = pg_url_with_db("proj", "x");
    assert_string_equal(u, "dbname='x'");
    free(u);
    u = pg_url_with_db("host=h port=1 user=u password='p w' dbname=proj", "it's");
    o = PQconninfoParse(u, NULL);
    assert_non_null(o);
    for (PQconninfoOption *i = o; i->keyword; i++) {
        if (!strcmp(i->keyword, "dbname"))
            assert_string_equal(i->val, "it's");
        if (!strcmp(i->keyword, "password"))
            assert_string_equal(i->val, "p w");
        if (!strcmp(i->keyword, "port"))
            assert_string_equal(i->val, "1");
    }
    PQconninfoFree(o);
    free(u);
}

static void rename_sql_changes_only_database_name_positions(void **state)
{
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    const char *in = "-- Name: proj; Type: DATABASE; Owner: o'brien\n"
                     "CREATE DATABASE proj WITH TEMPLATE = template0 LOCALE = 'C.UTF-8';\n"
                     "ALTER DATABASE proj OWNER TO postgres;\n"
                     "\\unrestrict KEY\n"
                     "\\connect proj\n"
                     "\\restrict KEY\n"
                     "COMMENT ON DATABASE proj IS 'about proj\n"
                     "ALTER DATABASE proj SET x TO ''y'';\n"
                     "end';\n"
                     "ALTER DATABASE proj SET \"app.settings.jwt_exp\" TO '3600';\n"
                     "ALTER ROLE \"we ird\" IN DATABASE proj SET a TO 'b';\n"
                     "ALTER ROLE projx IN DATABASE proj SET a TO 'b';\n"
                     "GRANT CREATE,CONNECT ON DATABASE proj TO supabase_auth_admin;\n"
                     "ALTER DATABASE projx SET a TO 'b';\n"
                     "SELECT 'CREATE DATABASE proj';\n";
    const char *want =
        "-- Name: proj; Type: DATABASE; Owner: o'brien\n"
        "CREATE DATABASE \"proj_staging\" WITH TEMPLATE = template0 LOCALE = 'C.UTF-8';\n"
        "ALTER DATABASE \"proj_staging\" OWNER TO postgres;\n"
        "\\unrestrict KEY\n"
        "\\restrict KEY\n"
        "COMMENT ON DATABASE \"proj_staging\" IS 'about proj\n"
        "ALTER DATABASE proj SET x TO ''y'';\n"
        "end';\n"
        "ALTER DATABASE \"proj_staging\" SET \"app.settings.jwt_exp\" TO '3600';\n"
        "ALTER ROLE \"we ird\" IN DATABASE \"proj_staging\" SET a TO 'b';\n"
        "ALTER ROLE projx IN DATABASE \"proj_staging\" SET a TO 'b';\n"
        "GRANT CREATE,CONNECT ON DATABASE \"proj_staging\" TO supabase_auth_admin;\n"
        "ALTER DATABASE projx SET a TO 'b';\n"
        "SELECT 'CREATE DATABASE proj';\n";

    (void)state;
    assert_int_equal(pg_sql_rename_database(in, strlen(in), "proj", "proj_staging", &out, &err), 0);
    assert_string_equal(sm_buf_str(&out), want);
    sm_buf_reset(&out);

    /* quoted names, and a staging name that needs quoting */
    in = "CREATE DATABASE \"My \"\"DB\"\"\" WITH TEMPLATE = template0;\n"
         "GRANT ALL ON DATABASE \"My \"\"DB\"\"\" TO x;\n";
    assert_int_equal(pg_sql_rename_database(in, strlen(in), "My \"DB\"", "st\"g", &out, &err), 0);
    assert_string_equal(sm_buf_str(&out), "CREATE DATABASE \"st\"\"g\" WITH TEMPLATE = template0;\n"
                                          "GRANT ALL ON DATABASE \"st\"\"g\" TO x;\n");
    sm_buf_reset(&out);

    in = "ALTER DATABASE proj OWNER TO postgres;\n";
    assert_int_equal(pg_sql_rename_database(in, strlen(in), "proj", "s", &out, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "the dump has no CREATE DATABASE statement for database 'proj'");
    sm_buf_release(&out);
}

static void globals_rewrite_makes_create_role_conditional_and_spares_the_current_role(void **state)
{
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    const char *in = "SET standard_conforming_strings = on;\n"
                     "CREATE ROLE anon;\n"
                     "ALTER ROLE anon WITH NOSUPERUSER INHERIT NOLOGIN;\n"
                     "CREATE ROLE \"o'da $sm$ \"\"x\"\"\";\n"
                     "CREATE ROLE postgres;\n"
                     "ALTER ROLE postgres WITH NOSUPERUSER INHERIT NOLOGIN CONNECTION LIMIT 1 "
                     "VALID UNTIL '2020-01-01 00:00:00+00' PASSWORD 'SCRAM-SHA-256$4096:a''b';\n"
                     "ALTER ROLE postgres SET search_path TO 'x';\n"
                     "COMMENT ON ROLE anon IS 'multi\n"
                     "CREATE ROLE anon;\n"
                     "';\n";
    const char *want =
        "SET standard_conforming_strings = on;\n"
        "DO $sm$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = E'anon') "
        "THEN CREATE ROLE anon; END IF; END$sm$;\n"
        "ALTER ROLE anon WITH NOSUPERUSER INHERIT NOLOGIN;\n"
        "DO $sm1$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = "
        "E'o''da $sm$ \"x\"') THEN CREATE ROLE \"o'da $sm$ \"\"x\"\"\"; END IF; END$sm1$;\n"
        "DO $sm$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = E'postgres') "
        "THEN CREATE ROLE postgres; END IF; END$sm$;\n"
        "ALTER ROLE postgres WITH INHERIT;\n"
        "ALTER ROLE postgres SET search_path TO 'x';\n"
        "COMMENT ON ROLE anon IS 'multi\n"
        "CREATE ROLE anon;\n"
        "';\n";

    (void)state;
    assert_int_equal(pg_globals_rewrite(in, strlen(in), "postgres", &out, &err), 0);
    assert_string_equal(sm_buf_str(&out), want);
    sm_buf_release(&out);
}

/* ---- backup ---- */

static void snapshot_metadata_counts_rows_exactly_and_lists_extensions_and_settings(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_session *s = NULL;
    json_t *meta, *counts, *exts, *v;
    PGconn *c;
    PGresult *r;
    size_t i;
    int found_jwt = 0, pgcrypto = 0, citext = 0;

    assert_int_equal(pg_snapshot_begin(&s, w->src_url, &w->src, &err), 0);
    assert_non_null(pg_snapshot_id(s));
    meta = pg_snapshot_metadata(s, &err);
    assert_non_null(meta);
    pg_snapshot_end(s);

    assert_string_equal(json_string_value(json_object_get(meta, "database")), "proj");
    assert_string_equal(json_string_value(json_object_get(meta, "server_version")), w->src.version);
    assert_string_equal(json_string_value(json_object_get(meta, "encoding")), "UTF8");
    assert_true(json_integer_value(json_object_get(meta, "size_bytes")) > 1000000);
    assert_int_equal(json_integer_value(json_object_get(meta, "large_objects")), 3);

    /* every table an independent query finds, with its count(*) */
    counts = json_object_get(meta, "row_counts");
    c = PQconnectdb(w->src_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, "SELECT format('%I.%I', n.nspname, c.relname), c.relkind FROM pg_class c "
                  "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                  "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal((size_t)PQntuples(r), json_object_size(counts));
    for (int k = 0; k < PQntuples(r); k++) {
        char sql[300];
        PGresult *cr;
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM ONLY %s", PQgetvalue(r, k, 0));
        cr = PQexec(c, sql);
        assert_int_equal(PQresultStatus(cr), PGRES_TUPLES_OK);
        v = json_object_get(counts, PQgetvalue(r, k, 0));
        if (!v)
            fail_msg("table %s is not in row_counts", PQgetvalue(r, k, 0));
        assert_int_equal(json_integer_value(v), strtoll(PQgetvalue(cr, 0, 0), NULL, 10));
        PQclear(cr);
    }
    PQclear(r);
    PQfinish(c);
    assert_int_equal(json_integer_value(json_object_get(counts, "public.posts")), 2000);
    assert_int_equal(json_integer_value(json_object_get(counts, "auth.users")), 200);
    assert_int_equal(json_integer_value(json_object_get(counts, "public.events")), 0);
    assert_int_equal(json_integer_value(json_object_get(counts, "public.events_2024_q1")) +
                         json_integer_value(json_object_get(counts, "public.events_2024_q2")) +
                         json_integer_value(json_object_get(counts, "public.events_default")),
                     3000);
    assert_null(json_object_get(counts, "public.author_stats")); /* materialized view */
    for (void *it = json_object_iter(counts); it; it = json_object_iter_next(counts, it))
        assert_true(json_is_integer(json_object_iter_value(it)));

    exts = json_object_get(meta, "extensions");
    for (i = 0; i < json_array_size(exts); i++) {
        v = json_array_get(exts, i);
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *owner = json_string_value(json_object_get(v, "owner"));
        assert_non_null(json_string_value(json_object_get(v, "version")));
        assert_non_null(json_string_value(json_object_get(v, "schema")));
        if (!strcmp(name, "pgcrypto")) {
            pgcrypto = 1;
            assert_string_equal(owner, "supabase_admin");
            assert_string_equal(json_string_value(json_object_get(v, "schema")), "extensions");
        }
        if (!strcmp(name, "citext")) {
            citext = 1;
            assert_string_equal(owner, "postgres");
        }
    }
    assert_true(pgcrypto && citext);
    v = json_object_get(meta, "database_settings");
    for (i = 0; i < json_array_size(v); i++)
        if (!strcmp(json_string_value(json_array_get(v, i)), "app.settings.jwt_exp=3600"))
            found_jwt = 1;
    assert_true(found_jwt);
    json_decref(meta);
}

static void metadata_and_dump_see_the_snapshot_not_later_writes(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_session *s = NULL;
    pg_proc p = PG_PROC_INIT;
    json_t *meta;
    char *maint = url_of(w->src_port, "postgres", "postgres");
    char *url = url_of(w->src_port, "postgres", "snapdb");
    char *dst_snap = url_of(w->dst_port, "postgres", "snap_restored");
    char *dump = th_path(w->dir, "snap.dump");
    pg_restore_opts o = {0};
    int exists = 1;

    q_exec(maint, "CREATE DATABASE snapdb");
    q_exec(url, "CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g");
    /* inheritance (not partitioning): each table counts its own rows only */
    q_exec(url,
           "CREATE TABLE inh_parent (a int); CREATE TABLE inh_child () INHERITS (inh_parent);"
           "INSERT INTO inh_parent VALUES (1), (2); INSERT INTO inh_child VALUES (3), (4), (5)");
    assert_int_equal(pg_snapshot_begin(&s, url, &w->src, &err), 0);
    q_exec(url, "INSERT INTO t SELECT g FROM generate_series(11, 15) g");
    meta = pg_snapshot_metadata(s, &err);
    assert_non_null(meta);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(meta, "row_counts"), "public.t")), 10);
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(meta, "row_counts"), "public.inh_parent")),
                     2);
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(meta, "row_counts"), "public.inh_child")),
                     3);
    assert_int_equal(pg_dump_start(&p, &w->src, url, pg_snapshot_id(s), &err), 0);
    assert_int_equal(drain_to_file(&p, dump, &err), 0);
    pg_snapshot_end(s);

    /* the dump has the snapshot's 10 rows: verify_counts agrees after a restore */
    o.work_dir = w->dir;
    if (pg_restore_database(&w->dst, w->dst_url, dump, "snap_restored", meta, &o, &err) < 0)
        fail_msg("pg_restore_database: %s", err.msg);
    assert_int_equal(pg_verify_counts(&w->dst, w->dst_url, "snap_restored", meta, &err), 0);
    assert_int_equal(q_int(dst_snap, "SELECT count(*) FROM t"), 10);

    /* pg_drop_database */
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "snap_restored", &err), 0);
    assert_int_equal(pg_database_exists(&w->dst, w->dst_url, "snap_restored", &exists, &err), 0);
    assert_int_equal(exists, 0);
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "snap_restored", &err), 0);

    json_decref(meta);
    free(maint);
    free(url);
    free(dst_snap);
    free(dump);
}

static void dump_writes_a_custom_archive_and_globals_hold_the_roles(void **state)
{
    world *w = *state;
    sm_buf b = SM_BUF_INIT;

    ensure_backup(w);
    th_read(w->dump_path, &b);
    assert_true(b.len > 100000);
    assert_memory_equal(b.data, "PGDMP", 5);
    th_read(w->globals_path, &b);
    assert_non_null(strstr(sm_buf_str(&b), "CREATE ROLE supabase_admin;"));
    assert_non_null(strstr(sm_buf_str(&b), "SCRAM-SHA-256$4096:"));
    sm_buf_release(&b);
}

static void dump_failing_midway_reports_exit_status_and_stderr(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_proc p = PG_PROC_INIT;
    char *maint = url_of(w->src_port, "postgres", "postgres");
    char *url = url_of(w->src_port, "postgres", "bigdb");
    char buf[65536];
    size_t got = 0;
    ssize_t n;

    q_exec(maint, "CREATE DATABASE bigdb");
    q_exec(url, "CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad "
                "FROM generate_series(1, 100000) g");
    assert_int_equal(pg_dump_start(&p, &w->src, url, NULL, &err), 0);
    /* past the table of contents, into the data: pg_dump now waits on the pipe */
    while (got < sizeof(buf) && (n = read(p.fd, buf, sizeof(buf) - got)) > 0)
        got += (size_t)n;
    q_exec(maint, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE datname = 'bigdb' AND application_name = 'pg_dump'");
    while ((n = read(p.fd, buf, sizeof(buf))) != 0)
        assert_true(n > 0 || errno == EINTR);
    assert_int_equal(pg_proc_finish(&p, &err), -1);
    assert_int_equal(err.code, SM_E_EXTERNAL);
    if (strncmp(err.msg, "pg_dump failed (exit status 1): pg_dump: error: ", 48) ||
        !strstr(err.msg, "\"big\""))
        fail_msg("unexpected message: %s", err.msg);
    assert_int_equal(p.fd, -1);
    assert_int_equal(p.pid, -1);
    free(maint);
    free(url);
}

static void abort_stops_a_running_dump(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_proc p = PG_PROC_INIT, none = PG_PROC_INIT;
    char *url = url_of(w->src_port, "postgres", "proj");
    char buf[4096];
    pid_t pid;

    pg_proc_abort(&none); /* no-op */
    pg_proc_abort(NULL);
    assert_int_equal(pg_dump_start(&p, &w->src, url, NULL, &err), 0);
    pid = p.pid;
    assert_true(read(p.fd, buf, sizeof(buf)) > 0);
    pg_proc_abort(&p);
    assert_int_equal(p.pid, -1);
    assert_int_equal(p.fd, -1);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1); /* reaped */
    assert_int_equal(errno, ECHILD);
    free(url);
}

static void dump_with_a_password_url_works_and_never_shows_it(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_proc p = PG_PROC_INIT;
    char *good = url_of(w->src_port, "pwadmin:" PW, "proj");
    char *nodb = url_of(w->src_port, "pwadmin:" PW, "nodb_x");
    char *out = th_path(w->dir, "pw.dump");
    char path[64];
    sm_buf cmdline = SM_BUF_INIT;
    char want[256];

    assert_int_equal(pg_dump_start(&p, &w->src, good, NULL, &err), 0);
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)p.pid);
    if (sm_read_file(path, &cmdline, 0, 1, &err) == 0)
        assert_null(memmem(cmdline.data, cmdline.len, PW, strlen(PW)));
    assert_int_equal(drain_to_file(&p, out, &err), 0);

    assert_int_equal(pg_dump_start(&p, &w->src, nodb, NULL, &err), 0);
    assert_int_equal(drain_to_file(&p, out, &err), -1);
    snprintf(want, sizeof(want),
             "pg_dump failed (exit status 1): pg_dump: error: connection to "
             "server at \"127.0.0.1\", port %d failed: FATAL: database \"nodb_x\" does not exist",
             w->src_port);
    assert_err(&err, SM_E_EXTERNAL, want);
    assert_null(strstr(err.msg, PW));
    sm_buf_release(&cmdline);
    free(good);
    free(nodb);
    free(out);
}

static void fill_offsets_makes_a_piped_dump_what_pg_dump_f_writes(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    char *direct = th_path(w->dir, "direct.dump"), *filled = th_path(w->dir, "filled.dump");
    char *junk = th_path(w->dir, "junk.dump");
    sm_buf a = SM_BUF_INIT, b = SM_BUF_INIT;
    int n = -1;

    ensure_backup(w);
    assert_int_equal(
        sh("%s/pg_dump -Fc -Z0 -f \"%s\" -d \"%s\"", w->src.bindir, direct, w->src_url), 0);
    th_read(w->dump_path, &a);
    th_write(filled, a.data, a.len);
    assert_int_equal(pg_dump_fill_offsets(filled, &n, &err), 0);
    assert_true(n > 20); /* one per table with data, plus the large objects */
    th_read(filled, &a);
    th_read(direct, &b);
    assert_int_equal(a.len, b.len);
    /* only the creation time in the header differs (5 magic + 6 + compression + 7 ints) */
    for (size_t i = 51; i < a.len; i++)
        if (a.data[i] != b.data[i])
            fail_msg("byte %zu differs from pg_dump -f", i);
    assert_int_equal(pg_dump_fill_offsets(filled, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pg_dump_fill_offsets(direct, &n, &err), 0);
    assert_int_equal(n, 0);

    th_write(junk, a.data, a.len / 2);
    assert_int_equal(pg_dump_fill_offsets(junk, &n, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    th_write_str(junk, "not a dump");
    assert_int_equal(pg_dump_fill_offsets(junk, &n, &err), -1);
    {
        char *want = sm_xasprintf("'%s' is not a pg_dump archive", junk);
        assert_err(&err, SM_E_INVALID, want);
        free(want);
    }
    sm_buf_release(&a);
    sm_buf_release(&b);
    free(direct);
    free(filled);
    free(junk);
}

/* ---- restore ---- */

typedef struct phases {
    char seen[512];
} phases;

static void note_phase(void *ud, const char *phase)
{
    phases *ph = ud;
    size_t n = strlen(ph->seen);
    snprintf(ph->seen + n, sizeof(ph->seen) - n, "%s%s", n ? ", " : "", phase);
}

/* fingerprint section diff for a failure message */
static void compare_fingerprints(world *w, const char *fn, const char *src_url, const char *dst_url)
{
    int st = sh("bash -c '. \"%s/tests/lib/dbcompare.sh\" && %s \"%s\" \"%s/%s.src\" && %s \"%s\" "
                "\"%s/%s.dst\" && fp_diff \"%s/%s.src\" \"%s/%s.dst\" >\"%s/%s.diff\" 2>&1'",
                w->root, fn, src_url, w->dir, fn, fn, dst_url, w->dir, fn, w->dir, fn, w->dir, fn,
                w->dir, fn);
    if (st != 0) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "head -c 3000 \"%s/%s.diff\" >&2", w->dir, fn);
        if (system(cmd) < 0)
            fprintf(stderr, "cannot show the diff\n");
        fail_msg("%s of source and restored database differ (exit %d)", fn, st);
    }
}

static void restore_into_a_prepared_instance_is_exact_and_swaps_in(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_restore_opts o = {0};
    phases ph = {{0}};
    PGconn *live = NULL;
    PGresult *r;
    char *filled = th_path(w->dir, "proj.filled.dump");

    ensure_backup(w);
    o.work_dir = w->dir;
    o.jobs = 2;
    o.progress = note_phase;
    o.progress_ud = &ph;
    if (pg_restore_globals(&w->dst, w->dst_url, w->globals_path, &o, &err) < 0)
        fail_msg("pg_restore_globals: %s", err.msg);
    w->globals_on_dst = 1;
    /* from a copy with data offsets (the snapshot test restores one without) */
    {
        sm_buf b = SM_BUF_INIT;
        th_read(w->dump_path, &b);
        th_write(filled, b.data, b.len);
        sm_buf_release(&b);
    }
    assert_int_equal(pg_dump_fill_offsets(filled, NULL, &err), 0);
    if (pg_restore_database(&w->dst, w->dst_url, filled, "proj_staging", w->meta, &o, &err) < 0)
        fail_msg("pg_restore_database: %s", err.msg);
    assert_string_equal(ph.seen, "restoring roles, reading the dump, creating the database, "
                                 "restoring schemas, creating extensions, restoring data");
    if (pg_verify_counts(&w->dst, w->dst_url, "proj_staging", w->meta, &err) < 0)
        fail_msg("pg_verify_counts: %s", err.msg);

    /* a session on the live database is ended by pg_block */
    live = PQconnectdb(w->dst_url);
    assert_int_equal(PQstatus(live), CONNECTION_OK);
    assert_int_equal(pg_block(&w->dst, w->dst_url, "proj", &err), 0);
    r = PQexec(live, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(live);
    if (pg_swap(&w->dst, w->dst_url, "proj", "proj_staging", "proj_previous", &err) < 0)
        fail_msg("pg_swap: %s", err.msg);
    assert_int_equal(pg_unblock(&w->dst, w->dst_url, "proj", &err), 0);
    assert_int_equal(db_exists(w, "proj"), 1);
    assert_int_equal(db_exists(w, "proj_previous"), 1);
    assert_int_equal(db_exists(w, "proj_staging"), 0);
    /* the previous database is the instance's: one migration row more */
    {
        char *prev = url_of(w->dst_port, "postgres", "proj_previous");
        char *sql = "SELECT count(*) FROM auth.schema_migrations";
        assert_int_equal(pg_unblock(&w->dst, w->dst_url, "proj_previous", &err), 0);
        assert_int_equal(q_int(prev, sql), q_int(w->src_url, sql) + 1);
        free(prev);
    }

    compare_fingerprints(w, "db_fingerprint", w->src_url, w->dst_url);
    compare_fingerprints(w, "roles_fingerprint", w->src_url, w->dst_url);
    free(filled);
}

/* The entry of extension name in meta "extensions". */
static json_t *ext_named(json_t *meta, const char *name)
{
    json_t *exts = json_object_get(meta, "extensions");

    for (size_t i = 0; i < json_array_size(exts); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(exts, i), "name")), name))
            return json_array_get(exts, i);
    fail_msg("no extension %s in the metadata", name);
    return NULL;
}

static void extensions_keep_their_owners_and_versions(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_session *s = NULL;
    pg_proc p = PG_PROC_INIT;
    json_t *meta;
    char *src_maint = url_of(w->src_port, "postgres", "postgres");
    char *dst_maint = url_of(w->dst_port, "postgres", "postgres");
    char *url = url_of(w->src_port, "postgres", "extdb");
    char *restored = url_of(w->dst_port, "postgres", "extdb_restored");
    char *dump = th_path(w->dir, "extdb.dump");
    char *v1;

    /* an untrusted extension created by a role that was superuser then, and is no more (as
     * postgres on Supabase), and an extension in an older version than the default */
    q_exec(src_maint, "CREATE ROLE ext_owner SUPERUSER");
    q_exec(src_maint, "CREATE DATABASE extdb");
    q_exec(url, "SET ROLE ext_owner; CREATE EXTENSION pg_buffercache; "
                "CREATE EXTENSION hstore VERSION '1.7'; RESET ROLE");
    q_exec(src_maint, "ALTER ROLE ext_owner NOSUPERUSER");
    q_exec(dst_maint, "CREATE ROLE ext_owner");

    assert_int_equal(pg_snapshot_begin(&s, url, &w->src, &err), 0);
    meta = pg_snapshot_metadata(s, &err);
    assert_non_null(meta);
    assert_int_equal(pg_dump_start(&p, &w->src, url, pg_snapshot_id(s), &err), 0);
    assert_int_equal(drain_to_file(&p, dump, &err), 0);
    pg_snapshot_end(s);

    if (pg_restore_database(&w->dst, w->dst_url, dump, "extdb_restored", meta, NULL, &err) < 0)
        fail_msg("pg_restore_database: %s", err.msg);
    v1 = q_val(restored, "SELECT string_agg(extname || ' ' || extversion || ' ' || "
                         "extowner::regrole::text, ', ' ORDER BY extname) FROM pg_extension");
    assert_string_equal(v1, "hstore 1.7 ext_owner, pg_buffercache 1.3 ext_owner, "
                            "plpgsql 1.0 postgres");
    free(v1);
    v1 = q_val(dst_maint, "SELECT rolsuper FROM pg_roles WHERE rolname = 'ext_owner'");
    assert_string_equal(v1, "f"); /* the lent superuser went with the transaction */
    free(v1);
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "extdb_restored", &err), 0);

    /* a version the server does not have: its default version */
    json_object_set_new(ext_named(meta, "hstore"), "version", json_string("9.9"));
    if (pg_restore_database(&w->dst, w->dst_url, dump, "extdb_restored", meta, NULL, &err) < 0)
        fail_msg("pg_restore_database: %s", err.msg);
    v1 = q_val(restored, "SELECT extversion FROM pg_extension WHERE extname = 'hstore'");
    assert_string_equal(v1, "1.8");
    free(v1);
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "extdb_restored", &err), 0);

    /* an owner the target does not have */
    json_object_set_new(ext_named(meta, "hstore"), "owner", json_string("no_such_role"));
    assert_int_equal(
        pg_restore_database(&w->dst, w->dst_url, dump, "extdb_restored", meta, NULL, &err), -1);
    {
        char want[300];
        snprintf(want, sizeof(want),
                 "extension 'hstore' was owned by role 'no_such_role', which "
                 "does not exist on PostgreSQL at 127.0.0.1:%d",
                 w->dst_port);
        assert_err(&err, SM_E_NOTFOUND, want);
    }
    assert_int_equal(db_exists(w, "extdb_restored"), 0);

    json_decref(meta);
    free(src_maint);
    free(dst_maint);
    free(url);
    free(restored);
    free(dump);
}

static void failed_restore_leaves_no_staging_database(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_restore_opts o = {0};
    char *cut = th_path(w->dir, "cut.dump");
    sm_buf b = SM_BUF_INIT;

    ensure_globals_on_dst(w);
    th_read(w->dump_path, &b);
    th_write(cut, b.data, b.len * 6 / 10); /* the table of contents stays whole */
    o.work_dir = w->dir;
    assert_int_equal(
        pg_restore_database(&w->dst, w->dst_url, cut, "proj_broken", w->meta, &o, &err), -1);
    assert_int_equal(err.code, SM_E_EXTERNAL);
    if (strncmp(err.msg, "pg_restore failed (exit status 1): pg_restore: error: ", 54))
        fail_msg("unexpected message: %s", err.msg);
    assert_int_equal(db_exists(w, "proj_broken"), 0);
    sm_buf_release(&b);
    free(cut);
}

static void restore_into_an_existing_name_fails_and_keeps_that_database(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    char want[256];

    ensure_backup(w);
    assert_int_equal(pg_create_database(&w->dst, w->dst_url, "taken", &err), 0);
    assert_int_equal(pg_create_database(&w->dst, w->dst_url, "taken", &err), -1);
    assert_int_equal(err.code, SM_E_EXISTS);
    assert_int_equal(
        pg_restore_database(&w->dst, w->dst_url, w->dump_path, "taken", w->meta, NULL, &err), -1);
    snprintf(want, sizeof(want), "database 'taken' already exists on PostgreSQL at 127.0.0.1:%d",
             w->dst_port);
    assert_err(&err, SM_E_EXISTS, want);
    assert_int_equal(db_exists(w, "taken"), 1);
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "taken", &err), 0);
    assert_int_equal(db_exists(w, "taken"), 0);
}

static void restore_of_a_dump_with_a_missing_locale_fails_clearly(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_proc p = PG_PROC_INIT;
    char *maint = url_of(w->src_port, "postgres", "postgres");
    char *url = url_of(w->src_port, "postgres", "tiny");
    char *dump = th_path(w->dir, "tiny.dump");
    sm_buf b = SM_BUF_INIT;
    char want[300];
    int patched = 0;

    q_exec(maint, "CREATE DATABASE tiny");
    q_exec(url, "CREATE TABLE t (a int)");
    assert_int_equal(pg_dump_start(&p, &w->src, url, NULL, &err), 0);
    assert_int_equal(drain_to_file(&p, dump, &err), 0);
    /* same length, so the archive stays well-formed: a locale no server has */
    th_read(dump, &b);
    for (unsigned char *q = b.data; (q = memmem(q, b.len - (size_t)(q - b.data), "C.UTF-8", 7));
         q += 7, patched++)
        q[6] = '9';
    assert_true(patched > 0);
    th_write(dump, b.data, b.len);
    assert_int_equal(
        pg_restore_database(&w->dst, w->dst_url, dump, "tiny_staging", NULL, NULL, &err), -1);
    snprintf(want, sizeof(want),
             "cannot create database 'tiny_staging': locale 'C.UTF-9' of the "
             "dumped database does not exist on PostgreSQL at 127.0.0.1:%d",
             w->dst_port);
    assert_err(&err, SM_E_DB, want);
    assert_non_null(strstr(err.hint, "locale-gen"));
    assert_int_equal(db_exists(w, "tiny_staging"), 0);
    sm_buf_release(&b);
    free(maint);
    free(url);
    free(dump);
}

static void restore_needs_a_superuser(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    pg_server s = w->dst;

    s.superuser = 0;
    snprintf(s.user, sizeof(s.user), "authenticator");
    assert_int_equal(pg_restore_database(&s, w->dst_url, "/nonexistent", "x", NULL, NULL, &err),
                     -1);
    assert_err(&err, SM_E_FORBIDDEN,
               "an exact restore needs a superuser, and role "
               "'authenticator' is not one");
    assert_int_equal(pg_restore_globals(&s, w->dst_url, "/nonexistent", NULL, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN,
               "restoring roles needs a superuser, and role "
               "'authenticator' is not one");
}

static void restore_globals_reports_the_failing_statement(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    char *file = th_path(w->dir, "bad-globals.sql");
    char *want = sm_xasprintf("cannot restore the roles of '%s': psql failed (exit status 3): "
                              "line 2: ERROR: role \"nonexistent_role\" does not exist",
                              file);

    th_write_str(file, "CREATE ROLE anon;\nALTER ROLE nonexistent_role WITH LOGIN;\n");
    assert_int_equal(pg_restore_globals(&w->dst, w->dst_url, file, NULL, &err), -1);
    assert_err(&err, SM_E_EXTERNAL, want);
    free(want);

    /* a bad statement: its text (and the hash in it) is not echoed */
    th_write_str(file, "ALTER ROLE anon WITH PASSWORD 'md5-hash-77' BOGUS;\n");
    assert_int_equal(pg_restore_globals(&w->dst, w->dst_url, file, NULL, &err), -1);
    want = sm_xasprintf("cannot restore the roles of '%s': psql failed (exit status 3): "
                        "line 1: ERROR: unrecognized role option \"bogus\" at character 45",
                        file);
    assert_err(&err, SM_E_EXTERNAL, want);
    free(want);
    free(file);
}

static void verify_counts_names_the_first_table_that_differs(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;
    json_t *meta, *counts;
    char want[300];

    ensure_backup(w);
    assert_int_equal(pg_verify_counts(&w->src, w->src_url, "proj", w->meta, &err), 0);

    meta = json_deep_copy(w->meta);
    counts = json_object_get(meta, "row_counts");
    json_object_set_new(counts, "public.posts", json_integer(1999));
    json_object_set_new(counts, "public.zzz", json_integer(0));
    assert_int_equal(pg_verify_counts(&w->src, w->src_url, "proj", meta, &err), -1);
    snprintf(want, sizeof(want),
             "table 'public.posts' has 2000 rows in database 'proj' on "
             "PostgreSQL at 127.0.0.1:%d but 1999 in the backup",
             w->src_port);
    assert_err(&err, SM_E_CORRUPT, want);

    json_object_del(counts, "auth.users");
    assert_int_equal(pg_verify_counts(&w->src, w->src_url, "proj", meta, &err), -1);
    snprintf(want, sizeof(want),
             "table 'auth.users' has 200 rows in database 'proj' on "
             "PostgreSQL at 127.0.0.1:%d but is not in the backup",
             w->src_port);
    assert_err(&err, SM_E_CORRUPT, want);
    json_decref(meta);

    meta = json_deep_copy(w->meta);
    json_object_set_new(json_object_get(meta, "row_counts"), "public.gone", json_integer(1));
    assert_int_equal(pg_verify_counts(&w->src, w->src_url, "proj", meta, &err), -1);
    snprintf(want, sizeof(want),
             "table 'public.gone' of the backup is missing from database "
             "'proj' on PostgreSQL at 127.0.0.1:%d",
             w->src_port);
    assert_err(&err, SM_E_CORRUPT, want);
    json_decref(meta);

    meta = json_deep_copy(w->meta);
    json_object_set_new(meta, "large_objects", json_integer(4));
    assert_int_equal(pg_verify_counts(&w->src, w->src_url, "proj", meta, &err), -1);
    snprintf(want, sizeof(want),
             "database 'proj' on PostgreSQL at 127.0.0.1:%d has 3 large "
             "objects but the backup has 4",
             w->src_port);
    assert_err(&err, SM_E_CORRUPT, want);
    json_decref(meta);
}

static void swap_is_all_or_nothing(void **state)
{
    world *w = *state;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(pg_create_database(&w->dst, w->dst_url, "sw_live", &err), 0);
    assert_int_equal(pg_create_database(&w->dst, w->dst_url, "sw_stage", &err), 0);
    assert_int_equal(pg_create_database(&w->dst, w->dst_url, "sw_prev", &err), 0);
    /* previous exists: the first rename fails, nothing changes */
    assert_int_equal(pg_swap(&w->dst, w->dst_url, "sw_live", "sw_stage", "sw_prev", &err), -1);
    assert_int_equal(err.code, SM_E_EXISTS);
    assert_int_equal(db_exists(w, "sw_live") + db_exists(w, "sw_stage") + db_exists(w, "sw_prev"),
                     3);
    /* staging missing: the second rename fails, the first is rolled back */
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "sw_prev", &err), 0);
    assert_int_equal(pg_swap(&w->dst, w->dst_url, "sw_live", "sw_nothing", "sw_prev", &err), -1);
    assert_int_equal(err.code, SM_E_NOTFOUND);
    assert_int_equal(db_exists(w, "sw_live"), 1);
    assert_int_equal(db_exists(w, "sw_prev"), 0);
    /* live missing: staging just takes the name */
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "sw_live", &err), 0);
    assert_int_equal(pg_swap(&w->dst, w->dst_url, "sw_live", "sw_stage", "sw_prev", &err), 0);
    assert_int_equal(db_exists(w, "sw_live"), 1);
    assert_int_equal(db_exists(w, "sw_stage"), 0);
    assert_int_equal(pg_drop_database(&w->dst, w->dst_url, "sw_live", &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(probe_reads_version_superuser_and_bindir),
        cmocka_unit_test(probe_of_a_port_with_nothing_listening_fails_with_db),
        cmocka_unit_test(probe_as_a_non_superuser_fails_with_forbidden),
        cmocka_unit_test(probe_with_an_unknown_role_fails_with_auth),
        cmocka_unit_test(probe_with_a_wrong_password_fails_with_auth_and_hides_it),
        cmocka_unit_test(probe_of_a_missing_database_fails_with_not_found),
        cmocka_unit_test(probe_of_a_bad_url_fails_without_showing_the_password),
        cmocka_unit_test(find_bindir_of_a_missing_major_names_the_package),
        cmocka_unit_test(url_with_db_replaces_only_the_database),
        cmocka_unit_test(rename_sql_changes_only_database_name_positions),
        cmocka_unit_test(globals_rewrite_makes_create_role_conditional_and_spares_the_current_role),
        cmocka_unit_test(snapshot_metadata_counts_rows_exactly_and_lists_extensions_and_settings),
        cmocka_unit_test(metadata_and_dump_see_the_snapshot_not_later_writes),
        cmocka_unit_test(dump_writes_a_custom_archive_and_globals_hold_the_roles),
        cmocka_unit_test(dump_failing_midway_reports_exit_status_and_stderr),
        cmocka_unit_test(abort_stops_a_running_dump),
        cmocka_unit_test(dump_with_a_password_url_works_and_never_shows_it),
        cmocka_unit_test(fill_offsets_makes_a_piped_dump_what_pg_dump_f_writes),
        cmocka_unit_test(restore_into_a_prepared_instance_is_exact_and_swaps_in),
        cmocka_unit_test(extensions_keep_their_owners_and_versions),
        cmocka_unit_test(failed_restore_leaves_no_staging_database),
        cmocka_unit_test(restore_into_an_existing_name_fails_and_keeps_that_database),
        cmocka_unit_test(restore_of_a_dump_with_a_missing_locale_fails_clearly),
        cmocka_unit_test(restore_needs_a_superuser),
        cmocka_unit_test(restore_globals_reports_the_failing_statement),
        cmocka_unit_test(verify_counts_names_the_first_table_that_differs),
        cmocka_unit_test(swap_is_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
