/* fuzz_watch.c — libFuzzer target: the watch event splitter fed arbitrary bytes in arbitrary
 * chunks (the first byte picks the chunk size) must never crash, leak or overrun; and every
 * object it hands out (NUL in strings allowed) must survive serialising and parsing again
 * unchanged, as the client writes objects back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube.h"

static bool count(enum kube_event_type t, json_t *obj, void *ud) {
  (void)t;
  ++*(long *)ud;
  char *out = json_dumps(obj, JSON_COMPACT);
  if (!out) abort();
  json_error_t err;
  json_t *back = json_loadb(out, strlen(out), JSON_ALLOW_NUL, &err);
  if (!back || !json_equal(obj, back)) abort(); /* a byte lost or changed on the way back */
  json_decref(back);
  free(out);
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = (size_t)data[0] % 17 + 1;
  long n = 0;
  struct kube_watch_splitter s;
  kube_watch_splitter_init(&s, count, &n);
  for (size_t off = 1; off < size; off += chunk) {
    size_t len = size - off < chunk ? size - off : chunk;
    if (kube_watch_splitter_feed(&s, (const char *)data + off, len) != KD_OK) break;
  }
  kube_watch_splitter_free(&s);
  return 0;
}
