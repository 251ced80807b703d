/* sm_buf: limits, NUL termination, detach, little-endian readers and writers. */
#include "../unit_helpers.h"

#include "core/buf.h"

static void buf_add_up_to_the_limit_succeeds(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_limit(&b, 10);
    assert_int_equal(sm_buf_add(&b, "0123456789", 10, &err), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(sm_buf_str(&b), "0123456789");
    assert_int_equal(err.code, SM_OK);
    sm_buf_release(&b);
}

static void buf_add_past_the_limit_fails_with_limit_error(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_limit(&b, 10);
    assert_int_equal(sm_buf_add(&b, "0123456789x", 11, &err), -1);
    assert_err(&err, SM_E_LIMIT, "data exceeds the limit of 10 bytes");
    assert_int_equal(b.len, 0);
    sm_buf_release(&b);
}

static void buf_add_that_crosses_the_limit_keeps_earlier_data(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_limit(&b, 8);
    assert_int_equal(sm_buf_adds(&b, "abcdef", &err), 0);
    assert_int_equal(sm_buf_adds(&b, "ghi", &err), -1);
    assert_err(&err, SM_E_LIMIT, "data exceeds the limit of 8 bytes");
    assert_int_equal(b.len, 6);
    assert_string_equal(sm_buf_str(&b), "abcdef");
    sm_buf_release(&b);
}

static void buf_addf_past_the_limit_fails_with_limit_error(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_limit(&b, 5);
    assert_int_equal(sm_buf_addf(&b, &err, "%d-%s", 42, "xyz"), -1);
    assert_err(&err, SM_E_LIMIT, "data exceeds the limit of 5 bytes");
    assert_int_equal(sm_buf_addf(&b, &err, "%d", 12345), 0);
    assert_string_equal(sm_buf_str(&b), "12345");
    sm_buf_release(&b);
}

static void buf_grow_with_huge_extra_fails_without_overflow(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_limit(&b, 100);
    assert_int_equal(sm_buf_adds(&b, "abc", &err), 0);
    /* len + extra would wrap around SIZE_MAX */
    assert_int_equal(sm_buf_grow(&b, SIZE_MAX - 1, &err), -1);
    assert_err(&err, SM_E_LIMIT, "data exceeds the limit of 100 bytes");
    assert_int_equal(b.len, 3);
    sm_buf_release(&b);
}

static void buf_without_limit_grows_past_a_megabyte(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    unsigned char *data = th_random(3u << 20, 1);
    (void)state;

    for (size_t off = 0; off < (3u << 20); off += 4099) {
        size_t n = (3u << 20) - off < 4099 ? (3u << 20) - off : 4099;
        assert_int_equal(sm_buf_add(&b, data + off, n, &err), 0);
    }
    assert_int_equal(b.len, 3u << 20);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.data, data, 3u << 20);
    assert_int_equal(b.data[b.len], 0);
    free(data);
    sm_buf_release(&b);
}

static void buf_data_is_nul_terminated_after_every_append(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_put(&b, "ab", 2);
    assert_int_equal(b.data[b.len], '\0');
    sm_buf_putc(&b, 'c');
    assert_int_equal(b.data[b.len], '\0');
    sm_buf_puts(&b, "de");
    assert_int_equal(b.data[b.len], '\0');
    sm_buf_putf(&b, "%03d", 7);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(sm_buf_add(&b, "f", 1, &err), 0);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(sm_buf_addf(&b, &err, "%s", "gh"), 0);
    assert_int_equal(b.data[b.len], '\0');
    assert_string_equal((const char *)b.data, "abcde007fgh");
    assert_int_equal(b.len, 11);
    sm_buf_release(&b);
}

static void buf_add_of_zero_bytes_gives_an_empty_string(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(sm_buf_add(&b, NULL, 0, &err), 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal((const char *)b.data, "");
    sm_buf_release(&b);
}

static void buf_reset_empties_the_string_and_keeps_memory(void **state)
{
    sm_buf b = SM_BUF_INIT;
    unsigned char *mem;
    (void)state;

    sm_buf_puts(&b, "hello");
    mem = b.data;
    sm_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, mem);
    assert_string_equal(sm_buf_str(&b), "");
    sm_buf_release(&b);
}

static void buf_str_of_an_unused_buffer_is_empty(void **state)
{
    sm_buf b = SM_BUF_INIT;
    (void)state;

    assert_string_equal(sm_buf_str(&b), "");
    sm_buf_reset(&b); /* no memory yet: must not crash */
    assert_null(b.data);
}

static void buf_release_frees_and_keeps_the_limit(void **state)
{
    sm_buf b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_buf_limit(&b, 4);
    sm_buf_puts(&b, "abc");
    sm_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 4);
    assert_int_equal(sm_buf_adds(&b, "abcde", &err), -1);
    assert_err(&err, SM_E_LIMIT, "data exceeds the limit of 4 bytes");
}

static void buf_detach_hands_over_the_data_and_empties_the_buffer(void **state)
{
    sm_buf b = SM_BUF_INIT;
    size_t len = 0;
    char *s;
    (void)state;

    sm_buf_puts(&b, "owned text");
    s = sm_buf_detach(&b, &len);
    assert_string_equal(s, "owned text");
    assert_int_equal(len, 10);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);
    /* the buffer is usable again */
    sm_buf_puts(&b, "x");
    assert_string_equal(sm_buf_str(&b), "x");
    sm_buf_release(&b);
}

static void buf_detach_of_an_empty_buffer_gives_an_empty_string(void **state)
{
    sm_buf b = SM_BUF_INIT;
    size_t len = 99;
    char *s;
    (void)state;

    s = sm_buf_detach(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    assert_null(b.data);
    free(s);
    s = sm_buf_detach(&b, NULL);
    assert_string_equal(s, "");
    free(s);
}

static void buf_le_writers_and_readers_roundtrip(void **state)
{
    sm_buf b = SM_BUF_INIT;
    size_t off = 0;
    uint8_t v8 = 0;
    uint32_t v32 = 0;
    uint64_t v64 = 0;
    char four[4];
    (void)state;

    sm_buf_put_u8(&b, 0xab);
    sm_buf_put_u32le(&b, 0x01020304u);
    sm_buf_put_u64le(&b, 0x1122334455667788ull);
    sm_buf_put(&b, "WXYZ", 4);
    assert_int_equal(b.len, 1 + 4 + 8 + 4);
    /* little-endian on the wire, whatever the host */
    assert_int_equal(b.data[1], 0x04);
    assert_int_equal(b.data[4], 0x01);
    assert_int_equal(b.data[5], 0x88);
    assert_int_equal(b.data[12], 0x11);
    assert_int_equal(sm_get_u8(b.data, b.len, &off, &v8), 0);
    assert_int_equal(sm_get_u32le(b.data, b.len, &off, &v32), 0);
    assert_int_equal(sm_get_u64le(b.data, b.len, &off, &v64), 0);
    assert_int_equal(sm_get_bytes(b.data, b.len, &off, four, 4), 0);
    assert_int_equal(v8, 0xab);
    assert_int_equal(v32, 0x01020304u);
    assert_true(v64 == 0x1122334455667788ull);
    assert_memory_equal(four, "WXYZ", 4);
    assert_int_equal(off, b.len);
    sm_buf_release(&b);
}

static void buf_load_and_store_u32le_roundtrip(void **state)
{
    unsigned char p[4];
    (void)state;

    sm_store_u32le(p, 0xdeadbeefu);
    assert_int_equal(p[0], 0xef);
    assert_int_equal(p[3], 0xde);
    assert_int_equal(sm_load_u32le(p), 0xdeadbeefu);
}

static void buf_get_u8_past_the_end_fails_and_keeps_offset(void **state)
{
    const unsigned char p[2] = {1, 2};
    size_t off = 2;
    uint8_t v = 77;
    (void)state;

    assert_int_equal(sm_get_u8(p, sizeof(p), &off, &v), -1);
    assert_int_equal(off, 2);
    assert_int_equal(v, 77);
    assert_int_equal(sm_get_u8(p, 0, &(size_t){0}, &v), -1);
}

static void buf_get_u32le_past_the_end_fails_and_keeps_offset(void **state)
{
    const unsigned char p[7] = {0};
    size_t off = 4;
    uint32_t v = 5;
    (void)state;

    assert_int_equal(sm_get_u32le(p, sizeof(p), &off, &v), -1); /* needs bytes 4..7 */
    assert_int_equal(off, 4);
    assert_int_equal(v, 5);
    off = 3;
    assert_int_equal(sm_get_u32le(p, sizeof(p), &off, &v), 0);
    assert_int_equal(off, 7);
    off = 0;
    assert_int_equal(sm_get_u32le(p, 3, &off, &v), -1); /* shorter than 4 bytes */
    off = SIZE_MAX - 1;
    assert_int_equal(sm_get_u32le(p, sizeof(p), &off, &v), -1); /* no wrap-around */
}

static void buf_get_u64le_past_the_end_fails_and_keeps_offset(void **state)
{
    const unsigned char p[12] = {0};
    size_t off = 5;
    uint64_t v = 9;
    (void)state;

    assert_int_equal(sm_get_u64le(p, sizeof(p), &off, &v), -1);
    assert_int_equal(off, 5);
    assert_true(v == 9);
    off = 4;
    assert_int_equal(sm_get_u64le(p, sizeof(p), &off, &v), 0);
    assert_int_equal(off, 12);
    off = 0;
    assert_int_equal(sm_get_u64le(p, 7, &off, &v), -1);
}

static void buf_get_bytes_past_the_end_fails_and_keeps_offset(void **state)
{
    const unsigned char p[10] = "abcdefghi";
    unsigned char dst[16];
    size_t off = 6;
    (void)state;

    memset(dst, 'z', sizeof(dst));
    assert_int_equal(sm_get_bytes(p, sizeof(p), &off, dst, 5), -1);
    assert_int_equal(off, 6);
    assert_int_equal(dst[0], 'z');
    off = 0;
    assert_int_equal(sm_get_bytes(p, sizeof(p), &off, dst, 11), -1); /* n > len */
    off = 11;
    assert_int_equal(sm_get_bytes(p, sizeof(p), &off, dst, 0), -1); /* off > len */
    off = 10;
    assert_int_equal(sm_get_bytes(p, sizeof(p), &off, dst, 0), 0); /* empty read at the end */
}

/* Regression (a bug found by this test, now fixed: src/core/buf.c, sm_get_u8): the bounds check `*off + 1 > len` wraps
 * around when *off is SIZE_MAX, so the reader accepts it and reads p[SIZE_MAX]
 * instead of failing like sm_get_u32le/sm_get_u64le/sm_get_bytes do.
 * Skipped until fixed (it would read far out of bounds). */
static void buf_get_u8_with_offset_at_size_max_fails(void **state)
{
    const unsigned char p[4] = {1, 2, 3, 4};
    size_t off = SIZE_MAX;
    uint8_t v = 0;
    (void)state;

    assert_int_equal(sm_get_u8(p, sizeof(p), &off, &v), -1);
    assert_true(off == SIZE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_add_up_to_the_limit_succeeds),
        cmocka_unit_test(buf_add_past_the_limit_fails_with_limit_error),
        cmocka_unit_test(buf_add_that_crosses_the_limit_keeps_earlier_data),
        cmocka_unit_test(buf_addf_past_the_limit_fails_with_limit_error),
        cmocka_unit_test(buf_grow_with_huge_extra_fails_without_overflow),
        cmocka_unit_test(buf_without_limit_grows_past_a_megabyte),
        cmocka_unit_test(buf_data_is_nul_terminated_after_every_append),
        cmocka_unit_test(buf_add_of_zero_bytes_gives_an_empty_string),
        cmocka_unit_test(buf_reset_empties_the_string_and_keeps_memory),
        cmocka_unit_test(buf_str_of_an_unused_buffer_is_empty),
        cmocka_unit_test(buf_release_frees_and_keeps_the_limit),
        cmocka_unit_test(buf_detach_hands_over_the_data_and_empties_the_buffer),
        cmocka_unit_test(buf_detach_of_an_empty_buffer_gives_an_empty_string),
        cmocka_unit_test(buf_le_writers_and_readers_roundtrip),
        cmocka_unit_test(buf_load_and_store_u32le_roundtrip),
        cmocka_unit_test(buf_get_u8_past_the_end_fails_and_keeps_offset),
        cmocka_unit_test(buf_get_u8_with_offset_at_size_max_fails),
        cmocka_unit_test(buf_get_u32le_past_the_end_fails_and_keeps_offset),
        cmocka_unit_test(buf_get_u64le_past_the_end_fails_and_keeps_offset),
        cmocka_unit_test(buf_get_bytes_past_the_end_fails_and_keeps_offset),
    };
    return cmocka_run_group_tests_name("core_buf", tests, NULL, NULL);
}
