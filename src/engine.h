/* engine.h — the builtin engine: executes velero.io/v1 Backups (backup.c) on workers of its own,
 * keeps BackupStorageLocation status (validation), syncs backups found in a location into the
 * cluster, expires backups and serves DeleteBackupRequests, as the Velero server does for
 * Kubernetes resources. Runs inside `kcmdr controller --engine=builtin` (or auto). */
#ifndef KCMDR_ENGINE_H
#define KCMDR_ENGINE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "kube.h"
#include "objstore.h"
#include "util.h"

#define ENGINE_CRED_MAX (64u << 10) /* largest credentials file accepted from a Secret */
#define ENGINE_DBR_MAX_AGE_S (24 * 3600) /* processed DeleteBackupRequests are removed after this, as Velero */

typedef struct engine engine;

struct engine_opts {
  const char *ns;                  /* the namespace of Backups, BSLs and DeleteBackupRequests */
  int workers;                     /* Backups executed at once; 0 = 2 */
  _Atomic int64_t *valid_until_ms; /* leader election: act only while kd_now_ms() is below it; NULL = always */
  volatile const int *leading;     /* leader election: 0 while standing by; NULL = always leading */
  _Atomic uint64_t *term;          /* leader election: the lease's term counter (fence.h); NULL = none */
};

/* Create the engine (c borrowed, must outlive it). KD_ERR_NOMEM. */
kd_rc engine_new(kube_client *c, const struct engine_opts *opts, engine **out);
/* Run until *stop: informers on Backups, Restores, storage locations and DeleteBackupRequests; a
 * loop that never touches the network and starts due Backups and Restores on workers and a
 * round of upkeep (validation, sync, deletions, expiry, abandoned jobs) on a thread of its own.
 * Every job carries the leadership term it started in and writes nothing once that term ended;
 * running jobs are cancelled when *stop is set or the term ends. Returns KD_OK after a stop, or
 * a fatal error (the Velero CRDs are not served, no memory). */
kd_rc engine_run(engine *e, volatile const int *stop);
/* Free the engine after engine_run returned. NULL is fine. */
void engine_free(engine *e);

/* Is a Velero server Deployment running in ns (spec.replicas > 0; named "velero" or labelled
 * component=velero or app.kubernetes.io/name=velero)? *which gets its name. Fails as the API
 * does (KD_ERR_FORBIDDEN when we may not list Deployments). */
kd_rc engine_velero_running(kube_client *c, const char *ns, bool *running, char *which, size_t n);

/* Is the DeleteBackupRequest dbr one the engine removes at time now (pure)? Only when it is
 * Processed, has a uid (the removal is exact) and a creationTimestamp that parses and lies more
 * than ENGINE_DBR_MAX_AGE_S before now; never on a timestamp it cannot read. */
bool engine_dbr_expired(json_t *dbr, time_t now);

/* Open the store bsl describes, reading the Secret key its spec.credential names from ns.
 * KD_ERR_CONFIG / KD_ERR_NOTFOUND with a message naming the Secret and key; never logs secrets. */
kd_rc engine_open_store(kube_client *c, const char *ns, json_t *bsl, objstore **out);

#endif
