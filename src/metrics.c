/* metrics.c — metrics registry and the health/metrics HTTP server (see metrics.h). */
#include "metrics.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct metrics {
  pthread_mutex_t lock;
  pthread_mutex_t collect_lock; /* one collect + render at a time */
  metrics_collect_fn collect;
  void *collect_ud;
  json_t *families; /* name -> {"type","help","series":{labels: value} | "hist":{counts,sum,count}} */
  long series;
  double dropped; /* series updates the cap refused */
};

kd_rc metrics_new(metrics **out) {
  metrics *m = calloc(1, sizeof *m);
  if (!m || !(m->families = json_object())) {
    free(m);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  pthread_mutex_init(&m->lock, NULL);
  pthread_mutex_init(&m->collect_lock, NULL);
  *out = m;
  return KD_OK;
}

void metrics_free(metrics *m) {
  if (!m) return;
  json_decref(m->families);
  pthread_mutex_destroy(&m->lock);
  pthread_mutex_destroy(&m->collect_lock);
  free(m);
}

/* family (created on first use); lock held */
static json_t *family(metrics *m, const char *name, const char *help, const char *type) {
  json_t *f = json_object_get(m->families, name);
  if (!f) {
    f = json_pack("{s:s,s:s,s:{}}", "type", type, "help", help, "series");
    if (!f || json_object_set_new(m->families, name, f)) return NULL;
  }
  return f;
}

/* key="value",... from a NULL-terminated key, value list; truncated (at a pair) to n bytes */
static void label_string(const char *const *lv, char *out, size_t n) {
  size_t j = 0;
  out[0] = '\0';
  for (size_t i = 0; lv && lv[i] && lv[i + 1]; i += 2) {
    char one[512];
    size_t k = (size_t)snprintf(one, sizeof one, "%s%s=\"", j ? "," : "", lv[i]);
    if (k + 4 >= sizeof one) break; /* a key this long is a caller's bug: the pair is left out */
    for (const char *p = lv[i + 1]; *p && k + 4 < sizeof one; p++) {
      if (*p == '"' || *p == '\\') one[k++] = '\\';
      if (*p == '\n') {
        one[k++] = '\\';
        one[k++] = 'n';
        continue;
      }
      one[k++] = *p;
    }
    one[k++] = '"';
    one[k] = '\0';
    if (j + k + 1 > n) break;
    memcpy(out + j, one, k + 1);
    j += k;
  }
}

static void set_or_add(metrics *m, const char *name, const char *help, const char *type, const char *const *lv,
                       double v, bool add) {
  char labels[512];
  label_string(lv, labels, sizeof labels);
  pthread_mutex_lock(&m->lock);
  json_t *f = family(m, name, help, type);
  json_t *series = f ? json_object_get(f, "series") : NULL;
  if (series) {
    json_t *cur = json_object_get(series, labels);
    if (cur || m->series < METRICS_MAX_SERIES) {
      if (!cur) m->series++;
      json_object_set_new(series, labels, json_real((add && cur ? json_real_value(cur) : 0) + v));
    } else {
      m->dropped++;
    }
  }
  pthread_mutex_unlock(&m->lock);
}

void metrics_counter_add(metrics *m, const char *name, const char *help, const char *lk, const char *lv, double v) {
  const char *l[] = {lk, lv ? lv : "", NULL};
  if (m) set_or_add(m, name, help, "counter", lk ? l : NULL, v, true);
}

void metrics_gauge_set(metrics *m, const char *name, const char *help, const char *lk, const char *lv, double v) {
  const char *l[] = {lk, lv ? lv : "", NULL};
  if (m) set_or_add(m, name, help, "gauge", lk ? l : NULL, v, false);
}

void metrics_counter_addv(metrics *m, const char *name, const char *help, const char *const *lv, double v) {
  if (m) set_or_add(m, name, help, "counter", lv, v, true);
}

void metrics_gauge_setv(metrics *m, const char *name, const char *help, const char *const *lv, double v) {
  if (m) set_or_add(m, name, help, "gauge", lv, v, false);
}

void metrics_counter_set(metrics *m, const char *name, const char *help, double v) {
  if (m) set_or_add(m, name, help, "counter", NULL, v, false);
}

void metrics_reset(metrics *m, const char *name) {
  if (!m) return;
  pthread_mutex_lock(&m->lock);
  json_t *f = json_object_get(m->families, name);
  if (f) {
    m->series -= (long)json_object_size(json_object_get(f, "series"));
    json_object_del(m->families, name);
  }
  pthread_mutex_unlock(&m->lock);
}

void metrics_drop_label(metrics *m, const char *name, const char *key, const char *value) {
  const char *lv[] = {key, value, NULL};
  char pair[512];
  if (!m || !key || !value) return;
  label_string(lv, pair, sizeof pair);
  size_t n = strlen(pair);
  if (!n) return;
  pthread_mutex_lock(&m->lock);
  json_t *series = json_object_get(json_object_get(m->families, name), "series");
  const char *labels;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(series, tmp, labels, v) {
    /* pair as a whole label: at the start or after a ',', up to a ',' or the end (a value cannot
     * hold an unescaped '"', so "a=\"x\"" never matches inside another label's value) */
    bool hit = false;
    for (const char *p = strstr(labels, pair); p && !hit; p = strstr(p + 1, pair))
      hit = (p == labels || p[-1] == ',') && (p[n] == ',' || p[n] == '\0');
    if (hit) {
      json_object_del(series, labels);
      m->series--;
    }
  }
  pthread_mutex_unlock(&m->lock);
}

void metrics_set_collector(metrics *m, metrics_collect_fn fn, void *ud) {
  pthread_mutex_lock(&m->collect_lock);
  m->collect = fn;
  m->collect_ud = ud;
  pthread_mutex_unlock(&m->collect_lock);
}

long metrics_room(metrics *m) {
  pthread_mutex_lock(&m->lock);
  long r = METRICS_MAX_SERIES - m->series;
  pthread_mutex_unlock(&m->lock);
  return r > 0 ? r : 0;
}

int64_t metrics_schedule_gap(const cron_schedule *cs, int64_t t) {
  int64_t next = cron_next(cs, t), lo = -1;
  if (next <= t) return 0;
  /* a time lo with an activation in (lo, t]: look back 1 min, 2 min, 4 min, ... */
  for (int64_t d = 60; d <= (int64_t)8 * 366 * 86400; d *= 2) {
    int64_t c = t - d < 0 ? 0 : t - d, a = cron_next(cs, c);
    if (a > 0 && a <= t) {
      lo = c;
      break;
    }
    if (c == 0) break;
  }
  if (lo < 0) return next - t;
  /* cron_next is non-decreasing: the last x in [lo, t) with cron_next(x) <= t gives the last
   * activation at or before t */
  int64_t hi = t;
  while (hi - lo > 1) {
    int64_t mid = lo + (hi - lo) / 2, a = cron_next(cs, mid);
    if (a > 0 && a <= t) lo = mid;
    else hi = mid;
  }
  return next - cron_next(cs, lo);
}

void metrics_observe(metrics *m, const char *name, const char *help, double v) {
  if (!m) return;
  pthread_mutex_lock(&m->lock);
  json_t *f = family(m, name, help, "histogram");
  if (f) {
    json_t *h = json_object_get(f, "hist");
    if (!h) {
      h = json_pack("{s:[],s:f,s:I}", "counts", "sum", 0.0, "count", (json_int_t)0);
      for (size_t i = 0; h && i < NBUCKETS; i++) json_array_append_new(json_object_get(h, "counts"), json_integer(0));
      if (h) json_object_set_new(f, "hist", h);
    }
    if (h) {
      json_t *counts = json_object_get(h, "counts");
      for (size_t i = 0; i < NBUCKETS; i++)
        if (v <= buckets[i]) json_array_set_new(counts, i, json_integer(json_integer_value(json_array_get(counts, i)) + 1));
      json_object_set_new(h, "sum", json_real(json_real_value(json_object_get(h, "sum")) + v));
      json_object_set_new(h, "count", json_integer(json_integer_value(json_object_get(h, "count")) + 1));
    }
  }
  pthread_mutex_unlock(&m->lock);
}

char *metrics_render(metrics *m) {
  kd_buf b = KD_BUF_INIT(16u << 20);
  const char *name;
  json_t *f;
  kd_rc rc = KD_OK;
  pthread_mutex_lock(&m->collect_lock);
  if (m->collect) m->collect(m, m->collect_ud);
  pthread_mutex_lock(&m->lock);
  json_t *dropped = json_object_get(family(m, "kcmdr_metrics_series_dropped_total",
                                           "Series updates refused because the registry holds its maximum of series.",
                                           "counter"),
                                    "series");
  if (dropped) {
    if (!json_object_get(dropped, "")) m->series++;
    json_object_set_new(dropped, "", json_real(m->dropped));
  }
  const char **names = malloc((json_object_size(m->families) + 1) * sizeof *names);
  size_t n = 0;
  json_object_foreach(m->families, name, f) if (names) names[n++] = name;
  for (size_t i = 0; names && i < n; i++) /* sorted output: stable for humans and tests */
    for (size_t j = i + 1; j < n; j++)
      if (strcmp(names[j], names[i]) < 0) {
        const char *t = names[i];
        names[i] = names[j];
        names[j] = t;
      }
  for (size_t i = 0; names && i < n && rc == KD_OK; i++) {
    f = json_object_get(m->families, names[i]);
    const char *type = json_string_value(json_object_get(f, "type"));
    rc = kd_buf_addf(&b, "# HELP %s %s\n# TYPE %s %s\n", names[i], json_string_value(json_object_get(f, "help")),
                     names[i], type);
    json_t *h = json_object_get(f, "hist");
    if (h) {
      json_t *counts = json_object_get(h, "counts");
      for (size_t k = 0; k < NBUCKETS && rc == KD_OK; k++)
        rc = kd_buf_addf(&b, "%s_bucket{le=\"%g\"} %lld\n", names[i], buckets[k],
                         (long long)json_integer_value(json_array_get(counts, k)));
      if (rc == KD_OK)
        rc = kd_buf_addf(&b, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.9g\n%s_count %lld\n", names[i],
                         (long long)json_integer_value(json_object_get(h, "count")), names[i],
                         json_real_value(json_object_get(h, "sum")), names[i],
                         (long long)json_integer_value(json_object_get(h, "count")));
      continue;
    }
    const char *labels;
    json_t *v;
    json_object_foreach(json_object_get(f, "series"), labels, v) {
      if (rc != KD_OK) break;
      rc = kd_buf_addf(&b, "%s%s%s%s %.17g\n", names[i], labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                       json_real_value(v));
    }
  }
  pthread_mutex_unlock(&m->lock);
  pthread_mutex_unlock(&m->collect_lock);
  free(names);
  if (rc != KD_OK || !names) {
    kd_buf_free(&b);
    return NULL;
  }
  return kd_buf_steal(&b);
}

/* ---- HTTP ---- */

struct httpserv {
  struct MHD_Daemon *d;
  metrics *m;
  httpserv_check_fn ready;
  void *ud;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *ctype, char *body, bool owned) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
                                                           owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!r) {
    if (owned) free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", ctype);
  enum MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)version, (void)upload, (void)upload_size, (void)con_cls;
  httpserv *s = cls;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return reply(c, 405, "text/plain", "method not allowed\n", false);
  if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0) return reply(c, 200, "text/plain", "ok\n", false);
  if (strcmp(url, "/readyz") == 0) {
    bool ok = !s->ready || s->ready(s->ud);
    return reply(c, ok ? 200 : 503, "text/plain", ok ? "ok\n" : "not ready\n", false);
  }
  if (strcmp(url, "/metrics") == 0 && s->m) {
    char *text = metrics_render(s->m);
    if (!text) return reply(c, 500, "text/plain", "out of memory\n", false);
    return reply(c, 200, "text/plain; version=0.0.4", text, true);
  }
  return reply(c, 404, "text/plain", "not found\n", false);
}

kd_rc httpserv_parse_addr(const char *addr, bool *enabled, char host[64], int *port) {
  *enabled = false;
  if (!addr || !addr[0] || strcmp(addr, "0") == 0) return KD_OK;
  const char *colon = strrchr(addr, ':');
  if (!colon) return kd_fail(KD_ERR_INVALID, "bind address '%s': expected [host]:port or 0", addr);
  size_t hl = (size_t)(colon - addr);
  if (hl >= 64) return kd_fail(KD_ERR_INVALID, "bind address '%s': host too long", addr);
  memcpy(host, addr, hl);
  host[hl] = '\0';
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || p < 1 || p > 65535) return kd_fail(KD_ERR_INVALID, "bind address '%s': bad port", addr);
  struct in_addr ia;
  if (hl && inet_pton(AF_INET, host, &ia) != 1)
    return kd_fail(KD_ERR_INVALID, "bind address '%s': host must be an IPv4 address or empty", addr);
  *port = (int)p;
  *enabled = true;
  return KD_OK;
}

kd_rc httpserv_start(const char *addr, metrics *m, httpserv_check_fn ready, void *ud, httpserv **out) {
  bool enabled;
  char host[64] = "";
  int port = 0;
  *out = NULL;
  kd_rc rc = httpserv_parse_addr(addr, &enabled, host, &port);
  if (rc || !enabled) return rc;
  httpserv *s = calloc(1, sizeof *s);
  if (!s) return kd_fail(KD_ERR_NOMEM, "out of memory");
  s->m = m;
  s->ready = ready;
  s->ud = ud;
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = host[0] ? inet_addr(host) : htonl(INADDR_ANY);
  s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, on_request, s,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 64u,
                          MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  if (!s->d) {
    free(s);
    return kd_fail(KD_ERR_IO, "cannot listen on %s (in use?)", addr);
  }
  *out = s;
  return KD_OK;
}

void httpserv_stop(httpserv *s) {
  if (!s) return;
  MHD_stop_daemon(s->d);
  free(s);
}
