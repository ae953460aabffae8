/* driver.c — the C half of test/diff/t_robfig.sh (see main.go for the protocol): for each input
 * line "<spec as hex> <start>...", parse the spec with cron_parse_n and print either
 * "OK <next>,<next>,... ..." (successive cron_next calls per start, stopping at 0) or
 * "ERR <message>" with bytes outside 0x20-0x7e and '\' written as \xNN. argv[1]: Next calls per
 * start. Exits non-zero on malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int main(int argc, char **argv) {
  int nexts = argc > 1 ? atoi(argv[1]) : 3, status = 0;
  char *line = NULL, *spec = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    char *save = NULL, *hex = strtok_r(line, " \n", &save);
    if (!hex) {
      status = 2;
      break;
    }
    size_t hn = strcmp(hex, "-") == 0 ? 0 : strlen(hex), n = hn / 2;
    free(spec);
    spec = malloc(n + 1);
    if (!spec || hn % 2) {
      status = 2;
      break;
    }
    for (size_t i = 0; i < n; i++) {
      int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        status = 2;
        goto out;
      }
      spec[i] = (char)(hi << 4 | lo);
    }
    cron_schedule *s = NULL;
    if (cron_parse_n(spec, n, &s) != KD_OK) {
      fputs("ERR ", stdout);
      for (const unsigned char *m = (const unsigned char *)kd_errmsg(); *m; m++) {
        if (*m < 0x20 || *m > 0x7e || *m == '\\') printf("\\x%02x", *m);
        else putchar(*m);
      }
      putchar('\n');
      continue;
    }
    fputs("OK", stdout);
    for (char *tok = strtok_r(NULL, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
      int64_t t = strtoll(tok, NULL, 10);
      for (int k = 0; k < nexts; k++) {
        int64_t next = cron_next(s, t);
        printf("%s%lld", k ? "," : " ", (long long)next);
        if (!next) break;
        t = next;
      }
    }
    putchar('\n');
    cron_free(s);
  }
out:
  free(line);
  free(spec);
  return status;
}
