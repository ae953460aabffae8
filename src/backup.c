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
 * store writer while a SHA-256 and a byte count run over the compressed bytes. */
#include "backup.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "archive.h"
#include "joblog.h"
#include "velero.h"
#include "vstatus.h"

/* ---- small helpers ---- */

static kd_rc bk_json_cstr(kd_buf *b, const char *s) { return kd_buf_add_json_string(b, s, strlen(s)); }

/* ---- glob (gobwas/glob semantics without separators) ---- */

/* Match one character class at *pp (just after '['); advances *pp past ']'. */
static bool glob_class(const char **pp, unsigned char c, bool *ok) {
  const char *p = *pp;
  bool neg = false, hit = false;
  if (*p == '!') neg = true, p++;
  bool first = true;
  while (*p && (*p != ']' || first)) {
    first = false;
    unsigned char lo = (unsigned char)*p++, hi = lo;
    if (lo == '\\' && *p) lo = hi = (unsigned char)*p++;
    if (*p == '-' && p[1] && p[1] != ']') {
      p++;
      hi = (unsigned char)*p++;
      if (hi == '\\' && *p) hi = (unsigned char)*p++;
    }
    if (c >= lo && c <= hi) hit = true;
  }
  if (*p != ']') {
    *ok = false; /* unclosed: gobwas refuses to compile it, which matches nothing */
    return false;
  }
  *pp = p + 1;
  return hit != neg;
}

/* * ? [..] and \x, with backtracking over the last star. */
static bool glob_simple(const char *p, const char *s) {
  const char *star_p = NULL, *star_s = NULL;
  for (;;) {
    if (*p == '*') {
      while (*p == '*') p++;
      star_p = p, star_s = s;
      continue;
    }
    if (*s) {
      bool ok = true, m;
      const char *np;
      if (*p == '?') m = true, np = p + 1;
      else if (*p == '[') {
        np = p + 1;
        m = glob_class(&np, (unsigned char)*s, &ok);
        if (!ok) return false;
      } else if (*p == '\\') {
        if (!p[1]) return false; /* a trailing backslash: gobwas refuses the pattern */
        m = p[1] == *s, np = p + 2;
      }
      else m = *p && *p == *s, np = p + 1;
      if (m) {
        p = np, s++;
        continue;
      }
    } else if (!*p) {
      return true;
    }
    if (!star_p || !*star_s) return false;
    p = star_p, s = ++star_s;
  }
}

/* Expand the first {a,b,...} group and try each alternative (nested groups by recursion). */
static bool glob_braces(const char *p, const char *s, int depth) {
  const char *open = NULL, *close = NULL;
  int lvl = 0;
  for (const char *q = p; *q; q++) {
    if (*q == '\\' && q[1]) {
      q++;
      continue;
    }
    if (*q == '{' && lvl++ == 0) open = q;
    else if (*q == '}' && lvl > 0 && --lvl == 0) {
      close = q;
      break;
    }
  }
  if (!open) return glob_simple(p, s);
  if (!close || depth > 8) return false; /* gobwas refuses an unclosed group: nothing matches */
  const char *a = open + 1;
  lvl = 0;
  for (const char *q = open + 1; q <= close; q++) {
    if (*q == '\\' && q < close - 1) {
      q++;
      continue;
    }
    if (q < close && *q == '{') lvl++;
    else if (q < close && *q == '}') lvl--;
    else if (q == close || (*q == ',' && lvl == 0)) {
      char buf[1024];
      size_t pl = (size_t)(open - p), al = (size_t)(q - a), rl = strlen(close + 1);
      if (pl + al + rl + 1 > sizeof buf) return false;
      memcpy(buf, p, pl);
      memcpy(buf + pl, a, al);
      memcpy(buf + pl + al, close + 1, rl + 1);
      if (glob_braces(buf, s, depth + 1)) return true;
      a = q + 1;
    }
  }
  return false;
}

bool backup_glob(const char *pattern, const char *s) { return glob_braces(pattern, s, 0); }

/* ---- label selectors ---- */

enum sel_op { SEL_EQ, SEL_IN, SEL_NOTIN, SEL_EXISTS, SEL_NOTEXISTS };
struct sel_req {
  char *key;
  enum sel_op op;
  char **values;
  size_t nvalues;
};
struct backup_selector {
  bool nothing; /* JSON null: matches no object */
  struct sel_req *reqs;
  size_t n;
};

static bool bk_name_part_valid(const char *s, size_t n) { /* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, <= 63 */
  if (n == 0 || n > 63) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = isascii((unsigned char)c) && isalnum((unsigned char)c);
    if (!alnum && (i == 0 || i == n - 1 || (c != '-' && c != '_' && c != '.'))) return false;
  }
  return true;
}

static bool bk_dns_subdomain_valid(const char *s, size_t n) {
  if (n == 0 || n > 253) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (an) continue;
    if (c != '-' && c != '.') return false;
    if (i == 0 || i == n - 1) return false;
    if (c == '.' && (s[i - 1] == '.' || s[i - 1] == '-' || s[i + 1] == '-')) return false;
  }
  return true;
}

static bool bk_label_key_valid(const char *k) {
  const char *slash = strchr(k, '/');
  if (!slash) return bk_name_part_valid(k, strlen(k));
  if (strchr(slash + 1, '/')) return false;
  return bk_dns_subdomain_valid(k, (size_t)(slash - k)) && bk_name_part_valid(slash + 1, strlen(slash + 1));
}

static bool bk_label_value_valid(const char *v) {
  size_t n = strlen(v);
  return n == 0 || bk_name_part_valid(v, n);
}

void backup_selector_free(backup_selector *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    free(s->reqs[i].key);
    for (size_t j = 0; j < s->reqs[i].nvalues; j++) free(s->reqs[i].values[j]);
    free(s->reqs[i].values);
  }
  free(s->reqs);
  free(s);
}

/* A string from JSON that is a real C string (no NUL inside). */
static const char *bk_cstr(json_t *v) {
  const char *s = json_string_value(v);
  return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static kd_rc sel_add(backup_selector *s, const char *key, enum sel_op op, json_t *values) {
  struct sel_req *r = &s->reqs[s->n];
  memset(r, 0, sizeof *r);
  if (!bk_label_key_valid(key))
    return kd_fail(KD_ERR_INVALID, "label selector key \"%.100s\" is not a valid label key", key);
  if (!(r->key = strdup(key))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  r->op = op;
  s->n++;
  size_t nv = json_array_size(values);
  if (values && !json_is_array(values) && !json_is_null(values))
    return kd_fail(KD_ERR_INVALID, "label selector key \"%.100s\": values must be a list", key);
  if ((op == SEL_IN || op == SEL_NOTIN) && nv == 0)
    return kd_fail(KD_ERR_INVALID, "label selector key \"%.100s\": operator %s needs at least one value", key,
                   op == SEL_IN ? "In" : "NotIn");
  if ((op == SEL_EXISTS || op == SEL_NOTEXISTS) && nv > 0)
    return kd_fail(KD_ERR_INVALID, "label selector key \"%.100s\": operator %s takes no values", key,
                   op == SEL_EXISTS ? "Exists" : "DoesNotExist");
  if (nv > 4096) return kd_fail(KD_ERR_INVALID, "label selector key \"%.100s\": more than 4096 values", key);
  if (nv && !(r->values = calloc(nv, sizeof *r->values))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < nv; i++) {
    const char *v = bk_cstr(json_array_get(values, i));
    if (!v || !bk_label_value_valid(v))
      return kd_fail(KD_ERR_INVALID, "label selector key \"%.100s\": \"%.100s\" is not a valid label value", key,
                     v ? v : "(not a string)");
    if (!(r->values[r->nvalues] = strdup(v))) return kd_fail(KD_ERR_NOMEM, "out of memory");
    r->nvalues++;
  }
  if (r->nvalues > 1) qsort(r->values, r->nvalues, sizeof *r->values, cmp_cstr);
  return KD_OK;
}

static int cmp_req(const void *a, const void *b) {
  const struct sel_req *x = a, *y = b;
  return strcmp(x->key, y->key);
}

kd_rc backup_selector_new(json_t *sel, backup_selector **out) {
  kd_rc rc = KD_OK;
  *out = NULL;
  backup_selector *s = calloc(1, sizeof *s);
  if (!s) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if (json_is_null(sel)) {
    s->nothing = true;
    *out = s;
    return KD_OK;
  }
  if (!json_is_object(sel)) {
    rc = kd_fail(KD_ERR_INVALID, "a label selector must be an object");
    goto fail;
  }
  json_t *ml = json_object_get(sel, "matchLabels"), *me = json_object_get(sel, "matchExpressions");
  if ((ml && !json_is_object(ml) && !json_is_null(ml)) || (me && !json_is_array(me) && !json_is_null(me))) {
    rc = kd_fail(KD_ERR_INVALID, "label selector: matchLabels must be an object and matchExpressions a list");
    goto fail;
  }
  size_t cap = json_object_size(ml) + json_array_size(me);
  if (cap > 1024) {
    rc = kd_fail(KD_ERR_INVALID, "label selector: more than 1024 requirements");
    goto fail;
  }
  if (cap && !(s->reqs = calloc(cap, sizeof *s->reqs))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  const char *k;
  json_t *v;
  json_object_foreach(ml, k, v) {
    json_t *one = json_pack("[O]", v);
    if (!one) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    rc = sel_add(s, k, SEL_EQ, one);
    json_decref(one);
    if (rc) goto fail;
  }
  size_t i;
  json_array_foreach(me, i, v) {
    const char *key = bk_cstr(json_object_get(v, "key")), *op = bk_cstr(json_object_get(v, "operator"));
    enum sel_op o;
    if (!key || !op) {
      rc = kd_fail(KD_ERR_INVALID, "label selector: matchExpressions[%zu] needs key and operator", i);
      goto fail;
    }
    if (strcmp(op, "In") == 0) o = SEL_IN;
    else if (strcmp(op, "NotIn") == 0) o = SEL_NOTIN;
    else if (strcmp(op, "Exists") == 0) o = SEL_EXISTS;
    else if (strcmp(op, "DoesNotExist") == 0) o = SEL_NOTEXISTS;
    else {
      rc = kd_fail(KD_ERR_INVALID, "label selector: \"%.50s\" is not a valid label selector operator", op);
      goto fail;
    }
    if ((rc = sel_add(s, key, o, json_object_get(v, "values")))) goto fail;
  }
  if (s->n > 1) qsort(s->reqs, s->n, sizeof *s->reqs, cmp_req); /* as labels.Selector sorts them */
  *out = s;
  return KD_OK;
fail:
  backup_selector_free(s);
  return rc;
}

static bool sel_has_value(const struct sel_req *r, const char *v) {
  size_t lo = 0, hi = r->nvalues;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(r->values[mid], v);
    if (c == 0) return true;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

bool backup_selector_matches(const backup_selector *s, json_t *labels) {
  if (s->nothing) return false;
  for (size_t i = 0; i < s->n; i++) {
    const struct sel_req *r = &s->reqs[i];
    json_t *lv = json_object_get(labels, r->key);
    const char *v = json_is_string(lv) ? json_string_value(lv) : NULL;
    bool ok;
    switch (r->op) {
    case SEL_EQ:
    case SEL_IN: ok = v && sel_has_value(r, v); break;
    case SEL_NOTIN: ok = !v || !sel_has_value(r, v); break;
    case SEL_EXISTS: ok = lv != NULL; break;
    default: ok = lv == NULL; break;
    }
    if (!ok) return false;
  }
  return true;
}

size_t backup_selector_size(const backup_selector *s) { return s->n; }

kd_rc backup_selector_string(const backup_selector *s, kd_buf *out) {
  kd_rc rc = KD_OK;
  for (size_t i = 0; rc == KD_OK && i < s->n; i++) {
    const struct sel_req *r = &s->reqs[i];
    if (i) rc = kd_buf_adds(out, ",");
    if (rc) break;
    switch (r->op) {
    case SEL_EQ: rc = kd_buf_addf(out, "%s=%s", r->key, r->values[0]); continue;
    case SEL_EXISTS: rc = kd_buf_adds(out, r->key); continue;
    case SEL_NOTEXISTS: rc = kd_buf_addf(out, "!%s", r->key); continue;
    default: break;
    }
    rc = kd_buf_addf(out, "%s %s (", r->key, r->op == SEL_IN ? "in" : "notin");
    for (size_t j = 0; rc == KD_OK && j < r->nvalues; j++) rc = kd_buf_addf(out, "%s%s", j ? "," : "", r->values[j]);
    if (rc == KD_OK) rc = kd_buf_adds(out, ")");
  }
  return rc;
}

/* ---- include/exclude rules ---- */

/* A set of patterns (Go's sets.String: unique, kept in insertion order here). */
struct bk_pats {
  char **v;
  size_t n;
};

struct bk_dres { /* one discovered resource; strings borrowed from the discovery array */
  const char *group, *version, *resource, *kind;
  bool namespaced, listable;
  json_t *shorts;
  char gr[300];
};

struct backup_filter {
  struct bk_dres *res;
  size_t nres;
  struct bk_pats ns_inc, ns_exc;
  bool old;          /* includedResources/excludedResources/includeClusterResources */
  int incl_cluster;  /* -1 unset, 0 false, 1 true */
  struct bk_pats inc, exc, nsr_inc, nsr_exc, cr_inc, cr_exc;
};

static void pats_free(struct bk_pats *p) {
  for (size_t i = 0; i < p->n; i++) free(p->v[i]);
  free(p->v);
  p->v = NULL;
  p->n = 0;
}

static bool pats_has(const struct bk_pats *p, const char *s) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->v[i], s) == 0) return true;
  return false;
}

static kd_rc pats_add(struct bk_pats *p, const char *s) {
  if (pats_has(p, s)) return KD_OK;
  char **nv = realloc(p->v, (p->n + 1) * sizeof *nv);
  if (!nv) return kd_fail(KD_ERR_NOMEM, "out of memory");
  p->v = nv;
  if (!(p->v[p->n] = strdup(s))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  p->n++;
  return KD_OK;
}

static bool pats_match(const struct bk_pats *p, const char *s) {
  for (size_t i = 0; i < p->n; i++)
    if (backup_glob(p->v[i], s)) return true;
  return false;
}

/* IncludesExcludes.ShouldInclude */
static bool ie_include(const struct bk_pats *inc, const struct bk_pats *exc, const char *s) {
  if (pats_match(exc, s)) return false;
  return inc->n == 0 || pats_has(inc, "*") || pats_match(inc, s);
}

/* IncludesExcludes.IncludeEverything */
static bool ie_everything(const struct bk_pats *inc, const struct bk_pats *exc) {
  return exc->n == 0 && (inc->n == 0 || (inc->n == 1 && pats_has(inc, "*")));
}

static const struct bk_dres *filter_lookup(const backup_filter *f, const char *gr) {
  for (size_t i = 0; i < f->nres; i++)
    if (strcmp(f->res[i].gr, gr) == 0) return &f->res[i];
  return NULL;
}

static void lower_copy(char *dst, size_t n, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < n; i++) dst[i] = (char)tolower((unsigned char)src[i]);
  dst[i] = '\0';
}

/* discovery helper's ResourceFor: short names first, then plural or singular (Kind in lower
 * case), in the server's group priority order (the discovery order) */
static const struct bk_dres *filter_find(const backup_filter *f, const char *name) {
  char res[256], grp[256] = "";
  const char *dot = strchr(name, '.');
  size_t rl = dot ? (size_t)(dot - name) : strlen(name);
  if (rl >= sizeof res || (dot && strlen(dot + 1) >= sizeof grp)) return NULL;
  memcpy(res, name, rl);
  res[rl] = '\0';
  lower_copy(res, sizeof res, res);
  if (dot) strcpy(grp, dot + 1);
  for (size_t i = 0; i < f->nres; i++) {
    const struct bk_dres *r = &f->res[i];
    if (grp[0] && strcmp(grp, r->group) != 0) continue;
    size_t j;
    json_t *sn;
    json_array_foreach(r->shorts, j, sn) {
      if (kd_streq(json_string_value(sn), res)) return r;
    }
  }
  for (size_t i = 0; i < f->nres; i++) {
    const struct bk_dres *r = &f->res[i];
    char kind[160];
    if (grp[0] && strcmp(grp, r->group) != 0) continue;
    lower_copy(kind, sizeof kind, r->kind);
    if (strcmp(r->resource, res) == 0 || strcmp(kind, res) == 0) return r;
  }
  return NULL;
}

bool backup_filter_resolve(const backup_filter *f, const char *name, char *out, size_t n) {
  const struct bk_dres *r = filter_find(f, name);
  if (!r || strlen(r->gr) >= n) return false;
  strcpy(out, r->gr);
  return true;
}

bool backup_filter_namespace(const backup_filter *f, const char *ns) { return ie_include(&f->ns_inc, &f->ns_exc, ns); }

bool backup_filter_all_namespaces(const backup_filter *f) { return ie_everything(&f->ns_inc, &f->ns_exc); }

bool backup_filter_includes(const backup_filter *f, const char *gr) {
  const struct bk_dres *r = filter_lookup(f, gr);
  if (!r) return false;
  if (f->old) { /* GlobalIncludesExcludes.ShouldInclude */
    if (!r->namespaced && f->incl_cluster == 0) return false;
    if (strcmp(gr, "namespaces") != 0 && !r->namespaced && f->incl_cluster < 0 && !backup_filter_all_namespaces(f))
      return false;
    return ie_include(&f->inc, &f->exc, gr);
  }
  /* ScopeIncludesExcludes.ShouldInclude */
  if (r->namespaced) {
    if (pats_has(&f->nsr_exc, "*") || pats_match(&f->nsr_exc, gr)) return false;
    return f->nsr_inc.n == 0 || pats_has(&f->nsr_inc, "*") || pats_match(&f->nsr_inc, gr);
  }
  if (pats_has(&f->cr_exc, "*") || pats_match(&f->cr_exc, gr)) return false;
  if (f->cr_inc.n == 0 && f->cr_exc.n == 0 && backup_filter_all_namespaces(f) && ie_everything(&f->nsr_inc, &f->nsr_exc))
    return true;
  return pats_has(&f->cr_inc, "*") || pats_match(&f->cr_inc, gr) || strcmp(gr, "namespaces") == 0;
}

bool backup_filter_excludes(const backup_filter *f, const char *gr) {
  if (f->old) { /* GlobalIncludesExcludes.ShouldExclude */
    if (pats_match(&f->exc, gr)) return true;
    const struct bk_dres *r = filter_lookup(f, gr);
    if (!r) return true;
    if (!r->namespaced) {
      if (f->incl_cluster == 0) return true;
      if (f->incl_cluster < 0 && !ie_include(&f->inc, &f->exc, gr)) return true;
    }
    return false;
  }
  const struct bk_dres *r = filter_lookup(f, gr);
  if (!r) return true;
  return r->namespaced ? pats_match(&f->nsr_exc, gr) : pats_match(&f->cr_exc, gr);
}

/* Velero's rule, read from its source (v1.11 through v1.18 and main are the same):
 *
 * - pkg/backup/backup.go, kubernetesBackupper.BackupWithResolvers: after every listed item is
 *   backed up, "if !ResourceIncludesExcludes.ShouldExclude(crds) &&
 *   !ResourceIncludesExcludes.ShouldInclude(crds)" it calls backupCRD for every group-resource
 *   of which at least one item was backed up ("When it's included, the resource's CRD is
 *   already handled. When it's excluded, no need to check.").
 * - pkg/backup/backup.go, backupCRD: GETs the CRD named "<resource>.<group>" (NotFound: a
 *   built-in type, nothing to add) and hands it to kubernetesBackupper.backupItem with
 *   mustInclude false; no label selector is involved.
 * - pkg/backup/item_backupper.go, itemInclusionChecks (mustInclude false): the CRD is skipped
 *   when labelled velero.io/exclude-from-backup=true, when ShouldExclude(crds) (cluster-scoped),
 *   or when it is being deleted.
 * - pkg/util/collections/includes_excludes.go, GlobalIncludesExcludes.ShouldInclude (the old
 *   filter fields, kcm's): a cluster-scoped type is included when includeClusterResources is
 *   true, or unset with namespaceFilter.IncludeEverything() (includedNamespaces empty or ["*"],
 *   no excludedNamespaces), and the resource lists include it. So under kcm's spec CRDs are
 *   "included": backupCRD never runs, and pkg/backup/item_collector.go getResourceItems lists
 *   customresourcedefinitions like any type, through listResourceByLabelsPerNamespace with the
 *   orLabelSelectors. Only CRDs carrying a selected label (CAPI's cluster.x-k8s.io/provider on
 *   provider CRDs) are in kcm's backups; kcm's own CRDs carry no label and are not.
 * - Velero <= 1.10 called backupCRD whenever includeClusterResources was unset (PR #5838,
 *   commit a1e4f544, changed it); kcm runs Velero >= 1.15. */
bool backup_filter_adds_crds(const backup_filter *f) {
  static const char crd[] = "customresourcedefinitions.apiextensions.k8s.io";
  return !backup_filter_excludes(f, crd) && !backup_filter_includes(f, crd);
}

void backup_filter_free(backup_filter *f) {
  if (!f) return;
  struct bk_pats *all[] = {&f->ns_inc, &f->ns_exc, &f->inc, &f->exc, &f->nsr_inc, &f->nsr_exc, &f->cr_inc, &f->cr_exc};
  for (size_t i = 0; i < KD_ARRAY_LEN(all); i++) pats_free(all[i]);
  free(f->res);
  free(f);
}

/* A spec field that must be a list of strings; *out borrowed (NULL when absent or null). */
static kd_rc spec_list(json_t *spec, const char *field, json_t *errors, json_t **out) {
  json_t *v = json_object_get(spec, field);
  *out = NULL;
  if (!v || json_is_null(v)) return KD_OK;
  size_t i;
  json_t *e;
  bool ok = json_is_array(v);
  json_array_foreach(v, i, e) {
    if (!bk_cstr(e)) ok = false;
  }
  if (!ok) {
    char msg[200];
    snprintf(msg, sizeof msg, "spec.%s must be a list of strings", field);
    return json_array_append_new(errors, json_string(msg)) ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
  }
  *out = v;
  return KD_OK;
}

static kd_rc add_error(json_t *errors, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kd_rc add_error(json_t *errors, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *s = json_string(msg);
  if (!s) s = json_stringn(msg, strlen(msg)); /* not UTF-8 after a cut: keep the bytes */
  if (!s || json_array_append_new(errors, s)) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* a unique string set from a JSON list (sets.NewString) */
static kd_rc set_of(json_t *list, struct bk_pats *out) {
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    const char *s = bk_cstr(e);
    kd_rc rc = s ? pats_add(out, s) : KD_OK;
    if (rc) return rc;
  }
  return KD_OK;
}

static int cmp_pat(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* collections.ValidateIncludesExcludes (scoped: ValidateScopedIncludesExcludes) */
static kd_rc validate_ie(json_t *inc_l, json_t *exc_l, bool scoped, const char *what, json_t *errors) {
  struct bk_pats inc = {0}, exc = {0};
  kd_rc rc = KD_OK;
  if ((rc = set_of(inc_l, &inc)) || (rc = set_of(exc_l, &exc))) goto fail;
  if (inc.n > 1 && pats_has(&inc, "*") &&
      (rc = add_error(errors, "%s: includes list must either contain '*' only, or a non-empty list of items", what)))
    goto fail;
  if (!scoped && pats_has(&exc, "*") && (rc = add_error(errors, "%s: excludes list cannot contain '*'", what))) goto fail;
  if (scoped && exc.n > 1 && pats_has(&exc, "*") &&
      (rc = add_error(errors, "%s: excludes list must either contain '*' only, or a non-empty list of items", what)))
    goto fail;
  if (scoped && inc.n > 0 && pats_has(&exc, "*") &&
      (rc = add_error(errors, "%s: when exclude is '*', include cannot have value", what)))
    goto fail;
  if (exc.n > 1) qsort(exc.v, exc.n, sizeof *exc.v, cmp_pat);
  for (size_t i = 0; i < exc.n; i++)
    if (pats_has(&inc, exc.v[i]) &&
        (rc = add_error(errors, "%s: excludes list cannot contain an item in the includes list: %.200s", what, exc.v[i])))
      goto fail;
fail:
  pats_free(&inc);
  pats_free(&exc);
  return rc;
}

/* wildcard.ValidateNamespaceName + validation.ValidateNamespaceName with glob characters
 * replaced; NULL when valid, else the reason */
static const char *ns_pattern_invalid(const char *ns) {
  if (!ns[0]) return NULL;
  if (strpbrk(ns, "|()!{},")) return "wildcard pattern contains unsupported characters: |, (, ), !, {, }, ,";
  if (strstr(ns, "**")) return "wildcard pattern contains consecutive asterisks (only single * allowed)";
  for (const char *p = ns; *p; p++) {
    if (*p == '[') {
      const char *q = strchr(p + 1, ']');
      if (!q) return "wildcard pattern contains unclosed bracket '['";
      if (q == p + 1) return "wildcard pattern contains empty bracket pattern '[]'";
      p = q;
    } else if (*p == ']') {
      return "wildcard pattern contains unmatched closing bracket ']'";
    }
  }
  char tmp[256];
  size_t n = strlen(ns);
  if (n > 63) return "must be no more than 63 characters";
  for (size_t i = 0; i <= n; i++) tmp[i] = strchr("*?[]", ns[i]) && ns[i] ? 'x' : ns[i];
  for (size_t i = 0; i < n; i++) {
    char c = tmp[i];
    bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!an && (c != '-' || i == 0 || i == n - 1))
      return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character";
  }
  return NULL;
}

/* modifyResourceIncludeExclude: add the automatic excludes, drop them from the includes */
static kd_rc auto_exclude(json_t **inc, json_t **exc, const char *const *add, size_t nadd) {
  json_t *ni = json_array(), *ne = *exc ? json_copy(*exc) : json_array();
  kd_rc rc = KD_OK;
  if (!ni || !ne) goto nomem;
  for (size_t i = 0; i < nadd; i++) {
    bool have = false;
    size_t j;
    json_t *e;
    json_array_foreach(ne, j, e) have = have || kd_streq(json_string_value(e), add[i]);
    if (!have && json_array_append_new(ne, json_string(add[i]))) goto nomem;
  }
  size_t j;
  json_t *e;
  json_array_foreach(*inc, j, e) {
    bool drop = false;
    size_t k;
    json_t *x;
    json_array_foreach(ne, k, x) drop = drop || json_equal(x, e);
    if (!drop && json_array_append(ni, e)) goto nomem;
  }
  *inc = ni;
  *exc = ne;
  return KD_OK;
nomem:
  rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  json_decref(ni);
  json_decref(ne);
  return rc;
}

/* generateIncludesExcludes / generateFilter: "*" kept, names resolved through discovery
 * (unresolvable ones kept as given, so they never widen the set); scoped = 0 old, 1 namespaced,
 * 2 cluster-scoped (a resource of the other scope is dropped). skip_star: excludes ignore "*"
 * in the old filters. */
static kd_rc resolve_into(const backup_filter *f, json_t *list, int scoped, bool skip_star, struct bk_pats *out) {
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    const char *s = bk_cstr(e);
    kd_rc rc = KD_OK;
    if (!s) continue;
    if (strcmp(s, "*") == 0) {
      if (!skip_star) rc = pats_add(out, s);
    } else {
      const struct bk_dres *r = filter_find(f, s);
      if (!r) rc = pats_add(out, s);
      else if (scoped == 0 || (scoped == 1) == r->namespaced) rc = pats_add(out, r->gr);
    }
    if (rc) return rc;
  }
  return KD_OK;
}

static bool verbs_ok(json_t *verbs) {
  static const char *const need[] = {"list", "create", "get", "delete"};
  for (size_t i = 0; i < KD_ARRAY_LEN(need); i++) {
    bool have = false;
    size_t j;
    json_t *v;
    json_array_foreach(verbs, j, v) have = have || kd_streq(json_string_value(v), need[i]);
    if (!have) return false;
  }
  return true;
}

static const char *const auto_excl_ns[] = {"volumesnapshots.snapshot.storage.k8s.io"};
static const char *const auto_excl_cluster[] = {"volumesnapshotcontents.snapshot.storage.k8s.io"};

kd_rc backup_filter_new(json_t *spec, json_t *discovery, json_t *extra_excluded_ns, json_t *errors, backup_filter **out) {
  kd_rc rc = KD_OK;
  json_t *owned[6] = {0};
  *out = NULL;
  backup_filter *f = calloc(1, sizeof *f);
  if (!f) return kd_fail(KD_ERR_NOMEM, "out of memory");
  size_t nd = json_array_size(discovery);
  if (nd && !(f->res = calloc(nd, sizeof *f->res))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  size_t i;
  json_t *e;
  json_array_foreach(discovery, i, e) {
    struct bk_dres *r = &f->res[f->nres];
    r->group = bk_cstr(json_object_get(e, "group"));
    r->version = bk_cstr(json_object_get(e, "version"));
    r->resource = bk_cstr(json_object_get(e, "resource"));
    r->kind = bk_cstr(json_object_get(e, "kind"));
    if (!r->group || !r->version || !r->resource || !r->kind || !r->resource[0] || strchr(r->resource, '/')) continue;
    r->namespaced = json_is_true(json_object_get(e, "namespaced"));
    r->listable = verbs_ok(json_object_get(e, "verbs"));
    r->shorts = json_object_get(e, "shortNames");
    int w = r->group[0] ? snprintf(r->gr, sizeof r->gr, "%s.%s", r->resource, r->group)
                        : snprintf(r->gr, sizeof r->gr, "%s", r->resource);
    if (w < 0 || (size_t)w >= sizeof r->gr) continue;
    f->nres++;
  }

  json_t *inc_ns, *exc_ns, *inc_r, *exc_r, *nsr_i, *nsr_e, *cr_i, *cr_e;
  if ((rc = spec_list(spec, "includedNamespaces", errors, &inc_ns)) ||
      (rc = spec_list(spec, "excludedNamespaces", errors, &exc_ns)) ||
      (rc = spec_list(spec, "includedResources", errors, &inc_r)) ||
      (rc = spec_list(spec, "excludedResources", errors, &exc_r)) ||
      (rc = spec_list(spec, "includedNamespaceScopedResources", errors, &nsr_i)) ||
      (rc = spec_list(spec, "excludedNamespaceScopedResources", errors, &nsr_e)) ||
      (rc = spec_list(spec, "includedClusterScopedResources", errors, &cr_i)) ||
      (rc = spec_list(spec, "excludedClusterScopedResources", errors, &cr_e)))
    goto fail;
  json_t *icr = json_object_get(spec, "includeClusterResources");
  f->incl_cluster = json_is_boolean(icr) ? json_is_true(icr) : -1;
  if (icr && !json_is_boolean(icr) && !json_is_null(icr) &&
      (rc = add_error(errors, "spec.includeClusterResources must be true, false or null")))
    goto fail;

  /* namespaces labelled velero.io/exclude-from-backup=true join the excludes before validation */
  if (json_array_size(extra_excluded_ns)) {
    if (!(owned[0] = exc_ns ? json_copy(exc_ns) : json_array()) || json_array_extend(owned[0], extra_excluded_ns)) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    exc_ns = owned[0];
  }
  bool old = f->incl_cluster >= 0 || json_array_size(inc_r) || json_array_size(exc_r);
  bool scoped = json_array_size(nsr_i) || json_array_size(nsr_e) || json_array_size(cr_i) || json_array_size(cr_e);
  if (old && scoped &&
      (rc = add_error(errors, "include-resources, exclude-resources and include-cluster-resources are old filter "
                              "parameters.\ninclude-cluster-scoped-resources, exclude-cluster-scoped-resources, "
                              "include-namespace-scoped-resources and exclude-namespace-scoped-resources are new "
                              "filter parameters.\nThey cannot be used together")))
    goto fail;
  /* No resource filter at all: Velero 1.17+ would put the automatic VolumeSnapshot(Content)
   * excludes into the scoped filters, which turns off every cluster-scoped resource of a plain
   * backup; we keep the full-cluster backup of Velero <= 1.16 (old filters with the excludes). */
  if (!scoped) old = true;
  f->old = old;
  if (old) {
    size_t before = json_array_size(errors);
    if ((rc = validate_ie(inc_r, exc_r, false, "Invalid included/excluded resource lists", errors))) goto fail;
    if (json_array_size(errors) == before) {
      const char *const all[] = {auto_excl_ns[0], auto_excl_cluster[0]};
      if ((rc = auto_exclude(&inc_r, &exc_r, all, 2))) goto fail;
      owned[1] = inc_r, owned[2] = exc_r;
    }
  } else {
    size_t before = json_array_size(errors);
    if ((rc = validate_ie(cr_i, cr_e, true, "Invalid cluster-scoped included/excluded resource lists", errors))) goto fail;
    if (json_array_size(errors) == before) {
      if ((rc = auto_exclude(&cr_i, &cr_e, auto_excl_cluster, 1))) goto fail;
      owned[1] = cr_i, owned[2] = cr_e;
    }
    before = json_array_size(errors);
    if ((rc = validate_ie(nsr_i, nsr_e, true, "Invalid namespace-scoped included/excluded resource lists", errors)))
      goto fail;
    if (json_array_size(errors) == before) {
      if ((rc = auto_exclude(&nsr_i, &nsr_e, auto_excl_ns, 1))) goto fail;
      owned[3] = nsr_i, owned[4] = nsr_e;
    }
  }
  /* empty includedNamespaces means all of them */
  if (!json_array_size(inc_ns)) {
    if (!(owned[5] = json_pack("[s]", "*"))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    inc_ns = owned[5];
  }
  if ((rc = validate_ie(inc_ns, exc_ns, false, "Invalid included/excluded namespace lists", errors))) goto fail;
  json_t *lists[] = {inc_ns, exc_ns};
  for (int l = 0; l < 2; l++) {
    json_array_foreach(lists[l], i, e) {
      const char *s = bk_cstr(e), *why = s && strcmp(s, "*") != 0 ? ns_pattern_invalid(s) : NULL;
      if (why && (rc = add_error(errors, "Invalid included/excluded namespace lists: invalid namespace \"%.100s\": %s", s, why)))
        goto fail;
    }
  }
  if ((rc = set_of(inc_ns, &f->ns_inc)) || (rc = set_of(exc_ns, &f->ns_exc))) goto fail;
  if (old) {
    if ((rc = resolve_into(f, inc_r, 0, false, &f->inc)) || (rc = resolve_into(f, exc_r, 0, true, &f->exc))) goto fail;
  } else {
    if ((rc = resolve_into(f, nsr_i, 1, false, &f->nsr_inc)) || (rc = resolve_into(f, nsr_e, 1, false, &f->nsr_exc)) ||
        (rc = resolve_into(f, cr_i, 2, false, &f->cr_inc)) || (rc = resolve_into(f, cr_e, 2, false, &f->cr_exc)))
      goto fail;
  }
  *out = f;
  f = NULL;
fail:
  for (size_t k = 0; k < KD_ARRAY_LEN(owned); k++) json_decref(owned[k]);
  backup_filter_free(f);
  return rc;
}

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

/* ---- resource list ---- */

#define RESLIST_MAX_BYTES (512u << 20)

struct rl_type {
  char *type;
  kd_buf arena; /* "entry\0entry\0..." */
  uint32_t *offs;
  size_t n, cap;
};
struct backup_reslist {
  struct rl_type *t;
  size_t n, cap, last, total;
};

kd_rc backup_reslist_new(backup_reslist **out) {
  *out = calloc(1, sizeof **out);
  return *out ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
}

void backup_reslist_free(backup_reslist *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) {
    free(l->t[i].type);
    kd_buf_free(&l->t[i].arena);
    free(l->t[i].offs);
  }
  free(l->t);
  free(l);
}

size_t backup_reslist_count(const backup_reslist *l) { return l->total; }

kd_rc backup_reslist_add(backup_reslist *l, const char *type, const char *ns, const char *name) {
  struct rl_type *t = NULL;
  if (l->last < l->n && strcmp(l->t[l->last].type, type) == 0) t = &l->t[l->last];
  for (size_t i = 0; !t && i < l->n; i++)
    if (strcmp(l->t[i].type, type) == 0) t = &l->t[i], l->last = i;
  if (!t) {
    if (l->n == l->cap) {
      size_t nc = l->cap ? l->cap * 2 : 16;
      struct rl_type *nt = realloc(l->t, nc * sizeof *nt);
      if (!nt) return kd_fail(KD_ERR_NOMEM, "out of memory");
      l->t = nt, l->cap = nc;
    }
    t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    kd_buf_init(&t->arena, RESLIST_MAX_BYTES);
    if (!(t->type = strdup(type))) return kd_fail(KD_ERR_NOMEM, "out of memory");
    l->last = l->n++;
  }
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 64;
    uint32_t *no = realloc(t->offs, nc * sizeof *no);
    if (!no) return kd_fail(KD_ERR_NOMEM, "out of memory");
    t->offs = no, t->cap = nc;
  }
  size_t off = t->arena.len;
  kd_rc rc = KD_OK;
  if (ns && ns[0]) rc = kd_buf_addf(&t->arena, "%s/", ns);
  if (rc == KD_OK) rc = kd_buf_add(&t->arena, name, strlen(name) + 1);
  if (rc) {
    t->arena.len = off;
    return kd_fail_wrap(rc, "resource list");
  }
  t->offs[t->n++] = (uint32_t)off;
  l->total++;
  return KD_OK;
}

static int cmp_off(const void *a, const void *b, void *base) {
  return strcmp((const char *)base + *(const uint32_t *)a, (const char *)base + *(const uint32_t *)b);
}
static int cmp_type(const void *a, const void *b) {
  return strcmp(((const struct rl_type *)a)->type, ((const struct rl_type *)b)->type);
}

kd_rc backup_reslist_write(backup_reslist *l, backup_write_fn fn, void *ud) {
  kd_buf b = KD_BUF_INIT(1u << 20);
  kd_rc rc = KD_OK;
  if (l->n > 1) qsort(l->t, l->n, sizeof *l->t, cmp_type);
  l->last = 0;
  if ((rc = kd_buf_add(&b, "{", 1))) goto fail;
  for (size_t i = 0; i < l->n; i++) {
    struct rl_type *t = &l->t[i];
    if (t->n > 1) qsort_r(t->offs, t->n, sizeof *t->offs, cmp_off, t->arena.data);
    if ((i && (rc = kd_buf_add(&b, ",", 1))) || (rc = bk_json_cstr(&b, t->type)) || (rc = kd_buf_add(&b, ":[", 2)))
      goto fail;
    for (size_t j = 0; j < t->n; j++) {
      const char *e = t->arena.data + t->offs[j];
      if ((j && (rc = kd_buf_add(&b, ",", 1))) || (rc = bk_json_cstr(&b, e))) goto fail;
      if (b.len > (512u << 10)) { /* flush in pieces: the whole list is never one buffer */
        if ((rc = fn(b.data, b.len, ud))) goto fail;
        kd_buf_reset(&b);
      }
    }
    if ((rc = kd_buf_add(&b, "]", 1))) goto fail;
  }
  if ((rc = kd_buf_add(&b, "}", 1)) || (rc = fn(b.data, b.len, ud))) goto fail;
fail:
  kd_buf_free(&b);
  return rc;
}

/* ---- one execution ---- */

#define BK_PAGE 500                          /* items per LIST page */
#define BK_ITEM_MAX ARCHIVE_MAX_ENTRY        /* larger objects are skipped with an error (restore's cap) */
#define BK_SMALL_MAX (256u << 20)            /* a compressed resource list or results file */
#define BK_SERVER_SEL_MAX 500                /* longest merged label selector sent to the server */
#define BK_MAX_KEYS 8                        /* distinct selector keys listed separately at most */
#define BK_LIST_NS_MAX 16                    /* namespaces listed one by one at most (else all at once) */
#define BK_GONE_RESTARTS 3

static const struct kube_res bk_backup_res = {"velero.io", "v1", "backups", "Backup", true};


enum bk_special { T_OTHER, T_POD, T_PVC, T_PV, T_SA, T_CRB, T_CROLE, T_PCLASS, T_CRD, T_NS };

/* one resource type the server offers */
struct bk_type {
  struct kube_res res;
  char gr[300];
  char api_version[200];
  char rl_type[400]; /* resource-list key "<apiVersion>/<Kind>" */
  enum bk_special special;
  bool listed;
  atomic_long items;
};

/* one LIST to run: a type, in one namespace (or all), for one selector group */
struct bk_task {
  size_t type;
  const char *ns; /* NULL: all namespaces */
  size_t group;
};

/* selectors merged by key: one LIST each */
struct bk_group {
  char *server; /* label selector sent with the LIST, NULL for none */
};

struct bk_nsinfo {
  char *name;
  bool active, selected;
};

struct bk_rel { /* an object an item action adds */
  size_t type;
  char *ns, *name;
};

enum bk_file { F_TAR, F_RESLIST, F_RESULTS, F_LOGS, F_CHECKSUMS, F_META, F_COUNT };

struct bk {
  const struct backup_job *job;
  kube_client *c;
  const char *name, *ns, *bsl_name, *uid;
  char bsl_label[VELERO_LABEL_MAX + 1];
  char claim_key[VELERO_KEY_MAX];
  char start_ts[21], exp_ts[21];
  time_t start;
  int64_t ttl;
  int gz_level;

  json_t *disc;
  json_t *disc_skipped; /* group-versions discovery could not read: errors of this backup */
  backup_filter *filter;
  backup_selector **sels;
  size_t nsels;
  size_t *sel_group; /* group of each selector */
  json_t *sel_index;  /* "key=value" / "key" -> group, when every selector is one requirement */
  struct bk_group *groups;
  size_t ngroups;
  bool select_nothing;
  struct bk_type *types;
  size_t ntypes;
  struct bk_nsinfo *nsinfo;
  size_t nns;
  const char **list_ns; /* NULL: list all namespaces at once */
  size_t nlist_ns;
  struct bk_task *tasks;
  size_t ntasks;
  atomic_size_t next_task;

  pthread_mutex_t mu; /* everything below */
  archive_writer *aw;
  objstore_writer *tw;
  EVP_MD_CTX *tar_sha;
  uint64_t tar_bytes;
  backup_reslist *rl;
  joblog jl; /* log, results, the first fatal failure (its own lock) */
  json_t *tracked_ns, *written, *sa_set, *queued;
  struct bk_rel *rel;
  size_t nrel, caprel;

  atomic_long selected, backed_up;
  /* the store's first failure under the archive writer (set once, then store_failed) */
  atomic_int store_failed;
  kd_rc store_rc;
  char store_msg[900];

  char keys[F_COUNT][VELERO_KEY_MAX];
  bool committed[F_COUNT]; /* may exist in the store (written, or a write whose answer was lost) */
  bool claimed;             /* the claim is ours */
  char sums[F_COUNT][65];
  uint64_t sizes[F_COUNT];

  int64_t t0_ms; /* for the debug timings */
  pthread_t prog;
  bool prog_started;
  volatile int prog_stop;
};

/* a debug line with the time since the execution began */
static void bk_mark(const struct bk *b, const char *what) {
  kd_log(KD_LOG_DEBUG, "backup %s/%s: %s at %lld ms", b->ns, b->name, what, (long long)(kd_now_ms() - b->t0_ms));
}

static bool bk_cancelled(const struct bk *b) { return b->job->cancel && *b->job->cancel; }
static bool bk_stopped(struct bk *b) { return bk_cancelled(b) || joblog_failed(&b->jl); }

/* Failures that end the backup rather than one resource: the API server or the store is gone,
 * we were cancelled, or no memory. */
static bool bk_rc_fatal(kd_rc rc) {
  return rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT || rc == KD_ERR_CANCELLED || rc == KD_ERR_NOMEM ||
         rc == KD_ERR_UNAUTHORIZED || rc == KD_ERR_HTTP || rc == KD_ERR_IO;
}

/* ---- status ---- */

/* Write the Backup's status as a compare-and-swap from one of the phases expect (vstatus.h),
 * under the job's fence and only on this very Backup (its uid); transient failures are retried
 * for patience_ms. */
static kd_rc bk_status(struct bk *b, json_t *status, const char *const *expect, int patience_ms) {
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

/* ---- listing ---- */

typedef kd_rc (*bk_raw_fn)(const char *item, size_t len, void *ud);

/* LIST res (ns NULL: all namespaces) page by page, handing each item's exact bytes to fn. */
static kd_rc bk_list(struct bk *b, const struct kube_res *res, const char *ns, const char *label_sel,
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
static kd_rc bk_tar_out(const void *p, size_t n, void *ud) {
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

static kd_rc bk_track_ns(struct bk *b, const char *ns) {
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
                                                        VELERO_BACKUP_CHECKSUMS, VELERO_BACKUP_METADATA};
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
  if (!b->keys[F_META][0] && (rc = add_error(errors, "backup name \"%.200s\" cannot be a folder in the bucket", b->name)))
    return rc;
  if (!job->bsl) {
    if ((rc = add_error(errors, "backup storage location \"%.200s\" not found", b->bsl_name[0] ? b->bsl_name : "default")))
      return rc;
  } else {
    json_t *bspec = json_object_get(job->bsl, "spec");
    if (kd_streq(bk_cstr(json_object_get(bspec, "accessMode")), "ReadOnly") &&
        (rc = add_error(errors, "backup can't be created because backup storage location %.200s is currently in read-only mode",
                        b->bsl_name)))
      return rc;
    if (kd_streq(bk_cstr(json_object_get(json_object_get(job->bsl, "status"), "phase")), "Unavailable") &&
        (rc = add_error(errors, "backup can't be created because BackupStorageLocation %.200s is in Unavailable status.",
                        b->bsl_name)))
      return rc;
    if (!job->store && (rc = add_error(errors, "cannot open backup storage location %.200s: %.500s", b->bsl_name,
                                       job->store_error ? job->store_error : "unknown error")))
      return rc;
  }
  if (spec && !json_is_object(spec) && (rc = add_error(errors, "spec must be an object"))) return rc;
  const char *ttl = bk_cstr(json_object_get(spec, "ttl"));
  int64_t secs;
  json_t *ttlv = json_object_get(spec, "ttl");
  if (ttlv && !json_is_null(ttlv) && !ttl && (rc = add_error(errors, "spec.ttl must be a duration string"))) return rc;
  if (ttl && velero_parse_ttl(ttl, &secs) != KD_OK && (rc = add_error(errors, "invalid ttl \"%.100s\": %s", ttl, kd_errmsg())))
    return rc;
  json_t *ls = json_object_get(spec, "labelSelector"), *ors = json_object_get(spec, "orLabelSelectors");
  if (json_is_null(ls)) ls = NULL;
  if (json_is_null(ors)) ors = NULL;
  if (ls && ors &&
      (rc = add_error(errors, "encountered labelSelector as well as orLabelSelectors in backup spec, only one can be specified")))
    return rc;
  if (ors && !json_is_array(ors) && (rc = add_error(errors, "spec.orLabelSelectors must be a list"))) return rc;
  size_t cap = (ls ? 1 : 0) + json_array_size(ors);
  if (cap && (!(b->sels = calloc(cap, sizeof *b->sels)) || !(b->sel_group = calloc(cap, sizeof *b->sel_group))))
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  if (ls) {
    if ((rc = backup_selector_new(ls, &b->sels[0])) == KD_OK) b->nsels = 1;
    else if (rc == KD_ERR_INVALID) rc = add_error(errors, "invalid labelSelector: %s", kd_errmsg());
    if (rc) return rc;
  }
  size_t i;
  json_t *s;
  json_array_foreach(ors, i, s) {
    if ((rc = backup_selector_new(s, &b->sels[b->nsels])) == KD_OK) b->nsels++;
    else if (rc == KD_ERR_INVALID) rc = add_error(errors, "invalid orLabelSelectors[%zu]: %s", i, kd_errmsg());
    if (rc) return rc;
  }
  return KD_OK;
}

/* Merge the selectors into LISTs: one per key when every selector is one key=value, key in
 * (...) or key exists (kcm's forms); one unfiltered LIST otherwise; the server-side selector
 * string whole when there is just one selector. */
static kd_rc bk_plan_groups(struct bk *b) {
  kd_rc rc = KD_OK;
  if (!(b->groups = calloc(b->nsels > 1 ? b->nsels : 1, sizeof *b->groups))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  b->ngroups = 1;
  if (b->nsels == 1) {
    if (b->sels[0]->nothing) b->select_nothing = true;
    kd_buf s = KD_BUF_INIT(BK_SERVER_SEL_MAX);
    if (backup_selector_string(b->sels[0], &s) == KD_OK && s.len) b->groups[0].server = kd_buf_steal(&s);
    kd_buf_free(&s);
    return KD_OK;
  }
  if (b->nsels == 0) return KD_OK;
  /* indexable: every selector is one key=value, key in (...) or key exists (or null) */
  bool indexable = true;
  const char **keys = calloc(b->nsels, sizeof *keys);
  size_t nkeys = 0;
  if (!keys) return kd_fail(KD_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < b->nsels && indexable; i++) {
    const backup_selector *s = b->sels[i];
    if (s->nothing) { /* matches nothing */
      b->sel_group[i] = SIZE_MAX;
      continue;
    }
    if (s->n != 1 || (s->reqs[0].op != SEL_EQ && s->reqs[0].op != SEL_IN && s->reqs[0].op != SEL_EXISTS)) {
      indexable = false;
      break;
    }
    size_t k = 0;
    while (k < nkeys && strcmp(keys[k], s->reqs[0].key) != 0) k++;
    if (k == nkeys) keys[nkeys++] = s->reqs[0].key;
    b->sel_group[i] = k;
  }
  if (indexable && nkeys == 0) b->select_nothing = true; /* only null selectors */
  if (indexable && nkeys > 0) {
    /* "key=value" and "key" (exists) -> the first group holding them: one lookup per label */
    bool merged = nkeys <= BK_MAX_KEYS;
    if (!(b->sel_index = json_object())) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < b->nsels && rc == KD_OK; i++) {
      if (b->sel_group[i] == SIZE_MAX) continue;
      if (!merged) b->sel_group[i] = 0;
      const struct sel_req *r = &b->sels[i]->reqs[0];
      char key[600];
      for (size_t j = 0; j < (r->op == SEL_EXISTS ? 1 : r->nvalues) && rc == KD_OK; j++) {
        if (r->op == SEL_EXISTS) snprintf(key, sizeof key, "%s", r->key);
        else snprintf(key, sizeof key, "%s=%s", r->key, r->values[j]);
        json_t *have = json_object_get(b->sel_index, key);
        if (have && (size_t)json_integer_value(have) <= b->sel_group[i]) continue;
        if (json_object_set_new(b->sel_index, key, json_integer((json_int_t)b->sel_group[i])))
          rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      }
    }
    if (!merged || rc) {
      free(keys);
      return rc;
    }
  } else {
    for (size_t i = 0; i < b->nsels; i++) b->sel_group[i] = b->sels[i]->nothing ? SIZE_MAX : 0;
    free(keys);
    return KD_OK;
  }
  b->ngroups = nkeys;
  for (size_t k = 0; k < nkeys; k++) {
    struct bk_pats vals = {0};
    bool exists = false;
    for (size_t i = 0; i < b->nsels && rc == KD_OK; i++) {
      if (b->sel_group[i] != k) continue;
      const struct sel_req *r = &b->sels[i]->reqs[0];
      if (r->op == SEL_EXISTS) exists = true;
      for (size_t j = 0; j < r->nvalues && rc == KD_OK; j++) rc = pats_add(&vals, r->values[j]);
    }
    kd_buf s = KD_BUF_INIT(BK_SERVER_SEL_MAX);
    if (rc == KD_OK && vals.n > 1) qsort(vals.v, vals.n, sizeof *vals.v, cmp_pat);
    bool too_long = exists;
    if (rc == KD_OK && !exists) {
      too_long = kd_buf_addf(&s, "%s in (", keys[k]) != KD_OK;
      for (size_t j = 0; !too_long && j < vals.n; j++) too_long = kd_buf_addf(&s, "%s%s", j ? "," : "", vals.v[j]) != KD_OK;
      too_long = too_long || kd_buf_adds(&s, ")") != KD_OK;
    }
    if (rc == KD_OK && too_long) { /* key exists: a superset, filtered here */
      kd_buf_reset(&s);
      rc = kd_buf_adds(&s, keys[k]);
    }
    if (rc == KD_OK && !(b->groups[k].server = kd_buf_steal(&s))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    kd_buf_free(&s);
    pats_free(&vals);
  }
  free(keys);
  return rc;
}

struct bk_ns_pass {
  struct bk *b;
  json_t *excluded;
  kd_rc rc;
};

/* The first look at namespaces: which are Active, labelled velero.io/exclude-from-backup=true,
 * or selected by the label selectors (nsTracker.init). */
static kd_rc bk_on_ns_first(const char *raw, size_t len, void *ud) {
  struct bk_ns_pass *p = ud;
  struct bk *b = p->b;
  kd_rc rc = KD_OK;
  if (bk_cancelled(b)) return kd_fail(KD_ERR_CANCELLED, "cancelled");
  json_t *o = json_loadb(raw, len, JSON_ALLOW_NUL, NULL), *md = json_object_get(o, "metadata");
  const char *name = bk_cstr(json_object_get(md, "name"));
  json_t *labels = json_object_get(md, "labels");
  if (!name || !name[0]) goto done;
  if (b->nns % 64 == 0) {
    struct bk_nsinfo *ni = realloc(b->nsinfo, (b->nns + 64) * sizeof *ni);
    if (!ni) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto done;
    }
    b->nsinfo = ni;
  }
  struct bk_nsinfo *n = &b->nsinfo[b->nns];
  memset(n, 0, sizeof *n);
  if (!(n->name = strdup(name))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto done;
  }
  b->nns++;
  n->active = kd_streq(bk_cstr(json_object_get(json_object_get(o, "status"), "phase")), "Active");
  for (size_t i = 0; i < b->nsels && !n->selected; i++) n->selected = backup_selector_matches(b->sels[i], labels);
  if (kd_streq(json_string_value(json_object_get(labels, VELERO_LABEL_EXCLUDE)), "true") &&
      json_array_append_new(p->excluded, json_string(name)))
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
done:
  json_decref(o);
  return rc;
}

static const struct kube_res bk_ns_res = {"", "v1", "namespaces", "Namespace", false};

static bool has_glob(const char *s) { return strpbrk(s, "*?[{\\") != NULL; }

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
  struct bk_ns_pass p = {b, excluded, KD_OK};
  if ((rc = bk_list(b, &bk_ns_res, NULL, NULL, NULL, bk_on_ns_first, &p))) {
    rc = kd_fail_wrap(rc, "listing namespaces");
    goto fail;
  }
  if ((rc = backup_filter_new(json_object_get(b->job->backup, "spec"), b->disc, excluded, errors, &b->filter))) goto fail;
  if ((rc = bk_plan_groups(b))) goto fail;

  /* every resource the server offers, in Velero's order: as discovered, extensions last */
  size_t nd = json_array_size(b->disc);
  if (nd && !(b->types = calloc(nd, sizeof *b->types))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  static const struct {
    const char *res, *g1, *g2;
  } cohab[] = {{"deployments", "extensions", "apps"},
               {"daemonsets", "extensions", "apps"},
               {"replicasets", "extensions", "apps"},
               {"networkpolicies", "extensions", "networking.k8s.io"},
               {"events", "", "events.k8s.io"}};
  bool seen[KD_ARRAY_LEN(cohab)] = {0};
  static const struct {
    const char *gr;
    enum bk_special s;
  } specials[] = {{"pods", T_POD},
                  {"persistentvolumeclaims", T_PVC},
                  {"persistentvolumes", T_PV},
                  {"serviceaccounts", T_SA},
                  {"clusterrolebindings.rbac.authorization.k8s.io", T_CRB},
                  {"clusterroles.rbac.authorization.k8s.io", T_CROLE},
                  {"priorityclasses.scheduling.k8s.io", T_PCLASS},
                  {"customresourcedefinitions.apiextensions.k8s.io", T_CRD},
                  {"namespaces", T_NS}};
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < b->filter->nres; i++) {
      const struct bk_dres *d = &b->filter->res[i];
      if ((strcmp(d->group, "extensions") == 0) != (pass == 1)) continue;
      struct bk_type *t = &b->types[b->ntypes];
      memset(t, 0, sizeof *t);
      if (strlen(d->group) >= sizeof t->res.group || strlen(d->version) >= sizeof t->res.version ||
          strlen(d->resource) >= sizeof t->res.resource || strlen(d->kind) >= sizeof t->res.kind)
        continue;
      strcpy(t->res.group, d->group);
      strcpy(t->res.version, d->version);
      strcpy(t->res.resource, d->resource);
      strcpy(t->res.kind, d->kind);
      t->res.namespaced = d->namespaced;
      strcpy(t->gr, d->gr);
      snprintf(t->api_version, sizeof t->api_version, "%s%s%s", d->group, d->group[0] ? "/" : "", d->version);
      snprintf(t->rl_type, sizeof t->rl_type, "%s/%s", t->api_version, d->kind);
      for (size_t s = 0; s < KD_ARRAY_LEN(specials); s++)
        if (strcmp(specials[s].gr, t->gr) == 0) t->special = specials[s].s;
      b->ntypes++;
      if (!d->listable || t->special == T_NS || !backup_filter_includes(b->filter, t->gr)) continue;
      bool skip = false;
      for (size_t c = 0; c < KD_ARRAY_LEN(cohab); c++) {
        if (strcmp(d->resource, cohab[c].res) != 0) continue;
        if (strcmp(d->group, cohab[c].g1) != 0 && strcmp(d->group, cohab[c].g2) != 0) continue;
        if (seen[c]) skip = true;
        seen[c] = true;
      }
      t->listed = !skip;
    }
  }

  /* namespaces to list one by one when the includes name a few exact namespaces */
  const backup_filter *f = b->filter;
  bool all = backup_filter_namespace(f, "*");
  for (size_t i = 0; i < f->ns_inc.n && !all; i++) all = has_glob(f->ns_inc.v[i]);
  if (!all && f->ns_inc.n <= BK_LIST_NS_MAX) {
    if (f->ns_inc.n && !(b->list_ns = calloc(f->ns_inc.n, sizeof *b->list_ns))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    for (size_t i = 0; i < f->ns_inc.n; i++)
      if (f->ns_inc.v[i][0] && backup_filter_namespace(f, f->ns_inc.v[i])) b->list_ns[b->nlist_ns++] = f->ns_inc.v[i];
    if (!b->nlist_ns) { /* nothing to list in any namespace; keep a non-NULL marker */
      free(b->list_ns);
      b->list_ns = calloc(1, sizeof *b->list_ns);
      if (!b->list_ns) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
        goto fail;
      }
    }
  }

  /* the LIST tasks */
  size_t cap = 0;
  for (size_t i = 0; i < b->ntypes; i++)
    if (b->types[i].listed) cap += (b->types[i].res.namespaced && b->list_ns ? b->nlist_ns : 1) * b->ngroups;
  if (cap && !(b->tasks = calloc(cap, sizeof *b->tasks))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < b->ntypes && !b->select_nothing; i++) {
    if (!b->types[i].listed) continue;
    size_t nn = b->types[i].res.namespaced && b->list_ns ? b->nlist_ns : 1;
    for (size_t n = 0; n < nn; n++)
      for (size_t g = 0; g < b->ngroups; g++) {
        struct bk_task *k = &b->tasks[b->ntasks++];
        k->type = i;
        k->ns = b->types[i].res.namespaced && b->list_ns ? b->list_ns[n] : NULL;
        k->group = g;
      }
  }

  /* nsTracker.init: namespaces selected by their own labels or by name */
  bool sel_and_all = b->nsels > 0 && backup_filter_all_namespaces(f);
  for (size_t i = 0; i < b->nns; i++) {
    struct bk_nsinfo *n = &b->nsinfo[i];
    if (!n->active) continue;
    if (n->selected || (!sel_and_all && backup_filter_namespace(f, n->name)))
      if ((rc = bk_track_ns(b, n->name))) goto fail;
  }
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
    return add_error(errors, "backup %.200s already exists in backup storage location %.200s: it is never overwritten", b->name,
                     b->bsl_name);
  return KD_OK;
}

/* ---- writing ---- */

static void bk_hex(const unsigned char *d, unsigned n, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) out[2 * i] = hex[d[i] >> 4], out[2 * i + 1] = hex[d[i] & 15];
  out[2 * n] = '\0';
}

static kd_rc bk_put(struct bk *b, enum bk_file f, const void *data, size_t n) {
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
  if (json_is_object(spec) && !json_string_length(json_object_get(spec, "storageLocation")))
    json_object_set_new(spec, "storageLocation", json_string(b->bsl_name));
  if (json_is_object(spec) && !json_string_length(json_object_get(spec, "ttl")))
    json_object_set_new(spec, "ttl", json_string(VELERO_DEFAULT_TTL));
  s = json_dumps(o, JSON_INDENT(2));
done:
  json_decref(o);
  return s;
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
  if (rc || (rc = bk_put(b, F_CHECKSUMS, tmp.data, tmp.len))) goto fail;
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
    rc = add_error(errors, "backup %.200s already exists in backup storage location %.200s (another Backup of that "
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

static void bk_stop_progress(struct bk *b) {
  if (!b->prog_started) return;
  b->prog_stop = 1;
  pthread_join(b->prog, NULL);
  b->prog_started = false;
}

/* Everything between InProgress and the last file. KD_OK: every file is written. */
static kd_rc bk_run(struct bk *b, json_t **final_status) {
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
  /* Velero logs an error for an included namespace that does not exist */
  if (backup_filter_includes(b->filter, "namespaces")) {
    for (size_t i = 0; i < b->filter->ns_inc.n; i++) {
      const char *n = b->filter->ns_inc.v[i];
      bool found = strcmp(n, "*") == 0 || has_glob(n);
      for (size_t j = 0; !found && j < b->nns; j++) found = strcmp(b->nsinfo[j].name, n) == 0;
      if (!found) joblog_note(&b->jl, JOBLOG_ERROR, NULL, "fail to get the namespace %s specified in backup.Spec.IncludedNamespaces", n);
    }
  }
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
  free(th);
  return KD_OK;
fail:
  bk_stop_progress(b);
  free(th);
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
