/* test_restore.c — the pure parts of restore.c against Velero's own rules (pkg/restore/restore.go
 * resetMetadataAndStatus, isCompleted; pkg/restore/actions service_action.go, pod_action.go,
 * job_action.go, apiservice_action.go; merge_service_account.go), fed what careless users and
 * hostile backups hold: wrong types where objects are expected, NUL bytes, missing fields. */
#include <string.h>

#include "restore.h"
#include "tests.h"

static json_t *js(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, JSON_ALLOW_NUL, &e);
  if (!j) fail_msg("bad test JSON: %s", e.text);
  return j;
}

static void assert_json(json_t *got, const char *want_text) {
  json_t *want = js(want_text);
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    fail_msg("got %s\nwant %s", g, want_text);
  }
  json_decref(want);
}

static void strip_what_velero_strips(void **state) {
  (void)state;
  json_t *o = js("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"namespace\":\"n\","
                 "\"generateName\":\"a-\",\"selfLink\":\"/x\",\"uid\":\"u\",\"resourceVersion\":\"9\",\"generation\":3,"
                 "\"creationTimestamp\":\"t\",\"deletionTimestamp\":\"t\",\"deletionGracePeriodSeconds\":30,"
                 "\"ownerReferences\":[{}],\"managedFields\":[{}],\"labels\":{\"a\":\"b\\u0000c\"},\"annotations\":{\"x\":\"y\"},"
                 "\"finalizers\":[\"f\"]},\"data\":{\"k\":\"v\"},\"status\":{\"phase\":\"x\"}}");
  restore_strip(o);
  assert_json(o, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"namespace\":\"n\","
                 "\"labels\":{\"a\":\"b\\u0000c\"},\"annotations\":{\"x\":\"y\"},\"finalizers\":[\"f\"]},\"data\":{\"k\":\"v\"}}");
  json_decref(o);
  /* tried: metadata that is not an object, no metadata at all: nothing breaks */
  o = js("{\"metadata\":\"oops\",\"status\":1}");
  restore_strip(o);
  assert_json(o, "{\"metadata\":\"oops\"}");
  json_decref(o);
}

static void service_action(void **state) {
  (void)state;
  json_t *o = js("{\"metadata\":{\"name\":\"s\"},\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.0.0.5\","
                 "\"clusterIPs\":[\"10.0.0.5\"],\"healthCheckNodePort\":31000,"
                 "\"ports\":[{\"name\":\"http\",\"port\":80,\"nodePort\":30080},{\"port\":81,\"nodePort\":30081}]}}");
  restore_builtin_actions(o, "services", false, NULL);
  assert_json(o, "{\"metadata\":{\"name\":\"s\"},\"spec\":{\"type\":\"NodePort\","
                 "\"ports\":[{\"name\":\"http\",\"port\":80},{\"port\":81}]}}");
  json_decref(o);
  /* headless keeps clusterIP None; preserveNodePorts keeps them */
  o = js("{\"spec\":{\"clusterIP\":\"None\",\"ports\":[{\"port\":80,\"nodePort\":30080}]}}");
  restore_builtin_actions(o, "services", true, NULL);
  assert_json(o, "{\"spec\":{\"clusterIP\":\"None\",\"ports\":[{\"port\":80,\"nodePort\":30080}]}}");
  json_decref(o);
  /* a nodePort the last applied configuration sets explicitly stays (by name, or by value when unnamed) */
  o = js("{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":"
         "\"{\\\"spec\\\":{\\\"ports\\\":[{\\\"name\\\":\\\"http\\\",\\\"nodePort\\\":30080},{\\\"nodePort\\\":\\\"30081\\\"}]}}\"}},"
         "\"spec\":{\"ports\":[{\"name\":\"http\",\"nodePort\":30080},{\"nodePort\":30081},{\"nodePort\":30082}]}}");
  restore_builtin_actions(o, "services", false, NULL);
  json_t *ports = json_object_get(json_object_get(o, "spec"), "ports");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(ports, 0), "nodePort")), 30080);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(ports, 1), "nodePort")), 30081);
  assert_null(json_object_get(json_array_get(ports, 2), "nodePort"));
  json_decref(o);
  /* a server-side apply (Flux) owns a node port and the health-check node port: managedFields
   * keep them (the strip runs after the actions); the other port's auto-assigned one goes */
  o = js("{\"metadata\":{\"managedFields\":[{\"manager\":\"kubectl\",\"fieldsV1\":{\"f:spec\":{\"f:ports\":{"
         "\"k:{\\\"port\\\":443,\\\"protocol\\\":\\\"TCP\\\"}\":{\"f:nodePort\":{}},"
         "\"k:{\\\"port\\\":80,\\\"protocol\\\":\\\"TCP\\\"}\":{\"f:port\":{}}},\"f:healthCheckNodePort\":{}}}},"
         "{\"manager\":\"x\",\"fieldsV1\":\"not an object\"}]},"
         "\"spec\":{\"type\":\"LoadBalancer\",\"healthCheckNodePort\":32000,\"ports\":["
         "{\"port\":443,\"protocol\":\"TCP\",\"nodePort\":30443},{\"port\":80,\"protocol\":\"TCP\",\"nodePort\":30080},"
         "{\"port\":443,\"protocol\":\"UDP\",\"nodePort\":30444}]}}");
  restore_builtin_actions(o, "services", false, NULL);
  ports = json_object_get(json_object_get(o, "spec"), "ports");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(ports, 0), "nodePort")), 30443);
  assert_null(json_object_get(json_array_get(ports, 1), "nodePort"));
  assert_null(json_object_get(json_array_get(ports, 2), "nodePort"));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "spec"), "healthCheckNodePort")), 32000);
  json_decref(o);
  /* kubectl apply set the health-check node port: it stays; nobody set it: it goes */
  o = js("{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":"
         "\"{\\\"spec\\\":{\\\"healthCheckNodePort\\\":32001}}\"}},\"spec\":{\"healthCheckNodePort\":32001}}");
  restore_builtin_actions(o, "services", false, NULL);
  assert_json(o, "{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":"
                 "\"{\\\"spec\\\":{\\\"healthCheckNodePort\\\":32001}}\"}},\"spec\":{\"healthCheckNodePort\":32001}}");
  json_decref(o);
  /* tried: a last-applied annotation that is not JSON, ports that are not a list */
  o = js("{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{not json\"}},"
         "\"spec\":{\"ports\":\"80\"}}");
  restore_builtin_actions(o, "services", false, NULL);
  json_decref(o);
}

static void pod_and_job_actions(void **state) {
  (void)state;
  json_t *o = js("{\"spec\":{\"nodeName\":\"n1\",\"priority\":5,\"serviceAccountName\":\"sa\","
                 "\"volumes\":[{\"name\":\"sa-token-abc\"},{\"name\":\"data\"}],"
                 "\"containers\":[{\"volumeMounts\":[{\"name\":\"sa-token-abc\"},{\"name\":\"data\"}]}],"
                 "\"initContainers\":[{\"volumeMounts\":[{\"name\":\"sa-token-abc\"}]}]}}");
  restore_builtin_actions(o, "pods", false, NULL);
  assert_json(o, "{\"spec\":{\"serviceAccountName\":\"sa\",\"volumes\":[{\"name\":\"data\"}],"
                 "\"containers\":[{\"volumeMounts\":[{\"name\":\"data\"}]}],\"initContainers\":[{\"volumeMounts\":[]}]}}");
  json_decref(o);
  o = js("{\"spec\":{\"selector\":{\"matchLabels\":{\"controller-uid\":\"u\",\"batch.kubernetes.io/controller-uid\":\"u\",\"app\":\"a\"}},"
         "\"template\":{\"metadata\":{\"labels\":{\"controller-uid\":\"u\",\"app\":\"a\"}}}}}");
  restore_builtin_actions(o, "jobs.batch", false, NULL);
  assert_json(o, "{\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"a\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"a\"}}}}}");
  json_decref(o);
  /* tried: a spec that is not an object, a volume without a name */
  o = js("{\"spec\":[1]}");
  restore_builtin_actions(o, "pods", false, NULL);
  json_decref(o);
  o = js("{\"spec\":{\"volumes\":[{}, 3]}}");
  restore_builtin_actions(o, "pods", false, NULL);
  json_decref(o);
}

/* Velero's secret, service-account and (cluster)rolebinding actions: a token Secret loses the
 * old cluster's token, CA and uid (an Opaque Secret with the same keys keeps them); a
 * ServiceAccount drops only its last <sa>-token-* reference (a look-alike "<sa>-tokens" stays);
 * binding subjects follow namespaceMapping, others (unmapped, no namespace, a namespace that is
 * not a string) stay as they were. */
static void secrets_serviceaccounts_bindings(void **state) {
  (void)state;
  json_t *map = js("{\"src\":\"dst\"}");
  json_t *o = js("{\"type\":\"kubernetes.io/service-account-token\",\"metadata\":{\"name\":\"sa-token-x\",\"annotations\":{"
                 "\"kubernetes.io/service-account.uid\":\"u1\",\"kubernetes.io/service-account.name\":\"sa\"}},"
                 "\"data\":{\"token\":\"dA==\",\"ca.crt\":\"Yw==\",\"namespace\":\"bg==\"}}");
  restore_builtin_actions(o, "secrets", false, map);
  assert_json(o, "{\"type\":\"kubernetes.io/service-account-token\",\"metadata\":{\"name\":\"sa-token-x\",\"annotations\":{"
                 "\"kubernetes.io/service-account.name\":\"sa\"}},\"data\":{\"namespace\":\"bg==\"}}");
  json_decref(o);
  const char *opaque = "{\"type\":\"Opaque\",\"metadata\":{\"name\":\"s\",\"annotations\":{\"kubernetes.io/service-account.uid\":\"u\"}},"
                       "\"data\":{\"token\":\"dA==\",\"ca.crt\":\"Yw==\"}}";
  o = js(opaque);
  restore_builtin_actions(o, "secrets", false, map);
  assert_json(o, opaque);
  json_decref(o);
  o = js("{\"metadata\":{\"name\":\"sa\"},\"secrets\":[{\"name\":\"sa-token-a\"},{\"name\":\"keep\"},{\"name\":\"sa-token-b\"},"
         "{\"name\":\"sa-tokens\"},{\"name\":1}]}");
  restore_builtin_actions(o, "serviceaccounts", false, map);
  assert_json(o, "{\"metadata\":{\"name\":\"sa\"},\"secrets\":[{\"name\":\"sa-token-a\"},{\"name\":\"keep\"},"
                 "{\"name\":\"sa-tokens\"},{\"name\":1}]}");
  json_decref(o);
  const char *gr[] = {"rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io"};
  for (int k = 0; k < 2; k++) {
    o = js("{\"subjects\":[{\"kind\":\"ServiceAccount\",\"name\":\"a\",\"namespace\":\"src\"},"
           "{\"kind\":\"ServiceAccount\",\"name\":\"b\",\"namespace\":\"other\"},{\"kind\":\"User\",\"name\":\"u\"},"
           "{\"kind\":\"Group\",\"name\":\"g\",\"namespace\":7}]}");
    restore_builtin_actions(o, gr[k], false, map);
    assert_json(o, "{\"subjects\":[{\"kind\":\"ServiceAccount\",\"name\":\"a\",\"namespace\":\"dst\"},"
                   "{\"kind\":\"ServiceAccount\",\"name\":\"b\",\"namespace\":\"other\"},{\"kind\":\"User\",\"name\":\"u\"},"
                   "{\"kind\":\"Group\",\"name\":\"g\",\"namespace\":7}]}");
    restore_builtin_actions(o, gr[k], false, NULL); /* no mapping: unchanged */
    json_decref(o);
  }
  json_decref(map);
}

static void skipped_kinds(void **state) {
  (void)state;
  const char *why = NULL;
  struct {
    const char *gr, *obj;
    bool skip;
  } cases[] = {
      {"pods", "{\"status\":{\"phase\":\"Succeeded\"}}", true},
      {"pods", "{\"status\":{\"phase\":\"Failed\"}}", true},
      {"pods", "{\"status\":{\"phase\":\"Running\"}}", false},
      {"pods", "{\"metadata\":{\"annotations\":{\"kubernetes.io/config.mirror\":\"x\"}}}", true},
      {"jobs.batch", "{\"status\":{\"completionTime\":\"2025-01-01T00:00:00Z\"}}", true},
      {"jobs.batch", "{\"status\":{\"completionTime\":\"\"}}", false},
      {"apiservices.apiregistration.k8s.io", "{\"metadata\":{\"labels\":{\"kube-aggregator.kubernetes.io/automanaged\":\"true\"}}}", true},
      {"apiservices.apiregistration.k8s.io", "{\"metadata\":{}}", false},
      {"configmaps", "{\"status\":{\"phase\":\"Succeeded\"}}", false},
      {"pods", "{\"status\":\"Succeeded\"}", false}, /* tried: a status that is not an object */
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
    json_t *o = js(cases[i].obj);
    if (restore_skipped_kind(o, cases[i].gr, &why) != cases[i].skip) fail_msg("case %zu (%s %s)", i, cases[i].gr, cases[i].obj);
    json_decref(o);
  }
}

static void service_accounts_merged(void **state) {
  (void)state;
  json_t *cur = js("{\"metadata\":{\"name\":\"sa\",\"labels\":{\"a\":\"cluster\"}},\"secrets\":[{\"name\":\"t1\"}]}");
  json_t *bk = js("{\"metadata\":{\"name\":\"sa\",\"labels\":{\"a\":\"backup\",\"b\":\"backup\"},\"annotations\":{\"x\":\"y\"}},"
                  "\"secrets\":[{\"name\":\"t1\"},{\"name\":\"t2\"}],\"imagePullSecrets\":[{\"name\":\"pull\"}]}");
  json_t *m = restore_merge_service_accounts(cur, bk);
  assert_json(m, "{\"metadata\":{\"name\":\"sa\",\"labels\":{\"a\":\"cluster\",\"b\":\"backup\"},\"annotations\":{\"x\":\"y\"}},"
                 "\"secrets\":[{\"name\":\"t1\"},{\"name\":\"t2\"}],\"imagePullSecrets\":[{\"name\":\"pull\"}]}");
  /* the cluster's copy is never changed */
  assert_json(cur, "{\"metadata\":{\"name\":\"sa\",\"labels\":{\"a\":\"cluster\"}},\"secrets\":[{\"name\":\"t1\"}]}");
  json_decref(m);
  json_decref(cur);
  json_decref(bk);
}

int test_restore(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(strip_what_velero_strips), cmocka_unit_test(service_action),
      cmocka_unit_test(pod_and_job_actions),      cmocka_unit_test(secrets_serviceaccounts_bindings), cmocka_unit_test(skipped_kinds),
      cmocka_unit_test(service_accounts_merged),
  };
  return cmocka_run_group_tests_name("restore", tests, NULL, NULL);
}
