/* The store: where a repository's objects live. A small interface (put, get
 * with a byte range, stat, list by prefix, delete) with one driver per kind
 * of storage; nothing above it knows which driver is in use.
 *
 *   store *st = NULL;
 *   if (store_open(&st, "/var/lib/supamanager/backups/abc123", &err) < 0) ...
 *   store_put(st, "snapshots/ab12...", data, len, &err);
 *   store_free(st);
 *
 * Keys are relative, '/'-separated, made of [A-Za-z0-9._-] segments; they
 * never start with '/' and never contain "..". Objects are immutable once
 * written except "locks/..." which may be rewritten.
 *
 * Thread-safety: all calls may be made concurrently from several threads on
 * one store.
 */
#ifndef SM_STORE_STORE_H
#define SM_STORE_STORE_H

#include "core/buf.h"
#include "core/err.h"

#include <stdint.h>

typedef struct store store;

/* Called once per object under the prefix, in no particular order. A
 * non-zero return stops the listing and is returned by store_list (with err
 * set by the callback when negative). */
typedef int (*store_list_cb)(const char *key, uint64_t size, void *ud, sm_err *err);

/* Opens a store from a location: a directory path (absolute or relative),
 * "file://PATH", or "s3://BUCKET[/PREFIX][?settings]" (store/s3.h). The
 * directory need not exist yet (store_put creates it); a bucket must. */
int store_open(store **out, const char *location, sm_err *err);
void store_free(store *st);

/* Writes an object atomically and durably: after success it survives a
 * crash; a crash during the call leaves either nothing or the whole object. */
int store_put(store *st, const char *key, const void *data, size_t len, sm_err *err);

/* Like store_put, but durability may be deferred until store_flush: the
 * object is complete or absent after a crash, but may be absent even though
 * the call returned. Used for packs, which are flushed before the index that
 * lists them is written. */
int store_put_deferred(store *st, const char *key, const void *data, size_t len, sm_err *err);
/* Makes every deferred put of this store durable. */
int store_flush(store *st, sm_err *err);

/* Reads len bytes from offset off (len 0 = to the end) into out (replacing
 * its content). A missing object fails with SM_E_NOTFOUND; a short object
 * fails with SM_E_CORRUPT. */
int store_get(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out, sm_err *err);

/* Like store_get, for a caller that plans its reads itself (a restore plan
 * reading whole ranges of packs): the driver reads exactly the range, with
 * no read-ahead of its own and nothing kept. */
int store_get_planned(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out,
                      sm_err *err);

/* Returns 0 and the size when present, 1 when absent, -1 on error. */
int store_stat(store *st, const char *key, uint64_t *size, sm_err *err);

/* Lists objects whose keys start with prefix (a "directory" ending in '/',
 * or "" for all). Temporary files of interrupted writes are not listed. */
int store_list(store *st, const char *prefix, store_list_cb cb, void *ud, sm_err *err);

/* Deletes an object; a missing one is not an error. */
int store_delete(store *st, const char *key, sm_err *err);

/* Removes leftovers of interrupted writes (temporary files of dead
 * processes). Returns the number removed in *removed. */
int store_cleanup(store *st, unsigned *removed, sm_err *err);

/* Free bytes at the store, when the driver can tell: 0 and *bytes, or 1
 * when unknown (object stores). */
int store_free_space(store *st, uint64_t *bytes, sm_err *err);

/* 1 when every request has a cost of its own (object storage: a round trip,
 * a per-request charge), so that a reader of many pieces of one object
 * should fetch them with one large read; 0 for a directory, where small
 * reads are cheap and large ones only cost memory. */
int store_costly_requests(const store *st);

/* Human-readable location for messages ("/path" or "s3://bucket/prefix"). */
const char *store_location(const store *st);

/* Checks a key's syntax; 0 or -1 with err set. */
int store_key_check(const char *key, sm_err *err);

#endif
