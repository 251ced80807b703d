/* src/service/demo.c: the demo project of `supamanager serve --demo`, with a real cluster.
 * As root only (the demo runs the server as user postgres); skipped otherwise.
 *
 * One group sharing one home: the first test makes the demo, the next ones look at it, reuse
 * it, and restart it. Needs SOURCE_ROOT (tests/meson.build sets it) for make-storage.sh. */
#include "../unit_helpers.h"

#include "catalog/catalog.h"
#include "core/log.h"
#include "service/demo.h"

#include <libpq-fe.h>
#include <sys/xattr.h>

typedef struct world {
    char *root;
    char *home;
    demo_info d;
    char *cluster_dir; /* kept for the final cleanup */
} world;

static world *W;

static long long q_int(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r;
    long long v;

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", url, PQerrorMessage(c));
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    va_list ap;
    char cmd[8192];
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int group_setup(void **state)
{
    (void)state;
    sm_log_set_level(getenv("SUPAMANAGER_LOG") ? sm_log_get_level() : SM_LOG_ERROR);
    W = sm_xcalloc(1, sizeof(*W));
    W->root = sm_xstrdup(getenv("SOURCE_ROOT") ? getenv("SOURCE_ROOT") : ".");
    W->home = th_tmpdir(); /* 0700: as root, the cluster goes to /var/tmp */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    demo_teardown(&W->d);
    if (W->cluster_dir && !strncmp(W->cluster_dir, "/var/tmp/supamanager-demo-", 26))
        sh("rm -rf '%s'", W->cluster_dir);
    th_rmdir(W->home);
    free(W->cluster_dir);
    free(W->root);
    free(W);
    W = NULL;
    return 0;
}

static void need_root(void)
{
    if (geteuid() != 0) {
        print_message("skipped: the demo cluster test runs as root only\n");
        skip();
    }
    if (access("/usr/lib/postgresql", F_OK) != 0) {
        print_message("skipped: PostgreSQL is not installed\n");
        skip();
    }
}

static void setup_makes_cluster_data_tree_config_and_project(void **state)
{
    sm_err err = SM_ERR_INIT;
    catalog *cat = NULL;
    project *p = NULL;
    char *path, want[64];
    char ct[128] = "";
    ssize_t n;

    (void)state;
    need_root();
    if (demo_setup(W->home, &W->d, &err) < 0)
        fail_msg("demo_setup: %s (%s)", err.msg, err.hint);
    W->cluster_dir = sm_xstrdup(W->d.cluster_dir);
    assert_string_equal(W->d.project_id, "demo");
    assert_int_equal(W->d.created, 1);
    assert_int_equal(W->d.started, 1);
    assert_true(W->d.port > 0);
    snprintf(want, sizeof(want), "postgresql://postgres@127.0.0.1:%d/postgres", W->d.port);
    assert_string_equal(W->d.db_url, want);
    /* the home is private: the cluster lives where postgres can reach it */
    assert_true(!strncmp(W->d.cluster_dir, "/var/tmp/supamanager-demo-0-", 28));

    /* a Supabase-shaped database */
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM auth.users"), 200);
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM public.posts"), 2000);
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM storage.objects"), 33);
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM pg_largeobject_metadata"), 3);
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM pg_roles WHERE rolname = "
                                        "'supabase_storage_admin'"),
                     1);

    /* the storage tree with its xattrs, and the config directory */
    path = sm_xasprintf("%s/stub/stub/avatars/gallery/photo-07.png", W->d.storage_dir);
    assert_true(sm_is_dir(path));
    free(path);
    assert_int_equal(sh("test $(find '%s' -type f | wc -l) -eq 36", W->d.storage_dir), 0);
    path = sm_xasprintf("%s/stub/stub/avatars/public/current.png", W->d.storage_dir);
    n = getxattr(path, "user.supabase.content-type", ct, sizeof(ct) - 1);
    assert_true(n > 0);
    ct[n] = '\0';
    assert_string_equal(ct, "image/png");
    free(path);
    path = sm_path_join(W->d.config_dir, ".env");
    assert_true(sm_exists(path));
    free(path);
    path = sm_path_join(W->d.config_dir, "docker-compose.yml");
    assert_true(sm_exists(path));
    free(path);
    path = sm_path_join(W->d.config_dir, "kong.yml");
    assert_true(sm_exists(path));
    free(path);

    /* registered: no organisation, no owner */
    assert_int_equal(catalog_open(&cat, W->home, &err), 0);
    assert_int_equal(catalog_project_get(cat, "demo", &p, &err), 0);
    assert_string_equal(p->db_url, W->d.db_url);
    assert_string_equal(p->storage_dir, W->d.storage_dir);
    assert_string_equal(p->config_dir, W->d.config_dir);
    assert_null(p->org_id);
    assert_null(p->owner);
    project_free(p);
    catalog_close(cat);
}

static void storage_tree_matches_make_storage_sh(void **state)
{
    char *ref = sm_path_join(W->home, "reference-storage");
    static const char listing[] =
        "cd '%s' && find . -path ./stub/stub/avatars/gallery -prune -o -print | LC_ALL=C sort | "
        "while IFS= read -r f; do stat -c '%%n %%F %%a %%s %%Y' \"$f\"; "
        "[ -f \"$f\" ] && md5sum < \"$f\"; "
        "[ -L \"$f\" ] && readlink \"$f\"; "
        "[ -f \"$f\" ] && getfattr --absolute-names -d -m user. \"$f\" 2>/dev/null | "
        "grep -v '^#'; true; done > '%s'";
    char *a = sm_path_join(W->home, "a.txt"), *b = sm_path_join(W->home, "b.txt");

    (void)state;
    need_root();
    if (!W->d.storage_dir)
        skip();
    if (sh("command -v setfattr >/dev/null && command -v getfattr >/dev/null") != 0) {
        print_message("skipped: setfattr/getfattr (package attr) not installed\n");
        skip();
    }
    assert_int_equal(sh("bash '%s/tests/fixtures/supabase/make-storage.sh' '%s'", W->root, ref), 0);
    /* make-storage.sh gives one file to uid 1000 as root; the demo keeps root's */
    assert_int_equal(sh(listing, W->d.storage_dir, a), 0);
    assert_int_equal(sh(listing, ref, b), 0);
    if (sh("diff '%s' '%s' >&2", a, b) != 0)
        fail_msg("the demo storage tree differs from make-storage.sh's");
    free(a);
    free(b);
    free(ref);
}

static void second_setup_reuses_the_running_cluster(void **state)
{
    sm_err err = SM_ERR_INIT;
    demo_info d2;
    int port;

    (void)state;
    need_root();
    if (!W->d.db_url)
        skip();
    port = W->d.port;
    assert_int_equal(demo_setup(W->home, &d2, &err), 0);
    assert_int_equal(d2.created, 0);
    assert_int_equal(d2.started, 0);
    assert_int_equal(d2.port, port);
    assert_string_equal(d2.db_url, W->d.db_url);
    assert_string_equal(d2.cluster_dir, W->d.cluster_dir);
    /* release d2 without stopping the server W->d owns */
    free(d2.bindir);
    d2.bindir = NULL;
    demo_teardown(&d2);
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM auth.users"), 200);
}

static void teardown_stops_and_setup_restarts_on_the_same_port(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *url;
    int port;
    PGconn *c;

    (void)state;
    need_root();
    if (!W->d.db_url)
        skip();
    port = W->d.port;
    url = sm_xstrdup(W->d.db_url);
    demo_teardown(&W->d);
    c = PQconnectdb(url);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    PQfinish(c);
    assert_int_equal(demo_setup(W->home, &W->d, &err), 0);
    assert_int_equal(W->d.created, 0);
    assert_int_equal(W->d.started, 1);
    assert_int_equal(W->d.port, port);
    assert_int_equal(q_int(url, "SELECT count(*) FROM storage.objects"), 33);
    free(url);
}

static void half_loaded_or_removed_cluster_is_made_again(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *state_path;

    (void)state;
    need_root();
    if (!W->d.db_url)
        skip();
    /* a load that never finished (demo.json says so): the cluster is made and loaded again */
    demo_teardown(&W->d);
    state_path = sm_xasprintf("%s/demo/demo.json", W->home);
    assert_int_equal(sh("sed -i 's/\"loaded\": true/\"loaded\": false/' '%s' && grep -q "
                        "'\"loaded\": false' '%s'",
                        state_path, state_path),
                     0);
    assert_int_equal(demo_setup(W->home, &W->d, &err), 0);
    assert_int_equal(W->d.created, 1);
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM auth.users"), 200);

    /* the cluster directory removed behind our back */
    demo_teardown(&W->d);
    assert_int_equal(sh("rm -rf '%s'", W->cluster_dir), 0);
    assert_int_equal(demo_setup(W->home, &W->d, &err), 0);
    assert_int_equal(W->d.created, 1);
    assert_int_equal(W->d.started, 1);
    assert_int_equal(q_int(W->d.db_url, "SELECT count(*) FROM storage.objects"), 33);
    free(state_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(setup_makes_cluster_data_tree_config_and_project),
        cmocka_unit_test(storage_tree_matches_make_storage_sh),
        cmocka_unit_test(second_setup_reuses_the_running_cluster),
        cmocka_unit_test(teardown_stops_and_setup_restarts_on_the_same_port),
        cmocka_unit_test(half_loaded_or_removed_cluster_is_made_again),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
