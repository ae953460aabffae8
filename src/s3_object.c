/* s3_object.c — S3 objects (see s3.h): PutObject, GetObject (resumed), HeadObject, DeleteObject,
 * the conditional PUT and its probe, and the writer (one PUT, or a multipart upload). */
#include "s3_int.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_GET_RESUMES 5          /* a streamed GET picks up where it broke this many times */

/* ---- PutObject, GetObject, HeadObject, DeleteObject ---- */

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
