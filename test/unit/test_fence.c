/* test_fence.c — leadership terms (fence.c) and the phase lists status writes expect (vstatus.c). */
#include <stdatomic.h>
#include <string.h>

#include "fence.h"
#include "tests.h"
#include "vstatus.h"

/* tried: a job's fence across the ways a term ends: the lease expiring while the process was
 * stopped, the lease lost and won back between two looks (a new term), no leader election */
static void fence_holds_only_in_its_own_term(void **state) {
  (void)state;
  _Atomic uint64_t term = 0;
  _Atomic int64_t valid = 0;
  struct fence_src src = {&term, &valid};
  struct fence never = fence_take(&src); /* not leading yet */
  assert_false(fence_held(&never));
  atomic_store(&term, 1);
  atomic_store(&valid, kd_now_ms() + 60000);
  struct fence f = fence_take(&src);
  assert_true(fence_held(&f));
  assert_int_equal(fence_check(&f, "writing x"), KD_OK);
  assert_false(fence_held(&never)); /* a fence taken before leading never holds later */
  atomic_store(&valid, kd_now_ms() - 1); /* the lease ran out (the process was stopped) */
  assert_false(fence_held(&f));
  assert_int_equal(fence_check(&f, "writing x"), KD_ERR_CANCELLED);
  assert_non_null(strstr(kd_errmsg(), "writing x"));
  assert_non_null(strstr(kd_errmsg(), "no longer the leader"));
  atomic_store(&term, 2); /* lost and won back: valid again, but another term */
  atomic_store(&valid, kd_now_ms() + 60000);
  assert_false(fence_held(&f));
  assert_int_equal(fence_guard(&f), KD_ERR_CANCELLED);
  struct fence g = fence_take(&src);
  assert_true(fence_held(&g));
  assert_int_equal(fence_guard(&g), KD_OK);
  /* without leader election every fence holds, NULL too */
  struct fence none = fence_take(NULL);
  assert_true(fence_held(&none));
  assert_true(fence_held(NULL));
  assert_int_equal(fence_check(NULL, "x"), KD_OK);
}

static void phase_lists(void **state) {
  (void)state;
  assert_true(vstatus_phase_in(NULL, vstatus_new));
  assert_true(vstatus_phase_in("", vstatus_new));
  assert_true(vstatus_phase_in("New", vstatus_new));
  assert_false(vstatus_phase_in("InProgress", vstatus_new));
  assert_false(vstatus_phase_in("new", vstatus_new)); /* phases are case-sensitive, as in Velero */
  assert_true(vstatus_phase_in("InProgress", vstatus_in_progress));
  assert_false(vstatus_phase_in(NULL, vstatus_in_progress));
  assert_false(vstatus_phase_in("Completed", vstatus_in_progress));
  assert_true(vstatus_phase_in("anything", NULL)); /* no expectation */
}

int test_fence(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fence_holds_only_in_its_own_term),
      cmocka_unit_test(phase_lists),
  };
  return cmocka_run_group_tests_name("fence", tests, NULL, NULL);
}
