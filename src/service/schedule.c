#include "service/schedule.h"

#include "job/ops.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

json_t *schedule_default(void)
{
    return json_pack("{s:b,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:b,s:s,s:n,s:{s:[],s:n,s:n,s:b}}",
                     "enabled", 0, "frequency", "daily", "time", "02:00", "type", "FULL",
                     "retention", 7, "keep_daily", 0, "keep_weekly", 0, "keep_monthly", 0,
                     "jitter_minutes", 0, "verify", 0, "restore_test", "never", "grace_minutes",
                     "notify", "email", "webhook", "webhook_secret", "on_success", 0);
}

static int parse_time(const char *s, int *h, int *m)
{
    if (strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    *h = (s[0] - '0') * 10 + (s[1] - '0');
    *m = (s[3] - '0') * 10 + (s[4] - '0');
    return *h <= 23 && *m <= 59 ? 0 : -1;
}

static int int_field(const char *key, const json_t *v, json_int_t lo, json_int_t hi,
                     const char *what, sm_err *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        sm_err_set(err, SM_E_INVALID, "'%s' must be a whole number of %s from %lld to %lld", key,
                   what, (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

/* an e-mail address we will hand to SMTP: local@domain, no spaces or
 * control characters, no angle brackets */
static int email_ok(const char *a)
{
    const char *at = strchr(a, '@');

    if (!at || at == a || !at[1] || strchr(at + 1, '@') || strlen(a) > 254)
        return 0;
    for (const char *c = a; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '<' || *c == '>' || *c == ',' || *c == 0x7f)
            return 0;
    return 1;
}

static json_t *notify_validate(const json_t *v, sm_err *err)
{
    json_t *out = json_pack("{s:[],s:n,s:n,s:b}", "email", "webhook", "webhook_secret",
                            "on_success", 0);
    const char *key;
    json_t *x;

    if (!json_is_object(v)) {
        sm_err_set(err, SM_E_INVALID, "'notify' must be an object: {\"email\": [...], "
                                      "\"webhook\": URL, \"webhook_secret\": S, "
                                      "\"on_success\": bool}");
        goto bad;
    }
    json_object_foreach((json_t *)v, key, x)
    {
        if (!strcmp(key, "email")) {
            size_t i;
            json_t *a;
            if (!json_is_array(x) || json_array_size(x) > 20) {
                sm_err_set(err, SM_E_INVALID, "'notify.email' must be a list of at most 20 "
                                              "addresses");
                goto bad;
            }
            json_array_foreach(x, i, a)
            {
                if (!json_is_string(a) || !email_ok(json_string_value(a))) {
                    sm_err_set(err, SM_E_INVALID,
                               "'notify.email' has %s%s%s: use addresses like ops@example.com",
                               json_is_string(a) ? "'" : "",
                               json_is_string(a) ? json_string_value(a) : "a non-string",
                               json_is_string(a) ? "', not an e-mail address" : "");
                    goto bad;
                }
            }
            json_object_set(out, "email", x);
        } else if (!strcmp(key, "webhook")) {
            const char *u = json_string_value(x);
            if (!json_is_null(x) &&
                (!u || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) ||
                 strlen(u) > 2000 || strpbrk(u, " \r\n"))) {
                sm_err_set(err, SM_E_INVALID, "'notify.webhook' must be an http:// or https:// "
                                              "URL, or null");
                goto bad;
            }
            json_object_set(out, "webhook", x);
        } else if (!strcmp(key, "webhook_secret")) {
            if (!json_is_null(x) && (!json_is_string(x) || json_string_length(x) > 512)) {
                sm_err_set(err, SM_E_INVALID, "'notify.webhook_secret' must be a string (at "
                                              "most 512 characters), or null");
                goto bad;
            }
            json_object_set(out, "webhook_secret", x);
        } else if (!strcmp(key, "on_success")) {
            if (!json_is_boolean(x)) {
                sm_err_set(err, SM_E_INVALID, "'notify.on_success' must be true or false");
                goto bad;
            }
            json_object_set(out, "on_success", x);
        } else if (!strcmp(key, "webhook_secret_set")) {
            /* as GET shows it: ignored */
        } else {
            sm_err_set(err, SM_E_INVALID, "unknown field 'notify.%s' (email, webhook, "
                                          "webhook_secret, on_success)",
                       key);
            goto bad;
        }
    }
    return out;
bad:
    json_decref(out);
    return NULL;
}

json_t *schedule_validate(const json_t *base, const json_t *in, sm_err *err)
{
    json_t *out = schedule_default(), *v;
    const char *key;
    int h, m;

    if (json_is_object(base))
        json_object_update(out, (json_t *)base);
    if (!json_is_object(in)) {
        sm_err_set(err, SM_E_INVALID, "a schedule must be a JSON object");
        goto bad;
    }
    json_object_foreach((json_t *)in, key, v)
    {
        if (!strcmp(key, "enabled") || !strcmp(key, "verify")) {
            if (!json_is_boolean(v)) {
                sm_err_set(err, SM_E_INVALID, "'%s' must be true or false", key);
                goto bad;
            }
            json_object_set(out, key, v);
        } else if (!strcmp(key, "frequency")) {
            const char *f = json_string_value(v);
            if (!f || (strcasecmp(f, "hourly") && strcasecmp(f, "daily") && strcasecmp(f, "weekly"))) {
                sm_err_set(err, SM_E_INVALID, "unknown frequency %s%s%s: use hourly, daily or weekly",
                           f ? "'" : "", f ? f : "(not a string)", f ? "'" : "");
                goto bad;
            }
            json_object_set_new(out, "frequency",
                                json_string(!strcasecmp(f, "hourly") ? "hourly"
                                            : !strcasecmp(f, "daily") ? "daily"
                                                                      : "weekly"));
        } else if (!strcmp(key, "time")) {
            const char *t = json_string_value(v);
            if (!t || parse_time(t, &h, &m) < 0) {
                sm_err_set(err, SM_E_INVALID, "'time' must be \"HH:MM\" (UTC, 00:00 to 23:59)%s%s%s",
                           t ? ", not '" : "", t ? t : "", t ? "'" : "");
                goto bad;
            }
            json_object_set(out, "time", v);
        } else if (!strcmp(key, "type")) {
            const char *t = json_string_value(v), *norm;
            sm_err e2 = SM_ERR_INIT;
            if (!t || ops_type_parse(t, &norm, &e2) < 0) {
                sm_err_set(err, SM_E_INVALID, "unknown backup type %s%s%s: use FULL, DATABASE, "
                                              "STORAGE or INCREMENTAL",
                           t ? "'" : "", t ? t : "(not a string)", t ? "'" : "");
                goto bad;
            }
            json_object_set_new(out, "type", json_string(norm));
        } else if (!strcmp(key, "retention")) {
            if (int_field(key, v, 1, SCHEDULE_MAX_RETENTION, "backups", err) < 0)
                goto bad;
            json_object_set(out, key, v);
        } else if (!strcmp(key, "keep_daily") || !strcmp(key, "keep_weekly") ||
                   !strcmp(key, "keep_monthly")) {
            if (int_field(key, v, 0, SCHEDULE_MAX_RETENTION,
                          !strcmp(key, "keep_daily")    ? "days"
                          : !strcmp(key, "keep_weekly") ? "weeks"
                                                        : "months",
                          err) < 0)
                goto bad;
            json_object_set(out, key, v);
        } else if (!strcmp(key, "jitter_minutes")) {
            if (int_field(key, v, 0, SCHEDULE_MAX_JITTER_MIN, "minutes", err) < 0)
                goto bad;
            json_object_set(out, key, v);
        } else if (!strcmp(key, "grace_minutes")) {
            if (!json_is_null(v) && int_field(key, v, 0, SCHEDULE_MAX_GRACE_MIN, "minutes", err) < 0)
                goto bad;
            json_object_set(out, key, v);
        } else if (!strcmp(key, "restore_test")) {
            const char *t = json_string_value(v);
            if (!t || (strcmp(t, "never") && strcmp(t, "weekly"))) {
                sm_err_set(err, SM_E_INVALID, "'restore_test' must be \"never\" or \"weekly\"");
                goto bad;
            }
            json_object_set(out, key, v);
        } else if (!strcmp(key, "notify")) {
            json_t *n = notify_validate(v, err);
            if (!n)
                goto bad;
            /* a GET document (secret hidden) put back keeps the secret */
            if (!json_object_get(v, "webhook_secret"))
                json_object_set(n, "webhook_secret",
                                json_object_get(json_object_get(out, "notify"), "webhook_secret")
                                    ? json_object_get(json_object_get(out, "notify"),
                                                      "webhook_secret")
                                    : json_null());
            json_object_set_new(out, key, n);
        } else if (!strcmp(key, "next_run_at") || !strcmp(key, "last_run") ||
                   !strcmp(key, "runs") || !strcmp(key, "status")) {
            /* read-only members of what GET shows: a GET document can be PUT back */
        } else {
            sm_err_set(err, SM_E_INVALID, "unknown schedule field '%s' (enabled, frequency, time, "
                                          "type, retention, keep_daily, keep_weekly, "
                                          "keep_monthly, jitter_minutes, verify, restore_test, "
                                          "grace_minutes, notify)",
                       key);
            goto bad;
        }
    }
    if (!json_is_object(json_object_get(out, "notify"))) {
        json_t *d = schedule_default();
        json_object_set(out, "notify", json_object_get(d, "notify"));
        json_decref(d);
    }
    return out;
bad:
    json_decref(out);
    return NULL;
}

time_t schedule_period(const json_t *sched)
{
    const char *f = json_string_value(json_object_get(sched, "frequency"));
    return f && !strcmp(f, "hourly") ? 3600 : f && !strcmp(f, "weekly") ? 7 * 86400 : 86400;
}

time_t schedule_jitter(const json_t *sched, const char *project_id)
{
    json_int_t j = json_integer_value(json_object_get(sched, "jitter_minutes"));
    uint32_t h = 2166136261u; /* FNV-1a: a fixed, well-spread offset per project */

    if (j <= 0 || !project_id)
        return 0;
    for (const unsigned char *c = (const unsigned char *)project_id; *c; c++)
        h = (h ^ *c) * 16777619u;
    return (time_t)(h % (uint32_t)(j * 60 + 1));
}

time_t schedule_grace(const json_t *sched)
{
    json_t *g = json_object_get(sched, "grace_minutes");
    if (json_is_integer(g))
        return (time_t)json_integer_value(g) * 60;
    return schedule_period(sched) / 4;
}

void schedule_retention(const json_t *sched, ops_retention *out)
{
    out->last = (int)json_integer_value(json_object_get(sched, "retention"));
    out->daily = (int)json_integer_value(json_object_get(sched, "keep_daily"));
    out->weekly = (int)json_integer_value(json_object_get(sched, "keep_weekly"));
    out->monthly = (int)json_integer_value(json_object_get(sched, "keep_monthly"));
    if (out->last < 1)
        out->last = 1;
}

json_t *schedule_public(const json_t *sched)
{
    json_t *o = json_deep_copy(sched), *n = json_object_get(o, "notify");
    if (json_is_object(n)) {
        json_t *sec = json_object_get(n, "webhook_secret");
        json_object_set_new(n, "webhook_secret_set",
                            json_boolean(json_is_string(sec) && json_string_length(sec) > 0));
        json_object_del(n, "webhook_secret");
    }
    return o;
}

time_t schedule_next(const json_t *sched, time_t after)
{
    const char *f = json_string_value(json_object_get(sched, "frequency"));
    const char *t = json_string_value(json_object_get(sched, "time"));
    struct tm tm;
    time_t day, cand;
    int h, m;

    if (!json_is_true(json_object_get(sched, "enabled")) || !f || !t || parse_time(t, &h, &m) < 0)
        return 0;
    gmtime_r(&after, &tm);
    if (!strcmp(f, "hourly")) {
        tm.tm_min = m;
        tm.tm_sec = 0;
        cand = timegm(&tm);
        while (cand <= after)
            cand += 3600;
        return cand;
    }
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = 0;
    day = timegm(&tm);
    if (!strcmp(f, "daily")) {
        cand = day;
        while (cand <= after)
            cand += 86400;
        return cand;
    }
    /* weekly: Sunday (tm_wday 0) */
    cand = day - (time_t)tm.tm_wday * 86400;
    while (cand <= after)
        cand += 7 * 86400;
    return cand;
}
