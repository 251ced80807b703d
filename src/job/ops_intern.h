/* What the operations of src/job share among themselves (not for callers
 * of ops.h). */
#ifndef SM_JOB_OPS_INTERN_H
#define SM_JOB_OPS_INTERN_H

#include "job/ops.h"
#include "repo/repo.h"
#include "store/store.h"

#include <stdint.h>

/* A progress event (and the job row's progress unless progress_by_event). */
void ops_emit(ops_ctx *o, const char *phase, double pct, uint64_t done, uint64_t total,
              double rate, double eta);
/* Runs a shell command (a project's pause/resume, stop/start commands);
 * fails with its exit status and the tail of its output. */
int ops_run_command(const char *cmd, const char *what, sm_err *err);
/* Opens the project's repository (create: initialise it when missing). */
int ops_open_project_repo(ops_ctx *o, const project *p, int create, store **st, repo **r,
                          sm_err *err);
void ops_close_repo(store *st, repo *r);
/* A private directory under <home>/tmp (caller removes and frees). */
char *ops_tmp_dir(ops_ctx *o, const char *prefix, sm_err *err);
/* Claims the project (one operation per project), runs fn, records the end. */
int ops_with_claim(ops_ctx *o, const char *project_id, const char *kind, sm_err *err,
                   int (*fn)(ops_ctx *o, void *arg, sm_err *err), void *arg);

#endif
