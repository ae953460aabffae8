/* engine.c — the builtin engine's orchestration (see engine.h): which Backup or Restore runs
 * when and on which worker, storage-location validation, sync from the bucket, expiry,
 * DeleteBackupRequests and Backups a stopped engine left InProgress.
 *
 * One loop thread decides and never touches the network, so it notices a lost lease in time:
 * it reads the informers' caches, starts jobs on workers and starts a round of upkeep on a
 * thread of its own. Every job carries the leadership term it started in (fence.h); its bucket
 * and status writes check it. When a term ends, running jobs are cancelled and nothing new
 * starts until they have all stopped. */
#include "engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup.h"
#include "informer.h"
#include "restore.h"
#include "retention.h"
#include "velero.h"
#include "vstatus.h"

#define ENGINE_WORKERS_MAX 16
#define ENGINE_TICK_MS 1000
#define ENGINE_DEFAULT_PERIOD_S 60      /* validationFrequency and backupSyncPeriod defaults */
#define ENGINE_UPKEEP_MS 2000           /* a round of upkeep at most this often */
#define ENGINE_GC_PERIOD_MS 60000
#define ENGINE_ABANDONED_MS 30000       /* Backups/Restores InProgress with no job here: looked at */
#define ENGINE_VELERO_CHECK_MS 30000
#define ENGINE_METADATA_MAX (16u << 20) /* largest velero-backup.json read back */
#define ENGINE_SYNC_NAMES_MAX 100000     /* backups in one location that sync looks at */
/* With leader election, a new term looks at abandoned jobs only this long after it began: a
 * deposed leader's request already on the wire (its HTTP timeout is 60 s) has landed by then. */
#define ENGINE_TERM_GRACE_MS 65000
#define ENGINE_REDELETE_S 600            /* a Deleting Backup with no open request is asked again */

static const struct kube_res res_backup = {"velero.io", "v1", "backups", "Backup", true};
static const struct kube_res res_bsl = {"velero.io", "v1", "backupstoragelocations", "BackupStorageLocation", true};
static const struct kube_res res_dbr = {"velero.io", "v1", "deletebackuprequests", "DeleteBackupRequest", true};
static const struct kube_res res_restore = {"velero.io", "v1", "restores", "Restore", true};
static const struct kube_res res_secret = {"", "v1", "secrets", "Secret", true};
static const struct kube_res res_deploy = {"apps", "v1", "deployments", "Deployment", true};

enum { INF_BACKUPS, INF_BSLS, INF_DBRS, INF_RESTORES, INF_N };
static const char *const inf_names[INF_N] = {"Backups", "BackupStorageLocations", "DeleteBackupRequests", "Restores"};

struct slot {
  engine *e;
  pthread_t th;
  bool started;
  volatile int done;
  json_t *obj;       /* the Backup or Restore as cached, owned by the worker while it runs */
  bool restore;      /* a Restore */
  struct fence fence; /* the term it started in */
  char name[256];
};

struct engine {
  kube_client *c;
  struct engine_opts o;
  struct fence_src fsrc;
  informer *inf[INF_N];
  volatile const int *stop;
  volatile int cancel; /* running jobs stop (the term ended, or the engine stops) */
  volatile int wake;
  pthread_mutex_t lock; /* wake, slots (the upkeep thread asks what runs here) */
  pthread_cond_t cond;
  struct slot slots[ENGINE_WORKERS_MAX];
  /* the upkeep thread: one round at a time */
  pthread_t upkeep_th;
  bool upkeep_started;
  volatile int upkeep_done;
  struct fence upkeep_fence;
  bool new_term;          /* the next round looks at abandoned jobs first */
  int64_t term_began_ms;  /* when this term began (monotonic) */
  int64_t next_upkeep_ms;
  /* owned by the upkeep thread */
  json_t *last_validated; /* bsl name -> monotonic ms */
  json_t *last_synced;    /* bsl name -> monotonic ms */
  json_t *locked;         /* Backup uid -> time its files stay locked until (S3 Object Lock): no deletion before */
  int64_t last_gc_ms, last_abandoned_ms, last_velero_check_ms;
  volatile int velero_running; /* written by upkeep, read by the loop */
  bool was_leading;
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

static uint64_t term_now(engine *e) { return e->o.term ? atomic_load(e->o.term) : 0; }

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

/* A velero.io status write under the fence f: no expected phase, no uid (storage locations,
 * lastSyncedTime); logged when it fails. */
static void write_status(engine *e, const struct kube_res *res, const char *name, json_t *status, const struct fence *f) {
  struct vstatus_write w = {res, e->o.ns, name, status, NULL, NULL, f, 0, e->stop};
  if (vstatus_write(e->c, &w, NULL) != KD_OK)
    kd_log(KD_LOG_WARN, "%s %s: status not written: %s", res->kind, name, kd_errmsg());
}

static void set_bsl_status(engine *e, json_t *bsl, const char *phase, const char *msg, const struct fence *f) {
  char ts[21];
  kd_time_format(time(NULL), ts);
  json_t *st = json_pack("{s:s,s:s}", "phase", phase, "lastValidationTime", ts);
  /* an empty message is left out (or deleted): the API server's merge patch turns "" for an
   * absent field into null, which the schema refuses */
  bool had = json_string_value(json_object_get(json_object_get(bsl, "status"), "message")) != NULL;
  if (st && (msg[0] || had)) json_object_set_new(st, "message", msg[0] ? json_string(msg) : json_null());
  if (st) write_status(e, &res_bsl, meta_str(bsl, "name"), st, f);
  const char *was = phase_of(bsl);
  if (!kd_streq(was, phase))
    kd_log(strcmp(phase, "Available") == 0 ? KD_LOG_INFO : KD_LOG_WARN, "storage location %s is %s%s%s",
           meta_str(bsl, "name"), phase, msg[0] ? ": " : "", msg);
  json_decref(st);
}

/* Open the store of bsl for a job under fence f: every write it makes checks the fence. */
static kd_rc open_fenced(engine *e, json_t *bsl, const struct fence *f, objstore **out) {
  kd_rc rc = engine_open_store(e->c, e->o.ns, bsl, out);
  if (rc == KD_OK) objstore_set_guard(*out, fence_guard, (void *)f);
  return rc;
}

static void validate_bsl(engine *e, json_t *bsl, const struct fence *f) {
  objstore *st = NULL;
  struct toplevel tl = {KD_BUF_INIT(4096)};
  char msg[1200] = "";
  kd_rc rc = open_fenced(e, bsl, f, &st);
  if (rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT || rc == KD_ERR_HTTP) {
    /* the API server did not answer (its credentials Secret could not be read): that says
     * nothing about the location; its status stays as it was and it is validated again later */
    kd_log(KD_LOG_DEBUG, "storage location %s: validation postponed: %s", meta_str(bsl, "name"), kd_errmsg());
    goto done;
  }
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
  set_bsl_status(e, bsl, rc == KD_OK ? "Available" : "Unavailable", msg, f);
done:
  kd_buf_free(&tl.bad);
  objstore_free(st);
}

/* ---- sync: backups in a location appear as Backup objects; vanished ones go ---- */

struct names {
  json_t *set; /* backup name -> true */
  bool nomem, too_many;
};

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

static kd_rc note_backup_dir(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)size;
  struct names *n = ud;
  if (!is_prefix || strncmp(key, "backups/", 8) != 0) return KD_OK; /* never a key outside backups/ */
  const char *p = key + 8;
  size_t len = strlen(p);
  if (len < 2 || p[len - 1] != '/') return KD_OK;
  char name[256];
  if (len - 1 >= sizeof name) return KD_OK; /* no Backup can have such a name */
  memcpy(name, p, len - 1);
  name[len - 1] = '\0';
  if (!dns_subdomain(name)) { /* no Backup can have it (non-UTF-8 bytes would also break the set) */
    kd_log(KD_LOG_DEBUG, "sync: skipping a folder under backups/ that is not a Backup name");
    return KD_OK;
  }
  if (json_object_size(n->set) >= ENGINE_SYNC_NAMES_MAX) {
    n->too_many = true;
    return kd_fail(KD_ERR_TOOBIG, "more than %d backups in the location", ENGINE_SYNC_NAMES_MAX);
  }
  if (json_object_set_new(n->set, name, json_true())) n->nomem = true;
  return KD_OK;
}


/* The Backup object for backups/<name>/velero-backup.json of bsl: created with its status (on
 * Velero's CRDs the status is kept from the create; on ours it is then written through /status),
 * annotated as synced so it is never executed. have: the Backup that exists already (a synced
 * one whose status was not written yet), or NULL. */
static void sync_one(engine *e, objstore *st, json_t *bsl, const char *name, json_t *have, const struct fence *f) {
  char key[VELERO_KEY_MAX], *doc = NULL;
  size_t len = 0;
  json_t *file = NULL, *obj = NULL, *out = NULL;
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
  json_t *fst = json_object_get(file, "status");
  if (!json_is_object(fst) || !velero_phase_terminal(json_string_value(json_object_get(fst, "phase")))) {
    kd_log(KD_LOG_WARN, "sync %s: %s has no final phase; not synced", bname, key);
    goto done;
  }
  if (!have) {
    json_t *fmeta = json_object_get(file, "metadata");
    json_t *labels = json_is_object(json_object_get(fmeta, "labels")) ? json_deep_copy(json_object_get(fmeta, "labels")) : json_object();
    json_t *ann = json_is_object(json_object_get(fmeta, "annotations")) ? json_deep_copy(json_object_get(fmeta, "annotations")) : json_object();
    json_t *spec = json_deep_copy(json_object_get(file, "spec"));
    char lbl[VELERO_LABEL_MAX + 1];
    velero_label_value(bname, lbl);
    if (!labels || !ann || !spec || json_object_set_new(labels, VELERO_LABEL_STORAGE_LOCATION, json_string(lbl)) ||
        json_object_set_new(ann, BACKUP_SYNCED_ANNOTATION, json_string(bname)) ||
        json_object_set_new(spec, "storageLocation", json_string(bname))) {
      json_decref(labels), json_decref(ann), json_decref(spec);
      goto done;
    }
    obj = json_pack("{s:s,s:s,s:{s:s,s:s,s:o,s:o},s:o,s:O}", "apiVersion", "velero.io/v1", "kind", "Backup", "metadata",
                    "name", name, "namespace", e->o.ns, "labels", labels, "annotations", ann, "spec", spec, "status", fst);
    if (!obj || (rc = fence_check(f, "syncing a backup")) != KD_OK) goto done;
    rc = kube_create(e->c, &res_backup, e->o.ns, obj, &out);
    if (rc == KD_ERR_CONFLICT) goto done; /* appeared meanwhile */
    if (rc != KD_OK) {
      kd_log(KD_LOG_WARN, "sync %s: creating Backup %s: %s", bname, name, kd_errmsg());
      goto done;
    }
    kd_log(KD_LOG_INFO, "sync %s: Backup %s found in the location, created", bname, name);
    have = out;
  }
  if (!phase_of(have) || !phase_of(have)[0]) { /* the CRD has /status: the create dropped it */
    struct vstatus_write w = {&res_backup, e->o.ns, name, fst, vstatus_new, meta_str(have, "uid"), f, 10000, e->stop};
    if (vstatus_write(e->c, &w, NULL) != KD_OK) kd_log(KD_LOG_WARN, "sync %s: status of Backup %s: %s", bname, name, kd_errmsg());
  }
done:
  free(doc);
  json_decref(file);
  json_decref(obj);
  json_decref(out);
}

/* DELETE name with the uid as precondition: never a namesake created meanwhile. */
static kd_rc delete_exact(engine *e, const struct kube_res *res, const char *name, const char *uid) {
  char path[KUBE_MAX_PATH];
  json_t *out = NULL;
  kd_rc rc = kube_path(res, e->o.ns, name, NULL, NULL, path);
  if (rc != KD_OK) return rc;
  json_t *body = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "DeleteOptions", "preconditions", "uid", uid);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  rc = text ? kube_request(e->c, "DELETE", path, "application/json", text, strlen(text), &out) : kd_fail(KD_ERR_NOMEM, "out of memory");
  free(text);
  json_decref(body);
  json_decref(out);
  return rc;
}

static void sync_bsl(engine *e, json_t *bsl, const struct fence *f) {
  objstore *st = NULL;
  struct names n = {json_object(), false, false};
  json_t *all = NULL;
  const char *bname = meta_str(bsl, "name");
  time_t listed_at = time(NULL);
  kd_rc rc = n.set ? open_fenced(e, bsl, f, &st) : KD_ERR_NOMEM;
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
    if (!fence_held(f) || *e->stop) goto done;
    json_t *have = informer_get(e->inf[INF_BACKUPS], e->o.ns, name);
    if (!have || (backup_is_synced(have) && (!phase_of(have) || !phase_of(have)[0]))) sync_one(e, st, bsl, name, have, f);
    json_decref(have);
  }
  /* Backups of this location whose files are gone: Velero deletes the objects. Only those that
   * had finished before the listing began (a backup finishing meanwhile was not listed yet). */
  if (!(all = informer_list(e->inf[INF_BACKUPS]))) goto done;
  size_t i;
  json_t *b;
  json_array_foreach(all, i, b) {
    const char *ph = phase_of(b), *done_at = json_string_value(json_object_get(json_object_get(b, "status"), "completionTimestamp"));
    time_t t;
    if (!kd_streq(json_string_value(json_object_get(json_object_get(b, "spec"), "storageLocation")), bname)) continue;
    if (!kd_streq(ph, VELERO_PHASE_COMPLETED) && !kd_streq(ph, VELERO_PHASE_PARTIALLY_FAILED)) continue;
    if (!done_at || kd_time_parse(done_at, &t) != KD_OK || t >= listed_at - 1) continue;
    if (json_object_get(n.set, meta_str(b, "name")) || !meta_str(b, "uid") || !fence_held(f)) continue;
    if (delete_exact(e, &res_backup, meta_str(b, "name"), meta_str(b, "uid")) == KD_OK)
      kd_log(KD_LOG_INFO, "sync %s: Backup %s is no longer in the location; deleted the object", bname, meta_str(b, "name"));
  }
  char ts[21];
  kd_time_format(time(NULL), ts);
  json_t *st_patch = json_pack("{s:s}", "lastSyncedTime", ts);
  if (st_patch) write_status(e, &res_bsl, bname, st_patch, f);
  json_decref(st_patch);
done:
  json_decref(all);
  json_decref(n.set);
  objstore_free(st);
}

static void storage_locations(engine *e, const struct fence *f) {
  json_t *all = informer_list(e->inf[INF_BSLS]);
  size_t i;
  json_t *bsl;
  int64_t now = kd_now_ms();
  json_array_foreach(all, i, bsl) {
    if (*e->stop || !fence_held(f)) break;
    const char *name = meta_str(bsl, "name");
    json_t *lv = json_object_get(e->last_validated, name), *ls = json_object_get(e->last_synced, name);
    if (!lv || now - json_integer_value(lv) >= period_ms(bsl, "validationFrequency")) {
      validate_bsl(e, bsl, f);
      json_object_set_new(e->last_validated, name, json_integer(kd_now_ms()));
    }
    if (*e->stop || !fence_held(f)) break;
    json_t *cur = informer_get(e->inf[INF_BSLS], e->o.ns, name);
    bool available = kd_streq(phase_of(cur), "Available");
    json_decref(cur);
    if (available && (!ls || now - json_integer_value(ls) >= period_ms(bsl, "backupSyncPeriod"))) {
      sync_bsl(e, bsl, f);
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

/* Is a DeleteBackupRequest for this Backup (by name, and uid when labelled) waiting, being
 * served, or made less than ENGINE_REDELETE_S ago? */
static bool deletion_pending(engine *e, json_t *backup) {
  json_t *all = informer_list(e->inf[INF_DBRS]);
  size_t i;
  json_t *d;
  bool found = false;
  time_t now = time(NULL), made;
  json_array_foreach(all, i, d) {
    const char *uid = json_string_value(json_object_get(json_object_get(json_object_get(d, "metadata"), "labels"), BACKUP_UID_LABEL));
    bool recent = kd_time_parse(meta_str(d, "creationTimestamp"), &made) == KD_OK && now - made < ENGINE_REDELETE_S;
    if (kd_streq(json_string_value(json_object_get(json_object_get(d, "spec"), "backupName")), meta_str(backup, "name")) &&
        (!uid || kd_streq(uid, meta_str(backup, "uid"))) && (!kd_streq(phase_of(d), "Processed") || recent))
      found = true;
  }
  json_decref(all);
  return found;
}

static void request_deletion(engine *e, json_t *backup, const char *why, const struct fence *f) {
  const char *name = meta_str(backup, "name");
  if (deletion_pending(e, backup) || fence_check(f, "requesting a deletion") != KD_OK) return;
  json_t *obj = backup_delete_request(e->o.ns, backup), *out = NULL;
  kd_rc rc = obj ? kube_create(e->c, &res_dbr, e->o.ns, obj, &out) : kd_fail(KD_ERR_NOMEM, "out of memory");
  if (rc == KD_OK) kd_log(KD_LOG_INFO, "Backup %s %s: requested its deletion (%s)", name, why, meta_str(out, "name"));
  else kd_log(KD_LOG_WARN, "Backup %s: requesting deletion: %s", name, kd_errmsg());
  json_decref(obj);
  json_decref(out);
}

static void expire(engine *e, const struct fence *f) {
  json_t *all = informer_list(e->inf[INF_BACKUPS]);
  size_t i;
  json_t *b;
  time_t now = time(NULL), exp;
  json_array_foreach(all, i, b) {
    const char *s = json_string_value(json_object_get(json_object_get(b, "status"), "expiration"));
    json_t *lk = meta_str(b, "uid") ? json_object_get(e->locked, meta_str(b, "uid")) : NULL;
    if (lk && json_integer_value(lk) > now) continue; /* its files are locked: asked again after the date */
    if (lk) json_object_del(e->locked, meta_str(b, "uid"));
    if (kd_streq(phase_of(b), VELERO_PHASE_DELETING)) { /* a deletion that failed (its files stay) is tried again */
      request_deletion(e, b, "is still Deleting", f);
      continue;
    }
    if (!s || kd_time_parse(s, &exp) != KD_OK || exp > now) continue;
    if (!velero_phase_terminal(phase_of(b))) continue; /* never one that runs */
    request_deletion(e, b, "expired", f);
  }
  json_decref(all);
}

/* DeleteBackupRequest status: a compare-and-swap from expect. */
static kd_rc set_dbr(engine *e, json_t *dbr, const char *phase, const char *error, const char *const *expect,
                     const struct fence *f) {
  json_t *st = json_pack("{s:s,s:o}", "phase", phase, "errors", error ? json_pack("[s]", error) : json_array());
  struct vstatus_write w = {&res_dbr, e->o.ns, meta_str(dbr, "name"), st, expect, meta_str(dbr, "uid"), f, 30000, e->stop};
  kd_rc rc = st ? vstatus_write(e->c, &w, NULL) : kd_fail(KD_ERR_NOMEM, "out of memory");
  json_decref(st);
  return rc;
}

static const char *const dbr_open[] = {"", "New", "InProgress", NULL};
static const char *const dbr_in_progress[] = {"InProgress", NULL};
static const char *const backup_deletable[] = {"Completed", "PartiallyFailed", "Failed", "FailedValidation", "Deleting", NULL};

/* S3 Object Lock: the latest retain-until date among the files of backup (its own,
 * backup_files_ours) when still to come, with the mode in mode and the file in file; 0 when none
 * is retained any more (or the files are not ours; or, on a location without the lock
 * annotation, when it cannot be read: deletion then reports what fails). Every file of the folder is asked, not only velero-backup.json: a retention can be
 * extended by anyone with the location's credentials, and backup_delete_files removes
 * velero-backup.json first, so one file still retained would leave a half-deleted backup.
 * (time_t)-1 (message in err) when a location with object lock cannot tell: the deletion then
 * waits, it never deletes on a guess. */
#define LOCK_FILES_MAX 10000 /* files of one backup folder asked */

struct lock_scan {
  objstore *st;
  time_t until;
  char mode[16], file[VELERO_KEY_MAX];
  size_t n;
};

static kd_rc lock_scan_file(const char *key, bool is_prefix, uint64_t size, void *ud) {
  struct lock_scan *ls = ud;
  char mode[16];
  time_t until = 0;
  (void)size;
  if (is_prefix) return KD_OK;
  if (++ls->n > LOCK_FILES_MAX) return kd_fail(KD_ERR_TOOBIG, "more than %d files in the backup's folder", LOCK_FILES_MAX);
  kd_rc rc = objstore_retention(ls->st, key, mode, &until);
  if (rc == KD_ERR_NOTFOUND) return KD_OK; /* gone since the listing */
  if (rc != KD_OK) return kd_fail_wrap(rc, "reading the object lock of %s", key);
  if (until > ls->until) {
    ls->until = until;
    snprintf(ls->mode, sizeof ls->mode, "%s", mode);
    snprintf(ls->file, sizeof ls->file, "%s", key);
  }
  return KD_OK;
}

static time_t locked_until(engine *e, json_t *bsl, json_t *backup, const struct fence *f, char mode[16], char *file,
                           size_t file_n, char *err, size_t err_n) {
  objstore *st = NULL;
  char key[VELERO_KEY_MAX], why[300], prefix[VELERO_KEY_MAX];
  const char *name = meta_str(backup, "name");
  struct lock_scan ls = {0};
  bool ours = false;
  mode[0] = file[0] = err[0] = '\0';
  if (!name || open_fenced(e, bsl, f, &st) != KD_OK) return 0;
  objstore_set_cancel(st, e->stop);
  ls.st = st;
  kd_rc rc = KD_OK;
  /* asked also without the annotation now: files written while it was there stay locked */
  if ((rc = backup_files_ours(st, backup, &ours, why, sizeof why)) == KD_OK && ours &&
      (rc = backup_claim_key(name, key, sizeof key)) == KD_OK) {
    int w = snprintf(prefix, sizeof prefix, "backups/%s/", name);
    rc = w < 0 || (size_t)w >= sizeof prefix ? kd_fail(KD_ERR_TOOBIG, "backup name too long") : KD_OK;
    if (rc == KD_OK) rc = objstore_list(st, prefix, '\0', lock_scan_file, &ls);
    if (rc == KD_OK) rc = lock_scan_file(key, false, 0, &ls); /* the claim, also when it is not under the folder */
  }
  bool locking = objstore_lock_mode(st) != NULL;
  if (rc != KD_OK && locking)
    snprintf(err, err_n, "cannot tell whether the files of backup %s are still protected by S3 Object Lock: %s", name,
             kd_errmsg());
  objstore_free(st);
  if (rc != KD_OK && locking) return (time_t)-1;
  if (ls.until <= time(NULL)) return 0;
  snprintf(mode, 16, "%s", ls.mode);
  snprintf(file, file_n, "%s", ls.file);
  return ls.until;
}

/* Serve one request: the request goes InProgress (one server wins), the Backup goes Deleting,
 * then its files (only when they are its own) and the object go; the request ends Processed. */
static void serve_deletion(engine *e, json_t *dbr, const struct fence *f) {
  const char *bname = json_string_value(json_object_get(json_object_get(dbr, "spec"), "backupName"));
  const char *want_uid = json_string_value(json_object_get(json_object_get(json_object_get(dbr, "metadata"), "labels"), BACKUP_UID_LABEL));
  json_t *backup = NULL, *bsl = NULL;
  objstore *st = NULL;
  char err[1200] = "", why[300];
  bool files_deleted = false;
  if (set_dbr(e, dbr, "InProgress", NULL, dbr_open, f) != KD_OK) {
    kd_log(KD_LOG_WARN, "DeleteBackupRequest %s: %s", meta_str(dbr, "name"), kd_errmsg());
    return;
  }
  kd_rc rc = bname ? kube_get(e->c, &res_backup, e->o.ns, bname, &backup) : KD_ERR_INVALID;
  if (rc == KD_ERR_NOTFOUND) {
    snprintf(err, sizeof err, "backup %s not found", bname);
    goto done;
  }
  if (rc != KD_OK) {
    if (!bname) snprintf(err, sizeof err, "spec.backupName is missing");
    else goto retry; /* the API server could not answer: served again later */
    goto done;
  }
  const char *uid = meta_str(backup, "uid");
  if (want_uid && !kd_streq(want_uid, uid)) {
    snprintf(err, sizeof err, "backup %s is another one now (uid %s, the request was for %s): nothing deleted", bname,
             uid ? uid : "none", want_uid);
    goto done;
  }
  if (!velero_phase_terminal(phase_of(backup)) && !kd_streq(phase_of(backup), VELERO_PHASE_DELETING)) {
    snprintf(err, sizeof err, "backup %s is %s; it can be deleted once it has finished", bname,
             phase_of(backup) && phase_of(backup)[0] ? phase_of(backup) : "New");
    goto done;
  }
  bsl = bsl_of(e, backup);
  if (bsl && kd_streq(json_string_value(json_object_get(json_object_get(bsl, "spec"), "accessMode")), "ReadOnly")) {
    snprintf(err, sizeof err, "cannot delete backup %s: backup storage location %s is in read-only mode", bname,
             meta_str(bsl, "name"));
    goto done;
  }
  json_t *restores = informer_list(e->inf[INF_RESTORES]);
  const char *reader = retention_reader(restores, bname);
  if (reader) /* deleting it now would fail that restore halfway */
    snprintf(err, sizeof err, "backup %s is being restored by Restore %s: it can be deleted once that restore has ended",
             bname, reader);
  json_decref(restores);
  if (err[0]) goto done;
  char lmode[16], ldate[21], lfile[VELERO_KEY_MAX], lerr[1000];
  time_t lu = bsl ? locked_until(e, bsl, backup, f, lmode, lfile, sizeof lfile, lerr, sizeof lerr) : 0;
  if (lu == (time_t)-1) { /* nothing is deleted on a guess: asked again later */
    kd_fail(KD_ERR_TRANSPORT, "%s", lerr);
    goto retry;
  }
  if (lu) { /* deleting would only hide it (a delete marker) or fail half-way: kept whole, phase unchanged */
    kd_time_format(lu, ldate);
    snprintf(err, sizeof err, "backup %.253s is protected by S3 Object Lock (%s) until %s (%.300s): its files cannot be "
             "deleted before then; the Backup is kept as it is and deleted after that date", bname, lmode, ldate, lfile);
    if (uid) json_object_set_new(e->locked, uid, json_integer((json_int_t)lu));
    goto done;
  }
  json_t *deleting = json_pack("{s:s}", "phase", VELERO_PHASE_DELETING);
  struct vstatus_write w = {&res_backup, e->o.ns, bname, deleting, backup_deletable, uid, f, 30000, e->stop};
  rc = deleting ? vstatus_write(e->c, &w, NULL) : kd_fail(KD_ERR_NOMEM, "out of memory");
  json_decref(deleting);
  if (rc != KD_OK) {
    if (rc == KD_ERR_CANCELLED || rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT || rc == KD_ERR_HTTP) goto retry;
    snprintf(err, sizeof err, "%s", kd_errmsg());
    goto done;
  }
  if (!bsl) {
    snprintf(err, sizeof err, "backup storage location of backup %s not found: only the object is deleted", bname);
  } else {
    bool ours = false;
    if ((rc = open_fenced(e, bsl, f, &st)) != KD_OK ||
        (objstore_set_cancel(st, e->stop), rc = backup_files_ours(st, backup, &ours, why, sizeof why)) != KD_OK ||
        (ours && (rc = backup_delete_files(st, bname)) != KD_OK)) {
      snprintf(err, sizeof err, "deleting the files of backup %s: %s", bname, kd_errmsg());
      goto done; /* the object stays (Deleting) while its files may remain: it can be deleted again */
    }
    if (!ours) kd_log(KD_LOG_WARN, "Backup %s: its folder in %s is left alone: %s", bname, meta_str(bsl, "name"), why);
    files_deleted = ours;
  }
  if (fence_check(f, "deleting a Backup") != KD_OK) goto retry;
  rc = delete_exact(e, &res_backup, bname, uid);
  if (rc != KD_OK && rc != KD_ERR_NOTFOUND && rc != KD_ERR_CONFLICT)
    snprintf(err, sizeof err, "deleting Backup %s: %s", bname, kd_errmsg());
  else
    kd_log(KD_LOG_INFO, "Backup %s deleted (%s)", bname, files_deleted ? "files and object" : "the object only");
done:
  if (err[0]) kd_log(KD_LOG_WARN, "DeleteBackupRequest %s: %s", meta_str(dbr, "name"), err);
  if (set_dbr(e, dbr, "Processed", err[0] ? err : NULL, dbr_in_progress, f) != KD_OK)
    kd_log(KD_LOG_WARN, "DeleteBackupRequest %s: %s", meta_str(dbr, "name"), kd_errmsg());
  goto out;
retry:
  kd_log(KD_LOG_WARN, "DeleteBackupRequest %s: %s; trying again later", meta_str(dbr, "name"), kd_errmsg());
out:
  objstore_free(st);
  json_decref(backup);
  json_decref(bsl);
}

bool engine_dbr_expired(json_t *dbr, time_t now) {
  time_t created;
  return kd_streq(phase_of(dbr), "Processed") && meta_str(dbr, "uid") &&
         kd_time_parse(meta_str(dbr, "creationTimestamp"), &created) == KD_OK && now - created > ENGINE_DBR_MAX_AGE_S;
}

/* Serve waiting requests (New, or InProgress: a stopped engine's); remove processed ones after
 * 24 h, as Velero does. */
static void deletions(engine *e, bool gc, const struct fence *f) {
  json_t *all = informer_list(e->inf[INF_DBRS]);
  size_t i;
  json_t *d;
  time_t now = time(NULL);
  json_array_foreach(all, i, d) {
    if (*e->stop || !fence_held(f)) break;
    if (vstatus_phase_in(phase_of(d), dbr_open)) {
      serve_deletion(e, d, f);
    } else if (gc && engine_dbr_expired(d, now)) {
      if (delete_exact(e, &res_dbr, meta_str(d, "name"), meta_str(d, "uid")) == KD_OK)
        kd_log(KD_LOG_INFO, "DeleteBackupRequest %s: processed more than 24 h ago; removed", meta_str(d, "name"));
    }
  }
  json_decref(all);
}

/* ---- jobs ---- */

/* A worker is done with its job: the slot is free again and the loop hears of it. done is set
 * under e->lock, together with the wake-up, and nothing after it takes the lock: the loop joins
 * finished workers while it holds e->lock, so a worker still waiting for it would never end. */
static void slot_finished(struct slot *sl) {
  engine *e = sl->e;
  json_decref(sl->obj);
  sl->obj = NULL;
  pthread_mutex_lock(&e->lock);
  sl->done = 1;
  e->wake = 1;
  pthread_cond_signal(&e->cond);
  pthread_mutex_unlock(&e->lock);
}

/* The object as the server has it now, when it is still New and ours to run; else NULL. */
static json_t *fresh_new(engine *e, struct slot *sl, const struct kube_res *res) {
  json_t *fresh = NULL;
  if (kube_get(e->c, res, e->o.ns, sl->name, &fresh) != KD_OK) return NULL; /* the next tick looks again */
  if (!vstatus_phase_in(phase_of(fresh), vstatus_new) || !kd_streq(meta_str(fresh, "uid"), meta_str(sl->obj, "uid")) ||
      (!sl->restore && backup_is_synced(fresh))) {
    json_decref(fresh);
    return NULL;
  }
  json_object_del(json_object_get(fresh, "metadata"), "managedFields");
  return fresh;
}

static void *run_backup(void *arg) {
  struct slot *sl = arg;
  engine *e = sl->e;
  json_t *backup = fresh_new(e, sl, &res_backup), *bsl = NULL;
  objstore *st = NULL;
  char store_error[1200] = "";
  if (!backup || !fence_held(&sl->fence)) goto out;
  bsl = bsl_of(e, backup);
  if (bsl && open_fenced(e, bsl, &sl->fence, &st) != KD_OK) snprintf(store_error, sizeof store_error, "%s", kd_errmsg());
  /* no cancel flag on the store: the backup checks job.cancel at every object, and a cancelled
   * store could not remove the partial files afterwards */
  struct backup_job job = {e->c, e->o.ns, backup, bsl, st, store_error[0] ? store_error : NULL, &e->cancel, 0, 0, &sl->fence};
  struct backup_result res = {0};
  int64_t t0 = kd_now_ms();
  if (backup_execute(&job, &res) != KD_OK) {
    kd_log(KD_LOG_WARN, "Backup %s: %s", sl->name, kd_errmsg());
    kd_sleep_ms(5000, &e->cancel); /* a lasting error (RBAC, a webhook) is not retried in a tight loop */
  } else
    kd_log(KD_LOG_INFO, "Backup %s: %s, %ld items, %ld errors, %ld warnings, %llu bytes in %.1f s", sl->name, res.phase,
           res.items, res.errors, res.warnings, (unsigned long long)res.tarball_bytes, (double)(kd_now_ms() - t0) / 1000.0);
out:
  objstore_free(st);
  json_decref(bsl);
  json_decref(backup);
  slot_finished(sl);
  return NULL;
}

static void *run_restore(void *arg) {
  struct slot *sl = arg;
  engine *e = sl->e;
  json_t *restore = fresh_new(e, sl, &res_restore), *backup = NULL, *bsl = NULL;
  objstore *st = NULL;
  char store_error[1200] = "";
  if (!restore || !fence_held(&sl->fence)) goto out;
  const char *bname = json_string_value(json_object_get(json_object_get(restore, "spec"), "backupName"));
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
  if (bsl && open_fenced(e, bsl, &sl->fence, &st) != KD_OK) snprintf(store_error, sizeof store_error, "%s", kd_errmsg());
  struct restore_job job = {.client = e->c, .ns = e->o.ns, .restore = restore, .backup = backup, .bsl = bsl,
                            .store = st, .store_error = store_error[0] ? store_error : NULL, .cancel = &e->cancel,
                            .fence = &sl->fence};
  struct restore_result res = {0};
  int64_t t0 = kd_now_ms();
  if (restore_execute(&job, &res) != KD_OK) {
    kd_log(KD_LOG_WARN, "Restore %s: %s", sl->name, kd_errmsg());
    kd_sleep_ms(5000, &e->cancel); /* a lasting error is not retried in a tight loop */
  } else
    kd_log(KD_LOG_INFO, "Restore %s: %s, %ld objects: %ld created, %ld updated, %ld skipped, %ld failed; %ld errors, %ld "
                        "warnings in %.1f s", sl->name, res.phase, res.total, res.created, res.updated, res.skipped,
           res.failed, res.errors, res.warnings, (double)(kd_now_ms() - t0) / 1000.0);
out:
  objstore_free(st);
  json_decref(bsl);
  json_decref(backup);
  json_decref(restore);
  slot_finished(sl);
  return NULL;
}

/* Is a job for name (a Backup, or a Restore) running here? Takes e->lock. */
static bool running_here(engine *e, const char *name, bool restore) {
  bool found = false;
  pthread_mutex_lock(&e->lock);
  for (int i = 0; i < e->o.workers && !found; i++)
    found = e->slots[i].started && !e->slots[i].done && e->slots[i].restore == restore && strcmp(e->slots[i].name, name) == 0;
  pthread_mutex_unlock(&e->lock);
  return found;
}

/* A free slot (finished workers are joined: they have returned, so this never waits). Called
 * with e->lock held. */
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

static int busy_workers(engine *e) {
  int n = 0;
  pthread_mutex_lock(&e->lock);
  for (int i = 0; i < e->o.workers; i++) n += e->slots[i].started && !e->slots[i].done;
  pthread_mutex_unlock(&e->lock);
  return n;
}

/* Start New Backups (restore false) or Restores (true) on free workers, from the cache: the
 * worker reads the object fresh and claims it with a compare-and-swap. */
static void start_jobs(engine *e, bool restore) {
  json_t *all = informer_list(e->inf[restore ? INF_RESTORES : INF_BACKUPS]);
  const char *kind = restore ? "Restore" : "Backup";
  size_t i;
  json_t *b;
  json_array_foreach(all, i, b) {
    const char *name = meta_str(b, "name");
    if (!vstatus_phase_in(phase_of(b), vstatus_new) || !name || strlen(name) >= sizeof e->slots[0].name ||
        (!restore && backup_is_synced(b)) || running_here(e, name, restore))
      continue;
    pthread_mutex_lock(&e->lock);
    struct slot *sl = free_slot(e);
    if (!sl) {
      pthread_mutex_unlock(&e->lock);
      break;
    }
    sl->e = e;
    sl->obj = json_incref(b);
    sl->restore = restore;
    sl->done = 0;
    sl->fence = fence_take(&e->fsrc);
    snprintf(sl->name, sizeof sl->name, "%s", name);
    if (pthread_create(&sl->th, NULL, restore ? run_restore : run_backup, sl) != 0) {
      json_decref(sl->obj);
      sl->obj = NULL;
      pthread_mutex_unlock(&e->lock);
      kd_log(KD_LOG_ERROR, "%s %s: cannot start a worker thread", kind, name);
      continue;
    }
    sl->started = true;
    pthread_mutex_unlock(&e->lock);
    kd_log(KD_LOG_DEBUG, "%s %s: handed to a worker", kind, name);
  }
  json_decref(all);
}

/* Backups and Restores InProgress with no job here (this engine before a restart, a leader that
 * lost its lease, a final status lost in an outage) end Failed, as Velero does on start-up; a
 * Backup whose files are whole ends as they say. */
static void abandoned(engine *e, const struct fence *f) {
  json_t *all = informer_list(e->inf[INF_BACKUPS]);
  size_t i;
  json_t *b;
  json_array_foreach(all, i, b) {
    const char *name = meta_str(b, "name");
    if (*e->stop || !fence_held(f)) break;
    if (!vstatus_phase_in(phase_of(b), vstatus_in_progress) || !name || running_here(e, name, false)) continue;
    json_t *bsl = bsl_of(e, b);
    objstore *st = NULL;
    char store_error[1200] = "";
    if (bsl && open_fenced(e, bsl, f, &st) != KD_OK) snprintf(store_error, sizeof store_error, "%s", kd_errmsg());
    if (backup_fail_abandoned(e->c, e->o.ns, b, st, store_error[0] ? store_error : NULL,
                              "the engine that ran this backup stopped before it finished (restart, kill, lost "
                              "leadership or an API outage longer than its patience)", f) != KD_OK)
      kd_log(KD_LOG_WARN, "Backup %s: left InProgress by a stopped engine: %s", name, kd_errmsg());
    objstore_free(st);
    json_decref(bsl);
  }
  json_decref(all);
  all = informer_list(e->inf[INF_RESTORES]);
  json_array_foreach(all, i, b) {
    const char *name = meta_str(b, "name");
    if (*e->stop || !fence_held(f)) break;
    if (!vstatus_phase_in(phase_of(b), vstatus_in_progress) || !name || running_here(e, name, true)) continue;
    if (restore_fail_abandoned(e->c, e->o.ns, b,
                               "the engine that ran this restore stopped before it finished (restart, kill or lost "
                               "leadership); objects it created stay: run the restore again with "
                               "existingResourcePolicy update to finish it", f) == KD_OK)
      kd_log(KD_LOG_WARN, "Restore %s: left InProgress by a stopped engine; marked Failed", name);
    else
      kd_log(KD_LOG_WARN, "Restore %s: marking it Failed: %s", name, kd_errmsg());
  }
  json_decref(all);
}

/* ---- upkeep: everything that talks to the network outside a job, one round at a time ---- */

static void velero_check(engine *e) {
  bool running = false;
  char which[256];
  if (engine_velero_running(e->c, e->o.ns, &running, which, sizeof which) != KD_OK) {
    kd_log(KD_LOG_DEBUG, "builtin engine: %s", kd_errmsg());
    return;
  }
  if (running && !e->velero_running)
    kd_log(KD_LOG_ERROR, "builtin engine: a Velero server (Deployment %s/%s) runs in this namespace; executing no "
                         "Backups while it does (two executors would race on one Backup)", e->o.ns, which);
  else if (!running && e->velero_running)
    kd_log(KD_LOG_INFO, "builtin engine: the Velero server is gone; executing Backups again");
  e->velero_running = running;
}

static void *upkeep_main(void *arg) {
  engine *e = arg;
  const struct fence *f = &e->upkeep_fence;
  int64_t now = kd_now_ms();
  if (!e->last_velero_check_ms || now - e->last_velero_check_ms >= ENGINE_VELERO_CHECK_MS) {
    velero_check(e);
    e->last_velero_check_ms = now;
  }
  if (!e->velero_running) {
    bool grace = e->o.term && now - e->term_began_ms < ENGINE_TERM_GRACE_MS;
    if (!grace && (e->new_term || now - e->last_abandoned_ms >= ENGINE_ABANDONED_MS)) {
      abandoned(e, f);
      e->last_abandoned_ms = now;
      e->new_term = false;
    }
    bool gc = now - e->last_gc_ms >= ENGINE_GC_PERIOD_MS;
    deletions(e, gc, f);
    storage_locations(e, f);
    if (gc) {
      expire(e, f);
      e->last_gc_ms = now;
    }
  }
  e->upkeep_done = 1;
  poke(e);
  return NULL;
}

/* Start a round of upkeep when none runs and one is due. */
static void start_upkeep(engine *e) {
  if (e->upkeep_started) {
    if (!e->upkeep_done) return;
    pthread_join(e->upkeep_th, NULL); /* it has returned */
    e->upkeep_started = false;
  }
  int64_t now = kd_now_ms();
  if (now < e->next_upkeep_ms) return;
  e->next_upkeep_ms = now + ENGINE_UPKEEP_MS;
  e->upkeep_fence = fence_take(&e->fsrc);
  e->upkeep_done = 0;
  if (pthread_create(&e->upkeep_th, NULL, upkeep_main, e) != 0) {
    kd_log(KD_LOG_ERROR, "builtin engine: cannot start the upkeep thread");
    return;
  }
  e->upkeep_started = true;
}

/* ---- the loop ---- */

static void *informer_main(void *arg) {
  struct inf_arg *a = arg;
  engine *e = a->e;
  /* a watch that ends after its first sync (a velero.io type answering 404 while its CRD is
   * re-created, a server restart) is started again: the engine must not go blind. One that never
   * synced (the Velero CRDs are not served) is fatal. */
  while (!*e->stop) {
    a->rc = informer_run(e->inf[a->which], e->stop);
    if (*e->stop || a->rc == KD_OK) break;
    if (!informer_synced(e->inf[a->which])) {
      kd_log(KD_LOG_ERROR, "engine: watching %s stopped: %s", inf_names[a->which], kd_errmsg());
      return NULL;
    }
    kd_log(KD_LOG_ERROR, "engine: watching %s stopped: %s; watching again in 5 s", inf_names[a->which], kd_errmsg());
    kd_sleep_ms(5000, e->stop);
  }
  a->rc = KD_OK;
  return NULL;
}

kd_rc engine_new(kube_client *c, const struct engine_opts *opts, engine **out) {
  engine *e = calloc(1, sizeof *e);
  if (!e) return kd_fail(KD_ERR_NOMEM, "out of memory");
  e->c = c;
  e->o = *opts;
  if (e->o.workers <= 0) e->o.workers = 2;
  if (e->o.workers > ENGINE_WORKERS_MAX) e->o.workers = ENGINE_WORKERS_MAX;
  e->fsrc = (struct fence_src){e->o.term, e->o.term ? e->o.valid_until_ms : NULL};
  pthread_mutex_init(&e->lock, NULL);
  pthread_cond_init(&e->cond, NULL);
  e->last_validated = json_object();
  e->last_synced = json_object();
  e->locked = json_object();
  struct informer_handlers h = {on_add, on_update, on_add, poke, e};
  struct informer_opts io = {e->o.ns, NULL, 0, strip_managed};
  kd_rc rc = KD_OK;
  if (!e->last_validated || !e->last_synced || !e->locked) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
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
  json_decref(e->locked);
  pthread_mutex_destroy(&e->lock);
  pthread_cond_destroy(&e->cond);
  free(e);
}

static bool synced(engine *e) {
  for (int i = 0; i < INF_N; i++)
    if (!informer_synced(e->inf[i])) return false;
  return true;
}

static void wait_tick(engine *e) {
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
}

kd_rc engine_run(engine *e, volatile const int *stop) {
  pthread_t th[INF_N];
  struct inf_arg args[INF_N];
  uint64_t term = 0;
  e->stop = stop;
  for (int i = 0; i < INF_N; i++) {
    args[i] = (struct inf_arg){e, i, KD_OK};
    pthread_create(&th[i], NULL, informer_main, &args[i]);
  }
  kd_log(KD_LOG_INFO, "builtin engine: executing Backups and Restores in namespace %s on %d workers", e->o.ns, e->o.workers);
  while (!*stop) {
    wait_tick(e);
    if (*stop || !synced(e)) continue;
    bool lead = leading(e);
    if (e->was_leading && (!lead || term_now(e) != term)) { /* the term ended */
      int busy = busy_workers(e);
      kd_log(KD_LOG_WARN, "builtin engine: the leadership term ended; cancelling %d running job(s)", busy);
      e->cancel = 1;
      e->was_leading = false;
    }
    if (e->cancel && busy_workers(e) == 0 && (!e->upkeep_started || e->upkeep_done)) e->cancel = 0;
    if (!lead || e->cancel) continue; /* nothing new while an ended term's jobs wind down */
    if (!e->was_leading) { /* a new term: what an earlier engine left running has ended */
      term = term_now(e);
      e->was_leading = true;
      e->new_term = true;
      e->term_began_ms = kd_now_ms();
      e->next_upkeep_ms = 0;
    }
    start_upkeep(e);
    if (e->velero_running) continue;
    start_jobs(e, false);
    start_jobs(e, true);
  }
  e->cancel = 1;
  for (int i = 0; i < e->o.workers; i++)
    if (e->slots[i].started) pthread_join(e->slots[i].th, NULL);
  if (e->upkeep_started) pthread_join(e->upkeep_th, NULL);
  for (int i = 0; i < INF_N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < INF_N; i++)
    if (args[i].rc != KD_OK) return args[i].rc;
  return KD_OK;
}
