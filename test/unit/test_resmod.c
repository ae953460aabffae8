/* test_resmod.c — Velero's resource modifiers: kcm's documented rollback, every condition and
 * patch kind, Velero's value quoting, its validation messages, and careless or hostile
 * ConfigMaps (two data keys, wrong version, unknown fields, bad regex/glob/selector, NUL bytes). */
#include <stdlib.h>
#include <string.h>

#include "jsonpatch.h"
#include "resmod.h"
#include "tests.h"

static json_t *J(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!v) fail_msg("bad JSON in test: %s: %s", s, e.text);
  return v;
}

static json_t *cm(const char *yaml) {
  return json_pack("{s:s,s:{s:s,s:s},s:{s:s}}", "kind", "ConfigMap", "metadata", "name", "mods", "namespace", "kcm-system",
                   "data", "rules.yaml", yaml);
}

static resmod *parse_ok(const char *yaml) {
  json_t *c = cm(yaml);
  resmod *m = NULL;
  kd_rc rc = resmod_parse(c, &m);
  if (rc != KD_OK) fail_msg("parse failed: %s\n%s", kd_errmsg(), yaml);
  json_decref(c);
  return m;
}

static void parse_fails(const char *yaml, kd_rc want, const char *msg) {
  json_t *c = cm(yaml);
  resmod *m = NULL;
  kd_rc rc = resmod_parse(c, &m);
  if (rc != want) fail_msg("parse gave %s (%s), wanted %s\n%s", kd_rc_name(rc), kd_errmsg(), kd_rc_name(want), yaml);
  if (!strstr(kd_errmsg(), msg)) fail_msg("message \"%s\" lacks \"%s\"", kd_errmsg(), msg);
  assert_null(m);
  json_decref(c);
}

static const char *MGMT = "{\"apiVersion\":\"k0rdent.mirantis.com/v1beta1\",\"kind\":\"Management\","
                          "\"metadata\":{\"name\":\"kcm\",\"labels\":{\"k0rdent.mirantis.com/component\":\"kcm\"}},"
                          "\"spec\":{\"release\":\"kcm-1-1-0\",\"providers\":[{\"name\":\"k0smotron\"},{\"name\":\"cluster-api\"}]}}";

/* Apply m to a copy of obj; returns the new object (caller decrefs) and the outcome. */
static json_t *run(const resmod *m, const char *gr, const char *obj, kd_rc *rc, int *applied) {
  json_t *o = J(obj);
  *rc = resmod_apply(m, gr, &o, applied);
  return o;
}

/* kcm's documented rollback: a JSON patch replace /spec/release on managements. */
static void kcm_rollback(void **state) {
  (void)state;
  resmod *m = parse_ok("version: v1\n"
                       "resourceModifierRules:\n"
                       "- conditions:\n"
                       "    groupResource: managements.k0rdent.mirantis.com\n"
                       "  patches:\n"
                       "  - operation: replace\n"
                       "    path: \"/spec/release\"\n"
                       "    value: \"kcm-1-0-0\"\n");
  assert_int_equal(resmod_rules(m), 1);
  kd_rc rc;
  int applied = -1;
  json_t *o = run(m, "managements.k0rdent.mirantis.com", MGMT, &rc, &applied);
  assert_int_equal(rc, KD_OK);
  assert_int_equal(applied, 1);
  assert_string_equal(json_string_value(json_object_get(json_object_get(o, "spec"), "release")), "kcm-1-0-0");
  json_decref(o);
  /* another resource is untouched (tried: a rule that matches nothing) */
  o = run(m, "clusterdeployments.k0rdent.mirantis.com", MGMT, &rc, &applied);
  assert_int_equal(rc, KD_OK);
  assert_int_equal(applied, 0);
  assert_string_equal(json_string_value(json_object_get(json_object_get(o, "spec"), "release")), "kcm-1-1-0");
  json_decref(o);
  resmod_free(m);
  /* the same as a JSON document, field names in another case */
  m = parse_ok("{\"Version\":\"V1\",\"resourceModifierRules\":[{\"Conditions\":{\"groupResource\":\"*.k0rdent.mirantis.com\"},"
               "\"patches\":[{\"operation\":\"Replace\",\"path\":\"/spec/release\",\"value\":\"x\"}]}]}");
  o = run(m, "managements.k0rdent.mirantis.com", MGMT, &rc, &applied);
  /* "Replace" passes Velero's validation (lower-cased) but evanphx knows only "replace" */
  assert_int_equal(rc, KD_ERR_INVALID);
  assert_non_null(strstr(kd_errmsg(), "resource modifier rule 0"));
  json_decref(o);
  resmod_free(m);
}

/* How many data keys, which version, which fields: Velero's messages. */
static void configmap_validation(void **state) {
  (void)state;
  json_t *c = J("{\"metadata\":{\"name\":\"m\",\"namespace\":\"ns\"},\"data\":{\"a\":\"version: v1\",\"b\":\"x\"}}");
  resmod *m = NULL;
  assert_int_equal(resmod_parse(c, &m), KD_ERR_INVALID);
  assert_non_null(strstr(kd_errmsg(), "illegal resource modifiers ns/m configmap"));
  json_decref(c);
  c = J("{\"metadata\":{\"name\":\"m\",\"namespace\":\"ns\"},\"data\":{}}");
  assert_int_equal(resmod_parse(c, &m), KD_ERR_INVALID);
  json_decref(c);
  c = J("{\"metadata\":{\"name\":\"m\",\"namespace\":\"ns\"}}");
  assert_int_equal(resmod_parse(c, &m), KD_ERR_INVALID);
  json_decref(c);
  const char *rule = "resourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: remove, path: /x}]\n";
  char buf[512];
  snprintf(buf, sizeof buf, "version: v2\n%s", rule);
  parse_fails(buf, KD_ERR_INVALID, "unsupported resource modifier version v2");
  snprintf(buf, sizeof buf, "version: 1\n%s", rule); /* a number for a string: "1" */
  parse_fails(buf, KD_ERR_INVALID, "unsupported resource modifier version 1");
  parse_fails(rule, KD_ERR_INVALID, "Validation error in resource modifiers provided in configmap kcm-system/mods");
  parse_fails("version: v1\n", KD_ERR_INVALID, "resource modifier rules cannot be empty");
  parse_fails("version: v1\nresourceModifierRules:\n- patches: [{operation: remove, path: /x}]\n", KD_ERR_INVALID,
              "groupkResource cannot be empty");
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: remove, path: /x}]\n"
              "  mergePatches: [{patchData: '{}'}]\n",
              KD_ERR_INVALID, "only one of patches, mergePatches, strategicPatches can be specified");
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: delete, path: /x}]\n",
              KD_ERR_INVALID, "unsupported operation delete");
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{path: /x}]\n", KD_ERR_INVALID,
              "operation cannot be empty");
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: add}]\n",
              KD_ERR_INVALID, "path cannot be empty");
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  strategicPatches: [{patchData: 'spec: {}'}]\n",
              KD_ERR_UNSUPPORTED, "strategicPatches are not supported yet");
  /* strict decoding: unknown fields and wrong types */
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods, nameRegex: x}\n", KD_ERR_INVALID,
              "unknown field \"nameRegex\"");
  parse_fails("version: v1\nextra: 1\n", KD_ERR_INVALID, "unknown field \"extra\"");
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: 5\n", KD_ERR_INVALID, "cannot unmarshal number");
  parse_fails("version: v1\nresourceModifierRules:\n- conditions: {groupResource: [a]}\n", KD_ERR_INVALID, "cannot unmarshal array");
  parse_fails("- a\n- b\n", KD_ERR_INVALID, "failed to decode yaml data into resource modifiers");
  parse_fails("version: [v1\n", KD_ERR_INVALID, "Error in parsing resource modifiers provided in configmap kcm-system/mods");
  parse_fails("", KD_ERR_INVALID, "unsupported resource modifier version");
}

/* Every condition, alone, matching and not. */
static void conditions(void **state) {
  (void)state;
  const char *pod = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-42\",\"namespace\":\"team-a\","
                    "\"labels\":{\"app\":\"web\",\"tier\":\"front\"}},\"spec\":{\"nodeName\":\"n1\",\"replicas\":3,"
                    "\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1\"}]}}";
  static const struct {
    const char *cond;
    bool match;
  } cases[] = {
      {"groupResource: pods", true},
      {"groupResource: \"*\"", true},
      {"groupResource: \"*.apps\"", false},
      {"groupResource: \"{pods,secrets}\"", true},
      {"groupResource: pods\n    namespaces: [team-a]", true},
      {"groupResource: pods\n    namespaces: [\"team-*\"]", true},
      {"groupResource: pods\n    namespaces: [team-b]", false},
      {"groupResource: pods\n    namespaces: [team-b, \"*\"]", true},
      {"groupResource: pods\n    resourceNameRegex: \"^web-[0-9]+$\"", true},
      {"groupResource: pods\n    resourceNameRegex: \"^web-\\\\d+$\"", true},
      {"groupResource: pods\n    resourceNameRegex: \"(?i)^WEB\"", true},
      {"groupResource: pods\n    resourceNameRegex: \"^db\"", false},
      {"groupResource: pods\n    resourceNameRegex: \"eb-4\"", true}, /* unanchored, as Go's MatchString */
      {"groupResource: pods\n    labelSelector: {matchLabels: {app: web}}", true},
      {"groupResource: pods\n    labelSelector: {matchLabels: {app: db}}", false},
      {"groupResource: pods\n    labelSelector: {matchExpressions: [{key: tier, operator: In, values: [front, back]}]}", true},
      {"groupResource: pods\n    labelSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [front]}]}", false},
      {"groupResource: pods\n    labelSelector: {}", true},
      {"groupResource: pods\n    matches: [{path: /spec/nodeName, value: n1}]", true},
      {"groupResource: pods\n    matches: [{path: /spec/nodeName, value: n2}]", false},
      {"groupResource: pods\n    matches: [{path: /spec/replicas, value: \"3\"}]", true},
      {"groupResource: pods\n    matches: [{path: /spec/replicas, value: 3}]", true},
      {"groupResource: pods\n    matches: [{path: /spec/replicas, value: \"3.0\"}]", false}, /* Velero compares the text */
      {"groupResource: pods\n    matches: [{path: /spec/replicas, value: '\"3\"'}]", false},
      {"groupResource: pods\n    matches: [{path: /spec/missing/deeper, value: x}]", false},
      {"groupResource: pods\n    matches: [{path: /spec/containers/0/image, value: \"nginx:1\"}, {path: /kind, value: Pod}]", true},
      {"groupResource: pods\n    matches: [{path: /spec/containers/0, value: '{\"image\":\"nginx:1\",\"name\":\"c\"}'}]", true},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "version: v1\nresourceModifierRules:\n- conditions:\n    %s\n  patches:\n  - {operation: add, path: /metadata/annotations, value: '{\"hit\":\"1\"}'}\n",
             cases[i].cond);
    resmod *m = parse_ok(yaml);
    kd_rc rc;
    int applied = -1;
    json_t *o = run(m, "pods", pod, &rc, &applied);
    if (rc != KD_OK) fail_msg("case %zu: %s", i, kd_errmsg());
    bool hit = json_object_get(json_object_get(o, "metadata"), "annotations") != NULL;
    if (hit != cases[i].match || applied != (cases[i].match ? 1 : 0)) fail_msg("case %zu (%s): match %d", i, cases[i].cond, hit);
    json_decref(o);
    resmod_free(m);
  }
  /* cluster-scoped objects ignore namespaces */
  resmod *m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: namespaces, namespaces: [x]}\n"
                       "  patches: [{operation: add, path: /metadata/labels, value: '{}'}]\n");
  kd_rc rc;
  int applied;
  json_t *o = run(m, "namespaces", "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"y\"}}", &rc, &applied);
  assert_int_equal(applied, 1);
  json_decref(o);
  resmod_free(m);
}

/* Conditions that cannot be evaluated fail per object, as in Velero; parsing accepts them. */
static void bad_conditions(void **state) {
  (void)state;
  static const char *conds[] = {
      "groupResource: pods\n    resourceNameRegex: \"a(b\"",                                        /* bad regex */
      "groupResource: \"[a-z0-9]\"",                                                             /* gobwas: one range per [] */
      "groupResource: pods\n    labelSelector: {matchExpressions: [{key: a, operator: Near}]}", /* bad operator */
      "groupResource: pods\n    matches: [{value: x}]",                                          /* match without a path */
      "groupResource: pods\n    matches: [{path: /spec/list/9, value: x}]",                       /* index past the end */
      "groupResource: pods\n    matches: [{path: '/spec/\"x', value: x}]",                        /* breaks Velero's JSON */
  };
  const char *pod = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"},\"spec\":{\"list\":[1]}}";
  for (size_t i = 0; i < KD_ARRAY_LEN(conds); i++) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "version: v1\nresourceModifierRules:\n- conditions:\n    %s\n  patches: [{operation: remove, path: /spec}]\n",
             conds[i]);
    resmod *m = parse_ok(yaml);
    kd_rc rc;
    int applied = -1;
    json_t *o = run(m, "pods", pod, &rc, &applied);
    if (rc != KD_ERR_INVALID) fail_msg("case %zu: %s", i, kd_rc_name(rc));
    assert_int_equal(applied, 0);
    assert_non_null(json_object_get(o, "spec")); /* untouched */
    json_decref(o);
    resmod_free(m);
  }
  /* an object outside the namespaces never reaches the bad regex */
  resmod *m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods, namespaces: [other], resourceNameRegex: 'a(b'}\n"
                       "  patches: [{operation: remove, path: /spec}]\n");
  kd_rc rc;
  int applied;
  json_t *o = run(m, "pods", pod, &rc, &applied);
  assert_int_equal(rc, KD_OK);
  json_decref(o);
  resmod_free(m);
}

/* Velero's quoting of values: what becomes raw JSON and what a string. */
static void value_quoting(void **state) {
  (void)state;
  static const struct {
    const char *value, *json;
  } v[] = {{"", "\"\""},          {"abc", "\"abc\""},         {"\"true\"", "\"true\""}, {"true", "true"},
           {"False", "False"},    {"null", "null"},           {"Null", "\"Null\""},     {"{\"a\":1}", "{\"a\":1}"},
           {"[1]", "[1]"},        {"5", "5"},                 {"1.50", "1.50"},         {"1e400", "\"1e400\""},
           {"0x10", "\"0x10\""},  {"1_000", "1_000"},         {"Inf", "Inf"},           {"\"", "\"\""},
           {"\"a\"b\"", "\"a\"b\""}};
  for (size_t i = 0; i < KD_ARRAY_LEN(v); i++) {
    kd_buf b = KD_BUF_INIT(1024);
    assert_int_equal(resmod_patch_text("add", 3, "", 0, "/p", 2, v[i].value, strlen(v[i].value), &b), KD_OK);
    char want[256];
    snprintf(want, sizeof want, "{\"op\": \"add\", \"from\": \"\", \"path\": \"/p\", \"value\": %s}", v[i].json);
    if (strcmp(b.data, want)) fail_msg("value %s gave %s", v[i].value, b.data);
    kd_buf_free(&b);
  }
  /* values end up in the object as Velero's JSON makes them */
  resmod *m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches:\n"
                       "  - {operation: add, path: /spec/n, value: \"10\"}\n"
                       "  - {operation: add, path: /spec/s, value: '\"10\"'}\n"
                       "  - {operation: add, path: /spec/b, value: \"true\"}\n"
                       "  - {operation: add, path: /spec/f, value: 2.0}\n"
                       "  - {operation: add, path: /spec/o, value: '{\"k\": [1, 2.5]}'}\n"
                       "  - {operation: copy, from: /spec/n, path: /spec/n2}\n"
                       "  - {operation: move, from: /spec/n2, path: /spec/n3}\n");
  kd_rc rc;
  int applied;
  json_t *o = run(m, "pods", "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"r\":2.0}}", &rc, &applied);
  assert_int_equal(rc, KD_OK);
  json_t *want = J("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"r\":2,\"n\":10,\"s\":\"10\",\"b\":true,\"f\":2,"
                   "\"o\":{\"k\":[1,2.5]},\"n3\":10}}");
  if (!json_equal(o, want)) fail_msg("got %s", json_dumps(o, JSON_COMPACT));
  assert_true(json_is_integer(json_object_get(json_object_get(o, "spec"), "r"))); /* 2.0 → 2, as Velero decodes it */
  json_decref(want);
  json_decref(o);
  resmod_free(m);
}

/* Merge patches, several rules, failures in the middle, conditions on the original object. */
static void rules_in_order(void **state) {
  (void)state;
  resmod *m = parse_ok("version: v1\nresourceModifierRules:\n"
                       "- conditions: {groupResource: deployments.apps, labelSelector: {matchLabels: {app: web}}}\n"
                       "  mergePatches:\n  - patchData: |\n      metadata:\n        labels:\n          app: changed\n          tier: null\n"
                       "  - patchData: '{\"spec\": {\"replicas\": 5}}'\n"
                       "- conditions: {groupResource: deployments.apps, labelSelector: {matchLabels: {app: web}}}\n"
                       "  patches: [{operation: test, path: /spec/replicas, value: \"1\"}, {operation: remove, path: /spec}]\n"
                       "- conditions: {groupResource: \"*.apps\"}\n"
                       "  patches: [{operation: remove, path: /spec/nothing}]\n"
                       "- conditions: {groupResource: \"*.apps\"}\n"
                       "  patches: [{operation: remove, path: /kind}]\n"
                       "- conditions: {groupResource: \"*.apps\", matches: [{path: /metadata/labels/app, value: web}]}\n"
                       "  patches: [{operation: add, path: /metadata/annotations, value: '{\"seen\": \"original\"}'}]\n");
  kd_rc rc;
  int applied = -1;
  json_t *o = run(m, "deployments.apps",
                  "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"d\",\"namespace\":\"n\",\"labels\":{\"app\":\"web\",\"tier\":\"x\"}},"
                  "\"spec\":{\"replicas\":1}}",
                  &rc, &applied);
  /* rule 0 merges; rule 1 matches the original labels, but its test fails now: skipped silently;
   * rule 2 misses a path and rule 3 removes "kind": both errors; rule 4 matched the original */
  assert_int_equal(rc, KD_ERR_INVALID);
  assert_non_null(strstr(kd_errmsg(), "rule 2"));
  assert_non_null(strstr(kd_errmsg(), "rule 3"));
  assert_null(strstr(kd_errmsg(), "rule 1"));
  assert_int_equal(applied, 2);
  json_t *want = J("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"d\",\"namespace\":\"n\",\"labels\":{\"app\":\"changed\"},"
                   "\"annotations\":{\"seen\":\"original\"}},\"spec\":{\"replicas\":5}}");
  if (!json_equal(o, want)) fail_msg("got %s", json_dumps(o, JSON_COMPACT));
  json_decref(want);
  json_decref(o);
  resmod_free(m);
  /* a merge patch that is not a patch */
  m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  mergePatches: [{patchData: '5'}, {patchData: ''}]\n");
  o = run(m, "pods", "{\"kind\":\"Pod\"}", &rc, &applied);
  assert_int_equal(rc, KD_ERR_INVALID);
  json_decref(o);
  resmod_free(m);
  /* a rule with no patches at all fails where it matches */
  m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n");
  o = run(m, "pods", "{\"kind\":\"Pod\"}", &rc, &applied);
  assert_int_equal(rc, KD_ERR_INVALID);
  assert_non_null(strstr(kd_errmsg(), "no patch data found"));
  json_decref(o);
  resmod_free(m);
}

/* NUL bytes and hostile strings: refused cleanly, never a crash. */
static void hostile(void **state) {
  (void)state;
  /* a NUL inside a value breaks Velero's JSON text (a control character): an error */
  resmod *m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n"
                       "  patches: [{operation: add, path: /a, value: \"x\\0y\"}]\n");
  kd_rc rc;
  int applied;
  json_t *o = run(m, "pods", "{\"kind\":\"Pod\"}", &rc, &applied);
  assert_int_equal(rc, KD_ERR_INVALID);
  json_decref(o);
  resmod_free(m);
  /* an escaped NUL is data */
  m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n"
               "  patches: [{operation: add, path: /a, value: '\"x\\u0000y\"'}]\n");
  o = run(m, "pods", "{\"kind\":\"Pod\"}", &rc, &applied);
  assert_int_equal(rc, KD_OK);
  assert_int_equal(json_string_length(json_object_get(o, "a")), 3);
  json_decref(o);
  resmod_free(m);
  /* a quote in a path injects a member into Velero's text: evanphx then sees two "op"s */
  m = parse_ok("version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n"
               "  patches: [{operation: add, path: '/x\", \"op\": \"remove', value: '1'}]\n");
  o = run(m, "pods", "{\"kind\":\"Pod\",\"x\":1}", &rc, &applied);
  assert_int_equal(rc, KD_OK);
  assert_null(json_object_get(o, "x")); /* it removed /x, as Velero would */
  json_decref(o);
  resmod_free(m);
  /* deep values and huge indexes */
  kd_buf y = KD_BUF_INIT(1 << 20);
  kd_buf_adds(&y, "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: add, path: /a, value: '");
  for (int i = 0; i < 3000; i++) kd_buf_adds(&y, "[");
  for (int i = 0; i < 3000; i++) kd_buf_adds(&y, "]");
  kd_buf_adds(&y, "'}, {operation: remove, path: /b/99999999999999999999}]\n");
  m = parse_ok(y.data);
  o = run(m, "pods", "{\"kind\":\"Pod\",\"b\":[1]}", &rc, &applied);
  assert_int_equal(rc, KD_ERR_INVALID);
  json_decref(o);
  resmod_free(m);
  kd_buf_free(&y);
  resmod_free(NULL);
}

/* gobwas/glob as Velero uses it, quirks included. */
static void globs(void **state) {
  (void)state;
  static const struct {
    const char *p, *s;
    char sep;
    int want; /* 1 match, 0 no match, -1 does not compile */
  } g[] = {
      {"*.apps", "deployments.apps", '.', 1},   {"*.apps", "a.b.apps", '.', 0},  {"**.apps", "a.b.apps", '.', 1},
      {"*", "managements.k0rdent.mirantis.com", '.', 0}, {"*", "a.b", 0, 1},    {"?ods", "pods", '.', 1},
      {"[pq]ods", "pods", '.', 1},              {"[!p]ods", "pods", '.', 0},     {"[a-z]ods", "pods", '.', 1},
      {"{pods,secrets}", "secrets", '.', 1},    {"{a,b", "b", 0, 1},             {"a}", "a}", 0, 1},
      {"\\*", "*", 0, 1},                       {"a*a", "a", 0, 1}, /* gobwas's overlapping prefix and suffix */
      {"x\0y", "xy", 0, 1},                     {"*\0y", "anything", 0, 1},
      {"[]", "a", 0, -1},                        {"[a-z0-9]", "a", 0, -1},        {"[z-a]", "a", 0, -1},
      {"[a-", "a", 0, -1},                       {"\xef\xbf\xbd", "x", 0, -1},    {"\xff", "x", 0, -1},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(g); i++) {
    bool match = false;
    size_t plen = strlen(g[i].p);
    if (i == 14 || i == 15) plen = 3; /* the patterns with a NUL */
    kd_rc rc = resmod_glob_match(g[i].p, plen, g[i].sep, g[i].s, strlen(g[i].s), &match);
    int got = rc != KD_OK ? -1 : match;
    if (got != g[i].want) fail_msg("glob %zu \"%s\" on \"%s\": %d, wanted %d", i, g[i].p, g[i].s, got, g[i].want);
  }
  /* a long pattern of stars against a long name stays linear */
  kd_buf p = KD_BUF_INIT(1 << 20), s = KD_BUF_INIT(1 << 20);
  for (int i = 0; i < 2000; i++) kd_buf_adds(&p, "*a");
  kd_buf_adds(&p, "b");
  for (int i = 0; i < 5000; i++) kd_buf_adds(&s, "a");
  bool match = true;
  assert_int_equal(resmod_glob_match(p.data, p.len, 0, s.data, s.len, &match), KD_OK);
  assert_false(match);
  kd_buf_free(&p);
  kd_buf_free(&s);
}

int test_resmod(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kcm_rollback),  cmocka_unit_test(configmap_validation), cmocka_unit_test(conditions),
      cmocka_unit_test(bad_conditions), cmocka_unit_test(value_quoting),       cmocka_unit_test(rules_in_order),
      cmocka_unit_test(hostile),        cmocka_unit_test(globs),
  };
  return cmocka_run_group_tests_name("resmod", tests, NULL, NULL);
}
