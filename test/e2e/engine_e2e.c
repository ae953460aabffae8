/* engine_e2e.c — drives the builtin engine's backup execution (backup.c) against a real API
 * server and store for test/e2e/t_backup.sh and bench/backup. KUBECONFIG selects the cluster.
 *
 *   engine-e2e backup --namespace NS --backup NAME [--bsl-file F] [--cred-file F]
 *                     [--concurrency N] [--gzip N] [--cancel-after-ms MS]
 *       load the Backup NS/NAME, the BackupStorageLocation from F (JSON or YAML; none: the
 *       location does not exist), open its store with the credentials file, run
 *       backup_execute; print {"phase":..,"items":..,"errors":..,"warnings":..,"bytes":..,
 *       "seconds":..,"maxrss_kib":..} and exit 0 when the outcome was recorded
 *   engine-e2e abandon --namespace NS --backup NAME [--bsl-file F] [--cred-file F] --reason R
 *       backup_fail_abandoned on the Backup
 *   engine-e2e list --resource GVR [--page N] [--concurrency N] --types a,b,c
 *       (benchmark baseline) LIST the named resources ("v1/configmaps",
 *       "k0rdent.mirantis.com/v1beta1/clusterdeployments") in all namespaces with the engine's
 *       page size and concurrency, discarding the bytes; print {"items":..,"bytes":..,"seconds":..}
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backup.h"
#include "kube.h"
#include "objstore.h"
#include "yamljson.h"

static const struct kube_res backup_res = {"velero.io", "v1", "backups", "Backup", true};

static void die(const char *what) {
  fprintf(stderr, "engine-e2e: %s: %s\n", what, kd_errmsg());
  exit(1);
}

static const char *arg(int argc, char **argv, const char *name, const char *def) {
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

static double now_s(void) { return (double)kd_now_ms() / 1000.0; }

static long maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static volatile int cancel_flag;
static void *canceller(void *arg) {
  kd_sleep_ms(*(long *)arg, NULL);
  cancel_flag = 1;
  return NULL;
}

/* the location from a file and its store; *store NULL with *why set when it cannot be opened */
static json_t *load_bsl(const char *file, const char *cred_file, objstore **store, char *why, size_t n) {
  char *text = NULL, *cred = NULL;
  size_t len = 0, clen = 0;
  json_t *bsl = NULL;
  *store = NULL;
  why[0] = '\0';
  if (!file) return NULL;
  if (kd_read_file(file, 1u << 20, &text, &len) || yj_parse_one(text, len, &bsl)) die("reading the location");
  free(text);
  if (cred_file && kd_read_file(cred_file, 64u << 10, &cred, &clen)) die("reading the credentials");
  if (objstore_open_bsl(bsl, cred, clen, store) != KD_OK) {
    snprintf(why, n, "%s", kd_errmsg());
    *store = NULL;
  }
  free(cred);
  return bsl;
}

static int cmd_backup(int argc, char **argv) {
  const char *ns = arg(argc, argv, "--namespace", "kcm-system"), *name = arg(argc, argv, "--backup", NULL);
  const char *bsl_file = arg(argc, argv, "--bsl-file", NULL), *cred_file = arg(argc, argv, "--cred-file", NULL);
  long cancel_ms = atol(arg(argc, argv, "--cancel-after-ms", "0"));
  if (!name) {
    fprintf(stderr, "engine-e2e backup: --backup is required\n");
    return 2;
  }
  kube_client *c = NULL;
  struct kube_client_opts ko = {.qps = 5000, .burst = 10000};
  if (kube_client_from_opts(NULL, &ko, &c)) die("connecting");
  json_t *backup = NULL;
  if (kube_get(c, &backup_res, ns, name, &backup)) die("getting the Backup");
  objstore *store = NULL;
  char why[1024];
  json_t *bsl = load_bsl(bsl_file, cred_file, &store, why, sizeof why);
  struct backup_job job = {.client = c,
                           .ns = ns,
                           .backup = backup,
                           .bsl = bsl,
                           .store = store,
                           .store_error = why[0] ? why : NULL,
                           .cancel = &cancel_flag,
                           .gzip_level = atoi(arg(argc, argv, "--gzip", "0")),
                           .list_concurrency = atoi(arg(argc, argv, "--concurrency", "0"))};
  pthread_t ct;
  if (cancel_ms > 0) pthread_create(&ct, NULL, canceller, &cancel_ms);
  struct backup_result res;
  double t0 = now_s();
  kd_rc rc = backup_execute(&job, &res);
  double dt = now_s() - t0;
  if (rc) die("backup_execute");
  printf("{\"phase\":\"%s\",\"items\":%ld,\"errors\":%ld,\"warnings\":%ld,\"bytes\":%llu,\"seconds\":%.3f,\"maxrss_kib\":%ld}\n",
         res.phase, res.items, res.errors, res.warnings, (unsigned long long)res.tarball_bytes, dt, maxrss_kib());
  fflush(stdout);
  objstore_free(store);
  json_decref(bsl);
  json_decref(backup);
  kube_client_free(c);
  _exit(0); /* a canceller thread may still sleep */
}

static int cmd_abandon(int argc, char **argv) {
  const char *ns = arg(argc, argv, "--namespace", "kcm-system"), *name = arg(argc, argv, "--backup", NULL);
  if (!name) return 2;
  kube_client *c = NULL;
  if (kube_client_from_opts(NULL, NULL, &c)) die("connecting");
  json_t *backup = NULL;
  if (kube_get(c, &backup_res, ns, name, &backup)) die("getting the Backup");
  objstore *store = NULL;
  char why[1024];
  json_t *bsl = load_bsl(arg(argc, argv, "--bsl-file", NULL), arg(argc, argv, "--cred-file", NULL), &store, why, sizeof why);
  if (backup_fail_abandoned(c, ns, backup, store, NULL, arg(argc, argv, "--reason", "abandoned"), NULL)) die("backup_fail_abandoned");
  objstore_free(store);
  json_decref(bsl);
  json_decref(backup);
  kube_client_free(c);
  return 0;
}

/* ---- the benchmark's baseline: LIST and discard ---- */

struct lister {
  kube_client *c;
  struct kube_res *res;
  size_t nres;
  atomic_size_t next;
  atomic_long items, bytes;
  long page;
  atomic_int failed;
};

static kd_rc discard(const char *item, size_t len, void *ud) {
  struct lister *l = ud;
  (void)item;
  atomic_fetch_add(&l->items, 1);
  atomic_fetch_add(&l->bytes, (long)len);
  return KD_OK;
}

static void *list_worker(void *arg) {
  struct lister *l = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&l->next, 1);
    if (i >= l->nres) break;
    struct kube_list_opts lo = {NULL, NULL, l->page, NULL};
    if (kube_list_stream(l->c, &l->res[i], NULL, &lo, discard, l, NULL)) {
      fprintf(stderr, "engine-e2e list: %s\n", kd_errmsg());
      atomic_store(&l->failed, 1);
    }
  }
  return NULL;
}

static int cmd_list(int argc, char **argv) {
  char *types = strdup(arg(argc, argv, "--types", ""));
  struct lister l = {.page = atol(arg(argc, argv, "--page", "500"))};
  int conc = atoi(arg(argc, argv, "--concurrency", "4"));
  struct kube_client_opts ko = {.qps = 5000, .burst = 10000};
  if (kube_client_from_opts(NULL, &ko, &l.c)) die("connecting");
  l.res = calloc(64, sizeof *l.res);
  for (char *save = NULL, *t = strtok_r(types, ",", &save); t && l.nres < 64; t = strtok_r(NULL, ",", &save)) {
    if (kube_resolve(l.c, t, &l.res[l.nres])) die(t);
    l.nres++;
  }
  pthread_t th[64];
  if (conc < 1) conc = 1;
  if (conc > 64) conc = 64;
  double t0 = now_s();
  for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, list_worker, &l);
  for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
  double dt = now_s() - t0;
  printf("{\"items\":%ld,\"bytes\":%ld,\"seconds\":%.3f,\"maxrss_kib\":%ld}\n", atomic_load(&l.items), atomic_load(&l.bytes), dt,
         maxrss_kib());
  free(l.res);
  free(types);
  kube_client_free(l.c);
  return atomic_load(&l.failed) ? 1 : 0;
}

int main(int argc, char **argv) {
  kd_log_setup(getenv("ENGINE_E2E_DEBUG") ? KD_LOG_DEBUG : KD_LOG_WARN, false);
  if (argc < 2) {
    fprintf(stderr, "usage: engine-e2e backup|abandon|list ...\n");
    return 2;
  }
  if (strcmp(argv[1], "backup") == 0) return cmd_backup(argc, argv);
  if (strcmp(argv[1], "abandon") == 0) return cmd_abandon(argc, argv);
  if (strcmp(argv[1], "list") == 0) return cmd_list(argc, argv);
  fprintf(stderr, "engine-e2e: unknown command %s\n", argv[1]);
  return 2;
}
