/* Key files: the random master key wrapped under a key derived from a
 * secret with scrypt. Several key files may wrap the same master key, so a
 * secret can be changed (or several secrets used) without rewriting data. */
#include "repo/repo.intern.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

#define KEY_AAD "supamanager-key-v1"
#define KEY_SCRYPT_N 32768u
#define KEY_SCRYPT_R 8u
#define KEY_SCRYPT_P 1u
#define KEY_FILE_MAX (64u * 1024)

/* The checksum covers what the KDF and the cipher read, so a damaged file
 * is told apart from a wrong secret (both would fail the GCM tag). */
static void key_checksum(const char *salt_b64, const char *data_b64, uint64_t n, uint32_t r,
                         uint32_t p, char out[65])
{
    char *s = sm_xasprintf("%s|%s|%llu|%u|%u", salt_b64, data_b64, (unsigned long long)n, r, p);
    crypto_sha256_hex(s, strlen(s), out);
    free(s);
}

int key_write(store *st, const char *secret, const repo_keys *keys, char **key_name, sm_err *err)
{
    unsigned char salt[16], kek[32];
    sm_buf sealed = SM_BUF_INIT;
    char *salt_b64 = NULL, *data_b64 = NULL, *text = NULL, *id = NULL, *name = NULL;
    char sum[65], created[32];
    json_t *doc = NULL;
    int rc = -1;

    if (!secret || !*secret) {
        sm_err_set(err, SM_E_BADKEY, "the new secret is empty");
        goto out;
    }
    sm_random(salt, sizeof(salt));
    if (crypto_scrypt(secret, salt, sizeof(salt), KEY_SCRYPT_N, KEY_SCRYPT_R, KEY_SCRYPT_P, kek,
                      err) < 0)
        goto out;
    if (crypto_seal_with(kek, KEY_AAD, strlen(KEY_AAD), keys, sizeof(*keys), &sealed, err) < 0)
        goto out;
    salt_b64 = sm_b64_encode(salt, sizeof(salt));
    data_b64 = sm_b64_encode(sealed.data, sealed.len);
    key_checksum(salt_b64, data_b64, KEY_SCRYPT_N, KEY_SCRYPT_R, KEY_SCRYPT_P, sum);
    sm_time_iso(created, sizeof(created), sm_now());
    doc = json_pack("{s:i,s:s,s:s,s:s,s:I,s:i,s:i,s:s,s:s,s:s}", "version", 1, "created", created,
                    "hostname", sm_hostname(), "kdf", "scrypt", "n", (json_int_t)KEY_SCRYPT_N, "r",
                    (int)KEY_SCRYPT_R, "p", (int)KEY_SCRYPT_P, "salt", salt_b64, "data", data_b64,
                    "checksum", sum);
    text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    id = sm_random_hex(16);
    name = sm_xasprintf("keys/%s", id);
    if (store_put(st, name, text, strlen(text), err) < 0)
        goto out;
    if (key_name) {
        *key_name = name;
        name = NULL;
    }
    rc = 0;
out:
    sm_wipe(kek, sizeof(kek));
    sm_buf_release(&sealed);
    json_decref(doc);
    free(salt_b64);
    free(data_b64);
    free(text);
    free(id);
    free(name);
    return rc;
}

/* 0: unlocked; 1: wrong secret; -1: damaged or I/O (err set). */
static int key_try(store *st, const char *name, const char *secret, repo_keys *out, sm_err *err)
{
    sm_buf raw = SM_BUF_INIT, salt = SM_BUF_INIT, data = SM_BUF_INIT, plain = SM_BUF_INIT;
    json_t *doc = NULL;
    json_error_t je;
    const char *salt_b64, *data_b64, *sum, *kdf;
    json_int_t n = 0, r = 0, p = 0;
    unsigned char kek[32];
    char want[65];
    int rc = -1;

    if (store_get(st, name, 0, 0, &raw, err) < 0)
        goto out;
    if (raw.len > KEY_FILE_MAX) {
        sm_err_set(err, SM_E_CORRUPT, "key file '%s' is damaged: too large", name);
        goto out;
    }
    doc = json_loadb((const char *)raw.data, raw.len, 0, &je);
    if (!doc || json_unpack(doc, "{s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "kdf", &kdf, "n", &n, "r", &r,
                            "p", &p, "salt", &salt_b64, "data", &data_b64, "checksum", &sum) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "key file '%s' is damaged: %s", name,
                   doc ? "fields are missing" : je.text);
        goto out;
    }
    if (strcmp(kdf, "scrypt") != 0 || n < 1024 || n > (1 << 22) || r < 1 || r > 64 || p < 1 ||
        p > 16) {
        sm_err_set(err, SM_E_CORRUPT, "key file '%s' is damaged: unsupported KDF parameters",
                   name);
        goto out;
    }
    key_checksum(salt_b64, data_b64, (uint64_t)n, (uint32_t)r, (uint32_t)p, want);
    if (strcmp(want, sum) != 0) {
        sm_err_set(err, SM_E_CORRUPT, "key file '%s' is damaged: checksum mismatch", name);
        goto out;
    }
    if (sm_b64_decode(&salt, salt_b64, err) < 0 || sm_b64_decode(&data, data_b64, err) < 0) {
        sm_err_prefix(err, "key file '%s' is damaged", name);
        goto out;
    }
    if (crypto_scrypt(secret, salt.data, salt.len, (uint64_t)n, (uint32_t)r, (uint32_t)p, kek,
                      err) < 0)
        goto out;
    if (crypto_open_with(kek, KEY_AAD, strlen(KEY_AAD), data.data, data.len, &plain, NULL) < 0) {
        rc = 1;
        goto out;
    }
    if (plain.len != sizeof(*out)) {
        sm_err_set(err, SM_E_CORRUPT, "key file '%s' is damaged: wrong key length", name);
        goto out;
    }
    memcpy(out, plain.data, sizeof(*out));
    rc = 0;
out:
    sm_wipe(kek, sizeof(kek));
    if (plain.data)
        sm_wipe(plain.data, plain.len);
    sm_buf_release(&plain);
    sm_buf_release(&raw);
    sm_buf_release(&salt);
    sm_buf_release(&data);
    json_decref(doc);
    return rc;
}

typedef struct key_names {
    char **v;
    size_t n, cap;
} key_names;

static int collect_key(const char *key, uint64_t size, void *ud, sm_err *err)
{
    key_names *kn = ud;
    (void)size;
    (void)err;
    SM_GROW(kn->v, kn->cap, kn->n + 1);
    kn->v[kn->n++] = sm_xstrdup(key);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void key_names_free(key_names *kn)
{
    for (size_t i = 0; i < kn->n; i++)
        free(kn->v[i]);
    free(kn->v);
}

int key_unlock(store *st, const char *secret, repo_keys *out, char **key_name, sm_err *err)
{
    key_names kn = {0};
    sm_err first_damage = SM_ERR_INIT;
    unsigned wrong = 0, damaged = 0;
    int rc = -1;

    if (!secret || !*secret) {
        sm_err_set(err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
        return sm_err_hint(err, "Set ENCRYPTION_SECRET to the secret the repository at '%s' was "
                                "created with.",
                           store_location(st));
    }
    if (store_list(st, "keys/", collect_key, &kn, err) < 0)
        goto out;
    if (kn.n > 1)
        qsort(kn.v, kn.n, sizeof(*kn.v), cmp_str);
    if (kn.n == 0) {
        sm_err_set(err, SM_E_CORRUPT, "repository '%s' has no key files", store_location(st));
        sm_err_hint(err, "Restore its keys/ folder from a copy; without a key nothing in it can "
                         "be read.");
        goto out;
    }
    for (size_t i = 0; i < kn.n; i++) {
        sm_err e = SM_ERR_INIT;
        int r = key_try(st, kn.v[i], secret, out, &e);
        if (r == 0) {
            *key_name = kn.v[i];
            kn.v[i] = NULL;
            rc = 0;
            goto out;
        }
        if (r == 1) {
            wrong++;
        } else {
            if (e.code != SM_E_CORRUPT) {
                sm_err_copy(err, &e);
                goto out;
            }
            if (!damaged++)
                sm_err_copy(&first_damage, &e);
            sm_log(SM_LOG_WARN, "%s", e.msg);
        }
    }
    if (wrong > 0) {
        sm_err_set(err, SM_E_BADKEY, "wrong ENCRYPTION_SECRET for repository '%s'",
                   store_location(st));
        sm_err_hint(err, "Set ENCRYPTION_SECRET to the secret the repository was created with (it "
                         "opens none of its %u key%s).",
                    wrong, wrong == 1 ? "" : "s");
    } else {
        sm_err_copy(err, &first_damage);
        sm_err_prefix(err, "cannot unlock repository '%s'", store_location(st));
        sm_err_hint(err, "Restore the key file from a copy, or use the secret of another key.");
    }
out:
    key_names_free(&kn);
    return rc;
}

int repo_key_add(repo *r, const char *new_secret, char **key_id, sm_err *err)
{
    char *name = NULL;

    if (key_write(r->st, new_secret, &r->keys, &name, err) < 0)
        return -1;
    if (key_id)
        *key_id = sm_xstrdup(name + 5);
    free(name);
    return 0;
}

int repo_key_change(repo *r, const char *new_secret, sm_err *err)
{
    char *name = NULL;

    /* the new key is durable before the old one goes: a crash leaves both */
    if (key_write(r->st, new_secret, &r->keys, &name, err) < 0)
        return -1;
    if (store_delete(r->st, r->key_name, err) < 0) {
        free(name);
        return -1;
    }
    free(r->key_name);
    r->key_name = name;
    return 0;
}

int repo_key_remove(repo *r, const char *id, sm_err *err)
{
    key_names kn = {0};
    const char *match = NULL;
    size_t idlen = strlen(id);
    int rc = -1;

    if (store_list(r->st, "keys/", collect_key, &kn, err) < 0)
        goto out;
    for (size_t i = 0; i < kn.n; i++) {
        if (idlen >= 4 && !strncmp(kn.v[i] + 5, id, idlen)) {
            if (match) {
                sm_err_set(err, SM_E_INVALID, "key id '%s' is ambiguous", id);
                goto out;
            }
            match = kn.v[i];
        }
    }
    if (!match) {
        sm_err_set(err, SM_E_NOTFOUND, "no key '%s' in repository '%s'", id,
                   store_location(r->st));
        goto out;
    }
    if (!strcmp(match, r->key_name)) {
        sm_err_set(err, SM_E_INVALID, "key '%s' is the one in use", id);
        sm_err_hint(err, "Open the repository with another key's secret to remove this one.");
        goto out;
    }
    rc = store_delete(r->st, match, err);
out:
    key_names_free(&kn);
    return rc;
}

int repo_key_list(repo *r, json_t **out, sm_err *err)
{
    key_names kn = {0};
    json_t *arr = json_array();
    int rc = -1;

    if (store_list(r->st, "keys/", collect_key, &kn, err) < 0)
        goto out;
    if (kn.n > 1)
        qsort(kn.v, kn.n, sizeof(*kn.v), cmp_str);
    for (size_t i = 0; i < kn.n; i++) {
        sm_buf raw = SM_BUF_INIT;
        json_t *doc = NULL, *o;
        if (store_get(r->st, kn.v[i], 0, 0, &raw, NULL) == 0)
            doc = json_loadb((const char *)raw.data, raw.len, 0, NULL);
        o = json_pack("{s:s,s:b}", "id", kn.v[i] + 5, "current", !strcmp(kn.v[i], r->key_name));
        if (doc) {
            json_object_set(o, "created", json_object_get(doc, "created"));
            json_object_set(o, "hostname", json_object_get(doc, "hostname"));
        } else {
            json_object_set_new(o, "damaged", json_true());
        }
        json_array_append_new(arr, o);
        json_decref(doc);
        sm_buf_release(&raw);
    }
    *out = arr;
    arr = NULL;
    rc = 0;
out:
    json_decref(arr);
    key_names_free(&kn);
    return rc;
}
