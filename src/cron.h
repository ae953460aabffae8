/* cron.h — cron schedules with Go robfig/cron/v3 ParseStandard semantics, exactly: five fields
 * (minute hour day-of-month month day-of-week), names (JAN, MON), ranges, steps, lists, '?',
 * the descriptors @yearly @annually @monthly @weekly @daily @midnight @hourly, "@every <Go
 * duration>", and a CRON_TZ=<zone> or TZ=<zone> prefix. When both day fields are restricted, a
 * day matches either (the OR rule). Schedules without a zone, and the zone "Local", run in UTC.
 * test/diff/t_robfig.sh checks all of this against the real robfig/cron on generated input. */
#ifndef KCMDR_CRON_H
#define KCMDR_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tz.h"
#include "util.h"

typedef struct cron_schedule cron_schedule;

/* Parse the len bytes at spec (NUL is an ordinary byte, as in a Kubernetes string). Accepts
 * exactly what robfig's ParseStandard accepts, and on failure records robfig's message ("expected
 * exactly 5 fields, found 4: [...]", "end of range (60) above maximum (59): 0-60", "failed to
 * parse duration @every 1e3s: time: unknown unit \"e\" in duration \"1e3s\"", ...) and returns
 * KD_ERR_INVALID, or KD_ERR_NOTFOUND for a zone that cannot be loaded. Where robfig panics
 * ("TZ=UTC" with no space after the zone) this fails with KD_ERR_INVALID. *out is set only on
 * success; the caller frees it with cron_free. */
kd_rc cron_parse_n(const char *spec, size_t len, cron_schedule **out);
/* cron_parse_n of a NUL-terminated string. */
kd_rc cron_parse(const char *spec, cron_schedule **out);
/* Free a schedule. NULL is fine. */
void cron_free(cron_schedule *s);

/* The first activation strictly after Unix time t (t >= 0; whole seconds), as robfig's
 * Schedule.Next, DST quirks included. Returns 0 where robfig returns the zero time: no activation
 * before the end of the fifth calendar year after t, in the schedule's zone. That happens for
 * schedules that can never fire ("0 0 30 2 *", "0 0 31 4 *", a field that is an empty list such
 * as ",") and for rare ones ("0 0 29 2 *" from 2097 on, as 2100 is not a leap year). A caller
 * must treat 0 as "this schedule does not fire", never as a time. Fast in every case: at most a
 * few thousand calendar steps, and schedules with a field that matches nothing return 0 at once.
 * An @every schedule returns t + its delay (whole seconds, at least 1). */
int64_t cron_next(const cron_schedule *s, int64_t t);

/* Go's time.ParseDuration of a NUL-terminated string, exactly ("1h30m", "300ms", "-1.5h", "0";
 * not "1e3s", "0x10s", "1h-1m" or anything beyond int64 nanoseconds) into *ns. On failure
 * KD_ERR_INVALID with Go's message ("time: invalid duration \"1h-\"", ...). */
kd_rc cron_parse_go_duration(const char *s, int64_t *ns);

#endif
