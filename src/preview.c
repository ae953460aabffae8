/* preview.c — `kcmdr restore create --dry-run` and `kcmdr backup diff` (see preview.h).
 *
 * The restore preview is not a second implementation of a restore: it hands the Restore it would
 * create to restore_execute with a restore_dry_run, and only collects and prints the verdicts
 * the execution reports. Diffs are computed here, in the workers' callback, from the two objects
 * the execution passes (diff.h), so nothing but the text is kept per object. */
#include "preview.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "backup.h"
#include "crypt.h"
#include "diff.h"
#include "engine.h"
#include "joblog.h"
#include "velero.h"
#include "verify.h"

#define PV_MAX_ENTRIES 2000000    /* objects reported by one preview (the restore's own cap) */
#define PV_MAX_DIFF_TOTAL (256u << 20) /* diff text kept for one preview */
#define PV_MAX_BACKUP_OBJECTS 500000 /* objects of one backup compared by backup diff */
#define PV_MAX_BACKUP_BYTES (512u << 20) /* their JSON, all kept in memory by backup diff */
#define PV_MAX_ADDED 500000        /* objects added since a backup, listed by backup diff */

const char *preview_action(enum restore_verdict v) {
  switch (v) {
  case RESTORE_V_CREATE: return "create";
  case RESTORE_V_UPDATE: return "update";
  case RESTORE_V_UNCHANGED: return "unchanged";
  case RESTORE_V_CONFLICT: return "conflict";
  case RESTORE_V_SKIP: return "skip";
  case RESTORE_V_FAIL: return "fail";
  }
  return "?";
}

/* Every write to the location is refused: a preview leaves the bucket as it was. */
static kd_rc pv_no_writes(void *ud) {
  (void)ud;
  return kd_fail(KD_ERR_UNSUPPORTED, "a preview writes nothing to the storage location");
}

/* The location of backup as the engine finds it (engine.c bsl_of): spec.storageLocation, else
 * the default one (spec.default, the first by name). *bsl NULL when there is none. */
struct pv_default {
  json_t *found;
};
static bool pv_default_bsl(json_t *b, void *ud) {
  struct pv_default *d = ud;
  if (json_is_true(json_object_get(json_object_get(b, "spec"), "default")) &&
      (!d->found || strcmp(cli_meta_s(b, "name"), cli_meta_s(d->found, "name")) < 0)) {
    json_decref(d->found);
    d->found = json_incref(b);
  }
  return true;
}

static kd_rc pv_bsl_of(kube_client *c, const char *ns, json_t *backup, json_t **bsl) {
  const char *want = cli_spec_s(backup, "storageLocation");
  *bsl = NULL;
  if (want && want[0]) {
    kd_rc rc = kube_get(c, &cli_res_bsl, ns, want, bsl);
    return rc == KD_ERR_NOTFOUND ? KD_OK : rc;
  }
  struct pv_default d = {NULL};
  struct kube_list_opts lo = {0};
  kd_rc rc = kube_list(c, &cli_res_bsl, ns, &lo, pv_default_bsl, &d, NULL);
  if (rc) {
    json_decref(d.found);
    return rc;
  }
  *bsl = d.found;
  return KD_OK;
}

/* A diff's text on stdout, line by line (cli_printf shows a control character in a value as '?',
 * the line ends included). */
static void pv_print_diff(const char *d) {
  cli_printf(stdout, "\n");
  while (*d) {
    const char *nl = strchr(d, '\n');
    int n = nl ? (int)(nl - d) : (int)strlen(d);
    cli_printf(stdout, "%.*s\n", n, d);
    d += n + (nl ? 1 : 0);
  }
}

/* ---- restore preview ---- */

struct pv_entry {
  size_t order, seq;
  char *gr, *ns, *name, *reason, *diff;
  enum restore_verdict v;
};

struct pv {
  pthread_mutex_t mu;
  struct pv_entry *e;
  size_t n, cap, diff_bytes;
  bool want_diff;
  bool lost; /* an entry could not be kept (memory, cap): the preview fails */
};

static void pv_verdict(const struct restore_verdict_info *vi, void *ud) {
  struct pv *p = ud;
  char *diff = NULL;
  if (p->want_diff && (vi->verdict == RESTORE_V_UPDATE || vi->verdict == RESTORE_V_CONFLICT) && vi->live && vi->after) {
    char la[700], lb[700];
    kd_buf b = KD_BUF_INIT(DIFF_MAX_OUT);
    snprintf(la, sizeof la, "cluster/%s/%s%s%s", vi->gr, vi->ns, vi->ns[0] ? "/" : "", vi->name);
    snprintf(lb, sizeof lb, "restore/%s/%s%s%s", vi->gr, vi->ns, vi->ns[0] ? "/" : "", vi->name);
    if (diff_objects(vi->live, vi->after, la, lb, &b, NULL) == KD_OK) diff = kd_buf_steal(&b);
    else diff = strdup("(no diff: it could not be computed)\n");
    kd_buf_free(&b);
  }
  pthread_mutex_lock(&p->mu);
  size_t dl = diff ? strlen(diff) : 0;
  if (p->n == p->cap && p->n < PV_MAX_ENTRIES) {
    size_t nc = p->cap ? p->cap * 2 : 256;
    struct pv_entry *ne = realloc(p->e, nc * sizeof *ne);
    if (ne) p->e = ne, p->cap = nc;
  }
  if (p->n == p->cap || p->diff_bytes + dl > PV_MAX_DIFF_TOTAL) {
    p->lost = true;
    free(diff);
  } else {
    struct pv_entry *e = &p->e[p->n];
    *e = (struct pv_entry){vi->order, p->n, strdup(vi->gr), strdup(vi->ns), strdup(vi->name),
                           vi->reason ? strdup(vi->reason) : NULL, diff, vi->verdict};
    if (!e->gr || !e->ns || !e->name || (vi->reason && !e->reason)) p->lost = true;
    p->diff_bytes += dl;
    p->n++;
  }
  pthread_mutex_unlock(&p->mu);
}

static int pv_cmp(const void *a, const void *b) {
  const struct pv_entry *x = a, *y = b;
  if (x->order != y->order) return x->order < y->order ? -1 : 1;
  /* a namespace made for an object comes before the object */
  bool xn = strcmp(x->gr, "namespaces") == 0, yn = strcmp(y->gr, "namespaces") == 0;
  if (xn != yn) return xn ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void pv_free(struct pv *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->e[i].gr);
    free(p->e[i].ns);
    free(p->e[i].name);
    free(p->e[i].reason);
    free(p->e[i].diff);
  }
  free(p->e);
  pthread_mutex_destroy(&p->mu);
}

int preview_restore(kube_client *c, const char *ns, json_t *restore, json_t *modifiers, bool diff, enum cli_output fmt) {
  json_t *backup = NULL, *bsl = NULL, *verrors = json_array(), *objects = NULL, *doc = NULL;
  objstore *st = NULL;
  char store_error[1200] = "";
  struct pv p = {.want_diff = diff};
  struct restore_dry_run dry = {pv_verdict, &p, verrors, NULL, modifiers};
  struct restore_result res = {0};
  cli_table *t = NULL;
  long count[RESTORE_V_FAIL + 1] = {0};
  int ret = CLI_FAIL;
  kd_rc rc;
  pthread_mutex_init(&p.mu, NULL);
  if (!verrors) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail_msg;
  }
  const char *bname = cli_spec_s(restore, "backupName");
  rc = bname && bname[0] ? kube_get(c, &cli_res_backup, ns, bname, &backup) : KD_ERR_NOTFOUND;
  if (rc == KD_ERR_NOTFOUND) backup = NULL, rc = KD_OK; /* the engine's validation says so */
  if (rc || (backup && (rc = pv_bsl_of(c, ns, backup, &bsl)))) goto fail_msg;
  if (bsl && engine_open_store(c, ns, bsl, &st) != KD_OK) snprintf(store_error, sizeof store_error, "%s", kd_errmsg());
  if (st) objstore_set_guard(st, pv_no_writes, NULL);
  struct restore_job job = {.client = c, .ns = ns, .restore = restore, .backup = backup, .bsl = bsl, .store = st,
                            .store_error = store_error[0] ? store_error : NULL, .dry_run = &dry};
  if ((rc = restore_execute(&job, &res))) goto fail_msg;
  if (p.lost) {
    rc = kd_fail(KD_ERR_TOOBIG, "the preview could not keep every object's outcome (more than %d objects, or %u MiB of diffs)",
                 PV_MAX_ENTRIES, PV_MAX_DIFF_TOTAL >> 20);
    goto fail_msg;
  }
  qsort(p.e, p.n, sizeof *p.e, pv_cmp);
  for (size_t i = 0; i < p.n; i++) count[p.e[i].v]++;
  bool clean = kd_streq(res.phase, VELERO_PHASE_COMPLETED) && !count[RESTORE_V_FAIL] && !count[RESTORE_V_CONFLICT];
  const char *rname = cli_meta_s(restore, "name");
  if (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML) {
    if (!(objects = json_array())) goto nomem;
    for (size_t i = 0; i < p.n; i++) {
      const struct pv_entry *e = &p.e[i];
      json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "action", preview_action(e->v), "resource", e->gr, "namespace", e->ns, "name", e->name);
      if (!o || (e->reason && json_object_set_new(o, "reason", joblog_json_text(e->reason))) ||
          (e->diff && json_object_set_new(o, "diff", joblog_json_text(e->diff))) || json_array_append_new(objects, o))
        goto nomem;
    }
    doc = json_pack("{s:s,s:O,s:s,s:b,s:O,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}}", "kind", "RestorePreview", "restore", restore,
                    "phase", res.phase, "clean", clean, "validationErrors", verrors, "objects", json_incref(objects), "summary",
                    "objects", (json_int_t)p.n, "create", (json_int_t)count[RESTORE_V_CREATE], "update",
                    (json_int_t)count[RESTORE_V_UPDATE], "unchanged", (json_int_t)count[RESTORE_V_UNCHANGED], "conflict",
                    (json_int_t)count[RESTORE_V_CONFLICT], "skip", (json_int_t)count[RESTORE_V_SKIP], "fail",
                    (json_int_t)count[RESTORE_V_FAIL], "errors", (json_int_t)res.errors, "warnings", (json_int_t)res.warnings);
    if (!doc || (res.failure[0] && json_object_set_new(doc, "failureReason", joblog_json_text(res.failure))) ||
        (dry.results && json_object_set(doc, "results", dry.results)))
      goto nomem;
    if ((rc = cli_print_object(stdout, doc, fmt))) goto fail_msg;
    ret = clean ? CLI_OK : CLI_FAIL;
    goto out;
  }
  cli_printf(stdout, "Preview of restore %s (backup %s, existing resource policy %s): nothing has been changed.\n",
             rname ? rname : "", bname ? bname : "",
             cli_spec_s(restore, "existingResourcePolicy") ? cli_spec_s(restore, "existingResourcePolicy") : "none");
  if (json_array_size(verrors)) {
    size_t i;
    json_t *v;
    cli_printf(stdout, "The restore would be FailedValidation and restore nothing:\n");
    json_array_foreach(verrors, i, v) cli_printf(stdout, "  %s\n", json_string_value(v) ? json_string_value(v) : "?");
    goto out;
  }
  static const char *const headers[] = {"ACTION", "RESOURCE", "NAMESPACE", "NAME", "NOTE"};
  if (!(t = cli_table_new(5, headers))) goto nomem;
  for (size_t i = 0; i < p.n; i++) {
    const struct pv_entry *e = &p.e[i];
    const char *cells[] = {preview_action(e->v), e->gr, e->ns, e->name, e->reason ? e->reason : ""};
    if ((rc = cli_table_add(t, cells))) goto fail_msg;
  }
  if (p.n) cli_table_print(t, stdout);
  for (size_t i = 0; i < p.n; i++)
    if (p.e[i].diff) pv_print_diff(p.e[i].diff);
  if (res.failure[0]) cli_printf(stdout, "\nThe restore would fail: %s\n", res.failure);
  if (dry.results && (res.errors || res.warnings)) {
    cli_printf(stdout, "\n");
    cli_print_results(stdout, "Warnings", json_object_get(dry.results, "warnings"), 30, "restore create --dry-run");
    cli_print_results(stdout, "Errors", json_object_get(dry.results, "errors"), 30, "restore create --dry-run");
  }
  cli_printf(stdout, "\nThe restore would be %s: %zu objects: %ld create, %ld update, %ld unchanged, %ld conflict, %ld skip, %ld fail; "
                     "%ld errors, %ld warnings.\n",
             res.phase, p.n, count[RESTORE_V_CREATE], count[RESTORE_V_UPDATE], count[RESTORE_V_UNCHANGED],
             count[RESTORE_V_CONFLICT], count[RESTORE_V_SKIP], count[RESTORE_V_FAIL], res.errors, res.warnings);
  ret = clean ? CLI_OK : CLI_FAIL;
  goto out;
nomem:
  kd_fail(KD_ERR_NOMEM, "out of memory");
fail_msg:
  cli_printf(stderr, "kcmdr restore create --dry-run: %s\n", kd_errmsg());
  ret = CLI_FAIL;
out:
  cli_table_free(t);
  json_decref(doc);
  json_decref(objects);
  json_decref(dry.results);
  json_decref(verrors);
  json_decref(backup);
  json_decref(bsl);
  objstore_free(st);
  pv_free(&p);
  return ret;
}

/* ---- backup diff ---- */

kd_rc preview_cap_add(size_t *total, size_t n, size_t cap, const char *what) {
  if (n > cap || *total > cap - n)
    return kd_fail(KD_ERR_TOOBIG, "more than %zu %s: too large to compare (a short list would mislead)", cap, what);
  *total += n;
  return KD_OK;
}

struct bd {
  kube_client *c;
  const char *ns, *name;
  json_t *backup, *bsl, *disc;
  objstore *st;
  struct crypt_location loc;
  bool attached;
  json_t *objs;      /* "gr\x1fns\x1fname" -> the backed-up object */
  json_t *seen;      /* keys of objs found in the cluster's listing */
  json_t *added;     /* [{resource, namespace, name}] */
  json_t *removed;   /* [{resource, namespace, name}]: at most one per backed-up object */
  json_t *changed;   /* [{resource, namespace, name, diff?}]: at most one per backed-up object */
  size_t n_added, backup_bytes, diff_bytes; /* against PV_MAX_ADDED, PV_MAX_BACKUP_BYTES, PV_MAX_DIFF_TOTAL */
  backup_filter *f;
  backup_selector *sel, **ors;
  size_t nors;
  bool or_given, want_diff;
  const char *gr;    /* the type being listed */
  const char *api_version, *kind;
  kd_rc rc;
};

static kd_rc bd_key(const char *gr, const char *ns, const char *name, char *out, size_t n) {
  if (snprintf(out, n, "%s\x1f%s\x1f%s", gr, ns ? ns : "", name) >= (int)n) return kd_fail(KD_ERR_TOOBIG, "name too long");
  return KD_OK;
}

static kd_rc bd_change(struct bd *d, const char *gr, const char *ns, const char *name, json_t *backed, json_t *live) {
  char la[700], lb[700];
  kd_buf b = KD_BUF_INIT(DIFF_MAX_OUT);
  bool changed = false;
  snprintf(la, sizeof la, "backup/%s/%s%s%s", gr, ns, ns[0] ? "/" : "", name);
  snprintf(lb, sizeof lb, "cluster/%s/%s%s%s", gr, ns, ns[0] ? "/" : "", name);
  kd_rc rc = diff_objects(backed, live, la, lb, &b, &changed);
  if (rc == KD_OK && changed && (!d->want_diff || !(rc = preview_cap_add(&d->diff_bytes, b.len, PV_MAX_DIFF_TOTAL, "bytes of diffs")))) {
    json_t *o = json_pack("{s:s,s:s,s:s}", "resource", gr, "namespace", ns, "name", name);
    if (!o || (d->want_diff && json_object_set_new(o, "diff", joblog_json_text(b.len ? b.data : ""))) ||
        json_array_append_new(d->changed, o))
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  kd_buf_free(&b);
  return rc;
}

/* Would the backup select live object o now (its type already included)? */
static bool bd_selected(struct bd *d, json_t *o, bool namespaced) {
  json_t *md = json_object_get(o, "metadata");
  json_t *labels = json_object_get(md, "labels");
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  if (json_object_get(md, "deletionTimestamp") && !json_is_null(json_object_get(md, "deletionTimestamp"))) return false;
  if (kd_streq(json_string_value(json_object_get(labels, "velero.io/exclude-from-backup")), "true")) return false;
  if (namespaced && !backup_filter_namespace(d->f, ns ? ns : "")) return false;
  if (d->sel && !backup_selector_matches(d->sel, labels)) return false;
  if (d->or_given) {
    for (size_t i = 0; i < d->nors; i++)
      if (backup_selector_matches(d->ors[i], labels)) return true;
    return false;
  }
  return true;
}

static bool bd_item(json_t *o, void *ud) {
  struct bd *d = ud;
  json_t *md = json_object_get(o, "metadata");
  const char *ns = json_string_value(json_object_get(md, "namespace")), *name = json_string_value(json_object_get(md, "name"));
  char key[1200];
  if (!name || !bd_selected(d, o, ns != NULL)) return true;
  if (!json_object_get(o, "apiVersion")) json_object_set_new(o, "apiVersion", json_string(d->api_version));
  if (!json_object_get(o, "kind")) json_object_set_new(o, "kind", json_string(d->kind));
  if ((d->rc = bd_key(d->gr, ns, name, key, sizeof key))) return false;
  json_t *backed = json_object_get(d->objs, key);
  if (!backed) {
    if ((d->rc = preview_cap_add(&d->n_added, 1, PV_MAX_ADDED, "objects added since the backup"))) return false;
    json_t *a = json_pack("{s:s,s:s,s:s}", "resource", d->gr, "namespace", ns ? ns : "", "name", name);
    if (!a || json_array_append_new(d->added, a)) d->rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    return d->rc == KD_OK;
  }
  if (json_object_set_new(d->seen, key, json_true())) d->rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  if (!d->rc) d->rc = bd_change(d, d->gr, ns ? ns : "", name, backed, o);
  return d->rc == KD_OK;
}

/* the discovery entry of gr, its kube_res in *res; false when the server does not serve it */
static bool bd_res(json_t *disc, const char *gr, struct kube_res *res) {
  size_t i;
  json_t *e;
  json_array_foreach(disc, i, e) {
    const char *g = json_string_value(json_object_get(e, "group")), *r = json_string_value(json_object_get(e, "resource"));
    const char *v = json_string_value(json_object_get(e, "version")), *k = json_string_value(json_object_get(e, "kind"));
    char name[400];
    if (!g || !r || !v || !k || strchr(r, '/')) continue;
    snprintf(name, sizeof name, "%s%s%s", r, g[0] ? "." : "", g);
    if (strcmp(name, gr) != 0) continue;
    memset(res, 0, sizeof *res);
    if (snprintf(res->group, sizeof res->group, "%s", g) >= (int)sizeof res->group ||
        snprintf(res->version, sizeof res->version, "%s", v) >= (int)sizeof res->version ||
        snprintf(res->resource, sizeof res->resource, "%s", r) >= (int)sizeof res->resource ||
        snprintf(res->kind, sizeof res->kind, "%s", k) >= (int)sizeof res->kind)
      return false;
    res->namespaced = json_is_true(json_object_get(e, "namespaced"));
    return true;
  }
  return false;
}

/* Read the backup's objects (the plain copies, not the <version>-preferredversion ones) into
 * d->objs: at most PV_MAX_BACKUP_OBJECTS objects, PV_MAX_BACKUP_BYTES of JSON. */
static kd_rc bd_read_backup(struct bd *d) {
  verify_sums *sums = NULL;
  archive_reader *ar = NULL;
  char key[VELERO_KEY_MAX], okey[1200];
  int fd = -1;
  bool verified = false;
  size_t n = 0;
  kd_rc rc = verify_sums_load(d->st, d->name, &sums);
  if (rc && rc != KD_ERR_NOTFOUND) goto done;
  if ((rc = velero_backup_key(d->name, VELERO_BACKUP_TARBALL, key, sizeof key)) ||
      (rc = verify_stage(d->st, key, sums, NULL, RESTORE_MAX_ARCHIVE, &fd, &verified)) ||
      (rc = archive_reader_open_fd(fd, RESTORE_MAX_OBJECT, &ar)))
    goto done;
  for (;;) {
    struct archive_item it;
    bool eof = false;
    if ((rc = archive_reader_next(ar, &it, &eof)) || eof) break;
    if (it.where.kind != ARCHIVE_PATH_OBJECT || it.where.version[0]) continue;
    if ((rc = preview_cap_add(&n, 1, PV_MAX_BACKUP_OBJECTS, "objects in the backup")) ||
        (rc = preview_cap_add(&d->backup_bytes, it.len, PV_MAX_BACKUP_BYTES, "bytes of objects in the backup")))
      break;
    json_t *o = json_loadb(it.data, it.len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(o)) {
      json_decref(o);
      rc = kd_fail(KD_ERR_PARSE, "%s is not a JSON object", it.path);
      break;
    }
    if ((rc = bd_key(it.where.gr, it.where.ns, it.where.name, okey, sizeof okey))) {
      json_decref(o);
      break;
    }
    if (json_object_set_new(d->objs, okey, o)) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      break;
    }
  }
done:
  archive_reader_free(ar);
  if (fd >= 0) close(fd);
  verify_sums_free(sums);
  return rc ? kd_fail_wrap(rc, "reading backup %s", d->name) : KD_OK;
}

static int bd_cmp(const void *a, const void *b) {
  json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  const char *f[] = {"resource", "namespace", "name"};
  for (size_t i = 0; i < 3; i++) {
    int c = strcmp(json_string_value(json_object_get(x, f[i])) ?: "", json_string_value(json_object_get(y, f[i])) ?: "");
    if (c) return c;
  }
  return 0;
}

static kd_rc bd_sort(json_t *arr, json_t **out) {
  size_t n = json_array_size(arr);
  json_t **v = calloc(n ? n : 1, sizeof *v), *o = json_array();
  if (!v || !o) {
    free(v);
    json_decref(o);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) v[i] = json_array_get(arr, i);
  qsort(v, n, sizeof *v, bd_cmp);
  for (size_t i = 0; i < n; i++) json_array_append(o, v[i]);
  free(v);
  *out = o;
  return KD_OK;
}

/* The backup's location opened read-only (writes refused), its keys attached, its objects
 * read (bd_read_backup). */
static kd_rc bd_open(struct bd *d) {
  kd_rc rc;
  if ((rc = cli_backup_store(d->c, d->ns, d->backup, &d->st, &d->bsl))) return rc;
  objstore_set_guard(d->st, pv_no_writes, NULL);
  if ((rc = crypt_location_load(d->c, d->ns, d->bsl, &d->loc))) return rc;
  if (d->loc.keys) {
    if ((rc = crypt_attach(d->st, d->loc.keys))) return rc;
    d->attached = true;
  }
  return bd_read_backup(d);
}

/* What the backup's spec selects now (backup.h's filter and selectors), from discovery. */
static kd_rc bd_selectors(struct bd *d) {
  json_t *spec = json_object_get(d->backup, "spec"), *ls = json_object_get(spec, "labelSelector"),
         *ors = json_object_get(spec, "orLabelSelectors");
  kd_rc rc;
  if ((rc = kube_discover(d->c, true, &d->disc)) || (rc = backup_filter_new(spec, d->disc, NULL, NULL, &d->f))) return rc;
  if (json_is_object(ls) && (rc = backup_selector_new(ls, &d->sel))) return rc;
  if (!json_array_size(ors)) return KD_OK;
  d->or_given = true;
  if (!(d->ors = calloc(json_array_size(ors), sizeof *d->ors))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  size_t i;
  json_t *e;
  json_array_foreach(ors, i, e) {
    if (!json_is_object(e)) continue;
    if ((rc = backup_selector_new(e, &d->ors[d->nors]))) return rc;
    d->nors++;
  }
  return KD_OK;
}

/* Every type the backup would select, listed: added and changed objects (bd_item). */
static kd_rc bd_list_cluster(struct bd *d) {
  size_t i;
  json_t *e;
  json_array_foreach(d->disc, i, e) {
    const char *g = json_string_value(json_object_get(e, "group")), *r = json_string_value(json_object_get(e, "resource"));
    char gr[400], av[300];
    if (!g || !r || strchr(r, '/') || !backup_verbs_backed_up(json_object_get(e, "verbs"))) continue;
    snprintf(gr, sizeof gr, "%s%s%s", r, g[0] ? "." : "", g);
    /* namespaces go with the backup's namespace pass, not its selectors; an older group's copy
     * of a type served twice is the same objects */
    if (strcmp(gr, "namespaces") == 0 || strcmp(g, "extensions") == 0 || strcmp(gr, "events.events.k8s.io") == 0) continue;
    if (!backup_filter_includes(d->f, gr) || backup_filter_excludes(d->f, gr)) continue;
    struct kube_res res;
    if (!bd_res(d->disc, gr, &res)) continue;
    snprintf(av, sizeof av, "%s%s%s", res.group, res.group[0] ? "/" : "", res.version);
    d->gr = gr, d->api_version = av, d->kind = res.kind;
    struct kube_list_opts lo = {0};
    kd_rc rc = kube_list(d->c, &res, NULL, &lo, bd_item, d, NULL);
    if (!rc) rc = d->rc;
    if (rc == KD_ERR_FORBIDDEN || rc == KD_ERR_NOTFOUND) { /* not ours to read, or gone meanwhile */
      kd_log(KD_LOG_WARN, "backup diff: %s not compared: %s", gr, kd_errmsg());
      rc = KD_OK;
    }
    if (rc) return rc;
  }
  return KD_OK;
}

/* The backup's objects the listing did not meet: gone (removed), or there by other means (an
 * item action's related object, a namespace): looked up one by one. */
static kd_rc bd_lookup_unseen(struct bd *d) {
  const char *key;
  json_t *backed;
  json_object_foreach(d->objs, key, backed) {
    if (json_object_get(d->seen, key)) continue;
    char gr[400], ons[300], oname[300];
    const char *p1 = strchr(key, '\x1f'), *p2 = p1 ? strchr(p1 + 1, '\x1f') : NULL;
    if (!p2) continue;
    snprintf(gr, sizeof gr, "%.*s", (int)(p1 - key), key);
    snprintf(ons, sizeof ons, "%.*s", (int)(p2 - p1 - 1), p1 + 1);
    snprintf(oname, sizeof oname, "%s", p2 + 1);
    struct kube_res res;
    json_t *live = NULL;
    kd_rc rc = bd_res(d->disc, gr, &res) ? kube_get(d->c, &res, ons[0] ? ons : NULL, oname, &live) : KD_ERR_NOTFOUND;
    if (rc == KD_ERR_NOTFOUND) {
      json_t *o = json_pack("{s:s,s:s,s:s}", "resource", gr, "namespace", ons, "name", oname);
      if (!o || json_array_append_new(d->removed, o)) return kd_fail(KD_ERR_NOMEM, "out of memory");
      continue;
    }
    if (!rc && !json_object_get(live, "apiVersion")) json_object_set(live, "apiVersion", json_object_get(backed, "apiVersion"));
    if (!rc && !json_object_get(live, "kind")) json_object_set(live, "kind", json_object_get(backed, "kind"));
    if (!rc) rc = bd_change(d, gr, ons, oname, backed, live);
    json_decref(live);
    if (rc) return rc;
  }
  return KD_OK;
}

/* The comparison printed: sorted[3] are added, removed, changed (sorted). */
static kd_rc bd_print(struct bd *d, json_t *const sorted[3], enum cli_output fmt) {
  size_t nb = json_object_size(d->objs), na = json_array_size(sorted[0]), nr = json_array_size(sorted[1]),
         nc = json_array_size(sorted[2]), i;
  json_t *e;
  kd_rc rc = KD_OK;
  if (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML) {
    json_t *doc = json_pack("{s:s,s:s,s:O,s:O,s:O,s:{s:I,s:I,s:I,s:I,s:I}}", "kind", "BackupDiff", "backup", d->name, "added",
                            sorted[0], "removed", sorted[1], "changed", sorted[2], "summary", "inBackup", (json_int_t)nb,
                            "unchanged", (json_int_t)(nb - nr - nc), "changed", (json_int_t)nc, "removed", (json_int_t)nr,
                            "added", (json_int_t)na);
    rc = doc ? cli_print_object(stdout, doc, fmt) : kd_fail(KD_ERR_NOMEM, "out of memory");
    json_decref(doc);
    return rc;
  }
  static const char *const headers[] = {"SINCE THE BACKUP", "RESOURCE", "NAMESPACE", "NAME"};
  static const char *const words[] = {"added", "removed", "changed"};
  cli_table *t = cli_table_new(4, headers);
  if (!t) return kd_fail(KD_ERR_NOMEM, "out of memory");
  for (size_t k = 0; k < 3 && !rc; k++) {
    json_array_foreach(sorted[k], i, e) {
      const char *cells[] = {words[k], json_string_value(json_object_get(e, "resource")),
                             json_string_value(json_object_get(e, "namespace")), json_string_value(json_object_get(e, "name"))};
      if ((rc = cli_table_add(t, cells))) break;
    }
  }
  if (rc) goto out;
  if (cli_table_rows(t)) cli_table_print(t, stdout);
  json_array_foreach(sorted[2], i, e) {
    const char *dt = json_string_value(json_object_get(e, "diff"));
    if (dt) pv_print_diff(dt);
  }
  cli_printf(stdout, "%sBackup %s holds %zu objects: %zu unchanged, %zu changed, %zu removed since; %zu added since.\n",
             cli_table_rows(t) ? "\n" : "", d->name, nb, nb - nr - nc, nc, nr, na);
out:
  cli_table_free(t);
  return rc;
}

static void bd_free(struct bd *d) {
  json_decref(d->objs);
  json_decref(d->seen);
  json_decref(d->added);
  json_decref(d->removed);
  json_decref(d->changed);
  backup_selector_free(d->sel);
  for (size_t k = 0; k < d->nors; k++) backup_selector_free(d->ors[k]);
  free(d->ors);
  backup_filter_free(d->f);
  json_decref(d->disc);
  if (d->attached) crypt_detach(d->st);
  crypt_location_free(&d->loc);
  objstore_free(d->st);
  json_decref(d->bsl);
  json_decref(d->backup);
}

int preview_backup_diff(kube_client *c, const char *ns, const char *name, bool diff, enum cli_output fmt) {
  json_t *sorted[3] = {NULL};
  struct bd d = {.c = c, .ns = ns, .name = name, .objs = json_object(), .seen = json_object(), .added = json_array(),
                 .removed = json_array(), .changed = json_array(), .want_diff = diff};
  int ret = CLI_FAIL;
  kd_rc rc;
  if (!d.objs || !d.seen || !d.added || !d.removed || !d.changed) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail_msg;
  }
  rc = kube_get(c, &cli_res_backup, ns, name, &d.backup);
  if (rc == KD_ERR_NOTFOUND) {
    cli_printf(stderr, "kcmdr backup diff: backup \"%s\" not found in namespace %s\n", name, ns);
    goto out;
  }
  if (rc) goto fail_msg;
  const char *phase = cli_status_s(d.backup, "phase");
  if (!kd_streq(phase, VELERO_PHASE_COMPLETED) && !kd_streq(phase, VELERO_PHASE_PARTIALLY_FAILED)) {
    cli_printf(stderr, "kcmdr backup diff: backup %s is %s: only a Completed or PartiallyFailed backup can be compared\n", name,
               cli_phase(d.backup));
    goto out;
  }
  if ((rc = bd_open(&d)) || (rc = bd_selectors(&d)) || (rc = bd_list_cluster(&d)) || (rc = bd_lookup_unseen(&d)) ||
      (rc = bd_sort(d.added, &sorted[0])) || (rc = bd_sort(d.removed, &sorted[1])) || (rc = bd_sort(d.changed, &sorted[2])) ||
      (rc = bd_print(&d, sorted, fmt)))
    goto fail_msg;
  ret = CLI_OK;
  goto out;
fail_msg:
  cli_printf(stderr, "kcmdr backup diff: %s\n", kd_errmsg());
  ret = CLI_FAIL;
out:
  for (size_t k = 0; k < 3; k++) json_decref(sorted[k]);
  bd_free(&d);
  return ret;
}
