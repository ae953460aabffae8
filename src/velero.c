/* velero.c — facts about Velero's objects and bucket, taken from Velero's source (see velero.h):
 * pkg/persistence/object_store_layout.go (keys), pkg/label/label.go (GetValidName),
 * pkg/controller/restore_controller.go (nonRestorableResources), pkg/cmd/server/config/config.go
 * (defaultRestorePriorities), pkg/restore/restore.go (getOrderedResources). */
#include "velero.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "cron.h"

static bool vl_phase_in(const char *phase, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(phase, list[i]) == 0) return true;
  return false;
}

bool velero_phase_terminal(const char *phase) {
  static const char *const done[] = {VELERO_PHASE_COMPLETED, VELERO_PHASE_PARTIALLY_FAILED, VELERO_PHASE_FAILED,
                                     VELERO_PHASE_FAILED_VALIDATION};
  return phase && vl_phase_in(phase, done, KD_ARRAY_LEN(done));
}

bool velero_phase_not_started(const char *phase) {
  static const char *const early[] = {VELERO_PHASE_NEW, VELERO_PHASE_QUEUED, VELERO_PHASE_READY_TO_START};
  return !phase || !phase[0] || vl_phase_in(phase, early, KD_ARRAY_LEN(early));
}

bool velero_phase_running(const char *phase) {
  static const char *const run[] = {VELERO_PHASE_IN_PROGRESS, VELERO_PHASE_WAITING_PLUGIN_OPS, VELERO_PHASE_WAITING_PLUGIN_OPS_PF,
                                    VELERO_PHASE_FINALIZING, VELERO_PHASE_FINALIZING_PF};
  return velero_phase_not_started(phase) || vl_phase_in(phase, run, KD_ARRAY_LEN(run));
}

/* A backup or restore name that is one path segment. */
static kd_rc vl_check_name(const char *what, const char *name) {
  if (!name || !*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/'))
    return kd_fail(KD_ERR_INVALID, "%s name \"%s\" cannot be a folder in the bucket", what, name ? name : "");
  return KD_OK;
}

static kd_rc vl_key(char *out, size_t n, const char *fmt, const char *a, const char *b) {
  int w = snprintf(out, n, fmt, a, b);
  if (w < 0 || (size_t)w >= n) return kd_fail(KD_ERR_TOOBIG, "bucket key for \"%s\" is longer than %zu bytes", a, n - 1);
  return KD_OK;
}

kd_rc velero_backup_key(const char *backup, enum velero_backup_file f, char *out, size_t n) {
  static const char *const fmt[] = {
      [VELERO_BACKUP_METADATA] = "backups/%s/velero-backup.json%s",
      [VELERO_BACKUP_TARBALL] = "backups/%s/%s.tar.gz",
      [VELERO_BACKUP_LOGS] = "backups/%s/%s-logs.gz",
      [VELERO_BACKUP_RESOURCE_LIST] = "backups/%s/%s-resource-list.json.gz",
      [VELERO_BACKUP_RESULTS] = "backups/%s/%s-results.gz",
      [VELERO_BACKUP_CHECKSUMS] = "backups/%s/%s-checksums.json",
      [VELERO_BACKUP_SIGNATURE] = "backups/%s/%s-checksums.json.sig",
  };
  kd_rc rc = vl_check_name("backup", backup);
  if (rc != KD_OK) return rc;
  if ((unsigned)f >= KD_ARRAY_LEN(fmt)) return kd_fail(KD_ERR_INVALID, "unknown backup file %d", (int)f);
  return vl_key(out, n, fmt[f], backup, f == VELERO_BACKUP_METADATA ? "" : backup);
}

kd_rc velero_restore_key(const char *restore, enum velero_restore_file f, char *out, size_t n) {
  static const char *const fmt[] = {
      [VELERO_RESTORE_LOGS] = "restores/%s/restore-%s-logs.gz",
      [VELERO_RESTORE_RESULTS] = "restores/%s/restore-%s-results.gz",
  };
  kd_rc rc = vl_check_name("restore", restore);
  if (rc != KD_OK) return rc;
  if ((unsigned)f >= KD_ARRAY_LEN(fmt)) return kd_fail(KD_ERR_INVALID, "unknown restore file %d", (int)f);
  return vl_key(out, n, fmt[f], restore, restore);
}

bool velero_toplevel_allowed(const char *folder) {
  static const char *const ok[] = {"backups", "restores", "restic", "metadata", "plugins", "kopia"};
  if (!folder) return false;
  for (size_t i = 0; i < KD_ARRAY_LEN(ok); i++)
    if (strcmp(folder, ok[i]) == 0) return true;
  return false;
}

void velero_label_value(const char *in, char *out) {
  size_t len = strlen(in);
  if (len <= VELERO_LABEL_MAX) {
    memcpy(out, in, len + 1);
    return;
  }
  /* Go slices bytes: a multi-byte character may be cut, exactly as Velero cuts it */
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)in, len, d);
  memcpy(out, in, VELERO_LABEL_MAX - 6);
  snprintf(out + VELERO_LABEL_MAX - 6, 7, "%02x%02x%02x", d[0], d[1], d[2]);
}

const char *const velero_restore_always_excluded[] = {
    "nodes",
    "events",
    "events.events.k8s.io",
    "backups.velero.io",
    "restores.velero.io",
    "resticrepositories.velero.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "backuprepositories.velero.io",
    NULL,
};

/* Velero's defaultRestorePriorities. Velero writes some entries without their group and
 * resolves them through discovery when the restore reaches them; `as` is what discovery resolves
 * each to on every cluster (the name of the resource's folder in the tarball). */
static const struct {
  const char *velero, *as;
} vl_high[] = {
    {"customresourcedefinitions", "customresourcedefinitions.apiextensions.k8s.io"},
    {"namespaces", "namespaces"},
    {"storageclasses", "storageclasses.storage.k8s.io"},
    {"volumesnapshotclass.snapshot.storage.k8s.io", "volumesnapshotclasses.snapshot.storage.k8s.io"},
    {"volumesnapshotcontents.snapshot.storage.k8s.io", "volumesnapshotcontents.snapshot.storage.k8s.io"},
    {"volumesnapshots.snapshot.storage.k8s.io", "volumesnapshots.snapshot.storage.k8s.io"},
    {"datauploads.velero.io", "datauploads.velero.io"},
    {"persistentvolumes", "persistentvolumes"},
    {"persistentvolumeclaims", "persistentvolumeclaims"},
    {"clusterroles", "clusterroles.rbac.authorization.k8s.io"},
    {"roles", "roles.rbac.authorization.k8s.io"},
    {"serviceaccounts", "serviceaccounts"},
    {"clusterrolebindings", "clusterrolebindings.rbac.authorization.k8s.io"},
    {"rolebindings", "rolebindings.rbac.authorization.k8s.io"},
    {"secrets", "secrets"},
    {"configmaps", "configmaps"},
    {"limitranges", "limitranges"},
    {"priorityclasses", "priorityclasses.scheduling.k8s.io"},
    {"pods", "pods"},
    {"replicasets.apps", "replicasets.apps"},
    {"clusterclasses.cluster.x-k8s.io", "clusterclasses.cluster.x-k8s.io"},
    {"endpoints", "endpoints"},
    {"services", "services"},
};

static const char *const vl_low[] = {
    "clusterbootstraps.run.tanzu.vmware.com", "clusters.cluster.x-k8s.io", "clusterresourcesets.addons.cluster.x-k8s.io",
    "apps.kappctrl.k14s.io", "packageinstalls.packaging.carvel.dev",
};

int velero_restore_priority(const char *gr) {
  int h = (int)KD_ARRAY_LEN(vl_high);
  if (!gr) return h;
  for (int i = 0; i < h; i++)
    if (strcmp(gr, vl_high[i].as) == 0 || strcmp(gr, vl_high[i].velero) == 0) return i;
  for (int i = 0; i < (int)KD_ARRAY_LEN(vl_low); i++)
    if (strcmp(gr, vl_low[i]) == 0) return h + 1 + i;
  return h;
}

kd_rc velero_parse_ttl(const char *s, int64_t *seconds) {
  int64_t ns = 0;
  /* Velero's backup controller: an unset or zero ttl becomes the server default, 720h */
  if (s && *s && cron_parse_go_duration(s, &ns) != KD_OK)
    return kd_fail(KD_ERR_INVALID, "ttl \"%s\" is not a duration like 720h0m0s: %s", s, kd_errmsg());
  if (ns == 0) ns = 720LL * 3600 * 1000000000LL;
  *seconds = ns / 1000000000LL;
  return KD_OK;
}
