/* Notifications: e-mail over SMTP and signed JSON webhooks, delivered by a
 * background thread so that a slow or failing receiver never delays or fails
 * a backup. Transport is libcurl, HMAC-SHA-256 is OpenSSL, JSON is jansson.
 *
 *   notify_config cfg;
 *   notifier *N = NULL;
 *   if (notify_config_load(&cfg, json_object_get(file_cfg, "notifications"), &err) < 0 ||
 *       notifier_start(&N, &cfg, &err) < 0)
 *       ...                                        // err names the bad key
 *   notify_msg m = {.event = "backup.failed", .project_id = "abc123",
 *                   .subject = "Backup of abc123 failed", .text = "...", .payload = data,
 *                   .email_to = (const char *const *)cfg.email_to, .n_email = cfg.n_email,
 *                   .webhook_url = cfg.webhook_url, .webhook_secret = cfg.webhook_secret};
 *   notifier_send(N, &m);                          // copies m; returns at once
 *   ...
 *   notifier_stop(N);                              // bounded drain, then frees
 *   notify_config_free(&cfg);
 *
 * The process calls curl_global_init() once in main() before notifier_start()
 * (libcurl would otherwise do it implicitly, which is not thread-safe).
 * The format of webhooks and e-mails and the retry policy: docs/NOTIFICATIONS.md.
 */
#ifndef SM_SERVICE_NOTIFY_H
#define SM_SERVICE_NOTIFY_H

#include "core/buf.h"
#include "core/err.h"

#include <jansson.h>
#include <stddef.h>
#include <time.h>

typedef struct notifier notifier;

typedef struct notify_config {
    /* SMTP: url NULL means e-mail is off */
    char *smtp_url;  /* smtp://host:port (STARTTLS per smtp_tls) or smtps://host:port */
    char *smtp_from; /* "SupaManager <backup@host>" or "backup@host" */
    char *smtp_user, *smtp_password; /* optional AUTH */
    int smtp_tls;                    /* 0 "try": STARTTLS when offered; 1 "required"; -1 "none" */
    int smtp_insecure;               /* skip certificate verification */
    char **email_to;
    size_t n_email;                     /* global recipients */
    char *webhook_url, *webhook_secret; /* global webhook (optional) */
    int on_success;                     /* also notify successful backups (default 0) */
    char *digest_time;                  /* "HH:MM" UTC daily digest, NULL off */
    unsigned webhook_attempts;          /* default 5 */
    unsigned webhook_backoff_ms;        /* first retry delay, doubles each time; default 1000 */
    unsigned timeout_s;                 /* per attempt; default 10 */
} notify_config;

/* Parses the "notifications" object of the service config file (may be NULL: all defaults),
 * then applies environment overrides SUPAMANAGER_SMTP_URL, SUPAMANAGER_SMTP_FROM,
 * SUPAMANAGER_SMTP_USER, SUPAMANAGER_SMTP_PASSWORD, SUPAMANAGER_NOTIFY_EMAIL (comma separated),
 * SUPAMANAGER_WEBHOOK_URL, SUPAMANAGER_WEBHOOK_SECRET (an empty variable counts as unset).
 * JSON shape:
 *   {"smtp": {"url", "from", "user", "password", "tls": "try"|"required"|"none", "insecure": bool},
 *    "email": ["ops@example.com"], "webhook": {"url", "secret"}, "on_success": bool,
 *    "digest_time": "HH:MM", "webhook_attempts": int, "webhook_backoff_ms": int, "timeout_s": int}
 * Unknown keys are refused (a typo would otherwise silently turn notifications off).
 * Returns 0, or -1 with SM_E_INVALID and a message naming the key (or variable) and what is
 * allowed, e.g. "invalid notifications.smtp.tls 'maybe': use "try", "required" or "none"".
 * *out is the caller's (notify_config_free) on success, and left empty on failure. */
int notify_config_load(notify_config *out, const json_t *notifications, sm_err *err);
/* Frees the members and zeroes *c (secrets wiped). NULL is accepted. */
void notify_config_free(notify_config *c);
/* Adds a recipient after checking it (something@something, no spaces, controls, <>,;).
 * Returns 0 or -1 (SM_E_INVALID naming `what`, e.g. "--email"). */
int notify_config_add_email(notify_config *c, const char *addr, const char *what, sm_err *err);
/* Empties the recipient list (before notify_config_add_email when a command line replaces it). */
void notify_config_clear_emails(notify_config *c);
/* Replaces the global webhook URL (checked: http or https with a host) and/or secret; NULL
 * leaves a value as it is. Returns 0 or -1 (SM_E_INVALID naming `what`, e.g. "--webhook"). */
int notify_config_set_webhook(notify_config *c, const char *url, const char *secret,
                              const char *what, sm_err *err);

typedef struct notify_msg {
    const char *event;      /* "backup.failed", "backup.completed", "backup.overdue",
                               "schedule.skipped", "verify.failed", "digest", "test" */
    const char *project_id; /* may be NULL (digest) */
    const char *subject;    /* e-mail subject (one line; CR/LF stripped) */
    const char *text;       /* e-mail body, plain text UTF-8 */
    const json_t *payload;  /* the webhook body's "data" member (borrowed, copied); NULL: {} */
    const char *const *email_to;
    size_t n_email;             /* recipients (none: no e-mail) */
    const char *webhook_url;    /* NULL: no webhook */
    const char *webhook_secret; /* NULL/"" : unsigned (warn once in the log) */
} notify_msg;

/* Starts the sender thread. Copies cfg (the caller may free it at once).
 * Returns 0 with *out the caller's (notifier_stop), or -1 with err set. */
int notifier_start(notifier **out, const notify_config *cfg, sm_err *err);
/* Queues a message: copies everything, never blocks on the network (only on a mutex held for
 * microseconds). At most 1000 messages wait; past that the message is dropped, logged and
 * counted ("dropped"). Thread-safe; N NULL is ignored. */
void notifier_send(notifier *N, const notify_msg *m);
/* Waits until the queue is empty and nothing is in flight, at most timeout_s.
 * Returns 0 when drained, -1 on timeout. Thread-safe. */
int notifier_flush(notifier *N, double timeout_s);
/* Stops taking retries and delivers what is queued with one attempt per channel, for at most
 * 2 * timeout_s (at least 2 s) in all; then aborts the transfer in flight, drops (logs, counts)
 * the rest, joins the thread and frees N. NULL is accepted. Not concurrent with other calls. */
void notifier_stop(notifier *N);
/* {"email": {"sent": n, "failed": n}, "webhook": {"sent": n, "failed": n, "retries": n},
 *  "queued": n, "dropped": n} (caller decrefs). Thread-safe. */
json_t *notifier_metrics(notifier *N);

/* The outcome of a synchronous delivery on one channel. */
typedef struct notify_result {
    unsigned attempts; /* attempts made (0: the channel was not used) */
    long status;       /* last HTTP status (webhook) or SMTP reply code; 0 none */
} notify_result;

/* Synchronous delivery used by `supamanager notify test`: sends one message now through every
 * channel it names, with retries, and returns 0, or -1 with the reason of the first failure in
 * err (e.g. "SMTP: connection refused by 127.0.0.1:8025", "webhook http://...: HTTP 500 after
 * 5 attempts"); SM_E_INVALID for a message that cannot be sent (bad URL or address). */
int notify_deliver_now(const notify_config *cfg, const notify_msg *m, sm_err *err);
/* One channel of notify_deliver_now: the e-mail (m->email_to) or the webhook (m->webhook_url).
 * res (may be NULL) gets the attempts and the last status. Returns 0 or -1 with err set. */
int notify_deliver_email(const notify_config *cfg, const notify_msg *m, notify_result *res,
                         sm_err *err);
int notify_deliver_webhook(const notify_config *cfg, const notify_msg *m, notify_result *res,
                           sm_err *err);

/* ---- building blocks, exposed for tests and receivers' documentation ---- */

/* "t=<t>,v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>" into out (at least 96 bytes). */
void notify_signature(char *out, size_t cap, const char *secret, time_t t, const char *body,
                      size_t len);
/* The webhook body {"event", "delivery_id", "sent_at", "project_id", "data"} (caller frees). */
char *notify_webhook_body(const notify_msg *m, const char *delivery_id, time_t sent_at);
/* The RFC 5322 message (headers and body, CRLF line endings) for m from cfg->smtp_from, at
 * time now, appended to out. Returns 0 or -1 (SM_E_INVALID: bad sender or recipient). */
int notify_format_email(sm_buf *out, const notify_config *cfg, const notify_msg *m, time_t now,
                        sm_err *err);
/* The URL as shown in logs and errors: no user or password, no query, and only the first path
 * segment ("https://hooks.example.com/services/..."), since webhook URLs often carry tokens.
 * Caller frees. */
char *notify_redact_url(const char *url);

#endif
