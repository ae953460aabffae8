/* s3.c — the S3 object store on http.c and sigv4.c (see s3.h). */
#include "s3.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define S3_MAX_DEPTH 16
#define S3_MAX_NAME 64
#define S3_SMALL_BODY (1u << 20)  /* answers of small requests (errors, initiate, complete) */
#define S3_GET_RESUMES 5          /* a streamed GET picks up where it broke this many times */
#define S3_LOW_SPEED_SECS 60      /* a transfer slower than 1 KiB/s for this long is dropped */

/* ======================================================================================
 * A small XML reader for exactly what S3 answers: elements, attributes skipped, text with the
 * five named entities and numeric references, comments, CDATA and the XML declaration; no
 * DTDs, no external anything. It reports the end of every element with its path of local
 * names ("ListBucketResult/Contents/Key") and, for elements without children, their text.
 * ====================================================================================== */

typedef kd_rc (*s3x_fn)(const char *path, const char *text, size_t len, bool leaf, void *ud);

struct s3x {
  char path[S3_MAX_DEPTH * (S3_MAX_NAME + 1) + 1];
  size_t off[S3_MAX_DEPTH + 1]; /* path length at each depth */
  bool had_child[S3_MAX_DEPTH + 1];
  int depth;
  kd_buf text;
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

static kd_rc s3x_walk(const char *xml, size_t len, s3x_fn fn, void *ud) {
  struct s3x *x = calloc(1, sizeof *x);
  if (!x) return kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_buf_init(&x->text, S3_MAX_XML_TEXT);
  kd_rc rc = KD_OK;
  const char *p = xml, *end = xml + len;
  bool root_seen = false;
  while (p < end) {
    if (*p != '<') { /* character data */
      if (x->depth == 0) {
        if (!s3x_space(*p)) {
          rc = s3x_err(xml, p, "text outside the root element");
          goto fail;
        }
        p++;
        continue;
      }
      if (*p == '&') {
        if ((rc = s3x_entity(xml, &p, end, &x->text)) != KD_OK) goto fail;
        continue;
      }
      const char *q = p;
      while (q < end && *q != '<' && *q != '&') q++;
      if ((rc = kd_buf_add(&x->text, p, (size_t)(q - p))) != KD_OK) goto fail;
      p = q;
      continue;
    }
    if (end - p >= 2 && p[1] == '?') { /* declaration or processing instruction */
      const char *q = s3x_find(p + 2, end, "?>");
      if (!q) {
        rc = s3x_err(xml, p, "an unterminated '<?'");
        goto fail;
      }
      p = q + 2;
      continue;
    }
    if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
      const char *q = s3x_find(p + 4, end, "-->");
      if (!q) {
        rc = s3x_err(xml, p, "an unterminated comment");
        goto fail;
      }
      p = q + 3;
      continue;
    }
    if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
      const char *q = s3x_find(p + 9, end, "]]>");
      if (!q || x->depth == 0) {
        rc = s3x_err(xml, p, "an unterminated or misplaced CDATA section");
        goto fail;
      }
      if ((rc = kd_buf_add(&x->text, p + 9, (size_t)(q - p - 9))) != KD_OK) goto fail;
      p = q + 3;
      continue;
    }
    if (end - p >= 2 && p[1] == '!') {
      rc = s3x_err(xml, p, "a DTD or other declaration (not accepted)");
      goto fail;
    }
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
    if (closing) {
      const char *q = n1;
      while (q < end && s3x_space(*q)) q++;
      if (q >= end || *q != '>') {
        rc = s3x_err(xml, p, "a bad end tag");
        goto fail;
      }
      size_t top = x->depth ? x->off[x->depth - 1] + (x->depth > 1 ? 1 : 0) : 0;
      if (x->depth == 0 || x->off[x->depth] - top != nlen || memcmp(x->path + top, local, nlen) != 0) {
        rc = s3x_err(xml, p, "an end tag that does not match its start tag");
        goto fail;
      }
      bool leaf = !x->had_child[x->depth];
      if (!x->text.data && (rc = kd_buf_add(&x->text, "", 0)) != KD_OK) goto fail;
      if ((rc = fn(x->path, x->text.data, x->text.len, leaf, ud)) != KD_OK) goto fail;
      kd_buf_reset(&x->text);
      x->depth--;
      x->path[x->off[x->depth]] = '\0';
      p = q + 1;
      continue;
    }
    /* start tag: skip attributes (quoted values may hold '>') */
    const char *q = n1;
    char quote = 0;
    while (q < end && (quote || *q != '>')) {
      if (quote && *q == quote) quote = 0;
      else if (!quote && (*q == '"' || *q == '\'')) quote = *q;
      else if (!quote && *q == '<') break;
      q++;
    }
    if (q >= end || *q != '>') {
      rc = s3x_err(xml, p, "an unterminated start tag");
      goto fail;
    }
    bool empty = q[-1] == '/';
    if (x->depth == 0 && root_seen) {
      rc = s3x_err(xml, p, "a second root element");
      goto fail;
    }
    if (x->depth >= S3_MAX_DEPTH) {
      rc = s3x_err(xml, p, "elements nested deeper than 16 levels");
      goto fail;
    }
    root_seen = true;
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
      if ((rc = kd_buf_add(&x->text, "", 0)) != KD_OK || (rc = fn(x->path, x->text.data, 0, true, ud)) != KD_OK) goto fail;
      x->depth--;
      x->path[x->off[x->depth]] = '\0';
    }
    p = q + 1;
  }
  if (x->depth != 0 || !root_seen) rc = s3x_err(xml, end, root_seen ? "the document ends inside an element" : "no root element");
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

static void s3x_copy(char *dst, size_t n, const char *text, size_t len) {
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

/* ======================================================================================
 * The client
 * ====================================================================================== */

struct s3_client {
  http_pool *pool;
  char *scheme;   /* "http" or "https" */
  char *host;     /* host[:port] of the endpoint, as the Host header carries it */
  char *base;     /* path of the endpoint without a trailing '/': "" or "/gw" */
  char *origin;   /* scheme://host */
  char *bucket;
  char *region;
  bool path_style;
  struct http_tls tls;
  char *ca_pem;
  char *access_key;
  char *secret_key;
  char *token;
  volatile const int *cancel;
  objstore_guard_fn guard; /* the write guard, or NULL */
  void *guard_ud;
  long list_max_pages;
  size_t list_max_keys;
  atomic_int cond_put;     /* enum s3_cond: what the probe found about If-None-Match */
  char lock_mode[16];      /* S3 Object Lock mode new objects get ("" = none) */
  int lock_days;           /* retention from the time of writing, in days (0 = none) */
  time_t lock_until;       /* a fixed retain-until date (0 = none); the later of the two wins */
};

/* What a server does with "If-None-Match: *" on PutObject (s3_put_new's probe). */
enum s3_cond { S3_COND_UNKNOWN = 0, S3_COND_HONOURED, S3_COND_IGNORED, S3_COND_NOT_IMPLEMENTED };

void s3_free(s3_client *c) {
  if (!c) return;
  http_pool_free(c->pool);
  free(c->scheme);
  free(c->host);
  free(c->base);
  free(c->origin);
  free(c->bucket);
  free(c->region);
  free(c->ca_pem);
  free(c->access_key);
  if (c->secret_key) {
    explicit_bzero(c->secret_key, strlen(c->secret_key));
    free(c->secret_key);
  }
  if (c->token) {
    explicit_bzero(c->token, strlen(c->token));
    free(c->token);
  }
  free(c);
}

void s3_set_cancel(s3_client *c, volatile const int *cancel) { c->cancel = cancel; }

void s3_set_guard(s3_client *c, objstore_guard_fn guard, void *ud) {
  c->guard = guard;
  c->guard_ud = ud;
}

void s3_set_list_caps(s3_client *c, long max_pages, size_t max_keys) {
  c->list_max_pages = max_pages > 0 ? max_pages : S3_MAX_LIST_PAGES;
  c->list_max_keys = max_keys > 0 ? max_keys : S3_MAX_LIST_KEYS;
}
const char *s3_endpoint(const s3_client *c) { return c->origin; }

/* A bucket name usable as a DNS label under TLS: 3-63 of a-z 0-9 '-', no dots. */
static bool s3_dns_bucket(const char *b) {
  size_t n = strlen(b);
  if (n < 3 || n > 63 || b[0] == '-' || b[n - 1] == '-') return false;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-')) return false;
  return true;
}

/* An IPv4 or bracketed IPv6 literal (with or without port): no virtual hosts there. */
static bool s3_ip_host(const char *host) {
  if (host[0] == '[') return true;
  for (const char *p = host; *p && *p != ':'; p++)
    if (!isdigit((unsigned char)*p) && *p != '.') return false;
  return true;
}

/* url for a message: a URL holding '@' anywhere may carry a password (perhaps with an
 * unencoded slash), so it is shown as its scheme and three stars; others are cut at 200 bytes. */
static const char *s3_redact(const char *url, char *out, size_t n) {
  const char *sep = strstr(url, "://");
  if (strchr(url, '@')) snprintf(out, n, "%.*s://***", sep && sep - url < 10 ? (int)(sep - url) : 0, url);
  else snprintf(out, n, "%.200s", url);
  return out;
}

/* Split an endpoint URL into scheme, host[:port] and base path; KD_ERR_CONFIG when bad. */
static kd_rc s3_parse_endpoint(s3_client *c, const char *in) {
  char url[256];
  s3_redact(in, url, sizeof url); /* what messages show */
  const char *sep = strstr(in, "://");
  if (!sep) return kd_fail(KD_ERR_CONFIG, "config.s3Url '%s' is not a URL (http:// or https://)", url);
  size_t sl = (size_t)(sep - in);
  if (!((sl == 4 && strncasecmp(in, "http", 4) == 0) || (sl == 5 && strncasecmp(in, "https", 5) == 0)))
    return kd_fail(KD_ERR_CONFIG, "config.s3Url '%s' must start with http:// or https://", url);
  const char *h = sep + 3, *he = h + strcspn(h, "/?#");
  if (he == h) return kd_fail(KD_ERR_CONFIG, "config.s3Url '%s' has no host", url);
  for (const char *p = h; p < he; p++)
    if (*p == '@' || (unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return kd_fail(KD_ERR_CONFIG, "config.s3Url '%s': the host part may not hold '@' or spaces (no credentials in URLs)", url);
  const char *path = he, *pe = path + strcspn(path, "?#");
  if (*pe) return kd_fail(KD_ERR_CONFIG, "config.s3Url '%s' may not have a query or fragment", url);
  for (const char *p = path; p < pe; p++)
    if (!(isalnum((unsigned char)*p) || strchr("-._~/", *p)))
      return kd_fail(KD_ERR_CONFIG, "config.s3Url '%s': its path may only hold letters, digits, '-', '.', '_', '~' and '/'", url);
  while (pe > path && pe[-1] == '/') pe--;
  c->scheme = strndup(in, sl);
  c->host = strndup(h, (size_t)(he - h));
  c->base = strndup(path, (size_t)(pe - path));
  if (!c->scheme || !c->host || !c->base) return kd_fail(KD_ERR_NOMEM, "out of memory");
  for (char *p = c->scheme; *p; p++) *p = (char)tolower((unsigned char)*p);
  for (char *p = c->host; *p; p++) *p = (char)tolower((unsigned char)*p);
  return KD_OK;
}

kd_rc s3_new(const struct s3_config *cfg, s3_client **out) {
  kd_rc rc = KD_OK;
  *out = NULL;
  s3_client *c = calloc(1, sizeof *c);
  if (!c) return kd_fail(KD_ERR_NOMEM, "out of memory");
  const char *region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
  for (const char *p = region; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_')) {
      rc = kd_fail(KD_ERR_CONFIG, "config.region '%s' is not a region name", region);
      goto fail;
    }
  if (!cfg->bucket || !*cfg->bucket) {
    rc = kd_fail(KD_ERR_CONFIG, "objectStorage.bucket is empty");
    goto fail;
  }
  for (const char *p = cfg->bucket; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.') || strlen(cfg->bucket) > 255) {
      rc = kd_fail(KD_ERR_CONFIG, "objectStorage.bucket '%.300s' is not a bucket name (letters, digits, '-', '_', '.')", cfg->bucket);
      goto fail;
    }
  if (!cfg->access_key || !*cfg->access_key || !cfg->secret_key || !*cfg->secret_key) {
    rc = kd_fail(KD_ERR_CONFIG, "no credentials: the access key ID or secret access key is empty");
    goto fail;
  }
  for (const char *p = cfg->access_key; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '/' || *p == ',') {
      rc = kd_fail(KD_ERR_CONFIG, "the access key ID holds characters an access key cannot have");
      goto fail;
    }
  if (cfg->endpoint && *cfg->endpoint) {
    if ((rc = s3_parse_endpoint(c, cfg->endpoint)) != KD_OK) goto fail;
  } else {
    char url[160];
    snprintf(url, sizeof url, "https://s3.%s.amazonaws.com", region);
    if ((rc = s3_parse_endpoint(c, url)) != KD_OK) goto fail;
  }
  c->bucket = kd_strdup(cfg->bucket);
  c->region = kd_strdup(region);
  c->access_key = kd_strdup(cfg->access_key);
  c->secret_key = kd_strdup(cfg->secret_key);
  c->token = cfg->session_token && *cfg->session_token ? kd_strdup(cfg->session_token) : NULL;
  size_t ol = strlen(c->scheme) + 3 + strlen(c->host) + 1;
  c->origin = malloc(ol);
  if (!c->bucket || !c->region || !c->access_key || !c->secret_key || !c->origin ||
      (cfg->session_token && *cfg->session_token && !c->token)) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  snprintf(c->origin, ol, "%s://%s", c->scheme, c->host);
  c->path_style = cfg->path_style || s3_ip_host(c->host) || !s3_dns_bucket(c->bucket);
  if (cfg->ca_pem && cfg->ca_pem_len) {
    if (!(c->ca_pem = malloc(cfg->ca_pem_len))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    memcpy(c->ca_pem, cfg->ca_pem, cfg->ca_pem_len);
    c->tls.ca_pem = c->ca_pem;
    c->tls.ca_pem_len = cfg->ca_pem_len;
  }
  c->tls.insecure = cfg->insecure;
  s3_set_list_caps(c, 0, 0);
  if ((rc = http_pool_new(NULL, &c->pool)) != KD_OK) goto fail;
  *out = c;
  return KD_OK;
fail:
  s3_free(c);
  return rc;
}

/* The decoded request path of key (what is signed): "/bucket/key" or "/key", base first. */
static kd_rc s3_path(const s3_client *c, const char *key, kd_buf *out) {
  kd_rc rc = kd_buf_adds(out, c->base);
  if (rc == KD_OK && c->path_style) rc = kd_buf_addf(out, "/%s", c->bucket);
  if (rc == KD_OK) rc = kd_buf_add(out, "/", 1);
  if (rc == KD_OK) rc = kd_buf_adds(out, key);
  return rc;
}

/* The Host header: the endpoint's, or "bucket.endpoint" for virtual-hosted requests. */
static kd_rc s3_host(const s3_client *c, kd_buf *out) {
  return c->path_style ? kd_buf_adds(out, c->host) : kd_buf_addf(out, "%s.%s", c->bucket, c->host);
}

kd_rc s3_url(const s3_client *c, const char *key, const sigv4_kv *q, size_t nq, kd_buf *url) {
  kd_buf path = KD_BUF_INIT(SIGV4_MAX_CANONICAL);
  kd_rc rc = kd_buf_addf(url, "%s://", c->scheme);
  if (rc == KD_OK) rc = s3_host(c, url);
  if (rc == KD_OK) rc = s3_path(c, key, &path);
  if (rc == KD_OK) rc = sigv4_encode(url, path.data, path.len, true);
  if (rc == KD_OK && nq) rc = kd_buf_add(url, "?", 1);
  if (rc == KD_OK && nq) rc = sigv4_canonical_query(url, q, nq);
  kd_buf_free(&path);
  return rc;
}

/* ---- one signed request ---- */

struct s3_call {
  s3_client *c;
  const char *op;           /* the S3 operation, for messages: "PutObject" */
  const char *method;
  const char *key;          /* "" for the bucket */
  const sigv4_kv *query;
  size_t nquery;
  const char *payload_hash; /* NULL = empty body */
  const char *const *headers; /* extra unsigned "Name: value" lines, NULL-terminated */
  sigv4_kv signed_hdrs[S3_LOCK_HEADERS]; /* extra headers, signed and sent (Content-MD5, object lock) */
  size_t nsigned;
  struct s3_lock_hdrs lock; /* the values signed_hdrs point to */
  bool mutating;            /* a write: the client's guard is asked before every attempt */
  kd_buf path, host;
  char bucket_region[64];   /* x-amz-bucket-region of the answer */
  bool content_range;       /* the answer has a Content-Range (a partial object) */
  char version_id[256];     /* x-amz-version-id of the answer */
  char lock_mode[16];       /* x-amz-object-lock-mode of the answer */
  char lock_until[64];      /* x-amz-object-lock-retain-until-date of the answer */
};

static kd_rc s3_prepare(struct http_hdrs *h, const struct http_tls **tls, int attempt, void *ud) {
  (void)tls;
  struct s3_call *k = ud;
  s3_client *c = k->c;
  char date[17];
  /* the write guard, before every attempt: a retry after a pause never goes out once it says no */
  if (k->mutating && c->guard) {
    kd_rc g = c->guard(c->guard_ud);
    if (g != KD_OK)
      return kd_fail_wrap(g, "%s s3://%s/%s not sent (attempt %d): the write guard refused", k->op, c->bucket, k->key,
                          attempt + 1);
  }
  if (k->mutating && k->key) { /* tests stop here: the guard said yes, the request is about to go out */
    const char *base = strrchr(k->key, '/');
    char point[300];
    snprintf(point, sizeof point, "s3-send:%s", base ? base + 1 : k->key);
    kd_test_pause(point);
  }
  sigv4_amz_date(time(NULL), date);
  const char *hash = k->payload_hash ? k->payload_hash : SIGV4_EMPTY_SHA256;
  sigv4_kv hv[4 + S3_LOCK_HEADERS] = {{"host", k->host.data}, {"x-amz-content-sha256", hash}, {"x-amz-date", date}};
  size_t nh = 3;
  if (c->token) hv[nh++] = (sigv4_kv){"x-amz-security-token", c->token};
  for (size_t i = 0; i < k->nsigned; i++) hv[nh++] = k->signed_hdrs[i];
  sigv4_req r = {k->method, k->path.data, k->query, k->nquery, hv, nh, hash};
  sigv4_key key = {c->access_key, c->secret_key, c->region, "s3"};
  kd_buf auth = KD_BUF_INIT(8192);
  kd_rc rc = sigv4_authorization(&r, &key, date, &auth);
  if (rc == KD_OK) rc = http_hdrs_add(h, "Host", k->host.data);
  if (rc == KD_OK) rc = http_hdrs_add(h, "x-amz-content-sha256", hash);
  if (rc == KD_OK) rc = http_hdrs_add(h, "x-amz-date", date);
  if (rc == KD_OK && c->token) rc = http_hdrs_add(h, "x-amz-security-token", c->token);
  for (size_t i = 0; rc == KD_OK && i < k->nsigned; i++) rc = http_hdrs_add(h, k->signed_hdrs[i].name, k->signed_hdrs[i].value);
  if (rc == KD_OK) rc = http_hdrs_add(h, "Authorization", auth.data);
  kd_buf_free(&auth);
  return rc;
}

static void s3_on_header(const char *name, const char *value, void *ud) {
  struct s3_call *k = ud;
  if (strcasecmp(name, "x-amz-bucket-region") == 0) snprintf(k->bucket_region, sizeof k->bucket_region, "%s", value);
  else if (strcasecmp(name, "Content-Range") == 0) k->content_range = true;
  else if (strcasecmp(name, "x-amz-version-id") == 0) snprintf(k->version_id, sizeof k->version_id, "%s", value);
  else if (strcasecmp(name, "x-amz-object-lock-mode") == 0) snprintf(k->lock_mode, sizeof k->lock_mode, "%s", value);
  else if (strcasecmp(name, "x-amz-object-lock-retain-until-date") == 0)
    snprintf(k->lock_until, sizeof k->lock_until, "%s", value);
}

static kd_rc s3_call_init(struct s3_call *k, s3_client *c, const char *op, const char *method, const char *key,
                          const sigv4_kv *q, size_t nq) {
  memset(k, 0, sizeof *k);
  k->c = c;
  k->op = op;
  k->method = method;
  k->key = key;
  k->query = q;
  k->nquery = nq;
  kd_buf_init(&k->path, SIGV4_MAX_CANONICAL);
  kd_buf_init(&k->host, 1024);
  kd_rc rc = s3_path(c, key, &k->path);
  if (rc == KD_OK) rc = s3_host(c, &k->host);
  return rc;
}

static void s3_call_free(struct s3_call *k) {
  kd_buf_free(&k->path);
  kd_buf_free(&k->host);
}

/* Under object lock (s3_set_lock), give the request the headers S3 asks for: Content-MD5 of
 * body (md5: PutObject, UploadPart) and the mode and retain-until date (lock: PutObject,
 * CreateMultipartUpload), signed like every x-amz- header. Nothing without object lock. */
static void s3_call_lock(struct s3_call *k, const void *body, size_t n, bool md5, bool lock) {
  const s3_client *c = k->c;
  k->nsigned = 0;
  if (!c->lock_mode[0]) return;
  s3_lock_hdrs_build(c->lock_mode, c->lock_days, c->lock_until, time(NULL), body, n, md5, lock, &k->lock);
  if (k->lock.md5[0]) k->signed_hdrs[k->nsigned++] = (sigv4_kv){"Content-MD5", k->lock.md5};
  if (k->lock.mode[0]) {
    k->signed_hdrs[k->nsigned++] = (sigv4_kv){"x-amz-object-lock-mode", k->lock.mode};
    k->signed_hdrs[k->nsigned++] = (sigv4_kv){"x-amz-object-lock-retain-until-date", k->lock.until};
  }
}

void s3_content_md5(const void *p, size_t n, char out[S3_MD5_B64_LEN]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dl = 0;
  out[0] = '\0';
  if (EVP_Digest(p ? p : "", n, d, &dl, EVP_md5(), NULL) != 1 || dl != 16) return; /* no MD5 here: S3 refuses, says why */
  EVP_EncodeBlock((unsigned char *)out, d, 16); /* 24 characters and a NUL */
}

void s3_lock_hdrs_build(const char *mode, int days, time_t until, time_t now, const void *body, size_t n, bool md5,
                        bool lock, struct s3_lock_hdrs *out) {
  memset(out, 0, sizeof *out);
  if (md5) s3_content_md5(body, n, out->md5);
  time_t t = until ? until : days > 0 ? now + (time_t)days * 86400 : 0;
  if (!lock || !mode || !mode[0] || t <= now) return;
  snprintf(out->mode, sizeof out->mode, "%s", mode);
  kd_time_format(t, out->until);
}

void s3_set_lock(s3_client *c, const char *mode, int days, time_t until) {
  snprintf(c->lock_mode, sizeof c->lock_mode, "%s", mode ? mode : "");
  c->lock_days = days;
  c->lock_until = until;
}

/* What the user should read for an S3 error code. */
static kd_rc s3_error_rc(const s3_client *c, const char *code, long status, char *hint, size_t n) {
  hint[0] = '\0';
  if (strcmp(code, "SignatureDoesNotMatch") == 0) {
    snprintf(hint, n, "the secret key is wrong (the server computed another signature for access key %s)", c->access_key);
    return KD_ERR_UNAUTHORIZED;
  }
  if (strcmp(code, "InvalidAccessKeyId") == 0) {
    snprintf(hint, n, "the access key ID %s is not known to the server", c->access_key);
    return KD_ERR_UNAUTHORIZED;
  }
  if (strcmp(code, "InvalidToken") == 0 || strcmp(code, "ExpiredToken") == 0 || strcmp(code, "TokenRefreshRequired") == 0) {
    snprintf(hint, n, "the session token is invalid or expired");
    return KD_ERR_UNAUTHORIZED;
  }
  if (strcmp(code, "RequestTimeTooSkewed") == 0 || strcmp(code, "RequestExpired") == 0) {
    snprintf(hint, n, "this machine's clock differs too much from the server's");
    return KD_ERR_UNAUTHORIZED;
  }
  if (strcmp(code, "AccessDenied") == 0 || strcmp(code, "AllAccessDisabled") == 0) {
    snprintf(hint, n, "these credentials may not do this in bucket %s", c->bucket);
    return KD_ERR_FORBIDDEN;
  }
  if (strcmp(code, "NoSuchBucket") == 0) {
    snprintf(hint, n, "bucket %s does not exist", c->bucket);
    return KD_ERR_NOTFOUND;
  }
  if (strcmp(code, "NoSuchKey") == 0 || strcmp(code, "NoSuchUpload") == 0) return KD_ERR_NOTFOUND;
  if (strcmp(code, "AuthorizationHeaderMalformed") == 0 || strcmp(code, "PermanentRedirect") == 0 ||
      strcmp(code, "IllegalLocationConstraintException") == 0) {
    snprintf(hint, n, "bucket %s is not in region %s: set config.region", c->bucket, c->region);
    return KD_ERR_CONFIG;
  }
  if (status == 401) return KD_ERR_UNAUTHORIZED;
  if (status == 403) return KD_ERR_FORBIDDEN;
  if (status == 404) return KD_ERR_NOTFOUND;
  if (status == 409) return KD_ERR_CONFLICT;
  return KD_ERR_HTTP;
}

/* Turn a non-2xx answer into an error with a message a user can act on. */
static kd_rc s3_status_fail(struct s3_call *k, const struct http_resp *r) {
  s3_client *c = k->c;
  struct s3_error e;
  char hint[256] = "";
  bool parsed = r->body.len && s3_parse_error(r->body.data, r->body.len, &e) == KD_OK;
  if (!parsed) {
    memset(&e, 0, sizeof e);
    /* HEAD answers have no body: name the usual causes by status */
    if (r->status == 404) snprintf(e.code, sizeof e.code, "%s", k->key[0] ? "NoSuchKey" : "NoSuchBucket");
    else if (r->status == 403 && strcmp(k->method, "HEAD") == 0)
      snprintf(hint, sizeof hint, "access denied, or a wrong access key or secret key (a HEAD answer carries no reason)");
    else if (r->status == 403) snprintf(e.code, sizeof e.code, "AccessDenied");
    else if (r->status == 301) snprintf(e.code, sizeof e.code, "PermanentRedirect");
  }
  if (k->bucket_region[0] && !e.region[0]) snprintf(e.region, sizeof e.region, "%s", k->bucket_region);
  char given[256];
  snprintf(given, sizeof given, "%s", hint);
  kd_rc rc = s3_error_rc(c, e.code, r->status, hint, sizeof hint);
  if (given[0]) snprintf(hint, sizeof hint, "%s", given);
  if (rc == KD_ERR_CONFIG && e.region[0])
    snprintf(hint, sizeof hint, "bucket %s is in region %s, not %s: set config.region to %s", c->bucket, e.region,
             c->region, e.region);
  if (rc == KD_ERR_NOTFOUND && !hint[0] && k->key[0])
    snprintf(hint, sizeof hint, "no object %s in bucket %s", k->key, c->bucket);
  char body[160] = "";
  if (!parsed && !e.code[0] && r->body.len) s3x_copy(body, sizeof body, r->body.data, r->body.len);
  const char *obj = k->key;
  for (size_t i = 0; !obj[0] && i < k->nquery; i++) /* a listing: name its prefix */
    if (strcmp(k->query[i].name, "prefix") == 0 && k->query[i].value) obj = k->query[i].value;
  return kd_fail(rc, "%s s3://%s/%s at %s: HTTP %ld%s%s%s%s%s%s%s%s", k->op, c->bucket, obj, c->origin, r->status,
                 e.code[0] ? ", " : "", e.code, hint[0] ? ": " : "", hint, e.message[0] && !hint[0] ? ": " : "",
                 hint[0] ? "" : e.message, body[0] ? ": " : "", body);
}

/* Options of one request. */
struct s3_opts {
  const char *body;   /* in-memory body or NULL */
  size_t body_len;
  objstore_sink_fn sink;
  void *sink_ud;
  size_t body_max;
  bool streaming;     /* large transfer: no total timeout, a low-speed limit instead */
  enum http_idem idem;
  int retries;        /* 0 = HTTP_DEFAULT_RETRIES */
};

/* Send one signed request; KD_OK only for a 2xx answer (then *resp holds it). */
static kd_rc s3_do(struct s3_call *k, const struct s3_opts *o, struct http_resp *resp) {
  s3_client *c = k->c;
  kd_buf url = KD_BUF_INIT(SIGV4_MAX_CANONICAL);
  kd_rc rc = s3_url(c, k->key, k->query, k->nquery, &url);
  if (rc != KD_OK) {
    memset(resp, 0, sizeof *resp);
    goto fail;
  }
  struct http_req req = {
      .method = k->method,
      .url = url.data,
      .headers = k->headers,
      .prepare = s3_prepare,
      .prepare_ud = k,
      .tls = &c->tls,
      .idem = o->idem,
      .body = o->body ? o->body : NULL,
      .body_len = o->body ? o->body_len : 0,
      .sink = o->sink,
      .sink_ud = o->sink_ud,
      .body_max = o->body_max ? o->body_max : S3_SMALL_BODY,
      .on_header = s3_on_header,
      .header_ud = k,
      .timeout_ms = o->streaming ? -1 : 0,
      .low_speed_bytes = o->streaming ? 1024 : 0,
      .low_speed_secs = o->streaming ? S3_LOW_SPEED_SECS : 0,
      .cancel = c->cancel,
      .max_retries = o->retries > 0 ? o->retries : HTTP_DEFAULT_RETRIES,
  };
  rc = http_do(c->pool, &req, resp);
  if (rc != KD_OK) {
    if (rc == KD_ERR_TRANSPORT && strstr(kd_errmsg(), "Failed to connect"))
      kd_fail_wrap(rc, "cannot connect to the S3 endpoint %s (connection refused, or nothing listens there)", c->origin);
    else if (rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT)
      kd_fail_wrap(rc, "S3 endpoint %s (bucket %s) unreachable", c->origin, c->bucket);
    goto fail;
  }
  if (!http_ok(resp->status)) rc = s3_status_fail(k, resp);
fail:
  kd_buf_free(&url);
  return rc;
}

/* ---- operations ---- */

kd_rc s3_check(s3_client *c, const char *prefix) {
  struct s3_call k;
  struct http_resp r = {0};
  sigv4_kv q[] = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", prefix ? prefix : ""}, {"encoding-type", "url"}};
  kd_rc rc = s3_call_init(&k, c, "ListObjectsV2", "GET", "", q, KD_ARRAY_LEN(q));
  struct s3_opts o = {.retries = 2};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK) { /* a 2xx that is not a listing (a web server, not S3) is not usable */
    struct s3_page pg;
    rc = s3_parse_list(r.body.data ? r.body.data : "", r.body.len, &pg);
    s3_page_free(&pg);
    if (rc != KD_OK) kd_fail_wrap(rc, "%s does not answer like S3", c->origin);
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

kd_rc s3_put(s3_client *c, const char *key, const void *p, size_t n) {
  struct s3_call k;
  struct http_resp r = {0};
  char hash[65];
  sigv4_sha256_hex(p, n, hash);
  kd_rc rc = s3_call_init(&k, c, "PutObject", "PUT", key, NULL, 0);
  k.payload_hash = hash;
  k.mutating = true;
  s3_call_lock(&k, p, n, true, true);
  struct s3_opts o = {.body = p ? p : "", .body_len = n, .streaming = n > S3_SMALL_BODY};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

struct s3_get_state {
  objstore_sink_fn fn;
  void *ud;
  uint64_t got;
  bool resuming;        /* this attempt asked for a Range */
  struct s3_call *call; /* this attempt's request */
};

static kd_rc s3_get_sink(const char *p, size_t n, void *ud) {
  struct s3_get_state *g = ud;
  /* a server that ignores the Range sends the object from its first byte: never splice that */
  if (g->resuming && !g->call->content_range)
    return kd_fail(KD_ERR_HTTP, "GetObject s3://%s/%s: the server ignored the Range of a resumed download",
                   g->call->c->bucket, g->call->key);
  g->got += n;
  return g->fn(p, n, g->ud);
}

kd_rc s3_get(s3_client *c, const char *key, objstore_sink_fn fn, void *ud) { return s3_get_version(c, key, NULL, fn, ud); }

kd_rc s3_get_version(s3_client *c, const char *key, const char *version, objstore_sink_fn fn, void *ud) {
  kd_rc rc = KD_OK;
  sigv4_kv vq[] = {{"versionId", version}};
  struct s3_get_state g = {fn, ud, 0, false, NULL};
  char *etag = NULL;
  for (int attempt = 0;; attempt++) {
    struct s3_call k;
    struct http_resp r = {0};
    char range[64], ifmatch[300];
    const char *hdrs[3] = {NULL, NULL, NULL};
    if (g.got) { /* resume: the rest of the same version */
      snprintf(range, sizeof range, "Range: bytes=%llu-", (unsigned long long)g.got);
      hdrs[0] = range;
      if (etag) {
        snprintf(ifmatch, sizeof ifmatch, "If-Match: %s", etag);
        hdrs[1] = ifmatch;
      }
    }
    rc = s3_call_init(&k, c, "GetObject", "GET", key, vq, version ? 1 : 0);
    k.headers = hdrs;
    g.resuming = g.got > 0;
    g.call = &k;
    struct s3_opts o = {.sink = s3_get_sink, .sink_ud = &g, .streaming = true};
    uint64_t before = g.got;
    if (rc == KD_OK) rc = s3_do(&k, &o, &r);
    if (!etag && r.etag && strlen(r.etag) < 256) etag = kd_strdup(r.etag);
    bool resumable = (rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT) && g.got > before && attempt < S3_GET_RESUMES;
    if (rc == KD_OK && g.resuming && r.status != 206)
      rc = kd_fail(KD_ERR_HTTP, "GetObject s3://%s/%s: HTTP %ld to a resumed download", c->bucket, key, r.status);
    http_resp_free(&r);
    s3_call_free(&k);
    if (!resumable) break;
    kd_log(KD_LOG_WARN, "s3: GET s3://%s/%s broke after %llu bytes, resuming: %s", c->bucket, key,
           (unsigned long long)g.got, kd_errmsg());
  }
  free(etag);
  return rc;
}

kd_rc s3_head(s3_client *c, const char *key, uint64_t *size) { return s3_head_version(c, key, NULL, size); }

kd_rc s3_head_version(s3_client *c, const char *key, const char *version, uint64_t *size) {
  struct s3_call k;
  struct http_resp r = {0};
  sigv4_kv vq[] = {{"versionId", version}};
  kd_rc rc = s3_call_init(&k, c, "HeadObject", "HEAD", key, vq, version ? 1 : 0);
  struct s3_opts o = {0};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK && size) {
    if (r.content_length < 0) rc = kd_fail(KD_ERR_PARSE, "HEAD s3://%s/%s: no Content-Length in the answer", c->bucket, key);
    else *size = (uint64_t)r.content_length;
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

kd_rc s3_delete(s3_client *c, const char *key) { return s3_delete_version(c, key, NULL); }

kd_rc s3_delete_version(s3_client *c, const char *key, const char *version) {
  struct s3_call k;
  struct http_resp r = {0};
  sigv4_kv q[] = {{"versionId", version}};
  kd_rc rc = s3_call_init(&k, c, "DeleteObject", "DELETE", key, q, version ? 1 : 0);
  k.mutating = true;
  struct s3_opts o = {0};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  /* a missing key is fine (S3 says 204 anyway; some gateways say NoSuchKey) */
  if (rc == KD_ERR_NOTFOUND && r.status == 404 && strstr(kd_errmsg(), "NoSuchBucket") == NULL) {
    kd_clear_error();
    rc = KD_OK;
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

static int s3_entry_cmp(const void *a, const void *b) {
  const struct s3_entry *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  return r ? r : (int)x->is_prefix - (int)y->is_prefix;
}

/* True when entry (key, is_prefix) belongs to a listing of prefix with delimiter: S3 answers
 * objects whose key starts with prefix and, with a delimiter, holds none past it, and common
 * prefixes that are prefix + one segment + the delimiter. */
static bool s3_list_fits(const struct s3_entry *e, const char *prefix, size_t plen, char delimiter) {
  if (strncmp(e->key, prefix, plen) != 0) return false;
  const char *rest = e->key + plen, *d = delimiter ? strchr(rest, delimiter) : NULL;
  if (!e->is_prefix) return d == NULL;
  return d && d > rest && d[1] == '\0';
}

/* FNV-1a of a continuation token: the listing remembers these to see a cycle. */
static uint64_t s3_token_hash(const char *t) {
  uint64_t h = 14695981039346656037ull;
  for (; *t; t++) h = (h ^ (unsigned char)*t) * 1099511628211ull;
  return h;
}

kd_rc s3_list(s3_client *c, const char *prefix, char delimiter, objstore_list_fn fn, void *ud) {
  kd_rc rc = KD_OK;
  char *token = NULL;
  char delim[2] = {delimiter, '\0'};
  const char *pfx = prefix ? prefix : "";
  size_t plen = strlen(pfx), keys = 0, ignored = 0;
  long pages = 0;
  /* the tokens used so far (as hashes), to stop a server that sends one again; at most one per
   * page, so the page cap bounds this array */
  uint64_t *seen = NULL;
  size_t nseen = 0, aseen = 0;
  for (;;) {
    if (pages >= c->list_max_pages) {
      rc = kd_fail(KD_ERR_TOOBIG, "listing s3://%s/%s: still not complete after %ld pages (%zu keys); stopped "
                   "(the cap on pages of one listing)", c->bucket, pfx, pages, keys);
      break;
    }
    struct s3_call k;
    struct http_resp r = {0};
    struct s3_page pg = {0};
    sigv4_kv q[6] = {{"list-type", "2"}, {"prefix", pfx}, {"encoding-type", "url"}};
    size_t nq = 3;
    if (delimiter) q[nq++] = (sigv4_kv){"delimiter", delim};
    if (token) q[nq++] = (sigv4_kv){"continuation-token", token};
    rc = s3_call_init(&k, c, "ListObjectsV2", "GET", "", q, nq);
    struct s3_opts o = {.body_max = S3_MAX_LIST_BODY};
    if (rc == KD_OK) rc = s3_do(&k, &o, &r);
    if (rc == KD_OK) rc = s3_parse_list(r.body.data ? r.body.data : "", r.body.len, &pg);
    if (rc != KD_OK && rc != KD_ERR_CANCELLED && pages > 0) kd_fail_wrap(rc, "listing page %ld", pages + 1);
    http_resp_free(&r);
    s3_call_free(&k);
    pages++;
    if (rc == KD_OK && pg.n > c->list_max_keys - keys)
      rc = kd_fail(KD_ERR_TOOBIG, "listing s3://%s/%s: more than %zu keys (page %ld brings %zu more); stopped "
                   "(the cap on keys of one listing)", c->bucket, pfx, c->list_max_keys, pages, pg.n);
    if (rc == KD_OK) keys += pg.n;
    /* one page covers one key range: its objects and prefixes merged are in byte order */
    if (rc == KD_OK && pg.n > 1) qsort(pg.entries, pg.n, sizeof *pg.entries, s3_entry_cmp);
    for (size_t i = 0; rc == KD_OK && i < pg.n; i++) {
      if (!s3_list_fits(&pg.entries[i], pfx, plen, delimiter)) {
        ignored++;
        continue;
      }
      rc = fn(pg.entries[i].key, pg.entries[i].is_prefix, pg.entries[i].size, ud);
    }
    if (rc == KD_OK && pg.truncated) {
      if (!pg.next_token || !*pg.next_token) {
        rc = kd_fail(KD_ERR_PARSE, "listing s3://%s/%s: page %ld is truncated but has no continuation token", c->bucket,
                     pfx, pages);
      } else {
        if (token) { /* remember the token this page answered */
          if (nseen == aseen) {
            size_t na = aseen ? aseen * 2 : 16;
            uint64_t *ns = realloc(seen, na * sizeof *ns);
            if (!ns) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
            else seen = ns, aseen = na;
          }
          if (rc == KD_OK) seen[nseen++] = s3_token_hash(token);
        }
        uint64_t h = s3_token_hash(pg.next_token);
        for (size_t i = 0; rc == KD_OK && i < nseen; i++)
          if (seen[i] == h)
            rc = kd_fail(KD_ERR_PARSE, "listing s3://%s/%s: page %ld names as next the continuation token page %zu "
                         "was requested with (the server's tokens go round in a cycle); stopped", c->bucket, pfx, pages, i + 2);
      }
    }
    bool more = rc == KD_OK && pg.truncated;
    if (more) {
      free(token);
      token = pg.next_token;
      pg.next_token = NULL;
    }
    s3_page_free(&pg);
    if (!more) break;
  }
  if (ignored)
    kd_log(KD_LOG_WARN, "s3: listing s3://%s/%.200s at %s: ignored %zu entries the server sent outside the requested "
           "prefix or delimiter", c->bucket, pfx, c->origin, ignored);
  free(seen);
  free(token);
  return rc;
}

/* ---- conditional PUT: create only if absent ---- */

struct s3_cmp {
  const char *want;
  size_t n, got;
  bool same;
};

static kd_rc s3_cmp_sink(const char *p, size_t n, void *ud) {
  struct s3_cmp *m = ud;
  if (n > m->n - m->got || memcmp(m->want + m->got, p, n) != 0) {
    m->same = false;
    return kd_fail(KD_ERR_CONFLICT, "different bytes"); /* stop reading */
  }
  m->got += n;
  return KD_OK;
}

/* One PUT with If-None-Match: *. KD_ERR_CONFLICT on 412, KD_ERR_UNSUPPORTED on 501 or
 * NotImplemented; *attempts is how many attempts went out. */
static kd_rc s3_put_if_absent(s3_client *c, const char *key, const void *p, size_t n, bool lock, int *attempts,
                              char *version, size_t version_len) {
  struct s3_call k;
  struct http_resp r = {0};
  char hash[65];
  static const char *const hdrs[] = {"If-None-Match: *", NULL};
  sigv4_sha256_hex(p, n, hash);
  kd_rc rc = s3_call_init(&k, c, "PutObject (If-None-Match: *)", "PUT", key, NULL, 0);
  k.payload_hash = hash;
  k.mutating = true;
  k.headers = hdrs;
  s3_call_lock(&k, p, n, true, lock);
  struct s3_opts o = {.body = p ? p : "", .body_len = n, .streaming = n > S3_SMALL_BODY};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (version) snprintf(version, version_len, "%s", rc == KD_OK ? k.version_id : "");
  if (rc != KD_OK && r.status == 412)
    rc = kd_fail(KD_ERR_CONFLICT, "PutObject s3://%s/%s at %s: an object with this key already exists (HTTP 412 "
                 "PreconditionFailed to If-None-Match: *)", c->bucket, key, c->origin);
  else if (rc != KD_OK && (r.status == 501 || (r.status >= 400 && strstr(kd_errmsg(), "NotImplemented"))))
    rc = kd_fail(KD_ERR_UNSUPPORTED, "PutObject s3://%s/%s at %s: the server does not implement conditional writes "
                 "(If-None-Match: *, HTTP %ld): it cannot create objects exclusively", c->bucket, key, c->origin, r.status);
  *attempts = r.attempts;
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

/* Find out once whether the server honours If-None-Match: * (see s3.h): a probe object next to
 * key, put conditionally twice (the second must be refused), then deleted. */
static kd_rc s3_probe_conditional(s3_client *c, const char *key) {
  int state = atomic_load(&c->cond_put);
  if (state == S3_COND_HONOURED) return KD_OK;
  if (state == S3_COND_IGNORED)
    return kd_fail(KD_ERR_UNSUPPORTED, "S3 server %s ignores If-None-Match: * on PutObject (a second conditional PUT "
                   "of one key succeeded): it cannot create objects exclusively", c->origin);
  if (state == S3_COND_NOT_IMPLEMENTED)
    return kd_fail(KD_ERR_UNSUPPORTED, "S3 server %s does not implement If-None-Match: * on PutObject: it cannot "
                   "create objects exclusively", c->origin);
  unsigned char rnd[8];
  char name[sizeof S3_PROBE_PREFIX + 17];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return kd_fail(KD_ERR_IO, "no random bytes for the probe's name");
  snprintf(name, sizeof name, "%s%02x%02x%02x%02x%02x%02x%02x%02x", S3_PROBE_PREFIX, rnd[0], rnd[1], rnd[2], rnd[3],
           rnd[4], rnd[5], rnd[6], rnd[7]);
  const char *slash = strrchr(key, '/');
  size_t dl = slash ? (size_t)(slash - key + 1) : 0;
  kd_buf probe = KD_BUF_INIT(SIGV4_MAX_CANONICAL);
  kd_rc rc = kd_buf_add(&probe, key, dl);
  if (rc == KD_OK) rc = kd_buf_adds(&probe, name);
  if (rc != KD_OK) {
    kd_buf_free(&probe);
    return rc;
  }
  static const char body[] = "kcmdr: does this server honour If-None-Match: *? (deleted at once)\n";
  int attempts;
  bool written = false;
  char version[256] = "", version2[256] = "";
  /* never locked (it goes at once); in a versioned bucket (object lock) its versions are deleted */
  rc = s3_put_if_absent(c, probe.data, body, sizeof body - 1, false, &attempts, version, sizeof version);
  if (rc == KD_OK || rc == KD_ERR_CONFLICT) { /* 412 on a fresh name: an earlier attempt of ours landed */
    written = true;
    rc = s3_put_if_absent(c, probe.data, body, sizeof body - 1, false, &attempts, version2, sizeof version2);
    if (rc == KD_OK) {
      atomic_store(&c->cond_put, S3_COND_IGNORED);
      rc = kd_fail(KD_ERR_UNSUPPORTED, "S3 server %s ignores If-None-Match: * on PutObject (a second conditional PUT "
                   "of one key succeeded): it cannot create objects exclusively", c->origin);
    } else if (rc == KD_ERR_CONFLICT) {
      atomic_store(&c->cond_put, S3_COND_HONOURED);
      kd_clear_error();
      rc = KD_OK;
    }
  }
  if (rc == KD_ERR_UNSUPPORTED && atomic_load(&c->cond_put) == S3_COND_UNKNOWN)
    atomic_store(&c->cond_put, S3_COND_NOT_IMPLEMENTED);
  if (written) {
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", kd_errmsg());
    kd_rc d = KD_OK;
    if (version2[0]) d = s3_delete_version(c, probe.data, version2);
    if (d == KD_OK) d = version[0] ? s3_delete_version(c, probe.data, version) : s3_delete(c, probe.data);
    if (d != KD_OK)
      kd_log(KD_LOG_WARN, "s3: could not delete the probe object s3://%s/%s: %s", c->bucket, probe.data, kd_errmsg());
    if (rc != KD_OK) kd_fail(rc, "%s", saved);
    else kd_clear_error();
  }
  kd_buf_free(&probe);
  return rc;
}

kd_rc s3_put_new(s3_client *c, const char *key, const void *p, size_t n) {
  kd_rc rc = s3_probe_conditional(c, key);
  if (rc != KD_OK) return rc;
  int attempts = 0;
  rc = s3_put_if_absent(c, key, p, n, true, &attempts, NULL, 0);
  if (rc == KD_ERR_CONFLICT && attempts > 1 && n <= S3_SMALL_BODY) {
    /* an earlier attempt may have been applied and its answer lost: the object tells whose it is */
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", kd_errmsg());
    struct s3_cmp m = {p ? p : "", n, 0, true};
    kd_rc g = s3_get(c, key, s3_cmp_sink, &m);
    if (g == KD_OK && m.same && m.got == n) {
      kd_log(KD_LOG_INFO, "s3: PutObject s3://%s/%s: 412 on attempt %d holds our own bytes: an earlier attempt "
             "created it", c->bucket, key, attempts);
      kd_clear_error();
      return KD_OK;
    }
    rc = kd_fail(KD_ERR_CONFLICT, "%s", saved);
  } else if (rc == KD_ERR_CONFLICT && attempts > 1) {
    kd_fail_wrap(rc, "after %d attempts (an earlier one may have created it; objects over 1 MiB are not compared)",
                 attempts);
  }
  return rc;
}

/* ---- writer: one PUT when small, else a multipart upload ---- */

struct s3_part {
  char *etag;
};

struct s3_writer {
  s3_client *c;
  char *key;
  char *upload_id;
  char lock_mode[16];     /* what CreateMultipartUpload asked for ("" = no lock) */
  char lock_until[21];
  char version_id[256];   /* of the completed object, when the bucket is versioned */
  struct s3_part *parts;
  int nparts;
  char *buf; /* the current part */
  size_t len, cap;
  uint64_t size;
};

size_t s3_part_size(int n) {
  int shift = (n - 1) / 1000;
  if (shift > 9) shift = 9;
  return (size_t)S3_PART_SIZE << shift;
}

kd_rc s3_writer_open(s3_client *c, const char *key, s3_writer **out) {
  *out = NULL;
  s3_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->key = kd_strdup(key))) {
    free(w);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  w->c = c;
  w->cap = s3_part_size(1);
  *out = w;
  return KD_OK;
}

uint64_t s3_writer_size(const s3_writer *w) { return w->size; }

static kd_rc s3_initiate(s3_writer *w) {
  struct s3_call k;
  struct http_resp r = {0};
  kd_buf id = KD_BUF_INIT(4096);
  sigv4_kv q[] = {{"uploads", NULL}};
  kd_rc rc = s3_call_init(&k, w->c, "CreateMultipartUpload", "POST", w->key, q, 1);
  k.mutating = true;
  s3_call_lock(&k, NULL, 0, false, true);
  snprintf(w->lock_mode, sizeof w->lock_mode, "%s", k.lock.mode);
  snprintf(w->lock_until, sizeof w->lock_until, "%s", k.lock.until);
  /* repeated after a failure it may leave an empty upload behind, never a visible object */
  struct s3_opts o = {.body = "", .body_len = 0, .idem = HTTP_IDEM_YES};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK) {
    rc = s3_parse_field(r.body.data ? r.body.data : "", r.body.len, "InitiateMultipartUploadResult/UploadId", &id);
    if (rc == KD_OK && id.len == 0) rc = kd_fail(KD_ERR_PARSE, "an empty UploadId");
    if (rc != KD_OK) kd_fail_wrap(rc, "starting a multipart upload of s3://%s/%s", w->c->bucket, w->key);
  }
  if (rc == KD_OK && !(w->upload_id = kd_buf_steal(&id))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_buf_free(&id);
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

static kd_rc s3_upload_part(s3_writer *w) {
  struct s3_call k;
  struct http_resp r = {0};
  char num[16], hash[65];
  if (w->nparts >= S3_MAX_PARTS)
    return kd_fail(KD_ERR_TOOBIG, "s3://%s/%s: more than %d parts", w->c->bucket, w->key, S3_MAX_PARTS);
  struct s3_part *np = realloc(w->parts, (size_t)(w->nparts + 1) * sizeof *np);
  if (!np) return kd_fail(KD_ERR_NOMEM, "out of memory");
  w->parts = np;
  snprintf(num, sizeof num, "%d", w->nparts + 1);
  sigv4_sha256_hex(w->buf ? w->buf : "", w->len, hash);
  sigv4_kv q[] = {{"partNumber", num}, {"uploadId", w->upload_id}};
  kd_rc rc = s3_call_init(&k, w->c, "UploadPart", "PUT", w->key, q, 2);
  k.payload_hash = hash;
  k.mutating = true;
  s3_call_lock(&k, w->buf, w->len, true, false); /* Content-MD5 on every part */
  struct s3_opts o = {.body = w->buf ? w->buf : "", .body_len = w->len, .streaming = true, .idem = HTTP_IDEM_YES};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK && (!r.etag || !*r.etag)) rc = kd_fail(KD_ERR_PARSE, "part %s of s3://%s/%s: no ETag in the answer", num, w->c->bucket, w->key);
  if (rc == KD_OK && !(w->parts[w->nparts].etag = kd_strdup(r.etag))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  if (rc == KD_OK) {
    w->nparts++;
    w->len = 0;
    w->cap = s3_part_size(w->nparts + 1);
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

kd_rc s3_writer_write(s3_writer *w, const void *p, size_t n) {
  kd_rc rc = KD_OK;
  const char *s = p;
  if (w->c->cancel && *w->c->cancel) return kd_fail(KD_ERR_CANCELLED, "upload of s3://%s/%s cancelled", w->c->bucket, w->key);
  while (n > 0) {
    if (!w->buf || w->len == w->cap) {
      if (w->buf && w->len == w->cap) { /* a full part: send it */
        if (!w->upload_id && (rc = s3_initiate(w)) != KD_OK) return rc;
        if ((rc = s3_upload_part(w)) != KD_OK) return rc;
      }
      char *nb = realloc(w->buf, w->cap);
      if (!nb) return kd_fail(KD_ERR_NOMEM, "out of memory for a %zu-byte upload part", w->cap);
      w->buf = nb;
    }
    size_t k = w->cap - w->len < n ? w->cap - w->len : n;
    memcpy(w->buf + w->len, s, k);
    w->len += k;
    w->size += k;
    s += k;
    n -= k;
  }
  return KD_OK;
}

static void s3_abort_upload(s3_writer *w) {
  if (!w->upload_id) return;
  struct s3_call k;
  struct http_resp r = {0};
  sigv4_kv q[] = {{"uploadId", w->upload_id}};
  char saved[1024];
  snprintf(saved, sizeof saved, "%s", kd_errmsg()); /* the failure that led here stays the message */
  kd_rc rc = s3_call_init(&k, w->c, "AbortMultipartUpload", "DELETE", w->key, q, 1);
  struct s3_opts o = {0};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc != KD_OK && rc != KD_ERR_NOTFOUND)
    kd_log(KD_LOG_WARN, "s3: could not abort multipart upload %s of s3://%s/%s (it stays until the bucket's lifecycle "
                        "removes it): %s", w->upload_id, w->c->bucket, w->key, kd_errmsg());
  http_resp_free(&r);
  s3_call_free(&k);
  kd_fail(KD_OK, "%s", saved);
}

static void s3_writer_free(s3_writer *w) {
  for (int i = 0; i < w->nparts; i++) free(w->parts[i].etag);
  free(w->parts);
  free(w->buf);
  free(w->upload_id);
  free(w->key);
  free(w);
}

static kd_rc s3_complete(s3_writer *w) {
  struct s3_call k;
  struct http_resp r = {0};
  kd_buf body = KD_BUF_INIT((size_t)S3_MAX_PARTS * 400 + 256);
  char hash[65];
  sigv4_kv q[] = {{"uploadId", w->upload_id}};
  kd_rc rc = kd_buf_adds(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
  for (int i = 0; rc == KD_OK && i < w->nparts; i++) {
    rc = kd_buf_addf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
    for (const char *e = w->parts[i].etag; rc == KD_OK && *e; e++) /* ETags are quoted: escape for XML */
      rc = *e == '"' ? kd_buf_adds(&body, "&quot;") : *e == '&' ? kd_buf_adds(&body, "&amp;")
           : *e == '<' ? kd_buf_adds(&body, "&lt;") : kd_buf_add(&body, e, 1);
    if (rc == KD_OK) rc = kd_buf_adds(&body, "</ETag></Part>");
  }
  if (rc == KD_OK) rc = kd_buf_adds(&body, "</CompleteMultipartUpload>");
  if (rc == KD_OK) rc = s3_call_init(&k, w->c, "CompleteMultipartUpload", "POST", w->key, q, 1);
  else memset(&k, 0, sizeof k);
  sigv4_sha256_hex(body.data, body.len, hash);
  k.payload_hash = hash;
  k.mutating = true;
  struct s3_opts o = {.body = body.data, .body_len = body.len, .idem = HTTP_IDEM_YES, .streaming = true};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK) snprintf(w->version_id, sizeof w->version_id, "%s", k.version_id);
  if (rc == KD_OK) { /* a 200 may still carry an <Error> (the server failed while assembling) */
    struct s3_error e;
    if (r.body.len && s3_parse_error(r.body.data, r.body.len, &e) == KD_OK)
      rc = kd_fail(KD_ERR_HTTP, "completing the upload of s3://%s/%s: %s: %s", w->c->bucket, w->key, e.code, e.message);
  } else if (rc == KD_ERR_NOTFOUND && r.attempts > 1 && strstr(kd_errmsg(), "NoSuchUpload")) {
    /* an earlier attempt completed it and the answer was lost: the object tells */
    uint64_t size = 0;
    if (s3_head(w->c, w->key, &size) == KD_OK && size == w->size) rc = KD_OK;
    else rc = kd_fail(KD_ERR_HTTP, "completing the upload of s3://%s/%s: NoSuchUpload after a retry", w->c->bucket, w->key);
  }
  kd_buf_free(&body);
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

/* PutObjectRetention of key's version (NULL: the current one): mode until date (ISO 8601),
 * with Content-MD5 as S3 requires. */
static kd_rc s3_put_retention(s3_client *c, const char *key, const char *version, const char *mode, const char *until) {
  struct s3_call k;
  struct http_resp r = {0};
  char body[300], hash[65];
  snprintf(body, sizeof body, "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>%s</Mode>"
           "<RetainUntilDate>%s</RetainUntilDate></Retention>", mode, until);
  size_t n = strlen(body);
  sigv4_kv q[] = {{"retention", NULL}, {"versionId", version}};
  sigv4_sha256_hex(body, n, hash);
  kd_rc rc = s3_call_init(&k, c, "PutObjectRetention", "PUT", key, q, version && *version ? 2 : 1);
  k.payload_hash = hash;
  k.mutating = true;
  s3_content_md5(body, n, k.lock.md5);
  k.signed_hdrs[k.nsigned++] = (sigv4_kv){"Content-MD5", k.lock.md5};
  struct s3_opts o = {.body = body, .body_len = n, .idem = HTTP_IDEM_YES};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

/* After CompleteMultipartUpload under object lock: the object must carry the retention its
 * CreateMultipartUpload asked for. Some gateways (Ceph RGW 16.2) drop those headers for
 * multipart uploads; then the retention is set on the version just written. */
static kd_rc s3_lock_completed(s3_writer *w) {
  char mode[16];
  time_t have = 0, want = 0;
  const char *version = w->version_id[0] ? w->version_id : NULL; /* the version just written */
  kd_rc rc = kd_time_parse(w->lock_until, &want);
  if (rc == KD_OK) rc = s3_retention(w->c, w->key, version, mode, &have);
  if (rc != KD_OK) return rc;
  if (have >= want && strcmp(mode, w->lock_mode) == 0) return KD_OK;
  kd_log(KD_LOG_DEBUG, "s3: s3://%s/%s: the gateway did not apply the object lock of the multipart upload; setting it "
         "with PutObjectRetention", w->c->bucket, w->key);
  if ((rc = s3_put_retention(w->c, w->key, version, w->lock_mode, w->lock_until)) != KD_OK) return rc;
  if ((rc = s3_retention(w->c, w->key, version, mode, &have)) != KD_OK) return rc;
  if (have < want || strcmp(mode, w->lock_mode) != 0)
    return kd_fail(KD_ERR_UNSUPPORTED, "the gateway accepted but did not apply the retention (%s until %s)", w->lock_mode,
                   w->lock_until);
  return KD_OK;
}

kd_rc s3_writer_commit(s3_writer *w) {
  kd_rc rc = KD_OK;
  if (w->c->cancel && *w->c->cancel) {
    rc = kd_fail(KD_ERR_CANCELLED, "upload of s3://%s/%s cancelled", w->c->bucket, w->key);
    goto fail;
  }
  if (!w->upload_id) { /* everything fit in one part: one PUT */
    rc = s3_put(w->c, w->key, w->buf ? w->buf : "", w->len);
    if (rc != KD_OK) goto fail;
    s3_writer_free(w);
    return KD_OK;
  }
  if (w->len > 0 && (rc = s3_upload_part(w)) != KD_OK) goto fail;
  if ((rc = s3_complete(w)) != KD_OK) goto fail;
  if (w->lock_mode[0] && (rc = s3_lock_completed(w)) != KD_OK) { /* visible, not locked: say so, never hide it */
    rc = kd_fail_wrap(rc, "s3://%s/%s was uploaded but its object lock could not be set", w->c->bucket, w->key);
    s3_writer_free(w);
    return rc;
  }
  s3_writer_free(w);
  return KD_OK;
fail:
  kd_fail_wrap(rc, "uploading s3://%s/%s", w->c->bucket, w->key);
  s3_abort_upload(w);
  s3_writer_free(w);
  return rc;
}

void s3_writer_abort(s3_writer *w) {
  if (!w) return;
  s3_abort_upload(w);
  s3_writer_free(w);
}

/* ---- S3 Object Lock ---- */

struct s3x_lock {
  struct s3_lock_config *cfg;
  bool root;
};

static kd_rc s3x_lock_cb(const char *path, const char *text, size_t len, bool leaf, void *ud) {
  struct s3x_lock *x = ud;
  if (strcmp(path, "ObjectLockConfiguration") == 0) {
    x->root = true;
  } else if (strchr(path, '/') == NULL) {
    return kd_fail(KD_ERR_PARSE, "the answer is <%s>, not <ObjectLockConfiguration>", path);
  } else if (leaf && strcmp(path, "ObjectLockConfiguration/ObjectLockEnabled") == 0) {
    x->cfg->enabled = len == 7 && memcmp(text, "Enabled", 7) == 0;
  } else if (leaf && strcmp(path, "ObjectLockConfiguration/Rule/DefaultRetention/Mode") == 0) {
    s3x_copy(x->cfg->default_mode, sizeof x->cfg->default_mode, text, len);
  } else if (leaf && (strcmp(path, "ObjectLockConfiguration/Rule/DefaultRetention/Days") == 0 ||
                      strcmp(path, "ObjectLockConfiguration/Rule/DefaultRetention/Years") == 0)) {
    long v = 0;
    if (len == 0 || len > 6) return kd_fail(KD_ERR_PARSE, "a bad DefaultRetention period");
    for (size_t i = 0; i < len; i++) {
      if (text[i] < '0' || text[i] > '9') return kd_fail(KD_ERR_PARSE, "a bad DefaultRetention period");
      v = v * 10 + (text[i] - '0');
    }
    x->cfg->default_days = (int)(path[strlen(path) - 1] == 's' && path[strlen(path) - 2] == 'r' ? v * 365 : v);
  }
  return KD_OK;
}

kd_rc s3_parse_lock_config(const char *xml, size_t len, struct s3_lock_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  struct s3x_lock x = {cfg, false};
  kd_rc rc = s3x_walk(xml, len, s3x_lock_cb, &x);
  if (rc != KD_OK) return kd_fail_wrap(rc, "reading an ObjectLockConfiguration");
  if (!x.root) return kd_fail(KD_ERR_PARSE, "no ObjectLockConfiguration in the answer");
  return KD_OK;
}

kd_rc s3_check_lock(s3_client *c) {
  struct s3_call k;
  struct http_resp r = {0};
  struct s3_lock_config cfg;
  sigv4_kv q[] = {{"object-lock", NULL}};
  kd_rc rc = s3_call_init(&k, c, "GetObjectLockConfiguration", "GET", "", q, 1);
  struct s3_opts o = {.retries = 2};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc != KD_OK && strstr(kd_errmsg(), "ObjectLockConfigurationNotFound")) {
    rc = kd_fail(KD_ERR_CONFIG, "object lock is configured on this location (kcmdr.io/object-lock) but bucket %s at %s "
                 "has no object lock (ObjectLockConfigurationNotFoundError): S3 turns it on only when a bucket is "
                 "created (x-amz-bucket-object-lock-enabled: true); use such a bucket", c->bucket, c->origin);
  } else if (rc != KD_OK) {
    kd_fail_wrap(rc, "reading the object lock configuration of bucket %s", c->bucket);
  } else if ((rc = s3_parse_lock_config(r.body.data ? r.body.data : "", r.body.len, &cfg)) != KD_OK) {
    kd_fail_wrap(rc, "bucket %s at %s", c->bucket, c->origin);
  } else if (!cfg.enabled) {
    rc = kd_fail(KD_ERR_CONFIG, "object lock is configured on this location (kcmdr.io/object-lock) but bucket %s at %s "
                 "does not have ObjectLockEnabled=Enabled: S3 turns it on only when a bucket is created "
                 "(x-amz-bucket-object-lock-enabled: true); use such a bucket", c->bucket, c->origin);
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

kd_rc s3_retention(s3_client *c, const char *key, const char *version, char mode[16], time_t *until) {
  struct s3_call k;
  struct http_resp r = {0};
  sigv4_kv vq[] = {{"versionId", version}};
  mode[0] = '\0';
  *until = 0;
  kd_rc rc = s3_call_init(&k, c, "HeadObject", "HEAD", key, vq, version ? 1 : 0);
  struct s3_opts o = {0};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK && k.lock_until[0]) {
    if (kd_time_parse(k.lock_until, until) != KD_OK)
      rc = kd_fail(KD_ERR_PARSE, "HEAD s3://%s/%s: a bad x-amz-object-lock-retain-until-date", c->bucket, key);
    else
      snprintf(mode, 16, "%s", k.lock_mode);
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

/* ---- the first version of a key (ListObjectVersions) ---- */

struct s3x_versions {
  struct s3_versions_page *pg;
  char key[S3_MAX_XML_TEXT > 1100 ? 1100 : S3_MAX_XML_TEXT], version[256];
};

static kd_rc s3x_versions_cb(const char *path, const char *text, size_t len, bool leaf, void *ud) {
  struct s3x_versions *x = ud;
  bool v = strncmp(path, "ListVersionsResult/Version/", 27) == 0, dm = strncmp(path, "ListVersionsResult/DeleteMarker/", 32) == 0;
  if (leaf && (v || dm)) {
    const char *field = path + (v ? 27 : 32);
    if (strcmp(field, "Key") == 0) s3x_copy(x->key, sizeof x->key, text, len);
    else if (strcmp(field, "VersionId") == 0) s3x_copy(x->version, sizeof x->version, text, len);
  } else if (strcmp(path, "ListVersionsResult/Version") == 0 || strcmp(path, "ListVersionsResult/DeleteMarker") == 0) {
    struct s3_versions_page *pg = x->pg;
    if (strcmp(x->key, pg->key) == 0 && x->version[0]) {
      pg->any = true;
      if (path[19] == 'V') snprintf(pg->oldest, sizeof pg->oldest, "%s", x->version); /* newest first: the last is the oldest */
    }
    x->key[0] = x->version[0] = '\0';
  } else if (leaf && strcmp(path, "ListVersionsResult/IsTruncated") == 0) {
    x->pg->truncated = len == 4 && memcmp(text, "true", 4) == 0;
  } else if (leaf && strcmp(path, "ListVersionsResult/NextKeyMarker") == 0) {
    s3x_copy(x->pg->next_key, sizeof x->pg->next_key, text, len);
  } else if (leaf && strcmp(path, "ListVersionsResult/NextVersionIdMarker") == 0) {
    s3x_copy(x->pg->next_version, sizeof x->pg->next_version, text, len);
  } else if (strchr(path, '/') == NULL && strcmp(path, "ListVersionsResult") != 0) {
    return kd_fail(KD_ERR_PARSE, "the answer is <%s>, not <ListVersionsResult>", path);
  }
  return KD_OK;
}

kd_rc s3_parse_versions(const char *xml, size_t len, struct s3_versions_page *pg) {
  pg->truncated = false;
  pg->next_key[0] = pg->next_version[0] = '\0';
  struct s3x_versions *x = calloc(1, sizeof *x);
  if (!x) return kd_fail(KD_ERR_NOMEM, "out of memory");
  x->pg = pg;
  kd_rc rc = s3x_walk(xml, len, s3x_versions_cb, x);
  free(x);
  return rc != KD_OK ? kd_fail_wrap(rc, "reading a ListObjectVersions answer") : KD_OK;
}

kd_rc s3_first_version(s3_client *c, const char *key, char *version, size_t n, bool *any) {
  struct s3_versions_page pg;
  kd_rc rc = KD_OK;
  memset(&pg, 0, sizeof pg);
  snprintf(pg.key, sizeof pg.key, "%s", key);
  for (int page = 0;; page++) {
    if (page >= S3_MAX_VERSION_PAGES) {
      rc = kd_fail(KD_ERR_TOOBIG, "listing the versions of s3://%s/%s: more than %d pages", c->bucket, key, page);
      break;
    }
    struct s3_call k;
    struct http_resp r = {0};
    char km[sizeof pg.next_key], vm[sizeof pg.next_version];
    snprintf(km, sizeof km, "%s", pg.next_key);
    snprintf(vm, sizeof vm, "%s", pg.next_version);
    sigv4_kv q[5] = {{"versions", NULL}, {"prefix", key}};
    size_t nq = 2;
    if (page > 0) {
      q[nq++] = (sigv4_kv){"key-marker", km};
      if (vm[0]) q[nq++] = (sigv4_kv){"version-id-marker", vm};
    }
    rc = s3_call_init(&k, c, "ListObjectVersions", "GET", "", q, nq);
    struct s3_opts o = {.body_max = S3_MAX_LIST_BODY};
    if (rc == KD_OK) rc = s3_do(&k, &o, &r);
    if (rc == KD_OK) rc = s3_parse_versions(r.body.data ? r.body.data : "", r.body.len, &pg);
    http_resp_free(&r);
    s3_call_free(&k);
    /* past our key (markers are in key order): the rest are longer keys under the same prefix */
    if (rc != KD_OK || !pg.truncated || !pg.next_key[0] || strcmp(pg.next_key, key) > 0) break;
  }
  if (rc == KD_OK) {
    snprintf(version, n, "%s", pg.oldest);
    *any = pg.any;
  }
  return rc;
}
