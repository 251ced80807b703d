#include "service/auth.h"

#include "core/buf.h"
#include "core/mem.h"
#include "core/util.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Tokens longer than this are refused before any decoding (Supabase tokens
 * are a few hundred bytes). */
#define AUTH_TOKEN_MAX 8192

#define AUTH_USAGE "send 'Authorization: Bearer <JWT>'"
#define MSG_BAD_SIG "token signature does not verify (wrong JWT_SECRET?)"
#define MSG_MALFORMED "token is malformed: expected three base64url parts separated by dots"

#define DL_KEY_LABEL "supamanager download links v1"

static int secret_check(const char *secret, sm_err *err)
{
    if (!secret || !*secret) {
        sm_err_set(err, SM_E_INTERNAL, "JWT_SECRET is not set");
        return sm_err_hint(err, "Set JWT_SECRET to the secret of the Supabase installation.");
    }
    return 0;
}

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url (p, n) into out. Returns 0 or -1. */
static int b64url_decode(sm_buf *out, const char *p, size_t n)
{
    uint32_t acc = 0;
    int bits = 0;

    sm_buf_reset(out);
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)p[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sm_buf_putc(out, (int)((acc >> bits) & 0xff));
        }
    }
    if (!out->data)
        sm_buf_put(out, "", 0);
    return 0;
}

static json_t *b64url_json(const char *p, size_t n)
{
    sm_buf raw = SM_BUF_INIT;
    json_t *doc = NULL;

    if (b64url_decode(&raw, p, n) == 0)
        doc = json_loadb((const char *)raw.data, raw.len, 0, NULL);
    sm_buf_release(&raw);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

/* A printable rendering of an untrusted algorithm name for messages. */
static void alg_name(char *out, size_t cap, const char *alg)
{
    size_t i;

    if (!alg) {
        snprintf(out, cap, "(missing)");
        return;
    }
    for (i = 0; alg[i] && i + 1 < cap && i < 16; i++) {
        unsigned char c = (unsigned char)alg[i];
        out[i] = (c >= 0x21 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    out[i] = '\0';
}

/* HMAC-SHA-256 of "header.payload" under the secret, compared in constant
 * time with the decoded signature: libjwt 1.10 compares with strcmp. */
static int hs256_matches(const char *secret, const char *token, size_t signed_len, const char *sig,
                         size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    sm_buf got = SM_BUF_INIT;
    int ok = 0;

    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)token, signed_len,
              mac, &mac_len))
        goto out;
    if (b64url_decode(&got, sig, sig_len) < 0 || got.len != mac_len)
        goto out;
    ok = CRYPTO_memcmp(mac, got.data, mac_len) == 0;
out:
    sm_buf_release(&got);
    sm_wipe(mac, sizeof(mac));
    return ok;
}

/* A NumericDate claim: 0 with *v set, 1 if absent, -1 if not a number. */
static int grant_time(jwt_t *jwt, const char *name, time_t *v)
{
    char *txt = jwt_get_grants_json(jwt, name);
    json_t *num;
    int rc = -1;

    if (!txt)
        return 1;
    num = json_loads(txt, JSON_DECODE_ANY, NULL);
    free(txt);
    if (num && json_is_number(num)) {
        double d = json_number_value(num);
        if (d > -1e15 && d < 1e15) {
            *v = (time_t)d;
            rc = 0;
        }
    }
    json_decref(num);
    return rc;
}

static int claims_check(jwt_t *jwt, time_t now, auth_identity *id, sm_err *err)
{
    const char *role, *sub;
    time_t exp = 0, nbf = 0;
    char when[32];
    int r;

    r = grant_time(jwt, "exp", &exp);
    if (r == 1)
        return sm_err_set(err, SM_E_AUTH, "token has no expiry (exp)");
    if (r < 0)
        return sm_err_set(err, SM_E_AUTH, "token claim 'exp' is not a number");
    if (now >= exp) {
        sm_time_iso(when, sizeof(when), exp);
        return sm_err_set(err, SM_E_AUTH, "token expired at %s", when);
    }
    r = grant_time(jwt, "nbf", &nbf);
    if (r < 0)
        return sm_err_set(err, SM_E_AUTH, "token claim 'nbf' is not a number");
    if (r == 0 && now < nbf) {
        sm_time_iso(when, sizeof(when), nbf);
        return sm_err_set(err, SM_E_AUTH, "token not valid before %s", when);
    }
    role = jwt_get_grant(jwt, "role");
    if (!role || !*role)
        return sm_err_set(err, SM_E_AUTH, "token has no 'role' claim");
    if (strlen(role) >= sizeof(id->role))
        return sm_err_set(err, SM_E_AUTH, "token claim 'role' is too long");
    id->service = !strcmp(role, "service_role");
    if (!id->service) {
        sub = jwt_get_grant(jwt, "sub");
        if (!sub || !*sub)
            return sm_err_set(err, SM_E_AUTH, "token has no 'sub' claim (user id)");
        if (strlen(sub) >= sizeof(id->sub))
            return sm_err_set(err, SM_E_AUTH, "token claim 'sub' is too long");
        snprintf(id->sub, sizeof(id->sub), "%s", sub);
    }
    snprintf(id->role, sizeof(id->role), "%s", role);
    id->exp = exp;
    return 0;
}

int auth_verify(const char *header, const char *secret, time_t now, auth_identity *out, sm_err *err)
{
    const char *p, *tok, *dot1, *dot2;
    size_t len, scheme_len;
    char *token = NULL;
    json_t *head = NULL, *body = NULL;
    jwt_t *jwt = NULL;
    auth_identity id;
    const char *alg;
    char shown[24];
    int rc = -1;

    memset(&id, 0, sizeof(id));
    memset(out, 0, sizeof(*out));
    if (secret_check(secret, err) < 0)
        return -1;
    p = header ? header : "";
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return sm_err_set(err, SM_E_AUTH, "missing Authorization header: " AUTH_USAGE);
    scheme_len = strcspn(p, " \t");
    if (scheme_len != 6 || strncasecmp(p, "Bearer", 6) != 0)
        return sm_err_set(err, SM_E_AUTH,
                          "Authorization header is not a bearer token: " AUTH_USAGE);
    tok = p + scheme_len;
    while (*tok == ' ' || *tok == '\t')
        tok++;
    len = strlen(tok);
    while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    if (len == 0)
        return sm_err_set(err, SM_E_AUTH, "bearer token is empty: " AUTH_USAGE);
    if (len > AUTH_TOKEN_MAX)
        return sm_err_set(err, SM_E_AUTH, "token is malformed: longer than %d bytes",
                          AUTH_TOKEN_MAX);
    token = sm_xstrndup(tok, len);

    /* Our own look at the structure first, so that every failure gets its
     * own message (libjwt answers EINVAL for all of them). */
    dot1 = strchr(token, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.') || dot1 == token || dot2 == dot1 + 1) {
        sm_err_set(err, SM_E_AUTH, MSG_MALFORMED);
        goto out;
    }
    head = b64url_json(token, (size_t)(dot1 - token));
    if (!head) {
        sm_err_set(err, SM_E_AUTH, "token is malformed: its header is not base64url JSON");
        goto out;
    }
    body = b64url_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!body) {
        sm_err_set(err, SM_E_AUTH, "token is malformed: its payload is not base64url JSON");
        goto out;
    }
    alg = json_string_value(json_object_get(head, "alg"));
    if (!alg || strcmp(alg, "HS256") != 0) {
        alg_name(shown, sizeof(shown), alg);
        sm_err_set(err, SM_E_AUTH,
                   "token algorithm '%s' is not accepted: tokens must be signed with HS256", shown);
        goto out;
    }
    if (!hs256_matches(secret, token, (size_t)(dot2 - token), dot2 + 1, strlen(dot2 + 1))) {
        sm_err_set(err, SM_E_AUTH, MSG_BAD_SIG);
        goto out;
    }
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 || !jwt) {
        sm_err_set(err, SM_E_AUTH, "token is malformed: it does not decode as a JWT");
        goto out;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        sm_err_set(err, SM_E_AUTH,
                   "token algorithm '%s' is not accepted: tokens must be "
                   "signed with HS256",
                   jwt_alg_str(jwt_get_alg(jwt)));
        goto out;
    }
    if (claims_check(jwt, now, &id, err) < 0)
        goto out;
    *out = id;
    rc = 0;
out:
    jwt_free(jwt);
    json_decref(head);
    json_decref(body);
    if (token) {
        sm_wipe(token, len);
        free(token);
    }
    return rc;
}

int auth_project_right(catalog *c, const auth_identity *id, const project *p, auth_right *out,
                       sm_err *err)
{
    const char *role = NULL;

    *out = AUTH_NONE;
    if (id->service) {
        *out = AUTH_MANAGE;
        return 0;
    }
    if (!id->sub[0])
        return 0;
    if (p->owner && !strcmp(p->owner, id->sub)) {
        *out = AUTH_MANAGE;
        return 0;
    }
    if (!p->org_id || !*p->org_id)
        return 0;
    if (catalog_member_role(c, p->org_id, id->sub, &role, err) < 0)
        return -1;
    if (role && !strcmp(role, "admin"))
        *out = AUTH_MANAGE;
    else if (role && !strcmp(role, "member"))
        *out = AUTH_VIEW;
    return 0;
}

char *auth_sign(const char *secret, const char *role, const char *sub, time_t now, long ttl,
                sm_err *err)
{
    jwt_t *jwt = NULL;
    char *tok = NULL, *out = NULL;

    if (secret_check(secret, err) < 0)
        return NULL;
    if (!role || !*role) {
        sm_err_set(err, SM_E_INVALID, "cannot sign a token without a role");
        return NULL;
    }
    if (ttl <= 0) {
        sm_err_set(err, SM_E_INVALID, "token lifetime must be positive (got %ld s)", ttl);
        return NULL;
    }
    if (jwt_new(&jwt) != 0 || !jwt) {
        sm_err_set(err, SM_E_INTERNAL, "cannot create a JWT");
        return NULL;
    }
    if (jwt_add_grant(jwt, "iss", "supamanager") != 0 || jwt_add_grant(jwt, "role", role) != 0 ||
        (sub && jwt_add_grant(jwt, "sub", sub) != 0) ||
        jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)now + ttl) != 0) {
        sm_err_set(err, SM_E_INTERNAL, "cannot add the claims to the JWT");
        goto out;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0) {
        sm_err_set(err, SM_E_INTERNAL, "cannot set the JWT algorithm to HS256");
        goto out;
    }
    tok = jwt_encode_str(jwt);
    if (!tok) {
        sm_err_set(err, SM_E_INTERNAL, "cannot encode the JWT");
        goto out;
    }
    out = sm_xstrdup(tok);
    free(tok);
out:
    jwt_free(jwt);
    return out;
}

/* hex HMAC-SHA-256(HMAC-SHA-256(secret, label), "project|backup|expires")
 * into hex (65 bytes). Returns 0 or -1. */
static int download_mac(char hex[65], const char *secret, const char *project_id,
                        const char *backup_id, const char *expires)
{
    unsigned char key[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
    unsigned int key_len = 0, mac_len = 0;
    char *msg = NULL;
    int rc = -1;

    if (!secret || !project_id || !backup_id || strchr(project_id, '|') || strchr(backup_id, '|'))
        return -1;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)DL_KEY_LABEL,
              strlen(DL_KEY_LABEL), key, &key_len))
        goto out;
    msg = sm_xasprintf("%s|%s|%s", project_id, backup_id, expires);
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), mac,
              &mac_len) ||
        mac_len != 32)
        goto out;
    sm_hex(hex, mac, 32);
    rc = 0;
out:
    free(msg);
    sm_wipe(key, sizeof(key));
    return rc;
}

char *download_sign(const char *secret, const char *project_id, const char *backup_id,
                    time_t expires)
{
    char hex[65], exp_txt[32];

    snprintf(exp_txt, sizeof(exp_txt), "%lld", (long long)expires);
    if (download_mac(hex, secret, project_id, backup_id, exp_txt) < 0)
        return NULL;
    return sm_xstrdup(hex);
}

int download_check(const char *secret, const char *project_id, const char *backup_id,
                   const char *expires, const char *sig, time_t now, sm_err *err)
{
    char want[65], when[32];
    uint64_t exp = 0;

    if (secret_check(secret, err) < 0)
        return -1;
    if (!expires || sm_parse_u64(expires, (uint64_t)INT64_MAX, &exp) < 0)
        return sm_err_set(err, SM_E_FORBIDDEN, "download link expiry is not a decimal unix time");
    /* The signature first: a tampered expiry must not be told apart. */
    if (!sig || strlen(sig) != 64 ||
        download_mac(want, secret, project_id, backup_id, expires) < 0 ||
        CRYPTO_memcmp(want, sig, 64) != 0)
        return sm_err_set(err, SM_E_FORBIDDEN, "download link signature does not match");
    if ((uint64_t)now >= exp) {
        sm_time_iso(when, sizeof(when), (time_t)exp);
        return sm_err_set(err, SM_E_FORBIDDEN, "download link expired at %s", when);
    }
    return 0;
}
