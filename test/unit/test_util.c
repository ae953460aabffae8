/* test_util.c — buffers and their caps, base64 (RFC 4648 §10 vectors), RFC 3339 times, errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tests.h"
#include "util.h"

static void buf_grows_and_caps(void **state) {
  (void)state;
  kd_buf b = KD_BUF_INIT(10);
  assert_int_equal(kd_buf_adds(&b, "hello"), KD_OK);
  assert_int_equal(kd_buf_addf(&b, "%d", 1234), KD_OK);
  assert_string_equal(b.data, "hello1234");
  /* tried: one byte past the cap of 10 after 9 used, then 2: the second fails, data unchanged */
  assert_int_equal(kd_buf_adds(&b, "x"), KD_OK);
  assert_int_equal(kd_buf_adds(&b, "y"), KD_ERR_TOOBIG);
  assert_string_equal(b.data, "hello1234x");
  assert_non_null(strstr(kd_errmsg(), "cap of 10"));
  kd_buf_consume(&b, 5);
  assert_string_equal(b.data, "1234x");
  char *s = kd_buf_steal(&b);
  assert_string_equal(s, "1234x");
  assert_null(b.data);
  free(s);
  /* a long formatted string goes through the heap path */
  kd_buf big = KD_BUF_INIT(4096);
  assert_int_equal(kd_buf_addf(&big, "%0600d", 7), KD_OK);
  assert_int_equal(big.len, 600);
  kd_buf_free(&big);
}

static void base64_rfc4648_vectors(void **state) {
  (void)state;
  static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char *e = kd_base64_encode((const unsigned char *)plain[i], strlen(plain[i]));
    assert_string_equal(e, enc[i]);
    free(e);
    unsigned char *d;
    size_t n;
    assert_int_equal(kd_base64_decode(enc[i], strlen(enc[i]), &d, &n), KD_OK);
    assert_int_equal(n, strlen(plain[i]));
    assert_memory_equal(d, plain[i], n);
    free(d);
  }
  unsigned char *d;
  size_t n;
  /* whitespace inside (as in PEM or wrapped kubeconfig data) is ignored; missing padding is fine */
  assert_int_equal(kd_base64_decode("Zm9v\nYmE", 8, &d, &n), KD_OK);
  assert_memory_equal(d, "fooba", 5);
  free(d);
  /* tried: a character outside the alphabet, data after padding, an impossible length */
  assert_int_equal(kd_base64_decode("Zm9v*", 5, &d, &n), KD_ERR_PARSE);
  assert_int_equal(kd_base64_decode("Zg==Zg", 6, &d, &n), KD_ERR_PARSE);
  assert_int_equal(kd_base64_decode("Z", 1, &d, &n), KD_ERR_PARSE);
}

static void time_round_trip(void **state) {
  (void)state;
  time_t t;
  char out[21];
  assert_int_equal(kd_time_parse("2025-01-17T18:00:12Z", &t), KD_OK);
  assert_int_equal(t, 1737136812);
  kd_time_format(t, out);
  assert_string_equal(out, "2025-01-17T18:00:12Z");
  assert_int_equal(kd_time_parse("2025-01-17T19:00:12.123456+01:00", &t), KD_OK);
  assert_int_equal(t, 1737136812);
  assert_int_equal(kd_time_parse("2025-01-17T13:00:12-05:00", &t), KD_OK);
  assert_int_equal(t, 1737136812);
  /* tried: no zone, bad month, trailing text, empty, NULL */
  assert_int_equal(kd_time_parse("2025-01-17T18:00:12", &t), KD_ERR_PARSE);
  assert_int_equal(kd_time_parse("2025-13-17T18:00:12Z", &t), KD_ERR_PARSE);
  assert_int_equal(kd_time_parse("2025-01-17T18:00:12Zjunk", &t), KD_ERR_PARSE);
  assert_int_equal(kd_time_parse("", &t), KD_ERR_PARSE);
  assert_int_equal(kd_time_parse(NULL, &t), KD_ERR_PARSE);
  /* tried: times a careless ttl or a far cron slot produce (year 10000 and beyond, the largest
   * time_t, before year 1): always 20 characters Kubernetes accepts, clamped, never garbage */
  memset(out, 'x', sizeof out);
  kd_time_format((time_t)253402300800LL, out);
  assert_string_equal(out, "9999-12-31T23:59:59Z");
  kd_time_format((time_t)INT64_MAX, out);
  assert_string_equal(out, "9999-12-31T23:59:59Z");
  kd_time_format((time_t)INT64_MIN, out);
  assert_string_equal(out, "0001-01-01T00:00:00Z");
  kd_time_format((time_t)253402300799LL, out);
  assert_string_equal(out, "9999-12-31T23:59:59Z");
  assert_int_equal(kd_time_parse(out, &t), KD_OK);
  assert_int_equal(t, (time_t)253402300799LL);
  kd_time_format(0, out);
  assert_string_equal(out, "1970-01-01T00:00:00Z");
  /* years below 1000 keep four digits (strftime's %Y does not pad) */
  assert_int_equal(kd_time_parse("0500-06-15T12:34:56Z", &t), KD_OK);
  kd_time_format(t, out);
  assert_string_equal(out, "0500-06-15T12:34:56Z");
}

static void errors_wrap(void **state) {
  (void)state;
  assert_int_equal(kd_fail(KD_ERR_NOTFOUND, "thing %d missing", 3), KD_ERR_NOTFOUND);
  assert_string_equal(kd_errmsg(), "thing 3 missing");
  assert_int_equal(kd_fail_wrap(KD_ERR_CONFIG, "loading %s", "x"), KD_ERR_CONFIG);
  assert_string_equal(kd_errmsg(), "loading x: thing 3 missing");
  kd_clear_error();
  assert_string_equal(kd_errmsg(), "");
  assert_string_equal(kd_rc_name(KD_ERR_GONE), "gone");
}

static void read_file_caps(void **state) {
  (void)state;
  char path[] = "/tmp/kcmdr-unit-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "0123456789", 10), 10);
  close(fd);
  char *s;
  size_t n;
  assert_int_equal(kd_read_file(path, 10, &s, &n), KD_OK);
  assert_int_equal(n, 10);
  free(s);
  /* tried: a cap one byte smaller than the file; a file that does not exist */
  assert_int_equal(kd_read_file(path, 9, &s, &n), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), path));
  unlink(path);
  assert_int_equal(kd_read_file(path, 9, &s, &n), KD_ERR_IO);
  assert_non_null(strstr(kd_errmsg(), "No such file"));
}

static void utf8_cut_never_splits_a_character(void **state) {
  (void)state;
  /* tried: an Event message cut at 1023 bytes in the middle of "é" (2 bytes), "€" (3) or an
   * emoji (4) made an invalid UTF-8 string that the API server would not take */
  const char *s = "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
  size_t want[] = {0, 1, 2, 2, 4, 4, 4, 7, 7, 7, 7, 11, 12};
  for (size_t len = 0; len < KD_ARRAY_LEN(want); len++) assert_int_equal(kd_utf8_cut(s, len), want[len]);
  assert_int_equal(kd_utf8_cut("\x80\x80", 2), 2); /* not UTF-8 at all: left alone */
}

/* JSON string literals: every byte value 0..255 (NUL, quotes, backslash, controls, invalid
 * UTF-8 a tenant may put in a name) decodes back to the same bytes with jansson; the short
 * escapes are Go's (\n \r \t), everything else below 0x20 is \u00XX; a full buffer is left as
 * it was. */
static void json_string_literals(void **state) {
  (void)state;
  char all[256];
  for (int i = 0; i < 256; i++) all[i] = (char)i;
  kd_buf b = KD_BUF_INIT(4096);
  assert_int_equal(kd_buf_add_json_string(&b, all, 128), KD_OK);
  json_error_t err;
  json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  assert_non_null(j);
  assert_int_equal(json_string_length(j), 128);
  assert_memory_equal(json_string_value(j), all, 128);
  json_decref(j);
  assert_non_null(memmem(b.data, b.len, "\\u0000\\u0001", 12));
  assert_non_null(memmem(b.data, b.len, "\\t\\n\\u000b\\u000c\\r", 18));
  assert_non_null(memmem(b.data, b.len, "!\\\"#", 4));
  kd_buf_reset(&b);
  assert_int_equal(kd_buf_add_json_string(&b, all + 128, 128), KD_OK); /* bytes >= 0x80 unchanged */
  assert_int_equal(b.len, 130);
  assert_memory_equal(b.data + 1, all + 128, 128);
  kd_buf small = KD_BUF_INIT(10);
  assert_int_equal(kd_buf_add_json_string(&small, "abc", 3), KD_OK);
  assert_int_equal(kd_buf_add_json_string(&small, "\n\n\n", 3), KD_ERR_TOOBIG);
  assert_true(small.len <= 10);
  kd_buf_free(&small);
  kd_buf_free(&b);
}

int test_util(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(utf8_cut_never_splits_a_character),
      cmocka_unit_test(buf_grows_and_caps), cmocka_unit_test(base64_rfc4648_vectors),
      cmocka_unit_test(time_round_trip),    cmocka_unit_test(errors_wrap),
      cmocka_unit_test(read_file_caps), cmocka_unit_test(json_string_literals),
  };
  return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
