/* Backup schedules: what they may say, and when they run next.
 *
 *   {"enabled": true, "frequency": "daily", "time": "02:00", "type": "FULL", "retention": 7}
 *
 * hourly runs at minute MM of every hour, daily at HH:MM UTC, weekly on
 * Sunday at HH:MM UTC.
 */
#ifndef SM_SERVICE_SCHEDULE_H
#define SM_SERVICE_SCHEDULE_H

#include "core/err.h"

#include <jansson.h>
#include <time.h>

#define SCHEDULE_MAX_RETENTION 1000

/* Checks a schedule document and returns its normalised form (caller
 * decrefs): frequency lowercase, type uppercase, all fields present. Fails
 * with SM_E_INVALID and a message naming the field and what is allowed. */
json_t *schedule_validate(const json_t *in, sm_err *err);

/* The default (disabled) schedule. */
json_t *schedule_default(void);

/* The first run strictly after `after` (UTC), or 0 when disabled. */
time_t schedule_next(const json_t *sched, time_t after);

#endif
