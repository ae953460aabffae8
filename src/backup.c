/* backup.c — one builtin-engine Backup execution (see backup.h).
 *
 * Velero's rules come from its source (vmware-tanzu/velero): pkg/controller/backup_controller.go
 * (validation, defaults, status), pkg/util/collections/includes_excludes.go (filters),
 * pkg/backup/item_collector.go (listing, namespaces), pkg/backup/item_backupper.go (per-item
 * checks), pkg/backup/backup.go (CRDs of custom resources), pkg/backup/actions (ServiceAccount,
 * Pod and PVC actions), pkg/discovery/helper.go (resources, verbs, order).
 *
 * How we fetch is ours: one paged LIST per resource (per key of the label selectors when they
 * can be merged into set-based ones, else one unfiltered LIST filtered here), several resources
 * at once; each item's raw bytes go straight into the archive writer, which streams into the
 * store writer while a SHA-256 and a byte count run over the compressed bytes.
 *
 * This file holds the commit path; what is selected is in backup_select.c, the streaming of
 * objects into the tarball in backup_stream.c (backup_int.h: what they share). */
#include "backup_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vstatus.h"

/* ---- small helpers ---- */

/* Append s as a JSON string to b. */
kd_rc bk_json_cstr(kd_buf *b, const char *s) { return kd_buf_add_json_string(b, s, strlen(s)); }

static const struct kube_res bk_backup_res = {"velero.io", "v1", "backups", "Backup", true};

/* a debug line with the time since the execution began */
void bk_mark(const struct bk *b, const char *what) {
  kd_log(KD_LOG_DEBUG, "backup %s/%s: %s at %lld ms", b->ns, b->name, what, (long long)(kd_now_ms() - b->t0_ms));
}

/* Has the job been cancelled? */
bool bk_cancelled(const struct bk *b) { return b->job->cancel && *b->job->cancel; }

/* ---- status ---- */

/* Write the Backup's status as a compare-and-swap from one of the phases expect (vstatus.h),
 * under the job's fence and only on this very Backup (its uid); transient failures are retried
 * for patience_ms. */
kd_rc bk_status(struct bk *b, json_t *status, const char *const *expect, int patience_ms) {
  struct vstatus_write w = {&bk_backup_res, b->ns, b->name, status, expect, b->uid, b->job->fence, patience_ms, b->job->cancel};
  return vstatus_write(b->c, &w, NULL);
}

/* The label velero.io/storage-location and the defaults Velero fills into the spec, guarded by
 * the resourceVersion we read (409: someone else changed the Backup). */
static kd_rc bk_patch_meta(struct bk *b) {
  json_t *bk = b->job->backup, *spec = json_object_get(bk, "spec");
  const char *rv = bk_cstr(json_object_get(json_object_get(bk, "metadata"), "resourceVersion"));
  json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", VELERO_LABEL_STORAGE_LOCATION, b->bsl_label), *out = NULL;
  kd_rc rc = KD_OK;
  if (!patch) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if (rv && json_object_set_new(json_object_get(patch, "metadata"), "resourceVersion", json_string(rv))) goto nomem;
  json_t *ps = json_object();
  if (!ps || json_object_set_new(patch, "spec", ps)) goto nomem;
  if (!bk_cstr(json_object_get(spec, "storageLocation")) || !json_string_length(json_object_get(spec, "storageLocation")))
    if (json_object_set_new(ps, "storageLocation", json_string(b->bsl_name))) goto nomem;
  if (!bk_cstr(json_object_get(spec, "ttl")) || !json_string_length(json_object_get(spec, "ttl")))
    if (json_object_set_new(ps, "ttl", json_string(VELERO_DEFAULT_TTL))) goto nomem;
  if (!json_object_size(ps)) json_object_del(patch, "spec");
  struct kube_patch_opts po = {KUBE_PATCH_MERGE, NULL, false, NULL};
  rc = kube_patch(b->c, &bk_backup_res, b->ns, b->name, patch, &po, &out);
  json_decref(out);
  json_decref(patch);
  if (rc == KD_ERR_CONFLICT) return kd_fail(rc, "Backup %s/%s changed since it was read: re-read it and try again", b->ns, b->name);
  return rc ? kd_fail_wrap(rc, "labelling Backup %s/%s", b->ns, b->name) : KD_OK;
nomem:
  json_decref(patch);
  return kd_fail(KD_ERR_NOMEM, "out of memory");
}

/* The status of a finished (or refused) execution. */
static json_t *bk_final_status(struct bk *b, const char *phase, const char *reason, json_t *validation) {
  char done[21];
  kd_time_format(time(NULL), done);
  long items = atomic_load(&b->backed_up);
  json_t *st = json_pack("{s:s,s:i,s:s,s:s}", "phase", phase, "version", 1, "formatVersion", VELERO_FORMAT_VERSION,
                         "expiration", b->exp_ts);
  if (!st) return NULL;
  bool ok = true;
  if (!validation) {
    ok = !json_object_set_new(st, "completionTimestamp", json_string(done)) &&
         !json_object_set_new(st, "errors", json_integer(joblog_count(&b->jl, true))) &&
         !json_object_set_new(st, "warnings", json_integer(joblog_count(&b->jl, false))) &&
         !json_object_set_new(st, "progress", json_pack("{s:I,s:I}", "totalItems", (json_int_t)items, "itemsBackedUp",
                                                        (json_int_t)items));
    if (ok && b->start_ts[0]) ok = !json_object_set_new(st, "startTimestamp", json_string(b->start_ts));
  } else {
    ok = !json_object_set(st, "validationErrors", validation);
  }
  if (ok && reason) ok = !json_object_set_new(st, "failureReason", joblog_json_text(reason));
  if (!ok) {
    json_decref(st);
    return NULL;
  }
  return st;
}

/* ---- preparation ---- */

static void bk_free(struct bk *b) {
  if (!b) return;
  for (size_t i = 0; i < b->nsels; i++) backup_selector_free(b->sels[i]);
  free(b->sels);
  free(b->sel_group);
  json_decref(b->sel_index);
  for (size_t i = 0; i < b->ngroups; i++) free(b->groups[i].server);
  free(b->groups);
  for (size_t i = 0; i < b->nns; i++) free(b->nsinfo[i].name);
  free(b->nsinfo);
  for (size_t i = 0; i < b->nrel; i++) free(b->rel[i].ns), free(b->rel[i].name);
  free(b->rel);
  free(b->list_ns);
  free(b->tasks);
  free(b->types);
  backup_filter_free(b->filter);
  json_decref(b->disc);
  json_decref(b->disc_skipped);
  backup_reslist_free(b->rl);
  joblog_free(&b->jl);
  json_decref(b->tracked_ns);
  json_decref(b->written);
  json_decref(b->sa_set);
  json_decref(b->queued);
  if (b->tar_sha) EVP_MD_CTX_free(b->tar_sha);
  crypt_writer_abort(b->cw);
  crypt_dek_free(b->dek);
  crypt_location_free(&b->loc);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

static kd_rc bk_setup(struct bk *b, const struct backup_job *job) {
  json_t *meta = json_object_get(job->backup, "metadata"), *spec = json_object_get(job->backup, "spec");
  b->job = job;
  b->c = job->client;
  b->ns = job->ns;
  b->name = bk_cstr(json_object_get(meta, "name"));
  pthread_mutex_init(&b->mu, NULL);
  if (!b->name || !b->name[0]) return kd_fail(KD_ERR_INVALID, "the Backup has no name");
  b->uid = bk_cstr(json_object_get(meta, "uid"));
  if (backup_claim_key(b->name, b->claim_key, sizeof b->claim_key) != KD_OK) b->claim_key[0] = '\0';
  b->bsl_name = job->bsl ? bk_cstr(json_object_get(json_object_get(job->bsl, "metadata"), "name")) : NULL;
  if (!b->bsl_name) b->bsl_name = bk_cstr(json_object_get(spec, "storageLocation"));
  if (!b->bsl_name) b->bsl_name = "";
  velero_label_value(b->bsl_name, b->bsl_label);
  b->gz_level = job->gzip_level > 0 && job->gzip_level <= 9 ? job->gzip_level : 1;
  if (velero_parse_ttl(bk_cstr(json_object_get(spec, "ttl")), &b->ttl) != KD_OK)
    velero_parse_ttl(NULL, &b->ttl); /* the spec error is reported by validation */
  b->start = time(NULL);
  kd_time_format(b->start + (time_t)b->ttl, b->exp_ts);
  for (int f = 0; f < F_COUNT; f++) {
    static const enum velero_backup_file vf[F_COUNT] = {VELERO_BACKUP_TARBALL, VELERO_BACKUP_RESOURCE_LIST,
                                                        VELERO_BACKUP_RESULTS, VELERO_BACKUP_LOGS,
                                                        VELERO_BACKUP_CHECKSUMS, VELERO_BACKUP_SIGNATURE,
                                                        VELERO_BACKUP_METADATA};
    if (velero_backup_key(b->name, vf[f], b->keys[f], sizeof b->keys[f]) != KD_OK) b->keys[f][0] = '\0';
  }
  kd_rc rc;
  if ((rc = joblog_init(&b->jl, "backup", b->ns, b->name, b->gz_level)) || (rc = backup_reslist_new(&b->rl))) return rc;
  if (!(b->tracked_ns = json_object()) || !(b->written = json_object()) || !(b->sa_set = json_object()) ||
      !(b->queued = json_object()) || !(b->tar_sha = EVP_MD_CTX_new()))
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* What can be refused without asking any server. */
static kd_rc bk_validate(struct bk *b, json_t *errors) {
  const struct backup_job *job = b->job;
  json_t *spec = json_object_get(job->backup, "spec");
  kd_rc rc = KD_OK;
  if (!b->keys[F_META][0] && (rc = bk_add_error(errors, "backup name \"%.200s\" cannot be a folder in the bucket", b->name)))
    return rc;
  if (!job->bsl) {
    if ((rc = bk_add_error(errors, "backup storage location \"%.200s\" not found", b->bsl_name[0] ? b->bsl_name : "default")))
      return rc;
  } else {
    json_t *bspec = json_object_get(job->bsl, "spec");
    if (kd_streq(bk_cstr(json_object_get(bspec, "accessMode")), "ReadOnly") &&
        (rc = bk_add_error(errors, "backup can't be created because backup storage location %.200s is currently in read-only mode",
                        b->bsl_name)))
      return rc;
    if (kd_streq(bk_cstr(json_object_get(json_object_get(job->bsl, "status"), "phase")), "Unavailable") &&
        (rc = bk_add_error(errors, "backup can't be created because BackupStorageLocation %.200s is in Unavailable status.",
                        b->bsl_name)))
      return rc;
    if (!job->store && (rc = bk_add_error(errors, "cannot open backup storage location %.200s: %.500s", b->bsl_name,
                                       job->store_error ? job->store_error : "unknown error")))
      return rc;
    /* encryption and signing (crypt.h): every configured Secret must load, or nothing is written */
    if ((rc = crypt_location_load(b->c, b->ns, job->bsl, &b->loc)) != KD_OK) {
      if (rc != KD_ERR_CONFIG) return kd_fail_wrap(rc, "storage location %s", b->bsl_name);
      if ((rc = bk_add_error(errors, "backup storage location %.200s: %.800s", b->bsl_name, kd_errmsg()))) return rc;
    } else if (b->loc.keys && (rc = crypt_dek_new(b->loc.keys, &b->dek))) {
      return rc;
    }
  }
  if (spec && !json_is_object(spec) && (rc = bk_add_error(errors, "spec must be an object"))) return rc;
  const char *ttl = bk_cstr(json_object_get(spec, "ttl"));
  int64_t secs;
  json_t *ttlv = json_object_get(spec, "ttl");
  if (ttlv && !json_is_null(ttlv) && !ttl && (rc = bk_add_error(errors, "spec.ttl must be a duration string"))) return rc;
  if (ttl && velero_parse_ttl(ttl, &secs) != KD_OK && (rc = bk_add_error(errors, "invalid ttl \"%.100s\": %s", ttl, kd_errmsg())))
    return rc;
  json_t *ls = json_object_get(spec, "labelSelector"), *ors = json_object_get(spec, "orLabelSelectors");
  if (json_is_null(ls)) ls = NULL;
  if (json_is_null(ors)) ors = NULL;
  if (ls && ors &&
      (rc = bk_add_error(errors, "encountered labelSelector as well as orLabelSelectors in backup spec, only one can be specified")))
    return rc;
  if (ors && !json_is_array(ors) && (rc = bk_add_error(errors, "spec.orLabelSelectors must be a list"))) return rc;
  size_t cap = (ls ? 1 : 0) + json_array_size(ors);
  if (cap && (!(b->sels = calloc(cap, sizeof *b->sels)) || !(b->sel_group = calloc(cap, sizeof *b->sel_group))))
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  if (ls) {
    if ((rc = backup_selector_new(ls, &b->sels[0])) == KD_OK) b->nsels = 1;
    else if (rc == KD_ERR_INVALID) rc = bk_add_error(errors, "invalid labelSelector: %s", kd_errmsg());
    if (rc) return rc;
  }
  size_t i;
  json_t *s;
  json_array_foreach(ors, i, s) {
    if ((rc = backup_selector_new(s, &b->sels[b->nsels])) == KD_OK) b->nsels++;
    else if (rc == KD_ERR_INVALID) rc = bk_add_error(errors, "invalid orLabelSelectors[%zu]: %s", i, kd_errmsg());
    if (rc) return rc;
  }
  return KD_OK;
}

/* Discovery, namespaces, the filters, the LIST plan. Validation problems go to errors; a
 * failure to talk to the API server is returned. */
static kd_rc bk_prepare(struct bk *b, json_t *errors) {
  kd_rc rc;
  json_t *excluded = json_array();
  if (!excluded) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if ((rc = kube_discover_report(b->c, true, &b->disc, &b->disc_skipped))) {
    rc = kd_fail_wrap(rc, "discovering the API server's resources");
    goto fail;
  }
  bk_mark(b, "discovered");
  if ((rc = bk_scan_namespaces(b, excluded))) goto fail;
  if ((rc = backup_filter_new(json_object_get(b->job->backup, "spec"), b->disc, excluded, errors, &b->filter))) goto fail;
  if ((rc = bk_plan_groups(b))) goto fail;
  rc = bk_plan_lists(b);
fail:
  json_decref(excluded);
  return rc;
}

struct bk_exists {
  bool any;
};

static kd_rc bk_on_existing(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)key, (void)is_prefix, (void)size;
  ((struct bk_exists *)ud)->any = true;
  return KD_ERR_CONFLICT; /* one is enough */
}

/* Is anything already stored under backups/<name>/? A store failure is returned. */
static kd_rc bk_check_absent(struct bk *b, json_t *errors) {
  objstore *s = b->job->store;
  kd_rc rc = objstore_head(s, b->keys[F_META], NULL);
  struct bk_exists e = {false};
  if (rc == KD_OK) e.any = true;
  else if (rc != KD_ERR_NOTFOUND) return kd_fail_wrap(rc, "checking whether backup %s already exists", b->name);
  if (!e.any) {
    char prefix[VELERO_KEY_MAX];
    snprintf(prefix, sizeof prefix, "backups/%s/", b->name);
    rc = objstore_list(s, prefix, '/', bk_on_existing, &e);
    if (rc && !(rc == KD_ERR_CONFLICT && e.any)) return kd_fail_wrap(rc, "checking whether backup %s already exists", b->name);
  }
  if (e.any)
    return bk_add_error(errors, "backup %.200s already exists in backup storage location %.200s: it is never overwritten", b->name,
                     b->bsl_name);
  return KD_OK;
}

/* ---- writing ---- */

/* n bytes of d as lowercase hex into out (2n+1 bytes). */
void bk_hex(const unsigned char *d, unsigned n, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) out[2 * i] = hex[d[i] >> 4], out[2 * i + 1] = hex[d[i] & 15];
  out[2 * n] = '\0';
}

static kd_rc bk_put_stored(struct bk *b, enum bk_file f, const void *data, size_t n);

static kd_rc bk_put(struct bk *b, enum bk_file f, const void *data, size_t n) {
  kd_buf sealed = KD_BUF_INIT(BK_SMALL_MAX + (BK_SMALL_MAX >> 8) + 4096);
  if (b->dek && (f == F_RESLIST || f == F_RESULTS || f == F_LOGS)) { /* the data files; checksums, signature, metadata stay clear */
    kd_rc rc = crypt_seal(b->dek, b->keys[f], data, n, &sealed);
    if (rc) {
      kd_buf_free(&sealed);
      return kd_fail_wrap(rc, "encrypting %s", b->keys[f]);
    }
    data = sealed.data, n = sealed.len;
  }
  kd_rc rc = bk_put_stored(b, f, data, n);
  kd_buf_free(&sealed);
  return rc;
}

/* store data as key f, its SHA-256 and size recorded (over the stored bytes) */
static kd_rc bk_put_stored(struct bk *b, enum bk_file f, const void *data, size_t n) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dl = 0;
  if (EVP_Digest(data, n, d, &dl, EVP_sha256(), NULL) != 1) return kd_fail(KD_ERR_NOMEM, "sha256 failed");
  bk_hex(d, dl, b->sums[f]);
  b->sizes[f] = n;
  b->committed[f] = true; /* from now on it may exist: a failed write may have landed (lost answer) */
  kd_rc rc = objstore_put(b->job->store, b->keys[f], data, n);
  if (rc) return kd_fail_wrap(rc, "writing %s", b->keys[f]);
  return KD_OK;
}

static kd_rc bk_put_gz(struct bk *b, enum bk_file f, archive_gz *g) {
  kd_rc rc = archive_gz_finish(g);
  return rc ? rc : bk_put(b, f, g->out.data, g->out.len);
}

/* velero-backup.json: the Backup with apiVersion, kind, the label and its final status */
static char *bk_metadata_json(struct bk *b, json_t *status) {
  json_t *o = json_deep_copy(b->job->backup);
  char *s = NULL;
  if (!json_is_object(o)) goto done;
  json_t *md = json_object_get(o, "metadata"), *spec = json_object_get(o, "spec");
  json_t *labels = json_object_get(md, "labels");
  if (!json_is_object(labels)) {
    labels = json_object();
    if (!labels || json_object_set_new(md, "labels", labels)) goto done;
  }
  json_object_del(md, "managedFields");
  if (json_object_set_new(o, "apiVersion", json_string("velero.io/v1")) || json_object_set_new(o, "kind", json_string("Backup")) ||
      json_object_set_new(labels, VELERO_LABEL_STORAGE_LOCATION, json_string(b->bsl_label)) ||
      json_object_set(o, "status", status))
    goto done;
  if (b->dek || b->loc.signer) { /* for people and sync: the files themselves say it too */
    json_t *ann = json_object_get(md, "annotations");
    if (!json_is_object(ann) && (!(ann = json_object()) || json_object_set_new(md, "annotations", ann))) goto done;
    if (b->dek && json_object_set_new(ann, CRYPT_ANN_KEY_ID, json_string(crypt_dek_key_id(b->dek)))) goto done;
    if (b->loc.signer && json_object_set_new(ann, CRYPT_ANN_SIGNER_ID, json_string(crypt_signer_id(b->loc.signer)))) goto done;
  }
  if (json_is_object(spec) && !json_string_length(json_object_get(spec, "storageLocation")))
    json_object_set_new(spec, "storageLocation", json_string(b->bsl_name));
  if (json_is_object(spec) && !json_string_length(json_object_get(spec, "ttl")))
    json_object_set_new(spec, "ttl", json_string(VELERO_DEFAULT_TTL));
  s = json_dumps(o, JSON_INDENT(2));
done:
  json_decref(o);
  return s;
}

/* Is the folder's claim still ours (our uid)? Read back before the checksums: a gateway that
 * could not create it exclusively, or a tenant with write access, may have replaced it; then
 * this backup's files may be mixed with another's and it must not say Completed. */
static kd_rc bk_claim_held(struct bk *b) {
  char *data = NULL;
  size_t len = 0;
  kd_rc rc = objstore_get_all(b->job->store, b->claim_key, 64u << 10, &data, &len);
  if (rc != KD_OK) return kd_fail_wrap(rc, "reading back %s", b->claim_key);
  json_t *doc = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
  const char *uid = json_string_value(json_object_get(doc, "uid"));
  if (!kd_streq(uid, b->uid ? b->uid : ""))
    rc = kd_fail(KD_ERR_CONFLICT, "%s now names another Backup (uid %.64s): another writer uses this folder; nothing of "
                 "this backup is marked complete", b->claim_key, uid ? uid : "none");
  json_decref(doc);
  free(data);
  return rc;
}

/* Write the four small files, the checksums and velero-backup.json (last). */
static kd_rc bk_write_files(struct bk *b, json_t *status) {
  archive_gz g = {0};
  kd_buf tmp = KD_BUF_INIT(BK_SMALL_MAX);
  char *meta = NULL;
  kd_rc rc;
  if ((rc = archive_gz_init(&g, BK_SMALL_MAX, b->gz_level)) || (rc = backup_reslist_write(b->rl, archive_gz_write, &g)) ||
      (rc = bk_put_gz(b, F_RESLIST, &g)))
    goto fail;
  archive_gz_free(&g);
  if ((rc = archive_gz_init(&g, BK_SMALL_MAX, b->gz_level)) || (rc = joblog_results_json(&b->jl, &tmp)) ||
      (rc = archive_gz_add(&g, tmp.data, tmp.len)) || (rc = bk_put_gz(b, F_RESULTS, &g)))
    goto fail;
  archive_gz_free(&g);
  const void *log;
  size_t log_len;
  rc = joblog_close_log(&b->jl, &log, &log_len); /* no line after the file is cut */
  if (rc || (rc = bk_put(b, F_LOGS, log, log_len))) goto fail;
  kd_buf_reset(&tmp);
  static const enum bk_file listed[] = {F_TAR, F_RESLIST, F_RESULTS, F_LOGS};
  rc = kd_buf_adds(&tmp, "{\"files\":{");
  for (size_t i = 0; rc == KD_OK && i < KD_ARRAY_LEN(listed); i++) {
    enum bk_file f = listed[i];
    if ((i && (rc = kd_buf_adds(&tmp, ","))) || (rc = bk_json_cstr(&tmp, b->keys[f]))) break;
    rc = kd_buf_addf(&tmp, ":{\"sha256\":\"%s\",\"size\":%llu}", b->sums[f], (unsigned long long)b->sizes[f]);
  }
  if (rc == KD_OK) rc = kd_buf_adds(&tmp, "}}\n");
  kd_test_pause("before-checksums");
  if (rc || (rc = bk_claim_held(b)) || (rc = bk_put(b, F_CHECKSUMS, tmp.data, tmp.len))) goto fail;
  if (b->loc.signer) { /* the signature over the checksums file's exact bytes (crypt.c) */
    kd_buf sig = KD_BUF_INIT(CRYPT_SIGFILE_MAX);
    if ((rc = crypt_sign(b->loc.signer, tmp.data, tmp.len, &sig)) == KD_OK) rc = bk_put(b, F_SIG, sig.data, sig.len);
    kd_buf_free(&sig);
    if (rc) goto fail;
  }
  if (!(meta = bk_metadata_json(b, status))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  if ((rc = fence_check(b->job->fence, "writing velero-backup.json")) != KD_OK) goto fail;
  rc = bk_put(b, F_META, meta, strlen(meta));
fail:
  free(meta);
  archive_gz_free(&g);
  kd_buf_free(&tmp);
  return rc;
}

/* Remove what this execution wrote (a failed backup leaves nothing visible): velero-backup.json
 * first, also when its write failed (it may have landed), then the rest, and the claim last and
 * only when nothing is left (the name stays taken while a file of it is there). */
static void bk_discard(struct bk *b) {
  if (b->aw) archive_writer_abort(b->aw);
  b->aw = NULL;
  if (b->tw) objstore_writer_abort(b->tw);
  b->tw = NULL;
  bool left = false;
  for (int f = F_COUNT - 1; f >= 0; f--) {
    if (!b->committed[f]) continue;
    kd_rc rc = objstore_delete(b->job->store, b->keys[f]);
    if (rc != KD_OK && rc != KD_ERR_NOTFOUND) {
      kd_log(KD_LOG_ERROR, "backup %s/%s: could not remove %s: %s", b->ns, b->name, b->keys[f], kd_errmsg());
      left = true;
      continue;
    }
    b->committed[f] = false;
  }
  if (b->claimed && !left) {
    kd_rc rc = objstore_delete(b->job->store, b->claim_key);
    if (rc != KD_OK && rc != KD_ERR_NOTFOUND)
      kd_log(KD_LOG_ERROR, "backup %s/%s: could not remove %s: %s", b->ns, b->name, b->claim_key, kd_errmsg());
    else
      b->claimed = false;
  }
}

/* Take the folder: write the claim once, exclusively. KD_ERR_CONFLICT (added to errors) when
 * another Backup holds it; a store failure is returned. */
static kd_rc bk_claim(struct bk *b, json_t *errors) {
  kd_buf doc = KD_BUF_INIT(4096);
  kd_rc rc = kd_buf_adds(&doc, "{\"backup\":");
  if (rc == KD_OK) rc = bk_json_cstr(&doc, b->name);
  if (rc == KD_OK) rc = kd_buf_adds(&doc, ",\"namespace\":");
  if (rc == KD_OK) rc = bk_json_cstr(&doc, b->ns);
  if (rc == KD_OK) rc = kd_buf_adds(&doc, ",\"uid\":");
  if (rc == KD_OK) rc = bk_json_cstr(&doc, b->uid ? b->uid : "");
  if (rc == KD_OK) rc = kd_buf_adds(&doc, "}\n");
  if (rc != KD_OK) goto fail;
  rc = objstore_put_new(b->job->store, b->claim_key, doc.data, doc.len);
  if (rc == KD_OK) {
    b->claimed = true;
  } else if (rc == KD_ERR_CONFLICT) {
    rc = bk_add_error(errors, "backup %.200s already exists in backup storage location %.200s (another Backup of that "
                   "name claimed the folder first): it is never overwritten", b->name, b->bsl_name);
    if (rc == KD_OK) rc = KD_ERR_CONFLICT;
  } else if (rc == KD_ERR_UNSUPPORTED) { /* the gateway cannot create exclusively: the check before must do */
    joblog_note(&b->jl, JOBLOG_WARN, NULL, "storage location %s cannot create a file exclusively (%s); two clusters "
                "writing a backup of the same name at once are not told apart", b->bsl_name, kd_errmsg());
    if ((rc = objstore_put(b->job->store, b->claim_key, doc.data, doc.len)) == KD_OK) b->claimed = true;
  }
  if (rc != KD_OK && rc != KD_ERR_CONFLICT) rc = kd_fail_wrap(rc, "writing %s", b->claim_key);
fail:
  kd_buf_free(&doc);
  return rc;
}

/* Everything between InProgress and the last file. KD_OK: every file is written. */
static kd_rc bk_run(struct bk *b, json_t **final_status) {
  kd_rc rc = KD_OK;
  if (bk_stream(b) != KD_OK) goto fail;
  if (bk_cancelled(b)) goto fail;
  long errors = joblog_count(&b->jl, true);
  const char *phase = errors ? VELERO_PHASE_PARTIALLY_FAILED : VELERO_PHASE_COMPLETED;
  joblog_note(&b->jl, JOBLOG_INFO, NULL, "Backed up a total of %ld items (%llu bytes compressed); phase %s", atomic_load(&b->backed_up),
          (unsigned long long)b->tar_bytes, phase);
  if (!(*final_status = bk_final_status(b, phase, NULL, NULL))) {
    joblog_fail(&b->jl, KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  bk_mark(b, "tarball committed");
  if ((rc = bk_write_files(b, *final_status))) {
    joblog_fail(&b->jl, rc, "%s", kd_errmsg());
    json_decref(*final_status);
    *final_status = NULL;
    goto fail;
  }
  return KD_OK;
fail:
  bk_stop_progress(b);
  bk_discard(b);
  if (!joblog_failed(&b->jl)) joblog_fail(&b->jl, KD_ERR_CANCELLED, "cancelled");
  return joblog_fail_rc(&b->jl) ? joblog_fail_rc(&b->jl) : KD_ERR_CANCELLED;
}

static void bk_result(struct bk *b, struct backup_result *res, const char *phase) {
  snprintf(res->phase, sizeof res->phase, "%s", phase);
  res->items = atomic_load(&b->backed_up);
  res->errors = joblog_count(&b->jl, true);
  res->warnings = joblog_count(&b->jl, false);
  res->tarball_bytes = b->committed[F_TAR] ? b->tar_bytes : 0;
}

/* The final status waits this long for an API server that is down: the backup is done, only its
 * record is missing; a lost term ends the wait (the next leader finishes it). */
#define BK_FINAL_PATIENCE_MS (10 * 60 * 1000)

/* Record a phase without running (FailedValidation, or Failed before anything was written), from
 * one of the phases expect. */
static kd_rc bk_refuse(struct bk *b, const char *phase, const char *reason, json_t *errors, const char *const *expect,
                       struct backup_result *res) {
  json_t *st = bk_final_status(b, phase, reason, errors);
  if (!st) return kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_rc rc = bk_status(b, st, expect, BK_FINAL_PATIENCE_MS);
  json_decref(st);
  bk_result(b, res, phase);
  if (rc == KD_OK) kd_log(KD_LOG_INFO, "backup %s/%s: %s%s%s", b->ns, b->name, phase, reason ? ": " : "", reason ? reason : "");
  return rc;
}

/* New -> InProgress as a compare-and-swap: of two executors, one wins. */
static kd_rc bk_start(struct bk *b) {
  kd_time_format(b->start = time(NULL), b->start_ts);
  kd_time_format(b->start + (time_t)b->ttl, b->exp_ts);
  json_t *ip = json_pack("{s:s,s:s,s:s,s:i,s:s}", "phase", VELERO_PHASE_IN_PROGRESS, "startTimestamp", b->start_ts,
                         "expiration", b->exp_ts, "version", 1, "formatVersion", VELERO_FORMAT_VERSION);
  if (!ip) return kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_rc rc = bk_status(b, ip, vstatus_new, 60000);
  json_decref(ip);
  if (rc == KD_OK) kd_log(KD_LOG_INFO, "backup %s/%s: InProgress", b->ns, b->name);
  return rc;
}

/* The outcome of a run that wrote every file: its status, or (that failing for good) the lie
 * undone. */
static kd_rc bk_finish(struct bk *b, json_t *status, struct backup_result *res) {
  const char *ph = json_string_value(json_object_get(status, "phase"));
  kd_rc rc = bk_status(b, status, vstatus_in_progress, BK_FINAL_PATIENCE_MS);
  bk_result(b, res, ph);
  if (rc == KD_OK) {
    kd_log(KD_LOG_INFO, "backup %s/%s: %s, %ld items", b->ns, b->name, ph, res->items);
    return KD_OK;
  }
  char why[1200];
  snprintf(why, sizeof why, "%s", kd_errmsg());
  if (backup_undo_metadata(b->c, b->ns, b->job->backup, b->job->store, ph) != KD_OK)
    kd_log(KD_LOG_WARN, "backup %s/%s: %s", b->ns, b->name, kd_errmsg());
  return kd_fail(rc, "%s", why);
}

kd_rc backup_execute(const struct backup_job *job, struct backup_result *res) {
  memset(res, 0, sizeof *res);
  struct bk *b = calloc(1, sizeof *b);
  json_t *errors = json_array(), *status = NULL;
  kd_rc rc = KD_OK;
  char reason[1200];
  if (!b || !errors) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto out;
  }
  b->t0_ms = kd_now_ms();
  if ((rc = bk_setup(b, job))) goto out;
  const char *phase = bk_cstr(json_object_get(json_object_get(job->backup, "status"), "phase"));
  if (!vstatus_phase_in(phase, vstatus_new)) {
    rc = kd_fail(KD_ERR_CONFLICT, "Backup %s/%s is already %s", b->ns, b->name, phase);
    goto out;
  }
  if ((rc = fence_check(job->fence, "starting a backup")) || (rc = bk_patch_meta(b))) goto out;
  if ((rc = bk_validate(b, errors))) goto out;
  if (json_array_size(errors)) {
    rc = bk_refuse(b, VELERO_PHASE_FAILED_VALIDATION, NULL, errors, vstatus_new, res);
    goto out;
  }
  bk_mark(b, "validated");
  if ((rc = bk_prepare(b, errors)) == KD_OK && !json_array_size(errors)) rc = bk_check_absent(b, errors);
  bk_mark(b, "prepared");
  if (rc) {
    if (rc == KD_ERR_NOMEM || rc == KD_ERR_CANCELLED) goto out;
    snprintf(reason, sizeof reason, "%s", kd_errmsg());
    rc = bk_refuse(b, VELERO_PHASE_FAILED, reason, NULL, vstatus_new, res);
    goto out;
  }
  if (json_array_size(errors)) {
    rc = bk_refuse(b, VELERO_PHASE_FAILED_VALIDATION, NULL, errors, vstatus_new, res);
    goto out;
  }
  if ((rc = bk_start(b))) goto out;
  bk_mark(b, "InProgress recorded");
  /* S3 Object Lock (objstore.h): every file of this backup, the claim first, is retained until
   * the later of its expiration and start + the location's lock days */
  if (job->store) objstore_lock_backup(job->store, b->start, b->start + (time_t)b->ttl);
  if ((rc = bk_claim(b, errors)) != KD_OK) {
    if (rc == KD_ERR_CONFLICT) {
      rc = bk_refuse(b, VELERO_PHASE_FAILED_VALIDATION, NULL, errors, vstatus_in_progress, res);
      goto out;
    }
    snprintf(reason, sizeof reason, "%s", kd_errmsg());
    rc = bk_refuse(b, VELERO_PHASE_FAILED, reason, NULL, vstatus_in_progress, res);
    goto out;
  }
  if (bk_run(b, &status) == KD_OK) {
    bk_mark(b, "files written");
    rc = bk_finish(b, status, res);
    goto out;
  }
  snprintf(reason, sizeof reason, "%s", joblog_fail_msg(&b->jl)[0] ? joblog_fail_msg(&b->jl) : "cancelled");
  if (!(status = bk_final_status(b, VELERO_PHASE_FAILED, reason, NULL))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto out;
  }
  rc = bk_status(b, status, vstatus_in_progress, BK_FINAL_PATIENCE_MS);
  bk_result(b, res, VELERO_PHASE_FAILED);
  kd_log(KD_LOG_WARN, "backup %s/%s: Failed: %s", b->ns, b->name, reason);
out:
  json_decref(status);
  json_decref(errors);
  bk_free(b);
  return rc;
}
