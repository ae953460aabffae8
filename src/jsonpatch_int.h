/* jsonpatch_int.h — what the parts of JSON patching share; private to them (included only by
 * jsonpatch.c, jsonpatch_go.c, jsonpatch_node.c and jsonpatch_merge.c; the API is jsonpatch.h):
 *   jsonpatch.c        errors and the RFC 6902 operations (add, remove, replace, move, copy,
 *                      test) on the document model;
 *   jsonpatch_go.c     Go's text: float64 formatting, encoding/json output, strconv;
 *   jsonpatch_node.c   the document model (jp_node): nodes, caps, jansson in and out, copies,
 *                      and Go's JSON reader of patch texts;
 *   jsonpatch_merge.c  RFC 7386 merge patch and create merge patch (jansson only).
 *
 * evanphx keeps a document as "lazy nodes": raw JSON text parsed on demand. What a patch can
 * observe of that model is kept here in jp_node: scalars carry their JSON text (test compares
 * texts), and the three kinds of null are told apart — a null of the document (Go's nil
 * pointer, a NULL child here), a null the patch added (a node without text, JN_PNULL) and a
 * copy of the latter (the text "null", JN_RNULL) — because evanphx treats them differently. */
#ifndef KCMDR_JSONPATCH_INT_H
#define KCMDR_JSONPATCH_INT_H

#include "jsonpatch.h"

#define JP_MAX_DEPTH 2048            /* nesting of documents and values (jansson's parser limit) */
#define JP_MAX_NODES 500000          /* nodes in one document while patching (a restore patches 16 at once) */
#define JP_MAX_BYTES (32u << 20)     /* scalar text bytes in one document while patching (objects are <= 8 MiB) */
#define JP_MAX_TEXT (64u << 20)      /* a patch text */

enum { JN_SCALAR, JN_PNULL, JN_RNULL, JN_OBJ, JN_ARR };

typedef struct jp_node {
  int kind;
  char *text; /* JN_SCALAR: its compact JSON text, as evanphx compares it */
  size_t tlen;
  json_t *val; /* JN_SCALAR: its value; NULL for a number no float64 holds */
  size_t n, cap;
  char **keys; /* JN_OBJ: decoded member names (NUL allowed) */
  size_t *klen;
  struct jp_node **kid; /* JN_OBJ values, JN_ARR items; NULL is a document null */
} jp_node;

typedef struct jp_ctx {
  jsonpatch_err why;
  size_t nodes, bytes;
} jp_ctx;


/* ---- jsonpatch.c ---- */

/* A printable, bounded rendering of s[0..n) into out[size] (control bytes as \xNN, cut on a
 * UTF-8 boundary), for messages. */
void jp_show(const char *s, size_t n, char *out, size_t size);
/* KD_ERR_NOMEM with the message every part uses. */
kd_rc jp_nomem(void);

/* ---- jsonpatch_go.c ---- */

/* Go's encoding/json text of the float64 d into buf[size]. */
void jp_json_float(double d, char *buf, size_t size);
/* jsonpatch_go_text of v at nesting depth (KD_ERR_TOOBIG past JP_MAX_DEPTH). */
kd_rc jp_go_text_depth(json_t *v, kd_buf *b, int depth);
/* strconv.Atoi of s[0..n): optional sign, decimal digits, int64 range; false when Go fails. */
bool jp_atoi(const char *s, size_t n, long long *out);

/* ---- jsonpatch_node.c: nodes (NULL on allocation failure where a pointer is returned) ---- */

jp_node *jp_new(int kind);
/* Free n and everything under it; NULL is fine. */
void jp_free(jp_node *n);
/* The index of member k[0..kl) of object o, -1 when absent. */
long jp_find_key(const jp_node *o, const char *k, size_t kl);
/* Set member k of object o to v (owned): replaced in place when present (the old value freed),
 * appended otherwise. On failure (KD_ERR_NOMEM) v is freed. */
kd_rc jp_obj_set(jp_node *o, const char *k, size_t kl, jp_node *v);
/* Insert v (owned) at index at of array a (0 <= at <= n). On failure (KD_ERR_NOMEM) v is freed. */
kd_rc jp_arr_insert(jp_node *a, size_t at, jp_node *v);
/* Detach child i of a container (its key freed) and return it (the caller owns it). */
jp_node *jp_detach(jp_node *c, size_t i);
/* Count n (and all under it) set into the document at depth against the caps: KD_ERR_TOOBIG
 * past JP_MAX_DEPTH, JP_MAX_NODES or JP_MAX_BYTES. */
kd_rc jp_account(jp_ctx *c, const jp_node *n, int depth);
/* Take n (and all under it), leaving the document, off the counts. */
void jp_unaccount(jp_ctx *c, const jp_node *n);
/* A jansson value as evanphx would hold it after Go printed it: scalars with Go's text. top:
 * a null at the top is a patch's null (JN_PNULL), elsewhere a document null (NULL). *out the
 * caller's; KD_ERR_TOOBIG, KD_ERR_NOMEM. */
kd_rc jp_from_json(json_t *v, bool top, int depth, jp_node **out);
/* A structural copy of s into *out (NULL for NULL); KD_ERR_NOMEM. */
kd_rc jp_clone(const jp_node *s, jp_node **out);
/* evanphx's deepCopy of s into *out: the value printed and read back. A patch's null becomes
 * the text "null" at the top and a document null inside. KD_ERR_NOMEM. */
kd_rc jp_gocopy(const jp_node *s, bool top, jp_node **out);
/* The node as a new jansson value into *out. KD_ERR_INVALID for a number no float64 holds
 * (Velero's decoding of the result fails there too), KD_ERR_NOMEM. */
kd_rc jp_to_json(const jp_node *n, json_t **out);
/* Parse a whole text as Go's json.Unmarshal does (one value, whitespace around it) into *out
 * (the caller's). KD_ERR_INVALID saying the offset and what is wrong, KD_ERR_TOOBIG past
 * JP_MAX_TEXT, KD_ERR_NOMEM. */
kd_rc jp_parse(const char *text, size_t len, jp_node **out);

#endif
