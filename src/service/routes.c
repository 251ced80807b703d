/* The HTTP API (under /platform), mapped onto the same operations the CLI
 * uses. Errors are {"error": code, "message": what to fix}. Projects a
 * caller may not see answer 404, exactly as missing ones. */
#include "service/service.h"

#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "embedded.h"
#include "job/ops.h"
#include "job/pitr.h"
#include "service/auth.h"
#include "service/schedule.h"
#include "service/ui.h"
#include "store/s3.h"
#include "store/tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- plumbing ---- */

catalog *svc_catalog(svc *S)
{
    catalog *c = pthread_getspecific(S->cat_key);
    sm_err err = SM_ERR_INIT;

    if (c)
        return c;
    if (catalog_open(&c, S->home, &err) < 0) {
        sm_log(SM_LOG_ERROR, "cannot open the catalog: %s", err.msg);
        return NULL;
    }
    pthread_setspecific(S->cat_key, c);
    return c;
}

static catalog *need_cat(http_req *rq, svc *S)
{
    catalog *c = svc_catalog(S);
    if (!c)
        http_error(rq, 500, "internal", "the catalog cannot be opened (see the service log)");
    return c;
}

/* Authenticates the request; answers 401 itself on failure. */
static int authn(http_req *rq, svc *S, auth_identity *id)
{
    sm_err err = SM_ERR_INIT;

    if (auth_verify(http_header(rq, "Authorization"), S->jwt_secret, sm_now(), id, &err) < 0) {
        http_add_header(rq, "WWW-Authenticate", "Bearer");
        http_error(rq, 401, "unauthorized", "%s", err.msg);
        return -1;
    }
    http_set_user(rq, id->service ? "service_role" : id->sub);
    return 0;
}

/* Loads the {id} project with at least `need`: a project the caller may not
 * see is 404 (as a missing one), one it may only view is 403 for changes. */
static int load_project(http_req *rq, svc *S, const auth_identity *id, const char *pid,
                        auth_right need, project **out)
{
    catalog *c = need_cat(rq, S);
    sm_err err = SM_ERR_INIT;
    auth_right right = AUTH_NONE;
    project *p = NULL;

    *out = NULL;
    if (!c)
        return -1;
    if (project_id_check(pid, &err) < 0) {
        http_error(rq, 400, "invalid_request", "%s", err.msg);
        return -1;
    }
    if (catalog_project_get(c, pid, &p, &err) < 0) {
        if (err.code == SM_E_NOTFOUND)
            http_error(rq, 404, "not_found", "unknown project '%s'", pid);
        else
            http_error_from(rq, &err);
        return -1;
    }
    if (auth_project_right(c, id, p, &right, &err) < 0) {
        project_free(p);
        http_error_from(rq, &err);
        return -1;
    }
    if (right == AUTH_NONE) {
        project_free(p);
        http_error(rq, 404, "not_found", "unknown project '%s'", pid);
        return -1;
    }
    if (right < need) {
        project_free(p);
        http_error(rq, 403, "forbidden",
                   "you may view project '%s' but not change it: ask its owner or an admin of its "
                   "organization",
                   pid);
        return -1;
    }
    *out = p;
    return 0;
}

/* Loads a backup that must belong to the project. */
static int load_backup(http_req *rq, svc *S, const project *p, const char *bid, backup_rec **out)
{
    sm_err err = SM_ERR_INIT;
    backup_rec *b = NULL;

    *out = NULL;
    if (catalog_backup_get(svc_catalog(S), bid, &b, &err) < 0 || strcmp(b->project_id, p->id)) {
        backup_rec_free(b);
        if (err.code == SM_OK || err.code == SM_E_NOTFOUND)
            http_error(rq, 404, "not_found", "unknown backup '%s' in project '%s'", bid, p->id);
        else
            http_error_from(rq, &err);
        return -1;
    }
    *out = b;
    return 0;
}

static const char *str_field(json_t *body, const char *key, int *bad)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

/* -1: wrong type (answered), 0: absent (dflt), 1: present. */
static int bool_field(http_req *rq, json_t *body, const char *key, int dflt, int *out)
{
    json_t *v = json_object_get(body, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        http_error(rq, 400, "invalid_request", "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

static char *iso(time_t t)
{
    char buf[32];
    sm_time_iso(buf, sizeof(buf), t);
    return sm_xstrdup(buf);
}

/* ---- backups as the API shows them ---- */

static json_t *checksums_of(const backup_rec *b)
{
    json_t *out = json_object(), *v;
    const char *k;
    json_object_foreach(json_object_get(b->meta, "parts"), k, v)
    json_object_set(out, k, json_object_get(v, "sha256"));
    return out;
}

static json_t *backup_json(svc *S, const backup_rec *b)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:f,s:o,s:o,s:o}", "id", b->id,
                          "backup_id", b->id, "project_id", b->project_id, "type", b->type,
                          "status", b->status, "created_at", b->created_at, "finished_at",
                          b->finished_at[0] ? json_string(b->finished_at) : json_null(), "size",
                          (json_int_t)b->size, "stored", (json_int_t)b->stored, "duration_s",
                          b->duration_s, "checksums", checksums_of(b), "error",
                          b->error ? json_string(b->error) : json_null(), "parent_id",
                          b->parent_id ? json_string(b->parent_id) : json_null());
    char *job;

    json_object_set_new(o, "kind", json_string(b->kind ? b->kind : "manual"));
    if (!strcmp(b->status, "COMPLETED")) {
        json_object_set_new(o, "progress", json_integer(100));
        json_object_set_new(o, "phase", json_string("completed"));
    } else if (!strcmp(b->status, "CREATING") && (job = jobs_for_backup(S->J, b->id)) != NULL) {
        json_t *st = jobs_get(S->J, job);
        json_object_set_new(o, "job_id", json_string(job));
        json_object_set(o, "progress", json_object_get(st, "progress"));
        json_object_set(o, "phase", json_object_get(st, "phase"));
        json_object_set(o, "bytes_done", json_object_get(st, "bytes_done"));
        json_object_set(o, "bytes_total", json_object_get(st, "bytes_total"));
        json_object_set(o, "eta_s", json_object_get(st, "eta_s"));
        json_decref(st);
        free(job);
    } else {
        json_object_set_new(o, "progress", json_integer(0));
    }
    if (json_object_get(b->meta, "postgres"))
        json_object_set_new(o, "postgres",
                            json_pack("{s:O,s:O}", "server_version",
                                  json_object_get(json_object_get(b->meta, "postgres"),
                                                  "server_version"),
                                  "row_counts",
                                  json_object_get(json_object_get(b->meta, "postgres"),
                                                  "row_counts")));
    if (json_object_get(b->meta, "archive"))
        json_object_set(o, "archive", json_object_get(b->meta, "archive"));
    return o;
}

/* "about N minutes" from the project's recent throughput and size. */
static void estimate(svc *S, const project *p, const char *type, json_t *out)
{
    backup_rec **v = NULL;
    size_t n = 0;
    double bytes = 0, secs = 0, size = 0;
    int used = 0;

    if (catalog_backup_list(svc_catalog(S), p->id, NULL, &v, &n, NULL) == 0) {
        for (size_t i = 0; i < n && used < 5; i++) {
            if (strcmp(v[i]->status, "COMPLETED") || v[i]->duration_s <= 0)
                continue;
            if (!size && !strcmp(v[i]->type, type))
                size = (double)v[i]->size;
            bytes += (double)v[i]->size;
            secs += v[i]->duration_s;
            used++;
        }
    }
    backup_list_free(v, n);
    if (used && secs > 0 && size > 0) {
        double rate = bytes / secs, est = size / rate;
        char text[64];
        if (est < 60)
            snprintf(text, sizeof(text), "%d seconds", (int)(est + 0.5) ? (int)(est + 0.5) : 1);
        else
            snprintf(text, sizeof(text), "%d minutes", (int)(est / 60 + 0.5));
        json_object_set_new(out, "estimated_time", json_string(text));
        json_object_set_new(out, "estimated_seconds", json_real(est));
    } else {
        json_object_set_new(out, "estimated_time", json_string("unknown (first backup)"));
        json_object_set_new(out, "estimated_seconds", json_null());
    }
}

/* ---- handlers: projects and organisations ---- */

static int h_projects_list(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project **v = NULL;
    size_t n = 0;
    json_t *arr;
    sm_err err = SM_ERR_INIT;
    catalog *c;

    if (authn(rq, S, &id) < 0 || !(c = need_cat(rq, S)))
        return 0;
    if (catalog_project_list(c, &v, &n, &err) < 0)
        return http_error_from(rq, &err);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        auth_right r = AUTH_NONE;
        if (auth_project_right(c, &id, v[i], &r, NULL) == 0 && r != AUTH_NONE) {
            json_t *pj = project_json(v[i], 0);
            json_object_set_new(pj, "ref", json_string(v[i]->id));
            json_object_set_new(pj, "can_manage", json_boolean(r == AUTH_MANAGE));
            json_array_append_new(arr, pj);
        }
    }
    project_list_free(v, n);
    return http_json(rq, 200, arr);
}

static int h_project_get(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *j;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_VIEW, &p) < 0)
        return 0;
    j = project_json(p, 0);
    json_object_set_new(j, "ref", json_string(p->id));
    project_free(p);
    return http_json(rq, 200, j);
}

/* The store settings of a project from a request body: "store" (a directory or
 * s3://BUCKET/PREFIX) and s3_endpoint, s3_region, s3_storage_class folded into
 * it. 0, or -1 with err set (a usage error: 400). */
static int store_fields(const json_t *body, project *p, sm_err *err)
{
    const json_t *v;
    const char *f[4] = {"store", "s3_endpoint", "s3_region", "s3_storage_class"}, *s[4] = {0};
    char *loc = NULL;

    for (int i = 0; i < 4; i++) {
        v = json_object_get(body, f[i]);
        if (v && !json_is_null(v) && !json_is_string(v))
            return sm_err_set(err, SM_E_INVALID, "'%s' must be a string", f[i]);
        s[i] = json_string_value(v);
    }
    /* credentials in a URL (USER:SECRET@HOST) would be echoed by the messages
     * below and kept in the catalog: refuse them without repeating the value */
    if ((s[1] && strchr(s[1], '@')) ||
        (s[0] && !strncmp(s[0], "s3://", 5) && memchr(s[0], '@', strcspn(s[0], "?")))) {
        sm_err_set(err, SM_E_INVALID, "'%s' must not hold credentials (USER:SECRET@)",
                   s[1] && strchr(s[1], '@') ? "s3_endpoint" : "store");
        return sm_err_hint(err, "The service signs with its own S3 credentials "
                                "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials "
                                "file): set them where the service runs.");
    }
    if (s[0]) {
        /* not S3: a directory, and only an absolute one (the service's working
         * directory is no place for a repository; "ftp://..." is no directory) */
        if (*s[0] && strncmp(s[0], "s3://", 5) != 0 && (s[0][0] != '/' || strstr(s[0], "://")))
            return sm_err_set(err, SM_E_INVALID,
                              "'store' must be s3://BUCKET[/PREFIX] or an absolute directory "
                              "path, not '%s'", s[0]);
        free(p->store);
        p->store = *s[0] ? sm_xstrdup(s[0]) : NULL;
    }
    if (s3_location_build(&loc, p->store, s[1], s[2], s[3], err) < 0) {
        err->code = SM_E_INVALID;
        return -1;
    }
    free(p->store);
    p->store = loc;
    return 0;
}

/* Answers 400 unless every member of body is one of the store settings
 * ("'KEY' cannot be <what> here: only ..."; the value is never repeated).
 * 0, or -1 when answered. */
static int only_store_fields(http_req *rq, json_t *body, const char *what)
{
    const char *k;
    json_t *v;

    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "store") && strcmp(k, "s3_endpoint") && strcmp(k, "s3_region") &&
            strcmp(k, "s3_storage_class")) {
            http_error(rq, 400, "invalid_request",
                       "'%s' cannot be %s here: only store, s3_endpoint, s3_region and "
                       "s3_storage_class",
                       k, what);
            return -1;
        }
    }
    return 0;
}

/* Why registering and importing projects, and stores that name the host's
 * directories or files, are for the service role (the host's operator) only. */
#define HOST_FIELDS_WHY                                                                            \
    "a project names the server's database, directories and commands, which only the host's "   \
    "operator may choose"

/* May id give project p the store it now has? Users other than the service
 * role may choose S3 locations (signed with the service's own credentials)
 * or the default directory, but neither a directory of the server nor an S3
 * credentials file or profile of it. And no store may share objects with
 * another project's (ops_store_conflict). 0, or -1 with err set (403, 409). */
static int store_allowed(svc *S, const auth_identity *id, catalog *c, const project *p,
                         sm_err *err)
{
    ops_ctx o;

    if (!id->service && p->store && *p->store) {
        char *key = NULL;
        int host_files = 0;
        if (strncmp(p->store, "s3://", 5) != 0) {
            sm_err_set(err, SM_E_FORBIDDEN,
                       "only the service role may put backups in a directory of the server");
            return sm_err_hint(err, "Use an S3 location, or the default directory (an empty "
                                    "store), or ask the host's operator.");
        }
        if (s3_location_key(p->store, &key, &host_files, err) < 0) {
            err->code = SM_E_INVALID;
            return -1;
        }
        free(key);
        if (host_files) {
            sm_err_set(err, SM_E_FORBIDDEN, "only the service role may name the server's S3 "
                                            "credentials file or profile (credentials=, "
                                            "profile=)");
            return sm_err_hint(err, "Leave them out: the service signs with its own "
                                    "credentials.");
        }
    }
    ops_ctx_init(&o, c, S->enc_secret);
    return ops_store_conflict(&o, p, err);
}

/* PATCH /platform/projects/{id}: changes the store settings of a project
 * (the fields of store_fields; no others). */
static int h_project_patch(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *body, *j;
    int answered = 0;
    sm_err err = SM_ERR_INIT;
    catalog *c;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_MANAGE, &p) < 0)
        return 0;
    body = http_body_json(rq, &answered);
    if (!body) {
        project_free(p);
        return 0;
    }
    if (only_store_fields(rq, body, "changed") < 0) {
        project_free(p);
        return 0;
    }
    if (!(c = need_cat(rq, S))) {
        project_free(p);
        return 0;
    }
    if (store_fields(body, p, &err) < 0 || store_allowed(S, &id, c, p, &err) < 0 ||
        catalog_project_update(c, p, &err) < 0) {
        project_free(p);
        return http_error_from(rq, &err);
    }
    j = project_json(p, 0);
    json_object_set_new(j, "ref", json_string(p->id));
    project_free(p);
    return http_json(rq, 200, j);
}

/* ---- store check ---- */

/* A check's own bounds on an S3 store, whatever the location says: no
 * retries, 5 s to connect and at most 5 s without progress per request. The
 * check makes at most 5 requests, so it answers within about 25 s even when
 * the endpoint is silent, instead of retrying with back-off for minutes. */
#define STORE_CHECK_S3_BOUNDS "retries=0&timeout=5"

static json_t *check_json(const char *step, const char *status, const char *msg, const char *hint)
{
    json_t *o = json_pack("{s:s,s:s}", "step", step, "status", status);
    json_object_set_new(o, "message", http_json_text(msg));
    if (hint && *hint)
        json_object_set_new(o, "hint", http_json_text(hint));
    return o;
}

static void check_step(const char *step, int ok, const char *detail, const sm_err *err, void *ud)
{
    json_array_append_new(ud, ok > 0   ? check_json(step, "ok", detail, NULL)
                              : ok < 0 ? check_json(step, "skipped", detail, NULL)
                                       : check_json(step, "failed", err->msg, err->hint));
}

/* POST /platform/projects/{id}/store/check: store_check (the checks of
 * `supamanager store check`) on the project's store, or, when the body names
 * any of the store settings, on the store those settings would give (as the
 * PATCH would make it; nothing is saved). Manage right, as for the PATCH:
 * the check writes a probe object, and proposed settings make the service
 * talk to the endpoint they name. Answers 200 with {ok, location, proposed,
 * message, hint, checks: [{step, status: ok|failed|skipped, message, hint}]}
 * whatever the outcome of the checks; 400 for settings the PATCH refuses. */
static int h_store_check(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *body, *checks = NULL, *out = NULL;
    int answered = 0, proposed, rc;
    char *loc = NULL, *bounded = NULL;
    store *st = NULL;
    sm_err err = SM_ERR_INIT;
    catalog *c;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_MANAGE, &p) < 0)
        return 0;
    body = http_body_json(rq, &answered);
    if (!body || only_store_fields(rq, body, "checked") < 0) {
        rc = 0;
        goto out;
    }
    proposed = json_object_size(body) > 0;
    if (proposed && store_fields(body, p, &err) < 0) {
        rc = http_error_from(rq, &err);
        goto out;
    }
    if (!(c = need_cat(rq, S))) {
        rc = 0;
        goto out;
    }
    if (proposed && store_allowed(S, &id, c, p, &err) < 0) {
        rc = http_error_from(rq, &err);
        goto out;
    }
    loc = project_repo_location(c, p);
    bounded = strncmp(loc, "s3://", 5)
                  ? sm_xstrdup(loc)
                  : sm_xasprintf("%s%c" STORE_CHECK_S3_BOUNDS, loc, strchr(loc, '?') ? '&' : '?');
    checks = json_array();
    out = json_pack("{s:b}", "proposed", proposed);
    if (store_open(&st, bounded, &err) < 0) {
        json_array_append_new(checks, check_json("open", "failed", err.msg, err.hint));
        json_object_set_new(out, "location", json_null());
    } else {
        json_object_set_new(out, "location", http_json_text(store_location(st)));
        store_check(st, check_step, checks, &err);
    }
    json_object_set_new(out, "ok", json_boolean(err.code == SM_OK));
    if (err.code == SM_OK) {
        json_object_set_new(out, "message", json_string(STORE_CHECK_USABLE));
    } else {
        char *m = sm_xasprintf("%s: %s", STORE_CHECK_UNUSABLE, err.msg);
        json_object_set_new(out, "message", http_json_text(m));
        free(m);
        if (err.hint[0])
            json_object_set_new(out, "hint", http_json_text(err.hint));
    }
    json_object_set_new(out, "checks", checks);
    sm_log(SM_LOG_INFO, "project %s: store check of %s%s: %s", p->id,
           st ? store_location(st) : "its store", proposed ? " (proposed settings)" : "",
           err.code == SM_OK ? "usable" : err.msg);
    rc = http_json(rq, 200, out);
out:
    store_free(st);
    free(bounded);
    free(loc);
    project_free(p);
    return rc;
}

static int h_projects_create(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    json_t *body, *cf;
    int answered = 0, bad = 0;
    project *p = NULL;
    sm_err err = SM_ERR_INIT;
    ops_ctx o;
    catalog *c;

    if (authn(rq, S, &id) < 0 || !(c = need_cat(rq, S)))
        return 0;
    body = http_body_json(rq, &answered);
    if (!body)
        return 0;
    p = project_new();
    p->id = sm_xstrdup(str_field(body, "id", &bad) ? str_field(body, "id", &bad) : "");
    p->name = str_field(body, "name", &bad) ? sm_xstrdup(str_field(body, "name", &bad)) : NULL;
    p->db_url = str_field(body, "db_url", &bad) ? sm_xstrdup(str_field(body, "db_url", &bad)) : NULL;
    p->storage_dir = str_field(body, "storage_dir", &bad)
                         ? sm_xstrdup(str_field(body, "storage_dir", &bad))
                         : NULL;
#define OPT_STR(field, key)                                                                        \
    if (str_field(body, key, &bad))                                                                \
        p->field = sm_xstrdup(str_field(body, key, &bad));
    OPT_STR(config_dir, "config_dir")
    OPT_STR(pgsodium_key, "pgsodium_key")
    OPT_STR(org_id, "org_id")
    OPT_STR(owner, "owner")
    OPT_STR(pause_cmd, "pause_cmd")
    OPT_STR(resume_cmd, "resume_cmd")
#undef OPT_STR
    if (!bad && store_fields(body, p, &err) < 0) {
        project_free(p);
        return http_error_from(rq, &err);
    }
    cf = json_object_get(body, "config_files");
    if (cf && !json_is_null(cf)) {
        size_t i;
        json_t *f;
        if (!json_is_array(cf))
            bad = 1;
        json_array_foreach(cf, i, f)
        {
            if (!json_is_string(f))
                bad = 1;
            else
                json_array_append(p->config_files, f);
        }
    }
    if (bad) {
        project_free(p);
        return http_error(rq, 400, "invalid_request",
                          "project fields must be strings (config_files an array of strings)");
    }
    /* only the service role: a project names the host's database, directories
     * and commands */
    if (!id.service) {
        project_free(p);
        return http_error(rq, 403, "forbidden", "only the service role may register projects: %s",
                          HOST_FIELDS_WHY);
    }
    ops_ctx_init(&o, c, S->enc_secret);
    if (ops_project_add(&o, p, 1, &err) < 0) {
        project_free(p);
        if (err.code == SM_E_USAGE)
            err.code = SM_E_INVALID;
        return http_error_from(rq, &err);
    }
    {
        /* a store that holds an earlier installation's repository: its
         * backups are listed at once */
        json_t *rep = NULL;
        if (ops_project_adopt(&o, p->id, &rep, &err) < 0)
            sm_log(SM_LOG_WARN, "%s: cannot read the backups already in its store: %s", p->id,
                   err.msg);
        else if (rep)
            sm_log(SM_LOG_INFO, "%s: %zu backups found in its store were added", p->id,
                   json_array_size(json_object_get(rep, "added")));
        json_decref(rep);
        sm_err_clear(&err);
    }
    {
        project *saved = NULL;
        json_t *j = NULL;
        if (catalog_project_get(c, p->id, &saved, &err) == 0)
            j = project_json(saved, 0);
        project_free(saved);
        project_free(p);
        return j ? http_json(rq, 201, j) : http_error_from(rq, &err);
    }
}

static int h_orgs_list(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    json_t *arr = NULL, *out, *o;
    sm_err err = SM_ERR_INIT;
    size_t i;
    catalog *c;

    if (authn(rq, S, &id) < 0 || !(c = need_cat(rq, S)))
        return 0;
    if (catalog_org_list(c, &arr, &err) < 0)
        return http_error_from(rq, &err);
    out = json_array();
    json_array_foreach(arr, i, o)
    {
        const char *role = NULL;
        if (id.service ||
            (catalog_member_role(c, json_string_value(json_object_get(o, "id")), id.sub, &role,
                                 NULL) == 0 &&
             role)) {
            if (!id.service)
                json_object_set_new(o, "role", json_string(role));
            json_array_append(out, o);
        }
    }
    json_decref(arr);
    return http_json(rq, 200, out);
}

static int h_orgs_create(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    json_t *body;
    int answered = 0, bad = 0;
    const char *oid, *name;
    sm_err err = SM_ERR_INIT;
    catalog *c;

    if (authn(rq, S, &id) < 0 || !(c = need_cat(rq, S)))
        return 0;
    if (!id.service)
        return http_error(rq, 403, "forbidden", "only the service role may create organizations");
    body = http_body_json(rq, &answered);
    if (!body)
        return 0;
    oid = str_field(body, "id", &bad);
    name = str_field(body, "name", &bad);
    if (bad || !oid)
        return http_error(rq, 400, "invalid_request", "an organization needs an 'id' (string) and "
                                                      "a 'name'");
    if (catalog_org_add(c, oid, name ? name : oid, &err) < 0)
        return http_error_from(rq, &err);
    return http_json(rq, 201, json_pack("{s:s,s:s}", "id", oid, "name", name ? name : oid));
}

static int h_members_add(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    json_t *body;
    int answered = 0, bad = 0;
    const char *org = http_param(rq, "org"), *user, *role, *mine = NULL;
    sm_err err = SM_ERR_INIT;
    catalog *c;

    if (authn(rq, S, &id) < 0 || !(c = need_cat(rq, S)))
        return 0;
    if (!id.service && (catalog_member_role(c, org, id.sub, &mine, NULL) < 0 || !mine ||
                        strcmp(mine, "admin") != 0))
        return http_error(rq, 403, "forbidden",
                          "only the service role or an admin of '%s' may add members", org);
    body = http_body_json(rq, &answered);
    if (!body)
        return 0;
    user = str_field(body, "user_id", &bad);
    role = str_field(body, "role", &bad);
    if (bad || !user || !role)
        return http_error(rq, 400, "invalid_request",
                          "a member needs 'user_id' and 'role' (admin or member)");
    if (catalog_member_add(c, org, user, role, &err) < 0)
        return http_error_from(rq, &err);
    return http_json(rq, 201, json_pack("{s:s,s:s,s:s}", "org_id", org, "user_id", user, "role",
                                        role));
}

static int h_members_list(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    json_t *arr = NULL, *o;
    const char *org = http_param(rq, "org"), *mine = NULL;
    sm_err err = SM_ERR_INIT;
    size_t i;
    catalog *c;

    if (authn(rq, S, &id) < 0 || !(c = need_cat(rq, S)))
        return 0;
    if (!id.service && (catalog_member_role(c, org, id.sub, &mine, NULL) < 0 || !mine))
        return http_error(rq, 404, "not_found", "unknown organization '%s'", org);
    if (catalog_org_list(c, &arr, &err) < 0)
        return http_error_from(rq, &err);
    json_array_foreach(arr, i, o)
    {
        if (!strcmp(json_string_value(json_object_get(o, "id")), org)) {
            json_t *m = json_incref(json_object_get(o, "members"));
            json_decref(arr);
            return http_json(rq, 200, m);
        }
    }
    json_decref(arr);
    return http_error(rq, 404, "not_found", "unknown organization '%s'", org);
}

/* ---- handlers: backups ---- */

static int h_backup_create(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *body, *args = NULL, *out;
    int answered = 0, bad = 0, compression = 1, encryption = 0;
    const char *type, *norm;
    char *job = NULL, *bid = NULL;
    sm_err err = SM_ERR_INIT;
    job_spec sp;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_MANAGE, &p) < 0)
        return 0;
    body = http_body_json(rq, &answered);
    if (!body)
        goto out;
    type = str_field(body, "type", &bad);
    if (bad) {
        http_error(rq, 400, "invalid_request", "'type' must be a string: FULL, DATABASE, STORAGE "
                                               "or INCREMENTAL");
        goto out;
    }
    if (ops_type_parse(type ? type : "FULL", &norm, &err) < 0) {
        http_error(rq, 400, "invalid_request", "%s: use FULL, DATABASE, STORAGE or INCREMENTAL",
                   err.msg);
        goto out;
    }
    if (bool_field(rq, body, "compression", 1, &compression) < 0 ||
        bool_field(rq, body, "encryption", 0, &encryption) < 0)
        goto out;
    args = json_pack("{s:s,s:s,s:{s:s,s:b}}", "type", norm, "kind", "manual", "archive",
                     "compression", compression ? "gzip" : "none", "encryption", encryption);
    memset(&sp, 0, sizeof(sp));
    sp.kind = "backup";
    sp.project_id = p->id;
    sp.args = args;
    if (jobs_submit(S->J, &sp, &job, &bid, &err) < 0) {
        http_error_from(rq, &err);
        goto out;
    }
    out = json_pack("{s:s,s:s,s:s,s:i,s:s}", "backup_id", bid, "id", bid, "status", "CREATING",
                    "progress", 0, "job_id", job);
    estimate(S, p, norm, out);
    {
        char *loc = sm_xasprintf("/platform/projects/%s/backups/%s", p->id, bid);
        http_add_header(rq, "Location", loc);
        free(loc);
    }
    http_json(rq, 202, out);
out:
    json_decref(args);
    free(job);
    free(bid);
    project_free(p);
    return 0;
}

static int h_backups_list(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    backup_rec **v = NULL;
    size_t n = 0, limit = 50, offset = 0;
    uint64_t total = 0, q;
    json_t *arr;
    sm_err err = SM_ERR_INIT;
    const char *ls = http_query(rq, "limit"), *os = http_query(rq, "offset");

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_VIEW, &p) < 0)
        return 0;
    if (ls) {
        if (sm_parse_u64(ls, 1000, &q) < 0 || q == 0) {
            project_free(p);
            return http_error(rq, 400, "invalid_request", "'limit' must be 1 to 1000");
        }
        limit = (size_t)q;
    }
    if (os) {
        if (sm_parse_u64(os, UINT32_MAX, &q) < 0) {
            project_free(p);
            return http_error(rq, 400, "invalid_request", "'offset' must be a whole number");
        }
        offset = (size_t)q;
    }
    if (catalog_backup_list(svc_catalog(S), p->id, NULL, &v, &n, &err) < 0) {
        project_free(p);
        return http_error_from(rq, &err);
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v[i]->status, "COMPLETED"))
            total += v[i]->size;
        if (i >= offset && i < offset + limit)
            json_array_append_new(arr, backup_json(S, v[i]));
    }
    http_json(rq, 200,
              json_pack("{s:s,s:o,s:I,s:I,s:I,s:I}", "project_id", p->id, "backups", arr,
                        "total_count", (json_int_t)n, "total_size", (json_int_t)total, "limit",
                        (json_int_t)limit, "offset", (json_int_t)offset));
    backup_list_free(v, n);
    project_free(p);
    return 0;
}

static int h_backup_get(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    backup_rec *b = NULL;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_VIEW, &p) < 0)
        return 0;
    if (load_backup(rq, S, p, http_param(rq, "backupID"), &b) == 0)
        http_json(rq, 200, backup_json(S, b));
    backup_rec_free(b);
    project_free(p);
    return 0;
}

/* Submits a job for the backup of the {id}/{backupID} route. */
/* Queues a job and answers 202 with its state and job_id (or the error). */
static void submit_job(http_req *rq, svc *S, const job_spec *sp)
{
    char *job = NULL;
    sm_err err = SM_ERR_INIT;
    json_t *st;

    if (jobs_submit(S->J, sp, &job, NULL, &err) < 0) {
        http_error_from(rq, &err);
        return;
    }
    st = jobs_get(S->J, job);
    if (!st)
        st = json_pack("{s:s,s:s}", "id", job, "status", "QUEUED");
    json_object_set_new(st, "job_id", json_string(job));
    http_json(rq, 202, st);
    free(job);
}

static int submit_on_backup(http_req *rq, svc *S, const char *kind, auth_right need, json_t *args)
{
    auth_identity id;
    project *p = NULL;
    backup_rec *b = NULL;
    job_spec sp;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), need, &p) < 0)
        goto out;
    if (load_backup(rq, S, p, http_param(rq, "backupID"), &b) < 0)
        goto out;
    if (strcmp(kind, "delete") && strcmp(b->status, "COMPLETED")) {
        http_error(rq, 409, "conflict", "backup '%s' is %s: only completed backups can be %s",
                   b->id, b->status, !strcmp(kind, "restore") ? "restored" : "used");
        goto out;
    }
    memset(&sp, 0, sizeof(sp));
    sp.kind = kind;
    sp.project_id = p->id;
    sp.backup_id = b->id;
    sp.args = args;
    submit_job(rq, S, &sp);
out:
    backup_rec_free(b);
    project_free(p);
    return 0;
}

static int h_backup_delete(http_req *rq, void *ud)
{
    return submit_on_backup(rq, ud, "delete", AUTH_MANAGE, NULL);
}

static int h_backup_restore(http_req *rq, void *ud)
{
    svc *S = ud;
    json_t *body, *args;
    int answered = 0, db, st, cf, rc;

    body = http_body_json(rq, &answered);
    if (!body)
        return 0;
    if (bool_field(rq, body, "database", 1, &db) < 0 || bool_field(rq, body, "storage", 1, &st) < 0 ||
        bool_field(rq, body, "config", 1, &cf) < 0)
        return 0;
    if (!db && !st && !cf)
        return http_error(rq, 400, "invalid_request",
                          "nothing to restore: set at least one of database, storage, config");
    args = json_pack("{s:b,s:b,s:b}", "database", db, "storage", st, "config", cf);
    rc = submit_on_backup(rq, S, "restore", AUTH_MANAGE, args);
    json_decref(args);
    return rc;
}

static int h_backup_verify(http_req *rq, void *ud)
{
    svc *S = ud;
    json_t *body, *args;
    int answered = 0, rt, rc;

    body = http_body_json(rq, &answered);
    if (!body)
        return 0;
    if (bool_field(rq, body, "restore_test", 0, &rt) < 0)
        return 0;
    args = json_pack("{s:b}", "restore_test", rt);
    rc = submit_on_backup(rq, S, "verify", AUTH_MANAGE, args);
    json_decref(args);
    return rc;
}

/* ---- downloads ---- */

/* The archive a backup is downloaded as: <exports>/<backup>.<suffix>. */
static char *archive_path(svc *S, const backup_rec *b, int *gz, int *enc)
{
    json_t *a = json_object_get(b->meta, "archive");
    const char *comp = json_string_value(json_object_get(a, "compression"));
    *gz = !comp || strcmp(comp, "none") != 0;
    *enc = json_is_true(json_object_get(a, "encryption"));
    return sm_xasprintf("%s/%s%s%s", S->exports_dir, b->id, *gz ? ".tar.gz" : ".tar",
                        *enc ? ".gpg" : "");
}

/* Makes sure the backup's archive exists (an export job, waited for). */
static int ensure_archive(http_req *rq, svc *S, const project *p, const backup_rec *b,
                          char **path_out, uint64_t *size)
{
    int gz, enc;
    char *path = archive_path(S, b, &gz, &enc), *job = NULL;
    struct stat sb;
    sm_err err = SM_ERR_INIT;

    if (stat(path, &sb) != 0) {
        json_t *args = json_pack("{s:s,s:s,s:o}", "compression", gz ? "gzip" : "none", "path",
                                 path, "passphrase",
                                 enc ? json_string(S->enc_secret) : json_null());
        job_spec sp;
        memset(&sp, 0, sizeof(sp));
        sp.kind = "export";
        sp.project_id = p->id;
        sp.backup_id = b->id;
        sp.args = args;
        if (jobs_submit(S->J, &sp, &job, NULL, &err) < 0) {
            json_decref(args);
            free(path);
            return http_error_from(rq, &err), -1;
        }
        json_decref(args);
        /* wait for it (bounded): the archive is built at disk speed */
        for (int i = 0; i < 36000; i++) {
            json_t *st = jobs_get(S->J, job);
            const char *status = json_string_value(json_object_get(st, "status"));
            int done = status && strcmp(status, "QUEUED") && strcmp(status, "RUNNING");
            if (done && strcmp(status, "COMPLETED") != 0) {
                http_error(rq, 500, "internal", "preparing the archive failed: %s",
                           json_string_value(json_object_get(st, "error")));
                json_decref(st);
                free(job);
                free(path);
                return -1;
            }
            json_decref(st);
            if (done)
                break;
            usleep(100000);
        }
        free(job);
        if (stat(path, &sb) != 0) {
            http_error(rq, 500, "internal", "the archive of backup '%s' is missing", b->id);
            free(path);
            return -1;
        }
    }
    *size = (uint64_t)sb.st_size;
    *path_out = path;
    return 0;
}

/* Prepares the backup's archive and answers with a signed link to it:
 * {download_url, fileUrl (Studio's name), expires_at, size}. */
static void answer_link(http_req *rq, svc *S, const project *p, const backup_rec *b,
                        unsigned status)
{
    char *path = NULL, *sig, *url, *exp_iso;
    uint64_t size = 0;
    time_t exp = sm_now() + S->link_ttl;

    if (ensure_archive(rq, S, p, b, &path, &size) < 0)
        return;
    sig = download_sign(S->jwt_secret, p->id, b->id, exp);
    url = sm_xasprintf("%s/platform/download/%s/%s?expires=%lld&sig=%s", S->public_url, p->id,
                       b->id, (long long)exp, sig);
    exp_iso = iso(exp);
    http_json(rq, status, json_pack("{s:s,s:s,s:s,s:I}", "download_url", url, "fileUrl", url,
                                    "expires_at", exp_iso, "size", (json_int_t)size));
    free(path);
    free(sig);
    free(url);
    free(exp_iso);
}

static int h_backup_download_link(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    backup_rec *b = NULL;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_MANAGE, &p) < 0)
        goto out;
    if (load_backup(rq, S, p, http_param(rq, "backupID"), &b) < 0)
        goto out;
    if (strcmp(b->status, "COMPLETED") != 0) {
        http_error(rq, 409, "conflict", "backup '%s' is %s: only completed backups can be "
                                        "downloaded",
                   b->id, b->status);
        goto out;
    }
    answer_link(rq, S, p, b, 200);
out:
    backup_rec_free(b);
    project_free(p);
    return 0;
}

/* The signed link itself: no Authorization header needed. */
static int h_download(http_req *rq, void *ud)
{
    svc *S = ud;
    const char *pid = http_param(rq, "id"), *bid = http_param(rq, "backupID");
    const char *expires = http_query(rq, "expires"), *sig = http_query(rq, "sig");
    sm_err err = SM_ERR_INIT;
    backup_rec *b = NULL;
    char *path = NULL, *name = NULL;
    int gz, enc;

    if (!expires || !sig)
        return http_error(rq, 403, "forbidden", "this link is not signed: ask the API for a "
                                                "download link");
    if (download_check(S->jwt_secret, pid, bid, expires, sig, sm_now(), &err) < 0)
        return http_error(rq, 403, "forbidden", "%s", err.msg);
    if (catalog_backup_get(svc_catalog(S), bid, &b, &err) < 0 || strcmp(b->project_id, pid)) {
        backup_rec_free(b);
        return http_error(rq, 404, "not_found", "backup '%s' no longer exists", bid);
    }
    path = archive_path(S, b, &gz, &enc);
    name = sm_xstrdup(strrchr(path, '/') + 1);
    http_set_user(rq, "download-link");
    if (!sm_exists(path))
        http_error(rq, 404, "not_found", "the archive of backup '%s' is gone: ask for a new link",
                   bid);
    else
        http_file(rq, path, enc ? "application/pgp-encrypted" : gz ? "application/gzip"
                                                                    : "application/x-tar",
                  name);
    free(path);
    free(name);
    backup_rec_free(b);
    return 0;
}

/* ---- events ---- */

typedef struct sse_ctx {
    http_sse *s;
} sse_ctx;

static int sse_listener(void *ud, const char *event, json_t *state)
{
    sse_ctx *x = ud;
    char *data = json_dumps(state, JSON_COMPACT);
    int rc = http_sse_send(x->s, event, data ? data : "{}");
    free(data);
    if (!strcmp(event, "done") || rc < 0) {
        http_sse_close(x->s);
        free(x);
        return 1; /* remove */
    }
    return 0;
}

static int stream_job(http_req *rq, svc *S, const char *job)
{
    sse_ctx *x = sm_xcalloc(1, sizeof(*x));

    if (http_sse_begin(rq, &x->s) < 0) {
        free(x);
        return -1;
    }
    if (!jobs_subscribe(S->J, job, sse_listener, x)) {
        http_sse_send(x->s, "error", "{\"error\":\"not_found\",\"message\":\"unknown job\"}");
        http_sse_close(x->s);
        free(x);
    }
    return 0;
}

static int h_backup_events(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    backup_rec *b = NULL;
    char *job = NULL;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_VIEW, &p) < 0)
        goto out;
    if (load_backup(rq, S, p, http_param(rq, "backupID"), &b) < 0)
        goto out;
    job = jobs_for_backup(S->J, b->id);
    if (!job) {
        /* not running: one "done" event with its final state */
        http_sse *s = NULL;
        json_t *j = backup_json(S, b);
        char *data = json_dumps(j, JSON_COMPACT);
        if (http_sse_begin(rq, &s) == 0) {
            http_sse_send(s, "done", data);
            http_sse_close(s);
        }
        free(data);
        json_decref(j);
        goto out;
    }
    stream_job(rq, S, job);
out:
    free(job);
    backup_rec_free(b);
    project_free(p);
    return 0;
}

/* A job is visible to whoever may view its project. */
static int load_job(http_req *rq, svc *S, const auth_identity *id, json_t **out)
{
    json_t *st = jobs_get(S->J, http_param(rq, "jobId"));
    project *p = NULL;
    const char *pid;

    if (!st) {
        http_error(rq, 404, "not_found", "unknown job '%s'", http_param(rq, "jobId"));
        return -1;
    }
    pid = json_string_value(json_object_get(st, "project_id"));
    if (!id->service) {
        if (!pid || load_project(rq, S, id, pid, AUTH_VIEW, &p) < 0) {
            json_decref(st);
            return -1;
        }
        project_free(p);
    }
    *out = st;
    return 0;
}

static int h_job_get(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    json_t *st;

    if (authn(rq, S, &id) < 0 || load_job(rq, S, &id, &st) < 0)
        return 0;
    return http_json(rq, 200, st);
}

static int h_job_events(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    json_t *st;

    if (authn(rq, S, &id) < 0 || load_job(rq, S, &id, &st) < 0)
        return 0;
    json_decref(st);
    return stream_job(rq, S, http_param(rq, "jobId"));
}

static int h_jobs_list(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;

    if (authn(rq, S, &id) < 0)
        return 0;
    if (!id.service)
        return http_error(rq, 403, "forbidden", "only the service role may list all jobs");
    return http_json(rq, 200, jobs_active(S->J));
}

/* ---- schedules ---- */

/* The schedule as the API shows it: the document (secret hidden), when it
 * runs next, its last run, the recent runs and how the project stands
 * (RPO, RTO, overdue). Takes last. */
static json_t *schedule_out(svc *S, const char *pid, const json_t *doc, json_t *last)
{
    json_t *o = schedule_public(doc), *runs = NULL;
    json_t *st = scheduler_project_status(svc_catalog(S), pid, sm_now());

    json_object_set(o, "next_run_at", json_object_get(st, "next_run_at"));
    json_object_set_new(o, "last_run", last ? last : json_null());
    if (catalog_schedule_runs(svc_catalog(S), pid, 20, &runs, NULL) < 0)
        runs = json_array();
    json_object_set_new(o, "runs", runs);
    json_object_del(st, "next_run_at");
    json_object_set_new(o, "status", st);
    return o;
}

static int h_schedule_get(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *doc = NULL, *last = NULL;
    sm_err err = SM_ERR_INIT;
    int r;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_VIEW, &p) < 0)
        return 0;
    r = catalog_schedule_get(svc_catalog(S), p->id, &doc, &last, &err);
    if (r < 0) {
        http_error_from(rq, &err);
    } else {
        if (r == 1)
            doc = schedule_default();
        http_json(rq, 200, schedule_out(S, p->id, doc, last));
    }
    json_decref(doc);
    project_free(p);
    return 0;
}

static int h_schedule_put(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *body, *doc = NULL, *last = NULL;
    sm_err err = SM_ERR_INIT;
    int answered = 0;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_MANAGE, &p) < 0)
        return 0;
    body = http_body_json(rq, &answered);
    if (!body)
        goto out;
    {
        json_t *cur = NULL;
        if (catalog_schedule_get(svc_catalog(S), p->id, &cur, NULL, &err) < 0) {
            http_error_from(rq, &err);
            goto out;
        }
        doc = schedule_validate(cur, body, &err);
        json_decref(cur);
    }
    if (!doc) {
        http_error(rq, 400, "invalid_request", "%s", err.msg);
        goto out;
    }
    if (catalog_schedule_put(svc_catalog(S), p->id, doc, &err) < 0) {
        http_error_from(rq, &err);
        goto out;
    }
    catalog_schedule_get(svc_catalog(S), p->id, &body, &last, NULL);
    json_decref(body);
    http_json(rq, 200, schedule_out(S, p->id, doc, last));
out:
    json_decref(doc);
    project_free(p);
    return 0;
}

/* ---- export and import ---- */

/* ---- point-in-time recovery ---- */

static int h_pitr_get(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *out = NULL, *set;
    sm_err err = SM_ERR_INIT;
    ops_ctx o;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_VIEW, &p) < 0)
        return 0;
    ops_ctx_init(&o, svc_catalog(S), NULL);
    if (pitr_status(&o, p->id, &out, &err) < 0) {
        http_error_from(rq, &err);
    } else {
        /* the server-side settings (paths, commands) stay on the server */
        set = json_object_get(out, "settings");
        if (set)
            json_object_set(out, "archive_timeout_s", json_object_get(set, "archive_timeout"));
        json_object_del(out, "settings");
        if (json_object_get(out, "archive_lag_s"))
            json_object_set(out, "lag_seconds", json_object_get(out, "archive_lag_s"));
        http_json(rq, 200, out);
        out = NULL;
    }
    json_decref(out);
    project_free(p);
    return 0;
}

static int submit_pitr(http_req *rq, svc *S, const char *kind, json_t *args)
{
    auth_identity id;
    project *p = NULL;
    job_spec sp;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_MANAGE, &p) < 0)
        return 0;
    memset(&sp, 0, sizeof(sp));
    sp.kind = kind;
    sp.project_id = p->id;
    sp.args = args;
    submit_job(rq, S, &sp);
    project_free(p);
    return 0;
}

static int h_pitr_restore(http_req *rq, void *ud)
{
    svc *S = ud;
    json_t *body, *args;
    int answered = 0, bad = 0, latest = 0, rc;
    const char *tt, *tl;

    body = http_body_json(rq, &answered);
    if (!body)
        return 0;
    tt = str_field(body, "target_time", &bad);
    tl = str_field(body, "target_lsn", &bad);
    if (bad || bool_field(rq, body, "latest", 0, &latest) < 0)
        return bad ? http_error(rq, 400, "invalid_request",
                                "'target_time' and 'target_lsn' must be strings")
                   : 0;
    if (!!tt + !!tl + latest != 1)
        return http_error(rq, 400, "invalid_request",
                          "give one of target_time (ISO 8601, UTC), target_lsn or latest: true");
    args = json_pack("{s:s?,s:s?,s:b}", "target_time", tt, "target_lsn", tl, "latest", latest);
    rc = submit_pitr(rq, S, "pitr-restore", args);
    json_decref(args);
    return rc;
}

static int h_pitr_base(http_req *rq, void *ud)
{
    return submit_pitr(rq, ud, "pitr-base", NULL);
}

static int h_export(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *body, *args = NULL;
    backup_rec **v = NULL, *b = NULL;
    size_t n = 0;
    int answered = 0, bad = 0, gz = 1, enc = 0;
    const char *bid, *comp;
    char *job = NULL, *path = NULL;
    sm_err err = SM_ERR_INIT;
    job_spec sp;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "id"), AUTH_MANAGE, &p) < 0)
        return 0;
    body = http_body_json(rq, &answered);
    if (!body)
        goto out;
    bid = str_field(body, "backup_id", &bad);
    comp = str_field(body, "compression", &bad);
    if (bad || (comp && strcmp(comp, "gzip") && strcmp(comp, "zstd") && strcmp(comp, "none"))) {
        http_error(rq, 400, "invalid_request",
                   "'backup_id' must be a string and 'compression' one of gzip, zstd, none");
        goto out;
    }
    if (bool_field(rq, body, "encryption", 0, &enc) < 0)
        goto out;
    if (bid) {
        if (load_backup(rq, S, p, bid, &b) < 0)
            goto out;
    } else if (catalog_backup_list(svc_catalog(S), p->id, NULL, &v, &n, &err) == 0) {
        for (size_t i = 0; i < n && !b; i++)
            if (!strcmp(v[i]->status, "COMPLETED") && !strcmp(v[i]->type, "FULL")) {
                b = v[i];
                v[i] = NULL;
            }
    }
    if (!b) {
        http_error(rq, 409, "conflict", "project '%s' has no completed FULL backup to export: "
                                        "create one first (POST /platform/projects/%s/backups)",
                   p->id, p->id);
        goto out;
    }
    if (strcmp(b->status, "COMPLETED") != 0) {
        http_error(rq, 409, "conflict", "backup '%s' is %s: only completed backups can be exported",
                   b->id, b->status);
        goto out;
    }
    (void)gz;
    path = sm_xasprintf("%s/%s-export%s%s", S->exports_dir, b->id,
                        comp && !strcmp(comp, "zstd") ? ".tar.zst"
                        : comp && !strcmp(comp, "none") ? ".tar"
                                                        : ".tar.gz",
                        enc ? ".gpg" : "");
    args = json_pack("{s:s,s:s,s:o}", "compression", comp ? comp : "gzip", "path", path,
                     "passphrase", enc ? json_string(S->enc_secret) : json_null());
    memset(&sp, 0, sizeof(sp));
    sp.kind = "export";
    sp.project_id = p->id;
    sp.backup_id = b->id;
    sp.args = args;
    if (jobs_submit(S->J, &sp, &job, NULL, &err) < 0) {
        http_error_from(rq, &err);
        goto out;
    }
    {
        json_t *st = jobs_get(S->J, job);
        if (!st)
            st = json_object();
        json_object_set_new(st, "job_id", json_string(job));
        json_object_set_new(st, "backup_id", json_string(b->id));
        http_json(rq, 202, st);
    }
out:
    json_decref(args);
    free(job);
    free(path);
    backup_list_free(v, n);
    backup_rec_free(b);
    project_free(p);
    return 0;
}

static int h_export_link(http_req *rq, void *ud)
{
    /* the archive of a finished export job, by signed link */
    svc *S = ud;
    auth_identity id;
    json_t *st;
    const char *status, *bid, *pid;
    char *sig = NULL, *url = NULL, *exp_iso = NULL;
    time_t exp = sm_now() + S->link_ttl;

    if (authn(rq, S, &id) < 0 || load_job(rq, S, &id, &st) < 0)
        return 0;
    status = json_string_value(json_object_get(st, "status"));
    bid = json_string_value(json_object_get(st, "backup_id"));
    pid = json_string_value(json_object_get(st, "project_id"));
    if (strcmp(json_string_value(json_object_get(st, "kind")), "export") != 0 || !bid) {
        json_decref(st);
        return http_error(rq, 400, "invalid_request", "job '%s' is not an export",
                          http_param(rq, "jobId"));
    }
    if (strcmp(status, "COMPLETED") != 0) {
        json_decref(st);
        return http_error(rq, 409, "conflict", "the export is %s", status);
    }
    sig = download_sign(S->jwt_secret, pid, bid, exp);
    url = sm_xasprintf("%s/platform/download/%s/%s?expires=%lld&sig=%s", S->public_url, pid, bid,
                       (long long)exp, sig);
    exp_iso = iso(exp);
    http_json(rq, 200, json_pack("{s:s,s:s,s:O}", "download_url", url, "expires_at", exp_iso,
                                 "size", json_object_get(json_object_get(st, "result"), "size")));
    json_decref(st);
    free(sig);
    free(url);
    free(exp_iso);
    return 0;
}

static char *slug_id(const char *name)
{
    char buf[48];
    size_t k = 0;
    char *rnd = sm_random_hex(3), *out;

    for (const char *c = name; *c && k < 30; c++) {
        char ch = *c >= 'A' && *c <= 'Z' ? (char)(*c + 32) : *c;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            buf[k++] = ch;
        else if (k && buf[k - 1] != '-')
            buf[k++] = '-';
    }
    while (k && buf[k - 1] == '-')
        k--;
    buf[k] = '\0';
    out = sm_xasprintf("%s%s%s", k ? buf : "project", "-", rnd);
    free(rnd);
    return out;
}

static int h_import(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    const char *file = http_upload_path(rq), *name = http_form_field(rq, "new_project_name");
    const char *pid = http_form_field(rq, "id"), *db = http_form_field(rq, "db_url");
    const char *storage = http_form_field(rq, "storage_dir");
    char *newid = NULL, *job = NULL, *keep = NULL;
    json_t *args = NULL;
    sm_err err = SM_ERR_INIT;
    job_spec sp;
    catalog *c;

    if (authn(rq, S, &id) < 0 || !(c = need_cat(rq, S)))
        return 0;
    if (!id.service)
        return http_error(rq, 403, "forbidden", "only the service role may import projects: %s",
                          HOST_FIELDS_WHY);
    if (!file)
        return http_error(rq, 400, "invalid_request", "send the archive as the multipart field "
                                                      "'file'");
    if (!name || !*name)
        return http_error(rq, 400, "invalid_request", "'new_project_name' is required");
    if (!db || !storage)
        return http_error(rq, 400, "invalid_request",
                          "'db_url' and 'storage_dir' are required: where the new project's "
                          "database and storage files live");
    newid = pid ? sm_xstrdup(pid) : slug_id(name);
    if (project_id_check(newid, &err) < 0) {
        free(newid);
        return http_error(rq, 400, "invalid_request", "%s", err.msg);
    }
    /* the upload is removed when the handler returns: hand it to the job */
    keep = sm_xasprintf("%s/import-%s-%ld.archive", S->uploads_dir, newid, (long)getpid());
    if (rename(file, keep) != 0) {
        free(newid);
        free(keep);
        return http_error(rq, 500, "internal", "cannot keep the upload: %s", strerror(errno));
    }
    args = json_pack("{s:s,s:o,s:{s:s,s:s,s:s,s:s,s:o,s:o,s:o}}", "file", keep, "passphrase",
                     http_form_field(rq, "passphrase")
                         ? json_string(http_form_field(rq, "passphrase"))
                         : json_null(),
                     "project", "id", newid, "name", name, "db_url", db, "storage_dir", storage,
                     "config_dir",
                     http_form_field(rq, "config_dir")
                         ? json_string(http_form_field(rq, "config_dir"))
                         : json_null(),
                     "org_id",
                     http_form_field(rq, "org_id") ? json_string(http_form_field(rq, "org_id"))
                                                   : json_null(),
                     "owner", id.service ? json_null() : json_string(id.sub));
    memset(&sp, 0, sizeof(sp));
    sp.kind = "import";
    sp.project_id = newid;
    sp.args = args;
    if (jobs_submit(S->J, &sp, &job, NULL, &err) < 0) {
        unlink(keep);
        http_error_from(rq, &err);
    } else {
        json_t *st = jobs_get(S->J, job);
        if (!st)
            st = json_object();
        json_object_set_new(st, "job_id", json_string(job));
        json_object_set_new(st, "project_id", json_string(newid));
        http_json(rq, 202, st);
    }
    json_decref(args);
    free(job);
    free(keep);
    free(newid);
    return 0;
}

/* ---- Supabase Studio's own Backups page ---- */

/* Studio numbers backups; ours are named. The number is the record's
 * position in the project's list, oldest first (stable: records are only
 * appended or deleted, and a deleted number is never reused for another
 * backup's restore because the name travels along). */
static int h_studio_backups(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    backup_rec **v = NULL;
    size_t n = 0;
    json_t *arr;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "ref"), AUTH_VIEW, &p) < 0)
        return 0;
    catalog_backup_list(svc_catalog(S), p->id, NULL, &v, &n, NULL);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i]->status, "COMPLETED") != 0)
            continue;
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:s,s:b,s:s,s:s,s:I}", "id", (json_int_t)(n - i),
                           "backup_id", v[i]->id, "inserted_at", v[i]->created_at, "status",
                           "COMPLETED", "isPhysicalBackup", 0, "project_id", p->id, "type",
                           v[i]->type, "size", (json_int_t)v[i]->size));
    }
    http_json(rq, 200,
              json_pack("{s:s,s:b,s:b,s:o,s:{}}", "region", "local", "pitr_enabled", 0,
                        "walg_enabled", 0, "backups", arr, "physicalBackupData"));
    backup_list_free(v, n);
    project_free(p);
    return 0;
}

/* Finds the backup a Studio request names: {"id": number or backup id}. */
static char *studio_backup_id(svc *S, const project *p, json_t *body)
{
    json_t *idv = json_object_get(body, "id");
    backup_rec **v = NULL;
    size_t n = 0;
    char *out = NULL;

    if (json_is_string(idv))
        return sm_xstrdup(json_string_value(idv));
    if (!json_is_integer(idv))
        return NULL;
    if (catalog_backup_list(svc_catalog(S), p->id, NULL, &v, &n, NULL) == 0) {
        json_int_t k = json_integer_value(idv);
        if (k >= 1 && (size_t)k <= n)
            out = sm_xstrdup(v[n - (size_t)k]->id);
    }
    backup_list_free(v, n);
    return out;
}

static int h_studio_restore(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    json_t *body, *args = json_pack("{s:b,s:b,s:b}", "database", 1, "storage", 1, "config", 1);
    int answered = 0;
    char *bid = NULL, *job = NULL;
    sm_err err = SM_ERR_INIT;
    job_spec sp;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "ref"), AUTH_MANAGE, &p) < 0)
        goto out;
    body = http_body_json(rq, &answered);
    if (!body)
        goto out;
    bid = studio_backup_id(S, p, body);
    if (!bid) {
        http_error(rq, 400, "invalid_request", "'id' must name a backup of project '%s'", p->id);
        goto out;
    }
    memset(&sp, 0, sizeof(sp));
    sp.kind = "restore";
    sp.project_id = p->id;
    sp.backup_id = bid;
    sp.args = args;
    if (jobs_submit(S->J, &sp, &job, NULL, &err) < 0)
        http_error_from(rq, &err);
    else
        http_json(rq, 201, json_pack("{s:s,s:s}", "job_id", job, "backup_id", bid));
out:
    json_decref(args);
    free(bid);
    free(job);
    project_free(p);
    return 0;
}

static int h_studio_download(http_req *rq, void *ud)
{
    svc *S = ud;
    auth_identity id;
    project *p = NULL;
    backup_rec *b = NULL;
    json_t *body;
    int answered = 0;
    char *bid = NULL;

    if (authn(rq, S, &id) < 0 ||
        load_project(rq, S, &id, http_param(rq, "ref"), AUTH_MANAGE, &p) < 0)
        goto out;
    body = http_body_json(rq, &answered);
    if (!body)
        goto out;
    bid = studio_backup_id(S, p, body);
    if (!bid || load_backup(rq, S, p, bid, &b) < 0) {
        if (!bid)
            http_error(rq, 400, "invalid_request", "'id' must name a backup of project '%s'",
                       p->id);
        goto out;
    }
    answer_link(rq, S, p, b, 201);
out:
    free(bid);
    backup_rec_free(b);
    project_free(p);
    return 0;
}

/* ---- health, metrics, API description ---- */

static int h_health(http_req *rq, void *ud)
{
    svc *S = ud;
    catalog *c = svc_catalog(S);
    struct statvfs sv;
    int cat_ok = c && catalog_schema_version(c) == CATALOG_SCHEMA_VERSION;
    int store_ok = statvfs(S->home, &sv) == 0 && access(S->home, W_OK) == 0;
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "status", cat_ok && store_ok ? "ok" : "degraded",
                          "catalog", cat_ok ? "ok" : "unavailable", "store",
                          store_ok ? "ok" : "unavailable", "uptime_s",
                          (json_int_t)(time(NULL) - S->started));
    if (store_ok)
        json_object_set_new(o, "store_free_bytes",
                            json_integer((json_int_t)((uint64_t)sv.f_bavail * sv.f_frsize)));
    if (S->sched)
        json_object_set_new(o, "scheduler", scheduler_status(S->sched));
    return http_json(rq, cat_ok && store_ok ? 200 : 503, o);
}

static void metric(sm_buf *b, const char *name, const char *help, const char *type)
{
    sm_buf_putf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int h_metrics(http_req *rq, void *ud)
{
    svc *S = ud;
    sm_buf b = SM_BUF_INIT;
    json_t *jm = jobs_metrics(S->J), *v;
    const char *k;
    project **ps = NULL;
    size_t np = 0;
    catalog *c = svc_catalog(S);
    int rc;

    metric(&b, "supamanager_up", "1 while the service runs", "gauge");
    sm_buf_puts(&b, "supamanager_up 1\n");
    metric(&b, "supamanager_jobs", "jobs by state since the service started", "gauge");
    json_object_foreach(json_object_get(jm, "by_status"), k, v)
    sm_buf_putf(&b, "supamanager_jobs{state=\"%s\"} %lld\n", k, (long long)json_integer_value(v));
    metric(&b, "supamanager_job_failures_total", "failed jobs by kind", "counter");
    json_object_foreach(json_object_get(jm, "failures_by_kind"), k, v)
    sm_buf_putf(&b, "supamanager_job_failures_total{kind=\"%s\"} %lld\n", k,
                (long long)json_integer_value(v));
    json_decref(jm);
    metric(&b, "supamanager_backup_last_success_timestamp_seconds",
           "when each project's newest completed backup finished", "gauge");
    if (c && catalog_project_list(c, &ps, &np, NULL) == 0) {
        sm_buf dur = SM_BUF_INIT, size = SM_BUF_INIT, fails = SM_BUF_INIT;
        sm_buf overdue = SM_BUF_INIT, rpos = SM_BUF_INIT, rtos = SM_BUF_INIT;
        for (size_t i = 0; i < np; i++) {
            backup_rec **v2 = NULL;
            size_t n2 = 0;
            unsigned failed = 0;
            int have = 0;
            if (catalog_backup_list(c, ps[i]->id, NULL, &v2, &n2, NULL) < 0)
                continue;
            for (size_t k2 = 0; k2 < n2; k2++) {
                if (!strcmp(v2[k2]->status, "FAILED"))
                    failed++;
                if (!have && !strcmp(v2[k2]->status, "COMPLETED")) {
                    time_t t = 0;
                    sm_time_parse_iso(v2[k2]->finished_at, &t);
                    sm_buf_putf(&b,
                                "supamanager_backup_last_success_timestamp_seconds{project=\"%s\"} "
                                "%lld\n",
                                ps[i]->id, (long long)t);
                    sm_buf_putf(&dur, "supamanager_backup_duration_seconds{project=\"%s\"} %.3f\n",
                                ps[i]->id, v2[k2]->duration_s);
                    sm_buf_putf(&size, "supamanager_backup_size_bytes{project=\"%s\"} %llu\n",
                                ps[i]->id, (unsigned long long)v2[k2]->size);
                    have = 1;
                }
            }
            sm_buf_putf(&fails, "supamanager_backups_failed{project=\"%s\"} %u\n", ps[i]->id,
                        failed);
            backup_list_free(v2, n2);
            {
                json_t *st = scheduler_project_status(c, ps[i]->id, sm_now());
                json_t *rpo = json_object_get(st, "rpo_s"), *rto = json_object_get(st, "rto_s");
                if (json_is_true(json_object_get(st, "enabled")))
                    sm_buf_putf(&overdue, "supamanager_backup_overdue{project=\"%s\"} %d\n",
                                ps[i]->id, json_is_true(json_object_get(st, "overdue")));
                if (json_is_integer(rpo))
                    sm_buf_putf(&rpos, "supamanager_project_rpo_seconds{project=\"%s\"} %lld\n",
                                ps[i]->id, (long long)json_integer_value(rpo));
                if (json_is_number(rto))
                    sm_buf_putf(&rtos, "supamanager_project_rto_seconds{project=\"%s\"} %.3f\n",
                                ps[i]->id, json_number_value(rto));
                json_decref(st);
            }
        }
        metric(&b, "supamanager_backup_duration_seconds", "duration of the newest completed backup",
               "gauge");
        sm_buf_puts(&b, sm_buf_str(&dur));
        metric(&b, "supamanager_backup_size_bytes", "size of the newest completed backup", "gauge");
        sm_buf_puts(&b, sm_buf_str(&size));
        metric(&b, "supamanager_backups_failed", "failed backups recorded per project", "gauge");
        sm_buf_puts(&b, sm_buf_str(&fails));
        metric(&b, "supamanager_backup_overdue",
               "1 when a scheduled project's newest good backup is older than its schedule "
               "promises (plus grace)",
               "gauge");
        sm_buf_puts(&b, sm_buf_str(&overdue));
        metric(&b, "supamanager_project_rpo_seconds", "age of the newest restorable backup",
               "gauge");
        sm_buf_puts(&b, sm_buf_str(&rpos));
        metric(&b, "supamanager_project_rto_seconds", "duration of the last restore test",
               "gauge");
        sm_buf_puts(&b, sm_buf_str(&rtos));
        sm_buf_release(&dur);
        sm_buf_release(&size);
        sm_buf_release(&fails);
        sm_buf_release(&overdue);
        sm_buf_release(&rpos);
        sm_buf_release(&rtos);
        project_list_free(ps, np);
    }
    if (S->sched) {
        json_t *ss = scheduler_status(S->sched);
        metric(&b, "supamanager_schedule_runs_total", "scheduled runs since the service started",
               "counter");
        json_object_foreach(json_object_get(ss, "runs"), k, v)
        sm_buf_putf(&b, "supamanager_schedule_runs_total{result=\"%s\"} %lld\n", k,
                    (long long)json_integer_value(v));
        json_decref(ss);
    }
    if (S->N) {
        json_t *nm = notifier_metrics(S->N);
        metric(&b, "supamanager_notifications_total", "notifications by channel and result",
               "counter");
        for (int ch = 0; ch < 2; ch++) {
            const char *chn = ch ? "webhook" : "email";
            json_t *x = json_object_get(nm, chn);
            sm_buf_putf(&b, "supamanager_notifications_total{channel=\"%s\",result=\"sent\"} "
                            "%lld\n",
                        chn, (long long)json_integer_value(json_object_get(x, "sent")));
            sm_buf_putf(&b, "supamanager_notifications_total{channel=\"%s\",result=\"failed\"} "
                            "%lld\n",
                        chn, (long long)json_integer_value(json_object_get(x, "failed")));
        }
        json_decref(nm);
    }
    rc = http_static(rq, 200, "text/plain; version=0.0.4", b.data ? b.data : (unsigned char *)"",
                     b.len);
    sm_buf_release(&b);
    return rc;
}

static int h_openapi(http_req *rq, void *ud)
{
    (void)ud;
    return http_static(rq, 200, "application/json", sm_openapi_json, sm_openapi_json_len);
}

/* ---- the table ---- */

static const http_route routes[] = {
    {"GET", "/health", h_health, HTTP_PUBLIC},
    {"GET", "/metrics", h_metrics, HTTP_PUBLIC},
    {"GET", "/openapi.json", h_openapi, HTTP_PUBLIC},
    /* the web UI (not part of the API: ui_* handlers, not in openapi.json) */
    {"GET", "/", ui_index, HTTP_PUBLIC},
    {"GET", "/ui/{file}", ui_asset, HTTP_PUBLIC},
    {"GET", "/platform/projects", h_projects_list, 0},
    {"POST", "/platform/projects", h_projects_create, 0},
    {"POST", "/platform/projects/import", h_import, HTTP_UPLOAD},
    {"GET", "/platform/projects/{id}", h_project_get, 0},
    {"PATCH", "/platform/projects/{id}", h_project_patch, 0},
    {"POST", "/platform/projects/{id}/store/check", h_store_check, 0},
    {"GET", "/platform/projects/{id}/backups", h_backups_list, 0},
    {"POST", "/platform/projects/{id}/backups", h_backup_create, 0},
    {"GET", "/platform/projects/{id}/backups/{backupID}", h_backup_get, 0},
    {"DELETE", "/platform/projects/{id}/backups/{backupID}", h_backup_delete, 0},
    {"POST", "/platform/projects/{id}/backups/{backupID}/restore", h_backup_restore, 0},
    {"GET", "/platform/projects/{id}/pitr", h_pitr_get, 0},
    {"POST", "/platform/projects/{id}/pitr/restore", h_pitr_restore, 0},
    {"POST", "/platform/projects/{id}/pitr/base-backups", h_pitr_base, 0},
    {"POST", "/platform/projects/{id}/backups/{backupID}/verify", h_backup_verify, 0},
    {"GET", "/platform/projects/{id}/backups/{backupID}/download", h_backup_download_link, 0},
    {"GET", "/platform/projects/{id}/backups/{backupID}/events", h_backup_events, 0},
    {"GET", "/platform/projects/{id}/backup-schedule", h_schedule_get, 0},
    {"PUT", "/platform/projects/{id}/backup-schedule", h_schedule_put, 0},
    {"POST", "/platform/projects/{id}/export", h_export, 0},
    {"GET", "/platform/download/{id}/{backupID}", h_download, HTTP_PUBLIC},
    {"GET", "/platform/jobs", h_jobs_list, 0},
    {"GET", "/platform/jobs/{jobId}", h_job_get, 0},
    {"GET", "/platform/jobs/{jobId}/events", h_job_events, 0},
    {"GET", "/platform/jobs/{jobId}/download", h_export_link, 0},
    {"GET", "/platform/organizations", h_orgs_list, 0},
    {"POST", "/platform/organizations", h_orgs_create, 0},
    {"GET", "/platform/organizations/{org}/members", h_members_list, 0},
    {"POST", "/platform/organizations/{org}/members", h_members_add, 0},
    {"GET", "/platform/database/{ref}/backups", h_studio_backups, 0},
    {"POST", "/platform/database/{ref}/backups/restore", h_studio_restore, 0},
    {"POST", "/platform/database/{ref}/backups/download", h_studio_download, 0},
    {NULL, NULL, NULL, 0},
};

const http_route *svc_routes(void)
{
    return routes;
}
