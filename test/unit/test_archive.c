/* test_archive.c — Velero's tarball: the path builder and parser, a byte-exact round trip through
 * our writer and reader (NUL and non-ASCII bytes, 253-character names in PAX headers, both
 * object paths, metadata/version first), streaming output, a failing output, and a set of
 * hostile archives built here byte by byte (tar headers by hand, gzip by zlib) that the reader
 * must refuse without writing anything anywhere. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "archive.h"
#include "tests.h"

/* ---- helpers: an fd holding bytes, hand-made tar, gzip ---- */

static int fd_with(const void *p, size_t n) {
  int fd = memfd_create("archive-test", MFD_CLOEXEC);
  assert_true(fd >= 0);
  const char *c = p;
  while (n) {
    ssize_t k = write(fd, c, n);
    assert_true(k > 0);
    c += k;
    n -= (size_t)k;
  }
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  return fd;
}

static void tar_hdr(kd_buf *t, const char *name, const char *prefix, char type, unsigned mode, unsigned long long size,
                    const char *link) {
  unsigned char h[512];
  memset(h, 0, sizeof h);
  memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
  snprintf((char *)h + 100, 8, "%07o", mode);
  snprintf((char *)h + 108, 8, "%07o", 0);
  snprintf((char *)h + 116, 8, "%07o", 0);
  snprintf((char *)h + 124, 12, "%011llo", size);
  snprintf((char *)h + 136, 12, "%011o", 1700000000u);
  memset(h + 148, ' ', 8);
  h[156] = (unsigned char)type;
  if (link) memcpy(h + 157, link, strlen(link) < 100 ? strlen(link) : 100);
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  if (prefix) memcpy(h + 345, prefix, strlen(prefix) < 155 ? strlen(prefix) : 155);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++) sum += h[i];
  snprintf((char *)h + 148, 8, "%06o", sum);
  h[155] = ' ';
  assert_int_equal(kd_buf_add(t, h, 512), KD_OK);
}

static void tar_data(kd_buf *t, const void *p, size_t n) {
  static const char zero[512];
  assert_int_equal(kd_buf_add(t, p, n), KD_OK);
  if (n % 512) assert_int_equal(kd_buf_add(t, zero, 512 - n % 512), KD_OK);
}

static void tar_file(kd_buf *t, const char *name, const char *data) {
  tar_hdr(t, name, NULL, '0', 0755, strlen(data), NULL);
  tar_data(t, data, strlen(data));
}

/* a PAX extended header carrying path=<path>, as Go's archive/tar writes for long names */
static void tar_pax_path(kd_buf *t, const char *path) {
  char rec[4096];
  size_t body = strlen(" path=\n") + strlen(path), len = body + 1;
  while (len != body + (size_t)snprintf(NULL, 0, "%zu", len)) len = body + (size_t)snprintf(NULL, 0, "%zu", len);
  snprintf(rec, sizeof rec, "%zu path=%s\n", len, path);
  assert_int_equal(strlen(rec), len);
  tar_hdr(t, "PaxHeaders.0/x.json", NULL, 'x', 0644, len, NULL);
  tar_data(t, rec, len);
}

static void tar_end(kd_buf *t) {
  static const char zero[1024];
  assert_int_equal(kd_buf_add(t, zero, sizeof zero), KD_OK);
}

static void gz(const kd_buf *in, kd_buf *out) {
  z_stream z;
  memset(&z, 0, sizeof z);
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  size_t cap = deflateBound(&z, in->len) + 64;
  kd_buf_init(out, cap + 1);
  unsigned char *o = malloc(cap);
  z.next_in = (unsigned char *)in->data;
  z.avail_in = (uInt)in->len;
  z.next_out = o;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  assert_int_equal(kd_buf_add(out, o, cap - z.avail_out), KD_OK);
  deflateEnd(&z);
  free(o);
}

/* Read every entry of the archive in fd; returns the first failure; entries go to list as
 * "path\n". */
static kd_rc read_all(int fd, size_t max_entry, kd_buf *list) {
  archive_reader *r;
  kd_rc rc = archive_reader_open_fd(fd, max_entry, &r);
  if (rc != KD_OK) return rc;
  for (;;) {
    struct archive_item it;
    bool eof;
    if ((rc = archive_reader_next(r, &it, &eof)) != KD_OK || eof) break;
    if (list) {
      kd_buf_adds(list, it.path);
      kd_buf_adds(list, "\n");
    }
  }
  archive_reader_free(r);
  return rc;
}

static kd_rc read_bytes(const void *p, size_t n, size_t max_entry) {
  int fd = fd_with(p, n);
  kd_rc rc = read_all(fd, max_entry, NULL);
  close(fd);
  return rc;
}

/* ---- paths ---- */

/* The builder makes both of Velero's paths and refuses segments that would leave the folder. */
static void object_paths(void **state) {
  (void)state;
  char p[ARCHIVE_PATH_MAX + 1];
  assert_int_equal(archive_object_path("secrets", NULL, "kcm-system", "s1", p, sizeof p), KD_OK);
  assert_string_equal(p, "resources/secrets/namespaces/kcm-system/s1.json");
  assert_int_equal(archive_object_path("secrets", "v1", "kcm-system", "s1", p, sizeof p), KD_OK);
  assert_string_equal(p, "resources/secrets/v1-preferredversion/namespaces/kcm-system/s1.json");
  assert_int_equal(archive_object_path("managements.k0rdent.mirantis.com", NULL, NULL, "kcm", p, sizeof p), KD_OK);
  assert_string_equal(p, "resources/managements.k0rdent.mirantis.com/cluster/kcm.json");
  assert_int_equal(archive_object_path("managements.k0rdent.mirantis.com", "v1beta1", "", "kcm", p, sizeof p), KD_OK);
  assert_string_equal(p, "resources/managements.k0rdent.mirantis.com/v1beta1-preferredversion/cluster/kcm.json");
  /* careless or hostile segments */
  const char *bad[] = {"", ".", "..", "a/b", "../../etc"};
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    assert_int_equal(archive_object_path(bad[i], NULL, "ns", "n", p, sizeof p), KD_ERR_INVALID);
    assert_int_equal(archive_object_path("pods", bad[i][0] ? bad[i] : "..", "ns", "n", p, sizeof p), KD_ERR_INVALID);
    assert_int_equal(archive_object_path("pods", NULL, "ns", bad[i], p, sizeof p), KD_ERR_INVALID);
    if (bad[i][0]) assert_int_equal(archive_object_path("pods", NULL, bad[i], "n", p, sizeof p), KD_ERR_INVALID);
  }
  assert_int_equal(archive_object_path(NULL, NULL, "ns", "n", p, sizeof p), KD_ERR_INVALID);
  assert_int_equal(archive_object_path("pods", NULL, "ns", NULL, p, sizeof p), KD_ERR_INVALID);
  /* too small: TOOBIG, never a cut path */
  assert_int_equal(archive_object_path("pods", NULL, "ns", "n", p, 20), KD_ERR_TOOBIG);
}

struct pcase {
  const char *path;
  kd_rc rc;
  enum archive_path_kind kind;
  const char *gr, *version, *ns, *name;
};

/* The parser: Velero's shapes, near misses that are just "other", and hostile paths. */
static void parse_paths(void **state) {
  (void)state;
  static const struct pcase c[] = {
      {"metadata/version", KD_OK, ARCHIVE_PATH_VERSION, "", "", "", ""},
      {"./metadata/version", KD_OK, ARCHIVE_PATH_VERSION, "", "", "", ""},
      {"resources/secrets/namespaces/kcm-system/s1.json", KD_OK, ARCHIVE_PATH_OBJECT, "secrets", "", "kcm-system", "s1"},
      {"resources/secrets/v1-preferredversion/namespaces/kcm-system/s1.json", KD_OK, ARCHIVE_PATH_OBJECT, "secrets",
       "v1", "kcm-system", "s1"},
      {"resources/managements.k0rdent.mirantis.com/cluster/kcm.json", KD_OK, ARCHIVE_PATH_OBJECT,
       "managements.k0rdent.mirantis.com", "", "", "kcm"},
      {"resources/x.y/v1beta1-preferredversion/cluster/a.b.json.json", KD_OK, ARCHIVE_PATH_OBJECT, "x.y", "v1beta1", "",
       "a.b.json"},
      {"./resources/pods/./namespaces/d/p.json", KD_OK, ARCHIVE_PATH_OBJECT, "pods", "", "d", "p"},
      /* other: wrong shapes are ignored by restore, not errors */
      {"resources/pods/namespaces/d/p.yaml", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"resources/pods/namespaces/d/.json", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"resources/pods/v1/namespaces/d/p.json", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"resources/pods/-preferredversion/cluster/p.json", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"resources/pods/cluster/x/p.json", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"resources/pods/namespaces/p.json", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"resources/pods/a/b/c/d/e/f.json", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"metadata/version/x", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      {"velero-backup.json", KD_OK, ARCHIVE_PATH_OTHER, "", "", "", ""},
      /* hostile */
      {"", KD_ERR_INVALID, 0, NULL, NULL, NULL, NULL},
      {"/etc/passwd", KD_ERR_INVALID, 0, NULL, NULL, NULL, NULL},
      {"../evil", KD_ERR_INVALID, 0, NULL, NULL, NULL, NULL},
      {"resources/../../evil", KD_ERR_INVALID, 0, NULL, NULL, NULL, NULL},
      {"resources/pods/namespaces/d/..", KD_ERR_INVALID, 0, NULL, NULL, NULL, NULL},
      {"resources//pods", KD_ERR_INVALID, 0, NULL, NULL, NULL, NULL},
      {"resources/pods/", KD_ERR_INVALID, 0, NULL, NULL, NULL, NULL},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(c); i++) {
    struct archive_path w;
    kd_rc rc = archive_parse_path(c[i].path, &w);
    if (rc != c[i].rc) fail_msg("%s: got %s (%s)", c[i].path, kd_rc_name(rc), kd_errmsg());
    if (rc != KD_OK) {
      assert_non_null(strstr(kd_errmsg(), "archive entry"));
      continue;
    }
    if (w.kind != c[i].kind) fail_msg("%s: kind %d, want %d", c[i].path, w.kind, c[i].kind);
    assert_string_equal(w.gr, c[i].gr);
    assert_string_equal(w.version, c[i].version);
    assert_string_equal(w.ns, c[i].ns);
    assert_string_equal(w.name, c[i].name);
  }
  assert_int_equal(archive_parse_path(NULL, &(struct archive_path){0}), KD_ERR_INVALID);
  /* a path over ARCHIVE_PATH_MAX, and an object name over the field: refused, not cut */
  char *longp = malloc(ARCHIVE_PATH_MAX + 10);
  memset(longp, 'a', ARCHIVE_PATH_MAX + 9);
  longp[ARCHIVE_PATH_MAX + 9] = '\0';
  struct archive_path w;
  assert_int_equal(archive_parse_path(longp, &w), KD_ERR_INVALID);
  snprintf(longp, ARCHIVE_PATH_MAX, "resources/pods/cluster/%0300d.json", 7);
  assert_int_equal(archive_parse_path(longp, &w), KD_ERR_INVALID);
  free(longp);
}

/* Builder then parser give back the same parts, for the longest names Kubernetes allows. */
static void path_round_trip(void **state) {
  (void)state;
  char name[254], ns[64], p[ARCHIVE_PATH_MAX + 1];
  memset(name, 'n', 253);
  name[253] = '\0';
  memset(ns, 's', 63);
  ns[63] = '\0';
  const char *grs[] = {"pods", "clusterdeployments.k0rdent.mirantis.com"};
  for (int g = 0; g < 2; g++)
    for (int v = 0; v < 2; v++)
      for (int scoped = 0; scoped < 2; scoped++) {
        struct archive_path w;
        assert_int_equal(archive_object_path(grs[g], v ? "v1beta1" : NULL, scoped ? ns : NULL, name, p, sizeof p), KD_OK);
        assert_int_equal(archive_parse_path(p, &w), KD_OK);
        assert_int_equal(w.kind, ARCHIVE_PATH_OBJECT);
        assert_string_equal(w.gr, grs[g]);
        assert_string_equal(w.version, v ? "v1beta1" : "");
        assert_string_equal(w.ns, scoped ? ns : "");
        assert_string_equal(w.name, name);
      }
}

/* ---- writer and reader ---- */

struct sink {
  kd_buf b;
  size_t calls, max_chunk;
  size_t fail_at; /* fail the call with this number (1-based), 0 never */
};

static kd_rc to_sink(const void *p, size_t n, void *ud) {
  struct sink *s = ud;
  s->calls++;
  if (s->fail_at && s->calls >= s->fail_at) return kd_fail(KD_ERR_IO, "the test's output broke");
  if (n > s->max_chunk) s->max_chunk = n;
  return kd_buf_add(&s->b, p, n);
}

struct obj {
  const char *gr, *version, *ns, *name;
  const char *json;
  size_t len;
};

/* Objects with every awkward byte (raw NUL inside, \u0000 escapes, UTF-8, invalid UTF-8, a
 * 1 MiB value), names at Kubernetes' 253-character limit (PAX long names) and a non-ASCII name:
 * each comes back at both paths, byte for byte, after metadata/version = "1.1.0\n". */
static void round_trip_byte_exact(void **state) {
  (void)state;
  char longname[254], longns[64];
  memset(longname, 'x', 253);
  longname[253] = '\0';
  memset(longns, 'y', 63);
  longns[63] = '\0';
  char *big = malloc((1 << 20) + 64);
  int bl = snprintf(big, 64, "{\"data\":{\"v\":\"");
  memset(big + bl, 'A', 1 << 20);
  memcpy(big + bl + (1 << 20), "\"}}", 4);
  struct obj objs[] = {
      {"secrets", "v1", "kcm-system", "nul", "{\"s\":\"a\\u0000b\",\"raw\":\"x\0y\"}", 29},
      {"configmaps", "v1", "d", "utf8", "{\"m\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \\u003c\\u0026\\u003e\",\"bad\":\"\xff\xfe\"}", 0},
      {"clusterdeployments.k0rdent.mirantis.com", "v1beta1", longns, longname, "{\"metadata\":{}}", 0},
      {"clusterroles.rbac.authorization.k8s.io", "v1", NULL, "syst\xc3\xa8me:r\xc3\xb4le", "{}", 0},
      {"managements.k0rdent.mirantis.com", "v1beta1", "", "kcm", big, 0},
      {"empties", "v1", "d", "zero", "", 0},
  };
  struct sink s = {.b = KD_BUF_INIT(64u << 20)};
  archive_writer *w;
  assert_int_equal(archive_writer_open(to_sink, &s, 1, &w), KD_OK);
  for (size_t i = 0; i < KD_ARRAY_LEN(objs); i++) {
    if (!objs[i].len) objs[i].len = strlen(objs[i].json);
    assert_int_equal(archive_writer_add_object(w, objs[i].gr, objs[i].version, objs[i].ns, objs[i].name, objs[i].json,
                                               objs[i].len),
                     KD_OK);
  }
  assert_int_equal(archive_writer_add_file(w, "metadata/extra.txt", "hello\n", 6), KD_OK);
  assert_int_equal(archive_writer_close(w), KD_OK);
  /* gzip magic; the writer streamed in blocks, never one big buffer */
  assert_true(s.b.len > 10 && (unsigned char)s.b.data[0] == 0x1f && (unsigned char)s.b.data[1] == 0x8b);
  assert_true(s.max_chunk <= 256u << 10);

  int fd = fd_with(s.b.data, s.b.len);
  archive_reader *r;
  assert_int_equal(archive_reader_open_fd(fd, 2u << 20, &r), KD_OK);
  struct archive_item it;
  bool eof;
  assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
  assert_false(eof);
  assert_string_equal(it.path, "metadata/version");
  assert_int_equal(it.where.kind, ARCHIVE_PATH_VERSION);
  assert_int_equal(it.len, 6);
  assert_memory_equal(it.data, "1.1.0\n", 6);
  for (size_t i = 0; i < KD_ARRAY_LEN(objs); i++) {
    for (int copy = 0; copy < 2; copy++) {
      char want[ARCHIVE_PATH_MAX + 1];
      assert_int_equal(archive_object_path(objs[i].gr, copy ? objs[i].version : NULL, objs[i].ns, objs[i].name, want,
                                           sizeof want),
                       KD_OK);
      assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
      assert_false(eof);
      assert_string_equal(it.path, want);
      assert_int_equal(it.where.kind, ARCHIVE_PATH_OBJECT);
      assert_string_equal(it.where.name, objs[i].name);
      assert_string_equal(it.where.version, copy ? objs[i].version : "");
      assert_int_equal(it.len, objs[i].len);
      if (it.len) assert_memory_equal(it.data, objs[i].json, objs[i].len);
    }
  }
  assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
  assert_string_equal(it.path, "metadata/extra.txt");
  assert_int_equal(it.where.kind, ARCHIVE_PATH_OTHER);
  assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
  assert_true(eof);
  archive_reader_free(r);
  close(fd);
  kd_buf_free(&s.b);
  free(big);
}

/* The writer's own refusals: bad names, a bad path for a plain file, a bad gzip level. */
static void writer_refuses_bad_input(void **state) {
  (void)state;
  struct sink s = {.b = KD_BUF_INIT(1 << 20)};
  archive_writer *w;
  assert_int_equal(archive_writer_open(to_sink, &s, 10, &w), KD_ERR_INVALID);
  assert_null(w);
  assert_int_equal(archive_writer_open(to_sink, &s, 0, &w), KD_OK);
  assert_int_equal(archive_writer_add_object(w, "pods", "v1", "ns", "../x", "{}", 2), KD_ERR_INVALID);
  assert_int_equal(archive_writer_add_object(w, "pods", "v1", "ns", "a/b", "{}", 2), KD_ERR_INVALID);
  const char *bad[] = {"/abs", "../x", "a//b", "a/./b", "./a", "a/.", ""};
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) assert_int_equal(archive_writer_add_file(w, bad[i], "x", 1), KD_ERR_INVALID);
  assert_int_equal(archive_writer_close(w), KD_OK);
  /* only metadata/version made it in */
  kd_buf list = KD_BUF_INIT(1 << 16);
  int fd = fd_with(s.b.data, s.b.len);
  assert_int_equal(read_all(fd, 0, &list), KD_OK);
  assert_string_equal(list.data, "metadata/version\n");
  close(fd);
  kd_buf_free(&list);
  kd_buf_free(&s.b);
  archive_writer_abort(NULL);
}

/* A failing output (an upload broke) surfaces as its own code from add or close; abort after
 * it never calls out again. Many objects stream through in many calls. */
static void writer_output_fails(void **state) {
  (void)state;
  char json[4096];
  memset(json, 'q', sizeof json);
  for (int mode = 0; mode < 2; mode++) {
    struct sink s = {.b = KD_BUF_INIT(64u << 20), .fail_at = 5};
    archive_writer *w;
    assert_int_equal(archive_writer_open(to_sink, &s, 1, &w), KD_OK);
    kd_rc rc = KD_OK;
    char name[32];
    for (int i = 0; i < 5000 && rc == KD_OK; i++) {
      snprintf(name, sizeof name, "o-%d", i);
      /* varying bytes so gzip cannot squeeze it all into one block */
      for (int k = 0; k < 64; k++) json[(i * 64 + k) % (int)sizeof json] = (char)('a' + (i * 7 + k) % 26);
      rc = archive_writer_add_object(w, "configmaps", "v1", "ns", name, json, sizeof json);
    }
    assert_int_equal(rc, KD_ERR_IO);
    assert_non_null(strstr(kd_errmsg(), "the test's output broke"));
    size_t calls = s.calls;
    if (mode == 0) {
      archive_writer_abort(w);
    } else {
      assert_int_equal(archive_writer_close(w), KD_ERR_IO);
    }
    assert_int_equal(s.calls, calls);
    kd_buf_free(&s.b);
  }
}

/* Every hostile or broken archive is refused with the right code and a message naming the
 * entry; none of them makes the reader create a file (the paths they name do not appear). */
static void hostile_archives(void **state) {
  (void)state;
  char tmpl[] = "/tmp/kcmdr-archive-test-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  char cwd[4096];
  assert_non_null(getcwd(cwd, sizeof cwd));
  char sub[4200];
  snprintf(sub, sizeof sub, "%s/work", tmpl);
  assert_int_equal(mkdir(sub, 0700), 0);
  assert_int_equal(chdir(sub), 0);
  char abs_evil[4200];
  snprintf(abs_evil, sizeof abs_evil, "%s/abs-evil", tmpl + 1); /* without the leading '/' */

  enum { ABS, DOTDOT, DOTDOT_MID, DOTDOT_DIR, SYMLINK, HARDLINK, CHARDEV, BLOCKDEV, FIFO, HUGE, OVERCAP, PAX_DOTDOT, N };
  struct {
    kd_rc rc;
    const char *msg;
  } want[N] = {
      [ABS] = {KD_ERR_INVALID, "absolute path"},
      [DOTDOT] = {KD_ERR_INVALID, "(\"..\"): ../evil"},
      [DOTDOT_MID] = {KD_ERR_INVALID, "resources/../../evil"},
      [DOTDOT_DIR] = {KD_ERR_INVALID, "../evil-dir"},
      [SYMLINK] = {KD_ERR_INVALID, "resources/link.json is a symbolic link"},
      [HARDLINK] = {KD_ERR_INVALID, "resources/hard.json is a hard link"},
      [CHARDEV] = {KD_ERR_INVALID, "is a character device"},
      [BLOCKDEV] = {KD_ERR_INVALID, "is a block device"},
      [FIFO] = {KD_ERR_INVALID, "is a fifo"},
      [HUGE] = {KD_ERR_TOOBIG, "resources/pods/cluster/huge.json claims 2147483648 bytes"},
      [OVERCAP] = {KD_ERR_TOOBIG, "claims 200 bytes, over the cap of 100"},
      [PAX_DOTDOT] = {KD_ERR_INVALID, "../pax-evil"},
  };
  for (int k = 0; k < N; k++) {
    kd_buf t = KD_BUF_INIT(1 << 20), g;
    char body[200];
    memset(body, 'b', sizeof body);
    tar_file(&t, "metadata/version", "1.1.0\n");
    switch (k) {
    case ABS: {
      char p[4300];
      snprintf(p, sizeof p, "/%s", abs_evil);
      tar_pax_path(&t, p);
      tar_file(&t, "x", "evil");
      break;
    }
    case DOTDOT: tar_file(&t, "../evil", "evil"); break;
    case DOTDOT_MID: tar_file(&t, "resources/../../evil", "evil"); break;
    case DOTDOT_DIR: tar_hdr(&t, "../evil-dir/", NULL, '5', 0755, 0, NULL); break;
    case SYMLINK: tar_hdr(&t, "resources/link.json", NULL, '2', 0777, 0, "/etc/passwd"); break;
    case HARDLINK: tar_hdr(&t, "resources/hard.json", NULL, '1', 0644, 0, "metadata/version"); break;
    case CHARDEV: tar_hdr(&t, "resources/dev", NULL, '3', 0644, 0, NULL); break;
    case BLOCKDEV: tar_hdr(&t, "resources/blk", NULL, '4', 0644, 0, NULL); break;
    case FIFO: tar_hdr(&t, "resources/fifo", NULL, '6', 0644, 0, NULL); break;
    case HUGE: tar_hdr(&t, "resources/pods/cluster/huge.json", NULL, '0', 0755, 1ull << 31, NULL); break; /* no data */
    case OVERCAP:
      tar_hdr(&t, "resources/pods/cluster/big.json", NULL, '0', 0755, sizeof body, NULL);
      tar_data(&t, body, sizeof body);
      break;
    case PAX_DOTDOT:
      tar_pax_path(&t, "resources/../../pax-evil");
      tar_file(&t, "innocent.json", "evil");
      break;
    }
    tar_end(&t);
    gz(&t, &g);
    kd_rc rc = read_bytes(g.data, g.len, k == OVERCAP ? 100 : 0);
    if (rc != want[k].rc || !strstr(kd_errmsg(), want[k].msg))
      fail_msg("case %d: got %s \"%s\", want \"%s\"", k, kd_rc_name(rc), kd_errmsg(), want[k].msg);
    kd_buf_free(&t);
    kd_buf_free(&g);
  }
  /* nothing was created: not in the working folder, not beside it, not at the absolute path */
  struct stat st;
  assert_int_equal(stat("evil", &st), -1);
  assert_int_equal(stat("../evil", &st), -1);
  assert_int_equal(stat("../evil-dir", &st), -1);
  assert_int_equal(stat("../pax-evil", &st), -1);
  assert_int_equal(stat("resources", &st), -1);
  char p[4300];
  snprintf(p, sizeof p, "/%s", abs_evil);
  assert_int_equal(stat(p, &st), -1);
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(rmdir(sub), 0);
  assert_int_equal(rmdir(tmpl), 0);
}

/* Broken streams: empty, not gzip (a plain tar), truncated anywhere, a flipped byte, garbage
 * after the gzip stream, gzip of something that is not tar, a tar cut inside an entry. All are
 * KD_ERR_PARSE; a good archive with a second gzip member appended still reads. */
static void broken_streams(void **state) {
  (void)state;
  kd_buf t = KD_BUF_INIT(1 << 20), g;
  tar_file(&t, "metadata/version", "1.1.0\n");
  char body[3000];
  for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + (i * 31 + i / 7) % 26);
  tar_hdr(&t, "resources/pods/cluster/p.json", NULL, '0', 0755, sizeof body, NULL);
  tar_data(&t, body, sizeof body);
  tar_end(&t);
  gz(&t, &g);
  assert_int_equal(read_bytes(g.data, g.len, 0), KD_OK);

  assert_int_equal(read_bytes("", 0, 0), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "empty backup archive"));
  assert_int_equal(read_bytes(t.data, t.len, 0), KD_ERR_PARSE); /* uncompressed tar */
  assert_non_null(strstr(kd_errmsg(), "corrupt backup archive"));
  for (size_t cut = 1; cut < g.len; cut++) {
    kd_rc rc = read_bytes(g.data, cut, 0);
    if (rc != KD_ERR_PARSE) fail_msg("cut at %zu of %zu: %s %s", cut, g.len, kd_rc_name(rc), kd_errmsg());
  }
  for (size_t at = 10; at < g.len; at += 7) { /* past the gzip header: every byte matters */
    g.data[at] ^= 0x20;
    kd_rc rc = read_bytes(g.data, g.len, 0);
    g.data[at] ^= 0x20;
    if (rc != KD_ERR_PARSE) fail_msg("flip at %zu of %zu: %s %s", at, g.len, kd_rc_name(rc), kd_errmsg());
  }
  kd_buf junk = KD_BUF_INIT(1 << 20);
  kd_buf_add(&junk, g.data, g.len);
  kd_buf_adds(&junk, "trailing junk");
  assert_int_equal(read_bytes(junk.data, junk.len, 0), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "after the end of the gzip stream"));
  kd_buf_reset(&junk);
  kd_buf_add(&junk, g.data, g.len);
  kd_buf_add(&junk, g.data, g.len); /* a second member: gzip allows it */
  assert_int_equal(read_bytes(junk.data, junk.len, 0), KD_OK);
  kd_buf_free(&junk);

  kd_buf txt = KD_BUF_INIT(1 << 16), gt;
  kd_buf_adds(&txt, "this is not a tar archive, just some text that is longer than a block? no.");
  gz(&txt, &gt);
  assert_int_equal(read_bytes(gt.data, gt.len, 0), KD_ERR_PARSE);
  kd_buf_free(&txt);
  kd_buf_free(&gt);

  /* megabytes after the tar's end marker (a gzip bomb's tail) are refused, not inflated forever */
  kd_buf tail = KD_BUF_INIT(4 << 20), gtail;
  kd_buf_add(&tail, t.data, t.len);
  for (int i = 0; i < 2048; i++) tar_end(&tail);
  gz(&tail, &gtail);
  assert_int_equal(read_bytes(gtail.data, gtail.len, 0), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "after the end of the tar data"));
  kd_buf_free(&tail);
  kd_buf_free(&gtail);

  /* a tar cut inside the entry's data, in a complete gzip stream */
  kd_buf cutt = KD_BUF_INIT(1 << 20), gc;
  kd_buf_add(&cutt, t.data, 512 * 3 + 1000);
  gz(&cutt, &gc);
  assert_int_equal(read_bytes(gc.data, gc.len, 0), KD_ERR_PARSE);
  kd_buf_free(&cutt);
  kd_buf_free(&gc);
  kd_buf_free(&t);
  kd_buf_free(&g);
}

/* Archives written the ways Go's archive/tar writes them: a PAX path record for a long name, a
 * USTAR prefix/name split, directories (skipped), and "./" prefixes as `tar -C dir .` makes. */
static void reads_other_writers(void **state) {
  (void)state;
  char longp[400];
  char name[254];
  memset(name, 'z', 253);
  name[253] = '\0';
  snprintf(longp, sizeof longp, "resources/clusterdeployments.k0rdent.mirantis.com/v1beta1-preferredversion/namespaces/"
                                "kcm-system/%s.json", name);
  kd_buf t = KD_BUF_INIT(1 << 20), g, list = KD_BUF_INIT(1 << 16);
  tar_hdr(&t, "./", NULL, '5', 0755, 0, NULL);
  tar_file(&t, "./metadata/version", "1.1.0\n");
  tar_pax_path(&t, longp);
  tar_file(&t, "resources/clusterdeployments.k0rdent.mirantis.com/v1beta1-preferredversion/namespaces/kcm-system/zz",
           "{\"a\":1}");
  tar_hdr(&t, "resources/", NULL, '5', 0755, 0, NULL);
  /* USTAR split: prefix "resources/secrets/namespaces/kcm-system", name "s.json" */
  tar_hdr(&t, "s.json", "resources/secrets/namespaces/kcm-system", '0', 0755, 2, NULL);
  tar_data(&t, "{}", 2);
  tar_end(&t);
  gz(&t, &g);
  int fd = fd_with(g.data, g.len);
  archive_reader *r;
  assert_int_equal(archive_reader_open_fd(fd, 0, &r), KD_OK);
  struct archive_item it;
  bool eof;
  assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
  assert_int_equal(it.where.kind, ARCHIVE_PATH_VERSION);
  assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
  assert_string_equal(it.path, longp);
  assert_int_equal(it.where.kind, ARCHIVE_PATH_OBJECT);
  assert_string_equal(it.where.name, name);
  assert_string_equal(it.where.version, "v1beta1");
  assert_int_equal(it.len, 7);
  assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
  assert_string_equal(it.path, "resources/secrets/namespaces/kcm-system/s.json");
  assert_string_equal(it.where.ns, "kcm-system");
  assert_int_equal(archive_reader_next(r, &it, &eof), KD_OK);
  assert_true(eof);
  /* the end is sticky and harmless */
  archive_reader_free(r);
  close(fd);
  kd_buf_free(&t);
  kd_buf_free(&g);
  kd_buf_free(&list);
}

int test_archive(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(object_paths),          cmocka_unit_test(parse_paths),
      cmocka_unit_test(path_round_trip),       cmocka_unit_test(round_trip_byte_exact),
      cmocka_unit_test(writer_refuses_bad_input), cmocka_unit_test(writer_output_fails),
      cmocka_unit_test(hostile_archives),      cmocka_unit_test(broken_streams),
      cmocka_unit_test(reads_other_writers),
  };
  return cmocka_run_group_tests_name("archive", tests, NULL, NULL);
}
