/* fuzz_checksums.c — libFuzzer target for a backup's <name>-checksums.json as read from a bucket
 * anyone with write access may have changed: verify_sums_parse on arbitrary bytes must never
 * crash, overrun or leak; what it accepts lists only keys it can return again, each with 64
 * lower-case hex digits, and verify_sums_get finds every listed key (and nothing it did not
 * list: a key with a NUL cannot be asked for, so an accepted file holds none). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  verify_sums *v = NULL;
  if (verify_sums_parse((const char *)data, size, &v) != KD_OK) {
    if (v) abort(); /* a failure leaves nothing behind */
    return 0;
  }
  size_t n = verify_sums_count(v);
  for (size_t i = 0; i < n; i++) {
    const char *key = verify_sums_key(v, i), *hex = NULL;
    uint64_t sz = 0;
    if (!key || !verify_sums_get(v, key, &hex, &sz)) abort();
    if (!hex || strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64) abort();
  }
  const char *hex = NULL;
  uint64_t sz = 0;
  (void)verify_sums_get(v, "", &hex, &sz);
  verify_sums_free(v);
  return 0;
}
