/* test_backup.c — the pure parts of a Backup execution: Velero's glob, label selectors as
 * Kubernetes evaluates them, Velero's include/exclude rules (tables after Velero's
 * includes_excludes_test.go and backup_controller.go, plus kcm's own spec), the raw metadata
 * scanner, the apiVersion/kind insertion that keeps every other byte, and the shapes of the
 * resource list and results files. */
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "tests.h"

/* A discovery result as kube_discover returns it: core first, in the server's group order. */
static const char *const disc_json =
    "["
    "{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\",\"kind\":\"Pod\",\"namespaced\":true,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"po\"]},"
    "{\"group\":\"\",\"version\":\"v1\",\"resource\":\"configmaps\",\"kind\":\"ConfigMap\",\"namespaced\":true,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"cm\"]},"
    "{\"group\":\"\",\"version\":\"v1\",\"resource\":\"secrets\",\"kind\":\"Secret\",\"namespaced\":true,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":null},"
    "{\"group\":\"\",\"version\":\"v1\",\"resource\":\"namespaces\",\"kind\":\"Namespace\",\"namespaced\":false,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"ns\"]},"
    "{\"group\":\"\",\"version\":\"v1\",\"resource\":\"persistentvolumes\",\"kind\":\"PersistentVolume\",\"namespaced\":false,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"pv\"]},"
    "{\"group\":\"\",\"version\":\"v1\",\"resource\":\"events\",\"kind\":\"Event\",\"namespaced\":true,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"ev\"]},"
    "{\"group\":\"\",\"version\":\"v1\",\"resource\":\"componentstatuses\",\"kind\":\"ComponentStatus\",\"namespaced\":false,"
    "\"verbs\":[\"get\",\"list\"],\"shortNames\":[\"cs\"]},"
    "{\"group\":\"apps\",\"version\":\"v1\",\"resource\":\"deployments\",\"kind\":\"Deployment\",\"namespaced\":true,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"deploy\"]},"
    "{\"group\":\"events.k8s.io\",\"version\":\"v1\",\"resource\":\"events\",\"kind\":\"Event\",\"namespaced\":true,"
    "\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"ev\"]},"
    "{\"group\":\"rbac.authorization.k8s.io\",\"version\":\"v1\",\"resource\":\"clusterroles\",\"kind\":\"ClusterRole\","
    "\"namespaced\":false,\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":null},"
    "{\"group\":\"apiextensions.k8s.io\",\"version\":\"v1\",\"resource\":\"customresourcedefinitions\","
    "\"kind\":\"CustomResourceDefinition\",\"namespaced\":false,\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],"
    "\"shortNames\":[\"crd\",\"crds\"]},"
    "{\"group\":\"k0rdent.mirantis.com\",\"version\":\"v1beta1\",\"resource\":\"managements\",\"kind\":\"Management\","
    "\"namespaced\":false,\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":null},"
    "{\"group\":\"k0rdent.mirantis.com\",\"version\":\"v1beta1\",\"resource\":\"clusterdeployments\","
    "\"kind\":\"ClusterDeployment\",\"namespaced\":true,\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],"
    "\"shortNames\":[\"clusterd\"]},"
    "{\"group\":\"cluster.x-k8s.io\",\"version\":\"v1beta1\",\"resource\":\"clusters\",\"kind\":\"Cluster\","
    "\"namespaced\":true,\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],\"shortNames\":[\"cl\"]},"
    "{\"group\":\"snapshot.storage.k8s.io\",\"version\":\"v1\",\"resource\":\"volumesnapshotcontents\","
    "\"kind\":\"VolumeSnapshotContent\",\"namespaced\":false,\"verbs\":[\"create\",\"delete\",\"get\",\"list\"],"
    "\"shortNames\":[\"vsc\"]}"
    "]";

static json_t *load(const char *s) {
  json_error_t e;
  json_t *j = json_loads(s, JSON_ALLOW_NUL, &e);
  if (!j) fail_msg("bad test JSON at %d: %s", e.position, e.text);
  return j;
}

/* ---- glob ---- */

/* Velero's wildcard cases (includes_excludes_test.go: "*.bar" vs "foo.bar"/"bar.foo") and the
 * namespace patterns its tests use; hostile patterns (unclosed class or group, a lone
 * backslash) never match and never read past the end. */
static void glob_velero_cases(void **state) {
  (void)state;
  static const struct {
    const char *pat, *s;
    bool want;
  } t[] = {
      {"*", "anything", true},        {"*", "", true},          {"*.bar", "foo.bar", true},
      {"*.bar", "bar.foo", false},    {"kube-*", "kube-system", true}, {"kube-*", "kube", false},
      {"test-?", "test-1", true},     {"test-?", "test-12", false},   {"ns-[0-9]", "ns-5", true},
      {"ns-[0-9]", "ns-a", false},    {"ns-[!0-9]", "ns-a", true},    {"ns-[!0-9]", "ns-5", false},
      {"*spaces", "namespaces", true}, {"*-ingress-*", "nginx-ingress-x", true}, {"{a,b}c", "bc", true},
      {"{a,b}c", "cc", false},        {"x{a,{b,d}}y", "xdy", true},  {"ns-[0-9", "ns-5", false},
      {"{a,b", "a", false},           {"a\\*", "a*", true},           {"a\\*", "ab", false},
      {"foo", "foo", true},           {"foo", "foobar", false},       {"", "", true},
      {"**", "abc", true},            {"a*b*c", "aXXbYYc", true},     {"a*b*c", "aXXbYY", false},
      {"\\", "\\", false},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (backup_glob(t[i].pat, t[i].s) != t[i].want) fail_msg("glob(%s, %s) should be %d", t[i].pat, t[i].s, t[i].want);
}

/* ---- selectors ---- */

static bool sel_match(const char *sel, const char *labels) {
  json_t *s = load(sel), *l = load(labels);
  backup_selector *bs = NULL;
  assert_int_equal(backup_selector_new(s, &bs), KD_OK);
  bool r = backup_selector_matches(bs, l);
  backup_selector_free(bs);
  json_decref(s);
  json_decref(l);
  return r;
}

/* Each operator on present, absent and different labels, as labels.Selector.Matches; the
 * empty selector matches everything, a null one nothing; several requirements are ANDed. */
static void selector_match(void **state) {
  (void)state;
  assert_true(sel_match("{\"matchLabels\":{\"a\":\"1\"}}", "{\"a\":\"1\",\"b\":\"2\"}"));
  assert_false(sel_match("{\"matchLabels\":{\"a\":\"1\"}}", "{\"a\":\"2\"}"));
  assert_false(sel_match("{\"matchLabels\":{\"a\":\"1\"}}", "{}"));
  assert_true(sel_match("{\"matchLabels\":{\"a\":\"\"}}", "{\"a\":\"\"}"));
  assert_true(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x\",\"y\"]}]}", "{\"a\":\"y\"}"));
  assert_false(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x\",\"y\"]}]}", "{\"a\":\"z\"}"));
  assert_false(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x\"]}]}", "{}"));
  assert_true(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}", "{}"));
  assert_true(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}", "{\"a\":\"y\"}"));
  assert_false(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}", "{\"a\":\"x\"}"));
  assert_true(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}]}", "{\"a\":\"\"}"));
  assert_false(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}]}", "{\"b\":\"\"}"));
  assert_true(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\"}]}", "{\"b\":\"1\"}"));
  assert_false(sel_match("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\"}]}", "{\"a\":\"1\"}"));
  assert_true(sel_match("{\"matchLabels\":{\"k0rdent.mirantis.com/component\":\"kcm\"},"
                        "\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\"}]}",
                        "{\"k0rdent.mirantis.com/component\":\"kcm\"}"));
  assert_false(sel_match("{\"matchLabels\":{\"k0rdent.mirantis.com/component\":\"kcm\"},"
                         "\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\"}]}",
                         "{\"k0rdent.mirantis.com/component\":\"kcm\",\"a\":\"1\"}"));
  assert_true(sel_match("{}", "{\"x\":\"y\"}"));
  assert_true(sel_match("{\"matchLabels\":null,\"matchExpressions\":null}", "{}"));
  /* a label value that is not a string (hostile server) matches no value */
  assert_false(sel_match("{\"matchLabels\":{\"a\":\"1\"}}", "{\"a\":1}"));
  json_t *n = json_null();
  backup_selector *bs = NULL;
  assert_int_equal(backup_selector_new(n, &bs), KD_OK);
  assert_false(backup_selector_matches(bs, NULL));
  backup_selector_free(bs);
}

/* What LabelSelectorAsSelector refuses: In/NotIn without values, Exists with values, an
 * unknown operator (case matters), bad keys and values (too long, bad characters, empty). */
static void selector_invalid(void **state) {
  (void)state;
  static const char *const bad[] = {
      "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[]}]}",
      "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\"}]}",
      "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
      "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"in\",\"values\":[\"x\"]}]}",
      "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}",
      "{\"matchExpressions\":[{\"operator\":\"Exists\"}]}",
      "{\"matchLabels\":{\"\":\"x\"}}",
      "{\"matchLabels\":{\"a b\":\"x\"}}",
      "{\"matchLabels\":{\"a\":\"x y\"}}",
      "{\"matchLabels\":{\"a\":\"-x\"}}",
      "{\"matchLabels\":{\"a\":\"1234567890123456789012345678901234567890123456789012345678901234\"}}",
      "{\"matchLabels\":{\"Bad_Prefix/a\":\"x\"}}",
      "{\"matchLabels\":{\"a/b/c\":\"x\"}}",
      "{\"matchLabels\":{\"a\":5}}",
      "{\"matchLabels\":[]}",
      "[]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *s = load(bad[i]);
    backup_selector *bs = NULL;
    if (backup_selector_new(s, &bs) != KD_ERR_INVALID) fail_msg("accepted: %s", bad[i]);
    assert_null(bs);
    json_decref(s);
  }
}

/* The string form sent to the API server: requirements sorted by key, values sorted. */
static void selector_string(void **state) {
  (void)state;
  json_t *s = load("{\"matchLabels\":{\"z\":\"1\",\"a.io/b\":\"2\"},\"matchExpressions\":["
                   "{\"key\":\"m\",\"operator\":\"In\",\"values\":[\"y\",\"x\"]},"
                   "{\"key\":\"n\",\"operator\":\"NotIn\",\"values\":[\"q\"]},"
                   "{\"key\":\"o\",\"operator\":\"Exists\"},{\"key\":\"p\",\"operator\":\"DoesNotExist\"}]}");
  backup_selector *bs = NULL;
  kd_buf out = KD_BUF_INIT(4096);
  assert_int_equal(backup_selector_new(s, &bs), KD_OK);
  assert_int_equal(backup_selector_size(bs), 6);
  assert_int_equal(backup_selector_string(bs, &out), KD_OK);
  assert_string_equal(out.data, "a.io/b=2,m in (x,y),n notin (q),o,!p,z=1");
  kd_buf_free(&out);
  backup_selector_free(bs);
  json_decref(s);
}

/* ---- filters ---- */

struct ftest {
  json_t *disc, *errors;
  backup_filter *f;
};

static void fbuild(struct ftest *t, const char *spec, const char *extra_ns) {
  json_t *s = load(spec), *x = extra_ns ? load(extra_ns) : NULL;
  t->disc = load(disc_json);
  t->errors = json_array();
  assert_int_equal(backup_filter_new(s, t->disc, x, t->errors, &t->f), KD_OK);
  json_decref(s);
  json_decref(x);
}

static void ffree(struct ftest *t) {
  backup_filter_free(t->f);
  json_decref(t->disc);
  json_decref(t->errors);
}

static bool has_error(json_t *errors, const char *part) {
  size_t i;
  json_t *e;
  json_array_foreach(errors, i, e) {
    if (strstr(json_string_value(e), part)) return true;
  }
  return false;
}

/* kcm's own Backup spec (includedNamespaces *, excludedResources clusters.cluster.x-k8s.io):
 * every namespace, cluster-scoped resources included (auto, all namespaces), Clusters out,
 * CRDs included by the filter itself (so Velero adds no CRDs beyond the selectors), the
 * automatic VolumeSnapshotContent exclude. */
static void filter_kcm_spec(void **state) {
  (void)state;
  struct ftest t;
  fbuild(&t, "{\"includedNamespaces\":[\"*\"],\"excludedResources\":[\"clusters.cluster.x-k8s.io\"],\"ttl\":\"720h0m0s\"}", NULL);
  assert_int_equal(json_array_size(t.errors), 0);
  assert_true(backup_filter_all_namespaces(t.f));
  assert_true(backup_filter_namespace(t.f, "kcm-system"));
  assert_true(backup_filter_includes(t.f, "configmaps"));
  assert_true(backup_filter_includes(t.f, "clusterdeployments.k0rdent.mirantis.com"));
  assert_false(backup_filter_includes(t.f, "clusters.cluster.x-k8s.io"));
  assert_true(backup_filter_excludes(t.f, "clusters.cluster.x-k8s.io"));
  assert_true(backup_filter_includes(t.f, "clusterroles.rbac.authorization.k8s.io"));
  assert_true(backup_filter_includes(t.f, "managements.k0rdent.mirantis.com"));
  assert_true(backup_filter_includes(t.f, "namespaces"));
  assert_true(backup_filter_includes(t.f, "customresourcedefinitions.apiextensions.k8s.io"));
  assert_false(backup_filter_excludes(t.f, "customresourcedefinitions.apiextensions.k8s.io"));
  assert_false(backup_filter_includes(t.f, "volumesnapshotcontents.snapshot.storage.k8s.io"));
  assert_false(backup_filter_includes(t.f, "no-such-thing"));
  assert_true(backup_filter_excludes(t.f, "no-such-thing"));
  ffree(&t);
}

/* includeClusterResources unset with specific namespaces: cluster-scoped resources are not
 * listed (namespaces are), nor excluded, so Velero adds the CRDs of custom resources; false
 * turns every cluster-scoped type off, namespaces included; true turns them on. */
static void filter_cluster_resources(void **state) {
  (void)state;
  struct ftest t;
  const char *crd = "customresourcedefinitions.apiextensions.k8s.io";
  fbuild(&t, "{\"includedNamespaces\":[\"team-blue\"]}", NULL);
  assert_false(backup_filter_all_namespaces(t.f));
  assert_true(backup_filter_namespace(t.f, "team-blue"));
  assert_false(backup_filter_namespace(t.f, "team-green"));
  assert_false(backup_filter_includes(t.f, "clusterroles.rbac.authorization.k8s.io"));
  assert_false(backup_filter_excludes(t.f, "clusterroles.rbac.authorization.k8s.io"));
  assert_true(backup_filter_includes(t.f, "namespaces"));
  assert_false(backup_filter_includes(t.f, crd));
  assert_false(backup_filter_excludes(t.f, crd));
  assert_true(backup_filter_includes(t.f, "pods"));
  ffree(&t);
  fbuild(&t, "{\"includeClusterResources\":false}", NULL);
  assert_false(backup_filter_includes(t.f, "persistentvolumes"));
  assert_true(backup_filter_excludes(t.f, "persistentvolumes"));
  assert_false(backup_filter_includes(t.f, "namespaces"));
  assert_true(backup_filter_excludes(t.f, crd));
  assert_true(backup_filter_includes(t.f, "secrets"));
  ffree(&t);
  fbuild(&t, "{\"includeClusterResources\":true,\"includedNamespaces\":[\"team-blue\"]}", NULL);
  assert_true(backup_filter_includes(t.f, "persistentvolumes"));
  assert_true(backup_filter_includes(t.f, crd));
  ffree(&t);
  /* a namespace labelled velero.io/exclude-from-backup=true joins the excludes, and then the
   * namespaces are no longer "everything": cluster-scoped types drop out, as in Velero */
  fbuild(&t, "{}", "[\"secret-ns\"]");
  assert_false(backup_filter_namespace(t.f, "secret-ns"));
  assert_true(backup_filter_namespace(t.f, "other"));
  assert_false(backup_filter_all_namespaces(t.f));
  assert_false(backup_filter_includes(t.f, "persistentvolumes"));
  ffree(&t);
}

/* Names as users write them resolve through discovery (short names, Kind, resource.group,
 * any case for the resource part); unresolvable names stay as patterns; core wins a name
 * two groups share (events). */
static void filter_resolve_names(void **state) {
  (void)state;
  struct ftest t;
  char gr[300];
  fbuild(&t, "{\"includedResources\":[\"deploy\",\"Secret\",\"cm\",\"nope.example.com\"]}", NULL);
  assert_int_equal(json_array_size(t.errors), 0);
  assert_true(backup_filter_includes(t.f, "deployments.apps"));
  assert_true(backup_filter_includes(t.f, "secrets"));
  assert_true(backup_filter_includes(t.f, "configmaps"));
  assert_false(backup_filter_includes(t.f, "pods"));
  assert_false(backup_filter_includes(t.f, "clusterroles.rbac.authorization.k8s.io"));
  static const struct {
    const char *in, *out;
  } r[] = {{"deploy", "deployments.apps"},
           {"Deployment", "deployments.apps"},
           {"deployments.apps", "deployments.apps"},
           {"DEPLOYMENTS", "deployments.apps"},
           {"crds", "customresourcedefinitions.apiextensions.k8s.io"},
           {"customresourcedefinitions.apiextensions.k8s.io", "customresourcedefinitions.apiextensions.k8s.io"},
           {"events", "events"},
           {"events.events.k8s.io", "events.events.k8s.io"},
           {"ns", "namespaces"},
           {"clusters.cluster.x-k8s.io", "clusters.cluster.x-k8s.io"},
           {"ClusterDeployment", "clusterdeployments.k0rdent.mirantis.com"}};
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
    if (!backup_filter_resolve(t.f, r[i].in, gr, sizeof gr)) fail_msg("%s not resolved", r[i].in);
    assert_string_equal(gr, r[i].out);
  }
  assert_false(backup_filter_resolve(t.f, "deployments.nope", gr, sizeof gr));
  assert_false(backup_filter_resolve(t.f, "", gr, sizeof gr));
  ffree(&t);
  /* glob patterns in the resource lists */
  fbuild(&t, "{\"excludedResources\":[\"*.k0rdent.mirantis.com\"]}", NULL);
  assert_false(backup_filter_includes(t.f, "clusterdeployments.k0rdent.mirantis.com"));
  assert_true(backup_filter_includes(t.f, "clusters.cluster.x-k8s.io"));
  ffree(&t);
}

/* Velero's validation messages: '*' with others, '*' excluded, an item both included and
 * excluded, old and new filters together, bad namespace names and patterns, wrong types. */
static void filter_validation(void **state) {
  (void)state;
  static const struct {
    const char *spec, *want;
  } t[] = {
      {"{\"includedResources\":[\"*\",\"pods\"]}", "includes list must either contain '*' only"},
      {"{\"includedResources\":[\"*\"],\"excludedResources\":[\"*\"]}", "excludes list cannot contain '*'"},
      {"{\"includedResources\":[\"foo\",\"bar\"],\"excludedResources\":[\"bar\"]}",
       "excludes list cannot contain an item in the includes list: bar"},
      {"{\"includedResources\":[\"pods\"],\"includedClusterScopedResources\":[\"persistentvolumes\"]}", "cannot be used together"},
      {"{\"includedClusterScopedResources\":[\"*\",\"foo\"]}", "Invalid cluster-scoped"},
      {"{\"excludedNamespaceScopedResources\":[\"*\",\"foo\"]}", "excludes list must either contain '*' only"},
      {"{\"includedNamespaceScopedResources\":[\"pods\"],\"excludedNamespaceScopedResources\":[\"*\"]}",
       "when exclude is '*', include cannot have value"},
      {"{\"includedNamespaces\":[\"-123foo\"]}", "invalid namespace"},
      {"{\"includedNamespaces\":[\"foo.bar\"]}", "invalid namespace"},
      {"{\"includedNamespaces\":[\"namespace|other\"]}", "unsupported characters"},
      {"{\"excludedNamespaces\":[\"test-(dev)\"]}", "unsupported characters"},
      {"{\"includedNamespaces\":[\"a**\"]}", "consecutive asterisks"},
      {"{\"includedNamespaces\":[\"ns-[\"]}", "unclosed bracket"},
      {"{\"includedNamespaces\":[\"*\",\"foo\"]}", "includes list must either contain '*' only"},
      {"{\"includedNamespaces\":[\"foo\"],\"excludedNamespaces\":[\"*\"]}", "excludes list cannot contain '*'"},
      {"{\"includedNamespaces\":\"kcm-system\"}", "spec.includedNamespaces must be a list of strings"},
      {"{\"excludedResources\":[1]}", "spec.excludedResources must be a list of strings"},
      {"{\"includeClusterResources\":\"yes\"}", "includeClusterResources"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    struct ftest f;
    fbuild(&f, t[i].spec, NULL);
    if (!has_error(f.errors, t[i].want)) {
      char *e = json_dumps(f.errors, 0);
      fail_msg("spec %s: expected an error with \"%s\", got %s", t[i].spec, t[i].want, e);
    }
    ffree(&f);
  }
  /* valid patterns Velero accepts */
  static const char *const good[] = {
      "{\"includedNamespaces\":[\"kube-*\",\"test-?\",\"ns-[0-9]\"],\"excludedNamespaces\":[\"*-test\"]}",
      "{\"includedNamespaces\":[\"\"]}",
      "{\"includedNamespaces\":[\"foobar\",\"bar-321\"],\"excludedNamespaces\":[\"123bar\"]}",
      "{\"includedClusterScopedResources\":[\"*\"],\"excludedNamespaceScopedResources\":[\"*\"]}",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    struct ftest f;
    fbuild(&f, good[i], NULL);
    if (json_array_size(f.errors)) fail_msg("spec %s refused: %s", good[i], json_string_value(json_array_get(f.errors, 0)));
    ffree(&f);
  }
}

/* The scoped filters (Velero's TestNamespaceScopedShouldInclude / TestClusterScopedShouldInclude
 * ideas): a cluster-scoped type is included only when named (or everything is included);
 * namespaces always, unless excluded; '*' excludes everything of that scope. */
static void filter_scoped(void **state) {
  (void)state;
  struct ftest t;
  fbuild(&t, "{\"includedClusterScopedResources\":[\"pv\"],\"excludedNamespaceScopedResources\":[\"secrets\"]}", NULL);
  assert_int_equal(json_array_size(t.errors), 0);
  assert_true(backup_filter_includes(t.f, "persistentvolumes"));
  assert_false(backup_filter_includes(t.f, "clusterroles.rbac.authorization.k8s.io"));
  assert_true(backup_filter_includes(t.f, "namespaces"));
  assert_false(backup_filter_includes(t.f, "secrets"));
  assert_true(backup_filter_excludes(t.f, "secrets"));
  assert_true(backup_filter_includes(t.f, "configmaps"));
  assert_false(backup_filter_excludes(t.f, "clusterroles.rbac.authorization.k8s.io"));
  ffree(&t);
  fbuild(&t, "{\"excludedClusterScopedResources\":[\"*\"]}", NULL);
  assert_false(backup_filter_includes(t.f, "namespaces"));
  assert_false(backup_filter_includes(t.f, "persistentvolumes"));
  assert_true(backup_filter_includes(t.f, "pods"));
  ffree(&t);
  fbuild(&t, "{\"includedClusterScopedResources\":[\"*spaces\"]}", NULL);
  assert_true(backup_filter_includes(t.f, "namespaces"));
  assert_false(backup_filter_includes(t.f, "persistentvolumes"));
  ffree(&t);
  /* the pattern "pv" resolves to a cluster-scoped type: put in the namespace-scoped list it is
   * dropped, as Velero's scoped mapping drops it */
  fbuild(&t, "{\"excludedNamespaceScopedResources\":[\"pv\"]}", NULL);
  assert_true(backup_filter_includes(t.f, "pods"));
  ffree(&t);
}

/* A spec without any resource filter: the full-cluster backup (cluster-scoped types in), with
 * VolumeSnapshotContents out (the automatic exclude). */
static void filter_no_filters(void **state) {
  (void)state;
  struct ftest t;
  fbuild(&t, "{}", NULL);
  assert_int_equal(json_array_size(t.errors), 0);
  assert_true(backup_filter_includes(t.f, "persistentvolumes"));
  assert_true(backup_filter_includes(t.f, "pods"));
  assert_false(backup_filter_includes(t.f, "volumesnapshotcontents.snapshot.storage.k8s.io"));
  ffree(&t);
}

/* When Velero adds the CRDs of the custom resources it backed up (backup_filter_adds_crds):
 * the cases of Velero's TestCRDInclusion and TestBackupResourceFiltering ("Resource's CRD
 * should be included" / "... not included, when CRD is excluded"), kcm's own spec, and the
 * careless readings this guards against: "CRDs are added whenever includeClusterResources is
 * unset" (Velero <= 1.10; wrong for kcm's all-namespace spec) and "a label selector changes
 * the rule" (it does not: only the resource and namespace filters decide). */
static void filter_crd_rule(void **state) {
  (void)state;
  static const struct {
    const char *spec, *extra_ns;
    bool adds;
  } t[] = {
      /* kcm: all namespaces, cluster resources auto -> CRDs included, listed through the selectors */
      {"{\"includedNamespaces\":[\"*\"],\"excludedResources\":[\"clusters.cluster.x-k8s.io\"],"
       "\"orLabelSelectors\":[{\"matchLabels\":{\"k0rdent.mirantis.com/component\":\"kcm\"}}]}",
       NULL, false},
      {"{\"includedNamespaces\":[\"*\"],\"labelSelector\":{\"matchLabels\":{\"a\":\"b\"}}}", NULL, false},
      {"{}", NULL, false},                                   /* auto, full cluster: every CRD is listed */
      {"{\"includeClusterResources\":true}", NULL, false},       /* true: listed */
      {"{\"includeClusterResources\":false}", NULL, false},      /* false: excluded */
      {"{\"includedNamespaces\":[\"team-blue\"]}", NULL, true}, /* auto, some namespaces: added */
      {"{\"includedNamespaces\":[\"team-blue\"],\"labelSelector\":{\"matchLabels\":{\"a\":\"b\"}}}", NULL, true},
      {"{\"includedNamespaces\":[\"team-blue\"],\"includeClusterResources\":true}", NULL, false},
      {"{\"includedNamespaces\":[\"team-blue\"],\"includeClusterResources\":false}", NULL, false},
      {"{\"includedNamespaces\":[\"team-blue\"],\"excludedResources\":[\"customresourcedefinitions.apiextensions.k8s.io\"]}",
       NULL, false},
      {"{\"includedNamespaces\":[\"team-blue\"],\"excludedResources\":[\"crds\"]}", NULL, false},
      {"{\"excludedNamespaces\":[\"kube-system\"]}", NULL, true}, /* namespaces not "everything" */
      {"{}", "[\"secret-ns\"]", true},                         /* ... also by a velero.io/exclude-from-backup namespace */
      /* named resources: with auto, a cluster-scoped type not in the list is excluded */
      {"{\"includedResources\":[\"clusterdeployments.k0rdent.mirantis.com\"]}", NULL, false},
      {"{\"includedNamespaces\":[\"team-blue\"],\"includedResources\":[\"clusterdeployments\"]}", NULL, false},
      {"{\"includedNamespaces\":[\"team-blue\"],\"includedResources\":[\"clusterdeployments\",\"crds\"]}", NULL, true},
      /* the scoped fields */
      {"{\"includedNamespaceScopedResources\":[\"clusterdeployments\"]}", NULL, true},
      {"{\"includedNamespaceScopedResources\":[\"*\"],\"includedClusterScopedResources\":[\"crds\"]}", NULL, false},
      {"{\"includedNamespaceScopedResources\":[\"clusterdeployments\"],"
       "\"excludedClusterScopedResources\":[\"customresourcedefinitions.apiextensions.k8s.io\"]}",
       NULL, false},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    struct ftest f;
    fbuild(&f, t[i].spec, t[i].extra_ns);
    if (json_array_size(f.errors)) fail_msg("spec %s refused: %s", t[i].spec, json_string_value(json_array_get(f.errors, 0)));
    if (backup_filter_adds_crds(f.f) != t[i].adds)
      fail_msg("spec %s (excluded namespaces %s): adds CRDs %d, Velero %d", t[i].spec, t[i].extra_ns ? t[i].extra_ns : "-",
               !t[i].adds, t[i].adds);
    ffree(&f);
  }
  /* no CRD type served at all: nothing to add (Velero: ResourceFor fails, ShouldExclude true) */
  json_t *disc = json_array(), *errors = json_array(), *spec = load("{\"includedNamespaces\":[\"team-blue\"]}");
  backup_filter *f = NULL;
  assert_int_equal(backup_filter_new(spec, disc, NULL, errors, &f), KD_OK);
  assert_false(backup_filter_adds_crds(f));
  backup_filter_free(f);
  json_decref(spec);
  json_decref(errors);
  json_decref(disc);
}

/* ---- metadata scan and type insertion ---- */

/* Names with escapes decode; NUL escapes and non-ASCII elsewhere are skipped over correctly
 * (braces inside strings do not end objects); deletionTimestamp null is not "being deleted";
 * hostile input (not an object, truncated, a NUL in the name, a too-long name) is refused. */
static void meta_scan(void **state) {
  (void)state;
  struct backup_meta m;
  const char *o = "{\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{\"x\":\"a\\u0000b}{\\\"\",\"y\":\"Gr\xc3\xbc\xc3\x9f"
                  "e \xe2\x9c\x93\"},\"name\":\"c\\u006dx\",\"namespace\":\"kcm-system\",\"labels\":{\"a\":\"1\"},"
                  "\"deletionTimestamp\":null},\"data\":{\"k\":[1,2,{\"z\":\"]\"}]}}";
  assert_int_equal(backup_meta_scan(o, strlen(o), &m), KD_OK);
  assert_string_equal(m.name, "cmx");
  assert_string_equal(m.ns, "kcm-system");
  assert_false(m.has_api_version);
  assert_true(m.has_kind);
  assert_false(m.deleting);
  assert_non_null(m.labels);
  assert_int_equal(m.labels_len, strlen("{\"a\":\"1\"}"));
  assert_memory_equal(m.labels, "{\"a\":\"1\"}", m.labels_len);
  const char *d = " {\"apiVersion\":\"v1\", \"metadata\" : {\"name\":\"n\",\"deletionTimestamp\":\"2025-01-01T00:00:00Z\"} } ";
  assert_int_equal(backup_meta_scan(d, strlen(d), &m), KD_OK);
  assert_true(m.deleting);
  assert_true(m.has_api_version);
  assert_string_equal(m.ns, "");
  assert_null(m.labels);
  assert_int_equal(backup_meta_scan("{}", 2, &m), KD_OK);
  assert_string_equal(m.name, "");
  static const char *const bad[] = {"[]", "", "{\"metadata\":{\"name\":\"x\"}", "{\"metadata\":{\"name\":\"x}}",
                                    "{\"a\" 1}", "{\"a\":}", "{\"metadata\":\"x\"}", "{\"a\":1,}", "\"str\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (backup_meta_scan(bad[i], strlen(bad[i]), &m) == KD_OK) fail_msg("accepted: %s", bad[i]);
  const char *nul = "{\"metadata\":{\"name\":\"a\\u0000b\"}}";
  assert_int_equal(backup_meta_scan(nul, strlen(nul), &m), KD_ERR_INVALID);
  const char *num = "{\"metadata\":{\"name\":5}}";
  assert_int_equal(backup_meta_scan(num, strlen(num), &m), KD_ERR_INVALID);
  char big[1200];
  int n = snprintf(big, sizeof big, "{\"metadata\":{\"name\":\"%0600d\"}}", 0);
  assert_int_equal(backup_meta_scan(big, (size_t)n, &m), KD_ERR_INVALID);
  /* deep nesting is refused, not recursed into */
  char deep[2200];
  size_t k = 0;
  k += (size_t)sprintf(deep, "{\"a\":");
  for (int i = 0; i < 600; i++) deep[k++] = '[';
  for (int i = 0; i < 600; i++) deep[k++] = ']';
  deep[k++] = '}';
  assert_int_equal(backup_meta_scan(deep, k, &m), KD_ERR_PARSE);
}

static void expect_typed(const char *in, bool av, bool kind, const char *want) {
  kd_buf out = KD_BUF_INIT(1 << 20);
  assert_int_equal(backup_add_type(in, strlen(in), "apps/v1", "Deployment", av, kind, &out), KD_OK);
  assert_int_equal(out.len, strlen(want));
  assert_memory_equal(out.data, want, out.len);
  kd_buf_free(&out);
}

/* apiVersion and kind go right after '{'; every other byte (NUL escapes, UTF-8, numbers as
 * written, spacing) is kept; an empty object gets no stray comma. */
static void add_type(void **state) {
  (void)state;
  expect_typed("{\"metadata\":{\"name\":\"a\\u0000b\"},\"n\":1.50e3,\"s\":\"\xc3\xbc\\u00fc\"}", true, true,
               "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"a\\u0000b\"},\"n\":1.50e3,"
               "\"s\":\"\xc3\xbc\\u00fc\"}");
  expect_typed("{}", true, true, "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}");
  expect_typed("{ }", true, false, "{\"apiVersion\":\"apps/v1\" }");
  expect_typed("{\"apiVersion\":\"x\",\"a\":1}", false, true, "{\"kind\":\"Deployment\",\"apiVersion\":\"x\",\"a\":1}");
  expect_typed("  {\"a\":1}", false, false, "  {\"a\":1}");
  kd_buf out = KD_BUF_INIT(1 << 20);
  assert_int_equal(backup_add_type("[1]", 3, "v1", "X", true, true, &out), KD_ERR_PARSE);
  assert_int_equal(backup_add_type("", 0, "v1", "X", true, true, &out), KD_ERR_PARSE);
  /* a hostile Kind from discovery is escaped, never breaks the JSON */
  assert_int_equal(backup_add_type("{}", 2, "v1", "a\"b\\c\n", false, true, &out), KD_OK);
  json_t *j = json_loadb(out.data, out.len, 0, NULL);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "a\"b\\c\n");
  json_decref(j);
  kd_buf_free(&out);
}

/* ---- files ---- */

static kd_rc to_buf(const void *p, size_t n, void *ud) { return kd_buf_add(ud, p, n); }

/* Types and entries come out sorted bytewise (Go's sort.Strings and map order), whatever
 * order they went in; cluster-scoped entries are bare names; strings are escaped. */
static void reslist_shape(void **state) {
  (void)state;
  backup_reslist *l = NULL;
  kd_buf out = KD_BUF_INIT(1 << 20);
  assert_int_equal(backup_reslist_new(&l), KD_OK);
  assert_int_equal(backup_reslist_add(l, "v1/Secret", "team-green", "s1"), KD_OK);
  assert_int_equal(backup_reslist_add(l, "apps/v1/Deployment", "kcm-system", "d"), KD_OK);
  assert_int_equal(backup_reslist_add(l, "v1/Secret", "kcm-system", "z"), KD_OK);
  assert_int_equal(backup_reslist_add(l, "v1/Secret", "a-b", "x"), KD_OK);
  assert_int_equal(backup_reslist_add(l, "v1/Namespace", NULL, "kcm-system"), KD_OK);
  assert_int_equal(backup_reslist_add(l, "v1/Secret", "a", "x\"q"), KD_OK);
  assert_int_equal(backup_reslist_count(l), 6);
  assert_int_equal(backup_reslist_write(l, to_buf, &out), KD_OK);
  assert_string_equal(out.data, "{\"apps/v1/Deployment\":[\"kcm-system/d\"],\"v1/Namespace\":[\"kcm-system\"],"
                                "\"v1/Secret\":[\"a-b/x\",\"a/x\\\"q\",\"kcm-system/z\",\"team-green/s1\"]}");
  kd_buf_free(&out);
  backup_reslist_free(l);
  /* empty */
  assert_int_equal(backup_reslist_new(&l), KD_OK);
  assert_int_equal(backup_reslist_write(l, to_buf, &out), KD_OK);
  assert_string_equal(out.data, "{}");
  kd_buf_free(&out);
  backup_reslist_free(l);
}

int test_backup(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(glob_velero_cases),  cmocka_unit_test(selector_match),       cmocka_unit_test(selector_invalid),
      cmocka_unit_test(selector_string),    cmocka_unit_test(filter_kcm_spec),      cmocka_unit_test(filter_cluster_resources),
      cmocka_unit_test(filter_resolve_names), cmocka_unit_test(filter_validation),  cmocka_unit_test(filter_scoped),
      cmocka_unit_test(filter_no_filters),  cmocka_unit_test(filter_crd_rule),      cmocka_unit_test(meta_scan),
      cmocka_unit_test(add_type),           cmocka_unit_test(reslist_shape),
  };
  return cmocka_run_group_tests_name("backup", tests, NULL, NULL);
}
