/* Repository locks: small JSON objects under locks/. A writer holds an
 * exclusive lock; readers hold shared ones, which only keep prune from
 * deleting packs under them. Locks record pid, process start time, host and
 * a refresh time, so a lock left by a dead process is recognised. */
#include "repo/repo.intern.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 when unknown. Guards against pid reuse. */
static unsigned long long proc_start(long pid)
{
    char path[64], buf[1024];
    FILE *f;
    size_t n;
    char *p;
    unsigned long long v = 0;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may contain spaces */
    if (!p)
        return 0;
    p++;
    for (int field = 3; field <= 22 && p; field++) {
        p = strchr(p + 1, ' ');
        if (field == 21 && p)
            v = strtoull(p + 1, NULL, 10);
    }
    return v;
}

typedef struct lock_info {
    char *key;
    long pid;
    unsigned long long start;
    char host[256];
    int64_t time;
    int exclusive;
    char purpose[64];
} lock_info;

typedef struct lock_list {
    lock_info *v;
    size_t n, cap;
    store *st;
} lock_list;

static int collect_lock(const char *key, uint64_t size, void *ud, sm_err *err)
{
    lock_list *ll = ud;
    sm_buf raw = SM_BUF_INIT;
    json_t *doc;
    lock_info li;
    const char *host = "", *purpose = "";
    json_int_t pid = 0, t = 0;
    json_t *start = NULL;
    int excl = 0;

    (void)err;
    if (size > 65536)
        return 0;
    if (store_get(ll->st, key, 0, 0, &raw, NULL) < 0)
        return 0; /* released meanwhile */
    doc = json_loadb((const char *)raw.data, raw.len, 0, NULL);
    sm_buf_release(&raw);
    memset(&li, 0, sizeof(li));
    if (!doc || json_unpack(doc, "{s:I,s:s,s:I,s:b,s?s,s?o}", "pid", &pid, "hostname", &host,
                            "time", &t, "exclusive", &excl, "purpose", &purpose, "start",
                            &start) != 0) {
        /* unreadable lock: treat as held by an unknown process */
        snprintf(li.host, sizeof(li.host), "?");
        li.exclusive = 1;
        li.time = 0;
    } else {
        li.pid = (long)pid;
        snprintf(li.host, sizeof(li.host), "%s", host);
        snprintf(li.purpose, sizeof(li.purpose), "%s", purpose);
        li.time = t;
        li.exclusive = excl;
        if (json_is_string(start))
            li.start = strtoull(json_string_value(start), NULL, 10);
    }
    json_decref(doc);
    li.key = sm_xstrdup(key);
    SM_GROW(ll->v, ll->cap, ll->n + 1);
    ll->v[ll->n++] = li;
    return 0;
}

static void lock_list_free(lock_list *ll)
{
    for (size_t i = 0; i < ll->n; i++)
        free(ll->v[i].key);
    free(ll->v);
    memset(ll, 0, sizeof(*ll));
}

static int list_locks(store *st, lock_list *ll, sm_err *err)
{
    memset(ll, 0, sizeof(*ll));
    ll->st = st;
    return store_list(st, "locks/", collect_lock, ll, err);
}

/* 1 when the lock's process is certainly gone. */
static int lock_dead(const lock_info *li)
{
    if (strcmp(li->host, sm_hostname()) != 0)
        return 0;
    if (li->pid <= 0)
        return 0;
    if (kill((pid_t)li->pid, 0) != 0 && errno == ESRCH)
        return 1;
    if (li->start && proc_start(li->pid) != li->start)
        return 1; /* the pid was reused */
    return 0;
}

static int lock_stale(const lock_info *li, time_t now)
{
    return lock_dead(li) || (li->time > 0 && now - li->time > REPO_LOCK_STALE_S);
}

static void describe(char *out, size_t cap, const lock_info *li, time_t now)
{
    snprintf(out, cap, "%s lock held by pid %ld on host '%s'%s%s%s since %llds ago",
             li->exclusive ? "an exclusive" : "a shared", li->pid, li->host,
             li->purpose[0] ? " (" : "", li->purpose, li->purpose[0] ? ")" : "",
             (long long)(now - li->time));
}

static char *lock_doc(int exclusive, const char *purpose)
{
    json_t *doc;
    char *s, start[32];

    snprintf(start, sizeof(start), "%llu", proc_start((long)getpid()));
    doc = json_pack("{s:I,s:s,s:s,s:I,s:b,s:s}", "pid", (json_int_t)getpid(), "start", start,
                    "hostname", sm_hostname(), "time", (json_int_t)time(NULL), "exclusive",
                    exclusive, "purpose", purpose ? purpose : "");
    s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return s;
}

/* Returns 1 and describes the first live lock conflicting with ours. */
static int conflict(store *st, lock_list *ll, const char *self, int exclusive, char *msg,
                    size_t cap)
{
    time_t now = time(NULL);

    for (size_t i = 0; i < ll->n; i++) {
        lock_info *li = &ll->v[i];
        if (self && !strcmp(li->key, self))
            continue;
        if (lock_dead(li)) {
            sm_log(SM_LOG_INFO, "removing lock '%s' of dead process %ld", li->key, li->pid);
            store_delete(st, li->key, NULL);
            continue;
        }
        /* readers never block and are never blocked: a shared lock only
         * keeps prune from deleting packs; writers exclude each other */
        if (!exclusive || !li->exclusive)
            continue;
        describe(msg, cap, li, now);
        return 1;
    }
    return 0;
}

static void *refresh_main(void *arg)
{
    repo *r = arg;

    pthread_mutex_lock(&r->lock_mu);
    while (!r->lock_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += REPO_LOCK_REFRESH_S;
        pthread_cond_timedwait(&r->lock_cv, &r->lock_mu, &ts);
        if (r->lock_stop || !r->lock_key)
            break;
        {
            char *doc = lock_doc(r->lock_exclusive, "refreshed");
            sm_err e = SM_ERR_INIT;
            if (store_put(r->st, r->lock_key, doc, strlen(doc), &e) < 0)
                sm_log(SM_LOG_WARN, "cannot refresh lock: %s", e.msg);
            free(doc);
        }
    }
    pthread_mutex_unlock(&r->lock_mu);
    return NULL;
}

int repo_lock(repo *r, int exclusive, const char *purpose, sm_err *err)
{
    lock_list ll;
    char msg[512];
    char *id = NULL, *key = NULL, *doc = NULL;
    int rc = -1;

    if (r->lock_key)
        return sm_err_set(err, SM_E_INTERNAL, "repository is already locked by this process");
    if (list_locks(r->st, &ll, err) < 0)
        return -1;
    if (conflict(r->st, &ll, NULL, exclusive, msg, sizeof(msg))) {
        sm_err_set(err, SM_E_LOCKED, "repository '%s' is locked: %s", store_location(r->st), msg);
        sm_err_hint(err, "Wait for that operation to finish; if that process is gone, run "
                         "`supamanager repo unlock --repo %s`.",
                    store_location(r->st));
        goto out;
    }
    lock_list_free(&ll);
    id = sm_random_hex(16);
    key = sm_xasprintf("locks/%s", id);
    doc = lock_doc(exclusive, purpose);
    if (store_put(r->st, key, doc, strlen(doc), err) < 0)
        goto out;
    /* Two writers may have written their locks at once: both see each other
     * now and both back off. */
    if (list_locks(r->st, &ll, err) < 0) {
        store_delete(r->st, key, NULL);
        goto out;
    }
    if (conflict(r->st, &ll, key, exclusive, msg, sizeof(msg))) {
        store_delete(r->st, key, NULL);
        sm_err_set(err, SM_E_LOCKED, "repository '%s' is locked: %s", store_location(r->st), msg);
        sm_err_hint(err, "Wait for that operation to finish and try again.");
        goto out;
    }
    r->lock_key = key;
    key = NULL;
    r->lock_exclusive = exclusive;
    r->lock_stop = 0;
    if (pthread_create(&r->lock_thread, NULL, refresh_main, r) == 0)
        r->lock_thread_on = 1;
    rc = 0;
out:
    lock_list_free(&ll);
    free(id);
    free(key);
    free(doc);
    return rc;
}

int repo_unlock(repo *r, sm_err *err)
{
    int rc = 0;

    if (r->lock_thread_on) {
        pthread_mutex_lock(&r->lock_mu);
        r->lock_stop = 1;
        pthread_cond_broadcast(&r->lock_cv);
        pthread_mutex_unlock(&r->lock_mu);
        pthread_join(r->lock_thread, NULL);
        r->lock_thread_on = 0;
    }
    if (r->lock_key) {
        rc = store_delete(r->st, r->lock_key, err);
        free(r->lock_key);
        r->lock_key = NULL;
    }
    return rc;
}

int repo_break_locks(store *st, int all, unsigned *removed, sm_err *err)
{
    lock_list ll;
    time_t now = time(NULL);
    int rc = 0;

    *removed = 0;
    if (list_locks(st, &ll, err) < 0)
        return -1;
    for (size_t i = 0; i < ll.n && rc == 0; i++) {
        char msg[512];
        if (!all && !lock_stale(&ll.v[i], now)) {
            describe(msg, sizeof(msg), &ll.v[i], now);
            sm_log(SM_LOG_WARN, "keeping live %s (use --all to remove it anyway)", msg);
            continue;
        }
        rc = store_delete(st, ll.v[i].key, err);
        if (rc == 0)
            (*removed)++;
    }
    lock_list_free(&ll);
    return rc;
}

int repo_has_readers(repo *r, int *yes, sm_err *err)
{
    lock_list ll;
    time_t now = time(NULL);

    *yes = 0;
    if (list_locks(r->st, &ll, err) < 0)
        return -1;
    for (size_t i = 0; i < ll.n; i++) {
        if (r->lock_key && !strcmp(ll.v[i].key, r->lock_key))
            continue;
        if (!ll.v[i].exclusive && !lock_stale(&ll.v[i], now))
            *yes = 1;
    }
    lock_list_free(&ll);
    return 0;
}
