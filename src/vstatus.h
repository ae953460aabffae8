/* vstatus.h — the one way kcmdr writes the status of velero.io objects.
 *
 * Velero's own CRDs (what every k0rdent cluster runs) serve no status subresource for Backups,
 * Restores, DeleteBackupRequests and BackupStorageLocations; kcmdr's own CRDs do. Where /status
 * is served, a write to the main resource drops the status; where it is not, /status answers 404.
 * So the shape is learnt from discovery (GET /apis/velero.io/v1), remembered for a minute, and
 * looked at again whenever a write shows it changed.
 *
 * Every write is a compare-and-swap: read the object, check its phase is one the writer expects,
 * then merge-patch with that resourceVersion as precondition. A 409 is read again, never
 * overwritten. A write whose answer was lost counts as done only when the object, read again,
 * holds every field we wrote. */
#ifndef KCMDR_VSTATUS_H
#define KCMDR_VSTATUS_H

#include <jansson.h>
#include <stdbool.h>

#include "fence.h"
#include "kube.h"
#include "util.h"

/* The phases a writer may expect. "" stands for no phase at all (a Backup nobody looked at yet). */
extern const char *const vstatus_new[];         /* "", New */
extern const char *const vstatus_in_progress[]; /* InProgress */

struct vstatus_write {
  const struct kube_res *res; /* a velero.io kind */
  const char *ns, *name;
  json_t *status;             /* the fields to merge into .status (borrowed) */
  const char *const *expect;  /* NULL-terminated phases the object must be in; NULL = any */
  const char *uid;            /* optional: the object must have this uid (not a namesake) */
  const struct fence *fence;  /* optional: checked before every attempt */
  int patience_ms;            /* transient failures (transport, 5xx, 429) retried this long; 0 = once */
  volatile const int *stop;   /* optional: once set, no more waiting (the process stops) */
};

/* Write w->status as a compare-and-swap (see above). *out (may be NULL) gets the object as
 * written. KD_ERR_CONFLICT when the object's phase is not one of w->expect or its uid differs
 * (message names the phase found); KD_ERR_NOTFOUND when it is gone; KD_ERR_CANCELLED when the
 * fence no longer holds; otherwise the last transport or server error once patience is spent. */
kd_rc vstatus_write(kube_client *c, const struct vstatus_write *w, json_t **out);

/* Does res have a status subresource on the server c talks to? From discovery, cached for a
 * minute per client and resource; refresh forces a new look. Discovery failures are returned
 * (the caller keeps its last answer). */
kd_rc vstatus_has_subresource(kube_client *c, const struct kube_res *res, bool refresh, bool *has);

/* Is phase (NULL or "" = none) one of the NULL-terminated list? */
bool vstatus_phase_in(const char *phase, const char *const *list);

#endif
