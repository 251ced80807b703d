/* The PostgreSQL side of project backups: connect and check rights, find
 * the client programs matching the server, dump a database and its roles
 * from one consistent snapshot, restore into a staging database exactly
 * (Supabase-shaped databases included), verify it, and swap it in.
 *
 *   pg_server srv;
 *   pg_probe(url, &srv, &err);                 // reachable? superuser? version?
 *   pg_session *s;
 *   pg_snapshot_begin(&s, url, &srv, &err);   // REPEATABLE READ + pg_export_snapshot()
 *   json_t *meta = pg_snapshot_metadata(s, &err);   // row counts, extensions, settings
 *   pg_proc dump;
 *   pg_dump_start(&dump, &srv, url, pg_snapshot_id(s), &err);   // pg_dump -Fc -Z0 to a pipe
 *   ... read dump.fd to EOF (e.g. repo_writer_add_fd) ...
 *   pg_proc_finish(&dump, &err);              // exit status, stderr in the message
 *   pg_snapshot_end(s);
 *
 * Restore (staged): pg_restore_database(&srv, url, dump_file, globals_file,
 * staging_name, meta, &opts, &err) creates staging_name and restores into it;
 * pg_verify_counts() compares row counts; pg_block/pg_unblock pause the live
 * database; pg_swap() renames live -> previous and staging -> live.
 *
 * Error messages name host and port ("cannot connect to PostgreSQL at
 * 127.0.0.1:5432: ..."), never the password.
 * Thread-safety: independent calls on different objects are safe.
 */
#ifndef SM_SOURCE_PG_H
#define SM_SOURCE_PG_H

#include "core/buf.h"
#include "core/err.h"

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct pg_server {
    int version_num;   /* server_version_num, e.g. 150018 */
    int major;         /* 15 */
    char version[64];  /* "15.18" */
    char host[256];    /* for messages: host or socket directory */
    char port[16];
    char dbname[128];  /* the database the URL names */
    char user[128];
    int superuser;
    char bindir[256];  /* where the matching pg_dump, pg_dumpall, pg_restore, psql live */
} pg_server;

/* Connects, reads the server version and the role's rights, finds the
 * client programs of the same major version. Fails with SM_E_DB naming
 * host:port when unreachable, SM_E_FORBIDDEN when the role is neither
 * superuser nor has the rights a backup needs, SM_E_NOTFOUND when no
 * matching pg_dump is installed (hint: the Debian package to install). */
int pg_probe(const char *url, pg_server *out, sm_err *err);

/* Finds the directory holding pg_dump, pg_dumpall, pg_restore and psql of
 * PostgreSQL `major` (/usr/lib/postgresql/N/bin, then /usr/pgsql-N/bin) into
 * out (cap bytes). Fails with SM_E_NOTFOUND (hint: apt-get install
 * postgresql-client-N) when none has them all. */
int pg_find_bindir(int major, char *out, size_t cap, sm_err *err);

/* A URL for another database of the same server (same host, port, user,
 * password, options). Caller frees. Never NULL: a postgresql:// URI stays a
 * URI (path replaced, any dbname= parameter dropped); anything else becomes
 * a keyword/value string. */
char *pg_url_with_db(const char *url, const char *dbname);

/* ---- backup ---- */

typedef struct pg_session pg_session;

/* Opens a REPEATABLE READ transaction and exports its snapshot, so that the
 * dump and the metadata see the same point in time. */
int pg_snapshot_begin(pg_session **out, const char *url, const pg_server *srv, sm_err *err);
const char *pg_snapshot_id(const pg_session *s);
/* Metadata of the database in the snapshot (caller decrefs; NULL with err set):
 * {"server_version": "15.18", "database": "postgres", "encoding", "collate", "ctype",
 *  "size_bytes": n,
 *  "row_counts": {"public.profiles": 12, ...} (exact, every ordinary and partitioned
 *                 table's own rows, partitions counted on their own),
 *  "extensions": [{"name","schema","version","owner"}],
 *  "database_settings": ["app.settings.jwt_exp=3600", ...] (ALTER DATABASE ... SET),
 *  "large_objects": n}
 * Table names are quote_ident(schema) "." quote_ident(name). Counted: every
 * ordinary table (count(*) FROM ONLY) of every schema but pg_catalog,
 * information_schema and pg_toast*, partitions on their own; a partitioned
 * parent is listed with 0 (its rows are in its partitions). Not counted:
 * materialized views (a restore refreshes them, so a stale one may differ),
 * foreign tables, temporary tables, and tables that belong to an extension
 * (pg_dump does not dump their rows) unless they are extension configuration
 * tables dumped whole (pg_extension_config_dump without a condition).
 * Extensions are in creation (oid) order, plpgsql included. */
json_t *pg_snapshot_metadata(pg_session *s, sm_err *err);
void pg_snapshot_end(pg_session *s);

/* A child process whose stdout we read. */
typedef struct pg_proc {
    pid_t pid;
    int fd;          /* read end of its stdout; -1 after finish */
    int err_fd;      /* read end of its stderr (collected by finish) */
    char what[64];   /* "pg_dump" ... for messages */
} pg_proc;

/* A pg_proc that runs nothing: pg_proc_abort() on it is a no-op. The
 * *_start functions set this state themselves before anything can fail. */
#define PG_PROC_INIT {-1, -1, -1, {0}}

/* pg_dump -Fc -Z0 of the URL's database in the exported snapshot (NULL: a
 * fresh one), uncompressed so unchanged data deduplicates. */
int pg_dump_start(pg_proc *p, const pg_server *srv, const char *url, const char *snapshot,
                  sm_err *err);
/* pg_dumpall --roles-only: roles with attributes, memberships, password
 * hashes and per-role settings (needs a superuser). */
int pg_globals_start(pg_proc *p, const pg_server *srv, const char *url, sm_err *err);
/* Waits for the process; fails with its exit status and the last lines of
 * its stderr. Closes fd (read it to EOF first: a process whose output is
 * left unread dies of SIGPIPE, reported as such). */
int pg_proc_finish(pg_proc *p, sm_err *err);
/* pg_proc_finish that also appends the process's whole stderr to out. */
int pg_proc_finish_text(pg_proc *p, sm_buf *out, sm_err *err);
/* pg_basebackup of the whole cluster over the replication protocol, as
 * one tar stream on the process's stdout (--format=tar --wal-method=fetch:
 * the WAL that makes it consistent is inside), --verbose: its stderr names
 * the start and end WAL positions. Needs a role with REPLICATION and a
 * pg_hba.conf line allowing replication connections. */
int pg_basebackup_start(pg_proc *p, const pg_server *srv, const char *url, sm_err *err);
/* Runs one statement on the URL's database; *value gets the first column of
 * the first row (NULL when there is none). Caller frees. */
int pg_query_value(const char *url, const char *sql, char **value, sm_err *err);
/* Kills and reaps it (after an error on our side). */
void pg_proc_abort(pg_proc *p);

/* ---- restore ---- */

/* pg_dump -Fc writing to a pipe cannot go back to record where each table's
 * data starts, so pg_restore -j must hunt for every data block (one per
 * row): it works, but -j 2 or 4 was no faster than -j 1 (measured on
 * 200 MB). This fills those offsets into the table of contents of a
 * custom-format file in place (fixed-width fields: the size does not
 * change), making it what pg_dump -f would have written. *patched (may be
 * NULL) gets how many. Returns 0, or 1 (file untouched, logged) for archive
 * versions other than 1.12 to 1.14 (pg_dump 11 to 15), or -1 with
 * SM_E_INVALID / SM_E_CORRUPT / SM_E_IO. */
int pg_dump_fill_offsets(const char *path, int *patched, sm_err *err);

typedef struct pg_restore_opts {
    int jobs;                 /* pg_restore -j (0: 2) */
    const char *work_dir;     /* for temporary files (lists, SQL) */
    void (*progress)(void *ud, const char *phase);
    void *progress_ud;
} pg_restore_opts;

/* Applies a globals file (pg_dumpall --roles-only output) to the server so
 * it can be run on a server where some roles already exist (a fresh
 * Supabase instance): missing roles are created, existing ones get the
 * attributes, passwords, memberships and settings of the file. The role the
 * URL connects as keeps its password, login, superuser flag, connection
 * limit and expiry (the restore and the caller go on connecting with it).
 * Roles the server has and the file does not are left alone, and so are
 * settings a role has on the server only. Needs a superuser. */
int pg_restore_globals(const pg_server *srv, const char *url, const char *globals_file,
                       const pg_restore_opts *o, sm_err *err);

/* The rewrite pg_restore_globals applies (exposed for tests): appends to out
 * the globals SQL with each "CREATE ROLE x;" made conditional, and with
 * NOSUPERUSER, NOLOGIN, PASSWORD, VALID UNTIL and CONNECTION LIMIT dropped
 * from "ALTER ROLE current_user WITH ...". */
int pg_globals_rewrite(const char *sql, size_t len, const char *current_user, sm_buf *out,
                       sm_err *err);

/* Creates database `staging` and restores dump_file (custom format) into
 * it exactly: database-level settings, comment and grants (pg_dump keeps them
 * only for --create), extensions created as their original owners (from
 * meta "extensions"), triggers and event triggers not firing during the load,
 * large objects, sequences. Fails with the first pg_restore error; the
 * staging database is dropped on failure. Needs a superuser, the roles
 * (pg_restore_globals first) and a staging name that does not exist yet
 * (SM_E_EXISTS otherwise, and that database is left alone). The dump's
 * locale must exist on the server (clear SM_E_DB error otherwise). An
 * extension whose version is not installed on the server is created in the
 * server's default version (logged). meta may be NULL or lack "extensions":
 * extensions are then owned by the restoring role. */
int pg_restore_database(const pg_server *srv, const char *url, const char *dump_file,
                        const char *staging, const json_t *meta, const pg_restore_opts *o,
                        sm_err *err);

/* The rename pg_restore_database applies (exposed for tests): appends to out
 * the SQL of pg_restore --create for the database entries, with database
 * `from` renamed to `to` where a database name stands (CREATE/ALTER/COMMENT
 * ON DATABASE, GRANT/REVOKE ... ON DATABASE, ALTER ROLE ... IN DATABASE) and
 * the \connect lines removed (every statement works from the maintenance
 * database). SM_E_CORRUPT when no CREATE DATABASE of `from` is found. */
int pg_sql_rename_database(const char *sql, size_t len, const char *from, const char *to,
                           sm_buf *out, sm_err *err);

/* Compares exact row counts of dbname with meta "row_counts" (and
 * "large_objects" when present): 0 when equal, else SM_E_CORRUPT naming the
 * first table (in name order) that differs, is missing, or has rows and is
 * not in the backup. */
int pg_verify_counts(const pg_server *srv, const char *url, const char *dbname,
                     const json_t *meta, sm_err *err);

/* Stops new connections to dbname and ends existing ones (ALLOW_CONNECTIONS
 * false + pg_terminate_backend), waiting up to 10 s for them to go
 * (SM_E_CONFLICT if some stay; the database stays blocked). pg_unblock sets
 * ALLOW_CONNECTIONS true again. The flag belongs to the database, not the
 * name: after pg_swap the old database (now `previous`) is still blocked and
 * the new live one never was. */
int pg_block(const pg_server *srv, const char *url, const char *dbname, sm_err *err);
int pg_unblock(const pg_server *srv, const char *url, const char *dbname, sm_err *err);

/* Renames live -> previous and staging -> live (connected to a maintenance
 * database, so it works when live is "postgres"). Both renames run in one
 * transaction: on failure neither happened. Both databases must have no
 * connections (SM_E_CONFLICT otherwise); previous must not exist
 * (SM_E_EXISTS). When live does not exist, only staging -> live is done. */
int pg_swap(const pg_server *srv, const char *url, const char *live, const char *staging,
            const char *previous, sm_err *err);

int pg_database_exists(const pg_server *srv, const char *url, const char *dbname, int *exists,
                       sm_err *err);
/* CREATE DATABASE with the server's defaults (template1). */
int pg_create_database(const pg_server *srv, const char *url, const char *dbname, sm_err *err);
/* DROP DATABASE IF EXISTS ... WITH (FORCE). */
int pg_drop_database(const pg_server *srv, const char *url, const char *dbname, sm_err *err);

#endif
