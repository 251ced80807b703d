/* Notifications: e-mail (SMTP through libcurl) and webhooks (JSON POST through
 * libcurl, HMAC-SHA-256 signatures through OpenSSL), delivered by one sender
 * thread that owns its curl handle. The callers only queue copies, so a dead
 * or slow receiver costs them nothing; it costs the sender thread at most
 * timeout_s per attempt, and notifier_stop() bounds the whole drain. */
#include "service/notify.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTIFY_QUEUE_MAX 1000
#define EMAIL_ATTEMPTS 3             /* one attempt, retried twice on connection failure */
#define RETRY_AFTER_MAX_S 60         /* cap on a receiver's Retry-After */
#define BACKOFF_MAX_MS (600u * 1000) /* cap on one back-off delay */
#define RESPONSE_KEEP 512            /* bytes of a webhook answer kept for error messages */
#define SUBJECT_MAX 900
#define LINE_MAX_OCTETS 998 /* RFC 5322 2.1.1 */
#define USER_AGENT "SupaManager-Backup/0.1"

#define HINT_CONFIG "See docs/NOTIFICATIONS.md for the notifications settings."

/* ---- text helpers ---- */

static char *dup_or_null(const char *s)
{
    return s ? sm_xstrdup(s) : NULL;
}

static void free_secret(char *s)
{
    if (s) {
        sm_wipe(s, strlen(s));
        free(s);
    }
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not valid
 * (overlong forms, surrogates and values past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* s as valid UTF-8 (bad bytes become U+FFFD). one_line: every control
 * character (CR and LF included) becomes a space, so a value cannot add a
 * header line. Otherwise CRLF and lone CR become LF, tab and LF stay, other
 * controls become spaces. Caller frees; NULL gives NULL. */
static char *clean_text(const char *s, int one_line)
{
    sm_buf b = SM_BUF_INIT;
    const unsigned char *p = (const unsigned char *)s;

    if (!s)
        return NULL;
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) {
            sm_buf_puts(&b, "\xEF\xBF\xBD");
            p++;
            continue;
        }
        if (n == 1 && (*p < 0x20 || *p == 0x7F)) {
            if (one_line)
                sm_buf_putc(&b, ' ');
            else if (*p == '\r') {
                sm_buf_putc(&b, '\n');
                if (p[1] == '\n')
                    p++;
            } else if (*p == '\n' || *p == '\t')
                sm_buf_putc(&b, *p);
            else
                sm_buf_putc(&b, ' ');
            p++;
            continue;
        }
        sm_buf_put(&b, p, n);
        p += n;
    }
    return sm_buf_detach(&b, NULL);
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* something@something: printable ASCII without spaces or the characters that
 * delimit addresses in headers, one '@', a domain without empty labels. */
static int address_ok(const char *a)
{
    const char *at = strchr(a, '@');
    size_t n = strlen(a);

    if (!at || at == a || !at[1] || strchr(at + 1, '@') || n > 254)
        return 0;
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F || strchr("<>()[],;:\\\"", *p))
            return 0;
    if (at[1] == '.' || a[n - 1] == '.' || strstr(at, ".."))
        return 0;
    return 1;
}

/* Splits "Name <addr>", "\"Name\" <addr>" or "addr". *name is NULL or a
 * trimmed display name; both are the caller's. Returns 0 or -1. */
static int parse_mailbox(const char *s, char **name, char **addr)
{
    const char *lt = strchr(s, '<');
    size_t n;

    *name = *addr = NULL;
    if (!lt) {
        if (!address_ok(s))
            return -1;
        *addr = sm_xstrdup(s);
        return 0;
    }
    n = strlen(lt);
    if (n < 3 || lt[n - 1] != '>')
        return -1;
    *addr = sm_xstrndup(lt + 1, n - 2);
    if (!address_ok(*addr)) {
        free(*addr);
        *addr = NULL;
        return -1;
    }
    {
        const char *b = s, *e = lt;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - b >= 2 && *b == '"' && e[-1] == '"') {
            b++;
            e--;
        }
        if (e > b) {
            char *raw = sm_xstrndup(b, (size_t)(e - b));
            *name = clean_text(raw, 1);
            free(raw);
        }
    }
    return 0;
}

/* ---- configuration ---- */

static const char *const top_keys[] = {"smtp",
                                       "email",
                                       "webhook",
                                       "on_success",
                                       "digest_time",
                                       "webhook_attempts",
                                       "webhook_backoff_ms",
                                       "timeout_s",
                                       NULL};
static const char *const smtp_keys[] = {"url", "from", "user", "password", "tls", "insecure", NULL};
static const char *const webhook_keys[] = {"url", "secret", NULL};

static int check_keys(const json_t *obj, const char *path, const char *const *allowed, sm_err *err)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (!strcmp(allowed[i], key))
                break;
        if (!allowed[i]) {
            sm_buf list = SM_BUF_INIT;
            for (i = 0; allowed[i]; i++)
                sm_buf_putf(&list, "%s%s", i ? ", " : "", allowed[i]);
            sm_err_set(err, SM_E_INVALID, "unknown key %s.%s: use %s", path, key,
                       sm_buf_str(&list));
            sm_buf_release(&list);
            return sm_err_hint(err, HINT_CONFIG);
        }
    }
    return 0;
}

static int check_object(const json_t *v, const char *path, sm_err *err)
{
    if (v && !json_is_object(v)) {
        sm_err_set(err, SM_E_INVALID, "invalid %s: expected an object", path);
        return sm_err_hint(err, HINT_CONFIG);
    }
    return 0;
}

/* A string member into *dst (replacing it); absent or null leaves *dst. */
static int get_string(const json_t *obj, const char *key, const char *path, char **dst, sm_err *err)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        sm_err_set(err, SM_E_INVALID, "invalid %s.%s: expected a string", path, key);
        return sm_err_hint(err, HINT_CONFIG);
    }
    free(*dst);
    *dst = sm_xstrdup(json_string_value(v));
    return 0;
}

static int get_bool(const json_t *obj, const char *key, const char *path, int *dst, sm_err *err)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        sm_err_set(err, SM_E_INVALID, "invalid %s.%s: use true or false", path, key);
        return sm_err_hint(err, HINT_CONFIG);
    }
    *dst = json_is_true(v);
    return 0;
}

static int get_uint(const json_t *obj, const char *key, const char *path, unsigned lo, unsigned hi,
                    unsigned *dst, sm_err *err)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        sm_err_set(err, SM_E_INVALID, "invalid %s.%s %s: use an integer from %u to %u", path, key,
                   text ? text : "?", lo, hi);
        free(text);
        return sm_err_hint(err, HINT_CONFIG);
    }
    *dst = (unsigned)json_integer_value(v);
    return 0;
}

/* The scheme of url when it parses and has a host; NULL otherwise (caller frees). */
static char *url_scheme(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *out = NULL;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0])
        out = sm_xstrdup(scheme);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return out;
}

static int check_url(const char *url, const char *what, const char *s1, const char *s2, sm_err *err)
{
    char *scheme = url_scheme(url);
    int ok = scheme && (!strcmp(scheme, s1) || !strcmp(scheme, s2));

    free(scheme);
    if (ok)
        return 0;
    /* the value is not repeated: URLs may carry passwords or tokens */
    sm_err_set(err, SM_E_INVALID, "invalid %s: not an %s:// or %s:// URL with a host", what, s1,
               s2);
    return sm_err_hint(err, "Write it like %s://host:port/...; see docs/NOTIFICATIONS.md.", s1);
}

int notify_config_add_email(notify_config *c, const char *addr, const char *what, sm_err *err)
{
    if (!address_ok(addr)) {
        char *shown = clean_text(addr, 1);
        sm_err_set(err, SM_E_INVALID, "invalid %s '%s': expected an address like ops@example.com",
                   what, shown);
        free(shown);
        return sm_err_hint(err, "Give plain addresses (no names, spaces or angle brackets).");
    }
    c->email_to = sm_xrealloc(c->email_to, (c->n_email + 1) * sizeof(*c->email_to));
    c->email_to[c->n_email++] = sm_xstrdup(addr);
    return 0;
}

int notify_config_set_webhook(notify_config *c, const char *url, const char *secret,
                              const char *what, sm_err *err)
{
    if (url) {
        if (check_url(url, what, "http", "https", err) < 0)
            return -1;
        free(c->webhook_url);
        c->webhook_url = sm_xstrdup(url);
    }
    if (secret) {
        free_secret(c->webhook_secret);
        c->webhook_secret = sm_xstrdup(secret);
    }
    return 0;
}

void notify_config_clear_emails(notify_config *c)
{
    for (size_t i = 0; i < c->n_email; i++)
        free(c->email_to[i]);
    free(c->email_to);
    c->email_to = NULL;
    c->n_email = 0;
}

/* Comma-separated addresses (SUPAMANAGER_NOTIFY_EMAIL), replacing the list. */
static int set_email_list(notify_config *c, const char *list, const char *what, sm_err *err)
{
    char *copy = sm_xstrdup(list), *save = NULL;
    int rc = 0;

    notify_config_clear_emails(c);
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end = tok + strlen(tok);
        while (*tok == ' ' || *tok == '\t')
            tok++;
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*tok)
            continue;
        if (notify_config_add_email(c, tok, what, err) < 0) {
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

static int parse_tls(const char *s, int *out)
{
    if (!strcmp(s, "try"))
        *out = 0;
    else if (!strcmp(s, "required"))
        *out = 1;
    else if (!strcmp(s, "none"))
        *out = -1;
    else
        return -1;
    return 0;
}

static int digest_time_ok(const char *s)
{
    return strlen(s) == 5 && s[0] >= '0' && s[0] <= '2' && s[1] >= '0' && s[1] <= '9' &&
           s[2] == ':' && s[3] >= '0' && s[3] <= '5' && s[4] >= '0' && s[4] <= '9' &&
           (s[0] - '0') * 10 + (s[1] - '0') < 24;
}

/* env value when set and not empty */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int load_json(notify_config *c, const json_t *n, sm_err *err)
{
    const json_t *smtp, *email, *hook;
    char *tls = NULL;
    int rc = -1;

    if (!json_is_object(n)) {
        sm_err_set(err, SM_E_INVALID, "invalid notifications: expected an object");
        return sm_err_hint(err, HINT_CONFIG);
    }
    if (check_keys(n, "notifications", top_keys, err) < 0)
        return -1;
    smtp = json_object_get(n, "smtp");
    hook = json_object_get(n, "webhook");
    if (check_object(smtp, "notifications.smtp", err) < 0 ||
        check_object(hook, "notifications.webhook", err) < 0)
        return -1;
    if (smtp) {
        const char *p = "notifications.smtp";
        if (check_keys(smtp, p, smtp_keys, err) < 0 ||
            get_string(smtp, "url", p, &c->smtp_url, err) < 0 ||
            get_string(smtp, "from", p, &c->smtp_from, err) < 0 ||
            get_string(smtp, "user", p, &c->smtp_user, err) < 0 ||
            get_string(smtp, "password", p, &c->smtp_password, err) < 0 ||
            get_string(smtp, "tls", p, &tls, err) < 0 ||
            get_bool(smtp, "insecure", p, &c->smtp_insecure, err) < 0)
            goto out;
        if (tls && parse_tls(tls, &c->smtp_tls) < 0) {
            char *shown = clean_text(tls, 1);
            sm_err_set(err, SM_E_INVALID,
                       "invalid notifications.smtp.tls '%s': use \"try\", \"required\" or \"none\"",
                       shown);
            free(shown);
            sm_err_hint(err, "\"try\" uses STARTTLS when the server offers it, \"required\" "
                             "refuses to send without it, \"none\" never uses it.");
            goto out;
        }
    }
    email = json_object_get(n, "email");
    if (json_is_string(email)) {
        if (notify_config_add_email(c, json_string_value(email), "notifications.email", err) < 0)
            goto out;
    } else if (json_is_array(email)) {
        size_t i;
        json_t *v;
        json_array_foreach(email, i, v)
        {
            char what[64];
            snprintf(what, sizeof(what), "notifications.email[%zu]", i);
            if (!json_is_string(v)) {
                sm_err_set(err, SM_E_INVALID, "invalid %s: expected a string", what);
                sm_err_hint(err, "Write the recipients as [\"ops@example.com\", ...].");
                goto out;
            }
            if (notify_config_add_email(c, json_string_value(v), what, err) < 0)
                goto out;
        }
    } else if (email && !json_is_null(email)) {
        sm_err_set(err, SM_E_INVALID, "invalid notifications.email: expected a list of addresses");
        sm_err_hint(err, "Write the recipients as [\"ops@example.com\", ...].");
        goto out;
    }
    if (hook && (check_keys(hook, "notifications.webhook", webhook_keys, err) < 0 ||
                 get_string(hook, "url", "notifications.webhook", &c->webhook_url, err) < 0 ||
                 get_string(hook, "secret", "notifications.webhook", &c->webhook_secret, err) < 0))
        goto out;
    if (get_bool(n, "on_success", "notifications", &c->on_success, err) < 0 ||
        get_string(n, "digest_time", "notifications", &c->digest_time, err) < 0 ||
        get_uint(n, "webhook_attempts", "notifications", 1, 20, &c->webhook_attempts, err) < 0 ||
        get_uint(n, "webhook_backoff_ms", "notifications", 0, 600000, &c->webhook_backoff_ms, err) <
            0 ||
        get_uint(n, "timeout_s", "notifications", 1, 300, &c->timeout_s, err) < 0)
        goto out;
    if (c->digest_time && !digest_time_ok(c->digest_time)) {
        char *shown = clean_text(c->digest_time, 1);
        sm_err_set(err, SM_E_INVALID, "invalid notifications.digest_time '%s': use \"HH:MM\" (UTC)",
                   shown);
        free(shown);
        sm_err_hint(err, "For example \"07:30\"; leave it out for no daily digest.");
        goto out;
    }
    rc = 0;
out:
    free(tls);
    return rc;
}

int notify_config_load(notify_config *out, const json_t *notifications, sm_err *err)
{
    notify_config c;
    const char *v;

    memset(&c, 0, sizeof(c));
    c.webhook_attempts = 5;
    c.webhook_backoff_ms = 1000;
    c.timeout_s = 10;
    memset(out, 0, sizeof(*out));
    if (notifications && !json_is_null(notifications) && load_json(&c, notifications, err) < 0)
        goto fail;

    /* the environment wins over the file */
    if ((v = env("SUPAMANAGER_SMTP_URL"))) {
        free(c.smtp_url);
        c.smtp_url = sm_xstrdup(v);
    }
    if ((v = env("SUPAMANAGER_SMTP_FROM"))) {
        free(c.smtp_from);
        c.smtp_from = sm_xstrdup(v);
    }
    if ((v = env("SUPAMANAGER_SMTP_USER"))) {
        free(c.smtp_user);
        c.smtp_user = sm_xstrdup(v);
    }
    if ((v = env("SUPAMANAGER_SMTP_PASSWORD"))) {
        free_secret(c.smtp_password);
        c.smtp_password = sm_xstrdup(v);
    }
    if ((v = env("SUPAMANAGER_NOTIFY_EMAIL")) &&
        set_email_list(&c, v, "SUPAMANAGER_NOTIFY_EMAIL", err) < 0)
        goto fail;
    if ((v = env("SUPAMANAGER_WEBHOOK_URL"))) {
        free(c.webhook_url);
        c.webhook_url = sm_xstrdup(v);
    }
    if ((v = env("SUPAMANAGER_WEBHOOK_SECRET"))) {
        free_secret(c.webhook_secret);
        c.webhook_secret = sm_xstrdup(v);
    }

    /* checks of the merged values, naming where they may come from */
    if (c.smtp_url) {
        int smtps;
        if (check_url(c.smtp_url, "notifications.smtp.url (or SUPAMANAGER_SMTP_URL)", "smtp",
                      "smtps", err) < 0)
            goto fail;
        {
            char *scheme = url_scheme(c.smtp_url);
            smtps = scheme && !strcmp(scheme, "smtps");
            free(scheme);
        }
        if (smtps && c.smtp_tls < 0) {
            sm_err_set(err, SM_E_INVALID,
                       "invalid notifications.smtp.tls \"none\" with an "
                       "smtps:// URL, which always uses TLS");
            sm_err_hint(err, "Use smtp://host:port for a server without TLS, or drop \"tls\".");
            goto fail;
        }
        if (!c.smtp_from)
            c.smtp_from = sm_xasprintf("SupaManager <supamanager@%s>", sm_hostname());
    }
    if (c.smtp_from) {
        char *name = NULL, *addr = NULL;
        int bad = parse_mailbox(c.smtp_from, &name, &addr) < 0;
        free(name);
        free(addr);
        if (bad) {
            char *shown = clean_text(c.smtp_from, 1);
            sm_err_set(err, SM_E_INVALID,
                       "invalid notifications.smtp.from (or SUPAMANAGER_SMTP_FROM) '%s': use "
                       "\"backup@example.com\" or \"SupaManager <backup@example.com>\"",
                       shown);
            free(shown);
            sm_err_hint(err, HINT_CONFIG);
            goto fail;
        }
    }
    if (c.smtp_password && !c.smtp_user) {
        sm_err_set(err, SM_E_INVALID,
                   "notifications.smtp.password is set without "
                   "notifications.smtp.user");
        sm_err_hint(err, "Set the user name too (SUPAMANAGER_SMTP_USER), or drop the password.");
        goto fail;
    }
    if (c.webhook_url &&
        check_url(c.webhook_url, "notifications.webhook.url (or SUPAMANAGER_WEBHOOK_URL)", "http",
                  "https", err) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    notify_config_free(&c);
    return -1;
}

void notify_config_free(notify_config *c)
{
    if (!c)
        return;
    free(c->smtp_url);
    free(c->smtp_from);
    free(c->smtp_user);
    free_secret(c->smtp_password);
    notify_config_clear_emails(c);
    free(c->webhook_url);
    free_secret(c->webhook_secret);
    free(c->digest_time);
    memset(c, 0, sizeof(*c));
}

static void config_copy(notify_config *dst, const notify_config *src)
{
    *dst = *src;
    dst->smtp_url = dup_or_null(src->smtp_url);
    dst->smtp_from = dup_or_null(src->smtp_from);
    dst->smtp_user = dup_or_null(src->smtp_user);
    dst->smtp_password = dup_or_null(src->smtp_password);
    dst->webhook_url = dup_or_null(src->webhook_url);
    dst->webhook_secret = dup_or_null(src->webhook_secret);
    dst->digest_time = dup_or_null(src->digest_time);
    dst->email_to = NULL;
    dst->n_email = 0;
    if (src->n_email) {
        dst->email_to = sm_xcalloc(src->n_email, sizeof(*dst->email_to));
        for (size_t i = 0; i < src->n_email; i++)
            dst->email_to[i] = sm_xstrdup(src->email_to[i]);
        dst->n_email = src->n_email;
    }
}

/* ---- URLs as shown ---- */

char *notify_redact_url(const char *url)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *out;
    sm_buf b = SM_BUF_INIT;

    if (!url)
        return sm_xstrdup("(none)");
    u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        curl_free(scheme);
        return sm_xstrdup("(invalid URL)");
    }
    sm_buf_putf(&b, "%s://%s", scheme, host);
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
        sm_buf_putf(&b, ":%s", port);
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path[0] == '/' && path[1]) {
        const char *second = strchr(path + 1, '/');
        if (second && second[1]) {
            sm_buf_put(&b, path, (size_t)(second - path));
            sm_buf_puts(&b, "/...");
        } else
            sm_buf_puts(&b, path);
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query[0])
        sm_buf_puts(&b, "?...");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    out = sm_buf_detach(&b, NULL);
    return out;
}

/* "host:port" of url, with the scheme's default port (caller frees). */
static char *url_hostport(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *out;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        out = sm_xasprintf("%s:%s", host, port);
    else
        out = sm_xstrdup("(invalid URL)");
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

/* ---- messages ---- */

/* One message, owned, cleaned (valid UTF-8, one-line fields without controls). */
typedef struct nmsg {
    struct nmsg *next;
    char *event, *project_id, *subject, *text;
    json_t *payload; /* never NULL */
    char **email_to;
    size_t n_email;
    char *webhook_url, *webhook_secret;
    char delivery_id[40];
} nmsg;

static void new_delivery_id(char out[40])
{
    unsigned char r[16];
    char hex[33];

    sm_random(r, sizeof(r));
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40); /* UUID version 4 */
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
    sm_hex(hex, r, sizeof(r));
    snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static nmsg *nmsg_new(const notify_msg *m)
{
    nmsg *n = sm_xcalloc(1, sizeof(*n));

    n->event = clean_text(m->event && *m->event ? m->event : "unknown", 1);
    n->project_id = clean_text(m->project_id, 1);
    n->subject = clean_text(m->subject, 1);
    n->text = clean_text(m->text ? m->text : "", 0);
    n->payload = m->payload ? json_deep_copy(m->payload) : NULL;
    if (!n->payload)
        n->payload = json_object();
    if (m->n_email && m->email_to) {
        n->email_to = sm_xcalloc(m->n_email, sizeof(*n->email_to));
        for (size_t i = 0; i < m->n_email; i++)
            n->email_to[n->n_email++] = sm_xstrdup(m->email_to[i] ? m->email_to[i] : "");
    }
    n->webhook_url = dup_or_null(m->webhook_url);
    n->webhook_secret =
        m->webhook_secret && *m->webhook_secret ? sm_xstrdup(m->webhook_secret) : NULL;
    new_delivery_id(n->delivery_id);
    return n;
}

static void nmsg_free(nmsg *n)
{
    if (!n)
        return;
    free(n->event);
    free(n->project_id);
    free(n->subject);
    free(n->text);
    json_decref(n->payload);
    for (size_t i = 0; i < n->n_email; i++)
        free(n->email_to[i]);
    free(n->email_to);
    free(n->webhook_url);
    free_secret(n->webhook_secret);
    free(n);
}

/* "project abc123: " or "" for log lines (caller frees) */
static char *log_prefix(const nmsg *m)
{
    return m->project_id ? sm_xasprintf("project %s: ", m->project_id) : sm_xstrdup("");
}

/* ---- webhook body and signature ---- */

void notify_signature(char *out, size_t cap, const char *secret, time_t t, const char *body,
                      size_t len)
{
    unsigned char mac[32];
    char hex[65], ts[32];
    size_t maclen = 0;
    int tl = snprintf(ts, sizeof(ts), "%lld.", (long long)t);
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };

    if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tl) ||
        !EVP_MAC_update(ctx, (const unsigned char *)body, len) ||
        !EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) || maclen != sizeof(mac)) {
        fprintf(stderr, "supamanager: fatal: HMAC-SHA-256 failed\n");
        abort();
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    sm_hex(hex, mac, sizeof(mac));
    snprintf(out, cap, "t=%lld,v1=%s", (long long)t, hex);
}

static char *webhook_body(const nmsg *m, time_t sent_at)
{
    char ts[32];
    json_t *o = json_object();
    char *s;

    sm_time_iso(ts, sizeof(ts), sent_at);
    json_object_set_new(o, "event", json_string(m->event));
    json_object_set_new(o, "delivery_id", json_string(m->delivery_id));
    json_object_set_new(o, "sent_at", json_string(ts));
    json_object_set_new(o, "project_id", m->project_id ? json_string(m->project_id) : json_null());
    json_object_set(o, "data", m->payload);
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s) {
        fprintf(stderr, "supamanager: fatal: cannot encode a webhook body\n");
        abort();
    }
    return s;
}

char *notify_webhook_body(const notify_msg *m, const char *delivery_id, time_t sent_at)
{
    nmsg *n = nmsg_new(m);
    char *s;

    snprintf(n->delivery_id, sizeof(n->delivery_id), "%s", delivery_id ? delivery_id : "");
    s = webhook_body(n, sent_at);
    nmsg_free(n);
    return s;
}

/* ---- e-mail message ---- */

/* RFC 2047 "B" encoded words for UTF-8 text s, at most 45 input bytes (72
 * characters) each so none passes 75, cut between characters, separated by
 * CRLF SP (folding, which decoders drop between encoded words). */
static void put_encoded_words(sm_buf *b, const char *s)
{
    size_t len = strlen(s), off = 0;

    while (off < len) {
        size_t n = len - off;
        unsigned char enc[64];
        if (n > 45) {
            n = 45;
            while (n > 0 && ((unsigned char)s[off + n] & 0xC0) == 0x80)
                n--;
        }
        EVP_EncodeBlock(enc, (const unsigned char *)s + off, (int)n);
        sm_buf_putf(b, "%s=?UTF-8?B?%s?=", off ? "\r\n " : "", (const char *)enc);
        off += n;
    }
}

/* A display name: encoded words when not ASCII, else a quoted string when it
 * has characters that are special in a phrase, else as is. */
static void put_phrase(sm_buf *b, const char *name)
{
    if (!is_ascii(name) || strstr(name, "=?")) {
        put_encoded_words(b, name);
        return;
    }
    if (strpbrk(name, "()<>[]:;@\\,.\"") == NULL) {
        sm_buf_puts(b, name);
        return;
    }
    sm_buf_putc(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\')
            sm_buf_putc(b, '\\');
        sm_buf_putc(b, *p);
    }
    sm_buf_putc(b, '"');
}

/* The body: LF becomes CRLF, lines longer than 998 octets are cut between
 * characters, and the message ends with CRLF. */
static void put_body(sm_buf *b, const char *text)
{
    const char *p = text;

    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        while (n > LINE_MAX_OCTETS) {
            size_t cut = LINE_MAX_OCTETS;
            while (cut > 0 && ((unsigned char)p[cut] & 0xC0) == 0x80)
                cut--;
            sm_buf_put(b, p, cut);
            sm_buf_puts(b, "\r\n");
            p += cut;
            n -= cut;
        }
        sm_buf_put(b, p, n);
        sm_buf_puts(b, "\r\n");
        p += n;
        if (*p == '\n')
            p++;
    }
}

/* Formats m; *envelope_from (caller frees) gets the sender's bare address. */
static int format_email(sm_buf *out, const notify_config *cfg, const nmsg *m, time_t now,
                        char **envelope_from, sm_err *err)
{
    static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char *name = NULL, *addr = NULL, *id = NULL, *subject = NULL;
    char *default_from = NULL;
    const char *from = cfg->smtp_from;
    struct tm tm;
    size_t col;
    int rc = -1;

    if (!from)
        from = default_from = sm_xasprintf("SupaManager <supamanager@%s>", sm_hostname());
    if (parse_mailbox(from, &name, &addr) < 0) {
        char *shown = clean_text(from, 1);
        sm_err_set(err, SM_E_INVALID, "invalid e-mail sender '%s'", shown);
        free(shown);
        sm_err_hint(err, "Set notifications.smtp.from to \"backup@example.com\" or "
                         "\"SupaManager <backup@example.com>\".");
        goto out;
    }
    if (m->n_email == 0) {
        sm_err_set(err, SM_E_INVALID, "the e-mail has no recipients");
        goto out;
    }
    for (size_t i = 0; i < m->n_email; i++) {
        if (!address_ok(m->email_to[i])) {
            char *shown = clean_text(m->email_to[i], 1);
            sm_err_set(err, SM_E_INVALID,
                       "invalid e-mail recipient '%s': expected an address like ops@example.com",
                       shown);
            free(shown);
            goto out;
        }
    }

    gmtime_r(&now, &tm);
    sm_buf_putf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", wday[tm.tm_wday],
                tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    sm_buf_puts(out, "From: ");
    if (name) {
        put_phrase(out, name);
        sm_buf_putf(out, " <%s>\r\n", addr);
    } else
        sm_buf_putf(out, "%s\r\n", addr);
    sm_buf_puts(out, "To: ");
    col = 4;
    for (size_t i = 0; i < m->n_email; i++) {
        size_t n = strlen(m->email_to[i]);
        if (i) {
            sm_buf_puts(out, col + n + 2 > 78 ? ",\r\n " : ", ");
            col = col + n + 2 > 78 ? 1 : col + 2;
        }
        sm_buf_puts(out, m->email_to[i]);
        col += n;
    }
    sm_buf_puts(out, "\r\n");

    subject = m->subject && *m->subject ? sm_xstrdup(m->subject)
                                        : sm_xasprintf("SupaManager: %s", m->event);
    if (strlen(subject) > SUBJECT_MAX) {
        size_t cut = SUBJECT_MAX;
        while (cut > 0 && ((unsigned char)subject[cut] & 0xC0) == 0x80)
            cut--;
        subject[cut] = '\0';
    }
    sm_buf_puts(out, "Subject: ");
    if (is_ascii(subject) && !strstr(subject, "=?"))
        sm_buf_puts(out, subject);
    else
        put_encoded_words(out, subject);
    sm_buf_puts(out, "\r\n");

    id = sm_random_hex(16);
    sm_buf_putf(out, "Message-ID: <%s.%lld@%s>\r\n", id, (long long)now, strchr(addr, '@') + 1);
    sm_buf_puts(out, "MIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 8bit\r\n"
                     "Auto-Submitted: auto-generated\r\n");
    sm_buf_puts(out, "X-SupaManager-Event: ");
    if (is_ascii(m->event))
        sm_buf_puts(out, m->event);
    else
        put_encoded_words(out, m->event);
    sm_buf_puts(out, "\r\n\r\n");
    put_body(out, m->text);
    *envelope_from = addr;
    addr = NULL;
    rc = 0;
out:
    free(name);
    free(addr);
    free(id);
    free(subject);
    free(default_from);
    return rc;
}

int notify_format_email(sm_buf *out, const notify_config *cfg, const notify_msg *m, time_t now,
                        sm_err *err)
{
    nmsg *n = nmsg_new(m);
    char *from = NULL;
    int rc = format_email(out, cfg, n, now, &from, err);

    free(from);
    nmsg_free(n);
    return rc;
}

/* ---- the notifier ---- */

struct notifier {
    notify_config cfg; /* own copy */
    CURL *curl;        /* the sender thread's handle (keeps connections between messages) */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* new message or stop: the sender thread */
    pthread_cond_t idle; /* a message done or the thread gone: flush and stop */
    nmsg *head, *tail;
    size_t queued;
    int inflight;
    int done;            /* the sender thread has ended */
    atomic_int stopping; /* no more retries, no back-off waits */
    atomic_int abort;    /* the drain deadline passed: abort transfers, drop the rest */
    int warned_unsigned, warned_no_smtp;
    /* metrics */
    uint64_t email_sent, email_failed, hook_sent, hook_failed, hook_retries, dropped;
};

/* A delivery context: the configuration, a curl handle, and the notifier when
 * running on its thread (NULL for synchronous deliveries). */
typedef struct dctx {
    const notify_config *cfg;
    CURL *curl;
    notifier *N;
} dctx;

static int stopping(const dctx *d)
{
    return d->N && atomic_load(&d->N->stopping);
}

static int xfer_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    const dctx *d = ud;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return d->N && atomic_load(&d->N->abort) ? 1 : 0;
}

/* Waits ms milliseconds; on the notifier's thread a stop ends the wait early.
 * Returns 1 when the notifier is stopping (the caller gives up retrying). */
static int pause_ms(dctx *d, uint64_t ms)
{
    notifier *N = d->N;
    struct timespec until;
    int stop;

    if (!N) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&N->lock);
    while (!atomic_load(&N->stopping) &&
           pthread_cond_timedwait(&N->wake, &N->lock, &until) != ETIMEDOUT)
        ;
    stop = atomic_load(&N->stopping);
    pthread_mutex_unlock(&N->lock);
    return stop;
}

static uint64_t backoff_ms(const notify_config *cfg, unsigned attempt)
{
    uint64_t ms = cfg->webhook_backoff_ms;

    for (unsigned i = 1; i < attempt && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

static void common_opts(dctx *d, const char *url, char *errbuf)
{
    curl_easy_reset(d->curl);
    curl_easy_setopt(d->curl, CURLOPT_URL, url);
    curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(d->curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(d->curl, CURLOPT_TIMEOUT, (long)d->cfg->timeout_s);
    curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT, (long)d->cfg->timeout_s);
    curl_easy_setopt(d->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(d->curl, CURLOPT_XFERINFOFUNCTION, xfer_cb);
    curl_easy_setopt(d->curl, CURLOPT_XFERINFODATA, d);
    errbuf[0] = '\0';
}

/* What went wrong in a failed transfer, for humans: "connection refused by
 * host:port", "no answer from host:port within 10 s", ... */
static void describe_curl(char *out, size_t cap, CURLcode rc, const char *errbuf, long os_errno,
                          const char *hostport, unsigned timeout_s)
{
    const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);

    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            snprintf(out, cap, "connection refused by %s", hostport);
        else if (os_errno)
            snprintf(out, cap, "cannot connect to %s: %s", hostport, strerror((int)os_errno));
        else
            snprintf(out, cap, "cannot connect to %s", hostport);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(out, cap, "cannot resolve the host name of %s", hostport);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(out, cap, "no answer from %s within %u s", hostport, timeout_s);
        break;
    case CURLE_GOT_NOTHING:
        snprintf(out, cap, "%s closed the connection without answering", hostport);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(out, cap, "the TLS certificate of %s does not verify (%s)", hostport, detail);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(out, cap, "TLS handshake with %s failed (%s)", hostport, detail);
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        snprintf(out, cap, "aborted: the service is stopping");
        break;
    default:
        snprintf(out, cap, "%s: %s", hostport, detail);
        break;
    }
}

/* transfers worth another attempt: the receiver was not reached or did not answer */
static int curl_transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

/* ---- SMTP ---- */

typedef struct upload {
    const char *p;
    size_t len, off;
} upload;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    upload *u = ud;
    size_t n = size * nitems;

    if (n > u->len - u->off)
        n = u->len - u->off;
    memcpy(buf, u->p + u->off, n);
    u->off += n;
    return n;
}

static int email_deliver(dctx *d, const nmsg *m, notify_result *res, sm_err *err)
{
    const notify_config *cfg = d->cfg;
    sm_buf msg = SM_BUF_INIT;
    struct curl_slist *rcpt = NULL;
    char *from = NULL, *mail_from = NULL, *hostport = NULL, *prefix = log_prefix(m);
    char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 256];
    CURLcode rc = CURLE_OK;
    long reply = 0, os_errno = 0;
    unsigned attempt;
    int ret = -1;

    if (res)
        memset(res, 0, sizeof(*res));
    if (!cfg->smtp_url) {
        sm_err_set(err, SM_E_INVALID, "e-mail is not configured");
        sm_err_hint(err, "Set notifications.smtp.url (or SUPAMANAGER_SMTP_URL) to "
                         "smtp://host:port.");
        goto out;
    }
    if (format_email(&msg, cfg, m, sm_now(), &from, err) < 0)
        goto out;
    mail_from = sm_xasprintf("<%s>", from);
    for (size_t i = 0; i < m->n_email; i++) {
        char *r = sm_xasprintf("<%s>", m->email_to[i]);
        struct curl_slist *t = curl_slist_append(rcpt, r);
        free(r);
        if (!t) {
            fprintf(stderr, "supamanager: fatal: out of memory\n");
            abort();
        }
        rcpt = t;
    }
    hostport = url_hostport(cfg->smtp_url);
    for (attempt = 1; attempt <= EMAIL_ATTEMPTS; attempt++) {
        upload up = {(const char *)msg.data, msg.len, 0};
        int transient;

        common_opts(d, cfg->smtp_url, errbuf);
        curl_easy_setopt(d->curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        curl_easy_setopt(d->curl, CURLOPT_MAIL_FROM, mail_from);
        curl_easy_setopt(d->curl, CURLOPT_MAIL_RCPT, rcpt);
        curl_easy_setopt(d->curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(d->curl, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(d->curl, CURLOPT_READDATA, &up);
        curl_easy_setopt(d->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg.len);
        curl_easy_setopt(d->curl, CURLOPT_USE_SSL,
                         cfg->smtp_tls > 0    ? (long)CURLUSESSL_ALL
                         : cfg->smtp_tls == 0 ? (long)CURLUSESSL_TRY
                                              : (long)CURLUSESSL_NONE);
        if (cfg->smtp_user) {
            curl_easy_setopt(d->curl, CURLOPT_USERNAME, cfg->smtp_user);
            curl_easy_setopt(d->curl, CURLOPT_PASSWORD,
                             cfg->smtp_password ? cfg->smtp_password : "");
        }
        if (cfg->smtp_insecure) {
            curl_easy_setopt(d->curl, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(d->curl, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        rc = curl_easy_perform(d->curl);
        reply = 0;
        os_errno = 0;
        curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &reply);
        curl_easy_getinfo(d->curl, CURLINFO_OS_ERRNO, &os_errno);
        if (res) {
            res->attempts = attempt;
            res->status = reply;
        }
        if (rc == CURLE_OK) {
            ret = 0;
            if (attempt > 1)
                sm_log(SM_LOG_INFO, "%se-mail '%s' sent after %u attempts", prefix, m->event,
                       attempt);
            goto out;
        }
        /* not reached, or a temporary (4xx) refusal: nothing was accepted yet */
        transient = (curl_transient(rc) && (rc != CURLE_OPERATION_TIMEDOUT || reply == 0) &&
                     rc != CURLE_SEND_ERROR && rc != CURLE_RECV_ERROR) ||
                    (reply >= 400 && reply < 500 && rc != CURLE_LOGIN_DENIED);
        if (rc == CURLE_LOGIN_DENIED)
            snprintf(why, sizeof(why), "%s refused the login of user '%s' (reply %ld)", hostport,
                     cfg->smtp_user ? cfg->smtp_user : "", reply);
        else if (rc == CURLE_USE_SSL_FAILED)
            snprintf(why, sizeof(why),
                     "%s does not offer STARTTLS, and notifications.smtp.tls "
                     "is \"required\"",
                     hostport);
        else if (reply >= 400 && rc != CURLE_OPERATION_TIMEDOUT)
            snprintf(why, sizeof(why), "%s answered %ld (%s)", hostport, reply,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        else
            describe_curl(why, sizeof(why), rc, errbuf, os_errno, hostport, cfg->timeout_s);
        if (!transient || attempt == EMAIL_ATTEMPTS || stopping(d))
            break;
        {
            uint64_t ms = backoff_ms(cfg, attempt);
            sm_log(SM_LOG_WARN,
                   "%se-mail '%s': attempt %u of %u failed: SMTP: %s; retrying in "
                   "%.1f s",
                   prefix, m->event, attempt, EMAIL_ATTEMPTS, why, (double)ms / 1000.0);
            if (pause_ms(d, ms))
                break;
        }
    }
    if (attempt > EMAIL_ATTEMPTS)
        attempt = EMAIL_ATTEMPTS;
    if (attempt > 1)
        sm_err_set(err, SM_E_IO, "SMTP: %s (after %u attempts)", why, attempt);
    else
        sm_err_set(err, SM_E_IO, "SMTP: %s", why);
    if (rc == CURLE_LOGIN_DENIED)
        sm_err_hint(err, "Check notifications.smtp.user and notifications.smtp.password (or "
                         "SUPAMANAGER_SMTP_USER and SUPAMANAGER_SMTP_PASSWORD).");
    else if (rc == CURLE_USE_SSL_FAILED)
        sm_err_hint(err, "Set notifications.smtp.tls to \"try\", or use smtps://host:465 if the "
                         "server speaks TLS from the start.");
    else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
        sm_err_hint(err, "Install the CA of the server's certificate, or set "
                         "notifications.smtp.insecure to true for a test server.");
    else if (reply >= 500 && reply < 600)
        sm_err_hint(err, "The mail server refused the message: check the sender "
                         "(notifications.smtp.from), the recipients and the server's log.");
    else
        sm_err_hint(err, "Check notifications.smtp.url (or SUPAMANAGER_SMTP_URL): is the mail "
                         "server running and reachable from this machine?");
out:
    curl_slist_free_all(rcpt);
    sm_buf_release(&msg);
    free(from);
    free(mail_from);
    free(hostport);
    free(prefix);
    return ret;
}

/* ---- webhooks ---- */

static size_t keep_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    sm_buf *b = ud;
    size_t n = size * nmemb;

    if (b->len < RESPONSE_KEEP)
        sm_buf_put(b, p, n < RESPONSE_KEEP - b->len ? n : RESPONSE_KEEP - b->len);
    return n;
}

/* The start of a receiver's answer as printable ASCII, for messages. */
static void answer_excerpt(char *out, size_t cap, const sm_buf *b)
{
    size_t o = 0;

    for (size_t i = 0; i < b->len && o + 4 < cap && o < 120; i++) {
        unsigned char c = b->data[i];
        out[o++] = (char)(c >= 0x20 && c < 0x7F ? c : ' ');
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

static int webhook_deliver(dctx *d, const nmsg *m, notify_result *res, sm_err *err)
{
    const notify_config *cfg = d->cfg;
    unsigned attempts = cfg->webhook_attempts ? cfg->webhook_attempts : 1, attempt;
    char *shown = notify_redact_url(m->webhook_url), *prefix = log_prefix(m), *body = NULL;
    char *hostport = NULL, *scheme = NULL;
    char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 256], excerpt[128];
    sm_buf answer = SM_BUF_INIT;
    long status = 0;
    int ret = -1, retryable = 0, gave_up = 0, aborted = 0;

    if (res)
        memset(res, 0, sizeof(*res));
    scheme = m->webhook_url ? url_scheme(m->webhook_url) : NULL;
    if (!scheme || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        sm_err_set(err, SM_E_INVALID, "webhook %s: not an http:// or https:// URL", shown);
        sm_err_hint(err, "Set notifications.webhook.url to the receiver's http(s) URL.");
        goto out;
    }
    hostport = url_hostport(m->webhook_url);
    body = webhook_body(m, sm_now());
    for (attempt = 1; attempt <= attempts; attempt++) {
        struct curl_slist *h = NULL;
        char line[256];
        curl_off_t retry_after = 0;
        long os_errno = 0;
        CURLcode rc;
        uint64_t ms;

        sm_buf_reset(&answer);
        common_opts(d, m->webhook_url, errbuf);
        curl_easy_setopt(d->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(d->curl, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(d->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        curl_easy_setopt(d->curl, CURLOPT_USERAGENT, USER_AGENT);
        curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, keep_cb);
        curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, &answer);
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:");
        snprintf(line, sizeof(line), "X-SupaManager-Event: %s", m->event);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof(line), "X-SupaManager-Delivery: %s", m->delivery_id);
        h = curl_slist_append(h, line);
        if (m->webhook_secret) {
            char sig[128];
            /* signed per attempt with a fresh timestamp, so receivers can refuse old replays;
             * the real clock even when tests drive sm_now(), as receivers compare it to theirs */
            notify_signature(sig, sizeof(sig), m->webhook_secret, time(NULL), body, strlen(body));
            snprintf(line, sizeof(line), "X-SupaManager-Signature: %s", sig);
            h = curl_slist_append(h, line);
        }
        if (!h) {
            fprintf(stderr, "supamanager: fatal: out of memory\n");
            abort();
        }
        curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, h);
        rc = curl_easy_perform(d->curl);
        status = 0;
        curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(d->curl, CURLINFO_OS_ERRNO, &os_errno);
        curl_easy_getinfo(d->curl, CURLINFO_RETRY_AFTER, &retry_after);
        curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
        if (res) {
            res->attempts = attempt;
            res->status = rc == CURLE_OK ? status : 0;
        }
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            ret = 0;
            if (attempt > 1)
                sm_log(SM_LOG_INFO, "%swebhook %s: '%s' delivered after %u attempts", prefix, shown,
                       m->event, attempt);
            goto out;
        }
        if (rc != CURLE_OK) {
            describe_curl(why, sizeof(why), rc, errbuf, os_errno, hostport, cfg->timeout_s);
            retryable = curl_transient(rc);
            aborted = rc == CURLE_ABORTED_BY_CALLBACK;
        } else {
            answer_excerpt(excerpt, sizeof(excerpt), &answer);
            if (status >= 300 && status < 400)
                snprintf(why, sizeof(why), "HTTP %ld (redirects are not followed)", status);
            else if (excerpt[0])
                snprintf(why, sizeof(why), "HTTP %ld: %s", status, excerpt);
            else
                snprintf(why, sizeof(why), "HTTP %ld", status);
            retryable = status >= 500 || status == 429;
        }
        if (!retryable || attempt == attempts)
            break;
        if (stopping(d)) {
            gave_up = 1;
            break;
        }
        ms = backoff_ms(cfg, attempt);
        if (retry_after > 0)
            ms = (uint64_t)(retry_after < RETRY_AFTER_MAX_S ? retry_after : RETRY_AFTER_MAX_S) *
                 1000;
        sm_log(SM_LOG_WARN, "%swebhook %s: '%s' attempt %u of %u failed: %s; retrying in %.1f s",
               prefix, shown, m->event, attempt, attempts, why, (double)ms / 1000.0);
        if (d->N) {
            pthread_mutex_lock(&d->N->lock);
            d->N->hook_retries++;
            pthread_mutex_unlock(&d->N->lock);
        }
        if (pause_ms(d, ms)) {
            gave_up = 1;
            break;
        }
    }
    if (attempt > attempts)
        attempt = attempts;
    if (!retryable)
        sm_err_set(err, SM_E_IO, "webhook %s: %s%s", shown, why,
                   attempts > 1 && !aborted ? " (not retried)" : "");
    else if (gave_up)
        sm_err_set(err, SM_E_IO, "webhook %s: %s (%u attempt%s; no retries while stopping)", shown,
                   why, attempt, attempt == 1 ? "" : "s");
    else if (attempt > 1)
        sm_err_set(err, SM_E_IO, "webhook %s: %s after %u attempts", shown, why, attempt);
    else
        sm_err_set(err, SM_E_IO, "webhook %s: %s", shown, why);
    if (!retryable && status >= 400 && status < 500)
        sm_err_hint(err, "The receiver refused the request, and 4xx answers are not retried: "
                         "check notifications.webhook.url, and the secret if it checks "
                         "signatures.");
    else
        sm_err_hint(err, "Check that the receiver at notifications.webhook.url is up and "
                         "answers 2xx; retries follow webhook_attempts and webhook_backoff_ms.");
out:
    sm_buf_release(&answer);
    free(body);
    free(shown);
    free(prefix);
    free(hostport);
    free(scheme);
    return ret;
}

/* ---- the sender thread ---- */

static void count(notifier *N, uint64_t *counter)
{
    pthread_mutex_lock(&N->lock);
    (*counter)++;
    pthread_mutex_unlock(&N->lock);
}

static void deliver_async(dctx *d, const nmsg *m)
{
    notifier *N = d->N;
    char *prefix = log_prefix(m);

    if (m->n_email) {
        sm_err err = SM_ERR_INIT;
        if (!N->cfg.smtp_url) {
            if (!N->warned_no_smtp)
                sm_log(SM_LOG_WARN,
                       "%se-mail '%s' to %s not sent: no SMTP server is configured "
                       "(set notifications.smtp.url or SUPAMANAGER_SMTP_URL)",
                       prefix, m->event, m->email_to[0]);
            N->warned_no_smtp = 1;
            count(N, &N->email_failed);
        } else if (email_deliver(d, m, NULL, &err) == 0) {
            sm_log(SM_LOG_DEBUG, "%se-mail '%s' sent to %s%s", prefix, m->event, m->email_to[0],
                   m->n_email > 1 ? " and others" : "");
            count(N, &N->email_sent);
        } else {
            sm_log(SM_LOG_ERROR, "%se-mail '%s' to %s%s not sent: %s", prefix, m->event,
                   m->email_to[0], m->n_email > 1 ? " and others" : "", err.msg);
            count(N, &N->email_failed);
        }
    }
    if (m->webhook_url) {
        sm_err err = SM_ERR_INIT;
        if (!m->webhook_secret && !N->warned_unsigned) {
            char *shown = notify_redact_url(m->webhook_url);
            sm_log(SM_LOG_WARN,
                   "webhook %s: no secret is set, so deliveries are not signed "
                   "(set notifications.webhook.secret)",
                   shown);
            free(shown);
            N->warned_unsigned = 1;
        }
        if (webhook_deliver(d, m, NULL, &err) == 0) {
            sm_log(SM_LOG_DEBUG, "%swebhook '%s' delivered (delivery %s)", prefix, m->event,
                   m->delivery_id);
            count(N, &N->hook_sent);
        } else {
            sm_log(SM_LOG_ERROR, "%swebhook '%s' not delivered (delivery %s): %s", prefix, m->event,
                   m->delivery_id, err.msg);
            count(N, &N->hook_failed);
        }
    }
    free(prefix);
}

static void *sender_main(void *arg)
{
    notifier *N = arg;
    dctx d = {&N->cfg, N->curl, N};

    pthread_mutex_lock(&N->lock);
    for (;;) {
        nmsg *m;
        while (!N->head && !atomic_load(&N->stopping))
            pthread_cond_wait(&N->wake, &N->lock);
        if (!N->head)
            break;
        m = N->head;
        N->head = m->next;
        if (!N->head)
            N->tail = NULL;
        N->queued--;
        N->inflight = 1;
        if (atomic_load(&N->abort)) {
            N->dropped++;
        } else {
            pthread_mutex_unlock(&N->lock);
            deliver_async(&d, m);
            pthread_mutex_lock(&N->lock);
        }
        nmsg_free(m);
        N->inflight = 0;
        pthread_cond_broadcast(&N->idle);
    }
    N->done = 1;
    pthread_cond_broadcast(&N->idle);
    pthread_mutex_unlock(&N->lock);
    return NULL;
}

/* zero means "default" for callers that fill the struct by hand */
static void normalize(notify_config *c)
{
    if (!c->timeout_s)
        c->timeout_s = 10;
    if (!c->webhook_attempts)
        c->webhook_attempts = 5;
}

static void deadline_in(struct timespec *t, double s)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    if (s < 0)
        s = 0;
    t->tv_sec += (time_t)s;
    t->tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

int notifier_start(notifier **out, const notify_config *cfg, sm_err *err)
{
    notifier *N = sm_xcalloc(1, sizeof(*N));
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    config_copy(&N->cfg, cfg);
    normalize(&N->cfg);
    (void)sm_hostname(); /* fills its static buffer before a second thread can ask */
    N->curl = curl_easy_init();
    if (!N->curl) {
        notify_config_free(&N->cfg);
        free(N);
        return sm_err_set(err, SM_E_INTERNAL, "cannot initialize libcurl for notifications");
    }
    pthread_mutex_init(&N->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&N->wake, &ca);
    pthread_cond_init(&N->idle, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&N->thread, NULL, sender_main, N);
    if (rc != 0) {
        pthread_cond_destroy(&N->wake);
        pthread_cond_destroy(&N->idle);
        pthread_mutex_destroy(&N->lock);
        curl_easy_cleanup(N->curl);
        notify_config_free(&N->cfg);
        free(N);
        errno = rc;
        return sm_err_sys(err, SM_E_INTERNAL, "cannot start the notification thread");
    }
    *out = N;
    return 0;
}

void notifier_send(notifier *N, const notify_msg *m)
{
    nmsg *n;
    uint64_t dropped;
    int full;

    if (!N || !m)
        return;
    n = nmsg_new(m);
    pthread_mutex_lock(&N->lock);
    full = N->queued >= NOTIFY_QUEUE_MAX || N->done;
    if (full) {
        N->dropped++;
    } else {
        if (N->tail)
            N->tail->next = n;
        else
            N->head = n;
        N->tail = n;
        N->queued++;
        pthread_cond_signal(&N->wake);
    }
    dropped = N->dropped;
    pthread_mutex_unlock(&N->lock);
    if (full) {
        /* one line at the 1st, 10th, 100th... drop: a dead receiver must not flood the log */
        uint64_t p10 = 1;
        while (p10 < dropped)
            p10 *= 10;
        if (p10 == dropped) {
            char *prefix = log_prefix(n);
            sm_log(SM_LOG_ERROR,
                   "%snotification '%s' dropped: %d are already waiting for slow "
                   "or failing receivers (%llu dropped so far)",
                   prefix, n->event, NOTIFY_QUEUE_MAX, (unsigned long long)dropped);
            free(prefix);
        }
        nmsg_free(n);
    }
}

int notifier_flush(notifier *N, double timeout_s)
{
    struct timespec until;
    int rc;

    if (!N)
        return 0;
    deadline_in(&until, timeout_s);
    pthread_mutex_lock(&N->lock);
    while ((N->head || N->inflight) && !N->done)
        if (pthread_cond_timedwait(&N->idle, &N->lock, &until) == ETIMEDOUT)
            break;
    rc = N->head || N->inflight ? -1 : 0;
    pthread_mutex_unlock(&N->lock);
    return rc;
}

void notifier_stop(notifier *N)
{
    struct timespec until;
    unsigned budget;
    size_t left = 0;

    if (!N)
        return;
    budget = 2 * N->cfg.timeout_s < 2 ? 2 : 2 * N->cfg.timeout_s;
    deadline_in(&until, budget);
    pthread_mutex_lock(&N->lock);
    atomic_store(&N->stopping, 1);
    pthread_cond_broadcast(&N->wake);
    while (!N->done)
        if (pthread_cond_timedwait(&N->idle, &N->lock, &until) == ETIMEDOUT)
            break;
    if (!N->done) {
        /* the transfer in flight sees this in its progress callback (about once a second)
         * and the queued messages are dropped without an attempt */
        atomic_store(&N->abort, 1);
        left = N->queued + (size_t)N->inflight;
    }
    pthread_mutex_unlock(&N->lock);
    if (left)
        sm_log(SM_LOG_ERROR,
               "notifications: %zu not delivered within %u s of stopping are "
               "given up",
               left, budget);
    pthread_join(N->thread, NULL);
    while (N->head) {
        nmsg *m = N->head;
        N->head = m->next;
        nmsg_free(m);
    }
    curl_easy_cleanup(N->curl);
    pthread_cond_destroy(&N->wake);
    pthread_cond_destroy(&N->idle);
    pthread_mutex_destroy(&N->lock);
    notify_config_free(&N->cfg);
    free(N);
}

json_t *notifier_metrics(notifier *N)
{
    json_t *o;

    if (!N)
        return json_object();
    pthread_mutex_lock(&N->lock);
    o = json_pack("{s:{s:I,s:I},s:{s:I,s:I,s:I},s:I,s:I}", "email", "sent",
                  (json_int_t)N->email_sent, "failed", (json_int_t)N->email_failed, "webhook",
                  "sent", (json_int_t)N->hook_sent, "failed", (json_int_t)N->hook_failed, "retries",
                  (json_int_t)N->hook_retries, "queued",
                  (json_int_t)(N->queued + (size_t)N->inflight), "dropped", (json_int_t)N->dropped);
    pthread_mutex_unlock(&N->lock);
    return o;
}

/* ---- synchronous delivery ---- */

enum { CH_EMAIL, CH_WEBHOOK };

static int deliver_sync(const notify_config *cfg, const notify_msg *m, int channel,
                        notify_result *res, sm_err *err)
{
    notify_config c = *cfg; /* shallow: only the defaults differ */
    dctx d = {&c, NULL, NULL};
    nmsg *n = NULL;
    int rc = -1;

    if (res)
        memset(res, 0, sizeof(*res));
    normalize(&c);
    d.curl = curl_easy_init();
    if (!d.curl)
        return sm_err_set(err, SM_E_INTERNAL, "cannot initialize libcurl");
    n = nmsg_new(m);
    if (channel == CH_EMAIL) {
        if (!n->n_email) {
            sm_err_set(err, SM_E_INVALID, "the notification has no e-mail recipients");
            sm_err_hint(err, "Set notifications.email (or SUPAMANAGER_NOTIFY_EMAIL).");
        } else
            rc = email_deliver(&d, n, res, err);
    } else {
        if (!n->webhook_url) {
            sm_err_set(err, SM_E_INVALID, "the notification has no webhook URL");
            sm_err_hint(err, "Set notifications.webhook.url (or SUPAMANAGER_WEBHOOK_URL).");
        } else {
            if (!n->webhook_secret) {
                char *shown = notify_redact_url(n->webhook_url);
                sm_log(SM_LOG_WARN,
                       "webhook %s: no secret is set, so deliveries are not signed "
                       "(set notifications.webhook.secret)",
                       shown);
                free(shown);
            }
            rc = webhook_deliver(&d, n, res, err);
        }
    }
    nmsg_free(n);
    curl_easy_cleanup(d.curl);
    return rc;
}

int notify_deliver_email(const notify_config *cfg, const notify_msg *m, notify_result *res,
                         sm_err *err)
{
    return deliver_sync(cfg, m, CH_EMAIL, res, err);
}

int notify_deliver_webhook(const notify_config *cfg, const notify_msg *m, notify_result *res,
                           sm_err *err)
{
    return deliver_sync(cfg, m, CH_WEBHOOK, res, err);
}

int notify_deliver_now(const notify_config *cfg, const notify_msg *m, sm_err *err)
{
    sm_err second = SM_ERR_INIT;
    int rc = 0;

    if (!(m->n_email && m->email_to) && !m->webhook_url) {
        sm_err_set(err, SM_E_INVALID, "the notification has no recipient and no webhook");
        return sm_err_hint(err, "Configure notifications.email or notifications.webhook.url.");
    }
    if (m->n_email && m->email_to && notify_deliver_email(cfg, m, NULL, err) < 0)
        rc = -1;
    if (m->webhook_url && notify_deliver_webhook(cfg, m, NULL, rc < 0 ? &second : err) < 0)
        rc = -1;
    return rc;
}
