/* fuzz_archive.c — libFuzzer target: the archive reader on arbitrary bytes in a memfd. The first
 * byte picks whether the rest is read as is (the gzip layer under attack) or gzip-compressed
 * first (the tar layer under attack). Never a crash, leak or hang; every entry handed out has a
 * sane parsed path and fits the cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "archive.h"

#define CAP (256u << 10)

static int memfd_with(const void *p, size_t n) {
  int fd = memfd_create("fuzz-archive", MFD_CLOEXEC);
  if (fd < 0) abort();
  if (n && write(fd, p, n) != (ssize_t)n) abort();
  lseek(fd, 0, SEEK_SET);
  return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const uint8_t *body = data + 1;
  size_t n = size - 1;
  unsigned char *z = NULL;
  if (data[0] & 1) {
    uLongf zl = compressBound(n) + 64;
    z_stream s;
    memset(&s, 0, sizeof s);
    z = malloc(zl);
    if (deflateInit2(&s, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    s.next_in = (unsigned char *)body;
    s.avail_in = (uInt)n;
    s.next_out = z;
    s.avail_out = (uInt)zl;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END) abort();
    n = zl - s.avail_out;
    deflateEnd(&s);
    body = z;
  }
  int fd = memfd_with(body, n);
  archive_reader *r;
  if (archive_reader_open_fd(fd, CAP, &r) == KD_OK) {
    for (int i = 0; i < 100000; i++) {
      struct archive_item it;
      bool eof;
      if (archive_reader_next(r, &it, &eof) != KD_OK || eof) break;
      struct archive_path w;
      if (it.len > CAP || archive_parse_path(it.path, &w) != KD_OK || w.kind != it.where.kind) abort();
      if (it.len && (it.data[0] == 0x7f && it.data[it.len - 1] == 0x7f)) (void)0; /* touch both ends */
    }
    archive_reader_free(r);
  }
  close(fd);
  free(z);
  return 0;
}
