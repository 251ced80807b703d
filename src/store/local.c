/* The local directory driver: one file per object under the root directory,
 * written with sm_write_file_atomic (tmp, fsync, rename, fsync dir). */
#include "store/store.intern.h"

#include "core/fsutil.h"
#include "core/mem.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct local_store {
    char *root;
    /* deferred puts: files (and their directories) to fsync at flush */
    pthread_mutex_t mu;
    char **pending;
    size_t npending, cappending;
} local_store;

static char *key_path(const store *st, const char *key)
{
    const local_store *ls = st->impl;
    return sm_path_join(ls->root, key);
}

static int local_put(store *st, const char *key, const void *data, size_t len, sm_err *err)
{
    char *path = key_path(st, key);
    int rc = sm_write_file_atomic(path, data, len, 0, err);
    free(path);
    return rc;
}

/* Writes the file (temporary name, rename) without waiting for the disk;
 * writeback starts at once and local_flush waits for it. */
static int local_put_deferred(store *st, const char *key, const void *data, size_t len,
                              sm_err *err)
{
    local_store *ls = st->impl;
    char *path = key_path(st, key);
    char *tmp = sm_xasprintf("%s.tmp.%ld.%lx", path, (long)getpid(), (unsigned long)random());
    const char *slash = strrchr(path, '/');
    int fd = -1, rc = -1;

    if (slash) {
        char *dir = sm_xstrndup(path, (size_t)(slash - path));
        int r = sm_is_dir(dir) ? 0 : sm_mkdir_p(dir, 0700, err);
        free(dir);
        if (r < 0)
            goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", tmp);
        goto out;
    }
    if (sm_write_all(fd, data, len, tmp, err) < 0)
        goto out;
    sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (close(fd) != 0) {
        fd = -1;
        sm_err_sys(err, SM_E_IO, "cannot close '%s'", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot rename '%s' to '%s'", tmp, path);
        goto out;
    }
    pthread_mutex_lock(&ls->mu);
    SM_GROW(ls->pending, ls->cappending, ls->npending + 1);
    ls->pending[ls->npending++] = path;
    path = NULL;
    pthread_mutex_unlock(&ls->mu);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    free(path);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int local_flush(store *st, sm_err *err)
{
    local_store *ls = st->impl;
    char **v;
    size_t n;
    int rc = 0;

    pthread_mutex_lock(&ls->mu);
    v = ls->pending;
    n = ls->npending;
    ls->pending = NULL;
    ls->npending = ls->cappending = 0;
    pthread_mutex_unlock(&ls->mu);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int fd = open(v[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            rc = sm_err_sys(err, SM_E_IO, "cannot fsync '%s'", v[i]);
        if (fd >= 0)
            close(fd);
        /* one directory fsync per directory (the list is sorted) */
        if (rc == 0) {
            const char *slash = strrchr(v[i], '/');
            const char *next = i + 1 < n ? strrchr(v[i + 1], '/') : NULL;
            size_t dl = slash ? (size_t)(slash - v[i]) : 0;
            if (!next || (size_t)(next - v[i + 1]) != dl || strncmp(v[i], v[i + 1], dl) != 0)
                rc = sm_fsync_dir(v[i], 1, err);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    return rc;
}

static int local_get(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out,
                     sm_err *err)
{
    char *path = key_path(st, key);
    int fd = -1, rc = -1;
    struct stat sb;
    uint64_t want;
    size_t done = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            sm_err_set(err, SM_E_NOTFOUND, "object '%s' is missing from '%s'", key, st->location);
        else
            sm_err_sys(err, SM_E_IO, "cannot open '%s'", path);
        goto out;
    }
    if (fstat(fd, &sb) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
        goto out;
    }
    if (off > (uint64_t)sb.st_size || (len && len > (uint64_t)sb.st_size - off)) {
        sm_err_set(err, SM_E_CORRUPT,
                   "object '%s' is truncated: %lld bytes, expected at least %llu", key,
                   (long long)sb.st_size, (unsigned long long)(off + len));
        goto out;
    }
    want = len ? len : (uint64_t)sb.st_size - off;
    if (want > SIZE_MAX / 2) {
        sm_err_set(err, SM_E_LIMIT, "object '%s' is too large to read at once", key);
        goto out;
    }
    sm_buf_reset(out);
    if (sm_buf_grow(out, (size_t)want, err) < 0)
        goto out;
    while (done < want) {
        ssize_t r = pread(fd, out->data + done, (size_t)want - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sm_err_sys(err, SM_E_IO, "cannot read '%s'", path);
            goto out;
        }
        if (r == 0) {
            sm_err_set(err, SM_E_CORRUPT, "object '%s' is truncated", key);
            goto out;
        }
        done += (size_t)r;
    }
    out->len = done;
    out->data[done] = '\0';
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int local_stat(store *st, const char *key, uint64_t *size, sm_err *err)
{
    char *path = key_path(st, key);
    struct stat sb;
    int rc = 0;

    if (stat(path, &sb) != 0) {
        rc = errno == ENOENT ? 1 : sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
    } else if (size) {
        *size = (uint64_t)sb.st_size;
    }
    free(path);
    return rc;
}

static int is_temp_name(const char *name)
{
    return strstr(name, ".tmp.") != NULL;
}

/* Walks dir (whose key prefix is rel) and calls cb for every regular file. */
static int walk(const char *dir, const char *rel, store_list_cb cb, void *ud, sm_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (!d) {
        if (errno == ENOENT)
            return 0;
        return sm_err_sys(err, SM_E_IO, "cannot list '%s'", dir);
    }
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        char *path, *key;
        struct stat sb;

        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        if (is_temp_name(de->d_name))
            continue;
        path = sm_path_join(dir, de->d_name);
        key = rel[0] ? sm_xasprintf("%s/%s", rel, de->d_name) : sm_xstrdup(de->d_name);
        if (lstat(path, &sb) != 0) {
            if (errno != ENOENT) /* deleted meanwhile: fine */
                rc = sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
        } else if (S_ISDIR(sb.st_mode)) {
            rc = walk(path, key, cb, ud, err);
        } else if (S_ISREG(sb.st_mode)) {
            rc = cb(key, (uint64_t)sb.st_size, ud, err);
        }
        free(path);
        free(key);
    }
    if (rc == 0 && errno != 0 && !de)
        rc = sm_err_sys(err, SM_E_IO, "cannot list '%s'", dir);
    closedir(d);
    return rc;
}

static int local_list(store *st, const char *prefix, store_list_cb cb, void *ud, sm_err *err)
{
    local_store *ls = st->impl;
    size_t n = strlen(prefix);
    char *rel, *dir;
    int rc;

    if (n && prefix[n - 1] != '/')
        return sm_err_set(err, SM_E_INTERNAL, "store prefix '%s' must end with '/'", prefix);
    rel = n ? sm_xstrndup(prefix, n - 1) : sm_xstrdup("");
    dir = n ? sm_path_join(ls->root, rel) : sm_xstrdup(ls->root);
    rc = walk(dir, rel, cb, ud, err);
    free(rel);
    free(dir);
    return rc;
}

static int local_del(store *st, const char *key, sm_err *err)
{
    char *path = key_path(st, key);
    int rc = 0;

    if (unlink(path) == 0)
        rc = sm_fsync_dir(path, 1, err);
    else if (errno != ENOENT)
        rc = sm_err_sys(err, SM_E_IO, "cannot delete '%s'", path);
    free(path);
    return rc;
}

/* Temporary names are "<name>.tmp.<pid>.<random>": remove those whose
 * writer is gone. */
static int cleanup_walk(const char *dir, unsigned *removed, sm_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return errno == ENOENT ? 0 : sm_err_sys(err, SM_E_IO, "cannot list '%s'", dir);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char *path;
        const char *t;
        struct stat sb;

        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        path = sm_path_join(dir, de->d_name);
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            rc = cleanup_walk(path, removed, err);
        } else if ((t = strstr(de->d_name, ".tmp.")) != NULL) {
            long pid = strtol(t + 5, NULL, 10);
            if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
                if (unlink(path) == 0)
                    (*removed)++;
            }
        }
        free(path);
    }
    closedir(d);
    return rc;
}

static int local_cleanup(store *st, unsigned *removed, sm_err *err)
{
    local_store *ls = st->impl;
    return cleanup_walk(ls->root, removed, err);
}

static int local_free_space(store *st, uint64_t *bytes, sm_err *err)
{
    local_store *ls = st->impl;
    unsigned long long b;
    char *probe = sm_xstrdup(ls->root);

    /* the root may not exist yet: ask its nearest existing ancestor */
    while (!sm_is_dir(probe)) {
        char *slash = strrchr(probe, '/');
        if (!slash || slash == probe) {
            strcpy(probe, slash ? "/" : ".");
            break;
        }
        *slash = '\0';
    }
    if (sm_fs_free(probe, &b, err) < 0) {
        free(probe);
        return -1;
    }
    free(probe);
    *bytes = b;
    return 0;
}

static void local_free(store *st)
{
    local_store *ls = st->impl;
    for (size_t i = 0; i < ls->npending; i++)
        free(ls->pending[i]);
    free(ls->pending);
    pthread_mutex_destroy(&ls->mu);
    free(ls->root);
    free(ls);
    free(st->location);
    free(st);
}

static const store_ops local_ops = {
    .put = local_put,
    .put_deferred = local_put_deferred,
    .flush = local_flush,
    .get = local_get,
    .stat = local_stat,
    .list = local_list,
    .del = local_del,
    .cleanup = local_cleanup,
    .free_space = local_free_space,
    .free = local_free,
};

int store_local_open(store **out, const char *dir, sm_err *err)
{
    store *st;
    local_store *ls;
    char *root;
    size_t n;

    if (!dir || !*dir)
        return sm_err_set(err, SM_E_USAGE, "empty repository path");
    if (dir[0] == '/') {
        root = sm_xstrdup(dir);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd)))
            return sm_err_sys(err, SM_E_IO, "cannot read the current directory");
        root = sm_path_join(cwd, dir);
    }
    n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        root[--n] = '\0';
    ls = sm_xcalloc(1, sizeof(*ls));
    ls->root = root;
    pthread_mutex_init(&ls->mu, NULL);
    st = sm_xcalloc(1, sizeof(*st));
    st->ops = &local_ops;
    st->impl = ls;
    st->location = sm_xstrdup(root);
    *out = st;
    return 0;
}
