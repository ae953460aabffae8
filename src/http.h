/* http.h — the one HTTP transport the Kubernetes client (kube.c) and the S3 client stand on:
 * a pool of curl handles (connections and TLS sessions reused, HTTP/2 where the server offers
 * it), TLS from memory, per-attempt timeouts or low-speed limits, a cancel flag, streamed or
 * in-memory request bodies, streamed or capped in-memory response bodies, the response headers
 * callers need, and one retry loop that knows which requests may be repeated.
 *
 * Retry rule (http_retryable): an idempotent request is retried on transport failures, 408,
 * 429 and 5xx (not 501); a non-idempotent one (POST, PATCH, or anything the caller marks
 * HTTP_IDEM_NO) only when it certainly never reached the server (name resolution or connect
 * failed) or the server said it did not process it (429). Failures retrying cannot fix (bad
 * URL, certificate verification) are never retried. A request whose streamed body cannot be
 * rewound, or whose response sink already took bytes, is not retried after that point. A
 * non-idempotent request goes out on a new connection: on a reused one, curl itself would
 * silently re-send it when the connection gives nothing back, and the server may have acted.
 * Delays: capped exponential backoff with jitter, at least the server's Retry-After.
 *
 * http_do returns KD_OK whenever an HTTP response arrived, whatever its status: the caller maps
 * the status (and the error body kept in resp->body) to its own error, because only it knows
 * how to read a Kubernetes Status or an S3 <Error>. */
#ifndef KCMDR_HTTP_H
#define KCMDR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define HTTP_MAX_HEADER_BYTES (64u << 10) /* all request headers of one attempt together */
#define HTTP_MAX_ERROR_BODY (64u << 10)   /* bytes of a non-2xx body kept; the rest is dropped */
#define HTTP_DEFAULT_BODY_MAX (256u << 20) /* in-memory 2xx body cap when req.body_max is 0 */
#define HTTP_DEFAULT_RETRIES 6
#define HTTP_MAX_RETRY_AFTER_MS 60000 /* a longer Retry-After is cut to this */

typedef struct http_pool http_pool;

/* ---- pool ---- */

struct http_pool_opts {
  const char *user_agent; /* copied; NULL = "kcmdr/<version>" */
  int max_idle;           /* idle handles kept for reuse; 0 = 64 */
};
/* A pool of curl handles shared by every thread of one client (TLS sessions and DNS answers are
 * shared between handles). opts may be NULL. *out owned by the caller (http_pool_free).
 * KD_ERR_NOMEM. */
kd_rc http_pool_new(const struct http_pool_opts *opts, http_pool **out);
/* Close every connection and free the pool. No request may be running. NULL is fine. */
void http_pool_free(http_pool *p);
/* HTTP attempts sent through the pool so far (every retry counts), for metrics and tests. */
long http_pool_requests(const http_pool *p);

/* ---- request headers, (re)built before every attempt ---- */

/* The header list of one attempt. Opaque; only filled through the functions below. */
struct http_hdrs;
/* Add "name: value". KD_ERR_INVALID when name or value holds CR, LF or NUL (header injection)
 * or name is empty or holds ':'; KD_ERR_TOOBIG past HTTP_MAX_HEADER_BYTES for the whole list
 * (the message names the header, never its value); KD_ERR_NOMEM. No fixed-size buffer: a
 * 40 KiB bearer token is fine. */
kd_rc http_hdrs_add(struct http_hdrs *h, const char *name, const char *value);
/* Add "name: prefix value" without building the joined value first (Authorization: Bearer ...).
 * Same failures as http_hdrs_add. */
kd_rc http_hdrs_add2(struct http_hdrs *h, const char *name, const char *prefix, const char *value);

/* ---- TLS and connection options ---- */

struct http_tls {
  const char *ca_pem;   /* CA bundle (PEM bytes, need not be NUL-terminated); NULL = system CAs */
  size_t ca_pem_len;
  const char *cert_pem; /* client certificate and key (PEM) or NULL */
  size_t cert_pem_len;
  const char *key_pem;
  size_t key_pem_len;
  bool insecure;        /* skip certificate and host name verification */
  const char *proxy_url;  /* NULL = curl's default (the *_proxy environment variables) */
  const char *connect_to; /* curl CONNECT_TO "host:port:connect-host:connect-port" or NULL
                           * (tls-server-name: the URL names the TLS name, this the real host) */
};

/* ---- one request ---- */

enum http_idem {
  HTTP_IDEM_AUTO = 0, /* from the method: GET, HEAD, PUT, DELETE, OPTIONS yes; others (POST, PATCH) no */
  HTTP_IDEM_YES,      /* safe to repeat whatever happened (e.g. S3 CompleteMultipartUpload) */
  HTTP_IDEM_NO,       /* repeat only when surely unprocessed (connect failure, 429) */
};

/* Before every attempt (attempt 0 first): add this attempt's headers (a fresh bearer token, a
 * SigV4 signature with a fresh x-amz-date) and optionally point *tls at other TLS options
 * (e.g. a client certificate an exec plugin just renewed; the pointed-to bytes must stay valid
 * until the next call of the hook or the end of http_do). A non-KD_OK return ends http_do with
 * that code and the hook's message. */
typedef kd_rc (*http_prepare_fn)(struct http_hdrs *h, const struct http_tls **tls, int attempt, void *ud);
/* Streamed request body: copy up to max bytes into buf and set *got; *got = 0 only at the end
 * (after exactly body_len bytes). A non-KD_OK return aborts the request with that code. */
typedef kd_rc (*http_read_fn)(char *buf, size_t max, size_t *got, void *ud);
/* Go back to the first byte of the streamed body (before a retry). */
typedef kd_rc (*http_rewind_fn)(void *ud);
/* Streamed 2xx response body: called with each chunk as it arrives. Non-KD_OK stops the
 * transfer and http_do returns that code (the sink's kd_fail message kept). */
typedef kd_rc (*http_sink_fn)(const char *p, size_t n, void *ud);
/* Each header of the final (non-1xx) response of an attempt; name and value trimmed,
 * NUL-terminated, borrowed for the call. */
typedef void (*http_header_fn)(const char *name, const char *value, void *ud);

struct http_req {
  const char *method;           /* "GET", "PUT", "POST", "PATCH", "DELETE", "HEAD" */
  const char *url;              /* absolute; used in messages (must not hold secrets) */
  const char *const *headers;   /* fixed "Name: value" lines, NULL-terminated, or NULL */
  http_prepare_fn prepare;      /* optional per-attempt headers/TLS hook */
  void *prepare_ud;
  const struct http_tls *tls;   /* NULL = verify with system CAs, no client certificate */
  enum http_idem idem;

  /* body: either in memory (body, body_len) or streamed (body_read with body_len bytes) */
  const char *body;             /* NULL and body_read NULL: no body */
  uint64_t body_len;
  http_read_fn body_read;
  http_rewind_fn body_rewind;   /* NULL: not retried once body_read was called */
  void *body_ud;

  /* response: sink for 2xx bodies, else in memory (resp->body, up to body_max) */
  http_sink_fn sink;            /* NULL: buffer the 2xx body */
  void *sink_ud;
  size_t body_max;              /* 0 = HTTP_DEFAULT_BODY_MAX; over it: KD_ERR_TOOBIG, no retry */
  http_header_fn on_header;     /* optional */
  void *header_ud;

  /* limits, per attempt */
  long timeout_ms;              /* total time of one attempt; 0 = 60 s; -1 = none (use low_speed) */
  long connect_timeout_ms;      /* 0 = 10 s */
  long low_speed_bytes;         /* abort an attempt that moves fewer than this many bytes/s ... */
  long low_speed_secs;          /* ... for this many seconds; 0 = no low-speed limit */
  volatile const int *cancel;   /* non-zero: stop within about a second, KD_ERR_CANCELLED */

  /* retries */
  int max_retries;              /* retries after the first attempt; 0 = none (see HTTP_DEFAULT_RETRIES) */
  long backoff_base_ms;         /* 0 = 200 */
  long backoff_cap_ms;          /* 0 = 10000 */
};

struct http_resp {
  long status;            /* status of the last response; 0 when none arrived */
  kd_buf body;            /* 2xx without a sink: the body (NUL-terminated); non-2xx: the first
                           * HTTP_MAX_ERROR_BODY bytes of the error body (e.g. S3 <Error> XML) */
  char *etag;             /* ETag header of the last response, as sent (quotes kept), or NULL */
  int64_t content_length; /* Content-Length of the last response, -1 when absent */
  int64_t retry_after_ms; /* Retry-After of the last response in ms (seconds or HTTP-date), 0 when absent */
  char *content_type;     /* Content-Type of the last response, or NULL */
  int attempts;           /* attempts made (1 + retries) */
};

/* Send req through pool, retrying as the rule above says. *resp is always initialised here
 * (caller releases it with http_resp_free whatever the result). Returns KD_OK when a response
 * arrived (any status: see resp->status); KD_ERR_TRANSPORT (connect, TLS, reset; message
 * "METHOD URL: reason"), KD_ERR_TIMEOUT (an attempt's timeout or low-speed limit),
 * KD_ERR_CANCELLED, KD_ERR_TOOBIG (2xx body over body_max), KD_ERR_NOMEM, KD_ERR_INVALID
 * (bad request fields), or the code of a hook, reader or sink. */
kd_rc http_do(http_pool *pool, const struct http_req *req, struct http_resp *resp);
/* Release what a response owns. Safe on a zeroed or already freed response. */
void http_resp_free(struct http_resp *resp);
/* True for 200..299. */
bool http_ok(long status);

/* ---- the retry rule, pure, for tests ---- */

/* How an attempt ended. */
enum http_outcome {
  HTTP_OUT_RESPONSE,  /* a status line arrived */
  HTTP_OUT_UNSENT,    /* resolve or connect failed: the request never reached the server */
  HTTP_OUT_SENT,      /* failed after it may have reached the server: reset, timeout, no answer */
  HTTP_OUT_PERMANENT, /* retrying cannot help: bad URL, certificate verification, local error */
};
/* True when an attempt that ended with outcome (and status, for HTTP_OUT_RESPONSE) may be
 * repeated. idempotent: the request's effective idempotency (see http_idempotent). */
bool http_retryable(bool idempotent, enum http_outcome outcome, long status);
/* The effective idempotency of method under idem. */
bool http_idempotent(const char *method, enum http_idem idem);
/* Delay before retry number attempt (0-based): min(cap, base * 2^attempt) with up to half of
 * it taken off by jitter_seed (any value); at least retry_after_ms (itself cut to
 * HTTP_MAX_RETRY_AFTER_MS). Pure. */
int64_t http_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, int64_t retry_after_ms, unsigned jitter_seed);

#endif
