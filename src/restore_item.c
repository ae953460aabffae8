/* restore_item.c — the per-object transformations of a restore that need no cluster (see
 * restore.h, "pure parts"): Velero's resetMetadataAndStatus strip, its built-in restore item
 * actions, the objects it skips, and the ServiceAccount merge. Moved out of restore.c as is;
 * restore.c calls them on every object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restore.h"

void restore_strip(json_t *obj) {
  static const char *const drop[] = {"generateName",      "selfLink",          "uid",
                                     "resourceVersion",   "generation",        "creationTimestamp",
                                     "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences",
                                     "managedFields"};
  json_t *md = json_object_get(obj, "metadata");
  for (size_t i = 0; i < KD_ARRAY_LEN(drop); i++) json_object_del(md, drop[i]);
  json_object_del(obj, "status");
}

/* the names of ports whose nodePort the last applied configuration sets explicitly */
static bool rs_explicit_node_port(json_t *applied_ports, json_t *port) {
  const char *name = json_string_value(json_object_get(port, "name"));
  json_int_t np = json_integer_value(json_object_get(port, "nodePort"));
  size_t i;
  json_t *p;
  json_array_foreach(applied_ports, i, p) {
    json_t *v = json_object_get(p, "nodePort");
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : json_is_string(v) ? atoll(json_string_value(v)) : 0;
    if (n <= 0) continue;
    const char *pn = json_string_value(json_object_get(p, "name"));
    if (name && name[0] ? kd_streq(pn, name) : (!pn && n == np)) return true;
  }
  return false;
}

void restore_builtin_actions(json_t *obj, const char *gr, bool preserve_node_ports, json_t *ns_map) {
  json_t *spec = json_object_get(obj, "spec");
  if (strcmp(gr, "secrets") == 0) { /* secret_action.go: the token controller fills these anew */
    if (!kd_streq(json_string_value(json_object_get(obj, "type")), "kubernetes.io/service-account-token")) return;
    json_object_del(json_object_get(json_object_get(obj, "metadata"), "annotations"), "kubernetes.io/service-account.uid");
    json_object_del(json_object_get(obj, "data"), "token");
    json_object_del(json_object_get(obj, "data"), "ca.crt");
    return;
  }
  if (strcmp(gr, "serviceaccounts") == 0) { /* service_account_action.go: the last <sa>-token-* reference goes */
    char prefix[320];
    snprintf(prefix, sizeof prefix, "%s-token-", json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")) ?: "");
    json_t *secrets = json_object_get(obj, "secrets");
    for (size_t i = json_array_size(secrets); i-- > 0;)
      if (strncmp(json_string_value(json_object_get(json_array_get(secrets, i), "name")) ?: "", prefix, strlen(prefix)) == 0) {
        json_array_remove(secrets, i);
        break;
      }
    return;
  }
  if (strcmp(gr, "rolebindings.rbac.authorization.k8s.io") == 0 ||
      strcmp(gr, "clusterrolebindings.rbac.authorization.k8s.io") == 0) { /* (cluster)rolebinding_action.go */
    size_t i;
    json_t *subj;
    json_array_foreach(json_object_get(obj, "subjects"), i, subj) {
      json_t *to = json_object_get(ns_map, json_string_value(json_object_get(subj, "namespace")) ?: "");
      if (json_is_string(to)) json_object_set(subj, "namespace", to);
    }
    return;
  }
  if (!json_is_object(spec)) return;
  if (strcmp(gr, "services") == 0) { /* pkg/restore/actions/service_action.go */
    if (!kd_streq(json_string_value(json_object_get(spec, "clusterIP")), "None")) {
      json_object_del(spec, "clusterIP");
      json_object_del(spec, "clusterIPs");
    }
    if (preserve_node_ports) return;
    json_t *md = json_object_get(obj, "metadata");
    const char *last = json_string_value(json_object_get(json_object_get(md, "annotations"), "kubectl.kubernetes.io/last-applied-configuration"));
    json_t *applied = last ? json_loads(last, JSON_ALLOW_NUL, NULL) : NULL;
    json_t *mf = json_object_get(md, "managedFields");
    if (!kd_streq(json_string_value(json_object_get(spec, "type")), "ExternalName")) {
      /* deleteNodePorts: keep the node ports set explicitly, by kubectl apply (its last applied
       * configuration) or else by a server-side apply (managedFields' k:{"port":P,"protocol":X}) */
      size_t i;
      json_t *port;
      json_array_foreach(json_object_get(spec, "ports"), i, port) {
        bool keep;
        if (last) {
          keep = rs_explicit_node_port(json_object_get(json_object_get(applied, "spec"), "ports"), port);
        } else {
          char key[160];
          snprintf(key, sizeof key, "k:{\"port\":%lld,\"protocol\":\"%.40s\"}",
                   (long long)json_integer_value(json_object_get(port, "port")),
                   json_string_value(json_object_get(port, "protocol")) ?: "");
          keep = false;
          size_t k;
          json_t *entry;
          json_array_foreach(mf, k, entry) {
            json_t *fp = json_object_get(json_object_get(json_object_get(json_object_get(entry, "fieldsV1"), "f:spec"), "f:ports"), key);
            if (json_object_get(fp, "f:nodePort")) keep = true;
          }
        }
        if (!keep) json_object_del(port, "nodePort");
      }
    }
    /* deleteHealthCheckNodePort: kept when the last applied configuration sets it, or a
     * server-side apply owns it */
    json_t *hc = json_object_get(spec, "healthCheckNodePort");
    if (hc && json_integer_value(hc) != 0) {
      json_t *ahc = json_object_get(json_object_get(applied, "spec"), "healthCheckNodePort");
      bool keep = json_is_integer(ahc) && json_integer_value(ahc) != 0;
      size_t k;
      json_t *entry;
      json_array_foreach(mf, k, entry)
        if (json_object_get(json_object_get(json_object_get(entry, "fieldsV1"), "f:spec"), "f:healthCheckNodePort")) keep = true;
      if (!keep) json_object_del(spec, "healthCheckNodePort");
    }
    json_decref(applied);
  } else if (strcmp(gr, "pods") == 0) { /* pod_action.go */
    json_object_del(spec, "nodeName");
    json_object_del(spec, "priority");
    const char *sa = json_string_value(json_object_get(spec, "serviceAccountName"));
    char prefix[320];
    snprintf(prefix, sizeof prefix, "%s-token-", sa ? sa : "");
    size_t pl = strlen(prefix);
    json_t *vols = json_object_get(spec, "volumes");
    for (size_t i = json_array_size(vols); i-- > 0;)
      if (strncmp(json_string_value(json_object_get(json_array_get(vols, i), "name")) ?: "", prefix, pl) == 0)
        json_array_remove(vols, i);
    const char *lists[] = {"containers", "initContainers"};
    for (size_t l = 0; l < 2; l++) {
      size_t i;
      json_t *ctr;
      json_array_foreach(json_object_get(spec, lists[l]), i, ctr) {
        json_t *mounts = json_object_get(ctr, "volumeMounts");
        for (size_t k = json_array_size(mounts); k-- > 0;)
          if (strncmp(json_string_value(json_object_get(json_array_get(mounts, k), "name")) ?: "", prefix, pl) == 0)
            json_array_remove(mounts, k);
      }
    }
  } else if (strcmp(gr, "jobs.batch") == 0) { /* job_action.go */
    static const char *const uid[] = {"batch.kubernetes.io/controller-uid", "controller-uid"};
    json_t *ml = json_object_get(json_object_get(spec, "selector"), "matchLabels");
    json_t *tl = json_object_get(json_object_get(json_object_get(spec, "template"), "metadata"), "labels");
    for (size_t i = 0; i < 2; i++) {
      json_object_del(ml, uid[i]);
      json_object_del(tl, uid[i]);
    }
  }
}

bool restore_skipped_kind(json_t *obj, const char *gr, const char **why) {
  json_t *st = json_object_get(obj, "status");
  json_t *md = json_object_get(obj, "metadata");
  if (strcmp(gr, "pods") == 0) {
    const char *phase = json_string_value(json_object_get(st, "phase"));
    if (kd_streq(phase, "Succeeded") || kd_streq(phase, "Failed")) return *why = "it is complete", true;
    if (json_object_get(json_object_get(md, "annotations"), "kubernetes.io/config.mirror"))
      return *why = "it is a mirror pod", true;
  } else if (strcmp(gr, "jobs.batch") == 0) {
    const char *ct = json_string_value(json_object_get(st, "completionTime"));
    if (ct && ct[0]) return *why = "it is complete", true;
  } else if (strcmp(gr, "apiservices.apiregistration.k8s.io") == 0) {
    if (json_object_get(json_object_get(md, "labels"), "kube-aggregator.kubernetes.io/automanaged"))
      return *why = "it is managed by Kubernetes", true;
  }
  return false;
}

static kd_rc rs_merge_refs(json_t *into, json_t *from) {
  size_t i;
  json_t *e;
  json_array_foreach(from, i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    bool have = false;
    size_t k;
    json_t *x;
    json_array_foreach(into, k, x) have = have || kd_streq(json_string_value(json_object_get(x, "name")), name);
    if (!have && json_array_append(into, e)) return KD_ERR_NOMEM;
  }
  return KD_OK;
}

json_t *restore_merge_service_accounts(json_t *from_cluster, json_t *from_backup) {
  json_t *d = json_deep_copy(from_cluster);
  if (!d) return NULL;
  const char *lists[] = {"secrets", "imagePullSecrets"};
  for (size_t l = 0; l < 2; l++) {
    json_t *from = json_object_get(from_backup, lists[l]);
    if (!json_array_size(from)) continue;
    json_t *into = json_object_get(d, lists[l]);
    if (!json_is_array(into)) {
      if (json_object_set_new(d, lists[l], json_array())) goto nomem;
      into = json_object_get(d, lists[l]);
    }
    if (rs_merge_refs(into, from)) goto nomem;
  }
  const char *maps[] = {"labels", "annotations"};
  json_t *dmd = json_object_get(d, "metadata");
  for (size_t m = 0; m < 2; m++) {
    json_t *from = json_object_get(json_object_get(from_backup, "metadata"), maps[m]);
    if (!json_object_size(from)) continue;
    json_t *into = json_object_get(dmd, maps[m]);
    if (!json_is_object(into)) {
      if (json_object_set_new(dmd, maps[m], json_object())) goto nomem;
      into = json_object_get(dmd, maps[m]);
    }
    if (json_object_update_missing(into, from)) goto nomem;
  }
  return d;
nomem:
  json_decref(d);
  return NULL;
}
