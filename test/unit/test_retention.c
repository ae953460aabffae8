/* test_retention.c — which backups keep-last N deletes (retention.c), on hand-made Backup lists. */
#include <string.h>

#include "mgmtbackup.h"
#include "retention.h"
#include "tests.h"

/* a Backup named name (phase ph, "" = none) labelled for owner */
static json_t *bk(const char *owner, const char *name, const char *ph) {
  json_t *b = json_pack("{s:{s:s,s:s,s:{s:s}},s:{}}", "metadata", "name", name, "uid", name, "labels",
                        MB_LABEL_BACKUP, owner, "status");
  if (ph[0]) json_object_set_new(json_object_get(b, "status"), "phase", json_string(ph));
  return b;
}

static json_t *rs(const char *name, const char *backup, const char *ph) {
  json_t *r = json_pack("{s:{s:s},s:{s:s},s:{}}", "metadata", "name", name, "spec", "backupName", backup, "status");
  if (ph[0]) json_object_set_new(json_object_get(r, "status"), "phase", json_string(ph));
  return r;
}

/* the names in doomed, joined by spaces */
static void names(json_t *doomed, char *out, size_t n) {
  size_t i;
  json_t *b;
  out[0] = 0;
  json_array_foreach(doomed, i, b) {
    const char *s = json_string_value(json_object_get(json_object_get(b, "metadata"), "name"));
    strncat(out, s, n - strlen(out) - 1);
    if (i + 1 < json_array_size(doomed)) strncat(out, " ", n - strlen(out) - 1);
  }
}

static void plan(long keep, json_t *backups, json_t *restores, const char *want) {
  json_t *doomed = NULL;
  char got[1024];
  assert_int_equal(retention_plan("daily", keep, backups, restores, &doomed), KD_OK);
  names(doomed, got, sizeof got);
  assert_string_equal(got, want);
  json_decref(doomed);
}

/* tried: five successful scheduled backups, N = 2; then the same list shuffled and with backups of
 * another schedule, the on-demand one, one still running, one synced from elsewhere and one being
 * deleted mixed in. Asserted: the three oldest successful ones go, oldest first, and nothing else. */
static void keeps_the_newest_n_successful(void **state) {
  (void)state;
  json_t *b = json_array();
  json_array_append_new(b, bk("daily", "daily-20261201000000", "Completed"));
  json_array_append_new(b, bk("daily", "daily-20261203000000", "PartiallyFailed"));
  json_array_append_new(b, bk("daily", "daily-20261205000000", "Completed"));
  json_array_append_new(b, bk("daily", "daily-20261202000000", "Completed"));
  json_array_append_new(b, bk("daily", "daily-20261204000000", "Completed"));
  plan(2, b, NULL, "daily-20261201000000 daily-20261202000000 daily-20261203000000");
  json_array_append_new(b, bk("weekly", "weekly-20261101000000", "Completed")); /* another schedule */
  json_array_append_new(b, bk("daily", "daily", "Completed"));                  /* on demand */
  json_array_append_new(b, bk("other", "daily-20261101000000", "Completed"));  /* name fits, label not */
  json_array_append_new(b, bk("daily", "daily-20261130000000", "InProgress"));
  json_array_append_new(b, bk("daily", "daily-2026113000000x", "Completed")); /* not a timestamp */
  json_t *synced = bk("daily", "daily-20261129000000", "Completed");
  json_object_set_new(json_object_get(synced, "metadata"), "annotations",
                      json_pack("{s:s}", "kcmdr.io/synced-from-location", "default"));
  json_array_append_new(b, synced);
  json_t *going = bk("daily", "daily-20261128000000", "Completed");
  json_object_set_new(json_object_get(going, "metadata"), "deletionTimestamp", json_string("2026-12-01T00:00:00Z"));
  json_array_append_new(b, going);
  plan(2, b, NULL, "daily-20261201000000 daily-20261202000000 daily-20261203000000");
  plan(5, b, NULL, "");
  plan(4, b, NULL, "daily-20261201000000");
  json_decref(b);
}

/* tried: in a cluster restored with Velero, Backups synced from the bucket (Velero's sync marks
 * nothing: they only carry a creationTimestamp later than their completionTimestamp) and this
 * cluster's own new ones, N = 1. Asserted: only this cluster's older backup goes; the synced ones
 * are left to their TTL (their files may be another live cluster's); a backup of this cluster
 * (created, then completed) and one without timestamps still count. */
static void synced_by_velero_are_left_alone(void **state) {
  (void)state;
  json_t *b = json_array();
  const char *stamps[][3] = {/* name, created, completed */
                             {"daily-20261201000000", "2026-12-10T09:00:00Z", "2026-12-01T00:01:00Z"},
                             {"daily-20261202000000", "2026-12-10T09:00:01Z", "2026-12-02T00:01:00Z"},
                             {"daily-20261210100000", "2026-12-10T10:00:00Z", "2026-12-10T10:01:00Z"},
                             {"daily-20261210110000", "2026-12-10T11:00:00Z", "2026-12-10T11:00:00Z"}};
  for (size_t i = 0; i < 4; i++) {
    json_t *x = bk("daily", stamps[i][0], "Completed");
    json_object_set_new(json_object_get(x, "metadata"), "creationTimestamp", json_string(stamps[i][1]));
    json_object_set_new(json_object_get(x, "status"), "completionTimestamp", json_string(stamps[i][2]));
    json_array_append_new(b, x);
  }
  plan(1, b, NULL, "daily-20261210100000");
  json_array_append_new(b, bk("daily", "daily-20261203000000", "Completed")); /* no timestamps: counts */
  plan(1, b, NULL, "daily-20261203000000 daily-20261210100000");
  json_decref(b);
}

/* tried: failed backups before and after the newest successful one, and a schedule where nothing
 * ever succeeded. Asserted: failures do not count toward N; those older than the newest success
 * go; newer ones stay (they are what an operator looks at); with no success nothing goes, and the
 * newest successful backup is kept even with N = 1 and failures after it. */
static void failures_do_not_count(void **state) {
  (void)state;
  json_t *b = json_array();
  json_array_append_new(b, bk("daily", "daily-20261201000000", "Failed"));
  json_array_append_new(b, bk("daily", "daily-20261202000000", "FailedValidation"));
  plan(1, b, NULL, "");
  json_array_append_new(b, bk("daily", "daily-20261203000000", "Completed"));
  json_array_append_new(b, bk("daily", "daily-20261204000000", "Failed"));
  json_array_append_new(b, bk("daily", "daily-20261205000000", "Failed"));
  plan(1, b, NULL, "daily-20261201000000 daily-20261202000000");
  plan(3, b, NULL, "daily-20261201000000 daily-20261202000000");
  json_array_append_new(b, bk("daily", "daily-20261206000000", "Completed"));
  plan(1, b, NULL, "daily-20261201000000 daily-20261202000000 daily-20261203000000 daily-20261204000000 daily-20261205000000");
  json_decref(b);
}

/* tried: a Restore reading an old backup (not yet ended, or with no phase yet), a finished
 * Restore of another. Asserted: the one being read stays, the finished one's backup goes. */
static void never_deletes_what_a_restore_reads(void **state) {
  (void)state;
  json_t *b = json_array(), *r = json_array();
  json_array_append_new(b, bk("daily", "daily-20261201000000", "Completed"));
  json_array_append_new(b, bk("daily", "daily-20261202000000", "Completed"));
  json_array_append_new(b, bk("daily", "daily-20261203000000", "Completed"));
  json_array_append_new(b, bk("daily", "daily-20261204000000", "Completed"));
  json_array_append_new(r, rs("r1", "daily-20261201000000", "InProgress"));
  json_array_append_new(r, rs("r2", "daily-20261202000000", "Completed"));
  json_array_append_new(r, rs("r3", "daily-20261203000000", ""));
  plan(1, b, r, "daily-20261202000000");
  assert_string_equal(retention_reader(r, "daily-20261201000000"), "r1");
  assert_null(retention_reader(r, "daily-20261202000000"));
  assert_string_equal(retention_reader(r, "daily-20261203000000"), "r3");
  assert_null(retention_reader(r, NULL));
  json_decref(b);
  json_decref(r);
}

/* tried: 50 old backups at once. Asserted: one pass asks for at most RETENTION_DELETES_MAX, the
 * oldest first (the rest on the next pass). */
static void one_pass_is_bounded(void **state) {
  (void)state;
  json_t *b = json_array(), *doomed = NULL;
  char name[64];
  for (int i = 0; i < 50; i++) {
    snprintf(name, sizeof name, "daily-202612%02d%02d0000", 1 + i / 24, i % 24);
    json_array_append_new(b, bk("daily", name, "Completed"));
  }
  assert_int_equal(retention_plan("daily", 1, b, NULL, &doomed), KD_OK);
  assert_int_equal(json_array_size(doomed), RETENTION_DELETES_MAX);
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(doomed, 0), "metadata"), "name")),
                      "daily-20261201000000");
  json_decref(doomed);
  json_decref(b);
}

/* tried: a ManagementBackup whose name (240 bytes) makes both its Backups' names and its label
 * bounded (mb_scheduled_name, mb_bounded), N = 1, and another one sharing its first 200 bytes.
 * Asserted: its older backup goes, never the other's (their bounded prefixes differ by hash). */
static void long_names_are_bounded_alike(void **state) {
  (void)state;
  char mb[241], other[241], label[MB_LABEL_MAX + 1], olabel[MB_LABEL_MAX + 1], n1[MB_NAME_MAX + 1], n2[MB_NAME_MAX + 1],
      n3[MB_NAME_MAX + 1];
  memset(mb, 'a', 240), mb[240] = 0;
  memcpy(other, mb, sizeof other), other[239] = 'b';
  mb_bounded(mb, MB_LABEL_MAX, label);
  mb_bounded(other, MB_LABEL_MAX, olabel);
  mb_scheduled_name(mb, 1796083200, n1); /* 2026-12-01 */
  mb_scheduled_name(mb, 1796169600, n2);
  mb_scheduled_name(other, 1796083200, n3);
  json_t *b = json_array(), *doomed = NULL;
  json_array_append_new(b, bk(label, n1, "Completed"));
  json_array_append_new(b, bk(label, n2, "Completed"));
  json_array_append_new(b, bk(olabel, n3, "Completed"));
  assert_int_equal(retention_plan(mb, 1, b, NULL, &doomed), KD_OK);
  assert_int_equal(json_array_size(doomed), 1);
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(doomed, 0), "metadata"), "name")), n1);
  json_decref(doomed);
  assert_int_equal(retention_plan(other, 1, b, NULL, &doomed), KD_OK);
  assert_int_equal(json_array_size(doomed), 0);
  json_decref(doomed);
  json_decref(b);
}

/* tried: the request for a Backup, made twice (two replicas, or a deposed leader and the new
 * one, asking at once), for a Backup with a 63-byte name, and for one without a uid. Asserted:
 * both askers build the same fixed name (the second create meets 409 instead of making a second
 * request: with generateName there were two), a DNS subdomain carrying the uid, with the labels
 * and spec the engines read; no uid, no request. */
static void one_request_name_per_backup(void **state) {
  (void)state;
  json_t *b = bk("daily", "daily-20261201000000", "Completed");
  json_object_set_new(json_object_get(b, "metadata"), "uid", json_string("0f3c2a9e-1b7d-4c55-9a0e-6d2f8b7c1e42"));
  json_t *r1 = retention_request("kcm-system", b), *r2 = retention_request("kcm-system", b);
  assert_non_null(r1);
  assert_non_null(r2);
  json_t *m1 = json_object_get(r1, "metadata");
  assert_null(json_object_get(m1, "generateName"));
  assert_string_equal(json_string_value(json_object_get(m1, "name")), "daily-20261201000000-0f3c2a9e-1b7d-4c55-9a0e-6d2f8b7c1e42");
  assert_true(json_equal(r1, r2));
  assert_string_equal(json_string_value(json_object_get(json_object_get(m1, "labels"), "velero.io/backup-uid")),
                      "0f3c2a9e-1b7d-4c55-9a0e-6d2f8b7c1e42");
  assert_string_equal(json_string_value(json_object_get(json_object_get(m1, "labels"), "velero.io/backup-name")),
                      "daily-20261201000000");
  assert_string_equal(json_string_value(json_object_get(json_object_get(r1, "spec"), "backupName")), "daily-20261201000000");
  json_decref(r1);
  json_decref(r2);
  json_decref(b);
  b = bk("x", "a-very-long-schedule-name-for-the-daily-backups-2026120100000.x", "Completed");
  json_object_set_new(json_object_get(b, "metadata"), "uid", json_string("0f3c2a9e-1b7d-4c55-9a0e-6d2f8b7c1e42"));
  r1 = retention_request("kcm-system", b);
  const char *n = json_string_value(json_object_get(json_object_get(r1, "metadata"), "name"));
  assert_non_null(n);
  assert_true(strlen(n) <= 253);
  assert_true(n[0] >= 'a' && n[0] <= 'z');
  for (const char *p = n; *p; p++) assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz0123456789-.", *p));
  assert_null(strstr(n, ".-"));
  assert_non_null(strstr(n, "-0f3c2a9e-1b7d-4c55-9a0e-6d2f8b7c1e42"));
  json_decref(r1);
  json_object_del(json_object_get(b, "metadata"), "uid");
  assert_null(retention_request("kcm-system", b));
  json_decref(b);
}

/* tried: the annotation absent, valid, and as careless users write it: 0, -1, "2 ", "two", "",
 * a huge number, a number (not a string), a long non-ASCII string. Asserted: absent = 0 (off);
 * every bad one is KD_ERR_INVALID naming the annotation, never taken as some N; the message
 * quoting a long value is still UTF-8 (it becomes an Event). */
static void annotation_is_strict(void **state) {
  (void)state;
  long n = -5;
  json_t *mb = json_pack("{s:{s:s}}", "metadata", "name", "daily");
  assert_int_equal(retention_keep_last(mb, &n), KD_OK);
  assert_int_equal(n, 0);
  const char *bad[] = {"0", "-1", "2 ", " 2", "two", "", "99999999999999999999", "10001", "+3", "0x10"};
  json_object_set_new(json_object_get(mb, "metadata"), "annotations", json_object());
  json_t *ann = json_object_get(json_object_get(mb, "metadata"), "annotations");
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_object_set_new(ann, RETENTION_ANNOTATION, json_string(bad[i]));
    assert_int_equal(retention_keep_last(mb, &n), KD_ERR_INVALID);
    assert_int_equal(n, 0);
    assert_non_null(strstr(kd_errmsg(), RETENTION_ANNOTATION));
  }
  /* a long value of two-byte characters, cut for the message at an odd byte: the message must
   * stay UTF-8, or the Warning Event (JSON) cannot be written */
  json_object_set_new(ann, RETENTION_ANNOTATION, json_string("a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"));
  assert_int_equal(retention_keep_last(mb, &n), KD_ERR_INVALID);
  json_t *m = json_string(kd_errmsg());
  assert_non_null(m);
  json_decref(m);
  json_object_set_new(ann, RETENTION_ANNOTATION, json_integer(3));
  assert_int_equal(retention_keep_last(mb, &n), KD_ERR_INVALID);
  json_object_set_new(ann, RETENTION_ANNOTATION, json_string("3"));
  assert_int_equal(retention_keep_last(mb, &n), KD_OK);
  assert_int_equal(n, 3);
  json_object_set_new(ann, RETENTION_ANNOTATION, json_string("10000"));
  assert_int_equal(retention_keep_last(mb, &n), KD_OK);
  assert_int_equal(n, 10000);
  json_decref(mb);
}

int test_retention(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(keeps_the_newest_n_successful),
      cmocka_unit_test(synced_by_velero_are_left_alone),
      cmocka_unit_test(failures_do_not_count),
      cmocka_unit_test(never_deletes_what_a_restore_reads),
      cmocka_unit_test(one_pass_is_bounded),
      cmocka_unit_test(annotation_is_strict),
      cmocka_unit_test(one_request_name_per_backup),
      cmocka_unit_test(long_names_are_bounded_alike),
  };
  return cmocka_run_group_tests_name("retention", tests, NULL, NULL);
}
