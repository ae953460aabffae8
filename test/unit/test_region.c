/* test_region.c — kcm regions, the pure part (mgmtbackup.h): regions in use, selectors per
 * region, regional names and objects, and mb_plan_region's decisions: create with the
 * management slot, catch up on a slot made here, never for a slot synced in from a bucket,
 * an error stays in its entry, a deleted regional Backup is not made again, the rebuild after a
 * restore, and a running regional Backup holding the next management slot. Also region.c's
 * pass (budget, stop flag, client cap, against local listeners) and what a kubeconfig from a
 * Secret may not read. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kube.h"
#include "kubeconfig.h"
#include "mgmtbackup.h"
#include "region.h"
#include "tests.h"
#include "velero.h"

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

static json_t *rcd(const char *name, const char *region) {
  json_t *o = json_pack("{s:{s:s,s:s},s:{s:s},s:{}}", "metadata", "name", name, "namespace", "ns", "spec", "template", "t",
                        "status");
  if (region) json_object_set_new(json_object_get(o, "status"), "region", json_string(region));
  return o;
}

static const char *nm(json_t *o) { return json_string_value(json_object_get(json_object_get(o, "metadata"), "name")); }

static bool selects(json_t *sels, const char *k, const char *v) {
  size_t i;
  json_t *s;
  json_array_foreach(sels, i, s) if (kd_streq(json_string_value(json_object_get(json_object_get(s, "matchLabels"), k)), v)) return true;
  return false;
}

/* tried: ClusterDeployments in two regions, one without, one with a region no label can hold,
 * one whose region is 64 characters long.
 * asserted: regions sorted and distinct, the bad ones included (each gets an entry), and
 * mb_region_unusable refuses them (not east) with a message saying where their clusters go;
 * the management selectors leave the regional clusters out but keep those of the unusable
 * regions (backed up somewhere, never nowhere); a region's select only its own. */
static void regions_and_selectors(void **state) {
  (void)state;
  char long_region[65], msg[600];
  memset(long_region, 'r', 64);
  long_region[64] = '\0';
  json_t *cds = json_pack("[o,o,o,o,o,o]", rcd("m1", NULL), rcd("e1", "east"), rcd("w1", "west"), rcd("e2", "east"),
                          rcd("bad", "East_1!"), rcd("long", long_region));
  json_t *cts = json_array();
  json_t *rs = mb_regions_in_use(cds);
  assert_int_equal(json_array_size(rs), 4);
  assert_string_equal(json_string_value(json_array_get(rs, 0)), "East_1!");
  assert_string_equal(json_string_value(json_array_get(rs, 1)), "east");
  assert_string_equal(json_string_value(json_array_get(rs, 2)), long_region);
  assert_string_equal(json_string_value(json_array_get(rs, 3)), "west");
  assert_false(mb_region_unusable("east", msg, sizeof msg));
  assert_true(mb_region_unusable("East_1!", msg, sizeof msg));
  assert_non_null(strstr(msg, "backed up with the management cluster"));
  assert_true(mb_region_unusable(long_region, msg, sizeof msg));
  json_t *m = mb_selectors_for(cds, cts, NULL, false, NULL), *e = mb_selectors_for(cds, cts, "east", false, NULL);
  assert_true(selects(m, "cluster.x-k8s.io/cluster-name", "bad"));  /* nowhere else to go */
  assert_true(selects(m, "cluster.x-k8s.io/cluster-name", "long"));
  assert_true(selects(m, "cluster.x-k8s.io/cluster-name", "m1"));
  assert_false(selects(m, "cluster.x-k8s.io/cluster-name", "e1"));
  assert_false(selects(m, "cluster.x-k8s.io/cluster-name", "w1"));
  assert_true(selects(e, "cluster.x-k8s.io/cluster-name", "e1") && selects(e, "cluster.x-k8s.io/cluster-name", "e2"));
  assert_false(selects(e, "cluster.x-k8s.io/cluster-name", "m1") || selects(e, "cluster.x-k8s.io/cluster-name", "w1"));
  assert_true(selects(e, MB_LABEL_COMPONENT, MB_LABEL_COMPONENT_VALUE)); /* the fixed ones stay */
  json_decref(m);
  json_decref(e);
  json_decref(rs);
  json_decref(cds);
  json_decref(cts);
}

/* tried: names for a short and a very long ManagementBackup; the object. asserted: kcm's
 * "<mb>-<region>-<stamp>" and "<mb>-<region>", the stamp kept under the 253 bound, the region
 * label and the management-backup label on the object. */
static void names_and_object(void **state) {
  (void)state;
  char out[MB_NAME_MAX + 1], big[300];
  mb_region_backup_name("kcm", "east", true, NOW, out);
  assert_string_equal(out, "kcm-east-20260101000000");
  mb_region_backup_name("kcm", "east", false, 0, out);
  assert_string_equal(out, "kcm-east");
  memset(big, 'a', 250);
  big[250] = '\0';
  mb_region_backup_name(big, "east", true, NOW, out);
  assert_true(strlen(out) <= MB_NAME_MAX);
  assert_string_equal(out + strlen(out) - 15, "-20260101000000");
  json_t *sel = json_array(), *o = mb_region_backup_object("kcm-east", "kcm-system", "kcm", "east", "default", sel);
  json_t *labels = json_object_get(json_object_get(o, "metadata"), "labels");
  assert_string_equal(json_string_value(json_object_get(labels, MB_LABEL_REGION)), "east");
  assert_string_equal(json_string_value(json_object_get(labels, MB_LABEL_BACKUP)), "kcm");
  json_decref(o);
  json_decref(sel);
}

static json_t *bk(const char *name, const char *mb, const char *region, const char *phase, bool synced) {
  json_t *o = json_pack("{s:{s:s,s:{s:s}},s:{}}", "metadata", "name", name, "labels", MB_LABEL_BACKUP, mb, "status");
  if (region) json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"), MB_LABEL_REGION, json_string(region));
  if (phase) json_object_set_new(json_object_get(o, "status"), "phase", json_string(phase));
  if (synced) json_object_set_new(json_object_get(o, "metadata"), "annotations", json_pack("{s:s}", VELERO_SYNCED_ANNOTATION, "default"));
  return o;
}

static json_t *sched_mb(json_t *regions, json_t *labels) {
  json_t *o = json_pack("{s:{s:s,s:s},s:{s:s},s:{s:s,s:s}}", "metadata", "name", "kcm", "creationTimestamp",
                        "2025-12-01T00:00:00Z", "spec", "schedule", "@every 1h", "status", "lastBackupName",
                        "kcm-20251231230000", "lastBackupTime", "2025-12-31T23:00:00Z");
  if (regions) json_object_set_new(json_object_get(o, "status"), "regions", regions);
  if (labels) json_object_set_new(json_object_get(o, "metadata"), "labels", labels);
  return o;
}

/* tried: the management plan makes slot kcm-20260101000000 now, the region lists nothing.
 * asserted: the region's Backup of that slot is created, the entry names it, nextAttempt is
 * the top level's, a poll is asked. Then: the region unreachable at that slot (error) -> the
 * entry keeps its error and nothing is created; reachable again with the management Backup
 * made here (listed, not synced) -> it catches up on the slot; synced in from a bucket -> no
 * Backup of that name is made; a deleted regional Backup named by the entry is not made again. */
static void plan_region_schedule(void **state) {
  (void)state;
  json_t *mb = sched_mb(NULL, NULL);
  json_t *st = json_pack("{s:s,s:s,s:s}", "lastBackupName", "kcm-20260101000000", "lastBackupTime", "2026-01-01T00:00:00Z",
                         "nextAttempt", "2026-01-01T01:00:00Z");
  json_t *none = json_array(), *mgmt = json_array();
  struct mb_region_input in = {mb, st, "east", NULL, none, mgmt, true, NOW, NULL, NULL};
  struct mb_region_plan p;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_true(p.create);
  assert_string_equal(p.create_name, "kcm-east-20260101000000");
  assert_string_equal(json_string_value(json_object_get(p.entry, "lastBackupName")), "kcm-east-20260101000000");
  assert_string_equal(json_string_value(json_object_get(p.entry, "region")), "east");
  assert_string_equal(json_string_value(json_object_get(p.entry, "nextAttempt")), "2026-01-01T01:00:00Z");
  assert_true(p.requeue_s > 0);
  mb_region_plan_free(&p);

  /* unreachable: the error is this entry's, nothing is created */
  in.error = "region east: listing Backups: connection refused";
  in.backups = NULL;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_string_equal(json_string_value(json_object_get(p.entry, "error")), in.error);
  mb_region_plan_free(&p);

  /* back, a reconcile later: the slot was made here -> catch up */
  in.error = NULL;
  in.backups = none;
  in.mgmt_created = false;
  json_array_append_new(mgmt, bk("kcm-20260101000000", "kcm", NULL, "InProgress", false));
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_true(p.create);
  assert_null(json_object_get(p.entry, "error"));
  mb_region_plan_free(&p);

  /* the same slot synced in from the location (after a restore): never made again here */
  json_array_clear(mgmt);
  json_array_append_new(mgmt, bk("kcm-20260101000000", "kcm", NULL, "Completed", true));
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  mb_region_plan_free(&p);

  /* the entry already names the slot's Backup and the region no longer lists it: deleted, not remade */
  json_array_clear(mgmt);
  json_array_append_new(mgmt, bk("kcm-20260101000000", "kcm", NULL, "InProgress", false));
  json_decref(mb);
  mb = sched_mb(json_pack("[{s:s,s:s,s:s}]", "region", "east", "lastBackupName", "kcm-east-20260101000000", "lastBackupTime",
                          "2026-01-01T00:00:00Z"), NULL);
  in.mb = mb;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  mb_region_plan_free(&p);

  /* listed and finished: mirrored into the entry */
  json_t *listed = json_pack("[o]", bk("kcm-east-20260101000000", "kcm", "east", "Completed", false));
  in.backups = listed;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_string_equal(json_string_value(json_object_get(json_object_get(p.entry, "lastBackup"), "phase")), "Completed");
  mb_region_plan_free(&p);

  /* a Backup of that name that is not ours: an error in the entry, no create */
  json_decref(listed);
  listed = json_pack("[o]", bk("kcm-east-20260101000000", "someone", "east", "Completed", false));
  json_decref(mb);
  mb = sched_mb(NULL, NULL);
  in.mb = mb;
  in.backups = listed;
  in.mgmt_created = true;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_non_null(strstr(json_string_value(json_object_get(p.entry, "error")), "was not made for this ManagementBackup"));
  mb_region_plan_free(&p);
  json_decref(listed);
  json_decref(mb);
  json_decref(st);
  json_decref(none);
  json_decref(mgmt);
}

/* tried: an on-demand ManagementBackup whose management Backup is created now; then one
 * restored (velero labels) whose region lists its Backups; then the same object after the
 * restore labels were dropped while its region erred (its entry: an error, no lastBackupName),
 * the region answering now, the top level's slot synced in. asserted: "<mb>-<region>" is
 * created; the restored entry is rebuilt from the region's newest scheduled Backup not in the
 * future, and nothing is created; the erred entry is rebuilt from the region's list too
 * (lastBackupName and lastBackup), its error gone, nothing created. */
static void plan_region_on_demand_and_restored(void **state) {
  (void)state;
  json_t *mb = json_pack("{s:{s:s},s:{},s:{s:s}}", "metadata", "name", "once", "spec", "status", "lastBackupName", "once");
  json_t *st = json_pack("{s:s}", "lastBackupName", "once"), *none = json_array(), *mgmt = json_array();
  struct mb_region_input in = {mb, st, "west", NULL, none, mgmt, true, NOW, NULL, NULL};
  struct mb_region_plan p;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_true(p.create);
  assert_string_equal(p.create_name, "once-west");
  assert_null(json_object_get(p.entry, "nextAttempt"));
  mb_region_plan_free(&p);
  json_decref(mb);

  mb = sched_mb(NULL, json_pack("{s:s,s:s}", VELERO_LABEL_RESTORE, "r1", VELERO_LABEL_BACKUP, "kcm-20251231230000"));
  json_t *listed = json_pack("[o,o,o]", bk("kcm-west-20251231220000", "kcm", "west", "Completed", true),
                             bk("kcm-west-20251231230000", "kcm", "west", "Completed", true),
                             bk("kcm-west-29990101000000", "kcm", "west", "Completed", true));
  in.mb = mb;
  in.backups = listed;
  in.mgmt_created = false;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_string_equal(json_string_value(json_object_get(p.entry, "lastBackupName")), "kcm-west-20251231230000");
  mb_region_plan_free(&p);
  /* the region erred on the reconcile that rebuilt the top level, and the restore labels are
   * gone since: once it answers, its entry is rebuilt from its list all the same, and the slot
   * synced in (no regional Backup of it) is not made */
  json_decref(mb);
  mb = sched_mb(json_pack("[{s:s,s:s}]", "region", "west", "error", "region west: listing Backups: refused"), NULL);
  json_array_append_new(mgmt, bk("kcm-20251231230000", "kcm", NULL, "Completed", true));
  json_decref(listed);
  listed = json_pack("[o]", bk("kcm-west-20251231220000", "kcm", "west", "Completed", true));
  json_object_set_new(st, "lastBackupName", json_string("kcm-20251231230000"));
  in.mb = mb;
  in.backups = listed;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_null(json_object_get(p.entry, "error"));
  assert_string_equal(json_string_value(json_object_get(p.entry, "lastBackupName")), "kcm-west-20251231220000");
  assert_string_equal(json_string_value(json_object_get(json_object_get(p.entry, "lastBackup"), "phase")), "Completed");
  mb_region_plan_free(&p);
  json_decref(listed);
  listed = json_pack("[o,o,o]", bk("kcm-west-20251231220000", "kcm", "west", "Completed", true),
                     bk("kcm-west-20251231230000", "kcm", "west", "Completed", true),
                     bk("kcm-west-29990101000000", "kcm", "west", "Completed", true));
  /* the restore command's pick: only finished ones, by name's time */
  json_t *b = mb_pick_region_backup("kcm", "west", true, true, listed, NOW);
  assert_string_equal(nm(b), "kcm-west-20251231230000");
  assert_null(mb_pick_region_backup("kcm", "east", true, true, listed, NOW));
  json_decref(listed);
  json_decref(mb);
  json_decref(st);
  json_decref(none);
  json_decref(mgmt);
}

/* tried: a regional Backup of the schedule still runs when the next slot is due; then one still
 * New, created 10 s ago and (no engine in its region) 301 s ago. asserted: mb_region_running
 * sees the running one and the young New one, and the management plan then creates nothing and
 * waits; the old New one no longer holds the schedule (the plan creates the slot's Backup) and
 * the region's entry says why nothing runs there, naming the Backup. */
static void plan_waits_for_a_running_region(void **state) {
  (void)state;
  json_t *rb = json_pack("[o]", bk("kcm-east-20251231230000", "kcm", "east", "InProgress", false));
  assert_true(mb_region_running("kcm", rb, NOW));
  assert_false(mb_region_running("other", rb, NOW));
  json_t *nb = json_pack("[o]", bk("kcm-east-20251231230000", "kcm", "east", "New", false));
  json_object_set_new(json_object_get(json_array_get(nb, 0), "metadata"), "creationTimestamp",
                      json_string("2025-12-31T23:59:50Z"));
  assert_true(mb_region_running("kcm", nb, NOW)); /* New for 10 s: it may yet start */
  json_object_set_new(json_object_get(json_array_get(nb, 0), "metadata"), "creationTimestamp",
                      json_string("2025-12-31T23:54:59Z"));
  assert_false(mb_region_running("kcm", nb, NOW)); /* 301 s: no engine there, the schedule goes on */
  {
    json_t *smb = sched_mb(NULL, NULL), *sst = json_pack("{s:s}", "lastBackupName", "kcm-20260101000000"), *mg = json_array();
    struct mb_region_input ri = {smb, sst, "east", NULL, nb, mg, true, NOW, NULL, NULL};
    struct mb_region_plan rp;
    assert_int_equal(mb_plan_region(&ri, &rp), KD_OK);
    const char *err = json_string_value(json_object_get(rp.entry, "error"));
    assert_non_null(err);
    assert_non_null(strstr(err, "Backup kcm-east-20251231230000 has been New in region east for more than 5 minutes"));
    assert_true(rp.create); /* the new slot's regional Backup is made all the same */
    mb_region_plan_free(&rp);
    json_decref(smb);
    json_decref(sst);
    json_decref(mg);
  }
  json_decref(nb);
  json_t *mb = sched_mb(NULL, NULL), *backups = json_array();
  struct mb_input in = {mb, backups, NULL, 0, NOW, 0, 0, true, NULL};
  struct mb_plan p;
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_false(p.create);
  assert_true(p.waiting);
  mb_plan_free(&p);
  in.regions_running = false;
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_true(p.create);
  mb_plan_free(&p);
  json_t *st = json_object(), *e = json_pack("{s:s,s:s}", "region", "east", "error", "x");
  assert_int_equal(mb_status_set_region(st, e), KD_OK);
  json_object_set_new(e, "error", json_string("y"));
  assert_int_equal(mb_status_set_region(st, e), KD_OK);
  assert_int_equal(json_array_size(json_object_get(st, "regions")), 1);
  json_decref(e);
  json_decref(st);
  json_decref(mb);
  json_decref(backups);
  json_decref(rb);
}

/* tried: a kubeconfig as a Region's Secret holds it, whose cluster names a local file
 * (certificate-authority: /etc/hostname), then one whose user names client-certificate and
 * client-key files, loaded with kubecfg_load_inline as region.c loads it; the first also with
 * kubecfg_load_texts. asserted: inline, both are refused (KD_ERR_CONFIG) with a message naming the key and
 * the "-data" form to use instead, and nothing is read; without it the file is read (so the
 * refusal is the option's doing), and the "-data" forms are still accepted. */
static void secret_kubeconfig_reads_no_files(void **state) {
  (void)state;
  const char *ca = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
                   "    server: https://127.0.0.1:6443\n    certificate-authority: /etc/hostname\n"
                   "contexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user: {token: t}\n";
  const char *cert = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
                     "    server: https://127.0.0.1:6443\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                     "users:\n- name: u\n  user: {client-certificate: /etc/hostname, client-key: /etc/hostname}\n";
  const char *data = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
                     "    server: https://127.0.0.1:6443\n    certificate-authority-data: aGVsbG8K\n"
                     "contexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user: {token: t}\n";
  const char *where = "Secret kcm-system/east-kubeconfig key value";
  struct kubecfg *c = NULL;
  assert_int_equal(kubecfg_load_inline(ca, where, &c), KD_ERR_CONFIG);
  assert_null(c);
  assert_non_null(strstr(kd_errmsg(), "key certificate-authority names a file (/etc/hostname)"));
  assert_non_null(strstr(kd_errmsg(), "use certificate-authority-data"));
  assert_int_equal(kubecfg_load_inline(cert, where, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "key client-certificate names a file"));
  assert_int_equal(kubecfg_load_inline(data, where, &c), KD_OK);
  assert_int_equal(c->ca_pem_len, 6);
  kubecfg_free(c);
  c = NULL;
  const char *texts[1] = {ca}, *names[1] = {where}, *dirs[1] = {"/"};
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  assert_non_null(c->ca_pem); /* read from the file: what a Secret's writer must not get */
  kubecfg_free(c);
}

/* tried: on-demand ManagementBackup "daily" (its management Backup made now) with region east
 * next to a ManagementBackup named "daily-east"; then next to "other" only; region
 * "20250101000000"; then "daily" region "x-y" next to ManagementBackup "daily-x" whose region
 * "y" is in use too. asserted: each clash is refused with an error in the entry naming the
 * other object, and nothing is created; with no clash the Backup daily-east is created. */
static void plan_region_refuses_shared_names(void **state) {
  (void)state;
  json_t *mb = json_pack("{s:{s:s},s:{},s:{s:s}}", "metadata", "name", "daily", "spec", "status", "lastBackupName", "daily");
  json_t *st = json_pack("{s:s}", "lastBackupName", "daily"), *none = json_array(), *mgmt = json_array();
  json_t *names = json_pack("[s,s]", "daily", "daily-east"), *regions = json_pack("[s]", "east");
  struct mb_region_input in = {mb, st, "east", NULL, none, mgmt, true, NOW, names, regions};
  struct mb_region_plan p;
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_non_null(strstr(json_string_value(json_object_get(p.entry, "error")), "ManagementBackup daily-east exists"));
  mb_region_plan_free(&p);

  json_array_set_new(names, 1, json_string("other"));
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_true(p.create);
  assert_string_equal(p.create_name, "daily-east");
  assert_null(json_object_get(p.entry, "error"));
  mb_region_plan_free(&p);

  in.region = "20250101000000";
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_non_null(strstr(json_string_value(json_object_get(p.entry, "error")), "named like a timestamp"));
  mb_region_plan_free(&p);

  json_array_set_new(names, 1, json_string("daily-x"));
  json_array_append_new(regions, json_string("x-y"));
  json_array_append_new(regions, json_string("y"));
  in.region = "x-y";
  assert_int_equal(mb_plan_region(&in, &p), KD_OK);
  assert_false(p.create);
  assert_non_null(strstr(json_string_value(json_object_get(p.entry, "error")), "region y of ManagementBackup daily-x"));
  mb_region_plan_free(&p);
  json_decref(mb);
  json_decref(st);
  json_decref(none);
  json_decref(mgmt);
  json_decref(names);
  json_decref(regions);
}

/* a listening socket on 127.0.0.1 that never accepts (blackhole: connects, then silence), or
 * with closed, a port nothing listens on (refused at once); *port gets its port */
static int listener(bool closed, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  socklen_t len = sizeof a;
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  if (closed) {
    close(fd);
    return -1;
  }
  assert_int_equal(listen(fd, 1), 0);
  return fd;
}

/* a management client for https://127.0.0.1:port with a request timeout of timeout_ms, no retries */
static kube_client *client_at(int port, long timeout_ms) {
  char text[600];
  snprintf(text, sizeof text, "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
           "    server: https://127.0.0.1:%d\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n"
           "  context: {cluster: k, user: u}\nusers:\n- name: u\n  user: {token: t}\n", port);
  const char *texts[1] = {text}, *names[1] = {"test"}, *dirs[1] = {"/"};
  struct kubecfg *cfg = NULL;
  kube_client *c = NULL;
  struct kube_client_opts o = {0, 0, -1, timeout_ms, "test"};
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &cfg), KD_OK);
  assert_int_equal(kube_client_new(cfg, &o, &c), KD_OK);
  return c;
}

/* tried: one pass over regions whose Region GETs go to a blackhole listener on 127.0.0.1 (each
 * call hangs until its 300 ms timeout), with a pass budget of 500 ms; then a pass with the stop
 * flag set; then, against a port that refuses at once, one pass over 65 regions, and a new pass.
 * asserted: the first two regions are tried (each an error after its timeout), the third is not
 * contacted (KD_ERR_CANCELLED at once, "not looked at in this pass"); with stop set, nothing is
 * contacted; in one pass the 65th region is refused (KD_ERR_TOOBIG, "more than 64 regions")
 * and no client of that pass is dropped for it; the next pass may reuse the oldest slot. */
static void region_pass_budget_stop_and_cap(void **state) {
  (void)state;
  int port, fd = listener(false, &port);
  kube_client *mgmt = client_at(port, 300);
  region_clients *r = NULL;
  char msg[REGION_MSG_MAX];
  json_t *out = NULL;
  assert_int_equal(region_clients_new(mgmt, "kcm-system", &r), KD_OK);
  region_pass_begin(r, 500, NULL);
  int64_t t0 = kd_now_ms();
  assert_int_not_equal(region_list_backups(r, "r1", "kcm", &out, msg, sizeof msg), KD_OK);
  assert_int_not_equal(region_list_backups(r, "r2", "kcm", &out, msg, sizeof msg), KD_OK);
  assert_true(kd_now_ms() - t0 >= 500); /* both were tried: two timeouts */
  int64_t t1 = kd_now_ms();
  assert_int_equal(region_list_backups(r, "r3", "kcm", &out, msg, sizeof msg), KD_ERR_CANCELLED);
  assert_true(kd_now_ms() - t1 < 100);
  assert_non_null(strstr(msg, "region r3: not looked at in this pass"));
  volatile int stop = 1;
  region_pass_begin(r, -1, &stop);
  t1 = kd_now_ms();
  assert_int_equal(region_list_backups(r, "r1", "kcm", &out, msg, sizeof msg), KD_ERR_CANCELLED);
  assert_true(kd_now_ms() - t1 < 100);
  assert_non_null(strstr(msg, "stopping"));
  region_clients_free(r);
  kube_client_free(mgmt);
  close(fd);

  listener(true, &port);
  mgmt = client_at(port, 2000);
  assert_int_equal(region_clients_new(mgmt, "kcm-system", &r), KD_OK);
  region_pass_begin(r, -1, NULL);
  char name[16];
  for (int i = 0; i < REGION_CACHE_MAX; i++) {
    snprintf(name, sizeof name, "r%d", i);
    kd_rc rc = region_list_backups(r, name, "kcm", &out, msg, sizeof msg);
    assert_true(rc != KD_OK && rc != KD_ERR_TOOBIG && rc != KD_ERR_CANCELLED); /* refused: tried */
  }
  assert_int_equal(region_list_backups(r, "r64", "kcm", &out, msg, sizeof msg), KD_ERR_TOOBIG);
  assert_non_null(strstr(msg, "more than 64 regions in use: region r64 is not backed up"));
  assert_int_not_equal(region_list_backups(r, "r0", "kcm", &out, msg, sizeof msg), KD_ERR_TOOBIG); /* still there */
  region_pass_begin(r, -1, NULL);
  assert_int_not_equal(region_list_backups(r, "r64", "kcm", &out, msg, sizeof msg), KD_ERR_TOOBIG);
  region_clients_free(r);
  kube_client_free(mgmt);
}

int test_region(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(regions_and_selectors),
      cmocka_unit_test(names_and_object),
      cmocka_unit_test(plan_region_schedule),
      cmocka_unit_test(plan_region_on_demand_and_restored),
      cmocka_unit_test(plan_waits_for_a_running_region),
      cmocka_unit_test(secret_kubeconfig_reads_no_files),
      cmocka_unit_test(plan_region_refuses_shared_names),
      cmocka_unit_test(region_pass_budget_stop_and_cap),
  };
  return cmocka_run_group_tests_name("region", tests, NULL, NULL);
}
