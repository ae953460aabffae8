/* fuzz_s3list.c — libFuzzer target for the S3 XML reader: any bytes as a ListObjectsV2 answer,
 * an <Error> document, an InitiateMultipartUpload, object-lock configuration or ListObjectVersions
 * answer must parse or fail cleanly (no crash,
 * leak, hang or read past the input), and every listed key must be a C string of its length. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* an exact-size copy: reading one byte past the answer is caught by ASan */
  char *xml = malloc(size ? size : 1);
  if (!xml) return 0;
  memcpy(xml, data, size);
  struct s3_page pg;
  if (s3_parse_list(xml, size, &pg) == KD_OK) {
    for (size_t i = 0; i < pg.n; i++)
      if (!pg.entries[i].key) abort();
    if (pg.truncated && pg.next_token && strlen(pg.next_token) > size) abort();
  }
  s3_page_free(&pg);
  struct s3_error e;
  if (s3_parse_error(xml, size, &e) == KD_OK && (strlen(e.code) >= sizeof e.code || strlen(e.message) >= sizeof e.message))
    abort();
  kd_buf out = KD_BUF_INIT(1 << 20);
  s3_parse_field(xml, size, "InitiateMultipartUploadResult/UploadId", &out);
  kd_buf_free(&out);
  struct s3_lock_config lc; /* object lock: GET ?object-lock and ListObjectVersions answers */
  if (s3_parse_lock_config(xml, size, &lc) == KD_OK && strlen(lc.default_mode) >= sizeof lc.default_mode) abort();
  struct s3_versions_page vp;
  memset(&vp, 0, sizeof vp);
  snprintf(vp.key, sizeof vp.key, "k");
  if (s3_parse_versions(xml, size, &vp) == KD_OK && (strlen(vp.oldest) >= sizeof vp.oldest || (vp.oldest[0] && !vp.any)))
    abort();
  free(xml);
  return 0;
}
