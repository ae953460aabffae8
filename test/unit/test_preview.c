/* test_preview.c — the pure parts of the restore preview and backup diff: the unified line diff
 * (exact hunks as `diff -u` prints them; random texts whose diff, applied back, must give the
 * second text; the fallback past DIFF_MAX_EDITS), the stripping of server-set fields, the object
 * diff and the action words. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "preview.h"
#include "tests.h"

static char *udiff(const char *a, const char *b, int ctx) {
  kd_buf out = KD_BUF_INIT(DIFF_MAX_OUT);
  if (diff_text(a, b, "a", "b", ctx, &out) != KD_OK) fail_msg("diff_text: %s", kd_errmsg());
  char *s = out.len ? kd_buf_steal(&out) : strdup("");
  kd_buf_free(&out);
  return s;
}

static void expect_diff(const char *a, const char *b, int ctx, const char *want) {
  char *got = udiff(a, b, ctx);
  if (strcmp(got, want) != 0) fail_msg("diff of\n%s---\n%s---\ngot:\n%s\nwanted:\n%s", a, b, got, want);
  free(got);
}

static void equal_texts_give_nothing(void **state) {
  (void)state;
  expect_diff("", "", 3, "");
  expect_diff("a\nb\n", "a\nb\n", 3, "");
}

/* the hunks diff -u prints for the same inputs (GNU diffutils, checked by hand) */
static void hunks_as_diff_u(void **state) {
  (void)state;
  expect_diff("1\n2\n3\n4\n5\n6\n7\n", "1\n2\n3\nX\n5\n6\n7\n", 3, "--- a\n+++ b\n@@ -1,7 +1,7 @@\n 1\n 2\n 3\n-4\n+X\n 5\n 6\n 7\n");
  expect_diff("1\n2\n3\n4\n5\n6\n7\n", "1\n2\n3\nX\n5\n6\n7\n", 1, "--- a\n+++ b\n@@ -3,3 +3,3 @@\n 3\n-4\n+X\n 5\n");
  /* an insertion at the top: the empty old range names line 0 */
  expect_diff("a\nb\n", "new\na\nb\n", 0, "--- a\n+++ b\n@@ -0,0 +1 @@\n+new\n");
  /* a deletion at the end */
  expect_diff("a\nb\nc\n", "a\nb\n", 1, "--- a\n+++ b\n@@ -2,2 +2 @@\n b\n-c\n");
  /* two changes far apart: two hunks; close together: one */
  expect_diff("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "X\n2\n3\n4\n5\n6\n7\n8\nY\n", 1,
              "--- a\n+++ b\n@@ -1,2 +1,2 @@\n-1\n+X\n 2\n@@ -8,2 +8,2 @@\n 8\n-9\n+Y\n");
  expect_diff("1\n2\n3\n4\n5\n", "X\n2\n3\n4\nY\n", 2, "--- a\n+++ b\n@@ -1,5 +1,5 @@\n-1\n+X\n 2\n 3\n 4\n-5\n+Y\n");
  /* a last line without a newline is a line */
  expect_diff("a\nb", "a\nc", 3, "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n");
}

/* a shortest script: moving one line costs one deletion and one insertion, not a block */
static void shortest_script(void **state) {
  (void)state;
  expect_diff("a\nb\nc\nd\n", "b\nc\nd\na\n", 0, "--- a\n+++ b\n@@ -1 +0,0 @@\n-a\n@@ -4,0 +4 @@\n+a\n");
}

/* Apply a unified diff (as diff_text writes it) to a; returns the result (caller frees). */
static char *apply(const char *a, const char *diff) {
  kd_buf out = KD_BUF_INIT(1u << 24);
  const char *lines[4096];
  size_t n = 0;
  char *copy = strdup(a);
  for (char *p = copy; *p;) {
    char *nl = strchr(p, '\n');
    lines[n++] = p;
    if (!nl) break;
    *nl = '\0';
    p = nl + 1;
  }
  size_t at = 0; /* next line of a to copy */
  const char *d = diff;
  if (*d) d = strchr(strchr(d, '\n') + 1, '\n') + 1; /* the two header lines */
  while (*d) {
    const char *eol = strchr(d, '\n');
    if (d[0] == '@') {
      long start = strtol(d + 4, NULL, 10), len = 1;
      const char *comma = strchr(d + 4, ',');
      if (comma && comma < strchr(d + 4, ' ')) len = strtol(comma + 1, NULL, 10);
      size_t first = (size_t)(len ? start - 1 : start); /* 0-based line of a where the hunk starts */
      while (at < first) kd_buf_addf(&out, "%s\n", lines[at++]);
    } else if (d[0] == ' ') {
      kd_buf_add(&out, d + 1, (size_t)(eol - d));
      at++;
    } else if (d[0] == '-') {
      at++;
    } else if (d[0] == '+') {
      kd_buf_add(&out, d + 1, (size_t)(eol - d));
    }
    d = eol + 1;
  }
  while (at < n) kd_buf_addf(&out, "%s\n", lines[at++]);
  free(copy);
  char *s = out.len ? kd_buf_steal(&out) : strdup("");
  kd_buf_free(&out);
  return s;
}

/* random texts over a small alphabet (many repeats, the hard case for a line diff): the diff
 * applied to a gives b, and equal texts give no diff */
static void random_texts_round_trip(void **state) {
  (void)state;
  unsigned seed = 12345;
  for (int round = 0; round < 300; round++) {
    char a[2048] = "", b[2048] = "";
    int na = (int)(rand_r(&seed) % 40), nb = (int)(rand_r(&seed) % 40);
    for (int i = 0; i < na; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "l%u\n", rand_r(&seed) % 6);
    for (int i = 0; i < nb; i++) snprintf(b + strlen(b), sizeof b - strlen(b), "l%u\n", rand_r(&seed) % 6);
    for (int ctx = 0; ctx <= 3; ctx += 3) {
      char *d = udiff(a, b, ctx);
      char *got = apply(a, d);
      if (strcmp(got, b) != 0) fail_msg("round %d ctx %d: the diff does not give b\na:\n%s\nb:\n%s\ndiff:\n%s", round, ctx, a, b, d);
      if ((strcmp(a, b) == 0) != (d[0] == '\0')) fail_msg("round %d: equal texts must give no diff", round);
      free(got);
      free(d);
    }
  }
}

/* past DIFF_MAX_EDITS the middle is shown removed then added: still a correct diff */
static void too_many_edits_fall_back(void **state) {
  (void)state;
  size_t n = DIFF_MAX_EDITS + 10;
  char *a = malloc(n * 8 + 1), *b = malloc(n * 8 + 1);
  a[0] = b[0] = '\0';
  for (size_t i = 0, la = 0, lb = 0; i < n; i++) {
    la += (size_t)sprintf(a + la, "a%zu\n", i);
    lb += (size_t)sprintf(b + lb, "b%zu\n", i);
  }
  char *d = udiff(a, b, 3);
  assert_non_null(strstr(d, "@@ -1,1010 +1,1010 @@\n-a0\n"));
  /* removals first, then additions */
  assert_true(strstr(d, "-a1009\n") < strstr(d, "+b0\n"));
  free(d);
  free(a);
  free(b);
}

static json_t *J(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, 0, &e);
  if (!v) fail_msg("bad JSON in test: %s: %s", s, e.text);
  return v;
}

static void server_fields_stripped(void **state) {
  (void)state;
  json_t *o = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"namespace\":\"n\",\"uid\":\"u\","
                "\"resourceVersion\":\"7\",\"generation\":2,\"creationTimestamp\":\"2025-01-01T00:00:00Z\",\"selfLink\":\"/x\","
                "\"managedFields\":[{}],\"labels\":{\"a\":\"b\"},\"annotations\":{\"x\":\"y\"},\"ownerReferences\":[{\"uid\":\"o\"}]},"
                "\"data\":{\"k\":\"v\"},\"status\":{\"phase\":\"Ready\"}}");
  diff_strip_server(o);
  json_t *want = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"namespace\":\"n\","
                   "\"labels\":{\"a\":\"b\"},\"annotations\":{\"x\":\"y\"},\"ownerReferences\":[{\"uid\":\"o\"}]},\"data\":{\"k\":\"v\"}}");
  assert_true(json_equal(o, want));
  diff_strip_server(NULL); /* no crash */
  json_decref(o);
  json_decref(want);
}

static void object_diff(void **state) {
  (void)state;
  json_t *live = J("{\"kind\":\"Management\",\"metadata\":{\"name\":\"kcm\",\"resourceVersion\":\"9\",\"uid\":\"1\"},"
                   "\"spec\":{\"release\":\"kcm-9-9-9\",\"core\":{}},\"status\":{\"release\":\"kcm-9-9-9\"}}");
  json_t *after = J("{\"kind\":\"Management\",\"metadata\":{\"name\":\"kcm\",\"resourceVersion\":\"10\",\"uid\":\"1\"},"
                    "\"spec\":{\"release\":\"kcm-1-0-0\",\"core\":{}},\"status\":{\"release\":\"kcm-1-1-1\"}}");
  kd_buf out = KD_BUF_INIT(DIFF_MAX_OUT);
  bool changed = false;
  assert_int_equal(diff_objects(live, after, "cluster/m", "restore/m", &out, &changed), KD_OK);
  assert_true(changed);
  assert_string_equal(out.data, "--- cluster/m\n+++ restore/m\n@@ -5,6 +5,6 @@\n   },\n   \"spec\": {\n     \"core\": {},\n"
                                "-    \"release\": \"kcm-9-9-9\"\n+    \"release\": \"kcm-1-0-0\"\n   }\n }\n");
  kd_buf_free(&out);
  /* server-set fields and status only: no change, no text */
  json_object_set_new(json_object_get(after, "spec"), "release", json_string("kcm-9-9-9"));
  kd_buf_init(&out, DIFF_MAX_OUT);
  assert_int_equal(diff_objects(live, after, "a", "b", &out, &changed), KD_OK);
  assert_false(changed);
  assert_int_equal(out.len, 0);
  /* a missing side: everything added */
  assert_int_equal(diff_objects(NULL, after, "a", "b", &out, &changed), KD_OK);
  assert_true(changed);
  assert_non_null(strstr(out.data, "+  \"kind\": \"Management\",\n"));
  kd_buf_free(&out);
  /* the inputs are not touched */
  assert_string_equal(json_string_value(json_object_get(json_object_get(live, "metadata"), "resourceVersion")), "9");
  json_decref(live);
  json_decref(after);
}

static void action_words(void **state) {
  (void)state;
  assert_string_equal(preview_action(RESTORE_V_CREATE), "create");
  assert_string_equal(preview_action(RESTORE_V_UPDATE), "update");
  assert_string_equal(preview_action(RESTORE_V_UNCHANGED), "unchanged");
  assert_string_equal(preview_action(RESTORE_V_CONFLICT), "conflict");
  assert_string_equal(preview_action(RESTORE_V_SKIP), "skip");
  assert_string_equal(preview_action(RESTORE_V_FAIL), "fail");
}

/* tried: backup diff's running totals against their caps: up to the cap exactly (kept), one past
 * it, a single addition larger than the cap and one that would wrap size_t around; asserted:
 * every refusal is KD_ERR_TOOBIG naming the unit, and leaves the total as it was (nothing is
 * half-counted), so a comparison that does not fit fails instead of giving a short list. */
static void caps_refuse_and_keep_the_total(void **state) {
  (void)state;
  size_t total = 0;
  assert_int_equal(preview_cap_add(&total, 6, 10, "things"), KD_OK);
  assert_int_equal(preview_cap_add(&total, 4, 10, "things"), KD_OK);
  assert_int_equal(total, 10);
  assert_int_equal(preview_cap_add(&total, 1, 10, "things"), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), "more than 10 things"));
  assert_int_equal(total, 10);
  assert_int_equal(preview_cap_add(&total, 0, 10, "things"), KD_OK);
  total = 0;
  assert_int_equal(preview_cap_add(&total, 11, 10, "things"), KD_ERR_TOOBIG);
  assert_int_equal(total, 0);
  total = 5;
  assert_int_equal(preview_cap_add(&total, SIZE_MAX - 2, SIZE_MAX - 1, "bytes"), KD_ERR_TOOBIG);
  assert_int_equal(total, 5);
  assert_int_equal(preview_cap_add(&total, SIZE_MAX - 6, SIZE_MAX - 1, "bytes"), KD_OK);
  assert_true(total == SIZE_MAX - 1);
}

int test_preview(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(equal_texts_give_nothing), cmocka_unit_test(hunks_as_diff_u),       cmocka_unit_test(shortest_script),
      cmocka_unit_test(random_texts_round_trip),  cmocka_unit_test(too_many_edits_fall_back), cmocka_unit_test(server_fields_stripped),
      cmocka_unit_test(object_diff),              cmocka_unit_test(action_words),
      cmocka_unit_test(caps_refuse_and_keep_the_total),
  };
  return cmocka_run_group_tests_name("preview", tests, NULL, NULL);
}
