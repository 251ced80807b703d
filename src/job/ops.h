/* The operations on projects that the CLI and the HTTP API share: backup,
 * restore (staged, verified, swapped), verify, delete, export, import.
 * Neither face reimplements any of this.
 *
 *   ops_ctx o;
 *   ops_ctx_init(&o, cat, secret);
 *   o.progress = my_progress; o.progress_ud = ...;
 *   char *id = NULL;
 *   if (ops_backup_create(&o, "abc123", &(ops_backup_opts){.type = "full"}, &id, &err) < 0) ...
 *
 * Every operation claims its project in the catalog first (one operation per
 * project at a time; a second one fails with SM_E_CONFLICT naming the first).
 */
#ifndef SM_JOB_OPS_H
#define SM_JOB_OPS_H

#include "catalog/catalog.h"
#include "core/err.h"
#include "job/archive.h"
#include "repo/repo.h"

#include <jansson.h>
#include <signal.h>

typedef struct ops_event {
    const char *job_id;
    const char *phase;    /* "dump", "globals", "storage", "config", "commit", "stage", "pause",
                             "swap", "resume", "verify", ... */
    double progress;      /* 0..100 */
    uint64_t bytes_done;
    uint64_t bytes_total;
    double rate;          /* bytes/s */
    double eta_s;         /* -1 unknown */
} ops_event;

typedef void (*ops_event_fn)(void *ud, const ops_event *e);

typedef struct ops_ctx {
    catalog *cat;
    const char *secret;  /* the repositories' ENCRYPTION_SECRET */
    ops_event_fn event;  /* progress and phases (may be NULL) */
    void *event_ud;
    volatile sig_atomic_t *cancel;
    int safety_days;     /* how long safety backups are kept (default 7) */
    const char *job_id;  /* set while an operation runs */
    /* A job row the caller recorded (the daemon's queue, catalog_job_insert)
     * and started (catalog_job_start): the operation claims its project
     * through that row instead of inserting its own, so the caller's job id
     * is the one in the catalog. Borrowed. */
    const char *claimed_job_id;
    /* Non-zero: the event callback records progress in the job row itself;
     * the operation does not write raw percentages there. */
    int progress_by_event;
    /* Free-space guard: a backup is refused before it writes anything when
     * the estimate of what it adds would leave less free than this on the
     * repository's file system: "N%" of its size, a size ("5G"), or "0"
     * (off). NULL: SUPAMANAGER_MIN_FREE, else OPS_DEFAULT_MIN_FREE. */
    const char *min_free;
} ops_ctx;

#define OPS_DEFAULT_MIN_FREE "2%"

void ops_ctx_init(ops_ctx *o, catalog *cat, const char *secret);

/* ---- projects ---- */

/* Validates and registers a project: id syntax, the database URL (reachable,
 * superuser, matching pg_dump installed; unless check_db is 0), the storage
 * directory and config paths exist. */
int ops_project_add(ops_ctx *o, const project *p, int check_db, sm_err *err);
/* 0 when the repository location of p shares no objects with another
 * project's; else -1 with SM_E_CONFLICT naming that project. Directories
 * compare as paths (".", ".." and repeated '/' folded; symlinks are not
 * followed), S3 locations by bucket and prefix whatever the endpoint; one
 * inside the other conflicts too. */
int ops_store_conflict(ops_ctx *o, const project *p, sm_err *err);
/* Brings the catalog in line with the project's repository: every committed
 * project backup found there (its manifest names it) that the catalog lacks
 * is added (a new server after the old one was lost, the same store), and
 * one the catalog still shows as unfinished is marked COMPLETED. *report:
 * {project_id, found, added: [ids], repaired: [ids], skipped: [{id, reason}]}. */
int ops_backup_sync(ops_ctx *o, const char *project_id, json_t **report, sm_err *err);
/* ops_backup_sync for a project just registered, when its store already
 * holds a repository: 0 (with *report), 1 when there is none, -1. */
int ops_project_adopt(ops_ctx *o, const char *project_id, json_t **report, sm_err *err);
/* Removes a project from the catalog; its repository stays unless purge. */
int ops_project_remove(ops_ctx *o, const char *id, int purge, sm_err *err);

/* ---- backups ---- */

/* Retention of scheduled backups, like the forget policies of restic and
 * borg: keep the `last` newest, plus the newest backup of each of the
 * `daily` most recent days (UTC), `weekly` ISO weeks and `monthly` months
 * that have one. A rule at 0 is unused; a backup kept by any rule is kept. */
typedef struct ops_retention {
    int last, daily, weekly, monthly;
} ops_retention;

/* Marks keep[i] (1 kept, 0 not) for n times given newest first, as ISO
 * 8601 UTC ("2026-11-25T02:00:00Z"). */
void ops_retention_select(const ops_retention *r, const char *const *times, size_t n,
                          unsigned char *keep);

typedef struct ops_backup_opts {
    const char *type;       /* full | database | storage | incremental (any case) */
    const char *kind;       /* manual (default) | scheduled | safety */
    int keep_days;          /* safety backups: expiry */
    const char *backup_id;  /* an id reserved with ops_backup_reserve (daemon queues) */
    /* scheduled backups: after a success, the project's COMPLETED scheduled
     * backups beyond this policy are deleted (their data pruned); a failed
     * backup deletes nothing, manual backups are never touched */
    const ops_retention *retention;
    const char *scheduled_for; /* the slot it ran for (ISO 8601), kept in its metadata */
    /* when set, gets {"retention": {"deleted": [ids], "bytes_freed": n}} */
    json_t *report;
} ops_backup_opts;

/* Reserves a backup id for a backup that will run later (its record is
 * CREATING from now on; ops_backup_create with opts.backup_id fills it). */
int ops_backup_reserve(ops_ctx *o, const char *project_id, const char *type, const char *kind,
                       char **backup_id, sm_err *err);

/* Creates a backup; *backup_id gets its id (also on failure, when a FAILED
 * record was written; caller frees). */
int ops_backup_create(ops_ctx *o, const char *project_id, const ops_backup_opts *bo,
                      char **backup_id, sm_err *err);
/* Removes a backup: its snapshot from the repository (freeing space), then
 * its record. */
int ops_backup_delete(ops_ctx *o, const char *backup_id, sm_err *err);
/* Verifies a backup: every chunk and checksum of its snapshot; with
 * restore_test, restores its database into a scratch database on the same
 * server, compares the row counts with the metadata, and drops it.
 * *report (may be NULL) gets the findings. */
int ops_backup_verify(ops_ctx *o, const char *backup_id, int restore_test, json_t **report,
                      sm_err *err);

/* The parts a backup type contains. */
int ops_type_parts(const char *type, int *db, int *storage, int *config);
/* Normalises "full" -> "FULL" etc.; SM_E_INVALID for unknown types. */
int ops_type_parse(const char *in, const char **out, sm_err *err);

/* ---- restore ---- */

typedef struct ops_restore_opts {
    int database, storage, config; /* parts to restore (all 0: every part the backup has) */
    const char *to_project;        /* restore into another registered project (clone) */
    int no_safety_backup;
} ops_restore_opts;

/* Restores a backup into its project (or to_project): takes a safety backup
 * of the current state, restores every part into staging (a new database,
 * sibling directories), verifies checksums and row counts, pauses the
 * project, swaps, resumes. Any error before the swap leaves the project as
 * it was; the previous state is kept until the swap has succeeded. */
int ops_restore(ops_ctx *o, const char *project_id, const char *backup_id,
                const ops_restore_opts *ro, sm_err *err);
/* Puts back the newest safety backup of the project. */
int ops_restore_undo(ops_ctx *o, const char *project_id, sm_err *err);

/* ---- export / import ---- */

/* Writes the portable archive of a backup to out_path (a temporary name
 * renamed at the end; default name backup_YYYYMMDD_HHMMSS_<type>.tar.gz in
 * the current directory when out_path is NULL). *written_path gets the path
 * (caller frees). */
int ops_export(ops_ctx *o, const char *backup_id, const char *out_path,
               const archive_export_opts *ao, char **written_path, sm_err *err);

/* Creates project p from an archive: checks and extracts it privately,
 * records it as an imported backup of p, creates p's database if missing,
 * and restores it. A failed import leaves no project, database or files. */
int ops_import(ops_ctx *o, const char *archive_path, const project *p, const char *passphrase,
               char **backup_id, sm_err *err);

#endif
