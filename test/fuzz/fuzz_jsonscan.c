/* fuzz_jsonscan.c — libFuzzer target: the List scanner fed arbitrary bytes, once whole and once in
 * chunks whose size the first byte picks, must never crash, leak or overrun, and must give the
 * same verdict (a malformed item over the cap may show either fault) and the same items byte
 * for byte both ways. A small item cap exercises
 * KD_ERR_TOOBIG. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

struct acc {
  kd_buf b;
};

static kd_rc add(const char *item, size_t len, void *ud) {
  struct acc *a = ud;
  char hdr[32];
  int n = snprintf(hdr, sizeof hdr, "%zu:", len);
  if (kd_buf_add(&a->b, hdr, (size_t)n) != KD_OK) return KD_ERR_TOOBIG;
  return kd_buf_add(&a->b, item, len);
}

static kd_rc run(const uint8_t *data, size_t size, size_t chunk, struct acc *a) {
  struct jscan s;
  kd_buf_init(&a->b, 1 << 22);
  jscan_init(&s, 4096, add, a);
  kd_rc rc = KD_OK;
  for (size_t off = 0; off < size && rc == KD_OK; off += chunk) {
    size_t len = size - off < chunk ? size - off : chunk;
    uint8_t *piece = malloc(len); /* its own block: a read past the chunk is caught */
    memcpy(piece, data + off, len);
    rc = jscan_feed(&s, (const char *)piece, len);
    free(piece);
  }
  if (rc == KD_OK) rc = jscan_finish(&s);
  jscan_free(&s);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = (size_t)data[0] % 23 + 1;
  struct acc whole, cut;
  kd_rc r1 = run(data + 1, size - 1, size, &whole);
  kd_rc r2 = run(data + 1, size - 1, chunk, &cut);
  /* an oversized item that is also malformed may show either fault first */
  int either = (r1 == KD_ERR_PARSE || r1 == KD_ERR_TOOBIG) && (r2 == KD_ERR_PARSE || r2 == KD_ERR_TOOBIG);
  if (r1 != r2 && !either) abort();
  if (whole.b.len != cut.b.len || (whole.b.len && memcmp(whole.b.data, cut.b.data, whole.b.len))) abort();
  kd_buf_free(&whole.b);
  kd_buf_free(&cut.b);
  return 0;
}
