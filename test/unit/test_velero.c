/* test_velero.c — Velero's facts: GetValidName with Velero's own test vector (pkg/label), bucket
 * keys as object_store_layout.go builds them, the top-level folder check, the restore order of
 * getOrderedResources, the always-excluded list, phases and the ttl. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "velero.h"

/* Velero's pkg/label/label_test.go: a short value is kept; a long one is cut to 57 bytes plus the
 * first 6 hex digits of its SHA-256. Also exactly 63 and 64 bytes (the boundary), and a
 * multi-byte character cut in the middle as Go's byte slicing cuts it. */
static void label_value_velero_vector(void **state) {
  (void)state;
  char out[VELERO_LABEL_MAX + 1];
  velero_label_value("short label value", out);
  assert_string_equal(out, "short label value");
  velero_label_value("this_is_a_very_long_label_value_that_will_be_rejected_by_Kubernetes", out);
  assert_string_equal(out, "this_is_a_very_long_label_value_that_will_be_rejected_by_8d0722");
  char in[200];
  memset(in, 'a', 63);
  in[63] = '\0';
  velero_label_value(in, out);
  assert_string_equal(out, in);
  in[63] = 'a';
  in[64] = '\0';
  velero_label_value(in, out);
  assert_int_equal(strlen(out), 63);
  assert_memory_equal(out, in, 57);
  /* sha256("a" x 64) = ffe054fe... */
  assert_string_equal(out + 57, "ffe054");
  /* 56 ASCII bytes then "é" (2 bytes): byte 57 is the first half of é and stays */
  memset(in, 'b', 56);
  strcpy(in + 56, "\xc3\xa9zzzzzzzzzz");
  velero_label_value(in, out);
  assert_int_equal(strlen(out), 63);
  assert_int_equal((unsigned char)out[56], 0xc3);
  assert_true(out[57] != (char)0xa9);
  velero_label_value("", out);
  assert_string_equal(out, "");
}

/* Keys as Velero's ObjectStoreLayout builds them; hostile names (empty, ".", "..", with '/')
 * are refused so no key escapes the backup's folder; a short buffer is TOOBIG, not a cut key. */
static void bucket_keys(void **state) {
  (void)state;
  char k[256];
  static const struct {
    enum velero_backup_file f;
    const char *want;
  } b[] = {
      {VELERO_BACKUP_METADATA, "backups/kcm-20250117180012/velero-backup.json"},
      {VELERO_BACKUP_TARBALL, "backups/kcm-20250117180012/kcm-20250117180012.tar.gz"},
      {VELERO_BACKUP_LOGS, "backups/kcm-20250117180012/kcm-20250117180012-logs.gz"},
      {VELERO_BACKUP_RESOURCE_LIST, "backups/kcm-20250117180012/kcm-20250117180012-resource-list.json.gz"},
      {VELERO_BACKUP_RESULTS, "backups/kcm-20250117180012/kcm-20250117180012-results.gz"},
      {VELERO_BACKUP_CHECKSUMS, "backups/kcm-20250117180012/kcm-20250117180012-checksums.json"},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(b); i++) {
    assert_int_equal(velero_backup_key("kcm-20250117180012", b[i].f, k, sizeof k), KD_OK);
    assert_string_equal(k, b[i].want);
  }
  assert_int_equal(velero_restore_key("r1", VELERO_RESTORE_LOGS, k, sizeof k), KD_OK);
  assert_string_equal(k, "restores/r1/restore-r1-logs.gz");
  assert_int_equal(velero_restore_key("r1", VELERO_RESTORE_RESULTS, k, sizeof k), KD_OK);
  assert_string_equal(k, "restores/r1/restore-r1-results.gz");
  const char *bad[] = {"", ".", "..", "a/b", "../x", "/abs"};
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    assert_int_equal(velero_backup_key(bad[i], VELERO_BACKUP_TARBALL, k, sizeof k), KD_ERR_INVALID);
    assert_int_equal(velero_restore_key(bad[i], VELERO_RESTORE_LOGS, k, sizeof k), KD_ERR_INVALID);
  }
  assert_int_equal(velero_backup_key(NULL, VELERO_BACKUP_TARBALL, k, sizeof k), KD_ERR_INVALID);
  assert_int_equal(velero_backup_key("abc", VELERO_BACKUP_TARBALL, k, 22), KD_ERR_TOOBIG);
  assert_int_equal(velero_backup_key("abc", VELERO_BACKUP_TARBALL, k, 23), KD_OK); /* 22 chars + NUL */
  assert_int_equal(velero_backup_key("abc", (enum velero_backup_file)99, k, sizeof k), KD_ERR_INVALID);
}

/* Velero's isValidSubdir: exactly its six folders, nothing near them. */
static void toplevel_folders(void **state) {
  (void)state;
  const char *ok[] = {"backups", "restores", "restic", "metadata", "plugins", "kopia"};
  for (size_t i = 0; i < KD_ARRAY_LEN(ok); i++) assert_true(velero_toplevel_allowed(ok[i]));
  const char *no[] = {"", "backup", "Backups", "backups/", "other", "kcmdr"};
  for (size_t i = 0; i < KD_ARRAY_LEN(no); i++) assert_false(velero_toplevel_allowed(no[i]));
  assert_false(velero_toplevel_allowed(NULL));
}

/* getOrderedResources: high priorities in Velero's order (given either as Velero spells them or
 * as discovery resolves them, the tarball folder name), then everything else (one class, sorted
 * by name by the caller), then the low priorities in order. */
static void restore_order(void **state) {
  (void)state;
  int h = velero_restore_priority("some.other.group");
  assert_int_equal(h, 23);
  const char *order[] = {"customresourcedefinitions.apiextensions.k8s.io",
                         "namespaces",
                         "storageclasses.storage.k8s.io",
                         "volumesnapshotclasses.snapshot.storage.k8s.io",
                         "volumesnapshotcontents.snapshot.storage.k8s.io",
                         "volumesnapshots.snapshot.storage.k8s.io",
                         "datauploads.velero.io",
                         "persistentvolumes",
                         "persistentvolumeclaims",
                         "clusterroles.rbac.authorization.k8s.io",
                         "roles.rbac.authorization.k8s.io",
                         "serviceaccounts",
                         "clusterrolebindings.rbac.authorization.k8s.io",
                         "rolebindings.rbac.authorization.k8s.io",
                         "secrets",
                         "configmaps",
                         "limitranges",
                         "priorityclasses.scheduling.k8s.io",
                         "pods",
                         "replicasets.apps",
                         "clusterclasses.cluster.x-k8s.io",
                         "endpoints",
                         "services",
                         "managements.k0rdent.mirantis.com", /* any other */
                         "clusterbootstraps.run.tanzu.vmware.com",
                         "clusters.cluster.x-k8s.io",
                         "clusterresourcesets.addons.cluster.x-k8s.io",
                         "apps.kappctrl.k14s.io",
                         "packageinstalls.packaging.carvel.dev"};
  for (size_t i = 0; i < KD_ARRAY_LEN(order); i++) assert_int_equal(velero_restore_priority(order[i]), (int)i);
  /* Velero's own spellings */
  assert_int_equal(velero_restore_priority("customresourcedefinitions"), 0);
  assert_int_equal(velero_restore_priority("volumesnapshotclass.snapshot.storage.k8s.io"), 3);
  /* near misses are "any other": replicasets of another group, a CRD of another group */
  assert_int_equal(velero_restore_priority("replicasets.extensions"), h);
  assert_int_equal(velero_restore_priority("customresourcedefinitions.example.com"), h);
  assert_int_equal(velero_restore_priority("deployments.apps"), h);
  assert_int_equal(velero_restore_priority("clusterdeployments.k0rdent.mirantis.com"), h);
  assert_int_equal(velero_restore_priority(NULL), h);
}

/* restore_controller.go nonRestorableResources, in order, NULL-ended. */
static void always_excluded(void **state) {
  (void)state;
  const char *want[] = {"nodes",
                        "events",
                        "events.events.k8s.io",
                        "backups.velero.io",
                        "restores.velero.io",
                        "resticrepositories.velero.io",
                        "csinodes.storage.k8s.io",
                        "volumeattachments.storage.k8s.io",
                        "backuprepositories.velero.io"};
  size_t i = 0;
  for (; velero_restore_always_excluded[i]; i++) {
    assert_true(i < KD_ARRAY_LEN(want));
    assert_string_equal(velero_restore_always_excluded[i], want[i]);
  }
  assert_int_equal(i, KD_ARRAY_LEN(want));
}

static void phases_and_ttl(void **state) {
  (void)state;
  const char *term[] = {"Completed", "PartiallyFailed", "Failed", "FailedValidation"};
  for (size_t i = 0; i < KD_ARRAY_LEN(term); i++) assert_true(velero_phase_terminal(term[i]));
  const char *not[] = {"New", "InProgress", "Finalizing", "Deleting", "WaitingForPluginOperations", "", "completed"};
  for (size_t i = 0; i < KD_ARRAY_LEN(not); i++) assert_false(velero_phase_terminal(not[i]));
  assert_false(velero_phase_terminal(NULL));
  /* tried (issue 13, item 1): Velero 1.18's queue phases Queued and ReadyToStart; before, they
   * counted as neither running nor ended, so a schedule made a second Backup while one waited
   * in Velero's queue */
  const char *run[] = {"", "New", "Queued", "ReadyToStart", "InProgress", "WaitingForPluginOperations",
                       "WaitingForPluginOperationsPartiallyFailed", "Finalizing", "FinalizingPartiallyFailed"};
  for (size_t i = 0; i < KD_ARRAY_LEN(run); i++) {
    print_message("running: %s\n", run[i]);
    assert_true(velero_phase_running(run[i]));
    assert_false(velero_phase_terminal(run[i]));
  }
  assert_true(velero_phase_running(NULL));
  for (size_t i = 0; i < KD_ARRAY_LEN(term); i++) assert_false(velero_phase_running(term[i]));
  /* Deleting and anything unknown (or differently spelled) are neither */
  const char *neither[] = {"Deleting", "queued", "Queued ", "SomethingNew"};
  for (size_t i = 0; i < KD_ARRAY_LEN(neither); i++) {
    assert_false(velero_phase_running(neither[i]));
    assert_false(velero_phase_terminal(neither[i]));
  }
  /* not started: nothing written yet */
  assert_true(velero_phase_not_started(NULL));
  assert_true(velero_phase_not_started(""));
  assert_true(velero_phase_not_started("Queued"));
  assert_true(velero_phase_not_started("ReadyToStart"));
  assert_false(velero_phase_not_started("InProgress"));
  assert_false(velero_phase_not_started("Completed"));

  int64_t s;
  assert_int_equal(velero_parse_ttl("720h0m0s", &s), KD_OK);
  assert_int_equal(s, 720 * 3600);
  assert_int_equal(velero_parse_ttl("24h", &s), KD_OK);
  assert_int_equal(s, 86400);
  assert_int_equal(velero_parse_ttl("90m", &s), KD_OK);
  assert_int_equal(s, 5400);
  assert_int_equal(velero_parse_ttl("1h30m15.5s", &s), KD_OK);
  assert_int_equal(s, 5415);
  /* unset or zero: Velero's backup controller applies the 720h default */
  assert_int_equal(velero_parse_ttl(NULL, &s), KD_OK);
  assert_int_equal(s, 720 * 3600);
  assert_int_equal(velero_parse_ttl("", &s), KD_OK);
  assert_int_equal(s, 720 * 3600);
  assert_int_equal(velero_parse_ttl("0s", &s), KD_OK);
  assert_int_equal(s, 720 * 3600);
  /* careless input */
  const char *bad[] = {"720", "1d", "h", "1h 30m", "abc", "-"};
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    assert_int_equal(velero_parse_ttl(bad[i], &s), KD_ERR_INVALID);
    assert_non_null(strstr(kd_errmsg(), "ttl"));
  }
}

int test_velero(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(label_value_velero_vector), cmocka_unit_test(bucket_keys),
      cmocka_unit_test(toplevel_folders),          cmocka_unit_test(restore_order),
      cmocka_unit_test(always_excluded),           cmocka_unit_test(phases_and_ttl),
  };
  return cmocka_run_group_tests_name("velero", tests, NULL, NULL);
}
