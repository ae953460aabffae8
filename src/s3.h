/* s3.h — the S3 object store (BSL providers "aws" and "velero.io/aws") on the project's HTTP
 * transport (http.h) and SigV4 signer (sigv4.h). objstore.c is its only caller; keys here are
 * full keys (the location prefix included).
 *
 * Addressing: path-style (http://host/bucket/key) when asked (s3ForcePathStyle), when the
 * endpoint's host is an IP address, or when the bucket name is not a DNS label that TLS could
 * match; virtual-hosted (https://bucket.host/key) otherwise. Requests are signed afresh for every
 * attempt; payloads are hashed (x-amz-content-sha256) except streamed GETs, which have none.
 * Retries: GET/HEAD/PUT/DELETE and parts as idempotent; CreateMultipartUpload and
 * CompleteMultipartUpload too (a repeated Complete that finds NoSuchUpload checks the object).
 * Writers: the first 8 MiB stay in memory; an object that fits is one PUT, a larger one a
 * multipart upload (parts of 8 MiB, larger after 1,000 parts), aborted on any failure.
 * Errors name the operation and the object and say what S3 said: "SignatureDoesNotMatch: the
 * secret key is wrong", "NoSuchBucket: bucket X does not exist", connection refused, TLS; the
 * secret key and session token never appear in a message or a log line. */
#ifndef KCMDR_S3_H
#define KCMDR_S3_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "objstore.h"
#include "sigv4.h"
#include "util.h"

#define S3_PART_SIZE (8u << 20)       /* multipart part size (S3's minimum is 5 MiB) */
#define S3_MAX_PARTS 10000
#define S3_MAX_LIST_BODY (32u << 20)  /* one ListObjectsV2 page */
#define S3_MAX_PAGE_ENTRIES 100000    /* entries of one page (S3 sends at most 1,000) */
#define S3_MAX_XML_TEXT (64u << 10)   /* decoded text of one XML element */
#define S3_MAX_LIST_PAGES 10000L      /* pages of one listing (S3 sends up to 1,000 keys a page) */
#define S3_MAX_LIST_KEYS 1000000u     /* entries of one listing, all pages together */
#define S3_PROBE_PREFIX ".kcmdr-probe-" /* the object s3_put_new's probe writes and deletes */
#define S3_MD5_B64_LEN 25              /* a Content-MD5 value (24 base64 characters) and its NUL */
#define S3_LOCK_HEADERS 3              /* Content-MD5, x-amz-object-lock-mode, -retain-until-date */

typedef struct s3_client s3_client;
typedef struct s3_writer s3_writer;

struct s3_config {
  const char *endpoint;      /* "https://host[:port][/path]"; NULL or "" = AWS for the region */
  const char *bucket;
  const char *region;        /* NULL or "" = us-east-1 */
  bool path_style;           /* s3ForcePathStyle */
  bool insecure;             /* insecureSkipTLSVerify */
  const char *ca_pem;        /* extra CA bundle (PEM), or NULL */
  size_t ca_pem_len;
  const char *access_key;
  const char *secret_key;
  const char *session_token; /* NULL when none */
};

/* A client for one bucket (everything in cfg copied). KD_ERR_CONFIG naming the field for a bad
 * endpoint URL, bucket or region; KD_ERR_NOMEM. */
kd_rc s3_new(const struct s3_config *cfg, s3_client **out);
/* Release the client (no request may be running). NULL is fine. */
void s3_free(s3_client *c);
/* Watch *cancel (see objstore_set_cancel). */
void s3_set_cancel(s3_client *c, volatile const int *cancel);
/* "scheme://host[:port]" of the endpoint (owned by the client). */
const char *s3_endpoint(const s3_client *c);
/* The URL of key ("" = the bucket) with query q, as requests use it (for tests). */
kd_rc s3_url(const s3_client *c, const char *key, const sigv4_kv *q, size_t nq, kd_buf *url);

/* Caps of one s3_list: at most max_pages requests and max_keys entries received (0 = the
 * default S3_MAX_LIST_PAGES / S3_MAX_LIST_KEYS; tests set small ones). Set before use. */
void s3_set_list_caps(s3_client *c, long max_pages, size_t max_keys);
/* The write guard (see objstore_set_guard): when set, it is called before EVERY attempt of a
 * mutating request (PutObject, conditional PutObject, CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, DeleteObject), retries included, and a non-KD_OK answer ends the
 * call with that code before anything is sent. AbortMultipartUpload (cleaning up our own upload)
 * and reads are not guarded. NULL guard: none. Set before use. */
void s3_set_guard(s3_client *c, objstore_guard_fn guard, void *ud);

/* ListObjectsV2 with max-keys=1 under prefix: the bucket exists and these credentials may list. */
kd_rc s3_check(s3_client *c, const char *prefix);
kd_rc s3_put(s3_client *c, const char *key, const void *p, size_t n);
/* Create key only if no object has that key: one PUT with "If-None-Match: *". KD_ERR_CONFLICT
 * ("already exists") on 412. A retried PUT whose earlier attempt was applied (answer lost) gets
 * 412 too: then the object is read back and, when its bytes are ours (objects up to 1 MiB), the
 * call succeeds. Gateways that do not honour the header: once per client, before the first
 * conditional PUT, a probe object S3_PROBE_PREFIX<random> in the key's folder is put
 * conditionally twice and deleted; a 501/NotImplemented, or a second PUT that succeeds (the
 * header ignored), makes this and every later call KD_ERR_UNSUPPORTED ("cannot create objects
 * exclusively"), so exclusivity is never silently lost. */
kd_rc s3_put_new(s3_client *c, const char *key, const void *p, size_t n);
/* Streamed GET; a connection lost midway is resumed with a Range request pinned by ETag. */
kd_rc s3_get(s3_client *c, const char *key, objstore_sink_fn fn, void *ud);
kd_rc s3_head(s3_client *c, const char *key, uint64_t *size);
kd_rc s3_delete(s3_client *c, const char *key);
/* DeleteObject of one version (versionId; NULL = the current one, s3_delete). A locked version
 * is refused by S3 (403 AccessDenied: KD_ERR_FORBIDDEN). */
kd_rc s3_delete_version(s3_client *c, const char *key, const char *version);

/* ---- S3 Object Lock ----
 * With a mode set, every object this client writes carries x-amz-object-lock-mode and
 * x-amz-object-lock-retain-until-date (PutObject, conditional PutObject, CreateMultipartUpload)
 * and every body Content-MD5 (PutObject and every UploadPart), all three signed. The date is
 * until when non-zero (one date for all files of a backup), else the time of writing + days;
 * neither (or a date not in the future): the object is written without lock headers. The
 * probe of s3_put_new is never locked and its versions are deleted. Set before use. */
void s3_set_lock(s3_client *c, const char *mode, int days, time_t until);
/* What the bucket says of object lock (GET ?object-lock). */
struct s3_lock_config {
  bool enabled;          /* ObjectLockEnabled is Enabled */
  char default_mode[16]; /* Rule/DefaultRetention/Mode, "" when none */
  int default_days;      /* its Days (Years as 365 days), 0 when none */
};
/* Parse an ObjectLockConfiguration answer (pure; *cfg zeroed first). KD_ERR_PARSE for another
 * document or malformed XML. */
kd_rc s3_parse_lock_config(const char *xml, size_t len, struct s3_lock_config *cfg);
/* The bucket has object lock enabled: KD_OK; KD_ERR_CONFIG with a message naming the bucket
 * when it has none (ObjectLockConfigurationNotFoundError, or not Enabled); other failures as
 * every request's. */
kd_rc s3_check_lock(s3_client *c);
/* The retention of a version of key (HEAD; version NULL: the current one): mode ("" when none)
 * and retain-until date (0 when none). KD_ERR_NOTFOUND when absent. */
kd_rc s3_retention(s3_client *c, const char *key, const char *version, char mode[16], time_t *until);
/* The header values one request carries (pure; for tests): md5 (Content-MD5 of body[0..n), when
 * md5), mode and until (ISO 8601 UTC "2026-01-02T03:04:05Z", when lock and a date in the future:
 * until, else now + days); "" for each not sent. */
struct s3_lock_hdrs {
  char md5[S3_MD5_B64_LEN];
  char mode[16];
  char until[21];
};
void s3_lock_hdrs_build(const char *mode, int days, time_t until, time_t now, const void *body, size_t n, bool md5,
                        bool lock, struct s3_lock_hdrs *out);
/* Pinned reads (objstore under object lock): GetObject and HeadObject of one version. */
kd_rc s3_get_version(s3_client *c, const char *key, const char *version, objstore_sink_fn fn, void *ud);
kd_rc s3_head_version(s3_client *c, const char *key, const char *version, uint64_t *size);
#define S3_MAX_VERSION_PAGES 100 /* pages of one key's ListObjectVersions */
/* The oldest version of key that is an object, not a delete marker (ListObjectVersions, all
 * pages): its id into version ("" when there is none); *any: key has any version or delete
 * marker at all (also hidden ones). */
kd_rc s3_first_version(s3_client *c, const char *key, char *version, size_t n, bool *any);
/* One ListObjectVersions page for key (pure; fuzzable): fills any, oldest (carried over pages),
 * truncated and the markers of the next page. */
struct s3_versions_page {
  char key[1100];           /* the key asked for (set by the caller) */
  bool any;
  char oldest[256];
  bool truncated;
  char next_key[1100], next_version[256];
};
kd_rc s3_parse_versions(const char *xml, size_t len, struct s3_versions_page *pg);
/* Base64 of the MD5 of p[0..n) (the Content-MD5 header value) into out. */
void s3_content_md5(const void *p, size_t n, char out[S3_MD5_B64_LEN]);
/* Every key under prefix in byte order, all pages, delimiter '/' or '\0' (none). Entries that do
 * not belong to this listing (a key outside prefix; with a delimiter, an object key holding it
 * past prefix or a common prefix that is not prefix + one segment + delimiter; a common prefix
 * without one) are dropped, counted and logged, never passed to fn. KD_ERR_TOOBIG past the
 * page or key cap (s3_set_list_caps); KD_ERR_PARSE for a truncated page without a token or a
 * continuation token that was already used in this listing (a cycle); messages name the
 * bucket, prefix and page. */
kd_rc s3_list(s3_client *c, const char *prefix, char delimiter, objstore_list_fn fn, void *ud);

/* Writers: see objstore_writer_*; same contracts. */
kd_rc s3_writer_open(s3_client *c, const char *key, s3_writer **out);
kd_rc s3_writer_write(s3_writer *w, const void *p, size_t n);
uint64_t s3_writer_size(const s3_writer *w);
kd_rc s3_writer_commit(s3_writer *w);
void s3_writer_abort(s3_writer *w);
/* Size of part number n (1-based): 8 MiB, doubled every 1,000 parts. */
size_t s3_part_size(int n);

/* ---- response parsers (pure; fuzzed by test/fuzz/fuzz_s3list.c) ---- */

struct s3_entry {
  char *key; /* decoded */
  bool is_prefix;
  uint64_t size;
};
struct s3_page {
  struct s3_entry *entries; /* in document order */
  size_t n;
  bool truncated;
  char *next_token;         /* NextContinuationToken or NULL */
};
/* Parse one ListObjectsV2 answer: Contents/Key+Size, CommonPrefixes/Prefix, IsTruncated,
 * NextContinuationToken; keys URL-decoded when the answer says EncodingType url. Entities
 * &amp; &lt; &gt; &quot; &apos; &#N; &#xN; decoded; no DTDs. Caps: S3_MAX_XML_TEXT per element,
 * S3_MAX_PAGE_ENTRIES entries, 16 levels. KD_ERR_PARSE (the message says where), KD_ERR_TOOBIG,
 * KD_ERR_NOMEM; *page emptied first and owned by the caller (s3_page_free) in every case. */
kd_rc s3_parse_list(const char *xml, size_t len, struct s3_page *page);
void s3_page_free(struct s3_page *page);
/* Parse an S3 <Error> document: Code, Message, Region (each "" when absent). KD_ERR_NOTFOUND
 * when the root element is not Error; KD_ERR_PARSE for malformed XML. */
struct s3_error {
  char code[64];
  char message[512];
  char region[64];
};
kd_rc s3_parse_error(const char *xml, size_t len, struct s3_error *err);
/* The text of the element at path ("InitiateMultipartUploadResult/UploadId") into out (reset
 * first). KD_ERR_NOTFOUND when absent, KD_ERR_PARSE. */
kd_rc s3_parse_field(const char *xml, size_t len, const char *path, kd_buf *out);

#endif
