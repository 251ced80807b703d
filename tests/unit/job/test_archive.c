/* Portable archives (job/archive.h): a snapshot exported with each
 * compression and with encryption, imported back and compared with the
 * source tree; the same archives extracted by hand with GNU tar and gpg;
 * hostile archives (crafted here with libarchive's writer) refused with a
 * message naming the entry and nothing written outside the destination.
 *
 * One repository with two snapshots is built per run (group setup): the
 * tests only read it. Each test gets its own directory holding dest/ (the
 * import destination), outside/ (a sentinel that must stay untouched) and
 * the archives it writes. */
#include "../unit_helpers.h"

/* libarchive 3 declares a deprecated archive_compression(); see archive.c */
#define archive_compression la_deprecated_archive_compression
#include <archive.h>
#include <archive_entry.h>
#undef archive_compression

#include "core/log.h"
#include "core/util.h"
#include "job/archive.h"
#include "repo/crypto.h"
#include "repo/repo.h"
#include "repo/tree.h"

#include <errno.h>
#include <locale.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>

#define SECRET "archive unit test secret"
#define PASSPHRASE "correct horse battery staple"
#define DB_SIZE 300000u
#define UNI_NAME "ünïcödé 文件.bin" /* UTF-8 in the source */

typedef struct world {
    char *base;
    char *src; /* storage/, config/, database.bin, globals.sql */
    store *st;
    repo *r;
    snapshot *full;    /* database, globals, storage, config */
    snapshot *special; /* storage (with a fifo) only */
    int xattrs;        /* the file system takes user.* attributes */
} world;

static world W;

typedef struct fx {
    char *dir;
    char *dest;
    char *outside;
} fx;

/* ---- helpers ---- */

static void check(int rc, const sm_err *err, const char *what)
{
    if (rc != 0)
        fail_msg("%s failed: %s", what, err->msg);
}

static void set_time(const char *path, time_t s, long ns)
{
    struct timespec ts[2];
    ts[0].tv_sec = s;
    ts[0].tv_nsec = ns;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static char *srcp(const char *rel)
{
    return th_path(W.src, rel);
}

static void mk_dir(const char *rel, mode_t mode)
{
    char *p = srcp(rel);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void mk_file(const char *rel, const void *data, size_t n, mode_t mode)
{
    char *p = srcp(rel);
    th_write(p, data, n);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void mk_xattr(const char *rel, const char *name, const char *value)
{
    char *p = srcp(rel);
    if (setxattr(p, name, value, strlen(value), 0) != 0) {
        assert_true(errno == ENOTSUP || errno == EOPNOTSUPP);
        W.xattrs = 0;
    }
    free(p);
}

static void stamp(const char *rel, time_t s, long ns)
{
    char *p = srcp(rel);
    set_time(p, s, ns);
    free(p);
}

/* The source trees: names with spaces and UTF-8, xattrs, a symlink, a hard
 * link across directories, an empty directory, a read-only file, numeric
 * owners (as root), nanosecond mtimes. */
static void build_sources(void)
{
    unsigned char *db = th_random(DB_SIZE, 7), *bin = th_random(100000, 8);
    const char *globals = "CREATE ROLE anon NOLOGIN;\nCREATE ROLE authenticated NOLOGIN;\n";
    char *a, *b;

    W.xattrs = 1;
    assert_int_equal(mkdir(W.src, 0700), 0);
    mk_file("database.bin", db, DB_SIZE, 0600);
    mk_file("globals.sql", globals, strlen(globals), 0600);

    mk_dir("storage", 0755);
    mk_dir("storage/bucket", 0750);
    mk_dir("storage/other", 0755);
    mk_dir("storage/empty", 0700);
    mk_file("storage/bucket/hello world.txt", "hello, world\n", 13, 0640);
    mk_file("storage/bucket/" UNI_NAME, bin, 100000, 0600);
    mk_file("storage/bucket/readonly.txt", "read only\n", 10, 0444);
    mk_file("storage/top level.txt", "top\n", 4, 0644);
    a = srcp("storage/bucket/" UNI_NAME);
    b = srcp("storage/other/hard");
    assert_int_equal(link(a, b), 0);
    free(a);
    free(b);
    a = srcp("storage/bucket/link to hello");
    assert_int_equal(symlink("hello world.txt", a), 0);
    free(a);
    mk_xattr("storage/bucket/hello world.txt", "user.supabase.content-type", "text/plain");
    mk_xattr("storage/bucket/hello world.txt", "user.supabase.cache-control", "max-age=3600");
    mk_xattr("storage/bucket/" UNI_NAME, "user.supabase.content-type", "application/octet-stream");
    mk_xattr("storage/bucket", "user.supabase.bucket", "public");
    mk_xattr("storage", "user.supabase.root", "yes");
    if (geteuid() == 0) {
        a = srcp("storage/top level.txt");
        assert_int_equal(chown(a, 1234, 5678), 0);
        free(a);
    }

    mk_dir("config", 0750);
    mk_file("config/.env", "JWT_SECRET=abc\n", 15, 0600);
    mk_file("config/kong.yml", "_format_version: '2.1'\n", 23, 0644);

    /* times last, directories after their contents */
    stamp("storage/bucket/hello world.txt", 1700000001, 123456789);
    stamp("storage/bucket/" UNI_NAME, 1700000002, 1);
    stamp("storage/bucket/readonly.txt", 1700000003, 999999999);
    stamp("storage/bucket/link to hello", 1700000004, 500);
    stamp("storage/top level.txt", 1700000005, 42);
    stamp("config/.env", 1700000006, 6);
    stamp("config/kong.yml", 1700000007, 7);
    stamp("storage/bucket", 1700000010, 10);
    stamp("storage/other", 1700000011, 11);
    stamp("storage/empty", 1700000012, 12);
    stamp("storage", 1700000013, 13);
    stamp("config", 1700000014, 14);
    free(db);
    free(bin);
}

static int open_ro(const char *rel)
{
    char *p = srcp(rel);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    free(p);
    return fd;
}

static snapshot *backup(void (*add)(repo_writer *w))
{
    repo_writer *w = NULL;
    repo_writer_opts wo;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char id[65];

    memset(&wo, 0, sizeof(wo));
    wo.threads = 2;
    check(repo_lock(W.r, 1, "backup", &err), &err, "repo_lock");
    check(repo_writer_new(&w, W.r, &wo, &err), &err, "repo_writer_new");
    add(w);
    check(repo_writer_commit(w, NULL, NULL, id, &err), &err, "repo_writer_commit");
    repo_writer_free(w);
    check(repo_unlock(W.r, &err), &err, "repo_unlock");
    check(repo_snapshot_load(W.r, id, &s, &err), &err, "repo_snapshot_load");
    return s;
}

static void add_full(repo_writer *w)
{
    sm_err err = SM_ERR_INIT;
    int fd = open_ro("database.bin");
    char *p;

    check(repo_writer_add_fd(w, "database", fd, &err), &err, "add database");
    close(fd);
    fd = open_ro("globals.sql");
    check(repo_writer_add_fd(w, "globals", fd, &err), &err, "add globals");
    close(fd);
    p = srcp("storage");
    check(repo_writer_add_tree(w, "storage", p, NULL, &err), &err, "add storage");
    free(p);
    p = srcp("config");
    check(repo_writer_add_tree(w, "config", p, NULL, &err), &err, "add config");
    free(p);
}

static void add_special(repo_writer *w)
{
    sm_err err = SM_ERR_INIT;
    char *p = srcp("special");
    check(repo_writer_add_tree(w, "storage", p, NULL, &err), &err, "add special");
    free(p);
}

static int group_setup(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *p;

    (void)state;
    sm_log_set_level(SM_LOG_ERROR); /* skipped special files are warned about */
    W.base = th_tmpdir();
    W.src = th_path(W.base, "src");
    build_sources();
    mk_dir("special", 0755);
    mk_file("special/a.txt", "a\n", 2, 0644);
    p = srcp("special/pipe");
    assert_int_equal(mkfifo(p, 0600), 0);
    free(p);

    p = th_path(W.base, "repo");
    if (store_open(&W.st, p, &err) < 0 || repo_init(W.st, SECRET, NULL, &err) < 0 ||
        repo_open(&W.r, W.st, SECRET, &err) < 0) {
        fprintf(stderr, "cannot create the repository: %s\n", err.msg);
        free(p);
        return -1;
    }
    free(p);
    W.full = backup(add_full);
    W.special = backup(add_special);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    snapshot_free(W.full);
    snapshot_free(W.special);
    repo_close(W.r);
    store_free(W.st);
    free(W.src);
    th_rmdir(W.base);
    return 0;
}

static int setup(void **state)
{
    fx *f = sm_xcalloc(1, sizeof(*f));
    char *secret;

    f->dir = th_tmpdir();
    f->dest = th_path(f->dir, "dest");
    f->outside = th_path(f->dir, "outside");
    assert_int_equal(mkdir(f->dest, 0700), 0);
    assert_int_equal(mkdir(f->outside, 0755), 0);
    secret = th_path(f->outside, "secret");
    th_write_str(secret, "do not touch\n");
    free(secret);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    free(f->dest);
    free(f->outside);
    th_rmdir(f->dir);
    free(f);
    return 0;
}

/* Nothing but dest/, outside/ and the archives appeared in the test's
 * directory, and outside/ holds only its untouched secret. */
static void assert_outside_untouched(fx *f, size_t archives)
{
    sm_buf b = SM_BUF_INIT;
    char *secret = th_path(f->outside, "secret");

    assert_int_equal(th_count_entries(f->outside), 1);
    th_read(secret, &b);
    assert_string_equal(sm_buf_str(&b), "do not touch\n");
    assert_int_equal(th_count_entries(f->dir), 2 + archives);
    sm_buf_release(&b);
    free(secret);
}

static const char *stream_sha(const snapshot *s, const char *name)
{
    return json_string_value(json_object_get(snapshot_stream(s, name), "sha256"));
}

static json_t *make_meta(const snapshot *s)
{
    json_t *sums = NULL;
    sm_err err = SM_ERR_INIT;

    check(archive_export_checksums(W.r, s, &sums, &err), &err, "archive_export_checksums");
    return json_pack("{s:s,s:i,s:s,s:{s:s},s:s,s:s,s:o,s:{}}", "format", "supamanager-export",
                     "version", 1, "backup_id", "bk_unit", "project", "ref", "demo", "type", "FULL",
                     "created_at", "2026-11-25T17:00:00Z", "checksums", sums, "sizes");
}

typedef struct prog {
    unsigned calls;
    uint64_t done, total;
} prog;

static void on_progress(void *ud, const repo_progress *p)
{
    prog *g = ud;
    g->calls++;
    g->done = p->bytes_done;
    g->total = p->bytes_total;
    assert_string_equal(p->phase, "export");
}

/* Exports s into dir/name; returns the path (caller frees). */
static char *export_with(fx *f, const snapshot *s, json_t *meta, const char *name,
                         archive_compression c, const char *pass, prog *g, sm_err *err, int *rc)
{
    char *path = th_path(f->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    archive_export_opts o;
    uint64_t written = 0;
    struct stat sb;

    memset(&o, 0, sizeof(o));
    o.compression = c;
    o.passphrase = pass;
    o.progress = g ? on_progress : NULL;
    o.progress_ud = g;
    assert_true(fd >= 0);
    *rc = archive_export(W.r, s, meta, fd, &o, &written, err);
    assert_int_equal(fstat(fd, &sb), 0);
    if (*rc == 0)
        assert_int_equal(written, (uint64_t)sb.st_size);
    assert_int_equal(close(fd), 0);
    return path;
}

static char *export_ok(fx *f, const char *name, archive_compression c, const char *pass)
{
    json_t *meta = make_meta(W.full);
    sm_err err = SM_ERR_INIT;
    int rc;
    char *path = export_with(f, W.full, meta, name, c, pass, NULL, &err, &rc);
    check(rc, &err, "archive_export");
    json_decref(meta);
    return path;
}

/* ---- comparing trees ---- */

typedef struct linkmap {
    ino_t from[32], to[32];
    size_t n;
} linkmap;

static void user_xattrs(const char *p, sm_buf *out)
{
    char list[4096], *names[64];
    ssize_t len = llistxattr(p, list, sizeof(list));
    size_t n = 0;

    sm_buf_reset(out);
    assert_true(len >= 0);
    for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1)
        if (!strncmp(list + off, "user.", 5))
            names[n++] = list + off;
    for (size_t i = 1; i < n; i++) /* sort */
        for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
            char *t = names[k];
            names[k] = names[k - 1];
            names[k - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        char val[4096];
        ssize_t vl = lgetxattr(p, names[i], val, sizeof(val));
        assert_true(vl >= 0);
        sm_buf_putf(out, "%s=", names[i]);
        sm_buf_put(out, val, (size_t)vl);
        sm_buf_putc(out, '\n');
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t sorted_names(const char *dir, char **v, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        assert_true(n < cap);
        v[n++] = sm_xstrdup(de->d_name);
    }
    closedir(d);
    qsort(v, n, sizeof(*v), cmp_names);
    return n;
}

/* b is a faithful copy of a: types, modes, owners (as root), mtimes,
 * content, user.* xattrs, symlink targets and hard links. */
static void assert_same(const char *a, const char *b, linkmap *lm)
{
    struct stat sa, sb;

    assert_int_equal(lstat(a, &sa), 0);
    if (lstat(b, &sb) != 0)
        fail_msg("'%s' is missing", b);
    if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
        fail_msg("'%s' has another type", b);
    if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777))
        fail_msg("'%s' has mode %o, want %o", b, (unsigned)(sb.st_mode & 07777),
                 (unsigned)(sa.st_mode & 07777));
    if (geteuid() == 0 && (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid))
        fail_msg("'%s' is owned by %u:%u, want %u:%u", b, (unsigned)sb.st_uid, (unsigned)sb.st_gid,
                 (unsigned)sa.st_uid, (unsigned)sa.st_gid);
    if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
        fail_msg("'%s' has mtime %lld.%09ld, want %lld.%09ld", b, (long long)sb.st_mtim.tv_sec,
                 sb.st_mtim.tv_nsec, (long long)sa.st_mtim.tv_sec, sa.st_mtim.tv_nsec);
    if (S_ISREG(sa.st_mode)) {
        sm_buf ca = SM_BUF_INIT, cb = SM_BUF_INIT;
        th_read(a, &ca);
        th_read(b, &cb);
        if (ca.len != cb.len || (ca.len && memcmp(ca.data, cb.data, ca.len) != 0))
            fail_msg("'%s' has other content", b);
        sm_buf_release(&ca);
        sm_buf_release(&cb);
        assert_int_equal(sa.st_nlink, sb.st_nlink);
        if (sa.st_nlink > 1) {
            size_t i;
            for (i = 0; i < lm->n; i++)
                if (lm->from[i] == sa.st_ino)
                    break;
            if (i < lm->n) {
                if (lm->to[i] != sb.st_ino)
                    fail_msg("'%s' is not a hard link of its twin", b);
            } else {
                assert_true(lm->n < 32);
                lm->from[lm->n] = sa.st_ino;
                lm->to[lm->n++] = sb.st_ino;
            }
        }
    }
    if (S_ISLNK(sa.st_mode)) {
        char ta[PATH_MAX], tb[PATH_MAX];
        ssize_t la = readlink(a, ta, sizeof(ta) - 1), lb = readlink(b, tb, sizeof(tb) - 1);
        assert_true(la >= 0 && lb >= 0);
        ta[la] = tb[lb] = '\0';
        assert_string_equal(ta, tb);
    } else if (W.xattrs) {
        sm_buf xa = SM_BUF_INIT, xb = SM_BUF_INIT;
        user_xattrs(a, &xa);
        user_xattrs(b, &xb);
        if (xa.len != xb.len || (xa.len && memcmp(xa.data, xb.data, xa.len) != 0))
            fail_msg("'%s' has other user.* attributes:\n%s\nwant:\n%s", b, sm_buf_str(&xb),
                     sm_buf_str(&xa));
        sm_buf_release(&xa);
        sm_buf_release(&xb);
    }
    if (S_ISDIR(sa.st_mode)) {
        char *na[64], *nb[64];
        size_t n = sorted_names(a, na, 64), m = sorted_names(b, nb, 64);
        if (n != m)
            fail_msg("'%s' has %zu entries, want %zu", b, m, n);
        for (size_t i = 0; i < n; i++) {
            char *ca = th_path(a, na[i]), *cb = th_path(b, nb[i]);
            assert_string_equal(na[i], nb[i]);
            assert_same(ca, cb, lm);
            free(ca);
            free(cb);
        }
        for (size_t i = 0; i < n; i++) {
            free(na[i]);
            free(nb[i]);
        }
    }
}

static void assert_same_file(const char *a, const char *b)
{
    sm_buf ca = SM_BUF_INIT, cb = SM_BUF_INIT;
    th_read(a, &ca);
    th_read(b, &cb);
    assert_int_equal(ca.len, cb.len);
    assert_memory_equal(ca.data, cb.data, ca.len);
    sm_buf_release(&ca);
    sm_buf_release(&cb);
}

/* dir (an import or a hand extraction) holds exactly the full snapshot. */
static void assert_holds_full(const char *dir)
{
    linkmap lm;
    sm_err err = SM_ERR_INIT;
    char hex[65];
    char *a, *b;

    memset(&lm, 0, sizeof(lm));
    a = srcp("database.bin");
    b = th_path(dir, "database.dump");
    assert_same_file(a, b);
    free(a);
    free(b);
    a = srcp("globals.sql");
    b = th_path(dir, "globals.sql");
    assert_same_file(a, b);
    free(a);
    free(b);
    a = srcp("storage");
    b = th_path(dir, "storage");
    assert_same(a, b, &lm);
    assert_int_equal(lm.n, 1); /* the hard link pair was seen */
    check(archive_dir_digest(b, hex, &err), &err, "archive_dir_digest");
    assert_string_equal(hex, stream_sha(W.full, "storage"));
    free(a);
    free(b);
    a = srcp("config");
    b = th_path(dir, "config");
    assert_same(a, b, &lm);
    check(archive_dir_digest(b, hex, &err), &err, "archive_dir_digest");
    assert_string_equal(hex, stream_sha(W.full, "config"));
    free(a);
    free(b);
    a = th_path(dir, "metadata.json");
    assert_true(sm_exists(a));
    free(a);
}

static void import_ok(fx *f, const char *path, const char *pass)
{
    json_t *meta = NULL;
    sm_err err = SM_ERR_INIT;

    check(archive_import(path, f->dest, pass, NULL, &meta, &err), &err, "archive_import");
    assert_non_null(meta);
    assert_string_equal(json_string_value(json_object_get(meta, "backup_id")), "bk_unit");
    json_decref(meta);
    assert_holds_full(f->dest);
}

static void assert_magic(const char *path, size_t off, const void *magic, size_t n)
{
    sm_buf b = SM_BUF_INIT;
    th_read(path, &b);
    assert_true(b.len >= off + n);
    assert_memory_equal(b.data + off, magic, n);
    sm_buf_release(&b);
}

/* ---- round trips ---- */

static void gzip_export_imports_back_identical(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gz", ARCHIVE_GZIP, NULL);
    assert_magic(path, 0, "\x1f\x8b", 2);
    import_ok(f, path, NULL);
    free(path);
}

static void zstd_export_imports_back_identical(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.zst", ARCHIVE_ZSTD, NULL);
    assert_magic(path, 0, "\x28\xb5\x2f\xfd", 4);
    import_ok(f, path, NULL);
    free(path);
}

static void uncompressed_export_imports_back_identical(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar", ARCHIVE_NONE, NULL);
    assert_magic(path, 257, "ustar", 5);
    import_ok(f, path, NULL);
    free(path);
}

static void encrypted_export_imports_back_identical(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gz.gpg", ARCHIVE_GZIP, PASSPHRASE);
    assert_magic(path, 0, "\x8c", 1); /* an OpenPGP symmetric-key packet */
    import_ok(f, path, PASSPHRASE);
    free(path);
}

static void export_reports_progress_to_the_total(void **state)
{
    fx *f = *state;
    json_t *meta = make_meta(W.full);
    sm_err err = SM_ERR_INIT;
    prog g = {0, 0, 0};
    int rc;
    char *path = export_with(f, W.full, meta, "a.tar", ARCHIVE_NONE, NULL, &g, &err, &rc);

    check(rc, &err, "archive_export");
    assert_true(g.calls >= 1);
    assert_true(g.total > DB_SIZE);
    assert_int_equal(g.done, g.total);
    json_decref(meta);
    free(path);
}

/* The entries as libarchive lists them: "name type [-> link]" lines. */
static void list_entries(const char *path, sm_buf *out)
{
    /* names are UTF-8: libarchive converts them only in a UTF-8 locale */
    locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    locale_t old = uselocale(loc);
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int r;

    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
    while ((r = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
        const char *hl = archive_entry_hardlink_utf8(e), *sl = archive_entry_symlink_utf8(e);
        assert_true(r >= ARCHIVE_WARN);
        char t = hl                                      ? 'h'
                 : archive_entry_filetype(e) == AE_IFDIR ? 'd'
                 : archive_entry_filetype(e) == AE_IFLNK ? 'l'
                                                         : 'f';
        const char *target = hl ? hl : sl ? sl : "";
        sm_buf_putf(out, "%s %c%s %o %lld.%09ld\n", archive_entry_pathname_utf8(e), t, target,
                    (unsigned)archive_entry_perm(e), (long long)archive_entry_mtime(e),
                    archive_entry_mtime_nsec(e));
    }
    archive_read_free(a);
    uselocale(old);
    freelocale(loc);
}

static void assert_listed(const sm_buf *l, const char *line)
{
    if (!strstr(sm_buf_str(l), line))
        fail_msg("no '%s' in the listing:\n%s", line, sm_buf_str(l));
}

static void export_writes_metadata_first_and_links_as_links(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar", ARCHIVE_NONE, NULL);
    sm_buf l = SM_BUF_INIT, raw = SM_BUF_INIT;
    const char *want =
        "metadata.json f 644 1"; /* then database.dump, globals.sql, storage/, config/ */

    list_entries(path, &l);
    assert_int_equal(strncmp(sm_buf_str(&l), want, strlen(want)), 0);
    assert_listed(&l, "\ndatabase.dump f 600 ");
    assert_true(strstr(sm_buf_str(&l), "\ndatabase.dump ") <
                strstr(sm_buf_str(&l), "\nglobals.sql "));
    assert_listed(&l, "\nstorage/ d 755 1700000013.000000013\n");
    assert_true(strstr(sm_buf_str(&l), "\nglobals.sql ") < strstr(sm_buf_str(&l), "\nstorage/ "));
    assert_true(strstr(sm_buf_str(&l), "\nstorage/ ") < strstr(sm_buf_str(&l), "\nconfig/ "));
    assert_listed(&l, "\nstorage/other/hard hstorage/bucket/" UNI_NAME " ");
    assert_listed(&l, "\nstorage/bucket/link to hello lhello world.txt ");
    assert_listed(&l, "\nstorage/bucket/hello world.txt f 640 1700000001.123456789\n");
    assert_listed(&l, "\nstorage/empty/ d 700 1700000012.000000012\n");
    /* xattrs as GNU tar reads them, and nothing GNU tar would warn about */
    th_read(path, &raw);
    assert_non_null(
        memmem(raw.data, raw.len, "SCHILY.xattr.user.supabase.content-type=text/plain", 50));
    assert_null(memmem(raw.data, raw.len, "LIBARCHIVE.xattr", 16));
    sm_buf_release(&l);
    sm_buf_release(&raw);
    free(path);
}

/* ---- by hand ---- */

static void gnu_tar_extracts_the_export_by_hand(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gz", ARCHIVE_GZIP, NULL);
    char *errf = th_path(f->dir, "tar.err");
    char *cmd = sm_xasprintf("tar --xattrs --xattrs-include='user.*' --numeric-owner -xpzf '%s' "
                             "-C '%s' 2>'%s'",
                             path, f->dest, errf);
    sm_buf e = SM_BUF_INIT;

    assert_int_equal(system(cmd), 0);
    free(cmd);
    th_read(errf, &e);
    assert_string_equal(sm_buf_str(&e), ""); /* no warnings either */
    assert_holds_full(f->dest);
    sm_buf_release(&e);
    free(errf);
    free(path);
}

static void gpg_and_tar_decrypt_the_export_by_hand(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.zst.gpg", ARCHIVE_ZSTD, PASSPHRASE);
    char *home = th_path(f->dir, "gnupg"), *pass = th_path(f->dir, "pass"), *cmd;

    assert_int_equal(mkdir(home, 0700), 0);
    th_write_str(pass, PASSPHRASE);
    /* the documented command, made non-interactive: gpg --decrypt -o x.tar.zst x.tar.zst.gpg */
    cmd = sm_xasprintf("gpg --batch --quiet --no-autostart --homedir '%s' --pinentry-mode loopback "
                       "--passphrase-file '%s' --decrypt -o '%s/a.tar.zst' '%s' 2>/dev/null",
                       home, pass, f->dir, path);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    cmd = sm_xasprintf("tar --zstd --xattrs --xattrs-include='user.*' --numeric-owner -xpf "
                       "'%s/a.tar.zst' -C '%s'",
                       f->dir, f->dest);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    assert_holds_full(f->dest);
    free(home);
    free(pass);
    free(path);
}

/* ---- encryption errors ---- */

static void wrong_passphrase_is_refused_clearly(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gz.gpg", ARCHIVE_GZIP, PASSPHRASE);
    char *want = sm_xasprintf("cannot decrypt '%s': wrong passphrase", path);
    sm_err err = SM_ERR_INIT;
    json_t *meta = NULL;

    assert_int_equal(archive_import(path, f->dest, "not the passphrase", NULL, &meta, &err), -1);
    assert_err(&err, SM_E_BADKEY, want);
    assert_string_equal(err.hint, "Give the passphrase the archive was exported with.");
    assert_null(meta);
    assert_int_equal(th_count_entries(f->dest), 0);
    free(want);
    free(path);
}

static void encrypted_archive_without_passphrase_is_refused(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gpg", ARCHIVE_NONE, PASSPHRASE);
    char *want = sm_xasprintf("'%s' is encrypted", path);
    sm_err err = SM_ERR_INIT;

    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_BADKEY, want);
    free(want);
    free(path);
}

static void passphrase_with_a_line_break_is_refused(void **state)
{
    fx *f = *state;
    json_t *meta = make_meta(W.full);
    sm_err err = SM_ERR_INIT;
    int rc;
    char *path = export_with(f, W.full, meta, "a.gpg", ARCHIVE_GZIP, "two\nlines", NULL, &err, &rc);

    assert_int_equal(rc, -1);
    assert_err(&err, SM_E_INVALID, "the passphrase contains a line break");
    json_decref(meta);
    free(path);
}

/* ---- special files and metadata at export ---- */

static void special_files_are_left_out_and_checksums_follow(void **state)
{
    fx *f = *state;
    json_t *meta = make_meta(W.special), *got = NULL;
    sm_err err = SM_ERR_INIT;
    sm_buf l = SM_BUF_INIT;
    char hex[65], *dir;
    int rc;
    char *path = export_with(f, W.special, meta, "s.tar", ARCHIVE_NONE, NULL, NULL, &err, &rc);
    const char *sum =
        json_string_value(json_object_get(json_object_get(meta, "checksums"), "storage"));

    check(rc, &err, "archive_export");
    list_entries(path, &l);
    assert_non_null(strstr(sm_buf_str(&l), "\nstorage/a.txt f "));
    assert_null(strstr(sm_buf_str(&l), "pipe"));
    assert_null(strstr(sm_buf_str(&l), "database.dump"));
    /* the tree digest without the fifo differs from the stream's */
    assert_string_not_equal(sum + 7, stream_sha(W.special, "storage"));
    check(archive_import(path, f->dest, NULL, NULL, &got, &err), &err, "archive_import");
    dir = th_path(f->dest, "storage");
    check(archive_dir_digest(dir, hex, &err), &err, "archive_dir_digest");
    assert_string_equal(hex, sum + 7);
    json_decref(got);
    json_decref(meta);
    sm_buf_release(&l);
    free(dir);
    free(path);
}

static void export_refuses_checksums_that_import_would_refuse(void **state)
{
    fx *f = *state;
    json_t *meta = make_meta(W.special);
    char *stream = sm_xasprintf("sha256:%s", stream_sha(W.special, "storage"));
    char *want = sm_xasprintf(
        "cannot export: metadata.json says storage is %s, but the archive holds %s", stream,
        json_string_value(json_object_get(json_object_get(meta, "checksums"), "storage")));
    sm_err err = SM_ERR_INIT;
    int rc;
    char *path;

    json_object_set_new(json_object_get(meta, "checksums"), "storage", json_string(stream));
    path = export_with(f, W.special, meta, "s.tar", ARCHIVE_NONE, NULL, NULL, &err, &rc);
    assert_int_equal(rc, -1);
    assert_err(&err, SM_E_INTERNAL, want);
    assert_string_equal(err.hint, "Take the checksums from archive_export_checksums().");
    json_decref(meta);
    free(want);
    free(stream);
    free(path);
}

static void export_refuses_metadata_without_checksums(void **state)
{
    fx *f = *state;
    json_t *meta = make_meta(W.full);
    sm_err err = SM_ERR_INIT;
    int rc;
    char *path;

    json_object_del(meta, "checksums");
    path = export_with(f, W.full, meta, "a.tar", ARCHIVE_NONE, NULL, NULL, &err, &rc);
    assert_int_equal(rc, -1);
    assert_err(&err, SM_E_INTERNAL, "cannot export: metadata.json has no \"checksums\"");
    json_decref(meta);
    free(path);
}

static void dir_digest_matches_the_repository_restore(void **state)
{
    fx *f = *state;
    char *dir = th_path(f->dest, "storage");
    char hex[65];
    sm_err err = SM_ERR_INIT;

    check(repo_restore_tree(W.r, W.full, "storage", dir, NULL, &err), &err, "repo_restore_tree");
    check(archive_dir_digest(dir, hex, &err), &err, "archive_dir_digest");
    assert_string_equal(hex, stream_sha(W.full, "storage"));
    free(dir);
}

/* ---- hostile archives ---- */

typedef struct ent {
    char type; /* f file, d dir, l symlink, h hard link, p fifo, c char device */
    const char *name;
    const char *data; /* f: content; l, h: target; d: octal mode (NULL: 755) */
} ent;

/* Valid metadata listing database, storage and config (with checksums that
 * do not matter: these archives are refused before they are compared). */
#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define META_HEAD                                                                                  \
    "{\"format\": \"supamanager-export\", \"version\": 1, \"backup_id\": \"bk\", \"project\": "    \
    "{}, "                                                                                         \
    "\"type\": \"FULL\", \"created_at\": \"2026-11-25T17:00:00Z\", "
#define META_OK                                                                                    \
    META_HEAD "\"checksums\": {\"database\": \"sha256:" ZEROS "\", \"storage\": \"sha256:" ZEROS   \
              "\", \"config\": \"sha256:" ZEROS "\"}}"
#define META_NONE META_HEAD "\"checksums\": {}}"

static void craft(const char *path, const ent *v, size_t n, int gzip)
{
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();

    archive_write_set_format_pax(a);
    if (gzip)
        archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, v[i].name);
        archive_entry_set_mtime(e, 1700000000, 0);
        archive_entry_set_perm(e, v[i].type != 'd' ? 0644
                                  : v[i].data      ? (mode_t)strtoul(v[i].data, NULL, 8)
                                                   : 0755);
        switch (v[i].type) {
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)strlen(v[i].data));
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, v[i].data);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, v[i].data);
            archive_entry_set_size(e, 0);
            break;
        case 'p':
            archive_entry_set_filetype(e, AE_IFIFO);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdev(e, makedev(1, 3));
            break;
        default:
            fail_msg("bad entry type %c", v[i].type);
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (v[i].type == 'f')
            assert_int_equal(archive_write_data(a, v[i].data, strlen(v[i].data)),
                             (la_ssize_t)strlen(v[i].data));
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    archive_entry_free(e);
}

/* Crafts the entries into dir/evil.tar (evil_path), imports and expects
 * the error; frees want. */
static char *evil_path(fx *f)
{
    return th_path(f->dir, "evil.tar");
}

static void expect_refused(fx *f, const ent *v, size_t n, const archive_import_limits *lim,
                           sm_code code, char *want)
{
    char *path = evil_path(f);
    sm_err err = SM_ERR_INIT;
    json_t *meta = NULL;

    craft(path, v, n, 0);
    assert_int_equal(archive_import(path, f->dest, NULL, lim, &meta, &err), -1);
    assert_err(&err, code, want);
    assert_null(meta);
    assert_outside_untouched(f, 1);
    free(want);
    free(path);
}

/* An entry refused with why, and the hint that says nothing else was touched. */
static void expect_entry_refused(fx *f, const ent *v, size_t n, const char *entry, const char *why)
{
    char *path = evil_path(f);
    char *want = sm_xasprintf("refusing entry '%s' of '%s': %s", entry, path, why);
    char *hint = sm_xasprintf("The archive was not made by SupaManager or was altered; nothing "
                              "was written outside '%s'.",
                              f->dest);
    sm_err err = SM_ERR_INIT;

    craft(path, v, n, 0);
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_INVALID, want);
    assert_string_equal(err.hint, hint);
    assert_outside_untouched(f, 1);
    free(want);
    free(hint);
    free(path);
}

#define N(v) (sizeof(v) / sizeof((v)[0]))

static void absolute_path_is_refused(void **state)
{
    fx *f = *state;
    char *abs = th_path(f->outside, "abs.txt");
    ent v[] = {{'f', "metadata.json", META_OK}, {'f', abs, "x"}};
    expect_entry_refused(f, v, N(v), abs, "absolute paths are not allowed");
    free(abs);
}

static void dotdot_path_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK}, {'f', "../outside/evil.txt", "x"}};
    expect_entry_refused(f, v, N(v), "../outside/evil.txt", "'..' is not allowed in paths");
}

static void dotdot_inside_a_path_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'f', "storage/../../outside/evil.txt", "x"}};
    expect_entry_refused(f, v, N(v), "storage/../../outside/evil.txt",
                         "'..' is not allowed in paths");
}

static void symlink_to_etc_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {
        {'f', "metadata.json", META_OK}, {'d', "storage", NULL}, {'l', "storage/etc", "/etc"}};
    expect_entry_refused(f, v, N(v), "storage/etc", "symlink to the absolute path '/etc'");
}

static void symlink_leaving_storage_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'d', "storage/a", NULL},
               {'l', "storage/a/up", "../../x"}};
    expect_entry_refused(f, v, N(v), "storage/a/up", "symlink target '../../x' leaves storage/");
}

static void symlink_into_config_from_storage_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'l', "storage/cfg", "../config/.env"}};
    expect_entry_refused(f, v, N(v), "storage/cfg",
                         "symlink target '../config/.env' leaves storage/");
}

static void symlink_climbing_through_another_link_is_refused(void **state)
{
    fx *f = *state;
    /* each link alone stays inside lexically, but d/up is storage itself,
     * so d/up/../.. is the parent of dest */
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'d', "storage/d", NULL},
               {'l', "storage/d/up", ".."},
               {'l', "storage/x", "d/up/../.."}};
    expect_entry_refused(f, v, N(v), "storage/x",
                         "symlink target 'd/up/../..' has '..' after a name");
}

static void writing_through_a_symlink_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'l', "storage/lnk", "sub"},
               {'f', "storage/lnk/evil", "x"}};
    expect_entry_refused(f, v, N(v), "storage/lnk/evil", "'storage/lnk' is not a directory");
}

static void hard_link_to_outside_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'h', "storage/h", "../outside/secret"}};
    expect_entry_refused(f, v, N(v), "storage/h",
                         "hard link to '../outside/secret': '..' is not allowed in paths");
}

static void hard_link_to_an_absolute_path_is_refused(void **state)
{
    fx *f = *state;
    char *secret = th_path(f->outside, "secret");
    char *why = sm_xasprintf("hard link to '%s': absolute paths are not allowed", secret);
    ent v[] = {{'f', "metadata.json", META_OK}, {'d', "storage", NULL}, {'h', "storage/h", secret}};
    expect_entry_refused(f, v, N(v), "storage/h", why);
    free(why);
    free(secret);
}

static void hard_link_to_another_subtree_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "config", NULL},
               {'f', "config/.env", "SECRET=1\n"},
               {'d', "storage", NULL},
               {'h', "storage/h", "config/.env"}};
    expect_entry_refused(f, v, N(v), "storage/h", "hard link to 'config/.env' outside storage/");
}

static void hard_link_to_a_later_entry_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'h', "storage/a", "storage/b"},
               {'f', "storage/b", "b"}};
    expect_entry_refused(f, v, N(v), "storage/a",
                         "hard link to 'storage/b', which is not an earlier file of the archive");
}

static void path_too_long_to_extract_is_refused(void **state)
{
    fx *f = *state;
    sm_buf name = SM_BUF_INIT;
    char *why = sm_xasprintf("its path is too long to extract under '%s' (the limit is %d bytes)",
                             f->dest, PATH_MAX - 1);

    sm_buf_puts(&name, "storage/");
    while (name.len < PATH_MAX)
        sm_buf_puts(&name, "d/"); /* deep, not one long name */
    sm_buf_puts(&name, "f");
    {
        /* the message shows the name's start and end */
        char *shown =
            sm_xasprintf("%.120s...%s", sm_buf_str(&name), sm_buf_str(&name) + name.len - 60);
        ent v[] = {{'f', "metadata.json", META_OK}, {'f', sm_buf_str(&name), "x"}};
        expect_entry_refused(f, v, N(v), shown, why);
        free(shown);
    }
    sm_buf_release(&name);
    free(why);
}

static void fifo_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {
        {'f', "metadata.json", META_OK}, {'d', "storage", NULL}, {'p', "storage/pipe", NULL}};
    expect_entry_refused(f, v, N(v), "storage/pipe", "fifos are not allowed");
}

static void char_device_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {
        {'f', "metadata.json", META_OK}, {'d', "storage", NULL}, {'c', "storage/null", NULL}};
    expect_entry_refused(f, v, N(v), "storage/null", "device files are not allowed");
}

static void unknown_top_level_entry_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK}, {'f', "evil.sh", "rm -rf /\n"}};
    expect_entry_refused(f, v, N(v), "evil.sh",
                         "only metadata.json, database.dump, globals.sql, storage/ and config/ "
                         "belong in the archive");
}

static void duplicate_entry_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK},
               {'d', "storage", NULL},
               {'f', "storage/a", "one"},
               {'f', "storage/a", "two"}};
    expect_entry_refused(f, v, N(v), "storage/a", "it appears twice in the archive");
}

static void database_dump_that_is_a_symlink_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_OK}, {'l', "database.dump", "/etc/passwd"}};
    expect_entry_refused(f, v, N(v), "database.dump", "it must be a regular file");
}

static void part_not_listed_in_metadata_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", META_NONE}, {'f', "database.dump", "dump"}};
    expect_entry_refused(f, v, N(v), "database.dump",
                         "metadata.json does not list database in its checksums");
}

static void part_before_metadata_and_not_listed_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "database.dump", "dump"}, {'f', "metadata.json", META_NONE}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), NULL, SM_E_CORRUPT,
                   sm_xasprintf("'%s' holds database.dump, which metadata.json does not list in "
                                "its checksums",
                                path));
    free(path);
}

static void listed_part_missing_from_the_archive_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json",
                "{\"format\": \"supamanager-export\", \"version\": 1, \"backup_id\": \"bk\", "
                "\"project\": {}, \"type\": \"FULL\", \"created_at\": \"x\", \"checksums\": "
                "{\"globals\": \"sha256:"
                "0000000000000000000000000000000000000000000000000000000000000000\"}}"}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), NULL, SM_E_CORRUPT,
                   sm_xasprintf("'%s' lacks globals.sql, which metadata.json lists", path));
    free(path);
}

static void checksum_mismatch_is_refused(void **state)
{
    fx *f = *state;
    char hex[65];
    ent v[] = {{'f', "metadata.json",
                "{\"format\": \"supamanager-export\", \"version\": 1, \"backup_id\": \"bk\", "
                "\"project\": {}, \"type\": \"FULL\", \"created_at\": \"x\", \"checksums\": "
                "{\"database\": \"sha256:"
                "0000000000000000000000000000000000000000000000000000000000000000\"}}"},
               {'f', "database.dump", "not the dump"}};

    crypto_sha256_hex("not the dump", 12, hex);
    expect_refused(f, v, N(v), NULL, SM_E_CORRUPT,
                   sm_xasprintf("checksum mismatch for database.dump: metadata.json says sha256:"
                                "0000000000000000000000000000000000000000000000000000000000000000"
                                ", the archive holds sha256:%s",
                                hex));
}

static void storage_checksum_mismatch_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json",
                "{\"format\": \"supamanager-export\", \"version\": 1, \"backup_id\": \"bk\", "
                "\"project\": {}, \"type\": \"FULL\", \"created_at\": \"x\", \"checksums\": "
                "{\"storage\": \"sha256:"
                "1111111111111111111111111111111111111111111111111111111111111111\"}}"},
               {'d', "storage", NULL},
               {'f', "storage/a", "a"}};
    char *path = th_path(f->dir, "evil.tar");
    sm_err err = SM_ERR_INIT;
    const char *want = "checksum mismatch for storage/: metadata.json says sha256:"
                       "1111111111111111111111111111111111111111111111111111111111111111, the "
                       "archive holds sha256:";

    craft(path, v, N(v), 0);
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_int_equal(strncmp(err.msg, want, strlen(want)), 0);
    assert_int_equal(strlen(err.msg), strlen(want) + 64);
    free(path);
}

static void oversized_metadata_is_refused(void **state)
{
    fx *f = *state;
    archive_import_limits lim = {0, 0, 100}; /* stands for 16 MiB */
    ent v[] = {{'f', "metadata.json", META_OK}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), &lim, SM_E_LIMIT,
                   sm_xasprintf("metadata.json in '%s' is %zu bytes, over the limit of 100 bytes",
                                path, strlen(META_OK)));
    free(path);
}

static void malformed_metadata_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", "{not json"}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), NULL, SM_E_INVALID,
                   sm_xasprintf("'%s' is not a SupaManager archive: metadata.json is not valid "
                                "JSON (string or '}' expected near 'not', line 1)",
                                path));
    free(path);
}

static void metadata_missing_a_field_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json",
                "{\"format\": \"supamanager-export\", \"version\": 1, \"project\": {}, "
                "\"type\": \"FULL\", \"created_at\": \"x\", \"checksums\": {}}"}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), NULL, SM_E_INVALID,
                   sm_xasprintf("'%s' is not a SupaManager archive: metadata.json has no "
                                "\"backup_id\"",
                                path));
    free(path);
}

static void metadata_with_a_wrong_type_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json",
                "{\"format\": \"supamanager-export\", \"version\": \"1\", \"backup_id\": \"bk\", "
                "\"project\": {}, \"type\": \"FULL\", \"created_at\": \"x\", \"checksums\": {}}"}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), NULL, SM_E_INVALID,
                   sm_xasprintf("'%s' is not a SupaManager archive: \"version\" in metadata.json "
                                "is not an integer",
                                path));
    free(path);
}

static void metadata_with_null_project_and_sizes_is_accepted(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json",
                "{\"format\": \"supamanager-export\", \"version\": 1, \"backup_id\": \"bk\", "
                "\"project\": null, \"sizes\": null, \"type\": \"FULL\", \"created_at\": \"x\", "
                "\"checksums\": {}, \"tool\": \"supamanager\"}"}};
    char *path = evil_path(f);
    json_t *meta = NULL;
    sm_err err = SM_ERR_INIT;

    craft(path, v, N(v), 0);
    check(archive_import(path, f->dest, NULL, NULL, &meta, &err), &err, "archive_import");
    assert_string_equal(json_string_value(json_object_get(meta, "tool")), "supamanager");
    json_decref(meta);
    free(path);
}

static void metadata_with_a_project_that_is_not_an_object_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json",
                "{\"format\": \"supamanager-export\", \"version\": 1, \"backup_id\": \"bk\", "
                "\"project\": \"demo\", \"type\": \"FULL\", \"created_at\": \"x\", "
                "\"checksums\": {}}"}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), NULL, SM_E_INVALID,
                   sm_xasprintf("'%s' is not a SupaManager archive: \"project\" in metadata.json "
                                "is not an object",
                                path));
    free(path);
}

static void metadata_of_another_format_is_refused(void **state)
{
    fx *f = *state;
    ent v[] = {{'f', "metadata.json", "{\"format\": \"something-else\", \"version\": 1}"}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), NULL, SM_E_INVALID,
                   sm_xasprintf("'%s' is not a SupaManager archive: metadata.json has format "
                                "something-else, not \"supamanager-export\"",
                                path));
    free(path);
}

static void newer_archive_version_asks_for_an_upgrade(void **state)
{
    fx *f = *state;
    char *path = th_path(f->dir, "evil.tar");
    char *want = sm_xasprintf(
        "'%s' is a version 2 SupaManager archive; this SupaManager reads version 1", path);
    ent v[] = {{'f', "metadata.json", "{\"format\": \"supamanager-export\", \"version\": 2}"}};
    sm_err err = SM_ERR_INIT;

    craft(path, v, N(v), 0);
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_VERSION, want);
    assert_string_equal(err.hint, "Upgrade SupaManager to import it.");
    free(want);
    free(path);
}

static void archive_over_the_size_limit_is_refused(void **state)
{
    fx *f = *state;
    archive_import_limits lim = {strlen(META_OK) + 10, 0, 0};
    ent v[] = {{'f', "metadata.json", META_OK}, {'f', "database.dump", "0123456789abcdef"}};
    char *path = evil_path(f);
    expect_refused(f, v, N(v), &lim, SM_E_LIMIT,
                   sm_xasprintf("'%s' holds more than the limit of %zu bytes (at entry "
                                "'database.dump')",
                                path, strlen(META_OK) + 10));
    free(path);
}

static void plain_text_file_is_not_an_archive(void **state)
{
    fx *f = *state;
    char *path = th_path(f->dir, "notes.txt");
    char *want =
        sm_xasprintf("'%s' is not a SupaManager archive: Unrecognized archive format", path);
    sm_err err = SM_ERR_INIT;

    th_write_str(path, "these are just some notes\nnothing to see here\n");
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_INVALID, want);
    assert_int_equal(th_count_entries(f->dest), 0);
    free(want);
    free(path);
}

static void empty_file_is_not_an_archive(void **state)
{
    fx *f = *state;
    char *path = th_path(f->dir, "empty.tar");
    char *want = sm_xasprintf("'%s' is not a SupaManager archive: it is empty", path);
    sm_err err = SM_ERR_INIT;

    th_write(path, "", 0);
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_INVALID, want);
    free(want);
    free(path);
}

static void tar_without_metadata_is_not_ours(void **state)
{
    fx *f = *state;
    ent v[] = {{'d', "storage", NULL}};
    char *path = evil_path(f);
    expect_refused(
        f, v, N(v), NULL, SM_E_INVALID,
        sm_xasprintf("'%s' is not a SupaManager archive: it holds no metadata.json", path));
    free(path);
}

static void truncated_archive_is_refused(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gz", ARCHIVE_GZIP, NULL);
    char *prefix = sm_xasprintf("'%s' is truncated: ", path);
    struct stat sb;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("unexpected error: %s", err.msg);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_string_equal(err.hint, "Copy or download the archive again.");
    assert_outside_untouched(f, 1);
    free(prefix);
    free(path);
}

static void damaged_encrypted_archive_is_refused(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gpg", ARCHIVE_NONE, PASSPHRASE);
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    th_read(path, &b);
    b.data[b.len / 2] ^= 0x55;
    th_write(path, b.data, b.len);
    assert_int_equal(archive_import(path, f->dest, PASSPHRASE, NULL, NULL, &err), -1);
    assert_true(err.code == SM_E_CORRUPT);
    assert_outside_untouched(f, 1);
    sm_buf_release(&b);
    free(path);
}

static void directory_listed_after_its_contents_gets_its_mode(void **state)
{
    fx *f = *state;
    char *ref = th_path(f->dir, "ref"), *p, *meta, hex[65];
    sm_err err = SM_ERR_INIT;
    struct stat sb;

    /* the same tree on disk gives the checksum */
    assert_int_equal(mkdir(ref, 0755), 0);
    assert_int_equal(chmod(ref, 0755), 0);
    p = th_path(ref, "sub");
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, 0711), 0);
    free(p);
    p = th_path(ref, "sub/x");
    th_write_str(p, "x\n");
    assert_int_equal(chmod(p, 0644), 0);
    free(p);
    check(archive_dir_digest(ref, hex, &err), &err, "archive_dir_digest");
    meta = sm_xasprintf(META_HEAD "\"checksums\": {\"storage\": \"sha256:%s\"}}", hex);
    {
        ent v[] = {{'f', "metadata.json", meta},
                   {'f', "storage/sub/x", "x\n"},
                   {'d', "storage/sub", "711"},
                   {'d', "storage", "755"}};
        p = evil_path(f);
        craft(p, v, N(v), 1);
    }
    check(archive_import(p, f->dest, NULL, NULL, NULL, &err), &err, "archive_import");
    free(p);
    p = th_path(f->dest, "storage/sub");
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0711);
    free(p);
    free(meta);
    free(ref);
}

static void export_repacked_by_hand_with_gnu_tar_imports(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar.gz", ARCHIVE_GZIP, NULL);
    char *unpacked = th_path(f->dir, "unpacked"), *repacked = th_path(f->dir, "re.tar.xz");
    char *cmd;

    assert_int_equal(mkdir(unpacked, 0700), 0);
    cmd = sm_xasprintf("tar --xattrs --xattrs-include='user.*' --numeric-owner -xpzf '%s' -C "
                       "'%s' && tar --xattrs --numeric-owner -cJf '%s' -C '%s' .",
                       path, unpacked, repacked, unpacked);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    import_ok(f, repacked, NULL); /* "./" names, xz, GNU tar's order and headers */
    free(unpacked);
    free(repacked);
    free(path);
}

static void export_to_a_closed_pipe_fails_cleanly(void **state)
{
    fx *f = *state;
    json_t *meta = make_meta(W.full);
    archive_export_opts o;
    sm_err err = SM_ERR_INIT;
    int p[2];

    (void)f;
    memset(&o, 0, sizeof(o));
    for (int enc = 0; enc < 2; enc++) {
        o.passphrase = enc ? PASSPHRASE : NULL;
        assert_int_equal(pipe(p), 0);
        close(p[0]); /* no reader: writes get EPIPE, and SIGPIPE must not kill us */
        assert_int_equal(archive_export(W.r, W.full, meta, p[1], &o, NULL, &err), -1);
        assert_err(&err, SM_E_IO, "cannot write the archive: Broken pipe");
        close(p[1]);
    }
    json_decref(meta);
}

static void privileged_xattrs_are_dropped(void **state)
{
    fx *f = *state;
    char *path = th_path(f->dir, "x.tar");
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    char *file = th_path(f->dest, "storage/a"), buf[64];
    const char *meta =
        "{\"format\": \"supamanager-export\", \"version\": 1, \"backup_id\": \"bk\", "
        "\"project\": {}, \"type\": \"FULL\", \"created_at\": \"x\", "
        "\"checksums\": {\"storage\": \"sha256:"
        "1111111111111111111111111111111111111111111111111111111111111111\"}}";
    sm_err err = SM_ERR_INIT;

    if (geteuid() != 0 || !W.xattrs) {
        skip();
    }
    archive_write_set_format_pax(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    archive_entry_set_pathname(e, "metadata.json");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(meta));
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_data(a, meta, strlen(meta));
    archive_entry_clear(e);
    archive_entry_set_pathname(e, "storage/a");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 1);
    archive_entry_xattr_add_entry(e, "trusted.evil", "1", 1);
    archive_entry_xattr_add_entry(e, "user.fine", "2", 1);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_data(a, "a", 1);
    archive_write_close(a);
    archive_write_free(a);
    archive_entry_free(e);

    /* refused for its checksum, after extracting it */
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_int_equal(lgetxattr(file, "trusted.evil", buf, sizeof(buf)), -1);
    assert_int_equal(lgetxattr(file, "user.fine", buf, sizeof(buf)), 1);
    free(file);
    free(path);
}

static void destination_must_be_private_and_empty(void **state)
{
    fx *f = *state;
    char *path = export_ok(f, "a.tar", ARCHIVE_NONE, NULL);
    char *want;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(chmod(f->dest, 0755), 0);
    want = sm_xasprintf("import destination '%s' is not private (mode 0755, owner %u)", f->dest,
                        (unsigned)geteuid());
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_INVALID, want);
    free(want);
    assert_int_equal(chmod(f->dest, 0700), 0);
    want = th_path(f->dest, "x");
    th_write_str(want, "x");
    free(want);
    want = sm_xasprintf("import destination '%s' is not empty", f->dest);
    assert_int_equal(archive_import(path, f->dest, NULL, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_EXISTS, want);
    free(want);
    free(path);
}

/* ---- small things ---- */

static void compression_names_parse_and_suffixes_match(void **state)
{
    archive_compression c;
    (void)state;
    assert_int_equal(archive_compression_parse("gzip", &c), 0);
    assert_int_equal(c, ARCHIVE_GZIP);
    assert_string_equal(archive_suffix(c), ".tar.gz");
    assert_int_equal(archive_compression_parse("zstd", &c), 0);
    assert_int_equal(c, ARCHIVE_ZSTD);
    assert_string_equal(archive_suffix(c), ".tar.zst");
    assert_int_equal(archive_compression_parse("none", &c), 0);
    assert_int_equal(c, ARCHIVE_NONE);
    assert_string_equal(archive_suffix(c), ".tar");
    assert_int_equal(archive_compression_parse("xz", &c), -1);
    assert_int_equal(archive_compression_parse(NULL, &c), -1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compression_names_parse_and_suffixes_match),
        T(gzip_export_imports_back_identical),
        T(zstd_export_imports_back_identical),
        T(uncompressed_export_imports_back_identical),
        T(encrypted_export_imports_back_identical),
        T(export_reports_progress_to_the_total),
        T(export_writes_metadata_first_and_links_as_links),
        T(gnu_tar_extracts_the_export_by_hand),
        T(gpg_and_tar_decrypt_the_export_by_hand),
        T(wrong_passphrase_is_refused_clearly),
        T(encrypted_archive_without_passphrase_is_refused),
        T(passphrase_with_a_line_break_is_refused),
        T(special_files_are_left_out_and_checksums_follow),
        T(export_refuses_checksums_that_import_would_refuse),
        T(export_refuses_metadata_without_checksums),
        T(dir_digest_matches_the_repository_restore),
        T(absolute_path_is_refused),
        T(dotdot_path_is_refused),
        T(dotdot_inside_a_path_is_refused),
        T(symlink_to_etc_is_refused),
        T(symlink_leaving_storage_is_refused),
        T(symlink_into_config_from_storage_is_refused),
        T(symlink_climbing_through_another_link_is_refused),
        T(writing_through_a_symlink_is_refused),
        T(hard_link_to_outside_is_refused),
        T(hard_link_to_an_absolute_path_is_refused),
        T(hard_link_to_another_subtree_is_refused),
        T(hard_link_to_a_later_entry_is_refused),
        T(path_too_long_to_extract_is_refused),
        T(fifo_is_refused),
        T(char_device_is_refused),
        T(unknown_top_level_entry_is_refused),
        T(duplicate_entry_is_refused),
        T(database_dump_that_is_a_symlink_is_refused),
        T(part_not_listed_in_metadata_is_refused),
        T(part_before_metadata_and_not_listed_is_refused),
        T(listed_part_missing_from_the_archive_is_refused),
        T(checksum_mismatch_is_refused),
        T(storage_checksum_mismatch_is_refused),
        T(oversized_metadata_is_refused),
        T(malformed_metadata_is_refused),
        T(metadata_missing_a_field_is_refused),
        T(metadata_with_a_wrong_type_is_refused),
        T(metadata_with_null_project_and_sizes_is_accepted),
        T(metadata_with_a_project_that_is_not_an_object_is_refused),
        T(metadata_of_another_format_is_refused),
        T(newer_archive_version_asks_for_an_upgrade),
        T(archive_over_the_size_limit_is_refused),
        T(plain_text_file_is_not_an_archive),
        T(empty_file_is_not_an_archive),
        T(tar_without_metadata_is_not_ours),
        T(truncated_archive_is_refused),
        T(damaged_encrypted_archive_is_refused),
        T(directory_listed_after_its_contents_gets_its_mode),
        T(export_repacked_by_hand_with_gnu_tar_imports),
        T(export_to_a_closed_pipe_fails_cleanly),
        T(privileged_xattrs_are_dropped),
        T(destination_must_be_private_and_empty),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
