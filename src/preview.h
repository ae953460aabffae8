/* preview.h — know before you restore: `kcmdr restore create --dry-run` (what a restore would do
 * to each object, from the builtin engine's own execution in its dry-run mode, restore.h) and
 * `kcmdr backup diff` (what changed in the cluster since a backup). Neither writes anything: not
 * to the cluster (the restore's creates and patches go with ?dryRun=All), not to the storage
 * location (its store refuses every write), no Restore object. CLI layer: prints to stdout. */
#ifndef KCMDR_PREVIEW_H
#define KCMDR_PREVIEW_H

#include <jansson.h>
#include <stdbool.h>

#include "cli.h"
#include "kube.h"
#include "restore.h"

/* Run restore (the Restore `kcmdr restore create` would create, never created; borrowed) in ns
 * as a dry run of restore_execute with the location and keys the engine would use (the Backup's
 * spec.storageLocation, else the default location; its credentials Secret; the encryption and
 * signature settings), and print one line per object (create, update, unchanged, conflict,
 * skip, fail, with the reason), the warnings and errors the restore's results would hold, and a
 * summary; diff: a unified diff of each update and conflict, server-set fields aside
 * (diff.h). fmt json|yaml: all of it as one object. Returns CLI_OK when the restore would end
 * Completed with no object failing or in conflict, else CLI_FAIL (after saying why). */
int preview_restore(kube_client *c, const char *ns, json_t *restore, json_t *modifiers, bool diff, enum cli_output fmt);

/* `kcmdr backup diff NAME`: the objects of backup name (ns) read from its location (checksums
 * checked, decrypted with the location's keys) against the cluster now: changed (server-set
 * fields aside), removed since (in the backup, not in the cluster), added since (in the cluster,
 * selected by the backup's own spec: its resource and namespace filters, label selectors and
 * the velero.io/exclude-from-backup label, backup.h; namespaces themselves aside). One line per
 * difference and a summary; diff: the unified diff of each change (backup to cluster). fmt
 * json|yaml: one object. CLI_OK when it could compare (differences or not), else CLI_FAIL. */
int preview_backup_diff(kube_client *c, const char *ns, const char *name, bool diff, enum cli_output fmt);

/* Add n to *total when it stays within cap (what names the unit in the message); else leave
 * *total as it is and fail KD_ERR_TOOBIG: backup diff's caps on the objects it reads and the
 * differences it keeps (a comparison that does not fit fails, never a short list). Pure. */
kd_rc preview_cap_add(size_t *total, size_t n, size_t cap, const char *what);

/* The word a verdict is shown as: create, update, unchanged, conflict, skip, fail. Pure. */
const char *preview_action(enum restore_verdict v);

#endif
