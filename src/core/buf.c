#include "core/buf.h"

#include "core/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sm_buf_limit(sm_buf *b, size_t max)
{
    b->max = max;
}

static void ensure(sm_buf *b, size_t extra)
{
    size_t want = b->len + extra + 1;
    size_t ncap;

    if (want <= b->cap)
        return;
    ncap = b->cap ? b->cap : 64;
    while (ncap < want)
        ncap = ncap < (1u << 20) ? ncap * 2 : ncap + ncap / 2;
    b->data = sm_xrealloc(b->data, ncap);
    b->cap = ncap;
}

int sm_buf_grow(sm_buf *b, size_t extra, sm_err *err)
{
    if (b->max && (extra > b->max || b->len > b->max - extra))
        return sm_err_set(err, SM_E_LIMIT, "data exceeds the limit of %zu bytes", b->max);
    ensure(b, extra);
    return 0;
}

int sm_buf_add(sm_buf *b, const void *p, size_t n, sm_err *err)
{
    if (sm_buf_grow(b, n, err) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sm_buf_adds(sm_buf *b, const char *s, sm_err *err)
{
    return sm_buf_add(b, s, strlen(s), err);
}

int sm_buf_addf(sm_buf *b, sm_err *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return sm_err_set(err, SM_E_INTERNAL, "cannot format text");
    if (sm_buf_grow(b, (size_t)n, err) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sm_buf_put(sm_buf *b, const void *p, size_t n)
{
    ensure(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sm_buf_putc(sm_buf *b, int c)
{
    unsigned char ch = (unsigned char)c;
    sm_buf_put(b, &ch, 1);
}

void sm_buf_puts(sm_buf *b, const char *s)
{
    sm_buf_put(b, s, strlen(s));
}

void sm_buf_putf(sm_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ensure(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sm_buf_put_u8(sm_buf *b, uint8_t v)
{
    sm_buf_put(b, &v, 1);
}

void sm_buf_put_u32le(sm_buf *b, uint32_t v)
{
    unsigned char t[4];
    sm_store_u32le(t, v);
    sm_buf_put(b, t, 4);
}

void sm_buf_put_u64le(sm_buf *b, uint64_t v)
{
    unsigned char t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    sm_buf_put(b, t, 8);
}

void sm_buf_reset(sm_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void sm_buf_release(sm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void *sm_buf_detach(sm_buf *b, size_t *len)
{
    void *p;

    if (!b->data) {
        ensure(b, 0);
        b->data[0] = '\0';
    }
    p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

const char *sm_buf_str(const sm_buf *b)
{
    return b->data ? (const char *)b->data : "";
}

int sm_get_u8(const unsigned char *p, size_t len, size_t *off, uint8_t *v)
{
    if (*off >= len)
        return -1;
    *v = p[*off];
    *off += 1;
    return 0;
}

int sm_get_u32le(const unsigned char *p, size_t len, size_t *off, uint32_t *v)
{
    if (len < 4 || *off > len - 4)
        return -1;
    *v = sm_load_u32le(p + *off);
    *off += 4;
    return 0;
}

int sm_get_u64le(const unsigned char *p, size_t len, size_t *off, uint64_t *v)
{
    uint64_t r = 0;

    if (len < 8 || *off > len - 8)
        return -1;
    for (int i = 0; i < 8; i++)
        r |= (uint64_t)p[*off + (size_t)i] << (8 * i);
    *v = r;
    *off += 8;
    return 0;
}

int sm_get_bytes(const unsigned char *p, size_t len, size_t *off, void *dst, size_t n)
{
    if (n > len || *off > len - n)
        return -1;
    memcpy(dst, p + *off, n);
    *off += n;
    return 0;
}

uint32_t sm_load_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void sm_store_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
