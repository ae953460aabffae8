/* events.c — Event recorder with repeat aggregation (see events.h). */
#include "events.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENTS_CACHE_MAX 4096
#define EVENTS_REPEAT_WINDOW_S 600

static const struct kube_res event_res = {"", "v1", "events", "Event", true};

struct events {
  kube_client *client;
  char *component;
  pthread_mutex_t lock;
  json_t *cache; /* key -> {"ns":..., "name":..., "count":n, "last":unix} */
};

kd_rc events_new(kube_client *c, const char *component, events **out) {
  events *e = calloc(1, sizeof *e);
  if (!e) return kd_fail(KD_ERR_NOMEM, "out of memory");
  e->client = c;
  e->component = kd_strdup(component);
  e->cache = json_object();
  pthread_mutex_init(&e->lock, NULL);
  if (!e->component || !e->cache) {
    events_free(e);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  *out = e;
  return KD_OK;
}

void events_free(events *e) {
  if (!e) return;
  free(e->component);
  json_decref(e->cache);
  pthread_mutex_destroy(&e->lock);
  free(e);
}

static const char *meta(json_t *obj, const char *k) {
  return json_string_value(json_object_get(json_object_get(obj, "metadata"), k));
}

/* Drop entries older than the repeat window; if still full, drop everything (simple and bounded). */
static void prune(events *e, time_t now) {
  if (json_object_size(e->cache) < EVENTS_CACHE_MAX) return;
  const char *k;
  json_t *v, *tmp;
  json_object_foreach_safe(e->cache, tmp, k, v) {
    if (now - json_integer_value(json_object_get(v, "last")) > EVENTS_REPEAT_WINDOW_S) json_object_del(e->cache, k);
  }
  if (json_object_size(e->cache) >= EVENTS_CACHE_MAX) json_object_clear(e->cache);
}

kd_rc events_emit(events *e, json_t *obj, const char *type, const char *reason, const char *fmt, ...) {
  char msg[1024], key[1400], ts[21], name[300];
  unsigned char digest[SHA256_DIGEST_LENGTH];
  va_list ap;
  va_start(ap, fmt);
  int full = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (full >= (int)sizeof msg) msg[kd_utf8_cut(msg, sizeof msg - 1)] = '\0'; /* never half a character */
  const char *ons = meta(obj, "namespace"), *oname = meta(obj, "name"), *uid = meta(obj, "uid");
  const char *ns = ons && ons[0] ? ons : "default"; /* the only namespace the API allows */
  time_t now = time(NULL);
  kd_time_format(now, ts);
  snprintf(key, sizeof key, "%s/%s/%s/%s/%s", uid ? uid : "", oname ? oname : "", type, reason, msg);

  pthread_mutex_lock(&e->lock);
  prune(e, now);
  json_t *seen = json_object_get(e->cache, key);
  bool repeat = seen && now - json_integer_value(json_object_get(seen, "last")) <= EVENTS_REPEAT_WINDOW_S;
  json_int_t count = repeat ? json_integer_value(json_object_get(seen, "count")) + 1 : 1;
  if (repeat) {
    snprintf(name, sizeof name, "%s", json_string_value(json_object_get(seen, "name")));
  } else {
    SHA256((const unsigned char *)key, strlen(key), digest);
    snprintf(name, sizeof name, "%.200s.%02x%02x%02x%02x%02x%02x%02x%02x", oname ? oname : "object", digest[0],
             digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7]);
  }
  json_object_set_new(e->cache, key, json_pack("{s:s,s:I,s:I}", "name", name, "count", count, "last", (json_int_t)now));
  pthread_mutex_unlock(&e->lock);

  kd_rc rc;
  json_t *out = NULL;
  if (repeat) {
    json_t *patch = json_pack("{s:I,s:s,s:s}", "count", count, "lastTimestamp", ts, "message", msg);
    rc = patch ? kube_patch(e->client, &event_res, ns, name, patch, NULL, &out) : kd_fail(KD_ERR_NOMEM, "out of memory");
    json_decref(patch);
    if (rc != KD_ERR_NOTFOUND) goto done;
    count = 1; /* the Event expired on the server: write it anew */
  }
  json_t *ev = json_pack(
      "{s:s,s:s,s:{s:s,s:s},s:{s:s?,s:s?,s:s?,s:s?,s:s?},s:s,s:s,s:s,s:{s:s},s:s,s:s,s:I,s:s,s:s}", "apiVersion", "v1",
      "kind", "Event", "metadata", "name", name, "namespace", ns, "involvedObject", "apiVersion",
      json_string_value(json_object_get(obj, "apiVersion")), "kind", json_string_value(json_object_get(obj, "kind")),
      "name", oname, "namespace", ons, "uid", uid, "type", type, "reason", reason, "message", msg, "source", "component",
      e->component, "firstTimestamp", ts, "lastTimestamp", ts, "count", count, "reportingComponent", e->component,
      "reportingInstance", e->component);
  if (!ev) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto done;
  }
  rc = kube_create(e->client, &event_res, ns, ev, &out);
  if (rc == KD_ERR_CONFLICT) { /* same name from an earlier run of ours: count on it */
    json_decref(out);
    out = NULL;
    json_t *patch = json_pack("{s:s,s:s}", "lastTimestamp", ts, "message", msg);
    rc = kube_patch(e->client, &event_res, ns, name, patch, NULL, &out);
    json_decref(patch);
  }
  json_decref(ev);
done:
  if (rc != KD_OK) kd_log(KD_LOG_WARN, "event %s %s on %s: not recorded: %s", type, reason, oname ? oname : "?", kd_errmsg());
  json_decref(out);
  return rc;
}
