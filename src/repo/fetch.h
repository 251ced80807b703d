/* A read-ahead pipeline for blobs: the caller submits ids in the order it
 * will consume them, worker threads read, authenticate, decompress and
 * check them, and the caller takes them back in order. Memory is bounded by
 * the ring (threads x 2 + 2 blobs). Internal to src/repo/. */
#ifndef SM_REPO_FETCH_H
#define SM_REPO_FETCH_H

#include "repo/repo.intern.h"

typedef struct fjob {
    blob_id id;
    sm_buf out;
    int state;
    int failed;
    sm_err err;
    void *tag; /* caller's */
} fjob;

typedef struct fetcher fetcher;

int fetcher_new(fetcher **out, repo *r, int threads, sm_err *err);
void fetcher_free(fetcher *f);
/* 1 when no more jobs can be submitted before the oldest is taken. */
int fetcher_full(const fetcher *f);
size_t fetcher_pending(const fetcher *f);
void fetcher_submit(fetcher *f, const blob_id *id, void *tag);
/* Waits for the oldest job; valid until fetcher_pop. NULL when none. */
fjob *fetcher_wait(fetcher *f);
void fetcher_pop(fetcher *f);

#endif

/* Streams a file node's content in order through fn (which may be NULL),
 * checking size and SHA-256; tick (may be NULL) is called after each chunk
 * with its length and may stop the read by returning -1 with err set. */
typedef int (*fetch_tick_fn)(void *ud, size_t n, sm_err *err);
int fetch_node(fetcher *f, const tree_node *n, const char *what, repo_data_fn fn, void *ud,
               fetch_tick_fn tick, void *tick_ud, sm_err *err);
