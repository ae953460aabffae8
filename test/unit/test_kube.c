/* test_kube.c — the client's pure parts: URL paths and query encoding, backoff bounds, and the
 * watch event splitter fed with every possible chunk boundary. */
#include <stdlib.h>
#include <string.h>

#include "kube.h"
#include "tests.h"

static void paths(void **state) {
  (void)state;
  char p[KUBE_MAX_PATH];
  struct kube_res core = {"", "v1", "secrets", "Secret", true};
  struct kube_res mb = {"k0rdent.mirantis.com", "v1beta1", "managementbackups", "ManagementBackup", false};
  assert_int_equal(kube_path(&core, "kcm-system", "s1", NULL, NULL, p), KD_OK);
  assert_string_equal(p, "/api/v1/namespaces/kcm-system/secrets/s1");
  assert_int_equal(kube_path(&core, NULL, NULL, NULL, "limit=5", p), KD_OK);
  assert_string_equal(p, "/api/v1/secrets?limit=5");
  /* a namespace given for a cluster-scoped resource is ignored */
  assert_int_equal(kube_path(&mb, "kcm-system", "kcm", "status", NULL, p), KD_OK);
  assert_string_equal(p, "/apis/k0rdent.mirantis.com/v1beta1/managementbackups/kcm/status");
  /* tried: names that would change the path */
  assert_int_equal(kube_path(&core, "ns", "../x", NULL, NULL, p), KD_ERR_INVALID);
  assert_int_equal(kube_path(&core, "ns", "a?b", NULL, NULL, p), KD_ERR_INVALID);
  assert_int_equal(kube_path(&core, "", "a", NULL, NULL, p), KD_ERR_INVALID);
  char longname[KUBE_MAX_PATH + 10];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(kube_path(&core, "ns", longname, NULL, NULL, p), KD_ERR_TOOBIG);
}

static void query_escape(void **state) {
  (void)state;
  char out[256];
  assert_int_equal(kube_query_escape("k0rdent.mirantis.com/component=kcm", out, sizeof out), KD_OK);
  assert_string_equal(out, "k0rdent.mirantis.com%2Fcomponent%3Dkcm");
  assert_int_equal(kube_query_escape("a in (x,y),!b", out, sizeof out), KD_OK);
  assert_string_equal(out, "a%20in%20%28x%2Cy%29%2C%21b");
  assert_int_equal(kube_query_escape("~-_.", out, sizeof out), KD_OK);
  assert_string_equal(out, "~-_.");
  /* tried: an output buffer too small by one */
  assert_int_equal(kube_query_escape("a/b", out, 5), KD_ERR_TOOBIG);
  assert_int_equal(kube_query_escape("a/b", out, 6), KD_OK);
}

static void backoff_bounds(void **state) {
  (void)state;
  for (unsigned seed = 0; seed < 200; seed++) {
    int64_t prev_max = 0;
    for (int a = 0; a < 40; a++) {
      int64_t d = kube_backoff_ms(a, 200, 10000, seed);
      int64_t full = 200;
      for (int i = 0; i < a && full < 10000; i++) full *= 2;
      if (full > 10000) full = 10000;
      assert_true(d >= full / 2 && d <= full);
      assert_true(d <= 10000 && d >= 100);
      if (full > prev_max) prev_max = full;
    }
  }
}

struct seen {
  char log[4096];
  int n;
  int stop_after;
};

static bool record(enum kube_event_type t, json_t *obj, void *ud) {
  struct seen *s = ud;
  static const char *names[] = {"A", "M", "D", "B"};
  const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  size_t len = strlen(s->log);
  snprintf(s->log + len, sizeof s->log - len, "%s:%s;", names[t], name ? name : "-");
  s->n++;
  return s->stop_after == 0 || s->n < s->stop_after;
}

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"10\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"11\"},\"data\":{\"x\":\"line\\nbreak\"}}}\r\n"
    "\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"12\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"\xc3\xa9\",\"resourceVersion\":\"13\"}}}\n";
static const char want[] = "A:a;M:b;B:-;D:\xc3\xa9;";

static void splitter_every_boundary(void **state) {
  (void)state;
  size_t n = strlen(stream);
  /* every split into two chunks, and every split into three chunks at (i, j) */
  for (size_t i = 0; i <= n; i++) {
    for (size_t j = i; j <= n; j += (i % 7 == 0 ? 1 : 13)) {
      struct seen s = {"", 0, 0};
      struct kube_watch_splitter sp;
      kube_watch_splitter_init(&sp, record, &s);
      assert_int_equal(kube_watch_splitter_feed(&sp, stream, i), KD_OK);
      assert_int_equal(kube_watch_splitter_feed(&sp, stream + i, j - i), KD_OK);
      assert_int_equal(kube_watch_splitter_feed(&sp, stream + j, n - j), KD_OK);
      if (strcmp(s.log, want) != 0) fail_msg("split at %zu,%zu: got %s", i, j, s.log);
      assert_string_equal(sp.last_rv, "13");
      kube_watch_splitter_free(&sp);
    }
  }
  /* byte by byte */
  struct seen s = {"", 0, 0};
  struct kube_watch_splitter sp;
  kube_watch_splitter_init(&sp, record, &s);
  for (size_t i = 0; i < n; i++) assert_int_equal(kube_watch_splitter_feed(&sp, stream + i, 1), KD_OK);
  assert_string_equal(s.log, want);
  kube_watch_splitter_free(&sp);
}

static void splitter_stops_and_errors(void **state) {
  (void)state;
  struct seen s = {"", 0, 2};
  struct kube_watch_splitter sp;
  kube_watch_splitter_init(&sp, record, &s);
  /* the handler asks to stop after two events: the rest is ignored */
  assert_int_equal(kube_watch_splitter_feed(&sp, stream, strlen(stream)), KD_OK);
  assert_true(sp.stopped);
  assert_string_equal(s.log, "A:a;M:b;");
  kube_watch_splitter_free(&sp);

  /* tried: a 410 ERROR event -> KD_ERR_GONE with the code kept */
  const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"too old resource version\"}}\n";
  kube_watch_splitter_init(&sp, record, &s);
  assert_int_equal(kube_watch_splitter_feed(&sp, gone, strlen(gone)), KD_ERR_GONE);
  assert_int_equal(sp.error_code, 410);
  assert_non_null(strstr(kd_errmsg(), "too old"));
  kube_watch_splitter_free(&sp);

  /* tried: a line that is not JSON, an unknown type, an event with no object */
  const char *bad[] = {"not json\n", "{\"type\":\"WHAT\",\"object\":{}}\n", "{\"type\":\"ADDED\"}\n"};
  for (int i = 0; i < 3; i++) {
    kube_watch_splitter_init(&sp, record, &s);
    assert_int_equal(kube_watch_splitter_feed(&sp, bad[i], strlen(bad[i])), KD_ERR_PARSE);
    kube_watch_splitter_free(&sp);
  }

  /* tried: an event line larger than the cap, without a newline -> refused, not buffered forever */
  size_t big = KUBE_MAX_EVENT / 4;
  char *chunk = malloc(big);
  assert_non_null(chunk);
  memset(chunk, 'x', big);
  kube_watch_splitter_init(&sp, record, &s);
  kd_rc rc = KD_OK;
  for (int i = 0; i < 5 && rc == KD_OK; i++) rc = kube_watch_splitter_feed(&sp, chunk, big);
  assert_int_equal(rc, KD_ERR_TOOBIG);
  kube_watch_splitter_free(&sp);
  free(chunk);
}

int test_kube(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(paths),
      cmocka_unit_test(query_escape),
      cmocka_unit_test(backoff_bounds),
      cmocka_unit_test(splitter_every_boundary),
      cmocka_unit_test(splitter_stops_and_errors),
  };
  return cmocka_run_group_tests_name("kube", tests, NULL, NULL);
}
