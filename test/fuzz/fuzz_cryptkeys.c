/* fuzz_cryptkeys.c — libFuzzer target for the key Secrets a storage location names (crypt.h), as
 * read from a Secret anyone who may edit Secrets in the namespace may have written. The first
 * byte picks the parser, the rest is the Secret's value:
 *   0: the encryption Secret (crypt_keyring_parse): parses or fails cleanly; what it accepts
 *      has a current key id that it holds; an error message never holds a key (checked for
 *      every line's value of 8+ bytes holding B-Y, + or /, once the ids the message may name are
 *      blanked out);
 *   1: the verification Secret (crypt_verifier_parse), PEM public keys;
 *   2: the signing Secret (crypt_signer_parse), a PEM private key: accepted means a key id of
 *      16 lower-case hex digits.
 * Never a crash, an over-read or a leak, and never a passphrase prompt: OpenSSL's PEM reader
 * asks the terminal for one when a block says "Proc-Type: 4,ENCRYPTED" unless told not to, which
 * would hang a CLI run on a tty (and fail oddly without one); the UI method installed here
 * aborts on any prompt, so a parser that lets OpenSSL ask is a finding. */
#include <openssl/ui.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"

static int ui_prompted(UI *ui, UI_STRING *s) {
  (void)ui, (void)s;
  abort(); /* a parser let OpenSSL ask for a passphrase */
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  static UI_METHOD *m;
  m = UI_create_method("fuzz: no prompts");
  if (!m || UI_method_set_reader(m, ui_prompted) || UI_method_set_writer(m, ui_prompted)) abort();
  UI_set_default_method(m);
  return 0;
}

struct span {
  const char *p;
  size_t n;
};
static int longer_first(const void *a, const void *b) {
  size_t x = ((const struct span *)a)->n, y = ((const struct span *)b)->n;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* some value of an "id=value" line (8+ bytes, with a byte of base64 the message's own wording
 * lacks) is in msg once every id of the text (which messages may name) is blanked out of it with
 * '\n' (which no value holds) */
static int leaked(const char *text, size_t size, const char *msg) {
  size_t ml = strlen(msg);
  char *m = strdup(msg);
  const char *end = text + size;
  int found = 0;
  if (!m) abort();
  struct span *ids = malloc((size / 2 + 1) * sizeof *ids); /* a line with an id takes 2+ bytes */
  size_t ni = 0;
  if (!ids) abort();
  for (const char *q = text; q < end;) {
    const char *qn = memchr(q, '\n', (size_t)(end - q)), *qe = qn ? qn : end, *qq = memchr(q, '=', (size_t)(qe - q));
    if (qq && qq > q) ids[ni].p = q, ids[ni++].n = (size_t)(qq - q);
    q = qn ? qn + 1 : end;
  }
  qsort(ids, ni, sizeof *ids, longer_first);
  for (size_t i = 0; i < ni; i++)
    for (char *h = m; (h = memmem(h, ml - (size_t)(h - m), ids[i].p, ids[i].n)) != NULL;) memset(h, '\n', ids[i].n);
  free(ids);
  for (const char *p = text; p < end && !found;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end, *eq = memchr(p, '=', (size_t)(e - p));
    if (eq) {
      const char *v = eq + 1;
      size_t vl = (size_t)(e - v);
      if (vl && v[vl - 1] == '\r') vl--;
      int marked = 0; /* a byte the parser's fixed wording never has (it has only A and Z in upper case) */
      for (size_t i = 0; i < vl; i++) marked |= (v[i] > 'A' && v[i] < 'Z') || v[i] == '+' || v[i] == '/';
      if (vl >= 8 && marked && memmem(m, ml, v, vl)) found = 1;
    }
    p = nl ? nl + 1 : end;
  }
  free(m);
  return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int which = data[0] % 3;
  size_t n = size - 1;
  char *text = malloc(n ? n : 1); /* exactly the value's bytes: a read past them is caught */
  if (!text) return 0;
  memcpy(text, data + 1, n);
  if (which == 0) {
    crypt_keyring *kr = NULL;
    if (crypt_keyring_parse(text, n, &kr) == KD_OK) {
      const char *cur = crypt_keyring_current(kr);
      if (!kr || !cur[0] || !crypt_keyring_has(kr, cur)) abort();
      crypt_keyring_free(kr);
    } else {
      if (kr || !kd_errmsg()[0]) abort();
      if (leaked(text, n, kd_errmsg())) abort();
    }
  } else if (which == 1) {
    crypt_verifier *v = NULL;
    if (crypt_verifier_parse(text, n, &v) == KD_OK) {
      if (!v) abort();
      crypt_verifier_free(v);
    } else if (v || !kd_errmsg()[0]) {
      abort();
    }
  } else {
    crypt_signer *s = NULL;
    if (crypt_signer_parse(text, n, &s) == KD_OK) {
      const char *id = crypt_signer_id(s);
      if (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16) abort();
      crypt_signer_free(s);
    } else if (s || !kd_errmsg()[0]) {
      abort();
    }
  }
  free(text);
  return 0;
}
