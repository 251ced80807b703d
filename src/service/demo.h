/* `supamanager serve --demo`: the service on embedded defaults, with a demo
 * project it makes itself, so the API and the web UI can be tried without a
 * Supabase installation.
 *
 *   demo_info d;
 *   if (demo_setup(home, &d, &err) < 0) ...   // cluster running, project "demo" registered
 *   ... jobs_start, serve ...
 *   demo_teardown(&d);                          // stops the cluster, frees d's strings
 *
 * The demo project looks like a self-hosted Supabase project:
 *  - a throwaway PostgreSQL cluster (the newest major installed under
 *    /usr/lib/postgresql, 15 on Debian 12) listening on 127.0.0.1 only, with
 *    trust authentication, whose database `postgres` (the database Supabase
 *    uses) holds the Supabase roles, schemas (auth, storage, realtime, ...)
 *    and the sample app of tests/fixtures/supabase (roles.sql, init.sql,
 *    sample-data.sql, built into the binary), plus 24 extra gallery images;
 *  - a storage tree <home>/demo/storage laid out as the Storage API's file
 *    backend lays it out (stub/stub/<bucket>/<object>/<version>, with the
 *    user.supabase.content-type and user.supabase.cache-control xattrs),
 *    matching the storage.objects rows;
 *  - a config directory <home>/demo/config (.env, docker-compose.yml,
 *    kong.yml; demo values only, no real secrets).
 *
 * Where the cluster lives: <home>/demo/pg. PostgreSQL refuses to run as
 * root, so as root the server programs run as user postgres (runuser) and
 * the cluster directory must be reachable by postgres; when <home> is not
 * (the service creates it 0700), the cluster goes to
 * /var/tmp/supamanager-demo-<uid>-<8 hex digits of the home's SHA-256>
 * instead (one per home, so two homes never share a cluster), which is
 * logged. <home>/demo/demo.json remembers where, the port and whether the
 * data was loaded.
 *
 * Not thread-safe: call from main() before starting the service.
 */
#ifndef SM_SERVICE_DEMO_H
#define SM_SERVICE_DEMO_H

#include "core/err.h"

typedef struct demo_info {
    char *project_id;  /* "demo" */
    char *db_url;      /* postgresql://postgres@127.0.0.1:PORT/postgres */
    char *storage_dir; /* <home>/demo/storage */
    char *config_dir;  /* <home>/demo/config */
    char *cluster_dir; /* the cluster's parent directory (data in <cluster_dir>/data) */
    char *bindir;      /* the PostgreSQL programs used */
    int port;
    int major;   /* PostgreSQL major version */
    int created; /* 1: this call made the cluster and loaded it */
    int started; /* 1: this call started the server (it was not running) */
} demo_info;

/* Makes the demo project ready, idempotently: reuses the cluster, storage
 * tree and config directory under <home>/demo when present (a cluster whose
 * loading never finished is made again), starts the server when it is not
 * running (on its previous port when that is free, else a free one), and
 * registers project "demo" (no organisation, no owner) in the catalog, or
 * updates its database URL when the port changed. Fails with SM_E_NOTFOUND
 * when no PostgreSQL server programs (initdb, pg_ctl) or, as root, no user
 * postgres exist (hint: the package to install), SM_E_EXTERNAL when
 * initdb, pg_ctl or psql fails (with the end of its output). On success
 * fill *out (release it with demo_teardown); on failure *out is empty and a
 * server this call started is stopped again. */
int demo_setup(const char *home, demo_info *out, sm_err *err);

/* Stops the demo cluster (fast shutdown; immediate when that hangs) and
 * frees the strings of d. Accepts an empty or already torn down d. */
void demo_teardown(demo_info *d);

#endif
