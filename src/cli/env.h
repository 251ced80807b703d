/* The environment of CLI commands on projects (backup_cmd.c, pitr_cmd.c). */
#ifndef SM_CLI_ENV_H
#define SM_CLI_ENV_H

#include "cli/output.h"
#include "job/ops.h"

/* What a command on projects needs: the catalog (SUPAMANAGER_HOME), the
 * secret (needed = 1: failing without ENCRYPTION_SECRET), an ops context
 * that stops on SIGINT/SIGTERM and draws a progress bar (unless quiet). */
typedef struct cli_env {
    catalog *cat;
    char *secret;
    ops_ctx o;
    cli_progress prog;
} cli_env;

int cli_env_open(cli_env *e, int needed, int quiet, sm_err *err);
/* Also fine after a failed open. */
void cli_env_close(cli_env *e);

#endif
