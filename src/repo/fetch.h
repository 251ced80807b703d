/* Two ways to read blobs in order, internal to src/repo/.
 *
 * The fetcher is a read-ahead pipeline: the caller submits ids in the order
 * it will consume them, worker threads read, authenticate, decompress and
 * check them one by one (one store read per blob), and the caller takes them
 * back in order. Memory is bounded by the ring (threads x 2 + 2 blobs). Used
 * where the blobs are not known in advance (archives, file by file).
 *
 * A restore plan (fplan) is given the whole sequence up front: restores.
 *
 *   fplan *p;  const sm_buf *b;
 *   fplan_new(&p, r, ids, n, threads, &err);      // groups, sorts, starts readers
 *   for (size_t i = 0; i < n; i++)
 *       if (fplan_next(p, &b, &err) < 0) ...      // b: plaintext of ids[i]
 *   fplan_free(p);
 */
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

/* Streams a file node's content in order through fn (which may be NULL),
 * checking size and SHA-256; tick (may be NULL) is called after each chunk
 * with its length and may stop the read by returning -1 with err set. */
typedef int (*fetch_tick_fn)(void *ud, size_t n, sm_err *err);
int fetch_node(fetcher *f, const tree_node *n, const char *what, repo_data_fn fn, void *ud,
               fetch_tick_fn tick, void *tick_ud, sm_err *err);

/* ---- restore plans ----
 * fplan_new looks every blob of the sequence up in the index, groups the
 * distinct ones by pack, sorts them by offset and merges neighbours into
 * ranges: a range is split only where the gap between two needed blobs
 * exceeds FETCH_GAP_MAX (reading the gap costs less than another request;
 * FETCH_TREE_GAP_MAX for the directory listings of a tree level from a store
 * with costly requests: the gaps hold the next levels' listings) or
 * where it would grow past FETCH_RANGE_MAX (a pack of the default 32 MiB, which
 * holds at most 32 MiB plus one chunk, is one range) or, in a store whose
 * requests cost nothing of their own (a directory, store_costly_requests()),
 * past FETCH_RANGE_MAX_LOCAL, which only saves memory. Reader threads (at most
 * FETCH_MAX_READERS) fetch the ranges with one store read each, in the order
 * the sequence first needs them, and authenticate, decompress and check every
 * blob (GCM tag, length, HMAC id) before the caller sees it.
 *
 * Memory: each reader keeps one range buffer (at most FETCH_RANGE_MAX), and
 * readers stop decrypting while the plaintext waiting for the caller exceeds
 * FETCH_PLAIN_BUDGET, so a restore needs about
 * FETCH_MAX_READERS x FETCH_RANGE_MAX + FETCH_PLAIN_BUDGET (104 MiB) whatever
 * its size (40 MiB from a directory), plus ~100 bytes per distinct chunk for
 * the plan itself. A blob used
 * again later (deduplication) is kept for its next use; when memory is short
 * and an unfetched range is needed before that next use, it is dropped and
 * read again on its own then (one more request, never more memory). */
#define FETCH_GAP_MAX (1u << 20)
#define FETCH_TREE_GAP_MAX (8u << 20) /* plans given a tree cache, with costly requests */
#define FETCH_RANGE_MAX (36u << 20)
#define FETCH_RANGE_MAX_LOCAL (4u << 20) /* stores without costly requests (directories) */
#define FETCH_PLAIN_BUDGET (32u << 20)
#define FETCH_POOL_MAX (16u << 20) /* plaintext buffers kept for reuse */
#define FETCH_MAX_READERS 2

typedef struct fplan fplan;

/* Directory listings met on the way. The readers of a plan given a tree
 * cache also open (and check) every tree blob lying inside the ranges they
 * read, so that the next levels of a tree restore find most listings
 * without reading again: listings sit between file data in packs, so the
 * ranges of one level cover most of the next levels' listings. Holds every
 * tree blob of the index by location (~60 bytes each) and the plaintext of
 * those opened. Thread-safe. */
typedef struct tcache tcache;
tcache *tcache_new(repo *r);
void tcache_free(tcache *tc);
/* The plaintext of a tree blob opened on the way, or NULL (not met, or damaged:
 * read it through a plan, which reports the damage). Valid until tcache_free. */
const sm_buf *tcache_get(tcache *tc, const blob_id *id);

/* Plans reading ids[0..n) in that order (ids may repeat; the array may be
 * freed after the call). threads as repo_threads(); tc (may be NULL)
 * collects the tree blobs met on the way. The index must be
 * loaded. A blob missing from the index fails when its turn comes, not here.
 * 0, or -1 with err set (a reader thread could not start). */
int fplan_new(fplan **out, repo *r, const blob_id *ids, size_t n, int threads, tcache *tc,
              sm_err *err);
/* The plaintext of the next blob of the sequence, checked; *out stays valid
 * until the next call or fplan_free. -1 with err naming the chunk and its
 * pack (missing, truncated, failed its MAC check, ...). */
int fplan_next(fplan *p, const sm_buf **out, sm_err *err);
/* Store reads the plan made so far (ranges plus blobs read again on their own). */
size_t fplan_reads(fplan *p);
/* Stops the readers (a range being read is finished first) and frees. NULL is fine. */
void fplan_free(fplan *p);

#endif
