/* objstore.c — one object-store interface over S3 (s3.c) and a directory (fsstore.c): reading a
 * BackupStorageLocation, AWS shared-credentials files, key rules, the location prefix. */
#include "objstore.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsstore.h"
#include "s3.h"

#define OBJSTORE_MAX_KEY 1024 /* S3's limit on a whole key (prefix included), in bytes */

struct objstore {
  s3_client *s3;  /* exactly one of s3, fs */
  fsstore *fs;
  char *prefix;   /* "" or "<prefix>/" */
  char *describe;
  objstore_guard_fn guard; /* the write guard, or NULL */
  void *guard_ud;
  size_t list_max_keys;
  char lock_mode[16];      /* kcmdr.io/object-lock: "COMPLIANCE", "GOVERNANCE", or "" */
  int lock_days;           /* kcmdr.io/object-lock-days, 0 when not given */
};

struct objstore_writer {
  objstore *s;
  s3_writer *s3;
  fsstore_writer *fs;
  char *full;   /* under object lock: the key, checked again before the upload completes */
  char *key;
};

bool objstore_key_valid(const char *key) {
  if (!key || !*key) return false;
  for (const char *seg = key;;) {
    const char *e = strchr(seg, '/');
    size_t n = e ? (size_t)(e - seg) : strlen(seg);
    if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) return false;
    if (!e) return true;
    seg = e + 1;
  }
}

/* ---- AWS shared-credentials files ---- */

static void oc_trim(const char **s, const char **e) {
  while (*s < *e && (**s == ' ' || **s == '\t')) (*s)++;
  while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r')) (*e)--;
}

static bool oc_eq(const char *s, const char *e, const char *word) {
  size_t n = strlen(word);
  return (size_t)(e - s) == n && strncasecmp(s, word, n) == 0;
}

static kd_rc oc_set(char **dst, const char *s, const char *e) {
  free(*dst);
  if (!(*dst = strndup(s, (size_t)(e - s)))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

void objstore_creds_free(struct objstore_creds *c) {
  if (!c) return;
  char **f[] = {&c->access_key, &c->secret_key, &c->session_token};
  for (size_t i = 0; i < KD_ARRAY_LEN(f); i++) {
    if (*f[i]) explicit_bzero(*f[i], strlen(*f[i]));
    free(*f[i]);
    *f[i] = NULL;
  }
}

kd_rc objstore_parse_credentials(const char *text, size_t len, const char *profile, struct objstore_creds *out) {
  kd_rc rc = KD_OK;
  memset(out, 0, sizeof *out);
  if (!profile || !*profile) profile = "default";
  const char *p = text, *end = text + len;
  if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3; /* a UTF-8 byte-order mark from an editor */
  if (memchr(text, '\0', len)) return kd_fail(KD_ERR_CONFIG, "the credentials file holds a NUL byte");
  bool in = false, seen = false;
  int line = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *s = p, *e = nl ? nl : end;
    p = nl ? nl + 1 : end;
    line++;
    oc_trim(&s, &e);
    if (s == e || *s == '#' || *s == ';') continue;
    if (*s == '[') {
      if (e[-1] != ']') {
        rc = kd_fail(KD_ERR_CONFIG, "credentials line %d: a section header without ']'", line);
        goto fail;
      }
      const char *ns = s + 1, *ne = e - 1;
      oc_trim(&ns, &ne);
      /* "[profile name]" is the config-file spelling; both are accepted */
      if (ne - ns > 8 && strncmp(ns, "profile", 7) == 0 && (ns[7] == ' ' || ns[7] == '\t')) {
        ns += 8;
        oc_trim(&ns, &ne);
      }
      in = (size_t)(ne - ns) == strlen(profile) && strncmp(ns, profile, (size_t)(ne - ns)) == 0;
      seen = seen || in;
      continue;
    }
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq) {
      /* a continuation or junk line; never echo it (it may be a secret) */
      if (in) {
        rc = kd_fail(KD_ERR_CONFIG, "credentials line %d (profile '%s'): expected 'name = value'", line, profile);
        goto fail;
      }
      continue;
    }
    if (!in) continue;
    const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
    oc_trim(&ks, &ke);
    oc_trim(&vs, &ve);
    if (oc_eq(ks, ke, "aws_access_key_id")) rc = oc_set(&out->access_key, vs, ve);
    else if (oc_eq(ks, ke, "aws_secret_access_key")) rc = oc_set(&out->secret_key, vs, ve);
    else if (oc_eq(ks, ke, "aws_session_token") || oc_eq(ks, ke, "aws_security_token")) rc = oc_set(&out->session_token, vs, ve);
    if (rc != KD_OK) goto fail;
  }
  if (!seen) {
    rc = kd_fail(KD_ERR_CONFIG, "the credentials file has no [%s] profile", profile);
    goto fail;
  }
  if (!out->access_key || !*out->access_key) {
    rc = kd_fail(KD_ERR_CONFIG, "profile '%s' of the credentials file has no aws_access_key_id", profile);
    goto fail;
  }
  if (!out->secret_key || !*out->secret_key) {
    rc = kd_fail(KD_ERR_CONFIG, "profile '%s' of the credentials file has no aws_secret_access_key", profile);
    goto fail;
  }
  if (out->session_token && !*out->session_token) {
    free(out->session_token);
    out->session_token = NULL;
  }
  return KD_OK;
fail:
  objstore_creds_free(out);
  return rc;
}

/* ---- the BSL ---- */

/* A config value (Velero's config is map[string]string); NULL when absent or empty.
 * KD_ERR_CONFIG when present but not a string. */
static kd_rc ob_config_str(json_t *config, const char *name, const char **out) {
  *out = NULL;
  json_t *v = json_object_get(config, name);
  if (!v || json_is_null(v)) return KD_OK;
  if (!json_is_string(v)) return kd_fail(KD_ERR_CONFIG, "config.%s must be a string", name);
  *out = json_string_value(v);
  if (strlen(*out) != json_string_length(v)) return kd_fail(KD_ERR_CONFIG, "config.%s holds a NUL byte", name);
  if (!**out) *out = NULL;
  return KD_OK;
}

/* Go's strconv.ParseBool, which Velero's AWS plugin uses for its boolean config keys. */
static kd_rc ob_config_bool(json_t *config, const char *name, bool *out) {
  const char *s;
  *out = false;
  kd_rc rc = ob_config_str(config, name, &s);
  if (rc != KD_OK || !s) return rc;
  static const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"}, *no[] = {"0", "f", "F", "FALSE", "false", "False"};
  for (size_t i = 0; i < KD_ARRAY_LEN(yes); i++) {
    if (strcmp(s, yes[i]) == 0) return *out = true, KD_OK;
    if (strcmp(s, no[i]) == 0) return KD_OK;
  }
  return kd_fail(KD_ERR_CONFIG, "config.%s '%s' is not a boolean (true or false)", name, s);
}

/* Decode objectStorage.caCert (base64 of PEM) and check it holds at least one certificate. */
static kd_rc ob_ca_cert(const char *b64, char **pem, size_t *pem_len) {
  unsigned char *d = NULL;
  size_t n = 0;
  *pem = NULL;
  if (kd_base64_decode(b64, strlen(b64), &d, &n) != KD_OK)
    return kd_fail(KD_ERR_CONFIG, "objectStorage.caCert is not base64 (it must be the base64 of PEM certificates)");
  BIO *bio = BIO_new_mem_buf(d, (int)n);
  X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  bool ok = x != NULL;
  X509_free(x);
  BIO_free(bio);
  if (!ok) {
    free(d);
    return kd_fail(KD_ERR_CONFIG, "objectStorage.caCert does not decode to a PEM certificate");
  }
  *pem = (char *)d;
  *pem_len = n;
  return KD_OK;
}

static kd_rc ob_obj_str(json_t *obj, const char *where, const char *name, const char **out) {
  *out = NULL;
  json_t *v = json_object_get(obj, name);
  if (!v || json_is_null(v)) return KD_OK;
  if (!json_is_string(v)) return kd_fail(KD_ERR_CONFIG, "%s.%s must be a string", where, name);
  *out = json_string_value(v);
  if (strlen(*out) != json_string_length(v)) return kd_fail(KD_ERR_CONFIG, "%s.%s holds a NUL byte", where, name);
  return KD_OK;
}

kd_rc objstore_lock_annotations(json_t *bsl, char mode[16], int *days) {
  json_t *ann = json_object_get(json_object_get(bsl, "metadata"), "annotations");
  mode[0] = '\0';
  *days = 0;
  if (ann && !json_is_null(ann) && !json_is_object(ann)) return kd_fail(KD_ERR_CONFIG, "metadata.annotations must be a map");
  json_t *m = json_object_get(ann, OBJSTORE_ANN_LOCK), *d = json_object_get(ann, OBJSTORE_ANN_LOCK_DAYS);
  if (m) {
    const char *v = json_string_value(m);
    if (!v || (strcmp(v, "COMPLIANCE") != 0 && strcmp(v, "GOVERNANCE") != 0))
      return kd_fail(KD_ERR_CONFIG, "annotation %s '%.40s' must be COMPLIANCE or GOVERNANCE", OBJSTORE_ANN_LOCK,
                     v ? v : "(not a string)");
    snprintf(mode, 16, "%s", v);
  }
  if (d) {
    const char *v = json_string_value(d);
    long n = 0;
    size_t len = v ? strlen(v) : 0;
    bool ok = len > 0 && len <= 5 && v[0] != '0';
    for (size_t i = 0; ok && i < len; i++) ok = v[i] >= '0' && v[i] <= '9';
    if (ok) n = strtol(v, NULL, 10);
    if (!ok || n < 1 || n > OBJSTORE_LOCK_DAYS_MAX)
      return kd_fail(KD_ERR_CONFIG, "annotation %s '%.40s' must be a whole number of days from 1 to %d", OBJSTORE_ANN_LOCK_DAYS,
                     v ? v : "(not a string)", OBJSTORE_LOCK_DAYS_MAX);
    if (!mode[0])
      return kd_fail(KD_ERR_CONFIG, "annotation %s needs %s (COMPLIANCE or GOVERNANCE) too", OBJSTORE_ANN_LOCK_DAYS,
                     OBJSTORE_ANN_LOCK);
    *days = (int)n;
  }
  return KD_OK;
}

kd_rc objstore_open_bsl(json_t *bsl, const char *cred, size_t cred_len, objstore **out) {
  kd_rc rc = KD_OK;
  struct objstore_creds creds = {0};
  char *ca = NULL;
  size_t ca_len = 0;
  *out = NULL;
  objstore *s = calloc(1, sizeof *s);
  if (!s) return kd_fail(KD_ERR_NOMEM, "out of memory");
  s->list_max_keys = OBJSTORE_MAX_LIST_KEYS;
  json_t *spec = json_object_get(bsl, "spec");
  if (!json_is_object(spec)) {
    rc = kd_fail(KD_ERR_CONFIG, "the BackupStorageLocation has no spec");
    goto fail;
  }
  json_t *os = json_object_get(spec, "objectStorage"), *config = json_object_get(spec, "config");
  if (config && !json_is_null(config) && !json_is_object(config)) {
    rc = kd_fail(KD_ERR_CONFIG, "spec.config must be a map of strings");
    goto fail;
  }
  if (os && !json_is_null(os) && !json_is_object(os)) {
    rc = kd_fail(KD_ERR_CONFIG, "spec.objectStorage must be an object");
    goto fail;
  }
  const char *provider, *bucket = NULL, *prefix = NULL, *cacert = NULL;
  if ((rc = ob_obj_str(spec, "spec", "provider", &provider)) != KD_OK) goto fail;
  if ((rc = objstore_lock_annotations(bsl, s->lock_mode, &s->lock_days)) != KD_OK) goto fail;
  if (os && ((rc = ob_obj_str(os, "objectStorage", "bucket", &bucket)) != KD_OK ||
             (rc = ob_obj_str(os, "objectStorage", "prefix", &prefix)) != KD_OK ||
             (rc = ob_obj_str(os, "objectStorage", "caCert", &cacert)) != KD_OK))
    goto fail;

  /* the prefix, trimmed of '/', is a key prefix "<prefix>/" */
  const char *ps = prefix ? prefix : "", *pe = ps + strlen(ps);
  while (*ps == '/') ps++;
  while (pe > ps && pe[-1] == '/') pe--;
  size_t pl = (size_t)(pe - ps);
  if (!(s->prefix = malloc(pl + 2))) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  memcpy(s->prefix, ps, pl);
  if (pl) s->prefix[pl++] = '/';
  s->prefix[pl] = '\0';
  if (pl) {
    s->prefix[pl - 1] = '\0';
    bool ok = objstore_key_valid(s->prefix) && pl < OBJSTORE_MAX_KEY;
    s->prefix[pl - 1] = '/';
    if (!ok) {
      rc = kd_fail(KD_ERR_CONFIG, "objectStorage.prefix '%.300s' has an empty, '.' or '..' segment or is too long", prefix);
      goto fail;
    }
  }

  if (provider && strcmp(provider, "filesystem") == 0) {
    const char *path;
    if ((rc = ob_config_str(config, "path", &path)) != KD_OK) goto fail;
    if (!path) {
      rc = kd_fail(KD_ERR_CONFIG, "provider filesystem needs config.path (a directory)");
      goto fail;
    }
    if (s->lock_mode[0]) {
      rc = kd_fail(KD_ERR_CONFIG, "annotation %s: object lock needs an S3 location (provider aws), not a directory",
                   OBJSTORE_ANN_LOCK);
      goto fail;
    }
    if ((rc = fsstore_new(path, &s->fs)) != KD_OK) goto fail;
    size_t n = strlen("file://") + strlen(fsstore_root(s->fs)) + 1 + strlen(s->prefix) + 1;
    if (!(s->describe = malloc(n))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    snprintf(s->describe, n, "file://%s%s%.*s", fsstore_root(s->fs), pl ? "/" : "", pl ? (int)pl - 1 : 0, s->prefix);
  } else if (provider && (strcmp(provider, "aws") == 0 || strcmp(provider, "velero.io/aws") == 0)) {
    const char *region, *s3url, *public_url, *profile;
    bool path_style, insecure;
    if ((rc = ob_config_str(config, "region", &region)) != KD_OK || (rc = ob_config_str(config, "s3Url", &s3url)) != KD_OK ||
        (rc = ob_config_str(config, "publicUrl", &public_url)) != KD_OK ||
        (rc = ob_config_str(config, "profile", &profile)) != KD_OK ||
        (rc = ob_config_bool(config, "s3ForcePathStyle", &path_style)) != KD_OK ||
        (rc = ob_config_bool(config, "insecureSkipTLSVerify", &insecure)) != KD_OK)
      goto fail;
    if (!bucket || !*bucket) {
      rc = kd_fail(KD_ERR_CONFIG, "provider %s needs objectStorage.bucket", provider);
      goto fail;
    }
    if (public_url && strncmp(public_url, "http://", 7) != 0 && strncmp(public_url, "https://", 8) != 0) {
      rc = kd_fail(KD_ERR_CONFIG, "config.publicUrl '%.300s' is not an http:// or https:// URL", public_url);
      goto fail;
    }
    if (cacert && (rc = ob_ca_cert(cacert, &ca, &ca_len)) != KD_OK) goto fail;
    if (!cred) {
      rc = kd_fail(KD_ERR_CONFIG, "no credentials: the BackupStorageLocation names no spec.credential Secret key");
      goto fail;
    }
    if ((rc = objstore_parse_credentials(cred, cred_len, profile, &creds)) != KD_OK) goto fail;
    struct s3_config sc = {s3url, bucket, region, path_style, insecure, ca, ca_len,
                           creds.access_key, creds.secret_key, creds.session_token};
    if ((rc = s3_new(&sc, &s->s3)) != KD_OK) goto fail;
    s3_set_lock(s->s3, s->lock_mode, s->lock_days, 0);
    size_t n = strlen(bucket) + strlen(s->prefix) + strlen(s3_endpoint(s->s3)) + 32;
    if (!(s->describe = malloc(n))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    snprintf(s->describe, n, "s3://%s%s%.*s at %s", bucket, pl ? "/" : "", pl ? (int)pl - 1 : 0, s->prefix,
             s3_endpoint(s->s3));
  } else {
    rc = kd_fail(KD_ERR_CONFIG, "spec.provider '%.100s' is not supported (use aws, velero.io/aws or filesystem)",
                 provider ? provider : "");
    goto fail;
  }
  objstore_creds_free(&creds);
  free(ca);
  *out = s;
  return KD_OK;
fail:
  objstore_creds_free(&creds);
  free(ca);
  objstore_free(s);
  return rc;
}

void objstore_free(objstore *s) {
  if (!s) return;
  s3_free(s->s3);
  fsstore_free(s->fs);
  free(s->prefix);
  free(s->describe);
  free(s);
}

void objstore_set_cancel(objstore *s, volatile const int *cancel) {
  if (s->s3) s3_set_cancel(s->s3, cancel);
  else fsstore_set_cancel(s->fs, cancel);
}

const char *objstore_describe(const objstore *s) { return s->describe; }

void objstore_set_guard(objstore *s, objstore_guard_fn guard, void *ud) {
  s->guard = guard;
  s->guard_ud = ud;
  if (s->s3) s3_set_guard(s->s3, guard, ud);
}

void objstore_set_list_caps(objstore *s, long max_pages, size_t max_keys) {
  s->list_max_keys = max_keys > 0 ? max_keys : OBJSTORE_MAX_LIST_KEYS;
  if (s->s3) s3_set_list_caps(s->s3, max_pages, max_keys);
}

/* Ask the write guard before a mutating call; its code when it refuses. */
static kd_rc ob_guard(const objstore *s, const char *what, const char *key) {
  if (!s->guard) return KD_OK;
  kd_rc rc = s->guard(s->guard_ud);
  if (rc != KD_OK) kd_fail_wrap(rc, "%s %s in %s refused by the write guard", what, key ? key : "", s->describe);
  return rc;
}

/* The full key "<prefix>/<key>" (caller frees); KD_ERR_INVALID for a bad or too long key. */
static kd_rc ob_full_key(const objstore *s, const char *key, char **out) {
  *out = NULL;
  if (!objstore_key_valid(key))
    return kd_fail(KD_ERR_INVALID, "'%.200s' is not a valid key (empty, absolute, or with an empty, '.' or '..' segment)",
                   key ? key : "");
  size_t n = strlen(s->prefix) + strlen(key);
  if (n > OBJSTORE_MAX_KEY) return kd_fail(KD_ERR_INVALID, "key '%.200s...' is longer than %d bytes", key, OBJSTORE_MAX_KEY);
  if (!(*out = malloc(n + 1))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  snprintf(*out, n + 1, "%s%s", s->prefix, key);
  return KD_OK;
}

kd_rc objstore_check(objstore *s) {
  /* both stores' messages already name the bucket and endpoint, or the directory */
  kd_rc rc = s->s3 ? s3_check(s->s3, s->prefix) : fsstore_check(s->fs);
  if (rc == KD_OK && s->lock_mode[0]) rc = s3_check_lock(s->s3);
  return rc;
}

const char *objstore_lock_mode(const objstore *s) { return s->lock_mode[0] ? s->lock_mode : NULL; }

int objstore_lock_days(const objstore *s) { return s->lock_days; }

time_t objstore_lock_backup(objstore *s, time_t start, time_t expiration) {
  if (!s->lock_mode[0]) return 0;
  time_t until = start + (time_t)s->lock_days * 86400;
  if (expiration > until) until = expiration;
  if (until <= time(NULL))
    kd_log(KD_LOG_WARN, "%s: object lock %s, but the backup's expiration is not in the future and %s is not set: its "
           "files are written without retention", s->describe, s->lock_mode, OBJSTORE_ANN_LOCK_DAYS);
  s3_set_lock(s->s3, s->lock_mode, s->lock_days, until);
  return until;
}

/* Under object lock every key is written once: its first version is the one kcmdr wrote, whatever
 * came on top (an overwrite, a delete marker). *version: that version ("" when none). */
static kd_rc ob_pinned(objstore *s, const char *full, char version[256], bool *any) {
  kd_rc rc = s3_first_version(s->s3, full, version, 256, any);
  return rc ? kd_fail_wrap(rc, "finding the first version of %s in %s", full, s->describe) : KD_OK;
}

/* Under object lock, reads are pinned to a key's FIRST version: a version put there before us
 * (someone with the location's credentials planting the next scheduled backup's files) would be
 * what every read returns, our write only a version on top. So a key is written only when it
 * has no version at all: KD_ERR_CONFLICT when it has one. KD_OK without object lock. */
static kd_rc ob_fresh(objstore *s, const char *full, const char *key) {
  char version[256];
  bool any = false;
  if (!s->s3 || !s->lock_mode[0]) return KD_OK;
  kd_rc rc = ob_pinned(s, full, version, &any);
  if (rc == KD_OK && any)
    rc = kd_fail(KD_ERR_CONFLICT, "%s in %s already exists (a version of it is kept by object lock, and reads under "
                 "object lock return a key's first version): refusing to write it again", key, s->describe);
  return rc;
}

kd_rc objstore_retention(objstore *s, const char *key, char mode[16], time_t *until) {
  char *full;
  mode[0] = '\0';
  *until = 0;
  kd_rc rc = ob_full_key(s, key, &full);
  if (rc != KD_OK) return rc;
  if (s->s3 && s->lock_mode[0]) { /* the version kcmdr wrote, whatever came on top */
    char version[256];
    bool any = false;
    if ((rc = ob_pinned(s, full, version, &any)) == KD_OK)
      rc = version[0] ? s3_retention(s->s3, full, version, mode, until)
                      : kd_fail(KD_ERR_NOTFOUND, "no object %s in %s", key, s->describe);
  } else if (s->s3) {
    rc = s3_retention(s->s3, full, NULL, mode, until);
  }
  else rc = fsstore_head(s->fs, full, &(uint64_t){0}); /* a directory locks nothing: only "is it there" */
  free(full);
  return rc;
}

kd_rc objstore_writer_open(objstore *s, const char *key, objstore_writer **out) {
  char *full = NULL;
  *out = NULL;
  kd_rc rc = ob_full_key(s, key, &full);
  if (rc != KD_OK) return rc;
  if ((rc = ob_guard(s, "writing", key)) != KD_OK || (rc = ob_fresh(s, full, key)) != KD_OK) {
    free(full);
    return rc;
  }
  objstore_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->key = strdup(key))) {
    free(w);
    free(full);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  w->s = s;
  w->full = full;
  rc = s->s3 ? s3_writer_open(s->s3, full, &w->s3) : fsstore_writer_open(s->fs, full, &w->fs);
  if (rc != KD_OK) {
    free(w->key);
    free(w->full);
    free(w);
    return rc;
  }
  *out = w;
  return KD_OK;
}

kd_rc objstore_writer_write(objstore_writer *w, const void *p, size_t n) {
  return w->s3 ? s3_writer_write(w->s3, p, n) : fsstore_writer_write(w->fs, p, n);
}

uint64_t objstore_writer_size(const objstore_writer *w) {
  return w->s3 ? s3_writer_size(w->s3) : fsstore_writer_size(w->fs);
}

kd_rc objstore_writer_commit(objstore_writer *w) {
  kd_rc rc = ob_guard(w->s, "committing", "an upload");
  /* a version planted while the parts went up: checked again (see ob_fresh) */
  if (rc == KD_OK) rc = ob_fresh(w->s, w->full, w->key);
  if (rc != KD_OK) { /* refused: what was uploaded goes away, nothing becomes visible */
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", kd_errmsg());
    objstore_writer_abort(w);
    return kd_fail(rc, "%s", saved);
  }
  rc = w->s3 ? s3_writer_commit(w->s3) : fsstore_writer_commit(w->fs);
  free(w->key);
  free(w->full);
  free(w);
  return rc;
}

void objstore_writer_abort(objstore_writer *w) {
  if (!w) return;
  if (w->s3) s3_writer_abort(w->s3);
  else fsstore_writer_abort(w->fs);
  free(w->key);
  free(w->full);
  free(w);
}

kd_rc objstore_put(objstore *s, const char *key, const void *p, size_t n) {
  char *full;
  kd_rc rc = ob_full_key(s, key, &full);
  if (rc != KD_OK) return rc;
  if ((rc = ob_guard(s, "putting", key)) == KD_OK && (rc = ob_fresh(s, full, key)) == KD_OK)
    rc = s->s3 ? s3_put(s->s3, full, p, n) : fsstore_put(s->fs, full, p, n);
  free(full);
  return rc;
}

kd_rc objstore_put_new(objstore *s, const char *key, const void *p, size_t n) {
  char *full;
  kd_rc rc = ob_full_key(s, key, &full);
  if (rc != KD_OK) return rc;
  if (s->lock_mode[0]) { /* a hidden (delete-marked) version counts: a name is never written twice */
    char version[256];
    bool any = false;
    if ((rc = ob_pinned(s, full, version, &any)) == KD_OK && any)
      rc = kd_fail(KD_ERR_CONFLICT, "%s in %s already exists (a version of it is kept by object lock)", key, s->describe);
    if (rc != KD_OK) {
      free(full);
      return rc;
    }
  }
  if ((rc = ob_guard(s, "creating", key)) == KD_OK)
    rc = s->s3 ? s3_put_new(s->s3, full, p, n) : fsstore_put_new(s->fs, full, p, n);
  free(full);
  return rc;
}

kd_rc objstore_get(objstore *s, const char *key, objstore_sink_fn fn, void *ud) {
  char *full;
  kd_rc rc = ob_full_key(s, key, &full);
  if (rc != KD_OK) return rc;
  if (s->lock_mode[0]) {
    char version[256];
    bool any = false;
    if ((rc = ob_pinned(s, full, version, &any)) == KD_OK)
      rc = version[0] ? s3_get_version(s->s3, full, version, fn, ud)
                      : kd_fail(KD_ERR_NOTFOUND, "no object %s in %s", key, s->describe);
  } else {
    rc = s->s3 ? s3_get(s->s3, full, fn, ud) : fsstore_get(s->fs, full, fn, ud);
  }
  free(full);
  return rc;
}

static kd_rc ob_collect(const char *p, size_t n, void *ud) { return kd_buf_add(ud, p, n); }

kd_rc objstore_get_all(objstore *s, const char *key, size_t max, char **out, size_t *len) {
  kd_buf b = KD_BUF_INIT(max);
  *out = NULL;
  kd_rc rc = objstore_get(s, key, ob_collect, &b);
  if (rc == KD_ERR_TOOBIG) rc = kd_fail(KD_ERR_TOOBIG, "object %s is larger than %zu bytes", key, max);
  if (rc == KD_OK && !b.data) rc = kd_buf_add(&b, "", 0);
  if (rc != KD_OK) {
    kd_buf_free(&b);
    return rc;
  }
  if (len) *len = b.len;
  *out = b.data;
  return KD_OK;
}

kd_rc objstore_head(objstore *s, const char *key, uint64_t *size) {
  char *full;
  uint64_t dummy;
  kd_rc rc = ob_full_key(s, key, &full);
  if (rc != KD_OK) return rc;
  if (s->lock_mode[0]) {
    char version[256];
    bool any = false;
    if ((rc = ob_pinned(s, full, version, &any)) == KD_OK)
      rc = version[0] ? s3_head_version(s->s3, full, version, size ? size : &dummy)
                      : kd_fail(KD_ERR_NOTFOUND, "no object %s in %s", key, s->describe);
  } else {
    rc = s->s3 ? s3_head(s->s3, full, size ? size : &dummy) : fsstore_head(s->fs, full, size ? size : &dummy);
  }
  free(full);
  return rc;
}

/* Under object lock a plain DELETE of a retained object only adds a delete marker: it answers
 * success while the file stays, hidden. So the retention of the key's first version is read
 * first: KD_ERR_FORBIDDEN while it lasts, and any failure to read it is returned (never a
 * delete on a guess). KD_OK when the key has no version or its retention has passed. */
static kd_rc ob_unlocked(objstore *s, const char *full, const char *key) {
  char version[256], mode[16], date[21];
  bool any = false;
  time_t until = 0;
  if (!s->s3 || !s->lock_mode[0]) return KD_OK;
  kd_rc rc = ob_pinned(s, full, version, &any);
  if (rc == KD_OK && version[0] && (rc = s3_retention(s->s3, full, version, mode, &until)) != KD_OK)
    rc = kd_fail_wrap(rc, "reading the object lock of %s in %s before deleting it", key, s->describe);
  if (rc == KD_OK && until > time(NULL)) {
    kd_time_format(until, date);
    rc = kd_fail(KD_ERR_FORBIDDEN, "%s in %s is protected by S3 Object Lock (%s) until %s: it cannot be deleted before "
                 "then (a plain DELETE would only hide it behind a delete marker)", key, s->describe,
                 mode[0] ? mode : "retention", date);
  }
  return rc;
}

kd_rc objstore_delete(objstore *s, const char *key) {
  char *full;
  kd_rc rc = ob_full_key(s, key, &full);
  if (rc != KD_OK) return rc;
  if ((rc = ob_guard(s, "deleting", key)) == KD_OK && (rc = ob_unlocked(s, full, key)) == KD_OK)
    rc = s->s3 ? s3_delete(s->s3, full) : fsstore_delete(s->fs, full);
  free(full);
  return rc;
}

struct ob_list {
  const objstore *s;
  const char *full; /* the requested prefix, location prefix included */
  size_t plen, flen;
  size_t keys;      /* entries passed to fn */
  objstore_list_fn fn;
  void *ud;
};

static kd_rc ob_list_cb(const char *key, bool is_prefix, uint64_t size, void *ud) {
  struct ob_list *l = ud;
  /* the store answers full keys; callers see keys relative to the location, and only those
   * under the prefix they asked for (whatever a server sends) */
  if (strncmp(key, l->full, l->flen) != 0 || !key[l->plen]) return KD_OK;
  if (l->keys >= l->s->list_max_keys)
    return kd_fail(KD_ERR_TOOBIG, "listing %s under '%.200s': more than %zu keys; stopped (the cap on keys of one "
                   "listing)", l->s->describe, l->full + l->plen, l->s->list_max_keys);
  l->keys++;
  return l->fn(key + l->plen, is_prefix, size, l->ud);
}

kd_rc objstore_list(objstore *s, const char *prefix, char delimiter, objstore_list_fn fn, void *ud) {
  if (delimiter != '\0' && delimiter != '/')
    return kd_fail(KD_ERR_INVALID, "objstore_list: delimiter must be '/' or none, not '%c'", delimiter);
  size_t n = strlen(s->prefix) + (prefix ? strlen(prefix) : 0);
  if (n > OBJSTORE_MAX_KEY) return kd_fail(KD_ERR_INVALID, "listing prefix longer than %d bytes", OBJSTORE_MAX_KEY);
  char *full = malloc(n + 1);
  if (!full) return kd_fail(KD_ERR_NOMEM, "out of memory");
  snprintf(full, n + 1, "%s%s", s->prefix, prefix ? prefix : "");
  struct ob_list l = {s, full, strlen(s->prefix), n, 0, fn, ud};
  kd_rc rc = s->s3 ? s3_list(s->s3, full, delimiter, ob_list_cb, &l) : fsstore_list(s->fs, full, delimiter, ob_list_cb, &l);
  free(full);
  return rc;
}
