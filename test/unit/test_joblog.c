/* test_joblog.c — a job's log and results as Velero writes them: the results' shape, cap and
 * invalid UTF-8 (a hostile object name must not drop the message); log lines quoted like
 * logrus' text format with NUL, quotes, newlines and a terminal escape from a tenant's object
 * kept harmless; the first failure wins under concurrent callers; nothing is logged after the
 * log was closed; a log that reaches its cap says so and stays a valid gzip. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "joblog.h"
#include "tests.h"

/* the uncompressed text of a closed log */
static char *gunzip(const void *p, size_t n, size_t *out_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
  size_t cap = 1 << 16, len = 0;
  char *out = malloc(cap);
  z.next_in = (Bytef *)(uintptr_t)p;
  z.avail_in = (uInt)n;
  int zr;
  do {
    if (cap - len < 65536) out = realloc(out, cap *= 2);
    z.next_out = (Bytef *)out + len;
    z.avail_out = (uInt)(cap - len - 1);
    zr = inflate(&z, Z_NO_FLUSH);
    len = cap - 1 - z.avail_out;
    assert_true(zr == Z_OK || zr == Z_STREAM_END);
  } while (zr != Z_STREAM_END);
  assert_int_equal(z.avail_in, 0); /* one member, nothing after it */
  inflateEnd(&z);
  out[len] = '\0';
  *out_len = len;
  return out;
}

/* {"errors":R,"warnings":R}: Velero's, cluster and per-namespace messages; past the cap only
 * counted; a message with invalid UTF-8 is kept (bytes replaced), not dropped. */
static void results_shape(void **state) {
  (void)state;
  joblog j;
  kd_buf out = KD_BUF_INIT(1 << 20);
  assert_int_equal(joblog_init(&j, "backup", "velero", "b1", 1), KD_OK);
  assert_int_equal(joblog_results_json(&j, &out), KD_OK);
  assert_string_equal(out.data, "{\"errors\":{\"cluster\":[],\"namespaces\":{},\"velero\":[]},"
                                "\"warnings\":{\"cluster\":[],\"namespaces\":{},\"velero\":[]}}");
  kd_buf_reset(&out);
  joblog_note(&j, JOBLOG_ERROR, NULL, "list failed");
  joblog_note(&j, JOBLOG_WARN, "", "pv gone");
  joblog_note(&j, JOBLOG_ERROR, "ns1", "bad \xff object");
  joblog_note(&j, JOBLOG_ERROR, "ns1", "second");
  joblog_note(&j, JOBLOG_INFO, "ns1", "info is only logged");
  assert_int_equal(joblog_count(&j, true), 3);
  assert_int_equal(joblog_count(&j, false), 1);
  assert_int_equal(joblog_results_json(&j, &out), KD_OK);
  assert_string_equal(out.data, "{\"errors\":{\"cluster\":[],\"namespaces\":{\"ns1\":[\"bad ? object\",\"second\"]},"
                                "\"velero\":[\"list failed\"]},\"warnings\":{\"cluster\":[\"pv gone\"],\"namespaces\":{},"
                                "\"velero\":[]}}");
  for (int i = 0; i < JOBLOG_RESULTS_MAX + 10; i++) joblog_note(&j, JOBLOG_WARN, NULL, "w");
  assert_int_equal(joblog_count(&j, false), JOBLOG_RESULTS_MAX + 11);
  kd_buf_reset(&out);
  assert_int_equal(joblog_results_json(&j, &out), KD_OK);
  json_t *r = json_loads(out.data, 0, NULL);
  assert_int_equal(json_array_size(json_object_get(json_object_get(r, "warnings"), "velero")), JOBLOG_RESULTS_MAX - 1);
  json_decref(r);
  kd_buf_free(&out);
  joblog_free(&j);
  joblog_free(&j); /* a second free is harmless */
}

/* Log lines: logrus text format, the message a JSON string (a tenant's NUL, quote, newline and
 * ESC cannot forge a line or reach a terminal raw), the job's reference last; lines after the
 * log was closed are dropped, the results still count them. */
static void log_lines(void **state) {
  (void)state;
  joblog j;
  assert_int_equal(joblog_init(&j, "restore", "kcm-system", "r1", 6), KD_OK);
  char evil[] = "a\"b\nlevel=error msg=forged\x1b[2J c\\d x";
  evil[sizeof evil - 2] = '\0'; /* a NUL cannot be passed through %s; a 0x01 stands in below */
  joblog_note(&j, JOBLOG_INFO, NULL, "object %s", evil);
  joblog_note(&j, JOBLOG_WARN, "ns", "ctl \x01 byte, UTF-8 \xc3\xbc kept");
  const void *gz;
  size_t n, len;
  assert_int_equal(joblog_close_log(&j, &gz, &n), KD_OK);
  joblog_note(&j, JOBLOG_ERROR, NULL, "after the close");
  assert_int_equal(joblog_count(&j, true), 1);
  char *text = gunzip(gz, n, &len);
  char *l1 = strstr(text, " level=info msg=\"object a\\\"b\\nlevel=error msg=forged\\u001b[2J c\\\\d \" restore=kcm-system/r1\n");
  assert_non_null(l1);
  assert_non_null(strstr(text, " level=warning msg=\"ctl \\u0001 byte, UTF-8 \xc3\xbc kept\" restore=kcm-system/r1\n"));
  assert_null(strstr(text, "after the close"));
  assert_int_equal(strncmp(text, "time=\"", 6), 0);
  int lines = 0;
  for (char *p = text; *p; p++) lines += *p == '\n';
  assert_int_equal(lines, 2);
  /* closing again returns the same bytes */
  const void *gz2;
  size_t n2;
  assert_int_equal(joblog_close_log(&j, &gz2, &n2), KD_OK);
  assert_int_equal(n2, n);
  free(text);
  joblog_free(&j);
}

struct racer {
  joblog *j;
  int id;
};

static void *race(void *p) {
  struct racer *r = p;
  for (int i = 0; i < 200; i++) joblog_note(r->j, JOBLOG_WARN, "ns", "racer %d line %d", r->id, i);
  joblog_fail(r->j, (kd_rc)(KD_ERR_TRANSPORT), "racer %d", r->id);
  return NULL;
}

/* Eight threads note and fail at once: every message counted, exactly one failure kept with its
 * code and message, logged once as "<kind> failed: ...". */
static void first_failure_wins(void **state) {
  (void)state;
  joblog j;
  assert_int_equal(joblog_init(&j, "backup", "ns", "b", 1), KD_OK);
  assert_false(joblog_failed(&j));
  assert_int_equal(joblog_fail_rc(&j), KD_OK);
  assert_string_equal(joblog_fail_msg(&j), "");
  pthread_t t[8];
  struct racer r[8];
  for (int i = 0; i < 8; i++) {
    r[i] = (struct racer){&j, i};
    assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
  }
  for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  assert_true(joblog_failed(&j));
  assert_int_equal(joblog_fail_rc(&j), KD_ERR_TRANSPORT);
  assert_int_equal(strncmp(joblog_fail_msg(&j), "racer ", 6), 0);
  assert_false(joblog_fail(&j, KD_ERR_IO, "later"));
  assert_int_equal(joblog_fail_rc(&j), KD_ERR_TRANSPORT);
  assert_int_equal(joblog_count(&j, false), 1600);
  assert_int_equal(joblog_count(&j, true), 1); /* "backup failed: racer N" */
  const void *gz;
  size_t n, len;
  assert_int_equal(joblog_close_log(&j, &gz, &n), KD_OK);
  char *text = gunzip(gz, n, &len);
  char *f = strstr(text, "msg=\"backup failed: racer ");
  assert_non_null(f);
  assert_null(strstr(f + 10, "backup failed"));
  free(text);
  joblog_free(&j);
}

/* A job that logs without end (a hostile namespace with a million bad objects): the log stops at
 * its cap with a line saying so, and remains one valid gzip member. */
static void log_cap(void **state) {
  (void)state;
  joblog j;
  assert_int_equal(joblog_init(&j, "backup", "ns", "b", 1), KD_OK);
  char big[1900];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  long lines = (long)(JOBLOG_LOG_MAX / sizeof big) + 100;
  for (long i = 0; i < lines; i++) joblog_note(&j, JOBLOG_INFO, NULL, "%s", big);
  joblog_fail(&j, KD_ERR_IO, "the disk is gone");
  joblog_note(&j, JOBLOG_ERROR, NULL, "nothing after the failure");
  const void *gz;
  size_t n, len;
  assert_int_equal(joblog_close_log(&j, &gz, &n), KD_OK);
  char *text = gunzip(gz, n, &len);
  assert_true(len <= JOBLOG_LOG_MAX);
  assert_true(len > JOBLOG_LOG_MAX - 20000);
  /* the cut is said, in logrus form, and the failure that ended the job still made it */
  const char *cut = strstr(text, "level=warning msg=\"log truncated: it reached its size cap\" backup=ns/b\n");
  assert_non_null(cut);
  const char *tail = "level=error msg=\"backup failed: the disk is gone\" backup=ns/b\n";
  assert_string_equal(text + len - strlen(tail), tail);
  assert_null(strstr(text, "nothing after the failure"));
  free(text);
  joblog_free(&j);
}

int test_joblog(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(results_shape), cmocka_unit_test(log_lines),
                                     cmocka_unit_test(first_failure_wins), cmocka_unit_test(log_cap)};
  return cmocka_run_group_tests_name("joblog", tests, NULL, NULL);
}
