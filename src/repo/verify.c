/* verify: re-reads what the snapshots need (or every pack with read_all),
 * authenticates every blob, checks ids, per-file and per-stream checksums,
 * and names each snapshot, stream and file that a damaged pack hurts. */
#include "repo/fetch.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A set of 32-byte keys: file contents already verified (shared by many
 * snapshots when files do not change). */
typedef struct key_set {
    unsigned char (*v)[32];
    unsigned char *used;
    size_t n, cap;
} key_set;

static uint64_t k64(const unsigned char *k)
{
    uint64_t h;
    memcpy(&h, k, 8);
    return h;
}

static int set_has_or_add(key_set *s, const unsigned char k[32], int add)
{
    size_t i;

    if (add && (s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        unsigned char(*nv)[32] = sm_xcalloc(nc, 32);
        unsigned char *nu = sm_xcalloc(nc, 1);
        for (size_t x = 0; x < s->cap; x++) {
            if (!s->used[x])
                continue;
            i = (size_t)k64(s->v[x]) & (nc - 1);
            while (nu[i])
                i = (i + 1) & (nc - 1);
            memcpy(nv[i], s->v[x], 32);
            nu[i] = 1;
        }
        free(s->v);
        free(s->used);
        s->v = nv;
        s->used = nu;
        s->cap = nc;
    }
    if (!s->cap)
        return 0;
    i = (size_t)k64(k) & (s->cap - 1);
    while (s->used[i]) {
        if (!memcmp(s->v[i], k, 32))
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    if (add) {
        memcpy(s->v[i], k, 32);
        s->used[i] = 1;
        s->n++;
    }
    return 0;
}

typedef struct vctx {
    repo *r;
    const repo_verify_opts *o;
    repo_verify_result *res;
    fetcher *f;
    blob_reader br;
    key_set done;
    sm_err first;
    int have_first;
    const char *snap;
    const char *stream;
    int damaged;
    sha256_ctx *digest;
    sm_buf line, path;
    double last;
} vctx;

static void problem(vctx *v, const sm_err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(vctx *v, const sm_err *e, const char *fmt, ...)
{
    char where[1024], line[2200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(where, sizeof(where), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s", where, e->msg);
    v->res->problems++;
    v->damaged = 1;
    if (!v->have_first) {
        sm_err_copy(&v->first, e);
        snprintf(v->first.msg, sizeof(v->first.msg), "%s", line);
        v->have_first = 1;
    }
    if (v->o->report)
        v->o->report(v->o->report_ud, line);
    else
        sm_log(SM_LOG_ERROR, "%s", line);
}

static int vtick(void *ud, size_t n, sm_err *err)
{
    vctx *v = ud;
    (void)err;
    v->res->blobs_checked++;
    v->res->bytes_checked += n;
    if (v->o->progress && sm_mono() - v->last > 0.2) {
        repo_progress p;
        memset(&p, 0, sizeof(p));
        p.phase = "verify";
        p.stream = v->stream;
        p.bytes_done = v->res->bytes_checked;
        v->last = sm_mono();
        v->o->progress(v->o->progress_ud, &p);
    }
    return 0;
}

/* Content lists already checked are skipped: the key is the SHA-256 of the
 * ids plus the expected file checksum. */
static void content_key(const tree_node *n, unsigned char out[32])
{
    sha256_ctx *s = sha256_new();
    sha256_update(s, n->sha256, 32);
    sha256_update(s, &n->size, sizeof(n->size));
    for (size_t i = 0; i < n->ncontent; i++)
        sha256_update(s, n->content[i].b, BLOB_ID_LEN);
    sha256_final(s, out);
    sha256_free(s);
}

static void check_file(vctx *v, const tree_node *n, const char *what)
{
    unsigned char key[32];
    sm_err e = SM_ERR_INIT;

    content_key(n, key);
    if (set_has_or_add(&v->done, key, 0))
        return;
    if (fetch_node(v->f, n, what, NULL, NULL, vtick, v, &e) < 0) {
        problem(v, &e, "snapshot %.12s stream '%s'", v->snap, v->stream);
        return;
    }
    set_has_or_add(&v->done, key, 1);
}

static void vdigest(vctx *v, const char *rel, const tree_node *n)
{
    sm_buf_reset(&v->line);
    tree_digest_line(&v->line, rel, n);
    sha256_update(v->digest, v->line.data, v->line.len);
}

static void check_tree(vctx *v, const blob_id *id, const char *dir)
{
    tree t = TREE_INIT;
    sm_err e = SM_ERR_INIT;
    size_t saved = v->path.len;

    if (tree_load(&v->br, id, &t, &e) < 0) {
        problem(v, &e, "snapshot %.12s stream '%s' directory '%s'", v->snap, v->stream,
                dir[0] ? dir : ".");
        return;
    }
    for (size_t i = 0; i < t.n; i++) {
        const tree_node *n = &t.nodes[i];
        if (v->path.len)
            sm_buf_putc(&v->path, '/');
        sm_buf_puts(&v->path, n->name);
        vdigest(v, sm_buf_str(&v->path), n);
        if (n->type == NODE_FILE) {
            check_file(v, n, sm_buf_str(&v->path));
        } else if (n->type == NODE_DIR) {
            char *sub = sm_xstrdup(sm_buf_str(&v->path));
            check_tree(v, &n->subtree, sub);
            free(sub);
        }
        v->path.len = saved;
        v->path.data[saved] = '\0';
    }
    tree_release(&t);
}

static void check_stream(vctx *v, json_t *st)
{
    const char *kind = json_string_value(json_object_get(st, "kind"));
    const char *want = json_string_value(json_object_get(st, "sha256"));
    sm_err e = SM_ERR_INIT;

    v->stream = json_string_value(json_object_get(st, "name"));
    if (!v->stream || !kind || !want) {
        sm_err_set(&e, SM_E_CORRUPT, "stream entry is damaged");
        problem(v, &e, "snapshot %.12s", v->snap);
        return;
    }
    if (!strcmp(kind, "file")) {
        tree_node n;
        json_t *c = json_object_get(st, "content");
        memset(&n, 0, sizeof(n));
        n.type = NODE_FILE;
        n.size = (uint64_t)json_integer_value(json_object_get(st, "size"));
        if (!json_is_array(c) || sm_unhex(n.sha256, want, 32) < 0) {
            sm_err_set(&e, SM_E_CORRUPT, "stream entry is damaged");
            problem(v, &e, "snapshot %.12s stream '%s'", v->snap, v->stream);
            return;
        }
        for (size_t i = 0; i < json_array_size(c); i++) {
            blob_id id;
            if (blob_id_parse(&id, json_string_value(json_array_get(c, i))) < 0) {
                sm_err_set(&e, SM_E_CORRUPT, "content list is damaged");
                problem(v, &e, "snapshot %.12s stream '%s'", v->snap, v->stream);
                tree_node_release(&n);
                return;
            }
            tree_node_add_content(&n, &id);
        }
        check_file(v, &n, v->stream);
        tree_node_release(&n);
    } else if (!strcmp(kind, "tree")) {
        tree_node root;
        unsigned char d[32];
        char hex[65];
        int before = v->damaged;
        memset(&root, 0, sizeof(root));
        if (tree_node_from_json(&root, json_object_get(st, "root"), "root", &e) < 0) {
            problem(v, &e, "snapshot %.12s stream '%s'", v->snap, v->stream);
            return;
        }
        v->digest = sha256_new();
        sm_buf_reset(&v->path);
        vdigest(v, ".", &root);
        v->damaged = 0;
        check_tree(v, &root.subtree, "");
        sha256_final(v->digest, d);
        sm_hex(hex, d, 32);
        if (!v->damaged && strcmp(hex, want) != 0) {
            sm_err_set(&e, SM_E_CORRUPT, "the tree does not match its checksum");
            problem(v, &e, "snapshot %.12s stream '%s'", v->snap, v->stream);
        }
        v->damaged |= before;
        sha256_free(v->digest);
        v->digest = NULL;
        tree_node_release(&root);
    } else {
        sm_err_set(&e, SM_E_VERSION, "unknown stream kind '%s'", kind);
        problem(v, &e, "snapshot %.12s stream '%s'", v->snap, v->stream);
    }
}

/* ---- read_all: every pack, every blob ---- */

typedef struct pack_names {
    char **v;
    size_t n, cap;
} pack_names;

static int collect_pack(const char *key, uint64_t size, void *ud, sm_err *err)
{
    pack_names *pn = ud;
    (void)size;
    (void)err;
    SM_GROW(pn->v, pn->cap, pn->n + 1);
    pn->v[pn->n++] = sm_xstrdup(key);
    return 0;
}

static void check_pack(vctx *v, const char *key, crypto_ctx *cc, ZSTD_DCtx *dctx)
{
    sm_buf raw = SM_BUF_INIT, hdr = SM_BUF_INIT, plain = SM_BUF_INIT, data = SM_BUF_INIT;
    unsigned char id[32], want[32];
    pack_blob *blobs = NULL;
    size_t nblobs = 0;
    uint32_t hlen;
    sm_err e = SM_ERR_INIT;
    char hex[65];

    if (pack_key_parse(key, want) < 0) {
        sm_log(SM_LOG_WARN, "ignoring unexpected object '%s'", key);
        return;
    }
    sm_hex(hex, want, 32);
    if (store_get(v->r->st, key, 0, 0, &raw, &e) < 0) {
        problem(v, &e, "pack %.12s", hex);
        goto out;
    }
    crypto_sha256(raw.data, raw.len, id);
    if (memcmp(id, want, 32) != 0) {
        sm_err_set(&e, SM_E_CORRUPT, "content does not match its name");
        problem(v, &e, "pack %.12s", hex);
    }
    if (raw.len < 4 + CRYPTO_OVERHEAD ||
        (hlen = sm_load_u32le(raw.data + raw.len - 4)) > raw.len - 4) {
        sm_err_set(&e, SM_E_CORRUPT, "header is damaged");
        problem(v, &e, "pack %.12s", hex);
        goto out;
    }
    if (crypto_open(cc, raw.data + raw.len - 4 - hlen, hlen, &hdr, &e) < 0 ||
        pack_header_decode(hdr.data, hdr.len, &blobs, &nblobs, hex, &e) < 0) {
        problem(v, &e, "pack %.12s header", hex);
        goto out;
    }
    for (size_t i = 0; i < nblobs; i++) {
        const pack_blob *b = &blobs[i];
        blob_id check;
        char bhex[65];
        blob_id_hex(&b->id, bhex);
        sm_buf_reset(&plain);
        sm_buf_reset(&data);
        if ((uint64_t)b->off + b->len > raw.len - 4 - hlen) {
            sm_err_set(&e, SM_E_CORRUPT, "chunk %.12s lies outside the pack", bhex);
            problem(v, &e, "pack %.12s", hex);
            continue;
        }
        if (crypto_open(cc, raw.data + b->off, b->len, &plain, NULL) < 0) {
            sm_err_set(&e, SM_E_CORRUPT, "chunk %.12s in pack %.12s " MSG_MAC_FAIL, bhex, hex);
            problem(v, &e, "pack %.12s", hex);
            continue;
        }
        if (b->flags & BLOB_FLAG_ZSTD) {
            size_t z;
            sm_buf_grow(&data, b->raw_len, NULL);
            z = ZSTD_decompressDCtx(dctx, data.data, (size_t)b->raw_len + 1, plain.data,
                                    plain.len);
            if (ZSTD_isError(z) || z != b->raw_len) {
                sm_err_set(&e, SM_E_CORRUPT, "chunk %.12s cannot be decompressed", bhex);
                problem(v, &e, "pack %.12s", hex);
                continue;
            }
            data.len = z;
        } else {
            sm_buf_put(&data, plain.data, plain.len);
        }
        crypto_id(cc, data.data, data.len, &check);
        if (!blob_id_eq(&check, &b->id)) {
            sm_err_set(&e, SM_E_CORRUPT, "chunk %.12s does not match its id", bhex);
            problem(v, &e, "pack %.12s", hex);
            continue;
        }
        v->res->blobs_checked++;
        v->res->bytes_checked += data.len;
    }
out:
    free(blobs);
    sm_buf_release(&raw);
    sm_buf_release(&hdr);
    sm_buf_release(&plain);
    sm_buf_release(&data);
}

static void read_all(vctx *v)
{
    pack_names pn = {0};
    crypto_ctx *cc = crypto_ctx_new(&v->r->keys);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    sm_err e = SM_ERR_INIT;
    uint32_t np = index_pack_count(v->r->idx);
    unsigned char *seen = sm_xcalloc(np ? np : 1, 1);

    if (store_list(v->r->st, "data/", collect_pack, &pn, &e) < 0) {
        problem(v, &e, "listing packs");
        goto out;
    }
    for (size_t i = 0; i < pn.n; i++) {
        unsigned char id[32];
        uint32_t n;
        if (pack_key_parse(pn.v[i], id) == 0 && index_pack_find(v->r->idx, id, &n) == 0)
            seen[n] = 1;
        check_pack(v, pn.v[i], cc, dctx);
    }
    for (uint32_t n = 0; n < np; n++) {
        index_pack *p = index_pack_at(v->r->idx, n);
        char hex[65];
        if (seen[n])
            continue;
        sm_hex(hex, p->id, 32);
        sm_err_set(&e, SM_E_CORRUPT, "pack is listed in the index but missing from the store");
        problem(v, &e, "pack %.12s", hex);
    }
out:
    for (size_t i = 0; i < pn.n; i++)
        free(pn.v[i]);
    free(pn.v);
    free(seen);
    crypto_ctx_free(cc);
    ZSTD_freeDCtx(dctx);
}

int repo_verify(repo *r, const repo_verify_opts *o, repo_verify_result *res, sm_err *err)
{
    vctx v;
    snapshot **snaps = NULL;
    size_t nsnaps = 0;
    repo_verify_result local;
    int rc = -1;

    memset(&v, 0, sizeof(v));
    if (!res)
        res = &local;
    memset(res, 0, sizeof(*res));
    v.r = r;
    v.o = o;
    v.res = res;
    if (repo_index_ensure(r, err) < 0)
        return -1;
    if (o->nrefs) {
        snaps = sm_xcalloc(o->nrefs, sizeof(*snaps));
        for (size_t i = 0; i < o->nrefs; i++) {
            if (repo_snapshot_load(r, o->refs[i], &snaps[i], err) < 0)
                goto out;
            nsnaps++;
        }
    } else if (repo_snapshots(r, &snaps, &nsnaps, err) < 0) {
        goto out;
    }
    if (fetcher_new(&v.f, r, o->threads, err) < 0)
        goto out;
    blob_reader_init(&v.br, r);
    for (size_t i = 0; i < nsnaps; i++) {
        json_t *streams = json_object_get(snapshot_json(snaps[i]), "streams"), *st;
        size_t k;
        int damaged = 0;
        v.snap = snapshot_id(snaps[i]);
        json_array_foreach(streams, k, st)
        {
            v.damaged = 0;
            check_stream(&v, st);
            damaged |= v.damaged;
        }
        res->snapshots++;
        if (damaged)
            res->snapshots_damaged++;
    }
    if (o->read_all)
        read_all(&v);
    if (res->problems) {
        sm_err_copy(err, &v.first);
        if (res->problems > 1) {
            size_t n = strlen(err->msg);
            snprintf(err->msg + n, sizeof(err->msg) - n, " (and %u more problems)",
                     res->problems - 1);
        }
        sm_err_hint(err, "%u of %u snapshots are damaged. Restore the damaged packs from a copy "
                         "if you have one, or remove the damaged snapshots with `supamanager repo prune --snapshot ID`.",
                    res->snapshots_damaged, res->snapshots);
        goto out;
    }
    rc = 0;
out:
    fetcher_free(v.f);
    if (v.br.r)
        blob_reader_release(&v.br);
    free(v.done.v);
    free(v.done.used);
    sm_buf_release(&v.line);
    sm_buf_release(&v.path);
    repo_snapshots_free(snaps, nsnaps);
    return rc;
}
