/* The backup pipeline.
 *
 * The calling thread (the producer) reads and chunks the plaintext and hands
 * chunks to worker threads through a bounded ring. Workers compute the chunk
 * id (HMAC), skip chunks the index already knows, compress, encrypt and
 * append to the open pack; a full pack is sealed and stored by the worker
 * that filled it while the others keep going. Everything that must happen
 * in stream order (the SHA-256 of each stream and file, the tree digest)
 * runs on one more thread, the hasher, fed by a queue of operations in
 * producer order. The producer reaps jobs in order, so content lists stay in
 * stream order. Memory is bounded by the ring (RING x max chunk), the
 * hasher's queue and at most two packs.
 */
#include "repo/repo.intern.h"

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
#include <sys/xattr.h>
#include <unistd.h>

#define XATTR_MAX_LIST (64u * 1024)
#define XATTR_MAX_VALUE (64u * 1024)

typedef struct id_list {
    blob_id *ids;
    size_t n, cap;
} id_list;

enum { JOB_FREE = 0, JOB_QUEUED, JOB_DONE };

typedef struct wjob {
    unsigned char *data;
    size_t len, cap;
    int hashed; /* the hasher is done with data */
    uint8_t type;
    int have_id;
    blob_id id;
    int state;
    int failed;
    sm_err err;
    int is_new;
    uint64_t stored;
    /* where the id goes when reaped: a plain list, or a file of a directory */
    id_list *list;
    struct pdir *d;
    size_t node;
    size_t slot;
} wjob;

/* A directory being backed up. Its tree blob can be written once every
 * chunk of its files has been reaped and every subdirectory is written;
 * until then it waits (closed), so the walk never stops for it. */
typedef struct pdir {
    tree t;
    unsigned char (*slots)[32]; /* file checksums by node number (from the hasher) */
    size_t outstanding;         /* chunk jobs in flight + subdirectories not yet written */
    int closed;                 /* the walk is done with it */
    struct pdir *parent;
    size_t parent_node;
    blob_id *root_out; /* the stream's top directory: where its id goes */
    int *root_done;
    struct pdir *next_ready;
    struct pdir *prev_all, *next_all;
} pdir;

typedef struct worker {
    repo_writer *w;
    pthread_t th;
    crypto_ctx *cc;
    ZSTD_CCtx *zc;
    sm_buf zbuf;
    sm_buf sbuf;
} worker;

struct repo_writer {
    repo *r;
    repo_writer_opts o;
    chunker *ch;
    crypto_ctx *cc; /* producer's */
    int nworkers;
    worker *workers;

    /* ring of jobs: producer side */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* queued jobs available, or stopping */
    pthread_cond_t done_cv; /* a job finished */
    wjob *ring;
    size_t ring_cap, ring_head, ring_count; /* head = oldest in flight */
    size_t *queue;                          /* job numbers waiting for a worker */
    size_t q_head, q_count;
    int stopping;
    volatile int failed;

    /* the open pack */
    pthread_mutex_t pk_mu;
    pthread_cond_t pk_cv;
    sm_buf pack;
    sm_buf spare; /* the buffer of the last stored pack, for the next one */
    pack_blob *pblobs;
    size_t npblobs, cappblobs;
    int uploading;

    /* packs not yet listed in an index file */
    pthread_mutex_t meta_mu;
    uint32_t *unindexed;
    size_t nunindexed, capunindexed;
    uint64_t stored_bytes;
    unsigned packs_written;
    sm_err first_err;
    int have_first_err;

    /* the hasher: ordered SHA-256 work */
    pthread_t hasher;
    int hasher_on;
    pthread_mutex_t hmu;
    pthread_cond_t hcv;  /* ops queued, or stopping */
    pthread_cond_t hidle; /* the queue drained */
    struct hop *hq;
    size_t hq_cap, hq_head, hq_count;
    int hbusy, hstop;

    /* directories waiting to be written */
    pdir *ready;
    pdir *all;
    int finalizing;

    /* chunking buffer */
    unsigned char *cbuf;
    size_t ccap, cstart, cend;

    /* stream being pushed */
    int in_stream;
    char *stream_name;
    id_list stream_ids;
    sha256_ctx *stream_sha;
    uint64_t stream_size;
    unsigned char stream_digest[32];

    /* results */
    json_t *streams;
    uint64_t bytes_read, bytes_new;
    uint64_t files_done;
    double t_start, last_progress;
    const char *cur_stream;
    int committed;
};

/* ---- the hasher ---- */

enum { HOP_DATA = 0, HOP_FINAL, HOP_LINE };

typedef struct hop {
    int kind;
    sha256_ctx *ctx;      /* DATA, FINAL: a stream's or file's; LINE: the digest */
    wjob *job;            /* DATA */
    unsigned char *out;   /* FINAL, and DATA of a file's last chunk: receives the SHA-256 */
    sha256_ctx *dctx;     /* DATA of a file's last chunk: the tree digest its line goes to */
    char *line;           /* LINE, last DATA: owned; the file's hash goes at hash_at */
    size_t line_len, hash_at; /* hash_at == SIZE_MAX: the line is complete */
    unsigned char sha[32];    /* LINE: the file's hash, when known at once */
} hop;

#define HQ_MAX 65536

static void line_update(sha256_ctx *ctx, const hop *h, const unsigned char *sha)
{
    char hex[65];

    if (h->hash_at == SIZE_MAX) {
        sha256_update(ctx, h->line, h->line_len);
        return;
    }
    sm_hex(hex, sha, 32);
    sha256_update(ctx, h->line, h->hash_at);
    sha256_update(ctx, hex, 64);
    sha256_update(ctx, h->line + h->hash_at, h->line_len - h->hash_at);
}

static void hop_run(repo_writer *w, hop *h)
{
    switch (h->kind) {
    case HOP_DATA:
        sha256_update(h->ctx, h->job->data, h->job->len);
        if (h->out) {
            /* a file's last chunk: its checksum, then its digest line, before
             * the job counts as hashed (the directory may be written then) */
            sha256_final(h->ctx, h->out);
            sha256_free(h->ctx);
            if (h->line) {
                line_update(h->dctx, h, h->out);
                free(h->line);
            }
        }
        pthread_mutex_lock(&w->mu);
        h->job->hashed = 1;
        pthread_cond_broadcast(&w->done_cv);
        pthread_mutex_unlock(&w->mu);
        break;
    case HOP_FINAL:
        sha256_final(h->ctx, h->out);
        sha256_free(h->ctx);
        break;
    case HOP_LINE:
        line_update(h->ctx, h, h->sha);
        free(h->line);
        break;
    }
}

static void *hasher_main(void *arg)
{
    repo_writer *w = arg;

    pthread_mutex_lock(&w->hmu);
    for (;;) {
        hop h;
        while (w->hq_count == 0 && !w->hstop) {
            w->hbusy = 0;
            pthread_cond_broadcast(&w->hidle);
            pthread_cond_wait(&w->hcv, &w->hmu);
        }
        if (w->hq_count == 0)
            break;
        h = w->hq[w->hq_head];
        w->hq_head = (w->hq_head + 1) % w->hq_cap;
        w->hq_count--;
        w->hbusy = 1;
        pthread_cond_broadcast(&w->hidle); /* room in the queue */
        pthread_mutex_unlock(&w->hmu);
        hop_run(w, &h);
        pthread_mutex_lock(&w->hmu);
    }
    w->hbusy = 0;
    pthread_cond_broadcast(&w->hidle);
    pthread_mutex_unlock(&w->hmu);
    return NULL;
}

static void hop_push(repo_writer *w, const hop *h)
{
    pthread_mutex_lock(&w->hmu);
    while (w->hq_count == HQ_MAX)
        pthread_cond_wait(&w->hidle, &w->hmu);
    if (w->hq_count == w->hq_cap) {
        size_t ncap = w->hq_cap ? w->hq_cap * 2 : 256;
        hop *nq = sm_xcalloc(ncap, sizeof(*nq));
        for (size_t i = 0; i < w->hq_count; i++)
            nq[i] = w->hq[(w->hq_head + i) % w->hq_cap];
        free(w->hq);
        w->hq = nq;
        w->hq_cap = ncap;
        w->hq_head = 0;
    }
    w->hq[(w->hq_head + w->hq_count) % w->hq_cap] = *h;
    w->hq_count++;
    w->hbusy = 1;
    pthread_cond_signal(&w->hcv);
    pthread_mutex_unlock(&w->hmu);
}

/* Waits until every queued hasher operation has run. */
static void hasher_sync(repo_writer *w)
{
    pthread_mutex_lock(&w->hmu);
    while (w->hq_count > 0 || w->hbusy)
        pthread_cond_wait(&w->hidle, &w->hmu);
    pthread_mutex_unlock(&w->hmu);
}

static void hash_final(repo_writer *w, sha256_ctx *ctx, unsigned char *out)
{
    hop h;
    memset(&h, 0, sizeof(h));
    h.kind = HOP_FINAL;
    h.ctx = ctx;
    h.out = out;
    hop_push(w, &h);
}

/* ---- workers ---- */

static void record_failure(repo_writer *w, const sm_err *e)
{
    pthread_mutex_lock(&w->meta_mu);
    if (!w->have_first_err) {
        sm_err_copy(&w->first_err, e);
        w->have_first_err = 1;
    }
    pthread_mutex_unlock(&w->meta_mu);
    w->failed = 1;
}

static int flush_index_locked(repo_writer *w, crypto_ctx *cc, sm_err *err)
{
    char id[65];

    if (w->nunindexed == 0)
        return 0;
    if (repo_index_write(w->r, cc, w->unindexed, w->nunindexed, id, err) < 0)
        return -1;
    w->nunindexed = 0;
    return 0;
}

/* Seals and stores a full pack taken from the writer. */
static int upload_pack(repo_writer *w, crypto_ctx *cc, sm_buf *pack, pack_blob *blobs, size_t n,
                       sm_err *err)
{
    uint32_t pn;
    int rc = 0;

    if (pack_seal_store(w->r, cc, pack, blobs, n, 0, &pn, err) < 0)
        return -1;
    pthread_mutex_lock(&w->meta_mu);
    SM_GROW(w->unindexed, w->capunindexed, w->nunindexed + 1);
    w->unindexed[w->nunindexed++] = pn;
    w->stored_bytes += pack->len;
    w->packs_written++;
    /* long backups list their packs as they go, so a crashed run's packs
     * are reused by the next one */
    if (w->nunindexed >= REPO_INDEX_FLUSH_PACKS)
        rc = flush_index_locked(w, cc, err);
    pthread_mutex_unlock(&w->meta_mu);
    return rc;
}

static int pack_add(repo_writer *w, worker *wk, const blob_id *id, uint8_t type, uint8_t flags,
                    uint32_t raw_len, const unsigned char *sealed, size_t slen, sm_err *err)
{
    pack_blob *b;
    int rc = 0;

    if (type == BLOB_TREE && w->r->cache_dir) {
        /* the next backup walks this tree as its parent's: keep it locally
         * (sealed) so that walk costs no request to a remote store */
        char hex[65];
        blob_id_hex(id, hex);
        repo_cache_put(w->r, hex, sealed, slen);
    }
    pthread_mutex_lock(&w->pk_mu);
    /* while a pack is being stored, let the open one grow only to its limit */
    while (w->uploading && w->pack.len + slen >= w->r->pack_size)
        pthread_cond_wait(&w->pk_cv, &w->pk_mu);
    if (w->pack.cap == 0) {
        /* a buffer kept from the last stored pack, or one sized once: no
         * regrowth, no fresh pages to fault in for every pack */
        if (w->spare.cap) {
            w->pack = w->spare;
            w->spare = (sm_buf)SM_BUF_INIT;
            sm_buf_reset(&w->pack);
        } else {
            sm_buf_grow(&w->pack, (size_t)w->r->pack_size + w->ccap + 4096, NULL);
        }
    }
    SM_GROW(w->pblobs, w->cappblobs, w->npblobs + 1);
    b = &w->pblobs[w->npblobs++];
    b->id = *id;
    b->type = type;
    b->flags = flags;
    b->off = (uint32_t)w->pack.len;
    b->len = (uint32_t)slen;
    b->raw_len = raw_len;
    sm_buf_put(&w->pack, sealed, slen);
    if (w->pack.len >= w->r->pack_size) {
        sm_buf full = w->pack;
        pack_blob *blobs = w->pblobs;
        size_t n = w->npblobs;
        w->pack = (sm_buf)SM_BUF_INIT;
        w->pblobs = NULL;
        w->npblobs = w->cappblobs = 0;
        w->uploading = 1;
        pthread_mutex_unlock(&w->pk_mu);
        rc = upload_pack(w, wk->cc, &full, blobs, n, err);
        free(blobs);
        pthread_mutex_lock(&w->pk_mu);
        if (!w->spare.cap)
            w->spare = full;
        else
            sm_buf_release(&full);
        w->uploading = 0;
        pthread_cond_broadcast(&w->pk_cv);
    }
    pthread_mutex_unlock(&w->pk_mu);
    return rc;
}

/* Compressing data that does not shrink (images, video, archives: most of a
 * storage tree) costs as much as compressing text and is thrown away. Three
 * 4 KiB samples compressed at level 1 tell most of them apart for ~2 % of
 * the cost; a mixed chunk whose samples do shrink is still compressed whole. */
#define SAMPLE 4096

static int looks_incompressible(worker *wk, const unsigned char *p, size_t n)
{
    unsigned char out[ZSTD_COMPRESSBOUND(3 * SAMPLE)];
    unsigned char in[3 * SAMPLE];
    size_t z;

    if (n < 64 * 1024)
        return 0;
    memcpy(in, p, SAMPLE);
    memcpy(in + SAMPLE, p + n / 2 - SAMPLE / 2, SAMPLE);
    memcpy(in + 2 * SAMPLE, p + n - SAMPLE, SAMPLE);
    z = ZSTD_compressCCtx(wk->zc, out, sizeof(out), in, sizeof(in), 1);
    return !ZSTD_isError(z) && z > sizeof(in) * 97 / 100;
}

static int process(repo_writer *w, worker *wk, wjob *j, sm_err *err)
{
    const unsigned char *payload = j->data;
    size_t plen = j->len;
    uint8_t flags = 0;

    if (!j->have_id)
        crypto_id(wk->cc, j->data, j->len, &j->id);
    if (index_claim(w->r->idx, &j->id, j->type)) {
        j->is_new = 0;
        return 0;
    }
    j->is_new = 1;
    if (w->r->zlevel > 0 && j->len > 64 && !looks_incompressible(wk, j->data, j->len)) {
        size_t bound = ZSTD_compressBound(j->len), z;
        sm_buf_reset(&wk->zbuf);
        sm_buf_grow(&wk->zbuf, bound, NULL);
        z = ZSTD_compressCCtx(wk->zc, wk->zbuf.data, bound, j->data, j->len, w->r->zlevel);
        if (!ZSTD_isError(z) && z < j->len) { /* keep it only when it shrinks */
            payload = wk->zbuf.data;
            plen = z;
            flags |= BLOB_FLAG_ZSTD;
        }
    }
    sm_buf_reset(&wk->sbuf);
    if (crypto_seal(wk->cc, payload, plen, &wk->sbuf, err) < 0)
        return -1;
    j->stored = wk->sbuf.len;
    return pack_add(w, wk, &j->id, j->type, flags, (uint32_t)j->len, wk->sbuf.data, wk->sbuf.len,
                    err);
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    repo_writer *w = wk->w;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        size_t jn;
        wjob *j;
        sm_err e = SM_ERR_INIT;
        int rc;

        while (w->q_count == 0 && !w->stopping)
            pthread_cond_wait(&w->work_cv, &w->mu);
        if (w->q_count == 0 && w->stopping)
            break;
        jn = w->queue[w->q_head];
        w->q_head = (w->q_head + 1) % w->ring_cap;
        w->q_count--;
        j = &w->ring[jn];
        pthread_mutex_unlock(&w->mu);
        rc = w->failed ? -1 : process(w, wk, j, &e);
        pthread_mutex_lock(&w->mu);
        if (rc < 0) {
            j->failed = 1;
            if (e.code != SM_OK) {
                sm_err_copy(&j->err, &e);
                pthread_mutex_unlock(&w->mu);
                record_failure(w, &e);
                pthread_mutex_lock(&w->mu);
            }
        }
        j->state = JOB_DONE;
        pthread_cond_broadcast(&w->done_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- producer side ---- */

static void report(repo_writer *w, int force)
{
    repo_progress p;
    double now;

    if (!w->o.progress)
        return;
    now = sm_mono();
    if (!force && now - w->last_progress < 0.2)
        return;
    w->last_progress = now;
    memset(&p, 0, sizeof(p));
    p.phase = "backup";
    p.stream = w->cur_stream;
    p.bytes_done = w->bytes_read;
    p.bytes_total = w->o.bytes_total;
    p.bytes_new = w->bytes_new;
    pthread_mutex_lock(&w->meta_mu);
    p.bytes_stored = w->stored_bytes;
    pthread_mutex_unlock(&w->meta_mu);
    p.files_done = w->files_done;
    w->o.progress(w->o.progress_ud, &p);
}

static int fail_from_workers(repo_writer *w, sm_err *err)
{
    pthread_mutex_lock(&w->meta_mu);
    if (w->have_first_err)
        sm_err_copy(err, &w->first_err);
    else
        sm_err_set(err, SM_E_INTERNAL, "a backup worker failed");
    pthread_mutex_unlock(&w->meta_mu);
    return -1;
}

/* Waits for the oldest job and delivers its id (unless the session has
 * failed: then its destination may be gone and nothing is delivered). */
static int reap_one(repo_writer *w, sm_err *err)
{
    wjob *j = &w->ring[w->ring_head];
    int failed;

    pthread_mutex_lock(&w->mu);
    while (j->state != JOB_DONE || !j->hashed)
        pthread_cond_wait(&w->done_cv, &w->mu);
    failed = j->failed;
    j->state = JOB_FREE;
    w->ring_head = (w->ring_head + 1) % w->ring_cap;
    w->ring_count--;
    pthread_mutex_unlock(&w->mu);
    if (failed || w->failed)
        return fail_from_workers(w, err);
    if (j->list) {
        j->list->ids[j->slot] = j->id;
    } else if (j->d) {
        pdir *d = j->d;
        d->t.nodes[j->node].content[j->slot] = j->id;
        if (--d->outstanding == 0 && d->closed) {
            d->next_ready = w->ready;
            w->ready = d;
        }
    }
    if (j->is_new && j->type == BLOB_DATA)
        w->bytes_new += j->len;
    return 0;
}

/* After an error: waits for every job in flight and delivers nothing, so
 * that the caller may free the lists and trees the jobs point into. */
static void abandon(repo_writer *w)
{
    w->failed = 1;
    while (w->ring_count > 0)
        reap_one(w, NULL);
    hasher_sync(w);
}

static int drain(repo_writer *w, sm_err *err)
{
    int rc = 0;
    while (w->ring_count > 0)
        if (reap_one(w, rc == 0 ? err : NULL) < 0)
            rc = -1;
    return rc;
}

/* Returns a free job, reaping the oldest when the ring is full. */
static wjob *next_job(repo_writer *w, sm_err *err)
{
    wjob *j;

    if (w->ring_count == w->ring_cap && reap_one(w, err) < 0)
        return NULL;
    j = &w->ring[(w->ring_head + w->ring_count) % w->ring_cap];
    j->have_id = 0;
    j->hashed = 1;
    j->failed = 0;
    j->is_new = 0;
    j->stored = 0;
    j->list = NULL;
    j->d = NULL;
    sm_err_clear(&j->err);
    return j;
}

static void submit(repo_writer *w, wjob *j)
{
    size_t jn = (size_t)(j - w->ring);

    pthread_mutex_lock(&w->mu);
    j->state = JOB_QUEUED;
    w->ring_count++;
    w->queue[(w->q_head + w->q_count) % w->ring_cap] = jn;
    w->q_count++;
    pthread_cond_signal(&w->work_cv);
    pthread_mutex_unlock(&w->mu);
}

static void job_set_data(wjob *j, const unsigned char *p, size_t n)
{
    if (j->cap < n) {
        free(j->data);
        j->data = sm_xmalloc(n);
        j->cap = n;
    }
    memcpy(j->data, p, n);
    j->len = n;
}

static int check_cancel(repo_writer *w, sm_err *err)
{
    if (w->o.cancel && *w->o.cancel)
        return sm_err_set(err, SM_E_INTERRUPTED, "backup interrupted");
    if (w->failed)
        return fail_from_workers(w, err);
    return 0;
}

/* What the hasher does after a file's last chunk: the file's checksum goes
 * to slot, then its digest line (hash at hash_at) to the tree digest. */
typedef struct file_tail {
    unsigned char *slot;
    sha256_ctx *digest;
    const char *rel;
    size_t node;
} file_tail;

/* Emits one data chunk whose id goes to list[slot] or to node `node` of d;
 * the hasher adds it to sha (and, with tail, finishes the file). */
static int emit_chunk(repo_writer *w, const unsigned char *p, size_t n, sha256_ctx *sha,
                      id_list *list, pdir *d, size_t node, const file_tail *tail, sm_err *err)
{
    hop h;
    wjob *j;

    if (check_cancel(w, err) < 0)
        return -1;
    j = next_job(w, err);
    if (!j)
        return -1;
    job_set_data(j, p, n);
    j->type = BLOB_DATA;
    if (list) {
        SM_GROW(list->ids, list->cap, list->n + 1);
        j->list = list;
        j->slot = list->n++;
    } else {
        tree_node *tn = &d->t.nodes[node];
        SM_GROW(tn->content, tn->capcontent, tn->ncontent + 1);
        j->d = d;
        j->node = node;
        j->slot = tn->ncontent++;
        d->outstanding++;
    }
    j->hashed = 0;
    submit(w, j);
    memset(&h, 0, sizeof(h));
    h.kind = HOP_DATA;
    h.ctx = sha;
    h.job = j;
    if (tail) {
        sm_buf line = SM_BUF_INIT;
        h.out = tail->slot;
        h.dctx = tail->digest;
        h.hash_at = tree_digest_line_split(&line, tail->rel, &d->t.nodes[tail->node]);
        h.line = sm_buf_detach(&line, &h.line_len);
    }
    hop_push(w, &h);
    w->bytes_read += n;
    report(w, 0);
    return 0;
}

/* Stores a tree blob; its id is computed here because the parent needs it now. */
static int emit_tree(repo_writer *w, const tree *t, blob_id *id, sm_err *err)
{
    sm_buf enc = SM_BUF_INIT;
    wjob *j;
    int rc = -1;

    if (tree_encode(t, &enc, err) < 0)
        goto out;
    crypto_id(w->cc, enc.data, enc.len, id);
    j = next_job(w, err);
    if (!j)
        goto out;
    job_set_data(j, enc.data, enc.len);
    j->type = BLOB_TREE;
    j->id = *id;
    j->have_id = 1;
    submit(w, j);
    rc = 0;
out:
    sm_buf_release(&enc);
    return rc;
}

/* Cuts every complete chunk in the buffer (all of it when at_eof). At the
 * end of a file, tail goes with its last chunk; *tail_used says whether there
 * was one (an empty file has none). */
static int cut_chunks(repo_writer *w, int at_eof, sha256_ctx *sha, id_list *list, pdir *d,
                      size_t node, const file_tail *tail, int *tail_used, sm_err *err)
{
    const chunker_params *cp = chunker_get_params(w->ch);

    /* before the end, cut only while more than max bytes wait: the last chunk
     * of an input is then always cut at the end, where the tail goes */
    while (w->cend > w->cstart && (at_eof || w->cend - w->cstart > cp->max)) {
        size_t n = chunker_cut(w->ch, w->cbuf + w->cstart, w->cend - w->cstart);
        const file_tail *t = at_eof && w->cstart + n == w->cend ? tail : NULL;
        if (emit_chunk(w, w->cbuf + w->cstart, n, sha, list, d, node, t, err) < 0)
            return -1;
        if (t && tail_used)
            *tail_used = 1;
        w->cstart += n;
    }
    if (w->cstart == w->cend)
        w->cstart = w->cend = 0;
    return 0;
}

/* Makes room at the end of the chunk buffer for more input. */
static void compact(repo_writer *w)
{
    if (w->cstart > 0 && w->ccap - w->cend < w->ccap / 4) {
        memmove(w->cbuf, w->cbuf + w->cstart, w->cend - w->cstart);
        w->cend -= w->cstart;
        w->cstart = 0;
    }
}

/* Reads fd to EOF through the chunker. *size gets the byte count. For a
 * file of a directory (d), its size is set before the last chunk and tail
 * goes with that chunk (*tail_used). */
static int chunk_fd(repo_writer *w, int fd, const char *what, sha256_ctx *sha, id_list *list,
                    pdir *d, size_t node, const file_tail *tail, int *tail_used, uint64_t *size,
                    sm_err *err)
{
    uint64_t total = 0;
    struct stat sb;

    /* a bigger pipe buffer means fewer wake-ups between the writer of a pipe
     * (pg_dump, cat) and us: measured 2.1 s -> see docs/DESIGN-NOTES.md */
    if (fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode))
        fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    w->cstart = w->cend = 0;
    for (;;) {
        ssize_t r;
        compact(w);
        r = read(fd, w->cbuf + w->cend, w->ccap - w->cend);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sm_err_sys(err, SM_E_IO, "cannot read '%s'", what);
        }
        if (r == 0)
            break;
        w->cend += (size_t)r;
        total += (uint64_t)r;
        if (cut_chunks(w, 0, sha, list, d, node, NULL, NULL, err) < 0)
            return -1;
    }
    if (d)
        d->t.nodes[node].size = total; /* what was read, even if the file grew meanwhile */
    if (cut_chunks(w, 1, sha, list, d, node, tail, tail_used, err) < 0)
        return -1;
    *size = total;
    return 0;
}

static int stream_name_ok(repo_writer *w, const char *name, sm_err *err)
{
    size_t i;
    json_t *st;

    if (!name || !*name || strlen(name) > 64)
        return sm_err_set(err, SM_E_USAGE, "invalid stream name '%s'", name ? name : "");
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return sm_err_set(err, SM_E_USAGE,
                              "invalid stream name '%s': use letters, digits, '-', '_' and '.'",
                              name);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return sm_err_set(err, SM_E_USAGE, "invalid stream name '%s'", name);
    json_array_foreach(w->streams, i, st)
    {
        if (!strcmp(json_string_value(json_object_get(st, "name")), name))
            return sm_err_set(err, SM_E_USAGE, "stream '%s' is given twice", name);
    }
    return 0;
}

static json_t *ids_json(const blob_id *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        blob_id_hex(&ids[i], hex);
        json_array_append_new(a, json_string(hex));
    }
    return a;
}

static int add_file_stream(repo_writer *w, const char *name, uint64_t size,
                           const unsigned char sha[32], const id_list *ids, double t0)
{
    char hex[65];
    sm_hex(hex, sha, 32);
    json_array_append_new(w->streams,
                          json_pack("{s:s,s:s,s:I,s:s,s:o,s:f}", "name", name, "kind", "file",
                                    "size", (json_int_t)size, "sha256", hex, "content",
                                    ids_json(ids->ids, ids->n), "duration_s", sm_mono() - t0));
    return 0;
}

int repo_writer_add_fd(repo_writer *w, const char *name, int fd, sm_err *err)
{
    id_list ids = {0};
    sha256_ctx *sha = sha256_new();
    unsigned char d[32];
    uint64_t size = 0;
    double t0 = sm_mono();
    int rc = -1;

    if (w->committed || w->in_stream) {
        sm_err_set(err, SM_E_INTERNAL, "writer is not accepting streams");
        goto out;
    }
    if (stream_name_ok(w, name, err) < 0)
        goto out;
    w->cur_stream = name;
    if (chunk_fd(w, fd, name, sha, &ids, NULL, 0, NULL, NULL, &size, err) < 0)
        goto out;
    if (drain(w, err) < 0)
        goto out;
    hash_final(w, sha, d); /* the hasher owns sha now */
    sha = NULL;
    hasher_sync(w);
    add_file_stream(w, name, size, d, &ids, t0);
    report(w, 1);
    rc = 0;
out:
    if (rc < 0)
        abandon(w);
    free(ids.ids);
    sha256_free(sha);
    return rc;
}

/* The identity of a file as the next backup compares it: where it is and
 * what stat says (restic's rule: size, mtime, ctime and inode). */
static json_t *file_source_json(const char *path, const struct stat *sb)
{
    return json_pack("{s:s,s:I,s:I,s:I,s:I}", "path", path, "size", (json_int_t)sb->st_size,
                     "mtime_ns",
                     (json_int_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec,
                     "ctime_ns",
                     (json_int_t)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec, "inode",
                     (json_int_t)sb->st_ino);
}

/* The parent's stream of that name when it is the same, unchanged file
 * whose every blob is still in the index; NULL otherwise. */
static json_t *unchanged_file_stream(repo_writer *w, const snapshot *parent, const char *name,
                                     const json_t *source)
{
    json_t *ps = parent ? snapshot_stream(parent, name) : NULL;
    const char *kind = ps ? json_string_value(json_object_get(ps, "kind")) : NULL;
    json_t *content = ps ? json_object_get(ps, "content") : NULL;
    size_t i;
    json_t *v;

    if (!kind || strcmp(kind, "file") || !json_is_array(content) ||
        !json_equal(json_object_get(ps, "source"), (json_t *)source) ||
        !json_is_string(json_object_get(ps, "sha256")))
        return NULL;
    json_array_foreach(content, i, v)
    {
        blob_id id;
        index_entry e;
        if (!json_is_string(v) || blob_id_parse(&id, json_string_value(v)) < 0 ||
            index_get(w->r->idx, &id, &e) != 0 || e.pack == INDEX_PENDING)
            return NULL;
    }
    return ps;
}

int repo_writer_add_file(repo_writer *w, const char *name, const char *path,
                         const snapshot *parent, sm_err *err)
{
    struct stat sb;
    char *abs = NULL;
    json_t *source, *ps;
    int fd, rc = -1;
    double t0 = sm_mono();

    if (w->committed || w->in_stream)
        return sm_err_set(err, SM_E_INTERNAL, "writer is not accepting streams");
    if (stream_name_ok(w, name, err) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sm_err_sys(err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO, "cannot open '%s'",
                          path);
    if (fstat(fd, &sb) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
        goto out;
    }
    if (!S_ISREG(sb.st_mode) || !(abs = realpath(path, NULL))) {
        /* a pipe or a device has no identity to compare: read it all */
        rc = repo_writer_add_fd(w, name, fd, err);
        goto out;
    }
    source = file_source_json(abs, &sb);
    ps = unchanged_file_stream(w, parent, name, source);
    if (ps) {
        json_t *st = json_pack("{s:s,s:s,s:O,s:O,s:O,s:o,s:b,s:I,s:f}", "name", name, "kind",
                               "file", "size", json_object_get(ps, "size"), "sha256",
                               json_object_get(ps, "sha256"), "content",
                               json_object_get(ps, "content"), "source", source, "unchanged", 1,
                               "bytes_read", (json_int_t)0, "duration_s", sm_mono() - t0);
        json_array_append_new(w->streams, st);
        w->bytes_read += (uint64_t)sb.st_size;
        report(w, 1);
        rc = 0;
        goto out;
    }
    if (repo_writer_add_fd(w, name, fd, err) < 0) {
        json_decref(source);
        goto out;
    }
    {
        json_t *st = json_array_get(w->streams, json_array_size(w->streams) - 1);
        json_object_set_new(st, "source", source);
        json_object_set(st, "bytes_read", json_object_get(st, "size"));
    }
    rc = 0;
out:
    free(abs);
    close(fd);
    return rc;
}

int repo_writer_stream_begin(repo_writer *w, const char *name, sm_err *err)
{
    if (w->committed || w->in_stream)
        return sm_err_set(err, SM_E_INTERNAL, "writer is not accepting streams");
    if (stream_name_ok(w, name, err) < 0)
        return -1;
    w->in_stream = 1;
    w->stream_name = sm_xstrdup(name);
    w->cur_stream = w->stream_name;
    memset(&w->stream_ids, 0, sizeof(w->stream_ids));
    w->stream_sha = sha256_new();
    w->stream_size = 0;
    w->cstart = w->cend = 0;
    w->t_start = sm_mono();
    return 0;
}

int repo_writer_stream_write(repo_writer *w, const void *p, size_t n, sm_err *err)
{
    const unsigned char *c = p;

    if (!w->in_stream)
        return sm_err_set(err, SM_E_INTERNAL, "no stream is open");
    while (n > 0) {
        size_t room;
        compact(w);
        room = w->ccap - w->cend;
        if (room > n)
            room = n;
        memcpy(w->cbuf + w->cend, c, room);
        w->cend += room;
        c += room;
        n -= room;
        w->stream_size += room;
        if (cut_chunks(w, 0, w->stream_sha, &w->stream_ids, NULL, 0, NULL, NULL, err) < 0) {
            abandon(w);
            return -1;
        }
    }
    return 0;
}

int repo_writer_stream_end(repo_writer *w, sm_err *err)
{
    unsigned char d[32];
    int rc = -1;

    if (!w->in_stream)
        return sm_err_set(err, SM_E_INTERNAL, "no stream is open");
    if (cut_chunks(w, 1, w->stream_sha, &w->stream_ids, NULL, 0, NULL, NULL, err) < 0 ||
        drain(w, err) < 0)
        goto out;
    hash_final(w, w->stream_sha, w->stream_digest);
    w->stream_sha = NULL;
    hasher_sync(w);
    memcpy(d, w->stream_digest, 32);
    add_file_stream(w, w->stream_name, w->stream_size, d, &w->stream_ids, w->t_start);
    report(w, 1);
    rc = 0;
out:
    if (rc < 0)
        abandon(w);
    w->in_stream = 0;
    free(w->stream_name);
    w->stream_name = NULL;
    free(w->stream_ids.ids);
    memset(&w->stream_ids, 0, sizeof(w->stream_ids));
    sha256_free(w->stream_sha);
    w->stream_sha = NULL;
    return rc;
}

/* ---- trees ---- */

/* The prefetcher: a second walk of the same tree, in the same order, that
 * stays up to PREFETCH_AHEAD bytes of file data ahead of the backup and asks
 * the kernel to start reading those files (and, on the way, reads the
 * directories and inodes). On a cold cache the backup then finds its data in
 * memory instead of waiting for the disk one small file at a time. */
#define PREFETCH_AHEAD (64u << 20)

typedef struct prefetcher {
    pthread_t th;
    int on;
    char *root;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t ahead;    /* bytes announced */
    uint64_t consumed; /* bytes the backup has reached */
    int stop;
    int data; /* 0: directories and inodes only (an incremental backup reads few files) */
} prefetcher;

static int pf_wait(prefetcher *pf, uint64_t size)
{
    int stop;
    pthread_mutex_lock(&pf->mu);
    while (!pf->stop && pf->ahead > pf->consumed + PREFETCH_AHEAD)
        pthread_cond_wait(&pf->cv, &pf->mu);
    pf->ahead += size;
    stop = pf->stop;
    pthread_mutex_unlock(&pf->mu);
    return stop;
}

static int pf_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int pf_walk(prefetcher *pf, int dfd)
{
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int stop = 0;

    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        SM_GROW(names, cap, n + 1);
        names[n++] = sm_xstrdup(de->d_name);
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), pf_cmp);
    for (size_t i = 0; i < n && !stop; i++) {
        struct stat sb;
        if (fstatat(dirfd(d), names[i], &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISREG(sb.st_mode) && sb.st_size > 0 && pf->data) {
            int fd;
            stop = pf_wait(pf, (uint64_t)sb.st_size);
            fd = stop ? -1 : openat(dirfd(d), names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
            if (fd >= 0) {
                posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
                close(fd);
            }
        } else if (S_ISDIR(sb.st_mode)) {
            int cfd = openat(dirfd(d), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd >= 0)
                stop = pf_walk(pf, cfd);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return stop;
}

static void *pf_main(void *arg)
{
    prefetcher *pf = arg;
    int fd = open(pf->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        pf_walk(pf, fd);
    return NULL;
}

static void pf_start(prefetcher *pf, const char *root, int data)
{
    memset(pf, 0, sizeof(*pf));
    pf->data = data;
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    pf->root = sm_xstrdup(root);
    pf->on = pthread_create(&pf->th, NULL, pf_main, pf) == 0;
}

static void pf_consumed(prefetcher *pf, uint64_t size)
{
    if (!pf || !pf->on)
        return;
    pthread_mutex_lock(&pf->mu);
    pf->consumed += size;
    pthread_cond_signal(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

static void pf_stop(prefetcher *pf)
{
    if (pf->on) {
        pthread_mutex_lock(&pf->mu);
        pf->stop = 1;
        pthread_cond_signal(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        pthread_join(pf->th, NULL);
        pf->on = 0;
    }
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
    free(pf->root);
    pf->root = NULL;
}

typedef struct tree_ctx {
    repo_writer *w;
    prefetcher *pf;
    blob_reader br; /* for the parent's trees */
    int have_br;
    sha256_ctx *digest; /* the tree digest, updated by the hasher */
    sm_buf path;        /* relative path of the current directory */
    uint64_t size, files, dirs, symlinks, special, reused, bytes_read;
} tree_ctx;

static int read_xattrs(tree_node *n, int fd, const char *what, sm_err *err)
{
    char list[XATTR_MAX_LIST];
    ssize_t len = flistxattr(fd, list, sizeof(list));
    unsigned char *val = NULL;
    int rc = -1;

    if (len < 0) {
        if (errno == ENOTSUP || errno == EOPNOTSUPP)
            return 0;
        return sm_err_sys(err, SM_E_IO, "cannot list the extended attributes of '%s'", what);
    }
    val = sm_xmalloc(XATTR_MAX_VALUE);
    for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
        const char *name = list + off;
        ssize_t vl = fgetxattr(fd, name, val, XATTR_MAX_VALUE);
        if (vl < 0) {
            if (errno == ENODATA)
                continue; /* removed meanwhile */
            sm_err_sys(err, SM_E_IO, "cannot read extended attribute '%s' of '%s'", name, what);
            goto out;
        }
        tree_node_add_xattr(n, name, val, (size_t)vl);
    }
    if (n->nxattrs > 1) {
        /* sorted, as tree_decode expects and the digest needs */
        for (size_t i = 1; i < n->nxattrs; i++)
            for (size_t k = i; k > 0 && strcmp(n->xattrs[k - 1].name, n->xattrs[k].name) > 0;
                 k--) {
                tree_xattr tmp = n->xattrs[k];
                n->xattrs[k] = n->xattrs[k - 1];
                n->xattrs[k - 1] = tmp;
            }
    }
    rc = 0;
out:
    free(val);
    return rc;
}

static void fill_stat(tree_node *n, const struct stat *sb)
{
    n->mode = (uint32_t)(sb->st_mode & 07777);
    n->uid = sb->st_uid;
    n->gid = sb->st_gid;
    n->mtime_s = sb->st_mtim.tv_sec;
    n->mtime_ns = (int32_t)sb->st_mtim.tv_nsec;
    n->ctime_s = sb->st_ctim.tv_sec;
    n->ctime_ns = (int32_t)sb->st_ctim.tv_nsec;
    n->inode = sb->st_ino;
    n->dev = sb->st_dev;
    n->nlink = sb->st_nlink;
    n->rdev = sb->st_rdev;
    n->size = S_ISREG(sb->st_mode) ? (uint64_t)sb->st_size : 0;
}

static char *rel_join(const sm_buf *dir, const char *name)
{
    if (dir->len == 0)
        return sm_xstrdup(name);
    return sm_xasprintf("%s/%s", sm_buf_str(dir), name);
}

static int names_of(int dfd, const char *what, char ***out, size_t *n, sm_err *err)
{
    int fd2 = dup(dfd);
    DIR *d;
    struct dirent *de;
    char **v = NULL;
    size_t cnt = 0, cap = 0;

    if (fd2 < 0)
        return sm_err_sys(err, SM_E_IO, "cannot read directory '%s'", what);
    d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return sm_err_sys(err, SM_E_IO, "cannot read directory '%s'", what);
    }
    rewinddir(d);
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        SM_GROW(v, cap, cnt + 1);
        v[cnt++] = sm_xstrdup(de->d_name);
    }
    if (errno != 0) {
        int saved = errno;
        closedir(d);
        for (size_t i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        errno = saved;
        return sm_err_sys(err, SM_E_IO, "cannot read directory '%s'", what);
    }
    closedir(d);
    *out = v;
    *n = cnt;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- directories waiting to be written ---- */

static pdir *pdir_new(repo_writer *w, size_t nnames, pdir *parent, size_t parent_node)
{
    pdir *d = sm_xcalloc(1, sizeof(*d));

    d->slots = sm_xcalloc(nnames ? nnames : 1, 32);
    d->parent = parent;
    d->parent_node = parent_node;
    if (parent)
        parent->outstanding++; /* the parent waits for this directory's id */
    d->next_all = w->all;
    if (w->all)
        w->all->prev_all = d;
    w->all = d;
    return d;
}

static void pdir_free(repo_writer *w, pdir *d)
{
    if (d->prev_all)
        d->prev_all->next_all = d->next_all;
    else
        w->all = d->next_all;
    if (d->next_all)
        d->next_all->prev_all = d->prev_all;
    tree_release(&d->t);
    free(d->slots);
    free(d);
}

static void pdir_free_all(repo_writer *w)
{
    while (w->all)
        pdir_free(w, w->all);
    w->ready = NULL;
}

/* Closes a directory the walk is done with. */
static void pdir_close(repo_writer *w, pdir *d)
{
    d->closed = 1;
    if (d->outstanding == 0) {
        d->next_ready = w->ready;
        w->ready = d;
    }
}

/* Writes the tree blobs of every directory that is complete; writing one
 * may complete its parent. Writing a tree may reap jobs, which may complete
 * more directories: the loop takes them too. */
static int process_ready(repo_writer *w, sm_err *err)
{
    if (w->finalizing)
        return 0;
    w->finalizing = 1;
    while (w->ready) {
        pdir *d = w->ready;
        blob_id id;
        w->ready = d->next_ready;
        for (size_t i = 0; i < d->t.n; i++)
            if (d->t.nodes[i].type == NODE_FILE)
                memcpy(d->t.nodes[i].sha256, d->slots[i], 32);
        if (emit_tree(w, &d->t, &id, err) < 0) {
            w->finalizing = 0;
            return -1;
        }
        if (d->parent) {
            pdir *p = d->parent;
            p->t.nodes[d->parent_node].subtree = id;
            p->t.nodes[d->parent_node].has_subtree = 1;
            if (--p->outstanding == 0 && p->closed) {
                p->next_ready = w->ready;
                w->ready = p;
            }
        } else {
            *d->root_out = id;
            *d->root_done = 1;
        }
        pdir_free(w, d);
    }
    w->finalizing = 0;
    return 0;
}

static int walk_dir(tree_ctx *tc, int dfd, const char *abs, const tree *parent, pdir *up,
                    size_t up_node, blob_id *root_out, int *root_done, sm_err *err);

/* Queues the digest line of an entry whose hash is known now. */
static void digest_add(tree_ctx *tc, const char *rel, const tree_node *n, const unsigned char *sha)
{
    sm_buf line = SM_BUF_INIT;
    hop h;

    memset(&h, 0, sizeof(h));
    h.kind = HOP_LINE;
    h.ctx = tc->digest;
    h.hash_at = tree_digest_line_split(&line, rel, n);
    if (sha)
        memcpy(h.sha, sha, 32);
    h.line = sm_buf_detach(&line, &h.line_len);
    hop_push(tc->w, &h);
}

/* Backs up one regular file into node i of d. Its checksum reaches
 * d->slots[i] and its digest line the tree digest through the hasher. */
static int do_file(tree_ctx *tc, int dfd, const char *name, const char *abs, pdir *d, size_t i,
                   const char *rel, const tree_node *prev, sm_err *err)
{
    repo_writer *w = tc->w;
    tree_node *n = &d->t.nodes[i];
    struct stat sb;
    int fd, rc = -1, tail_used = 0;
    uint64_t size = 0;
    sha256_ctx *sha = NULL;
    char *fpath = sm_path_join(abs, name);
    file_tail tail;

    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        sm_err_sys(err, SM_E_IO, "cannot open '%s'", fpath);
        goto out;
    }
    if (fstat(fd, &sb) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot stat '%s'", fpath);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        sm_err_set(err, SM_E_IO, "'%s' changed type during the backup", fpath);
        goto out;
    }
    fill_stat(n, &sb);
    if (read_xattrs(n, fd, fpath, err) < 0)
        goto out;
    n->has_sha = 1;
    if (prev && prev->type == NODE_FILE && prev->has_sha && prev->size == n->size &&
        prev->mtime_s == n->mtime_s && prev->mtime_ns == n->mtime_ns &&
        prev->ctime_s == n->ctime_s && prev->ctime_ns == n->ctime_ns &&
        prev->inode == n->inode) {
        /* unchanged since the parent snapshot: reuse its content, read nothing */
        memcpy(d->slots[i], prev->sha256, 32);
        for (size_t k = 0; k < prev->ncontent; k++)
            tree_node_add_content(n, &prev->content[k]);
        tc->reused++;
        w->bytes_read += n->size;
        digest_add(tc, rel, n, d->slots[i]);
        report(w, 0);
    } else {
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        sha = sha256_new();
        tail.slot = d->slots[i];
        tail.digest = tc->digest;
        tail.rel = rel;
        tail.node = i;
        if (chunk_fd(w, fd, fpath, sha, NULL, d, i, &tail, &tail_used, &size, err) < 0)
            goto out;
        n = &d->t.nodes[i];
        if (tail_used) {
            sha = NULL; /* the hasher finishes and frees it */
        } else {
            /* an empty file: no chunk carried the tail */
            sha256_final(sha, d->slots[i]);
            sha256_free(sha);
            sha = NULL;
            digest_add(tc, rel, n, d->slots[i]);
        }
        tc->bytes_read += size;
    }
    tc->size += n->size;
    tc->files++;
    w->files_done++;
    pf_consumed(tc->pf, n->size);
    rc = 0;
out:
    if (sha) {
        abandon(w); /* the hasher may still hold updates for sha */
        sha256_free(sha);
    }
    if (fd >= 0)
        close(fd);
    free(fpath);
    return rc;
}

static int walk_dir(tree_ctx *tc, int dfd, const char *abs, const tree *parent, pdir *up,
                    size_t up_node, blob_id *root_out, int *root_done, sm_err *err)
{
    repo_writer *w = tc->w;
    char **names = NULL;
    size_t nnames = 0;
    size_t saved_len = tc->path.len;
    pdir *d;
    int rc = -1;

    if (names_of(dfd, abs, &names, &nnames, err) < 0)
        return -1;
    if (nnames > 1)
        qsort(names, nnames, sizeof(*names), cmp_names);
    d = pdir_new(w, nnames, up, up_node);
    d->root_out = root_out;
    d->root_done = root_done;
    for (size_t k = 0; k < nnames; k++) {
        const char *name = names[k];
        const tree_node *prev = parent ? tree_find(parent, name) : NULL;
        struct stat sb;
        tree_node *n;
        size_t i;
        char *rel;

        if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) {
                sm_log(SM_LOG_WARN, "'%s/%s' vanished during the backup", abs, name);
                continue;
            }
            sm_err_sys(err, SM_E_IO, "cannot stat '%s/%s'", abs, name);
            goto out;
        }
        n = tree_add(&d->t);
        i = d->t.n - 1;
        n->name = sm_xstrdup(name);
        if (node_type_from_mode(sb.st_mode, &n->type) < 0) {
            sm_err_set(err, SM_E_IO, "'%s/%s' has an unknown file type", abs, name);
            goto out;
        }
        fill_stat(n, &sb);
        rel = rel_join(&tc->path, name);
        if (n->type == NODE_FILE) {
            int r2 = do_file(tc, dfd, name, abs, d, i, rel, prev, err);
            free(rel);
            if (r2 < 0)
                goto out;
        } else if (n->type == NODE_SYMLINK) {
            char target[4097];
            ssize_t len = readlinkat(dfd, name, target, sizeof(target) - 1);
            if (len < 0) {
                sm_err_sys(err, SM_E_IO, "cannot read link '%s/%s'", abs, name);
                free(rel);
                goto out;
            }
            target[len] = '\0';
            n->target = sm_xstrdup(target);
            tc->symlinks++;
            digest_add(tc, rel, n, NULL);
            free(rel);
        } else if (n->type == NODE_DIR) {
            int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            char *cabs = sm_path_join(abs, name);
            const tree_node *pn = prev && prev->type == NODE_DIR && prev->has_subtree ? prev : NULL;
            tree ptree = TREE_INIT;
            int r2;
            if (cfd < 0) {
                sm_err_sys(err, SM_E_IO, "cannot open directory '%s'", cabs);
                free(cabs);
                free(rel);
                goto out;
            }
            if (fstat(cfd, &sb) == 0)
                fill_stat(n, &sb);
            r2 = read_xattrs(n, cfd, cabs, err);
            if (r2 == 0)
                digest_add(tc, rel, n, NULL);
            free(rel);
            if (r2 == 0 && pn && tc->have_br) {
                sm_err pe = SM_ERR_INIT;
                if (tree_load(&tc->br, &pn->subtree, &ptree, &pe) < 0) {
                    sm_log(SM_LOG_WARN, "cannot read the parent's tree for '%s', reading all: %s",
                           cabs, pe.msg);
                    pn = NULL;
                }
            }
            if (r2 == 0) {
                if (tc->path.len)
                    sm_buf_putc(&tc->path, '/');
                sm_buf_puts(&tc->path, name);
                r2 = walk_dir(tc, cfd, cabs, pn ? &ptree : NULL, d, i, NULL, NULL, err);
                tc->path.len = saved_len;
                tc->path.data[saved_len] = '\0';
            }
            tree_release(&ptree);
            close(cfd);
            free(cabs);
            if (r2 < 0)
                goto out;
            tc->dirs++;
            if (process_ready(w, err) < 0)
                goto out;
        } else {
            tc->special++;
            digest_add(tc, rel, n, NULL);
            free(rel);
        }
    }
    pdir_close(w, d);
    if (process_ready(w, err) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        abandon(w); /* jobs and hasher work in flight point into the directories */
    for (size_t k = 0; k < nnames; k++)
        free(names[k]);
    free(names);
    return rc;
}

int repo_writer_add_tree(repo_writer *w, const char *name, const char *path,
                         const snapshot *parent, sm_err *err)
{
    tree_ctx tc;
    tree_node root;
    tree ptree = TREE_INIT;
    const tree *pt = NULL;
    struct stat sb;
    unsigned char d[32];
    char hex[65];
    int dfd = -1, rc = -1, rc2, root_done = 0;
    double t0 = sm_mono();
    json_t *rj;
    prefetcher pf;

    memset(&tc, 0, sizeof(tc));
    memset(&root, 0, sizeof(root));
    if (w->committed || w->in_stream)
        return sm_err_set(err, SM_E_INTERNAL, "writer is not accepting streams");
    if (stream_name_ok(w, name, err) < 0)
        return -1;
    dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT)
            return sm_err_sys(err, SM_E_NOTFOUND, "cannot open directory '%s'", path);
        return sm_err_sys(err, SM_E_IO, "cannot open directory '%s'", path);
    }
    tc.w = w;
    tc.digest = sha256_new();
    w->cur_stream = name;
    if (fstat(dfd, &sb) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot stat '%s'", path);
        goto out;
    }
    root.name = sm_xstrdup(name);
    root.type = NODE_DIR;
    fill_stat(&root, &sb);
    if (read_xattrs(&root, dfd, path, err) < 0)
        goto out;
    digest_add(&tc, ".", &root, NULL);
    if (parent) {
        json_t *ps = snapshot_stream(parent, name);
        json_t *pr = ps ? json_object_get(ps, "root") : NULL;
        tree_node pnode;
        memset(&pnode, 0, sizeof(pnode));
        if (pr && tree_node_from_json(&pnode, pr, "root", NULL) == 0 && pnode.type == NODE_DIR) {
            sm_err pe = SM_ERR_INIT;
            blob_reader_init(&tc.br, w->r);
            tc.have_br = 1;
            if (tree_load(&tc.br, &pnode.subtree, &ptree, &pe) == 0)
                pt = &ptree;
            else
                sm_log(SM_LOG_WARN, "cannot read the parent snapshot's tree, reading all: %s",
                       pe.msg);
        }
        tree_node_release(&pnode);
    }
    pf_start(&pf, path, pt == NULL);
    tc.pf = &pf;
    rc2 = walk_dir(&tc, dfd, path, pt, NULL, 0, &root.subtree, &root_done, err);
    pf_stop(&pf);
    tc.pf = NULL;
    if (rc2 < 0)
        goto out;
    /* the last directories wait for their last chunks */
    if (drain(w, err) < 0 || process_ready(w, err) < 0)
        goto out;
    if (!root_done) {
        sm_err_set(err, SM_E_INTERNAL, "the top directory of '%s' was not written", path);
        goto out;
    }
    root.has_subtree = 1;
    hash_final(w, tc.digest, d);
    tc.digest = NULL;
    hasher_sync(w);
    sm_hex(hex, d, 32);
    rj = tree_node_to_json(&root);
    json_array_append_new(
        w->streams,
        json_pack("{s:s,s:s,s:I,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "name", name, "kind",
                  "tree", "size", (json_int_t)tc.size, "sha256", hex, "root", rj, "files",
                  (json_int_t)tc.files, "dirs", (json_int_t)tc.dirs, "symlinks",
                  (json_int_t)tc.symlinks, "special", (json_int_t)tc.special, "files_unchanged",
                  (json_int_t)tc.reused, "bytes_read", (json_int_t)tc.bytes_read, "duration_s",
                  sm_mono() - t0));
    report(w, 1);
    rc = 0;
out:
    if (rc < 0) {
        abandon(w);
        pdir_free_all(w);
    }
    tree_release(&ptree);
    tree_node_release(&root);
    if (tc.have_br)
        blob_reader_release(&tc.br);
    if (tc.digest)
        sha256_free(tc.digest);
    sm_buf_release(&tc.path);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* ---- session ---- */

int repo_writer_new(repo_writer **out, repo *r, const repo_writer_opts *o, sm_err *err)
{
    repo_writer *w;
    const chunker_params *cp;

    if (!r->lock_key || !r->lock_exclusive)
        return sm_err_set(err, SM_E_INTERNAL, "a backup needs the repository's exclusive lock");
    if (repo_index_ensure(r, err) < 0)
        return -1;
    w = sm_xcalloc(1, sizeof(*w));
    w->r = r;
    if (o)
        w->o = *o;
    w->ch = chunker_new(&r->cp, r->keys.chunker);
    cp = chunker_get_params(w->ch);
    w->ccap = (size_t)cp->max * 4; /* refills move at most a quarter of it */
    w->cbuf = sm_xmalloc(w->ccap);
    w->cc = crypto_ctx_new(&r->keys);
    w->streams = json_array();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    pthread_mutex_init(&w->pk_mu, NULL);
    pthread_cond_init(&w->pk_cv, NULL);
    pthread_mutex_init(&w->meta_mu, NULL);
    pthread_mutex_init(&w->hmu, NULL);
    pthread_cond_init(&w->hcv, NULL);
    pthread_cond_init(&w->hidle, NULL);
    w->nworkers = repo_threads(w->o.threads);
    w->ring_cap = (size_t)w->nworkers * 2 + 2;
    w->ring = sm_xcalloc(w->ring_cap, sizeof(*w->ring));
    w->queue = sm_xcalloc(w->ring_cap, sizeof(*w->queue));
    w->workers = sm_xcalloc((size_t)w->nworkers, sizeof(*w->workers));
    for (int i = 0; i < w->nworkers; i++) {
        worker *wk = &w->workers[i];
        wk->w = w;
        wk->cc = crypto_ctx_new(&r->keys);
        wk->zc = ZSTD_createCCtx();
        if (pthread_create(&wk->th, NULL, worker_main, wk) != 0) {
            ZSTD_freeCCtx(wk->zc);
            crypto_ctx_free(wk->cc);
            w->nworkers = i;
            repo_writer_free(w);
            return sm_err_sys(err, SM_E_INTERNAL, "cannot start a backup thread");
        }
    }
    if (pthread_create(&w->hasher, NULL, hasher_main, w) != 0) {
        repo_writer_free(w);
        return sm_err_sys(err, SM_E_INTERNAL, "cannot start the hashing thread");
    }
    w->hasher_on = 1;
    w->t_start = sm_mono();
    *out = w;
    return 0;
}

static int flush_open_pack(repo_writer *w, sm_err *err)
{
    int rc = 0;

    pthread_mutex_lock(&w->pk_mu);
    while (w->uploading)
        pthread_cond_wait(&w->pk_cv, &w->pk_mu);
    if (w->npblobs > 0)
        rc = upload_pack(w, w->cc, &w->pack, w->pblobs, w->npblobs, err);
    sm_buf_release(&w->pack);
    free(w->pblobs);
    w->pblobs = NULL;
    w->npblobs = w->cappblobs = 0;
    pthread_mutex_unlock(&w->pk_mu);
    return rc;
}

int repo_writer_commit(repo_writer *w, json_t *meta, json_t *tags, char id_out[65], sm_err *err)
{
    json_t *doc = NULL;
    char *text = NULL;
    char iso[32], id[65];
    struct timespec ts;
    int rc = -1;

    if (w->committed || w->in_stream) {
        sm_err_set(err, SM_E_INTERNAL, "writer cannot commit now");
        goto out;
    }
    if (w->failed) {
        fail_from_workers(w, err);
        goto out;
    }
    if (drain(w, err) < 0 || flush_open_pack(w, err) < 0)
        goto out;
    pthread_mutex_lock(&w->meta_mu);
    rc = flush_index_locked(w, w->cc, err);
    pthread_mutex_unlock(&w->meta_mu);
    if (rc < 0)
        goto out;
    rc = -1;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (sm_clock_driven()) { /* tests drive the clock */
        ts.tv_sec = sm_now();
        ts.tv_nsec = 0;
    }
    sm_time_iso(iso, sizeof(iso), ts.tv_sec);
    doc = json_pack("{s:i,s:s,s:I,s:s,s:O,s:o,s:{s:I,s:I,s:I,s:i,s:f}}", "version", 1, "time",
                    iso, "time_ns", (json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec, "hostname",
                    sm_hostname(), "streams", w->streams, "tags",
                    tags ? json_incref(tags) : json_array(), "totals", "read",
                    (json_int_t)w->bytes_read, "new", (json_int_t)w->bytes_new, "stored",
                    (json_int_t)w->stored_bytes, "packs", (int)w->packs_written, "duration_s",
                    sm_mono() - w->t_start);
    if (meta)
        json_object_set(doc, "meta", meta);
    text = json_dumps(doc, JSON_COMPACT);
    /* the commit point: before this the snapshot does not exist */
    if (repo_file_save(w->r, w->cc, "snapshots", text, strlen(text), id, err) < 0)
        goto out;
    memcpy(id_out, id, 65);
    w->committed = 1;
    rc = 0;
out:
    if (rc < 0)
        w->failed = 1;
    json_decref(doc);
    free(text);
    return rc;
}

json_t *repo_writer_streams(repo_writer *w)
{
    return w->streams;
}

void repo_writer_totals(repo_writer *w, uint64_t *read, uint64_t *fresh, uint64_t *stored)
{
    if (read)
        *read = w->bytes_read;
    if (fresh)
        *fresh = w->bytes_new;
    if (stored) {
        pthread_mutex_lock(&w->meta_mu);
        *stored = w->stored_bytes;
        pthread_mutex_unlock(&w->meta_mu);
    }
}

void repo_writer_free(repo_writer *w)
{
    if (!w)
        return;
    if (w->ring_count > 0)
        abandon(w);
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->work_cv);
    pthread_mutex_unlock(&w->mu);
    if (w->hasher_on) {
        pthread_mutex_lock(&w->hmu);
        w->hstop = 1;
        pthread_cond_broadcast(&w->hcv);
        pthread_mutex_unlock(&w->hmu);
        pthread_join(w->hasher, NULL);
        w->hasher_on = 0;
    }
    for (int i = 0; i < w->nworkers; i++) {
        pthread_join(w->workers[i].th, NULL);
        crypto_ctx_free(w->workers[i].cc);
        ZSTD_freeCCtx(w->workers[i].zc);
        sm_buf_release(&w->workers[i].zbuf);
        sm_buf_release(&w->workers[i].sbuf);
    }
    pdir_free_all(w);
    if (!w->committed) {
        /* blobs claimed by this session may never have reached a pack: the
         * in-memory index is no longer trustworthy */
        repo_index_drop(w->r);
    }
    for (size_t i = 0; i < w->ring_cap; i++)
        free(w->ring[i].data);
    free(w->ring);
    free(w->queue);
    free(w->workers);
    sm_buf_release(&w->pack);
    sm_buf_release(&w->spare);
    free(w->pblobs);
    free(w->unindexed);
    free(w->cbuf);
    free(w->stream_name);
    free(w->stream_ids.ids);
    sha256_free(w->stream_sha);
    chunker_free(w->ch);
    crypto_ctx_free(w->cc);
    json_decref(w->streams);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work_cv);
    pthread_cond_destroy(&w->done_cv);
    pthread_mutex_destroy(&w->pk_mu);
    pthread_cond_destroy(&w->pk_cv);
    pthread_mutex_destroy(&w->meta_mu);
    pthread_mutex_destroy(&w->hmu);
    pthread_cond_destroy(&w->hcv);
    pthread_cond_destroy(&w->hidle);
    free(w->hq);
    free(w);
}
