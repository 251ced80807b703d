/* Helpers shared by the cmocka unit tests: temporary directories, files,
 * reproducible pseudo-random data and an assertion for errors.
 *
 *   static int setup(void **state) { *state = th_tmpdir(); return 0; }
 *   static int teardown(void **state) { th_rmdir(*state); return 0; }
 *   ...
 *   assert_err(&err, SM_E_LIMIT, "data exceeds the limit of 10 bytes");
 *
 * Everything here is static inline so each test file takes only what it uses.
 */
#ifndef SM_TESTS_UNIT_HELPERS_H
#define SM_TESTS_UNIT_HELPERS_H

/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/buf.h"
#include "core/err.h"
#include "core/fsutil.h"
#include "core/mem.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Checks code and exact message of an error. */
#define assert_err(e, want_code, want_msg)                                                         \
    do {                                                                                           \
        assert_string_equal((e)->msg, (want_msg));                                                 \
        assert_int_equal((e)->code, (want_code));                                                  \
    } while (0)

/* A fresh private directory under $TMPDIR or /tmp (caller frees with th_rmdir). */
static inline char *th_tmpdir(void)
{
    sm_err err = SM_ERR_INIT;
    char *d = sm_mkdtemp(NULL, "sm-unit", &err);
    if (!d) {
        fprintf(stderr, "cannot create a temporary directory: %s\n", err.msg);
        abort();
    }
    return d;
}

/* Gives the owner write access to every directory under path, so that a
 * test that made read-only directories can still be cleaned up without root. */
static inline void th_make_writable(const char *path)
{
    struct stat sb;
    DIR *d;
    struct dirent *de;

    if (lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return;
    chmod(path, (sb.st_mode & 07777) | 0700);
    d = opendir(path);
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char *sub;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        sub = sm_path_join(path, de->d_name);
        th_make_writable(sub);
        free(sub);
    }
    closedir(d);
}

/* Removes a directory tree made by th_tmpdir and frees the name. */
static inline void th_rmdir(char *dir)
{
    sm_err err = SM_ERR_INIT;
    if (!dir)
        return;
    th_make_writable(dir);
    if (sm_rm_rf(dir, &err) < 0)
        fprintf(stderr, "cannot remove '%s': %s\n", dir, err.msg);
    free(dir);
}

/* dir/name (caller frees). */
static inline char *th_path(const char *dir, const char *name)
{
    return sm_path_join(dir, name);
}

/* Writes a whole file (plainly, not atomically). */
static inline void th_write(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    sm_err err = SM_ERR_INIT;
    assert_true(fd >= 0);
    assert_int_equal(sm_write_all(fd, p, n, path, &err), 0);
    assert_int_equal(close(fd), 0);
}

static inline void th_write_str(const char *path, const char *s)
{
    th_write(path, s, strlen(s));
}

/* Reads a whole file into b (replacing its content). */
static inline void th_read(const char *path, sm_buf *b)
{
    sm_err err = SM_ERR_INIT;
    if (sm_read_file(path, b, 0, 0, &err) != 0)
        fail_msg("cannot read '%s': %s", path, err.msg);
}

/* Number of entries of a directory, "." and ".." excluded. */
static inline size_t th_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Reproducible pseudo-random bytes (splitmix64). */
static inline uint64_t th_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void th_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *c = p;
    uint64_t s = seed;
    size_t i = 0;

    while (i < n) {
        uint64_t v = th_next(&s);
        for (int k = 0; k < 8 && i < n; k++, i++)
            c[i] = (unsigned char)(v >> (8 * k));
    }
}

static inline unsigned char *th_random(size_t n, uint64_t seed)
{
    unsigned char *p = sm_xmalloc(n ? n : 1);
    th_fill(p, n, seed);
    return p;
}

/* The pid of a process that has exited and been reaped (so it is dead). */
static inline pid_t th_dead_pid(void)
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return pid;
}

#endif
