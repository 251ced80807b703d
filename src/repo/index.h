/* The blob index: blob id -> (pack, offset, length). In memory it is one
 * open-addressing hash table of fixed-size entries (52 bytes a blob), so a
 * repository of a million blobs needs about 60 MB, whatever else it holds.
 * On disk it is a set of encrypted index files (see docs/FORMAT.md).
 *
 * Thread-safety: every function takes the index's mutex; entries returned
 * by index_get are copies.
 */
#ifndef SM_REPO_INDEX_H
#define SM_REPO_INDEX_H

#include "core/buf.h"
#include "core/err.h"
#include "repo/crypto.h"

#include <pthread.h>
#include <stdint.h>

#define BLOB_DATA 0
#define BLOB_TREE 1
#define BLOB_FLAG_ZSTD 1

#define INDEX_PENDING UINT32_MAX

typedef struct index_entry {
    blob_id id;
    uint32_t pack; /* pack number, or INDEX_PENDING while being written */
    uint32_t off;  /* offset of the sealed blob in its pack */
    uint32_t len;  /* sealed length (nonce + ciphertext + tag) */
    uint32_t raw_len;
    uint8_t type;
    uint8_t flags;
    uint8_t mark; /* scratch bit for verify and prune */
    uint8_t pad;
} index_entry;

typedef struct index_pack {
    unsigned char id[32];
    uint64_t size;      /* bytes of blobs listed (sum of len), header excluded */
    uint64_t used;      /* scratch for prune */
    uint32_t nblobs;    /* blobs listed for this pack in index files */
    uint32_t dups;      /* listed blobs whose id lives in another pack */
    uint8_t state;      /* scratch */
} index_pack;

/* One blob as listed in a pack header or an index file. */
typedef struct pack_blob {
    blob_id id;
    uint8_t type;
    uint8_t flags;
    uint32_t off;
    uint32_t len;
    uint32_t raw_len;
} pack_blob;

typedef struct repo_index repo_index;

repo_index *index_new(void);
void index_free(repo_index *idx);

/* Registers a pack id (or finds it) and returns its number. */
uint32_t index_pack_add(repo_index *idx, const unsigned char id[32]);
/* Number of packs; pack n's record (pointer valid until the next pack_add). */
uint32_t index_pack_count(const repo_index *idx);
index_pack *index_pack_at(repo_index *idx, uint32_t n);
/* Finds a pack by id: 0 and *n, or 1 when absent. */
int index_pack_find(const repo_index *idx, const unsigned char id[32], uint32_t *n);

/* Atomically: if id is known (stored or pending) returns 1; otherwise
 * inserts it as pending and returns 0, making the caller its writer. */
int index_claim(repo_index *idx, const blob_id *id, uint8_t type);
/* Records where a blob lives. A blob already stored elsewhere keeps its
 * first location and the pack's dups count grows. */
void index_put(repo_index *idx, uint32_t pack, const pack_blob *b);
/* Moves a blob to a new location (repacking); keeps its mark. */
void index_relocate(repo_index *idx, uint32_t pack, const pack_blob *b);
/* Copies the entry for id into *out: 0, or 1 when absent. */
int index_get(const repo_index *idx, const blob_id *id, index_entry *out);
/* Number of entries; entry i (for iteration without concurrent writers). */
size_t index_count(const repo_index *idx);
index_entry *index_entry_at(repo_index *idx, size_t i);
/* Sets the mark of id's entry; returns the previous mark, or -1 if absent. */
int index_mark(repo_index *idx, const blob_id *id, uint8_t mark);
void index_clear_marks(repo_index *idx);

/* Serialises the blobs of the given packs (all entries whose pack is in the
 * list) as an index file body (plaintext, see docs/FORMAT.md). */
void index_encode(repo_index *idx, const uint32_t *packs, size_t npacks, sm_buf *out);
/* Parses an index file body and merges it into idx. */
int index_decode(repo_index *idx, const unsigned char *p, size_t n, const char *name, sm_err *err);

/* Pack headers (plaintext, before sealing). */
void pack_header_encode(const pack_blob *blobs, size_t n, sm_buf *out);
int pack_header_decode(const unsigned char *p, size_t n, pack_blob **blobs, size_t *nblobs,
                       const char *name, sm_err *err);

#endif
