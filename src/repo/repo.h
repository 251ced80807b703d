/* The repository engine: a content-addressed, deduplicated, compressed,
 * encrypted, crash-safe repository in a store (docs/FORMAT.md).
 *
 *   store *st;  repo *r;  repo_writer *w;  char id[65];
 *   store_open(&st, "/backups/abc123", &err);
 *   repo_init(st, secret, NULL, &err);               // once
 *   repo_open(&r, st, secret, &err);
 *   repo_lock(r, 1, "backup", &err);                 // writers are exclusive
 *   repo_writer_new(&w, r, NULL, &err);
 *   repo_writer_add_fd(w, "database", dump_fd, &err);
 *   repo_writer_add_tree(w, "storage", "/srv/storage", parent, &err);
 *   repo_writer_commit(w, meta, id, &err);           // the manifest is the commit point
 *   repo_writer_free(w);
 *   repo_close(r);  store_free(st);
 *
 * Snapshots are referred to by their full id, a unique prefix of at least 6
 * hex digits, or "latest".
 *
 * Thread-safety: a repo may be used by one thread at a time; the engine
 * runs its own worker threads inside writer, restore, verify and prune.
 */
#ifndef SM_REPO_REPO_H
#define SM_REPO_REPO_H

#include "core/err.h"
#include "store/store.h"

#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#define REPO_FORMAT_VERSION 1

typedef struct repo repo;
typedef struct snapshot snapshot;
typedef struct repo_writer repo_writer;

typedef struct repo_init_opts {
    uint32_t chunk_min, chunk_avg, chunk_max; /* 0: defaults */
    uint32_t pack_size;                       /* 0: default (32 MiB) */
    int compression_level;                    /* -1: default (2); 0: none; 1..19 */
} repo_init_opts;

#define REPO_INIT_OPTS_INIT {0, 0, 0, 0, -1}

/* Progress of a long operation, reported from the calling thread. */
typedef struct repo_progress {
    const char *phase;     /* "backup", "restore", "verify", "prune" */
    const char *stream;    /* current stream name */
    uint64_t bytes_done;   /* plaintext bytes read or written so far */
    uint64_t bytes_total;  /* 0 when unknown */
    uint64_t bytes_new;    /* plaintext bytes not already in the repository */
    uint64_t bytes_stored; /* bytes written to the store (after compression) */
    uint64_t files_done;
} repo_progress;

typedef void (*repo_progress_fn)(void *ud, const repo_progress *p);

/* Creates a repository in an empty store location: config and a first key
 * wrapped under secret. Fails with SM_E_EXISTS if one is there already. */
int repo_init(store *st, const char *secret, const repo_init_opts *o, sm_err *err);

/* Opens a repository. st stays the caller's and must outlive r. A missing
 * secret, a wrong one, a damaged key file and a newer format each fail with
 * their own message (SM_E_BADKEY, SM_E_CORRUPT, SM_E_VERSION). */
int repo_open(repo **out, store *st, const char *secret, sm_err *err);
/* Releases locks, stops threads and frees. NULL is fine. */
void repo_close(repo *r);

const char *repo_id(const repo *r);
store *repo_store(repo *r);
/* Compression level and chunker sizes, for reports. */
json_t *repo_config_json(const repo *r);

/* Takes a lock: exclusive for writers (backup, prune, key changes), which
 * exclude each other; shared for readers (restore, verify), which never
 * block anyone and only keep prune from deleting packs under them. A lock from a dead process on this host is removed; a lock
 * held elsewhere fails with SM_E_LOCKED naming pid, host and age. The lock
 * is refreshed in the background and released by repo_unlock/repo_close. */
int repo_lock(repo *r, int exclusive, const char *purpose, sm_err *err);
int repo_unlock(repo *r, sm_err *err);
/* `unlock`: removes stale locks (dead pid on this host, or not refreshed for
 * 30 minutes); with all, every lock. Works without the secret. */
int repo_break_locks(store *st, int all, unsigned *removed, sm_err *err);

/* ---- keys ---- */
/* Adds a key that wraps the same master key under new_secret. */
int repo_key_add(repo *r, const char *new_secret, char **key_id, sm_err *err);
/* Adds new_secret and removes the key that opened r. */
int repo_key_change(repo *r, const char *new_secret, sm_err *err);
/* Removes a key by id (or unique prefix); refuses the one in use. */
int repo_key_remove(repo *r, const char *id, sm_err *err);
/* [{id, created, hostname, current}] (caller decrefs). */
int repo_key_list(repo *r, json_t **out, sm_err *err);

/* ---- snapshots ---- */
/* All snapshots, oldest first. Caller frees each and the array. */
int repo_snapshots(repo *r, snapshot ***out, size_t *n, sm_err *err);
void repo_snapshots_free(snapshot **s, size_t n);
/* Loads one by id, unique prefix or "latest". SM_E_NOTFOUND if none. */
int repo_snapshot_load(repo *r, const char *ref, snapshot **out, sm_err *err);
/* The newest snapshot holding a stream of that name and kind ("tree" or
 * "file"; the natural parent of the next backup): 0, or 1 when none. */
int repo_snapshot_latest_with(repo *r, const char *stream, const char *kind, snapshot **out,
                              sm_err *err);
/* Deletes this repository's local cache of trees, if it has one (when the
 * repository itself goes: `project remove --purge`). */
void repo_cache_remove(repo *r);
void snapshot_free(snapshot *s);
const char *snapshot_id(const snapshot *s);
time_t snapshot_time(const snapshot *s);
/* The manifest document (borrowed; see docs/FORMAT.md "Snapshots"). */
json_t *snapshot_json(const snapshot *s);
/* The stream object of the manifest by name, or NULL. */
json_t *snapshot_stream(const snapshot *s, const char *name);

/* ---- backup ---- */
typedef struct repo_writer_opts {
    repo_progress_fn progress;
    void *progress_ud;
    volatile sig_atomic_t *cancel; /* non-zero: stop with SM_E_INTERRUPTED */
    int threads;                   /* 0: one per online CPU */
    uint64_t bytes_total;          /* expected plaintext bytes, for progress */
} repo_writer_opts;

/* Starts a backup session; needs the exclusive lock. */
int repo_writer_new(repo_writer **out, repo *r, const repo_writer_opts *o, sm_err *err);
/* A stream read from fd until EOF (a file, a pipe, stdin). */
int repo_writer_add_fd(repo_writer *w, const char *name, int fd, sm_err *err);
/* A stream read from a file. With parent (a snapshot holding a file stream
 * of the same name read from the same path), a file whose size, mtime, ctime
 * and inode are unchanged is not read again: the parent's content is reused.
 * Anything but a regular file is read like repo_writer_add_fd. */
int repo_writer_add_file(repo_writer *w, const char *name, const char *path,
                         const snapshot *parent, sm_err *err);
/* A stream pushed in pieces. */
int repo_writer_stream_begin(repo_writer *w, const char *name, sm_err *err);
int repo_writer_stream_write(repo_writer *w, const void *p, size_t n, sm_err *err);
int repo_writer_stream_end(repo_writer *w, sm_err *err);
/* A directory tree. With parent (a snapshot holding a tree stream of the
 * same name), files whose size, mtime, ctime and inode are unchanged are not
 * read again: their content list is reused. */
int repo_writer_add_tree(repo_writer *w, const char *name, const char *path,
                         const snapshot *parent, sm_err *err);
/* Flushes packs, writes the index, then the manifest (the commit point).
 * meta (borrowed, may be NULL) is stored as the manifest's "meta"; tags may
 * be NULL. id_out receives the snapshot id. */
int repo_writer_commit(repo_writer *w, json_t *meta, json_t *tags, char id_out[65], sm_err *err);
/* The streams written so far, as in the manifest (borrowed). */
json_t *repo_writer_streams(repo_writer *w);
/* Totals: plaintext read, new plaintext, bytes stored. */
void repo_writer_totals(repo_writer *w, uint64_t *read, uint64_t *fresh, uint64_t *stored);
/* Frees; an uncommitted session leaves only unreferenced packs (prune
 * removes them). */
void repo_writer_free(repo_writer *w);

/* ---- restore ---- */
typedef struct repo_restore_opts {
    repo_progress_fn progress;
    void *progress_ud;
    volatile sig_atomic_t *cancel;
    int threads;
    int allow_special; /* restore fifos and device files */
    int no_owner;      /* do not chown even as root */
} repo_restore_opts;

/* Writes a file stream's content to fd, checking every chunk and the
 * stream's SHA-256. */
int repo_restore_stream_fd(repo *r, const snapshot *s, const char *name, int fd,
                           const repo_restore_opts *o, sm_err *err);
/* Restores a tree stream into target, which must not exist or be an empty
 * directory. Files, modes, owners (as root), times, xattrs, symlinks, hard
 * links, empty directories; the tree digest is checked at the end. */
int repo_restore_tree(repo *r, const snapshot *s, const char *name, const char *target,
                      const repo_restore_opts *o, sm_err *err);
/* Restores every stream of s under target/<name>. */
int repo_restore_all(repo *r, const snapshot *s, const char *target, const repo_restore_opts *o,
                     sm_err *err);

/* ---- verify ---- */
typedef void (*repo_report_fn)(void *ud, const char *line);

typedef struct repo_verify_opts {
    int read_all;               /* read every pack in full as well */
    const char *const *refs;    /* snapshots to check (NULL: all) */
    size_t nrefs;
    repo_report_fn report;      /* one line per problem found */
    void *report_ud;
    repo_progress_fn progress;
    void *progress_ud;
    int threads;
} repo_verify_opts;

typedef struct repo_verify_result {
    unsigned snapshots;
    unsigned snapshots_damaged;
    unsigned problems;
    uint64_t blobs_checked;
    uint64_t bytes_checked;
} repo_verify_result;

/* Returns 0 when everything checked is intact, -1 otherwise (err names the
 * first problem; report gets every one). */
int repo_verify(repo *r, const repo_verify_opts *o, repo_verify_result *res, sm_err *err);

/* ---- prune ---- */
typedef struct repo_prune_opts {
    int keep_last;            /* keep the N newest snapshots (0: keep all) */
    const char *const *forget; /* snapshot refs to remove */
    size_t nforget;
    int dry_run;
    unsigned repack_percent;  /* repack packs with more garbage than this (default 50) */
    repo_report_fn report;
    void *report_ud;
} repo_prune_opts;

typedef struct repo_prune_result {
    unsigned snapshots_removed;
    unsigned packs_deleted;
    unsigned packs_repacked;
    unsigned packs_written;
    unsigned orphans_removed;
    uint64_t bytes_freed;
    uint64_t bytes_before;
    uint64_t bytes_after;
} repo_prune_result;

/* Needs the exclusive lock. Deletes manifests first, then writes the new
 * index, then deletes packs: a crash at any point leaves a valid repository. */
int repo_prune(repo *r, const repo_prune_opts *o, repo_prune_result *res, sm_err *err);

/* ---- stats ---- */
/* {snapshots, packs, blobs, stored_bytes, raw_bytes (unique plaintext),
 *  logical_bytes (sum over snapshots), dedup_ratio, compression_ratio}. */
int repo_stats(repo *r, json_t **out, sm_err *err);

/* ---- reading trees (for listings and archives) ---- */
struct tree_node;
typedef int (*repo_walk_fn)(void *ud, const char *path, const struct tree_node *node, sm_err *err);
/* Calls fn for every entry of a tree stream, depth-first, name-sorted;
 * path is relative ("a/b.txt"). */
int repo_tree_walk(repo *r, const snapshot *s, const char *stream, repo_walk_fn fn, void *ud,
                   sm_err *err);
typedef int (*repo_data_fn)(void *ud, const void *p, size_t n, sm_err *err);
/* Streams a file node's (or a file stream's) content to fn, verified. */
int repo_read_node(repo *r, const struct tree_node *node, repo_data_fn fn, void *ud, sm_err *err);
int repo_read_stream(repo *r, const snapshot *s, const char *stream, repo_data_fn fn, void *ud,
                     sm_err *err);

/* The same with one set of reader threads kept across calls (for reading
 * many files, e.g. writing an archive). */
typedef struct repo_reader repo_reader;
int repo_reader_new(repo_reader **out, repo *r, int threads, sm_err *err);
int repo_reader_read_node(repo_reader *rr, const struct tree_node *node, repo_data_fn fn, void *ud,
                          sm_err *err);
void repo_reader_free(repo_reader *rr);

#endif
