/* test_s3store.c — the S3 client (s3.c, through objstore.c where it matters) against a hostile
 * S3 peer in this process: a small libmicrohttpd listener on 127.0.0.1 that answers
 * ListObjectsV2 with crafted pages (continuation tokens that cycle or never end, more keys than
 * the cap, keys outside the prefix), keeps objects in memory for PUT/GET/HEAD/DELETE and
 * multipart uploads, and can answer 503, 501, ignore If-None-Match or lose the answer of a PUT it
 * applied. It checks no signature (the real gateway does, in test/e2e/t_objstore.sh); it is the
 * peer that misbehaves. The bucket name picks the behaviour. */
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "objstore.h"
#include "s3.h"
#include "tests.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define CREDS "[default]\naws_access_key_id = AKIDTEST\naws_secret_access_key = " SECRET "\n"
#define PEER_MAX_OBJECTS 64

/* what the peer counts */
enum { N_LIST, N_PUT, N_CONDPUT, N_GET, N_HEAD, N_DELETE, N_INIT, N_PART, N_COMPLETE, N_ABORT, N_503, N_RETENTION,
       N_MD5_OK, N_MD5_BAD, N_MD5_MISSING, N_KINDS };

struct peer_obj {
  char *key; /* "bucket/key" */
  kd_buf data;
  char lock_mode[16], lock_until[32]; /* its object lock, "" when none */
};

struct peer {
  struct MHD_Daemon *d;
  int port;
  pthread_mutex_t lock;
  struct peer_obj obj[PEER_MAX_OBJECTS];
  int nobj;
  atomic_int n[N_KINDS];
  int fail_503;     /* the next this many mutating requests are answered 503 (not applied) */
  bool lose_answer; /* the next conditional PUT is applied, then answered 503 */
  char probe_keys[4][256]; /* the first probe objects seen (conditional PUTs of .kcmdr-probe-*) */
  int nprobe;
  char up_mode[16], up_until[32]; /* the object lock the running multipart upload asked for */
  char signed_headers[512];       /* SignedHeaders of the last PUT or POST */
};

static struct peer *P;

struct peer_req {
  kd_buf body;
};

static enum MHD_Result peer_reply(struct MHD_Connection *conn, int status, const char *body, size_t len,
                                  const char *etag) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", "application/xml");
  if (etag) MHD_add_response_header(resp, "ETag", etag);
  enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return r;
}

static enum MHD_Result peer_error(struct MHD_Connection *conn, int status, const char *code) {
  char body[256];
  int n = snprintf(body, sizeof body, "<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>peer says %s</Message></Error>",
                   code, code);
  return peer_reply(conn, status, body, (size_t)n, NULL);
}

static struct peer_obj *peer_find(const char *path) {
  for (int i = 0; i < P->nobj; i++)
    if (strcmp(P->obj[i].key, path) == 0) return &P->obj[i];
  return NULL;
}

static void peer_store(const char *path, const char *data, size_t n) {
  struct peer_obj *o = peer_find(path);
  if (!o && P->nobj < PEER_MAX_OBJECTS) {
    o = &P->obj[P->nobj++];
    o->key = kd_strdup(path);
    kd_buf_init(&o->data, 1u << 20);
  }
  if (!o) return;
  kd_buf_reset(&o->data);
  kd_buf_add(&o->data, data ? data : "", n);
  o->lock_mode[0] = o->lock_until[0] = '\0';
}

/* Content-MD5 of a body with a body: counted as right, wrong or missing (S3 requires it with
 * object lock). */
static void peer_check_md5(struct MHD_Connection *conn, const kd_buf *body) {
  const char *got = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-MD5");
  char want[S3_MD5_B64_LEN];
  s3_content_md5(body->data, body->len, want);
  atomic_fetch_add(&P->n[!got ? N_MD5_MISSING : strcmp(got, want) == 0 ? N_MD5_OK : N_MD5_BAD], 1);
}

static void peer_remove(const char *path) {
  struct peer_obj *o = peer_find(path);
  if (!o) return;
  free(o->key);
  kd_buf_free(&o->data);
  *o = P->obj[--P->nobj];
}

/* A ListObjectsV2 page: keys (NULL-terminated), prefixes (NULL-terminated), next token or NULL. */
static enum MHD_Result peer_page(struct MHD_Connection *conn, const char *const *keys, const char *const *prefixes,
                                 const char *next) {
  kd_buf b = KD_BUF_INIT(4u << 20);
  kd_buf_adds(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
  kd_buf_addf(&b, "<IsTruncated>%s</IsTruncated>", next ? "true" : "false");
  if (next) kd_buf_addf(&b, "<NextContinuationToken>%s</NextContinuationToken>", next);
  for (size_t i = 0; keys && keys[i]; i++) kd_buf_addf(&b, "<Contents><Key>%s</Key><Size>1</Size></Contents>", keys[i]);
  for (size_t i = 0; prefixes && prefixes[i]; i++)
    kd_buf_addf(&b, "<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>", prefixes[i]);
  kd_buf_adds(&b, "</ListBucketResult>");
  enum MHD_Result r = peer_reply(conn, 200, b.data, b.len, NULL);
  kd_buf_free(&b);
  return r;
}

static enum MHD_Result peer_list(struct MHD_Connection *conn, const char *bucket) {
  const char *tok = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "continuation-token");
  const char *prefix = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "prefix");
  if (strcmp(bucket, "cycle2") == 0) { /* tokens A, B, A, B, ... */
    const char *k1[] = {"p/a", NULL}, *k2[] = {"p/b", NULL}, *k3[] = {"p/c", NULL};
    if (!tok) return peer_page(conn, k1, NULL, "A");
    return strcmp(tok, "A") == 0 ? peer_page(conn, k2, NULL, "B") : peer_page(conn, k3, NULL, "A");
  }
  if (strcmp(bucket, "repeat") == 0) { /* the same token again and again */
    const char *k1[] = {"p/a", NULL}, *k2[] = {"p/b", NULL};
    return peer_page(conn, tok ? k2 : k1, NULL, "T");
  }
  if (strcmp(bucket, "endless") == 0 || strcmp(bucket, "wide") == 0) { /* new tokens forever */
    long page = tok ? atol(tok) : 0;
    int per = bucket[0] == 'w' ? 300 : 1;
    char next[32], (*names)[32] = calloc((size_t)per, sizeof *names);
    const char **keys = calloc((size_t)per + 1, sizeof *keys);
    for (int i = 0; i < per; i++) {
      snprintf(names[i], sizeof names[i], "p/%06ld-%03d", page, i);
      keys[i] = names[i];
    }
    snprintf(next, sizeof next, "%ld", page + 1);
    enum MHD_Result r = peer_page(conn, keys, NULL, next);
    free(keys);
    free(names);
    return r;
  }
  if (strcmp(bucket, "outside") == 0) { /* a page for prefix loc/p/ with entries that are not */
    const char *keys[] = {"loc/p/ok", "loc/q/evil", "loc/p", "lo", "", "../x", "loc/p/deep/er", "zzz/after", NULL};
    const char *pfx[] = {"loc/p/dir/", "loc/p/a/b/", "loc/p/nodelim", "other/", "loc/p//", NULL};
    return peer_page(conn, keys, pfx, NULL);
  }
  /* the in-memory objects of this bucket under prefix, one page */
  const char *keys[PEER_MAX_OBJECTS + 1] = {0};
  int n = 0;
  size_t bl = strlen(bucket);
  pthread_mutex_lock(&P->lock);
  for (int i = 0; i < P->nobj; i++)
    if (strncmp(P->obj[i].key, bucket, bl) == 0 && P->obj[i].key[bl] == '/' &&
        strncmp(P->obj[i].key + bl + 1, prefix ? prefix : "", prefix ? strlen(prefix) : 0) == 0)
      keys[n++] = P->obj[i].key + bl + 1;
  enum MHD_Result r = peer_page(conn, keys, NULL, NULL);
  pthread_mutex_unlock(&P->lock);
  return r;
}

static enum MHD_Result peer_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                   const char *version, const char *upload_data, size_t *upload_data_size,
                                   void **con_cls) {
  (void)cls, (void)version;
  struct peer_req *u = *con_cls;
  if (!u) {
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
  /* "/bucket/key" */
  char bucket[64];
  const char *b = url + 1, *slash = strchr(b, '/');
  size_t bl = slash ? (size_t)(slash - b) : strlen(b);
  snprintf(bucket, sizeof bucket, "%.*s", (int)(bl < 63 ? bl : 63), b);
  const char *key = slash ? slash + 1 : "";
  const char *path = url + 1;
  bool get = strcmp(method, "GET") == 0, put = strcmp(method, "PUT") == 0, del = strcmp(method, "DELETE") == 0,
       post = strcmp(method, "POST") == 0, head = strcmp(method, "HEAD") == 0;
  const char *upload_id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "uploadId");
  const char *part = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "partNumber");
  bool uploads = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "uploads") != NULL;
  const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
  bool cond = put && !part && inm && strcmp(inm, "*") == 0;
  bool retention = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "retention") != NULL;
  const char *lmode = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-amz-object-lock-mode");
  const char *luntil = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-amz-object-lock-retain-until-date");
  if (put || post) {
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *sh = auth ? strstr(auth, "SignedHeaders=") : NULL;
    snprintf(P->signed_headers, sizeof P->signed_headers, "%.*s", sh ? (int)strcspn(sh, ",") : 0, sh ? sh : "");
  }
  if (put && (part || retention || lmode)) peer_check_md5(conn, &u->body);
  if (retention) { /* PutObjectRetention: <Mode> and <RetainUntilDate> of the body */
    atomic_fetch_add(&P->n[N_RETENTION], 1);
    pthread_mutex_lock(&P->lock);
    struct peer_obj *o = peer_find(path);
    const char *m = u->body.data ? strstr(u->body.data, "<Mode>") : NULL;
    const char *d = u->body.data ? strstr(u->body.data, "<RetainUntilDate>") : NULL;
    if (o && m && d) {
      snprintf(o->lock_mode, sizeof o->lock_mode, "%.*s", (int)strcspn(m + 6, "<"), m + 6);
      snprintf(o->lock_until, sizeof o->lock_until, "%.*s", (int)strcspn(d + 17, "<"), d + 17);
    }
    pthread_mutex_unlock(&P->lock);
    return o ? peer_reply(conn, 200, "", 0, NULL) : peer_error(conn, 404, "NoSuchKey");
  }

  if (get && !*key && MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "versions")) { /* one version per object */
    const char *prefix = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "prefix");
    char full[512], body[1024];
    snprintf(full, sizeof full, "%s/%s", bucket, prefix ? prefix : "");
    pthread_mutex_lock(&P->lock);
    bool have = peer_find(full) != NULL;
    pthread_mutex_unlock(&P->lock);
    int n = snprintf(body, sizeof body, "<ListVersionsResult><IsTruncated>false</IsTruncated>%s%s%s</ListVersionsResult>",
                     have ? "<Version><Key>" : "", have ? prefix : "", have ? "</Key><VersionId>v1</VersionId></Version>" : "");
    return peer_reply(conn, 200, body, (size_t)n, NULL);
  }
  if (get && !*key) {
    atomic_fetch_add(&P->n[N_LIST], 1);
    return peer_list(conn, bucket);
  }
  int kind = get ? N_GET : head ? N_HEAD : del && upload_id ? N_ABORT : del ? N_DELETE : post && uploads ? N_INIT
             : post ? N_COMPLETE : part ? N_PART : cond ? N_CONDPUT : N_PUT;
  atomic_fetch_add(&P->n[kind], 1);
  pthread_mutex_lock(&P->lock);
  if (cond && strstr(key, S3_PROBE_PREFIX) && P->nprobe < 4 && (!P->nprobe || strcmp(P->probe_keys[P->nprobe - 1], path)))
    snprintf(P->probe_keys[P->nprobe++], sizeof P->probe_keys[0], "%s", path);
  bool mutating = put || del || post;
  if (mutating && kind != N_ABORT && P->fail_503 > 0) {
    P->fail_503--;
    pthread_mutex_unlock(&P->lock);
    atomic_fetch_add(&P->n[N_503], 1);
    return peer_error(conn, 503, "SlowDown");
  }
  enum MHD_Result r;
  struct peer_obj *o = peer_find(path);
  if (head && o && o->lock_mode[0]) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "x-amz-object-lock-mode", o->lock_mode);
    MHD_add_response_header(resp, "x-amz-object-lock-retain-until-date", o->lock_until);
    r = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
  } else if (get || head) {
    r = o ? peer_reply(conn, 200, o->data.data ? o->data.data : "", o->data.len, "\"e\"") : peer_error(conn, 404, "NoSuchKey");
  } else if (cond && strcmp(bucket, "nimpl") == 0) {
    r = peer_error(conn, 501, "NotImplemented");
  } else if (cond && o && strcmp(bucket, "ignore") != 0) {
    r = peer_error(conn, 412, "PreconditionFailed");
  } else if (put && !part) {
    peer_store(path, u->body.data, u->body.len);
    if (lmode && luntil && (o = peer_find(path))) {
      snprintf(o->lock_mode, sizeof o->lock_mode, "%s", lmode);
      snprintf(o->lock_until, sizeof o->lock_until, "%s", luntil);
    }
    if (cond && P->lose_answer && !strstr(key, S3_PROBE_PREFIX)) { /* applied, answer lost */
      P->lose_answer = false;
      atomic_fetch_add(&P->n[N_503], 1);
      r = peer_error(conn, 503, "InternalError");
    } else {
      r = peer_reply(conn, 200, "", 0, "\"e\"");
    }
  } else if (part) {
    char etag[32];
    snprintf(etag, sizeof etag, "\"part-%s\"", part);
    r = peer_reply(conn, 200, "", 0, etag);
  } else if (post && uploads) {
    snprintf(P->up_mode, sizeof P->up_mode, "%s", lmode ? lmode : "");
    snprintf(P->up_until, sizeof P->up_until, "%s", luntil ? luntil : "");
    static const char init[] = "<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>";
    r = peer_reply(conn, 200, init, sizeof init - 1, NULL);
  } else if (post) {
    peer_store(path, "multipart", 9);
    if (strcmp(bucket, "droplock") != 0 && (o = peer_find(path))) { /* "droplock": as Ceph RGW 16.2, the lock is lost */
      snprintf(o->lock_mode, sizeof o->lock_mode, "%s", P->up_mode);
      snprintf(o->lock_until, sizeof o->lock_until, "%s", P->up_until);
    }
    r = peer_reply(conn, 200, "<CompleteMultipartUploadResult/>", 32, NULL);
  } else if (del && !upload_id) {
    peer_remove(path);
    r = peer_reply(conn, 204, "", 0, NULL);
  } else {
    r = peer_reply(conn, 204, "", 0, NULL);
  }
  pthread_mutex_unlock(&P->lock);
  return r;
}

static void peer_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)conn, (void)toe;
  struct peer_req *u = *con_cls;
  if (!u) return;
  kd_buf_free(&u->body);
  free(u);
  *con_cls = NULL;
}

static void peer_reset(void) {
  pthread_mutex_lock(&P->lock);
  while (P->nobj) peer_remove(P->obj[0].key);
  for (int i = 0; i < N_KINDS; i++) atomic_store(&P->n[i], 0);
  P->fail_503 = 0;
  P->lose_answer = false;
  P->nprobe = 0;
  pthread_mutex_unlock(&P->lock);
}

static int peer_setup(void **state) {
  (void)state;
  if (!(P = calloc(1, sizeof *P))) return -1;
  pthread_mutex_init(&P->lock, NULL);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  P->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, peer_handle,
                          NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                          MHD_OPTION_NOTIFY_COMPLETED, peer_completed, NULL, MHD_OPTION_END);
  if (!P->d) return -1;
  P->port = MHD_get_daemon_info(P->d, MHD_DAEMON_INFO_BIND_PORT)->port;
  return 0;
}

static int peer_teardown(void **state) {
  (void)state;
  MHD_stop_daemon(P->d);
  peer_reset();
  pthread_mutex_destroy(&P->lock);
  free(P);
  P = NULL;
  return 0;
}

static s3_client *client(const char *bucket) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", P->port);
  struct s3_config cfg = {url, bucket, NULL, true, false, NULL, 0, "AKIDTEST", SECRET, NULL};
  s3_client *c = NULL;
  if (s3_new(&cfg, &c) != KD_OK) fail_msg("s3_new: %s", kd_errmsg());
  return c;
}

static objstore *store(const char *bucket, const char *prefix) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", P->port);
  json_t *b = json_pack("{s:{s:s,s:{s:s,s:s?},s:{s:s,s:s}}}", "spec", "provider", "aws", "objectStorage", "bucket", bucket,
                        "prefix", prefix, "config", "s3Url", url, "s3ForcePathStyle", "true");
  objstore *s = NULL;
  if (objstore_open_bsl(b, CREDS, strlen(CREDS), &s) != KD_OK) fail_msg("open: %s", kd_errmsg());
  json_decref(b);
  return s;
}

struct seen {
  kd_buf text;
  int n;
};

static kd_rc note(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)size;
  struct seen *s = ud;
  s->n++;
  return kd_buf_addf(&s->text, "%s%s|", key, is_prefix ? " P" : "");
}

/* ---- listings ---- */

/* tried: a server whose continuation tokens go A, B, A, ... and one that repeats its token.
 * Before, the second looped until the page check and the first forever; now each stops at the
 * first token seen again, with a message saying so, after passing each page's keys once. */
static void list_token_cycles_stop(void **state) {
  (void)state;
  peer_reset();
  s3_client *c = client("cycle2");
  struct seen s = {KD_BUF_INIT(1 << 16), 0};
  kd_buf_add(&s.text, "", 0);
  assert_int_equal(s3_list(c, "p/", '\0', note, &s), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "cycle"));
  assert_non_null(strstr(kd_errmsg(), "s3://cycle2/p/"));
  assert_string_equal(s.text.data, "p/a|p/b|p/c|");
  assert_int_equal(atomic_load(&P->n[N_LIST]), 3);
  s3_free(c);
  kd_buf_reset(&s.text);
  kd_buf_add(&s.text, "", 0);
  c = client("repeat");
  assert_int_equal(s3_list(c, "p/", '\0', note, &s), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "cycle"));
  assert_string_equal(s.text.data, "p/a|p/b|");
  assert_int_equal(atomic_load(&P->n[N_LIST]), 5);
  s3_free(c);
  kd_buf_free(&s.text);
}

/* tried: a server that never ends its listing (a new token and one key on every page), and one
 * that sends more keys than the cap. Each stops at its cap with a clear message; fn never sees
 * more keys than the cap. */
static void list_caps_stop_endless_listings(void **state) {
  (void)state;
  peer_reset();
  s3_client *c = client("endless");
  s3_set_list_caps(c, 50, 0);
  struct seen s = {KD_BUF_INIT(1 << 20), 0};
  assert_int_equal(s3_list(c, "p/", '\0', note, &s), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), "after 50 pages"));
  assert_int_equal(atomic_load(&P->n[N_LIST]), 50);
  assert_int_equal(s.n, 50);
  s3_free(c);
  c = client("wide");
  s3_set_list_caps(c, 0, 1000);
  s.n = 0;
  kd_buf_reset(&s.text);
  assert_int_equal(s3_list(c, "p/", '\0', note, &s), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), "more than 1000 keys"));
  assert_int_equal(s.n, 900); /* pages of 300: the fourth would pass the cap and is not passed on */
  s3_free(c);
  /* the same through the object store's caps */
  objstore *st = store("wide", NULL);
  objstore_set_list_caps(st, 2, 0);
  s.n = 0;
  kd_buf_reset(&s.text);
  assert_int_equal(objstore_list(st, "p/", '\0', note, &s), KD_ERR_TOOBIG);
  assert_non_null(strstr(kd_errmsg(), "after 2 pages"));
  assert_int_equal(s.n, 600);
  objstore_free(st);
  kd_buf_free(&s.text);
}

/* tried: a page for prefix "loc/p/" carrying keys outside it (a shorter key, "lo", "", "../x",
 * a sibling folder, a key past it), an object key that holds the delimiter and common prefixes
 * that are not one segment + '/'. None reaches fn, at the S3 layer or through the object store
 * (keys relative to the location "loc"). */
static void list_drops_entries_outside_the_prefix(void **state) {
  (void)state;
  peer_reset();
  s3_client *c = client("outside");
  struct seen s = {KD_BUF_INIT(1 << 16), 0};
  kd_buf_add(&s.text, "", 0);
  assert_int_equal(s3_list(c, "loc/p/", '/', note, &s), KD_OK);
  assert_string_equal(s.text.data, "loc/p/dir/ P|loc/p/ok|");
  kd_buf_reset(&s.text);
  kd_buf_add(&s.text, "", 0);
  /* without a delimiter, deeper keys belong, common prefixes do not */
  assert_int_equal(s3_list(c, "loc/p/", '\0', note, &s), KD_OK);
  assert_string_equal(s.text.data, "loc/p/deep/er|loc/p/ok|");
  s3_free(c);
  objstore *st = store("outside", "loc");
  kd_buf_reset(&s.text);
  kd_buf_add(&s.text, "", 0);
  assert_int_equal(objstore_list(st, "p/", '/', note, &s), KD_OK);
  assert_string_equal(s.text.data, "p/dir/ P|p/ok|");
  objstore_free(st);
  kd_buf_free(&s.text);
}

/* ---- put_new ---- */

static const char *peer_get(const char *path) {
  struct peer_obj *o = peer_find(path);
  return o ? (o->data.data ? o->data.data : "") : NULL;
}

/* tried: creating a key twice (412: conflict, "already exists", the first bytes kept), a
 * gateway that ignores If-None-Match (found by the probe: unsupported, nothing written under
 * the key, the probe object deleted, the verdict kept for the client's life), one that answers
 * 501 NotImplemented, and a PUT applied whose answer was lost (the retry's 412 holds our own
 * bytes: success) or not applied while another object is there (conflict). */
static void put_new_creates_only_once(void **state) {
  (void)state;
  peer_reset();
  objstore *st = store("std", "loc");
  assert_int_equal(objstore_put_new(st, "backups/b/velero-backup.json", "first", 5), KD_OK);
  assert_int_equal(objstore_put_new(st, "backups/b/velero-backup.json", "second", 6), KD_ERR_CONFLICT);
  assert_non_null(strstr(kd_errmsg(), "already exists"));
  assert_string_equal(peer_get("std/loc/backups/b/velero-backup.json"), "first");
  /* the probe ran once, in the key's folder, and left nothing */
  assert_int_equal(P->nprobe, 1);
  assert_int_equal(strncmp(P->probe_keys[0], "std/loc/backups/b/" S3_PROBE_PREFIX, strlen("std/loc/backups/b/" S3_PROBE_PREFIX)), 0);
  assert_null(peer_get(P->probe_keys[0]));
  assert_int_equal(atomic_load(&P->n[N_CONDPUT]), 4); /* probe twice, then the key twice */
  assert_int_equal(objstore_put_new(st, "backups/c/velero-backup.json", "c", 1), KD_OK);
  assert_int_equal(atomic_load(&P->n[N_CONDPUT]), 5); /* no second probe */
  objstore_free(st);

  /* a gateway that ignores the header */
  st = store("ignore", NULL);
  assert_int_equal(objstore_put_new(st, "k", "x", 1), KD_ERR_UNSUPPORTED);
  assert_non_null(strstr(kd_errmsg(), "ignores If-None-Match"));
  assert_null(peer_get("ignore/k"));
  assert_int_equal(P->nprobe, 2);
  assert_null(peer_get(P->probe_keys[1]));
  int before = atomic_load(&P->n[N_CONDPUT]);
  assert_int_equal(objstore_put_new(st, "k2", "x", 1), KD_ERR_UNSUPPORTED);
  assert_int_equal(atomic_load(&P->n[N_CONDPUT]), before);
  assert_null(peer_get("ignore/k2"));
  objstore_free(st);

  /* a gateway that does not implement it */
  st = store("nimpl", NULL);
  assert_int_equal(objstore_put_new(st, "k", "x", 1), KD_ERR_UNSUPPORTED);
  assert_non_null(strstr(kd_errmsg(), "does not implement"));
  assert_null(peer_get("nimpl/k"));
  objstore_free(st);

  /* applied, answer lost: the retry meets our own object */
  st = store("std", NULL);
  assert_int_equal(objstore_put_new(st, "probe-first", "p", 1), KD_OK); /* the probe out of the way */
  P->lose_answer = true;
  assert_int_equal(objstore_put_new(st, "lost", "our bytes", 9), KD_OK);
  assert_string_equal(peer_get("std/lost"), "our bytes");
  /* not applied (503), and someone else's object is there: conflict, theirs kept */
  pthread_mutex_lock(&P->lock);
  peer_store("std/theirs", "their bytes", 11);
  P->fail_503 = 1;
  pthread_mutex_unlock(&P->lock);
  assert_int_equal(objstore_put_new(st, "theirs", "our bytes", 9), KD_ERR_CONFLICT);
  assert_non_null(strstr(kd_errmsg(), "already exists"));
  assert_string_equal(peer_get("std/theirs"), "their bytes");
  objstore_free(st);
}

/* ---- the write guard ---- */

struct guard {
  int kind;    /* refuse once the peer counted this many requests of kind ... */
  int after;   /* ... (after 0: always) */
  int calls;
};

static kd_rc guard_fn(void *ud) {
  struct guard *g = ud;
  g->calls++;
  if (atomic_load(&P->n[g->kind]) >= g->after) return kd_fail(KD_ERR_CANCELLED, "deposed: the lease is gone");
  return KD_OK;
}

static int mutations(void) {
  int n = 0;
  int kinds[] = {N_PUT, N_CONDPUT, N_DELETE, N_INIT, N_PART, N_COMPLETE};
  for (size_t i = 0; i < KD_ARRAY_LEN(kinds); i++) n += atomic_load(&P->n[kinds[i]]);
  return n;
}

static char big[(8u << 20) + 1];

/* tried: a store with object lock (annotations on the BSL) writing a small object, a claim
 * (put_new) and a multipart upload of two parts, on a peer that keeps the lock of a multipart
 * upload and on one that drops it (as Ceph RGW 16.2 does); and the same store without lock.
 * Asserted: every PUT and every part carries a Content-MD5 that is the MD5 of its body (the peer
 * computes it), the lock headers are signed, the single PUT and the multipart create carry the
 * mode and the backup's date (its expiration, later than start + 1 day), a dropped lock is set
 * again by PutObjectRetention with the same date, and without lock no such header is sent. */
static void object_lock_headers_on_every_write(void **state) {
  (void)state;
  const char *buckets[] = {"std", "droplock"};
  memset(big, 'l', sizeof big);
  for (size_t i = 0; i < KD_ARRAY_LEN(buckets); i++) {
    peer_reset();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", P->port);
    json_t *b = json_pack("{s:{s:{s:s,s:s}},s:{s:s,s:{s:s},s:{s:s,s:s}}}", "metadata", "annotations", OBJSTORE_ANN_LOCK,
                          "COMPLIANCE", OBJSTORE_ANN_LOCK_DAYS, "1", "spec", "provider", "aws", "objectStorage", "bucket",
                          buckets[i], "config", "s3Url", url, "s3ForcePathStyle", "true");
    objstore *st = NULL;
    if (objstore_open_bsl(b, CREDS, strlen(CREDS), &st) != KD_OK) fail_msg("open: %s", kd_errmsg());
    json_decref(b);
    assert_string_equal(objstore_lock_mode(st), "COMPLIANCE");
    time_t start = time(NULL), exp = start + 30 * 86400;
    char want[21];
    kd_time_format(exp, want);
    assert_int_equal(objstore_lock_backup(st, start, exp), exp);
    assert_int_equal(objstore_put(st, "small", "hello", 5), KD_OK);
    assert_non_null(strstr(P->signed_headers, "content-md5;"));
    assert_non_null(strstr(P->signed_headers, "x-amz-object-lock-mode;x-amz-object-lock-retain-until-date"));
    char mode[16];
    time_t until = 0;
    assert_int_equal(objstore_retention(st, "small", mode, &until), KD_OK);
    assert_string_equal(mode, "COMPLIANCE");
    assert_int_equal(until, exp);
    kd_rc rc = objstore_put_new(st, "claim", "c", 1);
    if (rc != KD_OK) fail_msg("put_new: %s", kd_errmsg());
    assert_int_equal(objstore_retention(st, "claim", mode, &until), KD_OK);
    assert_int_equal(until, exp);
    objstore_writer *w;
    assert_int_equal(objstore_writer_open(st, "big", &w), KD_OK);
    assert_int_equal(objstore_writer_write(w, big, sizeof big), KD_OK);
    if ((rc = objstore_writer_commit(w)) != KD_OK) fail_msg("%s: commit: %s", buckets[i], kd_errmsg());
    assert_int_equal(atomic_load(&P->n[N_PART]), 2);
    assert_string_equal(P->up_mode, "COMPLIANCE");
    assert_string_equal(P->up_until, want);
    assert_int_equal(atomic_load(&P->n[N_RETENTION]), i == 1 ? 1 : 0);
    assert_int_equal(objstore_retention(st, "big", mode, &until), KD_OK);
    assert_string_equal(mode, "COMPLIANCE");
    assert_int_equal(until, exp);
    /* the small PUT, the claim (the probe's two PUTs carry no lock: not counted), two parts,
     * and the retention when it was dropped */
    assert_int_equal(atomic_load(&P->n[N_MD5_MISSING]), 0);
    assert_int_equal(atomic_load(&P->n[N_MD5_BAD]), 0);
    assert_int_equal(atomic_load(&P->n[N_MD5_OK]), 4 + (i == 1 ? 1 : 0));
    objstore_free(st);
  }
  /* without object lock: no lock header and no Content-MD5 at all */
  peer_reset();
  objstore *st = store("std", NULL);
  assert_null(objstore_lock_mode(st));
  assert_int_equal(objstore_lock_backup(st, time(NULL), time(NULL) + 86400), 0);
  assert_int_equal(objstore_put(st, "small", "hello", 5), KD_OK);
  assert_null(strstr(P->signed_headers, "content-md5"));
  assert_null(strstr(P->signed_headers, "x-amz-object-lock"));
  char mode[16];
  time_t until = 1;
  assert_int_equal(objstore_retention(st, "small", mode, &until), KD_OK);
  assert_int_equal(until, 0);
  objstore_free(st);
}

/* tried: under object lock every read is pinned to a key's FIRST version, so a version planted
 * before kcmdr writes (someone with the location's credentials guessing the next scheduled
 * backup's name and putting its tarball, checksums or logs there first) would be what restore and
 * verify read, with kcmdr's own write only a newer version on top. A file planted (through a store
 * without lock, same bucket) at three keys, then a locked store writing them: a small PUT, a
 * multipart upload opened before the plant, and one opened after. Asserted: each write is refused
 * with KD_ERR_CONFLICT ("already exists") and the planted bytes are still what is read (nothing
 * of ours went on top); a fresh key is written normally. */
static void object_lock_refuses_a_key_written_before(void **state) {
  (void)state;
  peer_reset();
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", P->port);
  json_t *b = json_pack("{s:{s:{s:s,s:s}},s:{s:s,s:{s:s},s:{s:s,s:s}}}", "metadata", "annotations", OBJSTORE_ANN_LOCK,
                        "GOVERNANCE", OBJSTORE_ANN_LOCK_DAYS, "1", "spec", "provider", "aws", "objectStorage", "bucket",
                        "std", "config", "s3Url", url, "s3ForcePathStyle", "true");
  objstore *st = NULL, *plain = store("std", NULL);
  if (objstore_open_bsl(b, CREDS, strlen(CREDS), &st) != KD_OK) fail_msg("open: %s", kd_errmsg());
  json_decref(b);
  objstore_lock_backup(st, time(NULL), time(NULL) + 86400);
  objstore_writer *early = NULL, *w = NULL;
  assert_int_equal(objstore_writer_open(st, "backups/b/b-late.tar.gz", &early), KD_OK);
  assert_int_equal(objstore_put(plain, "backups/b/b-checksums.json", "forged", 6), KD_OK);
  assert_int_equal(objstore_put(plain, "backups/b/b.tar.gz", "forged", 6), KD_OK);
  assert_int_equal(objstore_put(plain, "backups/b/b-late.tar.gz", "forged", 6), KD_OK);
  assert_int_equal(objstore_put(st, "backups/b/b-checksums.json", "ours", 4), KD_ERR_CONFLICT);
  assert_non_null(strstr(kd_errmsg(), "already exists"));
  assert_int_equal(objstore_writer_open(st, "backups/b/b.tar.gz", &w), KD_ERR_CONFLICT);
  assert_null(w);
  assert_int_equal(objstore_writer_write(early, big, sizeof big), KD_OK);
  assert_int_equal(objstore_writer_commit(early), KD_ERR_CONFLICT); /* planted while it uploaded */
  const char *keys[] = {"backups/b/b-checksums.json", "backups/b/b.tar.gz", "backups/b/b-late.tar.gz"};
  for (size_t i = 0; i < KD_ARRAY_LEN(keys); i++) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(objstore_get_all(st, keys[i], 1u << 20, &text, &len), KD_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(text, "forged", 6);
    free(text);
  }
  assert_int_equal(atomic_load(&P->n[N_COMPLETE]), 0);
  assert_int_equal(objstore_put(st, "backups/b/b-logs.gz", "ours", 4), KD_OK);
  objstore_free(plain);
  objstore_free(st);
}

/* tried: deleting through a store with object lock. In a locked (versioned) bucket a plain
 * DELETE of a retained object "succeeds" by adding a delete marker: the backup would vanish from
 * listings and sync while its data stays, and its Backup object would be deleted. The engine asks
 * the retention first, but when that answer is missing (a HEAD without the lock headers, a read
 * that failed) nothing else stopped it. A file written locked (1 day), one written by a store
 * without lock in the same bucket, and a key that does not exist, each deleted through the
 * locked store. Asserted: the locked one is refused (KD_ERR_FORBIDDEN naming the mode and the
 * date), no DELETE went out for it and it still reads back; the unlocked one and the missing one
 * are deleted as before. */
static void object_lock_delete_refuses_a_retained_file(void **state) {
  (void)state;
  peer_reset();
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", P->port);
  json_t *b = json_pack("{s:{s:{s:s,s:s}},s:{s:s,s:{s:s},s:{s:s,s:s}}}", "metadata", "annotations", OBJSTORE_ANN_LOCK,
                        "COMPLIANCE", OBJSTORE_ANN_LOCK_DAYS, "1", "spec", "provider", "aws", "objectStorage", "bucket",
                        "std", "config", "s3Url", url, "s3ForcePathStyle", "true");
  objstore *st = NULL, *plain = store("std", NULL);
  if (objstore_open_bsl(b, CREDS, strlen(CREDS), &st) != KD_OK) fail_msg("open: %s", kd_errmsg());
  json_decref(b);
  assert_int_equal(objstore_put(st, "backups/b/velero-backup.json", "{}", 2), KD_OK);
  assert_int_equal(objstore_put(plain, "backups/c/velero-backup.json", "{}", 2), KD_OK);
  assert_int_equal(objstore_delete(st, "backups/b/velero-backup.json"), KD_ERR_FORBIDDEN);
  assert_non_null(strstr(kd_errmsg(), "Object Lock (COMPLIANCE) until 20"));
  assert_int_equal(atomic_load(&P->n[N_DELETE]), 0);
  assert_int_equal(objstore_head(st, "backups/b/velero-backup.json", NULL), KD_OK);
  assert_int_equal(objstore_delete(st, "backups/c/velero-backup.json"), KD_OK);
  assert_int_equal(objstore_head(plain, "backups/c/velero-backup.json", NULL), KD_ERR_NOTFOUND);
  assert_int_equal(objstore_delete(st, "backups/d/velero-backup.json"), KD_OK);
  objstore_free(plain);
  objstore_free(st);
}

/* tried: a guard that refuses from the start (every mutating call fails with its code and
 * nothing goes out; reads still work), and one that starts refusing after the peer saw the
 * multipart upload's create, its first part or its second part: the next piece (part, part,
 * complete) is never sent, and the upload is aborted (cleanup is not guarded). */
static void guard_blocks_every_mutation(void **state) {
  (void)state;
  peer_reset();
  objstore *st = store("std", NULL);
  assert_int_equal(objstore_put(st, "existing", "x", 1), KD_OK);
  struct guard g = {N_LIST, 0, 0};
  objstore_set_guard(st, guard_fn, &g);
  int m = mutations();
  assert_int_equal(objstore_put(st, "k", "v", 1), KD_ERR_CANCELLED);
  assert_non_null(strstr(kd_errmsg(), "deposed"));
  assert_int_equal(objstore_put_new(st, "k", "v", 1), KD_ERR_CANCELLED);
  assert_int_equal(objstore_delete(st, "existing"), KD_ERR_CANCELLED);
  objstore_writer *w;
  assert_int_equal(objstore_writer_open(st, "w", &w), KD_ERR_CANCELLED);
  assert_int_equal(mutations(), m);
  assert_non_null(peer_get("std/existing"));
  /* reads are not guarded */
  char *data;
  size_t n;
  assert_int_equal(objstore_get_all(st, "existing", 10, &data, &n), KD_OK);
  free(data);
  assert_int_equal(objstore_head(st, "existing", NULL), KD_OK);
  struct seen s = {KD_BUF_INIT(1 << 16), 0};
  assert_int_equal(objstore_list(st, "", '\0', note, &s), KD_OK);
  assert_int_equal(s.n, 1);
  kd_buf_free(&s.text);
  objstore_free(st);

  /* the S3 layer on its own asks the guard before each request */
  s3_client *c = client("std");
  s3_set_guard(c, guard_fn, &g);
  assert_int_equal(s3_put(c, "k", "v", 1), KD_ERR_CANCELLED);
  assert_non_null(strstr(kd_errmsg(), "not sent (attempt 1)"));
  assert_int_equal(s3_put_new(c, "k", "v", 1), KD_ERR_CANCELLED);
  assert_int_equal(s3_delete(c, "existing"), KD_ERR_CANCELLED);
  assert_int_equal(mutations(), m);
  memset(big, 'b', sizeof big);
  int stages[][2] = {{N_INIT, 1}, {N_PART, 1}, {N_PART, 2}};
  for (size_t i = 0; i < KD_ARRAY_LEN(stages); i++) {
    peer_reset();
    g = (struct guard){stages[i][0], stages[i][1], 0};
    s3_writer *sw;
    assert_int_equal(s3_writer_open(c, "mp", &sw), KD_OK);
    kd_rc rc = s3_writer_write(sw, big, sizeof big); /* the first part goes out once the second byte comes */
    if (rc == KD_OK) rc = s3_writer_commit(sw);
    else s3_writer_abort(sw);
    if (rc != KD_ERR_CANCELLED) fail_msg("stage %zu: %s: %s", i, kd_rc_name(rc), kd_errmsg());
    assert_int_equal(atomic_load(&P->n[N_INIT]), 1);
    assert_int_equal(atomic_load(&P->n[N_PART]), i == 0 ? 0 : i == 1 ? 1 : 2);
    assert_int_equal(atomic_load(&P->n[N_COMPLETE]), 0);
    assert_int_equal(atomic_load(&P->n[N_ABORT]), 1);
    assert_null(peer_get("std/mp"));
  }
  s3_free(c);
}

/* tried: a mutating request answered 503 (retried by the transport), with a guard that flips to
 * "no" once the peer has answered that 503, as a lease lost during the backoff would: the retry
 * never goes out, for a PUT, a conditional PUT, a DELETE and a multipart part; with a guard that
 * stays "yes", the same PUT is retried and lands (so the retry was real). */
static void guard_stops_a_retry(void **state) {
  (void)state;
  peer_reset();
  objstore *st = store("std", NULL);
  assert_int_equal(objstore_put_new(st, "probe-first", "p", 1), KD_OK);
  assert_int_equal(objstore_put(st, "existing", "x", 1), KD_OK);
  struct guard g = {N_503, 1, 0};
  objstore_set_guard(st, guard_fn, &g);
  struct {
    const char *what;
    int kind;
  } ops[] = {{"put", N_PUT}, {"put_new", N_CONDPUT}, {"delete", N_DELETE}, {"part", N_PART}};
  for (size_t i = 0; i < KD_ARRAY_LEN(ops); i++) {
    pthread_mutex_lock(&P->lock);
    for (int k = 0; k < N_KINDS; k++) atomic_store(&P->n[k], 0);
    P->fail_503 = 1;
    pthread_mutex_unlock(&P->lock);
    kd_rc rc;
    if (i == 0) rc = objstore_put(st, "k", "v", 1);
    else if (i == 1) rc = objstore_put_new(st, "k2", "v", 1);
    else if (i == 2) rc = objstore_delete(st, "existing");
    else {
      objstore_writer *w;
      assert_int_equal(objstore_writer_open(st, "mp", &w), KD_OK);
      pthread_mutex_lock(&P->lock);
      P->fail_503 = 0;
      pthread_mutex_unlock(&P->lock);
      memset(big, 'b', sizeof big);
      /* the create and the first part go out; the second part is what meets the 503 */
      assert_int_equal(objstore_writer_write(w, big, sizeof big), KD_OK);
      pthread_mutex_lock(&P->lock);
      atomic_store(&P->n[N_PART], 0);
      P->fail_503 = 1;
      pthread_mutex_unlock(&P->lock);
      rc = objstore_writer_write(w, big, 8u << 20);
      objstore_writer_abort(w);
    }
    if (rc != KD_ERR_CANCELLED) fail_msg("%s: %s: %s", ops[i].what, kd_rc_name(rc), kd_errmsg());
    if (!strstr(kd_errmsg(), "not sent (attempt 2)")) fail_msg("%s: %s", ops[i].what, kd_errmsg());
    if (atomic_load(&P->n[ops[i].kind]) != 1) fail_msg("%s: %d requests", ops[i].what, atomic_load(&P->n[ops[i].kind]));
  }
  assert_null(peer_get("std/k"));
  assert_null(peer_get("std/k2"));
  assert_non_null(peer_get("std/existing"));
  /* the control: a guard that stays "yes" lets the retry land */
  g = (struct guard){N_503, 1000, 0};
  pthread_mutex_lock(&P->lock);
  atomic_store(&P->n[N_PUT], 0);
  P->fail_503 = 1;
  pthread_mutex_unlock(&P->lock);
  assert_int_equal(objstore_put(st, "k", "v", 1), KD_OK);
  assert_int_equal(atomic_load(&P->n[N_PUT]), 2);
  assert_string_equal(peer_get("std/k"), "v");
  objstore_free(st);
}

int test_s3store(void);
int test_s3store(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(list_token_cycles_stop),
      cmocka_unit_test(list_caps_stop_endless_listings),
      cmocka_unit_test(list_drops_entries_outside_the_prefix),
      cmocka_unit_test(put_new_creates_only_once),
      cmocka_unit_test(guard_blocks_every_mutation),
      cmocka_unit_test(guard_stops_a_retry),
      cmocka_unit_test(object_lock_headers_on_every_write),
      cmocka_unit_test(object_lock_refuses_a_key_written_before),
      cmocka_unit_test(object_lock_delete_refuses_a_retained_file),
  };
  return cmocka_run_group_tests_name("s3store", tests, peer_setup, peer_teardown);
}
