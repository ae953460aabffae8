/* bench_common.c — the backup and restore benchmarks' shared parts (see bench_common.h). */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

const char *bench_prog = "bench";
const struct kube_res bench_types[BENCH_NTYPES] = {
    {"", "v1", "configmaps", "ConfigMap", true},
    {"", "v1", "secrets", "Secret", true},
    {"k0rdent.mirantis.com", "v1beta1", "clusterdeployments", "ClusterDeployment", true},
    {"helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", true},
};
const struct kube_res bench_ns_res = {"", "v1", "namespaces", "Namespace", false};
const struct kube_res bench_backup_res = {"velero.io", "v1", "backups", "Backup", true};

void bench_die(const char *what) {
  fprintf(stderr, "%s: %s: %s\n", bench_prog, what, kd_errmsg());
  exit(1);
}

kube_client *bench_client(bool engine_default) {
  kube_client *c = NULL;
  struct kube_client_opts ko = {.qps = 1e6, .burst = 1000000};
  if (kube_client_from_opts(NULL, engine_default ? NULL : &ko, &c)) bench_die("connecting");
  return c;
}

int bench_type_of(long i) {
  int t = (int)(i % 10);
  return t < 4 ? 0 : t < 7 ? 1 : t < 9 ? 2 : 3;
}

json_t *bench_object(const char *ns, long i) {
  char name[64], v[600];
  int t = (int)(i % 10);
  snprintf(name, sizeof name, "obj-%07ld", i);
  for (int k = 0; k < 599; k++) v[k] = (char)('a' + (i * 7 + k * 13) % 26);
  v[599] = '\0';
  json_t *labels = json_pack("{s:s,s:s,s:s}", "app.kubernetes.io/part-of", "bench", "shard", t < 4 ? "cm" : "x",
                             "k0rdent.mirantis.com/component", "kcm");
  switch (bench_type_of(i)) {
  case 0:
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:{s:s,s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", name,
                     "namespace", ns, "labels", labels, "data", "config.yaml", v, "note", "Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93");
  case 1: {
    char *b64 = kd_base64_encode((const unsigned char *)v, 400);
    json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name",
                          name, "namespace", ns, "labels", labels, "type", "Opaque", "data", "value", b64);
    free(b64);
    return o;
  }
  case 2:
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:{s:s,s:s,s:{s:s,s:i,s:{s:s}},s:[s,s]}}", "apiVersion",
                     "k0rdent.mirantis.com/v1beta1", "kind", "ClusterDeployment", "metadata", "name", name, "namespace", ns,
                     "labels", labels, "spec", "template", "aws-standalone-cp-0-1-0", "credential", "aws-cred", "config",
                     "region", "us-east-1", "workersNumber", (int)(i % 5 + 1), "clusterLabels", "tier", v + 500, "services",
                     "ingress-nginx", "cert-manager");
  default:
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:{s:{s:s,s:s},s:{s:s,s:s}}}", "apiVersion", "helm.toolkit.fluxcd.io/v2",
                     "kind", "HelmRelease", "metadata", "name", name, "namespace", ns, "labels", labels, "spec", "chartRef",
                     "kind", "HelmChart", "name", "kcm", "values", "blob", v, "region", "eu-west-1");
  }
}

void bench_create_ns(kube_client *c, const char *ns) {
  json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns), *out = NULL;
  struct kube_req_opts ro = {.idempotent = true};
  kd_rc rc = kube_create_ex(c, &bench_ns_res, NULL, o, &ro, &out);
  if (rc && rc != KD_ERR_CONFLICT) bench_die("creating a namespace");
  json_decref(o);
  json_decref(out);
}

void bench_pool(int n, void *(*fn)(void *), void *arg) {
  pthread_t th[128];
  if (n < 1) n = 1;
  if (n > 128) n = 128;
  for (int i = 0; i < n; i++)
    if (pthread_create(&th[i], NULL, fn, arg)) bench_die("starting a thread");
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
}

struct loader {
  kube_client *c;
  const char *ns;
  long n;
  atomic_long next, created, existing;
};

static void *load_worker(void *arg) {
  struct loader *l = arg;
  for (;;) {
    long i = atomic_fetch_add(&l->next, 1);
    if (i >= l->n) break;
    json_t *o = bench_object(l->ns, i), *out = NULL;
    struct kube_req_opts ro = {.idempotent = true}; /* a repeated create can only meet 409 */
    kd_rc rc = kube_create_ex(l->c, &bench_types[bench_type_of(i)], l->ns, o, &ro, &out);
    json_decref(out);
    json_decref(o);
    if (rc == KD_OK) atomic_fetch_add(&l->created, 1);
    else if (rc == KD_ERR_CONFLICT) atomic_fetch_add(&l->existing, 1);
    else bench_die("creating an object");
  }
  return NULL;
}

int bench_load(const char *ns, long n, int workers) {
  struct loader l = {.c = bench_client(false), .ns = ns, .n = n};
  bench_create_ns(l.c, ns);
  int64_t t0 = kd_now_ms();
  bench_pool(workers, load_worker, &l);
  fprintf(stderr, "%s: %ld objects in %s (%ld created, %ld there already) in %.1f s\n", bench_prog, n, ns,
          atomic_load(&l.created), atomic_load(&l.existing), (double)(kd_now_ms() - t0) / 1000.0);
  kube_client_free(l.c);
  return 0;
}

json_t *bench_bsl(const char *dir) {
  json_t *bsl = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:{s:s},s:{s:s}},s:{s:s}}", "apiVersion", "velero.io/v1", "kind",
                          "BackupStorageLocation", "metadata", "name", "bench", "namespace", "kcm-system", "spec", "provider",
                          "filesystem", "objectStorage", "bucket", "bench", "config", "path", dir, "status", "phase",
                          "Available");
  if (!bsl) bench_die("out of memory");
  return bsl;
}

void bench_in_child(void (*fn)(void *arg, int fd), void *arg, char *buf, size_t n, long *rss, const char *hint) {
  int p[2];
  fflush(stdout);
  fflush(stderr);
  if (pipe(p)) bench_die("pipe");
  pid_t pid = fork();
  if (pid < 0) bench_die("fork");
  if (pid == 0) {
    close(p[0]);
    fn(arg, p[1]);
    _exit(0);
  }
  close(p[1]);
  ssize_t got = 0, r;
  while ((size_t)got < n - 1 && (r = read(p[0], buf + got, n - 1 - (size_t)got)) > 0) got += r;
  buf[got > 0 ? got : 0] = '\0';
  close(p[0]);
  int st;
  struct rusage ru;
  if (wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s: a measurement failed: %s%s\n", bench_prog, buf, hint ? hint : "");
    exit(1);
  }
  *rss = ru.ru_maxrss;
}
