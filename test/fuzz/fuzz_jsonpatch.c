/* fuzz_jsonpatch.c — libFuzzer target: the input is "document\n\nsecond part". The second part
 * is run as a JSON Patch text (Go's reader, NUL and bad UTF-8 included) and, when jansson reads
 * it, as a JSON Patch, a merge patch and a create-merge target against the document; it is also
 * parsed as a resource-modifier ConfigMap's YAML and applied to the document, and both parts are
 * tried as a gobwas glob and its subject. Nothing may crash or leak; an answer is either a value
 * (success) or nothing (failure), and the document is never modified. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpatch.h"
#include "resmod.h"

static void check(kd_rc rc, json_t *out) {
  if ((rc == KD_OK) != (out != NULL)) abort();
  json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  const char *s = (const char *)data, *sep = NULL;
  for (size_t i = 0; i + 1 < size && !sep; i++)
    if (s[i] == '\n' && s[i + 1] == '\n') sep = s + i;
  size_t n1 = sep ? (size_t)(sep - s) : size;
  const char *p2 = sep ? sep + 2 : s + size;
  size_t n2 = (size_t)(s + size - p2);

  bool match;
  (void)resmod_glob_match(s, n1, '.', p2, n2, &match);
  (void)resmod_glob_match(p2, n2, 0, s, n1, &match);

  json_t *doc = json_loadb(s, n1, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (!doc) return 0;
  json_t *copy = json_deep_copy(doc), *out = NULL;
  jsonpatch_err why;
  check(jsonpatch_apply_text(doc, p2, n2, &out, &why), out);
  json_t *patch = json_loadb(p2, n2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (patch) {
    out = NULL;
    check(jsonpatch_apply(doc, patch, &out), out);
    out = NULL;
    check(jsonpatch_merge(doc, patch, &out), out);
    out = NULL;
    check(jsonpatch_create_merge(doc, patch, &out), out);
    json_decref(patch);
  }
  json_t *cm = json_pack("{s:{s:s,s:s},s:{s:s%}}", "metadata", "name", "m", "namespace", "ns", "data", "r", p2, n2);
  resmod *m = NULL;
  if (cm && resmod_parse(cm, &m) == KD_OK && json_is_object(doc)) {
    json_t *obj = json_incref(doc);
    int applied;
    (void)resmod_apply(m, "pods", &obj, &applied);
    json_decref(obj);
  }
  resmod_free(m);
  json_decref(cm);
  if (!json_equal(doc, copy)) abort();
  json_decref(copy);
  json_decref(doc);
  return 0;
}
