/* `supamanager serve`: the daemon's shared state and its routes. */
#ifndef SM_SERVICE_SERVICE_H
#define SM_SERVICE_SERVICE_H

#include "catalog/catalog.h"
#include "service/http.h"
#include "service/jobs.h"
#include "service/notify.h"
#include "service/scheduler.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

typedef struct svc {
    char *home;
    char *jwt_secret;
    char *enc_secret;
    char *public_url;   /* base of download links, e.g. "http://127.0.0.1:8080" */
    char *exports_dir;  /* <home>/exports: archives prepared for download */
    char *uploads_dir;  /* <home>/uploads */
    uint64_t max_upload;
    long link_ttl;      /* download links: seconds (3600) */
    jobs *J;
    scheduler *sched;
    notifier *N;
    time_t started;
    pthread_key_t cat_key; /* one catalog connection per server thread */
} svc;

/* The routes (static, ends with {NULL}); handlers get the svc as ud. */
const http_route *svc_routes(void);

/* This thread's catalog connection (opened on first use). */
catalog *svc_catalog(svc *S);

/* `supamanager serve [--listen ADDR:PORT] [--config FILE] [--demo]`. */
int cmd_serve(int argc, char **argv);

#endif
