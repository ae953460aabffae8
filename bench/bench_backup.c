/* bench_backup.c — the backup benchmark's driver (bench/backup runs it on its own control plane).
 *
 *   bench-backup load NS N [WORKERS]
 *       create N mixed objects in namespace NS: ConfigMaps, Secrets and two custom resources
 *       (ClusterDeployments, HelmReleases), about 1-2 KiB each, WORKERS at a time (default 16);
 *       objects that exist already are kept
 *   bench-backup measure NS DIR ROUNDS CONCURRENCY
 *       ROUNDS times, each in a fresh child process: (a) LIST the four types in NS with
 *       kube_list_stream into a sink that discards (page 500, CONCURRENCY at once), then (b) a
 *       Backup of NS executed with backup_execute into a filesystem location under DIR, and (c)
 *       the same Backup into an encrypted location: the same directory, the location annotated
 *       kcmdr.io/encryption-secret: bench-kek/keys and that Secret in kcm-system holding a random
 *       key, as an operator configures it (backup_execute loads it with crypt_location_load);
 *       (b) and (c) swap places every other round so neither always runs on a warmer server.
 *       Prints the times, objects/s, the ratios (b)/(a) and (c)/(b) (the cost of encryption)
 *       and each child's peak RSS (wait4's ru_maxrss). Each backup's tarball is checked to be
 *       encrypted, or not, as its location asks: a bench that measured two plain backups fails.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "backup.h"
#include "bench_common.h"
#include "crypt.h"
#include "kube.h"
#include "objstore.h"
#include "velero.h"

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

#define BENCH_KEK_SECRET "bench-kek"
static const struct kube_res secret_res = {"", "v1", "secrets", "Secret", true};

/* The encryption Secret kcm-system/bench-kek, key "keys": one line "bench=<32 random bytes,
 * base64>" (crypt.h's format); an existing one is kept. */
static void ensure_kek_secret(void) {
  kube_client *c = bench_client(false);
  unsigned char raw[CRYPT_KEY_LEN];
  if (RAND_bytes(raw, sizeof raw) != 1) bench_die("random key");
  char *k64 = kd_base64_encode(raw, sizeof raw), line[128];
  if (!k64) bench_die("out of memory");
  snprintf(line, sizeof line, "bench=%s\n", k64);
  char *v64 = kd_base64_encode((const unsigned char *)line, strlen(line));
  json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name", BENCH_KEK_SECRET,
                        "namespace", "kcm-system", "data", "keys", v64 ? v64 : ""),
         *out = NULL;
  struct kube_req_opts ro = {.idempotent = true};
  kd_rc rc = o && v64 ? kube_create_ex(c, &secret_res, "kcm-system", o, &ro, &out) : KD_ERR_NOMEM;
  if (rc && rc != KD_ERR_CONFLICT) bench_die("creating the encryption Secret");
  json_decref(o), json_decref(out);
  free(k64), free(v64);
  kube_client_free(c);
}

/* child (b)/(c): create the Backup and execute it into DIR (encrypted: the location annotated
 * with the encryption Secret); writes "items seconds bytes encrypted(0|1)" to fd */
static void child_backup(const char *ns, const char *dir, const char *name, int conc, bool encrypted, int fd) {
  kube_client *c = bench_client(false);
  json_t *bk = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:[s],s:s,s:s}}", "apiVersion", "velero.io/v1", "kind", "Backup", "metadata",
                         "name", name, "namespace", "kcm-system", "spec", "includedNamespaces", ns, "storageLocation", "bench",
                         "ttl", "720h0m0s");
  json_t *bsl = bench_bsl(dir);
  json_t *created = NULL;
  objstore *store = NULL;
  if (encrypted && json_object_set_new(json_object_get(bsl, "metadata"), "annotations",
                                       json_pack("{s:s}", CRYPT_ANN_ENCRYPTION, BENCH_KEK_SECRET "/keys")))
    bench_die("out of memory");
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
  /* what was stored: the tarball's first bytes say whether it is encrypted */
  char key[512], id[CRYPT_ID_MAX + 1];
  bool enc = false;
  if (velero_backup_key(name, VELERO_BACKUP_TARBALL, key, sizeof key) || crypt_peek(store, key, &enc, id))
    bench_die("reading the stored tarball's header");
  if (enc != encrypted) {
    fprintf(stderr, "bench-backup: backup %s is %s but its location %s encryption\n", name, enc ? "encrypted" : "plain",
            encrypted ? "asks for" : "has no");
    _exit(1);
  }
  dprintf(fd, "%ld %.3f %llu %d\n", res.items, dt, (unsigned long long)res.tarball_bytes, enc ? 1 : 0);
  _exit(0);
}

struct margs {
  const char *ns, *dir;
  char name[64];
  int conc;
  bool encrypted;
};
static void run_list(void *a, int fd) {
  struct margs *m = a;
  child_list(m->ns, m->conc, fd);
}
static void run_backup(void *a, int fd) {
  struct margs *m = a;
  child_backup(m->ns, m->dir, m->name, m->conc, m->encrypted, fd);
}

struct bres {
  long items, rss;
  double secs;
  unsigned long long bytes;
};

/* one backup in a fresh child: plain or encrypted */
static struct bres one_backup(struct margs *m, int round, bool encrypted) {
  char out[256];
  struct bres b;
  int enc = -1;
  m->encrypted = encrypted;
  snprintf(m->name, sizeof m->name, "bench-%d-%s-%lld", round, encrypted ? "enc" : "plain", (long long)kd_now_ms());
  bench_in_child(run_backup, m, out, sizeof out, &b.rss, NULL);
  if (sscanf(out, "%ld %lf %llu %d", &b.items, &b.secs, &b.bytes, &enc) != 4 || enc != (encrypted ? 1 : 0))
    bench_die("backup output");
  return b;
}

static int cmd_measure(const char *ns, const char *dir, int rounds, int conc) {
  struct margs m = {.ns = ns, .dir = dir, .conc = conc > 0 ? conc : 4};
  double best_l = 1e9, best_p = 1e9, best_e = 1e9, best_ratio = 1e9;
  long items = 0, rss_p = 0, rss_e = 0, rss_l = 0;
  ensure_kek_secret();
  for (int r = 0; r < rounds; r++) {
    char out[256];
    long rl, n_l;
    double tl;
    struct bres p, e;
    bench_in_child(run_list, &m, out, sizeof out, &rl, NULL);
    if (sscanf(out, "%ld %lf", &n_l, &tl) != 2) bench_die("list output");
    if (r % 2 == 0) {
      p = one_backup(&m, r, false);
      e = one_backup(&m, r, true);
    } else {
      e = one_backup(&m, r, true);
      p = one_backup(&m, r, false);
    }
    if (p.items != e.items) {
      fprintf(stderr, "bench-backup: the plain backup has %ld objects, the encrypted one %ld\n", p.items, e.items);
      return 1;
    }
    printf("round %d: LIST %ld objects %.2f s (%.0f/s, RSS %ld MiB) | backup %ld objects %.2f s (%.0f/s, %.1f MiB gz, peak RSS "
           "%.1f MiB) ratio %.2f | encrypted %.2f s (%.0f/s, %.1f MiB, peak RSS %.1f MiB) ratio to plain %.2f\n",
           r + 1, n_l, tl, n_l / tl, rl / 1024, p.items, p.secs, p.items / p.secs, p.bytes / 1048576.0, p.rss / 1024.0,
           p.secs / tl, e.secs, e.items / e.secs, e.bytes / 1048576.0, e.rss / 1024.0, e.secs / p.secs);
    fflush(stdout);
    if (tl < best_l) best_l = tl;
    if (p.secs < best_p) best_p = p.secs;
    if (e.secs < best_e) best_e = e.secs;
    if (e.secs / p.secs < best_ratio) best_ratio = e.secs / p.secs;
    if (p.rss > rss_p) rss_p = p.rss;
    if (e.rss > rss_e) rss_e = e.rss;
    if (rl > rss_l) rss_l = rl;
    items = p.items;
  }
  printf("best of %d: LIST %.2f s, backup %.2f s, %.0f objects/s, ratio %.2f (target <= 1.3); backup peak RSS %.1f MiB "
         "(target <= 64 MiB at 100k), LIST-only RSS %.1f MiB\n",
         rounds, best_l, best_p, items / best_p, best_p / best_l, rss_p / 1024.0, rss_l / 1024.0);
  printf("encryption: best of %d: encrypted backup %.2f s, %.0f objects/s, ratio to the plain backup %.2f (best-of times; "
         "best round %.2f; aim <= 1.1); peak RSS encrypted %.1f MiB vs plain %.1f MiB (target <= 64 MiB at 100k)\n",
         rounds, best_e, items / best_e, best_e / best_p, best_ratio, rss_e / 1024.0, rss_p / 1024.0);
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
