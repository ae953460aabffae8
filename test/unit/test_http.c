/* test_http.c — the HTTP transport against a real HTTP(S) server (libmicrohttpd on 127.0.0.1,
 * run in this process) that answers as scripted per path: which requests are repeated and which
 * never are, streamed bodies rewound for a retry, sinks, captured headers, caps, timeouts,
 * cancel, header injection, and TLS from memory. The same server backs test_kube.c's
 * client-level tests (tsrv_* below). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "tests.h"
#include "tsrv.h"

/* ---- the scripted server ---- */

#define TSRV_ROUTES 32

struct route {
  char path[512];
  struct tsrv_route r;
  char *body, *later_body;
  int hits;
};

struct tsrv {
  struct MHD_Daemon *d;
  int port;
  pthread_mutex_t lock;
  struct route routes[TSRV_ROUTES];
  int nroutes;
  struct tsrv_last last;
  char *cert, *key;
};

struct upload {
  kd_buf body;
};

uint64_t tsrv_fnv(const void *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
  return h;
}

static char tls_dir[64];
static char *cert_pem, *key_pem;

/* A self-signed certificate for 127.0.0.1 and kcmdr.test, made once per run with openssl. */
static int make_cert(void) {
  if (cert_pem) return 0;
  strcpy(tls_dir, "/tmp/kcmdr-tsrv-XXXXXX");
  if (!mkdtemp(tls_dir)) return -1;
  char cmd[1024], path[128];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s/key.pem "
           "-out %s/cert.pem -days 2 -subj /CN=kcmdr-test -addext subjectAltName=IP:127.0.0.1,DNS:kcmdr.test "
           ">/dev/null 2>&1",
           tls_dir, tls_dir);
  if (system(cmd) != 0) return -1;
  snprintf(path, sizeof path, "%s/cert.pem", tls_dir);
  if (kd_read_file(path, 1 << 20, &cert_pem, NULL) != KD_OK) return -1;
  snprintf(path, sizeof path, "%s/key.pem", tls_dir);
  if (kd_read_file(path, 1 << 20, &key_pem, NULL) != KD_OK) return -1;
  snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
  return system(cmd) == 0 ? 0 : -1;
}

const char *tsrv_cert_pem(void) { return cert_pem; }

static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *body, size_t len,
                             const struct tsrv_route *r) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", r && r->ctype ? r->ctype : "application/json");
  if (r && r->etag) MHD_add_response_header(resp, "ETag", r->etag);
  if (r && r->retry_after_s && status == 429) {
    char ra[32];
    snprintf(ra, sizeof ra, "%d", r->retry_after_s);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
  (void)version;
  struct tsrv *s = cls;
  struct upload *u = *con_cls;
  if (!u) { /* first call: headers only */
    if (!(u = calloc(1, sizeof *u))) return MHD_NO;
    kd_buf_init(&u->body, 64u << 20);
    *con_cls = u;
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (kd_buf_add(&u->body, upload_data, *upload_data_size) != KD_OK) return MHD_NO;
    *upload_data_size = 0;
    return MHD_YES;
  }
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  pthread_mutex_lock(&s->lock);
  s->last.requests++;
  s->last.auth_len = auth ? strlen(auth) : 0;
  s->last.auth_fnv = auth ? tsrv_fnv(auth, strlen(auth)) : 0;
  s->last.body_len = u->body.len;
  s->last.body_fnv = tsrv_fnv(u->body.data ? u->body.data : "", u->body.len);
  snprintf(s->last.method, sizeof s->last.method, "%s", method);
  struct route *rt = NULL;
  for (int i = 0; i < s->nroutes; i++)
    if (strcmp(s->routes[i].path, url) == 0) rt = &s->routes[i];
  struct tsrv_route r = rt ? rt->r : (struct tsrv_route){0};
  int hit = rt ? ++rt->hits : 0;
  bool later = rt && r.fail_n && hit > r.fail_n;
  const char *src = later && rt->later_body ? rt->later_body : rt ? rt->body : NULL;
  size_t blen = later && rt->later_body ? r.later_body_len : rt ? r.body_len : 0;
  char *body = NULL;
  if (src && (body = malloc(blen ? blen : 1))) memcpy(body, src, blen);
  pthread_mutex_unlock(&s->lock);
  enum MHD_Result ret;
  char msg[256];
  if (!rt) {
    int n = snprintf(msg, sizeof msg, "{\"kind\":\"Status\",\"code\":404,\"reason\":\"NotFound\",\"message\":\"no route %s\"}", url);
    ret = reply(conn, 404, msg, (size_t)n, NULL);
  } else if (r.fail_n == 0 || hit <= r.fail_n) { /* the scripted behaviour */
    if (r.sleep_ms) usleep((useconds_t)r.sleep_ms * 1000);
    if (r.hangup) {
      ret = MHD_NO; /* close the connection without an answer */
    } else if (r.status >= 200 && r.status < 300) {
      ret = reply(conn, r.status, body ? body : "", blen, &r);
    } else {
      int n = snprintf(msg, sizeof msg, "{\"kind\":\"Status\",\"code\":%d,\"message\":\"scripted %d\"}", r.status,
                       r.status);
      ret = reply(conn, r.status, msg, (size_t)n, &r);
    }
  } else if (r.later_status && (r.later_status < 200 || r.later_status > 299)) {
    int n = snprintf(msg, sizeof msg, "{\"kind\":\"Status\",\"code\":%d,\"message\":\"scripted %d\"}",
                     r.later_status, r.later_status);
    ret = reply(conn, r.later_status, msg, (size_t)n, &r);
  } else {
    ret = reply(conn, r.later_status ? r.later_status : 200, body ? body : "", blen, &r);
  }
  free(body);
  return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)conn, (void)toe;
  struct upload *u = *con_cls;
  if (!u) return;
  kd_buf_free(&u->body);
  free(u);
  *con_cls = NULL;
}

struct tsrv *tsrv_start(bool tls) {
  if (tls && make_cert() != 0) return NULL;
  struct tsrv *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  pthread_mutex_init(&s->lock, NULL);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
  if (tls)
    s->d = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_HTTPS_MEM_KEY, key_pem,
                            MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
  else
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
                            completed, NULL, MHD_OPTION_END);
  if (!s->d) {
    free(s);
    return NULL;
  }
  s->port = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT)->port;
  return s;
}

void tsrv_stop(struct tsrv *s) {
  if (!s) return;
  MHD_stop_daemon(s->d);
  for (int i = 0; i < s->nroutes; i++) free(s->routes[i].body), free(s->routes[i].later_body);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

int tsrv_port(const struct tsrv *s) { return s->port; }

void tsrv_add(struct tsrv *s, const char *path, const struct tsrv_route *r) {
  pthread_mutex_lock(&s->lock);
  struct route *rt = NULL;
  for (int i = 0; i < s->nroutes; i++)
    if (strcmp(s->routes[i].path, path) == 0) rt = &s->routes[i];
  if (!rt && s->nroutes < TSRV_ROUTES) rt = &s->routes[s->nroutes++];
  if (rt) {
    free(rt->body);
    free(rt->later_body);
    snprintf(rt->path, sizeof rt->path, "%s", path);
    rt->r = *r;
    rt->hits = 0;
    rt->body = rt->later_body = NULL;
    if (r->body && (rt->body = malloc(r->body_len ? r->body_len : 1))) memcpy(rt->body, r->body, r->body_len);
    if (r->later_body && (rt->later_body = malloc(r->later_body_len ? r->later_body_len : 1)))
      memcpy(rt->later_body, r->later_body, r->later_body_len);
    rt->r.body = rt->r.later_body = NULL;
    rt->r.etag = r->etag; /* string literals in the tests */
  }
  pthread_mutex_unlock(&s->lock);
}

int tsrv_hits(struct tsrv *s, const char *path) {
  int n = 0;
  pthread_mutex_lock(&s->lock);
  for (int i = 0; i < s->nroutes; i++)
    if (strcmp(s->routes[i].path, path) == 0) n = s->routes[i].hits;
  pthread_mutex_unlock(&s->lock);
  return n;
}

struct tsrv_last tsrv_last(struct tsrv *s) {
  pthread_mutex_lock(&s->lock);
  struct tsrv_last l = s->last;
  pthread_mutex_unlock(&s->lock);
  return l;
}

/* A port on 127.0.0.1 where nothing listens (bound, then closed). */
int tsrv_closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0};
  socklen_t len = sizeof sa;
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    if (fd >= 0) close(fd);
    return 1;
  }
  close(fd);
  return ntohs(sa.sin_port);
}

/* ---- fixtures ---- */

static struct tsrv *srv;
static http_pool *pool;
static char base[64];

static int setup(void **state) {
  (void)state;
  if (!(srv = tsrv_start(false))) return -1;
  snprintf(base, sizeof base, "http://127.0.0.1:%d", tsrv_port(srv));
  return http_pool_new(NULL, &pool) == KD_OK ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  http_pool_free(pool);
  tsrv_stop(srv);
  return 0;
}

static char *url_of(const char *path) {
  static char u[256];
  snprintf(u, sizeof u, "%s%s", base, path);
  return u;
}

/* A request with fast retries for tests. */
static struct http_req req_for(const char *method, const char *path) {
  return (struct http_req){.method = method, .url = url_of(path), .max_retries = 3, .backoff_base_ms = 10,
                           .backoff_cap_ms = 40};
}

/* ---- the rule, as a table ---- */

static void retry_rule_table(void **state) {
  (void)state;
  struct {
    const char *method;
    enum http_idem idem;
    enum http_outcome out;
    long status;
    bool want;
  } t[] = {
      /* idempotent: transport failures, 408, 429, 5xx except 501/505 */
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_UNSENT, 0, true},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_SENT, 0, true},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_PERMANENT, 0, false},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 200, false},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 404, false},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 409, false},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 408, true},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 429, true},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 500, true},
      {"PUT", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 503, true},
      {"DELETE", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 504, true},
      {"HEAD", HTTP_IDEM_AUTO, HTTP_OUT_SENT, 0, true},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 501, false},
      {"GET", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 505, false},
      /* non-idempotent: only surely unsent, or 429 */
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_UNSENT, 0, true},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 429, true},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_SENT, 0, false},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 500, false},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 502, false},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 503, false},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 504, false},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 408, false},
      {"PATCH", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 500, false},
      {"PATCH", HTTP_IDEM_AUTO, HTTP_OUT_SENT, 0, false},
      {"PATCH", HTTP_IDEM_AUTO, HTTP_OUT_UNSENT, 0, true},
      {"PATCH", HTTP_IDEM_AUTO, HTTP_OUT_RESPONSE, 429, true},
      {"POST", HTTP_IDEM_AUTO, HTTP_OUT_PERMANENT, 0, false},
      /* the caller's word wins over the method */
      {"POST", HTTP_IDEM_YES, HTTP_OUT_RESPONSE, 500, true},
      {"POST", HTTP_IDEM_YES, HTTP_OUT_SENT, 0, true},
      {"PUT", HTTP_IDEM_NO, HTTP_OUT_RESPONSE, 503, false},
      {"DELETE", HTTP_IDEM_NO, HTTP_OUT_SENT, 0, false},
      {"PUT", HTTP_IDEM_NO, HTTP_OUT_UNSENT, 0, true},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(t); i++) {
    bool got = http_retryable(http_idempotent(t[i].method, t[i].idem), t[i].out, t[i].status);
    if (got != t[i].want)
      fail_msg("row %zu: %s idem=%d outcome=%d status=%ld: got %d", i, t[i].method, t[i].idem, t[i].out, t[i].status, got);
  }
}

static void backoff_and_retry_after(void **state) {
  (void)state;
  for (unsigned seed = 0; seed < 300; seed++) {
    for (int a = 0; a < 30; a++) {
      int64_t full = 200;
      for (int i = 0; i < a && full < 10000; i++) full *= 2;
      if (full > 10000) full = 10000;
      int64_t d = http_backoff_ms(a, 200, 10000, 0, seed);
      assert_true(d >= full / 2 && d <= full);
      /* Retry-After is a floor, cut to a minute (tried: a hostile "Retry-After: 86400") */
      assert_int_equal(http_backoff_ms(a, 200, 10000, 30000, seed), 30000);
      assert_int_equal(http_backoff_ms(a, 200, 10000, 86400000, seed), HTTP_MAX_RETRY_AFTER_MS);
      assert_int_equal(http_backoff_ms(a, 10, 40, 1000, seed), 1000); /* independent of the cap */
    }
  }
}

/* ---- the rule, on a real server ---- */

static void idempotent_retried_on_5xx(void **state) {
  (void)state;
  struct tsrv_route r = {.status = 503, .fail_n = 2, .body = "{\"ok\":1}", .body_len = 8};
  tsrv_add(srv, "/flaky", &r);
  struct http_req q = req_for("GET", "/flaky");
  struct http_resp resp;
  long before = http_pool_requests(pool);
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.attempts, 3);
  assert_int_equal(tsrv_hits(srv, "/flaky"), 3);
  assert_int_equal(http_pool_requests(pool) - before, 3);
  assert_int_equal(resp.body.len, 8);
  assert_memory_equal(resp.body.data, "{\"ok\":1}", 8);
  http_resp_free(&resp);
  /* tried: retries exhausted: the last error answer is returned, its body kept for the message */
  r.fail_n = 0;
  tsrv_add(srv, "/down", &r);
  q = req_for("DELETE", "/down");
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 503);
  assert_int_equal(resp.attempts, 4);
  assert_non_null(strstr(resp.body.data, "scripted 503"));
  http_resp_free(&resp);
}

static void post_and_patch_never_resent_after_5xx(void **state) {
  (void)state;
  const char *methods[] = {"POST", "PATCH"};
  long codes[] = {500, 502, 503, 504};
  for (size_t m = 0; m < 2; m++) {
    for (size_t i = 0; i < KD_ARRAY_LEN(codes); i++) {
      /* tried: a create the server may have committed before answering 5xx: it must go out once */
      struct tsrv_route r = {.status = (int)codes[i]};
      tsrv_add(srv, "/create", &r);
      struct http_req q = req_for(methods[m], "/create");
      q.body = "{\"a\":1}";
      q.body_len = 7;
      struct http_resp resp;
      assert_int_equal(http_do(pool, &q, &resp), KD_OK);
      assert_int_equal(resp.status, codes[i]);
      assert_int_equal(resp.attempts, 1);
      assert_int_equal(tsrv_hits(srv, "/create"), 1);
      http_resp_free(&resp);
    }
  }
  /* the same with the caller's word that a repeat is harmless: retried */
  struct tsrv_route r = {.status = 500};
  tsrv_add(srv, "/create", &r);
  struct http_req q = req_for("POST", "/create");
  q.idem = HTTP_IDEM_YES;
  struct http_resp resp;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(tsrv_hits(srv, "/create"), 4);
  http_resp_free(&resp);
}

static void post_resent_after_429_with_retry_after(void **state) {
  (void)state;
  struct tsrv_route r = {.status = 429, .fail_n = 1, .retry_after_s = 1, .body = "{}", .body_len = 2};
  tsrv_add(srv, "/busy", &r);
  struct http_req q = req_for("POST", "/busy");
  q.body = "x";
  q.body_len = 1;
  struct http_resp resp;
  int64_t t0 = kd_now_ms();
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  int64_t took = kd_now_ms() - t0;
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.attempts, 2);
  assert_true(took >= 950); /* Retry-After: 1 honoured over the 10 ms backoff */
  assert_int_equal(tsrv_last(srv).body_len, 1);
  http_resp_free(&resp);
}

static void post_resent_only_when_unsent(void **state) {
  (void)state;
  char u[64];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/x", tsrv_closed_port());
  /* tried: nothing listening: the request never left, so a POST is repeated */
  struct http_req q = {.method = "POST", .url = u, .body = "x", .body_len = 1, .max_retries = 2,
                       .backoff_base_ms = 10, .backoff_cap_ms = 20};
  struct http_resp resp;
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_TRANSPORT);
  assert_int_equal(resp.attempts, 3);
  assert_non_null(strstr(kd_errmsg(), u));
  http_resp_free(&resp);
  /* tried: the server takes the request and hangs up without an answer: it may have acted. On
   * a kept-alive connection (one handle, warmed by a GET) curl itself would quietly re-send it. */
  http_pool *one = NULL;
  struct http_pool_opts po = {NULL, 1};
  assert_int_equal(http_pool_new(&po, &one), KD_OK);
  struct tsrv_route r = {.hangup = true}, ok = {.status = 200, .body = "{}", .body_len = 2};
  tsrv_add(srv, "/hangup", &r);
  tsrv_add(srv, "/ok", &ok);
  q = req_for("GET", "/ok");
  assert_int_equal(http_do(one, &q, &resp), KD_OK);
  http_resp_free(&resp);
  q = req_for("POST", "/hangup");
  q.body = "x";
  q.body_len = 1;
  assert_int_equal(http_do(one, &q, &resp), KD_ERR_TRANSPORT);
  assert_int_equal(resp.attempts, 1);
  assert_int_equal(tsrv_hits(srv, "/hangup"), 1);
  http_resp_free(&resp);
  q = req_for("GET", "/hangup"); /* a GET may be repeated */
  assert_int_equal(http_do(one, &q, &resp), KD_ERR_TRANSPORT);
  assert_true(resp.attempts == 4 && tsrv_hits(srv, "/hangup") >= 5);
  http_resp_free(&resp);
  http_pool_free(one);
}

/* ---- bodies ---- */

struct src {
  size_t len, off;
  int rewinds, reads;
};

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + 3 + (i >> 13)); }

static kd_rc src_read(char *buf, size_t max, size_t *got, void *ud) {
  struct src *s = ud;
  size_t n = s->len - s->off < max ? s->len - s->off : max;
  for (size_t i = 0; i < n; i++) buf[i] = (char)pattern(s->off + i);
  s->off += n;
  s->reads++;
  *got = n;
  return KD_OK;
}

static kd_rc src_rewind(void *ud) {
  struct src *s = ud;
  s->off = 0;
  s->rewinds++;
  return KD_OK;
}

static void streamed_body_rewound_for_retry(void **state) {
  (void)state;
  size_t len = (3u << 20) + 17;
  unsigned char *want = malloc(len);
  assert_non_null(want);
  for (size_t i = 0; i < len; i++) want[i] = pattern(i);
  struct tsrv_route r = {.status = 500, .fail_n = 1, .etag = "\"part-1\""};
  tsrv_add(srv, "/part", &r);
  struct src s = {len, 0, 0, 0};
  struct http_req q = req_for("PUT", "/part");
  q.body_read = src_read;
  q.body_rewind = src_rewind;
  q.body_ud = &s;
  q.body_len = len;
  struct http_resp resp;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.attempts, 2);
  assert_true(s.rewinds >= 1);
  /* the server got every byte, in order, on the attempt that counted */
  struct tsrv_last l = tsrv_last(srv);
  assert_int_equal(l.body_len, len);
  assert_true(l.body_fnv == tsrv_fnv(want, len));
  assert_string_equal(resp.etag, "\"part-1\"");
  http_resp_free(&resp);
  /* tried: a body that cannot be rewound is not re-sent */
  tsrv_add(srv, "/part", &r);
  s = (struct src){len, 0, 0, 0};
  q.body_rewind = NULL;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 500);
  assert_int_equal(resp.attempts, 1);
  http_resp_free(&resp);
  /* tried: a reader that gives more than it announced */
  tsrv_add(srv, "/part", &(struct tsrv_route){.status = 200});
  s = (struct src){len, 0, 0, 0};
  q.body_len = 1000;
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_INVALID);
  http_resp_free(&resp);
  free(want);
}

struct sink {
  kd_buf got;
  int calls;
  size_t fail_after;
};

static kd_rc sink_fn(const char *p, size_t n, void *ud) {
  struct sink *k = ud;
  k->calls++;
  if (k->fail_after && k->got.len + n > k->fail_after) return kd_fail(KD_ERR_IO, "sink full");
  return kd_buf_add(&k->got, p, n);
}

struct hdrs_seen {
  char etag[64];
  int n;
};

static void on_hdr(const char *name, const char *value, void *ud) {
  struct hdrs_seen *h = ud;
  h->n++;
  if (strcasecmp(name, "etag") == 0) snprintf(h->etag, sizeof h->etag, "%s", value);
}

static void sink_headers_and_caps(void **state) {
  (void)state;
  size_t len = 700 * 1024 + 5;
  char *body = malloc(len);
  assert_non_null(body);
  for (size_t i = 0; i < len; i++) body[i] = (char)pattern(i);
  body[10] = '\0'; /* bytes, not a string */
  struct tsrv_route r = {.status = 200, .body = body, .body_len = len, .etag = "\"abc\""};
  tsrv_add(srv, "/big", &r);
  struct sink k = {KD_BUF_INIT(8u << 20), 0, 0};
  struct hdrs_seen hs = {"", 0};
  struct http_req q = req_for("GET", "/big");
  q.sink = sink_fn;
  q.sink_ud = &k;
  q.on_header = on_hdr;
  q.header_ud = &hs;
  struct http_resp resp;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 200);
  assert_int_equal(k.got.len, len);
  assert_memory_equal(k.got.data, body, len);
  assert_int_equal(resp.body.len, 0); /* streamed, not buffered */
  assert_string_equal(resp.etag, "\"abc\"");
  assert_string_equal(hs.etag, "\"abc\"");
  assert_true(resp.content_length == (int64_t)len);
  assert_string_equal(resp.content_type, "application/json");
  http_resp_free(&resp);
  /* tried: the sink refuses part-way: its code and message come back, nothing is repeated */
  kd_buf_reset(&k.got);
  k.fail_after = 100000;
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_IO);
  assert_string_equal(kd_errmsg(), "sink full");
  assert_int_equal(resp.attempts, 1);
  http_resp_free(&resp);
  /* tried: an error answer never reaches the sink; its body is kept for the message */
  kd_buf_reset(&k.got);
  k.calls = 0;
  q.url = url_of("/nothing-here");
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 404);
  assert_int_equal(k.calls, 0);
  assert_non_null(strstr(resp.body.data, "no route /nothing-here"));
  http_resp_free(&resp);
  /* tried: an in-memory answer over the caller's cap */
  q = req_for("GET", "/big");
  q.body_max = 1000;
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_TOOBIG);
  assert_int_equal(resp.attempts, 1);
  http_resp_free(&resp);
  q.body_max = 0;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.body.len, len);
  assert_memory_equal(resp.body.data, body, len);
  http_resp_free(&resp);
  kd_buf_free(&k.got);
  free(body);
}

/* ---- limits and cancel ---- */

static volatile int cancel_flag;

static void *set_cancel(void *arg) {
  (void)arg;
  usleep(300 * 1000);
  cancel_flag = 1;
  return NULL;
}

static void timeouts_and_cancel(void **state) {
  (void)state;
  struct tsrv_route r = {.status = 200, .sleep_ms = 2500, .body = "{}", .body_len = 2};
  tsrv_add(srv, "/slow", &r);
  struct http_req q = req_for("GET", "/slow");
  q.max_retries = 0;
  q.timeout_ms = 300;
  struct http_resp resp;
  int64_t t0 = kd_now_ms();
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_TIMEOUT);
  assert_true(kd_now_ms() - t0 < 1500);
  http_resp_free(&resp);
  /* a low-speed limit instead of a total timeout (large transfers) */
  q.timeout_ms = -1;
  q.low_speed_bytes = 1000;
  q.low_speed_secs = 1;
  t0 = kd_now_ms();
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_TIMEOUT);
  assert_true(kd_now_ms() - t0 < 2400);
  http_resp_free(&resp);
  /* cancel: checked while the server is silent */
  q.low_speed_secs = 0;
  q.cancel = &cancel_flag;
  cancel_flag = 0;
  pthread_t th;
  pthread_create(&th, NULL, set_cancel, NULL);
  t0 = kd_now_ms();
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_CANCELLED);
  assert_true(kd_now_ms() - t0 < 1500);
  pthread_join(th, NULL);
  http_resp_free(&resp);
  /* a set flag stops a request before it starts */
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_CANCELLED);
  assert_int_equal(resp.attempts, 0);
  http_resp_free(&resp);
}

/* ---- headers ---- */

struct prep {
  const char *token;
  int calls;
  int attempts_seen[8];
};

static kd_rc prep_fn(struct http_hdrs *h, const struct http_tls **tls, int attempt, void *ud) {
  (void)tls;
  struct prep *p = ud;
  if (p->calls < 8) p->attempts_seen[p->calls] = attempt;
  p->calls++;
  return http_hdrs_add2(h, "Authorization", "Bearer ", p->token);
}

static void headers_per_attempt_without_fixed_buffers(void **state) {
  (void)state;
  size_t tl = 40 * 1024; /* EKS/OIDC tokens run to several KiB */
  char *tok = malloc(tl + 1);
  assert_non_null(tok);
  for (size_t i = 0; i < tl; i++) tok[i] = "abcdefghijklmnopqrstuvwxyz0123456789-_."[i % 39];
  tok[tl] = '\0';
  struct tsrv_route r = {.status = 503, .fail_n = 2, .body = "{}", .body_len = 2};
  tsrv_add(srv, "/auth", &r);
  struct prep p = {tok, 0, {0}};
  struct http_req q = req_for("GET", "/auth");
  q.prepare = prep_fn;
  q.prepare_ud = &p;
  struct http_resp resp;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 200);
  /* the hook ran before every attempt */
  assert_int_equal(p.calls, 3);
  assert_int_equal(p.attempts_seen[0], 0);
  assert_int_equal(p.attempts_seen[2], 2);
  /* the server saw the whole token */
  char *want = malloc(tl + 8);
  assert_non_null(want);
  memcpy(want, "Bearer ", 7);
  memcpy(want + 7, tok, tl + 1);
  struct tsrv_last l = tsrv_last(srv);
  assert_int_equal(l.auth_len, tl + 7);
  assert_true(l.auth_fnv == tsrv_fnv(want, tl + 7));
  http_resp_free(&resp);
  /* tried: a token over the 64 KiB header budget: refused before anything is sent */
  char *huge = malloc(70 * 1024 + 1);
  assert_non_null(huge);
  memset(huge, 'a', 70 * 1024);
  huge[70 * 1024] = '\0';
  p = (struct prep){huge, 0, {0}};
  long before = http_pool_requests(pool);
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), "Authorization"));
  assert_null(strstr(kd_errmsg(), "aaaa")); /* never the value */
  assert_int_equal(http_pool_requests(pool), before);
  http_resp_free(&resp);
  /* tried: header injection through a token with a line break, and a bad fixed header line */
  p = (struct prep){"abc\r\nX-Evil: 1", 0, {0}};
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_INVALID);
  http_resp_free(&resp);
  const char *bad[] = {"NoColonHere", NULL};
  q = req_for("GET", "/auth");
  q.headers = bad;
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_INVALID);
  http_resp_free(&resp);
  free(huge);
  free(want);
  free(tok);
}

/* ---- TLS from memory ---- */

static void tls_from_memory(void **state) {
  (void)state;
  struct tsrv *ts = tsrv_start(true);
  assert_non_null(ts);
  struct tsrv_route r = {.status = 200, .body = "{}", .body_len = 2};
  tsrv_add(ts, "/tls", &r);
  char u[128], cto[128];
  snprintf(u, sizeof u, "https://127.0.0.1:%d/tls", tsrv_port(ts));
  struct http_tls tls = {.ca_pem = tsrv_cert_pem(), .ca_pem_len = strlen(tsrv_cert_pem())};
  struct http_req q = {.method = "GET", .url = u, .tls = &tls, .max_retries = 3, .backoff_base_ms = 10};
  struct http_resp resp;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 200);
  http_resp_free(&resp);
  /* tried: the system CAs do not know this server: a permanent failure, not retried */
  q.tls = NULL;
  assert_int_equal(http_do(pool, &q, &resp), KD_ERR_TRANSPORT);
  assert_int_equal(resp.attempts, 1);
  http_resp_free(&resp);
  /* insecure skips verification */
  struct http_tls ins = {.insecure = true};
  q.tls = &ins;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  http_resp_free(&resp);
  /* tls-server-name: the URL names the certificate's host, CONNECT_TO the real address */
  snprintf(u, sizeof u, "https://kcmdr.test:%d/tls", tsrv_port(ts));
  snprintf(cto, sizeof cto, "kcmdr.test:%d:127.0.0.1:%d", tsrv_port(ts), tsrv_port(ts));
  tls.connect_to = cto;
  q.tls = &tls;
  assert_int_equal(http_do(pool, &q, &resp), KD_OK);
  assert_int_equal(resp.status, 200);
  http_resp_free(&resp);
  tsrv_stop(ts);
}

int test_http(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(retry_rule_table),
      cmocka_unit_test(backoff_and_retry_after),
      cmocka_unit_test(idempotent_retried_on_5xx),
      cmocka_unit_test(post_and_patch_never_resent_after_5xx),
      cmocka_unit_test(post_resent_after_429_with_retry_after),
      cmocka_unit_test(post_resent_only_when_unsent),
      cmocka_unit_test(streamed_body_rewound_for_retry),
      cmocka_unit_test(sink_headers_and_caps),
      cmocka_unit_test(timeouts_and_cancel),
      cmocka_unit_test(headers_per_attempt_without_fixed_buffers),
      cmocka_unit_test(tls_from_memory),
  };
  return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
