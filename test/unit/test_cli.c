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
  /* tried: what restore and backup describe -o json|yaml print: the Restore, the Backup, the
   * ManagementBackup and its Backups nested in one object, none of them at the top */
  o = json_pack("{s:{s:{s:s,s:[{s:s}]}},s:[{s:{s:s,s:[{s:s}]}}],s:{s:{s:{s:{s:[]}}}},s:n}", "restore", "metadata", "name", "r",
                "managedFields", "manager", "kcmdr", "backups", "metadata", "name", "b", "managedFields", "manager", "velero",
                "managementBackup", "spec", "template", "metadata", "managedFields", "results");
  for (int fmt = CLI_OUT_JSON; fmt <= CLI_OUT_YAML; fmt++) {
    text = print_to_string(o, (enum cli_output)fmt);
    assert_null(strstr(text, "managedFields"));
    assert_non_null(strstr(text, fmt == CLI_OUT_JSON ? "\"name\": \"b\"" : "name: b"));
    free(text);
  }
  assert_non_null(json_object_get(json_object_get(json_object_get(o, "restore"), "metadata"), "managedFields"));
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

/* What fd 1 (stdout) or 2 (stderr) receives between capture_start and capture_end. */
struct capture {
  int fd, saved;
  FILE *tmp;
};

static struct capture capture_start(int fd) {
  struct capture c = {fd, -1, tmpfile()};
  assert_non_null(c.tmp);
  fflush(fd == 1 ? stdout : stderr);
  c.saved = dup(fd);
  assert_true(c.saved >= 0 && dup2(fileno(c.tmp), fd) == fd);
  return c;
}

/* The text written meanwhile (caller frees); the fd is restored. */
static char *capture_end(struct capture c) {
  fflush(c.fd == 1 ? stdout : stderr);
  assert_int_equal(dup2(c.saved, c.fd), c.fd);
  close(c.saved);
  off_t n = lseek(fileno(c.tmp), 0, SEEK_END);
  char *text = calloc(1, (size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(pread(fileno(c.tmp), text, (size_t)n, 0), n);
  fclose(c.tmp);
  return text;
}

#define assert_captured(c, want)                                                                                          \
  do {                                                                                                                   \
    char *got_ = capture_end(c);                                                                                         \
    assert_string_equal(got_, want);                                                                                     \
    free(got_);                                                                                                          \
  } while (0)

/* tried: the values a careless user types for -o, --timeout and NAME; each says what is wrong in
 * the words the verbs always used, and a good value goes on (-1) */
static void checks_say_what_is_wrong(void **state) {
  (void)state;
  enum cli_output fmt = CLI_OUT_JSON;
  int64_t ms = 7;
  assert_int_equal(cli_check_output("backup get", NULL, true, &fmt), -1);
  assert_int_equal(fmt, CLI_OUT_TABLE);
  assert_int_equal(cli_check_output("backup get", "wide", true, &fmt), -1);
  assert_int_equal(fmt, CLI_OUT_WIDE);
  assert_int_equal(cli_check_output("restore describe", "yaml", false, &fmt), -1);
  assert_int_equal(fmt, CLI_OUT_YAML);
  struct capture c = capture_start(2);
  assert_int_equal(cli_check_output("restore describe", "wide", false, &fmt), CLI_USAGE);
  assert_int_equal(cli_check_output("backup get", "JSON", true, &fmt), CLI_USAGE);
  assert_int_equal(cli_check_output("backup get", "", true, &fmt), -1); /* "" is the table */
  assert_captured(c, "kcmdr restore describe: -o takes json or yaml\n"
                     "kcmdr backup get: -o takes wide, json or yaml\n");
  assert_int_equal(cli_check_timeout("backup delete", NULL, &ms), -1);
  assert_int_equal(ms, 7); /* not given: unchanged */
  assert_int_equal(cli_check_timeout("backup delete", "90s", &ms), -1);
  assert_int_equal(ms, 90000);
  c = capture_start(2);
  assert_int_equal(cli_check_timeout("backup delete", "soon", &ms), CLI_USAGE);
  assert_int_equal(cli_check_timeout("restore create", "", &ms), CLI_USAGE);
  assert_int_equal(cli_check_names("backup logs", "Usage: kcmdr backup logs NAME\n", 0), CLI_USAGE);
  assert_int_equal(cli_check_name("backup create", "Bad_Name"), CLI_USAGE);
  assert_captured(c, "kcmdr backup delete: --timeout takes a duration such as 90s or 10m, not 'soon'\n"
                     "kcmdr restore create: --timeout takes a duration such as 90s or 10m, not ''\n"
                     "kcmdr backup logs: which NAME?\nUsage: kcmdr backup logs NAME\n"
                     "kcmdr backup create: \"Bad_Name\" is not a valid name (lower-case letters, digits, '-' and '.', at most 253)\n");
  assert_int_equal(ms, 90000);
  assert_int_equal(cli_check_names("backup logs", "u", 1), -1);
  assert_int_equal(cli_check_name("backup create", "kcm-20250117180012"), -1);
}

/* tried: objects that are not what a verb expects (NULL, an array, fields of other types, no
 * name, the same name twice) */
static void fields_and_names(void **state) {
  (void)state;
  json_t *odd = json_pack("[{s:i,s:{s:i}},{s:{s:s}},{s:{s:s},s:{s:s}},{s:{s:s},s:{s:s}}]", "metadata", 5, "status", "phase",
                          1, "spec", "x", "y", "metadata", "name", "a", "status", "phase", "", "metadata", "name", "a",
                          "status", "phase", "Completed");
  assert_null(cli_meta_s(NULL, "name"));
  assert_null(cli_meta_s(odd, "name"));
  assert_null(cli_meta_s(json_array_get(odd, 0), "name"));
  assert_null(cli_status_s(json_array_get(odd, 0), "phase")); /* a number */
  assert_string_equal(cli_spec_s(json_array_get(odd, 1), "x"), "y");
  assert_string_equal(cli_phase(json_array_get(odd, 0)), "New");
  assert_string_equal(cli_phase(json_array_get(odd, 2)), "New"); /* "" */
  assert_string_equal(cli_phase(json_array_get(odd, 3)), "Completed");
  assert_string_equal(cli_or_none(NULL), "<none>");
  assert_string_equal(cli_or_none(""), "<none>");
  assert_string_equal(cli_or_none("x"), "x");
  assert_ptr_equal(cli_by_name(odd, "a"), json_array_get(odd, 2)); /* the first of two */
  assert_null(cli_by_name(odd, "b"));
  assert_null(cli_by_name(NULL, "a"));
  json_decref(odd);
}

static char *printed(void (*fn)(FILE *, json_t *), json_t *arg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  fn(f, arg);
  fclose(f);
  json_decref(arg);
  return buf;
}

static void print_warnings_max3(FILE *f, json_t *r) { cli_print_results(f, "Warnings", r, 3, "restore describe"); }
static void print_errors(FILE *f, json_t *r) { cli_print_results(f, "Errors", r, 20, "backup describe"); }

/* the describe and --wait texts, byte for byte as the verbs printed them; tried: labels and list
 * items that are not strings, empty and missing lists, more results than are shown, a
 * validation error that is null */
static void describe_texts(void **state) {
  (void)state;
  char *t = printed(cli_print_head, json_pack("{s:{s:s,s:s,s:{s:s,s:i}}}", "metadata", "name", "r1", "namespace", "kcm-system",
                                              "labels", "team", "a", "odd", 1));
  assert_string_equal(t, "Name:         r1\nNamespace:    kcm-system\nLabels:       team=a\n              odd=\n");
  free(t);
  t = printed(cli_print_head, json_pack("{s:{s:s}}", "metadata", "name", "r2"));
  assert_string_equal(t, "Name:         r2\nNamespace:    <none>\nLabels:       <none>\n");
  free(t);
  t = printed(cli_print_scope, json_pack("{s:[s,i],s:[],s:[s]}", "includedNamespaces", "a", 5, "excludedNamespaces",
                                         "excludedResources", "nodes"));
  assert_string_equal(t, "Namespaces:\n  Included:  a, ?\n  Excluded:  <none>\n\nResources:\n  Included:  *\n  Excluded:  nodes\n");
  free(t);
  t = printed(print_warnings_max3, json_pack("{s:[s,s],s:[s],s:{s:[s,s]}}", "velero", "v1", "v2", "cluster", "c1",
                                             "namespaces", "ns", "n1", "n2"));
  assert_string_equal(t, "Warnings:\n  Velero:   v1\n  Velero:   v2\n  Cluster:  c1\n"
                         "  ... and 2 more (kcmdr restore describe -o json shows all)\n");
  free(t);
  t = printed(print_errors, json_pack("{s:[],s:{s:[i]}}", "velero", "namespaces", "team-a", 3));
  assert_string_equal(t, "Errors:\n  Namespace team-a:  ?\n");
  free(t);
  t = printed(print_errors, json_object());
  assert_string_equal(t, "Errors:  <none>\n");
  free(t);
  t = printed(cli_print_failure, json_pack("{s:s,s:[s,n]}", "failureReason", "the tarball does not match", "validationErrors", "bad"));
  assert_string_equal(t, "Failure reason: the tarball does not match\nValidation error: bad\nValidation error: ?\n");
  free(t);
  t = printed(cli_print_failure, json_pack("{s:s}", "failureReason", ""));
  assert_string_equal(t, "");
  free(t);
}

/* get's json/yaml: one object or a List that reads back; the table, or what is said when there
 * is nothing to show (not when a NAME was missing: that was said already) */
static void get_prints(void **state) {
  (void)state;
  json_t *items = json_pack("[{s:{s:s}},{s:{s:s}}]", "metadata", "name", "a", "metadata", "name", "b");
  struct capture c = capture_start(1);
  assert_int_equal(cli_print_items(items, false, CLI_OUT_JSON), KD_OK);
  char *out = capture_end(c);
  json_t *back = json_loads(out, 0, NULL);
  assert_non_null(back);
  assert_string_equal(json_string_value(json_object_get(back, "kind")), "List");
  assert_true(json_equal(json_object_get(back, "items"), items));
  json_decref(back);
  free(out);
  c = capture_start(1);
  assert_int_equal(cli_print_items(items, true, CLI_OUT_YAML), KD_OK);
  assert_captured(c, "metadata:\n  name: a\n");
  static const char *const h[] = {"NAME"};
  cli_table *t = cli_table_new(1, h);
  struct capture e = capture_start(2);
  c = capture_start(1);
  cli_print_table(t, "restores", "kcm-system", false);
  cli_print_table(t, "restores", "kcm-system", true);
  const char *row[] = {"r1"};
  assert_int_equal(cli_table_add(t, row), KD_OK);
  cli_print_table(t, "restores", "kcm-system", true);
  assert_captured(c, "NAME\nr1\n");
  assert_captured(e, "No restores found in namespace kcm-system.\n");
  cli_table_free(t);
  json_decref(items);
}

static int sub_calls;
static const char *sub_arg, *sub_ns;
static int fake_sub(const struct cli_globals *g, int argc, char **argv) {
  sub_calls++;
  sub_arg = argc > 1 ? argv[1] : NULL;
  sub_ns = g->namespace;
  return strcmp(argv[0], "get") == 0 ? 7 : -7;
}

/* tried: global flags before and after the subcommand, --help at every place, no subcommand, an
 * unknown one */
static void subcommands_dispatch(void **state) {
  (void)state;
  static const struct cli_sub subs[] = {{"get", fake_sub, "get usage\n"}, {"logs", fake_sub, "logs usage\n"}};
  char *a1[] = {"restore", "-n", "x", "get", "a", "-v", "1", NULL};
  assert_int_equal(cli_subcommand(7, a1, "restore", "USAGE\n", subs, 2), 7);
  assert_int_equal(sub_calls, 1);
  assert_string_equal(sub_arg, "a");
  assert_string_equal(sub_ns, "x");
  struct capture o = capture_start(1), e = capture_start(2);
  char *a2[] = {"restore", "logs", "--help", NULL}, *a3[] = {"restore", NULL}, *a4[] = {"restore", "-h", NULL},
       *a5[] = {"restore", "frob", NULL}, *a6[] = {"restore", "-v", "9", "get", NULL};
  assert_int_equal(cli_subcommand(3, a2, "restore", "USAGE\n", subs, 2), CLI_OK);
  assert_int_equal(cli_subcommand(1, a3, "restore", "USAGE\n", subs, 2), CLI_USAGE);
  assert_int_equal(cli_subcommand(2, a4, "restore", "USAGE\n", subs, 2), CLI_OK);
  assert_int_equal(cli_subcommand(2, a5, "restore", "USAGE\n", subs, 2), CLI_USAGE);
  assert_int_equal(cli_subcommand(4, a6, "restore", "USAGE\n", subs, 2), CLI_USAGE);
  assert_captured(e, "USAGE\nkcmdr restore: unknown subcommand 'frob'\nUSAGE\nkcmdr: -v needs a level from 0 to 4\n");
  assert_captured(o, "logs usage\nUSAGE\n");
  assert_int_equal(sub_calls, 1);
}

static int describe_calls;
static int fake_describe(kube_client *c, const char *ns, const char *name, int k, enum cli_output fmt, void *ud) {
  (void)c, (void)ns, (void)name, (void)k, (void)fmt, (void)ud;
  describe_calls++;
  return CLI_OK;
}
static int fake_find(kube_client *c, const char *ns, const char *name, struct cli_log_at *at) {
  (void)c, (void)ns, (void)name, (void)at;
  describe_calls++;
  return CLI_OK;
}

/* describe and logs: a usage error or a cluster that cannot be reached looks nothing up */
static void describe_and_logs_stop_early(void **state) {
  (void)state;
  struct cli_globals g = {.kubeconfig = "/nonexistent/kcmdr-test-kubeconfig", .verbosity = 2};
  struct capture e = capture_start(2);
  char *d1[] = {"describe", NULL}, *d2[] = {"describe", "a", "-o", "wide", NULL}, *d3[] = {"describe", "a", "b", NULL},
       *l1[] = {"logs", NULL}, *l2[] = {"logs", "a", "b", NULL}, *l3[] = {"logs", "a", NULL};
  assert_int_equal(cli_describe(&g, 1, d1, "restore describe", "U\n", fake_describe, NULL), CLI_USAGE);
  assert_int_equal(cli_describe(&g, 4, d2, "restore describe", "U\n", fake_describe, NULL), CLI_USAGE);
  assert_int_equal(cli_describe(&g, 3, d3, "restore describe", "U\n", fake_describe, NULL), CLI_FAIL);
  assert_int_equal(cli_logs(&g, 1, l1, "backup", "U\n", fake_find), CLI_USAGE);
  assert_int_equal(cli_logs(&g, 3, l2, "backup", "U\n", fake_find), CLI_USAGE);
  assert_int_equal(cli_logs(&g, 2, l3, "backup", "U\n", fake_find), CLI_FAIL);
  char *err = capture_end(e);
  assert_non_null(strstr(err, "kcmdr restore describe: which NAME?\nU\n"));
  assert_non_null(strstr(err, "kcmdr restore describe: -o takes json or yaml\n"));
  assert_non_null(strstr(err, "kcmdr backup logs: which NAME?\nU\n"));
  assert_non_null(strstr(err, "kcmdr backup logs: unexpected argument 'b'"));
  assert_non_null(strstr(err, "kcmdr-test-kubeconfig"));
  free(err);
  assert_int_equal(describe_calls, 0);
}

/* tried: list values a careless shell hands over: an unset variable (''), only commas, bytes
 * that are not UTF-8 (once "out of memory", exit 1); each is a usage error that names the flag */
static void list_flags_refuse_nothing(void **state) {
  (void)state;
  const char *pos[1];
  int npos;
  json_t *list = NULL;
  const struct cli_opt opts[] = {{"--include-namespaces", NULL, CLI_OPT_LIST, &list}};
  char *bad[][4] = {
      {"x", "--include-namespaces", "", NULL}, {"x", "--include-namespaces=", NULL},
      {"x", "--include-namespaces", ",,", NULL}, {"x", "--include-namespaces", "te\xff" "am", NULL},
      {"x", "--include-namespaces", "a,\xc2\x9b,b", NULL} /* C1 is UTF-8: checked later, as a name */,
  };
  struct capture e = capture_start(2);
  assert_int_equal(cli_parse_opts(3, bad[0], "restore create", opts, 1, pos, 1, &npos), CLI_USAGE);
  assert_int_equal(cli_parse_opts(2, bad[1], "restore create", opts, 1, pos, 1, &npos), CLI_USAGE);
  assert_int_equal(cli_parse_opts(3, bad[2], "restore create", opts, 1, pos, 1, &npos), CLI_USAGE);
  char *twice[] = {"x", "--include-namespaces", "a", "--include-namespaces", "", NULL};
  assert_int_equal(cli_parse_opts(5, twice, "restore create", opts, 1, pos, 1, &npos), CLI_USAGE);
  assert_int_equal(cli_parse_opts(3, bad[3], "restore create", opts, 1, pos, 1, &npos), CLI_USAGE);
  char *err = capture_end(e);
  assert_non_null(strstr(err, "kcmdr restore create: --include-namespaces '' names nothing (an unset shell variable?)"));
  assert_non_null(strstr(err, "kcmdr restore create: --include-namespaces ',,' names nothing"));
  assert_non_null(strstr(err, "kcmdr restore create: --include-namespaces 'te?am' is not valid UTF-8\n"));
  assert_null(strstr(err, "out of memory"));
  free(err);
  json_decref(list);
  list = NULL;
  assert_int_equal(cli_parse_opts(3, bad[4], "restore create", opts, 1, pos, 1, &npos), -1); /* checked later, as a name */
  assert_int_equal(json_array_size(list), 3);
  json_decref(list);
}

/* cli_restore with argv (NULL-terminated) and a kubeconfig that does not exist: CLI_USAGE when
 * it stops at the arguments, CLI_FAIL when it gets as far as connecting. *err gets stderr. */
static int restore_cmd(char **err, char **argv) {
  char *a[24] = {"restore", "--kubeconfig", "/nonexistent/kcmdr-test-kubeconfig"};
  int n = 3;
  for (; *argv && n < 23; argv++) a[n++] = *argv;
  a[n] = NULL;
  struct capture e = capture_start(2);
  int rc = cli_restore(n, a);
  *err = capture_end(e);
  return rc;
}

#define RESTORE(...) restore_cmd(&err, (char *[]){__VA_ARGS__, NULL})

/* tried: what an empty shell variable, a typo or a paste makes of restore create's flags (each
 * once reached the server or wrote includedNamespaces: [], "all namespaces"), and a backup name
 * so long that the default restore name is not a valid name; good values get as far as
 * connecting */
static void restore_create_refuses_careless_values(void **state) {
  (void)state;
  char *err = NULL, long_backup[250], long_label[65];
  memset(long_backup, 'b', sizeof long_backup - 1);
  long_backup[sizeof long_backup - 1] = '\0';
  memset(long_label, 'a', 64);
  long_label[64] = '\0';
  static const char *const flags[] = {"--include-namespaces", "--exclude-namespaces", "--include-resources",
                                      "--exclude-resources", "--namespace-mappings"};
  for (size_t i = 0; i < KD_ARRAY_LEN(flags); i++) {
    assert_int_equal(RESTORE("create", "--from-backup", "b1", (char *)flags[i], ""), CLI_USAGE);
    assert_non_null(strstr(err, "names nothing"));
    free(err);
    assert_int_equal(RESTORE("create", "--from-backup", "b1", (char *)flags[i], ",,"), CLI_USAGE);
    free(err);
  }
  const char *maps[] = {"team-a:te\xff" "am-z", "a:b:c", ":b", "a:", "A:b", "a:b_c", "a:b,a:c", "a.b:c", long_label};
  char map_long[80];
  snprintf(map_long, sizeof map_long, "%s:b", long_label);
  maps[KD_ARRAY_LEN(maps) - 1] = map_long;
  for (size_t i = 0; i < KD_ARRAY_LEN(maps); i++) {
    assert_int_equal(RESTORE("create", "--from-backup", "b1", "--namespace-mappings", (char *)maps[i]), CLI_USAGE);
    assert_null(strstr(err, "out of memory"));
    free(err);
  }
  assert_int_equal(RESTORE("create", "--from-backup", "b1", "--namespace-mappings", "a:b,a:c"), CLI_USAGE);
  assert_non_null(strstr(err, "--namespace-mappings maps a twice"));
  free(err);
  const char *nss[] = {"Team-A", "team_a", "a b", "-a", "kube-system/x", long_label, "\x1b[31m"};
  for (size_t i = 0; i < KD_ARRAY_LEN(nss); i++) {
    assert_int_equal(RESTORE("create", "--from-backup", "b1", "--include-namespaces", (char *)nss[i]), CLI_USAGE);
    assert_non_null(strstr(err, "is not a namespace name"));
    assert_null(strchr(err, '\x1b'));
    free(err);
    assert_int_equal(RESTORE("create", "--from-backup", "b1", "--exclude-namespaces", (char *)nss[i]), CLI_USAGE);
    free(err);
  }
  /* the default name of a restore: <backup>-<YYYYMMDDhhmmss>, at most 253 */
  assert_int_equal(RESTORE("create", "--from-backup", long_backup), CLI_USAGE);
  assert_non_null(strstr(err, "give the restore a NAME: "));
  assert_non_null(strstr(err, "would be longer than 253 characters"));
  free(err);
  /* what is fine goes on to connect (and fails there) */
  assert_int_equal(RESTORE("create", "r", "--from-backup", long_backup), CLI_FAIL);
  free(err);
  assert_int_equal(RESTORE("create", "--from-backup", "b1", "--include-namespaces", "*", "--exclude-namespaces", "team-*,kube-system",
                           "--include-resources", "a,,b", "--namespace-mappings", "team-a:team-z,team-b:team-z"),
                   CLI_FAIL);
  assert_non_null(strstr(err, "kcmdr-test-kubeconfig"));
  free(err);
}

/* No byte of s that a terminal acts on: C0 (newline included: every field is one line), DEL,
 * C1 as UTF-8 (0xc2 0x80..0x9f) or as a lone byte, and nothing that is not UTF-8. */
static void assert_shows_safely(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '\n') continue; /* the lines of the text itself; the fields' own are checked below */
    if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) || (*p >= 0x80 && *p <= 0x9f && (p == (const unsigned char *)s || p[-1] < 0xc0)))
      fail_msg("unsafe byte 0x%02x at %zu in:\n%s", *p, (size_t)(p - (const unsigned char *)s), s);
  }
}

/* tried: what a hostile archive or server puts where describe and create --wait print it: an
 * object name "\x1b]0;PWNED\x07\x1b[31mRED" (set the window title, turn the text red) in
 * failureReason, validation errors and results; C1 CSI as UTF-8 (U+009B) and as a lone byte; DEL;
 * a newline that would forge a line ("Phase: Completed"); bytes that are not UTF-8 */
static void server_text_is_cleaned(void **state) {
  (void)state;
  static const char hostile[] = "\x1b]0;PWNED\x07\x1b[31mRED";
  char buf[64];
  strcpy(buf, hostile);
  assert_int_equal(cli_text_clean(buf, strlen(buf)), 18);
  assert_string_equal(buf, "?]0;PWNED??[31mRED");
  strcpy(buf, "a\xc2\x9b" "31m\xc2\xa0\x7f\n\tb\xff\x9b\xe2\x98\x83\xe2\x98");
  cli_text_clean(buf, strlen(buf));
  assert_string_equal(buf, "a?31m\xc2\xa0???b??\xe2\x98\x83??"); /* U+00A0 and U+2603 are text; a cut one is not */
  strcpy(buf, "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"); /* overlong '/', a surrogate, past U+10FFFF */
  cli_text_clean(buf, strlen(buf));
  assert_null(strpbrk(buf, "/\x80\x90\xa0\xaf"));

  /* cli_printf: every %s cleaned, widths and precision kept, other conversions as printf */
  char *out = NULL;
  size_t len = 0;
  const char *volatile none = NULL;
  FILE *f = open_memstream(&out, &len);
  cli_printf(f, "[%-6s|%4s|%.3s|%.*s|%s] %d %5.1f %zu %lld %c %x %% %u\n", "a\x1b", "b\n", "c\x07xyz", 2, "\x9b" "zz", none,
             -3, 2.25, (size_t)7, -8LL, 'k', 255u, 9u);
  fclose(f);
  assert_string_equal(out, "[a?    |  b?|c?x|?z|(null)] -3   2.2 7 -8 k ff % 9\n");
  free(out);

  /* the describe and --wait texts */
  json_t *st = json_pack("{s:s,s:[s,s]}", "failureReason", hostile, "validationErrors", "x\nPhase: Completed", "a\xc2\x9b" "2Jb");
  char *t = printed(cli_print_failure, st);
  assert_shows_safely(t);
  assert_string_equal(t, "Failure reason: ?]0;PWNED??[31mRED\nValidation error: x?Phase: Completed\nValidation error: a?2Jb\n");
  free(t);
  json_t *r = json_pack("{s:[s],s:[s],s:{s:[s]}}", "velero", hostile, "cluster", "c\x7f", "namespaces", "ns\x1b[0m", hostile);
  t = printed(print_errors, r);
  assert_shows_safely(t);
  assert_string_equal(t, "Errors:\n  Velero:   ?]0;PWNED??[31mRED\n  Cluster:  c?\n  Namespace ns?[0m:  ?]0;PWNED??[31mRED\n");
  free(t);
  t = printed(cli_print_head, json_pack("{s:{s:s,s:s,s:{s:s}}}", "metadata", "name", "r\x1b", "namespace", "n\x07", "labels",
                                        "k\x1b", hostile));
  assert_shows_safely(t);
  assert_string_equal(t, "Name:         r?\nNamespace:    n?\nLabels:       k?=?]0;PWNED??[31mRED\n");
  free(t);
  t = printed(cli_print_scope, json_pack("{s:[s],s:[s]}", "includedNamespaces", hostile, "excludedResources", "a\nb"));
  assert_shows_safely(t);
  assert_non_null(strstr(t, "Included:  ?]0;PWNED??[31mRED\n"));
  assert_non_null(strstr(t, "Excluded:  a?b\n"));
  free(t);

  /* a table cell: C1 too now, as one column */
  static const char *const h[] = {"NAME", "X"};
  cli_table *tb = cli_table_new(2, h);
  const char *row[] = {"a\xc2\x9b" "2J", "1"};
  assert_int_equal(cli_table_add(tb, row), KD_OK);
  f = open_memstream(&out, &len);
  cli_table_print(tb, f);
  fclose(f);
  assert_string_equal(out, "NAME   X\na?2J   1\n");
  free(out);
  cli_table_free(tb);

  /* the progress line shows the server's phase cleaned */
  f = open_memstream(&out, &len);
  struct cli_progress p;
  cli_progress_init(&p, f, "Restore r", "restored");
  cli_progress_update(&p, "In\x1b[2JProgress", 1, 2);
  cli_progress_end(&p);
  fclose(f);
  assert_string_equal(out, "Restore r: In?[2JProgress, 1 of 2 items restored\n");
  free(out);
}

int test_cli(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_opts_forms),  cmocka_unit_test(names_and_outputs),     cmocka_unit_test(yaml_reads_back),
      cmocka_unit_test(output_drops_managed_fields), cmocka_unit_test(tables_align), cmocka_unit_test(times_and_sizes),
      cmocka_unit_test(progress_plain_lines), cmocka_unit_test(gunzip_files), cmocka_unit_test(checks_say_what_is_wrong),
      cmocka_unit_test(fields_and_names), cmocka_unit_test(describe_texts), cmocka_unit_test(get_prints),
      cmocka_unit_test(subcommands_dispatch), cmocka_unit_test(describe_and_logs_stop_early),
      cmocka_unit_test(list_flags_refuse_nothing), cmocka_unit_test(restore_create_refuses_careless_values),
      cmocka_unit_test(server_text_is_cleaned),
  };
  return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
