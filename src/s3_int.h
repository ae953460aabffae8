/* s3_int.h — what the parts of the S3 client share; private to them (included only by s3.c,
 * s3_xml.c, s3_object.c and s3_list.c; the API is s3.h):
 *   s3.c         the client: configuration, addressing, one signed request (SigV4, the object
 *                lock headers, retries through http.c) and the errors S3 answers;
 *   s3_xml.c     the small XML reader and the pure parsers of ListObjectsV2, <Error> and single
 *                fields;
 *   s3_object.c  objects: PutObject, GetObject (resumed), HeadObject, DeleteObject, the
 *                conditional PUT and its probe, the writer (one PUT or a multipart upload);
 *   s3_list.c    listings (ListObjectsV2, ListObjectVersions) and S3 Object Lock (the bucket's
 *                configuration, an object's retention). */
#ifndef KCMDR_S3_INT_H
#define KCMDR_S3_INT_H

#include "s3.h"

#include <stdatomic.h>

#include "http.h"

#define S3_SMALL_BODY (1u << 20)  /* answers of small requests (errors, initiate, complete) */

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

/* ---- one signed request (s3.c) ---- */

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

/* Set up k for operation op (named in messages) of method on key ("" = the bucket) with query
 * q[0..nq) (kept by reference): its signed path and Host. k is zeroed first, so s3_call_free is
 * always right, also after a failure (KD_ERR_NOMEM, KD_ERR_TOOBIG for an over-long key). */
kd_rc s3_call_init(struct s3_call *k, s3_client *c, const char *op, const char *method, const char *key,
                   const sigv4_kv *q, size_t nq);
void s3_call_free(struct s3_call *k);
/* Under object lock (s3_set_lock): the Content-MD5 of body[0..n) (md5) and the lock mode and
 * retain-until date (lock) as signed headers of k; nothing without object lock. */
void s3_call_lock(struct s3_call *k, const void *body, size_t n, bool md5, bool lock);
/* Send k, signed afresh for every attempt, with options o: KD_OK only for a 2xx answer (then
 * *resp holds it); else the error names the operation, the object and what S3 said (*resp holds
 * the answer when there was one; the caller frees it in every case). */
kd_rc s3_do(struct s3_call *k, const struct s3_opts *o, struct http_resp *resp);

/* ---- XML (s3_xml.c) ---- */

/* Called at the end of every element with its path of local names ("ListBucketResult/Contents/
 * Key") and its text (NUL-terminated; leaf: the element has no children). Not KD_OK: stop. */
typedef kd_rc (*s3x_fn)(const char *path, const char *text, size_t len, bool leaf, void *ud);
/* Read xml[0..len) (see s3_xml.c for what is accepted), calling fn at every element's end.
 * KD_ERR_PARSE saying the byte and what is wrong, KD_ERR_TOOBIG past S3_MAX_XML_TEXT, or fn's
 * answer. */
kd_rc s3x_walk(const char *xml, size_t len, s3x_fn fn, void *ud);
/* Copy text[0..len) into dst[n], cut and NUL-terminated, control characters as spaces (it goes
 * into messages). */
void s3x_copy(char *dst, size_t n, const char *text, size_t len);

#endif
