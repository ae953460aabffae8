/* cli_print.c — what the CLI prints: object heads, scopes, results and failures, JSON and YAML
 * (managedFields aside), server text made safe for a terminal (cli_printf), tables, times and
 * sizes. */
#include "cli.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <yaml.h>

static const char *str_or(json_t *v, const char *dflt) { return json_string_value(v) ? json_string_value(v) : dflt; }

void cli_print_head(FILE *f, json_t *obj) {
  const char *k;
  json_t *v;
  size_t n = 0;
  cli_printf(f, "Name:         %s\nNamespace:    %s\nLabels:       ", cli_meta_s(obj, "name"),
             cli_or_none(cli_meta_s(obj, "namespace")));
  json_object_foreach(json_object_get(json_object_get(obj, "metadata"), "labels"), k, v)
      cli_printf(f, "%s%s=%s\n", n++ ? "              " : "", k, str_or(v, ""));
  if (!n) fprintf(f, "<none>\n");
}

static void print_list(FILE *f, const char *label, json_t *arr) {
  size_t i;
  json_t *v;
  fprintf(f, "  %-10s ", label);
  if (!json_array_size(arr)) fprintf(f, "%s", strcmp(label, "Included:") == 0 ? "*" : "<none>");
  json_array_foreach(arr, i, v) cli_printf(f, "%s%s", i ? ", " : "", str_or(v, "?"));
  fprintf(f, "\n");
}

void cli_print_scope(FILE *f, json_t *spec) {
  fprintf(f, "Namespaces:\n");
  print_list(f, "Included:", json_object_get(spec, "includedNamespaces"));
  print_list(f, "Excluded:", json_object_get(spec, "excludedNamespaces"));
  fprintf(f, "\nResources:\n");
  print_list(f, "Included:", json_object_get(spec, "includedResources"));
  print_list(f, "Excluded:", json_object_get(spec, "excludedResources"));
}

void cli_print_results(FILE *f, const char *title, json_t *r, size_t max, const char *verb) {
  size_t n = json_array_size(json_object_get(r, "velero")) + json_array_size(json_object_get(r, "cluster")), shown = 0, i;
  const char *k;
  json_t *v, *x;
  json_object_foreach(json_object_get(r, "namespaces"), k, v) n += json_array_size(v);
  if (n == 0) {
    fprintf(f, "%s:  <none>\n", title);
    return;
  }
  fprintf(f, "%s:\n", title);
  json_array_foreach(json_object_get(r, "velero"), i, x) if (shown++ < max) cli_printf(f, "  Velero:   %s\n", str_or(x, "?"));
  json_array_foreach(json_object_get(r, "cluster"), i, x) if (shown++ < max) cli_printf(f, "  Cluster:  %s\n", str_or(x, "?"));
  json_object_foreach(json_object_get(r, "namespaces"), k, v) {
    json_array_foreach(v, i, x) if (shown++ < max) cli_printf(f, "  Namespace %s:  %s\n", k, str_or(x, "?"));
  }
  if (shown > max) fprintf(f, "  ... and %zu more (kcmdr %s -o json shows all)\n", shown - max, verb);
}

void cli_print_failure(FILE *f, json_t *status) {
  const char *why = json_string_value(json_object_get(status, "failureReason"));
  size_t i;
  json_t *v;
  if (why && why[0]) cli_printf(f, "Failure reason: %s\n", why);
  json_array_foreach(json_object_get(status, "validationErrors"), i, v) cli_printf(f, "Validation error: %s\n", str_or(v, "?"));
}

kd_rc cli_print_items(json_t *items, bool one, enum cli_output fmt) {
  if (one) return cli_print_object(stdout, json_array_get(items, 0), fmt);
  json_t *list = json_pack("{s:s,s:s,s:{},s:O}", "apiVersion", "v1", "kind", "List", "metadata", "items", items);
  if (!list) return kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_rc rc = cli_print_object(stdout, list, fmt);
  json_decref(list);
  return rc;
}

void cli_print_table(const cli_table *t, const char *what, const char *ns, bool missing) {
  if (cli_table_rows(t) == 0 && !missing) fprintf(stderr, "No %s found in namespace %s.\n", what, ns);
  else if (cli_table_rows(t) > 0) cli_table_print(t, stdout);
}

/* A plain YAML scalar that a YAML 1.1 reader (libyaml, Go's yaml.v2, kubectl) would take for
 * another type, or that plain style cannot hold: such strings are quoted. */
static bool yaml_needs_quotes(const char *s, size_t n) {
  static const char *const words[] = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"};
  if (n == 0) return true;
  for (size_t i = 0; i < KD_ARRAY_LEN(words); i++)
    if (strlen(words[i]) == n && strncasecmp(s, words[i], n) == 0) return true;
  /* anything that starts like a number, a date or a special float (.inf, .nan) */
  if ((s[0] >= '0' && s[0] <= '9') || s[0] == '+' || s[0] == '-' || s[0] == '.') return true;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return true;
  return false;
}

static kd_rc yaml_emit(yaml_emitter_t *e, yaml_event_t *ev) {
  if (!yaml_emitter_emit(e, ev))
    return kd_fail(e->error == YAML_MEMORY_ERROR ? KD_ERR_NOMEM : KD_ERR_IO, "writing YAML: %s",
                   e->problem ? e->problem : "output failed");
  return KD_OK;
}

static kd_rc yaml_scalar(yaml_emitter_t *e, const char *s, size_t n, bool is_string) {
  yaml_event_t ev;
  yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
  if (is_string && n > 1 && memchr(s, '\n', n - 1)) style = YAML_LITERAL_SCALAR_STYLE; /* kubectl's "|" */
  else if (is_string && yaml_needs_quotes(s, n)) style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
  /* libyaml picks double quotes (with escapes) itself where single quotes cannot hold s */
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style))
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  return yaml_emit(e, &ev);
}

static kd_rc yaml_value(yaml_emitter_t *e, json_t *v, int depth) {
  yaml_event_t ev;
  kd_rc rc = KD_OK;
  if (depth > 200) return kd_fail(KD_ERR_TOOBIG, "object nested too deeply to print");
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *x;
    bool empty = json_object_size(v) == 0;
    if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, empty ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE))
      return kd_fail(KD_ERR_NOMEM, "out of memory");
    if ((rc = yaml_emit(e, &ev))) return rc;
    json_object_foreach(v, k, x) {
      if ((rc = yaml_scalar(e, k, strlen(k), true)) || (rc = yaml_value(e, x, depth + 1))) return rc;
    }
    yaml_mapping_end_event_initialize(&ev);
    return yaml_emit(e, &ev);
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *x;
    bool empty = json_array_size(v) == 0;
    if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, empty ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE))
      return kd_fail(KD_ERR_NOMEM, "out of memory");
    if ((rc = yaml_emit(e, &ev))) return rc;
    json_array_foreach(v, i, x) {
      if ((rc = yaml_value(e, x, depth + 1))) return rc;
    }
    yaml_sequence_end_event_initialize(&ev);
    return yaml_emit(e, &ev);
  }
  case JSON_STRING:
    return yaml_scalar(e, json_string_value(v), json_string_length(v), true);
  case JSON_TRUE:
    return yaml_scalar(e, "true", 4, false);
  case JSON_FALSE:
    return yaml_scalar(e, "false", 5, false);
  case JSON_NULL:
    return yaml_scalar(e, "null", 4, false);
  default: {
    char *num = json_dumps(v, JSON_ENCODE_ANY);
    if (!num) return kd_fail(KD_ERR_NOMEM, "out of memory");
    rc = yaml_scalar(e, num, strlen(num), false);
    free(num);
    return rc;
  }
  }
}

/* Whether v or anything nested in it is an object whose metadata has managedFields; with drop,
 * they are removed on the way (v must then be the caller's own copy). Deeper than 200 levels is
 * not looked at (the printers refuse such objects). */
static bool managed_fields(json_t *v, bool drop, int depth) {
  bool has = false;
  size_t i;
  const char *k;
  json_t *x;
  if (depth > 200) return false;
  if (json_is_object(v)) {
    json_t *meta = json_object_get(v, "metadata");
    if (json_is_object(meta) && json_object_get(meta, "managedFields")) {
      has = true;
      if (!drop) return true;
      json_object_del(meta, "managedFields");
    }
    json_object_foreach(v, k, x) {
      if (managed_fields(x, drop, depth + 1)) {
        has = true;
        if (!drop) return true;
      }
    }
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, x) {
      if (managed_fields(x, drop, depth + 1)) {
        has = true;
        if (!drop) return true;
      }
    }
  }
  return has;
}

/* obj without metadata.managedFields, its own and those of every object nested in it (the items
 * of a List, the Restore and Backups a describe carries), as kubectl prints objects: a new
 * reference (obj itself when there is nothing to drop), NULL on no memory. */
static json_t *without_managed_fields(json_t *obj) {
  json_t *copy;
  if (!managed_fields(obj, false, 0)) return json_incref(obj);
  if (!(copy = json_deep_copy(obj))) return NULL;
  managed_fields(copy, true, 0);
  return copy;
}

kd_rc cli_print_object(FILE *f, json_t *in, enum cli_output fmt) {
  kd_rc rc = KD_OK;
  json_t *obj = without_managed_fields(in);
  if (!obj) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if (fmt != CLI_OUT_YAML) {
    if (json_dumpf(obj, f, JSON_INDENT(2)) != 0 || fputc('\n', f) == EOF) rc = kd_fail(KD_ERR_IO, "writing JSON failed");
    json_decref(obj);
    return rc;
  }
  yaml_emitter_t e;
  yaml_event_t ev;
  if (!yaml_emitter_initialize(&e)) {
    json_decref(obj);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  yaml_emitter_set_output_file(&e, f);
  yaml_emitter_set_unicode(&e, 1);
  yaml_emitter_set_width(&e, -1);
  yaml_emitter_set_indent(&e, 2);
  if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || (rc = yaml_emit(&e, &ev))) goto fail;
  if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) || (rc = yaml_emit(&e, &ev))) goto fail;
  if ((rc = yaml_value(&e, obj, 0))) goto fail;
  if (!yaml_document_end_event_initialize(&ev, 1) || (rc = yaml_emit(&e, &ev))) goto fail;
  if (!yaml_stream_end_event_initialize(&ev) || (rc = yaml_emit(&e, &ev))) goto fail;
  if (!yaml_emitter_flush(&e)) rc = kd_fail(KD_ERR_IO, "writing YAML failed");
fail:
  if (rc == KD_OK && e.error != YAML_NO_ERROR) rc = kd_fail(KD_ERR_NOMEM, "writing YAML failed");
  yaml_emitter_delete(&e);
  json_decref(obj);
  return rc;
}

/* ---- text from the server, shown on a terminal ---- */

/* The length of the UTF-8 sequence at s[0..n) (1..4), or 0 when it is not valid UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  size_t len;
  unsigned cp;
  if (s[0] < 0x80) return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1fu;
  else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, cp = s[0] & 0x0fu;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07u;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3fu);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

bool cli_utf8_valid(const char *s, size_t n) {
  for (size_t i = 0, len; i < n; i += len)
    if (!(len = utf8_seq((const unsigned char *)s + i, n - i))) return false;
  return true;
}

size_t cli_text_clean(char *s, size_t n) {
  size_t in = 0, out = 0;
  while (in < n) {
    const unsigned char *p = (const unsigned char *)s + in;
    size_t len = utf8_seq(p, n - in);
    /* C0 (newline and tab too: every field is shown on one line), DEL, C1 (U+0080..U+009F: 0xc2
     * 0x80..0x9f), and bytes that are not UTF-8 (a terminal in another encoding may take a lone
     * 0x9b for CSI) */
    if (len == 0 || (len == 1 && (p[0] < 0x20 || p[0] == 0x7f)) || (len == 2 && p[0] == 0xc2 && p[1] <= 0x9f)) {
      s[out++] = '?';
      in += len ? len : 1;
      continue;
    }
    memmove(s + out, p, len);
    out += len;
    in += len;
  }
  s[out] = '\0';
  return out;
}

/* One %s of cli_printf: s (NULL: "(null)", as glibc) cut at prec bytes (prec < 0: whole), made
 * clean, printed with spec (its flags and width, without a precision). */
static void put_clean(FILE *f, const char *spec, const char *s, int prec) {
  if (!s) s = "(null)";
  size_t n = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
  char *copy = malloc(n + 1);
  if (!copy) { /* no memory: nothing of s, rather than s unclean */
    fputc('?', f);
    return;
  }
  memcpy(copy, s, n);
  cli_text_clean(copy, n);
  fprintf(f, spec, copy);
  free(copy);
}

void cli_vprintf(FILE *f, const char *fmt, va_list ap) {
  const char *p = fmt;
  for (;;) {
    const char *pct = strchr(p, '%');
    if (!pct) {
      fputs(p, f);
      return;
    }
    fwrite(p, 1, (size_t)(pct - p), f); /* the format's own text: ours, as it is */
    p = pct + 1;
    if (*p == '%') {
      fputc('%', f);
      p++;
      continue;
    }
    char spec[64], len[3] = "";
    size_t n = 0;
    int prec = -1;
    spec[n++] = '%';
    while (*p && strchr("-+ #0", *p) && n < 8) spec[n++] = *p++;
    if (*p == '*') {
      n += (size_t)snprintf(spec + n, sizeof spec - n, "%d", va_arg(ap, int));
      p++;
    } else {
      while (*p >= '0' && *p <= '9' && n < 24) spec[n++] = *p++;
    }
    if (*p == '.') {
      p++;
      if (*p == '*') {
        prec = va_arg(ap, int);
        p++;
      } else {
        for (prec = 0; *p >= '0' && *p <= '9'; p++) prec = prec < 100000 ? prec * 10 + (*p - '0') : prec;
      }
    }
    if ((p[0] == 'h' && p[1] == 'h') || (p[0] == 'l' && p[1] == 'l')) memcpy(len, p, 2), p += 2;
    else if (*p && strchr("hlzjtL", *p)) len[0] = *p++;
    char conv = *p;
    if (!conv) return;
    p++;
    if (conv == 's') {
      spec[n++] = 's';
      spec[n] = '\0';
      put_clean(f, spec, va_arg(ap, const char *), prec);
      continue;
    }
    if (prec >= 0) n += (size_t)snprintf(spec + n, sizeof spec - n, ".%d", prec);
    snprintf(spec + n, sizeof spec - n, "%s%c", len, conv);
    bool ll = strcmp(len, "ll") == 0, l = strcmp(len, "l") == 0, z = len[0] == 'z', j = len[0] == 'j', t = len[0] == 't';
    switch (conv) {
    case 'd':
    case 'i':
      if (ll) fprintf(f, spec, va_arg(ap, long long));
      else if (l) fprintf(f, spec, va_arg(ap, long));
      else if (z) fprintf(f, spec, va_arg(ap, ssize_t));
      else if (j) fprintf(f, spec, va_arg(ap, intmax_t));
      else if (t) fprintf(f, spec, va_arg(ap, ptrdiff_t));
      else fprintf(f, spec, va_arg(ap, int));
      break;
    case 'o':
    case 'u':
    case 'x':
    case 'X':
      if (ll) fprintf(f, spec, va_arg(ap, unsigned long long));
      else if (l) fprintf(f, spec, va_arg(ap, unsigned long));
      else if (z) fprintf(f, spec, va_arg(ap, size_t));
      else if (j) fprintf(f, spec, va_arg(ap, uintmax_t));
      else if (t) fprintf(f, spec, va_arg(ap, ptrdiff_t));
      else fprintf(f, spec, va_arg(ap, unsigned));
      break;
    case 'c':
      fprintf(f, spec, va_arg(ap, int));
      break;
    case 'p':
      fprintf(f, spec, va_arg(ap, void *));
      break;
    case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case 'a': case 'A':
      if (len[0] == 'L') fprintf(f, spec, va_arg(ap, long double));
      else fprintf(f, spec, va_arg(ap, double));
      break;
    default: /* never with a format gcc has checked */
      return;
    }
  }
}

void cli_printf(FILE *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cli_vprintf(f, fmt, ap);
  va_end(ap);
}

/* ---- tables ---- */

struct cli_table {
  size_t ncols;
  const char *const *headers;
  json_t *rows; /* array of arrays of strings */
};

cli_table *cli_table_new(size_t ncols, const char *const *headers) {
  cli_table *t = calloc(1, sizeof *t);
  if (!t || !(t->rows = json_array())) {
    free(t);
    return NULL;
  }
  t->ncols = ncols;
  t->headers = headers;
  return t;
}

kd_rc cli_table_add(cli_table *t, const char *const *cells) {
  json_t *row = json_array();
  for (size_t i = 0; row && i < t->ncols; i++) {
    /* kept as shown: control characters and bytes that are not UTF-8 made '?' (cli_text_clean) */
    char *copy = kd_strdup(cells[i] ? cells[i] : "");
    if (copy) cli_text_clean(copy, strlen(copy));
    if (!copy || json_array_append_new(row, json_string(copy))) {
      free(copy);
      json_decref(row);
      return kd_fail(KD_ERR_NOMEM, "out of memory");
    }
    free(copy);
  }
  if (!row || json_array_append_new(t->rows, row)) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

size_t cli_table_rows(const cli_table *t) { return json_array_size(t->rows); }

static size_t text_width(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xc0) != 0x80) w++;
  return w;
}

static void put_cell(FILE *f, const char *s, size_t width, bool last) {
  fputs(s, f); /* cleaned by cli_table_add; headers are ours */
  if (last) return;
  for (size_t w = text_width(s); w < width + 3; w++) fputc(' ', f);
}

void cli_table_print(const cli_table *t, FILE *f) {
  size_t *w = calloc(t->ncols, sizeof *w);
  if (!w) return;
  for (size_t c = 0; c < t->ncols; c++) w[c] = text_width(t->headers[c]);
  size_t i;
  json_t *row;
  json_array_foreach(t->rows, i, row) {
    for (size_t c = 0; c < t->ncols; c++) {
      size_t cw = text_width(json_string_value(json_array_get(row, c)));
      if (cw > w[c]) w[c] = cw;
    }
  }
  for (size_t c = 0; c < t->ncols; c++) put_cell(f, t->headers[c], w[c], c + 1 == t->ncols);
  fputc('\n', f);
  json_array_foreach(t->rows, i, row) {
    for (size_t c = 0; c < t->ncols; c++)
      put_cell(f, json_string_value(json_array_get(row, c)), w[c], c + 1 == t->ncols);
    fputc('\n', f);
  }
  free(w);
}

void cli_table_free(cli_table *t) {
  if (!t) return;
  json_decref(t->rows);
  free(t);
}

/* ---- times and sizes ---- */

void cli_time_text(const char *rfc3339, char *out, size_t n) {
  time_t t;
  struct tm tm;
  if (!rfc3339 || !rfc3339[0]) snprintf(out, n, "<none>");
  else if (kd_time_parse(rfc3339, &t) != KD_OK || !gmtime_r(&t, &tm)) snprintf(out, n, "%s", rfc3339);
  else strftime(out, n, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
}

void cli_time_span(const char *rfc3339, time_t now, char *out, size_t n) {
  time_t t;
  if (!rfc3339 || !rfc3339[0] || kd_time_parse(rfc3339, &t) != KD_OK) {
    snprintf(out, n, "<none>");
    return;
  }
  long long d = t > now ? (long long)(t - now) : (long long)(now - t);
  if (d >= 2 * 86400) snprintf(out, n, "%lldd", d / 86400);
  else if (d >= 2 * 3600) snprintf(out, n, "%lldh", d / 3600);
  else if (d >= 2 * 60) snprintf(out, n, "%lldm", d / 60);
  else snprintf(out, n, "%llds", d);
}

void cli_size_text(uint64_t bytes, char *out, size_t n) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) {
    snprintf(out, n, "%llu B", (unsigned long long)bytes);
    return;
  }
  double v = (double)bytes / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < KD_ARRAY_LEN(units)) v /= 1024, u++;
  snprintf(out, n, "%.1f %s", v, units[u]);
}
