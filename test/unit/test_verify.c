/* test_verify.c — checksums files and staging against a filesystem store in a temporary
 * directory: what backup.c writes is accepted; a changed byte, a cut file, a missing file, a
 * file over the cap, and checksums files of every wrong shape are refused with a clear error;
 * a failed stage leaves no file behind. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore.h"
#include "tests.h"
#include "verify.h"

/* sha256("hello\n") */
#define HELLO_SHA "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

static objstore *fs_store(char *dir) {
  strcpy(dir, "/tmp/kcmdr-verify-XXXXXX");
  assert_non_null(mkdtemp(dir));
  json_t *bsl = json_pack("{s:s,s:{s:s,s:{s:s},s:{s:s}}}", "kind", "BackupStorageLocation", "spec", "provider",
                          "filesystem", "objectStorage", "bucket", "b", "config", "path", dir);
  objstore *s = NULL;
  assert_int_equal(objstore_open_bsl(bsl, NULL, 0, &s), KD_OK);
  json_decref(bsl);
  return s;
}

static int files_in(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n;
}

static void parse_shapes(void **state) {
  (void)state;
  verify_sums *v = NULL;
  const char *good = "{\"files\":{\"backups/b/b.tar.gz\":{\"sha256\":\"" HELLO_SHA "\",\"size\":6},"
                     "\"backups/b/b-logs.gz\":{\"sha256\":\"" HELLO_SHA "\",\"size\":0}}}";
  assert_int_equal(verify_sums_parse(good, strlen(good), &v), KD_OK);
  assert_int_equal(verify_sums_count(v), 2);
  assert_string_equal(verify_sums_key(v, 0), "backups/b/b.tar.gz");
  assert_null(verify_sums_key(v, 2));
  const char *hex;
  uint64_t size;
  assert_true(verify_sums_get(v, "backups/b/b.tar.gz", &hex, &size));
  assert_string_equal(hex, HELLO_SHA);
  assert_int_equal(size, 6);
  assert_false(verify_sums_get(v, "backups/b/other", NULL, NULL));
  verify_sums_free(v);
  /* tried: every way a hand-edited or hostile checksums file can be wrong */
  const char *bad[] = {
      "", "not json", "[]", "{}", "{\"files\":[]}",
      "{\"files\":{\"k\":{\"sha256\":\"abc\",\"size\":1}}}",                             /* short digest */
      "{\"files\":{\"k\":{\"sha256\":\"" HELLO_SHA "\",\"size\":-1}}}",                   /* negative size */
      "{\"files\":{\"k\":{\"sha256\":\"" HELLO_SHA "\",\"size\":\"6\"}}}",                /* size as text */
      "{\"files\":{\"k\":{\"size\":6}}}",                                                /* no digest */
      "{\"files\":{\"../k\":{\"sha256\":\"" HELLO_SHA "\",\"size\":6}}}",                 /* escaping key */
      "{\"files\":{\"k\":{\"sha256\":\"5891B5B522D5DF086D0FF0B110FBD9D21BB4FC7163AF34D08286A2E846F6BE03\",\"size\":6}}}",
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    v = (verify_sums *)1;
    if (verify_sums_parse(bad[i], strlen(bad[i]), &v) != KD_ERR_PARSE) fail_msg("accepted: %s", bad[i]);
    assert_null(v);
    assert_true(strlen(kd_errmsg()) > 0);
  }
}

static void stage_checks_digest_and_size(void **state) {
  (void)state;
  char dir[64], stage[64];
  objstore *s = fs_store(dir);
  strcpy(stage, "/tmp/kcmdr-stage-XXXXXX");
  assert_non_null(mkdtemp(stage));
  assert_int_equal(objstore_put(s, "backups/b/b.tar.gz", "hello\n", 6), KD_OK);
  assert_int_equal(objstore_put(s, "backups/b/b-logs.gz", "hellO\n", 6), KD_OK);  /* one byte changed */
  assert_int_equal(objstore_put(s, "backups/b/b-results.gz", "hello", 5), KD_OK); /* cut short */
  const char *sums = "{\"files\":{\"backups/b/b.tar.gz\":{\"sha256\":\"" HELLO_SHA "\",\"size\":6},"
                     "\"backups/b/b-logs.gz\":{\"sha256\":\"" HELLO_SHA "\",\"size\":6},"
                     "\"backups/b/b-results.gz\":{\"sha256\":\"" HELLO_SHA "\",\"size\":6},"
                     "\"backups/b/b-resource-list.json.gz\":{\"sha256\":\"" HELLO_SHA "\",\"size\":6}}}";
  assert_int_equal(objstore_put(s, "backups/b/b-checksums.json", sums, strlen(sums)), KD_OK);
  verify_sums *v = NULL;
  assert_int_equal(verify_sums_load(s, "b", &v), KD_OK);

  int fd = -1;
  bool verified = false;
  assert_int_equal(verify_stage(s, "backups/b/b.tar.gz", v, stage, 1 << 20, &fd, &verified), KD_OK);
  assert_true(verified);
  char buf[16] = {0};
  assert_int_equal(read(fd, buf, sizeof buf), 6);
  assert_string_equal(buf, "hello\n");
  close(fd);
  assert_int_equal(files_in(stage), 0); /* the staged copy was never visible by name */

  /* tried: one byte changed, a file cut short, a file deleted, a file bigger than the cap */
  assert_int_equal(verify_stage(s, "backups/b/b-logs.gz", v, stage, 1 << 20, &fd, &verified), KD_ERR_INTEGRITY);
  assert_non_null(strstr(kd_errmsg(), "SHA-256"));
  assert_int_equal(fd, -1);
  assert_int_equal(verify_stage(s, "backups/b/b-results.gz", v, NULL, 1 << 20, NULL, &verified), KD_ERR_INTEGRITY);
  assert_non_null(strstr(kd_errmsg(), "5 bytes"));
  assert_int_equal(verify_stage(s, "backups/b/b-resource-list.json.gz", v, stage, 1 << 20, &fd, NULL),
                   KD_ERR_NOTFOUND);
  assert_int_equal(verify_stage(s, "backups/b/b.tar.gz", v, stage, 5, &fd, NULL), KD_ERR_TOOBIG);
  assert_int_equal(fd, -1);
  assert_int_equal(files_in(stage), 0);

  /* a file the checksums do not list (a backup Velero wrote): staged, not verified */
  assert_int_equal(objstore_put(s, "backups/v/v.tar.gz", "hello\n", 6), KD_OK);
  verify_sums *none = NULL;
  assert_int_equal(verify_sums_load(s, "v", &none), KD_ERR_NOTFOUND);
  assert_null(none);
  verified = true;
  assert_int_equal(verify_stage(s, "backups/v/v.tar.gz", NULL, stage, 1 << 20, NULL, &verified), KD_OK);
  assert_false(verified);
  verify_sums_free(v);
  objstore_free(s);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, stage);
  assert_int_equal(system(cmd), 0);
}

int test_verify(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_shapes),
      cmocka_unit_test(stage_checks_digest_and_size),
  };
  return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
