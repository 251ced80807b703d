/* Project operations shared by the CLI and the API. */
#include "job/ops.h"
#include "job/ops_intern.h"

#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "source/pg.h"
#include "store/s3.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

void ops_ctx_init(ops_ctx *o, catalog *cat, const char *secret)
{
    const char *e = getenv("SUPAMANAGER_SAFETY_DAYS");
    uint64_t v;

    memset(o, 0, sizeof(*o));
    o->cat = cat;
    o->secret = secret;
    o->safety_days = 7;
    if (e && sm_parse_u64(e, 3650, &v) == 0 && v > 0)
        o->safety_days = (int)v;
}

/* ---- small helpers ---- */

static void emit(ops_ctx *o, const char *phase, double pct, uint64_t done, uint64_t total,
                 double rate, double eta)
{
    ops_event e;

    if (o->job_id && !o->progress_by_event)
        catalog_job_progress(o->cat, o->job_id, pct, phase, NULL);
    if (!o->event)
        return;
    memset(&e, 0, sizeof(e));
    e.job_id = o->job_id;
    e.phase = phase;
    e.progress = pct;
    e.bytes_done = done;
    e.bytes_total = total;
    e.rate = rate;
    e.eta_s = eta;
    o->event(o->event_ud, &e);
}

/* Adapts the engine's byte progress to ops events: pct of bytes_total,
 * capped below 100 until the operation has really finished. */
typedef struct prog {
    ops_ctx *o;
    const char *phase;
    uint64_t base;  /* bytes done before this part */
    uint64_t total; /* expected bytes of the whole operation */
    double t0;
    double last_db;
} prog;

static void prog_cb(void *ud, const repo_progress *rp)
{
    prog *p = ud;
    uint64_t done = p->base + rp->bytes_done;
    double el = sm_mono() - p->t0, rate = el > 0 ? (double)done / el : 0, pct = 0, eta = -1;

    if (p->total > 0) {
        pct = 100.0 * (double)done / (double)p->total;
        if (pct > 99)
            pct = 99;
        if (rate > 0 && p->total > done)
            eta = (double)(p->total - done) / rate;
    }
    /* the catalog is updated at most twice a second */
    if (sm_mono() - p->last_db < 0.5 && p->o->event == NULL)
        return;
    p->last_db = sm_mono();
    emit(p->o, p->phase, pct, done, p->total, rate, eta);
}

static uint64_t dir_bytes(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    uint64_t sum = 0;

    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        struct stat sb;
        char *sub;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        sub = sm_path_join(path, de->d_name);
        if (lstat(sub, &sb) == 0) {
            if (S_ISDIR(sb.st_mode))
                sum += dir_bytes(sub);
            else if (S_ISREG(sb.st_mode))
                sum += (uint64_t)sb.st_size;
        }
        free(sub);
    }
    closedir(d);
    return sum;
}

/* Runs a user's pause/resume command through /bin/sh; its stderr (last
 * 400 bytes) goes into the error. */
static int run_command(const char *cmd, const char *what, sm_err *err)
{
    int pipefd[2], status = 0;
    pid_t pid;
    char buf[4096];
    size_t len = 0;

    if (pipe(pipefd) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot run the %s command", what);
    pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return sm_err_sys(err, SM_E_IO, "cannot run the %s command", what);
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, STDIN_FILENO);
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    /* until the command exits, not until EOF: a command that starts a
     * daemon (a database server) leaves it holding the pipe */
    for (int exited = 0, eof = 0; !eof;) {
        struct pollfd pf = {pipefd[0], POLLIN, 0};
        ssize_t r;
        if (!exited) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            exited = w == pid || (w < 0 && errno != EINTR);
        }
        if (poll(&pf, 1, exited ? 0 : 100) <= 0) {
            if (exited)
                break;
            continue;
        }
        r = read(pipefd[0], buf + len, sizeof(buf) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            eof = 1;
            continue;
        }
        len += (size_t)r;
        if (len > sizeof(buf) - 512) { /* keep the tail */
            memmove(buf, buf + len - 400, 400);
            len = 400;
        }
    }
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    buf[len] = '\0';
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    sm_err_set(err, SM_E_EXTERNAL, "the %s command failed (%s %d)%s%s", what,
               WIFEXITED(status) ? "exit status" : "signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), len ? ": " : "",
               len ? buf : "");
    return -1;
}

static int open_repo_at(ops_ctx *o, const char *loc, int create, store **st, repo **r,
                        sm_err *err)
{
    *st = NULL;
    *r = NULL;
    if (store_open(st, loc, err) < 0)
        return -1;
    if (create) {
        uint64_t size;
        int present = store_stat(*st, "config", &size, err);
        if (present < 0)
            goto fail;
        if (present == 1 && repo_init(*st, o->secret, NULL, err) < 0)
            goto fail;
    }
    if (repo_open(r, *st, o->secret, err) < 0)
        goto fail;
    return 0;
fail:
    store_free(*st);
    *st = NULL;
    return -1;
}

static int open_project_repo(ops_ctx *o, const project *p, int create, store **st, repo **r,
                             sm_err *err)
{
    char *loc = project_repo_location(o->cat, p);
    int rc = open_repo_at(o, loc, create, st, r, err);
    free(loc);
    return rc;
}

static void close_repo(store *st, repo *r)
{
    repo_close(r);
    store_free(st);
}

int ops_type_parse(const char *in, const char **out, sm_err *err)
{
    static const char *types[] = {"FULL", "DATABASE", "STORAGE", "INCREMENTAL"};

    for (size_t i = 0; in && i < 4; i++) {
        if (!strcasecmp(in, types[i])) {
            *out = types[i];
            return 0;
        }
    }
    sm_err_set(err, SM_E_INVALID, "unknown backup type '%s'", in ? in : "");
    return sm_err_hint(err, "Use full, database, storage or incremental.");
}

int ops_type_parts(const char *type, int *db, int *storage, int *config)
{
    *db = !strcmp(type, "FULL") || !strcmp(type, "DATABASE") || !strcmp(type, "INCREMENTAL");
    *storage = !strcmp(type, "FULL") || !strcmp(type, "STORAGE") || !strcmp(type, "INCREMENTAL");
    *config = !strcmp(type, "FULL") || !strcmp(type, "INCREMENTAL");
    return 0;
}

/* backup_<project>_<YYYYMMDD>_<HHMMSS>, with _2, _3 ... when taken. */
static char *new_backup_id(catalog *c, const char *project_id, time_t t, sm_err *err)
{
    struct tm tm;
    char stamp[32];
    char *id;
    int exists = 0;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
    id = sm_xasprintf("backup_%s_%s", project_id, stamp);
    for (int n = 2; n < 10000; n++) {
        if (catalog_backup_exists(c, id, &exists, err) < 0) {
            free(id);
            return NULL;
        }
        if (!exists)
            return id;
        free(id);
        id = sm_xasprintf("backup_%s_%s_%d", project_id, stamp, n);
    }
    free(id);
    sm_err_set(err, SM_E_INTERNAL, "cannot find a free backup id");
    return NULL;
}

/* ---- files ---- */

static int copy_xattrs(int from, int to, const char *what, sm_err *err)
{
    char list[65536], val[65536];
    ssize_t len = flistxattr(from, list, sizeof(list));

    if (len < 0)
        return errno == ENOTSUP ? 0 : sm_err_sys(err, SM_E_IO, "cannot list xattrs of '%s'", what);
    for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
        ssize_t vl = fgetxattr(from, list + off, val, sizeof(val));
        if (vl < 0)
            continue;
        if (fsetxattr(to, list + off, val, (size_t)vl, 0) != 0 && !strncmp(list + off, "user.", 5))
            return sm_err_sys(err, SM_E_IO, "cannot copy xattr '%s' of '%s'", list + off, what);
    }
    return 0;
}

/* Copies a regular file with its mode, times, owner (as root) and xattrs. */
static int copy_file(const char *src, const char *dst, sm_err *err)
{
    int in = -1, out = -1, rc = -1;
    struct stat sb;
    char buf[65536];
    struct timespec ts[2];

    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO, "cannot open '%s'", src);
        goto out;
    }
    if (fstat(in, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        sm_err_set(err, SM_E_INVALID, "'%s' is not a regular file", src);
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", dst);
        goto out;
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            sm_err_sys(err, SM_E_IO, "cannot read '%s'", src);
            goto out;
        }
        if (r == 0)
            break;
        if (sm_write_all(out, buf, (size_t)r, dst, err) < 0)
            goto out;
    }
    if (copy_xattrs(in, out, src, err) < 0)
        goto out;
    if (geteuid() == 0 && fchown(out, sb.st_uid, sb.st_gid) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", dst);
        goto out;
    }
    if (fchmod(out, sb.st_mode & 07777) != 0 || fsync(out) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot finish '%s'", dst);
        goto out;
    }
    ts[0] = sb.st_atim;
    ts[1] = sb.st_mtim;
    futimens(out, ts);
    rc = 0;
out:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0 && rc == 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot close '%s'", dst);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The config files of a project as a list {name, path}: the listed files and
 * the pgsodium root key. Names are the files' base names and must differ. */
static json_t *config_file_list(const project *p, sm_err *err)
{
    json_t *list = json_array(), *f;
    size_t i;

    json_array_foreach(p->config_files, i, f)
    {
        if (json_is_string(f))
            json_array_append_new(list, json_pack("{s:s,s:s}", "name",
                                                  base_name(json_string_value(f)), "path",
                                                  json_string_value(f)));
    }
    if (p->pgsodium_key && *p->pgsodium_key)
        json_array_append_new(list, json_pack("{s:s,s:s}", "name", base_name(p->pgsodium_key),
                                              "path", p->pgsodium_key));
    for (i = 0; i < json_array_size(list); i++) {
        for (size_t k = i + 1; k < json_array_size(list); k++) {
            const char *a = json_string_value(json_object_get(json_array_get(list, i), "name"));
            const char *b = json_string_value(json_object_get(json_array_get(list, k), "name"));
            if (!strcmp(a, b)) {
                sm_err_set(err, SM_E_INVALID, "config files '%s' and '%s' have the same name",
                           json_string_value(json_object_get(json_array_get(list, i), "path")),
                           json_string_value(json_object_get(json_array_get(list, k), "path")));
                json_decref(list);
                return NULL;
            }
        }
    }
    return list;
}

/* Copies the config files into dir; with lenient, missing ones are skipped. */
static int stage_config_files(const json_t *list, const char *dir, int lenient, sm_err *err)
{
    json_t *f;
    size_t i;

    json_array_foreach(list, i, f)
    {
        const char *path = json_string_value(json_object_get(f, "path"));
        char *dst = sm_path_join(dir, json_string_value(json_object_get(f, "name")));
        int rc;
        if (lenient && !sm_exists(path)) {
            sm_log(SM_LOG_WARN, "config file '%s' is missing; the safety backup goes without it",
                   path);
            free(dst);
            continue;
        }
        rc = copy_file(path, dst, err);
        free(dst);
        if (rc < 0)
            return sm_err_prefix(err, "config file");
    }
    return 0;
}

static char *tmp_dir(ops_ctx *o, const char *prefix, sm_err *err)
{
    char *base = sm_path_join(catalog_home(o->cat), "tmp");
    char *d = NULL;

    if (sm_mkdir_p(base, 0700, err) == 0)
        d = sm_mkdtemp(base, prefix, err);
    free(base);
    return d;
}

/* ---- projects ---- */

static int check_dir(const char *path, const char *what, sm_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        sm_err_sys(err, SM_E_NOTFOUND, "%s '%s' is missing", what, path);
        return sm_err_hint(err, "Check the path; it must exist before backups can run.");
    }
    if (!S_ISDIR(sb.st_mode))
        return sm_err_set(err, SM_E_INVALID, "%s '%s' is not a directory", what, path);
    return 0;
}

/* The identity of a repository location: "dir:/a/b/" for a directory (the
 * path with ".", ".." and repeated '/' folded), "s3:BUCKET/PREFIX/" for S3;
 * so that one location inside another is a string prefix of it. */
static char *location_key(const char *loc, sm_err *err)
{
    sm_buf b = SM_BUF_INIT;
    const char *c = loc;

    if (!strncmp(loc, "s3://", 5)) {
        char *k = NULL, *out;
        int host_files;
        if (s3_location_key(loc, &k, &host_files, err) < 0)
            return NULL;
        out = sm_xasprintf("s3:%s", k);
        free(k);
        return out;
    }
    sm_buf_puts(&b, "dir:/");
    while (*c) {
        size_t n;
        while (*c == '/')
            c++;
        n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            /* up one: drop the last "name/" */
            if (b.len > 5)
                b.len--;
            while (b.len > 5 && b.data[b.len - 1] != '/')
                b.len--;
        } else if (n && !(n == 1 && c[0] == '.')) {
            sm_buf_put(&b, c, n);
            sm_buf_putc(&b, '/');
        }
        c += n;
    }
    {
        char *k = sm_xstrndup(sm_buf_str(&b), b.len);
        sm_buf_release(&b);
        return k;
    }
}

int ops_store_conflict(ops_ctx *o, const project *p, sm_err *err)
{
    project **v = NULL;
    size_t n = 0;
    char *loc = project_repo_location(o->cat, p), *mine = location_key(loc, err);
    int rc = -1;

    if (!mine)
        goto out;
    if (catalog_project_list(o->cat, &v, &n, err) < 0)
        goto out;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *oloc, *theirs;
        sm_err ignore = SM_ERR_INIT;
        if (!strcmp(v[i]->id, p->id))
            continue;
        oloc = project_repo_location(o->cat, v[i]);
        theirs = location_key(oloc, &ignore);
        if (theirs && (!strncmp(mine, theirs, strlen(theirs)) ||
                       !strncmp(theirs, mine, strlen(mine)))) {
            sm_err_set(err, SM_E_CONFLICT,
                       "the store '%s' shares its objects with project '%s', whose backups are "
                       "in '%s'",
                       loc, v[i]->id, oloc);
            sm_err_hint(err, "Each project needs a repository of its own: choose a location "
                             "that is neither inside nor around another project's.");
            rc = -1;
        }
        free(theirs);
        free(oloc);
    }
out:
    project_list_free(v, n);
    free(mine);
    free(loc);
    return rc;
}

int ops_project_add(ops_ctx *o, const project *p, int check_db, sm_err *err)
{
    json_t *list = NULL, *f;
    size_t i;
    int rc = -1;

    if (project_id_check(p->id, err) < 0)
        return -1;
    if (!p->name || !*p->name)
        return sm_err_set(err, SM_E_USAGE, "a project needs a name (--name)");
    if (!p->db_url || !*p->db_url)
        return sm_err_set(err, SM_E_USAGE, "a project needs a database URL (--db-url)");
    if (!p->storage_dir || !*p->storage_dir)
        return sm_err_set(err, SM_E_USAGE, "a project needs a storage directory (--storage-dir)");
    if (p->storage_dir[0] != '/')
        return sm_err_set(err, SM_E_INVALID, "storage directory '%s' must be an absolute path",
                          p->storage_dir);
    if (check_dir(p->storage_dir, "storage directory", err) < 0)
        return -1;
    if (p->config_dir && *p->config_dir && check_dir(p->config_dir, "config directory", err) < 0)
        return -1;
    list = config_file_list(p, err);
    if (!list)
        return -1;
    if (ops_store_conflict(o, p, err) < 0)
        goto out;
    json_array_foreach(list, i, f)
    {
        const char *path = json_string_value(json_object_get(f, "path"));
        struct stat sb;
        if (path[0] != '/') {
            sm_err_set(err, SM_E_INVALID, "config file '%s' must be an absolute path", path);
            goto out;
        }
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            sm_err_set(err, SM_E_NOTFOUND, "config file '%s' is missing or not a file", path);
            goto out;
        }
    }
    if (check_db) {
        pg_server srv;
        if (pg_probe(p->db_url, &srv, err) < 0)
            goto out;
    }
    rc = catalog_project_add(o->cat, p, err);
out:
    json_decref(list);
    return rc;
}

static int collect_key(const char *key, uint64_t size, void *ud, sm_err *err)
{
    (void)size;
    (void)err;
    json_array_append_new(ud, json_string(key));
    return 0;
}

/* Rank of a repository object for a purge: manifests first, config last, so
 * that an interrupted purge never leaves a snapshot whose data is gone. */
static int purge_rank(const char *key)
{
    static const char *const order[] = {"snapshots/", "index/", "data/", "locks/", "keys/"};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        if (!strncmp(key, order[i], strlen(order[i])))
            return (int)i;
    return 9;
}

/* Deletes every object of a repository, in any store (a local directory
 * is then removed whole). */
static int purge_repository(const char *loc, sm_err *err)
{
    store *st = NULL;
    json_t *keys = json_array();
    int rc = -1;

    if (strncmp(loc, "s3://", 5) != 0) {
        json_decref(keys);
        return sm_rm_rf(loc, err);
    }
    if (store_open(&st, loc, err) < 0 || store_list(st, "", collect_key, keys, err) < 0)
        goto out;
    for (int rank = 0; rank <= 9; rank++) {
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            if (purge_rank(json_string_value(k)) == rank &&
                store_delete(st, json_string_value(k), err) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    store_free(st);
    json_decref(keys);
    return rc;
}

int ops_project_remove(ops_ctx *o, const char *id, int purge, sm_err *err)
{
    project *p = NULL;
    char *job = NULL, *loc = NULL;
    int rc = -1;

    if (catalog_project_get(o->cat, id, &p, err) < 0)
        return -1;
    if (catalog_job_claim(o->cat, id, "delete", NULL, &job, err) < 0)
        goto out;
    loc = project_repo_location(o->cat, p);
    if (catalog_project_remove(o->cat, id, err) < 0)
        goto out;
    free(job); /* the job row went with the project */
    job = NULL;
    if (purge && o->secret) {
        /* the local cache of its trees goes too (it needs the repository's id) */
        store *st = NULL;
        repo *r = NULL;
        sm_err ce = SM_ERR_INIT;
        if (open_repo_at(o, loc, 0, &st, &r, &ce) == 0) {
            repo_cache_remove(r);
            close_repo(st, r);
        }
    }
    if (purge && purge_repository(loc, err) < 0)
        goto out;
    rc = 0;
out:
    if (job)
        catalog_job_finish(o->cat, job, rc == 0 ? "COMPLETED" : "FAILED",
                           rc == 0 ? NULL : err->msg, NULL);
    free(job);
    free(loc);
    project_free(p);
    return rc;
}

/* ---- backup ---- */

/* Adds a part's checksum and size from the writer's stream list. */
static void record_part(json_t *parts, json_t *streams, const char *name, const char *stream)
{
    json_t *s;
    size_t i;

    json_array_foreach(streams, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), stream) != 0)
            continue;
        char *sum = sm_xasprintf("sha256:%s", json_string_value(json_object_get(s, "sha256")));
        json_object_set_new(parts, name,
                            json_pack("{s:s,s:O,s:O}", "sha256", sum, "size",
                                      json_object_get(s, "size"), "duration_s",
                                      json_object_get(s, "duration_s")));
        free(sum);
        if (json_object_get(s, "files"))
            json_object_set(json_object_get(parts, name), "files", json_object_get(s, "files"));
        if (json_object_get(s, "files_unchanged"))
            json_object_set(json_object_get(parts, name), "files_unchanged",
                            json_object_get(s, "files_unchanged"));
    }
}

static int dump_part(ops_ctx *o, repo_writer *w, const project *p, json_t *meta, sm_err *err)
{
    pg_server srv;
    pg_session *ses = NULL;
    pg_proc dump = {.pid = -1, .fd = -1, .err_fd = -1}, glob = {.pid = -1, .fd = -1, .err_fd = -1};
    json_t *pgmeta = NULL;
    int rc = -1;

    if (pg_probe(p->db_url, &srv, err) < 0)
        return -1;
    emit(o, "dump", -1, 0, 0, 0, -1);
    if (pg_snapshot_begin(&ses, p->db_url, &srv, err) < 0)
        goto out;
    pgmeta = pg_snapshot_metadata(ses, err);
    if (!pgmeta)
        goto out;
    if (pg_dump_start(&dump, &srv, p->db_url, pg_snapshot_id(ses), err) < 0)
        goto out;
    if (repo_writer_add_fd(w, "database", dump.fd, err) < 0) {
        pg_proc_abort(&dump);
        goto out;
    }
    if (pg_proc_finish(&dump, err) < 0)
        goto out;
    pg_snapshot_end(ses);
    ses = NULL;
    emit(o, "globals", -1, 0, 0, 0, -1);
    if (pg_globals_start(&glob, &srv, p->db_url, err) < 0)
        goto out;
    if (repo_writer_add_fd(w, "globals", glob.fd, err) < 0) {
        pg_proc_abort(&glob);
        goto out;
    }
    if (pg_proc_finish(&glob, err) < 0)
        goto out;
    json_object_set(meta, "postgres", pgmeta);
    rc = 0;
out:
    if (ses)
        pg_snapshot_end(ses);
    json_decref(pgmeta);
    return rc;
}

/* Safety backups are kept for safety_days: once expired they are deleted
 * (their data freed) at the project's next backup. Never fails the backup. */
static void expire_safety(ops_ctx *o, const project *p, repo *r, const char *current)
{
    backup_rec **v = NULL;
    size_t n = 0, nf = 0;
    const char **forget = NULL;
    char now[32];
    sm_err e = SM_ERR_INIT;

    if (catalog_backup_list(o->cat, p->id, "safety", &v, &n, &e) < 0) {
        sm_log(SM_LOG_WARN, "%s: cannot list safety backups: %s", p->id, e.msg);
        return;
    }
    sm_time_iso(now, sizeof(now), sm_now());
    forget = sm_xcalloc(n ? n : 1, sizeof(*forget));
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->id, current) != 0 && v[i]->expires_at[0] &&
            strcmp(v[i]->expires_at, now) < 0 && v[i]->snapshot_id)
            forget[nf++] = v[i]->snapshot_id;
    if (nf > 0) {
        repo_prune_opts po;
        repo_prune_result res;
        memset(&po, 0, sizeof(po));
        po.forget = forget;
        po.nforget = nf;
        if (repo_prune(r, &po, &res, &e) < 0) {
            sm_log(SM_LOG_WARN, "%s: cannot delete expired safety backups: %s", p->id, e.msg);
        } else {
            for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < nf; k++)
                    if (v[i]->snapshot_id == forget[k]) {
                        catalog_backup_delete(o->cat, v[i]->id, NULL);
                        sm_log(SM_LOG_INFO, "%s: expired safety backup %s deleted", p->id,
                               v[i]->id);
                    }
        }
    }
    free(forget);
    backup_list_free(v, n);
}

/* ---- retention of scheduled backups ---- */

/* Keeps the newest of each of the `limit` most recent buckets (the first
 * `len` characters of the time: a day is "YYYY-MM-DD", a month "YYYY-MM";
 * weeks use ISO week numbers). */
static void keep_buckets(const char *const *times, size_t n, int limit, int weekly, size_t len,
                         unsigned char *keep)
{
    char last[16] = "", cur[16];
    int seen = 0;

    for (size_t i = 0; i < n && seen < limit; i++) {
        if (weekly) {
            time_t t;
            struct tm tm;
            if (sm_time_parse_iso(times[i], &t) < 0)
                continue;
            gmtime_r(&t, &tm);
            strftime(cur, sizeof(cur), "%G-%V", &tm);
        } else {
            snprintf(cur, sizeof(cur), "%.*s", (int)len, times[i]);
        }
        if (strcmp(cur, last) != 0) {
            keep[i] = 1;
            seen++;
            snprintf(last, sizeof(last), "%s", cur);
        }
    }
}

void ops_retention_select(const ops_retention *r, const char *const *times, size_t n,
                          unsigned char *keep)
{
    memset(keep, 0, n);
    for (size_t i = 0; i < n && (int)i < r->last; i++)
        keep[i] = 1;
    if (r->daily > 0)
        keep_buckets(times, n, r->daily, 0, 10, keep);
    if (r->weekly > 0)
        keep_buckets(times, n, r->weekly, 1, 0, keep);
    if (r->monthly > 0)
        keep_buckets(times, n, r->monthly, 0, 7, keep);
}

/* After a successful scheduled backup: deletes the project's COMPLETED
 * scheduled backups the policy does not keep, in one prune. Never fails the
 * backup (the next run tries again); reports what it did. */
static void apply_retention(ops_ctx *o, const project *p, repo *r, const ops_retention *pol,
                            json_t *report)
{
    backup_rec **v = NULL, **sel = NULL;
    const char **times = NULL, **forget = NULL;
    unsigned char *keep = NULL;
    size_t n = 0, ns = 0, nf = 0;
    json_t *deleted = json_array();
    uint64_t freed = 0;
    sm_err e = SM_ERR_INIT;

    if (catalog_backup_list(o->cat, p->id, "scheduled", &v, &n, &e) < 0) {
        sm_log(SM_LOG_WARN, "%s: retention: cannot list scheduled backups: %s", p->id, e.msg);
        goto out;
    }
    sel = sm_xcalloc(n ? n : 1, sizeof(*sel));
    times = sm_xcalloc(n ? n : 1, sizeof(*times));
    forget = sm_xcalloc(n ? n : 1, sizeof(*forget));
    keep = sm_xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i]->status, "COMPLETED")) {
            sel[ns] = v[i];
            times[ns++] = v[i]->created_at;
        }
    ops_retention_select(pol, times, ns, keep);
    for (size_t i = 0; i < ns; i++)
        if (!keep[i] && sel[i]->snapshot_id)
            forget[nf++] = sel[i]->snapshot_id;
    if (nf > 0) {
        repo_prune_opts po;
        repo_prune_result res;
        memset(&po, 0, sizeof(po));
        po.forget = forget;
        po.nforget = nf;
        if (repo_prune(r, &po, &res, &e) < 0) {
            sm_log(SM_LOG_WARN, "%s: retention: cannot delete old backups: %s", p->id, e.msg);
            goto out;
        }
        freed = res.bytes_freed;
    }
    for (size_t i = 0; i < ns; i++) {
        if (keep[i])
            continue;
        if (catalog_backup_delete(o->cat, sel[i]->id, &e) < 0) {
            sm_log(SM_LOG_WARN, "%s: retention: cannot remove the record of %s: %s", p->id,
                   sel[i]->id, e.msg);
            continue;
        }
        json_array_append_new(deleted, json_string(sel[i]->id));
    }
    if (json_array_size(deleted) > 0) {
        char h[32];
        sm_human_bytes(h, sizeof(h), freed);
        sm_log(SM_LOG_INFO, "%s: retention deleted %zu scheduled backups, %s freed", p->id,
               json_array_size(deleted), h);
    }
out:
    if (report)
        json_object_set_new(report, "retention",
                            json_pack("{s:O,s:I}", "deleted", deleted, "bytes_freed",
                                      (json_int_t)freed));
    json_decref(deleted);
    free(sel);
    free(times);
    free(forget);
    free(keep);
    backup_list_free(v, n);
}

/* ---- free-space guard ---- */

/* The nearest existing directory at or above path (caller frees). */
static char *existing_dir(const char *path)
{
    char *d = sm_xstrdup(path), *slash;

    while (!sm_is_dir(d) && (slash = strrchr(d, '/')) != NULL) {
        if (slash == d) {
            d[1] = '\0';
            break;
        }
        *slash = '\0';
    }
    return d;
}

/* Refuses (SM_E_NOSPC) a backup expected to add `need` bytes when the
 * repository's file system would keep less free than the threshold. Only
 * for repositories on a local file system. */
static int space_guard(ops_ctx *o, const project *p, uint64_t need, sm_err *err)
{
    const char *cfg = o->min_free ? o->min_free : getenv("SUPAMANAGER_MIN_FREE");
    char *loc = project_repo_location(o->cat, p), *dir = NULL;
    struct statvfs vf;
    uint64_t total, avail, keep;
    char hn[32], ha[32], hk[32];
    int rc = 0;
    size_t len;

    if (!cfg || !*cfg)
        cfg = OPS_DEFAULT_MIN_FREE;
    if (strstr(loc, "://"))
        goto out;
    dir = existing_dir(loc);
    if (statvfs(dir, &vf) != 0)
        goto out;
    total = (uint64_t)vf.f_blocks * vf.f_frsize;
    avail = (uint64_t)vf.f_bavail * vf.f_frsize;
    len = strlen(cfg);
    if (len > 1 && cfg[len - 1] == '%') {
        char num[16];
        uint64_t pct;
        snprintf(num, sizeof(num), "%.*s", (int)(len - 1), cfg);
        if (sm_parse_u64(num, 100, &pct) < 0) {
            rc = sm_err_set(err, SM_E_USAGE, "SUPAMANAGER_MIN_FREE '%s' is not a valid threshold",
                            cfg);
            sm_err_hint(err, "Use a percentage (\"5%%\"), a size (\"10G\"), or 0 to turn the "
                             "free-space guard off.");
            goto out;
        }
        keep = total / 100 * pct;
    } else if (sm_parse_size(cfg, &keep) < 0) {
        rc = sm_err_set(err, SM_E_USAGE, "SUPAMANAGER_MIN_FREE '%s' is not a valid threshold", cfg);
        sm_err_hint(err, "Use a percentage (\"5%%\"), a size (\"10G\"), or 0 to turn the "
                         "free-space guard off.");
        goto out;
    }
    if (keep == 0 || (avail > need && avail - need >= keep))
        goto out;
    sm_human_bytes(hn, sizeof(hn), need);
    sm_human_bytes(ha, sizeof(ha), avail);
    sm_human_bytes(hk, sizeof(hk), keep);
    rc = sm_err_set(err, SM_E_NOSPC,
                    "backup refused before it started: the backups of '%s' are on a file system "
                    "with %s free ('%s'); this backup is expected to add about %s, which would "
                    "leave less than the %s kept free (SUPAMANAGER_MIN_FREE=%s)",
                    p->id, ha, dir, hn, hk, cfg);
    sm_err_hint(err, "Free space there, delete old backups (or lower the schedule's retention), "
                     "or lower SUPAMANAGER_MIN_FREE.");
out:
    free(loc);
    free(dir);
    return rc;
}

int ops_backup_reserve(ops_ctx *o, const char *project_id, const char *type, const char *kind,
                       char **backup_id, sm_err *err)
{
    backup_rec *b = backup_rec_new();
    project *p = NULL;
    const char *t;
    int rc = -1;

    if (ops_type_parse(type ? type : "full", &t, err) < 0 ||
        catalog_project_get(o->cat, project_id, &p, err) < 0)
        goto out;
    b->id = new_backup_id(o->cat, project_id, sm_now(), err);
    if (!b->id)
        goto out;
    b->project_id = sm_xstrdup(project_id);
    b->type = sm_xstrdup(t);
    b->status = sm_xstrdup("CREATING");
    b->kind = sm_xstrdup(kind ? kind : "manual");
    sm_time_iso(b->created_at, sizeof(b->created_at), sm_now());
    b->pid = getpid();
    snprintf(b->host, sizeof(b->host), "%s", sm_hostname());
    if (catalog_backup_insert(o->cat, b, err) < 0)
        goto out;
    *backup_id = sm_xstrdup(b->id);
    rc = 0;
out:
    project_free(p);
    backup_rec_free(b);
    return rc;
}

/* The body of a backup; the caller holds the project's job claim. With
 * preset, the record reserved by ops_backup_reserve is used. */
static int backup_run(ops_ctx *o, const project *p, const char *type, const char *kind,
                      int keep_days, const char *preset, const ops_backup_opts *extra,
                      char **backup_id, sm_err *err)
{
    backup_rec *b = backup_rec_new(), *parent_rec = NULL;
    store *st = NULL;
    repo *r = NULL;
    repo_writer *w = NULL;
    snapshot *parent = NULL;
    json_t *meta = json_object(), *parts = json_object(), *cfglist = NULL, *tags = NULL;
    char *cfgdir = NULL, snap[65];
    int want_db, want_storage, want_config, rc = -1;
    /* a safety backup saves whatever is there: a damaged project (the reason
     * for a restore) may lack its storage directory or config files */
    int lenient = kind && !strcmp(kind, "safety");
    repo_writer_opts wo;
    prog pg;
    double t0 = sm_mono();
    uint64_t total = 0, fresh = 0, stored = 0, need = 0;

    ops_type_parts(type, &want_db, &want_storage, &want_config);
    if (lenient && want_storage && !sm_is_dir(p->storage_dir))
        want_storage = 0;
    if (lenient && want_config && p->config_dir && *p->config_dir && !sm_is_dir(p->config_dir))
        want_config = 0;
    b->id = preset ? sm_xstrdup(preset) : new_backup_id(o->cat, p->id, sm_now(), err);
    if (!b->id)
        goto done;
    b->project_id = sm_xstrdup(p->id);
    b->type = sm_xstrdup(type);
    b->status = sm_xstrdup("CREATING");
    b->kind = sm_xstrdup(kind ? kind : "manual");
    sm_time_iso(b->created_at, sizeof(b->created_at), sm_now());
    if (keep_days > 0)
        sm_time_iso(b->expires_at, sizeof(b->expires_at), sm_now() + (time_t)keep_days * 86400);
    b->pid = getpid();
    snprintf(b->host, sizeof(b->host), "%s", sm_hostname());
    if (!strcmp(type, "INCREMENTAL")) {
        backup_rec **v = NULL;
        size_t n = 0;
        if (catalog_backup_list(o->cat, p->id, NULL, &v, &n, err) < 0)
            goto done;
        for (size_t i = 0; i < n && !parent_rec; i++)
            if (!strcmp(v[i]->status, "COMPLETED") && v[i]->snapshot_id) {
                parent_rec = v[i];
                v[i] = NULL;
            }
        backup_list_free(v, n);
        if (parent_rec)
            b->parent_id = sm_xstrdup(parent_rec->id);
    }
    if ((preset ? catalog_backup_update(o->cat, b, err) : catalog_backup_insert(o->cat, b, err)) <
        0)
        goto done;
    *backup_id = sm_xstrdup(b->id);
    if (o->job_id)
        catalog_job_set_backup(o->cat, o->job_id, b->id, NULL);
    sm_log(SM_LOG_INFO, "%s: backup %s (%s) started", p->id, b->id, type);

    /* what to expect, for progress: the last backup's size, else a guess */
    if (want_storage)
        total += dir_bytes(p->storage_dir);
    {
        backup_rec **v = NULL;
        size_t n = 0;
        int have_db = 0, have_last = 0;
        if (catalog_backup_list(o->cat, p->id, NULL, &v, &n, NULL) == 0) {
            for (size_t i = 0; i < n && !(have_db && have_last); i++) {
                json_t *dbp = json_object_get(json_object_get(v[i]->meta, "parts"), "database");
                if (strcmp(v[i]->status, "COMPLETED"))
                    continue;
                if (!have_db && dbp) {
                    total += (uint64_t)json_integer_value(json_object_get(dbp, "size"));
                    have_db = 1;
                }
                if (!have_last && !strcmp(v[i]->type, type)) {
                    /* what the last one of this type added to the repository */
                    need = v[i]->stored;
                    have_last = 1;
                }
            }
        }
        backup_list_free(v, n);
        if (!have_last)
            need = total;
    }
    if (space_guard(o, p, need, err) < 0)
        goto done;

    if (open_project_repo(o, p, 1, &st, &r, err) < 0 || repo_lock(r, 1, "backup", err) < 0)
        goto done;
    if (parent_rec && repo_snapshot_load(r, parent_rec->snapshot_id, &parent, NULL) < 0)
        parent = NULL; /* a parent that is gone only costs re-reading */
    memset(&wo, 0, sizeof(wo));
    memset(&pg, 0, sizeof(pg));
    pg.o = o;
    pg.phase = "backup";
    pg.total = total;
    pg.t0 = sm_mono();
    wo.progress = prog_cb;
    wo.progress_ud = &pg;
    wo.cancel = o->cancel;
    wo.bytes_total = total;
    if (repo_writer_new(&w, r, &wo, err) < 0)
        goto done;
    if (want_db) {
        pg.phase = "database";
        if (dump_part(o, w, p, meta, err) < 0)
            goto done;
    }
    if (want_storage) {
        pg.phase = "storage";
        if (check_dir(p->storage_dir, "storage directory", err) < 0 ||
            repo_writer_add_tree(w, "storage", p->storage_dir, parent, err) < 0)
            goto done;
    }
    if (want_config) {
        pg.phase = "config";
        if (p->config_dir && *p->config_dir) {
            if (check_dir(p->config_dir, "config directory", err) < 0 ||
                repo_writer_add_tree(w, "config", p->config_dir, NULL, err) < 0)
                goto done;
            /* the pgsodium root key lives outside the config directory:
             * without it vault secrets cannot be read */
            if (p->pgsodium_key && *p->pgsodium_key) {
                int kfd = open(p->pgsodium_key, O_RDONLY | O_CLOEXEC);
                int r2;
                if (kfd < 0 && errno == ENOENT && lenient) {
                    sm_log(SM_LOG_WARN, "%s: the pgsodium root key '%s' is missing; the safety "
                                        "backup goes without it",
                           p->id, p->pgsodium_key);
                } else if (kfd < 0) {
                    sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO,
                               "cannot read the pgsodium root key '%s'", p->pgsodium_key);
                    goto done;
                }
                if (kfd >= 0) {
                    r2 = repo_writer_add_fd(w, "pgsodium", kfd, err);
                    close(kfd);
                    if (r2 < 0)
                        goto done;
                }
            }
        } else {
            cfglist = config_file_list(p, err);
            if (!cfglist)
                goto done;
            cfgdir = tmp_dir(o, "config", err);
            if (!cfgdir || stage_config_files(cfglist, cfgdir, lenient, err) < 0 ||
                repo_writer_add_tree(w, "config", cfgdir, NULL, err) < 0)
                goto done;
            json_object_set(meta, "config_files", cfglist);
        }
    }
    emit(o, "commit", 99, 0, 0, 0, -1);
    record_part(parts, repo_writer_streams(w), "database", "database");
    record_part(parts, repo_writer_streams(w), "globals", "globals");
    record_part(parts, repo_writer_streams(w), "storage", "storage");
    record_part(parts, repo_writer_streams(w), "config", "config");
    record_part(parts, repo_writer_streams(w), "pgsodium", "pgsodium");
    json_object_set_new(meta, "backup_id", json_string(b->id));
    json_object_set_new(meta, "project", json_pack("{s:s,s:s}", "id", p->id, "name", p->name));
    json_object_set_new(meta, "type", json_string(type));
    json_object_set_new(meta, "kind", json_string(b->kind));
    json_object_set_new(meta, "created_at", json_string(b->created_at));
    json_object_set_new(meta, "parent", b->parent_id ? json_string(b->parent_id) : json_null());
    json_object_set(meta, "parts", parts);
    if (extra && extra->scheduled_for)
        json_object_set_new(meta, "scheduled_for", json_string(extra->scheduled_for));
    tags = json_pack("[s,s,s]", b->id, type, b->kind);
    if (repo_writer_commit(w, meta, tags, snap, err) < 0)
        goto done;
    repo_writer_totals(w, NULL, &fresh, &stored);
    b->snapshot_id = sm_xstrdup(snap);
    expire_safety(o, p, r, b->id);
    {
        const char *k;
        json_t *v;
        b->size = 0;
        json_object_foreach(parts, k, v) b->size += (uint64_t)json_integer_value(
            json_object_get(v, "size"));
    }
    b->stored = stored;
    rc = 0;
done:
    if (b->id && b->status) {
        free(b->status);
        b->status = sm_xstrdup(rc == 0 ? "COMPLETED"
                               : err->code == SM_E_INTERRUPTED ? "INTERRUPTED"
                                                               : "FAILED");
        if (rc < 0) {
            free(b->error);
            b->error = sm_xstrdup(err->msg);
        }
        b->duration_s = sm_mono() - t0;
        sm_time_iso(b->finished_at, sizeof(b->finished_at), sm_now());
        json_decref(b->meta);
        b->meta = json_incref(meta);
        if (catalog_backup_update(o->cat, b, rc == 0 ? err : NULL) < 0 && rc == 0)
            rc = -1;
        if (rc == 0 && extra && extra->retention && !strcmp(b->kind, "scheduled"))
            apply_retention(o, p, r, extra->retention, extra->report);
        sm_log(rc == 0 ? SM_LOG_INFO : SM_LOG_WARN, "%s: backup %s %s%s%s", p->id, b->id,
               b->status, rc < 0 ? ": " : "", rc < 0 ? err->msg : "");
    }
    if (rc == 0)
        emit(o, "completed", 100, b->size, b->size, 0, 0);
    repo_writer_free(w);
    snapshot_free(parent);
    close_repo(st, r);
    if (cfgdir) {
        sm_rm_rf(cfgdir, NULL);
        free(cfgdir);
    }
    json_decref(cfglist);
    json_decref(tags);
    json_decref(parts);
    json_decref(meta);
    backup_rec_free(parent_rec);
    backup_rec_free(b);
    return rc;
}

/* Claims the project for kind, runs fn, records the job's end. */
static int with_claim(ops_ctx *o, const char *project_id, const char *kind, sm_err *err,
                      int (*fn)(ops_ctx *o, void *arg, sm_err *err), void *arg)
{
    char *job = NULL;
    int rc;

    if (o->claimed_job_id) {
        /* the caller's row: claim the project through it */
        if (catalog_job_start(o->cat, o->claimed_job_id, project_id, err) < 0)
            return -1;
        job = sm_xstrdup(o->claimed_job_id);
    } else if (catalog_job_claim(o->cat, project_id, kind, NULL, &job, err) < 0) {
        return -1;
    }
    o->job_id = job;
    rc = fn(o, arg, err);
    catalog_job_finish(o->cat, job,
                       rc == 0                            ? "COMPLETED"
                       : err->code == SM_E_INTERRUPTED ? "INTERRUPTED"
                                                          : "FAILED",
                       rc == 0 ? NULL : err->msg, NULL);
    o->job_id = NULL;
    free(job);
    return rc;
}

typedef struct backup_arg {
    const project *p;
    const char *type;
    const ops_backup_opts *bo;
    char **backup_id;
} backup_arg;

static int backup_fn(ops_ctx *o, void *arg, sm_err *err)
{
    backup_arg *a = arg;
    return backup_run(o, a->p, a->type, a->bo->kind, a->bo->keep_days, a->bo->backup_id, a->bo,
                      a->backup_id, err);
}

int ops_backup_create(ops_ctx *o, const char *project_id, const ops_backup_opts *bo,
                      char **backup_id, sm_err *err)
{
    project *p = NULL;
    const char *type;
    backup_arg a;
    int rc;

    *backup_id = NULL;
    if (ops_type_parse(bo->type ? bo->type : "full", &type, err) < 0)
        return -1;
    if (catalog_project_get(o->cat, project_id, &p, err) < 0)
        return -1;
    a.p = p;
    a.type = type;
    a.bo = bo;
    a.backup_id = backup_id;
    rc = with_claim(o, project_id, "backup", err, backup_fn, &a);
    project_free(p);
    return rc;
}

/* ---- delete ---- */

typedef struct delete_arg {
    backup_rec *b;
    const project *p;
} delete_arg;

static int delete_fn(ops_ctx *o, void *arg, sm_err *err)
{
    delete_arg *a = arg;
    store *st = NULL;
    repo *r = NULL;
    int rc = -1;

    if (a->b->snapshot_id) {
        repo_prune_opts po;
        repo_prune_result res;
        const char *forget[1] = {a->b->snapshot_id};
        snapshot *s = NULL;
        if (open_project_repo(o, a->p, 0, &st, &r, err) < 0 || repo_lock(r, 1, "delete", err) < 0)
            goto out;
        if (repo_snapshot_load(r, a->b->snapshot_id, &s, NULL) == 0) {
            snapshot_free(s);
            memset(&po, 0, sizeof(po));
            po.forget = forget;
            po.nforget = 1;
            if (repo_prune(r, &po, &res, err) < 0)
                goto out;
            sm_log(SM_LOG_INFO, "%s: backup %s deleted, %llu bytes freed", a->p->id, a->b->id,
                   (unsigned long long)res.bytes_freed);
        }
    }
    rc = catalog_backup_delete(o->cat, a->b->id, err);
out:
    close_repo(st, r);
    return rc;
}

int ops_backup_delete(ops_ctx *o, const char *backup_id, sm_err *err)
{
    delete_arg a = {NULL, NULL};
    project *p = NULL;
    int rc = -1;

    if (catalog_backup_get(o->cat, backup_id, &a.b, err) < 0)
        return -1;
    if (catalog_project_get(o->cat, a.b->project_id, &p, err) < 0)
        goto out;
    a.p = p;
    rc = with_claim(o, p->id, "delete", err, delete_fn, &a);
out:
    project_free(p);
    backup_rec_free(a.b);
    return rc;
}

/* ---- the catalog from the repository ---- */

typedef struct sync_arg {
    const project *p;
    json_t *report;
} sync_arg;

/* A catalog record for a committed snapshot of a project backup, from its
 * manifest (meta is what backup_run wrote). NULL when s is no such backup. */
static backup_rec *record_of(ops_ctx *o, const char *project_id, const snapshot *s)
{
    json_t *doc = snapshot_json(s), *meta = json_object_get(doc, "meta"), *v;
    json_t *totals = json_object_get(doc, "totals");
    const char *id = json_string_value(json_object_get(meta, "backup_id"));
    const char *type = json_string_value(json_object_get(meta, "type"));
    const char *kind = json_string_value(json_object_get(meta, "kind"));
    const char *created = json_string_value(json_object_get(meta, "created_at"));
    const char *parent = json_string_value(json_object_get(meta, "parent"));
    const char *k;
    backup_rec *b;

    if (!id || !type || !created || strlen(created) >= sizeof(b->created_at))
        return NULL;
    b = backup_rec_new();
    b->id = sm_xstrdup(id);
    b->project_id = sm_xstrdup(project_id);
    b->type = sm_xstrdup(type);
    b->status = sm_xstrdup("COMPLETED");
    b->kind = sm_xstrdup(kind ? kind : "manual");
    b->snapshot_id = sm_xstrdup(snapshot_id(s));
    b->parent_id = parent ? sm_xstrdup(parent) : NULL;
    snprintf(b->created_at, sizeof(b->created_at), "%s", created);
    sm_time_iso(b->finished_at, sizeof(b->finished_at), snapshot_time(s));
    if (!strcmp(b->kind, "safety")) /* kept safety_days from its making, as it was */
        sm_time_iso(b->expires_at, sizeof(b->expires_at),
                    snapshot_time(s) + (time_t)o->safety_days * 86400);
    json_object_foreach(json_object_get(meta, "parts"), k, v) b->size +=
        (uint64_t)json_integer_value(json_object_get(v, "size"));
    b->stored = (uint64_t)json_integer_value(json_object_get(totals, "stored"));
    b->duration_s = json_number_value(json_object_get(totals, "duration_s"));
    json_decref(b->meta);
    b->meta = json_incref(meta);
    return b;
}

static int sync_fn(ops_ctx *o, void *arg, sm_err *err)
{
    sync_arg *a = arg;
    store *st = NULL;
    repo *r = NULL;
    snapshot **v = NULL;
    size_t n = 0;
    json_t *added = json_array(), *repaired = json_array(), *skipped = json_array();
    unsigned found = 0;
    int rc = -1;

    if (open_project_repo(o, a->p, 0, &st, &r, err) < 0 || repo_lock(r, 0, "sync", err) < 0 ||
        repo_snapshots(r, &v, &n, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        backup_rec *b = record_of(o, a->p->id, v[i]), *have = NULL;
        sm_err e = SM_ERR_INIT;
        if (!b)
            continue; /* WAL and base backups of PITR, or snapshots of `repo backup` */
        found++;
        if (catalog_backup_get(o->cat, b->id, &have, &e) == 0) {
            if (strcmp(have->project_id, a->p->id)) {
                json_array_append_new(skipped,
                                      json_pack("{s:s,s:s}", "id", b->id, "reason",
                                                "the id belongs to a backup of another project"));
            } else if (strcmp(have->status, "COMPLETED") || !have->snapshot_id ||
                       strcmp(have->snapshot_id, b->snapshot_id)) {
                /* committed in the repository, but the process died before it
                 * could say so in the catalog: the manifest is the truth */
                snprintf(b->host, sizeof(b->host), "%s", have->host);
                b->pid = have->pid;
                if (catalog_backup_update(o->cat, b, err) < 0) {
                    backup_rec_free(have);
                    backup_rec_free(b);
                    goto out;
                }
                json_array_append_new(repaired, json_string(b->id));
            }
        } else if (e.code == SM_E_NOTFOUND) {
            snprintf(b->host, sizeof(b->host), "%s", sm_hostname());
            if (catalog_backup_insert(o->cat, b, err) < 0) {
                backup_rec_free(b);
                goto out;
            }
            json_array_append_new(added, json_string(b->id));
        } else {
            sm_err_copy(err, &e);
            backup_rec_free(b);
            goto out;
        }
        backup_rec_free(have);
        backup_rec_free(b);
    }
    a->report = json_pack("{s:s,s:I,s:O,s:O,s:O}", "project_id", a->p->id, "found",
                          (json_int_t)found, "added", added, "repaired", repaired, "skipped",
                          skipped);
    rc = 0;
out:
    repo_snapshots_free(v, n);
    close_repo(st, r);
    json_decref(added);
    json_decref(repaired);
    json_decref(skipped);
    return rc;
}

int ops_project_adopt(ops_ctx *o, const char *project_id, json_t **report, sm_err *err)
{
    project *p = NULL;
    store *st = NULL;
    char *loc;
    uint64_t size;
    int present;

    if (catalog_project_get(o->cat, project_id, &p, err) < 0)
        return -1;
    loc = project_repo_location(o->cat, p);
    project_free(p);
    present = store_open(&st, loc, err) < 0 ? -1 : store_stat(st, "config", &size, err);
    store_free(st);
    free(loc);
    if (present != 0)
        return present; /* 1: no repository there yet */
    return ops_backup_sync(o, project_id, report, err);
}

int ops_backup_sync(ops_ctx *o, const char *project_id, json_t **report, sm_err *err)
{
    sync_arg a = {NULL, NULL};
    project *p = NULL;
    int rc;

    if (catalog_project_get(o->cat, project_id, &p, err) < 0)
        return -1;
    a.p = p;
    rc = with_claim(o, p->id, "sync", err, sync_fn, &a);
    if (rc == 0 && report)
        *report = a.report;
    else
        json_decref(a.report);
    project_free(p);
    return rc;
}

/* ---- restore ---- */

/* Restores a file stream of s to path (created). */
/* Restores a file stream of s to path (created). Temporary files (a dump
 * for pg_restore) need no fsync: waiting for the disk there only delays the
 * restore; files that go live (durable) get one. */
static int stream_to_file(repo *r, const snapshot *s, const char *stream, const char *path,
                          repo_restore_opts *ro, int durable, sm_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc;

    if (fd < 0)
        return sm_err_sys(err, SM_E_IO, "cannot create '%s'", path);
    rc = repo_restore_stream_fd(r, s, stream, fd, ro, err);
    if (rc == 0 && durable && fsync(fd) != 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot fsync '%s'", path);
    if (close(fd) != 0 && rc == 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot write '%s'", path);
    return rc;
}

static char *suffixed(const char *path, const char *tag, const char *stamp)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    return sm_xasprintf("%.*s.%s-%s", (int)n, path, tag, stamp);
}

/* Database name from a URL (the part after the last '/' and before '?'). */
static char *url_dbname(const pg_server *srv)
{
    return sm_xstrdup(srv->dbname);
}

typedef struct swap_state {
    int db_swapped;
    int storage_swapped;
    int config_swapped;
    int files_swapped; /* how many config files */
} swap_state;

typedef struct restore_plan {
    ops_ctx *o;
    backup_rec *b;
    const project *src;
    const project *dst;
    int want_db, want_storage, want_config;
    int no_safety;
    char stamp[32];
    /* staging */
    char *work;          /* private temp dir */
    pg_server srv;
    char *live_db, *staging_db, *prev_db;
    char *storage_stage, *storage_prev;
    char *config_stage, *config_prev; /* config_dir projects */
    json_t *config_files;             /* [{name, path, stage, prev}] for file projects */
    int paused;
    int blocked;
} restore_plan;

static void plan_free(restore_plan *rp)
{
    free(rp->work);
    free(rp->live_db);
    free(rp->staging_db);
    free(rp->prev_db);
    free(rp->storage_stage);
    free(rp->storage_prev);
    free(rp->config_stage);
    free(rp->config_prev);
    json_decref(rp->config_files);
}

/* Removes everything staged (before a swap, or after a failed one). */
static void unstage(restore_plan *rp)
{
    json_t *f;
    size_t i;

    if (rp->staging_db)
        pg_drop_database(&rp->srv, rp->dst->db_url, rp->staging_db, NULL);
    if (rp->storage_stage)
        sm_rm_rf(rp->storage_stage, NULL);
    if (rp->config_stage)
        sm_rm_rf(rp->config_stage, NULL);
    json_array_foreach(rp->config_files, i, f)
    {
        const char *stage = json_string_value(json_object_get(f, "stage"));
        if (stage)
            unlink(stage);
    }
}

static int stage_all(restore_plan *rp, repo *r, const snapshot *s, sm_err *err)
{
    ops_ctx *o = rp->o;
    const project *dst = rp->dst;
    repo_restore_opts ro;
    prog pg;
    json_t *meta = json_object_get(snapshot_json(s), "meta");
    uint64_t total = 0;

    memset(&pg, 0, sizeof(pg));
    pg.o = o;
    pg.t0 = sm_mono();
    total = (uint64_t)json_integer_value(json_object_get(json_object_get(json_object_get(meta,
                                                          "parts"), "database"), "size")) +
            (uint64_t)json_integer_value(json_object_get(json_object_get(json_object_get(meta,
                                                          "parts"), "storage"), "size"));
    pg.total = total;
    memset(&ro, 0, sizeof(ro));
    ro.progress = prog_cb;
    ro.progress_ud = &pg;
    ro.cancel = o->cancel;

    if (rp->want_db) {
        char *dump = sm_path_join(rp->work, "database.dump");
        char *glob = sm_path_join(rp->work, "globals.sql");
        pg_restore_opts po;
        int rc;
        memset(&po, 0, sizeof(po));
        po.work_dir = rp->work;
        pg.phase = "restore database";
        rc = stream_to_file(r, s, "database", dump, &ro, 0, err);
        /* a dump written to a pipe has no data offsets, which stops pg_restore -j
         * from working in parallel: put them back */
        if (rc == 0 && pg_dump_fill_offsets(dump, NULL, err) < 0)
            rc = -1;
        if (rc == 0 && snapshot_stream(s, "globals"))
            rc = stream_to_file(r, s, "globals", glob, &ro, 0, err);
        /* pg_restore and psql run as the calling user, reading these files */
        chmod(rp->work, 0755);
        chmod(dump, 0644);
        chmod(glob, 0644);
        if (rc == 0 && snapshot_stream(s, "globals")) {
            emit(o, "restore roles", -1, 0, 0, 0, -1);
            rc = pg_restore_globals(&rp->srv, dst->db_url, glob, &po, err);
        }
        if (rc == 0) {
            emit(o, "restore database", -1, 0, 0, 0, -1);
            rp->staging_db = sm_xasprintf("%s_smr_%s", rp->live_db, rp->stamp);
            rc = pg_restore_database(&rp->srv, dst->db_url, dump, rp->staging_db,
                                     json_object_get(meta, "postgres"), &po, err);
            if (rc < 0) {
                free(rp->staging_db);
                rp->staging_db = NULL;
            }
        }
        if (rc == 0) {
            emit(o, "verify database", -1, 0, 0, 0, -1);
            rc = pg_verify_counts(&rp->srv, dst->db_url, rp->staging_db,
                                  json_object_get(meta, "postgres"), err);
        }
        unlink(dump);
        unlink(glob);
        free(dump);
        free(glob);
        if (rc < 0)
            return -1;
        pg.base += (uint64_t)json_integer_value(
            json_object_get(json_object_get(json_object_get(meta, "parts"), "database"), "size"));
    }
    if (rp->want_storage) {
        pg.phase = "restore storage";
        rp->storage_stage = suffixed(dst->storage_dir, "smr", rp->stamp);
        if (repo_restore_tree(r, s, "storage", rp->storage_stage, &ro, err) < 0)
            return sm_err_prefix(err, "cannot stage the storage files");
    }
    if (rp->want_config) {
        pg.phase = "restore config";
        if (dst->config_dir && *dst->config_dir) {
            rp->config_stage = suffixed(dst->config_dir, "smr", rp->stamp);
            if (repo_restore_tree(r, s, "config", rp->config_stage, &ro, err) < 0)
                return sm_err_prefix(err, "cannot stage the config files");
            if (snapshot_stream(s, "pgsodium") && dst->pgsodium_key && *dst->pgsodium_key) {
                char *stage = suffixed(dst->pgsodium_key, "smr", rp->stamp);
                char *prev = suffixed(dst->pgsodium_key, "smprev", rp->stamp);
                int rc = stream_to_file(r, s, "pgsodium", stage, &ro, 1, err);
                struct stat ks;
                /* a file stream keeps no owner or mode: take those of the key it
                 * replaces (the database server must still be able to read it) */
                if (rc == 0 && stat(dst->pgsodium_key, &ks) == 0) {
                    if (chown(stage, ks.st_uid, ks.st_gid) != 0 && geteuid() == 0)
                        sm_log(SM_LOG_WARN, "cannot set the owner of '%s'", stage);
                    chmod(stage, ks.st_mode & 07777);
                }
                rp->config_files = json_array();
                json_array_append_new(rp->config_files,
                                      json_pack("{s:s,s:s,s:s,s:s}", "name", "pgsodium", "path",
                                                dst->pgsodium_key, "stage", stage, "prev", prev));
                free(stage);
                free(prev);
                if (rc < 0)
                    return sm_err_prefix(err, "cannot stage the pgsodium root key");
            }
        } else {
            /* files restored next to their originals (same file system: rename
             * swaps them); names map to paths through the backup's list, or the
             * target project's own list for a clone */
            json_t *list = json_object_get(meta, "config_files"), *f;
            char *cdir = sm_path_join(rp->work, "config");
            size_t i;
            if (rp->dst != rp->src || !json_is_array(list)) {
                sm_err e2 = SM_ERR_INIT;
                list = config_file_list(dst, &e2);
            } else {
                json_incref(list);
            }
            if (!list || repo_restore_tree(r, s, "config", cdir, &ro, err) < 0) {
                json_decref(list);
                free(cdir);
                return sm_err_prefix(err, "cannot stage the config files");
            }
            rp->config_files = json_array();
            json_array_foreach(list, i, f)
            {
                const char *name = json_string_value(json_object_get(f, "name"));
                const char *path = json_string_value(json_object_get(f, "path"));
                char *src = sm_path_join(cdir, name);
                char *stage = suffixed(path, "smr", rp->stamp);
                int rc;
                if (!sm_exists(src)) {
                    free(src);
                    free(stage);
                    continue; /* not in this backup */
                }
                char *prev = suffixed(path, "smprev", rp->stamp);
                rc = copy_file(src, stage, err);
                json_array_append_new(rp->config_files,
                                      json_pack("{s:s,s:s,s:s,s:s}", "name", name, "path", path,
                                                "stage", stage, "prev", prev));
                free(prev);
                free(src);
                free(stage);
                if (rc < 0) {
                    json_decref(list);
                    free(cdir);
                    return -1;
                }
            }
            json_decref(list);
            free(cdir);
        }
    }
    return 0;
}

static int pause_project(restore_plan *rp, sm_err *err)
{
    const project *dst = rp->dst;

    emit(rp->o, "pause", -1, 0, 0, 0, -1);
    if (dst->pause_cmd && *dst->pause_cmd) {
        if (run_command(dst->pause_cmd, "pause", err) < 0)
            return sm_err_hint(err, "Nothing was changed: the restored data was discarded. Fix "
                                    "the pause command (supamanager project edit) and retry.");
        rp->paused = 1;
    }
    if (rp->want_db) {
        /* even with a pause command: nobody may hold the database during the rename */
        if (pg_block(&rp->srv, dst->db_url, rp->live_db, err) < 0)
            return -1;
        rp->blocked = 1;
    }
    return 0;
}

static void resume_project(restore_plan *rp)
{
    sm_err e = SM_ERR_INIT;

    emit(rp->o, "resume", -1, 0, 0, 0, -1);
    if (rp->blocked && pg_unblock(&rp->srv, rp->dst->db_url, rp->live_db, &e) < 0)
        sm_log(SM_LOG_ERROR, "%s: cannot allow connections again: %s", rp->dst->id, e.msg);
    rp->blocked = 0;
    if (rp->paused && rp->dst->resume_cmd && *rp->dst->resume_cmd &&
        run_command(rp->dst->resume_cmd, "resume", &e) < 0)
        sm_log(SM_LOG_ERROR, "%s: %s", rp->dst->id, e.msg);
    rp->paused = 0;
}

static int rename_pair(const char *live, const char *prev, const char *stage, int live_may_miss,
                       sm_err *err)
{
    int had_live = sm_exists(live);

    if (had_live && rename(live, prev) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot move '%s' aside", live);
    if (!had_live && !live_may_miss)
        return sm_err_set(err, SM_E_NOTFOUND, "'%s' is missing", live);
    if (rename(stage, live) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot move the restored '%s' into place", stage);
        if (had_live)
            rename(prev, live);
        return -1;
    }
    return 0;
}

static void unrename_pair(const char *live, const char *prev, const char *stage)
{
    if (rename(live, stage) == 0 && sm_exists(prev))
        rename(prev, live);
}

static int swap_all(restore_plan *rp, swap_state *ss, sm_err *err)
{
    json_t *f;
    size_t i;

    emit(rp->o, "swap", -1, 0, 0, 0, -1);
    if (rp->want_db) {
        rp->prev_db = sm_xasprintf("%s_smprev_%s", rp->live_db, rp->stamp);
        if (pg_swap(&rp->srv, rp->dst->db_url, rp->live_db, rp->staging_db, rp->prev_db, err) <
            0)
            goto undo;
        ss->db_swapped = 1;
        /* the blocked database is now the previous one; the new one is open */
        rp->blocked = 0;
    }
    if (rp->want_storage) {
        rp->storage_prev = suffixed(rp->dst->storage_dir, "smprev", rp->stamp);
        if (rename_pair(rp->dst->storage_dir, rp->storage_prev, rp->storage_stage, 1, err) < 0)
            goto undo;
        ss->storage_swapped = 1;
    }
    if (rp->config_stage) {
        rp->config_prev = suffixed(rp->dst->config_dir, "smprev", rp->stamp);
        if (rename_pair(rp->dst->config_dir, rp->config_prev, rp->config_stage, 1, err) < 0)
            goto undo;
        ss->config_swapped = 1;
    }
    json_array_foreach(rp->config_files, i, f)
    {
        if (rename_pair(json_string_value(json_object_get(f, "path")),
                        json_string_value(json_object_get(f, "prev")),
                        json_string_value(json_object_get(f, "stage")), 1, err) < 0)
            goto undo;
        ss->files_swapped++;
    }
    return 0;
undo:
    /* put back what was swapped, newest first */
    for (int k = ss->files_swapped - 1; k >= 0; k--) {
        json_t *g = json_array_get(rp->config_files, (size_t)k);
        unrename_pair(json_string_value(json_object_get(g, "path")),
                      json_string_value(json_object_get(g, "prev")),
                      json_string_value(json_object_get(g, "stage")));
    }
    if (ss->config_swapped)
        unrename_pair(rp->dst->config_dir, rp->config_prev, rp->config_stage);
    if (ss->storage_swapped)
        unrename_pair(rp->dst->storage_dir, rp->storage_prev, rp->storage_stage);
    if (ss->db_swapped) {
        sm_err e = SM_ERR_INIT;
        pg_block(&rp->srv, rp->dst->db_url, rp->live_db, &e);
        if (pg_swap(&rp->srv, rp->dst->db_url, rp->live_db, rp->prev_db, rp->staging_db, &e) <
            0)
            sm_log(SM_LOG_ERROR, "%s: cannot put the previous database back: %s (it is '%s')",
                   rp->dst->id, e.msg, rp->prev_db);
        rp->blocked = 1;
    }
    memset(ss, 0, sizeof(*ss));
    return -1;
}

/* After a successful swap: the previous state is no longer needed (the
 * safety backup holds it). */
static void drop_previous(restore_plan *rp)
{
    json_t *f;
    size_t i;

    if (rp->prev_db)
        pg_drop_database(&rp->srv, rp->dst->db_url, rp->prev_db, NULL);
    if (rp->storage_prev)
        sm_rm_rf(rp->storage_prev, NULL);
    if (rp->config_prev)
        sm_rm_rf(rp->config_prev, NULL);
    json_array_foreach(rp->config_files, i, f)
    unlink(json_string_value(json_object_get(f, "prev")));
}

static int restore_run(restore_plan *rp, sm_err *err)
{
    ops_ctx *o = rp->o;
    store *st = NULL;
    repo *r = NULL;
    snapshot *s = NULL;
    swap_state ss;
    char *safety = NULL;
    int rc = -1, staged = 0;
    struct tm tm;
    time_t now = sm_now();

    memset(&ss, 0, sizeof(ss));
    gmtime_r(&now, &tm);
    strftime(rp->stamp, sizeof(rp->stamp), "%Y%m%d%H%M%S", &tm);
    if (rp->want_db) {
        if (pg_probe(rp->dst->db_url, &rp->srv, err) < 0)
            goto out;
        rp->live_db = url_dbname(&rp->srv);
    }
    if (rp->want_storage && check_dir(rp->dst->storage_dir, "storage directory", err) < 0)
        goto out;

    /* a wrong restore is never final: keep the current state first */
    if (!rp->no_safety) {
        emit(o, "safety backup", -1, 0, 0, 0, -1);
        if (backup_run(o, rp->dst, "FULL", "safety", o->safety_days, NULL, NULL, &safety, err) < 0) {
            sm_err_prefix(err, "the safety backup of '%s' failed, nothing was restored",
                          rp->dst->id);
            goto out;
        }
        sm_log(SM_LOG_INFO, "%s: safety backup %s taken before restoring %s", rp->dst->id, safety,
               rp->b->id);
    }

    rp->work = tmp_dir(o, "restore", err);
    if (!rp->work)
        goto out;
    if (open_project_repo(o, rp->src, 0, &st, &r, err) < 0 ||
        repo_lock(r, 0, "restore", err) < 0 || repo_snapshot_load(r, rp->b->snapshot_id, &s, err) < 0)
        goto out;
    emit(o, "stage", 0, 0, 0, 0, -1);
    staged = 1;
    if (stage_all(rp, r, s, err) < 0)
        goto out;
    if (o->cancel && *o->cancel) {
        sm_err_set(err, SM_E_INTERRUPTED, "restore interrupted before the swap; nothing changed");
        goto out;
    }
    if (pause_project(rp, err) < 0)
        goto out;
    if (swap_all(rp, &ss, err) < 0)
        goto out;
    staged = 0; /* staging became live */
    resume_project(rp);
    drop_previous(rp);
    emit(o, "completed", 100, 0, 0, 0, 0);
    sm_log(SM_LOG_INFO, "%s: restored backup %s", rp->dst->id, rp->b->id);
    rc = 0;
out:
    if (rc < 0) {
        if (rp->blocked || rp->paused)
            resume_project(rp);
        if (staged)
            unstage(rp);
    }
    if (rp->work)
        sm_rm_rf(rp->work, NULL);
    free(safety);
    snapshot_free(s);
    close_repo(st, r);
    return rc;
}

static int restore_fn(ops_ctx *o, void *arg, sm_err *err)
{
    (void)o;
    return restore_run(arg, err);
}

int ops_restore(ops_ctx *o, const char *project_id, const char *backup_id,
                const ops_restore_opts *ro, sm_err *err)
{
    restore_plan rp;
    project *src = NULL, *dst = NULL;
    int has_db, has_storage, has_config, rc = -1;

    memset(&rp, 0, sizeof(rp));
    rp.o = o;
    if (catalog_project_get(o->cat, project_id, &src, err) < 0 ||
        catalog_backup_get(o->cat, backup_id, &rp.b, err) < 0)
        goto out;
    if (strcmp(rp.b->project_id, src->id) != 0) {
        sm_err_set(err, SM_E_NOTFOUND, "backup '%s' is not a backup of project '%s'", backup_id,
                   project_id);
        goto out;
    }
    if (strcmp(rp.b->status, "COMPLETED") != 0 || !rp.b->snapshot_id) {
        sm_err_set(err, SM_E_INVALID, "backup '%s' is %s; only completed backups can be restored",
                   backup_id, rp.b->status);
        goto out;
    }
    if (ro->to_project && strcmp(ro->to_project, project_id) != 0) {
        if (catalog_project_get(o->cat, ro->to_project, &dst, err) < 0)
            goto out;
    }
    rp.src = src;
    rp.dst = dst ? dst : src;
    has_db = json_object_get(json_object_get(rp.b->meta, "parts"), "database") != NULL;
    has_storage = json_object_get(json_object_get(rp.b->meta, "parts"), "storage") != NULL;
    has_config = json_object_get(json_object_get(rp.b->meta, "parts"), "config") != NULL;
    if (!ro->database && !ro->storage && !ro->config) {
        rp.want_db = has_db;
        rp.want_storage = has_storage;
        rp.want_config = has_config;
    } else {
        rp.want_db = ro->database;
        rp.want_storage = ro->storage;
        rp.want_config = ro->config;
        if ((ro->database && !has_db) || (ro->storage && !has_storage) ||
            (ro->config && !has_config)) {
            sm_err_set(err, SM_E_INVALID, "backup '%s' (%s) has no %s part", backup_id,
                       rp.b->type,
                       ro->database && !has_db ? "database" : ro->storage && !has_storage
                                                                 ? "storage"
                                                                 : "config");
            sm_err_hint(err, "Choose parts the backup has (see `supamanager backup show %s`).",
                        backup_id);
            goto out;
        }
    }
    rp.no_safety = ro->no_safety_backup;
    rc = with_claim(o, rp.dst->id, "restore", err, restore_fn, &rp);
out:
    plan_free(&rp);
    backup_rec_free(rp.b);
    project_free(src);
    project_free(dst);
    return rc;
}

int ops_restore_undo(ops_ctx *o, const char *project_id, sm_err *err)
{
    backup_rec **v = NULL;
    size_t n = 0;
    const backup_rec *safety = NULL;
    ops_restore_opts ro;
    int rc;

    if (catalog_backup_list(o->cat, project_id, "safety", &v, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n && !safety; i++)
        if (!strcmp(v[i]->status, "COMPLETED"))
            safety = v[i];
    if (!safety) {
        backup_list_free(v, n);
        sm_err_set(err, SM_E_NOTFOUND, "project '%s' has no safety backup to go back to",
                   project_id);
        return sm_err_hint(err, "A safety backup is taken before every restore; none was found "
                                "(or it expired).");
    }
    memset(&ro, 0, sizeof(ro));
    sm_log(SM_LOG_INFO, "%s: undoing the last restore with safety backup %s", project_id,
           safety->id);
    rc = ops_restore(o, project_id, safety->id, &ro, err);
    backup_list_free(v, n);
    return rc;
}

/* ---- verify ---- */

typedef struct verify_arg {
    backup_rec *b;
    const project *p;
    int restore_test;
    json_t *report;
} verify_arg;

static void verify_line(void *ud, const char *line)
{
    json_array_append_new(json_object_get((json_t *)ud, "problems"), json_string(line));
}

static int verify_fn(ops_ctx *o, void *arg, sm_err *err)
{
    verify_arg *a = arg;
    store *st = NULL;
    repo *r = NULL;
    snapshot *s = NULL;
    repo_verify_opts vo;
    repo_verify_result vr;
    const char *refs[1] = {a->b->snapshot_id};
    char *work = NULL, *dump = NULL, *scratch = NULL;
    pg_server srv;
    int rc = -1;
    double t0;

    emit(o, "verify", 0, 0, 0, 0, -1);
    if (open_project_repo(o, a->p, 0, &st, &r, err) < 0 || repo_lock(r, 0, "verify", err) < 0)
        goto out;
    memset(&vo, 0, sizeof(vo));
    vo.refs = refs;
    vo.nrefs = 1;
    vo.report = verify_line;
    vo.report_ud = a->report;
    t0 = sm_mono();
    rc = repo_verify(r, &vo, &vr, err);
    json_object_set_new(a->report, "chunks_checked", json_integer((json_int_t)vr.blobs_checked));
    json_object_set_new(a->report, "bytes_checked", json_integer((json_int_t)vr.bytes_checked));
    json_object_set_new(a->report, "checksums_ok", json_boolean(rc == 0));
    json_object_set_new(a->report, "verify_s", json_real(sm_mono() - t0));
    if (rc < 0 || !a->restore_test)
        goto out;
    rc = -1;
    if (!json_object_get(json_object_get(a->b->meta, "parts"), "database")) {
        sm_err_set(err, SM_E_INVALID, "backup '%s' has no database part to test-restore",
                   a->b->id);
        goto out;
    }
    emit(o, "restore test", 50, 0, 0, 0, -1);
    t0 = sm_mono();
    if (pg_probe(a->p->db_url, &srv, err) < 0 || repo_snapshot_load(r, a->b->snapshot_id, &s, err) < 0)
        goto out;
    work = tmp_dir(o, "verify", err);
    if (!work)
        goto out;
    chmod(work, 0755);
    dump = sm_path_join(work, "database.dump");
    if (stream_to_file(r, s, "database", dump, NULL, 0, err) < 0 ||
        pg_dump_fill_offsets(dump, NULL, err) < 0)
        goto out;
    chmod(dump, 0644);
    {
        struct tm tm;
        time_t now = sm_now();
        char stamp[32];
        pg_restore_opts po;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
        scratch = sm_xasprintf("%s_smverify_%s", srv.dbname, stamp);
        memset(&po, 0, sizeof(po));
        po.work_dir = work;
        if (pg_restore_database(&srv, a->p->db_url, dump, scratch,
                                json_object_get(a->b->meta, "postgres"), &po, err) < 0)
            goto out;
        rc = pg_verify_counts(&srv, a->p->db_url, scratch, json_object_get(a->b->meta, "postgres"),
                              err);
        pg_drop_database(&srv, a->p->db_url, scratch, NULL);
    }
    json_object_set_new(a->report, "restore_test_ok", json_boolean(rc == 0));
    json_object_set_new(a->report, "restore_test_s", json_real(sm_mono() - t0));
    json_object_set(a->report, "row_counts",
                    json_object_get(json_object_get(a->b->meta, "postgres"), "row_counts"));
out:
    if (rc < 0 && !json_object_get(a->report, "error"))
        json_object_set_new(a->report, "error", json_string(err->msg));
    if (work)
        sm_rm_rf(work, NULL);
    free(work);
    free(dump);
    free(scratch);
    snapshot_free(s);
    close_repo(st, r);
    return rc;
}

int ops_backup_verify(ops_ctx *o, const char *backup_id, int restore_test, json_t **report,
                      sm_err *err)
{
    verify_arg a;
    project *p = NULL;
    int rc = -1;

    memset(&a, 0, sizeof(a));
    a.report = json_pack("{s:s,s:[]}", "backup_id", backup_id, "problems");
    a.restore_test = restore_test;
    if (catalog_backup_get(o->cat, backup_id, &a.b, err) < 0)
        goto out;
    if (strcmp(a.b->status, "COMPLETED") != 0 || !a.b->snapshot_id) {
        sm_err_set(err, SM_E_INVALID, "backup '%s' is %s; only completed backups can be verified",
                   backup_id, a.b->status);
        goto out;
    }
    if (catalog_project_get(o->cat, a.b->project_id, &p, err) < 0)
        goto out;
    a.p = p;
    rc = with_claim(o, p->id, "verify", err, verify_fn, &a);
out:
    json_object_set_new(a.report, "ok", json_boolean(rc == 0));
    if (report)
        *report = a.report;
    else
        json_decref(a.report);
    project_free(p);
    backup_rec_free(a.b);
    return rc;
}

/* ---- export ---- */

static json_t *export_metadata(const backup_rec *b)
{
    json_t *parts = json_object_get(b->meta, "parts"), *v;
    json_t *sums = json_object(), *sizes = json_object();
    const char *k;
    char now[32];

    json_object_foreach(parts, k, v)
    {
        json_object_set(sums, k, json_object_get(v, "sha256"));
        json_object_set(sizes, k, json_object_get(v, "size"));
    }
    sm_time_iso(now, sizeof(now), sm_now());
    return json_pack("{s:s,s:i,s:s,s:O,s:s,s:s,s:s,s:s,s:o,s:o,s:O,s:O,s:s}", "format",
                     "supamanager-export", "version", 1, "backup_id", b->id, "project",
                     json_object_get(b->meta, "project") ? json_object_get(b->meta, "project")
                                                         : json_null(),
                     "type", b->type, "kind", b->kind ? b->kind : "manual", "created_at",
                     b->created_at, "exported_at", now, "checksums", sums, "sizes", sizes,
                     "postgres",
                     json_object_get(b->meta, "postgres") ? json_object_get(b->meta, "postgres")
                                                          : json_null(),
                     "config_files",
                     json_object_get(b->meta, "config_files")
                         ? json_object_get(b->meta, "config_files")
                         : json_null(),
                     "tool", "supamanager");
}

typedef struct export_arg {
    backup_rec *b;
    const project *p;
    const char *out_path;
    const archive_export_opts *ao;
    char **written_path;
} export_arg;

static int export_fn(ops_ctx *o, void *arg, sm_err *err)
{
    export_arg *a = arg;
    store *st = NULL;
    repo *r = NULL;
    snapshot *s = NULL;
    json_t *md = NULL;
    char *path = NULL, *tmp = NULL;
    int fd = -1, rc = -1;
    archive_export_opts ao = *a->ao;
    prog pg;

    if (a->out_path) {
        path = sm_xstrdup(a->out_path);
    } else {
        /* backup_YYYYMMDD_HHMMSS_<type>.tar.gz, as the specification names them */
        time_t t = 0;
        struct tm tm;
        char stamp[32], type[32];
        sm_time_parse_iso(a->b->created_at, &t);
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
        snprintf(type, sizeof(type), "%s", a->b->type);
        for (char *c = type; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        path = sm_xasprintf("backup_%s_%s%s%s", stamp, type, archive_suffix(ao.compression),
                            ao.passphrase ? ".gpg" : "");
    }
    if (sm_exists(path)) {
        sm_err_set(err, SM_E_EXISTS, "'%s' already exists", path);
        sm_err_hint(err, "Choose another file with -o, or remove it first.");
        goto out;
    }
    if (open_project_repo(o, a->p, 0, &st, &r, err) < 0 || repo_lock(r, 0, "export", err) < 0 ||
        repo_snapshot_load(r, a->b->snapshot_id, &s, err) < 0)
        goto out;
    md = export_metadata(a->b);
    {
        /* what the archive will hold (special files are left out of it) */
        json_t *sums = NULL;
        if (archive_export_checksums(r, s, &sums, err) < 0)
            goto out;
        json_object_set_new(md, "checksums", sums);
    }
    tmp = sm_xasprintf("%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", tmp);
        goto out;
    }
    memset(&pg, 0, sizeof(pg));
    pg.o = o;
    pg.phase = "export";
    pg.total = a->b->size;
    pg.t0 = sm_mono();
    ao.progress = prog_cb;
    ao.progress_ud = &pg;
    emit(o, "export", 0, 0, a->b->size, 0, -1);
    if (archive_export(r, s, md, fd, &ao, NULL, err) < 0)
        goto out;
    if (fsync(fd) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot fsync '%s'", tmp);
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot rename '%s' to '%s'", tmp, path);
        goto out;
    }
    emit(o, "completed", 100, a->b->size, a->b->size, 0, 0);
    *a->written_path = path;
    path = NULL;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(path);
    json_decref(md);
    snapshot_free(s);
    close_repo(st, r);
    return rc;
}

int ops_export(ops_ctx *o, const char *backup_id, const char *out_path,
               const archive_export_opts *ao, char **written_path, sm_err *err)
{
    export_arg a;
    project *p = NULL;
    int rc = -1;

    memset(&a, 0, sizeof(a));
    *written_path = NULL;
    if (catalog_backup_get(o->cat, backup_id, &a.b, err) < 0)
        return -1;
    if (strcmp(a.b->status, "COMPLETED") != 0 || !a.b->snapshot_id) {
        sm_err_set(err, SM_E_INVALID, "backup '%s' is %s; only completed backups can be exported",
                   backup_id, a.b->status);
        goto out;
    }
    if (catalog_project_get(o->cat, a.b->project_id, &p, err) < 0)
        goto out;
    a.p = p;
    a.out_path = out_path;
    a.ao = ao;
    a.written_path = written_path;
    rc = with_claim(o, p->id, "export", err, export_fn, &a);
out:
    project_free(p);
    backup_rec_free(a.b);
    return rc;
}

/* ---- import ---- */

/* Records the extracted archive in dest as a backup of p (kind imported). */
static int ingest(ops_ctx *o, const project *p, const char *dest, json_t *md, char **backup_id,
                  sm_err *err)
{
    backup_rec *b = backup_rec_new();
    store *st = NULL;
    repo *r = NULL;
    repo_writer *w = NULL;
    json_t *meta = json_object(), *parts = json_object(), *tags = NULL;
    const char *type = json_string_value(json_object_get(md, "type"));
    char snap[65];
    int rc = -1;
    double t0 = sm_mono();
    static const char *files[][2] = {{"database", "database.dump"}, {"globals", "globals.sql"}};
    static const char *trees[][2] = {{"storage", "storage"}, {"config", "config"}};

    if (!type || ops_type_parse(type, &type, NULL) < 0)
        type = "FULL";
    b->id = new_backup_id(o->cat, p->id, sm_now(), err);
    if (!b->id)
        goto out;
    b->project_id = sm_xstrdup(p->id);
    b->type = sm_xstrdup(type);
    b->status = sm_xstrdup("CREATING");
    b->kind = sm_xstrdup("imported");
    sm_time_iso(b->created_at, sizeof(b->created_at), sm_now());
    b->pid = getpid();
    snprintf(b->host, sizeof(b->host), "%s", sm_hostname());
    if (catalog_backup_insert(o->cat, b, err) < 0)
        goto out;
    if (open_project_repo(o, p, 1, &st, &r, err) < 0 || repo_lock(r, 1, "import", err) < 0 ||
        repo_writer_new(&w, r, NULL, err) < 0)
        goto out;
    for (size_t i = 0; i < 2; i++) {
        char *f = sm_path_join(dest, files[i][1]);
        int fd;
        if (!sm_exists(f)) {
            free(f);
            continue;
        }
        fd = open(f, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || repo_writer_add_fd(w, files[i][0], fd, err) < 0) {
            if (fd < 0)
                sm_err_sys(err, SM_E_IO, "cannot open '%s'", f);
            if (fd >= 0)
                close(fd);
            free(f);
            goto out;
        }
        close(fd);
        free(f);
    }
    for (size_t i = 0; i < 2; i++) {
        char *d = sm_path_join(dest, trees[i][1]);
        int r2 = sm_is_dir(d) ? repo_writer_add_tree(w, trees[i][0], d, NULL, err) : 0;
        free(d);
        if (r2 < 0)
            goto out;
    }
    record_part(parts, repo_writer_streams(w), "database", "database");
    record_part(parts, repo_writer_streams(w), "globals", "globals");
    record_part(parts, repo_writer_streams(w), "storage", "storage");
    record_part(parts, repo_writer_streams(w), "config", "config");
    json_object_set_new(meta, "backup_id", json_string(b->id));
    json_object_set_new(meta, "project", json_pack("{s:s,s:s}", "id", p->id, "name", p->name));
    json_object_set_new(meta, "type", json_string(type));
    json_object_set_new(meta, "kind", json_string("imported"));
    json_object_set_new(meta, "created_at", json_string(b->created_at));
    json_object_set(meta, "imported_from", json_object_get(md, "backup_id"));
    if (json_object_get(md, "postgres"))
        json_object_set(meta, "postgres", json_object_get(md, "postgres"));
    json_object_set(meta, "parts", parts);
    tags = json_pack("[s,s,s]", b->id, type, "imported");
    if (repo_writer_commit(w, meta, tags, snap, err) < 0)
        goto out;
    b->snapshot_id = sm_xstrdup(snap);
    {
        const char *k;
        json_t *v;
        json_object_foreach(parts, k, v) b->size += (uint64_t)json_integer_value(
            json_object_get(v, "size"));
    }
    repo_writer_totals(w, NULL, NULL, &b->stored);
    *backup_id = sm_xstrdup(b->id);
    rc = 0;
out:
    if (b->status) {
        free(b->status);
        b->status = sm_xstrdup(rc == 0 ? "COMPLETED" : "FAILED");
        if (rc < 0)
            b->error = sm_xstrdup(err->msg);
        b->duration_s = sm_mono() - t0;
        sm_time_iso(b->finished_at, sizeof(b->finished_at), sm_now());
        json_decref(b->meta);
        b->meta = json_incref(meta);
        catalog_backup_update(o->cat, b, NULL);
    }
    repo_writer_free(w);
    close_repo(st, r);
    json_decref(tags);
    json_decref(parts);
    json_decref(meta);
    backup_rec_free(b);
    return rc;
}

typedef struct import_arg {
    const project *p;
    const char *dest;
    json_t *md;
    char **backup_id;
} import_arg;

static int import_fn(ops_ctx *o, void *arg, sm_err *err)
{
    import_arg *a = arg;
    restore_plan rp;
    backup_rec *b = NULL;
    int rc = -1;

    if (ingest(o, a->p, a->dest, a->md, a->backup_id, err) < 0)
        return -1;
    if (catalog_backup_get(o->cat, *a->backup_id, &b, err) < 0)
        return -1;
    memset(&rp, 0, sizeof(rp));
    rp.o = o;
    rp.b = b;
    rp.src = a->p;
    rp.dst = a->p;
    rp.want_db = json_object_get(json_object_get(b->meta, "parts"), "database") != NULL;
    rp.want_storage = json_object_get(json_object_get(b->meta, "parts"), "storage") != NULL;
    rp.want_config = json_object_get(json_object_get(b->meta, "parts"), "config") != NULL &&
                     a->p->config_dir && *a->p->config_dir;
    rp.no_safety = 1; /* a new project: nothing to keep */
    rc = restore_run(&rp, err);
    plan_free(&rp);
    backup_rec_free(b);
    return rc;
}

int ops_import(ops_ctx *o, const char *archive_path, const project *p, const char *passphrase,
               char **backup_id, sm_err *err)
{
    project *existing = NULL;
    char *work = NULL, *dest = NULL, *maint = NULL, *loc = NULL;
    json_t *md = NULL;
    pg_server srv;
    int created_db = 0, created_storage = 0, created_config = 0, added = 0, rc = -1, exists = 0;
    archive_import_limits lim;
    import_arg a;
    sm_err e2 = SM_ERR_INIT;

    *backup_id = NULL;
    if (project_id_check(p->id, err) < 0)
        return -1;
    if (catalog_project_get(o->cat, p->id, &existing, &e2) == 0) {
        project_free(existing);
        sm_err_set(err, SM_E_EXISTS, "project '%s' already exists", p->id);
        return sm_err_hint(err, "Import into a new project id, or restore into the existing "
                                "project with `supamanager restore`.");
    }
    if (!p->storage_dir || p->storage_dir[0] != '/')
        return sm_err_set(err, SM_E_USAGE, "--storage-dir must be an absolute path");
    if (!p->db_url || !*p->db_url)
        return sm_err_set(err, SM_E_USAGE, "a project needs a database URL (--db-url)");

    /* 1. the archive, checked and extracted where nobody else looks */
    work = tmp_dir(o, "import", err);
    if (!work)
        goto out;
    dest = sm_path_join(work, "archive");
    if (mkdir(dest, 0700) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", dest);
        goto out;
    }
    memset(&lim, 0, sizeof(lim));
    emit(o, "check archive", 0, 0, 0, 0, -1);
    if (archive_import(archive_path, dest, passphrase, &lim, &md, err) < 0)
        goto out;

    /* 2. the database (created when missing) and the storage directory */
    maint = pg_url_with_db(p->db_url, "postgres");
    if (pg_probe(maint, &srv, err) < 0)
        goto out;
    {
        pg_server target;
        char *dbname;
        if (pg_probe(p->db_url, &target, &e2) == 0) {
            exists = 1;
        } else {
            /* the URL's database does not exist yet: find its name */
            const char *q = strrchr(p->db_url, '/');
            const char *end = q ? strchr(q, '?') : NULL;
            dbname = q ? sm_xstrndup(q + 1, end ? (size_t)(end - q - 1) : strlen(q + 1))
                       : sm_xstrdup("postgres");
            if (pg_database_exists(&srv, maint, dbname, &exists, err) < 0) {
                free(dbname);
                goto out;
            }
            if (exists) {
                free(dbname);
                sm_err_copy(err, &e2);
                goto out;
            }
            if (pg_create_database(&srv, maint, dbname, err) < 0) {
                free(dbname);
                goto out;
            }
            created_db = 1;
            free(dbname);
        }
    }
    if (!sm_exists(p->storage_dir)) {
        if (sm_mkdir_p(p->storage_dir, 0755, err) < 0)
            goto out;
        created_storage = 1;
    }
    if (p->config_dir && *p->config_dir && !sm_exists(p->config_dir)) {
        if (sm_mkdir_p(p->config_dir, 0755, err) < 0)
            goto out;
        created_config = 1;
    }

    /* 3. the project, its first backup (the archive), and the restore */
    if (ops_project_add(o, p, 1, err) < 0)
        goto out;
    added = 1;
    a.p = p;
    a.dest = dest;
    a.md = md;
    a.backup_id = backup_id;
    rc = with_claim(o, p->id, "import", err, import_fn, &a);
out:
    if (rc < 0) {
        /* a failed import leaves nothing behind */
        if (added) {
            loc = project_repo_location(o->cat, p);
            catalog_project_remove(o->cat, p->id, NULL);
            sm_rm_rf(loc, NULL);
        }
        if (created_db) {
            const char *q = strrchr(p->db_url, '/');
            const char *end = q ? strchr(q, '?') : NULL;
            char *dbname = q ? sm_xstrndup(q + 1, end ? (size_t)(end - q - 1) : strlen(q + 1))
                             : NULL;
            if (dbname)
                pg_drop_database(&srv, maint, dbname, NULL);
            free(dbname);
        }
        if (created_storage)
            sm_rm_rf(p->storage_dir, NULL);
        if (created_config)
            sm_rm_rf(p->config_dir, NULL);
        free(*backup_id);
        *backup_id = NULL;
    }
    if (work)
        sm_rm_rf(work, NULL);
    free(work);
    free(dest);
    free(maint);
    free(loc);
    json_decref(md);
    return rc;
}

/* ---- for the other operations of src/job (ops_intern.h) ---- */

void ops_emit(ops_ctx *o, const char *phase, double pct, uint64_t done, uint64_t total,
              double rate, double eta)
{
    emit(o, phase, pct, done, total, rate, eta);
}

int ops_run_command(const char *cmd, const char *what, sm_err *err)
{
    return run_command(cmd, what, err);
}

int ops_open_project_repo(ops_ctx *o, const project *p, int create, store **st, repo **r,
                          sm_err *err)
{
    return open_project_repo(o, p, create, st, r, err);
}

void ops_close_repo(store *st, repo *r)
{
    close_repo(st, r);
}

char *ops_tmp_dir(ops_ctx *o, const char *prefix, sm_err *err)
{
    return tmp_dir(o, prefix, err);
}

int ops_with_claim(ops_ctx *o, const char *project_id, const char *kind, sm_err *err,
                   int (*fn)(ops_ctx *o, void *arg, sm_err *err), void *arg)
{
    return with_claim(o, project_id, kind, err, fn, arg);
}
