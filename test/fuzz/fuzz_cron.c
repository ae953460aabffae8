/* fuzz_cron.c — libFuzzer target: any text as a cron spec; when it parses, Next must terminate
 * and move forward. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 512) return 0;
  char spec[513];
  memcpy(spec, data, size);
  spec[size] = '\0';
  cron_schedule *s = NULL;
  if (cron_parse(spec, &s) == KD_OK) {
    int64_t t = 1700000000, n = cron_next(s, t);
    if (n != 0 && n <= t) abort();
    cron_free(s);
  }
  return 0;
}
