/* jsonpatch_merge.c — RFC 7386 merge patch and create merge patch with evanphx/json-patch v5
 * semantics (see jsonpatch.h), on jansson values. */
#include "jsonpatch_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- merge patch */

static double jp_num(json_t *v) { return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v); }

/* A deep copy of v (NULL past JP_MAX_DEPTH or out of memory). prune: without the nulls in
 * objects and arrays (evanphx's pruneNulls); else with every number as Go's json.Unmarshal into
 * interface{} leaves it, a float64 (whole ones as integers here, as they print alike). */
static json_t *jp_rebuild(json_t *v, int depth, bool prune) {
  if (depth > JP_MAX_DEPTH) return NULL;
  if (!prune && json_is_number(v)) {
    char buf[64];
    double d = jp_num(v);
    jp_json_float(d, buf, sizeof buf);
    if (!strpbrk(buf, ".eE")) {
      errno = 0;
      long long i = strtoll(buf, NULL, 10);
      if (errno == 0) return json_integer(i);
    }
    return json_real(d);
  }
  if (json_is_object(v)) {
    json_t *r = json_object();
    const char *k;
    size_t kl;
    json_t *m;
    if (!r) return NULL;
    json_object_keylen_foreach(v, k, kl, m) {
      if (prune && json_is_null(m)) continue;
      json_t *c = jp_rebuild(m, depth + 1, prune);
      if (!c || json_object_setn_new_nocheck(r, k, kl, c)) {
        json_decref(r);
        return NULL;
      }
    }
    return r;
  }
  if (json_is_array(v)) {
    json_t *r = json_array();
    if (!r) return NULL;
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *m = json_array_get(v, i);
      if (prune && json_is_null(m)) continue;
      json_t *c = jp_rebuild(m, depth + 1, prune);
      if (!c || json_array_append_new(r, c)) {
        json_decref(r);
        return NULL;
      }
    }
    return r;
  }
  return json_copy(v);
}
static json_t *jp_prune(json_t *v, int depth) { return jp_rebuild(v, depth, true); }

static kd_rc jp_merge_docs(json_t *doc, json_t *patch, int depth);

/* evanphx's merge(cur, patch): a new reference to the merged value (cur is consumed). */
static kd_rc jp_merge_value(json_t *cur, json_t *patch, int depth, json_t **out) {
  *out = NULL;
  if (!json_is_object(cur)) {
    json_decref(cur);
    return (*out = jp_prune(patch, depth)) ? KD_OK : jp_nomem();
  }
  if (!json_is_object(patch)) {
    json_decref(cur);
    return (*out = json_deep_copy(patch)) ? KD_OK : jp_nomem();
  }
  kd_rc rc = jp_merge_docs(cur, patch, depth);
  if (rc != KD_OK) {
    json_decref(cur);
    return rc;
  }
  *out = cur;
  return KD_OK;
}

static kd_rc jp_merge_docs(json_t *doc, json_t *patch, int depth) {
  const char *k;
  size_t kl;
  json_t *v;
  if (depth > JP_MAX_DEPTH) return kd_fail(KD_ERR_TOOBIG, "merge patch nested deeper than %d levels", JP_MAX_DEPTH);
  json_object_keylen_foreach(patch, k, kl, v) {
    if (json_is_null(v)) {
      json_object_deln(doc, k, kl);
      continue;
    }
    json_t *cur = json_object_getn(doc, k, kl), *nv = NULL;
    kd_rc rc;
    if (!cur || json_is_null(cur)) rc = (nv = jp_prune(v, depth + 1)) ? KD_OK : jp_nomem();
    else rc = jp_merge_value(json_incref(cur), v, depth + 1, &nv);
    if (rc != KD_OK) return rc;
    if (json_object_setn_new_nocheck(doc, k, kl, nv)) return jp_nomem();
  }
  return KD_OK;
}

kd_rc jsonpatch_merge(json_t *doc, json_t *patch, json_t **out) {
  *out = NULL;
  if (!doc || json_is_null(doc)) return kd_fail(KD_ERR_INVALID, "merge patch: Invalid JSON Document (null)");
  if (!patch || json_is_null(patch)) return kd_fail(KD_ERR_INVALID, "merge patch: Invalid JSON Patch (null)");
  if (json_is_object(doc) && json_is_object(patch)) {
    json_t *d = json_deep_copy(doc);
    if (!d) return jp_nomem();
    kd_rc rc = jp_merge_docs(d, patch, 0);
    if (rc != KD_OK) {
      json_decref(d);
      return rc;
    }
    *out = d;
    return KD_OK;
  }
  if (json_is_object(patch) || json_is_array(patch)) return (*out = jp_prune(patch, 0)) ? KD_OK : jp_nomem();
  return kd_fail(KD_ERR_INVALID, "merge patch: Invalid JSON Patch (a %s is neither an object nor an array)",
                 json_is_string(patch) ? "string" : json_is_number(patch) ? "number" : "boolean");
}

/* ---------------------------------------------------------------- create merge patch */

/* Go's type classes after decoding into interface{}: numbers are all float64. */
static int jp_gotype(json_t *v) {
  switch (json_typeof(v)) {
  case JSON_INTEGER:
  case JSON_REAL: return JSON_REAL;
  case JSON_TRUE:
  case JSON_FALSE: return JSON_TRUE;
  default: return (int)json_typeof(v);
  }
}


static bool jp_matches(json_t *a, json_t *b, int depth) {
  if (depth > JP_MAX_DEPTH || jp_gotype(a) != jp_gotype(b)) return false;
  switch (jp_gotype(a)) {
  case JSON_STRING:
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
  case JSON_REAL: return jp_num(a) == jp_num(b);
  case JSON_TRUE: return json_typeof(a) == json_typeof(b);
  case JSON_NULL: return true;
  case JSON_OBJECT: {
    if (json_object_size(a) != json_object_size(b)) return false;
    const char *k;
    size_t kl;
    json_t *bv;
    json_object_keylen_foreach(b, k, kl, bv) {
      json_t *av = json_object_getn(a, k, kl);
      if (!av || !jp_matches(av, bv, depth + 1)) return false;
    }
    return true;
  }
  case JSON_ARRAY:
    if (json_array_size(a) != json_array_size(b)) return false;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!jp_matches(json_array_get(a, i), json_array_get(b, i), depth + 1)) return false;
    return true;
  }
  return false;
}

static json_t *jp_as_go(json_t *v, int depth) { return jp_rebuild(v, depth, false); }

/* evanphx's getDiff(a, b) into the new object *out. a and b are objects or NULL (Go's nil map). */
static kd_rc jp_diff(json_t *a, json_t *b, int depth, json_t **out) {
  json_t *into = json_object();
  const char *k;
  size_t kl;
  json_t *bv, *av;
  kd_rc rc = KD_OK;
  *out = NULL;
  if (!into) return jp_nomem();
  if (depth > JP_MAX_DEPTH) {
    rc = kd_fail(KD_ERR_TOOBIG, "create merge patch: nested deeper than %d levels", JP_MAX_DEPTH);
    goto fail;
  }
  if (b) json_object_keylen_foreach(b, k, kl, bv) {
    av = a ? json_object_getn(a, k, kl) : NULL;
    json_t *put = NULL;
    if (!av || jp_gotype(av) != jp_gotype(bv)) {
      put = jp_as_go(bv, depth + 1);
      if (!put) rc = jp_nomem();
    } else if (json_is_object(av)) {
      rc = jp_diff(av, bv, depth + 1, &put);
      if (rc == KD_OK && json_object_size(put) == 0) json_decref(put), put = NULL;
    } else if (!json_is_null(av) && !jp_matches(av, bv, depth + 1)) {
      put = jp_as_go(bv, depth + 1);
      if (!put) rc = jp_nomem();
    }
    if (rc != KD_OK) goto fail;
    if (put && json_object_setn_new_nocheck(into, k, kl, put)) {
      rc = jp_nomem();
      goto fail;
    }
  }
  if (a) json_object_keylen_foreach(a, k, kl, av) {
    if (b && json_object_getn(b, k, kl)) continue;
    if (json_object_setn_new_nocheck(into, k, kl, json_null())) {
      rc = jp_nomem();
      goto fail;
    }
  }
  *out = into;
  return KD_OK;
fail:
  json_decref(into);
  return rc;
}

static kd_rc jp_object_patch(json_t *a, json_t *b, json_t **out) {
  if (!(json_is_object(a) || json_is_null(a)) || !(json_is_object(b) || json_is_null(b)))
    return kd_fail(KD_ERR_INVALID, "create merge patch: Invalid JSON Document (not an object)");
  return jp_diff(json_is_null(a) ? NULL : a, json_is_null(b) ? NULL : b, 0, out);
}

kd_rc jsonpatch_create_merge(json_t *original, json_t *modified, json_t **out) {
  *out = NULL;
  if (!original || !modified) return kd_fail(KD_ERR_INVALID, "create merge patch: no document");
  bool oa = json_is_array(original), ma = json_is_array(modified);
  if (oa != ma) return kd_fail(KD_ERR_INVALID, "create merge patch: Mismatched JSON Documents (an array and a non-array)");
  if (!oa) return jp_object_patch(original, modified, out);
  size_t n = json_array_size(original);
  if (json_array_size(modified) != n)
    return kd_fail(KD_ERR_INVALID, "create merge patch: Invalid JSON Document (arrays of %zu and %zu documents)", n,
                   json_array_size(modified));
  json_t *r = json_array();
  if (!r) return jp_nomem();
  for (size_t i = 0; i < n; i++) {
    json_t *p = NULL;
    kd_rc rc = jp_object_patch(json_array_get(original, i), json_array_get(modified, i), &p);
    if (rc == KD_OK && json_array_append_new(r, p)) rc = jp_nomem();
    if (rc != KD_OK) {
      json_decref(r);
      return kd_fail_wrap(rc, "document %zu", i);
    }
  }
  *out = r;
  return KD_OK;
}
