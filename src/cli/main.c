/* supamanager: backups and restores for self-hosted Supabase projects. */
#include "cli/commands.h"
#include "cli/output.h"
#include "service/service.h"

#include "core/log.h"

#include <curl/curl.h>
#include <libxml/parser.h>

#include <stdio.h>
#include <string.h>

#ifndef SM_VERSION
#define SM_VERSION "0.1.0"
#endif

static void help(void)
{
    fputs("usage: supamanager <command> [options]\n"
          "\n"
          "  project  add | list | show | edit | remove    the Supabase projects backed up\n"
          "  backup   create | list | show | delete | verify | export | sync\n"
          "  restore  PROJECT BACKUP [--parts database,storage,config] [--to-project P] [--yes]\n"
          "           restore --undo PROJECT: put back the state before the last restore\n"
          "           restore PROJECT --target-time T | --target-lsn L | --latest: point in time\n"
          "  pitr     enable | disable | status | check | base-backup | push: continuous WAL\n"
          "           archiving and point-in-time recovery (`supamanager pitr help`)\n"
          "  wal-push, wal-fetch  PostgreSQL's archive_command / a WAL file by hand\n"
          "  import   FILE --id ID --name N --db-url URL --storage-dir DIR: a project from an\n"
          "           exported archive\n"
          "  schedule set | show | disable: a project's automatic backups (UTC times)\n"
          "  org      add | list;  member add ORG USER --role admin|member\n"
          "  serve    the HTTP API, job workers and scheduler (`supamanager serve --help`)\n"
          "  notify   test [--config FILE]: send a test e-mail and webhook now\n"
          "  store    check PROJECT|LOCATION: write, read, list and delete a probe object\n"
          "  repo     the deduplicating, encrypted repository (init, backup, restore, ls,\n"
          "           verify, prune, stats, unlock, key); `supamanager repo help`\n"
          "  demo     run the main job on embedded defaults: create a repository, back up a\n"
          "           generated sample tree, verify, restore, compare, print a summary\n"
          "  version  print the version\n"
          "\n"
          "Environment: ENCRYPTION_SECRET (encrypts every backup), SUPAMANAGER_HOME (default\n"
          "/var/lib/supamanager), SUPAMANAGER_REPO, SUPAMANAGER_LOG=debug|info|warn|error.\n",
          stdout);
}

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        help();
        return 2;
    }
    cmd = argv[1];
    /* the libraries' global state, once (S3 store, notifications) */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        help();
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("supamanager %s\n", SM_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "repo"))
        return cmd_repo(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo"))
        return cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "project"))
        return cmd_project(argc - 1, argv + 1);
    if (!strcmp(cmd, "org"))
        return cmd_org(argc - 1, argv + 1);
    if (!strcmp(cmd, "member"))
        return cmd_member(argc - 1, argv + 1);
    if (!strcmp(cmd, "backup"))
        return cmd_backup(argc - 1, argv + 1);
    if (!strcmp(cmd, "restore")) {
        for (int i = 2; i < argc; i++)
            if (!strncmp(argv[i], "--target-", 9) || !strcmp(argv[i], "--latest"))
                return cmd_pitr_restore(argc - 1, argv + 1);
        return cmd_restore(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "pitr"))
        return cmd_pitr(argc - 1, argv + 1);
    if (!strcmp(cmd, "wal-push"))
        return cmd_wal_push(argc - 1, argv + 1);
    if (!strcmp(cmd, "wal-fetch"))
        return cmd_wal_fetch(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "notify"))
        return cmd_notify(argc - 1, argv + 1);
    if (!strcmp(cmd, "schedule"))
        return cmd_schedule(argc - 1, argv + 1);
    if (!strcmp(cmd, "store"))
        return cmd_store(argc - 1, argv + 1);
    return cli_usage("unknown command '%s'", cmd);
}
