/* test_jsonpatch.c — JSON Patch, merge patch and create-merge-patch: the RFC 6902 and RFC 7386
 * Appendix A vectors, evanphx/json-patch's quirks as Velero sees them (checked against the real
 * library by test/diff/t_jsonpatch.sh), and hostile or careless input. */
#include <stdlib.h>
#include <string.h>

#include "jsonpatch.h"
#include "tests.h"

static json_t *J(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!v) fail_msg("bad JSON in test: %s: %s", s, e.text);
  return v;
}

/* apply patch to doc: expect (NULL: failure) */
static void check_apply(const char *doc, const char *patch, const char *expect) {
  json_t *d = J(doc), *p = J(patch), *out = NULL, *before = json_deep_copy(d);
  kd_rc rc = jsonpatch_apply(d, p, &out);
  if (!expect) {
    if (rc == KD_OK) fail_msg("%s on %s applied: %s", patch, doc, json_dumps(out, JSON_COMPACT));
    assert_int_equal(rc, KD_ERR_INVALID);
    assert_null(out);
  } else {
    if (rc != KD_OK) fail_msg("%s on %s failed: %s", patch, doc, kd_errmsg());
    json_t *e = J(expect);
    if (!json_equal(out, e)) fail_msg("%s on %s gave %s, not %s", patch, doc, json_dumps(out, JSON_COMPACT), expect);
    json_decref(e);
  }
  assert_true(json_equal(d, before)); /* the document is never modified */
  json_decref(out);
  json_decref(before);
  json_decref(d);
  json_decref(p);
}

/* the same through the text entry point, with the failure class */
static void check_text(const char *doc, const char *text, const char *expect, jsonpatch_err why) {
  json_t *d = J(doc), *out = NULL;
  jsonpatch_err got = JSONPATCH_OK;
  kd_rc rc = jsonpatch_apply_text(d, text, strlen(text), &out, &got);
  if (expect) {
    if (rc != KD_OK) fail_msg("%s failed: %s", text, kd_errmsg());
    json_t *e = J(expect);
    assert_true(json_equal(out, e));
    json_decref(e);
  } else {
    assert_int_equal(rc, KD_ERR_INVALID);
    if (got != why) fail_msg("%s: class %d, expected %d (%s)", text, got, why, kd_errmsg());
  }
  json_decref(out);
  json_decref(d);
}

static void rfc6902_appendix_a(void **state) {
  (void)state;
  check_apply("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]", "{\"baz\":\"qux\",\"foo\":\"bar\"}");
  check_apply("{\"foo\":[\"bar\",\"baz\"]}", "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]", "{\"foo\":[\"bar\",\"qux\",\"baz\"]}");
  check_apply("{\"baz\":\"qux\",\"foo\":\"bar\"}", "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}");
  check_apply("{\"foo\":[\"bar\",\"qux\",\"baz\"]}", "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]", "{\"foo\":[\"bar\",\"baz\"]}");
  check_apply("{\"baz\":\"qux\",\"foo\":\"bar\"}", "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]", "{\"baz\":\"boo\",\"foo\":\"bar\"}");
  check_apply("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
              "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]",
              "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}");
  check_apply("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}", "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
              "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}");
  check_apply("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
              "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
              "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}");
  check_apply("{\"baz\":\"qux\"}", "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", NULL);
  check_apply("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]",
              "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}");
  check_apply("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}]", "{\"foo\":\"bar\",\"baz\":\"qux\"}");
  check_apply("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", NULL);
  check_apply("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]", "{\"/\":9,\"~1\":10}");
  check_apply("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", NULL);
  check_apply("{\"foo\":[\"bar\"]}", "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]", "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}");
  /* A.13, duplicate "op": Go keeps the last one (remove), which then misses /baz */
  check_text("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"op\":\"remove\"}]", NULL, JSONPATCH_MISSING);
}

/* Careless paths and indexes, each as evanphx answers it. */
static void paths_and_indexes(void **state) {
  (void)state;
  const char *doc = "{\"a\":[10,20,30],\"m\":{\"~\":1,\"/\":2,\"\":3}}";
  check_apply(doc, "[{\"op\":\"replace\",\"path\":\"/a/01\",\"value\":0}]", "{\"a\":[10,0,30],\"m\":{\"~\":1,\"/\":2,\"\":3}}");
  check_apply(doc, "[{\"op\":\"replace\",\"path\":\"/a/+1\",\"value\":0}]", "{\"a\":[10,0,30],\"m\":{\"~\":1,\"/\":2,\"\":3}}");
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"/a/-1\"}]", "{\"a\":[10,20],\"m\":{\"~\":1,\"/\":2,\"\":3}}");
  check_apply(doc, "[{\"op\":\"add\",\"path\":\"/a/-1\",\"value\":5}]", "{\"a\":[10,20,30,5],\"m\":{\"~\":1,\"/\":2,\"\":3}}");
  check_apply(doc, "[{\"op\":\"add\",\"path\":\"/a/-4\",\"value\":5}]", "{\"a\":[5,10,20,30],\"m\":{\"~\":1,\"/\":2,\"\":3}}");
  check_apply(doc, "[{\"op\":\"add\",\"path\":\"/a/-5\",\"value\":5}]", NULL);
  check_apply(doc, "[{\"op\":\"add\",\"path\":\"/a/3\",\"value\":5}]", "{\"a\":[10,20,30,5],\"m\":{\"~\":1,\"/\":2,\"\":3}}");
  check_apply(doc, "[{\"op\":\"add\",\"path\":\"/a/4\",\"value\":5}]", NULL);
  /* "-" only appends with add */
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"/a/-\"}]", NULL);
  check_apply(doc, "[{\"op\":\"replace\",\"path\":\"/a/-\",\"value\":1}]", NULL);
  check_apply(doc, "[{\"op\":\"test\",\"path\":\"/a/-\",\"value\":1}]", NULL);
  /* huge and odd indexes */
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"/a/99999999999999999999\"}]", NULL);
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"/a/-9223372036854775808\"}]", NULL);
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"/a/1e0\"}]", NULL);
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"/a/ 1\"}]", NULL);
  /* escapes: ~0 ~1, left to right; other ~ stay */
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"/m/~0\"},{\"op\":\"remove\",\"path\":\"/m/~1\"},{\"op\":\"remove\",\"path\":\"/m/\"}]",
              "{\"a\":[10,20,30],\"m\":{}}");
  check_apply("{\"~2\":1}", "[{\"op\":\"remove\",\"path\":\"/~2\"}]", "{}");
  /* no "/": missing; text before the first "/" is ignored */
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"\"}]", NULL);
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"m\"}]", NULL);
  check_apply(doc, "[{\"op\":\"remove\",\"path\":\"junk/m\"}]", "{\"a\":[10,20,30]}");
  /* walking through a scalar, a null and a missing member */
  check_apply("{\"s\":\"x\",\"n\":null}", "[{\"op\":\"add\",\"path\":\"/s/x\",\"value\":1}]", NULL);
  check_apply("{\"s\":\"x\",\"n\":null}", "[{\"op\":\"add\",\"path\":\"/n/x\",\"value\":1}]", NULL);
  check_apply("{\"s\":\"x\",\"n\":null}", "[{\"op\":\"add\",\"path\":\"/q/x\",\"value\":1}]", NULL);
  /* an array document; a scalar or null document is refused */
  check_apply("[1,2]", "[{\"op\":\"add\",\"path\":\"/0\",\"value\":0}]", "[0,1,2]");
  check_apply("5", "[]", NULL);
  check_apply("null", "[]", NULL);
  check_apply("{\"a\":1}", "null", "{\"a\":1}"); /* a null patch has no operations */
  check_apply("{\"a\":1}", "{}", NULL);
  check_apply("{\"a\":1}", "[5]", NULL);
  check_apply("{\"a\":1}", "[null]", NULL);
}

static void operations_and_values(void **state) {
  (void)state;
  /* test: 1 and 1.0 are the same number as Go prints both; -0.0 is not 0 */
  check_apply("{\"n\":1.0}", "[{\"op\":\"test\",\"path\":\"/n\",\"value\":1}]", "{\"n\":1.0}");
  check_apply("{\"n\":-0.0}", "[{\"op\":\"test\",\"path\":\"/n\",\"value\":0.0}]", NULL);
  check_apply("{\"o\":{\"a\":[1,{\"b\":\"c\"}],\"d\":null}}",
              "[{\"op\":\"test\",\"path\":\"/o\",\"value\":{\"d\":null,\"a\":[1,{\"b\":\"c\"}]}}]", "{\"o\":{\"a\":[1,{\"b\":\"c\"}],\"d\":null}}");
  /* test null on a missing member passes; without a value it would crash evanphx: refused */
  check_apply("{}", "[{\"op\":\"test\",\"path\":\"/nope\",\"value\":null}]", "{}");
  check_text("{\"n\":null}", "[{\"op\":\"test\",\"path\":\"/n\"}]", NULL, JSONPATCH_CRASH);
  check_text("{\"n\":1}", "[{\"op\":\"test\",\"path\":\"/n\"}]", NULL, JSONPATCH_TEST_FAILED);
  /* add without a value adds null; replace needs the member */
  check_apply("{}", "[{\"op\":\"add\",\"path\":\"/x\"}]", "{\"x\":null}");
  check_apply("{}", "[{\"op\":\"replace\",\"path\":\"/x\",\"value\":1}]", NULL);
  check_apply("{\"x\":null}", "[{\"op\":\"replace\",\"path\":\"/x\",\"value\":1}]", "{\"x\":1}");
  /* move removes first: into its own child fails; onto itself is a no-op */
  check_apply("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/c\"}]", NULL);
  check_apply("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]", "{\"a\":{\"b\":1}}");
  check_apply("{\"a\":[1,2,3]}", "[{\"op\":\"move\",\"from\":\"/a/0\",\"path\":\"/a/-\"}]", "{\"a\":[2,3,1]}");
  /* copy is deep: changing the copy leaves the source */
  check_apply("{\"a\":{\"b\":1}}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/c\"},{\"op\":\"replace\",\"path\":\"/c/b\",\"value\":2}]",
              "{\"a\":{\"b\":1},\"c\":{\"b\":2}}");
  /* a null the patch added cannot be walked into (evanphx panics there) */
  check_text("{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":null},{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]", NULL, JSONPATCH_CRASH);
  check_text("{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":null},{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"},{\"op\":\"add\",\"path\":\"/b/c\",\"value\":1}]",
             NULL, JSONPATCH_CRASH);
  /* arrays holding nulls compared: a crash in evanphx, an error here */
  check_text("{\"a\":[null]}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[null]}]", NULL, JSONPATCH_CRASH);
  /* unknown and misspelt operations, missing and mistyped members */
  check_text("{}", "[{\"op\":\"Add\",\"path\":\"/a\",\"value\":1}]", NULL, JSONPATCH_FAILED);
  check_text("{}", "[{\"path\":\"/a\"}]", NULL, JSONPATCH_FAILED);
  check_text("{}", "[{\"op\":\"add\",\"value\":1}]", NULL, JSONPATCH_MISSING);
  check_text("{\"a\":1}", "[{\"op\":\"test\",\"path\":5,\"value\":1}]", NULL, JSONPATCH_FAILED);
  check_text("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/b/c\",\"value\":1}]", NULL, JSONPATCH_MISSING);
  check_text("{\"a\":[1]}", "[{\"op\":\"test\",\"path\":\"/a/5\",\"value\":1}]", NULL, JSONPATCH_FAILED);
  check_text("{}", "[{\"op\":\"copy\",\"path\":\"/b\"}]", NULL, JSONPATCH_MISSING);
  /* the text keeps a value's own spelling: Velero's "1.0" is not the document's 1 */
  check_text("{\"n\":1}", "[{\"op\":\"test\",\"path\":\"/n\",\"value\":1.0}]", NULL, JSONPATCH_TEST_FAILED);
  check_text("{\"s\":\"<\"}", "[{\"op\":\"test\",\"path\":\"/s\",\"value\":\"<\"}]", NULL, JSONPATCH_TEST_FAILED);
  check_text("{\"s\":\"<\"}", "[{\"op\":\"test\",\"path\":\"/s\",\"value\":\"\\u003c\"}]", "{\"s\":\"<\"}", JSONPATCH_OK);
  /* text that is not a patch; Go's leniencies: invalid UTF-8 and lone surrogates become U+FFFD */
  check_text("{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":01}]", NULL, JSONPATCH_DECODE);
  check_text("{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":\"a\nb\"}]", NULL, JSONPATCH_DECODE);
  check_text("{}", "[] x", NULL, JSONPATCH_DECODE);
  check_text("{}", "{\"op\":\"add\"}", NULL, JSONPATCH_DECODE);
  check_text("{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":\"\xff\\ud800\"}]", "{\"a\":\"\xef\xbf\xbd\xef\xbf\xbd\"}", JSONPATCH_OK);
  check_text("{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1e400}]", NULL, JSONPATCH_FAILED);
}

/* NUL bytes in values and keys are data. */
static void nul_bytes(void **state) {
  (void)state;
  json_t *doc = json_object(), *out = NULL;
  json_object_setn_new(doc, "k\0y", 3, json_stringn("v\0w", 3));
  json_t *patch = J("[{\"op\":\"test\",\"path\":\"/k\\u0000y\",\"value\":\"v\\u0000w\"},"
                    "{\"op\":\"copy\",\"from\":\"/k\\u0000y\",\"path\":\"/c\"}]");
  assert_int_equal(jsonpatch_apply(doc, patch, &out), KD_OK);
  assert_int_equal(json_string_length(json_object_get(out, "c")), 3);
  assert_memory_equal(json_string_value(json_object_get(out, "c")), "v\0w", 3);
  json_decref(out);
  json_decref(patch);
  /* a NUL that ends a path early would remove "k": it must not */
  patch = J("[{\"op\":\"remove\",\"path\":\"/k\\u0000z\"}]");
  assert_int_equal(jsonpatch_apply(doc, patch, &out), KD_ERR_INVALID);
  json_decref(patch);
  json_decref(doc);
}

/* Deep and big: nesting past the cap and a patch that doubles the document are refused. */
static void hostile_sizes(void **state) {
  (void)state;
  json_t *doc = json_object(), *cur = doc, *out = NULL;
  kd_buf path = KD_BUF_INIT(1 << 20);
  for (int i = 0; i < 2000; i++) {
    json_t *n = json_object();
    json_object_set_new(cur, "a", n);
    cur = n;
    kd_buf_adds(&path, "/a");
  }
  kd_buf_adds(&path, "/x");
  json_t *patch = json_pack("[{s:s,s:s,s:i}]", "op", "add", "path", path.data, "value", 1);
  assert_int_equal(jsonpatch_apply(doc, patch, &out), KD_OK); /* 2000 levels: fine */
  json_decref(out);
  json_decref(patch);
  /* copying the root's child into itself again and again: depth and size are capped */
  patch = json_array();
  kd_buf_reset(&path);
  kd_buf_adds(&path, "/a");
  for (int i = 0; i < 80; i++) {
    json_array_append_new(patch, json_pack("{s:s,s:s,s:s}", "op", "copy", "from", "/a", "path", "/b"));
    json_array_append_new(patch, json_pack("{s:s,s:s,s:s}", "op", "copy", "from", "/b", "path", "/a/x"));
  }
  kd_rc rc = jsonpatch_apply(doc, patch, &out);
  assert_true(rc == KD_ERR_TOOBIG);
  assert_null(out);
  json_decref(patch);
  json_decref(doc);
  kd_buf_free(&path);
  /* exponential growth by copies of copies */
  doc = J("{\"a\":[1,2,3,4,5,6,7,8]}");
  patch = json_array();
  for (int i = 0; i < 40; i++) json_array_append_new(patch, json_pack("{s:s,s:s,s:s}", "op", "copy", "from", "/a", "path", "/a/-"));
  assert_int_equal(jsonpatch_apply(doc, patch, &out), KD_ERR_TOOBIG);
  json_decref(patch);
  json_decref(doc);
}

static void check_merge(const char *doc, const char *patch, const char *expect) {
  json_t *d = J(doc), *p = J(patch), *out = NULL;
  kd_rc rc = jsonpatch_merge(d, p, &out);
  if (!expect) {
    assert_int_equal(rc, KD_ERR_INVALID);
  } else {
    if (rc != KD_OK) fail_msg("merge %s into %s: %s", patch, doc, kd_errmsg());
    json_t *e = J(expect);
    if (!json_equal(out, e)) fail_msg("merge %s into %s gave %s", patch, doc, json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY));
    json_decref(e);
  }
  json_decref(out);
  json_decref(d);
  json_decref(p);
}

static void rfc7386_appendix_a(void **state) {
  (void)state;
  check_merge("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
  check_merge("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
  check_merge("{\"a\":\"b\"}", "{\"a\":null}", "{}");
  check_merge("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
  check_merge("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
  check_merge("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
  check_merge("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}");
  check_merge("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
  check_merge("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
  check_merge("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
  check_merge("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
  check_merge("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
  check_merge("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
  /* where evanphx departs from the RFC: a null or scalar patch is refused, not the new value */
  check_merge("{\"a\":\"foo\"}", "null", NULL);
  check_merge("{\"a\":\"foo\"}", "\"bar\"", NULL);
  check_merge("null", "{}", NULL);
  /* nulls pruned from values added where nothing was, and from arrays replacing a non-object;
   * an array replacing an object keeps them */
  check_merge("{}", "{\"a\":[1,null,{\"b\":null}]}", "{\"a\":[1,{}]}");
  check_merge("{\"a\":5}", "{\"a\":[1,null]}", "{\"a\":[1]}");
  check_merge("{\"a\":{}}", "{\"a\":[1,null]}", "{\"a\":[1,null]}");
  check_merge("{\"a\":1}", "[1,null,[null]]", "[1,[]]");
}

static void check_create(const char *a, const char *b, const char *expect) {
  json_t *x = J(a), *y = J(b), *out = NULL;
  kd_rc rc = jsonpatch_create_merge(x, y, &out);
  if (!expect) {
    assert_int_equal(rc, KD_ERR_INVALID);
  } else {
    if (rc != KD_OK) fail_msg("create %s -> %s: %s", a, b, kd_errmsg());
    json_t *e = J(expect);
    if (!json_equal(out, e)) fail_msg("create %s -> %s gave %s", a, b, json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY));
    json_decref(e);
    /* and the patch turns a into b (where numbers survive float64) */
    json_t *m = NULL;
    if (json_is_object(x) && json_is_object(y)) {
      assert_int_equal(jsonpatch_merge(x, out, &m), KD_OK);
      json_decref(m);
    }
  }
  json_decref(out);
  json_decref(x);
  json_decref(y);
}

static void create_merge(void **state) {
  (void)state;
  check_create("{\"a\":1,\"b\":{\"c\":2,\"d\":3},\"e\":[1,2]}", "{\"a\":1,\"b\":{\"c\":2},\"e\":[1,2,3],\"f\":null}",
               "{\"b\":{\"d\":null},\"e\":[1,2,3],\"f\":null}");
  check_create("{\"a\":1}", "{\"a\":1}", "{}");
  check_create("{\"a\":1}", "{\"a\":1.0}", "{}"); /* float64 on both sides */
  check_create("{\"a\":1}", "{\"a\":\"1\"}", "{\"a\":\"1\"}");
  check_create("{\"a\":{\"b\":1}}", "{\"a\":[1]}", "{\"a\":[1]}");
  check_create("{\"a\":null}", "{\"a\":null}", "{}");
  check_create("null", "{\"a\":1}", "{\"a\":1}");
  check_create("{\"a\":1}", "null", "{\"a\":null}");
  /* Go's float64: 2^53+1 is 2^53, so no change is seen; 2^60 comes back as Go prints it */
  check_create("{\"a\":9007199254740992}", "{\"a\":9007199254740993}", "{}");
  check_create("{}", "{\"a\":1152921504606846976}", "{\"a\":1152921504606847000}");
  check_create("{}", "{\"a\":2.5}", "{\"a\":2.5}");
  check_create("[{\"a\":1},{}]", "[{\"a\":2},{}]", "[{\"a\":2},{}]");
  check_create("[{\"a\":1}]", "[{\"a\":2},{}]", NULL);
  check_create("[]", "{}", NULL);
  check_create("5", "{}", NULL);
  check_create("[5]", "[{}]", NULL);
}

static void go_text(void **state) {
  (void)state;
  static const struct {
    double d;
    const char *json, *g32;
  } v[] = {{1.0, "1", "1"}, {0.1, "0.1", "0.1"}, {1e-7, "1e-7", "1e-07"}, {1e21, "1e+21", "1e+21"},
           {123456789.0, "123456789", "1.2345679e+08"}, {-0.0, "-0", "-0"}, {1234567.0, "1234567", "1.234567e+06"},
           {100000.0, "100000", "100000"}, {3.4028235e38, "3.4028235e+38", "3.4028235e+38"},
           {1e300, "1e+300", "+Inf"}};
  for (size_t i = 0; i < KD_ARRAY_LEN(v); i++) {
    kd_buf b = KD_BUF_INIT(256);
    json_t *r = json_real(v[i].d);
    assert_int_equal(jsonpatch_go_text(r, &b), KD_OK);
    assert_string_equal(b.data, v[i].json);
    char g[64];
    jsonpatch_go_gfloat(v[i].d, 32, g, sizeof g);
    assert_string_equal(g, v[i].g32);
    json_decref(r);
    kd_buf_free(&b);
  }
  kd_buf b = KD_BUF_INIT(256);
  json_t *s = json_stringn("<a&b>\"\\\n\b\x01\xe2\x80\xa8\0", 14);
  assert_int_equal(jsonpatch_go_text(s, &b), KD_OK);
  assert_string_equal(b.data, "\"\\u003ca\\u0026b\\u003e\\\"\\\\\\n\\b\\u0001\\u2028\\u0000\"");
  json_decref(s);
  kd_buf_free(&b);
  /* strconv.ParseFloat's acceptance */
  const char *yes[] = {"1", "-0", "+1", "01", ".5", "5.", "1e5", "1_000", "0x1p-2", "0x_1p0", "Inf", "-infinity", "NaN", "1e-400"};
  const char *no[] = {"", "0x10", "1e", "1__0", "_1", "1_", "+nan", "1e400", " 1", "1 ", "true", "0b101", "infin"};
  for (size_t i = 0; i < KD_ARRAY_LEN(yes); i++)
    if (!jsonpatch_go_parsefloat_ok(yes[i], strlen(yes[i]))) fail_msg("ParseFloat(%s) should be accepted", yes[i]);
  for (size_t i = 0; i < KD_ARRAY_LEN(no); i++)
    if (jsonpatch_go_parsefloat_ok(no[i], strlen(no[i]))) fail_msg("ParseFloat(%s) should be refused", no[i]);
}

int test_jsonpatch(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rfc6902_appendix_a), cmocka_unit_test(paths_and_indexes), cmocka_unit_test(operations_and_values),
      cmocka_unit_test(nul_bytes),          cmocka_unit_test(hostile_sizes),     cmocka_unit_test(rfc7386_appendix_a),
      cmocka_unit_test(create_merge),       cmocka_unit_test(go_text),
  };
  return cmocka_run_group_tests_name("jsonpatch", tests, NULL, NULL);
}
