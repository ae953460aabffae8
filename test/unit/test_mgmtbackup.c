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


/* A label selector evaluator for the tests (Kubernetes semantics for matchLabels and the In
 * operator): does any selector of sels select obj? */
static bool selectors_match(json_t *sels, json_t *obj) {
  json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
  size_t i;
  json_t *sel;
  json_array_foreach(sels, i, sel) {
    bool all = true;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(sel, "matchLabels"), k, v) {
      if (!kd_streq(json_string_value(json_object_get(labels, k)), json_string_value(v))) all = false;
    }
    size_t j, m;
    json_t *e, *val;
    json_array_foreach(json_object_get(sel, "matchExpressions"), j, e) {
      assert_string_equal(json_string_value(json_object_get(e, "operator")), "In");
      const char *have = json_string_value(json_object_get(labels, json_string_value(json_object_get(e, "key"))));
      bool in = false;
      json_array_foreach(json_object_get(e, "values"), m, val) in = in || (have && kd_streq(have, json_string_value(val)));
      all = all && in;
    }
    if (all) return true;
  }
  return false;
}

static void selectors_no_cluster_deployments(void **state) {
  (void)state;
  json_t *cds = json_array(), *cts = json_array();
  json_t *s = mb_selectors(cds, cts, false, NULL);
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
  json_t *s = mb_selectors(cds, cts, false, NULL);
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
  s = mb_selectors(cds, cts, true, NULL);
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
  json_t *s = mb_selectors(cds, cts, false, NULL);
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
  json_t *c = mb_selectors(cds, cts, true, NULL);
  assert_int_equal(json_array_size(c), 5);
  /* both forms select exactly the same objects: objects carrying every selected pair, pairs
   * no selector names, other keys, and several labels at once */
  json_t *objs = json_array();
  const char *keys[] = {"helm.toolkit.fluxcd.io/name", "cluster.x-k8s.io/cluster-name", "cluster.x-k8s.io/provider",
                        "k0rdent.mirantis.com/component", "controller.cert-manager.io/fao", "app"};
  const char *vals[] = {"cd-000", "cd-001", "cd-199", "cd-200", "kcm", "true", "false", "infrastructure-aws",
                        "infrastructure-azure", "infrastructure-gcp", "cluster-api", "x"};
  for (size_t k = 0; k < KD_ARRAY_LEN(keys); k++)
    for (size_t v = 0; v < KD_ARRAY_LEN(vals); v++)
      json_array_append_new(objs, json_pack("{s:{s:{s:s}}}", "metadata", "labels", keys[k], vals[v]));
  json_array_append_new(objs, json_pack("{s:{s:{s:s,s:s}}}", "metadata", "labels", "app", "x", "cluster.x-k8s.io/provider", "cluster-api"));
  json_array_append_new(objs, json_pack("{s:{}}", "metadata"));
  size_t i, selected = 0;
  json_t *o;
  json_array_foreach(objs, i, o) {
    bool a = selectors_match(s, o), b = selectors_match(c, o);
    assert_int_equal(a, b);
    selected += a;
  }
  /* cd-000, cd-001, cd-199 under both name keys; aws, azure, cluster-api providers; kcm; fao=true;
   * and the object with two labels: 3 + 3 + 3 + 1 + 1 + 1 */
  assert_int_equal(selected, 12);
  json_decref(objs);
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
  /* tried: names of 239+ characters used to lose their timestamp to the hash; now the
   * ManagementBackup's part is cut and the timestamp kept, so restarts and restores parse it */
  for (size_t len = 230; len <= 253; len++) {
    char mbname[MB_NAME_MAX + 1];
    memset(mbname, 'm', len);
    mbname[len] = '\0';
    mb_scheduled_name(mbname, 1737136812, out);
    assert_true(strlen(out) <= MB_NAME_MAX);
    assert_string_equal(out + strlen(out) - 15, "-20250117180012");
    assert_true(mb_parse_scheduled_name(mbname, out, &t));
    assert_int_equal(t, 1737136812);
    mbname[0] = 'n'; /* another long name does not claim it */
    assert_false(mb_parse_scheduled_name(mbname, out, &t));
  }
  char exact[MB_NAME_MAX + 1];
  memset(exact, 'c', MB_NAME_MAX);
  exact[MB_NAME_MAX] = '\0';
  mb_bounded(exact, MB_NAME_MAX, out);
  assert_string_equal(out, exact); /* exactly at the limit: unchanged */
  /* review: a cut that would end in '.' or '-' before the hash ("a.-1234abcd") is no valid
   * name: what is kept ends with a letter or digit */
  char dotted[MB_NAME_MAX + 20];
  memset(dotted, 'd', sizeof dotted - 1);
  dotted[sizeof dotted - 1] = '\0';
  dotted[MB_NAME_MAX - 10] = '.';
  dotted[MB_NAME_MAX - 11] = '-';
  mb_bounded(dotted, MB_NAME_MAX, out);
  assert_null(strstr(out, ".-"));
  assert_null(strstr(out, "--"));
  assert_true(strlen(out) <= MB_NAME_MAX);
}

static void restored_pick(void **state) {
  (void)state;
  json_t *bs = json_pack("[{s:{s:s,s:{s:s}}},{s:{s:s,s:{s:s}}},{s:{s:s,s:{s:s}}},{s:{s:s,s:{s:s}}},{s:{s:s,s:{s:s}}}]",
                         "metadata", "name", "kcm-20250117120000", "labels", MB_LABEL_BACKUP, "kcm",
                         "metadata", "name", "kcm-20250117180012", "labels", MB_LABEL_BACKUP, "kcm",
                         "metadata", "name", "kcm-29990101000000", "labels", MB_LABEL_BACKUP, "kcm",
                         "metadata", "name", "kcm-20250118000000", "labels", MB_LABEL_BACKUP, "someone-else",
                         "metadata", "name", "kcm", "labels", MB_LABEL_BACKUP, "kcm");
  time_t now = 1893456000; /* 2030-01-01 */
  json_t *b = mb_pick_restored("kcm", true, bs, now);
  assert_non_null(b);
  assert_string_equal(json_string_value(json_object_get(json_object_get(b, "metadata"), "name")), "kcm-20250117180012");
  b = mb_pick_restored("kcm", false, bs, now);
  assert_string_equal(json_string_value(json_object_get(json_object_get(b, "metadata"), "name")), "kcm");
  assert_null(mb_pick_restored("nothing", true, bs, now));
  json_decref(bs);
}


/* ---- the reconcile plan: what one reconcile decides from the object, its Backups and now ---- */

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

static json_t *mb_obj(const char *name, const char *schedule, const char *created, json_t *status, json_t *labels) {
  json_t *o = json_pack("{s:{s:s,s:s},s:{}}", "metadata", "name", name, "creationTimestamp", created, "spec");
  if (schedule) json_object_set_new(json_object_get(o, "spec"), "schedule", json_string(schedule));
  if (status) json_object_set_new(o, "status", status);
  if (labels) json_object_set_new(json_object_get(o, "metadata"), "labels", labels);
  return o;
}

static json_t *backup(const char *name, const char *owner, const char *phase, const char *created) {
  json_t *b = json_pack("{s:{s:s,s:s,s:{}}}", "metadata", "name", name, "creationTimestamp", created, "labels");
  if (owner) json_object_set_new(json_object_get(json_object_get(b, "metadata"), "labels"), MB_LABEL_BACKUP, json_string(owner));
  if (phase) json_object_set_new(b, "status", json_pack("{s:s}", "phase", phase));
  return b;
}

static const char *st_str(struct mb_plan *p, const char *k) { return json_string_value(json_object_get(p->status, k)); }

static void plan(json_t *mb, json_t *backups, const char *pending, time_t pending_time, struct mb_plan *p) {
  struct mb_input in = {mb, backups, pending, pending_time, NOW, 0, NOW - 1, false, NULL};
  assert_int_equal(mb_plan_reconcile(&in, p), KD_OK);
}

static void plan_schedule_goes_on_after_latest_backup_deleted(void **state) {
  (void)state;
  /* tried (issue 7, item 1): @every 15s made sched-<ts>, it completed and was deleted. The old
   * controller kept "what we created" forever and counted it as New: the schedule stalled. */
  json_t *mb = mb_obj("sched", "@every 15s", "2025-12-31T23:00:00Z",
                      json_pack("{s:s,s:s}", "lastBackupName", "sched-20251231235940", "lastBackupTime", "2025-12-31T23:59:40Z"), NULL);
  json_t *none = json_array();
  struct mb_plan p;
  plan(mb, none, "sched-20251231235940", NOW - 20, &p); /* remembered, but older than the cache lag */
  assert_true(p.create);
  assert_string_equal(p.create_name, "sched-20260101000000");
  assert_string_equal(st_str(&p, "lastBackupName"), "sched-20260101000000");
  assert_string_equal(st_str(&p, "nextAttempt"), "2026-01-01T00:00:15Z");
  assert_int_equal(p.requeue_s, 15);
  assert_null(st_str(&p, "error"));
  mb_plan_free(&p);
  /* one this process made 3 s ago and the cache has not shown yet counts as running */
  plan(mb, none, "sched-20251231235957", NOW - 3, &p);
  assert_false(p.create);
  assert_string_equal(st_str(&p, "lastBackupName"), "sched-20251231235957");
  assert_int_equal(p.requeue_s, 12); /* its next slot */
  mb_plan_free(&p);
  /* review: @every 5s, the Backup made 7 s ago was deleted at once, so the cache never showed
   * it and nothing else changes: the end of the cache lag wakes the schedule */
  json_t *fast = mb_obj("sched", "@every 5s", "2025-12-31T23:00:00Z", NULL, NULL);
  plan(fast, none, "sched-20251231235953", NOW - 7, &p);
  assert_false(p.create);
  assert_int_equal(p.requeue_s, MB_CACHE_LAG_S + 1 - 7);
  mb_plan_free(&p);
  json_decref(fast);
  json_decref(none);
  json_decref(mb);
}

/* a Restore as listed: name, phase (NULL: none yet), created `age` seconds before NOW */
static json_t *restore_obj(const char *name, const char *phase, time_t age) {
  char ts[32];
  time_t t = NOW - age;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_t *r = json_pack("{s:{s:s,s:s}}", "metadata", "name", name, "creationTimestamp", ts);
  if (phase) json_object_set_new(r, "status", json_pack("{s:s}", "phase", phase));
  return r;
}

static void plan_no_slot_while_a_restore_runs(void **state) {
  (void)state;
  /* tried: the DR drill's restore was still running when the restored schedule's missed slot came
   * due; the Backup made then held a half-restored cluster (seen in session 8). Asserted: which
   * Restores hold (running, not stuck New, not older than the hold), and that a held slot makes no
   * Backup, waits, and looks again within MB_RESTORE_POLL_S; once the Restore ends the slot is taken. */
  json_t *rs = json_pack("[o,o,o,o,o]", restore_obj("done", "Completed", 30), restore_obj("failed", "Failed", 20),
                         restore_obj("stuck-new", "New", MB_NOT_STARTED_S + 1), restore_obj("ancient", "InProgress", MB_RESTORE_HOLD_S),
                         restore_obj("unknown", "SomethingElse", 5));
  assert_null(mb_restore_running(rs, NOW));
  json_array_append_new(rs, restore_obj("fresh", NULL, 2)); /* no phase yet: the engine has not looked */
  assert_string_equal(mb_restore_running(rs, NOW), "fresh");
  json_array_remove(rs, json_array_size(rs) - 1);
  json_array_append_new(rs, restore_obj("running", "InProgress", MB_RESTORE_HOLD_S - 1));
  assert_string_equal(mb_restore_running(rs, NOW), "running");
  json_array_remove(rs, json_array_size(rs) - 1);
  /* queued behind others (Velero runs one at a time): the hour counts from its start */
  json_t *late = restore_obj("late", "InProgress", MB_RESTORE_HOLD_S + 600);
  json_object_set_new(json_object_get(late, "status"), "startTimestamp", json_string("2025-12-31T23:50:00Z"));
  json_array_append_new(rs, late);
  assert_string_equal(mb_restore_running(rs, NOW), "late");
  json_array_remove(rs, json_array_size(rs) - 1);
  /* no creationTimestamp (never from an API server): not held */
  json_array_append_new(rs, json_pack("{s:{s:s},s:{s:s}}", "metadata", "name", "bare", "status", "phase", "InProgress"));
  assert_null(mb_restore_running(rs, NOW));
  /* one slot waits at most MB_RESTORE_HOLD_S on the controller's clock, whatever Restores come
   * and go (a stream of fresh ones, or one a tenant keeps InProgress) */
  assert_string_equal(mb_restore_hold("r1", 0, NOW, MB_RESTORE_HOLD_S), "r1");
  assert_string_equal(mb_restore_hold("r2", NOW - MB_RESTORE_HOLD_S + 1, NOW, MB_RESTORE_HOLD_S), "r2");
  assert_null(mb_restore_hold("r3", NOW - MB_RESTORE_HOLD_S, NOW, MB_RESTORE_HOLD_S));
  assert_null(mb_restore_hold(NULL, NOW - 5, NOW, MB_RESTORE_HOLD_S));
  assert_null(mb_restore_hold("r4", 0, NOW, 0)); /* --restore-hold 0: never */
  assert_string_equal(mb_restore_hold("r5", NOW - 100, NOW, 101), "r5");
  json_t *none = json_array();
  assert_null(mb_restore_running(none, NOW));
  json_decref(none);

  json_t *mb = mb_obj("tick", "@every 5s", "2025-12-31T00:00:00Z",
                      json_pack("{s:s,s:s}", "lastBackupName", "tick-20251231235000", "lastBackupTime", "2025-12-31T23:50:00Z"), NULL);
  json_t *bs = json_pack("[o]", backup("tick-20251231235000", "tick", "Completed", "2025-12-31T23:50:00Z"));
  struct mb_input in = {mb, bs, NULL, 0, NOW, 0, NOW - 1, false, "running"};
  struct mb_plan p;
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_false(p.create);
  assert_true(p.waiting);
  assert_true(p.requeue_s > 0 && p.requeue_s <= MB_RESTORE_POLL_S);
  mb_plan_free(&p);
  in.restore_running = NULL; /* the Restore ended */
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_true(p.create);
  assert_false(p.waiting);
  mb_plan_free(&p);
  json_decref(bs);
  json_decref(mb);
  json_decref(rs);
}

static void plan_no_backup_while_one_runs_and_one_after_missed_slots(void **state) {
  (void)state;
  json_t *mb = mb_obj("tick", "@every 5s", "2025-12-31T00:00:00Z",
                      json_pack("{s:s,s:s}", "lastBackupName", "tick-20251231235000", "lastBackupTime", "2025-12-31T23:50:00Z"), NULL);
  /* tried (issue 13, item 1): a Backup waiting in Velero 1.18's queue (Queued, ReadyToStart) is
   * running: without that a schedule made another Backup while one was queued */
  const char *running[] = {NULL, "", "New", "Queued", "ReadyToStart", "InProgress", "Finalizing", "WaitingForPluginOperations"};
  for (size_t i = 0; i < KD_ARRAY_LEN(running); i++) {
    json_t *bs = json_pack("[o]", backup("tick-20251231235000", "tick", running[i], "2025-12-31T23:59:00Z"));
    struct mb_plan p;
    plan(mb, bs, NULL, 0, &p);
    assert_false(p.create);
    assert_string_equal(st_str(&p, "nextAttempt"), "2025-12-31T23:50:05Z");
    /* the Backup's next change wakes it, and a clock too: a New one is reported once stuck */
    assert_true(p.requeue_s > 0 && p.requeue_s <= 60);
    assert_true(p.waiting);
    mb_plan_free(&p);
    json_decref(bs);
  }
  /* every terminal phase ends the attempt (FailedValidation too); ten minutes of missed slots
   * give exactly one backup, and the next slot counts from it */
  const char *done[] = {"Completed", "PartiallyFailed", "Failed", "FailedValidation", "Deleting", "SomethingUnknown"};
  for (size_t i = 0; i < KD_ARRAY_LEN(done); i++) {
    json_t *bs = json_pack("[o]", backup("tick-20251231235000", "tick", done[i], "2025-12-31T23:50:00Z"));
    struct mb_plan p;
    plan(mb, bs, NULL, 0, &p);
    assert_true(p.create);
    assert_string_equal(st_str(&p, "nextAttempt"), "2026-01-01T00:00:05Z");
    mb_plan_free(&p);
    json_decref(bs);
  }
  /* another ManagementBackup's running Backup does not block this one */
  json_t *bs = json_pack("[o]", backup("tick2-20251231235959", "tick2", "InProgress", "2025-12-31T23:59:59Z"));
  struct mb_plan p;
  plan(mb, bs, NULL, 0, &p);
  assert_true(p.create);
  mb_plan_free(&p);
  json_decref(bs);
  json_decref(mb);
}

static void plan_adopts_newer_backup_and_ignores_future_status(void **state) {
  (void)state;
  /* a restart right after creating a Backup, before the status said so: adopt, no duplicate */
  json_t *mb = mb_obj("dup", "@every 30s", "2025-12-31T00:00:00Z",
                      json_pack("{s:s,s:s}", "lastBackupName", "dup-20251231235900", "lastBackupTime", "2025-12-31T23:59:00Z"), NULL);
  json_t *bs = json_pack("[o,o]", backup("dup-20251231235945", "dup", "Completed", "2025-12-31T23:59:45Z"),
                         backup("dup-20251231235900", "dup", "Completed", "2025-12-31T23:59:00Z"));
  struct mb_plan p;
  plan(mb, bs, NULL, 0, &p);
  assert_false(p.create);
  assert_string_equal(st_str(&p, "lastBackupName"), "dup-20251231235945");
  assert_string_equal(st_str(&p, "nextAttempt"), "2026-01-01T00:00:15Z");
  assert_string_equal(json_string_value(json_object_get(json_object_get(p.status, "lastBackup"), "phase")), "Completed");
  mb_plan_free(&p);
  json_decref(mb);
  /* tried: a status whose lastBackupTime lies in the future (a careless edit) would stall the
   * schedule until then; it is ignored and the schedule runs from what is listed */
  mb = mb_obj("dup", "@every 30s", "2025-12-31T00:00:00Z",
              json_pack("{s:s,s:s}", "lastBackupName", "dup-29990101000000", "lastBackupTime", "2999-01-01T00:00:00Z"), NULL);
  plan(mb, bs, NULL, 0, &p);
  assert_false(p.create);
  assert_string_equal(st_str(&p, "nextAttempt"), "2026-01-01T00:00:15Z");
  mb_plan_free(&p);
  json_decref(bs);
  /* a Backup with this very name made by someone else is never taken for ours */
  json_decref(mb);
  mb = mb_obj("dup", "@every 30s", "2025-12-31T00:00:00Z", NULL, NULL);
  bs = json_pack("[o]", backup("dup-20260101000000", "intruder", "Completed", "2026-01-01T00:00:00Z"));
  plan(mb, bs, NULL, 0, &p);
  assert_false(p.create);
  assert_string_equal(p.reason, "BackupNameTaken");
  mb_plan_free(&p);
  json_decref(bs);
  json_decref(mb);
}

static void plan_bad_and_impossible_schedules_are_errors(void **state) {
  (void)state;
  json_t *none = json_array();
  const char *bad[] = {"61 * * * *", "* * * *", "@every 1e3s", "CRON_TZ=Nowhere/Nothing 0 0 * * *"};
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    print_message("schedule: %s\n", bad[i]);
    json_t *mb = mb_obj("bad", bad[i], "2025-12-31T00:00:00Z", json_pack("{s:s}", "nextAttempt", "2026-01-01T00:00:00Z"), NULL);
    struct mb_plan p;
    plan(mb, none, NULL, 0, &p);
    assert_false(p.create);
    assert_string_equal(p.reason, "InvalidSchedule");
    assert_non_null(strstr(st_str(&p, "error"), bad[i]));
    assert_null(st_str(&p, "nextAttempt")); /* no stale next attempt shown */
    mb_plan_free(&p);
    json_decref(mb);
  }
  /* tried (item 2): a NUL inside the schedule string ends nothing early: "@daily\u0000x" is
   * what robfig sees, and refuses */
  json_t *nul = mb_obj("nul", "x", "2025-12-31T00:00:00Z", NULL, NULL);
  json_object_set_new(json_object_get(nul, "spec"), "schedule", json_stringn("@daily\0x", 8));
  struct mb_plan pn;
  plan(nul, none, NULL, 0, &pn);
  assert_false(pn.create);
  assert_string_equal(pn.reason, "InvalidSchedule");
  mb_plan_free(&pn);
  json_decref(nul);
  /* review: "\u0000@daily" is a schedule robfig refuses, not an empty one (which would mean
   * "on demand" and make a Backup at once) */
  nul = mb_obj("nul2", "x", "2025-12-31T00:00:00Z", NULL, NULL);
  json_object_set_new(json_object_get(nul, "spec"), "schedule", json_stringn("\0@daily", 7));
  plan(nul, none, NULL, 0, &pn);
  assert_false(pn.create);
  assert_string_equal(pn.reason, "InvalidSchedule");
  mb_plan_free(&pn);
  json_decref(nul);
  /* review: a long non-ASCII schedule: the error message is cut between characters, never
   * inside one (jansson refuses half a character, which looked like "out of memory") */
  kd_buf big = KD_BUF_INIT(4096);
  kd_buf_adds(&big, "a");
  for (int i = 0; i < 700; i++) kd_buf_adds(&big, "\xc3\xa9");
  kd_buf_adds(&big, " * * * *");
  nul = mb_obj("long", big.data, "2025-12-31T00:00:00Z", NULL, NULL);
  plan(nul, none, NULL, 0, &pn);
  assert_string_equal(pn.reason, "InvalidSchedule");
  assert_non_null(st_str(&pn, "error"));
  mb_plan_free(&pn);
  json_decref(nul);
  kd_buf_free(&big);
  /* tried (item 6): 30 February never comes; robfig returns the zero time and kcm stays silent */
  json_t *mb = mb_obj("never", "0 0 30 2 *", "2025-12-31T00:00:00Z", NULL, NULL);
  struct mb_plan p;
  plan(mb, none, NULL, 0, &p);
  assert_false(p.create);
  assert_string_equal(p.reason, "InvalidSchedule");
  assert_non_null(strstr(st_str(&p, "error"), "no activation"));
  mb_plan_free(&p);
  json_decref(mb);
  json_decref(none);
}

static void plan_backup_stuck_in_new_is_reported(void **state) {
  (void)state;
  /* no engine runs: the Backup stays New; the schedule waits, but says why */
  json_t *mb = mb_obj("stuck", "@every 1m", "2025-12-31T00:00:00Z", NULL, NULL);
  json_t *bs = json_pack("[o]", backup("stuck-20251231234000", "stuck", NULL, "2025-12-31T23:40:00Z"));
  struct mb_plan p;
  plan(mb, bs, NULL, 0, &p);
  assert_false(p.create);
  assert_string_equal(p.reason, "BackupNotStarted");
  assert_non_null(strstr(st_str(&p, "error"), "stuck-20251231234000"));
  mb_plan_free(&p);
  json_decref(bs);
  json_decref(mb);
}

static void plan_on_demand(void **state) {
  (void)state;
  json_t *mb = mb_obj("example-backup", NULL, "2025-12-31T00:00:00Z", NULL, NULL);
  json_t *none = json_array();
  struct mb_plan p;
  plan(mb, none, NULL, 0, &p);
  assert_true(p.create);
  assert_string_equal(p.create_name, "example-backup");
  assert_null(st_str(&p, "nextAttempt"));
  mb_plan_free(&p);
  /* tried (item 3): a Backup of that name that someone else made is not adopted */
  json_t *bs = json_pack("[o]", backup("example-backup", NULL, "Completed", "2025-12-31T00:00:00Z"));
  plan(mb, bs, NULL, 0, &p);
  assert_false(p.create);
  assert_string_equal(p.reason, "BackupNameTaken");
  assert_null(st_str(&p, "lastBackupName"));
  mb_plan_free(&p);
  json_decref(bs);
  /* ours: adopted, its status mirrored */
  bs = json_pack("[o]", backup("example-backup", "example-backup", "Completed", "2025-12-31T00:00:00Z"));
  plan(mb, bs, NULL, 0, &p);
  assert_false(p.create);
  assert_string_equal(st_str(&p, "lastBackupName"), "example-backup");
  assert_string_equal(st_str(&p, "lastBackupTime"), "2025-12-31T00:00:00Z");
  mb_plan_free(&p);
  json_decref(bs);
  json_decref(mb);
  /* made once and deleted since (TTL, `backup delete`): one-shot means no second one */
  mb = mb_obj("example-backup", NULL, "2025-12-31T00:00:00Z",
              json_pack("{s:s,s:s}", "lastBackupName", "example-backup", "lastBackupTime", "2025-12-31T00:00:00Z"), NULL);
  plan(mb, none, NULL, 0, &p);
  assert_false(p.create);
  mb_plan_free(&p);
  json_decref(mb);
  json_decref(none);
}

static void plan_restored_waits_for_its_backups(void **state) {
  (void)state;
  json_t *none = json_array();
  for (int scheduled = 0; scheduled < 2; scheduled++) {
    const char *sched = scheduled ? "@every 1h" : NULL;
    /* tried (item 5): restored one minute ago, the sync has not brought its Backups back: keep
     * the labels, create nothing (the name may still be in the bucket), look again later */
    json_t *mb = mb_obj("kcm", sched, "2025-12-31T23:59:00Z", NULL,
                        json_pack("{s:s,s:s}", VELERO_LABEL_RESTORE, "r1", VELERO_LABEL_BACKUP, "kcm-20251231000000"));
    struct mb_plan p;
    plan(mb, none, NULL, 0, &p);
    assert_false(p.create);
    assert_false(p.drop_restore_labels);
    assert_null(st_str(&p, "error"));
    assert_true(p.requeue_s > 0 && p.requeue_s <= 10);
    mb_plan_free(&p);
    /* review: only the oldest Backup is back, made 20 s ago by a sync pass that has not ended
     * (the last pass ended an hour ago): the newest may still come, so nothing is picked yet */
    json_t *old = json_pack("[o]", backup("kcm-20251230000000", "kcm", "Completed", "2025-12-31T23:59:40Z"));
    struct mb_input early = {mb, old, NULL, 0, NOW, 0, NOW - 3600, false, NULL};
    assert_int_equal(mb_plan_reconcile(&early, &p), KD_OK);
    assert_false(p.drop_restore_labels);
    assert_false(p.create);
    mb_plan_free(&p);
    json_decref(old);
    /* the Backups come back: status rebuilt, labels dropped */
    json_t *bs = json_pack("[o,o]", backup("kcm-20251231000000", "kcm", "Completed", "2025-12-31T00:00:00Z"),
                           backup("kcm", "kcm", "Completed", "2025-12-30T00:00:00Z"));
    plan(mb, bs, NULL, 0, &p);
    assert_false(p.create);
    assert_true(p.drop_restore_labels);
    assert_string_equal(st_str(&p, "lastBackupName"), scheduled ? "kcm-20251231000000" : "kcm");
    mb_plan_free(&p);
    json_decref(bs);
    json_decref(mb);
    /* never back: after the wait, status.error says why; a schedule resumes (its new names
     * cannot collide), a one-shot never re-creates its name */
    mb = mb_obj("kcm", sched, "2025-12-31T23:00:00Z", NULL,
                json_pack("{s:s,s:s}", VELERO_LABEL_RESTORE, "r1", VELERO_LABEL_BACKUP, "kcm-20251231000000"));
    plan(mb, none, NULL, 0, &p);
    assert_false(p.create);
    assert_string_equal(p.reason, "RestoredBackupsMissing");
    assert_non_null(strstr(st_str(&p, "error"), "kcm-20251231000000"));
    assert_int_equal(p.drop_restore_labels, scheduled);
    char first[1600];
    snprintf(first, sizeof first, "%s", st_str(&p, "error"));
    mb_plan_free(&p);
    /* review: the message stays the same on every look (no Event and status write each time) */
    struct mb_input later = {mb, none, NULL, 0, NOW + 600, 0, 0, false, NULL};
    assert_int_equal(mb_plan_reconcile(&later, &p), KD_OK);
    assert_string_equal(st_str(&p, "error"), first);
    mb_plan_free(&p);
    json_decref(mb);
  }
  json_decref(none);
}

static void plan_restored_after_its_backups_were_synced_rebuilds_at_once(void **state) {
  (void)state;
  /* tried (issue 13, item 5): the Backups were synced ten minutes before the restore (the
   * pass ended then too); the restore made the ManagementBackup a second ago, and no pass has
   * ended since. The old rule waited for a pass after the restore: a whole sync period (60 s)
   * with no status. Now the status is rebuilt on the first look. */
  json_t *bs = json_pack("[o,o,o]", backup("kcm-20251231000000", "kcm", "Completed", "2025-12-31T23:50:00Z"),
                         backup("kcm-20251230000000", "kcm", "Completed", "2025-12-31T23:50:00Z"),
                         backup("one", "one", "Completed", "2025-12-31T23:50:00Z"));
  json_t *labels = json_pack("{s:s,s:s}", VELERO_LABEL_RESTORE, "r1", VELERO_LABEL_BACKUP, "kcm-20251231000000");
  json_t *sched = mb_obj("kcm", "@every 1h", "2025-12-31T23:59:59Z", NULL, json_incref(labels));
  json_t *once = mb_obj("one", NULL, "2025-12-31T23:59:59Z", NULL, json_incref(labels));
  struct mb_input in = {sched, bs, NULL, 0, NOW, 0, NOW - 590, false, NULL};
  struct mb_plan p;
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_true(p.drop_restore_labels);
  assert_false(p.create);
  assert_string_equal(st_str(&p, "lastBackupName"), "kcm-20251231000000");
  assert_string_equal(json_string_value(json_object_get(json_object_get(p.status, "lastBackup"), "phase")), "Completed");
  mb_plan_free(&p);
  /* a pass ending in the very second it made the Backup counts (lastSyncedTime has seconds) */
  in.bsl_synced = NOW - 600;
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_true(p.drop_restore_labels);
  mb_plan_free(&p);
  /* the pass that made them has not ended: wait (the BSL's update wakes the controller) */
  in.bsl_synced = NOW - 601;
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_false(p.drop_restore_labels);
  assert_true(p.requeue_s > 0);
  mb_plan_free(&p);
  /* a one-shot has only its namesake: listed means found, whatever the sync says (even unknown) */
  in.mb = once;
  in.bsl_synced = 0;
  assert_int_equal(mb_plan_reconcile(&in, &p), KD_OK);
  assert_true(p.drop_restore_labels);
  assert_string_equal(st_str(&p, "lastBackupName"), "one");
  mb_plan_free(&p);
  json_decref(sched);
  json_decref(once);
  json_decref(labels);
  json_decref(bs);
}

/* ---- the controller's bookkeeping ---- */

static void served_needs_two_404s_and_comes_back(void **state) {
  (void)state;
  struct mb_served s = {0};
  /* tried (issue 13, controller fault): one 404, as a kube-apiserver answers for custom
   * resources while it loads its CRDs after a restart. It used to mark the resource missing for
   * good, so the controller went on (readiness and the first reconciles) with an empty cache. */
  mb_served_ended(&s, KD_ERR_NOTFOUND);
  assert_false(mb_served_missing(&s));
  assert_false(mb_served_ready(&s, false)); /* not listed, not surely missing: wait */
  /* other ends (server errors, forbidden, cancelled) say nothing about being served */
  mb_served_ended(&s, KD_ERR_HTTP);
  mb_served_ended(&s, KD_ERR_FORBIDDEN);
  assert_false(mb_served_missing(&s));
  /* a second 404 in a row: not installed (kcm partly installed); go on without it */
  mb_served_ended(&s, KD_ERR_NOTFOUND);
  assert_true(mb_served_missing(&s));
  assert_true(mb_served_ready(&s, false));
  mb_served_ended(&s, KD_ERR_NOTFOUND);
  assert_true(mb_served_missing(&s));
  /* the CRD is installed (or the server has loaded it): the first full list clears it */
  mb_served_listed(&s);
  assert_false(mb_served_missing(&s));
  assert_true(mb_served_ready(&s, true));
  /* and a later lone 404 counts from zero again */
  mb_served_ended(&s, KD_ERR_NOTFOUND);
  assert_false(mb_served_missing(&s));
}

/* Events ask for one key every period_ms for total_ms, and no reconcile changes anything
 * (progress never); a reconcile runs when due (coalescing events, as the queue does). Returns
 * the reconciles; *max_delay: the longest an event waited. */
static int backoff_run(struct mb_backoff *b, int64_t start, int64_t period_ms, int64_t total_ms, int64_t *max_delay) {
  int64_t due = -1, asked = 0;
  int n = 0;
  *max_delay = 0;
  for (int64_t t = start; t < start + total_ms; t += 10) {
    if ((t - start) % period_ms == 0 && due < 0) {
      int64_t nb = mb_backoff_not_before(b);
      due = nb > t ? nb : t;
      asked = t;
    }
    if (due >= 0 && t >= due) {
      n++;
      if (t - asked > *max_delay) *max_delay = t - asked;
      mb_backoff_done(b, false, t);
      due = -1;
    }
  }
  return n;
}

static void backoff_bounds_a_key_that_changes_nothing(void **state) {
  (void)state;
  struct mb_backoff b = {0};
  int64_t delay;
  /* tried (issue 13, controller fault): a Backup with no phase, its ManagementBackup asked for
   * every 1.5 s for 20 minutes: 771 reconciles before (800 here without the backoff) */
  int n = backoff_run(&b, 1000, 1500, 20 * 60 * 1000, &delay);
  print_message("reconciles in 20 min: %d, longest wait %lld ms\n", n, (long long)delay);
  assert_true(n <= 40);
  assert_true(n >= 20); /* still looked at about once a minute */
  assert_true(delay <= MB_BACKOFF_MAX_MS);
  assert_int_equal(mb_backoff_not_before(&b) - b.last_ms, MB_BACKOFF_MAX_MS);
  /* progress (a status written) ends it: the next event is served at once */
  mb_backoff_done(&b, true, b.last_ms + 10);
  assert_int_equal(mb_backoff_not_before(&b), 0);
  /* the first few reconciles that change nothing are never held back (the update event of
   * the controller's own status write is one) */
  struct mb_backoff f = {0};
  n = backoff_run(&f, 1000, 100, MB_BACKOFF_FREE * 100 + 50, &delay);
  assert_int_equal(n, MB_BACKOFF_FREE + 1);
  assert_int_equal(delay, 0);
  /* a storm, then quiet: the first event after the quiet is served at once */
  struct mb_backoff q = {0};
  backoff_run(&q, 1000, 200, 5 * 60 * 1000, &delay);
  assert_true(mb_backoff_not_before(&q) > q.last_ms);
  n = backoff_run(&q, q.last_ms + 3 * MB_BACKOFF_MAX_MS, 1000, 10, &delay);
  assert_int_equal(n, 1);
  assert_int_equal(delay, 0);
  assert_int_equal(mb_backoff_not_before(&q), 0);
}

static void backoff_never_delays_a_plans_own_clock(void **state) {
  (void)state;
  /* a restored object waiting for its Backups looks every 10 s, a missing Velero every 5 s:
   * those looks change nothing for minutes, yet the one that finds the Backups must not wait
   * (item 5: the status follows within a second) */
  const int64_t periods[] = {10000, 5000, 2010};
  for (size_t i = 0; i < KD_ARRAY_LEN(periods); i++) {
    struct mb_backoff b = {0};
    int64_t delay;
    int n = backoff_run(&b, 1000, periods[i], 10 * 60 * 1000, &delay);
    assert_int_equal(n, (10 * 60 * 1000 + periods[i] - 1) / periods[i]);
    assert_int_equal(delay, 0);
  }
}

static void selectors_skip_values_no_label_can_hold(void **state) {
  (void)state;
  /* tried: a hostile tenant's ClusterTemplate status lists providers no label value can be ("a
   * b", 64 characters, "a\u0000b"), and a ClusterDeployment name of 64+ characters. kcm puts them
   * in the Backup, which then fails as a whole; a selector on them selects nothing anyway. */
  char long_name[80];
  memset(long_name, 'x', 70);
  long_name[70] = '\0';
  json_t *provs = json_pack("[s,s,s,s%,s]", "infrastructure-aws", "a b", long_name, "a\0b", (size_t)3, "-lead");
  json_t *cds = json_pack("[o,o]", cd("ns", "good", "t"), cd("ns", long_name, "t"));
  json_t *cts = json_pack("[o]", ct("ns", "t", provs));
  json_t *skipped = json_array();
  json_t *s = mb_selectors(cds, cts, false, skipped);
  /* each left-out value is said (issue 7: skipped with a Warning Event, never silently): the
   * long ClusterDeployment name and the template's four bad providers, once per ClusterDeployment */
  assert_int_equal(json_array_size(skipped), 1 + 4); /* the second CD's template is not said again */
  const char *first = json_string_value(json_array_get(skipped, 0)); /* the good CD's template, first bad provider */
  assert_non_null(strstr(first, "ClusterTemplate ns/t: provider \"a b\" cannot be a label value"));
  assert_non_null(strstr(json_string_value(json_array_get(skipped, 2)), "\"a\" (with a NUL)"));
  assert_non_null(strstr(json_string_value(json_array_get(skipped, 4)), "ClusterDeployment ns/xxxxxxxx"));
  json_decref(skipped);
  /* tried: a provider whose cut falls inside a two-byte character: still said, as valid UTF-8 */
  json_t *mb_provs = json_pack("[s]", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9");
  json_t *mb_cts = json_pack("[o]", ct("ns", "t", mb_provs)), *mb_cds = json_pack("[o]", cd("ns", "good", "t"));
  skipped = json_array();
  json_t *s3 = mb_selectors(mb_cds, mb_cts, false, skipped);
  assert_int_equal(json_array_size(skipped), 1);
  assert_non_null(strstr(json_string_value(json_array_get(skipped, 0)), "provider \"aaaa"));
  json_decref(s3);
  json_decref(skipped);
  json_decref(mb_cts);
  json_decref(mb_cds);
  /* tried: a hundred distinct bad names: the list stays capped */
  skipped = json_array();
  json_t *many = json_array();
  for (int i = 0; i < 100; i++) {
    char nm[128];
    snprintf(nm, sizeof nm, "%s-%03d", long_name, i);
    json_array_append_new(many, cd("ns", nm, "t"));
  }
  json_t *s2 = mb_selectors(many, cts, true, skipped);
  assert_non_null(s2);
  assert_int_equal(json_array_size(skipped), MB_SKIPPED_MAX);
  json_decref(s2);
  json_decref(many);
  json_decref(skipped);
  char *got = flat(s);
  assert_string_equal(got, "cluster.x-k8s.io/cluster-name=good\n"
                           "cluster.x-k8s.io/provider=cluster-api\n"
                           "cluster.x-k8s.io/provider=infrastructure-aws\n"
                           "controller.cert-manager.io/fao=true\n"
                           "helm.toolkit.fluxcd.io/name=good\n"
                           "k0rdent.mirantis.com/component=kcm\n");
  free(got);
  json_decref(s);
  json_decref(cds);
  json_decref(cts);
  assert_true(mb_label_value_valid("a.b_c-d"));
  assert_false(mb_label_value_valid(""));
  assert_false(mb_label_value_valid("a."));
  assert_false(mb_label_value_valid(NULL));
}

int test_mgmtbackup(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(selectors_no_cluster_deployments), cmocka_unit_test(selectors_one_cluster_deployment),
      cmocka_unit_test(selectors_200_cluster_deployments), cmocka_unit_test(backup_object),
      cmocka_unit_test(names_and_bounds),
      cmocka_unit_test(restored_pick),
      cmocka_unit_test(plan_schedule_goes_on_after_latest_backup_deleted),
      cmocka_unit_test(plan_no_backup_while_one_runs_and_one_after_missed_slots),
      cmocka_unit_test(plan_no_slot_while_a_restore_runs),
      cmocka_unit_test(plan_adopts_newer_backup_and_ignores_future_status),
      cmocka_unit_test(plan_bad_and_impossible_schedules_are_errors),
      cmocka_unit_test(plan_backup_stuck_in_new_is_reported),
      cmocka_unit_test(plan_on_demand),
      cmocka_unit_test(plan_restored_waits_for_its_backups),
      cmocka_unit_test(plan_restored_after_its_backups_were_synced_rebuilds_at_once),
      cmocka_unit_test(selectors_skip_values_no_label_can_hold),
      cmocka_unit_test(served_needs_two_404s_and_comes_back),
      cmocka_unit_test(backoff_bounds_a_key_that_changes_nothing),
      cmocka_unit_test(backoff_never_delays_a_plans_own_clock),
  };
  return cmocka_run_group_tests_name("mgmtbackup", tests, NULL, NULL);
}
