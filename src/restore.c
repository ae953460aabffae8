/* restore.c — execute one velero.io/v1 Restore (see restore.h).
 *
 * Three phases, each finished before the next starts:
 *   1. validate (FailedValidation, nothing touched);
 *   2. stage and index: the tarball is downloaded to an unlinked temporary file while its
 *      SHA-256 is computed and compared with the backup's checksums; then every entry is read
 *      (the gzip CRC is only known at the end of the stream), every object JSON parsed and the
 *      selected ones copied to a second unlinked file with an index in memory (resource,
 *      namespace, name, offset, length: about 100 bytes per object, never the objects
 *      themselves). Any failure here ends Failed with nothing created;
 *   3. create, class by class in Velero's order, the objects of one class by a pool of workers.
 *
 * Where kcmdr differs from Velero on purpose:
 *   - metadata.managedFields is stripped too (Velero re-applies the backup's managedFields after
 *     the create with a second PATCH per object; they are the old server's bookkeeping, and
 *     comparing them makes every existing object look different);
 *   - an object file whose metadata.name differs from its path, and invalid JSON anywhere,
 *     fail the restore before anything is created (Velero logs an error for that item);
 *   - a resource the API server does not serve is an error for its objects (Velero: warning). */
#include "restore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "joblog.h"
#include "backup.h"
#include "jsonpatch.h"
#include "resmod.h"
#include "velero.h"
#include "verify.h"
#include "crypt.h"
#include "vstatus.h"

#define RS_MAX_OBJECTS 2000000     /* objects indexed from one backup */
#define RS_DEFAULT_WORKERS 16
#define RS_MAX_WORKERS 64

static const struct kube_res rs_restore_res = {"velero.io", "v1", "restores", "Restore", true};
static const struct kube_res rs_ns_res = {"", "v1", "namespaces", "Namespace", false};
static const struct kube_res rs_sa_res = {"", "v1", "serviceaccounts", "ServiceAccount", true};
static const struct kube_res rs_cm_res = {"", "v1", "configmaps", "ConfigMap", true};
static const struct kube_res rs_crd_res = {"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                           "CustomResourceDefinition", false};

/* one object selected from the archive */
struct rs_item {
  int cls;          /* velero_restore_priority of gr */
  const char *gr;   /* interned in rs->grs */
  char *ns;         /* original namespace; "" for cluster-scoped */
  char *name;
  off_t off;        /* in the body file */
  size_t len;
};

/* a string list with Velero's IncludesExcludes semantics (globs) */
struct rs_ie {
  json_t *inc, *exc; /* arrays of strings */
};

struct rs {
  const struct restore_job *job;
  kube_client *c;
  const char *name;
  json_t *spec;
  pthread_mutex_t mu;
  joblog jl; /* log, results, the first fatal failure (its own lock) */
  int64_t t0_ms;

  json_t *discovery;          /* kube_discover's array */
  backup_filter *resolver;    /* name resolution only */
  struct rs_ie res_ie, ns_ie, status_ie;
  bool status_any;            /* spec.restoreStatus given */
  int incl_cluster;           /* -1 unset, 0 false, 1 true */
  backup_selector *sel;       /* labelSelector, NULL: everything */
  backup_selector **or_sels;
  size_t n_or;
  bool or_given;              /* orLabelSelectors has entries (null ones match nothing) */
  resmod *mods;
  json_t *ns_map;             /* namespaceMapping (borrowed from spec) */
  const char *policy;         /* "none" or "update" */
  bool preserve_node_ports;
  char label_backup[VELERO_LABEL_MAX + 1], label_restore[VELERO_LABEL_MAX + 1];

  int stage_fd, body_fd;
  struct rs_item *items;
  size_t n, cap;
  json_t *grs;                /* interned group-resource names (object of nulls) */
  json_t *ns_objects;         /* namespace name -> [offset, length] of its entry in the body file */
  json_t *ensured;            /* namespaces known to exist */
  json_t *crds;               /* names of CRDs this restore created or updated */
  bool verified;
  struct crypt_location loc;  /* the location's keys and signature policy (crypt.h) */
  bool attached;              /* loc.keys attached to the job's store */
  verify_sums *sums;          /* the checksums whose signature was checked, or NULL */

  /* creation */
  size_t next;                /* next item of the running class */
  size_t cls_end;
  _Atomic long done, created, updated, skipped, failed;
  pthread_t progress_thread;
  bool progress_started;
  atomic_int progress_stop;
};

static bool rs_stopped(struct rs *r) {
  return joblog_failed(&r->jl) || (r->job->cancel && *r->job->cancel) || !fence_held(r->job->fence);
}

/* A dry run's verdict on one object (nothing outside a dry run). */
static void rs_verdict(struct rs *r, const struct rs_item *it, const char *ns, const char *gr, const char *name,
                       enum restore_verdict v, const char *reason, json_t *live, json_t *after) {
  struct restore_dry_run *d = r->job->dry_run;
  if (!d || !d->verdict) return;
  struct restore_verdict_info vi = {(size_t)(it - r->items), gr, ns ? ns : "", name, v, reason, live, after};
  d->verdict(&vi, d->ud);
}

/* ---- log and results ---- */

/* Failures that end the restore rather than one object. */
static bool rs_rc_fatal(kd_rc rc) {
  return rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT || rc == KD_ERR_CANCELLED || rc == KD_ERR_NOMEM ||
         rc == KD_ERR_UNAUTHORIZED;
}

/* ---- status ---- */

/* The final status waits this long for an API server that is down; a lost term ends the wait. */
#define RS_FINAL_PATIENCE_MS (10 * 60 * 1000)

/* Write the Restore's status as a compare-and-swap from one of expect (vstatus.h), on this very
 * Restore (uid), under fence (may be NULL); transient failures retried for patience_ms. */
static kd_rc rs_status(kube_client *c, const char *ns, json_t *restore, json_t *status, const char *const *expect,
                       const struct fence *fence, int patience_ms, volatile const int *stop) {
  json_t *md = json_object_get(restore, "metadata");
  struct vstatus_write w = {&rs_restore_res, ns, json_string_value(json_object_get(md, "name")), status, expect,
                           json_string_value(json_object_get(md, "uid")), fence, patience_ms, stop};
  return vstatus_write(c, &w, NULL);
}

static void *rs_progress(void *arg) {
  struct rs *r = arg;
  long last = -1;
  while (!atomic_load(&r->progress_stop)) {
    for (int i = 0; i < 10 && !atomic_load(&r->progress_stop); i++) kd_sleep_ms(100, NULL);
    long done = atomic_load(&r->done);
    if (done == last) continue;
    last = done;
    json_t *st = json_pack("{s:{s:I,s:I}}", "progress", "totalItems", (json_int_t)r->n, "itemsRestored", (json_int_t)done);
    if (st && rs_status(r->c, r->job->ns, r->job->restore, st, vstatus_in_progress, r->job->fence, 0, r->job->cancel) != KD_OK)
      kd_log(KD_LOG_WARN, "restore %s/%s: progress not recorded: %s", r->job->ns, r->name, kd_errmsg());
    json_decref(st);
  }
  return NULL;
}

/* IncludesExcludes.ShouldInclude with globs */
static bool rs_ie_match(json_t *list, const char *s) {
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    if (backup_glob(json_string_value(e), s)) return true;
  }
  return false;
}

static bool rs_ie_has_star(json_t *list) {
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    if (kd_streq(json_string_value(e), "*")) return true;
  }
  return false;
}

static bool rs_ie_include(const struct rs_ie *ie, const char *s) {
  if (rs_ie_match(ie->exc, s)) return false;
  return json_array_size(ie->inc) == 0 || rs_ie_has_star(ie->inc) || rs_ie_match(ie->inc, s);
}

static bool rs_ie_everything(const struct rs_ie *ie) {
  return json_array_size(ie->exc) == 0 &&
         (json_array_size(ie->inc) == 0 || (json_array_size(ie->inc) == 1 && rs_ie_has_star(ie->inc)));
}

static void rs_ie_free(struct rs_ie *ie) {
  json_decref(ie->inc);
  json_decref(ie->exc);
  ie->inc = ie->exc = NULL;
}

/* ---- validation ---- */

static kd_rc rs_add_error(json_t *errors, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kd_rc rs_add_error(json_t *errors, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  msg[kd_utf8_cut(msg, strlen(msg))] = '\0';
  return json_array_append_new(errors, json_string(msg)) ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
}

/* A list field of spec: absent or an array of strings; else a validation error. *out borrowed
 * (NULL when absent or wrong). */
static kd_rc rs_list(json_t *spec, const char *field, json_t *errors, json_t **out) {
  json_t *v = json_object_get(spec, field);
  *out = NULL;
  if (!v || json_is_null(v)) return KD_OK;
  size_t i;
  json_t *e;
  bool ok = json_is_array(v);
  json_array_foreach(v, i, e) ok = ok && json_is_string(e);
  if (!ok) return rs_add_error(errors, "spec.%s must be a list of strings", field);
  *out = v;
  return KD_OK;
}

/* collections.ValidateIncludesExcludes */
static kd_rc rs_validate_ie(json_t *inc, json_t *exc, const char *what, json_t *errors) {
  kd_rc rc = KD_OK;
  if (rs_ie_has_star(exc)) rc = rs_add_error(errors, "%s: excludes list cannot contain '*'", what);
  size_t i;
  json_t *e;
  json_array_foreach(exc, i, e) {
    size_t k;
    json_t *x;
    json_array_foreach(inc, k, x) {
      if (!rc && json_equal(x, e))
        rc = rs_add_error(errors, "%s: excludes list cannot contain an item in the includes list: %s", what,
                          json_string_value(e));
    }
  }
  return rc;
}

/* Resolve the names of a resource list through discovery ("deploy" -> "deployments.apps");
 * names the server does not serve yet (a CRD in the backup) are kept as given. */
static kd_rc rs_resolve_list(struct rs *r, json_t *list, bool add_always_excluded, json_t **out) {
  json_t *o = json_array();
  if (!o) return kd_fail(KD_ERR_NOMEM, "out of memory");
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    char gr[320];
    const char *s = json_string_value(e);
    if (strcmp(s, "*") != 0 && backup_filter_resolve(r->resolver, s, gr, sizeof gr)) s = gr;
    if (json_array_append_new(o, json_string(s))) goto nomem;
  }
  for (size_t k = 0; add_always_excluded && velero_restore_always_excluded[k]; k++)
    if (!rs_ie_match(o, velero_restore_always_excluded[k]) &&
        json_array_append_new(o, json_string(velero_restore_always_excluded[k])))
      goto nomem;
  *out = o;
  return KD_OK;
nomem:
  json_decref(o);
  return kd_fail(KD_ERR_NOMEM, "out of memory");
}

static kd_rc rs_selector(json_t *sel, const char *field, json_t *errors, backup_selector **out) {
  *out = NULL;
  if (!sel || json_is_null(sel)) return KD_OK;
  if (!json_is_object(sel)) return rs_add_error(errors, "spec.%s must be a label selector object", field);
  kd_rc rc = backup_selector_new(sel, out);
  if (rc == KD_ERR_INVALID) return rs_add_error(errors, "spec.%s: %s", field, kd_errmsg());
  return rc;
}

static const char *rs_cstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* Everything Velero's validateAndComplete checks, plus what the builtin engine needs. Errors
 * found go to errors; a returned failure is an infrastructure one (no memory, API down). */
static kd_rc rs_validate(struct rs *r, json_t *errors) {
  const struct restore_job *job = r->job;
  json_t *spec = r->spec;
  kd_rc rc;
  if (!json_is_object(spec)) return rs_add_error(errors, "the Restore has no spec");
  json_t *inc_r, *exc_r, *inc_ns, *exc_ns;
  if ((rc = rs_list(spec, "includedResources", errors, &inc_r)) ||
      (rc = rs_list(spec, "excludedResources", errors, &exc_r)) ||
      (rc = rs_list(spec, "includedNamespaces", errors, &inc_ns)) ||
      (rc = rs_list(spec, "excludedNamespaces", errors, &exc_ns)))
    return rc;
  size_t i;
  json_t *e;
  json_array_foreach(inc_r, i, e) {
    for (size_t k = 0; velero_restore_always_excluded[k]; k++)
      if (strcmp(json_string_value(e), velero_restore_always_excluded[k]) == 0 &&
          (rc = rs_add_error(errors, "%s are non-restorable resources", velero_restore_always_excluded[k])))
        return rc;
  }
  if ((rc = rs_validate_ie(inc_r, exc_r, "Invalid included/excluded resource lists", errors)) ||
      (rc = rs_validate_ie(inc_ns, exc_ns, "Invalid included/excluded namespace lists", errors)))
    return rc;
  json_t *ls = json_object_get(spec, "labelSelector"), *ors = json_object_get(spec, "orLabelSelectors");
  if (ls && !json_is_null(ls) && ors && !json_is_null(ors) &&
      (rc = rs_add_error(errors, "encountered labelSelector as well as orLabelSelectors in restore spec, only one can be specified")))
    return rc;
  if ((rc = rs_selector(ls, "labelSelector", errors, &r->sel))) return rc;
  if (ors && !json_is_null(ors)) {
    if (!json_is_array(ors)) {
      if ((rc = rs_add_error(errors, "spec.orLabelSelectors must be a list of label selectors"))) return rc;
    } else if (json_array_size(ors)) {
      r->or_given = true; /* a null entry selects nothing (LabelSelectorAsSelector(nil)) */
      if (!(r->or_sels = calloc(json_array_size(ors), sizeof *r->or_sels))) return kd_fail(KD_ERR_NOMEM, "out of memory");
      json_array_foreach(ors, i, e) {
        if ((rc = rs_selector(e, "orLabelSelectors[]", errors, &r->or_sels[r->n_or]))) return rc;
        if (r->or_sels[r->n_or]) r->n_or++;
      }
    }
  }
  const char *backup_name = rs_cstr(spec, "backupName"), *schedule = rs_cstr(spec, "scheduleName");
  if (!backup_name || !backup_name[0] || (schedule && schedule[0])) {
    if (schedule && schedule[0] && (!backup_name || !backup_name[0]))
      return rs_add_error(errors, "spec.scheduleName is not supported by kcmdr's engine; name the backup in spec.backupName");
    return rs_add_error(errors, "Either a backup or schedule must be specified as a source for the restore, but not both");
  }
  json_t *pol = json_object_get(spec, "existingResourcePolicy");
  r->policy = json_string_value(pol);
  if (pol && !json_is_null(pol) && !kd_streq(r->policy, "") && !kd_streq(r->policy, "none") &&
      !kd_streq(r->policy, "update") &&
      (rc = rs_add_error(errors, "Invalid ExistingResourcePolicy: %s", json_is_string(pol) ? r->policy : "(not a string)")))
    return rc;
  if (!r->policy || !r->policy[0]) r->policy = "none";
  json_t *icr = json_object_get(spec, "includeClusterResources");
  r->incl_cluster = json_is_boolean(icr) ? json_is_true(icr) : -1;
  if (icr && !json_is_boolean(icr) && !json_is_null(icr) &&
      (rc = rs_add_error(errors, "spec.includeClusterResources must be true, false or null")))
    return rc;
  r->ns_map = json_object_get(spec, "namespaceMapping");
  if (r->ns_map && !json_is_null(r->ns_map)) {
    const char *k;
    json_t *v;
    bool ok = json_is_object(r->ns_map);
    json_object_foreach(r->ns_map, k, v) ok = ok && json_is_string(v) && json_string_length(v) > 0;
    if (!ok && (rc = rs_add_error(errors, "spec.namespaceMapping must map namespace names to namespace names"))) return rc;
  }
  r->preserve_node_ports = json_is_true(json_object_get(spec, "preserveNodePorts"));
  json_t *rstat = json_object_get(spec, "restoreStatus");
  if (rstat && !json_is_null(rstat)) {
    json_t *si, *se;
    if ((rc = rs_list(rstat, "includedResources", errors, &si)) || (rc = rs_list(rstat, "excludedResources", errors, &se)))
      return rc;
    r->status_any = true;
  }

  /* the backup and its location */
  json_t *bk = job->backup;
  const char *phase = rs_cstr(json_object_get(bk, "status"), "phase");
  if (!bk) return rs_add_error(errors, "Error retrieving backup: backups.velero.io \"%s\" not found", backup_name);
  if (!kd_streq(phase, VELERO_PHASE_COMPLETED) && !kd_streq(phase, VELERO_PHASE_PARTIALLY_FAILED))
    return rs_add_error(errors, "backup %s is %s: only Completed or PartiallyFailed backups can be restored", backup_name,
                        phase && phase[0] ? phase : "not finished");
  const char *loc = rs_cstr(json_object_get(bk, "spec"), "storageLocation");
  if (!job->bsl)
    return rs_add_error(errors, "Error retrieving backup: its storage location \"%s\" does not exist", loc ? loc : "");
  if (kd_streq(rs_cstr(json_object_get(job->bsl, "status"), "phase"), "Unavailable"))
    return rs_add_error(errors, "The BSL %s is unavailable, cannot retrieve the backup", loc ? loc : "");
  if (!job->store)
    return rs_add_error(errors, "The BSL %s cannot be used: %s", loc ? loc : "", job->store_error ? job->store_error : "");

  /* encryption and signatures (crypt.h): refused here, before anything is staged or created */
  if ((rc = crypt_location_load(r->c, job->ns, job->bsl, &r->loc)) != KD_OK) {
    if (rc != KD_ERR_CONFIG) return kd_fail_wrap(rc, "storage location %s", loc ? loc : "");
    return rs_add_error(errors, "The BSL %s cannot be used: %s", loc ? loc : "", kd_errmsg());
  }
  if (r->loc.keys) {
    if ((rc = crypt_attach(job->store, r->loc.keys))) return rc;
    r->attached = true;
  }
  struct verify_sig vs;
  rc = verify_signature(job->store, backup_name, &r->loc, &vs, &r->sums);
  if (rc == KD_ERR_PARSE && (r->loc.verify || r->loc.require_signature))
    return rs_add_error(errors, "backup %s: %s", backup_name, kd_errmsg());
  if (rc && rc != KD_ERR_PARSE) return kd_fail_wrap(rc, "checking the signature of backup %s", backup_name);
  if (vs.refused)
    return rs_add_error(errors, "backup %s is refused: %s%s", backup_name, vs.why,
                        r->loc.require_signature ? " (the location requires a valid signature: annotation " CRYPT_ANN_REQUIRE_SIG ")" : "");
  if (vs.valid) {
    /* every file the signed checksums list, the tarball aside (staging checks it) */
    char tkey[VELERO_KEY_MAX];
    if ((rc = velero_backup_key(backup_name, VELERO_BACKUP_TARBALL, tkey, sizeof tkey))) return rc;
    for (size_t i = 0; i < verify_sums_count(r->sums); i++) {
      const char *k = verify_sums_key(r->sums, i);
      if (strcmp(k, tkey) == 0) continue;
      rc = verify_stage(job->store, k, r->sums, NULL, 1ull << 32, NULL, NULL);
      if (rc == KD_ERR_INTEGRITY || rc == KD_ERR_NOTFOUND || rc == KD_ERR_TOOBIG)
        return rs_add_error(errors, "backup %s is refused: %s", backup_name, kd_errmsg());
      if (rc) return rc;
    }
    joblog_note(&r->jl, JOBLOG_INFO, NULL, "backup %s: signature by key %s verified", backup_name, vs.key_id);
  }
  char tarkey[VELERO_KEY_MAX];
  if ((rc = velero_backup_key(backup_name, VELERO_BACKUP_TARBALL, tarkey, sizeof tarkey))) return rc;
  rc = crypt_check_key(job->store, r->loc.keys, tarkey);
  if (rc == KD_ERR_CONFIG || rc == KD_ERR_INTEGRITY || rc == KD_ERR_PARSE)
    return rs_add_error(errors, "backup %s cannot be decrypted: %s", backup_name, kd_errmsg());
  if (rc && rc != KD_ERR_NOTFOUND) return kd_fail_wrap(rc, "reading %s", tarkey);
  rc = KD_OK;

  /* the resource modifier */
  json_t *rm = json_object_get(spec, "resourceModifier");
  if (rm && !json_is_null(rm)) {
    const char *kind = rs_cstr(rm, "kind"), *cm_name = rs_cstr(rm, "name");
    if (!kind || strcasecmp(kind, "configmap") != 0 || !cm_name || !cm_name[0])
      return rs_add_error(errors, "spec.resourceModifier must name a ConfigMap (kind: ConfigMap, name: ...)");
    json_t *cm = NULL, *unwritten = job->dry_run ? job->dry_run->modifiers : NULL;
    rc = unwritten && kd_streq(rs_cstr(json_object_get(unwritten, "metadata"), "name"), cm_name)
             ? (cm = json_incref(unwritten), KD_OK)
             : kube_get(r->c, &rs_cm_res, job->ns, cm_name, &cm);
    if (rc == KD_ERR_NOTFOUND)
      return rs_add_error(errors, "failed to get resource modifiers configmap %s/%s", job->ns, cm_name);
    if (rc) return kd_fail_wrap(rc, "reading the resource modifiers ConfigMap %s/%s", job->ns, cm_name);
    rc = resmod_parse(cm, &r->mods);
    json_decref(cm);
    if (rc == KD_ERR_INVALID || rc == KD_ERR_UNSUPPORTED || rc == KD_ERR_PARSE)
      return rs_add_error(errors, "Error in parsing resource modifiers provided in configmap %s/%s: %s", job->ns, cm_name,
                          kd_errmsg());
    if (rc) return rc;
  }
  return KD_OK;
}

/* Build the filters once discovery is known. */
static kd_rc rs_filters(struct rs *r) {
  json_t *empty = json_object(), *l;
  kd_rc rc = empty ? backup_filter_new(empty, r->discovery, NULL, NULL, &r->resolver) : KD_ERR_NOMEM;
  json_decref(empty);
  if (rc) return kd_fail_wrap(rc, "building the resource filter");
  json_t *spec = r->spec, *rstat = json_object_get(spec, "restoreStatus");
  struct {
    struct rs_ie *ie;
    json_t *src;
    const char *inc, *exc;
    bool resolve;
  } lists[] = {{&r->res_ie, spec, "includedResources", "excludedResources", true},
               {&r->ns_ie, spec, "includedNamespaces", "excludedNamespaces", false},
               {&r->status_ie, rstat, "includedResources", "excludedResources", true}};
  for (size_t i = 0; i < KD_ARRAY_LEN(lists); i++) {
    json_t *inc = json_object_get(lists[i].src, lists[i].inc), *exc = json_object_get(lists[i].src, lists[i].exc);
    if (!json_is_array(inc)) inc = NULL;
    if (!json_is_array(exc)) exc = NULL;
    if (lists[i].resolve) {
      if ((rc = rs_resolve_list(r, inc, false, &lists[i].ie->inc)) ||
          (rc = rs_resolve_list(r, exc, lists[i].ie == &r->res_ie, &lists[i].ie->exc)))
        return rc;
    } else {
      l = inc ? json_copy(inc) : json_array();
      lists[i].ie->inc = l;
      lists[i].ie->exc = exc ? json_copy(exc) : json_array();
      if (!lists[i].ie->inc || !lists[i].ie->exc) return kd_fail(KD_ERR_NOMEM, "out of memory");
    }
  }
  return KD_OK;
}

/* ---- stage and index ---- */

static bool rs_selected_labels(struct rs *r, json_t *labels) {
  if (r->sel && !backup_selector_matches(r->sel, labels)) return false;
  if (r->or_given) {
    for (size_t i = 0; i < r->n_or; i++)
      if (backup_selector_matches(r->or_sels[i], labels)) return true;
    return false;
  }
  return true;
}

static kd_rc rs_write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return kd_fail(KD_ERR_IO, "writing the restore's index file: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
  return KD_OK;
}

static const char *rs_intern(struct rs *r, const char *gr) {
  if (!json_object_get(r->grs, gr) && json_object_set_new(r->grs, gr, json_null())) return NULL;
  /* the key string lives as long as the object; find it through an iterator */
  void *it = json_object_iter_at(r->grs, gr);
  return it ? json_object_iter_key(it) : NULL;
}

/* Decide about one plain object entry; select it into the body file and the index. */
static kd_rc rs_index_object(struct rs *r, const struct archive_item *it, off_t *body_off) {
  const struct archive_path *w = &it->where;
  json_error_t jerr;
  json_t *obj = json_loadb(it->data, it->len, JSON_ALLOW_NUL, &jerr);
  kd_rc rc = KD_OK;
  if (!json_is_object(obj)) {
    rc = kd_fail(KD_ERR_PARSE, "%s is not a JSON object: %s", it->path, obj ? "another JSON value" : jerr.text);
    goto fail;
  }
  json_t *md = json_object_get(obj, "metadata");
  const char *name = rs_cstr(md, "name");
  if (!name || json_string_length(json_object_get(md, "name")) != strlen(name) || strcmp(name, w->name) != 0) {
    rc = kd_fail(KD_ERR_PARSE, "%s holds an object named \"%.200s\": the name differs from its path", it->path,
                 name ? name : "");
    goto fail;
  }
  if (!json_is_string(json_object_get(obj, "apiVersion")) || !json_is_string(json_object_get(obj, "kind"))) {
    rc = kd_fail(KD_ERR_PARSE, "%s has no apiVersion or kind", it->path);
    goto fail;
  }
  /* Velero's getNamespace reads a namespace's own entry whatever the selection: keep every
   * Namespace's bytes so a namespace made for a selected object has its labels and spec */
  off_t own_off = -1;
  if (strcmp(w->gr, "namespaces") == 0 && !w->ns[0]) {
    own_off = *body_off;
    if ((rc = rs_write_all(r->body_fd, it->data, it->len))) goto fail;
    *body_off += (off_t)it->len;
    if (json_object_set_new(r->ns_objects, w->name, json_pack("[I,I]", (json_int_t)own_off, (json_int_t)it->len))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
  }
  /* Velero's getOrderedResourceCollection and getSelectedRestoreableItems */
  if (!rs_ie_include(&r->res_ie, w->gr)) goto fail;
  if (w->ns[0] && !rs_ie_include(&r->ns_ie, w->ns)) goto fail;
  if (!w->ns[0] && r->incl_cluster == 0) goto fail;
  if (!w->ns[0] && r->incl_cluster < 0 && !rs_ie_everything(&r->ns_ie)) goto fail;
  if (strcmp(w->gr, "namespaces") == 0 && !rs_ie_include(&r->ns_ie, w->name)) goto fail;
  if (!rs_selected_labels(r, json_object_get(md, "labels"))) goto fail;
  if (r->n >= RS_MAX_OBJECTS) {
    rc = kd_fail(KD_ERR_TOOBIG, "the backup holds more than %d objects", RS_MAX_OBJECTS);
    goto fail;
  }
  if (r->n == r->cap) {
    size_t nc = r->cap ? r->cap * 2 : 1024;
    struct rs_item *ni = realloc(r->items, nc * sizeof *ni);
    if (!ni) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    r->items = ni, r->cap = nc;
  }
  struct rs_item *item = &r->items[r->n];
  memset(item, 0, sizeof *item);
  item->gr = rs_intern(r, w->gr);
  item->ns = strdup(w->ns);
  item->name = strdup(w->name);
  if (!item->gr || !item->ns || !item->name) {
    free(item->ns);
    free(item->name);
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  item->cls = velero_restore_priority(w->gr);
  item->len = it->len;
  r->n++;
  if (own_off >= 0) {
    item->off = own_off;
  } else {
    item->off = *body_off;
    if ((rc = rs_write_all(r->body_fd, it->data, it->len))) goto fail;
    *body_off += (off_t)it->len;
  }
fail:
  json_decref(obj);
  return rc;
}

static int rs_item_cmp(const void *a, const void *b) {
  const struct rs_item *x = a, *y = b;
  if (x->cls != y->cls) return x->cls < y->cls ? -1 : 1;
  int c = strcmp(x->gr, y->gr);
  if (c) return c;
  if ((c = strcmp(x->ns, y->ns))) return c;
  return strcmp(x->name, y->name);
}

static kd_rc rs_temp(const char *dir, int *fd) {
  if (!dir || !dir[0]) dir = getenv("TMPDIR");
  if (!dir || !dir[0]) dir = "/tmp";
  *fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (*fd >= 0) return KD_OK;
  char path[4096];
  if (snprintf(path, sizeof path, "%s/kcmdr-restore-XXXXXX", dir) >= (int)sizeof path)
    return kd_fail(KD_ERR_CONFIG, "staging directory path is too long");
  *fd = mkostemp(path, O_CLOEXEC);
  if (*fd < 0) return kd_fail(KD_ERR_IO, "cannot create a file in %s: %s", dir, strerror(errno));
  unlink(path);
  return KD_OK;
}

/* Stage the tarball (checksummed), read every entry, index the selected objects. */
static kd_rc rs_stage(struct rs *r) {
  const char *backup = rs_cstr(r->spec, "backupName");
  verify_sums *sums = NULL;
  archive_reader *ar = NULL;
  char key[VELERO_KEY_MAX];
  kd_rc rc = r->sums ? KD_OK : verify_sums_load(r->job->store, backup, &sums);
  const verify_sums *use = r->sums ? r->sums : sums; /* the very checksums whose signature was checked */
  if (rc == KD_OK && !use) {
    rc = KD_ERR_NOTFOUND;
    kd_fail(rc, "backup %s has no checksums file", backup);
  }
  if (rc == KD_ERR_NOTFOUND) {
    joblog_note(&r->jl, JOBLOG_WARN, NULL,
            "backup %s has no checksums file (a backup written by Velero): its contents could not be verified", backup);
  } else if (rc) {
    rc = kd_fail_wrap(rc, "reading the checksums of backup %s", backup);
    goto fail;
  }
  if ((rc = velero_backup_key(backup, VELERO_BACKUP_TARBALL, key, sizeof key))) goto fail;
  bool verified = false;
  uint64_t max = r->job->max_archive ? r->job->max_archive : RESTORE_MAX_ARCHIVE;
  /* the download may be large: a cancel (shutdown, lost lease) stops it; the logs and results
   * are still written afterwards, so the flag is taken off again */
  objstore_set_cancel(r->job->store, r->job->cancel);
  rc = verify_stage(r->job->store, key, use, r->job->stage_dir, max, &r->stage_fd, &verified);
  objstore_set_cancel(r->job->store, NULL);
  if (rc) {
    rc = kd_fail_wrap(rc, "staging the backup's archive");
    goto fail;
  }
  r->verified = verified;
  if (use && !verified) {
    rc = kd_fail(KD_ERR_INTEGRITY, "the checksums file of backup %s does not list %s", backup, key);
    goto fail;
  }
  joblog_note(&r->jl, JOBLOG_INFO, NULL, "staged %s (%s)", key, verified ? "checksum verified" : "not verified: no checksums file");
  if ((rc = rs_temp(r->job->stage_dir, &r->body_fd))) goto fail;
  if ((rc = archive_reader_open_fd(r->stage_fd, RESTORE_MAX_OBJECT, &ar))) goto fail;
  off_t body_off = 0;
  bool have_version = false;
  for (;;) {
    struct archive_item it;
    bool eof = false;
    if (rs_stopped(r)) {
      rc = kd_fail(KD_ERR_CANCELLED, "cancelled while reading the archive");
      goto fail;
    }
    if ((rc = archive_reader_next(ar, &it, &eof))) goto fail;
    if (eof) break;
    if (it.where.kind == ARCHIVE_PATH_VERSION) {
      if (it.len < 2 || strncmp(it.data, "1.", 2) != 0) {
        rc = kd_fail(KD_ERR_UNSUPPORTED, "the backup's format version is \"%.20s\"; kcmdr reads 1.x", it.data);
        goto fail;
      }
      have_version = true;
    } else if (it.where.kind == ARCHIVE_PATH_OBJECT && !it.where.version[0]) {
      if ((rc = rs_index_object(r, &it, &body_off))) goto fail;
    }
  }
  if (!have_version) {
    rc = kd_fail(KD_ERR_PARSE, "the archive has no metadata/version entry: it is not a Velero backup");
    goto fail;
  }
  qsort(r->items, r->n, sizeof *r->items, rs_item_cmp);
fail:
  archive_reader_free(ar);
  verify_sums_free(sums);
  return rc;
}

/* ---- creating objects ---- */

static kd_rc rs_read_item(struct rs *r, const struct rs_item *it, json_t **out) {
  char *buf = malloc(it->len + 1);
  if (!buf) return kd_fail(KD_ERR_NOMEM, "out of memory");
  size_t got = 0;
  while (got < it->len) {
    ssize_t n = pread(r->body_fd, buf + got, it->len - got, it->off + (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      free(buf);
      return kd_fail(KD_ERR_IO, "reading the restore's index file: %s", n < 0 ? strerror(errno) : "short file");
    }
    got += (size_t)n;
  }
  json_error_t jerr;
  *out = json_loadb(buf, it->len, JSON_ALLOW_NUL, &jerr);
  free(buf);
  return *out ? KD_OK : kd_fail(KD_ERR_PARSE, "object %s changed on disk: %s", it->name, jerr.text);
}

/* Where gr is served: group, resource, namespaced; version from the object's apiVersion. */
static kd_rc rs_res_for(struct rs *r, const char *gr, json_t *obj, struct kube_res *res) {
  memset(res, 0, sizeof *res);
  const char *dot = strchr(gr, '.');
  size_t rl = dot ? (size_t)(dot - gr) : strlen(gr);
  const char *group = dot ? dot + 1 : "";
  const char *av = rs_cstr(obj, "apiVersion"), *slash = av ? strrchr(av, '/') : NULL;
  const char *version = slash ? slash + 1 : av;
  size_t gl = slash ? (size_t)(slash - av) : 0;
  if (!version || gl != strlen(group) || strncmp(av, group, gl) != 0)
    return kd_fail(KD_ERR_INVALID, "its apiVersion \"%s\" is not of group \"%s\"", av ? av : "", group);
  pthread_mutex_lock(&r->mu);
  json_t *disc = json_incref(r->discovery);
  pthread_mutex_unlock(&r->mu);
  size_t i;
  json_t *e;
  kd_rc rc = kd_fail(KD_ERR_NOTFOUND, "the API server does not serve %s", gr);
  json_array_foreach(disc, i, e) {
    const char *dr = rs_cstr(e, "resource"), *dg = rs_cstr(e, "group");
    if (!dr || !dg || strlen(dr) != rl || strncmp(dr, gr, rl) != 0 || strcmp(dg, group) != 0) continue;
    if (snprintf(res->group, sizeof res->group, "%s", group) >= (int)sizeof res->group ||
        snprintf(res->version, sizeof res->version, "%s", version) >= (int)sizeof res->version ||
        snprintf(res->resource, sizeof res->resource, "%s", dr) >= (int)sizeof res->resource ||
        snprintf(res->kind, sizeof res->kind, "%s", rs_cstr(obj, "kind")) >= (int)sizeof res->kind) {
      rc = kd_fail(KD_ERR_INVALID, "resource names too long");
      break;
    }
    res->namespaced = json_is_true(json_object_get(e, "namespaced"));
    rc = KD_OK;
    break;
  }
  json_decref(disc);
  return rc;
}

static void rs_set_labels(struct rs *r, json_t *obj, const char *backup_v, const char *restore_v) {
  json_t *md = json_object_get(obj, "metadata");
  json_t *labels = json_object_get(md, "labels");
  if (!json_is_object(labels)) {
    json_object_set_new(md, "labels", json_object());
    labels = json_object_get(md, "labels");
  }
  (void)r;
  json_object_set_new(labels, VELERO_LABEL_BACKUP_NAME, json_string(backup_v));
  json_object_set_new(labels, VELERO_LABEL_RESTORE_NAME, json_string(restore_v));
}

static const char *rs_target_ns(struct rs *r, const char *ns) {
  const char *m = json_string_value(json_object_get(r->ns_map, ns));
  return m && m[0] ? m : ns;
}

static struct kube_req_opts rs_opts(struct rs *r) {
  struct kube_req_opts ro = {0};
  ro.cancel = r->job->cancel;
  ro.idempotent = true; /* a repeated create meets 409 AlreadyExists, which is resolved below */
  ro.dry_run = r->job->dry_run != NULL;
  return ro;
}

/* Make sure namespace target exists (EnsureNamespaceExistsAndIsReady): from the backup's copy
 * of the original namespace when it has one (labels, annotations, spec kept), else a bare one.
 * *created says whether this call created it. */
static kd_rc rs_ensure_ns(struct rs *r, const char *orig, const char *target, bool *created) {
  *created = false;
  pthread_mutex_lock(&r->mu);
  bool known = json_object_get(r->ensured, target) != NULL;
  json_t *idx = json_object_get(r->ns_objects, orig);
  pthread_mutex_unlock(&r->mu);
  if (known) return KD_OK;
  json_t *ns = NULL, *out = NULL;
  kd_rc rc = KD_OK;
  if (idx) {
    json_t *full = NULL;
    struct rs_item own = {.name = (char *)orig, .off = (off_t)json_integer_value(json_array_get(idx, 0)),
                          .len = (size_t)json_integer_value(json_array_get(idx, 1))};
    if ((rc = rs_read_item(r, &own, &full))) return rc;
    json_t *md = json_object_get(full, "metadata");
    ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", target);
    json_t *nmd = json_object_get(ns, "metadata");
    if (ns && json_is_object(json_object_get(md, "labels"))) json_object_set(nmd, "labels", json_object_get(md, "labels"));
    if (ns && json_is_object(json_object_get(md, "annotations")))
      json_object_set(nmd, "annotations", json_object_get(md, "annotations"));
    if (ns && json_is_object(json_object_get(full, "spec"))) json_object_set(ns, "spec", json_object_get(full, "spec"));
    json_decref(full);
  } else {
    ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", target);
  }
  if (!ns) return kd_fail(KD_ERR_NOMEM, "out of memory");
  struct kube_req_opts ro = rs_opts(r);
  rc = kube_create_ex(r->c, &rs_ns_res, NULL, ns, &ro, &out);
  if (rc == KD_OK) {
    *created = true;
  } else if (rc == KD_ERR_CONFLICT) {
    json_decref(out);
    out = NULL;
    rc = kube_get(r->c, &rs_ns_res, NULL, target, &out);
    if (rc == KD_OK && kd_streq(rs_cstr(json_object_get(out, "status"), "phase"), "Terminating"))
      rc = kd_fail(KD_ERR_CONFLICT, "namespace %s is being deleted; restore again once it is gone", target);
  }
  json_decref(ns);
  json_decref(out);
  if (rc) return kd_fail_wrap(rc, "creating namespace %s", target);
  pthread_mutex_lock(&r->mu);
  json_object_set_new(r->ensured, target, json_boolean(!*created || !r->job->dry_run)); /* false: a dry run's */
  pthread_mutex_unlock(&r->mu);
  return KD_OK;
}

/* secret_action.go: a service-account token Secret named <sa>-token-* of a ServiceAccount in
 * namespace ns is made again by the token controller; restoring it would race that. When the
 * ServiceAccounts cannot be listed the Secret is restored (its token data is stripped anyway). */
struct rs_token_match {
  const char *secret;
  bool found;
};

static bool rs_token_of(json_t *sa, void *ud) {
  struct rs_token_match *m = ud;
  const char *sn = rs_cstr(json_object_get(sa, "metadata"), "name");
  size_t sl = sn ? strlen(sn) : 0;
  if (sn && strncmp(m->secret, sn, sl) == 0 && strncmp(m->secret + sl, "-token-", 7) == 0) m->found = true;
  return !m->found;
}

static bool rs_auto_token(struct rs *r, const char *ns, json_t *secret) {
  if (!kd_streq(json_string_value(json_object_get(secret, "type")), "kubernetes.io/service-account-token")) return false;
  struct rs_token_match m = {rs_cstr(json_object_get(secret, "metadata"), "name"), false};
  struct kube_list_opts lo = {0};
  if (!m.secret || kube_list(r->c, &rs_sa_res, ns, &lo, rs_token_of, &m, NULL) != KD_OK) return false;
  return m.found;
}

enum rs_outcome { O_NONE, O_FAILED, O_SKIPPED, O_UPDATED, O_CREATED };

/* The object exists: compare, then skip, warn, merge or patch as Velero does. *outcome says
 * which; a returned failure is fatal (API server gone). */
static kd_rc rs_existing(struct rs *r, const struct rs_item *it, const struct kube_res *res, const char *ns, json_t *obj,
                         const char *gr, const char *where, enum rs_outcome *outcome) {
  json_t *cur = NULL, *patch = NULL, *out = NULL, *desired = NULL, *live = NULL;
  const char *name = rs_cstr(json_object_get(obj, "metadata"), "name");
  struct kube_patch_opts po = {KUBE_PATCH_MERGE, NULL, false, NULL};
  struct kube_req_opts pro = {.dry_run = r->job->dry_run != NULL};
  *outcome = O_SKIPPED;
  kd_rc rc = kube_get(r->c, res, ns, name, &cur);
  if (rc) { /* an error, as Velero's: the object may differ from the backup and nobody can tell */
    joblog_note(&r->jl, JOBLOG_ERROR, ns ? ns : "", "could not read the existing %s %s: %s; not restored", gr, where, kd_errmsg());
    rs_verdict(r, it, ns, gr, name, RESTORE_V_FAIL, kd_errmsg(), NULL, NULL);
    *outcome = O_FAILED;
    goto done;
  }
  if (r->job->dry_run && !(live = json_deep_copy(cur))) goto nomem;
  json_t *labels = json_object_get(json_object_get(cur, "metadata"), "labels");
  bool labelled = kd_streq(rs_cstr(labels, VELERO_LABEL_BACKUP_NAME), r->label_backup) &&
                  kd_streq(rs_cstr(labels, VELERO_LABEL_RESTORE_NAME), r->label_restore);
  restore_strip(cur);
  rs_set_labels(r, cur, r->label_backup, r->label_restore);
  if (json_equal(cur, obj)) {
    /* equal: under update only the restore labels are written (updateBackupRestoreLabels) */
    if (strcmp(r->policy, "update") == 0 && !labelled) {
      if (!(desired = json_deep_copy(cur))) goto nomem;
      rs_set_labels(r, cur, "", "");
      if ((rc = jsonpatch_create_merge(cur, desired, &patch)) ||
          (rc = kube_patch_ex(r->c, res, ns, name, patch, &po, &pro, &out))) {
        joblog_note(&r->jl, JOBLOG_ERROR, ns ? ns : "", "updating the restore labels of %s %s: %s", gr, where, kd_errmsg());
        rs_verdict(r, it, ns, gr, name, RESTORE_V_FAIL, kd_errmsg(), live, NULL);
        *outcome = O_FAILED;
        goto done;
      }
    }
    joblog_note(&r->jl, JOBLOG_INFO, ns, "%s %s exists and equals the backed-up version: skipped", gr, where);
    rs_verdict(r, it, ns, gr, name, RESTORE_V_UNCHANGED, NULL, live, NULL);
    goto done;
  }
  if (strcmp(gr, "serviceaccounts") == 0) {
    if (!(desired = restore_merge_service_accounts(cur, obj))) goto nomem;
  } else if (strcmp(r->policy, "update") != 0) {
    joblog_note(&r->jl, JOBLOG_WARN, ns ? ns : "",
            "could not restore, %s \"%s\" already exists. Warning: the in-cluster version is different than the "
            "backed-up version",
            rs_cstr(obj, "kind"), name);
    joblog_note(&r->jl, JOBLOG_INFO, ns, "%s %s exists and differs: left as it is (policy none)", gr, where);
    rs_verdict(r, it, ns, gr, name, RESTORE_V_CONFLICT, "exists and differs (policy none)", live, obj);
    goto done;
  } else {
    desired = json_incref(obj);
    rs_set_labels(r, cur, "", ""); /* removeRestoreLabels: the patch writes the new values */
  }
  if ((rc = jsonpatch_create_merge(cur, desired, &patch))) goto done;
  if (json_object_size(patch) == 0) {
    rs_verdict(r, it, ns, gr, name, RESTORE_V_UNCHANGED, NULL, live, NULL);
    goto done;
  }
  rc = kube_patch_ex(r->c, res, ns, name, patch, &po, &pro, &out);
  if (rc == KD_OK) {
    joblog_note(&r->jl, JOBLOG_INFO, ns, "%s %s updated", gr, where);
    rs_verdict(r, it, ns, gr, name, RESTORE_V_UPDATE, NULL, live, out);
    *outcome = O_UPDATED;
  } else if (!rs_rc_fatal(rc)) {
    /* as Velero: a warning, the object left as it is (skipped), the restore not failed by it;
     * a preview says so as a conflict with the server's reason */
    char why[1200];
    snprintf(why, sizeof why, "update refused: %s", kd_errmsg());
    joblog_note(&r->jl, JOBLOG_WARN, ns ? ns : "", "patch attempt failed for %s %s: %s", gr, where, kd_errmsg());
    rs_verdict(r, it, ns, gr, name, RESTORE_V_CONFLICT, why, live, desired);
  }
  goto done;
nomem:
  rc = kd_fail(KD_ERR_NOMEM, "out of memory");
done:
  json_decref(cur);
  json_decref(patch);
  json_decref(out);
  json_decref(desired);
  json_decref(live);
  return rs_rc_fatal(rc) ? rc : KD_OK;
}

/* Restore status for resources the spec names (restoreStatus) through the status subresource. */
static void rs_restore_status(struct rs *r, const struct kube_res *res, const char *ns, json_t *obj, json_t *status,
                              json_t *created, const char *gr, const char *where) {
  json_t *o = json_deep_copy(obj), *out = NULL;
  if (!o) return;
  json_object_set(o, "status", status);
  json_t *rv = json_object_get(json_object_get(created, "metadata"), "resourceVersion");
  json_object_set(json_object_get(o, "metadata"), "resourceVersion", rv);
  kd_rc rc = kube_update_status(r->c, res, ns, o, &out);
  if (rc) joblog_note(&r->jl, JOBLOG_WARN, ns, "status of %s %s not restored: %s", gr, where, kd_errmsg());
  json_decref(o);
  json_decref(out);
}

static bool rs_wants_status(struct rs *r, const char *gr, json_t *obj) {
  bool want = r->status_any && rs_ie_include(&r->status_ie, gr);
  const char *a = rs_cstr(json_object_get(json_object_get(obj, "metadata"), "annotations"), "velero.io/restore-status");
  if (a) {
    char v[8] = "";
    size_t k = 0;
    for (const char *p = a; *p && k + 1 < sizeof v; p++)
      if (*p != ' ' && *p != '\t') v[k++] = (char)(*p | 0x20);
    v[k] = '\0';
    if (strcmp(v, "true") == 0) want = true;
    if (strcmp(v, "false") == 0) want = false;
  }
  return want;
}

/* Restore one object. Outcome counters are updated; a fatal failure stops everything. */
static void rs_restore_one(struct rs *r, const struct rs_item *it) {
  json_t *obj = NULL, *status = NULL, *out = NULL;
  char where[600];
  const char *ns = it->ns[0] ? rs_target_ns(r, it->ns) : NULL;
  snprintf(where, sizeof where, "%s%s%s", it->ns[0] ? it->ns : "", it->ns[0] ? "/" : "", it->name);
  enum rs_outcome outcome = O_NONE;
  kd_rc rc = rs_read_item(r, it, &obj);
  if (rc) goto fail;
  const char *why = NULL;
  if (restore_skipped_kind(obj, it->gr, &why)) {
    joblog_note(&r->jl, JOBLOG_INFO, ns, "%s %s not restored: %s", it->gr, where, why);
    rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_SKIP, why, NULL, NULL);
    outcome = O_SKIPPED;
    goto done;
  }
  if (strcmp(it->gr, "namespaces") == 0) {
    bool created = false;
    rc = rs_ensure_ns(r, it->name, rs_target_ns(r, it->name), &created);
    if (rc) goto fail;
    outcome = created ? O_CREATED : O_SKIPPED;
    rs_verdict(r, it, NULL, it->gr, rs_target_ns(r, it->name), created ? RESTORE_V_CREATE : RESTORE_V_UNCHANGED,
               created ? NULL : "exists", NULL, NULL);
    goto done;
  }
  if (ns) {
    bool created = false;
    if ((rc = rs_ensure_ns(r, it->ns, ns, &created))) goto fail;
    if (created) {
      joblog_note(&r->jl, JOBLOG_INFO, NULL, "namespace %s created", ns);
      rs_verdict(r, it, NULL, "namespaces", ns, RESTORE_V_CREATE, "for the objects restored into it", NULL, NULL);
      atomic_fetch_add(&r->created, 1);
    }
  }
  status = json_incref(json_object_get(obj, "status"));
  restore_builtin_actions(obj, it->gr, r->preserve_node_ports, r->ns_map); /* before the strip: it reads managedFields */
  restore_strip(obj);
  if (ns && strcmp(it->gr, "secrets") == 0 && rs_auto_token(r, ns, obj)) {
    joblog_note(&r->jl, JOBLOG_INFO, ns, "secrets %s not restored: the token controller creates it for its service account", where);
    rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_SKIP, "the token controller creates it for its service account", NULL, NULL);
    outcome = O_SKIPPED;
    goto done;
  }
  if (r->mods) {
    int applied = 0;
    rc = resmod_apply(r->mods, it->gr, &obj, &applied);
    if (rc == KD_ERR_NOMEM) goto fail;
    /* as Velero: the error is recorded and the object restored with what the other rules did */
    if (rc) joblog_note(&r->jl, JOBLOG_ERROR, it->ns[0] ? ns : "", "resource modifier on %s %s: %s", it->gr, where, kd_errmsg());
    rc = KD_OK;
  }
  json_t *md = json_object_get(obj, "metadata");
  if (ns) json_object_set_new(md, "namespace", json_string(ns));
  else json_object_del(md, "namespace");
  rs_set_labels(r, obj, r->label_backup, r->label_restore);
  struct kube_res res;
  if ((rc = rs_res_for(r, it->gr, obj, &res))) {
    if (rc == KD_ERR_NOTFOUND && r->job->dry_run && json_object_get(r->crds, it->gr)) {
      /* a dry run creates no CRD: its objects cannot be checked by the server */
      rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_CREATE,
                 "not checked by the API server: its CustomResourceDefinition is created by this restore first", NULL, NULL);
      rc = KD_OK;
      outcome = O_CREATED;
      goto done;
    }
    joblog_note(&r->jl, JOBLOG_ERROR, it->ns[0] ? ns : "", "error restoring %s %s: %s", it->gr, where, kd_errmsg());
    rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_FAIL, kd_errmsg(), NULL, NULL);
    outcome = O_FAILED;
    goto done;
  }
  if (!res.namespaced && ns) {
    joblog_note(&r->jl, JOBLOG_ERROR, ns, "error restoring %s %s: the resource is cluster-scoped here", it->gr, where);
    rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_FAIL, "the resource is cluster-scoped here", NULL, NULL);
    outcome = O_FAILED;
    goto done;
  }
  if (ns && r->job->dry_run) {
    pthread_mutex_lock(&r->mu);
    bool new_ns = json_is_false(json_object_get(r->ensured, ns));
    pthread_mutex_unlock(&r->mu);
    if (new_ns) { /* the server refuses objects in a namespace a dry run only pretended to create */
      rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_CREATE,
                 "not checked by the API server: its namespace is created by this restore first", NULL, NULL);
      outcome = O_CREATED;
      goto done;
    }
  }
  struct kube_req_opts ro = rs_opts(r);
  rc = kube_create_ex(r->c, &res, res.namespaced ? ns : NULL, obj, &ro, &out);
  if (rc == KD_OK) {
    outcome = O_CREATED;
    joblog_note(&r->jl, JOBLOG_INFO, ns, "%s %s created", it->gr, where);
    rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_CREATE, NULL, NULL, out);
    if (status && !r->job->dry_run && rs_wants_status(r, it->gr, obj))
      rs_restore_status(r, &res, ns, obj, status, out, it->gr, where);
    if (strcmp(it->gr, "customresourcedefinitions.apiextensions.k8s.io") == 0) {
      pthread_mutex_lock(&r->mu);
      json_object_set_new(r->crds, it->name, json_true());
      pthread_mutex_unlock(&r->mu);
    }
    goto done;
  }
  if (rc == KD_ERR_CONFLICT) {
    if ((rc = rs_existing(r, it, &res, ns, obj, it->gr, where, &outcome))) goto fail;
    if (outcome == O_UPDATED && strcmp(it->gr, "customresourcedefinitions.apiextensions.k8s.io") == 0) {
      pthread_mutex_lock(&r->mu);
      json_object_set_new(r->crds, it->name, json_true());
      pthread_mutex_unlock(&r->mu);
    }
    goto done;
  }
  if (rs_rc_fatal(rc)) goto fail;
  joblog_note(&r->jl, JOBLOG_ERROR, it->ns[0] ? ns : "", "error restoring %s %s: %s", it->gr, where, kd_errmsg());
  rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_FAIL, kd_errmsg(), NULL, NULL);
  outcome = O_FAILED;
  goto done;
fail:
  if (rs_rc_fatal(rc) || rc == KD_ERR_IO) {
    joblog_fail(&r->jl, rc, "%s %s: %s", it->gr, where, kd_errmsg());
    outcome = O_NONE;
  } else {
    joblog_note(&r->jl, JOBLOG_ERROR, it->ns[0] ? ns : "", "error restoring %s %s: %s", it->gr, where, kd_errmsg());
    rs_verdict(r, it, ns, it->gr, it->name, RESTORE_V_FAIL, kd_errmsg(), NULL, NULL);
    outcome = O_FAILED;
  }
done:
  switch (outcome) {
  case O_FAILED: atomic_fetch_add(&r->failed, 1); break;
  case O_SKIPPED: atomic_fetch_add(&r->skipped, 1); break;
  case O_UPDATED: atomic_fetch_add(&r->updated, 1); break;
  case O_CREATED: atomic_fetch_add(&r->created, 1); break;
  case O_NONE: break;
  }
  if (outcome) atomic_fetch_add(&r->done, 1);
  json_decref(obj);
  json_decref(status);
  json_decref(out);
}

static void *rs_worker(void *arg) {
  struct rs *r = arg;
  for (;;) {
    pthread_mutex_lock(&r->mu);
    size_t i = r->next < r->cls_end ? r->next++ : SIZE_MAX;
    pthread_mutex_unlock(&r->mu);
    if (i == SIZE_MAX || rs_stopped(r)) break;
    rs_restore_one(r, &r->items[i]);
  }
  return NULL;
}

/* Run items [from, to) on the worker pool; returns when all are done. */
static void rs_run_class(struct rs *r, size_t from, size_t to) {
  int want = r->job->concurrency > 0 ? r->job->concurrency : RS_DEFAULT_WORKERS;
  if (want > RS_MAX_WORKERS) want = RS_MAX_WORKERS;
  if ((size_t)want > to - from) want = (int)(to - from);
  r->next = from, r->cls_end = to;
  pthread_t th[RS_MAX_WORKERS];
  int started = 0;
  for (int i = 1; i < want; i++) {
    if (pthread_create(&th[started], NULL, rs_worker, r) != 0) break;
    started++;
  }
  rs_worker(r); /* this thread works too; with no extra thread it does all */
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
}

/* Wait until every CRD this restore created or updated is Established and its resource is in
 * discovery, then refresh discovery (Velero: crdAvailable, then discoveryHelper.Refresh). */
static kd_rc rs_wait_crds(struct rs *r) {
  int wait_s = r->job->crd_wait_s > 0 ? r->job->crd_wait_s : 60;
  int64_t deadline = kd_now_ms() + (int64_t)wait_s * 1000;
  const char *name;
  json_t *v;
  json_object_foreach(r->crds, name, v) {
    for (;;) {
      json_t *crd = NULL;
      kd_rc rc = kube_get(r->c, &rs_crd_res, NULL, name, &crd);
      bool ready = false;
      size_t i;
      json_t *cond;
      json_array_foreach(json_object_get(json_object_get(crd, "status"), "conditions"), i, cond) {
        if (kd_streq(rs_cstr(cond, "type"), "Established") && kd_streq(rs_cstr(cond, "status"), "True")) ready = true;
      }
      json_decref(crd);
      if (rc && rs_rc_fatal(rc)) return rc;
      if (ready) break;
      if (kd_now_ms() > deadline || rs_stopped(r)) {
        joblog_note(&r->jl, JOBLOG_ERROR, "", "the CRD %s is not available to use for custom resources (not Established after %d s)", name,
                wait_s);
        break;
      }
      kd_sleep_ms(100, r->job->cancel);
    }
  }
  if (json_object_size(r->crds) == 0) return KD_OK;
  /* discovery: each restored CRD's resource must be listed before its objects are created */
  for (;;) {
    json_t *disc = NULL;
    kd_rc rc = kube_discover(r->c, true, &disc);
    if (rc) return kd_fail_wrap(rc, "refreshing discovery after restoring CRDs");
    pthread_mutex_lock(&r->mu);
    json_decref(r->discovery);
    r->discovery = disc;
    pthread_mutex_unlock(&r->mu);
    size_t missing = 0;
    for (size_t i = 0; i < r->n; i++) {
      const struct rs_item *it = &r->items[i];
      if (it->cls == 0) continue;
      const char *dot = strchr(it->gr, '.');
      if (!dot || !json_object_get(r->crds, it->gr)) continue;
      size_t k;
      json_t *e;
      bool found = false;
      json_array_foreach(disc, k, e) {
        const char *dr = rs_cstr(e, "resource"), *dg = rs_cstr(e, "group");
        if (dr && dg && strlen(dr) == (size_t)(dot - it->gr) && strncmp(dr, it->gr, strlen(dr)) == 0 &&
            strcmp(dg, dot + 1) == 0)
          found = true;
      }
      if (!found) missing++;
    }
    if (!missing || kd_now_ms() > deadline || rs_stopped(r)) return KD_OK;
    kd_sleep_ms(200, r->job->cancel);
  }
}

/* ---- the files in the bucket ---- */

static void rs_upload(struct rs *r) {
  if (kd_streq(rs_cstr(json_object_get(r->job->bsl, "spec"), "accessMode"), "ReadOnly")) {
    kd_log(KD_LOG_INFO, "restore %s/%s: location is ReadOnly: logs and results not uploaded", r->job->ns, r->name);
    return;
  }
  kd_buf res = KD_BUF_INIT(64u << 20), gz = KD_BUF_INIT(64u << 20);
  char key[VELERO_KEY_MAX];
  kd_rc rc = joblog_results_json(&r->jl, &res);
  if (!rc) rc = archive_gzip(res.data, res.len, &gz);
  if (!rc) rc = velero_restore_key(r->name, VELERO_RESTORE_RESULTS, key, sizeof key);
  if (!rc) rc = objstore_put(r->job->store, key, gz.data, gz.len);
  if (rc) kd_log(KD_LOG_WARN, "restore %s/%s: results not uploaded: %s", r->job->ns, r->name, kd_errmsg());
  kd_buf_reset(&gz);
  const void *log;
  size_t log_len;
  rc = joblog_close_log(&r->jl, &log, &log_len);
  if (!rc) rc = velero_restore_key(r->name, VELERO_RESTORE_LOGS, key, sizeof key);
  if (!rc) rc = objstore_put(r->job->store, key, log, log_len);
  if (rc) kd_log(KD_LOG_WARN, "restore %s/%s: log not uploaded: %s", r->job->ns, r->name, kd_errmsg());
  kd_buf_free(&res);
  kd_buf_free(&gz);
}

/* ---- the whole run ---- */

static void rs_free(struct rs *r) {
  if (r->attached) crypt_detach(r->job->store);
  crypt_location_free(&r->loc);
  verify_sums_free(r->sums);
  if (r->progress_started) {
    atomic_store(&r->progress_stop, 1);
    pthread_join(r->progress_thread, NULL);
  }
  for (size_t i = 0; i < r->n; i++) {
    free(r->items[i].ns);
    free(r->items[i].name);
  }
  free(r->items);
  for (size_t i = 0; i < r->n_or; i++) backup_selector_free(r->or_sels[i]);
  free(r->or_sels);
  backup_selector_free(r->sel);
  backup_filter_free(r->resolver);
  rs_ie_free(&r->res_ie);
  rs_ie_free(&r->ns_ie);
  rs_ie_free(&r->status_ie);
  resmod_free(r->mods);
  json_decref(r->discovery);
  json_decref(r->grs);
  json_decref(r->ns_objects);
  json_decref(r->ensured);
  json_decref(r->crds);
  joblog_free(&r->jl);
  if (r->stage_fd >= 0) close(r->stage_fd);
  if (r->body_fd >= 0) close(r->body_fd);
  pthread_mutex_destroy(&r->mu);
}

static json_t *rs_final(struct rs *r, const char *phase, const char *reason) {
  char ts[21];
  kd_time_format(time(NULL), ts);
  long errors = joblog_count(&r->jl, true), warnings = joblog_count(&r->jl, false);
  json_t *st = json_pack("{s:s,s:s,s:I,s:I,s:{s:I,s:I}}", "phase", phase, "completionTimestamp", ts, "errors",
                         (json_int_t)errors, "warnings", (json_int_t)warnings, "progress", "totalItems",
                         (json_int_t)r->n, "itemsRestored", (json_int_t)atomic_load(&r->done));
  if (st && reason) json_object_set_new(st, "failureReason", joblog_json_text(reason));
  return st;
}

static void rs_fill_result(struct rs *r, struct restore_result *res, const char *phase) {
  snprintf(res->phase, sizeof res->phase, "%s", phase);
  res->total = (long)r->n;
  res->created = atomic_load(&r->created);
  res->updated = atomic_load(&r->updated);
  res->skipped = atomic_load(&r->skipped);
  res->failed = atomic_load(&r->failed);
  res->errors = r->jl.kind ? joblog_count(&r->jl, true) : 0;
  res->warnings = r->jl.kind ? joblog_count(&r->jl, false) : 0;
  if (r->jl.kind && joblog_failed(&r->jl)) snprintf(res->failure, sizeof res->failure, "%s", joblog_fail_msg(&r->jl));
}

/* A dry run's results: the file a restore would write, parsed into d->results. */
static kd_rc rs_dry_results(struct rs *r, struct restore_dry_run *d) {
  kd_buf b = KD_BUF_INIT(64u << 20);
  kd_rc rc = joblog_results_json(&r->jl, &b);
  if (!rc && !(d->results = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_buf_free(&b);
  return rc;
}

kd_rc restore_execute(const struct restore_job *job, struct restore_result *res) {
  struct rs r = {.job = job, .c = job->client, .stage_fd = -1, .body_fd = -1, .t0_ms = kd_now_ms()};
  json_t *errors = json_array(), *status = NULL;
  kd_rc rc = KD_OK;
  memset(res, 0, sizeof *res);
  pthread_mutex_init(&r.mu, NULL);
  json_t *md = json_object_get(job->restore, "metadata");
  r.name = rs_cstr(md, "name");
  r.spec = json_object_get(job->restore, "spec");
  const char *phase0 = rs_cstr(json_object_get(job->restore, "status"), "phase");
  if (!r.name) {
    rc = kd_fail(KD_ERR_INVALID, "the Restore has no name");
    goto out;
  }
  if (phase0 && phase0[0] && !kd_streq(phase0, "New")) {
    rc = kd_fail(KD_ERR_CONFLICT, "Restore %s/%s is %s, not New", job->ns, r.name, phase0);
    goto out;
  }
  if ((rc = joblog_init(&r.jl, "restore", job->ns, r.name, 6))) goto out;
  r.jl.quiet = job->dry_run != NULL; /* the preview prints every verdict and the results */
  if (!errors || !(r.grs = json_object()) || !(r.ns_objects = json_object()) ||
      !(r.ensured = json_object()) || !(r.crds = json_object())) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto out;
  }
  velero_label_value(r.name, r.label_restore);
  velero_label_value(rs_cstr(r.spec, "backupName") ? rs_cstr(r.spec, "backupName") : "", r.label_backup);

  /* 1. validate */
  if ((rc = rs_validate(&r, errors))) goto out;
  if (json_array_size(errors) && job->dry_run) {
    rc = json_array_extend(job->dry_run->validation_errors, errors) ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
    rs_fill_result(&r, res, VELERO_PHASE_FAILED_VALIDATION);
    goto out;
  }
  if (json_array_size(errors)) {
    char ts[21];
    kd_time_format(time(NULL), ts);
    status = json_pack("{s:s,s:O,s:s}", "phase", VELERO_PHASE_FAILED_VALIDATION, "validationErrors", errors,
                       "completionTimestamp", ts);
    if (!status) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto out;
    }
    rc = rs_status(r.c, job->ns, job->restore, status, vstatus_new, job->fence, RS_FINAL_PATIENCE_MS, job->cancel);
    rs_fill_result(&r, res, VELERO_PHASE_FAILED_VALIDATION);
    kd_log(KD_LOG_INFO, "restore %s/%s: FailedValidation: %s", job->ns, r.name,
           json_string_value(json_array_get(errors, 0)));
    goto out;
  }

  /* New -> InProgress as a compare-and-swap: two executors never run one Restore */
  char ts[21];
  kd_time_format(time(NULL), ts);
  json_t *ip = json_pack("{s:s,s:s}", "phase", VELERO_PHASE_IN_PROGRESS, "startTimestamp", ts);
  rc = !ip ? kd_fail(KD_ERR_NOMEM, "out of memory")
       : job->dry_run ? KD_OK : rs_status(r.c, job->ns, job->restore, ip, vstatus_new, job->fence, 60000, job->cancel);
  json_decref(ip);
  if (rc) goto out;
  joblog_note(&r.jl, JOBLOG_INFO, NULL, "starting restore of backup %s", rs_cstr(r.spec, "backupName"));

  /* 2. stage and index; nothing is created before this succeeds */
  if ((rc = kube_discover(r.c, true, &r.discovery)) || (rc = rs_filters(&r)) || (rc = rs_stage(&r))) {
    joblog_fail(&r.jl, rc, "%s", kd_errmsg());
  } else {
    joblog_note(&r.jl, JOBLOG_INFO, NULL, "%zu objects selected from the backup", r.n);
    if (!job->dry_run && pthread_create(&r.progress_thread, NULL, rs_progress, &r) == 0) r.progress_started = true;
    /* 3. create, class by class */
    for (size_t i = 0; i < r.n && !rs_stopped(&r);) {
      size_t j = i;
      while (j < r.n && r.items[j].cls == r.items[i].cls) j++;
      rs_run_class(&r, i, j);
      if (r.items[i].cls == 0 && !job->dry_run && !rs_stopped(&r) && (rc = rs_wait_crds(&r)))
        joblog_fail(&r.jl, rc, "%s", kd_errmsg());
      i = j;
    }
    if (r.job->cancel && *r.job->cancel) joblog_fail(&r.jl, KD_ERR_CANCELLED, "cancelled");
  }
  if (r.progress_started) {
    atomic_store(&r.progress_stop, 1);
    pthread_join(r.progress_thread, NULL);
    r.progress_started = false;
  }
  const char *phase = joblog_failed(&r.jl) ? VELERO_PHASE_FAILED
                      : joblog_count(&r.jl, true) ? VELERO_PHASE_PARTIALLY_FAILED
                                                              : VELERO_PHASE_COMPLETED;
  joblog_note(&r.jl, JOBLOG_INFO, NULL, "restore %s: %ld created, %ld updated, %ld skipped, %ld failed of %zu in %lld ms", phase,
          atomic_load(&r.created), atomic_load(&r.updated), atomic_load(&r.skipped), atomic_load(&r.failed), r.n,
          (long long)(kd_now_ms() - r.t0_ms));
  if (job->dry_run) { /* nothing written: the results are the caller's */
    rc = rs_dry_results(&r, job->dry_run);
    rs_fill_result(&r, res, phase);
    goto out;
  }
  if (job->store) rs_upload(&r);
  status = rs_final(&r, phase, joblog_failed(&r.jl) ? joblog_fail_msg(&r.jl) : NULL);
  rc = status ? rs_status(r.c, job->ns, job->restore, status, vstatus_in_progress, job->fence, RS_FINAL_PATIENCE_MS, job->cancel)
              : kd_fail(KD_ERR_NOMEM, "out of memory");
  rs_fill_result(&r, res, phase);
  kd_log(KD_LOG_INFO, "restore %s/%s: %s (%ld errors, %ld warnings)", job->ns, r.name, phase, res->errors, res->warnings);
out:
  json_decref(status);
  json_decref(errors);
  rs_free(&r);
  return rc;
}

kd_rc restore_fail_abandoned(kube_client *c, const char *ns, json_t *restore, const char *reason, const struct fence *fence) {
  const char *name = rs_cstr(json_object_get(restore, "metadata"), "name");
  char ts[21];
  kd_time_format(time(NULL), ts);
  json_t *st = json_pack("{s:s,s:s,s:s}", "phase", VELERO_PHASE_FAILED, "failureReason", reason, "completionTimestamp", ts);
  if (!st || !name) {
    json_decref(st);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  kd_rc rc = rs_status(c, ns, restore, st, vstatus_in_progress, fence, 60000, NULL);
  json_decref(st);
  return rc;
}
