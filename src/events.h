/* events.h — Kubernetes Events (core/v1) about our objects, as `kubectl describe` shows them.
 * Repeats of the same event (same object, type, reason and message) within 10 minutes update
 * one Event's count and lastTimestamp instead of creating new ones, as client-go does. */
#ifndef KCMDR_EVENTS_H
#define KCMDR_EVENTS_H

#include <jansson.h>

#include "kube.h"

typedef struct events events;

/* A recorder for component (e.g. "kcmdr-controller") that writes Events into the involved
 * object's namespace, or into "default" for cluster-scoped objects (as client-go does: the API
 * server accepts no other). Borrows c. */
kd_rc events_new(kube_client *c, const char *component, events **out);
/* Free the recorder. NULL is fine. */
void events_free(events *e);

/* Record an event about obj (its apiVersion, kind, metadata name/namespace/uid are used).
 * type is "Normal" or "Warning"; reason is CamelCase. Failures are logged and returned, never
 * fatal to the caller's work. */
kd_rc events_emit(events *e, json_t *obj, const char *type, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
