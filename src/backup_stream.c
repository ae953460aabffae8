/* backup_stream.c — the objects of one Backup from the API server into the tarball (see
 * backup_int.h): paged LISTs on worker threads, each item's metadata read from its raw bytes,
 * Velero's per-item checks and actions (pkg/backup/item_backupper.go, pkg/backup/actions), the
 * related objects, CRDs and namespaces they add, the archive writer's output and progress. */
#include "backup_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vstatus.h"

/* ---- raw JSON: metadata without a tree ---- */

#define JS_MAX_DEPTH 512

static const char *js_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* p at '"': the byte after the closing quote, or NULL */
static const char *js_string_end(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if (*p == '\\') {
      if (++p >= end) return NULL;
    } else if (*p == '"') {
      return p + 1;
    } else if ((unsigned char)*p < 0x20) {
      return NULL;
    }
  }
  return NULL;
}

/* the byte after the value starting at p, or NULL */
static const char *js_value_end(const char *p, const char *end) {
  if (p >= end) return NULL;
  if (*p == '"') return js_string_end(p, end);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      char c = *p;
      if (c == '"') {
        if (!(p = js_string_end(p, end))) return NULL;
        continue;
      }
      if (c == '{' || c == '[') {
        if (++depth > JS_MAX_DEPTH) return NULL;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  const char *s = p;
  while (p < end && !strchr(",}] \t\r\n", *p)) p++;
  return p > s ? p : NULL;
}

/* Call fn for every member of the object p[0..n): raw key bytes (no quotes) and the value's
 * bytes. KD_ERR_PARSE when it is not an object. */
typedef void (*js_member_fn)(const char *k, size_t kl, const char *v, size_t vl, void *ud);
static kd_rc js_members(const char *p, size_t n, js_member_fn fn, void *ud) {
  const char *end = p + n;
  p = js_ws(p, end);
  if (p >= end || *p != '{') return kd_fail(KD_ERR_PARSE, "not a JSON object");
  p = js_ws(p + 1, end);
  if (p < end && *p == '}') return KD_OK;
  for (;;) {
    if (p >= end || *p != '"') return kd_fail(KD_ERR_PARSE, "JSON object: expected a key");
    const char *ke = js_string_end(p, end);
    if (!ke) return kd_fail(KD_ERR_PARSE, "JSON object: unterminated key");
    const char *k = p + 1;
    size_t kl = (size_t)(ke - 1 - k);
    p = js_ws(ke, end);
    if (p >= end || *p != ':') return kd_fail(KD_ERR_PARSE, "JSON object: expected ':'");
    p = js_ws(p + 1, end);
    const char *ve = js_value_end(p, end);
    if (!ve) return kd_fail(KD_ERR_PARSE, "JSON object: bad value");
    fn(k, kl, p, (size_t)(ve - p), ud);
    p = js_ws(ve, end);
    if (p < end && *p == ',') {
      p = js_ws(p + 1, end);
      continue;
    }
    if (p < end && *p == '}') return KD_OK;
    return kd_fail(KD_ERR_PARSE, "JSON object: expected ',' or '}'");
  }
}

static bool key_is(const char *k, size_t kl, const char *want) { return strlen(want) == kl && memcmp(k, want, kl) == 0; }

struct meta_scan {
  const char *meta, *name, *ns, *labels;
  size_t meta_len, name_len, ns_len, labels_len;
  bool has_av, has_kind, deleting;
};

static void top_member(const char *k, size_t kl, const char *v, size_t vl, void *ud) {
  struct meta_scan *m = ud;
  if (key_is(k, kl, "metadata")) m->meta = v, m->meta_len = vl;
  else if (key_is(k, kl, "apiVersion")) m->has_av = true;
  else if (key_is(k, kl, "kind")) m->has_kind = true;
}

static void meta_member(const char *k, size_t kl, const char *v, size_t vl, void *ud) {
  struct meta_scan *m = ud;
  if (key_is(k, kl, "name")) m->name = v, m->name_len = vl;
  else if (key_is(k, kl, "namespace")) m->ns = v, m->ns_len = vl;
  else if (key_is(k, kl, "labels")) m->labels = v, m->labels_len = vl;
  else if (key_is(k, kl, "deletionTimestamp")) m->deleting = !(vl == 4 && memcmp(v, "null", 4) == 0);
}

/* a JSON string value (raw, quotes included) into out[n]; "" for null; KD_ERR_INVALID when
 * it is not a string, does not fit or holds NUL */
static kd_rc js_decode_str(const char *v, size_t vl, char *out, size_t n, const char *what) {
  out[0] = '\0';
  if (!v || (vl == 4 && memcmp(v, "null", 4) == 0)) return KD_OK;
  if (vl < 2 || v[0] != '"') return kd_fail(KD_ERR_INVALID, "metadata.%s is not a string", what);
  if (!memchr(v, '\\', vl)) {
    if (vl - 2 >= n) return kd_fail(KD_ERR_INVALID, "metadata.%s is longer than %zu bytes", what, n - 1);
    memcpy(out, v + 1, vl - 2);
    out[vl - 2] = '\0';
    return KD_OK;
  }
  json_t *s = json_loadb(v, vl, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  kd_rc rc = KD_OK;
  if (!json_is_string(s)) rc = kd_fail(KD_ERR_INVALID, "metadata.%s is not a valid string", what);
  else if (json_string_length(s) >= n) rc = kd_fail(KD_ERR_INVALID, "metadata.%s is longer than %zu bytes", what, n - 1);
  else if (strlen(json_string_value(s)) != json_string_length(s)) rc = kd_fail(KD_ERR_INVALID, "metadata.%s holds NUL", what);
  else memcpy(out, json_string_value(s), json_string_length(s) + 1);
  json_decref(s);
  return rc;
}

kd_rc backup_meta_scan(const char *item, size_t len, struct backup_meta *m) {
  struct meta_scan s = {0};
  memset(m, 0, sizeof *m);
  kd_rc rc = js_members(item, len, top_member, &s);
  if (rc) return rc;
  if (s.meta && (rc = js_members(s.meta, s.meta_len, meta_member, &s))) return kd_fail_wrap(rc, "metadata");
  if ((rc = js_decode_str(s.name, s.name_len, m->name, sizeof m->name, "name")) ||
      (rc = js_decode_str(s.ns, s.ns_len, m->ns, sizeof m->ns, "namespace")))
    return rc;
  if (s.labels && s.labels_len && s.labels[0] == '{') m->labels = s.labels, m->labels_len = s.labels_len;
  m->has_api_version = s.has_av;
  m->has_kind = s.has_kind;
  m->deleting = s.deleting;
  return KD_OK;
}

kd_rc backup_add_type(const char *item, size_t len, const char *api_version, const char *kind, bool need_api_version,
                      bool need_kind, kd_buf *out) {
  const char *end = item + len, *open = js_ws(item, end);
  if (open >= end || *open != '{') return kd_fail(KD_ERR_PARSE, "not a JSON object");
  const char *rest = open + 1, *next = js_ws(rest, end);
  bool empty = next < end && *next == '}';
  kd_rc rc = kd_buf_add(out, item, (size_t)(rest - item));
  if (rc == KD_OK && need_api_version) {
    if (!(rc = kd_buf_adds(out, "\"apiVersion\":")) && !(rc = bk_json_cstr(out, api_version)) && (need_kind || !empty))
      rc = kd_buf_add(out, ",", 1);
  }
  if (rc == KD_OK && need_kind) {
    if (!(rc = kd_buf_adds(out, "\"kind\":")) && !(rc = bk_json_cstr(out, kind)) && !empty) rc = kd_buf_add(out, ",", 1);
  }
  if (rc == KD_OK) rc = kd_buf_add(out, rest, (size_t)(end - rest));
  return rc;
}

/* Failures that end the backup rather than one resource: the API server or the store is gone,
 * we were cancelled, or no memory. */
static bool bk_rc_fatal(kd_rc rc) {
  return rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT || rc == KD_ERR_CANCELLED || rc == KD_ERR_NOMEM ||
         rc == KD_ERR_UNAUTHORIZED || rc == KD_ERR_HTTP || rc == KD_ERR_IO;
}

static bool bk_stopped(struct bk *b) { return bk_cancelled(b) || joblog_failed(&b->jl); }

/* ---- progress: at most about once a second ---- */

static void *bk_progress(void *arg) {
  struct bk *b = arg;
  long last_t = -1, last_b = -1;
  int64_t next = kd_now_ms() + 1000;
  while (!b->prog_stop) {
    kd_sleep_ms(100, &b->prog_stop);
    if (b->prog_stop || kd_now_ms() < next) continue;
    next = kd_now_ms() + 1000;
    long t = atomic_load(&b->selected), d = atomic_load(&b->backed_up);
    if (t < d) t = d;
    if (t == last_t && d == last_b) continue;
    json_t *st = json_pack("{s:{s:I,s:I}}", "progress", "totalItems", (json_int_t)t, "itemsBackedUp", (json_int_t)d);
    kd_rc rc = st ? bk_status(b, st, vstatus_in_progress, 0) : KD_ERR_NOMEM;
    json_decref(st);
    if (rc == KD_OK) last_t = t, last_b = d;
    else kd_log(KD_LOG_WARN, "backup %s/%s: progress not recorded: %s", b->ns, b->name, kd_errmsg());
  }
  return NULL;
}

/* Stop the progress writer, if it runs, and wait for it. */
void bk_stop_progress(struct bk *b) {
  if (!b->prog_started) return;
  b->prog_stop = 1;
  pthread_join(b->prog, NULL);
  b->prog_started = false;
}

/* ---- listing ---- */

/* LIST res (ns NULL: all namespaces) page by page, handing each item's exact bytes to fn. */
kd_rc bk_list(struct bk *b, const struct kube_res *res, const char *ns, const char *label_sel,
              const char *field_sel, bk_raw_fn fn, void *ud) {
  struct kube_list_opts lo = {label_sel, field_sel, BK_PAGE, NULL};
  return kube_list_stream(b->c, res, ns, &lo, fn, ud, NULL);
}

/* ---- item actions and writing ---- */

static struct bk_type *bk_type_by_gr(struct bk *b, const char *gr) {
  for (size_t i = 0; i < b->ntypes; i++)
    if (strcmp(b->types[i].gr, gr) == 0) return &b->types[i];
  return NULL;
}

/* queue an object an action adds (once) */
static kd_rc bk_queue(struct bk *b, const char *gr, const char *ns, const char *name) {
  struct bk_type *t = bk_type_by_gr(b, gr);
  if (!name || !name[0]) return KD_OK;
  if (!t) {
    joblog_note(&b->jl, JOBLOG_WARN, ns && ns[0] ? ns : "", "%s %s%s%s is related to a backed-up object but %s is not served", gr,
            ns ? ns : "", ns && ns[0] ? "/" : "", name, gr);
    return KD_OK;
  }
  char key[1200];
  snprintf(key, sizeof key, "%s|%s|%s", gr, ns ? ns : "", name);
  kd_rc rc = KD_OK;
  pthread_mutex_lock(&b->mu);
  if (!json_object_get(b->queued, key)) {
    if (b->nrel == b->caprel) {
      size_t nc = b->caprel ? b->caprel * 2 : 32;
      struct bk_rel *nr = realloc(b->rel, nc * sizeof *nr);
      if (!nr) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
        goto done;
      }
      b->rel = nr, b->caprel = nc;
    }
    struct bk_rel *r = &b->rel[b->nrel];
    r->type = (size_t)(t - b->types);
    r->ns = strdup(ns ? ns : "");
    r->name = strdup(name);
    if (!r->ns || !r->name || json_object_set_new(b->queued, key, json_true())) {
      free(r->ns);
      free(r->name);
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto done;
    }
    b->nrel++;
  }
done:
  pthread_mutex_unlock(&b->mu);
  return rc;
}

/* Velero's PodAction: the pod's PVCs and its PriorityClass. */
static kd_rc bk_pod_action(struct bk *b, json_t *pod, const char *ns) {
  json_t *spec = json_object_get(pod, "spec");
  kd_rc rc = bk_queue(b, "priorityclasses.scheduling.k8s.io", "", bk_cstr(json_object_get(spec, "priorityClassName")));
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(spec, "volumes"), i, v) {
    if (rc) break;
    rc = bk_queue(b, "persistentvolumeclaims", ns, bk_cstr(json_object_get(json_object_get(v, "persistentVolumeClaim"), "claimName")));
  }
  return rc;
}

/* Velero's PVCAction on a bound claim: drop dataSource, dataSourceRef, the selector (unless
 * storageClassName is ""), stale Velero labels; the PV comes along. */
static kd_rc bk_pvc_action(struct bk *b, json_t *pvc, bool *changed) {
  json_t *spec = json_object_get(pvc, "spec"), *meta = json_object_get(pvc, "metadata");
  const char *vol = bk_cstr(json_object_get(spec, "volumeName"));
  *changed = false;
  if (!kd_streq(bk_cstr(json_object_get(json_object_get(pvc, "status"), "phase")), "Bound") || !vol || !vol[0])
    return KD_OK;
  if (json_object_get(spec, "dataSource")) *changed = true, json_object_del(spec, "dataSource");
  if (json_object_get(spec, "dataSourceRef")) *changed = true, json_object_del(spec, "dataSourceRef");
  json_t *scn = json_object_get(spec, "storageClassName");
  if (!json_is_string(scn) || json_string_length(scn) != 0) {
    if (json_object_get(spec, "selector")) *changed = true, json_object_del(spec, "selector");
  }
  json_t *ml = json_object_get(json_object_get(spec, "selector"), "matchLabels");
  const char *k;
  json_t *v, *tmp;
  json_object_foreach_safe(ml, tmp, k, v) {
    if (strncmp(k, "velero.io/", 10) == 0) *changed = true, json_object_del(ml, k);
  }
  json_t *labels = json_object_get(meta, "labels");
  json_object_foreach_safe(labels, tmp, k, v) {
    bool drop = strcmp(k, VELERO_LABEL_RESTORE_NAME) == 0 || strcmp(k, "backup.velero.io/must-include-additional-items") == 0 ||
                strcmp(k, "velero.io/volume-snapshot-name") == 0 ||
                (strcmp(k, VELERO_LABEL_BACKUP_NAME) == 0 && !kd_streq(json_string_value(v), b->name));
    if (drop) *changed = true, json_object_del(labels, k);
  }
  return bk_queue(b, "persistentvolumes", "", vol);
}

/* itemInclusionChecks (mustInclude false) for an object of t. */
static bool bk_included(struct bk *b, struct bk_type *t, const struct backup_meta *m, json_t *labels) {
  if (kd_streq(json_string_value(json_object_get(labels, VELERO_LABEL_EXCLUDE)), "true")) {
    joblog_note(&b->jl, JOBLOG_INFO, m->ns, "Excluding %s %s%s%s because it has label %s=true", t->gr, m->ns, m->ns[0] ? "/" : "",
            m->name, VELERO_LABEL_EXCLUDE);
    return false;
  }
  if (m->ns[0] && !backup_filter_namespace(b->filter, m->ns)) return false;
  if (!m->ns[0] && t->special != T_NS && backup_filter_excludes(b->filter, t->gr)) return false;
  if (m->ns[0] && !backup_filter_includes(b->filter, t->gr)) return false;
  if (m->deleting) {
    joblog_note(&b->jl, JOBLOG_INFO, m->ns, "Skipping %s %s%s%s because it's being deleted", t->gr, m->ns, m->ns[0] ? "/" : "", m->name);
    return false;
  }
  return true;
}

/* The archive writer's output (called with b->mu held, or alone at close). A store failure is
 * remembered with its own message: whatever its code (a dead gateway, 403 after a key was
 * revoked, NoSuchUpload, too many parts), it ends the backup (bk_store_fatal); it is never an
 * error of the object being added. The archive writer stops at its first failure, so this
 * runs no more after one. */
static kd_rc bk_tar_store(const void *p, size_t n, void *ud) {
  struct bk *b = ud;
  if (EVP_DigestUpdate(b->tar_sha, p, n) != 1) return kd_fail(KD_ERR_NOMEM, "sha256 failed");
  b->tar_bytes += n;
  kd_rc rc = objstore_writer_write(b->tw, p, n);
  if (rc == KD_OK) return KD_OK;
  rc = kd_fail_wrap(rc, "writing %s", b->keys[F_TAR]);
  if (!atomic_load(&b->store_failed)) {
    b->store_rc = rc;
    snprintf(b->store_msg, sizeof b->store_msg, "%s", kd_errmsg());
    atomic_store(&b->store_failed, 1);
  }
  return rc;
}

/* The archive writer's output: through the encrypting writer when the backup is encrypted (its
 * sealed chunks then reach bk_tar_store), straight to bk_tar_store otherwise. The checksum is
 * over the stored bytes. */
static kd_rc bk_tar_out(const void *p, size_t n, void *ud) {
  struct bk *b = ud;
  return b->cw ? crypt_writer_write(b->cw, p, n) : bk_tar_store(p, n, b);
}

/* After a failed archive write: when the store failed under it, end the backup with the
 * store's message and return true. */
static bool bk_store_fatal(struct bk *b) {
  if (!atomic_load(&b->store_failed)) return false;
  joblog_fail(&b->jl, b->store_rc, "storage location %s: %s", b->bsl_name, b->store_msg);
  return true;
}

static bool bk_dedup_type(enum bk_special s) {
  return s == T_PVC || s == T_PV || s == T_CRB || s == T_CROLE || s == T_PCLASS || s == T_CRD || s == T_NS;
}

/* Back up one object of t that passed the selection: inclusion checks, actions, the archive.
 * A problem with this object alone is noted and KD_OK returned; only a failure that ends the
 * backup is returned. scratch: the caller's buffer. */
static kd_rc bk_backup_item(struct bk *b, struct bk_type *t, const char *raw, size_t len, const struct backup_meta *m,
                            json_t *labels, kd_buf *scratch) {
  kd_rc rc = KD_OK;
  json_t *full = NULL;
  char *edited = NULL;
  char key[1200];
  const char *where = m->ns;
  if (!bk_included(b, t, m, labels)) return KD_OK;
  snprintf(key, sizeof key, "%s|%s|%s", t->gr, m->ns, m->name);
  if (bk_dedup_type(t->special)) {
    pthread_mutex_lock(&b->mu);
    bool seen = json_object_get(b->written, key) != NULL;
    pthread_mutex_unlock(&b->mu);
    if (seen) return KD_OK;
  }
  if (t->special == T_POD || t->special == T_PVC) {
    if (!(full = json_loadb(raw, len, JSON_ALLOW_NUL, NULL))) {
      joblog_note(&b->jl, JOBLOG_ERROR, where, "%s %s/%s: the object cannot be parsed", t->gr, m->ns, m->name);
      return KD_OK;
    }
    bool changed = false;
    rc = t->special == T_POD ? bk_pod_action(b, full, m->ns) : bk_pvc_action(b, full, &changed);
    if (rc) goto done;
    if (changed) {
      if (!(edited = json_dumps(full, JSON_COMPACT))) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
        goto done;
      }
      raw = edited, len = strlen(edited);
    }
  } else if (t->special == T_SA) {
    char sa[800];
    snprintf(sa, sizeof sa, "%s/%s", m->ns, m->name);
    pthread_mutex_lock(&b->mu);
    int e = json_object_set_new(b->sa_set, sa, json_true());
    pthread_mutex_unlock(&b->mu);
    if (e) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto done;
    }
  }
  kd_buf_reset(scratch);
  if ((rc = backup_add_type(raw, len, t->api_version, t->res.kind, !m->has_api_version, !m->has_kind,
                            scratch))) {
    joblog_note(&b->jl, JOBLOG_ERROR, where, "%s %s/%s: %s", t->gr, m->ns, m->name, kd_errmsg());
    rc = KD_OK;
    goto done;
  }
  pthread_mutex_lock(&b->mu);
  if (bk_dedup_type(t->special)) {
    if (json_object_get(b->written, key)) {
      pthread_mutex_unlock(&b->mu);
      goto done;
    }
    if (json_object_set_new(b->written, key, json_true())) {
      pthread_mutex_unlock(&b->mu);
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto done;
    }
  }
  rc = archive_writer_add_object(b->aw, t->gr, t->res.version, m->ns[0] ? m->ns : NULL, m->name, scratch->data, scratch->len);
  if (rc == KD_OK) rc = backup_reslist_add(b->rl, t->rl_type, m->ns, m->name);
  pthread_mutex_unlock(&b->mu);
  if (rc && bk_store_fatal(b)) goto done;
  if (rc == KD_ERR_INVALID) {
    joblog_note(&b->jl, JOBLOG_ERROR, where, "%s %s/%s cannot be stored: %s", t->gr, m->ns, m->name, kd_errmsg());
    rc = KD_OK;
    goto done;
  }
  if (rc) goto done;
  atomic_fetch_add(&t->items, 1);
  atomic_fetch_add(&b->backed_up, 1);
done:
  free(edited);
  json_decref(full);
  return rc;
}

/* ---- LIST tasks ---- */

struct bk_lctx {
  struct bk *b;
  struct bk_type *t;
  size_t group;
  kd_buf scratch;
  char last[800]; /* "ns/name" of the last item seen (items come in key order) */
  const char *skip; /* after a 410 restart: items up to this key were seen already */
  long seen;
  /* related objects: the one wanted */
  const char *want_ns, *want_name;
  int found;
};

/* the labels of m as JSON (NULL when none); *bad when they cannot be read */
static json_t *bk_labels(const struct backup_meta *m, bool *bad) {
  *bad = false;
  if (!m->labels) return NULL;
  json_t *l = json_loadb(m->labels, m->labels_len, JSON_ALLOW_NUL, NULL);
  if (!json_is_object(l)) *bad = true;
  return l;
}

/* Does an object with labels belong to this LIST's selector group? Everything when there is
 * no selector; else it must match one selector, and with merged groups the first group that
 * matches owns it (the earlier LIST already wrote it). */
static bool bk_selected(const struct bk *b, json_t *labels, size_t group) {
  if (b->nsels == 0) return true;
  size_t best = SIZE_MAX;
  if (b->sel_index) { /* one lookup per label, whatever the number of selectors */
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) {
      char key[600];
      json_t *g = json_object_get(b->sel_index, k);
      if (g && (size_t)json_integer_value(g) < best) best = (size_t)json_integer_value(g);
      if (!json_is_string(v) || (size_t)snprintf(key, sizeof key, "%s=%s", k, json_string_value(v)) >= sizeof key) continue;
      if ((g = json_object_get(b->sel_index, key)) && (size_t)json_integer_value(g) < best) best = (size_t)json_integer_value(g);
    }
  } else {
    for (size_t i = 0; i < b->nsels; i++)
      if (b->sel_group[i] < best && backup_selector_matches(b->sels[i], labels)) best = b->sel_group[i];
  }
  if (best == SIZE_MAX) return false;
  return b->ngroups == 1 || best == group;
}

/* Track namespace ns: its Namespace object is backed up at the end. KD_ERR_NOMEM only. */
kd_rc bk_track_ns(struct bk *b, const char *ns) {
  pthread_mutex_lock(&b->mu);
  int e = json_object_get(b->tracked_ns, ns) ? 0 : json_object_set_new(b->tracked_ns, ns, json_true());
  pthread_mutex_unlock(&b->mu);
  return e ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
}

/* read one listed item's metadata; false (noted) when it cannot be handled */
static bool bk_read_item(struct bk *b, struct bk_type *t, const char *raw, size_t len, struct backup_meta *m) {
  if (len > BK_ITEM_MAX) {
    joblog_note(&b->jl, JOBLOG_ERROR, NULL, "%s: an object of %zu bytes is larger than %u bytes and was skipped", t->gr, len,
            (unsigned)BK_ITEM_MAX);
    return false;
  }
  if (backup_meta_scan(raw, len, m) != KD_OK) {
    joblog_note(&b->jl, JOBLOG_ERROR, NULL, "%s: an object that cannot be read was skipped: %s", t->gr, kd_errmsg());
    return false;
  }
  if (!m->name[0]) {
    joblog_note(&b->jl, JOBLOG_ERROR, m->ns[0] ? m->ns : NULL, "%s: an object without a name was skipped", t->gr);
    return false;
  }
  return true;
}

static kd_rc bk_on_item(const char *raw, size_t len, void *ud) {
  struct bk_lctx *x = ud;
  struct bk *b = x->b;
  struct bk_type *t = x->t;
  struct backup_meta m;
  if (bk_stopped(b)) return kd_fail(KD_ERR_CANCELLED, "stopped");
  x->seen++;
  if (!bk_read_item(b, t, raw, len, &m)) return KD_OK;
  char key[800];
  snprintf(key, sizeof key, "%s%s%s", m.ns, m.ns[0] ? "/" : "", m.name);
  if (x->skip && strcmp(key, x->skip) <= 0) return KD_OK;
  memcpy(x->last, key, sizeof key);
  if (t->res.namespaced && !backup_filter_namespace(b->filter, m.ns)) return KD_OK;
  bool bad = false;
  json_t *labels = NULL;
  /* without selectors the labels matter only for velero.io/exclude-from-backup: skip parsing
   * them when that key cannot be there (no escape can spell it either) */
  if (b->nsels || (m.labels && (memmem(m.labels, m.labels_len, "exclude-from-backup", 19) ||
                                memchr(m.labels, '\\', m.labels_len))))
    labels = bk_labels(&m, &bad);
  kd_rc rc = KD_OK;
  if (bad) {
    joblog_note(&b->jl, JOBLOG_ERROR, m.ns[0] ? m.ns : "", "%s %s: its labels cannot be read; skipped", t->gr, key);
    goto done;
  }
  if (!bk_selected(b, labels, x->group)) goto done;
  if (m.ns[0] && (rc = bk_track_ns(b, m.ns))) goto done;
  atomic_fetch_add(&b->selected, 1);
  rc = bk_backup_item(b, t, raw, len, &m, labels, &x->scratch);
done:
  json_decref(labels);
  return rc;
}

static void bk_run_task(struct bk *b, const struct bk_task *k) {
  struct bk_lctx x = {.b = b, .t = &b->types[k->type], .group = k->group};
  char skip[800];
  kd_rc rc = KD_OK;
  kd_buf_init(&x.scratch, BK_ITEM_MAX + 4096);
  for (int restart = 0;; restart++) {
    rc = bk_list(b, &x.t->res, k->ns, b->groups[k->group].server, NULL, bk_on_item, &x);
    if (rc == KD_ERR_GONE && restart < BK_GONE_RESTARTS && !bk_stopped(b)) {
      /* the continue token expired: list again, skipping what was seen (key order) */
      memcpy(skip, x.last, sizeof skip);
      x.skip = skip[0] ? skip : NULL;
      joblog_note(&b->jl, JOBLOG_INFO, NULL, "listing %s again after its continue token expired", x.t->gr);
      continue;
    }
    break;
  }
  kd_buf_free(&x.scratch);
  if (rc == KD_OK) {
    if (x.seen)
      joblog_note(&b->jl, JOBLOG_INFO, NULL, "Listed %s%s%s: %ld items", x.t->gr, k->ns ? " in namespace " : "", k->ns ? k->ns : "", x.seen);
  } else if (bk_cancelled(b) || joblog_failed(&b->jl)) {
    /* already being stopped */
  } else if (bk_rc_fatal(rc)) {
    joblog_fail(&b->jl, rc, "listing %s: %s", x.t->gr, kd_errmsg());
  } else {
    joblog_note(&b->jl, JOBLOG_ERROR, k->ns ? k->ns : NULL, "Error listing %s%s%s: %s", x.t->gr, k->ns ? " in namespace " : "",
            k->ns ? k->ns : "", kd_errmsg());
  }
}

static void *bk_worker(void *arg) {
  struct bk *b = arg;
  while (!bk_stopped(b)) {
    size_t i = atomic_fetch_add(&b->next_task, 1);
    if (i >= b->ntasks) break;
    bk_run_task(b, &b->tasks[i]);
  }
  return NULL;
}

/* ---- objects the actions add, CRDs, namespaces ---- */

static kd_rc bk_on_related(const char *raw, size_t len, void *ud) {
  struct bk_lctx *x = ud;
  struct bk *b = x->b;
  struct backup_meta m;
  if (bk_stopped(b)) return kd_fail(KD_ERR_CANCELLED, "stopped");
  if (!bk_read_item(b, x->t, raw, len, &m)) return KD_OK;
  if (strcmp(m.name, x->want_name) != 0 || (x->t->res.namespaced && strcmp(m.ns, x->want_ns) != 0)) return KD_OK;
  x->found++;
  bool bad;
  json_t *labels = bk_labels(&m, &bad);
  kd_rc rc = KD_OK;
  if (bad) joblog_note(&b->jl, JOBLOG_ERROR, m.ns[0] ? m.ns : "", "%s %s: its labels cannot be read; skipped", x->t->gr, m.name);
  else {
    atomic_fetch_add(&b->selected, 1);
    rc = bk_backup_item(b, x->t, raw, len, &m, labels, &x->scratch);
  }
  json_decref(labels);
  return rc;
}

/* fields.EscapeValue: \ , = escaped with a backslash */
static void bk_field_value(char *out, size_t n, const char *v) {
  size_t j = 0;
  for (; *v && j + 3 < n; v++) {
    if (*v == '\\' || *v == ',' || *v == '=') out[j++] = '\\';
    out[j++] = *v;
  }
  out[j] = '\0';
}

/* Fetch and back up every queued related object not handled yet (the queue may grow). */
static kd_rc bk_do_related(struct bk *b, size_t *done) {
  kd_rc rc = KD_OK;
  struct bk_lctx x = {.b = b};
  kd_buf_init(&x.scratch, BK_ITEM_MAX + 4096);
  for (; *done < b->nrel; (*done)++) {
    if (bk_stopped(b)) break;
    struct bk_rel r = b->rel[*done];
    x.t = &b->types[r.type];
    char key[1200], fsel[700], fv[600];
    snprintf(key, sizeof key, "%s|%s|%s", x.t->gr, x.t->res.namespaced ? r.ns : "", r.name);
    if (json_object_get(b->written, key)) continue;
    bk_field_value(fv, sizeof fv, r.name);
    snprintf(fsel, sizeof fsel, "metadata.name=%s", fv);
    x.want_ns = r.ns, x.want_name = r.name, x.found = 0;
    rc = bk_list(b, &x.t->res, x.t->res.namespaced ? r.ns : NULL, NULL, fsel, bk_on_related, &x);
    if (rc && !bk_stopped(b)) {
      if (bk_rc_fatal(rc)) {
        joblog_fail(&b->jl, rc, "getting %s %s: %s", x.t->gr, r.name, kd_errmsg());
        break;
      }
      joblog_note(&b->jl, JOBLOG_ERROR, x.t->res.namespaced ? r.ns : "", "Error getting %s %s%s%s: %s", x.t->gr, r.ns, r.ns[0] ? "/" : "",
              r.name, kd_errmsg());
    } else if (rc == KD_OK && !x.found && x.t->special == T_CRD) {
      joblog_note(&b->jl, JOBLOG_INFO, NULL, "No CRD found for %s", r.name); /* a built-in type: nothing to add */
    } else if (rc == KD_OK && !x.found) {
      joblog_note(&b->jl, JOBLOG_WARN, x.t->res.namespaced ? r.ns : "", "%s %s%s%s was not found in Kubernetes API, can't back it up",
              x.t->gr, r.ns, r.ns[0] ? "/" : "", r.name);
    }
    rc = KD_OK;
  }
  kd_buf_free(&x.scratch);
  return rc;
}

/* ServiceAccountAction: ClusterRoleBindings naming a backed-up ServiceAccount, and their roles */
static kd_rc bk_on_crb(const char *raw, size_t len, void *ud) {
  struct bk_lctx *x = ud;
  struct bk *b = x->b;
  if (bk_stopped(b)) return kd_fail(KD_ERR_CANCELLED, "stopped");
  json_t *crb = json_loadb(raw, len, JSON_ALLOW_NUL, NULL);
  const char *name = bk_cstr(json_object_get(json_object_get(crb, "metadata"), "name"));
  kd_rc rc = KD_OK;
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(crb, "subjects"), i, s) {
    const char *kind = bk_cstr(json_object_get(s, "kind")), *sns = bk_cstr(json_object_get(s, "namespace")),
               *sname = bk_cstr(json_object_get(s, "name"));
    char sa[600];
    if (!kd_streq(kind, "ServiceAccount") || !sname) continue;
    snprintf(sa, sizeof sa, "%s/%s", sns ? sns : "", sname);
    if (!json_object_get(b->sa_set, sa)) continue;
    if (!(rc = bk_queue(b, x->t->gr, "", name)))
      rc = bk_queue(b, "clusterroles.rbac.authorization.k8s.io", "", bk_cstr(json_object_get(json_object_get(crb, "roleRef"), "name")));
    break;
  }
  json_decref(crb);
  return rc;
}

static kd_rc bk_sa_related(struct bk *b) {
  struct bk_type *t = bk_type_by_gr(b, "clusterrolebindings.rbac.authorization.k8s.io");
  if (!t || json_object_size(b->sa_set) == 0) return KD_OK;
  struct bk_lctx x = {.b = b, .t = t};
  kd_rc rc = bk_list(b, &t->res, NULL, NULL, NULL, bk_on_crb, &x);
  if (rc && !bk_stopped(b)) {
    if (bk_rc_fatal(rc)) joblog_fail(&b->jl, rc, "listing ClusterRoleBindings: %s", kd_errmsg());
    else joblog_note(&b->jl, JOBLOG_ERROR, NULL, "Error listing ClusterRoleBindings for the ServiceAccount action: %s", kd_errmsg());
  }
  return KD_OK;
}

static kd_rc bk_on_ns(const char *raw, size_t len, void *ud) {
  struct bk_lctx *x = ud;
  struct bk *b = x->b;
  struct backup_meta m;
  if (bk_stopped(b)) return kd_fail(KD_ERR_CANCELLED, "stopped");
  if (!bk_read_item(b, x->t, raw, len, &m)) return KD_OK;
  if (!json_object_get(b->tracked_ns, m.name)) return KD_OK;
  bool bad;
  json_t *labels = bk_labels(&m, &bad);
  kd_rc rc = KD_OK;
  if (bad) joblog_note(&b->jl, JOBLOG_ERROR, "", "namespaces %s: its labels cannot be read; skipped", m.name);
  else {
    atomic_fetch_add(&b->selected, 1);
    rc = bk_backup_item(b, x->t, raw, len, &m, labels, &x->scratch);
  }
  json_decref(labels);
  return rc;
}

static kd_rc bk_namespaces(struct bk *b) {
  struct bk_type *t = bk_type_by_gr(b, "namespaces");
  if (!t || !backup_filter_includes(b->filter, "namespaces")) return KD_OK;
  struct bk_lctx x = {.b = b, .t = t};
  kd_buf_init(&x.scratch, BK_ITEM_MAX + 4096);
  kd_rc rc = bk_list(b, &t->res, NULL, NULL, NULL, bk_on_ns, &x);
  kd_buf_free(&x.scratch);
  if (rc && !bk_stopped(b)) {
    if (bk_rc_fatal(rc)) joblog_fail(&b->jl, rc, "listing namespaces: %s", kd_errmsg());
    else joblog_note(&b->jl, JOBLOG_ERROR, NULL, "Error listing namespaces: %s", kd_errmsg());
  }
  return KD_OK;
}

/* The tarball, from the first LIST to the committed file (see backup_int.h). */
kd_rc bk_stream(struct bk *b) {
  kd_rc rc = KD_OK;
  pthread_t *th = NULL;
  size_t nth = 0, done = 0;
  if ((rc = objstore_writer_open(b->job->store, b->keys[F_TAR], &b->tw))) {
    joblog_fail(&b->jl, rc, "opening %s: %s", b->keys[F_TAR], kd_errmsg());
    goto fail;
  }
  if (EVP_DigestInit_ex(b->tar_sha, EVP_sha256(), NULL) != 1) {
    joblog_fail(&b->jl, KD_ERR_NOMEM, "sha256 failed");
    goto fail;
  }
  if (b->dek && (rc = crypt_writer_open(b->dek, b->keys[F_TAR], bk_tar_store, b, &b->cw))) {
    if (!bk_store_fatal(b)) joblog_fail(&b->jl, rc, "starting the encrypted tarball: %s", kd_errmsg());
    goto fail;
  }
  if ((rc = archive_writer_open(bk_tar_out, b, b->gz_level, &b->aw))) {
    joblog_fail(&b->jl, rc, "starting the archive: %s", kd_errmsg());
    goto fail;
  }
  b->prog_started = pthread_create(&b->prog, NULL, bk_progress, b) == 0;
  size_t si;
  json_t *sk;
  json_array_foreach(b->disc_skipped, si, sk) /* never Completed with a group silently missing */
    joblog_note(&b->jl, JOBLOG_ERROR, NULL, "discovery: the API server could not serve %s, so none of its resources are "
                "in this backup: %s", bk_cstr(json_object_get(sk, "groupVersion")), bk_cstr(json_object_get(sk, "error")));
  joblog_note(&b->jl, JOBLOG_INFO, NULL, "Backing up to %s (%zu LISTs of %zu resource types)", objstore_describe(b->job->store), b->ntasks,
          b->ntypes);
  bk_note_missing_namespaces(b);
  size_t want = b->job->list_concurrency > 0 ? (size_t)b->job->list_concurrency : 4;
  if (want > 64) want = 64;
  if (want > b->ntasks) want = b->ntasks;
  if (want && !(th = calloc(want, sizeof *th))) {
    joblog_fail(&b->jl, KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (; nth < want; nth++)
    if (pthread_create(&th[nth], NULL, bk_worker, b) != 0) break;
  if (want && !nth) bk_worker(b); /* no thread could start: list here */
  for (size_t i = 0; i < nth; i++) pthread_join(th[i], NULL);
  if (bk_stopped(b)) goto fail;
  bk_mark(b, "lists done");
  bk_sa_related(b);
  bk_do_related(b, &done);
  if (bk_stopped(b)) goto fail;
  /* the CRDs of custom resources in the backup, fetched by name, when CRDs are neither
   * included nor excluded (backup_filter_adds_crds says where Velero decides this) */
  const char *crd = "customresourcedefinitions.apiextensions.k8s.io";
  if (bk_type_by_gr(b, crd) && backup_filter_adds_crds(b->filter)) {
    for (size_t i = 0; i < b->ntypes; i++)
      if (b->types[i].res.group[0] && atomic_load(&b->types[i].items) > 0 &&
          (rc = bk_queue(b, crd, "", b->types[i].gr))) {
        joblog_fail(&b->jl, rc, "%s", kd_errmsg());
        goto fail;
      }
    bk_do_related(b, &done);
  }
  bk_mark(b, "related objects done");
  bk_namespaces(b);
  if (bk_stopped(b)) goto fail;

  bk_mark(b, "namespaces done");
  rc = archive_writer_close(b->aw);
  b->aw = NULL;
  if (rc) {
    if (!bk_store_fatal(b)) joblog_fail(&b->jl, rc, "finishing the archive: %s", kd_errmsg());
    goto fail;
  }
  if (b->cw) { /* the last chunk, sealed as the last */
    rc = crypt_writer_close(b->cw);
    b->cw = NULL;
    if (rc) {
      if (!bk_store_fatal(b)) joblog_fail(&b->jl, rc, "finishing the encrypted tarball: %s", kd_errmsg());
      goto fail;
    }
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dl = 0;
  EVP_DigestFinal_ex(b->tar_sha, d, &dl);
  bk_hex(d, dl, b->sums[F_TAR]);
  b->sizes[F_TAR] = b->tar_bytes;
  b->committed[F_TAR] = true; /* may exist from now on, whatever the commit answers */
  rc = objstore_writer_commit(b->tw);
  b->tw = NULL;
  if (rc) {
    joblog_fail(&b->jl, rc, "storage location %s: storing %s: %s", b->bsl_name, b->keys[F_TAR], kd_errmsg());
    goto fail;
  }
  b->committed[F_TAR] = true;
  bk_stop_progress(b);
  free(th);
  return KD_OK;
fail:
  bk_stop_progress(b);
  free(th);
  return joblog_fail_rc(&b->jl) ? joblog_fail_rc(&b->jl) : KD_ERR_CANCELLED;
}
