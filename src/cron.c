/* cron.c — robfig/cron/v3 ParseStandard and SpecSchedule.Next, in C (see cron.h).
 *
 * The parser follows the Go code path step by step, quirks included, because a schedule kcm
 * accepts must be accepted here and one it rejects must be rejected, with the same message:
 * numbers are strconv.Atoi on 64 bits ("0/9223372036854775807" is a valid step), "*-5" is "*"
 * (Go only looks at the part before the first '-'), fields split on Unicode white space, month
 * and weekday names compare after Go's Unicode lower-casing ("FRİ" is Friday), and "@every"
 * takes exactly what time.ParseDuration takes. The input is a byte string with a length: a
 * Kubernetes string may hold NUL, and Go treats it as an ordinary byte. Nothing here allocates
 * in proportion to the input; error messages are cut at the error buffer's size. */
#include "cron.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAR_BIT (1ULL << 63)
#define NS_PER_S 1000000000ULL
#define RAW_MAX 400 /* bytes of user input quoted in one message */
#define QBUF (RAW_MAX + 32) /* RAW_MAX and what one more rune, quoted, can add */

struct cron_schedule {
  bool every;      /* @every: constant delay */
  bool never;      /* a field can match nothing: Next always gives the zero time */
  int64_t delay_s; /* whole seconds, at least 1 */
  uint64_t second, minute, hour, dom, month, dow;
  tz_zone *zone;   /* NULL: UTC */
};

typedef struct span {
  const char *p;
  size_t n;
} span;

struct bounds {
  uint64_t min, max;
  const char *const *names; /* NULL-terminated, index = value - names_base */
  uint64_t names_base;
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

static bool span_is(span s, const char *lit) { return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0; }

/* ---- Go's text primitives: UTF-8 runes, white space, the two quoting styles ---- */

/* utf8.DecodeRune: the rune at p and its width; an invalid byte is U+FFFD of width 1 */
static uint32_t utf8_rune(const unsigned char *p, size_t n, size_t *w) {
  unsigned c = p[0];
  size_t need;
  uint32_t r;
  unsigned lo = 0x80, hi = 0xbf;
  if (c < 0x80) {
    *w = 1;
    return c;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2, r = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3, r = c & 0x0f;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f; /* no surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4, r = c & 0x07;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f; /* nothing above U+10FFFF */
  } else {
    goto bad;
  }
  if (n < need || p[1] < lo || p[1] > hi) goto bad;
  r = (r << 6) | (p[1] & 0x3f);
  for (size_t i = 2; i < need; i++) {
    if (p[i] < 0x80 || p[i] > 0xbf) goto bad;
    r = (r << 6) | (p[i] & 0x3f);
  }
  *w = need;
  return r;
bad:
  *w = 1;
  return 0xfffd;
}

/* unicode.IsSpace */
static bool go_space(uint32_t r) {
  switch (r) {
  case '\t': case '\n': case '\v': case '\f': case '\r': case ' ': case 0x85: case 0xa0:
  case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f: case 0x3000:
    return true;
  default:
    return r >= 0x2000 && r <= 0x200a;
  }
}

/* strings.Fields, one field at a time: the next field of *rest (false when none is left) */
static bool next_field(span *rest, span *field) {
  const unsigned char *p = (const unsigned char *)rest->p, *end = p + rest->n;
  size_t w;
  while (p < end && go_space(utf8_rune(p, (size_t)(end - p), &w))) p += w;
  const unsigned char *start = p;
  while (p < end && !go_space(utf8_rune(p, (size_t)(end - p), &w))) p += w;
  field->p = (const char *)start;
  field->n = (size_t)(p - start);
  rest->p = (const char *)p;
  rest->n = (size_t)(end - p);
  return field->n > 0;
}

/* strings.TrimSpace */
static span trim_space(span s) {
  const unsigned char *p = (const unsigned char *)s.p, *end = p + s.n;
  size_t w;
  while (p < end && go_space(utf8_rune(p, (size_t)(end - p), &w))) p += w;
  /* from the end: find the last rune that is not a space by scanning forward */
  const unsigned char *last = p;
  for (const unsigned char *q = p; q < end; q += w)
    if (!go_space(utf8_rune(q, (size_t)(end - q), &w))) last = q + w;
  return (span){(const char *)p, (size_t)(last - p)};
}

/* A piece of user input as it appears in a Go message (%s): the bytes as they are, except NUL,
 * which a C string cannot hold, written as \x00. Cut at RAW_MAX bytes. */
static const char *raw(span s, char out[QBUF]) {
  size_t o = 0;
  for (size_t i = 0; i < s.n && o < RAW_MAX; i++) {
    if (s.p[i] == '\0') {
      memcpy(out + o, "\\x00", 4);
      o += 4;
    } else {
      out[o++] = s.p[i];
    }
  }
  o = kd_utf8_cut(out, o); /* a cut message never ends in half a character */
  out[o] = '\0';
  return out;
}

static size_t put_hex(char *out, size_t o, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  out[o++] = '\\', out[o++] = 'x', out[o++] = hex[c >> 4], out[o++] = hex[c & 15];
  return o;
}

/* time's quote(): ASCII as it is ('"' and '\' escaped), every byte of anything else as \xNN */
static const char *time_quote(span s, char out[QBUF]) {
  size_t o = 0;
  out[o++] = '"';
  const unsigned char *p = (const unsigned char *)s.p, *end = p + s.n;
  while (p < end && o < RAW_MAX) {
    size_t w;
    uint32_t r = utf8_rune(p, (size_t)(end - p), &w);
    if (r >= 0x80 || r < ' ') {
      for (size_t j = 0; j < w; j++) o = put_hex(out, o, p[j]);
    } else {
      if (r == '"' || r == '\\') out[o++] = '\\';
      out[o++] = (char)r;
    }
    p += w;
  }
  out[o++] = '"';
  out[o] = '\0';
  return out;
}

/* unicode.IsPrint for runes above ASCII: C1 controls, the soft hyphen, spaces other than
 * U+0020, the format characters (category Cf), private use and non-characters are not printable;
 * every other rune is taken as printable. Checked against Go for every code point: the only
 * difference left is unassigned code points (which depend on Go's Unicode version anyway), and
 * it only changes how an error message quotes them, never what is accepted. */
static bool go_print(uint32_t r) {
  static const uint32_t not_print[][2] = {
      {0x0600, 0x0605},   {0x061c, 0x061c},   {0x06dd, 0x06dd},   {0x070f, 0x070f},   {0x08e2, 0x08e2},
      {0x180e, 0x180e},   {0x200b, 0x200f},   {0x202a, 0x202e},   {0x2060, 0x206f},   {0xe000, 0xf8ff},
      {0xfeff, 0xfeff},   {0xfff9, 0xfffb},   {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f},
      {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0000, 0xe007f}, {0xf0000, 0x10ffff},
  };
  if (r < 0xa0 || r == 0xad || go_space(r) || (r & 0xfffe) == 0xfffe) return false;
  for (size_t i = 0; i < KD_ARRAY_LEN(not_print); i++)
    if (r >= not_print[i][0] && r <= not_print[i][1]) return false;
  return true;
}

/* strconv.Quote */
static const char *strconv_quote(span s, char out[QBUF]) {
  size_t o = 0;
  out[o++] = '"';
  const unsigned char *p = (const unsigned char *)s.p, *end = p + s.n;
  while (p < end && o < RAW_MAX) {
    size_t w;
    uint32_t r = utf8_rune(p, (size_t)(end - p), &w);
    if (r == 0xfffd && w == 1) {
      o = put_hex(out, o, p[0]);
    } else if (r == '"' || r == '\\') {
      out[o++] = '\\', out[o++] = (char)r;
    } else if (r >= 0x20 && r < 0x7f) {
      out[o++] = (char)r;
    } else if (r >= 0x80 && go_print(r)) {
      memcpy(out + o, p, w), o += w;
    } else {
      const char *esc = r == '\a' ? "\\a" : r == '\b' ? "\\b" : r == '\f' ? "\\f" : r == '\n' ? "\\n" : r == '\r' ? "\\r"
                      : r == '\t' ? "\\t" : r == '\v' ? "\\v" : NULL;
      if (esc) memcpy(out + o, esc, 2), o += 2;
      else if (r < ' ' || r == 0x7f) o = put_hex(out, o, (unsigned char)r);
      else if (r < 0x10000) o += (size_t)sprintf(out + o, "\\u%04" PRIx32, r);
      else o += (size_t)sprintf(out + o, "\\U%08" PRIx32, r);
    }
    p += w;
  }
  out[o++] = '"';
  out[o] = '\0';
  return out;
}

/* ---- numbers and names ---- */

/* strconv.Atoi with a 64-bit int: 0 ok, 1 invalid syntax, 2 value out of range */
static int go_atoi(span s, int64_t *out) {
  size_t i = 0;
  bool neg = false;
  if (s.n > 0 && s.n < 19) { /* Go's fast path: cannot overflow */
    if (s.p[0] == '-' || s.p[0] == '+') {
      neg = s.p[0] == '-', i = 1;
      if (s.n == 1) return 1;
    }
    int64_t v = 0;
    for (; i < s.n; i++) {
      unsigned d = (unsigned)(unsigned char)s.p[i] - '0';
      if (d > 9) return 1;
      v = v * 10 + d;
    }
    *out = neg ? -v : v;
    return 0;
  }
  if (s.n == 0) return 1;
  if (s.p[0] == '-' || s.p[0] == '+') neg = s.p[0] == '-', i = 1;
  uint64_t v = 0;
  for (; i < s.n; i++) { /* ParseUint: the first bad digit or the first overflow decides */
    unsigned char c = (unsigned char)s.p[i];
    if (c < '0' || c > '9') return 1;
    if (v >= UINT64_MAX / 10 + 1) return 2;
    v *= 10;
    if (v + (uint64_t)(c - '0') < v) return 2;
    v += (uint64_t)(c - '0');
  }
  if (!neg && v >= 1ULL << 63) return 2;
  if (neg && v > 1ULL << 63) return 2;
  *out = !neg ? (int64_t)v : v == 1ULL << 63 ? INT64_MIN : -(int64_t)v;
  return 0;
}

/* robfig's mustParseInt: a non-negative Atoi */
static kd_rc must_parse_int(span expr, uint64_t *out) {
  char r[QBUF], q[QBUF];
  int64_t v = 0;
  int e = go_atoi(expr, &v);
  if (e)
    return kd_fail(KD_ERR_INVALID, "failed to parse int from %s: strconv.Atoi: parsing %s: %s", raw(expr, r),
                   strconv_quote(expr, q), e == 1 ? "invalid syntax" : "value out of range");
  if (v < 0) return kd_fail(KD_ERR_INVALID, "negative number (%" PRId64 ") not allowed: %s", v, raw(expr, r));
  *out = (uint64_t)v;
  return KD_OK;
}

/* strings.ToLower(expr) == name, for an ASCII name: Go's lower-casing maps U+0130 to 'i' and the
 * Kelvin sign U+212A to 'k', the only non-ASCII runes it maps into ASCII */
static bool name_eq(span expr, const char *name) {
  const unsigned char *p = (const unsigned char *)expr.p, *end = p + expr.n;
  for (; *name; name++) {
    if (p >= end) return false;
    size_t w;
    uint32_t r = utf8_rune(p, (size_t)(end - p), &w);
    if (r >= 'A' && r <= 'Z') r += 'a' - 'A';
    else if (r == 0x130) r = 'i';
    else if (r == 0x212a) r = 'k';
    if (r != (unsigned char)*name) return false;
    p += w;
  }
  return p == end;
}

static kd_rc parse_int_or_name(span expr, const struct bounds *b, uint64_t *out) {
  if (b->names) {
    for (uint64_t i = 0; b->names[i]; i++)
      if (name_eq(expr, b->names[i])) {
        *out = i + b->names_base;
        return KD_OK;
      }
  }
  return must_parse_int(expr, out);
}

/* ---- fields ---- */

/* robfig's getBits: [min, max] every step; min <= max <= 63, step >= 1 (any size) */
static uint64_t get_bits(uint64_t min, uint64_t max, uint64_t step) {
  if (step == 1) return ~(UINT64_MAX << (max + 1)) & (UINT64_MAX << min);
  uint64_t r = 0;
  for (uint64_t i = min;; i += step) {
    r |= 1ULL << i;
    if (max - i < step) break; /* the next i would pass max (or wrap) */
  }
  return r;
}

/* the position of the first c in s, or s.n */
static size_t span_find(span s, char c) {
  const char *f = memchr(s.p, c, s.n);
  return f ? (size_t)(f - s.p) : s.n;
}

/* one element of a comma list: "*", "?", "a", "a-b", with an optional "/step"; in Go's order of
 * checks, so that the same input gives the same first error */
static kd_rc get_range(span expr, const struct bounds *b, uint64_t *out) {
  char r[QBUF];
  uint64_t start, end, step = 1, extra = 0;
  size_t slash = span_find(expr, '/');
  span range = {expr.p, slash}, step_s = {NULL, 0};
  int slashes = 0; /* number of '/' that matter: 0, 1 or "2 or more" */
  if (slash < expr.n) {
    step_s = (span){expr.p + slash + 1, expr.n - slash - 1};
    slashes = span_find(step_s, '/') < step_s.n ? 2 : 1;
  }
  size_t hy = span_find(range, '-');
  span low = {range.p, hy}, high = {NULL, 0};
  int hyphens = 0;
  if (hy < range.n) {
    high = (span){range.p + hy + 1, range.n - hy - 1};
    hyphens = span_find(high, '-') < high.n ? 2 : 1;
  }
  kd_rc rc;
  if (span_is(low, "*") || span_is(low, "?")) { /* whatever follows a '-' is ignored, as in Go */
    start = b->min, end = b->max, extra = STAR_BIT;
  } else {
    if ((rc = parse_int_or_name(low, b, &start))) return rc;
    if (hyphens == 0) end = start;
    else if (hyphens == 1) {
      if ((rc = parse_int_or_name(high, b, &end))) return rc;
    } else {
      return kd_fail(KD_ERR_INVALID, "too many hyphens: %s", raw(expr, r));
    }
  }
  if (slashes == 1) {
    if ((rc = must_parse_int(step_s, &step))) return rc;
    if (hyphens == 0) end = b->max; /* "N/step" means "N-max/step" */
    if (step > 1) extra = 0;
  } else if (slashes == 2) {
    return kd_fail(KD_ERR_INVALID, "too many slashes: %s", raw(expr, r));
  }
  if (start < b->min)
    return kd_fail(KD_ERR_INVALID, "beginning of range (%" PRIu64 ") below minimum (%" PRIu64 "): %s", start, b->min, raw(expr, r));
  if (end > b->max)
    return kd_fail(KD_ERR_INVALID, "end of range (%" PRIu64 ") above maximum (%" PRIu64 "): %s", end, b->max, raw(expr, r));
  if (start > end)
    return kd_fail(KD_ERR_INVALID, "beginning of range (%" PRIu64 ") beyond end of range (%" PRIu64 "): %s", start, end,
                   raw(expr, r));
  if (step == 0) return kd_fail(KD_ERR_INVALID, "step of range should be a positive number: %s", raw(expr, r));
  *out = get_bits(start, end, step) | extra;
  return KD_OK;
}

/* a comma list; empty elements are dropped (strings.FieldsFunc), so "," is an empty set */
static kd_rc get_field(span field, const struct bounds *b, uint64_t *out) {
  *out = 0;
  while (field.n) {
    size_t c = span_find(field, ',');
    if (c > 0) {
      uint64_t bits = 0;
      kd_rc rc = get_range((span){field.p, c}, b, &bits);
      if (rc) return rc;
      *out |= bits;
    }
    if (c == field.n) break;
    field.p += c + 1, field.n -= c + 1;
  }
  return KD_OK;
}

/* ---- Go durations ---- */

/* time.ParseDuration, exactly: [-+]?([0-9]*(\.[0-9]*)?unit)+ or "0", within int64 nanoseconds */
static kd_rc go_duration(span in, int64_t *ns) {
  static const struct {
    const char *unit;
    uint64_t ns;
  } units[] = {{"ns", 1},          {"us", 1000},        {"\xc2\xb5s", 1000}, {"\xce\xbcs", 1000},
               {"ms", 1000000},    {"s", NS_PER_S},     {"m", 60 * NS_PER_S}, {"h", 3600 * NS_PER_S}};
  char q[QBUF], qu[QBUF];
  span s = in;
  uint64_t d = 0;
  bool neg = false;
  if (s.n && (s.p[0] == '-' || s.p[0] == '+')) {
    neg = s.p[0] == '-';
    s.p++, s.n--;
  }
  if (span_is(s, "0")) {
    *ns = 0;
    return KD_OK;
  }
  if (s.n == 0) goto invalid;
  while (s.n) {
    uint64_t v = 0, f = 0;
    double scale = 1;
    if (!(s.p[0] == '.' || (s.p[0] >= '0' && s.p[0] <= '9'))) goto invalid;
    size_t i = 0;
    for (; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++) { /* leadingInt */
      if (v > (1ULL << 63) / 10) goto invalid;
      v = v * 10 + (uint64_t)(s.p[i] - '0');
      if (v > 1ULL << 63) goto invalid;
    }
    bool pre = i > 0, post = false;
    s.p += i, s.n -= i;
    if (s.n && s.p[0] == '.') { /* leadingFraction: stops gaining precision, never fails */
      s.p++, s.n--;
      bool overflow = false;
      for (i = 0; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++) {
        if (overflow) continue;
        if (f > ((1ULL << 63) - 1) / 10) {
          overflow = true;
          continue;
        }
        uint64_t y = f * 10 + (uint64_t)(s.p[i] - '0');
        if (y > 1ULL << 63) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      post = i > 0;
      s.p += i, s.n -= i;
    }
    if (!pre && !post) goto invalid; /* ".s" */
    for (i = 0; i < s.n && s.p[i] != '.' && !(s.p[i] >= '0' && s.p[i] <= '9'); i++) {}
    if (i == 0) return kd_fail(KD_ERR_INVALID, "time: missing unit in duration %s", time_quote(in, q));
    span u = {s.p, i};
    s.p += i, s.n -= i;
    size_t k = 0;
    while (k < KD_ARRAY_LEN(units) && !span_is(u, units[k].unit)) k++;
    if (k == KD_ARRAY_LEN(units))
      return kd_fail(KD_ERR_INVALID, "time: unknown unit %s in duration %s", time_quote(u, qu), time_quote(in, q));
    if (v > (1ULL << 63) / units[k].ns) goto invalid;
    v *= units[k].ns;
    if (f > 0) { /* as Go: float64 for the fraction, exact to the nanosecond for hours */
      v += (uint64_t)((double)f * ((double)units[k].ns / scale));
      if (v > 1ULL << 63) goto invalid;
    }
    d += v;
    if (d > 1ULL << 63) goto invalid;
  }
  if (neg) {
    *ns = d == 1ULL << 63 ? INT64_MIN : -(int64_t)d;
    return KD_OK;
  }
  if (d > (1ULL << 63) - 1) goto invalid;
  *ns = (int64_t)d;
  return KD_OK;
invalid:
  return kd_fail(KD_ERR_INVALID, "time: invalid duration %s", time_quote(in, q));
}

kd_rc cron_parse_go_duration(const char *s, int64_t *ns) { return go_duration((span){s, strlen(s)}, ns); }

/* ---- descriptors and the whole spec ---- */

static uint64_t all_bits(const struct bounds *b) { return get_bits(b->min, b->max, 1) | STAR_BIT; }

static kd_rc parse_descriptor(span d, cron_schedule *s) {
  char r[QBUF];
  s->second = 1, s->minute = 1, s->hour = 1; /* 00:00:00 unless said otherwise */
  s->dom = all_bits(&b_dom), s->month = all_bits(&b_month), s->dow = all_bits(&b_dow);
  if (span_is(d, "@yearly") || span_is(d, "@annually")) {
    s->dom = 1ULL << 1, s->month = 1ULL << 1;
  } else if (span_is(d, "@monthly")) {
    s->dom = 1ULL << 1;
  } else if (span_is(d, "@weekly")) {
    s->dow = 1ULL << 0;
  } else if (span_is(d, "@daily") || span_is(d, "@midnight")) {
  } else if (span_is(d, "@hourly")) {
    s->hour = all_bits(&b_hour);
  } else if (d.n >= 7 && memcmp(d.p, "@every ", 7) == 0) {
    int64_t ns;
    if (go_duration((span){d.p + 7, d.n - 7}, &ns) != KD_OK)
      return kd_fail(KD_ERR_INVALID, "failed to parse duration %s: %s", raw(d, r), kd_errmsg());
    if (ns < (int64_t)NS_PER_S) ns = (int64_t)NS_PER_S; /* robfig's Every: at least a second */
    s->every = true;
    s->delay_s = ns / (int64_t)NS_PER_S;              /* whole seconds */
  } else {
    return kd_fail(KD_ERR_INVALID, "unrecognized descriptor: %s", raw(d, r));
  }
  return KD_OK;
}

/* robfig's "expected exactly 5 fields, found N: [a b c]" (Go prints the fields of the slice
 * separated by one space) */
static kd_rc field_count_error(span spec, int n) {
  char list[QBUF];
  size_t o = 0;
  span rest = spec, f;
  bool first = true;
  while (next_field(&rest, &f) && o < RAW_MAX) {
    char r[QBUF];
    if (!first) list[o++] = ' ';
    first = false;
    const char *t = raw(f, r);
    size_t tl = strlen(t);
    if (tl > RAW_MAX - o) tl = RAW_MAX - o;
    memcpy(list + o, t, tl);
    o += tl;
  }
  list[o] = '\0';
  return kd_fail(KD_ERR_INVALID, "expected exactly 5 fields, found %d: [%s]", n, list);
}

kd_rc cron_parse_n(const char *spec_in, size_t len, cron_schedule **out) {
  kd_rc rc = KD_OK;
  *out = NULL;
  if (!spec_in || len == 0) return kd_fail(KD_ERR_INVALID, "empty spec string");
  span spec = {spec_in, len};
  cron_schedule *s = calloc(1, sizeof *s);
  if (!s) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if ((len >= 3 && memcmp(spec_in, "TZ=", 3) == 0) || (len >= 8 && memcmp(spec_in, "CRON_TZ=", 8) == 0)) {
    /* the zone ends at the first ASCII space; robfig panics (slicing with -1) when there is none */
    size_t sp = span_find(spec, ' '), eq = span_find(spec, '=');
    char name[256], r[QBUF];
    span zone = {spec_in + eq + 1, sp < len ? sp - eq - 1 : len - eq - 1};
    if (sp == len) {
      rc = kd_fail(KD_ERR_INVALID, "provided bad location %s: no schedule after the time zone", raw(zone, r));
      goto fail;
    }
    if (zone.n >= sizeof name || memchr(zone.p, '\0', zone.n)) {
      rc = kd_fail(KD_ERR_NOTFOUND, "provided bad location %s: unknown time zone %s", raw(zone, r), raw(zone, r));
      goto fail;
    }
    memcpy(name, zone.p, zone.n);
    name[zone.n] = '\0';
    if ((rc = tz_load(name, &s->zone)) != KD_OK) {
      rc = kd_fail(rc, "provided bad location %s: %s", name, kd_errmsg());
      goto fail;
    }
    spec = trim_space((span){spec_in + sp, len - sp});
  }
  if (spec.n && spec.p[0] == '@') {
    if ((rc = parse_descriptor(spec, s))) goto fail;
    *out = s;
    return KD_OK;
  }
  span fields[5], rest = spec, f;
  int n = 0;
  while (next_field(&rest, &f)) {
    if (n < 5) fields[n] = f;
    n++;
  }
  if (n != 5) {
    rc = field_count_error(spec, n);
    goto fail;
  }
  s->second = 1; /* second 0 */
  if ((rc = get_field(fields[0], &b_minute, &s->minute)) || (rc = get_field(fields[1], &b_hour, &s->hour)) ||
      (rc = get_field(fields[2], &b_dom, &s->dom)) || (rc = get_field(fields[3], &b_month, &s->month)) ||
      (rc = get_field(fields[4], &b_dow, &s->dow)))
    goto fail;
  /* a field that matches nothing (only an empty list can) makes Next search its five years in
   * vain, minute by minute: robfig returns the zero time after millions of steps; so do we, at
   * once. Days: with a star in either day field both must match, else either may. */
  uint64_t dom = s->dom & ~STAR_BIT, dow = s->dow & ~STAR_BIT;
  bool days_never = ((s->dom | s->dow) & STAR_BIT) ? (dom == 0 || dow == 0) : (dom == 0 && dow == 0);
  s->never = (s->minute & ~STAR_BIT) == 0 || (s->hour & ~STAR_BIT) == 0 || (s->month & ~STAR_BIT) == 0 || days_never;
  *out = s;
  return KD_OK;
fail:
  cron_free(s);
  return rc;
}

kd_rc cron_parse(const char *spec, cron_schedule **out) {
  return cron_parse_n(spec, spec ? strlen(spec) : 0, out);
}

/* ---- Next ---- */

static bool day_matches(const cron_schedule *s, const struct tz_civil *c) {
  bool dom = (1ULL << c->day) & s->dom, dow = (1ULL << c->weekday) & s->dow;
  if ((s->dom & STAR_BIT) || (s->dow & STAR_BIT)) return dom && dow;
  return dom || dow;
}

/* SpecSchedule.Next, statement by statement (time.Date and AddDate are tz_date, t.Add is +). */
int64_t cron_next(const cron_schedule *s, int64_t t) {
  if (s->every) return t + s->delay_s; /* t is whole seconds already */
  if (s->never) return 0;
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
    int64_t before = t;
    t = tz_date(z, c.year, c.month, c.day + 1, c.hour, c.minute, c.second);
    tz_civil(z, t, &c);
    /* DST: the day may not start at midnight */
    if (c.hour != 0) {
      if (c.hour > 12) t += (int64_t)(24 - c.hour) * 3600;
      else t -= (int64_t)c.hour * 3600;
      tz_civil(z, t, &c);
    }
    /* A day that does not exist (Pacific/Apia had no 2011-12-30): time.Date gives back the day
     * before, and robfig loops here forever. Step over it to the next day that exists. */
    if (t <= before) {
      t = before + 86400;
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
    if (!added) { /* Truncate(time.Minute) works on absolute time, not on the local clock */
      added = true;
      t -= t % 60 < 0 ? t % 60 + 60 : t % 60;
      tz_civil(z, t, &c);
    }
    t += 60;
    tz_civil(z, t, &c);
    if (c.minute == 0) goto wrap;
  }
  while (!((1ULL << c.second) & s->second)) {
    added = true; /* Truncate(time.Second): already whole seconds */
    t += 1;
    tz_civil(z, t, &c);
    if (c.second == 0) goto wrap;
  }
  return t;
}
