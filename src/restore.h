/* restore.h — execute one velero.io/v1 Restore with the builtin engine (DESIGN.md §2, "Restore"):
 * validate it, stage the backup's tarball and check it against the backup's checksums BEFORE
 * anything is created, read every entry (a hostile or damaged archive fails here, with nothing
 * created), then create the selected objects in Velero's order (CRDs first and Established
 * before their objects; namespaces; the high-priority list; everything else; the low-priority
 * list), objects of one priority class concurrently. Status, logs and results as Velero keeps
 * them: restores/<r>/restore-<r>-logs.gz and -results.gz in the backup's location.
 *
 * Per object, as Velero's restoreItem: server-set metadata (and managedFields, see restore.c)
 * and status stripped (status restored through the status subresource for restoreStatus
 * resources); Velero's built-in actions (Service clusterIP(s) and nodePorts, Pod nodeName and
 * token volumes, Job controller-uid labels); spec.resourceModifier rules; namespaceMapping;
 * labels velero.io/backup-name and velero.io/restore-name; missing namespaces created. An
 * existing object equal after stripping is skipped; a different one is a warning under policy
 * none, merge-patched under update (ServiceAccounts are merged as Velero merges them). A failed
 * object is an error in the results, never the end of the restore (then PartiallyFailed). */
#ifndef KCMDR_RESTORE_H
#define KCMDR_RESTORE_H

#include <jansson.h>
#include <stdint.h>

#include "archive.h"
#include "fence.h"
#include "kube.h"
#include "objstore.h"
#include "util.h"

#define RESTORE_MAX_ARCHIVE (16ull << 30) /* default cap on a staged tarball */
#define RESTORE_MAX_OBJECT ARCHIVE_MAX_ENTRY /* one object in the archive (etcd takes ~1.5 MiB by default) */

/* ---- dry run (kcmdr restore create --dry-run, src/preview.c) ----
 * The same execution with every create and patch sent with ?dryRun=All (the API server
 * validates and admits it, persists nothing), no status written, nothing written to the
 * location, the CRD wait skipped; each object's outcome handed to a callback. */
enum restore_verdict {
  RESTORE_V_CREATE,    /* would be created (the server accepted the dry run, or reason says why it was not asked) */
  RESTORE_V_UPDATE,    /* exists and differs; would be patched (policy update, or a ServiceAccount merge) */
  RESTORE_V_UNCHANGED, /* exists and equals the backed-up version (only the restore labels would be set) */
  RESTORE_V_CONFLICT,  /* exists and differs: left as it is, with a warning (policy none, or the server refused the
                          update: reason "update refused: <the server's message>") */
  RESTORE_V_SKIP,      /* not restored, reason says why (a completed pod, a token the controller makes) */
  RESTORE_V_FAIL,      /* would fail: reason is the server's (or the engine's) message */
};
struct restore_verdict_info {
  size_t order;        /* the object's place in the restore's order (a namespace made for an object: its place) */
  const char *gr;      /* "resource[.group]" */
  const char *ns;      /* the namespace it would be restored into (after namespaceMapping); "" cluster-scoped */
  const char *name;
  enum restore_verdict verdict;
  const char *reason;  /* may be NULL */
  json_t *live;        /* UPDATE, CONFLICT, UNCHANGED: the object in the cluster as read, else NULL (borrowed) */
  json_t *after;       /* UPDATE: the dry-run patch's answer; CONFLICT: what the restore has; CREATE: the dry-run
                          answer or NULL (borrowed) */
};
struct restore_dry_run {
  /* called once per object, from several worker threads at once */
  void (*verdict)(const struct restore_verdict_info *v, void *ud);
  void *ud;
  json_t *validation_errors; /* an array the FailedValidation messages are appended to */
  json_t *results;           /* out: the results file the restore would write ({warnings, errors}; new reference) */
  json_t *modifiers;         /* borrowed, or NULL: the ConfigMap spec.resourceModifier names, as it would be written
                              * (a preview writes nothing, so the engine reads this instead of the cluster's) */
};

struct restore_job {
  kube_client *client;        /* borrowed */
  const char *ns;             /* the system namespace the Restore lives in */
  json_t *restore;            /* the Restore as listed (borrowed) */
  json_t *backup;             /* the Backup spec.backupName names, or NULL when there is none */
  json_t *bsl;                /* the Backup's location, or NULL when it does not exist */
  objstore *store;            /* its opened store, or NULL when it could not be opened */
  const char *store_error;    /* why store is NULL */
  volatile const int *cancel; /* set: stop soon, mark Failed */
  const char *stage_dir;      /* where the tarball is staged; NULL = $TMPDIR or /tmp */
  int concurrency;            /* objects created at once within one priority class; 0 = 16 */
  uint64_t max_archive;       /* 0 = RESTORE_MAX_ARCHIVE */
  int crd_wait_s;             /* how long a restored CRD may take to be Established; 0 = 60 */
  const struct fence *fence;  /* the leadership term the job runs in (NULL: no election) */
  struct restore_dry_run *dry_run; /* non-NULL: a dry run (see above); the Restore need not exist */
};

struct restore_result {
  char phase[32];             /* Completed, PartiallyFailed, Failed or FailedValidation */
  long total;                 /* objects selected from the backup */
  long created, updated, skipped, failed;
  long errors, warnings;
  char failure[1024];         /* why it Failed ("" otherwise) */
};

/* Run job to the end and record the outcome in the Restore's status. Validation failures
 * (no backup named, backup missing or not Completed/PartiallyFailed, its location missing or
 * Unavailable, existingResourcePolicy other than none/update, non-restorable resources
 * included, labelSelector with orLabelSelectors, an unusable resourceModifier) end as
 * FailedValidation with validationErrors and create nothing. An archive that fails its
 * checksums, or is damaged or hostile, ends Failed with a clear failureReason and creates
 * nothing. The API server gone or a cancel mid-restore ends Failed. Returns KD_OK when the
 * outcome was recorded (whatever the phase), else the error that prevented even that
 * (KD_ERR_CONFLICT: the Restore is not New any more). */
kd_rc restore_execute(const struct restore_job *job, struct restore_result *res);
/* (A dry run writes no status: it returns KD_OK with the phase the restore would end in.) */

/* Mark a Restore this engine left InProgress (crash, kill, lost leadership) Failed with
 * reason: a compare-and-swap from InProgress on this very Restore, under fence (may be NULL).
 * Objects it created stay (as with Velero); running the Restore again under policy update
 * finishes the job. Returns KD_OK when the status was written; KD_ERR_CONFLICT when it is no
 * longer InProgress. */
kd_rc restore_fail_abandoned(kube_client *c, const char *ns, json_t *restore, const char *reason, const struct fence *fence);

/* ---- pure parts, exposed for unit tests ---- */

/* Strip what Velero's resetMetadataAndStatus strips (generateName, selfLink, uid,
 * resourceVersion, generation, creationTimestamp, deletionTimestamp,
 * deletionGracePeriodSeconds, ownerReferences, and status) plus managedFields, in place. */
void restore_strip(json_t *obj);
/* Velero's built-in restore item actions for group_resource, in place: services (cluster IPs,
 * node ports), pods (node name, priority, token volumes), jobs.batch (controller-uid labels),
 * secrets (a service-account token's data and uid annotation), serviceaccounts (the last
 * <sa>-token-* reference), rolebindings and clusterrolebindings (subjects' namespaces through
 * ns_map, spec.namespaceMapping, may be NULL). preserve_node_ports: spec.preserveNodePorts.
 * Skipping a token Secret whose ServiceAccount exists needs the cluster: restore_execute does it. */
void restore_builtin_actions(json_t *obj, const char *group_resource, bool preserve_node_ports, json_t *ns_map);
/* Velero's isCompleted (a Pod Succeeded/Failed, a Job with completionTime), mirror Pods, and
 * auto-registered APIServices: objects a restore skips. */
bool restore_skipped_kind(json_t *obj, const char *group_resource, const char **why);
/* mergeServiceAccounts: into a copy of from_cluster, the backup's secrets and
 * imagePullSecrets (by name) and labels and annotations (missing keys only). New reference, or
 * NULL on no memory. */
json_t *restore_merge_service_accounts(json_t *from_cluster, json_t *from_backup);

#endif
