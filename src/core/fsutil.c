#include "core/fsutil.h"

#include "core/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int sm_write_all(int fd, const void *p, size_t n, const char *what, sm_err *err)
{
    const unsigned char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return sm_err_sys(err, SM_E_IO, "cannot write '%s'", what);
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int sm_read_full(int fd, void *p, size_t n, size_t *got, const char *what, sm_err *err)
{
    unsigned char *c = p;
    size_t done = 0;

    while (done < n) {
        ssize_t r = read(fd, c + done, n - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sm_err_sys(err, SM_E_IO, "cannot read '%s'", what);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int sm_fsync_dir(const char *path, int of_parent, sm_err *err)
{
    char *dir = NULL;
    int fd, rc = 0;

    if (of_parent) {
        const char *slash = strrchr(path, '/');
        dir = slash ? (slash == path ? sm_xstrdup("/") : sm_xstrndup(path, (size_t)(slash - path)))
                    : sm_xstrdup(".");
    } else {
        dir = sm_xstrdup(path);
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = sm_err_sys(err, SM_E_IO, "cannot open directory '%s'", dir);
    } else {
        if (fsync(fd) != 0 && errno != EINVAL)
            rc = sm_err_sys(err, SM_E_IO, "cannot fsync directory '%s'", dir);
        close(fd);
    }
    free(dir);
    return rc;
}

int sm_mkdir_p(const char *path, mode_t mode, sm_err *err)
{
    char *p = sm_xstrdup(path);
    int rc = -1;

    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            sm_err_sys(err, SM_E_IO, "cannot create directory '%s'", p);
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST) {
        sm_err_sys(err, SM_E_IO, "cannot create directory '%s'", p);
        goto out;
    }
    if (!sm_is_dir(p)) {
        sm_err_set(err, SM_E_IO, "'%s' exists and is not a directory", p);
        goto out;
    }
    rc = 0;
out:
    free(p);
    return rc;
}

int sm_write_file_atomic(const char *path, const void *data, size_t len, int excl, sm_err *err)
{
    char *tmp = sm_xasprintf("%s.tmp.%ld.%lx", path, (long)getpid(), (unsigned long)random());
    int fd = -1, rc = -1;
    const char *slash = strrchr(path, '/');

    if (slash && slash != path) {
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
    if (fsync(fd) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot fsync '%s'", tmp);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        sm_err_sys(err, SM_E_IO, "cannot close '%s'", tmp);
        goto out;
    }
    fd = -1;
    if (excl) {
        /* link() fails with EEXIST instead of replacing: no race with another writer. */
        if (link(tmp, path) != 0) {
            if (errno == EEXIST)
                sm_err_set(err, SM_E_EXISTS, "'%s' already exists", path);
            else
                sm_err_sys(err, SM_E_IO, "cannot create '%s'", path);
            goto out;
        }
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot rename '%s' to '%s'", tmp, path);
        goto out;
    }
    if (sm_fsync_dir(path, 1, err) < 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 || excl)
        unlink(tmp);
    free(tmp);
    return rc;
}

int sm_read_file(const char *path, sm_buf *out, size_t max, int missing_ok, sm_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = -1;

    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return 1;
        if (errno == ENOENT)
            return sm_err_sys(err, SM_E_NOTFOUND, "cannot open '%s'", path);
        return sm_err_sys(err, SM_E_IO, "cannot open '%s'", path);
    }
    if (fstat(fd, &st) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
        goto out;
    }
    if (max && (size_t)st.st_size > max) {
        sm_err_set(err, SM_E_LIMIT, "'%s' is larger than %zu bytes", path, max);
        goto out;
    }
    sm_buf_reset(out);
    for (;;) {
        ssize_t r;
        if (sm_buf_grow(out, 65536, err) < 0)
            goto out;
        r = read(fd, out->data + out->len, out->cap - out->len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sm_err_sys(err, SM_E_IO, "cannot read '%s'", path);
            goto out;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
        if (max && out->len > max) {
            sm_err_set(err, SM_E_LIMIT, "'%s' is larger than %zu bytes", path, max);
            goto out;
        }
    }
    out->data[out->len] = '\0';
    rc = 0;
out:
    close(fd);
    return rc;
}

int sm_rm_rf(const char *path, sm_err *err)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT)
            return sm_err_sys(err, SM_E_IO, "cannot remove '%s'", path);
        return 0;
    }
    d = opendir(path);
    if (!d) {
        /* an unreadable directory: try to make it readable first */
        if (chmod(path, 0700) != 0 || !(d = opendir(path)))
            return sm_err_sys(err, SM_E_IO, "cannot open directory '%s'", path);
    }
    while ((de = readdir(d)) != NULL) {
        char *sub;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        sub = sm_path_join(path, de->d_name);
        rc = sm_rm_rf(sub, err);
        free(sub);
        if (rc < 0)
            break;
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT)
        rc = sm_err_sys(err, SM_E_IO, "cannot remove directory '%s'", path);
    return rc;
}

int sm_unlink(const char *path, sm_err *err)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return sm_err_sys(err, SM_E_IO, "cannot remove '%s'", path);
    return 0;
}

int sm_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int sm_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *sm_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);

    if (la == 0)
        return sm_xstrdup(b);
    if (a[la - 1] == '/')
        return sm_xasprintf("%s%s", a, b);
    return sm_xasprintf("%s/%s", a, b);
}

char *sm_mkdtemp(const char *base, const char *prefix, sm_err *err)
{
    const char *dir = base ? base : getenv("TMPDIR");
    char *tmpl;

    if (!dir || !*dir)
        dir = "/tmp";
    tmpl = sm_xasprintf("%s/%s.XXXXXX", dir, prefix);
    if (!mkdtemp(tmpl)) {
        sm_err_sys(err, SM_E_IO, "cannot create a temporary directory in '%s'", dir);
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

int sm_fs_free(const char *path, unsigned long long *free_bytes, sm_err *err)
{
    struct statvfs sv;

    if (statvfs(path, &sv) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot read the free space of '%s'", path);
    *free_bytes = (unsigned long long)sv.f_bavail * sv.f_frsize;
    return 0;
}
