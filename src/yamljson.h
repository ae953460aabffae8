/* yamljson.h — YAML text to jansson values (libyaml underneath), for kubeconfigs and manifests. */
#ifndef KCMDR_YAMLJSON_H
#define KCMDR_YAMLJSON_H

#include <jansson.h>

#include "util.h"

/* Parse every YAML document in text[0..len) into a new JSON array of documents (*out, caller
 * decrefs; empty documents are skipped). Plain scalars become null, booleans, integers or reals
 * as YAML 1.1 core says; quoted scalars stay strings; anchors and aliases are resolved. Nesting
 * deeper than 100 levels, more than 1,000,000 nodes or a malformed document fail with
 * KD_ERR_PARSE or KD_ERR_TOOBIG and a message with line and column. */
kd_rc yj_parse_all(const char *text, size_t len, json_t **out);

/* Parse exactly one YAML document (an empty text gives an empty object). Fails as yj_parse_all,
 * and with KD_ERR_PARSE when the text holds more than one document. */
kd_rc yj_parse_one(const char *text, size_t len, json_t **out);

#endif
