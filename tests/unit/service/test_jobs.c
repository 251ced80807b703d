/* src/service/jobs.c against a real throwaway PostgreSQL cluster (tests/lib/pg.sh): the queue,
 * the per-project and global limits, progress and events, shutdown, start-up after a previous
 * service, and the kinds of jobs (backup, export, import, restore, verify, delete).
 *
 * One group: its setup starts a cluster with small databases prj1, prj2, prj3 and slow, and a 64
 * MiB storage tree for project "slow" (long enough to be stopped in the middle); each test gets a
 * fresh home with the four projects registered. Needs SOURCE_ROOT (tests/meson.build sets it). */
#include "../unit_helpers.h"

#include "catalog/catalog.h"
#include "core/log.h"
#include "core/util.h"
#include "job/ops.h"
#include "service/jobs.h"
#include "source/pg.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>

#define SECRET "jobs-test-secret"
#define SLOW_FILES 8
#define SLOW_FILE_SIZE (8u << 20)

typedef struct world {
    char *root; /* the source tree */
    char *dir;  /* our temporary directory (mode 755: the server user must reach it) */
    int port;
    char *slow_storage;
} world;

static world *W;

typedef struct fx {
    char *home;
    jobs *J;
} fx;

/* ---- helpers ---- */

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

static char *db_url(const char *db)
{
    return sm_xasprintf("postgresql://postgres@127.0.0.1:%d/%s", W->port, db);
}

static void q_exec(const char *db, const char *sql)
{
    char *url = db_url(db);
    PGconn *c = PQconnectdb(url);
    PGresult *r;

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", url, PQerrorMessage(c));
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    free(url);
}

static long long q_int(const char *db, const char *sql)
{
    char *url = db_url(db);
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
    free(url);
    return v;
}

static void make_tree(const char *dir, int files, size_t size, uint64_t seed)
{
    sm_err err = SM_ERR_INIT;
    assert_int_equal(sm_mkdir_p(dir, 0755, &err), 0);
    for (int i = 0; i < files; i++) {
        char name[64];
        char *path;
        unsigned char *data = th_random(size, seed + (uint64_t)i);
        snprintf(name, sizeof(name), "file-%02d.bin", i);
        path = th_path(dir, name);
        th_write(path, data, size);
        free(path);
        free(data);
    }
}

static void add_project(catalog *cat, const char *id, const char *db, const char *storage,
                        const char *config)
{
    project *p = project_new();
    ops_ctx o;
    sm_err err = SM_ERR_INIT;

    p->id = sm_xstrdup(id);
    p->name = sm_xstrdup(id);
    p->db_url = db_url(db);
    p->storage_dir = sm_xstrdup(storage);
    p->config_dir = config ? sm_xstrdup(config) : NULL;
    ops_ctx_init(&o, cat, SECRET);
    if (ops_project_add(&o, p, 1, &err) < 0)
        fail_msg("project add %s: %s", id, err.msg);
    project_free(p);
}

static int start_jobs(fx *f, unsigned max_running)
{
    jobs_config cfg;
    sm_err err = SM_ERR_INIT;

    memset(&cfg, 0, sizeof(cfg));
    cfg.home = f->home;
    cfg.secret = SECRET;
    cfg.max_running = max_running;
    if (jobs_start(&f->J, &cfg, &err) < 0)
        fail_msg("jobs_start: %s", err.msg);
    return 0;
}

static void stop_jobs(fx *f)
{
    jobs_stop(f->J);
    f->J = NULL;
}

static int is_final(const char *status)
{
    return status && (!strcmp(status, "COMPLETED") || !strcmp(status, "FAILED") ||
                      !strcmp(status, "INTERRUPTED"));
}

static const char *st_str(const json_t *st, const char *key)
{
    return json_string_value(json_object_get(st, key));
}

/* Waits until the job has ended; returns its state (caller decrefs). */
static json_t *wait_job(jobs *J, const char *id)
{
    double t0 = sm_mono();

    while (sm_mono() - t0 < 180) {
        json_t *st = jobs_get(J, id);
        assert_non_null(st);
        if (is_final(st_str(st, "status")))
            return st;
        json_decref(st);
        usleep(20000);
    }
    fail_msg("job %s did not finish", id);
    return NULL;
}

/* Waits until the job's state satisfies: RUNNING with bytes_done > 0. */
static void wait_moving(jobs *J, const char *id)
{
    double t0 = sm_mono();

    while (sm_mono() - t0 < 60) {
        json_t *st = jobs_get(J, id);
        int moving = st && !strcmp(st_str(st, "status"), "RUNNING") &&
                     json_integer_value(json_object_get(st, "bytes_done")) > 0;
        if (st && is_final(st_str(st, "status")))
            fail_msg("job %s ended (%s) before it could be watched", id, st_str(st, "status"));
        json_decref(st);
        if (moving)
            return;
        usleep(5000);
    }
    fail_msg("job %s did not start moving", id);
}

static char *submit(jobs *J, const char *kind, const char *proj, const char *backup, json_t *args,
                    char **backup_id)
{
    job_spec sp;
    char *id = NULL;
    sm_err err = SM_ERR_INIT;

    memset(&sp, 0, sizeof(sp));
    sp.kind = kind;
    sp.project_id = proj;
    sp.backup_id = backup;
    sp.args = args;
    if (jobs_submit(J, &sp, &id, backup_id, &err) < 0)
        fail_msg("submit %s %s: %s", kind, proj ? proj : backup, err.msg);
    json_decref(args);
    return id;
}

static char *backup_done(jobs *J, const char *proj)
{
    char *bid = NULL, *jid = submit(J, "backup", proj, NULL, NULL, &bid);
    json_t *st = wait_job(J, jid);

    if (strcmp(st_str(st, "status"), "COMPLETED") != 0)
        fail_msg("backup of %s: %s", proj, st_str(st, "error"));
    json_decref(st);
    free(jid);
    return bid;
}

static char *catalog_status(const char *home, const char *what, const char *id, char **error)
{
    catalog *c = NULL;
    sm_err err = SM_ERR_INIT;
    char *status = NULL;

    assert_int_equal(catalog_open(&c, home, &err), 0);
    if (!strcmp(what, "job")) {
        job_rec *j = NULL;
        if (catalog_job_get(c, id, &j, &err) == 0) {
            status = sm_xstrdup(j->status);
            if (error)
                *error = j->error ? sm_xstrdup(j->error) : NULL;
        }
        job_rec_free(j);
    } else {
        backup_rec *b = NULL;
        if (catalog_backup_get(c, id, &b, &err) == 0) {
            status = sm_xstrdup(b->status);
            if (error)
                *error = b->error ? sm_xstrdup(b->error) : NULL;
        }
        backup_rec_free(b);
    }
    catalog_close(c);
    if (!status)
        fail_msg("%s %s not in the catalog: %s", what, id, err.msg);
    return status;
}

/* ---- event recording ---- */

#define MAX_EVENTS 20000

typedef struct rec_event {
    int who;
    char event[16];
    char status[16];
    char phase[96];
    double progress;
} rec_event;

typedef struct recorder {
    pthread_mutex_t mu;
    rec_event *ev;
    size_t n;
    json_t *last[8]; /* last state per listener */
} recorder;

typedef struct rec_ud {
    recorder *r;
    int who;
    /* optional: submit from inside the "done" of this job (shutdown test) */
    jobs *J;
    sm_err submit_err;
    int submit_rc;
} rec_ud;

static int on_rec(void *ud, const char *event, json_t *state)
{
    rec_ud *u = ud;
    recorder *r = u->r;
    rec_event *e;

    pthread_mutex_lock(&r->mu);
    if (r->n < MAX_EVENTS) {
        e = &r->ev[r->n++];
        e->who = u->who;
        snprintf(e->event, sizeof(e->event), "%s", event);
        snprintf(e->status, sizeof(e->status), "%s", st_str(state, "status"));
        snprintf(e->phase, sizeof(e->phase), "%s",
                 st_str(state, "phase") ? st_str(state, "phase") : "");
        e->progress = json_real_value(json_object_get(state, "progress"));
    }
    json_decref(r->last[u->who]);
    r->last[u->who] = json_deep_copy(state);
    pthread_mutex_unlock(&r->mu);
    if (u->J && !strcmp(event, "done")) {
        job_spec sp = {.kind = "backup", .project_id = "prj3"};
        char *id = NULL;
        u->submit_rc = jobs_submit(u->J, &sp, &id, NULL, &u->submit_err);
        free(id);
    }
    return 0;
}

static void rec_init(recorder *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->ev = sm_xcalloc(MAX_EVENTS, sizeof(*r->ev));
}

static void rec_free(recorder *r)
{
    pthread_mutex_destroy(&r->mu);
    for (size_t i = 0; i < 8; i++)
        json_decref(r->last[i]);
    free(r->ev);
}

/* Progress never goes back for one listener; its last event is "done". */
static void assert_events_sane(const recorder *r, int who)
{
    double prev = -1;
    size_t n = 0, dones = 0;
    const rec_event *last = NULL;

    for (size_t i = 0; i < r->n; i++) {
        const rec_event *e = &r->ev[i];
        if (e->who != who)
            continue;
        n++;
        if (e->progress < prev)
            fail_msg("progress went back from %.2f to %.2f (event %s, phase %s)", prev, e->progress,
                     e->event, e->phase);
        if (e->progress >= 100 && strcmp(e->status, "COMPLETED") != 0)
            fail_msg("progress 100 while %s", e->status);
        prev = e->progress;
        dones += !strcmp(e->event, "done");
        last = e;
    }
    assert_true(n > 0);
    assert_int_equal(dones, 1);
    assert_string_equal(last->event, "done");
}

/* ---- group and test setup ---- */

static int group_teardown(void **state)
{
    (void)state;
    if (!W)
        return 0;
    sh("bash \"%s/tests/lib/pg.sh\" stop \"%s/pg\" >/dev/null 2>&1", W->root, W->dir);
    if (W->dir && getenv("KEEP_PGTEST") == NULL)
        sh("rm -rf \"%s\"", W->dir);
    free(W->slow_storage);
    free(W->dir);
    free(W->root);
    free(W);
    W = NULL;
    return 0;
}

static int group_setup(void **state)
{
    char tmpl[] = "/tmp/sm-jobstest.XXXXXX";
    char cmd[2048];
    char *port;
    static const char *const dbs[] = {"prj1", "prj2", "prj3", "slow"};

    (void)state;
    sm_log_set_level(getenv("SUPAMANAGER_LOG") ? sm_log_get_level() : SM_LOG_ERROR);
    W = sm_xcalloc(1, sizeof(*W));
    W->root = sm_xstrdup(getenv("SOURCE_ROOT") ? getenv("SOURCE_ROOT") : ".");
    if (!mkdtemp(tmpl) || chmod(tmpl, 0755) != 0)
        return -1;
    W->dir = sm_xstrdup(tmpl);
    snprintf(cmd, sizeof(cmd),
             "bash -c '. \"%s/tests/lib/pg.sh\" && p=$(pg_free_port) && pg_start \"%s/pg\" $p >&2 "
             "&& echo $p'",
             W->root, W->dir);
    port = sh_line(cmd);
    if (!port) {
        group_teardown(state);
        return -1;
    }
    W->port = atoi(port);
    free(port);
    for (size_t i = 0; i < 4; i++) {
        char *sql = sm_xasprintf("CREATE DATABASE %s", dbs[i]);
        q_exec("postgres", sql);
        free(sql);
        q_exec(dbs[i], "CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM "
                       "generate_series(1, 2000) g");
    }
    W->slow_storage = th_path(W->dir, "slow-storage");
    make_tree(W->slow_storage, SLOW_FILES, SLOW_FILE_SIZE, 42);
    return 0;
}

static int setup(void **state)
{
    fx *f = sm_xcalloc(1, sizeof(*f));
    catalog *cat = NULL;
    sm_err err = SM_ERR_INIT;
    static const char *const ids[] = {"prj1", "prj2", "prj3"};

    f->home = th_tmpdir();
    assert_int_equal(catalog_open(&cat, f->home, &err), 0);
    for (size_t i = 0; i < 3; i++) {
        char *storage = sm_xasprintf("%s/storage-%s", f->home, ids[i]);
        char *config = sm_xasprintf("%s/config-%s", f->home, ids[i]);
        make_tree(storage, 3, 10000 + i, 7 + i);
        make_tree(config, 1, 100, 70 + i);
        add_project(cat, ids[i], ids[i], storage, config);
        free(storage);
        free(config);
    }
    add_project(cat, "slow", "slow", W->slow_storage, NULL);
    catalog_close(cat);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;

    if (f->J)
        jobs_stop(f->J);
    th_rmdir(f->home);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void backup_job_completes_with_monotonic_progress_and_done_last(void **state)
{
    fx *f = *state;
    recorder r;
    rec_ud u = {.r = &r, .who = 0};
    char *bid = NULL, *jid, *status, *other;
    json_t *st, *m;

    rec_init(&r);
    start_jobs(f, 2);
    jid = submit(f->J, "backup", "prj1", NULL, json_pack("{s:s}", "type", "full"), &bid);
    assert_non_null(bid);
    assert_true(!strncmp(bid, "backup_prj1_", 12));
    assert_true(jobs_subscribe(f->J, jid, on_rec, &u) != 0);
    st = wait_job(f->J, jid);
    assert_string_equal(st_str(st, "status"), "COMPLETED");
    assert_true(json_real_value(json_object_get(st, "progress")) == 100.0);
    assert_string_equal(st_str(st, "backup_id"), bid);
    assert_string_equal(st_str(json_object_get(st, "result"), "backup_id"), bid);
    assert_true(json_is_null(json_object_get(st, "error")));
    assert_non_null(st_str(st, "finished_at"));
    json_decref(st);

    /* listeners: monotonic, "status" COMPLETED then "done" last */
    pthread_mutex_lock(&r.mu);
    assert_events_sane(&r, 0);
    assert_true(r.n >= 2);
    assert_string_equal(r.ev[r.n - 2].event, "status");
    assert_string_equal(r.ev[r.n - 2].status, "COMPLETED");
    pthread_mutex_unlock(&r.mu);

    /* the catalog tells the same story under the same id */
    status = catalog_status(f->home, "job", jid, NULL);
    assert_string_equal(status, "COMPLETED");
    free(status);
    status = catalog_status(f->home, "backup", bid, NULL);
    assert_string_equal(status, "COMPLETED");
    free(status);
    other = jobs_for_backup(f->J, bid);
    assert_string_equal(other, jid);
    free(other);

    /* a finished job: one "done" at once */
    {
        recorder r2;
        rec_ud u2 = {.r = &r2, .who = 1};
        rec_init(&r2);
        assert_true(jobs_subscribe(f->J, jid, on_rec, &u2) != 0);
        assert_int_equal(r2.n, 1);
        assert_string_equal(r2.ev[0].event, "done");
        rec_free(&r2);
    }
    m = jobs_metrics(f->J);
    assert_int_equal(json_integer_value(json_object_get(m, "completed")), 1);
    assert_int_equal(json_integer_value(json_object_get(m, "running")), 0);
    json_decref(m);
    st = jobs_active(f->J);
    assert_int_equal(json_array_size(st), 0);
    json_decref(st);
    stop_jobs(f);
    rec_free(&r);
    free(jid);
    free(bid);
}

static void second_job_for_a_busy_project_fails_with_conflict(void **state)
{
    fx *f = *state;
    char *slow_bid = NULL, *slow = NULL, *prj2_bid = NULL, *prj2 = NULL, *want, *id = NULL;
    job_spec sp;
    sm_err err = SM_ERR_INIT;
    json_t *st;
    catalog *cat = NULL;
    backup_rec **v = NULL;
    size_t n = 0;

    start_jobs(f, 1);
    slow = submit(f->J, "backup", "slow", NULL, NULL, &slow_bid);
    prj2 = submit(f->J, "backup", "prj2", NULL, NULL, &prj2_bid);

    /* prj2 waits behind slow: its second job is refused, naming the queued one */
    memset(&sp, 0, sizeof(sp));
    sp.kind = "backup";
    sp.project_id = "prj2";
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    want = sm_xasprintf("project 'prj2' is busy: backup %s is queued (job %s)", prj2_bid, prj2);
    assert_err(&err, SM_E_CONFLICT, want);
    assert_string_equal(err.hint, "Wait for it to finish; one operation per project runs at a "
                                  "time.");
    free(want);
    assert_null(id);

    /* slow runs: the running job is named */
    wait_moving(f->J, slow);
    sp.kind = "backup";
    sp.project_id = "slow";
    sm_err_clear(&err);
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    want = sm_xasprintf("project 'slow' is busy: backup %s is running (job %s)", slow_bid, slow);
    assert_err(&err, SM_E_CONFLICT, want);
    free(want);

    /* the refused backup reserved nothing */
    assert_int_equal(catalog_open(&cat, f->home, &err), 0);
    assert_int_equal(catalog_backup_list(cat, "prj2", NULL, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    backup_list_free(v, n);
    catalog_close(cat);

    st = wait_job(f->J, prj2);
    assert_string_equal(st_str(st, "status"), "COMPLETED");
    json_decref(st);
    /* free again: a new job for prj2 is accepted */
    free(prj2);
    free(prj2_bid);
    prj2_bid = NULL;
    prj2 = submit(f->J, "backup", "prj2", NULL, NULL, &prj2_bid);
    st = wait_job(f->J, prj2);
    assert_string_equal(st_str(st, "status"), "COMPLETED");
    json_decref(st);
    stop_jobs(f);
    free(slow);
    free(slow_bid);
    free(prj2);
    free(prj2_bid);
}

static void global_limit_runs_one_job_at_a_time_in_order(void **state)
{
    fx *f = *state;
    recorder r;
    rec_ud u[3];
    char *ids[3], *bids[3];
    static const char *const projects[] = {"slow", "prj2", "prj3"};
    int running = 0, max_running = 0, seen_running[3] = {0, 0, 0};
    json_t *st, *m;

    rec_init(&r);
    start_jobs(f, 1);
    for (int i = 0; i < 3; i++) {
        bids[i] = NULL;
        ids[i] = submit(f->J, "backup", projects[i], NULL, NULL, &bids[i]);
    }
    for (int i = 1; i < 3; i++) {
        st = jobs_get(f->J, ids[i]);
        assert_string_equal(st_str(st, "status"), "QUEUED");
        assert_string_equal(st_str(st, "phase"), "queued");
        json_decref(st);
    }
    for (int i = 0; i < 3; i++) {
        u[i] = (rec_ud){.r = &r, .who = i};
        assert_true(jobs_subscribe(f->J, ids[i], on_rec, &u[i]) != 0);
    }
    m = jobs_metrics(f->J);
    assert_true(json_integer_value(json_object_get(m, "running")) <= 1);
    assert_int_equal(json_integer_value(json_object_get(m, "queued")) +
                         json_integer_value(json_object_get(m, "running")),
                     json_integer_value(json_object_get(m, "submitted")) -
                         json_integer_value(json_object_get(m, "completed")));
    json_decref(m);
    st = jobs_active(f->J);
    assert_true(json_array_size(st) >= 2); /* prj2 and prj3 wait behind slow */
    json_decref(st);
    for (int i = 0; i < 3; i++) {
        st = wait_job(f->J, ids[i]);
        assert_string_equal(st_str(st, "status"), "COMPLETED");
        json_decref(st);
    }

    /* in listener order: a job starts only after the previous one is done, in FIFO order */
    pthread_mutex_lock(&r.mu);
    for (size_t i = 0; i < r.n; i++) {
        const rec_event *e = &r.ev[i];
        if (!strcmp(e->event, "status") && !strcmp(e->status, "RUNNING")) {
            for (int k = 0; k < e->who; k++)
                if (!seen_running[k] && k > 0)
                    fail_msg("job %d started before job %d", e->who, k);
            seen_running[e->who] = 1;
            running++;
        } else if (!strcmp(e->event, "done")) {
            if (seen_running[e->who])
                running--;
        }
        if (running > max_running)
            max_running = running;
    }
    assert_int_equal(max_running, 1);
    assert_true(seen_running[1] && seen_running[2]);
    for (int i = 0; i < 3; i++)
        assert_events_sane(&r, i);
    pthread_mutex_unlock(&r.mu);
    stop_jobs(f);
    rec_free(&r);
    for (int i = 0; i < 3; i++) {
        free(ids[i]);
        free(bids[i]);
    }
}

static void stop_interrupts_the_running_backup_and_the_queued_jobs(void **state)
{
    fx *f = *state;
    recorder r;
    rec_ud u0, u1;
    char *slow_bid = NULL, *prj2_bid = NULL, *slow, *prj2, *s, *why = NULL;
    const json_t *last;

    rec_init(&r);
    start_jobs(f, 1);
    slow = submit(f->J, "backup", "slow", NULL, NULL, &slow_bid);
    prj2 = submit(f->J, "backup", "prj2", NULL, NULL, &prj2_bid);
    u0 = (rec_ud){.r = &r, .who = 0};
    u1 = (rec_ud){.r = &r, .who = 1, .J = f->J}; /* submits from its "done" */
    assert_true(jobs_subscribe(f->J, slow, on_rec, &u0) != 0);
    assert_true(jobs_subscribe(f->J, prj2, on_rec, &u1) != 0);
    wait_moving(f->J, slow);
    stop_jobs(f);

    /* the service refused new work while stopping */
    assert_int_equal(u1.submit_rc, -1);
    assert_err(&u1.submit_err, SM_E_INTERRUPTED, "the service is shutting down");

    pthread_mutex_lock(&r.mu);
    assert_events_sane(&r, 0);
    assert_events_sane(&r, 1);
    last = r.last[0];
    assert_string_equal(st_str(last, "status"), "INTERRUPTED");
    assert_string_equal(st_str(last, "error_code"), "interrupted");
    assert_true(json_real_value(json_object_get(last, "progress")) < 100);
    last = r.last[1];
    assert_string_equal(st_str(last, "status"), "INTERRUPTED");
    assert_string_equal(st_str(last, "error"), "the service stopped before the job started");
    assert_true(json_is_null(json_object_get(last, "started_at")));
    pthread_mutex_unlock(&r.mu);

    /* never COMPLETED, never left CREATING */
    s = catalog_status(f->home, "backup", slow_bid, NULL);
    assert_string_equal(s, "INTERRUPTED");
    free(s);
    s = catalog_status(f->home, "job", slow, NULL);
    assert_string_equal(s, "INTERRUPTED");
    free(s);
    s = catalog_status(f->home, "backup", prj2_bid, &why);
    assert_string_equal(s, "INTERRUPTED");
    assert_string_equal(why, "the service stopped before the job started");
    free(s);
    free(why);
    s = catalog_status(f->home, "job", prj2, NULL);
    assert_string_equal(s, "INTERRUPTED");
    free(s);
    rec_free(&r);
    free(slow);
    free(slow_bid);
    free(prj2);
    free(prj2_bid);
}

static void cancel_ends_a_queued_job_and_stops_a_running_one(void **state)
{
    fx *f = *state;
    char *slow_bid = NULL, *prj2_bid = NULL, *slow, *prj2, *s;
    sm_err err = SM_ERR_INIT;
    json_t *st;

    start_jobs(f, 1);
    slow = submit(f->J, "backup", "slow", NULL, NULL, &slow_bid);
    prj2 = submit(f->J, "backup", "prj2", NULL, NULL, &prj2_bid);
    assert_int_equal(jobs_cancel(f->J, prj2, &err), 0);
    st = jobs_get(f->J, prj2);
    assert_string_equal(st_str(st, "status"), "INTERRUPTED");
    assert_string_equal(st_str(st, "error"), "the job was cancelled before it started");
    json_decref(st);
    s = catalog_status(f->home, "backup", prj2_bid, NULL);
    assert_string_equal(s, "INTERRUPTED");
    free(s);

    wait_moving(f->J, slow);
    assert_int_equal(jobs_cancel(f->J, slow, &err), 0);
    st = wait_job(f->J, slow);
    assert_string_equal(st_str(st, "status"), "INTERRUPTED");
    json_decref(st);
    s = catalog_status(f->home, "backup", slow_bid, NULL);
    assert_string_equal(s, "INTERRUPTED");
    free(s);

    assert_int_equal(jobs_cancel(f->J, slow, &err), -1);
    s = sm_xasprintf("job '%s' has already finished", slow);
    assert_err(&err, SM_E_INVALID, s);
    free(s);
    assert_int_equal(jobs_cancel(f->J, "job_nope", &err), -1);
    assert_err(&err, SM_E_NOTFOUND, "unknown job 'job_nope'");
    stop_jobs(f);
    free(slow);
    free(slow_bid);
    free(prj2);
    free(prj2_bid);
}

static void submit_checks_kind_project_and_backup_at_once(void **state)
{
    fx *f = *state;
    job_spec sp;
    sm_err err = SM_ERR_INIT;
    char *id = NULL, *want, *f_reserved = NULL;
    catalog *cat = NULL;
    ops_ctx o;

    /* a backup that never completed (reserved, then left by a "previous run") */
    assert_int_equal(catalog_open(&cat, f->home, &err), 0);
    ops_ctx_init(&o, cat, SECRET);
    assert_int_equal(ops_backup_reserve(&o, "prj1", "full", NULL, &f_reserved, &err), 0);
    catalog_close(cat);
    start_jobs(f, 1);
    memset(&sp, 0, sizeof(sp));
    sp.kind = "compact";
    sp.project_id = "prj1";
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    assert_err(&err, SM_E_INVALID, "unknown job kind 'compact'");
    sp.kind = "backup";
    sp.project_id = "nope";
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    assert_err(&err, SM_E_NOTFOUND, "unknown project 'nope'");
    sp.project_id = "prj1";
    sp.args = json_pack("{s:s}", "type", "weekly");
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    assert_err(&err, SM_E_INVALID, "unknown backup type 'weekly'");
    json_decref(sp.args);
    sp.args = NULL;
    sp.kind = "restore";
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    assert_err(&err, SM_E_USAGE, "a restore job needs a backup id");
    sp.backup_id = "backup_prj1_20200101_000000";
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    assert_err(&err, SM_E_NOTFOUND, "unknown backup 'backup_prj1_20200101_000000'");
    sp.backup_id = f_reserved;
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    want = sm_xasprintf("backup '%s' is INTERRUPTED; only completed backups can be restored",
                        f_reserved);
    assert_err(&err, SM_E_INVALID, want);
    free(want);
    sp.kind = "export";
    sp.backup_id = NULL;
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    assert_err(&err, SM_E_USAGE, "an export job needs a backup id");
    sp.kind = "import";
    sp.project_id = "prj2";
    sp.args = json_pack("{s:s,s:{}}", "file", "/nonexistent.tar.gz", "project");
    assert_int_equal(jobs_submit(f->J, &sp, &id, NULL, &err), -1);
    assert_err(&err, SM_E_EXISTS, "project 'prj2' already exists");
    json_decref(sp.args);
    assert_null(jobs_get(f->J, "job_0000000000000000"));
    assert_int_equal(jobs_subscribe(f->J, "job_0000000000000000", on_rec, NULL), 0);
    assert_null(id);
    stop_jobs(f);
    free(f_reserved);
}

static void restart_marks_leftovers_interrupted_and_cleans_staging(void **state)
{
    fx *f = *state;
    catalog *cat = NULL;
    sm_err err = SM_ERR_INIT;
    job_rec j;
    backup_rec *b = backup_rec_new();
    char *stage = sm_xasprintf("%s/storage-prj1.smr-20250101000000", f->home);
    char *cstage = sm_xasprintf("%s/config-prj1.smr-20250101000000", f->home);
    char *keep = sm_xasprintf("%s/storage-prj1.smprev-20250101000000", f->home);
    char *tmp = sm_xasprintf("%s/tmp/restore-abc123", f->home);
    char *s, *why = NULL, *file;
    pg_server none;
    json_t *st;

    memset(&none, 0, sizeof(none));
    assert_int_equal(catalog_open(&cat, f->home, &err), 0);
    /* ours (same pid: a previous instance whose pid we got again), a dead one, another host */
    memset(&j, 0, sizeof(j));
    j.id = "job_mine";
    j.project_id = "prj1";
    j.kind = "restore";
    j.status = "RUNNING";
    j.progress = 40;
    assert_int_equal(catalog_job_insert(cat, &j, &err), 0);
    j.id = "job_dead";
    j.project_id = "prj2";
    j.kind = "backup";
    j.status = "QUEUED";
    j.pid = th_dead_pid();
    assert_int_equal(catalog_job_insert(cat, &j, &err), 0);
    j.id = "job_elsewhere";
    j.status = "RUNNING";
    j.pid = 1;
    snprintf(j.host, sizeof(j.host), "another-host");
    assert_int_equal(catalog_job_insert(cat, &j, &err), 0);
    b->id = sm_xstrdup("backup_prj1_20250101_000000");
    b->project_id = sm_xstrdup("prj1");
    b->type = sm_xstrdup("FULL");
    b->status = sm_xstrdup("CREATING");
    b->kind = sm_xstrdup("manual");
    sm_time_iso(b->created_at, sizeof(b->created_at), sm_now());
    b->pid = getpid();
    snprintf(b->host, sizeof(b->host), "%s", sm_hostname());
    assert_int_equal(catalog_backup_insert(cat, b, &err), 0);
    catalog_close(cat);

    /* what an interrupted restore and verify leave */
    make_tree(stage, 2, 100, 1);
    make_tree(cstage, 1, 100, 2);
    make_tree(keep, 1, 100, 3);
    make_tree(tmp, 1, 100, 4);
    {
        char *url = db_url("prj1");
        assert_int_equal(pg_create_database(&none, url, "prj1_smr_20250101000000", &err), 0);
        assert_int_equal(pg_create_database(&none, url, "prj1_smverify_20250101000000", &err), 0);
        free(url);
    }

    start_jobs(f, 1);
    s = catalog_status(f->home, "job", "job_mine", &why);
    assert_string_equal(s, "INTERRUPTED");
    assert_string_equal(why, "the service stopped before it finished");
    free(s);
    free(why);
    s = catalog_status(f->home, "job", "job_dead", &why);
    assert_string_equal(s, "INTERRUPTED");
    assert_string_equal(why, "the process running it stopped before it finished");
    free(s);
    free(why);
    s = catalog_status(f->home, "job", "job_elsewhere", &why);
    assert_string_equal(s, "INTERRUPTED");
    assert_string_equal(why, "the service stopped before it finished");
    free(s);
    free(why);
    s = catalog_status(f->home, "backup", "backup_prj1_20250101_000000", &why);
    assert_string_equal(s, "INTERRUPTED");
    assert_string_equal(why, "the service stopped before it finished");
    free(s);
    free(why);
    /* an old job is still known, from the catalog */
    st = jobs_get(f->J, "job_mine");
    assert_non_null(st);
    assert_string_equal(st_str(st, "status"), "INTERRUPTED");
    assert_string_equal(st_str(st, "project_id"), "prj1");
    json_decref(st);

    assert_false(sm_exists(stage));
    assert_false(sm_exists(cstage));
    assert_false(sm_exists(tmp));
    assert_true(sm_exists(keep)); /* the previous state of a finished swap is not ours to drop */
    file = sm_xasprintf("%s/storage-prj1/file-00.bin", f->home);
    assert_true(sm_exists(file));
    free(file);
    assert_int_equal(q_int("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE "
                                       "'prj1\\_sm%'"),
                     0);
    assert_int_equal(q_int("prj1", "SELECT count(*) FROM t"), 2000);

    /* and the project works */
    s = backup_done(f->J, "prj1");
    free(s);
    stop_jobs(f);
    backup_rec_free(b);
    free(stage);
    free(cstage);
    free(keep);
    free(tmp);
}

static void export_import_verify_delete_jobs(void **state)
{
    fx *f = *state;
    char *bid;
    char *path = sm_xasprintf("%s/out.tar.zst", f->home);
    char *upload = sm_xasprintf("%s/upload.tar.zst", f->home);
    char *jid, *s, *storage, *imported_bid;
    json_t *st, *res;
    struct stat sb;

    start_jobs(f, 2);
    bid = backup_done(f->J, "prj1");
    /* export: the archive is where asked, result {path, size} */
    jid = submit(f->J, "export", NULL, bid,
                 json_pack("{s:s,s:s}", "path", path, "compression", "zstd"), NULL);
    st = wait_job(f->J, jid);
    if (strcmp(st_str(st, "status"), "COMPLETED") != 0)
        fail_msg("export: %s", st_str(st, "error"));
    assert_string_equal(st_str(st, "project_id"), "prj1");
    res = json_object_get(st, "result");
    assert_string_equal(st_str(res, "path"), path);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 0);
    assert_int_equal(json_integer_value(json_object_get(res, "size")), sb.st_size);
    json_decref(st);
    free(jid);

    /* verify: the report is the result */
    jid = submit(f->J, "verify", "prj1", bid, NULL, NULL);
    st = wait_job(f->J, jid);
    assert_string_equal(st_str(st, "status"), "COMPLETED");
    assert_true(json_is_true(json_object_get(json_object_get(st, "result"), "checksums_ok")));
    json_decref(st);
    free(jid);

    /* import: a new project from the archive; the upload is consumed */
    assert_int_equal(rename(path, upload), 0);
    storage = sm_xasprintf("%s/storage-imported", f->home);
    {
        char *url = db_url("prj1imported");
        jid = submit(f->J, "import", "prj1imported", NULL,
                     json_pack("{s:s,s:{s:s,s:s,s:s}}", "file", upload, "project", "name",
                               "Imported", "db_url", url, "storage_dir", storage),
                     NULL);
        free(url);
    }
    st = wait_job(f->J, jid);
    if (strcmp(st_str(st, "status"), "COMPLETED") != 0)
        fail_msg("import: %s", st_str(st, "error"));
    res = json_object_get(st, "result");
    assert_string_equal(st_str(res, "project_id"), "prj1imported");
    imported_bid = sm_xstrdup(st_str(res, "backup_id"));
    assert_true(json_real_value(json_object_get(st, "progress")) == 100.0);
    json_decref(st);
    assert_false(sm_exists(upload));
    s = catalog_status(f->home, "job", jid, NULL);
    assert_string_equal(s, "COMPLETED");
    free(s);
    free(jid);
    assert_int_equal(q_int("prj1imported", "SELECT count(*) FROM t"), 2000);

    /* delete: the backup is gone */
    jid = submit(f->J, "delete", NULL, imported_bid, NULL, NULL);
    st = wait_job(f->J, jid);
    assert_string_equal(st_str(st, "status"), "COMPLETED");
    json_decref(st);
    free(jid);
    {
        catalog *cat = NULL;
        backup_rec *b = NULL;
        sm_err err = SM_ERR_INIT;
        assert_int_equal(catalog_open(&cat, f->home, &err), 0);
        assert_int_equal(catalog_backup_get(cat, imported_bid, &b, &err), -1);
        assert_int_equal(err.code, SM_E_NOTFOUND);
        catalog_close(cat);
    }
    stop_jobs(f);
    q_exec("postgres", "DROP DATABASE prj1imported WITH (FORCE)");
    free(imported_bid);
    free(storage);
    free(upload);
    free(path);
    free(bid);
}

static void failed_import_is_recorded_and_its_upload_removed(void **state)
{
    fx *f = *state;
    char *upload = sm_xasprintf("%s/garbage.tar.gz", f->home);
    char *storage = sm_xasprintf("%s/storage-bad", f->home);
    char *url = db_url("badimport");
    char *jid, *s, *why = NULL;
    json_t *st;

    th_write_str(upload, "this is not an archive");
    start_jobs(f, 1);
    jid = submit(f->J, "import", "badimport", NULL,
                 json_pack("{s:s,s:{s:s,s:s}}", "file", upload, "project", "db_url", url,
                           "storage_dir", storage),
                 NULL);
    st = wait_job(f->J, jid);
    assert_string_equal(st_str(st, "status"), "FAILED");
    assert_non_null(st_str(st, "error"));
    json_decref(st);
    assert_false(sm_exists(upload));
    s = catalog_status(f->home, "job", jid, &why);
    assert_string_equal(s, "FAILED");
    assert_non_null(why);
    free(s);
    free(why);
    stop_jobs(f);
    free(jid);
    free(url);
    free(storage);
    free(upload);
}

static void restore_job_maps_its_safety_backup_into_its_progress(void **state)
{
    fx *f = *state;
    recorder r;
    rec_ud u = {.r = &r, .who = 0};
    char *bid, *jid, *s;
    json_t *st;
    int saw_safety = 0, saw_stage = 0;

    rec_init(&r);
    start_jobs(f, 1);
    bid = backup_done(f->J, "prj1");
    q_exec("prj1", "DELETE FROM t WHERE g > 1000");
    /* a slow job first, so that the restore is subscribed to before it starts */
    {
        char *sb = NULL, *sj = submit(f->J, "backup", "slow", NULL, NULL, &sb);
        jid = submit(f->J, "restore", "prj1", bid, json_pack("{s:b}", "database", 1), NULL);
        assert_true(jobs_subscribe(f->J, jid, on_rec, &u) != 0);
        json_decref(wait_job(f->J, sj));
        free(sj);
        free(sb);
    }
    st = wait_job(f->J, jid);
    if (strcmp(st_str(st, "status"), "COMPLETED") != 0)
        fail_msg("restore: %s", st_str(st, "error"));
    assert_string_equal(st_str(st, "backup_id"), bid);
    json_decref(st);
    assert_int_equal(q_int("prj1", "SELECT count(*) FROM t"), 2000);

    pthread_mutex_lock(&r.mu);
    assert_events_sane(&r, 0);
    assert_string_equal(r.ev[0].event, "status");
    assert_string_equal(r.ev[0].status, "RUNNING");
    for (size_t i = 0; i < r.n; i++) {
        if (!strncmp(r.ev[i].phase, "safety backup", 13)) {
            saw_safety = 1;
            assert_true(r.ev[i].progress <= 40);
        }
        if (!strcmp(r.ev[i].phase, "stage") || !strncmp(r.ev[i].phase, "restore ", 8)) {
            saw_stage = 1;
            assert_true(r.ev[i].progress >= 40);
        }
    }
    assert_true(saw_safety && saw_stage);
    pthread_mutex_unlock(&r.mu);
    /* the job row keeps the backup restored (not the safety backup) */
    {
        catalog *cat = NULL;
        job_rec *j = NULL;
        sm_err err = SM_ERR_INIT;
        assert_int_equal(catalog_open(&cat, f->home, &err), 0);
        assert_int_equal(catalog_job_get(cat, jid, &j, &err), 0);
        assert_string_equal(j->backup_id, bid);
        assert_string_equal(j->status, "COMPLETED");
        assert_true(j->progress == 100);
        job_rec_free(j);
        catalog_close(cat);
    }
    s = catalog_status(f->home, "job", jid, NULL);
    free(s);
    stop_jobs(f);
    rec_free(&r);
    free(jid);
    free(bid);
}

static void backup_refused_by_a_cli_claim_marks_its_record_failed(void **state)
{
    fx *f = *state;
    catalog *cat = NULL;
    sm_err err = SM_ERR_INIT;
    char *cli_job = NULL, *bid = NULL, *jid, *s, *why = NULL;
    json_t *st;

    /* a CLI command holds prj3 (a RUNNING row of this process, as the CLI writes it) */
    start_jobs(f, 1);
    assert_int_equal(catalog_open(&cat, f->home, &err), 0);
    assert_int_equal(catalog_job_claim(cat, "prj3", "verify", NULL, &cli_job, &err), 0);
    jid = submit(f->J, "backup", "prj3", NULL, NULL, &bid);
    st = wait_job(f->J, jid);
    assert_string_equal(st_str(st, "status"), "FAILED");
    assert_string_equal(st_str(st, "error_code"), "conflict");
    assert_true(strstr(st_str(st, "error"), "project 'prj3' is busy: verify is running (job ") !=
                NULL);
    json_decref(st);
    s = catalog_status(f->home, "backup", bid, &why);
    assert_string_equal(s, "FAILED");
    assert_true(strstr(why, "project 'prj3' is busy") != NULL);
    free(s);
    free(why);
    assert_int_equal(catalog_job_finish(cat, cli_job, "COMPLETED", NULL, &err), 0);
    catalog_close(cat);
    st = jobs_metrics(f->J);
    assert_int_equal(json_integer_value(json_object_get(st, "failed")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st, "failures_by_kind"), "backup")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st, "by_status"), "failed")), 1);
    json_decref(st);
    stop_jobs(f);
    free(cli_job);
    free(jid);
    free(bid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(backup_job_completes_with_monotonic_progress_and_done_last,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(second_job_for_a_busy_project_fails_with_conflict, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(global_limit_runs_one_job_at_a_time_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stop_interrupts_the_running_backup_and_the_queued_jobs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_ends_a_queued_job_and_stops_a_running_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(submit_checks_kind_project_and_backup_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(restart_marks_leftovers_interrupted_and_cleans_staging,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(export_import_verify_delete_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_import_is_recorded_and_its_upload_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(restore_job_maps_its_safety_backup_into_its_progress, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(backup_refused_by_a_cli_claim_marks_its_record_failed,
                                        setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
