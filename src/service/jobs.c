/* The daemon's jobs: a FIFO queue, a pool of workers, one job per project.
 *
 * Locks. J->mu guards the job list, the queue, the project occupancy
 * (job.active), the subscription registry and the counters. Each job's
 * j->mu (recursive) guards its changing state and its listeners; the
 * listeners are called with it held, so the events of a job come in the
 * order of its changes whatever thread makes them. J->mu is never held while
 * taking a j->mu (a listener may call jobs_unsubscribe, which takes J->mu
 * under j->mu). J->catmu serialises J->cat, the catalog connection of the
 * threads that are not workers (submit, stop, cancel, fallbacks); each
 * worker has its own connection.
 *
 * A job's id, kind, projects, backup id and args are written before it
 * becomes visible (under J->mu) and never change afterwards. */
#include "service/jobs.h"

#include "catalog/catalog.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "job/archive.h"
#include "job/ops.h"
#include "job/pitr.h"
#include "source/pg.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEEP_FINISHED 200
#define REASON_STOPPED "the service stopped before it finished"
#define REASON_NOT_STARTED "the service stopped before the job started"
#define REASON_CANCELLED "the job was cancelled before it started"
#define MSG_SHUTTING_DOWN "the service is shutting down"
#define HINT_BUSY "Wait for it to finish; one operation per project runs at a time."

static const char *const kinds[] = {"backup", "restore", "verify",       "export",
                                     "import", "delete",  "pitr-restore", "pitr-base"};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

typedef struct listener {
    unsigned long handle;
    jobs_listener fn;
    void *ud;
    int dead;
    struct listener *next;
} listener;

typedef struct job {
    /* fixed once visible */
    char *id;
    const char *kind; /* one of kinds[] */
    char *project_id;
    char *to_project;    /* restore into another project, else NULL */
    char *claim_project; /* the project the operation claims (NULL: import) */
    char *backup_id;
    json_t *args; /* a deep copy (holds passphrases: never shown) */
    char created_at[32];

    /* J->mu */
    int refs;
    int visible;  /* submit finished */
    int active;   /* occupies its projects (queued or running) */
    int queued;   /* in the queue */
    int finished; /* final status set */
    struct job *next;
    struct job *qnext;

    /* j->mu */
    pthread_mutex_t mu;
    char status[16];
    char *phase;
    double progress;
    uint64_t bytes_done, bytes_total;
    double rate, eta_s;
    sm_err err;
    json_t *result;
    char started_at[32], finished_at[32];
    double seg_lo, seg_hi;
    const char *seg_label;
    listener *listeners;
    int notifying;

    /* set by jobs_stop/jobs_cancel, read by the operation */
    volatile sig_atomic_t cancel;
} job;

typedef struct sub {
    unsigned long handle;
    job *j;
    struct sub *next;
} sub;

struct jobs {
    char *home;
    char *secret;
    unsigned max_running;
    int safety_days;
    char *min_free;
    void (*on_done)(void *ud, const json_t *state);
    void *on_done_ud;

    pthread_mutex_t mu;
    pthread_cond_t work; /* the queue got a job, or stopping */
    pthread_cond_t idle; /* submitting dropped to 0 */
    job *head, *tail;    /* every visible or pending job, in submit order */
    job *qhead, *qtail;  /* the queue */
    sub *subs;
    unsigned long next_handle;
    int stopping;
    unsigned submitting;
    unsigned running;
    unsigned long submitted, completed, failed, interrupted;
    unsigned long failures[NKINDS];

    pthread_t *workers;
    unsigned nworkers;

    pthread_mutex_t catmu;
    catalog *cat;
};

/* ---- small helpers ---- */

static void now_iso(char out[32])
{
    sm_time_iso(out, 32, sm_now());
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static const char *arg_str(const json_t *args, const char *key)
{
    return json_string_value(json_object_get(args, key));
}

static int arg_bool(const json_t *args, const char *key)
{
    return json_is_true(json_object_get(args, key));
}

static int kind_index(const char *kind)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (kind && !strcmp(kind, kinds[i]))
            return (int)i;
    return -1;
}

static int is_cancelled(const job *j)
{
    return __atomic_load_n(&j->cancel, __ATOMIC_SEQ_CST) != 0;
}

static void set_cancel(job *j)
{
    __atomic_store_n(&j->cancel, 1, __ATOMIC_SEQ_CST);
}

/* ---- jobs: life cycle ---- */

static job *job_new(void)
{
    job *j = sm_xcalloc(1, sizeof(*j));
    pthread_mutexattr_t a;

    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&j->mu, &a);
    pthread_mutexattr_destroy(&a);
    snprintf(j->status, sizeof(j->status), "QUEUED");
    j->seg_hi = 100;
    j->eta_s = -1;
    j->refs = 1; /* the list's */
    return j;
}

static void job_free(job *j)
{
    listener *l, *n;

    if (!j)
        return;
    for (l = j->listeners; l; l = n) {
        n = l->next;
        free(l);
    }
    pthread_mutex_destroy(&j->mu);
    free(j->id);
    free(j->project_id);
    free(j->to_project);
    free(j->claim_project);
    free(j->backup_id);
    json_decref(j->args);
    free(j->phase);
    json_decref(j->result);
    free(j);
}

/* Drops the subscriptions of j. J->mu held. */
static void subs_drop_job(jobs *J, const job *j)
{
    sub **pp = &J->subs;

    while (*pp) {
        if ((*pp)->j == j) {
            sub *s = *pp;
            *pp = s->next;
            free(s);
        } else {
            pp = &(*pp)->next;
        }
    }
}

/* Unlinks j from the job list. J->mu held. */
static void list_unlink(jobs *J, job *j)
{
    job **pp = &J->head, *prev = NULL;

    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = j->next;
    if (J->tail == j)
        J->tail = prev;
    j->next = NULL;
}

static void job_unref(jobs *J, job *j)
{
    int last;

    pthread_mutex_lock(&J->mu);
    last = --j->refs == 0;
    if (last)
        subs_drop_job(J, j);
    pthread_mutex_unlock(&J->mu);
    if (last)
        job_free(j);
}

/* The visible job with this id, with a reference (job_unref it). */
static job *find_ref(jobs *J, const char *id)
{
    job *j;

    if (!id)
        return NULL;
    pthread_mutex_lock(&J->mu);
    for (j = J->head; j; j = j->next)
        if (j->visible && !strcmp(j->id, id))
            break;
    if (j)
        j->refs++;
    pthread_mutex_unlock(&J->mu);
    return j;
}

/* ---- state and listeners ---- */

/* j->mu held. */
static json_t *state_locked(const job *j)
{
    json_t *st = json_object();

    json_object_set_new(st, "id", json_string(j->id));
    json_object_set_new(st, "kind", json_string(j->kind));
    json_object_set_new(st, "project_id", str_or_null(j->project_id));
    json_object_set_new(st, "to_project", str_or_null(j->to_project));
    json_object_set_new(st, "backup_id", str_or_null(j->backup_id));
    json_object_set_new(st, "status", json_string(j->status));
    json_object_set_new(st, "phase", str_or_null(j->phase));
    json_object_set_new(st, "progress", json_real(j->progress));
    json_object_set_new(st, "bytes_done", json_integer((json_int_t)j->bytes_done));
    json_object_set_new(st, "bytes_total", json_integer((json_int_t)j->bytes_total));
    json_object_set_new(st, "rate", json_real(j->rate));
    json_object_set_new(st, "eta_s", j->eta_s >= 0 ? json_real(j->eta_s) : json_null());
    json_object_set_new(st, "error", j->err.code ? json_string(j->err.msg) : json_null());
    json_object_set_new(st, "error_code",
                        j->err.code ? json_string(sm_code_name(j->err.code)) : json_null());
    json_object_set_new(st, "hint", j->err.code ? str_or_null(j->err.hint) : json_null());
    json_object_set_new(st, "result", j->result ? json_incref(j->result) : json_null());
    json_object_set_new(st, "created_at", json_string(j->created_at));
    json_object_set_new(st, "started_at", str_or_null(j->started_at));
    json_object_set_new(st, "finished_at", str_or_null(j->finished_at));
    return st;
}

/* Frees dead listeners unless a notification is going on. j->mu held. */
static void sweep_locked(job *j)
{
    listener **pp = &j->listeners;

    if (j->notifying)
        return;
    while (*pp) {
        if ((*pp)->dead) {
            listener *l = *pp;
            *pp = l->next;
            free(l);
        } else {
            pp = &(*pp)->next;
        }
    }
}

/* Calls the listeners, in order. j->mu held. */
static void notify_locked(job *j, const char *event)
{
    json_t *st;

    if (!j->listeners)
        return;
    st = state_locked(j);
    j->notifying++;
    for (listener *l = j->listeners; l; l = l->next)
        if (!l->dead && l->fn(l->ud, event, st) != 0)
            l->dead = 1;
    j->notifying--;
    json_decref(st);
    sweep_locked(j);
}

/* ---- progress ---- */

/* Phases that start a part of a job, and the share of the job's 0..100 that
 * part's own percentages map into (a restore's safety backup reports 0..100
 * of itself). Other phases stay in the current part. */
static const struct segment {
    const char *kind;
    const char *phase;
    double lo, hi;
    const char *label; /* shown before the part's own phases */
} segments[] = {
    {"restore", "safety backup", 0, 40, "safety backup"},
    {"restore", "stage", 40, 95, NULL},
    {"restore", "pause", 95, 99, NULL},
    {"import", "check archive", 0, 20, NULL},
    {"import", "stage", 20, 95, NULL},
    {"import", "pause", 95, 99, NULL},
};

typedef struct run_ctx {
    jobs *J;
    job *j;
    catalog *cat;
    double last_write;
} run_ctx;

/* ops_ctx.event: runs on the worker thread. */
static void on_event(void *ud, const ops_event *e)
{
    run_ctx *rc = ud;
    job *j = rc->j;
    char phase[160] = "";
    double progress, now = sm_mono();
    int write = 0;

    pthread_mutex_lock(&j->mu);
    if (e->phase) {
        for (size_t i = 0; i < sizeof(segments) / sizeof(segments[0]); i++) {
            if (strcmp(segments[i].kind, j->kind) != 0 || strcmp(segments[i].phase, e->phase))
                continue;
            j->seg_lo = segments[i].lo;
            j->seg_hi = segments[i].hi;
            j->seg_label = segments[i].label;
            if (j->progress < j->seg_lo)
                j->progress = j->seg_lo;
        }
        /* "completed" of an inner operation is not the job's end */
        if (strcmp(e->phase, "completed") != 0) {
            if (j->seg_label && strcmp(j->seg_label, e->phase) != 0)
                snprintf(phase, sizeof(phase), "%s: %s", j->seg_label, e->phase);
            else
                snprintf(phase, sizeof(phase), "%s", e->phase);
            if (!j->phase || strcmp(j->phase, phase) != 0) {
                free(j->phase);
                j->phase = sm_xstrdup(phase);
                write = 1;
            }
        }
    }
    if (e->progress >= 0) {
        double p =
            j->seg_lo + (e->progress > 100 ? 100 : e->progress) * (j->seg_hi - j->seg_lo) / 100.0;
        if (p > 99)
            p = 99; /* 100 means COMPLETED */
        if (p > j->progress)
            j->progress = p;
        j->bytes_done = e->bytes_done;
        j->bytes_total = e->bytes_total;
        j->rate = e->rate;
        j->eta_s = e->eta_s;
    }
    notify_locked(j, "progress");
    progress = j->progress;
    snprintf(phase, sizeof(phase), "%s", j->phase ? j->phase : "");
    pthread_mutex_unlock(&j->mu);

    /* the row is for people looking at the catalog: once a second is enough */
    if (write || now - rc->last_write >= 1.0) {
        rc->last_write = now;
        catalog_job_progress(rc->cat, j->id, progress, phase[0] ? phase : NULL, NULL);
    }
}

/* ---- the operations ---- */

static project *project_from_args(const json_t *a, const char *id)
{
    project *p = project_new();
    const char *v;
    json_t *files = json_object_get(a, "config_files");

    v = arg_str(a, "id");
    p->id = sm_xstrdup(v ? v : id);
    v = arg_str(a, "name");
    p->name = sm_xstrdup(v ? v : p->id);
#define OPT(field, key)                                                                            \
    do {                                                                                           \
        const char *s_ = arg_str(a, key);                                                          \
        p->field = s_ && *s_ ? sm_xstrdup(s_) : NULL;                                              \
    } while (0)
    OPT(org_id, "org_id");
    OPT(owner, "owner");
    OPT(db_url, "db_url");
    OPT(storage_dir, "storage_dir");
    OPT(config_dir, "config_dir");
    OPT(pgsodium_key, "pgsodium_key");
    OPT(pause_cmd, "pause_cmd");
    OPT(resume_cmd, "resume_cmd");
    OPT(store, "store");
#undef OPT
    if (json_is_array(files)) {
        json_decref(p->config_files);
        p->config_files = json_deep_copy(files);
    }
    return p;
}

/* Runs the job's operation. *result gets the kind's result (may stay NULL). */
static int run_op(ops_ctx *o, job *j, json_t **result, sm_err *err)
{
    const json_t *a = j->args;
    int rc = -1;

    if (!strcmp(j->kind, "backup")) {
        ops_backup_opts bo;
        char *id = NULL;
        memset(&bo, 0, sizeof(bo));
        ops_retention ret;
        const json_t *rj = json_object_get(a, "retention");
        json_t *report = json_object();
        bo.type = arg_str(a, "type");
        bo.kind = arg_str(a, "kind");
        bo.backup_id = j->backup_id;
        bo.scheduled_for = arg_str(a, "scheduled_for");
        if (json_is_object(rj)) {
            ret.last = (int)json_integer_value(json_object_get(rj, "last"));
            ret.daily = (int)json_integer_value(json_object_get(rj, "daily"));
            ret.weekly = (int)json_integer_value(json_object_get(rj, "weekly"));
            ret.monthly = (int)json_integer_value(json_object_get(rj, "monthly"));
            bo.retention = &ret;
        }
        bo.report = report;
        rc = ops_backup_create(o, j->project_id, &bo, &id, err);
        if (rc == 0) {
            json_object_set_new(report, "backup_id", json_string(j->backup_id));
            *result = report;
            report = NULL;
        }
        json_decref(report);
        free(id);
    } else if (!strcmp(j->kind, "restore")) {
        ops_restore_opts ro;
        memset(&ro, 0, sizeof(ro));
        ro.database = arg_bool(a, "database");
        ro.storage = arg_bool(a, "storage");
        ro.config = arg_bool(a, "config");
        ro.to_project = j->to_project;
        rc = ops_restore(o, j->project_id, j->backup_id, &ro, err);
    } else if (!strcmp(j->kind, "verify")) {
        json_t *report = NULL;
        rc = ops_backup_verify(o, j->backup_id, arg_bool(a, "restore_test"), &report, err);
        *result = report;
    } else if (!strcmp(j->kind, "export")) {
        archive_export_opts ao;
        char *written = NULL;
        struct stat sb;
        memset(&ao, 0, sizeof(ao));
        ao.compression = ARCHIVE_GZIP;
        if (arg_str(a, "compression"))
            archive_compression_parse(arg_str(a, "compression"), &ao.compression);
        ao.passphrase = arg_str(a, "passphrase");
        rc = ops_export(o, j->backup_id, arg_str(a, "path"), &ao, &written, err);
        if (rc == 0)
            *result = json_pack("{s:s,s:I}", "path", written, "size",
                                (json_int_t)(stat(written, &sb) == 0 ? sb.st_size : 0));
        free(written);
    } else if (!strcmp(j->kind, "import")) {
        project *p = project_from_args(json_object_get(a, "project"), j->project_id);
        char *id = NULL;
        rc = ops_import(o, arg_str(a, "file"), p, arg_str(a, "passphrase"), &id, err);
        if (rc == 0)
            *result = json_pack("{s:s,s:s}", "project_id", p->id, "backup_id", id);
        free(id);
        project_free(p);
    } else if (!strcmp(j->kind, "delete")) {
        rc = ops_backup_delete(o, j->backup_id, err);
    } else if (!strcmp(j->kind, "pitr-restore")) {
        pitr_target t;
        json_t *report = NULL;
        memset(&t, 0, sizeof(t));
        t.time = arg_str(a, "target_time");
        t.lsn = arg_str(a, "target_lsn");
        t.latest = arg_bool(a, "latest");
        rc = pitr_restore(o, j->project_id, &t, &report, err);
        *result = report;
    } else if (!strcmp(j->kind, "pitr-base")) {
        json_t *report = NULL;
        rc = pitr_base_backup(o, j->project_id, &report, err);
        *result = report;
    } else {
        rc = sm_err_set(err, SM_E_INTERNAL, "unknown job kind '%s'", j->kind);
    }
    return rc;
}

/* Records the end of a job everywhere: the reserved backup (never left
 * CREATING), the import's file, the catalog row, the counters, the state
 * and the listeners ("status", then "done"). cat is the caller's catalog
 * (NULL: J->cat under catmu). Takes result. */
static void finish_job(jobs *J, catalog *cat, job *j, int rc, const sm_err *err, json_t *result)
{
    const char *status = rc == 0                         ? "COMPLETED"
                         : err->code == SM_E_INTERRUPTED ? "INTERRUPTED"
                                                         : "FAILED";
    int k = kind_index(j->kind);
    char now[32];
    job_rec *row = NULL;
    sm_err e = SM_ERR_INIT;

    now_iso(now);
    if (!cat)
        pthread_mutex_lock(&J->catmu);
    if (!cat)
        cat = J->cat;
    if (cat) {
        if (!strcmp(j->kind, "backup") && j->backup_id) {
            backup_rec *b = NULL;
            if (catalog_backup_get(cat, j->backup_id, &b, &e) == 0 &&
                !strcmp(b->status, "CREATING")) {
                /* the operation never took it over (a claim conflict, a stop
                 * before it started) */
                free(b->status);
                b->status = sm_xstrdup(rc == 0 ? "FAILED" : status);
                free(b->error);
                b->error = sm_xstrdup(rc == 0 ? "the backup ended without a result" : err->msg);
                snprintf(b->finished_at, sizeof(b->finished_at), "%s", now);
                if (catalog_backup_update(cat, b, &e) < 0)
                    sm_log(SM_LOG_ERROR, "job %s: cannot mark backup %s %s: %s", j->id,
                           j->backup_id, b->status, e.msg);
            }
            backup_rec_free(b);
        }
        if (catalog_job_finish(cat, j->id, status, rc == 0 ? NULL : err->msg, &e) < 0)
            sm_log(SM_LOG_ERROR, "job %s: cannot record its end: %s", j->id, e.msg);
        if (catalog_job_get(cat, j->id, &row, &e) < 0 && e.code == SM_E_NOTFOUND) {
            /* a failed import took its row with its project */
            job_rec r;
            memset(&r, 0, sizeof(r));
            r.id = j->id;
            r.kind = (char *)j->kind;
            r.status = (char *)status;
            r.error = rc == 0 ? NULL : (char *)err->msg;
            r.progress = rc == 0 ? 100 : 0;
            snprintf(r.created_at, sizeof(r.created_at), "%s", j->created_at);
            snprintf(r.finished_at, sizeof(r.finished_at), "%s", now);
            if (catalog_job_insert(cat, &r, &e) < 0)
                sm_log(SM_LOG_ERROR, "job %s: cannot record its end: %s", j->id, e.msg);
        }
        job_rec_free(row);
    }
    if (cat == J->cat)
        pthread_mutex_unlock(&J->catmu);
    if (!strcmp(j->kind, "import") && arg_str(j->args, "file"))
        unlink(arg_str(j->args, "file"));

    pthread_mutex_lock(&J->mu);
    j->active = 0;
    j->finished = 1;
    J->completed += rc == 0;
    J->interrupted += rc < 0 && err->code == SM_E_INTERRUPTED;
    J->failed += rc < 0 && err->code != SM_E_INTERRUPTED;
    if (rc < 0 && err->code != SM_E_INTERRUPTED && k >= 0)
        J->failures[k]++;
    pthread_mutex_unlock(&J->mu);

    pthread_mutex_lock(&j->mu);
    snprintf(j->status, sizeof(j->status), "%s", status);
    snprintf(j->finished_at, sizeof(j->finished_at), "%s", now);
    if (rc == 0) {
        j->progress = 100;
        free(j->phase);
        j->phase = sm_xstrdup("completed");
        j->eta_s = 0;
    } else {
        sm_err_copy(&j->err, err);
    }
    json_decref(j->result);
    j->result = result;
    notify_locked(j, "status");
    notify_locked(j, "done");
    for (listener *l = j->listeners; l; l = l->next)
        l->dead = 1;
    sweep_locked(j);
    pthread_mutex_unlock(&j->mu);
    if (rc == 0)
        sm_log(SM_LOG_INFO, "job %s: %s of %s completed", j->id, j->kind,
               j->project_id ? j->project_id : "?");
    else
        sm_log(SM_LOG_WARN, "job %s: %s of %s %s: %s", j->id, j->kind,
               j->project_id ? j->project_id : "?", status, err->msg);
    if (J->on_done) {
        json_t *st = jobs_get(J, j->id);
        if (st) {
            json_object_set(st, "args", j->args);
            J->on_done(J->on_done_ud, st);
        }
        json_decref(st);
    }
}

static void run_job(jobs *J, catalog **cat, job *j)
{
    sm_err err = SM_ERR_INIT;
    json_t *result = NULL;
    ops_ctx o;
    run_ctx rc;
    int r = -1;

    pthread_mutex_lock(&j->mu);
    snprintf(j->status, sizeof(j->status), "RUNNING");
    now_iso(j->started_at);
    free(j->phase);
    j->phase = sm_xstrdup("starting");
    notify_locked(j, "status");
    pthread_mutex_unlock(&j->mu);
    sm_log(SM_LOG_INFO, "job %s: %s of %s started", j->id, j->kind,
           j->project_id ? j->project_id : "?");

    if (!*cat && catalog_open(cat, J->home, &err) < 0)
        goto out;
    if (is_cancelled(j)) {
        sm_err_set(&err, SM_E_INTERRUPTED, "the job was stopped before it started");
        goto out;
    }
    /* RUNNING in the catalog now (an import claims its project later, once
     * the project exists) */
    if (catalog_job_start(*cat, j->id, j->claim_project, &err) < 0)
        goto out;
    memset(&rc, 0, sizeof(rc));
    rc.J = J;
    rc.j = j;
    rc.cat = *cat;
    ops_ctx_init(&o, *cat, J->secret);
    if (J->safety_days > 0)
        o.safety_days = J->safety_days;
    o.min_free = J->min_free;
    o.event = on_event;
    o.event_ud = &rc;
    o.cancel = &j->cancel;
    o.claimed_job_id = j->id;
    o.progress_by_event = 1;
    r = run_op(&o, j, &result, &err);
    if (r < 0 && err.code == SM_OK)
        sm_err_set(&err, SM_E_INTERNAL, "the %s failed without a reason", j->kind);
out:
    finish_job(J, *cat, j, r, &err, result);
}

static void *worker_main(void *arg)
{
    jobs *J = arg;
    catalog *cat = NULL;

    /* Jobs are throughput work; the API is latency work. A lower priority for
     * this thread (inherited by the backup and restore threads it starts)
     * keeps the API answering quickly while backups use every core. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        sm_log(SM_LOG_DEBUG, "cannot lower the priority of a job worker: %s", strerror(errno));

    for (;;) {
        job *j;
        pthread_mutex_lock(&J->mu);
        while (!J->qhead && !J->stopping)
            pthread_cond_wait(&J->work, &J->mu);
        if (J->stopping) {
            pthread_mutex_unlock(&J->mu);
            break;
        }
        j = J->qhead;
        J->qhead = j->qnext;
        if (!J->qhead)
            J->qtail = NULL;
        j->qnext = NULL;
        j->queued = 0;
        j->refs++;
        J->running++;
        pthread_mutex_unlock(&J->mu);

        run_job(J, &cat, j);

        pthread_mutex_lock(&J->mu);
        J->running--;
        pthread_mutex_unlock(&J->mu);
        job_unref(J, j);
    }
    catalog_close(cat);
    return NULL;
}

/* ---- start-up: what a previous service left ---- */

static int in_list(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i,
                       v) if (s && json_is_string(v) && !strcmp(json_string_value(v), s)) return 1;
    return 0;
}

/* Removes the siblings <path>.smr-* of path (staging copies of a restore). */
static void clean_siblings(const char *project_id, const char *path)
{
    char *copy, *slash, *dir, *prefix;
    const char *base;
    DIR *d;
    struct dirent *de;
    size_t n;

    if (!path || path[0] != '/')
        return;
    copy = sm_xstrdup(path);
    n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    slash = strrchr(copy, '/');
    base = slash + 1;
    dir = slash == copy ? sm_xstrdup("/") : sm_xstrndup(copy, (size_t)(slash - copy));
    prefix = sm_xasprintf("%s.smr-", base);
    d = *base ? opendir(dir) : NULL;
    while (d && (de = readdir(d)) != NULL) {
        char *full;
        sm_err e = SM_ERR_INIT;
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        full = sm_path_join(dir, de->d_name);
        if (sm_rm_rf(full, &e) == 0)
            sm_log(SM_LOG_INFO, "%s: removed the staging leftover '%s'", project_id, full);
        else
            sm_log(SM_LOG_WARN, "%s: cannot remove the staging leftover '%s': %s", project_id, full,
                   e.msg);
        free(full);
    }
    if (d)
        closedir(d);
    free(prefix);
    free(dir);
    free(copy);
}

/* Drops the staging (<db>_smr_*) and scratch (<db>_smverify_*) databases of
 * a project's server. An unreachable server is a warning. */
static void clean_databases(const project *p)
{
    PQconninfoOption *opts = PQconninfoParse(p->db_url, NULL);
    const char *db = NULL, *user = NULL;
    const char *kw[3] = {"dbname", "connect_timeout", NULL};
    const char *val[3] = {NULL, "5", NULL};
    char *maint = NULL, *smr = NULL, *ver = NULL;
    PGconn *c = NULL;
    PGresult *r = NULL;

    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!strcmp(o->keyword, "dbname"))
            db = o->val;
        else if (!strcmp(o->keyword, "user"))
            user = o->val;
    }
    if (!db)
        db = user;
    if (!db || !*db)
        goto out;
    maint = pg_url_with_db(p->db_url, strcmp(db, "postgres") ? "postgres" : "template1");
    val[0] = maint;
    c = PQconnectdbParams(kw, val, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        sm_log(SM_LOG_WARN,
               "%s: cannot look for staging databases left by an interrupted "
               "restore: %s",
               p->id, c ? PQerrorMessage(c) : "out of memory");
        goto out;
    }
    smr = sm_xasprintf("%s_smr_", db);
    ver = sm_xasprintf("%s_smverify_", db);
    {
        const char *params[2] = {smr, ver};
        r = PQexecParams(c,
                         "SELECT datname FROM pg_catalog.pg_database WHERE "
                         "starts_with(datname, $1) OR starts_with(datname, $2) ORDER BY 1",
                         2, NULL, params, NULL, NULL, 0);
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sm_log(SM_LOG_WARN, "%s: cannot list databases: %s", p->id, PQerrorMessage(c));
        goto out;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        pg_server none;
        sm_err e = SM_ERR_INIT;
        const char *name = PQgetvalue(r, i, 0);
        memset(&none, 0, sizeof(none));
        if (pg_drop_database(&none, p->db_url, name, &e) == 0)
            sm_log(SM_LOG_INFO, "%s: dropped the staging database '%s'", p->id, name);
        else
            sm_log(SM_LOG_WARN, "%s: cannot drop the staging database '%s': %s", p->id, name,
                   e.msg);
    }
out:
    PQclear(r);
    PQfinish(c);
    PQconninfoFree(opts);
    free(maint);
    free(smr);
    free(ver);
}

static void clean_leftovers(jobs *J, const json_t *busy)
{
    char *tmp = sm_path_join(J->home, "tmp");
    project **v = NULL;
    size_t n = 0;
    sm_err e = SM_ERR_INIT;

    if (json_array_size(busy) == 0) {
        DIR *d = opendir(tmp);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            char *full;
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            full = sm_path_join(tmp, de->d_name);
            if (sm_rm_rf(full, &e) < 0)
                sm_log(SM_LOG_WARN, "cannot remove the temporary leftover '%s': %s", full, e.msg);
            else
                sm_log(SM_LOG_INFO, "removed the temporary leftover '%s'", full);
            free(full);
        }
        if (d)
            closedir(d);
    } else {
        sm_log(SM_LOG_INFO, "'%s' is left alone: a supamanager command is running", tmp);
    }
    free(tmp);

    if (catalog_project_list(J->cat, &v, &n, &e) < 0) {
        sm_log(SM_LOG_WARN, "cannot list projects to clean up after interrupted restores: %s",
               e.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const project *p = v[i];
        size_t k;
        json_t *f;
        if (in_list(busy, p->id))
            continue;
        clean_siblings(p->id, p->storage_dir);
        clean_siblings(p->id, p->config_dir);
        clean_siblings(p->id, p->pgsodium_key);
        json_array_foreach(p->config_files, k, f) clean_siblings(p->id, json_string_value(f));
        clean_databases(p);
    }
    project_list_free(v, n);
}

/* ---- public ---- */

int jobs_start(jobs **out, const jobs_config *cfg, sm_err *err)
{
    jobs *J = sm_xcalloc(1, sizeof(*J));
    json_t *busy = NULL;
    unsigned reaped = 0, orphans = 0;

    *out = NULL;
    J->home = sm_xstrdup(cfg->home);
    J->secret = sm_xstrdup(cfg->secret ? cfg->secret : "");
    J->max_running = cfg->max_running ? cfg->max_running : 2;
    J->safety_days = cfg->safety_days;
    J->min_free = cfg->min_free ? sm_xstrdup(cfg->min_free) : NULL;
    J->on_done = cfg->on_done;
    J->on_done_ud = cfg->on_done_ud;
    pthread_mutex_init(&J->mu, NULL);
    pthread_mutex_init(&J->catmu, NULL);
    pthread_cond_init(&J->work, NULL);
    pthread_cond_init(&J->idle, NULL);
    J->next_handle = 1;

    if (catalog_open(&J->cat, J->home, err) < 0 || catalog_reap_dead(J->cat, &reaped, err) < 0 ||
        catalog_interrupt_orphans(J->cat, REASON_STOPPED, &orphans, &busy, err) < 0)
        goto fail;
    if (reaped + orphans > 0)
        sm_log(SM_LOG_WARN,
               "%u job(s) and backup(s) left unfinished by a previous run were "
               "marked INTERRUPTED",
               reaped + orphans);
    clean_leftovers(J, busy);
    json_decref(busy);
    busy = NULL;

    J->workers = sm_xcalloc(J->max_running, sizeof(*J->workers));
    for (unsigned i = 0; i < J->max_running; i++) {
        if (pthread_create(&J->workers[i], NULL, worker_main, J) != 0) {
            sm_err_sys(err, SM_E_INTERNAL, "cannot start a worker thread");
            jobs_stop(J);
            return -1;
        }
        J->nworkers++;
    }
    *out = J;
    return 0;
fail:
    json_decref(busy);
    jobs_stop(J);
    return -1;
}

/* Checks and completes a job from its spec before it is queued (catalog
 * reads only; J->catmu held). */
static int prepare_job(jobs *J, const job_spec *sp, job *j, sm_err *err)
{
    const json_t *a = sp->args;
    int k = kind_index(sp->kind);
    project *p = NULL;
    backup_rec *b = NULL;
    int rc = -1;

    if (k < 0) {
        sm_err_set(err, SM_E_INVALID, "unknown job kind '%s'", sp->kind ? sp->kind : "");
        return sm_err_hint(err, "Use backup, restore, verify, export, import, delete, "
                                "pitr-restore or pitr-base.");
    }
    j->kind = kinds[k];
    if (a && !json_is_object(a))
        return sm_err_set(err, SM_E_INVALID, "the arguments of a %s job must be an object",
                          j->kind);
    j->args = a ? json_deep_copy(a) : json_object();

    if (!strcmp(j->kind, "backup")) {
        const char *type, *bk = arg_str(a, "kind");
        if (!sp->project_id)
            return sm_err_set(err, SM_E_USAGE, "a backup job needs a project");
        if (ops_type_parse(arg_str(a, "type") ? arg_str(a, "type") : "full", &type, err) < 0)
            return -1;
        if (bk && strcmp(bk, "manual") && strcmp(bk, "scheduled"))
            return sm_err_set(err, SM_E_INVALID,
                              "unknown backup kind '%s': use manual or "
                              "scheduled",
                              bk);
        if (catalog_project_get(J->cat, sp->project_id, &p, err) < 0)
            goto out;
        j->project_id = sm_xstrdup(sp->project_id);
        j->claim_project = sm_xstrdup(sp->project_id);
        rc = 0;
    } else if (!strncmp(j->kind, "pitr-", 5)) {
        json_t *doc = NULL;
        int r;
        if (!sp->project_id)
            return sm_err_set(err, SM_E_USAGE, "a %s job needs a project", j->kind);
        if (catalog_project_get(J->cat, sp->project_id, &p, err) < 0)
            goto out;
        r = catalog_pitr_get(J->cat, sp->project_id, &doc, err);
        json_decref(doc);
        if (r < 0)
            goto out;
        if (r == 1) {
            sm_err_set(err, SM_E_INVALID, "point-in-time recovery is not enabled for project '%s'",
                       sp->project_id);
            goto out;
        }
        if (!strcmp(j->kind, "pitr-restore")) {
            const char *tt = arg_str(a, "target_time"), *tl = arg_str(a, "target_lsn");
            time_t t;
            if (!!tt + !!tl + arg_bool(a, "latest") != 1) {
                sm_err_set(err, SM_E_INVALID, "give one of target_time, target_lsn or latest");
                goto out;
            }
            if (tt && pitr_parse_time(tt, &t) < 0) {
                sm_err_set(err, SM_E_INVALID, "cannot read the target time '%s'", tt);
                sm_err_hint(err, "Use ISO 8601, e.g. 2026-11-25T14:03:07Z (no offset: UTC).");
                goto out;
            }
        }
        j->project_id = sm_xstrdup(sp->project_id);
        j->claim_project = sm_xstrdup(sp->project_id);
        rc = 0;
    } else if (!strcmp(j->kind, "import")) {
        const json_t *pa = json_object_get(a, "project");
        const char *id = arg_str(pa, "id") ? arg_str(pa, "id") : sp->project_id;
        if (!arg_str(a, "file"))
            return sm_err_set(err, SM_E_USAGE, "an import job needs the archive (args.file)");
        if (!json_is_object(pa))
            return sm_err_set(err, SM_E_USAGE,
                              "an import job needs the new project "
                              "(args.project)");
        if (project_id_check(id, err) < 0)
            return -1;
        if (sp->project_id && strcmp(sp->project_id, id) != 0)
            return sm_err_set(err, SM_E_INVALID, "the import names two projects: '%s' and '%s'",
                              sp->project_id, id);
        if (catalog_project_get(J->cat, id, &p, NULL) == 0) {
            sm_err_set(err, SM_E_EXISTS, "project '%s' already exists", id);
            sm_err_hint(err, "Import into a new project id, or restore into the existing "
                             "project.");
            goto out;
        }
        j->project_id = sm_xstrdup(id);
        rc = 0;
    } else {
        /* restore, verify, export, delete: a backup */
        if (!sp->backup_id)
            return sm_err_set(err, SM_E_USAGE, "%s %s job needs a backup id",
                              j->kind[0] == 'e' ? "an" : "a", j->kind);
        if (catalog_backup_get(J->cat, sp->backup_id, &b, err) < 0)
            goto out;
        if (sp->project_id && strcmp(b->project_id, sp->project_id) != 0) {
            sm_err_set(err, SM_E_NOTFOUND, "backup '%s' is not a backup of project '%s'",
                       sp->backup_id, sp->project_id);
            goto out;
        }
        if (strcmp(j->kind, "delete") != 0 && strcmp(b->status, "COMPLETED") != 0) {
            sm_err_set(err, SM_E_INVALID, "backup '%s' is %s; only completed backups can be %s",
                       b->id, b->status,
                       !strcmp(j->kind, "restore")  ? "restored"
                       : !strcmp(j->kind, "verify") ? "verified"
                                                    : "exported");
            goto out;
        }
        j->project_id = sm_xstrdup(b->project_id);
        j->backup_id = sm_xstrdup(b->id);
        j->claim_project = sm_xstrdup(b->project_id);
        if (!strcmp(j->kind, "restore")) {
            const char *to = arg_str(a, "to_project");
            if (to && *to && strcmp(to, b->project_id) != 0) {
                if (catalog_project_get(J->cat, to, &p, err) < 0)
                    goto out;
                j->to_project = sm_xstrdup(to);
                free(j->claim_project);
                j->claim_project = sm_xstrdup(to);
            }
        } else if (!strcmp(j->kind, "export")) {
            archive_compression c;
            const char *comp = arg_str(a, "compression");
            if (!arg_str(a, "path")) {
                sm_err_set(err, SM_E_USAGE, "an export job needs the archive's path (args.path)");
                goto out;
            }
            if (comp && archive_compression_parse(comp, &c) < 0) {
                sm_err_set(err, SM_E_INVALID, "unknown compression '%s'", comp);
                sm_err_hint(err, "Use gzip, zstd or none.");
                goto out;
            }
        }
        rc = 0;
    }
out:
    project_free(p);
    backup_rec_free(b);
    return rc;
}

/* Does j occupy project id? */
static int occupies(const job *j, const char *id)
{
    return id && ((j->project_id && !strcmp(j->project_id, id)) ||
                  (j->to_project && !strcmp(j->to_project, id)));
}

/* Fails with SM_E_CONFLICT when an active job occupies a project of nj.
 * J->mu held. */
static int conflict_check(jobs *J, const job *nj, sm_err *err)
{
    const char *mine[2] = {nj->project_id, nj->to_project};

    for (const job *o = J->head; o; o = o->next) {
        if (!o->active)
            continue;
        for (int i = 0; i < 2; i++) {
            if (!occupies(o, mine[i]))
                continue;
            sm_err_set(err, SM_E_CONFLICT, "project '%s' is busy: %s%s%s is %s (job %s)", mine[i],
                       o->kind, o->backup_id ? " " : "", o->backup_id ? o->backup_id : "",
                       o->queued || !o->visible ? "queued" : "running", o->id);
            return sm_err_hint(err, HINT_BUSY);
        }
    }
    return 0;
}

/* Drops finished jobs past KEEP_FINISHED, oldest first. J->mu held;
 * returns the jobs to free (linked through next). */
static job *prune_locked(jobs *J)
{
    size_t finished = 0;
    job *freed = NULL, *j, *next;

    for (j = J->head; j; j = j->next)
        finished += j->finished;
    for (j = J->head; j && finished > KEEP_FINISHED; j = next) {
        next = j->next;
        if (!j->finished)
            continue;
        finished--;
        list_unlink(J, j);
        if (--j->refs == 0) {
            subs_drop_job(J, j);
            j->next = freed;
            freed = j;
        }
    }
    return freed;
}

int jobs_submit(jobs *J, const job_spec *spec, char **job_id, char **backup_id, sm_err *err)
{
    job *j = job_new(), *freed = NULL;
    char *reserved = NULL;
    int rc = -1, counted = 0;

    *job_id = NULL;
    if (backup_id)
        *backup_id = NULL;
    {
        char *rnd = sm_random_hex(8);
        j->id = sm_xasprintf("job_%s", rnd);
        free(rnd);
    }
    now_iso(j->created_at);

    pthread_mutex_lock(&J->mu);
    if (J->stopping) {
        pthread_mutex_unlock(&J->mu);
        sm_err_set(err, SM_E_INTERRUPTED, MSG_SHUTTING_DOWN);
        goto out;
    }
    J->submitting++;
    counted = 1;
    pthread_mutex_unlock(&J->mu);

    /* 1. check the spec against the catalog */
    pthread_mutex_lock(&J->catmu);
    rc = prepare_job(J, spec, j, err);
    pthread_mutex_unlock(&J->catmu);
    if (rc < 0)
        goto out;
    rc = -1;

    /* 2. take the projects (the job is pending: not visible yet) */
    pthread_mutex_lock(&J->mu);
    if (conflict_check(J, j, err) < 0) {
        pthread_mutex_unlock(&J->mu);
        goto out;
    }
    j->active = 1;
    if (J->tail)
        J->tail->next = j;
    else
        J->head = j;
    J->tail = j;
    pthread_mutex_unlock(&J->mu);

    /* 3. the backup's record and the job's row */
    pthread_mutex_lock(&J->catmu);
    {
        ops_ctx o;
        job_rec r;
        ops_ctx_init(&o, J->cat, J->secret);
        if (!strcmp(j->kind, "backup") &&
            ops_backup_reserve(&o, j->project_id, arg_str(j->args, "type"),
                               arg_str(j->args, "kind"), &reserved, err) < 0) {
            pthread_mutex_unlock(&J->catmu);
            goto unlist;
        }
        memset(&r, 0, sizeof(r));
        r.id = j->id;
        r.project_id = j->claim_project;
        r.kind = (char *)j->kind;
        r.status = "QUEUED";
        r.backup_id = reserved ? reserved : j->backup_id;
        r.phase = "queued";
        snprintf(r.created_at, sizeof(r.created_at), "%s", j->created_at);
        if (catalog_job_insert(J->cat, &r, err) < 0) {
            if (reserved)
                catalog_backup_delete(J->cat, reserved, NULL);
            pthread_mutex_unlock(&J->catmu);
            goto unlist;
        }
    }
    pthread_mutex_unlock(&J->catmu);

    /* 4. visible and queued */
    pthread_mutex_lock(&J->mu);
    if (reserved)
        j->backup_id = sm_xstrdup(reserved);
    j->phase = sm_xstrdup("queued");
    j->visible = 1;
    j->queued = 1;
    if (J->qtail)
        J->qtail->qnext = j;
    else
        J->qhead = j;
    J->qtail = j;
    J->submitted++;
    freed = prune_locked(J);
    pthread_cond_signal(&J->work);
    *job_id = sm_xstrdup(j->id);
    if (backup_id && reserved)
        *backup_id = sm_xstrdup(reserved);
    j = NULL; /* the list's now */
    rc = 0;
    pthread_mutex_unlock(&J->mu);
    sm_log(SM_LOG_INFO, "job %s queued", *job_id);
    goto out;

unlist:
    pthread_mutex_lock(&J->mu);
    list_unlink(J, j);
    pthread_mutex_unlock(&J->mu);
out:
    if (counted) {
        pthread_mutex_lock(&J->mu);
        if (--J->submitting == 0)
            pthread_cond_broadcast(&J->idle);
        pthread_mutex_unlock(&J->mu);
    }
    while (freed) {
        job *n = freed->next;
        job_free(freed);
        freed = n;
    }
    job_free(j);
    free(reserved);
    return rc;
}

int jobs_cancel(jobs *J, const char *job_id, sm_err *err)
{
    job *j = find_ref(J, job_id);
    int dequeued = 0, finished = 0;
    sm_err why = SM_ERR_INIT;

    if (!j)
        return sm_err_set(err, SM_E_NOTFOUND, "unknown job '%s'", job_id ? job_id : "");
    pthread_mutex_lock(&J->mu);
    if (!j->active) {
        finished = 1;
    } else if (j->queued) {
        job **pp = &J->qhead, *prev = NULL;
        while (*pp && *pp != j) {
            prev = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = j->qnext;
            if (J->qtail == j)
                J->qtail = prev;
        }
        j->qnext = NULL;
        j->queued = 0;
        dequeued = 1;
    } else {
        set_cancel(j);
    }
    pthread_mutex_unlock(&J->mu);
    if (finished) {
        job_unref(J, j);
        return sm_err_set(err, SM_E_INVALID, "job '%s' has already finished", job_id);
    }
    if (dequeued) {
        sm_err_set(&why, SM_E_INTERRUPTED, REASON_CANCELLED);
        finish_job(J, NULL, j, -1, &why, NULL);
    }
    job_unref(J, j);
    return 0;
}

void jobs_stop(jobs *J)
{
    job *q, *j, *next;
    sub *s, *sn;

    if (!J)
        return;
    pthread_mutex_lock(&J->mu);
    J->stopping = 1;
    while (J->submitting > 0)
        pthread_cond_wait(&J->idle, &J->mu);
    q = J->qhead;
    J->qhead = J->qtail = NULL;
    for (j = J->head; j; j = j->next)
        if (j->active)
            set_cancel(j);
    for (j = q; j; j = j->qnext) {
        j->queued = 0;
        j->refs++;
    }
    pthread_cond_broadcast(&J->work);
    pthread_mutex_unlock(&J->mu);

    for (j = q; j; j = next) {
        sm_err why = SM_ERR_INIT;
        next = j->qnext;
        j->qnext = NULL;
        sm_err_set(&why, SM_E_INTERRUPTED, REASON_NOT_STARTED);
        finish_job(J, NULL, j, -1, &why, NULL);
        job_unref(J, j);
    }
    for (unsigned i = 0; i < J->nworkers; i++)
        pthread_join(J->workers[i], NULL);
    if (J->nworkers)
        sm_log(SM_LOG_INFO, "jobs stopped");

    for (j = J->head; j; j = next) {
        next = j->next;
        job_free(j);
    }
    for (s = J->subs; s; s = sn) {
        sn = s->next;
        free(s);
    }
    catalog_close(J->cat);
    pthread_mutex_destroy(&J->mu);
    pthread_mutex_destroy(&J->catmu);
    pthread_cond_destroy(&J->work);
    pthread_cond_destroy(&J->idle);
    free(J->workers);
    if (J->secret)
        sm_wipe(J->secret, strlen(J->secret));
    free(J->secret);
    free(J->min_free);
    free(J->home);
    free(J);
}

/* A job of the catalog as a state (no bytes, rate or result). */
static json_t *state_from_row(const job_rec *r)
{
    json_t *st = json_object();

    json_object_set_new(st, "id", json_string(r->id));
    json_object_set_new(st, "kind", json_string(r->kind));
    json_object_set_new(st, "project_id", str_or_null(r->project_id));
    json_object_set_new(st, "to_project", json_null());
    json_object_set_new(st, "backup_id", str_or_null(r->backup_id));
    json_object_set_new(st, "status", json_string(r->status));
    json_object_set_new(st, "phase", str_or_null(r->phase));
    json_object_set_new(st, "progress", json_real(r->progress < 0 ? 0 : r->progress));
    json_object_set_new(st, "bytes_done", json_integer(0));
    json_object_set_new(st, "bytes_total", json_integer(0));
    json_object_set_new(st, "rate", json_real(0));
    json_object_set_new(st, "eta_s", json_null());
    json_object_set_new(st, "error", str_or_null(r->error));
    json_object_set_new(st, "error_code", json_null());
    json_object_set_new(st, "hint", json_null());
    json_object_set_new(st, "result", json_null());
    json_object_set_new(st, "created_at", json_string(r->created_at));
    json_object_set_new(st, "started_at", str_or_null(r->started_at));
    json_object_set_new(st, "finished_at", str_or_null(r->finished_at));
    return st;
}

static json_t *catalog_state(jobs *J, const char *job_id)
{
    job_rec *r = NULL;
    json_t *st = NULL;

    pthread_mutex_lock(&J->catmu);
    if (catalog_job_get(J->cat, job_id, &r, NULL) == 0)
        st = state_from_row(r);
    pthread_mutex_unlock(&J->catmu);
    job_rec_free(r);
    return st;
}

json_t *jobs_get(jobs *J, const char *job_id)
{
    job *j = find_ref(J, job_id);
    json_t *st;

    if (!j)
        return job_id ? catalog_state(J, job_id) : NULL;
    pthread_mutex_lock(&j->mu);
    st = state_locked(j);
    pthread_mutex_unlock(&j->mu);
    job_unref(J, j);
    return st;
}

char *jobs_for_backup(jobs *J, const char *backup_id)
{
    char *id = NULL;

    if (!backup_id)
        return NULL;
    pthread_mutex_lock(&J->mu);
    for (job *j = J->head; j; j = j->next)
        if (j->visible && j->backup_id && !strcmp(j->backup_id, backup_id)) {
            free(id);
            id = sm_xstrdup(j->id); /* the list is oldest first: keep the last */
        }
    pthread_mutex_unlock(&J->mu);
    return id;
}

json_t *jobs_active(jobs *J)
{
    json_t *arr = json_array();
    job **v = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&J->mu);
    for (job *j = J->head; j; j = j->next)
        if (j->visible && j->active) {
            SM_GROW(v, cap, n + 1);
            j->refs++;
            v[n++] = j;
        }
    pthread_mutex_unlock(&J->mu);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&v[i]->mu);
        json_array_append_new(arr, state_locked(v[i]));
        pthread_mutex_unlock(&v[i]->mu);
        job_unref(J, v[i]);
    }
    free(v);
    return arr;
}

unsigned long jobs_subscribe(jobs *J, const char *job_id, jobs_listener fn, void *ud)
{
    job *j = find_ref(J, job_id);
    unsigned long h;

    if (!j) {
        /* finished long ago, or by an earlier run: one "done" */
        json_t *st = job_id ? catalog_state(J, job_id) : NULL;
        const char *status = json_string_value(json_object_get(st, "status"));
        if (!st || !strcmp(status, "QUEUED") || !strcmp(status, "RUNNING")) {
            json_decref(st);
            return 0;
        }
        fn(ud, "done", st);
        json_decref(st);
        pthread_mutex_lock(&J->mu);
        h = J->next_handle++;
        pthread_mutex_unlock(&J->mu);
        return h;
    }
    pthread_mutex_lock(&J->mu);
    h = J->next_handle++;
    pthread_mutex_unlock(&J->mu);

    pthread_mutex_lock(&j->mu);
    if (j->finished_at[0]) {
        json_t *st = state_locked(j);
        fn(ud, "done", st);
        json_decref(st);
    } else {
        listener *l = sm_xcalloc(1, sizeof(*l)), **pp = &j->listeners;
        sub *s = sm_xcalloc(1, sizeof(*s));
        l->handle = h;
        l->fn = fn;
        l->ud = ud;
        while (*pp)
            pp = &(*pp)->next;
        *pp = l;
        s->handle = h;
        s->j = j;
        pthread_mutex_lock(&J->mu);
        s->next = J->subs;
        J->subs = s;
        pthread_mutex_unlock(&J->mu);
    }
    pthread_mutex_unlock(&j->mu);
    job_unref(J, j);
    return h;
}

void jobs_unsubscribe(jobs *J, unsigned long handle)
{
    sub **pp, *s = NULL;
    job *j = NULL;

    pthread_mutex_lock(&J->mu);
    for (pp = &J->subs; *pp; pp = &(*pp)->next)
        if ((*pp)->handle == handle) {
            s = *pp;
            *pp = s->next;
            j = s->j;
            j->refs++;
            break;
        }
    pthread_mutex_unlock(&J->mu);
    free(s);
    if (!j)
        return;
    /* taking the job's lock waits for a notification in progress on another
     * thread: after this no call of the listener runs */
    pthread_mutex_lock(&j->mu);
    for (listener *l = j->listeners; l; l = l->next)
        if (l->handle == handle)
            l->dead = 1;
    sweep_locked(j);
    pthread_mutex_unlock(&j->mu);
    job_unref(J, j);
}

json_t *jobs_metrics(jobs *J)
{
    json_t *m, *fk = json_object();
    unsigned long queued = 0;

    pthread_mutex_lock(&J->mu);
    for (job *j = J->qhead; j; j = j->qnext)
        queued++;
    for (size_t i = 0; i < NKINDS; i++)
        json_object_set_new(fk, kinds[i], json_integer((json_int_t)J->failures[i]));
    m = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "queued", (json_int_t)queued, "running",
                  (json_int_t)J->running, "submitted", (json_int_t)J->submitted, "completed",
                  (json_int_t)J->completed, "failed", (json_int_t)J->failed, "interrupted",
                  (json_int_t)J->interrupted, "max_running", (json_int_t)J->max_running,
                  "failures_by_kind", fk);
    json_object_set_new(m, "by_status",
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "queued", (json_int_t)queued, "running",
                                  (json_int_t)J->running, "completed", (json_int_t)J->completed,
                                  "failed", (json_int_t)J->failed, "interrupted",
                                  (json_int_t)J->interrupted));
    pthread_mutex_unlock(&J->mu);
    return m;
}
