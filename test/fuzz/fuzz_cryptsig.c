/* fuzz_cryptsig.c — libFuzzer target for a backup's signature file (<b>-checksums.json.sig) as
 * read from a bucket anyone with write access may have changed. A fixed Ed25519 key (from a
 * fixed seed, through the same PEM parser the signing Secret goes through) signs a fixed
 * checksums file; the first byte picks what the rest is:
 *   even: the signature file. crypt_sigfile_parse accepts it or fails with KD_ERR_PARSE and a
 *     message (an empty key id); accepted means a key id of 16 lower-case hex digits.
 *     crypt_verify over the fixed checksums file succeeds exactly when the file names the
 *     key's id with the one signature the key makes (Ed25519 is deterministic, and OpenSSL
 *     takes no other encoding of it); otherwise KD_ERR_PARSE, _CONFIG or _INTEGRITY;
 *   odd: the checksums file, checked against the true signature file: success exactly when it
 *     is the signed bytes.
 * Never a crash, an over-read or a leak. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

static const char MSG[] = "{\"files\":{\"backups/b/b.tar.gz\":{\"sha256\":\"00\",\"size\":1}}}\n";
static crypt_verifier *ver;
static char sigfile[256], kid[17];
static size_t sigfile_len;
static unsigned char sig[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  unsigned char seed[32];
  for (int i = 0; i < 32; i++) seed[i] = (unsigned char)(7 * i + 1);
  EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed);
  BIO *bio = BIO_new(BIO_s_mem());
  char *pem = NULL;
  long pl;
  crypt_signer *s = NULL;
  kd_buf out = KD_BUF_INIT(4096);
  if (!pk || !bio || PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) != 1 || (pl = BIO_get_mem_data(bio, &pem)) <= 0 ||
      crypt_signer_parse(pem, (size_t)pl, &s) != KD_OK || crypt_verifier_add_signer(&ver, s) != KD_OK ||
      crypt_sign(s, MSG, sizeof MSG - 1, &out) != KD_OK || out.len >= sizeof sigfile)
    abort();
  memcpy(sigfile, out.data, out.len);
  sigfile_len = out.len;
  if (crypt_sigfile_parse(sigfile, sigfile_len, kid, sig) != KD_OK || strcmp(kid, crypt_signer_id(s)) != 0) abort();
  kd_buf_free(&out);
  crypt_signer_free(s);
  BIO_free(bio);
  EVP_PKEY_free(pk);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t n = size - 1;
  char *text = malloc(n ? n : 1); /* exactly the bytes: a read past them is caught */
  char id[17] = "x", id2[17] = "x";
  unsigned char got[64];
  if (!text) return 0;
  memcpy(text, data + 1, n);
  if (data[0] % 2 == 0) {
    kd_rc prc = crypt_sigfile_parse(text, n, id, got);
    if (prc == KD_OK) {
      if (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16) abort();
    } else if (prc != KD_ERR_PARSE || id[0] || !kd_errmsg()[0]) {
      abort();
    }
    kd_rc vrc = crypt_verify(ver, MSG, sizeof MSG - 1, text, n, id2);
    bool genuine = prc == KD_OK && strcmp(id, kid) == 0 && memcmp(got, sig, 64) == 0;
    if ((vrc == KD_OK) != genuine) abort();
    if (vrc != KD_OK && vrc != KD_ERR_PARSE && vrc != KD_ERR_CONFIG && vrc != KD_ERR_INTEGRITY) abort();
    if ((vrc == KD_ERR_PARSE) != (prc != KD_OK)) abort();
  } else {
    kd_rc vrc = crypt_verify(ver, text, n, sigfile, sigfile_len, id2);
    bool same = n == sizeof MSG - 1 && memcmp(text, MSG, n) == 0;
    if ((vrc == KD_OK) != same || (vrc != KD_OK && vrc != KD_ERR_INTEGRITY) || strcmp(id2, kid) != 0) abort();
  }
  free(text);
  return 0;
}
