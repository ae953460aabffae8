/* test_metrics.c — the metrics registry: labelled series and their escaping, families dropped
 * and rebuilt by a collector at each render, the series cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tests.h"

/* tried: two labels, one value with a quote, a backslash and a newline. Asserted: the series
 * line as the exposition format wants it, labels in the order given. */
static void labels_escaped_in_order(void **state) {
  (void)state;
  metrics *m;
  assert_int_equal(metrics_new(&m), KD_OK);
  const char *lv[] = {"managementbackup", "a\"b\\c\nd", "phase", "Failed", NULL};
  metrics_counter_addv(m, "x_total", "help", lv, 1);
  metrics_counter_addv(m, "x_total", "help", lv, 2);
  metrics_counter_set(m, "req_total", "requests", 41);
  metrics_counter_set(m, "req_total", "requests", 42);
  char *t = metrics_render(m);
  assert_non_null(strstr(t, "# TYPE x_total counter\nx_total{managementbackup=\"a\\\"b\\\\c\\nd\",phase=\"Failed\"} 3\n"));
  assert_non_null(strstr(t, "# TYPE req_total counter\nreq_total 42\n"));
  free(t);
  metrics_free(m);
}

struct coll {
  int calls;
  const char *present;
};

static void collect(metrics *m, void *ud) {
  struct coll *c = ud;
  c->calls++;
  metrics_reset(m, "state");
  if (c->present) metrics_gauge_set(m, "state", "state help", "location", c->present, 1);
}

/* tried: a collector that shows location "a", then "b", then nothing. Asserted: each render
 * runs it once; a location it no longer reports leaves no series (reset drops the family). */
static void collector_rebuilds_state(void **state) {
  (void)state;
  metrics *m;
  struct coll c = {0, "a"};
  assert_int_equal(metrics_new(&m), KD_OK);
  metrics_set_collector(m, collect, &c);
  char *t = metrics_render(m);
  assert_non_null(strstr(t, "state{location=\"a\"} 1\n"));
  free(t);
  c.present = "b";
  t = metrics_render(m);
  assert_null(strstr(t, "location=\"a\""));
  assert_non_null(strstr(t, "state{location=\"b\"} 1\n"));
  free(t);
  c.present = NULL;
  t = metrics_render(m);
  assert_null(strstr(t, "state"));
  free(t);
  assert_int_equal(c.calls, 3);
  metrics_free(m);
}

/* tried: more distinct series than METRICS_MAX_SERIES, with a family reset in between.
 * Asserted: the cap holds, and a reset gives its series back to the budget. */
static void series_cap_and_reset(void **state) {
  (void)state;
  metrics *m;
  assert_int_equal(metrics_new(&m), KD_OK);
  char v[32];
  for (int i = 0; i < METRICS_MAX_SERIES + 5; i++) {
    snprintf(v, sizeof v, "%d", i);
    metrics_gauge_set(m, "g", "h", "k", v, 1);
  }
  metrics_gauge_set(m, "other", "h", NULL, NULL, 7);
  char *t = metrics_render(m);
  assert_null(strstr(t, "other 7"));
  free(t);
  metrics_reset(m, "g");
  metrics_gauge_set(m, "other", "h", NULL, NULL, 7);
  t = metrics_render(m);
  assert_non_null(strstr(t, "other 7\n"));
  assert_null(strstr(t, "g{"));
  free(t);
  metrics_free(m);
}

int test_metrics(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(labels_escaped_in_order),
      cmocka_unit_test(collector_rebuilds_state),
      cmocka_unit_test(series_cap_and_reset),
  };
  return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
