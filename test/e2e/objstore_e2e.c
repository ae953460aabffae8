/* objstore_e2e.c — drives the object-store layer against a real store for test/e2e/t_objstore.sh.
 * The location is a BackupStorageLocation JSON file and an AWS credentials file ("-": none).
 * Each verb does one thing and exits 0, or 1 with "objstore-e2e: <code name>: <message>".
 *
 *   objstore-e2e BSL CREDS check                  objstore_check
 *   objstore-e2e BSL CREDS describe               print objstore_describe
 *   objstore-e2e BSL CREDS put KEY                stdin as one object (objstore_put)
 *   objstore-e2e BSL CREDS put-new KEY            stdin as one object, only if KEY is absent
 *                                                 (objstore_put_new; "conflict" when present)
 *   objstore-e2e BSL CREDS guarded VERB ARGS...   VERB with a write guard that refuses
 *                                                 (KD_ERR_CANCELLED "deposed")
 *   objstore-e2e BSL CREDS writer KEY             stdin streamed through a writer; prints the size
 *   objstore-e2e BSL CREDS writer-abort KEY       stdin through a writer, then abort
 *   objstore-e2e BSL CREDS get KEY                the object to stdout (streamed)
 *   objstore-e2e BSL CREDS head KEY               print the size
 *   objstore-e2e BSL CREDS delete KEY
 *   objstore-e2e BSL CREDS list PREFIX [/]        one "KEY<TAB>P|O<TAB>SIZE" line per entry
 *   objstore-e2e BSL CREDS many PREFIX N          put N small objects PREFIX000000.. (8 threads)
 *
 * With OBJSTORE_E2E_HOLD_MS set, the writer verbs print "holding SIZE" and wait that long
 * before they commit or abort, so the test can look at the store meanwhile.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore.h"

static int die(kd_rc rc) {
  fprintf(stderr, "objstore-e2e: %s: %s\n", kd_rc_name(rc), kd_errmsg());
  return 1;
}

static kd_rc to_stdout(const char *p, size_t n, void *ud) {
  (void)ud;
  return fwrite(p, 1, n, stdout) == n ? KD_OK : kd_fail(KD_ERR_IO, "writing stdout");
}

static kd_rc print_entry(const char *key, bool is_prefix, uint64_t size, void *ud) {
  (void)ud;
  printf("%s\t%s\t%llu\n", key, is_prefix ? "P" : "O", (unsigned long long)size);
  return KD_OK;
}

static kd_rc refuse(void *ud) {
  (void)ud;
  return kd_fail(KD_ERR_CANCELLED, "deposed: this process lost its lease");
}

struct many {
  objstore *s;
  const char *prefix;
  int n;
  atomic_int next;
  atomic_int failed;
};

static void *many_worker(void *ud) {
  struct many *m = ud;
  for (int i; (i = atomic_fetch_add(&m->next, 1)) < m->n;) {
    char key[512], body[64];
    snprintf(key, sizeof key, "%s%06d", m->prefix, i);
    int len = snprintf(body, sizeof body, "object %d\n", i);
    if (objstore_put(m->s, key, body, (size_t)len) != KD_OK) {
      fprintf(stderr, "objstore-e2e: put %s: %s\n", key, kd_errmsg());
      atomic_store(&m->failed, 1);
      break;
    }
  }
  return NULL;
}

static kd_rc pump_writer(objstore *s, const char *key, bool abort_it) {
  objstore_writer *w;
  kd_rc rc = objstore_writer_open(s, key, &w);
  if (rc != KD_OK) return rc;
  static char buf[1 << 20];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
    if ((rc = objstore_writer_write(w, buf, n)) != KD_OK) {
      objstore_writer_abort(w);
      return rc;
    }
  uint64_t size = objstore_writer_size(w);
  const char *hold = getenv("OBJSTORE_E2E_HOLD_MS");
  if (hold) {
    printf("holding %llu\n", (unsigned long long)size);
    fflush(stdout);
    kd_sleep_ms(atol(hold), NULL);
  }
  if (abort_it) {
    objstore_writer_abort(w);
    printf("aborted after %llu\n", (unsigned long long)size);
    return KD_OK;
  }
  if ((rc = objstore_writer_commit(w)) != KD_OK) return rc;
  printf("%llu\n", (unsigned long long)size);
  return KD_OK;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: objstore-e2e BSL.json CREDS|- VERB [ARGS]\n");
    return 2;
  }
  kd_log_setup(KD_LOG_WARN, false);
  json_error_t jerr;
  json_t *bsl = json_load_file(argv[1], 0, &jerr);
  if (!bsl) {
    fprintf(stderr, "objstore-e2e: %s: %s\n", argv[1], jerr.text);
    return 1;
  }
  char *cred = NULL;
  size_t cred_len = 0;
  kd_rc rc;
  if (strcmp(argv[2], "-") != 0 && (rc = kd_read_file(argv[2], 1 << 20, &cred, &cred_len)) != KD_OK) return die(rc);
  objstore *s;
  rc = objstore_open_bsl(bsl, cred, cred_len, &s);
  json_decref(bsl);
  free(cred);
  if (rc != KD_OK) return die(rc);
  if (strcmp(argv[3], "guarded") == 0 && argc > 4) { /* the rest with a guard that always refuses */
    objstore_set_guard(s, refuse, NULL);
    argv++;
    argc--;
  }
  const char *verb = argv[3], *arg = argc > 4 ? argv[4] : NULL;
  if (strcmp(verb, "check") == 0) {
    rc = objstore_check(s);
  } else if (strcmp(verb, "describe") == 0) {
    printf("%s\n", objstore_describe(s));
  } else if ((strcmp(verb, "put") == 0 || strcmp(verb, "put-new") == 0) && arg) {
    kd_buf b = KD_BUF_INIT(1u << 30);
    static char buf[1 << 16];
    size_t n;
    rc = kd_buf_add(&b, "", 0);
    while (rc == KD_OK && (n = fread(buf, 1, sizeof buf, stdin)) > 0) rc = kd_buf_add(&b, buf, n);
    if (rc == KD_OK) rc = verb[3] ? objstore_put_new(s, arg, b.data, b.len) : objstore_put(s, arg, b.data, b.len);
    kd_buf_free(&b);
  } else if ((strcmp(verb, "writer") == 0 || strcmp(verb, "writer-abort") == 0) && arg) {
    rc = pump_writer(s, arg, strcmp(verb, "writer-abort") == 0);
  } else if (strcmp(verb, "get") == 0 && arg) {
    rc = objstore_get(s, arg, to_stdout, NULL);
  } else if (strcmp(verb, "head") == 0 && arg) {
    uint64_t size;
    if ((rc = objstore_head(s, arg, &size)) == KD_OK) printf("%llu\n", (unsigned long long)size);
  } else if (strcmp(verb, "delete") == 0 && arg) {
    rc = objstore_delete(s, arg);
  } else if (strcmp(verb, "list") == 0 && arg) {
    rc = objstore_list(s, arg, argc > 5 && strcmp(argv[5], "/") == 0 ? '/' : '\0', print_entry, NULL);
  } else if (strcmp(verb, "many") == 0 && arg && argc > 5) {
    struct many m = {s, arg, atoi(argv[5]), 0, 0};
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, many_worker, &m);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    rc = atomic_load(&m.failed) ? kd_fail(KD_ERR_IO, "some puts failed") : KD_OK;
  } else {
    fprintf(stderr, "objstore-e2e: unknown verb or missing argument: %s\n", verb);
    objstore_free(s);
    return 2;
  }
  fflush(stdout);
  objstore_free(s);
  return rc == KD_OK ? 0 : die(rc);
}
