/* crypt.c — backup encryption and signatures (see crypt.h).
 *
 * DESIGN
 *
 * What is encrypted. The four data files of a backup: <b>.tar.gz, <b>-resource-list.json.gz,
 * <b>-results.gz and <b>-logs.gz (the objects, their names, the log). Left in clear, because they
 * hold no object data and must be readable without the key: velero-backup.json (Velero's and
 * kcmdr's sync list backups by it; it records the key id in the annotation kcmdr.io/encryption-key-id),
 * <b>-checksums.json (file names, SHA-256 and sizes, so `kcmdr backup verify` checks a backup
 * without the key), its signature <b>-checksums.json.sig and the claim <b>-claim.json.
 *
 * Keys. The encryption Secret holds key-encryption keys (KEKs), "id=base64(32 bytes)" a line; the
 * first is current. Each backup gets a fresh random 32-byte data key (RAND_bytes), wrapped with
 * the current KEK by AES-256-GCM (random 12-byte nonce, AAD "kcmdr-wrap-v1" || id). Rotation: put
 * a new key first and keep the old lines; every file names the id it needs.
 *
 * File format (STREAM, the construction age uses), every encrypted file self-contained:
 *   "KDCRYPT1" | u8 idlen | id | wrap nonce (12) | wrapped data key (32) | wrap tag (16) | salt (16)
 *   then chunks: AES-256-GCM of 64 KiB of plaintext (the last one shorter, empty only for an
 *   empty file) + 16-byte tag each.
 * The file key is HKDF-SHA256(data key, salt, "kcmdr-stream-v1\0" || the file's key relative to
 * the location, "backups/b/b.tar.gz"): a file moved to another name, or to another backup
 * (another data key), does not decrypt. The chunk nonce is an 11-byte big-endian chunk counter
 * || one byte 1 for the last chunk, 0 otherwise: reordered chunks fail their tag (wrong counter),
 * a file cut at a chunk boundary fails (its new last chunk was sealed as not last), appended
 * chunks fail (a chunk after the last). Any changed header byte changes the key or fails the
 * unwrap. The writer holds at most one chunk, the reader one chunk plus its tag: memory is flat.
 *
 * Checksums cover the stored (encrypted) bytes: verification needs no key, and a flipped byte
 * is caught by the checksum before any decryption is attempted.
 *
 * Signatures. Ed25519 (EVP_DigestSign, no pre-hash) over the exact bytes of <b>-checksums.json,
 * which names every data file of the backup by its key (so the backup's name) with its SHA-256
 * and size; stored as <b>-checksums.json.sig:
 *   {"algorithm":"ed25519","keyId":"<first 16 hex of SHA-256 of the raw public key>","signature":"<base64>"}
 * A restoring cluster needs only the public keys (kcmdr.io/verify-secret). velero-backup.json is
 * not signed: it is written after the signature and holds no object data; restore reads objects
 * only from the signed files. */
#include "crypt.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char MAGIC[8] = {'K', 'D', 'C', 'R', 'Y', 'P', 'T', '1'};
#define WRAP_NONCE 12
#define TAG 16
#define SALT 16
#define HDR_FIXED (8 + 1 + WRAP_NONCE + CRYPT_KEY_LEN + TAG + SALT)
#define HDR_MAX (HDR_FIXED + CRYPT_ID_MAX)
#define MAX_CHUNKS (1ull << 40) /* 64 PiB: far beyond any backup; the counter never wraps */

/* ---- keyring ---- */

struct kek {
  char id[CRYPT_ID_MAX + 1];
  unsigned char key[CRYPT_KEY_LEN];
};

struct crypt_keyring {
  size_t n;
  struct kek k[CRYPT_MAX_KEYS];
};

static bool id_ok(const char *s, size_t n) {
  if (n == 0 || n > CRYPT_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

kd_rc crypt_keyring_parse(const char *text, size_t len, crypt_keyring **out) {
  kd_rc rc = KD_OK;
  crypt_keyring *kr = calloc(1, sizeof *kr);
  *out = NULL;
  if (!kr) return kd_fail(KD_ERR_NOMEM, "out of memory");
  const char *p = text, *end = text + len;
  int line = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    line++;
    size_t ll = (size_t)(le - p);
    if (ll && p[ll - 1] == '\r') ll--;
    const char *l = p;
    p = nl ? nl + 1 : end;
    if (ll == 0 || l[0] == '#') continue;
    const char *eq = memchr(l, '=', ll);
    if (!eq) {
      rc = kd_fail(KD_ERR_PARSE, "line %d is not \"id=base64key\"", line);
      goto fail;
    }
    size_t il = (size_t)(eq - l);
    if (!id_ok(l, il)) {
      rc = kd_fail(KD_ERR_PARSE, "line %d: the key id must be 1 to %d of A-Z a-z 0-9 . _ -", line, CRYPT_ID_MAX);
      goto fail;
    }
    if (kr->n == CRYPT_MAX_KEYS) {
      rc = kd_fail(KD_ERR_PARSE, "more than %d keys", CRYPT_MAX_KEYS);
      goto fail;
    }
    struct kek *k = &kr->k[kr->n];
    memcpy(k->id, l, il);
    k->id[il] = '\0';
    for (size_t i = 0; i < kr->n; i++)
      if (strcmp(kr->k[i].id, k->id) == 0) {
        rc = kd_fail(KD_ERR_PARSE, "line %d: key id \"%s\" appears twice", line, k->id);
        goto fail;
      }
    unsigned char *raw = NULL;
    size_t rl = 0;
    const char *v = eq + 1;
    size_t vl = ll - il - 1;
    bool bad = vl == 0 || memchr(v, ' ', vl) || memchr(v, '\t', vl) || kd_base64_decode(v, vl, &raw, &rl) != KD_OK;
    if (!bad && rl != CRYPT_KEY_LEN) bad = true;
    if (!bad) memcpy(k->key, raw, CRYPT_KEY_LEN);
    if (raw) OPENSSL_cleanse(raw, rl);
    free(raw);
    if (bad) {
      rc = kd_fail(KD_ERR_PARSE, "line %d: key \"%s\" is not the base64 of exactly %d bytes (try: openssl rand -base64 32)",
                   line, k->id, CRYPT_KEY_LEN);
      goto fail;
    }
    kr->n++;
  }
  if (kr->n == 0) {
    rc = kd_fail(KD_ERR_PARSE, "no key (expected lines \"id=base64key\", the first is current)");
    goto fail;
  }
  kd_clear_error();
  *out = kr;
  return KD_OK;
fail:
  crypt_keyring_free(kr);
  return rc;
}

const char *crypt_keyring_current(const crypt_keyring *kr) { return kr && kr->n ? kr->k[0].id : ""; }

static const struct kek *kr_find(const crypt_keyring *kr, const char *id) {
  for (size_t i = 0; kr && i < kr->n; i++)
    if (strcmp(kr->k[i].id, id) == 0) return &kr->k[i];
  return NULL;
}

bool crypt_keyring_has(const crypt_keyring *kr, const char *id) { return kr_find(kr, id) != NULL; }

void crypt_keyring_free(crypt_keyring *kr) {
  if (!kr) return;
  OPENSSL_cleanse(kr, sizeof *kr);
  free(kr);
}

/* ---- AES-256-GCM of one buffer (wrap, chunks) ---- */

static kd_rc gcm(EVP_CIPHER_CTX *ctx, bool enc, const unsigned char *key, const unsigned char *nonce, const unsigned char *aad,
                 size_t aad_len, const unsigned char *in, size_t n, unsigned char *out, unsigned char *tag) {
  int l = 0;
  bool ok = enc ? EVP_EncryptInit_ex(ctx, key ? EVP_aes_256_gcm() : NULL, NULL, key, nonce) == 1
                : EVP_DecryptInit_ex(ctx, key ? EVP_aes_256_gcm() : NULL, NULL, key, nonce) == 1;
  if (!ok) return kd_fail(KD_ERR_NOMEM, "AES-256-GCM setup failed");
  if (aad_len && (enc ? EVP_EncryptUpdate(ctx, NULL, &l, aad, (int)aad_len) : EVP_DecryptUpdate(ctx, NULL, &l, aad, (int)aad_len)) != 1)
    return kd_fail(KD_ERR_NOMEM, "AES-256-GCM failed");
  if (n && (enc ? EVP_EncryptUpdate(ctx, out, &l, in, (int)n) : EVP_DecryptUpdate(ctx, out, &l, in, (int)n)) != 1)
    return kd_fail(KD_ERR_NOMEM, "AES-256-GCM failed");
  if (enc) {
    if (EVP_EncryptFinal_ex(ctx, out + n, &l) != 1 || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, tag) != 1)
      return kd_fail(KD_ERR_NOMEM, "AES-256-GCM failed");
    return KD_OK;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, tag) != 1) return kd_fail(KD_ERR_NOMEM, "AES-256-GCM failed");
  if (EVP_DecryptFinal_ex(ctx, out + n, &l) != 1) return KD_ERR_INTEGRITY; /* the caller words it */
  return KD_OK;
}

static void wrap_aad(const char *id, unsigned char *aad, size_t *n) {
  size_t il = strlen(id);
  memcpy(aad, "kcmdr-wrap-v1", 13);
  aad[13] = (unsigned char)il;
  memcpy(aad + 14, id, il);
  *n = 14 + il;
}

/* ---- data key ---- */

struct crypt_dek {
  unsigned char key[CRYPT_KEY_LEN];
  char id[CRYPT_ID_MAX + 1];
  unsigned char wrap[WRAP_NONCE + CRYPT_KEY_LEN + TAG]; /* nonce | wrapped | tag */
};

kd_rc crypt_dek_new(const crypt_keyring *kr, crypt_dek **out) {
  *out = NULL;
  if (!kr || !kr->n) return kd_fail(KD_ERR_CONFIG, "no encryption key");
  crypt_dek *d = calloc(1, sizeof *d);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  kd_rc rc = KD_OK;
  if (!d || !ctx) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  if (RAND_bytes(d->key, CRYPT_KEY_LEN) != 1 || RAND_bytes(d->wrap, WRAP_NONCE) != 1) {
    rc = kd_fail(KD_ERR_IO, "the random generator failed");
    goto fail;
  }
  snprintf(d->id, sizeof d->id, "%s", kr->k[0].id);
  unsigned char aad[14 + CRYPT_ID_MAX];
  size_t al;
  wrap_aad(d->id, aad, &al);
  if ((rc = gcm(ctx, true, kr->k[0].key, d->wrap, aad, al, d->key, CRYPT_KEY_LEN, d->wrap + WRAP_NONCE,
                d->wrap + WRAP_NONCE + CRYPT_KEY_LEN)))
    goto fail;
  EVP_CIPHER_CTX_free(ctx);
  *out = d;
  return KD_OK;
fail:
  EVP_CIPHER_CTX_free(ctx);
  crypt_dek_free(d);
  return rc;
}

const char *crypt_dek_key_id(const crypt_dek *d) { return d->id; }

void crypt_dek_free(crypt_dek *d) {
  if (!d) return;
  OPENSSL_cleanse(d, sizeof *d);
  free(d);
}

/* HKDF-SHA256(data key, salt, "kcmdr-stream-v1\0" || name) */
static kd_rc file_key(const unsigned char *dek, const unsigned char *salt, const char *name, unsigned char *out) {
  EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
  unsigned char info[16 + 1100];
  size_t nl = strlen(name), ol = CRYPT_KEY_LEN;
  if (nl > 1024) {
    EVP_PKEY_CTX_free(pc);
    return kd_fail(KD_ERR_INVALID, "file name too long to encrypt");
  }
  memcpy(info, "kcmdr-stream-v1", 16); /* the NUL included */
  memcpy(info + 16, name, nl);
  bool ok = pc && EVP_PKEY_derive_init(pc) == 1 && EVP_PKEY_CTX_set_hkdf_md(pc, EVP_sha256()) == 1 &&
            EVP_PKEY_CTX_set1_hkdf_salt(pc, salt, SALT) == 1 && EVP_PKEY_CTX_set1_hkdf_key(pc, dek, CRYPT_KEY_LEN) == 1 &&
            EVP_PKEY_CTX_add1_hkdf_info(pc, info, (int)(16 + nl)) == 1 && EVP_PKEY_derive(pc, out, &ol) == 1 &&
            ol == CRYPT_KEY_LEN;
  EVP_PKEY_CTX_free(pc);
  return ok ? KD_OK : kd_fail(KD_ERR_NOMEM, "HKDF failed");
}

static void chunk_nonce(uint64_t counter, bool last, unsigned char nonce[12]) {
  memset(nonce, 0, 12);
  for (int i = 0; i < 8; i++) nonce[10 - i] = (unsigned char)(counter >> (8 * i));
  nonce[11] = last ? 1 : 0;
}

/* ---- writer ---- */

struct crypt_writer {
  EVP_CIPHER_CTX *ctx;
  crypt_out_fn out;
  void *ud;
  uint64_t counter;
  size_t held;
  unsigned char buf[CRYPT_CHUNK];
  unsigned char ct[CRYPT_CHUNK + TAG];
};

uint64_t crypt_sealed_size(uint64_t n, size_t idlen) {
  uint64_t chunks = n == 0 ? 1 : (n + CRYPT_CHUNK - 1) / CRYPT_CHUNK;
  return HDR_FIXED + idlen + n + chunks * TAG;
}

kd_rc crypt_writer_open(const crypt_dek *d, const char *name, crypt_out_fn out, void *ud, crypt_writer **wp) {
  *wp = NULL;
  crypt_writer *w = calloc(1, sizeof *w);
  unsigned char hdr[HDR_MAX], fk[CRYPT_KEY_LEN];
  kd_rc rc = KD_OK;
  if (!w || !(w->ctx = EVP_CIPHER_CTX_new())) {
    rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail;
  }
  w->out = out, w->ud = ud;
  size_t il = strlen(d->id), h = 0;
  memcpy(hdr, MAGIC, 8), h = 8;
  hdr[h++] = (unsigned char)il;
  memcpy(hdr + h, d->id, il), h += il;
  memcpy(hdr + h, d->wrap, sizeof d->wrap), h += sizeof d->wrap;
  if (RAND_bytes(hdr + h, SALT) != 1) {
    rc = kd_fail(KD_ERR_IO, "the random generator failed");
    goto fail;
  }
  if ((rc = file_key(d->key, hdr + h, name, fk))) goto fail;
  h += SALT;
  if (EVP_EncryptInit_ex(w->ctx, EVP_aes_256_gcm(), NULL, fk, NULL) != 1) {
    rc = kd_fail(KD_ERR_NOMEM, "AES-256-GCM setup failed");
    goto fail;
  }
  if ((rc = out(hdr, h, ud))) goto fail;
  OPENSSL_cleanse(fk, sizeof fk);
  *wp = w;
  return KD_OK;
fail:
  OPENSSL_cleanse(fk, sizeof fk);
  crypt_writer_abort(w);
  return rc;
}

static kd_rc w_seal(crypt_writer *w, bool last) {
  unsigned char nonce[12];
  if (w->counter >= MAX_CHUNKS) return kd_fail(KD_ERR_TOOBIG, "file too large to encrypt");
  chunk_nonce(w->counter, last, nonce);
  kd_rc rc = gcm(w->ctx, true, NULL, nonce, NULL, 0, w->buf, w->held, w->ct, w->ct + w->held);
  if (rc) return rc;
  w->counter++;
  size_t n = w->held + TAG;
  w->held = 0;
  return w->out(w->ct, n, w->ud);
}

kd_rc crypt_writer_write(crypt_writer *w, const void *p, size_t n) {
  const unsigned char *s = p;
  while (n > 0) {
    if (w->held == CRYPT_CHUNK) { /* more follows: this one is not the last */
      kd_rc rc = w_seal(w, false);
      if (rc) return rc;
    }
    size_t take = CRYPT_CHUNK - w->held < n ? CRYPT_CHUNK - w->held : n;
    memcpy(w->buf + w->held, s, take);
    w->held += take, s += take, n -= take;
  }
  return KD_OK;
}

kd_rc crypt_writer_close(crypt_writer *w) {
  kd_rc rc = w_seal(w, true);
  crypt_writer_abort(w);
  return rc;
}

void crypt_writer_abort(crypt_writer *w) {
  if (!w) return;
  EVP_CIPHER_CTX_free(w->ctx);
  OPENSSL_cleanse(w->buf, sizeof w->buf);
  free(w);
}

static kd_rc buf_out(const void *p, size_t n, void *ud) { return kd_buf_add(ud, p, n); }

kd_rc crypt_seal(const crypt_dek *d, const char *name, const void *p, size_t n, kd_buf *out) {
  crypt_writer *w = NULL;
  kd_rc rc = crypt_writer_open(d, name, buf_out, out, &w);
  if (rc == KD_OK && (rc = crypt_writer_write(w, p, n))) crypt_writer_abort(w);
  else if (rc == KD_OK) rc = crypt_writer_close(w);
  return rc;
}

/* ---- reader ---- */

enum rd_state { RD_MAGIC, RD_HDR, RD_CHUNKS, RD_PASS };

struct crypt_reader {
  const crypt_keyring *kr;
  char name[1100];
  objstore_sink_fn out;
  void *ud;
  enum rd_state st;
  EVP_CIPHER_CTX *ctx;
  char id[CRYPT_ID_MAX + 1];
  unsigned char hdr[HDR_MAX];
  size_t hl;
  uint64_t counter;
  size_t cl;
  unsigned char ct[CRYPT_CHUNK + TAG];
  unsigned char pt[CRYPT_CHUNK + 16];
};

bool crypt_is_encrypted(const void *buf, size_t n, char *id) {
  const unsigned char *b = buf;
  if (id) id[0] = '\0';
  if (n < 8 || memcmp(b, MAGIC, 8) != 0) return false;
  if (id && n >= 9 && b[8] <= CRYPT_ID_MAX && n >= (size_t)9 + b[8] && id_ok((const char *)b + 9, b[8])) {
    memcpy(id, b + 9, b[8]);
    id[b[8]] = '\0';
  }
  return true;
}

kd_rc crypt_reader_new(const crypt_keyring *kr, const char *name, objstore_sink_fn out, void *ud, crypt_reader **rp) {
  crypt_reader *r = calloc(1, sizeof *r);
  *rp = NULL;
  if (!r || !(r->ctx = EVP_CIPHER_CTX_new())) {
    crypt_reader_free(r);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  r->kr = kr, r->out = out, r->ud = ud;
  snprintf(r->name, sizeof r->name, "%s", name);
  *rp = r;
  return KD_OK;
}

/* the whole header is in r->hdr: find the key, unwrap the data key, derive the file key */
static kd_rc rd_header(crypt_reader *r) {
  size_t il = r->hdr[8];
  const unsigned char *w = r->hdr + 9 + il;
  unsigned char dek[CRYPT_KEY_LEN], fk[CRYPT_KEY_LEN], aad[14 + CRYPT_ID_MAX];
  size_t al;
  memcpy(r->id, r->hdr + 9, il);
  r->id[il] = '\0';
  if (!r->kr)
    return kd_fail(KD_ERR_CONFIG, "%s is encrypted (key id %s) but the storage location names no encryption Secret (annotation %s)",
                   r->name, r->id, CRYPT_ANN_ENCRYPTION);
  const struct kek *k = kr_find(r->kr, r->id);
  if (!k)
    return kd_fail(KD_ERR_CONFIG, "%s is encrypted with key id %s, which the location's encryption Secret does not hold "
                   "(it holds %s%s)", r->name, r->id, r->kr->k[0].id, r->kr->n > 1 ? " and others" : "");
  wrap_aad(r->id, aad, &al);
  kd_rc rc = gcm(r->ctx, false, k->key, w, aad, al, w + WRAP_NONCE, CRYPT_KEY_LEN, dek, (unsigned char *)w + WRAP_NONCE + CRYPT_KEY_LEN);
  if (rc == KD_ERR_INTEGRITY)
    rc = kd_fail(KD_ERR_INTEGRITY, "%s: the key with id %s does not unwrap its data key: a wrong key under that id, or a damaged "
                 "header", r->name, r->id);
  if (rc == KD_OK) rc = file_key(dek, w + WRAP_NONCE + CRYPT_KEY_LEN + TAG, r->name, fk);
  if (rc == KD_OK && EVP_DecryptInit_ex(r->ctx, EVP_aes_256_gcm(), NULL, fk, NULL) != 1)
    rc = kd_fail(KD_ERR_NOMEM, "AES-256-GCM setup failed");
  OPENSSL_cleanse(dek, sizeof dek);
  OPENSSL_cleanse(fk, sizeof fk);
  return rc;
}

static kd_rc rd_open(crypt_reader *r, bool last) {
  unsigned char nonce[12];
  if (r->cl < TAG) return kd_fail(KD_ERR_INTEGRITY, "%s is cut short (a chunk without its tag)", r->name);
  size_t n = r->cl - TAG;
  if (last && n == 0 && r->counter > 0)
    return kd_fail(KD_ERR_INTEGRITY, "%s ends with an empty chunk after others: damaged", r->name);
  if (r->counter >= MAX_CHUNKS) return kd_fail(KD_ERR_TOOBIG, "%s has too many chunks", r->name);
  chunk_nonce(r->counter, last, nonce);
  kd_rc rc = gcm(r->ctx, false, NULL, nonce, NULL, 0, r->ct, n, r->pt, r->ct + n);
  if (rc == KD_ERR_INTEGRITY)
    return kd_fail(KD_ERR_INTEGRITY, "%s: chunk %llu fails authentication: the file was changed, cut, reordered or taken "
                   "from another file", r->name, (unsigned long long)r->counter);
  if (rc) return rc;
  r->counter++;
  r->cl = 0;
  return n ? r->out((const char *)r->pt, n, r->ud) : KD_OK;
}

kd_rc crypt_reader_feed(const char *p, size_t n, void *ud) {
  crypt_reader *r = ud;
  kd_rc rc;
  while (n > 0) {
    switch (r->st) {
    case RD_MAGIC: {
      size_t take = 8 - r->hl < n ? 8 - r->hl : n;
      memcpy(r->hdr + r->hl, p, take);
      r->hl += take, p += take, n -= take;
      if (memcmp(r->hdr, MAGIC, r->hl) != 0) { /* not ours: pass the bytes seen through */
        r->st = RD_PASS;
        if ((rc = r->out((const char *)r->hdr, r->hl, r->ud))) return rc;
      } else if (r->hl == 8) {
        r->st = RD_HDR;
      }
      break;
    }
    case RD_HDR: {
      size_t want = r->hl < 9 ? 9 : HDR_FIXED + r->hdr[8];
      if (r->hl >= 9 && (r->hdr[8] == 0 || r->hdr[8] > CRYPT_ID_MAX))
        return kd_fail(KD_ERR_PARSE, "%s: damaged encryption header (key id length %u)", r->name, r->hdr[8]);
      size_t take = want - r->hl < n ? want - r->hl : n;
      memcpy(r->hdr + r->hl, p, take);
      r->hl += take, p += take, n -= take;
      if (r->hl == want && want > 9) {
        if (!id_ok((const char *)r->hdr + 9, r->hdr[8])) return kd_fail(KD_ERR_PARSE, "%s: damaged encryption header (key id)", r->name);
        if ((rc = rd_header(r))) return rc;
        r->st = RD_CHUNKS;
      }
      break;
    }
    case RD_CHUNKS: {
      if (r->cl == sizeof r->ct && (rc = rd_open(r, false))) return rc; /* more follows: not the last */
      size_t take = sizeof r->ct - r->cl < n ? sizeof r->ct - r->cl : n;
      memcpy(r->ct + r->cl, p, take);
      r->cl += take, p += take, n -= take;
      break;
    }
    case RD_PASS:
      return r->out(p, n, r->ud);
    }
  }
  return KD_OK;
}

kd_rc crypt_reader_finish(crypt_reader *r) {
  switch (r->st) {
  case RD_MAGIC: /* a file shorter than the magic: plain */
    r->st = RD_PASS;
    return r->hl ? r->out((const char *)r->hdr, r->hl, r->ud) : KD_OK;
  case RD_HDR:
    return kd_fail(KD_ERR_INTEGRITY, "%s is cut short inside its encryption header", r->name);
  case RD_CHUNKS:
    return rd_open(r, true);
  case RD_PASS:
    break;
  }
  return KD_OK;
}

bool crypt_reader_encrypted(const crypt_reader *r) { return r->st == RD_CHUNKS; }
const char *crypt_reader_key_id(const crypt_reader *r) { return r->id; }

void crypt_reader_free(crypt_reader *r) {
  if (!r) return;
  EVP_CIPHER_CTX_free(r->ctx);
  OPENSSL_cleanse(r->pt, sizeof r->pt);
  free(r);
}

/* ---- Ed25519 ---- */

struct crypt_signer {
  EVP_PKEY *pk;
  char id[17];
};

static kd_rc key_id(EVP_PKEY *pk, char id[17]) {
  unsigned char raw[64], d[32];
  size_t rl = sizeof raw;
  unsigned dl = 0;
  if (EVP_PKEY_get_raw_public_key(pk, raw, &rl) != 1 || EVP_Digest(raw, rl, d, &dl, EVP_sha256(), NULL) != 1)
    return kd_fail(KD_ERR_NOMEM, "Ed25519 key id failed");
  for (int i = 0; i < 8; i++) snprintf(id + 2 * i, 3, "%02x", d[i]);
  return KD_OK;
}

/* OpenSSL's PEM readers ask the terminal for a passphrase when a block is encrypted and no
 * callback is given (a CLI run on a tty would hang at "Enter PEM pass phrase:"): this one
 * refuses, and records that it was asked (found by test/fuzz/fuzz_cryptkeys.c) */
static int no_passphrase(char *buf, int size, int rwflag, void *asked) {
  (void)buf, (void)size, (void)rwflag;
  *(bool *)asked = true;
  return -1;
}

kd_rc crypt_signer_parse(const char *pem, size_t len, crypt_signer **out) {
  bool asked = false;
  *out = NULL;
  if (len > CRYPT_SECRET_MAX) return kd_fail(KD_ERR_PARSE, "the private key is larger than %u bytes", CRYPT_SECRET_MAX);
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked) : NULL;
  BIO_free(bio);
  if (!pk && asked)
    return kd_fail(KD_ERR_PARSE, "the private key is protected by a passphrase; store it unencrypted (openssl pkey -in key.pem "
                   "-out plain.pem)");
  if (!pk) return kd_fail(KD_ERR_PARSE, "not a PEM private key (expected -----BEGIN PRIVATE KEY-----, e.g. from openssl genpkey -algorithm ed25519)");
  if (EVP_PKEY_id(pk) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pk);
    return kd_fail(KD_ERR_PARSE, "the private key is not an Ed25519 key");
  }
  crypt_signer *s = calloc(1, sizeof *s);
  if (!s) {
    EVP_PKEY_free(pk);
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  s->pk = pk;
  kd_rc rc = key_id(pk, s->id);
  if (rc) {
    crypt_signer_free(s);
    return rc;
  }
  *out = s;
  return KD_OK;
}

const char *crypt_signer_id(const crypt_signer *s) { return s->id; }

void crypt_signer_free(crypt_signer *s) {
  if (!s) return;
  EVP_PKEY_free(s->pk);
  free(s);
}

kd_rc crypt_sign(const crypt_signer *s, const void *msg, size_t n, kd_buf *out) {
  unsigned char sig[64];
  size_t sl = sizeof sig;
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  bool ok = m && EVP_DigestSignInit(m, NULL, NULL, NULL, s->pk) == 1 && EVP_DigestSign(m, sig, &sl, msg, n) == 1 && sl == 64;
  EVP_MD_CTX_free(m);
  if (!ok) return kd_fail(KD_ERR_NOMEM, "Ed25519 signing failed");
  char *b64 = kd_base64_encode(sig, sl);
  if (!b64) return kd_fail(KD_ERR_NOMEM, "out of memory");
  kd_rc rc = kd_buf_addf(out, "{\"algorithm\":\"ed25519\",\"keyId\":\"%s\",\"signature\":\"%s\"}\n", s->id, b64);
  free(b64);
  return rc;
}

struct crypt_verifier {
  size_t n;
  EVP_PKEY *pk[CRYPT_MAX_KEYS];
  char id[CRYPT_MAX_KEYS][17];
};

static kd_rc ver_add(crypt_verifier *v, EVP_PKEY *pk) {
  if (v->n == CRYPT_MAX_KEYS) {
    EVP_PKEY_free(pk);
    return kd_fail(KD_ERR_PARSE, "more than %d public keys", CRYPT_MAX_KEYS);
  }
  v->pk[v->n] = pk;
  kd_rc rc = key_id(pk, v->id[v->n]);
  v->n++;
  return rc;
}

static bool only_space(const char *p, const char *e) {
  for (; p < e; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') return false;
  return true;
}

kd_rc crypt_verifier_parse(const char *pem, size_t len, crypt_verifier **out) {
  static const char begin[] = "-----BEGIN PUBLIC KEY-----", end[] = "-----END PUBLIC KEY-----";
  *out = NULL;
  if (len > CRYPT_SECRET_MAX) return kd_fail(KD_ERR_PARSE, "the public keys are larger than %u bytes", CRYPT_SECRET_MAX);
  crypt_verifier *v = calloc(1, sizeof *v);
  kd_rc rc = KD_OK;
  if (!v) return kd_fail(KD_ERR_NOMEM, "out of memory");
  const char *p = pem, *e = pem + len;
  for (int block = 1;; block++) {
    const char *b = memmem(p, (size_t)(e - p), begin, sizeof begin - 1);
    if (!b) {
      if (!only_space(p, e)) rc = kd_fail(KD_ERR_PARSE, "text after public key %d is not a \"%s\" block", block - 1, begin);
      break;
    }
    if (!only_space(p, b)) {
      rc = kd_fail(KD_ERR_PARSE, "text before public key %d is not a \"%s\" block", block, begin);
      break;
    }
    const char *f = memmem(b, (size_t)(e - b), end, sizeof end - 1);
    if (!f) {
      rc = kd_fail(KD_ERR_PARSE, "public key %d has no \"%s\" line", block, end);
      break;
    }
    f += sizeof end - 1;
    bool asked = false;
    BIO *bio = BIO_new_mem_buf(b, (int)(f - b));
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, &asked) : NULL;
    BIO_free(bio);
    if (!pk && asked) {
      rc = kd_fail(KD_ERR_PARSE, "public key %d has PEM encryption headers (Proc-Type: 4,ENCRYPTED): not a public key", block);
      break;
    }
    if (!pk || EVP_PKEY_id(pk) != EVP_PKEY_ED25519) {
      EVP_PKEY_free(pk);
      rc = kd_fail(KD_ERR_PARSE, "public key %d is not an Ed25519 public key", block);
      break;
    }
    if ((rc = ver_add(v, pk))) break;
    p = f;
  }
  if (rc == KD_OK && v->n == 0) rc = kd_fail(KD_ERR_PARSE, "no \"%s\" block", begin);
  if (rc) {
    crypt_verifier_free(v);
    return rc;
  }
  *out = v;
  return KD_OK;
}

kd_rc crypt_verifier_add_signer(crypt_verifier **v, const crypt_signer *s) {
  unsigned char raw[64];
  size_t rl = sizeof raw;
  if (!*v && !(*v = calloc(1, sizeof **v))) return kd_fail(KD_ERR_NOMEM, "out of memory");
  if (EVP_PKEY_get_raw_public_key(s->pk, raw, &rl) != 1) return kd_fail(KD_ERR_NOMEM, "Ed25519 failed");
  EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, rl);
  if (!pub) return kd_fail(KD_ERR_NOMEM, "Ed25519 failed");
  return ver_add(*v, pub);
}

void crypt_verifier_free(crypt_verifier *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) EVP_PKEY_free(v->pk[i]);
  free(v);
}

kd_rc crypt_sigfile_parse(const char *text, size_t len, char id[17], unsigned char sig[64]) {
  kd_rc rc = KD_OK;
  id[0] = '\0';
  if (len > CRYPT_SIGFILE_MAX) return kd_fail(KD_ERR_PARSE, "signature file is larger than %d bytes", CRYPT_SIGFILE_MAX);
  json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
  const char *alg = json_string_value(json_object_get(doc, "algorithm"));
  const char *kid = json_string_value(json_object_get(doc, "keyId"));
  const char *s = json_string_value(json_object_get(doc, "signature"));
  unsigned char *raw = NULL;
  size_t rl = 0;
  if (!json_is_object(doc) || json_object_size(doc) != 3 || !alg || !kid || !s) {
    rc = kd_fail(KD_ERR_PARSE, "signature file is not {\"algorithm\",\"keyId\",\"signature\"}");
    goto fail;
  }
  if (strcmp(alg, "ed25519") != 0) { /* shown as printable ASCII: the file is the bucket's, the message goes to statuses and logs */
    char shown[41];
    size_t i = 0;
    for (; alg[i] && i < sizeof shown - 1; i++) shown[i] = alg[i] >= 0x20 && alg[i] < 0x7f && alg[i] != '"' ? alg[i] : '?';
    shown[i] = '\0';
    rc = kd_fail(KD_ERR_PARSE, "signature file: algorithm \"%s\" is not ed25519", shown);
    goto fail;
  }
  bool hex = strlen(kid) == 16;
  for (size_t i = 0; hex && i < 16; i++) hex = (kid[i] >= '0' && kid[i] <= '9') || (kid[i] >= 'a' && kid[i] <= 'f');
  if (!hex) {
    rc = kd_fail(KD_ERR_PARSE, "signature file: keyId is not 16 lower-case hex digits");
    goto fail;
  }
  if (kd_base64_decode(s, strlen(s), &raw, &rl) != KD_OK || rl != 64) {
    rc = kd_fail(KD_ERR_PARSE, "signature file: signature is not 64 bytes of base64");
    goto fail;
  }
  memcpy(id, kid, 17);
  memcpy(sig, raw, 64);
fail:
  free(raw);
  json_decref(doc);
  return rc;
}

kd_rc crypt_verify(const crypt_verifier *v, const void *msg, size_t n, const char *sigfile, size_t sig_len, char id[17]) {
  unsigned char sig[64];
  kd_rc rc = crypt_sigfile_parse(sigfile, sig_len, id, sig);
  if (rc) return rc;
  for (size_t i = 0; v && i < v->n; i++) {
    if (strcmp(v->id[i], id) != 0) continue;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int r = m && EVP_DigestVerifyInit(m, NULL, NULL, NULL, v->pk[i]) == 1 ? EVP_DigestVerify(m, sig, 64, msg, n) : -1;
    EVP_MD_CTX_free(m);
    if (r == 1) return KD_OK;
    return kd_fail(KD_ERR_INTEGRITY, "the signature by key %s does not match the checksums file: it was changed after signing", id);
  }
  return kd_fail(KD_ERR_CONFIG, "signed by key %s, which is not among the location's verification keys", id);
}

/* ---- a location's settings ---- */

static const struct kube_res res_secret = {"", "v1", "secrets", "Secret", true};

/* the bytes of Secret NAME key KEY that annotation ann names (value "NAME/KEY") */
static kd_rc secret_value(kube_client *c, const char *ns, const char *ann, const char *val, char *ref, size_t refn,
                          unsigned char **bytes, size_t *len) {
  char name[254], key[254];
  json_t *secret = NULL;
  const char *slash = strchr(val, '/');
  *bytes = NULL;
  snprintf(ref, refn, "%s", val);
  if (!slash || slash == val || !slash[1] || strchr(slash + 1, '/') || (size_t)(slash - val) >= sizeof name || strlen(slash + 1) >= sizeof key)
    return kd_fail(KD_ERR_CONFIG, "annotation %s: \"%.100s\" is not NAME/KEY (a Secret in namespace %s and its key)", ann, val, ns);
  memcpy(name, val, (size_t)(slash - val));
  name[slash - val] = '\0';
  snprintf(key, sizeof key, "%s", slash + 1);
  if ((size_t)snprintf(ref, refn, "Secret %s/%s key %.100s", ns, name, key) >= refn) ref[refn - 1] = '\0';
  kd_rc rc = kube_get(c, &res_secret, ns, name, &secret);
  if (rc == KD_ERR_NOTFOUND) return kd_fail(KD_ERR_CONFIG, "annotation %s: Secret %s/%s not found", ann, ns, name);
  if (rc) return kd_fail_wrap(rc, "annotation %s: reading Secret %s/%s", ann, ns, name);
  json_t *v = json_object_get(json_object_get(secret, "data"), key);
  if (!json_is_string(v)) rc = kd_fail(KD_ERR_CONFIG, "annotation %s: Secret %s/%s has no key \"%s\"", ann, ns, name, key);
  else if (json_string_length(v) > CRYPT_SECRET_MAX * 2)
    rc = kd_fail(KD_ERR_CONFIG, "annotation %s: Secret %s/%s key %s is larger than %u bytes", ann, ns, name, key, CRYPT_SECRET_MAX);
  else if (kd_base64_decode(json_string_value(v), json_string_length(v), bytes, len) != KD_OK)
    rc = kd_fail(KD_ERR_CONFIG, "annotation %s: Secret %s/%s key %s is not base64", ann, ns, name, key);
  json_decref(secret);
  return rc;
}

kd_rc crypt_location_load(kube_client *c, const char *ns, json_t *bsl, struct crypt_location *out) {
  json_t *ann = json_object_get(json_object_get(bsl, "metadata"), "annotations");
  const char *enc = json_string_value(json_object_get(ann, CRYPT_ANN_ENCRYPTION));
  const char *sign = json_string_value(json_object_get(ann, CRYPT_ANN_SIGNING));
  const char *ver = json_string_value(json_object_get(ann, CRYPT_ANN_VERIFY));
  const char *req = json_string_value(json_object_get(ann, CRYPT_ANN_REQUIRE_SIG));
  unsigned char *bytes = NULL;
  size_t len = 0;
  kd_rc rc = KD_OK;
  memset(out, 0, sizeof *out);
  if (req && strcmp(req, "true") != 0 && strcmp(req, "false") != 0)
    return kd_fail(KD_ERR_CONFIG, "annotation %s: \"%.40s\" is neither \"true\" nor \"false\"", CRYPT_ANN_REQUIRE_SIG, req);
  out->require_signature = req && strcmp(req, "true") == 0;
  if (enc) {
    if ((rc = secret_value(c, ns, CRYPT_ANN_ENCRYPTION, enc, out->enc_ref, sizeof out->enc_ref, &bytes, &len))) goto fail;
    if ((rc = crypt_keyring_parse((const char *)bytes, len, &out->keys))) {
      rc = kd_fail_wrap(KD_ERR_CONFIG, "annotation %s: %s", CRYPT_ANN_ENCRYPTION, out->enc_ref);
      goto fail;
    }
    OPENSSL_cleanse(bytes, len);
    free(bytes), bytes = NULL;
  }
  if (sign) {
    if ((rc = secret_value(c, ns, CRYPT_ANN_SIGNING, sign, out->sign_ref, sizeof out->sign_ref, &bytes, &len))) goto fail;
    if ((rc = crypt_signer_parse((const char *)bytes, len, &out->signer))) {
      rc = kd_fail_wrap(KD_ERR_CONFIG, "annotation %s: %s", CRYPT_ANN_SIGNING, out->sign_ref);
      goto fail;
    }
    OPENSSL_cleanse(bytes, len);
    free(bytes), bytes = NULL;
  }
  if (ver) {
    if ((rc = secret_value(c, ns, CRYPT_ANN_VERIFY, ver, out->verify_ref, sizeof out->verify_ref, &bytes, &len))) goto fail;
    if ((rc = crypt_verifier_parse((const char *)bytes, len, &out->verify))) {
      rc = kd_fail_wrap(KD_ERR_CONFIG, "annotation %s: %s", CRYPT_ANN_VERIFY, out->verify_ref);
      goto fail;
    }
    free(bytes), bytes = NULL;
  }
  if (out->signer && (rc = crypt_verifier_add_signer(&out->verify, out->signer))) goto fail;
  if (out->require_signature && !out->verify) {
    rc = kd_fail(KD_ERR_CONFIG, "annotation %s is \"true\" but the location names no key to verify with (%s or %s)",
                 CRYPT_ANN_REQUIRE_SIG, CRYPT_ANN_VERIFY, CRYPT_ANN_SIGNING);
    goto fail;
  }
  return KD_OK;
fail:
  if (bytes) OPENSSL_cleanse(bytes, len);
  free(bytes);
  crypt_location_free(out);
  return rc;
}

void crypt_location_free(struct crypt_location *l) {
  crypt_keyring_free(l->keys);
  crypt_signer_free(l->signer);
  crypt_verifier_free(l->verify);
  l->keys = NULL, l->signer = NULL, l->verify = NULL;
}

/* ---- stores and their keys ---- */

#define ATTACH_MAX 256
static pthread_mutex_t att_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  objstore *st;
  const crypt_keyring *kr;
} att[ATTACH_MAX];

kd_rc crypt_attach(objstore *st, const crypt_keyring *kr) {
  kd_rc rc = KD_OK;
  if (!kr) {
    crypt_detach(st);
    return KD_OK;
  }
  pthread_mutex_lock(&att_mu);
  int free_i = -1, i;
  for (i = 0; i < ATTACH_MAX; i++) {
    if (att[i].st == st) break;
    if (!att[i].st && free_i < 0) free_i = i;
  }
  if (i == ATTACH_MAX) i = free_i;
  if (i < 0) rc = kd_fail(KD_ERR_TOOBIG, "more than %d storage locations with encryption keys at once", ATTACH_MAX);
  else att[i].st = st, att[i].kr = kr;
  pthread_mutex_unlock(&att_mu);
  return rc;
}

void crypt_detach(objstore *st) {
  pthread_mutex_lock(&att_mu);
  for (int i = 0; i < ATTACH_MAX; i++)
    if (att[i].st == st) att[i].st = NULL, att[i].kr = NULL;
  pthread_mutex_unlock(&att_mu);
}

const crypt_keyring *crypt_attached(objstore *st) {
  const crypt_keyring *kr = NULL;
  pthread_mutex_lock(&att_mu);
  for (int i = 0; i < ATTACH_MAX && !kr; i++)
    if (att[i].st == st) kr = att[i].kr;
  pthread_mutex_unlock(&att_mu);
  return kr;
}

kd_rc crypt_get(objstore *st, const char *key, objstore_sink_fn fn, void *ud) {
  crypt_reader *r = NULL;
  kd_rc rc = crypt_reader_new(crypt_attached(st), key, fn, ud, &r);
  if (rc) return rc;
  rc = objstore_get(st, key, crypt_reader_feed, r);
  if (rc == KD_OK) rc = crypt_reader_finish(r);
  crypt_reader_free(r);
  return rc;
}

struct peek {
  unsigned char b[HDR_MAX];
  size_t n;
  bool full;
};

static kd_rc peek_sink(const char *p, size_t n, void *ud) {
  struct peek *k = ud;
  size_t take = sizeof k->b - k->n < n ? sizeof k->b - k->n : n;
  memcpy(k->b + k->n, p, take);
  k->n += take;
  if (k->n < 9 || (memcmp(k->b, MAGIC, 8) == 0 && k->n < (size_t)HDR_FIXED + k->b[8] && k->n < sizeof k->b) ||
      (memcmp(k->b, MAGIC, 8) != 0 && k->n < 8))
    return KD_OK;
  k->full = true;
  return KD_ERR_CANCELLED; /* enough: stop the transfer */
}

static kd_rc peek_bytes(objstore *st, const char *key, struct peek *k) {
  memset(k, 0, sizeof *k);
  kd_rc rc = objstore_get(st, key, peek_sink, k);
  if (rc == KD_ERR_CANCELLED && k->full) {
    kd_clear_error();
    rc = KD_OK;
  }
  return rc;
}

kd_rc crypt_peek(objstore *st, const char *key, bool *encrypted, char *id) {
  struct peek k;
  kd_rc rc = peek_bytes(st, key, &k);
  *encrypted = false;
  id[0] = '\0';
  if (rc) return rc;
  *encrypted = crypt_is_encrypted(k.b, k.n, id);
  return KD_OK;
}

static kd_rc discard_sink(const char *p, size_t n, void *ud) {
  (void)p, (void)n, (void)ud;
  return KD_OK;
}

kd_rc crypt_check_key(objstore *st, const crypt_keyring *kr, const char *key) {
  struct peek k;
  crypt_reader *r = NULL;
  kd_rc rc = peek_bytes(st, key, &k);
  if (rc) return rc;
  if (!crypt_is_encrypted(k.b, k.n, NULL)) return KD_OK;
  if ((rc = crypt_reader_new(kr, key, discard_sink, NULL, &r))) return rc;
  rc = crypt_reader_feed((const char *)k.b, k.n, r);
  if (rc == KD_OK && r->st != RD_CHUNKS) rc = kd_fail(KD_ERR_INTEGRITY, "%s is cut short inside its encryption header", key);
  crypt_reader_free(r);
  return rc;
}
