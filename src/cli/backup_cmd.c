/* `supamanager backup|restore|import ...`: project backups from the command
 * line. Argument parsing and output only; the work is in src/job/ops.c. */
#include "cli/commands.h"
#include "cli/env.h"
#include "cli/output.h"

#include "catalog/catalog.h"
#include "core/mem.h"
#include "core/util.h"
#include "job/ops.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    B_TYPE = 3000,
    B_JSON,
    B_YES,
    B_RESTORE_TEST,
    B_OUT,
    B_COMPRESSION,
    B_ENCRYPT,
    B_PASSFILE,
    B_PARTS,
    B_TO_PROJECT,
    B_UNDO,
    B_NO_SAFETY,
    B_ID,
    B_NAME,
    B_DB_URL,
    B_STORAGE,
    B_CONFIG_DIR,
};

static const struct option backup_opts[] = {
    {"type", required_argument, NULL, B_TYPE},
    {"json", no_argument, NULL, B_JSON},
    {"yes", no_argument, NULL, B_YES},
    {"restore-test", no_argument, NULL, B_RESTORE_TEST},
    {"output", required_argument, NULL, B_OUT},
    {"compression", required_argument, NULL, B_COMPRESSION},
    {"encrypt", no_argument, NULL, B_ENCRYPT},
    {"passphrase-file", required_argument, NULL, B_PASSFILE},
    {"parts", required_argument, NULL, B_PARTS},
    {"to-project", required_argument, NULL, B_TO_PROJECT},
    {"undo", no_argument, NULL, B_UNDO},
    {"no-safety-backup", no_argument, NULL, B_NO_SAFETY},
    {"id", required_argument, NULL, B_ID},
    {"name", required_argument, NULL, B_NAME},
    {"db-url", required_argument, NULL, B_DB_URL},
    {"storage-dir", required_argument, NULL, B_STORAGE},
    {"config-dir", required_argument, NULL, B_CONFIG_DIR},
    {NULL, 0, NULL, 0},
};

typedef struct bargs {
    const char *type, *out, *compression, *passfile, *parts, *to_project;
    const char *id, *name, *db_url, *storage, *config_dir;
    int json, yes, restore_test, encrypt, undo, no_safety;
    char **pos; /* positional arguments */
    int npos;
} bargs;

static int parse(int argc, char **argv, bargs *a)
{
    int opt;

    memset(a, 0, sizeof(*a));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:", backup_opts, NULL)) != -1) {
        switch (opt) {
        case B_TYPE: a->type = optarg; break;
        case B_JSON: a->json = 1; break;
        case B_YES: a->yes = 1; break;
        case B_RESTORE_TEST: a->restore_test = 1; break;
        case 'o':
        case B_OUT: a->out = optarg; break;
        case B_COMPRESSION: a->compression = optarg; break;
        case B_ENCRYPT: a->encrypt = 1; break;
        case B_PASSFILE: a->passfile = optarg; break;
        case B_PARTS: a->parts = optarg; break;
        case B_TO_PROJECT: a->to_project = optarg; break;
        case B_UNDO: a->undo = 1; break;
        case B_NO_SAFETY: a->no_safety = 1; break;
        case B_ID: a->id = optarg; break;
        case B_NAME: a->name = optarg; break;
        case B_DB_URL: a->db_url = optarg; break;
        case B_STORAGE: a->storage = optarg; break;
        case B_CONFIG_DIR: a->config_dir = optarg; break;
        default: return cli_usage("unknown option");
        }
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return 0;
}

static int finish(cli_env *e, int rc, sm_err *err)
{
    cli_progress_done(&e->prog);
    if (rc < 0) {
        int code = cli_fail(err);
        return err->code == SM_E_INTERRUPTED ? 130 : code;
    }
    return 0;
}

/* ---- backup create / list / show / delete / verify / export ---- */

static int backup_create(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    ops_backup_opts bo;
    char *id = NULL;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 1)
        return cli_usage("usage: supamanager backup create PROJECT [--type "
                         "full|database|storage|incremental] [--json]");
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    memset(&bo, 0, sizeof(bo));
    bo.type = a.type ? a.type : "full";
    rc = ops_backup_create(&e.o, a.pos[0], &bo, &id, &err);
    cli_progress_done(&e.prog);
    if (rc == 0) {
        if (a.json) {
            backup_rec *b = NULL;
            if (catalog_backup_get(e.cat, id, &b, &err) == 0) {
                json_t *j = backup_rec_json(b);
                cli_print_json(j);
                json_decref(j);
            }
            backup_rec_free(b);
        } else {
            printf("%s\n", id);
        }
    } else if (id && a.json) {
        json_t *j = json_pack("{s:s,s:s,s:s}", "backup_id", id, "status", "FAILED", "error",
                              err.msg);
        cli_print_json(j);
        json_decref(j);
    }
    rc = finish(&e, rc, &err);
    free(id);
    cli_env_close(&e);
    return rc;
}

static int backup_list(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    backup_rec **v = NULL;
    size_t n = 0;
    project *p = NULL;
    uint64_t total = 0;
    unsigned completed = 0;
    int rc = 1;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 1)
        return cli_usage("usage: supamanager backup list PROJECT [--json]");
    if (cli_env_open(&e, 0, 1, &err) < 0 || catalog_project_get(e.cat, a.pos[0], &p, &err) < 0 ||
        catalog_backup_list(e.cat, a.pos[0], NULL, &v, &n, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v[i]->status, "COMPLETED")) {
            total += v[i]->size;
            completed++;
        }
    }
    if (a.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, backup_rec_json(v[i]));
        json_t *o = json_pack("{s:s,s:o,s:{s:I,s:i,s:I}}", "project_id", p->id, "backups", arr,
                              "totals", "count", (json_int_t)n, "completed", (int)completed,
                              "size", (json_int_t)total);
        cli_print_json(o);
        json_decref(o);
    } else {
        char hs[32];
        printf("Backups - Project: %s (%s)\n", p->name, p->id);
        printf("%-40s  %-12s  %-11s  %-20s  %10s\n", "ID", "TYPE", "STATUS", "CREATED (UTC)",
               "SIZE");
        for (size_t i = 0; i < n; i++) {
            sm_human_bytes(hs, sizeof(hs), v[i]->size);
            printf("%-40s  %-12s  %-11s  %-20s  %10s%s\n", v[i]->id, v[i]->type, v[i]->status,
                   v[i]->created_at, hs,
                   v[i]->kind && strcmp(v[i]->kind, "manual") ? (!strcmp(v[i]->kind, "safety")
                                                                     ? "  (safety)"
                                                                     : !strcmp(v[i]->kind,
                                                                               "imported")
                                                                         ? "  (imported)"
                                                                         : "  (scheduled)")
                                                              : "");
        }
        sm_human_bytes(hs, sizeof(hs), total);
        printf("Total: %zu backups (%u completed) | %s\n", n, completed, hs);
    }
    rc = 0;
out:
    backup_list_free(v, n);
    project_free(p);
    cli_env_close(&e);
    return rc;
}

static int backup_show(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    backup_rec *b = NULL;
    int rc = 1;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 1)
        return cli_usage("usage: supamanager backup show BACKUP [--json]");
    if (cli_env_open(&e, 0, 1, &err) < 0 || catalog_backup_get(e.cat, a.pos[0], &b, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (a.json) {
        json_t *j = backup_rec_json(b);
        cli_print_json(j);
        json_decref(j);
    } else {
        json_t *parts = json_object_get(b->meta, "parts"), *v;
        json_t *pgm = json_object_get(b->meta, "postgres");
        const char *k;
        char hs[32];
        sm_human_bytes(hs, sizeof(hs), b->size);
        printf("backup:    %s\nproject:   %s\ntype:      %s\nstatus:    %s\nkind:      %s\n",
               b->id, b->project_id, b->type, b->status, b->kind ? b->kind : "manual");
        printf("created:   %s\nfinished:  %s\nsize:      %s\nduration:  %.1f s\n", b->created_at,
               b->finished_at, hs, b->duration_s);
        if (b->parent_id)
            printf("parent:    %s\n", b->parent_id);
        if (b->error)
            printf("error:     %s\n", b->error);
        if (pgm)
            printf("postgres:  %s, database '%s'\n",
                   json_string_value(json_object_get(pgm, "server_version")),
                   json_string_value(json_object_get(pgm, "database")));
        json_object_foreach(parts, k, v)
        {
            sm_human_bytes(hs, sizeof(hs), (uint64_t)json_integer_value(json_object_get(v, "size")));
            printf("part %-9s %10s  %s\n", k, hs, json_string_value(json_object_get(v, "sha256")));
        }
        if (json_object_size(json_object_get(pgm, "row_counts"))) {
            printf("rows:\n");
            json_object_foreach(json_object_get(pgm, "row_counts"), k, v)
            printf("  %-40s %lld\n", k, (long long)json_integer_value(v));
        }
    }
    rc = 0;
out:
    backup_rec_free(b);
    cli_env_close(&e);
    return rc;
}

static int backup_delete(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 1)
        return cli_usage("usage: supamanager backup delete BACKUP [--yes]");
    if (cli_env_open(&e, 1, 1, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    if (!a.yes) {
        char q[256];
        int yes;
        snprintf(q, sizeof(q), "Delete backup '%s' and free its space?", a.pos[0]);
        yes = cli_confirm(q, "--yes", &err);
        if (yes <= 0) {
            cli_env_close(&e);
            return yes < 0 ? cli_fail(&err) : 1;
        }
    }
    rc = ops_backup_delete(&e.o, a.pos[0], &err);
    if (rc == 0)
        fprintf(stderr, "backup '%s' deleted\n", a.pos[0]);
    rc = finish(&e, rc, &err);
    cli_env_close(&e);
    return rc;
}

static int backup_verify(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    json_t *report = NULL;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 1)
        return cli_usage("usage: supamanager backup verify BACKUP [--restore-test] [--json]");
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    rc = ops_backup_verify(&e.o, a.pos[0], a.restore_test, &report, &err);
    cli_progress_done(&e.prog);
    if (a.json) {
        cli_print_json(report);
    } else {
        json_t *pr;
        size_t i;
        json_array_foreach(json_object_get(report, "problems"), i, pr)
        fprintf(stderr, "damaged: %s\n", json_string_value(pr));
        if (rc == 0)
            fprintf(stderr, "backup '%s' verified: %lld chunks checked%s\n", a.pos[0],
                    (long long)json_integer_value(json_object_get(report, "chunks_checked")),
                    a.restore_test ? ", test restore matched every table's row count" : "");
    }
    json_decref(report);
    rc = finish(&e, rc, &err);
    cli_env_close(&e);
    return rc;
}

static char *read_passphrase(const char *file, sm_err *err)
{
    char *p = cli_secret(file, "SUPAMANAGER_EXPORT_PASSPHRASE", err);
    if (!p && err->code == SM_OK)
        p = cli_secret(NULL, "ENCRYPTION_SECRET", err);
    if (!p && err->code == SM_OK) {
        sm_err_set(err, SM_E_USAGE, "no passphrase for the encrypted archive");
        sm_err_hint(err, "Pass --passphrase-file FILE or set SUPAMANAGER_EXPORT_PASSPHRASE.");
    }
    return p;
}

static int backup_export(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    archive_export_opts ao;
    char *path = NULL, *pass = NULL;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 2)
        return cli_usage("usage: supamanager backup export PROJECT BACKUP [-o FILE] "
                         "[--compression gzip|zstd|none] [--encrypt [--passphrase-file F]]");
    memset(&ao, 0, sizeof(ao));
    if (a.compression && archive_compression_parse(a.compression, &ao.compression) < 0)
        return cli_usage("unknown compression '%s' (gzip, zstd or none)", a.compression);
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    if (a.encrypt) {
        pass = read_passphrase(a.passfile, &err);
        if (!pass) {
            cli_env_close(&e);
            return cli_fail(&err);
        }
        ao.passphrase = pass;
    }
    {
        backup_rec *b = NULL;
        if (catalog_backup_get(e.cat, a.pos[1], &b, &err) == 0 &&
            strcmp(b->project_id, a.pos[0]) != 0) {
            sm_err_set(&err, SM_E_NOTFOUND, "backup '%s' is not a backup of project '%s'",
                       a.pos[1], a.pos[0]);
            backup_rec_free(b);
            rc = finish(&e, -1, &err);
            cli_env_close(&e);
            free(pass);
            return rc;
        }
        backup_rec_free(b);
    }
    rc = ops_export(&e.o, a.pos[1], a.out, &ao, &path, &err);
    cli_progress_done(&e.prog);
    if (rc == 0) {
        printf("%s\n", path);
        if (pass)
            fprintf(stderr, "encrypted with OpenPGP (AES-256); decrypt with: gpg --decrypt -o "
                            "backup.tar.gz '%s'\n",
                    path);
    }
    rc = finish(&e, rc, &err);
    free(path);
    if (pass) {
        sm_wipe(pass, strlen(pass));
        free(pass);
    }
    cli_env_close(&e);
    return rc;
}

static int backup_sync(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    json_t *report = NULL;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 1)
        return cli_usage("usage: supamanager backup sync PROJECT [--json]");
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    rc = ops_backup_sync(&e.o, a.pos[0], &report, &err);
    if (rc == 0 && a.json) {
        cli_print_json(report);
    } else if (rc == 0) {
        size_t i;
        json_t *sk;
        json_array_foreach(json_object_get(report, "skipped"), i, sk)
        fprintf(stderr, "skipped %s: %s\n", json_string_value(json_object_get(sk, "id")),
                json_string_value(json_object_get(sk, "reason")));
        fprintf(stderr,
                "project '%s': %lld backups in the repository; %zu added to the catalog, %zu "
                "marked completed\n",
                a.pos[0], (long long)json_integer_value(json_object_get(report, "found")),
                json_array_size(json_object_get(report, "added")),
                json_array_size(json_object_get(report, "repaired")));
    }
    json_decref(report);
    rc = finish(&e, rc, &err);
    cli_env_close(&e);
    return rc;
}

int cmd_backup(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("`backup` needs create, list, show, delete, verify, export or sync");
    if (!strcmp(argv[1], "sync"))
        return backup_sync(argc - 1, argv + 1);
    if (!strcmp(argv[1], "create"))
        return backup_create(argc - 1, argv + 1);
    if (!strcmp(argv[1], "list"))
        return backup_list(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show"))
        return backup_show(argc - 1, argv + 1);
    if (!strcmp(argv[1], "delete"))
        return backup_delete(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify"))
        return backup_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export"))
        return backup_export(argc - 1, argv + 1);
    return cli_usage("unknown command `backup %s`", argv[1]);
}

/* ---- restore ---- */

static int parse_parts(const char *s, ops_restore_opts *ro)
{
    char *copy = sm_xstrdup(s), *save = NULL;
    int rc = 0;

    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "database"))
            ro->database = 1;
        else if (!strcmp(t, "storage"))
            ro->storage = 1;
        else if (!strcmp(t, "config"))
            ro->config = 1;
        else
            rc = -1;
    }
    free(copy);
    return rc;
}

int cmd_restore(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    ops_restore_opts ro;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    memset(&ro, 0, sizeof(ro));
    if (a.undo ? a.npos != 1 : a.npos != 2)
        return cli_usage("usage: supamanager restore PROJECT BACKUP [--parts "
                         "database,storage,config] [--to-project P] [--yes] | restore --undo "
                         "PROJECT [--yes]");
    if (a.parts && parse_parts(a.parts, &ro) < 0)
        return cli_usage("--parts takes a list of database, storage and config");
    ro.to_project = a.to_project;
    ro.no_safety_backup = a.no_safety;
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    if (!a.yes) {
        char q[512];
        int yes;
        if (a.undo)
            snprintf(q, sizeof(q), "This puts back project '%s' as it was before its last "
                                   "restore, overwriting its current data. Continue?",
                     a.pos[0]);
        else
            snprintf(q, sizeof(q), "This will overwrite current data of project '%s' with "
                                   "backup '%s'. Continue?",
                     a.to_project ? a.to_project : a.pos[0], a.pos[1]);
        yes = cli_confirm(q, "--yes", &err);
        if (yes <= 0) {
            cli_env_close(&e);
            if (yes == 0)
                fprintf(stderr, "nothing restored\n");
            return yes < 0 ? cli_fail(&err) : 1;
        }
    }
    rc = a.undo ? ops_restore_undo(&e.o, a.pos[0], &err)
                : ops_restore(&e.o, a.pos[0], a.pos[1], &ro, &err);
    cli_progress_done(&e.prog);
    if (rc == 0)
        fprintf(stderr, "project '%s' restored%s\n", a.to_project ? a.to_project : a.pos[0],
                a.undo ? " to its state before the last restore" : "");
    rc = finish(&e, rc, &err);
    cli_env_close(&e);
    return rc;
}

/* ---- import ---- */

int cmd_import(int argc, char **argv)
{
    bargs a;
    cli_env e;
    sm_err err = SM_ERR_INIT;
    project *p = NULL;
    char *pass = NULL, *id = NULL;
    int rc;

    if (parse(argc, argv, &a) != 0)
        return 2;
    if (a.npos != 1 || !a.id || !a.name || !a.db_url || !a.storage)
        return cli_usage("usage: supamanager import FILE --id ID --name NAME --db-url URL "
                         "--storage-dir DIR [--config-dir DIR] [--passphrase-file F]");
    if (cli_env_open(&e, 1, a.json, &err) < 0) {
        cli_env_close(&e);
        return cli_fail(&err);
    }
    if (a.passfile) {
        pass = cli_secret(a.passfile, "SUPAMANAGER_EXPORT_PASSPHRASE", &err);
        if (!pass) {
            cli_env_close(&e);
            return cli_fail(&err);
        }
    } else {
        pass = cli_secret(NULL, "SUPAMANAGER_EXPORT_PASSPHRASE", &err);
    }
    p = project_new();
    p->id = sm_xstrdup(a.id);
    p->name = sm_xstrdup(a.name);
    p->db_url = sm_xstrdup(a.db_url);
    p->storage_dir = sm_xstrdup(a.storage);
    if (a.config_dir)
        p->config_dir = sm_xstrdup(a.config_dir);
    rc = ops_import(&e.o, a.pos[0], p, pass, &id, &err);
    cli_progress_done(&e.prog);
    if (rc == 0) {
        printf("%s\n", id);
        fprintf(stderr, "project '%s' created from '%s'\n", p->id, a.pos[0]);
    }
    rc = finish(&e, rc, &err);
    project_free(p);
    free(id);
    if (pass) {
        sm_wipe(pass, strlen(pass));
        free(pass);
    }
    cli_env_close(&e);
    return rc;
}
