/* Backup schedules: what they may say, and when they run.
 *
 *   {"enabled": true, "frequency": "daily", "time": "02:00", "type": "FULL",
 *    "retention": 7, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0,
 *    "jitter_minutes": 0, "verify": false, "restore_test": "never",
 *    "grace_minutes": null,
 *    "notify": {"email": [], "webhook": null, "webhook_secret": null,
 *               "on_success": false}}
 *
 * hourly runs at minute MM of every hour, daily at HH:MM UTC, weekly on
 * Sunday at HH:MM UTC; jitter_minutes spreads projects: each project runs
 * a fixed offset (from its id) of 0..jitter_minutes after the slot.
 * retention keeps the N newest successful scheduled backups; keep_daily,
 * keep_weekly and keep_monthly add the newest of each of that many days,
 * ISO weeks and months (ops_retention). verify: verify each new backup;
 * restore_test "weekly": once a week that verification also restores the
 * database into a scratch database. grace_minutes: how late the newest
 * restorable backup may be before the project is "overdue" (null: a
 * quarter of the period). notify adds recipients to the global ones.
 */
#ifndef SM_SERVICE_SCHEDULE_H
#define SM_SERVICE_SCHEDULE_H

#include "core/err.h"
#include "job/ops.h"

#include <jansson.h>
#include <time.h>

#define SCHEDULE_MAX_RETENTION 1000
#define SCHEDULE_MAX_JITTER_MIN 720
#define SCHEDULE_MAX_GRACE_MIN (31 * 24 * 60)

/* Checks the fields of `in` and returns `base` (NULL: the defaults) with
 * them applied (caller decrefs): a PUT changes only the fields it names.
 * The result is normalised: frequency lowercase, type uppercase, every
 * field present. Fails with SM_E_INVALID and a message naming the field and
 * what is allowed; nothing is returned then. */
json_t *schedule_validate(const json_t *base, const json_t *in, sm_err *err);

/* The default (disabled) schedule. */
json_t *schedule_default(void);

/* The first slot strictly after `after` (UTC, without jitter), or 0 when
 * disabled or unusable. */
time_t schedule_next(const json_t *sched, time_t after);
/* Seconds between slots (3600, 86400 or 604800). */
time_t schedule_period(const json_t *sched);
/* The project's fixed offset after each slot, 0..jitter_minutes*60 s. */
time_t schedule_jitter(const json_t *sched, const char *project_id);
/* How late a backup may be before the project is overdue, seconds. */
time_t schedule_grace(const json_t *sched);
/* The retention policy of scheduled backups. */
void schedule_retention(const json_t *sched, ops_retention *out);

/* The document as the API shows it: the webhook secret replaced by
 * "webhook_secret_set": true|false (caller decrefs). */
json_t *schedule_public(const json_t *sched);

#endif
