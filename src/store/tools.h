/* Tools over any store: a permission check and a copy between stores.
 *
 *   store_check(st, print_step, NULL, &err);       // write, read, list, delete a probe
 *   store_copy(src, dst, &opts, &stats, &err);     // resumable, safe order
 */
#ifndef SM_STORE_TOOLS_H
#define SM_STORE_TOOLS_H

#include "store/store.h"

/* Called once per step ("write", "read", "list", "delete") with its
 * outcome: ok 1, ok 0 with err set, or ok -1 when skipped because an
 * earlier step failed (detail says why). */
typedef void (*store_check_cb)(const char *step, int ok, const char *detail, const sm_err *err,
                               void *ud);

/* Writes a small probe object under "check/", reads it back and compares
 * it, lists "check/" and expects it there, deletes it and expects it gone.
 * Every step is reported through cb. Returns 0 when every step passed, or
 * -1 with err set to the first failure. Leaves no object behind unless the
 * delete itself fails. */
int store_check(store *st, store_check_cb cb, void *ud, sm_err *err);

/* The verdict of a check, as `supamanager store check` and the API's
 * POST /platform/projects/{id}/store/check say it. */
#define STORE_CHECK_USABLE "the store is usable: write, read, list and delete all work"
#define STORE_CHECK_UNUSABLE "the store is NOT usable for backups"

typedef struct store_copy_stats {
    unsigned long long copied, skipped;   /* objects */
    unsigned long long bytes_copied;
} store_copy_stats;

/* Progress of a copy: called after each object copied or skipped. */
typedef void (*store_copy_cb)(const char *key, uint64_t size, int skipped, void *ud);

/* Copies a repository's objects from src to dst (not locks, not temporary
 * objects). Objects already at dst with the same size are skipped, so an
 * interrupted copy resumes where it stopped. The order keeps dst a valid
 * repository whenever it has a config: keys, then config, then packs
 * (data/), then index/, then snapshots/ last, so no snapshot is there
 * before the data it refers to. A dst holding a different repository
 * (another config) is refused with SM_E_EXISTS. parallel objects are
 * copied at a time within each step (1 when 0). 0, or -1 with err set. */
int store_copy(store *src, store *dst, unsigned parallel, store_copy_cb cb, void *ud,
               store_copy_stats *stats, sm_err *err);

#endif
