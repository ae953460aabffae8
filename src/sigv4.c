/* sigv4.c — AWS Signature Version 4 for S3 (see sigv4.h). Pure: no I/O, no global state. */
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

static const char sigv4_hex[] = "0123456789abcdef";

static bool sigv4_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

kd_rc sigv4_encode(kd_buf *out, const char *s, size_t n, bool keep_slash) {
  static const char up[] = "0123456789ABCDEF";
  kd_rc rc = KD_OK;
  size_t run = 0; /* bytes copied as they are, added in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (sigv4_unreserved(c) || (keep_slash && c == '/')) {
      run++;
      continue;
    }
    if (run && (rc = kd_buf_add(out, s + i - run, run)) != KD_OK) return rc;
    run = 0;
    char esc[3] = {'%', up[c >> 4], up[c & 15]};
    if ((rc = kd_buf_add(out, esc, 3)) != KD_OK) return rc;
  }
  if (run) rc = kd_buf_add(out, s + n - run, run);
  return rc;
}

void sigv4_sha256_hex(const void *p, size_t n, char out[65]) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(p, n, md);
  for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
    out[2 * i] = sigv4_hex[md[i] >> 4];
    out[2 * i + 1] = sigv4_hex[md[i] & 15];
  }
  out[64] = '\0';
}

void sigv4_amz_date(time_t t, char out[17]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- query ---- */

struct sigv4_qent {
  char *name; /* encoded */
  char *value;
};

static int sigv4_qcmp(const void *a, const void *b) {
  const struct sigv4_qent *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

/* Percent-encode s into a fresh string (caller frees). */
static kd_rc sigv4_encode_dup(const char *s, char **out) {
  kd_buf b = KD_BUF_INIT(SIGV4_MAX_CANONICAL);
  kd_rc rc = sigv4_encode(&b, s, strlen(s), false);
  if (rc == KD_OK && !b.data) rc = kd_buf_add(&b, "", 0);
  if (rc != KD_OK) {
    kd_buf_free(&b);
    return rc;
  }
  *out = b.data;
  return KD_OK;
}

kd_rc sigv4_canonical_query(kd_buf *out, const sigv4_kv *q, size_t n) {
  kd_rc rc = KD_OK;
  struct sigv4_qent *e = n ? calloc(n, sizeof *e) : NULL;
  if (n && !e) return kd_fail(KD_ERR_NOMEM, "out of memory sorting %zu query parameters", n);
  for (size_t i = 0; i < n; i++) {
    if (!q[i].name) {
      rc = kd_fail(KD_ERR_INVALID, "query parameter %zu has no name", i);
      goto fail;
    }
    if ((rc = sigv4_encode_dup(q[i].name, &e[i].name)) != KD_OK ||
        (rc = sigv4_encode_dup(q[i].value ? q[i].value : "", &e[i].value)) != KD_OK)
      goto fail;
  }
  if (n > 1) qsort(e, n, sizeof *e, sigv4_qcmp);
  for (size_t i = 0; i < n; i++)
    if ((rc = kd_buf_addf(out, "%s%s=%s", i ? "&" : "", e[i].name, e[i].value)) != KD_OK) goto fail;
  if (!out->data) rc = kd_buf_add(out, "", 0);
fail:
  for (size_t i = 0; e && i < n; i++) {
    free(e[i].name);
    free(e[i].value);
  }
  free(e);
  return rc;
}

/* ---- headers ---- */

struct sigv4_hent {
  char *name; /* lower case */
  const char *value;
  size_t index; /* original position: keeps repeated names in their order */
};

static int sigv4_hcmp(const void *a, const void *b) {
  const struct sigv4_hent *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->index > y->index) - (x->index < y->index);
}

static bool sigv4_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

/* Append v trimmed, inner whitespace runs collapsed to one space. */
static kd_rc sigv4_add_trimmed(kd_buf *out, const char *v) {
  kd_rc rc = KD_OK;
  const char *p = v;
  bool first = true;
  for (;;) {
    while (*p && sigv4_space(*p)) p++;
    if (!*p) break;
    const char *w = p;
    while (*p && !sigv4_space(*p)) p++;
    if (!first && (rc = kd_buf_add(out, " ", 1)) != KD_OK) return rc;
    if ((rc = kd_buf_add(out, w, (size_t)(p - w))) != KD_OK) return rc;
    first = false;
  }
  return rc;
}

kd_rc sigv4_canonical_request(const sigv4_req *r, kd_buf *creq, kd_buf *signed_headers) {
  kd_rc rc = KD_OK;
  struct sigv4_hent *h = NULL;
  kd_buf_reset(creq);
  kd_buf_reset(signed_headers);
  if (!r->method || !*r->method || !r->payload_hash) return kd_fail(KD_ERR_INVALID, "request to sign has no method or payload hash");
  if (r->nheaders && !(h = calloc(r->nheaders, sizeof *h)))
    return kd_fail(KD_ERR_NOMEM, "out of memory sorting %zu headers", r->nheaders);
  for (size_t i = 0; i < r->nheaders; i++) {
    const char *nm = r->headers[i].name;
    if (!nm || !*nm || !r->headers[i].value) {
      rc = kd_fail(KD_ERR_INVALID, "header %zu to sign has no name or value", i);
      goto fail;
    }
    size_t len = strlen(nm);
    if (!(h[i].name = malloc(len + 1))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    for (size_t j = 0; j <= len; j++) {
      char c = nm[j];
      h[i].name[j] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    h[i].value = r->headers[i].value;
    h[i].index = i;
  }
  if (r->nheaders > 1) qsort(h, r->nheaders, sizeof *h, sigv4_hcmp);

  /* method, path, query */
  const char *path = r->path && *r->path ? r->path : "/";
  if ((rc = kd_buf_adds(creq, r->method)) != KD_OK || (rc = kd_buf_add(creq, "\n", 1)) != KD_OK ||
      (rc = sigv4_encode(creq, path, strlen(path), true)) != KD_OK || (rc = kd_buf_add(creq, "\n", 1)) != KD_OK ||
      (rc = sigv4_canonical_query(creq, r->query, r->nquery)) != KD_OK || (rc = kd_buf_add(creq, "\n", 1)) != KD_OK)
    goto fail;
  /* canonical headers: one line per name, repeated names joined with ',' */
  for (size_t i = 0; i < r->nheaders; i++) {
    bool same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
    if (same) {
      if ((rc = kd_buf_add(creq, ",", 1)) != KD_OK) goto fail;
    } else {
      if (i > 0 && (rc = kd_buf_add(creq, "\n", 1)) != KD_OK) goto fail;
      if ((rc = kd_buf_addf(creq, "%s:", h[i].name)) != KD_OK) goto fail;
      if ((rc = kd_buf_addf(signed_headers, "%s%s", signed_headers->len ? ";" : "", h[i].name)) != KD_OK) goto fail;
    }
    if ((rc = sigv4_add_trimmed(creq, h[i].value)) != KD_OK) goto fail;
  }
  if (r->nheaders && (rc = kd_buf_add(creq, "\n", 1)) != KD_OK) goto fail;
  if ((rc = kd_buf_add(creq, "\n", 1)) != KD_OK || (rc = kd_buf_add(creq, signed_headers->data ? signed_headers->data : "",
                                                                     signed_headers->len)) != KD_OK ||
      (rc = kd_buf_add(creq, "\n", 1)) != KD_OK || (rc = kd_buf_adds(creq, r->payload_hash)) != KD_OK)
    goto fail;
  if (!signed_headers->data) rc = kd_buf_add(signed_headers, "", 0);
fail:
  for (size_t i = 0; h && i < r->nheaders; i++) free(h[i].name);
  free(h);
  if (rc != KD_OK) kd_fail_wrap(rc, "building the canonical request");
  return rc;
}

static bool sigv4_date_ok(const char *d) {
  if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') return false;
  for (int i = 0; i < 15; i++)
    if (i != 8 && (d[i] < '0' || d[i] > '9')) return false;
  return true;
}

/* A scope part must not break the "a/b/c" structure of the credential scope. */
static bool sigv4_scope_part_ok(const char *s) {
  if (!s || !*s) return false;
  for (; *s; s++)
    if (*s == '/' || *s == ',' || *s == ' ' || (unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e) return false;
  return true;
}

kd_rc sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                           size_t creq_len, kd_buf *out) {
  char hash[65];
  kd_buf_reset(out);
  if (!sigv4_date_ok(amz_date)) return kd_fail(KD_ERR_INVALID, "x-amz-date must look like 20150830T123600Z");
  sigv4_sha256_hex(creq, creq_len, hash);
  return kd_buf_addf(out, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date, amz_date, region, service, hash);
}

static kd_rc sigv4_hmac(const unsigned char *key, size_t klen, const char *msg, size_t mlen, unsigned char out[32]) {
  unsigned int olen = 32;
  if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &olen) || olen != 32)
    return kd_fail(KD_ERR_INVALID, "HMAC-SHA256 failed");
  return KD_OK;
}

kd_rc sigv4_authorization(const sigv4_req *r, const sigv4_key *k, const char *amz_date, kd_buf *out) {
  kd_rc rc = KD_OK;
  kd_buf creq = KD_BUF_INIT(SIGV4_MAX_CANONICAL), sh = KD_BUF_INIT(SIGV4_MAX_CANONICAL),
         sts = KD_BUF_INIT(SIGV4_MAX_CANONICAL);
  unsigned char key[32], key2[32], sig[32];
  unsigned char *secret = NULL;
  size_t slen = 0;
  kd_buf_reset(out);
  if (!k->access_key || !*k->access_key || !k->secret_key || !*k->secret_key)
    return kd_fail(KD_ERR_INVALID, "no access key or secret key to sign with");
  if (!sigv4_scope_part_ok(k->access_key) || !sigv4_scope_part_ok(k->region) || !sigv4_scope_part_ok(k->service))
    return kd_fail(KD_ERR_INVALID, "access key, region and service must be printable ASCII without '/', ',' or spaces");
  if (!sigv4_date_ok(amz_date)) return kd_fail(KD_ERR_INVALID, "x-amz-date must look like 20150830T123600Z");
  if ((rc = sigv4_canonical_request(r, &creq, &sh)) != KD_OK) goto fail;
  if ((rc = sigv4_string_to_sign(amz_date, k->region, k->service, creq.data, creq.len, &sts)) != KD_OK) goto fail;
  /* signing key: HMAC chain from "AWS4" + secret over date, region, service, "aws4_request" */
  slen = 4 + strlen(k->secret_key);
  if (!(secret = malloc(slen))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  memcpy(secret, "AWS4", 4);
  memcpy(secret + 4, k->secret_key, slen - 4);
  if ((rc = sigv4_hmac(secret, slen, amz_date, 8, key)) != KD_OK ||
      (rc = sigv4_hmac(key, 32, k->region, strlen(k->region), key2)) != KD_OK ||
      (rc = sigv4_hmac(key2, 32, k->service, strlen(k->service), key)) != KD_OK ||
      (rc = sigv4_hmac(key, 32, "aws4_request", 12, key2)) != KD_OK ||
      (rc = sigv4_hmac(key2, 32, sts.data, sts.len, sig)) != KD_OK)
    goto fail;
  char hex[65];
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = sigv4_hex[sig[i] >> 4];
    hex[2 * i + 1] = sigv4_hex[sig[i] & 15];
  }
  hex[64] = '\0';
  rc = kd_buf_addf(out, "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                   k->access_key, amz_date, k->region, k->service, sh.data, hex);
fail:
  if (secret) {
    OPENSSL_cleanse(secret, slen);
    free(secret);
  }
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(key2, sizeof key2);
  kd_buf_free(&creq);
  kd_buf_free(&sh);
  kd_buf_free(&sts);
  return rc;
}
