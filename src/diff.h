/* diff.h — what changed between two versions of an object, as a unified diff (the format of
 * `diff -u`), for `kcmdr restore create --dry-run --diff` and `kcmdr backup diff --diff`.
 * Objects are compared as JSON with sorted keys and two-space indentation, one value a line,
 * after the fields the API server sets (not the user, not a restore) are taken off. Pure: no I/O,
 * no global state; safe from several threads. */
#ifndef KCMDR_DIFF_H
#define KCMDR_DIFF_H

#include <jansson.h>
#include <stdbool.h>

#include "util.h"

#define DIFF_MAX_OUT (16u << 20) /* a diff's text */
#define DIFF_MAX_LINES 2000000   /* lines of one side */
#define DIFF_MAX_EDITS 1000      /* past this many changed lines the changed middle is shown as one block */
#define DIFF_CONTEXT 3           /* lines of context around a change */

/* Take off, in place, what the API server sets on every object: metadata.resourceVersion, uid,
 * generation, creationTimestamp, selfLink and managedFields, and status (a restore never
 * changes the status of an object that exists). Anything else (labels, annotations, spec,
 * data) stays. NULL and non-objects are left alone. */
void diff_strip_server(json_t *obj);

/* Append to out the unified diff of text a (labelled label_a on the "---" line) to text b
 * (label_b, "+++"), with context lines around each change, hunks merged when their context
 * touches; nothing at all when the texts are equal. Lines end at '\n' (a last line without one
 * counts as a line). The edit script is a shortest one (Myers) while at most DIFF_MAX_EDITS
 * lines differ between the common head and tail; beyond that the middle is shown removed then
 * added. KD_ERR_TOOBIG past DIFF_MAX_LINES or out's cap, KD_ERR_NOMEM. */
kd_rc diff_text(const char *a, const char *b, const char *label_a, const char *label_b, int context, kd_buf *out);

/* The text objects are compared as: obj as JSON, sorted keys, indented by 2, '\n' at the end
 * (a new string, caller frees; NULL on no memory). NULL obj gives "". */
char *diff_render(json_t *obj);

/* Copies of a and b (either may be NULL: an object that is not there) with diff_strip_server
 * applied, rendered and diffed into out (nothing when they are equal); *changed (may be NULL)
 * says whether they differ. diff_text's failures. */
kd_rc diff_objects(json_t *a, json_t *b, const char *label_a, const char *label_b, kd_buf *out, bool *changed);

#endif
