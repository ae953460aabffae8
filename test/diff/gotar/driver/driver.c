/* driver.c — the C side of test/diff/t_gotar.sh: kcmdr's archive writer and reader (src/archive.c)
 * on the same tarballs Go's archive/tar reads and writes.
 *
 *   driver write FILE   write a sample backup tarball with archive_writer_* and print, one JSON
 *                       line per entry, what Go must read back: name, type "0", mode 493 (0755),
 *                       size, sha256, probe
 *   driver read FILE    read FILE with archive_reader_* and print name, size, sha256, probe
 *
 * probe: hex of the decoded string at .data.probe of a JSON object entry (jansson, NUL allowed),
 * the same field gotar prints. Exit 1 on any failure, with the message on stderr. */
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"

static void die(const char *what) {
  fprintf(stderr, "driver: %s: %s\n", what, kd_errmsg());
  exit(1);
}

static char *hex(const unsigned char *p, size_t n) {
  char *h = malloc(2 * n + 1);
  for (size_t i = 0; i < n; i++) sprintf(h + 2 * i, "%02x", p[i]);
  h[2 * n] = '\0';
  return h;
}

static void emit(const char *name, const char *data, size_t len, int with_mode) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)data, len, d);
  char *sum = hex(d, sizeof d);
  json_t *o = json_pack("{s:s,s:I,s:s}", "name", name, "size", (json_int_t)len, "sha256", sum);
  if (with_mode) {
    json_object_set_new(o, "type", json_string("0"));
    json_object_set_new(o, "mode", json_integer(0755));
  }
  size_t nl = strlen(name);
  if (nl > 5 && !strcmp(name + nl - 5, ".json")) {
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
    json_t *p = json_object_get(json_object_get(v, "data"), "probe");
    if (json_is_string(p)) {
      char *h = hex((const unsigned char *)json_string_value(p), json_string_length(p));
      json_object_set_new(o, "probe", json_string(h));
      free(h);
    }
    json_decref(v);
  }
  char *s = json_dumps(o, JSON_COMPACT);
  puts(s);
  free(s);
  free(sum);
  json_decref(o);
}

static kd_rc to_file(const void *p, size_t n, void *ud) {
  return fwrite(p, 1, n, ud) == n ? KD_OK : kd_fail(KD_ERR_IO, "write failed");
}

static void add(archive_writer *w, const char *gr, const char *v, const char *ns, const char *name, const char *json,
                size_t len) {
  char path[ARCHIVE_PATH_MAX + 1];
  if (archive_writer_add_object(w, gr, v, ns, name, json, len) != KD_OK) die(name);
  for (int copy = 0; copy < 2; copy++) {
    if (archive_object_path(gr, copy ? v : NULL, ns, name, path, sizeof path) != KD_OK) die("path");
    emit(path, json, len, 1);
  }
}

static void write_sample(const char *file) {
  FILE *f = fopen(file, "wb");
  if (!f) die(file);
  archive_writer *w;
  if (archive_writer_open(to_file, f, 6, &w) != KD_OK) die("open");
  emit("metadata/version", "1.1.0\n", 6, 1);
  /* escapes as the API server sends them, NUL included */
  static const char esc[] = "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"nul\",\"namespace\":"
                            "\"kcm-system\"},\"data\":{\"probe\":\"a\\u0000b \\u003c\\u0026\\u003e \xc3\xa9\xe2\x82\xac\"}}";
  add(w, "secrets", "v1", "kcm-system", "nul", esc, sizeof esc - 1);
  /* raw bytes that are not JSON: a NUL byte, 0xff */
  static const char raw[] = "{\"x\":\"\0\xff\xfe\"}";
  add(w, "configmaps", "v1", "d", "raw-bytes", raw, sizeof raw - 1);
  /* the longest names Kubernetes allows: PAX path records */
  char name[254], ns[64];
  memset(name, 'c', 253);
  name[253] = '\0';
  memset(ns, 'n', 63);
  ns[63] = '\0';
  add(w, "clusterdeployments.k0rdent.mirantis.com", "v1beta1", ns, name, "{\"data\":{\"probe\":\"long\"}}", 25);
  /* plain paths of exactly 99, 100, 101, 155, 156, 255, 256 and 257 bytes: USTAR name, prefix
   * split and PAX boundaries; "resources/configmaps/namespaces/d/" + name + ".json" */
  int lens[] = {99, 100, 101, 155, 156, 255, 256, 257};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    char nm[300];
    int k = lens[i] - (int)strlen("resources/configmaps/namespaces/d/.json");
    memset(nm, 'a' + (int)i, (size_t)k);
    nm[k] = '\0';
    add(w, "configmaps", "v1", "d", nm, "{}", 2);
  }
  /* a non-ASCII name (RBAC names may hold any character but '/' and '%') */
  add(w, "clusterroles.rbac.authorization.k8s.io", "v1", NULL, "syst\xc3\xa8me:r\xc3\xb4le", "{}", 2);
  /* 1 MiB and empty */
  size_t bl = (1u << 20) + 32;
  char *big = malloc(bl);
  memset(big, 'B', bl);
  memcpy(big, "{\"data\":{\"big\":\"", 16);
  memcpy(big + bl - 4, "\"}}\n", 4);
  add(w, "configmaps", "v1", "d", "one-mebibyte", big, bl);
  free(big);
  add(w, "configmaps", "v1", "d", "empty", "", 0);
  if (archive_writer_add_file(w, "metadata/notes.txt", "kcmdr\n", 6) != KD_OK) die("add file");
  emit("metadata/notes.txt", "kcmdr\n", 6, 1);
  if (archive_writer_close(w) != KD_OK) die("close");
  if (fclose(f) != 0) die("fclose");
}

static void read_file(const char *file) {
  FILE *f = fopen(file, "rb");
  if (!f) die(file);
  archive_reader *r;
  if (archive_reader_open_fd(fileno(f), 0, &r) != KD_OK) die("open");
  for (;;) {
    struct archive_item it;
    bool eof;
    if (archive_reader_next(r, &it, &eof) != KD_OK) die("read");
    if (eof) break;
    emit(it.path, it.data, it.len, 0);
  }
  archive_reader_free(r);
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "read") && strcmp(argv[1], "write"))) {
    fprintf(stderr, "usage: driver read|write FILE\n");
    return 2;
  }
  if (!strcmp(argv[1], "write")) write_sample(argv[2]);
  else read_file(argv[2]);
  return 0;
}
