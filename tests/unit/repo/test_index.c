/* The blob index: claims, locations, packs, index files, pack headers. */
#include "../unit_helpers.h"

#include "repo/index.h"

typedef struct fixture {
    repo_index *idx;
} fixture;

static int setup(void **state)
{
    fixture *f = sm_xcalloc(1, sizeof(*f));
    f->idx = index_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    index_free(f->idx);
    free(f);
    return 0;
}

static blob_id id_of(uint64_t n)
{
    blob_id id;
    th_fill(id.b, sizeof(id.b), n * 2654435761u + 17);
    return id;
}

static void pack_id_of(unsigned char out[32], uint64_t n)
{
    th_fill(out, 32, n + 1000000007u);
}

static pack_blob blob_of(uint64_t n, uint32_t off)
{
    pack_blob b;
    memset(&b, 0, sizeof(b));
    b.id = id_of(n);
    b.type = n % 5 == 0 ? BLOB_TREE : BLOB_DATA;
    b.flags = n % 2 ? BLOB_FLAG_ZSTD : 0;
    b.off = off;
    b.len = (uint32_t)(100 + n % 1000);
    b.raw_len = (uint32_t)(200 + n % 3000);
    return b;
}

static void assert_entry_is(const index_entry *e, const pack_blob *b, uint32_t pack)
{
    assert_true(blob_id_eq(&e->id, &b->id));
    assert_int_equal(e->pack, pack);
    assert_int_equal(e->off, b->off);
    assert_int_equal(e->len, b->len);
    assert_int_equal(e->raw_len, b->raw_len);
    assert_int_equal(e->type, b->type);
    assert_int_equal(e->flags, b->flags);
}

/* ---- claims and locations ---- */

static void claim_of_a_new_id_returns_0_and_leaves_it_pending(void **state)
{
    fixture *f = *state;
    blob_id id = id_of(1);
    index_entry e;

    assert_int_equal(index_claim(f->idx, &id, BLOB_TREE), 0);
    assert_int_equal(index_get(f->idx, &id, &e), 0);
    assert_int_equal(e.pack, INDEX_PENDING);
    assert_int_equal(e.type, BLOB_TREE);
    assert_int_equal(index_count(f->idx), 1);
}

static void second_claim_of_the_same_id_returns_1(void **state)
{
    fixture *f = *state;
    blob_id id = id_of(1);

    assert_int_equal(index_claim(f->idx, &id, BLOB_DATA), 0);
    assert_int_equal(index_claim(f->idx, &id, BLOB_DATA), 1);
    assert_int_equal(index_count(f->idx), 1);
}

static void claim_of_a_stored_id_returns_1(void **state)
{
    fixture *f = *state;
    unsigned char pid[32];
    pack_blob b = blob_of(3, 0);
    uint32_t pn;

    pack_id_of(pid, 1);
    pn = index_pack_add(f->idx, pid);
    index_put(f->idx, pn, &b);
    assert_int_equal(index_claim(f->idx, &b.id, BLOB_DATA), 1);
}

static void get_of_an_unknown_id_returns_1(void **state)
{
    fixture *f = *state;
    blob_id id = id_of(9);
    index_entry e;

    assert_int_equal(index_get(f->idx, &id, &e), 1);
}

static void put_records_the_location_of_a_claimed_blob(void **state)
{
    fixture *f = *state;
    unsigned char pid[32];
    pack_blob b = blob_of(7, 4096);
    index_entry e;
    uint32_t pn;

    pack_id_of(pid, 1);
    assert_int_equal(index_claim(f->idx, &b.id, b.type), 0);
    pn = index_pack_add(f->idx, pid);
    index_put(f->idx, pn, &b);
    assert_int_equal(index_get(f->idx, &b.id, &e), 0);
    assert_entry_is(&e, &b, pn);
    assert_int_equal(index_count(f->idx), 1);
    assert_int_equal(index_pack_at(f->idx, pn)->nblobs, 1);
    assert_int_equal(index_pack_at(f->idx, pn)->size, b.len);
    assert_int_equal(index_pack_at(f->idx, pn)->dups, 0);
}

static void put_of_a_blob_stored_elsewhere_keeps_the_first_and_counts_a_dup(void **state)
{
    fixture *f = *state;
    unsigned char p1[32], p2[32];
    pack_blob b1 = blob_of(7, 0), b2 = b1;
    index_entry e;
    uint32_t n1, n2;

    pack_id_of(p1, 1);
    pack_id_of(p2, 2);
    n1 = index_pack_add(f->idx, p1);
    n2 = index_pack_add(f->idx, p2);
    b2.off = 999;
    index_put(f->idx, n1, &b1);
    index_put(f->idx, n2, &b2);
    assert_int_equal(index_get(f->idx, &b1.id, &e), 0);
    assert_entry_is(&e, &b1, n1);
    assert_int_equal(index_pack_at(f->idx, n1)->dups, 0);
    assert_int_equal(index_pack_at(f->idx, n2)->dups, 1);
    assert_int_equal(index_pack_at(f->idx, n2)->nblobs, 1);
    assert_int_equal(index_count(f->idx), 1);
}

static void relocate_moves_a_blob_and_keeps_its_mark(void **state)
{
    fixture *f = *state;
    unsigned char p1[32], p2[32];
    pack_blob b = blob_of(8, 10), moved;
    index_entry e;
    uint32_t n1, n2;

    pack_id_of(p1, 1);
    pack_id_of(p2, 2);
    n1 = index_pack_add(f->idx, p1);
    n2 = index_pack_add(f->idx, p2);
    index_put(f->idx, n1, &b);
    assert_int_equal(index_mark(f->idx, &b.id, 1), 0);
    moved = b;
    moved.off = 0;
    index_relocate(f->idx, n2, &moved);
    assert_int_equal(index_get(f->idx, &b.id, &e), 0);
    assert_entry_is(&e, &moved, n2);
    assert_int_equal(e.mark, 1);
    assert_int_equal(index_pack_at(f->idx, n2)->dups, 0);
}

static void mark_returns_the_previous_mark_or_minus_1(void **state)
{
    fixture *f = *state;
    blob_id id = id_of(1), other = id_of(2);

    index_claim(f->idx, &id, BLOB_DATA);
    assert_int_equal(index_mark(f->idx, &id, 1), 0);
    assert_int_equal(index_mark(f->idx, &id, 1), 1);
    assert_int_equal(index_mark(f->idx, &other, 1), -1);
    index_clear_marks(f->idx);
    assert_int_equal(index_mark(f->idx, &id, 0), 0);
}

/* ---- packs ---- */

static void pack_add_of_a_known_id_returns_its_number(void **state)
{
    fixture *f = *state;
    unsigned char a[32], b[32];
    uint32_t na, nb, found = 99;

    pack_id_of(a, 1);
    pack_id_of(b, 2);
    na = index_pack_add(f->idx, a);
    nb = index_pack_add(f->idx, b);
    assert_int_equal(na, 0);
    assert_int_equal(nb, 1);
    assert_int_equal(index_pack_add(f->idx, a), na);
    assert_int_equal(index_pack_count(f->idx), 2);
    assert_int_equal(index_pack_find(f->idx, b, &found), 0);
    assert_int_equal(found, nb);
    assert_memory_equal(index_pack_at(f->idx, nb)->id, b, 32);
    assert_null(index_pack_at(f->idx, 2));
}

static void pack_find_of_an_unknown_id_returns_1(void **state)
{
    fixture *f = *state;
    unsigned char a[32];
    uint32_t n = 77;

    pack_id_of(a, 1);
    assert_int_equal(index_pack_find(f->idx, a, &n), 1);
    assert_int_equal(n, 77);
}

static void many_packs_are_all_found(void **state)
{
    fixture *f = *state;

    for (uint32_t i = 0; i < 5000; i++) {
        unsigned char id[32];
        pack_id_of(id, i);
        assert_int_equal(index_pack_add(f->idx, id), i);
    }
    for (uint32_t i = 0; i < 5000; i++) {
        unsigned char id[32];
        uint32_t n = 0;
        pack_id_of(id, i);
        assert_int_equal(index_pack_find(f->idx, id, &n), 0);
        assert_int_equal(n, i);
    }
}

static void many_entries_force_rehashing_and_all_are_found(void **state)
{
    fixture *f = *state;
    unsigned char pid[32];
    uint32_t pn;
    const uint32_t n = 200000;

    pack_id_of(pid, 1);
    pn = index_pack_add(f->idx, pid);
    for (uint32_t i = 0; i < n; i++) {
        pack_blob b = blob_of(i, i);
        if (i % 2 == 0)
            assert_int_equal(index_claim(f->idx, &b.id, b.type), 0);
        index_put(f->idx, pn, &b);
    }
    assert_int_equal(index_count(f->idx), n);
    for (uint32_t i = 0; i < n; i++) {
        pack_blob b = blob_of(i, i);
        index_entry e;
        assert_int_equal(index_get(f->idx, &b.id, &e), 0);
        assert_int_equal(e.off, i);
        assert_int_equal(e.pack, pn);
    }
    for (uint32_t i = n; i < n + 1000; i++) {
        blob_id id = id_of(i);
        index_entry e;
        assert_int_equal(index_get(f->idx, &id, &e), 1);
    }
}

/* ---- index files ---- */

/* Three packs of 10, 0 and 25 blobs; returns their numbers in pn. */
static void fill_three_packs(repo_index *idx, uint32_t pn[3])
{
    static const unsigned counts[3] = {10, 0, 25};
    uint64_t k = 0;

    for (int p = 0; p < 3; p++) {
        unsigned char pid[32];
        pack_id_of(pid, (uint64_t)p);
        pn[p] = index_pack_add(idx, pid);
        for (unsigned i = 0; i < counts[p]; i++, k++) {
            pack_blob b = blob_of(k, i * 1000);
            index_put(idx, pn[p], &b);
        }
    }
}

static void encode_then_decode_roundtrips_several_packs(void **state)
{
    fixture *f = *state;
    repo_index *back = index_new();
    uint32_t pn[3];
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    fill_three_packs(f->idx, pn);
    index_encode(f->idx, pn, 3, &body);
    assert_int_equal(index_decode(back, body.data, body.len, "index/x", &err), 0);
    assert_int_equal(index_count(back), 35);
    assert_int_equal(index_pack_count(back), 3);
    for (size_t i = 0; i < index_count(f->idx); i++) {
        const index_entry *e = index_entry_at(f->idx, i);
        index_entry g;
        pack_blob b;
        assert_int_equal(index_get(back, &e->id, &g), 0);
        b.id = e->id;
        b.type = e->type;
        b.flags = e->flags;
        b.off = e->off;
        b.len = e->len;
        b.raw_len = e->raw_len;
        assert_entry_is(&g, &b, g.pack);
        /* the same pack, by id (numbers may differ) */
        assert_memory_equal(index_pack_at(back, g.pack)->id, index_pack_at(f->idx, e->pack)->id,
                            32);
    }
    for (int p = 0; p < 3; p++) {
        uint32_t n;
        assert_int_equal(index_pack_find(back, index_pack_at(f->idx, pn[p])->id, &n), 0);
        assert_int_equal(index_pack_at(back, n)->nblobs, index_pack_at(f->idx, pn[p])->nblobs);
        assert_true(index_pack_at(back, n)->size == index_pack_at(f->idx, pn[p])->size);
    }
    sm_buf_release(&body);
    index_free(back);
}

static void encode_lists_only_the_given_packs_in_any_order(void **state)
{
    fixture *f = *state;
    repo_index *back = index_new();
    uint32_t pn[3], sel[2];
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    fill_three_packs(f->idx, pn);
    sel[0] = pn[2];
    sel[1] = pn[1];
    index_encode(f->idx, sel, 2, &body);
    assert_int_equal(index_decode(back, body.data, body.len, "index/x", &err), 0);
    assert_int_equal(index_count(back), 25);
    assert_int_equal(index_pack_count(back), 2);
    assert_int_equal(index_pack_find(back, index_pack_at(f->idx, pn[0])->id, &(uint32_t){0}), 1);
    for (size_t i = 0; i < index_count(f->idx); i++) {
        const index_entry *e = index_entry_at(f->idx, i);
        index_entry g;
        assert_int_equal(index_get(back, &e->id, &g), e->pack == pn[0] ? 1 : 0);
    }
    sm_buf_release(&body);
    index_free(back);
}

static void encode_leaves_out_pending_blobs(void **state)
{
    fixture *f = *state;
    repo_index *back = index_new();
    uint32_t pn[3];
    blob_id pending = id_of(999999);
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    index_entry e;

    fill_three_packs(f->idx, pn);
    index_claim(f->idx, &pending, BLOB_DATA);
    index_encode(f->idx, pn, 3, &body);
    assert_int_equal(index_decode(back, body.data, body.len, "index/x", &err), 0);
    assert_int_equal(index_get(back, &pending, &e), 1);
    assert_int_equal(index_count(back), 35);
    sm_buf_release(&body);
    index_free(back);
}

static void decode_of_two_files_sharing_a_blob_counts_a_dup(void **state)
{
    fixture *f = *state;
    repo_index *a = index_new(), *b = index_new();
    unsigned char p1[32], p2[32];
    pack_blob blob = blob_of(5, 0);
    sm_buf f1 = SM_BUF_INIT, f2 = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    uint32_t n1, n2;
    index_entry e;

    pack_id_of(p1, 1);
    pack_id_of(p2, 2);
    n1 = index_pack_add(a, p1);
    index_put(a, n1, &blob);
    index_encode(a, &n1, 1, &f1);
    n2 = index_pack_add(b, p2);
    blob.off = 500;
    index_put(b, n2, &blob);
    index_encode(b, &n2, 1, &f2);
    assert_int_equal(index_decode(f->idx, f1.data, f1.len, "index/1", &err), 0);
    assert_int_equal(index_decode(f->idx, f2.data, f2.len, "index/2", &err), 0);
    assert_int_equal(index_count(f->idx), 1);
    assert_int_equal(index_pack_find(f->idx, p1, &n1), 0);
    assert_int_equal(index_pack_find(f->idx, p2, &n2), 0);
    assert_int_equal(index_pack_at(f->idx, n1)->dups, 0);
    assert_int_equal(index_pack_at(f->idx, n2)->dups, 1);
    assert_int_equal(index_get(f->idx, &blob.id, &e), 0);
    assert_int_equal(e.pack, n1);
    assert_int_equal(e.off, 0);
    sm_buf_release(&f1);
    sm_buf_release(&f2);
    index_free(a);
    index_free(b);
}

static void encode_of_no_packs_decodes_to_nothing(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    index_encode(f->idx, NULL, 0, &body);
    assert_int_equal(body.len, 9);
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/e", &err), 0);
    assert_int_equal(index_count(f->idx), 0);
    sm_buf_release(&body);
}

/* An encoded index file with one pack of three blobs. */
static void one_pack_file(sm_buf *body)
{
    repo_index *idx = index_new();
    uint32_t pn[3];
    unsigned char pid[32];

    pack_id_of(pid, 1);
    pn[0] = index_pack_add(idx, pid);
    for (uint32_t i = 0; i < 3; i++) {
        pack_blob b = blob_of(i + 1, i * 100);
        index_put(idx, pn[0], &b);
    }
    index_encode(idx, pn, 1, body);
    index_free(idx);
}

static void decode_rejects_bad_magic(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    one_pack_file(&body);
    body.data[0] = 'X';
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: bad magic");
    sm_buf_release(&body);
}

static void decode_rejects_a_file_shorter_than_its_header(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    one_pack_file(&body);
    assert_int_equal(index_decode(f->idx, body.data, 8, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: bad magic");
    assert_int_equal(index_decode(f->idx, body.data, 0, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: bad magic");
    sm_buf_release(&body);
}

static void decode_rejects_an_unknown_version(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    one_pack_file(&body);
    body.data[4] = 2;
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/ab", &err), -1);
    assert_err(&err, SM_E_VERSION, "index file 'index/ab' has unknown version 2");
    sm_buf_release(&body);
}

static void decode_rejects_truncation_at_every_length(void **state)
{
    sm_buf body = SM_BUF_INIT;
    (void)state;

    one_pack_file(&body);
    /* any cut after the 9-byte header that leaves the listed packs incomplete */
    for (size_t n = 9; n < body.len; n++) {
        repo_index *idx = index_new();
        sm_err err = SM_ERR_INIT;
        assert_int_equal(index_decode(idx, body.data, n, "index/ab", &err), -1);
        assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: truncated");
        index_free(idx);
    }
    sm_buf_release(&body);
}

static void decode_rejects_a_huge_blob_count_without_allocating(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    one_pack_file(&body);
    sm_store_u32le(body.data + 9 + 32, UINT32_MAX); /* the pack's blob count */
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: truncated");
    sm_buf_release(&body);
}

static void decode_rejects_more_packs_than_listed(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    one_pack_file(&body);
    sm_store_u32le(body.data + 5, 2);
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: truncated");
    sm_buf_release(&body);
}

static void decode_rejects_trailing_bytes(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    one_pack_file(&body);
    sm_buf_putc(&body, 0);
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: trailing bytes");
    sm_buf_release(&body);
}

static void decode_rejects_a_bad_blob_type_or_flag(void **state)
{
    fixture *f = *state;
    sm_buf body = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    const size_t rec = 9 + 32 + 4; /* the first blob record */

    one_pack_file(&body);
    body.data[rec] = 2; /* type */
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: bad blob record");
    body.data[rec] = BLOB_DATA;
    body.data[rec + 1] = 0x80; /* flags */
    assert_int_equal(index_decode(f->idx, body.data, body.len, "index/ab", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "index file 'index/ab' is damaged: bad blob record");
    sm_buf_release(&body);
}

/* ---- pack headers ---- */

static void pack_header_encode_then_decode_roundtrips(void **state)
{
    pack_blob in[20], *out = NULL;
    size_t n = 0;
    sm_buf hdr = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    for (uint32_t i = 0; i < 20; i++)
        in[i] = blob_of(i, i * 64);
    pack_header_encode(in, 20, &hdr);
    assert_int_equal(hdr.len, 9 + 20 * 46);
    assert_memory_equal(hdr.data, "SMPK\x01", 5);
    assert_int_equal(pack_header_decode(hdr.data, hdr.len, &out, &n, "p", &err), 0);
    assert_int_equal(n, 20);
    for (size_t i = 0; i < 20; i++) {
        assert_true(blob_id_eq(&out[i].id, &in[i].id));
        assert_int_equal(out[i].type, in[i].type);
        assert_int_equal(out[i].flags, in[i].flags);
        assert_int_equal(out[i].off, in[i].off);
        assert_int_equal(out[i].len, in[i].len);
        assert_int_equal(out[i].raw_len, in[i].raw_len);
    }
    free(out);
    sm_buf_release(&hdr);
}

static void pack_header_of_no_blobs_roundtrips(void **state)
{
    pack_blob *out = NULL;
    size_t n = 5;
    sm_buf hdr = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    pack_header_encode(NULL, 0, &hdr);
    assert_int_equal(pack_header_decode(hdr.data, hdr.len, &out, &n, "p", &err), 0);
    assert_int_equal(n, 0);
    free(out);
    sm_buf_release(&hdr);
}

static void pack_header_decode_rejects_damage(void **state)
{
    pack_blob in[3], *out = NULL;
    size_t n = 0;
    sm_buf hdr = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    for (uint32_t i = 0; i < 3; i++)
        in[i] = blob_of(i, i);
    pack_header_encode(in, 3, &hdr);
    /* a count that does not match the records */
    assert_int_equal(pack_header_decode(hdr.data, hdr.len - 1, &out, &n, "ab12", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "pack 'ab12' has a damaged header");
    assert_int_equal(pack_header_decode(hdr.data, 8, &out, &n, "ab12", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "pack 'ab12' has a damaged header");
    hdr.data[9] = 7; /* the first record's type */
    assert_int_equal(pack_header_decode(hdr.data, hdr.len, &out, &n, "ab12", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "pack 'ab12' has a damaged header");
    hdr.data[9] = 0;
    hdr.data[2] = 'X';
    assert_int_equal(pack_header_decode(hdr.data, hdr.len, &out, &n, "ab12", &err), -1);
    assert_err(&err, SM_E_CORRUPT, "pack 'ab12' has a damaged header");
    hdr.data[2] = 'P';
    hdr.data[4] = 9;
    assert_int_equal(pack_header_decode(hdr.data, hdr.len, &out, &n, "ab12", &err), -1);
    assert_err(&err, SM_E_VERSION, "pack 'ab12' has unknown header version 9");
    assert_null(out);
    sm_buf_release(&hdr);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(claim_of_a_new_id_returns_0_and_leaves_it_pending),
        T(second_claim_of_the_same_id_returns_1),
        T(claim_of_a_stored_id_returns_1),
        T(get_of_an_unknown_id_returns_1),
        T(put_records_the_location_of_a_claimed_blob),
        T(put_of_a_blob_stored_elsewhere_keeps_the_first_and_counts_a_dup),
        T(relocate_moves_a_blob_and_keeps_its_mark),
        T(mark_returns_the_previous_mark_or_minus_1),
        T(pack_add_of_a_known_id_returns_its_number),
        T(pack_find_of_an_unknown_id_returns_1),
        T(many_packs_are_all_found),
        T(many_entries_force_rehashing_and_all_are_found),
        T(encode_then_decode_roundtrips_several_packs),
        T(encode_lists_only_the_given_packs_in_any_order),
        T(encode_leaves_out_pending_blobs),
        T(decode_of_two_files_sharing_a_blob_counts_a_dup),
        T(encode_of_no_packs_decodes_to_nothing),
        T(decode_rejects_bad_magic),
        T(decode_rejects_a_file_shorter_than_its_header),
        T(decode_rejects_an_unknown_version),
        T(decode_rejects_truncation_at_every_length),
        T(decode_rejects_a_huge_blob_count_without_allocating),
        T(decode_rejects_more_packs_than_listed),
        T(decode_rejects_trailing_bytes),
        T(decode_rejects_a_bad_blob_type_or_flag),
        T(pack_header_encode_then_decode_roundtrips),
        T(pack_header_of_no_blobs_roundtrips),
        T(pack_header_decode_rejects_damage),
    };
    return cmocka_run_group_tests_name("repo_index", tests, NULL, NULL);
}
