/* test_owner.c — what the engine removes and in which order (issue 13 item 3): processed
 * DeleteBackupRequests after 24 h (engine_dbr_expired), and a discarded backup's files,
 * velero-backup.json first and the claim last (backup_delete_files on a local-directory store). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "engine.h"
#include "objstore.h"
#include "tests.h"

/* a DeleteBackupRequest as the API server hands it out */
static json_t *dbr(const char *phase, const char *uid, const char *created) {
  json_t *md = json_pack("{s:s}", "name", "x-abcde");
  if (uid) json_object_set_new(md, "uid", json_string(uid));
  if (created) json_object_set_new(md, "creationTimestamp", json_string(created));
  json_t *o = json_pack("{s:s,s:o,s:{s:s}}", "kind", "DeleteBackupRequest", "metadata", md, "spec", "backupName", "x");
  if (phase) json_object_set_new(o, "status", json_pack("{s:s}", "phase", phase));
  return o;
}

static bool expired_at(const char *phase, const char *uid, const char *created, time_t now) {
  json_t *d = dbr(phase, uid, created);
  bool r = engine_dbr_expired(d, now);
  json_decref(d);
  return r;
}

/* tried: a Processed request created just under, exactly at and just over 24 h before now, one
 * from the future (a clock ahead), requests in every other phase (New, InProgress, none, an
 * unknown one, the wrong case) however old, one without a uid, and creationTimestamps that are
 * missing, empty, not RFC 3339, or not a time at all. Asserted: only a Processed request with a
 * uid older than 24 h is removed; whatever cannot be read is kept. */
static void dbr_removed_after_24h_only_when_processed(void **state) {
  (void)state;
  const char *made = "2026-01-10T12:00:00Z";
  time_t t0 = 0;
  assert_int_equal(kd_time_parse(made, &t0), KD_OK);
  const char *uid = "0b7e3a52-1111-4c1e-9d0a-5a0f0c0ffee0";
  assert_true(expired_at("Processed", uid, made, t0 + ENGINE_DBR_MAX_AGE_S + 1));
  assert_true(expired_at("Processed", uid, made, t0 + 30 * 24 * 3600));
  assert_false(expired_at("Processed", uid, made, t0 + ENGINE_DBR_MAX_AGE_S));     /* exactly 24 h: not yet */
  assert_false(expired_at("Processed", uid, made, t0 + ENGINE_DBR_MAX_AGE_S - 1)); /* just under */
  assert_false(expired_at("Processed", uid, made, t0));
  assert_false(expired_at("Processed", uid, made, t0 - 3600)); /* made "in the future" */
  assert_int_equal(ENGINE_DBR_MAX_AGE_S, 24 * 3600);
  /* never one that is not Processed, however old */
  time_t late = t0 + 365 * 24 * 3600;
  const char *phases[] = {"New", "InProgress", "", "processed", "Failed", NULL};
  for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) assert_false(expired_at(phases[i], uid, made, late));
  /* no uid: its removal could not be exact */
  assert_false(expired_at("Processed", NULL, made, late));
  /* a timestamp that cannot be read is never taken as old */
  const char *bad[] = {NULL, "", "yesterday", "2026-01-10", "2026-13-40T99:99:99Z", "0", "2026-01-10T12:00:00Z junk"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(expired_at("Processed", uid, bad[i], late));
  /* an object without metadata or status at all */
  json_t *empty = json_object();
  assert_false(engine_dbr_expired(empty, late));
  json_decref(empty);
}

/* ---- deletion order on a local-directory store ---- */

struct ownfix {
  char root[64];
  objstore *s;
};

static int own_setup(void **state) {
  struct ownfix *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->root, sizeof f->root, "/tmp/kcmdr-owner-XXXXXX");
  if (!mkdtemp(f->root)) return -1;
  json_t *b = json_pack("{s:s,s:s,s:{s:s},s:{s:s,s:{s:s},s:{s:s}}}", "apiVersion", "velero.io/v1", "kind",
                        "BackupStorageLocation", "metadata", "name", "default", "spec", "provider", "filesystem",
                        "objectStorage", "bucket", "b", "config", "path", f->root);
  kd_rc rc = objstore_open_bsl(b, NULL, 0, &f->s);
  json_decref(b);
  *state = f;
  return rc == KD_OK ? 0 : -1;
}

static int own_teardown(void **state) {
  struct ownfix *f = *state;
  objstore_free(f->s);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
  int r = system(cmd);
  free(f);
  return r == 0 ? 0 : -1;
}

/* allows the first *ud mutations, refuses every later one (a store that stops answering, a
 * term that ends) */
static kd_rc allow_n(void *ud) {
  int *left = ud;
  if (*left <= 0) return kd_fail(KD_ERR_CANCELLED, "refused by the test");
  (*left)--;
  return KD_OK;
}

/* The backup "a" sorts before velero-backup.json in a listing ("a-..." < "velero-..."), so an
 * order taken from the listing would remove the data files first. */
static const char *own_files[] = {"backups/a/a.tar.gz",        "backups/a/a-logs.gz",          "backups/a/a-results.gz",
                                  "backups/a/a-checksums.json", "backups/a/a-resource-list.json.gz",
                                  "backups/a/velero-backup.json", "backups/a/a-claim.json"};
#define OWN_N (sizeof own_files / sizeof own_files[0])
#define OWN_META "backups/a/velero-backup.json"
#define OWN_CLAIM "backups/a/a-claim.json"

static bool own_present(objstore *s, const char *key) {
  kd_rc rc = objstore_head(s, key, NULL);
  assert_true(rc == KD_OK || rc == KD_ERR_NOTFOUND);
  return rc == KD_OK;
}

/* tried: a whole backup folder (the claim, velero-backup.json, tarball, logs, results, resource
 * list, checksums) removed by backup_delete_files while the store accepts only the first n
 * deletions, for every n from 0 to all of them (the deletion cut short at every step, as an
 * outage or a lost term cuts it). Asserted after each: as soon as anything is gone,
 * velero-backup.json is gone (no cut leaves a backup that syncs as whole without its tarball);
 * the claim goes only once every other file is gone (the name stays taken while a file is left);
 * exactly n files are gone, and the call fails unless all were removed. */
static void delete_files_metadata_first_claim_last(void **state) {
  struct ownfix *f = *state;
  for (int n = 0; n <= (int)OWN_N + 1; n++) {
    objstore_set_guard(f->s, NULL, NULL);
    for (size_t i = 0; i < OWN_N; i++) assert_int_equal(objstore_put(f->s, own_files[i], "x", 1), KD_OK);
    int left = n;
    objstore_set_guard(f->s, allow_n, &left);
    kd_rc rc = backup_delete_files(f->s, "a");
    objstore_set_guard(f->s, NULL, NULL);
    size_t gone = 0;
    for (size_t i = 0; i < OWN_N; i++) gone += !own_present(f->s, own_files[i]);
    size_t want = (size_t)n < OWN_N ? (size_t)n : OWN_N;
    assert_int_equal(gone, want);
    if (gone) assert_false(own_present(f->s, OWN_META));
    if (!own_present(f->s, OWN_CLAIM)) assert_int_equal(gone, OWN_N);
    if (gone < OWN_N) {
      assert_int_not_equal(rc, KD_OK);
      assert_true(own_present(f->s, OWN_CLAIM));
    } else {
      assert_int_equal(rc, KD_OK);
    }
  }
  /* a velero-backup.json alone (its backup's other writes never landed) goes too, claim last */
  assert_int_equal(objstore_put(f->s, OWN_META, "x", 1), KD_OK);
  assert_int_equal(objstore_put(f->s, OWN_CLAIM, "x", 1), KD_OK);
  int one = 1;
  objstore_set_guard(f->s, allow_n, &one);
  assert_int_not_equal(backup_delete_files(f->s, "a"), KD_OK);
  objstore_set_guard(f->s, NULL, NULL);
  assert_false(own_present(f->s, OWN_META));
  assert_true(own_present(f->s, OWN_CLAIM));
}

int test_owner(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dbr_removed_after_24h_only_when_processed),
      cmocka_unit_test_setup_teardown(delete_files_metadata_first_claim_last, own_setup, own_teardown),
  };
  return cmocka_run_group_tests_name("owner", tests, NULL, NULL);
}
