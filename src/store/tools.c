/* store_check and store_copy: work on any driver through store.h only. */
#include "store/tools.h"
#include "store/store.intern.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ check */

typedef struct probe_find {
    const char *key;
    int found;
} probe_find;

static int find_probe(const char *key, uint64_t size, void *ud, sm_err *err)
{
    probe_find *pf = ud;
    (void)size;
    (void)err;
    if (!strcmp(key, pf->key))
        pf->found = 1;
    return 0;
}

typedef struct check_run {
    store_check_cb cb;
    void *ud;
    sm_err first;
    int rc;
} check_run;

static void step_fail(check_run *cr, const char *step, sm_err *e)
{
    cr->cb(step, 0, NULL, e, cr->ud);
    if (cr->rc == 0)
        sm_err_copy(&cr->first, e);
    cr->rc = -1;
    sm_err_clear(e);
}

int store_check(store *st, store_check_cb cb, void *ud, sm_err *err)
{
    char *hex = sm_random_hex(8);
    char *key = sm_xasprintf("check/probe-%s", hex);
    unsigned char probe[4096];
    sm_buf got = SM_BUF_INIT;
    sm_err e = SM_ERR_INIT;
    check_run cr = {cb, ud, SM_ERR_INIT, 0};
    probe_find pf = {key, 0};
    int wrote = 0, r;

    sm_random(probe, sizeof(probe));
    if (store_put(st, key, probe, sizeof(probe), &e) < 0) {
        step_fail(&cr, "write", &e);
    } else {
        wrote = 1;
        cb("write", 1, "a 4 KiB probe object", NULL, ud);
    }

    if (!wrote) {
        cb("read", -1, "needs the probe object", NULL, ud);
    } else if (store_get(st, key, 0, 0, &got, &e) < 0) {
        step_fail(&cr, "read", &e);
    } else if (got.len != sizeof(probe) || memcmp(got.data, probe, sizeof(probe)) != 0) {
        sm_err_set(&e, SM_E_CORRUPT, "the probe object '%s' read back differs from what was "
                   "written (%zu bytes)", key, got.len);
        step_fail(&cr, "read", &e);
    } else {
        cb("read", 1, "the probe object read back intact", NULL, ud);
    }

    if (store_list(st, "check/", find_probe, &pf, &e) < 0) {
        step_fail(&cr, "list", &e);
    } else if (wrote && !pf.found) {
        sm_err_set(&e, SM_E_IO, "the probe object '%s' is missing from the listing of 'check/'",
                   key);
        step_fail(&cr, "list", &e);
    } else {
        cb("list", 1, wrote ? "the listing shows the probe object" : "listing allowed", NULL, ud);
    }

    if (!wrote) {
        cb("delete", -1, "needs the probe object", NULL, ud);
    } else if (store_delete(st, key, &e) < 0) {
        step_fail(&cr, "delete", &e);
    } else if ((r = store_stat(st, key, NULL, &e)) != 1) {
        if (r == 0)
            sm_err_set(&e, SM_E_IO, "the probe object '%s' is still there after its delete", key);
        step_fail(&cr, "delete", &e);
    } else {
        cb("delete", 1, "the probe object is gone", NULL, ud);
    }

    sm_buf_release(&got);
    free(key);
    free(hex);
    if (cr.rc < 0)
        sm_err_copy(err, &cr.first);
    return cr.rc;
}

/* ------------------------------------------------------------------- copy */

typedef struct obj {
    char *key;
    uint64_t size;
} obj;

typedef struct obj_list {
    obj *v;
    size_t n, cap;
} obj_list;

static int collect(const char *key, uint64_t size, void *ud, sm_err *err)
{
    obj_list *l = ud;
    (void)err;
    if (!strncmp(key, "locks/", 6) || !strncmp(key, "check/", 6))
        return 0;
    SM_GROW(l->v, l->cap, l->n + 1);
    l->v[l->n].key = sm_xstrdup(key);
    l->v[l->n].size = size;
    l->n++;
    return 0;
}

static void obj_list_free(obj_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
}

static int obj_cmp(const void *a, const void *b)
{
    return strcmp(((const obj *)a)->key, ((const obj *)b)->key);
}

/* The copy step of a key: 0 keys, 1 config, 2 data, 3 index, 4 snapshots,
 * 5 anything else (copied last, unknown to this version). */
static int step_of(const char *key)
{
    static const char *steps[] = {"keys/", "config", "data/", "index/", "snapshots/"};
    for (int i = 0; i < 5; i++)
        if (!strncmp(key, steps[i], strlen(steps[i])))
            return i;
    return 5;
}

typedef struct copy_run {
    store *src, *dst;
    const obj_list *dl; /* what dst had, sorted */
    obj **todo;
    pthread_mutex_t mu; /* stats and the callback */
    store_copy_cb cb;
    void *ud;
    store_copy_stats *stats;
} copy_run;

/* Copies todo[i] unless dst has it with the same size (of store_parallel). */
static int copy_one(void *ud, size_t i, sm_err *err)
{
    copy_run *cr = ud;
    const obj *o = cr->todo[i];
    obj probe = {o->key, 0};
    const obj *have = cr->dl->n ? bsearch(&probe, cr->dl->v, cr->dl->n, sizeof(obj), obj_cmp)
                                : NULL;
    sm_buf data = SM_BUF_INIT;
    int rc = 0, skipped = have && have->size == o->size;

    if (!skipped) {
        rc = store_get(cr->src, o->key, 0, 0, &data, err);
        if (rc == 0 && data.len != o->size)
            rc = sm_err_set(err, SM_E_CORRUPT, "object '%s' changed size while copied (%llu, "
                            "now %zu bytes)", o->key, (unsigned long long)o->size, data.len);
        if (rc == 0)
            rc = store_put(cr->dst, o->key, data.data, data.len, err);
        sm_buf_release(&data);
    }
    if (rc == 0) {
        pthread_mutex_lock(&cr->mu);
        if (skipped) {
            cr->stats->skipped++;
        } else {
            cr->stats->copied++;
            cr->stats->bytes_copied += o->size;
        }
        if (cr->cb)
            cr->cb(o->key, o->size, skipped, cr->ud);
        pthread_mutex_unlock(&cr->mu);
    }
    return rc;
}

static int same_repository(store *src, store *dst, sm_err *err)
{
    sm_buf a = SM_BUF_INIT, b = SM_BUF_INIT;
    int rc = -1, r;
    uint64_t size;

    r = store_stat(dst, "config", &size, err);
    if (r != 0) {
        rc = r < 0 ? -1 : 0;
        goto out;
    }
    if (store_get(src, "config", 0, 0, &a, err) < 0 || store_get(dst, "config", 0, 0, &b, err) < 0)
        goto out;
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
        sm_err_set(err, SM_E_EXISTS, "'%s' holds a different repository than '%s'",
                   store_location(dst), store_location(src));
        sm_err_hint(err, "Copy into an empty location, or into an earlier copy of the same "
                         "repository.");
        goto out;
    }
    rc = 0;
out:
    sm_buf_release(&a);
    sm_buf_release(&b);
    return rc;
}

int store_copy(store *src, store *dst, unsigned parallel, store_copy_cb cb, void *ud,
               store_copy_stats *stats, sm_err *err)
{
    obj_list sl = {0}, dl = {0};
    copy_run cr;
    uint64_t size;
    int rc = -1, r;

    memset(stats, 0, sizeof(*stats));
    memset(&cr, 0, sizeof(cr));
    r = store_stat(src, "config", &size, err);
    if (r != 0) {
        if (r == 1)
            sm_err_set(err, SM_E_NOTFOUND, "'%s' is not a repository (no config object)",
                       store_location(src));
        return -1;
    }
    if (same_repository(src, dst, err) < 0)
        return -1;
    if (store_list(src, "", collect, &sl, err) < 0 || store_list(dst, "", collect, &dl, err) < 0)
        goto out;
    if (sl.n > 1)
        qsort(sl.v, sl.n, sizeof(obj), obj_cmp);
    if (dl.n > 1)
        qsort(dl.v, dl.n, sizeof(obj), obj_cmp);
    cr.src = src;
    cr.dst = dst;
    cr.dl = &dl;
    cr.cb = cb;
    cr.ud = ud;
    cr.stats = stats;
    cr.todo = sm_xcalloc(sl.n + 1, sizeof(obj *));
    pthread_mutex_init(&cr.mu, NULL);
    for (int step = 0; step <= 5; step++) {
        size_t n = 0;
        for (size_t i = 0; i < sl.n; i++)
            if (step_of(sl.v[i].key) == step)
                cr.todo[n++] = &sl.v[i];
        /* each step completes before the next begins: the order is the safety */
        if (store_parallel(n, parallel ? parallel : 1, copy_one, &cr, err) < 0) {
            pthread_mutex_destroy(&cr.mu);
            goto out;
        }
    }
    pthread_mutex_destroy(&cr.mu);
    rc = 0;
out:
    free(cr.todo);
    obj_list_free(&sl);
    obj_list_free(&dl);
    return rc;
}
