/* tz.h — IANA time zones read from TZif files (/usr/share/zoneinfo), with the POSIX TZ rule of
 * the file's footer for times after its last transition, and civil-time arithmetic that gives
 * the same answers as Go's time package (time.Date, AddDate, lookup), which robfig/cron and so
 * kcm's schedules rely on. glibc's TZ handling is process-global and not thread-safe. */
#ifndef KCMDR_TZ_H
#define KCMDR_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define TZ_MAX_FILE (256u * 1024)

typedef struct tz_zone tz_zone;

/* Load zone name ("Europe/Berlin", "UTC") from $KCMDR_ZONEINFO or /usr/share/zoneinfo, with
 * the names Go's time.LoadLocation takes: "", "UTC" and "Local" are UTC without a file (Local is
 * UTC for kcm's pods and for us); any other name is a path below the directory ("Europe/./Berlin"
 * works, as in Go). KD_ERR_INVALID "time: invalid location name" for a name Go refuses (one
 * holding "..", or starting with '/' or '\'); KD_ERR_NOTFOUND "unknown time zone NAME" when
 * there is no such file, or with the reason when it cannot be read (a directory); KD_ERR_PARSE
 * for a file that is not TZif. *out is set only on success; caller frees it with tz_free. */
kd_rc tz_load(const char *name, tz_zone **out);
/* Parse TZif bytes (versions 1-4). KD_ERR_PARSE for anything truncated or inconsistent,
 * KD_ERR_NOMEM; *out is NULL on failure. */
kd_rc tz_parse(const unsigned char *data, size_t len, const char *name, tz_zone **out);
/* Free a zone. NULL is fine. */
void tz_free(tz_zone *z);
/* The zone's name as loaded. */
const char *tz_name(const tz_zone *z);

/* Offset from UTC (seconds) in effect at Unix time t, and the range [*start, *end) over which
 * it is known to hold (as Go's Location.lookup). z NULL means UTC. start/end may be NULL. */
int tz_lookup(const tz_zone *z, int64_t t, int64_t *start, int64_t *end);

/* Civil time in a zone. */
struct tz_civil {
  int64_t year;
  int month, day, hour, minute, second; /* month 1-12, day 1-31 */
  int weekday;                          /* 0 = Sunday */
};
/* Break Unix time t down in zone z (NULL = UTC). */
void tz_civil(const tz_zone *z, int64_t t, struct tz_civil *out);
/* Go's time.Date: fields may overflow (month 13, day 0, hour 25...) and are normalised; a local
 * time in a DST gap or overlap resolves exactly as Go resolves it. */
int64_t tz_date(const tz_zone *z, int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute,
                int64_t second);

#endif
