/* mgmtbackup.h — the pure rules of kcm's ManagementBackup (DESIGN.md §2), free of I/O so they
 * can be tested alone: which label selectors a backup gets, the Velero Backup object built for
 * it, names and their bounds, Backup phases, and which restored Backup a status is rebuilt from. */
#ifndef KCMDR_MGMTBACKUP_H
#define KCMDR_MGMTBACKUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

#define MB_LABEL_COMPONENT "k0rdent.mirantis.com/component"
#define MB_LABEL_COMPONENT_VALUE "kcm"
#define MB_LABEL_BACKUP "k0rdent.mirantis.com/management-backup"
#define MB_LABEL_RELEASE_BACKUP "k0rdent.mirantis.com/release-backup"
#define VELERO_LABEL_RESTORE "velero.io/restore-name"
#define VELERO_LABEL_BACKUP "velero.io/backup-name"
#define VELERO_LABEL_BSL "velero.io/storage-location"
#define MB_NAME_MAX 253  /* object names */
#define MB_LABEL_MAX 63  /* label values */

/* The Backup's orLabelSelectors for the given ClusterDeployments and ClusterTemplates (JSON
 * arrays of objects; borrowed): the always-present kcm, cert-manager and cluster-api selectors,
 * plus for each ClusterDeployment its Flux and CAPI cluster-name selectors and one provider
 * selector for each provider in the status of its ClusterTemplate (spec.template, looked up in
 * the ClusterDeployment's namespace). Sorted by "key_value" and de-duplicated, as kcm does.
 * compact: one {matchExpressions: [{key, In, values}]} selector per key instead of one
 * {matchLabels} per value; both select the same objects. A name or provider no label value can
 * hold selects nothing and is left out; skipped (a JSON array, or NULL) then gets a message
 * naming it (at most MB_SKIPPED_MAX). New reference; NULL on no memory. */
#define MB_SKIPPED_MAX 20
json_t *mb_selectors(json_t *cluster_deployments, json_t *cluster_templates, bool compact, json_t *skipped);

/* The velero.io/v1 Backup kcm creates (new reference; NULL on no memory): name in namespace ns,
 * labelled MB_LABEL_BACKUP=<bounded mb_name>, spec includedNamespaces ["*"], excludedResources
 * ["clusters.cluster.x-k8s.io"], ttl 720h0m0s, storageLocation bsl, orLabelSelectors selectors. */
json_t *mb_backup_object(const char *name, const char *ns, const char *mb_name, const char *bsl, json_t *selectors);

/* in, or when longer than max (which must be at least 10): its first max-9 bytes, without
 * trailing '.', '-' or '_', + "-" + 8 hex digits of its SHA-256. out must hold max+1 bytes. */
void mb_bounded(const char *in, size_t max, char *out);
/* "<mb>-YYYYMMDDhhmmss" (UTC). When that would pass MB_NAME_MAX, the ManagementBackup's part is
 * bounded (mb_bounded) and the timestamp kept, so the name still parses. out: MB_NAME_MAX+1. */
void mb_scheduled_name(const char *mb, time_t t, char *out);
/* If backup is mb_scheduled_name(mb, t) for some t, its time in *t. */
bool mb_parse_scheduled_name(const char *mb, const char *backup, time_t *t);

/* True when v can be a label value (at most 63 bytes, alphanumerics with '-', '_', '.' inside).
 * A selector on any other value selects nothing, so mb_selectors leaves such values out. */
bool mb_label_value_valid(const char *v);

#define MB_CACHE_LAG_S 10      /* how long a Backup this process created may be missing from the cache */
#define MB_RESTORE_WAIT_S 180  /* default wait for restored Backups to come back (3 Velero sync periods) */
#define MB_NOT_STARTED_S 300   /* a Backup still New after this long is reported in status.error */
#define MB_RESTORE_HOLD_S 3600 /* a running Restore holds scheduled slots at most this long after its
                                * creation (one that never ends must not stop backups for good) */
#define MB_RESTORE_POLL_S 15   /* a slot held by a Restore is looked at again this often (its end
                                * wakes it at once; this is for a Restore deleted while it ran) */

/* Everything one reconcile of a ManagementBackup decides, computed from what the API server
 * says (the object and the Backups as listed) and the time; the controller only does the I/O.
 * The one process-local input is the Backup this process created last (pending), and it counts
 * only for MB_CACHE_LAG_S: nothing a process remembers outranks the API server for longer. */
struct mb_input {
  json_t *mb;               /* the ManagementBackup (borrowed) */
  json_t *backups;          /* array of the Backups in the system namespace (borrowed) */
  const char *pending;      /* a Backup this process created for mb, or NULL */
  time_t pending_time;      /* when it was created */
  time_t now;
  int restore_wait_s;       /* 0 = MB_RESTORE_WAIT_S */
  time_t bsl_synced;        /* status.lastSyncedTime of mb's storage location (0: unknown): a
                             * restored schedule picks its newest Backup only once a sync pass
                             * has ended since that Backup (or the restored object) was made */
  bool regions_running;     /* a regional Backup of mb still runs (mb_region_running): no new
                             * scheduled slot starts, as no management Backup of it may run */
  const char *restore_running; /* a Restore still running in the system namespace
                             * (mb_restore_running), or NULL: no new scheduled slot starts, so no
                             * backup captures a half-restored cluster; the slot is taken after */
};

struct mb_plan {
  json_t *status;           /* the status to write (new reference); reflects the create below */
  bool create;              /* create the Backup create_name */
  char create_name[MB_NAME_MAX + 1];
  bool drop_restore_labels; /* remove velero.io/restore-name and velero.io/backup-name */
  bool waiting;             /* a slot is due but one of its Backups still runs */
  int64_t requeue_s;        /* look again after this many seconds; 0: when something changes */
  const char *reason;       /* set with status.error: the Warning Event reason */
};

/* The name of a Restore among restores (array, borrowed) that still runs and holds scheduled
 * slots: a running phase (velero_phase_running) less than MB_RESTORE_HOLD_S after the later of
 * its creation and its status.startTimestamp (a queued one starts late), and not one still
 * unstarted MB_NOT_STARTED_S after its creation (no engine runs). NULL when none. Pure. */
const char *mb_restore_running(json_t *restores, time_t now);
/* What a due slot still waits for: running (a Restore's name, or NULL) unless the slot has
 * waited hold_s already (held_since: when it began to wait, 0: it does not wait yet; hold_s 0:
 * slots never wait for Restores),
 * whatever Restores came and went meanwhile: then NULL. A stream of Restores, or one a hostile
 * tenant marks InProgress (Velero's Restore has no status subresource), holds one slot at most
 * that long, on the controller's own clock. Pure. */
const char *mb_restore_hold(const char *running, time_t held_since, time_t now, int hold_s);
/* Decide one reconcile (see struct mb_input). *out owns its status; free with mb_plan_free.
 * KD_ERR_NOMEM only: every problem of the object itself is a status.error in the plan. */
kd_rc mb_plan_reconcile(const struct mb_input *in, struct mb_plan *out);
/* Release a plan. */
void mb_plan_free(struct mb_plan *p);

/* After a restore: from backups (array, borrowed), the one the status is rebuilt from, among
 * those labelled for mb: for a schedule the newest "<mb>-<timestamp>" whose time is not after
 * now; else the Backup named like mb. Borrowed reference or NULL. */
json_t *mb_pick_restored(const char *mb, bool scheduled, json_t *backups, time_t now);

/* ---- kcm regions (kcm >= 1.4) ---- */

#define MB_LABEL_REGION "k0rdent.mirantis.com/region"
#define MB_ANNOTATION_REGION_PAUSE "k0rdent.mirantis.com/region-pause"
#define MB_REGION_POLL_S 5    /* a running regional Backup is looked at this often (no watch there) */
#define MB_REGION_RETRY_S 15  /* a region in error is tried again after this long */

/* The regions in use: the distinct status.region of the ClusterDeployments cds (array,
 * borrowed), sorted, those no label can hold included (mb_region_unusable says so; each gets an
 * entry with that error). New reference ([] when none); NULL on no memory. */
json_t *mb_regions_in_use(json_t *cds);

/* Is region a name no regional Backup can be made for (no label value can hold it)? Then msg
 * (size n) says so for its status entry, and its ClusterDeployments are the management
 * cluster's to back up (mb_selectors_for): nothing is backed up nowhere. */
bool mb_region_unusable(const char *region, char *msg, size_t n);

/* mb_selectors over the ClusterDeployments of one region only: region NULL or "" selects those
 * without status.region and those whose region mb_region_unusable refuses (the management
 * cluster's own backup), else those whose status.region is region. Same ownership and failure
 * as mb_selectors. */
json_t *mb_selectors_for(json_t *cds, json_t *cts, const char *region, bool compact, json_t *skipped);

/* The name of region's Backup of mb: scheduled "<mb>-<region>-YYYYMMDDhhmmss" (t), or on
 * demand "<mb>-<region>". Too long a name keeps its stamp: the "<mb>-<region>" part is
 * bounded (mb_bounded) as mb_scheduled_name bounds mb. out: MB_NAME_MAX+1. */
void mb_region_backup_name(const char *mb, const char *region, bool scheduled, time_t t, char *out);

/* mb_backup_object for region's cluster, also labelled MB_LABEL_REGION=region. */
json_t *mb_region_backup_object(const char *name, const char *ns, const char *mb_name, const char *region,
                                const char *bsl, json_t *selectors);

/* Does one of backups (array, borrowed) labelled for mb still run (New, InProgress, ...)? One
 * still New MB_NOT_STARTED_S after its creation does not count: no engine runs in its region,
 * and it must not hold the schedule forever (mb_plan_region puts it in the region's error). */
bool mb_region_running(const char *mb, json_t *backups, time_t now);

/* Region's Backup of mb among backups (array, borrowed; those labelled for mb and region): for
 * a schedule the newest "<mb>-<region>-<stamp>" not after now, else the one on demand.
 * finished_only: only Completed or PartiallyFailed ones count (what a restore may read).
 * Borrowed reference or NULL. */
json_t *mb_pick_region_backup(const char *mb, const char *region, bool scheduled, bool finished_only, json_t *backups,
                              time_t now);

/* One region's part of a reconcile, decided like the top level (mb_plan_reconcile). A regional
 * Backup is created only for a management Backup made on this cluster: in the same reconcile
 * (mgmt_created), or listed in mgmt_backups and not synced in from a location (a region that
 * was unreachable at the slot catches up on that slot). A Backup synced in (after a restore)
 * never leads to a regional one of the same name, which the bucket may still hold. */
struct mb_region_input {
  json_t *mb;             /* the ManagementBackup (borrowed) */
  json_t *status;         /* the top-level status as planned this reconcile (borrowed) */
  const char *region;
  const char *error;      /* the region's cluster cannot be reached or its Region is wrong: the
                           * message for the entry, or NULL */
  json_t *backups;        /* the Backups in the region's system namespace (borrowed; NULL with error) */
  json_t *mgmt_backups;   /* the management cluster's Backups as listed (borrowed) */
  bool mgmt_created;      /* the top level creates its Backup (status.lastBackupName) now */
  time_t now;
  json_t *mb_names;       /* the names of every ManagementBackup (array of strings, borrowed; NULL: none) */
  json_t *regions;        /* the regions in use (array of strings, borrowed; NULL: none) */
};
struct mb_region_plan {
  json_t *entry;          /* the status.regions[] entry to write (new reference) */
  bool create;            /* create create_name in the region */
  char create_name[MB_NAME_MAX + 1];
  int64_t requeue_s;      /* look again after this long (0: no need) */
};
/* Decide one region (see struct mb_region_input). KD_ERR_NOMEM only; free with
 * mb_region_plan_free. Names that would be confused with others' are refused, nothing created
 * and the entry's error saying why (the Backups of all share one location): "<mb>-<region>"
 * equal to another ManagementBackup's name (both would make "<that>" and "<that>-<stamp>") or to
 * "<mb2>-<region2>" of another ManagementBackup and region in use, and a region named like a
 * timestamp (14 digits: "<mb>-<region>" would read as one of mb's own scheduled names). */
kd_rc mb_plan_region(const struct mb_region_input *in, struct mb_region_plan *out);
/* Release what a plan from mb_plan_region owns (its entry); the plan may be planned again. A
 * plan whose mb_plan_region failed holds nothing; freeing it twice is harmless. */
void mb_region_plan_free(struct mb_region_plan *p);

/* status.regions with entry put in place of the one of its region (or appended): st is changed
 * in place. KD_ERR_NOMEM only. */
kd_rc mb_status_set_region(json_t *st, json_t *entry);

/* ---- the controller's bookkeeping, pure so that it is tested alone ---- */

/* Is a resource the controller can do without (Managements, ClusterDeployments,
 * ClusterTemplates: kcm partly installed) served? A 404 that ends its informer is believed
 * only when it comes MB_NOT_SERVED_AFTER times in a row with no full list between: an API
 * server that has just (re)started answers 404 for custom resources until it has loaded the
 * CRDs, and taking one such answer for "not installed" for good let reconciles start from an
 * empty cache. A full list clears it. Fields are atomic: informer threads write, others read. */
#define MB_NOT_SERVED_AFTER 2
struct mb_served {
  _Atomic int notfound; /* 404s in a row since the last full list */
};
/* A full list of the resource was applied to the cache. */
void mb_served_listed(struct mb_served *s);
/* The informer ended with rc: KD_ERR_NOTFOUND counts; anything else says nothing either way. */
void mb_served_ended(struct mb_served *s, kd_rc rc);
/* True while the resource is taken as not served (an empty cache is then the truth). */
bool mb_served_missing(const struct mb_served *s);
/* As far as this informer goes, may reconciles start (and /readyz say ready)? When its cache
 * is synced, or when its resource is not served. */
bool mb_served_ready(const struct mb_served *s, bool synced);

/* Requeue backoff of one ManagementBackup. A reconcile that changes nothing (no status
 * written, nothing created or patched) and comes less than MB_BACKOFF_HOT_MS after the earliest
 * time the backoff allowed is "hot": events keep asking for a key with nothing to do. After
 * MB_BACKOFF_FREE hot ones in a row, the next waits MB_BACKOFF_MIN_MS after the last, doubling
 * up to MB_BACKOFF_MAX_MS, however often events or requeues ask. Progress, or a reconcile that
 * comes later than that (a plan's own clock, a quiet key), ends the streak: looks a plan asks
 * for and the first event after a quiet time are never held back. (A ManagementBackup whose
 * Backup had no phase was reconciled 771 times in 20 minutes, each finding nothing to do; this
 * bounds such a key to about one reconcile a minute.) */
#define MB_BACKOFF_FREE 5
#define MB_BACKOFF_MIN_MS 1000
#define MB_BACKOFF_MAX_MS 60000
#define MB_BACKOFF_HOT_MS 2000
struct mb_backoff {
  int streak;      /* hot reconciles without progress in a row */
  int64_t last_ms; /* when the last reconcile ended (monotonic ms; 0: never) */
};
/* Record a reconcile that ended at now_ms, with or without progress. */
void mb_backoff_done(struct mb_backoff *b, bool progress, int64_t now_ms);
/* The earliest time (monotonic ms) of the next reconcile; 0 when it may run at once. */
int64_t mb_backoff_not_before(const struct mb_backoff *b);

#endif
