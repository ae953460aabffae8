/* mgmtbackup.h — the pure rules of kcm's ManagementBackup (DESIGN.md §2), free of I/O so they
 * can be tested alone: which label selectors a backup gets, the Velero Backup object built for
 * it, names and their bounds, Backup phases, and which restored Backup a status is rebuilt from. */
#ifndef KCMDR_MGMTBACKUP_H
#define KCMDR_MGMTBACKUP_H

#include <jansson.h>
#include <stdbool.h>
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
 * {matchLabels} per value; both select the same objects. New reference; NULL on no memory. */
json_t *mb_selectors(json_t *cluster_deployments, json_t *cluster_templates, bool compact);

/* The velero.io/v1 Backup kcm creates (new reference; NULL on no memory): name in namespace ns,
 * labelled MB_LABEL_BACKUP=<bounded mb_name>, spec includedNamespaces ["*"], excludedResources
 * ["clusters.cluster.x-k8s.io"], ttl 720h0m0s, storageLocation bsl, orLabelSelectors selectors. */
json_t *mb_backup_object(const char *name, const char *ns, const char *mb_name, const char *bsl, json_t *selectors);

/* in, or when longer than max: its first max-9 bytes + "-" + 8 hex digits of its SHA-256. out
 * must hold max+1 bytes. */
void mb_bounded(const char *in, size_t max, char *out);
/* "<mb>-YYYYMMDDhhmmss" (UTC), bounded to MB_NAME_MAX. out: MB_NAME_MAX+1 bytes. */
void mb_scheduled_name(const char *mb, time_t t, char *out);
/* If backup is "<mb>-YYYYMMDDhhmmss", its time in *t. */
bool mb_parse_scheduled_name(const char *mb, const char *backup, time_t *t);

/* Backup phases: "" and New and InProgress are running; Completed, PartiallyFailed, Failed and
 * FailedValidation end an attempt (kcm forgets FailedValidation; we do not). */
bool mb_phase_running(const char *phase);
bool mb_phase_terminal(const char *phase);

/* After a restore: from backups (array, borrowed), the one the status is rebuilt from: for a
 * schedule the newest "<mb>-<timestamp>" labelled for mb whose time is not after now; else the
 * Backup named like mb. Borrowed reference or NULL. */
json_t *mb_pick_restored(const char *mb, bool scheduled, json_t *backups, time_t now);

#endif
