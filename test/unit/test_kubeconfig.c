/* test_kubeconfig.c — kubeconfig merging as kubectl does it, every auth form, exec plugins,
 * in-cluster config, and one-line errors that name the file and the key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube.h"
#include "kubeconfig.h"
#include "tests.h"

static char dir[64];

static void write_file(const char *name, const char *text, int mode) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  chmod(p, (mode_t)mode);
}

static int setup(void **state) {
  (void)state;
  strcpy(dir, "/tmp/kcmdr-kubecfg-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *A =
    "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
    "clusters:\n- name: c1\n  cluster:\n    server: https://one.example:6443/\n    certificate-authority-data: Q0EtREFUQQ==\n"
    "    tls-server-name: api.internal\n    proxy-url: http://proxy:3128\n"
    "users:\n- name: u1\n  user:\n    token: tok-a\n"
    "- name: certuser\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n"
    "contexts:\n- name: a\n  context: {cluster: c1, user: u1, namespace: team-a}\n"
    "- name: cert\n  context: {cluster: c1, user: certuser}\n";
static const char *B =
    "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
    "clusters:\n- name: c1\n  cluster: {server: https://shadowed.example}\n"
    "- name: c2\n  cluster: {server: https://two.example, certificate-authority: ca.pem}\n"
    "users:\n- name: u1\n  user: {token: shadowed}\n- name: u2\n  user: {tokenFile: tok.txt, username: x, password: y}\n"
    "contexts:\n- name: b\n  context: {cluster: c2, user: u2}\n";

static void merge_first_file_wins(void **state) {
  (void)state;
  const char *texts[] = {A, B}, *names[] = {"a.yaml", "b.yaml"}, *dirs[] = {dir, dir};
  struct kubecfg *c = NULL;
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 2, NULL, &c), KD_OK);
  /* current-context from the first file that sets it; c1 and u1 from the first file */
  assert_string_equal(c->server, "https://one.example:6443");
  assert_string_equal(c->token, "tok-a");
  assert_string_equal(c->namespace, "team-a");
  assert_int_equal(c->ca_pem_len, 7);
  assert_memory_equal(c->ca_pem, "CA-DATA", 7);
  assert_string_equal(c->tls_server_name, "api.internal");
  assert_string_equal(c->proxy_url, "http://proxy:3128");
  kubecfg_free(c);
  /* --context b picks the second file's context, whose CA path is relative to that file */
  write_file("ca.pem", "PEM", 0644);
  struct kubecfg_opts o = {.context = "b", .namespace = "override"};
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 2, &o, &c), KD_OK);
  assert_string_equal(c->server, "https://two.example");
  assert_false(c->insecure);
  assert_memory_equal(c->ca_pem, "PEM", 3);
  assert_string_equal(c->namespace, "override");
  char want[128];
  snprintf(want, sizeof want, "%s/tok.txt", dir);
  assert_string_equal(c->token_file, want);
  assert_string_equal(c->username, "x");
  kubecfg_free(c);
  o = (struct kubecfg_opts){.context = "cert"};
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 2, &o, &c), KD_OK);
  assert_memory_equal(c->cert_pem, "CERT", 4);
  assert_memory_equal(c->key_pem, "KEY", 3);
  assert_string_equal(c->namespace, "default");
  kubecfg_free(c);
}

static void kubeconfig_env_list(void **state) {
  (void)state;
  write_file("a.yaml", A, 0600);
  write_file("b.yaml", B, 0600);
  char env[512];
  /* a missing file in the list is skipped, as kubectl does */
  snprintf(env, sizeof env, "%s/missing.yaml:%s/b.yaml:%s/a.yaml", dir, dir, dir);
  setenv("KUBECONFIG", env, 1);
  struct kubecfg *c = NULL;
  assert_int_equal(kubecfg_load(NULL, &c), KD_OK);
  assert_string_equal(c->server, "https://two.example"); /* b first now: its current-context wins */
  assert_non_null(strstr(c->source, "b.yaml"));
  kubecfg_free(c);
  struct kubecfg_opts o = {.kubeconfig = "/nonexistent/kubeconfig"};
  /* tried: --kubeconfig naming a file that does not exist */
  assert_int_equal(kubecfg_load(&o, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "/nonexistent/kubeconfig"));
  unsetenv("KUBECONFIG");
}

static void errors_name_file_and_key(void **state) {
  (void)state;
  struct kubecfg *c = NULL;
  struct {
    const char *text, *want;
  } cases[] = {
      {"kind: Config\ncurrent-context: x\n", "context 'x' is not defined"},
      {"kind: Config\n", "no current-context"},
      {"kind: Secret\n", "expected Config"},
      {"- a\n- b\n", "top level must be a mapping"},
      {"clusters: {}\n", "key clusters must be a list"},
      {"current-context: x\ncontexts:\n- name: x\n  context: {cluster: nope}\n", "cluster 'nope' is not defined"},
      {"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {}\n",
       "key server is missing"},
      {"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {server: ftp://x}\n",
       "must start with https://"},
      {"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {server: https://x, "
       "certificate-authority-data: '@@'}\n",
       "certificate-authority-data is not valid base64"},
      {"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: "
       "https://x}\nusers:\n- name: u\n  user: {client-certificate-data: QQ==}\n",
       "must be given together"},
      {"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: "
       "https://x}\nusers:\n- name: u\n  user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1alpha1}}\n",
       "apiVersion"},
      {"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: "
       "https://x}\nusers:\n- name: u\n  user: {client-key: missing.key, client-certificate: missing.crt}\n",
       "missing.crt"},
      {"a: [\n", "YAML error at line"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *texts[] = {cases[i].text}, *names[] = {"bad.yaml"}, *dirs[] = {dir};
    /* tried: each malformed kubeconfig above; each gives KD_ERR_CONFIG and names the file */
    assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_ERR_CONFIG);
    if (!strstr(kd_errmsg(), cases[i].want) || !strstr(kd_errmsg(), "bad.yaml"))
      fail_msg("case %zu: message '%s' lacks '%s'", i, kd_errmsg(), cases[i].want);
  }
}

static void exec_plugin(void **state) {
  (void)state;
  char script[4096], cfg[2048];
  /* the plugin counts its runs, checks it was told the API version, and gives a short-lived token */
  snprintf(script, sizeof script,
           "#!/bin/sh\n"
           "echo run >> %s/runs\n"
           "case \"$KUBERNETES_EXEC_INFO\" in *client.authentication.k8s.io/v1*) ;; *) exit 3;; esac\n"
           "n=$(wc -l < %s/runs)\n"
           "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
           "\"status\":{\"token\":\"tok-%%s-%%s\",\"expirationTimestamp\":\"%%s\"}}' \"$1\" \"$n\" \"$EXPIRY\"\n",
           dir, dir);
  write_file("plugin.sh", script, 0755);
  snprintf(cfg, sizeof cfg,
           "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n"
           "  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user:\n    exec:\n"
           "      apiVersion: client.authentication.k8s.io/v1\n      command: %s/plugin.sh\n      args: [arg1]\n"
           "      env: [{name: EXPIRY, value: '2099-01-01T00:00:00Z'}]\n",
           dir);
  const char *texts[] = {cfg}, *names[] = {"exec.yaml"}, *dirs[] = {dir};
  struct kubecfg *c = NULL;
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  kube_client *k = NULL;
  assert_int_equal(kube_client_new(c, NULL, &k), KD_OK);
  char *tok = NULL;
  assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
  assert_string_equal(tok, "tok-arg1-1");
  free(tok);
  /* cached until it expires */
  assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
  assert_string_equal(tok, "tok-arg1-1");
  free(tok);
  /* a 401 forces a new run */
  assert_int_equal(kube_client_token(k, true, &tok), KD_OK);
  assert_string_equal(tok, "tok-arg1-2");
  free(tok);
  kube_client_free(k);

  /* an already-expired credential is fetched again on every use */
  snprintf(cfg, sizeof cfg,
           "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n"
           "  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user:\n    exec:\n"
           "      apiVersion: client.authentication.k8s.io/v1beta1\n      command: %s/plugin.sh\n      args: [b]\n"
           "      env: [{name: EXPIRY, value: '2001-01-01T00:00:00Z'}]\n",
           dir);
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  assert_int_equal(kube_client_new(c, NULL, &k), KD_OK);
  assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
  assert_string_equal(tok, "tok-b-3");
  free(tok);
  assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
  assert_string_equal(tok, "tok-b-4");
  free(tok);
  kube_client_free(k);

  /* tried: a plugin that fails, and one that prints garbage */
  write_file("bad.sh", "#!/bin/sh\necho oops; exit 7\n", 0755);
  write_file("garbage.sh", "#!/bin/sh\necho '{\"kind\":\"Nope\"}'\n", 0755);
  const char *plugins[] = {"bad.sh", "garbage.sh"};
  kd_rc want[] = {KD_ERR_UNAUTHORIZED, KD_ERR_PARSE};
  for (int i = 0; i < 2; i++) {
    snprintf(cfg, sizeof cfg,
             "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n"
             "  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user:\n    exec:\n"
             "      apiVersion: client.authentication.k8s.io/v1\n      command: %s/%s\n",
             dir, plugins[i]);
    assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
    assert_int_equal(kube_client_new(c, NULL, &k), KD_OK);
    assert_int_equal(kube_client_token(k, false, &tok), want[i]);
    assert_non_null(strstr(kd_errmsg(), plugins[i]));
    kube_client_free(k);
  }
}

static void token_file_is_reread(void **state) {
  (void)state;
  char cfg[1024];
  write_file("token", "first\n", 0600);
  snprintf(cfg, sizeof cfg,
           "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n"
           "  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {tokenFile: token}\n");
  const char *texts[] = {cfg}, *names[] = {"tf.yaml"}, *dirs[] = {dir};
  struct kubecfg *c = NULL;
  kube_client *k = NULL;
  char *tok;
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  assert_int_equal(kube_client_new(c, NULL, &k), KD_OK);
  assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
  assert_string_equal(tok, "first");
  free(tok);
  write_file("token", "second\n", 0600);
  /* within the minute the cached token is used; on a 401 (force) the file is read again */
  assert_int_equal(kube_client_token(k, false, &tok), KD_OK);
  assert_string_equal(tok, "first");
  free(tok);
  assert_int_equal(kube_client_token(k, true, &tok), KD_OK);
  assert_string_equal(tok, "second");
  free(tok);
  kube_client_free(k);
}

static void in_cluster(void **state) {
  (void)state;
  char sa[128];
  snprintf(sa, sizeof sa, "%s/sa", dir);
  mkdir(sa, 0700);
  write_file("sa/token", "sa-token\n", 0600);
  write_file("sa/ca.crt", "CA", 0600);
  write_file("sa/namespace", "kcm-system\n", 0600);
  setenv("KCMDR_SERVICEACCOUNT_DIR", sa, 1);
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  setenv("HOME", dir, 1); /* no ~/.kube/config there */
  unsetenv("KUBECONFIG");
  struct kubecfg *c = NULL;
  assert_int_equal(kubecfg_load(NULL, &c), KD_OK);
  assert_true(c->in_cluster);
  assert_string_equal(c->server, "https://[fd00::1]:443");
  assert_string_equal(c->namespace, "kcm-system");
  assert_memory_equal(c->ca_pem, "CA", 2);
  assert_non_null(strstr(c->token_file, "sa/token"));
  kubecfg_free(c);
  /* tried: no token file in the service-account directory */
  unlink(strcat(sa, "/token"));
  assert_int_equal(kubecfg_load(NULL, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "service-account token"));
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KCMDR_SERVICEACCOUNT_DIR");
  /* tried: nothing at all configured */
  assert_int_equal(kubecfg_load(NULL, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "no kubeconfig"));
  if (home) setenv("HOME", home, 1);
  free(home);
}

/* One-context kubeconfig text with the given cluster and user mappings (flow style). */
static void one_ctx(char *out, size_t n, const char *cluster, const char *user) {
  snprintf(out, n,
           "current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n"
           "  cluster: %s\nusers:\n- name: u\n  user: %s\n",
           cluster, user);
}

static void insecure_with_ca_is_refused(void **state) {
  (void)state;
  char cfg[1024];
  const char *texts[] = {cfg}, *names[] = {"ins.yaml"}, *dirs[] = {dir};
  struct kubecfg *c = NULL;
  /* tried: a careless kubeconfig that both pins a CA and turns verification off; kubectl refuses it */
  one_ctx(cfg, sizeof cfg, "{server: 'https://x', insecure-skip-tls-verify: true, certificate-authority-data: Q0E=}", "{}");
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "specifying a root certificates file with the insecure flag is not allowed"));
  assert_non_null(strstr(kd_errmsg(), "ins.yaml"));
  /* each alone is fine */
  one_ctx(cfg, sizeof cfg, "{server: 'https://x', insecure-skip-tls-verify: true}", "{}");
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  assert_true(c->insecure);
  kubecfg_free(c);
  one_ctx(cfg, sizeof cfg, "{server: 'https://x', certificate-authority-data: Q0E=}", "{}");
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  kubecfg_free(c);
}

static void credentials_never_sent_over_http(void **state) {
  (void)state;
  char cfg[1024];
  const char *texts[] = {cfg}, *names[] = {"plain.yaml"}, *dirs[] = {dir};
  struct kubecfg *c = NULL;
  write_file("tok.txt", "t\n", 0600);
  /* tried: every kind of secret credential with a clear-text server */
  const char *users[] = {"{token: secret}", "{tokenFile: tok.txt}", "{username: u, password: p}",
                         "{exec: {command: /bin/true, apiVersion: client.authentication.k8s.io/v1}}"};
  for (size_t i = 0; i < KD_ARRAY_LEN(users); i++) {
    one_ctx(cfg, sizeof cfg, "{server: 'http://api.example:8080'}", users[i]);
    assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_ERR_CONFIG);
    if (!strstr(kd_errmsg(), "http://api.example:8080") || !strstr(kd_errmsg(), "refusing to send credentials"))
      fail_msg("user %s: message '%s'", users[i], kd_errmsg());
    assert_null(strstr(kd_errmsg(), "secret")); /* never the token itself */
  }
  /* http:// without credentials (kubectl proxy) is fine */
  one_ctx(cfg, sizeof cfg, "{server: 'http://127.0.0.1:8001'}", "{}");
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  kubecfg_free(c);
  /* tried: --server pointing an https cluster with a token at an http:// URL */
  one_ctx(cfg, sizeof cfg, "{server: 'https://api.example'}", "{token: secret}");
  struct kubecfg_opts o = {.server = "http://evil.example"};
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, &o, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "http://evil.example"));
  /* tried: a configuration built by hand and changed after loading: the client refuses it too */
  assert_int_equal(kubecfg_load_texts(texts, names, dirs, 1, NULL, &c), KD_OK);
  free(c->server);
  c->server = strdup("http://api.example");
  kube_client *k = NULL;
  assert_int_equal(kube_client_new(c, NULL, &k), KD_ERR_CONFIG);
  assert_null(k);
  assert_non_null(strstr(kd_errmsg(), "http://api.example"));
}

static void in_cluster_server_never_truncated(void **state) {
  (void)state;
  char sa[128], big[3000];
  snprintf(sa, sizeof sa, "%s/sa2", dir);
  mkdir(sa, 0700);
  write_file("sa2/token", "sa-token\n", 0600);
  write_file("sa2/ca.crt", "CA", 0600);
  setenv("KCMDR_SERVICEACCOUNT_DIR", sa, 1);
  setenv("KUBERNETES_SERVICE_HOST", "h", 1);
  unsetenv("KUBERNETES_SERVICE_PORT");
  char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  setenv("HOME", dir, 1);
  unsetenv("KUBECONFIG");
  /* tried: a --server far longer than the service host and port it used to be sized from */
  int n = snprintf(big, sizeof big, "https://api.");
  memset(big + n, 'a', sizeof big - (size_t)n - 20);
  snprintf(big + sizeof big - 20, 20, ".example:6443/");
  struct kubecfg_opts o = {.server = big};
  struct kubecfg *c = NULL;
  assert_int_equal(kubecfg_load(&o, &c), KD_OK);
  assert_int_equal(strlen(c->server), strlen(big) - 1); /* only the trailing '/' goes */
  assert_memory_equal(c->server, big, strlen(big) - 1);
  kubecfg_free(c);
  /* tried: a --server without a scheme, and an http:// one with the service-account token */
  o.server = "api.example:6443";
  assert_int_equal(kubecfg_load(&o, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "must start with https://"));
  o.server = "http://api.example";
  assert_int_equal(kubecfg_load(&o, &c), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "refusing to send credentials"));
  /* without --server: the service address */
  assert_int_equal(kubecfg_load(NULL, &c), KD_OK);
  assert_string_equal(c->server, "https://h:443");
  kubecfg_free(c);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KCMDR_SERVICEACCOUNT_DIR");
  if (home) setenv("HOME", home, 1);
  free(home);
}

int test_kubeconfig(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(merge_first_file_wins), cmocka_unit_test(kubeconfig_env_list),
      cmocka_unit_test(errors_name_file_and_key), cmocka_unit_test(exec_plugin),
      cmocka_unit_test(token_file_is_reread), cmocka_unit_test(in_cluster),
      cmocka_unit_test(insecure_with_ca_is_refused), cmocka_unit_test(credentials_never_sent_over_http),
      cmocka_unit_test(in_cluster_server_never_truncated),
  };
  return cmocka_run_group_tests_name("kubeconfig", tests, setup, teardown);
}
