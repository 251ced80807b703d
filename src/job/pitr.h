/* Point-in-time recovery: continuous WAL archiving into the project's
 * repository, physical base backups, and restores of the whole cluster to
 * any moment the archive covers.
 *
 * How the pieces fit (docs/PITR.md):
 *   - PostgreSQL's archive_command is `supamanager wal-push --spool DIR %p`:
 *     run by the database server (as its user, without the catalog or the
 *     secret), it copies each finished WAL file into a spool directory,
 *     durably (fsync, rename, fsync of the directory) before it answers;
 *     the same file again is a no-op, a different file of the same name a
 *     failure.
 *   - pitr_push (the service every second, and `supamanager pitr push`)
 *     moves spooled files into the repository: one snapshot per batch, a
 *     stream "wal-<name>" per file, indexed in the catalog (pitr_wal), then
 *     removes them from the spool.
 *   - pitr_base_backup runs pg_basebackup (the replication protocol) into
 *     the repository as one tar stream, deduplicated against the previous
 *     base backups; retention keeps the newest `keep_bases` and the WAL they
 *     need.
 *   - pitr_restore picks the newest base backup before the target, checks
 *     that the archive has every WAL file from it to the target, stops the
 *     server, builds the restored data directory beside the current one,
 *     swaps them, starts the server in recovery to the target and waits for
 *     it to be promoted; any failure puts the old data directory back.
 */
#ifndef SM_JOB_PITR_H
#define SM_JOB_PITR_H

#include "job/ops.h"

#include <jansson.h>

#define PITR_DEFAULT_ARCHIVE_TIMEOUT 60
#define PITR_DEFAULT_KEEP_BASES 7

/* Where a restore stops (exactly one of time, lsn, xid, latest). */
typedef struct pitr_target {
    const char *time;     /* "2026-11-25 14:03:07+00", ISO 8601; no offset: UTC */
    const char *lsn;      /* "0/3000060" */
    const char *xid;      /* a transaction id */
    int latest;           /* everything the archive holds */
    const char *timeline; /* recovery_target_timeline: "latest" (default) or N */
} pitr_target;

/* The archive_command side: copies the WAL file at path into spool as its
 * base name, durably. Names that are not WAL file names are refused
 * (SM_E_INVALID); the same content again returns 0; different content under
 * an archived name fails with SM_E_CONFLICT. */
int pitr_wal_push_spool(const char *spool, const char *path, sm_err *err);

/* Turns archiving on for a project. settings: {"data_dir" (required), "stop_cmd", "start_cmd"
 * (required: archive_mode needs a restart, and restores stop and start the server),
 * "spool_dir" (default <data_dir>.wal-spool: beside the data directory, where the server's user
 * can write), "db_spool_dir" (the spool as the server sees it, e.g. inside its container;
 * default spool_dir), "archive_timeout" (seconds, default 60: the longest a quiet database's
 * changes wait to be archived), "keep_bases" (default 7), "binary" (the supamanager the server
 * runs; default this one)}. Sets archive_mode, archive_command and archive_timeout with ALTER
 * SYSTEM, restarts the server, switches WAL and waits for the first file to be archived (fails
 * naming the archiver's error if it is not). *report (may be NULL) gets the settings. */
int pitr_enable(ops_ctx *o, const char *project_id, const json_t *settings, json_t **report,
                sm_err *err);
/* Turns archiving off (archive_command back to its default) and forgets
 * the settings; the archive and base backups stay until removed. */
int pitr_disable(ops_ctx *o, const char *project_id, sm_err *err);
/* Moves spooled WAL into the repository. *pushed (may be NULL) gets how
 * many files. Returns 0 without doing anything when the repository is
 * locked by another writer (the spool keeps the files). */
int pitr_push(ops_ctx *o, const char *project_id, unsigned *pushed, sm_err *err);
/* A physical base backup; *report (may be NULL) gets its record. */
int pitr_base_backup(ops_ctx *o, const char *project_id, json_t **report, sm_err *err);
/* The recoverable window and the archive's health (caller decrefs):
 * {"enabled", "earliest", "latest" (ISO 8601 UTC or null), "archive_lag_s",
 *  "spool_pending", "wal_files", "timelines", "base_backups": [...],
 *  "gaps": [{"after", "missing_from", "missing_to", "breaks"}]} */
int pitr_status(ops_ctx *o, const char *project_id, json_t **out, sm_err *err);
/* Restores the cluster to the target; *report (may be NULL) gets what was
 * done ({base_backup, wal_files, target, timeline, duration_s}). */
int pitr_restore(ops_ctx *o, const char *project_id, const pitr_target *t, json_t **report,
                 sm_err *err);
/* Copies one archived WAL file (by name) to dest (for restore_command
 * when recovering by hand). SM_E_NOTFOUND when the archive lacks it. */
int pitr_wal_fetch(ops_ctx *o, const char *project_id, const char *name, const char *dest,
                   sm_err *err);

/* Parses "YYYY-MM-DD[ T]HH:MM:SS[.frac][Z|+HH[:MM]|-HH[:MM]]" (no offset:
 * UTC). 0 or -1. */
int pitr_parse_time(const char *s, time_t *out);

#endif
