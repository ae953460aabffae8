/* region.h — kcm regions (kcm >= 1.4), the I/O side: clients for regional clusters built from
 * their Region's kubeconfig Secret, and the Backups the controller lists and creates there. The
 * decisions are pure, in mgmtbackup.h (mb_plan_region); the restore command's part is in
 * cli_region.c.
 *
 * A Region (cluster-scoped, regions.k0rdent.mirantis.com) names its cluster's kubeconfig by
 * exactly one of spec.kubeConfig {name, key} (a Secret in the system namespace; key "value" when
 * empty) or spec.clusterDeployment {namespace, name} (the Secret "<name>-kubeconfig", key
 * "value", in that namespace), as kcm resolves it. */
#ifndef KCMDR_REGION_H
#define KCMDR_REGION_H

#include <jansson.h>
#include <stdbool.h>

#include "kube.h"
#include "util.h"

#define REGION_TIMEOUT_MS 3000 /* one request to a regional cluster, connect included; no retries */
#define REGION_CACHE_MAX 64    /* regional clients kept; the least recently used goes first */
#define REGION_MSG_MAX 1024
#define REGION_PASS_BUDGET_MS 6000 /* one reconcile's regional calls: at most two dead regions' timeouts */

typedef struct region_clients region_clients;

/* A cache of regional clients; mgmt (borrowed) reads Regions and Secrets, ns is the system
 * namespace (borrowed). KD_ERR_NOMEM. */
kd_rc region_clients_new(kube_client *mgmt, const char *ns, region_clients **out);
/* Free the cache and every client in it. NULL is fine. */
void region_clients_free(region_clients *r);

/* Begin one pass over the regions in use (one reconcile). From now until the next call,
 * region_list_backups contacts nothing once budget_ms (< 0: no limit) have passed since this
 * call or *stop (NULL: none) is set: KD_ERR_CANCELLED at once, msg saying the region was not
 * looked at (its entry waits for a later pass). And no client of a region listed in this pass is
 * dropped to make room: past REGION_CACHE_MAX regions in one pass, KD_ERR_TOOBIG for the rest. */
void region_pass_begin(region_clients *r, long budget_ms, volatile int *stop);

/* Resolve region's cluster and list the Backups there (system namespace) labelled for the
 * ManagementBackup mb: *out a new array. The Region and its Secret are read from the management
 * API server on every call (two GETs), and the client is reused while both resourceVersions stay
 * the same. A regional cluster that failed at the transport level (refused, timed out) is not
 * contacted again for MB_REGION_RETRY_S: the same error comes back at once. So a dead region
 * costs a reconcile at most one REGION_TIMEOUT_MS every MB_REGION_RETRY_S, and a pass at most
 * its budget (region_pass_begin) plus one call's time: the regional list (REGION_TIMEOUT_MS) and
 * the two GETs on the management client (its own timeout).
 * On failure msg (size n) says why, for the region's status entry: a missing Region or Secret,
 * a bad kubeconfig, an unreachable cluster, more than 10000 such Backups (KD_ERR_TOOBIG: the
 * list is never cut short silently). */
kd_rc region_list_backups(region_clients *r, const char *region, const char *mb, json_t **out, char *msg, size_t n);

/* Create obj (a velero.io/v1 Backup) in region's system namespace, with the client the last
 * region_list_backups of region resolved. A Backup of that name that exists already is
 * accepted only when it carries the same management-backup label (ours, from a retry);
 * otherwise KD_ERR_CONFLICT. On failure msg (size n) says why, without naming the Backup or
 * the region (the caller's message does). */
kd_rc region_create_backup(region_clients *r, const char *region, json_t *obj, char *msg, size_t n);

/* The restore command's part (cli_region.c): flags --pause-regions and --region REGION of
 * `kcmdr restore create`. */
struct region_restore {
  bool pause;          /* --pause-regions: on the management cluster */
  const char *region;  /* --region R: on R's cluster */
  bool dry_run;        /* in: --dry-run; the ConfigMap is built (cm_obj), not written */
  char cm[254];        /* the resource-modifier ConfigMap written (pause), "" none */
  json_t *cm_obj;      /* with dry_run: that ConfigMap, for the preview (owned) */
  json_t *selector;    /* the Restore's labelSelector (pause), or NULL */
};
/* Before the Restore is built. --region: backup (in: the --from-backup value, a Backup or a
 * ManagementBackup name; out: the region's newest finished Backup of that ManagementBackup, or
 * the named Backup when it is the region's). --pause-regions: finds the regional Backups of
 * the same slot as backup (synced into this cluster from the shared location), writes the
 * ConfigMap rr->cm (the user's rules from user_cm, if any, and one that annotates every Region
 * with k0rdent.mirantis.com/region-pause) and sets rr->selector to
 * cluster.x-k8s.io/cluster-name NotIn [the regional ClusterDeployments]. Prints what it chose to
 * stderr. Returns a CLI exit code (CLI_OK, or CLI_FAIL/CLI_USAGE after saying why). */
int region_restore_prepare(kube_client *c, const char *ns, struct region_restore *rr, char *backup, size_t backup_size,
                           const char *user_cm);
/* Release what rr holds. */
void region_restore_free(struct region_restore *rr);

#endif
