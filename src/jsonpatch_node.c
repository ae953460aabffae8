/* jsonpatch_node.c — the document model of JSON patching (jp_node, see jsonpatch_int.h): nodes,
 * the caps, conversion from and to jansson, evanphx's copies, and Go's JSON reader of patch
 * texts. */
#include "jsonpatch_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- nodes */

/* See jsonpatch_int.h. */
jp_node *jp_new(int kind) {
  jp_node *n = calloc(1, sizeof *n);
  if (n) n->kind = kind;
  return n;
}

/* See jsonpatch_int.h. */
void jp_free(jp_node *n) {
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

/* See jsonpatch_int.h. */
long jp_find_key(const jp_node *o, const char *k, size_t kl) {
  for (size_t i = 0; i < o->n; i++)
    if (o->klen[i] == kl && memcmp(o->keys[i], k, kl) == 0) return (long)i;
  return -1;
}

/* Set member k of object o to v (owned): replaced in place when present (the old value freed),
 * appended otherwise. On failure v is freed. */
kd_rc jp_obj_set(jp_node *o, const char *k, size_t kl, jp_node *v) {
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
kd_rc jp_arr_insert(jp_node *a, size_t at, jp_node *v) {
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
jp_node *jp_detach(jp_node *c, size_t i) {
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
kd_rc jp_account(jp_ctx *c, const jp_node *n, int depth) {
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
void jp_unaccount(jp_ctx *c, const jp_node *n) {
  if (!n) return;
  c->nodes = c->nodes > 0 ? c->nodes - 1 : 0;
  c->bytes = c->bytes > n->tlen + 16 ? c->bytes - (n->tlen + 16) : 0;
  for (size_t i = 0; i < n->n; i++) jp_unaccount(c, n->kid[i]);
}

/* A jansson value as evanphx would hold it after Go printed it: scalars with Go's text. top:
 * a null at the top is a patch's null (JN_PNULL), elsewhere a document null (NULL). */
kd_rc jp_from_json(json_t *v, bool top, int depth, jp_node **out) {
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
kd_rc jp_clone(const jp_node *s, jp_node **out) {
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
kd_rc jp_gocopy(const jp_node *s, bool top, jp_node **out) {
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
kd_rc jp_to_json(const jp_node *n, json_t **out) {
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
kd_rc jp_parse(const char *text, size_t len, jp_node **out) {
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

