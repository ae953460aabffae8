/* retention.h — keep the last N successful backups of a schedule (annotation kcmdr.io/keep-last
 * on a ManagementBackup; kcm's schema is not changed), and the rule that a Backup a Restore is
 * reading is never deleted, shared by the controller and the engine's deletion. */
#ifndef KCMDR_RETENTION_H
#define KCMDR_RETENTION_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "kube.h"
#include "util.h"

#define RETENTION_ANNOTATION "kcmdr.io/keep-last"
#define RETENTION_KEEP_MAX 10000 /* largest N accepted */
#define RETENTION_DELETES_MAX 20 /* DeleteBackupRequests one pass creates at most */
#define RETENTION_READERS_MAX 1000 /* Restores not ended one pass holds; more: nothing deleted */

/* N from mb's annotation: *keep = 0 when it is absent (nothing is deleted). KD_ERR_INVALID with
 * a message naming the value when it is not a whole number in [1, RETENTION_KEEP_MAX]. */
kd_rc retention_keep_last(json_t *mb, long *keep);

/* The name of the first Restore of restores (array, borrowed) that reads backup and has not
 * ended (no phase, New, InProgress, ...), or NULL: such a Backup is never deleted. */
const char *retention_reader(json_t *restores, const char *backup);

/* Which scheduled Backups of ManagementBackup mb (its "<mb>-<timestamp>" Backups labelled for
 * it; never its on-demand one, never a synced copy (kcmdr's annotation, or completed before its
 * object was created, as Velero's sync makes them), never one being deleted) go, keeping keep:
 * beyond the newest keep Completed or PartiallyFailed ones, the older successful ones; Failed
 * and FailedValidation ones older than the newest successful one (they do not count toward N);
 * nothing while no backup succeeded; never one that retention_reader names. Pure: backups and
 * restores are arrays (borrowed). *doomed: a new array of the Backups (new references), oldest
 * first, at most RETENTION_DELETES_MAX. KD_ERR_NOMEM only. */
kd_rc retention_plan(const char *mb, long keep, json_t *backups, json_t *restores, json_t **doomed);

/* The DeleteBackupRequest retention asks with for backup (new reference; NULL without memory, or
 * when backup has no uid that can be a label value): backup_delete_request's, but named
 * "<name, at most 57 bytes>-<uid>" (lower case) instead of a generated name, so that two askers
 * for one Backup make one request. */
#define RETENTION_REQUEST_NAME_MAX 253
json_t *retention_request(const char *ns, json_t *backup);

/* Apply retention for mb in namespace ns: list the Restores, plan, and ask for each doomed
 * Backup's deletion with a DeleteBackupRequest (retention_request), unless one for that Backup's
 * uid exists already (one list call for all; a request of that name existing, 409, is no error).
 * Returns how many requests it created in *asked (may be NULL). Errors of the API server are returned with a message; a request that could not be created is
 * asked again on the next pass. */
kd_rc retention_apply(kube_client *c, const char *ns, const char *mb, long keep, json_t *backups, int *asked);

#endif
