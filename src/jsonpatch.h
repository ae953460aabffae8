/* jsonpatch.h — RFC 6902 JSON Patch and RFC 7386 JSON merge patch on jansson values, with the
 * semantics of evanphx/json-patch v5 (Debian's 5.2.0, the library Velero applies resource
 * modifiers and computes update patches with), quirks included:
 *
 * - a path must contain "/"; everything before its first "/" is ignored ("a/b" is "/b"), and ""
 *   (the whole document) is refused; "~1" and "~0" are decoded left to right, other "~" stay;
 * - array indexes are Go's strconv.Atoi ("+1", "007" and "-1" are indexes; negative ones count
 *   from the end); "-" only appends with add; out-of-range indexes fail;
 * - test on a missing object member passes when the value is null;
 * - test compares scalars by their JSON text as Go prints them (1 and 1.0 of a jansson document
 *   are the same number, "1" as Go prints both), objects and arrays structurally;
 * - move removes its source before it looks for the destination;
 * - a patch value null is not the same as a null already in the document: evanphx cannot walk
 *   into it and compares it unequal to null inside objects; where evanphx would crash (a Go
 *   panic: walking into such a null, comparing arrays that hold nulls, test without a value on a
 *   null) we fail with KD_ERR_INVALID instead;
 * - merge patch: a patch that is an array replaces the document (nulls dropped); a patch that
 *   is a string, number, boolean or null is refused; nulls are pruned from values added where
 *   the document had nothing, and from arrays replacing something that is not an object;
 * - create merge patch compares numbers as float64 and writes them back as Go prints a float64
 *   (integers beyond 2^53 come out rounded, as Velero sends them).
 *
 * Every function works on copies: the inputs are borrowed and never modified. */
#ifndef KCMDR_JSONPATCH_H
#define KCMDR_JSONPATCH_H

#include <jansson.h>

#include "util.h"

/* RFC 6902 JSON Patch (patch: array of operations) applied to a deep copy of doc; *out new reference on KD_OK.
   Semantics exactly as evanphx/json-patch v5 Apply (as Velero uses it): add/remove/replace/move/copy/test,
   "-" index, leading-zero indexes, ~0/~1 escapes, missing paths, test equality, errors. KD_ERR_INVALID with a
   message naming the operation index and path when it fails; doc is never modified. KD_ERR_NOMEM. */
kd_rc jsonpatch_apply(json_t *doc, json_t *patch, json_t **out);

/* RFC 7386 merge patch (evanphx MergePatch semantics) onto a deep copy of doc. *out new reference on
   KD_OK; KD_ERR_INVALID for a document or patch evanphx refuses (null document, scalar patch). */
kd_rc jsonpatch_merge(json_t *doc, json_t *patch, json_t **out);

/* The merge patch that turns original into modified (evanphx CreateMergePatch semantics: nulls for removed keys,
   arrays replaced whole). *out new reference; an empty object when equal. Two arrays of objects give an
   array of patches, pairwise. KD_ERR_INVALID for scalars, mismatched kinds or array lengths. */
kd_rc jsonpatch_create_merge(json_t *original, json_t *modified, json_t **out);

/* ---- for resmod.c: Velero builds its JSON patches as text and decodes them with Go ---- */

/* How an application failed, as Velero tells the cases apart with errors.Is. */
typedef enum jsonpatch_err {
  JSONPATCH_OK = 0,
  JSONPATCH_DECODE,      /* the patch text is not a JSON array of operations */
  JSONPATCH_TEST_FAILED, /* a test operation compared unequal (jsonpatch.ErrTestFailed) */
  JSONPATCH_MISSING,     /* a path or member is missing (jsonpatch.ErrMissing) */
  JSONPATCH_FAILED,      /* any other failure: bad index, unknown op, bad document */
  JSONPATCH_CRASH,       /* evanphx would panic here; we fail instead */
} jsonpatch_err;

/* Apply the patch in text[0..len) (JSON as Go's encoding/json reads it: invalid UTF-8 in strings
   accepted, duplicate members last-wins) to a deep copy of doc, as Patch.Apply does on the bytes
   Velero passes. Scalars of the patch keep their text for test comparisons (Velero's value
   "1.0" is not equal to a document's 1). *out new reference on KD_OK; on failure KD_ERR_INVALID
   with the message and *why (may be NULL) saying which case it was. */
kd_rc jsonpatch_apply_text(json_t *doc, const char *text, size_t len, json_t **out, jsonpatch_err *why);

/* Does strconv.ParseFloat(s, 64) accept s[0..len) without an error (Go's syntax: underscores
   between digits, hexadecimal with a p exponent, Inf/Infinity/NaN, no overflow)? Pure. */
bool jsonpatch_go_parsefloat_ok(const char *s, size_t len);

/* Append the JSON text Go's encoding/json writes for v (HTML-escaped strings, float64 numbers
   formatted as Go does; object members in their order) to out. KD_ERR_TOOBIG, KD_ERR_NOMEM. */
kd_rc jsonpatch_go_text(json_t *v, kd_buf *out);

/* Format d as Go's strconv.FormatFloat(d, 'g', -1, bits) (bits 32 or 64) into buf (>= 32 bytes). */
void jsonpatch_go_gfloat(double d, int bits, char *buf, size_t size);

#endif
