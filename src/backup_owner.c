/* backup_owner.c — whose files a backup folder holds, and the only ways kcmdr removes them
 * (see backup.h: "Ownership"). A folder backups/<b>/ belongs to the Backup whose uid its claim
 * file names; files are deleted only by their owner, velero-backup.json first (so a half-deleted
 * backup is never synced as whole) and the claim last (so the name stays taken while a file is
 * left). */
#include "backup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "velero.h"
#include "vstatus.h"

#define OWNER_DOC_MAX (16u << 20) /* largest velero-backup.json / checksums file read back */
#define OWNER_KEYS_MAX 10000      /* files under one backup folder */

static const struct kube_res owner_backup_res = {"velero.io", "v1", "backups", "Backup", true};

static const char *meta_str(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(o, "metadata"), k));
}

json_t *backup_delete_request(const char *ns, json_t *backup) {
  const char *name = meta_str(backup, "name"), *uid = meta_str(backup, "uid");
  char lbl[VELERO_LABEL_MAX + 1], gen[VELERO_LABEL_MAX + 2];
  if (!name) return NULL;
  velero_label_value(name, lbl);
  size_t n = strlen(lbl);
  if (n > 57) n = 57; /* the server adds 5 characters */
  while (n && (lbl[n - 1] == '.' || lbl[n - 1] == '-')) n--; /* "x.-" is no DNS name */
  snprintf(gen, sizeof gen, "%.*s-", (int)n, n ? lbl : "backup");
  json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:s}}", "apiVersion", "velero.io/v1", "kind", "DeleteBackupRequest",
                        "metadata", "generateName", gen, "namespace", ns, "labels", VELERO_LABEL_BACKUP_NAME, lbl, "spec",
                        "backupName", name);
  if (o && uid && json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"), BACKUP_UID_LABEL, json_string(uid))) {
    json_decref(o);
    return NULL;
  }
  return o;
}

kd_rc backup_claim_key(const char *name, char *out, size_t n) {
  int w = snprintf(out, n, "backups/%s/%s-claim.json", name, name);
  if (w < 0 || (size_t)w >= n) return kd_fail(KD_ERR_TOOBIG, "backup name \"%.100s\" is too long for a key", name);
  return KD_OK;
}

/* Read a JSON document from st (NUL allowed). KD_ERR_NOTFOUND when absent, KD_ERR_PARSE when not
 * a JSON object. */
static kd_rc read_doc(objstore *st, const char *key, json_t **out) {
  char *data = NULL;
  size_t len = 0;
  *out = NULL;
  kd_rc rc = objstore_get_all(st, key, OWNER_DOC_MAX, &data, &len);
  if (rc != KD_OK) return rc;
  json_error_t err;
  json_t *doc = json_loadb(data, len, JSON_ALLOW_NUL, &err);
  free(data);
  if (!json_is_object(doc)) {
    json_decref(doc);
    return kd_fail(KD_ERR_PARSE, "%s is not a JSON object", key);
  }
  *out = doc;
  return KD_OK;
}

bool backup_is_synced(json_t *backup) {
  return json_string_value(json_object_get(json_object_get(json_object_get(backup, "metadata"), "annotations"),
                                           BACKUP_SYNCED_ANNOTATION)) != NULL;
}

kd_rc backup_files_ours(objstore *st, json_t *backup, bool *ours, char *why, size_t n) {
  const char *name = meta_str(backup, "name"), *uid = meta_str(backup, "uid");
  char ckey[VELERO_KEY_MAX], mkey[VELERO_KEY_MAX];
  json_t *claim = NULL, *meta = NULL;
  kd_rc rc;
  *ours = false;
  snprintf(why, n, "%s", "");
  if (!name || !uid) return kd_fail(KD_ERR_INVALID, "the Backup has no name or uid");
  if ((rc = backup_claim_key(name, ckey, sizeof ckey)) || (rc = velero_backup_key(name, VELERO_BACKUP_METADATA, mkey, sizeof mkey)))
    return rc;
  if (kd_streq(json_string_value(json_object_get(json_object_get(backup, "status"), "phase")),
               VELERO_PHASE_FAILED_VALIDATION)) {
    snprintf(why, n, "a Backup that failed validation never wrote a file; the folder belongs to another");
    return KD_OK;
  }
  rc = read_doc(st, ckey, &claim);
  if (rc != KD_OK && rc != KD_ERR_NOTFOUND && rc != KD_ERR_PARSE) goto fail;
  rc = read_doc(st, mkey, &meta);
  if (rc != KD_OK && rc != KD_ERR_NOTFOUND && rc != KD_ERR_PARSE) goto fail;
  rc = KD_OK;
  const char *cuid = json_string_value(json_object_get(claim, "uid")), *muid = meta_str(meta, "uid");
  if (backup_is_synced(backup)) { /* Velero's rule: deleting a synced backup deletes its files */
    *ours = meta && (!claim || kd_streq(cuid, muid));
    if (!*ours)
      snprintf(why, n, "%s", meta ? "its velero-backup.json and claim name different writers" : "no whole backup is there");
  } else if (claim) {
    *ours = kd_streq(cuid, uid);
    if (!*ours) snprintf(why, n, "the folder is claimed by another Backup (uid %.64s)", cuid ? cuid : "none");
  } else {
    *ours = meta && kd_streq(muid, uid);
    if (!*ours) snprintf(why, n, "%s", meta ? "its velero-backup.json was written for another Backup" : "nothing of it is there");
  }
fail:
  json_decref(claim);
  json_decref(meta);
  return rc ? kd_fail_wrap(rc, "reading the owner of backup %s", name) : KD_OK;
}

struct keys {
  char **v;
  size_t n;
};

static kd_rc collect(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)size;
  struct keys *k = ud;
  if (is_prefix) return KD_OK;
  size_t len = strlen(key);
  if (!len || key[len - 1] == '/' || strstr(key, "//")) { /* a folder marker (s3fs, consoles): no file of ours */
    kd_log(KD_LOG_DEBUG, "leaving %s alone: not a file kcmdr writes", key);
    return KD_OK;
  }
  if (k->n >= OWNER_KEYS_MAX) return kd_fail(KD_ERR_TOOBIG, "more than %d files under one backup", OWNER_KEYS_MAX);
  char **nv = realloc(k->v, (k->n + 1) * sizeof *nv);
  if (!nv) return kd_fail(KD_ERR_NOMEM, "out of memory");
  k->v = nv;
  if (!(k->v[k->n] = strdup(key))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  k->n++;
  return KD_OK;
}

static kd_rc delete_present(objstore *st, const char *key) {
  kd_rc rc = objstore_delete(st, key);
  return rc == KD_ERR_NOTFOUND ? KD_OK : rc;
}

kd_rc backup_delete_files(objstore *st, const char *name) {
  char prefix[VELERO_KEY_MAX], mkey[VELERO_KEY_MAX], ckey[VELERO_KEY_MAX];
  struct keys k = {NULL, 0};
  kd_rc rc, first = KD_OK;
  int w = snprintf(prefix, sizeof prefix, "backups/%s/", name);
  if (w < 0 || (size_t)w >= sizeof prefix) return kd_fail(KD_ERR_TOOBIG, "backup name too long");
  if ((rc = velero_backup_key(name, VELERO_BACKUP_METADATA, mkey, sizeof mkey)) ||
      (rc = backup_claim_key(name, ckey, sizeof ckey)))
    return rc;
  if ((rc = delete_present(st, mkey)) != KD_OK) return kd_fail_wrap(rc, "removing %s", mkey);
  if ((rc = objstore_list(st, prefix, '\0', collect, &k)) != KD_OK) goto fail;
  for (size_t i = 0; i < k.n; i++) {
    if (strcmp(k.v[i], ckey) == 0 || strcmp(k.v[i], mkey) == 0) continue;
    if ((rc = delete_present(st, k.v[i])) != KD_OK && first == KD_OK) first = kd_fail_wrap(rc, "removing %s", k.v[i]);
  }
  rc = first;
  if (rc == KD_OK && (rc = delete_present(st, ckey)) != KD_OK) rc = kd_fail_wrap(rc, "removing %s", ckey);
fail:
  for (size_t i = 0; i < k.n; i++) free(k.v[i]);
  free(k.v);
  return rc;
}

kd_rc backup_files_whole(objstore *st, const char *name, bool *whole) {
  static const enum velero_backup_file expected[] = {VELERO_BACKUP_TARBALL, VELERO_BACKUP_RESOURCE_LIST,
                                                     VELERO_BACKUP_RESULTS, VELERO_BACKUP_LOGS};
  char key[VELERO_KEY_MAX];
  json_t *sums = NULL;
  *whole = false;
  kd_rc rc = velero_backup_key(name, VELERO_BACKUP_CHECKSUMS, key, sizeof key);
  if (rc == KD_OK) rc = read_doc(st, key, &sums);
  if (rc == KD_ERR_NOTFOUND || rc == KD_ERR_PARSE) return KD_OK; /* no checksums: not whole */
  if (rc != KD_OK) return rc;
  /* exactly the backup's own four files, whatever else a crafted checksums file lists */
  bool all = true;
  json_t *files = json_object_get(sums, "files");
  for (size_t i = 0; all && i < KD_ARRAY_LEN(expected); i++) {
    uint64_t size = 0;
    if ((rc = velero_backup_key(name, expected[i], key, sizeof key)) != KD_OK) break;
    json_t *want = json_object_get(json_object_get(files, key), "size");
    if (!json_is_integer(want) || json_integer_value(want) < 0) {
      all = false;
      break;
    }
    rc = objstore_head(st, key, &size);
    if (rc == KD_ERR_NOTFOUND || (rc == KD_OK && (uint64_t)json_integer_value(want) != size)) {
      all = false;
      rc = KD_OK;
    }
    if (rc != KD_OK) break;
  }
  json_decref(sums);
  if (rc == KD_OK) *whole = all;
  return rc;
}

/* Remove a velero-backup.json written for uid (a lie once its Backup is not Completed). */
static void remove_late_metadata(objstore *st, const char *ns, const char *name, const char *uid) {
  char mkey[VELERO_KEY_MAX];
  json_t *meta = NULL;
  if (velero_backup_key(name, VELERO_BACKUP_METADATA, mkey, sizeof mkey) != KD_OK) return;
  if (read_doc(st, mkey, &meta) == KD_OK && kd_streq(meta_str(meta, "uid"), uid)) {
    if (objstore_delete(st, mkey) == KD_OK)
      kd_log(KD_LOG_WARN, "backup %s/%s: removed a velero-backup.json written after the backup had failed", ns, name);
    else
      kd_log(KD_LOG_ERROR, "backup %s/%s: could not remove a late velero-backup.json: %s", ns, name, kd_errmsg());
  }
  json_decref(meta);
}

/* How long a Backup left InProgress may wait for its location to answer before it is failed
 * without looking (its files then stay until the Backup is deleted). */
#define OWNER_ABANDONED_PATIENCE_S 3600

static bool conclusive(kd_rc rc) { return rc == KD_OK || rc == KD_ERR_NOTFOUND || rc == KD_ERR_PARSE; }

kd_rc backup_fail_abandoned(kube_client *c, const char *ns, json_t *backup, objstore *store, const char *store_error,
                            const char *reason, const struct fence *fence) {
  const char *name = meta_str(backup, "name");
  char mkey[VELERO_KEY_MAX], done[21], why[300], text[1600];
  json_t *cur = NULL, *stored = NULL, *st = NULL;
  const char *outcome = "";
  kd_rc rc;
  if (!name || (rc = velero_backup_key(name, VELERO_BACKUP_METADATA, mkey, sizeof mkey)))
    return kd_fail(KD_ERR_INVALID, "the Backup has no usable name");
  /* what the server says now, not what a cache remembers */
  if ((rc = kube_get(c, &owner_backup_res, ns, name, &cur)) != KD_OK) {
    if (rc == KD_ERR_NOTFOUND) rc = KD_OK;
    goto out;
  }
  const char *uid = meta_str(cur, "uid");
  if (!vstatus_phase_in(json_string_value(json_object_get(json_object_get(cur, "status"), "phase")), vstatus_in_progress) ||
      !kd_streq(uid, meta_str(backup, "uid")))
    goto out; /* finished meanwhile, or a namesake */
  time_t started = 0;
  bool patient = kd_time_parse(json_string_value(json_object_get(json_object_get(cur, "status"), "startTimestamp")), &started) == KD_OK &&
                 time(NULL) - started < OWNER_ABANDONED_PATIENCE_S;
  bool looked = false; /* the folder was looked at and dealt with */
  if (!store && store_error) {
    rc = kd_fail(KD_ERR_TRANSPORT, "its storage location cannot be opened: %s", store_error);
  } else if (store) {
    rc = read_doc(store, mkey, &stored);
    const char *ph = json_string_value(json_object_get(json_object_get(stored, "status"), "phase"));
    bool whole = false;
    if (rc == KD_OK && kd_streq(meta_str(stored, "uid"), uid) &&
        (kd_streq(ph, VELERO_PHASE_COMPLETED) || kd_streq(ph, VELERO_PHASE_PARTIALLY_FAILED)) &&
        (rc = backup_files_whole(store, name, &whole)) == KD_OK && whole) {
      /* every file was written; only the last status update was lost */
      struct vstatus_write w = {&owner_backup_res, ns, name, json_object_get(stored, "status"), vstatus_in_progress, uid, fence, 60000, NULL};
      rc = vstatus_write(c, &w, NULL);
      if (rc == KD_OK) kd_log(KD_LOG_INFO, "backup %s/%s: found whole in the location after its engine stopped: %s", ns, name, ph);
      goto out;
    }
    bool ours = false;
    if (conclusive(rc) && (rc = backup_files_ours(store, cur, &ours, why, sizeof why)) == KD_OK) {
      if (!ours) {
        kd_log(KD_LOG_WARN, "backup %s/%s: leaving its folder alone: %s", ns, name, why);
        outcome = "; its folder belongs to another Backup and was left alone";
        looked = true;
      } else if ((rc = fence_check(fence, "removing partial files")) == KD_OK &&
                 (rc = backup_delete_files(store, name)) == KD_OK) {
        outcome = "; its partial files were removed";
        looked = true;
      }
    }
  }
  if (rc != KD_OK && !looked) {
    if (rc == KD_ERR_CANCELLED || patient) { /* asked again on the next pass; the Backup stays InProgress */
      rc = kd_fail_wrap(rc, "backup %s/%s, left InProgress: its files cannot be looked at yet", ns, name);
      goto out;
    }
    kd_log(KD_LOG_WARN, "backup %s/%s: its files were not looked at: %s", ns, name, kd_errmsg());
    outcome = "; its files could not be looked at for an hour and may remain (deleting the Backup removes them)";
  }
  kd_time_format(time(NULL), done);
  snprintf(text, sizeof text, "%s%s", reason ? reason : "abandoned", outcome);
  if (!(st = json_pack("{s:s,s:s,s:s}", "phase", VELERO_PHASE_FAILED, "completionTimestamp", done, "failureReason", text))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto out;
  }
  struct vstatus_write w = {&owner_backup_res, ns, name, st, vstatus_in_progress, uid, fence, 60000, NULL};
  if ((rc = vstatus_write(c, &w, NULL)) != KD_OK) goto out;
  kd_log(KD_LOG_WARN, "backup %s/%s: marked Failed: %s", ns, name, text);
  /* a deposed engine may still have written its velero-backup.json after we looked */
  if (store && looked && fence_held(fence)) remove_late_metadata(store, ns, name, uid);
out:
  json_decref(cur);
  json_decref(stored);
  json_decref(st);
  return rc;
}

kd_rc backup_undo_metadata(kube_client *c, const char *ns, json_t *backup, objstore *store, const char *wrote_phase) {
  const char *name = meta_str(backup, "name"), *uid = meta_str(backup, "uid");
  json_t *cur = NULL;
  if (!name || !uid) return kd_fail(KD_ERR_INVALID, "the Backup has no name or uid");
  kd_rc rc = kube_get(c, &owner_backup_res, ns, name, &cur);
  if (rc != KD_OK && rc != KD_ERR_NOTFOUND) return kd_fail_wrap(rc, "reading Backup %s/%s", ns, name);
  const char *ph = json_string_value(json_object_get(json_object_get(cur, "status"), "phase"));
  bool lie = rc == KD_ERR_NOTFOUND || !kd_streq(meta_str(cur, "uid"), uid) ||
             !(vstatus_phase_in(ph, vstatus_in_progress) || kd_streq(ph, wrote_phase));
  json_decref(cur);
  if (!lie) return KD_OK; /* still ours to finish: whoever leads next adopts the whole backup */
  objstore_set_guard(store, NULL, NULL); /* removing our own file is allowed after the term ended */
  remove_late_metadata(store, ns, name, uid);
  return KD_OK;
}
