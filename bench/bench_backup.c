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
#include "bench_common.h"
#include "kube.h"
#include "objstore.h"

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
    if (i >= BENCH_NTYPES) break;
    struct kube_list_opts lo = {NULL, NULL, 500, NULL};
    if (kube_list_stream(l->c, &bench_types[i], l->ns, &lo, discard, l, NULL)) bench_die("listing");
  }
  return NULL;
}

/* child (a): list and discard; writes "items seconds" to fd */
static void child_list(const char *ns, int conc, int fd) {
  struct lister l = {.c = bench_client(false), .ns = ns};
  pthread_t th[64];
  int64_t t0 = kd_now_ms();
  for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, list_worker, &l);
  for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
  dprintf(fd, "%ld %.3f\n", atomic_load(&l.items), (double)(kd_now_ms() - t0) / 1000.0);
  _exit(0);
}

/* child (b): create the Backup and execute it into DIR */
static void child_backup(const char *ns, const char *dir, const char *name, int conc, int fd) {
  kube_client *c = bench_client(false);
  json_t *bk = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:[s],s:s,s:s}}", "apiVersion", "velero.io/v1", "kind", "Backup", "metadata",
                         "name", name, "namespace", "kcm-system", "spec", "includedNamespaces", ns, "storageLocation", "bench",
                         "ttl", "720h0m0s");
  json_t *bsl = bench_bsl(dir);
  json_t *created = NULL;
  objstore *store = NULL;
  if (kube_create(c, &bench_backup_res, "kcm-system", bk, &created)) bench_die("creating the Backup");
  if (objstore_open_bsl(bsl, NULL, 0, &store)) bench_die("opening the location");
  struct backup_job job = {.client = c, .ns = "kcm-system", .backup = created, .bsl = bsl, .store = store, .list_concurrency = conc};
  struct backup_result res;
  int64_t t0 = kd_now_ms();
  if (backup_execute(&job, &res)) bench_die("backup");
  double dt = (double)(kd_now_ms() - t0) / 1000.0;
  if (strcmp(res.phase, "Completed") != 0) {
    json_t *now = NULL;
    kube_get(c, &bench_backup_res, "kcm-system", name, &now);
    char *st = json_dumps(json_object_get(now, "status"), JSON_COMPACT);
    fprintf(stderr, "bench-backup: backup ended %s: %s\n", res.phase, st ? st : "");
    _exit(1);
  }
  dprintf(fd, "%ld %.3f %llu\n", res.items, dt, (unsigned long long)res.tarball_bytes);
  _exit(0);
}

struct margs {
  const char *ns, *dir;
  char name[64];
  int conc;
};
static void run_list(void *a, int fd) {
  struct margs *m = a;
  child_list(m->ns, m->conc, fd);
}
static void run_backup(void *a, int fd) {
  struct margs *m = a;
  child_backup(m->ns, m->dir, m->name, m->conc, fd);
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
    bench_in_child(run_list, &m, out, sizeof out, &rl, NULL);
    if (sscanf(out, "%ld %lf", &n_l, &tl) != 2) bench_die("list output");
    snprintf(m.name, sizeof m.name, "bench-%d-%lld", r, (long long)kd_now_ms());
    bench_in_child(run_backup, &m, out, sizeof out, &rb, NULL);
    if (sscanf(out, "%ld %lf %llu", &n_b, &tb, &bytes) != 3) bench_die("backup output");
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
  bench_prog = "bench-backup";
  kd_log_setup(KD_LOG_WARN, false);
  if (argc >= 4 && strcmp(argv[1], "load") == 0) return bench_load(argv[2], atol(argv[3]), argc > 4 ? atoi(argv[4]) : 16);
  if (argc >= 6 && strcmp(argv[1], "measure") == 0) return cmd_measure(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
  fprintf(stderr, "usage: bench-backup load NS N [WORKERS] | measure NS DIR ROUNDS CONCURRENCY\n");
  return 2;
}
