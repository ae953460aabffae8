/* jsonscan.c — incremental scanner over a Kubernetes List response: one pass over the bytes with
 * a small state machine, handing out the raw bytes of each element of the top-level "items"
 * array. An item is copied only when it spans chunks; otherwise the callback sees the caller's
 * own bytes. Strings (the bulk of every object) go through a table-driven inner loop. */
#include "jsonscan.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define JS_MAX_META (1u << 20) /* the List's own metadata: continue token, resourceVersion */
#define JS_MAX_KEY 64          /* longer top-level keys are neither "items" nor "metadata" */

enum { JS_OBJ = 1, JS_ARR = 2 };
enum { KEY_OTHER = 0, KEY_ITEMS, KEY_META };
enum { CAP_NONE = 0, CAP_ITEM, CAP_META };

enum js_state {
  JS_START,        /* before the top-level '{' */
  JS_VALUE,        /* a value must come (after ':' or ',' in an array) */
  JS_VALUE_OR_END, /* after '[' */
  JS_KEY_OR_END,   /* after '{' */
  JS_KEY,          /* after ',' in an object */
  JS_COLON,        /* after a key */
  JS_AFTER,        /* after a value: ',' or a closing bracket */
  JS_STR,          /* inside a string */
  JS_ESC,          /* after a backslash */
  JS_HEX,          /* inside \uXXXX; tok = hex digits still due */
  JS_LIT,          /* inside true/false/null; lit + tok = next expected byte */
  JS_NUM,          /* inside a number; tok = NUM_* */
  JS_DONE,         /* after the top-level '}': whitespace only */
};

/* number states; the ones marked (end) may end the number */
enum { NUM_MINUS, NUM_ZERO /* (end) */, NUM_INT /* (end) */, NUM_DOT, NUM_FRAC /* (end) */, NUM_E, NUM_ESIGN,
       NUM_EXP /* (end) */ };

/* bytes that stop the fast string loop: '"', '\\' and the control characters JSON forbids raw */
static const unsigned char js_str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

static const unsigned char js_hex[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1,
};

static const unsigned char js_esc[256] = {
    ['"'] = 1, ['\\'] = 1, ['/'] = 1, ['b'] = 1, ['f'] = 1, ['n'] = 1, ['r'] = 1, ['t'] = 1, ['u'] = 1,
};

void jscan_init(struct jscan *s, size_t max_item, jscan_item_fn fn, void *ud) {
  memset(s, 0, sizeof *s);
  s->max_item = max_item ? max_item : JSCAN_MAX_ITEM;
  kd_buf_init(&s->item, s->max_item);
  kd_buf_init(&s->meta, JS_MAX_META);
  kd_buf_init(&s->key, JS_MAX_KEY);
  s->fn = fn;
  s->ud = ud;
  s->state = JS_START;
}

static kd_rc js_err(struct jscan *s, size_t i, const char *what) {
  s->rc = kd_fail(KD_ERR_PARSE, "malformed list response: %s at byte %llu", what, s->offset + i);
  return s->rc;
}

static kd_rc js_toobig(struct jscan *s, size_t i) {
  s->rc = kd_fail(KD_ERR_TOOBIG, "list item %zu is larger than %zu bytes (at byte %llu)", s->items + 1, s->max_item,
                  s->offset + i);
  return s->rc;
}

/* Append p[from..to) of the current chunk to the capture buffer; i is for messages. */
static kd_rc js_cap_add(struct jscan *s, const unsigned char *p, size_t from, size_t to) {
  kd_buf *b = s->capture == CAP_ITEM ? &s->item : &s->meta;
  size_t n = to - from;
  if (n > b->max || b->len > b->max - n) {
    if (s->capture == CAP_ITEM) return js_toobig(s, to);
    s->rc = kd_fail(KD_ERR_TOOBIG, "list metadata is larger than %u bytes", JS_MAX_META);
    return s->rc;
  }
  kd_rc rc = kd_buf_add(b, p + from, n);
  if (rc != KD_OK) s->rc = rc;
  return rc;
}

/* The captured value ended just before p[e]; cstart is where it began in this chunk (0 when it
 * began in an earlier one, whose bytes are already in the buffer). */
static kd_rc js_cap_end(struct jscan *s, const unsigned char *p, size_t cstart, size_t e) {
  const char *data;
  size_t len;
  kd_rc rc;
  if (s->capture == CAP_META || s->item.len) { /* metadata, or an item spanning chunks: copy */
    if (js_cap_add(s, p, cstart, e) != KD_OK) return s->rc;
    if (s->capture == CAP_META) {
      s->capture = CAP_NONE;
      return KD_OK;
    }
    data = s->item.data;
    len = s->item.len;
  } else {
    data = (const char *)p + cstart;
    len = e - cstart;
    if (len > s->max_item) return js_toobig(s, e);
  }
  s->capture = CAP_NONE;
  s->items++;
  rc = s->fn ? s->fn(data, len, s->ud) : KD_OK;
  kd_buf_reset(&s->item);
  if (rc != KD_OK) s->rc = rc;
  return rc;
}

/* Decide what a finished top-level key means. */
static kd_rc js_classify_key(struct jscan *s) {
  s->top_key = KEY_OTHER;
  if (s->key_long) return KD_OK;
  const char *k = s->key.data ? s->key.data : "";
  size_t n = s->key.len;
  if (!memchr(k, '\\', n)) {
    if (n == 5 && !memcmp(k, "items", 5)) s->top_key = KEY_ITEMS;
    if (n == 8 && !memcmp(k, "metadata", 8)) s->top_key = KEY_META;
    return KD_OK;
  }
  /* escaped spelling ("\u0069tems"): let jansson decode it */
  char q[2 * JS_MAX_KEY + 3];
  q[0] = '"';
  memcpy(q + 1, k, n);
  q[n + 1] = '"';
  json_error_t jerr;
  json_t *v = json_loadb(q, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (v && json_is_string(v)) {
    const char *d = json_string_value(v);
    size_t dl = json_string_length(v);
    if (dl == 5 && !memcmp(d, "items", 5)) s->top_key = KEY_ITEMS;
    if (dl == 8 && !memcmp(d, "metadata", 8)) s->top_key = KEY_META;
  }
  json_decref(v);
  return KD_OK;
}

kd_rc jscan_feed(struct jscan *s, const char *buf, size_t n) {
  if (s->rc != KD_OK) return s->rc;
  const unsigned char *p = (const unsigned char *)buf;
  size_t i = 0, cstart = 0, kstart = 0; /* capture and key starts in this chunk */
  int state = s->state;
  unsigned c;

  while (i < n) {
    switch (state) {
    case JS_STR: {
      size_t j = i;
      while (j < n && !js_str_stop[p[j]]) j++;
      if (j == n) {
        i = n;
        continue;
      }
      c = p[j];
      if (c == '"') {
        i = j + 1;
        if (s->str_key) {
          s->str_key = 0;
          state = JS_COLON;
          if (s->key_on) {
            s->key_on = 0;
            if (!s->key_long && (j - kstart > s->key.max - s->key.len)) s->key_long = 1;
            if (!s->key_long && kd_buf_add(&s->key, p + kstart, j - kstart) != KD_OK) return s->rc = KD_ERR_NOMEM;
            js_classify_key(s);
          }
        } else {
          state = JS_AFTER;
          if (s->capture && s->depth == s->cap_depth && js_cap_end(s, p, cstart, i) != KD_OK) return s->rc;
        }
      } else if (c == '\\') {
        i = j + 1;
        state = JS_ESC;
      } else {
        s->state = state;
        return js_err(s, j, "control character in a string");
      }
      continue;
    }
    case JS_ESC:
      c = p[i];
      if (!js_esc[c]) return js_err(s, i, "bad escape in a string");
      i++;
      if (c == 'u') {
        state = JS_HEX;
        s->tok = 4;
      } else {
        state = JS_STR;
      }
      continue;
    case JS_HEX:
      if (!js_hex[p[i]]) return js_err(s, i, "bad \\u escape in a string");
      i++;
      if (--s->tok == 0) state = JS_STR;
      continue;
    case JS_NUM: {
      c = p[i];
      int t = s->tok, digit = c >= '0' && c <= '9';
      switch (t) {
      case NUM_MINUS:
        if (!digit) return js_err(s, i, "bad number");
        t = c == '0' ? NUM_ZERO : NUM_INT;
        break;
      case NUM_ZERO:
      case NUM_INT:
        if (digit && t == NUM_ZERO) return js_err(s, i, "number with a leading zero");
        if (digit) break;
        if (c == '.') t = NUM_DOT;
        else if (c == 'e' || c == 'E') t = NUM_E;
        else t = -1;
        break;
      case NUM_DOT:
        if (!digit) return js_err(s, i, "bad number");
        t = NUM_FRAC;
        break;
      case NUM_FRAC:
        if (digit) break;
        t = (c == 'e' || c == 'E') ? NUM_E : -1;
        break;
      case NUM_E:
        if (c == '+' || c == '-') t = NUM_ESIGN;
        else if (digit) t = NUM_EXP;
        else return js_err(s, i, "bad number");
        break;
      case NUM_ESIGN:
        if (!digit) return js_err(s, i, "bad number");
        t = NUM_EXP;
        break;
      default: /* NUM_EXP */
        if (!digit) t = -1;
        break;
      }
      if (t >= 0) {
        s->tok = t;
        i++;
        continue;
      }
      /* the number ended before p[i]; p[i] is looked at again as what follows a value */
      state = JS_AFTER;
      if (s->capture && s->depth == s->cap_depth && js_cap_end(s, p, cstart, i) != KD_OK) return s->rc;
      continue;
    }
    case JS_LIT:
      if (p[i] != (unsigned char)s->lit[s->tok]) return js_err(s, i, "bad literal");
      i++;
      if (s->lit[++s->tok] == '\0') {
        state = JS_AFTER;
        if (s->capture && s->depth == s->cap_depth && js_cap_end(s, p, cstart, i) != KD_OK) return s->rc;
      }
      continue;
    default:
      break;
    }

    /* structural states */
    c = p[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      i++;
      continue;
    }
    switch (state) {
    case JS_START:
      if (c != '{') return js_err(s, i, "a list response must be a JSON object");
      s->stack[0] = JS_OBJ;
      s->depth = 1;
      state = JS_KEY_OR_END;
      i++;
      continue;
    case JS_KEY_OR_END:
    case JS_KEY:
      if (c == '"') {
        s->str_key = 1;
        if (s->depth == 1) {
          s->key_on = 1;
          s->key_long = 0;
          kd_buf_reset(&s->key);
          kstart = i + 1;
        }
        state = JS_STR;
        i++;
        continue;
      }
      if (c == '}' && state == JS_KEY_OR_END) goto close;
      return js_err(s, i, "expected a key");
    case JS_COLON:
      if (c != ':') return js_err(s, i, "expected ':'");
      state = JS_VALUE;
      i++;
      continue;
    case JS_AFTER:
      if (c == ',') {
        state = s->stack[s->depth - 1] == JS_OBJ ? JS_KEY : JS_VALUE;
        i++;
        continue;
      }
      if ((c == '}' && s->stack[s->depth - 1] == JS_OBJ) || (c == ']' && s->stack[s->depth - 1] == JS_ARR)) goto close;
      return js_err(s, i, "expected ',' or a closing bracket");
    case JS_DONE:
      return js_err(s, i, "data after the end of the document");
    case JS_VALUE_OR_END:
      if (c == ']') goto close;
      /* fall through */
    default: /* JS_VALUE */
      break;
    }

    /* a value starts at p[i] */
    if (s->depth == 2 && s->items_depth == 2) {
      s->capture = CAP_ITEM;
      s->cap_depth = 2;
      cstart = i;
    } else if (s->depth == 1) {
      if (s->top_key == KEY_META) {
        s->capture = CAP_META;
        s->cap_depth = 1;
        kd_buf_reset(&s->meta);
        cstart = i;
      } else if (s->top_key == KEY_ITEMS && c != '[' && c != 'n') {
        return js_err(s, i, "\"items\" is not an array");
      }
    }
    switch (c) {
    case '{':
    case '[':
      if (s->depth >= JSCAN_MAX_DEPTH) return js_err(s, i, "nesting deeper than 512 levels");
      s->stack[s->depth++] = c == '{' ? JS_OBJ : JS_ARR;
      if (c == '[' && s->depth == 2 && s->top_key == KEY_ITEMS) s->items_depth = 2;
      state = c == '{' ? JS_KEY_OR_END : JS_VALUE_OR_END;
      break;
    case '"':
      s->str_key = 0;
      state = JS_STR;
      break;
    case 't':
      s->lit = "true";
      goto lit;
    case 'f':
      s->lit = "false";
      goto lit;
    case 'n':
      s->lit = "null";
    lit:
      s->tok = 1;
      state = JS_LIT;
      break;
    case '-':
      s->tok = NUM_MINUS;
      state = JS_NUM;
      break;
    default:
      if (c < '0' || c > '9') return js_err(s, i, "expected a value");
      s->tok = c == '0' ? NUM_ZERO : NUM_INT;
      state = JS_NUM;
      break;
    }
    i++;
    continue;

  close:
    /* p[i] closes the innermost container */
    s->depth--;
    if (s->items_depth > s->depth) s->items_depth = 0;
    i++;
    state = s->depth ? JS_AFTER : JS_DONE;
    if (s->capture && s->depth == s->cap_depth && js_cap_end(s, p, cstart, i) != KD_OK) return s->rc;
  }

  /* the chunk ends: keep what is still open */
  s->state = state;
  if (s->capture && js_cap_add(s, p, cstart, n) != KD_OK) return s->rc;
  if (s->key_on && !s->key_long) {
    if (n - kstart > s->key.max - s->key.len) s->key_long = 1;
    else if (kd_buf_add(&s->key, p + kstart, n - kstart) != KD_OK) return s->rc = KD_ERR_NOMEM;
  }
  s->offset += n;
  return KD_OK;
}

kd_rc jscan_finish(struct jscan *s) {
  kd_rc rc = s->rc;
  json_t *meta = NULL;
  if (rc != KD_OK) return rc;
  if (s->state != JS_DONE) {
    const char *what = s->state == JS_START ? "empty document"
                       : s->state == JS_STR || s->state == JS_ESC || s->state == JS_HEX ? "unterminated string"
                                                                                        : "document ends early";
    return js_err(s, 0, what);
  }
  free(s->cont);
  free(s->rv);
  s->cont = s->rv = NULL;
  if (s->meta.len) {
    json_error_t jerr;
    meta = json_loadb(s->meta.data, s->meta.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!meta) {
      rc = s->rc = kd_fail(KD_ERR_PARSE, "malformed list metadata: %s", jerr.text);
      goto fail;
    }
    const char *c = json_string_value(json_object_get(meta, "continue"));
    const char *v = json_string_value(json_object_get(meta, "resourceVersion"));
    if ((c && *c && !(s->cont = kd_strdup(c))) || (v && !(s->rv = kd_strdup(v)))) {
      rc = s->rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
  }
fail:
  json_decref(meta);
  return rc;
}

const char *jscan_continue(const struct jscan *s) { return s->cont; }

const char *jscan_resource_version(const struct jscan *s) { return s->rv; }

size_t jscan_items(const struct jscan *s) { return s->items; }

void jscan_free(struct jscan *s) {
  kd_buf_free(&s->item);
  kd_buf_free(&s->meta);
  kd_buf_free(&s->key);
  free(s->cont);
  free(s->rv);
  s->cont = s->rv = NULL;
}
