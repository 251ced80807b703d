#include "service/http.h"

#include "core/buf.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HTTP_DEFAULT_LISTEN "127.0.0.1:8080"
#define HTTP_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define HTTP_DEFAULT_MAX_UPLOAD ((uint64_t)10 << 30)
#define HTTP_CONN_LIMIT 1000u
#define HTTP_IDLE_TIMEOUT_S 300u
#define HTTP_MAX_SEGMENTS 32
/* A rejected request body (413, 415, ...) is read and dropped up to this
 * size so that the client gets the answer; past it the connection is closed. */
#define HTTP_DISCARD_MAX ((uint64_t)16 << 20)
/* Multipart framing and the small form fields allowed on top of max_upload. */
#define HTTP_FORM_SLACK ((uint64_t)1 << 20)
#define HTTP_FIELD_MAX ((size_t)64 << 10)
#define HTTP_FIELDS_MAX 32
#define HTTP_PP_BUFFER 32768
#define SSE_KEEPALIVE_MS 15000u
#define SSE_BLOCK 16384
/* Events queued for one client beyond this: the client is too slow, drop it. */
#define SSE_QUEUE_MAX ((size_t)4 << 20)
/* How often a waiting event stream checks whether its client hung up. */
#define SSE_POLL_MS 1000u

#define HTTP_CSP                                                                                   \
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "              \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/* ---- small helpers ---- */

typedef struct kv {
    char *k;
    char *v;
} kv;

typedef struct kvlist {
    kv *v;
    size_t n, cap;
} kvlist;

static void kv_add(kvlist *l, const char *k, const char *v)
{
    SM_GROW(l->v, l->cap, l->n + 1);
    l->v[l->n].k = sm_xstrdup(k);
    l->v[l->n].v = sm_xstrdup(v ? v : "");
    l->n++;
}

static const char *kv_get(const kvlist *l, const char *k)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].k, k))
            return l->v[i].v;
    return NULL;
}

static void kv_clear(kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].k);
        free(l->v[i].v);
    }
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int hexdigit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes (s, n). strict: a bad escape fails (NULL); otherwise it is
 * kept as is. *len gets the decoded length (the result may hold NULs). */
static char *pct_decode(const char *s, size_t n, int strict, size_t *len)
{
    char *out = sm_xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexdigit((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexdigit((unsigned char)s[i + 2]) : -1;
            if (hi >= 0 && lo >= 0) {
                out[o++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
            if (strict) {
                free(out);
                return NULL;
            }
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    *len = o;
    return out;
}

/* A JSON string of untrusted text: bytes jansson refuses (invalid UTF-8)
 * become '?'. */
static json_t *json_text(const char *s)
{
    json_t *j;
    char *copy;

    if (!s)
        return json_null();
    j = json_string(s);
    if (j)
        return j;
    copy = sm_xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j ? j : json_string("?");
}

json_t *http_json_text(const char *s)
{
    return json_text(s);
}

/* "64 KiB", "1 MiB", "10 GiB" or "123 bytes", for limit messages. */
static void fmt_limit(char *out, size_t cap, uint64_t n)
{
    if (n && n % ((uint64_t)1 << 30) == 0)
        snprintf(out, cap, "%llu GiB", (unsigned long long)(n >> 30));
    else if (n && n % ((uint64_t)1 << 20) == 0)
        snprintf(out, cap, "%llu MiB", (unsigned long long)(n >> 20));
    else if (n && n % ((uint64_t)1 << 10) == 0)
        snprintf(out, cap, "%llu KiB", (unsigned long long)(n >> 10));
    else
        snprintf(out, cap, "%llu bytes", (unsigned long long)n);
}

/* Is the Content-Type value (parameters ignored) the given media type? */
static int media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);

    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, type, n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* ---- Server-Sent Events: the streams and their registry ---- */

/* The registry of live streams. It is reference-counted by the server and
 * by each stream, so that a producer may close its stream after the server
 * is gone. */
typedef struct sse_hub {
    pthread_mutex_t mu;
    http_sse *head;
    unsigned refs;
    int stopping;
} sse_hub;

struct http_sse {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* one for the MHD response (its free callback), one for the producer
     * (http_sse_close), one for the request (the access log) */
    unsigned refs;
    sse_hub *hub;
    http_sse *prev, *next; /* in hub, under hub->mu */
    sm_buf q;              /* bytes not yet handed to MHD */
    size_t qoff;
    int closed;   /* the producer is done: end after the queue drains */
    int gone;     /* the client went away (or was too slow) */
    int stopping; /* the server stops: end now */
    int fd;       /* the connection's socket, to notice hang-ups */
    unsigned keepalive_ms;
    double last_write;
    uint64_t bytes;
};

static sse_hub *hub_new(void)
{
    sse_hub *h = sm_xcalloc(1, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    h->refs = 1;
    return h;
}

static void hub_release(sse_hub *h)
{
    unsigned left;

    pthread_mutex_lock(&h->mu);
    left = --h->refs;
    pthread_mutex_unlock(&h->mu);
    if (left)
        return;
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static void hub_stop(sse_hub *h)
{
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    for (http_sse *s = h->head; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&h->mu);
}

static void sse_release(http_sse *s)
{
    unsigned left;
    sse_hub *h = s->hub;

    pthread_mutex_lock(&s->mu);
    left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left)
        return;
    /* Unlink under the hub lock: hub_stop may be looking at s right now. */
    pthread_mutex_lock(&h->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&h->mu);
    hub_release(h);
    sm_buf_release(&s->q);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int peer_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};

    if (fd < 0)
        return 0;
    if (poll(&p, 1, 0) <= 0)
        return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* MHD's content reader: runs on the connection's thread and blocks until
 * there is something to send (an event, a keep-alive comment) or the stream
 * ends. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_sse *s = cls;
    ssize_t rc;
    (void)pos;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        double now, due;
        unsigned wait_ms;
        struct timespec ts;

        if (s->stopping) {
            rc = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        if (s->gone) {
            rc = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        if (s->q.len > s->qoff) {
            size_t n = s->q.len - s->qoff;
            if (n > max)
                n = max;
            memcpy(buf, s->q.data + s->qoff, n);
            s->qoff += n;
            if (s->qoff == s->q.len) {
                sm_buf_reset(&s->q);
                s->qoff = 0;
            } else if (s->qoff >= (64u << 10)) {
                memmove(s->q.data, s->q.data + s->qoff, s->q.len - s->qoff);
                s->q.len -= s->qoff;
                s->q.data[s->q.len] = '\0';
                s->qoff = 0;
            }
            s->bytes += n;
            s->last_write = sm_mono();
            rc = (ssize_t)n;
            break;
        }
        if (s->closed) {
            rc = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        now = sm_mono();
        due = s->last_write + s->keepalive_ms / 1000.0;
        if (now >= due) {
            sm_buf_puts(&s->q, ":keepalive\n\n");
            continue;
        }
        wait_ms = (unsigned)((due - now) * 1000.0) + 1;
        if (wait_ms > SSE_POLL_MS)
            wait_ms = SSE_POLL_MS;
        deadline_in(&ts, wait_ms);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (!s->stopping && !s->closed && s->q.len == s->qoff && peer_hung_up(s->fd))
            s->gone = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* MHD destroys the response: the connection is over. */
static void sse_response_free(void *cls)
{
    http_sse *s = cls;

    pthread_mutex_lock(&s->mu);
    s->gone = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    sse_release(s);
}

/* ---- the server and its requests ---- */

typedef struct route_seg {
    char *lit; /* NULL for a {parameter} */
    char *name;
} route_seg;

typedef struct croute {
    const http_route *r;
    route_seg *segs;
    size_t nsegs;
    size_t literals;
} croute;

struct http_server {
    struct MHD_Daemon *d;
    int listen_fd; /* ours until MHD_start_daemon succeeds */
    unsigned port;
    croute *routes;
    size_t nroutes;
    void *ud;
    size_t max_body;
    uint64_t max_upload;
    char *upload_dir;
    int own_upload_dir;
    int access_log;
    unsigned keepalive_ms;
    sse_hub *hub;
};

typedef struct form_field {
    char *name;
    sm_buf val;
} form_field;

struct http_req {
    http_server *srv;
    struct MHD_Connection *conn;
    const croute *route;
    char id[40];
    char *method;
    char *raw_path; /* as received, without the query */
    char *path;     /* decoded */
    kvlist params;
    kvlist query;
    kvlist extra; /* headers for the next response */
    double t0;
    char remote[INET6_ADDRSTRLEN];
    char user[128];
    void *user_data;
    int upload;

    /* body */
    int has_body;
    uint64_t content_length; /* UINT64_MAX when unknown (chunked) */
    sm_buf body;
    json_t *json;
    uint64_t body_seen;

    /* an answer decided before the handler runs */
    unsigned rej_status;
    const char *rej_code;
    char *rej_msg;
    uint64_t discarded;

    /* upload */
    struct MHD_PostProcessor *pp;
    int up_fd;
    char *up_path;
    char *up_filename;
    uint64_t up_bytes;
    form_field *fields;
    size_t nfields, cap_fields;

    /* response */
    int answered;
    int queue_failed;
    unsigned status;
    uint64_t bytes;
    http_sse *sse;
};

static void reject(http_req *rq, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reject(http_req *rq, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (rq->rej_status)
        return; /* the first reason stands */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rq->rej_status = status;
    rq->rej_code = code;
    rq->rej_msg = sm_xstrdup(msg);
}

static void upload_discard(http_req *rq)
{
    if (rq->up_fd >= 0) {
        close(rq->up_fd);
        rq->up_fd = -1;
    }
    if (rq->up_path) {
        if (unlink(rq->up_path) != 0 && errno != ENOENT)
            sm_log(SM_LOG_WARN, "request %s: cannot remove the upload '%s': %s", rq->id,
                   rq->up_path, strerror(errno));
        free(rq->up_path);
        rq->up_path = NULL;
    }
}

static void req_free(http_req *rq)
{
    if (!rq)
        return;
    if (rq->pp)
        MHD_destroy_post_processor(rq->pp);
    upload_discard(rq);
    free(rq->up_filename);
    for (size_t i = 0; i < rq->nfields; i++) {
        free(rq->fields[i].name);
        sm_buf_release(&rq->fields[i].val);
    }
    free(rq->fields);
    if (rq->sse)
        sse_release(rq->sse);
    kv_clear(&rq->params);
    kv_clear(&rq->query);
    kv_clear(&rq->extra);
    sm_buf_release(&rq->body);
    json_decref(rq->json);
    free(rq->rej_msg);
    free(rq->method);
    free(rq->raw_path);
    free(rq->path);
    free(rq);
}

/* ---- responses ---- */

static void add_default(struct MHD_Response *resp, const char *name, const char *value)
{
    if (!MHD_get_response_header(resp, name))
        MHD_add_response_header(resp, name, value);
}

/* Applies the headers added with http_add_header (they win over ours). */
static void apply_extra(http_req *rq, struct MHD_Response *resp)
{
    for (size_t i = 0; i < rq->extra.n; i++)
        if (MHD_add_response_header(resp, rq->extra.v[i].k, rq->extra.v[i].v) != MHD_YES)
            sm_log(SM_LOG_WARN, "request %s: response header '%s' refused (bad characters?)",
                   rq->id, rq->extra.v[i].k);
    kv_clear(&rq->extra);
}

/* Adds our headers, queues and releases resp. cache: Cache-Control or NULL. */
static int queue(http_req *rq, unsigned status, struct MHD_Response *resp, const char *cache,
                 uint64_t bytes)
{
    enum MHD_Result r;

    if (rq->answered) {
        sm_log(SM_LOG_WARN, "request %s: %s %s: a second response was refused", rq->id, rq->method,
               rq->raw_path);
        MHD_destroy_response(resp);
        return -1;
    }
    add_default(resp, "X-Request-Id", rq->id);
    add_default(resp, "Content-Security-Policy", HTTP_CSP);
    add_default(resp, "X-Content-Type-Options", "nosniff");
    add_default(resp, "Referrer-Policy", "no-referrer");
    add_default(resp, "X-Frame-Options", "DENY");
    if (cache)
        add_default(resp, "Cache-Control", cache);
    r = MHD_queue_response(rq->conn, status, resp);
    MHD_destroy_response(resp);
    rq->answered = 1;
    rq->status = status;
    rq->bytes = bytes;
    if (r != MHD_YES) {
        rq->queue_failed = 1;
        return -1;
    }
    return 0;
}

/* Sends a buffer we own (malloc'd, freed by MHD). */
static int send_owned(http_req *rq, unsigned status, const char *ctype, const char *cache,
                      char *data, size_t len)
{
    struct MHD_Response *resp;

    resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        rq->queue_failed = 1;
        kv_clear(&rq->extra);
        return -1;
    }
    apply_extra(rq, resp);
    if (ctype)
        add_default(resp, "Content-Type", ctype);
    return queue(rq, status, resp, cache, len);
}

static int send_error(http_req *rq, unsigned status, const char *code, const char *msg)
{
    json_t *doc;
    char *txt;

    if (status >= 500)
        sm_log(SM_LOG_ERROR, "request %s: %s %s: %u %s: %s", rq->id, rq->method, rq->raw_path,
               status, code, msg);
    if (status == 401 && !kv_get(&rq->extra, "WWW-Authenticate"))
        kv_add(&rq->extra, "WWW-Authenticate", "Bearer");
    doc = json_object();
    json_object_set_new(doc, "error", json_text(code));
    json_object_set_new(doc, "message", json_text(msg));
    json_object_set_new(doc, "request_id", json_string(rq->id));
    txt = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!txt) {
        rq->queue_failed = 1;
        return -1;
    }
    return send_owned(rq, status, "application/json", "no-store", txt, strlen(txt));
}

int http_error(http_req *rq, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return send_error(rq, status, code, msg);
}

int http_error_from(http_req *rq, const sm_err *err)
{
    unsigned status = 500;
    const char *code = "internal";
    char msg[SM_ERR_MSG_MAX + SM_ERR_HINT_MAX + 4];

    if (!err || err->code == SM_OK)
        return send_error(rq, 500, "internal", "unknown error (no error was recorded)");
    switch (err->code) {
    case SM_E_NOTFOUND:
        status = 404;
        code = "not_found";
        break;
    case SM_E_INVALID:
    case SM_E_USAGE:
        status = 400;
        code = "invalid_request";
        break;
    case SM_E_CONFLICT:
    case SM_E_LOCKED:
    case SM_E_EXISTS:
        status = 409;
        code = "conflict";
        break;
    case SM_E_FORBIDDEN:
        status = 403;
        code = "forbidden";
        break;
    case SM_E_AUTH:
        status = 401;
        code = "unauthorized";
        break;
    case SM_E_LIMIT:
        status = 413;
        code = "payload_too_large";
        break;
    default:
        break;
    }
    if (err->hint[0])
        snprintf(msg, sizeof(msg), "%s. %s", err->msg, err->hint);
    else
        snprintf(msg, sizeof(msg), "%s", err->msg);
    return send_error(rq, status, code, msg);
}

int http_json(http_req *rq, unsigned status, json_t *doc)
{
    char *txt;

    if (!doc)
        return send_error(rq, 500, "internal", "the response document could not be built");
    txt = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!txt)
        return send_error(rq, 500, "internal", "the response document could not be encoded");
    return send_owned(rq, status, "application/json", "no-store", txt, strlen(txt));
}

int http_static(http_req *rq, unsigned status, const char *content_type, const void *data,
                size_t len)
{
    char *copy = sm_xmalloc(len ? len : 1);

    if (len)
        memcpy(copy, data, len);
    return send_owned(rq, status, content_type,
                      media_is(content_type, "application/json") ? "no-store" : NULL, copy, len);
}

void http_add_header(http_req *rq, const char *name, const char *value)
{
    kv_add(&rq->extra, name, value);
}

/* 'attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded' */
static char *content_disposition(const char *name)
{
    static const char attr[] = "!#$&+-.^_`|~";
    sm_buf b = SM_BUF_INIT;

    sm_buf_puts(&b, "attachment; filename=\"");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 strchr("._-+()[] ", *p);
        sm_buf_putc(&b, ok ? *p : '_');
    }
    sm_buf_puts(&b, "\"; filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(attr, *p))
            sm_buf_putc(&b, *p);
        else
            sm_buf_putf(&b, "%%%02X", *p);
    }
    return sm_buf_detach(&b, NULL);
}

/* Digits at *s into *v, saturating; advances *s. Returns the digit count. */
static size_t parse_digits(const char **s, uint64_t *v)
{
    size_t n = 0;

    *v = 0;
    while (**s >= '0' && **s <= '9') {
        unsigned d = (unsigned)(**s - '0');
        *v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
        (*s)++;
        n++;
    }
    return n;
}

/* One "bytes=" range against size: 1 partial (start, len), 0 ignore and
 * send everything (absent, invalid, several ranges), -1 unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *len)
{
    uint64_t a, b;

    if (!h)
        return 0;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "bytes", 5) != 0)
        return 0;
    h += 5;
    while (*h == ' ')
        h++;
    if (*h++ != '=')
        return 0;
    if (strchr(h, ','))
        return 0;
    while (*h == ' ')
        h++;
    if (*h == '-') {
        h++;
        if (!parse_digits(&h, &b))
            return 0;
        while (*h == ' ')
            h++;
        if (*h)
            return 0;
        if (b == 0 || size == 0)
            return -1;
        if (b > size)
            b = size;
        *start = size - b;
        *len = b;
        return 1;
    }
    if (!parse_digits(&h, &a) || *h++ != '-')
        return 0;
    if (parse_digits(&h, &b)) {
        if (b < a)
            return 0;
    } else {
        b = UINT64_MAX;
    }
    while (*h == ' ')
        h++;
    if (*h)
        return 0;
    if (a >= size)
        return -1;
    if (b > size - 1)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return 1;
}

static void http_date(char *out, size_t cap, time_t t)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int http_file(http_req *rq, const char *path, const char *content_type, const char *filename)
{
    struct MHD_Response *resp = NULL;
    struct stat st;
    uint64_t size, start = 0, len;
    char etag[64], date[64], crange[96];
    const char *if_range;
    int fd, partial;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return http_error(rq, 404, "not_found", "the requested file does not exist");
        sm_log(SM_LOG_ERROR, "request %s: cannot open '%s': %s", rq->id, path, strerror(e));
        return http_error(rq, 500, "internal", "the requested file cannot be read: %s",
                          strerror(e));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        sm_log(SM_LOG_ERROR, "request %s: '%s' is not a readable regular file", rq->id, path);
        return http_error(rq, 500, "internal", "the requested file is not a regular file");
    }
    size = (uint64_t)st.st_size;
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    len = size;
    partial = parse_range(http_header(rq, "Range"), size, &start, &len);
    if_range = http_header(rq, "If-Range");
    if (partial != 0 && if_range && strcmp(if_range, etag) != 0) {
        partial = 0; /* the client's copy is stale: send it all */
        start = 0;
        len = size;
    }
    if (partial < 0) {
        close(fd);
        snprintf(crange, sizeof(crange), "bytes */%llu", (unsigned long long)size);
        http_add_header(rq, "Content-Range", crange);
        http_add_header(rq, "Accept-Ranges", "bytes");
        return http_error(rq, 416, "range_not_satisfiable",
                          "the requested range is outside the file (%llu bytes)",
                          (unsigned long long)size);
    }
    if (len == 0) {
        close(fd);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        /* MHD owns fd from here (closed with the response) and sends it
         * with sendfile(). */
        resp = MHD_create_response_from_fd_at_offset64(len, fd, start);
        if (!resp)
            close(fd);
    }
    if (!resp)
        return http_error(rq, 500, "internal", "cannot prepare the file response");
    apply_extra(rq, resp);
    add_default(resp, "Content-Type", content_type ? content_type : "application/octet-stream");
    if (filename) {
        char *cd = content_disposition(filename);
        add_default(resp, "Content-Disposition", cd);
        free(cd);
    }
    add_default(resp, "Accept-Ranges", "bytes");
    add_default(resp, "ETag", etag);
    http_date(date, sizeof(date), st.st_mtim.tv_sec);
    add_default(resp, "Last-Modified", date);
    if (partial > 0) {
        snprintf(crange, sizeof(crange), "bytes %llu-%llu/%llu", (unsigned long long)start,
                 (unsigned long long)(start + len - 1), (unsigned long long)size);
        add_default(resp, "Content-Range", crange);
    }
    return queue(rq, partial > 0 ? 206 : 200, resp, "no-store", len);
}

/* ---- SSE, the public side ---- */

int http_sse_begin(http_req *rq, http_sse **out)
{
    const union MHD_ConnectionInfo *ci;
    struct MHD_Response *resp;
    pthread_condattr_t ca;
    http_sse *s;
    sse_hub *h = rq->srv->hub;

    *out = NULL;
    if (rq->answered || rq->sse)
        return -1;
    s = sm_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->refs = 3;
    s->hub = h;
    s->keepalive_ms = rq->srv->keepalive_ms;
    s->last_write = sm_mono();
    ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&h->mu);
    h->refs++;
    s->stopping = h->stopping;
    s->next = h->head;
    if (h->head)
        h->head->prev = s;
    h->head = s;
    pthread_mutex_unlock(&h->mu);

    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, sse_read, s,
                                             sse_response_free);
    if (!resp) {
        sse_release(s);
        sse_release(s);
        sse_release(s);
        return http_error(rq, 500, "internal", "cannot start the event stream");
    }
    apply_extra(rq, resp);
    add_default(resp, "Content-Type", "text/event-stream");
    add_default(resp, "X-Accel-Buffering", "no");
    /* The connection ends with the stream: it has no idle timeout. */
    add_default(resp, "Connection", "close");
    /* The idle timeout must not end a quiet stream (keep-alives aside). */
    MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    rq->sse = s;
    if (queue(rq, 200, resp, "no-cache", 0) < 0) {
        /* MHD dropped the response (and its reference). */
        rq->sse = NULL;
        sse_release(s);
        sse_release(s);
        return -1;
    }
    *out = s;
    return 0;
}

int http_sse_send(http_sse *s, const char *event, const char *data)
{
    sm_buf ev = SM_BUF_INIT;
    int rc = -1;

    if (!s)
        return -1;
    if (event && *event) {
        sm_buf_puts(&ev, "event: ");
        for (const char *p = event; *p; p++)
            sm_buf_putc(&ev, (*p == '\r' || *p == '\n') ? ' ' : *p);
        sm_buf_putc(&ev, '\n');
    }
    /* One data: line per line of data (CR, LF and CRLF all end a line). */
    for (const char *p = data ? data : "";;) {
        size_t n = strcspn(p, "\r\n");
        sm_buf_puts(&ev, "data: ");
        sm_buf_put(&ev, p, n);
        sm_buf_putc(&ev, '\n');
        p += n;
        if (!*p)
            break;
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }
    sm_buf_putc(&ev, '\n');

    pthread_mutex_lock(&s->mu);
    if (s->gone || s->stopping || s->closed) {
        rc = -1;
    } else if (s->q.len - s->qoff + ev.len > SSE_QUEUE_MAX) {
        s->gone = 1; /* the reader ends the connection */
        pthread_cond_broadcast(&s->cv);
        rc = -1;
    } else {
        sm_buf_put(&s->q, ev.data, ev.len);
        pthread_cond_broadcast(&s->cv);
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    sm_buf_release(&ev);
    return rc;
}

void http_sse_close(http_sse *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    sse_release(s);
}

/* ---- the request accessors ---- */

const char *http_method(const http_req *rq)
{
    return rq->method;
}

const char *http_path(const http_req *rq)
{
    return rq->path ? rq->path : rq->raw_path;
}

const char *http_param(const http_req *rq, const char *name)
{
    return kv_get(&rq->params, name);
}

const char *http_query(const http_req *rq, const char *name)
{
    return kv_get(&rq->query, name);
}

const char *http_header(const http_req *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *http_request_id(const http_req *rq)
{
    return rq->id;
}

json_t *http_body_json(http_req *rq, int *answered)
{
    const char *ct;
    json_error_t je;
    json_t *doc;

    if (answered)
        *answered = 0;
    if (rq->json)
        return rq->json;
    if (rq->body.len == 0) {
        rq->json = json_object();
        return rq->json;
    }
    ct = http_header(rq, "Content-Type");
    if (!media_is(ct, "application/json")) {
        http_error(rq, 415, "unsupported_media_type",
                   "the request body must be JSON: send 'Content-Type: application/json' "
                   "(got '%.100s')",
                   ct ? ct : "no Content-Type");
        if (answered)
            *answered = 1;
        return NULL;
    }
    doc = json_loadb((const char *)rq->body.data, rq->body.len, 0, &je);
    if (!doc) {
        http_error(rq, 400, "invalid_json",
                   "the request body is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                   je.column);
        if (answered)
            *answered = 1;
        return NULL;
    }
    rq->json = doc;
    return doc;
}

const char *http_upload_path(http_req *rq)
{
    return rq->up_path;
}

const char *http_upload_filename(http_req *rq)
{
    return rq->up_path ? rq->up_filename : NULL;
}

const char *http_form_field(http_req *rq, const char *name)
{
    for (size_t i = 0; i < rq->nfields; i++)
        if (!strcmp(rq->fields[i].name, name))
            return sm_buf_str(&rq->fields[i].val);
    return NULL;
}

void http_set_user(http_req *rq, const char *who)
{
    snprintf(rq->user, sizeof(rq->user), "%s", who ? who : "");
}

void *http_user_data(http_req *rq)
{
    return rq->user_data;
}

void http_set_user_data(http_req *rq, void *p)
{
    rq->user_data = p;
}

/* ---- routing ---- */

static void routes_free(croute *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < v[i].nsegs; j++) {
            free(v[i].segs[j].lit);
            free(v[i].segs[j].name);
        }
        free(v[i].segs);
    }
    free(v);
}

static int routes_compile(http_server *s, const http_route *routes, sm_err *err)
{
    size_t n = 0;

    while (routes && routes[n].method)
        n++;
    s->routes = sm_xcalloc(n ? n : 1, sizeof(*s->routes));
    s->nroutes = n;
    for (size_t i = 0; i < n; i++) {
        croute *cr = &s->routes[i];
        const char *p = routes[i].pattern;
        size_t cap = 0;

        cr->r = &routes[i];
        if (!p || p[0] != '/' || !routes[i].fn)
            return sm_err_set(err, SM_E_INTERNAL,
                              "route %zu ('%s') is invalid: a pattern "
                              "starts with '/' and a handler is required",
                              i, p ? p : "(null)");
        p++;
        while (*p) {
            size_t len = strcspn(p, "/");
            route_seg seg = {NULL, NULL};
            if (len == 0)
                return sm_err_set(err, SM_E_INTERNAL, "route '%s' has an empty segment",
                                  routes[i].pattern);
            if (p[0] == '{') {
                if (len < 3 || p[len - 1] != '}')
                    return sm_err_set(err, SM_E_INTERNAL, "route '%s' has a bad parameter",
                                      routes[i].pattern);
                seg.name = sm_xstrndup(p + 1, len - 2);
            } else {
                seg.lit = sm_xstrndup(p, len);
                cr->literals++;
            }
            SM_GROW(cr->segs, cap, cr->nsegs + 1);
            cr->segs[cr->nsegs++] = seg;
            p += len;
            if (*p == '/')
                p++;
        }
    }
    return 0;
}

/* Splits and decodes the path, finds the route. Sets rq->route, or
 * rejects with 404/405. */
static void route_request(http_req *rq)
{
    http_server *s = rq->srv;
    char *segs[HTTP_MAX_SEGMENTS];
    size_t nseg = 0, len;
    const char *p = rq->raw_path;
    const croute *best = NULL;
    sm_buf allow = SM_BUF_INIT;
    sm_buf path = SM_BUF_INIT;
    int bad = 0;

    if (p[0] != '/') {
        bad = 1;
        goto out;
    }
    len = strlen(p);
    if (len > 1 && p[len - 1] == '/' && p[len - 2] != '/')
        len--; /* one trailing slash is fine */
    for (size_t i = 1; i < len;) {
        size_t n = strcspn(p + i, "/");
        size_t dlen;
        char *d;

        if (n > len - i)
            n = len - i;
        if (n == 0 || nseg == HTTP_MAX_SEGMENTS) {
            bad = 1; /* "//" or too deep */
            goto out;
        }
        d = pct_decode(p + i, n, 1, &dlen);
        if (!d || dlen != strlen(d) || strchr(d, '/') || !strcmp(d, ".") || !strcmp(d, "..")) {
            free(d);
            bad = 1;
            goto out;
        }
        segs[nseg++] = d;
        sm_buf_putc(&path, '/');
        sm_buf_puts(&path, d);
        i += n + 1;
    }
    if (nseg == 0)
        sm_buf_putc(&path, '/');
    rq->path = sm_buf_detach(&path, NULL);

    for (size_t r = 0; r < s->nroutes; r++) {
        const croute *cr = &s->routes[r];
        int match = cr->nsegs == nseg;
        for (size_t i = 0; match && i < nseg; i++)
            if (cr->segs[i].lit && strcmp(cr->segs[i].lit, segs[i]) != 0)
                match = 0;
        if (!match)
            continue;
        if (!strcmp(cr->r->method, rq->method)) {
            if (!best || cr->literals > best->literals)
                best = cr;
        } else {
            /* list each method once */
            const char *a = sm_buf_str(&allow);
            size_t ml = strlen(cr->r->method);
            int seen = 0;
            for (const char *q = a; *q;) {
                size_t l = strcspn(q, ",");
                if (l == ml && !strncmp(q, cr->r->method, ml))
                    seen = 1;
                q += l;
                while (*q == ',' || *q == ' ')
                    q++;
            }
            if (!seen) {
                if (allow.len)
                    sm_buf_puts(&allow, ", ");
                sm_buf_puts(&allow, cr->r->method);
            }
        }
    }
    if (best) {
        rq->route = best;
        for (size_t i = 0; i < nseg; i++)
            if (!best->segs[i].lit)
                kv_add(&rq->params, best->segs[i].name, segs[i]);
    } else if (allow.len) {
        kv_add(&rq->extra, "Allow", sm_buf_str(&allow));
        reject(rq, 405, "method_not_allowed", "method %s is not allowed on '%.200s': use %s",
               rq->method, rq->path, sm_buf_str(&allow));
    } else {
        bad = 1;
    }
out:
    if (bad)
        reject(rq, 404, "not_found", "no such path: '%.200s'", rq->raw_path);
    for (size_t i = 0; i < nseg; i++)
        free(segs[i]);
    sm_buf_release(&allow);
    sm_buf_release(&path);
}

/* ---- uploads ---- */

static enum MHD_Result upload_piece(http_req *rq, const char *filename, const char *data,
                                    uint64_t off, size_t size)
{
    http_server *s = rq->srv;
    sm_err err = SM_ERR_INIT;
    char lim[32];

    if (off == 0 && rq->up_path && rq->up_bytes > 0) {
        reject(rq, 400, "invalid_request", "the form has more than one 'file' field");
        return MHD_NO;
    }
    if (!rq->up_path) {
        char *tmpl = sm_xasprintf("%s/upload-XXXXXX", s->upload_dir);
        int fd = mkostemp(tmpl, O_CLOEXEC);
        if (fd < 0) {
            sm_log(SM_LOG_ERROR, "request %s: cannot create a file in '%s': %s", rq->id,
                   s->upload_dir, strerror(errno));
            free(tmpl);
            reject(rq, 500, "internal", "the server cannot store the upload (see its log)");
            return MHD_NO;
        }
        fchmod(fd, 0600);
        rq->up_fd = fd;
        rq->up_path = tmpl;
        free(rq->up_filename);
        rq->up_filename = sm_xstrdup(filename ? filename : "");
    }
    if (rq->up_bytes + size > s->max_upload) {
        fmt_limit(lim, sizeof(lim), s->max_upload);
        reject(rq, 413, "payload_too_large", "the upload exceeds the limit of %s", lim);
        return MHD_NO;
    }
    if (size && sm_write_all(rq->up_fd, data, size, rq->up_path, &err) < 0) {
        sm_log(SM_LOG_ERROR, "request %s: %s", rq->id, err.msg);
        if (err.code == SM_E_NOSPC)
            reject(rq, 507, "insufficient_storage",
                   "the server has no space left to store the upload");
        else
            reject(rq, 500, "internal", "the server cannot store the upload (see its log)");
        return MHD_NO;
    }
    rq->up_bytes += size;
    return MHD_YES;
}

static enum MHD_Result field_piece(http_req *rq, const char *key, const char *data, uint64_t off,
                                   size_t size)
{
    form_field *f = NULL;

    for (size_t i = 0; i < rq->nfields; i++)
        if (!strcmp(rq->fields[i].name, key))
            f = &rq->fields[i];
    if (f && off == 0)
        return MHD_YES; /* a repeated field: the first one stands */
    if (!f) {
        if (rq->nfields == HTTP_FIELDS_MAX) {
            reject(rq, 413, "payload_too_large", "the form has more than %d fields",
                   HTTP_FIELDS_MAX);
            return MHD_NO;
        }
        SM_GROW(rq->fields, rq->cap_fields, rq->nfields + 1);
        f = &rq->fields[rq->nfields++];
        f->name = sm_xstrdup(key);
        f->val = (sm_buf)SM_BUF_INIT;
        sm_buf_limit(&f->val, HTTP_FIELD_MAX);
        sm_buf_put(&f->val, "", 0);
    }
    if (sm_buf_add(&f->val, data, size, NULL) < 0) {
        reject(rq, 413, "payload_too_large", "form field '%.64s' exceeds the limit of 64 KiB", key);
        return MHD_NO;
    }
    return MHD_YES;
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size)
{
    http_req *rq = cls;
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;

    if (rq->rej_status)
        return MHD_NO;
    if (!key)
        return MHD_YES;
    if (!strcmp(key, "file"))
        return upload_piece(rq, filename, data, off, size);
    return field_piece(rq, key, data, off, size);
}

/* ---- the MHD callbacks ---- */

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s); /* we decode after splitting the path */
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    http_req *rq = cls;
    size_t kl = 0, vl = 0;
    char *k, *v;
    (void)kind;

    if (!key)
        return MHD_YES;
    k = pct_decode(key, strlen(key), 0, &kl);
    v = pct_decode(value ? value : "", value ? strlen(value) : 0, 0, &vl);
    if (kl != strlen(k) || vl != strlen(v))
        reject(rq, 400, "invalid_request", "a query parameter contains a NUL byte");
    else if (!kv_get(&rq->query, k))
        kv_add(&rq->query, k, v);
    free(k);
    free(v);
    return MHD_YES;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[1024];
    size_t n;
    (void)cls;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(msg, sizeof(msg), fmt, ap);
#pragma GCC diagnostic pop
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    sm_log(SM_LOG_WARN, "http: %s", msg);
}

static http_req *req_new(http_server *s, struct MHD_Connection *conn, const char *url,
                         const char *method)
{
    http_req *rq = sm_xcalloc(1, sizeof(*rq));
    const union MHD_ConnectionInfo *ci;
    char *id = sm_random_hex(8);
    const char *cl, *te;

    rq->srv = s;
    rq->conn = conn;
    rq->t0 = sm_mono();
    rq->up_fd = -1;
    snprintf(rq->id, sizeof(rq->id), "%s", id);
    free(id);
    rq->method = sm_xstrdup(method ? method : "");
    rq->raw_path = sm_xstrndup(url ? url : "", strcspn(url ? url : "", "?"));
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        if (ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET,
                      &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr,
                      rq->remote, sizeof(rq->remote));
        else if (ci->client_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6,
                      &((const struct sockaddr_in6 *)(const void *)ci->client_addr)->sin6_addr,
                      rq->remote, sizeof(rq->remote));
    }
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    rq->content_length = UINT64_MAX;
    if (cl && sm_parse_u64(cl, UINT64_MAX - 1, &rq->content_length) < 0)
        rq->content_length = UINT64_MAX;
    rq->has_body = (cl && rq->content_length != 0) || (te && strcasestr(te, "chunked"));
    return rq;
}

/* Decides what a request needs before its body arrives. */
static void req_prepare(http_req *rq)
{
    http_server *s = rq->srv;
    const char *ct = http_header(rq, "Content-Type");
    char lim[32];

    route_request(rq);
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_query, rq);
    if (rq->rej_status)
        return;
    rq->upload = (rq->route->r->flags & HTTP_UPLOAD) != 0;
    if (!rq->upload) {
        if (rq->content_length != UINT64_MAX && rq->content_length > s->max_body) {
            fmt_limit(lim, sizeof(lim), s->max_body);
            reject(rq, 413, "payload_too_large", "the request body exceeds the limit of %s", lim);
        }
        sm_buf_limit(&rq->body, s->max_body);
        return;
    }
    if (!rq->has_body)
        return; /* no file: the handler says what it needs */
    if (!media_is(ct, "multipart/form-data")) {
        reject(rq, 415, "unsupported_media_type",
               "uploads must be sent as multipart/form-data with the file in the field 'file' "
               "(got '%.100s')",
               ct ? ct : "no Content-Type");
        return;
    }
    if (rq->content_length != UINT64_MAX && rq->content_length > s->max_upload + HTTP_FORM_SLACK) {
        fmt_limit(lim, sizeof(lim), s->max_upload);
        reject(rq, 413, "payload_too_large", "the upload exceeds the limit of %s", lim);
        return;
    }
    rq->pp = MHD_create_post_processor(rq->conn, HTTP_PP_BUFFER, post_iter, rq);
    if (!rq->pp)
        reject(rq, 400, "invalid_request",
               "the multipart/form-data body has no boundary in its Content-Type");
}

static int expects_continue(http_req *rq)
{
    const char *e = http_header(rq, "Expect");
    return e && !strcasecmp(e, "100-continue");
}

static enum MHD_Result answer_reject(http_req *rq)
{
    upload_discard(rq);
    if (send_error(rq, rq->rej_status, rq->rej_code, rq->rej_msg) < 0)
        return MHD_NO;
    return MHD_YES;
}

static enum MHD_Result run_handler(http_req *rq)
{
    http_server *s = rq->srv;

    if (rq->pp) {
        enum MHD_Result done = MHD_destroy_post_processor(rq->pp);
        rq->pp = NULL;
        if (done != MHD_YES) {
            reject(rq, 400, "invalid_request", "the multipart/form-data body is incomplete");
            return answer_reject(rq);
        }
    }
    if (rq->up_fd >= 0) {
        int r = close(rq->up_fd);
        rq->up_fd = -1;
        if (r != 0) {
            sm_log(SM_LOG_ERROR, "request %s: cannot write the upload '%s': %s", rq->id,
                   rq->up_path, strerror(errno));
            reject(rq, 500, "internal", "the server cannot store the upload (see its log)");
            return answer_reject(rq);
        }
    }
    rq->route->r->fn(rq, s->ud);
    /* The spooled file goes now (not when the connection winds down), unless
     * the handler moved it away. */
    upload_discard(rq);
    if (!rq->answered)
        http_error(rq, 500, "internal", "the handler of %s %s sent no response", rq->method,
                   rq->route->r->pattern);
    return rq->queue_failed ? MHD_NO : MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    http_server *s = cls;
    http_req *rq = *con_cls;
    (void)version;

    if (!rq) {
        rq = req_new(s, conn, url, method);
        *con_cls = rq;
        req_prepare(rq);
        /* Answer at once when there is no body to wait for, when the client
         * waits for "100 Continue", or when the body is too big to drain;
         * otherwise read the body first so that the client hears us. */
        if (rq->rej_status &&
            (!rq->has_body || expects_continue(rq) ||
             (rq->content_length != UINT64_MAX && rq->content_length > HTTP_DISCARD_MAX)))
            return answer_reject(rq);
        return MHD_YES;
    }
    if (*data_size) {
        size_t n = *data_size;
        *data_size = 0;
        if (rq->rej_status) {
            rq->discarded += n;
            return rq->discarded > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        rq->body_seen += n;
        if (rq->upload) {
            if (rq->body_seen > s->max_upload + HTTP_FORM_SLACK) {
                char lim[32];
                fmt_limit(lim, sizeof(lim), s->max_upload);
                reject(rq, 413, "payload_too_large", "the upload exceeds the limit of %s", lim);
            } else if (!rq->pp || MHD_post_process(rq->pp, data, n) != MHD_YES) {
                reject(rq, 400, "invalid_request", "the multipart/form-data body is malformed");
            }
            if (rq->rej_status)
                upload_discard(rq);
            return MHD_YES;
        }
        if (sm_buf_add(&rq->body, data, n, NULL) < 0) {
            char lim[32];
            fmt_limit(lim, sizeof(lim), s->max_body);
            reject(rq, 413, "payload_too_large", "the request body exceeds the limit of %s", lim);
            sm_buf_release(&rq->body);
        }
        return MHD_YES;
    }
    if (rq->answered)
        return rq->queue_failed ? MHD_NO : MHD_YES;
    if (rq->rej_status)
        return answer_reject(rq);
    return run_handler(rq);
}

static void access_log(http_req *rq, enum MHD_RequestTerminationCode toe)
{
    struct timespec now;
    struct tm tm;
    char ts[40];
    json_t *o;
    char *line;
    uint64_t bytes = rq->bytes;
    double ms = (sm_mono() - rq->t0) * 1000.0;

    if (rq->sse) {
        pthread_mutex_lock(&rq->sse->mu);
        bytes = rq->sse->bytes;
        pthread_mutex_unlock(&rq->sse->mu);
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "request_id", json_string(rq->id));
    json_object_set_new(o, "method", json_text(rq->method));
    json_object_set_new(o, "path", json_text(rq->raw_path));
    json_object_set_new(o, "status", json_integer(rq->status));
    json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(o, "duration_ms", json_real((double)(long long)(ms * 10.0 + 0.5) / 10.0));
    json_object_set_new(o, "user", rq->user[0] ? json_text(rq->user) : json_null());
    json_object_set_new(o, "remote", json_string(rq->remote));
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        json_object_set_new(o, "aborted", json_true());
    line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(o);
    if (!line)
        return;
    flockfile(stderr);
    fputs(line, stderr);
    fputc('\n', stderr);
    fflush(stderr);
    funlockfile(stderr);
    free(line);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    http_req *rq = *con_cls;
    (void)conn;

    if (!rq)
        return;
    *con_cls = NULL;
    if (s->access_log >= 0)
        access_log(rq, toe);
    req_free(rq);
}

/* ---- start and stop ---- */

static int parse_listen(const char *listen_at, struct sockaddr_in *sa, sm_err *err)
{
    const char *colon = strrchr(listen_at, ':');
    char host[64];
    uint64_t port;
    size_t hl;

    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (!colon || sm_parse_u64(colon + 1, 65535, &port) < 0)
        goto bad;
    hl = (size_t)(colon - listen_at);
    if (hl >= sizeof(host))
        goto bad;
    memcpy(host, listen_at, hl);
    host[hl] = '\0';
    if (hl == 0 || !strcmp(host, "*"))
        snprintf(host, sizeof(host), "0.0.0.0");
    else if (!strcmp(host, "localhost"))
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        goto bad;
    sa->sin_port = htons((uint16_t)port);
    return 0;
bad:
    sm_err_set(err, SM_E_INVALID, "invalid listen address '%s'", listen_at);
    return sm_err_hint(err, "Give ADDR:PORT with an IPv4 address, e.g. 127.0.0.1:8080.");
}

static int open_listener(http_server *s, const char *listen_at, sm_err *err)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int one = 1;

    if (parse_listen(listen_at, &sa, err) < 0)
        return -1;
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->listen_fd < 0)
        return sm_err_sys(err, SM_E_IO, "cannot create a socket to listen on %s", listen_at);
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        sm_err_sys(err, SM_E_IO, "cannot listen on %s", listen_at);
        if (e == EADDRINUSE)
            return sm_err_hint(err, "Another process uses this port: stop it or choose another "
                                    "address.");
        if (e == EACCES)
            return sm_err_hint(err, "Ports below 1024 need privileges: choose a port above 1024.");
        return -1;
    }
    if (listen(s->listen_fd, 511) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot listen on %s", listen_at);
    if (getsockname(s->listen_fd, (struct sockaddr *)&sa, &sl) != 0)
        return sm_err_sys(err, SM_E_IO, "cannot read the address of the socket on %s", listen_at);
    s->port = ntohs(sa.sin_port);
    return 0;
}

static int setup_upload_dir(http_server *s, const char *dir, sm_err *err)
{
    if (!dir || !*dir) {
        s->upload_dir = sm_mkdtemp(NULL, "supamanager-upload", err);
        if (!s->upload_dir)
            return -1;
        s->own_upload_dir = 1;
        return 0;
    }
    if (sm_mkdir_p(dir, 0700, err) < 0)
        return -1;
    if (access(dir, W_OK | X_OK) != 0) {
        sm_err_sys(err, SM_E_IO, "upload directory '%s' is not writable", dir);
        return sm_err_hint(err, "Give the service user write access to it, or choose another "
                                "upload directory.");
    }
    s->upload_dir = sm_xstrdup(dir);
    return 0;
}

static void server_free(http_server *s)
{
    sm_err err = SM_ERR_INIT;

    if (!s)
        return;
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->hub)
        hub_release(s->hub);
    routes_free(s->routes, s->nroutes);
    if (s->own_upload_dir && s->upload_dir && sm_rm_rf(s->upload_dir, &err) < 0)
        sm_log(SM_LOG_WARN, "%s", err.msg);
    free(s->upload_dir);
    free(s);
}

int http_server_start(http_server **out, const http_config *cfg, const http_route *routes, void *ud,
                      sm_err *err)
{
    http_server *s = sm_xcalloc(1, sizeof(*s));
    const char *listen_at = cfg && cfg->listen && *cfg->listen ? cfg->listen : HTTP_DEFAULT_LISTEN;

    *out = NULL;
    s->listen_fd = -1;
    s->ud = ud;
    s->max_body = cfg && cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
    s->max_upload = cfg && cfg->max_upload ? cfg->max_upload : HTTP_DEFAULT_MAX_UPLOAD;
    s->access_log = cfg ? cfg->access_log : 0;
    s->keepalive_ms = cfg && cfg->sse_keepalive_ms ? cfg->sse_keepalive_ms : SSE_KEEPALIVE_MS;
    s->hub = hub_new();
    if (routes_compile(s, routes, err) < 0 ||
        setup_upload_dir(s, cfg ? cfg->upload_dir : NULL, err) < 0 ||
        open_listener(s, listen_at, err) < 0)
        goto fail;
    /* clang-format off */
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                            0, NULL, NULL, on_request, s,
                            /* the logger must be the first option */
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd,
                            MHD_OPTION_CONNECTION_LIMIT, HTTP_CONN_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, HTTP_IDLE_TIMEOUT_S,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                            MHD_OPTION_END);
    /* clang-format on */
    if (!s->d) {
        sm_err_set(err, SM_E_IO, "cannot start the HTTP server on %s", listen_at);
        sm_err_hint(err, "See the messages above for the reason.");
        goto fail;
    }
    s->listen_fd = -1; /* MHD's now */
    *out = s;
    return 0;
fail:
    server_free(s);
    return -1;
}

unsigned http_server_port(const http_server *s)
{
    return s ? s->port : 0;
}

void http_server_stop(http_server *s)
{
    MHD_socket lfd;

    if (!s)
        return;
    /* No new connections, then wake the event streams (they would block
     * MHD_stop_daemon), then wait for the connection threads. */
    lfd = MHD_quiesce_daemon(s->d);
    hub_stop(s->hub);
    MHD_stop_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd); /* a quiesced listening socket is ours to close */
    server_free(s);
}
