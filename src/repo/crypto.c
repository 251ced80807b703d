#include "repo/crypto.h"

#include "core/mem.h"
#include "core/util.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

struct crypto_ctx {
    repo_keys keys;
    EVP_CIPHER *aes;
    EVP_CIPHER_CTX *cctx;
    EVP_MAC *hmac;
    EVP_MAC_CTX *mctx;
};

crypto_ctx *crypto_ctx_new(const repo_keys *keys)
{
    crypto_ctx *cc = sm_xcalloc(1, sizeof(*cc));
    OSSL_PARAM params[2];

    memcpy(&cc->keys, keys, sizeof(*keys));
    cc->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    cc->cctx = EVP_CIPHER_CTX_new();
    cc->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    cc->mctx = cc->hmac ? EVP_MAC_CTX_new(cc->hmac) : NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!cc->aes || !cc->cctx || !cc->mctx ||
        !EVP_MAC_init(cc->mctx, cc->keys.mac, sizeof(cc->keys.mac), params)) {
        fprintf(stderr, "supamanager: fatal: OpenSSL lacks AES-256-GCM or HMAC-SHA-256\n");
        abort();
    }
    return cc;
}

void crypto_ctx_free(crypto_ctx *cc)
{
    if (!cc)
        return;
    EVP_MAC_CTX_free(cc->mctx);
    EVP_MAC_free(cc->hmac);
    EVP_CIPHER_CTX_free(cc->cctx);
    EVP_CIPHER_free(cc->aes);
    sm_wipe(&cc->keys, sizeof(cc->keys));
    free(cc);
}

void crypto_id(crypto_ctx *cc, const void *p, size_t n, blob_id *out)
{
    size_t outlen = 0;

    /* a NULL key re-initialises with the key already set */
    if (!EVP_MAC_init(cc->mctx, NULL, 0, NULL) || !EVP_MAC_update(cc->mctx, p, n) ||
        !EVP_MAC_final(cc->mctx, out->b, &outlen, sizeof(out->b)) || outlen != BLOB_ID_LEN) {
        fprintf(stderr, "supamanager: fatal: HMAC-SHA-256 failed\n");
        abort();
    }
}

static int seal_raw(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *aes, const unsigned char *key,
                    const void *aad, size_t aadlen, const void *p, size_t n, unsigned char *dst,
                    sm_err *err)
{
    unsigned char *nonce = dst, *ct = dst + CRYPTO_NONCE_LEN, *tag = ct + n;
    int len = 0, fin = 0;

    if (n > INT32_MAX)
        return sm_err_set(err, SM_E_LIMIT, "cannot encrypt %zu bytes at once", n);
    sm_random(nonce, CRYPTO_NONCE_LEN);
    if (!EVP_EncryptInit_ex2(ctx, aes, key, nonce, NULL) ||
        (aadlen && !EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen)) ||
        !EVP_EncryptUpdate(ctx, ct, &len, p, (int)n) || !EVP_EncryptFinal_ex(ctx, ct + len, &fin) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN, tag))
        return sm_err_set(err, SM_E_INTERNAL, "AES-256-GCM encryption failed");
    return 0;
}

static int open_raw(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *aes, const unsigned char *key,
                    const void *aad, size_t aadlen, const void *p, size_t n, sm_buf *out,
                    sm_err *err)
{
    const unsigned char *nonce = p, *ct = nonce + CRYPTO_NONCE_LEN;
    size_t ctlen;
    int len = 0, fin = 0;

    if (n < CRYPTO_OVERHEAD)
        return sm_err_set(err, SM_E_CORRUPT, "encrypted data is too short (%zu bytes)", n);
    ctlen = n - CRYPTO_OVERHEAD;
    if (ctlen > INT32_MAX)
        return sm_err_set(err, SM_E_LIMIT, "cannot decrypt %zu bytes at once", ctlen);
    if (sm_buf_grow(out, ctlen, err) < 0)
        return -1;
    if (!EVP_DecryptInit_ex2(ctx, aes, key, nonce, NULL) ||
        (aadlen && !EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen)) ||
        !EVP_DecryptUpdate(ctx, out->data + out->len, &len, ct, (int)ctlen) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN,
                             (void *)(ct + ctlen))) {
        ERR_clear_error();
        return sm_err_set(err, SM_E_CORRUPT, "decryption failed");
    }
    if (EVP_DecryptFinal_ex(ctx, out->data + out->len + len, &fin) != 1) {
        ERR_clear_error();
        out->data[out->len] = '\0';
        return sm_err_set(err, SM_E_CORRUPT, "data failed its MAC check");
    }
    out->len += (size_t)len + (size_t)fin;
    out->data[out->len] = '\0';
    return 0;
}

int crypto_seal_to(crypto_ctx *cc, const void *p, size_t n, unsigned char *dst, sm_err *err)
{
    return seal_raw(cc->cctx, cc->aes, cc->keys.enc, NULL, 0, p, n, dst, err);
}

int crypto_seal(crypto_ctx *cc, const void *p, size_t n, sm_buf *out, sm_err *err)
{
    if (sm_buf_grow(out, n + CRYPTO_OVERHEAD, err) < 0)
        return -1;
    if (crypto_seal_to(cc, p, n, out->data + out->len, err) < 0)
        return -1;
    out->len += n + CRYPTO_OVERHEAD;
    out->data[out->len] = '\0';
    return 0;
}

int crypto_open(crypto_ctx *cc, const void *p, size_t n, sm_buf *out, sm_err *err)
{
    return open_raw(cc->cctx, cc->aes, cc->keys.enc, NULL, 0, p, n, out, err);
}

int crypto_seal_with(const unsigned char key[32], const void *aad, size_t aadlen, const void *p,
                     size_t n, sm_buf *out, sm_err *err)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_CIPHER *aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    int rc = -1;

    if (!ctx || !aes) {
        sm_err_set(err, SM_E_INTERNAL, "OpenSSL lacks AES-256-GCM");
        goto out;
    }
    if (sm_buf_grow(out, n + CRYPTO_OVERHEAD, err) < 0)
        goto out;
    if (seal_raw(ctx, aes, key, aad, aadlen, p, n, out->data + out->len, err) < 0)
        goto out;
    out->len += n + CRYPTO_OVERHEAD;
    out->data[out->len] = '\0';
    rc = 0;
out:
    EVP_CIPHER_free(aes);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int crypto_open_with(const unsigned char key[32], const void *aad, size_t aadlen, const void *p,
                     size_t n, sm_buf *out, sm_err *err)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_CIPHER *aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    int rc = -1;

    if (!ctx || !aes)
        sm_err_set(err, SM_E_INTERNAL, "OpenSSL lacks AES-256-GCM");
    else
        rc = open_raw(ctx, aes, key, aad, aadlen, p, n, out, err);
    EVP_CIPHER_free(aes);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int crypto_scrypt(const char *secret, const unsigned char *salt, size_t saltlen, uint64_t n,
                  uint32_t r, uint32_t p, unsigned char out[32], sm_err *err)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[7], *q = params;
    uint64_t maxmem = 1024ull * 1024 * 1024;
    int rc = -1;

    if (!kctx) {
        sm_err_set(err, SM_E_INTERNAL, "OpenSSL lacks the scrypt KDF");
        goto out;
    }
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)secret,
                                             strlen(secret));
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
    *q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
    *q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
    *q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
    *q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
    *q = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, 32, params) != 1) {
        ERR_clear_error();
        sm_err_set(err, SM_E_CORRUPT, "scrypt key derivation failed (N=%llu r=%u p=%u)",
                   (unsigned long long)n, r, p);
        goto out;
    }
    rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

void crypto_sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL)) {
        fprintf(stderr, "supamanager: fatal: SHA-256 failed\n");
        abort();
    }
}

void crypto_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char d[32];
    crypto_sha256(p, n, d);
    sm_hex(out, d, 32);
}

struct sha256_ctx {
    EVP_MD_CTX *md;
};

sha256_ctx *sha256_new(void)
{
    sha256_ctx *s = sm_xcalloc(1, sizeof(*s));
    s->md = EVP_MD_CTX_new();
    if (!s->md || !EVP_DigestInit_ex(s->md, EVP_sha256(), NULL)) {
        fprintf(stderr, "supamanager: fatal: SHA-256 unavailable\n");
        abort();
    }
    return s;
}

void sha256_reset(sha256_ctx *s)
{
    EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
}

void sha256_update(sha256_ctx *s, const void *p, size_t n)
{
    if (n)
        EVP_DigestUpdate(s->md, p, n);
}

void sha256_final(sha256_ctx *s, unsigned char out[32])
{
    unsigned int len = 32;
    EVP_DigestFinal_ex(s->md, out, &len);
    EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
}

void sha256_free(sha256_ctx *s)
{
    if (!s)
        return;
    EVP_MD_CTX_free(s->md);
    free(s);
}

void blob_id_hex(const blob_id *id, char out[65])
{
    sm_hex(out, id->b, BLOB_ID_LEN);
}

int blob_id_parse(blob_id *id, const char *hex)
{
    return sm_unhex(id->b, hex, BLOB_ID_LEN);
}

int blob_id_eq(const blob_id *a, const blob_id *b)
{
    return memcmp(a->b, b->b, BLOB_ID_LEN) == 0;
}
