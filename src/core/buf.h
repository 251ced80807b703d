/* A growable byte buffer with an optional hard size limit (curl's dynbuf
 * "toobig"), for data that comes from outside.
 *
 *   sm_buf body = SM_BUF_INIT;
 *   sm_buf_limit(&body, 1 << 20);
 *   if (sm_buf_add(&body, data, size, err) < 0) ...   // SM_E_LIMIT past 1 MiB
 *   char *owned = sm_buf_detach(&body, NULL);          // caller frees
 *
 * Invariants: data is NULL or NUL-terminated at data[len]; len < cap when
 * data != NULL; max == 0 means no limit.
 */
#ifndef SM_CORE_BUF_H
#define SM_CORE_BUF_H

#include "core/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sm_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    size_t max;
} sm_buf;

#define SM_BUF_INIT {NULL, 0, 0, 0}

void sm_buf_limit(sm_buf *b, size_t max);
/* Ensures room for extra more bytes (plus the NUL). Fails only past max. */
int sm_buf_grow(sm_buf *b, size_t extra, sm_err *err);
int sm_buf_add(sm_buf *b, const void *p, size_t n, sm_err *err);
int sm_buf_adds(sm_buf *b, const char *s, sm_err *err);
int sm_buf_addf(sm_buf *b, sm_err *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends without a limit check: for buffers we fill ourselves. */
void sm_buf_put(sm_buf *b, const void *p, size_t n);
void sm_buf_putc(sm_buf *b, int c);
void sm_buf_puts(sm_buf *b, const char *s);
void sm_buf_putf(sm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sm_buf_put_u8(sm_buf *b, uint8_t v);
void sm_buf_put_u32le(sm_buf *b, uint32_t v);
void sm_buf_put_u64le(sm_buf *b, uint64_t v);
/* Sets len to 0, keeps the memory. */
void sm_buf_reset(sm_buf *b);
/* Frees the memory and returns to SM_BUF_INIT (max is kept). */
void sm_buf_release(sm_buf *b);
/* Hands the data over to the caller (free() it); *len gets the length.
 * Never NULL: an empty buffer gives "". The buffer is left empty. */
void *sm_buf_detach(sm_buf *b, size_t *len);
/* Returns the data as a C string (never NULL). */
const char *sm_buf_str(const sm_buf *b);

/* Little-endian readers over (p, len) at *off; fail when out of bounds. */
int sm_get_u8(const unsigned char *p, size_t len, size_t *off, uint8_t *v);
int sm_get_u32le(const unsigned char *p, size_t len, size_t *off, uint32_t *v);
int sm_get_u64le(const unsigned char *p, size_t len, size_t *off, uint64_t *v);
int sm_get_bytes(const unsigned char *p, size_t len, size_t *off, void *dst, size_t n);
uint32_t sm_load_u32le(const unsigned char *p);
void sm_store_u32le(unsigned char *p, uint32_t v);

#endif
