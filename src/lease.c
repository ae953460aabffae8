/* lease.c — leader election on a Lease object (see lease.h). */
#include "lease.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static const struct kube_res lease_res = {"coordination.k8s.io", "v1", "leases", "Lease", true};

/* MicroTime as the API wants it: 2006-01-02T15:04:05.000000Z */
static void micro_now(char out[32]) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  if (n == 0) { /* cannot happen for years 0..9999; never send a malformed time */
    snprintf(out, 32, "1970-01-01T00:00:00.000000Z");
    return;
  }
  snprintf(out + n, 32 - n, ".%06ldZ", (long)tv.tv_usec);
}

struct observed {
  char rv[64];         /* resourceVersion last seen */
  int64_t seen_ms;     /* local monotonic time it last changed */
};

/* Try once to take or renew the lease. KD_OK: we hold it now. KD_ERR_CONFLICT: someone else holds
 * it (*other set) or won a race for it. Other codes: the API failed. */
static kd_rc try_acquire(kube_client *c, const struct lease_opts *o, const char *me, int lease_s, struct observed *ob,
                         bool *other) {
  json_t *cur = NULL, *out = NULL;
  char now[32];
  kd_rc rc = kube_get(c, &lease_res, o->namespace, o->name, &cur);
  *other = false;
  micro_now(now);
  if (rc == KD_ERR_NOTFOUND) {
    json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:i,s:s,s:s,s:i}}", "apiVersion", "coordination.k8s.io/v1",
                            "kind", "Lease", "metadata", "name", o->name, "namespace", o->namespace, "spec",
                            "holderIdentity", me, "leaseDurationSeconds", lease_s, "acquireTime", now, "renewTime",
                            now, "leaseTransitions", 0);
    if (!obj) return kd_fail(KD_ERR_NOMEM, "out of memory");
    rc = kube_create(c, &lease_res, o->namespace, obj, &out);
    json_decref(obj);
    json_decref(out);
    return rc;
  }
  if (rc != KD_OK) return rc;
  json_t *spec = json_object_get(cur, "spec");
  const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
  const char *rv = json_string_value(json_object_get(json_object_get(cur, "metadata"), "resourceVersion"));
  json_int_t dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
  if (dur <= 0) dur = lease_s;
  int64_t t = kd_now_ms();
  if (!rv || strcmp(rv, ob->rv) != 0) { /* the record changed: its holder is alive as of now */
    snprintf(ob->rv, sizeof ob->rv, "%s", rv ? rv : "");
    ob->seen_ms = t;
  }
  bool mine = kd_streq(holder, me);
  bool free_ = !holder || !holder[0];
  bool expired = t - ob->seen_ms > dur * 1000;
  if (!mine && !free_ && !expired) {
    json_decref(cur);
    *other = true;
    return KD_ERR_CONFLICT;
  }
  if (!mine) {
    json_int_t tr = json_integer_value(json_object_get(spec, "leaseTransitions"));
    json_object_set_new(spec, "leaseTransitions", json_integer(tr + 1));
    json_object_set_new(spec, "acquireTime", json_string(now));
  }
  json_object_set_new(spec, "holderIdentity", json_string(me));
  json_object_set_new(spec, "leaseDurationSeconds", json_integer(lease_s));
  json_object_set_new(spec, "renewTime", json_string(now));
  rc = kube_update(c, &lease_res, o->namespace, cur, &out); /* resourceVersion guards the race */
  if (rc == KD_OK) {
    const char *nrv = json_string_value(json_object_get(json_object_get(out, "metadata"), "resourceVersion"));
    snprintf(ob->rv, sizeof ob->rv, "%s", nrv ? nrv : "");
    ob->seen_ms = kd_now_ms();
  }
  json_decref(cur);
  json_decref(out);
  return rc;
}

/* Give the lease up (holder cleared) so a standby can take it at once. Best effort. */
static void release(kube_client *c, const struct lease_opts *o, const char *me) {
  json_t *cur = NULL, *out = NULL;
  if (kube_get(c, &lease_res, o->namespace, o->name, &cur) != KD_OK) return;
  json_t *spec = json_object_get(cur, "spec");
  if (kd_streq(json_string_value(json_object_get(spec, "holderIdentity")), me)) {
    json_object_set_new(spec, "holderIdentity", json_string(""));
    json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
    if (kube_update(c, &lease_res, o->namespace, cur, &out) != KD_OK)
      kd_log(KD_LOG_WARN, "lease %s/%s: could not release: %s", o->namespace, o->name, kd_errmsg());
  }
  json_decref(cur);
  json_decref(out);
}

static void set_valid(const struct lease_opts *o, int64_t v) {
  if (o->valid_until_ms) atomic_store(o->valid_until_ms, v);
}

kd_rc lease_run(kube_client *c, const struct lease_opts *opts, lease_fn on_start, lease_fn on_stop, void *ud,
                volatile const int *stop) {
  struct lease_opts o = *opts;
  char me[256];
  if (!o.lease_ms) o.lease_ms = 15000;
  if (!o.renew_deadline_ms) o.renew_deadline_ms = 10000;
  if (!o.retry_ms) o.retry_ms = 2000;
  if (o.identity) {
    snprintf(me, sizeof me, "%s", o.identity);
  } else {
    char host[128] = "kcmdr";
    gethostname(host, sizeof host - 1);
    snprintf(me, sizeof me, "%s_%ld", host, (long)getpid());
  }
  int lease_s = (o.lease_ms + 999) / 1000;
  struct observed ob = {"", kd_now_ms()};
  bool other;
  set_valid(&o, 0);
  for (;;) {
    /* campaign */
    for (;;) {
      if (*stop) return KD_OK;
      int64_t sent = kd_now_ms();
      kd_rc rc = try_acquire(c, &o, me, lease_s, &ob, &other);
      if (rc == KD_OK) {
        if (o.term) atomic_fetch_add(o.term, 1);
        set_valid(&o, sent + o.renew_deadline_ms);
        break;
      }
      if (rc != KD_ERR_CONFLICT) kd_log(KD_LOG_WARN, "lease %s/%s: %s", o.namespace, o.name, kd_errmsg());
      kd_sleep_ms(o.retry_ms, stop);
    }
    kd_log(KD_LOG_INFO, "lease %s/%s: %s is the leader", o.namespace, o.name, me);
    if (on_start) on_start(ud);
    /* lead: renew every retry period; stop leading after the renew deadline without success */
    int64_t last_renew = kd_now_ms();
    for (;;) {
      kd_sleep_ms(o.retry_ms, stop);
      if (*stop) {
        set_valid(&o, 0);
        if (on_stop) on_stop(ud);
        release(c, &o, me);
        return KD_OK;
      }
      int64_t sent = kd_now_ms();
      kd_rc rc = try_acquire(c, &o, me, lease_s, &ob, &other);
      if (rc == KD_OK && sent - last_renew <= o.renew_deadline_ms) {
        last_renew = sent;
        set_valid(&o, sent + o.renew_deadline_ms);
        continue;
      }
      if (rc != KD_OK)
        kd_log(KD_LOG_WARN, "lease %s/%s: renew failed: %s", o.namespace, o.name,
               other ? "another replica holds it" : kd_errmsg());
      /* a renewal that lands after the deadline (this process was stopped or starved) does not
       * count: another may have led in between, so step down and campaign afresh */
      if (other || kd_now_ms() - last_renew > o.renew_deadline_ms) {
        set_valid(&o, 0);
        kd_log(KD_LOG_WARN, "lease %s/%s: lost the lease (last renewed %lld ms ago); no longer leading", o.namespace,
               o.name, (long long)(kd_now_ms() - last_renew));
        if (on_stop) on_stop(ud);
        break;
      }
    }
  }
}
