/* `supamanager serve`: the HTTP API, the job workers (and later the
 * scheduler), on one process. Configuration: a JSON file (--config) and
 * environment variables, which win over the file; see docs/SERVICE.md. */
#include "service/service.h"

#include "cli/output.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "service/auth.h"
#include "service/demo.h"
#include "service/notify.h"
#include "service/scheduler.h"

#include <curl/curl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void close_cat(void *p)
{
    catalog_close(p);
}

/* Demo mode makes up its secrets once and keeps them (0600) under the home,
 * so backups taken in one run still open in the next. Secrets given in the
 * environment or the config file win. */
static int demo_secrets(const char *home, char **jwt, char **enc, sm_err *err)
{
    char *path = sm_path_join(home, "demo-secrets.json");
    sm_buf raw = SM_BUF_INIT;
    json_t *doc = NULL;
    int rc = -1, r;

    if (sm_mkdir_p(home, 0700, err) < 0)
        goto out;
    r = sm_read_file(path, &raw, 65536, 1, err);
    if (r < 0)
        goto out;
    if (r == 0)
        doc = json_loadb((const char *)raw.data, raw.len, 0, NULL);
    if (!json_is_string(json_object_get(doc, "jwt_secret")) ||
        !json_is_string(json_object_get(doc, "encryption_secret"))) {
        char *a = sm_random_hex(32), *b = sm_random_hex(32), *text;
        json_decref(doc);
        doc = json_pack("{s:s,s:s}", "jwt_secret", a, "encryption_secret", b);
        free(a);
        free(b);
        text = json_dumps(doc, JSON_INDENT(2));
        r = sm_write_file_atomic(path, text, strlen(text), 0, err);
        free(text);
        if (r < 0)
            goto out;
    }
    if (!*jwt)
        *jwt = sm_xstrdup(json_string_value(json_object_get(doc, "jwt_secret")));
    if (!*enc)
        *enc = sm_xstrdup(json_string_value(json_object_get(doc, "encryption_secret")));
    rc = 0;
out:
    json_decref(doc);
    sm_buf_release(&raw);
    free(path);
    return rc;
}

/* value: env, then the config file, then the default */
static const char *setting(json_t *cfg, const char *env, const char *key, const char *dflt)
{
    const char *e = getenv(env);
    if (e && *e)
        return e;
    if (json_is_string(json_object_get(cfg, key)))
        return json_string_value(json_object_get(cfg, key));
    return dflt;
}

static void usage_serve(void)
{
    fputs("usage: supamanager serve [--listen ADDR:PORT] [--config FILE] [--demo]\n"
          "\n"
          "Settings (environment, or keys of the JSON config file):\n"
          "  SUPAMANAGER_LISTEN / listen          127.0.0.1:8080\n"
          "  SUPAMANAGER_HOME / home              /var/lib/supamanager\n"
          "  JWT_SECRET / jwt_secret              verifies API tokens (HS256), signs links\n"
          "  ENCRYPTION_SECRET / encryption_secret  encrypts every backup\n"
          "  SUPAMANAGER_PUBLIC_URL / public_url  base of download links (http://LISTEN)\n"
          "  SUPAMANAGER_MAX_JOBS / max_jobs      jobs running at once (2)\n"
          "  SUPAMANAGER_MAX_UPLOAD / max_upload  largest import upload (10G)\n",
          stdout);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"demo", no_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen_arg = NULL, *config_file = NULL, *listen;
    json_t *cfg = NULL;
    int demo = 0, opt, rc = 1, sig;
    svc S;
    sm_err err = SM_ERR_INIT;
    http_server *hs = NULL;
    http_config hc;
    jobs_config jc;
    sigset_t set;
    uint64_t v;
    demo_info di;
    int demo_on = 0, ncfg_on = 0;
    notify_config ncfg;
    scheduler_config scfg;

    memset(&S, 0, sizeof(S));
    memset(&di, 0, sizeof(di));
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l': listen_arg = optarg; break;
        case 'c': config_file = optarg; break;
        case 'd': demo = 1; break;
        case 'h': usage_serve(); return 0;
        default: return cli_usage("unknown option for `serve`");
        }
    }
    if (config_file) {
        json_error_t je;
        cfg = json_load_file(config_file, 0, &je);
        if (!json_is_object(cfg)) {
            fprintf(stderr, "supamanager: error: cannot read the config file '%s': %s\n",
                    config_file, cfg ? "not a JSON object" : je.text);
            json_decref(cfg);
            return 2;
        }
    }
    /* one thread per connection: without a cap glibc gives many of them an
     * arena of their own, and the footprint grows with the connection count */
    mallopt(M_ARENA_MAX, 4);
    /* large buffers (packs, chunks) always mmapped and given back when freed:
     * glibc's adaptive threshold would otherwise keep them in the arenas,
     * and the footprint would creep up with every job */
    mallopt(M_MMAP_THRESHOLD, 128 << 10);
    sm_log_set_json(1);
    if (sm_log_get_level() > SM_LOG_INFO)
        sm_log_set_level(SM_LOG_INFO);
    listen = listen_arg ? listen_arg : setting(cfg, "SUPAMANAGER_LISTEN", "listen", "127.0.0.1:8080");
    S.home = sm_xstrdup(setting(cfg, "SUPAMANAGER_HOME", "home", "/var/lib/supamanager"));
    setenv("SUPAMANAGER_HOME", S.home, 1);
    S.jwt_secret = setting(cfg, "JWT_SECRET", "jwt_secret", NULL)
                       ? sm_xstrdup(setting(cfg, "JWT_SECRET", "jwt_secret", NULL))
                       : NULL;
    S.enc_secret = setting(cfg, "ENCRYPTION_SECRET", "encryption_secret", NULL)
                       ? sm_xstrdup(setting(cfg, "ENCRYPTION_SECRET", "encryption_secret", NULL))
                       : NULL;
    if (demo) {
        /* embedded defaults: secrets are made up and kept under the home */
        if (demo_secrets(S.home, &S.jwt_secret, &S.enc_secret, &err) < 0)
            goto fail;
    }
    if (!S.jwt_secret || strlen(S.jwt_secret) < 16) {
        sm_err_set(&err, SM_E_USAGE, "JWT_SECRET is %s", S.jwt_secret ? "too short" : "not set");
        sm_err_hint(&err, "Set JWT_SECRET (at least 16 characters; Supabase's own JWT secret, so "
                          "its tokens work here) or run `supamanager serve --demo`.");
        goto fail;
    }
    if (!S.enc_secret) {
        sm_err_set(&err, SM_E_BADKEY, "ENCRYPTION_SECRET is not set");
        sm_err_hint(&err, "Set ENCRYPTION_SECRET: it encrypts every backup; keep a copy safe.");
        goto fail;
    }
    S.public_url = sm_xstrdup(setting(cfg, "SUPAMANAGER_PUBLIC_URL", "public_url", ""));
    if (!*S.public_url) {
        free(S.public_url);
        S.public_url = sm_xasprintf("http://%s", listen);
    }
    S.exports_dir = sm_path_join(S.home, "exports");
    S.uploads_dir = sm_path_join(S.home, "uploads");
    if (sm_mkdir_p(S.exports_dir, 0700, &err) < 0 || sm_mkdir_p(S.uploads_dir, 0700, &err) < 0)
        goto fail;
    S.max_upload = 10ull << 30;
    if (sm_parse_size(setting(cfg, "SUPAMANAGER_MAX_UPLOAD", "max_upload", "10G"), &v) == 0)
        S.max_upload = v;
    S.link_ttl = 3600;
    S.started = time(NULL);
    pthread_key_create(&S.cat_key, close_cat);

    /* the demo project comes first: the job pool cleans up per project */
    if (demo) {
        if (demo_setup(S.home, &di, &err) < 0)
            goto fail;
        demo_on = 1;
    }
    /* block the signals before any thread starts, so all inherit the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* notifications, then the scheduler that sends them, then the jobs that
     * report to it */
    if (notify_config_load(&ncfg, json_object_get(cfg, "notifications"), &err) < 0)
        goto fail;
    ncfg_on = 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (notifier_start(&S.N, &ncfg, &err) < 0)
        goto fail;
    memset(&scfg, 0, sizeof(scfg));
    scfg.home = S.home;
    scfg.N = S.N;
    scfg.ncfg = &ncfg;
    scfg.secret = S.enc_secret;
    S.sched = scheduler_new(&scfg);

    memset(&jc, 0, sizeof(jc));
    jc.home = S.home;
    jc.secret = S.enc_secret;
    jc.max_running = 2;
    if (sm_parse_u64(setting(cfg, "SUPAMANAGER_MAX_JOBS", "max_jobs", "2"), 64, &v) == 0 && v > 0)
        jc.max_running = (unsigned)v;
    jc.min_free = setting(cfg, "SUPAMANAGER_MIN_FREE", "min_free", NULL);
    jc.on_done = scheduler_job_done;
    jc.on_done_ud = S.sched;
    if (jobs_start(&S.J, &jc, &err) < 0)
        goto fail;
    if (scheduler_start(S.sched, S.J, &err) < 0)
        goto fail;

    memset(&hc, 0, sizeof(hc));
    hc.listen = listen;
    hc.max_upload = S.max_upload;
    hc.upload_dir = S.uploads_dir;
    hc.access_log = 1;
    if (http_server_start(&hs, &hc, svc_routes(), &S, &err) < 0)
        goto fail;
    sm_log(SM_LOG_INFO, "listening on %s (home %s)", listen, S.home);
    printf("SupaManager Backup is listening on %s (web UI: %s/)\n", S.public_url, S.public_url);
    if (demo) {
        char *tok = auth_sign(S.jwt_secret, "service_role", NULL, time(NULL), 30L * 86400, &err);
        printf("demo project '%s' (database %s, storage %s)\n", di.project_id, di.db_url,
               di.storage_dir);
        printf("sign in to the web UI with this service-role token (valid 30 days):\n%s\n",
               tok ? tok : "?");
        printf("try: curl -H 'Authorization: Bearer %s' %s/platform/projects/%s/backups\n",
               tok ? tok : "?", S.public_url, di.project_id);
        free(tok);
    }
    fflush(stdout);

    sigwait(&set, &sig);
    sm_log(SM_LOG_INFO, "signal %d: shutting down (running jobs stop at a safe point)", sig);
    http_server_stop(hs);
    hs = NULL;
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    http_server_stop(hs);
    scheduler_stop(S.sched);
    jobs_stop(S.J);
    notifier_stop(S.N);
    scheduler_free(S.sched);
    if (ncfg_on)
        notify_config_free(&ncfg);
    if (demo_on)
        demo_teardown(&di);
    json_decref(cfg);
    free(S.home);
    if (S.jwt_secret)
        sm_wipe(S.jwt_secret, strlen(S.jwt_secret));
    free(S.jwt_secret);
    if (S.enc_secret)
        sm_wipe(S.enc_secret, strlen(S.enc_secret));
    free(S.enc_secret);
    free(S.public_url);
    free(S.exports_dir);
    free(S.uploads_dir);
    return rc;
}
