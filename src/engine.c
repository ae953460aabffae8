/* engine.c — the builtin engine's orchestration (see engine.h): which Backup runs when and on
 * which worker, storage-location validation, sync from the bucket, expiry and
 * DeleteBackupRequests. One loop thread decides; backups execute on worker threads (backup.c). */
#include "engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup.h"
#include "informer.h"
#include "restore.h"
#include "velero.h"

#define ENGINE_WORKERS_MAX 16
#define ENGINE_TICK_MS 1000
#define ENGINE_DEFAULT_PERIOD_S 60      /* validationFrequency and backupSyncPeriod defaults */
#define ENGINE_GC_PERIOD_MS 60000
#define ENGINE_VELERO_CHECK_MS 30000
#define ENGINE_METADATA_MAX (16u << 20) /* largest velero-backup.json read back */

static const struct kube_res res_backup = {"velero.io", "v1", "backups", "Backup", true};
static const struct kube_res res_bsl = {"velero.io", "v1", "backupstoragelocations", "BackupStorageLocation", true};
static const struct kube_res res_dbr = {"velero.io", "v1", "deletebackuprequests", "DeleteBackupRequest", true};
static const struct kube_res res_restore = {"velero.io", "v1", "restores", "Restore", true};
static const struct kube_res res_secret = {"", "v1", "secrets", "Secret", true};
static const struct kube_res res_deploy = {"apps", "v1", "deployments", "Deployment", true};

enum { INF_BACKUPS, INF_BSLS, INF_DBRS, INF_RESTORES, INF_N };

struct slot {
  engine *e;
  pthread_t th;
  bool started;
  volatile int done;
  json_t *backup; /* the Backup or Restore, owned by the worker while it runs */
  bool restore;   /* a Restore */
  char name[256];
};

struct engine {
  kube_client *c;
  struct engine_opts o;
  informer *inf[INF_N];
  volatile const int *stop;
  volatile int cancel;  /* running backups stop (Failed) */
  volatile int wake;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct slot slots[ENGINE_WORKERS_MAX];
  json_t *last_validated; /* bsl name -> monotonic ms */
  json_t *last_synced;    /* bsl name -> monotonic ms */
  int64_t last_gc_ms, last_velero_check_ms;
  bool velero_running, was_leading;
};

struct inf_arg {
  engine *e;
  int which;
  kd_rc rc;
};

static const char *meta_str(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(o, "metadata"), k));
}

static const char *phase_of(json_t *o) { return json_string_value(json_object_get(json_object_get(o, "status"), "phase")); }

static json_t *strip_managed(json_t *o) {
  json_t *c = json_deep_copy(o);
  if (c) json_object_del(json_object_get(c, "metadata"), "managedFields");
  return c;
}

static void poke(void *ud) {
  engine *e = ud;
  pthread_mutex_lock(&e->lock);
  e->wake = 1;
  pthread_cond_signal(&e->cond);
  pthread_mutex_unlock(&e->lock);
}
static void on_add(json_t *o, void *ud) {
  (void)o;
  poke(ud);
}
static void on_update(json_t *a, json_t *b, void *ud) {
  (void)a, (void)b;
  poke(ud);
}

/* ---- leadership and Velero ---- */

static bool leading(engine *e) {
  if (e->o.leading && !*e->o.leading) return false;
  if (e->o.valid_until_ms && kd_now_ms() >= atomic_load(e->o.valid_until_ms)) return false;
  return true;
}

kd_rc engine_velero_running(kube_client *c, const char *ns, bool *running, char *which, size_t n) {
  *running = false;
  if (which && n) which[0] = '\0';
  json_t *list = NULL;
  char path[KUBE_MAX_PATH];
  kd_rc rc = kube_path(&res_deploy, ns, NULL, NULL, NULL, path);
  if (rc == KD_OK) rc = kube_request(c, "GET", path, NULL, NULL, 0, &list);
  if (rc != KD_OK) return kd_fail_wrap(rc, "looking for a Velero server in namespace %s", ns);
  size_t i;
  json_t *d;
  json_array_foreach(json_object_get(list, "items"), i, d) {
    json_t *labels = json_object_get(json_object_get(d, "metadata"), "labels");
    const char *name = meta_str(d, "name");
    bool velero = kd_streq(name, "velero") || kd_streq(json_string_value(json_object_get(labels, "component")), "velero") ||
                  kd_streq(json_string_value(json_object_get(labels, "app.kubernetes.io/name")), "velero");
    json_t *replicas = json_object_get(json_object_get(d, "spec"), "replicas");
    if (velero && (!replicas || json_integer_value(replicas) > 0)) {
      *running = true;
      if (which && n) snprintf(which, n, "%s", name ? name : "?");
      break;
    }
  }
  json_decref(list);
  return KD_OK;
}

/* ---- stores ---- */

kd_rc engine_open_store(kube_client *c, const char *ns, json_t *bsl, objstore **out) {
  json_t *cred = json_object_get(json_object_get(bsl, "spec"), "credential"), *secret = NULL;
  const char *sname = json_string_value(json_object_get(cred, "name"));
  const char *key = json_string_value(json_object_get(cred, "key"));
  unsigned char *bytes = NULL;
  size_t len = 0;
  kd_rc rc = KD_OK;
  *out = NULL;
  if (sname && key) {
    if ((rc = kube_get(c, &res_secret, ns, sname, &secret)) != KD_OK) {
      rc = kd_fail_wrap(rc == KD_ERR_NOTFOUND ? KD_ERR_CONFIG : rc, "credentials Secret %s/%s", ns, sname);
      goto fail;
    }
    json_t *v = json_object_get(json_object_get(secret, "data"), key);
    if (!json_is_string(v)) {
      rc = kd_fail(KD_ERR_CONFIG, "credentials Secret %s/%s has no key \"%s\"", ns, sname, key);
      goto fail;
    }
    if (json_string_length(v) > ENGINE_CRED_MAX * 2) {
      rc = kd_fail(KD_ERR_TOOBIG, "credentials Secret %s/%s: key \"%s\" is larger than %u bytes", ns, sname, key,
                   ENGINE_CRED_MAX);
      goto fail;
    }
    if ((rc = kd_base64_decode(json_string_value(v), json_string_length(v), &bytes, &len)) != KD_OK) {
      rc = kd_fail(KD_ERR_CONFIG, "credentials Secret %s/%s: key \"%s\" is not base64", ns, sname, key);
      goto fail;
    }
  } else if (sname || key) {
    rc = kd_fail(KD_ERR_CONFIG, "spec.credential needs both name and key");
    goto fail;
  }
  rc = objstore_open_bsl(bsl, (const char *)bytes, len, out);
fail:
  if (bytes) explicit_bzero(bytes, len);
  free(bytes);
  json_decref(secret);
  return rc;
}

/* ---- storage locations: validation ---- */

static int64_t period_ms(json_t *bsl, const char *field) {
  const char *v = json_string_value(json_object_get(json_object_get(bsl, "spec"), field));
  int64_t s = 0;
  if (v && velero_parse_ttl(v, &s) == KD_OK && s > 0) return s * 1000;
  return (int64_t)ENGINE_DEFAULT_PERIOD_S * 1000;
}

struct toplevel {
  kd_buf bad;
};

static kd_rc note_toplevel(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)size;
  struct toplevel *t = ud;
  char folder[VELERO_KEY_MAX];
  snprintf(folder, sizeof folder, "%s", key);
  size_t n = strlen(folder);
  if (!is_prefix) return KD_OK; /* as Velero: only folders count, a stray file is harmless */
  if (n && folder[n - 1] == '/') folder[n - 1] = '\0';
  if (!velero_toplevel_allowed(folder) && kd_buf_addf(&t->bad, "%s%s", t->bad.len ? ", " : "", folder) != KD_OK &&
      !strstr(t->bad.data ? t->bad.data : "", ", ...")) {
    t->bad.len = kd_utf8_cut(t->bad.data, t->bad.len > 4000 ? 4000 : t->bad.len); /* the message stays bounded */
    t->bad.data[t->bad.len] = '\0';
    kd_buf_adds(&t->bad, ", ...");
  }
  return KD_OK;
}

static void set_bsl_status(engine *e, json_t *bsl, const char *phase, const char *msg) {
  char ts[21];
  kd_time_format(time(NULL), ts);
  json_t *patch = json_pack("{s:{s:s,s:s}}", "status", "phase", phase, "lastValidationTime", ts), *out = NULL;
  /* an empty message is left out (or deleted): the API server's merge patch turns "" for an
   * absent field into null, which the schema refuses */
  bool had = json_string_value(json_object_get(json_object_get(bsl, "status"), "message")) != NULL;
  if (patch && (msg[0] || had))
    json_object_set_new(json_object_get(patch, "status"), "message", msg[0] ? json_string(msg) : json_null());
  struct kube_patch_opts po = {KUBE_PATCH_MERGE, NULL, false, "status"};
  kd_rc rc = patch ? kube_patch(e->c, &res_bsl, e->o.ns, meta_str(bsl, "name"), patch, &po, &out) : KD_ERR_NOMEM;
  if (rc != KD_OK) kd_log(KD_LOG_WARN, "storage location %s: status not written: %s", meta_str(bsl, "name"), kd_errmsg());
  const char *was = phase_of(bsl);
  if (!kd_streq(was, phase))
    kd_log(strcmp(phase, "Available") == 0 ? KD_LOG_INFO : KD_LOG_WARN, "storage location %s is %s%s%s",
           meta_str(bsl, "name"), phase, msg[0] ? ": " : "", msg);
  json_decref(patch);
  json_decref(out);
}

static void validate_bsl(engine *e, json_t *bsl) {
  objstore *st = NULL;
  struct toplevel tl = {KD_BUF_INIT(4096)};
  char msg[1200] = "";
  kd_rc rc = engine_open_store(e->c, e->o.ns, bsl, &st);
  if (rc == KD_OK) {
    objstore_set_cancel(st, e->stop);
    rc = objstore_check(st);
  }
  if (rc == KD_OK) rc = objstore_list(st, "", '/', note_toplevel, &tl);
  if (rc != KD_OK) {
    snprintf(msg, sizeof msg, "%s", kd_errmsg());
  } else if (tl.bad.len) {
    snprintf(msg, sizeof msg, "Backup store contains invalid top-level directories: [%s]", tl.bad.data);
    rc = KD_ERR_CONFIG;
  }
  set_bsl_status(e, bsl, rc == KD_OK ? "Available" : "Unavailable", msg);
  kd_buf_free(&tl.bad);
  objstore_free(st);
}

/* ---- sync: backups in a location appear as Backup objects; vanished ones go ---- */

struct names {
  json_t *set; /* backup name -> true */
  bool nomem;
};

static kd_rc note_backup_dir(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)size;
  struct names *n = ud;
  const char *p = key + strlen("backups/");
  size_t len = strlen(p);
  if (!is_prefix || len < 2 || strncmp(key, "backups/", 8) != 0) return KD_OK;
  char name[256];
  if (len - 1 >= sizeof name) return KD_OK; /* no Backup can have such a name */
  memcpy(name, p, len - 1);
  name[len - 1] = '\0';
  if (json_object_set_new(n->set, name, json_true())) n->nomem = true;
  return KD_OK;
}

static bool dns_subdomain(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 253) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || ((c == '-' || c == '.') && i > 0 && i < n - 1);
    if (!ok) return false;
  }
  return true;
}

/* Create the Backup object for backups/<name>/velero-backup.json of bsl. */
static void sync_one(engine *e, objstore *st, json_t *bsl, const char *name) {
  char key[VELERO_KEY_MAX], *doc = NULL;
  size_t len = 0;
  json_t *file = NULL, *obj = NULL, *out = NULL, *out2 = NULL;
  const char *bname = meta_str(bsl, "name");
  if (!dns_subdomain(name)) {
    kd_log(KD_LOG_WARN, "sync %s: skipping backups/%s: not a valid Backup name", bname, name);
    return;
  }
  if (velero_backup_key(name, VELERO_BACKUP_METADATA, key, sizeof key) != KD_OK) return;
  kd_rc rc = objstore_get_all(st, key, ENGINE_METADATA_MAX, &doc, &len);
  if (rc == KD_ERR_NOTFOUND) goto done; /* being written, or not a whole backup: nothing to show */
  if (rc != KD_OK) {
    kd_log(KD_LOG_WARN, "sync %s: reading %s: %s", bname, key, kd_errmsg());
    goto done;
  }
  json_error_t jerr;
  file = json_loadb(doc, len, JSON_ALLOW_NUL, &jerr);
  if (!json_is_object(file) || !json_is_object(json_object_get(file, "spec"))) {
    kd_log(KD_LOG_WARN, "sync %s: %s is not a Backup object: %s", bname, key, file ? "no spec" : jerr.text);
    goto done;
  }
  json_t *fmeta = json_object_get(file, "metadata");
  json_t *labels = json_is_object(json_object_get(fmeta, "labels")) ? json_deep_copy(json_object_get(fmeta, "labels")) : json_object();
  json_t *annotations = json_object_get(fmeta, "annotations");
  json_t *spec = json_deep_copy(json_object_get(file, "spec"));
  char lbl[VELERO_LABEL_MAX + 1];
  velero_label_value(bname, lbl);
  if (!labels || !spec || json_object_set_new(labels, VELERO_LABEL_STORAGE_LOCATION, json_string(lbl)) ||
      json_object_set_new(spec, "storageLocation", json_string(bname))) {
    json_decref(labels);
    json_decref(spec);
    goto done;
  }
  obj = json_pack("{s:s,s:s,s:{s:s,s:s,s:o,s:O?},s:o}", "apiVersion", "velero.io/v1", "kind", "Backup", "metadata", "name",
                  name, "namespace", e->o.ns, "labels", labels, "annotations", json_is_object(annotations) ? annotations : NULL,
                  "spec", spec);
  if (!obj) goto done;
  rc = kube_create(e->c, &res_backup, e->o.ns, obj, &out);
  if (rc == KD_ERR_CONFLICT) goto done; /* appeared meanwhile */
  if (rc != KD_OK) {
    kd_log(KD_LOG_WARN, "sync %s: creating Backup %s: %s", bname, name, kd_errmsg());
    goto done;
  }
  json_t *fst = json_object_get(file, "status");
  if (json_is_object(fst)) { /* the status as the location recorded it */
    json_object_set(out, "status", fst);
    if (kube_update_status(e->c, &res_backup, e->o.ns, out, &out2) != KD_OK)
      kd_log(KD_LOG_WARN, "sync %s: status of Backup %s: %s", bname, name, kd_errmsg());
  }
  kd_log(KD_LOG_INFO, "sync %s: Backup %s found in the location, created", bname, name);
done:
  free(doc);
  json_decref(file);
  json_decref(obj);
  json_decref(out);
  json_decref(out2);
}

static void sync_bsl(engine *e, json_t *bsl) {
  objstore *st = NULL;
  struct names n = {json_object(), false};
  json_t *all = NULL;
  const char *bname = meta_str(bsl, "name");
  kd_rc rc = n.set ? engine_open_store(e->c, e->o.ns, bsl, &st) : KD_ERR_NOMEM;
  if (rc == KD_OK) {
    objstore_set_cancel(st, e->stop);
    rc = objstore_list(st, "backups/", '/', note_backup_dir, &n);
  }
  if (rc != KD_OK || n.nomem) {
    kd_log(KD_LOG_WARN, "sync %s: listing backups: %s", bname, rc ? kd_errmsg() : "out of memory");
    goto done;
  }
  const char *name;
  json_t *v;
  json_object_foreach(n.set, name, v) {
    json_t *have = informer_get(e->inf[INF_BACKUPS], e->o.ns, name);
    if (!have) sync_one(e, st, bsl, name);
    json_decref(have);
  }
  /* Backups of this location whose files are gone: Velero deletes the objects */
  if (!(all = informer_list(e->inf[INF_BACKUPS]))) goto done;
  size_t i;
  json_t *b;
  json_array_foreach(all, i, b) {
    const char *ph = phase_of(b);
    if (!kd_streq(json_string_value(json_object_get(json_object_get(b, "spec"), "storageLocation")), bname)) continue;
    if (!kd_streq(ph, VELERO_PHASE_COMPLETED) && !kd_streq(ph, VELERO_PHASE_PARTIALLY_FAILED)) continue;
    if (json_object_get(n.set, meta_str(b, "name"))) continue;
    json_t *out = NULL;
    if (kube_delete(e->c, &res_backup, e->o.ns, meta_str(b, "name"), NULL, &out) == KD_OK)
      kd_log(KD_LOG_INFO, "sync %s: Backup %s is no longer in the location; deleted the object", bname, meta_str(b, "name"));
    json_decref(out);
  }
  char ts[21];
  kd_time_format(time(NULL), ts);
  json_t *patch = json_pack("{s:{s:s}}", "status", "lastSyncedTime", ts), *out = NULL;
  struct kube_patch_opts po = {KUBE_PATCH_MERGE, NULL, false, "status"};
  if (patch) kube_patch(e->c, &res_bsl, e->o.ns, bname, patch, &po, &out);
  json_decref(patch);
  json_decref(out);
done:
  json_decref(all);
  json_decref(n.set);
  objstore_free(st);
}

static void storage_locations(engine *e) {
  json_t *all = informer_list(e->inf[INF_BSLS]);
  size_t i;
  json_t *bsl;
  int64_t now = kd_now_ms();
  json_array_foreach(all, i, bsl) {
    const char *name = meta_str(bsl, "name");
    json_t *lv = json_object_get(e->last_validated, name), *ls = json_object_get(e->last_synced, name);
    if (!lv || now - json_integer_value(lv) >= period_ms(bsl, "validationFrequency")) {
      validate_bsl(e, bsl);
      json_object_set_new(e->last_validated, name, json_integer(kd_now_ms()));
    }
    if (*e->stop) break;
    json_t *cur = informer_get(e->inf[INF_BSLS], e->o.ns, name);
    bool available = kd_streq(phase_of(cur), "Available");
    json_decref(cur);
    if (available && (!ls || now - json_integer_value(ls) >= period_ms(bsl, "backupSyncPeriod"))) {
      sync_bsl(e, bsl);
      json_object_set_new(e->last_synced, name, json_integer(kd_now_ms()));
    }
  }
  json_decref(all);
}

/* ---- deletion: expired backups get a DeleteBackupRequest; requests delete files, then the object ---- */

static json_t *bsl_of(engine *e, json_t *backup) {
  const char *want = json_string_value(json_object_get(json_object_get(backup, "spec"), "storageLocation"));
  if (want && want[0]) return informer_get(e->inf[INF_BSLS], e->o.ns, want);
  json_t *all = informer_list(e->inf[INF_BSLS]), *found = NULL;
  size_t i;
  json_t *b;
  json_array_foreach(all, i, b) {
    if (json_is_true(json_object_get(json_object_get(b, "spec"), "default")) &&
        (!found || strcmp(meta_str(b, "name"), meta_str(found, "name")) < 0))
      found = b;
  }
  json_incref(found);
  json_decref(all);
  return found;
}

static void request_deletion(engine *e, json_t *backup, const char *why) {
  const char *name = meta_str(backup, "name");
  char lbl[VELERO_LABEL_MAX + 1], dname[300];
  velero_label_value(name, lbl);
  /* one request per backup: the name says which */
  snprintf(dname, sizeof dname, "%.200s-gc", name);
  json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:s}}", "apiVersion", "velero.io/v1", "kind",
                          "DeleteBackupRequest", "metadata", "name", dname, "namespace", e->o.ns, "labels",
                          VELERO_LABEL_BACKUP_NAME, lbl, "spec", "backupName", name),
         *out = NULL;
  kd_rc rc = obj ? kube_create(e->c, &res_dbr, e->o.ns, obj, &out) : KD_ERR_NOMEM;
  if (rc == KD_OK) kd_log(KD_LOG_INFO, "Backup %s %s: requested its deletion", name, why);
  else if (rc != KD_ERR_CONFLICT) kd_log(KD_LOG_WARN, "Backup %s: requesting deletion: %s", name, kd_errmsg());
  json_decref(obj);
  json_decref(out);
}

static void expire(engine *e) {
  json_t *all = informer_list(e->inf[INF_BACKUPS]);
  size_t i;
  json_t *b;
  time_t now = time(NULL), exp;
  json_array_foreach(all, i, b) {
    const char *s = json_string_value(json_object_get(json_object_get(b, "status"), "expiration"));
    const char *ph = phase_of(b);
    if (!s || kd_time_parse(s, &exp) != KD_OK || exp > now) continue;
    if (!velero_phase_terminal(ph)) continue; /* never one that runs or is being deleted */
    request_deletion(e, b, "expired");
  }
  json_decref(all);
}

struct del_ctx {
  objstore *st;
  json_t *keys;
};

static kd_rc collect_key(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)size;
  struct del_ctx *d = ud;
  if (!is_prefix && json_array_append_new(d->keys, json_string(key))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* Delete every file of backup name in st, velero-backup.json first (so a half-deleted backup is
 * never synced back). */
static kd_rc delete_backup_files(objstore *st, const char *name) {
  char prefix[VELERO_KEY_MAX], meta[VELERO_KEY_MAX];
  struct del_ctx d = {st, json_array()};
  kd_rc rc;
  if (!d.keys) return kd_fail(KD_ERR_NOMEM, "out of memory");
  snprintf(prefix, sizeof prefix, "backups/%s/", name);
  if ((rc = velero_backup_key(name, VELERO_BACKUP_METADATA, meta, sizeof meta)) ||
      (rc = objstore_delete(st, meta)) || (rc = objstore_list(st, prefix, '\0', collect_key, &d)))
    goto fail;
  size_t i;
  json_t *k;
  json_array_foreach(d.keys, i, k) {
    if ((rc = objstore_delete(st, json_string_value(k))) != KD_OK) goto fail;
  }
fail:
  json_decref(d.keys);
  return rc;
}

static void set_dbr(engine *e, json_t *dbr, const char *phase, const char *error) {
  json_t *errs = error ? json_pack("[s]", error) : json_array();
  json_t *patch = json_pack("{s:{s:s,s:o}}", "status", "phase", phase, "errors", errs), *out = NULL;
  struct kube_patch_opts po = {KUBE_PATCH_MERGE, NULL, false, "status"};
  if (patch) kube_patch(e->c, &res_dbr, e->o.ns, meta_str(dbr, "name"), patch, &po, &out);
  json_decref(patch);
  json_decref(out);
}

static void serve_deletion(engine *e, json_t *dbr) {
  const char *bname = json_string_value(json_object_get(json_object_get(dbr, "spec"), "backupName"));
  json_t *backup = NULL, *bsl = NULL, *out = NULL;
  objstore *st = NULL;
  char err[1200] = "";
  set_dbr(e, dbr, "InProgress", NULL);
  kd_rc rc = bname ? kube_get(e->c, &res_backup, e->o.ns, bname, &backup) : KD_ERR_INVALID;
  if (rc == KD_ERR_NOTFOUND) {
    snprintf(err, sizeof err, "backup %s not found", bname);
    goto done;
  }
  if (rc != KD_OK) {
    snprintf(err, sizeof err, "%s", bname ? kd_errmsg() : "spec.backupName is missing");
    goto done;
  }
  if (kd_streq(phase_of(backup), VELERO_PHASE_IN_PROGRESS) || kd_streq(phase_of(backup), VELERO_PHASE_NEW)) {
    snprintf(err, sizeof err, "backup %s is %s; it can be deleted once it has finished", bname, phase_of(backup));
    goto done;
  }
  if (!(bsl = bsl_of(e, backup))) {
    snprintf(err, sizeof err, "backup storage location of backup %s not found: only the object is deleted", bname);
  } else if (kd_streq(json_string_value(json_object_get(json_object_get(bsl, "spec"), "accessMode")), "ReadOnly")) {
    snprintf(err, sizeof err, "cannot delete backup %s: backup storage location %s is in read-only mode", bname,
             meta_str(bsl, "name"));
    goto done;
  } else if ((rc = engine_open_store(e->c, e->o.ns, bsl, &st)) != KD_OK ||
             (objstore_set_cancel(st, e->stop), rc = delete_backup_files(st, bname)) != KD_OK) {
    snprintf(err, sizeof err, "deleting the files of backup %s: %s", bname, kd_errmsg());
    goto done; /* the object stays while its files may remain: it can be deleted again */
  }
  rc = kube_delete(e->c, &res_backup, e->o.ns, bname, NULL, &out);
  if (rc != KD_OK && rc != KD_ERR_NOTFOUND) snprintf(err, sizeof err, "deleting Backup %s: %s", bname, kd_errmsg());
  else kd_log(KD_LOG_INFO, "Backup %s deleted (files and object)", bname);
done:
  if (err[0]) kd_log(KD_LOG_WARN, "DeleteBackupRequest %s: %s", meta_str(dbr, "name"), err);
  set_dbr(e, dbr, "Processed", err[0] ? err : NULL);
  objstore_free(st);
  json_decref(backup);
  json_decref(bsl);
  json_decref(out);
}

static void deletions(engine *e) {
  json_t *all = informer_list(e->inf[INF_DBRS]);
  size_t i;
  json_t *d;
  json_array_foreach(all, i, d) {
    const char *ph = phase_of(d);
    if (!ph || !ph[0] || strcmp(ph, "New") == 0) serve_deletion(e, d);
    if (*e->stop || !leading(e)) break;
  }
  json_decref(all);
}

/* ---- backups ---- */

/* A worker is done with its job: the slot is free again and the loop hears of it. */
static void slot_finished(struct slot *sl) {
  json_decref(sl->backup);
  sl->backup = NULL;
  sl->done = 1;
  poke(sl->e);
}

static void *run_backup(void *arg) {
  struct slot *sl = arg;
  engine *e = sl->e;
  json_t *bsl = bsl_of(e, sl->backup);
  objstore *st = NULL;
  char store_error[1200] = "";
  if (bsl && engine_open_store(e->c, e->o.ns, bsl, &st) != KD_OK) snprintf(store_error, sizeof store_error, "%s", kd_errmsg());
  /* no cancel flag on the store: the backup checks job.cancel at every object, and a cancelled
   * store could not remove the partial files afterwards */
  struct backup_job job = {e->c, e->o.ns, sl->backup, bsl, st, store_error[0] ? store_error : NULL, &e->cancel, 0, 0};
  struct backup_result res = {0};
  int64_t t0 = kd_now_ms();
  if (backup_execute(&job, &res) != KD_OK)
    kd_log(KD_LOG_ERROR, "Backup %s: could not record its outcome: %s", sl->name, kd_errmsg());
  else
    kd_log(KD_LOG_INFO, "Backup %s: %s, %ld items, %ld errors, %ld warnings, %llu bytes in %.1f s", sl->name, res.phase,
           res.items, res.errors, res.warnings, (unsigned long long)res.tarball_bytes, (double)(kd_now_ms() - t0) / 1000.0);
  objstore_free(st);
  json_decref(bsl);
  slot_finished(sl);
  return NULL;
}

static bool running_here(engine *e, const char *name, bool restore) {
  for (int i = 0; i < e->o.workers; i++)
    if (e->slots[i].started && !e->slots[i].done && e->slots[i].restore == restore && strcmp(e->slots[i].name, name) == 0)
      return true;
  return false;
}

static struct slot *free_slot(engine *e) {
  for (int i = 0; i < e->o.workers; i++) {
    struct slot *sl = &e->slots[i];
    if (sl->started && sl->done) {
      pthread_join(sl->th, NULL);
      sl->started = false;
    }
    if (!sl->started) return sl;
  }
  return NULL;
}

/* ---- restores ---- */

static void *run_restore(void *arg) {
  struct slot *sl = arg;
  engine *e = sl->e;
  json_t *backup = NULL, *bsl = NULL;
  objstore *st = NULL;
  char store_error[1200] = "";
  const char *bname = json_string_value(json_object_get(json_object_get(sl->backup, "spec"), "backupName"));
  kd_rc grc = bname && bname[0] ? kube_get(e->c, &res_backup, e->o.ns, bname, &backup) : KD_ERR_NOTFOUND;
  if (grc == KD_ERR_TRANSPORT || grc == KD_ERR_TIMEOUT || grc == KD_ERR_NOMEM || grc == KD_ERR_HTTP ||
      grc == KD_ERR_UNAUTHORIZED || grc == KD_ERR_FORBIDDEN) {
    /* the API server could not answer (or our credentials need fixing): the Restore stays New
     * and is tried again after a pause that keeps a lasting error from spinning; any other
     * answer (missing, a name no path can hold) fails its validation */
    kd_log(KD_LOG_WARN, "Restore %s: reading Backup %s: %s; trying again", sl->name, bname, kd_errmsg());
    kd_sleep_ms(5000, &e->cancel);
    goto out;
  }
  if (grc != KD_OK) backup = NULL;
  if (backup) bsl = bsl_of(e, backup);
  if (bsl && engine_open_store(e->c, e->o.ns, bsl, &st) != KD_OK) snprintf(store_error, sizeof store_error, "%s", kd_errmsg());
  struct restore_job job = {.client = e->c, .ns = e->o.ns, .restore = sl->backup, .backup = backup, .bsl = bsl,
                            .store = st, .store_error = store_error[0] ? store_error : NULL, .cancel = &e->cancel};
  struct restore_result res = {0};
  int64_t t0 = kd_now_ms();
  if (restore_execute(&job, &res) != KD_OK)
    kd_log(KD_LOG_ERROR, "Restore %s: could not record its outcome: %s", sl->name, kd_errmsg());
  else
    kd_log(KD_LOG_INFO, "Restore %s: %s, %ld objects: %ld created, %ld updated, %ld skipped, %ld failed; %ld errors, %ld "
                        "warnings in %.1f s", sl->name, res.phase, res.total, res.created, res.updated, res.skipped,
           res.failed, res.errors, res.warnings, (double)(kd_now_ms() - t0) / 1000.0);
out:
  objstore_free(st);
  json_decref(bsl);
  json_decref(backup);
  slot_finished(sl);
  return NULL;
}

/* Start New Backups (restore false) or Restores (true) on free workers. */
static void start_jobs(engine *e, bool restore) {
  json_t *all = informer_list(e->inf[restore ? INF_RESTORES : INF_BACKUPS]);
  const struct kube_res *kind = restore ? &res_restore : &res_backup;
  size_t i;
  json_t *b;
  json_array_foreach(all, i, b) {
    const char *ph = phase_of(b), *name = meta_str(b, "name");
    if ((ph && ph[0] && strcmp(ph, VELERO_PHASE_NEW) != 0) || !name || running_here(e, name, restore)) continue;
    struct slot *sl = free_slot(e);
    if (!sl) break;
    json_t *fresh = NULL; /* the cache may lag: only what the server says is New runs */
    if (kube_get(e->c, kind, e->o.ns, name, &fresh) != KD_OK || (phase_of(fresh) && phase_of(fresh)[0] &&
                                                                 strcmp(phase_of(fresh), VELERO_PHASE_NEW) != 0)) {
      json_decref(fresh);
      continue;
    }
    if (!leading(e)) {
      json_decref(fresh);
      break;
    }
    json_object_del(json_object_get(fresh, "metadata"), "managedFields");
    sl->e = e;
    sl->backup = fresh;
    sl->restore = restore;
    sl->done = 0;
    snprintf(sl->name, sizeof sl->name, "%s", name);
    if (pthread_create(&sl->th, NULL, restore ? run_restore : run_backup, sl) != 0) {
      kd_log(KD_LOG_ERROR, "%s %s: cannot start a worker thread", kind->kind, name);
      json_decref(fresh);
      sl->backup = NULL;
      continue;
    }
    sl->started = true;
    kd_log(KD_LOG_INFO, "%s %s: started", kind->kind, name);
  }
  json_decref(all);
}

/* Backups left InProgress by an engine that stopped (this one before a restart, or a leader
 * that lost its lease) end Failed, as Velero does on start-up. */
static void fail_abandoned(engine *e) {
  json_t *all = informer_list(e->inf[INF_BACKUPS]);
  size_t i;
  json_t *b;
  json_array_foreach(all, i, b) {
    const char *name = meta_str(b, "name");
    if (!kd_streq(phase_of(b), VELERO_PHASE_IN_PROGRESS) || !name || running_here(e, name, false)) continue;
    json_t *bsl = bsl_of(e, b);
    objstore *st = NULL;
    if (bsl && engine_open_store(e->c, e->o.ns, bsl, &st) != KD_OK) st = NULL;
    if (backup_fail_abandoned(e->c, e->o.ns, b, st,
                              "the engine that ran this backup stopped before it finished (restart, kill or lost "
                              "leadership); its partial files were removed") == KD_OK)
      kd_log(KD_LOG_WARN, "Backup %s: left InProgress by a stopped engine; Failed, or Completed when its "
                          "velero-backup.json was already written", name);
    else
      kd_log(KD_LOG_WARN, "Backup %s: marking it Failed: %s", name, kd_errmsg());
    objstore_free(st);
    json_decref(bsl);
  }
  json_decref(all);
  all = informer_list(e->inf[INF_RESTORES]);
  json_array_foreach(all, i, b) {
    const char *name = meta_str(b, "name");
    if (!kd_streq(phase_of(b), VELERO_PHASE_IN_PROGRESS) || !name || running_here(e, name, true)) continue;
    if (restore_fail_abandoned(e->c, e->o.ns, b,
                               "the engine that ran this restore stopped before it finished (restart, kill or lost "
                               "leadership); objects it created stay: run the restore again with "
                               "existingResourcePolicy update to finish it") == KD_OK)
      kd_log(KD_LOG_WARN, "Restore %s: left InProgress by a stopped engine; marked Failed", name);
    else
      kd_log(KD_LOG_WARN, "Restore %s: marking it Failed: %s", name, kd_errmsg());
  }
  json_decref(all);
}

static void wait_workers(engine *e) {
  for (int i = 0; i < e->o.workers; i++) {
    if (e->slots[i].started) pthread_join(e->slots[i].th, NULL);
    e->slots[i].started = false;
  }
}

static int busy_workers(engine *e) {
  int n = 0;
  for (int i = 0; i < e->o.workers; i++) n += e->slots[i].started && !e->slots[i].done;
  return n;
}

/* ---- the loop ---- */

static void *informer_main(void *arg) {
  struct inf_arg *a = arg;
  a->rc = informer_run(a->e->inf[a->which], a->e->stop);
  if (a->rc != KD_OK) kd_log(KD_LOG_ERROR, "engine: watching %s stopped: %s", a->which == INF_BACKUPS ? "Backups" : a->which == INF_BSLS ? "BackupStorageLocations" : a->which == INF_DBRS ? "DeleteBackupRequests" : "Restores", kd_errmsg());
  return NULL;
}

kd_rc engine_new(kube_client *c, const struct engine_opts *opts, engine **out) {
  engine *e = calloc(1, sizeof *e);
  if (!e) return kd_fail(KD_ERR_NOMEM, "out of memory");
  e->c = c;
  e->o = *opts;
  if (e->o.workers <= 0) e->o.workers = 2;
  if (e->o.workers > ENGINE_WORKERS_MAX) e->o.workers = ENGINE_WORKERS_MAX;
  pthread_mutex_init(&e->lock, NULL);
  pthread_cond_init(&e->cond, NULL);
  e->last_validated = json_object();
  e->last_synced = json_object();
  struct informer_handlers h = {on_add, on_update, on_add, poke, e};
  struct informer_opts io = {e->o.ns, NULL, 0, strip_managed};
  kd_rc rc = KD_OK;
  if (!e->last_validated || !e->last_synced) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  if (rc == KD_OK) rc = informer_new(c, &res_backup, &io, &h, &e->inf[INF_BACKUPS]);
  if (rc == KD_OK) rc = informer_new(c, &res_bsl, &io, &h, &e->inf[INF_BSLS]);
  if (rc == KD_OK) rc = informer_new(c, &res_dbr, &io, &h, &e->inf[INF_DBRS]);
  if (rc == KD_OK) rc = informer_new(c, &res_restore, &io, &h, &e->inf[INF_RESTORES]);
  if (rc != KD_OK) {
    engine_free(e);
    return rc;
  }
  *out = e;
  return KD_OK;
}

void engine_free(engine *e) {
  if (!e) return;
  for (int i = 0; i < INF_N; i++) informer_free(e->inf[i]);
  json_decref(e->last_validated);
  json_decref(e->last_synced);
  pthread_mutex_destroy(&e->lock);
  pthread_cond_destroy(&e->cond);
  free(e);
}

static bool synced(engine *e) {
  for (int i = 0; i < INF_N; i++)
    if (!informer_synced(e->inf[i])) return false;
  return true;
}

kd_rc engine_run(engine *e, volatile const int *stop) {
  pthread_t th[INF_N];
  struct inf_arg args[INF_N];
  e->stop = stop;
  for (int i = 0; i < INF_N; i++) {
    args[i] = (struct inf_arg){e, i, KD_OK};
    pthread_create(&th[i], NULL, informer_main, &args[i]);
  }
  kd_log(KD_LOG_INFO, "builtin engine: executing Backups and Restores in namespace %s on %d workers", e->o.ns, e->o.workers);
  while (!*stop) {
    pthread_mutex_lock(&e->lock);
    if (!e->wake) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)ENGINE_TICK_MS * 1000000L;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&e->cond, &e->lock, &ts);
    }
    e->wake = 0;
    pthread_mutex_unlock(&e->lock);
    if (*stop || !synced(e)) continue;
    bool lead = leading(e);
    if (!lead) {
      if (e->was_leading) {
        kd_log(KD_LOG_WARN, "builtin engine: not leading any more; cancelling %d running backup(s)", busy_workers(e));
        e->cancel = 1;
        wait_workers(e);
        e->cancel = 0;
        e->was_leading = false;
      }
      continue;
    }
    int64_t now = kd_now_ms();
    if (now - e->last_velero_check_ms >= ENGINE_VELERO_CHECK_MS || !e->last_velero_check_ms) {
      bool running = false;
      char which[256];
      if (engine_velero_running(e->c, e->o.ns, &running, which, sizeof which) == KD_OK) {
        if (running && !e->velero_running)
          kd_log(KD_LOG_ERROR, "builtin engine: a Velero server (Deployment %s/%s) runs in this namespace; executing no "
                               "Backups while it does (two executors would race on one Backup)", e->o.ns, which);
        else if (!running && e->velero_running)
          kd_log(KD_LOG_INFO, "builtin engine: the Velero server is gone; executing Backups again");
        e->velero_running = running;
      }
      e->last_velero_check_ms = now;
    }
    if (e->velero_running) continue;
    if (!e->was_leading) { /* a new term: what an earlier engine left running has ended */
      fail_abandoned(e);
      e->was_leading = true;
    }
    start_jobs(e, false);
    start_jobs(e, true);
    deletions(e);
    storage_locations(e);
    if (now - e->last_gc_ms >= ENGINE_GC_PERIOD_MS) {
      expire(e);
      e->last_gc_ms = now;
    }
  }
  e->cancel = 1;
  wait_workers(e);
  for (int i = 0; i < INF_N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < INF_N; i++)
    if (args[i].rc != KD_OK) return args[i].rc;
  return KD_OK;
}
