/* Errors that tell the user what to fix.
 *
 *   sm_err err = SM_ERR_INIT;
 *   if (repo_open(&repo, st, secret, &err) < 0) {
 *       sm_err_print(&err, "supamanager");   // "supamanager: error: ...\nhint: ..."
 *       return sm_err_exit_code(&err);
 *   }
 *
 * Every function that can fail returns int (0 success, -1 failure; a few
 * also return 1 for "absent") and takes `sm_err *err` last. The message is
 * lowercase, without a full stop, error first, subject quoted ('%s'); the
 * optional hint is one full sentence saying what to do.
 */
#ifndef SM_CORE_ERR_H
#define SM_CORE_ERR_H

#include <stddef.h>

typedef enum sm_code {
    SM_OK = 0,
    SM_E_USAGE,       /* bad command line or argument */
    SM_E_INVALID,     /* bad input value (ids, JSON, schedules, ...) */
    SM_E_NOTFOUND,    /* unknown project, backup, snapshot, file */
    SM_E_EXISTS,      /* already exists */
    SM_E_IO,          /* file system or network I/O */
    SM_E_NOSPC,       /* disk full */
    SM_E_CORRUPT,     /* damaged data: MAC failure, bad format */
    SM_E_BADKEY,      /* wrong or missing ENCRYPTION_SECRET */
    SM_E_VERSION,     /* format version newer than we understand */
    SM_E_LOCKED,      /* repository or project busy */
    SM_E_LIMIT,       /* size limit exceeded */
    SM_E_DB,          /* PostgreSQL / catalog failure */
    SM_E_AUTH,        /* authentication failed */
    SM_E_FORBIDDEN,   /* not allowed */
    SM_E_CONFLICT,    /* conflicting operation running */
    SM_E_INTERRUPTED, /* stopped by a signal or shutdown */
    SM_E_EXTERNAL,    /* an external command failed */
    SM_E_INTERNAL,    /* a bug */
} sm_code;

#define SM_ERR_MSG_MAX 1024
#define SM_ERR_HINT_MAX 512

typedef struct sm_err {
    sm_code code;
    char msg[SM_ERR_MSG_MAX];
    char hint[SM_ERR_HINT_MAX];
} sm_err;

#define SM_ERR_INIT {SM_OK, {0}, {0}}

/* Records code and message (replacing any previous error). Returns -1. */
int sm_err_set(sm_err *err, sm_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like sm_err_set but appends ": strerror(errno)". ENOSPC and EDQUOT turn the
 * code into SM_E_NOSPC whatever was asked. Returns -1. */
int sm_err_sys(sm_err *err, sm_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the hint sentence. Returns -1 so that `return sm_err_hint(...)` works. */
int sm_err_hint(sm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context: "context: previous message". Returns -1. */
int sm_err_prefix(sm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resets to SM_ERR_INIT. */
void sm_err_clear(sm_err *err);

/* Copies src into dst (a NULL dst is ignored). */
void sm_err_copy(sm_err *dst, const sm_err *src);

/* Short stable name of a code ("not_found", "corrupt", ...), for JSON errors. */
const char *sm_code_name(sm_code code);

/* Process exit code for an error: 2 usage, 3 not found, 4 corrupt/badkey,
 * 5 locked/conflict, 6 no space, 1 otherwise. */
int sm_err_exit_code(const sm_err *err);

#endif
