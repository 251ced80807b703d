/* The local directory store: objects, ranges, listing, keys, temporary files. */
#include "../unit_helpers.h"

#include "store/store.h"

#include <limits.h>

typedef struct fixture {
    char *dir;  /* the temporary directory */
    char *root; /* the store's root, dir/store (not created yet) */
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = sm_xcalloc(1, sizeof(*f));
    sm_err err = SM_ERR_INIT;

    f->dir = th_tmpdir();
    f->root = th_path(f->dir, "store");
    if (store_open(&f->st, f->root, &err) < 0) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_free(f->st);
    free(f->root);
    th_rmdir(f->dir);
    free(f);
    return 0;
}

static void put(fixture *f, const char *key, const char *text)
{
    sm_err err = SM_ERR_INIT;
    if (store_put(f->st, key, text, strlen(text), &err) != 0)
        fail_msg("store_put('%s'): %s", key, err.msg);
}

/* Collects "key=size" lines, sorted, for comparison. */
typedef struct listing {
    char *v[64];
    size_t n;
} listing;

static int collect(const char *key, uint64_t size, void *ud, sm_err *err)
{
    listing *l = ud;
    (void)err;
    assert_true(l->n < 64);
    l->v[l->n++] = sm_xasprintf("%s=%llu", key, (unsigned long long)size);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *list_text(fixture *f, const char *prefix)
{
    listing l = {{0}, 0};
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    if (store_list(f->st, prefix, collect, &l, &err) != 0)
        fail_msg("store_list('%s'): %s", prefix, err.msg);
    qsort(l.v, l.n, sizeof(l.v[0]), cmp_str);
    for (size_t i = 0; i < l.n; i++) {
        sm_buf_putf(&out, "%s%s", i ? " " : "", l.v[i]);
        free(l.v[i]);
    }
    return sm_buf_detach(&out, NULL);
}

/* ---- opening ---- */

static void open_makes_a_relative_path_absolute(void **state)
{
    fixture *f = *state;
    char cwd[PATH_MAX], *want;
    store *st = NULL;
    sm_err err = SM_ERR_INIT;

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(store_open(&st, "rel/repo", &err), 0);
    assert_int_equal(chdir(cwd), 0);
    want = th_path(f->dir, "rel/repo");
    assert_string_equal(store_location(st), want);
    free(want);
    store_free(st);
}

static void open_accepts_file_urls_and_strips_trailing_slashes(void **state)
{
    fixture *f = *state;
    char *url = sm_xasprintf("file://%s//", f->root);
    store *st = NULL;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(store_open(&st, url, &err), 0);
    assert_string_equal(store_location(st), f->root);
    store_free(st);
    free(url);
}

static void open_rejects_other_url_schemes(void **state)
{
    store *st = NULL;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(store_open(&st, "gs://bucket/x", &err), -1);
    assert_err(&err, SM_E_USAGE, "unsupported store location 'gs://bucket/x'");
    assert_string_equal(err.hint, "Use a directory path (or file://PATH) or s3://BUCKET[/PREFIX].");
    assert_null(st);
}

static void open_rejects_an_empty_location(void **state)
{
    store *st = NULL;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(store_open(&st, "", &err), -1);
    assert_err(&err, SM_E_USAGE, "no repository location given");
    assert_int_equal(store_open(&st, NULL, &err), -1);
    assert_err(&err, SM_E_USAGE, "no repository location given");
}

static void free_of_null_is_fine(void **state)
{
    (void)state;
    store_free(NULL);
}

/* ---- put, get, stat ---- */

static void put_then_get_returns_the_bytes(void **state)
{
    fixture *f = *state;
    unsigned char *data = th_random(300000, 1);
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(store_put(f->st, "data/ab/obj", data, 300000, &err), 0);
    sm_buf_puts(&out, "old content is replaced");
    assert_int_equal(store_get(f->st, "data/ab/obj", 0, 0, &out, &err), 0);
    assert_int_equal(out.len, 300000);
    assert_memory_equal(out.data, data, 300000);
    assert_int_equal(out.data[out.len], 0);
    sm_buf_release(&out);
    free(data);
}

static void put_replaces_an_object_and_leaves_no_temporary_file(void **state)
{
    fixture *f = *state;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char *dir = th_path(f->root, "locks");

    put(f, "locks/l1", "first version");
    put(f, "locks/l1", "second");
    assert_int_equal(store_get(f->st, "locks/l1", 0, 0, &out, &err), 0);
    assert_string_equal(sm_buf_str(&out), "second");
    assert_int_equal(th_count_entries(dir), 1);
    sm_buf_release(&out);
    free(dir);
}

static void put_of_an_empty_object_works(void **state)
{
    fixture *f = *state;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    uint64_t size = 99;

    assert_int_equal(store_put(f->st, "empty", "", 0, &err), 0);
    assert_int_equal(store_stat(f->st, "empty", &size, &err), 0);
    assert_int_equal(size, 0);
    assert_int_equal(store_get(f->st, "empty", 0, 0, &out, &err), 0);
    assert_int_equal(out.len, 0);
    sm_buf_release(&out);
}

static void put_deferred_then_get_returns_the_bytes(void **state)
{
    fixture *f = *state;
    unsigned char *data = th_random(70000, 2);
    char *dir = th_path(f->root, "data/ab");
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char *s;

    assert_int_equal(store_put_deferred(f->st, "data/ab/pack1", data, 70000, &err), 0);
    assert_int_equal(store_get(f->st, "data/ab/pack1", 0, 0, &out, &err), 0);
    assert_int_equal(out.len, 70000);
    assert_memory_equal(out.data, data, 70000);
    s = list_text(f, "data/");
    assert_string_equal(s, "data/ab/pack1=70000");
    assert_int_equal(th_count_entries(dir), 1); /* no temporary file is left */
    assert_int_equal(store_flush(f->st, &err), 0);
    assert_int_equal(store_get(f->st, "data/ab/pack1", 0, 0, &out, &err), 0);
    assert_int_equal(out.len, 70000);
    free(s);
    free(dir);
    sm_buf_release(&out);
    free(data);
}

static void flush_without_deferred_puts_succeeds(void **state)
{
    fixture *f = *state;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(store_flush(f->st, &err), 0);
    assert_int_equal(store_put_deferred(f->st, "a/1", "x", 1, &err), 0);
    assert_int_equal(store_put_deferred(f->st, "b/2", "y", 1, &err), 0);
    assert_int_equal(store_flush(f->st, &err), 0);
    assert_int_equal(store_flush(f->st, &err), 0); /* nothing left to flush */
    assert_int_equal(err.code, SM_OK);
}

static void put_deferred_rejects_an_unsafe_key(void **state)
{
    fixture *f = *state;
    sm_err err = SM_ERR_INIT;
    char *outside = th_path(f->dir, "escaped");

    assert_int_equal(store_put_deferred(f->st, "../escaped", "x", 1, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "invalid store key '../escaped'");
    assert_false(sm_exists(outside));
    free(outside);
}

static void get_of_a_range_returns_those_bytes(void **state)
{
    fixture *f = *state;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    put(f, "obj", "0123456789");
    assert_int_equal(store_get(f->st, "obj", 2, 3, &out, &err), 0);
    assert_int_equal(out.len, 3);
    assert_string_equal(sm_buf_str(&out), "234");
    assert_int_equal(store_get(f->st, "obj", 7, 0, &out, &err), 0);
    assert_string_equal(sm_buf_str(&out), "789");
    assert_int_equal(store_get(f->st, "obj", 6, 4, &out, &err), 0);
    assert_string_equal(sm_buf_str(&out), "6789");
    assert_int_equal(store_get(f->st, "obj", 10, 0, &out, &err), 0);
    assert_int_equal(out.len, 0);
    sm_buf_release(&out);
}

static void get_of_a_range_past_the_end_fails_as_corrupt(void **state)
{
    fixture *f = *state;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    put(f, "obj", "0123456789");
    assert_int_equal(store_get(f->st, "obj", 8, 5, &out, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "object 'obj' is truncated: 10 bytes, expected at least 13");
    assert_int_equal(store_get(f->st, "obj", 11, 0, &out, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "object 'obj' is truncated: 10 bytes, expected at least 11");
    sm_buf_release(&out);
}

/* Regression (a bug found by this test, now fixed: src/store/local.c, local_get): the bounds check `off + len > size`
 * wraps around for a huge len, so a range that lies past the end is not
 * reported as SM_E_CORRUPT (the header promises "a short object fails with
 * SM_E_CORRUPT"); it fails later with SM_E_LIMIT "is too large to read at
 * once" instead. Index entries come from decrypted data, so this only bites
 * with a bug elsewhere, but the check should not overflow. Skipped until
 * fixed. */
static void get_of_a_range_with_a_huge_length_fails_as_corrupt(void **state)
{
    fixture *f = *state;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    put(f, "obj", "0123456789");
    assert_int_equal(store_get(f->st, "obj", 2, UINT64_MAX - 1, &out, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    sm_buf_release(&out);
}

static void get_of_a_missing_object_fails_with_not_found(void **state)
{
    fixture *f = *state;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char want[4200];

    assert_int_equal(store_get(f->st, "x", 0, 0, &out, &err), -1);
    snprintf(want, sizeof(want), "object 'x' is missing from '%s'", f->root);
    assert_err(&err, SM_E_NOTFOUND, want);
    sm_buf_release(&out);
}

static void stat_gives_the_size_or_1_when_absent(void **state)
{
    fixture *f = *state;
    sm_err err = SM_ERR_INIT;
    uint64_t size = 0;

    put(f, "snapshots/s1", "12345");
    assert_int_equal(store_stat(f->st, "snapshots/s1", &size, &err), 0);
    assert_int_equal(size, 5);
    assert_int_equal(store_stat(f->st, "snapshots/s1", NULL, &err), 0);
    size = 77;
    assert_int_equal(store_stat(f->st, "snapshots/s2", &size, &err), 1);
    assert_int_equal(size, 77);
    assert_int_equal(err.code, SM_OK);
}

static void delete_removes_an_object_and_a_missing_one_is_fine(void **state)
{
    fixture *f = *state;
    sm_err err = SM_ERR_INIT;

    put(f, "keys/k1", "x");
    assert_int_equal(store_delete(f->st, "keys/k1", &err), 0);
    assert_int_equal(store_stat(f->st, "keys/k1", NULL, &err), 1);
    assert_int_equal(store_delete(f->st, "keys/k1", &err), 0);
    assert_int_equal(store_delete(f->st, "never/was", &err), 0);
    assert_int_equal(err.code, SM_OK);
}

/* ---- listing ---- */

static void list_with_a_prefix_gives_only_those_objects(void **state)
{
    fixture *f = *state;
    char *s;

    put(f, "config", "c");
    put(f, "snapshots/aa", "12");
    put(f, "snapshots/bb", "123");
    put(f, "data/ab/abc", "1234");
    put(f, "data/cd/cde", "12345");
    s = list_text(f, "snapshots/");
    assert_string_equal(s, "snapshots/aa=2 snapshots/bb=3");
    free(s);
    s = list_text(f, "data/");
    assert_string_equal(s, "data/ab/abc=4 data/cd/cde=5");
    free(s);
    s = list_text(f, "data/ab/");
    assert_string_equal(s, "data/ab/abc=4");
    free(s);
    s = list_text(f, "");
    assert_string_equal(s, "config=1 data/ab/abc=4 data/cd/cde=5 snapshots/aa=2 snapshots/bb=3");
    free(s);
}

static void list_of_a_missing_prefix_or_store_is_empty(void **state)
{
    fixture *f = *state;
    char *s;

    s = list_text(f, ""); /* the root does not exist yet */
    assert_string_equal(s, "");
    free(s);
    put(f, "config", "c");
    s = list_text(f, "index/");
    assert_string_equal(s, "");
    free(s);
}

static void list_rejects_a_prefix_without_a_slash(void **state)
{
    fixture *f = *state;
    listing l = {{0}, 0};
    sm_err err = SM_ERR_INIT;

    assert_int_equal(store_list(f->st, "snapshots", collect, &l, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "store prefix 'snapshots' must end with '/'");
}

static int stop_at_first(const char *key, uint64_t size, void *ud, sm_err *err)
{
    (void)key;
    (void)size;
    (void)err;
    (*(int *)ud)++;
    return 7;
}

static void list_stops_when_the_callback_returns_non_zero(void **state)
{
    fixture *f = *state;
    sm_err err = SM_ERR_INIT;
    int calls = 0;

    put(f, "a/1", "x");
    put(f, "a/2", "x");
    put(f, "a/3", "x");
    assert_int_equal(store_list(f->st, "a/", stop_at_first, &calls, &err), 7);
    assert_int_equal(calls, 1);
}

/* ---- keys ---- */

static void key_check_rejects_unsafe_keys(void **state)
{
    static const char *const bad[] = {"../x",  "/abs", "a//b", "a b",  "",     ".", "..",
                                      "a/./b", "a/",   "a/..", "a\\b", "a\nb", "ä", "x/../y"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sm_err err = SM_ERR_INIT;
        char want[64];
        if (store_key_check(bad[i], &err) != -1)
            fail_msg("store_key_check accepted '%s'", bad[i]);
        snprintf(want, sizeof(want), "invalid store key '%s'", bad[i]);
        assert_err(&err, SM_E_INTERNAL, want);
    }
}

static void key_check_accepts_repository_keys(void **state)
{
    static const char *const ok[] = {"config", "keys/0123abcd", "data/ab/ab12-x_y.z",
                                     "...",    ".hidden",       "a/b/c/d"};
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        sm_err err = SM_ERR_INIT;
        if (store_key_check(ok[i], &err) != 0)
            fail_msg("store_key_check rejected '%s': %s", ok[i], err.msg);
    }
}

static void operations_with_an_unsafe_key_touch_nothing(void **state)
{
    fixture *f = *state;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char *outside = th_path(f->dir, "escaped");

    assert_int_equal(store_put(f->st, "../escaped", "x", 1, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "invalid store key '../escaped'");
    assert_false(sm_exists(outside));
    th_write_str(outside, "keep");
    assert_int_equal(store_get(f->st, "../escaped", 0, 0, &out, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "invalid store key '../escaped'");
    assert_int_equal(store_stat(f->st, "../escaped", NULL, &err), -1);
    assert_int_equal(store_delete(f->st, "../escaped", &err), -1);
    assert_true(sm_exists(outside));
    sm_buf_release(&out);
    free(outside);
}

/* ---- temporary files ---- */

static char *make_temp_file(fixture *f, const char *name, long pid)
{
    char *dir = th_path(f->root, "snapshots");
    char *rel = sm_xasprintf("%s.tmp.%ld.1a2b", name, pid);
    char *path = th_path(dir, rel);
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_mkdir_p(dir, 0700, &err), 0);
    th_write_str(path, "partial");
    free(dir);
    free(rel);
    return path;
}

static void temporary_files_are_not_listed(void **state)
{
    fixture *f = *state;
    char *tmp = make_temp_file(f, "s1", (long)th_dead_pid());
    char *s;

    put(f, "snapshots/s2", "x");
    s = list_text(f, "snapshots/");
    assert_string_equal(s, "snapshots/s2=1");
    free(s);
    free(tmp);
}

static void cleanup_removes_temporary_files_of_dead_processes(void **state)
{
    fixture *f = *state;
    char *tmp = make_temp_file(f, "s1", (long)th_dead_pid());
    sm_err err = SM_ERR_INIT;
    unsigned removed = 99;

    put(f, "snapshots/s2", "x");
    assert_int_equal(store_cleanup(f->st, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_false(sm_exists(tmp));
    assert_int_equal(store_stat(f->st, "snapshots/s2", NULL, &err), 0);
    free(tmp);
}

static void cleanup_keeps_temporary_files_of_live_processes(void **state)
{
    fixture *f = *state;
    char *tmp = make_temp_file(f, "s1", (long)getpid());
    sm_err err = SM_ERR_INIT;
    unsigned removed = 99;

    assert_int_equal(store_cleanup(f->st, &removed, &err), 0);
    assert_int_equal(removed, 0);
    assert_true(sm_exists(tmp));
    free(tmp);
}

static void cleanup_of_a_missing_store_removes_nothing(void **state)
{
    fixture *f = *state;
    sm_err err = SM_ERR_INIT;
    unsigned removed = 99;

    assert_int_equal(store_cleanup(f->st, &removed, &err), 0);
    assert_int_equal(removed, 0);
}

static void free_space_is_known_even_before_the_root_exists(void **state)
{
    fixture *f = *state;
    sm_err err = SM_ERR_INIT;
    uint64_t bytes = 0;

    assert_int_equal(store_free_space(f->st, &bytes, &err), 0);
    assert_true(bytes > 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(open_makes_a_relative_path_absolute),
        T(open_accepts_file_urls_and_strips_trailing_slashes),
        T(open_rejects_other_url_schemes),
        T(open_rejects_an_empty_location),
        T(free_of_null_is_fine),
        T(put_then_get_returns_the_bytes),
        T(put_replaces_an_object_and_leaves_no_temporary_file),
        T(put_of_an_empty_object_works),
        T(put_deferred_then_get_returns_the_bytes),
        T(flush_without_deferred_puts_succeeds),
        T(put_deferred_rejects_an_unsafe_key),
        T(get_of_a_range_returns_those_bytes),
        T(get_of_a_range_past_the_end_fails_as_corrupt),
        T(get_of_a_range_with_a_huge_length_fails_as_corrupt),
        T(get_of_a_missing_object_fails_with_not_found),
        T(stat_gives_the_size_or_1_when_absent),
        T(delete_removes_an_object_and_a_missing_one_is_fine),
        T(list_with_a_prefix_gives_only_those_objects),
        T(list_of_a_missing_prefix_or_store_is_empty),
        T(list_rejects_a_prefix_without_a_slash),
        T(list_stops_when_the_callback_returns_non_zero),
        T(key_check_rejects_unsafe_keys),
        T(key_check_accepts_repository_keys),
        T(operations_with_an_unsafe_key_touch_nothing),
        T(temporary_files_are_not_listed),
        T(cleanup_removes_temporary_files_of_dead_processes),
        T(cleanup_keeps_temporary_files_of_live_processes),
        T(cleanup_of_a_missing_store_removes_nothing),
        T(free_space_is_known_even_before_the_root_exists),
    };
    return cmocka_run_group_tests_name("store_local", tests, NULL, NULL);
}
