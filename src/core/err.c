#include "core/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void vset(char *dst, size_t cap, const char *fmt, va_list ap)
{
    vsnprintf(dst, cap, fmt, ap);
}

int sm_err_set(sm_err *err, sm_code code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    err->code = code;
    err->hint[0] = '\0';
    va_start(ap, fmt);
    vset(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int sm_err_sys(sm_err *err, sm_code code, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    size_t n;

    if (!err)
        return -1;
    if (saved == ENOSPC || saved == EDQUOT)
        code = SM_E_NOSPC;
    err->code = code;
    err->hint[0] = '\0';
    va_start(ap, fmt);
    vset(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(saved));
    if (code == SM_E_NOSPC)
        snprintf(err->hint, sizeof(err->hint),
                 "Free some space on that file system (or prune old backups) and try again.");
    errno = saved;
    return -1;
}

int sm_err_hint(sm_err *err, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    va_start(ap, fmt);
    vset(err->hint, sizeof(err->hint), fmt, ap);
    va_end(ap);
    return -1;
}

int sm_err_prefix(sm_err *err, const char *fmt, ...)
{
    char pre[SM_ERR_MSG_MAX];
    char old[SM_ERR_MSG_MAX];
    va_list ap;

    if (!err)
        return -1;
    va_start(ap, fmt);
    vset(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", pre, old);
    return -1;
}

void sm_err_clear(sm_err *err)
{
    if (!err)
        return;
    err->code = SM_OK;
    err->msg[0] = '\0';
    err->hint[0] = '\0';
}

void sm_err_copy(sm_err *dst, const sm_err *src)
{
    if (dst && src && dst != src)
        memcpy(dst, src, sizeof(*dst));
}

const char *sm_code_name(sm_code code)
{
    switch (code) {
    case SM_OK: return "ok";
    case SM_E_USAGE: return "usage";
    case SM_E_INVALID: return "invalid";
    case SM_E_NOTFOUND: return "not_found";
    case SM_E_EXISTS: return "exists";
    case SM_E_IO: return "io";
    case SM_E_NOSPC: return "no_space";
    case SM_E_CORRUPT: return "corrupt";
    case SM_E_BADKEY: return "bad_key";
    case SM_E_VERSION: return "version";
    case SM_E_LOCKED: return "locked";
    case SM_E_LIMIT: return "too_large";
    case SM_E_DB: return "database";
    case SM_E_AUTH: return "unauthorized";
    case SM_E_FORBIDDEN: return "forbidden";
    case SM_E_CONFLICT: return "conflict";
    case SM_E_INTERRUPTED: return "interrupted";
    case SM_E_EXTERNAL: return "external";
    case SM_E_INTERNAL: return "internal";
    }
    return "unknown";
}

int sm_err_exit_code(const sm_err *err)
{
    switch (err->code) {
    case SM_OK: return 0;
    case SM_E_USAGE:
    case SM_E_INVALID: return 2;
    case SM_E_NOTFOUND: return 3;
    case SM_E_CORRUPT:
    case SM_E_BADKEY:
    case SM_E_VERSION: return 4;
    case SM_E_LOCKED:
    case SM_E_CONFLICT: return 5;
    case SM_E_NOSPC: return 6;
    default: return 1;
    }
}
