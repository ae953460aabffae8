/* fuzz_watch.c — libFuzzer target: the watch event splitter fed arbitrary bytes in arbitrary
 * chunks (the first byte picks the chunk size) must never crash, leak or overrun. */
#include <stdint.h>
#include <stdlib.h>

#include "kube.h"

static bool count(enum kube_event_type t, json_t *obj, void *ud) {
  (void)t, (void)obj;
  ++*(long *)ud;
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
