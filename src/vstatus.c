/* vstatus.c — status writes to velero.io objects on either CRD shape (see vstatus.h). */
#include "vstatus.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define VSTATUS_SHAPE_TTL_MS 60000
#define VSTATUS_SHAPES_MAX 32 /* (client, resource) pairs remembered */
#define VSTATUS_CONFLICTS_MAX 20

const char *const vstatus_new[] = {"", "New", NULL};
const char *const vstatus_in_progress[] = {"InProgress", NULL};

struct shape {
  const kube_client *c;
  char group[128], resource[128];
  bool has_status;
  int64_t checked_ms;
};

static pthread_mutex_t shapes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shape shapes[VSTATUS_SHAPES_MAX];
static size_t shapes_next;

bool vstatus_phase_in(const char *phase, const char *const *list) {
  if (!list) return true;
  for (size_t i = 0; list[i]; i++)
    if (strcmp(phase ? phase : "", list[i]) == 0) return true;
  return false;
}

static struct shape *shape_find(const kube_client *c, const struct kube_res *res) {
  for (size_t i = 0; i < VSTATUS_SHAPES_MAX; i++)
    if (shapes[i].c == c && strcmp(shapes[i].group, res->group) == 0 && strcmp(shapes[i].resource, res->resource) == 0)
      return &shapes[i];
  return NULL;
}

/* Ask discovery whether res/status is served. */
static kd_rc discover(kube_client *c, const struct kube_res *res, bool *has) {
  char path[KUBE_MAX_PATH], sub[300];
  json_t *list = NULL;
  if (res->group[0]) snprintf(path, sizeof path, "/apis/%s/%s", res->group, res->version);
  else snprintf(path, sizeof path, "/api/%s", res->version);
  kd_rc rc = kube_request(c, "GET", path, NULL, NULL, 0, &list);
  if (rc != KD_OK) return kd_fail_wrap(rc, "discovering %s.%s", res->resource, res->group);
  snprintf(sub, sizeof sub, "%s/status", res->resource);
  bool found = false, status = false;
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(list, "resources"), i, r) {
    const char *n = json_string_value(json_object_get(r, "name"));
    if (kd_streq(n, res->resource)) found = true;
    if (kd_streq(n, sub)) status = true;
  }
  json_decref(list);
  if (!found) return kd_fail(KD_ERR_NOTFOUND, "the server does not serve %s.%s/%s", res->resource, res->group, res->version);
  *has = status;
  return KD_OK;
}

kd_rc vstatus_has_subresource(kube_client *c, const struct kube_res *res, bool refresh, bool *has) {
  int64_t now = kd_now_ms();
  pthread_mutex_lock(&shapes_lock);
  struct shape *s = shape_find(c, res);
  if (s && !refresh && now - s->checked_ms < VSTATUS_SHAPE_TTL_MS) {
    *has = s->has_status;
    pthread_mutex_unlock(&shapes_lock);
    return KD_OK;
  }
  pthread_mutex_unlock(&shapes_lock);
  bool v = false;
  kd_rc rc = discover(c, res, &v);
  if (rc != KD_OK) return rc;
  pthread_mutex_lock(&shapes_lock);
  if (!(s = shape_find(c, res))) {
    s = &shapes[shapes_next];
    shapes_next = (shapes_next + 1) % VSTATUS_SHAPES_MAX;
    s->c = c;
    snprintf(s->group, sizeof s->group, "%s", res->group);
    snprintf(s->resource, sizeof s->resource, "%s", res->resource);
  }
  if (s->checked_ms && s->has_status != v)
    kd_log(KD_LOG_INFO, "%s.%s: the CRD %s a status subresource now", res->resource, res->group, v ? "has" : "has no");
  s->has_status = v;
  s->checked_ms = kd_now_ms();
  pthread_mutex_unlock(&shapes_lock);
  *has = v;
  return KD_OK;
}

/* After a 404 for an object: is its type served (then the object is gone)? Discovery asked
 * afresh; an error of discovery counts as not served. The 404's message is kept. */
static bool served(kube_client *c, const struct kube_res *res) {
  char msg[1024];
  bool has;
  snprintf(msg, sizeof msg, "%s", kd_errmsg());
  kd_rc rc = vstatus_has_subresource(c, res, true, &has);
  kd_fail(KD_ERR_NOTFOUND, "%s", msg);
  return rc == KD_OK;
}

static bool transient(kd_rc rc) { return rc == KD_ERR_TRANSPORT || rc == KD_ERR_TIMEOUT || rc == KD_ERR_HTTP; }

/* Does obj's status hold the phase want sets (true when want sets none)? Only the phase: a
 * schema may prune a field it does not know, never the phase. */
static bool holds(json_t *obj, json_t *want) {
  json_t *p = json_object_get(want, "phase");
  return !p || json_equal(json_object_get(json_object_get(obj, "status"), "phase"), p);
}

static const char *phase_of(json_t *o) {
  const char *p = json_string_value(json_object_get(json_object_get(o, "status"), "phase"));
  return p ? p : "";
}

kd_rc vstatus_write(kube_client *c, const struct vstatus_write *w, json_t **out) {
  const struct kube_res *res = w->res;
  json_t *cur = NULL, *patch = NULL, *got = NULL;
  bool unknown = false, refresh = false;
  int conflicts = 0, shape_changes = 0;
  int64_t deadline = kd_now_ms() + (w->patience_ms > 0 ? w->patience_ms : 0);
  kd_rc rc = KD_OK;
  if (out) *out = NULL;
  for (int attempt = 0;; attempt++) {
    if (rc != KD_OK) { /* a transient failure before: wait, unless patience is spent or we stop */
      if (kd_now_ms() >= deadline || (w->stop && *w->stop)) goto fail;
      kd_sleep_ms(kube_backoff_ms(attempt, 500, 10000, (unsigned)kd_now_ms()), w->stop);
    }
    json_decref(cur), cur = NULL;
    json_decref(patch), patch = NULL;
    json_decref(got), got = NULL;
    if ((rc = fence_check(w->fence, "writing a status")) != KD_OK) goto fail;
    if ((rc = kube_get(c, res, w->ns, w->name, &cur)) != KD_OK) {
      if (transient(rc)) continue;
      if (rc == KD_ERR_NOTFOUND && !served(c, res)) { /* a restarting server 404s CRD routes for a while */
        rc = kd_fail(KD_ERR_HTTP, "%s.%s is not served right now (is the API server starting?)", res->resource, res->group);
        continue;
      }
      goto fail;
    }
    const char *uid = json_string_value(json_object_get(json_object_get(cur, "metadata"), "uid"));
    if (w->uid && !kd_streq(uid, w->uid)) {
      rc = kd_fail(KD_ERR_CONFLICT, "%s %s/%s was deleted and created again (uid %s, not %s)", res->kind, w->ns, w->name,
                   uid ? uid : "none", w->uid);
      goto fail;
    }
    if (unknown && holds(cur, w->status)) break; /* our earlier write went through; its answer was lost */
    if (!vstatus_phase_in(phase_of(cur), w->expect)) {
      rc = kd_fail(KD_ERR_CONFLICT, "%s %s/%s is %s now, not %s", res->kind, w->ns, w->name,
                   phase_of(cur)[0] ? phase_of(cur) : "without a phase", w->expect[0] && w->expect[0][0] ? w->expect[0] : "new");
      goto fail;
    }
    bool has = true;
    if ((rc = vstatus_has_subresource(c, res, refresh, &has)) != KD_OK) {
      if (transient(rc)) continue;
      goto fail;
    }
    refresh = false;
    const char *rv = json_string_value(json_object_get(json_object_get(cur, "metadata"), "resourceVersion"));
    if (!(patch = json_pack("{s:{s:s?},s:O}", "metadata", "resourceVersion", rv, "status", w->status))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    if ((rc = fence_check(w->fence, "writing a status")) != KD_OK) goto fail;
    struct kube_patch_opts po = {KUBE_PATCH_MERGE, NULL, false, has ? "status" : NULL};
    rc = kube_patch(c, res, w->ns, w->name, patch, &po, &got);
    if (rc == KD_OK && !holds(got, w->status)) {
      /* a main-resource write whose status was dropped: the CRD has a status subresource now */
      if (++shape_changes > 3) {
        rc = kd_fail(KD_ERR_HTTP, "%s %s/%s: the server keeps dropping the status written", res->kind, w->ns, w->name);
        goto fail;
      }
      refresh = true;
      continue;
    }
    if (rc == KD_OK) break;
    if (rc == KD_ERR_NOTFOUND && has && shape_changes++ < 3) { /* no /status any more, or the object is gone */
      refresh = true;
      rc = KD_OK;
      continue;
    }
    if (rc == KD_ERR_CONFLICT) { /* changed since we read it: read again */
      if (++conflicts > VSTATUS_CONFLICTS_MAX) {
        rc = kd_fail(KD_ERR_CONFLICT, "%s %s/%s keeps changing under us", res->kind, w->ns, w->name);
        goto fail;
      }
      rc = KD_OK;
      continue;
    }
    if (transient(rc)) {
      unknown = true;
      continue;
    }
    goto fail;
  }
  if (out) { /* the answer of our write, or (a lost answer) the object read back */
    *out = got ? got : cur;
    if (got) got = NULL;
    else cur = NULL;
  }
  rc = KD_OK;
fail:
  if (rc != KD_OK && rc != KD_ERR_CANCELLED && rc != KD_ERR_CONFLICT)
    rc = kd_fail_wrap(rc, "writing the status of %s %s/%s", res->kind, w->ns, w->name);
  json_decref(cur);
  json_decref(patch);
  json_decref(got);
  return rc;
}
