/* Internal to the repository engine (src/repo/). */
#ifndef SM_REPO_INTERN_H
#define SM_REPO_INTERN_H

#include "core/buf.h"
#include "repo/chunker.h"
#include "repo/crypto.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "repo/tree.h"

#include <pthread.h>
#include <zstd.h>

#define REPO_DEFAULT_PACK_SIZE (32u * 1024 * 1024)
#define REPO_MAX_PACK_SIZE (512u * 1024 * 1024)
#define REPO_DEFAULT_ZLEVEL 2
#define REPO_MAX_FILE_BYTES (1024u * 1024 * 1024) /* index and snapshot files */
#define REPO_INDEX_FLUSH_PACKS 64  /* a running backup writes an index every N packs */
#define REPO_INDEX_FILE_PACKS 4096 /* prune writes index files of up to N packs */
#define REPO_LOCK_REFRESH_S 300
#define REPO_LOCK_STALE_S 1800

/* Shared message texts. */
#define MSG_MAC_FAIL "failed its MAC check"

struct repo {
    store *st;
    repo_keys keys;
    char *key_name; /* "keys/<id>" of the key that opened it */
    char id[33];
    int version;
    chunker_params cp;
    uint32_t pack_size;
    int zlevel;
    crypto_ctx *cc; /* for the calling thread */
    repo_index *idx;
    char **index_files; /* keys of the index files idx was loaded from */
    size_t nindex_files;
    /* lock */
    char *lock_key;
    int lock_exclusive;
    char *lock_doc;
    pthread_t lock_thread;
    int lock_thread_on;
    int lock_stop;
    pthread_mutex_t lock_mu;
    pthread_cond_t lock_cv;
    char *cache_dir; /* local cache of sealed tree blobs (cache.c); NULL: none */
};

struct snapshot {
    char id[65];
    json_t *doc;
    time_t time;
    int64_t time_ns;
};

/* Per-thread context for reading blobs. */
typedef struct blob_reader {
    repo *r;
    crypto_ctx *cc;
    ZSTD_DCtx *dctx;
    sm_buf sealed;
    sm_buf plain;
} blob_reader;

void blob_reader_init(blob_reader *br, repo *r);
void blob_reader_release(blob_reader *br);
/* Reads, authenticates, decompresses and checks the id of a blob; out gets
 * the plaintext. Messages name the blob and its pack. */
int blob_read(blob_reader *br, const blob_id *id, sm_buf *out, sm_err *err);
/* Authenticates (GCM), decompresses and checks (length, HMAC id) the sealed
 * bytes of the blob e, as read from its pack; out gets the plaintext.
 * Messages name the blob and its pack. */
int blob_open(blob_reader *br, const index_entry *e, const unsigned char *sealed, size_t len,
              sm_buf *out, sm_err *err);
/* blob_read from the local cache of trees only: 0 with out, or -1 (not a
 * tree, not cached, or damaged there: then dropped from the cache). */
int blob_read_cached(blob_reader *br, const blob_id *id, sm_buf *out);
/* Loads a tree blob. */
int tree_load(blob_reader *br, const blob_id *id, tree *out, sm_err *err);

/* The local cache of tree blobs (cache.c), for stores with costly requests:
 * entries are the sealed blobs as in their packs, checked on every read. */
void repo_cache_init(repo *r);
/* 1 and sealed filled (len bytes) when the cache holds hex; 0 otherwise. */
int repo_cache_get(repo *r, const char *hex, uint32_t len, sm_buf *sealed);
void repo_cache_put(repo *r, const char *hex, const void *p, size_t n);
void repo_cache_drop(repo *r, const char *hex);
/* Removes the entries of blobs no longer in the index, and with marked_only
 * those not marked either (prune marks what the kept snapshots use). */
void repo_cache_trim(repo *r, int marked_only);

/* "data/ab/abcdef..." for a pack id (out: at least 76 bytes). */
void pack_key(char *out, size_t cap, const unsigned char id[32]);
int pack_key_parse(const char *key, unsigned char id[32]);

/* Encrypted files (index, snapshots): sealed(version byte, compression byte,
 * payload); named by the SHA-256 of the stored bytes. */
int repo_file_save(repo *r, crypto_ctx *cc, const char *dir, const void *p, size_t n,
                   char id_out[65], sm_err *err);
int repo_file_load(repo *r, const char *key, sm_buf *out, sm_err *err);

/* Loads every index file (once). */
int repo_index_ensure(repo *r, sm_err *err);
/* Forgets the in-memory index (after a failed writer, or before prune). */
void repo_index_drop(repo *r);
/* Writes one index file listing the given packs. */
int repo_index_write(repo *r, crypto_ctx *cc, const uint32_t *packs, size_t n, char id_out[65],
                     sm_err *err);

/* Seals a pack buffer: appends the encrypted header and its length, then
 * stores it as data/xx/<sha256> and registers it in the index (with
 * relocate, its blobs' index entries move to it: used by repacking). */
int pack_seal_store(repo *r, crypto_ctx *cc, sm_buf *pack, const pack_blob *blobs, size_t n,
                    int relocate, uint32_t *pack_no, sm_err *err);

/* Key files (keys.c). */
int key_write(store *st, const char *secret, const repo_keys *keys, char **key_name, sm_err *err);
int key_unlock(store *st, const char *secret, repo_keys *out, char **key_name, sm_err *err);

/* Whether other processes hold shared (reader) locks. */
int repo_has_readers(repo *r, int *yes, sm_err *err);

/* Parses a snapshot manifest. */
int snapshot_parse(snapshot **out, const char *id, const unsigned char *p, size_t n, sm_err *err);

/* Tree node <-> JSON (as inside tree blobs); any_name allows the stream
 * root's name. */
json_t *tree_node_to_json(const tree_node *n);
int tree_node_from_json(tree_node *n, json_t *o, const char *what, sm_err *err);

/* Thread count for pipelines: o_threads if > 0, else online CPUs (1..16). */
int repo_threads(int o_threads);

/* Is this buffer all zero bytes? */
int mem_is_zero(const unsigned char *p, size_t n);

#endif
