/* cron.h — cron schedules with Go robfig/cron/v3 ParseStandard semantics, exactly: five fields
 * (minute hour day-of-month month day-of-week), names (JAN, MON), ranges, steps, lists, '?',
 * the descriptors @yearly @annually @monthly @weekly @daily @midnight @hourly, "@every <Go
 * duration>", and a CRON_TZ=<zone> or TZ=<zone> prefix. When both day fields are restricted, a
 * day matches either (the OR rule). Schedules without a zone run in UTC. */
#ifndef KCMDR_CRON_H
#define KCMDR_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "tz.h"
#include "util.h"

typedef struct cron_schedule cron_schedule;

/* Parse spec. On failure returns KD_ERR_INVALID (or KD_ERR_NOTFOUND for an unknown zone) with
 * robfig's message ("expected exactly 5 fields, found 4: [...]", "end of range (60) above
 * maximum (59): 0-60", ...). Caller frees with cron_free. */
kd_rc cron_parse(const char *spec, cron_schedule **out);
/* Free a schedule. NULL is fine. */
void cron_free(cron_schedule *s);

/* The first activation strictly after Unix time t, or 0 when none exists within five years
 * (e.g. "0 0 30 2 *"), as robfig's Schedule.Next. */
int64_t cron_next(const cron_schedule *s, int64_t t);

/* Parse a Go duration ("1h30m", "300ms", "-1.5h", "0") into nanoseconds. KD_ERR_INVALID. */
kd_rc cron_parse_go_duration(const char *s, int64_t *ns);

#endif
