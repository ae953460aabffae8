/* main.c — the unit-test runner: one list of groups, each a cmocka group of named cases. */
#include <stdio.h>

#include "tests.h"

int main(void) {
  /* one group per line: helpers add theirs without touching the others */
  int (*groups[])(void) = {
      test_util,
      test_yamljson,
      test_kubeconfig,
      test_http,
      test_kube,
      test_cron,
      test_mgmtbackup,
      test_jsonscan,
      test_velero,
      test_archive,
      test_sigv4,
      test_objstore,
      test_backup,
      test_joblog,
      test_verify,
      test_restore,
      test_jsonpatch,
      test_resmod,
      test_cli,
      test_fence,
      test_retention,
      test_crypt,
      test_metrics,
      test_owner,
      test_preview,
      test_region,
  };
  int failed = 0;
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) failed += groups[i]();
  printf("unit tests: %d failed\n", failed);
  return failed ? 1 : 0;
}
