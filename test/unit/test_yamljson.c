/* test_yamljson.c — YAML to JSON: scalar typing, anchors, documents, and hostile input. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "yamljson.h"

static json_t *one(const char *y) {
  json_t *v = NULL;
  assert_int_equal(yj_parse_one(y, strlen(y), &v), KD_OK);
  return v;
}

static void scalars_are_typed_like_yaml(void **state) {
  (void)state;
  json_t *v = one("a: 1\nb: true\nc: ~\nd: '1'\ne: 1.5\nf: hello world\ng: \"no\"\nh: no\ni: 0x10\nj: 007\nk: -3\n");
  assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
  assert_true(json_is_true(json_object_get(v, "b")));
  assert_true(json_is_null(json_object_get(v, "c")));
  assert_string_equal(json_string_value(json_object_get(v, "d")), "1");
  assert_true(json_is_real(json_object_get(v, "e")));
  assert_string_equal(json_string_value(json_object_get(v, "f")), "hello world");
  assert_string_equal(json_string_value(json_object_get(v, "g")), "no");
  assert_true(json_is_false(json_object_get(v, "h")));
  assert_string_equal(json_string_value(json_object_get(v, "i")), "0x10");
  assert_string_equal(json_string_value(json_object_get(v, "j")), "007");
  assert_int_equal(json_integer_value(json_object_get(v, "k")), -3);
  json_decref(v);
}

static void anchors_aliases_and_merge(void **state) {
  (void)state;
  json_t *v = one("base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  y: 3\nlist: [&s str, *s]\n");
  assert_true(json_equal(json_object_get(v, "base"), json_object_get(v, "use")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "merged"), "x")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "merged"), "y")), 3);
  assert_string_equal(json_string_value(json_array_get(json_object_get(v, "list"), 1)), "str");
  json_decref(v);
}

static void documents(void **state) {
  (void)state;
  json_t *all = NULL;
  const char *y = "---\na: 1\n---\n---\nb: 2\n...\n";
  assert_int_equal(yj_parse_all(y, strlen(y), &all), KD_OK);
  assert_int_equal(json_array_size(all), 2);
  json_decref(all);
  json_t *v = NULL;
  /* tried: two documents where one is expected */
  assert_int_equal(yj_parse_one("a: 1\n---\nb: 2\n", 14, &v), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "found 2"));
  v = one("");
  assert_true(json_is_object(v) && json_object_size(v) == 0);
  json_decref(v);
}

static void hostile_input(void **state) {
  (void)state;
  json_t *v = NULL;
  /* tried: unclosed flow mapping -> parse error with a line number */
  assert_int_equal(yj_parse_one("a: {b: 1\n", 9, &v), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "line"));
  /* tried: alias with no anchor */
  assert_int_equal(yj_parse_one("a: *nope\n", 9, &v), KD_ERR_PARSE);
  /* tried: 200 levels of nesting -> refused, no stack overflow */
  char deep[1000];
  memset(deep, '[', 200);
  memset(deep + 200, ']', 200);
  deep[400] = '\0';
  assert_int_equal(yj_parse_one(deep, 400, &v), KD_ERR_TOOBIG);
  /* tried: a mapping as a key */
  assert_int_equal(yj_parse_one("? {a: 1}\n: 2\n", 13, &v), KD_ERR_PARSE);
  /* tried: invalid UTF-8 */
  assert_int_equal(yj_parse_one("a: \"\xff\xfe\"\n", 8, &v), KD_ERR_PARSE);
}

int test_yamljson(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scalars_are_typed_like_yaml),
      cmocka_unit_test(anchors_aliases_and_merge),
      cmocka_unit_test(documents),
      cmocka_unit_test(hostile_input),
  };
  return cmocka_run_group_tests_name("yamljson", tests, NULL, NULL);
}
