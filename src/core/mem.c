#include "core/mem.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die_oom(size_t n)
{
    fprintf(stderr, "supamanager: fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die_oom(n);
    return p;
}

void *sm_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        die_oom(nmemb * size);
    return p;
}

void *sm_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        die_oom(n);
    return q;
}

char *sm_xstrdup(const char *s)
{
    return sm_xmemdup(s, strlen(s) + 1);
}

char *sm_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = sm_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *sm_xmemdup(const void *p, size_t n)
{
    void *q = sm_xmalloc(n);
    memcpy(q, p, n);
    return q;
}

char *sm_xasprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die_oom(0);
    s = sm_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void sm_grow(void **arr, size_t *cap, size_t want, size_t elem)
{
    size_t ncap;

    if (want <= *cap)
        return;
    ncap = *cap ? *cap : 8;
    while (ncap < want)
        ncap = ncap * 3 / 2 + 8;
    *arr = sm_xrealloc(*arr, ncap * elem);
    *cap = ncap;
}

void sm_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}
