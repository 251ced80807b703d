/* util: hex, base64, sizes, strict integers, ISO times, the driven clock. */
#include "../unit_helpers.h"

#include "core/util.h"

#include <time.h>

#define T_2026 ((time_t)1795615387) /* 2026-11-25T14:03:07Z */

/* ---- hex ---- */

static void hex_roundtrips_every_byte_value(void **state)
{
    unsigned char in[256], out[256];
    char hex[513];
    (void)state;

    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    sm_hex(hex, in, sizeof(in));
    assert_int_equal(strlen(hex), 512);
    assert_memory_equal(hex, "000102", 6);
    assert_string_equal(hex + 506, "fdfeff");
    assert_int_equal(sm_unhex(out, hex, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
}

static void hex_of_nothing_is_an_empty_string(void **state)
{
    char hex[1] = {'x'};
    (void)state;

    sm_hex(hex, (const unsigned char *)"", 0);
    assert_string_equal(hex, "");
}

static void unhex_accepts_upper_case(void **state)
{
    unsigned char out[2];
    (void)state;

    assert_int_equal(sm_unhex(out, "ABcd", 2), 0);
    assert_int_equal(out[0], 0xab);
    assert_int_equal(out[1], 0xcd);
}

static void unhex_rejects_bad_digits(void **state)
{
    unsigned char out[2];
    (void)state;

    assert_int_equal(sm_unhex(out, "0g12", 2), -1);
    assert_int_equal(sm_unhex(out, "12 4", 2), -1);
    assert_int_equal(sm_unhex(out, "-123", 2), -1);
}

static void unhex_rejects_a_wrong_length(void **state)
{
    unsigned char out[4];
    (void)state;

    assert_int_equal(sm_unhex(out, "abc", 2), -1);   /* odd, too short */
    assert_int_equal(sm_unhex(out, "ab", 2), -1);    /* too short */
    assert_int_equal(sm_unhex(out, "abcd0", 2), -1); /* too long */
    assert_int_equal(sm_unhex(out, "", 1), -1);
    assert_int_equal(sm_unhex(out, "", 0), 0);
}

/* ---- base64 ---- */

static void b64_encode_matches_rfc4648_vectors(void **state)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const want[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    (void)state;

    for (size_t i = 0; i < 7; i++) {
        char *s = sm_b64_encode((const unsigned char *)in[i], strlen(in[i]));
        assert_string_equal(s, want[i]);
        free(s);
    }
}

static void b64_roundtrips_binary_of_every_length_up_to_40(void **state)
{
    unsigned char data[40];
    (void)state;

    th_fill(data, sizeof(data), 99);
    data[0] = 0; /* embedded NUL */
    for (size_t n = 0; n <= sizeof(data); n++) {
        sm_buf out = SM_BUF_INIT;
        sm_err err = SM_ERR_INIT;
        char *s = sm_b64_encode(data, n);
        assert_int_equal(strlen(s), 4 * ((n + 2) / 3));
        assert_int_equal(sm_b64_decode(&out, s, &err), 0);
        assert_int_equal(out.len, n);
        if (n)
            assert_memory_equal(out.data, data, n);
        assert_int_equal(out.data[out.len], 0);
        free(s);
        sm_buf_release(&out);
    }
}

static void b64_decode_appends_to_the_buffer(void **state)
{
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_puts(&out, "x:");
    assert_int_equal(sm_b64_decode(&out, "Zm9vYg==", &err), 0);
    assert_string_equal(sm_buf_str(&out), "x:foob");
    assert_int_equal(out.len, 6);
    sm_buf_release(&out);
}

static void b64_decode_rejects_a_length_not_a_multiple_of_four(void **state)
{
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(sm_b64_decode(&out, "Zm9", &err), -1);
    assert_err(&err, SM_E_INVALID, "invalid base64 text");
    sm_buf_release(&out);
}

static void b64_decode_rejects_characters_outside_the_alphabet(void **state)
{
    sm_buf out = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(sm_b64_decode(&out, "Zm!v", &err), -1);
    assert_err(&err, SM_E_INVALID, "invalid base64 text");
    sm_buf_release(&out);
}

/* Regression (a bug found by this test, now fixed: src/core/util.c, sm_b64_decode): padding is not validated.
 * EVP_DecodeBlock decodes '=' as zero bits wherever it stands and the code
 * only counts '=' in the last two places, so "====" decodes to one NUL byte,
 * "A===" to one byte, "Zg=A" to two bytes, "=Zg=" to garbage and "Zm8=Zm8="
 * (padding in the middle) to "fo\0fo" instead of failing with SM_E_INVALID
 * "invalid base64 text". Skipped until fixed. */
static void b64_decode_rejects_misplaced_padding(void **state)
{
    static const char *const bad[] = {"====", "A===", "Zg=A", "=Zg=", "Zm8=Zm8=", "Zg==Zg=="};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sm_buf out = SM_BUF_INIT;
        sm_err err = SM_ERR_INIT;
        if (sm_b64_decode(&out, bad[i], &err) != -1)
            fail_msg("sm_b64_decode accepted '%s' (%zu bytes)", bad[i], out.len);
        assert_err(&err, SM_E_INVALID, "invalid base64 text");
        sm_buf_release(&out);
    }
}

/* ---- sizes and integers ---- */

static void parse_size_reads_plain_numbers_and_binary_units(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"1000", 1000},
        {"512k", 512ull << 10},
        {"512K", 512ull << 10},
        {"64M", 64ull << 20},
        {"64MiB", 64ull << 20},
        {"64mb", 64ull << 20},
        {"1G", 1ull << 30},
        {"1GB", 1ull << 30},
        {"2T", 2ull << 40},
        {"1KiB", 1024},
        {"18446744073709551615", UINT64_MAX},
        {"16777215T", 16777215ull << 40},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        if (sm_parse_size(ok[i].s, &v) != 0)
            fail_msg("sm_parse_size rejected '%s'", ok[i].s);
        if (v != ok[i].v)
            fail_msg("sm_parse_size('%s') gave %llu", ok[i].s, (unsigned long long)v);
    }
}

static void parse_size_rejects_junk(void **state)
{
    static const char *const bad[] = {"",  "-1",  "abc", "12X",  "1MM",  "1 M",
                                      "M", "1Mx", "1iB", "1.5G", "0x10", "1Mi B"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        if (sm_parse_size(bad[i], &v) != -1)
            fail_msg("sm_parse_size accepted '%s'", bad[i]);
        assert_int_equal(v, 7);
    }
    assert_int_equal(sm_parse_size(NULL, &(uint64_t){0}), -1);
}

static void parse_size_rejects_a_unit_that_overflows(void **state)
{
    uint64_t v = 7;
    (void)state;

    assert_int_equal(sm_parse_size("16777216T", &v), -1); /* 2^64 */
    assert_int_equal(sm_parse_size("18446744073709551615k", &v), -1);
    assert_int_equal(v, 7);
}

/* Regression (a bug found by this test, now fixed: src/core/util.c, sm_parse_size): strtoull's overflow (ERANGE) is not
 * checked, so a number past 2^64-1 without a unit is accepted as UINT64_MAX
 * instead of being rejected. Skipped until fixed. */
static void parse_size_rejects_a_number_past_uint64_max(void **state)
{
    uint64_t v = 7;
    (void)state;

    assert_int_equal(sm_parse_size("18446744073709551616", &v), -1);
    assert_int_equal(v, 7);
}

/* Regression (a bug found by this test, now fixed: src/core/util.c, sm_parse_size): only a '-' in the first byte is
 * refused; strtoull skips leading white space and accepts a sign, so " -1"
 * parses as 18446744073709551615 (and " 5", "+5" pass too). A size should
 * be digits then an optional unit. Skipped until fixed. */
static void parse_size_rejects_leading_space_and_signs(void **state)
{
    uint64_t v = 7;
    (void)state;

    assert_int_equal(sm_parse_size(" -1", &v), -1);
    assert_int_equal(sm_parse_size(" 5", &v), -1);
    assert_int_equal(sm_parse_size("+5", &v), -1);
    assert_int_equal(v, 7);
}

static void parse_u64_reads_digits_up_to_max(void **state)
{
    uint64_t v = 0;
    (void)state;

    assert_int_equal(sm_parse_u64("0", 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(sm_parse_u64("10", 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(sm_parse_u64("007", 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(sm_parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
}

static void parse_u64_rejects_values_above_max(void **state)
{
    uint64_t v = 3;
    (void)state;

    assert_int_equal(sm_parse_u64("11", 10, &v), -1);
    assert_int_equal(sm_parse_u64("18446744073709551616", UINT64_MAX, &v), -1);
    assert_int_equal(sm_parse_u64("99999999999999999999999", UINT64_MAX, &v), -1);
    assert_int_equal(v, 3);
}

static void parse_u64_rejects_anything_but_digits(void **state)
{
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1a", "0x1", "1.0", "1e3"};
    uint64_t v = 3;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sm_parse_u64(bad[i], UINT64_MAX, &v) != -1)
            fail_msg("sm_parse_u64 accepted '%s'", bad[i]);
    assert_int_equal(sm_parse_u64(NULL, UINT64_MAX, &v), -1);
    assert_int_equal(v, 3);
}

static void human_bytes_uses_decimal_units(void **state)
{
    char out[32];
    (void)state;

    sm_human_bytes(out, sizeof(out), 0);
    assert_string_equal(out, "0 B");
    sm_human_bytes(out, sizeof(out), 999);
    assert_string_equal(out, "999 B");
    sm_human_bytes(out, sizeof(out), 1000);
    assert_string_equal(out, "1.0 kB");
    sm_human_bytes(out, sizeof(out), 1234567);
    assert_string_equal(out, "1.2 MB");
    sm_human_bytes(out, sizeof(out), 5000000000000ull);
    assert_string_equal(out, "5.0 TB");
}

/* Regression (a bug found by this test, now fixed: src/core/util.c, sm_human_bytes): the unit is chosen before rounding,
 * so 999999 bytes print as "1000.0 kB" instead of "1.0 MB" (any value that
 * rounds up to 1000.0 of a unit). Cosmetic. Skipped until fixed. */
static void human_bytes_rounds_up_into_the_next_unit(void **state)
{
    char out[32];
    (void)state;

    sm_human_bytes(out, sizeof(out), 999999);
    assert_string_equal(out, "1.0 MB");
}

/* ---- time ---- */

static void time_iso_formats_utc_with_z(void **state)
{
    char out[32];
    (void)state;

    sm_time_iso(out, sizeof(out), 0);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    sm_time_iso(out, sizeof(out), T_2026);
    assert_string_equal(out, "2026-11-25T14:03:07Z");
}

static void time_parse_iso_reads_the_z_form(void **state)
{
    time_t t = 0;
    (void)state;

    assert_int_equal(sm_time_parse_iso("2026-11-25T14:03:07Z", &t), 0);
    assert_true(t == T_2026);
    assert_int_equal(sm_time_parse_iso("2024-02-29T23:59:59z", &t), 0);
    assert_true(t == (time_t)1709251199);
}

static void time_parse_iso_reads_zero_offsets(void **state)
{
    static const char *const forms[] = {"2026-11-25T14:03:07+00:00", "2026-11-25T14:03:07+0000",
                                        "2026-11-25T14:03:07+00", "2026-11-25T14:03:07-00:00"};
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        time_t t = 0;
        if (sm_time_parse_iso(forms[i], &t) != 0)
            fail_msg("rejected '%s'", forms[i]);
        assert_true(t == T_2026);
    }
}

static void time_parse_iso_reads_the_space_form(void **state)
{
    time_t t = 0;
    (void)state;

    assert_int_equal(sm_time_parse_iso("2026-11-25 14:03:07Z", &t), 0);
    assert_true(t == T_2026);
    assert_int_equal(sm_time_parse_iso("2026-11-25 14:03:07+00:00", &t), 0);
    assert_true(t == T_2026);
}

static void time_parse_iso_applies_nonzero_offsets(void **state)
{
    time_t t = 0;
    (void)state;

    /* 16:03:07 at +02:00 is 14:03:07 UTC */
    assert_int_equal(sm_time_parse_iso("2026-11-25T16:03:07+02:00", &t), 0);
    assert_true(t == T_2026);
    assert_int_equal(sm_time_parse_iso("2026-11-25T08:33:07-05:30", &t), 0);
    assert_true(t == T_2026);
}

static void time_parse_iso_ignores_fractional_seconds(void **state)
{
    time_t t = 0;
    (void)state;

    assert_int_equal(sm_time_parse_iso("2026-11-25T14:03:07.123456Z", &t), 0);
    assert_true(t == T_2026);
}

static void time_parse_iso_roundtrips_time_iso(void **state)
{
    char out[32];
    time_t t = 0;
    (void)state;

    for (time_t v = 0; v < (time_t)4000000000; v += (time_t)123456789) {
        sm_time_iso(out, sizeof(out), v);
        assert_int_equal(sm_time_parse_iso(out, &t), 0);
        assert_true(t == v);
    }
}

static void time_parse_iso_rejects_junk(void **state)
{
    static const char *const bad[] = {
        "",
        "junk",
        "2026-11-25",
        "2026-11-25T",
        "2026-11-25T14:03",
        "2026-11-25X14:03:07Z",
        "2026-11-25T14:03:07Zjunk",
        "2026-11-25T14:03:07 ",
        "2026-11-25T14:03:07Q",
        "2026-13-25T14:03:07Z",
        "2026-11-25T25:03:07Z",
        "2026-11-25T14:03:07+00:00x",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        time_t t = 42;
        if (sm_time_parse_iso(bad[i], &t) != -1)
            fail_msg("sm_time_parse_iso accepted '%s'", bad[i]);
        assert_true(t == 42);
    }
}

/* Regression (a bug found by this test, now fixed: src/core/util.c, sm_time_parse_iso): the offset is read with
 * sscanf("%2d") and then the pointer always moves 2 bytes on. With one digit
 * at the end ("+0") it steps past the terminating NUL and reads out of
 * bounds (AddressSanitizer reports it on a heap copy); with junk after one
 * digit ("+1x") it accepts the string as +01:00. sscanf also accepts a sign
 * or space there ("+-1", "+ 1"). The offset should be exactly two digits.
 * Skipped until fixed. */
static void time_parse_iso_rejects_a_malformed_offset(void **state)
{
    static const char *const bad[] = {"2026-11-25T14:03:07+0", "2026-11-25T14:03:07+1x",
                                      "2026-11-25T14:03:07+-1", "2026-11-25T14:03:07+ 1"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *s = sm_xstrdup(bad[i]); /* exact size: out-of-bounds reads show */
        time_t t = 42;
        if (sm_time_parse_iso(s, &t) != -1)
            fail_msg("sm_time_parse_iso accepted '%s'", bad[i]);
        free(s);
    }
}

/* ---- the clock ---- */

static int clock_teardown(void **state)
{
    (void)state;
    unsetenv("SUPAMANAGER_NOW");
    sm_clock_set(0);
    return 0;
}

static void supamanager_now_drives_sm_now(void **state)
{
    (void)state;

    setenv("SUPAMANAGER_NOW", "1795615387", 1);
    assert_true(sm_now() == T_2026);
    assert_int_equal(sm_clock_driven(), 1);
}

static void sm_now_follows_the_real_clock_without_supamanager_now(void **state)
{
    time_t before, now, after;
    (void)state;

    unsetenv("SUPAMANAGER_NOW");
    before = time(NULL);
    now = sm_now();
    after = time(NULL);
    assert_true(now >= before && now <= after);
    assert_int_equal(sm_clock_driven(), 0);
}

static void sm_now_ignores_an_invalid_supamanager_now(void **state)
{
    time_t before, now;
    (void)state;

    setenv("SUPAMANAGER_NOW", "yesterday", 1);
    before = time(NULL);
    now = sm_now();
    assert_true(now >= before && now <= time(NULL));
}

static void clock_set_overrides_and_zero_returns_to_real_time(void **state)
{
    time_t before;
    (void)state;

    unsetenv("SUPAMANAGER_NOW");
    sm_clock_set(12345);
    assert_true(sm_now() == 12345);
    assert_int_equal(sm_clock_driven(), 1);
    sm_clock_set(0);
    before = time(NULL);
    assert_true(sm_now() >= before);
    assert_int_equal(sm_clock_driven(), 0);
}

static void mono_never_goes_backwards(void **state)
{
    double a, b;
    (void)state;

    a = sm_mono();
    b = sm_mono();
    assert_true(b >= a);
    assert_true(a > 0);
}

/* ---- random ---- */

static void random_hex_gives_distinct_lower_case_hex(void **state)
{
    char *a = sm_random_hex(16), *b = sm_random_hex(16);
    (void)state;

    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void hostname_is_not_empty(void **state)
{
    (void)state;
    assert_true(strlen(sm_hostname()) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex_roundtrips_every_byte_value),
        cmocka_unit_test(hex_of_nothing_is_an_empty_string),
        cmocka_unit_test(unhex_accepts_upper_case),
        cmocka_unit_test(unhex_rejects_bad_digits),
        cmocka_unit_test(unhex_rejects_a_wrong_length),
        cmocka_unit_test(b64_encode_matches_rfc4648_vectors),
        cmocka_unit_test(b64_roundtrips_binary_of_every_length_up_to_40),
        cmocka_unit_test(b64_decode_appends_to_the_buffer),
        cmocka_unit_test(b64_decode_rejects_a_length_not_a_multiple_of_four),
        cmocka_unit_test(b64_decode_rejects_characters_outside_the_alphabet),
        cmocka_unit_test(b64_decode_rejects_misplaced_padding),
        cmocka_unit_test(parse_size_reads_plain_numbers_and_binary_units),
        cmocka_unit_test(parse_size_rejects_junk),
        cmocka_unit_test(parse_size_rejects_a_unit_that_overflows),
        cmocka_unit_test(parse_size_rejects_a_number_past_uint64_max),
        cmocka_unit_test(parse_size_rejects_leading_space_and_signs),
        cmocka_unit_test(parse_u64_reads_digits_up_to_max),
        cmocka_unit_test(parse_u64_rejects_values_above_max),
        cmocka_unit_test(parse_u64_rejects_anything_but_digits),
        cmocka_unit_test(human_bytes_uses_decimal_units),
        cmocka_unit_test(human_bytes_rounds_up_into_the_next_unit),
        cmocka_unit_test(time_iso_formats_utc_with_z),
        cmocka_unit_test(time_parse_iso_reads_the_z_form),
        cmocka_unit_test(time_parse_iso_reads_zero_offsets),
        cmocka_unit_test(time_parse_iso_reads_the_space_form),
        cmocka_unit_test(time_parse_iso_applies_nonzero_offsets),
        cmocka_unit_test(time_parse_iso_ignores_fractional_seconds),
        cmocka_unit_test(time_parse_iso_roundtrips_time_iso),
        cmocka_unit_test(time_parse_iso_rejects_junk),
        cmocka_unit_test(time_parse_iso_rejects_a_malformed_offset),
        cmocka_unit_test_teardown(supamanager_now_drives_sm_now, clock_teardown),
        cmocka_unit_test_teardown(sm_now_follows_the_real_clock_without_supamanager_now,
                                  clock_teardown),
        cmocka_unit_test_teardown(sm_now_ignores_an_invalid_supamanager_now, clock_teardown),
        cmocka_unit_test_teardown(clock_set_overrides_and_zero_returns_to_real_time,
                                  clock_teardown),
        cmocka_unit_test(mono_never_goes_backwards),
        cmocka_unit_test(random_hex_gives_distinct_lower_case_hex),
        cmocka_unit_test(hostname_is_not_empty),
    };
    return cmocka_run_group_tests_name("core_util", tests, NULL, NULL);
}
