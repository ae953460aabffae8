/* tsrv.h — a scripted HTTP(S) server (libmicrohttpd, 127.0.0.1, in the test process) for the
 * transport and client tests; defined in test_http.c. */
#ifndef KCMDR_TSRV_H
#define KCMDR_TSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tsrv;

/* How a path answers. The first fail_n hits (every hit when fail_n is 0) get the scripted
 * behaviour: sleep sleep_ms, then hang up without an answer (hangup), or answer status (a 2xx
 * with body, anything else with a Kubernetes Status naming the code, Retry-After on 429 when
 * retry_after_s). Later hits get later_status (0 = 200) with later_body (NULL = body). */
struct tsrv_route {
  int status;
  int fail_n;
  const char *body; /* copied */
  size_t body_len;
  int retry_after_s;
  bool hangup;
  int sleep_ms;
  const char *etag;  /* borrowed: a literal */
  const char *ctype; /* borrowed; NULL = application/json */
  int later_status;
  const char *later_body; /* copied */
  size_t later_body_len;
};

/* What the last request carried. */
struct tsrv_last {
  long requests;
  size_t auth_len;
  uint64_t auth_fnv;
  size_t body_len;
  uint64_t body_fnv;
  char method[16];
};

/* Start on a free port (TLS with a fresh self-signed certificate for 127.0.0.1 and kcmdr.test). */
struct tsrv *tsrv_start(bool tls);
void tsrv_stop(struct tsrv *s);
int tsrv_port(const struct tsrv *s);
/* The TLS server's certificate (its own CA), PEM. */
const char *tsrv_cert_pem(void);
/* Set (or replace, resetting its hit count) the route for path (without query). */
void tsrv_add(struct tsrv *s, const char *path, const struct tsrv_route *r);
int tsrv_hits(struct tsrv *s, const char *path);
struct tsrv_last tsrv_last(struct tsrv *s);
/* A 127.0.0.1 port where nothing listens. */
int tsrv_closed_port(void);
/* FNV-1a of n bytes. */
uint64_t tsrv_fnv(const void *p, size_t n);

#endif
