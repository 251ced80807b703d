/* fsutil: atomic writes, bounded reads, mkdir -p, rm -rf, paths. */
#include "../unit_helpers.h"

#include "core/fsutil.h"

#include <errno.h>

static int setup(void **state)
{
    *state = th_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    th_rmdir(*state);
    return 0;
}

static void write_file_atomic_writes_the_content(void **state)
{
    char *path = th_path(*state, "f");
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    assert_int_equal(sm_write_file_atomic(path, "hello", 5, 0, &err), 0);
    th_read(path, &b);
    assert_int_equal(b.len, 5);
    assert_string_equal(sm_buf_str(&b), "hello");
    sm_buf_release(&b);
    free(path);
}

static void write_file_atomic_leaves_no_temporary_file(void **state)
{
    char *path = th_path(*state, "f");
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_write_file_atomic(path, "a", 1, 0, &err), 0);
    assert_int_equal(sm_write_file_atomic(path, "bb", 2, 0, &err), 0);
    assert_int_equal(th_count_entries(*state), 1);
    free(path);
}

static void write_file_atomic_replaces_an_existing_file(void **state)
{
    char *path = th_path(*state, "f");
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    th_write_str(path, "old content, longer");
    assert_int_equal(sm_write_file_atomic(path, "new", 3, 0, &err), 0);
    th_read(path, &b);
    assert_string_equal(sm_buf_str(&b), "new");
    sm_buf_release(&b);
    free(path);
}

static void write_file_atomic_excl_fails_when_the_file_exists(void **state)
{
    char *path = th_path(*state, "f");
    char want[4200];
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    th_write_str(path, "first");
    assert_int_equal(sm_write_file_atomic(path, "second", 6, 1, &err), -1);
    snprintf(want, sizeof(want), "'%s' already exists", path);
    assert_err(&err, SM_E_EXISTS, want);
    th_read(path, &b);
    assert_string_equal(sm_buf_str(&b), "first");
    assert_int_equal(th_count_entries(*state), 1); /* the temporary file is gone too */
    sm_buf_release(&b);
    free(path);
}

static void write_file_atomic_excl_creates_a_new_file(void **state)
{
    char *path = th_path(*state, "f");
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    assert_int_equal(sm_write_file_atomic(path, "x", 1, 1, &err), 0);
    th_read(path, &b);
    assert_string_equal(sm_buf_str(&b), "x");
    assert_int_equal(th_count_entries(*state), 1);
    sm_buf_release(&b);
    free(path);
}

static void write_file_atomic_creates_missing_parents(void **state)
{
    char *path = th_path(*state, "a/b/c/f");
    char *top = th_path(*state, "a/b/c");
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_write_file_atomic(path, "", 0, 0, &err), 0);
    assert_true(sm_is_dir(top));
    assert_true(sm_exists(path));
    free(top);
    free(path);
}

static void write_file_atomic_of_an_empty_file_gives_size_zero(void **state)
{
    char *path = th_path(*state, "empty");
    sm_err err = SM_ERR_INIT;
    struct stat sb;

    assert_int_equal(sm_write_file_atomic(path, NULL, 0, 0, &err), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    free(path);
}

static void read_file_reads_everything_nul_terminated(void **state)
{
    char *path = th_path(*state, "f");
    unsigned char *data = th_random(200000, 5);
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    th_write(path, data, 200000);
    sm_buf_puts(&b, "previous content is replaced");
    assert_int_equal(sm_read_file(path, &b, 0, 0, &err), 0);
    assert_int_equal(b.len, 200000);
    assert_memory_equal(b.data, data, 200000);
    assert_int_equal(b.data[b.len], 0);
    sm_buf_release(&b);
    free(data);
    free(path);
}

static void read_file_of_exactly_max_bytes_succeeds(void **state)
{
    char *path = th_path(*state, "f");
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    th_write_str(path, "12345");
    assert_int_equal(sm_read_file(path, &b, 5, 0, &err), 0);
    assert_string_equal(sm_buf_str(&b), "12345");
    sm_buf_release(&b);
    free(path);
}

static void read_file_past_max_fails_with_limit_error(void **state)
{
    char *path = th_path(*state, "f");
    char want[4200];
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    th_write_str(path, "123456");
    assert_int_equal(sm_read_file(path, &b, 5, 0, &err), -1);
    snprintf(want, sizeof(want), "'%s' is larger than 5 bytes", path);
    assert_err(&err, SM_E_LIMIT, want);
    sm_buf_release(&b);
    free(path);
}

static void read_file_of_a_missing_file_with_missing_ok_returns_1(void **state)
{
    char *path = th_path(*state, "nope");
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    assert_int_equal(sm_read_file(path, &b, 0, 1, &err), 1);
    assert_err(&err, SM_OK, "");
    sm_buf_release(&b);
    free(path);
}

static void read_file_of_a_missing_file_fails_with_not_found(void **state)
{
    char *path = th_path(*state, "nope");
    char want[4200];
    sm_err err = SM_ERR_INIT;
    sm_buf b = SM_BUF_INIT;

    assert_int_equal(sm_read_file(path, &b, 0, 0, &err), -1);
    snprintf(want, sizeof(want), "cannot open '%s': %s", path, strerror(ENOENT));
    assert_err(&err, SM_E_NOTFOUND, want);
    sm_buf_release(&b);
    free(path);
}

static void mkdir_p_creates_nested_directories_and_accepts_existing_ones(void **state)
{
    char *path = th_path(*state, "x/y/z");
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_mkdir_p(path, 0755, &err), 0);
    assert_true(sm_is_dir(path));
    assert_int_equal(sm_mkdir_p(path, 0755, &err), 0);
    free(path);
}

static void mkdir_p_over_a_file_fails(void **state)
{
    char *path = th_path(*state, "file");
    char want[4200];
    sm_err err = SM_ERR_INIT;

    th_write_str(path, "x");
    assert_int_equal(sm_mkdir_p(path, 0755, &err), -1);
    snprintf(want, sizeof(want), "'%s' exists and is not a directory", path);
    assert_err(&err, SM_E_IO, want);
    free(path);
}

static void rm_rf_removes_a_tree_without_following_symlinks(void **state)
{
    char *tree = th_path(*state, "tree");
    char *keep = th_path(*state, "keep");
    char *keepf = th_path(keep, "precious");
    char *deep = th_path(tree, "a/b/c");
    char *f1 = th_path(tree, "a/f1");
    char *f2 = th_path(deep, "f2");
    char *ln = th_path(tree, "a/link");
    char *ln2 = th_path(tree, "dangling");
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_mkdir_p(deep, 0755, &err), 0);
    assert_int_equal(sm_mkdir_p(keep, 0755, &err), 0);
    th_write_str(f1, "1");
    th_write_str(f2, "2");
    th_write_str(keepf, "do not delete");
    assert_int_equal(symlink(keep, ln), 0);
    assert_int_equal(symlink("/nonexistent/x", ln2), 0);
    assert_int_equal(sm_rm_rf(tree, &err), 0);
    assert_false(sm_exists(tree));
    assert_true(sm_exists(keepf));
    free(tree);
    free(keep);
    free(keepf);
    free(deep);
    free(f1);
    free(f2);
    free(ln);
    free(ln2);
}

static void rm_rf_of_a_missing_path_succeeds(void **state)
{
    char *path = th_path(*state, "missing");
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_rm_rf(path, &err), 0);
    assert_int_equal(err.code, SM_OK);
    free(path);
}

static void rm_rf_removes_a_single_file(void **state)
{
    char *path = th_path(*state, "f");
    sm_err err = SM_ERR_INIT;

    th_write_str(path, "x");
    assert_int_equal(sm_rm_rf(path, &err), 0);
    assert_false(sm_exists(path));
    free(path);
}

static void unlink_of_a_missing_file_succeeds(void **state)
{
    char *path = th_path(*state, "missing");
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_unlink(path, &err), 0);
    th_write_str(path, "x");
    assert_int_equal(sm_unlink(path, &err), 0);
    assert_false(sm_exists(path));
    free(path);
}

static void exists_sees_dangling_symlinks_and_is_dir_follows_links(void **state)
{
    char *ln = th_path(*state, "ln");
    char *dl = th_path(*state, "dirlink");
    (void)state;

    assert_int_equal(symlink("/nonexistent/x", ln), 0);
    assert_true(sm_exists(ln));
    assert_false(sm_is_dir(ln));
    assert_int_equal(symlink(*state, dl), 0);
    assert_true(sm_is_dir(dl));
    free(ln);
    free(dl);
}

static void path_join_puts_exactly_one_slash(void **state)
{
    char *p;
    (void)state;

    p = sm_path_join("a", "b");
    assert_string_equal(p, "a/b");
    free(p);
    p = sm_path_join("a/", "b");
    assert_string_equal(p, "a/b");
    free(p);
    p = sm_path_join("", "b");
    assert_string_equal(p, "b");
    free(p);
    p = sm_path_join("/", "b");
    assert_string_equal(p, "/b");
    free(p);
}

static void mkdtemp_creates_a_private_directory_under_base(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *d = sm_mkdtemp(*state, "pfx", &err);
    char *want_prefix = th_path(*state, "pfx.");
    struct stat sb;

    assert_non_null(d);
    assert_memory_equal(d, want_prefix, strlen(want_prefix));
    assert_int_equal(stat(d, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    free(want_prefix);
    free(d);
}

static void mkdtemp_in_a_missing_base_fails(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *base = th_path(*state, "missing");
    char want[4200];

    assert_null(sm_mkdtemp(base, "pfx", &err));
    snprintf(want, sizeof(want), "cannot create a temporary directory in '%s': %s", base,
             strerror(ENOENT));
    assert_err(&err, SM_E_IO, want);
    free(base);
}

static void write_all_and_read_full_move_every_byte(void **state)
{
    char *path = th_path(*state, "f");
    unsigned char *data = th_random(100000, 3), back[100001];
    sm_err err = SM_ERR_INIT;
    size_t got = 0;
    int fd;

    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(sm_write_all(fd, data, 100000, path, &err), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(sm_read_full(fd, back, sizeof(back), &got, path, &err), 0);
    assert_int_equal(got, 100000); /* stops at EOF */
    assert_memory_equal(back, data, 100000);
    close(fd);
    free(data);
    free(path);
}

static void fs_free_reports_space(void **state)
{
    sm_err err = SM_ERR_INIT;
    unsigned long long bytes = 0;

    assert_int_equal(sm_fs_free(*state, &bytes, &err), 0);
    assert_true(bytes > 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(write_file_atomic_writes_the_content),
        T(write_file_atomic_leaves_no_temporary_file),
        T(write_file_atomic_replaces_an_existing_file),
        T(write_file_atomic_excl_fails_when_the_file_exists),
        T(write_file_atomic_excl_creates_a_new_file),
        T(write_file_atomic_creates_missing_parents),
        T(write_file_atomic_of_an_empty_file_gives_size_zero),
        T(read_file_reads_everything_nul_terminated),
        T(read_file_of_exactly_max_bytes_succeeds),
        T(read_file_past_max_fails_with_limit_error),
        T(read_file_of_a_missing_file_with_missing_ok_returns_1),
        T(read_file_of_a_missing_file_fails_with_not_found),
        T(mkdir_p_creates_nested_directories_and_accepts_existing_ones),
        T(mkdir_p_over_a_file_fails),
        T(rm_rf_removes_a_tree_without_following_symlinks),
        T(rm_rf_of_a_missing_path_succeeds),
        T(rm_rf_removes_a_single_file),
        T(unlink_of_a_missing_file_succeeds),
        T(exists_sees_dangling_symlinks_and_is_dir_follows_links),
        T(path_join_puts_exactly_one_slash),
        T(mkdtemp_creates_a_private_directory_under_base),
        T(mkdtemp_in_a_missing_base_fails),
        T(write_all_and_read_full_move_every_byte),
        T(fs_free_reports_space),
    };
    return cmocka_run_group_tests_name("core_fsutil", tests, NULL, NULL);
}
