/* fuzz_cron.c — libFuzzer target: any bytes as a cron spec (NUL included: cron_parse_n takes a
 * length). When it parses, Next must return, from start times that reach the hard places (a
 * skipped day in Pacific/Apia, pre-1970 first-zone offsets, the POSIX rule after 2037, a DST
 * change), and must move strictly forward or answer 0 (no activation). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int64_t starts[] = {
      1700000000,  /* 2023-11-14 */
      1322740800,  /* 2011-12-01: Apia is about to skip 2011-12-30 */
      -1000000000, /* 1938 */
      2500000000,  /* 2049: past the zone files' transitions */
      1741500000,  /* 2025-03-09, the US change to DST */
  };
  if (size > 4096) return 0;
  cron_schedule *s = NULL;
  if (cron_parse_n((const char *)data, size, &s) != KD_OK) {
    if (s) abort(); /* nothing is handed out on failure */
    return 0;
  }
  for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
    int64_t t = starts[i];
    for (int k = 0; k < 3; k++) {
      int64_t n = cron_next(s, t);
      if (n == 0) break;
      if (n <= t) abort();
      t = n;
    }
  }
  cron_free(s);
  return 0;
}
