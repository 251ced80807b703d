/* Authentication and authorization for the API.
 *
 * Tokens are `Authorization: Bearer <JWT>`, HS256 under JWT_SECRET, as
 * Supabase issues them; libjwt checks the signature, we check alg, exp and
 * nbf. `role: service_role` may do everything. Other users (claim `sub`)
 * get rights from the catalog:
 *
 *   owner of the project            view, manage (create/restore/download/delete)
 *   admin of the project's org      view, manage
 *   member of the project's org     view (list and read)
 *   anyone else                     nothing: the project answers 404, exactly as a
 *                                   missing one (its existence is not revealed)
 */
#ifndef SM_SERVICE_AUTH_H
#define SM_SERVICE_AUTH_H

#include "catalog/catalog.h"
#include "core/err.h"

#include <time.h>

typedef struct auth_identity {
    int service;      /* role service_role */
    char sub[128];    /* user id (JWT sub), "" for the service role */
    char role[64];    /* the role claim */
    time_t exp;
} auth_identity;

typedef enum auth_right {
    AUTH_NONE = 0,
    AUTH_VIEW = 1,
    AUTH_MANAGE = 2,
} auth_right;

/* Verifies a bearer token (the header value, "Bearer xxx"). Fails with
 * SM_E_AUTH and a message saying what is wrong: missing, not a bearer token,
 * malformed, bad signature, wrong algorithm, expired, not yet valid, no
 * role/sub claim (the token itself never appears in it). now is the clock to
 * check exp/nbf against (no leeway). An empty secret is SM_E_INTERNAL. */
int auth_verify(const char *header, const char *secret, time_t now, auth_identity *out,
                sm_err *err);

/* The rights of id on project p (AUTH_NONE, AUTH_VIEW, AUTH_MANAGE). */
int auth_project_right(catalog *c, const auth_identity *id, const project *p, auth_right *out,
                       sm_err *err);

/* Signs a token for id/role valid for ttl seconds (the demo prints one). */
char *auth_sign(const char *secret, const char *role, const char *sub, time_t now, long ttl,
                sm_err *err);

/* Signed download links: HMAC-SHA-256 over "project|backup|expiry" under a
 * key derived from JWT_SECRET. download_sign returns the hex signature
 * (caller frees; NULL if an id contains '|'); download_check fails with
 * SM_E_FORBIDDEN when the signature does not match (checked first, in
 * constant time) or the link expired (now >= expires). */
char *download_sign(const char *secret, const char *project, const char *backup, time_t expires);
int download_check(const char *secret, const char *project, const char *backup,
                   const char *expires, const char *sig, time_t now, sm_err *err);

#endif
