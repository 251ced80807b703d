#include "store/store.intern.h"
#include "store/s3.h"

#include "core/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int store_key_check(const char *key, sm_err *err)
{
    const char *seg = key;

    if (!key || !*key || key[0] == '/' || strstr(key, ".tmp."))
        return sm_err_set(err, SM_E_INTERNAL, "invalid store key '%s'", key ? key : "");
    for (const char *p = key;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return sm_err_set(err, SM_E_INTERNAL, "invalid store key '%s'", key);
            if (*p == '\0')
                break;
            seg = p + 1;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return sm_err_set(err, SM_E_INTERNAL, "invalid store key '%s'", key);
    }
    return 0;
}

int store_open(store **out, const char *location, sm_err *err)
{
    if (!location || !*location)
        return sm_err_set(err, SM_E_USAGE, "no repository location given");
    if (!strncmp(location, "file://", 7))
        return store_local_open(out, location + 7, err);
    if (!strncmp(location, "s3://", 5))
        return store_s3_open(out, location, err);
    if (strstr(location, "://")) {
        sm_err_set(err, SM_E_USAGE, "unsupported store location '%s'", location);
        return sm_err_hint(err, "Use a directory path (or file://PATH) or s3://BUCKET[/PREFIX].");
    }
    return store_local_open(out, location, err);
}

void store_free(store *st)
{
    if (st)
        st->ops->free(st);
}

int store_put(store *st, const char *key, const void *data, size_t len, sm_err *err)
{
    if (store_key_check(key, err) < 0)
        return -1;
    return st->ops->put(st, key, data, len, err);
}

int store_put_deferred(store *st, const char *key, const void *data, size_t len, sm_err *err)
{
    if (store_key_check(key, err) < 0)
        return -1;
    if (!st->ops->put_deferred)
        return st->ops->put(st, key, data, len, err);
    return st->ops->put_deferred(st, key, data, len, err);
}

int store_flush(store *st, sm_err *err)
{
    return st->ops->flush ? st->ops->flush(st, err) : 0;
}

int store_get(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out, sm_err *err)
{
    if (store_key_check(key, err) < 0)
        return -1;
    return st->ops->get(st, key, off, len, out, err);
}

int store_get_planned(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out,
                      sm_err *err)
{
    if (store_key_check(key, err) < 0)
        return -1;
    if (!st->ops->get_planned)
        return st->ops->get(st, key, off, len, out, err);
    return st->ops->get_planned(st, key, off, len, out, err);
}

int store_stat(store *st, const char *key, uint64_t *size, sm_err *err)
{
    if (store_key_check(key, err) < 0)
        return -1;
    return st->ops->stat(st, key, size, err);
}

int store_list(store *st, const char *prefix, store_list_cb cb, void *ud, sm_err *err)
{
    return st->ops->list(st, prefix ? prefix : "", cb, ud, err);
}

int store_delete(store *st, const char *key, sm_err *err)
{
    if (store_key_check(key, err) < 0)
        return -1;
    return st->ops->del(st, key, err);
}

int store_cleanup(store *st, unsigned *removed, sm_err *err)
{
    *removed = 0;
    if (!st->ops->cleanup)
        return 0;
    return st->ops->cleanup(st, removed, err);
}

int store_free_space(store *st, uint64_t *bytes, sm_err *err)
{
    if (!st->ops->free_space)
        return 1;
    return st->ops->free_space(st, bytes, err);
}

int store_costly_requests(const store *st)
{
    return st->ops->costly_requests;
}

const char *store_location(const store *st)
{
    return st->location;
}

typedef struct par_run {
    size_t n, next;
    store_item_fn fn;
    void *ud;
    pthread_mutex_t mu;
    int failed;
    sm_err err;
} par_run;

static void *par_worker(void *arg)
{
    par_run *pr = arg;

    for (;;) {
        sm_err e = SM_ERR_INIT;
        size_t i;

        pthread_mutex_lock(&pr->mu);
        i = pr->failed ? pr->n : pr->next++;
        pthread_mutex_unlock(&pr->mu);
        if (i >= pr->n)
            break;
        if (pr->fn(pr->ud, i, &e) < 0) {
            pthread_mutex_lock(&pr->mu);
            if (!pr->failed)
                sm_err_copy(&pr->err, &e);
            pr->failed = 1;
            pthread_mutex_unlock(&pr->mu);
            break;
        }
    }
    return NULL;
}

int store_parallel(size_t n, unsigned nthreads, store_item_fn fn, void *ud, sm_err *err)
{
    par_run pr;
    pthread_t th[64];
    unsigned nth = 0;

    memset(&pr, 0, sizeof(pr));
    pr.n = n;
    pr.fn = fn;
    pr.ud = ud;
    pthread_mutex_init(&pr.mu, NULL);
    if (nthreads > 1)
        for (; nth < nthreads && nth < 64 && nth < n; nth++)
            if (pthread_create(&th[nth], NULL, par_worker, &pr) != 0)
                break;
    if (nth == 0)
        par_worker(&pr);
    for (unsigned i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&pr.mu);
    if (pr.failed) {
        sm_err_copy(err, &pr.err);
        return -1;
    }
    return 0;
}
