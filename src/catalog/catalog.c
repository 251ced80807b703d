/* The SQLite catalog. */
#include "catalog/catalog.h"

#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct catalog {
    sqlite3 *db;
    char *home;
};

/* Each entry moves the schema from version i to i + 1. Never edit a
 * released entry: add a new one. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE organizations ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    "CREATE TABLE members ("
    "  org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('admin', 'member')),"
    "  PRIMARY KEY (org_id, user_id));"
    "CREATE TABLE projects ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  org_id TEXT REFERENCES organizations(id) ON DELETE SET NULL,"
    "  owner TEXT,"
    "  db_url TEXT NOT NULL,"
    "  storage_dir TEXT NOT NULL,"
    "  config_dir TEXT,"
    "  config_files TEXT NOT NULL DEFAULT '[]',"
    "  pgsodium_key TEXT,"
    "  pause_cmd TEXT,"
    "  resume_cmd TEXT,"
    "  store TEXT,"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE TABLE backups ("
    "  id TEXT PRIMARY KEY,"
    "  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL CHECK (type IN ('FULL', 'DATABASE', 'STORAGE', 'INCREMENTAL')),"
    "  status TEXT NOT NULL CHECK (status IN ('CREATING', 'COMPLETED', 'FAILED', 'INTERRUPTED')),"
    "  kind TEXT NOT NULL DEFAULT 'manual',"
    "  snapshot_id TEXT,"
    "  parent_id TEXT,"
    "  error TEXT,"
    "  created_at TEXT NOT NULL,"
    "  finished_at TEXT,"
    "  expires_at TEXT,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  stored INTEGER NOT NULL DEFAULT 0,"
    "  duration_s REAL NOT NULL DEFAULT 0,"
    "  pid INTEGER,"
    "  host TEXT,"
    "  meta TEXT NOT NULL DEFAULT '{}');"
    "CREATE INDEX backups_by_project ON backups (project_id, created_at);"
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY,"
    "  project_id TEXT REFERENCES projects(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  backup_id TEXT,"
    "  phase TEXT,"
    "  error TEXT,"
    "  progress REAL NOT NULL DEFAULT 0,"
    "  pid INTEGER,"
    "  host TEXT,"
    "  created_at TEXT NOT NULL,"
    "  started_at TEXT,"
    "  finished_at TEXT);"
    "CREATE INDEX jobs_by_project ON jobs (project_id, status);",
    /* 1 -> 2: backup schedules */
    "CREATE TABLE schedules ("
    "  project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,"
    "  doc TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL,"
    "  last_run_at TEXT,"
    "  last_backup_id TEXT,"
    "  last_status TEXT);",
    /* 2 -> 3: the scheduler's state per project, and the history of runs */
    "ALTER TABLE schedules ADD COLUMN state TEXT NOT NULL DEFAULT '{}';"
    "CREATE TABLE schedule_runs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  slot TEXT NOT NULL,"
    "  at TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  backup_id TEXT,"
    "  reason TEXT);"
    "CREATE INDEX schedule_runs_by_project ON schedule_runs (project_id, id);",
    /* 3 -> 4: point-in-time recovery: settings, the WAL archive's index, base backups */
    "CREATE TABLE pitr ("
    "  project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,"
    "  doc TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE TABLE pitr_wal ("
    "  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  timeline INTEGER NOT NULL,"
    "  segno INTEGER NOT NULL,"
    "  snapshot_id TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  archived_at TEXT NOT NULL,"
    "  content TEXT,"
    "  PRIMARY KEY (project_id, name));"
    "CREATE TABLE pitr_bases ("
    "  id TEXT PRIMARY KEY,"
    "  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
    "  doc TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    "CREATE INDEX pitr_bases_by_project ON pitr_bases (project_id, created_at);",
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

static int db_fail(catalog *c, sm_err *err, const char *what)
{
    sm_err_set(err, SM_E_DB, "catalog: cannot %s: %s", what, sqlite3_errmsg(c->db));
    if (sqlite3_errcode(c->db) == SQLITE_BUSY || sqlite3_errcode(c->db) == SQLITE_LOCKED)
        err->code = SM_E_LOCKED;
    if (sqlite3_errcode(c->db) == SQLITE_FULL)
        err->code = SM_E_NOSPC;
    return -1;
}

static int exec(catalog *c, const char *sql, sm_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sm_err_set(err, SM_E_DB, "catalog: %s", msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int prepare(catalog *c, sqlite3_stmt **st, const char *sql, sm_err *err)
{
    if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(c, err, "prepare a statement");
    return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_nonempty(sqlite3_stmt *st, int i, const char *v)
{
    bind_text(st, i, v && *v ? v : NULL);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? sm_xstrdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static void now_iso(char out[32])
{
    sm_time_iso(out, 32, sm_now());
}

int catalog_schema_version(catalog *c)
{
    sqlite3_stmt *st = NULL;
    int v = 0;

    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(catalog *c, sm_err *err)
{
    int v = catalog_schema_version(c);

    if (v > (int)NMIGRATIONS) {
        sm_err_set(err, SM_E_VERSION,
                   "the catalog '%s/catalog.db' has schema version %d, newer than this "
                   "supamanager understands (%d)",
                   c->home, v, (int)NMIGRATIONS);
        return sm_err_hint(err, "Upgrade supamanager.");
    }
    for (; v < (int)NMIGRATIONS; v++) {
        char pragma[64];
        if (exec(c, "BEGIN IMMEDIATE", err) < 0)
            return -1;
        /* another process may have migrated meanwhile */
        if (catalog_schema_version(c) > v) {
            exec(c, "COMMIT", NULL);
            continue;
        }
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        if (exec(c, migrations[v], err) < 0 || exec(c, pragma, err) < 0) {
            exec(c, "ROLLBACK", NULL);
            return sm_err_prefix(err, "cannot upgrade the catalog to version %d", v + 1);
        }
        if (exec(c, "COMMIT", err) < 0)
            return -1;
        sm_log(SM_LOG_INFO, "catalog upgraded to schema version %d", v + 1);
    }
    return 0;
}

/* SQLite's memory statistics take one process-wide mutex on every
 * allocation; with a connection per server thread that lock is where the
 * threads queue. We never read the statistics. */
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int catalog_open(catalog **out, const char *home, sm_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    catalog *c;
    char *path;

    if (sm_mkdir_p(home, 0700, err) < 0) {
        sm_err_hint(err, "Set SUPAMANAGER_HOME to a directory you can write (default "
                         "/var/lib/supamanager).");
        return -1;
    }
    pthread_once(&once, sqlite_setup);
    c = sm_xcalloc(1, sizeof(*c));
    c->home = sm_xstrdup(home);
    path = sm_path_join(home, "catalog.db");
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                          SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        sm_err_set(err, SM_E_DB, "cannot open the catalog '%s': %s", path,
                   c->db ? sqlite3_errmsg(c->db) : "out of memory");
        free(path);
        catalog_close(c);
        return -1;
    }
    free(path);
    sqlite3_busy_timeout(c->db, 10000);
    /* a small page cache: the service keeps one connection per server thread */
    if (exec(c, "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; "
                "PRAGMA cache_size = -512",
             err) < 0 ||
        migrate(c, err) < 0) {
        catalog_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

void catalog_close(catalog *c)
{
    if (!c)
        return;
    sqlite3_close(c->db);
    free(c->home);
    free(c);
}

const char *catalog_home(const catalog *c)
{
    return c->home;
}

/* ---- projects ---- */

int project_id_check(const char *id, sm_err *err)
{
    size_t n = id ? strlen(id) : 0;

    if (n < 3 || n > 40 || id[n - 1] == '-' || id[0] == '-')
        goto bad;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            goto bad;
    return 0;
bad:
    sm_err_set(err, SM_E_INVALID, "invalid project id '%s'", id ? id : "");
    return sm_err_hint(err, "Use 3 to 40 characters: lowercase letters, digits and '-' (not at "
                            "the start or end), like a Supabase project ref ('abc123').");
}

project *project_new(void)
{
    project *p = sm_xcalloc(1, sizeof(*p));
    p->config_files = json_array();
    return p;
}

void project_free(project *p)
{
    if (!p)
        return;
    free(p->id);
    free(p->name);
    free(p->org_id);
    free(p->owner);
    free(p->db_url);
    free(p->storage_dir);
    free(p->config_dir);
    json_decref(p->config_files);
    free(p->pgsodium_key);
    free(p->pause_cmd);
    free(p->resume_cmd);
    free(p->store);
    free(p);
}

/* The URL without its password, for display. */
static char *url_redacted(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at, *colon;

    if (!scheme)
        return sm_xstrdup(url);
    at = strchr(scheme + 3, '@');
    colon = strchr(scheme + 3, ':');
    if (!at || !colon || colon > at)
        return sm_xstrdup(url);
    return sm_xasprintf("%.*s:***%s", (int)(colon - url), url, at);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *project_json(const project *p, int show_secrets)
{
    char *url = show_secrets ? sm_xstrdup(p->db_url) : url_redacted(p->db_url);
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:s,s:s,s:o,s:O,s:o,s:o,s:o,s:o,s:s,s:s}", "id", p->id,
                          "name", p->name, "org_id", str_or_null(p->org_id), "owner",
                          str_or_null(p->owner), "db_url", url, "storage_dir", p->storage_dir,
                          "config_dir", str_or_null(p->config_dir), "config_files",
                          p->config_files, "pgsodium_key", str_or_null(p->pgsodium_key),
                          "pause_cmd", str_or_null(p->pause_cmd), "resume_cmd",
                          str_or_null(p->resume_cmd), "store", str_or_null(p->store),
                          "created_at", p->created_at, "updated_at", p->updated_at);
    free(url);
    return o;
}

char *project_repo_location(const catalog *c, const project *p)
{
    if (p->store && *p->store)
        return sm_xstrdup(p->store);
    return sm_xasprintf("%s/backups/%s", c->home, p->id);
}

#define PROJECT_COLS                                                                               \
    "id, name, org_id, owner, db_url, storage_dir, config_dir, config_files, pgsodium_key, "      \
    "pause_cmd, resume_cmd, store, created_at, updated_at"

static project *project_from_row(sqlite3_stmt *st)
{
    project *p = project_new();
    const unsigned char *cf;

    p->id = col_dup(st, 0);
    p->name = col_dup(st, 1);
    p->org_id = col_dup(st, 2);
    p->owner = col_dup(st, 3);
    p->db_url = col_dup(st, 4);
    p->storage_dir = col_dup(st, 5);
    p->config_dir = col_dup(st, 6);
    cf = sqlite3_column_text(st, 7);
    if (cf) {
        json_t *a = json_loads((const char *)cf, 0, NULL);
        if (json_is_array(a)) {
            json_decref(p->config_files);
            p->config_files = a;
        } else {
            json_decref(a);
        }
    }
    p->pgsodium_key = col_dup(st, 8);
    p->pause_cmd = col_dup(st, 9);
    p->resume_cmd = col_dup(st, 10);
    p->store = col_dup(st, 11);
    col_copy(st, 12, p->created_at, sizeof(p->created_at));
    col_copy(st, 13, p->updated_at, sizeof(p->updated_at));
    return p;
}

static void bind_project(sqlite3_stmt *st, const project *p, const char *created,
                         const char *updated)
{
    char *cf = json_dumps(p->config_files ? p->config_files : json_array(), JSON_COMPACT);
    bind_text(st, 1, p->id);
    bind_text(st, 2, p->name);
    bind_nonempty(st, 3, p->org_id);
    bind_nonempty(st, 4, p->owner);
    bind_text(st, 5, p->db_url);
    bind_text(st, 6, p->storage_dir);
    bind_nonempty(st, 7, p->config_dir);
    bind_text(st, 8, cf ? cf : "[]");
    bind_nonempty(st, 9, p->pgsodium_key);
    bind_nonempty(st, 10, p->pause_cmd);
    bind_nonempty(st, 11, p->resume_cmd);
    bind_nonempty(st, 12, p->store);
    bind_text(st, 13, created);
    bind_text(st, 14, updated);
    free(cf);
}

int catalog_project_add(catalog *c, const project *p, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = -1, r;

    if (project_id_check(p->id, err) < 0)
        return -1;
    now_iso(now);
    if (prepare(c, &st, "INSERT INTO projects (" PROJECT_COLS ") VALUES "
                        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                err) < 0)
        return -1;
    bind_project(st, p, now, now);
    r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT) {
        const char *m = sqlite3_errmsg(c->db);
        if (strstr(m, "FOREIGN KEY")) {
            sm_err_set(err, SM_E_NOTFOUND, "unknown organization '%s'", p->org_id);
            sm_err_hint(err, "Create it first with `supamanager org add %s --name NAME`.",
                        p->org_id);
        } else {
            sm_err_set(err, SM_E_EXISTS, "project '%s' already exists", p->id);
            sm_err_hint(err, "Choose another id, or change it with `supamanager project edit %s`.",
                        p->id);
        }
    } else if (r != SQLITE_DONE) {
        db_fail(c, err, "add the project");
    } else {
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

static int not_found_project(const char *id, sm_err *err)
{
    sm_err_set(err, SM_E_NOTFOUND, "unknown project '%s'", id);
    return sm_err_hint(err, "List the projects with `supamanager project list`.");
}

int catalog_project_get(catalog *c, const char *id, project **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, r;

    if (prepare(c, &st, "SELECT " PROJECT_COLS " FROM projects WHERE id = ?", err) < 0)
        return -1;
    bind_text(st, 1, id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *out = project_from_row(st);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        not_found_project(id, err);
    } else {
        db_fail(c, err, "read the project");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_project_update(catalog *c, const project *p, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = -1, r;

    now_iso(now);
    if (prepare(c, &st, "UPDATE projects SET id = ?1, name = ?2, org_id = ?3, owner = ?4, "
                        "db_url = ?5, storage_dir = ?6, config_dir = ?7, config_files = ?8, "
                        "pgsodium_key = ?9, pause_cmd = ?10, resume_cmd = ?11, store = ?12, "
                        "updated_at = ?14 WHERE id = ?1",
                err) < 0)
        return -1;
    bind_project(st, p, p->created_at, now);
    r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(c->db), "FOREIGN KEY"))
        sm_err_set(err, SM_E_NOTFOUND, "unknown organization '%s'", p->org_id);
    else if (r != SQLITE_DONE)
        db_fail(c, err, "update the project");
    else if (sqlite3_changes(c->db) == 0)
        not_found_project(p->id, err);
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_project_remove(catalog *c, const char *id, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "DELETE FROM projects WHERE id = ?", err) < 0)
        return -1;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "remove the project");
    else if (sqlite3_changes(c->db) == 0)
        not_found_project(id, err);
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_project_list(catalog *c, project ***out, size_t *n, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    project **v = NULL;
    size_t cnt = 0, cap = 0;
    int r;

    if (prepare(c, &st, "SELECT " PROJECT_COLS " FROM projects ORDER BY id", err) < 0)
        return -1;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        SM_GROW(v, cap, cnt + 1);
        v[cnt++] = project_from_row(st);
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        project_list_free(v, cnt);
        return db_fail(c, err, "list projects");
    }
    *out = v;
    *n = cnt;
    return 0;
}

void project_list_free(project **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        project_free(v[i]);
    free(v);
}

/* ---- backups ---- */

backup_rec *backup_rec_new(void)
{
    backup_rec *b = sm_xcalloc(1, sizeof(*b));
    b->meta = json_object();
    return b;
}

void backup_rec_free(backup_rec *b)
{
    if (!b)
        return;
    free(b->id);
    free(b->project_id);
    free(b->type);
    free(b->status);
    free(b->kind);
    free(b->snapshot_id);
    free(b->parent_id);
    free(b->error);
    json_decref(b->meta);
    free(b);
}

json_t *backup_rec_json(const backup_rec *b)
{
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:s,s:o,s:o,s:I,s:I,s:f,s:O}", "id", b->id,
        "project_id", b->project_id, "type", b->type, "status", b->status, "kind",
        b->kind ? b->kind : "manual", "snapshot_id", str_or_null(b->snapshot_id), "parent_id",
        str_or_null(b->parent_id), "error", str_or_null(b->error), "created_at", b->created_at,
        "finished_at", b->finished_at[0] ? json_string(b->finished_at) : json_null(),
        "expires_at", b->expires_at[0] ? json_string(b->expires_at) : json_null(), "size",
        (json_int_t)b->size, "stored", (json_int_t)b->stored, "duration_s", b->duration_s, "meta",
        b->meta ? b->meta : json_object());
    return o;
}

#define BACKUP_COLS                                                                                \
    "id, project_id, type, status, kind, snapshot_id, parent_id, error, created_at, "             \
    "finished_at, expires_at, size, stored, duration_s, pid, host, meta"

static backup_rec *backup_from_row(sqlite3_stmt *st)
{
    backup_rec *b = backup_rec_new();
    const unsigned char *m;

    b->id = col_dup(st, 0);
    b->project_id = col_dup(st, 1);
    b->type = col_dup(st, 2);
    b->status = col_dup(st, 3);
    b->kind = col_dup(st, 4);
    b->snapshot_id = col_dup(st, 5);
    b->parent_id = col_dup(st, 6);
    b->error = col_dup(st, 7);
    col_copy(st, 8, b->created_at, sizeof(b->created_at));
    col_copy(st, 9, b->finished_at, sizeof(b->finished_at));
    col_copy(st, 10, b->expires_at, sizeof(b->expires_at));
    b->size = (uint64_t)sqlite3_column_int64(st, 11);
    b->stored = (uint64_t)sqlite3_column_int64(st, 12);
    b->duration_s = sqlite3_column_double(st, 13);
    b->pid = (pid_t)sqlite3_column_int(st, 14);
    col_copy(st, 15, b->host, sizeof(b->host));
    m = sqlite3_column_text(st, 16);
    if (m) {
        json_t *j = json_loads((const char *)m, 0, NULL);
        if (json_is_object(j)) {
            json_decref(b->meta);
            b->meta = j;
        } else {
            json_decref(j);
        }
    }
    return b;
}

static void bind_backup(sqlite3_stmt *st, const backup_rec *b)
{
    char *meta = json_dumps(b->meta ? b->meta : json_object(), JSON_COMPACT);
    bind_text(st, 1, b->id);
    bind_text(st, 2, b->project_id);
    bind_text(st, 3, b->type);
    bind_text(st, 4, b->status);
    bind_text(st, 5, b->kind ? b->kind : "manual");
    bind_nonempty(st, 6, b->snapshot_id);
    bind_nonempty(st, 7, b->parent_id);
    bind_nonempty(st, 8, b->error);
    bind_text(st, 9, b->created_at);
    bind_nonempty(st, 10, b->finished_at);
    bind_nonempty(st, 11, b->expires_at);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)b->size);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)b->stored);
    sqlite3_bind_double(st, 14, b->duration_s);
    sqlite3_bind_int(st, 15, (int)b->pid);
    bind_nonempty(st, 16, b->host);
    bind_text(st, 17, meta ? meta : "{}");
    free(meta);
}

int catalog_backup_insert(catalog *c, const backup_rec *b, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, r;

    if (prepare(c, &st, "INSERT INTO backups (" BACKUP_COLS ") VALUES "
                        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                err) < 0)
        return -1;
    bind_backup(st, b);
    r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT)
        sm_err_set(err, SM_E_EXISTS, "backup '%s' already exists", b->id);
    else if (r != SQLITE_DONE)
        db_fail(c, err, "record the backup");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_backup_update(catalog *c, const backup_rec *b, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "UPDATE backups SET project_id = ?2, type = ?3, status = ?4, kind = ?5, "
                        "snapshot_id = ?6, parent_id = ?7, error = ?8, created_at = ?9, "
                        "finished_at = ?10, expires_at = ?11, size = ?12, stored = ?13, "
                        "duration_s = ?14, pid = ?15, host = ?16, meta = ?17 WHERE id = ?1",
                err) < 0)
        return -1;
    bind_backup(st, b);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "update the backup");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_backup_get(catalog *c, const char *id, backup_rec **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, r;

    if (prepare(c, &st, "SELECT " BACKUP_COLS " FROM backups WHERE id = ?", err) < 0)
        return -1;
    bind_text(st, 1, id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *out = backup_from_row(st);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        sm_err_set(err, SM_E_NOTFOUND, "unknown backup '%s'", id);
        sm_err_hint(err, "List the backups with `supamanager backup list PROJECT`.");
    } else {
        db_fail(c, err, "read the backup");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_backup_exists(catalog *c, const char *id, int *exists, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r;

    if (prepare(c, &st, "SELECT 1 FROM backups WHERE id = ?", err) < 0)
        return -1;
    bind_text(st, 1, id);
    r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        return db_fail(c, err, "read backups");
    *exists = r == SQLITE_ROW;
    return 0;
}

int catalog_backup_list(catalog *c, const char *project_id, const char *kind, backup_rec ***out,
                        size_t *n, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    backup_rec **v = NULL;
    size_t cnt = 0, cap = 0;
    int r;

    if (prepare(c, &st, "SELECT " BACKUP_COLS " FROM backups WHERE project_id = ?1 AND "
                        "(?2 IS NULL OR kind = ?2) ORDER BY created_at DESC, id DESC",
                err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    bind_text(st, 2, kind);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        SM_GROW(v, cap, cnt + 1);
        v[cnt++] = backup_from_row(st);
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        backup_list_free(v, cnt);
        return db_fail(c, err, "list backups");
    }
    *out = v;
    *n = cnt;
    return 0;
}

int catalog_backup_latest(catalog *c, const char *project_id, const char *status,
                          backup_rec **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r, rc = -1;

    *out = NULL;
    if (prepare(c, &st, "SELECT " BACKUP_COLS " FROM backups WHERE project_id = ?1 AND "
                        "(?2 IS NULL OR status = ?2) ORDER BY created_at DESC, id DESC LIMIT 1",
                err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    bind_text(st, 2, status);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *out = backup_from_row(st);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        rc = 1;
    } else {
        db_fail(c, err, "read the newest backup");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_schedule_runs_interrupt(catalog *c, const char *reason, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "UPDATE schedule_runs SET status = 'INTERRUPTED', reason = ? WHERE status "
                        "= 'STARTED'",
                err) < 0)
        return -1;
    bind_text(st, 1, reason);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "update the schedule runs");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

void backup_list_free(backup_rec **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        backup_rec_free(v[i]);
    free(v);
}

int catalog_backup_delete(catalog *c, const char *id, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "DELETE FROM backups WHERE id = ?", err) < 0)
        return -1;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "delete the backup");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

/* ---- jobs ---- */

void job_rec_free(job_rec *j)
{
    if (!j)
        return;
    free(j->id);
    free(j->project_id);
    free(j->kind);
    free(j->status);
    free(j->backup_id);
    free(j->phase);
    free(j->error);
    free(j);
}

/* Is the process that owns a record gone? Only decidable on this host. */
static int owner_gone(pid_t pid, const char *host)
{
    if (!host || strcmp(host, sm_hostname()) != 0 || pid <= 0)
        return 0;
    return kill(pid, 0) != 0 && errno == ESRCH;
}

int catalog_reap_dead(catalog *c, unsigned *n, sm_err *err)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    char now[32];
    int r;

    *n = 0;
    now_iso(now);
    if (prepare(c, &st, "SELECT id, pid, host, 'job' FROM jobs WHERE status IN ('RUNNING', "
                        "'QUEUED') UNION ALL SELECT id, pid, host, 'backup' FROM backups "
                        "WHERE status = 'CREATING'",
                err) < 0)
        return -1;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        pid_t pid = (pid_t)sqlite3_column_int(st, 1);
        const char *host = (const char *)sqlite3_column_text(st, 2);
        const char *what = (const char *)sqlite3_column_text(st, 3);
        if (!owner_gone(pid, host))
            continue;
        if (prepare(c, &up,
                    !strcmp(what, "job")
                        ? "UPDATE jobs SET status = 'INTERRUPTED', finished_at = ?2, error = "
                          "'the process running it stopped before it finished' WHERE id = ?1"
                        : "UPDATE backups SET status = 'INTERRUPTED', finished_at = ?2, error = "
                          "'the process creating it stopped before it finished' WHERE id = ?1",
                    err) < 0)
            break;
        bind_text(up, 1, id);
        bind_text(up, 2, now);
        if (sqlite3_step(up) == SQLITE_DONE)
            (*n)++;
        sqlite3_finalize(up);
        up = NULL;
        sm_log(SM_LOG_INFO, "%s %s was left running by a dead process: marked INTERRUPTED", what,
               id);
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        return db_fail(c, err, "look for interrupted jobs");
    return 0;
}

/* Fails with SM_E_CONFLICT when a job other than except runs on the
 * project. Call inside a write transaction. */
static int busy_check(catalog *c, const char *project_id, const char *except, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r, rc = -1;

    if (prepare(c, &st, "SELECT id, kind, backup_id, pid, host, started_at FROM jobs WHERE "
                        "project_id = ?1 AND status IN ('RUNNING') AND (?2 IS NULL OR id <> ?2) "
                        "LIMIT 1",
                err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    bind_text(st, 2, except);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        const char *b = (const char *)sqlite3_column_text(st, 2);
        sm_err_set(err, SM_E_CONFLICT,
                   "project '%s' is busy: %s%s%s is running (job %s, pid %d on host '%s', since "
                   "%s)",
                   project_id, sqlite3_column_text(st, 1), b ? " " : "", b ? b : "",
                   sqlite3_column_text(st, 0), sqlite3_column_int(st, 3),
                   sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "?",
                   sqlite3_column_text(st, 5) ? (const char *)sqlite3_column_text(st, 5) : "?");
        sm_err_hint(err, "Wait for it to finish; one operation per project runs at a time.");
    } else if (r != SQLITE_DONE) {
        db_fail(c, err, "read jobs");
    } else {
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_job_claim(catalog *c, const char *project_id, const char *kind,
                      const char *backup_id, char **job_id, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    char *id = NULL;
    unsigned reaped;
    int rc = -1;

    if (catalog_reap_dead(c, &reaped, err) < 0)
        return -1;
    if (exec(c, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    if (busy_check(c, project_id, NULL, err) < 0)
        goto out;
    now_iso(now);
    {
        char *rnd = sm_random_hex(8);
        id = sm_xasprintf("job_%s", rnd);
        free(rnd);
    }
    if (prepare(c, &st, "INSERT INTO jobs (id, project_id, kind, status, backup_id, phase, "
                        "progress, pid, host, created_at, started_at) VALUES "
                        "(?, ?, ?, 'RUNNING', ?, 'starting', 0, ?, ?, ?, ?)",
                err) < 0)
        goto out;
    bind_text(st, 1, id);
    bind_text(st, 2, project_id);
    bind_text(st, 3, kind);
    bind_text(st, 4, backup_id);
    sqlite3_bind_int(st, 5, (int)getpid());
    bind_text(st, 6, sm_hostname());
    bind_text(st, 7, now);
    bind_text(st, 8, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(c, err, "record the job");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    if (rc == 0 && exec(c, "COMMIT", err) < 0)
        rc = -1;
    if (rc < 0) {
        exec(c, "ROLLBACK", NULL);
        free(id);
    } else {
        *job_id = id;
    }
    return rc;
}

int catalog_job_insert(catalog *c, const job_rec *j, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, r;

    if (prepare(c, &st, "INSERT INTO jobs (id, project_id, kind, status, backup_id, phase, error, "
                        "progress, pid, host, created_at, started_at, finished_at) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                err) < 0)
        return -1;
    bind_text(st, 1, j->id);
    bind_nonempty(st, 2, j->project_id);
    bind_text(st, 3, j->kind);
    bind_text(st, 4, j->status);
    bind_nonempty(st, 5, j->backup_id);
    bind_nonempty(st, 6, j->phase);
    bind_nonempty(st, 7, j->error);
    sqlite3_bind_double(st, 8, j->progress);
    sqlite3_bind_int(st, 9, j->pid > 0 ? (int)j->pid : (int)getpid());
    bind_text(st, 10, j->host[0] ? j->host : sm_hostname());
    bind_text(st, 11, j->created_at[0] ? j->created_at : NULL);
    bind_nonempty(st, 12, j->started_at);
    bind_nonempty(st, 13, j->finished_at);
    if (!j->created_at[0]) {
        char now[32];
        now_iso(now);
        bind_text(st, 11, now);
    }
    r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT)
        sm_err_set(err, SM_E_EXISTS, "job '%s' already exists", j->id);
    else if (r != SQLITE_DONE)
        db_fail(c, err, "record the job");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_job_start(catalog *c, const char *job_id, const char *project_id, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    unsigned reaped;
    int rc = -1;

    if (project_id && catalog_reap_dead(c, &reaped, err) < 0)
        return -1;
    if (exec(c, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    if (project_id && busy_check(c, project_id, job_id, err) < 0)
        goto out;
    now_iso(now);
    if (prepare(c, &st, "UPDATE jobs SET status = 'RUNNING', project_id = coalesce(?2, "
                        "project_id), pid = ?3, host = ?4, started_at = coalesce(started_at, ?5) "
                        "WHERE id = ?1 AND (status = 'QUEUED' OR (status = 'RUNNING' AND pid = ?3 "
                        "AND host = ?4))",
                err) < 0)
        goto out;
    bind_text(st, 1, job_id);
    bind_text(st, 2, project_id);
    sqlite3_bind_int(st, 3, (int)getpid());
    bind_text(st, 4, sm_hostname());
    bind_text(st, 5, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(c, err, "start the job");
        goto out;
    }
    if (sqlite3_changes(c->db) == 0) {
        sm_err_set(err, SM_E_NOTFOUND, "job '%s' is no longer queued", job_id);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    if (rc == 0 && exec(c, "COMMIT", err) < 0)
        rc = -1;
    if (rc < 0)
        exec(c, "ROLLBACK", NULL);
    return rc;
}

/* Is pid a live supamanager process of this host other than us? */
static int live_peer(pid_t pid, const char *host)
{
    char path[64], comm[64] = "";
    FILE *f;

    if (!host || strcmp(host, sm_hostname()) != 0 || pid <= 0 || pid == getpid())
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (!fgets(comm, sizeof(comm), f))
        comm[0] = '\0';
    fclose(f);
    return strncmp(comm, "supamanager", 11) == 0;
}

int catalog_interrupt_orphans(catalog *c, const char *reason, unsigned *n, json_t **busy,
                              sm_err *err)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    json_t *live = json_array();
    char now[32];
    int r, rc = -1;

    *n = 0;
    now_iso(now);
    if (prepare(c, &st, "SELECT id, pid, host, 'job', project_id FROM jobs WHERE status IN "
                        "('RUNNING', 'QUEUED') UNION ALL SELECT id, pid, host, 'backup', "
                        "project_id FROM backups WHERE status = 'CREATING'",
                err) < 0)
        goto out;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        pid_t pid = (pid_t)sqlite3_column_int(st, 1);
        const char *host = (const char *)sqlite3_column_text(st, 2);
        const char *what = (const char *)sqlite3_column_text(st, 3);
        const char *proj = (const char *)sqlite3_column_text(st, 4);
        if (live_peer(pid, host)) {
            if (proj)
                json_array_append_new(live, json_string(proj));
            continue;
        }
        if (prepare(c, &up,
                    !strcmp(what, "job")
                        ? "UPDATE jobs SET status = 'INTERRUPTED', finished_at = ?2, error = ?3 "
                          "WHERE id = ?1"
                        : "UPDATE backups SET status = 'INTERRUPTED', finished_at = ?2, error = "
                          "?3 WHERE id = ?1",
                    err) < 0)
            goto out;
        bind_text(up, 1, id);
        bind_text(up, 2, now);
        bind_text(up, 3, reason);
        if (sqlite3_step(up) == SQLITE_DONE)
            (*n)++;
        sqlite3_finalize(up);
        up = NULL;
        sm_log(SM_LOG_INFO, "%s %s was left unfinished by a previous service: marked INTERRUPTED",
               what, id);
    }
    if (r != SQLITE_DONE) {
        db_fail(c, err, "look for interrupted jobs");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    if (rc == 0 && busy) {
        *busy = live;
        live = NULL;
    }
    json_decref(live);
    return rc;
}

int catalog_job_progress(catalog *c, const char *job_id, double progress, const char *phase,
                         sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "UPDATE jobs SET progress = ?2, phase = coalesce(?3, phase) WHERE id = ?1",
                err) < 0)
        return -1;
    bind_text(st, 1, job_id);
    sqlite3_bind_double(st, 2, progress);
    bind_text(st, 3, phase);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "update the job");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_job_set_backup(catalog *c, const char *job_id, const char *backup_id, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "UPDATE jobs SET backup_id = ?2 WHERE id = ?1 AND backup_id IS NULL",
                err) < 0)
        return -1;
    bind_text(st, 1, job_id);
    bind_text(st, 2, backup_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "update the job");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_job_finish(catalog *c, const char *job_id, const char *status, const char *error,
                       sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = -1;

    now_iso(now);
    if (prepare(c, &st, "UPDATE jobs SET status = ?2, error = ?3, finished_at = ?4, progress = "
                        "CASE WHEN ?2 = 'COMPLETED' THEN 100 ELSE progress END WHERE id = ?1",
                err) < 0)
        return -1;
    bind_text(st, 1, job_id);
    bind_text(st, 2, status);
    bind_nonempty(st, 3, error);
    bind_text(st, 4, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "finish the job");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_job_get(catalog *c, const char *job_id, job_rec **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, r;

    if (prepare(c, &st, "SELECT id, project_id, kind, status, backup_id, phase, error, progress, "
                        "pid, host, created_at, started_at, finished_at FROM jobs WHERE id = ?",
                err) < 0)
        return -1;
    bind_text(st, 1, job_id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        job_rec *j = sm_xcalloc(1, sizeof(*j));
        j->id = col_dup(st, 0);
        j->project_id = col_dup(st, 1);
        j->kind = col_dup(st, 2);
        j->status = col_dup(st, 3);
        j->backup_id = col_dup(st, 4);
        j->phase = col_dup(st, 5);
        j->error = col_dup(st, 6);
        j->progress = sqlite3_column_double(st, 7);
        j->pid = (pid_t)sqlite3_column_int(st, 8);
        col_copy(st, 9, j->host, sizeof(j->host));
        col_copy(st, 10, j->created_at, sizeof(j->created_at));
        col_copy(st, 11, j->started_at, sizeof(j->started_at));
        col_copy(st, 12, j->finished_at, sizeof(j->finished_at));
        *out = j;
        rc = 0;
    } else if (r == SQLITE_DONE) {
        sm_err_set(err, SM_E_NOTFOUND, "unknown job '%s'", job_id);
    } else {
        db_fail(c, err, "read the job");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- schedules ---- */

int catalog_schedule_get(catalog *c, const char *project_id, json_t **doc, json_t **last,
                         sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r, rc = -1;

    *doc = NULL;
    if (last)
        *last = NULL;
    if (prepare(c, &st, "SELECT doc, last_run_at, last_backup_id, last_status, updated_at FROM "
                        "schedules WHERE project_id = ?",
                err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *doc = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        if (last)
            *last = json_pack("{s:o,s:o,s:o,s:o}", "last_run_at",
                              sqlite3_column_text(st, 1)
                                  ? json_string((const char *)sqlite3_column_text(st, 1))
                                  : json_null(),
                              "last_backup_id",
                              sqlite3_column_text(st, 2)
                                  ? json_string((const char *)sqlite3_column_text(st, 2))
                                  : json_null(),
                              "last_status",
                              sqlite3_column_text(st, 3)
                                  ? json_string((const char *)sqlite3_column_text(st, 3))
                                  : json_null(),
                              "updated_at",
                              json_string((const char *)sqlite3_column_text(st, 4)));
        rc = 0;
    } else if (r == SQLITE_DONE) {
        rc = 1;
    } else {
        db_fail(c, err, "read the schedule");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_schedule_put(catalog *c, const char *project_id, const json_t *doc, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = -1;

    now_iso(now);
    if (prepare(c, &st, "INSERT INTO schedules (project_id, doc, updated_at) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT (project_id) DO UPDATE SET doc = excluded.doc, updated_at = "
                        "excluded.updated_at",
                err) < 0) {
        free(text);
        return -1;
    }
    bind_text(st, 1, project_id);
    bind_text(st, 2, text);
    bind_text(st, 3, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "save the schedule");
    else
        rc = 0;
    sqlite3_finalize(st);
    free(text);
    return rc;
}

int catalog_schedule_ran(catalog *c, const char *project_id, const char *at, const char *backup_id,
                         const char *status, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "UPDATE schedules SET last_run_at = ?2, last_backup_id = ?3, last_status "
                        "= ?4 WHERE project_id = ?1",
                err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    bind_text(st, 2, at);
    bind_text(st, 3, backup_id);
    bind_text(st, 4, status);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "update the schedule");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

static json_t *col_json_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? json_string((const char *)t) : json_null();
}

int catalog_schedule_state_get(catalog *c, const char *project_id, json_t **state, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r, rc = -1;

    *state = NULL;
    if (prepare(c, &st, "SELECT state FROM schedules WHERE project_id = ?", err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *state = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        rc = 0;
    } else {
        db_fail(c, err, "read the scheduler state");
    }
    sqlite3_finalize(st);
    if (rc == 0 && !json_is_object(*state)) {
        json_decref(*state);
        *state = json_object();
    }
    return rc;
}

int catalog_schedule_state_put(catalog *c, const char *project_id, const json_t *state,
                               sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char *text = json_dumps(state, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = -1;

    if (prepare(c, &st, "UPDATE schedules SET state = ?2 WHERE project_id = ?1", err) == 0) {
        bind_text(st, 1, project_id);
        bind_text(st, 2, text);
        if (sqlite3_step(st) != SQLITE_DONE)
            db_fail(c, err, "save the scheduler state");
        else
            rc = 0;
        sqlite3_finalize(st);
    }
    free(text);
    return rc;
}

int catalog_schedule_run_add(catalog *c, const char *project_id, const char *slot,
                             const char *status, const char *backup_id, const char *reason,
                             sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = -1;

    now_iso(now);
    if (prepare(c, &st, "INSERT INTO schedule_runs (project_id, slot, at, status, backup_id, "
                        "reason) VALUES (?, ?, ?, ?, ?, ?)",
                err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    bind_text(st, 2, slot);
    bind_text(st, 3, now);
    bind_text(st, 4, status);
    bind_text(st, 5, backup_id);
    bind_text(st, 6, reason);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "record a schedule run");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_schedule_run_finish(catalog *c, const char *backup_id, const char *status,
                                const char *reason, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "UPDATE schedule_runs SET status = ?2, reason = COALESCE(?3, reason) WHERE "
                        "backup_id = ?1",
                err) < 0)
        return -1;
    bind_text(st, 1, backup_id);
    bind_text(st, 2, status);
    bind_text(st, 3, reason);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "record a schedule run");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_schedule_runs(catalog *c, const char *project_id, int limit, json_t **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r;

    *out = json_array();
    if (prepare(c, &st, "SELECT slot, at, status, backup_id, reason FROM schedule_runs WHERE "
                        "project_id = ? ORDER BY id DESC LIMIT ?",
                err) < 0)
        goto fail;
    bind_text(st, 1, project_id);
    sqlite3_bind_int(st, 2, limit);
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(*out, json_pack("{s:o,s:o,s:o,s:o,s:o}", "slot", col_json_text(st, 0),
                                              "at", col_json_text(st, 1), "status",
                                              col_json_text(st, 2), "backup_id",
                                              col_json_text(st, 3), "reason",
                                              col_json_text(st, 4)));
    if (r != SQLITE_DONE) {
        db_fail(c, err, "read the schedule runs");
        goto fail;
    }
    sqlite3_finalize(st);
    return 0;
fail:
    sqlite3_finalize(st);
    json_decref(*out);
    *out = NULL;
    return -1;
}

int catalog_schedule_all(catalog *c, json_t **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r;

    *out = json_array();
    if (prepare(c, &st, "SELECT project_id, doc, updated_at, state FROM schedules ORDER BY "
                        "project_id",
                err) < 0)
        goto fail;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        json_t *state = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
        if (!json_is_object(doc)) {
            json_decref(doc);
            doc = json_object();
        }
        if (!json_is_object(state)) {
            json_decref(state);
            state = json_object();
        }
        json_array_append_new(*out, json_pack("{s:o,s:o,s:o,s:o}", "project_id",
                                              col_json_text(st, 0), "doc", doc, "updated_at",
                                              col_json_text(st, 2), "state", state));
    }
    if (r != SQLITE_DONE) {
        db_fail(c, err, "read the schedules");
        goto fail;
    }
    sqlite3_finalize(st);
    return 0;
fail:
    sqlite3_finalize(st);
    json_decref(*out);
    *out = NULL;
    return -1;
}

/* ---- point-in-time recovery ---- */

int catalog_pitr_get(catalog *c, const char *project_id, json_t **doc, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r, rc = -1;

    *doc = NULL;
    if (prepare(c, &st, "SELECT doc FROM pitr WHERE project_id = ?", err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *doc = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        rc = *doc ? 0 : db_fail(c, err, "read the point-in-time recovery settings");
    } else if (r == SQLITE_DONE) {
        rc = 1;
    } else {
        db_fail(c, err, "read the point-in-time recovery settings");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_pitr_put(catalog *c, const char *project_id, const json_t *doc, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32], *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = -1;

    now_iso(now);
    if (prepare(c, &st, "INSERT INTO pitr (project_id, doc, updated_at) VALUES (?1, ?2, ?3) ON "
                        "CONFLICT (project_id) DO UPDATE SET doc = excluded.doc, updated_at = "
                        "excluded.updated_at",
                err) == 0) {
        bind_text(st, 1, project_id);
        bind_text(st, 2, text);
        bind_text(st, 3, now);
        if (sqlite3_step(st) != SQLITE_DONE)
            db_fail(c, err, "save the point-in-time recovery settings");
        else
            rc = 0;
        sqlite3_finalize(st);
    }
    free(text);
    return rc;
}

int catalog_pitr_delete(catalog *c, const char *project_id, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "DELETE FROM pitr WHERE project_id = ?", err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "remove the point-in-time recovery settings");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_pitr_all(catalog *c, json_t **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r;

    *out = json_array();
    if (prepare(c, &st, "SELECT project_id, doc FROM pitr ORDER BY project_id", err) < 0)
        goto fail;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        if (doc)
            json_array_append_new(*out, json_pack("{s:s,s:o}", "project_id",
                                                  (const char *)sqlite3_column_text(st, 0), "doc",
                                                  doc));
    }
    if (r != SQLITE_DONE) {
        db_fail(c, err, "read the point-in-time recovery settings");
        goto fail;
    }
    sqlite3_finalize(st);
    return 0;
fail:
    sqlite3_finalize(st);
    json_decref(*out);
    *out = NULL;
    return -1;
}

int catalog_wal_add(catalog *c, const char *project_id, const json_t *w, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "INSERT OR REPLACE INTO pitr_wal (project_id, name, timeline, segno, "
                        "snapshot_id, sha256, size, archived_at, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    bind_text(st, 2, json_string_value(json_object_get(w, "name")));
    sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(w, "timeline")));
    sqlite3_bind_int64(st, 4, json_integer_value(json_object_get(w, "segno")));
    bind_text(st, 5, json_string_value(json_object_get(w, "snapshot_id")));
    bind_text(st, 6, json_string_value(json_object_get(w, "sha256")));
    sqlite3_bind_int64(st, 7, json_integer_value(json_object_get(w, "size")));
    bind_text(st, 8, json_string_value(json_object_get(w, "archived_at")));
    bind_text(st, 9, json_string_value(json_object_get(w, "content")));
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "record a WAL file");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_wal_list(catalog *c, const char *project_id, json_t **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r;

    *out = json_array();
    if (prepare(c, &st, "SELECT name, timeline, segno, snapshot_id, sha256, size, archived_at, "
                        "content FROM pitr_wal WHERE project_id = ? ORDER BY segno, timeline, name",
                err) < 0)
        goto fail;
    bind_text(st, 1, project_id);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *w = json_pack("{s:s,s:I,s:I,s:s,s:s,s:I,s:s}", "name", sqlite3_column_text(st, 0),
                              "timeline", (json_int_t)sqlite3_column_int64(st, 1), "segno",
                              (json_int_t)sqlite3_column_int64(st, 2), "snapshot_id",
                              sqlite3_column_text(st, 3), "sha256", sqlite3_column_text(st, 4),
                              "size", (json_int_t)sqlite3_column_int64(st, 5), "archived_at",
                              sqlite3_column_text(st, 6));
        if (sqlite3_column_type(st, 7) == SQLITE_TEXT)
            json_object_set_new(w, "content",
                                json_string((const char *)sqlite3_column_text(st, 7)));
        json_array_append_new(*out, w);
    }
    if (r != SQLITE_DONE) {
        db_fail(c, err, "list the WAL archive");
        goto fail;
    }
    sqlite3_finalize(st);
    return 0;
fail:
    sqlite3_finalize(st);
    json_decref(*out);
    *out = NULL;
    return -1;
}

int catalog_wal_delete(catalog *c, const char *project_id, const char *name, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "DELETE FROM pitr_wal WHERE project_id = ? AND name = ?", err) < 0)
        return -1;
    bind_text(st, 1, project_id);
    bind_text(st, 2, name);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "forget a WAL file");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_base_put(catalog *c, const char *id, const char *project_id, const json_t *doc,
                     sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32], *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = -1;

    now_iso(now);
    if (prepare(c, &st, "INSERT INTO pitr_bases (id, project_id, doc, created_at) VALUES (?1, ?2, "
                        "?3, ?4) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                err) == 0) {
        bind_text(st, 1, id);
        bind_text(st, 2, project_id);
        bind_text(st, 3, text);
        bind_text(st, 4, now);
        if (sqlite3_step(st) != SQLITE_DONE)
            db_fail(c, err, "record a base backup");
        else
            rc = 0;
        sqlite3_finalize(st);
    }
    free(text);
    return rc;
}

int catalog_base_list(catalog *c, const char *project_id, json_t **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r;

    *out = json_array();
    if (prepare(c, &st, "SELECT id, doc FROM pitr_bases WHERE project_id = ? ORDER BY created_at, "
                        "id",
                err) < 0)
        goto fail;
    bind_text(st, 1, project_id);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
        if (!json_is_object(doc)) {
            json_decref(doc);
            continue;
        }
        json_object_set_new(doc, "id", json_string((const char *)sqlite3_column_text(st, 0)));
        json_array_append_new(*out, doc);
    }
    if (r != SQLITE_DONE) {
        db_fail(c, err, "list the base backups");
        goto fail;
    }
    sqlite3_finalize(st);
    return 0;
fail:
    sqlite3_finalize(st);
    json_decref(*out);
    *out = NULL;
    return -1;
}

int catalog_base_delete(catalog *c, const char *id, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (prepare(c, &st, "DELETE FROM pitr_bases WHERE id = ?", err) < 0)
        return -1;
    bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        db_fail(c, err, "forget a base backup");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

/* ---- organisations ---- */

int catalog_org_add(catalog *c, const char *id, const char *name, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = -1, r;

    if (project_id_check(id, err) < 0) {
        sm_err_set(err, SM_E_INVALID, "invalid organization id '%s'", id);
        return sm_err_hint(err, "Use 3 to 40 characters: lowercase letters, digits and '-'.");
    }
    now_iso(now);
    if (prepare(c, &st, "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)",
                err) < 0)
        return -1;
    bind_text(st, 1, id);
    bind_text(st, 2, name);
    bind_text(st, 3, now);
    r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT)
        sm_err_set(err, SM_E_EXISTS, "organization '%s' already exists", id);
    else if (r != SQLITE_DONE)
        db_fail(c, err, "add the organization");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_org_list(catalog *c, json_t **out, sm_err *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int r;

    if (prepare(c, &st, "SELECT o.id, o.name, o.created_at, (SELECT json_group_array("
                        "json_object('user_id', user_id, 'role', role)) FROM members m WHERE "
                        "m.org_id = o.id) FROM organizations o ORDER BY o.id",
                err) < 0) {
        json_decref(arr);
        return -1;
    }
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *members = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:o}", "id", sqlite3_column_text(st, 0),
                                             "name", sqlite3_column_text(st, 1), "created_at",
                                             sqlite3_column_text(st, 2), "members",
                                             members ? members : json_array()));
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) {
        json_decref(arr);
        return db_fail(c, err, "list organizations");
    }
    *out = arr;
    return 0;
}

int catalog_member_add(catalog *c, const char *org_id, const char *user_id, const char *role,
                       sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, r;

    if (!role || (strcmp(role, "admin") && strcmp(role, "member")))
        return sm_err_set(err, SM_E_INVALID, "invalid role '%s': use admin or member",
                          role ? role : "");
    if (!user_id || !*user_id)
        return sm_err_set(err, SM_E_INVALID, "empty user id");
    if (prepare(c, &st, "INSERT INTO members (org_id, user_id, role) VALUES (?, ?, ?) "
                        "ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
                err) < 0)
        return -1;
    bind_text(st, 1, org_id);
    bind_text(st, 2, user_id);
    bind_text(st, 3, role);
    r = sqlite3_step(st);
    if (r == SQLITE_CONSTRAINT)
        sm_err_set(err, SM_E_NOTFOUND, "unknown organization '%s'", org_id);
    else if (r != SQLITE_DONE)
        db_fail(c, err, "add the member");
    else
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

int catalog_member_role(catalog *c, const char *org_id, const char *user_id, const char **role,
                        sm_err *err)
{
    sqlite3_stmt *st = NULL;
    int r;

    *role = NULL;
    if (!org_id || !user_id)
        return 0;
    if (prepare(c, &st, "SELECT role FROM members WHERE org_id = ? AND user_id = ?", err) < 0)
        return -1;
    bind_text(st, 1, org_id);
    bind_text(st, 2, user_id);
    r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *role = !strcmp((const char *)sqlite3_column_text(st, 0), "admin") ? "admin" : "member";
    sqlite3_finalize(st);
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        return db_fail(c, err, "read members");
    return 0;
}
