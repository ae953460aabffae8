/* test_mgmtbackup.c — kcm's rules: selectors for 0, 1 and 200 ClusterDeployments against kcm's
 * expected lists, both selector forms, the Backup object, names and their bounds, phases, and
 * which Backup a restored status is rebuilt from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmtbackup.h"
#include "tests.h"

static json_t *cd(const char *ns, const char *name, const char *tmpl) {
  return json_pack("{s:{s:s,s:s},s:{s:s}}", "metadata", "name", name, "namespace", ns, "spec", "template", tmpl);
}

static json_t *ct(const char *ns, const char *name, json_t *providers) {
  return json_pack("{s:{s:s,s:s},s:{s:o}}", "metadata", "name", name, "namespace", ns, "status", "providers", providers);
}

/* the selectors as "key=value" lines, in order */
static char *flat(json_t *sels) {
  kd_buf b = KD_BUF_INIT(1 << 20);
  size_t i;
  json_t *s;
  json_array_foreach(sels, i, s) {
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "matchLabels"), k, v) kd_buf_addf(&b, "%s=%s\n", k, json_string_value(v));
  }
  return kd_buf_steal(&b);
}

static void selectors_no_cluster_deployments(void **state) {
  (void)state;
  json_t *cds = json_array(), *cts = json_array();
  json_t *s = mb_selectors(cds, cts, false);
  char *got = flat(s);
  assert_string_equal(got, "cluster.x-k8s.io/provider=cluster-api\n"
                           "controller.cert-manager.io/fao=true\n"
                           "k0rdent.mirantis.com/component=kcm\n");
  free(got);
  json_decref(s);
  json_decref(cds);
  json_decref(cts);
}

static void selectors_one_cluster_deployment(void **state) {
  (void)state;
  json_t *cds = json_pack("[o]", cd("kcm-system", "cluster-deployment-name", "aws-standalone-cp-0-1-0"));
  json_t *cts = json_pack("[o,o]",
                          ct("kcm-system", "aws-standalone-cp-0-1-0",
                             json_pack("[s,s,s]", "infrastructure-aws", "control-plane-k0sproject-k0smotron",
                                       "bootstrap-k0sproject-k0smotron")),
                          /* same name in another namespace: not the CD's template */
                          ct("other", "aws-standalone-cp-0-1-0", json_pack("[s]", "infrastructure-openstack")));
  json_t *s = mb_selectors(cds, cts, false);
  char *got = flat(s);
  /* the seed's example list, in kcm's key_value order */
  assert_string_equal(got, "cluster.x-k8s.io/cluster-name=cluster-deployment-name\n"
                           "cluster.x-k8s.io/provider=bootstrap-k0sproject-k0smotron\n"
                           "cluster.x-k8s.io/provider=cluster-api\n"
                           "cluster.x-k8s.io/provider=control-plane-k0sproject-k0smotron\n"
                           "cluster.x-k8s.io/provider=infrastructure-aws\n"
                           "controller.cert-manager.io/fao=true\n"
                           "helm.toolkit.fluxcd.io/name=cluster-deployment-name\n"
                           "k0rdent.mirantis.com/component=kcm\n");
  free(got);
  json_decref(s);
  /* compact: one In selector per key, values sorted */
  s = mb_selectors(cds, cts, true);
  char *dump = json_dumps(s, JSON_COMPACT);
  assert_string_equal(dump,
                      "[{\"matchExpressions\":[{\"key\":\"cluster.x-k8s.io/cluster-name\",\"operator\":\"In\",\"values\":[\"cluster-deployment-name\"]}]},"
                      "{\"matchExpressions\":[{\"key\":\"cluster.x-k8s.io/provider\",\"operator\":\"In\",\"values\":[\"bootstrap-k0sproject-k0smotron\",\"cluster-api\",\"control-plane-k0sproject-k0smotron\",\"infrastructure-aws\"]}]},"
                      "{\"matchExpressions\":[{\"key\":\"controller.cert-manager.io/fao\",\"operator\":\"In\",\"values\":[\"true\"]}]},"
                      "{\"matchExpressions\":[{\"key\":\"helm.toolkit.fluxcd.io/name\",\"operator\":\"In\",\"values\":[\"cluster-deployment-name\"]}]},"
                      "{\"matchExpressions\":[{\"key\":\"k0rdent.mirantis.com/component\",\"operator\":\"In\",\"values\":[\"kcm\"]}]}]");
  free(dump);
  json_decref(s);
  json_decref(cds);
  json_decref(cts);
}

static void selectors_200_cluster_deployments(void **state) {
  (void)state;
  json_t *cds = json_array();
  json_t *cts = json_pack("[o,o]", ct("ns-a", "t1", json_pack("[s,s]", "infrastructure-aws", "cluster-api")),
                          ct("ns-b", "t2", json_pack("[s]", "infrastructure-azure")));
  for (int i = 0; i < 200; i++) {
    char name[32];
    snprintf(name, sizeof name, "cd-%03d", 199 - i); /* given in reverse order */
    json_array_append_new(cds, cd(i % 2 ? "ns-a" : "ns-b", name, i % 2 ? "t1" : "t2"));
  }
  json_array_append_new(cds, cd("ns-a", "cd-000", "t1")); /* a duplicate name in another namespace */
  json_t *s = mb_selectors(cds, cts, false);
  /* 3 fixed + 2 per distinct name + 2 providers (cluster-api counted once) */
  assert_int_equal(json_array_size(s), 3 + 400 + 2);
  char *got = flat(s);
  /* sorted by key_value, no duplicates */
  char *save = NULL, *prev = NULL;
  for (char *line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (prev) {
      char a[300], b[300];
      snprintf(a, sizeof a, "%s", prev);
      snprintf(b, sizeof b, "%s", line);
      *strchr(a, '=') = '_';
      *strchr(b, '=') = '_';
      assert_true(strcmp(a, b) < 0);
    }
    prev = line;
  }
  free(got);
  /* the compact form holds exactly the same key=value pairs */
  json_t *c = mb_selectors(cds, cts, true);
  assert_int_equal(json_array_size(c), 5);
  size_t pairs = 0, i;
  json_t *sel;
  json_array_foreach(c, i, sel) pairs += json_array_size(json_object_get(json_array_get(json_object_get(sel, "matchExpressions"), 0), "values"));
  assert_int_equal(pairs, json_array_size(s));
  json_decref(c);
  json_decref(s);
  json_decref(cds);
  json_decref(cts);
}

static void backup_object(void **state) {
  (void)state;
  json_t *sel = json_pack("[{s:{s:s}}]", "matchLabels", "a", "b");
  json_t *b = mb_backup_object("kcm-20250117180012", "kcm-system", "kcm", "aws-s3", sel);
  char *dump = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
  assert_string_equal(dump, "{\"apiVersion\":\"velero.io/v1\",\"kind\":\"Backup\",\"metadata\":{\"labels\":{"
                            "\"k0rdent.mirantis.com/management-backup\":\"kcm\"},\"name\":\"kcm-20250117180012\","
                            "\"namespace\":\"kcm-system\"},\"spec\":{\"excludedResources\":[\"clusters.cluster.x-k8s.io\"],"
                            "\"includedNamespaces\":[\"*\"],\"orLabelSelectors\":[{\"matchLabels\":{\"a\":\"b\"}}],"
                            "\"storageLocation\":\"aws-s3\",\"ttl\":\"720h0m0s\"}}");
  free(dump);
  json_decref(b);
  json_decref(sel);
}

static void names_and_bounds(void **state) {
  (void)state;
  char out[MB_NAME_MAX + 1];
  mb_scheduled_name("kcm", 1737136812, out);
  assert_string_equal(out, "kcm-20250117180012"); /* the seed's name */
  time_t t;
  assert_true(mb_parse_scheduled_name("kcm", "kcm-20250117180012", &t));
  assert_int_equal(t, 1737136812);
  /* tried: other names that look alike */
  assert_false(mb_parse_scheduled_name("kcm", "kcm-2025011718001", &t));
  assert_false(mb_parse_scheduled_name("kcm", "kcm-x0250117180012", &t));
  assert_false(mb_parse_scheduled_name("kcm", "kcmx20250117180012", &t));
  assert_false(mb_parse_scheduled_name("kcm", "other-20250117180012", &t));
  assert_false(mb_parse_scheduled_name("kcm", "kcm-20251317180012", &t));
  /* bounds: short names unchanged; long ones cut with 8 hex of their SHA-256, deterministic */
  char lbl[MB_LABEL_MAX + 1], lbl2[MB_LABEL_MAX + 1];
  mb_bounded("kcm-1-0-0", MB_LABEL_MAX, lbl);
  assert_string_equal(lbl, "kcm-1-0-0");
  char longname[300];
  memset(longname, 'a', 299);
  longname[299] = '\0';
  mb_bounded(longname, MB_LABEL_MAX, lbl);
  assert_int_equal(strlen(lbl), MB_LABEL_MAX);
  assert_int_equal(lbl[MB_LABEL_MAX - 9], '-');
  mb_bounded(longname, MB_LABEL_MAX, lbl2);
  assert_string_equal(lbl, lbl2);
  longname[298] = 'b'; /* a different long name gets a different suffix */
  mb_bounded(longname, MB_LABEL_MAX, lbl2);
  assert_string_not_equal(lbl, lbl2);
  mb_scheduled_name(longname, 1737136812, out);
  assert_int_equal(strlen(out), MB_NAME_MAX);
  char exact[MB_NAME_MAX + 1];
  memset(exact, 'c', MB_NAME_MAX);
  exact[MB_NAME_MAX] = '\0';
  mb_bounded(exact, MB_NAME_MAX, out);
  assert_string_equal(out, exact); /* exactly at the limit: unchanged */
}

static void phases(void **state) {
  (void)state;
  assert_true(mb_phase_running(NULL));
  assert_true(mb_phase_running(""));
  assert_true(mb_phase_running("New"));
  assert_true(mb_phase_running("InProgress"));
  assert_false(mb_phase_running("Completed"));
  const char *terminal[] = {"Completed", "PartiallyFailed", "Failed", "FailedValidation"};
  for (int i = 0; i < 4; i++) assert_true(mb_phase_terminal(terminal[i]));
  assert_false(mb_phase_terminal("InProgress"));
  assert_false(mb_phase_terminal("Finalizing"));
  assert_false(mb_phase_terminal(NULL));
}

static void restored_pick(void **state) {
  (void)state;
  json_t *bs = json_pack("[{s:{s:s,s:{s:s}}},{s:{s:s,s:{s:s}}},{s:{s:s,s:{s:s}}},{s:{s:s,s:{s:s}}},{s:{s:s}}]",
                         "metadata", "name", "kcm-20250117120000", "labels", MB_LABEL_BACKUP, "kcm",
                         "metadata", "name", "kcm-20250117180012", "labels", MB_LABEL_BACKUP, "kcm",
                         "metadata", "name", "kcm-29990101000000", "labels", MB_LABEL_BACKUP, "kcm",
                         "metadata", "name", "kcm-20250118000000", "labels", MB_LABEL_BACKUP, "someone-else",
                         "metadata", "name", "kcm");
  time_t now = 1893456000; /* 2030-01-01 */
  json_t *b = mb_pick_restored("kcm", true, bs, now);
  assert_non_null(b);
  assert_string_equal(json_string_value(json_object_get(json_object_get(b, "metadata"), "name")), "kcm-20250117180012");
  b = mb_pick_restored("kcm", false, bs, now);
  assert_string_equal(json_string_value(json_object_get(json_object_get(b, "metadata"), "name")), "kcm");
  assert_null(mb_pick_restored("nothing", true, bs, now));
  json_decref(bs);
}

int test_mgmtbackup(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(selectors_no_cluster_deployments), cmocka_unit_test(selectors_one_cluster_deployment),
      cmocka_unit_test(selectors_200_cluster_deployments), cmocka_unit_test(backup_object),
      cmocka_unit_test(names_and_bounds),                 cmocka_unit_test(phases),
      cmocka_unit_test(restored_pick),
  };
  return cmocka_run_group_tests_name("mgmtbackup", tests, NULL, NULL);
}
