/* velero.h — what both the controller and the engine know about Velero's objects and bucket
 * (DESIGN.md §2): phases, labels, file names in the bucket, Velero's name bounding, the
 * always-excluded restore resources and the restore order. Pure; no I/O. */
#ifndef KCMDR_VELERO_H
#define KCMDR_VELERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define VELERO_GROUP "velero.io"
#define VELERO_FORMAT_VERSION "1.1.0"
#define VELERO_DEFAULT_TTL "720h0m0s"
#define VELERO_LABEL_BACKUP_NAME "velero.io/backup-name"
#define VELERO_LABEL_RESTORE_NAME "velero.io/restore-name"
#define VELERO_LABEL_STORAGE_LOCATION "velero.io/storage-location"
#define VELERO_LABEL_EXCLUDE "velero.io/exclude-from-backup"
#define VELERO_LABEL_MAX 63
/* kcmdr's annotation on a Backup that its sync created from a location (value: the location's
 * name): never executed; its status comes from the location, and one still without a phase is
 * not "running" (it blocks no schedule). */
#define VELERO_SYNCED_ANNOTATION "kcmdr.io/synced-from-location"
#define VELERO_KEY_MAX 1024

/* Backup phases (Velero 1.18's pkg/apis/velero/v1/backup_types.go; Queued and ReadyToStart
 * come with its backup queue: a Backup waits there, at status.queuePosition, before it runs) */
#define VELERO_PHASE_NEW "New"
#define VELERO_PHASE_QUEUED "Queued"
#define VELERO_PHASE_READY_TO_START "ReadyToStart"
#define VELERO_PHASE_FAILED_VALIDATION "FailedValidation"
#define VELERO_PHASE_IN_PROGRESS "InProgress"
#define VELERO_PHASE_WAITING_PLUGIN_OPS "WaitingForPluginOperations"
#define VELERO_PHASE_WAITING_PLUGIN_OPS_PF "WaitingForPluginOperationsPartiallyFailed"
#define VELERO_PHASE_FINALIZING "Finalizing"
#define VELERO_PHASE_FINALIZING_PF "FinalizingPartiallyFailed"
#define VELERO_PHASE_COMPLETED "Completed"
#define VELERO_PHASE_PARTIALLY_FAILED "PartiallyFailed"
#define VELERO_PHASE_FAILED "Failed"
#define VELERO_PHASE_DELETING "Deleting"

/* A backup (or restore) phase that ends it: Completed, PartiallyFailed, Failed, FailedValidation.
 * False for NULL. */
bool velero_phase_terminal(const char *phase);
/* A backup (or restore) that has not ended yet and may still write: no phase (NULL or "", not
 * looked at yet), New, Queued, ReadyToStart, InProgress, WaitingForPluginOperations[PartiallyFailed],
 * Finalizing[PartiallyFailed]. Deleting and unknown phases are neither running nor terminal.
 * The one list every "does a Backup still run / block / get waited for" decision uses. */
bool velero_phase_running(const char *phase);
/* Not started yet: no phase, New, Queued or ReadyToStart (nothing has been written for it). */
bool velero_phase_not_started(const char *phase);

/* Files of one backup in the bucket. */
enum velero_backup_file {
  VELERO_BACKUP_METADATA,     /* backups/<b>/velero-backup.json (written last) */
  VELERO_BACKUP_TARBALL,      /* backups/<b>/<b>.tar.gz */
  VELERO_BACKUP_LOGS,         /* backups/<b>/<b>-logs.gz */
  VELERO_BACKUP_RESOURCE_LIST,/* backups/<b>/<b>-resource-list.json.gz */
  VELERO_BACKUP_RESULTS,      /* backups/<b>/<b>-results.gz */
  VELERO_BACKUP_CHECKSUMS,    /* backups/<b>/<b>-checksums.json (kcmdr's) */
  VELERO_BACKUP_SIGNATURE,    /* backups/<b>/<b>-checksums.json.sig (kcmdr's, crypt.h) */
};
enum velero_restore_file {
  VELERO_RESTORE_LOGS,        /* restores/<r>/restore-<r>-logs.gz */
  VELERO_RESTORE_RESULTS,     /* restores/<r>/restore-<r>-results.gz */
};
/* The key (relative to the location) of one file into out[n]. KD_ERR_INVALID for a name that
 * is empty or holds '/' or is "." / ".."; KD_ERR_TOOBIG when it does not fit. */
kd_rc velero_backup_key(const char *backup, enum velero_backup_file f, char *out, size_t n);
kd_rc velero_restore_key(const char *restore, enum velero_restore_file f, char *out, size_t n);
/* True for Velero's own top-level folders: backups restores restic metadata plugins kopia. */
bool velero_toplevel_allowed(const char *folder);

/* Velero's label.GetValidName: in when at most 63 bytes, else its first 57 bytes + the first 6
 * hex digits of its SHA-256. out: VELERO_LABEL_MAX+1 bytes. */
void velero_label_value(const char *in, char *out);

/* The resources always appended to a Restore's excludedResources, in Velero's order; NULL-ended. */
extern const char *const velero_restore_always_excluded[];
/* Restore order key for a "resource[.group]" name: the high-priority list first (its index),
 * then every other resource (alphabetically, by the caller's sort on the name), then the
 * low-priority list. Returns the class: 0..H-1 for high priorities, H for "any other", H+1.. for
 * the low ones; compare (class, name). group_resource is the tarball folder name (what Velero's
 * discovery resolves its list to: "customresourcedefinitions.apiextensions.k8s.io",
 * "clusterroles.rbac.authorization.k8s.io"); Velero's own short spellings match too. */
int velero_restore_priority(const char *group_resource);

/* Parse a Go duration as Velero's ttl ("720h0m0s", "24h", "90m") into seconds (fractions cut).
 * NULL, "" or a zero duration give the 720h default, as Velero's backup controller does.
 * KD_ERR_INVALID for anything Go's time.ParseDuration rejects. */
kd_rc velero_parse_ttl(const char *s, int64_t *seconds);

#endif
