/* s3_list.c — S3 listings and object lock (see s3.h): ListObjectsV2 (the check and every page of
 * a listing), the bucket's object lock configuration, an object's retention and the first
 * version of a key (ListObjectVersions). */
#include "s3_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ListObjectsV2 ---- */

kd_rc s3_check(s3_client *c, const char *prefix) {
  struct s3_call k;
  struct http_resp r = {0};
  sigv4_kv q[] = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", prefix ? prefix : ""}, {"encoding-type", "url"}};
  kd_rc rc = s3_call_init(&k, c, "ListObjectsV2", "GET", "", q, KD_ARRAY_LEN(q));
  struct s3_opts o = {.retries = 2};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK) { /* a 2xx that is not a listing (a web server, not S3) is not usable */
    struct s3_page pg;
    rc = s3_parse_list(r.body.data ? r.body.data : "", r.body.len, &pg);
    s3_page_free(&pg);
    if (rc != KD_OK) kd_fail_wrap(rc, "%s does not answer like S3", c->origin);
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

static int s3_entry_cmp(const void *a, const void *b) {
  const struct s3_entry *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  return r ? r : (int)x->is_prefix - (int)y->is_prefix;
}

/* True when entry (key, is_prefix) belongs to a listing of prefix with delimiter: S3 answers
 * objects whose key starts with prefix and, with a delimiter, holds none past it, and common
 * prefixes that are prefix + one segment + the delimiter. */
static bool s3_list_fits(const struct s3_entry *e, const char *prefix, size_t plen, char delimiter) {
  if (strncmp(e->key, prefix, plen) != 0) return false;
  const char *rest = e->key + plen, *d = delimiter ? strchr(rest, delimiter) : NULL;
  if (!e->is_prefix) return d == NULL;
  return d && d > rest && d[1] == '\0';
}

/* FNV-1a of a continuation token: the listing remembers these to see a cycle. */
static uint64_t s3_token_hash(const char *t) {
  uint64_t h = 14695981039346656037ull;
  for (; *t; t++) h = (h ^ (unsigned char)*t) * 1099511628211ull;
  return h;
}

kd_rc s3_list(s3_client *c, const char *prefix, char delimiter, objstore_list_fn fn, void *ud) {
  kd_rc rc = KD_OK;
  char *token = NULL;
  char delim[2] = {delimiter, '\0'};
  const char *pfx = prefix ? prefix : "";
  size_t plen = strlen(pfx), keys = 0, ignored = 0;
  long pages = 0;
  /* the tokens used so far (as hashes), to stop a server that sends one again; at most one per
   * page, so the page cap bounds this array */
  uint64_t *seen = NULL;
  size_t nseen = 0, aseen = 0;
  for (;;) {
    if (pages >= c->list_max_pages) {
      rc = kd_fail(KD_ERR_TOOBIG, "listing s3://%s/%s: still not complete after %ld pages (%zu keys); stopped "
                   "(the cap on pages of one listing)", c->bucket, pfx, pages, keys);
      break;
    }
    struct s3_call k;
    struct http_resp r = {0};
    struct s3_page pg = {0};
    sigv4_kv q[6] = {{"list-type", "2"}, {"prefix", pfx}, {"encoding-type", "url"}};
    size_t nq = 3;
    if (delimiter) q[nq++] = (sigv4_kv){"delimiter", delim};
    if (token) q[nq++] = (sigv4_kv){"continuation-token", token};
    rc = s3_call_init(&k, c, "ListObjectsV2", "GET", "", q, nq);
    struct s3_opts o = {.body_max = S3_MAX_LIST_BODY};
    if (rc == KD_OK) rc = s3_do(&k, &o, &r);
    if (rc == KD_OK) rc = s3_parse_list(r.body.data ? r.body.data : "", r.body.len, &pg);
    if (rc != KD_OK && rc != KD_ERR_CANCELLED && pages > 0) kd_fail_wrap(rc, "listing page %ld", pages + 1);
    http_resp_free(&r);
    s3_call_free(&k);
    pages++;
    if (rc == KD_OK && pg.n > c->list_max_keys - keys)
      rc = kd_fail(KD_ERR_TOOBIG, "listing s3://%s/%s: more than %zu keys (page %ld brings %zu more); stopped "
                   "(the cap on keys of one listing)", c->bucket, pfx, c->list_max_keys, pages, pg.n);
    if (rc == KD_OK) keys += pg.n;
    /* one page covers one key range: its objects and prefixes merged are in byte order */
    if (rc == KD_OK && pg.n > 1) qsort(pg.entries, pg.n, sizeof *pg.entries, s3_entry_cmp);
    for (size_t i = 0; rc == KD_OK && i < pg.n; i++) {
      if (!s3_list_fits(&pg.entries[i], pfx, plen, delimiter)) {
        ignored++;
        continue;
      }
      rc = fn(pg.entries[i].key, pg.entries[i].is_prefix, pg.entries[i].size, ud);
    }
    if (rc == KD_OK && pg.truncated) {
      if (!pg.next_token || !*pg.next_token) {
        rc = kd_fail(KD_ERR_PARSE, "listing s3://%s/%s: page %ld is truncated but has no continuation token", c->bucket,
                     pfx, pages);
      } else {
        if (token) { /* remember the token this page answered */
          if (nseen == aseen) {
            size_t na = aseen ? aseen * 2 : 16;
            uint64_t *ns = realloc(seen, na * sizeof *ns);
            if (!ns) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
            else seen = ns, aseen = na;
          }
          if (rc == KD_OK) seen[nseen++] = s3_token_hash(token);
        }
        uint64_t h = s3_token_hash(pg.next_token);
        for (size_t i = 0; rc == KD_OK && i < nseen; i++)
          if (seen[i] == h)
            rc = kd_fail(KD_ERR_PARSE, "listing s3://%s/%s: page %ld names as next the continuation token page %zu "
                         "was requested with (the server's tokens go round in a cycle); stopped", c->bucket, pfx, pages, i + 2);
      }
    }
    bool more = rc == KD_OK && pg.truncated;
    if (more) {
      free(token);
      token = pg.next_token;
      pg.next_token = NULL;
    }
    s3_page_free(&pg);
    if (!more) break;
  }
  if (ignored)
    kd_log(KD_LOG_WARN, "s3: listing s3://%s/%.200s at %s: ignored %zu entries the server sent outside the requested "
           "prefix or delimiter", c->bucket, pfx, c->origin, ignored);
  free(seen);
  free(token);
  return rc;
}

/* ---- S3 Object Lock ---- */

struct s3x_lock {
  struct s3_lock_config *cfg;
  bool root;
};

static kd_rc s3x_lock_cb(const char *path, const char *text, size_t len, bool leaf, void *ud) {
  struct s3x_lock *x = ud;
  if (strcmp(path, "ObjectLockConfiguration") == 0) {
    x->root = true;
  } else if (strchr(path, '/') == NULL) {
    return kd_fail(KD_ERR_PARSE, "the answer is <%s>, not <ObjectLockConfiguration>", path);
  } else if (leaf && strcmp(path, "ObjectLockConfiguration/ObjectLockEnabled") == 0) {
    x->cfg->enabled = len == 7 && memcmp(text, "Enabled", 7) == 0;
  } else if (leaf && strcmp(path, "ObjectLockConfiguration/Rule/DefaultRetention/Mode") == 0) {
    s3x_copy(x->cfg->default_mode, sizeof x->cfg->default_mode, text, len);
  } else if (leaf && (strcmp(path, "ObjectLockConfiguration/Rule/DefaultRetention/Days") == 0 ||
                      strcmp(path, "ObjectLockConfiguration/Rule/DefaultRetention/Years") == 0)) {
    long v = 0;
    if (len == 0 || len > 6) return kd_fail(KD_ERR_PARSE, "a bad DefaultRetention period");
    for (size_t i = 0; i < len; i++) {
      if (text[i] < '0' || text[i] > '9') return kd_fail(KD_ERR_PARSE, "a bad DefaultRetention period");
      v = v * 10 + (text[i] - '0');
    }
    x->cfg->default_days = (int)(path[strlen(path) - 1] == 's' && path[strlen(path) - 2] == 'r' ? v * 365 : v);
  }
  return KD_OK;
}

kd_rc s3_parse_lock_config(const char *xml, size_t len, struct s3_lock_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  struct s3x_lock x = {cfg, false};
  kd_rc rc = s3x_walk(xml, len, s3x_lock_cb, &x);
  if (rc != KD_OK) return kd_fail_wrap(rc, "reading an ObjectLockConfiguration");
  if (!x.root) return kd_fail(KD_ERR_PARSE, "no ObjectLockConfiguration in the answer");
  return KD_OK;
}

kd_rc s3_check_lock(s3_client *c) {
  struct s3_call k;
  struct http_resp r = {0};
  struct s3_lock_config cfg;
  sigv4_kv q[] = {{"object-lock", NULL}};
  kd_rc rc = s3_call_init(&k, c, "GetObjectLockConfiguration", "GET", "", q, 1);
  struct s3_opts o = {.retries = 2};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc != KD_OK && strstr(kd_errmsg(), "ObjectLockConfigurationNotFound")) {
    rc = kd_fail(KD_ERR_CONFIG, "object lock is configured on this location (kcmdr.io/object-lock) but bucket %s at %s "
                 "has no object lock (ObjectLockConfigurationNotFoundError): S3 turns it on only when a bucket is "
                 "created (x-amz-bucket-object-lock-enabled: true); use such a bucket", c->bucket, c->origin);
  } else if (rc != KD_OK) {
    kd_fail_wrap(rc, "reading the object lock configuration of bucket %s", c->bucket);
  } else if ((rc = s3_parse_lock_config(r.body.data ? r.body.data : "", r.body.len, &cfg)) != KD_OK) {
    kd_fail_wrap(rc, "bucket %s at %s", c->bucket, c->origin);
  } else if (!cfg.enabled) {
    rc = kd_fail(KD_ERR_CONFIG, "object lock is configured on this location (kcmdr.io/object-lock) but bucket %s at %s "
                 "does not have ObjectLockEnabled=Enabled: S3 turns it on only when a bucket is created "
                 "(x-amz-bucket-object-lock-enabled: true); use such a bucket", c->bucket, c->origin);
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

kd_rc s3_retention(s3_client *c, const char *key, const char *version, char mode[16], time_t *until) {
  struct s3_call k;
  struct http_resp r = {0};
  sigv4_kv vq[] = {{"versionId", version}};
  mode[0] = '\0';
  *until = 0;
  kd_rc rc = s3_call_init(&k, c, "HeadObject", "HEAD", key, vq, version ? 1 : 0);
  struct s3_opts o = {0};
  if (rc == KD_OK) rc = s3_do(&k, &o, &r);
  if (rc == KD_OK && k.lock_until[0]) {
    if (kd_time_parse(k.lock_until, until) != KD_OK)
      rc = kd_fail(KD_ERR_PARSE, "HEAD s3://%s/%s: a bad x-amz-object-lock-retain-until-date", c->bucket, key);
    else
      snprintf(mode, 16, "%s", k.lock_mode);
  }
  http_resp_free(&r);
  s3_call_free(&k);
  return rc;
}

/* ---- the first version of a key (ListObjectVersions) ---- */

struct s3x_versions {
  struct s3_versions_page *pg;
  char key[S3_MAX_XML_TEXT > 1100 ? 1100 : S3_MAX_XML_TEXT], version[256];
};

static kd_rc s3x_versions_cb(const char *path, const char *text, size_t len, bool leaf, void *ud) {
  struct s3x_versions *x = ud;
  bool v = strncmp(path, "ListVersionsResult/Version/", 27) == 0, dm = strncmp(path, "ListVersionsResult/DeleteMarker/", 32) == 0;
  if (leaf && (v || dm)) {
    const char *field = path + (v ? 27 : 32);
    if (strcmp(field, "Key") == 0) s3x_copy(x->key, sizeof x->key, text, len);
    else if (strcmp(field, "VersionId") == 0) s3x_copy(x->version, sizeof x->version, text, len);
  } else if (strcmp(path, "ListVersionsResult/Version") == 0 || strcmp(path, "ListVersionsResult/DeleteMarker") == 0) {
    struct s3_versions_page *pg = x->pg;
    if (strcmp(x->key, pg->key) == 0 && x->version[0]) {
      pg->any = true;
      if (path[19] == 'V') snprintf(pg->oldest, sizeof pg->oldest, "%s", x->version); /* newest first: the last is the oldest */
    }
    x->key[0] = x->version[0] = '\0';
  } else if (leaf && strcmp(path, "ListVersionsResult/IsTruncated") == 0) {
    x->pg->truncated = len == 4 && memcmp(text, "true", 4) == 0;
  } else if (leaf && strcmp(path, "ListVersionsResult/NextKeyMarker") == 0) {
    s3x_copy(x->pg->next_key, sizeof x->pg->next_key, text, len);
  } else if (leaf && strcmp(path, "ListVersionsResult/NextVersionIdMarker") == 0) {
    s3x_copy(x->pg->next_version, sizeof x->pg->next_version, text, len);
  } else if (strchr(path, '/') == NULL && strcmp(path, "ListVersionsResult") != 0) {
    return kd_fail(KD_ERR_PARSE, "the answer is <%s>, not <ListVersionsResult>", path);
  }
  return KD_OK;
}

kd_rc s3_parse_versions(const char *xml, size_t len, struct s3_versions_page *pg) {
  pg->truncated = false;
  pg->next_key[0] = pg->next_version[0] = '\0';
  struct s3x_versions *x = calloc(1, sizeof *x);
  if (!x) return kd_fail(KD_ERR_NOMEM, "out of memory");
  x->pg = pg;
  kd_rc rc = s3x_walk(xml, len, s3x_versions_cb, x);
  free(x);
  return rc != KD_OK ? kd_fail_wrap(rc, "reading a ListObjectVersions answer") : KD_OK;
}

kd_rc s3_first_version(s3_client *c, const char *key, char *version, size_t n, bool *any) {
  struct s3_versions_page pg;
  kd_rc rc = KD_OK;
  memset(&pg, 0, sizeof pg);
  snprintf(pg.key, sizeof pg.key, "%s", key);
  for (int page = 0;; page++) {
    if (page >= S3_MAX_VERSION_PAGES) {
      rc = kd_fail(KD_ERR_TOOBIG, "listing the versions of s3://%s/%s: more than %d pages", c->bucket, key, page);
      break;
    }
    struct s3_call k;
    struct http_resp r = {0};
    char km[sizeof pg.next_key], vm[sizeof pg.next_version];
    snprintf(km, sizeof km, "%s", pg.next_key);
    snprintf(vm, sizeof vm, "%s", pg.next_version);
    sigv4_kv q[5] = {{"versions", NULL}, {"prefix", key}};
    size_t nq = 2;
    if (page > 0) {
      q[nq++] = (sigv4_kv){"key-marker", km};
      if (vm[0]) q[nq++] = (sigv4_kv){"version-id-marker", vm};
    }
    rc = s3_call_init(&k, c, "ListObjectVersions", "GET", "", q, nq);
    struct s3_opts o = {.body_max = S3_MAX_LIST_BODY};
    if (rc == KD_OK) rc = s3_do(&k, &o, &r);
    if (rc == KD_OK) rc = s3_parse_versions(r.body.data ? r.body.data : "", r.body.len, &pg);
    http_resp_free(&r);
    s3_call_free(&k);
    /* past our key (markers are in key order): the rest are longer keys under the same prefix */
    if (rc != KD_OK || !pg.truncated || !pg.next_key[0] || strcmp(pg.next_key, key) > 0) break;
  }
  if (rc == KD_OK) {
    snprintf(version, n, "%s", pg.oldest);
    *any = pg.any;
  }
  return rc;
}
