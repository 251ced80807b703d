/* Allocation that never returns NULL: out of memory aborts with a message,
 * as git's xmalloc does, so callers never handle it. */
#ifndef SM_CORE_MEM_H
#define SM_CORE_MEM_H

#include <stddef.h>

void *sm_xmalloc(size_t n);
void *sm_xcalloc(size_t nmemb, size_t size);
void *sm_xrealloc(void *p, size_t n);
char *sm_xstrdup(const char *s);
char *sm_xstrndup(const char *s, size_t n);
void *sm_xmemdup(const void *p, size_t n);
/* printf into a fresh string; the caller frees it. */
char *sm_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grows *arr (of *cap elements of size elem) to hold at least want elements. */
void sm_grow(void **arr, size_t *cap, size_t want, size_t elem);
#define SM_GROW(arr, cap, want) sm_grow((void **)&(arr), &(cap), (want), sizeof(*(arr)))

/* Overwrites n bytes at p with zeros in a way the compiler keeps. */
void sm_wipe(void *p, size_t n);

#endif
