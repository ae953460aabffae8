/* fuzz_tarpath.c — libFuzzer target: archive_parse_path on arbitrary bytes never crashes and never
 * accepts an absolute path or a ".." segment; an object path it accepts is rebuilt by
 * archive_object_path into a path that parses to the same parts. The builder fed four fuzzed
 * segments (split at '\n') either refuses them or builds a path that parses back to them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"

static int has_dotdot(const char *p) {
  for (;;) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') return 1;
    if (!e) return 0;
    p = e + 1;
  }
}

static void same(const struct archive_path *a, const struct archive_path *b) {
  if (a->kind != b->kind || strcmp(a->gr, b->gr) || strcmp(a->version, b->version) || strcmp(a->ns, b->ns) ||
      strcmp(a->name, b->name))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  struct archive_path w, w2;
  char built[ARCHIVE_PATH_MAX + 1];
  if (archive_parse_path(s, &w) == KD_OK) {
    if (s[0] == '/' || has_dotdot(s) || strlen(s) > ARCHIVE_PATH_MAX) abort();
    if (w.kind == ARCHIVE_PATH_OBJECT) {
      if (archive_object_path(w.gr, w.version[0] ? w.version : NULL, w.ns, w.name, built, sizeof built) != KD_OK) abort();
      if (archive_parse_path(built, &w2) != KD_OK) abort();
      same(&w, &w2);
    }
  }
  /* builder: gr \n version \n ns \n name */
  char *seg[4] = {0};
  char *p = s;
  for (int i = 0; i < 4 && p; i++) {
    seg[i] = p;
    p = strchr(p, '\n');
    if (p) *p++ = '\0';
  }
  if (seg[3] && archive_object_path(seg[0], seg[1][0] ? seg[1] : NULL, seg[2], seg[3], built, sizeof built) == KD_OK) {
    if (archive_parse_path(built, &w) != KD_OK) abort();
    /* the name's field may be too small for a segment the builder took: then parse refused above */
    if (w.kind != ARCHIVE_PATH_OBJECT || strcmp(w.gr, seg[0]) || strcmp(w.version, seg[1]) || strcmp(w.ns, seg[2]) ||
        strcmp(w.name, seg[3]))
      abort();
  }
  free(s);
  return 0;
}
