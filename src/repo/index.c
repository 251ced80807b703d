#include "repo/index.h"

#include "core/mem.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

#define INDEX_MAGIC "SMIX"
#define INDEX_VERSION 1
#define PACKHDR_MAGIC "SMPK"
#define PACKHDR_VERSION 1
#define BLOB_RECORD 46 /* type, flags, id[32], off, len, raw_len */

struct repo_index {
    pthread_mutex_t mu;
    index_entry *entries;
    size_t n, cap;
    uint32_t *slots; /* entry number + 1, 0 = empty */
    size_t nslots;   /* power of two */
    index_pack *packs;
    size_t npacks, packcap;
    uint32_t *pslots; /* pack number + 1 */
    size_t npslots;
};

static uint64_t hash64(const unsigned char *id)
{
    uint64_t h;
    memcpy(&h, id, sizeof(h)); /* ids are HMAC/SHA-256 output: already uniform */
    return h;
}

repo_index *index_new(void)
{
    repo_index *idx = sm_xcalloc(1, sizeof(*idx));
    pthread_mutex_init(&idx->mu, NULL);
    idx->nslots = 1024;
    idx->slots = sm_xcalloc(idx->nslots, sizeof(*idx->slots));
    idx->npslots = 64;
    idx->pslots = sm_xcalloc(idx->npslots, sizeof(*idx->pslots));
    return idx;
}

void index_free(repo_index *idx)
{
    if (!idx)
        return;
    pthread_mutex_destroy(&idx->mu);
    free(idx->entries);
    free(idx->slots);
    free(idx->packs);
    free(idx->pslots);
    free(idx);
}

static size_t find_slot(const repo_index *idx, const blob_id *id)
{
    size_t mask = idx->nslots - 1;
    size_t i = (size_t)hash64(id->b) & mask;

    for (;;) {
        uint32_t s = idx->slots[i];
        if (s == 0 || blob_id_eq(&idx->entries[s - 1].id, id))
            return i;
        i = (i + 1) & mask;
    }
}

static void rehash(repo_index *idx)
{
    size_t nn = idx->nslots * 2;
    uint32_t *ns = sm_xcalloc(nn, sizeof(*ns));

    for (size_t e = 0; e < idx->n; e++) {
        size_t i = (size_t)hash64(idx->entries[e].id.b) & (nn - 1);
        while (ns[i])
            i = (i + 1) & (nn - 1);
        ns[i] = (uint32_t)(e + 1);
    }
    free(idx->slots);
    idx->slots = ns;
    idx->nslots = nn;
}

/* Caller holds mu. Returns the entry, inserting a zeroed one if absent. */
static index_entry *insert_locked(repo_index *idx, const blob_id *id, int *existed)
{
    size_t i;

    if ((idx->n + 1) * 10 > idx->nslots * 7)
        rehash(idx);
    i = find_slot(idx, id);
    if (idx->slots[i]) {
        *existed = 1;
        return &idx->entries[idx->slots[i] - 1];
    }
    *existed = 0;
    SM_GROW(idx->entries, idx->cap, idx->n + 1);
    memset(&idx->entries[idx->n], 0, sizeof(index_entry));
    idx->entries[idx->n].id = *id;
    idx->slots[i] = (uint32_t)(idx->n + 1);
    return &idx->entries[idx->n++];
}

static int pack_find_locked(const repo_index *idx, const unsigned char id[32], size_t *slot)
{
    size_t mask = idx->npslots - 1;
    size_t i = (size_t)hash64(id) & mask;

    for (;;) {
        uint32_t s = idx->pslots[i];
        if (s == 0) {
            *slot = i;
            return 1;
        }
        if (!memcmp(idx->packs[s - 1].id, id, 32)) {
            *slot = i;
            return 0;
        }
        i = (i + 1) & mask;
    }
}

static uint32_t pack_add_locked(repo_index *idx, const unsigned char id[32])
{
    size_t slot;

    if ((idx->npacks + 1) * 10 > idx->npslots * 7) {
        size_t nn = idx->npslots * 2;
        uint32_t *ns = sm_xcalloc(nn, sizeof(*ns));
        for (size_t p = 0; p < idx->npacks; p++) {
            size_t i = (size_t)hash64(idx->packs[p].id) & (nn - 1);
            while (ns[i])
                i = (i + 1) & (nn - 1);
            ns[i] = (uint32_t)(p + 1);
        }
        free(idx->pslots);
        idx->pslots = ns;
        idx->npslots = nn;
    }
    if (pack_find_locked(idx, id, &slot) == 0)
        return idx->pslots[slot] - 1;
    SM_GROW(idx->packs, idx->packcap, idx->npacks + 1);
    memset(&idx->packs[idx->npacks], 0, sizeof(index_pack));
    memcpy(idx->packs[idx->npacks].id, id, 32);
    idx->pslots[slot] = (uint32_t)(idx->npacks + 1);
    return (uint32_t)idx->npacks++;
}

uint32_t index_pack_add(repo_index *idx, const unsigned char id[32])
{
    uint32_t n;
    pthread_mutex_lock(&idx->mu);
    n = pack_add_locked(idx, id);
    pthread_mutex_unlock(&idx->mu);
    return n;
}

uint32_t index_pack_count(const repo_index *idx)
{
    return (uint32_t)idx->npacks;
}

index_pack *index_pack_at(repo_index *idx, uint32_t n)
{
    return n < idx->npacks ? &idx->packs[n] : NULL;
}

int index_pack_find(const repo_index *idx, const unsigned char id[32], uint32_t *n)
{
    size_t slot;
    int rc;
    pthread_mutex_lock((pthread_mutex_t *)&idx->mu);
    rc = pack_find_locked(idx, id, &slot);
    if (rc == 0)
        *n = idx->pslots[slot] - 1;
    pthread_mutex_unlock((pthread_mutex_t *)&idx->mu);
    return rc;
}

int index_claim(repo_index *idx, const blob_id *id, uint8_t type)
{
    int existed;
    index_entry *e;

    pthread_mutex_lock(&idx->mu);
    e = insert_locked(idx, id, &existed);
    if (!existed) {
        e->pack = INDEX_PENDING;
        e->type = type;
    }
    pthread_mutex_unlock(&idx->mu);
    return existed;
}

static void put_locked(repo_index *idx, uint32_t pack, const pack_blob *b)
{
    int existed;
    index_entry *e = insert_locked(idx, &b->id, &existed);

    idx->packs[pack].nblobs++;
    idx->packs[pack].size += b->len;
    if (existed && e->pack != INDEX_PENDING && e->pack != pack) {
        idx->packs[pack].dups++;
        return;
    }
    e->pack = pack;
    e->off = b->off;
    e->len = b->len;
    e->raw_len = b->raw_len;
    e->type = b->type;
    e->flags = b->flags;
}

void index_put(repo_index *idx, uint32_t pack, const pack_blob *b)
{
    pthread_mutex_lock(&idx->mu);
    put_locked(idx, pack, b);
    pthread_mutex_unlock(&idx->mu);
}

void index_relocate(repo_index *idx, uint32_t pack, const pack_blob *b)
{
    int existed;
    index_entry *e;

    pthread_mutex_lock(&idx->mu);
    e = insert_locked(idx, &b->id, &existed);
    idx->packs[pack].nblobs++;
    idx->packs[pack].size += b->len;
    e->pack = pack;
    e->off = b->off;
    e->len = b->len;
    e->raw_len = b->raw_len;
    e->type = b->type;
    e->flags = b->flags;
    pthread_mutex_unlock(&idx->mu);
}

int index_get(const repo_index *idx, const blob_id *id, index_entry *out)
{
    size_t i;
    int rc = 1;

    pthread_mutex_lock((pthread_mutex_t *)&idx->mu);
    i = find_slot(idx, id);
    if (idx->slots[i]) {
        *out = idx->entries[idx->slots[i] - 1];
        rc = 0;
    }
    pthread_mutex_unlock((pthread_mutex_t *)&idx->mu);
    return rc;
}

size_t index_count(const repo_index *idx)
{
    return idx->n;
}

index_entry *index_entry_at(repo_index *idx, size_t i)
{
    return i < idx->n ? &idx->entries[i] : NULL;
}

int index_mark(repo_index *idx, const blob_id *id, uint8_t mark)
{
    size_t i;
    int prev = -1;

    pthread_mutex_lock(&idx->mu);
    i = find_slot(idx, id);
    if (idx->slots[i]) {
        index_entry *e = &idx->entries[idx->slots[i] - 1];
        prev = e->mark;
        e->mark = mark;
    }
    pthread_mutex_unlock(&idx->mu);
    return prev;
}

void index_clear_marks(repo_index *idx)
{
    pthread_mutex_lock(&idx->mu);
    for (size_t i = 0; i < idx->n; i++)
        idx->entries[i].mark = 0;
    pthread_mutex_unlock(&idx->mu);
}

static void put_blob_record(sm_buf *out, const pack_blob *b)
{
    sm_buf_put_u8(out, b->type);
    sm_buf_put_u8(out, b->flags);
    sm_buf_put(out, b->id.b, BLOB_ID_LEN);
    sm_buf_put_u32le(out, b->off);
    sm_buf_put_u32le(out, b->len);
    sm_buf_put_u32le(out, b->raw_len);
}

static int get_blob_record(const unsigned char *p, size_t n, size_t *off, pack_blob *b)
{
    if (sm_get_u8(p, n, off, &b->type) < 0 || sm_get_u8(p, n, off, &b->flags) < 0 ||
        sm_get_bytes(p, n, off, b->id.b, BLOB_ID_LEN) < 0 || sm_get_u32le(p, n, off, &b->off) < 0 ||
        sm_get_u32le(p, n, off, &b->len) < 0 || sm_get_u32le(p, n, off, &b->raw_len) < 0)
        return -1;
    if (b->type > BLOB_TREE || (b->flags & ~BLOB_FLAG_ZSTD) != 0)
        return -1;
    return 0;
}

static const repo_index *sort_idx; /* only used under the index mutex */

static int cmp_by_pack(const void *a, const void *b)
{
    const index_entry *x = &sort_idx->entries[*(const uint32_t *)a];
    const index_entry *y = &sort_idx->entries[*(const uint32_t *)b];
    if (x->pack != y->pack)
        return x->pack < y->pack ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

void index_encode(repo_index *idx, const uint32_t *packs, size_t npacks, sm_buf *out)
{
    unsigned char *want;
    uint32_t *sel;
    size_t nsel = 0, j;

    pthread_mutex_lock(&idx->mu);
    want = sm_xcalloc(idx->npacks ? idx->npacks : 1, 1);
    for (size_t k = 0; k < npacks; k++)
        want[packs[k]] = 1;
    sel = sm_xmalloc((idx->n ? idx->n : 1) * sizeof(*sel));
    for (size_t i = 0; i < idx->n; i++)
        if (idx->entries[i].pack != INDEX_PENDING && want[idx->entries[i].pack])
            sel[nsel++] = (uint32_t)i;
    sort_idx = idx;
    qsort(sel, nsel, sizeof(*sel), cmp_by_pack);
    sm_buf_put(out, INDEX_MAGIC, 4);
    sm_buf_put_u8(out, INDEX_VERSION);
    sm_buf_put_u32le(out, (uint32_t)npacks);
    for (size_t k = 0; k < npacks; k++) {
        uint32_t pn = packs[k];
        size_t first;
        /* packs[] need not be sorted: binary-search this pack's run in sel */
        size_t lo = 0, hi = nsel;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (idx->entries[sel[mid]].pack < pn)
                lo = mid + 1;
            else
                hi = mid;
        }
        first = j = lo;
        while (j < nsel && idx->entries[sel[j]].pack == pn)
            j++;
        sm_buf_put(out, idx->packs[pn].id, 32);
        sm_buf_put_u32le(out, (uint32_t)(j - first));
        for (size_t i = first; i < j; i++) {
            const index_entry *e = &idx->entries[sel[i]];
            pack_blob b;
            b.id = e->id;
            b.type = e->type;
            b.flags = e->flags;
            b.off = e->off;
            b.len = e->len;
            b.raw_len = e->raw_len;
            put_blob_record(out, &b);
        }
    }
    free(sel);
    free(want);
    pthread_mutex_unlock(&idx->mu);
}

int index_decode(repo_index *idx, const unsigned char *p, size_t n, const char *name, sm_err *err)
{
    size_t off = 0;
    uint8_t ver;
    uint32_t npacks;
    int rc = -1;

    if (n < 9 || memcmp(p, INDEX_MAGIC, 4) != 0)
        return sm_err_set(err, SM_E_CORRUPT, "index file '%s' is damaged: bad magic", name);
    off = 4;
    sm_get_u8(p, n, &off, &ver);
    if (ver != INDEX_VERSION)
        return sm_err_set(err, SM_E_VERSION, "index file '%s' has unknown version %u", name, ver);
    sm_get_u32le(p, n, &off, &npacks);
    pthread_mutex_lock(&idx->mu);
    for (uint32_t k = 0; k < npacks; k++) {
        unsigned char pid[32];
        uint32_t nb, pn;
        if (sm_get_bytes(p, n, &off, pid, 32) < 0 || sm_get_u32le(p, n, &off, &nb) < 0 ||
            (size_t)nb > (n - off) / BLOB_RECORD) {
            sm_err_set(err, SM_E_CORRUPT, "index file '%s' is damaged: truncated", name);
            goto out;
        }
        pn = pack_add_locked(idx, pid);
        for (uint32_t i = 0; i < nb; i++) {
            pack_blob b;
            if (get_blob_record(p, n, &off, &b) < 0) {
                sm_err_set(err, SM_E_CORRUPT, "index file '%s' is damaged: bad blob record",
                           name);
                goto out;
            }
            put_locked(idx, pn, &b);
        }
    }
    if (off != n) {
        sm_err_set(err, SM_E_CORRUPT, "index file '%s' is damaged: trailing bytes", name);
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&idx->mu);
    return rc;
}

void pack_header_encode(const pack_blob *blobs, size_t n, sm_buf *out)
{
    sm_buf_put(out, PACKHDR_MAGIC, 4);
    sm_buf_put_u8(out, PACKHDR_VERSION);
    sm_buf_put_u32le(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_blob_record(out, &blobs[i]);
}

int pack_header_decode(const unsigned char *p, size_t n, pack_blob **blobs, size_t *nblobs,
                       const char *name, sm_err *err)
{
    size_t off = 4;
    uint8_t ver;
    uint32_t count;
    pack_blob *arr;

    if (n < 9 || memcmp(p, PACKHDR_MAGIC, 4) != 0)
        return sm_err_set(err, SM_E_CORRUPT, "pack '%s' has a damaged header", name);
    sm_get_u8(p, n, &off, &ver);
    if (ver != PACKHDR_VERSION)
        return sm_err_set(err, SM_E_VERSION, "pack '%s' has unknown header version %u", name, ver);
    sm_get_u32le(p, n, &off, &count);
    if ((size_t)count != (n - off) / BLOB_RECORD || (n - off) % BLOB_RECORD != 0)
        return sm_err_set(err, SM_E_CORRUPT, "pack '%s' has a damaged header", name);
    arr = sm_xcalloc(count ? count : 1, sizeof(*arr));
    for (uint32_t i = 0; i < count; i++) {
        if (get_blob_record(p, n, &off, &arr[i]) < 0) {
            free(arr);
            return sm_err_set(err, SM_E_CORRUPT, "pack '%s' has a damaged header", name);
        }
    }
    *blobs = arr;
    *nblobs = count;
    return 0;
}
