/* Authentication and authorization (src/service/auth.c): bearer tokens
 * (HS256 only, exp/nbf, role/sub), rights on projects from the catalog, and
 * signed download links. */
#include "../unit_helpers.h"

#include "catalog/catalog.h"
#include "core/util.h"
#include "service/auth.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SECRET "super-secret-jwt-token-with-at-least-32-characters-long"
#define NOW ((time_t)1800000000) /* 2027-01-15T08:00:00Z */
#define USAGE "send 'Authorization: Bearer <JWT>'"

/* ---- building tokens by hand ---- */

static char *b64url(const void *p, size_t n)
{
    char *s = sm_b64_encode(p, n);
    size_t o = 0;

    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '=')
            break;
        s[o++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    }
    s[o] = '\0';
    return s;
}

/* header.payload.signature with the given JSON texts; alg_md NULL leaves the
 * signature empty (alg "none"). */
static char *token_with(const char *header, const char *payload, const char *secret,
                        const EVP_MD *alg_md)
{
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    char *signing = sm_xasprintf("%s.%s", h, p);
    char *sig = sm_xstrdup(""), *tok;

    if (alg_md) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        HMAC(alg_md, secret, (int)strlen(secret), (const unsigned char *)signing, strlen(signing),
             mac, &len);
        free(sig);
        sig = b64url(mac, len);
    }
    tok = sm_xasprintf("%s.%s", signing, sig);
    free(h);
    free(p);
    free(signing);
    free(sig);
    return tok;
}

static char *hs256(const char *payload)
{
    return token_with("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET, EVP_sha256());
}

static char *bearer(const char *tok)
{
    return sm_xasprintf("Bearer %s", tok ? tok : "");
}

/* Verifies and expects failure with msg; the token never shows in it. */
static void expect_reject(const char *header, const char *msg)
{
    sm_err err = SM_ERR_INIT;
    auth_identity id;

    assert_int_equal(auth_verify(header, SECRET, NOW, &id, &err), -1);
    assert_err(&err, SM_E_AUTH, msg);
    if (header && strlen(header) > 7)
        assert_null(strstr(err.msg, header + 7));
    assert_int_equal(id.service, 0);
    assert_string_equal(id.sub, "");
}

static void expect_token_reject(const char *tok, const char *msg)
{
    char *h = bearer(tok);
    expect_reject(h, msg);
    free(h);
}

/* ---- accepted tokens ---- */

static void auth_accepts_a_signed_service_role_token(void **state)
{
    sm_err err = SM_ERR_INIT;
    auth_identity id;
    char *tok, *h;
    (void)state;

    tok = auth_sign(SECRET, "service_role", NULL, NOW, 3600, &err);
    assert_non_null(tok);
    h = bearer(tok);
    assert_int_equal(auth_verify(h, SECRET, NOW + 10, &id, &err), 0);
    assert_int_equal(id.service, 1);
    assert_string_equal(id.role, "service_role");
    assert_string_equal(id.sub, "");
    assert_int_equal(id.exp, NOW + 3600);
    free(h);
    free(tok);
}

static void auth_accepts_a_user_token_with_sub(void **state)
{
    sm_err err = SM_ERR_INIT;
    auth_identity id;
    char *tok, *h;
    (void)state;

    tok = auth_sign(SECRET, "authenticated", "user-1", NOW, 60, &err);
    assert_non_null(tok);
    h = sm_xasprintf("  bearer   %s  ", tok); /* scheme is case-insensitive */
    assert_int_equal(auth_verify(h, SECRET, NOW + 59, &id, &err), 0);
    assert_int_equal(id.service, 0);
    assert_string_equal(id.role, "authenticated");
    assert_string_equal(id.sub, "user-1");
    free(h);
    free(tok);
}

static void auth_accepts_a_supabase_style_token_made_with_libjwt(void **state)
{
    sm_err err = SM_ERR_INIT;
    auth_identity id;
    jwt_t *jwt = NULL;
    char *tok, *h;
    (void)state;

    assert_int_equal(jwt_new(&jwt), 0);
    jwt_add_grant(jwt, "iss", "supabase-demo");
    jwt_add_grant(jwt, "role", "authenticated");
    jwt_add_grant(jwt, "sub", "4c7d3b0e-1f5e-4c1a-9d7e-0a1b2c3d4e5f");
    jwt_add_grant_int(jwt, "iat", (long)NOW - 100);
    jwt_add_grant_int(jwt, "nbf", (long)NOW - 100);
    jwt_add_grant_int(jwt, "exp", (long)NOW + 100);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET));
    tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(tok);
    h = bearer(tok);
    assert_int_equal(auth_verify(h, SECRET, NOW, &id, &err), 0);
    assert_string_equal(id.sub, "4c7d3b0e-1f5e-4c1a-9d7e-0a1b2c3d4e5f");
    free(h);
    free(tok);
}

/* ---- rejected headers and tokens ---- */

static void auth_rejects_a_missing_header(void **state)
{
    (void)state;
    expect_reject(NULL, "missing Authorization header: " USAGE);
    expect_reject("", "missing Authorization header: " USAGE);
    expect_reject("   ", "missing Authorization header: " USAGE);
}

static void auth_rejects_other_schemes(void **state)
{
    (void)state;
    expect_reject("Basic dXNlcjpwYXNz", "Authorization header is not a bearer token: " USAGE);
    expect_reject("Bearerx.y.z", "Authorization header is not a bearer token: " USAGE);
    expect_reject("Token abc.def.ghi", "Authorization header is not a bearer token: " USAGE);
    expect_reject("Bearer", "bearer token is empty: " USAGE);
    expect_reject("Bearer    ", "bearer token is empty: " USAGE);
}

static void auth_rejects_garbage(void **state)
{
    (void)state;
    expect_token_reject("garbage", "token is malformed: expected three base64url parts "
                                   "separated by dots");
    expect_token_reject("a.b", "token is malformed: expected three base64url parts separated "
                               "by dots");
    expect_token_reject("a.b.c.d", "token is malformed: expected three base64url parts "
                                   "separated by dots");
    expect_token_reject("..sig", "token is malformed: expected three base64url parts "
                                 "separated by dots");
    expect_token_reject("!!!!.eyJhIjoxfQ.sig", "token is malformed: its header is not "
                                               "base64url JSON");
    expect_token_reject("eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig",
                        "token is malformed: its payload is not base64url JSON");
}

static void auth_rejects_an_expired_token(void **state)
{
    char *tok;
    (void)state;

    tok = hs256("{\"role\":\"service_role\",\"exp\":1799999990}");
    expect_token_reject(tok, "token expired at 2027-01-15T07:59:50Z");
    free(tok);
    tok = hs256("{\"role\":\"service_role\",\"exp\":1800000000}");
    expect_token_reject(tok, "token expired at 2027-01-15T08:00:00Z");
    free(tok);
}

static void auth_rejects_a_token_not_yet_valid(void **state)
{
    char *tok;
    (void)state;

    tok = hs256("{\"role\":\"service_role\",\"exp\":1800003600,\"nbf\":1800000600}");
    expect_token_reject(tok, "token not valid before 2027-01-15T08:10:00Z");
    free(tok);
}

static void auth_rejects_a_token_without_exp(void **state)
{
    char *tok;
    (void)state;

    tok = hs256("{\"role\":\"service_role\",\"sub\":\"x\"}");
    expect_token_reject(tok, "token has no expiry (exp)");
    free(tok);
    tok = hs256("{\"role\":\"service_role\",\"exp\":\"tomorrow\"}");
    expect_token_reject(tok, "token claim 'exp' is not a number");
    free(tok);
}

static void auth_rejects_a_token_signed_with_another_secret(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *tok;
    (void)state;

    tok = auth_sign("another-secret-entirely-of-decent-length-0123456789", "service_role", NULL,
                    NOW, 3600, &err);
    assert_non_null(tok);
    expect_token_reject(tok, "token signature does not verify (wrong JWT_SECRET?)");
    free(tok);
}

static void auth_rejects_a_tampered_payload(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *tok, *forged, *body, *dot1, *dot2;
    (void)state;

    tok = auth_sign(SECRET, "authenticated", "user-1", NOW, 3600, &err);
    assert_non_null(tok);
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    body = b64url("{\"role\":\"service_role\",\"exp\":1900000000}",
                  strlen("{\"role\":\"service_role\",\"exp\":1900000000}"));
    forged = sm_xasprintf("%.*s.%s%s", (int)(dot1 - tok), tok, body, dot2);
    expect_token_reject(forged, "token signature does not verify (wrong JWT_SECRET?)");
    free(forged);
    free(body);
    free(tok);
}

static void auth_rejects_alg_none(void **state)
{
    char *tok, *nodot;
    (void)state;

    tok = token_with("{\"alg\":\"none\",\"typ\":\"JWT\"}",
                     "{\"role\":\"service_role\",\"exp\":1900000000}", NULL, NULL);
    assert_int_equal(tok[strlen(tok) - 1], '.');
    expect_token_reject(tok, "token algorithm 'none' is not accepted: tokens must be signed "
                             "with HS256");
    nodot = sm_xstrndup(tok, strlen(tok) - 1);
    expect_token_reject(nodot, "token is malformed: expected three base64url parts separated "
                               "by dots");
    free(nodot);
    free(tok);
    tok = token_with("{\"typ\":\"JWT\"}", "{\"role\":\"service_role\",\"exp\":1900000000}", SECRET,
                     EVP_sha256());
    expect_token_reject(tok, "token algorithm '(missing)' is not accepted: tokens must be "
                             "signed with HS256");
    free(tok);
}

static void auth_rejects_hs512_even_with_the_right_secret(void **state)
{
    jwt_t *jwt = NULL;
    char *tok;
    (void)state;

    assert_int_equal(jwt_new(&jwt), 0);
    jwt_add_grant(jwt, "role", "service_role");
    jwt_add_grant_int(jwt, "exp", (long)NOW + 100);
    jwt_set_alg(jwt, JWT_ALG_HS512, (const unsigned char *)SECRET, (int)strlen(SECRET));
    tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(tok);
    expect_token_reject(tok, "token algorithm 'HS512' is not accepted: tokens must be signed "
                             "with HS256");
    free(tok);
}

static void auth_rejects_an_rs256_labelled_token(void **state)
{
    char *tok;
    (void)state;

    /* the classic confusion: RS256 in the header, HMAC with the secret */
    tok = token_with("{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                     "{\"role\":\"service_role\",\"exp\":1900000000}", SECRET, EVP_sha256());
    expect_token_reject(tok, "token algorithm 'RS256' is not accepted: tokens must be signed "
                             "with HS256");
    free(tok);
}

static void auth_rejects_missing_role_or_sub(void **state)
{
    char *tok;
    (void)state;

    tok = hs256("{\"sub\":\"user-1\",\"exp\":1900000000}");
    expect_token_reject(tok, "token has no 'role' claim");
    free(tok);
    tok = hs256("{\"role\":\"authenticated\",\"exp\":1900000000}");
    expect_token_reject(tok, "token has no 'sub' claim (user id)");
    free(tok);
    tok = hs256("{\"role\":\"authenticated\",\"sub\":\"\",\"exp\":1900000000}");
    expect_token_reject(tok, "token has no 'sub' claim (user id)");
    free(tok);
    tok = hs256("{\"role\":\"anon\",\"exp\":1900000000}");
    expect_token_reject(tok, "token has no 'sub' claim (user id)");
    free(tok);
}

static void auth_needs_a_secret(void **state)
{
    sm_err err = SM_ERR_INIT;
    auth_identity id;
    (void)state;

    assert_int_equal(auth_verify("Bearer a.b.c", "", NOW, &id, &err), -1);
    assert_err(&err, SM_E_INTERNAL, "JWT_SECRET is not set");
    assert_null(auth_sign(NULL, "service_role", NULL, NOW, 60, &err));
    assert_err(&err, SM_E_INTERNAL, "JWT_SECRET is not set");
    assert_null(auth_sign(SECRET, "service_role", NULL, NOW, 0, &err));
    assert_err(&err, SM_E_INVALID, "token lifetime must be positive (got 0 s)");
}

/* ---- rights on projects ---- */

typedef struct cat_fx {
    char *dir;
    catalog *c;
    project *p;
} cat_fx;

static int cat_setup(void **state)
{
    cat_fx *f = sm_xcalloc(1, sizeof(*f));
    sm_err err = SM_ERR_INIT;

    f->dir = th_tmpdir();
    if (catalog_open(&f->c, f->dir, &err) < 0)
        fail_msg("catalog_open: %s", err.msg);
    assert_int_equal(catalog_org_add(f->c, "acme", "Acme", &err), 0);
    assert_int_equal(catalog_member_add(f->c, "acme", "alice-admin", "admin", &err), 0);
    assert_int_equal(catalog_member_add(f->c, "acme", "bob-member", "member", &err), 0);
    f->p = project_new();
    f->p->id = sm_xstrdup("proj1");
    f->p->name = sm_xstrdup("Project one");
    f->p->org_id = sm_xstrdup("acme");
    f->p->owner = sm_xstrdup("olivia-owner");
    f->p->db_url = sm_xstrdup("postgresql://postgres@localhost/postgres");
    f->p->storage_dir = sm_xstrdup("/tmp/none");
    if (catalog_project_add(f->c, f->p, &err) < 0)
        fail_msg("catalog_project_add: %s", err.msg);
    *state = f;
    return 0;
}

static int cat_teardown(void **state)
{
    cat_fx *f = *state;

    project_free(f->p);
    catalog_close(f->c);
    th_rmdir(f->dir);
    free(f);
    return 0;
}

static auth_right right_of(cat_fx *f, int service, const char *sub)
{
    auth_identity id;
    sm_err err = SM_ERR_INIT;
    auth_right r = AUTH_MANAGE;
    project *p = NULL;

    memset(&id, 0, sizeof(id));
    id.service = service;
    snprintf(id.sub, sizeof(id.sub), "%s", sub);
    assert_int_equal(catalog_project_get(f->c, "proj1", &p, &err), 0);
    assert_int_equal(auth_project_right(f->c, &id, p, &r, &err), 0);
    project_free(p);
    return r;
}

static void auth_rights_follow_owner_and_org_roles(void **state)
{
    cat_fx *f = *state;

    assert_int_equal(right_of(f, 1, ""), AUTH_MANAGE);
    assert_int_equal(right_of(f, 0, "olivia-owner"), AUTH_MANAGE);
    assert_int_equal(right_of(f, 0, "alice-admin"), AUTH_MANAGE);
    assert_int_equal(right_of(f, 0, "bob-member"), AUTH_VIEW);
    assert_int_equal(right_of(f, 0, "mallory"), AUTH_NONE);
    assert_int_equal(right_of(f, 0, ""), AUTH_NONE);
}

static void auth_project_without_org_is_owner_only(void **state)
{
    cat_fx *f = *state;
    sm_err err = SM_ERR_INIT;
    auth_identity id;
    auth_right r = AUTH_MANAGE;
    project *p = project_new();

    p->id = sm_xstrdup("solo");
    p->name = sm_xstrdup("Solo");
    p->owner = sm_xstrdup("olivia-owner");
    p->db_url = sm_xstrdup("postgresql://x");
    p->storage_dir = sm_xstrdup("/tmp/none");
    assert_int_equal(catalog_project_add(f->c, p, &err), 0);
    memset(&id, 0, sizeof(id));
    snprintf(id.sub, sizeof(id.sub), "alice-admin");
    assert_int_equal(auth_project_right(f->c, &id, p, &r, &err), 0);
    assert_int_equal(r, AUTH_NONE);
    snprintf(id.sub, sizeof(id.sub), "olivia-owner");
    assert_int_equal(auth_project_right(f->c, &id, p, &r, &err), 0);
    assert_int_equal(r, AUTH_MANAGE);
    project_free(p);
}

/* ---- signed download links ---- */

static void download_link_round_trip(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *sig;
    (void)state;

    sig = download_sign(SECRET, "proj1", "backup_proj1_20270115", NOW + 600);
    assert_non_null(sig);
    assert_int_equal(strlen(sig), 64);
    assert_int_equal(strspn(sig, "0123456789abcdef"), 64);
    assert_int_equal(
        download_check(SECRET, "proj1", "backup_proj1_20270115", "1800000600", sig, NOW, &err), 0);
    assert_int_equal(download_check(SECRET, "proj1", "backup_proj1_20270115", "1800000600", sig,
                                    NOW + 599, &err),
                     0);
    free(sig);
}

static void download_link_tampering_is_refused(void **state)
{
    const char *bad_sig = "download link signature does not match";
    sm_err err = SM_ERR_INIT;
    char *sig, *flipped;
    (void)state;

    sig = download_sign(SECRET, "proj1", "b1", NOW + 600);
    assert_int_equal(download_check(SECRET, "proj2", "b1", "1800000600", sig, NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, bad_sig);
    assert_int_equal(download_check(SECRET, "proj1", "b2", "1800000600", sig, NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, bad_sig);
    assert_int_equal(download_check(SECRET, "proj1", "b1", "1800000601", sig, NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, bad_sig);
    assert_int_equal(download_check("other-secret", "proj1", "b1", "1800000600", sig, NOW, &err),
                     -1);
    assert_err(&err, SM_E_FORBIDDEN, bad_sig);
    flipped = sm_xstrdup(sig);
    flipped[10] = flipped[10] == '0' ? '1' : '0';
    assert_int_equal(download_check(SECRET, "proj1", "b1", "1800000600", flipped, NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, bad_sig);
    flipped[63] = '\0';
    assert_int_equal(download_check(SECRET, "proj1", "b1", "1800000600", flipped, NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, bad_sig);
    assert_int_equal(download_check(SECRET, "proj1", "b1", "1800000600", "", NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, bad_sig);
    /* '|' would make "a|b" + "c" sign like "a" + "b|c" */
    assert_null(download_sign(SECRET, "a|b", "c", NOW));
    free(flipped);
    free(sig);
}

static void download_link_expires(void **state)
{
    sm_err err = SM_ERR_INIT;
    char *sig;
    (void)state;

    sig = download_sign(SECRET, "proj1", "b1", NOW - 10);
    assert_int_equal(download_check(SECRET, "proj1", "b1", "1799999990", sig, NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, "download link expired at 2027-01-15T07:59:50Z");
    free(sig);
    sig = download_sign(SECRET, "proj1", "b1", NOW);
    assert_int_equal(download_check(SECRET, "proj1", "b1", "1800000000", sig, NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, "download link expired at 2027-01-15T08:00:00Z");
    free(sig);
}

static void download_link_expiry_must_be_a_unix_time(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    static const char *bad[] = {"", "abc", "-5", "12x", "1e9", " 1800000600"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(download_check(SECRET, "p", "b", bad[i], "00", NOW, &err), -1);
        assert_err(&err, SM_E_FORBIDDEN, "download link expiry is not a decimal unix time");
    }
    assert_int_equal(download_check(SECRET, "p", "b", NULL, "00", NOW, &err), -1);
    assert_err(&err, SM_E_FORBIDDEN, "download link expiry is not a decimal unix time");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_accepts_a_signed_service_role_token),
        cmocka_unit_test(auth_accepts_a_user_token_with_sub),
        cmocka_unit_test(auth_accepts_a_supabase_style_token_made_with_libjwt),
        cmocka_unit_test(auth_rejects_a_missing_header),
        cmocka_unit_test(auth_rejects_other_schemes),
        cmocka_unit_test(auth_rejects_garbage),
        cmocka_unit_test(auth_rejects_an_expired_token),
        cmocka_unit_test(auth_rejects_a_token_not_yet_valid),
        cmocka_unit_test(auth_rejects_a_token_without_exp),
        cmocka_unit_test(auth_rejects_a_token_signed_with_another_secret),
        cmocka_unit_test(auth_rejects_a_tampered_payload),
        cmocka_unit_test(auth_rejects_alg_none),
        cmocka_unit_test(auth_rejects_hs512_even_with_the_right_secret),
        cmocka_unit_test(auth_rejects_an_rs256_labelled_token),
        cmocka_unit_test(auth_rejects_missing_role_or_sub),
        cmocka_unit_test(auth_needs_a_secret),
        cmocka_unit_test_setup_teardown(auth_rights_follow_owner_and_org_roles, cat_setup,
                                        cat_teardown),
        cmocka_unit_test_setup_teardown(auth_project_without_org_is_owner_only, cat_setup,
                                        cat_teardown),
        cmocka_unit_test(download_link_round_trip),
        cmocka_unit_test(download_link_tampering_is_refused),
        cmocka_unit_test(download_link_expires),
        cmocka_unit_test(download_link_expiry_must_be_a_unix_time),
    };
    return cmocka_run_group_tests_name("service_auth", tests, NULL, NULL);
}
