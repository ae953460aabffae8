/* informer.c — list+watch cache with handlers (see informer.h). */
#include "informer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct informer {
  kube_client *client;
  struct kube_res res;
  char *ns, *selector;
  long watch_timeout;
  json_t *(*transform)(json_t *obj);
  struct informer_handlers h;
  pthread_mutex_t lock; /* guards cache, synced, stats */
  json_t *cache;        /* "ns/name" -> object */
  bool synced;
  struct informer_stats stats;
};

kd_rc informer_new(kube_client *c, const struct kube_res *res, const struct informer_opts *opts,
                   const struct informer_handlers *h, informer **out) {
  informer *inf = calloc(1, sizeof *inf);
  if (!inf) return kd_fail(KD_ERR_NOMEM, "out of memory");
  inf->client = c;
  inf->res = *res;
  inf->cache = json_object();
  if (opts) {
    inf->ns = kd_strdup(opts->namespace);
    inf->selector = kd_strdup(opts->label_selector);
    inf->watch_timeout = opts->watch_timeout_seconds;
    inf->transform = opts->transform;
  }
  if (h) inf->h = *h;
  pthread_mutex_init(&inf->lock, NULL);
  if (!inf->cache || (opts && opts->namespace && !inf->ns) || (opts && opts->label_selector && !inf->selector)) {
    informer_free(inf);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  *out = inf;
  return KD_OK;
}

void informer_free(informer *inf) {
  if (!inf) return;
  json_decref(inf->cache);
  free(inf->ns);
  free(inf->selector);
  pthread_mutex_destroy(&inf->lock);
  free(inf);
}

static const char *meta_str(json_t *obj, const char *key) {
  return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

static void cache_key(json_t *obj, char *out, size_t n) {
  const char *ns = meta_str(obj, "namespace"), *name = meta_str(obj, "name");
  snprintf(out, n, "%s/%s", ns ? ns : "", name ? name : "");
}

/* ---- relist ---- */

/* the object as the cache keeps it (new reference) */
static json_t *kept(informer *inf, json_t *obj) {
  json_t *t = inf->transform ? inf->transform(obj) : NULL;
  return t ? t : json_incref(obj);
}

struct collect_ctx {
  informer *inf;
  json_t *into;
  bool nomem; /* a partial list must never replace the cache */
};

/* An object the cache cannot key is skipped with a log line; it never stops the cache. */
static bool keyable(informer *inf, json_t *obj) {
  if (json_is_string(json_object_get(json_object_get(obj, "metadata"), "name"))) return true;
  kd_log(KD_LOG_WARN, "informer %s: skipping an object without metadata.name", inf->res.resource);
  return false;
}

static bool collect(json_t *item, void *ud) {
  struct collect_ctx *cc = ud;
  char key[600];
  if (!keyable(cc->inf, item)) return true;
  cache_key(item, key, sizeof key);
  if (json_object_set_new(cc->into, key, kept(cc->inf, item)) == 0) return true;
  cc->nomem = true;
  return false;
}

/* List everything and emit the differences to the cache. *rv gets the list's version. */
static kd_rc relist(informer *inf, char **rv) {
  json_t *fresh = json_object();
  if (!fresh) return kd_fail(KD_ERR_NOMEM, "out of memory");
  struct kube_list_opts lo = {inf->selector, NULL, 100, NULL}; /* small pages: a low memory peak */
  struct collect_ctx cc = {inf, fresh, false};
  kd_rc rc = kube_list(inf->client, &inf->res, inf->ns, &lo, collect, &cc, rv);
  if (rc == KD_OK && cc.nomem) rc = kd_fail(KD_ERR_NOMEM, "out of memory caching %s", inf->res.resource);
  if (rc != KD_OK) {
    json_decref(fresh);
    return rc;
  }
  pthread_mutex_lock(&inf->lock);
  json_t *old = inf->cache;
  inf->cache = fresh;
  inf->stats.lists++;
  pthread_mutex_unlock(&inf->lock);
  const char *key;
  json_t *obj;
  json_object_foreach(fresh, key, obj) {
    json_t *prev = json_object_get(old, key);
    if (!prev) {
      if (inf->h.on_add) inf->h.on_add(obj, inf->h.ud);
    } else if (!kd_streq(meta_str(prev, "resourceVersion"), meta_str(obj, "resourceVersion"))) {
      if (inf->h.on_update) inf->h.on_update(prev, obj, inf->h.ud);
    }
  }
  json_object_foreach(old, key, obj) {
    if (!json_object_get(fresh, key) && inf->h.on_delete) inf->h.on_delete(obj, inf->h.ud);
  }
  json_decref(old);
  pthread_mutex_lock(&inf->lock);
  inf->synced = true;
  pthread_mutex_unlock(&inf->lock);
  if (inf->h.on_synced) inf->h.on_synced(inf->h.ud);
  return KD_OK;
}

/* ---- watch ---- */

static bool on_event(enum kube_event_type t, json_t *raw, void *ud) {
  informer *inf = ud;
  char key[600];
  if (t == KUBE_BOOKMARK || !keyable(inf, raw)) return true;
  json_t *obj = kept(inf, raw);
  cache_key(obj, key, sizeof key);
  pthread_mutex_lock(&inf->lock);
  json_t *prev = json_incref(json_object_get(inf->cache, key));
  if (t == KUBE_DELETED) json_object_del(inf->cache, key);
  else json_object_set(inf->cache, key, obj);
  inf->stats.events++;
  pthread_mutex_unlock(&inf->lock);
  if (t == KUBE_DELETED) {
    if (prev && inf->h.on_delete) inf->h.on_delete(obj, inf->h.ud);
  } else if (!prev) {
    if (inf->h.on_add) inf->h.on_add(obj, inf->h.ud);
  } else if (!kd_streq(meta_str(prev, "resourceVersion"), meta_str(obj, "resourceVersion"))) {
    if (inf->h.on_update) inf->h.on_update(prev, obj, inf->h.ud);
  }
  json_decref(prev);
  json_decref(obj);
  return true;
}

static bool fatal(kd_rc rc) {
  return rc == KD_ERR_NOMEM || rc == KD_ERR_NOTFOUND || rc == KD_ERR_FORBIDDEN || rc == KD_ERR_INVALID ||
         rc == KD_ERR_CONFIG;
}

kd_rc informer_run(informer *inf, volatile const int *stop) {
  char *rv = NULL;
  kd_rc rc = KD_OK;
  int failures = 0;
  bool need_list = true;
  while (!*stop) {
    if (need_list) {
      free(rv);
      rv = NULL;
      rc = relist(inf, &rv);
      if (rc != KD_OK) {
        if (fatal(rc)) break;
        kd_log(KD_LOG_WARN, "informer %s: list failed, retrying: %s", inf->res.resource, kd_errmsg());
        kd_sleep_ms(kube_backoff_ms(failures++, 500, 30000, (unsigned)kd_now_ms()), stop);
        continue;
      }
      need_list = false;
      failures = 0;
    }
    struct kube_watch_opts wo = {inf->selector, NULL, rv, inf->watch_timeout, stop};
    char *last = NULL;
    pthread_mutex_lock(&inf->lock);
    inf->stats.watches++;
    pthread_mutex_unlock(&inf->lock);
    rc = kube_watch(inf->client, &inf->res, inf->ns, &wo, on_event, inf, &last);
    if (last) { /* resume after the last event seen */
      free(rv);
      rv = last;
    }
    if (rc == KD_OK) {
      failures = 0;
      continue;
    }
    if (rc == KD_ERR_CANCELLED) break;
    if (rc == KD_ERR_GONE) {
      kd_log(KD_LOG_INFO, "informer %s: resourceVersion expired, listing again", inf->res.resource);
      need_list = true;
      continue;
    }
    if (fatal(rc)) break;
    kd_log(KD_LOG_WARN, "informer %s: watch failed, resuming: %s", inf->res.resource, kd_errmsg());
    kd_sleep_ms(kube_backoff_ms(failures++, 200, 30000, (unsigned)kd_now_ms()), stop);
  }
  free(rv);
  if (*stop) return KD_OK;
  return rc;
}

bool informer_synced(informer *inf) {
  pthread_mutex_lock(&inf->lock);
  bool s = inf->synced;
  pthread_mutex_unlock(&inf->lock);
  return s;
}

json_t *informer_get(informer *inf, const char *ns, const char *name) {
  char key[600];
  snprintf(key, sizeof key, "%s/%s", ns ? ns : "", name ? name : "");
  pthread_mutex_lock(&inf->lock);
  json_t *o = json_incref(json_object_get(inf->cache, key));
  pthread_mutex_unlock(&inf->lock);
  return o;
}

json_t *informer_list(informer *inf) {
  json_t *arr = json_array();
  const char *key;
  json_t *obj;
  if (!arr) return NULL;
  bool ok = true;
  pthread_mutex_lock(&inf->lock);
  json_object_foreach(inf->cache, key, obj) {
    if (json_array_append(arr, obj)) {
      ok = false; /* a partial list must never pass for the whole cache */
      break;
    }
  }
  pthread_mutex_unlock(&inf->lock);
  if (ok) return arr;
  json_decref(arr);
  return NULL;
}

size_t informer_count(informer *inf) {
  pthread_mutex_lock(&inf->lock);
  size_t n = json_object_size(inf->cache);
  pthread_mutex_unlock(&inf->lock);
  return n;
}

void informer_stats_get(informer *inf, struct informer_stats *out) {
  pthread_mutex_lock(&inf->lock);
  *out = inf->stats;
  pthread_mutex_unlock(&inf->lock);
}
