/* test_crypt.c — crypt.c: key Secrets parsed strictly; the STREAM format round-trips at chunk
 * edges and refuses every tampering (wrong key, unknown key id, a file cut at a chunk boundary,
 * reordered chunks, a file under another name, a flipped byte); files that are not encrypted
 * pass through; Ed25519 with RFC 8032's first test vector (signature and key id), signature files
 * of the wrong shape refused, a signature by an unknown key or over changed bytes refused; key
 * Secrets with PEM encryption never make OpenSSL prompt for a passphrase. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ui.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "tests.h"

#define K1 "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
#define K1_OTHER "k1=HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
#define K2 "k2=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n"

static crypt_keyring *ring(const char *text) {
  crypt_keyring *kr = NULL;
  assert_int_equal(crypt_keyring_parse(text, strlen(text), &kr), KD_OK);
  return kr;
}

static kd_rc to_buf(const char *p, size_t n, void *ud) { return kd_buf_add(ud, p, n); }

/* decrypt stored[0..n) fed in slices of `slice` bytes; the plaintext into out */
static kd_rc open_all(const crypt_keyring *kr, const char *name, const char *stored, size_t n, size_t slice, kd_buf *out) {
  crypt_reader *r = NULL;
  kd_rc rc = crypt_reader_new(kr, name, to_buf, out, &r);
  for (size_t i = 0; rc == KD_OK && i < n; i += slice) rc = crypt_reader_feed(stored + i, n - i < slice ? n - i : slice, r);
  if (rc == KD_OK) rc = crypt_reader_finish(r);
  crypt_reader_free(r);
  return rc;
}

static void seal_data(const crypt_keyring *kr, const char *name, const char *p, size_t n, kd_buf *out) {
  crypt_dek *d = NULL;
  assert_int_equal(crypt_dek_new(kr, &d), KD_OK);
  assert_int_equal(crypt_seal(d, name, p, n, out), KD_OK);
  crypt_dek_free(d);
}

static char *pattern(size_t n) {
  char *p = malloc(n + 1);
  for (size_t i = 0; i < n; i++) p[i] = (char)(i * 31 + (i >> 8));
  return p;
}

/* Sizes around the chunk edges, fed in odd slices: the plaintext comes back exactly, the stored
 * size is what crypt_sealed_size says, and the ciphertext is not the plaintext. */
static void round_trip(void **state) {
  (void)state;
  crypt_keyring *kr = ring(K1);
  size_t sizes[] = {0, 1, CRYPT_CHUNK - 1, CRYPT_CHUNK, CRYPT_CHUNK + 1, 3 * CRYPT_CHUNK + 7};
  for (size_t i = 0; i < KD_ARRAY_LEN(sizes); i++) {
    char *p = pattern(sizes[i]);
    kd_buf s = KD_BUF_INIT(1u << 24), o = KD_BUF_INIT(1u << 24);
    seal_data(kr, "backups/b/b.tar.gz", p, sizes[i], &s);
    assert_int_equal(s.len, crypt_sealed_size(sizes[i], 2));
    char id[CRYPT_ID_MAX + 1];
    assert_true(crypt_is_encrypted(s.data, s.len, id));
    assert_string_equal(id, "k1");
    if (sizes[i] > 64) assert_null(memmem(s.data, s.len, p, 64));
    assert_int_equal(open_all(kr, "backups/b/b.tar.gz", s.data, s.len, 7777, &o), KD_OK);
    assert_int_equal(o.len, sizes[i]);
    if (sizes[i]) assert_memory_equal(o.data, p, sizes[i]);
    kd_buf_free(&s), kd_buf_free(&o), free(p);
  }
  crypt_keyring_free(kr);
}

/* Wrong keys: another key under the same id fails to unwrap (INTEGRITY); a keyring without the
 * file's id, or none at all, is a configuration error naming the id; with two keys, a file
 * sealed under the old (second) key still opens (rotation). */
static void wrong_key(void **state) {
  (void)state;
  crypt_keyring *kr = ring(K1), *other = ring(K1_OTHER), *k2 = ring(K2), *rot = ring(K2 K1);
  kd_buf s = KD_BUF_INIT(1u << 20), o = KD_BUF_INIT(1u << 20);
  seal_data(kr, "f", "secret", 6, &s);
  assert_int_equal(open_all(other, "f", s.data, s.len, 1000, &o), KD_ERR_INTEGRITY);
  assert_non_null(strstr(kd_errmsg(), "does not unwrap"));
  assert_int_equal(o.len, 0);
  assert_int_equal(open_all(k2, "f", s.data, s.len, 1000, &o), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "key id k1"));
  assert_int_equal(open_all(NULL, "f", s.data, s.len, 1000, &o), KD_ERR_CONFIG);
  assert_int_equal(open_all(rot, "f", s.data, s.len, 1000, &o), KD_OK);
  assert_int_equal(o.len, 6);
  assert_string_equal(crypt_keyring_current(rot), "k2");
  kd_buf_free(&s), kd_buf_free(&o);
  crypt_keyring_free(kr), crypt_keyring_free(other), crypt_keyring_free(k2), crypt_keyring_free(rot);
}

/* Tampering: cut at a chunk boundary (after the first or second of three chunks), the first two
 * chunks swapped, a file read under another name, one byte flipped anywhere (header, chunk, tag),
 * a chunk appended after the last: each fails with KD_ERR_INTEGRITY or KD_ERR_PARSE, never
 * KD_OK. */
static void tampering(void **state) {
  (void)state;
  crypt_keyring *kr = ring(K1);
  size_t n = 2 * CRYPT_CHUNK + 100, hdr = crypt_sealed_size(0, 2) - 16, ck = CRYPT_CHUNK + 16;
  char *p = pattern(n);
  kd_buf s = KD_BUF_INIT(1u << 24), o = KD_BUF_INIT(1u << 24);
  seal_data(kr, "backups/b/b.tar.gz", p, n, &s);
  assert_int_equal(s.len, hdr + 2 * ck + 100 + 16);
  /* truncated at chunk boundaries */
  assert_int_equal(open_all(kr, "backups/b/b.tar.gz", s.data, hdr + ck, 4096, &o), KD_ERR_INTEGRITY);
  kd_buf_reset(&o);
  assert_int_equal(open_all(kr, "backups/b/b.tar.gz", s.data, hdr + 2 * ck, 4096, &o), KD_ERR_INTEGRITY);
  kd_buf_reset(&o);
  assert_int_equal(open_all(kr, "backups/b/b.tar.gz", s.data, hdr, 4096, &o), KD_ERR_INTEGRITY);
  kd_buf_reset(&o);
  /* reordered */
  char *sw = malloc(s.len);
  memcpy(sw, s.data, s.len);
  memcpy(sw + hdr, s.data + hdr + ck, ck);
  memcpy(sw + hdr + ck, s.data + hdr, ck);
  assert_int_equal(open_all(kr, "backups/b/b.tar.gz", sw, s.len, 4096, &o), KD_ERR_INTEGRITY);
  kd_buf_reset(&o);
  /* another file's name */
  assert_int_equal(open_all(kr, "backups/b/b-logs.gz", s.data, s.len, 4096, &o), KD_ERR_INTEGRITY);
  kd_buf_reset(&o);
  /* one byte flipped: in the magic (then it is no encrypted file: passes through, and the
   * checksum catches it), the key id, the wrapped key, the salt, a chunk, the last tag */
  size_t at[] = {9, 12, hdr - 1, hdr + 5, s.len - 1};
  for (size_t i = 0; i < KD_ARRAY_LEN(at); i++) {
    memcpy(sw, s.data, s.len);
    sw[at[i]] ^= 1;
    kd_rc rc = open_all(kr, "backups/b/b.tar.gz", sw, s.len, 4096, &o);
    assert_true(rc == KD_ERR_INTEGRITY || rc == KD_ERR_PARSE || rc == KD_ERR_CONFIG);
    kd_buf_reset(&o);
  }
  /* a chunk appended after the last */
  kd_buf two = KD_BUF_INIT(1u << 25);
  kd_buf_add(&two, s.data, s.len);
  kd_buf_add(&two, s.data + hdr, ck);
  assert_int_equal(open_all(kr, "backups/b/b.tar.gz", two.data, two.len, 4096, &o), KD_ERR_INTEGRITY);
  kd_buf_free(&two);
  free(sw), free(p);
  kd_buf_free(&s), kd_buf_free(&o);
  crypt_keyring_free(kr);
}

/* A file that is not encrypted (gzip, JSON, 3 bytes, empty) comes out unchanged, keys or not. */
static void passthrough(void **state) {
  (void)state;
  const char *files[] = {"\x1f\x8b\x08\x00rest", "{\"a\":1}", "KDC", ""};
  for (size_t i = 0; i < KD_ARRAY_LEN(files); i++) {
    kd_buf o = KD_BUF_INIT(1024);
    assert_int_equal(open_all(NULL, "x", files[i], strlen(files[i]), 2, &o), KD_OK);
    assert_int_equal(o.len, strlen(files[i]));
    if (o.len) assert_memory_equal(o.data, files[i], o.len);
    assert_false(crypt_is_encrypted(files[i], strlen(files[i]), NULL));
    kd_buf_free(&o);
  }
}

/* Key Secrets: comments, blank lines and CRLF are fine; no key, a bad id, a key of 31 bytes,
 * bad base64, a duplicate id and a line without '=' are refused naming the line. */
static void keyring_parse(void **state) {
  (void)state;
  crypt_keyring *kr = ring("# keys\r\n\r\n" K2 K1);
  assert_string_equal(crypt_keyring_current(kr), "k2");
  assert_true(crypt_keyring_has(kr, "k1"));
  assert_false(crypt_keyring_has(kr, "k3"));
  crypt_keyring_free(kr);
  const char *bad[] = {"", "# only\n", "k 1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
                       "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n", "k1=!!!\n", K1 K1, "k1\n", "=AAAA\n"};
  for (size_t i = 0; i < KD_ARRAY_LEN(bad); i++) {
    kr = NULL;
    assert_int_equal(crypt_keyring_parse(bad[i], strlen(bad[i]), &kr), KD_ERR_PARSE);
    assert_null(kr);
    assert_null(strstr(kd_errmsg(), "AAEC"));
  }
}

static const unsigned char rfc8032_sk[32] = {0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
                                             0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
                                             0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
#define RFC8032_SIG_HEX                                                                                                 \
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24" \
  "655141438e7a100b"

static char *pem_of(EVP_PKEY *pk, bool pub) {
  BIO *b = BIO_new(BIO_s_mem());
  assert_int_equal(pub ? PEM_write_bio_PUBKEY(b, pk) : PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL), 1);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *s = strndup(data, (size_t)n);
  BIO_free(b);
  return s;
}

/* RFC 8032 §7.1 TEST 1 (empty message): the signature file carries exactly the RFC's signature
 * and the key id 21fe31dfa154a261 (SHA-256 of the public key d75a9801...); it verifies with the
 * public key; a changed message, a signature file by another key, and malformed signature files
 * are refused with distinct codes. */
static void ed25519(void **state) {
  (void)state;
  EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, rfc8032_sk, 32), *pk2 = NULL;
  EVP_PKEY_CTX *gc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
  assert_non_null(pk);
  assert_int_equal(EVP_PKEY_keygen_init(gc), 1);
  assert_int_equal(EVP_PKEY_keygen(gc, &pk2), 1);
  EVP_PKEY_CTX_free(gc);
  char *priv = pem_of(pk, false), *pub = pem_of(pk, true), *priv2 = pem_of(pk2, false), *pub2 = pem_of(pk2, true);
  crypt_signer *s = NULL, *s2 = NULL;
  crypt_verifier *v = NULL, *v2 = NULL;
  assert_int_equal(crypt_signer_parse(priv, strlen(priv), &s), KD_OK);
  assert_int_equal(crypt_signer_parse(priv2, strlen(priv2), &s2), KD_OK);
  assert_string_equal(crypt_signer_id(s), "21fe31dfa154a261");
  kd_buf f = KD_BUF_INIT(4096), f2 = KD_BUF_INIT(4096);
  assert_int_equal(crypt_sign(s, "", 0, &f), KD_OK);
  char id[17];
  unsigned char sig[64], want[64];
  assert_int_equal(crypt_sigfile_parse(f.data, f.len, id, sig), KD_OK);
  for (int i = 0; i < 64; i++) sscanf(RFC8032_SIG_HEX + 2 * i, "%2hhx", &want[i]);
  assert_memory_equal(sig, want, 64);
  assert_string_equal(id, "21fe31dfa154a261");
  /* verification: both public keys in one Secret */
  char both[4096];
  snprintf(both, sizeof both, "%s\n%s", pub2, pub);
  assert_int_equal(crypt_verifier_parse(both, strlen(both), &v), KD_OK);
  assert_int_equal(crypt_verify(v, "", 0, f.data, f.len, id), KD_OK);
  assert_int_equal(crypt_verify(v, "x", 1, f.data, f.len, id), KD_ERR_INTEGRITY);
  assert_int_equal(crypt_verifier_parse(pub2, strlen(pub2), &v2), KD_OK);
  assert_int_equal(crypt_verify(v2, "", 0, f.data, f.len, id), KD_ERR_CONFIG);
  assert_non_null(strstr(kd_errmsg(), "21fe31dfa154a261"));
  assert_int_equal(crypt_sign(s2, "", 0, &f2), KD_OK);
  assert_int_equal(crypt_verify(v2, "", 0, f2.data, f2.len, id), KD_OK);
  /* the signer's own public half verifies too */
  crypt_verifier *v3 = NULL;
  assert_int_equal(crypt_verifier_add_signer(&v3, s), KD_OK);
  assert_int_equal(crypt_verify(v3, "", 0, f.data, f.len, id), KD_OK);
  crypt_verifier_free(v3);
  /* wrong shapes */
  const char *badsig[] = {"", "{}", "[1]", "{\"algorithm\":\"rsa\",\"keyId\":\"21fe31dfa154a261\",\"signature\":\"AA==\"}",
                          "{\"algorithm\":\"ed25519\",\"keyId\":\"21FE31DFA154A261\",\"signature\":\"AA==\"}",
                          "{\"algorithm\":\"ed25519\",\"keyId\":\"21fe31dfa154a261\",\"signature\":\"AA==\"}",
                          "{\"algorithm\":\"ed25519\",\"keyId\":\"21fe31dfa154a261\",\"signature\":\"AA==\",\"x\":1}"};
  for (size_t i = 0; i < KD_ARRAY_LEN(badsig); i++) assert_int_equal(crypt_verify(v, "", 0, badsig[i], strlen(badsig[i]), id), KD_ERR_PARSE);
  /* a hostile bucket writer's algorithm: control characters (a terminal escape, a newline that
   * would forge a log line) and a quote are not repeated into the message (it reaches the
   * Restore's status and the logs); printable text is, cut at 40 characters */
  const char *esc = "{\"algorithm\":\"\\u001b[2J\\nlevel=info \\\"x\",\"keyId\":\"21fe31dfa154a261\",\"signature\":\"AA==\"}";
  assert_int_equal(crypt_verify(v, "", 0, esc, strlen(esc), id), KD_ERR_PARSE);
  assert_non_null(strstr(kd_errmsg(), "algorithm \"?[2J?level=info ?x\" is not ed25519"));
  for (const char *m = kd_errmsg(); *m; m++) assert_true(*m >= 0x20 && *m < 0x7f);
  /* key Secrets of the wrong kind */
  crypt_signer *bad = NULL;
  crypt_verifier *badv = NULL;
  assert_int_equal(crypt_signer_parse(pub, strlen(pub), &bad), KD_ERR_PARSE);
  assert_int_equal(crypt_verifier_parse(priv, strlen(priv), &badv), KD_ERR_PARSE);
  assert_int_equal(crypt_verifier_parse("junk", 4, &badv), KD_ERR_PARSE);
  assert_null(bad), assert_null(badv);
  kd_buf_free(&f), kd_buf_free(&f2);
  crypt_signer_free(s), crypt_signer_free(s2), crypt_verifier_free(v), crypt_verifier_free(v2);
  free(priv), free(pub), free(priv2), free(pub2);
  EVP_PKEY_free(pk), EVP_PKEY_free(pk2);
}

static int prompts;
static int ui_read(UI *ui, UI_STRING *uis) {
  (void)ui, (void)uis;
  prompts++;
  return 0; /* no answer */
}

/* Found by test/fuzz/fuzz_cryptkeys.c: a signing Secret holding a passphrase-protected private
 * key (openssl genpkey ... -aes256), or a verification Secret whose block carries PEM encryption
 * headers, made OpenSSL ask the terminal "Enter PEM pass phrase:" (a CLI on a tty hung there).
 * Tried: both, with OpenSSL's UI replaced by one that counts prompts. Asserted: KD_ERR_PARSE with
 * a message saying what is wrong, and not one prompt. */
static void no_passphrase_prompt(void **state) {
  (void)state;
  UI_METHOD *m = UI_create_method("count prompts");
  assert_non_null(m);
  assert_int_equal(UI_method_set_reader(m, ui_read), 0);
  UI_set_default_method(m);
  prompts = 0;
  EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, rfc8032_sk, 32);
  BIO *b = BIO_new(BIO_s_mem());
  assert_int_equal(PEM_write_bio_PKCS8PrivateKey(b, pk, EVP_aes_256_cbc(), "pw", 2, NULL, NULL), 1);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  assert_non_null(memmem(data, (size_t)n, "ENCRYPTED PRIVATE KEY", 21));
  crypt_signer *s = NULL;
  assert_int_equal(crypt_signer_parse(data, (size_t)n, &s), KD_ERR_PARSE);
  assert_int_equal(prompts, 0);
  assert_null(s);
  assert_non_null(strstr(kd_errmsg(), "passphrase"));
  static const char pub[] = "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n"
                            "DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n";
  crypt_verifier *v = NULL;
  assert_int_equal(crypt_verifier_parse(pub, sizeof pub - 1, &v), KD_ERR_PARSE);
  assert_int_equal(prompts, 0);
  assert_null(v);
  assert_non_null(strstr(kd_errmsg(), "encryption headers"));
  UI_set_default_method(UI_OpenSSL());
  UI_destroy_method(m);
  BIO_free(b);
  EVP_PKEY_free(pk);
}

int test_crypt(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip), cmocka_unit_test(wrong_key),     cmocka_unit_test(tampering),
      cmocka_unit_test(passthrough), cmocka_unit_test(keyring_parse), cmocka_unit_test(ed25519),
      cmocka_unit_test(no_passphrase_prompt),
  };
  return cmocka_run_group_tests_name("crypt", tests, NULL, NULL);
}
