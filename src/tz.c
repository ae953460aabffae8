/* tz.c — TZif reader, POSIX TZ footer rules and Go-compatible civil time (see tz.h). */
#include "tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TZ_MAX_TIMES 4096
#define TZ_MAX_TYPES 256
#define SECS_PER_DAY 86400
#define TZ_ALPHA INT64_MIN
#define TZ_OMEGA INT64_MAX

struct tz_type {
  int32_t offset;
  int is_dst;
};

struct tz_zone {
  char name[128];
  int64_t *when;        /* transition times, ascending */
  uint8_t *idx;         /* type index for each transition */
  size_t ntx;
  struct tz_type types[TZ_MAX_TYPES];
  size_t ntypes;
  char extend[128];     /* POSIX TZ footer, "" if none */
};

/* ---- civil calendar (proleptic Gregorian), after H. Hinnant's algorithms ---- */

static int64_t floordiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = floordiv(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = floordiv(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in(int m, int64_t y) {
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* ---- POSIX TZ strings (the TZif footer), as Go's tzset ---- */

struct rule {
  int kind; /* 0 Julian (Jn), 1 day of year (n), 2 Mm.w.d */
  int day, week, mon;
  int time;
};

static const char *tzset_name(const char *s, char *name, size_t n) {
  size_t i = 0;
  if (*s == '<') {
    s++;
    while (s[i] && s[i] != '>') i++;
    if (!s[i] || i >= n) return NULL; /* Go accepts "<>" */
    memcpy(name, s, i);
    name[i] = '\0';
    return s + i + 1;
  }
  while (s[i] && !(s[i] >= '0' && s[i] <= '9') && s[i] != ',' && s[i] != '-' && s[i] != '+') i++;
  if (i < 3 || i >= n) return NULL;
  memcpy(name, s, i);
  name[i] = '\0';
  return s + i;
}

static const char *tzset_num(const char *s, int min, int max, int *out) {
  if (!(*s >= '0' && *s <= '9')) return NULL;
  int v = 0;
  while (*s >= '0' && *s <= '9') {
    v = v * 10 + (*s - '0');
    if (v > max) return NULL;
    s++;
  }
  if (v < min) return NULL;
  *out = v;
  return s;
}

static const char *tzset_offset(const char *s, int *out) {
  int neg = 0, h, m = 0, sec = 0;
  if (*s == '+') s++;
  else if (*s == '-') neg = 1, s++;
  if (!(s = tzset_num(s, 0, 24 * 7, &h))) return NULL;
  if (*s == ':') {
    if (!(s = tzset_num(s + 1, 0, 59, &m))) return NULL;
    if (*s == ':' && !(s = tzset_num(s + 1, 0, 59, &sec))) return NULL;
  }
  int off = h * 3600 + m * 60 + sec;
  *out = neg ? -off : off;
  return s;
}

static const char *tzset_rule(const char *s, struct rule *r) {
  memset(r, 0, sizeof *r);
  if (*s == 'J') {
    r->kind = 0;
    if (!(s = tzset_num(s + 1, 1, 365, &r->day))) return NULL;
  } else if (*s == 'M') {
    r->kind = 2;
    if (!(s = tzset_num(s + 1, 1, 12, &r->mon)) || *s != '.') return NULL;
    if (!(s = tzset_num(s + 1, 1, 5, &r->week)) || *s != '.') return NULL;
    if (!(s = tzset_num(s + 1, 0, 6, &r->day))) return NULL;
  } else {
    r->kind = 1;
    if (!(s = tzset_num(s, 0, 365, &r->day))) return NULL;
  }
  if (*s != '/') {
    r->time = 2 * 3600;
    return s;
  }
  return tzset_offset(s + 1, &r->time);
}

static int64_t rule_time(int64_t year, const struct rule *r, int off) {
  static const int before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365};
  int64_t s = 0;
  if (r->kind == 0) {
    s = (int64_t)(r->day - 1) * SECS_PER_DAY;
    if (is_leap(year) && r->day >= 60) s += SECS_PER_DAY;
  } else if (r->kind == 1) {
    s = (int64_t)r->day * SECS_PER_DAY;
  } else {
    /* day of week of the first of the month (Zeller), then the w-th d-day */
    int m1 = (r->mon + 9) % 12 + 1;
    int64_t yy0 = year;
    if (r->mon <= 2) yy0--;
    int64_t yy1 = yy0 / 100, yy2 = yy0 % 100;
    int64_t dow = ((26 * m1 - 2) / 10 + 1 + yy2 + yy2 / 4 + yy1 / 4 - 2 * yy1) % 7;
    if (dow < 0) dow += 7;
    int64_t d = r->day - dow;
    if (d < 0) d += 7;
    for (int i = 1; i < r->week; i++) {
      if (d + 7 >= days_in(r->mon, year)) break;
      d += 7;
    }
    d += before[r->mon - 1];
    if (is_leap(year) && r->mon > 2) d++;
    s = d * SECS_PER_DAY;
  }
  return s + r->time - off;
}

/* Offset at sec from the footer rule; 0 when the string is not usable. */
static int posix_tz_rule(const char *s, int64_t last_tx, int64_t sec, int *offset, int64_t *start, int64_t *end) {
  char stdn[64], dstn[64];
  int std_off, dst_off;
  if (!(s = tzset_name(s, stdn, sizeof stdn)) || !(s = tzset_offset(s, &std_off))) return 0;
  std_off = -std_off;
  if (!*s || *s == ',') {
    *offset = std_off;
    *start = last_tx;
    *end = TZ_OMEGA;
    return 1;
  }
  if (!(s = tzset_name(s, dstn, sizeof dstn))) return 0;
  if (!*s || *s == ',') {
    dst_off = std_off + 3600;
  } else {
    if (!(s = tzset_offset(s, &dst_off))) return 0;
    dst_off = -dst_off;
  }
  if (!*s) s = ",M3.2.0,M11.1.0";
  if (*s != ',' && *s != ';') return 0;
  struct rule sr, er;
  if (!(s = tzset_rule(s + 1, &sr)) || *s != ',') return 0;
  if (!(s = tzset_rule(s + 1, &er)) || *s) return 0;
  int64_t days = floordiv(sec, SECS_PER_DAY), year;
  int m, d;
  civil_from_days(days, &year, &m, &d);
  int64_t year_start = days_from_civil(year, 1, 1) * SECS_PER_DAY;
  int64_t ysec = sec - year_start;
  int64_t ss = rule_time(year, &sr, std_off), es = rule_time(year, &er, dst_off);
  if (es < ss) { /* southern hemisphere: the labels flip */
    int64_t t = ss;
    ss = es;
    es = t;
    int o = std_off;
    std_off = dst_off;
    dst_off = o;
  }
  if (ysec < ss) {
    *offset = std_off, *start = year_start, *end = ss + year_start;
  } else if (ysec >= es) {
    *offset = std_off, *start = es + year_start, *end = year_start + 365 * SECS_PER_DAY;
  } else {
    *offset = dst_off, *start = ss + year_start, *end = es + year_start;
  }
  return 1;
}

/* ---- TZif ---- */

static int64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  if (n == 4) return (int32_t)(uint32_t)v;
  return (int64_t)v;
}

kd_rc tz_parse(const unsigned char *data, size_t len, const char *name, tz_zone **out) {
  kd_rc rc = KD_OK;
  *out = NULL;
  tz_zone *z = calloc(1, sizeof *z);
  if (!z) return kd_fail(KD_ERR_NOMEM, "out of memory");
  snprintf(z->name, sizeof z->name, "%s", name);
  const unsigned char *p = data, *endp = data + len;
  if (len < 44 || memcmp(p, "TZif", 4) != 0) {
    rc = kd_fail(KD_ERR_PARSE, "time zone %s: not a TZif file", name);
    goto fail;
  }
  int version = p[4] ? p[4] - '0' : 1;
  int tsize = 4;
  for (int pass = 0; pass < 2; pass++) {
    if (endp - p < 44) {
      rc = kd_fail(KD_ERR_PARSE, "time zone %s: truncated header", name);
      goto fail;
    }
    int64_t isutc = be(p + 20, 4), isstd = be(p + 24, 4), leap = be(p + 28, 4), timecnt = be(p + 32, 4),
            typecnt = be(p + 36, 4), charcnt = be(p + 40, 4);
    if (isutc < 0 || isstd < 0 || leap < 0 || timecnt < 0 || timecnt > TZ_MAX_TIMES || typecnt <= 0 ||
        typecnt > TZ_MAX_TYPES || charcnt < 0 || charcnt > 4096 || isutc > typecnt || isstd > typecnt || leap > 4096) {
      rc = kd_fail(KD_ERR_PARSE, "time zone %s: bad counts in header", name);
      goto fail;
    }
    p += 44;
    size_t need = (size_t)timecnt * (size_t)tsize + (size_t)timecnt + (size_t)typecnt * 6 + (size_t)charcnt +
                  (size_t)leap * (size_t)(tsize + 4) + (size_t)isstd + (size_t)isutc;
    if ((size_t)(endp - p) < need) {
      rc = kd_fail(KD_ERR_PARSE, "time zone %s: truncated data", name);
      goto fail;
    }
    if (version >= 2 && pass == 0) { /* skip the 32-bit block; read the 64-bit one */
      p += need;
      tsize = 8;
      if (endp - p < 44 || memcmp(p, "TZif", 4) != 0) {
        rc = kd_fail(KD_ERR_PARSE, "time zone %s: missing 64-bit block", name);
        goto fail;
      }
      continue;
    }
    z->ntx = (size_t)timecnt;
    z->ntypes = (size_t)typecnt;
    z->when = malloc((z->ntx + 1) * sizeof *z->when);
    z->idx = malloc(z->ntx + 1);
    if (!z->when || !z->idx) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    for (size_t i = 0; i < z->ntx; i++) {
      z->when[i] = be(p, tsize);
      p += tsize;
      if (i > 0 && z->when[i] <= z->when[i - 1]) {
        rc = kd_fail(KD_ERR_PARSE, "time zone %s: transitions out of order", name);
        goto fail;
      }
    }
    for (size_t i = 0; i < z->ntx; i++) {
      z->idx[i] = *p++;
      if (z->idx[i] >= z->ntypes) {
        rc = kd_fail(KD_ERR_PARSE, "time zone %s: bad type index", name);
        goto fail;
      }
    }
    for (size_t i = 0; i < z->ntypes; i++) {
      z->types[i].offset = (int32_t)be(p, 4);
      z->types[i].is_dst = p[4] != 0;
      if (z->types[i].offset < -26 * 3600 || z->types[i].offset > 26 * 3600) {
        rc = kd_fail(KD_ERR_PARSE, "time zone %s: offset out of range", name);
        goto fail;
      }
      p += 6;
    }
    p += need - ((size_t)timecnt * (size_t)tsize + (size_t)timecnt + (size_t)typecnt * 6);
    break;
  }
  if (version >= 2 && p < endp && *p == '\n') { /* footer: \nTZ\n */
    const unsigned char *nl = memchr(p + 1, '\n', (size_t)(endp - p - 1));
    if (nl && (size_t)(nl - p - 1) < sizeof z->extend) {
      memcpy(z->extend, p + 1, (size_t)(nl - p - 1));
      z->extend[nl - p - 1] = '\0';
    }
  }
  *out = z;
  return KD_OK;
fail:
  tz_free(z);
  return rc;
}

kd_rc tz_load(const char *name, tz_zone **out) {
  *out = NULL;
  /* Go's LoadLocation: "" and "UTC" are UTC; "Local" is the process's zone, which for kcm's
   * pods (no TZ, no /etc/localtime in the image) and for us is UTC */
  if (!name || !name[0] || strcmp(name, "UTC") == 0 || strcmp(name, "Local") == 0) {
    tz_zone *z = calloc(1, sizeof *z);
    if (!z) return kd_fail(KD_ERR_NOMEM, "out of memory");
    snprintf(z->name, sizeof z->name, "UTC");
    *out = z;
    return KD_OK;
  }
  /* the same names Go refuses; any other name is a path below the zoneinfo directory, as in Go */
  if (strstr(name, "..") || name[0] == '/' || name[0] == '\\')
    return kd_fail(KD_ERR_INVALID, "time: invalid location name");
  const char *dir = getenv("KCMDR_ZONEINFO");
  char path[512];
  if (snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", name) >= (int)sizeof path)
    return kd_fail(KD_ERR_NOTFOUND, "unknown time zone %s", name);
  char *data;
  size_t len;
  struct stat st;
  if (stat(path, &st) != 0 && errno == ENOENT) return kd_fail(KD_ERR_NOTFOUND, "unknown time zone %s", name);
  kd_rc rc = kd_read_file(path, TZ_MAX_FILE, &data, &len);
  if (rc == KD_ERR_IO || rc == KD_ERR_TOOBIG) return kd_fail_wrap(KD_ERR_NOTFOUND, "time zone %s", name);
  if (rc) return rc;
  rc = tz_parse((unsigned char *)data, len, name, out);
  free(data);
  return rc;
}

void tz_free(tz_zone *z) {
  if (!z) return;
  free(z->when);
  free(z->idx);
  free(z);
}

const char *tz_name(const tz_zone *z) { return z ? z->name : "UTC"; }

/* Go's lookupFirstZone: the zone for times before the first transition */
static size_t first_zone(const tz_zone *z) {
  bool used0 = false;
  for (size_t i = 0; i < z->ntx; i++) used0 = used0 || z->idx[i] == 0;
  if (!used0) return 0;
  if (z->ntx > 0 && z->types[z->idx[0]].is_dst) {
    for (size_t zi = z->idx[0]; zi-- > 0;)
      if (!z->types[zi].is_dst) return zi;
  }
  for (size_t zi = 0; zi < z->ntypes; zi++)
    if (!z->types[zi].is_dst) return zi;
  return 0;
}

int tz_lookup(const tz_zone *z, int64_t t, int64_t *start, int64_t *end) {
  int64_t s = TZ_ALPHA, e = TZ_OMEGA;
  int off = 0;
  if (!z || z->ntypes == 0) goto done;
  if (z->ntx == 0 || t < z->when[0]) {
    off = z->types[first_zone(z)].offset;
    e = z->ntx ? z->when[0] : TZ_OMEGA;
    if (z->ntx == 0 && z->extend[0]) posix_tz_rule(z->extend, TZ_ALPHA, t, &off, &s, &e);
    goto done;
  }
  size_t lo = 0, hi = z->ntx;
  while (hi - lo > 1) {
    size_t m = (lo + hi) / 2;
    if (t < z->when[m]) {
      e = z->when[m];
      hi = m;
    } else {
      lo = m;
    }
  }
  off = z->types[z->idx[lo]].offset;
  s = z->when[lo];
  if (lo == z->ntx - 1 && z->extend[0]) {
    int eo;
    int64_t es, ee;
    if (posix_tz_rule(z->extend, s, t, &eo, &es, &ee)) off = eo, s = es, e = ee;
  }
done:
  if (start) *start = s;
  if (end) *end = e;
  return off;
}

void tz_civil(const tz_zone *z, int64_t t, struct tz_civil *out) {
  int64_t local = t + tz_lookup(z, t, NULL, NULL);
  int64_t days = floordiv(local, SECS_PER_DAY), sod = local - days * SECS_PER_DAY;
  civil_from_days(days, &out->year, &out->month, &out->day);
  out->hour = (int)(sod / 3600);
  out->minute = (int)(sod / 60 % 60);
  out->second = (int)(sod % 60);
  out->weekday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
}

int64_t tz_date(const tz_zone *z, int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute,
                int64_t second) {
  int64_t m0 = month - 1;
  year += floordiv(m0, 12);
  m0 -= floordiv(m0, 12) * 12;
  int64_t u = days_from_civil(year, m0 + 1, 1) * SECS_PER_DAY + (day - 1) * SECS_PER_DAY + hour * 3600 +
              minute * 60 + second;
  /* as Go: look the offset up at the local time taken as UTC, then again if that was wrong */
  int64_t s, e;
  int off = tz_lookup(z, u, &s, &e);
  if (off != 0) {
    int64_t utc = u - off;
    if (utc < s || utc >= e) off = tz_lookup(z, utc, NULL, NULL);
    u -= off;
  }
  return u;
}
