/* resmod.h — Velero's resource modifiers for restores (Restore spec.resourceModifier, a ConfigMap
 * holding `version: v1` and `resourceModifierRules`), parsed and applied as Velero does
 * (internal/resourcemodifiers): conditions groupResource (a gobwas glob with '.' as separator),
 * namespaces (globs), resourceNameRegex, labelSelector and matches (JSON Patch tests against the
 * object as it came from the backup); JSON patches built from Velero's strings the way Velero
 * builds their text; merge patches given in YAML. strategicPatches are refused.
 *
 * Where we differ from Velero: resourceNameRegex is a POSIX extended regex (regcomp) after
 * translating the common RE2 forms ((?i) prefix, \d \D, \w \s inside brackets, lazy
 * quantifiers); other RE2-only syntax fails to compile where Go accepts it. YAML goes through
 * yamljson.c (YAML 1.1 booleans, decimal integers, reals with a '.'), so plain scalars that Go's
 * yaml.v2 reads as numbers in other forms (0x10, 1e3, 1_000, .inf) stay strings, and duplicate
 * YAML keys are not refused. When several rules fail on one object, every message is kept. */
#ifndef KCMDR_RESMOD_H
#define KCMDR_RESMOD_H

#include <jansson.h>
#include <stdbool.h>

#include "util.h"

typedef struct resmod resmod;

/* Parse the resource-modifier ConfigMap (the whole ConfigMap object as JSON, borrowed) exactly as Velero does
   (number of data keys, YAML or JSON document, version "v1", resourceModifierRules, conditions groupResource /
   resourceNameRegex / namespaces / labelSelector / matches[{path,value}], patches[{operation,path,value,from}]
   with Velero's value handling, mergePatches[{patchData}], strategicPatches → KD_ERR_UNSUPPORTED "strategicPatches
   are not supported yet"). KD_ERR_INVALID with Velero's messages, as they appear in a Restore's validationErrors
   ("Error in parsing resource modifiers provided in configmap ns/name: ...", "Validation error in resource
   modifiers provided in configmap ns/name: ..."). A bad regex, glob or label selector is not an error here (Velero
   finds it object by object): resmod_apply reports it for every object that reaches that condition. On KD_OK
   *out is the caller's (resmod_free). KD_ERR_NOMEM. */
kd_rc resmod_parse(json_t *configmap, resmod **out);

/* Apply every matching rule in order to *obj (an object about to be restored, with the namespace it had in the
   backup; group_resource like "managements.k0rdent.mirantis.com" or "pods"). Conditions are evaluated on the
   object as it was passed in; patches apply one after the other. *obj may be replaced by a new reference (the
   old one is released). *applied counts the rules whose patches changed the object's content (a rule whose JSON
   patch stopped at a failing test, as Velero skips it, is not counted). A rule that fails (a condition that
   cannot be evaluated, a patch that does not apply, a result without "kind") → KD_ERR_INVALID naming the rule and
   the operation; the other rules still run, *obj holds what they did, and the message lists every failure
   (Velero records them as errors of that object and restores it as modified). After a rule changed the object,
   its numbers are those Velero's decoding makes (a real Go prints as an integer becomes an integer). KD_ERR_NOMEM. */
kd_rc resmod_apply(const resmod *m, const char *group_resource, json_t **obj, int *applied);

/* Release the rules; NULL is fine. */
void resmod_free(resmod *m);

/* Number of rules. */
size_t resmod_rules(const resmod *m);

/* ---- exposed for tests ---- */

/* gobwas/glob v0.2.3 as Velero uses it: Compile(pattern[0..plen), sep) (sep 0: no separator), then Match
   (s[0..slen)). Its quirks are kept: a NUL ends the pattern, U+FFFD or invalid UTF-8 in the pattern, "[]",
   "[a-z0-9]" and other malformed classes fail; an unclosed "{" is accepted. KD_ERR_INVALID when the pattern does
   not compile; *match is set otherwise. Pure. */
kd_rc resmod_glob_match(const char *pattern, size_t plen, char sep, const char *s, size_t slen, bool *match);

/* Velero's JSONPatch.ToString: the JSON text of one operation, with its value quoted unless it is "null",
   true/false in any case, starts with '{' or '[', or is a number strconv.ParseFloat accepts (a value wrapped in
   double quotes loses them and is quoted). Appended to out. KD_ERR_TOOBIG, KD_ERR_NOMEM. */
kd_rc resmod_patch_text(const char *op, size_t opn, const char *from, size_t fromn, const char *path, size_t pathn,
                        const char *value, size_t valuen, kd_buf *out);

#endif
