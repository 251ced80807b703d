/* prune: removes snapshots, then the data only they used.
 *
 * Order, each step crash-safe: (1) delete the chosen manifests; (2) mark
 * every blob the remaining snapshots reach (a subtree already marked is not
 * walked again); (3) copy the live blobs of mostly-garbage packs into new
 * packs (sealed blobs are copied as they are, no re-encryption); (4) write a
 * new index covering the packs that stay; (5) delete the old index files;
 * (6) delete unused, repacked and orphaned packs, unless readers hold locks
 * (then the next prune deletes them). Memory: the index (52 bytes a blob)
 * plus one pack. */
#include "repo/repo.intern.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PK_KEEP = 0, PK_DELETE, PK_REPACK, PK_MISSING };

typedef struct pctx {
    repo *r;
    const repo_prune_opts *o;
    repo_prune_result *res;
    blob_reader br;
} pctx;

static void preport(pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void preport(pctx *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (c->o->report)
        c->o->report(c->o->report_ud, line);
    else
        sm_log(SM_LOG_INFO, "%s", line);
}

static int mark_id(pctx *c, const blob_id *id, sm_err *err)
{
    int prev = index_mark(c->r->idx, id, 1);
    if (prev < 0) {
        char hex[65];
        blob_id_hex(id, hex);
        sm_err_set(err, SM_E_CORRUPT, "a snapshot needs chunk %.12s, which is not in the index",
                   hex);
        return sm_err_hint(err, "Nothing was deleted. Run `supamanager repo verify` to see which "
                                "snapshots are damaged.");
    }
    return prev;
}

static int mark_tree(pctx *c, const blob_id *id, sm_err *err)
{
    tree t = TREE_INIT;
    int prev = mark_id(c, id, err), rc = -1;

    if (prev < 0)
        return -1;
    if (prev == 1)
        return 0; /* this subtree was walked already */
    if (tree_load(&c->br, id, &t, err) < 0) {
        sm_err_hint(err, "Nothing was deleted. Run `supamanager repo verify` to see which "
                         "snapshots are damaged.");
        return -1;
    }
    for (size_t i = 0; i < t.n; i++) {
        const tree_node *n = &t.nodes[i];
        if (n->type == NODE_FILE) {
            for (size_t k = 0; k < n->ncontent; k++)
                if (mark_id(c, &n->content[k], err) < 0)
                    goto out;
        } else if (n->type == NODE_DIR && mark_tree(c, &n->subtree, err) < 0) {
            goto out;
        }
    }
    rc = 0;
out:
    tree_release(&t);
    return rc;
}

static int mark_snapshot(pctx *c, const snapshot *s, sm_err *err)
{
    json_t *streams = json_object_get(snapshot_json(s), "streams"), *st;
    size_t i;

    json_array_foreach(streams, i, st)
    {
        const char *kind = json_string_value(json_object_get(st, "kind"));
        if (kind && !strcmp(kind, "file")) {
            json_t *cl = json_object_get(st, "content");
            for (size_t k = 0; k < json_array_size(cl); k++) {
                blob_id id;
                if (blob_id_parse(&id, json_string_value(json_array_get(cl, k))) < 0)
                    return sm_err_set(err, SM_E_CORRUPT, "snapshot %.12s is damaged",
                                      snapshot_id(s));
                if (mark_id(c, &id, err) < 0)
                    return -1;
            }
        } else if (kind && !strcmp(kind, "tree")) {
            tree_node root;
            int rc;
            memset(&root, 0, sizeof(root));
            if (tree_node_from_json(&root, json_object_get(st, "root"), "root", err) < 0)
                return -1;
            rc = mark_tree(c, &root.subtree, err);
            tree_node_release(&root);
            if (rc < 0)
                return -1;
        } else {
            return sm_err_set(err, SM_E_CORRUPT, "snapshot %.12s has a stream of unknown kind",
                              snapshot_id(s));
        }
    }
    return 0;
}

typedef struct store_pack {
    unsigned char id[32];
    uint64_t size;
} store_pack;

typedef struct store_packs {
    store_pack *v;
    size_t n, cap;
} store_packs;

static int collect_pack(const char *key, uint64_t size, void *ud, sm_err *err)
{
    store_packs *sp = ud;
    unsigned char id[32];
    (void)err;
    if (pack_key_parse(key, id) < 0)
        return 0;
    SM_GROW(sp->v, sp->cap, sp->n + 1);
    memcpy(sp->v[sp->n].id, id, 32);
    sp->v[sp->n].size = size;
    sp->n++;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Copies the live blobs of the packs marked PK_REPACK into new packs. */
static int repack(pctx *c, uint32_t **new_packs, size_t *nnew, size_t *capnew, sm_err *err)
{
    repo *r = c->r;
    size_t n = index_count(r->idx);
    uint32_t *sel = NULL;
    size_t nsel = 0;
    sm_buf out = SM_BUF_INIT, raw = SM_BUF_INIT;
    pack_blob *blobs = NULL;
    size_t nblobs = 0, capblobs = 0;
    uint32_t cur = UINT32_MAX;
    int rc = -1;

    /* the live entries that live in packs being repacked, by pack */
    sel = sm_xmalloc((n ? n : 1) * sizeof(*sel));
    for (size_t i = 0; i < n; i++) {
        index_entry *e = index_entry_at(r->idx, i);
        if (e->mark && index_pack_at(r->idx, e->pack)->state == PK_REPACK)
            sel[nsel++] = (uint32_t)i;
    }
    /* group by pack so each old pack is read once */
    {
        uint32_t *keyed = sm_xmalloc((nsel ? nsel : 1) * 2 * sizeof(uint32_t));
        for (size_t i = 0; i < nsel; i++) {
            keyed[2 * i] = index_entry_at(r->idx, sel[i])->pack;
            keyed[2 * i + 1] = sel[i];
        }
        qsort(keyed, nsel, 2 * sizeof(uint32_t), cmp_u32);
        for (size_t i = 0; i < nsel; i++)
            sel[i] = keyed[2 * i + 1];
        free(keyed);
    }
    for (size_t i = 0; i < nsel; i++) {
        index_entry *e = index_entry_at(r->idx, sel[i]);
        pack_blob *b;
        if (e->pack != cur) {
            char key[96];
            cur = e->pack;
            pack_key(key, sizeof(key), index_pack_at(r->idx, cur)->id);
            if (store_get(r->st, key, 0, 0, &raw, err) < 0) {
                sm_err_hint(err, "Nothing was deleted.");
                goto out;
            }
        }
        if ((uint64_t)e->off + e->len > raw.len) {
            sm_err_set(err, SM_E_CORRUPT, "a pack being repacked is truncated");
            sm_err_hint(err, "Nothing was deleted. Run `supamanager repo verify --all`.");
            goto out;
        }
        SM_GROW(blobs, capblobs, nblobs + 1);
        b = &blobs[nblobs++];
        b->id = e->id;
        b->type = e->type;
        b->flags = e->flags;
        b->off = (uint32_t)out.len;
        b->len = e->len;
        b->raw_len = e->raw_len;
        sm_buf_put(&out, raw.data + e->off, e->len);
        if (out.len >= r->pack_size || i + 1 == nsel) {
            uint32_t pn;
            /* the new location replaces the old one in the index */
            if (pack_seal_store(r, r->cc, &out, blobs, nblobs, 1, &pn, err) < 0)
                goto out;
            SM_GROW(*new_packs, *capnew, *nnew + 1);
            (*new_packs)[(*nnew)++] = pn;
            c->res->packs_written++;
            sm_buf_reset(&out);
            nblobs = 0;
        }
    }
    rc = 0;
out:
    free(sel);
    free(blobs);
    sm_buf_release(&out);
    sm_buf_release(&raw);
    return rc;
}

int repo_prune(repo *r, const repo_prune_opts *o, repo_prune_result *res, sm_err *err)
{
    pctx c;
    repo_prune_result local;
    snapshot **snaps = NULL;
    size_t nsnaps = 0;
    unsigned char *remove = NULL;
    store_packs sp = {0};
    uint32_t *keep = NULL, *newp = NULL;
    size_t nkeep = 0, nnew = 0, capnew = 0;
    char **old_index = NULL;
    size_t nold_index = 0;
    unsigned threshold;
    int readers = 0, rc = -1;

    memset(&c, 0, sizeof(c));
    if (!res)
        res = &local;
    memset(res, 0, sizeof(*res));
    c.r = r;
    c.o = o;
    c.res = res;
    threshold = o->repack_percent ? o->repack_percent : 50;
    if (!r->lock_key || !r->lock_exclusive)
        return sm_err_set(err, SM_E_INTERNAL, "prune needs the repository's exclusive lock");
    if (o->keep_last < 0)
        return sm_err_set(err, SM_E_USAGE, "--keep-last must be at least 0");

    /* 1. choose and delete manifests */
    if (repo_snapshots(r, &snaps, &nsnaps, err) < 0)
        goto out;
    remove = sm_xcalloc(nsnaps ? nsnaps : 1, 1);
    for (size_t i = 0; i < o->nforget; i++) {
        snapshot *s = NULL;
        size_t k;
        if (repo_snapshot_load(r, o->forget[i], &s, err) < 0)
            goto out;
        for (k = 0; k < nsnaps; k++)
            if (!strcmp(snapshot_id(snaps[k]), snapshot_id(s)))
                remove[k] = 1;
        snapshot_free(s);
    }
    if (o->keep_last > 0 && nsnaps > (size_t)o->keep_last)
        for (size_t k = 0; k < nsnaps - (size_t)o->keep_last; k++)
            remove[k] = 1;
    for (size_t k = 0; k < nsnaps; k++) {
        char key[96];
        if (!remove[k])
            continue;
        preport(&c, "%s snapshot %.12s", o->dry_run ? "would remove" : "removing",
                snapshot_id(snaps[k]));
        res->snapshots_removed++;
        if (o->dry_run)
            continue;
        snprintf(key, sizeof(key), "snapshots/%s", snapshot_id(snaps[k]));
        if (store_delete(r->st, key, err) < 0)
            goto out;
    }

    /* 2. mark what the remaining snapshots reach, from a fresh index */
    repo_index_drop(r);
    if (repo_index_ensure(r, err) < 0)
        goto out;
    blob_reader_init(&c.br, r);
    index_clear_marks(r->idx);
    for (size_t k = 0; k < nsnaps; k++)
        if (!remove[k] && mark_snapshot(&c, snaps[k], err) < 0)
            goto out;

    /* 3. classify packs */
    if (store_list(r->st, "data/", collect_pack, &sp, err) < 0)
        goto out;
    {
        uint32_t np = index_pack_count(r->idx);
        for (uint32_t p = 0; p < np; p++) {
            index_pack *pk = index_pack_at(r->idx, p);
            pk->used = 0;
            pk->state = PK_MISSING;
        }
        for (size_t i = 0; i < index_count(r->idx); i++) {
            index_entry *e = index_entry_at(r->idx, i);
            if (e->mark && e->pack != INDEX_PENDING)
                index_pack_at(r->idx, e->pack)->used += e->len;
        }
        for (size_t i = 0; i < sp.n; i++) {
            uint32_t p;
            index_pack *pk;
            uint64_t garbage;
            res->bytes_before += sp.v[i].size;
            if (index_pack_find(r->idx, sp.v[i].id, &p) != 0) {
                char hex[65];
                sm_hex(hex, sp.v[i].id, 32);
                preport(&c, "orphaned pack %.12s (%llu bytes, from an interrupted backup)", hex,
                        (unsigned long long)sp.v[i].size);
                res->orphans_removed++;
                res->bytes_freed += sp.v[i].size;
                continue;
            }
            pk = index_pack_at(r->idx, p);
            garbage = pk->size > pk->used ? pk->size - pk->used : 0;
            if (pk->used == 0) {
                pk->state = PK_DELETE;
                res->packs_deleted++;
                res->bytes_freed += sp.v[i].size;
            } else if (garbage * 100 > pk->size * threshold) {
                pk->state = PK_REPACK;
                res->packs_repacked++;
                res->bytes_freed += garbage;
            } else {
                pk->state = PK_KEEP;
            }
        }
        /* packs in the index but missing from the store: a live blob there
         * means damage, and prune must not paper over it */
        for (uint32_t p = 0; p < np; p++) {
            index_pack *pk = index_pack_at(r->idx, p);
            char hex[65];
            if (pk->state != PK_MISSING)
                continue;
            sm_hex(hex, pk->id, 32);
            if (pk->used > 0) {
                sm_err_set(err, SM_E_CORRUPT, "pack %.12s is missing but still needed", hex);
                sm_err_hint(err, "Nothing was deleted. Run `supamanager repo verify` to see "
                                 "which snapshots are damaged, and remove them first.");
                goto out;
            }
            preport(&c, "pack %.12s is listed in the index but gone; dropping it", hex);
            pk->state = PK_DELETE;
        }
    }
    if (o->dry_run) {
        preport(&c, "would delete %u packs, repack %u, remove %u orphans, freeing about %llu "
                    "bytes",
                res->packs_deleted, res->packs_repacked, res->orphans_removed,
                (unsigned long long)res->bytes_freed);
        rc = 0;
        goto out;
    }

    /* 4. repack */
    if (res->packs_repacked && repack(&c, &newp, &nnew, &capnew, err) < 0)
        goto out;

    /* 5. new index: kept packs plus new ones (new packs start as PK_KEEP) */
    {
        uint32_t np = index_pack_count(r->idx);
        keep = sm_xmalloc((np ? np : 1) * sizeof(*keep));
        for (uint32_t p = 0; p < np; p++)
            if (index_pack_at(r->idx, p)->state == PK_KEEP)
                keep[nkeep++] = p;
        old_index = r->index_files;
        nold_index = r->nindex_files;
        r->index_files = NULL;
        r->nindex_files = 0;
        for (size_t off = 0; off < nkeep; off += REPO_INDEX_FILE_PACKS) {
            size_t cnt = nkeep - off < REPO_INDEX_FILE_PACKS ? nkeep - off : REPO_INDEX_FILE_PACKS;
            char id[65];
            if (repo_index_write(r, r->cc, keep + off, cnt, id, err) < 0)
                goto out;
        }
    }

    /* 6. old index files go; then the packs, if no reader may need them */
    for (size_t i = 0; i < nold_index; i++)
        if (store_delete(r->st, old_index[i], err) < 0)
            goto out;
    if (repo_has_readers(r, &readers, err) < 0)
        goto out;
    if (readers) {
        preport(&c, "readers are active: unused packs stay until the next prune");
    } else {
        for (size_t i = 0; i < sp.n; i++) {
            uint32_t p;
            char key[96];
            int del = 0;
            if (index_pack_find(r->idx, sp.v[i].id, &p) != 0)
                del = 1; /* orphan */
            else if (index_pack_at(r->idx, p)->state != PK_KEEP)
                del = 1;
            if (!del)
                continue;
            pack_key(key, sizeof(key), sp.v[i].id);
            if (store_delete(r->st, key, err) < 0)
                goto out;
        }
    }
    {
        unsigned removed = 0;
        store_cleanup(r->st, &removed, NULL);
    }
    res->bytes_after = res->bytes_before > res->bytes_freed ? res->bytes_before - res->bytes_freed
                                                            : 0;
    /* the local cache keeps only the trees the kept snapshots use */
    repo_cache_trim(r, 1);
    rc = 0;
out:
    if (c.br.r)
        blob_reader_release(&c.br);
    /* the in-memory index was rebuilt in steps; read it afresh next time */
    repo_index_drop(r);
    for (size_t i = 0; i < nold_index; i++)
        free(old_index[i]);
    free(old_index);
    free(keep);
    free(newp);
    free(sp.v);
    free(remove);
    repo_snapshots_free(snaps, nsnaps);
    return rc;
}
