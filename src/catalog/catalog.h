/* The catalog: projects, organisations, members, backups and jobs, in one
 * SQLite file under the home (WAL mode, foreign keys on, versioned
 * migrations). The repositories hold the data; the catalog holds what is
 * where and in which state.
 *
 *   catalog *c;
 *   catalog_open(&c, "/var/lib/supamanager", &err);
 *   project *p;
 *   catalog_project_get(c, "abc123", &p, &err);     // SM_E_NOTFOUND with a hint
 *   ...
 *   project_free(p);
 *   catalog_close(c);
 *
 * Thread-safety: one catalog per thread (each opens its own connection);
 * several processes may use the same file (SQLite locking, busy timeout).
 */
#ifndef SM_CATALOG_CATALOG_H
#define SM_CATALOG_CATALOG_H

#include "core/err.h"

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#define CATALOG_SCHEMA_VERSION 4

typedef struct catalog catalog;

/* Opens (creating) <home>/catalog.db and brings its schema up to date. */
int catalog_open(catalog **out, const char *home, sm_err *err);
void catalog_close(catalog *c);
const char *catalog_home(const catalog *c);
/* The schema version of the open catalog. */
int catalog_schema_version(catalog *c);

/* ---- projects ---- */

typedef struct project {
    char *id;
    char *name;
    char *org_id;        /* may be NULL */
    char *owner;         /* user id (JWT sub), may be NULL */
    char *db_url;
    char *storage_dir;
    char *config_dir;    /* may be NULL */
    json_t *config_files; /* array of paths (may be empty) */
    char *pgsodium_key;  /* path of the pgsodium root key file, may be NULL */
    char *pause_cmd;     /* may be NULL */
    char *resume_cmd;    /* may be NULL */
    char *store;         /* repository location; NULL: <home>/backups/<id> */
    char created_at[32];
    char updated_at[32];
} project;

/* Ids look like Supabase project refs: 3-40 characters of a-z, 0-9 and '-',
 * starting with a letter or digit, not ending with '-'. */
int project_id_check(const char *id, sm_err *err);
project *project_new(void);
void project_free(project *p);
/* {id, name, org_id, owner, db_url (password hidden), ...} (caller decrefs). */
json_t *project_json(const project *p, int show_secrets);
/* The repository location of a project (caller frees). */
char *project_repo_location(const catalog *c, const project *p);

int catalog_project_add(catalog *c, const project *p, sm_err *err);
int catalog_project_get(catalog *c, const char *id, project **out, sm_err *err);
int catalog_project_update(catalog *c, const project *p, sm_err *err);
int catalog_project_remove(catalog *c, const char *id, sm_err *err);
int catalog_project_list(catalog *c, project ***out, size_t *n, sm_err *err);
void project_list_free(project **v, size_t n);

/* ---- backups ---- */

typedef struct backup_rec {
    char *id;
    char *project_id;
    char *type;        /* FULL, DATABASE, STORAGE, INCREMENTAL */
    char *status;      /* CREATING, COMPLETED, FAILED, INTERRUPTED */
    char *kind;        /* manual, scheduled, safety, imported */
    char *snapshot_id; /* repository snapshot, once committed */
    char *parent_id;
    char *error;
    char created_at[32];
    char finished_at[32];
    char expires_at[32]; /* safety backups; "" otherwise */
    uint64_t size;       /* bytes of all parts (plaintext) */
    uint64_t stored;     /* bytes this backup added to the repository */
    double duration_s;
    pid_t pid;           /* of the process creating it */
    char host[256];
    json_t *meta;        /* parts with checksums and sizes, row counts, versions */
} backup_rec;

backup_rec *backup_rec_new(void);
void backup_rec_free(backup_rec *b);
json_t *backup_rec_json(const backup_rec *b);

int catalog_backup_insert(catalog *c, const backup_rec *b, sm_err *err);
/* Updates status, snapshot, sizes, error, times and meta. */
int catalog_backup_update(catalog *c, const backup_rec *b, sm_err *err);
int catalog_backup_get(catalog *c, const char *id, backup_rec **out, sm_err *err);
/* A project's backups, newest first (kind NULL: all kinds). */
int catalog_backup_list(catalog *c, const char *project_id, const char *kind, backup_rec ***out,
                        size_t *n, sm_err *err);
void backup_list_free(backup_rec **v, size_t n);
/* The project's newest backup with that status (NULL: any); returns 1 and
 * *out NULL when there is none. */
int catalog_backup_latest(catalog *c, const char *project_id, const char *status,
                          backup_rec **out, sm_err *err);
int catalog_backup_delete(catalog *c, const char *id, sm_err *err);
/* Is the id taken? */
int catalog_backup_exists(catalog *c, const char *id, int *exists, sm_err *err);

/* ---- jobs: one writer per project ---- */

typedef struct job_rec {
    char *id;
    char *project_id;
    char *kind;      /* backup, restore, verify, export, import, delete */
    char *status;    /* QUEUED, RUNNING, COMPLETED, FAILED, INTERRUPTED */
    char *backup_id; /* may be NULL */
    char *phase;
    char *error;
    double progress; /* 0..100 */
    pid_t pid;
    char host[256];
    char created_at[32];
    char started_at[32];
    char finished_at[32];
} job_rec;

void job_rec_free(job_rec *j);

/* Claims the project for an operation: fails with SM_E_CONFLICT naming the
 * running job ("project 'abc' is busy: backup backup_abc_... is running
 * (pid 123 on host h, since ...)") when a live job of this project runs. A
 * job of a process that is gone is marked INTERRUPTED first. *job_id is the
 * new RUNNING job's id (caller frees). */
int catalog_job_claim(catalog *c, const char *project_id, const char *kind,
                      const char *backup_id, char **job_id, sm_err *err);
int catalog_job_progress(catalog *c, const char *job_id, double progress, const char *phase,
                         sm_err *err);
/* Sets the backup of a job that has none yet (a job created for a backup
 * keeps it; a restore's safety backup does not replace its source). */
int catalog_job_set_backup(catalog *c, const char *job_id, const char *backup_id, sm_err *err);
int catalog_job_finish(catalog *c, const char *job_id, const char *status, const char *error,
                       sm_err *err);
int catalog_job_get(catalog *c, const char *job_id, job_rec **out, sm_err *err);

/* Records a job row as given, for a daemon that queues jobs before they run:
 * id, project_id (may be NULL), kind, status, backup_id, phase, error,
 * progress, pid (0: this process), host ("" : this host) and the times (""
 * is NULL). SM_E_EXISTS when the id is taken. */
int catalog_job_insert(catalog *c, const job_rec *j, sm_err *err);

/* Starts a job recorded earlier (QUEUED, or RUNNING in this process). With a
 * project_id, first claims that project as catalog_job_claim does (fails
 * with SM_E_CONFLICT naming another live job running on it) and records it
 * on the row. The row becomes RUNNING with this pid, host and a start time
 * (kept when already set). SM_E_NOTFOUND when the row is gone or finished
 * (e.g. a shutdown marked it INTERRUPTED). Calling it again is harmless. */
int catalog_job_start(catalog *c, const char *job_id, const char *project_id, sm_err *err);

/* For a daemon starting up (it has started no job yet): marks INTERRUPTED,
 * with reason, every QUEUED or RUNNING job and CREATING backup, whatever its
 * pid and host say (a previous instance's pid may be reused, even by this
 * process in a container, and its host name may have changed), except those
 * of another live supamanager process on this host (a CLI command running
 * now). *n gets how many were marked; *busy (may be NULL) an array of the
 * ids of projects that such a live process works on (caller decrefs). */
int catalog_interrupt_orphans(catalog *c, const char *reason, unsigned *n, json_t **busy,
                              sm_err *err);

/* Marks RUNNING jobs and CREATING backups whose process is gone (this host)
 * as INTERRUPTED with a reason; returns how many in *n. */
int catalog_reap_dead(catalog *c, unsigned *n, sm_err *err);

/* ---- schedules ---- */

/* The stored schedule document of a project (validated by schedule.h) and
 * what its last run did ({last_run_at, last_backup_id, last_status,
 * updated_at}); returns 1 when the project has none. Caller decrefs. */
int catalog_schedule_get(catalog *c, const char *project_id, json_t **doc, json_t **last,
                         sm_err *err);
int catalog_schedule_put(catalog *c, const char *project_id, const json_t *doc, sm_err *err);
int catalog_schedule_ran(catalog *c, const char *project_id, const char *at, const char *backup_id,
                         const char *status, sm_err *err);
/* The scheduler's own state of a project (an object it alone reads and
 * writes: the last slot handled, alerts raised, restore-test times); {}
 * when none. put is a no-op when the project has no schedule row. */
int catalog_schedule_state_get(catalog *c, const char *project_id, json_t **state, sm_err *err);
int catalog_schedule_state_put(catalog *c, const char *project_id, const json_t *state,
                               sm_err *err);
/* History of scheduled runs: slot is when it was due (ISO 8601 UTC),
 * status STARTED, SKIPPED, COMPLETED or FAILED; backup_id and reason may be
 * NULL. run_finish updates the run of a backup. */
int catalog_schedule_run_add(catalog *c, const char *project_id, const char *slot,
                             const char *status, const char *backup_id, const char *reason,
                             sm_err *err);
int catalog_schedule_run_finish(catalog *c, const char *backup_id, const char *status,
                                const char *reason, sm_err *err);
/* The newest `limit` runs, newest first: [{slot, at, status, backup_id, reason}]. */
int catalog_schedule_runs(catalog *c, const char *project_id, int limit, json_t **out, sm_err *err);
/* Marks STARTED runs INTERRUPTED with reason (a daemon starting up). */
int catalog_schedule_runs_interrupt(catalog *c, const char *reason, sm_err *err);
/* Every stored schedule: [{project_id, doc, updated_at, state}]. */
int catalog_schedule_all(catalog *c, json_t **out, sm_err *err);

/* ---- point-in-time recovery (src/pitr) ---- */

/* The PITR settings of a project (a document src/pitr owns); 1 when none. */
int catalog_pitr_get(catalog *c, const char *project_id, json_t **doc, sm_err *err);
int catalog_pitr_put(catalog *c, const char *project_id, const json_t *doc, sm_err *err);
int catalog_pitr_delete(catalog *c, const char *project_id, sm_err *err);
/* [{project_id, doc}] of every project with settings. */
int catalog_pitr_all(catalog *c, json_t **out, sm_err *err);
/* The index of the WAL archive (the repository is the truth; this finds a
 * file without reading every manifest): {name, timeline, segno (-1 for a
 * .history file), snapshot_id, sha256, size, archived_at, content (the text of
 * a .history file)}. list: by segno,
 * then timeline. */
int catalog_wal_add(catalog *c, const char *project_id, const json_t *w, sm_err *err);
int catalog_wal_list(catalog *c, const char *project_id, json_t **out, sm_err *err);
int catalog_wal_delete(catalog *c, const char *project_id, const char *name, sm_err *err);
/* Physical base backups: a document per backup (src/pitr owns it); list:
 * oldest first, each with "id". */
int catalog_base_put(catalog *c, const char *id, const char *project_id, const json_t *doc,
                     sm_err *err);
int catalog_base_list(catalog *c, const char *project_id, json_t **out, sm_err *err);
int catalog_base_delete(catalog *c, const char *id, sm_err *err);

/* ---- organisations and members (access control) ---- */

int catalog_org_add(catalog *c, const char *id, const char *name, sm_err *err);
int catalog_org_list(catalog *c, json_t **out, sm_err *err);
/* role: "admin" or "member". */
int catalog_member_add(catalog *c, const char *org_id, const char *user_id, const char *role,
                       sm_err *err);
/* The user's role in the org: "admin", "member", or NULL (static strings). */
int catalog_member_role(catalog *c, const char *org_id, const char *user_id, const char **role,
                        sm_err *err);

#endif
