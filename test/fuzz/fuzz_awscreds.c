/* fuzz_awscreds.c — libFuzzer target for the AWS shared-credentials parser: any bytes, for the
 * default profile and a named one, parse or fail cleanly; an error message never holds a value
 * from the file (checked for every value of 6+ bytes with an upper-case letter, which the
 * parser's fixed wording never has). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "objstore.h"

/* True when some "name = value" value of the file (6+ bytes, an upper-case letter) is in msg. */
static int leaked(const char *text, size_t size, const char *msg) {
  size_t ml = strlen(msg);
  for (const char *p = text, *end = text + size; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end, *eq = memchr(p, '=', (size_t)(e - p));
    if (eq) {
      const char *v = eq + 1, *ve = e;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r')) ve--;
      int upper = 0;
      for (const char *c = v; c < ve; c++) upper |= *c >= 'A' && *c <= 'Z';
      if (ve - v >= 6 && upper && memmem(msg, ml, v, (size_t)(ve - v))) return 1;
    }
    p = nl ? nl + 1 : end;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size ? size : 1);
  if (!text) return 0;
  memcpy(text, data, size);
  const char *profiles[] = {NULL, "backup"};
  for (size_t i = 0; i < 2; i++) {
    struct objstore_creds c;
    if (objstore_parse_credentials(text, size, profiles[i], &c) == KD_OK) {
      if (!c.access_key || !*c.access_key || !c.secret_key || !*c.secret_key) abort();
      objstore_creds_free(&c);
    } else if (leaked(text, size, kd_errmsg())) {
      abort();
    }
  }
  free(text);
  return 0;
}
