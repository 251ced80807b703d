#include "core/util.h"

#include "core/mem.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sm_hex(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sm_unhex(unsigned char *out, const char *hex, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (!hex[2 * i] || !hex[2 * i + 1])
            return -1;
        hi = hexval(hex[2 * i]);
        lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return hex[2 * n] == '\0' ? 0 : -1;
}

char *sm_b64_encode(const unsigned char *p, size_t n)
{
    char *out = sm_xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

int sm_b64_decode(sm_buf *out, const char *s, sm_err *err)
{
    size_t len = strlen(s);
    int n, pad = 0;

    if (len % 4 != 0)
        return sm_err_set(err, SM_E_INVALID, "invalid base64 text");
    if (sm_buf_grow(out, len / 4 * 3 + 1, err) < 0)
        return -1;
    n = EVP_DecodeBlock(out->data + out->len, (const unsigned char *)s, (int)len);
    if (n < 0)
        return sm_err_set(err, SM_E_INVALID, "invalid base64 text");
    if (len >= 1 && s[len - 1] == '=')
        pad++;
    if (len >= 2 && s[len - 2] == '=')
        pad++;
    if ((size_t)n < (size_t)pad)
        return sm_err_set(err, SM_E_INVALID, "invalid base64 text");
    {
        /* EVP_DecodeBlock is lenient about padding: accept only the
         * canonical encoding of what it decoded */
        char *again = sm_b64_encode(out->data + out->len, (size_t)n - (size_t)pad);
        int same = strcmp(again, s) == 0;
        free(again);
        if (!same) {
            out->data[out->len] = '\0';
            return sm_err_set(err, SM_E_INVALID, "invalid base64 text");
        }
    }
    out->len += (size_t)n - (size_t)pad;
    out->data[out->len] = '\0';
    return 0;
}

static time_t forced_now;

/* SUPAMANAGER_NOW is "<unix seconds>", an ISO 8601 UTC time, or "@FILE":
 * the file holds one of those and is read again on every call, so a test can
 * move a running daemon's clock by rewriting it. */
static time_t parse_now(const char *e)
{
    uint64_t v;
    time_t t;

    if (sm_parse_u64(e, (uint64_t)1 << 40, &v) == 0)
        return (time_t)v;
    if (sm_time_parse_iso(e, &t) == 0)
        return t;
    return 0;
}

time_t sm_now(void)
{
    const char *e;

    if (forced_now)
        return forced_now;
    e = getenv("SUPAMANAGER_NOW");
    if (e && *e == '@') {
        char buf[64];
        FILE *f = fopen(e + 1, "re");
        size_t n = 0;
        time_t t = 0;
        if (f) {
            n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
                n--;
            buf[n] = '\0';
            t = parse_now(buf);
        }
        return t ? t : time(NULL);
    }
    if (e && *e) {
        time_t t = parse_now(e);
        if (t)
            return t;
    }
    return time(NULL);
}

int sm_clock_driven(void)
{
    const char *e = getenv("SUPAMANAGER_NOW");
    return forced_now != 0 || (e && *e);
}

void sm_clock_set(time_t t)
{
    forced_now = t;
}

double sm_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sm_time_iso(char *out, size_t cap, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int sm_time_parse_iso(const char *s, time_t *t)
{
    struct tm tm;
    const char *rest;
    int off_sign = 0, oh = 0, om = 0;

    memset(&tm, 0, sizeof(tm));
    rest = strptime(s, "%Y-%m-%d", &tm);
    if (!rest || (*rest != 'T' && *rest != ' '))
        return -1;
    rest = strptime(rest + 1, "%H:%M:%S", &tm);
    if (!rest)
        return -1;
    if (*rest == '.') { /* fractional seconds are ignored */
        rest++;
        while (*rest >= '0' && *rest <= '9')
            rest++;
    }
    if (*rest == 'Z' || *rest == 'z') {
        rest++;
    } else if (*rest == '+' || *rest == '-') {
        off_sign = *rest == '+' ? 1 : -1;
        rest++;
        /* exactly two digits of hours, then optionally [:]two digits of minutes */
        if (!isdigit((unsigned char)rest[0]) || !isdigit((unsigned char)rest[1]))
            return -1;
        oh = (rest[0] - '0') * 10 + (rest[1] - '0');
        rest += 2;
        if (*rest == ':')
            rest++;
        if (*rest) {
            if (!isdigit((unsigned char)rest[0]) || !isdigit((unsigned char)rest[1]))
                return -1;
            om = (rest[0] - '0') * 10 + (rest[1] - '0');
            rest += 2;
        }
        if (oh > 23 || om > 59)
            return -1;
    }
    if (*rest != '\0')
        return -1;
    *t = timegm(&tm) - off_sign * (oh * 3600 + om * 60);
    return 0;
}

void sm_human_bytes(char *out, size_t cap, uint64_t n)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double v = (double)n;
    int u = 0;

    /* 999999 is "1.0 MB", not "1000.0 kB": decide after rounding */
    while (v >= 999.95 && u < 5 && (u > 0 || n >= 1000)) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

int sm_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;

    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (end == s || errno == ERANGE)
        return -1;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    case 't': case 'T': mul = 1ull << 40; end++; break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

const char *sm_hostname(void)
{
    static char name[256];
    if (!name[0]) {
        if (gethostname(name, sizeof(name) - 1) != 0 || !name[0])
            strcpy(name, "localhost");
    }
    return name;
}

int sm_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

void sm_random(void *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1) {
        fprintf(stderr, "supamanager: fatal: the random number generator failed\n");
        abort();
    }
}

char *sm_random_hex(size_t n)
{
    unsigned char raw[64];
    char *out;

    if (n > sizeof(raw))
        n = sizeof(raw);
    sm_random(raw, n);
    out = sm_xmalloc(2 * n + 1);
    sm_hex(out, raw, n);
    return out;
}
