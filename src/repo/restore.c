/* Restoring snapshots: file streams to a descriptor, tree streams to a
 * directory. Every chunk is authenticated and its id checked before a byte
 * of it is written; each file's SHA-256 and the tree digest are checked.
 *
 * A tree restore first loads every directory listing (level by level, each
 * level one restore plan), then lists the chunks of all files in the order
 * they will be written (depth first, by name: the order a backup reads them,
 * so packs are consumed from start to end) and reads them through one
 * restore plan (fetch.h): one store read per pack, or per range of a pack. */
#include "repo/fetch.h"

#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- a hard-link map: (dev, inode) -> first restored path ---- */

typedef struct hl_entry {
    uint64_t dev, ino;
    char *path;
} hl_entry;

typedef struct hl_map {
    hl_entry *v;
    size_t n, cap; /* cap a power of two, open addressing */
} hl_map;

static uint64_t hl_hash(uint64_t dev, uint64_t ino)
{
    uint64_t h = dev * 0x9E3779B97F4A7C15ull ^ ino;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static const char *hl_get_or_put(hl_map *m, uint64_t dev, uint64_t ino, const char *path)
{
    size_t i;

    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        hl_entry *nv = sm_xcalloc(nc, sizeof(*nv));
        for (size_t k = 0; k < m->cap; k++) {
            if (!m->v[k].path)
                continue;
            i = (size_t)hl_hash(m->v[k].dev, m->v[k].ino) & (nc - 1);
            while (nv[i].path)
                i = (i + 1) & (nc - 1);
            nv[i] = m->v[k];
        }
        free(m->v);
        m->v = nv;
        m->cap = nc;
    }
    i = (size_t)hl_hash(dev, ino) & (m->cap - 1);
    while (m->v[i].path) {
        if (m->v[i].dev == dev && m->v[i].ino == ino)
            return m->v[i].path;
        i = (i + 1) & (m->cap - 1);
    }
    m->v[i].dev = dev;
    m->v[i].ino = ino;
    m->v[i].path = sm_xstrdup(path);
    m->n++;
    return NULL;
}

static void hl_free(hl_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->v[i].path);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* ---- context ---- */

typedef struct rctx {
    repo *r;
    const repo_restore_opts *o;
    fplan *plan; /* the chunks of the files being written, in order */
    blob_reader br;
    sha256_ctx *digest;
    sha256_ctx *fsha;
    sm_buf line;
    sm_buf path; /* relative path of the current directory */
    int rootfd;
    hl_map links;
    int is_root;
    uint64_t bytes_done, bytes_total, files_done;
    double last;
    const char *stream;
} rctx;

static void rprogress(rctx *c, int force)
{
    repo_progress p;
    double now;

    if (!c->o || !c->o->progress)
        return;
    now = sm_mono();
    if (!force && now - c->last < 0.2)
        return;
    c->last = now;
    memset(&p, 0, sizeof(p));
    p.phase = "restore";
    p.stream = c->stream;
    p.bytes_done = c->bytes_done;
    p.bytes_total = c->bytes_total;
    p.files_done = c->files_done;
    c->o->progress(c->o->progress_ud, &p);
}

static int rcancel(rctx *c, sm_err *err)
{
    if (c->o && c->o->cancel && *c->o->cancel)
        return sm_err_set(err, SM_E_INTERRUPTED, "restore interrupted");
    return 0;
}

static char *rel_of(rctx *c, const char *name)
{
    if (c->path.len == 0)
        return sm_xstrdup(name);
    return sm_xasprintf("%s/%s", sm_buf_str(&c->path), name);
}

/* ---- metadata ---- */

static int set_xattrs_fd(int fd, const tree_node *n, const char *rel, sm_err *err)
{
    for (size_t i = 0; i < n->nxattrs; i++) {
        const tree_xattr *x = &n->xattrs[i];
        if (fsetxattr(fd, x->name, x->value, x->len, 0) != 0) {
            if (strncmp(x->name, "user.", 5) == 0)
                return sm_err_sys(err, SM_E_IO, "cannot set extended attribute '%s' on '%s'",
                                  x->name, rel);
            sm_log(SM_LOG_WARN, "cannot set extended attribute '%s' on '%s': %s", x->name, rel,
                   strerror(errno));
        }
    }
    return 0;
}

static void times_of(const tree_node *n, struct timespec ts[2])
{
    ts[0].tv_sec = n->mtime_s;
    ts[0].tv_nsec = n->mtime_ns;
    ts[1] = ts[0];
}

static int set_meta_fd(rctx *c, int fd, const tree_node *n, const char *rel, sm_err *err)
{
    struct timespec ts[2];

    if (set_xattrs_fd(fd, n, rel, err) < 0)
        return -1;
    if (c->is_root && !(c->o && c->o->no_owner) && fchown(fd, n->uid, n->gid) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", rel);
    if (fchmod(fd, n->mode) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the mode of '%s'", rel);
    times_of(n, ts);
    if (futimens(fd, ts) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the times of '%s'", rel);
    return 0;
}

static int set_meta_at(rctx *c, int dfd, const tree_node *n, const char *rel, sm_err *err)
{
    struct timespec ts[2];

    if (c->is_root && !(c->o && c->o->no_owner) &&
        fchownat(dfd, n->name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the owner of '%s'", rel);
    if (n->type != NODE_SYMLINK && fchmodat(dfd, n->name, n->mode, 0) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the mode of '%s'", rel);
    times_of(n, ts);
    if (utimensat(dfd, n->name, ts, AT_SYMLINK_NOFOLLOW) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot set the times of '%s'", rel);
    return 0;
}

/* ---- file content ---- */

static int write_chunk(int fd, const sm_buf *b, int sparse, const char *rel, sm_err *err)
{
    if (sparse && b->len >= 4096 && mem_is_zero(b->data, b->len)) {
        if (lseek(fd, (off_t)b->len, SEEK_CUR) < 0)
            return sm_err_sys(err, SM_E_IO, "cannot seek in '%s'", rel);
        return 0;
    }
    return sm_write_all(fd, b->data, b->len, rel, err);
}

/* Writes the file of node n to fd from the next chunks of the plan,
 * checking its checksum. */
static int write_file(rctx *c, int fd, const tree_node *n, const char *rel, sm_err *err)
{
    unsigned char d[32];
    uint64_t size = 0;

    sha256_reset(c->fsha);
    for (size_t k = 0; k < n->ncontent; k++) {
        const sm_buf *b;
        if (fplan_next(c->plan, &b, err) < 0) {
            sm_err_prefix(err, "cannot restore '%s'", rel);
            return -1;
        }
        sha256_update(c->fsha, b->data, b->len);
        if (write_chunk(fd, b, 1, rel, err) < 0)
            return -1;
        size += b->len;
        c->bytes_done += b->len;
        if (rcancel(c, err) < 0)
            return -1;
        rprogress(c, 0);
    }
    if (ftruncate(fd, (off_t)size) != 0) /* a trailing hole */
        return sm_err_sys(err, SM_E_IO, "cannot set the size of '%s'", rel);
    sha256_final(c->fsha, d);
    if (size != n->size || memcmp(d, n->sha256, 32) != 0)
        return sm_err_set(err, SM_E_CORRUPT, "restored file '%s' does not match its checksum",
                          rel);
    return 0;
}

static int special_refused(rctx *c, const tree_node *n, const char *rel, sm_err *err)
{
    (void)c;
    sm_err_set(err, SM_E_INVALID, "'%s' is a special file (%s)", rel, node_type_name(n->type));
    return sm_err_hint(err, "Pass --special to restore fifos, sockets and device files.");
}

static void rdigest(rctx *c, const char *rel, const tree_node *n)
{
    sm_buf_reset(&c->line);
    tree_digest_line(&c->line, rel, n);
    sha256_update(c->digest, c->line.data, c->line.len);
}

/* A directory's listing with the listings of its subdirectories, loaded
 * before anything is written. */
typedef struct rdir {
    tree t;
    struct rdir **sub; /* per node: a directory's listing, else NULL */
    char **linkto;     /* per node: a file restored as a hard link to this path, else NULL */
} rdir;

static rdir *rdir_new(void)
{
    rdir *d = sm_xcalloc(1, sizeof(*d));
    d->t = (tree)TREE_INIT;
    return d;
}

static void rdir_sized(rdir *d)
{
    d->sub = sm_xcalloc(d->t.n ? d->t.n : 1, sizeof(*d->sub));
    d->linkto = sm_xcalloc(d->t.n ? d->t.n : 1, sizeof(*d->linkto));
}

static void rdir_free(rdir *d)
{
    if (!d)
        return;
    for (size_t i = 0; d->sub && i < d->t.n; i++) {
        rdir_free(d->sub[i]);
        free(d->linkto[i]);
    }
    free(d->sub);
    free(d->linkto);
    tree_release(&d->t);
    free(d);
}

typedef struct lvl_item {
    rdir *parent;
    size_t node;
    char *rel;
} lvl_item;

static void lvl_add_dirs(lvl_item **v, size_t *n, size_t *cap, rdir *d, const char *rel)
{
    for (size_t i = 0; i < d->t.n; i++) {
        const tree_node *nd = &d->t.nodes[i];
        if (nd->type != NODE_DIR)
            continue;
        SM_GROW(*v, *cap, *n + 1);
        (*v)[*n].parent = d;
        (*v)[*n].node = i;
        (*v)[*n].rel = rel ? sm_xasprintf("%s/%s", rel, nd->name) : sm_xstrdup(nd->name);
        (*n)++;
    }
}

/* Loads the listings under root, one level of the tree per restore plan
 * (the listings of a level are read together, by pack). Listings met on the
 * way (tcache) are not read again. */
static int load_trees(rctx *c, rdir *root, sm_err *err)
{
    lvl_item *cur = NULL, *nextv = NULL;
    size_t ncur = 0, ccur = 0, nnext = 0, cnext = 0;
    blob_id *ids = NULL;
    size_t idcap = 0, nids;
    const sm_buf **have = NULL;
    size_t havecap = 0;
    tcache *tc = tcache_new(c->r);
    fplan *p = NULL;
    sm_buf *disk = NULL; /* listings found in the local cache of trees, this level */
    size_t diskcap = 0;
    blob_reader br;
    int rc = -1;

    blob_reader_init(&br, c->r);
    lvl_add_dirs(&cur, &ncur, &ccur, root, NULL);
    while (ncur > 0) {
        if (rcancel(c, err) < 0)
            goto out;
        SM_GROW(ids, idcap, ncur);
        SM_GROW(have, havecap, ncur);
        if (ncur > diskcap) {
            disk = sm_xrealloc(disk, ncur * sizeof(*disk));
            for (size_t i = diskcap; i < ncur; i++)
                disk[i] = (sm_buf)SM_BUF_INIT;
            diskcap = ncur;
        }
        nids = 0;
        for (size_t i = 0; i < ncur; i++) {
            const blob_id *id = &cur[i].parent->t.nodes[cur[i].node].subtree;
            have[i] = tcache_get(tc, id);
            if (!have[i] && blob_read_cached(&br, id, &disk[i]) == 0)
                have[i] = &disk[i];
            if (!have[i])
                ids[nids++] = *id;
        }
        if (fplan_new(&p, c->r, ids, nids, c->o ? c->o->threads : 0, tc, err) < 0)
            goto out;
        for (size_t i = 0; i < ncur; i++) {
            const sm_buf *b = have[i];
            char hex[65], what[16];
            rdir *d = rdir_new();
            cur[i].parent->sub[cur[i].node] = d;
            blob_id_hex(&cur[i].parent->t.nodes[cur[i].node].subtree, hex);
            snprintf(what, sizeof(what), "%.12s", hex);
            if ((!b && fplan_next(p, &b, err) < 0) ||
                tree_decode(&d->t, b->data, b->len, what, err) < 0) {
                sm_err_prefix(err, "cannot restore directory '%s'", cur[i].rel);
                goto out;
            }
            rdir_sized(d);
            lvl_add_dirs(&nextv, &nnext, &cnext, d, cur[i].rel);
        }
        fplan_free(p);
        p = NULL;
        for (size_t i = 0; i < ncur; i++)
            free(cur[i].rel);
        free(cur);
        cur = nextv;
        ncur = nnext;
        ccur = cnext;
        nextv = NULL;
        nnext = cnext = 0;
    }
    rc = 0;
out:
    for (size_t i = 0; i < diskcap; i++)
        sm_buf_release(&disk[i]);
    free(disk);
    blob_reader_release(&br);
    fplan_free(p);
    tcache_free(tc);
    for (size_t i = 0; i < ncur; i++)
        free(cur[i].rel);
    for (size_t i = 0; i < nnext; i++)
        free(nextv[i].rel);
    free(cur);
    free(nextv);
    free(ids);
    free(have);
    return rc;
}

typedef struct seq {
    blob_id *v;
    size_t n, cap;
} seq;

/* Lists the chunks of the files under d in the order restore_dir writes
 * them, and decides which files are hard links to one restored earlier. */
static void plan_dir(rctx *c, rdir *d, seq *q)
{
    size_t saved = c->path.len;

    for (size_t i = 0; i < d->t.n; i++) {
        const tree_node *n = &d->t.nodes[i];
        if (n->type == NODE_FILE) {
            if (n->nlink > 1) {
                char *rel = rel_of(c, n->name);
                const char *first = hl_get_or_put(&c->links, n->dev, n->inode, rel);
                if (first)
                    d->linkto[i] = sm_xstrdup(first);
                free(rel);
                if (first)
                    continue;
            }
            SM_GROW(q->v, q->cap, q->n + n->ncontent);
            if (n->ncontent)
                memcpy(q->v + q->n, n->content, n->ncontent * sizeof(*q->v));
            q->n += n->ncontent;
        } else if (n->type == NODE_DIR && d->sub[i]) {
            if (c->path.len)
                sm_buf_putc(&c->path, '/');
            sm_buf_puts(&c->path, n->name);
            plan_dir(c, d->sub[i], q);
            c->path.len = saved;
            c->path.data[saved] = '\0';
        }
    }
}

/* Restores the entries of d into dfd, depth first, by name. */
static int restore_dir(rctx *c, int dfd, rdir *d, sm_err *err)
{
    size_t saved = c->path.len;

    for (size_t i = 0; i < d->t.n; i++) {
        const tree_node *n = &d->t.nodes[i];
        char *rel = rel_of(c, n->name);
        int fd = -1, rc = -1;

        rdigest(c, rel, n);
        if (n->type == NODE_FILE && d->linkto[i]) {
            if (linkat(c->rootfd, d->linkto[i], dfd, n->name, 0) != 0)
                sm_err_sys(err, SM_E_IO, "cannot link '%s' to '%s'", rel, d->linkto[i]);
            else
                rc = 0;
        } else if (n->type == NODE_FILE) {
            if ((fd = openat(dfd, n->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                             0600)) < 0)
                sm_err_sys(err, SM_E_IO, "cannot create '%s'", rel);
            else if (write_file(c, fd, n, rel, err) == 0 && set_meta_fd(c, fd, n, rel, err) == 0)
                rc = 0;
            c->files_done++;
        } else if (n->type == NODE_SYMLINK) {
            if (symlinkat(n->target, dfd, n->name) != 0)
                sm_err_sys(err, SM_E_IO, "cannot create symlink '%s'", rel);
            else
                rc = set_meta_at(c, dfd, n, rel, err);
        } else if (n->type == NODE_DIR) {
            if (!d->sub[i])
                sm_err_set(err, SM_E_INTERNAL, "directory '%s' was not loaded", rel);
            else if (mkdirat(dfd, n->name, 0700) != 0)
                sm_err_sys(err, SM_E_IO, "cannot create directory '%s'", rel);
            else if ((fd = openat(dfd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
                     0)
                sm_err_sys(err, SM_E_IO, "cannot open directory '%s'", rel);
            else {
                if (c->path.len)
                    sm_buf_putc(&c->path, '/');
                sm_buf_puts(&c->path, n->name);
                rc = restore_dir(c, fd, d->sub[i], err);
                c->path.len = saved;
                c->path.data[saved] = '\0';
                if (rc == 0)
                    rc = set_meta_fd(c, fd, n, rel, err);
            }
        } else {
            mode_t m = n->type == NODE_FIFO ? S_IFIFO
                     : n->type == NODE_CHR  ? S_IFCHR
                     : n->type == NODE_BLK  ? S_IFBLK
                                            : S_IFSOCK;
            if (!(c->o && c->o->allow_special))
                special_refused(c, n, rel, err);
            else if (mknodat(dfd, n->name, m | 0600, (dev_t)n->rdev) != 0)
                sm_err_sys(err, SM_E_IO, "cannot create special file '%s'", rel);
            else
                rc = set_meta_at(c, dfd, n, rel, err);
        }
        if (fd >= 0 && close(fd) != 0 && rc == 0)
            rc = sm_err_sys(err, SM_E_IO, "cannot close '%s'", rel);
        free(rel);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int rctx_init(rctx *c, repo *r, const repo_restore_opts *o, sm_err *err)
{
    memset(c, 0, sizeof(*c));
    c->r = r;
    c->o = o;
    c->rootfd = -1;
    c->is_root = geteuid() == 0;
    if (repo_index_ensure(r, err) < 0)
        return -1;
    blob_reader_init(&c->br, r);
    c->digest = sha256_new();
    c->fsha = sha256_new();
    return 0;
}

static void rctx_release(rctx *c)
{
    fplan_free(c->plan);
    if (c->br.r)
        blob_reader_release(&c->br);
    sha256_free(c->digest);
    sha256_free(c->fsha);
    sm_buf_release(&c->line);
    sm_buf_release(&c->path);
    hl_free(&c->links);
    if (c->rootfd >= 0)
        close(c->rootfd);
}

static int stream_of(const snapshot *s, const char *name, const char *kind, json_t **out,
                     sm_err *err)
{
    json_t *st = snapshot_stream(s, name);
    const char *k;

    if (!st) {
        sm_err_set(err, SM_E_NOTFOUND, "snapshot %.12s has no stream '%s'", snapshot_id(s), name);
        return -1;
    }
    k = json_string_value(json_object_get(st, "kind"));
    if (kind && (!k || strcmp(k, kind) != 0))
        return sm_err_set(err, SM_E_INVALID, "stream '%s' of snapshot %.12s is a %s, not a %s",
                          name, snapshot_id(s), k ? k : "?", kind);
    *out = st;
    return 0;
}

/* Parses a file stream's content list and checksum. */
static int file_stream_node(json_t *st, tree_node *n, sm_err *err)
{
    json_t *c = json_object_get(st, "content"), *sha = json_object_get(st, "sha256");

    memset(n, 0, sizeof(*n));
    n->type = NODE_FILE;
    n->size = (uint64_t)json_integer_value(json_object_get(st, "size"));
    if (!json_is_array(c) || !json_is_string(sha) ||
        sm_unhex(n->sha256, json_string_value(sha), 32) < 0)
        return sm_err_set(err, SM_E_CORRUPT, "a stream of the snapshot is damaged");
    n->has_sha = 1;
    for (size_t i = 0; i < json_array_size(c); i++) {
        blob_id id;
        json_t *v = json_array_get(c, i);
        if (!json_is_string(v) || blob_id_parse(&id, json_string_value(v)) < 0) {
            tree_node_release(n);
            return sm_err_set(err, SM_E_CORRUPT, "a stream of the snapshot is damaged");
        }
        tree_node_add_content(n, &id);
    }
    return 0;
}

typedef struct fd_sink {
    int fd;
    const char *what;
} fd_sink;

static int to_fd(void *ud, const void *p, size_t n, sm_err *err)
{
    fd_sink *s = ud;
    return sm_write_all(s->fd, p, n, s->what, err);
}

static int read_tick(void *ud, size_t n, sm_err *err)
{
    rctx *c = ud;
    c->bytes_done += n;
    if (rcancel(c, err) < 0)
        return -1;
    rprogress(c, 0);
    return 0;
}

/* Streams a node's content in order through fn, checking size and SHA-256,
 * through one restore plan (one store read per pack or range of a pack). */
static int read_node(rctx *c, const tree_node *n, const char *what, repo_data_fn fn, void *ud,
                     sm_err *err)
{
    sha256_ctx *sha = sha256_new();
    unsigned char d[32];
    uint64_t size = 0;
    int rc = -1;

    if (fplan_new(&c->plan, c->r, n->content, n->ncontent, c->o ? c->o->threads : 0, NULL, err) < 0)
        goto out;
    for (size_t k = 0; k < n->ncontent; k++) {
        const sm_buf *b;
        if (fplan_next(c->plan, &b, err) < 0) {
            sm_err_prefix(err, "'%s'", what);
            goto out;
        }
        sha256_update(sha, b->data, b->len);
        if (fn && fn(ud, b->data, b->len, err) < 0)
            goto out;
        size += b->len;
        if (read_tick(c, b->len, err) < 0)
            goto out;
    }
    sha256_final(sha, d);
    if (size != n->size || memcmp(d, n->sha256, 32) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "'%s' does not match its checksum", what);
        goto out;
    }
    rc = 0;
out:
    fplan_free(c->plan);
    c->plan = NULL;
    sha256_free(sha);
    return rc;
}

int repo_read_node(repo *r, const tree_node *node, repo_data_fn fn, void *ud, sm_err *err)
{
    rctx c;
    int rc = -1;

    if (rctx_init(&c, r, NULL, err) == 0)
        rc = read_node(&c, node, node->name ? node->name : "file", fn, ud, err);
    rctx_release(&c);
    return rc;
}

struct repo_reader {
    repo *r;
    fetcher *f;
};

int repo_reader_new(repo_reader **out, repo *r, int threads, sm_err *err)
{
    repo_reader *rr;

    if (repo_index_ensure(r, err) < 0)
        return -1;
    rr = sm_xcalloc(1, sizeof(*rr));
    rr->r = r;
    if (fetcher_new(&rr->f, r, threads, err) < 0) {
        free(rr);
        return -1;
    }
    *out = rr;
    return 0;
}

int repo_reader_read_node(repo_reader *rr, const tree_node *node, repo_data_fn fn, void *ud,
                          sm_err *err)
{
    return fetch_node(rr->f, node, node->name ? node->name : "file", fn, ud, NULL, NULL, err);
}

void repo_reader_free(repo_reader *rr)
{
    if (!rr)
        return;
    fetcher_free(rr->f);
    free(rr);
}

int repo_read_stream(repo *r, const snapshot *s, const char *stream, repo_data_fn fn, void *ud,
                     sm_err *err)
{
    rctx c;
    json_t *st;
    tree_node n;
    int rc = -1;

    memset(&n, 0, sizeof(n));
    if (stream_of(s, stream, "file", &st, err) < 0 || file_stream_node(st, &n, err) < 0)
        return -1;
    if (rctx_init(&c, r, NULL, err) == 0)
        rc = read_node(&c, &n, stream, fn, ud, err);
    rctx_release(&c);
    tree_node_release(&n);
    return rc;
}

int repo_restore_stream_fd(repo *r, const snapshot *s, const char *name, int fd,
                           const repo_restore_opts *o, sm_err *err)
{
    rctx c;
    json_t *st;
    tree_node n;
    fd_sink sink = {fd, name};
    int rc = -1;

    memset(&n, 0, sizeof(n));
    if (stream_of(s, name, "file", &st, err) < 0 || file_stream_node(st, &n, err) < 0)
        return -1;
    if (rctx_init(&c, r, o, err) == 0) {
        c.stream = name;
        c.bytes_total = n.size;
        rc = read_node(&c, &n, name, to_fd, &sink, err);
        rprogress(&c, 1);
    }
    rctx_release(&c);
    tree_node_release(&n);
    return rc;
}

static int prepare_target(const char *target, sm_err *err)
{
    struct stat sb;
    char *parent, *slash;
    int rc;

    if (lstat(target, &sb) == 0) {
        int fd;
        DIR *d;
        struct dirent *de;
        int empty = 1;
        if (!S_ISDIR(sb.st_mode)) {
            sm_err_set(err, SM_E_EXISTS, "restore target '%s' exists and is not a directory",
                       target);
            return sm_err_hint(err, "Restore into a new or empty directory.");
        }
        fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
            if (fd >= 0)
                close(fd);
            return sm_err_sys(err, SM_E_IO, "cannot read '%s'", target);
        }
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                empty = 0;
        closedir(d);
        if (!empty) {
            sm_err_set(err, SM_E_EXISTS, "restore target '%s' is not empty", target);
            return sm_err_hint(err, "Restore into a new or empty directory; nothing was "
                                    "overwritten.");
        }
        return 0;
    }
    parent = sm_xstrdup(target);
    slash = strrchr(parent, '/');
    rc = 0;
    if (slash && slash != parent) {
        *slash = '\0';
        rc = sm_mkdir_p(parent, 0755, err);
    }
    free(parent);
    if (rc == 0 && mkdir(target, 0700) != 0)
        rc = sm_err_sys(err, SM_E_IO, "cannot create '%s'", target);
    return rc;
}

int repo_restore_tree(repo *r, const snapshot *s, const char *name, const char *target,
                      const repo_restore_opts *o, sm_err *err)
{
    rctx c;
    json_t *st;
    tree_node root;
    rdir *top = NULL;
    seq q = {NULL, 0, 0};
    unsigned char d[32];
    char hex[65];
    const char *want;
    int rc = -1;

    memset(&root, 0, sizeof(root));
    if (stream_of(s, name, "tree", &st, err) < 0)
        return -1;
    if (tree_node_from_json(&root, json_object_get(st, "root"), "root", err) < 0 ||
        root.type != NODE_DIR) {
        sm_err_prefix(err, "snapshot %.12s stream '%s'", snapshot_id(s), name);
        return -1;
    }
    if (json_integer_value(json_object_get(st, "special")) > 0 && !(o && o->allow_special)) {
        sm_err_set(err, SM_E_INVALID, "stream '%s' of snapshot %.12s holds %lld special files",
                   name, snapshot_id(s), (long long)json_integer_value(json_object_get(st, "special")));
        sm_err_hint(err, "Pass --special to restore fifos, sockets and device files.");
        tree_node_release(&root);
        return -1;
    }
    if (rctx_init(&c, r, o, err) < 0)
        goto out;
    c.stream = name;
    c.bytes_total = (uint64_t)json_integer_value(json_object_get(st, "size"));
    if (prepare_target(target, err) < 0)
        goto out;
    c.rootfd = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (c.rootfd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot open '%s'", target);
        goto out;
    }
    rdigest(&c, ".", &root);
    top = rdir_new();
    if (tree_load(&c.br, &root.subtree, &top->t, err) < 0)
        goto out;
    rdir_sized(top);
    if (load_trees(&c, top, err) < 0)
        goto out;
    plan_dir(&c, top, &q);
    if (fplan_new(&c.plan, r, q.v, q.n, o ? o->threads : 0, NULL, err) < 0)
        goto out;
    free(q.v);
    q.v = NULL;
    if (restore_dir(&c, c.rootfd, top, err) < 0)
        goto out;
    if (set_meta_fd(&c, c.rootfd, &root, target, err) < 0)
        goto out;
    sha256_final(c.digest, d);
    sm_hex(hex, d, 32);
    want = json_string_value(json_object_get(st, "sha256"));
    if (!want || strcmp(want, hex) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "restored tree '%s' does not match its checksum", name);
        goto out;
    }
    rprogress(&c, 1);
    rc = 0;
out:
    rctx_release(&c);
    rdir_free(top);
    free(q.v);
    tree_node_release(&root);
    return rc;
}

int repo_restore_all(repo *r, const snapshot *s, const char *target, const repo_restore_opts *o,
                     sm_err *err)
{
    json_t *streams = json_object_get(snapshot_json(s), "streams"), *st;
    size_t i;

    if (prepare_target(target, err) < 0)
        return -1;
    json_array_foreach(streams, i, st)
    {
        const char *name = json_string_value(json_object_get(st, "name"));
        const char *kind = json_string_value(json_object_get(st, "kind"));
        char *path;
        int rc;

        if (!name || !kind)
            return sm_err_set(err, SM_E_CORRUPT, "snapshot %.12s is damaged", snapshot_id(s));
        path = sm_path_join(target, name);
        if (!strcmp(kind, "tree")) {
            rc = repo_restore_tree(r, s, name, path, o, err);
        } else {
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                rc = sm_err_sys(err, SM_E_IO, "cannot create '%s'", path);
            } else {
                rc = repo_restore_stream_fd(r, s, name, fd, o, err);
                if (rc == 0 && fsync(fd) != 0)
                    rc = sm_err_sys(err, SM_E_IO, "cannot fsync '%s'", path);
                if (close(fd) != 0 && rc == 0)
                    rc = sm_err_sys(err, SM_E_IO, "cannot close '%s'", path);
            }
        }
        free(path);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- walking ---- */

typedef struct walk_ctx {
    blob_reader br;
    repo_walk_fn fn;
    void *ud;
    sm_buf path;
} walk_ctx;

static int walk_tree(walk_ctx *w, const blob_id *id, sm_err *err)
{
    tree t = TREE_INIT;
    size_t saved = w->path.len;
    int rc = -1;

    if (tree_load(&w->br, id, &t, err) < 0)
        return -1;
    for (size_t i = 0; i < t.n; i++) {
        const tree_node *n = &t.nodes[i];
        if (w->path.len)
            sm_buf_putc(&w->path, '/');
        sm_buf_puts(&w->path, n->name);
        if (w->fn(w->ud, sm_buf_str(&w->path), n, err) != 0)
            goto out;
        if (n->type == NODE_DIR && walk_tree(w, &n->subtree, err) < 0)
            goto out;
        w->path.len = saved;
        w->path.data[saved] = '\0';
    }
    rc = 0;
out:
    tree_release(&t);
    return rc;
}

int repo_tree_walk(repo *r, const snapshot *s, const char *stream, repo_walk_fn fn, void *ud,
                   sm_err *err)
{
    walk_ctx w;
    json_t *st;
    tree_node root;
    int rc = -1;

    memset(&root, 0, sizeof(root));
    if (stream_of(s, stream, "tree", &st, err) < 0)
        return -1;
    if (tree_node_from_json(&root, json_object_get(st, "root"), "root", err) < 0)
        return -1;
    if (repo_index_ensure(r, err) < 0) {
        tree_node_release(&root);
        return -1;
    }
    memset(&w, 0, sizeof(w));
    blob_reader_init(&w.br, r);
    w.fn = fn;
    w.ud = ud;
    rc = walk_tree(&w, &root.subtree, err);
    blob_reader_release(&w.br);
    sm_buf_release(&w.path);
    tree_node_release(&root);
    return rc;
}
