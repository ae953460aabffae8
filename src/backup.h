/* backup.h — execute one velero.io/v1 Backup with the builtin engine (DESIGN.md §2): validate
 * it, select exactly what Velero selects, stream every object from the API server into a gzip
 * tar in Velero's format 1.1.0 and on to the storage location, then write the logs, resource
 * list, results and checksums, and velero-backup.json LAST, keeping the Backup's status current.
 *
 * The engine (engine.c) owns scheduling: which Backup runs when, on which worker, the storage
 * location object and its store, cancellation. This module owns one execution.
 *
 * Files of backup b (keys from velero_backup_key), in the order they are written:
 *   backups/b/b.tar.gz                 the objects, streamed while they are listed
 *   backups/b/b-resource-list.json.gz  {"<apiVersion>/<Kind>": ["ns/name" | "name", ...]} (sorted)
 *   backups/b/b-results.gz             {"errors":R,"warnings":R},
 *                                      R = {"velero":[..],"cluster":[..],"namespaces":{"ns":[..]}}
 *   backups/b/b-logs.gz                gzip text, one logrus-style line per event
 *   backups/b/b-checksums.json         {"files":{"<key>":{"sha256":"<64 hex>","size":<bytes>},...}}
 *                                      for each of the four files above (keys relative to the
 *                                      location, as velero_backup_key builds them)
 *   backups/b/velero-backup.json       the Backup (apiVersion, kind, final status), LAST
 *
 * Where kcmdr differs from Velero on purpose (each is noted in backup.c): a name already present
 * in the location is FailedValidation (Velero: Failed); a failed backup leaves no files (Velero
 * uploads a velero-backup.json with phase Failed); a namespace is never added only because an
 * object in an excluded namespace was listed (Velero issue #9180); a Backup without any resource
 * filter gets the full-cluster treatment with VolumeSnapshot(Content)s excluded, as Velero 1.16
 * did. Objects keep the bytes the API server sent (Velero re-encodes them with sorted keys);
 * bound PersistentVolumeClaims are re-encoded (jansson) because Velero's PVC action edits them. */
#ifndef KCMDR_BACKUP_H
#define KCMDR_BACKUP_H

#include <jansson.h>
#include <stdbool.h>

#include "fence.h"
#include "kube.h"
#include "objstore.h"
#include "util.h"
#include "velero.h"

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
  const struct fence *fence;  /* the leadership term the job runs in (NULL: no election) */
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
 * recorded in the Backup's status (whatever the phase), or the error that prevented even that
 * (KD_ERR_CONFLICT: the Backup is not New, or changed since it was read: re-read and retry). */
kd_rc backup_execute(const struct backup_job *job, struct backup_result *res);

/* ---- ownership (backup_owner.c) ----
 * backups/<b>/<b>-claim.json ({"backup","namespace","uid"}) is written once, exclusively
 * (objstore_put_new), right after the Backup went InProgress and before any other file: the
 * folder then belongs to that Backup (its uid). Two clusters sharing a bucket and firing the
 * same schedule slot make the same name: one claim wins, the other Backup is FailedValidation
 * and writes nothing. Velero ignores the file and deletes it with the backup. */

/* Annotation on a Backup that sync created from a location: VELERO_SYNCED_ANNOTATION. */
#define BACKUP_SYNCED_ANNOTATION VELERO_SYNCED_ANNOTATION

/* Label on a DeleteBackupRequest: the uid of the Backup it means (Velero sets it too); a request
 * whose Backup has another uid now (deleted and created again) deletes nothing. */
#define BACKUP_UID_LABEL "velero.io/backup-uid"

/* A DeleteBackupRequest for backup in ns (new reference; NULL without memory): generateName
 * "<name>-", labels velero.io/backup-name and velero.io/backup-uid, spec.backupName. */
json_t *backup_delete_request(const char *ns, json_t *backup);

/* The claim's key of backup name. KD_ERR_TOOBIG when it does not fit n. */
kd_rc backup_claim_key(const char *name, char *out, size_t n);
/* Was backup created by sync (BACKUP_SYNCED_ANNOTATION)? */
bool backup_is_synced(json_t *backup);
/* Whether a resource with these discovery verbs (array, borrowed) is one Velero backs up: it
 * offers list, create, get and delete. Pure. */
bool backup_verbs_backed_up(json_t *verbs);
/* May backup (as the server has it) delete the files of its folder in st? Its own claim says so;
 * with no claim, a velero-backup.json written for its uid; a synced Backup: a whole backup there
 * whose claim (if any) names the same writer. A FailedValidation Backup never. *why says why not.
 * Fails only when st cannot be read (transport, server). */
kd_rc backup_files_ours(objstore *st, json_t *backup, bool *ours, char *why, size_t n);
/* Delete every file of backups/<name>/: velero-backup.json first, the claim last (kept when any
 * other file could not be removed). Returns the first failure. Checks no ownership: call
 * backup_files_ours first. */
kd_rc backup_delete_files(objstore *st, const char *name);
/* Are the backup's four files (tarball, resource list, results, logs) named in its checksums
 * file and there with their recorded sizes? Fails only when st cannot be read; no checksums file
 * (or one that does not name them) is simply not whole. */
kd_rc backup_files_whole(objstore *st, const char *name, bool *whole);

/* A Backup left InProgress by an engine that stopped (crash, kill, lost leadership, a final
 * status lost in an outage), looked at fresh from the server (nothing happens when it is no
 * longer InProgress or is a namesake). When its velero-backup.json (written for its uid) says
 * Completed or PartiallyFailed and the four files its checksums name are there with their sizes,
 * only the last status update was lost: it gets that status. Otherwise its files are removed
 * when they are its own (backup_files_ours), it is marked Failed with reason plus what happened
 * to its files (compare-and-swap from InProgress), and a velero-backup.json a deposed engine
 * wrote meanwhile is removed. store NULL: no location (store_error NULL) or one that cannot be
 * opened (store_error says why). When the location cannot be read, the Backup stays InProgress
 * and the error is returned (ask again later), for an hour after it started; then it is failed
 * without looking. fence guards every write. Returns KD_OK when the status was written or there
 * was nothing to do. */
kd_rc backup_fail_abandoned(kube_client *c, const char *ns, json_t *backup, objstore *store, const char *store_error,
                            const char *reason, const struct fence *fence);
/* After a final status write failed (lost term, conflict): when the Backup is no longer ours to
 * finish (deleted, a namesake, or ended in a phase other than wrote_phase), remove the
 * velero-backup.json this execution wrote (uid-checked), so no cluster syncs a lie. Clears
 * store's guard. Fails when the Backup cannot be read (then the next leader decides). */
kd_rc backup_undo_metadata(kube_client *c, const char *ns, json_t *backup, objstore *store, const char *wrote_phase);

/* ---- the pure parts, exposed for unit tests ---- */

/* A compiled metav1.LabelSelector. */
typedef struct backup_selector backup_selector;
/* Compile sel: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), refused as
 * Kubernetes' LabelSelectorAsSelector refuses them (KD_ERR_INVALID naming the bad key, value or
 * operator). An empty object selects everything; JSON null selects nothing. KD_ERR_NOMEM. */
kd_rc backup_selector_new(json_t *sel, backup_selector **out);
/* Does an object with these labels (a JSON object of strings, or NULL for none) match? */
bool backup_selector_matches(const backup_selector *s, json_t *labels);
/* Append the selector in the API's string syntax ("a=b,c in (d,e),!f") to out. */
kd_rc backup_selector_string(const backup_selector *s, kd_buf *out);
/* Number of requirements (0: everything or nothing). */
size_t backup_selector_size(const backup_selector *s);
void backup_selector_free(backup_selector *s);

/* Velero's resource and namespace include/exclude rules for one Backup spec
 * (pkg/util/collections/includes_excludes.go, pkg/controller/backup_controller.go). */
typedef struct backup_filter backup_filter;
/* Build the rules of spec over discovery (kube_discover's array, borrowed: it must outlive the
 * filter). extra_excluded_ns (array of names, may be NULL) is added to excludedNamespaces, as
 * Velero adds namespaces labelled velero.io/exclude-from-backup=true. What Velero's validation
 * refuses is appended to errors (a JSON array, Velero's messages); the filter is built anyway.
 * KD_ERR_NOMEM. */
kd_rc backup_filter_new(json_t *spec, json_t *discovery, json_t *extra_excluded_ns, json_t *errors, backup_filter **out);
/* NamespaceIncludesExcludes.ShouldInclude(ns) / IncludeEverything(). */
bool backup_filter_namespace(const backup_filter *f, const char *ns);
bool backup_filter_all_namespaces(const backup_filter *f);
/* ResourceIncludesExcludes.ShouldInclude(gr) / ShouldExclude(gr); gr is "resource[.group]" as
 * discovery names it ("configmaps", "deployments.apps"). */
bool backup_filter_includes(const backup_filter *f, const char *gr);
bool backup_filter_excludes(const backup_filter *f, const char *gr);
/* Does Velero add, after the listing, the CustomResourceDefinition of every custom resource
 * type with at least one object in the backup? True only when the CRD type is neither excluded
 * nor included by f (Velero >= 1.11, pkg/backup/backup.go BackupWithResolvers). Such a CRD is
 * fetched by name: label selectors do not apply to it; velero.io/exclude-from-backup and
 * deletion do. Under kcm's spec (all namespaces, includeClusterResources unset) CRDs are
 * included, so this is false: CRDs are listed like any type, through the label selectors, and
 * an unlabelled CRD is not in the backup even when its objects are. */
bool backup_filter_adds_crds(const backup_filter *f);
/* Resolve a user's resource name ("deploy", "Deployment", "deployments.apps", "crds") to
 * "resource[.group]" into out[n] as Velero's discovery helper does; false when not served. */
bool backup_filter_resolve(const backup_filter *f, const char *name, char *out, size_t n);
void backup_filter_free(backup_filter *f);

/* Velero's glob match (gobwas/glob without separators: * ? [abc] [!a-z] \x). */
bool backup_glob(const char *pattern, const char *s);

/* What the engine reads from one object's raw JSON without building its tree. */
struct backup_meta {
  char name[512];             /* "" when absent */
  char ns[256];               /* "" when absent (cluster-scoped) */
  const char *labels;         /* raw bytes of metadata.labels, or NULL */
  size_t labels_len;
  bool has_api_version, has_kind;
  bool deleting;              /* metadata.deletionTimestamp set */
};
/* Scan item (one JSON object) for the fields above. KD_ERR_PARSE for something that is not a
 * JSON object, KD_ERR_INVALID for a name or namespace that is too long or holds NUL. Pure. */
kd_rc backup_meta_scan(const char *item, size_t len, struct backup_meta *m);
/* Copy item to out, inserting "apiVersion":api_version and/or "kind":kind right after the
 * opening '{' (the ones asked for); every other byte unchanged. Pure. */
kd_rc backup_add_type(const char *item, size_t len, const char *api_version, const char *kind, bool need_api_version,
                      bool need_kind, kd_buf *out);

/* Receives output bytes; anything but KD_OK stops the writer with that code. */
typedef kd_rc (*backup_write_fn)(const void *p, size_t n, void *ud);

/* The resource list: entries per "<apiVersion>/<Kind>", written sorted. Memory is about the
 * entries' bytes plus 4 bytes each. */
typedef struct backup_reslist backup_reslist;
kd_rc backup_reslist_new(backup_reslist **out);
/* Add "ns/name" (or "name" when ns is NULL or "") under type. KD_ERR_NOMEM, KD_ERR_TOOBIG. */
kd_rc backup_reslist_add(backup_reslist *l, const char *type, const char *ns, const char *name);
/* Write the JSON object (types and entries sorted bytewise, as Go sorts them). */
kd_rc backup_reslist_write(backup_reslist *l, backup_write_fn fn, void *ud);
size_t backup_reslist_count(const backup_reslist *l);
void backup_reslist_free(backup_reslist *l);


#endif
