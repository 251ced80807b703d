/* Logging to stderr: one line per event, job or project id first; never
 * secrets, keys or signed URLs. Thread-safe. */
#ifndef SM_CORE_LOG_H
#define SM_CORE_LOG_H

typedef enum sm_log_level {
    SM_LOG_DEBUG = 0,
    SM_LOG_INFO,
    SM_LOG_WARN,
    SM_LOG_ERROR,
} sm_log_level;

/* Sets the threshold (default SM_LOG_WARN, or SUPAMANAGER_LOG=debug|info|warn|error). */
void sm_log_set_level(sm_log_level level);
sm_log_level sm_log_get_level(void);
/* JSON lines instead of text (for the service). */
void sm_log_set_json(int on);
void sm_log(sm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
