/* cron.c — robfig/cron/v3 ParseStandard and SpecSchedule.Next, in C (see cron.h). */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAR_BIT (1ULL << 63)

struct cron_schedule {
  bool every;      /* @every: constant delay */
  int64_t delay_s; /* whole seconds, at least 1 */
  uint64_t second, minute, hour, dom, month, dow;
  tz_zone *zone;   /* NULL: UTC */
};

struct bounds {
  int min, max;
  const char *const *names; /* NULL-terminated, index = value - names_base */
  int names_base;
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};
static const struct bounds b_minute = {0, 59, NULL, 0}, b_hour = {0, 23, NULL, 0}, b_dom = {1, 31, NULL, 0},
                           b_month = {1, 12, month_names, 1}, b_dow = {0, 6, dow_names, 0};

void cron_free(cron_schedule *s) {
  if (!s) return;
  tz_free(s->zone);
  free(s);
}

/* strconv.Atoi-like: optional sign, digits, fits in int */
static kd_rc must_parse_int(const char *expr, int *out) {
  const char *p = expr;
  if (*p == '+' || *p == '-') p++;
  if (!*p) return kd_fail(KD_ERR_INVALID, "failed to parse int from %s: strconv.Atoi: parsing \"%s\": invalid syntax", expr, expr);
  for (const char *q = p; *q; q++)
    if (!isdigit((unsigned char)*q))
      return kd_fail(KD_ERR_INVALID, "failed to parse int from %s: strconv.Atoi: parsing \"%s\": invalid syntax", expr, expr);
  errno = 0;
  long v = strtol(expr, NULL, 10);
  if (errno || v > INT_MAX || v < INT_MIN)
    return kd_fail(KD_ERR_INVALID, "failed to parse int from %s: strconv.Atoi: parsing \"%s\": value out of range", expr, expr);
  if (v < 0) return kd_fail(KD_ERR_INVALID, "negative number (%ld) not allowed: %s", v, expr);
  *out = (int)v;
  return KD_OK;
}

static kd_rc parse_int_or_name(const char *expr, const struct bounds *b, int *out) {
  if (b->names) {
    for (int i = 0; b->names[i]; i++)
      if (strcasecmp(expr, b->names[i]) == 0) {
        *out = i + b->names_base;
        return KD_OK;
      }
  }
  return must_parse_int(expr, out);
}

static uint64_t bits(int min, int max, int step) {
  uint64_t r = 0;
  if (step == 1) return (~(UINT64_MAX << (max + 1))) & (UINT64_MAX << min);
  for (int i = min; i <= max; i += step) r |= 1ULL << i;
  return r;
}

/* one element of a comma list: "*", "?", "a", "a-b", with optional "/step" */
static kd_rc get_range(char *expr, const struct bounds *b, uint64_t *out) {
  int start, end, step = 1;
  uint64_t extra = 0;
  char orig[256];
  snprintf(orig, sizeof orig, "%s", expr);
  char *slash = strchr(expr, '/');
  char *step_s = NULL;
  if (slash) {
    *slash = '\0';
    step_s = slash + 1;
    if (strchr(step_s, '/')) return kd_fail(KD_ERR_INVALID, "too many slashes: %s", orig);
  }
  char *hyphen = strchr(expr, '-');
  bool single = hyphen == NULL;
  if (strcmp(expr, "*") == 0 || strcmp(expr, "?") == 0) {
    start = b->min;
    end = b->max;
    extra = STAR_BIT;
  } else {
    if (hyphen) {
      *hyphen = '\0';
      if (strchr(hyphen + 1, '-')) return kd_fail(KD_ERR_INVALID, "too many hyphens: %s", orig);
    }
    kd_rc rc = parse_int_or_name(expr, b, &start);
    if (rc) return rc;
    if (hyphen) {
      if ((rc = parse_int_or_name(hyphen + 1, b, &end))) return rc;
    } else {
      end = start;
    }
  }
  if (step_s) {
    kd_rc rc = must_parse_int(step_s, &step);
    if (rc) return rc;
    if (single) end = b->max; /* "N/step" means "N-max/step" */
    if (step > 1) extra = 0;
  }
  if (start < b->min) return kd_fail(KD_ERR_INVALID, "beginning of range (%d) below minimum (%d): %s", start, b->min, orig);
  if (end > b->max) return kd_fail(KD_ERR_INVALID, "end of range (%d) above maximum (%d): %s", end, b->max, orig);
  if (start > end) return kd_fail(KD_ERR_INVALID, "beginning of range (%d) beyond end of range (%d): %s", start, end, orig);
  if (step == 0) return kd_fail(KD_ERR_INVALID, "step of range should be a positive number: %s", orig);
  *out = bits(start, end, step) | extra;
  return KD_OK;
}

static kd_rc get_field(const char *field, const struct bounds *b, uint64_t *out) {
  char buf[256];
  if (strlen(field) >= sizeof buf) return kd_fail(KD_ERR_INVALID, "cron field too long: %.40s...", field);
  strcpy(buf, field);
  *out = 0;
  char *save = NULL;
  /* strings.FieldsFunc on ',' drops empty parts */
  for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
    uint64_t r = 0;
    kd_rc rc = get_range(part, b, &r);
    if (rc) return rc;
    *out |= r;
  }
  return KD_OK;
}

kd_rc cron_parse_go_duration(const char *s, int64_t *ns) {
  static const struct {
    const char *unit;
    double mult;
  } units[] = {{"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3}, {"ms", 1e6},
               {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
  const char *orig = s;
  double total = 0;
  int neg = 0;
  if (*s == '-' || *s == '+') neg = *s++ == '-';
  if (strcmp(s, "0") == 0) {
    *ns = 0;
    return KD_OK;
  }
  if (!*s) return kd_fail(KD_ERR_INVALID, "time: invalid duration \"%s\"", orig);
  while (*s) {
    if (!(isdigit((unsigned char)*s) || *s == '.')) return kd_fail(KD_ERR_INVALID, "time: invalid duration \"%s\"", orig);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || (end - s == 1 && *s == '.')) return kd_fail(KD_ERR_INVALID, "time: invalid duration \"%s\"", orig);
    s = end;
    size_t ulen = 0;
    while (s[ulen] && !isdigit((unsigned char)s[ulen]) && s[ulen] != '.') ulen++;
    if (ulen == 0) return kd_fail(KD_ERR_INVALID, "time: missing unit in duration \"%s\"", orig);
    size_t i;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
      if (strlen(units[i].unit) == ulen && strncmp(s, units[i].unit, ulen) == 0) break;
    if (i == sizeof units / sizeof units[0])
      return kd_fail(KD_ERR_INVALID, "time: unknown unit \"%.*s\" in duration \"%s\"", (int)ulen, s, orig);
    total += v * units[i].mult;
    if (total > 9.2e18) return kd_fail(KD_ERR_INVALID, "time: invalid duration \"%s\"", orig);
    s += ulen;
  }
  *ns = (int64_t)(neg ? -total : total);
  return KD_OK;
}

static kd_rc parse_descriptor(const char *d, cron_schedule *s) {
  static const struct {
    const char *name;
    const char *fields;
  } desc[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
              {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
              {"@hourly", "0 * * * *"}};
  for (size_t i = 0; i < sizeof desc / sizeof desc[0]; i++) {
    if (strcmp(d, desc[i].name) != 0) continue;
    const char *f = desc[i].fields;
    /* all descriptors are a fixed minute and hour etc.; reuse the field parser */
    char buf[32];
    snprintf(buf, sizeof buf, "%s", f);
    char *save = NULL, *fields[5];
    int n = 0;
    for (char *p = strtok_r(buf, " ", &save); p && n < 5; p = strtok_r(NULL, " ", &save)) fields[n++] = p;
    kd_rc rc;
    if ((rc = get_field(fields[0], &b_minute, &s->minute)) || (rc = get_field(fields[1], &b_hour, &s->hour)) ||
        (rc = get_field(fields[2], &b_dom, &s->dom)) || (rc = get_field(fields[3], &b_month, &s->month)) ||
        (rc = get_field(fields[4], &b_dow, &s->dow)))
      return rc;
    s->second = 1;
    return KD_OK;
  }
  if (strncmp(d, "@every ", 7) == 0) {
    int64_t ns;
    if (cron_parse_go_duration(d + 7, &ns) != KD_OK)
      return kd_fail(KD_ERR_INVALID, "failed to parse duration %s: %s", d, kd_errmsg());
    if (ns < 1000000000LL) ns = 1000000000LL; /* robfig: at least one second */
    s->every = true;
    s->delay_s = ns / 1000000000LL;           /* rounded down to whole seconds */
    return KD_OK;
  }
  return kd_fail(KD_ERR_INVALID, "unrecognized descriptor: %s", d);
}

kd_rc cron_parse(const char *spec_in, cron_schedule **out) {
  kd_rc rc = KD_OK;
  char spec[1024];
  *out = NULL;
  if (!spec_in || strlen(spec_in) >= sizeof spec) return kd_fail(KD_ERR_INVALID, "cron spec too long");
  if (spec_in[0] == '\0') return kd_fail(KD_ERR_INVALID, "empty spec string");
  snprintf(spec, sizeof spec, "%s", spec_in);
  cron_schedule *s = calloc(1, sizeof *s);
  if (!s) return kd_fail(KD_ERR_NOMEM, "out of memory");
  char *p = spec;
  if (strncmp(p, "TZ=", 3) == 0 || strncmp(p, "CRON_TZ=", 8) == 0) {
    char *sp = strchr(p, ' '), *eq = strchr(p, '=');
    if (!sp) {
      rc = kd_fail(KD_ERR_INVALID, "provided bad location %s: missing schedule after the zone", p + (eq - p) + 1);
      goto fail;
    }
    *sp = '\0';
    if ((rc = tz_load(eq + 1, &s->zone)) != KD_OK) {
      rc = kd_fail(rc, "provided bad location %s: %s", eq + 1, kd_errmsg());
      goto fail;
    }
    p = sp + 1;
    /* robfig trims what follows the zone, and only then */
    while (isspace((unsigned char)*p)) p++;
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1])) p[--len] = '\0';
  }
  if (p[0] == '@') {
    if ((rc = parse_descriptor(p, s))) goto fail;
    *out = s;
    return KD_OK;
  }
  char *fields[8];
  int n = 0;
  char copy[1024];
  snprintf(copy, sizeof copy, "%s", p);
  char *save = NULL;
  for (char *f = strtok_r(p, " \t\n\r\v\f", &save); f; f = strtok_r(NULL, " \t\n\r\v\f", &save)) {
    if (n < 8) fields[n] = f;
    n++;
  }
  if (n != 5) {
    rc = kd_fail(KD_ERR_INVALID, "expected exactly 5 fields, found %d: [%s]", n, copy);
    goto fail;
  }
  s->second = 1; /* second 0 */
  if ((rc = get_field(fields[0], &b_minute, &s->minute)) || (rc = get_field(fields[1], &b_hour, &s->hour)) ||
      (rc = get_field(fields[2], &b_dom, &s->dom)) || (rc = get_field(fields[3], &b_month, &s->month)) ||
      (rc = get_field(fields[4], &b_dow, &s->dow)))
    goto fail;
  *out = s;
  return KD_OK;
fail:
  cron_free(s);
  return rc;
}

static bool day_matches(const cron_schedule *s, const struct tz_civil *c) {
  bool dom = (1ULL << c->day) & s->dom, dow = (1ULL << c->weekday) & s->dow;
  if ((s->dom & STAR_BIT) || (s->dow & STAR_BIT)) return dom && dow;
  return dom || dow;
}

int64_t cron_next(const cron_schedule *s, int64_t t) {
  if (s->every) return t + s->delay_s; /* t is whole seconds already */
  const tz_zone *z = s->zone;
  struct tz_civil c;
  t += 1; /* the earliest possible time: the next whole second */
  bool added = false;
  tz_civil(z, t, &c);
  int64_t year_limit = c.year + 5;
wrap:
  tz_civil(z, t, &c);
  if (c.year > year_limit) return 0;
  while (!((1ULL << c.month) & s->month)) {
    if (!added) {
      added = true;
      t = tz_date(z, c.year, c.month, 1, 0, 0, 0);
      tz_civil(z, t, &c);
    }
    t = tz_date(z, c.year, c.month + 1, c.day, c.hour, c.minute, c.second);
    tz_civil(z, t, &c);
    if (c.month == 1) goto wrap;
  }
  while (!day_matches(s, &c)) {
    if (!added) {
      added = true;
      t = tz_date(z, c.year, c.month, c.day, 0, 0, 0);
      tz_civil(z, t, &c);
    }
    t = tz_date(z, c.year, c.month, c.day + 1, c.hour, c.minute, c.second);
    tz_civil(z, t, &c);
    /* DST: the day may not start at midnight */
    if (c.hour != 0) {
      if (c.hour > 12) t += (int64_t)(24 - c.hour) * 3600;
      else t -= (int64_t)c.hour * 3600;
      tz_civil(z, t, &c);
    }
    if (c.day == 1) goto wrap;
  }
  while (!((1ULL << c.hour) & s->hour)) {
    if (!added) {
      added = true;
      t = tz_date(z, c.year, c.month, c.day, c.hour, 0, 0);
      tz_civil(z, t, &c);
    }
    t += 3600;
    tz_civil(z, t, &c);
    if (c.hour == 0) goto wrap;
  }
  while (!((1ULL << c.minute) & s->minute)) {
    if (!added) {
      added = true;
      t -= t % 60 < 0 ? t % 60 + 60 : t % 60;
      tz_civil(z, t, &c);
    }
    t += 60;
    tz_civil(z, t, &c);
    if (c.minute == 0) goto wrap;
  }
  while (!((1ULL << c.second) & s->second)) {
    if (!added) added = true; /* already whole seconds */
    t += 1;
    tz_civil(z, t, &c);
    if (c.second == 0) goto wrap;
  }
  return t;
}
