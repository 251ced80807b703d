#include "service/scheduler.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "job/pitr.h"
#include "service/schedule.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESTORE_TEST_EVERY (7 * 86400)
#define LATE_TOLERANCE 120 /* seconds after its due time a run still counts as on time */

typedef struct done_ev {
    json_t *state;
    struct done_ev *next;
} done_ev;

struct scheduler {
    char *home;
    notifier *N;
    const notify_config *ncfg;
    double tick_s;
    jobs *J;
    char *secret; /* for WAL pushes (NULL: none) */
    json_t *base_tries; /* project -> when a scheduled base backup was last submitted */

    pthread_t th;
    int running;  /* the thread exists */
    int stopping; /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    done_ev *inbox, *inbox_tail;

    /* the thread's alone (read by scheduler_status under mu) */
    catalog *cat;
    time_t seen;
    unsigned long ticks, started, skipped, catch_up, failed_to_start;
    time_t last_digest;
};

/* ---- small helpers ---- */

static void iso(char out[32], time_t t)
{
    sm_time_iso(out, 32, t);
}

static time_t iso_time(const json_t *v)
{
    time_t t = 0;
    if (json_is_string(v) && sm_time_parse_iso(json_string_value(v), &t) == 0)
        return t;
    return 0;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void human_age(char *out, size_t cap, time_t secs)
{
    if (secs < 0)
        secs = 0;
    if (secs < 3600)
        snprintf(out, cap, "%ld min", (long)(secs / 60));
    else if (secs < 2 * 86400)
        snprintf(out, cap, "%.1f h", (double)secs / 3600);
    else
        snprintf(out, cap, "%.1f days", (double)secs / 86400);
}

static int stopping(scheduler *Sc)
{
    int v;
    pthread_mutex_lock(&Sc->mu);
    v = Sc->stopping;
    pthread_mutex_unlock(&Sc->mu);
    return v;
}

/* The first slot whose due time (slot + jitter) is after t. */
static time_t first_slot_due_after(const json_t *doc, time_t jit, time_t t)
{
    return schedule_next(doc, t - jit);
}

/* ---- project status: RPO, RTO, overdue ---- */

/* The reference point of the promise: the newest restorable backup, or when
 * the schedule was switched on (whichever is later). */
static json_t *status_of(catalog *c, const char *pid, const json_t *doc, const json_t *state,
                         const char *updated_at, time_t now)
{
    backup_rec *b = NULL;
    char buf[32];
    time_t last = 0, since, ref, jit, next = 0, expected, grace;
    json_t *o = json_object(), *rto = json_object_get(state, "rto_s");
    int enabled = json_is_true(json_object_get(doc, "enabled"));

    if (catalog_backup_latest(c, pid, "COMPLETED", &b, NULL) == 0 && b)
        sm_time_parse_iso(b->created_at, &last);
    json_object_set_new(o, "enabled", json_boolean(enabled));
    if (last) {
        iso(buf, last);
        json_object_set_new(o, "last_success_at", json_string(buf));
        json_object_set_new(o, "last_success_id", json_string(b->id));
        json_object_set_new(o, "rpo_s", json_integer((json_int_t)(now - last)));
    } else {
        json_object_set_new(o, "last_success_at", json_null());
        json_object_set_new(o, "last_success_id", json_null());
        json_object_set_new(o, "rpo_s", json_null());
    }
    json_object_set_new(o, "rto_s", json_is_number(rto) ? json_real(json_number_value(rto))
                                                        : json_null());
    json_object_set_new(o, "last_restore_test_at",
                        json_object_get(state, "last_restore_test_at")
                            ? json_incref(json_object_get(state, "last_restore_test_at"))
                            : json_null());
    json_object_set_new(o, "overdue", json_false());
    json_object_set_new(o, "overdue_since", json_null());
    json_object_set_new(o, "next_run_at", json_null());
    if (!enabled)
        goto out;
    jit = schedule_jitter(doc, pid);
    {
        time_t anchor = iso_time(json_object_get(state, "anchor")), upd = 0, h;
        if (updated_at)
            sm_time_parse_iso(updated_at, &upd);
        h = anchor ? anchor + jit : 0;
        if (upd > h)
            h = upd;
        next = first_slot_due_after(doc, jit, h);
        if (next) {
            iso(buf, next + jit);
            json_object_set_new(o, "next_run_at", json_string(buf));
        }
    }
    since = iso_time(json_object_get(state, "enabled_since"));
    if (!since && updated_at)
        sm_time_parse_iso(updated_at, &since);
    ref = last > since ? last : since;
    grace = schedule_grace(doc);
    expected = first_slot_due_after(doc, jit, ref);
    if (expected && now > expected + jit + grace) {
        json_object_set_new(o, "overdue", json_true());
        iso(buf, expected + jit + grace);
        json_object_set_new(o, "overdue_since", json_string(buf));
    }
out:
    backup_rec_free(b);
    return o;
}

json_t *scheduler_project_status(catalog *c, const char *project_id, time_t now)
{
    json_t *doc = NULL, *last = NULL, *state = NULL, *o;
    int r = catalog_schedule_get(c, project_id, &doc, &last, NULL);

    if (r != 0) {
        json_decref(doc);
        doc = schedule_default();
    }
    if (catalog_schedule_state_get(c, project_id, &state, NULL) < 0 || !state)
        state = json_object();
    o = status_of(c, project_id, doc, state,
                  r == 0 ? json_string_value(json_object_get(last, "updated_at")) : NULL, now);
    json_decref(doc);
    json_decref(last);
    json_decref(state);
    return o;
}

/* ---- notifications ---- */

static void add_emails(const char ***v, size_t *n, const json_t *arr)
{
    size_t i;
    json_t *a;

    json_array_foreach(arr, i, a)
    {
        if (!json_is_string(a))
            continue;
        *v = sm_xrealloc(*v, (*n + 1) * sizeof(**v));
        (*v)[(*n)++] = json_string_value(a);
    }
}

/* Sends an event to the global recipients and the project's (doc.notify).
 * success: only when on_success is set globally or for the project. */
static void send_event(scheduler *Sc, const char *event, const char *pid, const json_t *doc,
                       int success, const char *subject, const char *text, const json_t *payload)
{
    const json_t *pn = json_object_get(doc, "notify");
    const char **to = NULL;
    size_t nto = 0;
    notify_msg m;

    if (!Sc->N)
        return;
    if (success && !(Sc->ncfg && Sc->ncfg->on_success) &&
        !json_is_true(json_object_get(pn, "on_success")))
        return;
    if (Sc->ncfg)
        for (size_t i = 0; i < Sc->ncfg->n_email; i++) {
            to = sm_xrealloc(to, (nto + 1) * sizeof(*to));
            to[nto++] = Sc->ncfg->email_to[i];
        }
    add_emails(&to, &nto, json_object_get(pn, "email"));
    memset(&m, 0, sizeof(m));
    m.event = event;
    m.project_id = pid;
    m.subject = subject;
    m.text = text;
    m.payload = payload;
    m.email_to = to;
    m.n_email = nto;
    if (Sc->ncfg && Sc->ncfg->webhook_url) {
        m.webhook_url = Sc->ncfg->webhook_url;
        m.webhook_secret = Sc->ncfg->webhook_secret;
    }
    if (m.n_email || m.webhook_url)
        notifier_send(Sc->N, &m);
    if (jstr(pn, "webhook")) {
        memset(&m, 0, sizeof(m));
        m.event = event;
        m.project_id = pid;
        m.subject = subject;
        m.text = text;
        m.payload = payload;
        m.webhook_url = jstr(pn, "webhook");
        m.webhook_secret = jstr(pn, "webhook_secret");
        notifier_send(Sc->N, &m);
    }
    free(to);
}

static json_t *schedule_doc(scheduler *Sc, const char *pid)
{
    json_t *doc = NULL;
    if (catalog_schedule_get(Sc->cat, pid, &doc, NULL, NULL) != 0) {
        json_decref(doc);
        doc = schedule_default();
    }
    return doc;
}

static char *project_label(scheduler *Sc, const char *pid)
{
    project *p = NULL;
    char *s;

    if (pid && catalog_project_get(Sc->cat, pid, &p, NULL) == 0 && p->name && *p->name)
        s = sm_xasprintf("%s (%s)", p->name, pid);
    else
        s = sm_xstrdup(pid ? pid : "?");
    project_free(p);
    return s;
}

/* ---- the end of a job ---- */

static int restore_test_due(const json_t *doc, const json_t *state, time_t now)
{
    const char *rt = jstr(doc, "restore_test");
    time_t last = iso_time(json_object_get(state, "last_restore_test_at"));

    if (!rt || strcmp(rt, "weekly"))
        return 0;
    /* an hour of slack: a weekly test follows the weekly slot, not drifts */
    return !last || now - last >= RESTORE_TEST_EVERY - 3600;
}

static void backup_ended(scheduler *Sc, const json_t *st)
{
    const char *pid = jstr(st, "project_id"), *bid = jstr(st, "backup_id");
    const char *status = jstr(st, "status"), *error = jstr(st, "error");
    const json_t *args = json_object_get(st, "args");
    const char *kind = jstr(args, "kind");
    int scheduled = kind && !strcmp(kind, "scheduled");
    int ok = status && !strcmp(status, "COMPLETED");
    json_t *doc, *payload;
    backup_rec *b = NULL;
    char *label, *subject, *text, when[32];
    sm_err err = SM_ERR_INIT;

    if (!pid || !bid)
        return;
    doc = schedule_doc(Sc, pid);
    if (scheduled) {
        catalog_schedule_run_finish(Sc->cat, bid, ok ? "COMPLETED" : status, ok ? NULL : error,
                                    NULL);
        iso(when, sm_now());
        catalog_schedule_ran(Sc->cat, pid, when, bid, status, NULL);
    }
    catalog_backup_get(Sc->cat, bid, &b, NULL);
    label = project_label(Sc, pid);
    payload = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:o,s:o,s:o,s:o,s:o}", "project_id", pid,
                        "backup_id", bid, "status", status ? status : "?", "error",
                        error ? json_string(error) : json_null(), "type",
                        b ? b->type : (jstr(args, "type") ? jstr(args, "type") : "FULL"), "kind",
                        kind ? kind : "manual", "scheduled_for",
                        json_object_get(args, "scheduled_for")
                            ? json_incref(json_object_get(args, "scheduled_for"))
                            : json_null(),
                        "size", b ? json_integer((json_int_t)b->size) : json_null(), "duration_s",
                        b ? json_real(b->duration_s) : json_null(), "retention",
                        json_object_get(json_object_get(st, "result"), "retention")
                            ? json_incref(json_object_get(json_object_get(st, "result"),
                                                          "retention"))
                            : json_null(),
                        "finished_at",
                        jstr(st, "finished_at") ? json_string(jstr(st, "finished_at"))
                                                : json_null());
    if (ok) {
        char size[32] = "?", freed[32] = "0 B";
        json_t *ret = json_object_get(json_object_get(st, "result"), "retention");
        if (b)
            sm_human_bytes(size, sizeof(size), b->size);
        sm_human_bytes(freed, sizeof(freed),
                       (uint64_t)json_integer_value(json_object_get(ret, "bytes_freed")));
        subject = sm_xasprintf("[SupaManager] Backup completed: %s", label);
        text = sm_xasprintf("The %s backup %s of %s completed.\n\nSize: %s\nDuration: %.1f s\n"
                            "Retention: %zu old scheduled backups deleted, %s freed\n",
                            kind ? kind : "manual", bid, label, size, b ? b->duration_s : 0.0,
                            json_array_size(json_object_get(ret, "deleted")), freed);
        send_event(Sc, "backup.completed", pid, doc, 1, subject, text, payload);
    } else if (!stopping(Sc)) {
        backup_rec *good = NULL;
        char age[32] = "", lastline[256];
        time_t t = 0;
        if (catalog_backup_latest(Sc->cat, pid, "COMPLETED", &good, NULL) == 0 && good &&
            sm_time_parse_iso(good->created_at, &t) == 0) {
            human_age(age, sizeof(age), sm_now() - t);
            snprintf(lastline, sizeof(lastline), "The newest good backup is %s, taken %s (%s ago).",
                     good->id, good->created_at, age);
        } else {
            snprintf(lastline, sizeof(lastline), "This project has no good backup yet.");
        }
        subject = sm_xasprintf("[SupaManager] Backup FAILED: %s", label);
        text = sm_xasprintf("The %s backup %s of %s failed.\n\nReason: %s\n%s%s%s\n%s\n\n"
                            "Nothing was deleted: a failed backup never triggers retention.\n",
                            kind ? kind : "manual", bid, label, error ? error : "(none given)",
                            jstr(st, "hint") ? "What to do: " : "",
                            jstr(st, "hint") ? jstr(st, "hint") : "", jstr(st, "hint") ? "\n" : "",
                            lastline);
        send_event(Sc, "backup.failed", pid, doc, 0, subject, text, payload);
        backup_rec_free(good);
    } else {
        subject = text = NULL;
    }
    free(subject);
    free(text);
    /* the follow-up verification of a scheduled backup */
    if (ok && scheduled && json_is_true(json_object_get(doc, "verify")) && !stopping(Sc)) {
        json_t *state = NULL, *vargs;
        job_spec sp;
        char *job = NULL;
        int rt;
        catalog_schedule_state_get(Sc->cat, pid, &state, NULL);
        rt = restore_test_due(doc, state, sm_now());
        vargs = json_pack("{s:b,s:b}", "restore_test", rt, "scheduled", 1);
        memset(&sp, 0, sizeof(sp));
        sp.kind = "verify";
        sp.project_id = pid;
        sp.backup_id = bid;
        sp.args = vargs;
        if (jobs_submit(Sc->J, &sp, &job, NULL, &err) < 0)
            sm_log(SM_LOG_WARN, "%s: cannot verify backup %s after its run: %s", pid, bid,
                   err.msg);
        else
            sm_log(SM_LOG_INFO, "%s: verifying backup %s%s (job %s)", pid, bid,
                   rt ? " with a restore test" : "", job);
        free(job);
        json_decref(vargs);
        json_decref(state);
    }
    free(label);
    json_decref(payload);
    json_decref(doc);
    backup_rec_free(b);
}

static void verify_ended(scheduler *Sc, const json_t *st)
{
    const char *pid = jstr(st, "project_id"), *bid = jstr(st, "backup_id");
    const char *status = jstr(st, "status");
    const json_t *res = json_object_get(st, "result"), *args = json_object_get(st, "args");
    int ok = status && !strcmp(status, "COMPLETED");
    json_t *state = NULL, *doc;
    char when[32];

    if (!pid)
        return;
    if (catalog_schedule_state_get(Sc->cat, pid, &state, NULL) == 0 && state) {
        iso(when, sm_now());
        json_object_set_new(state, "last_verify",
                            json_pack("{s:s,s:s,s:b}", "at", when, "backup_id", bid ? bid : "",
                                      "ok", ok));
        if (json_is_true(json_object_get(args, "restore_test")) &&
            json_is_true(json_object_get(res, "restore_test_ok"))) {
            json_object_set_new(state, "last_restore_test_at", json_string(when));
            json_object_set(state, "rto_s", json_object_get(res, "restore_test_s"));
        }
        catalog_schedule_state_put(Sc->cat, pid, state, NULL);
    }
    if (!ok && !stopping(Sc)) {
        char *label = project_label(Sc, pid);
        char *subject = sm_xasprintf("[SupaManager] Verification FAILED: %s", label);
        char *text = sm_xasprintf("The verification of backup %s of %s failed.\n\nReason: %s\n\n"
                                  "Run `supamanager backup verify %s` for the details, and take "
                                  "a new backup: this one may not restore.\n",
                                  bid ? bid : "?", label,
                                  jstr(st, "error") ? jstr(st, "error") : "(none given)",
                                  bid ? bid : "ID");
        json_t *payload = json_pack("{s:s,s:s?,s:s?,s:O?}", "project_id", pid, "backup_id", bid,
                                    "error", jstr(st, "error"), "report", res);
        doc = schedule_doc(Sc, pid);
        send_event(Sc, "verify.failed", pid, doc, 0, subject, text, payload);
        json_decref(doc);
        json_decref(payload);
        free(label);
        free(subject);
        free(text);
    }
    json_decref(state);
}

static void other_failed(scheduler *Sc, const json_t *st)
{
    const char *pid = jstr(st, "project_id"), *kind = jstr(st, "kind");
    const char *status = jstr(st, "status");
    char *label, *subject, *text, event[64];
    json_t *doc, *payload;

    if (!status || strcmp(status, "FAILED") || stopping(Sc) || !kind)
        return;
    snprintf(event, sizeof(event), "%s.failed", kind);
    label = project_label(Sc, pid);
    subject = sm_xasprintf("[SupaManager] %c%s FAILED: %s", kind[0] - 32, kind + 1, label);
    text = sm_xasprintf("The %s job %s of %s failed.\n\nReason: %s\n", kind, jstr(st, "id"), label,
                        jstr(st, "error") ? jstr(st, "error") : "(none given)");
    payload = json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?}", "project_id", pid, "job_id", jstr(st, "id"),
                        "kind", kind, "backup_id", jstr(st, "backup_id"), "error",
                        jstr(st, "error"));
    doc = schedule_doc(Sc, pid);
    send_event(Sc, event, pid, doc, 0, subject, text, payload);
    json_decref(doc);
    json_decref(payload);
    free(label);
    free(subject);
    free(text);
}

static void job_ended(scheduler *Sc, const json_t *st)
{
    const char *kind = jstr(st, "kind");

    if (!kind)
        return;
    if (!strcmp(kind, "backup"))
        backup_ended(Sc, st);
    else if (!strcmp(kind, "verify"))
        verify_ended(Sc, st);
    else
        other_failed(Sc, st);
}

void scheduler_job_done(void *ud, const json_t *state)
{
    scheduler *Sc = ud;
    done_ev *ev;

    pthread_mutex_lock(&Sc->mu);
    if (!Sc->stopping) {
        ev = sm_xcalloc(1, sizeof(*ev));
        ev->state = json_deep_copy(state);
        if (Sc->inbox_tail)
            Sc->inbox_tail->next = ev;
        else
            Sc->inbox = ev;
        Sc->inbox_tail = ev;
        pthread_cond_signal(&Sc->cv);
    }
    pthread_mutex_unlock(&Sc->mu);
}

/* ---- the schedule of one project, at now ---- */

static void record_run(scheduler *Sc, const char *pid, time_t slot, const char *status,
                       const char *bid, const char *reason)
{
    char s[32];
    iso(s, slot);
    catalog_schedule_run_add(Sc->cat, pid, s, status, bid, reason, NULL);
}

static void run_slot(scheduler *Sc, const char *pid, const json_t *doc, time_t slot,
                     unsigned missed, int late, time_t now)
{
    ops_retention ret;
    json_t *args;
    job_spec sp;
    char slot_iso[32], *job = NULL, *bid = NULL, *reason = NULL, when[32];
    sm_err err = SM_ERR_INIT;

    iso(slot_iso, slot);
    iso(when, now);
    schedule_retention(doc, &ret);
    args = json_pack("{s:s,s:s,s:s,s:{s:i,s:i,s:i,s:i}}", "type", jstr(doc, "type"), "kind",
                     "scheduled", "scheduled_for", slot_iso, "retention", "last", ret.last,
                     "daily", ret.daily, "weekly", ret.weekly, "monthly", ret.monthly);
    if (missed > 0)
        reason = sm_xasprintf("catch-up run: %u earlier run%s missed while the service was not "
                              "running",
                              missed, missed == 1 ? " was" : "s were");
    else if (late)
        reason = sm_xstrdup("catch-up run: the service was not running at the time");
    memset(&sp, 0, sizeof(sp));
    sp.kind = "backup";
    sp.project_id = pid;
    sp.args = args;
    if (jobs_submit(Sc->J, &sp, &job, &bid, &err) == 0) {
        record_run(Sc, pid, slot, "STARTED", bid, reason);
        catalog_schedule_ran(Sc->cat, pid, when, bid, "STARTED", NULL);
        pthread_mutex_lock(&Sc->mu);
        Sc->started++;
        Sc->catch_up += reason != NULL;
        pthread_mutex_unlock(&Sc->mu);
        sm_log(SM_LOG_INFO, "%s: scheduled backup %s for %s started (job %s)%s%s", pid, bid,
               slot_iso, job, reason ? ": " : "", reason ? reason : "");
    } else {
        int busy = err.code == SM_E_CONFLICT;
        char *label = project_label(Sc, pid);
        char *subject = sm_xasprintf("[SupaManager] Scheduled backup %s: %s",
                                     busy ? "skipped" : "FAILED to start", label);
        char *text = sm_xasprintf("The scheduled backup of %s due at %s %s.\n\nReason: %s\n", label,
                                  slot_iso, busy ? "was skipped" : "could not start", err.msg);
        json_t *payload = json_pack("{s:s,s:s,s:s,s:s}", "project_id", pid, "scheduled_for",
                                    slot_iso, "status", busy ? "SKIPPED" : "FAILED", "reason",
                                    err.msg);
        record_run(Sc, pid, slot, busy ? "SKIPPED" : "FAILED", NULL, err.msg);
        catalog_schedule_ran(Sc->cat, pid, when, NULL, busy ? "SKIPPED" : "FAILED", NULL);
        pthread_mutex_lock(&Sc->mu);
        if (busy)
            Sc->skipped++;
        else
            Sc->failed_to_start++;
        pthread_mutex_unlock(&Sc->mu);
        sm_log(SM_LOG_WARN, "%s: scheduled backup for %s %s: %s", pid, slot_iso,
               busy ? "skipped" : "not started", err.msg);
        send_event(Sc, busy ? "schedule.skipped" : "backup.failed", pid, doc, 0, subject, text,
                   payload);
        json_decref(payload);
        free(label);
        free(subject);
        free(text);
    }
    free(reason);
    free(job);
    free(bid);
    json_decref(args);
}

static void overdue_alert(scheduler *Sc, const char *pid, const json_t *doc, const json_t *status)
{
    char *label = project_label(Sc, pid), age[32] = "never";
    const json_t *rpo = json_object_get(status, "rpo_s");
    char *subject, *text;
    json_t *payload;

    if (json_is_integer(rpo))
        human_age(age, sizeof(age), (time_t)json_integer_value(rpo));
    subject = sm_xasprintf("[SupaManager] Backups OVERDUE: %s", label);
    text = sm_xasprintf("%s has no backup as recent as its %s schedule promises.\n\n"
                        "Newest good backup: %s%s%s\nOverdue since: %s\n\n"
                        "Check the service is running and the last runs' errors "
                        "(`supamanager backup list %s`).\n",
                        label, jstr(doc, "frequency"),
                        jstr(status, "last_success_id") ? jstr(status, "last_success_id") : "none",
                        json_is_integer(rpo) ? ", taken " : "",
                        json_is_integer(rpo) ? age : "", jstr(status, "overdue_since"), pid);
    payload = json_pack("{s:s,s:O}", "project_id", pid, "status", status);
    send_event(Sc, "backup.overdue", pid, doc, 0, subject, text, payload);
    json_decref(payload);
    free(label);
    free(subject);
    free(text);
}

static void tick_project(scheduler *Sc, const json_t *entry, time_t now)
{
    const char *pid = jstr(entry, "project_id"), *updated_at = jstr(entry, "updated_at");
    const json_t *doc = json_object_get(entry, "doc");
    json_t *state = json_deep_copy(json_object_get(entry, "state")), *status;
    time_t jit, anchor, upd = 0, h, s1, last, n;
    unsigned missed = 0;
    int dirty = 0;

    if (!pid || !doc)
        goto out;
    if (!json_is_true(json_object_get(doc, "enabled"))) {
        if (json_object_get(state, "enabled_since") || json_object_get(state, "overdue_alerted")) {
            json_object_del(state, "enabled_since");
            json_object_del(state, "overdue_alerted");
            dirty = 1;
        }
        goto save;
    }
    if (updated_at)
        sm_time_parse_iso(updated_at, &upd);
    if (!json_object_get(state, "enabled_since")) {
        json_object_set_new(state, "enabled_since", json_string(updated_at ? updated_at : ""));
        dirty = 1;
    }
    jit = schedule_jitter(doc, pid);
    anchor = iso_time(json_object_get(state, "anchor"));
    h = anchor ? anchor + jit : 0;
    if (upd > h)
        h = upd;
    s1 = first_slot_due_after(doc, jit, h);
    if (s1 && s1 + jit <= now) {
        char a[32];
        last = s1;
        while ((n = schedule_next(doc, last)) != 0 && n + jit <= now) {
            last = n;
            missed++;
        }
        /* late: due before the service started (a look at the clock since
         * then would have run it) */
        run_slot(Sc, pid, doc, last, missed,
                 Sc->ticks == 0 && now - (last + jit) > LATE_TOLERANCE, now);
        iso(a, last);
        json_object_set_new(state, "anchor", json_string(a));
        dirty = 1;
    }
    /* the watchdog */
    status = status_of(Sc->cat, pid, doc, state, updated_at, now);
    if (json_is_true(json_object_get(status, "overdue"))) {
        if (!json_object_get(state, "overdue_alerted")) {
            overdue_alert(Sc, pid, doc, status);
            json_object_set(state, "overdue_alerted", json_object_get(status, "overdue_since"));
            dirty = 1;
            sm_log(SM_LOG_WARN, "%s: backups are overdue (since %s)", pid,
                   jstr(status, "overdue_since"));
        }
    } else if (json_object_get(state, "overdue_alerted")) {
        json_object_del(state, "overdue_alerted");
        dirty = 1;
        sm_log(SM_LOG_INFO, "%s: backups are no longer overdue", pid);
    }
    json_decref(status);
save:
    if (dirty)
        catalog_schedule_state_put(Sc->cat, pid, state, NULL);
out:
    json_decref(state);
}

/* ---- the daily digest ---- */

static json_t *digest_sched(const char *time)
{
    return json_pack("{s:b,s:s,s:s}", "enabled", 1, "frequency", "daily", "time", time);
}

static time_t latest_slot(const json_t *d, time_t now)
{
    time_t s = schedule_next(d, now - 86400), n;
    while ((n = schedule_next(d, s)) != 0 && n <= now)
        s = n;
    return s <= now ? s : 0;
}

static void send_digest(scheduler *Sc, time_t now)
{
    project **v = NULL;
    size_t n = 0;
    sm_buf text = SM_BUF_INIT;
    json_t *projects = json_array(), *payload;
    char day[32], *subject;
    notify_msg m;

    if (catalog_project_list(Sc->cat, &v, &n, NULL) < 0)
        return;
    iso(day, now);
    sm_buf_putf(&text, "SupaManager daily digest, %.10s\n\n", day);
    for (size_t i = 0; i < n; i++) {
        backup_rec **b = NULL;
        size_t nb = 0, shown = 0;
        unsigned failed = 0;
        json_t *sizes = json_array(), *st = scheduler_project_status(Sc->cat, v[i]->id, now);
        char age[32] = "never", sz[32];
        if (catalog_backup_list(Sc->cat, v[i]->id, NULL, &b, &nb, NULL) == 0) {
            for (size_t k = 0; k < nb; k++) {
                time_t t = 0;
                sm_time_parse_iso(b[k]->created_at, &t);
                if (!strcmp(b[k]->status, "FAILED") && now - t <= 86400)
                    failed++;
                if (!strcmp(b[k]->status, "COMPLETED") && shown < 7) {
                    json_array_insert_new(sizes, 0, json_integer((json_int_t)b[k]->size));
                    shown++;
                }
            }
        }
        if (json_is_integer(json_object_get(st, "rpo_s")))
            human_age(age, sizeof(age),
                      (time_t)json_integer_value(json_object_get(st, "rpo_s")));
        sm_buf_putf(&text, "%s (%s)%s\n  last good backup: %s%s%s\n  failures in the last 24 "
                             "h: %u\n  sizes of the last good backups, oldest first:",
                      v[i]->name ? v[i]->name : v[i]->id, v[i]->id,
                      json_is_true(json_object_get(st, "overdue")) ? "  OVERDUE" : "",
                      json_string_value(json_object_get(st, "last_success_at"))
                          ? json_string_value(json_object_get(st, "last_success_at"))
                          : "none",
                      json_is_integer(json_object_get(st, "rpo_s")) ? ", " : "",
                      json_is_integer(json_object_get(st, "rpo_s")) ? age : "", failed);
        {
            size_t k;
            json_t *x;
            json_array_foreach(sizes, k, x)
            {
                sm_human_bytes(sz, sizeof(sz), (uint64_t)json_integer_value(x));
                sm_buf_putf(&text, " %s", sz);
            }
        }
        sm_buf_putf(&text, "%s\n\n", json_array_size(sizes) ? "" : " none");
        json_array_append_new(projects,
                              json_pack("{s:s,s:s,s:O,s:i,s:o}", "project_id", v[i]->id, "name",
                                        v[i]->name ? v[i]->name : "", "status", st,
                                        "failures_24h", failed, "sizes", sizes));
        json_decref(st);
        backup_list_free(b, nb);
    }
    payload = json_pack("{s:s,s:o}", "date", day, "projects", projects);
    subject = sm_xasprintf("[SupaManager] Daily digest %.10s: %zu project%s", day, n,
                           n == 1 ? "" : "s");
    memset(&m, 0, sizeof(m));
    m.event = "digest";
    m.subject = subject;
    m.text = sm_buf_str(&text);
    m.payload = payload;
    m.email_to = (const char *const *)Sc->ncfg->email_to;
    m.n_email = Sc->ncfg->n_email;
    m.webhook_url = Sc->ncfg->webhook_url;
    m.webhook_secret = Sc->ncfg->webhook_secret;
    if (Sc->N && (m.n_email || m.webhook_url))
        notifier_send(Sc->N, &m);
    sm_log(SM_LOG_INFO, "daily digest sent (%zu projects)", n);
    free(subject);
    json_decref(payload);
    sm_buf_release(&text);
    project_list_free(v, n);
}

static void tick_digest(scheduler *Sc, time_t now)
{
    json_t *d;
    time_t next;

    if (!Sc->ncfg || !Sc->ncfg->digest_time || !Sc->N)
        return;
    d = digest_sched(Sc->ncfg->digest_time);
    if (!Sc->last_digest)
        Sc->last_digest = latest_slot(d, now); /* none at start-up */
    next = schedule_next(d, Sc->last_digest ? Sc->last_digest : now);
    if (next && next <= now) {
        send_digest(Sc, now);
        Sc->last_digest = latest_slot(d, now);
    }
    json_decref(d);
}

/* ---- the thread ---- */

/* Point-in-time recovery: spooled WAL into the repositories, and a base
 * backup when the newest is older than the project's interval. */
static void tick_pitr(scheduler *Sc, time_t now)
{
    json_t *all = NULL, *e;
    size_t i;
    sm_err err = SM_ERR_INIT;
    ops_ctx o;

    if (!Sc->secret || catalog_pitr_all(Sc->cat, &all, &err) < 0)
        return;
    ops_ctx_init(&o, Sc->cat, Sc->secret);
    json_array_foreach(all, i, e)
    {
        const char *pid = jstr(e, "project_id");
        json_t *bases = NULL;
        json_int_t hours = json_integer_value(
            json_object_get(json_object_get(e, "doc"), "base_interval_hours"));
        unsigned n = 0;
        if (stopping(Sc))
            break;
        if (pitr_push(&o, pid, &n, &err) < 0) {
            sm_log(SM_LOG_WARN, "%s: WAL push: %s", pid, err.msg);
            sm_err_clear(&err);
        }
        if (hours <= 0 || catalog_base_list(Sc->cat, pid, &bases, &err) < 0) {
            sm_err_clear(&err);
            json_decref(bases);
            continue;
        }
        {
            json_t *last = json_array_get(bases, json_array_size(bases) - 1);
            time_t at = last ? iso_time(json_object_get(last, "finished_at")) : 0;
            json_int_t tried = json_integer_value(json_object_get(Sc->base_tries, pid));
            if (at && now - at >= (time_t)hours * 3600 && now - tried >= 600) {
                job_spec sp;
                char *job = NULL;
                memset(&sp, 0, sizeof(sp));
                sp.kind = "pitr-base";
                sp.project_id = pid;
                if (!Sc->base_tries)
                    Sc->base_tries = json_object();
                json_object_set_new(Sc->base_tries, pid, json_integer(now));
                if (jobs_submit(Sc->J, &sp, &job, NULL, &err) == 0)
                    sm_log(SM_LOG_INFO, "%s: scheduled base backup (job %s)", pid, job);
                sm_err_clear(&err); /* busy: the next tick tries again */
                free(job);
            }
        }
        json_decref(bases);
    }
    json_decref(all);
}

static void tick(scheduler *Sc, time_t now)
{
    json_t *all = NULL, *e;
    size_t i;
    sm_err err = SM_ERR_INIT;

    if (catalog_schedule_all(Sc->cat, &all, &err) < 0) {
        sm_log(SM_LOG_WARN, "scheduler: %s", err.msg);
        return;
    }
    json_array_foreach(all, i, e) tick_project(Sc, e, now);
    json_decref(all);
    tick_digest(Sc, now);
    tick_pitr(Sc, now);
}

static void *scheduler_main(void *arg)
{
    scheduler *Sc = arg;

    pthread_mutex_lock(&Sc->mu);
    while (!Sc->stopping) {
        done_ev *ev;
        time_t now;
        while ((ev = Sc->inbox) != NULL) {
            Sc->inbox = ev->next;
            if (!Sc->inbox)
                Sc->inbox_tail = NULL;
            pthread_mutex_unlock(&Sc->mu);
            job_ended(Sc, ev->state);
            json_decref(ev->state);
            free(ev);
            pthread_mutex_lock(&Sc->mu);
        }
        pthread_mutex_unlock(&Sc->mu);
        now = sm_now();
        tick(Sc, now);
        pthread_mutex_lock(&Sc->mu);
        Sc->seen = now;
        Sc->ticks++;
        if (!Sc->stopping && !Sc->inbox) {
            struct timespec ts;
            double w = Sc->tick_s;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)w;
            ts.tv_nsec += (long)((w - (double)(time_t)w) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&Sc->cv, &Sc->mu, &ts);
        }
    }
    pthread_mutex_unlock(&Sc->mu);
    return NULL;
}

scheduler *scheduler_new(const scheduler_config *cfg)
{
    scheduler *Sc = sm_xcalloc(1, sizeof(*Sc));

    Sc->home = sm_xstrdup(cfg->home);
    Sc->N = cfg->N;
    Sc->ncfg = cfg->ncfg;
    Sc->secret = cfg->secret ? sm_xstrdup(cfg->secret) : NULL;
    Sc->tick_s = cfg->tick_s > 0 ? cfg->tick_s : sm_clock_driven() ? 0.1 : 1.0;
    pthread_mutex_init(&Sc->mu, NULL);
    pthread_cond_init(&Sc->cv, NULL);
    return Sc;
}

int scheduler_start(scheduler *Sc, jobs *J, sm_err *err)
{
    int e;

    Sc->J = J;
    if (catalog_open(&Sc->cat, Sc->home, err) < 0)
        return -1;
    /* runs a previous service left going were interrupted with it */
    catalog_schedule_runs_interrupt(Sc->cat, "the service stopped before it finished", NULL);
    e = pthread_create(&Sc->th, NULL, scheduler_main, Sc);
    if (e != 0) {
        errno = e;
        return sm_err_sys(err, SM_E_INTERNAL, "cannot start the scheduler thread");
    }
    Sc->running = 1;
    return 0;
}

void scheduler_stop(scheduler *Sc)
{
    if (!Sc)
        return;
    pthread_mutex_lock(&Sc->mu);
    Sc->stopping = 1;
    pthread_cond_broadcast(&Sc->cv);
    pthread_mutex_unlock(&Sc->mu);
    if (Sc->running) {
        pthread_join(Sc->th, NULL);
        Sc->running = 0;
    }
}

void scheduler_free(scheduler *Sc)
{
    done_ev *ev, *next;

    if (!Sc)
        return;
    scheduler_stop(Sc);
    for (ev = Sc->inbox; ev; ev = next) {
        next = ev->next;
        json_decref(ev->state);
        free(ev);
    }
    catalog_close(Sc->cat);
    pthread_cond_destroy(&Sc->cv);
    pthread_mutex_destroy(&Sc->mu);
    free(Sc->home);
    if (Sc->secret) {
        sm_wipe(Sc->secret, strlen(Sc->secret));
        free(Sc->secret);
    }
    json_decref(Sc->base_tries);
    free(Sc);
}

json_t *scheduler_status(scheduler *Sc)
{
    char buf[32];
    json_t *o;
    size_t pending = 0;

    pthread_mutex_lock(&Sc->mu);
    for (done_ev *ev = Sc->inbox; ev; ev = ev->next)
        pending++;
    if (Sc->seen)
        iso(buf, Sc->seen);
    o = json_pack("{s:o,s:I,s:{s:I,s:I,s:I,s:I},s:I,s:b}", "now",
                  Sc->seen ? json_string(buf) : json_null(), "ticks", (json_int_t)Sc->ticks,
                  "runs", "started", (json_int_t)Sc->started, "skipped", (json_int_t)Sc->skipped,
                  "catch_up", (json_int_t)Sc->catch_up, "failed_to_start",
                  (json_int_t)Sc->failed_to_start, "pending", (json_int_t)pending, "running",
                  Sc->running && !Sc->stopping);
    pthread_mutex_unlock(&Sc->mu);
    return o;
}
