/* The content-defined chunker (FastCDC): parameters, bounds, determinism,
 * seeds and resynchronisation after an edit. */
#include "../unit_helpers.h"

#include "repo/chunker.h"

#define MIN 1024u
#define AVG 4096u
#define MAX 16384u
#define DATA (2u << 20)

static const chunker_params small = {MIN, AVG, MAX};

static void seed_of(unsigned char seed[32], unsigned char v)
{
    memset(seed, 0, 32);
    seed[0] = v;
    seed[31] = (unsigned char)(v * 7 + 1);
}

/* Cuts all of (p, n) as a backup does and records where each chunk ends. */
typedef struct cuts {
    size_t *end;
    size_t n;
} cuts;

static cuts cut_all(const chunker *c, const unsigned char *p, size_t n)
{
    cuts r = {sm_xmalloc((n / 64 + 2) * sizeof(size_t)), 0};
    size_t off = 0;

    while (off < n) {
        size_t k = chunker_cut(c, p + off, n - off);
        assert_true(k > 0);
        off += k;
        r.end[r.n++] = off;
    }
    return r;
}

static int cuts_equal(const cuts *a, const cuts *b)
{
    return a->n == b->n && memcmp(a->end, b->end, a->n * sizeof(size_t)) == 0;
}

/* ---- parameters ---- */

static void params_check_accepts_valid_sizes(void **state)
{
    static const chunker_params ok[] = {
        {64, 64, 64},
        {MIN, AVG, MAX},
        {CHUNKER_DEFAULT_MIN, CHUNKER_DEFAULT_AVG, CHUNKER_DEFAULT_MAX},
        {AVG, AVG, AVG},
        {64, 1u << 20, CHUNKER_LIMIT_MAX},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        chunker *c;
        unsigned char seed[32];
        if (chunker_params_check(&ok[i]) != 0)
            fail_msg("rejected min=%u avg=%u max=%u", ok[i].min, ok[i].avg, ok[i].max);
        seed_of(seed, 1);
        c = chunker_new(&ok[i], seed);
        assert_non_null(c);
        chunker_free(c);
    }
}

static void params_check_rejects_bad_sizes(void **state)
{
    static const chunker_params bad[] = {
        {63, 4096, 16384},                   /* min below 64 */
        {0, 4096, 16384},                    /* min 0 */
        {1024, 32, 16384},                   /* avg below 64 (and below min) */
        {1024, 3000, 16384},                 /* avg not a power of two */
        {8192, 4096, 16384},                 /* min > avg */
        {1024, 4096, 2048},                  /* avg > max */
        {1024, 4096, CHUNKER_LIMIT_MAX + 1}, /* max above 64 MiB */
        {1024, 0, 16384},                    /* avg 0 */
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (chunker_params_check(&bad[i]) != -1)
            fail_msg("accepted min=%u avg=%u max=%u", bad[i].min, bad[i].avg, bad[i].max);
}

static void chunker_new_refuses_bad_params(void **state)
{
    const chunker_params bad = {1024, 3000, 16384};
    unsigned char seed[32];
    (void)state;

    seed_of(seed, 1);
    assert_null(chunker_new(&bad, seed));
}

static void chunker_keeps_its_params(void **state)
{
    unsigned char seed[32];
    chunker *c;
    const chunker_params *p;
    (void)state;

    seed_of(seed, 1);
    c = chunker_new(&small, seed);
    p = chunker_get_params(c);
    assert_int_equal(p->min, MIN);
    assert_int_equal(p->avg, AVG);
    assert_int_equal(p->max, MAX);
    chunker_free(c);
}

/* ---- small inputs ---- */

static void cut_of_zero_bytes_is_zero(void **state)
{
    unsigned char seed[32], b[1] = {0};
    chunker *c;
    (void)state;

    seed_of(seed, 1);
    c = chunker_new(&small, seed);
    assert_int_equal(chunker_cut(c, b, 0), 0);
    chunker_free(c);
}

static void cut_of_tiny_inputs_takes_them_whole(void **state)
{
    unsigned char seed[32], *p = th_random(MIN + 1, 3);
    chunker *c;
    (void)state;

    seed_of(seed, 1);
    c = chunker_new(&small, seed);
    assert_int_equal(chunker_cut(c, p, 1), 1);
    assert_int_equal(chunker_cut(c, p, 100), 100);
    assert_int_equal(chunker_cut(c, p, MIN), MIN);
    assert_int_equal(chunker_cut(c, p, MIN + 1), MIN + 1);
    chunker_free(c);
    free(p);
}

static void cut_never_returns_more_than_it_was_given(void **state)
{
    unsigned char seed[32], *p = th_random(MAX, 4);
    chunker *c;
    (void)state;

    seed_of(seed, 1);
    c = chunker_new(&small, seed);
    for (size_t n = MIN; n <= MAX; n += 97) {
        size_t k = chunker_cut(c, p, n);
        assert_true(k >= MIN && k <= n);
    }
    chunker_free(c);
    free(p);
}

/* ---- bounds and sizes ---- */

static void every_chunk_but_the_last_is_between_min_and_max(void **state)
{
    unsigned char seed[32], *p = th_random(DATA, 5);
    chunker *c;
    cuts r;
    size_t prev = 0;
    (void)state;

    seed_of(seed, 1);
    c = chunker_new(&small, seed);
    r = cut_all(c, p, DATA);
    assert_true(r.n > 100);
    for (size_t i = 0; i < r.n; i++) {
        size_t len = r.end[i] - prev;
        if (i + 1 < r.n)
            assert_in_range(len, MIN, MAX);
        else
            assert_in_range(len, 1, MAX);
        prev = r.end[i];
    }
    assert_int_equal(r.end[r.n - 1], DATA);
    free(r.end);
    chunker_free(c);
    free(p);
}

static void chunk_sizes_cluster_around_the_average(void **state)
{
    unsigned char seed[32], *p = th_random(DATA, 6);
    chunker *c;
    cuts r;
    size_t at_max = 0, prev = 0;
    (void)state;

    seed_of(seed, 2);
    c = chunker_new(&small, seed);
    r = cut_all(c, p, DATA);
    /* the mean lies near avg, and random data is rarely cut by force at max */
    assert_in_range(DATA / r.n, AVG / 2, AVG * 2);
    for (size_t i = 0; i < r.n; i++) {
        if (r.end[i] - prev == MAX)
            at_max++;
        prev = r.end[i];
    }
    assert_true(at_max * 20 < r.n);
    free(r.end);
    chunker_free(c);
    free(p);
}

static void zero_filled_input_is_cut_into_equal_chunks(void **state)
{
    unsigned char seed[32], *p = sm_xcalloc(8 * MAX, 1);
    chunker *c;
    cuts r;
    (void)state;

    seed_of(seed, 1);
    c = chunker_new(&small, seed);
    r = cut_all(c, p, 8 * MAX);
    /* the same content gives the same chunks, so runs of zeros deduplicate */
    for (size_t i = 1; i + 1 < r.n; i++)
        assert_int_equal(r.end[i] - r.end[i - 1], r.end[0]);
    free(r.end);
    chunker_free(c);
    free(p);
}

/* ---- determinism and seeds ---- */

static void same_seed_gives_the_same_boundaries(void **state)
{
    unsigned char seed[32], *p = th_random(DATA, 7);
    chunker *a, *b;
    cuts ra, rb;
    (void)state;

    seed_of(seed, 3);
    a = chunker_new(&small, seed);
    b = chunker_new(&small, seed);
    ra = cut_all(a, p, DATA);
    rb = cut_all(b, p, DATA);
    assert_true(cuts_equal(&ra, &rb));
    free(ra.end);
    free(rb.end);
    chunker_free(a);
    chunker_free(b);
    free(p);
}

static void different_seeds_give_different_boundaries(void **state)
{
    unsigned char s1[32], s2[32], *p = th_random(DATA, 8);
    chunker *a, *b;
    cuts ra, rb;
    size_t shared = 0;
    (void)state;

    seed_of(s1, 3);
    seed_of(s2, 4);
    a = chunker_new(&small, s1);
    b = chunker_new(&small, s2);
    ra = cut_all(a, p, DATA);
    rb = cut_all(b, p, DATA);
    assert_false(cuts_equal(&ra, &rb));
    /* not merely shifted: most boundaries differ */
    for (size_t i = 0, j = 0; i < ra.n && j < rb.n;) {
        if (ra.end[i] == rb.end[j]) {
            shared++;
            i++;
            j++;
        } else if (ra.end[i] < rb.end[j]) {
            i++;
        } else {
            j++;
        }
    }
    assert_true(shared * 4 < ra.n);
    free(ra.end);
    free(rb.end);
    chunker_free(a);
    chunker_free(b);
    free(p);
}

/* ---- content-defined resynchronisation ---- */

/* Chunks of b whose content is not a chunk of a (compared by position
 * after undoing the shift of the edit at `at` of `delta` bytes). */
static size_t changed_chunks(const cuts *a, const cuts *b, size_t at, long delta)
{
    size_t changed = 0, prev_b = 0;

    for (size_t j = 0; j < b->n; j++) {
        int found = 0;
        size_t start = prev_b, end = b->end[j];
        prev_b = end;
        if (end <= at) {
            /* before the edit: must be a chunk of a at the same place */
            for (size_t i = 0; i < a->n && !found; i++)
                found = a->end[i] == end && (i ? a->end[i - 1] : 0) == start;
        } else if (start >= at + (delta > 0 ? (size_t)delta : 0)) {
            for (size_t i = 0; i < a->n && !found; i++)
                found = (long)a->end[i] + delta == (long)end &&
                        (long)(i ? a->end[i - 1] : 0) + delta == (long)start;
        }
        if (!found)
            changed++;
    }
    return changed;
}

static void inserting_bytes_changes_only_chunks_near_the_edit(void **state)
{
    unsigned char seed[32], *p = th_random(DATA, 9), *q = sm_xmalloc(DATA + 10);
    chunker *c;
    cuts ra, rb;
    const size_t at = 50000;
    (void)state;

    memcpy(q, p, at);
    memcpy(q + at, "0123456789", 10);
    memcpy(q + at + 10, p + at, DATA - at);
    seed_of(seed, 5);
    c = chunker_new(&small, seed);
    ra = cut_all(c, p, DATA);
    rb = cut_all(c, q, DATA + 10);
    assert_true(ra.n > 100);
    assert_in_range(changed_chunks(&ra, &rb, at, 10), 1, 3);
    free(ra.end);
    free(rb.end);
    chunker_free(c);
    free(p);
    free(q);
}

static void deleting_bytes_changes_only_chunks_near_the_edit(void **state)
{
    unsigned char seed[32], *p = th_random(DATA, 10), *q = sm_xmalloc(DATA);
    chunker *c;
    cuts ra, rb;
    const size_t at = 300000;
    (void)state;

    memcpy(q, p, at);
    memcpy(q + at, p + at + 1000, DATA - at - 1000);
    seed_of(seed, 6);
    c = chunker_new(&small, seed);
    ra = cut_all(c, p, DATA);
    rb = cut_all(c, q, DATA - 1000);
    assert_in_range(changed_chunks(&ra, &rb, at, -1000), 1, 3);
    free(ra.end);
    free(rb.end);
    chunker_free(c);
    free(p);
    free(q);
}

static void a_change_in_the_first_bytes_of_a_chunk_keeps_every_boundary(void **state)
{
    unsigned char seed[32], *p = th_random(DATA, 11);
    chunker *c;
    cuts before, after;
    (void)state;

    seed_of(seed, 7);
    c = chunker_new(&small, seed);
    before = cut_all(c, p, DATA);
    /* the gear hash only looks at the 64 bytes before a cut point and never
     * cuts inside the first min bytes: bytes early in a chunk do not matter */
    for (size_t i = 10; i < 20; i++)
        p[before.end[i] + 100] ^= 0x5a;
    after = cut_all(c, p, DATA);
    assert_true(cuts_equal(&before, &after));
    free(before.end);
    free(after.end);
    chunker_free(c);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params_check_accepts_valid_sizes),
        cmocka_unit_test(params_check_rejects_bad_sizes),
        cmocka_unit_test(chunker_new_refuses_bad_params),
        cmocka_unit_test(chunker_keeps_its_params),
        cmocka_unit_test(cut_of_zero_bytes_is_zero),
        cmocka_unit_test(cut_of_tiny_inputs_takes_them_whole),
        cmocka_unit_test(cut_never_returns_more_than_it_was_given),
        cmocka_unit_test(every_chunk_but_the_last_is_between_min_and_max),
        cmocka_unit_test(chunk_sizes_cluster_around_the_average),
        cmocka_unit_test(zero_filled_input_is_cut_into_equal_chunks),
        cmocka_unit_test(same_seed_gives_the_same_boundaries),
        cmocka_unit_test(different_seeds_give_different_boundaries),
        cmocka_unit_test(inserting_bytes_changes_only_chunks_near_the_edit),
        cmocka_unit_test(deleting_bytes_changes_only_chunks_near_the_edit),
        cmocka_unit_test(a_change_in_the_first_bytes_of_a_chunk_keeps_every_boundary),
    };
    return cmocka_run_group_tests_name("repo_chunker", tests, NULL, NULL);
}
