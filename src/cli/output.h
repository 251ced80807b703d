/* Terminal output for the CLI: errors, progress bars, JSON. Only the CLI
 * layer writes to stdout. */
#ifndef SM_CLI_OUTPUT_H
#define SM_CLI_OUTPUT_H

#include "core/err.h"
#include "repo/repo.h"

#include <jansson.h>
#include <signal.h>

/* Prints "supamanager: error: msg" and "hint: ..." to stderr; returns the
 * exit code for the error. */
int cli_fail(const sm_err *err);
/* Prints a usage error and returns 2. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a JSON value to stdout (indented) and a newline. */
void cli_print_json(json_t *v);

/* A progress bar on stderr when it is a terminal (nothing otherwise). */
typedef struct cli_progress {
    int enabled;
    double started;
    double last_draw;
    int drawn;
} cli_progress;

void cli_progress_init(cli_progress *p, int force_off);
void cli_progress_cb(void *ud, const repo_progress *rp);
void cli_progress_done(cli_progress *p);

/* SIGINT/SIGTERM set this flag; long operations stop at a safe point. */
extern volatile sig_atomic_t cli_cancel;
void cli_install_signals(void);

/* The secret: ENCRYPTION_SECRET, or the first line of --secret-file. The
 * result is the caller's (free it). NULL when none is set. */
char *cli_secret(const char *secret_file, const char *env_name, sm_err *err);

/* The home (SUPAMANAGER_HOME, default /var/lib/supamanager). */
const char *cli_home(void);

/* Asks "question [y/N]" on the terminal; without one, fails with a message
 * telling to pass `flag`. Returns 1 yes, 0 no, -1 no terminal (err set). */
int cli_confirm(const char *question, const char *flag, sm_err *err);

/* An ops progress printer: phase, percent bar, rate, ETA on a terminal. */
struct ops_event;
void cli_ops_event(void *ud, const struct ops_event *e);

#endif
