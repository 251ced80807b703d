/* Notifications (src/service/notify.c): configuration and its errors, the
 * e-mail and webhook formats, and the background notifier against an
 * in-process webhook receiver (libmicrohttpd): retries, no retry on 4xx,
 * metrics, and a stop that stays bounded on a receiver that never answers. */
#include "../unit_helpers.h"

#include "core/log.h"
#include "core/util.h"
#include "service/notify.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

static const char *const env_names[] = {"SUPAMANAGER_SMTP_URL",       "SUPAMANAGER_SMTP_FROM",
                                        "SUPAMANAGER_SMTP_USER",      "SUPAMANAGER_SMTP_PASSWORD",
                                        "SUPAMANAGER_NOTIFY_EMAIL",   "SUPAMANAGER_WEBHOOK_URL",
                                        "SUPAMANAGER_WEBHOOK_SECRET", NULL};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; env_names[i]; i++)
        unsetenv(env_names[i]);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!v)
        fail_msg("bad test JSON: %s", je.text);
    return v;
}

/* Loads the notifications object given as JSON text and expects failure. */
static void expect_config_error(const char *text, const char *msg)
{
    json_t *v = parse(text);
    notify_config c;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(notify_config_load(&c, v, &err), -1);
    assert_err(&err, SM_E_INVALID, msg);
    assert_null(c.smtp_url);
    json_decref(v);
}

/* ---- configuration ---- */

static void config_without_object_has_defaults(void **state)
{
    notify_config c;
    sm_err err = SM_ERR_INIT;

    (void)state;
    assert_int_equal(notify_config_load(&c, NULL, &err), 0);
    assert_null(c.smtp_url);
    assert_null(c.webhook_url);
    assert_int_equal(c.n_email, 0);
    assert_int_equal(c.smtp_tls, 0);
    assert_int_equal(c.on_success, 0);
    assert_int_equal(c.webhook_attempts, 5);
    assert_int_equal(c.webhook_backoff_ms, 1000);
    assert_int_equal(c.timeout_s, 10);
    notify_config_free(&c);
}

static void config_reads_every_key(void **state)
{
    json_t *v = parse("{\"smtp\": {\"url\": \"smtps://mail.example.com:465\", \"from\": "
                      "\"SupaManager <b@example.com>\", \"user\": \"u\", \"password\": \"p\", "
                      "\"tls\": \"required\", \"insecure\": true}, \"email\": [\"a@example.com\", "
                      "\"b@example.com\"], \"webhook\": {\"url\": \"https://h.example.com/x\", "
                      "\"secret\": \"s\"}, \"on_success\": true, \"digest_time\": \"07:30\", "
                      "\"webhook_attempts\": 3, \"webhook_backoff_ms\": 0, \"timeout_s\": 4}");
    notify_config c;
    sm_err err = SM_ERR_INIT;

    (void)state;
    assert_int_equal(notify_config_load(&c, v, &err), 0);
    assert_string_equal(c.smtp_url, "smtps://mail.example.com:465");
    assert_string_equal(c.smtp_from, "SupaManager <b@example.com>");
    assert_string_equal(c.smtp_user, "u");
    assert_string_equal(c.smtp_password, "p");
    assert_int_equal(c.smtp_tls, 1);
    assert_int_equal(c.smtp_insecure, 1);
    assert_int_equal(c.n_email, 2);
    assert_string_equal(c.email_to[1], "b@example.com");
    assert_string_equal(c.webhook_url, "https://h.example.com/x");
    assert_string_equal(c.webhook_secret, "s");
    assert_int_equal(c.on_success, 1);
    assert_string_equal(c.digest_time, "07:30");
    assert_int_equal(c.webhook_attempts, 3);
    assert_int_equal(c.webhook_backoff_ms, 0);
    assert_int_equal(c.timeout_s, 4);
    notify_config_free(&c);
    json_decref(v);
}

static void config_refuses_bad_values_naming_the_key(void **state)
{
    (void)state;
    expect_config_error("{\"smtp\": {\"url\": \"smtp://h:25\", \"tls\": \"maybe\"}}",
                        "invalid notifications.smtp.tls 'maybe': use \"try\", \"required\" or "
                        "\"none\"");
    expect_config_error("{\"email\": [\"not an address\"]}",
                        "invalid notifications.email[0] 'not an address': expected an address "
                        "like ops@example.com");
    expect_config_error("{\"email\": [\"a@b.test\\r\\nBcc: x@y.test\"]}",
                        "invalid notifications.email[0] 'a@b.test  Bcc: x@y.test': expected an "
                        "address like ops@example.com");
    expect_config_error("{\"webhok\": {}}",
                        "unknown key notifications.webhok: use smtp, email, webhook, on_success, "
                        "digest_time, webhook_attempts, webhook_backoff_ms, timeout_s");
    expect_config_error("{\"timeout_s\": \"10\"}",
                        "invalid notifications.timeout_s \"10\": use an integer from 1 to 300");
    expect_config_error("{\"on_success\": 1}",
                        "invalid notifications.on_success: use true or false");
    expect_config_error("{\"digest_time\": \"7:30\"}",
                        "invalid notifications.digest_time '7:30': use \"HH:MM\" (UTC)");
    expect_config_error("{\"webhook\": {\"url\": \"hooks.example.com/x\"}}",
                        "invalid notifications.webhook.url (or SUPAMANAGER_WEBHOOK_URL): not an "
                        "http:// or https:// URL with a host");
    expect_config_error("{\"smtp\": {\"url\": \"smtp://h:25\", \"from\": \"Ops <nobody>\"}}",
                        "invalid notifications.smtp.from (or SUPAMANAGER_SMTP_FROM) 'Ops "
                        "<nobody>': use \"backup@example.com\" or \"SupaManager "
                        "<backup@example.com>\"");
}

static void environment_wins_over_the_file(void **state)
{
    json_t *v = parse("{\"smtp\": {\"url\": \"smtp://file:25\"}, \"email\": [\"f@example.com\"]}");
    notify_config c;
    sm_err err = SM_ERR_INIT;

    (void)state;
    setenv("SUPAMANAGER_SMTP_URL", "smtp://env:2525", 1);
    setenv("SUPAMANAGER_NOTIFY_EMAIL", " a@example.com, ,b@example.com ", 1);
    setenv("SUPAMANAGER_WEBHOOK_URL", "http://127.0.0.1:9/h", 1);
    setenv("SUPAMANAGER_WEBHOOK_SECRET", "", 1); /* empty counts as unset */
    assert_int_equal(notify_config_load(&c, v, &err), 0);
    assert_string_equal(c.smtp_url, "smtp://env:2525");
    assert_int_equal(c.n_email, 2);
    assert_string_equal(c.email_to[0], "a@example.com");
    assert_string_equal(c.email_to[1], "b@example.com");
    assert_string_equal(c.webhook_url, "http://127.0.0.1:9/h");
    assert_null(c.webhook_secret);
    assert_non_null(strstr(c.smtp_from, "SupaManager <supamanager@"));
    notify_config_free(&c);

    setenv("SUPAMANAGER_NOTIFY_EMAIL", "a@example.com,b@", 1);
    assert_int_equal(notify_config_load(&c, v, &err), -1);
    assert_err(&err, SM_E_INVALID,
               "invalid SUPAMANAGER_NOTIFY_EMAIL 'b@': expected an address like ops@example.com");
    json_decref(v);
    clear_env(NULL);
}

/* ---- formats ---- */

static void signature_is_hmac_sha256_of_time_dot_body(void **state)
{
    char sig[128];
    const char *body = "{\"event\":\"test\"}";

    (void)state;
    notify_signature(sig, sizeof(sig), "whsec_test", 1700000000, body, strlen(body));
    assert_string_equal(sig, "t=1700000000,v1=21d2d3606ebbdbf9307ee15e83085df2b83c83dd87cc2e6d2e"
                             "a6b1cb61afdc3c");
}

static void webhook_body_has_the_documented_members(void **state)
{
    json_t *data = parse("{\"backup_id\": \"b1\"}");
    notify_msg m = {.event = "backup.failed", .project_id = "abc123", .payload = data};
    char *body;

    (void)state;
    body = notify_webhook_body(&m, "d-1", 1800000000);
    assert_string_equal(body, "{\"event\":\"backup.failed\",\"delivery_id\":\"d-1\",\"sent_at\":"
                              "\"2027-01-15T08:00:00Z\",\"project_id\":\"abc123\",\"data\":"
                              "{\"backup_id\":\"b1\"}}");
    free(body);
    m.project_id = NULL;
    m.payload = NULL;
    body = notify_webhook_body(&m, "d-2", 1800000000);
    assert_string_equal(body, "{\"event\":\"backup.failed\",\"delivery_id\":\"d-2\",\"sent_at\":"
                              "\"2027-01-15T08:00:00Z\",\"project_id\":null,\"data\":{}}");
    free(body);
    json_decref(data);
}

static void email_is_rfc5322_with_crlf_and_no_header_injection(void **state)
{
    const char *to[] = {"ops@example.com", "dev@example.com"};
    notify_config cfg = {.smtp_from = "Backup, Ops <b@example.com>"};
    char longline[2100];
    char *text;
    notify_msg m = {.event = "backup.failed",
                    .project_id = "abc123",
                    .subject = "Backup failed\r\nBcc: victim@example.com",
                    .email_to = to,
                    .n_email = 2};
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    const char *s, *body;

    (void)state;
    memset(longline, 'x', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    text = sm_xasprintf("line one\nline two\r\n%s\n.leading dot", longline);
    m.text = text;
    assert_int_equal(notify_format_email(&out, &cfg, &m, 1800000000, &err), 0);
    s = sm_buf_str(&out);
    assert_non_null(strstr(s, "Date: Fri, 15 Jan 2027 08:00:00 +0000\r\n"));
    assert_non_null(strstr(s, "From: \"Backup, Ops\" <b@example.com>\r\n"));
    assert_non_null(strstr(s, "To: ops@example.com, dev@example.com\r\n"));
    assert_non_null(strstr(s, "Subject: Backup failed  Bcc: victim@example.com\r\n"));
    assert_null(strstr(s, "\nBcc:"));
    assert_non_null(strstr(s, "@example.com>\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(s, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(s, "Content-Transfer-Encoding: 8bit\r\n"));
    body = strstr(s, "\r\n\r\n");
    assert_non_null(body);
    assert_true(!strncmp(body, "\r\n\r\nline one\r\nline two\r\nxxx", 27));
    /* every LF is part of a CRLF, and no line passes 998 octets */
    for (const char *p = s, *line = s; *p; p++) {
        if (*p == '\n') {
            assert_true(p > s && p[-1] == '\r');
            assert_true(p - line - 1 <= 998);
            line = p + 1;
        }
    }
    assert_true(out.len >= 2 && !strcmp(s + out.len - 2, "\r\n"));
    sm_buf_release(&out);
    free(text);
}

static void non_ascii_subject_is_rfc2047_encoded(void **state)
{
    const char *to[] = {"ops@example.com"};
    notify_config cfg = {.smtp_from = "Sauvegarde Système <b@example.com>"};
    notify_msg m = {.event = "backup.failed",
                    .subject = "Échec de la sauvegarde du projet «Café» — проект номер один и два",
                    .text = "é",
                    .email_to = to,
                    .n_email = 1};
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    const char *s, *subj, *end;

    (void)state;
    assert_int_equal(notify_format_email(&out, &cfg, &m, 1800000000, &err), 0);
    s = sm_buf_str(&out);
    assert_non_null(strstr(s, "From: =?UTF-8?B?U2F1dmVnYXJkZSBTeXN0w6htZQ==?= <b@example.com>"));
    subj = strstr(s, "Subject: =?UTF-8?B?");
    assert_non_null(subj);
    end = strstr(subj, "\r\nMessage-ID:");
    assert_non_null(end);
    /* folded into encoded words of at most 75 characters, all ASCII */
    for (const char *p = subj + 9; p < end; p++)
        assert_true((unsigned char)*p < 0x80);
    assert_non_null(strstr(subj, "?=\r\n =?UTF-8?B?"));
    for (const char *w = strstr(subj, "=?"); w && w < end; w = strstr(w + 2, "=?")) {
        const char *close = strstr(w + 10, "?=");
        assert_true(close - w + 2 <= 75);
        w = close;
    }
    sm_buf_release(&out);
}

static void bad_recipient_is_refused_before_sending(void **state)
{
    const char *to[] = {"ops@example.com", "evil@example.com>\r\nRCPT TO:<x@y"};
    notify_config cfg = {.smtp_url = "smtp://127.0.0.1:1", .smtp_from = "b@example.com"};
    notify_msg m = {.event = "test", .email_to = to, .n_email = 2};
    sm_err err = SM_ERR_INIT;

    (void)state;
    assert_int_equal(notify_deliver_now(&cfg, &m, &err), -1);
    assert_err(&err, SM_E_INVALID,
               "invalid e-mail recipient 'evil@example.com>  RCPT TO:<x@y': "
               "expected an address like ops@example.com");
}

static void urls_are_redacted_in_messages(void **state)
{
    char *s;

    (void)state;
    s = notify_redact_url("https://user:pw@hooks.example.com/services/T0/B0/XYZ?token=abc");
    assert_string_equal(s, "https://hooks.example.com/services/...?...");
    free(s);
    s = notify_redact_url("http://127.0.0.1:8080/hook");
    assert_string_equal(s, "http://127.0.0.1:8080/hook");
    free(s);
    s = notify_redact_url("not a url");
    assert_string_equal(s, "(invalid URL)");
    free(s);
}

/* ---- the background notifier against a receiver ---- */

typedef struct receiver {
    struct MHD_Daemon *d;
    unsigned short port;
    pthread_mutex_t lock;
    int requests;
    int fail_first; /* answer fail_status to the first n (-1: always) */
    unsigned fail_status;
    char delivery[8][64];
    char signature[8][128];
} receiver;

static enum MHD_Result rx_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    receiver *R = cls;
    struct MHD_Response *resp;
    const char *v;
    unsigned status;
    enum MHD_Result ret;
    int n;

    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (!*con_cls) {
        *con_cls = R; /* the headers: wait for the body */
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&R->lock);
    n = R->requests++;
    if (n < 8) {
        v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-SupaManager-Delivery");
        snprintf(R->delivery[n], sizeof(R->delivery[n]), "%s", v ? v : "");
        v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-SupaManager-Signature");
        snprintf(R->signature[n], sizeof(R->signature[n]), "%s", v ? v : "");
    }
    status = R->fail_first < 0 || n < R->fail_first ? R->fail_status : 200;
    pthread_mutex_unlock(&R->lock);
    resp = MHD_create_response_from_buffer(2, (void *)"no", MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void rx_start(receiver *R, int fail_first, unsigned fail_status)
{
    const union MHD_DaemonInfo *info;

    memset(R, 0, sizeof(*R));
    pthread_mutex_init(&R->lock, NULL);
    R->fail_first = fail_first;
    R->fail_status = fail_status;
    R->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            rx_request, R, MHD_OPTION_END);
    assert_non_null(R->d);
    info = MHD_get_daemon_info(R->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    R->port = info->port;
}

static void rx_stop(receiver *R)
{
    MHD_stop_daemon(R->d);
    pthread_mutex_destroy(&R->lock);
}

static json_int_t metric(json_t *m, const char *group, const char *key)
{
    json_t *v = group ? json_object_get(json_object_get(m, group), key) : json_object_get(m, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static notify_config fast_config(void)
{
    notify_config c;
    memset(&c, 0, sizeof(c));
    c.webhook_attempts = 5;
    c.webhook_backoff_ms = 20;
    c.timeout_s = 5;
    return c;
}

static void webhook_retried_after_500_under_one_delivery_id(void **state)
{
    receiver R;
    notifier *N = NULL;
    notify_config cfg = fast_config();
    sm_err err = SM_ERR_INIT;
    char *url;
    json_t *m;

    (void)state;
    rx_start(&R, 2, 500);
    url = sm_xasprintf("http://127.0.0.1:%u/hook", R.port);
    assert_int_equal(notifier_start(&N, &cfg, &err), 0);
    notifier_send(N, &(notify_msg){.event = "backup.failed",
                                   .project_id = "abc123",
                                   .webhook_url = url,
                                   .webhook_secret = "s"});
    assert_int_equal(notifier_flush(N, 30), 0);
    m = notifier_metrics(N);
    assert_int_equal(metric(m, "webhook", "sent"), 1);
    assert_int_equal(metric(m, "webhook", "failed"), 0);
    assert_int_equal(metric(m, "webhook", "retries"), 2);
    assert_int_equal(metric(m, NULL, "queued"), 0);
    json_decref(m);
    notifier_stop(N);
    assert_int_equal(R.requests, 3);
    assert_int_equal(strlen(R.delivery[0]), 36);
    assert_string_equal(R.delivery[0], R.delivery[1]);
    assert_string_equal(R.delivery[1], R.delivery[2]);
    assert_true(!strncmp(R.signature[2], "t=", 2) && strstr(R.signature[2], ",v1=") != NULL);
    rx_stop(&R);
    free(url);
}

static void webhook_not_retried_after_400(void **state)
{
    receiver R;
    notifier *N = NULL;
    notify_config cfg = fast_config();
    sm_err err = SM_ERR_INIT;
    char *url;
    json_t *m;

    (void)state;
    rx_start(&R, -1, 400);
    url = sm_xasprintf("http://127.0.0.1:%u/hook", R.port);
    assert_int_equal(notifier_start(&N, &cfg, &err), 0);
    notifier_send(N, &(notify_msg){.event = "backup.failed", .webhook_url = url});
    notifier_send(N, &(notify_msg){.event = "verify.failed", .webhook_url = url});
    assert_int_equal(notifier_flush(N, 30), 0);
    m = notifier_metrics(N);
    assert_int_equal(metric(m, "webhook", "sent"), 0);
    assert_int_equal(metric(m, "webhook", "failed"), 2);
    assert_int_equal(metric(m, "webhook", "retries"), 0);
    json_decref(m);
    notifier_stop(N);
    assert_int_equal(R.requests, 2);
    assert_string_equal(R.signature[0], ""); /* no secret: unsigned */
    assert_string_not_equal(R.delivery[0], R.delivery[1]);
    rx_stop(&R);
    free(url);
}

/* A port nothing listens on. */
static unsigned short dead_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void email_failure_is_counted_not_fatal(void **state)
{
    notifier *N = NULL;
    notify_config cfg = fast_config();
    const char *to[] = {"ops@example.com"};
    sm_err err = SM_ERR_INIT;
    char *url = sm_xasprintf("smtp://127.0.0.1:%u", dead_port());
    json_t *m;

    (void)state;
    cfg.smtp_url = url;
    cfg.smtp_from = "b@example.com";
    assert_int_equal(notifier_start(&N, &cfg, &err), 0);
    notifier_send(
        N,
        &(notify_msg){
            .event = "backup.failed", .subject = "s", .text = "t", .email_to = to, .n_email = 1});
    assert_int_equal(notifier_flush(N, 30), 0);
    m = notifier_metrics(N);
    assert_int_equal(metric(m, "email", "sent"), 0);
    assert_int_equal(metric(m, "email", "failed"), 1);
    assert_int_equal(metric(m, NULL, "dropped"), 0);
    json_decref(m);
    notifier_stop(N);
    free(url);
}

static void synchronous_email_to_dead_port_names_it(void **state)
{
    notify_config cfg = fast_config();
    const char *to[] = {"ops@example.com"};
    unsigned short port = dead_port();
    char *url = sm_xasprintf("smtp://127.0.0.1:%u", port), *want;
    notify_result res;
    sm_err err = SM_ERR_INIT;

    (void)state;
    cfg.smtp_url = url;
    assert_int_equal(
        notify_deliver_email(&cfg, &(notify_msg){.event = "test", .email_to = to, .n_email = 1},
                             &res, &err),
        -1);
    want = sm_xasprintf("SMTP: connection refused by 127.0.0.1:%u (after 3 attempts)", port);
    assert_err(&err, SM_E_IO, want);
    assert_int_equal(res.attempts, 3);
    free(want);
    free(url);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A receiver that accepts connections (the kernel's backlog) and never answers. */
static void send_never_blocks_and_stop_is_bounded(void **state)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    notifier *N = NULL;
    notify_config cfg = fast_config();
    sm_err err = SM_ERR_INIT;
    char *url;
    double t0, t1;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    url = sm_xasprintf("http://127.0.0.1:%u/hook", ntohs(a.sin_port));
    cfg.timeout_s = 1;
    assert_int_equal(notifier_start(&N, &cfg, &err), 0);
    t0 = mono();
    for (int i = 0; i < 20; i++)
        notifier_send(N, &(notify_msg){.event = "backup.failed", .webhook_url = url});
    t1 = mono();
    assert_true(t1 - t0 < 0.5);
    assert_int_equal(notifier_flush(N, 0.2), -1); /* still busy */
    t0 = mono();
    notifier_stop(N); /* budget 2 s, then the transfer in flight is aborted */
    t1 = mono();
    assert_true(t1 - t0 < 5.0);
    close(fd);
    free(url);
}

static void queue_is_bounded(void **state)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    notifier *N = NULL;
    notify_config cfg = fast_config();
    sm_err err = SM_ERR_INIT;
    char *url;
    json_t *m;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    url = sm_xasprintf("http://127.0.0.1:%u/hook", ntohs(a.sin_port));
    cfg.timeout_s = 1;
    assert_int_equal(notifier_start(&N, &cfg, &err), 0);
    for (int i = 0; i < 1010; i++)
        notifier_send(N, &(notify_msg){.event = "backup.failed", .webhook_url = url});
    m = notifier_metrics(N);
    assert_true(metric(m, NULL, "dropped") >= 9);
    assert_true(metric(m, NULL, "queued") <= 1001); /* 1000 waiting, one in flight */
    json_decref(m);
    notifier_stop(N);
    close(fd);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(config_without_object_has_defaults, clear_env),
        cmocka_unit_test_setup(config_reads_every_key, clear_env),
        cmocka_unit_test_setup(config_refuses_bad_values_naming_the_key, clear_env),
        cmocka_unit_test_setup(environment_wins_over_the_file, clear_env),
        cmocka_unit_test(signature_is_hmac_sha256_of_time_dot_body),
        cmocka_unit_test(webhook_body_has_the_documented_members),
        cmocka_unit_test(email_is_rfc5322_with_crlf_and_no_header_injection),
        cmocka_unit_test(non_ascii_subject_is_rfc2047_encoded),
        cmocka_unit_test(bad_recipient_is_refused_before_sending),
        cmocka_unit_test(urls_are_redacted_in_messages),
        cmocka_unit_test(webhook_retried_after_500_under_one_delivery_id),
        cmocka_unit_test(webhook_not_retried_after_400),
        cmocka_unit_test(email_failure_is_counted_not_fatal),
        cmocka_unit_test(synchronous_email_to_dead_port_names_it),
        cmocka_unit_test(send_never_blocks_and_stop_is_bounded),
        cmocka_unit_test(queue_is_bounded),
    };
    int rc;

    sm_log_set_level(SM_LOG_ERROR); /* the expected failures still show, one line each */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
