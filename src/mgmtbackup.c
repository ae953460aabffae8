/* mgmtbackup.c — ManagementBackup rules without I/O (see mgmtbackup.h). */
#include "mgmtbackup.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *meta_str(json_t *obj, const char *key) {
  return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* pairs are kept as "key_value" strings, as kcm sorts them; '_' cannot occur in a label key */
static int add_pair(json_t *set, const char *k, const char *v) {
  if (!v || !v[0]) return 0;
  char buf[600];
  snprintf(buf, sizeof buf, "%s_%s", k, v);
  return json_object_set_new(set, buf, json_true());
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

json_t *mb_selectors(json_t *cds, json_t *cts, bool compact) {
  json_t *set = json_object(), *out = NULL, *tmpl_providers = json_object();
  const char **keys = NULL;
  if (!set || !tmpl_providers) goto done;
  add_pair(set, MB_LABEL_COMPONENT, MB_LABEL_COMPONENT_VALUE);
  add_pair(set, "controller.cert-manager.io/fao", "true");
  add_pair(set, "cluster.x-k8s.io/provider", "cluster-api");
  size_t i;
  json_t *o;
  json_array_foreach(cts, i, o) { /* "ns/name" -> providers */
    char key[600];
    snprintf(key, sizeof key, "%s/%s", meta_str(o, "namespace") ? meta_str(o, "namespace") : "", meta_str(o, "name") ? meta_str(o, "name") : "");
    json_t *provs = json_object_get(json_object_get(o, "status"), "providers");
    if (json_is_array(provs)) json_object_set(tmpl_providers, key, provs);
  }
  json_array_foreach(cds, i, o) {
    const char *name = meta_str(o, "name"), *ns = meta_str(o, "namespace");
    add_pair(set, "helm.toolkit.fluxcd.io/name", name);
    add_pair(set, "cluster.x-k8s.io/cluster-name", name);
    const char *tmpl = json_string_value(json_object_get(json_object_get(o, "spec"), "template"));
    if (!tmpl) continue;
    char key[600];
    snprintf(key, sizeof key, "%s/%s", ns ? ns : "", tmpl);
    size_t k;
    json_t *p;
    json_array_foreach(json_object_get(tmpl_providers, key), k, p) add_pair(set, "cluster.x-k8s.io/provider", json_string_value(p));
  }
  size_t n = json_object_size(set), j = 0;
  keys = malloc((n + 1) * sizeof *keys);
  out = json_array();
  if (!keys || !out) goto fail;
  const char *kv;
  json_t *unused;
  json_object_foreach(set, kv, unused) keys[j++] = kv;
  qsort(keys, n, sizeof *keys, cmp_str);
  json_t *group = NULL; /* compact: the values array of the current key */
  char cur[300] = "";
  for (j = 0; j < n; j++) {
    const char *us = strchr(keys[j], '_');
    char k[300];
    snprintf(k, sizeof k, "%.*s", (int)(us - keys[j]), keys[j]);
    const char *v = us + 1;
    json_t *sel;
    if (!compact) {
      sel = json_pack("{s:{s:s}}", "matchLabels", k, v);
      if (!sel || json_array_append_new(out, sel)) goto fail;
      continue;
    }
    if (strcmp(k, cur) != 0) {
      snprintf(cur, sizeof cur, "%s", k);
      group = json_array();
      sel = json_pack("{s:[{s:s,s:s,s:o}]}", "matchExpressions", "key", k, "operator", "In", "values", group);
      if (!sel || json_array_append_new(out, sel)) goto fail;
    }
    if (json_array_append_new(group, json_string(v))) goto fail;
  }
  goto done;
fail:
  json_decref(out);
  out = NULL;
done:
  free(keys);
  json_decref(set);
  json_decref(tmpl_providers);
  return out;
}

json_t *mb_backup_object(const char *name, const char *ns, const char *mb_name, const char *bsl, json_t *selectors) {
  char label[MB_LABEL_MAX + 1];
  mb_bounded(mb_name, MB_LABEL_MAX, label);
  return json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:[s],s:[s],s:s,s:s,s:O}}", "apiVersion", "velero.io/v1", "kind",
                   "Backup", "metadata", "name", name, "namespace", ns, "labels", MB_LABEL_BACKUP, label, "spec",
                   "includedNamespaces", "*", "excludedResources", "clusters.cluster.x-k8s.io", "ttl", "720h0m0s",
                   "storageLocation", bsl, "orLabelSelectors", selectors);
}

void mb_bounded(const char *in, size_t max, char *out) {
  size_t len = strlen(in);
  if (len <= max) {
    memcpy(out, in, len + 1);
    return;
  }
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)in, len, d);
  size_t keep = max - 9;
  memcpy(out, in, keep);
  snprintf(out + keep, 10, "-%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

void mb_scheduled_name(const char *mb, time_t t, char *out) {
  char full[MB_NAME_MAX + 32];
  struct tm tm;
  gmtime_r(&t, &tm);
  size_t n = (size_t)snprintf(full, sizeof full, "%.*s-", MB_NAME_MAX, mb);
  strftime(full + n, sizeof full - n, "%Y%m%d%H%M%S", &tm);
  mb_bounded(full, MB_NAME_MAX, out);
}

bool mb_parse_scheduled_name(const char *mb, const char *backup, time_t *t) {
  size_t ml = strlen(mb);
  if (!backup || strncmp(backup, mb, ml) != 0 || backup[ml] != '-' || strlen(backup + ml + 1) != 14) return false;
  const char *ts = backup + ml + 1;
  for (int i = 0; i < 14; i++)
    if (ts[i] < '0' || ts[i] > '9') return false;
  struct tm tm = {0};
  tm.tm_year = (ts[0] - '0') * 1000 + (ts[1] - '0') * 100 + (ts[2] - '0') * 10 + (ts[3] - '0') - 1900;
  tm.tm_mon = (ts[4] - '0') * 10 + (ts[5] - '0') - 1;
  tm.tm_mday = (ts[6] - '0') * 10 + (ts[7] - '0');
  tm.tm_hour = (ts[8] - '0') * 10 + (ts[9] - '0');
  tm.tm_min = (ts[10] - '0') * 10 + (ts[11] - '0');
  tm.tm_sec = (ts[12] - '0') * 10 + (ts[13] - '0');
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return false;
  *t = timegm(&tm);
  return true;
}

bool mb_phase_running(const char *phase) {
  return !phase || !phase[0] || strcmp(phase, "New") == 0 || strcmp(phase, "InProgress") == 0;
}

bool mb_phase_terminal(const char *phase) {
  static const char *const t[] = {"Completed", "PartiallyFailed", "Failed", "FailedValidation"};
  for (size_t i = 0; phase && i < KD_ARRAY_LEN(t); i++)
    if (strcmp(phase, t[i]) == 0) return true;
  return false;
}

json_t *mb_pick_restored(const char *mb, bool scheduled, json_t *backups, time_t now) {
  size_t i;
  json_t *b, *best = NULL;
  time_t best_t = 0;
  char label[MB_LABEL_MAX + 1];
  mb_bounded(mb, MB_LABEL_MAX, label);
  json_array_foreach(backups, i, b) {
    const char *name = meta_str(b, "name");
    if (!scheduled) {
      if (kd_streq(name, mb)) return b;
      continue;
    }
    const char *owner = json_string_value(json_object_get(json_object_get(json_object_get(b, "metadata"), "labels"), MB_LABEL_BACKUP));
    time_t t;
    if (!kd_streq(owner, label) || !mb_parse_scheduled_name(mb, name, &t) || t > now) continue;
    if (!best || t > best_t) {
      best = b;
      best_t = t;
    }
  }
  return best;
}
