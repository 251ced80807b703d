/* Small helpers shared by everything: hex and base64, time, sizes. */
#ifndef SM_CORE_UTIL_H
#define SM_CORE_UTIL_H

#include "core/buf.h"
#include "core/err.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Writes 2n hex digits plus NUL into out (size 2n+1). */
void sm_hex(char *out, const unsigned char *p, size_t n);
/* Parses exactly 2n hex digits; returns 0 or -1. */
int sm_unhex(unsigned char *out, const char *hex, size_t n);
/* Standard base64 (with padding). */
char *sm_b64_encode(const unsigned char *p, size_t n);
int sm_b64_decode(sm_buf *out, const char *s, sm_err *err);

/* Wall clock. Tests may drive it with SUPAMANAGER_NOW=<unix seconds>, an
 * ISO 8601 UTC time, or @FILE (a file holding either, read on every call:
 * rewriting it moves a running daemon's clock), or sm_clock_set();
 * everything that schedules or stamps uses this. */
time_t sm_now(void);
void sm_clock_set(time_t t); /* 0 returns to the real clock */
/* 1 when the clock is driven (SUPAMANAGER_NOW or sm_clock_set). */
int sm_clock_driven(void);
/* Monotonic seconds, for durations and rates. */
double sm_mono(void);

/* "2026-11-25T14:03:07Z" into out (at least 21 bytes). */
void sm_time_iso(char *out, size_t cap, time_t t);
/* Parses "YYYY-MM-DDTHH:MM:SSZ" (or with a space, or +00[:00]). Returns 0 or -1. */
int sm_time_parse_iso(const char *s, time_t *t);

/* "1.2 GB" style (decimal units, as the specification shows sizes). */
void sm_human_bytes(char *out, size_t cap, uint64_t n);
/* Parses "64M", "1G", "512k", "1000" (binary units). Returns 0 or -1. */
int sm_parse_size(const char *s, uint64_t *out);

/* This machine's host name (static storage). */
const char *sm_hostname(void);

/* Strict decimal parse of a non-negative integer that fits max. */
int sm_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Cryptographically random bytes (OpenSSL RAND_bytes); aborts on failure. */
void sm_random(void *p, size_t n);
/* A random id of n bytes as hex (caller frees). */
char *sm_random_hex(size_t n);

#endif
