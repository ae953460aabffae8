/* jsonpatch_go.c — what JSON patching needs of Go's text (see jsonpatch.h): float64 formatting
 * as strconv and encoding/json do it, encoding/json's text of jansson values, strconv's
 * ParseFloat syntax and Atoi. */
#include "jsonpatch_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- Go number text */

/* The shortest decimal digits that read back as d (as a float when bits is 32): digits without
 * a point in dig, and the decimal exponent dp such that d = 0.dig × 10^dp. */
static void jp_shortest(double d, int bits, char dig[24], int *nd, int *dp) {
  char buf[48];
  int p;
  for (p = 1; p <= 17; p++) {
    snprintf(buf, sizeof buf, "%.*e", p - 1, bits == 32 ? (double)(float)d : d);
    if (bits == 32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d) break;
  }
  if (p > 17) snprintf(buf, sizeof buf, "%.16e", d);
  const char *s = buf;
  if (*s == '-') s++;
  int n = 0;
  for (; *s && *s != 'e'; s++)
    if (*s >= '0' && *s <= '9' && n < 23) dig[n++] = *s;
  int e = (*s == 'e') ? atoi(s + 1) : 0;
  while (n > 1 && dig[n - 1] == '0') n--;
  dig[n] = '\0';
  *nd = n;
  *dp = e + 1;
}

static size_t jp_fmt_e(char *o, size_t size, bool neg, const char *dig, int nd, int dp, bool twodigits) {
  size_t k = 0;
  char tmp[64];
  if (neg) tmp[k++] = '-';
  tmp[k++] = dig[0];
  if (nd > 1) {
    tmp[k++] = '.';
    for (int i = 1; i < nd; i++) tmp[k++] = dig[i];
  }
  int e = dp - 1;
  tmp[k++] = 'e';
  tmp[k++] = e < 0 ? '-' : '+';
  if (e < 0) e = -e;
  k += (size_t)snprintf(tmp + k, sizeof tmp - k, twodigits ? "%02d" : "%d", e);
  tmp[k] = '\0';
  return (size_t)snprintf(o, size, "%s", tmp);
}

static size_t jp_fmt_f(char *o, size_t size, bool neg, const char *dig, int nd, int dp) {
  char tmp[400];
  size_t k = 0;
  if (neg) tmp[k++] = '-';
  if (dp <= 0) {
    tmp[k++] = '0';
    tmp[k++] = '.';
    for (int i = 0; i < -dp && k < sizeof tmp - 30; i++) tmp[k++] = '0';
    for (int i = 0; i < nd; i++) tmp[k++] = dig[i];
  } else {
    for (int i = 0; i < dp && k < sizeof tmp - 30; i++) tmp[k++] = i < nd ? dig[i] : '0';
    if (nd > dp) {
      tmp[k++] = '.';
      for (int i = dp; i < nd; i++) tmp[k++] = dig[i];
    }
  }
  tmp[k] = '\0';
  return (size_t)snprintf(o, size, "%s", tmp);
}

/* Go's encoding/json text for a float64. */
void jp_json_float(double d, char *buf, size_t size) {
  char dig[24];
  int nd, dp;
  double a = fabs(d);
  bool neg = signbit(d) != 0;
  if (a == 0) {
    snprintf(buf, size, "%s", neg ? "-0" : "0");
    return;
  }
  jp_shortest(a, 64, dig, &nd, &dp);
  if (a < 1e-6 || a >= 1e21) {
    jp_fmt_e(buf, size, neg, dig, nd, dp, true);
    /* Go turns "e-07" into "e-7" (only for negative exponents) */
    size_t n = strlen(buf);
    if (n >= 4 && buf[n - 4] == 'e' && buf[n - 3] == '-' && buf[n - 2] == '0') {
      buf[n - 2] = buf[n - 1];
      buf[n - 1] = '\0';
    }
  } else {
    jp_fmt_f(buf, size, neg, dig, nd, dp);
  }
}

void jsonpatch_go_gfloat(double d, int bits, char *buf, size_t size) {
  if (isnan(d)) {
    snprintf(buf, size, "NaN");
    return;
  }
  double v = bits == 32 ? (double)(float)d : d;
  if (isinf(v)) {
    snprintf(buf, size, "%s", v < 0 ? "-Inf" : "+Inf");
    return;
  }
  bool neg = signbit(v) != 0;
  if (v == 0) {
    snprintf(buf, size, "%s", neg ? "-0" : "0");
    return;
  }
  char dig[24];
  int nd, dp;
  jp_shortest(fabs(v), bits, dig, &nd, &dp);
  /* strconv's 'g' with the shortest precision: %e when the exponent is < -4 or >= 6 */
  int exp = dp - 1;
  if (exp < -4 || exp >= 6) jp_fmt_e(buf, size, neg, dig, nd, dp, true);
  else jp_fmt_f(buf, size, neg, dig, nd, dp);
}

/* ---------------------------------------------------------------- Go JSON text of jansson values */

static kd_rc jp_go_string(kd_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  kd_rc rc = kd_buf_add(b, "\"", 1);
  size_t start = 0;
  for (size_t i = 0; rc == KD_OK && i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
        i++;
        continue;
      }
      rc = kd_buf_add(b, s + start, i - start);
      char e[6] = {'\\', 0, 0, 0, 0, 0};
      size_t el = 2;
      switch (c) {
      case '"': e[1] = '"'; break;
      case '\\': e[1] = '\\'; break;
      case '\n': e[1] = 'n'; break;
      case '\r': e[1] = 'r'; break;
      case '\t': e[1] = 't'; break;
      case '\b': e[1] = 'b'; break;
      case '\f': e[1] = 'f'; break;
      default:
        e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
        el = 6;
      }
      if (rc == KD_OK) rc = kd_buf_add(b, e, el);
      start = ++i;
      continue;
    }
    /* multi-byte: copy valid sequences, \ufffd for invalid bytes, \u2028 and \u2029 escaped */
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    bool ok = len > 0 && c < 0xf5 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
    if (ok && len == 2 && c < 0xc2) ok = false;
    if (ok && len == 3) {
      unsigned char c1 = (unsigned char)s[i + 1];
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) ok = false;
    }
    if (ok && len == 4) {
      unsigned char c1 = (unsigned char)s[i + 1];
      if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) ok = false;
    }
    if (!ok) {
      rc = kd_buf_add(b, s + start, i - start);
      if (rc == KD_OK) rc = kd_buf_adds(b, "\\ufffd");
      start = ++i;
      continue;
    }
    if (len == 3 && c == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
        ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
      rc = kd_buf_add(b, s + start, i - start);
      if (rc == KD_OK) rc = kd_buf_adds(b, (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
      i += 3;
      start = i;
      continue;
    }
    i += len;
  }
  if (rc == KD_OK) rc = kd_buf_add(b, s + start, n - start);
  if (rc == KD_OK) rc = kd_buf_add(b, "\"", 1);
  return rc;
}

/* See jsonpatch_int.h. */
kd_rc jp_go_text_depth(json_t *v, kd_buf *b, int depth) {
  char num[64];
  if (depth > JP_MAX_DEPTH) return kd_fail(KD_ERR_TOOBIG, "JSON nested deeper than %d levels", JP_MAX_DEPTH);
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    kd_rc rc = kd_buf_add(b, "{", 1);
    const char *k;
    size_t kl;
    json_t *m;
    bool first = true;
    json_object_keylen_foreach(v, k, kl, m) {
      if (rc == KD_OK && !first) rc = kd_buf_add(b, ",", 1);
      first = false;
      if (rc == KD_OK) rc = jp_go_string(b, k, kl);
      if (rc == KD_OK) rc = kd_buf_add(b, ":", 1);
      if (rc == KD_OK) rc = jp_go_text_depth(m, b, depth + 1);
    }
    if (rc == KD_OK) rc = kd_buf_add(b, "}", 1);
    return rc;
  }
  case JSON_ARRAY: {
    kd_rc rc = kd_buf_add(b, "[", 1);
    for (size_t i = 0; rc == KD_OK && i < json_array_size(v); i++) {
      if (i) rc = kd_buf_add(b, ",", 1);
      if (rc == KD_OK) rc = jp_go_text_depth(json_array_get(v, i), b, depth + 1);
    }
    if (rc == KD_OK) rc = kd_buf_add(b, "]", 1);
    return rc;
  }
  case JSON_STRING: return jp_go_string(b, json_string_value(v), json_string_length(v));
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return kd_buf_adds(b, num);
  case JSON_REAL:
    jp_json_float(json_real_value(v), num, sizeof num);
    return kd_buf_adds(b, num);
  case JSON_TRUE: return kd_buf_adds(b, "true");
  case JSON_FALSE: return kd_buf_adds(b, "false");
  default: return kd_buf_adds(b, "null");
  }
}

kd_rc jsonpatch_go_text(json_t *v, kd_buf *out) { return jp_go_text_depth(v, out, 0); }

/* ---------------------------------------------------------------- strconv */

static int jp_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static bool jp_ieq(const char *s, size_t n, const char *lit) {
  size_t l = strlen(lit);
  if (n != l) return false;
  for (size_t i = 0; i < n; i++)
    if (jp_lower((unsigned char)s[i]) != lit[i]) return false;
  return true;
}

/* strconv's underscoreOK: underscores only between digits (or after a base prefix). */
static bool jp_underscore_ok(const char *s, size_t n) {
  char saw = '^';
  size_t i = 0;
  if (n >= 1 && (s[0] == '-' || s[0] == '+')) s++, n--;
  bool hex = false;
  if (n >= 2 && s[0] == '0' && (jp_lower(s[1]) == 'b' || jp_lower(s[1]) == 'o' || jp_lower(s[1]) == 'x')) {
    i = 2;
    saw = '0';
    hex = jp_lower(s[1]) == 'x';
  }
  for (; i < n; i++) {
    int c = (unsigned char)s[i];
    if ((c >= '0' && c <= '9') || (hex && jp_lower(c) >= 'a' && jp_lower(c) <= 'f')) {
      saw = '0';
      continue;
    }
    if (c == '_') {
      if (saw != '0') return false;
      saw = '_';
      continue;
    }
    if (saw == '_') return false;
    saw = '!';
  }
  return saw != '_';
}

bool jsonpatch_go_parsefloat_ok(const char *s, size_t n) {
  if (n == 0) return false;
  size_t i = 0;
  bool sign = false;
  if (s[0] == '+' || s[0] == '-') i = 1, sign = true;
  /* Inf, Infinity (signed or not), NaN (unsigned) */
  if (jp_ieq(s + i, n - i, "inf") || jp_ieq(s + i, n - i, "infinity")) return true;
  if (!sign && jp_ieq(s, n, "nan")) return true;
  bool hex = false, underscores = false, sawdigits = false, sawdot = false;
  if (i + 2 <= n && s[i] == '0' && jp_lower(s[i + 1]) == 'x') hex = true, i += 2;
  for (; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '_') {
      underscores = true;
      continue;
    }
    if (c == '.') {
      if (sawdot) return false;
      sawdot = true;
      continue;
    }
    if ((c >= '0' && c <= '9') || (hex && jp_lower(c) >= 'a' && jp_lower(c) <= 'f')) {
      sawdigits = true;
      continue;
    }
    break;
  }
  if (!sawdigits) return false;
  if (i < n && jp_lower((unsigned char)s[i]) == (hex ? 'p' : 'e')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return false;
    for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'); i++)
      if (s[i] == '_') underscores = true;
  } else if (hex) {
    return false; /* a hexadecimal mantissa needs a 'p' exponent */
  }
  if (i != n) return false;
  if (underscores && !jp_underscore_ok(s, n)) return false;
  /* range: strtod on the text without underscores; overflow is an error, underflow is not */
  char *buf = malloc(n + 1);
  if (!buf) return false;
  size_t k = 0;
  for (size_t j = 0; j < n; j++)
    if (s[j] != '_') buf[k++] = s[j];
  buf[k] = '\0';
  errno = 0;
  double d = strtod(buf, NULL);
  bool over = errno == ERANGE && isinf(d);
  free(buf);
  return !over;
}

/* strconv.Atoi: optional sign, decimal digits, int64 range. */
bool jp_atoi(const char *s, size_t n, long long *out) {
  size_t i = 0;
  bool neg = false;
  if (n > 0 && (s[0] == '+' || s[0] == '-')) neg = s[0] == '-', i = 1;
  if (i >= n) return false;
  unsigned long long v = 0, lim = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (lim - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = neg ? (long long)(0 - v) : (long long)v;
  return true;
}

