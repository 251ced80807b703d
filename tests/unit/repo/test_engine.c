/* The repository engine through its public API (repo/repo.h) on a local
 * store: init and open, keys, locks, stream and tree backups, restore,
 * dedup, snapshot references, prune and verify.
 *
 * Opening a repository runs scrypt with N=32768 (~0.1 s), so one repository
 * is created per run as a template, its key file is replaced by one written
 * as docs/FORMAT.md describes but with N=1024, and each test gets a fresh
 * copy of it in its own temporary directory. Small chunk and pack sizes make
 * every test write many chunks and packs quickly. */
#include "../unit_helpers.h"

#include "core/log.h"
#include "core/util.h"
#include "repo/crypto.h"
#include "repo/repo.h"
#include "repo/repo.intern.h" /* the master key, to write the fast key file */
#include "repo/tree.h"

#include <errno.h>
#include <sys/xattr.h>
#include <time.h>

#define SECRET "correct horse battery staple"
#define KIB 1024u

static char *template_dir; /* the template repository, made once */
static int xattr_warned;

typedef struct fx {
    char *dir;  /* this test's temporary directory */
    char *path; /* dir/repo: the repository's store */
    store *st;
    repo *r; /* opened with SECRET (setup_open only) */
} fx;

/* ---- helpers ---- */

static void check(int rc, const sm_err *err, const char *what)
{
    if (rc != 0)
        fail_msg("%s failed: %s", what, err->msg);
}

static repo_writer *writer_begin(repo *r)
{
    repo_writer_opts wo;
    repo_writer *w = NULL;
    sm_err err = SM_ERR_INIT;

    memset(&wo, 0, sizeof(wo));
    wo.threads = 2;
    check(repo_lock(r, 1, "backup", &err), &err, "repo_lock");
    check(repo_writer_new(&w, r, &wo, &err), &err, "repo_writer_new");
    return w;
}

/* Commits, takes the totals (NULLs are fine), frees and unlocks. */
static void writer_commit_totals(repo *r, repo_writer *w, char id[65], uint64_t *fresh,
                                 uint64_t *stored)
{
    sm_err err = SM_ERR_INIT;

    check(repo_writer_commit(w, NULL, NULL, id, &err), &err, "repo_writer_commit");
    repo_writer_totals(w, NULL, fresh, stored);
    repo_writer_free(w);
    check(repo_unlock(r, &err), &err, "repo_unlock");
}

static void writer_commit(repo *r, repo_writer *w, char id[65])
{
    writer_commit_totals(r, w, id, NULL, NULL);
}

/* Backs up (p, n) as one pushed stream, in pieces of the given sizes
 * (cycled; NULL: one piece). */
static void backup_stream(repo *r, const char *name, const unsigned char *p, size_t n,
                          const size_t *pieces, size_t npieces, char id[65], uint64_t *fresh,
                          uint64_t *stored)
{
    repo_writer *w = writer_begin(r);
    sm_err err = SM_ERR_INIT;
    size_t off = 0, k = 0;

    check(repo_writer_stream_begin(w, name, &err), &err, "stream_begin");
    while (off < n) {
        size_t want = pieces ? pieces[k++ % npieces] : n;
        size_t len = n - off < want ? n - off : want;
        check(repo_writer_stream_write(w, p + off, len, &err), &err, "stream_write");
        off += len;
    }
    check(repo_writer_stream_end(w, &err), &err, "stream_end");
    writer_commit_totals(r, w, id, fresh, stored);
}

static int to_buf(void *ud, const void *p, size_t n, sm_err *err)
{
    (void)err;
    sm_buf_put(ud, p, n);
    return 0;
}

static void read_stream(repo *r, const char *ref, const char *name, sm_buf *out)
{
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;

    check(repo_snapshot_load(r, ref, &s, &err), &err, "repo_snapshot_load");
    sm_buf_reset(out);
    check(repo_read_stream(r, s, name, to_buf, out, &err), &err, "repo_read_stream");
    snapshot_free(s);
}

typedef struct objs {
    uint64_t count, bytes;
} objs;

static int count_obj(const char *key, uint64_t size, void *ud, sm_err *err)
{
    objs *o = ud;
    (void)key;
    (void)err;
    o->count++;
    o->bytes += size;
    return 0;
}

static objs objects(store *st, const char *prefix)
{
    objs o = {0, 0};
    sm_err err = SM_ERR_INIT;
    check(store_list(st, prefix, count_obj, &o, &err), &err, "store_list");
    return o;
}

static json_int_t stat_of(repo *r, const char *field)
{
    json_t *s = NULL;
    json_int_t v;
    sm_err err = SM_ERR_INIT;

    check(repo_stats(r, &s, &err), &err, "repo_stats");
    v = json_integer_value(json_object_get(s, field));
    json_decref(s);
    return v;
}

static size_t snapshot_count(repo *r)
{
    snapshot **v = NULL;
    size_t n = 0;
    sm_err err = SM_ERR_INIT;

    check(repo_snapshots(r, &v, &n, &err), &err, "repo_snapshots");
    repo_snapshots_free(v, n);
    return n;
}

/* Keys of the objects under a prefix, sorted (caller frees each and v). */
typedef struct keylist {
    char **v;
    size_t n, cap;
} keylist;

static int collect_key(const char *key, uint64_t size, void *ud, sm_err *err)
{
    keylist *k = ud;
    (void)size;
    (void)err;
    SM_GROW(k->v, k->cap, k->n + 1);
    k->v[k->n++] = sm_xstrdup(key);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static keylist keys_of(store *st, const char *prefix)
{
    keylist k = {NULL, 0, 0};
    sm_err err = SM_ERR_INIT;
    check(store_list(st, prefix, collect_key, &k, &err), &err, "store_list");
    if (k.n)
        qsort(k.v, k.n, sizeof(*k.v), cmp_str);
    return k;
}

static void keys_free(keylist *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
}

/* An expected message naming one path (caller frees). */
#define msgf(fmt, a) sm_xasprintf(fmt, a)

/* ---- fixtures ---- */

static void copy_tree(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *de;
    sm_err err = SM_ERR_INIT;

    assert_non_null(d);
    assert_int_equal(sm_mkdir_p(to, 0700, &err), 0);
    while ((de = readdir(d)) != NULL) {
        char *a, *b;
        struct stat sb;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        a = th_path(from, de->d_name);
        b = th_path(to, de->d_name);
        assert_int_equal(lstat(a, &sb), 0);
        if (S_ISDIR(sb.st_mode)) {
            copy_tree(a, b);
        } else {
            sm_buf data = SM_BUF_INIT;
            th_read(a, &data);
            th_write(b, data.data, data.len);
            sm_buf_release(&data);
        }
        free(a);
        free(b);
    }
    closedir(d);
}

static repo_init_opts small_opts(void)
{
    repo_init_opts o = REPO_INIT_OPTS_INIT;
    o.chunk_min = 1 * KIB;
    o.chunk_avg = 4 * KIB;
    o.chunk_max = 16 * KIB;
    o.pack_size = 64 * KIB;
    return o;
}

/* Writes a key file wrapping keys under secret with scrypt N=1024, exactly
 * as docs/FORMAT.md ("Keys") describes. */
static void write_fast_key(store *st, const char *secret, const repo_keys *keys)
{
    unsigned char salt[16], kek[32];
    sm_buf sealed = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char *salt_b64, *data_b64, *sum_in, *text, *id, *key, sum[65];
    json_t *doc;

    sm_random(salt, sizeof(salt));
    check(crypto_scrypt(secret, salt, sizeof(salt), 1024, 8, 1, kek, &err), &err, "scrypt");
    check(crypto_seal_with(kek, "supamanager-key-v1", 18, keys, sizeof(*keys), &sealed, &err), &err,
          "seal");
    salt_b64 = sm_b64_encode(salt, sizeof(salt));
    data_b64 = sm_b64_encode(sealed.data, sealed.len);
    sum_in = sm_xasprintf("%s|%s|%u|%u|%u", salt_b64, data_b64, 1024u, 8u, 1u);
    crypto_sha256_hex(sum_in, strlen(sum_in), sum);
    doc = json_pack("{s:i,s:s,s:s,s:s,s:i,s:i,s:i,s:s,s:s,s:s}", "version", 1, "created",
                    "2026-01-01T00:00:00Z", "hostname", "unit", "kdf", "scrypt", "n", 1024, "r", 8,
                    "p", 1, "salt", salt_b64, "data", data_b64, "checksum", sum);
    text = json_dumps(doc, JSON_INDENT(2));
    id = sm_random_hex(16);
    key = sm_xasprintf("keys/%s", id);
    check(store_put(st, key, text, strlen(text), &err), &err, "store_put");
    free(key);
    free(id);
    free(text);
    json_decref(doc);
    free(sum_in);
    free(salt_b64);
    free(data_b64);
    sm_buf_release(&sealed);
}

static int group_setup(void **state)
{
    store *st = NULL;
    repo *r = NULL;
    sm_err err = SM_ERR_INIT;
    repo_init_opts o = small_opts();
    char *base = th_tmpdir();
    keylist slow;

    (void)state;
    unsetenv("SUPAMANAGER_NOW");    /* snapshot times come from the real clock */
    sm_log_set_level(SM_LOG_ERROR); /* damaged key files are warned about */
    template_dir = th_path(base, "template");
    free(base);
    if (store_open(&st, template_dir, &err) < 0 || repo_init(st, SECRET, &o, &err) < 0 ||
        repo_open(&r, st, SECRET, &err) < 0) {
        fprintf(stderr, "cannot create the template repository: %s\n", err.msg);
        return -1;
    }
    /* swap the slow key for a fast one, then check that it opens */
    slow = keys_of(st, "keys/");
    write_fast_key(st, SECRET, &r->keys);
    repo_close(r);
    r = NULL;
    check(store_delete(st, slow.v[0], &err), &err, "store_delete");
    keys_free(&slow);
    if (repo_open(&r, st, SECRET, &err) < 0) {
        fprintf(stderr, "the key file written from docs/FORMAT.md does not open: %s\n", err.msg);
        return -1;
    }
    repo_close(r);
    store_free(st);
    return 0;
}

static int group_teardown(void **state)
{
    char *slash = strrchr(template_dir, '/');
    (void)state;
    *slash = '\0'; /* remove the whole temporary directory */
    th_rmdir(template_dir);
    return 0;
}

/* An empty location: dir/repo does not exist yet. */
static int setup_empty(void **state)
{
    fx *f = sm_xcalloc(1, sizeof(*f));
    sm_err err = SM_ERR_INIT;

    f->dir = th_tmpdir();
    f->path = th_path(f->dir, "repo");
    if (store_open(&f->st, f->path, &err) < 0)
        return -1;
    *state = f;
    return 0;
}

/* A copy of the template repository, not opened. */
static int setup_copy(void **state)
{
    fx *f;

    if (setup_empty(state) < 0)
        return -1;
    f = *state;
    copy_tree(template_dir, f->path);
    return 0;
}

/* A copy of the template repository, opened with SECRET. */
static int setup_open(void **state)
{
    fx *f;
    sm_err err = SM_ERR_INIT;

    if (setup_copy(state) < 0)
        return -1;
    f = *state;
    if (repo_open(&f->r, f->st, SECRET, &err) < 0) {
        fprintf(stderr, "repo_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    unsetenv("SUPAMANAGER_NOW");
    repo_close(f->r);
    store_free(f->st);
    free(f->path);
    th_rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- init and open ---- */

static void init_then_open_succeeds(void **state)
{
    fx *f = *state;
    repo_init_opts o = small_opts();
    repo *r = NULL;
    json_t *cfg;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_init(f->st, SECRET, &o, &err), 0);
    assert_int_equal(repo_open(&r, f->st, SECRET, &err), 0);
    assert_int_equal(strlen(repo_id(r)), 32);
    assert_int_equal(strspn(repo_id(r), "0123456789abcdef"), 32);
    assert_ptr_equal(repo_store(r), f->st);
    cfg = repo_config_json(r);
    assert_int_equal(json_integer_value(json_object_get(cfg, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(cfg, "pack_size")), 64 * KIB);
    assert_int_equal(json_integer_value(json_object_get(cfg, "compression_level")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cfg, "chunker"), "avg")),
                     4 * KIB);
    json_decref(cfg);
    assert_int_equal(objects(f->st, "keys/").count, 1);
    assert_int_equal(store_stat(f->st, "config", NULL, &err), 0);
    repo_close(r);
}

static void init_twice_fails_with_exists(void **state)
{
    fx *f = *state;
    sm_err err = SM_ERR_INIT;
    char *want = msgf("a repository already exists at '%s'", f->path);

    assert_int_equal(repo_init(f->st, SECRET, NULL, &err), -1);
    assert_err(&err, SM_E_EXISTS, want);
    assert_int_equal(objects(f->st, "keys/").count, 1); /* no second key was written */
    free(want);
}

static void init_without_a_secret_fails_with_badkey(void **state)
{
    fx *f = *state;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_init(f->st, NULL, NULL, &err), -1);
    assert_err(&err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
    assert_int_equal(repo_init(f->st, "", NULL, &err), -1);
    assert_err(&err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
    assert_int_equal(objects(f->st, "").count, 0);
}

static void init_rejects_bad_chunk_sizes(void **state)
{
    fx *f = *state;
    repo_init_opts o = small_opts();
    sm_err err = SM_ERR_INIT;

    o.chunk_avg = 3000;
    assert_int_equal(repo_init(f->st, SECRET, &o, &err), -1);
    assert_err(&err, SM_E_INVALID, "invalid chunk sizes min=1024 avg=3000 max=16384");
    assert_string_equal(err.hint, "Use 64 <= min <= avg <= max <= 64 MiB with avg a power of two.");
    assert_int_equal(objects(f->st, "").count, 0);
}

static void init_rejects_bad_pack_size_and_level(void **state)
{
    fx *f = *state;
    repo_init_opts o = small_opts();
    sm_err err = SM_ERR_INIT;

    o.pack_size = 4095;
    assert_int_equal(repo_init(f->st, SECRET, &o, &err), -1);
    assert_err(&err, SM_E_INVALID, "invalid pack size 4095 (4 KiB to 512 MiB)");
    o = small_opts();
    o.compression_level = 20;
    assert_int_equal(repo_init(f->st, SECRET, &o, &err), -1);
    assert_err(&err, SM_E_INVALID, "invalid compression level 20 (0 to 19)");
    assert_int_equal(objects(f->st, "").count, 0);
}

static void open_with_the_wrong_secret_fails_with_badkey(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    sm_err err = SM_ERR_INIT;
    char *want = msgf("wrong ENCRYPTION_SECRET for repository '%s'", f->path);

    assert_int_equal(repo_open(&r, f->st, "not the secret", &err), -1);
    assert_err(&err, SM_E_BADKEY, want);
    assert_string_equal(err.hint, "Set ENCRYPTION_SECRET to the secret the repository was created "
                                  "with (it opens none of its 1 key).");
    assert_null(r);
    free(want);
}

static void open_without_a_secret_fails_with_badkey(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_open(&r, f->st, NULL, &err), -1);
    assert_err(&err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
    assert_int_equal(repo_open(&r, f->st, "", &err), -1);
    assert_err(&err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
    assert_null(r);
}

static void open_of_an_empty_location_fails_with_not_found(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    sm_err err = SM_ERR_INIT;
    char *want = msgf("no repository at '%s'", f->path);

    assert_int_equal(repo_open(&r, f->st, SECRET, &err), -1);
    assert_err(&err, SM_E_NOTFOUND, want);
    free(want);
}

static void open_of_a_newer_format_fails_with_version(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    sm_buf raw = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    json_t *doc;
    char *text, want[4200];

    check(store_get(f->st, "config", 0, 0, &raw, &err), &err, "store_get");
    doc = json_loadb((const char *)raw.data, raw.len, 0, NULL);
    assert_non_null(doc);
    json_object_set_new(doc, "version", json_integer(2));
    text = json_dumps(doc, 0);
    check(store_put(f->st, "config", text, strlen(text), &err), &err, "store_put");
    assert_int_equal(repo_open(&r, f->st, SECRET, &err), -1);
    snprintf(want, sizeof(want),
             "repository '%s' has format version 2, newer than this supamanager understands (1)",
             f->path);
    assert_err(&err, SM_E_VERSION, want);
    free(text);
    json_decref(doc);
    sm_buf_release(&raw);
}

static void open_with_a_damaged_key_file_fails_as_corrupt(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    keylist k = keys_of(f->st, "keys/");
    sm_buf raw = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    json_t *doc;
    char *text, want[4200];

    assert_int_equal(k.n, 1);
    check(store_get(f->st, k.v[0], 0, 0, &raw, &err), &err, "store_get");
    doc = json_loadb((const char *)raw.data, raw.len, 0, NULL);
    json_object_set_new(doc, "checksum", json_string("00"));
    text = json_dumps(doc, 0);
    check(store_put(f->st, k.v[0], text, strlen(text), &err), &err, "store_put");
    assert_int_equal(repo_open(&r, f->st, SECRET, &err), -1);
    snprintf(want, sizeof(want),
             "cannot unlock repository '%s': key file '%s' is damaged: checksum mismatch", f->path,
             k.v[0]);
    assert_err(&err, SM_E_CORRUPT, want);
    free(text);
    json_decref(doc);
    sm_buf_release(&raw);
    keys_free(&k);
}

static void open_without_key_files_fails_as_corrupt(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    keylist k = keys_of(f->st, "keys/");
    sm_err err = SM_ERR_INIT;
    char *want = msgf("repository '%s' has no key files", f->path);

    check(store_delete(f->st, k.v[0], &err), &err, "store_delete");
    assert_int_equal(repo_open(&r, f->st, SECRET, &err), -1);
    assert_err(&err, SM_E_CORRUPT, want);
    keys_free(&k);
    free(want);
}

static void open_with_a_damaged_config_fails_as_corrupt(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    sm_err err = SM_ERR_INIT;
    char *want = msgf("the config of repository '%s' is damaged: ", f->path);

    check(store_put(f->st, "config", "{not json", 9, &err), &err, "store_put");
    assert_int_equal(repo_open(&r, f->st, SECRET, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_memory_equal(err.msg, want, strlen(want));
    free(want);
}

/* ---- keys ---- */

static void key_add_lets_the_new_secret_open_and_keeps_the_old(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    char *id = NULL;
    json_t *list = NULL;
    sm_err err = SM_ERR_INIT;
    int current = 0;

    assert_int_equal(repo_key_add(f->r, "second secret", &id, &err), 0);
    assert_int_equal(strlen(id), 32);
    assert_int_equal(objects(f->st, "keys/").count, 2);
    assert_int_equal(repo_open(&r, f->st, "second secret", &err), 0);
    repo_close(r);
    r = NULL;
    assert_int_equal(repo_open(&r, f->st, SECRET, &err), 0);
    repo_close(r);
    assert_int_equal(repo_key_list(f->r, &list, &err), 0);
    assert_int_equal(json_array_size(list), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *o = json_array_get(list, i);
        if (json_is_true(json_object_get(o, "current"))) {
            current++;
            assert_string_not_equal(json_string_value(json_object_get(o, "id")), id);
        }
        assert_true(json_is_string(json_object_get(o, "created")));
    }
    assert_int_equal(current, 1);
    json_decref(list);
    free(id);
}

static void key_change_makes_the_old_secret_fail(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    sm_err err = SM_ERR_INIT;
    char *want = msgf("wrong ENCRYPTION_SECRET for repository '%s'", f->path);

    assert_int_equal(repo_key_change(f->r, "new secret", &err), 0);
    assert_int_equal(objects(f->st, "keys/").count, 1);
    assert_int_equal(repo_open(&r, f->st, SECRET, &err), -1);
    assert_err(&err, SM_E_BADKEY, want);
    assert_int_equal(repo_open(&r, f->st, "new secret", &err), 0);
    repo_close(r);
    free(want);
}

static void key_change_keeps_the_data_readable(void **state)
{
    fx *f = *state;
    repo *r = NULL;
    unsigned char *data = th_random(50000, 21);
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65];

    backup_stream(f->r, "db", data, 50000, NULL, 0, id, NULL, NULL);
    assert_int_equal(repo_key_change(f->r, "new secret", &err), 0);
    assert_int_equal(repo_open(&r, f->st, "new secret", &err), 0);
    read_stream(r, id, "db", &out);
    assert_int_equal(out.len, 50000);
    assert_memory_equal(out.data, data, 50000);
    repo_close(r);
    sm_buf_release(&out);
    free(data);
}

static void key_remove_refuses_the_key_in_use(void **state)
{
    fx *f = *state;
    keylist k = keys_of(f->st, "keys/");
    sm_err err = SM_ERR_INIT;
    const char *id = k.v[0] + 5;
    char want[128];

    assert_int_equal(repo_key_remove(f->r, id, &err), -1);
    snprintf(want, sizeof(want), "key '%s' is the one in use", id);
    assert_err(&err, SM_E_INVALID, want);
    assert_int_equal(objects(f->st, "keys/").count, 1);
    keys_free(&k);
}

static void key_remove_deletes_another_key_by_prefix(void **state)
{
    fx *f = *state;
    char *id = NULL, prefix[9];
    repo *r = NULL;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_key_add(f->r, "second secret", &id, &err), 0);
    snprintf(prefix, sizeof(prefix), "%.8s", id);
    assert_int_equal(repo_key_remove(f->r, prefix, &err), 0);
    assert_int_equal(objects(f->st, "keys/").count, 1);
    assert_int_equal(repo_open(&r, f->st, "second secret", &err), -1);
    assert_int_equal(err.code, SM_E_BADKEY);
    free(id);
}

static void key_add_refuses_an_empty_secret(void **state)
{
    fx *f = *state;
    char *id = NULL;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_key_add(f->r, "", &id, &err), -1);
    assert_err(&err, SM_E_BADKEY, "the new secret is empty");
    assert_null(id);
    assert_int_equal(objects(f->st, "keys/").count, 1);
}

static void key_remove_of_an_unknown_id_fails_with_not_found(void **state)
{
    fx *f = *state;
    keylist k = keys_of(f->st, "keys/");
    sm_err err = SM_ERR_INIT;
    char ref[8] = "0000", want[4200];

    if (!strncmp(k.v[0] + 5, ref, 4))
        memcpy(ref, "ffff", 4);
    assert_int_equal(repo_key_remove(f->r, ref, &err), -1);
    snprintf(want, sizeof(want), "no key '%s' in repository '%s'", ref, f->path);
    assert_err(&err, SM_E_NOTFOUND, want);
    /* fewer than 4 characters never match */
    snprintf(ref, sizeof(ref), "%.3s", k.v[0] + 5);
    assert_int_equal(repo_key_remove(f->r, ref, &err), -1);
    assert_int_equal(err.code, SM_E_NOTFOUND);
    keys_free(&k);
}

/* ---- locks ---- */

static void second_exclusive_lock_fails_naming_the_holder(void **state)
{
    fx *f = *state;
    store *st2 = NULL;
    repo *r2 = NULL;
    sm_err err = SM_ERR_INIT;
    char want[4200];

    check(store_open(&st2, f->path, &err), &err, "store_open");
    check(repo_open(&r2, st2, SECRET, &err), &err, "repo_open");
    assert_int_equal(repo_lock(f->r, 1, "backup", &err), 0);
    assert_int_equal(repo_lock(r2, 1, "prune", &err), -1);
    assert_int_equal(err.code, SM_E_LOCKED);
    snprintf(want, sizeof(want),
             "repository '%s' is locked: an exclusive lock held by pid %ld on host '%s' "
             "(backup) since ",
             f->path, (long)getpid(), sm_hostname());
    assert_memory_equal(err.msg, want, strlen(want));
    assert_int_equal(objects(f->st, "locks/").count, 1); /* the refused lock is gone */
    repo_close(r2);
    store_free(st2);
}

static void shared_lock_is_granted_while_a_writer_holds_the_lock(void **state)
{
    fx *f = *state;
    store *st2 = NULL;
    repo *r2 = NULL;
    sm_err err = SM_ERR_INIT;

    /* readers never block and are never blocked (repo.h) */
    check(store_open(&st2, f->path, &err), &err, "store_open");
    check(repo_open(&r2, st2, SECRET, &err), &err, "repo_open");
    assert_int_equal(repo_lock(f->r, 1, "backup", &err), 0);
    assert_int_equal(repo_lock(r2, 0, "restore", &err), 0);
    assert_int_equal(objects(f->st, "locks/").count, 2);
    repo_close(r2);
    assert_int_equal(objects(f->st, "locks/").count, 1);
    store_free(st2);
}

static void exclusive_lock_is_granted_while_readers_hold_locks(void **state)
{
    fx *f = *state;
    store *st2 = NULL;
    repo *r2 = NULL;
    sm_err err = SM_ERR_INIT;

    check(store_open(&st2, f->path, &err), &err, "store_open");
    check(repo_open(&r2, st2, SECRET, &err), &err, "repo_open");
    assert_int_equal(repo_lock(f->r, 0, "restore", &err), 0);
    assert_int_equal(repo_lock(r2, 1, "backup", &err), 0);
    assert_int_equal(objects(f->st, "locks/").count, 2);
    repo_close(r2);
    store_free(st2);
}

static void prune_keeps_unused_packs_while_a_reader_holds_a_lock(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(200 * KIB, 23), *b = th_random(200 * KIB, 24);
    store *st2 = NULL;
    repo *r2 = NULL;
    repo_prune_opts po;
    repo_prune_result res;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];
    objs before;

    backup_stream(f->r, "db", a, 200 * KIB, NULL, 0, id1, NULL, NULL);
    backup_stream(f->r, "db", b, 200 * KIB, NULL, 0, id2, NULL, NULL);
    before = objects(f->st, "data/");
    check(store_open(&st2, f->path, &err), &err, "store_open");
    check(repo_open(&r2, st2, SECRET, &err), &err, "repo_open");
    check(repo_lock(r2, 0, "restore", &err), &err, "reader lock");
    memset(&po, 0, sizeof(po));
    po.keep_last = 1;
    check(repo_lock(f->r, 1, "prune", &err), &err, "lock");
    assert_int_equal(repo_prune(f->r, &po, &res, &err), 0);
    assert_int_equal(res.snapshots_removed, 1);
    assert_int_equal(snapshot_count(f->r), 1);
    assert_true(objects(f->st, "data/").count == before.count); /* the reader may need them */
    repo_close(r2);
    store_free(st2);
    /* the next prune deletes them */
    assert_int_equal(repo_prune(f->r, &po, &res, &err), 0);
    assert_true(objects(f->st, "data/").count < before.count);
    check(repo_unlock(f->r, &err), &err, "unlock");
    free(a);
    free(b);
}

static void lock_is_free_again_after_unlock(void **state)
{
    fx *f = *state;
    store *st2 = NULL;
    repo *r2 = NULL;
    sm_err err = SM_ERR_INIT;

    check(store_open(&st2, f->path, &err), &err, "store_open");
    check(repo_open(&r2, st2, SECRET, &err), &err, "repo_open");
    assert_int_equal(repo_lock(f->r, 1, "backup", &err), 0);
    assert_int_equal(repo_unlock(f->r, &err), 0);
    assert_int_equal(objects(f->st, "locks/").count, 0);
    assert_int_equal(repo_lock(r2, 1, "backup", &err), 0);
    repo_close(r2); /* releases its lock */
    assert_int_equal(objects(f->st, "locks/").count, 0);
    store_free(st2);
}

static void locking_twice_in_one_repo_object_fails(void **state)
{
    fx *f = *state;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_lock(f->r, 0, "restore", &err), 0);
    assert_int_equal(repo_lock(f->r, 1, "backup", &err), -1);
    assert_err(&err, SM_E_INTERNAL, "repository is already locked by this process");
}

static void put_lock(fx *f, const char *key, const char *host, long pid, time_t t)
{
    char doc[256];
    sm_err err = SM_ERR_INIT;

    snprintf(doc, sizeof(doc),
             "{\"exclusive\":true,\"hostname\":\"%s\",\"pid\":%ld,\"purpose\":\"backup\","
             "\"start\":\"1\",\"time\":%lld}",
             host, pid, (long long)t);
    check(store_put(f->st, key, doc, strlen(doc), &err), &err, "store_put");
}

static void lock_of_a_dead_process_on_this_host_is_removed(void **state)
{
    fx *f = *state;
    sm_err err = SM_ERR_INIT;

    put_lock(f, "locks/dead", sm_hostname(), (long)th_dead_pid(), time(NULL));
    assert_int_equal(repo_lock(f->r, 1, "backup", &err), 0);
    assert_int_equal(store_stat(f->st, "locks/dead", NULL, &err), 1);
}

static void lock_of_another_host_blocks_until_broken(void **state)
{
    fx *f = *state;
    sm_err err = SM_ERR_INIT;
    unsigned removed = 99;

    put_lock(f, "locks/live", "other-host", 4242, time(NULL));
    assert_int_equal(repo_lock(f->r, 1, "backup", &err), -1);
    assert_int_equal(err.code, SM_E_LOCKED);
    assert_non_null(strstr(err.msg, "an exclusive lock held by pid 4242 on host 'other-host' "
                                    "(backup) since"));
    /* a fresh foreign lock is live: only `all` removes it */
    assert_int_equal(repo_break_locks(f->st, 0, &removed, &err), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(repo_break_locks(f->st, 1, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(repo_lock(f->r, 1, "backup", &err), 0);
}

static void break_locks_removes_a_stale_foreign_lock(void **state)
{
    fx *f = *state;
    sm_err err = SM_ERR_INIT;
    unsigned removed = 99;

    put_lock(f, "locks/stale", "other-host", 4242, time(NULL) - 7200);
    assert_int_equal(repo_break_locks(f->st, 0, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(objects(f->st, "locks/").count, 0);
}

static void writer_without_a_lock_fails(void **state)
{
    fx *f = *state;
    repo_writer *w = NULL;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_writer_new(&w, f->r, NULL, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "a backup needs the repository's exclusive lock");
    assert_null(w);
}

static void writer_with_a_shared_lock_fails(void **state)
{
    fx *f = *state;
    repo_writer *w = NULL;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_lock(f->r, 0, "restore", &err), 0);
    assert_int_equal(repo_writer_new(&w, f->r, NULL, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "a backup needs the repository's exclusive lock");
}

static void prune_without_a_lock_fails(void **state)
{
    fx *f = *state;
    repo_prune_opts po;
    sm_err err = SM_ERR_INIT;

    memset(&po, 0, sizeof(po));
    po.keep_last = 1;
    assert_int_equal(repo_prune(f->r, &po, NULL, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "prune needs the repository's exclusive lock");
}

/* ---- streams ---- */

static void pushed_stream_in_odd_pieces_reads_back_identical(void **state)
{
    fx *f = *state;
    static const size_t pieces[] = {1, 7, 4093, 65537, 3, 16384, 100, 16385};
    const size_t n = 300 * KIB + 7;
    unsigned char *data = th_random(n, 1);
    sm_buf out = SM_BUF_INIT;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    json_t *st;
    char id[65], sha[65];

    backup_stream(f->r, "db", data, n, pieces, 8, id, NULL, NULL);
    assert_int_equal(strlen(id), 64);
    read_stream(f->r, id, "db", &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, data, n);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "repo_snapshot_load");
    assert_string_equal(snapshot_id(s), id);
    st = snapshot_stream(s, "db");
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "kind")), "file");
    assert_int_equal(json_integer_value(json_object_get(st, "size")), n);
    crypto_sha256_hex(data, n, sha);
    assert_string_equal(json_string_value(json_object_get(st, "sha256")), sha);
    assert_true(json_array_size(json_object_get(st, "content")) > 10);
    snapshot_free(s);
    sm_buf_release(&out);
    free(data);
}

static void stream_of_zero_bytes_reads_back_empty(void **state)
{
    fx *f = *state;
    sm_buf out = SM_BUF_INIT;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    json_t *st;
    char id[65], sha[65];
    uint64_t fresh = 99, stored = 99;

    backup_stream(f->r, "empty", (const unsigned char *)"", 0, NULL, 0, id, &fresh, &stored);
    assert_int_equal(fresh, 0);
    assert_int_equal(stored, 0);
    sm_buf_puts(&out, "not empty");
    read_stream(f->r, "latest", "empty", &out);
    assert_int_equal(out.len, 0);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "repo_snapshot_load");
    st = snapshot_stream(s, "empty");
    assert_int_equal(json_integer_value(json_object_get(st, "size")), 0);
    assert_int_equal(json_array_size(json_object_get(st, "content")), 0);
    crypto_sha256_hex("", 0, sha);
    assert_string_equal(json_string_value(json_object_get(st, "sha256")), sha);
    snapshot_free(s);
    sm_buf_release(&out);
}

static void stream_from_a_file_descriptor_restores_to_a_file(void **state)
{
    fx *f = *state;
    const size_t n = 200 * KIB + 1;
    unsigned char *data = th_random(n, 2);
    char *src = th_path(f->dir, "src.bin"), *dst = th_path(f->dir, "dst.bin");
    repo_writer *w;
    snapshot *s = NULL;
    sm_buf back = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65];
    int fd;

    th_write(src, data, n);
    w = writer_begin(f->r);
    fd = open(src, O_RDONLY);
    assert_true(fd >= 0);
    check(repo_writer_add_fd(w, "dump", fd, &err), &err, "repo_writer_add_fd");
    close(fd);
    writer_commit(f->r, w, id);
    check(repo_snapshot_load(f->r, "latest", &s, &err), &err, "repo_snapshot_load");
    fd = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(repo_restore_stream_fd(f->r, s, "dump", fd, NULL, &err), 0);
    close(fd);
    th_read(dst, &back);
    assert_int_equal(back.len, n);
    assert_memory_equal(back.data, data, n);
    snapshot_free(s);
    sm_buf_release(&back);
    free(src);
    free(dst);
    free(data);
}

static void several_streams_in_one_snapshot_stay_apart(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(70000, 3), *b = th_random(90000, 4);
    repo_writer *w = writer_begin(f->r);
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65];

    check(repo_writer_stream_begin(w, "a", &err), &err, "begin a");
    check(repo_writer_stream_write(w, a, 70000, &err), &err, "write a");
    check(repo_writer_stream_end(w, &err), &err, "end a");
    check(repo_writer_stream_begin(w, "b.sql", &err), &err, "begin b");
    check(repo_writer_stream_write(w, b, 90000, &err), &err, "write b");
    check(repo_writer_stream_end(w, &err), &err, "end b");
    assert_int_equal(json_array_size(repo_writer_streams(w)), 2);
    writer_commit(f->r, w, id);
    read_stream(f->r, id, "a", &out);
    assert_int_equal(out.len, 70000);
    assert_memory_equal(out.data, a, 70000);
    read_stream(f->r, id, "b.sql", &out);
    assert_int_equal(out.len, 90000);
    assert_memory_equal(out.data, b, 90000);
    sm_buf_release(&out);
    free(a);
    free(b);
}

static void stream_names_are_checked(void **state)
{
    fx *f = *state;
    repo_writer *w = writer_begin(f->r);
    sm_err err = SM_ERR_INIT;
    char name[66], want[128];

    assert_int_equal(repo_writer_stream_begin(w, "a b", &err), -1);
    assert_err(&err, SM_E_USAGE,
               "invalid stream name 'a b': use letters, digits, '-', '_' and '.'");
    assert_int_equal(repo_writer_stream_begin(w, "..", &err), -1);
    assert_err(&err, SM_E_USAGE, "invalid stream name '..'");
    assert_int_equal(repo_writer_stream_begin(w, "", &err), -1);
    assert_err(&err, SM_E_USAGE, "invalid stream name ''");
    memset(name, 'n', 65);
    name[65] = '\0';
    assert_int_equal(repo_writer_stream_begin(w, name, &err), -1);
    snprintf(want, sizeof(want), "invalid stream name '%s'", name);
    assert_err(&err, SM_E_USAGE, want);
    name[64] = '\0'; /* 64 characters are fine */
    check(repo_writer_stream_begin(w, name, &err), &err, "begin 64");
    check(repo_writer_stream_end(w, &err), &err, "end 64");
    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    check(repo_writer_stream_end(w, &err), &err, "end");
    assert_int_equal(repo_writer_stream_begin(w, "db", &err), -1);
    assert_err(&err, SM_E_USAGE, "stream 'db' is given twice");
    repo_writer_free(w);
}

static void stream_write_without_begin_fails(void **state)
{
    fx *f = *state;
    repo_writer *w = writer_begin(f->r);
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_writer_stream_write(w, "x", 1, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "no stream is open");
    assert_int_equal(repo_writer_stream_end(w, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "no stream is open");
    repo_writer_free(w);
}

static void committed_writer_accepts_nothing_more(void **state)
{
    fx *f = *state;
    repo_writer *w = writer_begin(f->r);
    sm_err err = SM_ERR_INIT;
    char id[65], id2[65];

    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    check(repo_writer_stream_end(w, &err), &err, "end");
    check(repo_writer_commit(w, NULL, NULL, id, &err), &err, "commit");
    assert_int_equal(repo_writer_commit(w, NULL, NULL, id2, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "writer cannot commit now");
    assert_int_equal(repo_writer_stream_begin(w, "more", &err), -1);
    assert_err(&err, SM_E_INTERNAL, "writer is not accepting streams");
    repo_writer_free(w);
    assert_int_equal(snapshot_count(f->r), 1);
}

static void commit_stores_meta_and_tags_in_the_manifest(void **state)
{
    fx *f = *state;
    repo_writer *w = writer_begin(f->r);
    json_t *meta = json_pack("{s:s,s:i}", "project", "p1", "attempt", 2);
    json_t *tags = json_pack("[s,s]", "daily", "manual");
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    json_t *doc;
    char id[65];

    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    check(repo_writer_stream_end(w, &err), &err, "end");
    check(repo_writer_commit(w, meta, tags, id, &err), &err, "commit");
    repo_writer_free(w);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "load");
    doc = snapshot_json(s);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "meta"), "project")),
                        "p1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "meta"), "attempt")),
                     2);
    assert_int_equal(json_array_size(json_object_get(doc, "tags")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "tags"), 1)),
                        "manual");
    assert_string_equal(json_string_value(json_object_get(doc, "hostname")), sm_hostname());
    snapshot_free(s);
    json_decref(meta);
    json_decref(tags);
}

static void supamanager_now_sets_the_snapshot_time(void **state)
{
    fx *f = *state;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char id[65];

    setenv("SUPAMANAGER_NOW", "1700000000", 1);
    backup_stream(f->r, "db", (const unsigned char *)"x", 1, NULL, 0, id, NULL, NULL);
    unsetenv("SUPAMANAGER_NOW");
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "load");
    assert_true(snapshot_time(s) == (time_t)1700000000);
    assert_string_equal(json_string_value(json_object_get(snapshot_json(s), "time")),
                        "2023-11-14T22:13:20Z");
    snapshot_free(s);
}

static void cancelled_backup_stops_with_interrupted(void **state)
{
    fx *f = *state;
    repo_writer_opts wo;
    repo_writer *w = NULL;
    volatile sig_atomic_t cancel = 1;
    unsigned char *data = th_random(64 * KIB, 5);
    sm_err err = SM_ERR_INIT;

    memset(&wo, 0, sizeof(wo));
    wo.threads = 2;
    wo.cancel = &cancel;
    check(repo_lock(f->r, 1, "backup", &err), &err, "repo_lock");
    check(repo_writer_new(&w, f->r, &wo, &err), &err, "repo_writer_new");
    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    assert_int_equal(repo_writer_stream_write(w, data, 64 * KIB, &err), -1);
    assert_err(&err, SM_E_INTERRUPTED, "backup interrupted");
    repo_writer_free(w);
    assert_int_equal(snapshot_count(f->r), 0);
    free(data);
}

typedef struct progress_log {
    unsigned calls;
    uint64_t last_done;
    int saw_backup;
} progress_log;

static void on_progress(void *ud, const repo_progress *p)
{
    progress_log *l = ud;
    l->calls++;
    l->last_done = p->bytes_done;
    if (p->phase && !strcmp(p->phase, "backup"))
        l->saw_backup = 1;
}

static void backup_reports_progress(void **state)
{
    fx *f = *state;
    repo_writer_opts wo;
    repo_writer *w = NULL;
    progress_log pl = {0, 0, 0};
    unsigned char *data = th_random(100 * KIB, 6);
    sm_err err = SM_ERR_INIT;
    char id[65];

    memset(&wo, 0, sizeof(wo));
    wo.threads = 2;
    wo.progress = on_progress;
    wo.progress_ud = &pl;
    check(repo_lock(f->r, 1, "backup", &err), &err, "repo_lock");
    check(repo_writer_new(&w, f->r, &wo, &err), &err, "repo_writer_new");
    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    check(repo_writer_stream_write(w, data, 100 * KIB, &err), &err, "write");
    check(repo_writer_stream_end(w, &err), &err, "end");
    writer_commit(f->r, w, id);
    assert_true(pl.calls >= 1);
    assert_true(pl.saw_backup);
    assert_int_equal(pl.last_done, 100 * KIB);
    free(data);
}

static void uncommitted_backup_leaves_no_snapshot_and_prune_removes_its_packs(void **state)
{
    fx *f = *state;
    repo_writer *w = writer_begin(f->r);
    unsigned char *data = th_random(300 * KIB, 7);
    repo_prune_opts po;
    repo_prune_result res;
    sm_err err = SM_ERR_INIT;

    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    check(repo_writer_stream_write(w, data, 300 * KIB, &err), &err, "write");
    check(repo_writer_stream_end(w, &err), &err, "end");
    repo_writer_free(w); /* no commit */
    assert_int_equal(snapshot_count(f->r), 0);
    assert_true(objects(f->st, "data/").count > 0); /* full packs were stored */
    memset(&po, 0, sizeof(po));
    assert_int_equal(repo_prune(f->r, &po, &res, &err), 0);
    assert_true(res.orphans_removed > 0);
    assert_int_equal(objects(f->st, "data/").count, 0);
    free(data);
}

static void backup_spreads_data_over_many_packs(void **state)
{
    fx *f = *state;
    unsigned char *data = th_random(600 * KIB, 8);
    char id[65];
    uint64_t fresh = 0, stored = 0;
    objs packs;

    backup_stream(f->r, "db", data, 600 * KIB, NULL, 0, id, &fresh, &stored);
    packs = objects(f->st, "data/");
    assert_int_equal(fresh, 600 * KIB);
    assert_true(packs.count >= 8); /* 64 KiB packs */
    if (stored != packs.bytes)
        fail_msg("the writer reports %llu bytes stored, the packs hold %llu",
                 (unsigned long long)stored, (unsigned long long)packs.bytes);
    assert_int_equal(objects(f->st, "snapshots/").count, 1);
    assert_true(objects(f->st, "index/").count >= 1);
    free(data);
}

static void second_backup_of_the_same_data_stores_nothing_new(void **state)
{
    fx *f = *state;
    const size_t n = 8u << 20;
    unsigned char *data = th_random(n, 9);
    char id1[65], id2[65];
    uint64_t fresh = 0, stored = 0;
    objs before, after;
    json_int_t stored_before;
    sm_buf out = SM_BUF_INIT;

    backup_stream(f->r, "db", data, n, NULL, 0, id1, &fresh, &stored);
    assert_int_equal(fresh, n);
    assert_true(stored > n); /* random data does not compress */
    before = objects(f->st, "data/");
    stored_before = stat_of(f->r, "stored_bytes");
    backup_stream(f->r, "db", data, n, NULL, 0, id2, &fresh, &stored);
    assert_int_equal(fresh, 0);
    assert_int_equal(stored, 0);
    after = objects(f->st, "data/");
    assert_true(after.count == before.count);
    assert_true(after.bytes == before.bytes);
    assert_true(stat_of(f->r, "stored_bytes") == stored_before);
    assert_int_equal(stat_of(f->r, "snapshots"), 2);
    assert_true(stat_of(f->r, "raw_bytes") == (json_int_t)n);
    assert_true(stat_of(f->r, "logical_bytes") == 2 * (json_int_t)n);
    assert_string_not_equal(id1, id2);
    read_stream(f->r, id2, "db", &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, data, n);
    sm_buf_release(&out);
    free(data);
}

static void compressible_data_is_stored_smaller(void **state)
{
    fx *f = *state;
    const size_t n = 512 * KIB;
    unsigned char *data = sm_xmalloc(n);
    char id[65];
    uint64_t stored = 0;
    sm_buf out = SM_BUF_INIT;

    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)("the quick brown fox "[i % 20] + (i / 4096) % 3);
    backup_stream(f->r, "text", data, n, NULL, 0, id, NULL, &stored);
    assert_true(stored < n / 4);
    read_stream(f->r, id, "text", &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, data, n);
    sm_buf_release(&out);
    free(data);
}

/* ---- trees ---- */

static void set_mtime(const char *path, time_t s, long ns)
{
    struct timespec ts[2];
    ts[0].tv_sec = s;
    ts[0].tv_nsec = ns;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void make_file(const char *dir, const char *rel, const void *p, size_t n, mode_t mode)
{
    char *path = th_path(dir, rel);
    th_write(path, p, n);
    assert_int_equal(chmod(path, mode), 0);
    set_mtime(path, 1700000000 + (time_t)n, 123456789);
    free(path);
}

/* files, three hard links (one in another directory), an empty and a
 * read-only directory, a symlink and a dangling one, a zero-filled file, an
 * empty file, a set-uid file, a name that is not UTF-8, and user xattrs on a
 * file, a directory and the root */
static char *make_source_tree(fx *f)
{
    char *src = th_path(f->dir, "src");
    char *p;
    unsigned char *rnd = th_random(100 * KIB, 11);
    unsigned char *zeros = sm_xcalloc(64 * KIB, 1);
    sm_err err = SM_ERR_INIT;

    assert_int_equal(sm_mkdir_p(src, 0755, &err), 0);
    p = th_path(src, "bin");
    assert_int_equal(sm_mkdir_p(p, 0755, &err), 0);
    free(p);
    p = th_path(src, "sub/deeper");
    assert_int_equal(sm_mkdir_p(p, 0700, &err), 0);
    free(p);
    p = th_path(src, "empty");
    assert_int_equal(mkdir(p, 0750), 0);
    free(p);
    make_file(src, "a.txt", "hello\n", 6, 0640);
    make_file(src, "bin/data.bin", rnd, 100 * KIB, 0755);
    make_file(src, "sub/deeper/z.txt", "z", 1, 0600);
    make_file(src, "zeros.bin", zeros, 64 * KIB, 0644);
    make_file(src, "zero-length", "", 0, 0444);
    make_file(src, "bin/suid", "#!/bin/sh\n", 10, 04755);
    make_file(src, "caf\xe9.txt", "latin-1 name", 12, 0644);
    {
        char *a = th_path(src, "a.txt"), *h = th_path(src, "a-hard");
        char *h2 = th_path(src, "sub/hard2"), *e = th_path(src, "empty");
        assert_int_equal(link(a, h), 0);
        assert_int_equal(link(a, h2), 0);
        /* tmpfs before Linux 6.6 has no user xattrs: then the trees go without */
        if (setxattr(a, "user.x", "v1", 2, 0) == 0) {
            assert_int_equal(setxattr(e, "user.x", "dir value", 9, 0), 0);
            assert_int_equal(setxattr(src, "user.x", "root", 4, 0), 0);
        } else if (errno != ENOTSUP && errno != EOPNOTSUPP) {
            fail_msg("cannot set a user xattr: %s", strerror(errno));
        } else if (!xattr_warned++) {
            print_message("note: no user xattrs in '%s': the trees are tested without\n", f->dir);
        }
        free(a);
        free(h);
        free(h2);
        free(e);
    }
    p = th_path(src, "link");
    assert_int_equal(symlink("a.txt", p), 0);
    free(p);
    p = th_path(src, "dangling");
    assert_int_equal(symlink("/nonexistent/target", p), 0);
    free(p);
    p = th_path(src, "ro");
    assert_int_equal(mkdir(p, 0755), 0);
    make_file(p, "inside", "ro", 2, 0644);
    assert_int_equal(chmod(p, 0555), 0);
    free(p);
    free(rnd);
    free(zeros);
    return src;
}

/* Compares two trees: types, permission bits, content, link targets,
 * mtimes and the user.x xattr. */
static void compare_trees(const char *a, const char *b)
{
    struct stat sa, sb;

    assert_int_equal(lstat(a, &sa), 0);
    if (lstat(b, &sb) != 0)
        fail_msg("'%s' is missing", b);
    assert_int_equal(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
    if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777))
        fail_msg("'%s' has mode %o, want %o", b, sb.st_mode & 07777, sa.st_mode & 07777);
    if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
        fail_msg("'%s' has another mtime", b);
    if (!S_ISLNK(sa.st_mode)) {
        char xa[16], xb[16];
        ssize_t la = getxattr(a, "user.x", xa, sizeof(xa));
        ssize_t lb = getxattr(b, "user.x", xb, sizeof(xb));
        if (la != lb || (la > 0 && memcmp(xa, xb, (size_t)la) != 0))
            fail_msg("'%s' has another user.x", b);
    }
    if (S_ISREG(sa.st_mode)) {
        sm_buf da = SM_BUF_INIT, db = SM_BUF_INIT;
        th_read(a, &da);
        th_read(b, &db);
        assert_int_equal(da.len, db.len);
        if (da.len)
            assert_memory_equal(da.data, db.data, da.len);
        assert_int_equal(sa.st_nlink, sb.st_nlink);
        sm_buf_release(&da);
        sm_buf_release(&db);
    } else if (S_ISLNK(sa.st_mode)) {
        char ta[256], tb[256];
        ssize_t la = readlink(a, ta, sizeof(ta)), lb = readlink(b, tb, sizeof(tb));
        assert_true(la > 0);
        assert_int_equal(la, lb);
        assert_memory_equal(ta, tb, (size_t)la);
    } else if (S_ISDIR(sa.st_mode)) {
        DIR *d = opendir(a);
        struct dirent *de;
        assert_non_null(d);
        while ((de = readdir(d)) != NULL) {
            char *ca, *cb;
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            ca = th_path(a, de->d_name);
            cb = th_path(b, de->d_name);
            compare_trees(ca, cb);
            free(ca);
            free(cb);
        }
        closedir(d);
        assert_int_equal(th_count_entries(a), th_count_entries(b));
    }
}

static void backup_tree(repo *r, const char *name, const char *src, const char *parent_ref,
                        char id[65], uint64_t *fresh)
{
    repo_writer *w;
    snapshot *parent = NULL;
    sm_err err = SM_ERR_INIT;

    if (parent_ref)
        check(repo_snapshot_load(r, parent_ref, &parent, &err), &err, "load parent");
    w = writer_begin(r);
    check(repo_writer_add_tree(w, name, src, parent, &err), &err, "repo_writer_add_tree");
    writer_commit_totals(r, w, id, fresh, NULL);
    snapshot_free(parent);
}

static void tree_backup_restores_identically(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f), *out = th_path(f->dir, "not/yet/out"); /* parents too */
    repo_restore_opts ro;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    json_t *st;
    char id[65];
    struct stat h1, h2;
    char *p1, *p2;

    backup_tree(f->r, "files", src, NULL, id, NULL);
    check(repo_snapshot_load(f->r, "latest", &s, &err), &err, "repo_snapshot_load");
    st = snapshot_stream(s, "files");
    assert_string_equal(json_string_value(json_object_get(st, "kind")), "tree");
    assert_int_equal(json_integer_value(json_object_get(st, "files")), 10);
    assert_int_equal(json_integer_value(json_object_get(st, "dirs")), 5);
    assert_int_equal(json_integer_value(json_object_get(st, "symlinks")), 2);
    assert_int_equal(json_integer_value(json_object_get(st, "special")), 0);
    memset(&ro, 0, sizeof(ro));
    ro.threads = 2;
    assert_int_equal(repo_restore_tree(f->r, s, "files", out, &ro, &err), 0);
    compare_trees(src, out);
    /* hard links are restored as hard links, across directories too */
    p1 = th_path(out, "a.txt");
    p2 = th_path(out, "sub/hard2");
    assert_int_equal(stat(p1, &h1), 0);
    assert_int_equal(stat(p2, &h2), 0);
    assert_true(h1.st_ino == h2.st_ino);
    assert_int_equal(h1.st_nlink, 3);
    free(p1);
    free(p2);
    snapshot_free(s);
    free(src);
    free(out);
}

static void tree_restore_into_an_empty_directory_works(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f), *out = th_path(f->dir, "out");
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char id[65];

    backup_tree(f->r, "files", src, NULL, id, NULL);
    assert_int_equal(mkdir(out, 0700), 0);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "repo_snapshot_load");
    assert_int_equal(repo_restore_tree(f->r, s, "files", out, NULL, &err), 0);
    compare_trees(src, out);
    snapshot_free(s);
    free(src);
    free(out);
}

static void tree_restore_into_a_non_empty_directory_fails_with_exists(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f), *out = th_path(f->dir, "out");
    char *mine = th_path(out, "mine.txt");
    char *want = msgf("restore target '%s' is not empty", out);
    snapshot *s = NULL;
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65];

    backup_tree(f->r, "files", src, NULL, id, NULL);
    assert_int_equal(mkdir(out, 0700), 0);
    th_write_str(mine, "my data");
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "repo_snapshot_load");
    assert_int_equal(repo_restore_tree(f->r, s, "files", out, NULL, &err), -1);
    assert_err(&err, SM_E_EXISTS, want);
    assert_int_equal(th_count_entries(out), 1);
    th_read(mine, &b);
    assert_string_equal(sm_buf_str(&b), "my data");
    sm_buf_release(&b);
    snapshot_free(s);
    free(want);
    free(mine);
    free(src);
    free(out);
}

static void tree_restore_onto_a_file_fails_with_exists(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f), *out = th_path(f->dir, "out");
    char *want = msgf("restore target '%s' exists and is not a directory", out);
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char id[65];

    backup_tree(f->r, "files", src, NULL, id, NULL);
    th_write_str(out, "a file");
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "repo_snapshot_load");
    assert_int_equal(repo_restore_tree(f->r, s, "files", out, NULL, &err), -1);
    assert_err(&err, SM_E_EXISTS, want);
    snapshot_free(s);
    free(want);
    free(src);
    free(out);
}

static void tree_backup_with_a_parent_rereads_only_changed_files(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f), *out = th_path(f->dir, "out");
    char *changed = th_path(src, "sub/deeper/z.txt");
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    json_t *st;
    char id1[65], id2[65], id3[65];
    uint64_t fresh = 99;

    backup_tree(f->r, "files", src, NULL, id1, NULL);
    backup_tree(f->r, "files", src, id1, id2, &fresh);
    assert_int_equal(fresh, 0);
    check(repo_snapshot_load(f->r, id2, &s, &err), &err, "load");
    st = snapshot_stream(s, "files");
    assert_int_equal(json_integer_value(json_object_get(st, "files_unchanged")), 10);
    assert_int_equal(json_integer_value(json_object_get(st, "bytes_read")), 0);
    snapshot_free(s);
    th_write_str(changed, "new content of z");
    backup_tree(f->r, "files", src, id2, id3, &fresh);
    assert_int_equal(fresh, 16);
    check(repo_snapshot_load(f->r, id3, &s, &err), &err, "load");
    st = snapshot_stream(s, "files");
    assert_int_equal(json_integer_value(json_object_get(st, "files_unchanged")), 9);
    assert_int_equal(json_integer_value(json_object_get(st, "bytes_read")), 16);
    assert_int_equal(repo_restore_tree(f->r, s, "files", out, NULL, &err), 0);
    compare_trees(src, out);
    snapshot_free(s);
    free(changed);
    free(src);
    free(out);
}

static void special_files_are_restored_only_when_allowed(void **state)
{
    fx *f = *state;
    char *src = th_path(f->dir, "src"), *fifo = th_path(src, "pipe");
    char *out = th_path(f->dir, "out"), *out2 = th_path(f->dir, "out2");
    char *rfifo = th_path(out2, "pipe"), want[256];
    repo_restore_opts ro;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    struct stat sb;
    char id[65];

    assert_int_equal(mkdir(src, 0755), 0);
    assert_int_equal(mkfifo(fifo, 0640), 0);
    make_file(src, "f", "x", 1, 0644);
    backup_tree(f->r, "files", src, NULL, id, NULL);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "load");
    assert_int_equal(json_integer_value(json_object_get(snapshot_stream(s, "files"), "special")),
                     1);
    assert_int_equal(repo_restore_tree(f->r, s, "files", out, NULL, &err), -1);
    snprintf(want, sizeof(want), "stream 'files' of snapshot %.12s holds 1 special files", id);
    assert_err(&err, SM_E_INVALID, want);
    assert_string_equal(err.hint, "Pass --special to restore fifos, sockets and device files.");
    assert_false(sm_exists(out)); /* refused before anything was written */
    memset(&ro, 0, sizeof(ro));
    ro.allow_special = 1;
    assert_int_equal(repo_restore_tree(f->r, s, "files", out2, &ro, &err), 0);
    assert_int_equal(lstat(rfifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0640);
    compare_trees(src, out2);
    snapshot_free(s);
    free(rfifo);
    free(out2);
    free(out);
    free(fifo);
    free(src);
}

typedef struct walk_log {
    repo *r;
    sm_buf paths;
    sm_buf data; /* the content of bin/data.bin, read with repo_read_node */
    const unsigned char *want;
} walk_log;

static int on_node(void *ud, const char *path, const struct tree_node *node, sm_err *err)
{
    walk_log *l = ud;
    sm_buf_putf(&l->paths, "%c:%s\n", node_type_char(node->type), path);
    if (!strcmp(path, "bin/data.bin"))
        return repo_read_node(l->r, node, to_buf, &l->data, err);
    return 0;
}

static void tree_walk_lists_entries_depth_first_in_name_order(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f);
    snapshot *s = NULL;
    walk_log wl = {f->r, SM_BUF_INIT, SM_BUF_INIT, NULL};
    unsigned char *want = th_random(100 * KIB, 11); /* as make_source_tree writes it */
    sm_err err = SM_ERR_INIT;
    char id[65];

    wl.want = want;
    backup_tree(f->r, "files", src, NULL, id, NULL);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "load");
    assert_int_equal(repo_tree_walk(f->r, s, "files", on_node, &wl, &err), 0);
    assert_string_equal(sm_buf_str(&wl.paths), "f:a-hard\n"
                                               "f:a.txt\n"
                                               "d:bin\n"
                                               "f:bin/data.bin\n"
                                               "f:bin/suid\n"
                                               "f:caf\xe9.txt\n"
                                               "l:dangling\n"
                                               "d:empty\n"
                                               "l:link\n"
                                               "d:ro\n"
                                               "f:ro/inside\n"
                                               "d:sub\n"
                                               "d:sub/deeper\n"
                                               "f:sub/deeper/z.txt\n"
                                               "f:sub/hard2\n"
                                               "f:zero-length\n"
                                               "f:zeros.bin\n");
    assert_int_equal(wl.data.len, 100 * KIB);
    assert_memory_equal(wl.data.data, wl.want, 100 * KIB);
    sm_buf_release(&wl.data);
    sm_buf_release(&wl.paths);
    snapshot_free(s);
    free(want);
    free(src);
}

static void read_stream_of_a_tree_or_missing_stream_fails(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f);
    snapshot *s = NULL;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65], want[256];

    backup_tree(f->r, "files", src, NULL, id, NULL);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "load");
    assert_int_equal(repo_read_stream(f->r, s, "files", to_buf, &out, &err), -1);
    snprintf(want, sizeof(want), "stream 'files' of snapshot %.12s is a tree, not a file", id);
    assert_err(&err, SM_E_INVALID, want);
    assert_int_equal(repo_read_stream(f->r, s, "nope", to_buf, &out, &err), -1);
    snprintf(want, sizeof(want), "snapshot %.12s has no stream 'nope'", id);
    assert_err(&err, SM_E_NOTFOUND, want);
    sm_buf_release(&out);
    snapshot_free(s);
    free(src);
}

static void restore_all_writes_every_stream(void **state)
{
    fx *f = *state;
    char *src = make_source_tree(f), *out = th_path(f->dir, "out");
    char *tree_out = th_path(out, "files"), *db_out = th_path(out, "db");
    unsigned char *data = th_random(40000, 12);
    repo_writer *w = writer_begin(f->r);
    snapshot *s = NULL;
    sm_buf back = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65];

    check(repo_writer_add_tree(w, "files", src, NULL, &err), &err, "add_tree");
    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    check(repo_writer_stream_write(w, data, 40000, &err), &err, "write");
    check(repo_writer_stream_end(w, &err), &err, "end");
    writer_commit(f->r, w, id);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "load");
    assert_int_equal(repo_restore_all(f->r, s, out, NULL, &err), 0);
    compare_trees(src, tree_out);
    th_read(db_out, &back);
    assert_int_equal(back.len, 40000);
    assert_memory_equal(back.data, data, 40000);
    sm_buf_release(&back);
    snapshot_free(s);
    free(data);
    free(tree_out);
    free(db_out);
    free(src);
    free(out);
}

/* ---- snapshot references ---- */

static void two_snapshots(fx *f, char id1[65], char id2[65])
{
    backup_stream(f->r, "db", (const unsigned char *)"first", 5, NULL, 0, id1, NULL, NULL);
    backup_stream(f->r, "db", (const unsigned char *)"second", 6, NULL, 0, id2, NULL, NULL);
}

static void snapshots_are_listed_oldest_first(void **state)
{
    fx *f = *state;
    snapshot **v = NULL;
    size_t n = 0;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];

    two_snapshots(f, id1, id2);
    assert_int_equal(repo_snapshots(f->r, &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(snapshot_id(v[0]), id1);
    assert_string_equal(snapshot_id(v[1]), id2);
    assert_true(snapshot_time(v[0]) <= snapshot_time(v[1]));
    assert_true(snapshot_time(v[1]) >= time(NULL) - 60);
    repo_snapshots_free(v, n);
}

static void latest_refers_to_the_newest_snapshot(void **state)
{
    fx *f = *state;
    snapshot *s = NULL;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];

    two_snapshots(f, id1, id2);
    assert_int_equal(repo_snapshot_load(f->r, "latest", &s, &err), 0);
    assert_string_equal(snapshot_id(s), id2);
    read_stream(f->r, "latest", "db", &out);
    assert_string_equal(sm_buf_str(&out), "second");
    snapshot_free(s);
    sm_buf_release(&out);
}

static void a_unique_prefix_refers_to_its_snapshot(void **state)
{
    fx *f = *state;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65], prefix[65];

    two_snapshots(f, id1, id2);
    /* the shortest prefix of id1 (at least 6) that id2 does not share */
    size_t n = 6;
    while (!strncmp(id1, id2, n))
        n++;
    snprintf(prefix, sizeof(prefix), "%.*s", (int)n, id1);
    assert_int_equal(repo_snapshot_load(f->r, prefix, &s, &err), 0);
    assert_string_equal(snapshot_id(s), id1);
    snapshot_free(s);
    s = NULL;
    assert_int_equal(repo_snapshot_load(f->r, id2, &s, &err), 0);
    assert_string_equal(snapshot_id(s), id2);
    snapshot_free(s);
}

static void a_too_short_prefix_is_refused(void **state)
{
    fx *f = *state;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65], prefix[8], want[128];

    two_snapshots(f, id1, id2);
    snprintf(prefix, sizeof(prefix), "%.5s", id1);
    assert_int_equal(repo_snapshot_load(f->r, prefix, &s, &err), -1);
    snprintf(want, sizeof(want), "snapshot id '%s' is too short", prefix);
    assert_err(&err, SM_E_INVALID, want);
    assert_string_equal(err.hint, "Give at least 6 hex digits, or 'latest'.");
    assert_null(s);
}

static void a_ref_that_is_not_hex_is_refused(void **state)
{
    fx *f = *state;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(repo_snapshot_load(f->r, "xyz123", &s, &err), -1);
    assert_err(&err, SM_E_INVALID, "'xyz123' is not a snapshot id");
    assert_int_equal(repo_snapshot_load(f->r, "", &s, &err), -1);
    assert_err(&err, SM_E_USAGE, "no snapshot given");
}

static void an_unknown_id_fails_with_not_found(void **state)
{
    fx *f = *state;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65], ref[8] = "000000", want[4200];
    static const char *const tries[] = {"000000", "111111", "222222"};

    two_snapshots(f, id1, id2);
    for (size_t i = 0; i < 3; i++) {
        if (strncmp(id1, tries[i], 6) && strncmp(id2, tries[i], 6)) {
            snprintf(ref, sizeof(ref), "%s", tries[i]);
            break;
        }
    }
    assert_int_equal(repo_snapshot_load(f->r, ref, &s, &err), -1);
    snprintf(want, sizeof(want), "no snapshot '%s' in repository '%s'", ref, f->path);
    assert_err(&err, SM_E_NOTFOUND, want);
}

static void latest_of_an_empty_repository_fails_with_not_found(void **state)
{
    fx *f = *state;
    snapshot *s = NULL;
    sm_err err = SM_ERR_INIT;
    char *want = msgf("repository '%s' has no snapshots", f->path);

    assert_int_equal(repo_snapshot_load(f->r, "latest", &s, &err), -1);
    assert_err(&err, SM_E_NOTFOUND, want);
    free(want);
}

/* ---- prune ---- */

static void prune_keep_last_removes_older_snapshots_and_frees_packs(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(256 * KIB, 13), *b = th_random(256 * KIB, 14);
    repo_prune_opts po;
    repo_prune_result res;
    snapshot *s = NULL;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];
    json_int_t packs_before, stored_before;

    backup_stream(f->r, "db", a, 256 * KIB, NULL, 0, id1, NULL, NULL);
    backup_stream(f->r, "db", b, 256 * KIB, NULL, 0, id2, NULL, NULL);
    packs_before = stat_of(f->r, "packs");
    stored_before = stat_of(f->r, "stored_bytes");
    memset(&po, 0, sizeof(po));
    po.keep_last = 1;
    check(repo_lock(f->r, 1, "prune", &err), &err, "lock");
    assert_int_equal(repo_prune(f->r, &po, &res, &err), 0);
    check(repo_unlock(f->r, &err), &err, "unlock");
    assert_int_equal(res.snapshots_removed, 1);
    assert_true(res.packs_deleted >= 1);
    assert_true(res.bytes_freed > 0);
    assert_int_equal(stat_of(f->r, "snapshots"), 1);
    assert_int_equal(stat_of(f->r, "packs"), packs_before - (json_int_t)res.packs_deleted);
    assert_true(stat_of(f->r, "stored_bytes") < stored_before);
    assert_true(stat_of(f->r, "stored_bytes") == (json_int_t)res.bytes_after);
    assert_int_equal(repo_snapshot_load(f->r, id1, &s, &err), -1);
    assert_int_equal(err.code, SM_E_NOTFOUND);
    read_stream(f->r, "latest", "db", &out);
    assert_int_equal(out.len, 256 * KIB);
    assert_memory_equal(out.data, b, 256 * KIB);
    sm_buf_release(&out);
    free(a);
    free(b);
}

static void prune_dry_run_changes_nothing(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(100 * KIB, 15), *b = th_random(100 * KIB, 16);
    repo_prune_opts po;
    repo_prune_result res;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];
    objs before;

    backup_stream(f->r, "db", a, 100 * KIB, NULL, 0, id1, NULL, NULL);
    backup_stream(f->r, "db", b, 100 * KIB, NULL, 0, id2, NULL, NULL);
    before = objects(f->st, "");
    memset(&po, 0, sizeof(po));
    po.keep_last = 1;
    po.dry_run = 1;
    check(repo_lock(f->r, 1, "prune", &err), &err, "lock");
    assert_int_equal(repo_prune(f->r, &po, &res, &err), 0);
    check(repo_unlock(f->r, &err), &err, "unlock");
    assert_int_equal(res.snapshots_removed, 1);
    assert_true(res.packs_deleted >= 1);
    assert_int_equal(snapshot_count(f->r), 2);
    assert_true(objects(f->st, "").count == before.count);
    assert_true(objects(f->st, "").bytes == before.bytes);
    free(a);
    free(b);
}

static void prune_forgets_a_named_snapshot_and_keeps_shared_data(void **state)
{
    fx *f = *state;
    const size_t n = 200 * KIB;
    unsigned char *a = th_random(n, 17);
    repo_prune_opts po;
    repo_prune_result res;
    repo_verify_opts vo;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];
    const char *forget[1];

    backup_stream(f->r, "db", a, n, NULL, 0, id1, NULL, NULL);
    a[n / 2] ^= 0xff; /* the second backup shares all but a chunk or two */
    backup_stream(f->r, "db", a, n, NULL, 0, id2, NULL, NULL);
    forget[0] = id1;
    memset(&po, 0, sizeof(po));
    po.forget = forget;
    po.nforget = 1;
    check(repo_lock(f->r, 1, "prune", &err), &err, "lock");
    assert_int_equal(repo_prune(f->r, &po, &res, &err), 0);
    check(repo_unlock(f->r, &err), &err, "unlock");
    assert_int_equal(res.snapshots_removed, 1);
    assert_int_equal(snapshot_count(f->r), 1);
    read_stream(f->r, id2, "db", &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, a, n);
    memset(&vo, 0, sizeof(vo));
    vo.read_all = 1;
    vo.threads = 2;
    assert_int_equal(repo_verify(f->r, &vo, NULL, &err), 0);
    sm_buf_release(&out);
    free(a);
}

static void backup_after_prune_stores_again_what_prune_deleted(void **state)
{
    fx *f = *state;
    const size_t n = 200 * KIB;
    unsigned char *a = th_random(n, 25), *b = th_random(n, 26);
    repo_prune_opts po;
    repo_verify_opts vo;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65], id3[65];
    uint64_t fresh = 0;

    backup_stream(f->r, "db", a, n, NULL, 0, id1, NULL, NULL);
    backup_stream(f->r, "db", b, n, NULL, 0, id2, NULL, NULL);
    memset(&po, 0, sizeof(po));
    po.keep_last = 1;
    check(repo_lock(f->r, 1, "prune", &err), &err, "lock");
    assert_int_equal(repo_prune(f->r, &po, NULL, &err), 0);
    check(repo_unlock(f->r, &err), &err, "unlock");
    /* a's chunks are gone: backing a up again must store them, not reuse */
    backup_stream(f->r, "db", a, n, NULL, 0, id3, &fresh, NULL);
    assert_int_equal(fresh, n);
    read_stream(f->r, id3, "db", &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, a, n);
    memset(&vo, 0, sizeof(vo));
    vo.read_all = 1;
    vo.threads = 2;
    assert_int_equal(repo_verify(f->r, &vo, NULL, &err), 0);
    sm_buf_release(&out);
    free(a);
    free(b);
}

static void prune_repacks_partly_used_packs_and_keeps_data_readable(void **state)
{
    fx *f = *state;
    const size_t n = 300 * KIB;
    unsigned char *a = th_random(n, 27);
    repo_prune_opts po;
    repo_prune_result res;
    repo_verify_opts vo;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];

    backup_stream(f->r, "db", a, n, NULL, 0, id1, NULL, NULL);
    for (size_t i = 0; i < n; i += 50 * KIB)
        a[i] ^=
            0xff; /* a few chunks change; the packs holding the old ones become partly garbage */
    backup_stream(f->r, "db", a, n, NULL, 0, id2, NULL, NULL);
    memset(&po, 0, sizeof(po));
    po.keep_last = 1;
    po.repack_percent = 1;
    check(repo_lock(f->r, 1, "prune", &err), &err, "lock");
    assert_int_equal(repo_prune(f->r, &po, &res, &err), 0);
    check(repo_unlock(f->r, &err), &err, "unlock");
    assert_int_equal(res.snapshots_removed, 1);
    assert_true(res.packs_repacked >= 1);
    assert_true(res.packs_written >= 1);
    read_stream(f->r, "latest", "db", &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, a, n);
    memset(&vo, 0, sizeof(vo));
    vo.read_all = 1;
    vo.threads = 2;
    assert_int_equal(repo_verify(f->r, &vo, NULL, &err), 0);
    sm_buf_release(&out);
    free(a);
}

static void committed_backup_after_an_abandoned_one_reads_back(void **state)
{
    fx *f = *state;
    const size_t n = 300 * KIB;
    unsigned char *a = th_random(n, 28);
    repo_writer *w = writer_begin(f->r);
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65];

    check(repo_writer_stream_begin(w, "db", &err), &err, "begin");
    check(repo_writer_stream_write(w, a, n, &err), &err, "write");
    repo_writer_free(w); /* abandoned mid-stream: claimed chunks never reached an index */
    check(repo_unlock(f->r, &err), &err, "unlock");
    backup_stream(f->r, "db", a, n, NULL, 0, id, NULL, NULL);
    read_stream(f->r, id, "db", &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, a, n);
    sm_buf_release(&out);
    free(a);
}

static void prune_with_an_unknown_snapshot_deletes_nothing(void **state)
{
    fx *f = *state;
    repo_prune_opts po;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65], want[4200];
    const char *forget[2];
    objs before;

    two_snapshots(f, id1, id2);
    before = objects(f->st, "");
    forget[0] = id1;
    forget[1] = strncmp(id1, "000000", 6) && strncmp(id2, "000000", 6) ? "000000" : "ffffff";
    memset(&po, 0, sizeof(po));
    po.forget = forget;
    po.nforget = 2;
    check(repo_lock(f->r, 1, "prune", &err), &err, "lock");
    assert_int_equal(repo_prune(f->r, &po, NULL, &err), -1);
    snprintf(want, sizeof(want), "no snapshot '%s' in repository '%s'", forget[1], f->path);
    assert_err(&err, SM_E_NOTFOUND, want);
    assert_int_equal(snapshot_count(f->r), 2);
    assert_true(objects(f->st, "").count == before.count + 1); /* + our lock */
}

/* ---- verify ---- */

static void verify_passes_on_an_intact_repository(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(300 * KIB, 18);
    char *src = make_source_tree(f);
    repo_verify_opts vo;
    repo_verify_result res;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];

    backup_stream(f->r, "db", a, 300 * KIB, NULL, 0, id1, NULL, NULL);
    backup_tree(f->r, "files", src, NULL, id2, NULL);
    memset(&vo, 0, sizeof(vo));
    vo.threads = 2;
    assert_int_equal(repo_verify(f->r, &vo, &res, &err), 0);
    assert_int_equal(res.snapshots, 2);
    assert_int_equal(res.snapshots_damaged, 0);
    assert_int_equal(res.problems, 0);
    assert_true(res.blobs_checked > 10);
    assert_true(res.bytes_checked >= 300 * KIB);
    vo.read_all = 1;
    assert_int_equal(repo_verify(f->r, &vo, &res, &err), 0);
    assert_int_equal(res.problems, 0);
    free(src);
    free(a);
}

static void verify_checks_only_the_snapshots_named(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(100 * KIB, 29);
    repo_verify_opts vo;
    repo_verify_result res;
    sm_err err = SM_ERR_INIT;
    char id1[65], id2[65];
    const char *refs[1];

    backup_stream(f->r, "db", a, 100 * KIB, NULL, 0, id1, NULL, NULL);
    a[0] ^= 1;
    backup_stream(f->r, "other", (const unsigned char *)"x", 1, NULL, 0, id2, NULL, NULL);
    refs[0] = id2;
    memset(&vo, 0, sizeof(vo));
    vo.refs = refs;
    vo.nrefs = 1;
    vo.threads = 2;
    assert_int_equal(repo_verify(f->r, &vo, &res, &err), 0);
    assert_int_equal(res.snapshots, 1);
    assert_int_equal(res.blobs_checked, 1);
    assert_int_equal(res.bytes_checked, 1);
    free(a);
}

typedef struct report_lines {
    sm_buf text;
    unsigned n;
} report_lines;

static void on_report(void *ud, const char *line)
{
    report_lines *l = ud;
    sm_buf_putf(&l->text, "%s\n", line);
    l->n++;
}

/* Flips one byte at off of the first pack (by key order). */
static char *flip_pack_byte(fx *f, size_t off)
{
    keylist k = keys_of(f->st, "data/");
    char *path, *name;
    int fd;
    unsigned char c;

    assert_true(k.n > 0);
    path = th_path(f->path, k.v[0]);
    name = sm_xstrdup(strrchr(k.v[0], '/') + 1);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x01;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
    free(path);
    keys_free(&k);
    return name;
}

static void verify_fails_after_a_flipped_byte_in_a_pack(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(300 * KIB, 19);
    repo_verify_opts vo;
    repo_verify_result res;
    report_lines lines = {SM_BUF_INIT, 0};
    sm_err err = SM_ERR_INIT;
    char id[65], want[128], *pack;

    backup_stream(f->r, "db", a, 300 * KIB, NULL, 0, id, NULL, NULL);
    pack = flip_pack_byte(f, 20); /* inside the first blob's ciphertext */
    memset(&vo, 0, sizeof(vo));
    vo.threads = 2;
    vo.report = on_report;
    vo.report_ud = &lines;
    assert_int_equal(repo_verify(f->r, &vo, &res, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_non_null(strstr(err.msg, "failed its MAC check"));
    /* "snapshot <id> stream 'db': 'db': chunk <id> in pack <id> failed its MAC check" */
    snprintf(want, sizeof(want), "snapshot %.12s stream 'db': 'db': chunk ", id);
    assert_memory_equal(err.msg, want, strlen(want));
    snprintf(want, sizeof(want), " in pack %.12s failed its MAC check", pack);
    assert_true(strlen(err.msg) > strlen(want));
    assert_string_equal(err.msg + strlen(err.msg) - strlen(want), want);
    assert_int_equal(res.snapshots, 1);
    assert_int_equal(res.snapshots_damaged, 1);
    assert_int_equal(res.problems, 1);
    assert_int_equal(lines.n, 1);
    assert_memory_equal(sm_buf_str(&lines.text), err.msg, strlen(err.msg));
    sm_buf_release(&lines.text);
    free(pack);
    free(a);
}

static void verify_read_all_names_a_damaged_pack(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(300 * KIB, 20);
    repo_verify_opts vo;
    repo_verify_result res;
    report_lines lines = {SM_BUF_INIT, 0};
    sm_err err = SM_ERR_INIT;
    char id[65], want[128], *pack;

    backup_stream(f->r, "db", a, 300 * KIB, NULL, 0, id, NULL, NULL);
    pack = flip_pack_byte(f, 20);
    memset(&vo, 0, sizeof(vo));
    vo.threads = 2;
    vo.read_all = 1;
    vo.report = on_report;
    vo.report_ud = &lines;
    assert_int_equal(repo_verify(f->r, &vo, &res, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    /* the snapshot check reports first; read_all adds the pack's own problems */
    assert_true(res.problems >= 3);
    assert_non_null(strstr(err.msg, "failed its MAC check"));
    assert_non_null(strstr(err.msg, "more problems)"));
    assert_int_equal(lines.n, res.problems);
    snprintf(want, sizeof(want), "pack %.12s: content does not match its name\n", pack);
    assert_non_null(strstr(sm_buf_str(&lines.text), want));
    sm_buf_release(&lines.text);
    free(pack);
    free(a);
}

static void verify_reports_a_missing_pack(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(300 * KIB, 30);
    keylist k;
    repo_verify_opts vo;
    repo_verify_result res;
    report_lines lines = {SM_BUF_INIT, 0};
    sm_err err = SM_ERR_INIT;
    char id[65], want[256];

    backup_stream(f->r, "db", a, 300 * KIB, NULL, 0, id, NULL, NULL);
    k = keys_of(f->st, "data/");
    check(store_delete(f->st, k.v[0], &err), &err, "store_delete");
    memset(&vo, 0, sizeof(vo));
    vo.threads = 2;
    vo.report = on_report;
    vo.report_ud = &lines;
    assert_int_equal(repo_verify(f->r, &vo, &res, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    snprintf(want, sizeof(want), ": pack %.12s is missing", strrchr(k.v[0], '/') + 1);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(res.snapshots_damaged, 1);
    sm_buf_release(&lines.text);
    keys_free(&k);
    free(a);
}

static void verify_reports_a_truncated_pack(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(300 * KIB, 31);
    keylist k;
    repo_verify_opts vo;
    repo_verify_result res;
    report_lines lines = {SM_BUF_INIT, 0};
    sm_err err = SM_ERR_INIT;
    char id[65], want[256], *path;

    backup_stream(f->r, "db", a, 300 * KIB, NULL, 0, id, NULL, NULL);
    k = keys_of(f->st, "data/");
    path = th_path(f->path, k.v[0]);
    assert_int_equal(truncate(path, 1000), 0);
    memset(&vo, 0, sizeof(vo));
    vo.threads = 2;
    vo.report = on_report;
    vo.report_ud = &lines;
    assert_int_equal(repo_verify(f->r, &vo, &res, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    snprintf(want, sizeof(want), ": pack %.12s is truncated", strrchr(k.v[0], '/') + 1);
    assert_non_null(strstr(err.msg, want));
    sm_buf_release(&lines.text);
    keys_free(&k);
    free(path);
    free(a);
}

static void restore_of_a_damaged_stream_fails(void **state)
{
    fx *f = *state;
    unsigned char *a = th_random(300 * KIB, 22);
    snapshot *s = NULL;
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char id[65], *pack;

    backup_stream(f->r, "db", a, 300 * KIB, NULL, 0, id, NULL, NULL);
    pack = flip_pack_byte(f, 20);
    check(repo_snapshot_load(f->r, id, &s, &err), &err, "load");
    assert_int_equal(repo_read_stream(f->r, s, "db", to_buf, &out, &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_non_null(strstr(err.msg, "failed its MAC check"));
    snapshot_free(s);
    sm_buf_release(&out);
    free(pack);
    free(a);
}

#define EMPTY(f) cmocka_unit_test_setup_teardown(f, setup_empty, teardown)
#define COPY(f) cmocka_unit_test_setup_teardown(f, setup_copy, teardown)
#define OPEN(f) cmocka_unit_test_setup_teardown(f, setup_open, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        EMPTY(init_then_open_succeeds),
        COPY(init_twice_fails_with_exists),
        EMPTY(init_without_a_secret_fails_with_badkey),
        EMPTY(init_rejects_bad_chunk_sizes),
        EMPTY(init_rejects_bad_pack_size_and_level),
        COPY(open_with_the_wrong_secret_fails_with_badkey),
        COPY(open_without_a_secret_fails_with_badkey),
        EMPTY(open_of_an_empty_location_fails_with_not_found),
        COPY(open_of_a_newer_format_fails_with_version),
        COPY(open_with_a_damaged_key_file_fails_as_corrupt),
        COPY(open_without_key_files_fails_as_corrupt),
        COPY(open_with_a_damaged_config_fails_as_corrupt),
        OPEN(key_add_lets_the_new_secret_open_and_keeps_the_old),
        OPEN(key_change_makes_the_old_secret_fail),
        OPEN(key_change_keeps_the_data_readable),
        OPEN(key_add_refuses_an_empty_secret),
        OPEN(key_remove_of_an_unknown_id_fails_with_not_found),
        OPEN(key_remove_refuses_the_key_in_use),
        OPEN(key_remove_deletes_another_key_by_prefix),
        OPEN(second_exclusive_lock_fails_naming_the_holder),
        OPEN(shared_lock_is_granted_while_a_writer_holds_the_lock),
        OPEN(exclusive_lock_is_granted_while_readers_hold_locks),
        OPEN(prune_keeps_unused_packs_while_a_reader_holds_a_lock),
        OPEN(lock_is_free_again_after_unlock),
        OPEN(locking_twice_in_one_repo_object_fails),
        OPEN(lock_of_a_dead_process_on_this_host_is_removed),
        OPEN(lock_of_another_host_blocks_until_broken),
        OPEN(break_locks_removes_a_stale_foreign_lock),
        OPEN(writer_without_a_lock_fails),
        OPEN(writer_with_a_shared_lock_fails),
        OPEN(prune_without_a_lock_fails),
        OPEN(pushed_stream_in_odd_pieces_reads_back_identical),
        OPEN(stream_of_zero_bytes_reads_back_empty),
        OPEN(stream_from_a_file_descriptor_restores_to_a_file),
        OPEN(several_streams_in_one_snapshot_stay_apart),
        OPEN(stream_names_are_checked),
        OPEN(stream_write_without_begin_fails),
        OPEN(committed_writer_accepts_nothing_more),
        OPEN(commit_stores_meta_and_tags_in_the_manifest),
        OPEN(supamanager_now_sets_the_snapshot_time),
        OPEN(cancelled_backup_stops_with_interrupted),
        OPEN(backup_reports_progress),
        OPEN(uncommitted_backup_leaves_no_snapshot_and_prune_removes_its_packs),
        OPEN(backup_spreads_data_over_many_packs),
        OPEN(second_backup_of_the_same_data_stores_nothing_new),
        OPEN(compressible_data_is_stored_smaller),
        OPEN(tree_backup_restores_identically),
        OPEN(tree_restore_into_an_empty_directory_works),
        OPEN(tree_restore_into_a_non_empty_directory_fails_with_exists),
        OPEN(tree_restore_onto_a_file_fails_with_exists),
        OPEN(tree_backup_with_a_parent_rereads_only_changed_files),
        OPEN(special_files_are_restored_only_when_allowed),
        OPEN(tree_walk_lists_entries_depth_first_in_name_order),
        OPEN(read_stream_of_a_tree_or_missing_stream_fails),
        OPEN(restore_all_writes_every_stream),
        OPEN(snapshots_are_listed_oldest_first),
        OPEN(latest_refers_to_the_newest_snapshot),
        OPEN(a_unique_prefix_refers_to_its_snapshot),
        OPEN(a_too_short_prefix_is_refused),
        OPEN(a_ref_that_is_not_hex_is_refused),
        OPEN(an_unknown_id_fails_with_not_found),
        OPEN(latest_of_an_empty_repository_fails_with_not_found),
        OPEN(prune_keep_last_removes_older_snapshots_and_frees_packs),
        OPEN(prune_dry_run_changes_nothing),
        OPEN(prune_forgets_a_named_snapshot_and_keeps_shared_data),
        OPEN(prune_with_an_unknown_snapshot_deletes_nothing),
        OPEN(backup_after_prune_stores_again_what_prune_deleted),
        OPEN(prune_repacks_partly_used_packs_and_keeps_data_readable),
        OPEN(committed_backup_after_an_abandoned_one_reads_back),
        OPEN(verify_passes_on_an_intact_repository),
        OPEN(verify_checks_only_the_snapshots_named),
        OPEN(verify_fails_after_a_flipped_byte_in_a_pack),
        OPEN(verify_read_all_names_a_damaged_pack),
        OPEN(verify_reports_a_missing_pack),
        OPEN(verify_reports_a_truncated_pack),
        OPEN(restore_of_a_damaged_stream_fails),
    };
    return cmocka_run_group_tests_name("repo_engine", tests, group_setup, group_teardown);
}
