/* backup_select.c — what a Backup selects (see backup.h, backup_int.h): Velero's glob, label
 * selectors, the include/exclude filters, the resource list, the first look at namespaces and
 * the plan of LISTs. Velero's rules: pkg/util/collections/includes_excludes.go,
 * pkg/backup/item_collector.go, pkg/discovery/helper.go. */
#include "backup_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
const char *bk_cstr(json_t *v) {
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

/* Append a formatted validation error to errors (cut at 1 KiB); KD_ERR_NOMEM only. */
kd_rc bk_add_error(json_t *errors, const char *fmt, ...) {
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
      (rc = bk_add_error(errors, "%s: includes list must either contain '*' only, or a non-empty list of items", what)))
    goto fail;
  if (!scoped && pats_has(&exc, "*") && (rc = bk_add_error(errors, "%s: excludes list cannot contain '*'", what))) goto fail;
  if (scoped && exc.n > 1 && pats_has(&exc, "*") &&
      (rc = bk_add_error(errors, "%s: excludes list must either contain '*' only, or a non-empty list of items", what)))
    goto fail;
  if (scoped && inc.n > 0 && pats_has(&exc, "*") &&
      (rc = bk_add_error(errors, "%s: when exclude is '*', include cannot have value", what)))
    goto fail;
  if (exc.n > 1) qsort(exc.v, exc.n, sizeof *exc.v, cmp_pat);
  for (size_t i = 0; i < exc.n; i++)
    if (pats_has(&inc, exc.v[i]) &&
        (rc = bk_add_error(errors, "%s: excludes list cannot contain an item in the includes list: %.200s", what, exc.v[i])))
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

bool backup_verbs_backed_up(json_t *verbs) {
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

/* f->res: the usable entries of discovery (strings borrowed); KD_ERR_NOMEM only. */
static kd_rc filter_discovered(backup_filter *f, json_t *discovery) {
  size_t nd = json_array_size(discovery);
  if (nd && !(f->res = calloc(nd, sizeof *f->res))) return kd_fail(KD_ERR_NOMEM, "out of memory");
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
    r->listable = backup_verbs_backed_up(json_object_get(e, "verbs"));
    r->shorts = json_object_get(e, "shortNames");
    int w = r->group[0] ? snprintf(r->gr, sizeof r->gr, "%s.%s", r->resource, r->group)
                        : snprintf(r->gr, sizeof r->gr, "%s", r->resource);
    if (w < 0 || (size_t)w >= sizeof r->gr) continue;
    f->nres++;
  }
  return KD_OK;
}

kd_rc backup_filter_new(json_t *spec, json_t *discovery, json_t *extra_excluded_ns, json_t *errors, backup_filter **out) {
  kd_rc rc = KD_OK;
  json_t *owned[6] = {0};
  *out = NULL;
  backup_filter *f = calloc(1, sizeof *f);
  if (!f) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if ((rc = filter_discovered(f, discovery))) goto fail;
  size_t i;
  json_t *e;

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
      (rc = bk_add_error(errors, "spec.includeClusterResources must be true, false or null")))
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
      (rc = bk_add_error(errors, "include-resources, exclude-resources and include-cluster-resources are old filter "
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
      if (why && (rc = bk_add_error(errors, "Invalid included/excluded namespace lists: invalid namespace \"%.100s\": %s", s, why)))
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

/* Merge the selectors into LISTs: one per key when every selector is one key=value, key in
 * (...) or key exists (kcm's forms); one unfiltered LIST otherwise; the server-side selector
 * string whole when there is just one selector. */
kd_rc bk_plan_groups(struct bk *b) {
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

/* The first look at namespaces (see backup_int.h). */
kd_rc bk_scan_namespaces(struct bk *b, json_t *excluded) {
  struct bk_ns_pass p = {b, excluded, KD_OK};
  kd_rc rc = bk_list(b, &bk_ns_res, NULL, NULL, NULL, bk_on_ns_first, &p);
  return rc ? kd_fail_wrap(rc, "listing namespaces") : KD_OK;
}

/* b->types from the filter's discovery, and which of them are listed (once per cohabiting pair). */
static kd_rc bk_plan_types(struct bk *b) {
  /* every resource the server offers, in Velero's order: as discovered, extensions last */
  size_t nd = json_array_size(b->disc);
  if (nd && !(b->types = calloc(nd, sizeof *b->types))) return kd_fail(KD_ERR_NOMEM, "out of memory");
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
  return KD_OK;
}

/* The LISTs to run: each listed type per selector group, per namespace when few are named. */
static kd_rc bk_plan_tasks(struct bk *b) {
  /* namespaces to list one by one when the includes name a few exact namespaces */
  const backup_filter *f = b->filter;
  bool all = backup_filter_namespace(f, "*");
  for (size_t i = 0; i < f->ns_inc.n && !all; i++) all = has_glob(f->ns_inc.v[i]);
  if (!all && f->ns_inc.n <= BK_LIST_NS_MAX) {
    if (f->ns_inc.n && !(b->list_ns = calloc(f->ns_inc.n, sizeof *b->list_ns))) return kd_fail(KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < f->ns_inc.n; i++)
      if (f->ns_inc.v[i][0] && backup_filter_namespace(f, f->ns_inc.v[i])) b->list_ns[b->nlist_ns++] = f->ns_inc.v[i];
    if (!b->nlist_ns) { /* nothing to list in any namespace; keep a non-NULL marker */
      free(b->list_ns);
      b->list_ns = calloc(1, sizeof *b->list_ns);
      if (!b->list_ns) return kd_fail(KD_ERR_NOMEM, "out of memory");
    }
  }

  /* the LIST tasks */
  size_t cap = 0;
  for (size_t i = 0; i < b->ntypes; i++)
    if (b->types[i].listed) cap += (b->types[i].res.namespaced && b->list_ns ? b->nlist_ns : 1) * b->ngroups;
  if (cap && !(b->tasks = calloc(cap, sizeof *b->tasks))) return kd_fail(KD_ERR_NOMEM, "out of memory");
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
  return KD_OK;
}

/* The types, the LIST tasks and the namespaces tracked from the start (see backup_int.h). */
kd_rc bk_plan_lists(struct bk *b) {
  kd_rc rc;
  if ((rc = bk_plan_types(b)) || (rc = bk_plan_tasks(b))) return rc;
  const backup_filter *f = b->filter;
  /* nsTracker.init: namespaces selected by their own labels or by name */
  bool sel_and_all = b->nsels > 0 && backup_filter_all_namespaces(f);
  for (size_t i = 0; i < b->nns; i++) {
    struct bk_nsinfo *n = &b->nsinfo[i];
    if (!n->active) continue;
    if (n->selected || (!sel_and_all && backup_filter_namespace(f, n->name)))
      if ((rc = bk_track_ns(b, n->name))) return rc;
  }
  return KD_OK;
}

/* Velero logs an error for an included namespace that does not exist */
void bk_note_missing_namespaces(struct bk *b) {
  if (backup_filter_includes(b->filter, "namespaces")) {
    for (size_t i = 0; i < b->filter->ns_inc.n; i++) {
      const char *n = b->filter->ns_inc.v[i];
      bool found = strcmp(n, "*") == 0 || has_glob(n);
      for (size_t j = 0; !found && j < b->nns; j++) found = strcmp(b->nsinfo[j].name, n) == 0;
      if (!found) joblog_note(&b->jl, JOBLOG_ERROR, NULL, "fail to get the namespace %s specified in backup.Spec.IncludedNamespaces", n);
    }
  }
}
