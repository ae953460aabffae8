/* bench_backup.c — the backup benchmark's driver (bench/backup runs it on its own control plane).
 *
 *   bench-backup load NS N [WORKERS]
 *       create N mixed objects in namespace NS: ConfigMaps, Secrets and two custom resources
 *       (ClusterDeployments, HelmReleases), about 1-2 KiB each, WORKERS at a time (default 16);
 *       objects that exist already are kept
 *   bench-backup measure NS DIR ROUNDS CONCURRENCY
 *       ROUNDS times, each in a fresh child process: (a) LIST the four types in NS with
 *       kube_list_stream into a sink that discards (page 500, CONCURRENCY at once), then (b) a
 *       Backup of NS executed with backup_execute into a filesystem location under DIR; prints
 *       both times, objects/s, the ratio (b)/(a) and each child's peak RSS (wait4's ru_maxrss)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup.h"
#include "kube.h"
#include "objstore.h"

static const struct kube_res types[] = {
    {"", "v1", "configmaps", "ConfigMap", true},
    {"", "v1", "secrets", "Secret", true},
    {"k0rdent.mirantis.com", "v1beta1", "clusterdeployments", "ClusterDeployment", true},
    {"helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", true},
};
static const struct kube_res backup_res = {"velero.io", "v1", "backups", "Backup", true};
static const struct kube_res ns_res = {"", "v1", "namespaces", "Namespace", false};

static void die(const char *what) {
  fprintf(stderr, "bench-backup: %s: %s\n", what, kd_errmsg());
  exit(1);
}

static kube_client *client(void) {
  kube_client *c = NULL;
  struct kube_client_opts ko = {.qps = 1e6, .burst = 1000000};
  if (kube_client_from_opts(NULL, &ko, &c)) die("connecting");
  return c;
}

/* ---- load ---- */

struct loader {
  kube_client *c;
  const char *ns;
  long n;
  atomic_long next, created, existing;
};

static json_t *make_obj(const char *ns, long i) {
  char name[64], v[600];
  int t = (int)(i % 10);
  snprintf(name, sizeof name, "obj-%07ld", i);
  for (int k = 0; k < 599; k++) v[k] = (char)('a' + (i * 7 + k * 13) % 26);
  v[599] = '\0';
  json_t *labels = json_pack("{s:s,s:s,s:s}", "app.kubernetes.io/part-of", "bench", "shard", t < 4 ? "cm" : "x",
                             "k0rdent.mirantis.com/component", "kcm");
  if (t < 4)
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:{s:s,s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", name,
                     "namespace", ns, "labels", labels, "data", "config.yaml", v, "note", "Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93");
  if (t < 7) {
    char *b64 = kd_base64_encode((const unsigned char *)v, 400);
    json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name",
                          name, "namespace", ns, "labels", labels, "type", "Opaque", "data", "value", b64);
    free(b64);
    return o;
  }
  if (t < 9)
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:{s:s,s:s,s:{s:s,s:i,s:{s:s}},s:[s,s]}}", "apiVersion",
                     "k0rdent.mirantis.com/v1beta1", "kind", "ClusterDeployment", "metadata", "name", name, "namespace", ns,
                     "labels", labels, "spec", "template", "aws-standalone-cp-0-1-0", "credential", "aws-cred", "config",
                     "region", "us-east-1", "workersNumber", (int)(i % 5 + 1), "clusterLabels", "tier", v + 500, "services",
                     "ingress-nginx", "cert-manager");
  return json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:{s:{s:s,s:s},s:{s:s,s:s}}}", "apiVersion", "helm.toolkit.fluxcd.io/v2", "kind",
                   "HelmRelease", "metadata", "name", name, "namespace", ns, "labels", labels, "spec", "chartRef", "kind",
                   "HelmChart", "name", "kcm", "values", "blob", v, "region", "eu-west-1");
}

static void *load_worker(void *arg) {
  struct loader *l = arg;
  for (;;) {
    long i = atomic_fetch_add(&l->next, 1);
    if (i >= l->n) break;
    json_t *o = make_obj(l->ns, i), *out = NULL;
    int t = (int)(i % 10);
    const struct kube_res *r = &types[t < 4 ? 0 : t < 7 ? 1 : t < 9 ? 2 : 3];
    kd_rc rc;
    for (int attempt = 0;; attempt++) {
      rc = kube_create(l->c, r, l->ns, o, &out);
      if (rc == KD_OK || rc == KD_ERR_CONFLICT || attempt == 5) break;
      kd_sleep_ms(200 << attempt, NULL); /* a POST that certainly failed; a repeat that exists is a 409 */
    }
    json_decref(out);
    json_decref(o);
    if (rc == KD_OK) atomic_fetch_add(&l->created, 1);
    else if (rc == KD_ERR_CONFLICT) atomic_fetch_add(&l->existing, 1);
    else die("creating an object");
  }
  return NULL;
}

static int cmd_load(const char *ns, long n, int workers) {
  struct loader l = {.c = client(), .ns = ns, .n = n};
  json_t *nso = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns), *out = NULL;
  kd_rc rc = kube_create(l.c, &ns_res, NULL, nso, &out);
  if (rc && rc != KD_ERR_CONFLICT) die("creating the namespace");
  json_decref(nso);
  json_decref(out);
  pthread_t th[128];
  if (workers < 1) workers = 1;
  if (workers > 128) workers = 128;
  int64_t t0 = kd_now_ms();
  for (int i = 0; i < workers; i++) pthread_create(&th[i], NULL, load_worker, &l);
  for (int i = 0; i < workers; i++) pthread_join(th[i], NULL);
  fprintf(stderr, "bench-backup: %ld objects in %s (%ld created, %ld there already) in %.1f s\n", n, ns, atomic_load(&l.created),
          atomic_load(&l.existing), (double)(kd_now_ms() - t0) / 1000.0);
  kube_client_free(l.c);
  return 0;
}

/* ---- measure ---- */

struct lister {
  kube_client *c;
  const char *ns;
  atomic_size_t next;
  atomic_long items;
};

static kd_rc discard(const char *item, size_t len, void *ud) {
  (void)item, (void)len;
  atomic_fetch_add(&((struct lister *)ud)->items, 1);
  return KD_OK;
}

static void *list_worker(void *arg) {
  struct lister *l = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&l->next, 1);
    if (i >= KD_ARRAY_LEN(types)) break;
    struct kube_list_opts lo = {NULL, NULL, 500, NULL};
    if (kube_list_stream(l->c, &types[i], l->ns, &lo, discard, l, NULL)) die("listing");
  }
  return NULL;
}

/* child (a): list and discard; writes "items seconds" to fd */
static void child_list(const char *ns, int conc, int fd) {
  struct lister l = {.c = client(), .ns = ns};
  pthread_t th[64];
  int64_t t0 = kd_now_ms();
  for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, list_worker, &l);
  for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
  dprintf(fd, "%ld %.3f\n", atomic_load(&l.items), (double)(kd_now_ms() - t0) / 1000.0);
  _exit(0);
}

/* child (b): create the Backup and execute it into DIR */
static void child_backup(const char *ns, const char *dir, const char *name, int conc, int fd) {
  kube_client *c = client();
  json_t *bk = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:[s],s:s,s:s}}", "apiVersion", "velero.io/v1", "kind", "Backup", "metadata",
                         "name", name, "namespace", "kcm-system", "spec", "includedNamespaces", ns, "storageLocation", "bench",
                         "ttl", "720h0m0s");
  json_t *bsl = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:{s:s},s:{s:s}},s:{s:s}}", "apiVersion", "velero.io/v1", "kind",
                          "BackupStorageLocation", "metadata", "name", "bench", "namespace", "kcm-system", "spec", "provider",
                          "filesystem", "objectStorage", "bucket", "bench", "config", "path", dir, "status", "phase",
                          "Available");
  json_t *created = NULL;
  objstore *store = NULL;
  if (kube_create(c, &backup_res, "kcm-system", bk, &created)) die("creating the Backup");
  if (objstore_open_bsl(bsl, NULL, 0, &store)) die("opening the location");
  struct backup_job job = {.client = c, .ns = "kcm-system", .backup = created, .bsl = bsl, .store = store, .list_concurrency = conc};
  struct backup_result res;
  int64_t t0 = kd_now_ms();
  if (backup_execute(&job, &res)) die("backup");
  double dt = (double)(kd_now_ms() - t0) / 1000.0;
  if (strcmp(res.phase, "Completed") != 0) {
    json_t *now = NULL;
    kube_get(c, &backup_res, "kcm-system", name, &now);
    char *st = json_dumps(json_object_get(now, "status"), JSON_COMPACT);
    fprintf(stderr, "bench-backup: backup ended %s: %s\n", res.phase, st ? st : "");
    _exit(1);
  }
  dprintf(fd, "%ld %.3f %llu\n", res.items, dt, (unsigned long long)res.tarball_bytes);
  _exit(0);
}

/* run fn in a child; its output line into buf, its peak RSS (KiB) into *rss */
static void in_child(void (*fn)(void *), void *arg, char *buf, size_t n, long *rss) {
  int p[2];
  if (pipe(p)) die("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 3);
    fn(arg);
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
    fprintf(stderr, "bench-backup: a measurement failed\n");
    exit(1);
  }
  *rss = ru.ru_maxrss;
}

struct margs {
  const char *ns, *dir;
  char name[64];
  int conc;
};
static void run_list(void *a) {
  struct margs *m = a;
  child_list(m->ns, m->conc, 3);
}
static void run_backup(void *a) {
  struct margs *m = a;
  child_backup(m->ns, m->dir, m->name, m->conc, 3);
}

static int cmd_measure(const char *ns, const char *dir, int rounds, int conc) {
  struct margs m = {.ns = ns, .dir = dir, .conc = conc > 0 ? conc : 4};
  double best_l = 1e9, best_b = 1e9;
  long items = 0, rss_b = 0, rss_l = 0;
  for (int r = 0; r < rounds; r++) {
    char out[256];
    long rl, rb, n_l, n_b;
    double tl, tb;
    unsigned long long bytes;
    in_child(run_list, &m, out, sizeof out, &rl);
    if (sscanf(out, "%ld %lf", &n_l, &tl) != 2) die("list output");
    snprintf(m.name, sizeof m.name, "bench-%d-%lld", r, (long long)kd_now_ms());
    in_child(run_backup, &m, out, sizeof out, &rb);
    if (sscanf(out, "%ld %lf %llu", &n_b, &tb, &bytes) != 3) die("backup output");
    printf("round %d: LIST %ld objects %.2f s (%.0f/s, RSS %ld MiB) | backup %ld objects %.2f s (%.0f/s, %.1f MiB gz, peak RSS "
           "%.1f MiB) | ratio %.2f\n",
           r + 1, n_l, tl, n_l / tl, rl / 1024, n_b, tb, n_b / tb, bytes / 1048576.0, rb / 1024.0, tb / tl);
    fflush(stdout);
    if (tl < best_l) best_l = tl;
    if (tb < best_b) best_b = tb;
    if (rb > rss_b) rss_b = rb;
    if (rl > rss_l) rss_l = rl;
    items = n_b;
  }
  printf("best of %d: LIST %.2f s, backup %.2f s, %.0f objects/s, ratio %.2f (target <= 1.3); backup peak RSS %.1f MiB "
         "(target <= 64 MiB at 100k), LIST-only RSS %.1f MiB\n",
         rounds, best_l, best_b, items / best_b, best_b / best_l, rss_b / 1024.0, rss_l / 1024.0);
  return 0;
}

int main(int argc, char **argv) {
  kd_log_setup(KD_LOG_WARN, false);
  if (argc >= 4 && strcmp(argv[1], "load") == 0) return cmd_load(argv[2], atol(argv[3]), argc > 4 ? atoi(argv[4]) : 16);
  if (argc >= 6 && strcmp(argv[1], "measure") == 0) return cmd_measure(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
  fprintf(stderr, "usage: bench-backup load NS N [WORKERS] | measure NS DIR ROUNDS CONCURRENCY\n");
  return 2;
}
