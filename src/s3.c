/* s3.c — the S3 client on http.c and sigv4.c (see s3.h): configuration, addressing, one signed
 * request and the errors S3 answers. Objects are in s3_object.c, listings and object lock in
 * s3_list.c, the XML reader in s3_xml.c (s3_int.h holds what they share). */
#include "s3_int.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S3_LOW_SPEED_SECS 60      /* a transfer slower than 1 KiB/s for this long is dropped */

/* ======================================================================================
 * The client
 * ====================================================================================== */

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

/* ---- one signed request (struct s3_call: s3_int.h) ---- */

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

/* Set up one request (see s3_int.h). */
kd_rc s3_call_init(struct s3_call *k, s3_client *c, const char *op, const char *method, const char *key,
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

/* Release what s3_call_init set up. */
void s3_call_free(struct s3_call *k) {
  kd_buf_free(&k->path);
  kd_buf_free(&k->host);
}

/* Under object lock (s3_set_lock), give the request the headers S3 asks for: Content-MD5 of
 * body (md5: PutObject, UploadPart) and the mode and retain-until date (lock: PutObject,
 * CreateMultipartUpload), signed like every x-amz- header. Nothing without object lock. */
void s3_call_lock(struct s3_call *k, const void *body, size_t n, bool md5, bool lock) {
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

/* Send one signed request; KD_OK only for a 2xx answer (then *resp holds it). */
kd_rc s3_do(struct s3_call *k, const struct s3_opts *o, struct http_resp *resp) {
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
