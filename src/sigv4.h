/* sigv4.h — AWS Signature Version 4 for S3, pure (no I/O) on OpenSSL's SHA-256 and HMAC.
 *
 * The signer takes a request in decoded form (the path and query parameters as the caller
 * means them, not yet percent-encoded) and produces both the encoded path and query the URL
 * must carry and the Authorization header that signs exactly them, so the two can never
 * disagree. S3's encoding rules apply: every byte except A-Z a-z 0-9 - . _ ~ is %XX (upper-case
 * hex); '/' is kept in the path and encoded in query names and values; the path is neither
 * normalised nor encoded twice. Query parameters are sorted by encoded name, then value;
 * header names are lower-cased, values trimmed with inner runs of spaces collapsed, repeated
 * names joined with ',' in their order. */
#ifndef KCMDR_SIGV4_H
#define KCMDR_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_MAX_CANONICAL (1u << 20) /* cap on a canonical request (path, query and headers) */

/* One query parameter or header, decoded. A query parameter with value NULL is a bare key
 * ("?uploads"); it is signed as "uploads=". */
typedef struct sigv4_kv {
  const char *name;
  const char *value;
} sigv4_kv;

/* A request to sign. headers: every header to sign, "host" included (names in any case). */
typedef struct sigv4_req {
  const char *method;       /* "GET" */
  const char *path;         /* decoded, starts with '/': "/bucket/a key"; "" means "/" */
  const sigv4_kv *query;    /* decoded; any order */
  size_t nquery;
  const sigv4_kv *headers;
  size_t nheaders;
  const char *payload_hash; /* lower-case hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD */
} sigv4_req;

/* Who signs and for what scope. Borrowed strings; the secret never leaves this module. */
typedef struct sigv4_key {
  const char *access_key;
  const char *secret_key;
  const char *region;  /* "us-east-1" */
  const char *service; /* "s3" */
} sigv4_key;

/* Append s[0..n) percent-encoded by S3's rules to out; keep_slash keeps '/' (paths).
 * KD_ERR_TOOBIG past out's cap, KD_ERR_NOMEM. */
kd_rc sigv4_encode(kd_buf *out, const char *s, size_t n, bool keep_slash);

/* Append the canonical (sorted, encoded) query string of q to out: "a=1&b=&c=x%2Fy". It is
 * also what the URL should carry. KD_ERR_INVALID for a NULL name, KD_ERR_TOOBIG, KD_ERR_NOMEM. */
kd_rc sigv4_canonical_query(kd_buf *out, const sigv4_kv *q, size_t n);

/* Build the canonical request of r into creq and the signed-header list ("host;x-amz-date")
 * into signed_headers (both reset first; caps are the caller's). KD_ERR_INVALID for a request
 * without method or with a header without a name, KD_ERR_TOOBIG, KD_ERR_NOMEM. */
kd_rc sigv4_canonical_request(const sigv4_req *r, kd_buf *creq, kd_buf *signed_headers);

/* Build the string to sign for a canonical request (out reset first): algorithm, amz_date,
 * scope "<date>/<region>/<service>/aws4_request", hex SHA-256 of creq. */
kd_rc sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                           size_t creq_len, kd_buf *out);

/* Sign r with k at amz_date ("20150830T123600Z", which r's x-amz-date header must also carry)
 * and set out (reset first) to the whole Authorization header value: "AWS4-HMAC-SHA256
 * Credential=AKID/20150830/us-east-1/s3/aws4_request, SignedHeaders=..., Signature=<64 hex>".
 * KD_ERR_INVALID for a malformed amz_date or missing key fields; the secret never appears in a
 * message or in out. */
kd_rc sigv4_authorization(const sigv4_req *r, const sigv4_key *k, const char *amz_date, kd_buf *out);

/* Format t (UTC seconds) as an x-amz-date: "20150830T123600Z". */
void sigv4_amz_date(time_t t, char out[17]);

/* Lower-case hex SHA-256 of p[0..n) into out (NUL-terminated). */
void sigv4_sha256_hex(const void *p, size_t n, char out[65]);

#endif
