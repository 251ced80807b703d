/* A local cache of tree blobs, for stores where every request costs (S3).
 *
 * A backup walks the trees of its parent snapshot, and a restore or verify
 * walks the trees of its own; in S3 each tree blob is one ranged GET among
 * the data of a pack. The cache keeps those blobs on the local disk as they
 * are in the pack: sealed (encrypted and authenticated), so it holds nothing
 * readable without the repository's key, and every read from it is checked
 * exactly like a read from the store (GCM tag, length, HMAC id). A blob in
 * the cache that fails a check is removed and read from the store again; a
 * cache that cannot be written is simply not used. Blobs never change under
 * an id, so an entry never goes stale; prune removes the entries of blobs it
 * deleted (repo_cache_trim).
 *
 * Where: $SUPAMANAGER_CACHE (off: no cache), else $SUPAMANAGER_HOME/cache,
 * else $XDG_CACHE_HOME/supamanager, else ~/.cache/supamanager; then
 * <repository id>/trees/<2 hex>/<64 hex>. See docs/FORMAT.md ("Local cache").
 */
#include "repo/repo.intern.h"

#include "core/fsutil.h"
#include "core/mem.h"
#include "repo/index.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *cache_base(void)
{
    const char *e = getenv("SUPAMANAGER_CACHE");

    if (e && (!strcmp(e, "off") || !strcmp(e, "0")))
        return NULL;
    if (e && *e)
        return sm_xstrdup(e);
    if ((e = getenv("SUPAMANAGER_HOME")) && *e)
        return sm_xasprintf("%s/cache", e);
    if ((e = getenv("XDG_CACHE_HOME")) && *e)
        return sm_xasprintf("%s/supamanager", e);
    if ((e = getenv("HOME")) && *e)
        return sm_xasprintf("%s/.cache/supamanager", e);
    return NULL;
}

void repo_cache_init(repo *r)
{
    char *base;

    free(r->cache_dir);
    r->cache_dir = NULL;
    /* the id names a directory: config_load let only 32 hex digits through */
    if (!store_costly_requests(r->st) || strspn(r->id, "0123456789abcdef") != 32 ||
        !(base = cache_base()))
        return;
    r->cache_dir = sm_xasprintf("%s/%s/trees", base, r->id);
    free(base);
    if (sm_mkdir_p(r->cache_dir, 0700, NULL) < 0) {
        free(r->cache_dir); /* no cache, no failure */
        r->cache_dir = NULL;
    }
}

static void entry_path(const repo *r, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.2s/%s", r->cache_dir, hex, hex);
}

int repo_cache_get(repo *r, const char *hex, uint32_t len, sm_buf *sealed)
{
    char path[PATH_MAX];
    int fd;
    ssize_t n;

    if (!r->cache_dir)
        return 0;
    entry_path(r, hex, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    sm_buf_reset(sealed);
    sm_buf_grow(sealed, (size_t)len + 1, NULL);
    n = pread(fd, sealed->data, (size_t)len + 1, 0);
    close(fd);
    if (n != (ssize_t)len) { /* a short or long entry: not this blob */
        unlink(path);
        return 0;
    }
    sealed->len = len;
    return 1;
}

void repo_cache_put(repo *r, const char *hex, const void *p, size_t n)
{
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX + 32];
    int fd, ok;

    if (!r->cache_dir)
        return;
    snprintf(dir, sizeof(dir), "%s/%.2s", r->cache_dir, hex);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return;
    entry_path(r, hex, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%lx", path, (long)getpid(),
             (unsigned long)pthread_self());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    ok = write(fd, p, n) == (ssize_t)n;
    ok = close(fd) == 0 && ok;
    /* no fsync: an entry lost in a crash is read from the store again, and a
     * torn one fails its checks and is replaced */
    if (!ok || rename(tmp, path) < 0)
        unlink(tmp);
}

void repo_cache_drop(repo *r, const char *hex)
{
    char path[PATH_MAX];

    if (!r->cache_dir)
        return;
    entry_path(r, hex, path, sizeof(path));
    unlink(path);
}

void repo_cache_trim(repo *r, int marked_only)
{
    DIR *top;
    struct dirent *de;

    if (!r->cache_dir || !(top = opendir(r->cache_dir)))
        return;
    while ((de = readdir(top))) {
        char sub[PATH_MAX];
        DIR *d;
        struct dirent *f;
        if (de->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", r->cache_dir, de->d_name);
        if (!(d = opendir(sub)))
            continue;
        while ((f = readdir(d))) {
            blob_id id;
            index_entry e;
            if (f->d_name[0] == '.')
                continue;
            if (strlen(f->d_name) != 64 || blob_id_parse(&id, f->d_name) < 0 ||
                index_get(r->idx, &id, &e) != 0 || (marked_only && !e.mark))
                unlinkat(dirfd(d), f->d_name, 0); /* pruned, unused, or a leftover */
        }
        closedir(d);
    }
    closedir(top);
}

void repo_cache_remove(repo *r)
{
    char *dir;
    size_t n;
    sm_err e = SM_ERR_INIT;

    if (!r->cache_dir)
        return;
    /* <base>/<id>/trees: the repository's whole folder goes */
    dir = sm_xstrdup(r->cache_dir);
    n = strlen(dir);
    if (n > 6 && !strcmp(dir + n - 6, "/trees"))
        dir[n - 6] = '\0';
    sm_rm_rf(dir, &e);
    free(dir);
    free(r->cache_dir);
    r->cache_dir = NULL;
}
