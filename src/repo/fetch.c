#include "repo/fetch.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

enum { F_FREE = 0, F_QUEUED, F_DONE };

typedef struct fworker {
    fetcher *f;
    pthread_t th;
    blob_reader br;
} fworker;

struct fetcher {
    repo *r;
    int nthreads;
    fworker *w;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    fjob *ring;
    size_t cap, head, count;
    size_t *queue;
    size_t q_head, q_count;
    int stopping;
};

static void *fetch_main(void *arg)
{
    fworker *w = arg;
    fetcher *f = w->f;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        fjob *j;
        int rc;
        sm_err e = SM_ERR_INIT;
        while (f->q_count == 0 && !f->stopping)
            pthread_cond_wait(&f->work_cv, &f->mu);
        if (f->q_count == 0)
            break;
        j = &f->ring[f->queue[f->q_head]];
        f->q_head = (f->q_head + 1) % f->cap;
        f->q_count--;
        pthread_mutex_unlock(&f->mu);
        rc = blob_read(&w->br, &j->id, &j->out, &e);
        pthread_mutex_lock(&f->mu);
        j->failed = rc < 0;
        if (rc < 0)
            sm_err_copy(&j->err, &e);
        j->state = F_DONE;
        pthread_cond_broadcast(&f->done_cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int fetcher_new(fetcher **out, repo *r, int threads, sm_err *err)
{
    fetcher *f = sm_xcalloc(1, sizeof(*f));

    f->r = r;
    f->nthreads = repo_threads(threads);
    f->cap = (size_t)f->nthreads * 2 + 2;
    f->ring = sm_xcalloc(f->cap, sizeof(*f->ring));
    f->queue = sm_xcalloc(f->cap, sizeof(*f->queue));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->work_cv, NULL);
    pthread_cond_init(&f->done_cv, NULL);
    f->w = sm_xcalloc((size_t)f->nthreads, sizeof(*f->w));
    for (int i = 0; i < f->nthreads; i++) {
        f->w[i].f = f;
        blob_reader_init(&f->w[i].br, r);
        if (pthread_create(&f->w[i].th, NULL, fetch_main, &f->w[i]) != 0) {
            blob_reader_release(&f->w[i].br);
            f->nthreads = i;
            fetcher_free(f);
            return sm_err_sys(err, SM_E_INTERNAL, "cannot start a reader thread");
        }
    }
    *out = f;
    return 0;
}

void fetcher_free(fetcher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = 1;
    f->q_count = 0; /* abandon queued work */
    pthread_cond_broadcast(&f->work_cv);
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->nthreads; i++) {
        pthread_join(f->w[i].th, NULL);
        blob_reader_release(&f->w[i].br);
    }
    for (size_t i = 0; i < f->cap; i++)
        sm_buf_release(&f->ring[i].out);
    free(f->ring);
    free(f->queue);
    free(f->w);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->work_cv);
    pthread_cond_destroy(&f->done_cv);
    free(f);
}

int fetcher_full(const fetcher *f)
{
    return f->count == f->cap;
}

size_t fetcher_pending(const fetcher *f)
{
    return f->count;
}

void fetcher_submit(fetcher *f, const blob_id *id, void *tag)
{
    size_t jn = (f->head + f->count) % f->cap;
    fjob *j = &f->ring[jn];

    j->id = *id;
    j->tag = tag;
    j->failed = 0;
    sm_err_clear(&j->err);
    pthread_mutex_lock(&f->mu);
    j->state = F_QUEUED;
    f->count++;
    f->queue[(f->q_head + f->q_count) % f->cap] = jn;
    f->q_count++;
    pthread_cond_signal(&f->work_cv);
    pthread_mutex_unlock(&f->mu);
}

fjob *fetcher_wait(fetcher *f)
{
    fjob *j;

    if (f->count == 0)
        return NULL;
    j = &f->ring[f->head];
    pthread_mutex_lock(&f->mu);
    while (j->state != F_DONE)
        pthread_cond_wait(&f->done_cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    return j;
}

void fetcher_pop(fetcher *f)
{
    fjob *j = &f->ring[f->head];

    j->state = F_FREE;
    /* keep big buffers from growing the footprint forever */
    if (j->out.cap > (8u << 20))
        sm_buf_release(&j->out);
    f->head = (f->head + 1) % f->cap;
    f->count--;
}

int fetch_node(fetcher *f, const tree_node *n, const char *what, repo_data_fn fn, void *ud,
               fetch_tick_fn tick, void *tick_ud, sm_err *err)
{
    sha256_ctx *sha = sha256_new();
    unsigned char d[32];
    uint64_t size = 0;
    size_t next = 0;
    int rc = -1;

    for (size_t k = 0; k < n->ncontent; k++) {
        fjob *j;
        while (!fetcher_full(f) && next < n->ncontent)
            fetcher_submit(f, &n->content[next++], NULL);
        j = fetcher_wait(f);
        if (j->failed) {
            sm_err_copy(err, &j->err);
            sm_err_prefix(err, "'%s'", what);
            goto out;
        }
        sha256_update(sha, j->out.data, j->out.len);
        if (fn && fn(ud, j->out.data, j->out.len, err) < 0)
            goto out;
        size += j->out.len;
        fetcher_pop(f);
        if (tick && tick(tick_ud, j->out.len, err) < 0)
            goto out;
    }
    sha256_final(sha, d);
    if (size != n->size || memcmp(d, n->sha256, 32) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "'%s' does not match its checksum", what);
        goto out;
    }
    rc = 0;
out:
    while (fetcher_pending(f) > 0) {
        fetcher_wait(f);
        fetcher_pop(f);
    }
    sha256_free(sha);
    return rc;
}

/* ---- restore plans ---- */

enum { PB_WAIT = 0, PB_READY, PB_FAILED, PB_DROPPED, PB_DONE };

typedef struct pblob {
    index_entry e;  /* id and location */
    uint32_t range; /* UINT32_MAX: not in the index */
    uint32_t uses;  /* positions not yet handed out */
    size_t next;    /* position of its next use */
    uint8_t state;
    sm_buf data; /* plaintext while READY */
    sm_err *err; /* when FAILED */
} pblob;

typedef struct prange {
    uint32_t pack;
    uint64_t start, end;
    size_t o0, o1; /* its blobs: order[o0..o1), by offset */
    size_t first;  /* first position needing one of them */
} prange;

typedef struct pworker {
    fplan *p;
    pthread_t th;
    blob_reader br; /* br.sealed holds the range being read (kept for the next) */
} pworker;

struct fplan {
    repo *r;
    pblob *b;
    size_t nb;
    size_t *pos, *nxt; /* per position: its blob, the next position of that blob */
    size_t npos, cur;
    uint32_t *order; /* blobs in the index, by pack and offset */
    prange *rg;
    size_t nrg, next_rg;
    int waiting; /* the caller waits for a blob of range want_rg */
    size_t want_rg;
    uint64_t held; /* memory of plaintext decrypted and not yet used up */
    sm_buf *pool;  /* plaintext buffers to reuse (fresh ones cost page faults) */
    size_t npool, cpool;
    uint64_t pooled;
    size_t reads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pworker *w;
    int nw;
    int stop;
    size_t last;    /* blob handed out by the previous fplan_next, or SIZE_MAX */
    blob_reader br; /* the caller's, for blobs read again on their own */
    sm_buf tmp;
    tcache *tc; /* may be NULL */
};

struct tcache {
    index_entry *e; /* every tree blob of the index, by pack and offset */
    size_t n;
    size_t *slot; /* id hash -> position + 1 */
    size_t cap;
    sm_buf *plain; /* per position: plaintext once opened */
    pthread_mutex_t mu;
};

/* A failed range read, as blob_read words it for one of its blobs. */
static void plan_read_error(fplan *p, const index_entry *e, const sm_err *got, sm_err *err)
{
    char hex[65], phex[65];

    blob_id_hex(&e->id, hex);
    sm_hex(phex, index_pack_at(p->r->idx, e->pack)->id, 32);
    if (got->code == SM_E_NOTFOUND)
        sm_err_set(err, SM_E_CORRUPT, "chunk %.12s: pack %.12s is missing", hex, phex);
    else if (got->code == SM_E_CORRUPT)
        sm_err_set(err, SM_E_CORRUPT, "chunk %.12s: pack %.12s is truncated", hex, phex);
    else
        sm_err_copy(err, got);
}

/* Whether a blob holding memory should give it up: memory is short and a
 * range not yet started is needed before the blob's next use. Locked. */
static int plan_should_drop(const fplan *p, const pblob *b)
{
    return p->held > FETCH_PLAIN_BUDGET && b->next > p->cur && p->next_rg < p->nrg &&
           b->next >= p->rg[p->next_rg].first;
}

/* Takes a buffer from the pool into *b (empty). Locked by the caller. */
static void plan_buf_take(fplan *p, sm_buf *b)
{
    if (p->npool == 0)
        return;
    *b = p->pool[--p->npool];
    p->pooled -= b->cap;
}

/* Gives *b back to the pool, or frees it when the pool is full. Locked. */
static void plan_buf_give(fplan *p, sm_buf *b)
{
    if (b->cap && p->pooled + b->cap <= FETCH_POOL_MAX) {
        SM_GROW(p->pool, p->cpool, p->npool + 1);
        p->pooled += b->cap;
        p->pool[p->npool++] = *b;
        *b = (sm_buf)SM_BUF_INIT;
    } else {
        sm_buf_release(b);
    }
}

static uint64_t id_hash(const blob_id *id)
{
    uint64_t h;
    memcpy(&h, id->b, sizeof(h)); /* an HMAC: already uniform */
    return h;
}

static int entry_cmp(const void *a, const void *b)
{
    const index_entry *x = a, *y = b;
    if (x->pack != y->pack)
        return x->pack < y->pack ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

tcache *tcache_new(repo *r)
{
    tcache *tc = sm_xcalloc(1, sizeof(*tc));
    size_t total = index_count(r->idx), ecap = 0;

    for (size_t i = 0; i < total; i++) {
        const index_entry *e = index_entry_at(r->idx, i);
        if (!e || e->type != BLOB_TREE || e->pack == INDEX_PENDING)
            continue;
        SM_GROW(tc->e, ecap, tc->n + 1);
        tc->e[tc->n++] = *e;
    }
    if (tc->n > 1)
        qsort(tc->e, tc->n, sizeof(*tc->e), entry_cmp);
    tc->cap = 16;
    while (tc->cap < tc->n * 2)
        tc->cap *= 2;
    tc->slot = sm_xcalloc(tc->cap, sizeof(*tc->slot));
    for (size_t k = 0; k < tc->n; k++) {
        size_t h = (size_t)id_hash(&tc->e[k].id) & (tc->cap - 1);
        while (tc->slot[h])
            h = (h + 1) & (tc->cap - 1);
        tc->slot[h] = k + 1;
    }
    tc->plain = sm_xcalloc(tc->n ? tc->n : 1, sizeof(*tc->plain));
    pthread_mutex_init(&tc->mu, NULL);
    return tc;
}

void tcache_free(tcache *tc)
{
    if (!tc)
        return;
    for (size_t k = 0; k < tc->n; k++)
        sm_buf_release(&tc->plain[k]);
    free(tc->plain);
    free(tc->slot);
    free(tc->e);
    pthread_mutex_destroy(&tc->mu);
    free(tc);
}

const sm_buf *tcache_get(tcache *tc, const blob_id *id)
{
    size_t h = (size_t)id_hash(id) & (tc->cap - 1);
    const sm_buf *got = NULL;

    while (tc->slot[h] && !blob_id_eq(&tc->e[tc->slot[h] - 1].id, id))
        h = (h + 1) & (tc->cap - 1);
    if (!tc->slot[h])
        return NULL;
    pthread_mutex_lock(&tc->mu);
    if (tc->plain[tc->slot[h] - 1].data)
        got = &tc->plain[tc->slot[h] - 1];
    pthread_mutex_unlock(&tc->mu);
    return got;
}

/* Opens the tree blobs lying in range g (read into w->br.sealed) for the
 * tree cache. A damaged one is left out: its plan reports it. */
static void plan_harvest(fplan *p, pworker *w, const prange *g)
{
    tcache *tc = p->tc;
    size_t lo = 0, hi = tc->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tc->e[mid].pack < g->pack || (tc->e[mid].pack == g->pack && tc->e[mid].off < g->start))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo;
         k < tc->n && tc->e[k].pack == g->pack && (uint64_t)tc->e[k].off + tc->e[k].len <= g->end;
         k++) {
        sm_buf plain = SM_BUF_INIT;
        sm_err e = SM_ERR_INIT;
        int have;
        pthread_mutex_lock(&tc->mu);
        have = tc->plain[k].data != NULL;
        pthread_mutex_unlock(&tc->mu);
        if (!have && blob_open(&w->br, &tc->e[k], w->br.sealed.data + (tc->e[k].off - g->start),
                               tc->e[k].len, &plain, &e) == 0) {
            pthread_mutex_lock(&tc->mu);
            if (!tc->plain[k].data) {
                tc->plain[k] = plain;
                plain = (sm_buf)SM_BUF_INIT;
            }
            pthread_mutex_unlock(&tc->mu);
        }
        sm_buf_release(&plain);
    }
}

static void *plan_main(void *arg)
{
    pworker *w = arg;
    fplan *p = w->p;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        prange *g;
        size_t ri;
        char key[96];
        sm_err e = SM_ERR_INIT;
        int rc;

        if (p->stop || p->next_rg >= p->nrg)
            break;
        ri = p->next_rg++;
        g = &p->rg[ri];
        p->reads++;
        pack_key(key, sizeof(key), index_pack_at(p->r->idx, g->pack)->id);
        pthread_mutex_unlock(&p->mu);

        rc = store_get_planned(p->r->st, key, g->start, g->end - g->start, &w->br.sealed, &e);
        for (size_t k = g->o0; k < g->o1; k++) {
            pblob *b = &p->b[p->order[k]];
            sm_err be = SM_ERR_INIT;
            /* plaintext waits for the caller to use what it holds, unless
             * the caller waits for this range, or for one nobody reads yet
             * (readers must finish theirs to start it) */
            int stop;
            pthread_mutex_lock(&p->mu);
            while (!p->stop && p->held > 0 && p->held + b->e.raw_len > FETCH_PLAIN_BUDGET &&
                   !(p->waiting && (p->want_rg == ri || p->want_rg >= p->next_rg)))
                pthread_cond_wait(&p->work_cv, &p->mu);
            stop = p->stop;
            if (!stop)
                plan_buf_take(p, &b->data);
            pthread_mutex_unlock(&p->mu);
            if (stop)
                break;
            /* nobody else touches b until its state changes below */
            if (rc < 0)
                plan_read_error(p, &b->e, &e, &be);
            else
                blob_open(&w->br, &b->e, w->br.sealed.data + (b->e.off - g->start), b->e.len,
                          &b->data, &be);
            if (be.code != SM_OK) {
                b->err = sm_xmalloc(sizeof(*b->err));
                *b->err = be;
            }
            pthread_mutex_lock(&p->mu);
            if (b->err) {
                plan_buf_give(p, &b->data);
                b->state = PB_FAILED;
            } else if (plan_should_drop(p, b)) {
                plan_buf_give(p, &b->data);
                b->state = PB_DROPPED;
            } else {
                p->held += b->data.cap; /* the memory, not the length */
                b->state = PB_READY;
            }
            pthread_cond_broadcast(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
        if (rc == 0 && p->tc)
            plan_harvest(p, w, g);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

typedef struct pkey {
    uint32_t pack, off;
    uint32_t blob;
} pkey;

static int pkey_cmp(const void *a, const void *b)
{
    const pkey *x = a, *y = b;
    if (x->pack != y->pack)
        return x->pack < y->pack ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int prange_cmp(const void *a, const void *b)
{
    const prange *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

int fplan_new(fplan **out, repo *r, const blob_id *ids, size_t n, int threads, tcache *tc,
              sm_err *err)
{
    fplan *p = sm_xcalloc(1, sizeof(*p));
    size_t hcap = 16, nfound = 0, bcap = 0, *slot, *last;
    pkey *keys = NULL;
    uint64_t range_max = store_costly_requests(r->st) ? FETCH_RANGE_MAX : FETCH_RANGE_MAX_LOCAL;
    uint64_t gap_max = FETCH_GAP_MAX, range_bytes = 0;
    int nthreads;

    p->r = r;
    p->tc = tc;
    p->npos = n;
    p->last = SIZE_MAX;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    blob_reader_init(&p->br, r);
    p->pos = sm_xcalloc(n ? n : 1, sizeof(*p->pos));
    p->nxt = sm_xcalloc(n ? n : 1, sizeof(*p->nxt));

    /* distinct blobs (open addressing on the id) */
    while (hcap < n * 2)
        hcap *= 2;
    slot = sm_xcalloc(hcap, sizeof(*slot)); /* blob number + 1; 0 empty */
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)id_hash(&ids[i]) & (hcap - 1);
        while (slot[h] && !blob_id_eq(&p->b[slot[h] - 1].e.id, &ids[i]))
            h = (h + 1) & (hcap - 1);
        if (!slot[h]) {
            SM_GROW(p->b, bcap, p->nb + 1);
            memset(&p->b[p->nb], 0, sizeof(p->b[p->nb]));
            p->b[p->nb].e.id = ids[i];
            p->b[p->nb].next = i;
            slot[h] = ++p->nb;
        }
        p->b[slot[h] - 1].uses++;
        p->pos[i] = slot[h] - 1;
    }
    free(slot);
    /* next uses, from the end */
    last = sm_xcalloc(p->nb ? p->nb : 1, sizeof(*last));
    for (size_t k = 0; k < p->nb; k++)
        last[k] = SIZE_MAX;
    for (size_t i = n; i-- > 0;) {
        p->nxt[i] = last[p->pos[i]];
        last[p->pos[i]] = i;
    }
    free(last);

    /* where they live: by pack, then offset */
    if (tc && store_costly_requests(r->st))
        gap_max = FETCH_TREE_GAP_MAX; /* listings are small and far apart */
    keys = sm_xcalloc(p->nb ? p->nb : 1, sizeof(*keys));
    for (size_t k = 0; k < p->nb; k++) {
        pblob *b = &p->b[k];
        blob_id id = b->e.id;
        char hex[65];
        b->range = UINT32_MAX;
        if (index_get(r->idx, &id, &b->e) != 0 || b->e.pack == INDEX_PENDING) {
            b->e.id = id;
            blob_id_hex(&id, hex);
            b->err = sm_xmalloc(sizeof(*b->err));
            sm_err_clear(b->err);
            sm_err_set(b->err, SM_E_CORRUPT, "chunk %.12s is missing from the index", hex);
            b->state = PB_FAILED;
            continue;
        }
        keys[nfound].pack = b->e.pack;
        keys[nfound].off = b->e.off;
        keys[nfound].blob = (uint32_t)k;
        nfound++;
    }
    qsort(keys, nfound, sizeof(*keys), pkey_cmp);
    p->order = sm_xcalloc(nfound ? nfound : 1, sizeof(*p->order));
    p->rg = sm_xcalloc(nfound ? nfound : 1, sizeof(*p->rg));
    for (size_t k = 0; k < nfound; k++) {
        pblob *b = &p->b[keys[k].blob];
        uint64_t off = b->e.off, end = off + b->e.len;
        prange *g = p->nrg ? &p->rg[p->nrg - 1] : NULL;
        p->order[k] = keys[k].blob;
        if (!g || g->pack != b->e.pack || off > g->end + gap_max || end - g->start > range_max) {
            g = &p->rg[p->nrg++];
            g->pack = b->e.pack;
            g->start = off;
            g->end = end;
            g->o0 = k;
            g->first = SIZE_MAX;
        }
        if (end > g->end)
            g->end = end;
        g->o1 = k + 1;
        if (b->next < g->first)
            g->first = b->next;
    }
    free(keys);
    /* in the order the sequence first needs them */
    qsort(p->rg, p->nrg, sizeof(*p->rg), prange_cmp);
    for (size_t g = 0; g < p->nrg; g++)
        for (size_t k = p->rg[g].o0; k < p->rg[g].o1; k++)
            p->b[p->order[k]].range = (uint32_t)g;
    for (size_t g = 0; g < p->nrg; g++)
        range_bytes += p->rg[g].end - p->rg[g].start;
    sm_log(SM_LOG_DEBUG, "restore plan: %zu chunks (%zu distinct) in %zu ranges of %llu bytes", n,
           p->nb, p->nrg, (unsigned long long)range_bytes);

    nthreads = repo_threads(threads);
    if (nthreads > FETCH_MAX_READERS)
        nthreads = FETCH_MAX_READERS;
    if ((size_t)nthreads > p->nrg)
        nthreads = (int)p->nrg;
    p->w = sm_xcalloc(nthreads ? (size_t)nthreads : 1, sizeof(*p->w));
    for (int i = 0; i < nthreads; i++) {
        p->w[i].p = p;
        blob_reader_init(&p->w[i].br, r);
        if (pthread_create(&p->w[i].th, NULL, plan_main, &p->w[i]) != 0) {
            blob_reader_release(&p->w[i].br);
            fplan_free(p);
            return sm_err_sys(err, SM_E_INTERNAL, "cannot start a reader thread");
        }
        p->nw = i + 1;
    }
    *out = p;
    return 0;
}

/* Done with the blob handed out last: free it, keep it for its next use,
 * or drop it when memory is short. */
static void plan_release_last(fplan *p)
{
    pblob *b;

    if (p->last == SIZE_MAX)
        return;
    b = &p->b[p->last];
    p->last = SIZE_MAX;
    pthread_mutex_lock(&p->mu);
    b->uses--;
    b->next = p->nxt[p->cur - 1];
    if (b->state == PB_READY && (b->uses == 0 || plan_should_drop(p, b))) {
        p->held -= b->data.cap;
        plan_buf_give(p, &b->data);
        b->state = b->uses ? PB_DROPPED : PB_DONE;
        pthread_cond_broadcast(&p->work_cv);
    }
    pthread_mutex_unlock(&p->mu);
}

int fplan_next(fplan *p, const sm_buf **out, sm_err *err)
{
    pblob *b;
    int state;

    plan_release_last(p);
    if (p->cur >= p->npos)
        return sm_err_set(err, SM_E_INTERNAL, "restore plan out of step");
    b = &p->b[p->pos[p->cur]];
    pthread_mutex_lock(&p->mu);
    while (b->state == PB_WAIT) {
        p->waiting = 1;
        p->want_rg = b->range;
        pthread_cond_broadcast(&p->work_cv);
        pthread_cond_wait(&p->done_cv, &p->mu);
    }
    p->waiting = 0;
    state = b->state;
    p->last = p->pos[p->cur];
    p->cur++;
    pthread_mutex_unlock(&p->mu);
    if (state == PB_FAILED) {
        sm_err_copy(err, b->err);
        return -1;
    }
    if (state == PB_READY) {
        *out = &b->data;
        return 0;
    }
    /* dropped to save memory: read it on its own */
    pthread_mutex_lock(&p->mu);
    p->reads++;
    pthread_mutex_unlock(&p->mu);
    {
        char hex[65];
        blob_id_hex(&b->e.id, hex);
        sm_log(SM_LOG_DEBUG, "restore plan: chunk %.12s (position %zu) read again on its own", hex,
               p->cur - 1);
    }
    if (blob_read(&p->br, &b->e.id, &p->tmp, err) < 0)
        return -1;
    *out = &p->tmp;
    return 0;
}

size_t fplan_reads(fplan *p)
{
    size_t n;

    pthread_mutex_lock(&p->mu);
    n = p->reads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void fplan_free(fplan *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nw; i++) {
        pthread_join(p->w[i].th, NULL);
        blob_reader_release(&p->w[i].br);
    }
    sm_log(SM_LOG_DEBUG, "restore plan: %zu store reads", p->reads);
    for (size_t k = 0; k < p->nb; k++) {
        sm_buf_release(&p->b[k].data);
        free(p->b[k].err);
    }
    for (size_t k = 0; k < p->npool; k++)
        sm_buf_release(&p->pool[k]);
    free(p->pool);
    free(p->b);
    free(p->pos);
    free(p->nxt);
    free(p->order);
    free(p->rg);
    free(p->w);
    blob_reader_release(&p->br);
    sm_buf_release(&p->tmp);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p);
}
