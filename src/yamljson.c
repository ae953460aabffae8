/* yamljson.c — libyaml event stream to jansson values (see yamljson.h). */
#include "yamljson.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YJ_MAX_DEPTH 100
#define YJ_MAX_NODES 1000000
#define YJ_MAX_ANCHORS 1024

struct anchor {
  char *name;
  json_t *value;
};

struct yj {
  yaml_parser_t parser;
  struct anchor anchors[YJ_MAX_ANCHORS];
  size_t nanchors;
  size_t nodes;
};

static json_t *plain_scalar(const char *v, size_t len) {
  static const char *trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const char *falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  if (len == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
      strcmp(v, "NULL") == 0)
    return json_null();
  for (size_t i = 0; i < KD_ARRAY_LEN(trues); i++)
    if (strcmp(v, trues[i]) == 0) return json_true();
  for (size_t i = 0; i < KD_ARRAY_LEN(falses); i++)
    if (strcmp(v, falses[i]) == 0) return json_false();
  /* integers: optional sign, decimal digits only (no leading zeros except "0"), fits int64 */
  const char *p = v;
  if (*p == '-' || *p == '+') p++;
  if (*p >= '0' && *p <= '9' && !(p[0] == '0' && p[1])) {
    const char *q = p;
    while (*q >= '0' && *q <= '9') q++;
    if (*q == '\0') {
      errno = 0;
      long long n = strtoll(v, NULL, 10);
      if (errno == 0) return json_integer(n);
      return json_stringn(v, len);
    }
    /* reals: digits '.' digits [e[+-]digits] */
    if (*q == '.') {
      char *end;
      double d = strtod(v, &end);
      if (*end == '\0' && strchr(v, 'x') == NULL && strchr(v, 'X') == NULL) return json_real(d);
    }
  }
  return json_stringn(v, len);
}

static kd_rc parse_error(struct yj *y) {
  return kd_fail(KD_ERR_PARSE, "YAML error at line %zu column %zu: %s %s",
                 y->parser.problem_mark.line + 1, y->parser.problem_mark.column + 1,
                 y->parser.problem ? y->parser.problem : "malformed input",
                 y->parser.context ? y->parser.context : "");
}

static kd_rc next_event(struct yj *y, yaml_event_t *ev) {
  if (!yaml_parser_parse(&y->parser, ev)) return parse_error(y);
  return KD_OK;
}

static kd_rc remember(struct yj *y, const yaml_char_t *anchor, json_t *v) {
  if (!anchor) return KD_OK;
  if (y->nanchors >= YJ_MAX_ANCHORS) return kd_fail(KD_ERR_TOOBIG, "YAML has more than %d anchors", YJ_MAX_ANCHORS);
  char *name = strdup((const char *)anchor);
  if (!name) return kd_fail(KD_ERR_NOMEM, "out of memory");
  y->anchors[y->nanchors].name = name;
  y->anchors[y->nanchors].value = json_incref(v);
  y->nanchors++;
  return KD_OK;
}

/* Build the node that starts with *ev (consumed by the caller afterwards). */
static kd_rc build(struct yj *y, yaml_event_t *ev, int depth, json_t **out) {
  kd_rc rc = KD_OK;
  json_t *v = NULL;
  yaml_event_t child;
  *out = NULL;
  if (depth > YJ_MAX_DEPTH) return kd_fail(KD_ERR_TOOBIG, "YAML nests deeper than %d levels", YJ_MAX_DEPTH);
  if (++y->nodes > YJ_MAX_NODES) return kd_fail(KD_ERR_TOOBIG, "YAML has more than %d nodes", YJ_MAX_NODES);
  switch (ev->type) {
  case YAML_ALIAS_EVENT:
    for (size_t i = y->nanchors; i-- > 0;)
      if (strcmp(y->anchors[i].name, (const char *)ev->data.alias.anchor) == 0) {
        *out = json_incref(y->anchors[i].value);
        return KD_OK;
      }
    return kd_fail(KD_ERR_PARSE, "YAML alias *%s at line %zu has no anchor", ev->data.alias.anchor,
                   ev->start_mark.line + 1);
  case YAML_SCALAR_EVENT: {
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag)
      v = plain_scalar(s, n);
    else
      v = json_stringn(s, n);
    if (!v) return kd_fail(KD_ERR_PARSE, "YAML scalar at line %zu is not valid UTF-8", ev->start_mark.line + 1);
    if ((rc = remember(y, ev->data.scalar.anchor, v)) != KD_OK) goto fail;
    *out = v;
    return KD_OK;
  }
  case YAML_SEQUENCE_START_EVENT:
    v = json_array();
    if (!v) return kd_fail(KD_ERR_NOMEM, "out of memory");
    for (;;) {
      if ((rc = next_event(y, &child)) != KD_OK) goto fail;
      if (child.type == YAML_SEQUENCE_END_EVENT) {
        yaml_event_delete(&child);
        break;
      }
      json_t *item;
      rc = build(y, &child, depth + 1, &item);
      yaml_event_delete(&child);
      if (rc != KD_OK) goto fail;
      if (json_array_append_new(v, item) != 0) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
        goto fail;
      }
    }
    if ((rc = remember(y, ev->data.sequence_start.anchor, v)) != KD_OK) goto fail;
    *out = v;
    return KD_OK;
  case YAML_MAPPING_START_EVENT:
    v = json_object();
    if (!v) return kd_fail(KD_ERR_NOMEM, "out of memory");
    for (;;) {
      json_t *key = NULL, *val = NULL;
      if ((rc = next_event(y, &child)) != KD_OK) goto fail;
      if (child.type == YAML_MAPPING_END_EVENT) {
        yaml_event_delete(&child);
        break;
      }
      rc = build(y, &child, depth + 1, &key);
      yaml_event_delete(&child);
      if (rc != KD_OK) goto fail;
      if ((rc = next_event(y, &child)) != KD_OK) {
        json_decref(key);
        goto fail;
      }
      rc = build(y, &child, depth + 1, &val);
      yaml_event_delete(&child);
      if (rc != KD_OK) {
        json_decref(key);
        goto fail;
      }
      /* keys are used as strings; "<<" merge keys copy the aliased mapping's entries */
      char numkey[64];
      const char *k = NULL;
      if (json_is_string(key)) k = json_string_value(key);
      else if (json_is_integer(key)) snprintf(numkey, sizeof numkey, "%lld", (long long)json_integer_value(key)), k = numkey;
      else if (json_is_true(key)) k = "true";
      else if (json_is_false(key)) k = "false";
      else if (json_is_null(key)) k = "null";
      if (!k) {
        json_decref(key);
        json_decref(val);
        rc = kd_fail(KD_ERR_PARSE, "YAML mapping key at line %zu is not a scalar", child.start_mark.line + 1);
        goto fail;
      }
      int err;
      if (strcmp(k, "<<") == 0 && json_is_object(val))
        err = json_object_update_missing(v, val);
      else
        err = json_object_set(v, k, val);
      json_decref(key);
      json_decref(val);
      if (err) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
        goto fail;
      }
    }
    if ((rc = remember(y, ev->data.mapping_start.anchor, v)) != KD_OK) goto fail;
    *out = v;
    return KD_OK;
  default:
    return kd_fail(KD_ERR_PARSE, "unexpected YAML event at line %zu", ev->start_mark.line + 1);
  }
fail:
  json_decref(v);
  return rc;
}

static void drop_anchors(struct yj *y) {
  for (size_t i = 0; i < y->nanchors; i++) {
    free(y->anchors[i].name);
    json_decref(y->anchors[i].value);
  }
  y->nanchors = 0;
}

kd_rc yj_parse_all(const char *text, size_t len, json_t **out) {
  kd_rc rc = KD_OK;
  struct yj *y = calloc(1, sizeof *y);
  json_t *docs = json_array();
  yaml_event_t ev;
  bool have_ev = false;
  *out = NULL;
  if (!y || !docs) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  if (!yaml_parser_initialize(&y->parser)) {
    rc = kd_fail(KD_ERR_NOMEM, "cannot start the YAML parser");
    goto fail;
  }
  yaml_parser_set_input_string(&y->parser, (const unsigned char *)text, len);
  for (;;) {
    if ((rc = next_event(y, &ev)) != KD_OK) goto fail_parser;
    have_ev = true;
    if (ev.type == YAML_STREAM_END_EVENT) break;
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
      yaml_event_delete(&ev);
      have_ev = false;
      if ((rc = next_event(y, &ev)) != KD_OK) goto fail_parser;
      have_ev = true;
      json_t *doc;
      if ((rc = build(y, &ev, 0, &doc)) != KD_OK) goto fail_parser;
      yaml_event_delete(&ev);
      have_ev = false;
      drop_anchors(y); /* anchors do not cross documents */
      if (!json_is_null(doc) && json_array_append_new(docs, doc) != 0) {
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
        goto fail_parser;
      }
      if (json_is_null(doc)) json_decref(doc);
      if ((rc = next_event(y, &ev)) != KD_OK) goto fail_parser;
      have_ev = true;
      if (ev.type != YAML_DOCUMENT_END_EVENT) {
        rc = kd_fail(KD_ERR_PARSE, "YAML document does not end where expected (line %zu)", ev.start_mark.line + 1);
        goto fail_parser;
      }
    }
    yaml_event_delete(&ev);
    have_ev = false;
  }
  yaml_event_delete(&ev);
  yaml_parser_delete(&y->parser);
  drop_anchors(y);
  free(y);
  *out = docs;
  return KD_OK;
fail_parser:
  if (have_ev) yaml_event_delete(&ev);
  yaml_parser_delete(&y->parser);
fail:
  if (y) drop_anchors(y);
  free(y);
  json_decref(docs);
  return rc;
}

kd_rc yj_parse_one(const char *text, size_t len, json_t **out) {
  json_t *docs;
  kd_rc rc = yj_parse_all(text, len, &docs);
  if (rc != KD_OK) return rc;
  size_t n = json_array_size(docs);
  if (n > 1) {
    json_decref(docs);
    return kd_fail(KD_ERR_PARSE, "expected one YAML document, found %zu", n);
  }
  *out = n ? json_incref(json_array_get(docs, 0)) : json_object();
  json_decref(docs);
  return *out ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
}
