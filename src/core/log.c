#include "core/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sm_log_level threshold = SM_LOG_WARN;
static int threshold_set;
static int json_mode;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_name(sm_log_level l)
{
    switch (l) {
    case SM_LOG_DEBUG: return "debug";
    case SM_LOG_INFO: return "info";
    case SM_LOG_WARN: return "warn";
    case SM_LOG_ERROR: return "error";
    }
    return "?";
}

void sm_log_set_level(sm_log_level level)
{
    threshold = level;
    threshold_set = 1;
}

sm_log_level sm_log_get_level(void)
{
    if (!threshold_set) {
        const char *e = getenv("SUPAMANAGER_LOG");
        if (e) {
            if (!strcmp(e, "debug"))
                threshold = SM_LOG_DEBUG;
            else if (!strcmp(e, "info"))
                threshold = SM_LOG_INFO;
            else if (!strcmp(e, "error"))
                threshold = SM_LOG_ERROR;
        }
        threshold_set = 1;
    }
    return threshold;
}

void sm_log_set_json(int on)
{
    json_mode = on;
}

void sm_log(sm_log_level level, const char *fmt, ...)
{
    char msg[2048];
    char ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (level < sm_log_get_level())
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    pthread_mutex_lock(&log_lock);
    if (json_mode) {
        json_t *o = json_pack("{s:s,s:s,s:s}", "ts", ts, "level", level_name(level), "msg", msg);
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (line)
            fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s %s\n", ts, level_name(level), msg);
    }
    pthread_mutex_unlock(&log_lock);
}
