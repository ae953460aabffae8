/* retention.c — keep the last N (see retention.h). kcm keeps backups only by their TTL (720 h);
 * with `kcmdr.io/keep-last: N` on a ManagementBackup the controller also asks for the deletion
 * of its older scheduled backups, through DeleteBackupRequests as `velero backup delete` does, so
 * whichever engine runs (kcmdr's or Velero) deletes them by its own rules. */
#include "retention.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "mgmtbackup.h"
#include "velero.h"

static const struct kube_res retention_restore_res = {"velero.io", "v1", "restores", "Restore", true};
static const struct kube_res retention_dbr_res = {"velero.io", "v1", "deletebackuprequests", "DeleteBackupRequest", true};

static const char *meta_str(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(o, "metadata"), k));
}
static const char *phase_of(json_t *o) { return json_string_value(json_object_get(json_object_get(o, "status"), "phase")); }

kd_rc retention_keep_last(json_t *mb, long *keep) {
  *keep = 0;
  json_t *v = json_object_get(json_object_get(json_object_get(mb, "metadata"), "annotations"), RETENTION_ANNOTATION);
  if (!v) return KD_OK;
  const char *s = json_string_value(v);
  char *end = NULL;
  errno = 0;
  long n = s && *s >= '0' && *s <= '9' ? strtol(s, &end, 10) : -1;
  if (n < 1 || n > RETENTION_KEEP_MAX || errno || !end || *end) {
    if (!s) s = "(not a string)";
    int shown = (int)kd_utf8_cut(s, strnlen(s, 40)); /* the message becomes an Event: UTF-8 */
    return kd_fail(KD_ERR_INVALID, "annotation %s: \"%.*s\" is not a whole number from 1 to %d: no backup is deleted",
                   RETENTION_ANNOTATION, shown, s, RETENTION_KEEP_MAX);
  }
  *keep = n;
  return KD_OK;
}

const char *retention_reader(json_t *restores, const char *backup) {
  size_t i;
  json_t *r;
  if (!backup) return NULL;
  json_array_foreach(restores, i, r) {
    const char *b = json_string_value(json_object_get(json_object_get(r, "spec"), "backupName"));
    if (kd_streq(b, backup) && !velero_phase_terminal(phase_of(r))) return meta_str(r, "name") ? meta_str(r, "name") : "";
  }
  return NULL;
}

struct candidate {
  json_t *backup; /* borrowed */
  time_t t;       /* from its name */
  bool ok;        /* Completed or PartiallyFailed */
  bool go;        /* to be deleted */
};

/* Was b made by sync from a bucket rather than by this cluster's schedule? kcmdr's engine marks
 * what it syncs; Velero's sync marks nothing, but the API server stamps a synced object's
 * creationTimestamp at sync time, after the backup had completed elsewhere. A Backup of this
 * cluster completes after its object is created (clock skew can only make one look synced:
 * kept, never deleted). */
static bool foreign(json_t *b) {
  time_t created, completed;
  const char *c = meta_str(b, "creationTimestamp");
  const char *d = json_string_value(json_object_get(json_object_get(b, "status"), "completionTimestamp"));
  return backup_is_synced(b) || (c && d && kd_time_parse(c, &created) == KD_OK && kd_time_parse(d, &completed) == KD_OK &&
                                 completed < created);
}

static int newest_first(const void *a, const void *b) {
  const struct candidate *x = a, *y = b;
  return x->t < y->t ? 1 : x->t > y->t ? -1 : strcmp(meta_str(x->backup, "name"), meta_str(y->backup, "name"));
}

kd_rc retention_plan(const char *mb, long keep, json_t *backups, json_t *restores, json_t **doomed) {
  struct candidate *c = NULL;
  size_t n = 0, i;
  json_t *b, *out = json_array();
  char label[MB_LABEL_MAX + 1];
  kd_rc rc = KD_OK;
  *doomed = NULL;
  if (!out || (json_array_size(backups) && !(c = calloc(json_array_size(backups), sizeof *c)))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  mb_bounded(mb, MB_LABEL_MAX, label);
  json_array_foreach(backups, i, b) {
    const char *owner = json_string_value(json_object_get(json_object_get(json_object_get(b, "metadata"), "labels"), MB_LABEL_BACKUP));
    const char *ph = phase_of(b);
    time_t t;
    if (!kd_streq(owner, label) || !mb_parse_scheduled_name(mb, meta_str(b, "name"), &t)) continue;
    if (foreign(b) || json_object_get(json_object_get(b, "metadata"), "deletionTimestamp")) continue;
    bool ok = kd_streq(ph, VELERO_PHASE_COMPLETED) || kd_streq(ph, VELERO_PHASE_PARTIALLY_FAILED);
    bool failed = kd_streq(ph, VELERO_PHASE_FAILED) || kd_streq(ph, VELERO_PHASE_FAILED_VALIDATION);
    if (ok || failed) c[n++] = (struct candidate){b, t, ok, false};
  }
  if (n) qsort(c, n, sizeof *c, newest_first);
  long kept = 0;
  bool newest_ok_seen = false;
  for (i = 0; i < n; i++) {
    bool beyond = c[i].ok ? ++kept > keep : newest_ok_seen;
    if (c[i].ok) newest_ok_seen = true;
    c[i].go = beyond && !retention_reader(restores, meta_str(c[i].backup, "name"));
  }
  for (i = n; i-- > 0 && json_array_size(out) < RETENTION_DELETES_MAX;) /* oldest first */
    if (c[i].go && json_array_append(out, c[i].backup)) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
  *doomed = out;
  out = NULL;
fail:
  free(c);
  json_decref(out);
  return rc;
}

static bool collect(json_t *item, void *ud) { return json_array_append((json_t *)ud, item) == 0; }

/* kube_list callback: keep only the Restores that have not ended (the only ones that protect a
 * Backup), at most RETENTION_READERS_MAX; past that the listing stops and *over is set. */
struct readers {
  json_t *list;
  bool over, nomem; /* a list cut short protects nothing: either fails the pass */
};
static bool collect_unended(json_t *item, void *ud) {
  struct readers *r = ud;
  if (velero_phase_terminal(phase_of(item))) return true;
  if (json_array_size(r->list) >= RETENTION_READERS_MAX) return !(r->over = true);
  if (json_array_append(r->list, item)) return !(r->nomem = true);
  return true;
}

json_t *retention_request(const char *ns, json_t *backup) {
  const char *uid = meta_str(backup, "uid");
  char name[RETENTION_REQUEST_NAME_MAX + 1];
  json_t *o = uid && strlen(uid) <= 63 ? backup_delete_request(ns, backup) : NULL, *md = json_object_get(o, "metadata");
  const char *gen = json_string_value(json_object_get(md, "generateName")); /* "<name, at most 57>-" */
  if (!gen) goto fail;
  snprintf(name, sizeof name, "%s%s", gen, uid);
  for (char *p = name; *p; p++) *p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p; /* a DNS name */
  if (json_object_set_new(md, "name", json_string(name)) || json_object_del(md, "generateName")) goto fail;
  return o;
fail:
  json_decref(o);
  return NULL;
}

/* The DeleteBackupRequests (any phase, anyone's) for the uids of doomed, in one list call. */
static kd_rc requests_for(kube_client *c, const char *ns, json_t *doomed, json_t *found) {
  char sel[sizeof BACKUP_UID_LABEL + 8 + RETENTION_DELETES_MAX * 64];
  size_t i, n = 0;
  json_t *b;
  int w = snprintf(sel, sizeof sel, "%s in (", BACKUP_UID_LABEL);
  json_array_foreach(doomed, i, b) {
    const char *uid = meta_str(b, "uid");
    if (!uid || strlen(uid) > 63 || i >= RETENTION_DELETES_MAX) continue; /* no label value: never asked for */
    w += snprintf(sel + w, sizeof sel - (size_t)w, "%s%s", n++ ? "," : "", uid);
  }
  if (!n) return KD_OK;
  snprintf(sel + w, sizeof sel - (size_t)w, ")");
  struct kube_list_opts lo = {.label_selector = sel};
  return kube_list(c, &retention_dbr_res, ns, &lo, collect, found, NULL);
}

/* Does a request in found (from requests_for) name the Backup with this uid? */
static bool requested(json_t *found, const char *uid) {
  size_t i;
  json_t *d;
  json_array_foreach(found, i, d) {
    if (kd_streq(json_string_value(json_object_get(json_object_get(json_object_get(d, "metadata"), "labels"), BACKUP_UID_LABEL)), uid))
      return true;
  }
  return false;
}

kd_rc retention_apply(kube_client *c, const char *ns, const char *mb, long keep, json_t *backups, int *asked) {
  json_t *restores = json_array(), *found = json_array(), *doomed = NULL, *b;
  size_t i;
  int made = 0;
  kd_rc rc;
  if (asked) *asked = 0;
  if (!restores || !found) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  /* without Restores the plan is a superset: when it is empty, nothing is listed */
  if ((rc = retention_plan(mb, keep, backups, NULL, &doomed)) != KD_OK || !json_array_size(doomed)) goto fail;
  json_decref(doomed);
  doomed = NULL;
  struct readers rd = {restores, false, false};
  if ((rc = kube_list(c, &retention_restore_res, ns, NULL, collect_unended, &rd, NULL)) != KD_OK || rd.over || rd.nomem) {
    rc = rc != KD_OK ? kd_fail_wrap(rc, "listing the Restores (a Backup being restored is never deleted)")
         : rd.over   ? kd_fail(KD_ERR_TOOBIG, "more than %d Restores have not ended: no backup is deleted", RETENTION_READERS_MAX)
                     : kd_fail(KD_ERR_NOMEM, "out of memory listing the Restores");
    goto fail;
  }
  if ((rc = retention_plan(mb, keep, backups, restores, &doomed)) != KD_OK || !json_array_size(doomed)) goto fail;
  if ((rc = requests_for(c, ns, doomed, found)) != KD_OK) {
    rc = kd_fail_wrap(rc, "listing the DeleteBackupRequests of ManagementBackup %s's old backups", mb);
    goto fail;
  }
  json_array_foreach(doomed, i, b) {
    const char *uid = meta_str(b, "uid");
    /* a request without the uid could hit a later Backup of that name */
    if (!uid || strlen(uid) > 63 || requested(found, uid)) continue;
    /* named after the uid: a second asker (another replica, a deposed leader, a repeat after a
     * lost answer) meets 409 AlreadyExists instead of making a second request */
    json_t *req = retention_request(ns, b), *out = NULL;
    struct kube_req_opts ro = {.idempotent = true};
    rc = req ? kube_create_ex(c, &retention_dbr_res, ns, req, &ro, &out) : kd_fail(KD_ERR_NOMEM, "out of memory");
    json_decref(req);
    json_decref(out);
    if (rc == KD_ERR_CONFLICT) { /* asked already, by another */
      rc = KD_OK;
      continue;
    }
    if (rc != KD_OK) {
      rc = kd_fail_wrap(rc, "asking for the deletion of Backup %s", meta_str(b, "name"));
      goto fail;
    }
    made++;
    kd_log(KD_LOG_INFO, "ManagementBackup %s: asked for the deletion of Backup %s (%s, beyond %s=%ld)", mb,
           meta_str(b, "name"), phase_of(b), RETENTION_ANNOTATION, keep);
  }
fail:
  if (asked) *asked = made;
  json_decref(doomed);
  json_decref(found);
  json_decref(restores);
  return rc;
}
