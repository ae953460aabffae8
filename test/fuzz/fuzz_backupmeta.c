/* fuzz_backupmeta.c — libFuzzer target for the backup engine's raw-JSON readers: the metadata
 * scanner (backup_meta_scan) on arbitrary bytes must never crash, overrun or leak, and when it
 * accepts an object jansson must agree it is one (our scanner may be stricter, never looser
 * about structure it relies on); the apiVersion/kind insertion on an accepted object gives
 * JSON jansson can parse, holding both fields. The glob matcher gets a pattern and a string
 * split at the first NUL. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  struct backup_meta m;
  if (backup_meta_scan(p, size, &m) == KD_OK) {
    json_t *j = json_loadb(p, size, JSON_ALLOW_NUL, NULL);
    if (j) {
      if (!json_is_object(j)) abort(); /* we accepted something that is not an object */
      kd_buf out = KD_BUF_INIT(1u << 24);
      if (backup_add_type(p, size, "g/v1", "K\"ind", !m.has_api_version, !m.has_kind, &out) != KD_OK) abort();
      json_t *t = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);
      if (!t || !json_object_get(t, "kind") || !json_object_get(t, "apiVersion")) abort();
      json_decref(t);
      kd_buf_free(&out);
      json_decref(j);
    }
  }
  const char *nul = memchr(p, '\0', size);
  if (nul && size < 4096) {
    char *s = strndup(nul + 1, size - (size_t)(nul + 1 - p));
    if (s) {
      (void)backup_glob(p, s);
      free(s);
    }
  }
  return 0;
}
