/* mgmtbackup.c — ManagementBackup rules without I/O (see mgmtbackup.h). */
#include "mgmtbackup.h"

#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "velero.h"

static const char *meta_str(json_t *obj, const char *key) {
  return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

bool mb_label_value_valid(const char *v) {
  size_t n = v ? strlen(v) : 0;
  if (n == 0 || n > MB_LABEL_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && ((i == 0 || i == n - 1) || (c != '-' && c != '_' && c != '.'))) return false;
  }
  return true;
}

/* pairs are kept as "key_value" strings, as kcm sorts them; '_' cannot occur in a label key.
 * A value no label can hold (a hostile provider name, a 64+ character ClusterDeployment name)
 * selects nothing and would make the whole Backup invalid: it is left out. -1 on no memory. */
static int add_pair(json_t *set, const char *k, json_t *v) {
  const char *s = json_string_value(v);
  if (!s || json_string_length(v) != strlen(s) || !mb_label_value_valid(s)) return 0;
  char buf[600];
  snprintf(buf, sizeof buf, "%s_%s", k, s);
  return json_object_set_new(set, buf, json_true());
}

static int add_fixed(json_t *set, const char *k, const char *v) {
  json_t *s = json_string(v);
  int rc = s ? add_pair(set, k, s) : -1;
  json_decref(s);
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* note in skipped (if any, at most MB_SKIPPED_MAX entries) that what of ns/name cannot be a label value */
static int note_skipped(json_t *skipped, const char *kind, const char *ns, const char *name, const char *what, json_t *v) {
  const char *s = json_string_value(v);
  if (!skipped || (s && json_string_length(v) == strlen(s) && mb_label_value_valid(s))) return 0;
  if (json_array_size(skipped) >= MB_SKIPPED_MAX) return 0;
  char nm[101], val[71], msg[600];
  snprintf(nm, sizeof nm, "%s", name ? name : ""); /* cut at a character boundary, not inside one */
  nm[kd_utf8_cut(nm, strlen(nm))] = '\0';
  snprintf(val, sizeof val, "%s", s ? s : "");
  val[kd_utf8_cut(val, strlen(val))] = '\0';
  snprintf(msg, sizeof msg, "%s %s/%s: %s \"%s\"%s cannot be a label value (at most 63 characters: letters, digits, "
           "'-', '_', '.'); the objects it labels are not selected", kind, ns ? ns : "", nm, what, val,
           s && json_string_length(v) != strlen(s) ? " (with a NUL)" : "");
  size_t i;
  json_t *e;
  json_array_foreach(skipped, i, e) if (kd_streq(json_string_value(e), msg)) return 0; /* said once */
  json_t *m = json_string(msg);
  if (!m) return 0; /* not UTF-8 after all: the value is still left out, only unsaid */
  return json_array_append_new(skipped, m) ? -1 : 0;
}

json_t *mb_selectors(json_t *cds, json_t *cts, bool compact, json_t *skipped) {
  json_t *set = json_object(), *out = NULL, *tmpl_providers = json_object();
  const char **keys = NULL;
  if (!set || !tmpl_providers || !cds || !cts) goto done;
  if (add_fixed(set, MB_LABEL_COMPONENT, MB_LABEL_COMPONENT_VALUE) || add_fixed(set, "controller.cert-manager.io/fao", "true") ||
      add_fixed(set, "cluster.x-k8s.io/provider", "cluster-api"))
    goto done;
  size_t i;
  json_t *o;
  json_array_foreach(cts, i, o) { /* "ns/name" -> providers */
    char key[600];
    snprintf(key, sizeof key, "%s/%s", meta_str(o, "namespace") ? meta_str(o, "namespace") : "", meta_str(o, "name") ? meta_str(o, "name") : "");
    json_t *provs = json_object_get(json_object_get(o, "status"), "providers");
    if (json_is_array(provs) && json_object_set(tmpl_providers, key, provs)) goto done;
  }
  json_array_foreach(cds, i, o) {
    json_t *name = json_object_get(json_object_get(o, "metadata"), "name");
    const char *ns = meta_str(o, "namespace");
    if (add_pair(set, "helm.toolkit.fluxcd.io/name", name) || add_pair(set, "cluster.x-k8s.io/cluster-name", name) ||
        note_skipped(skipped, "ClusterDeployment", ns, json_string_value(name), "its name", name))
      goto done;
    const char *tmpl = json_string_value(json_object_get(json_object_get(o, "spec"), "template"));
    if (!tmpl) continue;
    char key[600];
    snprintf(key, sizeof key, "%s/%s", ns ? ns : "", tmpl);
    size_t k;
    json_t *p;
    json_array_foreach(json_object_get(tmpl_providers, key), k, p) {
      if (add_pair(set, "cluster.x-k8s.io/provider", p) || note_skipped(skipped, "ClusterTemplate", ns, tmpl, "provider", p))
        goto done;
    }
  }
  size_t n = json_object_size(set), j = 0;
  keys = malloc((n + 1) * sizeof *keys);
  out = json_array();
  if (!keys || !out) goto fail;
  const char *kv;
  json_t *unused;
  json_object_foreach(set, kv, unused) keys[j++] = kv;
  qsort(keys, n, sizeof *keys, cmp_str);
  json_t *group = NULL; /* compact: the values array of the current key */
  char cur[300] = "";
  for (j = 0; j < n; j++) {
    const char *us = strchr(keys[j], '_');
    char k[300];
    snprintf(k, sizeof k, "%.*s", (int)(us - keys[j]), keys[j]);
    const char *v = us + 1;
    json_t *sel;
    if (!compact) {
      sel = json_pack("{s:{s:s}}", "matchLabels", k, v);
      if (!sel || json_array_append_new(out, sel)) goto fail;
      continue;
    }
    if (strcmp(k, cur) != 0) {
      snprintf(cur, sizeof cur, "%s", k);
      group = json_array();
      sel = json_pack("{s:[{s:s,s:s,s:o}]}", "matchExpressions", "key", k, "operator", "In", "values", group);
      if (!sel || json_array_append_new(out, sel)) goto fail;
    }
    if (json_array_append_new(group, json_string(v))) goto fail;
  }
  goto done;
fail:
  json_decref(out);
  out = NULL;
done:
  free(keys);
  json_decref(set);
  json_decref(tmpl_providers);
  return out;
}

json_t *mb_backup_object(const char *name, const char *ns, const char *mb_name, const char *bsl, json_t *selectors) {
  char label[MB_LABEL_MAX + 1];
  mb_bounded(mb_name, MB_LABEL_MAX, label);
  return json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:[s],s:[s],s:s,s:s,s:O}}", "apiVersion", "velero.io/v1", "kind",
                   "Backup", "metadata", "name", name, "namespace", ns, "labels", MB_LABEL_BACKUP, label, "spec",
                   "includedNamespaces", "*", "excludedResources", "clusters.cluster.x-k8s.io", "ttl", "720h0m0s",
                   "storageLocation", bsl, "orLabelSelectors", selectors);
}

void mb_bounded(const char *in, size_t max, char *out) {
  size_t len = strlen(in);
  if (len <= max) {
    memcpy(out, in, len + 1);
    return;
  }
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)in, len, d);
  size_t keep = max - 9;
  /* "a.-hash" is no valid name: what is kept ends with a letter or digit */
  while (keep > 0 && (in[keep - 1] == '.' || in[keep - 1] == '-' || in[keep - 1] == '_')) keep--;
  memcpy(out, in, keep);
  snprintf(out + keep, 10, "-%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

#define MB_STAMP_LEN 14 /* YYYYMMDDhhmmss */

/* the part of a scheduled name before "-<stamp>": mb, bounded so the whole name fits */
static void scheduled_prefix(const char *mb, char out[MB_NAME_MAX + 1]) { /* out: MB_NAME_MAX + 1 */
  mb_bounded(mb, MB_NAME_MAX - 1 - MB_STAMP_LEN, out);
}

void mb_scheduled_name(const char *mb, time_t t, char *out) {
  char prefix[MB_NAME_MAX + 1];
  struct tm tm;
  int y;
  scheduled_prefix(mb, prefix);
  if (!gmtime_r(&t, &tm) || (y = tm.tm_year + 1900) < 0 || y > 9999) { /* no stamp fits: the epoch's */
    memset(&tm, 0, sizeof tm);
    tm.tm_year = 70, tm.tm_mday = 1, y = 1970;
  }
  char stamp[32];
  snprintf(stamp, sizeof stamp, "%04d%02d%02d%02d%02d%02d", y, (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100,
           tm.tm_min % 100, tm.tm_sec % 100);
  size_t n = strlen(prefix); /* at most MB_NAME_MAX - 15: the stamp always fits */
  prefix[n] = '-';
  memcpy(prefix + n + 1, stamp, MB_STAMP_LEN + 1);
  memcpy(out, prefix, n + 2 + MB_STAMP_LEN);
}

bool mb_parse_scheduled_name(const char *mb, const char *backup, time_t *t) {
  char prefix[MB_NAME_MAX + 1];
  scheduled_prefix(mb, prefix);
  size_t ml = strlen(prefix);
  if (!backup || strncmp(backup, prefix, ml) != 0 || backup[ml] != '-' || strlen(backup + ml + 1) != MB_STAMP_LEN)
    return false;
  const char *ts = backup + ml + 1;
  for (int i = 0; i < 14; i++)
    if (ts[i] < '0' || ts[i] > '9') return false;
  struct tm tm = {0};
  tm.tm_year = (ts[0] - '0') * 1000 + (ts[1] - '0') * 100 + (ts[2] - '0') * 10 + (ts[3] - '0') - 1900;
  tm.tm_mon = (ts[4] - '0') * 10 + (ts[5] - '0') - 1;
  tm.tm_mday = (ts[6] - '0') * 10 + (ts[7] - '0');
  tm.tm_hour = (ts[8] - '0') * 10 + (ts[9] - '0');
  tm.tm_min = (ts[10] - '0') * 10 + (ts[11] - '0');
  tm.tm_sec = (ts[12] - '0') * 10 + (ts[13] - '0');
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return false;
  *t = timegm(&tm);
  return true;
}

json_t *mb_pick_restored(const char *mb, bool scheduled, json_t *backups, time_t now) {
  size_t i;
  json_t *b, *best = NULL;
  time_t best_t = 0;
  char label[MB_LABEL_MAX + 1];
  mb_bounded(mb, MB_LABEL_MAX, label);
  json_array_foreach(backups, i, b) {
    const char *name = meta_str(b, "name");
    const char *owner = json_string_value(json_object_get(json_object_get(json_object_get(b, "metadata"), "labels"), MB_LABEL_BACKUP));
    if (!kd_streq(owner, label)) continue;
    if (!scheduled) {
      if (kd_streq(name, mb)) return b;
      continue;
    }
    time_t t;
    if (!mb_parse_scheduled_name(mb, name, &t) || t > now) continue;
    if (!best || t > best_t) {
      best = b;
      best_t = t;
    }
  }
  return best;
}

/* ---- the reconcile plan ---- */

static bool time_field(json_t *o, const char *key, time_t *t) {
  const char *s = json_string_value(json_object_get(o, key));
  time_t v;
  if (!s || kd_time_parse(s, &v) != KD_OK) return false;
  *t = v;
  return true;
}

static int set_time(json_t *st, const char *key, time_t t) {
  char buf[21];
  kd_time_format(t, buf);
  return json_object_set_new(st, key, json_string(buf));
}

static json_t *find_backup(json_t *backups, const char *name) {
  size_t i;
  json_t *b;
  json_array_foreach(backups, i, b) {
    if (kd_streq(meta_str(b, "name"), name)) return b;
  }
  return NULL;
}

static bool owned(json_t *b, const char *label) {
  return kd_streq(json_string_value(json_object_get(json_object_get(json_object_get(b, "metadata"), "labels"), MB_LABEL_BACKUP)),
                  label);
}

/* status.error and the Event reason; the message is formatted into the plan's status */
static kd_rc plan_error(struct mb_plan *p, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static kd_rc plan_error(struct mb_plan *p, const char *reason, const char *fmt, ...) {
  char msg[1500];
  va_list ap;
  va_start(ap, fmt);
  int full = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (full >= (int)sizeof msg) msg[kd_utf8_cut(msg, sizeof msg - 1)] = '\0'; /* never half a character */
  p->reason = reason;
  if (json_object_set_new(p->status, "error", json_string(msg))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* status.lastBackup = the status of the Backup status.lastBackupName names, when listed */
static kd_rc mirror_last(struct mb_plan *p, json_t *backups) {
  json_t *b = find_backup(backups, json_string_value(json_object_get(p->status, "lastBackupName")));
  json_t *bst = json_object_get(b, "status");
  if (json_is_object(bst) && json_object_set(p->status, "lastBackup", bst)) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

static kd_rc set_last(struct mb_plan *p, const char *name, time_t t) {
  if (json_object_set_new(p->status, "lastBackupName", json_string(name)) || set_time(p->status, "lastBackupTime", t))
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* when a listed Backup ran: its start, else its creation, else the time in its name */
static time_t backup_time(const char *mb, json_t *b) {
  time_t t = 0;
  if (time_field(json_object_get(b, "status"), "startTimestamp", &t) ||
      time_field(json_object_get(b, "metadata"), "creationTimestamp", &t) || mb_parse_scheduled_name(mb, meta_str(b, "name"), &t))
    return t;
  return 0;
}

static bool pending_fresh(const struct mb_input *in) {
  return in->pending && in->now - in->pending_time <= MB_CACHE_LAG_S && !find_backup(in->backups, in->pending);
}

static kd_rc plan_restored(const struct mb_input *in, struct mb_plan *p, const char *name, const char *sched) {
  bool scheduled = sched && sched[0];
  json_t *b = mb_pick_restored(name, scheduled, in->backups, in->now);
  kd_rc rc;
  int wait = in->restore_wait_s > 0 ? in->restore_wait_s : MB_RESTORE_WAIT_S;
  time_t created = in->now;
  time_field(json_object_get(in->mb, "metadata"), "creationTimestamp", &created);
  int64_t waited = (int64_t)(in->now - created);
  /* A one-shot has one Backup, its namesake: once listed, it is the one. A schedule's Backups
   * come back in any order within a sync pass, so its newest is picked only once a whole pass
   * has ended since that Backup object was made (lastSyncedTime is written when a pass ends: all
   * that was in the bucket is listed then), or since the restore, or when the wait is over.
   * A Backup synced before the restore began is thus picked at once: waiting for a pass after
   * the restore held the status back a whole sync period (issue 13, item 5). */
  if (b && scheduled && waited < wait) {
    time_t bc;
    bool pass_done = in->bsl_synced > created ||
                     (time_field(json_object_get(b, "metadata"), "creationTimestamp", &bc) && in->bsl_synced >= bc);
    if (!pass_done) b = NULL;
  }
  if (b) {
    if ((rc = set_last(p, meta_str(b, "name"), backup_time(name, b))) || (rc = mirror_last(p, in->backups))) return rc;
    p->drop_restore_labels = true;
    return KD_OK;
  }
  /* its Backups come back with the storage location's sync: wait for them, never re-create */
  if (waited < wait) {
    p->requeue_s = wait - waited < 10 ? wait - waited : 10;
    return KD_OK;
  }
  const char *from = json_string_value(json_object_get(json_object_get(json_object_get(in->mb, "metadata"), "labels"), VELERO_LABEL_BACKUP));
  char want[MB_NAME_MAX + 64];
  if (scheduled) snprintf(want, sizeof want, "none of its Backups %s-<timestamp> has", name);
  else snprintf(want, sizeof want, "its Backup %s has not", name);
  rc = plan_error(p, "RestoredBackupsMissing",
                  "restored from backup %s, but %s come back within %ds: restored Backups return when the "
                  "BackupStorageLocation syncing them is Available; %s",
                  from ? from : "?", want, wait,
                  scheduled ? "the schedule goes on from now" : "no new Backup is made while its name may still be in the bucket");
  if (rc) return rc;
  if (scheduled) p->drop_restore_labels = true; /* new names cannot collide: the schedule resumes */
  else p->requeue_s = 60;
  return KD_OK;
}

static kd_rc plan_on_demand(const struct mb_input *in, struct mb_plan *p, const char *name, const char *label) {
  json_t *b = find_backup(in->backups, name);
  kd_rc rc;
  if (b && !owned(b, label))
    return plan_error(p, "BackupNameTaken",
                      "a Backup named %s already exists and was not made for this ManagementBackup (it lacks the label "
                      "%s=%s): rename the ManagementBackup or delete that Backup",
                      name, MB_LABEL_BACKUP, label);
  if (b) {
    time_t t;
    if (!kd_streq(json_string_value(json_object_get(p->status, "lastBackupName")), name) ||
        !time_field(p->status, "lastBackupTime", &t)) {
      if ((rc = set_last(p, name, backup_time(name, b)))) return rc;
    }
    return mirror_last(p, in->backups);
  }
  if (pending_fresh(in) && kd_streq(in->pending, name)) return set_last(p, name, in->pending_time);
  if (json_string_value(json_object_get(p->status, "lastBackupName"))) return KD_OK; /* made once; deleted since */
  p->create = true;
  snprintf(p->create_name, sizeof p->create_name, "%s", name);
  json_object_del(p->status, "lastBackup");
  return set_last(p, name, in->now);
}

static kd_rc plan_scheduled(const struct mb_input *in, struct mb_plan *p, const char *name, const char *label,
                            json_t *sched_json) {
  const char *sched = json_string_value(sched_json);
  cron_schedule *cs = NULL;
  kd_rc rc = KD_OK;
  json_object_del(p->status, "nextAttempt");
  /* the whole string, as robfig sees it: a NUL inside is part of the spec, not its end */
  if (cron_parse_n(sched, json_string_length(sched_json), &cs) != KD_OK)
    return plan_error(p, "InvalidSchedule", "invalid schedule \"%s\": %s", sched, kd_errmsg());
  /* the last backup: the newest of the status (not in the future), our listed Backups, and
   * the one this process just created (only while the cache may lag) */
  char last[MB_NAME_MAX + 1] = "";
  time_t last_t = 0, t;
  const char *st_last = json_string_value(json_object_get(p->status, "lastBackupName"));
  if (time_field(p->status, "lastBackupTime", &t) && t <= in->now && st_last) {
    snprintf(last, sizeof last, "%s", st_last);
    last_t = t;
  }
  bool running = false;
  const char *stuck = NULL;
  int64_t wake = 60; /* a running Backup is looked at again at least this often (s) */
  size_t i;
  json_t *b;
  json_array_foreach(in->backups, i, b) {
    if (!owned(b, label)) continue;
    const char *phase = json_string_value(json_object_get(json_object_get(b, "status"), "phase"));
    bool synced = json_object_get(json_object_get(json_object_get(b, "metadata"), "annotations"), VELERO_SYNCED_ANNOTATION);
    if (velero_phase_running(phase) && !(synced && (!phase || !phase[0]))) {
      running = true;
      time_t c;
      if ((!phase || !phase[0] || strcmp(phase, VELERO_PHASE_NEW) == 0) && time_field(json_object_get(b, "metadata"), "creationTimestamp", &c)) {
        if (in->now - c > MB_NOT_STARTED_S) stuck = meta_str(b, "name");
        else if (c + MB_NOT_STARTED_S + 1 - in->now < wake) wake = c + MB_NOT_STARTED_S + 1 - in->now;
      }
    }
    if (mb_parse_scheduled_name(name, meta_str(b, "name"), &t) && t <= in->now && (!last[0] || t > last_t)) {
      snprintf(last, sizeof last, "%s", meta_str(b, "name"));
      last_t = t;
    }
  }
  if (pending_fresh(in)) {
    running = true;
    if (in->pending_time + MB_CACHE_LAG_S + 1 - in->now < wake) wake = in->pending_time + MB_CACHE_LAG_S + 1 - in->now;
    if (!last[0] || in->pending_time >= last_t) {
      snprintf(last, sizeof last, "%s", in->pending);
      last_t = in->pending_time;
    }
  }
  time_t base = last[0] ? last_t : in->now;
  if (!last[0]) time_field(json_object_get(in->mb, "metadata"), "creationTimestamp", &base);
  if (last[0] && (rc = set_last(p, last, last_t))) goto done;
  int64_t next = cron_next(cs, base);
  if (next && in->now >= next && !running && !in->regions_running && !in->restore_running) {
    mb_scheduled_name(name, in->now, p->create_name);
    json_t *same = find_backup(in->backups, p->create_name);
    if (same && !owned(same, label)) {
      rc = plan_error(p, "BackupNameTaken", "a Backup named %s already exists and was not made for this ManagementBackup",
                      p->create_name);
      p->requeue_s = 1;
      goto done;
    }
    p->create = !same; /* one made this very second is ours already */
    if (p->create) json_object_del(p->status, "lastBackup");
    if ((rc = set_last(p, p->create_name, in->now))) goto done;
    next = cron_next(cs, in->now);
  }
  if (!next) {
    rc = plan_error(p, "InvalidSchedule", "schedule \"%s\" has no activation in the next five years after %s", sched,
                    last[0] ? json_string_value(json_object_get(p->status, "lastBackupTime")) : "its creation");
    goto done;
  }
  if (set_time(p->status, "nextAttempt", (time_t)next)) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto done;
  }
  if (stuck) {
    rc = plan_error(p, "BackupNotStarted",
                    "Backup %s has been New for more than %d minutes and blocks the schedule: is a Velero server or "
                    "kcmdr's builtin engine running?",
                    stuck, MB_NOT_STARTED_S / 60);
    p->requeue_s = 60;
  } else if (in->now >= next && (running || in->regions_running || in->restore_running)) {
    p->waiting = true;
    p->requeue_s = wake > 0 ? wake : 1; /* the clocks above end the wait even if nothing changes */
    if (in->restore_running && p->requeue_s > MB_RESTORE_POLL_S) p->requeue_s = MB_RESTORE_POLL_S; /* no watch wakes it */
  } else {
    p->requeue_s = next - in->now;
  }
  if (rc == KD_OK) rc = mirror_last(p, in->backups);
done:
  cron_free(cs);
  return rc;
}

kd_rc mb_plan_reconcile(const struct mb_input *in, struct mb_plan *out) {
  memset(out, 0, sizeof *out);
  json_t *cur = json_object_get(in->mb, "status");
  out->status = json_is_object(cur) ? json_deep_copy(cur) : json_object();
  if (!out->status) return kd_fail(KD_ERR_NOMEM, "out of memory");
  json_object_del(out->status, "error");
  const char *name = meta_str(in->mb, "name");
  json_t *labels = json_object_get(json_object_get(in->mb, "metadata"), "labels");
  json_t *sched_json = json_object_get(json_object_get(in->mb, "spec"), "schedule");
  const char *sched = json_string_value(sched_json);
  char label[MB_LABEL_MAX + 1];
  kd_rc rc;
  if (!name) {
    rc = kd_fail(KD_ERR_INVALID, "ManagementBackup without a name");
    goto fail;
  }
  mb_bounded(name, MB_LABEL_MAX, label);
  if (json_object_get(labels, VELERO_LABEL_RESTORE) && json_object_get(labels, VELERO_LABEL_BACKUP))
    rc = plan_restored(in, out, name, json_string_length(sched_json) > 0 ? (sched && sched[0] ? sched : "?") : NULL);
  else if (json_string_length(sched_json) > 0) /* "\u0000@daily" is a (bad) schedule, not on demand */
    rc = plan_scheduled(in, out, name, label, sched_json);
  else
    rc = plan_on_demand(in, out, name, label);
  if (rc == KD_OK) return KD_OK;
fail:
  mb_plan_free(out);
  return rc;
}

void mb_plan_free(struct mb_plan *p) {
  json_decref(p->status);
  p->status = NULL;
}

/* ---- kcm regions ---- */

static const char *cd_region(json_t *cd) {
  json_t *r = json_object_get(json_object_get(cd, "status"), "region");
  const char *s = json_string_value(r);
  return s && s[0] && json_string_length(r) == strlen(s) ? s : NULL;
}

json_t *mb_regions_in_use(json_t *cds) {
  json_t *set = json_object(), *out = json_array();
  size_t i;
  json_t *o;
  if (!set || !out) goto fail;
  json_array_foreach(cds, i, o) {
    const char *r = cd_region(o);
    if (r && json_object_set_new(set, r, json_true())) goto fail;
  }
  size_t n = json_object_size(set), j = 0;
  const char **keys = malloc((n + 1) * sizeof *keys);
  if (!keys) goto fail;
  const char *k;
  json_t *unused;
  json_object_foreach(set, k, unused) keys[j++] = k;
  qsort(keys, n, sizeof *keys, cmp_str);
  for (j = 0; j < n; j++) {
    if (json_array_append_new(out, json_string(keys[j]))) {
      free(keys);
      goto fail;
    }
  }
  free(keys);
  json_decref(set);
  return out;
fail:
  json_decref(set);
  json_decref(out);
  return NULL;
}

bool mb_region_unusable(const char *region, char *msg, size_t n) {
  if (mb_label_value_valid(region)) return false;
  char shown[80];
  snprintf(shown, sizeof shown, "%s", region ? region : "");
  shown[kd_utf8_cut(shown, strlen(shown))] = '\0';
  snprintf(msg, n, "region \"%s\"%s cannot be a label value (at most 63 characters: letters, digits, '-', '_', '.'), "
           "so no regional Backup can carry it: its ClusterDeployments are backed up with the management cluster",
           shown, strlen(shown) < strlen(region ? region : "") ? "..." : "");
  return true;
}

json_t *mb_selectors_for(json_t *cds, json_t *cts, const char *region, bool compact, json_t *skipped) {
  json_t *mine = json_array(), *out = NULL;
  size_t i;
  json_t *o;
  if (!mine || !cds) goto done;
  bool want_mgmt = !region || !region[0];
  json_array_foreach(cds, i, o) {
    const char *r = cd_region(o);
    /* a region whose name no label can hold cannot be backed up in its cluster (its Backup could
     * not be labelled): its ClusterDeployments stay in the management backup */
    bool keep = want_mgmt ? r == NULL || !mb_label_value_valid(r) : kd_streq(r, region);
    if (keep && json_array_append(mine, o)) goto done;
  }
  out = mb_selectors(mine, cts, compact, skipped);
done:
  json_decref(mine);
  return out;
}

void mb_region_backup_name(const char *mb, const char *region, bool scheduled, time_t t, char *out) {
  char both[2 * MB_NAME_MAX + 2];
  snprintf(both, sizeof both, "%s-%s", mb, region);
  if (scheduled) mb_scheduled_name(both, t, out);
  else mb_bounded(both, MB_NAME_MAX, out);
}

json_t *mb_region_backup_object(const char *name, const char *ns, const char *mb_name, const char *region,
                                const char *bsl, json_t *selectors) {
  json_t *b = mb_backup_object(name, ns, mb_name, bsl, selectors);
  json_t *labels = json_object_get(json_object_get(b, "metadata"), "labels");
  if (b && (!labels || json_object_set_new(labels, MB_LABEL_REGION, json_string(region)))) {
    json_decref(b);
    return NULL;
  }
  return b;
}

static bool owned_by(json_t *b, const char *mb) {
  char label[MB_LABEL_MAX + 1];
  mb_bounded(mb, MB_LABEL_MAX, label);
  return owned(b, label);
}

/* a regional Backup still New (or without a phase) MB_NOT_STARTED_S after its creation: no
 * engine runs in its region */
static bool region_not_started(json_t *b, time_t now) {
  const char *phase = json_string_value(json_object_get(json_object_get(b, "status"), "phase"));
  time_t c;
  return (!phase || !phase[0] || strcmp(phase, VELERO_PHASE_NEW) == 0) &&
         time_field(json_object_get(b, "metadata"), "creationTimestamp", &c) && now - c > MB_NOT_STARTED_S;
}

const char *mb_restore_running(json_t *restores, time_t now) {
  size_t i;
  json_t *r;
  json_array_foreach(restores, i, r) {
    const char *phase = json_string_value(json_object_get(json_object_get(r, "status"), "phase"));
    time_t c, s;
    if (!velero_phase_running(phase) || !time_field(json_object_get(r, "metadata"), "creationTimestamp", &c)) continue;
    bool started = !velero_phase_not_started(phase);
    if (started && time_field(json_object_get(r, "status"), "startTimestamp", &s) && s > c) c = s;
    if (now - c >= MB_RESTORE_HOLD_S || (!started && now - c > MB_NOT_STARTED_S)) continue;
    return meta_str(r, "name");
  }
  return NULL;
}

const char *mb_restore_hold(const char *running, time_t held_since, time_t now, int hold_s) {
  return running && hold_s > 0 && (!held_since || now - held_since < hold_s) ? running : NULL;
}

bool mb_region_running(const char *mb, json_t *backups, time_t now) {
  size_t i;
  json_t *b;
  json_array_foreach(backups, i, b) {
    const char *phase = json_string_value(json_object_get(json_object_get(b, "status"), "phase"));
    bool synced = json_object_get(json_object_get(json_object_get(b, "metadata"), "annotations"), VELERO_SYNCED_ANNOTATION);
    if (owned_by(b, mb) && velero_phase_running(phase) && !(synced && (!phase || !phase[0])) &&
        !region_not_started(b, now))
      return true;
  }
  return false;
}

json_t *mb_pick_region_backup(const char *mb, const char *region, bool scheduled, bool finished_only, json_t *backups,
                              time_t now) {
  char both[2 * MB_NAME_MAX + 2], want[MB_NAME_MAX + 1];
  snprintf(both, sizeof both, "%s-%s", mb, region);
  mb_region_backup_name(mb, region, false, 0, want);
  size_t i;
  json_t *b, *best = NULL;
  time_t best_t = 0, t;
  json_array_foreach(backups, i, b) {
    json_t *labels = json_object_get(json_object_get(b, "metadata"), "labels");
    const char *phase = json_string_value(json_object_get(json_object_get(b, "status"), "phase"));
    if (!owned_by(b, mb) || !kd_streq(json_string_value(json_object_get(labels, MB_LABEL_REGION)), region)) continue;
    if (finished_only && !kd_streq(phase, VELERO_PHASE_COMPLETED) && !kd_streq(phase, VELERO_PHASE_PARTIALLY_FAILED))
      continue;
    const char *name = meta_str(b, "name");
    if (!scheduled) {
      if (kd_streq(name, want)) return b;
      continue;
    }
    if (!mb_parse_scheduled_name(both, name, &t) || t > now) continue;
    if (!best || t > best_t) best = b, best_t = t;
  }
  return best;
}

kd_rc mb_status_set_region(json_t *st, json_t *entry) {
  json_t *regions = json_object_get(st, "regions");
  const char *want = json_string_value(json_object_get(entry, "region"));
  if (!json_is_array(regions)) {
    if (json_object_set_new(st, "regions", json_array()) || !(regions = json_object_get(st, "regions")))
      return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  size_t i;
  json_t *e;
  json_array_foreach(regions, i, e) {
    if (kd_streq(json_string_value(json_object_get(e, "region")), want)) {
      if (json_array_set(regions, i, entry)) return kd_fail(KD_ERR_NOMEM, "out of memory");
      return KD_OK;
    }
  }
  if (json_array_append(regions, entry)) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* the entry's lastBackup mirrors the listed Backup its lastBackupName names */
static kd_rc region_mirror(json_t *entry, json_t *backups) {
  json_t *b = find_backup(backups, json_string_value(json_object_get(entry, "lastBackupName")));
  json_t *bst = json_object_get(b, "status");
  if (json_is_object(bst) && json_object_set(entry, "lastBackup", bst)) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

static kd_rc region_set_last(json_t *entry, const char *name, time_t t) {
  if (json_object_set_new(entry, "lastBackupName", json_string(name)) || set_time(entry, "lastBackupTime", t))
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

static kd_rc region_error(json_t *entry, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kd_rc region_error(json_t *entry, const char *fmt, ...) {
  char msg[1500];
  va_list ap;
  va_start(ap, fmt);
  int full = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (full >= (int)sizeof msg) msg[kd_utf8_cut(msg, sizeof msg - 1)] = '\0';
  if (json_object_set_new(entry, "error", json_string(msg))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* May a regional Backup be made for the management Backup mname? Only when it was made on this
 * cluster: created now, or listed and not synced in from a location. */
static bool made_here(const struct mb_region_input *in, const char *mname) {
  if (in->mgmt_created) return true;
  json_t *b = find_backup(in->mgmt_backups, mname);
  if (!b || !owned_by(b, meta_str(in->mb, "name"))) return false;
  return !json_object_get(json_object_get(json_object_get(b, "metadata"), "annotations"), VELERO_SYNCED_ANNOTATION) &&
         !json_object_get(json_object_get(json_object_get(b, "metadata"), "labels"), VELERO_LABEL_RESTORE);
}

/* Would region's Backups of mb be confused with another's (see mb_plan_region)? msg says why. */
static bool region_clash(const struct mb_region_input *in, const char *mb, char *msg, size_t n) {
  const char *r = in->region;
  size_t rl = strlen(r), i, j;
  if (rl == MB_STAMP_LEN && strspn(r, "0123456789") == rl) {
    snprintf(msg, n, "region %.100s is named like a timestamp: its Backup %.100s-%.100s would read as one of %.100s's own scheduled "
             "Backups; no regional Backup is made for it", r, mb, r, mb);
    return true;
  }
  char both[2 * MB_NAME_MAX + 2], other[2 * MB_NAME_MAX + 2];
  snprintf(both, sizeof both, "%s-%s", mb, r);
  json_t *m, *r2;
  json_array_foreach(in->mb_names, i, m) {
    const char *m2 = json_string_value(m);
    if (!m2 || kd_streq(m2, mb)) continue;
    if (kd_streq(m2, both)) {
      snprintf(msg, n, "ManagementBackup %.100s exists: its Backups (%.100s, %.100s-<timestamp>) and region %.100s's of %.100s would share "
               "names in the storage location; no regional Backup is made: rename one", both, both, both, r, mb);
      return true;
    }
    json_array_foreach(in->regions, j, r2) {
      if (!json_string_value(r2)) continue;
      snprintf(other, sizeof other, "%s-%s", m2, json_string_value(r2));
      if (strcmp(other, both) == 0) {
        snprintf(msg, n, "the Backups of region %.100s of ManagementBackup %.100s and those of region %.100s of ManagementBackup %.100s "
                 "would share the names %.100s, %.100s-<timestamp>; no regional Backup is made: rename one", r, mb,
                 json_string_value(r2), m2, both, both);
        return true;
      }
    }
  }
  return false;
}

kd_rc mb_plan_region(const struct mb_region_input *in, struct mb_region_plan *out) {
  memset(out, 0, sizeof *out);
  const char *name = meta_str(in->mb, "name");
  json_t *sched_json = json_object_get(json_object_get(in->mb, "spec"), "schedule");
  bool scheduled = json_string_length(sched_json) > 0;
  json_t *labels = json_object_get(json_object_get(in->mb, "metadata"), "labels");
  bool restored = json_object_get(labels, VELERO_LABEL_RESTORE) && json_object_get(labels, VELERO_LABEL_BACKUP);
  json_t *cur = NULL, *e;
  size_t i;
  kd_rc rc = KD_OK;
  json_array_foreach(json_object_get(json_object_get(in->mb, "status"), "regions"), i, e) {
    if (kd_streq(json_string_value(json_object_get(e, "region")), in->region)) cur = e;
  }
  out->entry = json_is_object(cur) ? json_deep_copy(cur) : json_object();
  if (!out->entry || json_object_set_new(out->entry, "region", json_string(in->region))) goto nomem;
  json_object_del(out->entry, "error");
  if (!name) return KD_OK;
  if (scheduled) { /* every region's next attempt is the top level's (kcm: one schedule) */
    json_t *na = json_object_get(in->status, "nextAttempt");
    if (!na) json_object_del(out->entry, "nextAttempt");
    else if (json_object_set(out->entry, "nextAttempt", na)) goto nomem;
  }
  if (in->error) {
    if ((rc = region_error(out->entry, "%s", in->error))) goto fail;
    out->requeue_s = MB_REGION_RETRY_S;
    return KD_OK;
  }
  char clash[1200];
  if (region_clash(in, name, clash, sizeof clash)) {
    if ((rc = region_error(out->entry, "%s", clash))) goto fail;
    out->requeue_s = 60; /* renaming the other object reconciles only that one */
    return KD_OK;
  }
  json_array_foreach(in->backups, i, e) { /* holds no schedule, but says why nothing runs there */
    if (owned_by(e, name) && region_not_started(e, in->now)) {
      if ((rc = region_error(out->entry, "Backup %s has been New in region %s for more than %d minutes: is a Velero "
                             "server or kcmdr's builtin engine running there? The schedule goes on without it",
                             meta_str(e, "name"), in->region, MB_NOT_STARTED_S / 60)))
        goto fail;
      break;
    }
  }
  if (restored) { /* rebuilt like the top level, from what the region's cluster lists */
    json_t *b = mb_pick_region_backup(name, in->region, scheduled, false, in->backups, in->now);
    if (b) {
      if ((rc = region_set_last(out->entry, meta_str(b, "name"), backup_time(name, b))) ||
          (rc = region_mirror(out->entry, in->backups)))
        goto fail;
    }
    return KD_OK;
  }
  /* an entry that names no Backup yet (a restored object whose region erred while the restore
   * labels were on, a ManagementBackup made again) is rebuilt from what the region lists, as
   * the restored branch does: its region answers now */
  if (!json_object_get(out->entry, "lastBackupName")) {
    json_t *b = mb_pick_region_backup(name, in->region, scheduled, false, in->backups, in->now);
    if (b && ((rc = region_set_last(out->entry, meta_str(b, "name"), backup_time(name, b))) ||
              (rc = region_mirror(out->entry, in->backups))))
      goto fail;
  }
  char want[MB_NAME_MAX + 1];
  const char *mlast = json_string_value(json_object_get(in->status, "lastBackupName"));
  if (scheduled) {
    time_t slot;
    if (!mlast || !mb_parse_scheduled_name(name, mlast, &slot)) goto mirror; /* no slot began yet */
    mb_region_backup_name(name, in->region, true, slot, want);
  } else {
    if (!mlast) goto mirror;
    mb_region_backup_name(name, in->region, false, 0, want);
  }
  json_t *b = find_backup(in->backups, want);
  if (b && !owned_by(b, name)) {
    if ((rc = region_error(out->entry, "a Backup named %s already exists in region %s and was not made for this "
                           "ManagementBackup", want, in->region)))
      goto fail;
    out->requeue_s = MB_REGION_RETRY_S;
    goto mirror;
  }
  if (b) {
    time_t t;
    if (!kd_streq(json_string_value(json_object_get(out->entry, "lastBackupName")), want) ||
        !time_field(out->entry, "lastBackupTime", &t))
      if ((rc = region_set_last(out->entry, want, backup_time(want, b)))) goto fail;
  } else if (!kd_streq(json_string_value(json_object_get(out->entry, "lastBackupName")), want) && made_here(in, mlast) &&
             !mb_region_running(name, in->backups, in->now)) {
    out->create = true;
    snprintf(out->create_name, sizeof out->create_name, "%s", want);
    json_object_del(out->entry, "lastBackup");
    if ((rc = region_set_last(out->entry, want, in->now))) goto fail;
    out->requeue_s = MB_REGION_POLL_S;
    return KD_OK;
  } else if (!kd_streq(json_string_value(json_object_get(out->entry, "lastBackupName")), want) && made_here(in, mlast)) {
    out->requeue_s = MB_REGION_POLL_S; /* the region's previous Backup still runs: wait for it */
  }
mirror:
  if ((rc = region_mirror(out->entry, in->backups))) goto fail;
  if (json_object_get(out->entry, "lastBackupName") &&
      !velero_phase_terminal(json_string_value(json_object_get(json_object_get(out->entry, "lastBackup"), "phase"))) &&
      find_backup(in->backups, json_string_value(json_object_get(out->entry, "lastBackupName"))))
    out->requeue_s = MB_REGION_POLL_S; /* no watch on the region: its Backup is polled while it runs */
  return KD_OK;
nomem:
  rc = kd_fail(KD_ERR_NOMEM, "out of memory");
fail:
  mb_region_plan_free(out);
  return rc;
}

void mb_region_plan_free(struct mb_region_plan *p) {
  json_decref(p->entry);
  p->entry = NULL;
}

/* ---- the controller's bookkeeping ---- */

void mb_served_listed(struct mb_served *s) { s->notfound = 0; }

void mb_served_ended(struct mb_served *s, kd_rc rc) {
  if (rc == KD_ERR_NOTFOUND && s->notfound < MB_NOT_SERVED_AFTER) s->notfound++;
}

bool mb_served_missing(const struct mb_served *s) { return s->notfound >= MB_NOT_SERVED_AFTER; }

bool mb_served_ready(const struct mb_served *s, bool synced) { return synced || mb_served_missing(s); }

/* how long after the last reconcile the next may come, for a streak */
static int64_t backoff_wait(int streak) {
  if (streak <= MB_BACKOFF_FREE) return 0;
  int shift = streak - MB_BACKOFF_FREE - 1;
  int64_t wait = shift >= 6 ? MB_BACKOFF_MAX_MS : (int64_t)MB_BACKOFF_MIN_MS << shift; /* 1000 << 6 > 60000 */
  return wait > MB_BACKOFF_MAX_MS ? MB_BACKOFF_MAX_MS : wait;
}

void mb_backoff_done(struct mb_backoff *b, bool progress, int64_t now_ms) {
  bool hot = b->last_ms != 0 && now_ms - b->last_ms < backoff_wait(b->streak) + MB_BACKOFF_HOT_MS;
  if (progress) b->streak = 0;
  else if (!hot) b->streak = 1;
  else if (b->streak < 1000) b->streak++;
  b->last_ms = now_ms;
}

int64_t mb_backoff_not_before(const struct mb_backoff *b) {
  int64_t wait = backoff_wait(b->streak);
  return wait ? b->last_ms + wait : 0;
}
