/* `supamanager project|org|member ...`: the registry of projects and the
 * organisations that own them. */
#include "cli/commands.h"
#include "cli/output.h"

#include "catalog/catalog.h"
#include "core/fsutil.h"
#include "core/mem.h"
#include "core/util.h"
#include "job/ops.h"
#include "store/s3.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    P_NAME = 2000,
    P_DB_URL,
    P_STORAGE,
    P_CONFIG_DIR,
    P_CONFIG_FILE,
    P_PGSODIUM,
    P_ORG,
    P_OWNER,
    P_PAUSE,
    P_RESUME,
    P_STORE,
    P_NO_CHECK,
    P_JSON,
    P_PURGE,
    P_YES,
    P_ROLE,
    P_CLEAR_CONFIG_FILES,
    P_S3_ENDPOINT,
    P_S3_REGION,
    P_S3_CLASS,
};

static const struct option project_opts[] = {
    {"name", required_argument, NULL, P_NAME},
    {"db-url", required_argument, NULL, P_DB_URL},
    {"storage-dir", required_argument, NULL, P_STORAGE},
    {"config-dir", required_argument, NULL, P_CONFIG_DIR},
    {"config-file", required_argument, NULL, P_CONFIG_FILE},
    {"clear-config-files", no_argument, NULL, P_CLEAR_CONFIG_FILES},
    {"pgsodium-key", required_argument, NULL, P_PGSODIUM},
    {"org", required_argument, NULL, P_ORG},
    {"owner", required_argument, NULL, P_OWNER},
    {"pause-cmd", required_argument, NULL, P_PAUSE},
    {"resume-cmd", required_argument, NULL, P_RESUME},
    {"store", required_argument, NULL, P_STORE},
    {"s3-endpoint", required_argument, NULL, P_S3_ENDPOINT},
    {"s3-region", required_argument, NULL, P_S3_REGION},
    {"s3-storage-class", required_argument, NULL, P_S3_CLASS},
    {"no-check", no_argument, NULL, P_NO_CHECK},
    {"json", no_argument, NULL, P_JSON},
    {"purge", no_argument, NULL, P_PURGE},
    {"yes", no_argument, NULL, P_YES},
    {NULL, 0, NULL, 0},
};

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v && *v ? sm_xstrdup(v) : NULL;
}

typedef struct pflags {
    int no_check, json, purge, yes;
    const char *s3_endpoint, *s3_region, *s3_class;
} pflags;

/* Applies project options to p; returns -1 on a usage error (printed). */
static int parse_project_opts(int argc, char **argv, project *p, pflags *f)
{
    int opt;

    while ((opt = getopt_long(argc, argv, "", project_opts, NULL)) != -1) {
        switch (opt) {
        case P_NAME: set_str(&p->name, optarg); break;
        case P_DB_URL: set_str(&p->db_url, optarg); break;
        case P_STORAGE: set_str(&p->storage_dir, optarg); break;
        case P_CONFIG_DIR: set_str(&p->config_dir, optarg); break;
        case P_CONFIG_FILE: json_array_append_new(p->config_files, json_string(optarg)); break;
        case P_CLEAR_CONFIG_FILES: json_array_clear(p->config_files); break;
        case P_PGSODIUM: set_str(&p->pgsodium_key, optarg); break;
        case P_ORG: set_str(&p->org_id, optarg); break;
        case P_OWNER: set_str(&p->owner, optarg); break;
        case P_PAUSE: set_str(&p->pause_cmd, optarg); break;
        case P_RESUME: set_str(&p->resume_cmd, optarg); break;
        case P_STORE: set_str(&p->store, optarg); break;
        case P_NO_CHECK: f->no_check = 1; break;
        case P_JSON: f->json = 1; break;
        case P_PURGE: f->purge = 1; break;
        case P_YES: f->yes = 1; break;
        case P_S3_ENDPOINT: f->s3_endpoint = optarg; break;
        case P_S3_REGION: f->s3_region = optarg; break;
        case P_S3_CLASS: f->s3_class = optarg; break;
        default: cli_usage("unknown option for `project`"); return -1;
        }
    }
    if (p->store && !strncmp(p->store, "s3://", 5)) { /* fold the S3 flags into the location */
        sm_err err = SM_ERR_INIT;
        char *loc = NULL;
        if (s3_location_build(&loc, p->store, f->s3_endpoint, f->s3_region, f->s3_class,
                              &err) < 0) {
            cli_fail(&err);
            return -1;
        }
        free(p->store);
        p->store = loc;
    } else if (f->s3_endpoint || f->s3_region || f->s3_class) {
        cli_usage("--s3-endpoint, --s3-region and --s3-storage-class need --store s3://BUCKET/PREFIX");
        return -1;
    } else if (p->store && strstr(p->store, "://")) {
        cli_usage("--store must be s3://BUCKET[/PREFIX] or a directory, not '%s'", p->store);
        return -1;
    } else if (p->store && p->store[0] != '/') { /* a directory, as an absolute path */
        char cwd[4096];
        if (!getcwd(cwd, sizeof(cwd))) {
            cli_usage("cannot resolve --store '%s': give an absolute path", p->store);
            return -1;
        }
        char *abs = sm_path_join(cwd, p->store);
        free(p->store);
        p->store = abs;
    }
    if (p->config_dir && json_array_size(p->config_files) > 0) {
        cli_usage("--config-dir and --config-file exclude each other");
        return -1;
    }
    return 0;
}

static int open_cat(catalog **cat, sm_err *err)
{
    return catalog_open(cat, cli_home(), err);
}

static void print_project(const project *p)
{
    char *cfg = json_dumps(p->config_files, JSON_COMPACT);
    json_t *j = project_json(p, 0);
    printf("id:           %s\n", p->id);
    printf("name:         %s\n", p->name);
    printf("database:     %s\n", json_string_value(json_object_get(j, "db_url")));
    printf("storage:      %s\n", p->storage_dir);
    if (p->config_dir)
        printf("config dir:   %s\n", p->config_dir);
    if (json_array_size(p->config_files))
        printf("config files: %s\n", cfg);
    if (p->pgsodium_key)
        printf("pgsodium key: %s\n", p->pgsodium_key);
    if (p->org_id)
        printf("organization: %s\n", p->org_id);
    if (p->owner)
        printf("owner:        %s\n", p->owner);
    if (p->pause_cmd)
        printf("pause:        %s\n", p->pause_cmd);
    if (p->resume_cmd)
        printf("resume:       %s\n", p->resume_cmd);
    if (p->store)
        printf("store:        %s\n", p->store);
    printf("created:      %s\n", p->created_at);
    free(cfg);
    json_decref(j);
}

static int project_add(int argc, char **argv)
{
    project *p = project_new();
    pflags f = {0};
    sm_err err = SM_ERR_INIT;
    catalog *cat = NULL;
    ops_ctx o;
    int rc = 1;

    if (argc < 2 || argv[1][0] == '-') {
        project_free(p);
        return cli_usage("usage: supamanager project add ID --name N --db-url URL --storage-dir "
                         "DIR [--config-dir DIR | --config-file F ...] [--pgsodium-key F] "
                         "[--org ORG] [--owner USER] [--pause-cmd CMD] [--resume-cmd CMD] [--store DIR|s3://BUCKET/PREFIX "
                         "[--s3-endpoint URL] [--s3-region R] [--s3-storage-class C]]");
    }
    p->id = sm_xstrdup(argv[1]);
    optind = 2;
    if (parse_project_opts(argc, argv, p, &f) < 0) {
        project_free(p);
        return 2;
    }
    if (optind < argc) {
        project_free(p);
        return cli_usage("unexpected argument '%s'", argv[optind]);
    }
    if (open_cat(&cat, &err) < 0)
        goto fail;
    ops_ctx_init(&o, cat, NULL);
    if (ops_project_add(&o, p, !f.no_check, &err) < 0)
        goto fail;
    fprintf(stderr, "project '%s' registered\n", p->id);
    /* its store may hold the backups of an earlier installation (a new
     * server after a loss): list them at once */
    {
        char *secret = cli_secret(NULL, "ENCRYPTION_SECRET", &err);
        json_t *rep = NULL;
        int ad;
        o.secret = secret;
        ad = secret ? ops_project_adopt(&o, p->id, &rep, &err) : 1;
        if (ad == 0 && json_integer_value(json_object_get(rep, "found")))
            fprintf(stderr, "its repository already holds %lld backups: %zu added to the catalog\n",
                    (long long)json_integer_value(json_object_get(rep, "found")),
                    json_array_size(json_object_get(rep, "added")));
        else if (ad < 0)
            fprintf(stderr, "warning: cannot read the backups already in its repository: %s "
                            "(run `supamanager backup sync %s` once this is fixed)\n",
                    err.msg, p->id);
        o.secret = NULL;
        free(secret);
        json_decref(rep);
        sm_err_clear(&err);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    catalog_close(cat);
    project_free(p);
    return rc;
}

static int project_list(int argc, char **argv)
{
    pflags f = {0};
    project *dummy = project_new();
    project **v = NULL;
    size_t n = 0;
    sm_err err = SM_ERR_INIT;
    catalog *cat = NULL;
    int rc = 1;

    optind = 1;
    if (parse_project_opts(argc, argv, dummy, &f) < 0) {
        project_free(dummy);
        return 2;
    }
    project_free(dummy);
    if (open_cat(&cat, &err) < 0 || catalog_project_list(cat, &v, &n, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (f.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, project_json(v[i], 0));
        cli_print_json(arr);
        json_decref(arr);
    } else if (n == 0) {
        fprintf(stderr, "no projects yet: register one with `supamanager project add`\n");
    } else {
        printf("%-20s  %-24s  %s\n", "ID", "NAME", "STORAGE");
        for (size_t i = 0; i < n; i++)
            printf("%-20s  %-24s  %s\n", v[i]->id, v[i]->name, v[i]->storage_dir);
    }
    rc = 0;
out:
    project_list_free(v, n);
    catalog_close(cat);
    return rc;
}

static int project_show_edit_remove(int argc, char **argv, const char *sub)
{
    project *p = NULL;
    pflags f = {0};
    sm_err err = SM_ERR_INIT;
    catalog *cat = NULL;
    ops_ctx o;
    int rc = 1;

    if (argc < 2 || argv[1][0] == '-')
        return cli_usage("`project %s` needs a project id", sub);
    if (open_cat(&cat, &err) < 0 || catalog_project_get(cat, argv[1], &p, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    optind = 2;
    if (parse_project_opts(argc, argv, p, &f) < 0) {
        rc = 2;
        goto out;
    }
    ops_ctx_init(&o, cat, NULL);
    if (!strcmp(sub, "show")) {
        if (f.json) {
            json_t *j = project_json(p, 0);
            cli_print_json(j);
            json_decref(j);
        } else {
            print_project(p);
        }
    } else if (!strcmp(sub, "edit")) {
        if (ops_store_conflict(&o, p, &err) < 0 || catalog_project_update(cat, p, &err) < 0) {
            rc = cli_fail(&err);
            goto out;
        }
        fprintf(stderr, "project '%s' updated\n", p->id);
    } else {
        if (!f.yes) {
            char q[256];
            int yes;
            snprintf(q, sizeof(q), "Remove project '%s' from the catalog%s?", p->id,
                     f.purge ? " and delete all its backups" : "");
            yes = cli_confirm(q, "--yes", &err);
            if (yes < 0) {
                rc = cli_fail(&err);
                goto out;
            }
            if (!yes) {
                fprintf(stderr, "nothing removed\n");
                rc = 1;
                goto out;
            }
        }
        {
            /* with the secret, a purge also finds and deletes the repository's
             * local cache of trees */
            char *secret = f.purge ? cli_secret(NULL, "ENCRYPTION_SECRET", &err) : NULL;
            int r2;
            sm_err_clear(&err);
            o.secret = secret;
            r2 = ops_project_remove(&o, p->id, f.purge, &err);
            o.secret = NULL;
            free(secret);
            if (r2 < 0) {
                rc = cli_fail(&err);
                goto out;
            }
        }
        fprintf(stderr, "project '%s' removed%s\n", p->id,
                f.purge ? " with its backups" : " (its backups stay in the repository)");
    }
    rc = 0;
out:
    project_free(p);
    catalog_close(cat);
    return rc;
}

int cmd_project(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("`project` needs add, list, show, edit or remove");
    if (!strcmp(argv[1], "add"))
        return project_add(argc - 1, argv + 1);
    if (!strcmp(argv[1], "list"))
        return project_list(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show") || !strcmp(argv[1], "edit") || !strcmp(argv[1], "remove"))
        return project_show_edit_remove(argc - 1, argv + 1, argv[1]);
    return cli_usage("unknown command `project %s`", argv[1]);
}

/* ---- organisations ---- */

int cmd_org(int argc, char **argv)
{
    sm_err err = SM_ERR_INIT;
    catalog *cat = NULL;
    int rc = 1;

    if (argc < 2)
        return cli_usage("`org` needs add or list");
    if (open_cat(&cat, &err) < 0)
        return cli_fail(&err);
    if (!strcmp(argv[1], "add")) {
        const char *name = NULL;
        static const struct option o[] = {{"name", required_argument, NULL, P_NAME},
                                          {NULL, 0, NULL, 0}};
        int opt;
        if (argc < 3 || argv[2][0] == '-') {
            catalog_close(cat);
            return cli_usage("usage: supamanager org add ID --name NAME");
        }
        optind = 3;
        while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1)
            if (opt == P_NAME)
                name = optarg;
        if (catalog_org_add(cat, argv[2], name ? name : argv[2], &err) < 0)
            rc = cli_fail(&err);
        else
            rc = 0;
    } else if (!strcmp(argv[1], "list")) {
        json_t *arr = NULL;
        if (catalog_org_list(cat, &arr, &err) < 0) {
            rc = cli_fail(&err);
        } else {
            cli_print_json(arr);
            rc = 0;
        }
        json_decref(arr);
    } else {
        rc = cli_usage("unknown command `org %s`", argv[1]);
    }
    catalog_close(cat);
    return rc;
}

int cmd_member(int argc, char **argv)
{
    sm_err err = SM_ERR_INIT;
    catalog *cat = NULL;
    const char *role = NULL;
    static const struct option o[] = {{"role", required_argument, NULL, P_ROLE},
                                      {NULL, 0, NULL, 0}};
    int opt, rc;

    if (argc < 4 || strcmp(argv[1], "add") != 0)
        return cli_usage("usage: supamanager member add ORG USER-ID --role admin|member");
    optind = 4;
    while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1)
        if (opt == P_ROLE)
            role = optarg;
    if (open_cat(&cat, &err) < 0)
        return cli_fail(&err);
    rc = catalog_member_add(cat, argv[2], argv[3], role ? role : "member", &err) < 0
             ? cli_fail(&err)
             : 0;
    catalog_close(cat);
    return rc;
}
