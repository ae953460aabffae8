/* fuzz_cryptstream.c — libFuzzer target for the encrypted-stream reader (crypt_reader: header
 * parse, data-key unwrap, chunk decrypt), fed the stored bytes of a backup file that anyone with
 * write access to the bucket may have changed, under a fixed keyring (ids "k1" and "k2"). The
 * first byte picks a mode, the second how the bytes are sliced (the reader is an objstore sink:
 * any split must give the same answer; each slice is its own exact-size allocation, so a read
 * past it is caught):
 *   even: the rest is the stored file. The reader succeeds or fails with KD_ERR_PARSE, _CONFIG
 *     or _INTEGRITY and a message; a success as plain passes the bytes through unchanged (and
 *     then the file does not start with the magic, or is shorter than it); a success as
 *     encrypted gives exactly as many bytes as the format's size says (crypt_sealed_size), and
 *     crypt_is_encrypted agrees with the reader on the key id;
 *   odd: the rest (repeated up to 1 + byte 4 times, at most PLAIN_MAX bytes, so small inputs make
 *     files of several 64 KiB chunks) is a plaintext,
 *     sealed under key k1 for "backups/b/b.tar.gz", then changed as byte 2 says: nothing,
 *     cut at a position, one byte flipped, bytes appended, chunks 0 and 1 swapped, read under
 *     another name, read with another key under the id k1, or cut at a chunk boundary (whole
 *     chunks left, the last one gone). Unchanged it must decrypt to
 *     exactly the plaintext; changed it must not succeed as encrypted (a change in the first
 *     eight bytes may make it a plain file, passed through as stored).
 * Never a crash, an over-read or a leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

#define NAME "backups/b/b.tar.gz"
#define PLAIN_MAX (4 * CRYPT_CHUNK + 1000)
#define HDR(idlen) (8 + 1 + (idlen) + 12 + 32 + 16 + 16)

static crypt_keyring *ring, *other;

static crypt_keyring *parse_ring(const char *t) {
  crypt_keyring *kr = NULL;
  if (crypt_keyring_parse(t, strlen(t), &kr) != KD_OK) abort();
  return kr;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ring = parse_ring("k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nk2=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n");
  other = parse_ring("k1=HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
  return 0;
}

struct sink {
  unsigned char *p;
  size_t n, cap;
};

static kd_rc sink_fn(const char *p, size_t n, void *ud) {
  struct sink *s = ud;
  if (n > s->cap - s->n) abort(); /* more plaintext than stored bytes */
  memcpy(s->p + s->n, p, n);
  s->n += n;
  return KD_OK;
}

/* read stored[0..n) under kr and name, in slices from `slicing`; the output into out (cap n) */
static kd_rc read_all(const crypt_keyring *kr, const char *name, const unsigned char *stored, size_t n, unsigned slicing,
                      struct sink *out, bool *enc, char *id) {
  crypt_reader *r = NULL;
  out->n = 0;
  kd_rc rc = crypt_reader_new(kr, name, sink_fn, out, &r);
  if (rc) abort();
  size_t slice = slicing == 0 ? n + 1 : slicing < 128 ? slicing : (size_t)(slicing - 127) * 1021;
  for (size_t i = 0; rc == KD_OK && i < n;) {
    size_t take = n - i < slice ? n - i : slice;
    char *piece = malloc(take);
    if (!piece) abort();
    memcpy(piece, stored + i, take);
    rc = crypt_reader_feed(piece, take, r);
    free(piece);
    i += take;
    if (slicing >= 200) slice = slice % 97 + 1; /* uneven slices after the first */
  }
  if (rc == KD_OK) rc = crypt_reader_finish(r);
  *enc = crypt_reader_encrypted(r);
  snprintf(id, CRYPT_ID_MAX + 1, "%s", crypt_reader_key_id(r));
  crypt_reader_free(r);
  if (rc != KD_OK && rc != KD_ERR_PARSE && rc != KD_ERR_CONFIG && rc != KD_ERR_INTEGRITY) abort();
  if (rc != KD_OK && !kd_errmsg()[0]) abort();
  return rc;
}

static void stored_mode(const unsigned char *d, size_t n, unsigned slicing) {
  struct sink out = {malloc(n ? n : 1), 0, n};
  bool enc;
  char id[CRYPT_ID_MAX + 1], id2[CRYPT_ID_MAX + 1];
  if (!out.p) abort();
  if (read_all(ring, NAME, d, n, slicing, &out, &enc, id) == KD_OK) {
    if (!enc) {
      if (out.n != n || (n && memcmp(out.p, d, n) != 0)) abort();
      if (n >= 8 && memcmp(d, "KDCRYPT1", 8) == 0) abort();
    } else {
      if (crypt_sealed_size(out.n, strlen(id)) != n) abort();
      if (!crypt_is_encrypted(d, n, id2) || strcmp(id, id2) != 0) abort();
    }
  }
  free(out.p);
}

static void sealed_mode(const unsigned char *d, size_t n, unsigned slicing, unsigned edit, unsigned arg1, unsigned arg2) {
  size_t plen = n * (1 + arg2);
  if (plen > PLAIN_MAX) plen = PLAIN_MAX;
  unsigned char *plain = malloc(plen ? plen : 1);
  if (!plain) abort();
  for (size_t i = 0; i < plen; i += n) memcpy(plain + i, d, plen - i < n ? plen - i : n);
  crypt_dek *dek = NULL;
  kd_buf s = KD_BUF_INIT(1u << 24);
  if (crypt_dek_new(ring, &dek) != KD_OK || crypt_seal(dek, NAME, plain, plen, &s) != KD_OK) abort();
  crypt_dek_free(dek);
  if (s.len != crypt_sealed_size(plen, 2)) abort();
  unsigned char *st = malloc(s.len + 64);
  if (!st) abort();
  memcpy(st, s.data, s.len);
  size_t sn = s.len, hdr = HDR(2), full = CRYPT_CHUNK + 16;
  size_t pos = ((size_t)arg1 << 10 | arg2) * 131 % sn;
  const crypt_keyring *kr = ring;
  const char *name = NAME;
  bool changed = true;
  switch (edit % 8) {
  case 0: changed = false; break;
  case 1: sn = pos; break;                            /* cut */
  case 2: st[pos] ^= (unsigned char)(arg1 | 1); break; /* one byte flipped */
  case 3: memset(st + sn, (int)arg1, 1 + arg2 % 64), sn += 1 + arg2 % 64; break; /* appended */
  case 4:                                             /* chunks 0 and 1 swapped (when there are two full ones) */
    if (sn < hdr + 2 * full) {
      changed = false;
      break;
    }
    for (size_t i = 0; i < full; i++) {
      unsigned char t = st[hdr + i];
      st[hdr + i] = st[hdr + full + i];
      st[hdr + full + i] = t;
    }
    break;
  case 5: name = "backups/c/c.tar.gz"; break; /* another file's name */
  case 6: kr = other; break;                  /* another key under the same id */
  default:                                    /* cut at a chunk boundary: whole chunks, the last one gone */
    sn = hdr + (sn - hdr) / full * full;
    if (sn == s.len) sn -= full; /* the last chunk was full: drop it */
    sn = hdr + (arg2 % ((sn - hdr) / full + 1)) * full;
    break;
  }
  struct sink out = {malloc(sn ? sn : 1), 0, sn};
  bool enc;
  char id[CRYPT_ID_MAX + 1];
  if (!out.p) abort();
  kd_rc rc = read_all(kr, name, st, sn, slicing, &out, &enc, id);
  if (!changed) {
    if (rc != KD_OK || !enc || strcmp(id, "k1") != 0 || out.n != plen || (plen && memcmp(out.p, plain, plen) != 0)) abort();
  } else if (rc == KD_OK) {
    if (enc) abort(); /* a changed file decrypted */
    if (sn >= 8 && memcmp(st, "KDCRYPT1", 8) == 0) abort();
    if (out.n != sn || (sn && memcmp(out.p, st, sn) != 0)) abort();
  }
  free(out.p);
  free(st);
  free(plain);
  kd_buf_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  unsigned mode = data[0], slicing = data[1];
  if (mode % 2 == 0) {
    stored_mode(data + 2, size - 2, slicing);
  } else if (size >= 5) {
    sealed_mode(data + 5, size - 5, slicing, data[2], data[3], data[4]);
  }
  return 0;
}
