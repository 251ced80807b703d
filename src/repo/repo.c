/* Opening a repository, its config, encrypted files, the index, snapshots
 * and blob reading. */
#include "repo/repo.intern.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_KEY "config"
#define CONFIG_FORMAT "supamanager-repository"
#define FILE_VERSION 1
#define FILE_RAW 0
#define FILE_ZSTD 1

int repo_threads(int o_threads)
{
    long n;

    if (o_threads > 0)
        return o_threads;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > 16)
        n = 16;
    return (int)n;
}

int mem_is_zero(const unsigned char *p, size_t n)
{
    static const unsigned char zero[4096];

    while (n >= sizeof(zero)) {
        if (memcmp(p, zero, sizeof(zero)) != 0)
            return 0;
        p += sizeof(zero);
        n -= sizeof(zero);
    }
    return n == 0 || memcmp(p, zero, n) == 0;
}

void pack_key(char *out, size_t cap, const unsigned char id[32])
{
    char hex[65];
    sm_hex(hex, id, 32);
    snprintf(out, cap, "data/%.2s/%s", hex, hex);
}

int pack_key_parse(const char *key, unsigned char id[32])
{
    /* data/ab/<64 hex> */
    if (strlen(key) != 5 + 3 + 64 || strncmp(key, "data/", 5) != 0 || key[7] != '/' ||
        strncmp(key + 5, key + 8, 2) != 0)
        return -1;
    return sm_unhex(id, key + 8, 32);
}

/* ---- config ---- */

static json_t *config_doc(const repo_init_opts *o, const char *id, const chunker_params *cp,
                          uint32_t pack_size, int zlevel)
{
    char created[32];
    (void)o;
    sm_time_iso(created, sizeof(created), sm_now());
    return json_pack("{s:s,s:i,s:s,s:s,s:{s:s,s:i,s:i,s:i},s:i,s:{s:s,s:i}}", "format",
                     CONFIG_FORMAT, "version", REPO_FORMAT_VERSION, "id", id, "created", created,
                     "chunker", "algorithm", "fastcdc", "min", (int)cp->min, "avg", (int)cp->avg,
                     "max", (int)cp->max, "pack_size", (int)pack_size, "compression",
                     "algorithm", "zstd", "level", zlevel);
}

int repo_init(store *st, const char *secret, const repo_init_opts *o, sm_err *err)
{
    repo_init_opts def = REPO_INIT_OPTS_INIT;
    repo_keys keys;
    chunker_params cp;
    uint32_t pack_size;
    int zlevel, r;
    char *id = NULL, *text = NULL, *key_name = NULL;
    json_t *doc = NULL;
    int rc = -1;

    if (!o)
        o = &def;
    if (!secret || !*secret) {
        sm_err_set(err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
        return sm_err_hint(err, "Set ENCRYPTION_SECRET to a long random secret and keep a copy "
                                "somewhere safe: without it the backups cannot be read.");
    }
    cp.min = o->chunk_min ? o->chunk_min : CHUNKER_DEFAULT_MIN;
    cp.avg = o->chunk_avg ? o->chunk_avg : CHUNKER_DEFAULT_AVG;
    cp.max = o->chunk_max ? o->chunk_max : CHUNKER_DEFAULT_MAX;
    if (chunker_params_check(&cp) < 0) {
        sm_err_set(err, SM_E_INVALID, "invalid chunk sizes min=%u avg=%u max=%u", cp.min, cp.avg,
                   cp.max);
        return sm_err_hint(err, "Use 64 <= min <= avg <= max <= 64 MiB with avg a power of two.");
    }
    pack_size = o->pack_size ? o->pack_size : REPO_DEFAULT_PACK_SIZE;
    if (pack_size < 4096 || pack_size > REPO_MAX_PACK_SIZE)
        return sm_err_set(err, SM_E_INVALID, "invalid pack size %u (4 KiB to 512 MiB)", pack_size);
    zlevel = o->compression_level < 0 ? REPO_DEFAULT_ZLEVEL : o->compression_level;
    if (zlevel > 19)
        return sm_err_set(err, SM_E_INVALID, "invalid compression level %d (0 to 19)", zlevel);
    r = store_stat(st, CONFIG_KEY, NULL, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        sm_err_set(err, SM_E_EXISTS, "a repository already exists at '%s'", store_location(st));
        return sm_err_hint(err, "Use it as it is, or choose another location.");
    }
    sm_random(&keys, sizeof(keys));
    id = sm_random_hex(16);
    /* key first: a config without a key would be an unusable repository */
    if (key_write(st, secret, &keys, &key_name, err) < 0)
        goto out;
    doc = config_doc(o, id, &cp, pack_size, zlevel);
    text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (store_put(st, CONFIG_KEY, text, strlen(text), err) < 0)
        goto out;
    rc = 0;
out:
    sm_wipe(&keys, sizeof(keys));
    json_decref(doc);
    free(text);
    free(id);
    free(key_name);
    return rc;
}

static int config_load(repo *r, sm_err *err)
{
    sm_buf raw = SM_BUF_INIT;
    json_t *doc = NULL;
    json_error_t je;
    const char *format = NULL, *id = NULL;
    json_int_t version = 0, cmin = 0, cavg = 0, cmax = 0, psize = 0, level = 0;
    int rc = -1;

    if (store_get(r->st, CONFIG_KEY, 0, 0, &raw, err) < 0) {
        if (err && err->code == SM_E_NOTFOUND) {
            sm_err_set(err, SM_E_NOTFOUND, "no repository at '%s'", store_location(r->st));
            sm_err_hint(err, "Create one with `supamanager repo init --repo %s`, or check the path.",
                        store_location(r->st));
        }
        goto out;
    }
    doc = json_loadb((const char *)raw.data, raw.len, 0, &je);
    if (!doc || json_unpack(doc, "{s:s,s:I}", "format", &format, "version", &version) != 0 ||
        strcmp(format, CONFIG_FORMAT) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "the config of repository '%s' is damaged%s%s",
                   store_location(r->st), doc ? "" : ": ", doc ? "" : je.text);
        goto out;
    }
    if (version > REPO_FORMAT_VERSION || version < 1) {
        sm_err_set(err, SM_E_VERSION,
                   "repository '%s' has format version %lld, newer than this supamanager "
                   "understands (%d)",
                   store_location(r->st), (long long)version, REPO_FORMAT_VERSION);
        sm_err_hint(err, "Upgrade supamanager to a release that reads format version %lld.",
                    (long long)version);
        goto out;
    }
    if (json_unpack(doc, "{s:s,s:{s:I,s:I,s:I},s:I,s:{s:I}}", "id", &id, "chunker", "min", &cmin,
                    "avg", &cavg, "max", &cmax, "pack_size", &psize, "compression", "level",
                    &level) != 0 ||
        strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
        sm_err_set(err, SM_E_CORRUPT, "the config of repository '%s' is damaged: fields missing",
                   store_location(r->st));
        goto out;
    }
    r->version = (int)version;
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->cp.min = (uint32_t)cmin;
    r->cp.avg = (uint32_t)cavg;
    r->cp.max = (uint32_t)cmax;
    r->pack_size = (uint32_t)psize;
    r->zlevel = (int)level;
    if (chunker_params_check(&r->cp) < 0 || r->pack_size < 4096 ||
        r->pack_size > REPO_MAX_PACK_SIZE || level < 0 || level > 19) {
        sm_err_set(err, SM_E_CORRUPT, "the config of repository '%s' is damaged: bad values",
                   store_location(r->st));
        goto out;
    }
    rc = 0;
out:
    json_decref(doc);
    sm_buf_release(&raw);
    return rc;
}

int repo_open(repo **out, store *st, const char *secret, sm_err *err)
{
    repo *r = sm_xcalloc(1, sizeof(*r));

    r->st = st;
    pthread_mutex_init(&r->lock_mu, NULL);
    pthread_cond_init(&r->lock_cv, NULL);
    if (config_load(r, err) < 0 || key_unlock(st, secret, &r->keys, &r->key_name, err) < 0) {
        repo_close(r);
        return -1;
    }
    r->cc = crypto_ctx_new(&r->keys);
    repo_cache_init(r);
    *out = r;
    return 0;
}

void repo_close(repo *r)
{
    if (!r)
        return;
    repo_unlock(r, NULL);
    repo_index_drop(r);
    crypto_ctx_free(r->cc);
    sm_wipe(&r->keys, sizeof(r->keys));
    free(r->key_name);
    pthread_mutex_destroy(&r->lock_mu);
    pthread_cond_destroy(&r->lock_cv);
    free(r->cache_dir);
    free(r);
}

const char *repo_id(const repo *r)
{
    return r->id;
}

store *repo_store(repo *r)
{
    return r->st;
}

json_t *repo_config_json(const repo *r)
{
    return json_pack("{s:s,s:i,s:{s:i,s:i,s:i},s:i,s:i}", "id", r->id, "version", r->version,
                     "chunker", "min", (int)r->cp.min, "avg", (int)r->cp.avg, "max",
                     (int)r->cp.max, "pack_size", (int)r->pack_size, "compression_level",
                     r->zlevel);
}

/* ---- encrypted files ---- */

int repo_file_save(repo *r, crypto_ctx *cc, const char *dir, const void *p, size_t n,
                   char id_out[65], sm_err *err)
{
    sm_buf plain = SM_BUF_INIT, sealed = SM_BUF_INIT;
    size_t bound = ZSTD_compressBound(n);
    size_t z;
    char *key = NULL;
    int rc = -1;

    sm_buf_put_u8(&plain, FILE_VERSION);
    sm_buf_put_u8(&plain, FILE_ZSTD);
    sm_buf_grow(&plain, bound, NULL);
    z = ZSTD_compress(plain.data + 2, bound, p, n, r->zlevel > 0 ? r->zlevel : 1);
    if (ZSTD_isError(z)) {
        sm_err_set(err, SM_E_INTERNAL, "zstd compression failed: %s", ZSTD_getErrorName(z));
        goto out;
    }
    plain.len = 2 + z;
    if (crypto_seal(cc, plain.data, plain.len, &sealed, err) < 0)
        goto out;
    crypto_sha256_hex(sealed.data, sealed.len, id_out);
    key = sm_xasprintf("%s/%s", dir, id_out);
    if (store_put(r->st, key, sealed.data, sealed.len, err) < 0)
        goto out;
    rc = 0;
out:
    free(key);
    sm_buf_release(&plain);
    sm_buf_release(&sealed);
    return rc;
}

int repo_file_load(repo *r, const char *key, sm_buf *out, sm_err *err)
{
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    const char *slash = strrchr(key, '/');
    char hex[65];
    unsigned long long want;
    size_t z;
    int rc = -1;

    if (store_get(r->st, key, 0, 0, &sealed, err) < 0)
        goto out;
    crypto_sha256_hex(sealed.data, sealed.len, hex);
    if (!slash || strcmp(slash + 1, hex) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "file '%s' is damaged: its content does not match its name",
                   key);
        goto out;
    }
    if (crypto_open(r->cc, sealed.data, sealed.len, &plain, err) < 0) {
        sm_err_prefix(err, "file '%s'", key);
        goto out;
    }
    if (plain.len < 2 || plain.data[0] != FILE_VERSION) {
        sm_err_set(err, SM_E_VERSION, "file '%s' has an unknown version", key);
        goto out;
    }
    sm_buf_reset(out);
    if (plain.data[1] == FILE_RAW) {
        sm_buf_put(out, plain.data + 2, plain.len - 2);
    } else if (plain.data[1] == FILE_ZSTD) {
        want = ZSTD_getFrameContentSize(plain.data + 2, plain.len - 2);
        if (want == ZSTD_CONTENTSIZE_ERROR || want == ZSTD_CONTENTSIZE_UNKNOWN ||
            want > REPO_MAX_FILE_BYTES) {
            sm_err_set(err, SM_E_CORRUPT, "file '%s' is damaged: bad compressed size", key);
            goto out;
        }
        sm_buf_grow(out, (size_t)want, NULL);
        z = ZSTD_decompress(out->data, (size_t)want + 1, plain.data + 2, plain.len - 2);
        if (ZSTD_isError(z) || z != want) {
            sm_err_set(err, SM_E_CORRUPT, "file '%s' is damaged: cannot decompress", key);
            goto out;
        }
        out->len = z;
        out->data[z] = '\0';
    } else {
        sm_err_set(err, SM_E_VERSION, "file '%s' uses unknown compression %u", key, plain.data[1]);
        goto out;
    }
    rc = 0;
out:
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
    return rc;
}

/* ---- index ---- */

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static int collect_name(const char *key, uint64_t size, void *ud, sm_err *err)
{
    name_list *nl = ud;
    (void)size;
    (void)err;
    SM_GROW(nl->v, nl->cap, nl->n + 1);
    nl->v[nl->n++] = sm_xstrdup(key);
    return 0;
}

static void name_list_free(name_list *nl)
{
    for (size_t i = 0; i < nl->n; i++)
        free(nl->v[i]);
    free(nl->v);
    memset(nl, 0, sizeof(*nl));
}

void repo_index_drop(repo *r)
{
    index_free(r->idx);
    r->idx = NULL;
    for (size_t i = 0; i < r->nindex_files; i++)
        free(r->index_files[i]);
    free(r->index_files);
    r->index_files = NULL;
    r->nindex_files = 0;
}

int repo_index_ensure(repo *r, sm_err *err)
{
    name_list nl = {0};
    sm_buf body = SM_BUF_INIT;
    int rc = -1, attempt;

    if (r->idx)
        return 0;
    /* an index file may vanish between listing and reading when a prune
     * replaces it: list again */
    for (attempt = 0; attempt < 5; attempt++) {
        size_t i;
        name_list_free(&nl);
        r->idx = index_new();
        if (store_list(r->st, "index/", collect_name, &nl, err) < 0)
            goto out;
        for (i = 0; i < nl.n; i++) {
            sm_err e = SM_ERR_INIT;
            if (repo_file_load(r, nl.v[i], &body, &e) < 0) {
                if (e.code == SM_E_NOTFOUND)
                    break;
                sm_err_copy(err, &e);
                goto out;
            }
            if (index_decode(r->idx, body.data, body.len, nl.v[i], err) < 0)
                goto out;
        }
        if (i == nl.n)
            break;
        index_free(r->idx);
        r->idx = NULL;
    }
    if (!r->idx) {
        sm_err_set(err, SM_E_IO, "the index of repository '%s' keeps changing while read",
                   store_location(r->st));
        goto out;
    }
    r->index_files = nl.v;
    r->nindex_files = nl.n;
    memset(&nl, 0, sizeof(nl));
    rc = 0;
out:
    if (rc < 0) {
        index_free(r->idx);
        r->idx = NULL;
    }
    name_list_free(&nl);
    sm_buf_release(&body);
    return rc;
}

int repo_index_write(repo *r, crypto_ctx *cc, const uint32_t *packs, size_t n, char id_out[65],
                     sm_err *err)
{
    sm_buf body = SM_BUF_INIT;
    int rc;

    /* the packs listed must be on disk before the index that lists them */
    if (store_flush(r->st, err) < 0)
        return -1;
    index_encode(r->idx, packs, n, &body);
    rc = repo_file_save(r, cc, "index", body.data, body.len, id_out, err);
    sm_buf_release(&body);
    return rc;
}

int pack_seal_store(repo *r, crypto_ctx *cc, sm_buf *pack, const pack_blob *blobs, size_t n,
                    int relocate, uint32_t *pack_no, sm_err *err)
{
    sm_buf hdr = SM_BUF_INIT;
    unsigned char id[32];
    char key[96];
    size_t hdr_start = pack->len;
    uint32_t pn;
    int rc = -1;

    pack_header_encode(blobs, n, &hdr);
    if (crypto_seal(cc, hdr.data, hdr.len, pack, err) < 0)
        goto out;
    sm_buf_put_u32le(pack, (uint32_t)(pack->len - hdr_start));
    crypto_sha256(pack->data, pack->len, id);
    pack_key(key, sizeof(key), id);
    /* durable before any index lists it: repo_index_write flushes first */
    if (store_put_deferred(r->st, key, pack->data, pack->len, err) < 0)
        goto out;
    pn = index_pack_add(r->idx, id);
    for (size_t i = 0; i < n; i++) {
        if (relocate)
            index_relocate(r->idx, pn, &blobs[i]);
        else
            index_put(r->idx, pn, &blobs[i]);
    }
    if (pack_no)
        *pack_no = pn;
    rc = 0;
out:
    sm_buf_release(&hdr);
    return rc;
}

/* ---- blobs ---- */

void blob_reader_init(blob_reader *br, repo *r)
{
    memset(br, 0, sizeof(*br));
    br->r = r;
    br->cc = crypto_ctx_new(&r->keys);
    br->dctx = ZSTD_createDCtx();
}

void blob_reader_release(blob_reader *br)
{
    crypto_ctx_free(br->cc);
    ZSTD_freeDCtx(br->dctx);
    sm_buf_release(&br->sealed);
    sm_buf_release(&br->plain);
    memset(br, 0, sizeof(*br));
}

int blob_open(blob_reader *br, const index_entry *e, const unsigned char *sealed, size_t len,
              sm_buf *out, sm_err *err)
{
    char hex[65], phex[65];
    blob_id check;

    blob_id_hex(&e->id, hex);
    sm_hex(phex, index_pack_at(br->r->idx, e->pack)->id, 32);
    sm_buf_reset(out);
    if (e->flags & BLOB_FLAG_ZSTD) {
        size_t z;
        sm_buf_reset(&br->plain);
        if (crypto_open(br->cc, sealed, len, &br->plain, NULL) < 0)
            return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s in pack %.12s " MSG_MAC_FAIL, hex,
                              phex);
        sm_buf_grow(out, e->raw_len, NULL);
        z = ZSTD_decompressDCtx(br->dctx, out->data, (size_t)e->raw_len + 1, br->plain.data,
                                br->plain.len);
        if (ZSTD_isError(z) || z != e->raw_len)
            return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s in pack %.12s cannot be "
                                                 "decompressed", hex, phex);
        out->len = z;
        out->data[z] = '\0';
    } else {
        sm_buf_grow(out, (size_t)e->raw_len + 1, NULL); /* one allocation, not a doubling */
        if (crypto_open(br->cc, sealed, len, out, NULL) < 0)
            return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s in pack %.12s " MSG_MAC_FAIL, hex,
                              phex);
        if (out->len != e->raw_len)
            return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s in pack %.12s has a wrong length",
                              hex, phex);
    }
    crypto_id(br->cc, out->data, out->len, &check);
    if (!blob_id_eq(&check, &e->id))
        return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s in pack %.12s does not match its id",
                          hex, phex);
    return 0;
}

int blob_read_cached(blob_reader *br, const blob_id *id, sm_buf *out)
{
    repo *r = br->r;
    index_entry e;
    char hex[65];
    sm_err ce = SM_ERR_INIT;

    if (!r->cache_dir)
        return -1;
    blob_id_hex(id, hex);
    if (index_get(r->idx, id, &e) != 0 || e.pack == INDEX_PENDING || e.type != BLOB_TREE ||
        !repo_cache_get(r, hex, e.len, &br->sealed))
        return -1;
    if (blob_open(br, &e, br->sealed.data, br->sealed.len, out, &ce) == 0)
        return 0;
    repo_cache_drop(r, hex);
    return -1;
}

int blob_read(blob_reader *br, const blob_id *id, sm_buf *out, sm_err *err)
{
    repo *r = br->r;
    index_entry e;
    index_pack *pk;
    char key[96], hex[65], phex[65];
    sm_err e2 = SM_ERR_INIT;
    int cached;

    blob_id_hex(id, hex);
    if (index_get(r->idx, id, &e) != 0 || e.pack == INDEX_PENDING)
        return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s is missing from the index", hex);
    pk = index_pack_at(r->idx, e.pack);
    pack_key(key, sizeof(key), pk->id);
    sm_hex(phex, pk->id, 32);
    cached = e.type == BLOB_TREE && r->cache_dir;
    if (cached && repo_cache_get(r, hex, e.len, &br->sealed)) {
        sm_err ce = SM_ERR_INIT;
        if (blob_open(br, &e, br->sealed.data, br->sealed.len, out, &ce) == 0)
            return 0;
        repo_cache_drop(r, hex); /* damaged in the cache: the store has it */
    }
    if (store_get(r->st, key, e.off, e.len, &br->sealed, &e2) < 0) {
        if (e2.code == SM_E_NOTFOUND)
            return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s: pack %.12s is missing", hex, phex);
        if (e2.code == SM_E_CORRUPT)
            return sm_err_set(err, SM_E_CORRUPT, "chunk %.12s: pack %.12s is truncated", hex,
                              phex);
        sm_err_copy(err, &e2);
        return -1;
    }
    if (blob_open(br, &e, br->sealed.data, br->sealed.len, out, err) < 0)
        return -1;
    if (cached)
        repo_cache_put(r, hex, br->sealed.data, br->sealed.len);
    return 0;
}

int tree_load(blob_reader *br, const blob_id *id, tree *out, sm_err *err)
{
    sm_buf raw = SM_BUF_INIT;
    char hex[65], what[80];
    int rc;

    if (blob_read(br, id, &raw, err) < 0) {
        sm_buf_release(&raw);
        return -1;
    }
    blob_id_hex(id, hex);
    snprintf(what, sizeof(what), "%.12s", hex);
    rc = tree_decode(out, raw.data, raw.len, what, err);
    sm_buf_release(&raw);
    return rc;
}

/* ---- snapshots ---- */

int snapshot_parse(snapshot **out, const char *id, const unsigned char *p, size_t n, sm_err *err)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)p, n, 0, &je), *streams;
    json_int_t ver = 0, tns = 0;
    snapshot *s;

    if (!doc)
        return sm_err_set(err, SM_E_CORRUPT, "snapshot %.12s is damaged: %s", id, je.text);
    if (json_unpack(doc, "{s:I,s:I,s:o}", "version", &ver, "time_ns", &tns, "streams",
                    &streams) != 0 ||
        !json_is_array(streams)) {
        json_decref(doc);
        return sm_err_set(err, SM_E_CORRUPT, "snapshot %.12s is damaged: fields missing", id);
    }
    if (ver != 1) {
        json_decref(doc);
        return sm_err_set(err, SM_E_VERSION, "snapshot %.12s has unknown version %lld", id,
                          (long long)ver);
    }
    s = sm_xcalloc(1, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->doc = doc;
    s->time_ns = tns;
    s->time = (time_t)(tns / 1000000000);
    *out = s;
    return 0;
}

void snapshot_free(snapshot *s)
{
    if (!s)
        return;
    json_decref(s->doc);
    free(s);
}

const char *snapshot_id(const snapshot *s)
{
    return s->id;
}

time_t snapshot_time(const snapshot *s)
{
    return s->time;
}

json_t *snapshot_json(const snapshot *s)
{
    return s->doc;
}

json_t *snapshot_stream(const snapshot *s, const char *name)
{
    json_t *streams = json_object_get(s->doc, "streams"), *st;
    size_t i;

    json_array_foreach(streams, i, st)
    {
        const char *n = json_string_value(json_object_get(st, "name"));
        if (n && !strcmp(n, name))
            return st;
    }
    return NULL;
}

static int cmp_snap(const void *a, const void *b)
{
    const snapshot *x = *(snapshot *const *)a, *y = *(snapshot *const *)b;
    if (x->time_ns != y->time_ns)
        return x->time_ns < y->time_ns ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int load_snapshot_key(repo *r, const char *key, snapshot **out, sm_err *err)
{
    sm_buf body = SM_BUF_INIT;
    const char *id = key + strlen("snapshots/");
    int rc = -1;

    if (repo_file_load(r, key, &body, err) < 0)
        goto out;
    rc = snapshot_parse(out, id, body.data, body.len, err);
out:
    sm_buf_release(&body);
    return rc;
}

int repo_snapshots(repo *r, snapshot ***out, size_t *n, sm_err *err)
{
    name_list nl = {0};
    snapshot **v = NULL;
    size_t cnt = 0;
    int rc = -1;

    if (store_list(r->st, "snapshots/", collect_name, &nl, err) < 0)
        goto out;
    v = sm_xcalloc(nl.n ? nl.n : 1, sizeof(*v));
    for (size_t i = 0; i < nl.n; i++) {
        sm_err e = SM_ERR_INIT;
        if (load_snapshot_key(r, nl.v[i], &v[cnt], &e) < 0) {
            if (e.code == SM_E_NOTFOUND) /* removed meanwhile by prune */
                continue;
            sm_err_copy(err, &e);
            goto out;
        }
        cnt++;
    }
    qsort(v, cnt, sizeof(*v), cmp_snap);
    *out = v;
    *n = cnt;
    v = NULL;
    cnt = 0;
    rc = 0;
out:
    repo_snapshots_free(v, cnt);
    name_list_free(&nl);
    return rc;
}

void repo_snapshots_free(snapshot **s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        snapshot_free(s[i]);
    free(s);
}

int repo_snapshot_load(repo *r, const char *ref, snapshot **out, sm_err *err)
{
    name_list nl = {0};
    const char *match = NULL;
    size_t rl = ref ? strlen(ref) : 0;
    int rc = -1;

    if (!ref || !*ref)
        return sm_err_set(err, SM_E_USAGE, "no snapshot given");
    if (!strcmp(ref, "latest")) {
        snapshot **all = NULL;
        size_t n = 0;
        if (repo_snapshots(r, &all, &n, err) < 0)
            return -1;
        if (n == 0) {
            free(all);
            sm_err_set(err, SM_E_NOTFOUND, "repository '%s' has no snapshots",
                       store_location(r->st));
            return -1;
        }
        *out = all[n - 1];
        all[n - 1] = NULL;
        repo_snapshots_free(all, n - 1);
        return 0;
    }
    for (size_t i = 0; i < rl; i++) {
        if (!((ref[i] >= '0' && ref[i] <= '9') || (ref[i] >= 'a' && ref[i] <= 'f')) || rl > 64) {
            sm_err_set(err, SM_E_INVALID, "'%s' is not a snapshot id", ref);
            return sm_err_hint(err, "Give a snapshot id (at least 6 hex digits) or 'latest'.");
        }
    }
    if (rl < 6) {
        sm_err_set(err, SM_E_INVALID, "snapshot id '%s' is too short", ref);
        return sm_err_hint(err, "Give at least 6 hex digits, or 'latest'.");
    }
    if (store_list(r->st, "snapshots/", collect_name, &nl, err) < 0)
        goto out;
    for (size_t i = 0; i < nl.n; i++) {
        if (!strncmp(nl.v[i] + strlen("snapshots/"), ref, rl)) {
            if (match) {
                sm_err_set(err, SM_E_INVALID, "snapshot id '%s' is ambiguous", ref);
                sm_err_hint(err, "Give more digits of the id.");
                goto out;
            }
            match = nl.v[i];
        }
    }
    if (!match) {
        sm_err_set(err, SM_E_NOTFOUND, "no snapshot '%s' in repository '%s'", ref,
                   store_location(r->st));
        sm_err_hint(err, "List the snapshots with `supamanager repo ls`.");
        goto out;
    }
    rc = load_snapshot_key(r, match, out, err);
out:
    name_list_free(&nl);
    return rc;
}

int repo_snapshot_latest_with(repo *r, const char *stream, const char *want, snapshot **out,
                              sm_err *err)
{
    snapshot **all = NULL;
    size_t n = 0;
    int rc = 1;

    *out = NULL;
    if (repo_snapshots(r, &all, &n, err) < 0)
        return -1;
    for (size_t i = n; i-- > 0;) {
        json_t *st = snapshot_stream(all[i], stream);
        const char *kind = st ? json_string_value(json_object_get(st, "kind")) : NULL;
        if (kind && !strcmp(kind, want)) {
            *out = all[i];
            all[i] = NULL;
            rc = 0;
            break;
        }
    }
    repo_snapshots_free(all, n);
    return rc;
}

/* ---- stats ---- */

typedef struct size_sum {
    uint64_t bytes;
    uint64_t count;
} size_sum;

static int sum_sizes(const char *key, uint64_t size, void *ud, sm_err *err)
{
    size_sum *s = ud;
    (void)key;
    (void)err;
    s->bytes += size;
    s->count++;
    return 0;
}

int repo_stats(repo *r, json_t **out, sm_err *err)
{
    snapshot **snaps = NULL;
    size_t nsnaps = 0;
    size_sum packs = {0, 0};
    uint64_t raw = 0, logical = 0, blob_bytes = 0;
    size_t nblobs;
    json_t *o;

    if (repo_index_ensure(r, err) < 0 || repo_snapshots(r, &snaps, &nsnaps, err) < 0 ||
        store_list(r->st, "data/", sum_sizes, &packs, err) < 0) {
        repo_snapshots_free(snaps, nsnaps);
        return -1;
    }
    nblobs = index_count(r->idx);
    for (size_t i = 0; i < nblobs; i++) {
        index_entry *e = index_entry_at(r->idx, i);
        if (e->type != BLOB_DATA)
            continue; /* directory listings are metadata, not backed-up data */
        raw += e->raw_len;
        blob_bytes += e->len;
    }
    for (size_t i = 0; i < nsnaps; i++) {
        json_t *streams = json_object_get(snapshot_json(snaps[i]), "streams"), *st;
        size_t k;
        json_array_foreach(streams, k, st)
        logical += (uint64_t)json_integer_value(json_object_get(st, "size"));
    }
    o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "id", r->id, "snapshots",
                  (json_int_t)nsnaps, "packs", (json_int_t)packs.count, "blobs",
                  (json_int_t)nblobs, "stored_bytes", (json_int_t)packs.bytes, "raw_bytes",
                  (json_int_t)raw, "logical_bytes", (json_int_t)logical, "dedup_ratio",
                  raw ? (double)logical / (double)raw : 0.0, "compression_ratio",
                  blob_bytes ? (double)raw / (double)blob_bytes : 0.0);
    repo_snapshots_free(snaps, nsnaps);
    *out = o;
    return 0;
}
