/* backup.h — execute one velero.io/v1 Backup with the builtin engine (DESIGN.md §2): validate
 * it, select exactly what Velero selects, stream every object from the API server into a gzip
 * tar in Velero's format 1.1.0 and on to the storage location, then write the logs, resource
 * list, results and checksums, and velero-backup.json LAST, keeping the Backup's status current.
 *
 * The engine (engine.c) owns scheduling: which Backup runs when, on which worker, the storage
 * location object and its store, cancellation. This module owns one execution. */
#ifndef KCMDR_BACKUP_H
#define KCMDR_BACKUP_H

#include <jansson.h>
#include <stdbool.h>

#include "kube.h"
#include "objstore.h"
#include "util.h"

struct backup_job {
  kube_client *client;        /* borrowed */
  const char *ns;             /* the system namespace the Backup lives in */
  json_t *backup;             /* the Backup object as listed (borrowed) */
  json_t *bsl;                /* its BackupStorageLocation, or NULL when it does not exist */
  objstore *store;            /* the opened store of bsl, or NULL when it could not be opened */
  const char *store_error;    /* why store is NULL ("Secret kcm-system/creds has no key cloud") */
  volatile const int *cancel; /* set: stop soon, mark Failed ("cancelled: ...") */
  int gzip_level;             /* 0 = default */
  int list_concurrency;       /* resources listed at once; 0 = 4 */
};

/* What one execution ended with (also written to the Backup's status). */
struct backup_result {
  char phase[32];             /* Completed, PartiallyFailed, Failed or FailedValidation */
  long items;                 /* objects in the archive */
  long errors, warnings;
  uint64_t tarball_bytes;     /* compressed size */
};

/* Run job to the end: phase InProgress (with startTimestamp, the velero.io/storage-location
 * label, version/formatVersion, expiration), progress at most about once a second, then the
 * final phase with completionTimestamp, errors and warnings. Validation failures (unknown,
 * Unavailable or ReadOnly location; labelSelector with orLabelSelectors; a malformed spec; a
 * backup of that name already in the location) end as FailedValidation with validationErrors
 * and write nothing to the location. A failure while running (API server or store gone,
 * cancelled) ends as Failed with the reason in the status and the log; velero-backup.json is
 * then never written and the partial files are removed. Returns KD_OK when the outcome was
 * recorded in the Backup's status (whatever the phase), or the error that prevented even that. */
kd_rc backup_execute(const struct backup_job *job, struct backup_result *res);

/* Mark a Backup this engine left InProgress (a crash, a kill, lost leadership) Failed with
 * reason, and remove its partial files from store (may be NULL). */
kd_rc backup_fail_abandoned(kube_client *c, const char *ns, json_t *backup, objstore *store, const char *reason);

#endif
