/* test_kube.c — the client's pure parts (URL paths and query encoding, backoff bounds, the
 * watch event splitter fed with every possible chunk boundary, NUL-safe events) and the client
 * on a real HTTPS server (tsrv, test_http.c): which requests are re-sent, per-request options,
 * long tokens, byte-exact lists and watches, and exec plugins that never block requests. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube.h"
#include "tests.h"
#include "tsrv.h"

static void paths(void **state) {
  (void)state;
  char p[KUBE_MAX_PATH];
  struct kube_res core = {"", "v1", "secrets", "Secret", true};
  struct kube_res mb = {"k0rdent.mirantis.com", "v1beta1", "managementbackups", "ManagementBackup", false};
  assert_int_equal(kube_path(&core, "kcm-system", "s1", NULL, NULL, p), KD_OK);
  assert_string_equal(p, "/api/v1/namespaces/kcm-system/secrets/s1");
  assert_int_equal(kube_path(&core, NULL, NULL, NULL, "limit=5", p), KD_OK);
  assert_string_equal(p, "/api/v1/secrets?limit=5");
  /* a namespace given for a cluster-scoped resource is ignored */
  assert_int_equal(kube_path(&mb, "kcm-system", "kcm", "status", NULL, p), KD_OK);
  assert_string_equal(p, "/apis/k0rdent.mirantis.com/v1beta1/managementbackups/kcm/status");
  /* tried: names that would change the path */
  assert_int_equal(kube_path(&core, "ns", "../x", NULL, NULL, p), KD_ERR_INVALID);
  assert_int_equal(kube_path(&core, "ns", "a?b", NULL, NULL, p), KD_ERR_INVALID);
  assert_int_equal(kube_path(&core, "", "a", NULL, NULL, p), KD_ERR_INVALID);
  char longname[KUBE_MAX_PATH + 10];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(kube_path(&core, "ns", longname, NULL, NULL, p), KD_ERR_TOOBIG);
}

static void query_escape(void **state) {
  (void)state;
  char out[256];
  assert_int_equal(kube_query_escape("k0rdent.mirantis.com/component=kcm", out, sizeof out), KD_OK);
  assert_string_equal(out, "k0rdent.mirantis.com%2Fcomponent%3Dkcm");
  assert_int_equal(kube_query_escape("a in (x,y),!b", out, sizeof out), KD_OK);
  assert_string_equal(out, "a%20in%20%28x%2Cy%29%2C%21b");
  assert_int_equal(kube_query_escape("~-_.", out, sizeof out), KD_OK);
  assert_string_equal(out, "~-_.");
  /* tried: an output buffer too small by one */
  assert_int_equal(kube_query_escape("a/b", out, 5), KD_ERR_TOOBIG);
  assert_int_equal(kube_query_escape("a/b", out, 6), KD_OK);
}

static void backoff_bounds(void **state) {
  (void)state;
  for (unsigned seed = 0; seed < 200; seed++) {
    int64_t prev_max = 0;
    for (int a = 0; a < 40; a++) {
      int64_t d = kube_backoff_ms(a, 200, 10000, seed);
      int64_t full = 200;
      for (int i = 0; i < a && full < 10000; i++) full *= 2;
      if (full > 10000) full = 10000;
      assert_true(d >= full / 2 && d <= full);
      assert_true(d <= 10000 && d >= 100);
      if (full > prev_max) prev_max = full;
    }
  }
}

struct seen {
  char log[4096];
  int n;
  int stop_after;
};

static bool record(enum kube_event_type t, json_t *obj, void *ud) {
  struct seen *s = ud;
  static const char *names[] = {"A", "M", "D", "B"};
  const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  size_t len = strlen(s->log);
  snprintf(s->log + len, sizeof s->log - len, "%s:%s;", names[t], name ? name : "-");
  s->n++;
  return s->stop_after == 0 || s->n < s->stop_after;
}

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"10\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"11\"},\"data\":{\"x\":\"line\\nbreak\"}}}\r\n"
    "\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"12\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"\xc3\xa9\",\"resourceVersion\":\"13\"}}}\n";
static const char want[] = "A:a;M:b;B:-;D:\xc3\xa9;";

static void splitter_every_boundary(void **state) {
  (void)state;
  size_t n = strlen(stream);
  /* every split into two chunks, and every split into three chunks at (i, j) */
  for (size_t i = 0; i <= n; i++) {
    for (size_t j = i; j <= n; j += (i % 7 == 0 ? 1 : 13)) {
      struct seen s = {"", 0, 0};
      struct kube_watch_splitter sp;
      kube_watch_splitter_init(&sp, record, &s);
      assert_int_equal(kube_watch_splitter_feed(&sp, stream, i), KD_OK);
      assert_int_equal(kube_watch_splitter_feed(&sp, stream + i, j - i), KD_OK);
      assert_int_equal(kube_watch_splitter_feed(&sp, stream + j, n - j), KD_OK);
      if (strcmp(s.log, want) != 0) fail_msg("split at %zu,%zu: got %s", i, j, s.log);
      assert_string_equal(sp.last_rv, "13");
      kube_watch_splitter_free(&sp);
    }
  }
  /* byte by byte */
  struct seen s = {"", 0, 0};
  struct kube_watch_splitter sp;
  kube_watch_splitter_init(&sp, record, &s);
  for (size_t i = 0; i < n; i++) assert_int_equal(kube_watch_splitter_feed(&sp, stream + i, 1), KD_OK);
  assert_string_equal(s.log, want);
  kube_watch_splitter_free(&sp);
}

static void splitter_stops_and_errors(void **state) {
  (void)state;
  struct seen s = {"", 0, 2};
  struct kube_watch_splitter sp;
  kube_watch_splitter_init(&sp, record, &s);
  /* the handler asks to stop after two events: the rest is ignored */
  assert_int_equal(kube_watch_splitter_feed(&sp, stream, strlen(stream)), KD_OK);
  assert_true(sp.stopped);
  assert_string_equal(s.log, "A:a;M:b;");
  kube_watch_splitter_free(&sp);

  /* tried: a 410 ERROR event -> KD_ERR_GONE with the code kept */
  const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"too old resource version\"}}\n";
  kube_watch_splitter_init(&sp, record, &s);
  assert_int_equal(kube_watch_splitter_feed(&sp, gone, strlen(gone)), KD_ERR_GONE);
  assert_int_equal(sp.error_code, 410);
  assert_non_null(strstr(kd_errmsg(), "too old"));
  kube_watch_splitter_free(&sp);

  /* tried: a line that is not JSON, an unknown type, an event with no object */
  const char *bad[] = {"not json\n", "{\"type\":\"WHAT\",\"object\":{}}\n", "{\"type\":\"ADDED\"}\n"};
  for (int i = 0; i < 3; i++) {
    kube_watch_splitter_init(&sp, record, &s);
    assert_int_equal(kube_watch_splitter_feed(&sp, bad[i], strlen(bad[i])), KD_ERR_PARSE);
    kube_watch_splitter_free(&sp);
  }

  /* tried: an event line larger than the cap, without a newline -> refused, not buffered forever */
  size_t big = KUBE_MAX_EVENT / 4;
  char *chunk = malloc(big);
  assert_non_null(chunk);
  memset(chunk, 'x', big);
  kube_watch_splitter_init(&sp, record, &s);
  kd_rc rc = KD_OK;
  for (int i = 0; i < 5 && rc == KD_OK; i++) rc = kube_watch_splitter_feed(&sp, chunk, big);
  assert_int_equal(rc, KD_ERR_TOOBIG);
  kube_watch_splitter_free(&sp);
  free(chunk);
}

/* ---- server data with NUL and non-ASCII is data ---- */

/* "a\u0000b" and "é" as the server writes them; json_dumps must give back exactly these bytes. */
static const char nul_obj[] =
    "{\"metadata\":{\"name\":\"evil\",\"resourceVersion\":\"7\",\"annotations\":{\"evil\":\"a\\u0000b\",\"utf8\":\"\xc3\xa9\"}}}";

/* Check obj's annotations hold the three bytes a,NUL,b and the UTF-8 é, and that serialising it
 * writes them back as the server sent them. */
static void assert_nul_annotation(json_t *obj) {
  json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
  json_t *evil = json_object_get(ann, "evil");
  assert_int_equal(json_string_length(evil), 3);
  assert_memory_equal(json_string_value(evil), "a\0b", 3);
  char *out = json_dumps(obj, JSON_COMPACT);
  assert_non_null(out);
  assert_non_null(strstr(out, "\"evil\":\"a\\u0000b\""));
  assert_non_null(strstr(out, "\"utf8\":\"\xc3\xa9\""));
  free(out);
}

static bool keep_event(enum kube_event_type t, json_t *obj, void *ud) {
  (void)t;
  json_t **slot = ud;
  json_decref(*slot);
  *slot = json_incref(obj);
  return true;
}

static void watch_event_with_nul(void **state) {
  (void)state;
  /* tried: an annotation holding \u0000 (the API server accepts it) must not stop a watch */
  char line[512];
  snprintf(line, sizeof line, "{\"type\":\"MODIFIED\",\"object\":%s}\n", nul_obj);
  json_t *got = NULL;
  struct kube_watch_splitter sp;
  kube_watch_splitter_init(&sp, keep_event, &got);
  assert_int_equal(kube_watch_splitter_feed(&sp, line, strlen(line)), KD_OK);
  assert_non_null(got);
  assert_nul_annotation(got);
  assert_string_equal(sp.last_rv, "7");
  kube_watch_splitter_free(&sp);
  json_decref(got);
}

/* ---- the client on a real HTTPS server ---- */

static struct tsrv *ksrv;
static char kdir[64];

static int kube_setup(void **state) {
  (void)state;
  strcpy(kdir, "/tmp/kcmdr-kube-XXXXXX");
  if (!mkdtemp(kdir)) return -1;
  ksrv = tsrv_start(true);
  return ksrv ? 0 : -1;
}

static int kube_teardown(void **state) {
  (void)state;
  tsrv_stop(ksrv);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", kdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* A client for the test server with the given user mapping (flow style) and options. */
static kube_client *client_for(const char *user, const struct kube_client_opts *o) {
  char *ca = kd_base64_encode((const unsigned char *)tsrv_cert_pem(), strlen(tsrv_cert_pem()));
  size_t n = strlen(ca) + strlen(user) + 512;
  char *cfg = malloc(n);
  assert_non_null(cfg);
  snprintf(cfg, n,
           "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u, namespace: ns}\nclusters:\n"
           "- name: c\n  cluster: {server: 'https://127.0.0.1:%d', certificate-authority-data: %s}\nusers:\n- name: u\n"
           "  user: %s\n",
           tsrv_port(ksrv), ca, user);
  const char *texts[] = {cfg}, *names[] = {"t.yaml"}, *dirs[] = {kdir};
  struct kubecfg *c = NULL;
  kube_client *k = NULL;
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  assert_int_equal(kube_client_new(c, o, &k), KD_OK);
  free(cfg);
  free(ca);
  return k;
}

static const struct kube_res cm = {"", "v1", "configmaps", "ConfigMap", true};
#define CM_LIST "/api/v1/namespaces/ns/configmaps"
#define CM_ONE "/api/v1/namespaces/ns/configmaps/one"

static void create_and_patch_never_resent_after_5xx(void **state) {
  (void)state;
  struct kube_client_opts o = {.max_retries = 2};
  kube_client *k = client_for("{token: t}", &o);
  json_t *obj = json_pack("{s:{s:s}}", "metadata", "name", "one"), *out = NULL;
  long codes[] = {500, 503, 504};
  for (size_t i = 0; i < KD_ARRAY_LEN(codes); i++) {
    /* tried: the create was committed and then answered 5xx: sending it again would make a second
     * object (or a 409 the caller mistakes for its own) */
    tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = (int)codes[i]});
    long before = kube_client_requests(k);
    assert_int_equal(kube_create(k, &cm, "ns", obj, &out), KD_ERR_HTTP);
    assert_int_equal(tsrv_hits(ksrv, CM_LIST), 1);
    assert_int_equal(kube_client_requests(k) - before, 1);
    assert_non_null(strstr(kd_errmsg(), "scripted"));
    /* tried: a JSON patch with "add" ops applied twice */
    tsrv_add(ksrv, CM_ONE, &(struct tsrv_route){.status = (int)codes[i]});
    json_t *patch = json_pack("[{s:s,s:s,s:i}]", "op", "add", "path", "/data/x", "value", 1);
    struct kube_patch_opts po = {KUBE_PATCH_JSON, NULL, false, NULL};
    assert_int_equal(kube_patch(k, &cm, "ns", "one", patch, &po, &out), KD_ERR_HTTP);
    assert_int_equal(tsrv_hits(ksrv, CM_ONE), 1);
    json_decref(patch);
  }
  /* 429: the server did not process it, so the create goes again and succeeds */
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 429, .fail_n = 1, .body = "{\"kind\":\"ConfigMap\"}", .body_len = 20});
  assert_int_equal(kube_create(k, &cm, "ns", obj, &out), KD_OK);
  assert_int_equal(tsrv_hits(ksrv, CM_LIST), 2);
  assert_string_equal(json_string_value(json_object_get(out, "kind")), "ConfigMap");
  json_decref(out);
  /* a GET is repeated after 5xx */
  tsrv_add(ksrv, CM_ONE, &(struct tsrv_route){.status = 503, .fail_n = 2, .body = "{}", .body_len = 2});
  assert_int_equal(kube_get(k, &cm, "ns", "one", &out), KD_OK);
  assert_int_equal(tsrv_hits(ksrv, CM_ONE), 3);
  json_decref(out);
  json_decref(obj);
  kube_client_free(k);
}

static void per_request_options(void **state) {
  (void)state;
  kube_client *k = client_for("{token: t}", NULL);
  json_t *out = NULL;
  /* the lease renewal's kind of request: no retry at all, its own short timeout */
  tsrv_add(ksrv, CM_ONE, &(struct tsrv_route){.status = 503, .fail_n = 1, .body = "{}", .body_len = 2});
  /* (the first request's timeout is generous: under valgrind beside a loaded CI run the TLS
   * handshake alone outlasted 300 ms; what it proves is the single attempt) */
  struct kube_req_opts ro = {.timeout_ms = 10000, .max_retries = -1, .priority = true};
  assert_int_equal(kube_get_ex(k, &cm, "ns", "one", &ro, &out), KD_ERR_HTTP);
  assert_int_equal(tsrv_hits(ksrv, CM_ONE), 1);
  /* its own short timeout: given up well before the server's late answer */
  ro.timeout_ms = 300;
  tsrv_add(ksrv, CM_ONE, &(struct tsrv_route){.status = 200, .sleep_ms = 1500, .body = "{}", .body_len = 2});
  int64_t t0 = kd_now_ms();
  json_t *obj = json_pack("{s:{s:s,s:s}}", "metadata", "name", "one", "resourceVersion", "1");
  assert_int_equal(kube_update_ex(k, &cm, "ns", obj, &ro, &out), KD_ERR_TIMEOUT);
  assert_true(kd_now_ms() - t0 < 1400);
  assert_int_equal(tsrv_hits(ksrv, CM_ONE), 1);
  /* a cancel flag already set: nothing is sent */
  volatile int stop = 1;
  ro.cancel = &stop;
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 201, .body = "{}", .body_len = 2});
  assert_int_equal(kube_create_ex(k, &cm, "ns", obj, &ro, &out), KD_ERR_CANCELLED);
  assert_int_equal(tsrv_hits(ksrv, CM_LIST), 0);
  json_decref(obj);
  kube_client_free(k);
}

static void long_tokens_sent_whole(void **state) {
  (void)state;
  size_t tl = 40 * 1024;
  char *user = malloc(tl + 32), *tok = malloc(tl + 8);
  assert_true(user && tok);
  memcpy(tok, "Bearer ", 7);
  for (size_t i = 0; i < tl; i++) tok[7 + i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789-_"[i % 48];
  tok[7 + tl] = '\0';
  snprintf(user, tl + 32, "{token: %s}", tok + 7);
  kube_client *k = client_for(user, NULL);
  tsrv_add(ksrv, CM_ONE, &(struct tsrv_route){.status = 200, .body = "{}", .body_len = 2});
  json_t *out = NULL;
  /* tried: an EKS/OIDC-sized token; the old 8 KiB header buffer cut it silently */
  assert_int_equal(kube_get(k, &cm, "ns", "one", &out), KD_OK);
  json_decref(out);
  struct tsrv_last l = tsrv_last(ksrv);
  assert_int_equal(l.auth_len, tl + 7);
  assert_true(l.auth_fnv == tsrv_fnv(tok, tl + 7));
  kube_client_free(k);
  /* tried: a token past the 64 KiB cap: a clear error, nothing sent, no token in the message */
  free(user);
  user = malloc(80 * 1024);
  assert_non_null(user);
  memcpy(user, "{token: ", 8);
  memset(user + 8, 'q', 70 * 1024);
  strcpy(user + 8 + 70 * 1024, "}");
  k = client_for(user, NULL);
  long before = tsrv_last(ksrv).requests;
  assert_int_equal(kube_get(k, &cm, "ns", "one", &out), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), "Authorization"));
  assert_null(strstr(kd_errmsg(), "qqqq"));
  assert_int_equal(tsrv_last(ksrv).requests, before);
  kube_client_free(k);
  free(user);
  free(tok);
}

static bool keep_item(json_t *item, void *ud) {
  json_t **slot = ud;
  json_decref(*slot);
  *slot = json_incref(item);
  return true;
}

static void list_and_watch_keep_nul(void **state) {
  (void)state;
  kube_client *k = client_for("{token: t}", NULL);
  char page[512];
  /* tried: a list page whose item holds \u0000: the informer's list used to fail forever on it */
  int n = snprintf(page, sizeof page, "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"9\"},\"items\":[%s]}",
                   nul_obj);
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 200, .body = page, .body_len = (size_t)n});
  json_t *got = NULL;
  char *rv = NULL;
  assert_int_equal(kube_list(k, &cm, "ns", NULL, keep_item, &got, &rv), KD_OK);
  assert_string_equal(rv, "9");
  assert_non_null(got);
  assert_nul_annotation(got);
  json_decref(got);
  free(rv);
  /* and the same object through a real watch stream */
  n = snprintf(page, sizeof page, "{\"type\":\"ADDED\",\"object\":%s}\n", nul_obj);
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 200, .body = page, .body_len = (size_t)n});
  got = NULL;
  assert_int_equal(kube_watch(k, &cm, "ns", NULL, keep_event, &got, &rv), KD_OK);
  assert_non_null(got);
  assert_nul_annotation(got);
  assert_string_equal(rv, "7");
  json_decref(got);
  free(rv);
  kube_client_free(k);
}

struct timed_get {
  kube_client *k;
  int64_t took;
  kd_rc rc;
};

static void *timed_get(void *arg) {
  struct timed_get *g = arg;
  json_t *out = NULL;
  int64_t t0 = kd_now_ms();
  g->rc = kube_get(g->k, &cm, "ns", "one", &out);
  g->took = kd_now_ms() - t0;
  json_decref(out);
  return NULL;
}

static void exec_plugin_never_blocks_requests(void **state) {
  (void)state;
  char script[2048], user[512], path[128];
  /* run 1: a token that is due for renewal at once (valid 5 s, renewed 10 s early); later runs
   * take 3 s and give a long-lived one */
  snprintf(script, sizeof script,
           "#!/bin/sh\necho run >> %s/runs\nn=$(wc -l < %s/runs)\n"
           "if [ \"$n\" -gt 1 ]; then sleep 3; exp=$(date -u -d @$(( $(date +%%s) + 3600 )) +%%Y-%%m-%%dT%%H:%%M:%%SZ);\n"
           "else exp=$(date -u -d @$(( $(date +%%s) + 5 )) +%%Y-%%m-%%dT%%H:%%M:%%SZ); fi\n"
           "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
           "\"status\":{\"token\":\"tok-%%s\",\"expirationTimestamp\":\"%%s\"}}' \"$n\" \"$exp\"\n",
           kdir, kdir);
  snprintf(path, sizeof path, "%s/slow-plugin.sh", kdir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(script, f);
  fclose(f);
  chmod(path, 0755);
  snprintf(user, sizeof user, "{exec: {apiVersion: client.authentication.k8s.io/v1, command: %s}}", path);
  kube_client *k = client_for(user, NULL);
  tsrv_add(ksrv, CM_ONE, &(struct tsrv_route){.status = 200, .body = "{}", .body_len = 2});
  /* first request: no credentials yet, so it waits for run 1 */
  struct timed_get g = {k, 0, KD_OK};
  timed_get(&g);
  assert_int_equal(g.rc, KD_OK);
  assert_true(tsrv_last(ksrv).auth_fnv == tsrv_fnv("Bearer tok-1", 12));
  /* second request: the token is due, run 2 starts (3 s) on the refresher thread; this request
   * and a concurrent one go on at once with tok-1. Before, the plugin ran under the client's
   * one mutex and every thread (lease renewals too) waited for it. */
  timed_get(&g);
  assert_int_equal(g.rc, KD_OK);
  assert_true(g.took < 1000);
  usleep(200 * 1000); /* run 2 is running now */
  pthread_t th;
  struct timed_get g2 = {k, 0, KD_OK};
  pthread_create(&th, NULL, timed_get, &g2);
  pthread_join(th, NULL);
  assert_int_equal(g2.rc, KD_OK);
  assert_true(g2.took < 1000);
  assert_true(tsrv_last(ksrv).auth_fnv == tsrv_fnv("Bearer tok-1", 12));
  char *tok = NULL;
  int64_t t0 = kd_now_ms();
  assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
  assert_true(kd_now_ms() - t0 < 500);
  assert_string_equal(tok, "tok-1");
  free(tok);
  /* once run 2 is done, requests send its token */
  for (int i = 0; i < 50; i++) {
    assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
    bool done = strcmp(tok, "tok-2") == 0;
    free(tok);
    if (done) break;
    usleep(100 * 1000);
  }
  timed_get(&g);
  assert_int_equal(g.rc, KD_OK);
  assert_true(tsrv_last(ksrv).auth_fnv == tsrv_fnv("Bearer tok-2", 12));
  kube_client_free(k);
}

struct raw_items {
  kd_buf all;   /* every item's bytes, each followed by '\n' */
  int n, fail_at;
};

static kd_rc keep_raw(const char *item, size_t len, void *ud) {
  struct raw_items *r = ud;
  if (++r->n == r->fail_at) return kd_fail(KD_ERR_IO, "consumer gave up at item %d", r->n);
  kd_rc rc = kd_buf_add(&r->all, item, len);
  return rc ? rc : kd_buf_add(&r->all, "\n", 1);
}

static void list_stream_hands_out_server_bytes(void **state) {
  (void)state;
  kube_client *k = client_for("{token: t}", NULL);
  /* the server's bytes, NUL escape, non-ASCII and number spellings included; two pages */
  static const char item_a[] = "{\"metadata\":{\"name\":\"a\",\"annotations\":{\"evil\":\"a\\u0000b\",\"utf8\":\"\xc3\xa9\xe6\x97\xa5\"}},\"n\":1.50e+3}";
  static const char item_b[] = "{\"metadata\":{\"name\":\"b\"},\"s\":\"\\\"]}\\\\\"}";
  static const char item_c[] = "{\"metadata\":{\"name\":\"c\"},\"x\":[1,{\"y\":null}]}";
  char p1[512], p2[512], want[1024];
  int n1 = snprintf(p1, sizeof p1,
                    "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"5\",\"continue\":\"tok\"},"
                    "\"items\":[%s,\n  %s]}\n", item_a, item_b);
  int n2 = snprintf(p2, sizeof p2, "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"5\"},\"items\":[%s]}", item_c);
  snprintf(want, sizeof want, "%s\n%s\n%s\n", item_a, item_b, item_c);
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 200, .fail_n = 1, .body = p1, .body_len = (size_t)n1,
                                                .later_body = p2, .later_body_len = (size_t)n2});
  struct raw_items r = {KD_BUF_INIT(1 << 20), 0, 0};
  char *rv = NULL;
  struct kube_list_opts lo = {NULL, NULL, 2, NULL};
  assert_int_equal(kube_list_stream(k, &cm, "ns", &lo, keep_raw, &r, &rv), KD_OK);
  assert_int_equal(tsrv_hits(ksrv, CM_LIST), 2);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.all.len, strlen(want));
  assert_memory_equal(r.all.data, want, strlen(want)); /* exactly the server's bytes */
  assert_string_equal(rv, "5");
  free(rv);
  rv = NULL;
  /* tried: the continue token expired between pages -> KD_ERR_GONE for the caller to start over */
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 200, .fail_n = 1, .body = p1, .body_len = (size_t)n1,
                                                .later_status = 410});
  kd_buf_reset(&r.all);
  r.n = 0;
  assert_int_equal(kube_list_stream(k, &cm, "ns", &lo, keep_raw, &r, &rv), KD_ERR_GONE);
  assert_null(rv);
  /* tried: the consumer fails: its code and message come back, no page is fetched again */
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 200, .fail_n = 1, .body = p1, .body_len = (size_t)n1,
                                                .later_body = p2, .later_body_len = (size_t)n2});
  r.n = 0;
  r.fail_at = 2;
  assert_int_equal(kube_list_stream(k, &cm, "ns", &lo, keep_raw, &r, &rv), KD_ERR_IO);
  assert_string_equal(kd_errmsg(), "consumer gave up at item 2");
  assert_int_equal(tsrv_hits(ksrv, CM_LIST), 1);
  /* tried: a page cut short, and one that is not JSON */
  r.fail_at = 0;
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 200, .body = p1, .body_len = (size_t)n1 - 5});
  assert_int_equal(kube_list_stream(k, &cm, "ns", &lo, keep_raw, &r, &rv), KD_ERR_PARSE);
  tsrv_add(ksrv, CM_LIST, &(struct tsrv_route){.status = 200, .body = "<html>", .body_len = 6});
  assert_int_equal(kube_list_stream(k, &cm, "ns", &lo, keep_raw, &r, &rv), KD_ERR_PARSE);
  kd_buf_free(&r.all);
  kube_client_free(k);
}

int test_kube(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(paths),
      cmocka_unit_test(query_escape),
      cmocka_unit_test(backoff_bounds),
      cmocka_unit_test(splitter_every_boundary),
      cmocka_unit_test(splitter_stops_and_errors),
      cmocka_unit_test(watch_event_with_nul),
      cmocka_unit_test(create_and_patch_never_resent_after_5xx),
      cmocka_unit_test(per_request_options),
      cmocka_unit_test(long_tokens_sent_whole),
      cmocka_unit_test(list_and_watch_keep_nul),
      cmocka_unit_test(exec_plugin_never_blocks_requests),
      cmocka_unit_test(list_stream_hands_out_server_bytes),
  };
  return cmocka_run_group_tests_name("kube", tests, kube_setup, kube_teardown);
}
