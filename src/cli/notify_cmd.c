/* `supamanager notify test`: sends a test notification now through every
 * configured channel (the "notifications" object of the file `supamanager
 * serve --config` reads, the environment, then the flags) and says what
 * happened on each. The delivery is src/service/notify.c's. */
#include "cli/commands.h"
#include "cli/output.h"

#include "core/mem.h"
#include "core/util.h"
#include "service/notify.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROJECT_MAX 200

enum {
    N_CONFIG = 3100,
    N_EMAIL,
    N_WEBHOOK,
    N_SECRET,
    N_PROJECT,
    N_HELP,
};

static const struct option notify_opts[] = {
    {"config", required_argument, NULL, N_CONFIG},
    {"email", required_argument, NULL, N_EMAIL},
    {"webhook", required_argument, NULL, N_WEBHOOK},
    {"secret", required_argument, NULL, N_SECRET},
    {"project", required_argument, NULL, N_PROJECT},
    {"help", no_argument, NULL, N_HELP},
    {NULL, 0, NULL, 0},
};

static void usage_notify(FILE *f)
{
    fputs("usage: supamanager notify test [--config FILE] [--email ADDR]... [--webhook URL]\n"
          "                               [--secret S] [--project ID]\n"
          "\n"
          "Sends a test notification now through every configured channel and prints one line\n"
          "per channel; exits 0 when all were delivered, 1 when one failed, 2 on bad settings.\n"
          "\n"
          "  --config FILE   the JSON file `supamanager serve --config` reads (its\n"
          "                  \"notifications\" object)\n"
          "  --email ADDR    a recipient (repeatable; replaces the configured ones)\n"
          "  --webhook URL   the webhook to call (replaces the configured one)\n"
          "  --secret S      the webhook's signing secret\n"
          "  --project ID    the project named in the test message\n"
          "\n"
          "Environment: SUPAMANAGER_SMTP_URL, SUPAMANAGER_SMTP_FROM, SUPAMANAGER_SMTP_USER,\n"
          "SUPAMANAGER_SMTP_PASSWORD, SUPAMANAGER_NOTIFY_EMAIL, SUPAMANAGER_WEBHOOK_URL,\n"
          "SUPAMANAGER_WEBHOOK_SECRET (they win over the file). See docs/NOTIFICATIONS.md.\n",
          f);
}

static int project_ok(const char *s)
{
    if (!*s || strlen(s) > PROJECT_MAX)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            return 0;
    return 1;
}

/* Prints the channel's line on stdout, then the error (if any) on stderr. */
static void report(const char *channel, int ok, const char *detail, const sm_err *err)
{
    if (ok)
        printf("%s: sent%s\n", channel, detail);
    else
        printf("%s: failed\n", channel);
    fflush(stdout);
    if (!ok)
        cli_fail(err);
}

static int notify_test(int argc, char **argv)
{
    const char *config_file = NULL, *webhook = NULL, *secret = NULL, *project = NULL;
    const char **emails = NULL;
    size_t n_emails = 0;
    json_t *doc = NULL, *payload = NULL;
    notify_config cfg;
    int cfg_on = 0, curl_on = 0, opt, rc = 2, failed = 0;
    char *subject = NULL, *text = NULL, now[32];
    sm_err err = SM_ERR_INIT;

    memset(&cfg, 0, sizeof(cfg));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", notify_opts, NULL)) != -1) {
        switch (opt) {
        case N_CONFIG:
            config_file = optarg;
            break;
        case N_EMAIL:
            emails = sm_xrealloc(emails, (n_emails + 1) * sizeof(*emails));
            emails[n_emails++] = optarg;
            break;
        case N_WEBHOOK:
            webhook = optarg;
            break;
        case N_SECRET:
            secret = optarg;
            break;
        case N_PROJECT:
            project = optarg;
            break;
        case N_HELP:
            usage_notify(stdout);
            rc = 0;
            goto out;
        default:
            rc = cli_usage("unknown option for `notify test`");
            goto out;
        }
    }
    if (optind < argc) {
        rc = cli_usage("unexpected argument '%s' for `notify test`", argv[optind]);
        goto out;
    }
    if (project && !project_ok(project)) {
        rc = cli_usage("invalid --project: use 1 to %d characters without control characters",
                       PROJECT_MAX);
        goto out;
    }

    if (config_file) {
        json_error_t je;
        doc = json_load_file(config_file, 0, &je);
        if (!json_is_object(doc)) {
            sm_err_set(&err, SM_E_USAGE, "cannot read the config file '%s': %s", config_file,
                       doc ? "not a JSON object" : je.text);
            sm_err_hint(&err, "Pass the JSON file `supamanager serve --config` reads.");
            rc = cli_fail(&err);
            goto out;
        }
    }
    if (notify_config_load(&cfg, json_object_get(doc, "notifications"), &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    cfg_on = 1;
    if (n_emails) {
        notify_config_clear_emails(&cfg);
        for (size_t i = 0; i < n_emails; i++)
            if (notify_config_add_email(&cfg, emails[i], "--email", &err) < 0) {
                rc = cli_fail(&err);
                goto out;
            }
    }
    if (secret && !webhook && !cfg.webhook_url) {
        rc = cli_usage("--secret needs a webhook: pass --webhook URL or set "
                       "notifications.webhook.url");
        goto out;
    }
    if (notify_config_set_webhook(&cfg, webhook, secret, "--webhook", &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (cfg.n_email && !cfg.smtp_url) {
        sm_err_set(&err, SM_E_USAGE, "e-mail recipients are set but no SMTP server");
        sm_err_hint(&err, "Set notifications.smtp.url in the config file or SUPAMANAGER_SMTP_URL "
                          "(smtp://host:port); see docs/NOTIFICATIONS.md.");
        rc = cli_fail(&err);
        goto out;
    }
    if (!(cfg.smtp_url && cfg.n_email) && !cfg.webhook_url) {
        sm_err_set(&err, SM_E_USAGE,
                   "nothing to test: configure notifications.smtp.url and notifications.email, "
                   "or notifications.webhook.url (see docs/NOTIFICATIONS.md)");
        sm_err_hint(&err, "Pass --config FILE (the file `supamanager serve --config` reads), set "
                          "the SUPAMANAGER_SMTP_URL and SUPAMANAGER_NOTIFY_EMAIL or "
                          "SUPAMANAGER_WEBHOOK_URL variables, or use --email and --webhook.");
        rc = cli_fail(&err);
        goto out;
    }

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl_on = 1;
    sm_time_iso(now, sizeof(now), sm_now());
    if (project) {
        subject = sm_xasprintf("SupaManager test notification for project %s", project);
        text = sm_xasprintf("This is a test notification from SupaManager Backup on %s.\n\n"
                            "Project: %s\nSent at: %s\n\n"
                            "If you can read this, e-mail notifications work: failed, overdue "
                            "and skipped backups and failed verifications are reported the "
                            "same way.\n",
                            sm_hostname(), project, now);
    } else {
        subject = sm_xstrdup("SupaManager test notification");
        text = sm_xasprintf("This is a test notification from SupaManager Backup on %s.\n\n"
                            "Sent at: %s\n\n"
                            "If you can read this, e-mail notifications work: failed, overdue "
                            "and skipped backups and failed verifications are reported the "
                            "same way.\n",
                            sm_hostname(), now);
    }
    payload =
        json_pack("{s:s,s:s}", "message", "This is a test notification.", "host", sm_hostname());

    if (cfg.smtp_url && cfg.n_email) {
        notify_msg m = {.event = "test",
                        .project_id = project,
                        .subject = subject,
                        .text = text,
                        .payload = payload,
                        .email_to = (const char *const *)cfg.email_to,
                        .n_email = cfg.n_email};
        notify_result res;
        sm_buf who = SM_BUF_INIT;
        char detail[64] = "";
        int ok;

        sm_buf_puts(&who, "email to ");
        for (size_t i = 0; i < cfg.n_email; i++)
            sm_buf_putf(&who, "%s%s", i ? ", " : "", cfg.email_to[i]);
        sm_err_clear(&err);
        ok = notify_deliver_email(&cfg, &m, &res, &err) == 0;
        if (ok && res.attempts > 1)
            snprintf(detail, sizeof(detail), " (after %u attempts)", res.attempts);
        report(sm_buf_str(&who), ok, detail, &err);
        failed |= !ok;
        sm_buf_release(&who);
    } else if (cfg.smtp_url) {
        printf("email: skipped (no recipients: set notifications.email or pass --email)\n");
    }
    if (cfg.webhook_url) {
        notify_msg m = {.event = "test",
                        .project_id = project,
                        .subject = subject,
                        .text = text,
                        .payload = payload,
                        .webhook_url = cfg.webhook_url,
                        .webhook_secret = cfg.webhook_secret};
        notify_result res;
        char *shown = notify_redact_url(cfg.webhook_url), *who = sm_xasprintf("webhook %s", shown);
        char detail[64];
        int ok;

        sm_err_clear(&err);
        ok = notify_deliver_webhook(&cfg, &m, &res, &err) == 0;
        snprintf(detail, sizeof(detail), " (HTTP %ld, %u attempt%s)", res.status, res.attempts,
                 res.attempts == 1 ? "" : "s");
        report(who, ok, detail, &err);
        failed |= !ok;
        free(shown);
        free(who);
    }
    rc = failed ? 1 : 0;
out:
    if (cfg_on)
        notify_config_free(&cfg);
    if (curl_on)
        curl_global_cleanup();
    json_decref(doc);
    json_decref(payload);
    free(emails);
    free(subject);
    free(text);
    return rc;
}

int cmd_notify(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("`notify` needs a subcommand: test");
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage_notify(stdout);
        return 0;
    }
    if (strcmp(argv[1], "test"))
        return cli_usage("unknown notify command '%s' (use `notify test`)", argv[1]);
    return notify_test(argc - 1, argv + 1);
}
