/* The HTTP layer (src/service/http.c): routing and path decoding, JSON
 * bodies and errors, security headers, files with Range, uploads streamed
 * to disk, Server-Sent Events, the access log and stopping. Each test runs
 * its own server on 127.0.0.1:0 and talks to it with libcurl. */
#include "../unit_helpers.h"

#include "core/log.h"
#include "core/util.h"
#include "service/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <time.h>

#define FILE_LEN 10000
#define UPLOAD_LEN 5000000
#define SSE_CLIENTS 3

#define CSP_WANT                                                                                   \
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "              \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

typedef struct fx {
    char *dir;
    char *upload_dir;
    char *file_path;
    unsigned char *file_data;
    char *keep_dest;
    http_server *srv;
    char base[64];

    atomic_int item_calls;
    atomic_int upload_calls;
    atomic_int sse_started;
    atomic_int sse_expected;

    pthread_mutex_t mu;
    char last_upload[1024];
    unsigned last_upload_mode;
    pthread_t producers[16];
    int nproducers;
    http_sse *held;
} fx;

/* ---- the test routes ---- */

static int h_echo(http_req *rq, void *ud)
{
    int answered = 0;
    json_t *body = http_body_json(rq, &answered);
    (void)ud;

    if (!body)
        return answered ? 0 : -1;
    return http_json(rq, 200, json_pack("{s:O,s:s}", "body", body, "method", http_method(rq)));
}

static int h_item(http_req *rq, void *ud)
{
    fx *f = ud;

    atomic_fetch_add(&f->item_calls, 1);
    http_set_user(rq, "user-42");
    return http_json(rq, 200,
                     json_pack("{s:s,s:s?,s:s}", "id", http_param(rq, "id"), "q",
                               http_query(rq, "q"), "path", http_path(rq)));
}

static int h_item_delete(http_req *rq, void *ud)
{
    fx *f = ud;

    atomic_fetch_add(&f->item_calls, 1);
    return http_json(rq, 200, json_pack("{s:s}", "deleted", http_param(rq, "id")));
}

static int h_part(http_req *rq, void *ud)
{
    fx *f = ud;

    atomic_fetch_add(&f->item_calls, 1);
    return http_json(rq, 200,
                     json_pack("{s:s,s:s,s:s}", "id", http_param(rq, "id"), "part",
                               http_param(rq, "part"), "path", http_path(rq)));
}

static int sha256_file(const char *path, char hex[65], uint64_t *size)
{
    unsigned char buf[65536], md[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned mdlen = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *size = 0;
    if (fd < 0 || !ctx) {
        EVP_MD_CTX_free(ctx);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    close(fd);
    sm_hex(hex, md, 32);
    return 0;
}

static int h_upload(http_req *rq, void *ud)
{
    fx *f = ud;
    const char *path = http_upload_path(rq);
    struct stat st;
    char hex[65];
    uint64_t size;

    atomic_fetch_add(&f->upload_calls, 1);
    if (!path)
        return http_error(rq, 400, "invalid_request", "no file in the form (field 'file')");
    pthread_mutex_lock(&f->mu);
    snprintf(f->last_upload, sizeof(f->last_upload), "%s", path);
    f->last_upload_mode = stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0;
    pthread_mutex_unlock(&f->mu);
    if (sha256_file(path, hex, &size) < 0)
        return http_error(rq, 500, "internal", "cannot read the upload");
    return http_json(rq, 200,
                     json_pack("{s:I,s:s,s:s,s:s?}", "size", (json_int_t)size, "sha256", hex,
                               "filename", http_upload_filename(rq), "note",
                               http_form_field(rq, "note")));
}

static int h_upload_keep(http_req *rq, void *ud)
{
    fx *f = ud;
    const char *path = http_upload_path(rq);

    if (!path)
        return http_error(rq, 400, "invalid_request", "no file");
    if (rename(path, f->keep_dest) != 0)
        return http_error(rq, 500, "internal", "cannot keep the upload");
    return http_json(rq, 201, json_pack("{s:b}", "kept", 1));
}

static int h_file(http_req *rq, void *ud)
{
    fx *f = ud;
    return http_file(rq, f->file_path, "application/x-test", "report \"Q1\"/\xc3\xbc.bin");
}

/* The fixture, for the producer threads. */
static fx *g_fx;

static void *producer(void *arg)
{
    http_sse *s = arg;

    /* wait (a little) for every client to be connected, so that the
     * streams really run at the same time */
    for (int i = 0; i < 500; i++) {
        if (atomic_load(&g_fx->sse_started) >= atomic_load(&g_fx->sse_expected))
            break;
        usleep(10000);
    }
    http_sse_send(s, "step", "one");
    http_sse_send(s, "log", "line1\nline2");
    http_sse_send(s, "done", "three");
    http_sse_close(s);
    return NULL;
}

static int h_events(http_req *rq, void *ud)
{
    fx *f = ud;
    http_sse *s;
    pthread_t t;

    if (http_sse_begin(rq, &s) < 0)
        return -1;
    atomic_fetch_add(&f->sse_started, 1);
    pthread_mutex_lock(&f->mu);
    if (f->nproducers < 16 && pthread_create(&t, NULL, producer, s) == 0)
        f->producers[f->nproducers++] = t;
    else
        http_sse_close(s);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int h_hold(http_req *rq, void *ud)
{
    fx *f = ud;
    http_sse *s;

    if (http_sse_begin(rq, &s) < 0)
        return -1;
    pthread_mutex_lock(&f->mu);
    f->held = s;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int h_error(http_req *rq, void *ud)
{
    const char *kind = http_param(rq, "kind");
    sm_err err = SM_ERR_INIT;
    (void)ud;

    if (!strcmp(kind, "notfound")) {
        sm_err_set(&err, SM_E_NOTFOUND, "unknown project 'abc'");
        sm_err_hint(&err, "List the projects with GET /platform/projects.");
    } else if (!strcmp(kind, "auth")) {
        sm_err_set(&err, SM_E_AUTH, "token expired at 2026-01-01T00:00:00Z");
    } else if (!strcmp(kind, "conflict")) {
        sm_err_set(&err, SM_E_LOCKED, "project 'abc' is busy");
    } else if (!strcmp(kind, "corrupt")) {
        sm_err_set(&err, SM_E_CORRUPT, "chunk 12 failed its MAC check");
    } else {
        return http_error(rq, 500, "internal", "boom %d", 42);
    }
    return http_error_from(rq, &err);
}

static int h_noresp(http_req *rq, void *ud)
{
    (void)rq;
    (void)ud;
    return 0;
}

static const http_route test_routes[] = {
    {"POST", "/echo", h_echo, 0},
    {"GET", "/items/{id}", h_item, 0},
    {"DELETE", "/items/{id}", h_item_delete, 0},
    {"GET", "/items/{id}/parts/{part}", h_part, 0},
    {"POST", "/upload", h_upload, HTTP_UPLOAD},
    {"POST", "/upload/keep", h_upload_keep, HTTP_UPLOAD},
    {"GET", "/file", h_file, 0},
    {"GET", "/events", h_events, 0},
    {"GET", "/events/hold", h_hold, 0},
    {"GET", "/error/{kind}", h_error, 0},
    {"GET", "/noresp", h_noresp, 0},
    {NULL, NULL, NULL, 0},
};

/* ---- fixture ---- */

static http_server *start_server(fx *f, uint64_t max_upload, const char *upload_dir,
                                 unsigned keepalive_ms)
{
    http_config cfg = {.listen = "127.0.0.1:0",
                       .max_body = 1024,
                       .max_upload = max_upload,
                       .upload_dir = upload_dir,
                       .sse_keepalive_ms = keepalive_ms};
    sm_err err = SM_ERR_INIT;
    http_server *s = NULL;

    if (http_server_start(&s, &cfg, test_routes, f, &err) != 0)
        fail_msg("cannot start the server: %s", err.msg);
    assert_true(http_server_port(s) > 0);
    return s;
}

static int setup(void **state)
{
    fx *f = sm_xcalloc(1, sizeof(*f));

    pthread_mutex_init(&f->mu, NULL);
    f->dir = th_tmpdir();
    f->upload_dir = th_path(f->dir, "uploads");
    f->file_path = th_path(f->dir, "data.bin");
    f->keep_dest = th_path(f->dir, "kept.bin");
    f->file_data = th_random(FILE_LEN, 7);
    th_write(f->file_path, f->file_data, FILE_LEN);
    atomic_store(&f->sse_expected, 1);
    g_fx = f;
    f->srv = start_server(f, 8u << 20, f->upload_dir, 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(f->srv));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;

    http_server_stop(f->srv);
    for (int i = 0; i < f->nproducers; i++)
        pthread_join(f->producers[i], NULL);
    if (f->held)
        http_sse_close(f->held);
    th_rmdir(f->dir);
    free(f->upload_dir);
    free(f->file_path);
    free(f->keep_dest);
    free(f->file_data);
    pthread_mutex_destroy(&f->mu);
    free(f);
    g_fx = NULL;
    return 0;
}

/* ---- a small curl client ---- */

typedef struct resp {
    long status;
    CURLcode rc;
    sm_buf head;
    sm_buf body;
} resp;

static void resp_release(resp *r)
{
    sm_buf_release(&r->head);
    sm_buf_release(&r->body);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    sm_buf_put(ud, p, sz * n);
    return sz * n;
}

static size_t on_head(char *p, size_t sz, size_t n, void *ud)
{
    sm_buf *b = ud;
    if (sz * n >= 5 && !strncmp(p, "HTTP/", 5))
        sm_buf_reset(b); /* keep only the final response (not "100 Continue") */
    sm_buf_put(b, p, sz * n);
    return sz * n;
}

/* The value of a response header ("" if absent), in out. */
static const char *hdr(const resp *r, const char *name, char *out, size_t cap)
{
    const char *p = sm_buf_str(&r->head);
    size_t nl = strlen(name);

    out[0] = '\0';
    while (*p) {
        size_t len = strcspn(p, "\r\n");
        if (len > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t vl = len - nl - 1;
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p += len;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    return out;
}

typedef struct chunked_src {
    size_t left;
} chunked_src;

static size_t chunked_read(char *buf, size_t sz, size_t n, void *ud)
{
    chunked_src *c = ud;
    size_t want = sz * n;
    if (want > c->left)
        want = c->left;
    memset(buf, ' ', want);
    c->left -= want;
    return want;
}

static CURL *easy(const fx *f, const char *path, resp *r)
{
    CURL *c = curl_easy_init();
    char url[2048];

    snprintf(url, sizeof(url), "%s%s", f->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->head);
    return c;
}

static void perform(CURL *c, struct curl_slist *hl, resp *r)
{
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
}

/* method path [body with content type] [extra header lines, NULL-terminated] */
static void req(const fx *f, const char *method, const char *path, const char *ctype,
                const char *body, const char *const *extra, resp *r)
{
    CURL *c = easy(f, path, r);
    struct curl_slist *hl = NULL;
    char line[256];

    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    snprintf(line, sizeof(line), "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    hl = curl_slist_append(hl, line);
    for (size_t i = 0; extra && extra[i]; i++)
        hl = curl_slist_append(hl, extra[i]);
    perform(c, hl, r);
}

static void get(const fx *f, const char *path, resp *r)
{
    req(f, "GET", path, NULL, NULL, NULL, r);
}

static json_t *body_json(const resp *r)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
    if (!j)
        fail_msg("response is not JSON (%s): %s", je.text, sm_buf_str(&r->body));
    return j;
}

static void assert_json_error(const resp *r, long status, const char *code, const char *msg)
{
    char ct[128], rid[64];
    json_t *j;

    assert_int_equal(r->status, status);
    assert_string_equal(hdr(r, "Content-Type", ct, sizeof(ct)), "application/json");
    j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "error")), code);
    if (msg)
        assert_string_equal(json_string_value(json_object_get(j, "message")), msg);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")),
                        hdr(r, "X-Request-Id", rid, sizeof(rid)));
    json_decref(j);
}

static void assert_security_headers(const resp *r)
{
    char v[512];

    assert_string_equal(hdr(r, "Content-Security-Policy", v, sizeof(v)), CSP_WANT);
    assert_string_equal(hdr(r, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
    assert_string_equal(hdr(r, "Referrer-Policy", v, sizeof(v)), "no-referrer");
    assert_string_equal(hdr(r, "X-Frame-Options", v, sizeof(v)), "DENY");
    hdr(r, "X-Request-Id", v, sizeof(v));
    assert_int_equal(strlen(v), 16);
    assert_int_equal(strspn(v, "0123456789abcdef"), 16);
}

/* ---- capturing stderr (access log, error log) ---- */

static int capture_begin(const char *path)
{
    int saved, fd;

    fflush(stderr);
    saved = dup(2);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static void capture_end(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

/* Waits until the file holds a line containing needle; returns that line. */
static char *wait_for_line(const char *path, const char *needle)
{
    for (int i = 0; i < 300; i++) {
        sm_buf b = SM_BUF_INIT;
        const char *p;
        th_read(path, &b);
        p = strstr(sm_buf_str(&b), needle);
        if (p) {
            const char *start = p, *s = sm_buf_str(&b);
            char *line;
            while (start > s && start[-1] != '\n')
                start--;
            line = sm_xstrndup(start, strcspn(start, "\n"));
            sm_buf_release(&b);
            return line;
        }
        sm_buf_release(&b);
        usleep(10000);
    }
    return NULL;
}

/* ---- tests: routing and JSON ---- */

static void http_json_body_is_echoed(void **state)
{
    fx *f = *state;
    resp r = {0};
    json_t *j;

    req(f, "POST", "/echo", "application/json; charset=utf-8", "{\"a\": [1, 2], \"b\": \"x\"}",
        NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_security_headers(&r);
    j = body_json(&r);
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(json_object_get(j, "body"), "a"), 1)), 2);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    json_decref(j);
    resp_release(&r);
}

static void http_empty_body_is_an_empty_object(void **state)
{
    fx *f = *state;
    resp r = {0};

    req(f, "POST", "/echo", NULL, "", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(sm_buf_str(&r.body), "{\"body\":{},\"method\":\"POST\"}");
    resp_release(&r);
}

static void http_unknown_path_is_404_json(void **state)
{
    fx *f = *state;
    resp r = {0};

    get(f, "/nope/x", &r);
    assert_json_error(&r, 404, "not_found", "no such path: '/nope/x'");
    assert_security_headers(&r);
    resp_release(&r);
}

static void http_other_method_is_405_with_allow(void **state)
{
    fx *f = *state;
    resp r = {0};
    char allow[128], cc[64];

    req(f, "PUT", "/items/abc", NULL, NULL, NULL, &r);
    assert_json_error(&r, 405, "method_not_allowed",
                      "method PUT is not allowed on '/items/abc': use GET, DELETE");
    assert_string_equal(hdr(&r, "Allow", allow, sizeof(allow)), "GET, DELETE");
    assert_string_equal(hdr(&r, "Cache-Control", cc, sizeof(cc)), "no-store");
    assert_security_headers(&r);
    assert_int_equal(atomic_load(&f->item_calls), 0);
    resp_release(&r);
}

static void http_malformed_json_is_400_with_position(void **state)
{
    fx *f = *state;
    resp r = {0};

    req(f, "POST", "/echo", "application/json", "{\"a\":\n  }", NULL, &r);
    assert_json_error(&r, 400, "invalid_json",
                      "the request body is not valid JSON: unexpected token near '}' "
                      "(line 2, column 3)");
    assert_security_headers(&r);
    resp_release(&r);
}

static void http_wrong_content_type_is_415(void **state)
{
    fx *f = *state;
    resp r = {0};

    req(f, "POST", "/echo", "text/plain", "{}", NULL, &r);
    assert_json_error(&r, 415, "unsupported_media_type",
                      "the request body must be JSON: send 'Content-Type: application/json' "
                      "(got 'text/plain')");
    assert_security_headers(&r);
    resp_release(&r);
}

static char *big_json(size_t n)
{
    char *s = sm_xmalloc(n + 1);
    memset(s, ' ', n);
    s[0] = '{';
    s[n - 1] = '}';
    s[n] = '\0';
    return s;
}

static void http_body_over_limit_is_413(void **state)
{
    fx *f = *state;
    const char *no_expect[] = {"Expect:", NULL};
    const char *expect[] = {"Expect: 100-continue", NULL};
    char *ok = big_json(1024), *big = big_json(4000);
    resp r = {0};

    /* exactly the limit is fine */
    req(f, "POST", "/echo", "application/json", ok, no_expect, &r);
    assert_int_equal(r.status, 200);
    resp_release(&r);
    /* over it: read and dropped, then answered */
    memset(&r, 0, sizeof(r));
    req(f, "POST", "/echo", "application/json", big, no_expect, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_json_error(&r, 413, "payload_too_large", "the request body exceeds the limit of 1 KiB");
    assert_security_headers(&r);
    resp_release(&r);
    /* over it, client waiting for 100 Continue: answered at once */
    memset(&r, 0, sizeof(r));
    req(f, "POST", "/echo", "application/json", big, expect, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_json_error(&r, 413, "payload_too_large", "the request body exceeds the limit of 1 KiB");
    resp_release(&r);
    free(ok);
    free(big);
}

static void http_chunked_body_over_limit_is_413(void **state)
{
    fx *f = *state;
    resp r = {0};
    CURL *c = easy(f, "/echo", &r);
    struct curl_slist *hl = NULL;
    chunked_src src = {100000};

    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, chunked_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    hl = curl_slist_append(hl, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    hl = curl_slist_append(hl, "Expect:");
    perform(c, hl, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_json_error(&r, 413, "payload_too_large", "the request body exceeds the limit of 1 KiB");
    resp_release(&r);
}

static void http_path_tricks_are_404_and_never_reach_a_handler(void **state)
{
    fx *f = *state;
    static const char *tricks[] = {
        "/items/..%2f..%2fetc",
        "/items/%2e%2e",
        "/items/%2E",
        "/items/..",
        "/items/.",
        "//items/abc",
        "/items//abc",
        "/items/abc%00",
        "/items/a%2fb",
        "/items/%zz",
        "/items/%4",
        "/items/abc//",
        "/items/abc/parts/%2e%2e%2f%2e%2e",
        "/items/x/parts/y/z",
        "/items/%2e%2e/parts/x",
    };

    for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        resp r = {0};
        get(f, tricks[i], &r);
        if (r.status != 404)
            fail_msg("'%s' gave %ld, not 404", tricks[i], r.status);
        assert_json_error(&r, 404, "not_found", NULL);
        assert_security_headers(&r);
        resp_release(&r);
    }
    assert_int_equal(atomic_load(&f->item_calls), 0);
}

static void http_params_are_decoded_and_a_trailing_slash_is_fine(void **state)
{
    fx *f = *state;
    resp r = {0};

    get(f, "/items/a%20b%C3%A9/?q=x%2By+z&q=second", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(sm_buf_str(&r.body),
                        "{\"id\":\"a b\xc3\xa9\",\"q\":\"x+y z\",\"path\":\"/items/a b\xc3\xa9\"}");
    resp_release(&r);

    memset(&r, 0, sizeof(r));
    get(f, "/items/abc/parts/p%3A1", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(sm_buf_str(&r.body),
                        "{\"id\":\"abc\",\"part\":\"p:1\",\"path\":\"/items/abc/parts/p:1\"}");
    resp_release(&r);

    memset(&r, 0, sizeof(r));
    req(f, "DELETE", "/items/zz", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(sm_buf_str(&r.body), "{\"deleted\":\"zz\"}");
    resp_release(&r);
    assert_int_equal(atomic_load(&f->item_calls), 3);
}

static void http_request_ids_differ_between_requests(void **state)
{
    fx *f = *state;
    resp a = {0}, b = {0};
    char ia[64], ib[64];

    get(f, "/items/a", &a);
    get(f, "/items/a", &b);
    hdr(&a, "X-Request-Id", ia, sizeof(ia));
    hdr(&b, "X-Request-Id", ib, sizeof(ib));
    assert_int_equal(strlen(ia), 16);
    assert_string_not_equal(ia, ib);
    resp_release(&a);
    resp_release(&b);
}

static void http_error_from_maps_codes_and_keeps_the_hint(void **state)
{
    fx *f = *state;
    resp r = {0};
    char v[128];

    get(f, "/error/notfound", &r);
    assert_json_error(&r, 404, "not_found",
                      "unknown project 'abc'. List the projects with GET /platform/projects.");
    assert_security_headers(&r);
    resp_release(&r);

    memset(&r, 0, sizeof(r));
    get(f, "/error/auth", &r);
    assert_json_error(&r, 401, "unauthorized", "token expired at 2026-01-01T00:00:00Z");
    assert_string_equal(hdr(&r, "WWW-Authenticate", v, sizeof(v)), "Bearer");
    resp_release(&r);

    memset(&r, 0, sizeof(r));
    get(f, "/error/conflict", &r);
    assert_json_error(&r, 409, "conflict", "project 'abc' is busy");
    resp_release(&r);

    memset(&r, 0, sizeof(r));
    get(f, "/error/corrupt", &r);
    assert_json_error(&r, 500, "internal", "chunk 12 failed its MAC check");
    resp_release(&r);
}

static void http_5xx_is_logged_with_the_request_id(void **state)
{
    fx *f = *state;
    char *log = th_path(f->dir, "stderr.log");
    char rid[64], *line;
    resp r = {0};
    int saved;

    saved = capture_begin(log);
    get(f, "/error/internal", &r);
    hdr(&r, "X-Request-Id", rid, sizeof(rid));
    line = wait_for_line(log, "boom 42");
    capture_end(saved);
    assert_json_error(&r, 500, "internal", "boom 42");
    assert_non_null(line);
    assert_non_null(strstr(line, rid));
    assert_non_null(strstr(line, "error"));
    free(line);
    free(log);
    resp_release(&r);
}

static void http_handler_without_response_gives_500(void **state)
{
    fx *f = *state;
    resp r = {0};

    get(f, "/noresp", &r);
    assert_json_error(&r, 500, "internal", "the handler of GET /noresp sent no response");
    assert_security_headers(&r);
    resp_release(&r);
}

/* ---- tests: files ---- */

static void http_file_is_sent_whole_with_length_and_disposition(void **state)
{
    fx *f = *state;
    resp r = {0};
    char v[512];

    get(f, "/file", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, FILE_LEN);
    assert_memory_equal(r.body.data, f->file_data, FILE_LEN);
    assert_string_equal(hdr(&r, "Content-Length", v, sizeof(v)), "10000");
    assert_string_equal(hdr(&r, "Accept-Ranges", v, sizeof(v)), "bytes");
    assert_string_equal(hdr(&r, "Content-Type", v, sizeof(v)), "application/x-test");
    assert_string_equal(hdr(&r, "Content-Disposition", v, sizeof(v)),
                        "attachment; filename=\"report _Q1____.bin\"; "
                        "filename*=UTF-8''report%20%22Q1%22%2F%C3%BC.bin");
    assert_string_equal(hdr(&r, "Cache-Control", v, sizeof(v)), "no-store");
    assert_true(strlen(hdr(&r, "ETag", v, sizeof(v))) > 2);
    assert_security_headers(&r);
    resp_release(&r);
}

static void check_range(fx *f, const char *range, long status, size_t off, size_t len,
                        const char *content_range)
{
    char line[128], v[128];
    const char *extra[] = {line, NULL};
    resp r = {0};

    snprintf(line, sizeof(line), "Range: %s", range);
    req(f, "GET", "/file", NULL, NULL, extra, &r);
    if (r.status != status)
        fail_msg("Range '%s' gave %ld, not %ld", range, r.status, status);
    assert_int_equal(r.body.len, len);
    assert_memory_equal(r.body.data, f->file_data + off, len);
    assert_string_equal(hdr(&r, "Content-Range", v, sizeof(v)), content_range);
    snprintf(line, sizeof(line), "%zu", len);
    assert_string_equal(hdr(&r, "Content-Length", v, sizeof(v)), line);
    assert_security_headers(&r);
    resp_release(&r);
}

static void http_file_ranges_give_206_with_the_exact_bytes(void **state)
{
    fx *f = *state;

    check_range(f, "bytes=100-199", 206, 100, 100, "bytes 100-199/10000");
    check_range(f, "bytes=9990-", 206, 9990, 10, "bytes 9990-9999/10000");
    check_range(f, "bytes=-5", 206, 9995, 5, "bytes 9995-9999/10000");
    check_range(f, "bytes=0-0", 206, 0, 1, "bytes 0-0/10000");
    check_range(f, "bytes=5000-99999999", 206, 5000, 5000, "bytes 5000-9999/10000");
    check_range(f, "bytes=-20000", 206, 0, FILE_LEN, "bytes 0-9999/10000");
    /* several ranges, bad syntax or another unit: the whole file */
    check_range(f, "bytes=0-1,5-6", 200, 0, FILE_LEN, "");
    check_range(f, "bytes=9-2", 200, 0, FILE_LEN, "");
    check_range(f, "lines=1-2", 200, 0, FILE_LEN, "");
}

static void http_file_range_with_stale_if_range_sends_everything(void **state)
{
    fx *f = *state;
    const char *extra[] = {"Range: bytes=0-9", "If-Range: \"stale\"", NULL};
    resp r = {0};

    req(f, "GET", "/file", NULL, NULL, extra, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, FILE_LEN);
    resp_release(&r);
}

static void http_file_unsatisfiable_range_is_416(void **state)
{
    fx *f = *state;
    const char *ranges[] = {"Range: bytes=10000-", "Range: bytes=20000-20010", "Range: bytes=-0"};

    for (size_t i = 0; i < 3; i++) {
        const char *extra[] = {ranges[i], NULL};
        resp r = {0};
        char v[128];
        req(f, "GET", "/file", NULL, NULL, extra, &r);
        assert_json_error(&r, 416, "range_not_satisfiable",
                          "the requested range is outside the file (10000 bytes)");
        assert_string_equal(hdr(&r, "Content-Range", v, sizeof(v)), "bytes */10000");
        assert_security_headers(&r);
        resp_release(&r);
    }
}

/* ---- tests: uploads ---- */

static void upload(fx *f, const char *route, const char *file, const char *note, resp *r,
                   const char *const *extra)
{
    CURL *c = easy(f, route, r);
    curl_mime *mime = curl_mime_init(c);
    curl_mimepart *part;
    struct curl_slist *hl = NULL;

    if (note) {
        part = curl_mime_addpart(mime);
        curl_mime_name(part, "note");
        curl_mime_data(part, note, CURL_ZERO_TERMINATED);
    }
    if (file) {
        part = curl_mime_addpart(mime);
        curl_mime_name(part, "file");
        curl_mime_filedata(part, file);
        curl_mime_filename(part, "dump.tar");
    }
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    for (size_t i = 0; extra && extra[i]; i++)
        hl = curl_slist_append(hl, extra[i]);
    perform(c, hl, r);
    curl_mime_free(mime);
}

static void http_upload_of_5mb_arrives_exact_and_the_spool_is_removed(void **state)
{
    fx *f = *state;
    char *src = th_path(f->dir, "src.bin");
    unsigned char *data = th_random(UPLOAD_LEN, 99);
    unsigned char md[32];
    char want[65], ct[128];
    resp r = {0};
    json_t *j;

    th_write(src, data, UPLOAD_LEN);
    EVP_Digest(data, UPLOAD_LEN, md, NULL, EVP_sha256(), NULL);
    sm_hex(want, md, 32);
    upload(f, "/upload", src, "hello", &r, NULL);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type", ct, sizeof(ct)), "application/json");
    assert_security_headers(&r);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "size")), UPLOAD_LEN);
    assert_string_equal(json_string_value(json_object_get(j, "sha256")), want);
    assert_string_equal(json_string_value(json_object_get(j, "filename")), "dump.tar");
    assert_string_equal(json_string_value(json_object_get(j, "note")), "hello");
    json_decref(j);
    /* spooled privately into upload_dir, and gone once the handler returned */
    assert_int_equal(f->last_upload_mode, 0600);
    assert_true(!strncmp(f->last_upload, f->upload_dir, strlen(f->upload_dir)));
    assert_false(sm_exists(f->last_upload));
    assert_int_equal(th_count_entries(f->upload_dir), 0);
    resp_release(&r);
    free(data);
    free(src);
}

static void http_upload_moved_by_the_handler_is_kept(void **state)
{
    fx *f = *state;
    char *src = th_path(f->dir, "src.bin");
    sm_buf got = SM_BUF_INIT;
    resp r = {0};

    th_write_str(src, "keep me");
    upload(f, "/upload/keep", src, NULL, &r, NULL);
    assert_int_equal(r.status, 201);
    th_read(f->keep_dest, &got);
    assert_string_equal(sm_buf_str(&got), "keep me");
    assert_int_equal(th_count_entries(f->upload_dir), 0);
    sm_buf_release(&got);
    resp_release(&r);
    free(src);
}

static void http_upload_without_a_file_reaches_the_handler(void **state)
{
    fx *f = *state;
    resp r = {0};

    upload(f, "/upload", NULL, "only a note", &r, NULL);
    assert_json_error(&r, 400, "invalid_request", "no file in the form (field 'file')");
    resp_release(&r);
}

static void http_upload_with_wrong_content_type_is_415(void **state)
{
    fx *f = *state;
    resp r = {0};

    req(f, "POST", "/upload", "application/json", "{\"file\": \"x\"}", NULL, &r);
    assert_json_error(&r, 415, "unsupported_media_type",
                      "uploads must be sent as multipart/form-data with the file in the field "
                      "'file' (got 'application/json')");
    assert_security_headers(&r);
    assert_int_equal(atomic_load(&f->upload_calls), 0);
    resp_release(&r);
}

static void http_upload_over_limit_is_413_and_leaves_nothing(void **state)
{
    fx *f = *state;
    char *dir2 = th_path(f->dir, "small-uploads");
    char *src = th_path(f->dir, "big.bin");
    unsigned char *data = th_random(200000, 5);
    const char *no_expect[] = {"Expect:", NULL};
    http_server *small;
    char base[64];
    resp r = {0};

    th_write(src, data, 200000);
    small = start_server(f, 64 << 10, dir2, 0);
    snprintf(base, sizeof(base), "%s", f->base);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(small));

    /* Content-Length over the limit */
    upload(f, "/upload", src, NULL, &r, NULL);
    assert_json_error(&r, 413, "payload_too_large", "the upload exceeds the limit of 64 KiB");
    assert_security_headers(&r);
    resp_release(&r);
    /* the same without Expect: read, dropped, then answered */
    memset(&r, 0, sizeof(r));
    upload(f, "/upload", src, NULL, &r, no_expect);
    assert_int_equal(r.rc, CURLE_OK);
    assert_json_error(&r, 413, "payload_too_large", "the upload exceeds the limit of 64 KiB");
    resp_release(&r);
    assert_int_equal(atomic_load(&f->upload_calls), 0);
    assert_int_equal(th_count_entries(dir2), 0);

    snprintf(f->base, sizeof(f->base), "%s", base);
    http_server_stop(small);
    free(data);
    free(src);
    free(dir2);
}

static void http_upload_far_over_limit_is_refused_before_the_body(void **state)
{
    fx *f = *state;
    char *dir2 = th_path(f->dir, "small-uploads");
    char *src = th_path(f->dir, "big.bin");
    unsigned char *data = th_random(3000000, 6);
    const char *expect[] = {"Expect: 100-continue", NULL};
    const char *no_expect[] = {"Expect:", NULL};
    http_server *small;
    char base[64];
    resp r = {0};

    th_write(src, data, 3000000);
    small = start_server(f, 64 << 10, dir2, 0);
    snprintf(base, sizeof(base), "%s", f->base);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(small));
    /* Content-Length beyond the limit and the form slack: no byte is read */
    upload(f, "/upload", src, NULL, &r, expect);
    assert_int_equal(r.rc, CURLE_OK);
    assert_json_error(&r, 413, "payload_too_large", "the upload exceeds the limit of 64 KiB");
    resp_release(&r);
    memset(&r, 0, sizeof(r));
    upload(f, "/upload", src, NULL, &r, no_expect);
    assert_int_equal(r.rc, CURLE_OK);
    assert_json_error(&r, 413, "payload_too_large", "the upload exceeds the limit of 64 KiB");
    resp_release(&r);
    assert_int_equal(atomic_load(&f->upload_calls), 0);
    assert_false(sm_exists(dir2) && th_count_entries(dir2) != 0);

    snprintf(f->base, sizeof(f->base), "%s", base);
    http_server_stop(small);
    free(data);
    free(src);
    free(dir2);
}

static size_t mime_read(char *buf, size_t sz, size_t n, void *ud)
{
    return chunked_read(buf, sz, n, ud);
}

static void http_chunked_upload_over_limit_is_413_and_leaves_nothing(void **state)
{
    fx *f = *state;
    char *dir2 = th_path(f->dir, "small-uploads");
    http_server *small = start_server(f, 64 << 10, dir2, 0);
    chunked_src src = {300000};
    char base[64];
    resp r = {0};
    CURL *c;
    curl_mime *mime;
    curl_mimepart *part;

    snprintf(base, sizeof(base), "%s", f->base);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(small));
    c = easy(f, "/upload", &r);
    mime = curl_mime_init(c);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filename(part, "stream.bin");
    curl_mime_data_cb(part, -1, mime_read, NULL, NULL, &src); /* unknown size: chunked */
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    perform(c, NULL, &r);
    curl_mime_free(mime);
    assert_int_equal(r.rc, CURLE_OK);
    assert_json_error(&r, 413, "payload_too_large", "the upload exceeds the limit of 64 KiB");
    assert_int_equal(atomic_load(&f->upload_calls), 0);
    assert_int_equal(th_count_entries(dir2), 0);
    resp_release(&r);

    snprintf(f->base, sizeof(f->base), "%s", base);
    http_server_stop(small);
    free(dir2);
}

/* ---- tests: Server-Sent Events ---- */

#define SSE_WANT                                                                                   \
    "event: step\ndata: one\n\nevent: log\ndata: line1\ndata: line2\n\nevent: done\ndata: "        \
    "three\n\n"

static void http_sse_events_arrive_in_order_for_three_clients(void **state)
{
    fx *f = *state;
    CURLM *m = curl_multi_init();
    CURL *c[SSE_CLIENTS];
    resp r[SSE_CLIENTS];
    int running = 1;
    double t0 = sm_mono();

    atomic_store(&f->sse_expected, SSE_CLIENTS);
    memset(r, 0, sizeof(r));
    for (int i = 0; i < SSE_CLIENTS; i++) {
        c[i] = easy(f, "/events", &r[i]);
        curl_multi_add_handle(m, c[i]);
    }
    while (running && sm_mono() - t0 < 20) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    assert_int_equal(running, 0);
    assert_int_equal(atomic_load(&f->sse_started), SSE_CLIENTS);
    for (int i = 0; i < SSE_CLIENTS; i++) {
        char v[128];
        curl_easy_getinfo(c[i], CURLINFO_RESPONSE_CODE, &r[i].status);
        assert_int_equal(r[i].status, 200);
        assert_string_equal(sm_buf_str(&r[i].body), SSE_WANT);
        assert_string_equal(hdr(&r[i], "Content-Type", v, sizeof(v)), "text/event-stream");
        assert_string_equal(hdr(&r[i], "Cache-Control", v, sizeof(v)), "no-cache");
        assert_string_equal(hdr(&r[i], "X-Accel-Buffering", v, sizeof(v)), "no");
        assert_string_equal(hdr(&r[i], "Connection", v, sizeof(v)), "close");
        assert_security_headers(&r[i]);
        curl_multi_remove_handle(m, c[i]);
        curl_easy_cleanup(c[i]);
        resp_release(&r[i]);
    }
    curl_multi_cleanup(m);
}

typedef struct bg_client {
    fx *f;
    const char *path;
    const char *stop_after; /* abort once the body holds this */
    resp r;
    double ended;
    pthread_t t;
} bg_client;

static size_t bg_body(char *p, size_t sz, size_t n, void *ud)
{
    bg_client *b = ud;
    sm_buf_put(&b->r.body, p, sz * n);
    if (b->stop_after && strstr(sm_buf_str(&b->r.body), b->stop_after))
        return 0; /* abort the transfer: the client goes away */
    return sz * n;
}

static void *bg_run(void *arg)
{
    bg_client *b = arg;
    CURL *c = easy(b->f, b->path, &b->r);

    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, bg_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    b->r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &b->r.status);
    curl_easy_cleanup(c);
    b->ended = sm_mono();
    return NULL;
}

static http_sse *wait_held(fx *f)
{
    for (int i = 0; i < 500; i++) {
        http_sse *s;
        pthread_mutex_lock(&f->mu);
        s = f->held;
        pthread_mutex_unlock(&f->mu);
        if (s)
            return s;
        usleep(10000);
    }
    fail_msg("the event stream did not start");
    return NULL;
}

static void http_sse_send_fails_once_the_client_is_gone(void **state)
{
    fx *f = *state;
    bg_client b = {.f = f, .path = "/events/hold", .stop_after = "data: hello\n\n"};
    http_sse *s;

    assert_int_equal(pthread_create(&b.t, NULL, bg_run, &b), 0);
    s = wait_held(f);
    assert_int_equal(http_sse_send(s, NULL, "hello"), 0);
    pthread_join(b.t, NULL);
    assert_int_equal(b.r.rc, CURLE_WRITE_ERROR);
    assert_string_equal(sm_buf_str(&b.r.body), "data: hello\n\n");
    /* an idle stream notices the hang-up by itself (within about 1 s) */
    usleep(2200000);
    assert_int_equal(http_sse_send(s, "ping", "x"), -1);
    resp_release(&b.r);
}

static void http_sse_idle_stream_gets_keepalive_comments(void **state)
{
    fx *f = *state;
    http_server *ka = start_server(f, 1 << 20, f->upload_dir, 100);
    bg_client b = {.f = f, .path = "/events/hold", .stop_after = ":keepalive\n\n"};
    char base[64];
    http_sse *s;

    snprintf(base, sizeof(base), "%s", f->base);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(ka));
    assert_int_equal(pthread_create(&b.t, NULL, bg_run, &b), 0);
    s = wait_held(f);
    (void)s;
    pthread_join(b.t, NULL);
    assert_string_equal(sm_buf_str(&b.r.body), ":keepalive\n\n");
    snprintf(f->base, sizeof(f->base), "%s", base);
    http_server_stop(ka);
    resp_release(&b.r);
}

static void http_stop_with_an_sse_client_connected_is_prompt(void **state)
{
    fx *f = *state;
    bg_client b = {.f = f, .path = "/events/hold"};
    http_sse *s;
    double t0, took;

    assert_int_equal(pthread_create(&b.t, NULL, bg_run, &b), 0);
    s = wait_held(f);
    assert_int_equal(http_sse_send(s, "hi", "there"), 0);
    usleep(100000);
    t0 = sm_mono();
    http_server_stop(f->srv);
    took = sm_mono() - t0;
    f->srv = NULL;
    pthread_join(b.t, NULL);
    /* the stream is woken at once (not at its next hang-up check) */
    assert_true(took < 0.5);
    assert_true(b.ended - t0 < 1.0);
    assert_string_equal(sm_buf_str(&b.r.body), "event: hi\ndata: there\n\n");
    /* the producer still holds its stream: sending fails, closing is safe */
    assert_int_equal(http_sse_send(s, "late", "x"), -1);
    resp_release(&b.r);
}

/* ---- tests: access log, start errors ---- */

static void http_access_log_is_one_json_line_without_the_query(void **state)
{
    fx *f = *state;
    char *log = th_path(f->dir, "access.log");
    const char *extra[] = {"Authorization: Bearer SECRETTOKEN", NULL};
    char rid[64], *line;
    sm_buf all = SM_BUF_INIT;
    resp r = {0};
    json_t *j;
    int saved;

    saved = capture_begin(log);
    req(f, "GET", "/items/abc?token=SECRETSIG&q=1", NULL, NULL, extra, &r);
    hdr(&r, "X-Request-Id", rid, sizeof(rid));
    line = wait_for_line(log, rid);
    capture_end(saved);
    assert_int_equal(r.status, 200);
    assert_non_null(line);
    j = json_loads(line, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), rid);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/items/abc");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), (json_int_t)r.body.len);
    assert_true(json_is_number(json_object_get(j, "duration_ms")));
    assert_string_equal(json_string_value(json_object_get(j, "user")), "user-42");
    assert_string_equal(json_string_value(json_object_get(j, "remote")), "127.0.0.1");
    assert_non_null(json_string_value(json_object_get(j, "ts")));
    th_read(log, &all);
    assert_null(strstr(sm_buf_str(&all), "SECRET"));
    assert_null(strstr(sm_buf_str(&all), "token="));
    json_decref(j);
    sm_buf_release(&all);
    free(line);
    free(log);
    resp_release(&r);
}

static void http_start_reports_bad_addresses_and_busy_ports(void **state)
{
    fx *f = *state;
    http_server *s = NULL;
    sm_err err = SM_ERR_INIT;
    char addr[64], want[256];

    http_config bad = {.listen = "nonsense"};
    assert_int_equal(http_server_start(&s, &bad, test_routes, f, &err), -1);
    assert_null(s);
    assert_err(&err, SM_E_INVALID, "invalid listen address 'nonsense'");
    assert_string_equal(err.hint, "Give ADDR:PORT with an IPv4 address, e.g. 127.0.0.1:8080.");

    snprintf(addr, sizeof(addr), "127.0.0.1:%u", http_server_port(f->srv));
    http_config busy = {.listen = addr, .upload_dir = f->upload_dir};
    assert_int_equal(http_server_start(&s, &busy, test_routes, f, &err), -1);
    snprintf(want, sizeof(want), "cannot listen on %s: %s", addr, strerror(EADDRINUSE));
    assert_err(&err, SM_E_IO, want);

    static const http_route broken[] = {{"GET", "items", h_noresp, 0}, {NULL, NULL, NULL, 0}};
    http_config ok = {.listen = "127.0.0.1:0", .upload_dir = f->upload_dir};
    assert_int_equal(http_server_start(&s, &ok, broken, f, &err), -1);
    assert_int_equal(err.code, SM_E_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(http_json_body_is_echoed, setup, teardown),
        cmocka_unit_test_setup_teardown(http_empty_body_is_an_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(http_unknown_path_is_404_json, setup, teardown),
        cmocka_unit_test_setup_teardown(http_other_method_is_405_with_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(http_malformed_json_is_400_with_position, setup, teardown),
        cmocka_unit_test_setup_teardown(http_wrong_content_type_is_415, setup, teardown),
        cmocka_unit_test_setup_teardown(http_body_over_limit_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(http_chunked_body_over_limit_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(http_path_tricks_are_404_and_never_reach_a_handler, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_params_are_decoded_and_a_trailing_slash_is_fine, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_request_ids_differ_between_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(http_error_from_maps_codes_and_keeps_the_hint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_5xx_is_logged_with_the_request_id, setup, teardown),
        cmocka_unit_test_setup_teardown(http_handler_without_response_gives_500, setup, teardown),
        cmocka_unit_test_setup_teardown(http_file_is_sent_whole_with_length_and_disposition, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_file_ranges_give_206_with_the_exact_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_file_range_with_stale_if_range_sends_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_file_unsatisfiable_range_is_416, setup, teardown),
        cmocka_unit_test_setup_teardown(http_upload_of_5mb_arrives_exact_and_the_spool_is_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(http_upload_moved_by_the_handler_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(http_upload_without_a_file_reaches_the_handler, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_upload_with_wrong_content_type_is_415, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_upload_over_limit_is_413_and_leaves_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_upload_far_over_limit_is_refused_before_the_body,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(http_chunked_upload_over_limit_is_413_and_leaves_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(http_sse_events_arrive_in_order_for_three_clients, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_sse_send_fails_once_the_client_is_gone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_sse_idle_stream_gets_keepalive_comments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_stop_with_an_sse_client_connected_is_prompt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_access_log_is_one_json_line_without_the_query, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(http_start_reports_bad_addresses_and_busy_ports, setup,
                                        teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests_name("service_http", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
