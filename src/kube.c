/* kube.c — the Kubernetes API client: transport, auth, retries, rate limit, CRUD, paging,
 * discovery and watch (see kube.h). */
#include "kube.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define POOL_MAX 64
#define EXEC_MAX_OUTPUT (1u << 20)
#define EXEC_TIMEOUT_MS 60000
#define TOKEN_REREAD_MS 60000
#define DISCOVERY_MAX_GROUPS 512

struct kube_client {
  struct kubecfg *cfg;
  struct kube_client_opts opts;
  pthread_mutex_t lock; /* guards everything below */
  CURL *pool[POOL_MAX];
  int npool;
  char *token;          /* current bearer token (static, file or exec) */
  int64_t token_read_ms;
  time_t token_expiry;  /* exec credentials: 0 = never */
  char *exec_cert, *exec_key;
  size_t exec_cert_len, exec_key_len;
  double tokens;        /* rate limiter bucket */
  int64_t tokens_ms;
  json_t *discovery;    /* cached kube_discover() result */
  char *base_url;       /* server URL requests go to (tls-server-name as host when set) */
  struct curl_slist *connect_to; /* tls-server-name: connect to the real host instead */
  atomic_long requests;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- construction ---- */

/* With tls-server-name, the URL names that host (so TLS sends it as SNI and verifies the
 * certificate against it) and CONNECT_TO sends the connection to the configured server. */
static kd_rc tls_server_name_setup(kube_client *c) {
  kd_rc rc = KD_OK;
  char *host = NULL, *port = NULL, *scheme = NULL, line[1024];
  CURLU *u = NULL;
  if (!c->cfg->tls_server_name) {
    c->base_url = strdup(c->cfg->server);
    return c->base_url ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  if (!(u = curl_url()) || curl_url_set(u, CURLUPART_URL, c->cfg->server, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
    rc = kd_fail(KD_ERR_CONFIG, "%s: server '%s' is not a valid URL", c->cfg->source, c->cfg->server);
    goto fail;
  }
  snprintf(line, sizeof line, "%s:%s:%s:%s", c->cfg->tls_server_name, port, host, port);
  c->connect_to = curl_slist_append(NULL, line);
  snprintf(line, sizeof line, "%s://%s:%s", scheme, c->cfg->tls_server_name, port);
  c->base_url = strdup(line);
  if (!c->connect_to || !c->base_url) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
fail:
  curl_free(host);
  curl_free(port);
  curl_free(scheme);
  curl_url_cleanup(u);
  return rc;
}

kd_rc kube_client_new(struct kubecfg *cfg, const struct kube_client_opts *opts, kube_client **out) {
  pthread_once(&curl_once, curl_init_once);
  kube_client *c = calloc(1, sizeof *c);
  if (!c) {
    kubecfg_free(cfg);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  c->cfg = cfg;
  if (opts) c->opts = *opts;
  if (c->opts.qps <= 0) c->opts.qps = 1000;
  if (c->opts.burst <= 0) c->opts.burst = 2000;
  if (c->opts.max_retries == 0) c->opts.max_retries = 6;
  if (c->opts.max_retries < 0) c->opts.max_retries = 0;
  if (c->opts.timeout_ms <= 0) c->opts.timeout_ms = 60000;
  if (!c->opts.user_agent) c->opts.user_agent = "kcmdr/" KCMDR_VERSION;
  c->tokens = c->opts.burst;
  c->tokens_ms = kd_now_ms();
  pthread_mutex_init(&c->lock, NULL);
  kd_rc rc = tls_server_name_setup(c);
  if (rc != KD_OK) {
    kube_client_free(c);
    return rc;
  }
  *out = c;
  return KD_OK;
}

kd_rc kube_client_from_opts(const struct kubecfg_opts *copts, const struct kube_client_opts *opts, kube_client **out) {
  struct kubecfg *cfg;
  kd_rc rc = kubecfg_load(copts, &cfg);
  if (rc != KD_OK) return rc;
  return kube_client_new(cfg, opts, out);
}

void kube_client_free(kube_client *c) {
  if (!c) return;
  for (int i = 0; i < c->npool; i++) curl_easy_cleanup(c->pool[i]);
  kubecfg_free(c->cfg);
  free(c->token);
  free(c->exec_cert);
  free(c->exec_key);
  json_decref(c->discovery);
  free(c->base_url);
  curl_slist_free_all(c->connect_to);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

const char *kube_client_namespace(const kube_client *c) { return c->cfg->namespace; }
const struct kubecfg *kube_client_config(const kube_client *c) { return c->cfg; }
long kube_client_requests(const kube_client *c) { return atomic_load(&((kube_client *)c)->requests); }

/* ---- rate limit and backoff ---- */

static void rate_limit(kube_client *c) {
  for (;;) {
    int64_t wait = 0;
    pthread_mutex_lock(&c->lock);
    int64_t now = kd_now_ms();
    c->tokens += (double)(now - c->tokens_ms) * c->opts.qps / 1000.0;
    if (c->tokens > c->opts.burst) c->tokens = c->opts.burst;
    c->tokens_ms = now;
    if (c->tokens >= 1) c->tokens -= 1;
    else wait = (int64_t)((1 - c->tokens) * 1000.0 / c->opts.qps) + 1;
    pthread_mutex_unlock(&c->lock);
    if (!wait) return;
    kd_sleep_ms(wait, NULL);
  }
}

int64_t kube_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, unsigned jitter_seed) {
  int64_t d = base_ms;
  for (int i = 0; i < attempt && d < cap_ms; i++) d *= 2;
  if (d > cap_ms) d = cap_ms;
  /* take off up to half: spreads clients that failed together */
  unsigned x = jitter_seed * 2654435761u + (unsigned)attempt * 40503u;
  x ^= x >> 13;
  int64_t off = (int64_t)(x % 1000u) * (d / 2) / 1000;
  return d - off;
}

/* ---- auth ---- */

/* Run the exec credential plugin; update the cached token or client certificate. Lock held. */
static kd_rc run_exec(kube_client *c) {
  kd_rc rc = KD_OK;
  struct kubecfg_exec *e = c->cfg->exec;
  char info[512];
  char *envp[4096];
  size_t ne = 0;
  int out[2] = {-1, -1};
  pid_t pid = -1;
  kd_buf buf = KD_BUF_INIT(EXEC_MAX_OUTPUT);
  json_t *cred = NULL;
  posix_spawn_file_actions_t fa;
  bool fa_ok = false;

  snprintf(info, sizeof info, "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}",
           e->api_version);
  for (char **p = environ; *p && ne < KD_ARRAY_LEN(envp) - KUBECFG_MAX_ARGS - 2; p++) envp[ne++] = *p;
  for (char **p = e->env; *p; p++) envp[ne++] = *p;
  envp[ne++] = info;
  envp[ne] = NULL;
  char *argv[KUBECFG_MAX_ARGS + 2];
  size_t na = 0;
  argv[na++] = e->command;
  for (char **p = e->args; *p; p++) argv[na++] = *p;
  argv[na] = NULL;

  if (pipe2(out, O_CLOEXEC) != 0) {
    rc = kd_fail(KD_ERR_IO, "exec plugin %s: pipe: %s", e->command, strerror(errno));
    goto fail;
  }
  posix_spawn_file_actions_init(&fa);
  fa_ok = true;
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int err = posix_spawnp(&pid, e->command, &fa, NULL, argv, envp);
  if (err != 0) {
    pid = -1;
    rc = kd_fail(KD_ERR_CONFIG, "exec plugin %s: cannot start: %s", e->command, strerror(err));
    goto fail;
  }
  close(out[1]);
  out[1] = -1;
  int64_t deadline = kd_now_ms() + EXEC_TIMEOUT_MS;
  for (;;) {
    int64_t left = deadline - kd_now_ms();
    if (left <= 0) {
      rc = kd_fail(KD_ERR_TIMEOUT, "exec plugin %s: no answer within %d s", e->command, EXEC_TIMEOUT_MS / 1000);
      goto fail;
    }
    struct pollfd pfd = {out[0], POLLIN, 0};
    int pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    char chunk[4096];
    ssize_t n = read(out[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if ((rc = kd_buf_add(&buf, chunk, (size_t)n)) != KD_OK) {
      rc = kd_fail(KD_ERR_TOOBIG, "exec plugin %s: output larger than %u bytes", e->command, EXEC_MAX_OUTPUT);
      goto fail;
    }
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  pid = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    rc = kd_fail(KD_ERR_UNAUTHORIZED, "exec plugin %s failed (exit status %d)", e->command,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    goto fail;
  }
  json_error_t jerr;
  cred = json_loadb(buf.data ? buf.data : "", buf.len, 0, &jerr);
  const char *kind = json_string_value(json_object_get(cred, "kind"));
  json_t *st = json_object_get(cred, "status");
  if (!cred || !kind || strcmp(kind, "ExecCredential") != 0 || !json_is_object(st)) {
    rc = kd_fail(KD_ERR_PARSE, "exec plugin %s: output is not an ExecCredential with a status", e->command);
    goto fail;
  }
  const char *tok = json_string_value(json_object_get(st, "token"));
  const char *cert = json_string_value(json_object_get(st, "clientCertificateData"));
  const char *key = json_string_value(json_object_get(st, "clientKeyData"));
  const char *exp = json_string_value(json_object_get(st, "expirationTimestamp"));
  if (!tok && !(cert && key)) {
    rc = kd_fail(KD_ERR_PARSE, "exec plugin %s: ExecCredential has neither token nor clientCertificateData+clientKeyData",
                 e->command);
    goto fail;
  }
  time_t expiry = 0;
  if (exp && kd_time_parse(exp, &expiry) != KD_OK) {
    rc = kd_fail(KD_ERR_PARSE, "exec plugin %s: bad expirationTimestamp '%s'", e->command, exp);
    goto fail;
  }
  free(c->token);
  c->token = tok ? strdup(tok) : NULL;
  free(c->exec_cert);
  free(c->exec_key);
  c->exec_cert = cert ? strdup(cert) : NULL;
  c->exec_key = key ? strdup(key) : NULL;
  c->exec_cert_len = cert ? strlen(cert) : 0;
  c->exec_key_len = key ? strlen(key) : 0;
  c->token_expiry = expiry;
  c->token_read_ms = kd_now_ms();
  if ((tok && !c->token) || (cert && (!c->exec_cert || !c->exec_key))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
fail:
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  if (fa_ok) posix_spawn_file_actions_destroy(&fa);
  if (out[0] >= 0) close(out[0]);
  if (out[1] >= 0) close(out[1]);
  kd_buf_free(&buf);
  json_decref(cred);
  return rc;
}

/* Make sure c->token is current. force: the server said 401, so get a fresh one. Lock held. */
static kd_rc refresh_credentials(kube_client *c, bool force) {
  struct kubecfg *cfg = c->cfg;
  int64_t now = kd_now_ms();
  if (cfg->exec) {
    bool stale = !c->token && !c->exec_cert;
    if (c->token_expiry && time(NULL) + 10 >= c->token_expiry) stale = true;
    if (force || stale) return run_exec(c);
    return KD_OK;
  }
  if (cfg->token_file) {
    if (!force && c->token && now - c->token_read_ms < TOKEN_REREAD_MS) return KD_OK;
    char *t;
    kd_rc rc = kd_read_file(cfg->token_file, 64 * 1024, &t, NULL);
    if (rc != KD_OK) {
      if (c->token) return KD_OK; /* keep the last good token; the server will tell */
      return kd_fail(KD_ERR_CONFIG, "token file: %s", kd_errmsg());
    }
    t[strcspn(t, "\r\n")] = '\0';
    free(c->token);
    c->token = t;
    c->token_read_ms = now;
    return KD_OK;
  }
  if (cfg->token && !c->token) {
    c->token = strdup(cfg->token);
    if (!c->token) return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  return KD_OK;
}

kd_rc kube_client_token(kube_client *c, bool force, char **out) {
  pthread_mutex_lock(&c->lock);
  kd_rc rc = refresh_credentials(c, force);
  *out = NULL;
  if (rc == KD_OK && c->token && !(*out = strdup(c->token))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  pthread_mutex_unlock(&c->lock);
  return rc;
}

/* ---- handles ---- */

static CURL *borrow_handle(kube_client *c) {
  CURL *h = NULL;
  pthread_mutex_lock(&c->lock);
  if (c->npool > 0) h = c->pool[--c->npool];
  pthread_mutex_unlock(&c->lock);
  if (!h) h = curl_easy_init();
  return h;
}

static void return_handle(kube_client *c, CURL *h) {
  if (!h) return;
  pthread_mutex_lock(&c->lock);
  if (c->npool < POOL_MAX) {
    c->pool[c->npool++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&c->lock);
  if (h) curl_easy_cleanup(h);
}

struct xfer {
  CURL *h;
  kd_buf body;
  struct kube_watch_splitter *splitter; /* streaming watch instead of buffering */
  volatile const int *stop;
  int64_t retry_after_ms;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t len = size * n;
  long code = 0;
  if (x->splitter) curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
  if (x->splitter && code >= 200 && code < 300) { /* error answers are buffered like any other */
    if (kube_watch_splitter_feed(x->splitter, p, len) != KD_OK || x->splitter->stopped) return 0;
    return len;
  }
  return kd_buf_add(&x->body, p, len) == KD_OK ? len : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t len = size * n;
  if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
    long secs = strtol(p + 12, NULL, 10);
    if (secs > 0 && secs < 3600) x->retry_after_ms = secs * 1000;
  }
  return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  (void)dt, (void)dn, (void)ut, (void)un;
  struct xfer *x = ud;
  return x->stop && *x->stop ? 1 : 0;
}

/* Configure h for one request. Lock not held; reads credentials under the lock. */
static kd_rc setup_handle(kube_client *c, CURL *h, const char *method, const char *url, struct curl_slist **hdrs,
                          const char *content_type, const char *body, size_t body_len, struct xfer *x, bool watch) {
  struct kubecfg *cfg = c->cfg;
  char line[8192];
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, c->opts.user_agent);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 15L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
  if (watch) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    /* a watch that hears nothing (not even a bookmark) for 3 minutes is dead */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 180L);
  } else {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
  }
  if (strcmp(method, "GET") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  /* TLS */
  if (cfg->insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (cfg->ca_pem) {
    struct curl_blob blob = {cfg->ca_pem, cfg->ca_pem_len, CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (cfg->proxy_url) curl_easy_setopt(h, CURLOPT_PROXY, cfg->proxy_url);
  if (c->connect_to) curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to);
  *hdrs = NULL;
  struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
  if (content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", content_type);
    l = l ? curl_slist_append(l, line) : NULL;
  }
  pthread_mutex_lock(&c->lock);
  const char *cert = c->exec_cert ? c->exec_cert : cfg->cert_pem;
  const char *key = c->exec_cert ? c->exec_key : cfg->key_pem;
  size_t cert_len = c->exec_cert ? c->exec_cert_len : cfg->cert_pem_len;
  size_t key_len = c->exec_cert ? c->exec_key_len : cfg->key_pem_len;
  if (cert && key) {
    struct curl_blob cb = {(void *)cert, cert_len, CURL_BLOB_COPY}, kb = {(void *)key, key_len, CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  if (c->token && l) {
    snprintf(line, sizeof line, "Authorization: Bearer %s", c->token);
    l = curl_slist_append(l, line);
  }
  pthread_mutex_unlock(&c->lock);
  if (!c->token && cfg->username && cfg->password) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, cfg->username);
    curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->password);
  }
  explicit_bzero(line, sizeof line);
  if (!l) return kd_fail(KD_ERR_NOMEM, "out of memory");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
  *hdrs = l;
  return KD_OK;
}

/* Turn a non-2xx answer into a code and a message with the server's Status. */
static kd_rc status_error(long code, const char *method, const char *path, const char *body, size_t len) {
  json_error_t jerr;
  json_t *st = body && len ? json_loadb(body, len, 0, &jerr) : NULL;
  const char *msg = json_string_value(json_object_get(st, "message"));
  const char *reason = json_string_value(json_object_get(st, "reason"));
  char snippet[200] = "";
  if (!msg && body && len) {
    size_t n = len < sizeof snippet - 1 ? len : sizeof snippet - 1;
    memcpy(snippet, body, n);
    snippet[n] = '\0';
    for (char *p = snippet; *p; p++)
      if (*p == '\n' || *p == '\r') *p = ' ';
  }
  kd_rc rc;
  switch (code) {
  case 401: rc = KD_ERR_UNAUTHORIZED; break;
  case 403: rc = KD_ERR_FORBIDDEN; break;
  case 404: rc = KD_ERR_NOTFOUND; break;
  case 409: rc = KD_ERR_CONFLICT; break;
  case 410: rc = KD_ERR_GONE; break;
  case 422: rc = KD_ERR_INVALIDOBJ; break;
  default: rc = KD_ERR_HTTP; break;
  }
  const char *hint = code == 401 ? " (the credentials were not accepted: check the token, certificate or exec plugin)" : "";
  kd_fail(rc, "%s %s: HTTP %ld%s%s: %s%s", method, path, code, reason ? " " : "", reason ? reason : "",
          msg ? msg : (snippet[0] ? snippet : "no message"), hint);
  json_decref(st);
  return rc;
}

/* One request with retries; watch requests stream into x->splitter. */
static kd_rc do_request(kube_client *c, const char *method, const char *path, const char *content_type,
                        const char *body, size_t body_len, struct xfer *x, long *http_code, bool watch) {
  kd_rc rc = KD_OK;
  char url[KUBE_MAX_PATH + 512];
  const char *server = c->cfg->server;
  if (snprintf(url, sizeof url, "%s%s", c->base_url, path) >= (int)sizeof url)
    return kd_fail(KD_ERR_TOOBIG, "request path too long");
  bool auth_retried = false;
  for (int attempt = 0;; attempt++) {
    pthread_mutex_lock(&c->lock);
    rc = refresh_credentials(c, false);
    pthread_mutex_unlock(&c->lock);
    if (rc != KD_OK) return rc;
    rate_limit(c);
    CURL *h = borrow_handle(c);
    struct curl_slist *hdrs = NULL;
    if (!h) return kd_fail(KD_ERR_NOMEM, "cannot create a curl handle");
    kd_buf_reset(&x->body);
    x->retry_after_ms = 0;
    x->h = h;
    if ((rc = setup_handle(c, h, method, url, &hdrs, content_type, body, body_len, x, watch)) != KD_OK) {
      return_handle(c, h);
      return rc;
    }
    atomic_fetch_add(&c->requests, 1);
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdrs);
    bool retry = false;
    if (cc != CURLE_OK) {
      if (x->splitter && (x->splitter->stopped || x->splitter->rc != KD_OK)) {
        return_handle(c, h);
        *http_code = code;
        return x->splitter->rc; /* stopped by the handler, or a bad event */
      }
      if (cc == CURLE_ABORTED_BY_CALLBACK) {
        return_handle(c, h);
        return kd_fail(KD_ERR_CANCELLED, "%s %s: stopped", method, path);
      }
      if (cc == CURLE_WRITE_ERROR) {
        return_handle(c, h);
        return kd_fail(KD_ERR_TOOBIG, "%s %s: response larger than %u bytes", method, path, KUBE_MAX_BODY);
      }
      rc = kd_fail(cc == CURLE_OPERATION_TIMEDOUT ? KD_ERR_TIMEOUT : KD_ERR_TRANSPORT, "%s %s%s: %s", method, server,
                   path, curl_easy_strerror(cc));
      /* a POST is retried only when it surely never reached the server */
      retry = strcmp(method, "POST") != 0 || cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST;
      if (watch) retry = false; /* the watch loop resumes by itself */
      /* drop the connection: it may be half-dead */
      curl_easy_cleanup(h);
      h = NULL;
    } else if (code == 401 && !auth_retried && (c->cfg->exec || c->cfg->token_file)) {
      /* credentials may have rotated: fetch fresh ones once */
      auth_retried = true;
      pthread_mutex_lock(&c->lock);
      rc = refresh_credentials(c, true);
      pthread_mutex_unlock(&c->lock);
      return_handle(c, h);
      if (rc != KD_OK) return rc;
      attempt--;
      continue;
    } else if (code == 429 || (code >= 500 && code != 501)) {
      rc = status_error(code, method, path, x->body.data, x->body.len);
      retry = true;
    } else {
      return_handle(c, h);
      *http_code = code;
      if (code >= 200 && code < 300) return KD_OK;
      return status_error(code, method, path, x->body.data, x->body.len);
    }
    return_handle(c, h);
    if (!retry || attempt >= c->opts.max_retries) return rc;
    int64_t delay = kube_backoff_ms(attempt, 200, 10000, (unsigned)kd_now_ms());
    if (x->retry_after_ms > delay) delay = x->retry_after_ms;
    kd_log(KD_LOG_DEBUG, "retrying in %lld ms: %s", (long long)delay, kd_errmsg());
    kd_sleep_ms(delay, x->stop);
    if (x->stop && *x->stop) return kd_fail(KD_ERR_CANCELLED, "%s %s: stopped", method, path);
  }
}

kd_rc kube_request(kube_client *c, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, json_t **out) {
  struct xfer x = {NULL, KD_BUF_INIT(KUBE_MAX_BODY), NULL, NULL, 0};
  long code = 0;
  if (out) *out = NULL;
  kd_rc rc = do_request(c, method, path, content_type, body, body_len, &x, &code, false);
  if (rc == KD_OK && out) {
    if (x.body.len == 0) {
      *out = json_null();
    } else {
      json_error_t jerr;
      *out = json_loadb(x.body.data, x.body.len, 0, &jerr);
      if (!*out) rc = kd_fail(KD_ERR_PARSE, "%s %s: the server's answer is not JSON: %s", method, path, jerr.text);
    }
  }
  kd_buf_free(&x.body);
  return rc;
}

/* ---- paths ---- */

kd_rc kube_query_escape(const char *s, char *out, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t j = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                 *p == '_' || *p == '.' || *p == '~';
    if (j + (plain ? 1 : 3) >= n) return kd_fail(KD_ERR_TOOBIG, "query value too long");
    if (plain) {
      out[j++] = (char)*p;
    } else {
      out[j++] = '%';
      out[j++] = hex[*p >> 4];
      out[j++] = hex[*p & 15];
    }
  }
  if (j >= n) return kd_fail(KD_ERR_TOOBIG, "query value too long");
  out[j] = '\0';
  return KD_OK;
}

static bool valid_segment(const char *s) {
  if (!s || !s[0]) return false;
  for (; *s; s++)
    if (*s == '/' || *s == '?' || *s == '#' || *s == '%' || (unsigned char)*s < 0x21) return false;
  return true;
}

kd_rc kube_path(const struct kube_res *res, const char *ns, const char *name, const char *sub, const char *query,
                char out[KUBE_MAX_PATH]) {
  if ((ns && !valid_segment(ns)) || (name && !valid_segment(name)) || !valid_segment(res->resource))
    return kd_fail(KD_ERR_INVALID, "invalid name or namespace '%s/%s'", ns ? ns : "", name ? name : "");
  int n;
  if (res->group[0])
    n = snprintf(out, KUBE_MAX_PATH, "/apis/%s/%s", res->group, res->version);
  else
    n = snprintf(out, KUBE_MAX_PATH, "/api/%s", res->version);
  if (ns && res->namespaced) n += snprintf(out + n, KUBE_MAX_PATH - (size_t)n, "/namespaces/%s", ns);
  if (n < KUBE_MAX_PATH) n += snprintf(out + n, KUBE_MAX_PATH - (size_t)n, "/%s", res->resource);
  if (name && n < KUBE_MAX_PATH) n += snprintf(out + n, KUBE_MAX_PATH - (size_t)n, "/%s", name);
  if (sub && n < KUBE_MAX_PATH) n += snprintf(out + n, KUBE_MAX_PATH - (size_t)n, "/%s", sub);
  if (query && query[0] && n < KUBE_MAX_PATH) n += snprintf(out + n, KUBE_MAX_PATH - (size_t)n, "?%s", query);
  if (n >= KUBE_MAX_PATH) return kd_fail(KD_ERR_TOOBIG, "request path too long");
  return KD_OK;
}

/* ---- CRUD ---- */

static kd_rc send_json(kube_client *c, const char *method, const char *path, const char *ctype, json_t *obj,
                       json_t **out) {
  char *body = json_dumps(obj, JSON_COMPACT);
  if (!body) return kd_fail(KD_ERR_NOMEM, "cannot serialise the request body");
  kd_rc rc = kube_request(c, method, path, ctype, body, strlen(body), out);
  free(body);
  return rc;
}

kd_rc kube_get(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t **out) {
  char path[KUBE_MAX_PATH];
  kd_rc rc = kube_path(res, ns, name, NULL, NULL, path);
  return rc ? rc : kube_request(c, "GET", path, NULL, NULL, 0, out);
}

kd_rc kube_create(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out) {
  char path[KUBE_MAX_PATH];
  kd_rc rc = kube_path(res, ns, NULL, NULL, NULL, path);
  return rc ? rc : send_json(c, "POST", path, "application/json", obj, out);
}

static kd_rc update(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, const char *sub,
                    json_t **out) {
  char path[KUBE_MAX_PATH];
  const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  if (!name) return kd_fail(KD_ERR_INVALID, "update: the object has no metadata.name");
  kd_rc rc = kube_path(res, ns, name, sub, NULL, path);
  return rc ? rc : send_json(c, "PUT", path, "application/json", obj, out);
}

kd_rc kube_update(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out) {
  return update(c, res, ns, obj, NULL, out);
}

kd_rc kube_update_status(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out) {
  return update(c, res, ns, obj, "status", out);
}

kd_rc kube_patch(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t *patch,
                 const struct kube_patch_opts *opts, json_t **out) {
  char path[KUBE_MAX_PATH], query[512] = "", fm[256];
  const char *ctype = "application/merge-patch+json";
  if (opts && opts->type == KUBE_PATCH_JSON) ctype = "application/json-patch+json";
  if (opts && opts->type == KUBE_PATCH_APPLY) {
    if (!opts->field_manager) return kd_fail(KD_ERR_INVALID, "server-side apply needs a field manager");
    ctype = "application/apply-patch+yaml"; /* JSON is YAML */
  }
  if (opts && opts->field_manager) {
    kd_rc rc = kube_query_escape(opts->field_manager, fm, sizeof fm);
    if (rc) return rc;
    snprintf(query, sizeof query, "fieldManager=%s%s", fm, opts->force ? "&force=true" : "");
  }
  kd_rc rc = kube_path(res, ns, name, opts ? opts->subresource : NULL, query, path);
  return rc ? rc : send_json(c, "PATCH", path, ctype, patch, out);
}

kd_rc kube_delete(kube_client *c, const struct kube_res *res, const char *ns, const char *name,
                  const char *propagation, json_t **out) {
  char path[KUBE_MAX_PATH];
  kd_rc rc = kube_path(res, ns, name, NULL, NULL, path);
  if (rc) return rc;
  if (!propagation) return kube_request(c, "DELETE", path, NULL, NULL, 0, out);
  json_t *opts = json_pack("{s:s,s:s,s:s}", "kind", "DeleteOptions", "apiVersion", "v1", "propagationPolicy", propagation);
  if (!opts) return kd_fail(KD_ERR_NOMEM, "out of memory");
  rc = send_json(c, "DELETE", path, "application/json", opts, out);
  json_decref(opts);
  return rc;
}

static kd_rc add_query(char *q, size_t n, const char *key, const char *value) {
  char esc[2048];
  if (!value || !value[0]) return KD_OK;
  kd_rc rc = kube_query_escape(value, esc, sizeof esc);
  if (rc) return rc;
  size_t len = strlen(q);
  if ((size_t)snprintf(q + len, n - len, "%s%s=%s", len ? "&" : "", key, esc) >= n - len)
    return kd_fail(KD_ERR_TOOBIG, "query too long");
  return KD_OK;
}

kd_rc kube_list(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_list_opts *opts,
                kube_item_fn fn, void *ud, char **rv) {
  kd_rc rc = KD_OK;
  char *cont = NULL, path[KUBE_MAX_PATH], limit[32];
  json_t *page = NULL;
  if (rv) *rv = NULL;
  snprintf(limit, sizeof limit, "%ld", opts && opts->limit > 0 ? opts->limit : 500L);
  for (;;) {
    char q[KUBE_MAX_PATH / 2] = "";
    if ((rc = add_query(q, sizeof q, "labelSelector", opts ? opts->label_selector : NULL)) ||
        (rc = add_query(q, sizeof q, "fieldSelector", opts ? opts->field_selector : NULL)) ||
        (rc = add_query(q, sizeof q, "limit", limit)) || (rc = add_query(q, sizeof q, "continue", cont)) ||
        (rc = add_query(q, sizeof q, "resourceVersion", !cont && opts ? opts->resource_version : NULL)) ||
        (rc = kube_path(res, ns, NULL, NULL, q, path)))
      goto fail;
    if ((rc = kube_request(c, "GET", path, NULL, NULL, 0, &page)) != KD_OK) goto fail;
    json_t *items = json_object_get(page, "items");
    if (!json_is_array(items) && !json_is_null(items) && items) {
      rc = kd_fail(KD_ERR_PARSE, "GET %s: items is not a list", path);
      goto fail;
    }
    size_t i;
    json_t *item;
    bool more = true;
    json_array_foreach(items, i, item) {
      if (!(more = fn(item, ud))) break;
    }
    json_t *meta = json_object_get(page, "metadata");
    free(cont);
    cont = more ? kd_strdup(json_string_value(json_object_get(meta, "continue"))) : NULL;
    if (!cont || !cont[0]) { /* the last page, or the caller stopped */
      if (rv) *rv = kd_strdup(json_string_value(json_object_get(meta, "resourceVersion")));
      break;
    }
    json_decref(page);
    page = NULL;
  }
fail:
  json_decref(page);
  free(cont);
  return rc;
}

kd_rc kube_update_retry(kube_client *c, const struct kube_res *res, const char *ns, const char *name, bool status,
                        kube_mutate_fn mutate, void *ud, json_t **out) {
  kd_rc rc = KD_OK;
  for (int attempt = 0; attempt < 10; attempt++) {
    json_t *obj = NULL;
    if ((rc = kube_get(c, res, ns, name, &obj)) != KD_OK) return rc;
    if ((rc = mutate(obj, ud)) != KD_OK) {
      json_decref(obj);
      return rc;
    }
    rc = status ? kube_update_status(c, res, ns, obj, out) : kube_update(c, res, ns, obj, out);
    json_decref(obj);
    if (rc != KD_ERR_CONFLICT) return rc;
    kd_sleep_ms(kube_backoff_ms(attempt, 10, 500, (unsigned)kd_now_ms()), NULL);
  }
  return rc;
}

/* ---- discovery ---- */

static kd_rc discover_group_version(kube_client *c, const char *group, const char *gv, json_t *all) {
  char path[KUBE_MAX_PATH];
  json_t *doc = NULL;
  snprintf(path, sizeof path, "%s/%s", group[0] ? "/apis" : "/api", gv);
  kd_rc rc = kube_request(c, "GET", path, NULL, NULL, 0, &doc);
  if (rc == KD_ERR_NOTFOUND || rc == KD_ERR_HTTP) { /* a group that went away or an aggregated API that is down */
    kd_log(KD_LOG_WARN, "discovery: skipping %s: %s", gv, kd_errmsg());
    return KD_OK;
  }
  if (rc) return rc;
  const char *version = strchr(gv, '/') ? strchr(gv, '/') + 1 : gv;
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(doc, "resources"), i, r) {
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *kind = json_string_value(json_object_get(r, "kind"));
    if (!name || !kind || strchr(name, '/')) continue; /* subresources are not resources */
    json_t *verbs = json_object_get(r, "verbs"), *shorts = json_object_get(r, "shortNames");
    json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:b,s:O,s:O}", "group", group, "version", version, "resource", name,
                          "kind", kind, "namespaced", json_is_true(json_object_get(r, "namespaced")), "verbs",
                          verbs ? verbs : json_null(), "shortNames", shorts ? shorts : json_null());
    if (!e || json_array_append_new(all, e)) {
      json_decref(doc);
      return kd_fail(KD_ERR_NOMEM, "out of memory");
    }
  }
  json_decref(doc);
  return KD_OK;
}

kd_rc kube_discover(kube_client *c, bool refresh, json_t **out) {
  pthread_mutex_lock(&c->lock);
  if (c->discovery && !refresh) {
    *out = json_incref(c->discovery);
    pthread_mutex_unlock(&c->lock);
    return KD_OK;
  }
  pthread_mutex_unlock(&c->lock);
  kd_rc rc = KD_OK;
  json_t *all = json_array(), *groups = NULL;
  if (!all) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if ((rc = discover_group_version(c, "", "v1", all))) goto fail;
  if ((rc = kube_request(c, "GET", "/apis", NULL, NULL, 0, &groups))) goto fail;
  size_t i;
  json_t *g;
  if (json_array_size(json_object_get(groups, "groups")) > DISCOVERY_MAX_GROUPS) {
    rc = kd_fail(KD_ERR_TOOBIG, "discovery: more than %d API groups", DISCOVERY_MAX_GROUPS);
    goto fail;
  }
  json_array_foreach(json_object_get(groups, "groups"), i, g) {
    const char *name = json_string_value(json_object_get(g, "name"));
    const char *gv = json_string_value(json_object_get(json_object_get(g, "preferredVersion"), "groupVersion"));
    if (!name || !gv) continue;
    if ((rc = discover_group_version(c, name, gv, all))) goto fail;
  }
  pthread_mutex_lock(&c->lock);
  json_decref(c->discovery);
  c->discovery = json_incref(all);
  pthread_mutex_unlock(&c->lock);
  *out = all;
  all = NULL;
fail:
  json_decref(all);
  json_decref(groups);
  return rc;
}

static bool match_res(json_t *e, const char *name, const char *group) {
  const char *r = json_string_value(json_object_get(e, "resource"));
  const char *k = json_string_value(json_object_get(e, "kind"));
  const char *g = json_string_value(json_object_get(e, "group"));
  if (group && strcmp(group, g) != 0) return false;
  if (strcmp(name, r) == 0 || strcasecmp(name, k) == 0) return true;
  size_t i;
  json_t *sn;
  json_array_foreach(json_object_get(e, "shortNames"), i, sn) {
    if (kd_streq(name, json_string_value(sn))) return true;
  }
  return false;
}

/* copy src into dst[n]; false if it does not fit */
static bool copy_field(char *dst, size_t n, const char *src) {
  size_t len = strlen(src ? src : "");
  if (len >= n) return false;
  memcpy(dst, src ? src : "", len + 1);
  return true;
}

kd_rc kube_resolve(kube_client *c, const char *name, struct kube_res *res) {
  char buf[512];
  const char *group = NULL, *version = NULL, *rname = name;
  if (strlen(name) >= sizeof buf) return kd_fail(KD_ERR_INVALID, "resource name too long");
  strcpy(buf, name);
  char *s1 = strchr(buf, '/');
  if (s1) { /* group/version/resource or version/resource */
    char *s2 = strchr(s1 + 1, '/');
    *s1 = '\0';
    if (s2) {
      *s2 = '\0';
      group = buf;
      version = s1 + 1;
      rname = s2 + 1;
    } else {
      group = "";
      version = buf;
      rname = s1 + 1;
    }
  } else {
    char *dot = strchr(buf, '.');
    if (dot) {
      *dot = '\0';
      group = dot + 1;
    }
    rname = buf;
  }
  for (int pass = 0; pass < 2; pass++) {
    json_t *all;
    kd_rc rc = kube_discover(c, pass == 1, &all);
    if (rc) return rc;
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e) {
      if (!match_res(e, rname, group)) continue;
      /* a version the user named wins over the preferred one */
      const char *v = version ? version : json_string_value(json_object_get(e, "version"));
      bool fits = copy_field(res->group, sizeof res->group, json_string_value(json_object_get(e, "group"))) &&
                  copy_field(res->version, sizeof res->version, v) &&
                  copy_field(res->resource, sizeof res->resource, json_string_value(json_object_get(e, "resource"))) &&
                  copy_field(res->kind, sizeof res->kind, json_string_value(json_object_get(e, "kind")));
      if (!fits) {
        json_decref(all);
        return kd_fail(KD_ERR_INVALID, "resource type '%s': a name is too long", name);
      }
      res->namespaced = json_is_true(json_object_get(e, "namespaced"));
      json_decref(all);
      return KD_OK;
    }
    json_decref(all);
  }
  return kd_fail(KD_ERR_NOTFOUND, "the server has no resource type '%s'", name);
}

/* ---- watch ---- */

void kube_watch_splitter_init(struct kube_watch_splitter *s, kube_event_fn fn, void *ud) {
  memset(s, 0, sizeof *s);
  kd_buf_init(&s->line, KUBE_MAX_EVENT);
  s->fn = fn;
  s->ud = ud;
}

void kube_watch_splitter_free(struct kube_watch_splitter *s) {
  kd_buf_free(&s->line);
  free(s->last_rv);
  s->last_rv = NULL;
}

static kd_rc handle_line(struct kube_watch_splitter *s, const char *line, size_t len) {
  while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
  if (len == 0) return KD_OK;
  json_error_t jerr;
  json_t *ev = json_loadb(line, len, 0, &jerr);
  kd_rc rc = KD_OK;
  const char *type = json_string_value(json_object_get(ev, "type"));
  json_t *obj = json_object_get(ev, "object");
  if (!ev || !type || !json_is_object(obj)) {
    rc = kd_fail(KD_ERR_PARSE, "watch: not a watch event: %s", ev ? "missing type or object" : jerr.text);
    goto done;
  }
  enum kube_event_type t;
  if (strcmp(type, "ADDED") == 0) t = KUBE_ADDED;
  else if (strcmp(type, "MODIFIED") == 0) t = KUBE_MODIFIED;
  else if (strcmp(type, "DELETED") == 0) t = KUBE_DELETED;
  else if (strcmp(type, "BOOKMARK") == 0) t = KUBE_BOOKMARK;
  else if (strcmp(type, "ERROR") == 0) {
    s->error_code = (long)json_integer_value(json_object_get(obj, "code"));
    const char *msg = json_string_value(json_object_get(obj, "message"));
    rc = kd_fail(s->error_code == 410 ? KD_ERR_GONE : KD_ERR_HTTP, "watch: server error %ld: %s", s->error_code,
                 msg ? msg : "no message");
    goto done;
  } else {
    rc = kd_fail(KD_ERR_PARSE, "watch: unknown event type '%s'", type);
    goto done;
  }
  const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
  if (rv) {
    char *copy = strdup(rv);
    if (!copy) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto done;
    }
    free(s->last_rv);
    s->last_rv = copy;
  }
  if (!s->fn(t, obj, s->ud)) s->stopped = true;
done:
  json_decref(ev);
  return rc;
}

kd_rc kube_watch_splitter_feed(struct kube_watch_splitter *s, const char *data, size_t n) {
  while (n > 0 && s->rc == KD_OK && !s->stopped) {
    const char *nl = memchr(data, '\n', n);
    size_t take = nl ? (size_t)(nl - data) : n;
    if (s->line.len == 0 && nl) {
      s->rc = handle_line(s, data, take); /* whole line in this chunk: no copy */
    } else {
      if (kd_buf_add(&s->line, data, take) != KD_OK) {
        s->rc = kd_fail(KD_ERR_TOOBIG, "watch: an event is larger than %u bytes", KUBE_MAX_EVENT);
        break;
      }
      if (nl) {
        s->rc = handle_line(s, s->line.data, s->line.len);
        kd_buf_reset(&s->line);
      }
    }
    if (!nl) break;
    data += take + 1;
    n -= take + 1;
  }
  return s->rc;
}

kd_rc kube_watch(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_watch_opts *opts,
                 kube_event_fn fn, void *ud, char **last_rv) {
  kd_rc rc;
  char q[KUBE_MAX_PATH / 2] = "", path[KUBE_MAX_PATH], tmo[32];
  struct kube_watch_splitter s;
  snprintf(tmo, sizeof tmo, "%ld", opts && opts->timeout_seconds > 0 ? opts->timeout_seconds : 300L);
  if ((rc = add_query(q, sizeof q, "watch", "1")) || (rc = add_query(q, sizeof q, "allowWatchBookmarks", "true")) ||
      (rc = add_query(q, sizeof q, "timeoutSeconds", tmo)) ||
      (rc = add_query(q, sizeof q, "labelSelector", opts ? opts->label_selector : NULL)) ||
      (rc = add_query(q, sizeof q, "fieldSelector", opts ? opts->field_selector : NULL)) ||
      (rc = add_query(q, sizeof q, "resourceVersion", opts ? opts->resource_version : NULL)) ||
      (rc = kube_path(res, ns, NULL, NULL, q, path)))
    return rc;
  kube_watch_splitter_init(&s, fn, ud);
  struct xfer x = {NULL, KD_BUF_INIT(64 * 1024), &s, opts ? opts->stop : NULL, 0};
  long code = 0;
  rc = do_request(c, "GET", path, NULL, NULL, 0, &x, &code, true);
  if (rc == KD_OK && s.rc != KD_OK) rc = s.rc;
  if (last_rv) {
    *last_rv = s.last_rv;
    s.last_rv = NULL;
  }
  kube_watch_splitter_free(&s);
  kd_buf_free(&x.body);
  return rc;
}
