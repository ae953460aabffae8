/* driver.c — the C side of test/diff/t_jsonpatch.sh: reads the canonical cases main.go wrote and
 * prints one result line per case in the same shape ({"ok", "r", "class", "s", "s32"}), from
 * src/jsonpatch.c and src/resmod.c. An apply case is run twice, through jsonpatch_apply (jansson
 * values) and jsonpatch_apply_text (the patch as Go printed it); both must agree with Go. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpatch.h"
#include "resmod.h"

static const char *class_name(jsonpatch_err why) {
  switch (why) {
  case JSONPATCH_DECODE: return "decode";
  case JSONPATCH_TEST_FAILED: return "test";
  case JSONPATCH_MISSING: return "missing";
  case JSONPATCH_CRASH: return "crash";
  default: return "failed";
  }
}

static void emit(json_t *res) {
  char *s = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s) {
    fprintf(stderr, "driver: cannot print a result\n");
    exit(2);
  }
  puts(s);
  free(s);
  json_decref(res);
}

static json_t *outcome(kd_rc rc, json_t *r) {
  if (rc == KD_OK) return json_pack("{s:b,s:o}", "ok", 1, "r", r);
  if (rc == KD_ERR_NOMEM) {
    fprintf(stderr, "driver: out of memory\n");
    exit(2);
  }
  return json_pack("{s:b}", "ok", 0);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: driver CANONICAL-CASES\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long lineno = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    lineno++;
    json_error_t e;
    json_t *c = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &e);
    if (!c) {
      fprintf(stderr, "driver: line %ld: %s\n", lineno, e.text);
      return 2;
    }
    const char *t = json_string_value(json_object_get(c, "t"));
    json_t *r = NULL;
    kd_rc rc;
    if (!strcmp(t, "apply")) {
      json_t *doc = json_object_get(c, "doc"), *patch = json_object_get(c, "patch");
      json_t *ptext = json_object_get(c, "ptext");
      json_t *r2 = NULL;
      jsonpatch_err why = JSONPATCH_OK;
      rc = jsonpatch_apply(doc, patch, &r);
      kd_rc rc2 = jsonpatch_apply_text(doc, json_string_value(ptext), json_string_length(ptext), &r2, &why);
      if ((rc == KD_OK) != (rc2 == KD_OK) || (rc == KD_OK && !json_equal(r, r2))) {
        fprintf(stderr, "driver: line %ld: jsonpatch_apply and jsonpatch_apply_text disagree (%s / %s)\n", lineno,
                kd_rc_name(rc), kd_rc_name(rc2));
        return 1;
      }
      json_decref(r2);
      json_t *o = outcome(rc, r);
      if (rc != KD_OK) json_object_set_new(o, "class", json_string(class_name(why)));
      emit(o);
    } else if (!strcmp(t, "merge")) {
      rc = jsonpatch_merge(json_object_get(c, "doc"), json_object_get(c, "patch"), &r);
      emit(outcome(rc, r));
    } else if (!strcmp(t, "create")) {
      rc = jsonpatch_create_merge(json_object_get(c, "a"), json_object_get(c, "b"), &r);
      emit(outcome(rc, r));
    } else if (!strcmp(t, "fmt")) {
      json_t *v = json_object_get(c, "v");
      double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
      kd_buf b = KD_BUF_INIT(256);
      json_t *real = json_real(d);
      if (jsonpatch_go_text(real, &b) != KD_OK) return 2;
      json_decref(real);
      char g32[64];
      jsonpatch_go_gfloat(d, 32, g32, sizeof g32);
      emit(json_pack("{s:b,s:s,s:s}", "ok", 1, "s", b.data, "s32", g32));
      kd_buf_free(&b);
    } else if (!strcmp(t, "pf")) {
      json_t *s = json_object_get(c, "s");
      emit(json_pack("{s:b}", "ok", jsonpatch_go_parsefloat_ok(json_string_value(s), json_string_length(s))));
    } else if (!strcmp(t, "glob")) {
      json_t *p = json_object_get(c, "p"), *s = json_object_get(c, "s");
      const char *sep = json_string_value(json_object_get(c, "sep"));
      bool match = false;
      rc = resmod_glob_match(json_string_value(p), json_string_length(p), sep[0] ? sep[0] : 0, json_string_value(s),
                             json_string_length(s), &match);
      if (rc == KD_OK) emit(json_pack("{s:b}", "ok", match));
      else emit(json_pack("{s:b,s:s}", "ok", 0, "class", "compile"));
    } else {
      fprintf(stderr, "driver: unknown case kind %s\n", t);
      return 2;
    }
    json_decref(c);
  }
  free(line);
  fclose(f);
  return 0;
}
