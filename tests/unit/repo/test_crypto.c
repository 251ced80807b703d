/* crypto: AES-256-GCM sealing, HMAC-SHA-256 ids, scrypt, SHA-256. */
#include "../unit_helpers.h"

#include "core/util.h"
#include "repo/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

static void keys_of(repo_keys *k, unsigned char v)
{
    for (int i = 0; i < 32; i++) {
        k->enc[i] = (unsigned char)(v + i);
        k->mac[i] = (unsigned char)(v * 3 + i);
        k->chunker[i] = (unsigned char)(v * 5 + i);
    }
}

typedef struct fixture {
    repo_keys keys;
    crypto_ctx *cc;
} fixture;

static int setup(void **state)
{
    fixture *f = sm_xcalloc(1, sizeof(*f));
    keys_of(&f->keys, 1);
    f->cc = crypto_ctx_new(&f->keys);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    crypto_ctx_free(f->cc);
    free(f);
    return 0;
}

/* ---- seal and open ---- */

static void seal_then_open_gives_the_plaintext_back(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 100000};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = th_random(sizes[i], i + 1);
        sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
        sm_err err = SM_ERR_INIT;
        assert_int_equal(crypto_seal(f->cc, p, sizes[i], &sealed, &err), 0);
        assert_int_equal(sealed.len, sizes[i] + CRYPTO_OVERHEAD);
        assert_int_equal(crypto_open(f->cc, sealed.data, sealed.len, &plain, &err), 0);
        assert_int_equal(plain.len, sizes[i]);
        if (sizes[i])
            assert_memory_equal(plain.data, p, sizes[i]);
        assert_int_equal(plain.data[plain.len], 0);
        sm_buf_release(&sealed);
        sm_buf_release(&plain);
        free(p);
    }
}

static void seal_appends_to_the_buffer(void **state)
{
    fixture *f = *state;
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    sm_buf_puts(&sealed, "HDR");
    assert_int_equal(crypto_seal(f->cc, "abc", 3, &sealed, &err), 0);
    assert_int_equal(sealed.len, 3 + 3 + CRYPTO_OVERHEAD);
    assert_memory_equal(sealed.data, "HDR", 3);
    sm_buf_puts(&plain, "pre:");
    assert_int_equal(crypto_open(f->cc, sealed.data + 3, sealed.len - 3, &plain, &err), 0);
    assert_string_equal(sm_buf_str(&plain), "pre:abc");
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
}

static void seal_to_writes_into_a_caller_buffer(void **state)
{
    fixture *f = *state;
    unsigned char dst[5 + CRYPTO_OVERHEAD];
    sm_buf plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(crypto_seal_to(f->cc, "hello", 5, dst, &err), 0);
    assert_int_equal(crypto_open(f->cc, dst, sizeof(dst), &plain, &err), 0);
    assert_string_equal(sm_buf_str(&plain), "hello");
    sm_buf_release(&plain);
}

static void sealing_twice_uses_a_fresh_nonce(void **state)
{
    fixture *f = *state;
    sm_buf a = SM_BUF_INIT, b = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(crypto_seal(f->cc, "same", 4, &a, &err), 0);
    assert_int_equal(crypto_seal(f->cc, "same", 4, &b, &err), 0);
    assert_memory_not_equal(a.data, b.data, CRYPTO_NONCE_LEN);
    assert_memory_not_equal(a.data + CRYPTO_NONCE_LEN, b.data + CRYPTO_NONCE_LEN, 4);
    sm_buf_release(&a);
    sm_buf_release(&b);
}

/* Flips one bit at off and expects the MAC check to fail, leaving out alone. */
static void expect_mac_failure_after_flip(fixture *f, size_t off)
{
    unsigned char *p = th_random(300, 42);
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(crypto_seal(f->cc, p, 300, &sealed, &err), 0);
    sealed.data[off] ^= 0x01;
    sm_buf_puts(&plain, "kept");
    assert_int_equal(crypto_open(f->cc, sealed.data, sealed.len, &plain, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "data failed its MAC check");
    assert_int_equal(plain.len, 4);
    assert_string_equal(sm_buf_str(&plain), "kept");
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
    free(p);
}

static void open_fails_the_mac_check_after_a_flipped_nonce_bit(void **state)
{
    expect_mac_failure_after_flip(*state, 0);
    expect_mac_failure_after_flip(*state, CRYPTO_NONCE_LEN - 1);
}

static void open_fails_the_mac_check_after_a_flipped_ciphertext_bit(void **state)
{
    expect_mac_failure_after_flip(*state, CRYPTO_NONCE_LEN);
    expect_mac_failure_after_flip(*state, CRYPTO_NONCE_LEN + 150);
    expect_mac_failure_after_flip(*state, CRYPTO_NONCE_LEN + 299);
}

static void open_fails_the_mac_check_after_a_flipped_tag_bit(void **state)
{
    expect_mac_failure_after_flip(*state, CRYPTO_NONCE_LEN + 300);
    expect_mac_failure_after_flip(*state, CRYPTO_NONCE_LEN + 300 + CRYPTO_TAG_LEN - 1);
}

static void open_with_another_key_fails_the_mac_check(void **state)
{
    fixture *f = *state;
    repo_keys other;
    crypto_ctx *cc2;
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    keys_of(&other, 2);
    cc2 = crypto_ctx_new(&other);
    assert_int_equal(crypto_seal(f->cc, "secret", 6, &sealed, &err), 0);
    assert_int_equal(crypto_open(cc2, sealed.data, sealed.len, &plain, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "data failed its MAC check");
    crypto_ctx_free(cc2);
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
}

static void open_of_truncated_data_fails(void **state)
{
    fixture *f = *state;
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(crypto_seal(f->cc, "abcdef", 6, &sealed, &err), 0);
    assert_int_equal(crypto_open(f->cc, sealed.data, sealed.len - 1, &plain, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "data failed its MAC check");
    assert_int_equal(crypto_open(f->cc, sealed.data, CRYPTO_OVERHEAD - 1, &plain, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "encrypted data is too short (27 bytes)");
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
}

static void open_respects_the_output_limit(void **state)
{
    fixture *f = *state;
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(crypto_seal(f->cc, "0123456789", 10, &sealed, &err), 0);
    sm_buf_limit(&plain, 5);
    assert_int_equal(crypto_open(f->cc, sealed.data, sealed.len, &plain, &err), -1);
    assert_err(&err, SM_E_LIMIT, "data exceeds the limit of 5 bytes");
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
}

static void seal_with_and_open_with_roundtrip_under_aad(void **state)
{
    unsigned char key[32];
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    th_fill(key, sizeof(key), 77);
    assert_int_equal(crypto_seal_with(key, "aad-v1", 6, "payload", 7, &sealed, &err), 0);
    assert_int_equal(sealed.len, 7 + CRYPTO_OVERHEAD);
    assert_int_equal(crypto_open_with(key, "aad-v1", 6, sealed.data, sealed.len, &plain, &err), 0);
    assert_string_equal(sm_buf_str(&plain), "payload");
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
}

static void open_with_a_different_aad_fails_the_mac_check(void **state)
{
    unsigned char key[32];
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    th_fill(key, sizeof(key), 78);
    assert_int_equal(crypto_seal_with(key, "aad-v1", 6, "payload", 7, &sealed, &err), 0);
    assert_int_equal(crypto_open_with(key, "aad-v2", 6, sealed.data, sealed.len, &plain, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "data failed its MAC check");
    assert_int_equal(crypto_open_with(key, NULL, 0, sealed.data, sealed.len, &plain, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "data failed its MAC check");
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
}

static void seal_with_key_and_context_key_are_interchangeable_without_aad(void **state)
{
    fixture *f = *state;
    sm_buf sealed = SM_BUF_INIT, plain = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;

    /* both are plain AES-256-GCM under the enc key */
    assert_int_equal(crypto_seal_with(f->keys.enc, NULL, 0, "xyz", 3, &sealed, &err), 0);
    assert_int_equal(crypto_open(f->cc, sealed.data, sealed.len, &plain, &err), 0);
    assert_string_equal(sm_buf_str(&plain), "xyz");
    sm_buf_release(&sealed);
    sm_buf_release(&plain);
}

/* ---- ids ---- */

static void crypto_id_is_hmac_sha256_under_the_mac_key(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {0, 1, 64, 65, 5000};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = th_random(sizes[i], 100 + i), want[EVP_MAX_MD_SIZE];
        unsigned int wlen = 0;
        blob_id id;
        crypto_id(f->cc, p, sizes[i], &id);
        assert_non_null(HMAC(EVP_sha256(), f->keys.mac, 32, p, sizes[i], want, &wlen));
        assert_int_equal(wlen, BLOB_ID_LEN);
        assert_memory_equal(id.b, want, BLOB_ID_LEN);
        free(p);
    }
}

static void crypto_id_is_stable_across_calls(void **state)
{
    fixture *f = *state;
    blob_id a, b, c;

    crypto_id(f->cc, "one", 3, &a);
    crypto_id(f->cc, "two", 3, &b);
    crypto_id(f->cc, "one", 3, &c);
    assert_true(blob_id_eq(&a, &c));
    assert_false(blob_id_eq(&a, &b));
}

static void crypto_id_differs_between_mac_keys(void **state)
{
    fixture *f = *state;
    repo_keys other = f->keys;
    crypto_ctx *cc2;
    blob_id a, b;

    other.mac[31] ^= 1; /* the enc and chunker keys stay the same */
    cc2 = crypto_ctx_new(&other);
    crypto_id(f->cc, "data", 4, &a);
    crypto_id(cc2, "data", 4, &b);
    assert_false(blob_id_eq(&a, &b));
    crypto_ctx_free(cc2);
}

static void blob_id_hex_and_parse_roundtrip(void **state)
{
    fixture *f = *state;
    blob_id a, b;
    char hex[65];

    crypto_id(f->cc, "x", 1, &a);
    blob_id_hex(&a, hex);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(blob_id_parse(&b, hex), 0);
    assert_true(blob_id_eq(&a, &b));
}

static void blob_id_parse_rejects_bad_text(void **state)
{
    blob_id id;
    char hex[66];
    (void)state;

    memset(hex, 'a', 63);
    hex[63] = '\0';
    assert_int_equal(blob_id_parse(&id, hex), -1); /* 63 digits */
    memset(hex, 'a', 65);
    hex[65] = '\0';
    assert_int_equal(blob_id_parse(&id, hex), -1); /* 65 digits */
    memset(hex, 'a', 64);
    hex[64] = '\0';
    hex[10] = 'g';
    assert_int_equal(blob_id_parse(&id, hex), -1);
    assert_int_equal(blob_id_parse(&id, ""), -1);
}

/* ---- scrypt ---- */

static void scrypt_matches_the_rfc7914_vector(void **state)
{
    /* scrypt("password", "NaCl", N=1024, r=8, p=16): the first 32 of the 64
     * bytes in RFC 7914 section 12 (PBKDF2 blocks are independent) */
    static const char want[] = "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162";
    unsigned char out[32];
    char hex[65];
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(
        crypto_scrypt("password", (const unsigned char *)"NaCl", 4, 1024, 8, 16, out, &err), 0);
    sm_hex(hex, out, 32);
    assert_string_equal(hex, want);
}

static void scrypt_is_deterministic_for_the_same_salt(void **state)
{
    unsigned char a[32], b[32];
    const unsigned char salt[16] = "0123456789abcdef";
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(crypto_scrypt("secret", salt, 16, 1024, 8, 1, a, &err), 0);
    assert_int_equal(crypto_scrypt("secret", salt, 16, 1024, 8, 1, b, &err), 0);
    assert_memory_equal(a, b, 32);
}

static void scrypt_differs_with_salt_and_secret(void **state)
{
    unsigned char a[32], b[32], c[32];
    const unsigned char s1[16] = "0123456789abcdef", s2[16] = "0123456789abcdeg";
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(crypto_scrypt("secret", s1, 16, 1024, 8, 1, a, &err), 0);
    assert_int_equal(crypto_scrypt("secret", s2, 16, 1024, 8, 1, b, &err), 0);
    assert_int_equal(crypto_scrypt("secreT", s1, 16, 1024, 8, 1, c, &err), 0);
    assert_memory_not_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
}

static void scrypt_rejects_an_n_that_is_not_a_power_of_two(void **state)
{
    unsigned char out[32];
    const unsigned char salt[4] = "salt";
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(crypto_scrypt("secret", salt, 4, 1000, 8, 1, out, &err), -1);
    assert_err(&err, SM_E_CORRUPT, "scrypt key derivation failed (N=1000 r=8 p=1)");
}

/* ---- SHA-256 ---- */

static void sha256_matches_the_fips_vector(void **state)
{
    char hex[65];
    (void)state;

    crypto_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void sha256_incremental_equals_one_shot(void **state)
{
    unsigned char *p = th_random(100000, 3), one[32], inc[32];
    sha256_ctx *s = sha256_new();
    size_t off = 0, step = 1;
    (void)state;

    crypto_sha256(p, 100000, one);
    while (off < 100000) {
        size_t n = 100000 - off < step ? 100000 - off : step;
        sha256_update(s, p + off, n);
        sha256_update(s, p, 0); /* empty updates change nothing */
        off += n;
        step = step * 3 + 1;
    }
    sha256_final(s, inc);
    assert_memory_equal(one, inc, 32);
    sha256_free(s);
    free(p);
}

static void sha256_final_starts_a_new_hash(void **state)
{
    unsigned char a[32], b[32];
    sha256_ctx *s = sha256_new();
    (void)state;

    sha256_update(s, "first", 5);
    sha256_final(s, a);
    sha256_update(s, "abc", 3);
    sha256_final(s, b);
    crypto_sha256("abc", 3, a);
    assert_memory_equal(a, b, 32);
    sha256_free(s);
}

static void sha256_reset_discards_earlier_input(void **state)
{
    unsigned char a[32], b[32];
    sha256_ctx *s = sha256_new();
    (void)state;

    sha256_update(s, "junk", 4);
    sha256_reset(s);
    sha256_update(s, "abc", 3);
    sha256_final(s, b);
    crypto_sha256("abc", 3, a);
    assert_memory_equal(a, b, 32);
    sha256_free(s);
    sha256_free(NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(seal_then_open_gives_the_plaintext_back),
        T(seal_appends_to_the_buffer),
        T(seal_to_writes_into_a_caller_buffer),
        T(sealing_twice_uses_a_fresh_nonce),
        T(open_fails_the_mac_check_after_a_flipped_nonce_bit),
        T(open_fails_the_mac_check_after_a_flipped_ciphertext_bit),
        T(open_fails_the_mac_check_after_a_flipped_tag_bit),
        T(open_with_another_key_fails_the_mac_check),
        T(open_of_truncated_data_fails),
        T(open_respects_the_output_limit),
        T(seal_with_and_open_with_roundtrip_under_aad),
        T(open_with_a_different_aad_fails_the_mac_check),
        T(seal_with_key_and_context_key_are_interchangeable_without_aad),
        T(crypto_id_is_hmac_sha256_under_the_mac_key),
        T(crypto_id_is_stable_across_calls),
        T(crypto_id_differs_between_mac_keys),
        T(blob_id_hex_and_parse_roundtrip),
        T(blob_id_parse_rejects_bad_text),
        T(scrypt_matches_the_rfc7914_vector),
        T(scrypt_is_deterministic_for_the_same_salt),
        T(scrypt_differs_with_salt_and_secret),
        T(scrypt_rejects_an_n_that_is_not_a_power_of_two),
        T(sha256_matches_the_fips_vector),
        T(sha256_incremental_equals_one_shot),
        T(sha256_final_starts_a_new_hash),
        T(sha256_reset_discards_earlier_input),
    };
    return cmocka_run_group_tests_name("repo_crypto", tests, NULL, NULL);
}
