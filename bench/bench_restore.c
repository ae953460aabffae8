/* bench_restore.c — the restore benchmark's driver (bench/restore runs it on its own control plane).
 *
 *   bench-restore load NS N [WORKERS]
 *       create N mixed objects in namespace NS (the backup benchmark's: ConfigMaps, Secrets,
 *       ClusterDeployments, HelmReleases, about 1-2 KiB each), WORKERS at a time (default 16)
 *   bench-restore backup NS DIR NAME
 *       a Backup NAME of namespace NS executed once with backup_execute into a filesystem
 *       location under DIR
 *   bench-restore measure NS DIR BACKUP N ROUNDS "C1 C2 ..." LOGDIR
 *       ROUNDS times, for each concurrency C, each run in a fresh child process and into a new,
 *       empty namespace: (a) the raw client: the namespace and the same N objects (pre-serialised,
 *       with the labels a restore adds) POSTed by C threads on pooled connections (idempotent),
 *       answers not parsed; (b) a Restore of BACKUP (namespaceMapping NS -> the new namespace)
 *       created in the cluster and executed with restore_execute, concurrency C. After each run
 *       the objects it created are deleted (untimed) so every run meets the same control plane.
 *       Prints each run, best and median per concurrency, the fastest concurrency of each, the
 *       ratio restore/raw, the restore child's peak RSS, and where the restore's time went (its
 *       phases from its debug log in LOGDIR, requests sent)
 *   bench-restore features NS DIR N ROUNDS C LOGDIR
 *       the cost of encryption and signatures on a restore: Backups bench-src-plain,
 *       bench-src-enc (the location annotated kcmdr.io/encryption-secret, a random key in a
 *       Secret) and bench-src-signed (kcmdr.io/signing-secret, an Ed25519 key made here) of NS
 *       into DIR; then ROUNDS times, each in a fresh child and into a new empty namespace, a
 *       Restore of each at concurrency C (the order rotating every round), the encrypted one
 *       through a location with the key, the signed one through a location with only the public
 *       key (kcmdr.io/verify-secret) and kcmdr.io/require-signature: "true", so the restore
 *       checks the signature and every listed file before it stages the tarball; every restore
 *       must create all N objects. Prints each run and best/median ratios to the plain restore.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "backup.h"
#include "bench_common.h"
#include "crypt.h"
#include "kube.h"
#include "objstore.h"
#include "restore.h"
#include "velero.h"

#define MAX_CONCS 8
#define MAX_ROUNDS 50

static const struct kube_res restore_res = {"velero.io", "v1", "restores", "Restore", true};

/* ---- the locations: plain, encrypted, signed (backup) / signature required (restore) ---- */

enum fkind { FK_PLAIN, FK_ENC, FK_SIGNED, FK_N };
static const char *const fkind_name[FK_N] = {"plain", "enc", "signed"};
static const struct kube_res secret_res = {"", "v1", "secrets", "Secret", true};

/* the filesystem location over dir, annotated for kind: for a backup (restore false) the
 * encryption or signing Secret, for a restore the encryption Secret or the verify Secret and
 * require-signature */
static json_t *kind_bsl(const char *dir, enum fkind kind, bool restore) {
  json_t *bsl = bench_bsl(dir), *ann = NULL;
  if (kind == FK_ENC) ann = json_pack("{s:s}", CRYPT_ANN_ENCRYPTION, "bench-kek/keys");
  else if (kind == FK_SIGNED && !restore) ann = json_pack("{s:s}", CRYPT_ANN_SIGNING, "bench-sign/key");
  else if (kind == FK_SIGNED) ann = json_pack("{s:s,s:s}", CRYPT_ANN_VERIFY, "bench-verify/pub", CRYPT_ANN_REQUIRE_SIG, "true");
  if (kind != FK_PLAIN && (!ann || json_object_set_new(json_object_get(bsl, "metadata"), "annotations", ann)))
    bench_die("out of memory");
  return bsl;
}

static void put_secret(kube_client *c, const char *name, const char *key, const char *val, size_t len) {
  char *v64 = kd_base64_encode((const unsigned char *)val, len);
  json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name", name,
                        "namespace", "kcm-system", "data", key, v64 ? v64 : ""),
         *out = NULL;
  struct kube_req_opts ro = {.idempotent = true};
  kd_rc rc = o && v64 ? kube_create_ex(c, &secret_res, "kcm-system", o, &ro, &out) : KD_ERR_NOMEM;
  if (rc && rc != KD_ERR_CONFLICT) bench_die("creating a key Secret");
  json_decref(o), json_decref(out);
  free(v64);
}

/* Secrets bench-kek/keys (a random key "bench"), bench-sign/key (a fresh Ed25519 private key,
 * PEM) and bench-verify/pub (its public key, PEM) in kcm-system; existing ones are kept */
static void ensure_key_secrets(kube_client *c) {
  unsigned char raw[CRYPT_KEY_LEN];
  char line[128];
  if (RAND_bytes(raw, sizeof raw) != 1) bench_die("random key");
  char *k64 = kd_base64_encode(raw, sizeof raw);
  if (!k64) bench_die("out of memory");
  snprintf(line, sizeof line, "bench=%s\n", k64);
  free(k64);
  put_secret(c, "bench-kek", "keys", line, strlen(line));
  EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
  EVP_PKEY *pk = NULL;
  BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
  if (!pc || !priv || !pub || EVP_PKEY_keygen_init(pc) != 1 || EVP_PKEY_keygen(pc, &pk) != 1 ||
      PEM_write_bio_PrivateKey(priv, pk, NULL, NULL, 0, NULL, NULL) != 1 || PEM_write_bio_PUBKEY(pub, pk) != 1)
    bench_die("making an Ed25519 key");
  char *pem = NULL;
  long plen = BIO_get_mem_data(priv, &pem);
  put_secret(c, "bench-sign", "key", pem, (size_t)plen);
  plen = BIO_get_mem_data(pub, &pem);
  put_secret(c, "bench-verify", "pub", pem, (size_t)plen);
  BIO_free(priv), BIO_free(pub);
  EVP_PKEY_free(pk);
  EVP_PKEY_CTX_free(pc);
}

/* ---- the backup, once ---- */

static int backup_kind(const char *ns, const char *dir, const char *name, enum fkind kind);
static int cmd_backup(const char *ns, const char *dir, const char *name) { return backup_kind(ns, dir, name, FK_PLAIN); }

/* Backup name of ns into dir through the location of kind (bench_bsl's, annotated by kind_bsl) */
static int backup_kind(const char *ns, const char *dir, const char *name, enum fkind kind) {
  kube_client *c = bench_client(false);
  json_t *bk = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:[s],s:s,s:s}}", "apiVersion", "velero.io/v1", "kind", "Backup", "metadata",
                         "name", name, "namespace", "kcm-system", "spec", "includedNamespaces", ns, "storageLocation", "bench",
                         "ttl", "720h0m0s");
  json_t *bsl = kind_bsl(dir, kind, false), *created = NULL;
  objstore *store = NULL;
  if (kube_create(c, &bench_backup_res, "kcm-system", bk, &created)) bench_die("creating the Backup");
  if (objstore_open_bsl(bsl, NULL, 0, &store)) bench_die("opening the location");
  struct backup_job job = {.client = c, .ns = "kcm-system", .backup = created, .bsl = bsl, .store = store};
  struct backup_result res;
  int64_t t0 = kd_now_ms();
  if (backup_execute(&job, &res)) bench_die("backup");
  if (strcmp(res.phase, "Completed") != 0) {
    fprintf(stderr, "bench-restore: the backup ended %s\n", res.phase);
    return 1;
  }
  fprintf(stderr, "bench-restore: backup %s of %s: %ld objects, %.1f MiB gz in %.1f s\n", name, ns, res.items,
          res.tarball_bytes / 1048576.0, (double)(kd_now_ms() - t0) / 1000.0);
  objstore_free(store);
  json_decref(bk);
  json_decref(created);
  json_decref(bsl);
  kube_client_free(c);
  return 0;
}

/* ---- measure ---- */

struct margs {
  const char *src_ns, *dir, *backup, *logdir;
  char target[64], restore_name[64];
  long n;
  int conc;
  bool engine_default; /* the restore runs on a client with the engine's default rate limit */
  enum fkind kind;     /* the location the restore reads through (kind_bsl) */
};

/* (a) the raw client */
struct raw {
  kube_client *c;
  long n;
  char **body;
  size_t *len;
  char path[BENCH_NTYPES][KUBE_MAX_PATH];
  atomic_long next, ok;
};

static void *raw_worker(void *arg) {
  struct raw *w = arg;
  struct kube_req_opts ro = {.idempotent = true};
  for (;;) {
    long i = atomic_fetch_add(&w->next, 1);
    if (i >= w->n) break;
    kd_rc rc = kube_request_ex(w->c, "POST", w->path[bench_type_of(i)], "application/json", w->body[i], w->len[i], &ro, NULL);
    if (rc && rc != KD_ERR_CONFLICT) bench_die("raw client: creating an object"); /* 409: a retried POST that had arrived */
    atomic_fetch_add(&w->ok, 1);
  }
  return NULL;
}

static void child_raw(void *arg, int fd) {
  struct margs *m = arg;
  struct raw w = {.c = bench_client(false), .n = m->n};
  w.body = calloc((size_t)m->n, sizeof *w.body);
  w.len = calloc((size_t)m->n, sizeof *w.len);
  if (!w.body || !w.len) bench_die("out of memory");
  for (size_t t = 0; t < BENCH_NTYPES; t++)
    if (kube_path(&bench_types[t], m->target, NULL, NULL, NULL, w.path[t])) bench_die("a path");
  /* the same bodies a restore sends: the object with velero's two labels */
  char restore_label[80];
  snprintf(restore_label, sizeof restore_label, "bench-%s", m->target);
  for (long i = 0; i < m->n; i++) {
    json_t *o = bench_object(m->target, i);
    json_t *labels = json_object_get(json_object_get(o, "metadata"), "labels");
    json_object_set_new(labels, "velero.io/backup-name", json_string(m->backup));
    json_object_set_new(labels, "velero.io/restore-name", json_string(restore_label));
    w.body[i] = json_dumps(o, JSON_COMPACT);
    if (!w.body[i]) bench_die("out of memory");
    w.len[i] = strlen(w.body[i]);
    json_decref(o);
  }
  long req0 = kube_client_requests(w.c);
  int64_t t0 = kd_now_ms();
  bench_create_ns(w.c, m->target);
  bench_pool(m->conc, raw_worker, &w);
  double dt = (double)(kd_now_ms() - t0) / 1000.0;
  dprintf(fd, "%ld %.3f %ld\n", atomic_load(&w.ok), dt, kube_client_requests(w.c) - req0);
  _exit(0);
}

/* (b) the restore, as the engine runs it; its debug log (phases) on stderr = LOGDIR/<restore>.log */
static void child_restore(void *arg, int fd) {
  struct margs *m = arg;
  char logf[4096];
  snprintf(logf, sizeof logf, "%s/%s.log", m->logdir, m->restore_name);
  int lfd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (lfd < 0 || dup2(lfd, 2) < 0) bench_die("opening the restore's log file");
  close(lfd);
  kd_log_setup(KD_LOG_DEBUG, false);
  kube_client *c = bench_client(m->engine_default);
  json_t *excluded = json_array();
  for (size_t i = 0; velero_restore_always_excluded[i]; i++)
    json_array_append_new(excluded, json_string(velero_restore_always_excluded[i]));
  /* the seed's Restore (as `kcmdr restore create` writes it) with a namespace mapping */
  json_t *rst = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:[s],s:o,s:{s:s},s:s,s:{}}}", "apiVersion", "velero.io/v1", "kind",
                          "Restore", "metadata", "name", m->restore_name, "namespace", "kcm-system", "spec", "backupName",
                          m->backup, "includedNamespaces", "*", "excludedResources", excluded, "namespaceMapping", m->src_ns,
                          m->target, "existingResourcePolicy", "none", "hooks");
  json_t *created = NULL, *bk = NULL, *bsl = kind_bsl(m->dir, m->kind, true);
  objstore *store = NULL;
  if (!rst) bench_die("building the Restore");
  if (kube_create(c, &restore_res, "kcm-system", rst, &created)) bench_die("creating the Restore");
  if (kube_get(c, &bench_backup_res, "kcm-system", m->backup, &bk)) bench_die("reading the Backup");
  if (objstore_open_bsl(bsl, NULL, 0, &store)) bench_die("opening the location");
  struct restore_job job = {.client = c, .ns = "kcm-system", .restore = created, .backup = bk, .bsl = bsl, .store = store,
                            .concurrency = m->conc};
  struct restore_result res;
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  long req0 = kube_client_requests(c);
  int64_t t0 = kd_now_ms();
  kd_log(KD_LOG_DEBUG, "bench: restore_execute starts");
  if (restore_execute(&job, &res)) bench_die("restore");
  double dt = (double)(kd_now_ms() - t0) / 1000.0;
  kd_log(KD_LOG_DEBUG, "bench: restore_execute returned");
  /* the namespace and the N objects are created; the CRDs the backup adds exist already */
  if (strcmp(res.phase, "Completed") != 0 || res.created != m->n + 1 || res.failed) {
    json_t *now = NULL;
    kube_get(c, &restore_res, "kcm-system", m->restore_name, &now);
    char *st = json_dumps(json_object_get(now, "status"), JSON_COMPACT);
    dprintf(fd, "restore ended %s, %ld of %ld created (expected %ld), %ld failed: %s\n", res.phase, res.created, res.total,
            m->n + 1, res.failed, st ? st : "");
    _exit(1);
  }
  dprintf(fd, "%ld %ld %ld %.3f %ld %lld\n", res.total, res.created, res.warnings, dt, kube_client_requests(c) - req0,
          (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000);
  _exit(0);
}

/* untimed: delete what run left in its namespace (the namespace stays, empty) */
struct deleter {
  kube_client *c;
  const char *ns;
  long n;
  atomic_long next;
};

static void *delete_worker(void *arg) {
  struct deleter *d = arg;
  for (;;) {
    long i = atomic_fetch_add(&d->next, 1);
    if (i >= d->n) break;
    char name[64];
    snprintf(name, sizeof name, "obj-%07ld", i);
    kd_rc rc = kube_delete(d->c, &bench_types[bench_type_of(i)], d->ns, name, NULL, NULL);
    if (rc && rc != KD_ERR_NOTFOUND) bench_die("deleting an object");
  }
  return NULL;
}

static void child_delete(void *arg, int fd) {
  struct margs *m = arg;
  struct deleter d = {.c = bench_client(false), .ns = m->target, .n = m->n};
  int64_t t0 = kd_now_ms();
  bench_pool(32, delete_worker, &d);
  dprintf(fd, "%.3f\n", (double)(kd_now_ms() - t0) / 1000.0);
  _exit(0);
}

/* "2024-01-02T03:04:05.678Z" at the start of a log line -> epoch ms; -1 when not one */
static long long log_ms(const char *line) {
  struct tm tm = {0};
  int ms = 0;
  if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
             &ms) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (long long)timegm(&tm) * 1000 + ms;
}

/* where the restore's time went, from its debug log: until its InProgress status (validation),
 * staging and indexing the archive, creating the objects, the end (logs, results, status) */
struct phases {
  double validate, stage, index, create, finish; /* seconds; -1 unknown */
  long ns_lines;                                 /* "namespace ... created" lines */
};

static void read_phases(const char *logdir, const char *name, long long wall0, struct phases *p) {
  char path[4096], line[4096];
  long long t_start = -1, t_staged = -1, t_selected = -1, t_done = -1, t_end = -1;
  memset(p, 0, sizeof *p);
  snprintf(path, sizeof path, "%s/%s.log", logdir, name);
  FILE *f = fopen(path, "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      long long t = log_ms(line);
      if (t < 0) continue;
      if (strstr(line, "starting restore of backup")) t_start = t;
      else if (strstr(line, ": staged ")) t_staged = t;
      else if (strstr(line, "objects selected from the backup")) t_selected = t;
      else if (strstr(line, "created, ") && strstr(line, " failed of ")) t_done = t;
      else if (strstr(line, "bench: restore_execute returned")) t_end = t;
      else if (strstr(line, ": namespace ") && strstr(line, " created")) p->ns_lines++;
    }
    fclose(f);
  }
  p->validate = t_start >= 0 ? (double)(t_start - wall0) / 1000.0 : -1;
  p->stage = t_staged >= 0 && t_start >= 0 ? (double)(t_staged - t_start) / 1000.0 : -1;
  p->index = t_selected >= 0 && t_staged >= 0 ? (double)(t_selected - t_staged) / 1000.0 : -1;
  p->create = t_done >= 0 && t_selected >= 0 ? (double)(t_done - t_selected) / 1000.0 : -1;
  p->finish = t_end >= 0 && t_done >= 0 ? (double)(t_end - t_done) / 1000.0 : -1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
  double s[MAX_ROUNDS];
  memcpy(s, v, (size_t)n * sizeof *v);
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double best(const double *v, int n) {
  double b = v[0];
  for (int i = 1; i < n; i++)
    if (v[i] < b) b = v[i];
  return b;
}

static char hint[4300]; /* "(logs in LOGDIR)" after a failed measurement */

static void run_delete(struct margs *m, double *sum) {
  char out[256];
  long rss;
  double t;
  bench_in_child(child_delete, m, out, sizeof out, &rss, hint);
  if (sscanf(out, "%lf", &t) == 1) *sum += t;
}

static int cmd_measure(const char *src_ns, const char *dir, const char *backup, long n, int rounds, const char *conc_list,
                       const char *logdir) {
  int concs[MAX_CONCS], nc = 0;
  for (char *s = (char *)conc_list, *e; *s && nc < MAX_CONCS; s = e) {
    long v = strtol(s, &e, 10);
    if (e == s) break;
    if (v >= 1 && v <= 64) concs[nc++] = (int)v;
  }
  if (nc == 0 || rounds < 1 || rounds > MAX_ROUNDS || n < 1) {
    fprintf(stderr, "bench-restore: need 1..%d rounds, N >= 1 and concurrencies in 1..64\n", MAX_ROUNDS);
    return 2;
  }
  struct margs m = {.src_ns = src_ns, .dir = dir, .backup = backup, .logdir = logdir, .n = n};
  snprintf(hint, sizeof hint, " (logs in %s)", logdir);
  double raw_t[MAX_CONCS][MAX_ROUNDS], rst_t[MAX_CONCS][MAX_ROUNDS], del_s = 0;
  long rss_r = 0, rss_raw = 0, req_r[MAX_CONCS] = {0}, req_raw[MAX_CONCS] = {0};
  struct phases ph[MAX_CONCS][MAX_ROUNDS];
  int seq = 0;
  printf("each run: a fresh process, into a new empty namespace (the restore maps %s to it); the objects it created "
         "are deleted afterwards, untimed, so every run meets the same control plane\n",
         src_ns);
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < nc; k++) {
      char out[256];
      long rss, ok, total, created, warnings, reqs;
      long long wall0;
      double t;
      m.conc = concs[k];
      m.engine_default = false;
      /* (a) raw */
      snprintf(m.target, sizeof m.target, "raw-%d-%d", r + 1, concs[k]);
      bench_in_child(child_raw, &m, out, sizeof out, &rss, hint);
      if (sscanf(out, "%ld %lf %ld", &ok, &t, &reqs) != 3 || ok != n) bench_die("raw client output");
      raw_t[k][r] = t;
      req_raw[k] = reqs;
      if (rss > rss_raw) rss_raw = rss;
      run_delete(&m, &del_s);
      printf("round %d, concurrency %2d: raw client %ld objects %.2f s (%.0f/s, %ld requests)", r + 1, concs[k], ok, t, n / t,
             reqs);
      fflush(stdout);
      /* (b) restore */
      snprintf(m.target, sizeof m.target, "rst-%d-%d", r + 1, concs[k]);
      snprintf(m.restore_name, sizeof m.restore_name, "bench-%d-%d-%d", r + 1, concs[k], seq++);
      bench_in_child(child_restore, &m, out, sizeof out, &rss, hint);
      if (sscanf(out, "%ld %ld %ld %lf %ld %lld", &total, &created, &warnings, &t, &reqs, &wall0) != 6) bench_die("restore output");
      rst_t[k][r] = t;
      req_r[k] = reqs;
      if (rss > rss_r) rss_r = rss;
      read_phases(logdir, m.restore_name, wall0, &ph[k][r]);
      run_delete(&m, &del_s);
      struct phases *p = &ph[k][r];
      printf(" | restore %ld of %ld created, %ld warnings, %.2f s (%.0f/s, %ld requests, RSS %.1f MiB; validate %.2f, stage %.2f, index %.2f, "
             "create %.2f (%.0f/s), finish %.2f s) | ratio %.2f\n",
             created, total, warnings, t, n / t, reqs, rss / 1024.0, p->validate, p->stage, p->index, p->create,
             p->create > 0 ? n / p->create : 0, p->finish, t / raw_t[k][r]);
      fflush(stdout);
    }
  }
  int kb_raw = 0, kb_r = 0;
  printf("\nper concurrency (best / median of %d):\n", rounds);
  for (int k = 0; k < nc; k++) {
    printf("  %2d: raw client %.2f / %.2f s (%.0f/s best) | restore %.2f / %.2f s (%.0f/s best)\n", concs[k],
           best(raw_t[k], rounds), median(raw_t[k], rounds), n / best(raw_t[k], rounds), best(rst_t[k], rounds),
           median(rst_t[k], rounds), n / best(rst_t[k], rounds));
    if (median(raw_t[k], rounds) < median(raw_t[kb_raw], rounds)) kb_raw = k;
    if (median(rst_t[k], rounds) < median(rst_t[kb_r], rounds)) kb_r = k;
  }
  double rb = best(raw_t[kb_raw], rounds), rm = median(raw_t[kb_raw], rounds);
  double sb = best(rst_t[kb_r], rounds), sm = median(rst_t[kb_r], rounds);
  /* the median run of the fastest restore concurrency, for the phases */
  int mi = 0;
  for (int r = 0; r < rounds; r++)
    if (rst_t[kb_r][r] == sm || (rst_t[kb_r][r] >= sm && (rst_t[kb_r][mi] < sm || rst_t[kb_r][r] < rst_t[kb_r][mi]))) mi = r;
  struct phases *p = &ph[kb_r][mi];
  printf("fastest raw client: concurrency %d (lowest median): best %.2f s = %.0f objects/s, median %.2f s = %.0f objects/s, "
         "%ld requests for %ld objects + namespace\n",
         concs[kb_raw], rb, n / rb, rm, n / rm, req_raw[kb_raw], n);
  printf("fastest restore:    concurrency %d (lowest median): best %.2f s = %.0f objects/s, median %.2f s = %.0f objects/s, "
         "%ld requests for %ld objects + namespace; peak RSS %.1f MiB (raw client child %.1f MiB, its %ld bodies "
         "pre-serialised)\n",
         concs[kb_r], sb, n / sb, sm, n / sm, req_r[kb_r], n, rss_r / 1024.0, rss_raw / 1024.0, n);
  printf("  its median run: validate+InProgress %.2f s, stage+verify %.2f s, index %.2f s, create %.2f s (%.0f objects/s), "
         "logs+results+status %.2f s\n",
         p->validate, p->stage, p->index, p->create, p->create > 0 ? n / p->create : 0, p->finish);
  printf("RESULT restore %.0f objects/s (target >= 1000; Velero ~10), ratio restore/raw %.2f best/best, %.2f median/median "
         "(target <= 1.5)\n",
         n / sb, sb / rb, sm / rm);
  /* what the engine's own client (its default rate limit) makes of it */
  m.conc = concs[kb_r];
  m.engine_default = true;
  snprintf(m.target, sizeof m.target, "rst-default-client");
  snprintf(m.restore_name, sizeof m.restore_name, "bench-default-client-%d", seq++);
  char out[256];
  long rss, total, created, warnings, reqs;
  long long wall0;
  double t;
  bench_in_child(child_restore, &m, out, sizeof out, &rss, hint);
  if (sscanf(out, "%ld %ld %ld %lf %ld %lld", &total, &created, &warnings, &t, &reqs, &wall0) != 6) bench_die("restore output");
  run_delete(&m, &del_s);
  printf("with the engine's default client (kube_client_opts zero: qps 1000, burst 2000), concurrency %d: restore %.2f s "
         "(%.0f objects/s, ratio %.2f to the best raw run)\n",
         m.conc, t, n / t, t / rb);
  printf("(untimed deletes between runs: %.0f s in all)\n", del_s);
  return 0;
}

/* the backups of the three kinds, then ROUNDS x (plain, encrypted, signed restore) at one
 * concurrency; ratios to the plain restore of the same run */
static int cmd_features(const char *ns, const char *dir, long n, int rounds, int conc, const char *logdir) {
  if (rounds < 1 || rounds > MAX_ROUNDS || n < 1 || conc < 1 || conc > 64) {
    fprintf(stderr, "bench-restore: need 1..%d rounds, N >= 1 and a concurrency in 1..64\n", MAX_ROUNDS);
    return 2;
  }
  kube_client *c = bench_client(false);
  ensure_key_secrets(c);
  kube_client_free(c);
  char names[FK_N][64];
  objstore *store = NULL;
  json_t *bsl = bench_bsl(dir);
  if (objstore_open_bsl(bsl, NULL, 0, &store)) bench_die("opening the location");
  for (int k = 0; k < FK_N; k++) {
    snprintf(names[k], sizeof names[k], "bench-src-%s", fkind_name[k]);
    if (backup_kind(ns, dir, names[k], (enum fkind)k)) return 1;
    /* what was stored is what the location asked for */
    char key[512], id[CRYPT_ID_MAX + 1];
    bool enc = false;
    uint64_t size = 0;
    if (velero_backup_key(names[k], VELERO_BACKUP_TARBALL, key, sizeof key) || crypt_peek(store, key, &enc, id))
      bench_die("reading a stored tarball's header");
    bool sig = velero_backup_key(names[k], VELERO_BACKUP_SIGNATURE, key, sizeof key) == KD_OK && objstore_head(store, key, &size) == KD_OK;
    if (enc != (k == FK_ENC) || sig != (k == FK_SIGNED)) {
      fprintf(stderr, "bench-restore: backup %s is %s and %s\n", names[k], enc ? "encrypted" : "plain", sig ? "signed" : "unsigned");
      return 1;
    }
  }
  objstore_free(store);
  json_decref(bsl);
  struct margs m = {.src_ns = ns, .dir = dir, .logdir = logdir, .n = n, .conc = conc};
  snprintf(hint, sizeof hint, " (logs in %s)", logdir);
  double t[FK_N][MAX_ROUNDS], del_s = 0;
  long rss_max[FK_N] = {0};
  printf("each run: a fresh process, concurrency %d, into a new empty namespace; the restore's objects are deleted "
         "afterwards, untimed\n", conc);
  for (int r = 0; r < rounds; r++) {
    printf("round %d:", r + 1);
    for (int j = 0; j < FK_N; j++) {
      int k = (j + r) % FK_N; /* the order rotates */
      char out[256];
      long rss, total, created, warnings, reqs;
      long long wall0;
      m.kind = (enum fkind)k;
      m.backup = names[k];
      snprintf(m.target, sizeof m.target, "feat-%s-%d", fkind_name[k], r + 1);
      snprintf(m.restore_name, sizeof m.restore_name, "bench-feat-%s-%d", fkind_name[k], r + 1);
      bench_in_child(child_restore, &m, out, sizeof out, &rss, hint);
      if (sscanf(out, "%ld %ld %ld %lf %ld %lld", &total, &created, &warnings, &t[k][r], &reqs, &wall0) != 6)
        bench_die("restore output");
      if (rss > rss_max[k]) rss_max[k] = rss;
      run_delete(&m, &del_s);
      printf("%s %s %.2f s (%.0f/s, RSS %.1f MiB)", j ? " |" : "", fkind_name[k], t[k][r], n / t[k][r], rss / 1024.0);
      fflush(stdout);
    }
    printf(" | ratios to plain: encrypted %.2f, signed %.2f\n", t[FK_ENC][r] / t[FK_PLAIN][r], t[FK_SIGNED][r] / t[FK_PLAIN][r]);
  }
  double bp = best(t[FK_PLAIN], rounds), mp = median(t[FK_PLAIN], rounds);
  printf("best / median of %d: plain restore %.2f / %.2f s (%.0f objects/s best, peak RSS %.1f MiB)\n", rounds, bp, mp, n / bp,
         rss_max[FK_PLAIN] / 1024.0);
  for (int k = FK_ENC; k < FK_N; k++)
    printf("RESULT %s restore: best %.2f s, median %.2f s, ratio to plain %.2f best/best, %.2f median/median (peak RSS %.1f "
           "MiB)\n",
           k == FK_ENC ? "encrypted" : "signed (signature required)", best(t[k], rounds), median(t[k], rounds),
           best(t[k], rounds) / bp, median(t[k], rounds) / mp, rss_max[k] / 1024.0);
  printf("(untimed deletes between runs: %.0f s in all)\n", del_s);
  return 0;
}

int main(int argc, char **argv) {
  bench_prog = "bench-restore";
  kd_log_setup(KD_LOG_WARN, false);
  if (argc >= 4 && strcmp(argv[1], "load") == 0) return bench_load(argv[2], atol(argv[3]), argc > 4 ? atoi(argv[4]) : 16);
  if (argc == 5 && strcmp(argv[1], "backup") == 0) return cmd_backup(argv[2], argv[3], argv[4]);
  if (argc == 9 && strcmp(argv[1], "measure") == 0)
    return cmd_measure(argv[2], argv[3], argv[4], atol(argv[5]), atoi(argv[6]), argv[7], argv[8]);
  if (argc == 8 && strcmp(argv[1], "features") == 0)
    return cmd_features(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), atoi(argv[6]), argv[7]);
  fprintf(stderr, "usage: bench-restore load NS N [WORKERS] | backup NS DIR NAME | measure NS DIR BACKUP N ROUNDS "
                  "\"C1 C2 ...\" LOGDIR | features NS DIR N ROUNDS C LOGDIR\n");
  return 2;
}
