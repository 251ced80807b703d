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
 * Thread-safety: every function may be called from any thread.
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
} jobs_config;

typedef struct job_spec {
    const char *kind;       /* backup | restore | verify | export | import | delete */
    const char *project_id; /* the project it works on (import: the new project's id) */
    const char *backup_id;  /* restore, verify, export, delete */
    /* kind-specific arguments (borrowed):
     *   backup:  {"type": "FULL"|..., "kind": "manual"|"scheduled"}
     *   restore: {"database": bool, "storage": bool, "config": bool, "to_project": str|null}
     *   verify:  {"restore_test": bool}
     *   export:  {"compression": "gzip"|"zstd"|"none", "passphrase": str|null,
     *             "path": where to write the archive}
     *   import:  {"file": path of the uploaded archive (the job owns it afterwards),
     *             "passphrase": str|null, "project": {id, name, db_url, storage_dir,
     *             config_dir, org_id, owner}} */
    json_t *args;
} job_spec;

/* Starts the pool. Jobs left RUNNING or QUEUED by a daemon that died are
 * marked INTERRUPTED (with the reason) and their leftovers (temporary
 * directories, staging databases and directories) removed. */
int jobs_start(jobs **out, const jobs_config *cfg, sm_err *err);

/* Stops taking jobs; running ones are asked to stop at a safe point (a backup
 * stops and is recorded INTERRUPTED, never half-listed as good; a restore
 * stops before its swap, or finishes the swap if it started); queued ones are
 * marked INTERRUPTED. Waits for the workers, then frees. */
void jobs_stop(jobs *J);

/* Queues a job. Fails with SM_E_CONFLICT naming the job when the project
 * already has one queued or running. For a backup, *backup_id gets the id it
 * will have (its record exists from now on as CREATING); may be NULL for
 * other kinds. Caller frees the ids. */
int jobs_submit(jobs *J, const job_spec *spec, char **job_id, char **backup_id, sm_err *err);

/* The job's state (caller decrefs), NULL when unknown:
 * {id, kind, project_id, backup_id, status (QUEUED|RUNNING|COMPLETED|FAILED|
 *  INTERRUPTED), phase, progress (0..100), bytes_done, bytes_total, rate,
 *  eta_s, error, result (kind-specific: export {path, size}), created_at,
 *  started_at, finished_at}. */
json_t *jobs_get(jobs *J, const char *job_id);
/* The newest job working on a backup id (e.g. the backup being created). */
char *jobs_for_backup(jobs *J, const char *backup_id);
/* All queued and running jobs (caller decrefs). */
json_t *jobs_active(jobs *J);

/* Listeners get every state change of a job, in order: event is "progress",
 * "status" or "done", data the job's state (borrowed during the call). A
 * listener returning non-zero is removed. When the job is already finished,
 * the listener gets one "done" at once and is not kept. Returns a handle
 * for jobs_unsubscribe, or 0 when the job is unknown. */
typedef int (*jobs_listener)(void *ud, const char *event, json_t *state);
unsigned long jobs_subscribe(jobs *J, const char *job_id, jobs_listener fn, void *ud);
void jobs_unsubscribe(jobs *J, unsigned long handle);

/* Counters for /metrics: jobs by state, failures. */
json_t *jobs_metrics(jobs *J);

#endif
