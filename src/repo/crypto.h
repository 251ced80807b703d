/* The repository's cryptography, all from OpenSSL: blob ids are
 * HMAC-SHA-256 of the plaintext under the repository's MAC key; blobs and
 * files are sealed with AES-256-GCM under a fresh random 96-bit nonce.
 *
 *   crypto_ctx *cc = crypto_ctx_new(&keys);      // one per thread
 *   blob_id id;
 *   crypto_id(cc, data, len, &id);
 *   crypto_seal(cc, data, len, &sealed, &err);   // nonce | ciphertext | tag
 *   crypto_open(cc, sealed.data, sealed.len, &plain, &err);  // SM_E_CORRUPT on a bad tag
 *   crypto_ctx_free(cc);
 */
#ifndef SM_REPO_CRYPTO_H
#define SM_REPO_CRYPTO_H

#include "core/buf.h"
#include "core/err.h"

#include <stddef.h>
#include <stdint.h>

#define BLOB_ID_LEN 32
#define CRYPTO_NONCE_LEN 12
#define CRYPTO_TAG_LEN 16
#define CRYPTO_OVERHEAD (CRYPTO_NONCE_LEN + CRYPTO_TAG_LEN)

typedef struct blob_id {
    unsigned char b[BLOB_ID_LEN];
} blob_id;

/* The master key material, random at repository creation. */
typedef struct repo_keys {
    unsigned char enc[32];     /* AES-256-GCM key for blobs and files */
    unsigned char mac[32];     /* HMAC-SHA-256 key for blob ids */
    unsigned char chunker[32]; /* seeds the chunker's gear table */
} repo_keys;

typedef struct crypto_ctx crypto_ctx;

/* A context for one thread; keys are copied. */
crypto_ctx *crypto_ctx_new(const repo_keys *keys);
void crypto_ctx_free(crypto_ctx *cc);

void crypto_id(crypto_ctx *cc, const void *p, size_t n, blob_id *out);
/* Appends nonce | ciphertext | tag to out. */
int crypto_seal(crypto_ctx *cc, const void *p, size_t n, sm_buf *out, sm_err *err);
/* Seals into a caller buffer of at least n + CRYPTO_OVERHEAD bytes. */
int crypto_seal_to(crypto_ctx *cc, const void *p, size_t n, unsigned char *dst, sm_err *err);
/* Appends the plaintext of a sealed message to out; SM_E_CORRUPT when the
 * tag does not verify ("failed its MAC check"). */
int crypto_open(crypto_ctx *cc, const void *p, size_t n, sm_buf *out, sm_err *err);

/* Seal/open with an explicit key (for key files). aad may be NULL. */
int crypto_seal_with(const unsigned char key[32], const void *aad, size_t aadlen, const void *p,
                     size_t n, sm_buf *out, sm_err *err);
int crypto_open_with(const unsigned char key[32], const void *aad, size_t aadlen, const void *p,
                     size_t n, sm_buf *out, sm_err *err);

/* scrypt (EVP_KDF "SCRYPT") of secret into 32 bytes. */
int crypto_scrypt(const char *secret, const unsigned char *salt, size_t saltlen, uint64_t n,
                  uint32_t r, uint32_t p, unsigned char out[32], sm_err *err);

/* One-shot SHA-256. */
void crypto_sha256(const void *p, size_t n, unsigned char out[32]);
void crypto_sha256_hex(const void *p, size_t n, char out[65]);

/* Incremental SHA-256 (owns an EVP_MD_CTX). */
typedef struct sha256_ctx sha256_ctx;
sha256_ctx *sha256_new(void);
void sha256_reset(sha256_ctx *s);
void sha256_update(sha256_ctx *s, const void *p, size_t n);
void sha256_final(sha256_ctx *s, unsigned char out[32]);
void sha256_free(sha256_ctx *s);

/* Hex helpers for ids. */
void blob_id_hex(const blob_id *id, char out[65]);
int blob_id_parse(blob_id *id, const char *hex);
int blob_id_eq(const blob_id *a, const blob_id *b);

#endif
