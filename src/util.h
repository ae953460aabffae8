/* util.h — the house conventions every kcmdr file shares: one error-code type with a
 * thread-local message, capped growing buffers, logging, time and file helpers.
 *
 * Error convention: every fallible function returns kd_rc; KD_OK (0) is success. A function
 * that fails calls kd_fail() once, at the place that knows what went wrong, and returns its code;
 * callers pass the code up (adding context with kd_failf_wrap() where useful) and clean up on one
 * `fail:` label. The message is for humans; the code is for decisions. */
#ifndef KCMDR_UTIL_H
#define KCMDR_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum kd_rc {
  KD_OK = 0,
  KD_ERR_NOMEM,        /* an allocation failed */
  KD_ERR_INVALID,      /* a bad argument or bad input from the user */
  KD_ERR_PARSE,        /* malformed data from a file or a peer */
  KD_ERR_TOOBIG,       /* a size cap was hit */
  KD_ERR_IO,           /* file or pipe I/O failed */
  KD_ERR_CONFIG,       /* configuration missing or wrong */
  KD_ERR_TRANSPORT,    /* could not reach the peer: connect, TLS, timeout, reset */
  KD_ERR_HTTP,         /* the peer answered with an error status not covered below */
  KD_ERR_NOTFOUND,     /* 404 or a missing named thing */
  KD_ERR_CONFLICT,     /* 409: already exists or stale resourceVersion */
  KD_ERR_GONE,         /* 410: resourceVersion too old */
  KD_ERR_UNAUTHORIZED, /* 401 */
  KD_ERR_FORBIDDEN,    /* 403 */
  KD_ERR_INVALIDOBJ,   /* 422: the server rejected the object */
  KD_ERR_TIMEOUT,      /* a deadline passed */
  KD_ERR_CANCELLED,    /* stopped on request (signal, lost lease) */
  KD_ERR_UNSUPPORTED,  /* a feature this build or peer does not have */
  KD_ERR_INTEGRITY,    /* stored data does not match its recorded checksum or size */
} kd_rc;

/* Short stable name of a code ("not found"); never NULL. */
const char *kd_rc_name(kd_rc rc);

/* Record a printf-style message as this thread's last error and return rc unchanged. */
kd_rc kd_fail(kd_rc rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix this thread's last error with more context ("reading kubeconfig: ...") and return rc. */
kd_rc kd_fail_wrap(kd_rc rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* This thread's last error message; "" when none. Valid until the next kd_fail on this thread. */
const char *kd_errmsg(void);

/* Forget this thread's last error. */
void kd_clear_error(void);

/* A growing byte buffer with a hard cap. Always NUL-terminated after the first add. The buffer
 * owns data; kd_buf_free releases it; kd_buf_steal hands it to the caller. */
typedef struct kd_buf {
  char *data;
  size_t len;
  size_t alloc;
  size_t max; /* hard cap on len; adding past it fails with KD_ERR_TOOBIG */
} kd_buf;

#define KD_BUF_INIT(max_bytes) {NULL, 0, 0, (max_bytes)}

/* Empty the buffer and set its cap. Owns nothing yet; never fails. */
void kd_buf_init(kd_buf *b, size_t max);
/* Append n bytes. KD_ERR_TOOBIG past the cap, KD_ERR_NOMEM; the buffer is unchanged on failure. */
kd_rc kd_buf_add(kd_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. Same failures as kd_buf_add. */
kd_rc kd_buf_adds(kd_buf *b, const char *s);
/* Append printf-style. Same failures as kd_buf_add. */
kd_rc kd_buf_addf(kd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s[0..n) as a JSON string literal, quotes included: '"', '\\', \n \r \t escaped short,
 * other bytes < 0x20 as \u00XX (NUL included); bytes >= 0x80 unchanged (byte-exact, unlike Go,
 * which also rewrites invalid UTF-8 and U+2028/9). Same failures as kd_buf_add. */
kd_rc kd_buf_add_json_string(kd_buf *b, const char *s, size_t n);
/* Drop the first n bytes (consumed input), keeping the rest. */
void kd_buf_consume(kd_buf *b, size_t n);
/* Empty without releasing memory. */
void kd_buf_reset(kd_buf *b);
/* Release memory; the buffer is empty and reusable with the same cap. */
void kd_buf_free(kd_buf *b);
/* Hand the data (NUL-terminated, possibly "" newly allocated) to the caller; NULL on no memory. */
char *kd_buf_steal(kd_buf *b);

/* Read a whole file into *out (NUL-terminated, caller frees), at most max bytes.
 * KD_ERR_IO (message names the file and errno), KD_ERR_TOOBIG, KD_ERR_NOMEM. */
kd_rc kd_read_file(const char *path, size_t max, char **out, size_t *len);

/* Decode standard or URL-safe base64 (whitespace ignored, padding optional) into *out (caller
 * frees, NUL-terminated for convenience). KD_ERR_PARSE on a bad character or length. */
kd_rc kd_base64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen);
/* Encode to standard base64 with padding; caller frees. NULL on no memory. */
char *kd_base64_encode(const unsigned char *in, size_t len);

/* Format t (UTC seconds) as RFC 3339 "2025-01-17T18:00:12Z" into out (at least 21 bytes). */
void kd_time_format(time_t t, char out[21]);
/* Parse RFC 3339 (Z or ±hh:mm offset, optional fraction) to UTC seconds. KD_ERR_PARSE if bad. */
kd_rc kd_time_parse(const char *s, time_t *out);
/* Monotonic clock in milliseconds. */
int64_t kd_now_ms(void);
/* Sleep ms milliseconds (restarted after signals unless *stop becomes true). */
void kd_sleep_ms(int64_t ms, volatile const int *stop);

/* The length of the longest prefix of s[0..len) that ends on a UTF-8 character boundary (a
 * cut message never ends in half a character). Pure. */
size_t kd_utf8_cut(const char *s, size_t len);

/* Duplicate a string; NULL in, NULL out; aborts nothing: returns NULL on no memory. */
char *kd_strdup(const char *s);
/* Compare two possibly-NULL strings; NULL equals NULL and "". */
bool kd_streq(const char *a, const char *b);

/* Logging: leveled, text or JSON lines on stderr. Never log secrets. */
typedef enum kd_log_level { KD_LOG_ERROR = 0, KD_LOG_WARN, KD_LOG_INFO, KD_LOG_DEBUG, KD_LOG_TRACE } kd_log_level;
/* Set the verbosity (messages above it are dropped) and the format. */
void kd_log_setup(kd_log_level level, bool json);
/* True when a message at level would be written. */
bool kd_log_enabled(kd_log_level level);
/* Write one log line: time, level, message. */
void kd_log(kd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Test hook: when the environment variable KCMDR_TEST_PAUSE_AT names point, the process logs it
 * and stops itself (SIGSTOP) the first time it gets there, so a test can take leadership away at
 * that exact moment and SIGCONT it. Does nothing otherwise. */
void kd_test_pause(const char *point);

#endif
