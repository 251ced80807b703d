/* `supamanager pitr ...`, `wal-push`, `wal-fetch` and `restore --target-*`:
 * point-in-time recovery from the command line. Argument parsing and
 * output only; the work is in src/job/pitr.c. */
#include "cli/commands.h"
#include "cli/env.h"
#include "cli/output.h"

#include "catalog/catalog.h"
#include "core/mem.h"
#include "core/util.h"
#include "job/pitr.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    P_DATA_DIR = 5000,
    P_STOP,
    P_START,
    P_SPOOL,
    P_DB_SPOOL,
    P_TIMEOUT,
    P_KEEP,
    P_BINARY,
    P_INTERVAL,
    P_NO_BASE,
    P_JSON,
    P_PROJECT,
    P_TIME,
    P_LSN,
    P_XID,
    P_LATEST,
    P_TIMELINE,
    P_YES,
};

static const struct option pitr_opts[] = {
    {"data-dir", required_argument, NULL, P_DATA_DIR},
    {"stop-cmd", required_argument, NULL, P_STOP},
    {"start-cmd", required_argument, NULL, P_START},
    {"spool-dir", required_argument, NULL, P_SPOOL},
    {"db-spool-dir", required_argument, NULL, P_DB_SPOOL},
    {"archive-timeout", required_argument, NULL, P_TIMEOUT},
    {"keep-bases", required_argument, NULL, P_KEEP},
    {"binary", required_argument, NULL, P_BINARY},
    {"base-interval", required_argument, NULL, P_INTERVAL},
    {"no-base-backup", no_argument, NULL, P_NO_BASE},
    {"json", no_argument, NULL, P_JSON},
    {"project", required_argument, NULL, P_PROJECT},
    {"spool", required_argument, NULL, P_SPOOL},
    {"target-time", required_argument, NULL, P_TIME},
    {"target-lsn", required_argument, NULL, P_LSN},
    {"target-xid", required_argument, NULL, P_XID},
    {"latest", no_argument, NULL, P_LATEST},
    {"timeline", required_argument, NULL, P_TIMELINE},
    {"yes", no_argument, NULL, P_YES},
    {NULL, 0, NULL, 0},
};

typedef struct pargs {
    json_t *settings; /* for enable */
    const char *project, *spool;
    pitr_target t;
    int json, no_base, yes, bad;
    char **pos;
    int npos;
} pargs;

static int set_num(json_t *s, const char *key, const char *v, uint64_t max)
{
    uint64_t n;
    if (sm_parse_u64(v, max, &n) < 0)
        return cli_usage("--%s takes a number from 0 to %llu", key, (unsigned long long)max);
    json_object_set_new(s, key, json_integer((json_int_t)n));
    return 0;
}

static int parse(int argc, char **argv, pargs *a)
{
    int opt, rc = 0;

    memset(a, 0, sizeof(*a));
    a->settings = json_object();
    optind = 1;
    while (rc == 0 && (opt = getopt_long(argc, argv, "", pitr_opts, NULL)) != -1) {
        switch (opt) {
        case P_DATA_DIR: json_object_set_new(a->settings, "data_dir", json_string(optarg)); break;
        case P_STOP: json_object_set_new(a->settings, "stop_cmd", json_string(optarg)); break;
        case P_START: json_object_set_new(a->settings, "start_cmd", json_string(optarg)); break;
        case P_SPOOL:
            a->spool = optarg;
            json_object_set_new(a->settings, "spool_dir", json_string(optarg));
            break;
        case P_DB_SPOOL:
            json_object_set_new(a->settings, "db_spool_dir", json_string(optarg));
            break;
        case P_TIMEOUT: rc = set_num(a->settings, "archive_timeout", optarg, 86400); break;
        case P_KEEP: rc = set_num(a->settings, "keep_bases", optarg, 1000); break;
        case P_INTERVAL: rc = set_num(a->settings, "base_interval_hours", optarg, 24 * 365); break;
        case P_BINARY: json_object_set_new(a->settings, "binary", json_string(optarg)); break;
        case P_NO_BASE: a->no_base = 1; break;
        case P_JSON: a->json = 1; break;
        case P_PROJECT: a->project = optarg; break;
        case P_TIME: a->t.time = optarg; break;
        case P_LSN: a->t.lsn = optarg; break;
        case P_XID: a->t.xid = optarg; break;
        case P_LATEST: a->t.latest = 1; break;
        case P_TIMELINE: a->t.timeline = optarg; break;
        case P_YES: a->yes = 1; break;
        default: rc = cli_usage("unknown option"); break;
        }
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    if (rc)
        json_decref(a->settings);
    return rc;
}

static const char usage_text[] =
    "usage: supamanager pitr enable PROJECT --data-dir DIR --stop-cmd CMD --start-cmd CMD\n"
    "                               [--spool-dir DIR] [--db-spool-dir DIR] [--binary PATH]\n"
    "                               [--archive-timeout S] [--keep-bases N]\n"
    "                               [--base-interval HOURS] [--no-base-backup]\n"
    "       supamanager pitr disable PROJECT\n"
    "       supamanager pitr status PROJECT [--json]   the recoverable window\n"
    "       supamanager pitr check PROJECT [--json]    gaps in the WAL archive\n"
    "       supamanager pitr base-backup PROJECT [--json]\n"
    "       supamanager pitr push PROJECT              move spooled WAL into the repository\n"
    "       supamanager restore PROJECT --target-time T | --target-lsn L | --target-xid X |\n"
    "                           --latest [--timeline latest|N] [--yes] [--json]\n"
    "       supamanager wal-push --spool DIR PATH | --project P PATH   (archive_command)\n"
    "       supamanager wal-fetch --project P NAME DEST                (by hand)";

static void print_status(const json_t *s)
{
    const json_t *b, *g;
    size_t i;

    if (!json_is_true(json_object_get(s, "enabled"))) {
        printf("Point-in-time recovery is off for %s.\n",
               json_string_value(json_object_get(s, "project_id")));
        return;
    }
    printf("Point-in-time recovery of %s\n", json_string_value(json_object_get(s, "project_id")));
    printf("  recoverable:   %s .. %s\n",
           json_string_value(json_object_get(s, "earliest"))
               ? json_string_value(json_object_get(s, "earliest"))
               : "(no base backup yet)",
           json_string_value(json_object_get(s, "latest"))
               ? json_string_value(json_object_get(s, "latest"))
               : "-");
    printf("  WAL archive:   %lld files, %lld bytes, newest %s, %lld waiting in the spool\n",
           (long long)json_integer_value(json_object_get(s, "wal_files")),
           (long long)json_integer_value(json_object_get(s, "wal_bytes")),
           json_string_value(json_object_get(s, "last_archived_at"))
               ? json_string_value(json_object_get(s, "last_archived_at"))
               : "-",
           (long long)json_integer_value(json_object_get(s, "spool_pending")));
    printf("  base backups:  %zu\n", json_array_size(json_object_get(s, "base_backups")));
    json_array_foreach(json_object_get(s, "base_backups"), i, b)
        printf("    %s  %s  start %s  end %s\n", json_string_value(json_object_get(b, "id")),
               json_string_value(json_object_get(b, "finished_at")),
               json_string_value(json_object_get(b, "start_lsn")),
               json_string_value(json_object_get(b, "end_lsn")));
    json_array_foreach(json_object_get(s, "gaps"), i, g)
        printf("  GAP: segments %s..%s are missing: %s (after = %s)\n",
               json_string_value(json_object_get(g, "missing_from")),
               json_string_value(json_object_get(g, "missing_to")),
               json_string_value(json_object_get(g, "breaks")),
               json_string_value(json_object_get(g, "after"))
                   ? json_string_value(json_object_get(g, "after"))
                   : "-");
}

int cmd_pitr(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    pargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    json_t *out = NULL;
    int rc = 0;

    if (!sub || !strcmp(sub, "help") || !strcmp(sub, "--help")) {
        puts(usage_text);
        return sub ? 0 : 2;
    }
    if (strcmp(sub, "enable") && strcmp(sub, "disable") && strcmp(sub, "status") &&
        strcmp(sub, "check") && strcmp(sub, "base-backup") && strcmp(sub, "push"))
        return cli_usage("unknown pitr command '%s'\n%s", sub, usage_text);
    if (parse(argc - 1, argv + 1, &a) != 0)
        return 2;
    if (a.npos != 1) {
        json_decref(a.settings);
        return cli_usage("%s", usage_text);
    }
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        json_decref(a.settings);
        return cli_fail(&err);
    }
    if (!strcmp(sub, "enable")) {
        rc = pitr_enable(&e.o, a.pos[0], a.settings, &out, &err);
        if (rc == 0) {
            fprintf(stderr, "WAL archiving is on for '%s' (archive_command: %s)\n", a.pos[0],
                    json_string_value(json_object_get(out, "archive_command")));
            json_decref(out);
            out = NULL;
            if (!a.no_base) {
                rc = pitr_base_backup(&e.o, a.pos[0], &out, &err);
                cli_progress_done(&e.prog);
                if (rc == 0)
                    fprintf(stderr, "first base backup %s taken\n",
                            json_string_value(json_object_get(out, "id")));
            }
        }
    } else if (!strcmp(sub, "disable")) {
        rc = pitr_disable(&e.o, a.pos[0], &err);
        if (rc == 0)
            fprintf(stderr, "WAL archiving is off for '%s'; the archive and base backups stay\n",
                    a.pos[0]);
    } else if (!strcmp(sub, "base-backup")) {
        rc = pitr_base_backup(&e.o, a.pos[0], &out, &err);
        cli_progress_done(&e.prog);
        if (rc == 0 && !a.json)
            printf("%s\n", json_string_value(json_object_get(out, "id")));
    } else if (!strcmp(sub, "push")) {
        unsigned n = 0;
        rc = pitr_push(&e.o, a.pos[0], &n, &err);
        if (rc == 0)
            fprintf(stderr, "%u WAL file%s moved into the repository\n", n, n == 1 ? "" : "s");
    } else { /* status, check */
        rc = pitr_status(&e.o, a.pos[0], &out, &err);
        if (rc == 0 && !a.json)
            print_status(out);
        if (rc == 0 && !strcmp(sub, "check")) {
            size_t ng = json_array_size(json_object_get(out, "gaps"));
            if (!json_is_true(json_object_get(out, "enabled"))) {
                sm_err_set(&err, SM_E_INVALID, "point-in-time recovery is not enabled for '%s'",
                           a.pos[0]);
                rc = -1;
            } else if (ng) {
                sm_err_set(&err, SM_E_CORRUPT, "the WAL archive of '%s' has %zu gap%s", a.pos[0],
                           ng, ng == 1 ? "" : "s");
                sm_err_hint(&err, "Take a base backup now (supamanager pitr base-backup %s) so "
                                  "that recovery to later times works again.",
                            a.pos[0]);
                rc = -1;
            } else if (!json_array_size(json_object_get(out, "base_backups"))) {
                sm_err_set(&err, SM_E_NOTFOUND, "'%s' has no base backup yet", a.pos[0]);
                rc = -1;
            } else if (!a.json) {
                printf("no gaps: every WAL file from the oldest base backup on is archived\n");
            }
        }
    }
    if (out && a.json)
        cli_print_json(out);
    json_decref(out);
    json_decref(a.settings);
    cli_env_close(&e);
    return rc < 0 ? cli_fail(&err) : 0;
}

int cmd_pitr_restore(int argc, char **argv)
{
    pargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    json_t *out = NULL;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    json_decref(a.settings);
    if (a.npos != 1)
        return cli_usage("%s", usage_text);
    if (!!a.t.time + !!a.t.lsn + !!a.t.xid + a.t.latest != 1)
        return cli_usage("give one of --target-time, --target-lsn, --target-xid or --latest");
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    if (!a.yes) {
        char q[512];
        int yes;
        snprintf(q, sizeof(q), "This stops the database of '%s' and replaces its whole cluster "
                               "with its state at %s. Continue?",
                 a.pos[0],
                 a.t.time ? a.t.time : a.t.lsn ? a.t.lsn : a.t.xid ? a.t.xid : "the latest point");
        yes = cli_confirm(q, "--yes", &err);
        if (yes <= 0) {
            cli_env_close(&e);
            if (yes == 0)
                fprintf(stderr, "nothing restored\n");
            return yes < 0 ? cli_fail(&err) : 1;
        }
    }
    rc = pitr_restore(&e.o, a.pos[0], &a.t, &out, &err);
    cli_progress_done(&e.prog);
    if (rc == 0) {
        if (a.json)
            cli_print_json(out);
        else
            fprintf(stderr,
                    "project '%s' restored to %s from base backup %s with %lld WAL files; now on "
                    "timeline %lld (%.1f s, the database was down for %.1f s)\n",
                    a.pos[0], json_string_value(json_object_get(out, "target")),
                    json_string_value(json_object_get(out, "base_backup")),
                    (long long)json_integer_value(json_object_get(out, "wal_files")),
                    (long long)json_integer_value(json_object_get(out, "timeline")),
                    json_number_value(json_object_get(out, "duration_s")),
                    json_number_value(json_object_get(out, "downtime_s")));
    }
    json_decref(out);
    cli_env_close(&e);
    if (rc < 0)
        return err.code == SM_E_INTERRUPTED ? 130 : cli_fail(&err);
    return 0;
}

/* Run by PostgreSQL as its archive_command: no catalog, no secret with
 * --spool; with --project, the file also goes into the repository. */
int cmd_wal_push(int argc, char **argv)
{
    pargs a;
    sm_err err = SM_ERR_INIT;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    json_decref(a.settings);
    if (a.npos != 1 || !!a.spool == !!a.project)
        return cli_usage("usage: supamanager wal-push --spool DIR PATH | --project P PATH");
    if (a.spool) {
        rc = pitr_wal_push_spool(a.spool, a.pos[0], &err);
    } else {
        cli_env e;
        json_t *doc = NULL;
        int r;
        if (cli_env_open(&e, 1, 1, &err) < 0) {
            cli_env_close(&e);
            return cli_fail(&err);
        }
        r = catalog_pitr_get(e.cat, a.project, &doc, &err);
        if (r == 1)
            sm_err_set(&err, SM_E_INVALID, "point-in-time recovery is not enabled for '%s'",
                       a.project);
        rc = r == 0 ? 0 : -1;
        if (rc == 0)
            rc = pitr_wal_push_spool(json_string_value(json_object_get(doc, "spool_dir")),
                                     a.pos[0], &err);
        if (rc == 0)
            rc = pitr_push(&e.o, a.project, NULL, &err);
        json_decref(doc);
        cli_env_close(&e);
    }
    return rc < 0 ? cli_fail(&err) : 0;
}

int cmd_wal_fetch(int argc, char **argv)
{
    pargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    json_decref(a.settings);
    if (a.npos != 2 || !a.project)
        return cli_usage("usage: supamanager wal-fetch --project P NAME DEST");
    if (cli_env_open(&e, 1, 1, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    rc = pitr_wal_fetch(&e.o, a.project, a.pos[0], a.pos[1], &err);
    cli_env_close(&e);
    return rc < 0 ? cli_fail(&err) : 0;
}
