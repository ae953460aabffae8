/* jsonpatch.c — JSON Patch and merge patch with evanphx/json-patch v5 semantics (see jsonpatch.h).
 *
 * evanphx keeps a document as "lazy nodes": raw JSON text parsed on demand. What a patch can
 * observe of that model is kept here in jp_node: scalars carry their JSON text (test compares
 * texts), and the three kinds of null are told apart — a null of the document (Go's nil
 * pointer, a NULL child here), a null the patch added (a node without text, JN_PNULL) and a
 * copy of the latter (the text "null", JN_RNULL) — because evanphx treats them differently. */
#include "jsonpatch.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JP_MAX_DEPTH 2048            /* nesting of documents and values (jansson's parser limit) */
#define JP_MAX_NODES 500000          /* nodes in one document while patching (a restore patches 16 at once) */
#define JP_MAX_BYTES (32u << 20)     /* scalar text bytes in one document while patching (objects are <= 8 MiB) */
#define JP_MAX_TEXT (64u << 20)      /* a patch text */

enum { JN_SCALAR, JN_PNULL, JN_RNULL, JN_OBJ, JN_ARR };

typedef struct jp_node {
  int kind;
  char *text; /* JN_SCALAR: its compact JSON text, as evanphx compares it */
  size_t tlen;
  json_t *val; /* JN_SCALAR: its value; NULL for a number no float64 holds */
  size_t n, cap;
  char **keys; /* JN_OBJ: decoded member names (NUL allowed) */
  size_t *klen;
  struct jp_node **kid; /* JN_OBJ values, JN_ARR items; NULL is a document null */
} jp_node;

typedef struct jp_ctx {
  jsonpatch_err why;
  size_t nodes, bytes;
} jp_ctx;

/* ---------------------------------------------------------------- errors */

/* A printable, bounded rendering of s[0..n) for messages. */
static void jp_show(const char *s, size_t n, char *out, size_t size) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 8 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
    else out[o++] = (char)c;
  }
  o = kd_utf8_cut(out, o);
  out[o] = '\0';
}

static kd_rc jp_err(jp_ctx *c, jsonpatch_err why, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static kd_rc jp_err(jp_ctx *c, jsonpatch_err why, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c) c->why = why;
  return kd_fail(KD_ERR_INVALID, "%s", msg);
}

static kd_rc jp_nomem(void) { return kd_fail(KD_ERR_NOMEM, "JSON patch: out of memory"); }

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
static void jp_json_float(double d, char *buf, size_t size) {
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

static kd_rc jp_go_text_depth(json_t *v, kd_buf *b, int depth) {
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
static bool jp_atoi(const char *s, size_t n, long long *out) {
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

/* ---------------------------------------------------------------- nodes */

static jp_node *jp_new(int kind) {
  jp_node *n = calloc(1, sizeof *n);
  if (n) n->kind = kind;
  return n;
}

static void jp_free(jp_node *n) {
  if (!n) return;
  free(n->text);
  json_decref(n->val);
  for (size_t i = 0; i < n->n; i++) {
    if (n->keys) free(n->keys[i]);
    jp_free(n->kid[i]);
  }
  free(n->keys);
  free(n->klen);
  free(n->kid);
  free(n);
}

/* Room for one more child. */
static kd_rc jp_grow(jp_node *n) {
  if (n->n < n->cap) return KD_OK;
  size_t cap = n->cap ? n->cap * 2 : 4;
  jp_node **kid = realloc(n->kid, cap * sizeof *kid);
  if (!kid) return jp_nomem();
  n->kid = kid;
  if (n->kind == JN_OBJ) {
    char **keys = realloc(n->keys, cap * sizeof *keys);
    if (!keys) return jp_nomem();
    n->keys = keys;
    size_t *klen = realloc(n->klen, cap * sizeof *klen);
    if (!klen) return jp_nomem();
    n->klen = klen;
  }
  n->cap = cap;
  return KD_OK;
}

static long jp_find_key(const jp_node *o, const char *k, size_t kl) {
  for (size_t i = 0; i < o->n; i++)
    if (o->klen[i] == kl && memcmp(o->keys[i], k, kl) == 0) return (long)i;
  return -1;
}

/* Set member k of object o to v (owned): replaced in place when present (the old value freed),
 * appended otherwise. On failure v is freed. */
static kd_rc jp_obj_set(jp_node *o, const char *k, size_t kl, jp_node *v) {
  long at = jp_find_key(o, k, kl);
  if (at >= 0) {
    jp_free(o->kid[at]);
    o->kid[at] = v;
    return KD_OK;
  }
  char *kc = malloc(kl + 1);
  if (!kc || jp_grow(o) != KD_OK) {
    free(kc);
    jp_free(v);
    return jp_nomem();
  }
  memcpy(kc, k, kl);
  kc[kl] = '\0';
  o->keys[o->n] = kc;
  o->klen[o->n] = kl;
  o->kid[o->n++] = v;
  return KD_OK;
}

/* Insert v (owned) at index at of array a (0 <= at <= n). On failure v is freed. */
static kd_rc jp_arr_insert(jp_node *a, size_t at, jp_node *v) {
  if (jp_grow(a) != KD_OK) {
    jp_free(v);
    return jp_nomem();
  }
  memmove(a->kid + at + 1, a->kid + at, (a->n - at) * sizeof *a->kid);
  a->kid[at] = v;
  a->n++;
  return KD_OK;
}

/* Detach child i of a container (its key freed) and return it. */
static jp_node *jp_detach(jp_node *c, size_t i) {
  jp_node *v = c->kid[i];
  if (c->kind == JN_OBJ) {
    free(c->keys[i]);
    memmove(c->keys + i, c->keys + i + 1, (c->n - i - 1) * sizeof *c->keys);
    memmove(c->klen + i, c->klen + i + 1, (c->n - i - 1) * sizeof *c->klen);
  }
  memmove(c->kid + i, c->kid + i + 1, (c->n - i - 1) * sizeof *c->kid);
  c->n--;
  return v;
}

static kd_rc jp_scalar(const char *text, size_t tlen, json_t *val, jp_node **out) {
  jp_node *n = jp_new(JN_SCALAR);
  if (!n) {
    json_decref(val);
    return jp_nomem();
  }
  n->val = val;
  n->text = malloc(tlen + 1);
  if (!n->text) {
    jp_free(n);
    return jp_nomem();
  }
  memcpy(n->text, text, tlen);
  n->text[tlen] = '\0';
  n->tlen = tlen;
  *out = n;
  return KD_OK;
}

/* Count a node set into the document against the caps. */
static kd_rc jp_account(jp_ctx *c, const jp_node *n, int depth) {
  if (!n) return KD_OK;
  if (depth > JP_MAX_DEPTH) return kd_fail(KD_ERR_TOOBIG, "JSON patch: the document would nest deeper than %d levels", JP_MAX_DEPTH);
  c->nodes++;
  c->bytes += n->tlen + 16;
  if (c->nodes > JP_MAX_NODES || c->bytes > JP_MAX_BYTES)
    return kd_fail(KD_ERR_TOOBIG, "JSON patch: the document would exceed %d nodes or %u MiB", JP_MAX_NODES, JP_MAX_BYTES >> 20);
  for (size_t i = 0; i < n->n; i++) {
    kd_rc rc = jp_account(c, n->kid[i], depth + 1);
    if (rc != KD_OK) return rc;
  }
  return KD_OK;
}

/* Take a node leaving the document off the counts. */
static void jp_unaccount(jp_ctx *c, const jp_node *n) {
  if (!n) return;
  c->nodes = c->nodes > 0 ? c->nodes - 1 : 0;
  c->bytes = c->bytes > n->tlen + 16 ? c->bytes - (n->tlen + 16) : 0;
  for (size_t i = 0; i < n->n; i++) jp_unaccount(c, n->kid[i]);
}

/* A jansson value as evanphx would hold it after Go printed it: scalars with Go's text. top:
 * a null at the top is a patch's null (JN_PNULL), elsewhere a document null (NULL). */
static kd_rc jp_from_json(json_t *v, bool top, int depth, jp_node **out) {
  kd_rc rc = KD_OK;
  jp_node *n = NULL;
  kd_buf b = KD_BUF_INIT(JP_MAX_BYTES);
  *out = NULL;
  if (depth > JP_MAX_DEPTH) return kd_fail(KD_ERR_TOOBIG, "JSON nested deeper than %d levels", JP_MAX_DEPTH);
  switch (json_typeof(v)) {
  case JSON_NULL:
    if (top && !(*out = jp_new(JN_PNULL))) return jp_nomem();
    return KD_OK;
  case JSON_OBJECT: {
    if (!(n = jp_new(JN_OBJ))) return jp_nomem();
    const char *k;
    size_t kl;
    json_t *m;
    json_object_keylen_foreach(v, k, kl, m) {
      jp_node *kn = NULL;
      if ((rc = jp_from_json(m, false, depth + 1, &kn)) != KD_OK) goto fail;
      if ((rc = jp_grow(n)) != KD_OK) {
        jp_free(kn);
        goto fail;
      }
      char *kc = malloc(kl + 1);
      if (!kc) {
        jp_free(kn);
        rc = jp_nomem();
        goto fail;
      }
      memcpy(kc, k, kl);
      kc[kl] = '\0';
      n->keys[n->n] = kc;
      n->klen[n->n] = kl;
      n->kid[n->n++] = kn;
    }
    *out = n;
    return KD_OK;
  }
  case JSON_ARRAY:
    if (!(n = jp_new(JN_ARR))) return jp_nomem();
    for (size_t i = 0; i < json_array_size(v); i++) {
      jp_node *kn = NULL;
      if ((rc = jp_from_json(json_array_get(v, i), false, depth + 1, &kn)) != KD_OK) goto fail;
      if ((rc = jp_arr_insert(n, n->n, kn)) != KD_OK) goto fail;
    }
    *out = n;
    return KD_OK;
  default:
    if ((rc = jp_go_text_depth(v, &b, depth)) != KD_OK) goto fail;
    json_t *val = json_copy(v);
    if (!val) {
      rc = jp_nomem();
      goto fail;
    }
    rc = jp_scalar(b.data, b.len, val, out);
    kd_buf_free(&b);
    return rc;
  }
fail:
  kd_buf_free(&b);
  jp_free(n);
  return rc;
}

/* A structural copy (an operation's value is fresh at every use). */
static kd_rc jp_clone(const jp_node *s, jp_node **out) {
  *out = NULL;
  if (!s) return KD_OK;
  if (s->kind == JN_SCALAR) {
    json_t *val = s->val ? json_copy(s->val) : NULL;
    if (s->val && !val) return jp_nomem();
    return jp_scalar(s->text, s->tlen, val, out);
  }
  jp_node *n = jp_new(s->kind);
  if (!n) return jp_nomem();
  for (size_t i = 0; i < s->n; i++) {
    jp_node *kn = NULL;
    kd_rc rc = jp_clone(s->kid[i], &kn);
    if (rc == KD_OK) rc = s->kind == JN_OBJ ? jp_obj_set(n, s->keys[i], s->klen[i], kn) : jp_arr_insert(n, n->n, kn);
    if (rc != KD_OK) {
      jp_free(n);
      return rc;
    }
  }
  *out = n;
  return KD_OK;
}

/* Go's json.Marshal of a raw scalar: compacted with <, >, &, U+2028, U+2029 escaped. */
static kd_rc jp_html_escape(const char *t, size_t n, kd_buf *b) {
  kd_rc rc = KD_OK;
  for (size_t i = 0; rc == KD_OK && i < n; i++) {
    unsigned char c = (unsigned char)t[i];
    if (c == '<') rc = kd_buf_adds(b, "\\u003c");
    else if (c == '>') rc = kd_buf_adds(b, "\\u003e");
    else if (c == '&') rc = kd_buf_adds(b, "\\u0026");
    else if (c == 0xe2 && i + 2 < n && (unsigned char)t[i + 1] == 0x80 &&
             ((unsigned char)t[i + 2] == 0xa8 || (unsigned char)t[i + 2] == 0xa9)) {
      rc = kd_buf_adds(b, (unsigned char)t[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
      i += 2;
    } else rc = kd_buf_add(b, t + i, 1);
  }
  return rc;
}

/* evanphx's deepCopy: the value printed and read back. A patch's null becomes the text "null"
 * at the top and a document null inside. */
static kd_rc jp_gocopy(const jp_node *s, bool top, jp_node **out) {
  *out = NULL;
  if (!s) return KD_OK;
  if (s->kind == JN_PNULL || s->kind == JN_RNULL) {
    if (top && !(*out = jp_new(JN_RNULL))) return jp_nomem();
    return KD_OK;
  }
  if (s->kind == JN_SCALAR) {
    kd_buf b = KD_BUF_INIT(JP_MAX_BYTES);
    kd_rc rc = jp_html_escape(s->text, s->tlen, &b);
    json_t *val = s->val ? json_copy(s->val) : NULL;
    if (rc == KD_OK && s->val && !val) rc = jp_nomem();
    if (rc == KD_OK) rc = jp_scalar(b.data ? b.data : "", b.len, val, out);
    else json_decref(val);
    kd_buf_free(&b);
    return rc;
  }
  jp_node *n = jp_new(s->kind);
  if (!n) return jp_nomem();
  for (size_t i = 0; i < s->n; i++) {
    jp_node *kn = NULL;
    kd_rc rc = jp_gocopy(s->kid[i], false, &kn);
    if (rc == KD_OK) rc = s->kind == JN_OBJ ? jp_obj_set(n, s->keys[i], s->klen[i], kn) : jp_arr_insert(n, n->n, kn);
    if (rc != KD_OK) {
      jp_free(n);
      return rc;
    }
  }
  *out = n;
  return KD_OK;
}

/* The node as a new jansson value. KD_ERR_INVALID for a number no float64 holds (Velero's
 * decoding of the result fails there too). */
static kd_rc jp_to_json(const jp_node *n, json_t **out) {
  *out = NULL;
  if (!n || n->kind == JN_PNULL || n->kind == JN_RNULL) {
    *out = json_null();
    return KD_OK;
  }
  if (n->kind == JN_SCALAR) {
    if (!n->val) {
      char show[80];
      jp_show(n->text, n->tlen, show, sizeof show);
      return kd_fail(KD_ERR_INVALID, "the number %s does not fit a float64", show);
    }
    if (!(*out = json_copy(n->val))) return jp_nomem();
    return KD_OK;
  }
  json_t *r = n->kind == JN_OBJ ? json_object() : json_array();
  if (!r) return jp_nomem();
  for (size_t i = 0; i < n->n; i++) {
    json_t *kv = NULL;
    kd_rc rc = jp_to_json(n->kid[i], &kv);
    if (rc == KD_OK) {
      int e = n->kind == JN_OBJ ? json_object_setn_new_nocheck(r, n->keys[i], n->klen[i], kv) : json_array_append_new(r, kv);
      if (e) rc = jp_nomem();
    }
    if (rc != KD_OK) {
      json_decref(r);
      return rc;
    }
  }
  *out = r;
  return KD_OK;
}

/* ---------------------------------------------------------------- Go's JSON reader */

typedef struct jp_parser {
  const char *s;
  size_t n, i;
} jp_parser;

static void jp_ws(jp_parser *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static kd_rc jp_syntax(jp_parser *p, const char *what) {
  return kd_fail(KD_ERR_INVALID, "invalid JSON at offset %zu: %s", p->i, what);
}

static int jp_hex4(const char *s) {
  int v = 0;
  for (int k = 0; k < 4; k++) {
    int c = (unsigned char)s[k], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

static size_t jp_utf8_put(char *o, unsigned cp) {
  if (cp < 0x80) return o[0] = (char)cp, 1;
  if (cp < 0x800) return o[0] = (char)(0xc0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
  if (cp < 0x10000)
    return o[0] = (char)(0xe0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[2] = (char)(0x80 | (cp & 0x3f)), 3;
  o[0] = (char)(0xf0 | (cp >> 18)), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid (Go's utf8.DecodeRune). */
static size_t jp_utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (len == 0 || c >= 0xf5 || len > n) return 0;
  for (size_t k = 1; k < len; k++)
    if ((s[k] & 0xc0) != 0x80) return 0;
  if (len == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))) return 0;
  if (len == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))) return 0;
  return len;
}

/* Scan the string at p->i (on the opening quote); *dec (caller frees) gets its decoded bytes as
 * Go's unquote makes them (invalid UTF-8 and lone surrogates become U+FFFD). */
static kd_rc jp_string(jp_parser *p, char **dec, size_t *declen) {
  size_t start = ++p->i, end;
  for (;;) {
    if (p->i >= p->n) return jp_syntax(p, "unterminated string");
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '"') break;
    if (c < 0x20) return jp_syntax(p, "control character in string");
    if (c == '\\') {
      if (p->i + 1 >= p->n) return jp_syntax(p, "unterminated string");
      char e = p->s[p->i + 1];
      if (e == 'u') {
        if (p->i + 6 > p->n || jp_hex4(p->s + p->i + 2) < 0) return jp_syntax(p, "bad \\u escape");
        p->i += 6;
        continue;
      }
      if (!strchr("\"\\/bfnrt", e) || e == '\0') return jp_syntax(p, "bad escape");
      p->i += 2;
      continue;
    }
    p->i++;
  }
  end = p->i++;
  /* decode: at most 3 bytes out per byte in (an invalid byte becomes U+FFFD) */
  char *o = malloc((end - start) * 3 + 1);
  if (!o) return jp_nomem();
  size_t w = 0;
  const char *s = p->s;
  for (size_t r = start; r < end;) {
    unsigned char c = (unsigned char)s[r];
    if (c == '\\') {
      char e = s[r + 1];
      if (e != 'u') {
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        o[w++] = to[strchr(from, e) - from];
        r += 2;
        continue;
      }
      unsigned cp = (unsigned)jp_hex4(s + r + 2);
      r += 6;
      if (cp >= 0xd800 && cp < 0xe000) {
        int lo = (r + 6 <= end && s[r] == '\\' && s[r + 1] == 'u') ? jp_hex4(s + r + 2) : -1;
        if (cp < 0xdc00 && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
          r += 6;
        } else {
          cp = 0xfffd;
        }
      }
      w += jp_utf8_put(o + w, cp);
      continue;
    }
    size_t l = jp_utf8_len((const unsigned char *)s + r, end - r);
    if (l == 0) {
      w += jp_utf8_put(o + w, 0xfffd);
      r++;
      continue;
    }
    memcpy(o + w, s + r, l);
    w += l;
    r += l;
  }
  o[w] = '\0';
  *dec = o;
  *declen = w;
  return KD_OK;
}

/* A number token's value as Velero's decoder of the result makes it: int64 when it is written
 * as an integer and fits, else float64; NULL (an error when printed) beyond float64. */
static json_t *jp_number_value(const char *t, size_t n) {
  char buf[512];
  if (n >= sizeof buf) {
    /* very long numbers: strtod needs a terminated copy */
    char *h = malloc(n + 1);
    if (!h) return NULL;
    memcpy(h, t, n);
    h[n] = '\0';
    errno = 0;
    double d = strtod(h, NULL);
    bool over = errno == ERANGE && isinf(d);
    free(h);
    return over ? NULL : json_real(d);
  }
  memcpy(buf, t, n);
  buf[n] = '\0';
  if (!memchr(t, '.', n) && !memchr(t, 'e', n) && !memchr(t, 'E', n)) {
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == 0) return json_integer(v);
  }
  errno = 0;
  double d = strtod(buf, NULL);
  if (errno == ERANGE && isinf(d)) return NULL;
  return json_real(d);
}

static kd_rc jp_parse_value(jp_parser *p, int depth, bool top, jp_node **out) {
  kd_rc rc = KD_OK;
  jp_node *n = NULL;
  *out = NULL;
  if (depth > JP_MAX_DEPTH) return kd_fail(KD_ERR_INVALID, "invalid JSON: nested deeper than %d levels", JP_MAX_DEPTH);
  jp_ws(p);
  if (p->i >= p->n) return jp_syntax(p, "unexpected end of input");
  char c = p->s[p->i];
  if (c == '{' || c == '[') {
    bool obj = c == '{';
    if (!(n = jp_new(obj ? JN_OBJ : JN_ARR))) return jp_nomem();
    p->i++;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
      p->i++;
      *out = n;
      return KD_OK;
    }
    for (;;) {
      char *key = NULL;
      size_t kl = 0;
      jp_node *kid = NULL;
      if (obj) {
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"') {
          rc = jp_syntax(p, "expected a member name");
          goto fail;
        }
        if ((rc = jp_string(p, &key, &kl)) != KD_OK) goto fail;
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') {
          free(key);
          rc = jp_syntax(p, "expected ':'");
          goto fail;
        }
        p->i++;
      }
      rc = jp_parse_value(p, depth + 1, false, &kid);
      if (rc == KD_OK) rc = obj ? jp_obj_set(n, key, kl, kid) : jp_arr_insert(n, n->n, kid);
      else jp_free(kid);
      free(key);
      if (rc != KD_OK) goto fail;
      jp_ws(p);
      if (p->i < p->n && p->s[p->i] == ',') {
        p->i++;
        continue;
      }
      if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
        p->i++;
        break;
      }
      rc = jp_syntax(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
      goto fail;
    }
    *out = n;
    return KD_OK;
  }
  size_t start = p->i;
  json_t *val = NULL;
  if (c == '"') {
    char *dec = NULL;
    size_t dl = 0;
    if ((rc = jp_string(p, &dec, &dl)) != KD_OK) return rc;
    val = json_stringn_nocheck(dec, dl);
    free(dec);
    if (!val) return jp_nomem();
  } else if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) {
    p->i += 4;
    if (top && !(*out = jp_new(JN_PNULL))) return jp_nomem();
    return KD_OK;
  } else if (p->n - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0) {
    p->i += 4;
    val = json_true();
  } else if (p->n - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0) {
    p->i += 5;
    val = json_false();
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    const char *s = p->s;
    size_t i = p->i;
    if (s[i] == '-') i++;
    if (i >= p->n || s[i] < '0' || s[i] > '9') return jp_syntax(p, "bad number");
    if (s[i] == '0') i++;
    else
      while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < p->n && s[i] == '.') {
      i++;
      if (i >= p->n || s[i] < '0' || s[i] > '9') return jp_syntax(p, "bad number");
      while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
      i++;
      if (i < p->n && (s[i] == '+' || s[i] == '-')) i++;
      if (i >= p->n || s[i] < '0' || s[i] > '9') return jp_syntax(p, "bad number");
      while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    p->i = i;
    val = jp_number_value(s + start, i - start); /* NULL: beyond float64, refused when printed */
  } else {
    return jp_syntax(p, "unexpected character");
  }
  return jp_scalar(p->s + start, p->i - start, val, out);
fail:
  jp_free(n);
  return rc;
}

/* Parse a whole text as Go's json.Unmarshal does (one value, whitespace around it). */
static kd_rc jp_parse(const char *text, size_t len, jp_node **out) {
  jp_parser p = {text, len, 0};
  *out = NULL;
  if (len > JP_MAX_TEXT) return kd_fail(KD_ERR_TOOBIG, "JSON patch text larger than %u MiB", JP_MAX_TEXT >> 20);
  kd_rc rc = jp_parse_value(&p, 0, true, out);
  if (rc != KD_OK) return rc;
  jp_ws(&p);
  if (p.i != p.n) {
    jp_free(*out);
    *out = NULL;
    return jp_syntax(&p, "data after the top-level value");
  }
  return KD_OK;
}

/* ---------------------------------------------------------------- operations */

enum { JS_ABSENT, JS_STR, JS_BAD };

typedef struct jp_str {
  int state; /* JS_ABSENT: missing or null; JS_BAD: not a string */
  const char *s;
  size_t n;
} jp_str;

typedef struct jp_op {
  bool present; /* false: the operation was null */
  jp_str op, path, from;
  bool has_value;
  const jp_node *value; /* template, with has_value: NULL never (a null is JN_PNULL) */
} jp_op;

static void jp_str_of(const jp_node *member, bool present, jp_str *out) {
  out->state = JS_ABSENT;
  if (!present || !member || member->kind == JN_PNULL) return;
  if (member->kind == JN_SCALAR && member->text[0] == '"' && json_is_string(member->val)) {
    out->state = JS_STR;
    out->s = json_string_value(member->val);
    out->n = json_string_length(member->val);
    return;
  }
  out->state = JS_BAD;
}

/* Operations out of a parsed patch (nodes stay owned by root). */
static kd_rc jp_ops(jp_ctx *c, const jp_node *root, jp_op **ops, size_t *nops) {
  *ops = NULL;
  *nops = 0;
  if (!root || root->kind == JN_PNULL) return KD_OK; /* null: no operations */
  if (root->kind != JN_ARR) return jp_err(c, JSONPATCH_DECODE, "a JSON patch must be an array of operations");
  jp_op *o = calloc(root->n ? root->n : 1, sizeof *o);
  if (!o) return jp_nomem();
  for (size_t i = 0; i < root->n; i++) {
    const jp_node *e = root->kid[i];
    if (!e) continue; /* a null operation: Kind() is "unknown" */
    if (e->kind != JN_OBJ) {
      free(o);
      return jp_err(c, JSONPATCH_DECODE, "JSON patch operation %zu is not an object", i);
    }
    o[i].present = true;
    static const char *names[] = {"op", "path", "from"};
    jp_str *dst[] = {&o[i].op, &o[i].path, &o[i].from};
    for (int k = 0; k < 3; k++) {
      long at = jp_find_key(e, names[k], strlen(names[k]));
      jp_str_of(at >= 0 ? e->kid[at] : NULL, at >= 0, dst[k]);
    }
    long at = jp_find_key(e, "value", 5);
    if (at >= 0) {
      o[i].has_value = true;
      o[i].value = e->kid[at];
    }
  }
  *ops = o;
  *nops = root->n;
  return KD_OK;
}

/* RFC 6901 token decoding, evanphx's way: "~1" → "/", "~0" → "~", left to right. */
static size_t jp_unescape(const char *s, size_t n, char *o) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
      o[w++] = s[i + 1] == '1' ? '/' : '~';
      i++;
    } else {
      o[w++] = s[i];
    }
  }
  return w;
}

/* Array index rules of evanphx's partialArray: get/set, add, remove. */
enum { JI_GET, JI_ADD, JI_REMOVE };

static kd_rc jp_index(jp_ctx *c, const jp_node *a, const char *key, size_t kl, int mode, size_t *at) {
  if (mode == JI_ADD && kl == 1 && key[0] == '-') {
    *at = a->n;
    return KD_OK;
  }
  long long idx;
  char show[80];
  jp_show(key, kl, show, sizeof show);
  if (!jp_atoi(key, kl, &idx)) return jp_err(c, JSONPATCH_FAILED, "'%s' is not an array index", show);
  long long len = (long long)a->n + (mode == JI_ADD ? 1 : 0);
  if (idx >= len) return jp_err(c, JSONPATCH_FAILED, "index %lld is out of range (array of %zu)", idx, a->n);
  if (idx < 0) {
    if (idx < -len) return jp_err(c, JSONPATCH_FAILED, "index %lld is out of range (array of %zu)", idx, a->n);
    idx += len;
  }
  *at = (size_t)idx;
  return KD_OK;
}

/* Walk to the container of the last token of path (evanphx's findObject). *con is NULL when the
 * path does not lead to a container; *key (caller frees) is the decoded last token. Walking into
 * a null the patch put there is a panic in evanphx: JSONPATCH_CRASH. */
static kd_rc jp_find(jp_ctx *c, jp_node *root, const jp_str *path, jp_node **con, char **key, size_t *kl, int *depth) {
  *con = NULL;
  *key = NULL;
  *depth = 0;
  const char *s = path->s, *end = s + path->n;
  const char *slash = memchr(s, '/', path->n);
  if (!slash) return KD_OK; /* fewer than two parts */
  char *tok = malloc(path->n + 1);
  if (!tok) return jp_nomem();
  jp_node *cur = root;
  const char *p = slash + 1;
  for (;;) {
    const char *q = memchr(p, '/', (size_t)(end - p));
    size_t tl = jp_unescape(p, (size_t)((q ? q : end) - p), tok);
    if (!q) { /* the last token: the key */
      tok[tl] = '\0';
      *con = cur;
      *key = tok;
      *kl = tl;
      return KD_OK;
    }
    if (cur->kind == JN_RNULL) {
      free(tok);
      return jp_err(c, JSONPATCH_CRASH, "cannot walk into a null this patch copied (evanphx/json-patch would crash)");
    }
    jp_node *next = NULL;
    bool found = false;
    if (cur->kind == JN_OBJ) {
      long at = jp_find_key(cur, tok, tl);
      if (at >= 0) next = cur->kid[at], found = true;
    } else {
      long long idx;
      if (jp_atoi(tok, tl, &idx)) {
        long long len = (long long)cur->n;
        if (idx < 0 && idx >= -len) idx += len;
        if (idx >= 0 && idx < len) next = cur->kid[idx], found = true;
      }
    }
    if (!found || !next || next->kind == JN_SCALAR) { /* missing, a document null, or not a container */
      free(tok);
      return KD_OK;
    }
    if (next->kind == JN_PNULL) {
      free(tok);
      return jp_err(c, JSONPATCH_CRASH, "cannot walk into a null this patch added (evanphx/json-patch would crash)");
    }
    cur = next;
    (*depth)++;
    p = q + 1;
  }
}

/* A member or item of a container: *at its position, *found false for a missing object member;
 * bad array indexes fail (as evanphx's get). */
static kd_rc jp_get(jp_ctx *c, jp_node *con, const char *key, size_t kl, size_t *at, bool *found) {
  *found = false;
  if (con->kind == JN_RNULL) return jp_err(c, JSONPATCH_CRASH, "a null this patch copied is not a container (evanphx/json-patch would crash)");
  if (con->kind == JN_OBJ) {
    long i = jp_find_key(con, key, kl);
    if (i >= 0) *at = (size_t)i, *found = true;
    return KD_OK;
  }
  kd_rc rc = jp_index(c, con, key, kl, JI_GET, at);
  if (rc == KD_OK) *found = true;
  return rc;
}

/* Add v (owned; freed on failure) at key of con. */
static kd_rc jp_add_to(jp_ctx *c, jp_node *con, const char *key, size_t kl, jp_node *v, int depth) {
  kd_rc rc = KD_OK;
  if (con->kind == JN_RNULL) {
    jp_free(v);
    return jp_err(c, JSONPATCH_CRASH, "a null this patch copied is not a container (evanphx/json-patch would crash)");
  }
  if ((rc = jp_account(c, v, depth + 1)) != KD_OK) {
    jp_free(v);
    return rc;
  }
  if (con->kind == JN_OBJ) {
    long old = jp_find_key(con, key, kl);
    if (old >= 0) jp_unaccount(c, con->kid[old]);
    return jp_obj_set(con, key, kl, v);
  }
  size_t at;
  if ((rc = jp_index(c, con, key, kl, JI_ADD, &at)) != KD_OK) {
    jp_free(v);
    return rc;
  }
  return jp_arr_insert(con, at, v);
}

enum { JE_EQ, JE_NE, JE_CRASH };

/* evanphx's lazyNode.equal: n from the document, o from the operation's value. */
static int jp_equal(const jp_node *n, const jp_node *o) {
  if (!n) return JE_CRASH;
  if (n->kind == JN_SCALAR || n->kind == JN_PNULL) {
    if (!o) return JE_CRASH;
    if (o->kind == JN_OBJ || o->kind == JN_ARR) return JE_NE;
    if (n->kind == JN_PNULL || o->kind == JN_PNULL) return n->kind == o->kind ? JE_EQ : JE_NE;
    if (o->kind == JN_RNULL) return JE_NE;
    return n->tlen == o->tlen && memcmp(n->text, o->text, n->tlen) == 0 ? JE_EQ : JE_NE;
  }
  if (!o) return JE_CRASH;
  if (n->kind == JN_RNULL) return o->kind == JN_OBJ ? JE_CRASH : JE_NE;
  if (n->kind != o->kind) return JE_NE;
  if (n->n != o->n) return JE_NE;
  for (size_t i = 0; i < n->n; i++) {
    const jp_node *v = n->kid[i], *ov;
    if (n->kind == JN_OBJ) {
      long at = jp_find_key(o, n->keys[i], n->klen[i]);
      if (at < 0) return JE_NE;
      ov = o->kid[at];
      if ((v == NULL) != (ov == NULL)) return JE_NE;
      if (!v) continue;
    } else {
      ov = o->kid[i];
    }
    int r = jp_equal(v, ov);
    if (r != JE_EQ) return r;
  }
  return JE_EQ;
}

static const char *jp_kind_name(const jp_op *op) {
  if (!op->present || op->op.state != JS_STR) return NULL;
  static const char *kinds[] = {"add", "remove", "replace", "move", "copy", "test"};
  for (size_t i = 0; i < KD_ARRAY_LEN(kinds); i++)
    if (op->op.n == strlen(kinds[i]) && memcmp(op->op.s, kinds[i], op->op.n) == 0) return kinds[i];
  return NULL;
}

/* The path or from member: JSONPATCH_MISSING when absent; when it is not a string, bad_why. */
static kd_rc jp_need(jp_ctx *c, const jp_str *s, const char *what, jsonpatch_err bad_why) {
  if (s->state == JS_STR) return KD_OK;
  if (s->state == JS_ABSENT) return jp_err(c, JSONPATCH_MISSING, "the operation has no \"%s\"", what);
  return jp_err(c, bad_why, "\"%s\" is not a string", what);
}

static kd_rc jp_missing_path(jp_ctx *c, const jp_str *s) {
  char show[200];
  jp_show(s->s, s->n, show, sizeof show);
  return jp_err(c, JSONPATCH_MISSING, "the document is missing the path \"%s\"", show);
}

/* One operation on the document whose root container is root. */
static kd_rc jp_step(jp_ctx *c, jp_node *root, const jp_op *op) {
  kd_rc rc = KD_OK;
  jp_node *con = NULL, *val = NULL;
  char *key = NULL;
  size_t kl = 0, at = 0;
  int depth = 0;
  bool found = false;
  const char *kind = jp_kind_name(op);
  if (!kind) {
    char show[80] = "unknown";
    if (op->present && op->op.state == JS_STR) jp_show(op->op.s, op->op.n, show, sizeof show);
    return jp_err(c, JSONPATCH_FAILED, "unexpected operation \"%s\"", show);
  }
  if (!strcmp(kind, "add")) {
    if ((rc = jp_need(c, &op->path, "path", JSONPATCH_MISSING)) != KD_OK) goto fail;
    if ((rc = jp_find(c, root, &op->path, &con, &key, &kl, &depth)) != KD_OK) goto fail;
    if (!con) {
      rc = jp_missing_path(c, &op->path);
      goto fail;
    }
    if (op->has_value && (rc = jp_clone(op->value, &val)) != KD_OK) goto fail;
    rc = jp_add_to(c, con, key, kl, val, depth);
    val = NULL;
    goto fail;
  }
  if (!strcmp(kind, "remove")) {
    if ((rc = jp_need(c, &op->path, "path", JSONPATCH_MISSING)) != KD_OK) goto fail;
    if ((rc = jp_find(c, root, &op->path, &con, &key, &kl, &depth)) != KD_OK) goto fail;
    if (!con) {
      rc = jp_missing_path(c, &op->path);
      goto fail;
    }
    if (con->kind == JN_RNULL) {
      rc = jp_err(c, JSONPATCH_CRASH, "a null this patch copied is not a container (evanphx/json-patch would crash)");
      goto fail;
    }
    if (con->kind == JN_OBJ) {
      long i = jp_find_key(con, key, kl);
      if (i < 0) {
        rc = jp_missing_path(c, &op->path);
        goto fail;
      }
      at = (size_t)i;
    } else if ((rc = jp_index(c, con, key, kl, JI_REMOVE, &at)) != KD_OK) {
      goto fail;
    }
    val = jp_detach(con, at);
    jp_unaccount(c, val);
    goto fail;
  }
  if (!strcmp(kind, "replace")) {
    if ((rc = jp_need(c, &op->path, "path", JSONPATCH_FAILED)) != KD_OK) goto fail;
    if ((rc = jp_find(c, root, &op->path, &con, &key, &kl, &depth)) != KD_OK) goto fail;
    if (!con) {
      rc = jp_missing_path(c, &op->path);
      goto fail;
    }
    if ((rc = jp_get(c, con, key, kl, &at, &found)) != KD_OK || !found) {
      if (c->why != JSONPATCH_CRASH) rc = jp_missing_path(c, &op->path);
      goto fail;
    }
    if (op->has_value && (rc = jp_clone(op->value, &val)) != KD_OK) goto fail;
    if ((rc = jp_account(c, val, depth + 1)) != KD_OK) goto fail;
    jp_unaccount(c, con->kid[at]);
    jp_free(con->kid[at]);
    con->kid[at] = val;
    val = NULL;
    goto fail;
  }
  if (!strcmp(kind, "test")) {
    if ((rc = jp_need(c, &op->path, "path", JSONPATCH_FAILED)) != KD_OK) goto fail;
    if ((rc = jp_find(c, root, &op->path, &con, &key, &kl, &depth)) != KD_OK) goto fail;
    if (!con) {
      rc = jp_missing_path(c, &op->path);
      goto fail;
    }
    if ((rc = jp_get(c, con, key, kl, &at, &found)) != KD_OK) goto fail;
    const jp_node *cur = found ? con->kid[at] : NULL;
    char show[200];
    jp_show(op->path.s, op->path.n, show, sizeof show);
    if (!cur) { /* a document null or a missing member */
      if (!op->has_value) rc = jp_err(c, JSONPATCH_CRASH, "test of a null without a value (evanphx/json-patch would crash)");
      else if (op->value->kind != JN_PNULL) rc = jp_err(c, JSONPATCH_TEST_FAILED, "testing value %s failed", show);
      goto fail;
    }
    if (!op->has_value) {
      rc = jp_err(c, JSONPATCH_TEST_FAILED, "testing value %s failed", show);
      goto fail;
    }
    int r = jp_equal(cur, op->value);
    if (r == JE_NE) rc = jp_err(c, JSONPATCH_TEST_FAILED, "testing value %s failed", show);
    if (r == JE_CRASH) rc = jp_err(c, JSONPATCH_CRASH, "comparing %s meets a null where evanphx/json-patch would crash", show);
    goto fail;
  }
  /* move and copy: the source first */
  bool move = !strcmp(kind, "move");
  if ((rc = jp_need(c, &op->from, "from", JSONPATCH_FAILED)) != KD_OK) goto fail;
  if ((rc = jp_find(c, root, &op->from, &con, &key, &kl, &depth)) != KD_OK) goto fail;
  if (!con) {
    rc = jp_missing_path(c, &op->from);
    goto fail;
  }
  if ((rc = jp_get(c, con, key, kl, &at, &found)) != KD_OK) goto fail;
  if (!found) {
    rc = jp_missing_path(c, &op->from);
    goto fail;
  }
  if (move) {
    val = jp_detach(con, at);
    jp_unaccount(c, val);
  } else if ((rc = jp_gocopy(con->kid[at], true, &val)) != KD_OK) {
    goto fail;
  }
  free(key);
  key = NULL;
  if ((rc = jp_need(c, &op->path, "path", move ? JSONPATCH_FAILED : JSONPATCH_MISSING)) != KD_OK) goto fail;
  if ((rc = jp_find(c, root, &op->path, &con, &key, &kl, &depth)) != KD_OK) goto fail;
  if (!con) {
    rc = jp_missing_path(c, &op->path);
    goto fail;
  }
  rc = jp_add_to(c, con, key, kl, val, depth);
  val = NULL;
fail:
  jp_free(val);
  free(key);
  return rc;
}

/* Apply decoded operations to the document tree root (a container); the tree is changed. */
static kd_rc jp_run(jp_ctx *c, jp_node *root, const jp_op *ops, size_t nops) {
  kd_rc rc = jp_account(c, root, 0);
  for (size_t i = 0; rc == KD_OK && i < nops; i++) {
    rc = jp_step(c, root, &ops[i]);
    if (rc != KD_OK) {
      char show[200] = "";
      if (ops[i].present && ops[i].path.state == JS_STR) jp_show(ops[i].path.s, ops[i].path.n, show, sizeof show);
      const char *k = jp_kind_name(&ops[i]);
      kd_fail_wrap(rc, "JSON patch operation %zu (%s \"%s\")", i, k ? k : "?", show);
      if (rc == KD_ERR_TOOBIG) c->why = JSONPATCH_FAILED;
    }
  }
  return rc;
}

/* Apply a parsed patch (root of the operations) to doc. */
static kd_rc jp_apply_parsed(json_t *doc, const jp_node *patch, json_t **out, jsonpatch_err *why) {
  kd_rc rc = KD_OK;
  jp_ctx c = {JSONPATCH_OK, 0, 0};
  jp_node *root = NULL;
  jp_op *ops = NULL;
  size_t nops = 0;
  *out = NULL;
  if ((rc = jp_ops(&c, patch, &ops, &nops)) != KD_OK) goto fail; /* Velero decodes the patch first */
  if (!doc || !(json_is_object(doc) || json_is_array(doc))) {
    rc = jp_err(&c, JSONPATCH_FAILED, "the document to patch is not a JSON object or array");
    goto fail;
  }
  if ((rc = jp_from_json(doc, false, 0, &root)) != KD_OK) goto fail;
  if ((rc = jp_run(&c, root, ops, nops)) != KD_OK) goto fail;
  if ((rc = jp_to_json(root, out)) != KD_OK) c.why = JSONPATCH_FAILED;
fail:
  if (rc != KD_OK && c.why == JSONPATCH_OK) c.why = JSONPATCH_FAILED;
  if (why) *why = rc == KD_OK ? JSONPATCH_OK : c.why;
  if (rc != KD_OK && rc != KD_ERR_NOMEM && rc != KD_ERR_TOOBIG) rc = KD_ERR_INVALID;
  free(ops);
  jp_free(root);
  return rc;
}

/* An operation's "value": null is the patch's null (a value to write), not a missing one. */
static kd_rc jp_mark_value_nulls(jp_node *p) {
  for (size_t i = 0; p && p->kind == JN_ARR && i < p->n; i++) {
    jp_node *e = p->kid[i];
    if (!e || e->kind != JN_OBJ) continue;
    long at = jp_find_key(e, "value", 5);
    if (at >= 0 && !e->kid[at] && !(e->kid[at] = jp_new(JN_PNULL))) return jp_nomem();
  }
  return KD_OK;
}

kd_rc jsonpatch_apply(json_t *doc, json_t *patch, json_t **out) {
  jp_node *p = NULL;
  kd_rc rc = KD_OK;
  *out = NULL;
  if (patch && !json_is_null(patch) && !json_is_array(patch))
    return kd_fail(KD_ERR_INVALID, "a JSON patch must be an array of operations");
  if (patch && (rc = jp_from_json(patch, true, 0, &p)) != KD_OK) return rc;
  if ((rc = jp_mark_value_nulls(p)) != KD_OK) {
    jp_free(p);
    return rc;
  }
  rc = jp_apply_parsed(doc, p, out, NULL);
  jp_free(p);
  return rc;
}

kd_rc jsonpatch_apply_text(json_t *doc, const char *text, size_t len, json_t **out, jsonpatch_err *why) {
  jp_node *p = NULL;
  *out = NULL;
  kd_rc rc = jp_parse(text, len, &p);
  if (rc != KD_OK) {
    if (why) *why = JSONPATCH_DECODE;
    return rc == KD_ERR_NOMEM ? rc : KD_ERR_INVALID;
  }
  if ((rc = jp_mark_value_nulls(p)) != KD_OK) {
    jp_free(p);
    return rc;
  }
  rc = jp_apply_parsed(doc, p, out, why);
  jp_free(p);
  return rc;
}

/* ---------------------------------------------------------------- merge patch */

/* A deep copy of v without nulls in objects and arrays (evanphx's pruneNulls). */
static json_t *jp_prune(json_t *v, int depth) {
  if (depth > JP_MAX_DEPTH) return NULL;
  if (json_is_object(v)) {
    json_t *r = json_object();
    const char *k;
    size_t kl;
    json_t *m;
    if (!r) return NULL;
    json_object_keylen_foreach(v, k, kl, m) {
      if (json_is_null(m)) continue;
      json_t *c = jp_prune(m, depth + 1);
      if (!c || json_object_setn_new_nocheck(r, k, kl, c)) {
        json_decref(r);
        return NULL;
      }
    }
    return r;
  }
  if (json_is_array(v)) {
    json_t *r = json_array();
    if (!r) return NULL;
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *m = json_array_get(v, i);
      if (json_is_null(m)) continue;
      json_t *c = jp_prune(m, depth + 1);
      if (!c || json_array_append_new(r, c)) {
        json_decref(r);
        return NULL;
      }
    }
    return r;
  }
  return json_deep_copy(v);
}

static kd_rc jp_merge_docs(json_t *doc, json_t *patch, int depth);

/* evanphx's merge(cur, patch): a new reference to the merged value (cur is consumed). */
static kd_rc jp_merge_value(json_t *cur, json_t *patch, int depth, json_t **out) {
  *out = NULL;
  if (!json_is_object(cur)) {
    json_decref(cur);
    return (*out = jp_prune(patch, depth)) ? KD_OK : jp_nomem();
  }
  if (!json_is_object(patch)) {
    json_decref(cur);
    return (*out = json_deep_copy(patch)) ? KD_OK : jp_nomem();
  }
  kd_rc rc = jp_merge_docs(cur, patch, depth);
  if (rc != KD_OK) {
    json_decref(cur);
    return rc;
  }
  *out = cur;
  return KD_OK;
}

static kd_rc jp_merge_docs(json_t *doc, json_t *patch, int depth) {
  const char *k;
  size_t kl;
  json_t *v;
  if (depth > JP_MAX_DEPTH) return kd_fail(KD_ERR_TOOBIG, "merge patch nested deeper than %d levels", JP_MAX_DEPTH);
  json_object_keylen_foreach(patch, k, kl, v) {
    if (json_is_null(v)) {
      json_object_deln(doc, k, kl);
      continue;
    }
    json_t *cur = json_object_getn(doc, k, kl), *nv = NULL;
    kd_rc rc;
    if (!cur || json_is_null(cur)) rc = (nv = jp_prune(v, depth + 1)) ? KD_OK : jp_nomem();
    else rc = jp_merge_value(json_incref(cur), v, depth + 1, &nv);
    if (rc != KD_OK) return rc;
    if (json_object_setn_new_nocheck(doc, k, kl, nv)) return jp_nomem();
  }
  return KD_OK;
}

kd_rc jsonpatch_merge(json_t *doc, json_t *patch, json_t **out) {
  *out = NULL;
  if (!doc || json_is_null(doc)) return kd_fail(KD_ERR_INVALID, "merge patch: Invalid JSON Document (null)");
  if (!patch || json_is_null(patch)) return kd_fail(KD_ERR_INVALID, "merge patch: Invalid JSON Patch (null)");
  if (json_is_object(doc) && json_is_object(patch)) {
    json_t *d = json_deep_copy(doc);
    if (!d) return jp_nomem();
    kd_rc rc = jp_merge_docs(d, patch, 0);
    if (rc != KD_OK) {
      json_decref(d);
      return rc;
    }
    *out = d;
    return KD_OK;
  }
  if (json_is_object(patch) || json_is_array(patch)) return (*out = jp_prune(patch, 0)) ? KD_OK : jp_nomem();
  return kd_fail(KD_ERR_INVALID, "merge patch: Invalid JSON Patch (a %s is neither an object nor an array)",
                 json_is_string(patch) ? "string" : json_is_number(patch) ? "number" : "boolean");
}

/* ---------------------------------------------------------------- create merge patch */

/* Go's type classes after decoding into interface{}: numbers are all float64. */
static int jp_gotype(json_t *v) {
  switch (json_typeof(v)) {
  case JSON_INTEGER:
  case JSON_REAL: return JSON_REAL;
  case JSON_TRUE:
  case JSON_FALSE: return JSON_TRUE;
  default: return (int)json_typeof(v);
  }
}

static double jp_num(json_t *v) { return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v); }

static bool jp_matches(json_t *a, json_t *b, int depth) {
  if (depth > JP_MAX_DEPTH || jp_gotype(a) != jp_gotype(b)) return false;
  switch (jp_gotype(a)) {
  case JSON_STRING:
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
  case JSON_REAL: return jp_num(a) == jp_num(b);
  case JSON_TRUE: return json_typeof(a) == json_typeof(b);
  case JSON_NULL: return true;
  case JSON_OBJECT: {
    if (json_object_size(a) != json_object_size(b)) return false;
    const char *k;
    size_t kl;
    json_t *bv;
    json_object_keylen_foreach(b, k, kl, bv) {
      json_t *av = json_object_getn(a, k, kl);
      if (!av || !jp_matches(av, bv, depth + 1)) return false;
    }
    return true;
  }
  case JSON_ARRAY:
    if (json_array_size(a) != json_array_size(b)) return false;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!jp_matches(json_array_get(a, i), json_array_get(b, i), depth + 1)) return false;
    return true;
  }
  return false;
}

/* A copy of v with every number as Go's float64 prints it, read back: integers beyond 2^53
 * rounded, integral reals as integers. */
static json_t *jp_as_go(json_t *v, int depth) {
  if (depth > JP_MAX_DEPTH) return NULL;
  if (json_is_number(v)) {
    char buf[64];
    double d = jp_num(v);
    jp_json_float(d, buf, sizeof buf);
    if (!strpbrk(buf, ".eE")) {
      errno = 0;
      long long i = strtoll(buf, NULL, 10);
      if (errno == 0) return json_integer(i);
    }
    return json_real(d);
  }
  if (json_is_object(v)) {
    json_t *r = json_object();
    const char *k;
    size_t kl;
    json_t *m;
    if (!r) return NULL;
    json_object_keylen_foreach(v, k, kl, m) {
      json_t *c = jp_as_go(m, depth + 1);
      if (!c || json_object_setn_new_nocheck(r, k, kl, c)) {
        json_decref(r);
        return NULL;
      }
    }
    return r;
  }
  if (json_is_array(v)) {
    json_t *r = json_array();
    if (!r) return NULL;
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *c = jp_as_go(json_array_get(v, i), depth + 1);
      if (!c || json_array_append_new(r, c)) {
        json_decref(r);
        return NULL;
      }
    }
    return r;
  }
  return json_copy(v);
}

/* evanphx's getDiff(a, b) into the new object *out. a and b are objects or NULL (Go's nil map). */
static kd_rc jp_diff(json_t *a, json_t *b, int depth, json_t **out) {
  json_t *into = json_object();
  const char *k;
  size_t kl;
  json_t *bv, *av;
  kd_rc rc = KD_OK;
  *out = NULL;
  if (!into) return jp_nomem();
  if (depth > JP_MAX_DEPTH) {
    rc = kd_fail(KD_ERR_TOOBIG, "create merge patch: nested deeper than %d levels", JP_MAX_DEPTH);
    goto fail;
  }
  if (b) json_object_keylen_foreach(b, k, kl, bv) {
    av = a ? json_object_getn(a, k, kl) : NULL;
    json_t *put = NULL;
    if (!av || jp_gotype(av) != jp_gotype(bv)) {
      put = jp_as_go(bv, depth + 1);
      if (!put) rc = jp_nomem();
    } else if (json_is_object(av)) {
      rc = jp_diff(av, bv, depth + 1, &put);
      if (rc == KD_OK && json_object_size(put) == 0) json_decref(put), put = NULL;
    } else if (!json_is_null(av) && !jp_matches(av, bv, depth + 1)) {
      put = jp_as_go(bv, depth + 1);
      if (!put) rc = jp_nomem();
    }
    if (rc != KD_OK) goto fail;
    if (put && json_object_setn_new_nocheck(into, k, kl, put)) {
      rc = jp_nomem();
      goto fail;
    }
  }
  if (a) json_object_keylen_foreach(a, k, kl, av) {
    if (b && json_object_getn(b, k, kl)) continue;
    if (json_object_setn_new_nocheck(into, k, kl, json_null())) {
      rc = jp_nomem();
      goto fail;
    }
  }
  *out = into;
  return KD_OK;
fail:
  json_decref(into);
  return rc;
}

static kd_rc jp_object_patch(json_t *a, json_t *b, json_t **out) {
  if (!(json_is_object(a) || json_is_null(a)) || !(json_is_object(b) || json_is_null(b)))
    return kd_fail(KD_ERR_INVALID, "create merge patch: Invalid JSON Document (not an object)");
  return jp_diff(json_is_null(a) ? NULL : a, json_is_null(b) ? NULL : b, 0, out);
}

kd_rc jsonpatch_create_merge(json_t *original, json_t *modified, json_t **out) {
  *out = NULL;
  if (!original || !modified) return kd_fail(KD_ERR_INVALID, "create merge patch: no document");
  bool oa = json_is_array(original), ma = json_is_array(modified);
  if (oa != ma) return kd_fail(KD_ERR_INVALID, "create merge patch: Mismatched JSON Documents (an array and a non-array)");
  if (!oa) return jp_object_patch(original, modified, out);
  size_t n = json_array_size(original);
  if (json_array_size(modified) != n)
    return kd_fail(KD_ERR_INVALID, "create merge patch: Invalid JSON Document (arrays of %zu and %zu documents)", n,
                   json_array_size(modified));
  json_t *r = json_array();
  if (!r) return jp_nomem();
  for (size_t i = 0; i < n; i++) {
    json_t *p = NULL;
    kd_rc rc = jp_object_patch(json_array_get(original, i), json_array_get(modified, i), &p);
    if (rc == KD_OK && json_array_append_new(r, p)) rc = jp_nomem();
    if (rc != KD_OK) {
      json_decref(r);
      return kd_fail_wrap(rc, "document %zu", i);
    }
  }
  *out = r;
  return KD_OK;
}
