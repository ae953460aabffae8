/* http.c — the HTTP transport under the Kubernetes and S3 clients (see http.h). */
#include "http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_DEFAULT_IDLE 64
#define STREAM_BUFFER (256 * 1024) /* curl's receive/send buffer when bodies stream */

struct http_pool {
  pthread_mutex_t lock; /* guards idle, nidle */
  CURL **idle;
  int nidle, max_idle;
  CURLSH *share; /* TLS sessions and DNS answers shared by every handle */
  pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
  char *user_agent;
  atomic_long requests;
};

struct http_hdrs {
  struct curl_slist *list;
  size_t bytes;
  bool has_ctype;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- pool ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud) {
  (void)h, (void)access;
  http_pool *p = ud;
  if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_lock(&p->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud) {
  (void)h;
  http_pool *p = ud;
  if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_unlock(&p->share_locks[data]);
}

kd_rc http_pool_new(const struct http_pool_opts *opts, http_pool **out) {
  pthread_once(&curl_once, curl_init_once);
  *out = NULL;
  http_pool *p = calloc(1, sizeof *p);
  if (!p) return kd_fail(KD_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&p->lock, NULL);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&p->share_locks[i], NULL);
  p->max_idle = opts && opts->max_idle > 0 ? opts->max_idle : POOL_DEFAULT_IDLE;
  p->idle = calloc((size_t)p->max_idle, sizeof *p->idle);
  p->user_agent = kd_strdup(opts && opts->user_agent ? opts->user_agent : "kcmdr/" KCMDR_VERSION);
  p->share = curl_share_init();
  if (!p->idle || !p->user_agent || !p->share) {
    http_pool_free(p);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
  curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  *out = p;
  return KD_OK;
}

void http_pool_free(http_pool *p) {
  if (!p) return;
  for (int i = 0; i < p->nidle; i++) curl_easy_cleanup(p->idle[i]);
  if (p->share) curl_share_cleanup(p->share); /* after every handle that used it */
  free(p->idle);
  free(p->user_agent);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&p->share_locks[i]);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

long http_pool_requests(const http_pool *p) { return atomic_load(&((http_pool *)p)->requests); }

static CURL *borrow(http_pool *p) {
  CURL *h = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->nidle > 0) h = p->idle[--p->nidle];
  pthread_mutex_unlock(&p->lock);
  return h ? h : curl_easy_init();
}

/* Give h back for reuse (its connection stays open); with keep false, close it. */
static void give_back(http_pool *p, CURL *h, bool keep) {
  if (!h) return;
  if (keep) {
    pthread_mutex_lock(&p->lock);
    if (p->nidle < p->max_idle) {
      p->idle[p->nidle++] = h;
      h = NULL;
    }
    pthread_mutex_unlock(&p->lock);
  }
  if (h) curl_easy_cleanup(h);
}

/* ---- headers ---- */

static bool header_text_ok(const char *s) { return !s || strpbrk(s, "\r\n") == NULL; }

kd_rc http_hdrs_add2(struct http_hdrs *h, const char *name, const char *prefix, const char *value) {
  if (!name || !name[0] || strpbrk(name, ":\r\n \t") || !header_text_ok(prefix) || !header_text_ok(value))
    return kd_fail(KD_ERR_INVALID, "HTTP header '%s': a name or value with a line break, or a bad name",
                   name && !strpbrk(name, "\r\n") ? name : "?");
  size_t nl = strlen(name), pl = prefix ? strlen(prefix) : 0, vl = value ? strlen(value) : 0;
  size_t len = nl + 2 + pl + vl; /* "name: " + prefix + value */
  if (len > HTTP_MAX_HEADER_BYTES || h->bytes + len > HTTP_MAX_HEADER_BYTES)
    return kd_fail(KD_ERR_TOOBIG, "HTTP header '%s' (%zu bytes) does not fit in the %u bytes allowed for all headers",
                   name, len, HTTP_MAX_HEADER_BYTES);
  char *line = malloc(len + 1);
  if (!line) return kd_fail(KD_ERR_NOMEM, "out of memory");
  memcpy(line, name, nl);
  /* "name;" is how curl sends a header with an empty value ("name:" would remove it) */
  size_t off = nl;
  if (pl + vl == 0) {
    line[off++] = ';';
  } else {
    line[off++] = ':';
    line[off++] = ' ';
    if (pl) memcpy(line + off, prefix, pl), off += pl;
    if (vl) memcpy(line + off, value, vl), off += vl;
  }
  line[off] = '\0';
  struct curl_slist *l = curl_slist_append(h->list, line);
  explicit_bzero(line, len + 1); /* may hold a token */
  free(line);
  if (!l) return kd_fail(KD_ERR_NOMEM, "out of memory");
  h->list = l;
  h->bytes += len;
  if (strcasecmp(name, "Content-Type") == 0) h->has_ctype = true;
  return KD_OK;
}

kd_rc http_hdrs_add(struct http_hdrs *h, const char *name, const char *value) {
  return http_hdrs_add2(h, name, NULL, value);
}

/* A fixed "Name: value" line from req->headers. */
static kd_rc hdrs_add_line(struct http_hdrs *h, const char *line) {
  const char *colon = strchr(line, ':');
  char name[256];
  if (!colon || (size_t)(colon - line) >= sizeof name)
    return kd_fail(KD_ERR_INVALID, "HTTP header line without a 'Name:' part");
  memcpy(name, line, (size_t)(colon - line));
  name[colon - line] = '\0';
  const char *v = colon + 1;
  while (*v == ' ' || *v == '\t') v++;
  return http_hdrs_add(h, name, v);
}

/* ---- the retry rule ---- */

bool http_idempotent(const char *method, enum http_idem idem) {
  if (idem == HTTP_IDEM_YES) return true;
  if (idem == HTTP_IDEM_NO) return false;
  static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
  for (size_t i = 0; i < KD_ARRAY_LEN(safe); i++)
    if (method && strcmp(method, safe[i]) == 0) return true;
  return false;
}

bool http_retryable(bool idempotent, enum http_outcome outcome, long status) {
  switch (outcome) {
  case HTTP_OUT_UNSENT: return true; /* nothing reached the server: repeating changes nothing */
  case HTTP_OUT_PERMANENT: return false;
  case HTTP_OUT_SENT: return idempotent;
  case HTTP_OUT_RESPONSE:
    if (status == 429) return true; /* the server says it did not process it */
    if (!idempotent) return false;
    return status == 408 || (status >= 500 && status <= 599 && status != 501 && status != 505);
  }
  return false;
}

int64_t http_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, int64_t retry_after_ms, unsigned jitter_seed) {
  if (base_ms <= 0) base_ms = 1;
  if (cap_ms < base_ms) cap_ms = base_ms;
  int64_t d = base_ms;
  for (int i = 0; i < attempt && d < cap_ms; i++) d *= 2;
  if (d > cap_ms) d = cap_ms;
  /* take off up to half: spreads clients that failed together */
  unsigned x = jitter_seed * 2654435761u + (unsigned)attempt * 40503u;
  x ^= x >> 13;
  d -= (int64_t)(x % 1000u) * (d / 2) / 1000;
  if (retry_after_ms > HTTP_MAX_RETRY_AFTER_MS) retry_after_ms = HTTP_MAX_RETRY_AFTER_MS;
  return retry_after_ms > d ? retry_after_ms : d;
}

bool http_ok(long status) { return status >= 200 && status <= 299; }

/* Sort a failed curl transfer into the outcomes the retry rule knows. */
static enum http_outcome classify(CURL *h, CURLcode cc) {
  curl_off_t pre = 0;
  long sent = 0;
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR: /* the handshake failed: no request went out */
    return HTTP_OUT_UNSENT;
  case CURLE_OPERATION_TIMEDOUT:
    /* timed out before anything was sent (connect or handshake): unsent */
    curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pre);
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
    return pre == 0 && sent == 0 ? HTTP_OUT_UNSENT : HTTP_OUT_SENT;
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
  case CURLE_NOT_BUILT_IN:
  case CURLE_BAD_FUNCTION_ARGUMENT:
  case CURLE_OUT_OF_MEMORY:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_FAILED_INIT:
    return HTTP_OUT_PERMANENT;
  default:
    return HTTP_OUT_SENT;
  }
}

/* ---- one transfer ---- */

struct xfer {
  const struct http_req *req;
  struct http_resp *resp;
  long status;      /* status line of the response being received */
  bool final;       /* that response is not 1xx */
  bool sink_used;   /* the sink took bytes: no retry */
  bool read_used;   /* the body reader was called */
  uint64_t read_total;
  size_t body_max;
  kd_rc cb_rc;      /* failure inside a callback (message recorded with kd_fail) */
};

static char *trim(char *s, char *end) {
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) end--;
  *end = '\0';
  return s;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t len = size * n;
  struct http_resp *r = x->resp;
  if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (interim ones included) */
    const char *sp = memchr(p, ' ', len);
    x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    x->final = x->status >= 200;
    free(r->etag);
    free(r->content_type);
    r->etag = r->content_type = NULL;
    r->content_length = -1;
    r->retry_after_ms = 0;
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!x->final || !colon) return len;
  char *line = malloc(len + 1);
  if (!line) {
    x->cb_rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    return 0;
  }
  memcpy(line, p, len);
  line[len] = '\0';
  char *c = line + (colon - p);
  char *name = trim(line, c);
  char *value = trim(c + 1, line + len);
  if (strcasecmp(name, "ETag") == 0) {
    free(r->etag);
    r->etag = kd_strdup(value);
  } else if (strcasecmp(name, "Content-Type") == 0) {
    free(r->content_type);
    r->content_type = kd_strdup(value);
  } else if (strcasecmp(name, "Content-Length") == 0) {
    r->content_length = strtoll(value, NULL, 10);
  } else if (strcasecmp(name, "Retry-After") == 0) {
    char *end;
    long long secs = strtoll(value, &end, 10);
    if (end == value) { /* an HTTP-date */
      time_t t = curl_getdate(value, NULL);
      secs = t > 0 ? (long long)(t - time(NULL)) : 0;
    }
    if (secs > 0 && secs < 86400) r->retry_after_ms = secs * 1000;
  }
  if (x->req->on_header) x->req->on_header(name, value, x->req->header_ud);
  explicit_bzero(line, len);
  free(line);
  return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t len = size * n;
  kd_buf *b = &x->resp->body;
  if (!http_ok(x->status)) { /* an error body: keep the start for the message, drop the rest */
    size_t room = b->len < HTTP_MAX_ERROR_BODY ? HTTP_MAX_ERROR_BODY - b->len : 0;
    if (room && kd_buf_add(b, p, len < room ? len : room) != KD_OK) {
      x->cb_rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      return 0;
    }
    return len;
  }
  if (x->req->sink) {
    x->sink_used = true;
    kd_rc rc = x->req->sink(p, len, x->req->sink_ud);
    if (rc != KD_OK) {
      x->cb_rc = rc;
      return 0;
    }
    return len;
  }
  if (b->len + len > x->body_max) {
    x->cb_rc = kd_fail(KD_ERR_TOOBIG, "%s %s: the answer is larger than %zu bytes", x->req->method, x->req->url,
                       x->body_max);
    return 0;
  }
  if (kd_buf_add(b, p, len) != KD_OK) {
    x->cb_rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    return 0;
  }
  return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t got = 0, max = size * n;
  x->read_used = true;
  kd_rc rc = x->req->body_read(buf, max, &got, x->req->body_ud);
  if (rc == KD_OK && got > max) rc = kd_fail(KD_ERR_INVALID, "%s %s: body reader overran its buffer", x->req->method, x->req->url);
  if (rc == KD_OK && x->read_total + got > x->req->body_len)
    rc = kd_fail(KD_ERR_INVALID, "%s %s: the body is longer than the %llu bytes announced", x->req->method, x->req->url,
                 (unsigned long long)x->req->body_len);
  if (rc != KD_OK) {
    x->cb_rc = rc;
    return CURL_READFUNC_ABORT;
  }
  x->read_total += got;
  return got;
}

static int on_seek(void *ud, curl_off_t offset, int origin) {
  struct xfer *x = ud;
  if (offset != 0 || origin != SEEK_SET || !x->req->body_rewind) return CURL_SEEKFUNC_CANTSEEK;
  if (x->req->body_rewind(x->req->body_ud) != KD_OK) return CURL_SEEKFUNC_FAIL;
  x->read_total = 0;
  return CURL_SEEKFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  (void)dt, (void)dn, (void)ut, (void)un;
  struct xfer *x = ud;
  return *x->req->cancel ? 1 : 0;
}

/* Set every option of one attempt on h (just reset). hdrs and cto must outlive the transfer. */
static void setup(http_pool *p, CURL *h, const struct http_req *req, const struct http_tls *tls,
                  struct curl_slist *hdrs, struct curl_slist *cto, struct xfer *x, char *errbuf, bool idem) {
  curl_easy_setopt(h, CURLOPT_SHARE, p->share);
  curl_easy_setopt(h, CURLOPT_URL, req->url);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, p->user_agent);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 15L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
  /* curl silently re-sends a request whose reused connection gave nothing back; the server may
   * have acted on it, so a non-idempotent request always gets a connection of its own */
  if (!idem) curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
  if (req->timeout_ms >= 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 60000L);
  if (req->low_speed_secs > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, req->low_speed_bytes > 0 ? req->low_speed_bytes : 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, req->low_speed_secs);
  }
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
  if (req->cancel) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
  if (req->sink) curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)STREAM_BUFFER);
  if (strcmp(req->method, "HEAD") == 0) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (strcmp(req->method, "GET") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
  if (req->body_read) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, x);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, (long)STREAM_BUFFER);
  } else if (req->body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  }
  if (tls) {
    if (tls->insecure) {
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (tls->ca_pem) {
      struct curl_blob b = {(void *)tls->ca_pem, tls->ca_pem_len, CURL_BLOB_COPY};
      curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    }
    if (tls->cert_pem && tls->key_pem) {
      struct curl_blob cb = {(void *)tls->cert_pem, tls->cert_pem_len, CURL_BLOB_COPY};
      struct curl_blob kb = {(void *)tls->key_pem, tls->key_pem_len, CURL_BLOB_COPY};
      curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
      curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
      curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
      curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (tls->proxy_url) curl_easy_setopt(h, CURLOPT_PROXY, tls->proxy_url);
    if (cto) curl_easy_setopt(h, CURLOPT_CONNECT_TO, cto);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
}

static void resp_reset(struct http_resp *r) {
  r->status = 0;
  kd_buf_reset(&r->body);
  free(r->etag);
  free(r->content_type);
  r->etag = r->content_type = NULL;
  r->content_length = -1;
  r->retry_after_ms = 0;
}

void http_resp_free(struct http_resp *r) {
  if (!r) return;
  kd_buf_free(&r->body);
  free(r->etag);
  free(r->content_type);
  r->etag = r->content_type = NULL;
}

static kd_rc cancelled(const struct http_req *req) {
  return kd_fail(KD_ERR_CANCELLED, "%s %s: stopped", req->method, req->url);
}

kd_rc http_do(http_pool *pool, const struct http_req *req, struct http_resp *resp) {
  kd_rc rc = KD_OK;
  struct http_hdrs hd = {NULL, 0, false};
  struct curl_slist *cto = NULL;
  CURL *h = NULL;
  char errbuf[CURL_ERROR_SIZE];
  memset(resp, 0, sizeof *resp);
  resp->content_length = -1;
  if (!req->method || !req->url || (req->body && req->body_read)) {
    rc = kd_fail(KD_ERR_INVALID, "http: a request needs a method and a URL, and at most one kind of body");
    goto fail;
  }
  struct xfer x = {.req = req, .resp = resp, .body_max = req->body_max ? req->body_max : HTTP_DEFAULT_BODY_MAX};
  kd_buf_init(&resp->body, x.body_max > HTTP_MAX_ERROR_BODY ? x.body_max : HTTP_MAX_ERROR_BODY);
  bool idem = http_idempotent(req->method, req->idem);
  for (int attempt = 0;; attempt++) {
    if (req->cancel && *req->cancel) {
      rc = cancelled(req);
      goto fail;
    }
    if (attempt > 0 && x.read_used && (rc = req->body_rewind(req->body_ud)) != KD_OK) goto fail;
    x.status = 0;
    x.final = false;
    x.read_used = false;
    x.read_total = 0;
    x.cb_rc = KD_OK;
    resp_reset(resp);
    resp->attempts = attempt + 1;

    /* this attempt's headers and TLS */
    const struct http_tls *tls = req->tls;
    for (const char *const *l = req->headers; l && *l; l++)
      if ((rc = hdrs_add_line(&hd, *l)) != KD_OK) goto fail;
    if (req->prepare && (rc = req->prepare(&hd, &tls, attempt, req->prepare_ud)) != KD_OK) goto fail;
    /* curl would label an in-memory body as a form; send no Content-Type unless asked */
    if (req->body && !hd.has_ctype) {
      struct curl_slist *l = curl_slist_append(hd.list, "Content-Type:");
      if (!l) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
        goto fail;
      }
      hd.list = l;
    }
    if (tls && tls->connect_to && !(cto = curl_slist_append(NULL, tls->connect_to))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    if (!(h = borrow(pool))) {
      rc = kd_fail(KD_ERR_NOMEM, "cannot create a curl handle");
      goto fail;
    }
    curl_easy_reset(h);
    errbuf[0] = '\0';
    setup(pool, h, req, tls, hd.list, cto, &x, errbuf, idem);
    atomic_fetch_add(&pool->requests, 1);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, NULL);
    curl_slist_free_all(hd.list);
    curl_slist_free_all(cto);
    hd = (struct http_hdrs){NULL, 0, false};
    cto = NULL;

    enum http_outcome out;
    if (cc == CURLE_OK) {
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
      give_back(pool, h, true);
      h = NULL;
      out = HTTP_OUT_RESPONSE;
      rc = KD_OK;
    } else {
      out = classify(h, cc);
      give_back(pool, h, false); /* the connection may be half-dead */
      h = NULL;
      if (x.cb_rc != KD_OK) { /* a sink, reader or memory failure: its message stands */
        rc = x.cb_rc;
        goto fail;
      }
      if (cc == CURLE_ABORTED_BY_CALLBACK) {
        rc = cancelled(req);
        goto fail;
      }
      rc = kd_fail(cc == CURLE_OPERATION_TIMEDOUT ? KD_ERR_TIMEOUT : KD_ERR_TRANSPORT, "%s %s: %s", req->method,
                   req->url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    bool can = attempt < req->max_retries && http_retryable(idem, out, resp->status) && !x.sink_used &&
               !(x.read_used && !req->body_rewind);
    if (!can) break;
    int64_t delay = http_backoff_ms(attempt, req->backoff_base_ms > 0 ? req->backoff_base_ms : 200,
                                    req->backoff_cap_ms > 0 ? req->backoff_cap_ms : 10000,
                                    out == HTTP_OUT_RESPONSE ? resp->retry_after_ms : 0, (unsigned)kd_now_ms());
    kd_log(KD_LOG_DEBUG, "http: %s %s: retry %d in %lld ms after %s", req->method, req->url, attempt + 1,
           (long long)delay, out == HTTP_OUT_RESPONSE ? "an error status" : kd_errmsg());
    kd_sleep_ms(delay, req->cancel);
  }
fail:
  curl_slist_free_all(hd.list);
  curl_slist_free_all(cto);
  if (h) give_back(pool, h, false);
  return rc;
}
