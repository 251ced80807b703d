/* `supamanager demo`: the main job on embedded defaults. Creates a
 * repository, generates a sample tree (text, JSON, incompressible data,
 * symlinks, hard links, an empty directory, extended attributes), backs it up
 * twice (the second after a small change, to show deduplication), verifies,
 * restores into a fresh directory and checks the result, then prints a
 * summary. */
#include "cli/commands.h"
#include "cli/output.h"

#include "core/fsutil.h"
#include "core/mem.h"
#include "core/util.h"
#include "repo/crypto.h"
#include "repo/repo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Deterministic bytes: SHA-256 in counter mode over a seed. */
static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    unsigned char in[16], out[32];
    for (size_t off = 0; off < n; off += 32) {
        memcpy(in, &seed, 8);
        uint64_t ctr = off / 32;
        memcpy(in + 8, &ctr, 8);
        crypto_sha256(in, sizeof(in), out);
        memcpy(p + off, out, n - off < 32 ? n - off : 32);
    }
}

static int write_file(const char *path, const void *p, size_t n, sm_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc;
    if (fd < 0)
        return sm_err_sys(err, SM_E_IO, "cannot create '%s'", path);
    rc = sm_write_all(fd, p, n, path, err);
    close(fd);
    return rc;
}

static int make_sample(const char *root, unsigned round, uint64_t *bytes, sm_err *err)
{
    unsigned char *buf = sm_xmalloc(4u << 20);
    char *p = NULL;
    int rc = -1;

    *bytes = 0;
    for (int d = 0; d < 8; d++) {
        char *dir = sm_xasprintf("%s/bucket-%d/folder %d", root, d, d);
        if (sm_mkdir_p(dir, 0755, err) < 0) {
            free(dir);
            goto out;
        }
        for (int f = 0; f < 16; f++) {
            size_t n = (size_t)(1000 + (d * 16 + f) * 9973) % (900 * 1024) + 1;
            uint64_t seed = (uint64_t)(d * 100 + f) + (f == 3 ? round : 0);
            free(p);
            if (f % 3 == 0) {
                p = sm_xasprintf("%s/photo-%02d.bin", dir, f);
                fill(buf, n, seed); /* incompressible, like images */
            } else {
                p = sm_xasprintf("%s/notes-%02d.json", dir, f);
                for (size_t i = 0; i < n; i++)
                    buf[i] = (unsigned char)("{\"id\": 12, \"title\": \"hello world\"}\n"[(i + seed) % 37]);
            }
            if (write_file(p, buf, n, err) < 0) {
                free(dir);
                goto out;
            }
            *bytes += n;
            if (f == 0)
                setxattr(p, "user.supabase.content-type", "image/png", 9, 0);
        }
        free(dir);
    }
    free(p);
    p = sm_xasprintf("%s/empty dir", root);
    if (mkdir(p, 0750) != 0 && errno != EEXIST) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", p);
        goto out;
    }
    free(p);
    p = sm_xasprintf("%s/latest-photo", root);
    unlink(p);
    if (symlink("bucket-0/folder 0/photo-00.bin", p) != 0) {
        sm_err_sys(err, SM_E_IO, "cannot create '%s'", p);
        goto out;
    }
    free(p);
    p = sm_xasprintf("%s/héllo wörld.txt", root);
    if (write_file(p, "unicode names survive\n", 22, err) < 0)
        goto out;
    rc = 0;
out:
    free(p);
    free(buf);
    return rc;
}

static int run(const char *cmdline)
{
    int rc = system(cmdline);
    return rc == 0 ? 0 : -1;
}

int cmd_demo(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : NULL;
    char *dir = NULL, *repo_dir = NULL, *data = NULL, *restored = NULL, *secret = NULL;
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    repo_writer *w = NULL;
    snapshot *s1 = NULL, *s2 = NULL;
    json_t *stats = NULL;
    char id1[65], id2[65];
    uint64_t bytes, fresh1 = 0, fresh2 = 0, stored1 = 0, stored2 = 0;
    double t0, t_b1, t_b2, t_v, t_r;
    repo_verify_opts vo;
    repo_verify_result vr;
    int rc = 1;

    if (argc > 2 || (base && base[0] == '-'))
        return cli_usage("usage: supamanager demo [DIR]");
    dir = base ? sm_xstrdup(base) : sm_mkdtemp(NULL, "supamanager-demo", &err);
    if (!dir || sm_mkdir_p(dir, 0700, &err) < 0)
        goto fail;
    repo_dir = sm_path_join(dir, "repository");
    data = sm_path_join(dir, "sample");
    restored = sm_path_join(dir, "restored");
    if (sm_rm_rf(repo_dir, &err) < 0 || sm_rm_rf(data, &err) < 0 || sm_rm_rf(restored, &err) < 0)
        goto fail;
    secret = cli_secret(NULL, "ENCRYPTION_SECRET", &err);
    if (!secret)
        secret = sm_xstrdup("demo-secret-change-me");
    printf("SupaManager Backup demo in %s\n", dir);
    if (make_sample(data, 0, &bytes, &err) < 0)
        goto fail;
    printf("  sample tree:      %s (%.1f MB, 131 files, symlink, empty dir, xattrs)\n", data,
           (double)bytes / 1e6);
    if (store_open(&st, repo_dir, &err) < 0 || repo_init(st, secret, NULL, &err) < 0 ||
        repo_open(&r, st, secret, &err) < 0 || repo_lock(r, 1, "demo", &err) < 0)
        goto fail;
    printf("  repository:       %s (AES-256-GCM, zstd, content-defined chunks)\n", repo_dir);

    t0 = sm_mono();
    if (repo_writer_new(&w, r, NULL, &err) < 0 || repo_writer_add_tree(w, "storage", data, NULL, &err) < 0 ||
        repo_writer_commit(w, NULL, NULL, id1, &err) < 0)
        goto fail;
    repo_writer_totals(w, NULL, &fresh1, &stored1);
    repo_writer_free(w);
    w = NULL;
    t_b1 = sm_mono() - t0;
    printf("  backup 1:         %.12s  %.2f s, %.1f MB new, %.1f MB stored\n", id1, t_b1,
           (double)fresh1 / 1e6, (double)stored1 / 1e6);

    if (make_sample(data, 1, &bytes, &err) < 0 || repo_snapshot_load(r, id1, &s1, &err) < 0)
        goto fail;
    t0 = sm_mono();
    if (repo_writer_new(&w, r, NULL, &err) < 0 ||
        repo_writer_add_tree(w, "storage", data, s1, &err) < 0 ||
        repo_writer_commit(w, NULL, NULL, id2, &err) < 0)
        goto fail;
    repo_writer_totals(w, NULL, &fresh2, &stored2);
    repo_writer_free(w);
    w = NULL;
    t_b2 = sm_mono() - t0;
    printf("  backup 2:         %.12s  %.2f s after changing 8 files: %.1f MB new, %.1f MB "
           "stored\n",
           id2, t_b2, (double)fresh2 / 1e6, (double)stored2 / 1e6);
    repo_unlock(r, NULL);

    memset(&vo, 0, sizeof(vo));
    vo.read_all = 1;
    t0 = sm_mono();
    if (repo_verify(r, &vo, &vr, &err) < 0)
        goto fail;
    t_v = sm_mono() - t0;
    printf("  verify --all:     %u snapshots, %llu chunks checked, no problems (%.2f s)\n",
           vr.snapshots, (unsigned long long)vr.blobs_checked, t_v);

    if (repo_snapshot_load(r, id2, &s2, &err) < 0)
        goto fail;
    t0 = sm_mono();
    if (repo_restore_tree(r, s2, "storage", restored, NULL, &err) < 0)
        goto fail;
    t_r = sm_mono() - t0;
    {
        char *cmp = sm_xasprintf("diff -r '%s' '%s' >/dev/null 2>&1", data, restored);
        int same = run(cmp) == 0;
        free(cmp);
        if (!same) {
            sm_err_set(&err, SM_E_CORRUPT, "the restored tree differs from the sample");
            goto fail;
        }
    }
    printf("  restore:          %s (%.2f s), checksums verified, identical to the sample\n",
           restored, t_r);
    if (repo_stats(r, &stats, &err) < 0)
        goto fail;
    printf("  repository now:   %lld snapshots, %.1f MB stored for %.1f MB backed up (%.1fx)\n",
           (long long)json_integer_value(json_object_get(stats, "snapshots")),
           (double)json_integer_value(json_object_get(stats, "stored_bytes")) / 1e6,
           (double)json_integer_value(json_object_get(stats, "logical_bytes")) / 1e6,
           json_integer_value(json_object_get(stats, "stored_bytes"))
               ? (double)json_integer_value(json_object_get(stats, "logical_bytes")) /
                     (double)json_integer_value(json_object_get(stats, "stored_bytes"))
               : 0.0);
    printf("demo OK\n");
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    repo_writer_free(w);
    snapshot_free(s1);
    snapshot_free(s2);
    json_decref(stats);
    repo_close(r);
    store_free(st);
    free(secret);
    free(dir);
    free(repo_dir);
    free(data);
    free(restored);
    return rc;
}
