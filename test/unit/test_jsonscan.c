/* test_jsonscan.c — the List scanner: every document split at every byte offset (and fed one byte
 * at a time) gives the same items, byte for byte; NUL escapes, non-ASCII and escapes of every
 * kind survive; malformed documents fail with the right code and the byte offset; caps hold. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "tests.h"

/* items collected as "<len>:<bytes>\n" records, so any byte difference shows */
struct got {
  kd_buf b;
  int stop_at; /* return KD_ERR_CANCELLED at this item (1-based), 0 never */
  int n;
};

static kd_rc collect(const char *item, size_t len, void *ud) {
  struct got *g = ud;
  g->n++;
  if (g->stop_at && g->n == g->stop_at) return kd_fail(KD_ERR_CANCELLED, "stopped by the test");
  kd_buf_addf(&g->b, "%zu:", len);
  kd_buf_add(&g->b, item, len);
  kd_buf_adds(&g->b, "\n");
  return KD_OK;
}

/* Scan doc fed in the given chunk pieces (cuts: sorted offsets, ncuts of them). Returns the rc of
 * feed+finish; fills g and the metadata strings (caller frees). */
static kd_rc scan_cut(const char *doc, size_t len, const size_t *cuts, size_t ncuts, size_t max_item, struct got *g,
                      char **cont, char **rv) {
  struct jscan s;
  kd_buf_init(&g->b, 1 << 24);
  g->n = 0;
  jscan_init(&s, max_item, collect, g);
  size_t from = 0;
  kd_rc rc = KD_OK;
  for (size_t k = 0; k <= ncuts && rc == KD_OK; k++) {
    size_t to = k < ncuts ? cuts[k] : len;
    /* each piece in its own heap block, so ASan catches a read past a chunk */
    char *piece = malloc(to - from + 1);
    memcpy(piece, doc + from, to - from);
    rc = jscan_feed(&s, piece, to - from);
    free(piece);
    from = to;
  }
  if (rc == KD_OK) rc = jscan_finish(&s);
  if (cont) *cont = jscan_continue(&s) ? strdup(jscan_continue(&s)) : NULL;
  if (rv) *rv = jscan_resource_version(&s) ? strdup(jscan_resource_version(&s)) : NULL;
  if (rc == KD_OK) assert_int_equal(jscan_items(&s), (size_t)g->n);
  jscan_free(&s);
  return rc;
}

static kd_rc scan_whole(const char *doc, size_t len, struct got *g, char **cont, char **rv) {
  return scan_cut(doc, len, NULL, 0, 0, g, cont, rv);
}

/* documents with their expected items ("<len>:<bytes>\n" each), continue and resourceVersion */
struct doc {
  const char *json;
  size_t len; /* 0: strlen */
  const char *items[4];
  const char *cont, *rv;
};

#define ITEM_NUL "{\"s\":\"a\\u0000b\",\"m\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}"

static const struct doc docs[] = {
    /* the shape the API server sends: kind, apiVersion, metadata first, then items */
    {"{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"123\",\"continue\":\"eyJ2Ijoi"
     "bWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzfQ\"},\"items\":[" ITEM_NUL ",{\"a\":[1,-2.5e+3,0,true,false,null,{}],\"b\":[]}]}\n",
     0,
     {ITEM_NUL, "{\"a\":[1,-2.5e+3,0,true,false,null,{}],\"b\":[]}"},
     "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzfQ",
     "123"},
    /* items before metadata; whitespace everywhere; escapes of every kind, brackets in strings */
    {" { \"items\" : [ { \"q\" : \"\\\"}]\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\ude00\" } ,\n\t{ } ] ,"
     " \"metadata\" : { \"resourceVersion\" : \"9\" } } ",
     0,
     {"{ \"q\" : \"\\\"}]\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\ude00\" }", "{ }"},
     NULL,
     "9"},
    /* empty items, null items, no metadata, an escaped key spelling "items" */
    {"{\"items\":[]}", 0, {NULL}, NULL, NULL},
    {"{\"metadata\":{},\"items\":null}", 0, {NULL}, NULL, NULL},
    {"{\"\\u0069tems\":[{\"x\":1}],\"other\":{\"items\":[{\"no\":1}]}}", 0, {"{\"x\":1}"}, NULL, NULL},
    /* scalar elements are handed out as written; a raw NUL byte inside a string is not JSON, but
     * the escaped one is kept as the six bytes written */
    {"{\"items\":[\"s\\u0000\",12,0.5,null]}", 0, {"\"s\\u0000\"", "12", "0.5", "null"}, NULL, NULL},
    /* an empty continue means none */
    {"{\"metadata\":{\"continue\":\"\",\"resourceVersion\":\"5\"},\"items\":[{}]}", 0, {"{}"}, NULL, "5"},
};

static char *expect(const struct doc *d) {
  kd_buf b = KD_BUF_INIT(1 << 20);
  for (size_t i = 0; i < 4 && d->items[i]; i++) {
    kd_buf_addf(&b, "%zu:", strlen(d->items[i]));
    kd_buf_adds(&b, d->items[i]);
    kd_buf_adds(&b, "\n");
  }
  return kd_buf_steal(&b);
}

static void check_meta(const struct doc *d, char *cont, char *rv) {
  if (d->cont) assert_string_equal(cont, d->cont);
  else assert_null(cont);
  if (d->rv) assert_string_equal(rv, d->rv);
  else assert_null(rv);
  free(cont);
  free(rv);
}

/* Careless input: chunk boundaries anywhere, inside escapes, \u sequences, multi-byte UTF-8
 * characters, keys and numbers. Every split point (one and two cuts) and byte-at-a-time feeding
 * must give exactly the expected items and metadata. */
static void split_everywhere(void **state) {
  (void)state;
  for (size_t k = 0; k < KD_ARRAY_LEN(docs); k++) {
    const struct doc *d = &docs[k];
    size_t len = d->len ? d->len : strlen(d->json);
    char *want = expect(d), *cont, *rv;
    struct got g = {0}; /* stop_at 0: never stop */
    assert_int_equal(scan_whole(d->json, len, &g, &cont, &rv), KD_OK);
    assert_string_equal(g.b.data ? g.b.data : "", want);
    check_meta(d, cont, rv);
    kd_buf_free(&g.b);
    for (size_t a = 0; a <= len; a++) {
      for (size_t b = a; b <= len; b += (len / 7) + 1) {
        size_t cuts[2] = {a, b};
        assert_int_equal(scan_cut(d->json, len, cuts, 2, 0, &g, &cont, &rv), KD_OK);
        assert_string_equal(g.b.data ? g.b.data : "", want);
        check_meta(d, cont, rv);
        kd_buf_free(&g.b);
      }
    }
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t a = 0; a < len; a++) cuts[a] = a;
    assert_int_equal(scan_cut(d->json, len, cuts, len, 0, &g, &cont, &rv), KD_OK);
    assert_string_equal(g.b.data ? g.b.data : "", want);
    check_meta(d, cont, rv);
    kd_buf_free(&g.b);
    free(cuts);
    free(want);
  }
}

/* A realistic page (200 objects with long strings, NUL escapes and non-ASCII), cut into random
 * chunk sizes: every item parses with jansson (JSON_ALLOW_NUL) to the very element jansson
 * finds in the whole document, and the bytes are an exact substring of the input. */
static void realistic_page_matches_jansson(void **state) {
  (void)state;
  kd_buf doc = KD_BUF_INIT(64 << 20);
  kd_buf_adds(&doc, "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"777\"},\"items\":[");
  for (int i = 0; i < 200; i++) {
    kd_buf_addf(&doc,
                "%s{\"metadata\":{\"name\":\"cm-%d\",\"namespace\":\"ns-%d\",\"labels\":{\"k0rdent.mirantis.com/"
                "component\":\"kcm\"},\"resourceVersion\":\"%d\"},\"data\":{\"nul\":\"x\\u0000y\",\"utf8\":"
                "\"\xd0\xb4\xd0\xb0 \xe6\x97\xa5\xe6\x9c\xac\",\"big\":\"",
                i ? "," : "", i, i % 7, 1000 + i);
    for (int k = 0; k < i * 37; k++) kd_buf_adds(&doc, k % 50 == 0 ? "\\\"" : "ab");
    kd_buf_addf(&doc, "\",\"n\":[%d,%d.25,-1e%d]}}", i, i, i % 5);
  }
  kd_buf_adds(&doc, "]}");
  json_error_t jerr;
  json_t *whole = json_loadb(doc.data, doc.len, JSON_ALLOW_NUL, &jerr);
  assert_non_null(whole);
  json_t *items = json_object_get(whole, "items");
  unsigned seed = 7;
  for (int round = 0; round < 20; round++) {
    size_t cuts[400], nc = 0, at = 0;
    while (nc < 400) {
      seed = seed * 1103515245u + 12345u;
      at += 1 + (seed >> 8) % (round < 10 ? 97 : 8191);
      if (at >= doc.len) break;
      cuts[nc++] = at;
    }
    struct got g = {0}; /* stop_at 0: never stop */
    char *rv;
    assert_int_equal(scan_cut(doc.data, doc.len, cuts, nc, 0, &g, NULL, &rv), KD_OK);
    assert_string_equal(rv, "777");
    free(rv);
    assert_int_equal(g.n, 200);
    const char *p = g.b.data;
    for (size_t i = 0; i < 200; i++) {
      char *colon;
      size_t len = strtoul(p, &colon, 10);
      const char *item = colon + 1;
      json_t *one = json_loadb(item, len, JSON_ALLOW_NUL, &jerr);
      assert_non_null(one);
      assert_true(json_equal(one, json_array_get(items, i)));
      assert_non_null(memmem(doc.data, doc.len, item, len));
      json_decref(one);
      p = item + len + 1;
    }
    kd_buf_free(&g.b);
  }
  json_decref(whole);
  kd_buf_free(&doc);
}

struct bad {
  const char *json;
  kd_rc rc;
  const char *msg; /* substring of the error, with the offset */
};

/* Hostile and careless documents: each fails with its code and names the byte offset. */
static void malformed_documents(void **state) {
  (void)state;
  static const struct bad bad[] = {
      {"", KD_ERR_PARSE, "empty document"},
      {"[]", KD_ERR_PARSE, "must be a JSON object at byte 0"},
      {"{\"items\":[{\"a\":\"unterminated", KD_ERR_PARSE, "unterminated string"},
      {"{\"items\":[{\"a\":\"x\\qy\"}]}", KD_ERR_PARSE, "bad escape in a string at byte 18"},
      {"{\"items\":[{\"a\":\"\\u12G4\"}]}", KD_ERR_PARSE, "bad \\u escape in a string at byte 20"},
      {"{\"items\":[{\"a\":\"raw\nnewline\"}]}", KD_ERR_PARSE, "control character in a string at byte 19"},
      {"{\"items\":[]}x", KD_ERR_PARSE, "data after the end of the document at byte 12"},
      {"{\"items\":[]}{}", KD_ERR_PARSE, "data after the end of the document at byte 12"},
      {"{\"items\":[{\"a\":1}}", KD_ERR_PARSE, "expected ',' or a closing bracket at byte 17"},
      {"{\"items\":[{\"a\":1,}]}", KD_ERR_PARSE, "expected a key at byte 17"},
      {"{\"items\":[{\"a\" 1}]}", KD_ERR_PARSE, "expected ':' at byte 15"},
      {"{\"items\":[{\"a\":01}]}", KD_ERR_PARSE, "leading zero at byte 16"},
      {"{\"items\":[{\"a\":1.}]}", KD_ERR_PARSE, "bad number at byte 17"},
      {"{\"items\":[{\"a\":-}]}", KD_ERR_PARSE, "bad number at byte 16"},
      {"{\"items\":[{\"a\":1e}]}", KD_ERR_PARSE, "bad number at byte 17"},
      {"{\"items\":[{\"a\":tru}]}", KD_ERR_PARSE, "bad literal at byte 18"},
      {"{\"items\":[{\"a\":truex}]}", KD_ERR_PARSE, "expected ',' or a closing bracket at byte 19"},
      {"{\"items\":[{\"a\":[1,]}]}", KD_ERR_PARSE, "expected a value at byte 18"},
      {"{\"items\":[,]}", KD_ERR_PARSE, "expected a value at byte 10"},
      {"{\"items\":{}}", KD_ERR_PARSE, "\"items\" is not an array at byte 9"},
      {"{\"items\":[{}]", KD_ERR_PARSE, "document ends early"},
      {"{\"items\":[{}],\"metadata\":{\"continue\":\"\\u0000\"", KD_ERR_PARSE, "document ends early"},
  };
  for (size_t k = 0; k < KD_ARRAY_LEN(bad); k++) {
    struct got g = {0}; /* stop_at 0: never stop */
    size_t len = strlen(bad[k].json);
    kd_rc rc = scan_whole(bad[k].json, len, &g, NULL, NULL);
    if (rc != bad[k].rc || !strstr(kd_errmsg(), bad[k].msg))
      fail_msg("%s: got %s \"%s\", want \"%s\"", bad[k].json, kd_rc_name(rc), kd_errmsg(), bad[k].msg);
    kd_buf_free(&g.b);
    /* fed byte by byte: same verdict (the offset is the document's, not the chunk's) */
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    for (size_t a = 0; a < len; a++) cuts[a] = a;
    rc = scan_cut(bad[k].json, len, cuts, len, 0, &g, NULL, NULL);
    if (rc != bad[k].rc || !strstr(kd_errmsg(), bad[k].msg))
      fail_msg("%s bytewise: got %s \"%s\", want \"%s\"", bad[k].json, kd_rc_name(rc), kd_errmsg(), bad[k].msg);
    kd_buf_free(&g.b);
    free(cuts);
  }
}

/* A depth bomb (10,000 '[' inside an item) fails at the 513th level, never overflows. */
static void depth_bomb(void **state) {
  (void)state;
  kd_buf b = KD_BUF_INIT(1 << 20);
  kd_buf_adds(&b, "{\"items\":[");
  for (int i = 0; i < 10000; i++) kd_buf_adds(&b, "[");
  struct got g = {0}; /* stop_at 0: never stop */
  assert_int_equal(scan_whole(b.data, b.len, &g, NULL, NULL), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "nesting deeper than 512 levels at byte 520"));
  kd_buf_free(&g.b);
  kd_buf_free(&b);
  /* exactly 512 levels is fine */
  kd_buf_adds(&b, "{\"items\":[");
  for (int i = 0; i < 510; i++) kd_buf_adds(&b, "[");
  for (int i = 0; i < 510; i++) kd_buf_adds(&b, "]");
  kd_buf_adds(&b, "]}");
  assert_int_equal(scan_whole(b.data, b.len, &g, NULL, NULL), KD_OK);
  assert_int_equal(g.n, 1);
  kd_buf_free(&g.b);
  kd_buf_free(&b);
}

/* An item over the cap fails with KD_ERR_TOOBIG, whether it arrives in one chunk or many, and
 * the scan never buffers more than the cap; an item exactly at the cap passes. */
static void item_over_cap(void **state) {
  (void)state;
  const char *doc = "{\"items\":[{\"a\":\"0123456789\"},{\"a\":\"01234567890\"}]}";
  size_t len = strlen(doc), item = strlen("{\"a\":\"0123456789\"}");
  struct got g = {0}; /* stop_at 0: never stop */
  assert_int_equal(scan_cut(doc, len, NULL, 0, item, &g, NULL, NULL), KD_ERR_TOOBIG);
  assert_int_equal(g.n, 1);
  assert_non_null(strstr(kd_errmsg(), "list item 2 is larger than 18 bytes"));
  kd_buf_free(&g.b);
  for (size_t a = 1; a < len; a++) {
    size_t cuts[1] = {a};
    assert_int_equal(scan_cut(doc, len, cuts, 1, item, &g, NULL, NULL), KD_ERR_TOOBIG);
    assert_int_equal(g.n, 1);
    kd_buf_free(&g.b);
  }
}

/* The callback's error stops the scan and keeps coming back from later feeds. */
static void callback_stops_scan(void **state) {
  (void)state;
  const char *doc = "{\"items\":[{},{},{}]}";
  struct got g = {.stop_at = 2};
  struct jscan s;
  kd_buf_init(&g.b, 1024);
  jscan_init(&s, 0, collect, &g);
  assert_int_equal(jscan_feed(&s, doc, strlen(doc)), KD_ERR_CANCELLED);
  assert_int_equal(g.n, 2);
  assert_int_equal(jscan_feed(&s, "", 0), KD_ERR_CANCELLED);
  assert_int_equal(jscan_finish(&s), KD_ERR_CANCELLED);
  jscan_free(&s);
  kd_buf_free(&g.b);
}

int test_jsonscan(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(split_everywhere), cmocka_unit_test(realistic_page_matches_jansson),
      cmocka_unit_test(malformed_documents), cmocka_unit_test(depth_bomb),
      cmocka_unit_test(item_over_cap), cmocka_unit_test(callback_stops_scan),
  };
  return cmocka_run_group_tests_name("jsonscan", tests, NULL, NULL);
}
