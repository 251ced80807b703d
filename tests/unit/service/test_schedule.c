/* Schedules: slots, jitter, grace, validation and merging; the retention
 * policy's selection (src/job/ops.c). */
#include "core/util.h"
#include "job/ops.h"
#include "service/schedule.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static time_t at(const char *s)
{
    time_t t = 0;
    assert_int_equal(sm_time_parse_iso(s, &t), 0);
    return t;
}

static json_t *sched(const char *json)
{
    sm_err err = SM_ERR_INIT;
    json_t *in = json_loads(json, 0, NULL), *out;
    assert_non_null(in);
    out = schedule_validate(NULL, in, &err);
    json_decref(in);
    assert_non_null(out);
    return out;
}

static void test_next_slots(void **state)
{
    (void)state;
    json_t *h = sched("{\"enabled\": true, \"frequency\": \"hourly\", \"time\": \"07:15\"}");
    json_t *d = sched("{\"enabled\": true, \"frequency\": \"DAILY\", \"time\": \"02:00\"}");
    json_t *w = sched("{\"enabled\": true, \"frequency\": \"weekly\", \"time\": \"03:30\"}");
    json_t *off = sched("{\"frequency\": \"daily\"}");

    /* hourly: minute MM of every hour; the hour in "time" does not matter */
    assert_int_equal(schedule_next(h, at("2026-11-25T10:00:00Z")), at("2026-11-25T10:15:00Z"));
    assert_int_equal(schedule_next(h, at("2026-11-25T10:15:00Z")), at("2026-11-25T11:15:00Z"));
    assert_int_equal(schedule_next(h, at("2026-11-25T23:59:59Z")), at("2026-11-26T00:15:00Z"));
    /* daily at HH:MM UTC, strictly after */
    assert_int_equal(schedule_next(d, at("2026-11-25T01:59:59Z")), at("2026-11-25T02:00:00Z"));
    assert_int_equal(schedule_next(d, at("2026-11-25T02:00:00Z")), at("2026-11-26T02:00:00Z"));
    assert_int_equal(schedule_next(d, at("2026-12-31T03:00:00Z")), at("2027-01-01T02:00:00Z"));
    /* weekly on Sunday (2026-11-29 is a Sunday) */
    assert_int_equal(schedule_next(w, at("2026-11-25T12:00:00Z")), at("2026-11-29T03:30:00Z"));
    assert_int_equal(schedule_next(w, at("2026-11-29T03:30:00Z")), at("2026-12-06T03:30:00Z"));
    assert_int_equal(schedule_next(w, at("2026-11-29T03:29:00Z")), at("2026-11-29T03:30:00Z"));
    /* disabled: never */
    assert_int_equal(schedule_next(off, at("2026-11-25T12:00:00Z")), 0);
    assert_int_equal(schedule_period(h), 3600);
    assert_int_equal(schedule_period(d), 86400);
    assert_int_equal(schedule_period(w), 7 * 86400);
    assert_int_equal(schedule_grace(d), 6 * 3600); /* a quarter of the period */
    json_decref(h);
    json_decref(d);
    json_decref(w);
    json_decref(off);
}

static void test_jitter(void **state)
{
    (void)state;
    json_t *j = sched("{\"jitter_minutes\": 30}"), *none = sched("{}");
    time_t a = schedule_jitter(j, "alpha"), b = schedule_jitter(j, "beta");
    int differ = 0;

    assert_true(a >= 0 && a <= 1800);
    assert_int_equal(a, schedule_jitter(j, "alpha")); /* fixed per project */
    assert_int_equal(schedule_jitter(none, "alpha"), 0);
    /* projects spread out */
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "proj%d", i);
        differ += schedule_jitter(j, id) != a;
    }
    assert_true(differ >= 15);
    (void)b;
    json_decref(j);
    json_decref(none);
}

static void expect_invalid(const char *json, const char *words)
{
    sm_err err = SM_ERR_INIT;
    json_t *in = json_loads(json, JSON_DECODE_ANY, NULL), *out;
    out = schedule_validate(NULL, in, &err);
    json_decref(in);
    assert_null(out);
    assert_int_equal(err.code, SM_E_INVALID);
    if (!strstr(err.msg, words))
        fail_msg("'%s': message '%s' lacks '%s'", json, err.msg, words);
}

static void test_validation(void **state)
{
    (void)state;
    expect_invalid("{\"time\": \"24:00\"}", "'time' must be \"HH:MM\" (UTC, 00:00 to 23:59), not '24:00'");
    expect_invalid("{\"time\": \"7:00\"}", "not '7:00'");
    expect_invalid("{\"time\": 700}", "'time' must be");
    expect_invalid("{\"frequency\": \"monthly\"}", "unknown frequency 'monthly': use hourly, daily or weekly");
    expect_invalid("{\"retention\": 0}", "'retention' must be a whole number of backups from 1 to 1000");
    expect_invalid("{\"retention\": 1001}", "from 1 to 1000");
    expect_invalid("{\"retention\": 2.5}", "'retention'");
    expect_invalid("{\"keep_weekly\": -1}", "'keep_weekly' must be a whole number of weeks");
    expect_invalid("{\"type\": \"differential\"}", "unknown backup type 'differential'");
    expect_invalid("{\"enabled\": 1}", "'enabled' must be true or false");
    expect_invalid("{\"restore_test\": \"daily\"}", "'restore_test' must be \"never\" or \"weekly\"");
    expect_invalid("{\"notify\": {\"email\": [\"a b@c\"]}}", "'notify.email' has 'a b@c'");
    expect_invalid("{\"notify\": {\"email\": \"ops@x.test\"}}", "'notify.email' must be a list");
    expect_invalid("{\"notify\": {\"webhook\": \"file:///etc/passwd\"}}", "'notify.webhook'");
    expect_invalid("{\"notify\": {\"sms\": \"+1\"}}", "unknown field 'notify.sms'");
    expect_invalid("{\"every\": \"day\"}", "unknown schedule field 'every'");
    expect_invalid("[]", "a schedule must be a JSON object");
}

static void test_merge(void **state)
{
    (void)state;
    sm_err err = SM_ERR_INIT;
    json_t *base = sched("{\"enabled\": true, \"frequency\": \"weekly\", \"time\": \"04:00\", "
                         "\"retention\": 9, \"notify\": {\"webhook\": \"https://h.test/x\", "
                         "\"webhook_secret\": \"s\"}}");
    json_t *in = json_pack("{s:b}", "enabled", 0);
    json_t *out = schedule_validate(base, in, &err), *pub;

    assert_non_null(out);
    assert_false(json_is_true(json_object_get(out, "enabled")));
    assert_string_equal(json_string_value(json_object_get(out, "frequency")), "weekly");
    assert_int_equal(json_integer_value(json_object_get(out, "retention")), 9);
    /* the API shows no secret, and a shown document put back keeps it */
    pub = schedule_public(out);
    assert_null(json_object_get(json_object_get(pub, "notify"), "webhook_secret"));
    assert_true(json_is_true(json_object_get(json_object_get(pub, "notify"), "webhook_secret_set")));
    json_decref(out);
    out = schedule_validate(base, pub, &err);
    assert_non_null(out);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "notify"), "webhook_secret")), "s");
    json_decref(pub);
    json_decref(out);
    json_decref(in);
    json_decref(base);
}

static void test_retention_select(void **state)
{
    (void)state;
    /* newest first: hourly backups over three days, then older daily ones */
    const char *t[] = {"2026-11-25T12:00:00Z", "2026-11-25T11:00:00Z", "2026-11-25T10:00:00Z",
                       "2026-11-24T23:00:00Z", "2026-11-24T10:00:00Z", "2026-11-23T10:00:00Z",
                       "2026-11-16T10:00:00Z", "2026-11-09T10:00:00Z", "2026-10-20T10:00:00Z",
                       "2026-09-20T10:00:00Z"};
    unsigned char keep[10];
    ops_retention last2 = {2, 0, 0, 0}, daily = {1, 3, 0, 0}, weekly = {1, 0, 3, 0},
                  monthly = {1, 0, 0, 3};

    ops_retention_select(&last2, t, 10, keep);
    assert_memory_equal(keep, ((unsigned char[]){1, 1, 0, 0, 0, 0, 0, 0, 0, 0}), 10);
    /* the newest of each of the 3 newest days: 25th (12:00), 24th (23:00), 23rd */
    ops_retention_select(&daily, t, 10, keep);
    assert_memory_equal(keep, ((unsigned char[]){1, 0, 0, 1, 0, 1, 0, 0, 0, 0}), 10);
    /* ISO weeks: 23-25 Nov (week 48), 16 Nov (47), 9 Nov (46) */
    ops_retention_select(&weekly, t, 10, keep);
    assert_memory_equal(keep, ((unsigned char[]){1, 0, 0, 0, 0, 0, 1, 1, 0, 0}), 10);
    /* months: November, October, September */
    ops_retention_select(&monthly, t, 10, keep);
    assert_memory_equal(keep, ((unsigned char[]){1, 0, 0, 0, 0, 0, 0, 0, 1, 1}), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_slots),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_retention_select),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
