/* The scheduler of the daemon: runs each project's backup schedule
 * (src/service/schedule.h), applies retention through the backup job,
 * follows successful scheduled backups with a verification (and a weekly
 * restore test when asked), watches for projects whose newest restorable
 * backup is older than their schedule promises ("overdue"), sends the
 * notifications (src/service/notify.h) and a daily digest.
 *
 *   scheduler *Sc = scheduler_new(&cfg);
 *   jobs_config jc = {..., .on_done = scheduler_job_done, .on_done_ud = Sc};
 *   jobs_start(&J, &jc, &err);
 *   scheduler_start(Sc, J, &err);      // its thread looks at the clock every tick
 *   ...
 *   scheduler_stop(Sc);                // before jobs_stop
 *   jobs_stop(J);
 *   scheduler_free(Sc);                // after jobs_stop (it may still get job ends)
 *
 * Time is sm_now() (src/core/util.h): tests drive it with SUPAMANAGER_NOW=@FILE
 * and a week of schedules runs in seconds. A slot is handled once: missed
 * slots (the service was down) give exactly one catch-up run; a slot whose
 * project is still busy (the previous run goes on) is recorded as SKIPPED.
 * Runs are recorded in the catalog (schedule_runs) with the slot they were
 * due for; the per-project state (last slot handled, alerts, restore-test
 * times) is kept in the catalog too, so a restart neither repeats nor loses
 * a run.
 */
#ifndef SM_SERVICE_SCHEDULER_H
#define SM_SERVICE_SCHEDULER_H

#include "catalog/catalog.h"
#include "core/err.h"
#include "service/jobs.h"
#include "service/notify.h"

#include <jansson.h>
#include <time.h>

typedef struct scheduler scheduler;

typedef struct scheduler_config {
    const char *home;          /* SUPAMANAGER_HOME */
    notifier *N;               /* may be NULL: no notifications */
    const notify_config *ncfg; /* global recipients, on_success, digest (may be NULL) */
    double tick_s;             /* seconds between looks at the clock; 0: 1 s (0.1 s on a
                                * driven clock) */
    const char *secret;        /* ENCRYPTION_SECRET: moves spooled WAL of projects with
                                * point-in-time recovery into their repositories every tick
                                * (NULL: not) */
} scheduler_config;

scheduler *scheduler_new(const scheduler_config *cfg);
/* Starts the thread; fails only when the catalog cannot be opened. */
int scheduler_start(scheduler *Sc, jobs *J, sm_err *err);
/* Stops the thread (idempotent); job ends that arrive later are ignored. */
void scheduler_stop(scheduler *Sc);
void scheduler_free(scheduler *Sc);

/* jobs_config.on_done: queues the job's end for the scheduler's thread. */
void scheduler_job_done(void *ud, const json_t *state);

/* {"now": ISO time the scheduler last looked at, "ticks": n, "runs":
 * {"started", "skipped", "catch_up", "failed_to_start"}, "pending": n}
 * (caller decrefs). */
json_t *scheduler_status(scheduler *Sc);

/* What a project's schedule promises and how it stands, computed from the
 * catalog at `now` (no scheduler needed): {"enabled", "next_run_at",
 * "last_success_at", "rpo_s" (age of the newest restorable backup; null
 * when none), "rto_s" (the last restore test's duration; null when none),
 * "overdue" (bool), "overdue_since" (null)} (caller decrefs). */
json_t *scheduler_project_status(catalog *c, const char *project_id, time_t now);

#endif
