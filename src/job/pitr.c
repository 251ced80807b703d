/* Point-in-time recovery (see pitr.h and docs/PITR.md). */
/* libarchive's deprecated archive_compression() clashes with our enum
 * (job/archive.h): renamed away here, as in archive.c */
#define archive_compression la_deprecated_archive_compression
#include <archive.h>
#include <archive_entry.h>
#undef archive_compression

#include "job/pitr.h"

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "job/ops_intern.h"
#include "repo/crypto.h"
#include "source/pg.h"

#include <ctype.h>
#include <glob.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DONE_DIR ".done"             /* spool: markers of files already in the repository */
#define RESTORE_WAL_DIR "supamanager_restore_wal" /* inside a data directory being recovered */
#define PUSH_BATCH_FILES 64
#define PROMOTE_TIMEOUT_S 3600

/* ---- WAL file names ---- */

enum { WAL_SEGMENT, WAL_HISTORY, WAL_PARTIAL, WAL_BACKUP };

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i]))
            return 0;
    return 1;
}

/* The kind of a WAL archive file name, or -1 when it is not one. */
static int wal_kind(const char *name)
{
    size_t n = strlen(name);

    if (n == 24 && all_hex(name, 24))
        return WAL_SEGMENT;
    if (n == 16 && all_hex(name, 8) && !strcmp(name + 8, ".history"))
        return WAL_HISTORY;
    if (n == 32 && all_hex(name, 24) && !strcmp(name + 24, ".partial"))
        return WAL_PARTIAL;
    if (n == 40 && all_hex(name, 24) && name[24] == '.' && all_hex(name + 25, 8) &&
        !strcmp(name + 33, ".backup"))
        return WAL_BACKUP;
    return -1;
}

static uint32_t hex32(const char *s)
{
    char b[9];
    memcpy(b, s, 8);
    b[8] = '\0';
    return (uint32_t)strtoul(b, NULL, 16);
}

/* Segment number of a segment-like name (segment, partial, backup) for a
 * segment size; -1 for history files. */
static int64_t wal_segno(const char *name, uint64_t seg_size)
{
    uint64_t per_id = 0x100000000ULL / seg_size;

    if (wal_kind(name) == WAL_HISTORY)
        return -1;
    return (int64_t)((uint64_t)hex32(name + 8) * per_id + hex32(name + 16));
}

static void wal_name(char out[25], uint32_t tli, int64_t segno, uint64_t seg_size)
{
    uint64_t per_id = 0x100000000ULL / seg_size;
    snprintf(out, 25, "%08X%08X%08X", tli, (uint32_t)((uint64_t)segno / per_id),
             (uint32_t)((uint64_t)segno % per_id));
}

static int parse_lsn(const char *s, uint64_t *out)
{
    unsigned int hi, lo;
    char tail;

    if (!s || sscanf(s, "%X/%X%c", &hi, &lo, &tail) != 2)
        return -1;
    *out = ((uint64_t)hi << 32) | lo;
    return 0;
}

/* ---- time ---- */

int pitr_parse_time(const char *s, time_t *out)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0, sign = 0;
    const char *p;
    time_t t;

    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return -1;
    p = s + 10;
    if (*p != 'T' && *p != ' ')
        return -1;
    p++;
    if (sscanf(p, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
        return -1;
    p += 8;
    if (*p == '.') /* fractions of a second: checked, then dropped */
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    while (*p == ' ')
        p++;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
            return -1;
        oh = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
            om = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
        }
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || oh > 14 ||
        om > 59)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t - sign * (oh * 3600 + om * 60);
    return 0;
}

/* The fractional part of a time as written ("" or ".25"), for PostgreSQL. */
static void time_fraction(const char *s, char *out, size_t cap)
{
    const char *p = strchr(s + 10, '.');
    size_t n = 0;

    out[0] = '\0';
    if (!p)
        return;
    while (isdigit((unsigned char)p[1 + n]) && n < 6)
        n++;
    if (n)
        snprintf(out, cap, ".%.*s", (int)n, p + 1);
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_int_t jint(const json_t *o, const char *k, json_int_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static time_t jtime(const json_t *o, const char *k)
{
    time_t t = 0;
    const char *s = jstr(o, k);
    if (!s || sm_time_parse_iso(s, &t) < 0)
        return 0;
    return t;
}

/* ---- files ---- */

static int sha256_file(const char *path, char hex[65], uint64_t *size, sm_err *err)
{
    unsigned char buf[64 * 1024], md[32];
    sha256_ctx *s;
    uint64_t total = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO, "cannot open '%s'",
                          path);
    s = sha256_new();
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            sm_err_sys(err, SM_E_IO, "cannot read '%s'", path);
            sha256_free(s);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        sha256_update(s, buf, (size_t)r);
        total += (uint64_t)r;
    }
    close(fd);
    sha256_final(s, md);
    sha256_free(s);
    sm_hex(hex, md, 32);
    if (size)
        *size = total;
    return 0;
}

/* Copies src to dst (created exclusively, mode 0600), fsynced; computes the
 * SHA-256 of what was copied. */
static int copy_durable(const char *src, const char *dst, uid_t uid, gid_t gid, char hex[65],
                        sm_err *err)
{
    unsigned char buf[128 * 1024], md[32];
    sha256_ctx *s = NULL;
    int in = -1, out = -1, rc = -1;

    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO, "cannot open '%s'",
                          src);
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", dst);
        goto out;
    }
    s = sha256_new();
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
        sha256_update(s, buf, (size_t)r);
        if (sm_write_all(out, buf, (size_t)r, dst, err) < 0)
            goto out;
    }
    if (uid != (uid_t)-1 && fchown(out, uid, gid) < 0 && errno != EPERM) {
        sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", dst);
        goto out;
    }
    if (fsync(out) < 0) {
        sm_err_sys(err, SM_E_IO, "cannot flush '%s' to disk", dst);
        goto out;
    }
    sha256_final(s, md);
    if (hex)
        sm_hex(hex, md, 32);
    rc = 0;
out:
    sha256_free(s);
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) < 0 && rc == 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot write '%s'", dst);
    if (rc < 0 && out >= 0)
        unlink(dst);
    return rc;
}

/* The hash recorded in spool/.done/<name>, when there is one (0, or 1). */
static int done_marker(const char *spool, const char *name, char hex[65])
{
    char path[PATH_MAX];
    sm_buf b = SM_BUF_INIT;
    sm_err e = SM_ERR_INIT;
    int rc = 1;

    snprintf(path, sizeof(path), "%s/%s/%s", spool, DONE_DIR, name);
    if (sm_read_file(path, &b, 256, 0, &e) == 0 && b.len >= 64) {
        memcpy(hex, b.data, 64);
        hex[64] = '\0';
        rc = 0;
    }
    sm_buf_release(&b);
    return rc;
}

static int spool_add(const char *spool, const char *path, sm_err *err)
{
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char final[PATH_MAX], tmp[PATH_MAX], have[65], mine[65];
    struct stat st;
    int rc = -1;

    if (wal_kind(name) < 0) {
        sm_err_set(err, SM_E_INVALID, "'%s' is not a WAL file name", name);
        return sm_err_hint(err, "archive_command passes %%p: the path of a file in pg_wal.");
    }
    if (stat(spool, &st) < 0 || !S_ISDIR(st.st_mode)) {
        sm_err_sys(err, SM_E_NOTFOUND, "the WAL spool '%s' is not a directory", spool);
        return sm_err_hint(err, "`supamanager pitr enable` creates it; the server's user must be "
                                "able to write there.");
    }
    snprintf(final, sizeof(final), "%s/%s", spool, name);
    snprintf(tmp, sizeof(tmp), "%s/.tmp.%s.%ld", spool, name, (long)getpid());
    unlink(tmp); /* a leftover of a dead process that had our pid */
    if (copy_durable(path, tmp, (uid_t)-1, (gid_t)-1, mine, err) < 0)
        return -1;
    /* link, not rename: an existing file of that name is never replaced */
    if (link(tmp, final) == 0) {
        if (sm_fsync_dir(spool, 0, err) < 0) {
            unlink(final);
            goto out;
        }
        rc = 0;
        goto out;
    }
    if (errno != EEXIST) {
        sm_err_sys(err, SM_E_IO, "cannot add '%s' to the WAL spool '%s'", name, spool);
        goto out;
    }
    if (sha256_file(final, have, NULL, err) < 0)
        goto out;
    if (!strcmp(have, mine)) {
        rc = 0; /* archived before, identical: PostgreSQL retried */
        goto out;
    }
    sm_err_set(err, SM_E_CONFLICT,
               "WAL file %s is already archived with different content (%.12s, this one %.12s)",
               name, have, mine);
    sm_err_hint(err, "Two servers may be archiving into one spool, or a restored server reuses "
                     "a timeline: check archive_command on each server.");
out:
    unlink(tmp);
    return rc;
}

/* Also checks the markers of files already moved to the repository. */
int pitr_wal_push_spool(const char *spool, const char *path, sm_err *err)
{
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char have[65], mine[65];

    if (wal_kind(name) >= 0 && done_marker(spool, name, have) == 0) {
        if (sha256_file(path, mine, NULL, err) < 0)
            return -1;
        if (!strcmp(have, mine))
            return 0;
        sm_err_set(err, SM_E_CONFLICT,
                   "WAL file %s is already archived with different content (%.12s, this one "
                   "%.12s)",
                   name, have, mine);
        return sm_err_hint(err, "Two servers may be archiving into one repository, or a "
                                "restored server reuses a timeline: check archive_command on "
                                "each server.");
    }
    return spool_add(spool, path, err);
}

/* ---- settings ---- */

static int load_settings(ops_ctx *o, const char *project_id, project **p, json_t **doc,
                         sm_err *err)
{
    int r;

    *p = NULL;
    *doc = NULL;
    if (catalog_project_get(o->cat, project_id, p, err) < 0)
        return -1;
    r = catalog_pitr_get(o->cat, project_id, doc, err);
    if (r < 0)
        goto fail;
    if (r == 1) {
        sm_err_set(err, SM_E_INVALID, "point-in-time recovery is not enabled for project '%s'",
                   project_id);
        sm_err_hint(err, "Enable it: supamanager pitr enable %s --data-dir DIR --stop-cmd CMD "
                         "--start-cmd CMD",
                    project_id);
        goto fail;
    }
    return 0;
fail:
    project_free(*p);
    *p = NULL;
    return -1;
}

static uint64_t seg_size_of(const json_t *doc)
{
    json_int_t v = jint(doc, "wal_segment_size", 16 * 1024 * 1024);
    if (v < 1024 * 1024 || (v & (v - 1)))
        v = 16 * 1024 * 1024;
    return (uint64_t)v;
}

/* ---- the repository side ---- */

/* Opens the project's repository and takes the exclusive lock, waiting up
 * to wait_s seconds for another writer (0: not at all: returns 1). */
static int open_locked(ops_ctx *o, const project *p, int exclusive, int wait_s, store **st,
                       repo **r, sm_err *err)
{
    double until = sm_mono() + wait_s;

    if (ops_open_project_repo(o, p, 1, st, r, err) < 0)
        return -1;
    for (;;) {
        sm_err e = SM_ERR_INIT;
        if (repo_lock(*r, exclusive, exclusive ? "pitr" : "pitr-restore", &e) == 0)
            return 0;
        if (e.code != SM_E_LOCKED || sm_mono() >= until) {
            ops_close_repo(*st, *r);
            *st = NULL;
            *r = NULL;
            if (e.code == SM_E_LOCKED && wait_s == 0)
                return 1;
            sm_err_copy(err, &e);
            return -1;
        }
        if (o->cancel && *o->cancel) {
            ops_close_repo(*st, *r);
            *st = NULL;
            *r = NULL;
            return sm_err_set(err, SM_E_INTERRUPTED, "interrupted");
        }
        usleep(200 * 1000);
    }
}

typedef struct spooled {
    char name[48];
    char path[PATH_MAX];
    time_t mtime;
} spooled;

static int spooled_cmp(const void *a, const void *b)
{
    const spooled *x = a, *y = b;
    int hx = wal_kind(x->name) == WAL_HISTORY, hy = wal_kind(y->name) == WAL_HISTORY;
    if (hx != hy)
        return hy - hx; /* history files first */
    return strcmp(x->name + 8, y->name + 8) ? strcmp(x->name + 8, y->name + 8)
                                            : strcmp(x->name, y->name);
}

/* The WAL files waiting in a spool (and removes leftovers of writers that
 * died: temporary files older than an hour). */
static int spool_scan(const char *spool, spooled **out, size_t *n, sm_err *err)
{
    DIR *d = opendir(spool);
    struct dirent *de;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (!d)
        return sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO,
                          "cannot read the WAL spool '%s'", spool);
    while ((de = readdir(d))) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", spool, de->d_name);
        if (!strncmp(de->d_name, ".tmp.", 5)) {
            if (stat(path, &st) == 0 && time(NULL) - st.st_mtime > 3600)
                unlink(path);
            continue;
        }
        if (wal_kind(de->d_name) < 0 || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        sm_grow((void **)out, &cap, *n + 1, sizeof(**out));
        snprintf((*out)[*n].name, sizeof((*out)[*n].name), "%s", de->d_name);
        snprintf((*out)[*n].path, sizeof((*out)[*n].path), "%s", path);
        (*out)[*n].mtime = st.st_mtime;
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof(**out), spooled_cmp);
    return 0;
}

static int write_marker(const char *spool, const char *name, const char *hex, sm_err *err)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct stat st;

    snprintf(dir, sizeof(dir), "%s/%s", spool, DONE_DIR);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (sm_mkdir_p(dir, 0755, err) < 0)
        return -1;
    if (stat(spool, &st) == 0 && geteuid() == 0 && chown(dir, st.st_uid, st.st_gid) < 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", dir);
    if (sm_write_file_atomic(path, hex, 64, 0, err) < 0)
        return -1;
    chmod(path, 0644);
    return 0;
}

static void remove_marker(const char *spool, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s/%s", spool, DONE_DIR, name);
    unlink(path);
}

/* The archive's index as a name -> entry map (caller decrefs). */
static json_t *wal_map(const json_t *list)
{
    json_t *m = json_object(), *w;
    size_t i;
    json_array_foreach(list, i, w) json_object_set(m, jstr(w, "name"), w);
    return m;
}

/* Moves the spool into the repository; waits up to wait_s for the lock
 * (0: returns at once when it is taken). */
static int push_impl(ops_ctx *o, const char *project_id, int wait_s, unsigned *pushed, sm_err *err)
{
    project *p = NULL;
    json_t *doc = NULL, *idx = NULL, *map = NULL, *meta = NULL, *files = NULL, *recs = NULL;
    spooled *v = NULL;
    size_t n = 0, i, take;
    store *st = NULL;
    repo *r = NULL;
    repo_writer *w = NULL;
    const char *spool;
    char id[65];
    int rc = -1, lr;
    uint64_t seg_size;

    if (pushed)
        *pushed = 0;
    if (load_settings(o, project_id, &p, &doc, err) < 0)
        return -1;
    spool = jstr(doc, "spool_dir");
    seg_size = seg_size_of(doc);
    if (spool_scan(spool, &v, &n, err) < 0)
        goto out;
    if (n == 0) {
        rc = 0;
        goto out;
    }
    lr = open_locked(o, p, 1, wait_s, &st, &r, err);
    if (lr != 0) {
        rc = lr > 0 ? 0 : -1; /* busy: the spool keeps them */
        goto out;
    }
    /* again under the lock: another pusher may have moved them meanwhile */
    free(v);
    if (spool_scan(spool, &v, &n, err) < 0)
        goto out;
    if (catalog_wal_list(o->cat, project_id, &idx, err) < 0)
        goto out;
    map = wal_map(idx);
    for (i = 0; i < n; i += take) {
        json_t *wf;
        take = 0;
        files = json_array();
        recs = json_array();
        if (repo_writer_new(&w, r, NULL, err) < 0)
            goto out;
        size_t consumed = 0, j2;
        for (size_t k = i; k < n && consumed < PUSH_BATCH_FILES; k++, consumed++) {
            char hex[65], stream[64];
            uint64_t size;
            json_t *old = json_object_get(map, v[k].name);
            int fd;

            if (sha256_file(v[k].path, hex, &size, err) < 0) {
                if (err->code != SM_E_NOTFOUND)
                    goto out;
                sm_err_clear(err); /* moved by another pusher */
                continue;
            }
            if (old) { /* pushed before (a retry after a crash): must be the same */
                if (strcmp(jstr(old, "sha256"), hex)) {
                    sm_err_set(err, SM_E_CONFLICT,
                               "WAL file %s in the spool differs from the one archived at %s",
                               v[k].name, jstr(old, "archived_at"));
                    sm_err_hint(err, "Two servers may be archiving into one spool; the file "
                                     "stays in %s for inspection.",
                                spool);
                    goto out;
                }
                json_array_append_new(recs, json_pack("{s:s,s:s,s:b}", "name", v[k].name,
                                                      "sha256", hex, "dup", 1));
                continue;
            }
            snprintf(stream, sizeof(stream), "wal-%s", v[k].name);
            fd = open(v[k].path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                sm_err_sys(err, SM_E_IO, "cannot open '%s'", v[k].path);
                goto out;
            }
            lr = repo_writer_add_fd(w, stream, fd, err);
            close(fd);
            if (lr < 0)
                goto out;
            {
                char at[32];
                sm_time_iso(at, sizeof(at), v[k].mtime);
                json_t *rec = json_pack("{s:s,s:I,s:I,s:s,s:I,s:s}", "name", v[k].name,
                                        "timeline", (json_int_t)hex32(v[k].name), "segno",
                                        (json_int_t)wal_segno(v[k].name, seg_size), "sha256",
                                        hex, "size", (json_int_t)size, "archived_at", at);
                if (wal_kind(v[k].name) == WAL_HISTORY) { /* the timeline's ancestry */
                    sm_buf text = SM_BUF_INIT;
                    if (sm_read_file(v[k].path, &text, 1 << 20, 0, err) < 0) {
                        json_decref(rec);
                        goto out;
                    }
                    json_object_set_new(rec, "content", json_stringn(sm_buf_str(&text), text.len));
                    sm_buf_release(&text);
                }
                json_array_append_new(files, json_string(v[k].name));
                json_array_append_new(recs, rec);
            }
        }
        if (json_array_size(files)) {
            meta = json_pack("{s:s,s:s,s:O}", "kind", "pitr-wal", "project", project_id, "files",
                             files);
            if (repo_writer_commit(w, meta, NULL, id, err) < 0)
                goto out;
        }
        repo_writer_free(w);
        w = NULL;
        /* the manifest is committed: index, mark, then drop from the spool */
        json_array_foreach(recs, j2, wf)
        {
            const char *name = jstr(wf, "name");
            char path[PATH_MAX];
            if (!json_is_true(json_object_get(wf, "dup"))) {
                json_object_set_new(wf, "snapshot_id", json_string(id));
                if (catalog_wal_add(o->cat, project_id, wf, err) < 0)
                    goto out;
                json_object_set(map, name, wf);
            }
            if (write_marker(spool, name, jstr(wf, "sha256"), err) < 0)
                goto out;
            snprintf(path, sizeof(path), "%s/%s", spool, name);
            unlink(path);
            if (pushed && !json_is_true(json_object_get(wf, "dup")))
                (*pushed)++;
        }
        take = consumed;
        json_decref(files);
        json_decref(recs);
        json_decref(meta);
        files = recs = meta = NULL;
        if (sm_fsync_dir(spool, 0, err) < 0)
            goto out;
    }
    rc = 0;
out:
    repo_writer_free(w);
    ops_close_repo(st, r);
    json_decref(files);
    json_decref(recs);
    json_decref(meta);
    json_decref(map);
    json_decref(idx);
    json_decref(doc);
    project_free(p);
    free(v);
    return rc;
}

int pitr_push(ops_ctx *o, const char *project_id, unsigned *pushed, sm_err *err)
{
    return push_impl(o, project_id, 0, pushed, err);
}

/* ---- continuity, along one timeline's history ---- */

#define MAX_TLS 128

/* The WAL a recovery to one timeline reads: for each segment number, the
 * file of the newest timeline of the target's history that had begun by
 * then (as PostgreSQL picks them). */
typedef struct walpath {
    json_t *map; /* name -> index entry */
    uint64_t seg_size;
    int n;
    uint32_t tli[MAX_TLS];
    int64_t begin[MAX_TLS]; /* first segment of tli[i] */
    uint64_t end[MAX_TLS];  /* the LSN where the path leaves tli[i] (UINT64_MAX: never) */
} walpath;

/* The newest timeline the archive has a history file for (1 when none):
 * what recovery_target_timeline = 'latest' follows. */
static uint32_t latest_tli(const json_t *idx)
{
    uint32_t m = 1;
    json_t *w;
    size_t i;
    json_array_foreach(idx, i, w) if (wal_kind(jstr(w, "name")) == WAL_HISTORY &&
                                      hex32(jstr(w, "name")) > m) m = hex32(jstr(w, "name"));
    return m;
}

/* Builds the path to timeline target from its history file
 * ("parentTLI<TAB>switchpoint<TAB>reason" lines). */
static void walpath_init(walpath *wp, const json_t *idx, uint32_t target, uint64_t seg_size)
{
    char hname[32];
    const char *text = NULL;
    json_t *w;

    memset(wp, 0, sizeof(*wp));
    wp->map = wal_map(idx);
    wp->seg_size = seg_size;
    snprintf(hname, sizeof(hname), "%08X.history", target);
    w = json_object_get(wp->map, hname);
    if (w)
        text = jstr(w, "content");
    while (text && *text && wp->n < MAX_TLS - 1) {
        unsigned parent, hi, lo;
        const char *nl = strchr(text, '\n');
        if (sscanf(text, "%u %X/%X", &parent, &hi, &lo) == 3) {
            wp->tli[wp->n] = parent;
            wp->end[wp->n] = ((uint64_t)hi << 32) | lo;
            wp->begin[wp->n] = wp->n ? wp->begin[wp->n] : 0;
            wp->n++;
            wp->begin[wp->n] = (int64_t)((((uint64_t)hi << 32) | lo) / seg_size);
        }
        text = nl ? nl + 1 : NULL;
    }
    wp->tli[wp->n] = target;
    wp->end[wp->n] = UINT64_MAX;
    if (!wp->n)
        wp->begin[0] = 0;
    wp->n++;
}

static void walpath_free(walpath *wp)
{
    json_decref(wp->map);
    wp->map = NULL;
}

/* The timeline of an LSN on the path: the newest whose start is at or
 * before it (as PostgreSQL reads a history newest first). */
static uint32_t tli_of_lsn(const walpath *wp, uint64_t lsn)
{
    for (int i = wp->n - 1; i > 0; i--)
        if (wp->end[i - 1] <= lsn)
            return wp->tli[i];
    return wp->tli[0];
}

/* Whether a base backup lies on the path: the path runs on the backup's
 * timeline from its start to its end. */
static int base_on_path(const walpath *wp, const json_t *b)
{
    uint64_t start = 0, end = 0;
    uint32_t tli = (uint32_t)jint(b, "timeline", 1);

    if (parse_lsn(jstr(b, "start_lsn"), &start) < 0 || parse_lsn(jstr(b, "end_lsn"), &end) < 0)
        return 0;
    return tli_of_lsn(wp, start) == tli && tli_of_lsn(wp, end) == tli;
}

static uint32_t tli_for(const walpath *wp, int64_t segno)
{
    for (int i = wp->n - 1; i > 0; i--)
        if (wp->begin[i] <= segno)
            return wp->tli[i];
    return wp->tli[0];
}

/* The archived file a recovery reads for segno, or NULL. */
static json_t *path_file(const walpath *wp, int64_t segno)
{
    char name[25];
    wal_name(name, tli_for(wp, segno), segno, wp->seg_size);
    return json_object_get(wp->map, name);
}

/* The highest segment on the path that is archived (-1: none). */
static int64_t last_segno(const walpath *wp)
{
    int64_t m = -1;
    const char *k;
    json_t *w;
    json_object_foreach(wp->map, k, w)
    {
        int64_t sg = jint(w, "segno", -1);
        if (wal_kind(k) == WAL_SEGMENT && sg > m && tli_for(wp, sg) == hex32(k))
            m = sg;
    }
    return m;
}

/* The first segment in [from, upto] the path lacks, or -1. */
static int64_t first_gap(const walpath *wp, int64_t from, int64_t upto)
{
    for (int64_t sg = from; sg <= upto; sg++)
        if (!path_file(wp, sg))
            return sg;
    return -1;
}

/* Archive time of the last file before segno on the path (0: none). */
static time_t archived_before(const walpath *wp, int64_t segno)
{
    int64_t best = -1;
    time_t t = 0;
    const char *k;
    json_t *w;

    json_object_foreach(wp->map, k, w)
    {
        int64_t sg = jint(w, "segno", -1);
        if (wal_kind(k) == WAL_SEGMENT && sg < segno && sg > best && tli_for(wp, sg) == hex32(k)) {
            best = sg;
            t = jtime(w, "archived_at");
        }
    }
    return t;
}

/* The first segment from `from` on the path archived at or after t (-1: none). */
static int64_t segno_at(const walpath *wp, int64_t from, time_t t)
{
    int64_t last = last_segno(wp);
    for (int64_t sg = from; sg <= last; sg++) {
        json_t *w = path_file(wp, sg);
        if (w && jtime(w, "archived_at") >= t)
            return sg;
    }
    return -1;
}

static int64_t base_start_segno(const json_t *b, uint64_t seg_size)
{
    uint64_t lsn = 0;
    if (parse_lsn(jstr(b, "start_lsn"), &lsn) < 0)
        return -1;
    return (int64_t)(lsn / seg_size);
}

/* Every gap on the path from the oldest base backup on:
 * [{missing_from, missing_to, after, breaks}]. */
static json_t *find_gaps(const walpath *wp, const json_t *bases)
{
    json_t *gaps = json_array();
    int64_t from, last = last_segno(wp);
    char a[25], b[25], at[32];

    const json_t *bb;
    size_t i;

    from = -1;
    json_array_foreach(bases, i, bb) if (from < 0 && base_on_path(wp, bb)) from =
        base_start_segno(bb, wp->seg_size);
    if (from < 0 || last < 0)
        return gaps;
    while (from >= 0 && from <= last) {
        int64_t g = first_gap(wp, from, last), end;
        time_t t;
        if (g < 0)
            break;
        for (end = g + 1; end <= last && !path_file(wp, end); end++)
            ;
        wal_name(a, tli_for(wp, g), g, wp->seg_size);
        wal_name(b, tli_for(wp, end - 1), end - 1, wp->seg_size);
        t = archived_before(wp, g);
        sm_time_iso(at, sizeof(at), t);
        json_array_append_new(
            gaps, json_pack("{s:s,s:s,s:s?,s:s}", "missing_from", a, "missing_to", b, "after",
                            t ? at : NULL, "breaks",
                            t ? "recovery to any time after 'after' (until a newer base backup)"
                              : "recovery from the base backups before it"));
        from = end;
    }
    return gaps;
}

/* ---- status ---- */

static int spool_count(const char *spool, time_t *oldest)
{
    spooled *v = NULL;
    size_t n = 0;
    sm_err e = SM_ERR_INIT;

    *oldest = 0;
    if (spool_scan(spool, &v, &n, &e) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!*oldest || v[i].mtime < *oldest)
            *oldest = v[i].mtime;
    free(v);
    return (int)n;
}

int pitr_status(ops_ctx *o, const char *project_id, json_t **out, sm_err *err)
{
    project *p = NULL;
    json_t *doc = NULL, *idx = NULL, *bases = NULL, *gaps, *tls, *w, *b;
    walpath wp;
    time_t now = sm_now(), earliest = 0, latest = 0, oldest_spooled, newest = 0;
    int r, pending;
    size_t i;
    uint64_t seg_size, bytes = 0;
    char t1[32], t2[32], t3[32];

    *out = NULL;
    if (catalog_project_get(o->cat, project_id, &p, err) < 0)
        return -1;
    r = catalog_pitr_get(o->cat, project_id, &doc, err);
    project_free(p);
    if (r < 0)
        return -1;
    if (r == 1) {
        *out = json_pack("{s:s,s:b}", "project_id", project_id, "enabled", 0);
        return 0;
    }
    seg_size = seg_size_of(doc);
    if (catalog_wal_list(o->cat, project_id, &idx, err) < 0 ||
        catalog_base_list(o->cat, project_id, &bases, err) < 0) {
        json_decref(doc);
        json_decref(idx);
        return -1;
    }
    walpath_init(&wp, idx, latest_tli(idx), seg_size);
    gaps = find_gaps(&wp, bases);
    tls = json_array();
    json_array_foreach(idx, i, w)
    {
        json_int_t tl = jint(w, "timeline", 0);
        int seen = 0;
        json_t *x;
        size_t k;
        bytes += (uint64_t)jint(w, "size", 0);
        if (jtime(w, "archived_at") > newest)
            newest = jtime(w, "archived_at");
        json_array_foreach(tls, k, x) if (json_integer_value(x) == tl) seen = 1;
        if (!seen)
            json_array_append_new(tls, json_integer(tl));
    }
    /* the window: from the end of the oldest base backup whose WAL is
     * complete from its start, to the newest archived file reachable
     * without crossing a gap */
    json_array_foreach(bases, i, b)
    {
        if (!base_on_path(&wp, b))
            continue; /* on a branch of history the newest timeline left */
        int64_t s = base_start_segno(b, seg_size), last = last_segno(&wp),
                g = first_gap(&wp, s, last);
        time_t end = jtime(b, "finished_at");
        time_t reach = g < 0 ? (last >= 0 ? jtime(path_file(&wp, last), "archived_at") : 0)
                             : archived_before(&wp, g);
        if (!earliest && (g < 0 || reach >= end))
            earliest = end;
        if (reach > latest)
            latest = reach;
        if (end > latest)
            latest = end;
    }
    pending = spool_count(jstr(doc, "spool_dir"), &oldest_spooled);
    sm_time_iso(t1, sizeof(t1), earliest);
    sm_time_iso(t2, sizeof(t2), latest);
    sm_time_iso(t3, sizeof(t3), newest);
    *out = json_pack(
        "{s:s,s:b,s:s?,s:s?,s:s?,s:I,s:i,s:I,s:I,s:O,s:O,s:O,s:O}", "project_id", project_id,
        "enabled", 1, "earliest", earliest ? t1 : NULL, "latest", latest ? t2 : NULL,
        "last_archived_at", newest ? t3 : NULL, "archive_lag_s",
        (json_int_t)(oldest_spooled ? now - oldest_spooled : 0), "spool_pending", pending,
        "wal_files", (json_int_t)json_array_size(idx), "wal_bytes", (json_int_t)bytes,
        "timelines", tls, "base_backups", bases, "gaps", gaps, "settings", doc);
    walpath_free(&wp);
    json_decref(tls);
    json_decref(bases);
    json_decref(gaps);
    json_decref(idx);
    json_decref(doc);
    return 0;
}

/* ---- enable / disable ---- */

static int sql_exec(const char *url, const char *sql, sm_err *err)
{
    char *v = NULL;
    int rc = pg_query_value(url, sql, &v, err);
    free(v);
    return rc;
}

static int sql_value(const char *url, const char *sql, char *out, size_t cap, sm_err *err)
{
    char *v = NULL;
    if (pg_query_value(url, sql, &v, err) < 0)
        return -1;
    snprintf(out, cap, "%s", v ? v : "");
    free(v);
    return 0;
}

static int safe_path(const char *what, const char *p, sm_err *err)
{
    if (!p || p[0] != '/' || strpbrk(p, "'\"\\$`\n%")) {
        sm_err_set(err, SM_E_INVALID, "%s '%s' must be an absolute path without quotes, "
                                      "backslashes, '$', '`' or '%%'",
                   what, p ? p : "");
        return -1;
    }
    return 0;
}

/* Waits until the server reports name archived; fails at once when its
 * archiver fails (a failure newer than its last success, since `since`, a
 * server timestamp). */
static int wait_archived(const char *url, const char *name, const char *since, int timeout_s,
                         sm_err *err)
{
    char last[64], failing[64], failed[64], sql[512];
    double until = sm_mono() + timeout_s;

    snprintf(sql, sizeof(sql),
             "SELECT coalesce(last_failed_time >= '%s'::timestamptz AND (last_archived_time IS "
             "NULL OR last_failed_time > last_archived_time), false) FROM pg_stat_archiver",
             since);
    for (;;) {
        if (sql_value(url, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", last,
                      sizeof(last), err) < 0 ||
            sql_value(url, sql, failing, sizeof(failing), err) < 0)
            return -1;
        if (strlen(last) == 24 && strcmp(last + 8, name + 8) >= 0)
            return 0;
        if (!strcmp(failing, "t") || sm_mono() > until) {
            if (!strcmp(failing, "t")) {
                sql_value(url, "SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver",
                          failed, sizeof(failed), err);
                sm_err_set(err, SM_E_EXTERNAL, "the server's archive_command failed on %s",
                           failed);
            } else {
                sm_err_set(err, SM_E_EXTERNAL, "the server did not archive %s within %d s", name,
                           timeout_s);
            }
            return sm_err_hint(err, "The server's log names the archive_command's error; the "
                                    "server's user must be able to run the supamanager binary "
                                    "and write to the spool. The previous settings are back.");
        }
        usleep(200 * 1000);
    }
}

/* Writes a WAL record and switches to a new segment; *name gets the
 * segment that was finished. */
static int switch_wal(const char *url, char name[32], sm_err *err)
{
    if (sql_exec(url, "SELECT txid_current()", err) < 0)
        return -1;
    return sql_value(url, "SELECT pg_walfile_name(pg_switch_wal())", name, 32, err);
}

/* archive_mode on, archive_command, archive_timeout (ALTER SYSTEM: in
 * effect after a reload, archive_mode after a restart). */
static int set_archiving(const char *url, const char *cmd, json_int_t timeout, sm_err *err)
{
    char sql[4 * PATH_MAX];

    if (!cmd || strchr(cmd, '\''))
        return sm_err_set(err, SM_E_INVALID, "unusable archive_command");
    if (sql_exec(url, "ALTER SYSTEM SET archive_mode = 'on'", err) < 0)
        return -1;
    snprintf(sql, sizeof(sql), "ALTER SYSTEM SET archive_command = '%s'", cmd);
    if (sql_exec(url, sql, err) < 0)
        return -1;
    snprintf(sql, sizeof(sql), "ALTER SYSTEM SET archive_timeout = %lld", (long long)timeout);
    return sql_exec(url, sql, err);
}

int pitr_enable(ops_ctx *o, const char *project_id, const json_t *settings, json_t **report,
                sm_err *err)
{
    project *p = NULL;
    json_t *doc = NULL, *old = NULL;
    const char *data_dir = jstr(settings, "data_dir"), *stop = jstr(settings, "stop_cmd"),
               *start = jstr(settings, "start_cmd");
    char spool[PATH_MAX], dbspool[PATH_MAX], bin[PATH_MAX], pgv[PATH_MAX], val[128];
    char cmd[3 * PATH_MAX], name[32], since[64];
    struct stat st;
    json_int_t timeout = jint(settings, "archive_timeout", PITR_DEFAULT_ARCHIVE_TIMEOUT);
    json_int_t keep = jint(settings, "keep_bases", PITR_DEFAULT_KEEP_BASES);
    int rc = -1, restart = 0, altered = 0;
    uint64_t seg_size;

    if (report)
        *report = NULL;
    if (catalog_project_get(o->cat, project_id, &p, err) < 0)
        return -1;
    if (!data_dir || !stop || !start || !*stop || !*start) {
        sm_err_set(err, SM_E_USAGE, "pitr enable needs the data directory, a stop command and "
                                    "a start command");
        sm_err_hint(err, "archive_mode needs a restart, and restores stop and start the server: "
                         "e.g. --stop-cmd 'docker compose stop db' --start-cmd 'docker compose "
                         "start db'.");
        goto out;
    }
    if (safe_path("the data directory", data_dir, err) < 0)
        goto out;
    snprintf(pgv, sizeof(pgv), "%s/PG_VERSION", data_dir);
    if (stat(data_dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(pgv, F_OK) < 0) {
        sm_err_set(err, SM_E_NOTFOUND, "'%s' is not a PostgreSQL data directory (no PG_VERSION)",
                   data_dir);
        sm_err_hint(err, "Give the database's data directory as this host sees it (for Docker: "
                         "the volume mounted at /var/lib/postgresql/data).");
        goto out;
    }
    if (timeout < 0 || timeout > 86400 || keep < 1 || keep > 1000) {
        sm_err_set(err, SM_E_INVALID, "archive_timeout must be 0..86400 s and keep_bases 1..1000");
        goto out;
    }
    snprintf(spool, sizeof(spool), "%s", jstr(settings, "spool_dir") ? jstr(settings, "spool_dir")
                                                                    : "");
    if (!spool[0])
        snprintf(spool, sizeof(spool), "%s.wal-spool", data_dir);
    snprintf(dbspool, sizeof(dbspool), "%s",
             jstr(settings, "db_spool_dir") ? jstr(settings, "db_spool_dir") : spool);
    if (jstr(settings, "binary")) {
        snprintf(bin, sizeof(bin), "%s", jstr(settings, "binary"));
    } else {
        ssize_t n = readlink("/proc/self/exe", bin, sizeof(bin) - 1);
        if (n <= 0) {
            sm_err_sys(err, SM_E_IO, "cannot find this program's path");
            goto out;
        }
        bin[n] = '\0';
    }
    if (safe_path("the spool directory", spool, err) < 0 ||
        safe_path("the spool directory as the server sees it", dbspool, err) < 0 ||
        safe_path("the supamanager binary", bin, err) < 0)
        goto out;
    if (!jstr(settings, "db_spool_dir") && access(bin, X_OK) < 0) {
        /* (in a container the server sees other paths: not checked then) */
        sm_err_sys(err, SM_E_NOTFOUND, "the server cannot run '%s'", bin);
        sm_err_hint(err, "Give the path of the supamanager binary with --binary.");
        goto out;
    }
    if (sm_mkdir_p(spool, 0700, err) < 0)
        goto out;
    if (geteuid() == 0 && chown(spool, st.st_uid, st.st_gid) < 0) {
        sm_err_sys(err, SM_E_IO, "cannot give '%s' to the data directory's owner", spool);
        goto out;
    }
    /* the server */
    if (sql_value(p->db_url, "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'",
                  val, sizeof(val), err) < 0)
        goto out;
    seg_size = strtoull(val, NULL, 10);
    if (seg_size < 1024 * 1024 || (seg_size & (seg_size - 1))) {
        sm_err_set(err, SM_E_DB, "unexpected wal_segment_size '%s'", val);
        goto out;
    }
    if (sql_value(p->db_url, "SHOW wal_level", val, sizeof(val), err) < 0)
        goto out;
    if (!strcmp(val, "minimal")) {
        if (sql_exec(p->db_url, "ALTER SYSTEM SET wal_level = 'replica'", err) < 0)
            goto out;
        restart = 1;
    }
    if (sql_value(p->db_url, "SHOW archive_mode", val, sizeof(val), err) < 0)
        goto out;
    if (strcmp(val, "on") && strcmp(val, "always"))
        restart = 1;
    snprintf(cmd, sizeof(cmd), "\"%s\" wal-push --spool \"%s\" \"%%p\"", bin, dbspool);
    if (catalog_pitr_get(o->cat, project_id, &old, err) < 0)
        goto out;
    altered = 1;
    if (set_archiving(p->db_url, cmd, timeout, err) < 0)
        goto undo;
    /* the settings first: WAL may arrive as soon as the server restarts */
    doc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "data_dir", data_dir,
                    "stop_cmd", stop, "start_cmd", start, "spool_dir", spool, "db_spool_dir",
                    dbspool, "binary", bin, "archive_timeout", timeout, "keep_bases", keep,
                    "wal_segment_size", (json_int_t)seg_size, "archive_command", cmd);
    json_object_set_new(doc, "base_interval_hours", json_integer(jint(settings,
                                                                      "base_interval_hours", 24)));
    if (catalog_pitr_put(o->cat, project_id, doc, err) < 0)
        goto undo;
    if (restart) {
        ops_emit(o, "restart", 10, 0, 0, 0, -1);
        if (ops_run_command(stop, "stop", err) < 0 || ops_run_command(start, "start", err) < 0)
            goto undo;
    } else if (sql_exec(p->db_url, "SELECT pg_reload_conf()", err) < 0) {
        goto undo;
    }
    /* prove the whole path: a WAL file through the archiver into the spool */
    ops_emit(o, "archive", 50, 0, 0, 0, -1);
    if (sql_value(p->db_url, "SELECT now()", since, sizeof(since), err) < 0 ||
        switch_wal(p->db_url, name, err) < 0 || wait_archived(p->db_url, name, since, 60, err) < 0 ||
        pitr_push(o, project_id, NULL, err) < 0)
        goto undo;
    if (report)
        *report = json_deep_copy(doc);
    rc = 0;
    goto out;
undo:
    /* back to the settings before: a failing archive_command would keep
     * every WAL file on the server until its disk fills */
    if (altered) {
        sm_err e = SM_ERR_INIT;
        if (old) {
            set_archiving(p->db_url, jstr(old, "archive_command"),
                          jint(old, "archive_timeout", PITR_DEFAULT_ARCHIVE_TIMEOUT), &e);
            catalog_pitr_put(o->cat, project_id, old, &e);
        } else {
            sql_exec(p->db_url, "ALTER SYSTEM RESET archive_command", &e);
            sql_exec(p->db_url, "ALTER SYSTEM RESET archive_mode", &e);
            sql_exec(p->db_url, "ALTER SYSTEM RESET archive_timeout", &e);
            catalog_pitr_delete(o->cat, project_id, &e);
        }
        if (restart) {
            ops_run_command(stop, "stop", &e);
            ops_run_command(start, "start", &e);
        } else {
            sql_exec(p->db_url, "SELECT pg_reload_conf()", &e);
        }
    }
out:
    json_decref(old);
    json_decref(doc);
    project_free(p);
    return rc;
}

int pitr_disable(ops_ctx *o, const char *project_id, sm_err *err)
{
    project *p = NULL;
    json_t *doc = NULL;
    int rc = -1;

    if (load_settings(o, project_id, &p, &doc, err) < 0)
        return -1;
    if (sql_exec(p->db_url, "ALTER SYSTEM RESET archive_command", err) < 0 ||
        sql_exec(p->db_url, "ALTER SYSTEM RESET archive_mode", err) < 0 ||
        sql_exec(p->db_url, "ALTER SYSTEM RESET archive_timeout", err) < 0)
        goto out;
    /* archive_mode stays on until a restart: without one, WAL would pile up */
    if (ops_run_command(jstr(doc, "stop_cmd"), "stop", err) < 0 ||
        ops_run_command(jstr(doc, "start_cmd"), "start", err) < 0)
        goto out;
    pitr_push(o, project_id, NULL, err); /* what was archived until now */
    sm_err_clear(err);
    rc = catalog_pitr_delete(o->cat, project_id, err);
out:
    json_decref(doc);
    project_free(p);
    return rc;
}

/* ---- base backups ---- */

typedef struct base_prog {
    ops_ctx *o;
    uint64_t total;
    double t0, last;
} base_prog;

static void base_progress(void *ud, const repo_progress *rp)
{
    base_prog *b = ud;
    double el = sm_mono() - b->t0, rate = el > 0 ? (double)rp->bytes_done / el : 0, pct = 0;

    if (sm_mono() - b->last < 0.5)
        return;
    b->last = sm_mono();
    if (b->total)
        pct = 100.0 * (double)rp->bytes_done / (double)b->total;
    if (pct > 99)
        pct = 99;
    ops_emit(b->o, "base-backup", pct, rp->bytes_done, b->total, rate,
             rate > 0 && b->total > rp->bytes_done ? (double)(b->total - rp->bytes_done) / rate
                                                   : -1);
}

/* "write-ahead log start point: 0/2000028 on timeline 1" */
static int parse_bb_log(const char *text, char *start, char *end, size_t cap, int *tli)
{
    const char *s = strstr(text, "write-ahead log start point: ");
    const char *e = strstr(text, "write-ahead log end point: ");
    char a[32], b[32];

    if (!s || !e || sscanf(s + 29, "%31s on timeline %d", a, tli) != 2 ||
        sscanf(e + 27, "%31s", b) != 1)
        return -1;
    snprintf(start, cap, "%s", a);
    snprintf(end, cap, "%s", b);
    return 0;
}

/* Keeps the newest keep_bases base backups and the WAL they need. */
static void base_retention(ops_ctx *o, const char *project_id, const json_t *doc, repo *r)
{
    json_t *bases = NULL, *idx = NULL, *dead = json_object(), *alive = json_object(), *b, *w;
    const char **forget = NULL;
    size_t nb, i, nf = 0, keep = (size_t)jint(doc, "keep_bases", PITR_DEFAULT_KEEP_BASES);
    uint64_t seg_size = seg_size_of(doc);
    int64_t from;
    sm_err e = SM_ERR_INIT;
    repo_prune_opts po;
    repo_prune_result res;
    const char *key;
    json_t *val;

    if (catalog_base_list(o->cat, project_id, &bases, &e) < 0 ||
        catalog_wal_list(o->cat, project_id, &idx, &e) < 0)
        goto out;
    nb = json_array_size(bases);
    if (nb <= keep)
        goto out;
    /* the WAL from the earliest start among the kept ones (by LSN: after a
     * restore to an earlier point, a newer base may start lower) */
    from = -1;
    for (i = nb - keep; i < nb; i++) {
        int64_t sg = base_start_segno(json_array_get(bases, i), seg_size);
        if (sg >= 0 && (from < 0 || sg < from))
            from = sg;
    }
    if (from < 0)
        goto out;
    /* a WAL snapshot goes when every file in it is older than the oldest
     * base backup kept (history files are tiny and always kept) */
    json_array_foreach(idx, i, w)
    {
        int k = wal_kind(jstr(w, "name"));
        int old = k != WAL_HISTORY && jint(w, "segno", -1) < from;
        json_object_set_new(old ? dead : alive, jstr(w, "snapshot_id"), json_true());
    }
    forget = sm_xcalloc(nb + json_object_size(dead) + 1, sizeof(*forget));
    for (i = 0; i < nb - keep; i++)
        forget[nf++] = jstr(json_array_get(bases, i), "snapshot_id");
    json_object_foreach(dead, key, val) if (!json_object_get(alive, key)) forget[nf++] = key;
    memset(&po, 0, sizeof(po));
    po.forget = forget;
    po.nforget = nf;
    if (repo_prune(r, &po, &res, &e) < 0) {
        sm_log(SM_LOG_WARN, "%s: cannot prune old base backups: %s", project_id, e.msg);
        goto out;
    }
    for (i = 0; i < nb - keep; i++)
        catalog_base_delete(o->cat, jstr(json_array_get(bases, i), "id"), &e);
    json_array_foreach(idx, i, w)
    {
        const char *sid = jstr(w, "snapshot_id");
        if (json_object_get(dead, sid) && !json_object_get(alive, sid)) {
            catalog_wal_delete(o->cat, project_id, jstr(w, "name"), &e);
            remove_marker(jstr(doc, "spool_dir"), jstr(w, "name"));
        }
    }
    sm_log(SM_LOG_INFO, "%s: retention removed %zu old base backups and their WAL (%llu bytes)",
           project_id, nb - keep, (unsigned long long)res.bytes_freed);
out:
    (void)b;
    free(forget);
    json_decref(dead);
    json_decref(alive);
    json_decref(bases);
    json_decref(idx);
}

typedef struct base_arg {
    const char *project_id;
    json_t **report;
} base_arg;

static int base_fn(ops_ctx *o, void *arg, sm_err *err)
{
    base_arg *a = arg;
    project *p = NULL;
    json_t *doc = NULL, *meta = NULL;
    pg_server srv;
    pg_proc proc = PG_PROC_INIT;
    store *st = NULL;
    repo *r = NULL;
    repo_writer *w = NULL;
    repo_writer_opts wo;
    base_prog bp;
    sm_buf log = SM_BUF_INIT;
    char total[32], start_lsn[32], end_lsn[32], id[65], t0s[32], t1s[32], bid[96];
    uint64_t read = 0, fresh = 0, stored = 0;
    time_t started = sm_now();
    int tli = 0, rc = -1, added;

    if (load_settings(o, a->project_id, &p, &doc, err) < 0)
        return -1;
    if (pg_probe(p->db_url, &srv, err) < 0)
        goto out;
    if (sql_value(p->db_url, "SELECT sum(pg_database_size(oid)) FROM pg_database", total,
                  sizeof(total), err) < 0)
        goto out;
    if (open_locked(o, p, 1, 300, &st, &r, err) != 0)
        goto out;
    ops_emit(o, "base-backup", 0, 0, strtoull(total, NULL, 10), 0, -1);
    memset(&bp, 0, sizeof(bp));
    bp.o = o;
    bp.total = strtoull(total, NULL, 10);
    bp.t0 = sm_mono();
    memset(&wo, 0, sizeof(wo));
    wo.progress = base_progress;
    wo.progress_ud = &bp;
    wo.cancel = o->cancel;
    wo.bytes_total = bp.total;
    if (repo_writer_new(&w, r, &wo, err) < 0)
        goto out;
    if (pg_basebackup_start(&proc, &srv, p->db_url, err) < 0)
        goto out;
    added = repo_writer_add_fd(w, "base.tar", proc.fd, err);
    if (added < 0) {
        pg_proc_abort(&proc);
        goto out;
    }
    if (pg_proc_finish_text(&proc, &log, err) < 0)
        goto out;
    if (parse_bb_log(sm_buf_str(&log), start_lsn, end_lsn, sizeof(start_lsn), &tli) < 0) {
        sm_err_set(err, SM_E_EXTERNAL, "pg_basebackup did not report its WAL positions");
        goto out;
    }
    sm_time_iso(t0s, sizeof(t0s), started);
    sm_time_iso(t1s, sizeof(t1s), sm_now());
    meta = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s}", "kind", "pitr-base", "project",
                     a->project_id, "start_lsn", start_lsn, "end_lsn", end_lsn, "timeline", tli,
                     "started_at", t0s, "finished_at", t1s, "server_version", srv.version);
    if (repo_writer_commit(w, meta, NULL, id, err) < 0)
        goto out;
    repo_writer_totals(w, &read, &fresh, &stored);
    json_object_set_new(meta, "snapshot_id", json_string(id));
    json_object_set_new(meta, "size", json_integer((json_int_t)read));
    json_object_set_new(meta, "stored", json_integer((json_int_t)stored));
    json_object_set_new(meta, "duration_s", json_real(sm_mono() - bp.t0));
    {
        struct tm tm;
        time_t now = started;
        gmtime_r(&now, &tm);
        snprintf(bid, sizeof(bid), "base_%s_%04d%02d%02d_%02d%02d%02d_%.6s", a->project_id,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 id);
    }
    if (catalog_base_put(o->cat, bid, a->project_id, meta, err) < 0)
        goto out;
    json_object_set_new(meta, "id", json_string(bid));
    base_retention(o, a->project_id, doc, r);
    ops_emit(o, "base-backup", 100, read, read, 0, 0);
    if (a->report)
        *a->report = json_incref(meta);
    rc = 0;
out:
    repo_writer_free(w);
    ops_close_repo(st, r);
    sm_buf_release(&log);
    json_decref(meta);
    json_decref(doc);
    project_free(p);
    if (rc == 0) { /* the WAL that ends it, into the repository now */
        sm_err e = SM_ERR_INIT;
        if (pitr_push(o, a->project_id, NULL, &e) < 0)
            sm_log(SM_LOG_WARN, "%s: WAL push after the base backup: %s", a->project_id, e.msg);
    }
    return rc;
}

int pitr_base_backup(ops_ctx *o, const char *project_id, json_t **report, sm_err *err)
{
    base_arg a = {project_id, report};
    if (report)
        *report = NULL;
    return ops_with_claim(o, project_id, "pitr-base", err, base_fn, &a);
}

/* ---- fetching WAL ---- */

typedef struct fetcher {
    repo *r;
    snapshot *s; /* the last one loaded (WAL files come in batches) */
} fetcher;

/* Restores one archived WAL file to dest (through dest.tmp). durable: fsync
 * it; a restore's staging leaves that to one sync of the whole tree. */
static int fetch_one(fetcher *f, const json_t *w, const char *dest, uid_t uid, gid_t gid,
                     int durable, sm_err *err)
{
    const char *sid = jstr(w, "snapshot_id");
    char stream[64], tmp[PATH_MAX];
    int fd, rc;

    if (!f->s || strcmp(snapshot_id(f->s), sid)) {
        snapshot_free(f->s);
        f->s = NULL;
        if (repo_snapshot_load(f->r, sid, &f->s, err) < 0)
            return sm_err_prefix(err, "WAL file %s", jstr(w, "name"));
    }
    snprintf(stream, sizeof(stream), "wal-%s", jstr(w, "name"));
    snprintf(tmp, sizeof(tmp), "%s.tmp", dest);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sm_err_sys(err, SM_E_IO, "cannot create '%s'", tmp);
    rc = repo_restore_stream_fd(f->r, f->s, stream, fd, NULL, err);
    if (rc == 0 && uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", tmp);
    if (rc == 0 && durable && fsync(fd) < 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot write '%s'", tmp);
    close(fd);
    if (rc == 0 && rename(tmp, dest) < 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot rename '%s'", tmp);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int pitr_wal_fetch(ops_ctx *o, const char *project_id, const char *name, const char *dest,
                   sm_err *err)
{
    project *p = NULL;
    json_t *idx = NULL, *w = NULL, *x;
    store *st = NULL;
    fetcher f = {NULL, NULL};
    size_t i;
    int rc = -1;

    if (wal_kind(name) < 0)
        return sm_err_set(err, SM_E_INVALID, "'%s' is not a WAL file name", name);
    if (catalog_project_get(o->cat, project_id, &p, err) < 0)
        return -1;
    if (catalog_wal_list(o->cat, project_id, &idx, err) < 0)
        goto out;
    json_array_foreach(idx, i, x) if (!strcmp(jstr(x, "name"), name)) w = x;
    if (!w) {
        sm_err_set(err, SM_E_NOTFOUND, "WAL file %s is not in the archive of project '%s'", name,
                   project_id);
        goto out;
    }
    if (open_locked(o, p, 0, 60, &st, &f.r, err) != 0)
        goto out;
    rc = fetch_one(&f, w, dest, (uid_t)-1, (gid_t)-1, 1, err);
out:
    snapshot_free(f.s);
    ops_close_repo(st, f.r);
    json_decref(idx);
    project_free(p);
    return rc;
}

/* ---- restore ---- */

typedef struct feed {
    repo *r;
    const snapshot *s;
    int fd;
    int rc;
    sm_err err;
} feed;

static void *feed_main(void *ud)
{
    feed *f = ud;
    f->rc = repo_restore_stream_fd(f->r, f->s, "base.tar", f->fd, NULL, &f->err);
    close(f->fd);
    return NULL;
}

/* A tar member's path is usable when it is relative and never climbs. */
static int member_ok(const char *path)
{
    const char *c = path;

    if (!path || !*path || path[0] == '/')
        return 0;
    while (*c) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return 0;
        c += n;
        while (*c == '/')
            c++;
    }
    return 1;
}

/* Unpacks the base backup's tar stream into dest (owned by uid:gid). */
static int extract_base(repo *r, const snapshot *s, const char *dest, uid_t uid, gid_t gid,
                        sm_err *err)
{
    struct archive *in = NULL, *out = NULL;
    struct archive_entry *e;
    pthread_t th;
    int pfd[2], rc = -1, started = 0, ar, short_read = 0;
    feed f;

    if (pipe2(pfd, O_CLOEXEC) < 0)
        return sm_err_sys(err, SM_E_IO, "cannot create a pipe");
    memset(&f, 0, sizeof(f));
    f.r = r;
    f.s = s;
    f.fd = pfd[1];
    if (pthread_create(&th, NULL, feed_main, &f) != 0) {
        close(pfd[0]);
        close(pfd[1]);
        return sm_err_set(err, SM_E_INTERNAL, "cannot start a thread");
    }
    started = 1;
    in = archive_read_new();
    out = archive_write_disk_new();
    archive_read_support_format_tar(in);
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                            ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            (geteuid() == 0 ? ARCHIVE_EXTRACT_OWNER : 0));
    if (archive_read_open_fd(in, pfd[0], 256 * 1024) != ARCHIVE_OK) {
        sm_err_set(err, SM_E_CORRUPT, "cannot read the base backup: %s", archive_error_string(in));
        goto out;
    }
    while ((ar = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
        const char *path = archive_entry_pathname(e), *hl = archive_entry_hardlink(e);
        char full[PATH_MAX];
        const void *blk;
        size_t len;
        la_int64_t off;

        if (!member_ok(path) || (hl && !member_ok(hl))) {
            sm_err_set(err, SM_E_CORRUPT, "the base backup holds an unsafe path '%s'",
                       path ? path : "");
            goto out;
        }
        snprintf(full, sizeof(full), "%s/%s", dest, path);
        archive_entry_set_pathname(e, full);
        if (hl) {
            char lf[PATH_MAX];
            snprintf(lf, sizeof(lf), "%s/%s", dest, hl);
            archive_entry_set_hardlink(e, lf);
        }
        archive_entry_set_uid(e, uid);
        archive_entry_set_gid(e, gid);
        if (archive_write_header(out, e) != ARCHIVE_OK) {
            sm_err_set(err, SM_E_IO, "cannot write '%s': %s", full, archive_error_string(out));
            goto out;
        }
        while ((ar = archive_read_data_block(in, &blk, &len, &off)) == ARCHIVE_OK)
            if (archive_write_data_block(out, blk, len, off) != ARCHIVE_OK) {
                sm_err_set(err, SM_E_IO, "cannot write '%s': %s", full,
                           archive_error_string(out));
                goto out;
            }
        if (ar != ARCHIVE_EOF) {
            sm_err_set(err, SM_E_CORRUPT, "cannot read the base backup: %s",
                       archive_error_string(in));
            short_read = 1;
            goto out;
        }
        if (archive_write_finish_entry(out) != ARCHIVE_OK) {
            sm_err_set(err, SM_E_IO, "cannot write '%s': %s", full, archive_error_string(out));
            goto out;
        }
    }
    if (ar != ARCHIVE_EOF) {
        sm_err_set(err, SM_E_CORRUPT, "cannot read the base backup: %s", archive_error_string(in));
        short_read = 1;
        goto out;
    }
    if (archive_write_close(out) != ARCHIVE_OK) {
        sm_err_set(err, SM_E_IO, "cannot finish '%s': %s", dest, archive_error_string(out));
        goto out;
    }
    rc = 0;
out:
    if (in)
        archive_read_free(in);
    if (out)
        archive_write_free(out);
    close(pfd[0]); /* a writer still running gets EPIPE and stops */
    if (started)
        pthread_join(th, NULL);
    if (f.rc < 0 && (rc == 0 || short_read)) { /* the cause, rather than a short tar */
        sm_err_copy(err, &f.err);
        rc = -1;
    }
    return rc;
}

/* Syncs every file under dir (the restored cluster must survive a crash
 * once swapped in). */
static int sync_tree(const char *dir, sm_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return sm_err_sys(err, SM_E_IO, "cannot read '%s'", dir);
    while (rc == 0 && (de = readdir(d))) {
        char path[PATH_MAX];
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = sync_tree(path, err);
        } else if (S_ISREG(st.st_mode)) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                if (fsync(fd) < 0)
                    rc = sm_err_sys(err, SM_E_IO, "cannot flush '%s'", path);
                close(fd);
            }
        }
    }
    closedir(d);
    if (rc == 0)
        rc = sm_fsync_dir(dir, 0, err);
    return rc;
}

static int append_text(const char *path, const char *text, uid_t uid, gid_t gid, sm_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600), rc = 0;

    if (fd < 0)
        return sm_err_sys(err, SM_E_IO, "cannot open '%s'", path);
    if (sm_write_all(fd, text, strlen(text), path, err) < 0)
        rc = -1;
    if (rc == 0 && geteuid() == 0 && fchown(fd, uid, gid) < 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", path);
    if (rc == 0 && fsync(fd) < 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot write '%s'", path);
    close(fd);
    return rc;
}

typedef struct restore_arg {
    const char *project_id;
    const pitr_target *t;
    json_t **report;
} restore_arg;

/* What the restore has changed so far, to put back on failure. */
typedef struct rstate {
    ops_ctx *o;
    const char *data, *stop, *start;
    char staged[PATH_MAX], prev[PATH_MAX], failed[PATH_MAX];
    int stopped, swapped;
} rstate;

static void rollback(rstate *rs)
{
    sm_err e = SM_ERR_INIT;

    if (rs->swapped) {
        ops_run_command(rs->stop, "stop", &e);
        if (rename(rs->data, rs->failed) == 0 && rename(rs->prev, rs->data) == 0) {
            sm_rm_rf(rs->failed, &e);
            sm_log(SM_LOG_WARN, "the point-in-time restore failed; the previous data directory "
                                "is back in place");
        } else {
            sm_log(SM_LOG_ERROR, "cannot put the previous data directory back: it is at %s",
                   rs->prev);
        }
        rs->stopped = 1;
    }
    if (rs->staged[0])
        sm_rm_rf(rs->staged, &e);
    if (rs->stopped && ops_run_command(rs->start, "start", &e) < 0)
        sm_log(SM_LOG_ERROR, "cannot start the database again: %s", e.msg);
}

/* Removes what an interrupted restore left beside the data directory: its
 * staging and failed copies (the project is claimed, so no restore is
 * running). A previous data directory (.smr-prev-*) is kept: after a crash
 * between the swap and the end it may be the only copy of the old cluster. */
static void reap_leftovers(const char *data)
{
    static const char *const kinds[] = {"smr-pitr", "smr-failed"};
    char pat[PATH_MAX];
    sm_err e = SM_ERR_INIT;

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        glob_t g;
        snprintf(pat, sizeof(pat), "%s.%s-[0-9]*", data, kinds[k]);
        if (glob(pat, 0, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            sm_log(SM_LOG_WARN, "removing '%s', left by an interrupted restore", g.gl_pathv[i]);
            sm_rm_rf(g.gl_pathv[i], &e);
        }
        globfree(&g);
    }
    snprintf(pat, sizeof(pat), "%s.smr-prev-[0-9]*", data);
    {
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++)
                sm_log(SM_LOG_WARN, "'%s' is the data directory an interrupted restore moved "
                                    "aside; remove it once the database is as it should be",
                       g.gl_pathv[i]);
            globfree(&g);
        }
    }
}

static int pick_base(const json_t *bases, const walpath *wp, const pitr_target *t, time_t tt,
                     uint64_t lsn, const json_t **out, sm_err *err)
{
    const json_t *best = NULL, *b;
    size_t i;
    char e[32];

    *out = NULL;
    if (!json_array_size(bases)) {
        sm_err_set(err, SM_E_NOTFOUND, "there is no base backup to restore from");
        return sm_err_hint(err, "Take one: supamanager pitr base-backup PROJECT.");
    }
    json_array_foreach(bases, i, b)
    {
        uint64_t end = 0;
        if (!base_on_path(wp, b))
            continue; /* another branch of history */
        if (t->time && jtime(b, "finished_at") <= tt)
            best = b;
        else if (t->lsn && parse_lsn(jstr(b, "end_lsn"), &end) == 0 && end <= lsn)
            best = b;
        else if (t->latest)
            best = b;
        else if (t->xid && !best)
            best = b; /* a transaction id says nothing of time: the oldest base */
    }
    if (!best) {
        sm_time_iso(e, sizeof(e), jtime(json_array_get(bases, 0), "finished_at"));
        sm_err_set(err, SM_E_INVALID, "the target %s is before the earliest restorable point (%s, "
                                      "the end of the oldest base backup)",
                   t->time ? t->time : t->lsn, t->time ? e : jstr(json_array_get(bases, 0),
                                                                  "end_lsn"));
        return -1;
    }
    *out = best;
    return 0;
}

static int gap_error(const walpath *wp, int64_t g, sm_err *err)
{
    char name[25], at[32];
    time_t t = archived_before(wp, g);

    wal_name(name, tli_for(wp, g), g, wp->seg_size);
    sm_time_iso(at, sizeof(at), t);
    sm_err_set(err, SM_E_CORRUPT,
               "the WAL archive is missing segment %s: recovery cannot go past %s", name,
               t ? at : "the base backup");
    return sm_err_hint(err, "Restore to a time before that (or to a newer base backup's range); "
                            "`supamanager pitr check` lists every gap. Nothing was changed.");
}

/* The timeline the server was on at time tt: the newest whose history file
 * had been archived by then (PostgreSQL archives it as it promotes), or 1. */
static uint32_t live_tli_at(const json_t *idx, time_t tt)
{
    uint32_t m = 1;
    json_t *w;
    size_t i;
    json_array_foreach(idx, i, w) if (wal_kind(jstr(w, "name")) == WAL_HISTORY &&
                                      jtime(w, "archived_at") <= tt &&
                                      hex32(jstr(w, "name")) > m) m = hex32(jstr(w, "name"));
    return m;
}

/* The timeline a restore follows: the one asked for; for a target time, the
 * one the server was on at that time (a time can lie on a timeline that later
 * restores left behind: following the newest would stop at its branch
 * point instead); else the newest. */
static uint32_t target_tli(const pitr_target *t, time_t tt, const json_t *idx)
{
    if (t->timeline && strcmp(t->timeline, "latest"))
        return (uint32_t)strtoul(t->timeline, NULL, 10);
    if (t->time && !t->timeline && tt)
        return live_tli_at(idx, tt);
    return latest_tli(idx);
}

/* Every segment from the base backup to the target is on the path. */
static int path_check(const walpath *wp, const pitr_target *t, time_t tt, uint64_t lsn,
                      int use_latest, int64_t from, sm_err *err)
{
    int64_t last = last_segno(wp), upto, g;

    if (use_latest || (t->time && segno_at(wp, from, tt) < 0))
        upto = last;
    else if (t->time)
        upto = segno_at(wp, from, tt);
    else if (t->lsn)
        upto = (int64_t)(lsn / wp->seg_size);
    else
        upto = last;
    if (upto > last)
        upto = last;
    g = first_gap(wp, from, upto);
    return g >= 0 ? gap_error(wp, g, err) : 0;
}

/* Moves what the spool holds into the repository, then reads the archive's
 * index again and the path to the target's timeline through it. */
static int archive_path(ops_ctx *o, const char *project_id, const pitr_target *t, time_t tt,
                        uint64_t seg_size, json_t **idx, walpath *wp, sm_err *err)
{
    if (push_impl(o, project_id, 300, NULL, err) < 0)
        return -1;
    walpath_free(wp);
    json_decref(*idx);
    *idx = NULL;
    if (catalog_wal_list(o->cat, project_id, idx, err) < 0)
        return -1;
    walpath_init(wp, *idx, target_tli(t, tt, *idx), seg_size);
    return 0;
}

/* Fetches into waldir every WAL file a recovery along wp from segment from
 * may ask for (the history files and the path's segments) that is not there
 * yet: once while the server still runs, again after it stopped, so the
 * downtime only pays for the last few. final: also removes files no longer
 * on the path and sets *nwal to the number staged. */
static int stage_wal(ops_ctx *o, const project *p, const json_t *idx, const walpath *wp,
                     int64_t from, const char *waldir, uid_t uid, gid_t gid, int final,
                     unsigned *nwal, atomic_int *halt, sm_err *err)
{
    store *st = NULL;
    fetcher f = {NULL, NULL};
    json_t *want = json_object(), *w;
    int64_t upto = last_segno(wp);
    size_t i;
    int rc = -1;

    if (open_locked(o, p, 0, 300, &st, &f.r, err) != 0)
        goto out;
    json_array_foreach(idx, i, w)
    {
        int64_t sg = jint(w, "segno", -1);
        char path[PATH_MAX];
        if (!(wal_kind(jstr(w, "name")) == WAL_HISTORY ||
              (sg >= from && sg <= upto && path_file(wp, sg) == w)))
            continue;
        json_object_set_new(want, jstr(w, "name"), json_true());
        snprintf(path, sizeof(path), "%s/%s", waldir, jstr(w, "name"));
        if (access(path, F_OK) == 0)
            continue; /* staged before the stop: WAL files never change */
        if (fetch_one(&f, w, path, uid, gid, 0, err) < 0)
            goto out;
        if ((o->cancel && *o->cancel) || (halt && atomic_load(halt))) {
            sm_err_set(err, SM_E_INTERRUPTED, "interrupted");
            goto out;
        }
    }
    if (final) {
        DIR *d = opendir(waldir);
        struct dirent *de;
        if (!d) {
            sm_err_sys(err, SM_E_IO, "cannot read '%s'", waldir);
            goto out;
        }
        while ((de = readdir(d)))
            if (de->d_name[0] != '.' && !json_object_get(want, de->d_name))
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        *nwal = (unsigned)json_object_size(want);
    }
    rc = 0;
out:
    snapshot_free(f.s);
    ops_close_repo(st, f.r);
    json_decref(want);
    return rc;
}

/* stage_wal in a thread of its own, beside the extraction of the base backup. */
typedef struct stager {
    ops_ctx *o;
    const project *p;
    const json_t *idx;
    const walpath *wp;
    int64_t from;
    const char *waldir;
    uid_t uid;
    gid_t gid;
    unsigned nwal;
    atomic_int halt; /* set when the base failed: stop early */
    int rc;
    sm_err err;
} stager;

static void *stager_main(void *ud)
{
    stager *g = ud;
    g->rc = stage_wal(g->o, g->p, g->idx, g->wp, g->from, g->waldir, g->uid, g->gid, 0, &g->nwal,
                      &g->halt, &g->err);
    return NULL;
}

static int restore_fn(ops_ctx *o, void *arg, sm_err *err)
{
    restore_arg *a = arg;
    const pitr_target *t = a->t;
    project *p = NULL;
    json_t *doc = NULL, *bases = NULL, *idx = NULL;
    const json_t *base;
    walpath wp = {0};
    rstate rs;
    store *st = NULL;
    repo *r = NULL;
    snapshot *s = NULL;
    struct stat dst;
    time_t tt = 0, marker = 0, tstart = sm_now();
    uint64_t lsn = 0, seg_size;
    int64_t from;
    char stamp[32], live[32] = "", waldir[PATH_MAX], conf[2048], path[PATH_MAX], val[64];
    unsigned nwal = 0;
    double t0 = sm_mono(), tdown = 0, tpromoted = 0, until;
    int rc = -1, use_latest = t->latest;

    memset(&rs, 0, sizeof(rs));
    rs.o = o;
    if (load_settings(o, a->project_id, &p, &doc, err) < 0)
        return -1;
    rs.data = jstr(doc, "data_dir");
    rs.stop = jstr(doc, "stop_cmd");
    rs.start = jstr(doc, "start_cmd");
    seg_size = seg_size_of(doc);
    if (stat(rs.data, &dst) < 0) {
        sm_err_sys(err, SM_E_NOTFOUND, "cannot use the data directory '%s'", rs.data);
        goto out;
    }
    if (t->time && pitr_parse_time(t->time, &tt) < 0) {
        sm_err_set(err, SM_E_INVALID, "cannot read the target time '%s'", t->time);
        sm_err_hint(err, "Write it as YYYY-MM-DD HH:MM:SS[.frac][+HH[:MM]|Z], e.g. "
                         "\"2026-11-25 14:03:07+00\" (no offset: UTC).");
        goto out;
    }
    if (t->lsn && parse_lsn(t->lsn, &lsn) < 0) {
        sm_err_set(err, SM_E_INVALID, "cannot read the target LSN '%s' (like 0/3000060)", t->lsn);
        goto out;
    }
    if (t->time && tt > sm_now() + 1) {
        sm_err_set(err, SM_E_INVALID, "the target time %s is in the future", t->time);
        goto out;
    }
    if (catalog_base_list(o->cat, a->project_id, &bases, err) < 0 ||
        catalog_wal_list(o->cat, a->project_id, &idx, err) < 0)
        goto out;
    if (t->timeline && strcmp(t->timeline, "latest") &&
        (!*t->timeline || strspn(t->timeline, "0123456789") != strlen(t->timeline))) {
        sm_err_set(err, SM_E_INVALID, "the timeline must be latest or a number");
        goto out;
    }
    walpath_init(&wp, idx, target_tli(t, tt, idx), seg_size);
    if (pick_base(bases, &wp, t, tt, lsn, &base, err) < 0)
        goto out;
    from = base_start_segno(base, seg_size);
    if (path_check(&wp, t, tt, lsn, use_latest, from, err) < 0)
        goto out;
    walpath_free(&wp);
    {
        struct tm tm;
        gmtime_r(&tstart, &tm);
        snprintf(stamp, sizeof(stamp), "%04d%02d%02dT%02d%02d%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    reap_leftovers(rs.data);
    snprintf(rs.staged, sizeof(rs.staged), "%s.smr-pitr-%s", rs.data, stamp);
    snprintf(rs.prev, sizeof(rs.prev), "%s.smr-prev-%s", rs.data, stamp);
    snprintf(rs.failed, sizeof(rs.failed), "%s.smr-failed-%s", rs.data, stamp);
    if (mkdir(rs.staged, 0700) < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", rs.staged);
        rs.staged[0] = '\0';
        goto out;
    }
    if (geteuid() == 0 && chown(rs.staged, dst.st_uid, dst.st_gid) < 0) {
        sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", rs.staged);
        goto fail;
    }
    /* 1. beside the running server: the base backup and, at the same time in a
     * thread of its own (a reader of the repository per core), the WAL archived
     * so far; then flush it all, so the downtime does not pay for that either */
    ops_emit(o, "stage", 5, 0, 0, 0, -1);
    snprintf(waldir, sizeof(waldir), "%s/%s", rs.staged, RESTORE_WAL_DIR);
    if (mkdir(waldir, 0700) < 0 ||
        (geteuid() == 0 && chown(waldir, dst.st_uid, dst.st_gid) < 0)) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", waldir);
        goto fail;
    }
    if (archive_path(o, a->project_id, t, tt, seg_size, &idx, &wp, err) < 0)
        goto fail;
    {
        stager g;
        pthread_t th;
        int based;
        memset(&g, 0, sizeof(g));
        g.o = o;
        g.p = p;
        g.idx = idx;
        g.wp = &wp;
        g.from = from;
        g.waldir = waldir;
        g.uid = dst.st_uid;
        g.gid = dst.st_gid;
        atomic_init(&g.halt, 0);
        if (pthread_create(&th, NULL, stager_main, &g) != 0) {
            sm_err_set(err, SM_E_INTERNAL, "cannot start a thread");
            goto fail;
        }
        based = open_locked(o, p, 0, 300, &st, &r, err) == 0 &&
                repo_snapshot_load(r, jstr(base, "snapshot_id"), &s, err) == 0 &&
                extract_base(r, s, rs.staged, dst.st_uid, dst.st_gid, err) == 0;
        if (!based)
            atomic_store(&g.halt, 1);
        pthread_join(th, NULL);
        snapshot_free(s);
        s = NULL;
        ops_close_repo(st, r);
        st = NULL;
        r = NULL;
        if (!based)
            goto fail;
        if (g.rc < 0) {
            sm_err_copy(err, &g.err);
            goto fail;
        }
    }
    walpath_free(&wp);
    ops_emit(o, "wal", 25, 0, 0, 0, -1);
    if (sync_tree(rs.staged, err) < 0)
        goto fail;
    /* 2. a last commit (recovery to a time needs one after the target) and
     * where the live WAL ends; then stop the server */
    if (sql_exec(p->db_url, "SELECT txid_current()", err) == 0) {
        marker = sm_now();
        sql_value(p->db_url, "SELECT pg_walfile_name(pg_current_wal_insert_lsn())", live,
                  sizeof(live), err);
    }
    sm_err_clear(err);
    if (t->time && marker && tt >= marker)
        use_latest = 1; /* every commit is before the target */
    ops_emit(o, "stop", 30, 0, 0, 0, -1);
    tdown = sm_mono();
    if (ops_run_command(rs.stop, "stop", err) < 0)
        goto fail;
    rs.stopped = 1;
    /* 3. everything archived, then the WAL files the recovery may need that
     * were not staged yet */
    ops_emit(o, "wal", 35, 0, 0, 0, -1);
    if (archive_path(o, a->project_id, t, tt, seg_size, &idx, &wp, err) < 0)
        goto fail;
    if (path_check(&wp, t, tt, lsn, use_latest, from, err) < 0)
        goto fail;
    if (stage_wal(o, p, idx, &wp, from, waldir, dst.st_uid, dst.st_gid, 1, &nwal, NULL, err) < 0)
        goto fail;
    /* the live server's last WAL, which it had not archived yet */
    if (strlen(live) == 24) {
        int64_t lseg = wal_segno(live, seg_size);
        char src[PATH_MAX];
        for (int64_t sgn = from; sgn <= lseg + 1; sgn++) {
            char name[25];
            wal_name(name, hex32(live), sgn, seg_size);
            if (json_object_get(wp.map, name))
                continue;
            snprintf(src, sizeof(src), "%s/pg_wal/%s", rs.data, name);
            snprintf(path, sizeof(path), "%s/%s", waldir, name);
            if (access(src, F_OK) < 0)
                continue;
            if (copy_durable(src, path, dst.st_uid, dst.st_gid, NULL, err) < 0)
                goto fail;
            nwal++;
        }
    }
    /* 4. recovery settings */
    {
        char target[256] = "", tlname[24];
        uint32_t tsel = target_tli(t, tt, idx);
        if (t->timeline)
            snprintf(tlname, sizeof(tlname), "%s", t->timeline);
        else if (tsel == latest_tli(idx))
            snprintf(tlname, sizeof(tlname), "latest");
        else
            snprintf(tlname, sizeof(tlname), "%u", tsel);
        if (!use_latest && t->time) {
            char ts[32], frac[16];
            struct tm tm;
            gmtime_r(&tt, &tm);
            strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
            time_fraction(t->time, frac, sizeof(frac));
            snprintf(target, sizeof(target), "recovery_target_time = '%s%s+00'\n", ts, frac);
        } else if (!use_latest && t->lsn) {
            snprintf(target, sizeof(target), "recovery_target_lsn = '%X/%X'\n",
                     (unsigned)(lsn >> 32), (unsigned)lsn);
        } else if (!use_latest && t->xid) {
            char *end = NULL;
            unsigned long long x = strtoull(t->xid, &end, 10);
            if (!end || *end || !x) {
                sm_err_set(err, SM_E_INVALID, "the target transaction id '%s' is not a number",
                           t->xid);
                goto fail;
            }
            snprintf(target, sizeof(target), "recovery_target_xid = '%llu'\n", x);
        }
        snprintf(conf, sizeof(conf),
                 "\n# supamanager point-in-time restore %s (removed after promotion)\n"
                 "restore_command = 'cp \"%s/%%f\" \"%%p\"'\n%s"
                 "recovery_target_action = 'promote'\n"
                 "recovery_target_timeline = '%s'\n",
                 stamp, RESTORE_WAL_DIR, target, tlname);
    }
    snprintf(path, sizeof(path), "%s/postgresql.auto.conf", rs.staged);
    if (append_text(path, conf, dst.st_uid, dst.st_gid, err) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/recovery.signal", rs.staged);
    if (append_text(path, "", dst.st_uid, dst.st_gid, err) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/standby.signal", rs.staged);
    unlink(path);
    if (chmod(rs.staged, dst.st_mode & 07777) < 0 || sync_tree(rs.staged, err) < 0)
        goto fail;
    /* 5. swap, start, wait for the promotion */
    ops_emit(o, "swap", 60, 0, 0, 0, -1);
    if (rename(rs.data, rs.prev) < 0) {
        sm_err_sys(err, SM_E_IO, "cannot move '%s' aside", rs.data);
        goto fail;
    }
    if (rename(rs.staged, rs.data) < 0) {
        sm_err_sys(err, SM_E_IO, "cannot move the restored cluster into '%s'", rs.data);
        rename(rs.prev, rs.data);
        goto fail;
    }
    rs.swapped = 1;
    rs.staged[0] = '\0';
    sm_fsync_dir(rs.data, 1, err);
    ops_emit(o, "recover", 70, 0, 0, 0, -1);
    if (ops_run_command(rs.start, "start", err) < 0) {
        sm_err_prefix(err, "the restored cluster did not start (its log says why)");
        goto fail;
    }
    until = sm_mono() + (double)jint(doc, "recovery_timeout_s", PROMOTE_TIMEOUT_S);
    for (;;) {
        sm_err e = SM_ERR_INIT;
        if (sql_value(p->db_url, "SELECT pg_is_in_recovery()", val, sizeof(val), &e) == 0 &&
            !strcmp(val, "f"))
            break;
        if (sm_mono() > until) {
            sm_err_set(err, SM_E_EXTERNAL, "the restored cluster did not finish recovery within "
                                           "%lld s%s%s",
                       (long long)jint(doc, "recovery_timeout_s", PROMOTE_TIMEOUT_S),
                       e.code ? ": " : "", e.code ? e.msg : "");
            goto fail;
        }
        if (o->cancel && *o->cancel) {
            sm_err_set(err, SM_E_INTERRUPTED, "interrupted");
            goto fail;
        }
        usleep(250 * 1000);
    }
    tpromoted = sm_mono();
    /* 6. check: nothing replayed after a time target */
    if (!use_latest && t->time &&
        sql_value(p->db_url, "SELECT coalesce(pg_last_xact_replay_timestamp()::text, '')", val,
                  sizeof(val), err) == 0 &&
        val[0]) {
        time_t rt = 0;
        if (pitr_parse_time(val, &rt) == 0 && rt > tt) {
            sm_err_set(err, SM_E_INTERNAL, "the recovery replayed a transaction of %s, after the "
                                           "target %s",
                       val, t->time);
            goto fail;
        }
    }
    sm_err_clear(err);
    ops_emit(o, "cleanup", 95, 0, 0, 0, -1);
    if (sql_exec(p->db_url, "ALTER SYSTEM RESET restore_command", err) < 0 ||
        sql_exec(p->db_url, "ALTER SYSTEM RESET recovery_target_time", err) < 0 ||
        sql_exec(p->db_url, "ALTER SYSTEM RESET recovery_target_lsn", err) < 0 ||
        sql_exec(p->db_url, "ALTER SYSTEM RESET recovery_target_xid", err) < 0 ||
        sql_exec(p->db_url, "ALTER SYSTEM RESET recovery_target_action", err) < 0 ||
        sql_exec(p->db_url, "ALTER SYSTEM RESET recovery_target_timeline", err) < 0 ||
        sql_exec(p->db_url, "SELECT pg_reload_conf()", err) < 0)
        sm_log(SM_LOG_WARN, "%s: cannot remove the recovery settings: %s", a->project_id,
               err->msg);
    sm_err_clear(err);
    snprintf(path, sizeof(path), "%s/%s", rs.data, RESTORE_WAL_DIR);
    sm_rm_rf(path, err);
    sm_rm_rf(rs.prev, err);
    sm_err_clear(err);
    if (a->report) {
        char tl[16] = "";
        sql_value(p->db_url, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", tl,
                  sizeof(tl), err);
        sm_err_clear(err);
        *a->report = json_pack("{s:s,s:s,s:s,s:i,s:I,s:f,s:f}", "project_id", a->project_id,
                               "base_backup", jstr(base, "id"), "target",
                               t->time ? t->time : t->lsn ? t->lsn : t->xid ? t->xid : "latest",
                               "wal_files", (int)nwal, "timeline",
                               (json_int_t)(tl[0] ? strtol(tl, NULL, 16) : 0), "duration_s",
                               sm_mono() - t0, "downtime_s", tpromoted - tdown);
    }
    ops_emit(o, "done", 100, 0, 0, 0, 0);
    rc = 0;
    goto out;
fail:
    ops_close_repo(st, r);
    st = NULL;
    r = NULL;
    rollback(&rs);
out:
    snapshot_free(s);
    ops_close_repo(st, r);
    walpath_free(&wp);
    json_decref(idx);
    json_decref(bases);
    json_decref(doc);
    project_free(p);
    return rc;
}

int pitr_restore(ops_ctx *o, const char *project_id, const pitr_target *t, json_t **report,
                 sm_err *err)
{
    restore_arg a = {project_id, t, report};
    int n = !!t->time + !!t->lsn + !!t->xid + !!t->latest;

    if (report)
        *report = NULL;
    if (n != 1) {
        sm_err_set(err, SM_E_USAGE, "give exactly one target: a time, an LSN, a transaction id, "
                                    "or latest");
        return -1;
    }
    return ops_with_claim(o, project_id, "pitr-restore", err, restore_fn, &a);
}
