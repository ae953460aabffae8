/* verify.c — a backup's files against its checksums file (see verify.h). */
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypt.h"
#include "velero.h"

struct verify_sums {
  json_t *files; /* the "files" object as parsed; validated */
  size_t n;
  const char **keys; /* in the file's order (jansson keeps insertion order) */
};

static bool hex64(const char *s) {
  if (!s || strlen(s) != 64) return false;
  for (size_t i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

kd_rc verify_sums_parse(const char *text, size_t len, verify_sums **out) {
  kd_rc rc = KD_OK;
  json_error_t jerr;
  verify_sums *v = NULL;
  *out = NULL;
  json_t *doc = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
  if (!doc) return kd_fail(KD_ERR_PARSE, "checksums file is not JSON: %s (line %d)", jerr.text, jerr.line);
  json_t *files = json_object_get(doc, "files");
  if (!json_is_object(files)) {
    rc = kd_fail(KD_ERR_PARSE, "checksums file has no \"files\" object");
    goto fail;
  }
  if (!(v = calloc(1, sizeof *v)) || !(v->keys = calloc(json_object_size(files) + 1, sizeof *v->keys))) {
    rc = kd_fail(KD_ERR_NOMEM, "no memory for the checksums");
    goto fail;
  }
  const char *key;
  json_t *ent;
  json_object_foreach(files, key, ent) {
    json_t *size = json_object_get(ent, "size");
    if (!objstore_key_valid(key)) {
      rc = kd_fail(KD_ERR_PARSE, "checksums file lists an invalid key \"%.200s\"", key);
      goto fail;
    }
    if (!hex64(json_string_value(json_object_get(ent, "sha256")))) {
      rc = kd_fail(KD_ERR_PARSE, "checksums file: %.200s: sha256 is not 64 lower-case hex digits", key);
      goto fail;
    }
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
      rc = kd_fail(KD_ERR_PARSE, "checksums file: %.200s: size is not a non-negative integer", key);
      goto fail;
    }
    v->keys[v->n++] = key;
  }
  v->files = json_incref(files);
  json_decref(doc);
  *out = v;
  return KD_OK;
fail:
  json_decref(doc);
  verify_sums_free(v);
  return rc;
}

kd_rc verify_sums_load(objstore *s, const char *backup, verify_sums **out) {
  char key[VELERO_KEY_MAX];
  char *text = NULL;
  size_t len = 0;
  *out = NULL;
  kd_rc rc = velero_backup_key(backup, VELERO_BACKUP_CHECKSUMS, key, sizeof key);
  if (rc) return rc;
  rc = objstore_get_all(s, key, VERIFY_SUMS_MAX, &text, &len);
  if (rc == KD_ERR_NOTFOUND) return kd_fail(rc, "backup %s has no checksums file (%s)", backup, key);
  if (rc) return kd_fail_wrap(rc, "reading %s", key);
  rc = verify_sums_parse(text, len, out);
  free(text);
  if (rc) return kd_fail_wrap(rc, "%s", key);
  return KD_OK;
}

bool verify_sums_get(const verify_sums *v, const char *key, const char **sha256_hex, uint64_t *size) {
  json_t *ent = v ? json_object_get(v->files, key) : NULL;
  if (!ent) return false;
  if (sha256_hex) *sha256_hex = json_string_value(json_object_get(ent, "sha256"));
  if (size) *size = (uint64_t)json_integer_value(json_object_get(ent, "size"));
  return true;
}

size_t verify_sums_count(const verify_sums *v) { return v ? v->n : 0; }

const char *verify_sums_key(const verify_sums *v, size_t i) { return v && i < v->n ? v->keys[i] : NULL; }

void verify_sums_free(verify_sums *v) {
  if (!v) return;
  free(v->keys);
  json_decref(v->files);
  free(v);
}

/* ---- staging ---- */

struct stage {
  EVP_MD_CTX *sha;
  uint64_t n, max;
  int fd; /* -1: check only */
  const char *key;
  crypt_reader *rd; /* with fd: decrypts an encrypted file on its way to fd (crypt_get's keys) */
};

static kd_rc stage_write(const char *p, size_t n, void *ud) {
  struct stage *st = ud;
  while (n > 0) {
    ssize_t w = write(st->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return kd_fail(KD_ERR_IO, "staging %s: %s", st->key, strerror(errno));
    p += w;
    n -= (size_t)w;
  }
  return KD_OK;
}

/* the stored bytes: counted and hashed as stored (ciphertext for an encrypted file), then kept */
static kd_rc stage_sink(const char *p, size_t n, void *ud) {
  struct stage *st = ud;
  if (n > st->max - st->n)
    return kd_fail(KD_ERR_TOOBIG, "%s is larger than %llu bytes: refused", st->key, (unsigned long long)st->max);
  st->n += n;
  if (EVP_DigestUpdate(st->sha, p, n) != 1) return kd_fail(KD_ERR_NOMEM, "SHA-256 failed");
  if (st->fd < 0) return KD_OK;
  return st->rd ? crypt_reader_feed(p, n, st->rd) : stage_write(p, n, st);
}

static kd_rc temp_file(const char *dir, int *fd) {
  if (!dir || !dir[0]) dir = getenv("TMPDIR");
  if (!dir || !dir[0]) dir = "/tmp";
  *fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (*fd >= 0) return KD_OK;
  /* file systems without O_TMPFILE: a named file, unlinked at once */
  char path[4096];
  if (snprintf(path, sizeof path, "%s/kcmdr-stage-XXXXXX", dir) >= (int)sizeof path)
    return kd_fail(KD_ERR_CONFIG, "staging directory path is too long");
  *fd = mkostemp(path, O_CLOEXEC);
  if (*fd < 0) return kd_fail(KD_ERR_IO, "cannot create a staging file in %s: %s", dir, strerror(errno));
  unlink(path);
  return KD_OK;
}

kd_rc verify_stage(objstore *s, const char *key, const verify_sums *sums, const char *dir, uint64_t max, int *fd,
                   bool *verified) {
  kd_rc rc = KD_OK;
  struct stage st = {.sha = EVP_MD_CTX_new(), .max = max, .fd = -1, .key = key};
  const char *want_hex = NULL;
  uint64_t want_size = 0;
  bool listed = verify_sums_get(sums, key, &want_hex, &want_size);
  if (fd) *fd = -1;
  if (verified) *verified = false;
  if (!st.sha || EVP_DigestInit_ex(st.sha, EVP_sha256(), NULL) != 1) {
    rc = kd_fail(KD_ERR_NOMEM, "SHA-256 failed");
    goto fail;
  }
  if (fd && (rc = temp_file(dir, &st.fd))) goto fail;
  if (fd && (rc = crypt_reader_new(crypt_attached(s), key, stage_write, &st, &st.rd))) goto fail;
  if ((rc = objstore_get(s, key, stage_sink, &st))) {
    if (rc == KD_ERR_NOTFOUND) rc = kd_fail(rc, "%s is missing from the storage location", key);
    goto fail;
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dl = 0;
  char got[65];
  if (EVP_DigestFinal_ex(st.sha, d, &dl) != 1 || dl != 32) {
    rc = kd_fail(KD_ERR_NOMEM, "SHA-256 failed");
    goto fail;
  }
  for (unsigned i = 0; i < 32; i++) snprintf(got + 2 * i, 3, "%02x", d[i]);
  if (listed) {
    if (st.n != want_size) {
      rc = kd_fail(KD_ERR_INTEGRITY, "%s is %llu bytes but the checksums file records %llu: the file was changed or cut",
                   key, (unsigned long long)st.n, (unsigned long long)want_size);
      goto fail;
    }
    if (strcmp(got, want_hex) != 0) {
      rc = kd_fail(KD_ERR_INTEGRITY, "%s has SHA-256 %s but the checksums file records %s: the file was changed", key,
                   got, want_hex);
      goto fail;
    }
    if (verified) *verified = true;
  }
  if (st.rd && (rc = crypt_reader_finish(st.rd))) goto fail; /* after the checksum: a changed file says so first */
  if (fd) {
    if (lseek(st.fd, 0, SEEK_SET) != 0) {
      rc = kd_fail(KD_ERR_IO, "staging %s: %s", key, strerror(errno));
      goto fail;
    }
    *fd = st.fd;
    st.fd = -1;
  }
fail:
  if (st.fd >= 0) close(st.fd);
  crypt_reader_free(st.rd);
  EVP_MD_CTX_free(st.sha);
  return rc;
}

kd_rc verify_signature(objstore *s, const char *backup, const struct crypt_location *loc, struct verify_sig *out,
                       verify_sums **sums) {
  char key[VELERO_KEY_MAX], skey[VELERO_KEY_MAX];
  char *text = NULL, *sig = NULL;
  size_t len = 0, slen = 0;
  memset(out, 0, sizeof *out);
  if (sums) *sums = NULL;
  kd_rc rc;
  if ((rc = velero_backup_key(backup, VELERO_BACKUP_CHECKSUMS, key, sizeof key)) ||
      (rc = velero_backup_key(backup, VELERO_BACKUP_SIGNATURE, skey, sizeof skey)))
    return rc;
  rc = objstore_get_all(s, key, VERIFY_SUMS_MAX, &text, &len);
  if (rc && rc != KD_ERR_NOTFOUND) return kd_fail_wrap(rc, "reading %s", key);
  if (rc == KD_OK && sums && (rc = verify_sums_parse(text, len, sums))) {
    rc = kd_fail_wrap(rc, "%s", key);
    goto fail;
  }
  bool have_sums = text != NULL;
  rc = objstore_get_all(s, skey, CRYPT_SIGFILE_MAX, &sig, &slen);
  if (rc == KD_ERR_TOOBIG) {
    rc = KD_OK;
    snprintf(out->why, sizeof out->why, "%.1000s is larger than %d bytes: not a signature file", skey, CRYPT_SIGFILE_MAX);
    out->present = true;
  } else if (rc == KD_ERR_NOTFOUND) {
    rc = KD_OK;
    snprintf(out->why, sizeof out->why, "the backup is not signed (no %s)", skey);
  } else if (rc) {
    rc = kd_fail_wrap(rc, "reading %s", skey);
    goto fail;
  } else {
    out->present = true;
    if (!have_sums) {
      snprintf(out->why, sizeof out->why, "%s is missing, so its signature proves nothing", key);
    } else if (!loc || !loc->verify) {
      unsigned char raw[64];
      if (crypt_sigfile_parse(sig, slen, out->key_id, raw) != KD_OK) snprintf(out->why, sizeof out->why, "%s: %.1200s", skey, kd_errmsg());
      else snprintf(out->why, sizeof out->why, "signed by key %s, not checked: the location names no key to verify with "
                    "(annotation %s)", out->key_id, CRYPT_ANN_VERIFY);
    } else if (crypt_verify(loc->verify, text, len, sig, slen, out->key_id) == KD_OK) {
      out->valid = true;
    } else {
      snprintf(out->why, sizeof out->why, "%s: %.1200s", skey, kd_errmsg());
    }
  }
  out->refused = !out->valid && ((loc && loc->require_signature) || (out->present && loc && loc->verify));
  kd_clear_error();
fail:
  if (rc && sums) {
    verify_sums_free(*sums);
    *sums = NULL;
  }
  free(text);
  free(sig);
  return rc;
}
