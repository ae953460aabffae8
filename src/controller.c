/* controller.c — the ManagementBackup controller (see controller.h). Informers keep caches of
 * the objects it reads; their handlers put ManagementBackup names on a work queue with a due
 * time; one worker reconciles them, so no two reconciles of the same object ever race. */
#include "controller.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cron.h"
#include "engine.h"
#include "events.h"
#include "informer.h"
#include "kube.h"
#include "lease.h"
#include "metrics.h"
#include "mgmtbackup.h"
#include "region.h"
#include "retention.h"
#include "velero.h"

#define UPGRADE_KEY "\x01management-upgrade"
#define REQUEUE_CONFLICT_MS 200
#define REQUEUE_ERROR_MS 5000
#define VELERO_RETRY_MS 5000

static const struct kube_res res_mb = {"k0rdent.mirantis.com", "v1beta1", "managementbackups", "ManagementBackup", false};
static const struct kube_res res_mgmt = {"k0rdent.mirantis.com", "v1beta1", "managements", "Management", false};
static const struct kube_res res_cd = {"k0rdent.mirantis.com", "v1beta1", "clusterdeployments", "ClusterDeployment", true};
static const struct kube_res res_ct = {"k0rdent.mirantis.com", "v1beta1", "clustertemplates", "ClusterTemplate", true};
static const struct kube_res res_backup = {"velero.io", "v1", "backups", "Backup", true};
static const struct kube_res res_bsl = {"velero.io", "v1", "backupstoragelocations", "BackupStorageLocation", true};
static const struct kube_res res_restore = {"velero.io", "v1", "restores", "Restore", true};
/* what a due slot waits for before the Restores are listed (a pseudo Restore name) */
static const char RESTORES_UNLISTED[] = "(the Restores, not listed yet)";

static volatile int g_stop;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

/* INF_RESTORE feeds metrics and holds scheduled slots while a Restore runs; it never holds up
 * readiness (a reconcile before it is listed waits for it, a slot at most MB_RESTORE_HOLD_S) */
enum { INF_MB, INF_BACKUP, INF_BSL, INF_CD, INF_CT, INF_MGMT, INF_RESTORE, INF_COUNT };

/* Metrics the alerts in deploy/monitoring/ read. Per ManagementBackup, per storage location or
 * per phase, never per Backup name: the number of series stays bounded. */
#define M_BACKUPS_FINISHED "kcmdr_backups_finished_total"
#define M_BACKUPS_FINISHED_HELP "Backups seen reaching a final phase, by ManagementBackup and phase."
#define M_RESTORES_FINISHED "kcmdr_restores_finished_total"
#define M_RESTORES_FINISHED_HELP "Restores seen reaching a final phase, by phase."
#define M_MB_SKIPPED "kcmdr_metrics_managementbackups_skipped"
#define M_MB_SKIPPED_HELP "ManagementBackups left out of the last scrape: the series cap (METRICS_MAX_SERIES) had no room."
#define M_LEADER "kcmdr_leader"
#define M_LEADER_HELP "1 while this replica leads (holds the Lease, or runs without leader election), else 0."
static const char *const final_phases[] = {VELERO_PHASE_COMPLETED, VELERO_PHASE_PARTIALLY_FAILED, VELERO_PHASE_FAILED,
                                           VELERO_PHASE_FAILED_VALIDATION};

struct ctl {
  kube_client *c;
  const char *ns;
  bool compact;
  bool leader_elect;
  events *ev;
  metrics *m;
  informer *inf[INF_COUNT];
  volatile int leading;
  _Atomic int64_t lease_valid_until_ms; /* leader election: may create Backups until then */
  _Atomic uint64_t lease_term;          /* leader election: terms won so far (fence.h) */
  kube_client *lease_c;                 /* the Lease's own client: short timeouts, no retries */
  engine *eng;                          /* the builtin engine, or NULL when Velero executes */
  int restore_wait_s;
  int restore_hold_s; /* --restore-hold: how long one due slot waits for running Restores (0: never) */
  volatile int velero_ok; /* the Velero CRDs are served and cached */
  struct mb_served served[INF_COUNT]; /* is the resource served (kcm may be partly installed)? */
  pthread_mutex_t qlock;
  pthread_cond_t qcond;
  json_t *queue;   /* name -> due (ms, monotonic) */
  json_t *backoff; /* name -> [streak, last_ms]: mb_backoff of each ManagementBackup (qlock) */
  json_t *created; /* name -> {"backup":..., "time":unix}: what we created, ahead of the cache */
  json_t *restore_held; /* name -> unix time its due slot began to wait for a Restore (worker only) */
  region_clients *regions; /* regional clusters' clients (the worker thread's only) */
  size_t region_next; /* where the next pass over the regions begins: the first one the last pass
                       * skipped (its budget spent), so slow regions never starve later ones */
};

struct inf_thread {
  struct ctl *ctl;
  int which;
};

/* ---- queue ---- */

/* name's backoff state (caller holds qlock) */
static struct mb_backoff backoff_of(struct ctl *x, const char *name) {
  json_t *b = json_object_get(x->backoff, name);
  return (struct mb_backoff){(int)json_integer_value(json_array_get(b, 0)), json_integer_value(json_array_get(b, 1))};
}

static void enqueue(struct ctl *x, const char *name, int64_t delay_ms) {
  int64_t due = kd_now_ms() + delay_ms;
  pthread_mutex_lock(&x->qlock);
  struct mb_backoff bo = backoff_of(x, name);
  int64_t nb = mb_backoff_not_before(&bo);
  if (due < nb) due = nb; /* a key that keeps changing nothing is looked at less and less often */
  json_t *cur = json_object_get(x->queue, name);
  if (!cur || json_integer_value(cur) > due) json_object_set_new(x->queue, name, json_integer(due));
  pthread_cond_signal(&x->qcond);
  pthread_mutex_unlock(&x->qlock);
}

static void enqueue_all(struct ctl *x) {
  json_t *all = informer_list(x->inf[INF_MB]);
  size_t i;
  json_t *o;
  json_array_foreach(all, i, o) {
    enqueue(x, json_string_value(json_object_get(json_object_get(o, "metadata"), "name")), 0);
  }
  json_decref(all);
}

/* A reconcile of name ended, with or without progress: its backoff follows, and a look
 * already queued (by events during the reconcile) moves to the backoff's time. When the object
 * is gone its state is dropped, so the map holds only existing objects. */
static void reconciled(struct ctl *x, const char *name, bool progress, bool gone) {
  pthread_mutex_lock(&x->qlock);
  if (gone) {
    json_object_del(x->backoff, name);
  } else {
    struct mb_backoff bo = backoff_of(x, name);
    mb_backoff_done(&bo, progress, kd_now_ms());
    if (json_object_set_new(x->backoff, name, json_pack("[i,I]", bo.streak, (json_int_t)bo.last_ms)))
      kd_log(KD_LOG_WARN, "ManagementBackup %s: out of memory keeping its requeue backoff", name);
    int64_t nb = mb_backoff_not_before(&bo);
    json_t *cur = json_object_get(x->queue, name);
    if (cur && json_integer_value(cur) < nb) json_object_set_new(x->queue, name, json_integer(nb));
    if (nb && bo.streak == MB_BACKOFF_FREE + 1)
      kd_log(KD_LOG_INFO, "ManagementBackup %s: %d reconciles in a row changed nothing; looking again less often "
             "(up to every %d s) until something changes", name, bo.streak, MB_BACKOFF_MAX_MS / 1000);
  }
  pthread_mutex_unlock(&x->qlock);
}

/* Take the next due name (caller frees); NULL when stopping. Waits while nothing is due. */
static char *dequeue(struct ctl *x) {
  char *name = NULL;
  pthread_mutex_lock(&x->qlock);
  while (!g_stop) {
    const char *k, *best = NULL;
    json_t *v;
    int64_t best_due = INT64_MAX, now = kd_now_ms();
    json_object_foreach(x->queue, k, v) {
      if (json_integer_value(v) < best_due) {
        best_due = json_integer_value(v);
        best = k;
      }
    }
    if (best && best_due <= now && x->leading) {
      name = strdup(best);
      json_object_del(x->queue, best);
      break;
    }
    int64_t wait = best && x->leading ? best_due - now : 1000;
    if (wait > 1000) wait = 1000; /* look at g_stop now and then */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (wait % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&x->qcond, &x->qlock, &ts);
  }
  pthread_mutex_unlock(&x->qlock);
  return name;
}

/* ---- helpers ---- */

static const char *meta_str(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(o, "metadata"), k));
}

static const char *label(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(json_object_get(o, "metadata"), "labels"), k));
}

static json_t *strip_managed_fields(json_t *o) {
  json_t *c = json_deep_copy(o);
  if (c) json_object_del(json_object_get(c, "metadata"), "managedFields");
  return c;
}

/* Backups: metadata (without managedFields) and status; their selector lists can be large */
static json_t *keep_backup(json_t *o) {
  json_t *md = json_deep_copy(json_object_get(o, "metadata"));
  if (md) json_object_del(md, "managedFields");
  return json_pack("{s:o?,s:{s:O?},s:O?}", "metadata", md, "spec", "storageLocation",
                   json_object_get(json_object_get(o, "spec"), "storageLocation"), "status", json_object_get(o, "status"));
}

/* ClusterDeployments and ClusterTemplates: keep only what selectors need (memory with 1000s) */
static json_t *keep_for_selectors(json_t *o) {
  json_t *md = json_object_get(o, "metadata");
  /* status.region: a ClusterDeployment of a region is backed up in that region (kcm >= 1.4) */
  return json_pack("{s:{s:O?,s:O?,s:O?},s:{s:O?},s:{s:O?,s:O?}}", "metadata", "name", json_object_get(md, "name"),
                   "namespace", json_object_get(md, "namespace"), "resourceVersion",
                   json_object_get(md, "resourceVersion"), "spec", "template",
                   json_object_get(json_object_get(o, "spec"), "template"), "status", "providers",
                   json_object_get(json_object_get(o, "status"), "providers"), "region",
                   json_object_get(json_object_get(o, "status"), "region"));
}

static bool time_of(json_t *st, const char *key, time_t *t) {
  const char *s = json_string_value(json_object_get(st, key));
  time_t v;
  if (!s || kd_time_parse(s, &v) != KD_OK) return false;
  *t = v;
  return true;
}

/* The MB a Backup belongs to, from its label (bounded names compared bounded). Caller frees. */
static char *owner_of(struct ctl *x, json_t *backup) {
  const char *l = label(backup, MB_LABEL_BACKUP);
  if (!l) return NULL;
  if (strlen(l) < MB_LABEL_MAX) return strdup(l);
  json_t *all = informer_list(x->inf[INF_MB]);
  char *found = NULL;
  size_t i;
  json_t *o;
  json_array_foreach(all, i, o) {
    char b[MB_LABEL_MAX + 1];
    mb_bounded(meta_str(o, "name"), MB_LABEL_MAX, b);
    if (strcmp(b, l) == 0) {
      found = strdup(meta_str(o, "name"));
      break;
    }
  }
  json_decref(all);
  return found;
}

/* ---- handlers ---- */

static void on_mb(json_t *o, void *ud) { enqueue(ud, meta_str(o, "name"), 0); }
/* a ManagementBackup gone: its counters go too (state series go at the next scrape) */
static void on_mb_delete(json_t *o, void *ud) {
  struct ctl *x = ud;
  static const char *const counters[] = {M_BACKUPS_FINISHED, "kcmdr_backups_completed_total", "kcmdr_backups_failed_total"};
  for (size_t i = 0; i < KD_ARRAY_LEN(counters); i++) metrics_drop_label(x->m, counters[i], "managementbackup", meta_str(o, "name"));
  on_mb(o, ud);
}
static void on_mb_update(json_t *old, json_t *o, void *ud) {
  (void)old;
  enqueue(ud, meta_str(o, "name"), 0);
}

static void backup_metrics(struct ctl *x, const char *mb, json_t *old, json_t *o) {
  const char *was = json_string_value(json_object_get(json_object_get(old, "status"), "phase"));
  const char *now = json_string_value(json_object_get(json_object_get(o, "status"), "phase"));
  if (!velero_phase_terminal(now) || kd_streq(was, now)) return;
  const char *lv[] = {"managementbackup", mb, "phase", now, NULL};
  metrics_counter_addv(x->m, M_BACKUPS_FINISHED, M_BACKUPS_FINISHED_HELP, lv, 1);
  if (strcmp(now, VELERO_PHASE_COMPLETED) == 0) {
    metrics_counter_add(x->m, "kcmdr_backups_completed_total", "Backups that completed, by ManagementBackup.",
                        "managementbackup", mb, 1);
  } else {
    metrics_counter_add(x->m, "kcmdr_backups_failed_total",
                        "Backups that ended Failed, PartiallyFailed or FailedValidation, by ManagementBackup.",
                        "managementbackup", mb, 1);
  }
}

static void on_restore_update(json_t *old, json_t *o, void *ud) {
  struct ctl *x = ud;
  const char *was = json_string_value(json_object_get(json_object_get(old, "status"), "phase"));
  const char *now = json_string_value(json_object_get(json_object_get(o, "status"), "phase"));
  if (!velero_phase_terminal(now) || kd_streq(was, now)) return;
  const char *lv[] = {"phase", now, NULL};
  metrics_counter_addv(x->m, M_RESTORES_FINISHED, M_RESTORES_FINISHED_HELP, lv, 1);
  enqueue_all(x); /* a slot held for it goes now */
}

/* Restores: metadata (without managedFields) and status are all the metrics need */
static json_t *keep_restore(json_t *o) {
  json_t *md = json_deep_copy(json_object_get(o, "metadata"));
  if (md) json_object_del(md, "managedFields");
  return json_pack("{s:o?,s:O?}", "metadata", md, "status", json_object_get(o, "status"));
}

static void gauge1(metrics *m, const char *name, const char *help, const char *lk, const char *lv, double v) {
  const char *l[] = {lk, lv, NULL};
  metrics_gauge_setv(m, name, help, lk ? l : NULL, v);
}

/* the phase as a label value: a known Velero phase, else "Unknown" (bounded label values) */
static const char *phase_label(const char *ph) {
  static const char *const known[] = {
      VELERO_PHASE_NEW, VELERO_PHASE_QUEUED, VELERO_PHASE_READY_TO_START, VELERO_PHASE_FAILED_VALIDATION,
      VELERO_PHASE_IN_PROGRESS, VELERO_PHASE_WAITING_PLUGIN_OPS, VELERO_PHASE_WAITING_PLUGIN_OPS_PF,
      VELERO_PHASE_FINALIZING, VELERO_PHASE_FINALIZING_PF, VELERO_PHASE_COMPLETED, VELERO_PHASE_PARTIALLY_FAILED,
      VELERO_PHASE_FAILED, VELERO_PHASE_DELETING};
  for (size_t i = 0; ph && i < KD_ARRAY_LEN(known); i++)
    if (strcmp(ph, known[i]) == 0) return known[i];
  return "Unknown";
}

/* Series one ManagementBackup can have from the collector: created, interval, last success,
 * duration, items, 4 final phases + 1 other of kcmdr_last_backup_phase, 4 finished counters. */
#define MB_SERIES_MAX 14

/* One ManagementBackup's series: creation time, the newest successful backup (from the cached
 * Backups and the status, whichever is newer), the schedule's interval (the length of the
 * schedule's gap that holds that success, or the creation when none: an irregular schedule's
 * long gaps, a weekend or a month, are allowed exactly where they are), and the last backup's
 * phase, duration and items (from status.lastBackup). All or nothing: skipped (false) when
 * the series cap has no room for all of them, so an alert never sees a creation time without
 * the success that came after it. */
static bool collect_mb(metrics *m, json_t *mb, json_t *success) {
  const char *name = meta_str(mb, "name");
  if (!name) return true;
  if (metrics_room(m) < MB_SERIES_MAX) return false;
  const char *lv[] = {"managementbackup", name, NULL};
  time_t t, s, created = 0;
  if (time_of(json_object_get(mb, "metadata"), "creationTimestamp", &created))
    metrics_gauge_setv(m, "kcmdr_managementbackup_created_timestamp_seconds",
                       "Creation time of the ManagementBackup (the start of its first interval).", lv, (double)created);
  char own[MB_LABEL_MAX + 1];
  mb_bounded(name, MB_LABEL_MAX, own);
  double last = (double)json_integer_value(json_object_get(success, own));
  json_t *lb = json_object_get(json_object_get(mb, "status"), "lastBackup");
  const char *ph = json_string_value(json_object_get(lb, "phase"));
  if (kd_streq(ph, VELERO_PHASE_COMPLETED) && time_of(lb, "completionTimestamp", &t) && (double)t > last) last = (double)t;
  if (last > 0)
    metrics_gauge_setv(m, "kcmdr_last_successful_backup_timestamp_seconds",
                       "Completion time of the newest Completed backup, by ManagementBackup.", lv, last);
  json_t *sj = json_object_get(json_object_get(mb, "spec"), "schedule");
  cron_schedule *cs = NULL;
  if (json_string_length(sj) && cron_parse_n(json_string_value(sj), json_string_length(sj), &cs) == KD_OK) {
    int64_t base = last > 0 ? (int64_t)last : created > 0 ? (int64_t)created : (int64_t)time(NULL);
    int64_t gap = metrics_schedule_gap(cs, base);
    if (gap > 0)
      metrics_gauge_setv(m, "kcmdr_schedule_interval_seconds",
                         "Length of the schedule's gap between activations that holds the last successful backup "
                         "(or the creation): the time a next success may take.",
                         lv, (double)gap);
    cron_free(cs);
  }
  if (ph) {
    const char *cur = phase_label(ph);
    for (size_t i = 0; i < KD_ARRAY_LEN(final_phases); i++) {
      const char *pl[] = {"managementbackup", name, "phase", final_phases[i], NULL};
      metrics_gauge_setv(m, "kcmdr_last_backup_phase", "1 for the phase of the ManagementBackup's last backup.", pl,
                         strcmp(cur, final_phases[i]) == 0);
    }
    const char *pl[] = {"managementbackup", name, "phase", cur, NULL};
    metrics_gauge_setv(m, "kcmdr_last_backup_phase", "1 for the phase of the ManagementBackup's last backup.", pl, 1);
  }
  if (velero_phase_terminal(ph)) {
    if (time_of(lb, "startTimestamp", &s) && time_of(lb, "completionTimestamp", &t) && t >= s)
      metrics_gauge_setv(m, "kcmdr_last_backup_duration_seconds", "Duration of the last finished backup, by ManagementBackup.",
                         lv, (double)(t - s));
    json_t *items = json_object_get(json_object_get(lb, "progress"), "itemsBackedUp");
    if (json_is_integer(items))
      metrics_gauge_setv(m, "kcmdr_last_backup_items", "Items in the last finished backup, by ManagementBackup.", lv,
                         (double)json_integer_value(items));
  }
  for (size_t i = 0; i < KD_ARRAY_LEN(final_phases); i++) { /* counters exist from 0, so increase() sees the first */
    const char *pl[] = {"managementbackup", name, "phase", final_phases[i], NULL};
    metrics_counter_addv(m, M_BACKUPS_FINISHED, M_BACKUPS_FINISHED_HELP, pl, 0);
  }
  return true;
}

/* The metrics collector: series that describe the current state are recomputed from the
 * caches at every scrape, so they hold after a restart and on every replica alike (the leader
 * and the standbys show the same values; alerts take the max over replicas). */
static void collect(metrics *m, void *ud) {
  struct ctl *x = ud;
  static const char *const state_families[] = {
      "kcmdr_managementbackup_created_timestamp_seconds", "kcmdr_schedule_interval_seconds",
      "kcmdr_last_successful_backup_timestamp_seconds", "kcmdr_last_backup_phase", "kcmdr_last_backup_duration_seconds",
      "kcmdr_last_backup_items", "kcmdr_storage_location_available", "kcmdr_last_restore_duration_seconds",
      "kcmdr_last_restore_items"};
  for (size_t i = 0; i < KD_ARRAY_LEN(state_families); i++) metrics_reset(m, state_families[i]);
  json_t *mbs = informer_list(x->inf[INF_MB]), *backups = informer_list(x->inf[INF_BACKUP]);
  json_t *bsls = informer_list(x->inf[INF_BSL]), *restores = informer_list(x->inf[INF_RESTORE]);
  json_t *success = json_object(), *o, *newest = NULL;
  size_t i;
  time_t t, s, newest_t = 0;
  json_array_foreach(backups, i, o) { /* owner label -> newest Completed backup's completion time */
    json_t *st = json_object_get(o, "status");
    const char *owner = label(o, MB_LABEL_BACKUP);
    if (!owner || !kd_streq(json_string_value(json_object_get(st, "phase")), VELERO_PHASE_COMPLETED) ||
        !time_of(st, "completionTimestamp", &t))
      continue;
    if (json_integer_value(json_object_get(success, owner)) < t) json_object_set_new(success, owner, json_integer(t));
  }
  /* set before the ManagementBackups take the room: the series exists whatever follows */
  metrics_gauge_set(m, M_MB_SKIPPED, M_MB_SKIPPED_HELP, NULL, NULL, 0);
  double skipped = 0;
  json_array_foreach(mbs, i, o) skipped += !collect_mb(m, o, success);
  metrics_gauge_set(m, M_MB_SKIPPED, M_MB_SKIPPED_HELP, NULL, NULL, skipped);
  json_array_foreach(bsls, i, o) {
    const char *ph = json_string_value(json_object_get(json_object_get(o, "status"), "phase"));
    gauge1(m, "kcmdr_storage_location_available", "1 while the BackupStorageLocation's phase is Available, else 0.",
           "location", meta_str(o, "name"), kd_streq(ph, "Available"));
  }
  json_array_foreach(restores, i, o) { /* the newest finished Restore */
    json_t *st = json_object_get(o, "status");
    if (velero_phase_terminal(json_string_value(json_object_get(st, "phase"))) && time_of(st, "completionTimestamp", &t) &&
        (!newest || t > newest_t))
      newest = st, newest_t = t;
  }
  if (newest && time_of(newest, "startTimestamp", &s) && newest_t >= s)
    gauge1(m, "kcmdr_last_restore_duration_seconds", "Duration of the newest finished Restore.", NULL, NULL,
           (double)(newest_t - s));
  json_t *items = json_object_get(json_object_get(newest, "progress"), "itemsRestored");
  if (json_is_integer(items))
    gauge1(m, "kcmdr_last_restore_items", "Items restored by the newest finished Restore.", NULL, NULL,
           (double)json_integer_value(items));
  json_decref(success);
  json_decref(mbs);
  json_decref(backups);
  json_decref(bsls);
  json_decref(restores);
}

/* A change that matters (a Backup appeared, went, or changed phase): name is looked at now,
 * whatever backoff its quiet reconciles built up (the status follows within a second). */
static void enqueue_now(struct ctl *x, const char *name) {
  pthread_mutex_lock(&x->qlock);
  json_object_del(x->backoff, name);
  pthread_mutex_unlock(&x->qlock);
  enqueue(x, name, 0);
}

static void on_backup(json_t *o, void *ud) {
  char *mb = owner_of(ud, o);
  if (mb) enqueue_now(ud, mb);
  free(mb);
  /* an on-demand ManagementBackup whose name this Backup holds (or held) looks again */
  if (meta_str(o, "name")) enqueue_now(ud, meta_str(o, "name"));
}
static void on_backup_update(json_t *old, json_t *o, void *ud) {
  char *mb = owner_of(ud, o);
  if (mb) {
    backup_metrics(ud, mb, old, o);
    const char *was = json_string_value(json_object_get(json_object_get(old, "status"), "phase"));
    const char *now = json_string_value(json_object_get(json_object_get(o, "status"), "phase"));
    if (!kd_streq(was, now)) enqueue_now(ud, mb);
    else enqueue(ud, mb, 0);
  }
  free(mb);
}
static void on_anything(json_t *o, void *ud) {
  (void)o;
  enqueue_all(ud);
}
static void on_anything_update(json_t *old, json_t *o, void *ud) {
  (void)old, (void)o;
  enqueue_all(ud);
}
static void on_mgmt(json_t *o, void *ud) {
  (void)o;
  enqueue(ud, UPGRADE_KEY, 0);
}
static void on_mgmt_update(json_t *old, json_t *o, void *ud) {
  (void)old;
  on_mgmt(o, ud);
}
static const char *inf_what(int which) {
  return which == INF_MGMT ? "Managements" : which == INF_CD ? "ClusterDeployments" : which == INF_CT ? "ClusterTemplates" : "ManagementBackups";
}

/* A full list of an optional resource: it is served (again) */
static void served_listed(struct ctl *x, int which) {
  if (mb_served_missing(&x->served[which])) kd_log(KD_LOG_INFO, "%s are served again", inf_what(which));
  mb_served_listed(&x->served[which]);
}
static void on_cd_synced(void *ud) { served_listed(ud, INF_CD); }
static void on_ct_synced(void *ud) { served_listed(ud, INF_CT); }
static void on_mgmt_synced(void *ud) { served_listed(ud, INF_MGMT); }
static void on_mb_synced(void *ud) { served_listed(ud, INF_MB); }

static void on_velero_synced(void *ud) {
  struct ctl *x = ud;
  if (!x->velero_ok) {
    x->velero_ok = 1;
    enqueue_all(x);
  }
}

/* ---- reconcile ---- */

static kd_rc resolve_bsl(struct ctl *x, json_t *mb, char *out, size_t n) {
  json_t *wj = json_object_get(json_object_get(mb, "spec"), "storageLocation");
  const char *want = json_string_value(wj);
  if (want && strlen(want) != json_string_length(wj))
    return kd_fail(KD_ERR_NOTFOUND, "storageLocation holds a NUL character: no BackupStorageLocation has such a name");
  if (want && want[0]) {
    json_t *b = informer_get(x->inf[INF_BSL], x->ns, want);
    if (!b) return kd_fail(KD_ERR_NOTFOUND, "BackupStorageLocation \"%s\" not found in namespace %s", want, x->ns);
    json_decref(b);
    snprintf(out, n, "%s", want);
    return KD_OK;
  }
  json_t *all = informer_list(x->inf[INF_BSL]);
  if (!all) return kd_fail(KD_ERR_NOMEM, "out of memory listing storage locations");
  const char *best = NULL;
  size_t i;
  json_t *o;
  json_array_foreach(all, i, o) {
    if (!json_is_true(json_object_get(json_object_get(o, "spec"), "default"))) continue;
    if (!best || strcmp(meta_str(o, "name"), best) < 0) best = meta_str(o, "name");
  }
  if (best) snprintf(out, n, "%s", best);
  json_decref(all);
  if (!best)
    return kd_fail(KD_ERR_NOTFOUND,
                   "no storageLocation is set and no BackupStorageLocation in namespace %s has spec.default: true",
                   x->ns);
  return KD_OK;
}

/* May this process write Backups now? With leader election: only while the last successful
 * Lease renewal is younger than the renew deadline (monotonic clock, so a process that was
 * stopped for longer than the lease knows at once that another may lead now). */
static bool may_create(struct ctl *x) {
  if (!x->leader_elect) return true;
  if (kd_now_ms() < atomic_load(&x->lease_valid_until_ms)) return true;
  kd_log(KD_LOG_WARN, "not creating anything: this process's Lease renewal is older than the renew deadline");
  return false;
}

/* Say which selectors mb's Backup bname (in region, or NULL: the management cluster) left out
 * (skipped: messages): each in the log, the first as a Warning Event. */
static void selectors_skipped(struct ctl *x, json_t *mb, const char *bname, const char *region, json_t *skipped) {
  size_t i;
  json_t *m;
  json_array_foreach(skipped, i, m)
    kd_log(KD_LOG_WARN, "ManagementBackup %s: Backup %s%s%s: %s", meta_str(mb, "name"), bname, region ? " in region " : "",
           region ? region : "", json_string_value(m));
  if (json_array_size(skipped))
    events_emit(x->ev, mb, "Warning", "SelectorSkipped", "Backup %s/%s%s%s: %s%s", x->ns, bname, region ? " in region " : "",
                region ? region : "", json_string_value(json_array_get(skipped, 0)),
                json_array_size(skipped) > 1 ? " (and more: see the controller's log)" : "");
}

/* Create the Backup named bname for mb. A Backup of that name that already exists is adopted
 * only when it carries mb's label; otherwise KD_ERR_CONFLICT says who holds the name. */
static kd_rc create_backup(struct ctl *x, json_t *mb, const char *bname, const char *bsl) {
  json_t *cds = informer_list(x->inf[INF_CD]), *cts = informer_list(x->inf[INF_CT]);
  json_t *sel = NULL, *obj = NULL, *out = NULL, *skipped = json_array();
  kd_rc rc = KD_OK;
  /* the ClusterDeployments of regions are backed up in their regions, not here */
  if (!cds || !cts || !skipped || !(sel = mb_selectors_for(cds, cts, NULL, x->compact, skipped)) ||
      !(obj = mb_backup_object(bname, x->ns, meta_str(mb, "name"), bsl, sel))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory building the Backup");
    goto done;
  }
  /* a leader sends only while its lease is surely valid, and gives up when it might not be */
  struct kube_req_opts ro = {0};
  if (x->leader_elect) {
    int64_t left = atomic_load(&x->lease_valid_until_ms) - kd_now_ms();
    if (left <= 0) {
      rc = kd_fail(KD_ERR_CANCELLED, "this process's leadership may have lapsed; not creating %s", bname);
      goto done;
    }
    ro.timeout_ms = left, ro.max_retries = -1;
  }
  rc = kube_create_ex(x->c, &res_backup, x->ns, obj, &ro, &out);
  if (rc == KD_ERR_CONFLICT) { /* ours from before (a retry, a restart), or someone else's */
    json_decref(out);
    out = NULL;
    char want[MB_LABEL_MAX + 1];
    mb_bounded(meta_str(mb, "name"), MB_LABEL_MAX, want);
    if ((rc = kube_get(x->c, &res_backup, x->ns, bname, &out)) != KD_OK) goto done;
    if (!kd_streq(label(out, MB_LABEL_BACKUP), want))
      rc = kd_fail(KD_ERR_CONFLICT, "a Backup named %s/%s already exists and was not made for this ManagementBackup",
                   x->ns, bname);
    goto done;
  }
  if (rc != KD_OK) goto done;
  metrics_counter_add(x->m, "kcmdr_backups_created_total", "Velero Backups created, by ManagementBackup.",
                      "managementbackup", meta_str(mb, "name"), 1);
  events_emit(x->ev, mb, "Normal", "BackupCreated", "Created Velero Backup %s/%s (storage location %s, %zu selectors)",
              x->ns, bname, bsl, json_array_size(sel));
  kd_log(KD_LOG_INFO, "ManagementBackup %s: created Backup %s/%s", meta_str(mb, "name"), x->ns, bname);
  /* what the Backup cannot select is said, never dropped silently */
  selectors_skipped(x, mb, bname, NULL, skipped);
done:
  json_decref(skipped);
  json_decref(cds);
  json_decref(cts);
  json_decref(sel);
  json_decref(obj);
  json_decref(out);
  return rc;
}

/* Write status st to mb when it differs; *wrote (may be NULL) says whether it was written.
 * Returns the requeue delay (0 none). */
static int64_t write_status(struct ctl *x, json_t *mb, json_t *st, bool *wrote) {
  json_t *cur = json_object_get(mb, "status");
  if (wrote) *wrote = false;
  if (cur ? json_equal(cur, st) : json_object_size(st) == 0) return 0;
  json_t *obj = json_deep_copy(mb), *out = NULL;
  if (!obj) return REQUEUE_ERROR_MS;
  json_object_set(obj, "status", st);
  kd_rc rc = kube_update_status(x->c, &res_mb, NULL, obj, &out);
  json_decref(obj);
  json_decref(out);
  if (rc == KD_ERR_CONFLICT || rc == KD_ERR_NOTFOUND) return rc == KD_ERR_CONFLICT ? REQUEUE_CONFLICT_MS : 0;
  if (rc != KD_OK) {
    kd_log(KD_LOG_WARN, "ManagementBackup %s: status update failed: %s", meta_str(mb, "name"), kd_errmsg());
    return REQUEUE_ERROR_MS;
  }
  if (wrote) *wrote = true;
  return 0;
}

/* An error that mb's status does not show yet becomes a Warning Event and a log line. */
static void note_error(struct ctl *x, json_t *mb, const char *reason, const char *msg) {
  const char *old = json_string_value(json_object_get(json_object_get(mb, "status"), "error"));
  if (kd_streq(old, msg)) return;
  events_emit(x->ev, mb, "Warning", reason, "%s", msg);
  kd_log(KD_LOG_WARN, "ManagementBackup %s: %s", meta_str(mb, "name"), msg);
}

/* Set status.error in st to msg, and note it. */
static void set_error(struct ctl *x, json_t *mb, json_t *st, const char *reason, const char *msg) {
  json_object_set_new(st, "error", json_string(msg));
  note_error(x, mb, reason, msg);
}

/* The plan says create: resolve the storage location and create the Backup. On failure the
 * status written is the old one with the reason in status.error. */
static int64_t do_create(struct ctl *x, json_t *mb, struct mb_plan *plan) {
  const char *name = meta_str(mb, "name");
  char bsl[256], msg[1500];
  const char *reason = "BackupCreateFailed";
  int64_t wait = REQUEUE_ERROR_MS;
  if (!may_create(x)) return REQUEUE_ERROR_MS;
  kd_rc rc = resolve_bsl(x, mb, bsl, sizeof bsl);
  if (rc != KD_OK) {
    snprintf(msg, sizeof msg, "%s", kd_errmsg());
    reason = "StorageLocationNotFound";
    wait = 30000;
  } else if ((rc = create_backup(x, mb, plan->create_name, bsl)) == KD_OK || rc == KD_ERR_HTTP ||
             rc == KD_ERR_TIMEOUT || rc == KD_ERR_TRANSPORT) {
    /* created, or perhaps created (the server may have committed it before failing): either
     * way it counts as this slot's Backup until the cache says otherwise */
    time_t now = time(NULL);
    if (json_object_set_new(x->created, name, json_pack("{s:s,s:I}", "backup", plan->create_name, "time", (json_int_t)now)))
      kd_log(KD_LOG_WARN, "ManagementBackup %s: out of memory remembering Backup %s", name, plan->create_name);
    if (rc == KD_OK) return 0;
    snprintf(msg, sizeof msg, "creating a Velero Backup for this ManagementBackup: %s", kd_errmsg());
  } else {
    snprintf(msg, sizeof msg, "creating a Velero Backup for this ManagementBackup: %s", kd_errmsg());
    if (rc == KD_ERR_CONFLICT) reason = "BackupNameTaken";
    if (rc == KD_ERR_CANCELLED) return REQUEUE_ERROR_MS; /* not leading: nothing to report */
  }
  json_t *st = json_deep_copy(json_object_get(mb, "status"));
  if (!st) st = json_object();
  if (!st) return REQUEUE_ERROR_MS;
  set_error(x, mb, st, reason, msg);
  int64_t rq = write_status(x, mb, st, NULL);
  json_decref(st);
  return rq > wait ? rq : wait;
}

/* Reconcile the ManagementBackup name. *progress: something was written (a label, a Backup,
 * the status); *gone: no such object. Returns the requeue delay (ms; 0 none). */
/* keep-last N (retention.c): ask for the deletion of mb's older backups. Best effort: a failure
 * is a Warning and is tried again on the next reconcile; it never holds up the schedule. */
static void retain(struct ctl *x, json_t *mb, json_t *backups) {
  long keep;
  int asked = 0;
  kd_rc rc = retention_keep_last(mb, &keep);
  if (rc == KD_OK && keep > 0) rc = retention_apply(x->c, x->ns, meta_str(mb, "name"), keep, backups, &asked);
  if (rc == KD_ERR_INVALID) note_error(x, mb, "InvalidKeepLast", kd_errmsg());
  else if (rc != KD_OK) kd_log(KD_LOG_WARN, "ManagementBackup %s: keep-last: %s", meta_str(mb, "name"), kd_errmsg());
  if (asked) events_emit(x->ev, mb, "Normal", "KeepLast", "asked for the deletion of %d older backup(s) (%s=%ld)", asked,
                         RETENTION_ANNOTATION, keep);
}

/* Each region in use (mb_regions_in_use of the cached ClusterDeployments) -> {"backups": [...]}
 * as its cluster lists them, {"error": "..."}, or {"skipped": true} when this pass's budget was
 * spent or the process stops. New reference; NULL on no memory. */
static json_t *regions_look(struct ctl *x, const char *mb) {
  json_t *cds = informer_list(x->inf[INF_CD]), *names = cds ? mb_regions_in_use(cds) : NULL, *out = json_object();
  if (!names || !out) goto fail;
  /* a pass has a budget and ends on SIGTERM: regions not looked at keep their entries for now,
   * and the next pass begins with them */
  region_pass_begin(x->regions, REGION_PASS_BUDGET_MS, &g_stop);
  size_t n = json_array_size(names), start = n ? x->region_next % n : 0;
  bool skipped = false;
  for (size_t k = 0; k < n; k++) {
    size_t i = (start + k) % n;
    json_t *r = json_array_get(names, i);
    char msg[REGION_MSG_MAX];
    json_t *backups = NULL;
    kd_rc rc = mb_region_unusable(json_string_value(r), msg, sizeof msg)
                   ? KD_ERR_INVALID
                   : region_list_backups(x->regions, json_string_value(r), mb, &backups, msg, sizeof msg);
    if (rc == KD_ERR_NOMEM) goto fail;
    json_t *v = rc == KD_OK                ? json_pack("{s:o}", "backups", backups)
                : rc == KD_ERR_CANCELLED ? json_pack("{s:b}", "skipped", 1)
                                         : json_pack("{s:s}", "error", msg);
    if (rc == KD_ERR_CANCELLED && !skipped) skipped = true, x->region_next = i;
    if (!v || json_object_set_new(out, json_string_value(r), v)) goto fail;
  }
  if (!skipped) x->region_next = 0;
  json_decref(cds);
  json_decref(names);
  return out;
fail:
  json_decref(cds);
  json_decref(names);
  json_decref(out);
  return NULL;
}

/* Create region's Backup create_name for mb (the region's ClusterDeployments only). On failure
 * msg says why. */
static kd_rc create_regional(struct ctl *x, json_t *mb, const char *region, const char *bname, char *msg, size_t n) {
  char bsl[256];
  json_t *cds = NULL, *cts = NULL, *sel = NULL, *obj = NULL, *skipped = json_array();
  kd_rc rc;
  if (!may_create(x)) {
    snprintf(msg, n, "not leading");
    return KD_ERR_CANCELLED;
  }
  if ((rc = resolve_bsl(x, mb, bsl, sizeof bsl)) != KD_OK) {
    snprintf(msg, n, "%s", kd_errmsg());
    goto done;
  }
  cds = informer_list(x->inf[INF_CD]), cts = informer_list(x->inf[INF_CT]);
  if (!cds || !cts || !skipped || !(sel = mb_selectors_for(cds, cts, region, x->compact, skipped)) ||
      !(obj = mb_region_backup_object(bname, x->ns, meta_str(mb, "name"), region, bsl, sel))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory building the Backup");
    snprintf(msg, n, "%s", kd_errmsg());
    goto done;
  }
  if ((rc = region_create_backup(x->regions, region, obj, msg, n)) != KD_OK) goto done;
  metrics_counter_add(x->m, "kcmdr_backups_created_total", "Velero Backups created, by ManagementBackup.",
                      "managementbackup", meta_str(mb, "name"), 1);
  events_emit(x->ev, mb, "Normal", "BackupCreated", "Created Velero Backup %s/%s in region %s (storage location %s, %zu selectors)",
              x->ns, bname, region, bsl, json_array_size(sel));
  kd_log(KD_LOG_INFO, "ManagementBackup %s: created Backup %s/%s in region %s", meta_str(mb, "name"), x->ns, bname, region);
  selectors_skipped(x, mb, bname, region, skipped);
done:
  json_decref(skipped);
  json_decref(cds);
  json_decref(cts);
  json_decref(sel);
  json_decref(obj);
  return rc;
}

/* Plan and carry out every region's part (mb_plan_region) into status st. Returns the requeue
 * (s) the regions ask for (0: none). */
static int64_t reconcile_regions(struct ctl *x, json_t *mb, json_t *st, json_t *regional, json_t *backups, bool created) {
  const char *region;
  json_t *rv;
  int64_t rq = 0;
  json_t *old_regions = json_object_get(json_object_get(mb, "status"), "regions");
  /* every ManagementBackup's name and the regions in use: names shared with another are refused */
  json_t *mbs = informer_list(x->inf[INF_MB]), *mb_names = json_array(), *in_use = json_array(), *o;
  size_t k;
  json_array_foreach(mbs, k, o) json_array_append_new(mb_names, json_string(meta_str(o, "name")));
  json_object_foreach(regional, region, rv) json_array_append_new(in_use, json_string(region));
  json_decref(mbs);
  json_object_foreach(regional, region, rv) {
    if (json_is_true(json_object_get(rv, "skipped"))) { /* its entry in st stays as it was; soon again */
      if (rq == 0 || rq > 1) rq = 1;
      continue;
    }
    struct mb_region_input ri = {mb, st, region, json_string_value(json_object_get(rv, "error")),
                                 json_object_get(rv, "backups"), backups, created, time(NULL), mb_names, in_use};
    struct mb_region_plan rp;
    if (mb_plan_region(&ri, &rp) != KD_OK) {
      kd_log(KD_LOG_WARN, "ManagementBackup %s: region %s: %s", meta_str(mb, "name"), region, kd_errmsg());
      continue;
    }
    if (rp.create) {
      char msg[REGION_MSG_MAX];
      kd_rc rc = create_regional(x, mb, region, rp.create_name, msg, sizeof msg);
      if (rc == KD_ERR_CANCELLED) {
        mb_region_plan_free(&rp);
        continue;
      }
      if (rc != KD_OK) { /* this region's entry says so; the others and the top level go on */
        json_t *prev = NULL, *e;
        size_t i;
        json_array_foreach(old_regions, i, e) if (kd_streq(json_string_value(json_object_get(e, "region")), region)) prev = e;
        if (prev) { /* the entry stays as it was, the attempt is not recorded as made */
          json_t *copy = json_deep_copy(prev);
          if (copy) {
            json_decref(rp.entry);
            rp.entry = copy;
          }
        } else {
          json_object_del(rp.entry, "lastBackupName");
          json_object_del(rp.entry, "lastBackupTime");
        }
        char full[REGION_MSG_MAX + 600];
        snprintf(full, sizeof full, "creating Backup %s in region %s: %s", rp.create_name, region, msg);
        json_object_set_new(rp.entry, "error", json_string(full));
        rp.requeue_s = MB_REGION_RETRY_S;
      }
    }
    const char *err = json_string_value(json_object_get(rp.entry, "error"));
    if (err) {
      const char *was = NULL;
      json_t *e;
      size_t i;
      json_array_foreach(old_regions, i, e) if (kd_streq(json_string_value(json_object_get(e, "region")), region))
          was = json_string_value(json_object_get(e, "error"));
      if (!kd_streq(was, err)) {
        events_emit(x->ev, mb, "Warning", "RegionBackupFailed", "%s", err);
        kd_log(KD_LOG_WARN, "ManagementBackup %s: region %s: %s", meta_str(mb, "name"), region, err);
      }
    }
    if (mb_status_set_region(st, rp.entry) != KD_OK) kd_log(KD_LOG_WARN, "out of memory setting region %s", region);
    if (rp.requeue_s > 0 && (rq == 0 || rp.requeue_s < rq)) rq = rp.requeue_s;
    mb_region_plan_free(&rp);
  }
  json_decref(mb_names);
  json_decref(in_use);
  return rq;
}

static int64_t reconcile(struct ctl *x, const char *name, bool *progress, bool *gone) {
  json_t *mb = informer_get(x->inf[INF_MB], NULL, name), *backups = NULL, *regional = NULL, *restores = NULL;
  struct mb_plan plan = {0};
  *progress = *gone = false;
  if (!mb) {
    json_object_del(x->created, name);
    *gone = true;
    return 0;
  }
  int64_t rq = 0;
  if (!may_create(x)) { /* a deposed leader writes nothing, status included */
    rq = REQUEUE_ERROR_MS;
    goto done;
  }
  /* like kcm: ManagementBackups carry the kcm component label, so backups include them */
  if (!kd_streq(label(mb, MB_LABEL_COMPONENT), MB_LABEL_COMPONENT_VALUE)) {
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", MB_LABEL_COMPONENT, MB_LABEL_COMPONENT_VALUE), *out = NULL;
    kd_rc rc = kube_patch(x->c, &res_mb, NULL, name, patch, NULL, &out);
    json_decref(patch);
    if (rc == KD_ERR_NOTFOUND) {
      json_decref(out);
      goto done;
    }
    if (rc == KD_OK) {
      *progress = true;
      json_decref(mb); /* go on with the patched object: no round trip through the watch */
      mb = strip_managed_fields(out);
      json_decref(out);
      if (!mb) goto done;
    } else { /* best effort: the schedule must not stop over a label */
      json_decref(out);
      char msg[1200];
      snprintf(msg, sizeof msg, "cannot add the label %s=%s (backups will not include this object): %s",
               MB_LABEL_COMPONENT, MB_LABEL_COMPONENT_VALUE, kd_errmsg());
      note_error(x, mb, "LabelFailed", msg);
    }
  }
  if (!x->velero_ok) {
    json_t *st = json_deep_copy(json_object_get(mb, "status"));
    if (!st) st = json_object();
    set_error(x, mb, st, "VeleroNotInstalled",
              "Velero is not installed: the velero.io/v1 Backup and BackupStorageLocation CRDs are not served");
    if (st) write_status(x, mb, st, NULL);
    json_decref(st);
    rq = VELERO_RETRY_MS;
    goto done;
  }
  if (!(backups = informer_list(x->inf[INF_BACKUP]))) {
    rq = REQUEUE_ERROR_MS;
    goto done;
  }
  /* what this process created counts only until the cache shows it, and never past the lag */
  json_t *mine = json_object_get(x->created, name);
  struct mb_input in = {mb, backups, json_string_value(json_object_get(mine, "backup")),
                        (time_t)json_integer_value(json_object_get(mine, "time")), time(NULL), x->restore_wait_s, 0, false, NULL};
  /* the regions in use, each listed once per reconcile: a dead one answers within
   * REGION_TIMEOUT_MS, and then not again for MB_REGION_RETRY_S */
  if (!(regional = regions_look(x, name))) {
    rq = REQUEUE_ERROR_MS;
    goto done;
  }
  const char *rname;
  json_t *rv;
  json_object_foreach(regional, rname, rv) in.regions_running = in.regions_running || mb_region_running(name, json_object_get(rv, "backups"), in.now);
  /* no slot starts while a Restore runs here (its backup would hold a half-restored cluster),
   * nor before the Restores are listed; one slot waits at most MB_RESTORE_HOLD_S */
  if (x->inf[INF_RESTORE]) {
    if (!informer_synced(x->inf[INF_RESTORE])) in.restore_running = RESTORES_UNLISTED;
    else if ((restores = informer_list(x->inf[INF_RESTORE]))) in.restore_running = mb_restore_running(restores, in.now);
    time_t since = (time_t)json_integer_value(json_object_get(x->restore_held, name));
    const char *held = mb_restore_hold(in.restore_running, since, in.now, x->restore_hold_s);
    if (in.restore_running && !held && x->restore_hold_s)
      kd_log(KD_LOG_WARN, "ManagementBackup %s: its slot waited %d s for Restores (now %s); taken now", name,
             x->restore_hold_s, in.restore_running);
    in.restore_running = held;
  }
  char bsl_name[256];
  if (resolve_bsl(x, mb, bsl_name, sizeof bsl_name) == KD_OK) { /* when it last synced, for restored objects */
    json_t *bsl = informer_get(x->inf[INF_BSL], x->ns, bsl_name);
    const char *ls = json_string_value(json_object_get(json_object_get(bsl, "status"), "lastSyncedTime"));
    if (ls) kd_time_parse(ls, &in.bsl_synced);
    json_decref(bsl);
  }
  json_t *seen = mine ? informer_get(x->inf[INF_BACKUP], x->ns, in.pending) : NULL;
  if (mine && (seen || in.now - in.pending_time > MB_CACHE_LAG_S)) {
    json_object_del(x->created, name);
    in.pending = NULL;
  }
  json_decref(seen);
  if (mb_plan_reconcile(&in, &plan) != KD_OK) {
    kd_log(KD_LOG_WARN, "ManagementBackup %s: %s", name, kd_errmsg());
    rq = REQUEUE_ERROR_MS;
    goto done;
  }
  if (plan.create && (rq = do_create(x, mb, &plan)) != 0) goto done;
  if (plan.create) *progress = true;
  int64_t region_rq = reconcile_regions(x, mb, plan.status, regional, backups, plan.create);
  const char *err = json_string_value(json_object_get(plan.status, "error"));
  if (err) note_error(x, mb, plan.reason, err);
  bool wrote;
  rq = write_status(x, mb, plan.status, &wrote);
  if (wrote) *progress = true;
  if (rq) goto done;
  if (plan.drop_restore_labels) {
    json_t *patch = json_pack("{s:{s:{s:n,s:n}}}", "metadata", "labels", VELERO_LABEL_RESTORE, VELERO_LABEL_BACKUP), *out = NULL;
    kd_rc rc = kube_patch(x->c, &res_mb, NULL, name, patch, NULL, &out);
    json_decref(patch);
    json_decref(out);
    if (rc != KD_OK && rc != KD_ERR_NOTFOUND) {
      rq = REQUEUE_ERROR_MS;
      goto done;
    }
    *progress = true;
    const char *last = json_string_value(json_object_get(plan.status, "lastBackupName"));
    kd_log(KD_LOG_INFO, "ManagementBackup %s: status rebuilt after restore (last backup %s)", name, last ? last : "not found");
  }
  retain(x, mb, backups);
  if (region_rq > 0 && (plan.requeue_s <= 0 || region_rq < plan.requeue_s)) plan.requeue_s = region_rq;
  rq = plan.requeue_s > 0 ? plan.requeue_s * 1000 + 50 : 0;
  kd_log(KD_LOG_DEBUG, "ManagementBackup %s: reconciled (%s; next look in %lld ms)", name,
         plan.create ? "created a Backup" : plan.waiting ? "slot due while a Backup runs" : "nothing to create", (long long)rq);
  if (plan.waiting && in.restore_running) {
    if (!json_object_get(x->restore_held, name)) json_object_set_new(x->restore_held, name, json_integer(in.now));
    kd_log(KD_LOG_INFO, "ManagementBackup %s: slot due; waiting for Restore %s to finish (a backup now would hold a "
           "half-restored cluster)", name, in.restore_running);
  } else {
    json_object_del(x->restore_held, name);
  }
done:
  mb_plan_free(&plan);
  json_decref(backups);
  json_decref(restores);
  json_decref(regional);
  json_decref(mb);
  return rq;
}

/* performOnManagementUpgrade: a one-shot backup named <mb>-<old release>, once per release */
static void reconcile_upgrade(struct ctl *x) {
  json_t *mgmts = informer_list(x->inf[INF_MGMT]), *mbs = informer_list(x->inf[INF_MB]);
  size_t i, j;
  if (!mgmts || !mbs) enqueue(x, UPGRADE_KEY, REQUEUE_ERROR_MS);
  json_t *m, *mb;
  json_array_foreach(mgmts, i, m) {
    const char *want = json_string_value(json_object_get(json_object_get(m, "spec"), "release"));
    const char *have = json_string_value(json_object_get(json_object_get(m, "status"), "release"));
    if (!want || !have || !have[0] || strcmp(want, have) == 0) continue;
    json_array_foreach(mbs, j, mb) {
      json_t *spec = json_object_get(mb, "spec");
      const char *sched = json_string_value(json_object_get(spec, "schedule"));
      /* like kcm, which indexes only scheduled ManagementBackups for this */
      if (!json_is_true(json_object_get(spec, "performOnManagementUpgrade")) || !sched || !sched[0]) continue;
      if (label(mb, MB_LABEL_RELEASE_BACKUP)) continue; /* a release backup itself */
      char full[600], name[MB_NAME_MAX + 1], lbl[MB_LABEL_MAX + 1];
      snprintf(full, sizeof full, "%s-%s", meta_str(mb, "name"), have);
      mb_bounded(full, MB_NAME_MAX, name);
      mb_bounded(have, MB_LABEL_MAX, lbl);
      json_t *exists = informer_get(x->inf[INF_MB], NULL, name);
      if (exists) {
        json_decref(exists);
        continue;
      }
      if (!may_create(x)) {
        enqueue(x, UPGRADE_KEY, REQUEUE_ERROR_MS);
        continue;
      }
      const char *sl = json_string_value(json_object_get(spec, "storageLocation"));
      json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s}},s:{s:s?}}", "apiVersion", "k0rdent.mirantis.com/v1beta1",
                              "kind", "ManagementBackup", "metadata", "name", name, "labels", MB_LABEL_RELEASE_BACKUP, lbl,
                              MB_LABEL_COMPONENT, MB_LABEL_COMPONENT_VALUE, "spec", "storageLocation", sl), *out = NULL;
      kd_rc rc = obj ? kube_create(x->c, &res_mb, NULL, obj, &out) : KD_ERR_NOMEM;
      if (rc == KD_OK) {
        events_emit(x->ev, mb, "Normal", "CreatedManagementBackup",
                    "Management %s moves from release %s to %s: created ManagementBackup %s", meta_str(m, "name"), have,
                    want, name);
        kd_log(KD_LOG_INFO, "release %s -> %s: created ManagementBackup %s", have, want, name);
      } else if (rc != KD_ERR_CONFLICT) {
        kd_log(KD_LOG_WARN, "release backup %s: %s", name, kd_errmsg());
        enqueue(x, UPGRADE_KEY, REQUEUE_ERROR_MS);
      }
      json_decref(obj);
      json_decref(out);
    }
  }
  json_decref(mgmts);
  json_decref(mbs);
}

/* ---- threads ---- */

static bool all_synced(struct ctl *x) {
  for (int i = 0; i < INF_COUNT; i++) {
    if (i == INF_RESTORE || ((i == INF_BACKUP || i == INF_BSL) && !x->velero_ok)) continue;
    /* listed, or surely not served (an empty cache is then the truth); one 404, as an API
     * server answers while it loads its CRDs, is not enough to go on without a cache */
    if (!mb_served_ready(&x->served[i], informer_synced(x->inf[i]))) return false;
  }
  return true;
}

static bool ready(void *ud) {
  struct ctl *x = ud;
  return all_synced(x) && (!x->leader_elect || x->leading);
}

static void *informer_thread(void *arg) {
  struct inf_thread *t = arg;
  struct ctl *x = t->ctl;
  bool warned = false;
  while (!g_stop) {
    kd_rc rc = informer_run(x->inf[t->which], &g_stop);
    if (g_stop) break;
    if (t->which == INF_RESTORE) { /* metrics only: nothing else waits for it */
      if (!warned) kd_log(KD_LOG_WARN, "Restores cannot be watched (%s); restore metrics wait; retrying", kd_errmsg());
      warned = true;
    } else if (t->which == INF_BACKUP || t->which == INF_BSL) {
      if (x->velero_ok) kd_log(KD_LOG_WARN, "Velero resources unavailable: %s", kd_errmsg());
      x->velero_ok = 0;
      enqueue_all(x);
    } else {
      const char *what = inf_what(t->which);
      bool was = mb_served_missing(&x->served[t->which]);
      mb_served_ended(&x->served[t->which], rc);
      if (!was && mb_served_missing(&x->served[t->which]))
        kd_log(KD_LOG_WARN, "%s are not served; going on without them (their selectors are left out)", what);
      else if (!was)
        kd_log(KD_LOG_WARN, "%s: watch ended: %s (%s); retrying", what, kd_errmsg(), kd_rc_name(rc));
    }
    kd_sleep_ms(VELERO_RETRY_MS, &g_stop);
  }
  return NULL;
}

static void *engine_thread(void *arg) {
  struct ctl *x = arg;
  if (engine_run(x->eng, &g_stop) != KD_OK && !g_stop) {
    kd_log(KD_LOG_ERROR, "builtin engine stopped: %s; exiting", kd_errmsg());
    g_stop = 1;
  }
  return NULL;
}

static void *worker_thread(void *arg) {
  struct ctl *x = arg;
  while (!g_stop && !all_synced(x)) kd_sleep_ms(50, &g_stop);
  malloc_trim(0); /* the initial list pages are gone; hand their memory back */
  kd_log(KD_LOG_INFO, "caches synced; reconciling");
  enqueue_all(x);
  enqueue(x, UPGRADE_KEY, 0);
  for (;;) {
    char *name = dequeue(x);
    if (!name) break;
    int64_t t0 = kd_now_ms();
    int64_t rq = 0;
    if (strcmp(name, UPGRADE_KEY) == 0) {
      reconcile_upgrade(x);
    } else {
      bool progress, gone;
      rq = reconcile(x, name, &progress, &gone);
      reconciled(x, name, progress, gone);
    }
    double secs = (double)(kd_now_ms() - t0) / 1000.0;
    metrics_counter_add(x->m, "kcmdr_reconcile_total", "Reconciles done.", NULL, NULL, 1);
    metrics_counter_set(x->m, "kcmdr_kube_requests_total", "Requests sent to the Kubernetes API so far.",
                        (double)kube_client_requests(x->c));
    metrics_observe(x->m, "kcmdr_reconcile_duration_seconds", "Time spent in one reconcile.", secs);
    if (rq > 0) enqueue(x, name, rq);
    free(name);
  }
  return NULL;
}

static void lead_start(void *ud) {
  struct ctl *x = ud;
  x->leading = 1;
  metrics_gauge_set(x->m, M_LEADER, M_LEADER_HELP, NULL, NULL, 1);
  enqueue_all(x);
  enqueue(x, UPGRADE_KEY, 0);
}

static void lead_stop(void *ud) {
  struct ctl *x = ud;
  x->leading = 0;
  metrics_gauge_set(x->m, M_LEADER, M_LEADER_HELP, NULL, NULL, 0);
}

struct lease_arg {
  struct ctl *x;
  kd_rc rc;
};

static void *lease_thread(void *arg) {
  struct lease_arg *a = arg;
  struct lease_opts o = {a->x->ns, "kcmdr-controller-leader", NULL, 0, 0, 0, &a->x->lease_valid_until_ms, &a->x->lease_term};
  a->rc = lease_run(a->x->lease_c, &o, lead_start, lead_stop, a->x, &g_stop);
  if (a->rc != KD_OK) {
    kd_log(KD_LOG_ERROR, "%s; exiting so that another replica takes over", kd_errmsg());
    g_stop = 1;
  }
  return NULL;
}

/* ---- the verb ---- */

static const char usage[] =
    "Usage: kcmdr controller [flags]\n"
    "\n"
    "Reconcile ManagementBackup objects into Velero Backups, as kcm does: on-demand backups,\n"
    "cron schedules (robfig/cron syntax, CRON_TZ= prefixes), status that follows each Backup,\n"
    "status rebuilt after a restore, and a backup before each Management release upgrade.\n"
    "\n"
    "Flags:\n"
    "  --namespace NS                  system namespace for Backups and storage locations (default kcm-system)\n"
    "  --engine auto|builtin|velero    who executes Velero Backups: kcmdr's builtin engine, or a Velero\n"
    "                                  server in the namespace; auto (default) picks velero when a Velero\n"
    "                                  Deployment runs there, else builtin. builtin refuses to start next\n"
    "                                  to a running Velero server\n"
    "  --compact-selectors             one `In` selector per label key instead of one per value\n"
    "  --leader-elect                  run as one of several replicas; only the Lease holder works\n"
    "  --restore-wait DURATION         how long a restored ManagementBackup waits for its Backups to come\n"
    "                                  back by the storage location's sync before it says so (default 3m)\n"
    "  --restore-hold DURATION         how long a due scheduled slot waits while a Restore runs in the\n"
    "                                  namespace, so no backup holds a half-restored cluster (default 1h;\n"
    "                                  0: slots never wait for Restores)\n"
    "  --metrics-bind-address ADDR     Prometheus /metrics, e.g. :8080 (default 0: off)\n"
    "  --health-probe-bind-address A   /healthz and /readyz, e.g. :8081 (default 0: off)\n"
    "  --kubeconfig, --context         as kubectl; in a Pod the service account is used\n"
    "  --log-format text|json, -v N    logging (N: 0 errors .. 4 trace, default 2)\n"
    "\n"
    "Stops cleanly on SIGTERM or SIGINT.\n";

int controller_main(int argc, char **argv) {
  struct cli_globals g;
  int ret = cli_start(&argc, argv, &g, usage);
  if (ret >= 0) return ret;
  struct ctl x = {0};
  mallopt(M_ARENA_MAX, 2); /* a long-running daemon with several threads: keep RSS flat */
  const char *engine = "auto", *metrics_addr = "0", *health_addr = "0", *restore_wait = NULL, *restore_hold = NULL;
  static const char *const value_flags[] = {"--engine", "--metrics-bind-address", "--health-probe-bind-address",
                                            "--restore-wait", "--restore-hold"};
  const char **targets[] = {&engine, &metrics_addr, &health_addr, &restore_wait, &restore_hold};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool m = false;
    for (size_t k = 0; k < KD_ARRAY_LEN(value_flags) && !m; k++) {
      const char *v = cli_flag_value(argc, argv, &i, value_flags[k], &m);
      if (m && !v) {
        fprintf(stderr, "kcmdr controller: %s needs a value\n", value_flags[k]);
        return CLI_USAGE;
      }
      if (m) *targets[k] = v;
    }
    if (m) continue;
    if (strcmp(a, "--compact-selectors") == 0) x.compact = true;
    else if (strcmp(a, "--leader-elect") == 0 || strcmp(a, "--leader-elect=true") == 0) x.leader_elect = true;
    else if (strcmp(a, "--leader-elect=false") == 0) x.leader_elect = false;
    else {
      fprintf(stderr, "kcmdr controller: unknown argument '%s'\n%s", a, usage);
      return CLI_USAGE;
    }
  }
  if (strcmp(engine, "velero") != 0 && strcmp(engine, "builtin") != 0 && strcmp(engine, "auto") != 0) {
    fprintf(stderr, "kcmdr controller: --engine is auto, builtin or velero, not '%s'\n", engine);
    return CLI_USAGE;
  }
  if (restore_wait) {
    int64_t ns;
    if (cron_parse_go_duration(restore_wait, &ns) != KD_OK || ns < 1000000000LL || ns > 86400LL * 1000000000LL) {
      fprintf(stderr, "kcmdr controller: --restore-wait takes a duration from 1s to 24h, e.g. 3m, not '%s'\n", restore_wait);
      return CLI_USAGE;
    }
    x.restore_wait_s = (int)(ns / 1000000000LL);
  }
  x.restore_hold_s = MB_RESTORE_HOLD_S;
  if (restore_hold) {
    int64_t ns;
    if (cron_parse_go_duration(restore_hold, &ns) != KD_OK || ns < 0 || ns > 86400LL * 1000000000LL) {
      fprintf(stderr, "kcmdr controller: --restore-hold takes a duration from 0s to 24h, e.g. 30m, not '%s'\n", restore_hold);
      return CLI_USAGE;
    }
    x.restore_hold_s = (int)(ns / 1000000000LL);
  }
  bool en;
  char host[64];
  int port;
  if (httpserv_parse_addr(metrics_addr, &en, host, &port) || httpserv_parse_addr(health_addr, &en, host, &port)) {
    fprintf(stderr, "kcmdr controller: %s\n", kd_errmsg());
    return CLI_USAGE;
  }
  x.ns = g.namespace ? g.namespace : "kcm-system";
  g.namespace = x.ns;

  ret = CLI_FAIL;
  httpserv *hs_metrics = NULL, *hs_health = NULL;
  pthread_t th[INF_COUNT + 3];
  struct inf_thread it[INF_COUNT];
  int nth = 0;
  struct lease_arg la = {&x, KD_OK};
  pthread_mutex_init(&x.qlock, NULL);
  pthread_cond_init(&x.qcond, NULL);
  x.queue = json_object();
  x.created = json_object();
  x.restore_held = json_object();
  x.backoff = json_object();
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (cli_client(&g, &x.c) != CLI_OK) goto done;
  if (region_clients_new(x.c, x.ns, &x.regions) != KD_OK) goto done;
  /* the Lease renews on its own connections, with a timeout well inside the renew deadline */
  struct kube_client_opts lease_opts = {0, 0, -1, 4000, NULL};
  if (x.leader_elect && cli_client_with(&g, &lease_opts, &x.lease_c) != CLI_OK) goto done;
  if (events_new(x.c, "kcmdr-controller", &x.ev) != KD_OK || metrics_new(&x.m) != KD_OK) {
    fprintf(stderr, "kcmdr controller: %s\n", kd_errmsg());
    goto done;
  }
  /* the ManagementBackup CRD must exist; everything else may come later */
  json_t *probe = NULL;
  if (kube_request(x.c, "GET", "/apis/k0rdent.mirantis.com/v1beta1/managementbackups?limit=1", NULL, NULL, 0, &probe) !=
      KD_OK) {
    fprintf(stderr, "kcmdr controller: the ManagementBackup CRD (k0rdent.mirantis.com/v1beta1) is not served: %s\n"
                    "  install it with: kcmdr install | kubectl apply -f -\n", kd_errmsg());
    goto done;
  }
  json_decref(probe);
  if (strcmp(engine, "velero") != 0) {
    /* two executors must never race on one Backup */
    bool velero = false;
    char which[256];
    if (engine_velero_running(x.c, x.ns, &velero, which, sizeof which) != KD_OK) {
      fprintf(stderr, "kcmdr controller: %s\n", kd_errmsg());
      goto done;
    }
    if (velero && strcmp(engine, "builtin") == 0) {
      fprintf(stderr, "kcmdr controller: a Velero server (Deployment %s/%s) runs in this namespace; the builtin engine "
                      "would race it on every Backup. Use --engine=velero (or auto), or scale the Velero Deployment to 0.\n",
              x.ns, which);
      goto done;
    }
    engine = velero ? "velero" : "builtin";
    if (velero) kd_log(KD_LOG_INFO, "a Velero server (Deployment %s/%s) runs here: it executes the Backups", x.ns, which);
  }
  if (strcmp(engine, "builtin") == 0) {
    struct engine_opts eo = {x.ns, 0, x.leader_elect ? &x.lease_valid_until_ms : NULL, x.leader_elect ? &x.leading : NULL,
                             x.leader_elect ? &x.lease_term : NULL};
    if (engine_new(x.c, &eo, &x.eng) != KD_OK) {
      fprintf(stderr, "kcmdr controller: %s\n", kd_errmsg());
      goto done;
    }
  }
  x.velero_ok = 1; /* until the Backup informer says otherwise */
  struct informer_handlers hmb = {on_mb, on_mb_update, on_mb_delete, on_mb_synced, &x};
  struct informer_handlers hbk = {on_backup, on_backup_update, on_backup, on_velero_synced, &x};
  struct informer_handlers hbsl = {on_anything, on_anything_update, on_anything, NULL, &x};
  struct informer_handlers hmg = {on_mgmt, on_mgmt_update, NULL, on_mgmt_synced, &x};
  struct informer_handlers hcd = {NULL, NULL, NULL, on_cd_synced, &x};
  struct informer_handlers hct = {NULL, NULL, NULL, on_ct_synced, &x};
  struct informer_opts o_mb = {NULL, NULL, 0, strip_managed_fields};
  struct informer_opts o_ns = {x.ns, NULL, 0, strip_managed_fields};
  struct informer_opts o_bk = {x.ns, NULL, 0, keep_backup};
  struct informer_opts o_sel = {NULL, NULL, 0, keep_for_selectors};
  struct informer_opts o_mg = {NULL, NULL, 0, strip_managed_fields};
  struct informer_handlers hrs = {NULL, on_restore_update, NULL, NULL, &x};
  struct informer_opts o_rs = {x.ns, NULL, 0, keep_restore};
  if (informer_new(x.c, &res_mb, &o_mb, &hmb, &x.inf[INF_MB]) || informer_new(x.c, &res_backup, &o_bk, &hbk, &x.inf[INF_BACKUP]) ||
      informer_new(x.c, &res_bsl, &o_ns, &hbsl, &x.inf[INF_BSL]) || informer_new(x.c, &res_cd, &o_sel, &hcd, &x.inf[INF_CD]) ||
      informer_new(x.c, &res_ct, &o_sel, &hct, &x.inf[INF_CT]) || informer_new(x.c, &res_mgmt, &o_mg, &hmg, &x.inf[INF_MGMT]) ||
      informer_new(x.c, &res_restore, &o_rs, &hrs, &x.inf[INF_RESTORE])) {
    fprintf(stderr, "kcmdr controller: %s\n", kd_errmsg());
    goto done;
  }
  x.leading = !x.leader_elect;
  metrics_gauge_set(x.m, M_LEADER, M_LEADER_HELP, NULL, NULL, x.leading);
  for (size_t i = 0; i < KD_ARRAY_LEN(final_phases); i++) { /* from 0, so increase() sees the first */
    const char *lv[] = {"phase", final_phases[i], NULL};
    metrics_counter_addv(x.m, M_RESTORES_FINISHED, M_RESTORES_FINISHED_HELP, lv, 0);
  }
  metrics_set_collector(x.m, collect, &x);
  if (httpserv_start(metrics_addr, x.m, NULL, NULL, &hs_metrics) != KD_OK ||
      httpserv_start(health_addr, NULL, ready, &x, &hs_health) != KD_OK) {
    fprintf(stderr, "kcmdr controller: %s\n", kd_errmsg());
    goto done;
  }
  for (int i = 0; i < INF_COUNT; i++) {
    it[i] = (struct inf_thread){&x, i};
    pthread_create(&th[nth++], NULL, informer_thread, &it[i]);
  }
  pthread_create(&th[nth++], NULL, worker_thread, &x);
  if (x.eng) pthread_create(&th[nth++], NULL, engine_thread, &x);
  if (x.leader_elect) pthread_create(&th[nth++], NULL, lease_thread, &la);
  kd_log(KD_LOG_INFO, "kcmdr controller %s: namespace %s, engine %s, %s selectors%s", KCMDR_VERSION, x.ns, engine,
         x.compact ? "compact" : "kcm", x.leader_elect ? ", leader election on" : "");
  while (!g_stop) kd_sleep_ms(200, &g_stop);
  kd_log(KD_LOG_INFO, "stopping");
  pthread_mutex_lock(&x.qlock);
  pthread_cond_broadcast(&x.qcond);
  pthread_mutex_unlock(&x.qlock);
  for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
  ret = la.rc == KD_OK ? CLI_OK : CLI_FAIL;
done:
  httpserv_stop(hs_metrics);
  httpserv_stop(hs_health);
  for (int i = 0; i < INF_COUNT; i++) informer_free(x.inf[i]);
  engine_free(x.eng);
  events_free(x.ev);
  metrics_free(x.m);
  region_clients_free(x.regions);
  kube_client_free(x.c);
  kube_client_free(x.lease_c);
  json_decref(x.queue);
  json_decref(x.created);
  json_decref(x.backoff);
  json_decref(x.restore_held);
  pthread_mutex_destroy(&x.qlock);
  pthread_cond_destroy(&x.qcond);
  return ret;
}
