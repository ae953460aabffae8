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
 *       Then, in the same round and process layout, the cost of the other two features: (d) the
 *       same Backup into a signing location (annotated kcmdr.io/signing-secret: bench-sign/key,
 *       an Ed25519 key made here) whose signature file must exist afterwards, as a ratio to (b);
 *       and, when KCMDR_S3_ENDPOINT, AWS_* and BENCH_S3_BUCKET / BENCH_LOCK_BUCKET are set (the
 *       latter created with object lock), (e) the Backup into an S3 location on BENCH_S3_BUCKET
 *       and (f) into the same kind of location on BENCH_LOCK_BUCKET annotated
 *       kcmdr.io/object-lock: GOVERNANCE, as a ratio (f)/(e) (object lock exists only on S3, so
 *       its baseline is the plain S3 backup). The five backups rotate their order every round.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
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

/* The backups measured: (b) plain, (c) encrypted, (d) signed into DIR; (e) plain and (f) locked
 * on the gateway (BENCH_S3_BUCKET / BENCH_LOCK_BUCKET) */
enum bkind { BK_PLAIN, BK_ENC, BK_SIGNED, BK_S3, BK_S3LOCK, BK_N };
static const char *const bkind_name[BK_N] = {"plain", "enc", "signed", "s3", "s3lock"};

#define BENCH_SIGN_SECRET "bench-sign"

/* The signing Secret kcm-system/bench-sign, key "key": a fresh Ed25519 private key in PEM (the
 * format `openssl genpkey -algorithm ed25519` writes); an existing one is kept. */
static void ensure_sign_secret(void) {
  kube_client *c = bench_client(false);
  EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
  EVP_PKEY *pk = NULL;
  BIO *mem = BIO_new(BIO_s_mem());
  if (!pc || !mem || EVP_PKEY_keygen_init(pc) != 1 || EVP_PKEY_keygen(pc, &pk) != 1 ||
      PEM_write_bio_PrivateKey(mem, pk, NULL, NULL, 0, NULL, NULL) != 1)
    bench_die("making an Ed25519 key");
  char *pem = NULL;
  long plen = BIO_get_mem_data(mem, &pem);
  char *v64 = kd_base64_encode((const unsigned char *)pem, (size_t)plen);
  json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name", BENCH_SIGN_SECRET,
                        "namespace", "kcm-system", "data", "key", v64 ? v64 : ""),
         *out = NULL;
  struct kube_req_opts ro = {.idempotent = true};
  kd_rc rc = o && v64 ? kube_create_ex(c, &secret_res, "kcm-system", o, &ro, &out) : KD_ERR_NOMEM;
  if (rc && rc != KD_ERR_CONFLICT) bench_die("creating the signing Secret");
  json_decref(o), json_decref(out);
  free(v64);
  BIO_free(mem);
  EVP_PKEY_free(pk);
  EVP_PKEY_CTX_free(pc);
  kube_client_free(c);
}

/* the S3 location "bench" on bucket (the gateway of the environment), with object lock
 * GOVERNANCE when locked; cred[n] gets its credentials file */
static json_t *s3_bsl(const char *bucket, bool locked, char *cred, size_t n) {
  const char *ep = getenv("KCMDR_S3_ENDPOINT"), *id = getenv("AWS_ACCESS_KEY_ID"), *key = getenv("AWS_SECRET_ACCESS_KEY"),
             *region = getenv("AWS_DEFAULT_REGION");
  if (!ep || !id || !key) bench_die("KCMDR_S3_ENDPOINT and AWS_* must be set for the S3 backups");
  snprintf(cred, n, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, key);
  json_t *bsl = json_pack("{s:s,s:s,s:{s:s,s:s,s:{}},s:{s:s,s:{s:s,s:s},s:{s:s,s:s,s:s}},s:{s:s}}", "apiVersion", "velero.io/v1",
                          "kind", "BackupStorageLocation", "metadata", "name", "bench", "namespace", "kcm-system", "annotations",
                          "spec", "provider", "aws", "objectStorage", "bucket", bucket, "prefix", "bench", "config", "region",
                          region ? region : "us-east-1", "s3Url", ep, "s3ForcePathStyle", "true", "status", "phase", "Available");
  if (!bsl) bench_die("out of memory");
  if (locked && json_object_set_new(json_object_get(json_object_get(bsl, "metadata"), "annotations"), OBJSTORE_ANN_LOCK,
                                    json_string("GOVERNANCE")))
    bench_die("out of memory");
  return bsl;
}

/* child (b)-(f): create the Backup and execute it into the location of its kind; writes "items
 * seconds bytes encrypted(0|1)" to fd. Each backup is checked to be what its location asks:
 * encrypted or plain tarball; a signed one has its signature file; a locked one a locking store. */
static void child_backup(const char *ns, const char *dir, const char *name, int conc, enum bkind kind, int fd) {
  bool encrypted = kind == BK_ENC;
  kube_client *c = bench_client(false);
  json_t *bk = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:[s],s:s,s:s}}", "apiVersion", "velero.io/v1", "kind", "Backup", "metadata",
                         "name", name, "namespace", "kcm-system", "spec", "includedNamespaces", ns, "storageLocation", "bench",
                         "ttl", "720h0m0s");
  char cred[1024] = "";
  json_t *bsl = kind == BK_S3 || kind == BK_S3LOCK
                    ? s3_bsl(getenv(kind == BK_S3 ? "BENCH_S3_BUCKET" : "BENCH_LOCK_BUCKET"), kind == BK_S3LOCK, cred, sizeof cred)
                    : bench_bsl(dir);
  json_t *created = NULL;
  objstore *store = NULL;
  if (encrypted && json_object_set_new(json_object_get(bsl, "metadata"), "annotations",
                                       json_pack("{s:s}", CRYPT_ANN_ENCRYPTION, BENCH_KEK_SECRET "/keys")))
    bench_die("out of memory");
  if (kind == BK_SIGNED && json_object_set_new(json_object_get(bsl, "metadata"), "annotations",
                                               json_pack("{s:s}", CRYPT_ANN_SIGNING, BENCH_SIGN_SECRET "/key")))
    bench_die("out of memory");
  if (kube_create(c, &bench_backup_res, "kcm-system", bk, &created)) bench_die("creating the Backup");
  if (objstore_open_bsl(bsl, cred[0] ? cred : NULL, strlen(cred), &store)) bench_die("opening the location");
  if ((kind == BK_S3LOCK) != (objstore_lock_mode(store) != NULL)) bench_die("the location's object lock");
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
  uint64_t sigsize = 0;
  if (kind == BK_SIGNED && (velero_backup_key(name, VELERO_BACKUP_SIGNATURE, key, sizeof key) || objstore_head(store, key, &sigsize)))
    bench_die("the signed backup has no signature file");
  dprintf(fd, "%ld %.3f %llu %d\n", res.items, dt, (unsigned long long)res.tarball_bytes, enc ? 1 : 0);
  _exit(0);
}

struct margs {
  const char *ns, *dir;
  char name[64];
  int conc;
  enum bkind kind;
};
static void run_list(void *a, int fd) {
  struct margs *m = a;
  child_list(m->ns, m->conc, fd);
}
static void run_backup(void *a, int fd) {
  struct margs *m = a;
  child_backup(m->ns, m->dir, m->name, m->conc, m->kind, fd);
}

struct bres {
  long items, rss;
  double secs;
  unsigned long long bytes;
};

/* one backup of its kind in a fresh child */
static struct bres one_kind(struct margs *m, int round, enum bkind kind) {
  char out[256];
  struct bres b;
  int enc = -1;
  bool encrypted = kind == BK_ENC;
  m->kind = kind;
  snprintf(m->name, sizeof m->name, "bench-%d-%s-%lld", round, bkind_name[kind], (long long)kd_now_ms());
  bench_in_child(run_backup, m, out, sizeof out, &b.rss, NULL);
  if (sscanf(out, "%ld %lf %llu %d", &b.items, &b.secs, &b.bytes, &enc) != 4 || enc != (encrypted ? 1 : 0))
    bench_die("backup output");
  return b;
}
/* one backup in a fresh child: plain or encrypted */
static struct bres one_backup(struct margs *m, int round, bool encrypted) { return one_kind(m, round, encrypted ? BK_ENC : BK_PLAIN); }

static int cmd_measure(const char *ns, const char *dir, int rounds, int conc) {
  struct margs m = {.ns = ns, .dir = dir, .conc = conc > 0 ? conc : 4};
  double best_l = 1e9, best_p = 1e9, best_e = 1e9, best_ratio = 1e9;
  long items = 0, rss_p = 0, rss_e = 0, rss_l = 0;
  /* the other features: signed (to plain), object lock (to plain S3) */
  bool s3 = getenv("BENCH_S3_BUCKET") && getenv("BENCH_LOCK_BUCKET");
  double best_s = 1e9, best_s3 = 1e9, best_lk = 1e9, best_s_ratio = 1e9, best_lk_ratio = 1e9;
  ensure_kek_secret();
  ensure_sign_secret();
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
    struct bres sg = one_kind(&m, r, BK_SIGNED), s3p = {0}, s3l = {0};
    if (s3 && r % 2 == 0) {
      s3p = one_kind(&m, r, BK_S3);
      s3l = one_kind(&m, r, BK_S3LOCK);
    } else if (s3) {
      s3l = one_kind(&m, r, BK_S3LOCK);
      s3p = one_kind(&m, r, BK_S3);
    }
    if (sg.items != p.items || (s3 && (s3p.items != p.items || s3l.items != p.items))) {
      fprintf(stderr, "bench-backup: the backups of one round hold different numbers of objects\n");
      return 1;
    }
    printf("round %d: signed %.2f s (%.0f/s, peak RSS %.1f MiB) ratio to plain %.2f", r + 1, sg.secs, sg.items / sg.secs,
           sg.rss / 1024.0, sg.secs / p.secs);
    if (s3)
      printf(" | S3 plain %.2f s (%.0f/s) | S3 object lock %.2f s (%.0f/s, peak RSS %.1f MiB) ratio to S3 plain %.2f", s3p.secs,
             s3p.items / s3p.secs, s3l.secs, s3l.items / s3l.secs, s3l.rss / 1024.0, s3l.secs / s3p.secs);
    printf("\n");
    fflush(stdout);
    if (sg.secs < best_s) best_s = sg.secs;
    if (sg.secs / p.secs < best_s_ratio) best_s_ratio = sg.secs / p.secs;
    if (s3 && s3p.secs < best_s3) best_s3 = s3p.secs;
    if (s3 && s3l.secs < best_lk) best_lk = s3l.secs;
    if (s3 && s3l.secs / s3p.secs < best_lk_ratio) best_lk_ratio = s3l.secs / s3p.secs;
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
  printf("signatures: best of %d: signed backup %.2f s, %.0f objects/s, ratio to the plain backup %.2f (best-of times; best "
         "round %.2f)\n",
         rounds, best_s, items / best_s, best_s / best_p, best_s_ratio);
  if (s3)
    printf("object lock: best of %d: S3 plain backup %.2f s (%.2f x the filesystem one), S3 locked (GOVERNANCE) %.2f s, %.0f "
           "objects/s, ratio to the S3 plain backup %.2f (best-of times; best round %.2f)\n",
           rounds, best_s3, best_s3 / best_p, best_lk, items / best_lk, best_lk / best_s3, best_lk_ratio);
  else
    printf("object lock: not measured (no BENCH_S3_BUCKET/BENCH_LOCK_BUCKET)\n");
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
