/* bench_controller.c — latencies of a running `kcmdr controller`, against a baseline measured in
 * the same run on the same API server:
 *   baseline:  create a ConfigMap -> its ADDED event arrives on a watch (the API's own round trip)
 *   create:    create a ManagementBackup -> the controller's Backup arrives on a watch
 *   status:    patch a Backup's phase -> the ManagementBackup's status shows it on a watch
 * Prints p50/p99 of each and their ratio to the baseline. Usage: bench-controller NS N [TAG] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube.h"

static const struct kube_res cm = {"", "v1", "configmaps", "ConfigMap", true};
static const struct kube_res mb = {"k0rdent.mirantis.com", "v1beta1", "managementbackups", "ManagementBackup", false};
static const struct kube_res bk = {"velero.io", "v1", "backups", "Backup", true};

static volatile int stop;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *seen; /* "kind/name[/phase]" -> ms */

static void mark(const char *key) {
  pthread_mutex_lock(&lock);
  if (!json_object_get(seen, key)) json_object_set_new(seen, key, json_integer(kd_now_ms()));
  pthread_mutex_unlock(&lock);
}

static bool on_ev(enum kube_event_type t, json_t *o, void *ud) {
  const char *kind = ud;
  if (t == KUBE_BOOKMARK || t == KUBE_DELETED) return true;
  const char *name = json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
  char key[400];
  snprintf(key, sizeof key, "%s/%s", kind, name ? name : "");
  mark(key);
  const char *phase = json_string_value(json_object_get(json_object_get(json_object_get(o, "status"), "lastBackup"), "phase"));
  if (phase) {
    snprintf(key, sizeof key, "%s/%s/%s", kind, name ? name : "", phase);
    mark(key);
  }
  return !stop;
}

struct wargs {
  kube_client *c;
  const struct kube_res *res;
  const char *ns, *kind;
};

static void *watcher(void *a) {
  struct wargs *w = a;
  while (!stop) {
    struct kube_watch_opts o = {NULL, NULL, "0", 60, &stop};
    kube_watch(w->c, w->res, w->ns, &o, on_ev, (void *)w->kind, NULL);
  }
  return NULL;
}

static int64_t wait_for(const char *key, int64_t t0) {
  for (int i = 0; i < 30000; i++) {
    pthread_mutex_lock(&lock);
    json_t *v = json_object_get(seen, key);
    int64_t t = v ? json_integer_value(v) : 0;
    pthread_mutex_unlock(&lock);
    if (t) return t - t0;
    kd_sleep_ms(1, NULL);
  }
  fprintf(stderr, "bench-controller: %s never arrived\n", key);
  exit(1);
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void pct(int64_t *v, int n, double *p50, double *p99) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  *p50 = (double)v[n / 2];
  *p99 = (double)v[(n * 99 + 99) / 100 - 1 < n ? (n * 99 + 99) / 100 - 1 : n - 1];
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench-controller NAMESPACE N\n");
    return 2;
  }
  const char *ns = argv[1], *tag = argc > 3 ? argv[3] : "run";
  int n = atoi(argv[2]);
  if (n < 1 || n > 10000) return 2;
  kd_log_setup(KD_LOG_WARN, false);
  kube_client *c;
  if (kube_client_from_opts(NULL, NULL, &c) != KD_OK) {
    fprintf(stderr, "bench-controller: %s\n", kd_errmsg());
    return 1;
  }
  seen = json_object();
  struct wargs w[3] = {{c, &cm, ns, "cm"}, {c, &bk, ns, "backup"}, {c, &mb, NULL, "mb"}};
  pthread_t th[3];
  for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, watcher, &w[i]);
  kd_sleep_ms(1000, NULL); /* watches established */
  int64_t *base = calloc((size_t)n, sizeof *base), *create = calloc((size_t)n, sizeof *create),
          *status = calloc((size_t)n, sizeof *status);
  char name[128], key[400];
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "bench-cm-%d-%d", (int)getpid(), i);
    json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", name), *out = NULL;
    int64_t t0 = kd_now_ms();
    if (kube_create(c, &cm, ns, o, &out) != KD_OK) return fprintf(stderr, "%s\n", kd_errmsg()), 1;
    snprintf(key, sizeof key, "cm/%s", name);
    base[i] = wait_for(key, t0);
    json_decref(o);
    json_decref(out);
  }
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "bench-%s-%d-%d", tag, (int)getpid(), i);
    json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "k0rdent.mirantis.com/v1beta1", "kind", "ManagementBackup",
                          "metadata", "name", name), *out = NULL;
    int64_t t0 = kd_now_ms();
    if (kube_create(c, &mb, NULL, o, &out) != KD_OK) return fprintf(stderr, "%s\n", kd_errmsg()), 1;
    snprintf(key, sizeof key, "backup/%s", name);
    create[i] = wait_for(key, t0);
    json_decref(o);
    json_decref(out);
  }
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "bench-%s-%d-%d", tag, (int)getpid(), i);
    json_t *p = json_pack("{s:{s:s}}", "status", "phase", "Completed"), *out = NULL;
    struct kube_patch_opts po = {KUBE_PATCH_MERGE, NULL, false, "status"};
    int64_t t0 = kd_now_ms();
    if (kube_patch(c, &bk, ns, name, p, &po, &out) != KD_OK) return fprintf(stderr, "%s\n", kd_errmsg()), 1;
    snprintf(key, sizeof key, "mb/%s/Completed", name);
    status[i] = wait_for(key, t0);
    json_decref(p);
    json_decref(out);
  }
  stop = 1;
  double b50, b99, c50, c99, s50, s99;
  pct(base, n, &b50, &b99);
  pct(create, n, &c50, &c99);
  pct(status, n, &s50, &s99);
  if (b50 < 1) b50 = 1;
  if (b99 < 1) b99 = 1;
  printf("%-48s %8s %8s %10s %10s\n", "latency (ms), n=", "p50", "p99", "p50/base", "p99/base");
  printf("%-48s %8.0f %8.0f %10s %10s\n", "baseline: ConfigMap created -> seen on a watch", b50, b99, "1.0", "1.0");
  printf("%-48s %8.0f %8.0f %10.1f %10.1f\n", "ManagementBackup created -> Backup created", c50, c99, c50 / b50, c99 / b99);
  printf("%-48s %8.0f %8.0f %10.1f %10.1f\n", "Backup phase changed -> ManagementBackup status", s50, s99, s50 / b50, s99 / b99);
  printf("targets: create p99 <= 100 ms, status p99 <= 1000 ms (DESIGN.md §4): %s, %s\n", c99 <= 100 ? "met" : "MISSED",
         s99 <= 1000 ? "met" : "MISSED");
  for (int i = 0; i < 3; i++) pthread_cancel(th[i]), pthread_join(th[i], NULL);
  return 0;
}
