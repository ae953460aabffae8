/* test_cli.c — what the backup and restore verbs share (cli.c), without a server: verb flags,
 * names, -o values, YAML output read back by a YAML parser, tables, times and sizes, plain
 * progress lines, timeouts, and gzip files read from a filesystem store (several members,
 * truncated, garbage, over the cap). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "cli.h"
#include "tests.h"
#include "yamljson.h"

/* tried: every spelling of flags a user types, and the careless ones */
static void parse_opts_forms(void **state) {
  (void)state;
  bool wait = false, confirm = true;
  const char *out = NULL, *loc = NULL, *pos[3];
  json_t *list = NULL;
  int npos;
  const struct cli_opt opts[] = {{"--wait", "-w", CLI_OPT_BOOL, &wait},
                                 {"--confirm", NULL, CLI_OPT_BOOL, &confirm},
                                 {"--output", "-o", CLI_OPT_STRING, &out},
                                 {"--storage-location", NULL, CLI_OPT_STRING, &loc},
                                 {"--include-namespaces", NULL, CLI_OPT_LIST, &list}};
  char *a1[] = {"create", "n1", "-w", "--confirm=false", "-ojson", "--storage-location=s3", "--include-namespaces",
                "a,,b", "--include-namespaces=c", "--", "-x", NULL};
  assert_int_equal(cli_parse_opts(11, a1, "t", opts, 5, pos, 3, &npos), -1);
  assert_true(wait);
  assert_false(confirm);
  assert_string_equal(out, "json");
  assert_string_equal(loc, "s3");
  assert_int_equal(npos, 2);
  assert_string_equal(pos[0], "n1");
  assert_string_equal(pos[1], "-x"); /* after "--" a dash is an argument */
  char *got = json_dumps(list, JSON_COMPACT);
  assert_string_equal(got, "[\"a\",\"b\",\"c\"]"); /* empty list items are dropped */
  free(got);
  json_decref(list);
  list = NULL;
  char *a2[] = {"get", "-o", "yaml", "--wait", "true", NULL}; /* "true" after a bool flag is an argument */
  assert_int_equal(cli_parse_opts(5, a2, "t", opts, 5, pos, 3, &npos), -1);
  assert_string_equal(out, "yaml");
  assert_int_equal(npos, 1);
  assert_string_equal(pos[0], "true");
  char *bad[][4] = {
      {"x", "--nope", NULL},            /* unknown flag */
      {"x", "--output", NULL},          /* missing value */
      {"x", "--wait=maybe", NULL},      /* bad boolean */
      {"x", "a", "b", NULL},            /* one argument too many (max 1 below) */
      {"x", "--waitx", NULL},           /* a prefix of a flag is no flag */
      {"x", "--include-namespaces", NULL},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    int n = 0;
    while (bad[i][n]) n++;
    assert_int_equal(cli_parse_opts(n, bad[i], "t", opts, 5, pos, 1, &npos), CLI_USAGE);
  }
  json_decref(list);
}

static void names_and_outputs(void **state) {
  (void)state;
  char long_ok[254], long_bad[255];
  memset(long_ok, 'a', 253);
  long_ok[253] = '\0';
  memset(long_bad, 'a', 254);
  long_bad[254] = '\0';
  const char *good[] = {"a", "kcm-20250117180012", "a.b-c", "0abc", long_ok};
  const char *bad[] = {NULL, "", "A", "-a", "a-", ".a", "a_b", "a b", "a/b", "ü", long_bad};
  for (size_t i = 0; i < KD_ARRAY_LEN(good); i++) assert_true(cli_name_valid(good[i]));
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) assert_false(cli_name_valid(bad[i]));
  enum cli_output o;
  assert_true(cli_output_parse(NULL, &o) && o == CLI_OUT_TABLE);
  assert_true(cli_output_parse("json", &o) && o == CLI_OUT_JSON);
  assert_true(cli_output_parse("yaml", &o) && o == CLI_OUT_YAML);
  assert_true(cli_output_parse("wide", &o) && o == CLI_OUT_WIDE);
  assert_false(cli_output_parse("JSON", &o));
  assert_false(cli_output_parse("jsonpath={.x}", &o));
  int64_t ms;
  assert_true(cli_parse_timeout("90s", &ms) && ms == 90000);
  assert_true(cli_parse_timeout("1h30m", &ms) && ms == 5400000);
  assert_true(cli_parse_timeout("1.5s", &ms) && ms == 1500);
  assert_true(cli_parse_timeout("0", &ms) && ms == 0);
  assert_false(cli_parse_timeout("-1s", &ms));
  assert_false(cli_parse_timeout("soon", &ms));
  assert_false(cli_parse_timeout("10", &ms)); /* Go wants a unit */
}

static char *print_to_string(json_t *obj, enum cli_output fmt) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(cli_print_object(f, obj, fmt), KD_OK);
  fclose(f);
  return buf;
}

/* tried: strings a YAML reader would take for another type, or that plain style cannot hold;
 * the YAML must read back (libyaml, YAML 1.1 rules as kubectl's reader) as exactly the JSON */
static void yaml_reads_back(void **state) {
  (void)state;
  static const char *const hostile[] = {
      "true", "False", "yes", "NO", "on", "off", "y", "n", "null", "Null", "~", "", "0", "0755", "0x1f", "1e3", "-1",
      "+1", ".5", ".inf", "-.inf", ".NaN", "2025-01-17", "2025-01-17T18:00:12Z", "12:30", "a: b", "a:b", "- x", "-",
      "? x", "#c", "a #c", "x#y", "*ref", "&anchor", "!tag", "%dir", "@x", "`x", "|x", ">x", "[x", "]", "{x}", "}",
      "'q'", "\"dq\"", "it's", "back\\slash", "one\ntwo\n", "one\ntwo", "trailing \nspace ", "  lead", "tail  ",
      "\ttab", "cr\rx", "bell\a", "ünïcödé ☃", "\xe2\x80\xa8sep", "<<", "=", "---", "...", "a,b", "x\x7fy",
  };
  json_t *o = json_object(), *arr = json_array();
  for (size_t i = 0; i < KD_ARRAY_LEN(hostile); i++) {
    char k[16];
    snprintf(k, sizeof k, "k%zu", i);
    json_object_set_new(o, k, json_string(hostile[i]));
    json_object_set_new(o, hostile[i], json_integer((json_int_t)i)); /* as keys too */
    json_array_append_new(arr, json_string(hostile[i]));
  }
  json_object_set_new(o, "nul", json_stringn("a\0b", 3));
  json_object_set_new(o, "list", arr);
  json_object_set_new(o, "empty", json_pack("{s:{},s:[]}", "o", "a"));
  json_object_set_new(o, "nums", json_pack("[I,f,b,b,n]", (json_int_t)9007199254740993LL, 1.5, 1, 0));
  char *long_line = calloc(1, 20001);
  memset(long_line, 'x', 20000);
  json_object_set_new(o, "long", json_string(long_line));
  free(long_line);
  char *text = print_to_string(o, CLI_OUT_YAML);
  json_t *back = NULL;
  assert_int_equal(yj_parse_one(text, strlen(text), &back), KD_OK);
  if (!json_equal(o, back)) {
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) if (!json_equal(v, json_object_get(back, k))) fprintf(stderr, "differs: %s\n", k);
    fail_msg("YAML did not read back as the JSON:\n%s", text);
  }
  /* a long string stays on one line: no folding */
  assert_non_null(strstr(text, "long: xxxxxxxxxx"));
  json_decref(back);
  free(text);
  /* JSON output is the object, indented */
  text = print_to_string(o, CLI_OUT_JSON);
  back = json_loads(text, JSON_ALLOW_NUL, NULL);
  assert_true(json_equal(o, back));
  json_decref(back);
  free(text);
  json_decref(o);
}

/* like kubectl: managedFields are not printed, in an object or in a List's items; the object
 * itself is left unchanged */
static void output_drops_managed_fields(void **state) {
  (void)state;
  json_t *o = json_pack("{s:s,s:[{s:{s:s,s:[{s:s}]}}]}", "kind", "List", "items", "metadata", "name", "x",
                        "managedFields", "manager", "kcmdr");
  char *text = print_to_string(o, CLI_OUT_JSON);
  assert_null(strstr(text, "managedFields"));
  assert_non_null(strstr(text, "\"name\": \"x\""));
  free(text);
  assert_non_null(json_object_get(json_object_get(json_array_get(json_object_get(o, "items"), 0), "metadata"), "managedFields"));
  json_decref(o);
}

static void tables_align(void **state) {
  (void)state;
  static const char *const h[] = {"NAME", "STATUS", "X"};
  cli_table *t = cli_table_new(3, h);
  assert_non_null(t);
  const char *r1[] = {"ünï", "Completed", "1"}, *r2[] = {"b\x1b[2Jx", NULL, "22"}; /* a terminal escape in a cell */
  assert_int_equal(cli_table_add(t, r1), KD_OK);
  assert_int_equal(cli_table_add(t, r2), KD_OK);
  assert_int_equal(cli_table_rows(t), 2);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  cli_table_print(t, f);
  fclose(f);
  assert_string_equal(buf, "NAME     STATUS      X\n"
                           "ünï      Completed   1\n"
                           "b?[2Jx               22\n");
  free(buf);
  cli_table_free(t);
}

static void times_and_sizes(void **state) {
  (void)state;
  char out[64];
  cli_time_text("2025-01-17T18:00:12Z", out, sizeof out);
  assert_string_equal(out, "2025-01-17 18:00:12 +0000 UTC");
  cli_time_text("2025-01-17T20:00:12+02:00", out, sizeof out);
  assert_string_equal(out, "2025-01-17 18:00:12 +0000 UTC");
  cli_time_text(NULL, out, sizeof out);
  assert_string_equal(out, "<none>");
  cli_time_text("yesterday", out, sizeof out);
  assert_string_equal(out, "yesterday");
  time_t now = 1737136812; /* 2025-01-17T18:00:12Z */
  cli_time_span("2025-02-16T18:00:12Z", now, out, sizeof out);
  assert_string_equal(out, "30d");
  cli_time_span("2025-02-16T18:00:11Z", now, out, sizeof out);
  assert_string_equal(out, "29d");
  cli_time_span("2025-01-17T12:00:12Z", now, out, sizeof out);
  assert_string_equal(out, "6h");
  cli_time_span("2025-01-17T18:01:12Z", now, out, sizeof out);
  assert_string_equal(out, "60s");
  cli_time_span("", now, out, sizeof out);
  assert_string_equal(out, "<none>");
  cli_size_text(1023, out, sizeof out);
  assert_string_equal(out, "1023 B");
  cli_size_text(1024, out, sizeof out);
  assert_string_equal(out, "1.0 KiB");
  cli_size_text(3 * 1048576 / 2, out, sizeof out);
  assert_string_equal(out, "1.5 MiB");
}

/* not a terminal: one line per phase change, progress lines at most once a second, the last
 * state always shown at the end */
static void progress_plain_lines(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  struct cli_progress p;
  cli_progress_init(&p, f, "Restore r", "restored");
  assert_false(p.tty);
  cli_progress_update(&p, "New", 0, 0);
  cli_progress_update(&p, "InProgress", 0, 100);
  for (int i = 1; i <= 99; i++) cli_progress_update(&p, "InProgress", i, 100); /* within a second */
  cli_progress_update(&p, "InProgress", 99, 100);                              /* no change */
  cli_progress_end(&p);
  fclose(f);
  assert_string_equal(buf, "Restore r: New, 0 of 0 items restored\n"
                           "Restore r: InProgress, 0 of 100 items restored\n"
                           "Restore r: InProgress, 99 of 100 items restored\n");
  free(buf);
}

static objstore *fs_store(char *dir) {
  strcpy(dir, "/tmp/kcmdr-cli-XXXXXX");
  assert_non_null(mkdtemp(dir));
  json_t *bsl = json_pack("{s:s,s:{s:s,s:{s:s},s:{s:s}}}", "kind", "BackupStorageLocation", "spec", "provider",
                          "filesystem", "objectStorage", "bucket", "b", "config", "path", dir);
  objstore *s = NULL;
  assert_int_equal(objstore_open_bsl(bsl, NULL, 0, &s), KD_OK);
  json_decref(bsl);
  return s;
}

static void gzip_member(kd_buf *out, const char *text) {
  z_stream z = {0};
  unsigned char tmp[4096];
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (unsigned char *)text;
  z.avail_in = (uInt)strlen(text);
  int zr;
  do {
    z.next_out = tmp;
    z.avail_out = sizeof tmp;
    zr = deflate(&z, Z_FINISH);
    assert_int_equal(kd_buf_add(out, tmp, sizeof tmp - z.avail_out), KD_OK);
  } while (zr != Z_STREAM_END);
  deflateEnd(&z);
}

/* tried: two gzip members one after the other (Go reads both), a cut stream, garbage, an empty
 * file, garbage after a member, a file past the cap, a missing file */
static void gunzip_files(void **state) {
  (void)state;
  char dir[64];
  objstore *s = fs_store(dir);
  kd_buf two = KD_BUF_INIT(1 << 20), big = KD_BUF_INIT(8 << 20);
  gzip_member(&two, "first line\n");
  gzip_member(&two, "second line\n");
  assert_int_equal(objstore_put(s, "restores/r/two.gz", two.data, two.len), KD_OK);
  char *out = NULL;
  size_t len = 0;
  assert_int_equal(cli_gunzip_get_all(s, "restores/r/two.gz", 1 << 20, &out, &len), KD_OK);
  assert_string_equal(out, "first line\nsecond line\n");
  assert_int_equal(len, 23);
  free(out);
  assert_int_equal(objstore_put(s, "cut.gz", two.data, two.len - 3), KD_OK); /* inside the second member's trailer */
  assert_int_equal(cli_gunzip_get_all(s, "cut.gz", 1 << 20, &out, &len), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "cut.gz"));
  assert_int_equal(objstore_put(s, "garbage.gz", "not gzip at all", 15), KD_OK);
  assert_int_equal(cli_gunzip_get_all(s, "garbage.gz", 1 << 20, &out, &len), KD_ERR_PARSE);
  assert_int_equal(objstore_put(s, "empty.gz", "", 0), KD_OK);
  assert_int_equal(cli_gunzip_get_all(s, "empty.gz", 1 << 20, &out, &len), KD_ERR_PARSE);
  assert_int_equal(kd_buf_add(&two, "junk!", 5), KD_OK);
  assert_int_equal(objstore_put(s, "trailing.gz", two.data, two.len), KD_OK);
  assert_int_equal(cli_gunzip_get_all(s, "trailing.gz", 1 << 20, &out, &len), KD_ERR_PARSE);
  char *many = malloc(2 << 20);
  memset(many, 'a', (2 << 20) - 1);
  many[(2 << 20) - 1] = '\0';
  gzip_member(&big, many); /* 2 MiB of 'a' in a few KiB */
  free(many);
  assert_int_equal(objstore_put(s, "bomb.gz", big.data, big.len), KD_OK);
  assert_int_equal(cli_gunzip_get_all(s, "bomb.gz", 1 << 20, &out, &len), KD_ERR_TOOBIG);
  assert_int_equal(cli_gunzip_get_all(s, "missing.gz", 1 << 20, &out, &len), KD_ERR_NOTFOUND);
  assert_null(out);
  kd_buf_free(&two);
  kd_buf_free(&big);
  const char *keys[] = {"restores/r/two.gz", "cut.gz", "garbage.gz", "empty.gz", "trailing.gz", "bomb.gz"};
  for (size_t i = 0; i < KD_ARRAY_LEN(keys); i++) objstore_delete(s, keys[i]);
  objstore_free(s);
  rmdir(dir);
}

int test_cli(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_opts_forms),  cmocka_unit_test(names_and_outputs),     cmocka_unit_test(yaml_reads_back),
      cmocka_unit_test(output_drops_managed_fields), cmocka_unit_test(tables_align), cmocka_unit_test(times_and_sizes),
      cmocka_unit_test(progress_plain_lines), cmocka_unit_test(gunzip_files),
  };
  return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
