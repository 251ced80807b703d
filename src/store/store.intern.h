/* For store drivers only. */
#ifndef SM_STORE_INTERN_H
#define SM_STORE_INTERN_H

#include "store/store.h"

typedef struct store_ops {
    int (*put)(store *st, const char *key, const void *data, size_t len, sm_err *err);
    /* optional: without them store_put_deferred is store_put */
    int (*put_deferred)(store *st, const char *key, const void *data, size_t len, sm_err *err);
    int (*flush)(store *st, sm_err *err);
    int (*get)(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out, sm_err *err);
    /* optional: without it store_get_planned is store_get */
    int (*get_planned)(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out,
                       sm_err *err);
    int (*stat)(store *st, const char *key, uint64_t *size, sm_err *err);
    int (*list)(store *st, const char *prefix, store_list_cb cb, void *ud, sm_err *err);
    int (*del)(store *st, const char *key, sm_err *err);
    int (*cleanup)(store *st, unsigned *removed, sm_err *err);
    int (*free_space)(store *st, uint64_t *bytes, sm_err *err);
    void (*free)(store *st);
    int costly_requests; /* see store_costly_requests() */
} store_ops;

struct store {
    const store_ops *ops;
    char *location;
    void *impl;
};

int store_local_open(store **out, const char *dir, sm_err *err);

/* Runs fn(ud, i, err) for every i in [0, n), up to nthreads at a time (on the
 * calling thread when 1). After the first failure no new item starts; the
 * call returns -1 with that failure's error, else 0. fn must be thread-safe. */
typedef int (*store_item_fn)(void *ud, size_t i, sm_err *err);
int store_parallel(size_t n, unsigned nthreads, store_item_fn fn, void *ud, sm_err *err);

#endif
