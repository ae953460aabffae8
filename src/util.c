/* util.c — error messages, capped buffers, files, base64, time and logging (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ---- */

#define KD_ERRMSG_MAX 1024
static _Thread_local char errmsg[KD_ERRMSG_MAX];

const char *kd_rc_name(kd_rc rc) {
  switch (rc) {
  case KD_OK: return "ok";
  case KD_ERR_NOMEM: return "out of memory";
  case KD_ERR_INVALID: return "invalid input";
  case KD_ERR_PARSE: return "parse error";
  case KD_ERR_TOOBIG: return "too big";
  case KD_ERR_IO: return "I/O error";
  case KD_ERR_CONFIG: return "configuration error";
  case KD_ERR_TRANSPORT: return "transport error";
  case KD_ERR_HTTP: return "HTTP error";
  case KD_ERR_NOTFOUND: return "not found";
  case KD_ERR_CONFLICT: return "conflict";
  case KD_ERR_GONE: return "gone";
  case KD_ERR_UNAUTHORIZED: return "unauthorized";
  case KD_ERR_FORBIDDEN: return "forbidden";
  case KD_ERR_INVALIDOBJ: return "invalid object";
  case KD_ERR_TIMEOUT: return "timeout";
  case KD_ERR_CANCELLED: return "cancelled";
  case KD_ERR_UNSUPPORTED: return "unsupported";
  case KD_ERR_INTEGRITY: return "integrity check failed";
  }
  return "unknown error";
}

kd_rc kd_fail(kd_rc rc, const char *fmt, ...) {
  char tmp[KD_ERRMSG_MAX]; /* the arguments may include kd_errmsg() itself */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  memcpy(errmsg, tmp, sizeof errmsg);
  return rc;
}

kd_rc kd_fail_wrap(kd_rc rc, const char *fmt, ...) {
  char prefix[512], old[KD_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, errmsg, sizeof old);
  /* bounded so that prefix and old message both fit */
  snprintf(errmsg, sizeof errmsg, "%.300s: %.700s", prefix, old[0] ? old : kd_rc_name(rc));
  return rc;
}

const char *kd_errmsg(void) { return errmsg; }

void kd_clear_error(void) { errmsg[0] = '\0'; }

/* ---- buffers ---- */

void kd_buf_init(kd_buf *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->alloc = 0;
  b->max = max;
}

kd_rc kd_buf_add(kd_buf *b, const void *p, size_t n) {
  if (n > b->max || b->len > b->max - n)
    return kd_fail(KD_ERR_TOOBIG, "buffer would exceed its cap of %zu bytes", b->max);
  size_t need = b->len + n + 1;
  if (need > b->alloc) {
    size_t a = b->alloc ? b->alloc : 256;
    while (a < need) a = a > SIZE_MAX / 2 ? need : a * 2;
    char *d = realloc(b->data, a);
    if (!d) return kd_fail(KD_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", a);
    b->data = d;
    b->alloc = a;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return KD_OK;
}

kd_rc kd_buf_adds(kd_buf *b, const char *s) { return kd_buf_add(b, s, strlen(s)); }

kd_rc kd_buf_addf(kd_buf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return kd_fail(KD_ERR_INVALID, "bad format string");
  if ((size_t)n < sizeof small) return kd_buf_add(b, small, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (!big) return kd_fail(KD_ERR_NOMEM, "out of memory formatting %d bytes", n);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  kd_rc rc = kd_buf_add(b, big, (size_t)n);
  free(big);
  return rc;
}

kd_rc kd_buf_add_json_string(kd_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  kd_rc rc = kd_buf_add(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; rc == KD_OK && i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if ((rc = kd_buf_add(b, s + run, i - run))) break;
    run = i + 1;
    char esc[7] = {'\\', (char)c, 0};
    size_t el = 2;
    if (c == '\n' || c == '\r' || c == '\t') {
      esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    } else if (c < 0x20) {
      esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
      el = 6;
    }
    rc = kd_buf_add(b, esc, el);
  }
  if (rc == KD_OK) rc = kd_buf_add(b, s + run, n - run);
  if (rc == KD_OK) rc = kd_buf_add(b, "\"", 1);
  return rc;
}

void kd_buf_consume(kd_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

void kd_buf_reset(kd_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void kd_buf_free(kd_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->alloc = 0;
}

char *kd_buf_steal(kd_buf *b) {
  char *d = b->data;
  if (!d) d = calloc(1, 1);
  b->data = NULL;
  b->len = 0;
  b->alloc = 0;
  return d;
}

/* ---- files ---- */

kd_rc kd_read_file(const char *path, size_t max, char **out, size_t *len) {
  kd_rc rc = KD_OK;
  kd_buf b = KD_BUF_INIT(max);
  char chunk[16384];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return kd_fail(KD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = kd_fail(KD_ERR_IO, "cannot read %s: %s", path, strerror(errno));
      goto fail;
    }
    if (n == 0) break;
    if ((rc = kd_buf_add(&b, chunk, (size_t)n)) != KD_OK) {
      kd_fail_wrap(rc, "reading %s", path);
      goto fail;
    }
  }
  close(fd);
  if (len) *len = b.len;
  *out = kd_buf_steal(&b);
  return *out ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
fail:
  close(fd);
  kd_buf_free(&b);
  return rc;
}

/* ---- base64 ---- */

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

kd_rc kd_base64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen) {
  unsigned char *o = malloc(inlen / 4 * 3 + 4);
  if (!o) return kd_fail(KD_ERR_NOMEM, "out of memory decoding base64");
  size_t n = 0, pad = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < inlen; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') { pad++; continue; }
    int v = b64val(c);
    if (v < 0 || pad) {
      free(o);
      return kd_fail(KD_ERR_PARSE, "invalid base64 character at offset %zu", i);
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[n++] = (unsigned char)(acc >> bits);
    }
  }
  if (bits >= 6 || pad > 2) {
    free(o);
    return kd_fail(KD_ERR_PARSE, "invalid base64 length");
  }
  o[n] = '\0';
  *out = o;
  *outlen = n;
  return KD_OK;
}

char *kd_base64_encode(const unsigned char *in, size_t len) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = malloc((len + 2) / 3 * 4 + 1);
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    o[j++] = tab[(v >> 18) & 63];
    o[j++] = tab[(v >> 12) & 63];
    o[j++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
    o[j++] = i + 2 < len ? tab[v & 63] : '=';
  }
  o[j] = '\0';
  return o;
}

/* ---- time ---- */

void kd_time_format(time_t t, char out[21]) {
  /* RFC 3339 has four-digit years: clamp to 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z (a
   * huge ttl means "never" rather than a string Kubernetes refuses, or none at all) */
  const time_t lo = (time_t)-62135596800LL, hi = (time_t)253402300799LL;
  if (t < lo) t = lo;
  if (t > hi) t = hi;
  struct tm tm;
  if (!gmtime_r(&t, &tm) || snprintf(out, 21, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec) != 20)
    memcpy(out, "0001-01-01T00:00:00Z", 21); /* not reached with the clamp; never garbage */
}

static bool digits(const char *s, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    *v = *v * 10 + (s[i] - '0');
  }
  return true;
}

kd_rc kd_time_parse(const char *s, time_t *out) {
  int Y, M, D, h, m, sec;
  if (!s || strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
      !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &h) ||
      s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return kd_fail(KD_ERR_PARSE, "not an RFC 3339 time: '%s'", s ? s : "");
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
    return kd_fail(KD_ERR_PARSE, "time out of range: '%s'", s);
  const char *p = s + 19;
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9') return kd_fail(KD_ERR_PARSE, "bad fraction in time '%s'", s);
    while (*p >= '0' && *p <= '9') p++;
  }
  long off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return kd_fail(KD_ERR_PARSE, "bad zone offset in time '%s'", s);
    off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return kd_fail(KD_ERR_PARSE, "time '%s' has no zone", s);
  }
  if (*p) return kd_fail(KD_ERR_PARSE, "trailing text in time '%s'", s);
  struct tm tm = {0};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  *out = timegm(&tm) - off;
  return KD_OK;
}

int64_t kd_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kd_sleep_ms(int64_t ms, volatile const int *stop) {
  int64_t end = kd_now_ms() + ms;
  while (!(stop && *stop)) {
    int64_t left = end - kd_now_ms();
    if (left <= 0) break;
    if (left > 100 && stop) left = 100; /* wake up to look at *stop */
    struct timespec ts = {left / 1000, (left % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
}

/* ---- strings ---- */

char *kd_strdup(const char *s) { return s ? strdup(s) : NULL; }

size_t kd_utf8_cut(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = len;
  /* step back over continuation bytes to the last lead byte */
  while (i > 0 && (u[i - 1] & 0xC0) == 0x80 && len - i < 3) i--;
  if (i == 0) return len == 0 ? 0 : ((u[0] & 0xC0) == 0x80 ? len : 0);
  unsigned char lead = u[i - 1];
  size_t need = lead < 0x80 ? 1 : (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 1;
  return len - (i - 1) >= need ? len : i - 1;
}

bool kd_streq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

/* ---- logging ---- */

static kd_log_level log_level = KD_LOG_INFO;
static bool log_json;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void kd_log_setup(kd_log_level level, bool json) {
  log_level = level;
  log_json = json;
}

bool kd_log_enabled(kd_log_level level) { return level <= log_level; }

static void json_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
}

void kd_log(kd_log_level level, const char *fmt, ...) {
  static const char *names[] = {"error", "warn", "info", "debug", "trace"};
  if (!kd_log_enabled(level)) return;
  char msg[2048], ts[40];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
  pthread_mutex_lock(&log_lock);
  if (log_json) {
    fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, names[level]);
    json_escape(stderr, msg);
    fputs("\"}\n", stderr);
  } else {
    fprintf(stderr, "%s %-5s %s\n", ts, names[level], msg);
  }
  fflush(stderr);
  pthread_mutex_unlock(&log_lock);
}

void kd_test_pause(const char *point) {
  static atomic_int paused;
  const char *want = getenv("KCMDR_TEST_PAUSE_AT");
  if (!want || strcmp(want, point) != 0 || atomic_exchange(&paused, 1)) return;
  kd_log(KD_LOG_WARN, "test hook: stopping the process at %s (KCMDR_TEST_PAUSE_AT)", point);
  raise(SIGSTOP);
}
