/* kube.c — the Kubernetes API client: auth, rate limit, CRUD, paging, discovery and watch on
 * the shared HTTP transport (http.c); see kube.h. */
#include "kube.h"

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
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http.h"
#include "jsonscan.h"

extern char **environ;

#define EXEC_MAX_OUTPUT (1u << 20)
#define EXEC_TIMEOUT_MS 60000
#define EXEC_EARLY_S 10      /* renew exec credentials this long before they expire */
#define EXEC_SPACING_MS 2000 /* at most one early renewal attempt per this interval */
#define TOKEN_REREAD_MS 60000
#define TOKEN_FILE_MAX (64u * 1024)
#define DISCOVERY_MAX_GROUPS 512
#define WATCH_IDLE_S 180     /* a watch that hears nothing (not even a bookmark) this long is dead */

/* One immutable set of credentials. Requests hold a reference while they use it, so a refresh
 * can swap in a new set at any time without a lock around the request. */
struct creds {
  atomic_int refs;
  char *token;             /* bearer token or NULL */
  char *cert, *key;        /* exec plugin client certificate (PEM) or NULL */
  size_t cert_len, key_len;
  time_t expiry;           /* exec: 0 = never */
  int64_t read_ms;         /* monotonic time it was obtained */
};

struct kube_client {
  struct kubecfg *cfg;
  struct kube_client_opts opts;
  http_pool *pool;
  struct http_tls tls;     /* from the configuration: CA, static client certificate, proxy */
  char *base_url;          /* requests go to base_url + path */
  char *connect_to;        /* tls-server-name: CONNECT_TO line, or NULL */
  char *basic;             /* "Basic <base64 user:password>" or NULL */

  pthread_mutex_t lock;    /* rate limiter and discovery cache; held only briefly */
  double tokens;
  int64_t tokens_ms;
  json_t *discovery;

  /* Credentials. cred_lock guards the fields below and is never held while a plugin runs or a
   * file is read; exec plugins run on the refresher thread, token files are re-read under
   * file_lock. Other threads keep using the current set while a refresh runs. */
  pthread_mutex_t cred_lock;
  pthread_cond_t cred_wake; /* refresher: work to do */
  pthread_cond_t cred_done; /* waiters: gen changed */
  struct creds *creds;
  unsigned long gen;       /* completed exec refreshes */
  bool pending;            /* an exec refresh is asked for */
  bool pending_force;      /* ... because the server refused the current set */
  bool closing;
  kd_rc err_rc;            /* result of the last exec refresh */
  char err_msg[512];
  int64_t last_try_ms;
  bool has_refresher;
  pthread_t refresher;
  atomic_int stop_exec;    /* kube_client_free: kill a running plugin */
  pthread_mutex_t file_lock;
};

/* ---- credentials ---- */

static void creds_put(struct creds *k) {
  if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
  if (k->token) explicit_bzero(k->token, strlen(k->token));
  if (k->key) explicit_bzero(k->key, k->key_len);
  free(k->token);
  free(k->cert);
  free(k->key);
  free(k);
}

static struct creds *creds_ref(struct creds *k) {
  if (k) atomic_fetch_add(&k->refs, 1);
  return k;
}

/* The current set with a reference (caller puts it), or NULL. */
static struct creds *creds_peek(kube_client *c) {
  pthread_mutex_lock(&c->cred_lock);
  struct creds *k = creds_ref(c->creds);
  pthread_mutex_unlock(&c->cred_lock);
  return k;
}

/* Install k (its reference moves to the client). */
static void creds_install(kube_client *c, struct creds *k) {
  pthread_mutex_lock(&c->cred_lock);
  struct creds *old = c->creds;
  c->creds = k;
  pthread_mutex_unlock(&c->cred_lock);
  creds_put(old);
}

/* Can authenticate right now (possibly due for renewal). */
static bool creds_usable(const struct creds *k) {
  return k && (k->token || k->cert) && !(k->expiry && time(NULL) >= k->expiry);
}

/* Usable and not yet due for renewal. */
static bool creds_fresh(const kube_client *c, const struct creds *k) {
  if (!creds_usable(k)) return false;
  if (c->cfg->exec) return !(k->expiry && time(NULL) + EXEC_EARLY_S >= k->expiry);
  if (c->cfg->token_file) return kd_now_ms() - k->read_ms < TOKEN_REREAD_MS;
  return true;
}

static struct creds *creds_new(void) {
  struct creds *k = calloc(1, sizeof *k);
  if (k) atomic_init(&k->refs, 1);
  return k;
}

/* Run the exec credential plugin into a new set *out. No lock held. */
static kd_rc run_exec(kube_client *c, struct creds **out) {
  kd_rc rc = KD_OK;
  struct kubecfg_exec *e = c->cfg->exec;
  char info[512];
  char *envp[4096];
  size_t ne = 0;
  int pfd_out[2] = {-1, -1};
  pid_t pid = -1;
  kd_buf buf = KD_BUF_INIT(EXEC_MAX_OUTPUT);
  json_t *cred = NULL;
  struct creds *k = NULL;
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

  if (pipe2(pfd_out, O_CLOEXEC) != 0) {
    rc = kd_fail(KD_ERR_IO, "exec plugin %s: pipe: %s", e->command, strerror(errno));
    goto fail;
  }
  posix_spawn_file_actions_init(&fa);
  fa_ok = true;
  posix_spawn_file_actions_adddup2(&fa, pfd_out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int err = posix_spawnp(&pid, e->command, &fa, NULL, argv, envp);
  if (err != 0) {
    pid = -1;
    rc = kd_fail(KD_ERR_CONFIG, "exec plugin %s: cannot start: %s", e->command, strerror(err));
    goto fail;
  }
  close(pfd_out[1]);
  pfd_out[1] = -1;
  int64_t deadline = kd_now_ms() + EXEC_TIMEOUT_MS;
  for (;;) {
    int64_t left = deadline - kd_now_ms();
    if (atomic_load(&c->stop_exec)) {
      rc = kd_fail(KD_ERR_CANCELLED, "exec plugin %s: stopped", e->command);
      goto fail;
    }
    if (left <= 0) {
      rc = kd_fail(KD_ERR_TIMEOUT, "exec plugin %s: no answer within %d s", e->command, EXEC_TIMEOUT_MS / 1000);
      goto fail;
    }
    struct pollfd pfd = {pfd_out[0], POLLIN, 0};
    int pr = poll(&pfd, 1, (int)(left > 200 ? 200 : left));
    if (pr <= 0) continue;
    char chunk[4096];
    ssize_t n = read(pfd_out[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (kd_buf_add(&buf, chunk, (size_t)n) != KD_OK) {
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
  if (!(k = creds_new())) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  k->token = kd_strdup(tok);
  if (cert && key) {
    k->cert = kd_strdup(cert);
    k->key = kd_strdup(key);
    k->cert_len = strlen(cert);
    k->key_len = strlen(key);
  }
  k->expiry = expiry;
  k->read_ms = kd_now_ms();
  if ((tok && !k->token) || (cert && key && (!k->cert || !k->key))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  *out = k;
  k = NULL;
fail:
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  if (fa_ok) posix_spawn_file_actions_destroy(&fa);
  if (pfd_out[0] >= 0) close(pfd_out[0]);
  if (pfd_out[1] >= 0) close(pfd_out[1]);
  if (buf.data) explicit_bzero(buf.data, buf.len);
  kd_buf_free(&buf);
  json_decref(cred);
  creds_put(k);
  return rc;
}

/* The refresher thread: runs the exec plugin whenever asked, never under cred_lock. */
static void *refresher_main(void *arg) {
  kube_client *c = arg;
  pthread_mutex_lock(&c->cred_lock);
  for (;;) {
    while (!c->pending && !c->closing) pthread_cond_wait(&c->cred_wake, &c->cred_lock);
    if (c->closing) break;
    bool force = c->pending_force;
    c->pending = c->pending_force = false;
    if (!force && creds_fresh(c, c->creds)) { /* renewed by a run asked for earlier */
      c->err_rc = KD_OK;
      c->gen++;
      pthread_cond_broadcast(&c->cred_done);
      continue;
    }
    c->last_try_ms = kd_now_ms();
    pthread_mutex_unlock(&c->cred_lock);
    struct creds *k = NULL;
    kd_rc rc = run_exec(c, &k);
    pthread_mutex_lock(&c->cred_lock);
    c->err_rc = rc;
    snprintf(c->err_msg, sizeof c->err_msg, "%s", rc == KD_OK ? "" : kd_errmsg());
    if (rc == KD_OK) {
      creds_put(c->creds);
      c->creds = k;
    } else {
      kd_log(KD_LOG_WARN, "credentials: %s", c->err_msg);
    }
    c->gen++;
    pthread_cond_broadcast(&c->cred_done);
  }
  pthread_mutex_unlock(&c->cred_lock);
  return NULL;
}

/* Wait on cond (cred_lock held) until woken, the deadline passes or *cancel is set; wakes at least
 * every 200 ms to look at *cancel. */
static void cond_wait_slice(pthread_cond_t *cond, pthread_mutex_t *m, int64_t deadline_ms) {
  int64_t left = deadline_ms - kd_now_ms();
  if (left > 200) left = 200;
  if (left <= 0) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += (long)(left % 1000) * 1000000L;
  ts.tv_sec += left / 1000 + ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  pthread_cond_timedwait(cond, m, &ts);
}

/* Exec credentials: current ones when fresh; when due for renewal, ask the refresher and go on
 * with the current ones; when none are usable (or force), wait for a new run until the
 * deadline. seen: the set a request was refused with (force), or NULL. */
static kd_rc creds_exec(kube_client *c, bool force, const struct creds *seen, int64_t deadline_ms,
                        volatile const int *cancel, struct creds **out) {
  kd_rc rc = KD_OK;
  pthread_mutex_lock(&c->cred_lock);
  struct creds *cur = c->creds;
  if (!force && creds_fresh(c, cur)) goto done;
  if (!force && creds_usable(cur)) { /* due soon: renew in the background */
    if (!c->pending && kd_now_ms() - c->last_try_ms >= EXEC_SPACING_MS) {
      c->pending = true;
      pthread_cond_signal(&c->cred_wake);
    }
    goto done;
  }
  if (force && seen && cur != seen && creds_usable(cur)) goto done; /* renewed since that request */
  unsigned long gen = c->gen;
  c->pending = true;
  if (force) c->pending_force = true;
  pthread_cond_signal(&c->cred_wake);
  while (c->gen == gen) {
    if (cancel && *cancel) {
      rc = kd_fail(KD_ERR_CANCELLED, "stopped while waiting for the exec plugin %s", c->cfg->exec->command);
      goto unlock;
    }
    if (kd_now_ms() >= deadline_ms) {
      rc = kd_fail(KD_ERR_TIMEOUT, "no credentials yet from the exec plugin %s (it is still running)",
                   c->cfg->exec->command);
      goto unlock;
    }
    cond_wait_slice(&c->cred_done, &c->cred_lock, deadline_ms);
  }
  if (c->err_rc != KD_OK) {
    rc = kd_fail(c->err_rc, "%s", c->err_msg);
    goto unlock;
  }
  cur = c->creds;
done:
  *out = creds_ref(cur);
unlock:
  pthread_mutex_unlock(&c->cred_lock);
  return rc;
}

/* Token file credentials: re-read at most once a minute, or at once when forced; a failed read
 * keeps the last good token (the server will say if it is no longer accepted). */
static kd_rc creds_token_file(kube_client *c, bool force, const struct creds *seen, struct creds **out) {
  kd_rc rc = KD_OK;
  struct creds *cur = creds_peek(c), *k = NULL;
  char *t = NULL;
  if (!force && creds_fresh(c, cur)) goto done;
  if (!force && creds_usable(cur)) {
    if (pthread_mutex_trylock(&c->file_lock) != 0) goto done; /* another thread re-reads it */
  } else {
    pthread_mutex_lock(&c->file_lock);
    struct creds *now = creds_peek(c);
    const struct creds *base = seen ? seen : cur;
    if (now != base && creds_fresh(c, now)) { /* someone re-read it meanwhile */
      pthread_mutex_unlock(&c->file_lock);
      creds_put(cur);
      cur = now;
      goto done;
    }
    creds_put(now);
  }
  rc = kd_read_file(c->cfg->token_file, TOKEN_FILE_MAX, &t, NULL);
  if (rc == KD_OK) {
    t[strcspn(t, "\r\n")] = '\0';
    if (!(k = creds_new())) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    } else {
      k->token = t;
      t = NULL;
      k->read_ms = kd_now_ms();
      creds_install(c, creds_ref(k));
      creds_put(cur);
      cur = k;
    }
  } else if (cur && cur->token) {
    kd_log(KD_LOG_WARN, "token file: %s; going on with the token read before", kd_errmsg());
    rc = KD_OK;
  } else {
    rc = kd_fail(KD_ERR_CONFIG, "token file: %s", kd_errmsg());
  }
  pthread_mutex_unlock(&c->file_lock);
  free(t);
done:
  if (rc != KD_OK) {
    creds_put(cur);
    return rc;
  }
  *out = cur;
  return KD_OK;
}

/* The credentials to send now (a reference, or NULL when none), refreshed as needed. */
static kd_rc creds_get(kube_client *c, bool force, const struct creds *seen, int64_t deadline_ms,
                       volatile const int *cancel, struct creds **out) {
  *out = NULL;
  if (c->cfg->exec) return creds_exec(c, force, seen, deadline_ms, cancel, out);
  if (c->cfg->token_file) return creds_token_file(c, force, seen, out);
  *out = creds_peek(c); /* static token or none */
  return KD_OK;
}

kd_rc kube_client_token(kube_client *c, bool force, char **out) {
  struct creds *k = NULL;
  *out = NULL;
  kd_rc rc = creds_get(c, force, NULL, kd_now_ms() + EXEC_TIMEOUT_MS + 5000, NULL, &k);
  if (rc == KD_OK && k && k->token && !(*out = strdup(k->token))) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
  creds_put(k);
  return rc;
}

/* ---- construction ---- */

/* With tls-server-name, the URL names that host (so TLS sends it as SNI and verifies the
 * certificate against it) and CONNECT_TO sends the connection to the configured server. */
static kd_rc tls_server_name_setup(kube_client *c) {
  kd_rc rc = KD_OK;
  char *host = NULL, *port = NULL, *scheme = NULL;
  CURLU *u = NULL;
  kd_buf b = KD_BUF_INIT(8192);
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
  if ((rc = kd_buf_addf(&b, "%s:%s:%s:%s", c->cfg->tls_server_name, port, host, port)) != KD_OK) goto fail;
  c->connect_to = kd_buf_steal(&b);
  if ((rc = kd_buf_addf(&b, "%s://%s:%s", scheme, c->cfg->tls_server_name, port)) != KD_OK) goto fail;
  c->base_url = kd_buf_steal(&b);
  if (!c->connect_to || !c->base_url) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
fail:
  if (rc == KD_ERR_TOOBIG) rc = kd_fail(KD_ERR_CONFIG, "%s: tls-server-name or server is too long", c->cfg->source);
  kd_buf_free(&b);
  curl_free(host);
  curl_free(port);
  curl_free(scheme);
  curl_url_cleanup(u);
  return rc;
}

/* "Basic base64(user:password)" for basic auth, built once. */
static kd_rc basic_setup(kube_client *c) {
  const struct kubecfg *cfg = c->cfg;
  if (!cfg->username || !cfg->password) return KD_OK;
  size_t ul = strlen(cfg->username), pl = strlen(cfg->password);
  char *pair = malloc(ul + pl + 2);
  if (!pair) return kd_fail(KD_ERR_NOMEM, "out of memory");
  memcpy(pair, cfg->username, ul);
  pair[ul] = ':';
  memcpy(pair + ul + 1, cfg->password, pl + 1);
  char *b64 = kd_base64_encode((const unsigned char *)pair, ul + pl + 1);
  explicit_bzero(pair, ul + pl + 1);
  free(pair);
  if (!b64) return kd_fail(KD_ERR_NOMEM, "out of memory");
  size_t bl = strlen(b64);
  c->basic = malloc(bl + 7);
  if (c->basic) memcpy(c->basic, "Basic ", 6), memcpy(c->basic + 6, b64, bl + 1);
  explicit_bzero(b64, bl);
  free(b64);
  return c->basic ? KD_OK : kd_fail(KD_ERR_NOMEM, "out of memory");
}

kd_rc kube_client_new(struct kubecfg *cfg, const struct kube_client_opts *opts, kube_client **out) {
  kd_rc rc = KD_OK;
  *out = NULL;
  kube_client *c = calloc(1, sizeof *c);
  if (!c) {
    kubecfg_free(cfg);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  c->cfg = cfg;
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->cred_lock, NULL);
  pthread_mutex_init(&c->file_lock, NULL);
  pthread_cond_init(&c->cred_wake, NULL);
  pthread_cond_init(&c->cred_done, NULL);
  if (opts) c->opts = *opts;
  if (c->opts.qps <= 0) c->opts.qps = 1000;
  if (c->opts.burst <= 0) c->opts.burst = 2000;
  if (c->opts.max_retries == 0) c->opts.max_retries = HTTP_DEFAULT_RETRIES;
  if (c->opts.max_retries < 0) c->opts.max_retries = 0;
  if (c->opts.timeout_ms <= 0) c->opts.timeout_ms = 60000;
  c->tokens = c->opts.burst;
  c->tokens_ms = kd_now_ms();
  if ((rc = kubecfg_check(cfg)) != KD_OK) goto fail;
  struct http_pool_opts po = {c->opts.user_agent, 0};
  if ((rc = http_pool_new(&po, &c->pool)) != KD_OK || (rc = tls_server_name_setup(c)) != KD_OK ||
      (rc = basic_setup(c)) != KD_OK)
    goto fail;
  c->tls = (struct http_tls){cfg->ca_pem, cfg->ca_pem_len, cfg->cert_pem, cfg->cert_pem_len, cfg->key_pem,
                             cfg->key_pem_len, cfg->insecure, cfg->proxy_url, c->connect_to};
  if (cfg->token && !cfg->exec && !cfg->token_file) { /* a static token: one set for the client's life */
    struct creds *k = creds_new();
    if (!k || !(k->token = strdup(cfg->token))) {
      creds_put(k);
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    c->creds = k;
  }
  if (cfg->exec) {
    if (pthread_create(&c->refresher, NULL, refresher_main, c) != 0) {
      rc = kd_fail(KD_ERR_NOMEM, "cannot start the credential refresher thread");
      goto fail;
    }
    c->has_refresher = true;
  }
  *out = c;
  return KD_OK;
fail:
  kube_client_free(c);
  return rc;
}

kd_rc kube_client_from_opts(const struct kubecfg_opts *copts, const struct kube_client_opts *opts, kube_client **out) {
  struct kubecfg *cfg;
  kd_rc rc = kubecfg_load(copts, &cfg);
  if (rc != KD_OK) return rc;
  return kube_client_new(cfg, opts, out);
}

void kube_client_free(kube_client *c) {
  if (!c) return;
  if (c->has_refresher) {
    atomic_store(&c->stop_exec, 1);
    pthread_mutex_lock(&c->cred_lock);
    c->closing = true;
    pthread_cond_broadcast(&c->cred_wake);
    pthread_mutex_unlock(&c->cred_lock);
    pthread_join(c->refresher, NULL);
  }
  http_pool_free(c->pool);
  creds_put(c->creds);
  kubecfg_free(c->cfg);
  json_decref(c->discovery);
  free(c->base_url);
  free(c->connect_to);
  if (c->basic) explicit_bzero(c->basic, strlen(c->basic));
  free(c->basic);
  pthread_mutex_destroy(&c->lock);
  pthread_mutex_destroy(&c->cred_lock);
  pthread_mutex_destroy(&c->file_lock);
  pthread_cond_destroy(&c->cred_wake);
  pthread_cond_destroy(&c->cred_done);
  free(c);
}

const char *kube_client_namespace(const kube_client *c) { return c->cfg->namespace; }
const struct kubecfg *kube_client_config(const kube_client *c) { return c->cfg; }
long kube_client_requests(const kube_client *c) { return http_pool_requests(c->pool); }

/* ---- rate limit and backoff ---- */

static void rate_limit(kube_client *c, volatile const int *cancel) {
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
    if (!wait || (cancel && *cancel)) return;
    kd_sleep_ms(wait, cancel);
  }
}

int64_t kube_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, unsigned jitter_seed) {
  return http_backoff_ms(attempt, base_ms, cap_ms, 0, jitter_seed);
}

/* ---- requests ---- */

/* One request's state across its attempts (the prepare hook's argument). */
struct kreq {
  kube_client *c;
  const char *content_type;
  struct creds *cr;        /* the set the current attempt sends (a reference) */
  struct http_tls tls;     /* c->tls with an exec client certificate */
  int64_t deadline_ms;     /* for waiting on credentials */
  volatile const int *cancel;
};

static kd_rc prepare(struct http_hdrs *h, const struct http_tls **tls, int attempt, void *ud) {
  struct kreq *q = ud;
  kube_client *c = q->c;
  kd_rc rc;
  if (attempt > 0) { /* a retry after a backoff: the token may have been renewed meanwhile */
    struct creds *k = NULL;
    if ((rc = creds_get(c, false, NULL, q->deadline_ms, q->cancel, &k)) != KD_OK) return rc;
    creds_put(q->cr);
    q->cr = k;
  }
  if ((rc = http_hdrs_add(h, "Accept", "application/json")) != KD_OK) return rc;
  if (q->content_type && (rc = http_hdrs_add(h, "Content-Type", q->content_type)) != KD_OK) return rc;
  if (q->cr && q->cr->token) rc = http_hdrs_add2(h, "Authorization", "Bearer ", q->cr->token);
  else if (c->basic) rc = http_hdrs_add(h, "Authorization", c->basic);
  if (rc != KD_OK) return kd_fail_wrap(rc, "%s: the credentials cannot be sent", c->cfg->source);
  *tls = &c->tls;
  if (q->cr && q->cr->cert) {
    q->tls = c->tls;
    q->tls.cert_pem = q->cr->cert;
    q->tls.cert_pem_len = q->cr->cert_len;
    q->tls.key_pem = q->cr->key;
    q->tls.key_pem_len = q->cr->key_len;
    *tls = &q->tls;
  }
  return KD_OK;
}

/* How long a request may take: a total timeout, or (streams) only a floor on progress. */
enum req_kind {
  REQ_PLAIN,  /* the request's timeout for the whole answer */
  REQ_STREAM, /* a streamed list: no total, but at least 1 byte/s over the request's timeout */
  REQ_WATCH,  /* a watch: no total, at least 1 byte (a bookmark) per WATCH_IDLE_S */
};

/* Send one request (with retries and one re-authentication after a 401 when credentials can be
 * renewed). KD_OK when a response arrived: resp (caller frees) holds its status and body. */
static kd_rc send_req(kube_client *c, const char *method, const char *path, const char *content_type,
                      const char *body, size_t body_len, const struct kube_req_opts *ro, http_sink_fn sink,
                      void *sink_ud, enum req_kind kind, struct http_resp *resp) {
  kd_rc rc = KD_OK;
  kd_buf url = KD_BUF_INIT(KUBE_MAX_PATH + 8192);
  long timeout = ro && ro->timeout_ms > 0 ? ro->timeout_ms : c->opts.timeout_ms;
  int retries = c->opts.max_retries;
  if (ro && ro->max_retries) retries = ro->max_retries < 0 ? 0 : ro->max_retries;
  struct kreq q = {c, content_type, NULL, {0}, kd_now_ms() + timeout, ro ? ro->cancel : NULL};
  memset(resp, 0, sizeof *resp);
  if ((rc = kd_buf_adds(&url, c->base_url)) != KD_OK || (rc = kd_buf_adds(&url, path)) != KD_OK) {
    rc = kd_fail(rc, "%s %s: request path too long", method, path);
    goto fail;
  }
  struct http_req req = {
      .method = method,
      .url = url.data,
      .prepare = prepare,
      .prepare_ud = &q,
      .tls = &c->tls,
      .body = body,
      .body_len = body_len,
      .sink = sink,
      .sink_ud = sink_ud,
      .body_max = KUBE_MAX_BODY,
      .timeout_ms = kind == REQ_PLAIN ? timeout : -1,
      .low_speed_bytes = 1,
      .low_speed_secs = kind == REQ_WATCH ? WATCH_IDLE_S : kind == REQ_STREAM ? (timeout + 999) / 1000 : 0,
      .cancel = q.cancel,
      .max_retries = retries,
      .idem = ro && ro->idempotent ? HTTP_IDEM_YES : HTTP_IDEM_AUTO,
  };
  bool can_reauth = c->cfg->exec || c->cfg->token_file;
  if ((rc = creds_get(c, false, NULL, q.deadline_ms, q.cancel, &q.cr)) != KD_OK) goto fail;
  for (;;) {
    if (!(ro && ro->priority)) rate_limit(c, q.cancel);
    http_resp_free(resp);
    if ((rc = http_do(c->pool, &req, resp)) != KD_OK) goto fail;
    if (resp->status != 401 || !can_reauth) break;
    /* the credentials may have rotated: get fresh ones, once (creds_get knows which set was refused) */
    can_reauth = false;
    struct creds *refused = q.cr;
    q.cr = NULL;
    rc = creds_get(c, true, refused, q.deadline_ms, q.cancel, &q.cr);
    creds_put(refused);
    if (rc != KD_OK) goto fail;
  }
fail:
  creds_put(q.cr);
  kd_buf_free(&url);
  return rc;
}

/* Turn a non-2xx answer into a code and a message with the server's Status. */
static kd_rc status_error(long code, const char *method, const char *path, const char *body, size_t len) {
  json_error_t jerr;
  json_t *st = body && len ? json_loadb(body, len, JSON_ALLOW_NUL, &jerr) : NULL;
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

kd_rc kube_request_ex(kube_client *c, const char *method, const char *path, const char *content_type,
                      const char *body, size_t body_len, const struct kube_req_opts *ro, json_t **out) {
  struct http_resp resp;
  if (out) *out = NULL;
  kd_rc rc = send_req(c, method, path, content_type, body, body_len, ro, NULL, NULL, REQ_PLAIN, &resp);
  if (rc != KD_OK) goto fail;
  if (!http_ok(resp.status)) {
    rc = status_error(resp.status, method, path, resp.body.data, resp.body.len);
    goto fail;
  }
  if (out) {
    if (resp.body.len == 0) {
      *out = json_null();
    } else {
      json_error_t jerr;
      /* server data: any byte a Kubernetes string holds, \u0000 included, is data */
      *out = json_loadb(resp.body.data, resp.body.len, JSON_ALLOW_NUL, &jerr);
      if (!*out) rc = kd_fail(KD_ERR_PARSE, "%s %s: the server's answer is not JSON: %s", method, path, jerr.text);
    }
  }
fail:
  http_resp_free(&resp);
  return rc;
}

kd_rc kube_request(kube_client *c, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, json_t **out) {
  return kube_request_ex(c, method, path, content_type, body, body_len, NULL, out);
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
                       const struct kube_req_opts *ro, json_t **out) {
  /* json_dumps writes a string holding NUL as \u0000, so every byte read goes back as it came */
  char *body = json_dumps(obj, JSON_COMPACT);
  if (!body) return kd_fail(KD_ERR_NOMEM, "cannot serialise the request body");
  kd_rc rc = kube_request_ex(c, method, path, ctype, body, strlen(body), ro, out);
  free(body);
  return rc;
}

kd_rc kube_get_ex(kube_client *c, const struct kube_res *res, const char *ns, const char *name,
                  const struct kube_req_opts *ro, json_t **out) {
  char path[KUBE_MAX_PATH];
  kd_rc rc = kube_path(res, ns, name, NULL, NULL, path);
  return rc ? rc : kube_request_ex(c, "GET", path, NULL, NULL, 0, ro, out);
}

kd_rc kube_get(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t **out) {
  return kube_get_ex(c, res, ns, name, NULL, out);
}

kd_rc kube_create_ex(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj,
                     const struct kube_req_opts *ro, json_t **out) {
  char path[KUBE_MAX_PATH];
  kd_rc rc = kube_path(res, ns, NULL, NULL, ro && ro->dry_run ? "dryRun=All" : NULL, path);
  return rc ? rc : send_json(c, "POST", path, "application/json", obj, ro, out);
}

kd_rc kube_create(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out) {
  return kube_create_ex(c, res, ns, obj, NULL, out);
}

static kd_rc update(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, const char *sub,
                    const struct kube_req_opts *ro, json_t **out) {
  char path[KUBE_MAX_PATH];
  const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  if (!name) return kd_fail(KD_ERR_INVALID, "update: the object has no metadata.name");
  kd_rc rc = kube_path(res, ns, name, sub, NULL, path);
  return rc ? rc : send_json(c, "PUT", path, "application/json", obj, ro, out);
}

kd_rc kube_update_ex(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj,
                     const struct kube_req_opts *ro, json_t **out) {
  return update(c, res, ns, obj, NULL, ro, out);
}

kd_rc kube_update(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out) {
  return update(c, res, ns, obj, NULL, NULL, out);
}

kd_rc kube_update_status(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out) {
  return update(c, res, ns, obj, "status", NULL, out);
}

kd_rc kube_patch(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t *patch,
                 const struct kube_patch_opts *opts, json_t **out) {
  return kube_patch_ex(c, res, ns, name, patch, opts, NULL, out);
}

kd_rc kube_patch_ex(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t *patch,
                    const struct kube_patch_opts *opts, const struct kube_req_opts *ro, json_t **out) {
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
  if (ro && ro->dry_run) snprintf(query + strlen(query), sizeof query - strlen(query), "%sdryRun=All", query[0] ? "&" : "");
  struct kube_req_opts pro = {0};
  if (ro) pro = *ro, pro.idempotent = false; /* a PATCH is never repeated after it may have been applied */
  kd_rc rc = kube_path(res, ns, name, opts ? opts->subresource : NULL, query, path);
  return rc ? rc : send_json(c, "PATCH", path, ctype, patch, ro ? &pro : NULL, out);
}

kd_rc kube_delete(kube_client *c, const struct kube_res *res, const char *ns, const char *name,
                  const char *propagation, json_t **out) {
  char path[KUBE_MAX_PATH];
  kd_rc rc = kube_path(res, ns, name, NULL, NULL, path);
  if (rc) return rc;
  if (!propagation) return kube_request(c, "DELETE", path, NULL, NULL, 0, out);
  json_t *opts = json_pack("{s:s,s:s,s:s}", "kind", "DeleteOptions", "apiVersion", "v1", "propagationPolicy", propagation);
  if (!opts) return kd_fail(KD_ERR_NOMEM, "out of memory");
  rc = send_json(c, "DELETE", path, "application/json", opts, NULL, out);
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

/* The path of one list page: selectors, page size, continue token (or the starting version). */
static kd_rc list_page_path(const struct kube_res *res, const char *ns, const struct kube_list_opts *opts,
                            const char *limit, const char *cont, char path[KUBE_MAX_PATH]) {
  char q[KUBE_MAX_PATH / 2] = "";
  kd_rc rc;
  if ((rc = add_query(q, sizeof q, "labelSelector", opts ? opts->label_selector : NULL)) ||
      (rc = add_query(q, sizeof q, "fieldSelector", opts ? opts->field_selector : NULL)) ||
      (rc = add_query(q, sizeof q, "limit", limit)) || (rc = add_query(q, sizeof q, "continue", cont)) ||
      (rc = add_query(q, sizeof q, "resourceVersion", !cont && opts ? opts->resource_version : NULL)))
    return rc;
  return kube_path(res, ns, NULL, NULL, q, path);
}

kd_rc kube_list(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_list_opts *opts,
                kube_item_fn fn, void *ud, char **rv) {
  kd_rc rc = KD_OK;
  char *cont = NULL, path[KUBE_MAX_PATH], limit[32];
  json_t *page = NULL;
  if (rv) *rv = NULL;
  snprintf(limit, sizeof limit, "%ld", opts && opts->limit > 0 ? opts->limit : 500L);
  for (;;) {
    if ((rc = list_page_path(res, ns, opts, limit, cont, path)) != KD_OK) goto fail;
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
    const char *next = json_string_value(json_object_get(meta, "continue"));
    free(cont);
    cont = more ? kd_strdup(next) : NULL;
    if (more && next && next[0] && !cont) { /* never a partial list passing for the whole */
      rc = kd_fail(KD_ERR_NOMEM, "out of memory paging %s", path);
      goto fail;
    }
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

/* The streamed list's response sink: the body goes straight through the scanner. */
static kd_rc scan_sink(const char *p, size_t n, void *ud) { return jscan_feed(ud, p, n); }

kd_rc kube_list_stream(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_list_opts *opts,
                       jscan_item_fn fn, void *ud, char **rv) {
  kd_rc rc = KD_OK;
  char *cont = NULL, path[KUBE_MAX_PATH], limit[32];
  struct jscan s;
  struct http_resp resp = {0};
  bool scanning = false;
  if (rv) *rv = NULL;
  snprintf(limit, sizeof limit, "%ld", opts && opts->limit > 0 ? opts->limit : 500L);
  for (;;) {
    if ((rc = list_page_path(res, ns, opts, limit, cont, path)) != KD_OK) goto fail;
    jscan_init(&s, 0, fn, ud);
    scanning = true;
    http_resp_free(&resp);
    if ((rc = send_req(c, "GET", path, NULL, NULL, 0, NULL, scan_sink, &s, REQ_STREAM, &resp)) != KD_OK) {
      if (rc != s.rc) rc = kd_fail_wrap(rc, "listing %s", path); /* the scanner's and fn's messages stand */
      goto fail;
    }
    if (!http_ok(resp.status)) { /* 410 here: the continue token expired */
      rc = status_error(resp.status, "GET", path, resp.body.data, resp.body.len);
      goto fail;
    }
    if ((rc = jscan_finish(&s)) != KD_OK) {
      rc = kd_fail_wrap(rc, "GET %s", path);
      goto fail;
    }
    free(cont);
    cont = kd_strdup(jscan_continue(&s));
    if (jscan_continue(&s) && !cont) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    if (!cont) { /* the last page */
      if (rv && jscan_resource_version(&s) && !(*rv = strdup(jscan_resource_version(&s))))
        rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    jscan_free(&s);
    scanning = false;
  }
fail:
  if (scanning) jscan_free(&s);
  http_resp_free(&resp);
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

static kd_rc discover_group_version(kube_client *c, const char *group, const char *gv, json_t *all, json_t *skipped) {
  char path[KUBE_MAX_PATH];
  json_t *doc = NULL;
  snprintf(path, sizeof path, "%s/%s", group[0] ? "/apis" : "/api", gv);
  kd_rc rc = kube_request(c, "GET", path, NULL, NULL, 0, &doc);
  if (rc == KD_ERR_NOTFOUND || rc == KD_ERR_HTTP) { /* a group that went away or an aggregated API that is down */
    kd_log(KD_LOG_WARN, "discovery: skipping %s: %s", gv, kd_errmsg());
    if (skipped && json_array_size(skipped) < 1000) {
      char msg[800];
      snprintf(msg, sizeof msg, "%s", kd_errmsg());
      msg[kd_utf8_cut(msg, strlen(msg))] = '\0'; /* a message cut mid-character is no JSON string */
      json_t *e = json_pack("{s:s,s:s}", "groupVersion", gv, "error", msg);
      if (!e) e = json_pack("{s:s,s:s}", "groupVersion", gv, "error", "the server could not serve it");
      if (json_array_append_new(skipped, e)) return kd_fail(KD_ERR_NOMEM, "out of memory");
    }
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

kd_rc kube_discover(kube_client *c, bool refresh, json_t **out) { return kube_discover_report(c, refresh, out, NULL); }

kd_rc kube_discover_report(kube_client *c, bool refresh, json_t **out, json_t **skipped_out) {
  if (skipped_out) {
    refresh = true; /* what was skipped is known only from a fresh look */
    if (!(*skipped_out = json_array())) return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  json_t *skipped = skipped_out ? *skipped_out : NULL;
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
  if ((rc = discover_group_version(c, "", "v1", all, skipped))) goto fail;
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
    if ((rc = discover_group_version(c, name, gv, all, skipped))) goto fail;
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
  if (rc != KD_OK && skipped_out) {
    json_decref(*skipped_out);
    *skipped_out = NULL;
  }
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
  json_t *ev = json_loadb(line, len, JSON_ALLOW_NUL, &jerr); /* \u0000 in a string is data */
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

/* The watch's response sink: every chunk of a 2xx answer goes through the splitter. */
static kd_rc watch_sink(const char *p, size_t n, void *ud) {
  struct kube_watch_splitter *s = ud;
  kd_rc rc = kube_watch_splitter_feed(s, p, n);
  if (rc != KD_OK) return rc;
  return s->stopped ? kd_fail(KD_ERR_CANCELLED, "watch: the handler stopped") : KD_OK;
}

kd_rc kube_watch(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_watch_opts *opts,
                 kube_event_fn fn, void *ud, char **last_rv) {
  kd_rc rc;
  char q[KUBE_MAX_PATH / 2] = "", path[KUBE_MAX_PATH], tmo[32];
  struct kube_watch_splitter s;
  struct http_resp resp;
  if (last_rv) *last_rv = NULL;
  snprintf(tmo, sizeof tmo, "%ld", opts && opts->timeout_seconds > 0 ? opts->timeout_seconds : 300L);
  if ((rc = add_query(q, sizeof q, "watch", "1")) || (rc = add_query(q, sizeof q, "allowWatchBookmarks", "true")) ||
      (rc = add_query(q, sizeof q, "timeoutSeconds", tmo)) ||
      (rc = add_query(q, sizeof q, "labelSelector", opts ? opts->label_selector : NULL)) ||
      (rc = add_query(q, sizeof q, "fieldSelector", opts ? opts->field_selector : NULL)) ||
      (rc = add_query(q, sizeof q, "resourceVersion", opts ? opts->resource_version : NULL)) ||
      (rc = kube_path(res, ns, NULL, NULL, q, path)))
    return rc;
  kube_watch_splitter_init(&s, fn, ud);
  struct kube_req_opts ro = {.cancel = opts ? opts->stop : NULL};
  rc = send_req(c, "GET", path, NULL, NULL, 0, &ro, watch_sink, &s, REQ_WATCH, &resp);
  if (s.stopped) rc = KD_OK; /* the handler ended it */
  else if (s.rc != KD_OK) rc = s.rc;
  else if (rc == KD_OK && !http_ok(resp.status)) rc = status_error(resp.status, "GET", path, resp.body.data, resp.body.len);
  if (last_rv) {
    *last_rv = s.last_rv;
    s.last_rv = NULL;
  }
  kube_watch_splitter_free(&s);
  http_resp_free(&resp);
  return rc;
}
