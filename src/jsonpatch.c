/* jsonpatch.c — JSON Patch with evanphx/json-patch v5 semantics (see jsonpatch.h): the RFC 6902
 * operations on the document model of jsonpatch_int.h. Go's number and string text is in
 * jsonpatch_go.c, the model and Go's JSON reader in jsonpatch_node.c, RFC 7386 merge patch in
 * jsonpatch_merge.c. */
#include "jsonpatch_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */

/* A printable, bounded rendering of s[0..n) for messages. */
void jp_show(const char *s, size_t n, char *out, size_t size) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 8 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
    else out[o++] = (char)c;
  }
  o = kd_utf8_cut(out, o);
  out[o] = '\0';
}

static kd_rc jp_err(jp_ctx *c, jsonpatch_err why, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static kd_rc jp_err(jp_ctx *c, jsonpatch_err why, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c) c->why = why;
  return kd_fail(KD_ERR_INVALID, "%s", msg);
}

/* See jsonpatch_int.h. */
kd_rc jp_nomem(void) { return kd_fail(KD_ERR_NOMEM, "JSON patch: out of memory"); }

/* ---------------------------------------------------------------- operations */

enum { JS_ABSENT, JS_STR, JS_BAD };

typedef struct jp_str {
  int state; /* JS_ABSENT: missing or null; JS_BAD: not a string */
  const char *s;
  size_t n;
} jp_str;

typedef struct jp_op {
  bool present; /* false: the operation was null */
  jp_str op, path, from;
  bool has_value;
  const jp_node *value; /* template, with has_value: NULL never (a null is JN_PNULL) */
} jp_op;

static void jp_str_of(const jp_node *member, bool present, jp_str *out) {
  out->state = JS_ABSENT;
  if (!present || !member || member->kind == JN_PNULL) return;
  if (member->kind == JN_SCALAR && member->text[0] == '"' && json_is_string(member->val)) {
    out->state = JS_STR;
    out->s = json_string_value(member->val);
    out->n = json_string_length(member->val);
    return;
  }
  out->state = JS_BAD;
}

/* Operations out of a parsed patch (nodes stay owned by root). */
static kd_rc jp_ops(jp_ctx *c, const jp_node *root, jp_op **ops, size_t *nops) {
  *ops = NULL;
  *nops = 0;
  if (!root || root->kind == JN_PNULL) return KD_OK; /* null: no operations */
  if (root->kind != JN_ARR) return jp_err(c, JSONPATCH_DECODE, "a JSON patch must be an array of operations");
  jp_op *o = calloc(root->n ? root->n : 1, sizeof *o);
  if (!o) return jp_nomem();
  for (size_t i = 0; i < root->n; i++) {
    const jp_node *e = root->kid[i];
    if (!e) continue; /* a null operation: Kind() is "unknown" */
    if (e->kind != JN_OBJ) {
      free(o);
      return jp_err(c, JSONPATCH_DECODE, "JSON patch operation %zu is not an object", i);
    }
    o[i].present = true;
    static const char *names[] = {"op", "path", "from"};
    jp_str *dst[] = {&o[i].op, &o[i].path, &o[i].from};
    for (int k = 0; k < 3; k++) {
      long at = jp_find_key(e, names[k], strlen(names[k]));
      jp_str_of(at >= 0 ? e->kid[at] : NULL, at >= 0, dst[k]);
    }
    long at = jp_find_key(e, "value", 5);
    if (at >= 0) {
      o[i].has_value = true;
      o[i].value = e->kid[at];
    }
  }
  *ops = o;
  *nops = root->n;
  return KD_OK;
}

/* RFC 6901 token decoding, evanphx's way: "~1" → "/", "~0" → "~", left to right. */
static size_t jp_unescape(const char *s, size_t n, char *o) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
      o[w++] = s[i + 1] == '1' ? '/' : '~';
      i++;
    } else {
      o[w++] = s[i];
    }
  }
  return w;
}

/* Array index rules of evanphx's partialArray: get/set, add, remove. */
enum { JI_GET, JI_ADD, JI_REMOVE };

static kd_rc jp_index(jp_ctx *c, const jp_node *a, const char *key, size_t kl, int mode, size_t *at) {
  if (mode == JI_ADD && kl == 1 && key[0] == '-') {
    *at = a->n;
    return KD_OK;
  }
  long long idx;
  char show[80];
  jp_show(key, kl, show, sizeof show);
  if (!jp_atoi(key, kl, &idx)) return jp_err(c, JSONPATCH_FAILED, "'%s' is not an array index", show);
  long long len = (long long)a->n + (mode == JI_ADD ? 1 : 0);
  if (idx >= len) return jp_err(c, JSONPATCH_FAILED, "index %lld is out of range (array of %zu)", idx, a->n);
  if (idx < 0) {
    if (idx < -len) return jp_err(c, JSONPATCH_FAILED, "index %lld is out of range (array of %zu)", idx, a->n);
    idx += len;
  }
  *at = (size_t)idx;
  return KD_OK;
}

/* Walk to the container of the last token of path (evanphx's findObject). *con is NULL when the
 * path does not lead to a container; *key (caller frees) is the decoded last token. Walking into
 * a null the patch put there is a panic in evanphx: JSONPATCH_CRASH. */
static kd_rc jp_find(jp_ctx *c, jp_node *root, const jp_str *path, jp_node **con, char **key, size_t *kl, int *depth) {
  *con = NULL;
  *key = NULL;
  *depth = 0;
  const char *s = path->s, *end = s + path->n;
  const char *slash = memchr(s, '/', path->n);
  if (!slash) return KD_OK; /* fewer than two parts */
  char *tok = malloc(path->n + 1);
  if (!tok) return jp_nomem();
  jp_node *cur = root;
  const char *p = slash + 1;
  for (;;) {
    const char *q = memchr(p, '/', (size_t)(end - p));
    size_t tl = jp_unescape(p, (size_t)((q ? q : end) - p), tok);
    if (!q) { /* the last token: the key */
      tok[tl] = '\0';
      *con = cur;
      *key = tok;
      *kl = tl;
      return KD_OK;
    }
    if (cur->kind == JN_RNULL) {
      free(tok);
      return jp_err(c, JSONPATCH_CRASH, "cannot walk into a null this patch copied (evanphx/json-patch would crash)");
    }
    jp_node *next = NULL;
    bool found = false;
    if (cur->kind == JN_OBJ) {
      long at = jp_find_key(cur, tok, tl);
      if (at >= 0) next = cur->kid[at], found = true;
    } else {
      long long idx;
      if (jp_atoi(tok, tl, &idx)) {
        long long len = (long long)cur->n;
        if (idx < 0 && idx >= -len) idx += len;
        if (idx >= 0 && idx < len) next = cur->kid[idx], found = true;
      }
    }
    if (!found || !next || next->kind == JN_SCALAR) { /* missing, a document null, or not a container */
      free(tok);
      return KD_OK;
    }
    if (next->kind == JN_PNULL) {
      free(tok);
      return jp_err(c, JSONPATCH_CRASH, "cannot walk into a null this patch added (evanphx/json-patch would crash)");
    }
    cur = next;
    (*depth)++;
    p = q + 1;
  }
}

/* A member or item of a container: *at its position, *found false for a missing object member;
 * bad array indexes fail (as evanphx's get). */
static kd_rc jp_get(jp_ctx *c, jp_node *con, const char *key, size_t kl, size_t *at, bool *found) {
  *found = false;
  if (con->kind == JN_RNULL) return jp_err(c, JSONPATCH_CRASH, "a null this patch copied is not a container (evanphx/json-patch would crash)");
  if (con->kind == JN_OBJ) {
    long i = jp_find_key(con, key, kl);
    if (i >= 0) *at = (size_t)i, *found = true;
    return KD_OK;
  }
  kd_rc rc = jp_index(c, con, key, kl, JI_GET, at);
  if (rc == KD_OK) *found = true;
  return rc;
}

/* Add v (owned; freed on failure) at key of con. */
static kd_rc jp_add_to(jp_ctx *c, jp_node *con, const char *key, size_t kl, jp_node *v, int depth) {
  kd_rc rc = KD_OK;
  if (con->kind == JN_RNULL) {
    jp_free(v);
    return jp_err(c, JSONPATCH_CRASH, "a null this patch copied is not a container (evanphx/json-patch would crash)");
  }
  if ((rc = jp_account(c, v, depth + 1)) != KD_OK) {
    jp_free(v);
    return rc;
  }
  if (con->kind == JN_OBJ) {
    long old = jp_find_key(con, key, kl);
    if (old >= 0) jp_unaccount(c, con->kid[old]);
    return jp_obj_set(con, key, kl, v);
  }
  size_t at;
  if ((rc = jp_index(c, con, key, kl, JI_ADD, &at)) != KD_OK) {
    jp_free(v);
    return rc;
  }
  return jp_arr_insert(con, at, v);
}

enum { JE_EQ, JE_NE, JE_CRASH };

/* evanphx's lazyNode.equal: n from the document, o from the operation's value. */
static int jp_equal(const jp_node *n, const jp_node *o) {
  if (!n) return JE_CRASH;
  if (n->kind == JN_SCALAR || n->kind == JN_PNULL) {
    if (!o) return JE_CRASH;
    if (o->kind == JN_OBJ || o->kind == JN_ARR) return JE_NE;
    if (n->kind == JN_PNULL || o->kind == JN_PNULL) return n->kind == o->kind ? JE_EQ : JE_NE;
    if (o->kind == JN_RNULL) return JE_NE;
    return n->tlen == o->tlen && memcmp(n->text, o->text, n->tlen) == 0 ? JE_EQ : JE_NE;
  }
  if (!o) return JE_CRASH;
  if (n->kind == JN_RNULL) return o->kind == JN_OBJ ? JE_CRASH : JE_NE;
  if (n->kind != o->kind) return JE_NE;
  if (n->n != o->n) return JE_NE;
  for (size_t i = 0; i < n->n; i++) {
    const jp_node *v = n->kid[i], *ov;
    if (n->kind == JN_OBJ) {
      long at = jp_find_key(o, n->keys[i], n->klen[i]);
      if (at < 0) return JE_NE;
      ov = o->kid[at];
      if ((v == NULL) != (ov == NULL)) return JE_NE;
      if (!v) continue;
    } else {
      ov = o->kid[i];
    }
    int r = jp_equal(v, ov);
    if (r != JE_EQ) return r;
  }
  return JE_EQ;
}

static const char *jp_kind_name(const jp_op *op) {
  if (!op->present || op->op.state != JS_STR) return NULL;
  static const char *kinds[] = {"add", "remove", "replace", "move", "copy", "test"};
  for (size_t i = 0; i < KD_ARRAY_LEN(kinds); i++)
    if (op->op.n == strlen(kinds[i]) && memcmp(op->op.s, kinds[i], op->op.n) == 0) return kinds[i];
  return NULL;
}

/* The path or from member: JSONPATCH_MISSING when absent; when it is not a string, bad_why. */
static kd_rc jp_need(jp_ctx *c, const jp_str *s, const char *what, jsonpatch_err bad_why) {
  if (s->state == JS_STR) return KD_OK;
  if (s->state == JS_ABSENT) return jp_err(c, JSONPATCH_MISSING, "the operation has no \"%s\"", what);
  return jp_err(c, bad_why, "\"%s\" is not a string", what);
}

static kd_rc jp_missing_path(jp_ctx *c, const jp_str *s) {
  char show[200];
  jp_show(s->s, s->n, show, sizeof show);
  return jp_err(c, JSONPATCH_MISSING, "the document is missing the path \"%s\"", show);
}

/* Where an operation acts: the container of its path's last token, that token decoded (the
 * caller frees it) and the container's depth. */
typedef struct jp_target {
  jp_node *con;
  char *key;
  size_t kl;
  int depth;
} jp_target;

/* The target of what s names (jp_need with what and bad_why, then jp_find): a path to no
 * container is JSONPATCH_MISSING. t->key is the caller's to free, also on failure. */
static kd_rc jp_locate(jp_ctx *c, jp_node *root, const jp_str *s, const char *what, jsonpatch_err bad_why,
                       jp_target *t) {
  kd_rc rc = jp_need(c, s, what, bad_why);
  if (rc == KD_OK) rc = jp_find(c, root, s, &t->con, &t->key, &t->kl, &t->depth);
  if (rc == KD_OK && !t->con) rc = jp_missing_path(c, s);
  return rc;
}

/* add: op's value (a fresh copy) at t. */
static kd_rc jp_op_add(jp_ctx *c, const jp_op *op, const jp_target *t) {
  jp_node *val = NULL;
  kd_rc rc = KD_OK;
  if (op->has_value && (rc = jp_clone(op->value, &val)) != KD_OK) return rc;
  return jp_add_to(c, t->con, t->key, t->kl, val, t->depth);
}

/* remove: the member or item at t. */
static kd_rc jp_op_remove(jp_ctx *c, const jp_op *op, const jp_target *t) {
  jp_node *con = t->con;
  size_t at = 0;
  kd_rc rc = KD_OK;
  if (con->kind == JN_RNULL)
    return jp_err(c, JSONPATCH_CRASH, "a null this patch copied is not a container (evanphx/json-patch would crash)");
  if (con->kind == JN_OBJ) {
    long i = jp_find_key(con, t->key, t->kl);
    if (i < 0) return jp_missing_path(c, &op->path);
    at = (size_t)i;
  } else if ((rc = jp_index(c, con, t->key, t->kl, JI_REMOVE, &at)) != KD_OK) {
    return rc;
  }
  jp_node *val = jp_detach(con, at);
  jp_unaccount(c, val);
  jp_free(val);
  return KD_OK;
}

/* replace: the member or item at t, which must exist, by op's value. */
static kd_rc jp_op_replace(jp_ctx *c, const jp_op *op, const jp_target *t) {
  jp_node *con = t->con, *val = NULL;
  size_t at = 0;
  bool found = false;
  kd_rc rc = jp_get(c, con, t->key, t->kl, &at, &found);
  if (rc != KD_OK || !found) {
    if (c->why != JSONPATCH_CRASH) rc = jp_missing_path(c, &op->path);
    return rc;
  }
  if (op->has_value && (rc = jp_clone(op->value, &val)) != KD_OK) return rc;
  if ((rc = jp_account(c, val, t->depth + 1)) != KD_OK) {
    jp_free(val);
    return rc;
  }
  jp_unaccount(c, con->kid[at]);
  jp_free(con->kid[at]);
  con->kid[at] = val;
  return KD_OK;
}

/* test: the value at t equals op's value (evanphx's rules, jp_equal). */
static kd_rc jp_op_test(jp_ctx *c, const jp_op *op, const jp_target *t) {
  size_t at = 0;
  bool found = false;
  kd_rc rc = jp_get(c, t->con, t->key, t->kl, &at, &found);
  if (rc != KD_OK) return rc;
  const jp_node *cur = found ? t->con->kid[at] : NULL;
  char show[200];
  jp_show(op->path.s, op->path.n, show, sizeof show);
  if (!cur) { /* a document null or a missing member */
    if (!op->has_value) return jp_err(c, JSONPATCH_CRASH, "test of a null without a value (evanphx/json-patch would crash)");
    if (op->value->kind != JN_PNULL) return jp_err(c, JSONPATCH_TEST_FAILED, "testing value %s failed", show);
    return KD_OK;
  }
  if (!op->has_value) return jp_err(c, JSONPATCH_TEST_FAILED, "testing value %s failed", show);
  int r = jp_equal(cur, op->value);
  if (r == JE_NE) rc = jp_err(c, JSONPATCH_TEST_FAILED, "testing value %s failed", show);
  if (r == JE_CRASH) rc = jp_err(c, JSONPATCH_CRASH, "comparing %s meets a null where evanphx/json-patch would crash", show);
  return rc;
}

/* move (the source detached first) or copy (evanphx's deep copy of the source): from op's
 * from to its path. */
static kd_rc jp_op_move_copy(jp_ctx *c, jp_node *root, const jp_op *op, bool move) {
  jp_target t = {0};
  jp_node *val = NULL;
  size_t at = 0;
  bool found = false;
  kd_rc rc = jp_locate(c, root, &op->from, "from", JSONPATCH_FAILED, &t);
  if (rc == KD_OK) rc = jp_get(c, t.con, t.key, t.kl, &at, &found);
  if (rc == KD_OK && !found) rc = jp_missing_path(c, &op->from);
  if (rc == KD_OK && move) {
    val = jp_detach(t.con, at);
    jp_unaccount(c, val);
  } else if (rc == KD_OK) {
    rc = jp_gocopy(t.con->kid[at], true, &val);
  }
  free(t.key);
  t = (jp_target){0};
  if (rc == KD_OK) rc = jp_locate(c, root, &op->path, "path", move ? JSONPATCH_FAILED : JSONPATCH_MISSING, &t);
  if (rc == KD_OK) {
    rc = jp_add_to(c, t.con, t.key, t.kl, val, t.depth);
    val = NULL;
  }
  jp_free(val);
  free(t.key);
  return rc;
}

/* One operation on the document whose root container is root: move and copy read their source
 * first; the others act at their path. */
static kd_rc jp_step(jp_ctx *c, jp_node *root, const jp_op *op) {
  const char *kind = jp_kind_name(op);
  if (!kind) {
    char show[80] = "unknown";
    if (op->present && op->op.state == JS_STR) jp_show(op->op.s, op->op.n, show, sizeof show);
    return jp_err(c, JSONPATCH_FAILED, "unexpected operation \"%s\"", show);
  }
  if (!strcmp(kind, "move") || !strcmp(kind, "copy")) return jp_op_move_copy(c, root, op, !strcmp(kind, "move"));
  bool add = !strcmp(kind, "add"), remove = !strcmp(kind, "remove");
  jp_target t = {0};
  kd_rc rc = jp_locate(c, root, &op->path, "path", add || remove ? JSONPATCH_MISSING : JSONPATCH_FAILED, &t);
  if (rc == KD_OK)
    rc = add ? jp_op_add(c, op, &t) : remove ? jp_op_remove(c, op, &t)
         : !strcmp(kind, "replace") ? jp_op_replace(c, op, &t) : jp_op_test(c, op, &t);
  free(t.key);
  return rc;
}

/* Apply decoded operations to the document tree root (a container); the tree is changed. */
static kd_rc jp_run(jp_ctx *c, jp_node *root, const jp_op *ops, size_t nops) {
  kd_rc rc = jp_account(c, root, 0);
  for (size_t i = 0; rc == KD_OK && i < nops; i++) {
    rc = jp_step(c, root, &ops[i]);
    if (rc != KD_OK) {
      char show[200] = "";
      if (ops[i].present && ops[i].path.state == JS_STR) jp_show(ops[i].path.s, ops[i].path.n, show, sizeof show);
      const char *k = jp_kind_name(&ops[i]);
      kd_fail_wrap(rc, "JSON patch operation %zu (%s \"%s\")", i, k ? k : "?", show);
      if (rc == KD_ERR_TOOBIG) c->why = JSONPATCH_FAILED;
    }
  }
  return rc;
}

/* Apply a parsed patch (root of the operations) to doc. */
static kd_rc jp_apply_parsed(json_t *doc, const jp_node *patch, json_t **out, jsonpatch_err *why) {
  kd_rc rc = KD_OK;
  jp_ctx c = {JSONPATCH_OK, 0, 0};
  jp_node *root = NULL;
  jp_op *ops = NULL;
  size_t nops = 0;
  *out = NULL;
  if ((rc = jp_ops(&c, patch, &ops, &nops)) != KD_OK) goto fail; /* Velero decodes the patch first */
  if (!doc || !(json_is_object(doc) || json_is_array(doc))) {
    rc = jp_err(&c, JSONPATCH_FAILED, "the document to patch is not a JSON object or array");
    goto fail;
  }
  if ((rc = jp_from_json(doc, false, 0, &root)) != KD_OK) goto fail;
  if ((rc = jp_run(&c, root, ops, nops)) != KD_OK) goto fail;
  if ((rc = jp_to_json(root, out)) != KD_OK) c.why = JSONPATCH_FAILED;
fail:
  if (rc != KD_OK && c.why == JSONPATCH_OK) c.why = JSONPATCH_FAILED;
  if (why) *why = rc == KD_OK ? JSONPATCH_OK : c.why;
  if (rc != KD_OK && rc != KD_ERR_NOMEM && rc != KD_ERR_TOOBIG) rc = KD_ERR_INVALID;
  free(ops);
  jp_free(root);
  return rc;
}

/* An operation's "value": null is the patch's null (a value to write), not a missing one. */
static kd_rc jp_mark_value_nulls(jp_node *p) {
  for (size_t i = 0; p && p->kind == JN_ARR && i < p->n; i++) {
    jp_node *e = p->kid[i];
    if (!e || e->kind != JN_OBJ) continue;
    long at = jp_find_key(e, "value", 5);
    if (at >= 0 && !e->kid[at] && !(e->kid[at] = jp_new(JN_PNULL))) return jp_nomem();
  }
  return KD_OK;
}

kd_rc jsonpatch_apply(json_t *doc, json_t *patch, json_t **out) {
  jp_node *p = NULL;
  kd_rc rc = KD_OK;
  *out = NULL;
  if (patch && !json_is_null(patch) && !json_is_array(patch))
    return kd_fail(KD_ERR_INVALID, "a JSON patch must be an array of operations");
  if (patch && (rc = jp_from_json(patch, true, 0, &p)) != KD_OK) return rc;
  if ((rc = jp_mark_value_nulls(p)) != KD_OK) {
    jp_free(p);
    return rc;
  }
  rc = jp_apply_parsed(doc, p, out, NULL);
  jp_free(p);
  return rc;
}

kd_rc jsonpatch_apply_text(json_t *doc, const char *text, size_t len, json_t **out, jsonpatch_err *why) {
  jp_node *p = NULL;
  *out = NULL;
  kd_rc rc = jp_parse(text, len, &p);
  if (rc != KD_OK) {
    if (why) *why = JSONPATCH_DECODE;
    return rc == KD_ERR_NOMEM ? rc : KD_ERR_INVALID;
  }
  if ((rc = jp_mark_value_nulls(p)) != KD_OK) {
    jp_free(p);
    return rc;
  }
  rc = jp_apply_parsed(doc, p, out, why);
  jp_free(p);
  return rc;
}
