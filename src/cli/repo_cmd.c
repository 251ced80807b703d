/* `supamanager repo ...`: the low-level repository commands. */
#include "cli/commands.h"
#include "cli/output.h"

#include "core/fsutil.h"
#include "core/mem.h"
#include "core/util.h"
#include "repo/repo.h"
#include "repo/tree.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct common {
    const char *repo;
    const char *secret_file;
    int json;
    int threads;
} common;

enum {
    OPT_REPO = 1000,
    OPT_SECRET_FILE,
    OPT_JSON,
    OPT_THREADS,
    OPT_COMPRESSION,
    OPT_CHUNK_MIN,
    OPT_CHUNK_AVG,
    OPT_CHUNK_MAX,
    OPT_PACK_SIZE,
    OPT_TAG,
    OPT_PARENT,
    OPT_NO_PARENT,
    OPT_TARGET,
    OPT_STREAM,
    OPT_STDOUT,
    OPT_SPECIAL,
    OPT_NO_OWNER,
    OPT_ALL,
    OPT_KEEP_LAST,
    OPT_SNAPSHOT,
    OPT_DRY_RUN,
    OPT_REPACK,
    OPT_NEW_SECRET_FILE,
    OPT_SIZE_HINT,
};

#define COMMON_OPTS                                                                                \
    {"repo", required_argument, NULL, OPT_REPO},                                                   \
        {"secret-file", required_argument, NULL, OPT_SECRET_FILE},                                 \
        {"json", no_argument, NULL, OPT_JSON}, {"threads", required_argument, NULL, OPT_THREADS}

/* Handles the options every repo command takes; 1 if handled, -1 on error. */
static int common_opt(common *c, int opt, const char *arg)
{
    uint64_t v;
    switch (opt) {
    case OPT_REPO: c->repo = arg; return 1;
    case OPT_SECRET_FILE: c->secret_file = arg; return 1;
    case OPT_JSON: c->json = 1; return 1;
    case OPT_THREADS:
        if (sm_parse_u64(arg, 64, &v) < 0 || v == 0)
            return -1;
        c->threads = (int)v;
        return 1;
    }
    return 0;
}

static const char *repo_location(const common *c, sm_err *err)
{
    const char *loc = c->repo ? c->repo : getenv("SUPAMANAGER_REPO");
    if (!loc || !*loc) {
        sm_err_set(err, SM_E_USAGE, "no repository given");
        sm_err_hint(err, "Pass --repo PATH or set SUPAMANAGER_REPO.");
        return NULL;
    }
    return loc;
}

/* Opens store and repository; with lock 1 exclusive, 2 shared, 0 none. */
static int open_repo(const common *c, store **st, repo **r, int lock, const char *purpose,
                     sm_err *err)
{
    const char *loc = repo_location(c, err);
    char *secret = NULL;
    int rc = -1;

    *st = NULL;
    *r = NULL;
    if (!loc)
        return -1;
    if (store_open(st, loc, err) < 0)
        return -1;
    secret = cli_secret(c->secret_file, "ENCRYPTION_SECRET", err);
    if (!secret && err->code != SM_OK)
        goto out;
    if (repo_open(r, *st, secret, err) < 0)
        goto out;
    if (lock && repo_lock(*r, lock == 1, purpose, err) < 0)
        goto out;
    rc = 0;
out:
    if (secret) {
        sm_wipe(secret, strlen(secret));
        free(secret);
    }
    if (rc < 0) {
        repo_close(*r);
        store_free(*st);
        *r = NULL;
        *st = NULL;
    }
    return rc;
}

static void close_repo(store *st, repo *r)
{
    repo_close(r);
    store_free(st);
}

/* ---- init ---- */

static int repo_init_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"compression", required_argument, NULL, OPT_COMPRESSION},
                                         {"chunk-min", required_argument, NULL, OPT_CHUNK_MIN},
                                         {"chunk-avg", required_argument, NULL, OPT_CHUNK_AVG},
                                         {"chunk-max", required_argument, NULL, OPT_CHUNK_MAX},
                                         {"pack-size", required_argument, NULL, OPT_PACK_SIZE},
                                         {NULL, 0, NULL, 0}};
    common c = {0};
    repo_init_opts o = REPO_INIT_OPTS_INIT;
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    char *secret = NULL;
    const char *loc;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        uint64_t v;
        int h = common_opt(&c, opt, optarg);
        if (h == 1)
            continue;
        if (h < 0)
            return cli_usage("bad value '%s' for --threads", optarg);
        switch (opt) {
        case OPT_COMPRESSION:
            if (sm_parse_u64(optarg, 19, &v) < 0)
                return cli_usage("--compression takes a level from 0 (off) to 19");
            o.compression_level = (int)v;
            break;
        case OPT_CHUNK_MIN:
        case OPT_CHUNK_AVG:
        case OPT_CHUNK_MAX:
        case OPT_PACK_SIZE:
            if (sm_parse_size(optarg, &v) < 0 || v > UINT32_MAX)
                return cli_usage("bad size '%s' (use a number with an optional k, M or G)", optarg);
            if (opt == OPT_CHUNK_MIN)
                o.chunk_min = (uint32_t)v;
            else if (opt == OPT_CHUNK_AVG)
                o.chunk_avg = (uint32_t)v;
            else if (opt == OPT_CHUNK_MAX)
                o.chunk_max = (uint32_t)v;
            else
                o.pack_size = (uint32_t)v;
            break;
        default:
            return cli_usage("unknown option for `repo init`");
        }
    }
    if (optind < argc)
        return cli_usage("unexpected argument '%s'", argv[optind]);
    loc = repo_location(&c, &err);
    if (!loc)
        return cli_fail(&err);
    secret = cli_secret(c.secret_file, "ENCRYPTION_SECRET", &err);
    if (!secret && err.code != SM_OK)
        return cli_fail(&err);
    rc = store_open(&st, loc, &err) < 0 || repo_init(st, secret, &o, &err) < 0 ? -1 : 0;
    free(secret);
    store_free(st);
    if (rc < 0)
        return cli_fail(&err);
    fprintf(stderr, "created repository at '%s'\n", loc);
    fprintf(stderr, "keep ENCRYPTION_SECRET safe: without it the backups cannot be read\n");
    return 0;
}

/* ---- backup ---- */

static int repo_backup_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"tag", required_argument, NULL, OPT_TAG},
                                         {"parent", required_argument, NULL, OPT_PARENT},
                                         {"no-parent", no_argument, NULL, OPT_NO_PARENT},
                                         {"size-hint", required_argument, NULL, OPT_SIZE_HINT},
                                         {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    repo_writer *w = NULL;
    snapshot *parent = NULL;
    json_t *tags = json_array();
    const char *parent_ref = NULL; /* default: per tree stream, the newest snapshot holding it */
    int no_parent = 0;
    repo_writer_opts wo;
    cli_progress prog;
    uint64_t size_hint = 0;
    char id[65];
    int opt, rc = 1;

    memset(&wo, 0, sizeof(wo));
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = common_opt(&c, opt, optarg);
        if (h == 1)
            continue;
        if (h < 0) {
            json_decref(tags);
            return cli_usage("bad value '%s' for --threads", optarg);
        }
        switch (opt) {
        case OPT_TAG: json_array_append_new(tags, json_string(optarg)); break;
        case OPT_PARENT: parent_ref = optarg; break;
        case OPT_NO_PARENT: no_parent = 1; break;
        case OPT_SIZE_HINT:
            if (sm_parse_size(optarg, &size_hint) < 0) {
                json_decref(tags);
                return cli_usage("bad size '%s' for --size-hint", optarg);
            }
            break;
        default: json_decref(tags); return cli_usage("unknown option for `repo backup`");
        }
    }
    if (optind >= argc) {
        json_decref(tags);
        return cli_usage("`repo backup` needs at least one NAME=PATH (PATH '-' is stdin)");
    }
    for (int i = optind; i < argc; i++) {
        if (!strchr(argv[i], '=') || argv[i][0] == '=') {
            json_decref(tags);
            return cli_usage("'%s' is not NAME=PATH", argv[i]);
        }
    }
    cli_install_signals();
    if (open_repo(&c, &st, &r, 1, "backup", &err) < 0)
        goto fail;
    if (parent_ref && !no_parent && repo_snapshot_load(r, parent_ref, &parent, &err) < 0)
        goto fail;
    cli_progress_init(&prog, c.json);
    wo.progress = cli_progress_cb;
    wo.progress_ud = &prog;
    wo.cancel = &cli_cancel;
    wo.threads = c.threads;
    wo.bytes_total = size_hint;
    if (repo_writer_new(&w, r, &wo, &err) < 0)
        goto fail;
    for (int i = optind; i < argc; i++) {
        char *name = sm_xstrndup(argv[i], (size_t)(strchr(argv[i], '=') - argv[i]));
        const char *path = strchr(argv[i], '=') + 1;
        struct stat sb;
        int r2;
        if (!strcmp(path, "-")) {
            r2 = repo_writer_add_fd(w, name, STDIN_FILENO, &err);
        } else if (stat(path, &sb) != 0) {
            r2 = sm_err_sys(&err, errno == ENOENT ? SM_E_NOTFOUND : SM_E_IO, "cannot read '%s'",
                            path);
        } else if (S_ISDIR(sb.st_mode)) {
            snapshot *auto_parent = NULL;
            if (!parent && !no_parent &&
                repo_snapshot_latest_with(r, name, "tree", &auto_parent, &err) < 0) {
                free(name);
                goto fail;
            }
            r2 = repo_writer_add_tree(w, name, path, parent ? parent : auto_parent, &err);
            snapshot_free(auto_parent);
        } else {
            snapshot *auto_parent = NULL;
            if (!parent && !no_parent &&
                repo_snapshot_latest_with(r, name, "file", &auto_parent, &err) < 0) {
                free(name);
                goto fail;
            }
            r2 = repo_writer_add_file(w, name, path,
                                      no_parent ? NULL : parent ? parent : auto_parent, &err);
            snapshot_free(auto_parent);
        }
        free(name);
        if (r2 < 0)
            goto fail;
    }
    if (repo_writer_commit(w, NULL, tags, id, &err) < 0)
        goto fail;
    cli_progress_done(&prog);
    {
        uint64_t rd, fresh, stored;
        char a[32], b[32], d[32];
        repo_writer_totals(w, &rd, &fresh, &stored);
        if (c.json) {
            json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:O}", "snapshot", id, "bytes_read",
                                  (json_int_t)rd, "bytes_new", (json_int_t)fresh, "bytes_stored",
                                  (json_int_t)stored, "streams", repo_writer_streams(w));
            /* content lists are long and of no use here */
            size_t k;
            json_t *s;
            json_array_foreach(json_object_get(o, "streams"), k, s)
            {
                json_object_del(s, "content");
                json_object_del(s, "root");
            }
            cli_print_json(o);
            json_decref(o);
        } else {
            printf("%s\n", id);
            sm_human_bytes(a, sizeof(a), rd);
            sm_human_bytes(b, sizeof(b), fresh);
            sm_human_bytes(d, sizeof(d), stored);
            fprintf(stderr, "snapshot %.12s saved: %s processed, %s new, %s stored\n", id, a, b,
                    d);
        }
    }
    rc = 0;
    goto out;
fail:
    if (w)
        cli_progress_done(&prog);
    rc = cli_fail(&err);
    if (err.code == SM_E_INTERRUPTED)
        rc = 130;
out:
    repo_writer_free(w);
    snapshot_free(parent);
    json_decref(tags);
    close_repo(st, r);
    return rc;
}

/* ---- restore ---- */

static int repo_restore_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"target", required_argument, NULL, OPT_TARGET},
                                         {"stream", required_argument, NULL, OPT_STREAM},
                                         {"stdout", no_argument, NULL, OPT_STDOUT},
                                         {"special", no_argument, NULL, OPT_SPECIAL},
                                         {"no-owner", no_argument, NULL, OPT_NO_OWNER},
                                         {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    snapshot *s = NULL;
    const char *target = NULL, *stream = NULL;
    int to_stdout = 0, opt, rc = 1;
    repo_restore_opts ro;
    cli_progress prog;

    memset(&ro, 0, sizeof(ro));
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = common_opt(&c, opt, optarg);
        if (h == 1)
            continue;
        if (h < 0)
            return cli_usage("bad value '%s' for --threads", optarg);
        switch (opt) {
        case OPT_TARGET: target = optarg; break;
        case OPT_STREAM: stream = optarg; break;
        case OPT_STDOUT: to_stdout = 1; break;
        case OPT_SPECIAL: ro.allow_special = 1; break;
        case OPT_NO_OWNER: ro.no_owner = 1; break;
        default: return cli_usage("unknown option for `repo restore`");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("`repo restore` takes one snapshot (an id or 'latest')");
    if (!!target == !!to_stdout)
        return cli_usage("`repo restore` needs either --target DIR or --stdout");
    if (to_stdout && !stream)
        return cli_usage("--stdout needs --stream NAME");
    cli_install_signals();
    if (open_repo(&c, &st, &r, 2, "restore", &err) < 0 ||
        repo_snapshot_load(r, argv[optind], &s, &err) < 0)
        goto fail;
    cli_progress_init(&prog, to_stdout || c.json);
    ro.progress = cli_progress_cb;
    ro.progress_ud = &prog;
    ro.cancel = &cli_cancel;
    ro.threads = c.threads;
    if (to_stdout) {
        if (repo_restore_stream_fd(r, s, stream, STDOUT_FILENO, &ro, &err) < 0)
            goto fail;
    } else if (stream) {
        json_t *sj = snapshot_stream(s, stream);
        const char *kind = sj ? json_string_value(json_object_get(sj, "kind")) : NULL;
        if (!sj) {
            sm_err_set(&err, SM_E_NOTFOUND, "snapshot %.12s has no stream '%s'", snapshot_id(s),
                       stream);
            goto fail;
        }
        if (kind && !strcmp(kind, "tree")) {
            if (repo_restore_tree(r, s, stream, target, &ro, &err) < 0)
                goto fail;
        } else {
            int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                sm_err_sys(&err, SM_E_IO, "cannot create '%s'", target);
                sm_err_hint(&err, "The target file must not exist yet.");
                goto fail;
            }
            rc = repo_restore_stream_fd(r, s, stream, fd, &ro, &err);
            if (rc == 0 && fsync(fd) != 0)
                rc = sm_err_sys(&err, SM_E_IO, "cannot fsync '%s'", target);
            close(fd);
            if (rc < 0)
                goto fail;
        }
    } else if (repo_restore_all(r, s, target, &ro, &err) < 0) {
        goto fail;
    }
    cli_progress_done(&prog);
    if (!to_stdout)
        fprintf(stderr, "restored snapshot %.12s to '%s'\n", snapshot_id(s), target);
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
    if (err.code == SM_E_INTERRUPTED)
        rc = 130;
out:
    snapshot_free(s);
    close_repo(st, r);
    return rc;
}

/* ---- ls ---- */

typedef struct ls_ctx {
    int json;
    json_t *arr;
} ls_ctx;

static int ls_entry(void *ud, const char *path, const struct tree_node *n, sm_err *err)
{
    ls_ctx *l = ud;
    (void)err;
    if (l->json) {
        json_t *o = json_pack("{s:s,s:s,s:i,s:I}", "path", path, "type", node_type_name(n->type),
                              "mode", (int)n->mode, "size", (json_int_t)n->size);
        if (n->type == NODE_SYMLINK)
            json_object_set_new(o, "target", json_string(n->target));
        json_array_append_new(l->arr, o);
    } else {
        char t = node_type_char(n->type);
        if (n->type == NODE_SYMLINK)
            printf("%c %04o %12llu %s -> %s\n", t, n->mode, (unsigned long long)n->size, path,
                   n->target);
        else
            printf("%c %04o %12llu %s\n", t, n->mode, (unsigned long long)n->size, path);
    }
    return 0;
}

static int repo_ls_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    int opt, rc = 1;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (common_opt(&c, opt, optarg) != 1)
            return cli_usage("unknown option for `repo ls`");
    if (argc - optind > 1)
        return cli_usage("`repo ls` takes at most one snapshot");
    if (open_repo(&c, &st, &r, 0, NULL, &err) < 0)
        goto fail;
    if (optind == argc) {
        snapshot **v = NULL;
        size_t n = 0;
        json_t *arr = json_array();
        if (repo_snapshots(r, &v, &n, &err) < 0) {
            json_decref(arr);
            goto fail;
        }
        if (!c.json)
            printf("%-12s  %-20s  %-10s  %s\n", "ID", "TIME (UTC)", "SIZE", "STREAMS");
        for (size_t i = 0; i < n; i++) {
            json_t *doc = snapshot_json(v[i]), *sts = json_object_get(doc, "streams"), *sj;
            uint64_t size = 0;
            size_t k;
            sm_buf names = SM_BUF_INIT;
            json_t *o = json_pack("{s:s,s:O,s:O,s:O,s:[]}", "id", snapshot_id(v[i]), "time",
                                  json_object_get(doc, "time"), "hostname",
                                  json_object_get(doc, "hostname"), "tags",
                                  json_object_get(doc, "tags"), "streams");
            json_array_foreach(sts, k, sj)
            {
                size += (uint64_t)json_integer_value(json_object_get(sj, "size"));
                if (names.len)
                    sm_buf_puts(&names, ",");
                sm_buf_puts(&names, json_string_value(json_object_get(sj, "name")));
                json_array_append_new(
                    json_object_get(o, "streams"),
                    json_pack("{s:O,s:O,s:O,s:O}", "name", json_object_get(sj, "name"), "kind",
                              json_object_get(sj, "kind"), "size", json_object_get(sj, "size"),
                              "sha256", json_object_get(sj, "sha256")));
            }
            json_object_set_new(o, "size", json_integer((json_int_t)size));
            if (!c.json) {
                char hs[32];
                sm_human_bytes(hs, sizeof(hs), size);
                printf("%.12s  %-20s  %-10s  %s\n", snapshot_id(v[i]),
                       json_string_value(json_object_get(doc, "time")), hs, sm_buf_str(&names));
            }
            json_array_append_new(arr, o);
            sm_buf_release(&names);
        }
        if (c.json)
            cli_print_json(arr);
        json_decref(arr);
        repo_snapshots_free(v, n);
    } else {
        snapshot *s = NULL;
        json_t *sts, *sj;
        size_t k;
        ls_ctx l = {c.json, json_array()};
        if (repo_snapshot_load(r, argv[optind], &s, &err) < 0) {
            json_decref(l.arr);
            goto fail;
        }
        sts = json_object_get(snapshot_json(s), "streams");
        json_array_foreach(sts, k, sj)
        {
            const char *name = json_string_value(json_object_get(sj, "name"));
            const char *kind = json_string_value(json_object_get(sj, "kind"));
            if (!c.json)
                printf("%s (%s, %lld bytes, sha256 %s)\n", name, kind,
                       (long long)json_integer_value(json_object_get(sj, "size")),
                       json_string_value(json_object_get(sj, "sha256")));
            if (kind && !strcmp(kind, "tree") && repo_tree_walk(r, s, name, ls_entry, &l, &err) < 0) {
                snapshot_free(s);
                json_decref(l.arr);
                goto fail;
            }
        }
        if (c.json)
            cli_print_json(l.arr);
        json_decref(l.arr);
        snapshot_free(s);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    close_repo(st, r);
    return rc;
}

/* ---- verify ---- */

static void print_line(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "damaged: %s\n", line);
}

static int repo_verify_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"all", no_argument, NULL, OPT_ALL},
                                         {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    repo_verify_opts vo;
    repo_verify_result res;
    cli_progress prog;
    int opt, rc = 1, vr;

    memset(&vo, 0, sizeof(vo));
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = common_opt(&c, opt, optarg);
        if (h == 1)
            continue;
        if (opt == OPT_ALL)
            vo.read_all = 1;
        else
            return cli_usage("unknown option for `repo verify`");
    }
    if (open_repo(&c, &st, &r, 2, "verify", &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    cli_progress_init(&prog, c.json);
    vo.refs = (const char *const *)(argv + optind);
    vo.nrefs = (size_t)(argc - optind);
    vo.report = print_line;
    vo.progress = cli_progress_cb;
    vo.progress_ud = &prog;
    vo.threads = c.threads;
    vr = repo_verify(r, &vo, &res, &err);
    cli_progress_done(&prog);
    if (c.json) {
        json_t *o = json_pack("{s:b,s:i,s:i,s:i,s:I,s:I}", "ok", vr == 0, "snapshots",
                              (int)res.snapshots, "snapshots_damaged", (int)res.snapshots_damaged,
                              "problems", (int)res.problems, "blobs_checked",
                              (json_int_t)res.blobs_checked, "bytes_checked",
                              (json_int_t)res.bytes_checked);
        cli_print_json(o);
        json_decref(o);
    }
    if (vr < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    {
        char hb[32];
        sm_human_bytes(hb, sizeof(hb), res.bytes_checked);
        fprintf(stderr, "verified %u snapshot%s: %llu chunks, %s, no problems found\n",
                res.snapshots, res.snapshots == 1 ? "" : "s",
                (unsigned long long)res.blobs_checked, hb);
    }
    rc = 0;
out:
    close_repo(st, r);
    return rc;
}

/* ---- prune ---- */

static void print_info(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "%s\n", line);
}

static int repo_prune_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"keep-last", required_argument, NULL, OPT_KEEP_LAST},
                                         {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
                                         {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                         {"repack-percent", required_argument, NULL, OPT_REPACK},
                                         {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    repo_prune_opts po;
    repo_prune_result res;
    const char **forget = NULL;
    size_t nforget = 0;
    int opt, rc = 1;
    uint64_t v;

    memset(&po, 0, sizeof(po));
    forget = sm_xcalloc((size_t)argc + 1, sizeof(*forget));
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = common_opt(&c, opt, optarg);
        if (h == 1)
            continue;
        switch (opt) {
        case OPT_KEEP_LAST:
            if (sm_parse_u64(optarg, 1000000, &v) < 0 || v == 0) {
                free(forget);
                return cli_usage("--keep-last takes a number of snapshots of at least 1");
            }
            po.keep_last = (int)v;
            break;
        case OPT_SNAPSHOT: forget[nforget++] = optarg; break;
        case OPT_DRY_RUN: po.dry_run = 1; break;
        case OPT_REPACK:
            if (sm_parse_u64(optarg, 99, &v) < 0 || v == 0) {
                free(forget);
                return cli_usage("--repack-percent takes 1 to 99");
            }
            po.repack_percent = (unsigned)v;
            break;
        default: free(forget); return cli_usage("unknown option for `repo prune`");
        }
    }
    if (optind < argc) {
        free(forget);
        return cli_usage("unexpected argument '%s'", argv[optind]);
    }
    po.forget = forget;
    po.nforget = nforget;
    po.report = print_info;
    if (open_repo(&c, &st, &r, 1, "prune", &err) < 0 || repo_prune(r, &po, &res, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (c.json) {
        json_t *o = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I}", "snapshots_removed",
                              (int)res.snapshots_removed, "packs_deleted", (int)res.packs_deleted,
                              "packs_repacked", (int)res.packs_repacked, "packs_written",
                              (int)res.packs_written, "orphans_removed", (int)res.orphans_removed,
                              "bytes_freed", (json_int_t)res.bytes_freed, "bytes_before",
                              (json_int_t)res.bytes_before, "bytes_after",
                              (json_int_t)res.bytes_after);
        cli_print_json(o);
        json_decref(o);
    } else {
        char hb[32];
        sm_human_bytes(hb, sizeof(hb), res.bytes_freed);
        fprintf(stderr,
                "%s%u snapshots removed, %u packs deleted, %u repacked, %u orphans removed, %s "
                "freed\n",
                po.dry_run ? "dry run: " : "", res.snapshots_removed, res.packs_deleted,
                res.packs_repacked, res.orphans_removed, hb);
    }
    rc = 0;
out:
    free(forget);
    close_repo(st, r);
    return rc;
}

/* ---- stats, unlock, key ---- */

static int repo_stats_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    json_t *o = NULL;
    int opt, rc = 1;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (common_opt(&c, opt, optarg) != 1)
            return cli_usage("unknown option for `repo stats`");
    if (open_repo(&c, &st, &r, 0, NULL, &err) < 0 || repo_stats(r, &o, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    json_object_set_new(o, "config", repo_config_json(r));
    if (c.json) {
        cli_print_json(o);
    } else {
        char a[32], b[32], d[32];
        sm_human_bytes(a, sizeof(a), (uint64_t)json_integer_value(json_object_get(o, "logical_bytes")));
        sm_human_bytes(b, sizeof(b), (uint64_t)json_integer_value(json_object_get(o, "raw_bytes")));
        sm_human_bytes(d, sizeof(d), (uint64_t)json_integer_value(json_object_get(o, "stored_bytes")));
        printf("snapshots:     %lld\n", (long long)json_integer_value(json_object_get(o, "snapshots")));
        printf("packs:         %lld\n", (long long)json_integer_value(json_object_get(o, "packs")));
        printf("chunks:        %lld\n", (long long)json_integer_value(json_object_get(o, "blobs")));
        printf("backed up:     %s (all snapshots)\n", a);
        printf("unique data:   %s (dedup ratio %.2f)\n", b,
               json_real_value(json_object_get(o, "dedup_ratio")));
        printf("stored:        %s (compression ratio %.2f)\n", d,
               json_real_value(json_object_get(o, "compression_ratio")));
    }
    rc = 0;
out:
    json_decref(o);
    close_repo(st, r);
    return rc;
}

static int repo_unlock_cmd(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"all", no_argument, NULL, OPT_ALL},
                                         {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    const char *loc;
    unsigned removed = 0;
    int opt, all = 0, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(&c, opt, optarg) == 1)
            continue;
        if (opt == OPT_ALL)
            all = 1;
        else
            return cli_usage("unknown option for `repo unlock`");
    }
    loc = repo_location(&c, &err);
    if (!loc)
        return cli_fail(&err);
    rc = store_open(&st, loc, &err) < 0 || repo_break_locks(st, all, &removed, &err) < 0 ? -1 : 0;
    store_free(st);
    if (rc < 0)
        return cli_fail(&err);
    fprintf(stderr, "removed %u lock%s\n", removed, removed == 1 ? "" : "s");
    return 0;
}

static int repo_key_cmd(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_OPTS, {"new-secret-file", required_argument, NULL, OPT_NEW_SECRET_FILE},
        {NULL, 0, NULL, 0}};
    common c = {0};
    sm_err err = SM_ERR_INIT;
    store *st = NULL;
    repo *r = NULL;
    const char *new_file = NULL, *sub;
    char *new_secret = NULL, *key_id = NULL;
    int opt, rc = 1;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(&c, opt, optarg) == 1)
            continue;
        if (opt == OPT_NEW_SECRET_FILE)
            new_file = optarg;
        else
            return cli_usage("unknown option for `repo key`");
    }
    if (optind >= argc)
        return cli_usage("`repo key` needs list, add, change or remove");
    sub = argv[optind++];
    if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "change") &&
        strcmp(sub, "remove"))
        return cli_usage("unknown `repo key` command '%s' (list, add, change, remove)", sub);
    if (!strcmp(sub, "remove") && optind + 1 != argc)
        return cli_usage("`repo key remove` takes one key id");
    if (!strcmp(sub, "add") || !strcmp(sub, "change")) {
        new_secret = cli_secret(new_file, "NEW_ENCRYPTION_SECRET", &err);
        if (!new_secret) {
            if (err.code == SM_OK) {
                sm_err_set(&err, SM_E_USAGE, "no new secret given");
                sm_err_hint(&err, "Set NEW_ENCRYPTION_SECRET or pass --new-secret-file FILE.");
            }
            return cli_fail(&err);
        }
    }
    if (open_repo(&c, &st, &r, strcmp(sub, "list") ? 1 : 0, "key", &err) < 0)
        goto fail;
    if (!strcmp(sub, "list")) {
        json_t *arr = NULL;
        size_t i;
        json_t *k;
        if (repo_key_list(r, &arr, &err) < 0)
            goto fail;
        if (c.json) {
            cli_print_json(arr);
        } else {
            json_array_foreach(arr, i, k)
            printf("%s %s  %s  %s\n", json_is_true(json_object_get(k, "current")) ? "*" : " ",
                   json_string_value(json_object_get(k, "id")),
                   json_string_value(json_object_get(k, "created")) ?: "?",
                   json_string_value(json_object_get(k, "hostname")) ?: "?");
        }
        json_decref(arr);
    } else if (!strcmp(sub, "add")) {
        if (repo_key_add(r, new_secret, &key_id, &err) < 0)
            goto fail;
        printf("%s\n", key_id);
        fprintf(stderr, "added key %s; both secrets now open the repository\n", key_id);
    } else if (!strcmp(sub, "change")) {
        if (repo_key_change(r, new_secret, &err) < 0)
            goto fail;
        fprintf(stderr, "changed the secret; the old one no longer opens the repository\n");
    } else {
        if (repo_key_remove(r, argv[optind], &err) < 0)
            goto fail;
        fprintf(stderr, "removed key %s\n", argv[optind]);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    if (new_secret) {
        sm_wipe(new_secret, strlen(new_secret));
        free(new_secret);
    }
    free(key_id);
    close_repo(st, r);
    return rc;
}

static void repo_help(void)
{
    fputs("usage: supamanager repo <command> [--repo PATH] [options]\n"
          "\n"
          "  init     create a repository (--compression N, --chunk-min/avg/max SIZE, --pack-size SIZE)\n"
          "  backup   NAME=PATH... save a snapshot of files, directories or stdin ('-')\n"
          "  restore  SNAP --target DIR | --stream NAME --stdout\n"
          "  ls       [SNAP] list snapshots, or the content of one\n"
          "  verify   [--all] [SNAP...] check snapshots (and with --all every pack)\n"
          "  prune    --keep-last N | --snapshot ID... remove snapshots and free their data\n"
          "  stats    sizes, deduplication and compression\n"
          "  unlock   remove stale locks (--all: every lock)\n"
          "  key      list | add | change | remove ID\n"
          "  copy     --from LOCATION --to LOCATION: copy a repository between stores (a\n"
          "           directory, s3://BUCKET/PREFIX); resumable\n"
          "\n"
          "The repository comes from --repo or SUPAMANAGER_REPO (a directory, or\n"
          "s3://BUCKET[/PREFIX][?endpoint=URL&region=R...]); the secret from\n"
          "ENCRYPTION_SECRET (or --secret-file FILE). Snapshots are named by id, a unique\n"
          "prefix of at least 6 hex digits, or 'latest'.\n",
          stdout);
}

int cmd_repo(int argc, char **argv)
{
    const char *sub;

    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        repo_help();
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    optind = 1;
    if (!strcmp(sub, "init"))
        return repo_init_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "backup"))
        return repo_backup_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "restore"))
        return repo_restore_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "ls"))
        return repo_ls_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "verify"))
        return repo_verify_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "prune"))
        return repo_prune_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "stats"))
        return repo_stats_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "unlock"))
        return repo_unlock_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "key"))
        return repo_key_cmd(argc - 1, argv + 1);
    if (!strcmp(sub, "copy"))
        return cmd_repo_copy(argc - 1, argv + 1);
    return cli_usage("unknown command `repo %s`", sub);
}
