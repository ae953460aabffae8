/* crypt.h — backup encryption and signatures (issue 15, parts 1 and 2): the key Secrets, the
 * STREAM file format (AES-256-GCM in 64 KiB chunks, a wrapped per-backup data key in every
 * file's header), Ed25519 signatures of the checksums file, and the location's settings read
 * from its annotations. OpenSSL EVP does every cryptographic operation. The format and the
 * reasons for it are described at the top of crypt.c.
 *
 * Annotations on a BackupStorageLocation (Secrets in the location's namespace):
 *   kcmdr.io/encryption-secret: NAME/KEY  lines "id=<base64 of 32 bytes>"; the first is current
 *   kcmdr.io/signing-secret:    NAME/KEY  an Ed25519 private key, PEM (PKCS#8)
 *   kcmdr.io/verify-secret:     NAME/KEY  one or more Ed25519 public keys, PEM (SPKI)
 *   kcmdr.io/require-signature: "true"    restore and verify refuse an unsigned or badly signed backup */
#ifndef KCMDR_CRYPT_H
#define KCMDR_CRYPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "kube.h"
#include "objstore.h"
#include "util.h"

#define CRYPT_ANN_ENCRYPTION "kcmdr.io/encryption-secret"
#define CRYPT_ANN_SIGNING "kcmdr.io/signing-secret"
#define CRYPT_ANN_VERIFY "kcmdr.io/verify-secret"
#define CRYPT_ANN_REQUIRE_SIG "kcmdr.io/require-signature"
/* written into velero-backup.json's metadata.annotations of an encrypted / signed backup */
#define CRYPT_ANN_KEY_ID "kcmdr.io/encryption-key-id"
#define CRYPT_ANN_SIGNER_ID "kcmdr.io/signing-key-id"

#define CRYPT_KEY_LEN 32
#define CRYPT_ID_MAX 64       /* longest key id in an encryption Secret */
#define CRYPT_MAX_KEYS 64     /* keys in one Secret */
#define CRYPT_SECRET_MAX (64u << 10)
#define CRYPT_CHUNK (64u << 10) /* plaintext bytes per STREAM chunk */
#define CRYPT_SIGFILE_MAX 4096

/* ---- key-encryption keys ---- */

typedef struct crypt_keyring crypt_keyring;
/* Parse an encryption Secret's value: one key per line "id=base64" (id: 1..64 of [A-Za-z0-9._-],
 * unique; the key exactly 32 bytes), blank lines and lines starting with '#' ignored, CRLF
 * accepted. The first key is the current one. KD_ERR_PARSE naming the line (never a key byte);
 * KD_ERR_NOMEM. */
kd_rc crypt_keyring_parse(const char *text, size_t len, crypt_keyring **out);
/* The current key's id (owned by kr). */
const char *crypt_keyring_current(const crypt_keyring *kr);
/* Does kr hold a key with this id? */
bool crypt_keyring_has(const crypt_keyring *kr, const char *id);
/* Wipe and free. NULL is fine. */
void crypt_keyring_free(crypt_keyring *kr);

/* ---- one backup's data key ---- */

typedef struct crypt_dek crypt_dek;
/* A fresh random data key (RAND_bytes) wrapped with kr's current key. KD_ERR_NOMEM, KD_ERR_IO
 * when the random generator fails. */
kd_rc crypt_dek_new(const crypt_keyring *kr, crypt_dek **out);
/* The id of the key that wrapped it (owned by d). */
const char *crypt_dek_key_id(const crypt_dek *d);
void crypt_dek_free(crypt_dek *d);

/* ---- STREAM: writing ---- */

typedef kd_rc (*crypt_out_fn)(const void *p, size_t n, void *ud);
typedef struct crypt_writer crypt_writer;
/* Start an encrypted file named name (its key relative to the location: it is bound into the
 * file's key, so a file moved to another name does not decrypt). The header goes to out at once.
 * Output goes to out in pieces of at most one chunk. KD_ERR_NOMEM, out's failure. */
kd_rc crypt_writer_open(const crypt_dek *d, const char *name, crypt_out_fn out, void *ud, crypt_writer **w);
/* Encrypt n more bytes (full chunks go out; up to one chunk is held). */
kd_rc crypt_writer_write(crypt_writer *w, const void *p, size_t n);
/* Seal the held bytes as the final chunk and free w (in every case). */
kd_rc crypt_writer_close(crypt_writer *w);
/* Free without sealing. NULL is fine. */
void crypt_writer_abort(crypt_writer *w);
/* Encrypt a whole small buffer into out (header + chunks). */
kd_rc crypt_seal(const crypt_dek *d, const char *name, const void *p, size_t n, kd_buf *out);
/* Bytes the encrypted form of an n-byte plaintext takes with a key id of idlen bytes. */
uint64_t crypt_sealed_size(uint64_t n, size_t idlen);

/* ---- STREAM: reading ---- */

typedef struct crypt_reader crypt_reader;
/* A reader for the stored bytes of file name: an encrypted file (it starts with the magic) is
 * decrypted with the key its header names from kr (NULL: no keys); any other file passes
 * through unchanged. Plaintext goes to out. */
kd_rc crypt_reader_new(const crypt_keyring *kr, const char *name, objstore_sink_fn out, void *ud, crypt_reader **r);
/* Feed stored bytes (an objstore_sink_fn). Failures: KD_ERR_CONFIG (the file names a key id kr
 * does not hold, or there is no keyring), KD_ERR_INTEGRITY (the key does not unwrap the data
 * key — a wrong key — or a chunk fails authentication: changed, reordered, from another file),
 * KD_ERR_PARSE (a damaged header), out's failure. */
kd_rc crypt_reader_feed(const char *p, size_t n, void *r);
/* End of the stored bytes: the held chunk must authenticate as the final one (a file cut at a
 * chunk boundary fails here with KD_ERR_INTEGRITY). */
kd_rc crypt_reader_finish(crypt_reader *r);
/* After the header was read: was the file encrypted, and with which key id (else "")? */
bool crypt_reader_encrypted(const crypt_reader *r);
const char *crypt_reader_key_id(const crypt_reader *r);
void crypt_reader_free(crypt_reader *r);
/* Is buf (the first n bytes of a file) the start of an encrypted file? When it is and the header
 * is whole, its key id goes to id[CRYPT_ID_MAX+1] (else ""). Pure. */
bool crypt_is_encrypted(const void *buf, size_t n, char *id);

/* ---- Ed25519 ---- */

typedef struct crypt_signer crypt_signer;
/* An Ed25519 private key from PEM. KD_ERR_PARSE when it is not PEM or not Ed25519. */
kd_rc crypt_signer_parse(const char *pem, size_t len, crypt_signer **out);
/* Its key id: the first 16 hex digits of SHA-256 of the raw 32-byte public key. */
const char *crypt_signer_id(const crypt_signer *s);
void crypt_signer_free(crypt_signer *s);
/* The signature file for msg: {"algorithm":"ed25519","keyId":"<16 hex>","signature":"<base64>"}\n
 * appended to out. */
kd_rc crypt_sign(const crypt_signer *s, const void *msg, size_t n, kd_buf *out);

typedef struct crypt_verifier crypt_verifier;
/* One or more Ed25519 public keys ("-----BEGIN PUBLIC KEY-----" blocks). KD_ERR_PARSE naming the
 * block that is not an Ed25519 public key, or when there is none. */
kd_rc crypt_verifier_parse(const char *pem, size_t len, crypt_verifier **out);
/* Add signer's public half to v (*v created when NULL). */
kd_rc crypt_verifier_add_signer(crypt_verifier **v, const crypt_signer *s);
void crypt_verifier_free(crypt_verifier *v);
/* Parse a signature file: keyId into id[17], the 64-byte signature into sig. KD_ERR_PARSE for
 * any other shape (not JSON, another algorithm, a key id that is not 16 hex digits, a signature
 * that is not 64 bytes of base64). Pure. */
kd_rc crypt_sigfile_parse(const char *text, size_t len, char id[17], unsigned char sig[64]);
/* Check the signature file over msg with v's keys; the signer's key id goes to id[17] (when the
 * file parses). KD_ERR_PARSE (its shape), KD_ERR_CONFIG (signed by a key v does not hold),
 * KD_ERR_INTEGRITY (the signature does not match msg). */
kd_rc crypt_verify(const crypt_verifier *v, const void *msg, size_t n, const char *sigfile, size_t sig_len, char id[17]);

/* ---- a location's settings ---- */

struct crypt_location {
  crypt_keyring *keys;    /* kcmdr.io/encryption-secret, or NULL */
  crypt_signer *signer;   /* kcmdr.io/signing-secret, or NULL */
  crypt_verifier *verify; /* kcmdr.io/verify-secret plus the signer's public key, or NULL */
  bool require_signature;
  char enc_ref[300], sign_ref[300], verify_ref[300]; /* "ns/name key" for messages */
};
/* Read bsl's annotations and the Secrets they name from namespace ns. Every configured item
 * must load: KD_ERR_CONFIG with a message naming the annotation, Secret and key (a malformed
 * annotation, a missing Secret or key, a value that does not parse); never a key byte in a
 * message. No annotation: KD_OK with everything empty. Transport failures are returned. */
kd_rc crypt_location_load(kube_client *c, const char *ns, json_t *bsl, struct crypt_location *out);
void crypt_location_free(struct crypt_location *l);

/* ---- reading a store transparently ---- */

/* Make the keys kr (borrowed: keep it until crypt_detach) the ones crypt_get uses for st.
 * KD_ERR_TOOBIG past 256 attached stores. kr NULL detaches. */
kd_rc crypt_attach(objstore *st, const crypt_keyring *kr);
void crypt_detach(objstore *st);
/* The keys attached to st, or NULL. */
const crypt_keyring *crypt_attached(objstore *st);
/* objstore_get, decrypting an encrypted file with the keys attached to st (see crypt_reader). */
kd_rc crypt_get(objstore *st, const char *key, objstore_sink_fn fn, void *ud);
/* Peek at key's header: *encrypted and its key id into id[CRYPT_ID_MAX+1]. The store's failure
 * (KD_ERR_NOTFOUND) otherwise. */
kd_rc crypt_peek(objstore *st, const char *key, bool *encrypted, char *id);
/* Check that kr unwraps the data key of the encrypted file key (reads only its header):
 * KD_OK for a plain file too; crypt_reader's KD_ERR_CONFIG / KD_ERR_INTEGRITY otherwise. */
kd_rc crypt_check_key(objstore *st, const crypt_keyring *kr, const char *key);

#endif
