/* Jobs of the daemon: backups, restores, verifications, exports, imports and
 * deletions run on a worker pool, one job per project at a time, at most
 * `max_running` at once; the rest wait in a queue (visible). Each job runs
 * the same ops_* function the CLI calls (src/job/ops.h), on its own thread
 * with its own catalog connection. Progress and status go to the catalog
 * (jobs table) and to listeners (Server-Sent Events).
 *
 *   jobs *J;
 *   jobs_start(&J, &cfg, &err);            // also marks jobs of a dead daemon INTERRUPTED
 *   job_spec sp = {.kind = "backup", .project_id = "abc123", .args = json_pack(...)};
 *   char *job_id, *backup_id;
 *   jobs_submit(J, &sp, &job_id, &backup_id, &err);   // SM_E_CONFLICT: the project is busy
 *   json_t *st = jobs_get(J, job_id);      // {id, kind, status, phase, progress, ...}
 *   jobs_stop(J);                          // SIGTERM: running jobs stop at a safe point
 *
 * Job ids: the id jobs_submit returns is the job's id everywhere. The job's
 * catalog row (jobs table) is written with that id at submit time (QUEUED);
 * the operation (src/job/ops.c) claims its project through that row
 * (ops_ctx.claimed_job_id) instead of inserting its own, so the row goes
 * QUEUED -> RUNNING -> COMPLETED | FAILED | INTERRUPTED under one id. The
 * catalog progress of a daemon job is the same 0..100 value jobs_get shows.
 * A job of a failed import loses its row with the project (ON DELETE
 * CASCADE) and is recorded again, without a project, when it ends.
 *
 * Projects: a job occupies its project (and a restore's to_project) from
 * submit to end. The CLI only sees RUNNING rows: a CLI command may take a
 * project whose daemon job is still queued; that job then fails with the
 * CLI's SM_E_CONFLICT message (a reserved backup is marked FAILED).
 *
 * Thread-safety: every function may be called from any thread, except that
 * a listener must not call jobs_stop (see jobs_subscribe).
 */
#ifndef SM_SERVICE_JOBS_H
#define SM_SERVICE_JOBS_H

#include "core/err.h"

#include <jansson.h>

typedef struct jobs jobs;

typedef struct jobs_config {
    const char *home;         /* SUPAMANAGER_HOME */
    const char *secret;       /* ENCRYPTION_SECRET (copied) */
    unsigned max_running;     /* global concurrency limit (default 2) */
    int safety_days;          /* 0: default */
    const char *min_free;     /* free-space guard (ops_ctx.min_free); NULL: default */
    /* Called once when a job has ended (after its "done" event), from the
     * thread that ended it, with no lock held; state is jobs_get's plus
     * "args" (the job's arguments), borrowed during the call. It must return
     * quickly (queue the state); it may call jobs_submit. */
    void (*on_done)(void *ud, const json_t *state);
    void *on_done_ud;
} jobs_config;

typedef struct job_spec {
    const char *kind;       /* backup | restore | verify | export | import | delete |
                               pitr-restore | pitr-base */
    const char *project_id; /* the project it works on (import: the new project's id) */
    const char *backup_id;  /* restore, verify, export, delete */
    /* kind-specific arguments (borrowed):
     *   backup:  {"type": "FULL"|..., "kind": "manual"|"scheduled",
     *             "scheduled_for": ISO slot, "retention": {"last", "daily",
     *             "weekly", "monthly"} (scheduled: applied after a success;
     *             the result then has {"retention": {"deleted", "bytes_freed"}})}
     *   restore: {"database": bool, "storage": bool, "config": bool, "to_project": str|null}
     *   verify:  {"restore_test": bool}
     *   pitr-restore: {"target_time": ISO 8601 | "target_lsn": "0/3000060" | "latest": true}
     *   pitr-base: {}
     *   export:  {"compression": "gzip"|"zstd"|"none", "passphrase": str|null,
     *             "path": where to write the archive}
     *   import:  {"file": path of the uploaded archive (the job owns it afterwards),
     *             "passphrase": str|null, "project": {id, name, db_url, storage_dir,
     *             config_dir, org_id, owner}}
     * Missing members take the defaults (backup: FULL, manual; restore: every
     * part of the backup, same project; verify: no restore test; export: gzip).
     * For restore, verify, export and delete, project_id may be NULL: it is
     * the backup's project (given, it must be). import: project.id defaults
     * to project_id. Extra import project members: config_files (array),
     * pgsodium_key, pause_cmd, resume_cmd, store. */
    json_t *args;
} job_spec;

/* Starts the pool. Jobs left RUNNING or QUEUED by a daemon that died are
 * marked INTERRUPTED (with the reason) and their leftovers (temporary
 * directories, staging databases and directories) removed.
 * In detail: catalog_reap_dead, then every other QUEUED/RUNNING job and
 * CREATING backup becomes INTERRUPTED ("the service stopped before it
 * finished"), except those of a supamanager CLI command running now
 * (catalog_interrupt_orphans). Then everything in <home>/tmp is removed (unless such a
 * command runs), and for every project not busy with one: the staging
 * siblings <storage_dir>.smr-*, <config_dir>.smr-*, <config file>.smr-*,
 * <pgsodium_key>.smr-*, and the staging and scratch databases <db>_smr_* and
 * <db>_smverify_* (an unreachable database is a warning). Call it before
 * anything else (e.g. the HTTP server's upload spool) puts files under
 * <home>/tmp. Fails only when the catalog cannot be opened or read. */
int jobs_start(jobs **out, const jobs_config *cfg, sm_err *err);

/* Stops taking jobs; running ones are asked to stop at a safe point (a backup
 * stops and is recorded INTERRUPTED, never half-listed as good; a restore
 * stops before its swap, or finishes the swap if it started); queued ones are
 * marked INTERRUPTED. Waits for the workers, then frees. */
void jobs_stop(jobs *J);

/* Queues a job. Fails with SM_E_CONFLICT naming the job when the project
 * already has one queued or running ("project 'abc' is busy: backup
 * backup_abc_20260101_120000 is running (job job_0123456789abcdef)"), with
 * SM_E_INTERRUPTED ("the service is shutting down") after jobs_stop began,
 * and with SM_E_NOTFOUND / SM_E_INVALID / SM_E_USAGE for an unknown
 * project or backup, bad arguments or a missing argument (checked now, so
 * an API can answer 404/400 at once). For a backup, *backup_id gets the id it
 * will have (its record exists from now on as CREATING); may be NULL for
 * other kinds. Caller frees the ids. When it fails, an import's file stays
 * the caller's. */
int jobs_submit(jobs *J, const job_spec *spec, char **job_id, char **backup_id, sm_err *err);

/* Stops one job: a queued one ends INTERRUPTED at once ("the job was
 * cancelled before it started"); a running one is asked to stop at a safe
 * point, as jobs_stop does. SM_E_NOTFOUND for an unknown job, SM_E_INVALID
 * when it has already finished. */
int jobs_cancel(jobs *J, const char *job_id, sm_err *err);

/* The job's state (caller decrefs), NULL when unknown:
 * {id, kind, project_id, to_project (restore; else null), backup_id,
 *  status (QUEUED|RUNNING|COMPLETED|FAILED|INTERRUPTED), phase, progress
 *  (0..100: never goes back, 100 only once COMPLETED), bytes_done,
 *  bytes_total, rate (bytes/s), eta_s (null when unknown), error, error_code
 *  (sm_code_name, e.g. "conflict"), hint (null when none), result
 *  (kind-specific, null until the end: backup {backup_id}; export {path,
 *  size}; verify the report of ops_backup_verify; import {project_id,
 *  backup_id}), created_at, started_at, finished_at (null until then)}.
 * The service keeps the last 200 finished jobs in memory; older ones, and
 * jobs of CLI commands or earlier service runs, come from the catalog
 * (without bytes, rate or result). */
json_t *jobs_get(jobs *J, const char *job_id);
/* The newest job (of this service run) working on a backup id (e.g. the
 * backup being created, restored or exported); NULL when none. Caller frees. */
char *jobs_for_backup(jobs *J, const char *backup_id);
/* All queued and running jobs, in submit order (caller decrefs). */
json_t *jobs_active(jobs *J);

/* Listeners get every state change of a job, in order: event is "progress",
 * "status" or "done", data the job's state (borrowed during the call). A
 * listener returning non-zero is removed. When the job is already finished,
 * the listener gets one "done" at once and is not kept. Returns a handle
 * for jobs_unsubscribe, or 0 when the job is unknown (or, from the catalog,
 * still running in another process).
 *
 * "status" comes when the job starts running and when it ends; "done" is
 * always the last event (after the final "status") and the listener is
 * dropped after it. Listeners of one job are called one at a time, in
 * order, with the job's lock held (from the thread that changed the job: a
 * worker, jobs_stop, jobs_cancel or jobs_subscribe itself): a listener must
 * return quickly (copy the state into a queue, e.g. for SSE) and never block
 * on another thread that may be waiting for this job. It may call
 * jobs_submit, jobs_metrics, jobs_for_backup, and jobs_get / jobs_subscribe
 * / jobs_unsubscribe of its own job (itself included); not these for
 * another job, nor jobs_active (two listeners doing it crosswise could
 * deadlock), and never jobs_stop or jobs_cancel. jobs_unsubscribe returns once no call of that
 * listener is running (except when called from inside that listener). */
typedef int (*jobs_listener)(void *ud, const char *event, json_t *state);
unsigned long jobs_subscribe(jobs *J, const char *job_id, jobs_listener fn, void *ud);
void jobs_unsubscribe(jobs *J, unsigned long handle);

/* Counters for /metrics (caller decrefs): {"queued", "running" (now),
 * "submitted", "completed", "failed", "interrupted" (since start),
 * "max_running", "by_status": {"queued", "running", "completed", "failed",
 * "interrupted"} (the same numbers, for a labelled metric),
 * "failures_by_kind": {"backup": n, "restore": n, ...} (every kind)}. */
json_t *jobs_metrics(jobs *J);

#endif
