/* fuzz_sigv4.c — libFuzzer target for the SigV4 canonicaliser: any bytes, read as a method line,
 * a path line and then lines "q<name>=<value>" (query) or "h<name>:<value>" (header), must sign
 * or fail cleanly; the encoded path and query hold only unreserved characters, '/', '&', '=' and
 * %XX, and the secret never appears in the result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define MAXKV 64

static bool upper_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

static void check_encoded(const char *s, size_t n, const char *extra) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= n || !upper_hex(s[i + 1]) || !upper_hex(s[i + 2])) abort();
      i += 2;
      continue;
    }
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("-._~", c)) ||
              (c && strchr(extra, c));
    if (!ok) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  /* raw bytes through the encoder, NUL included */
  kd_buf enc = KD_BUF_INIT(1 << 20);
  if (sigv4_encode(&enc, (const char *)data, size, true) == KD_OK && enc.data) check_encoded(enc.data, enc.len, "/");
  kd_buf_free(&enc);

  char *lines[2 + MAXKV];
  size_t nl = 0;
  for (char *p = text; p && nl < KD_ARRAY_LEN(lines);) {
    lines[nl++] = p;
    p = strchr(p, '\n');
    if (p) *p++ = '\0';
  }
  sigv4_kv q[MAXKV], h[MAXKV];
  size_t nq = 0, nh = 0;
  for (size_t i = 2; i < nl; i++) {
    char *l = lines[i];
    char *sep = l[0] == 'q' ? strchr(l, '=') : l[0] == 'h' ? strchr(l, ':') : NULL;
    if (l[0] == 'q') q[nq++] = (sigv4_kv){l + 1, sep ? (*sep = '\0', sep + 1) : NULL};
    else if (l[0] == 'h' && sep) h[nh++] = (sigv4_kv){l + 1, (*sep = '\0', sep + 1)};
  }
  sigv4_req r = {nl > 0 ? lines[0] : "", nl > 1 ? lines[1] : "/", q, nq, h, nh, SIGV4_EMPTY_SHA256};
  kd_buf creq = KD_BUF_INIT(SIGV4_MAX_CANONICAL), sh = KD_BUF_INIT(SIGV4_MAX_CANONICAL);
  if (sigv4_canonical_request(&r, &creq, &sh) == KD_OK) {
    /* line 2 (path) and line 3 (query) are encoded */
    char *p1 = strchr(creq.data, '\n');
    if (!p1) abort();
    char *p2 = strchr(p1 + 1, '\n');
    if (!p2) abort();
    char *p3 = strchr(p2 + 1, '\n');
    if (!p3) abort();
    check_encoded(p1 + 1, (size_t)(p2 - p1 - 1), "/");
    check_encoded(p2 + 1, (size_t)(p3 - p2 - 1), "&=");
  }
  static const char secret[] = "fuzz-secret-KEY/0123456789";
  sigv4_key k = {"AKIDFUZZ", secret, "us-east-1", "s3"};
  kd_buf auth = KD_BUF_INIT(1 << 20);
  if (sigv4_authorization(&r, &k, "20240101T000000Z", &auth) == KD_OK && strstr(auth.data, secret)) abort();
  if (strstr(kd_errmsg(), secret)) abort();
  kd_buf_free(&auth);
  kd_buf_free(&creq);
  kd_buf_free(&sh);
  free(text);
  return 0;
}
