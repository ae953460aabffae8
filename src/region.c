/* region.c — regional clients and the Backups the controller keeps in regional clusters (see
 * region.h). Used by the controller's one worker thread only: the cache takes no lock. */
#include "region.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubeconfig.h"
#include "mgmtbackup.h"

static const struct kube_res res_region = {"k0rdent.mirantis.com", "v1beta1", "regions", "Region", false};
static const struct kube_res res_secret = {"", "v1", "secrets", "Secret", true};
static const struct kube_res res_backup = {"velero.io", "v1", "backups", "Backup", true};

struct rentry {
  char name[64];
  char key[800];          /* Region and Secret resourceVersions the client was built from */
  kube_client *c;
  int64_t down_until_ms;  /* not contacted again before this (monotonic) */
  char down_msg[REGION_MSG_MAX];
  int64_t used_ms;
  unsigned pass;          /* the last pass that listed it */
};

struct region_clients {
  kube_client *mgmt;
  const char *ns;
  unsigned pass;          /* the current pass (region_pass_begin) */
  int64_t pass_start_ms;
  long budget_ms;         /* < 0: no limit */
  volatile int *stop;
  struct rentry e[REGION_CACHE_MAX];
};

kd_rc region_clients_new(kube_client *mgmt, const char *ns, region_clients **out) {
  region_clients *r = calloc(1, sizeof *r);
  if (!r) return kd_fail(KD_ERR_NOMEM, "out of memory");
  r->mgmt = mgmt;
  r->ns = ns;
  r->pass = 1;
  r->budget_ms = -1;
  *out = r;
  return KD_OK;
}

void region_clients_free(region_clients *r) {
  if (!r) return;
  for (int i = 0; i < REGION_CACHE_MAX; i++) kube_client_free(r->e[i].c);
  free(r);
}

void region_pass_begin(region_clients *r, long budget_ms, volatile int *stop) {
  r->pass++;
  if (r->pass == 0) r->pass = 1; /* 0 is no pass's: a fresh entry's */
  r->pass_start_ms = kd_now_ms();
  r->budget_ms = budget_ms;
  r->stop = stop;
}

static struct rentry *find_entry(region_clients *r, const char *region) {
  for (int i = 0; i < REGION_CACHE_MAX; i++)
    if (r->e[i].name[0] && strcmp(r->e[i].name, region) == 0) return &r->e[i];
  return NULL;
}

/* region's entry, made when missing in a free slot or that of the least recently used region
 * not listed in this pass; NULL when every slot holds one of this pass */
static struct rentry *entry_of(region_clients *r, const char *region) {
  struct rentry *free_e = NULL, *old = NULL, *e = find_entry(r, region);
  if (e) return e;
  for (int i = 0; i < REGION_CACHE_MAX; i++) {
    e = &r->e[i];
    if (!e->name[0] && !free_e) free_e = e;
    if (e->name[0] && e->pass != r->pass && (!old || e->used_ms < old->used_ms)) old = e;
  }
  e = free_e ? free_e : old;
  if (!e) return NULL;
  kube_client_free(e->c);
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", region);
  return e;
}

static const char *str_at(json_t *o, const char *a, const char *b) {
  return json_string_value(json_object_get(json_object_get(o, a), b));
}

/* Build (or keep) e's client from the Region and its Secret. */
static kd_rc resolve(region_clients *r, struct rentry *e, char *msg, size_t n) {
  json_t *rg = NULL, *sec = NULL;
  struct kubecfg *cfg = NULL;
  unsigned char *kc = NULL;
  size_t kclen = 0;
  kd_rc rc = kube_get(r->mgmt, &res_region, NULL, e->name, &rg);
  if (rc == KD_ERR_NOTFOUND) {
    snprintf(msg, n, "Region %s not found (or regions.k0rdent.mirantis.com not served): its ClusterDeployments are not "
             "backed up", e->name);
    goto fail;
  }
  if (rc != KD_OK) {
    snprintf(msg, n, "reading Region %s: %s", e->name, kd_errmsg());
    goto fail;
  }
  json_t *spec = json_object_get(rg, "spec"), *kref = json_object_get(spec, "kubeConfig"),
         *cref = json_object_get(spec, "clusterDeployment");
  char sns[254], sname[254], skey[254];
  if (json_is_object(kref) == json_is_object(cref)) {
    rc = kd_fail(KD_ERR_INVALID, "Region %s", e->name);
    snprintf(msg, n, "Region %s: exactly one of spec.kubeConfig and spec.clusterDeployment must be set", e->name);
    goto fail;
  }
  if (kref) {
    const char *k = str_at(spec, "kubeConfig", "key");
    snprintf(sns, sizeof sns, "%s", r->ns);
    snprintf(sname, sizeof sname, "%s", str_at(spec, "kubeConfig", "name") ? str_at(spec, "kubeConfig", "name") : "");
    snprintf(skey, sizeof skey, "%s", k && k[0] ? k : "value");
  } else {
    const char *cn = str_at(spec, "clusterDeployment", "name"), *cns = str_at(spec, "clusterDeployment", "namespace");
    snprintf(sns, sizeof sns, "%s", cns && cns[0] ? cns : r->ns);
    snprintf(sname, sizeof sname, "%.200s-kubeconfig", cn ? cn : "");
    snprintf(skey, sizeof skey, "value");
  }
  if (!sname[0] || strcmp(sname, "-kubeconfig") == 0) {
    rc = kd_fail(KD_ERR_INVALID, "Region %s", e->name);
    snprintf(msg, n, "Region %s names no kubeconfig Secret", e->name);
    goto fail;
  }
  rc = kube_get(r->mgmt, &res_secret, sns, sname, &sec);
  if (rc != KD_OK) {
    snprintf(msg, n, "Region %s: kubeconfig Secret %s/%s: %s", e->name, sns, sname,
             rc == KD_ERR_NOTFOUND ? "not found" : kd_errmsg());
    goto fail;
  }
  char key[sizeof e->key];
  snprintf(key, sizeof key, "%s/%s/%s/%s/%s", str_at(rg, "metadata", "resourceVersion") ? str_at(rg, "metadata", "resourceVersion") : "",
           sns, sname, skey, str_at(sec, "metadata", "resourceVersion") ? str_at(sec, "metadata", "resourceVersion") : "");
  if (e->c && strcmp(key, e->key) == 0) goto done; /* unchanged: the cached client */
  const char *b64 = str_at(sec, "data", skey);
  if (!b64) {
    rc = kd_fail(KD_ERR_INVALID, "no key");
    snprintf(msg, n, "Region %s: kubeconfig Secret %s/%s has no key %s", e->name, sns, sname, skey);
    goto fail;
  }
  if ((rc = kd_base64_decode(b64, strlen(b64), &kc, &kclen)) != KD_OK || kclen > KUBECFG_MAX_FILE ||
      memchr(kc, '\0', kclen)) {
    rc = kd_fail(KD_ERR_INVALID, "bad kubeconfig");
    snprintf(msg, n, "Region %s: kubeconfig Secret %s/%s key %s is not a kubeconfig", e->name, sns, sname, skey);
    goto fail;
  }
  char *text = realloc(kc, kclen + 1);
  if (!text) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    snprintf(msg, n, "out of memory");
    goto fail;
  }
  kc = (unsigned char *)text;
  text[kclen] = '\0';
  char where[1100];
  snprintf(where, sizeof where, "Secret %s/%s key %s", sns, sname, skey);
  /* no path to this process's files: only the "-data" forms */
  if ((rc = kubecfg_load_inline(text, where, &cfg)) != KD_OK) {
    snprintf(msg, n, "Region %s: %s", e->name, kd_errmsg());
    goto fail;
  }
  /* what a Secret's writer must not gain: commands run by the controller, its local files read */
  if (cfg->exec || cfg->token_file) {
    rc = kd_fail(KD_ERR_CONFIG, "refused");
    snprintf(msg, n, "Region %s: the kubeconfig in %s uses %s, which kcmdr does not take from a Secret", e->name, where,
             cfg->exec ? "an exec credential plugin" : "a token file");
    kubecfg_free(cfg);
    goto fail;
  }
  struct kube_client_opts o = {0, 0, -1, REGION_TIMEOUT_MS, "kcmdr-controller"};
  kube_client *c = NULL;
  if ((rc = kube_client_new(cfg, &o, &c)) != KD_OK) { /* takes cfg */
    snprintf(msg, n, "Region %s: %s", e->name, kd_errmsg());
    goto fail;
  }
  kube_client_free(e->c);
  e->c = c;
  e->down_until_ms = 0; /* a new kubeconfig is tried at once */
  snprintf(e->key, sizeof e->key, "%s", key);
done:
  rc = KD_OK;
fail:
  json_decref(rg);
  json_decref(sec);
  free(kc);
  return rc;
}

/* a request to e's cluster failed: unreachable ones rest for MB_REGION_RETRY_S */
static void failed(struct rentry *e, kd_rc rc, const char *what, char *msg, size_t n) {
  snprintf(msg, n, "region %s: %s: %s", e->name, what, kd_errmsg());
  msg[kd_utf8_cut(msg, strlen(msg))] = '\0';
  if (rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT || rc == KD_ERR_HTTP) {
    e->down_until_ms = kd_now_ms() + MB_REGION_RETRY_S * 1000;
    snprintf(e->down_msg, sizeof e->down_msg, "%s", msg);
  }
}

#define REGION_BACKUPS_MAX 10000 /* Backups of one ManagementBackup kept from one region's list */
struct collected {
  json_t *list;
  kd_rc rc; /* KD_ERR_TOOBIG past REGION_BACKUPS_MAX, KD_ERR_NOMEM: the list stopped short */
};
static bool collect(json_t *item, void *ud) {
  struct collected *c = ud;
  if (json_array_size(c->list) >= REGION_BACKUPS_MAX) {
    c->rc = KD_ERR_TOOBIG;
    return false;
  }
  json_t *meta = json_object_get(item, "metadata");
  json_t *keep = json_pack("{s:O?,s:O?}", "metadata", meta, "status", json_object_get(item, "status"));
  if (keep) json_object_del(json_object_get(keep, "metadata"), "managedFields");
  if (!keep || json_array_append_new(c->list, keep)) {
    c->rc = KD_ERR_NOMEM;
    return false;
  }
  return true;
}

kd_rc region_list_backups(region_clients *r, const char *region, const char *mb, json_t **out, char *msg, size_t n) {
  kd_rc rc;
  *out = NULL;
  bool stopping = r->stop && *r->stop;
  if (stopping || (r->budget_ms >= 0 && kd_now_ms() - r->pass_start_ms >= r->budget_ms)) {
    snprintf(msg, n, "region %s: not looked at in this pass (%s)", region,
             stopping ? "stopping" : "the time for regional calls is spent; it comes next");
    return kd_fail(KD_ERR_CANCELLED, "%s", msg);
  }
  struct rentry *e = entry_of(r, region);
  if (!e) {
    snprintf(msg, n, "more than %d regions in use: region %s is not backed up (kcmdr keeps clients for at most %d "
             "regions at once)", REGION_CACHE_MAX, region, REGION_CACHE_MAX);
    return kd_fail(KD_ERR_TOOBIG, "%s", msg);
  }
  e->pass = r->pass;
  e->used_ms = kd_now_ms();
  if ((rc = resolve(r, e, msg, n)) != KD_OK) return rc;
  if (e->down_until_ms && kd_now_ms() < e->down_until_ms) {
    snprintf(msg, n, "%s", e->down_msg); /* the same words: the status stays as it is meanwhile */
    return kd_fail(KD_ERR_TRANSPORT, "%s", msg);
  }
  e->down_until_ms = 0;
  char label[MB_LABEL_MAX + 1], sel[300];
  mb_bounded(mb, MB_LABEL_MAX, label);
  snprintf(sel, sizeof sel, "%s=%s", MB_LABEL_BACKUP, label);
  struct kube_list_opts lo = {0};
  lo.label_selector = sel;
  struct collected col = {json_array(), KD_OK};
  if (!col.list) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if ((rc = kube_list(e->c, &res_backup, r->ns, &lo, collect, &col, NULL)) != KD_OK) {
    failed(e, rc, "listing Backups", msg, n);
    json_decref(col.list);
    return rc;
  }
  if (col.rc != KD_OK) { /* a cut list would lose Backups silently: say so instead */
    json_decref(col.list);
    if (col.rc == KD_ERR_NOMEM) {
      snprintf(msg, n, "region %s: out of memory listing Backups", region);
      return kd_fail(KD_ERR_NOMEM, "out of memory");
    }
    snprintf(msg, n, "region %s lists more than %d Backups of ManagementBackup %.100s: not backed up there until "
             "old ones are deleted", region, REGION_BACKUPS_MAX, mb);
    return kd_fail(KD_ERR_TOOBIG, "%s", msg);
  }
  *out = col.list;
  return KD_OK;
}

kd_rc region_create_backup(region_clients *r, const char *region, json_t *obj, char *msg, size_t n) {
  struct rentry *e = find_entry(r, region);
  if (!e || !e->c) {
    snprintf(msg, n, "no client (the region was not listed first)");
    return kd_fail(KD_ERR_INVALID, "%s", msg);
  }
  json_t *out = NULL;
  const char *name = str_at(obj, "metadata", "name");
  kd_rc rc = kube_create(e->c, &res_backup, r->ns, obj, &out);
  if (rc == KD_ERR_CONFLICT) { /* ours from before (a retry, a restart), or someone else's */
    json_decref(out);
    out = NULL;
    if ((rc = kube_get(e->c, &res_backup, r->ns, name, &out)) == KD_OK) {
      const char *want = json_string_value(json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"), MB_LABEL_BACKUP));
      const char *have = json_string_value(json_object_get(json_object_get(json_object_get(out, "metadata"), "labels"), MB_LABEL_BACKUP));
      if (!kd_streq(want, have)) {
        rc = kd_fail(KD_ERR_CONFLICT, "a Backup of that name exists there and was not made for this ManagementBackup");
        snprintf(msg, n, "%s", kd_errmsg());
      }
    }
  }
  if (rc != KD_OK && rc != KD_ERR_CONFLICT) {
    failed(e, rc, "creating a Velero Backup", msg, n); /* the region's later lists repeat this whole */
    snprintf(msg, n, "%s", kd_errmsg()); /* the caller names the Backup and the region */
    msg[kd_utf8_cut(msg, strlen(msg))] = '\0';
  }
  json_decref(out);
  return rc;
}
