/* File-system helpers with crash-safe writes (libgit2's filebuf pattern):
 * write to a temporary name, fsync, rename, fsync the directory. */
#ifndef SM_CORE_FSUTIL_H
#define SM_CORE_FSUTIL_H

#include "core/buf.h"
#include "core/err.h"

#include <stddef.h>
#include <sys/types.h>

/* Writes (data, len) to path atomically and durably. With excl, fails with
 * SM_E_EXISTS when path already exists. Creates missing parent directories. */
int sm_write_file_atomic(const char *path, const void *data, size_t len, int excl, sm_err *err);
/* Reads a whole file; fails with SM_E_LIMIT past max bytes (0 = no limit).
 * Returns 1 (no error set) when the file does not exist and missing_ok. */
int sm_read_file(const char *path, sm_buf *out, size_t max, int missing_ok, sm_err *err);
/* mkdir -p with mode (existing directories are fine). */
int sm_mkdir_p(const char *path, mode_t mode, sm_err *err);
/* fsync a directory (or the directory containing path when of_parent). */
int sm_fsync_dir(const char *path, int of_parent, sm_err *err);
/* Writes all of (p, n) to fd, retrying on EINTR and short writes. */
int sm_write_all(int fd, const void *p, size_t n, const char *what, sm_err *err);
/* Reads up to n bytes, stopping only at EOF; *got receives the count. */
int sm_read_full(int fd, void *p, size_t n, size_t *got, const char *what, sm_err *err);
/* rm -rf; missing is fine. */
int sm_rm_rf(const char *path, sm_err *err);
/* Unlinks path; missing is fine. */
int sm_unlink(const char *path, sm_err *err);
/* Returns 1 if path exists (lstat), 0 otherwise. */
int sm_exists(const char *path);
int sm_is_dir(const char *path);
/* Joins two path parts with one '/' (caller frees). */
char *sm_path_join(const char *a, const char *b);
/* A fresh private temporary directory under base (or $TMPDIR or /tmp). */
char *sm_mkdtemp(const char *base, const char *prefix, sm_err *err);
/* Free bytes available to unprivileged users on the file system of path. */
int sm_fs_free(const char *path, unsigned long long *free_bytes, sm_err *err);

#endif
