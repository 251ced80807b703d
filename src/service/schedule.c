#include "service/schedule.h"

#include "job/ops.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

json_t *schedule_default(void)
{
    return json_pack("{s:b,s:s,s:s,s:s,s:i}", "enabled", 0, "frequency", "daily", "time", "02:00",
                     "type", "FULL", "retention", 7);
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

json_t *schedule_validate(const json_t *in, sm_err *err)
{
    json_t *out = schedule_default(), *v;
    const char *key;
    int h, m;

    if (!json_is_object(in)) {
        sm_err_set(err, SM_E_INVALID, "a schedule must be a JSON object");
        goto bad;
    }
    json_object_foreach((json_t *)in, key, v)
    {
        if (!strcmp(key, "enabled")) {
            if (!json_is_boolean(v)) {
                sm_err_set(err, SM_E_INVALID, "'enabled' must be true or false");
                goto bad;
            }
            json_object_set(out, "enabled", v);
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
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > SCHEDULE_MAX_RETENTION) {
                sm_err_set(err, SM_E_INVALID, "'retention' must be a whole number of backups from 1 "
                                              "to %d",
                           SCHEDULE_MAX_RETENTION);
                goto bad;
            }
            json_object_set(out, "retention", v);
        } else {
            sm_err_set(err, SM_E_INVALID, "unknown schedule field '%s' (enabled, frequency, time, "
                                          "type, retention)",
                       key);
            goto bad;
        }
    }
    return out;
bad:
    json_decref(out);
    return NULL;
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
