/* kube_e2e.c — drives kcmdr's Kubernetes client against a real API server for test/e2e/t_kube.sh.
 * Each subcommand checks one behaviour and exits 0 when it held, 1 with a message when not.
 *
 *   kube-e2e crud                    CRUD, patch kinds, status, delete on a core object and a CR
 *   kube-e2e paging NS N             create N ConfigMaps concurrently, list 100 a page, each once
 *   kube-e2e conflict NS             two clients x 40 read-modify-write on one object: all applied
 *   kube-e2e informer NS DUMPFILE    cache ConfigMaps of NS; on SIGUSR1 dump cache + stats; stop on TERM
 *   kube-e2e lease NS NAME ID        campaign; print "leading ID" when leading; stop on TERM
 *   kube-e2e events NS               the same event 3 times -> one Event with count 3
 *   kube-e2e nul NS                  an annotation with \u0000 and UTF-8 through create/get/update/list/watch
 *   kube-e2e liststream NS RAW N     kube_list_stream 2 a page: N items, each byte-exact in RAW (kubectl's list)
 *   kube-e2e listbench NS            time kube_list against kube_list_stream (a measurement, not a test)
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "informer.h"
#include "kube.h"
#include "lease.h"

static const struct kube_res cm_res = {"", "v1", "configmaps", "ConfigMap", true};
static const struct kube_res ns_res = {"", "v1", "namespaces", "Namespace", false};
static const struct kube_res mb_res = {"k0rdent.mirantis.com", "v1beta1", "managementbackups", "ManagementBackup", false};

static volatile int stop_flag, dump_flag;
static void on_signal(int sig) {
  if (sig == SIGUSR1) dump_flag = 1;
  else stop_flag = 1;
}

#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "kube-e2e: line %d: ", __LINE__);                                                                \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fprintf(stderr, " [%s]\n", kd_errmsg());                                                                         \
      exit(1);                                                                                                         \
    }                                                                                                                  \
  } while (0)

static kube_client *connect_or_die(void) {
  kube_client *c = NULL;
  CHECK(kube_client_from_opts(NULL, NULL, &c) == KD_OK, "cannot connect");
  return c;
}

static void ensure_ns(kube_client *c, const char *ns) {
  json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns), *out = NULL;
  kd_rc rc = kube_create(c, &ns_res, NULL, o, &out);
  CHECK(rc == KD_OK || rc == KD_ERR_CONFLICT, "create namespace %s", ns);
  json_decref(o);
  json_decref(out);
}

static const char *rv_of(json_t *o) {
  return json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

static int cmd_crud(void) {
  kube_client *c = connect_or_die();
  json_t *out = NULL, *got = NULL;
  const char *ns = "crud-e2e";
  ensure_ns(c, ns);
  kube_delete(c, &cm_res, ns, "cm1", NULL, NULL);
  /* create */
  json_t *cm = json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name",
                         "cm1", "labels", "app", "crud", "data", "k", "v1");
  CHECK(kube_create(c, &cm_res, ns, cm, &out) == KD_OK, "create");
  char rv1[64];
  snprintf(rv1, sizeof rv1, "%s", rv_of(out));
  json_decref(out);
  /* tried: creating it again -> 409 AlreadyExists with the server's message */
  CHECK(kube_create(c, &cm_res, ns, cm, &out) == KD_ERR_CONFLICT, "second create should conflict");
  CHECK(strstr(kd_errmsg(), "already exists") != NULL, "conflict message: %s", kd_errmsg());
  /* get + update with resourceVersion */
  CHECK(kube_get(c, &cm_res, ns, "cm1", &got) == KD_OK, "get");
  json_object_set_new(json_object_get(got, "data"), "k", json_string("v2"));
  CHECK(kube_update(c, &cm_res, ns, got, &out) == KD_OK, "update");
  json_decref(out);
  /* tried: updating with the old resourceVersion -> 409 */
  json_object_set_new(json_object_get(got, "metadata"), "resourceVersion", json_string(rv1));
  CHECK(kube_update(c, &cm_res, ns, got, &out) == KD_ERR_CONFLICT, "stale update should conflict");
  json_decref(got);
  /* merge patch, JSON patch, server-side apply */
  json_t *mp = json_pack("{s:{s:s}}", "data", "merge", "yes");
  CHECK(kube_patch(c, &cm_res, ns, "cm1", mp, NULL, &out) == KD_OK, "merge patch");
  json_decref(out);
  json_t *jp = json_pack("[{s:s,s:s,s:s}]", "op", "add", "path", "/data/json", "value", "yes");
  struct kube_patch_opts po = {KUBE_PATCH_JSON, NULL, false, NULL};
  CHECK(kube_patch(c, &cm_res, ns, "cm1", jp, &po, &out) == KD_OK, "json patch");
  json_decref(out);
  json_t *ap = json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", "cm1",
                         "data", "applied", "yes");
  struct kube_patch_opts apo = {KUBE_PATCH_APPLY, "kcmdr-e2e", true, NULL};
  CHECK(kube_patch(c, &cm_res, ns, "cm1", ap, &apo, &out) == KD_OK, "apply");
  json_decref(out);
  CHECK(kube_get(c, &cm_res, ns, "cm1", &got) == KD_OK, "get after patches");
  json_t *data = json_object_get(got, "data");
  CHECK(kd_streq(json_string_value(json_object_get(data, "k")), "v2"), "update kept");
  CHECK(kd_streq(json_string_value(json_object_get(data, "merge")), "yes"), "merge patch kept");
  CHECK(kd_streq(json_string_value(json_object_get(data, "json")), "yes"), "json patch kept");
  CHECK(kd_streq(json_string_value(json_object_get(data, "applied")), "yes"), "apply kept");
  json_decref(got);
  /* delete, then 404 with a clear message */
  CHECK(kube_delete(c, &cm_res, ns, "cm1", "Background", &out) == KD_OK, "delete");
  json_decref(out);
  CHECK(kube_get(c, &cm_res, ns, "cm1", &got) == KD_ERR_NOTFOUND, "get after delete");
  CHECK(strstr(kd_errmsg(), "not found") != NULL, "404 message: %s", kd_errmsg());

  /* a custom resource with a status subresource */
  kube_delete(c, &mb_res, NULL, "crud-e2e", NULL, NULL);
  json_t *mb = json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "k0rdent.mirantis.com/v1beta1", "kind",
                         "ManagementBackup", "metadata", "name", "crud-e2e", "spec", "schedule", "@daily");
  CHECK(kube_create(c, &mb_res, NULL, mb, &out) == KD_OK, "create CR");
  json_object_set_new(out, "status", json_pack("{s:s}", "error", "from status"));
  json_t *out2 = NULL;
  CHECK(kube_update_status(c, &mb_res, NULL, out, &out2) == KD_OK, "update status");
  CHECK(kd_streq(json_string_value(json_object_get(json_object_get(out2, "status"), "error")), "from status"),
        "status written");
  json_decref(out);
  json_decref(out2);
  json_t *sp = json_pack("{s:{s:s}}", "status", "lastBackupName", "x");
  struct kube_patch_opts spo = {KUBE_PATCH_MERGE, NULL, false, "status"};
  CHECK(kube_patch(c, &mb_res, NULL, "crud-e2e", sp, &spo, &out) == KD_OK, "status patch");
  CHECK(kd_streq(json_string_value(json_object_get(json_object_get(out, "status"), "lastBackupName")), "x"), "status patch");
  json_decref(out);
  CHECK(kube_delete(c, &mb_res, NULL, "crud-e2e", NULL, NULL) == KD_OK, "delete CR");
  /* discovery by kind and short name */
  struct kube_res r;
  CHECK(kube_resolve(c, "mgmtbackup", &r) == KD_OK && strcmp(r.resource, "managementbackups") == 0, "resolve");
  CHECK(kube_resolve(c, "Backup.velero.io", &r) == KD_OK && strcmp(r.group, "velero.io") == 0, "resolve kind.group");
  CHECK(kube_resolve(c, "nonexistent.example.com", &r) == KD_ERR_NOTFOUND, "resolve unknown");
  json_decref(cm);
  json_decref(mp);
  json_decref(jp);
  json_decref(ap);
  json_decref(mb);
  json_decref(sp);
  kube_client_free(c);
  printf("crud: ok\n");
  return 0;
}

struct paging_job {
  kube_client *c;
  const char *ns;
  int from, to;
};

static void *paging_create(void *arg) {
  struct paging_job *j = arg;
  for (int i = j->from; i < j->to; i++) {
    char name[64];
    snprintf(name, sizeof name, "page-%05d", i);
    json_t *cm = json_pack("{s:s,s:s,s:{s:s},s:{s:i}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", name,
                           "data", "i", i), *out = NULL;
    json_object_set_new(json_object_get(cm, "data"), "i", json_sprintf("%d", i));
    kd_rc rc = kube_create(j->c, &cm_res, j->ns, cm, &out);
    CHECK(rc == KD_OK || rc == KD_ERR_CONFLICT, "create %s", name);
    json_decref(cm);
    json_decref(out);
  }
  return NULL;
}

struct seen_set {
  json_t *names;
  long dupes, pages_items;
};

static bool count_item(json_t *item, void *ud) {
  struct seen_set *s = ud;
  const char *name = json_string_value(json_object_get(json_object_get(item, "metadata"), "name"));
  if (json_object_get(s->names, name)) s->dupes++;
  json_object_set_new(s->names, name, json_true());
  s->pages_items++;
  return true;
}

static int cmd_paging(const char *ns, int n) {
  kube_client *c = connect_or_die();
  ensure_ns(c, ns);
  pthread_t th[8];
  struct paging_job jobs[8];
  for (int t = 0; t < 8; t++) {
    jobs[t] = (struct paging_job){c, ns, n * t / 8, n * (t + 1) / 8};
    pthread_create(&th[t], NULL, paging_create, &jobs[t]);
  }
  for (int t = 0; t < 8; t++) pthread_join(th[t], NULL);
  long before = kube_client_requests(c);
  struct seen_set s = {json_object(), 0, 0};
  struct kube_list_opts lo = {NULL, NULL, 100, NULL};
  char *rv = NULL;
  CHECK(kube_list(c, &cm_res, ns, &lo, count_item, &s, &rv) == KD_OK, "list");
  long requests = kube_client_requests(c) - before;
  int pages = (n + 99) / 100;
  size_t page_count = json_object_size(s.names);
  CHECK(s.dupes == 0, "%ld duplicates", s.dupes);
  for (int i = 0; i < n; i++) {
    char name[64];
    snprintf(name, sizeof name, "page-%05d", i);
    CHECK(json_object_get(s.names, name) != NULL, "%s missing", name);
  }
  CHECK(requests >= pages, "expected at least %d page requests, saw %ld", pages, requests);
  printf("paging: %zu objects (+kube-root-ca etc. filtered) in %ld requests, resourceVersion %s\n", page_count, requests,
         rv ? rv : "?");
  free(rv);
  json_decref(s.names);
  kube_client_free(c);
  return 0;
}

struct conflict_job {
  const char *ns;
  pthread_barrier_t *both_read; /* the first round: both writers hold the same version */
  long mutations;               /* read-modify rounds; each beyond the 40 writes was a 409 */
  long conflicts_seen;
};

static kd_rc increment(json_t *obj, void *ud) {
  struct conflict_job *j = ud;
  json_t *data = json_object_get(obj, "data");
  long v = strtol(json_string_value(json_object_get(data, "n")), NULL, 10);
  json_object_set_new(data, "n", json_sprintf("%ld", v + 1));
  /* the first round of each writer waits for the other's read: one of the two writes must then
   * meet a stale resourceVersion, so the conflict path surely runs */
  if (j->mutations++ == 0) pthread_barrier_wait(j->both_read);
  return KD_OK;
}

static void *conflict_worker(void *arg) {
  struct conflict_job *j = arg;
  kube_client *c = connect_or_die(); /* a client of its own: two independent writers */
  for (int i = 0; i < 40; i++) {
    json_t *out = NULL;
    CHECK(kube_update_retry(c, &cm_res, j->ns, "counter", false, increment, j, &out) == KD_OK, "update_retry");
    json_decref(out);
  }
  j->conflicts_seen = j->mutations - 40;
  kube_client_free(c);
  return NULL;
}

static int cmd_conflict(const char *ns) {
  kube_client *c = connect_or_die();
  ensure_ns(c, ns);
  kube_delete(c, &cm_res, ns, "counter", NULL, NULL);
  json_t *cm = json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name",
                         "counter", "data", "n", "0"), *out = NULL;
  CHECK(kube_create(c, &cm_res, ns, cm, &out) == KD_OK, "create counter");
  json_decref(out);
  pthread_barrier_t both;
  pthread_barrier_init(&both, NULL, 2);
  pthread_t a, b;
  struct conflict_job ja = {ns, &both, 0, 0}, jb = {ns, &both, 0, 0};
  pthread_create(&a, NULL, conflict_worker, &ja);
  pthread_create(&b, NULL, conflict_worker, &jb);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  pthread_barrier_destroy(&both);
  CHECK(kube_get(c, &cm_res, ns, "counter", &out) == KD_OK, "get counter");
  const char *n = json_string_value(json_object_get(json_object_get(out, "data"), "n"));
  CHECK(kd_streq(n, "80"), "counter is %s, expected 80: an update was lost", n ? n : "?");
  long conflicts = ja.conflicts_seen + jb.conflicts_seen;
  CHECK(conflicts >= 1, "no 409 was met: the conflict path did not run");
  printf("conflict: 80 of 80 updates applied, %ld conflicts met and retried\n", conflicts);
  json_decref(out);
  json_decref(cm);
  kube_client_free(c);
  return 0;
}

/* ---- server strings with NUL and non-ASCII ---- */

/* The annotation value "a", NUL, "b" and a UTF-8 "é". */
static bool nul_annotation_ok(json_t *obj) {
  json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
  json_t *evil = json_object_get(ann, "evil");
  const char *u = json_string_value(json_object_get(ann, "utf8"));
  return json_string_length(evil) == 3 && memcmp(json_string_value(evil), "a\0b", 3) == 0 && kd_streq(u, "\xc3\xa9");
}

static bool nul_watch_fn(enum kube_event_type t, json_t *obj, void *ud) {
  (void)t;
  int *seen = ud;
  const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  if (kd_streq(name, "nul") && nul_annotation_ok(obj)) *seen = 1;
  return !*seen;
}

static bool nul_list_fn(json_t *item, void *ud) {
  int *seen = ud;
  const char *name = json_string_value(json_object_get(json_object_get(item, "metadata"), "name"));
  if (kd_streq(name, "nul")) *seen = nul_annotation_ok(item) ? 1 : -1;
  return true;
}

/* Create, read, list, update and watch an object whose annotation holds \u0000: every path
 * keeps the bytes, and what we write back is what the server sent. */
static int cmd_nul(const char *ns) {
  kube_client *c = connect_or_die();
  ensure_ns(c, ns);
  kube_delete(c, &cm_res, ns, "nul", NULL, NULL);
  json_t *cm = json_pack("{s:s,s:s,s:{s:s,s:{s:s%,s:s}},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                         "name", "nul", "annotations", "evil", "a\0b", (size_t)3, "utf8", "\xc3\xa9", "data", "k", "v"),
         *out = NULL;
  CHECK(cm != NULL, "pack");
  CHECK(kube_create(c, &cm_res, ns, cm, &out) == KD_OK, "create with NUL");
  CHECK(nul_annotation_ok(out), "create answer lost the NUL");
  json_decref(out);
  CHECK(kube_get(c, &cm_res, ns, "nul", &out) == KD_OK, "get");
  CHECK(nul_annotation_ok(out), "get lost the NUL");
  /* write back what we read (a PUT of the object as parsed): the bytes survive the round trip */
  json_object_set_new(json_object_get(out, "data"), "k", json_string("v2"));
  json_t *out2 = NULL;
  CHECK(kube_update(c, &cm_res, ns, out, &out2) == KD_OK, "update");
  CHECK(nul_annotation_ok(out2), "update answer lost the NUL");
  json_decref(out);
  json_decref(out2);
  int seen = 0;
  struct kube_list_opts lo = {NULL, NULL, 1, NULL};
  CHECK(kube_list(c, &cm_res, ns, &lo, nul_list_fn, &seen, NULL) == KD_OK, "list");
  CHECK(seen == 1, "list: the object was %s", seen ? "changed" : "missing");
  seen = 0;
  struct kube_watch_opts wo = {NULL, "metadata.name=nul", "0", 10, &stop_flag};
  CHECK(kube_watch(c, &cm_res, ns, &wo, nul_watch_fn, &seen, NULL) == KD_OK, "watch");
  CHECK(seen == 1, "watch did not deliver the object intact");
  json_decref(cm);
  kube_client_free(c);
  printf("nul: create, get, update, list and watch keep \\u0000 and UTF-8\n");
  return 0;
}

/* ---- streamed list: the server's bytes, item by item ---- */

struct stream_check {
  const char *raw; /* the whole list as the server sent it (kubectl get --raw) */
  size_t raw_len;
  long items, with_nul, bytes;
};

static kd_rc check_item(const char *item, size_t len, void *ud) {
  struct stream_check *k = ud;
  k->items++;
  k->bytes += (long)len;
  /* every byte handed out appears, in the same order, in what the server sent */
  if (!memmem(k->raw, k->raw_len, item, len))
    return kd_fail(KD_ERR_PARSE, "item %ld (%zu bytes) is not a byte-exact part of the server's list", k->items, len);
  static const char nul[] = "\"evil\":\"a\\u0000b\"";
  if (memmem(item, len, nul, sizeof nul - 1)) {
    static const char utf8[] = "\"utf8\":\"\xc3\xa9 \xc3\xbc \xe6\x97\xa5\xe6\x9c\xac\"";
    if (!memmem(item, len, utf8, sizeof utf8 - 1)) return kd_fail(KD_ERR_PARSE, "the NUL item lost its UTF-8 annotation");
    k->with_nul++;
  }
  return KD_OK;
}

/* List NS's ConfigMaps 2 a page with kube_list_stream and compare with RAWFILE, the same list
 * fetched whole by kubectl: WANT items, each byte-exact, the \u0000 one among them. */
static int cmd_liststream(const char *ns, const char *rawfile, long want) {
  kube_client *c = connect_or_die();
  struct stream_check k = {NULL, 0, 0, 0, 0};
  char *raw = NULL, *rv = NULL;
  size_t raw_len = 0;
  CHECK(kd_read_file(rawfile, 64u << 20, &raw, &raw_len) == KD_OK, "read %s", rawfile);
  k.raw = raw;
  k.raw_len = raw_len;
  long before = kube_client_requests(c);
  struct kube_list_opts lo = {NULL, NULL, 2, NULL};
  CHECK(kube_list_stream(c, &cm_res, ns, &lo, check_item, &k, &rv) == KD_OK, "list_stream");
  long pages = kube_client_requests(c) - before;
  CHECK(k.items == want, "%ld items streamed, the server listed %ld", k.items, want);
  CHECK(k.with_nul == 1, "%ld items with the NUL annotation, expected 1", k.with_nul);
  CHECK(pages >= (want + 1) / 2, "%ld page requests for %ld items 2 a page", pages, want);
  CHECK(rv && rv[0], "no resourceVersion");
  printf("liststream: %ld items (%ld bytes) in %ld pages, each byte-exact, resourceVersion %s\n", k.items, k.bytes,
         pages, rv);
  free(rv);
  free(raw);
  kube_client_free(c);
  return 0;
}

static bool count_only(json_t *item, void *ud) {
  (void)item;
  ++*(long *)ud;
  return true;
}

static kd_rc count_raw(const char *item, size_t len, void *ud) {
  (void)item;
  ((long *)ud)[0]++;
  ((long *)ud)[1] += (long)len;
  return KD_OK;
}

/* Measure: list NS's ConfigMaps (500 a page) with kube_list (a tree per page) and with
 * kube_list_stream (raw items), best of 3 each. Prints the times; fails only on errors. */
static int cmd_listbench(const char *ns) {
  kube_client *c = connect_or_die();
  struct kube_list_opts lo = {NULL, NULL, 500, NULL};
  int64_t best_tree = INT64_MAX, best_stream = INT64_MAX;
  long n_tree = 0, raw[2] = {0, 0};
  for (int i = 0; i < 3; i++) {
    n_tree = 0;
    int64_t t0 = kd_now_ms();
    CHECK(kube_list(c, &cm_res, ns, &lo, count_only, &n_tree, NULL) == KD_OK, "list");
    int64_t t1 = kd_now_ms();
    raw[0] = raw[1] = 0;
    CHECK(kube_list_stream(c, &cm_res, ns, &lo, count_raw, raw, NULL) == KD_OK, "list_stream");
    int64_t t2 = kd_now_ms();
    if (t1 - t0 < best_tree) best_tree = t1 - t0;
    if (t2 - t1 < best_stream) best_stream = t2 - t1;
  }
  CHECK(n_tree == raw[0], "kube_list saw %ld items, kube_list_stream %ld", n_tree, raw[0]);
  printf("listbench: %ld items, %ld bytes: kube_list %lld ms, kube_list_stream %lld ms\n", n_tree, raw[1],
         (long long)best_tree, (long long)best_stream);
  kube_client_free(c);
  return 0;
}

/* ---- informer ---- */

struct inf_state {
  pthread_mutex_t lock;
  json_t *present; /* what the handlers said exists */
  long anomalies, adds, updates, deletes;
};

static void key_of(json_t *o, char *k, size_t n) {
  snprintf(k, n, "%s", json_string_value(json_object_get(json_object_get(o, "metadata"), "name")));
}

static void h_add(json_t *o, void *ud) {
  struct inf_state *s = ud;
  char k[300];
  key_of(o, k, sizeof k);
  pthread_mutex_lock(&s->lock);
  if (json_object_get(s->present, k)) s->anomalies++; /* an add for something already there */
  json_object_set_new(s->present, k, json_string(rv_of(o)));
  s->adds++;
  pthread_mutex_unlock(&s->lock);
}

static void h_update(json_t *old, json_t *o, void *ud) {
  struct inf_state *s = ud;
  char k[300];
  (void)old;
  key_of(o, k, sizeof k);
  pthread_mutex_lock(&s->lock);
  if (!json_object_get(s->present, k)) s->anomalies++; /* an update for something never added */
  json_object_set_new(s->present, k, json_string(rv_of(o)));
  s->updates++;
  pthread_mutex_unlock(&s->lock);
}

static void h_delete(json_t *o, void *ud) {
  struct inf_state *s = ud;
  char k[300];
  key_of(o, k, sizeof k);
  pthread_mutex_lock(&s->lock);
  if (!json_object_get(s->present, k)) s->anomalies++; /* a delete for something not there */
  json_object_del(s->present, k);
  s->deletes++;
  pthread_mutex_unlock(&s->lock);
}

struct inf_run {
  informer *inf;
  kd_rc rc;
};

static void *inf_thread(void *arg) {
  struct inf_run *r = arg;
  r->rc = informer_run(r->inf, &stop_flag);
  return NULL;
}

static int cmd_informer(const char *ns, const char *dump) {
  kube_client *c = connect_or_die();
  struct inf_state s = {PTHREAD_MUTEX_INITIALIZER, json_object(), 0, 0, 0, 0};
  struct informer_handlers h = {h_add, h_update, h_delete, NULL, &s};
  struct informer_opts io = {ns, NULL, 30, NULL};
  informer *inf = NULL;
  CHECK(informer_new(c, &cm_res, &io, &h, &inf) == KD_OK, "informer_new");
  struct inf_run r = {inf, KD_OK};
  pthread_t th;
  pthread_create(&th, NULL, inf_thread, &r);
  fprintf(stderr, "informer: ready\n"); /* signal handlers are in place */
  while (!stop_flag) {
    usleep(50000);
    if (!dump_flag) continue;
    dump_flag = 0;
    struct informer_stats st;
    informer_stats_get(inf, &st);
    json_t *cache = informer_list(inf), *names = json_object();
    size_t i;
    json_t *o;
    json_array_foreach(cache, i, o) {
      char k[300];
      key_of(o, k, sizeof k);
      json_object_set_new(names, k, json_string(rv_of(o)));
    }
    pthread_mutex_lock(&s.lock);
    json_t *d = json_pack("{s:O,s:O,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "cache", names, "handlers", s.present, "synced",
                          informer_synced(inf), "lists", (json_int_t)st.lists, "watches", (json_int_t)st.watches,
                          "events", (json_int_t)st.events, "anomalies", (json_int_t)s.anomalies, "adds",
                          (json_int_t)s.adds, "updates", (json_int_t)s.updates, "deletes", (json_int_t)s.deletes);
    pthread_mutex_unlock(&s.lock);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", dump);
    json_dump_file(d, tmp, JSON_INDENT(1));
    rename(tmp, dump);
    json_decref(d);
    json_decref(names);
    json_decref(cache);
  }
  pthread_join(th, NULL);
  CHECK(r.rc == KD_OK, "informer ended with %s", kd_rc_name(r.rc));
  informer_free(inf);
  json_decref(s.present);
  kube_client_free(c);
  return 0;
}

static const char *lease_id;
static void lead_start(void *ud) {
  (void)ud;
  printf("leading %s\n", lease_id);
  fflush(stdout);
}
static void lead_stop(void *ud) {
  (void)ud;
  printf("stopped %s\n", lease_id);
  fflush(stdout);
}

static int cmd_lease(const char *ns, const char *name, const char *id) {
  kube_client *c = connect_or_die();
  ensure_ns(c, ns);
  lease_id = id;
  struct lease_opts o = {ns, name, id, 0, 0, 0, NULL, NULL};
  kd_rc rc = lease_run(c, &o, lead_start, lead_stop, NULL, &stop_flag);
  kube_client_free(c);
  if (rc != KD_OK) fprintf(stderr, "kube-e2e lease: %s\n", kd_errmsg());
  return rc == KD_OK ? 0 : 1;
}

static int cmd_events(const char *ns) {
  kube_client *c = connect_or_die();
  ensure_ns(c, ns);
  events *ev = NULL;
  json_t *cm = json_pack("{s:s,s:s,s:{s:s,s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", "evtarget",
                         "namespace", ns), *out = NULL;
  kd_rc rc = kube_create(c, &cm_res, ns, cm, &out);
  CHECK(rc == KD_OK || rc == KD_ERR_CONFLICT, "create target");
  if (rc == KD_ERR_CONFLICT) CHECK(kube_get(c, &cm_res, ns, "evtarget", &out) == KD_OK, "get target");
  json_object_set_new(out, "apiVersion", json_string("v1"));
  json_object_set_new(out, "kind", json_string("ConfigMap"));
  CHECK(events_new(c, "kcmdr-e2e", &ev) == KD_OK, "events_new");
  for (int i = 0; i < 3; i++) CHECK(events_emit(ev, out, "Warning", "BadSchedule", "cron '%s' is invalid", "x y") == KD_OK, "emit");
  CHECK(events_emit(ev, out, "Normal", "BackupCreated", "created backup %s", "b1") == KD_OK, "emit other");
  events_free(ev);
  json_decref(out);
  json_decref(cm);
  kube_client_free(c);
  printf("events: ok\n");
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGUSR1, on_signal);
  kd_log_setup(getenv("KUBE_E2E_DEBUG") ? KD_LOG_DEBUG : KD_LOG_WARN, false);
  if (argc >= 2 && strcmp(argv[1], "crud") == 0) return cmd_crud();
  if (argc >= 4 && strcmp(argv[1], "paging") == 0) return cmd_paging(argv[2], atoi(argv[3]));
  if (argc >= 3 && strcmp(argv[1], "conflict") == 0) return cmd_conflict(argv[2]);
  if (argc >= 4 && strcmp(argv[1], "informer") == 0) return cmd_informer(argv[2], argv[3]);
  if (argc >= 5 && strcmp(argv[1], "lease") == 0) return cmd_lease(argv[2], argv[3], argv[4]);
  if (argc >= 3 && strcmp(argv[1], "events") == 0) return cmd_events(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "nul") == 0) return cmd_nul(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "listbench") == 0) return cmd_listbench(argv[2]);
  if (argc >= 5 && strcmp(argv[1], "liststream") == 0) return cmd_liststream(argv[2], argv[3], atol(argv[4]));
  fprintf(stderr, "usage: kube-e2e crud | paging NS N | conflict NS | informer NS DUMP | lease NS NAME ID | events NS | nul NS | liststream NS RAWFILE N | listbench NS\n");
  return 2;
}
