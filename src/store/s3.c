/* The S3 driver: libcurl with its built-in SigV4 signing (CURLOPT_AWS_SIGV4)
 * and libxml2 for the XML answers. libcurl 7.88 needs three things from us
 * (each a 403 otherwise): the x-amz-content-sha256 header, no empty
 * "Expect:" header, and a query that is percent-encoded, sorted by key, with
 * a '=' after bare keys ("?uploads=").
 *
 * Every request goes through s3_perform, which retries transient failures
 * (5xx, 429, 408, RequestTimeout, timeouts, resets, truncated bodies) with
 * exponential back-off and "equal jitter" (a random delay between half and
 * all of the doubled delay), and never retries other 4xx answers.
 * Handles come from a small pool so connections are reused. */
#include "store/s3.h"
#include "store/s3.intern.h"
#include "store/store.intern.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S3_DEF_PART_SIZE (16ull << 20)
#define S3_DEF_THRESHOLD (64ull << 20)
#define S3_DEF_PARALLEL 4u
#define S3_DEF_RETRIES 8u
#define S3_DEF_RETRY_BASE_MS 100u
#define S3_DEF_TIMEOUT 60u
#define S3_DEF_READAHEAD (8ull << 20)
#define S3_DEF_CACHE (64ull << 20)
#define S3_SEQ_SLACK (1u << 20) /* a read this close to the last one's end is sequential */
#define S3_SEQ_TRACK 32u        /* recent read ends remembered */
#define S3_MAX_BACKOFF_MS 20000u
#define S3_POOL_MAX 16u
#define S3_ERRBODY_MAX (64u << 10)
#define S3_LIST_MAX (16u << 20)

/* ---------------------------------------------------------------- settings */

/* Percent-decodes s[0..n) into a fresh string; NULL on a bad escape. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = sm_xmalloc(n + 1);
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            unsigned char v;
            char hex[3] = {0};
            if (i + 2 < n)
                memcpy(hex, s + i + 1, 2);
            if (sm_unhex(&v, hex, 1) < 0) {
                free(out);
                return NULL;
            }
            out[j++] = (char)v;
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

/* Appends s percent-encoded; chars in keep stay as they are besides the
 * RFC 3986 unreserved ones. */
static void pct_encode(sm_buf *b, const char *s, const char *keep)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep && strchr(keep, *p)))
            sm_buf_putc(b, *p);
        else
            sm_buf_putf(b, "%%%02X", *p);
    }
}

void s3_settings_free(s3_settings *s)
{
    if (!s)
        return;
    free(s->bucket);
    free(s->prefix);
    free(s->endpoint);
    free(s->region);
    free(s->storage_class);
    free(s->sse);
    free(s->sse_kms_key_id);
    free(s->credentials_file);
    free(s->profile);
    free(s);
}

static int bucket_check(const char *b, size_t n)
{
    if (n < 3 || n > 63)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return -1;
    if (b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
        return -1;
    return 0;
}

/* Validates a prefix and returns it normalised ("" or "a/b/"); NULL if bad. */
static char *prefix_norm(const char *p, size_t n)
{
    char *out, *key;
    sm_err e = SM_ERR_INIT;

    while (n > 0 && p[n - 1] == '/')
        n--;
    if (n == 0)
        return sm_xstrdup("");
    key = sm_xstrndup(p, n);
    if (store_key_check(key, &e) < 0) {
        free(key);
        return NULL;
    }
    out = sm_xasprintf("%s/", key);
    free(key);
    return out;
}

static int set_uint(unsigned *dst, const char *name, const char *v, unsigned lo, unsigned hi,
                    sm_err *err)
{
    uint64_t x;
    if (sm_parse_u64(v, hi, &x) < 0 || x < lo)
        return sm_err_set(err, SM_E_USAGE, "S3 setting %s=%s must be a number from %u to %u",
                          name, v, lo, hi);
    *dst = (unsigned)x;
    return 0;
}

static int set_size(uint64_t *dst, const char *name, const char *v, uint64_t lo, sm_err *err)
{
    uint64_t x;
    if (sm_parse_size(v, &x) < 0 || x < lo || x > (5ull << 30))
        return sm_err_set(err, SM_E_USAGE,
                          "S3 setting %s=%s must be a size from %llu MiB to 5 GiB (like 16M)", name,
                          v, (unsigned long long)(lo >> 20));
    *dst = x;
    return 0;
}

static int set_flag(int *dst, const char *name, const char *v, sm_err *err)
{
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return sm_err_set(err, SM_E_USAGE, "S3 setting %s=%s must be 0 or 1", name, v);
    *dst = v[0] == '1';
    return 0;
}

static int endpoint_check(const char *v, sm_err *err)
{
    const char *host;
    if (!strncmp(v, "http://", 7))
        host = v + 7;
    else if (!strncmp(v, "https://", 8))
        host = v + 8;
    else
        host = NULL;
    if (!host || !*host || strpbrk(host, "/?#@ ")) {
        sm_err_set(err, SM_E_USAGE, "S3 endpoint '%s' is not a URL like https://HOST[:PORT]", v);
        return sm_err_hint(err, "Give the scheme, the host and the port only, without a path.");
    }
    return 0;
}

static int apply_setting(s3_settings *s, const char *name, const char *v, sm_err *err)
{
    char **str = NULL;

    if (!strcmp(name, "endpoint")) {
        size_t n = strlen(v);
        char *e = sm_xstrdup(v);
        while (n > 0 && e[n - 1] == '/')
            e[--n] = '\0';
        if (endpoint_check(e, err) < 0) {
            free(e);
            return -1;
        }
        free(s->endpoint);
        s->endpoint = e;
        return 0;
    }
    if (!strcmp(name, "region"))
        str = &s->region;
    else if (!strcmp(name, "storage_class"))
        str = &s->storage_class;
    else if (!strcmp(name, "sse_kms_key_id"))
        str = &s->sse_kms_key_id;
    else if (!strcmp(name, "credentials"))
        str = &s->credentials_file;
    else if (!strcmp(name, "profile"))
        str = &s->profile;
    else if (!strcmp(name, "sse")) {
        if (strcmp(v, "AES256") != 0 && strcmp(v, "aws:kms") != 0)
            return sm_err_set(err, SM_E_USAGE, "S3 setting sse=%s must be AES256 or aws:kms", v);
        str = &s->sse;
    } else if (!strcmp(name, "path_style"))
        return set_flag(&s->path_style, name, v, err);
    else if (!strcmp(name, "content_md5"))
        return set_flag(&s->content_md5, name, v, err);
    else if (!strcmp(name, "part_size"))
        return set_size(&s->part_size, name, v, S3_MIN_PART_SIZE, err);
    else if (!strcmp(name, "multipart_threshold"))
        return set_size(&s->multipart_threshold, name, v, S3_MIN_PART_SIZE, err);
    else if (!strcmp(name, "readahead"))
        return set_size(&s->readahead, name, v, 0, err);
    else if (!strcmp(name, "cache"))
        return set_size(&s->cache, name, v, 0, err);
    else if (!strcmp(name, "parallel"))
        return set_uint(&s->parallel, name, v, 1, 64, err);
    else if (!strcmp(name, "retries"))
        return set_uint(&s->retries, name, v, 0, 100, err);
    else if (!strcmp(name, "retry_base_ms"))
        return set_uint(&s->retry_base_ms, name, v, 1, 60000, err);
    else if (!strcmp(name, "timeout"))
        return set_uint(&s->timeout, name, v, 1, 3600, err);
    if (!str) {
        sm_err_set(err, SM_E_USAGE, "unknown S3 setting '%s'", name);
        return sm_err_hint(err, "Known settings: endpoint, region, path_style, storage_class, "
                                "sse, sse_kms_key_id, credentials, profile, content_md5, "
                                "part_size, multipart_threshold, parallel, retries, "
                                "retry_base_ms, timeout, readahead, cache.");
    }
    if (!*v)
        return sm_err_set(err, SM_E_USAGE, "S3 setting %s is empty", name);
    if ((str == &s->region || str == &s->storage_class) &&
        (strlen(v) > 64 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789_-") != strlen(v))) {
        /* (they go into signatures and headers: no spaces, no line breaks) */
        sm_err_set(err, SM_E_USAGE,
                   "S3 setting %s must be letters, digits, '-' and '_' (like us-east-1 or "
                   "STANDARD_IA)",
                   name);
        return -1;
    }
    free(*str);
    *str = sm_xstrdup(v);
    return 0;
}

int s3_settings_parse(s3_settings **out, const char *location, sm_err *err)
{
    s3_settings *s = NULL;
    const char *p, *q, *slash;
    int rc = -1;

    *out = NULL;
    if (!location || strncmp(location, "s3://", 5) != 0)
        return sm_err_set(err, SM_E_USAGE, "'%s' is not an S3 location (s3://BUCKET[/PREFIX])",
                          location ? location : "");
    s = sm_xcalloc(1, sizeof(*s));
    s->path_style = -1;
    s->content_md5 = 1;
    s->part_size = S3_DEF_PART_SIZE;
    s->multipart_threshold = S3_DEF_THRESHOLD;
    s->parallel = S3_DEF_PARALLEL;
    s->retries = S3_DEF_RETRIES;
    s->retry_base_ms = S3_DEF_RETRY_BASE_MS;
    s->timeout = S3_DEF_TIMEOUT;
    s->readahead = S3_DEF_READAHEAD;
    s->cache = S3_DEF_CACHE;

    p = location + 5;
    q = strchr(p, '?');
    if (!q)
        q = p + strlen(p);
    slash = memchr(p, '/', (size_t)(q - p));
    if (bucket_check(p, (size_t)((slash ? slash : q) - p)) < 0) {
        sm_err_set(err, SM_E_USAGE, "invalid S3 bucket name in '%s'", location);
        sm_err_hint(err, "A bucket name has 3 to 63 lowercase letters, digits, dots or hyphens.");
        goto out;
    }
    s->bucket = sm_xstrndup(p, (size_t)((slash ? slash : q) - p));
    s->prefix = slash ? prefix_norm(slash + 1, (size_t)(q - slash - 1)) : sm_xstrdup("");
    if (!s->prefix) {
        sm_err_set(err, SM_E_USAGE, "invalid S3 prefix in '%s'", location);
        sm_err_hint(err, "A prefix is made of '/'-separated names of letters, digits, '.', '_' "
                         "and '-'.");
        goto out;
    }
    while (*q) {
        const char *amp, *eq;
        char *name, *val;
        int r;

        q++;
        amp = strchr(q, '&');
        if (!amp)
            amp = q + strlen(q);
        if (amp == q)
            continue;
        eq = memchr(q, '=', (size_t)(amp - q));
        if (!eq) {
            sm_err_set(err, SM_E_USAGE, "S3 setting '%.*s' has no value (NAME=VALUE)",
                       (int)(amp - q), q);
            goto out;
        }
        name = sm_xstrndup(q, (size_t)(eq - q));
        val = pct_decode(eq + 1, (size_t)(amp - eq - 1));
        if (!val) {
            sm_err_set(err, SM_E_USAGE, "S3 setting '%s' has a bad %%-escape", name);
            free(name);
            goto out;
        }
        r = apply_setting(s, name, val, err);
        free(name);
        free(val);
        if (r < 0)
            goto out;
        q = amp;
    }
    if (s->sse_kms_key_id && (!s->sse || strcmp(s->sse, "aws:kms") != 0)) {
        sm_err_set(err, SM_E_USAGE, "S3 setting sse_kms_key_id needs sse=aws:kms");
        goto out;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    s3_settings_free(s);
    return rc;
}

static void fmt_size(sm_buf *b, const char *name, uint64_t v)
{
    if (v % (1ull << 20) == 0)
        sm_buf_putf(b, "&%s=%lluM", name, (unsigned long long)(v >> 20));
    else
        sm_buf_putf(b, "&%s=%llu", name, (unsigned long long)v);
}

char *s3_settings_format(const s3_settings *s)
{
    sm_buf b = SM_BUF_INIT;
    size_t n;
    struct {
        const char *name;
        const char *v;
    } strs[] = {
        {"endpoint", s->endpoint},      {"region", s->region},
        {"storage_class", s->storage_class}, {"sse", s->sse},
        {"sse_kms_key_id", s->sse_kms_key_id}, {"credentials", s->credentials_file},
        {"profile", s->profile},
    };

    sm_buf_putf(&b, "s3://%s", s->bucket);
    n = strlen(s->prefix);
    if (n)
        sm_buf_putf(&b, "/%.*s", (int)(n - 1), s->prefix);
    n = b.len;
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (!strs[i].v)
            continue;
        sm_buf_putf(&b, "&%s=", strs[i].name);
        pct_encode(&b, strs[i].v, ":/@");
        if (i == 1 && s->path_style >= 0) /* after region */
            sm_buf_putf(&b, "&path_style=%d", s->path_style);
    }
    if (!s->region && s->path_style >= 0)
        sm_buf_putf(&b, "&path_style=%d", s->path_style);
    if (!s->content_md5)
        sm_buf_puts(&b, "&content_md5=0");
    if (s->part_size != S3_DEF_PART_SIZE)
        fmt_size(&b, "part_size", s->part_size);
    if (s->multipart_threshold != S3_DEF_THRESHOLD)
        fmt_size(&b, "multipart_threshold", s->multipart_threshold);
    if (s->parallel != S3_DEF_PARALLEL)
        sm_buf_putf(&b, "&parallel=%u", s->parallel);
    if (s->retries != S3_DEF_RETRIES)
        sm_buf_putf(&b, "&retries=%u", s->retries);
    if (s->retry_base_ms != S3_DEF_RETRY_BASE_MS)
        sm_buf_putf(&b, "&retry_base_ms=%u", s->retry_base_ms);
    if (s->timeout != S3_DEF_TIMEOUT)
        sm_buf_putf(&b, "&timeout=%u", s->timeout);
    if (s->readahead != S3_DEF_READAHEAD)
        fmt_size(&b, "readahead", s->readahead);
    if (s->cache != S3_DEF_CACHE)
        fmt_size(&b, "cache", s->cache);
    if (b.len > n)
        b.data[n] = '?';
    return sm_buf_detach(&b, NULL);
}

int s3_location_key(const char *location, char **key, int *host_files, sm_err *err)
{
    s3_settings *s = NULL;

    if (s3_settings_parse(&s, location, err) < 0)
        return -1;
    *key = sm_xasprintf("%s/%s", s->bucket, s->prefix);
    *host_files = s->credentials_file != NULL || s->profile != NULL;
    s3_settings_free(s);
    return 0;
}

int s3_location_build(char **out, const char *base, const char *endpoint, const char *region,
                      const char *storage_class, sm_err *err)
{
    s3_settings *s = NULL;
    int any = (endpoint && *endpoint) || (region && *region) || (storage_class && *storage_class);

    *out = NULL;
    if (!base || strncmp(base, "s3://", 5) != 0) {
        if (!any) {
            *out = base ? sm_xstrdup(base) : NULL;
            return 0;
        }
        sm_err_set(err, SM_E_USAGE, "S3 settings need an S3 store location");
        return sm_err_hint(err, "Give the store as s3://BUCKET[/PREFIX] (--store, or the "
                                "API's store field).");
    }
    if (s3_settings_parse(&s, base, err) < 0)
        return -1;
    if ((endpoint && *endpoint && apply_setting(s, "endpoint", endpoint, err) < 0) ||
        (region && *region && apply_setting(s, "region", region, err) < 0) ||
        (storage_class && *storage_class &&
         apply_setting(s, "storage_class", storage_class, err) < 0)) {
        s3_settings_free(s);
        return -1;
    }
    *out = s3_settings_format(s);
    s3_settings_free(s);
    return 0;
}

/* ---------------------------------------------------------------- the store */

typedef struct s3_store {
    s3_settings *cfg;
    char *base_url; /* "scheme://[bucket.]host[:port]" */
    char *bucket_path; /* "/bucket" (path style) or "" */
    char *sigv4;    /* "aws:amz:REGION:s3" */
    char *access, *secret, *token;
    pthread_mutex_t mu;
    CURL *idle[S3_POOL_MAX];
    unsigned nidle;
    struct rcache *rc; /* windows of sequential pack reads; NULL when off */
} s3_store;

static void rcache_forget(s3_store *s, const char *obj);

/* Reads [profile] from an AWS-style credentials file. 0 found, 1 absent, -1. */
static int creds_from_file(s3_store *s, const char *path, const char *profile, int must,
                           sm_err *err)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int in = 0;

    if (!f) {
        if (!must)
            return 1;
        return sm_err_sys(err, SM_E_AUTH, "cannot read the S3 credentials file '%s'", path);
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = line, *eq, *k, *v, *e;
        while (*p == ' ' || *p == '\t')
            p++;
        p[strcspn(p, "\r\n")] = '\0';
        if (*p == '[') {
            e = strchr(p, ']');
            if (e)
                *e = '\0';
            p++;
            if (!strncmp(p, "profile ", 8))
                p += 8;
            in = !strcmp(p, profile);
            continue;
        }
        if (!in || *p == '#' || *p == ';' || !(eq = strchr(p, '=')))
            continue;
        *eq = '\0';
        k = p;
        v = eq + 1;
        for (e = eq; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
            e[-1] = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
            e[-1] = '\0';
        if (!strcmp(k, "aws_access_key_id")) {
            free(s->access);
            s->access = sm_xstrdup(v);
        } else if (!strcmp(k, "aws_secret_access_key")) {
            free(s->secret);
            s->secret = sm_xstrdup(v);
        } else if (!strcmp(k, "aws_session_token")) {
            free(s->token);
            s->token = sm_xstrdup(v);
        }
    }
    fclose(f);
    return s->access && s->secret ? 0 : 1;
}

static int load_credentials(s3_store *s, const char *where, sm_err *err)
{
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *profile = s->cfg->profile ? s->cfg->profile : getenv("AWS_PROFILE");
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
    char *home_file = NULL;
    int r;

    if (!profile || !*profile)
        profile = "default";
    if (s->cfg->credentials_file) {
        r = creds_from_file(s, s->cfg->credentials_file, profile, 1, err);
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        sm_err_set(err, SM_E_AUTH, "no keys for profile '%s' in the S3 credentials file '%s'",
                   profile, s->cfg->credentials_file);
        return sm_err_hint(err, "Add aws_access_key_id and aws_secret_access_key under [%s].",
                           profile);
    }
    if (ak && *ak && sk && *sk) {
        const char *tok = getenv("AWS_SESSION_TOKEN");
        s->access = sm_xstrdup(ak);
        s->secret = sm_xstrdup(sk);
        s->token = tok && *tok ? sm_xstrdup(tok) : NULL;
        return 0;
    }
    if (!file || !*file) {
        const char *home = getenv("HOME");
        if (home && *home)
            file = home_file = sm_xasprintf("%s/.aws/credentials", home);
    }
    r = file ? creds_from_file(s, file, profile, 0, err) : 1;
    free(home_file);
    if (r <= 0)
        return r;
    sm_err_set(err, SM_E_AUTH, "no S3 credentials for '%s'", where);
    return sm_err_hint(err, "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put them in "
                            "~/.aws/credentials, or add credentials=FILE to the location.");
}

static CURL *handle_get(s3_store *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->nidle > 0)
        h = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->mu);
    if (h) {
        curl_easy_reset(h);
        return h;
    }
    h = curl_easy_init();
    if (!h)
        abort(); /* out of memory, as sm_xmalloc */
    return h;
}

static void handle_put(s3_store *s, CURL *h)
{
    pthread_mutex_lock(&s->mu);
    if (s->nidle < S3_POOL_MAX) {
        s->idle[s->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* One request and its outcome. */
typedef struct s3_call {
    const char *verb;   /* what we were doing, for messages: "write", "read", ... */
    const char *method; /* GET PUT POST DELETE HEAD */
    const char *object; /* full object name (prefix included); NULL for the bucket */
    const char *subject; /* for messages when object is NULL (a listed prefix) */
    const char *query;  /* encoded and sorted, without '?'; NULL for none */
    const void *body;
    size_t len;
    const char *content_type;
    int send_md5;        /* Content-MD5 of the body */
    int object_headers;  /* storage class and server-side encryption */
    int range;           /* Range: bytes=off-(off+rlen-1), or off- when rlen is 0 */
    uint64_t off, rlen;
    int error_in_200;    /* a 200 may carry <Error> (CompleteMultipartUpload) */
    sm_buf *out;         /* the response body (NULL: an internal buffer) */
    size_t out_max;      /* limit on the body (0: none) */
    /* results */
    long status;
    char etag[80];
    int64_t clen;        /* Content-Length of the answer, -1 unknown */
    int64_t total;       /* the object's size from Content-Range, -1 unknown */
    long hstatus;        /* status of the answer being received */
    sm_buf own;
    size_t got;
    int overflow;
} s3_call;

static size_t on_body(char *d, size_t sz, size_t n, void *ud)
{
    s3_call *c = ud;
    size_t k = sz * n;
    /* out_max bounds the data asked for; an error's body has its own bound */
    size_t max = c->hstatus >= 200 && c->hstatus <= 299 ? c->out_max : S3_ERRBODY_MAX;

    if (max && c->got + k > max) {
        c->overflow = 1;
        return 0;
    }
    sm_buf_put(c->out, d, k);
    c->got += k;
    return k;
}

static size_t on_header(char *d, size_t sz, size_t n, void *ud)
{
    s3_call *c = ud;
    size_t k = sz * n;
    char line[256];
    size_t m = k < sizeof(line) - 1 ? k : sizeof(line) - 1;

    memcpy(line, d, m);
    line[m] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (!strncmp(line, "HTTP/", 5)) { /* a new response (after 100 Continue): start over */
        const char *sp = strchr(line, ' ');
        c->hstatus = sp ? strtol(sp + 1, NULL, 10) : 0;
        c->etag[0] = '\0';
        c->clen = -1;
        c->total = -1;
    } else if (!strncasecmp(line, "etag:", 5)) {
        const char *v = line + 5;
        while (*v == ' ')
            v++;
        snprintf(c->etag, sizeof(c->etag), "%s", v);
    } else if (!strncasecmp(line, "content-length:", 15)) {
        c->clen = strtoll(line + 15, NULL, 10);
    } else if (!strncasecmp(line, "content-range:", 14)) {
        const char *slash = strchr(line, '/'); /* bytes FIRST-LAST/TOTAL */
        c->total = slash && slash[1] != '*' ? strtoll(slash + 1, NULL, 10) : -1;
    }
    return k;
}

/* The text of the first element named name below node (NULL if none); the
 * caller frees with xmlFree. */
static xmlChar *xml_text(xmlNode *node, const char *name)
{
    for (xmlNode *n = node ? node->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name))
            return xmlNodeGetContent(n);
    return NULL;
}

static xmlDoc *xml_parse(const sm_buf *b)
{
    if (!b->len || b->len > INT32_MAX)
        return NULL;
    return xmlReadMemory((const char *)b->data, (int)b->len, "s3.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

/* The <Code> and <Message> of an S3 error body, if any. */
static void error_code(const sm_buf *b, char *code, size_t ccap, char *msg, size_t mcap)
{
    xmlDoc *doc = xml_parse(b);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;

    code[0] = msg[0] = '\0';
    if (root && !strcmp((const char *)root->name, "Error")) {
        xmlChar *c = xml_text(root, "Code"), *m = xml_text(root, "Message");
        snprintf(code, ccap, "%s", c ? (const char *)c : "");
        snprintf(msg, mcap, "%s", m ? (const char *)m : "");
        xmlFree(c);
        xmlFree(m);
    }
    xmlFreeDoc(doc);
}

static int transient_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

static int transient_status(long status, const char *code)
{
    return status >= 500 || status == 429 || status == 408 || !strcmp(code, "RequestTimeout") ||
           !strcmp(code, "SlowDown") || !strcmp(code, "InternalError");
}

static void backoff(const s3_settings *cfg, unsigned attempt)
{
    uint64_t d = cfg->retry_base_ms;
    uint32_t r;
    struct timespec ts;

    for (unsigned i = 0; i < attempt && d < S3_MAX_BACKOFF_MS; i++)
        d *= 2;
    if (d > S3_MAX_BACKOFF_MS)
        d = S3_MAX_BACKOFF_MS;
    sm_random(&r, sizeof(r));
    d = d / 2 + r % (d / 2 + 1); /* jitter: between half and all of the delay */
    ts.tv_sec = (time_t)(d / 1000);
    ts.tv_nsec = (long)(d % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void md5_b64(const void *p, size_t n, char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    char *b;

    EVP_Digest(p, n, md, &ml, EVP_md5(), NULL);
    b = sm_b64_encode(md, ml);
    snprintf(out, cap, "%s", b);
    free(b);
}

/* A whole-object GET whose ETag is a plain MD5 (not multipart, not KMS)
 * can be checked against what arrived. 1 when it does not match. */
static int etag_mismatch(const s3_store *s, const s3_call *c)
{
    unsigned char want[16], got[EVP_MAX_MD_SIZE];
    unsigned int gl = 0;
    const char *e = c->etag;
    char hex[33] = {0};

    if (c->range || (s->cfg->sse && !strcmp(s->cfg->sse, "aws:kms")))
        return 0;
    if (e[0] == '"')
        e++;
    if (strlen(e) < 32 || (e[32] != '\0' && e[32] != '"'))
        return 0; /* a multipart ETag ("...-N") or none */
    memcpy(hex, e, 32);
    if (sm_unhex(want, hex, 16) < 0)
        return 0;
    EVP_Digest(c->out->data, c->out->len, got, &gl, EVP_md5(), NULL);
    return memcmp(want, got, 16) != 0;
}

static void set_error(const s3_store *s, const s3_call *c, sm_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(const s3_store *s, const s3_call *c, sm_err *err, const char *fmt, ...)
{
    char what[512], detail[600];
    va_list ap;

    if (c->object || c->subject)
        snprintf(what, sizeof(what), "cannot %s '%s' in S3 bucket '%s'", c->verb,
                 c->object ? c->object : c->subject, s->cfg->bucket);
    else
        snprintf(what, sizeof(what), "cannot %s S3 bucket '%s'", c->verb, s->cfg->bucket);
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    sm_err_set(err, SM_E_IO, "%s: %s", what, detail);
}

/* Performs c, with retries. 0 on a 2xx answer (c->status set), -1 with err
 * set otherwise; a 404 sets SM_E_NOTFOUND. */
static int s3_perform(s3_store *s, s3_call *c, sm_err *out_err)
{
    sm_err e = SM_ERR_INIT, *err = &e;
    unsigned tries = 0;
    char sha[65], md5[32], url_path[2048], errbuf[CURL_ERROR_SIZE];
    unsigned char dg[32];
    unsigned int dl = 0;
    sm_buf url = SM_BUF_INIT;
    unsigned attempts = s->cfg->retries + 1;
    int rc = -1;

    if (!c->out) {
        c->out = &c->own;
        if (!c->out_max)
            c->out_max = S3_ERRBODY_MAX;
    }
    EVP_Digest(c->body ? c->body : "", c->body ? c->len : 0, dg, &dl, EVP_sha256(), NULL);
    sm_hex(sha, dg, 32);
    if (c->send_md5)
        md5_b64(c->body ? c->body : "", c->body ? c->len : 0, md5, sizeof(md5));
    snprintf(url_path, sizeof(url_path), "%s/%s", s->bucket_path, c->object ? c->object : "");
    sm_buf_puts(&url, s->base_url);
    sm_buf_puts(&url, url_path);
    if (c->query)
        sm_buf_putf(&url, "?%s", c->query);

    for (unsigned attempt = 0; attempt < attempts; attempt++) {
        CURL *h = handle_get(s);
        struct curl_slist *hd = NULL;
        char line[512], code[128], msg[256];
        CURLcode cc;
        int retry = 0;

        tries++;
        c->status = 0;
        c->etag[0] = '\0';
        c->clen = -1;
        c->total = -1;
        c->hstatus = 0;
        c->got = 0;
        c->overflow = 0;
        sm_buf_reset(c->out);
        if (c->range && c->rlen)
            sm_buf_grow(c->out, (size_t)c->rlen, NULL);
        errbuf[0] = '\0';

        curl_easy_setopt(h, CURLOPT_URL, sm_buf_str(&url));
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, s->access);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)(s->cfg->timeout < 15 ? s->cfg->timeout
                                                                                 : 15));
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)s->cfg->timeout);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
        if (!strcmp(c->method, "HEAD")) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (!strcmp(c->method, "GET")) {
            curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        } else if (!strcmp(c->method, "DELETE")) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        } else { /* PUT, POST: in-memory bodies, so that libcurl signs them */
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? (const char *)c->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(c->body ? c->len : 0));
            if (strcmp(c->method, "POST") != 0)
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
            snprintf(line, sizeof(line), "Content-Type: %s",
                     c->content_type ? c->content_type : "application/octet-stream");
            hd = curl_slist_append(hd, line);
        }
        snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sha);
        hd = curl_slist_append(hd, line);
        if (c->send_md5) {
            snprintf(line, sizeof(line), "Content-MD5: %s", md5);
            hd = curl_slist_append(hd, line);
        }
        if (s->token) {
            char *t = sm_xasprintf("x-amz-security-token: %s", s->token);
            hd = curl_slist_append(hd, t);
            free(t);
        }
        if (c->range) {
            if (c->rlen)
                snprintf(line, sizeof(line), "Range: bytes=%llu-%llu",
                         (unsigned long long)c->off, (unsigned long long)(c->off + c->rlen - 1));
            else
                snprintf(line, sizeof(line), "Range: bytes=%llu-", (unsigned long long)c->off);
            hd = curl_slist_append(hd, line);
        }
        if (c->object_headers && s->cfg->storage_class) {
            snprintf(line, sizeof(line), "x-amz-storage-class: %s", s->cfg->storage_class);
            hd = curl_slist_append(hd, line);
        }
        if (c->object_headers && s->cfg->sse) {
            snprintf(line, sizeof(line), "x-amz-server-side-encryption: %s", s->cfg->sse);
            hd = curl_slist_append(hd, line);
            if (s->cfg->sse_kms_key_id) {
                snprintf(line, sizeof(line), "x-amz-server-side-encryption-aws-kms-key-id: %s",
                         s->cfg->sse_kms_key_id);
                hd = curl_slist_append(hd, line);
            }
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
        curl_slist_free_all(hd);
        handle_put(s, h);
        code[0] = msg[0] = '\0';

        if (cc == CURLE_WRITE_ERROR && c->overflow) {
            set_error(s, c, err, "the answer is larger than expected (more than %zu bytes)",
                      c->out_max);
            retry = 1;
        } else if (cc != CURLE_OK) {
            set_error(s, c, err, "%s (curl error %d)", errbuf[0] ? errbuf : curl_easy_strerror(cc),
                      (int)cc);
            retry = transient_curl(cc);
            if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
                sm_err_hint(err, "Check the S3 endpoint (%s) and that the server is reachable.",
                            s->base_url);
        } else if (c->status < 200 || c->status > 299) {
            error_code(c->out, code, sizeof(code), msg, sizeof(msg));
            set_error(s, c, err, "HTTP %ld%s%s%s%s", c->status, code[0] ? " " : "", code,
                      msg[0] ? ": " : "", msg);
            retry = transient_status(c->status, code);
            if (c->status == 404 && (!code[0] || !strcmp(code, "NoSuchKey")))
                err->code = SM_E_NOTFOUND;
            else if (!strcmp(code, "NoSuchBucket"))
                sm_err_hint(err, "Create the bucket first, or check its name, the endpoint and "
                                 "the region.");
            else if (!strcmp(code, "SignatureDoesNotMatch") ||
                     !strcmp(code, "InvalidAccessKeyId") || c->status == 401) {
                err->code = SM_E_AUTH;
                sm_err_hint(err, "Check the S3 access key and secret (AWS_ACCESS_KEY_ID, "
                                 "AWS_SECRET_ACCESS_KEY or the credentials file).");
            } else if (c->status == 403) {
                err->code = SM_E_FORBIDDEN;
                sm_err_hint(err, "The S3 credentials are not allowed to do this: check the "
                                 "bucket's policy and the user's permissions.");
            } else if (c->status == 301 || !strcmp(code, "AuthorizationHeaderMalformed") ||
                       !strcmp(code, "PermanentRedirect")) {
                sm_err_hint(err, "Check the region of the bucket (region=... in the location, "
                                 "or --s3-region).");
            }
        } else if (c->error_in_200 && c->out->len && strstr(sm_buf_str(c->out), "<Error>")) {
            error_code(c->out, code, sizeof(code), msg, sizeof(msg));
            set_error(s, c, err, "HTTP %ld %s%s%s", c->status, code, msg[0] ? ": " : "", msg);
            retry = transient_status(500, code);
        } else if (c->clen >= 0 && strcmp(c->method, "HEAD") != 0 &&
                   (uint64_t)c->clen != c->got) {
            set_error(s, c, err, "the answer was cut short (%zu of %lld bytes)", c->got,
                      (long long)c->clen);
            retry = 1;
        } else if (c->range && c->rlen && c->status == 206 && c->got != c->rlen &&
                   !(c->total >= 0 && c->off + c->got == (uint64_t)c->total)) {
            /* short, but not because the object ends there */
            set_error(s, c, err, "the answer was cut short (%zu of %llu bytes asked for)",
                      c->got, (unsigned long long)c->rlen);
            retry = 1;
        } else if (!strcmp(c->method, "GET") && !c->query && etag_mismatch(s, c)) {
            set_error(s, c, err, "the data does not match its MD5 (ETag %s)", c->etag);
            err->code = SM_E_CORRUPT;
            retry = 1;
        } else {
            rc = 0;
            break;
        }
        if (!retry || attempt + 1 == attempts)
            break;
        sm_log(SM_LOG_DEBUG, "s3: retrying %s %s: %s", c->method, url_path, err->msg);
        backoff(s->cfg, attempt);
    }
    if (rc < 0 && tries > 1) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof(err->msg) - n, " (after %u attempts)", tries);
        if (!err->hint[0])
            sm_err_hint(err, "Check the S3 server and the network; the request was retried "
                             "with back-off.");
    }
    if (rc < 0)
        sm_err_copy(out_err, err);
    sm_buf_release(&url);
    sm_buf_release(&c->own);
    return rc;
}

static char *object_name(const s3_store *s, const char *key)
{
    return sm_xasprintf("%s%s", s->cfg->prefix, key);
}

static int single_put(s3_store *s, const char *obj, const void *data, size_t len, sm_err *err)
{
    s3_call c = {0};

    c.verb = "write";
    c.method = "PUT";
    c.object = obj;
    c.body = data;
    c.len = len;
    c.send_md5 = s->cfg->content_md5;
    c.object_headers = 1;
    return s3_perform(s, &c, err);
}

/* ------------------------------------------------------------- multipart */

typedef struct mp_upload {
    s3_store *s;
    const char *obj;
    const char *upload_id; /* percent-encoded */
    const unsigned char *data;
    size_t len;
    size_t part_size;
    unsigned nparts;
    char (*etags)[80];
} mp_upload;

/* Uploads part i (of store_parallel). */
static int mp_part(void *ud, size_t i, sm_err *err)
{
    mp_upload *u = ud;
    size_t off = i * u->part_size;
    size_t n = u->len - off < u->part_size ? u->len - off : u->part_size;
    char query[512];
    s3_call c = {0};

    /* keys sorted: partNumber < uploadId */
    snprintf(query, sizeof(query), "partNumber=%zu&uploadId=%s", i + 1, u->upload_id);
    c.verb = "write a part of";
    c.method = "PUT";
    c.object = u->obj;
    c.query = query;
    c.body = u->data + off;
    c.len = n;
    c.send_md5 = u->s->cfg->content_md5;
    if (s3_perform(u->s, &c, err) < 0)
        return -1;
    if (!c.etag[0])
        return sm_err_set(err, SM_E_IO, "S3 answered part %zu of '%s' without an ETag", i + 1,
                          u->obj);
    snprintf(u->etags[i], sizeof(u->etags[i]), "%s", c.etag);
    return 0;
}

static int mp_abort(s3_store *s, const char *obj, const char *upload_id_enc, sm_err *err)
{
    char query[512];
    s3_call c = {0};

    snprintf(query, sizeof(query), "uploadId=%s", upload_id_enc);
    c.verb = "abort the upload of";
    c.method = "DELETE";
    c.object = obj;
    c.query = query;
    if (s3_perform(s, &c, err) < 0)
        return err && err->code == SM_E_NOTFOUND ? 0 : -1;
    return 0;
}

/* Uploads data as parts of part_size, up to cfg->parallel at a time; the
 * parts are slices of data, so memory stays at the caller's buffer. On any
 * failure the upload is aborted, so no parts are left behind. */
static int multipart_put(s3_store *s, const char *obj, const void *data, size_t len, sm_err *err)
{
    s3_call c = {0};
    sm_buf body = SM_BUF_INIT, enc = SM_BUF_INIT, xml = SM_BUF_INIT;
    xmlDoc *doc = NULL;
    xmlChar *uid = NULL;
    mp_upload u;
    char query[512];
    int rc = -1, started = 0;

    memset(&u, 0, sizeof(u));
    u.part_size = (size_t)s->cfg->part_size;
    if ((len + u.part_size - 1) / u.part_size > S3_MAX_PARTS) /* keep within 10000 parts */
        u.part_size = ((len / S3_MAX_PARTS) | ((1u << 20) - 1)) + 1;
    u.nparts = (unsigned)((len + u.part_size - 1) / u.part_size);

    c.verb = "start a multipart upload of";
    c.method = "POST";
    c.object = obj;
    c.query = "uploads=";
    c.object_headers = 1;
    c.out = &body;
    c.out_max = S3_ERRBODY_MAX;
    if (s3_perform(s, &c, err) < 0)
        goto out;
    doc = xml_parse(&body);
    uid = doc ? xml_text(xmlDocGetRootElement(doc), "UploadId") : NULL;
    if (!uid || !*uid) {
        sm_err_set(err, SM_E_IO, "cannot start a multipart upload of '%s' in S3 bucket '%s': "
                   "no UploadId in the answer", obj, s->cfg->bucket);
        goto out;
    }
    pct_encode(&enc, (const char *)uid, NULL);
    started = 1;

    u.s = s;
    u.obj = obj;
    u.upload_id = sm_buf_str(&enc);
    u.data = data;
    u.len = len;
    u.etags = sm_xcalloc(u.nparts, sizeof(*u.etags));
    if (store_parallel(u.nparts, s->cfg->parallel, mp_part, &u, err) < 0)
        goto out;

    sm_buf_puts(&xml, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < u.nparts; i++)
        sm_buf_putf(&xml, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1,
                    u.etags[i]);
    sm_buf_puts(&xml, "</CompleteMultipartUpload>");
    snprintf(query, sizeof(query), "uploadId=%s", u.upload_id);
    memset(&c, 0, sizeof(c));
    c.verb = "complete the multipart upload of";
    c.method = "POST";
    c.object = obj;
    c.query = query;
    c.body = xml.data;
    c.len = xml.len;
    c.content_type = "application/xml";
    c.error_in_200 = 1;
    if (s3_perform(s, &c, err) < 0) {
        /* a retried completion can find the upload already completed */
        sm_err e2 = SM_ERR_INIT;
        s3_call h = {0};
        h.verb = "check";
        h.method = "HEAD";
        h.object = obj;
        if (!(err && strstr(err->msg, "NoSuchUpload")) || s3_perform(s, &h, &e2) < 0 ||
            h.clen != (int64_t)len)
            goto out;
    }
    started = 0;
    rc = 0;
out:
    if (started) {
        sm_err e = SM_ERR_INIT;
        if (mp_abort(s, obj, sm_buf_str(&enc), &e) < 0)
            sm_log(SM_LOG_WARN, "s3: %s", e.msg);
    }
    free(u.etags);
    xmlFree(uid);
    xmlFreeDoc(doc);
    sm_buf_release(&body);
    sm_buf_release(&enc);
    sm_buf_release(&xml);
    return rc;
}

/* ------------------------------------------------------------ store ops */

static int s3_put(store *st, const char *key, const void *data, size_t len, sm_err *err)
{
    s3_store *s = st->impl;
    char *obj = object_name(s, key);
    int rc;

    if (len > s->cfg->multipart_threshold)
        rc = multipart_put(s, obj, data, len, err);
    else
        rc = single_put(s, obj, data, len, err);
    rcache_forget(s, obj);
    free(obj);
    return rc;
}

/* ------------------------------------------------------- read-ahead cache */

/* Reads of packs (data/...) go blob by blob. When they run sequentially
 * through an object (a restore), one ranged GET of a readahead-sized window
 * serves the next blobs from memory: one request where there were dozens.
 * Scattered reads (a walk of the parent's trees) are left alone. Packs are
 * immutable, so a window stays valid; deletes drop the object's windows.
 * Memory stays under cfg->cache; windows being fetched are waited for, so
 * parallel readers of one pack share one request. */
typedef struct rwin {
    char *obj;
    uint64_t start, end; /* [start, end): tentative while loading */
    int ready;
    uint64_t used;       /* LRU tick */
    sm_buf data;
} rwin;

typedef struct rcache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rwin **v;
    size_t n, cap;
    uint64_t bytes, tick;
    struct {
        char *obj;
        uint64_t end;
    } seen[S3_SEQ_TRACK]; /* recent reads, round robin */
    unsigned next_seen;
} rcache;

static rcache *rcache_new(void)
{
    rcache *rc = sm_xcalloc(1, sizeof(*rc));
    pthread_mutex_init(&rc->mu, NULL);
    pthread_cond_init(&rc->cv, NULL);
    return rc;
}

static void rwin_free(rwin *w)
{
    free(w->obj);
    sm_buf_release(&w->data);
    free(w);
}

static void rcache_free(rcache *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < rc->n; i++)
        rwin_free(rc->v[i]);
    for (unsigned i = 0; i < S3_SEQ_TRACK; i++)
        free(rc->seen[i].obj);
    free(rc->v);
    pthread_cond_destroy(&rc->cv);
    pthread_mutex_destroy(&rc->mu);
    free(rc);
}

static void rcache_remove_at(rcache *rc, size_t i)
{
    if (rc->v[i]->ready)
        rc->bytes -= rc->v[i]->data.len;
    rwin_free(rc->v[i]);
    rc->v[i] = rc->v[--rc->n];
}

/* Drops the windows of obj (deleted or rewritten); those still loading
 * are left to their loader, which finds them gone. Locked by the caller. */
static void rcache_forget_locked(rcache *rc, const char *obj)
{
    for (size_t i = 0; i < rc->n;)
        if (rc->v[i]->ready && !strcmp(rc->v[i]->obj, obj))
            rcache_remove_at(rc, i);
        else
            i++;
}

static void rcache_forget(s3_store *s, const char *obj)
{
    if (!s->rc)
        return;
    pthread_mutex_lock(&s->rc->mu);
    rcache_forget_locked(s->rc, obj);
    pthread_mutex_unlock(&s->rc->mu);
}

/* 1 when a read at off follows closely on an earlier read's end; records
 * this read's end either way. Locked by the caller. */
static int rcache_sequential(rcache *rc, const char *obj, uint64_t off, uint64_t end)
{
    int seq = 0;
    unsigned k;

    for (unsigned i = 0; i < S3_SEQ_TRACK && !seq; i++)
        if (rc->seen[i].obj && !strcmp(rc->seen[i].obj, obj) &&
            off + S3_SEQ_SLACK >= rc->seen[i].end && off <= rc->seen[i].end + S3_SEQ_SLACK)
            seq = 1;
    k = rc->next_seen++ % S3_SEQ_TRACK;
    free(rc->seen[k].obj);
    rc->seen[k].obj = sm_xstrdup(obj);
    rc->seen[k].end = end;
    return seq;
}

/* Serves [off, off+len) of obj from a window, fetching one when the read is
 * sequential. 0 served, 1 not served (the caller reads it itself). */
static int rcache_get(s3_store *s, const char *obj, uint64_t off, uint64_t len, sm_buf *out)
{
    rcache *rc = s->rc;
    rwin *w = NULL;
    s3_call c = {0};
    sm_err e = SM_ERR_INIT;
    int served = 1, ok;

    pthread_mutex_lock(&rc->mu);
    for (;;) {
        rwin *hit = NULL;
        for (size_t i = 0; i < rc->n && !hit; i++)
            if (!strcmp(rc->v[i]->obj, obj) && rc->v[i]->start <= off &&
                off + len <= rc->v[i]->end)
                hit = rc->v[i];
        if (!hit)
            break;
        if (hit->ready) {
            hit->used = ++rc->tick;
            sm_buf_reset(out);
            sm_buf_put(out, hit->data.data + (off - hit->start), (size_t)len);
            rcache_sequential(rc, obj, off, off + len);
            pthread_mutex_unlock(&rc->mu);
            return 0;
        }
        pthread_cond_wait(&rc->cv, &rc->mu); /* being fetched: wait, then look again */
    }
    if (!rcache_sequential(rc, obj, off, off + len)) {
        pthread_mutex_unlock(&rc->mu);
        return 1;
    }
    w = sm_xcalloc(1, sizeof(*w));
    w->obj = sm_xstrdup(obj);
    w->start = off;
    w->end = off + (len > s->cfg->readahead ? len : s->cfg->readahead);
    SM_GROW(rc->v, rc->cap, rc->n + 1);
    rc->v[rc->n++] = w;
    pthread_mutex_unlock(&rc->mu);

    c.verb = "read";
    c.method = "GET";
    c.object = obj;
    c.out = &w->data;
    c.range = 1;
    c.off = w->start;
    c.rlen = w->end - w->start;
    c.out_max = (size_t)c.rlen;
    ok = s3_perform(s, &c, &e) == 0 && c.status == 206;

    pthread_mutex_lock(&rc->mu);
    for (size_t i = 0; i < rc->n; i++) {
        if (rc->v[i] != w)
            continue;
        if (ok) {
            w->end = w->start + w->data.len;
            w->ready = 1;
            w->used = ++rc->tick;
            rc->bytes += w->data.len;
            if (off + len <= w->end) {
                sm_buf_reset(out);
                sm_buf_put(out, w->data.data + (off - w->start), (size_t)len);
                served = 0;
            }
        } else {
            rcache_remove_at(rc, i);
            w = NULL;
        }
        break;
    }
    /* keep within the budget: the least recently used ready windows go */
    while (rc->bytes > s->cfg->cache) {
        size_t victim = rc->n;
        for (size_t i = 0; i < rc->n; i++)
            if (rc->v[i]->ready && rc->v[i] != w &&
                (victim == rc->n || rc->v[i]->used < rc->v[victim]->used))
                victim = i;
        if (victim == rc->n)
            break;
        rcache_remove_at(rc, victim);
    }
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->mu);
    return served; /* on a failure the caller's own read names the error */
}

static int s3_get_with(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out,
                       int readahead, sm_err *err)
{
    s3_store *s = st->impl;
    char *obj = object_name(s, key);
    s3_call c = {0};
    sm_err e = SM_ERR_INIT;
    int rc = -1;

    if (len > SIZE_MAX / 2) {
        sm_err_set(err, SM_E_LIMIT, "object '%s' is too large to read at once", key);
        goto out;
    }
    if (readahead && s->rc && len && len <= s->cfg->readahead / 2 && !strncmp(key, "data/", 5) &&
        rcache_get(s, obj, off, len, out) == 0) {
        rc = 0;
        goto out;
    }
    c.verb = "read";
    c.method = "GET";
    c.object = obj;
    c.out = out;
    if (off || len) {
        c.range = 1;
        c.off = off;
        c.rlen = len;
        c.out_max = (size_t)len;
    }
    if (s3_perform(s, &c, &e) < 0) {
        if (e.code == SM_E_NOTFOUND)
            sm_err_set(err, SM_E_NOTFOUND, "object '%s' is missing from '%s'", key, st->location);
        else if (c.status == 416)
            sm_err_set(err, SM_E_CORRUPT,
                       "object '%s' is truncated: expected at least %llu bytes", key,
                       (unsigned long long)(off + len));
        else
            sm_err_copy(err, &e);
        goto out;
    }
    if (len && c.got != len) {
        sm_err_set(err, SM_E_CORRUPT,
                   "object '%s' is truncated: %zu bytes from offset %llu, expected %llu", key,
                   c.got, (unsigned long long)off, (unsigned long long)len);
        goto out;
    }
    if (c.range && c.status == 200 && off) { /* the server ignored the range */
        sm_err_set(err, SM_E_IO, "S3 ignored the byte range asked for '%s'", obj);
        goto out;
    }
    rc = 0;
out:
    free(obj);
    return rc;
}

static int s3_get(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out,
                  sm_err *err)
{
    return s3_get_with(st, key, off, len, out, 1, err);
}

/* A read planned by the caller (a restore plan): exactly the range asked
 * for, no read-ahead window and nothing kept. */
static int s3_get_planned(store *st, const char *key, uint64_t off, uint64_t len, sm_buf *out,
                          sm_err *err)
{
    return s3_get_with(st, key, off, len, out, 0, err);
}

static int s3_stat(store *st, const char *key, uint64_t *size, sm_err *err)
{
    s3_store *s = st->impl;
    char *obj = object_name(s, key);
    s3_call c = {0};
    sm_err e = SM_ERR_INIT;
    int rc = 0;

    c.verb = "look up";
    c.method = "HEAD";
    c.object = obj;
    if (s3_perform(s, &c, &e) < 0) {
        if (e.code == SM_E_NOTFOUND) {
            rc = 1;
        } else {
            /* a HEAD answer has no body, so no error code: ask again with a
             * one-byte GET to tell the user which refusal it is */
            s3_call g = {0};
            sm_err ge = SM_ERR_INIT;
            g.verb = "look up";
            g.method = "GET";
            g.object = obj;
            g.range = 1;
            g.rlen = 1;
            g.out_max = S3_ERRBODY_MAX;
            if (c.status >= 400 && c.status < 500 && s3_perform(s, &g, &ge) < 0 &&
                g.status == c.status)
                sm_err_copy(&e, &ge);
            rc = -1;
            sm_err_copy(err, &e);
        }
    } else if (size) {
        *size = c.clen >= 0 ? (uint64_t)c.clen : 0;
    }
    free(obj);
    return rc;
}

static int s3_list(store *st, const char *prefix, store_list_cb cb, void *ud, sm_err *err)
{
    s3_store *s = st->impl;
    char *full = object_name(s, prefix);
    size_t plen = strlen(s->cfg->prefix);
    sm_buf body = SM_BUF_INIT, q = SM_BUF_INIT;
    char *token = NULL;
    int rc = 0;

    if (*prefix && prefix[strlen(prefix) - 1] != '/') {
        free(full);
        return sm_err_set(err, SM_E_INTERNAL, "store prefix '%s' must end with '/'", prefix);
    }
    do {
        s3_call c = {0};
        xmlDoc *doc = NULL;
        xmlNode *root = NULL;
        int truncated = 0;

        /* keys sorted: continuation-token < list-type < prefix */
        sm_buf_reset(&q);
        if (token) {
            sm_buf_puts(&q, "continuation-token=");
            pct_encode(&q, token, NULL);
            sm_buf_puts(&q, "&");
        }
        sm_buf_puts(&q, "list-type=2&prefix=");
        pct_encode(&q, full, NULL);
        free(token);
        token = NULL;
        c.verb = "list";
        c.method = "GET";
        c.subject = full;
        c.query = sm_buf_str(&q);
        c.out = &body;
        c.out_max = S3_LIST_MAX;
        /* a page that arrived whole but does not parse (garbled on the way) is
         * asked for again, like any other transient failure */
        for (unsigned attempt = 0;; attempt++) {
            if (s3_perform(s, &c, err) < 0) {
                rc = -1;
                break;
            }
            doc = xml_parse(&body);
            root = doc ? xmlDocGetRootElement(doc) : NULL;
            if ((root && !strcmp((const char *)root->name, "ListBucketResult")) ||
                attempt >= s->cfg->retries)
                break;
            xmlFreeDoc(doc);
            doc = NULL;
            backoff(s->cfg, attempt);
        }
        if (rc < 0)
            break;
        if (!root || strcmp((const char *)root->name, "ListBucketResult") != 0) {
            xmlFreeDoc(doc);
            rc = sm_err_set(err, SM_E_IO, "cannot list '%s' in S3 bucket '%s': the answer is not "
                            "a ListBucketResult", full, s->cfg->bucket);
            break;
        }
        for (xmlNode *n = root->children; n && rc == 0; n = n->next) {
            xmlChar *k, *sz;
            if (n->type != XML_ELEMENT_NODE)
                continue;
            if (!strcmp((const char *)n->name, "IsTruncated")) {
                xmlChar *t = xmlNodeGetContent(n);
                truncated = t && !strcmp((const char *)t, "true");
                xmlFree(t);
            } else if (!strcmp((const char *)n->name, "NextContinuationToken")) {
                xmlChar *t = xmlNodeGetContent(n);
                free(token);
                token = t ? sm_xstrdup((const char *)t) : NULL;
                xmlFree(t);
            } else if (!strcmp((const char *)n->name, "Contents")) {
                k = xml_text(n, "Key");
                sz = xml_text(n, "Size");
                if (k && !strncmp((const char *)k, s->cfg->prefix, plen) &&
                    store_key_check((const char *)k + plen, NULL) == 0)
                    rc = cb((const char *)k + plen, sz ? strtoull((const char *)sz, NULL, 10) : 0,
                            ud, err);
                xmlFree(k);
                xmlFree(sz);
            }
        }
        xmlFreeDoc(doc);
        if (rc == 0 && truncated && !token)
            rc = sm_err_set(err, SM_E_IO, "cannot list '%s' in S3 bucket '%s': a truncated "
                            "answer without a continuation token", full, s->cfg->bucket);
        if (!truncated) {
            free(token);
            token = NULL;
        }
    } while (rc == 0 && token);
    free(token);
    free(full);
    sm_buf_release(&body);
    sm_buf_release(&q);
    return rc;
}

static int s3_del(store *st, const char *key, sm_err *err)
{
    s3_store *s = st->impl;
    char *obj = object_name(s, key);
    s3_call c = {0};
    sm_err e = SM_ERR_INIT;
    int rc = 0;

    c.verb = "delete";
    c.method = "DELETE";
    c.object = obj;
    rcache_forget(s, obj);
    if (s3_perform(s, &c, &e) < 0 && e.code != SM_E_NOTFOUND) {
        sm_err_copy(err, &e);
        rc = -1;
    }
    free(obj);
    return rc;
}

/* Aborts the multipart uploads left under the prefix by processes that
 * died mid-upload. Called by prune, which holds the exclusive lock, so no
 * live writer of this repository has one in flight. Servers without
 * ListMultipartUploads (s3rver) are skipped. */
static int s3_cleanup(store *st, unsigned *removed, sm_err *err)
{
    s3_store *s = st->impl;
    sm_buf body = SM_BUF_INIT, q = SM_BUF_INIT;
    s3_call c = {0};
    sm_err e = SM_ERR_INIT;
    xmlDoc *doc = NULL;
    xmlNode *root;
    int rc = 0;

    sm_buf_puts(&q, "prefix=");
    pct_encode(&q, s->cfg->prefix, NULL);
    sm_buf_puts(&q, "&uploads=");
    c.verb = "list the unfinished uploads under";
    c.subject = s->cfg->prefix;
    c.method = "GET";
    c.query = sm_buf_str(&q);
    c.out = &body;
    c.out_max = S3_LIST_MAX;
    if (s3_perform(s, &c, &e) < 0) {
        if (c.status != 501 && c.status != 405 && c.status != 400) { /* not implemented there */
            sm_err_copy(err, &e);
            rc = -1;
        }
        goto out;
    }
    doc = xml_parse(&body);
    root = doc ? xmlDocGetRootElement(doc) : NULL;
    for (xmlNode *n = root ? root->children : NULL; n && rc == 0; n = n->next) {
        xmlChar *k, *id;
        if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, "Upload") != 0)
            continue;
        k = xml_text(n, "Key");
        id = xml_text(n, "UploadId");
        if (k && id && !strncmp((const char *)k, s->cfg->prefix, strlen(s->cfg->prefix))) {
            sm_buf enc = SM_BUF_INIT;
            pct_encode(&enc, (const char *)id, NULL);
            if (mp_abort(s, (const char *)k, sm_buf_str(&enc), err) < 0)
                rc = -1;
            else
                (*removed)++;
            sm_buf_release(&enc);
        }
        xmlFree(k);
        xmlFree(id);
    }
out:
    xmlFreeDoc(doc);
    sm_buf_release(&body);
    sm_buf_release(&q);
    return rc;
}

static void s3_free(store *st)
{
    s3_store *s = st->impl;

    for (unsigned i = 0; i < s->nidle; i++)
        curl_easy_cleanup(s->idle[i]);
    rcache_free(s->rc);
    pthread_mutex_destroy(&s->mu);
    s3_settings_free(s->cfg);
    free(s->base_url);
    free(s->bucket_path);
    free(s->sigv4);
    free(s->access);
    if (s->secret)
        sm_wipe(s->secret, strlen(s->secret));
    free(s->secret);
    free(s->token);
    free(s);
    free(st->location);
    free(st);
}

static const store_ops s3_ops = {
    .put = s3_put,
    .get = s3_get,
    .get_planned = s3_get_planned,
    .stat = s3_stat,
    .list = s3_list,
    .del = s3_del,
    .cleanup = s3_cleanup,
    .free = s3_free,
    .costly_requests = 1,
};

int store_s3_open(store **out, const char *location, sm_err *err)
{
    s3_settings *cfg = NULL;
    s3_store *s;
    store *st;
    const char *env_ep = getenv("AWS_ENDPOINT_URL_S3");
    const char *region;
    char *endpoint, *where;
    size_t plen;

    *out = NULL;
    if (s3_settings_parse(&cfg, location, err) < 0)
        return -1;
    if (!env_ep || !*env_ep)
        env_ep = getenv("AWS_ENDPOINT_URL");
    region = cfg->region ? cfg->region : getenv("AWS_REGION");
    if (!region || !*region)
        region = getenv("AWS_DEFAULT_REGION");
    if (!region || !*region)
        region = "us-east-1";
    if (cfg->endpoint)
        endpoint = sm_xstrdup(cfg->endpoint);
    else if (env_ep && *env_ep) {
        endpoint = sm_xstrdup(env_ep);
        while (*endpoint && endpoint[strlen(endpoint) - 1] == '/')
            endpoint[strlen(endpoint) - 1] = '\0';
        if (endpoint_check(endpoint, err) < 0) {
            free(endpoint);
            s3_settings_free(cfg);
            return -1;
        }
    } else
        endpoint = sm_xasprintf("https://s3.%s.amazonaws.com", region);

    s = sm_xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    pthread_mutex_init(&s->mu, NULL);
    if (cfg->readahead && cfg->cache >= cfg->readahead)
        s->rc = rcache_new();
    plen = strlen(cfg->prefix);
    where = plen ? sm_xasprintf("s3://%s/%.*s", cfg->bucket, (int)(plen - 1), cfg->prefix)
                 : sm_xasprintf("s3://%s", cfg->bucket);
    if (cfg->path_style == 1 || (cfg->path_style < 0 && (cfg->endpoint || (env_ep && *env_ep)))) {
        s->base_url = endpoint;
        s->bucket_path = sm_xasprintf("/%s", cfg->bucket);
    } else {
        const char *host = strstr(endpoint, "://") + 3;
        s->base_url = sm_xasprintf("%.*s%s.%s", (int)(host - endpoint), endpoint, cfg->bucket,
                                   host);
        s->bucket_path = sm_xstrdup("");
        free(endpoint);
    }
    s->sigv4 = sm_xasprintf("aws:amz:%s:s3", region);
    st = sm_xcalloc(1, sizeof(*st));
    st->ops = &s3_ops;
    st->impl = s;
    st->location = where;
    if (load_credentials(s, where, err) < 0) {
        s3_free(st);
        return -1;
    }
    *out = st;
    return 0;
}
