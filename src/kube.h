/* kube.h — a small Kubernetes API client on the shared HTTP transport (http.h) and jansson:
 * requests with auth, retries and a client-side rate limit, CRUD on any resource, paging,
 * discovery and streaming watches.
 *
 * A kube_client is safe to share between threads: each request borrows a curl handle from the
 * client's pool (connections and TLS sessions are reused, HTTP/2 where the server offers it).
 * Credentials are immutable sets swapped under a lock of their own: an exec plugin runs on the
 * client's refresher thread, never under a lock a request takes, and requests go on with the
 * current token while a renewal runs (they wait only when no usable credential exists).
 *
 * Server data is data: every JSON answer and watch event is parsed with NUL allowed, and
 * objects are written back byte-exact (jansson escapes NUL as \u0000 when serialising). */
#ifndef KCMDR_KUBE_H
#define KCMDR_KUBE_H

#include <jansson.h>
#include <stdbool.h>

#include "jsonscan.h"
#include "kubeconfig.h"
#include "util.h"

#define KUBE_MAX_BODY (256u << 20)   /* largest response body accepted */
#define KUBE_MAX_EVENT (64u << 20)   /* largest single watch event line */
#define KUBE_MAX_PATH 4096

typedef struct kube_client kube_client;

struct kube_client_opts {
  double qps;           /* client-side rate limit; 0 = default (1000) */
  int burst;            /* 0 = default (2000) */
  int max_retries;      /* retries (as http.h's rule allows); 0 = default (6), -1 = none */
  long timeout_ms;      /* per request, not watches; 0 = default (60 s) */
  const char *user_agent;
};

/* Build a client for cfg (the client takes ownership of cfg, also on failure).
 * KD_ERR_NOMEM, KD_ERR_CONFIG (also for what kubecfg_check refuses: credentials for an
 * http:// server, insecure-skip-tls-verify with a CA). */
kd_rc kube_client_new(struct kubecfg *cfg, const struct kube_client_opts *opts, kube_client **out);
/* Load the configuration (see kubecfg_load) and build a client. */
kd_rc kube_client_from_opts(const struct kubecfg_opts *copts, const struct kube_client_opts *opts, kube_client **out);
/* Release the client and every connection. NULL is fine. */
void kube_client_free(kube_client *c);
/* The namespace from the configuration (context or service account); never NULL. */
const char *kube_client_namespace(const kube_client *c);
/* The resolved configuration (owned by the client). */
const struct kubecfg *kube_client_config(const kube_client *c);
/* The bearer token the next request would send (refreshed first: re-read file, exec plugin
 * when expired, or always when force; waits for a running plugin up to its 60 s limit). *out is
 * a copy (caller frees) or NULL when the client authenticates otherwise. Fails as the plugin or
 * file read fails. */
kd_rc kube_client_token(kube_client *c, bool force, char **out);
/* Number of HTTP requests sent so far (retries included), for metrics and tests. */
long kube_client_requests(const kube_client *c);

/* One resource type: group "" is the core group. */
struct kube_res {
  char group[128];
  char version[64];
  char resource[128]; /* plural, lower case */
  char kind[128];
  bool namespaced;
};

/* Fill *res from "resource", "resource.group", "Kind", "Kind.group" or "group/version/resource"
 * using discovery (cached; refreshed once when the name is not found). KD_ERR_NOTFOUND with a
 * message naming what was looked up. */
kd_rc kube_resolve(kube_client *c, const char *name, struct kube_res *res);
/* Every resource the server offers at the preferred version of each group, as a JSON array of
 * {group, version, resource, kind, namespaced, verbs} (new reference). Cached until refreshed. */
kd_rc kube_discover(kube_client *c, bool refresh, json_t **out);
/* kube_discover, always fresh, also saying which group-versions the server listed but could not
 * serve (a 404 or 5xx, e.g. an aggregated API whose Service has no endpoints): *skipped gets an
 * array of {groupVersion, error} (new reference, [] when none). Fails as kube_discover. */
kd_rc kube_discover_report(kube_client *c, bool refresh, json_t **out, json_t **skipped);

/* Build the URL path of res (ns and name may be NULL; sub e.g. "status"; query without '?').
 * KD_ERR_TOOBIG when it does not fit in KUBE_MAX_PATH. */
kd_rc kube_path(const struct kube_res *res, const char *ns, const char *name, const char *sub, const char *query,
                char out[KUBE_MAX_PATH]);
/* Percent-encode s for a URL query value into out (size n). KD_ERR_TOOBIG if it does not fit. */
kd_rc kube_query_escape(const char *s, char *out, size_t n);

/* Per-request options; a zeroed struct (or NULL) means the client's defaults. */
struct kube_req_opts {
  long timeout_ms;             /* this request's timeout per attempt; 0 = the client's */
  int max_retries;             /* 0 = the client's; -1 = no retry at all */
  volatile const int *cancel;  /* non-zero: stop within about a second (KD_ERR_CANCELLED) */
  bool priority;               /* skip the client-side rate limit (leader election) */
  bool idempotent;             /* a POST/PATCH the caller knows is safe to repeat (a create whose
                                  repeat can only meet 409 AlreadyExists, which the caller
                                  resolves): retried like a GET and sent on pooled connections */
  bool dry_run;                /* kube_create_ex, kube_patch_ex: ?dryRun=All (validated and
                                  admitted, never persisted; the answer is the object as it
                                  would be) */
};

/* One request. path starts with '/'; body may be NULL. On 2xx *out (may be NULL) gets the
 * parsed JSON body (null when empty; NUL in strings kept). Non-2xx answers map to
 * KD_ERR_NOTFOUND, _CONFLICT, _GONE, _UNAUTHORIZED, _FORBIDDEN, _INVALIDOBJ or _HTTP with the
 * server's Status message; transport failures to KD_ERR_TRANSPORT or KD_ERR_TIMEOUT.
 * Retries (capped exponential backoff with jitter, Retry-After honoured) follow http.h's rule:
 * GET, PUT and DELETE on transport failures, 429 and 5xx; POST and PATCH only when the request
 * surely never reached the server (resolve/connect failure) or the answer was 429 — never after
 * a 5xx or a reset, since the server may have applied it; they also go out on a new connection
 * (curl would silently re-send them when a kept-alive one turns out dead), which costs about
 * 2-3 ms per POST/PATCH on loopback TLS. A 401 with renewable credentials
 * (exec plugin, token file) is sent once more with fresh ones. */
kd_rc kube_request(kube_client *c, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, json_t **out);
/* kube_request with per-request options (ro may be NULL). */
kd_rc kube_request_ex(kube_client *c, const char *method, const char *path, const char *content_type,
                      const char *body, size_t body_len, const struct kube_req_opts *ro, json_t **out);

/* Typed helpers; ns NULL means cluster-scoped (or all namespaces for list). The _ex forms take
 * per-request options (e.g. a Lease renewal: short timeout, no retries, no rate limit). */
kd_rc kube_get(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t **out);
kd_rc kube_get_ex(kube_client *c, const struct kube_res *res, const char *ns, const char *name,
                  const struct kube_req_opts *ro, json_t **out);
/* POST obj: never re-sent after it may have reached the server (a 5xx or a reset is returned). */
kd_rc kube_create(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out);
kd_rc kube_create_ex(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj,
                     const struct kube_req_opts *ro, json_t **out);
/* PUT obj (its metadata.resourceVersion guards against lost updates; 409 on a stale one, which
 * also happens when a retried PUT had in fact been applied: re-read and compare). */
kd_rc kube_update(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out);
kd_rc kube_update_ex(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj,
                     const struct kube_req_opts *ro, json_t **out);
kd_rc kube_update_status(kube_client *c, const struct kube_res *res, const char *ns, json_t *obj, json_t **out);

enum kube_patch_type { KUBE_PATCH_MERGE, KUBE_PATCH_JSON, KUBE_PATCH_APPLY };
struct kube_patch_opts {
  enum kube_patch_type type;
  const char *field_manager; /* required for apply */
  bool force;                /* apply: take ownership of conflicting fields */
  const char *subresource;   /* e.g. "status" */
};
/* PATCH: like POST, never re-sent after it may have reached the server. */
kd_rc kube_patch(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t *patch,
                 const struct kube_patch_opts *opts, json_t **out);
/* kube_patch with per-request options (ro may be NULL; its idempotent flag is ignored). */
kd_rc kube_patch_ex(kube_client *c, const struct kube_res *res, const char *ns, const char *name, json_t *patch,
                    const struct kube_patch_opts *opts, const struct kube_req_opts *ro, json_t **out);
/* propagation: NULL (server default), "Foreground", "Background" or "Orphan". */
kd_rc kube_delete(kube_client *c, const struct kube_res *res, const char *ns, const char *name,
                  const char *propagation, json_t **out);

struct kube_list_opts {
  const char *label_selector;
  const char *field_selector;
  long limit;                 /* page size; 0 = 500 */
  const char *resource_version;
};
/* Called once per item of a list (borrowed reference); return false to stop early. */
typedef bool (*kube_item_fn)(json_t *item, void *ud);
/* List every item, page by page (limit/continue), calling fn for each. *rv (may be NULL) gets
 * the list's resourceVersion (caller frees). A continue token that expired (410) is returned as
 * KD_ERR_GONE: the caller decides whether to start over. */
kd_rc kube_list(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_list_opts *opts,
                kube_item_fn fn, void *ud, char **rv);

/* List every item page by page (limit/continue) like kube_list, but stream each page's body
 * straight through a jsonscan scanner: no tree of the page is built, and fn gets each item's
 * exact bytes as the server sent them (NUL escapes, non-ASCII and numbers as written; not
 * NUL-terminated), often pointing into the receive buffer: memory stays at about one object.
 * fn's non-KD_OK stops the listing and is returned with its message. *rv (may be NULL) gets the
 * list's resourceVersion (caller frees). An expired continue token (410) is KD_ERR_GONE. A page
 * is not retried once items of it were handed out (a failure mid-page is returned); no total
 * timeout, but a page fails when under 1 byte/s for the client's timeout. */
kd_rc kube_list_stream(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_list_opts *opts,
                       jscan_item_fn fn, void *ud, char **rv);

/* Re-read and re-apply: get the object, call mutate (return KD_OK to write, anything else to
 * stop with that code), update; on 409 start again, up to 10 times. *out gets the result. */
typedef kd_rc (*kube_mutate_fn)(json_t *obj, void *ud);
kd_rc kube_update_retry(kube_client *c, const struct kube_res *res, const char *ns, const char *name, bool status,
                        kube_mutate_fn mutate, void *ud, json_t **out);

/* ---- watch ---- */

enum kube_event_type { KUBE_ADDED, KUBE_MODIFIED, KUBE_DELETED, KUBE_BOOKMARK };
/* Called for every event (object borrowed); return false to end the watch with KD_OK. */
typedef bool (*kube_event_fn)(enum kube_event_type type, json_t *obj, void *ud);

/* Splits a byte stream into watch event lines and parses them. Owns its buffer. */
struct kube_watch_splitter {
  kd_buf line;
  kube_event_fn fn;
  void *ud;
  bool stopped;           /* fn asked to stop */
  kd_rc rc;               /* first error (bad JSON, oversized line, ERROR event) */
  char *last_rv;          /* resourceVersion of the last event seen (owned) */
  long error_code;        /* code of an ERROR event (410 = Gone) */
};
/* Start a splitter; never fails. */
void kube_watch_splitter_init(struct kube_watch_splitter *s, kube_event_fn fn, void *ud);
/* Feed n bytes (an event may be split anywhere). Returns s->rc: KD_ERR_PARSE for a line that is
 * not a watch event, KD_ERR_TOOBIG past KUBE_MAX_EVENT, KD_ERR_GONE for an ERROR event with
 * code 410, KD_ERR_HTTP for other ERROR events. After fn returns false, further input is ignored. */
kd_rc kube_watch_splitter_feed(struct kube_watch_splitter *s, const char *data, size_t n);
/* Release the splitter's memory. */
void kube_watch_splitter_free(struct kube_watch_splitter *s);

struct kube_watch_opts {
  const char *label_selector;
  const char *field_selector;
  const char *resource_version; /* start after this version */
  long timeout_seconds;         /* server-side watch duration; 0 = 300 */
  volatile const int *stop;     /* set non-zero to end the watch (checked at least every second) */
};
/* One watch connection: stream events to fn until the server closes it (KD_OK), fn returns
 * false (KD_OK), *stop is set (KD_ERR_CANCELLED), or an error (KD_ERR_GONE on 410). *last_rv
 * (may be NULL) gets the resourceVersion to resume from (caller frees). */
kd_rc kube_watch(kube_client *c, const struct kube_res *res, const char *ns, const struct kube_watch_opts *opts,
                 kube_event_fn fn, void *ud, char **last_rv);

/* Delay before retry number attempt (0-based): min(cap, base * 2^attempt) with up to 50% jitter
 * taken off; jitter_seed (any value) varies it. Always in [base/2, cap]. (http_backoff_ms.) */
int64_t kube_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, unsigned jitter_seed);

#endif
