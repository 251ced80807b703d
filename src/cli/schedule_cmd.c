/* `supamanager schedule set|show|disable`: a project's backup schedule from
 * the command line. It is stored in the catalog; a running service picks
 * the change up at its next look at the clock (within a second). The rules
 * are those of the API (src/service/schedule.c). */
#include "cli/commands.h"
#include "cli/output.h"

#include "catalog/catalog.h"
#include "core/mem.h"
#include "core/util.h"
#include "service/schedule.h"
#include "service/scheduler.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_FREQ = 4000,
    S_TIME,
    S_TYPE,
    S_RETENTION,
    S_KEEP_DAILY,
    S_KEEP_WEEKLY,
    S_KEEP_MONTHLY,
    S_JITTER,
    S_VERIFY,
    S_NO_VERIFY,
    S_RESTORE_TEST,
    S_GRACE,
    S_EMAIL,
    S_NO_EMAIL,
    S_WEBHOOK,
    S_WEBHOOK_SECRET,
    S_NOTIFY_SUCCESS,
    S_NO_NOTIFY_SUCCESS,
    S_DISABLED,
    S_JSON,
};

static const struct option sched_opts[] = {
    {"frequency", required_argument, NULL, S_FREQ},
    {"time", required_argument, NULL, S_TIME},
    {"type", required_argument, NULL, S_TYPE},
    {"retention", required_argument, NULL, S_RETENTION},
    {"keep-daily", required_argument, NULL, S_KEEP_DAILY},
    {"keep-weekly", required_argument, NULL, S_KEEP_WEEKLY},
    {"keep-monthly", required_argument, NULL, S_KEEP_MONTHLY},
    {"jitter", required_argument, NULL, S_JITTER},
    {"verify", no_argument, NULL, S_VERIFY},
    {"no-verify", no_argument, NULL, S_NO_VERIFY},
    {"restore-test", required_argument, NULL, S_RESTORE_TEST},
    {"grace", required_argument, NULL, S_GRACE},
    {"email", required_argument, NULL, S_EMAIL},
    {"no-email", no_argument, NULL, S_NO_EMAIL},
    {"webhook", required_argument, NULL, S_WEBHOOK},
    {"webhook-secret", required_argument, NULL, S_WEBHOOK_SECRET},
    {"notify-success", no_argument, NULL, S_NOTIFY_SUCCESS},
    {"no-notify-success", no_argument, NULL, S_NO_NOTIFY_SUCCESS},
    {"disabled", no_argument, NULL, S_DISABLED},
    {"json", no_argument, NULL, S_JSON},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "usage: supamanager schedule set PROJECT [--frequency hourly|daily|weekly] [--time HH:MM]\n"
    "                                [--type full|database|storage|incremental] [--retention N]\n"
    "                                [--keep-daily N] [--keep-weekly N] [--keep-monthly N]\n"
    "                                [--jitter MINUTES] [--verify|--no-verify]\n"
    "                                [--restore-test weekly|never] [--grace MINUTES]\n"
    "                                [--email ADDR]... [--no-email] [--webhook URL]\n"
    "                                [--webhook-secret S] [--notify-success|--no-notify-success]\n"
    "                                [--disabled] [--json]\n"
    "       supamanager schedule show PROJECT [--json]\n"
    "       supamanager schedule disable PROJECT\n"
    "Times are UTC. hourly runs at minute MM of every hour, daily at HH:MM, weekly on Sunday\n"
    "at HH:MM. `set` changes only what it names (and enables the schedule unless --disabled).";

/* A number when it reads as one; else the text (the validation names it). */
static json_t *num_or_text(const char *s)
{
    uint64_t v;
    if (sm_parse_u64(s, (uint64_t)1 << 31, &v) == 0)
        return json_integer((json_int_t)v);
    return json_string(s);
}

static void set_notify(json_t *in, const json_t *cur, const char *key, json_t *val)
{
    json_t *n = json_object_get(in, "notify");

    if (!n) {
        n = json_deep_copy(json_object_get(cur, "notify"));
        if (!json_is_object(n)) {
            json_decref(n);
            n = json_object();
        }
        json_object_del(n, "webhook_secret"); /* kept unless given */
        json_object_set_new(in, "notify", n);
    }
    json_object_set_new(n, key, val);
}

static void print_schedule(const char *pid, const json_t *doc, const json_t *st, const json_t *runs)
{
    const json_t *n = json_object_get(doc, "notify"), *e;
    size_t i;
    char t[64];

    if (!strcmp(json_string_value(json_object_get(doc, "frequency")), "hourly"))
        snprintf(t, sizeof(t), "hourly at minute %s",
                 json_string_value(json_object_get(doc, "time")) + 3);
    else if (!strcmp(json_string_value(json_object_get(doc, "frequency")), "weekly"))
        snprintf(t, sizeof(t), "weekly on Sunday at %s UTC",
                 json_string_value(json_object_get(doc, "time")));
    else
        snprintf(t, sizeof(t), "daily at %s UTC", json_string_value(json_object_get(doc, "time")));
    printf("Schedule of %s: %s\n", pid,
           json_is_true(json_object_get(doc, "enabled")) ? "enabled" : "disabled");
    printf("  when:          %s", t);
    if (json_integer_value(json_object_get(doc, "jitter_minutes")) > 0)
        printf(" (+ up to %lld min jitter)",
               (long long)json_integer_value(json_object_get(doc, "jitter_minutes")));
    printf("\n  type:          %s\n", json_string_value(json_object_get(doc, "type")));
    printf("  retention:     the %lld newest scheduled backups",
           (long long)json_integer_value(json_object_get(doc, "retention")));
    if (json_integer_value(json_object_get(doc, "keep_daily")))
        printf(", one a day for %lld days",
               (long long)json_integer_value(json_object_get(doc, "keep_daily")));
    if (json_integer_value(json_object_get(doc, "keep_weekly")))
        printf(", one a week for %lld weeks",
               (long long)json_integer_value(json_object_get(doc, "keep_weekly")));
    if (json_integer_value(json_object_get(doc, "keep_monthly")))
        printf(", one a month for %lld months",
               (long long)json_integer_value(json_object_get(doc, "keep_monthly")));
    printf("\n  verification:  %s; restore test %s\n",
           json_is_true(json_object_get(doc, "verify")) ? "after each run" : "off",
           json_string_value(json_object_get(doc, "restore_test")));
    printf("  notify:        ");
    json_array_foreach(json_object_get(n, "email"), i, e) printf("%s%s", i ? ", " : "",
                                                                 json_string_value(e));
    if (json_string_value(json_object_get(n, "webhook")))
        printf("%swebhook %s", json_array_size(json_object_get(n, "email")) ? ", " : "",
               json_string_value(json_object_get(n, "webhook")));
    if (!json_array_size(json_object_get(n, "email")) &&
        !json_string_value(json_object_get(n, "webhook")))
        printf("the service's recipients only");
    printf("%s\n", json_is_true(json_object_get(n, "on_success")) ? " (also on success)" : "");
    printf("  next run:      %s\n", json_string_value(json_object_get(st, "next_run_at"))
                                         ? json_string_value(json_object_get(st, "next_run_at"))
                                         : "-");
    printf("  newest backup: %s\n", json_string_value(json_object_get(st, "last_success_at"))
                                         ? json_string_value(json_object_get(st, "last_success_at"))
                                         : "none");
    if (json_is_integer(json_object_get(st, "rpo_s")))
        printf("  RPO now:       %lld s\n", (long long)json_integer_value(json_object_get(st, "rpo_s")));
    if (json_is_number(json_object_get(st, "rto_s")))
        printf("  RTO measured:  %.1f s (restore test %s)\n",
               json_number_value(json_object_get(st, "rto_s")),
               json_string_value(json_object_get(st, "last_restore_test_at")));
    if (json_is_true(json_object_get(st, "overdue")))
        printf("  OVERDUE since %s\n", json_string_value(json_object_get(st, "overdue_since")));
    if (json_array_size(runs)) {
        printf("Recent runs (newest first):\n");
        json_array_foreach(runs, i, e)
        {
            const char *b = json_string_value(json_object_get(e, "backup_id"));
            const char *r = json_string_value(json_object_get(e, "reason"));
            printf("  %s  %-11s %s%s%s\n", json_string_value(json_object_get(e, "slot")),
                   json_string_value(json_object_get(e, "status")), b ? b : "-", r ? "  " : "",
                   r ? r : "");
        }
    }
}

static int show(catalog *c, const char *pid, int json)
{
    json_t *doc = NULL, *st, *runs = NULL, *pub;
    sm_err err = SM_ERR_INIT;
    int r = catalog_schedule_get(c, pid, &doc, NULL, &err);

    if (r < 0)
        return cli_fail(&err);
    if (r == 1)
        doc = schedule_default();
    st = scheduler_project_status(c, pid, sm_now());
    if (catalog_schedule_runs(c, pid, 20, &runs, &err) < 0) {
        json_decref(doc);
        json_decref(st);
        return cli_fail(&err);
    }
    pub = schedule_public(doc);
    if (json) {
        json_object_set(pub, "next_run_at", json_object_get(st, "next_run_at"));
        json_object_set(pub, "status", st);
        json_object_set(pub, "runs", runs);
        cli_print_json(pub);
    } else {
        print_schedule(pid, pub, st, runs);
    }
    json_decref(pub);
    json_decref(doc);
    json_decref(st);
    json_decref(runs);
    return 0;
}

int cmd_schedule(int argc, char **argv)
{
    const char *sub;
    catalog *c = NULL;
    project *p = NULL;
    json_t *in = json_object(), *cur = NULL, *doc = NULL;
    sm_err err = SM_ERR_INIT;
    int opt, json = 0, rc = 1, disabled = 0;

    if (argc < 2) {
        json_decref(in);
        return cli_usage("`schedule` needs set, show or disable\n%s", usage_text);
    }
    sub = argv[1];
    argc--;
    argv++;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", sched_opts, NULL)) != -1) {
        switch (opt) {
        case S_FREQ: json_object_set_new(in, "frequency", json_string(optarg)); break;
        case S_TIME: json_object_set_new(in, "time", json_string(optarg)); break;
        case S_TYPE: json_object_set_new(in, "type", json_string(optarg)); break;
        case S_RETENTION: json_object_set_new(in, "retention", num_or_text(optarg)); break;
        case S_KEEP_DAILY: json_object_set_new(in, "keep_daily", num_or_text(optarg)); break;
        case S_KEEP_WEEKLY: json_object_set_new(in, "keep_weekly", num_or_text(optarg)); break;
        case S_KEEP_MONTHLY: json_object_set_new(in, "keep_monthly", num_or_text(optarg)); break;
        case S_JITTER: json_object_set_new(in, "jitter_minutes", num_or_text(optarg)); break;
        case S_VERIFY: json_object_set_new(in, "verify", json_true()); break;
        case S_NO_VERIFY: json_object_set_new(in, "verify", json_false()); break;
        case S_RESTORE_TEST: json_object_set_new(in, "restore_test", json_string(optarg)); break;
        case S_GRACE: json_object_set_new(in, "grace_minutes", num_or_text(optarg)); break;
        case S_DISABLED: disabled = 1; break;
        case S_JSON: json = 1; break;
        case S_EMAIL:
        case S_NO_EMAIL:
        case S_WEBHOOK:
        case S_WEBHOOK_SECRET:
        case S_NOTIFY_SUCCESS:
        case S_NO_NOTIFY_SUCCESS:
            /* applied once the current schedule is read */
            break;
        default: json_decref(in); return cli_usage("%s", usage_text);
        }
    }
    if (optind != argc - 1) {
        json_decref(in);
        return cli_usage("`schedule %s` needs one project id\n%s", sub, usage_text);
    }
    if (catalog_open(&c, cli_home(), &err) < 0 ||
        catalog_project_get(c, argv[optind], &p, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!strcmp(sub, "show")) {
        rc = show(c, p->id, json);
        goto out;
    }
    if (strcmp(sub, "set") && strcmp(sub, "disable")) {
        rc = cli_usage("unknown command `schedule %s`\n%s", sub, usage_text);
        goto out;
    }
    if (catalog_schedule_get(c, p->id, &cur, NULL, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!strcmp(sub, "disable")) {
        json_object_clear(in);
        json_object_set_new(in, "enabled", json_false());
    } else {
        json_t *emails = NULL;
        json_object_set_new(in, "enabled", json_boolean(!disabled));
        /* the notification options, in order (--no-email, then --email...) */
        optind = 1;
        while ((opt = getopt_long(argc, argv, "", sched_opts, NULL)) != -1) {
            switch (opt) {
            case S_EMAIL:
                if (!emails)
                    emails = json_array();
                json_array_append_new(emails, json_string(optarg));
                break;
            case S_NO_EMAIL:
                json_decref(emails);
                emails = json_array();
                break;
            case S_WEBHOOK:
                set_notify(in, cur, "webhook", *optarg ? json_string(optarg) : json_null());
                break;
            case S_WEBHOOK_SECRET:
                set_notify(in, cur, "webhook_secret", *optarg ? json_string(optarg) : json_null());
                break;
            case S_NOTIFY_SUCCESS: set_notify(in, cur, "on_success", json_true()); break;
            case S_NO_NOTIFY_SUCCESS: set_notify(in, cur, "on_success", json_false()); break;
            default: break;
            }
        }
        if (emails)
            set_notify(in, cur, "email", emails);
    }
    doc = schedule_validate(cur, in, &err);
    if (!doc) {
        rc = cli_fail(&err);
        goto out;
    }
    if (catalog_schedule_put(c, p->id, doc, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    rc = show(c, p->id, json);
out:
    json_decref(in);
    json_decref(cur);
    json_decref(doc);
    project_free(p);
    catalog_close(c);
    return rc;
}
