/* `supamanager store check` and `supamanager repo copy`: stores as such,
 * whatever repository they hold. */
#include "cli/commands.h"
#include "cli/output.h"

#include "catalog/catalog.h"
#include "core/mem.h"
#include "core/util.h"
#include "store/s3.h"
#include "store/tools.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_ENDPOINT = 3000, S_REGION, S_CLASS, S_FROM, S_TO, S_PARALLEL, S_QUIET };

/* A location named on the command line: a project id (its store from the
 * catalog), or a location itself (has "://", or is a path). The S3 flags
 * are folded in. *out is the caller's. */
static int resolve_location(char **out, const char *arg, const char *endpoint, const char *region,
                            const char *sclass, sm_err *err)
{
    char *base = NULL;
    int rc;

    *out = NULL;
    if (strstr(arg, "://") || strchr(arg, '/') || arg[0] == '.') {
        base = sm_xstrdup(arg);
    } else {
        catalog *cat = NULL;
        project *p = NULL;
        if (catalog_open(&cat, cli_home(), err) < 0 ||
            catalog_project_get(cat, arg, &p, err) < 0) {
            catalog_close(cat);
            return -1;
        }
        base = project_repo_location(cat, p);
        project_free(p);
        catalog_close(cat);
    }
    rc = s3_location_build(out, base, endpoint, region, sclass, err);
    free(base);
    return rc;
}

static void print_step(const char *step, int ok, const char *detail, const sm_err *err, void *ud)
{
    (void)ud;
    if (ok > 0)
        printf("  %-7s ok       %s\n", step, detail);
    else if (ok < 0)
        printf("  %-7s skipped  %s\n", step, detail);
    else
        printf("  %-7s FAILED   %s%s%s\n", step, err->msg, err->hint[0] ? "\n          hint: " : "",
               err->hint);
    fflush(stdout);
}

static const struct option s3_opts[] = {
    {"s3-endpoint", required_argument, NULL, S_ENDPOINT},
    {"s3-region", required_argument, NULL, S_REGION},
    {"s3-storage-class", required_argument, NULL, S_CLASS},
    {"from", required_argument, NULL, S_FROM},
    {"to", required_argument, NULL, S_TO},
    {"parallel", required_argument, NULL, S_PARALLEL},
    {"quiet", no_argument, NULL, S_QUIET},
    {NULL, 0, NULL, 0},
};

typedef struct store_args {
    const char *endpoint, *region, *sclass, *from, *to;
    unsigned parallel;
    int quiet;
} store_args;

static int parse_args(int argc, char **argv, store_args *a)
{
    int opt;
    uint64_t v;

    memset(a, 0, sizeof(*a));
    a->parallel = 4;
    while ((opt = getopt_long(argc, argv, "", s3_opts, NULL)) != -1) {
        switch (opt) {
        case S_ENDPOINT: a->endpoint = optarg; break;
        case S_REGION: a->region = optarg; break;
        case S_CLASS: a->sclass = optarg; break;
        case S_FROM: a->from = optarg; break;
        case S_TO: a->to = optarg; break;
        case S_QUIET: a->quiet = 1; break;
        case S_PARALLEL:
            if (sm_parse_u64(optarg, 32, &v) < 0 || v == 0)
                return cli_usage("--parallel takes a number from 1 to 32");
            a->parallel = (unsigned)v;
            break;
        default: return cli_usage("unknown option");
        }
    }
    return 0;
}

static int store_check_cmd(int argc, char **argv)
{
    store_args a;
    sm_err err = SM_ERR_INIT;
    char *loc = NULL;
    store *st = NULL;
    int rc;

    optind = 1;
    if (parse_args(argc, argv, &a) != 0)
        return 2;
    if (optind + 1 != argc)
        return cli_usage("usage: supamanager store check PROJECT|LOCATION [--s3-endpoint URL] "
                         "[--s3-region R]");
    if (resolve_location(&loc, argv[optind], a.endpoint, a.region, a.sclass, &err) < 0 ||
        store_open(&st, loc, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    printf("checking %s\n", store_location(st));
    if (store_check(st, print_step, NULL, &err) < 0) {
        printf("%s\n", STORE_CHECK_UNUSABLE);
        rc = cli_fail(&err);
        goto out;
    }
    printf("%s\n", STORE_CHECK_USABLE);
    rc = 0;
out:
    store_free(st);
    free(loc);
    return rc;
}

int cmd_store(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return cli_usage("usage: supamanager store check PROJECT|LOCATION");
    return store_check_cmd(argc - 1, argv + 1);
}

static void print_copy(const char *key, uint64_t size, int skipped, void *ud)
{
    const store_args *a = ud;
    if (!a->quiet)
        fprintf(stderr, "%s %s (%llu bytes)\n", skipped ? "present" : "copied ", key,
                (unsigned long long)size);
}

int cmd_repo_copy(int argc, char **argv)
{
    store_args a;
    sm_err err = SM_ERR_INIT;
    char *from = NULL, *to = NULL;
    store *src = NULL, *dst = NULL;
    store_copy_stats stats;
    char human[32];
    int rc;

    optind = 1;
    if (parse_args(argc, argv, &a) != 0)
        return 2;
    if (!a.from || !a.to || optind != argc)
        return cli_usage("usage: supamanager repo copy --from LOCATION --to LOCATION "
                         "[--parallel N] [--quiet]");
    if (resolve_location(&from, a.from, NULL, NULL, NULL, &err) < 0 ||
        resolve_location(&to, a.to, a.endpoint, a.region, a.sclass, &err) < 0 ||
        store_open(&src, from, &err) < 0 || store_open(&dst, to, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (store_copy(src, dst, a.parallel, print_copy, &a, &stats, &err) < 0) {
        sm_err_prefix(&err, "copy from '%s' to '%s' stopped", store_location(src),
                      store_location(dst));
        if (!err.hint[0])
            sm_err_hint(&err, "Run the same command again: it resumes, skipping what is there.");
        rc = cli_fail(&err);
        goto out;
    }
    sm_human_bytes(human, sizeof(human), stats.bytes_copied);
    printf("copied %llu objects (%s), %llu already there: '%s' -> '%s'\n", stats.copied, human,
           stats.skipped, store_location(src), store_location(dst));
    rc = 0;
out:
    store_free(src);
    store_free(dst);
    free(from);
    free(to);
    return rc;
}
