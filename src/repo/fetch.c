#include "repo/fetch.h"

#include "core/mem.h"

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
