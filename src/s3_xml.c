/* s3_xml.c — the S3 client's XML: a small reader and the pure parsers of ListObjectsV2, <Error>
 * and single fields (see s3.h, s3_int.h). */
#include "s3_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define S3_MAX_DEPTH 16
#define S3_MAX_NAME 64

/* ======================================================================================
 * A small XML reader for exactly what S3 answers: elements, attributes skipped, text with the
 * five named entities and numeric references, comments, CDATA and the XML declaration; no
 * DTDs, no external anything. It reports the end of every element with its path of local
 * names ("ListBucketResult/Contents/Key") and, for elements without children, their text.
 * ====================================================================================== */

struct s3x {
  char path[S3_MAX_DEPTH * (S3_MAX_NAME + 1) + 1];
  size_t off[S3_MAX_DEPTH + 1]; /* path length at each depth */
  bool had_child[S3_MAX_DEPTH + 1];
  int depth;
  kd_buf text;
  const char *xml, *end; /* the document */
  s3x_fn fn;
  void *ud;
  bool root_seen;
};

static kd_rc s3x_err(const char *xml, const char *at, const char *what) {
  return kd_fail(KD_ERR_PARSE, "malformed XML at byte %zu: %s", (size_t)(at - xml), what);
}

static bool s3x_namechar(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == ':' || (unsigned char)c >= 0x80;
}

static bool s3x_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Append code point cp as UTF-8; false for NUL, surrogates and values past U+10FFFF. */
static bool s3x_utf8(kd_buf *b, unsigned long cp) {
  char u[4];
  size_t n;
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
  if (cp < 0x80) u[0] = (char)cp, n = 1;
  else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
  else if (cp < 0x10000)
    u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
  else
    u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)), u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)),
    u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
  return kd_buf_add(b, u, n) == KD_OK;
}

/* Decode the entity at *pp (pointing at '&') into b; advance past ';'. */
static kd_rc s3x_entity(const char *xml, const char **pp, const char *end, kd_buf *b) {
  const char *p = *pp + 1, *semi = p;
  while (semi < end && semi - p < 12 && *semi != ';') semi++;
  if (semi >= end || *semi != ';') return s3x_err(xml, *pp, "an '&' that starts no entity");
  size_t n = (size_t)(semi - p);
  static const struct {
    const char *name;
    char c;
  } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  kd_rc rc = KD_OK;
  bool done = false;
  for (size_t i = 0; i < KD_ARRAY_LEN(named) && !done; i++)
    if (strlen(named[i].name) == n && memcmp(p, named[i].name, n) == 0) {
      rc = kd_buf_add(b, &named[i].c, 1);
      done = true;
    }
  if (!done) {
    if (n < 2 || p[0] != '#') return s3x_err(xml, *pp, "an unknown entity");
    bool hex = p[1] == 'x';
    const char *d = p + (hex ? 2 : 1);
    if (d == semi) return s3x_err(xml, *pp, "an empty character reference");
    unsigned long cp = 0;
    for (; d < semi; d++) {
      int v = isdigit((unsigned char)*d) ? *d - '0'
              : hex && isxdigit((unsigned char)*d) ? (tolower((unsigned char)*d) - 'a' + 10)
                                                    : -1;
      if (v < 0) return s3x_err(xml, *pp, "a bad character reference");
      cp = cp * (hex ? 16 : 10) + (unsigned long)v;
      if (cp > 0x10FFFF) return s3x_err(xml, *pp, "a character reference past U+10FFFF");
    }
    if (!s3x_utf8(b, cp)) return b->len >= b->max ? kd_fail(KD_ERR_TOOBIG, "XML text over %zu bytes", b->max)
                                                  : s3x_err(xml, *pp, "a character reference to NUL or a surrogate");
  }
  if (rc != KD_OK) return rc;
  *pp = semi + 1;
  return KD_OK;
}

/* Find needle in [p, end); NULL when absent. */
static const char *s3x_find(const char *p, const char *end, const char *needle) {
  size_t n = strlen(needle);
  for (; p + n <= end; p++)
    if (memcmp(p, needle, n) == 0) return p;
  return NULL;
}

/* Character data at *pp: outside the root only spaces (skipped), inside it collected into the
 * element's text with entities decoded; *pp moves past what was read. */
static kd_rc s3x_chars(struct s3x *x, const char **pp) {
  const char *p = *pp;
  if (x->depth == 0) {
    if (!s3x_space(*p)) return s3x_err(x->xml, p, "text outside the root element");
    *pp = p + 1;
    return KD_OK;
  }
  if (*p == '&') return s3x_entity(x->xml, pp, x->end, &x->text);
  const char *q = p;
  while (q < x->end && *q != '<' && *q != '&') q++;
  kd_rc rc = kd_buf_add(&x->text, p, (size_t)(q - p));
  if (rc == KD_OK) *pp = q;
  return rc;
}

/* Markup at p that is not a tag: a declaration or processing instruction, a comment (both
 * skipped) or a CDATA section (its text collected); *next past it. A DTD or other declaration
 * is refused. *handled false (nothing read) when p starts a tag. */
static kd_rc s3x_markup(struct s3x *x, const char *p, const char **next, bool *handled) {
  const char *xml = x->xml, *end = x->end;
  *handled = true;
  if (end - p >= 2 && p[1] == '?') { /* declaration or processing instruction */
    const char *q = s3x_find(p + 2, end, "?>");
    if (!q) return s3x_err(xml, p, "an unterminated '<?'");
    *next = q + 2;
    return KD_OK;
  }
  if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
    const char *q = s3x_find(p + 4, end, "-->");
    if (!q) return s3x_err(xml, p, "an unterminated comment");
    *next = q + 3;
    return KD_OK;
  }
  if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
    const char *q = s3x_find(p + 9, end, "]]>");
    if (!q || x->depth == 0) return s3x_err(xml, p, "an unterminated or misplaced CDATA section");
    kd_rc rc = kd_buf_add(&x->text, p + 9, (size_t)(q - p - 9));
    if (rc != KD_OK) return rc;
    *next = q + 3;
    return KD_OK;
  }
  if (end - p >= 2 && p[1] == '!') return s3x_err(xml, p, "a DTD or other declaration (not accepted)");
  *handled = false;
  return KD_OK;
}

/* The end tag at p of local[0..nlen) (its name ends at n1): it must close the open element,
 * which is reported to fn and popped off the path; *next past its '>'. */
static kd_rc s3x_end_tag(struct s3x *x, const char *p, const char *n1, const char *local, size_t nlen,
                         const char **next) {
  const char *q = n1;
  while (q < x->end && s3x_space(*q)) q++;
  if (q >= x->end || *q != '>') return s3x_err(x->xml, p, "a bad end tag");
  size_t top = x->depth ? x->off[x->depth - 1] + (x->depth > 1 ? 1 : 0) : 0;
  if (x->depth == 0 || x->off[x->depth] - top != nlen || memcmp(x->path + top, local, nlen) != 0)
    return s3x_err(x->xml, p, "an end tag that does not match its start tag");
  bool leaf = !x->had_child[x->depth];
  kd_rc rc;
  if (!x->text.data && (rc = kd_buf_add(&x->text, "", 0)) != KD_OK) return rc;
  if ((rc = x->fn(x->path, x->text.data, x->text.len, leaf, x->ud)) != KD_OK) return rc;
  kd_buf_reset(&x->text);
  x->depth--;
  x->path[x->off[x->depth]] = '\0';
  *next = q + 1;
  return KD_OK;
}

/* The start tag at p of local[0..nlen) (its name ends at n1; attributes skipped): pushed on the
 * path, and an empty element ("<a/>") reported to fn and popped at once; *next past its '>'. */
static kd_rc s3x_start_tag(struct s3x *x, const char *p, const char *n1, const char *local, size_t nlen,
                           const char **next) {
  const char *end = x->end;
  /* skip attributes (quoted values may hold '>') */
  const char *q = n1;
  char quote = 0;
  while (q < end && (quote || *q != '>')) {
    if (quote && *q == quote) quote = 0;
    else if (!quote && (*q == '"' || *q == '\'')) quote = *q;
    else if (!quote && *q == '<') break;
    q++;
  }
  if (q >= end || *q != '>') return s3x_err(x->xml, p, "an unterminated start tag");
  bool empty = q[-1] == '/';
  if (x->depth == 0 && x->root_seen) return s3x_err(x->xml, p, "a second root element");
  if (x->depth >= S3_MAX_DEPTH) return s3x_err(x->xml, p, "elements nested deeper than 16 levels");
  x->root_seen = true;
  x->had_child[x->depth] = true;
  size_t at = x->off[x->depth];
  if (x->depth > 0) x->path[at++] = '/';
  memcpy(x->path + at, local, nlen);
  x->path[at + nlen] = '\0';
  x->depth++;
  x->off[x->depth] = at + nlen;
  x->had_child[x->depth] = false;
  kd_buf_reset(&x->text);
  if (empty) {
    kd_rc rc;
    if ((rc = kd_buf_add(&x->text, "", 0)) != KD_OK || (rc = x->fn(x->path, x->text.data, 0, true, x->ud)) != KD_OK)
      return rc;
    x->depth--;
    x->path[x->off[x->depth]] = '\0';
  }
  *next = q + 1;
  return KD_OK;
}

/* The reader (see s3_int.h): character data, markup and tags in turn. */
kd_rc s3x_walk(const char *xml, size_t len, s3x_fn fn, void *ud) {
  struct s3x *x = calloc(1, sizeof *x);
  if (!x) return kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_buf_init(&x->text, S3_MAX_XML_TEXT);
  x->xml = xml;
  x->end = xml + len;
  x->fn = fn;
  x->ud = ud;
  kd_rc rc = KD_OK;
  const char *p = xml, *end = xml + len;
  while (p < end) {
    if (*p != '<') { /* character data */
      if ((rc = s3x_chars(x, &p)) != KD_OK) goto fail;
      continue;
    }
    bool handled;
    if ((rc = s3x_markup(x, p, &p, &handled)) != KD_OK) goto fail;
    if (handled) continue;
    bool closing = end - p >= 2 && p[1] == '/';
    const char *n0 = p + (closing ? 2 : 1), *n1 = n0;
    while (n1 < end && s3x_namechar(*n1)) n1++;
    if (n1 == n0 || n1 >= end) {
      rc = s3x_err(xml, p, "a tag without a name");
      goto fail;
    }
    /* local name: drop a namespace prefix */
    const char *local = n0;
    for (const char *c = n0; c < n1; c++)
      if (*c == ':') local = c + 1;
    size_t nlen = (size_t)(n1 - local);
    if (nlen == 0 || nlen > S3_MAX_NAME) {
      rc = s3x_err(xml, p, "an empty or over-long element name");
      goto fail;
    }
    rc = closing ? s3x_end_tag(x, p, n1, local, nlen, &p) : s3x_start_tag(x, p, n1, local, nlen, &p);
    if (rc != KD_OK) goto fail;
  }
  if (x->depth != 0 || !x->root_seen)
    rc = s3x_err(xml, end, x->root_seen ? "the document ends inside an element" : "no root element");
fail:
  kd_buf_free(&x->text);
  free(x);
  return rc;
}

/* ---- ListObjectsV2 ---- */

struct s3x_list {
  struct s3_page *page;
  size_t alloc;
  char *key;
  bool have_size;
  uint64_t size;
  bool url;
};

static kd_rc s3x_add_entry(struct s3x_list *l, const char *key, size_t len, bool is_prefix, uint64_t size) {
  struct s3_page *pg = l->page;
  if (pg->n == l->alloc) {
    if (pg->n >= S3_MAX_PAGE_ENTRIES) return kd_fail(KD_ERR_TOOBIG, "a listing page with more than %u entries", S3_MAX_PAGE_ENTRIES);
    size_t na = l->alloc ? l->alloc * 2 : 64;
    struct s3_entry *e = realloc(pg->entries, na * sizeof *e);
    if (!e) return kd_fail(KD_ERR_NOMEM, "out of memory");
    pg->entries = e;
    l->alloc = na;
  }
  char *k = malloc(len + 1);
  if (!k) return kd_fail(KD_ERR_NOMEM, "out of memory");
  memcpy(k, key, len);
  k[len] = '\0';
  pg->entries[pg->n++] = (struct s3_entry){k, is_prefix, size};
  return KD_OK;
}

static kd_rc s3x_list_cb(const char *path, const char *text, size_t len, bool leaf, void *ud) {
  struct s3x_list *l = ud;
  if (strcmp(path, "ListBucketResult/Contents/Key") == 0 && leaf) {
    free(l->key);
    if (!(l->key = malloc(len + 1))) return kd_fail(KD_ERR_NOMEM, "out of memory");
    memcpy(l->key, text, len);
    l->key[len] = '\0';
    if (strlen(l->key) != len) return kd_fail(KD_ERR_PARSE, "a listed key holds NUL");
  } else if (strcmp(path, "ListBucketResult/Contents/Size") == 0 && leaf) {
    uint64_t v = 0;
    if (len == 0 || len > 19) return kd_fail(KD_ERR_PARSE, "a listed object has a bad Size");
    for (size_t i = 0; i < len; i++) {
      if (text[i] < '0' || text[i] > '9') return kd_fail(KD_ERR_PARSE, "a listed object has a bad Size");
      v = v * 10 + (uint64_t)(text[i] - '0');
    }
    l->size = v;
    l->have_size = true;
  } else if (strcmp(path, "ListBucketResult/Contents") == 0) {
    if (!l->key) return kd_fail(KD_ERR_PARSE, "a listed object without a Key");
    kd_rc rc = s3x_add_entry(l, l->key, strlen(l->key), false, l->have_size ? l->size : 0);
    free(l->key);
    l->key = NULL;
    l->have_size = false;
    l->size = 0;
    return rc;
  } else if (strcmp(path, "ListBucketResult/CommonPrefixes/Prefix") == 0 && leaf) {
    if (memchr(text, '\0', len)) return kd_fail(KD_ERR_PARSE, "a listed prefix holds NUL");
    return s3x_add_entry(l, text, len, true, 0);
  } else if (strcmp(path, "ListBucketResult/IsTruncated") == 0 && leaf) {
    if (len == 4 && memcmp(text, "true", 4) == 0) l->page->truncated = true;
    else if (len == 5 && memcmp(text, "false", 5) == 0) l->page->truncated = false;
    else return kd_fail(KD_ERR_PARSE, "IsTruncated is neither true nor false");
  } else if (strcmp(path, "ListBucketResult/NextContinuationToken") == 0 && leaf) {
    free(l->page->next_token);
    if (!(l->page->next_token = malloc(len + 1))) return kd_fail(KD_ERR_NOMEM, "out of memory");
    memcpy(l->page->next_token, text, len);
    l->page->next_token[len] = '\0';
    if (strlen(l->page->next_token) != len) return kd_fail(KD_ERR_PARSE, "NextContinuationToken holds NUL");
  } else if (strcmp(path, "ListBucketResult/EncodingType") == 0 && leaf) {
    l->url = len == 3 && memcmp(text, "url", 3) == 0;
  } else if (strchr(path, '/') == NULL && strcmp(path, "ListBucketResult") != 0) {
    return kd_fail(KD_ERR_PARSE, "the answer is <%s>, not <ListBucketResult>", path);
  }
  return KD_OK;
}

static int s3x_hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* URL-decode s in place as S3's encoding-type=url (%XX, '+' for space). */
static kd_rc s3x_url_decode(char *s) {
  char *w = s;
  for (const char *r = s; *r; r++) {
    if (*r == '+') {
      *w++ = ' ';
    } else if (*r == '%') {
      int hi = r[1] ? s3x_hexval(r[1]) : -1, lo = hi >= 0 && r[2] ? s3x_hexval(r[2]) : -1;
      if (hi < 0 || lo < 0) return kd_fail(KD_ERR_PARSE, "a URL-encoded key with a bad %% escape");
      if (hi == 0 && lo == 0) return kd_fail(KD_ERR_PARSE, "a URL-encoded key holds NUL");
      *w++ = (char)(hi << 4 | lo);
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
  return KD_OK;
}

void s3_page_free(struct s3_page *page) {
  if (!page) return;
  for (size_t i = 0; i < page->n; i++) free(page->entries[i].key);
  free(page->entries);
  free(page->next_token);
  memset(page, 0, sizeof *page);
}

kd_rc s3_parse_list(const char *xml, size_t len, struct s3_page *page) {
  memset(page, 0, sizeof *page);
  struct s3x_list l = {.page = page};
  kd_rc rc = s3x_walk(xml, len, s3x_list_cb, &l);
  free(l.key);
  for (size_t i = 0; rc == KD_OK && l.url && i < page->n; i++) rc = s3x_url_decode(page->entries[i].key);
  if (rc != KD_OK) kd_fail_wrap(rc, "reading a ListObjectsV2 answer");
  return rc;
}

/* ---- <Error> and single fields ---- */

struct s3x_err {
  struct s3_error *e;
  bool is_error;
};

/* Copy text into dst (see s3_int.h). */
void s3x_copy(char *dst, size_t n, const char *text, size_t len) {
  size_t k = len < n - 1 ? len : n - 1;
  memcpy(dst, text, k);
  dst[k] = '\0';
  for (size_t i = 0; i < k; i++) /* printable only: it goes into messages */
    if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f) dst[i] = ' ';
}

static kd_rc s3x_err_cb(const char *path, const char *text, size_t len, bool leaf, void *ud) {
  struct s3x_err *x = ud;
  if (strcmp(path, "Error") == 0) x->is_error = true;
  else if (leaf && strcmp(path, "Error/Code") == 0) s3x_copy(x->e->code, sizeof x->e->code, text, len);
  else if (leaf && strcmp(path, "Error/Message") == 0) s3x_copy(x->e->message, sizeof x->e->message, text, len);
  else if (leaf && strcmp(path, "Error/Region") == 0) s3x_copy(x->e->region, sizeof x->e->region, text, len);
  return KD_OK;
}

kd_rc s3_parse_error(const char *xml, size_t len, struct s3_error *err) {
  memset(err, 0, sizeof *err);
  struct s3x_err x = {err, false};
  kd_rc rc = s3x_walk(xml, len, s3x_err_cb, &x);
  if (rc != KD_OK) return rc;
  return x.is_error ? KD_OK : kd_fail(KD_ERR_NOTFOUND, "not an S3 <Error> document");
}

struct s3x_field {
  const char *path;
  kd_buf *out;
  bool found;
};

static kd_rc s3x_field_cb(const char *path, const char *text, size_t len, bool leaf, void *ud) {
  struct s3x_field *f = ud;
  if (!leaf || f->found || strcmp(path, f->path) != 0) return KD_OK;
  f->found = true;
  return kd_buf_add(f->out, text, len);
}

kd_rc s3_parse_field(const char *xml, size_t len, const char *path, kd_buf *out) {
  kd_buf_reset(out);
  struct s3x_field f = {path, out, false};
  kd_rc rc = s3x_walk(xml, len, s3x_field_cb, &f);
  if (rc != KD_OK) return rc;
  if (!f.found) return kd_fail(KD_ERR_NOTFOUND, "the answer has no %s", path);
  return out->data ? KD_OK : kd_buf_add(out, "", 0);
}
