/* test_metrics.c — the metrics registry: labelled series and their escaping, families dropped
 * and rebuilt by a collector at each render, the series cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
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

/* tried: the series cap reached, then more series asked for. Asserted: metrics_room says how
 * many more fit (0 at the cap); every refused update is counted in
 * kcmdr_metrics_series_dropped_total, which is rendered even before anything was dropped. */
static void room_and_dropped_counted(void **state) {
  (void)state;
  metrics *m;
  assert_int_equal(metrics_new(&m), KD_OK);
  char *t = metrics_render(m);
  assert_non_null(strstr(t, "# TYPE kcmdr_metrics_series_dropped_total counter\nkcmdr_metrics_series_dropped_total 0\n"));
  free(t);
  long room = metrics_room(m);
  assert_int_equal(room, METRICS_MAX_SERIES - 1); /* the dropped counter's own series */
  char v[32];
  for (long i = 0; i < room - 2; i++) {
    snprintf(v, sizeof v, "%ld", i);
    metrics_gauge_set(m, "g", "h", "k", v, 1);
  }
  assert_int_equal(metrics_room(m), 2);
  for (int i = 0; i < 5; i++) {
    snprintf(v, sizeof v, "x%d", i);
    metrics_gauge_set(m, "g", "h", "k", v, 1);
  }
  assert_int_equal(metrics_room(m), 0);
  metrics_gauge_set(m, "g", "h", "k", "x0", 2); /* an existing series: not refused */
  t = metrics_render(m);
  assert_non_null(strstr(t, "kcmdr_metrics_series_dropped_total 3\n"));
  assert_non_null(strstr(t, "g{k=\"x0\"} 2\n"));
  free(t);
  metrics_free(m);
}

/* tried: counters of ManagementBackups "a", "a,b", "ab" and one whose phase label's value
 * holds the text managementbackup="a" (escaped), then the label managementbackup="a" dropped.
 * Asserted: exactly a's series go (both phases), the others stay, and their room comes back. */
static void drop_label_exactly(void **state) {
  (void)state;
  metrics *m;
  assert_int_equal(metrics_new(&m), KD_OK);
  const char *a1[] = {"managementbackup", "a", "phase", "Completed", NULL};
  const char *a2[] = {"managementbackup", "a", "phase", "Failed", NULL};
  const char *b[] = {"managementbackup", "a,b", "phase", "Completed", NULL};
  const char *c[] = {"managementbackup", "ab", "phase", "Completed", NULL};
  const char *d[] = {"phase", "x\",managementbackup=\"a\"", "managementbackup", "d", NULL};
  const char *const *all[] = {a1, a2, b, c, d};
  for (size_t i = 0; i < 5; i++) metrics_counter_addv(m, "f_total", "h", all[i], 1);
  long room = metrics_room(m);
  metrics_drop_label(m, "f_total", "managementbackup", "a");
  assert_int_equal(metrics_room(m), room + 2);
  char *t = metrics_render(m);
  assert_null(strstr(t, "f_total{managementbackup=\"a\","));
  assert_non_null(strstr(t, "f_total{managementbackup=\"a,b\",phase=\"Completed\"} 1\n"));
  assert_non_null(strstr(t, "f_total{managementbackup=\"ab\",phase=\"Completed\"} 1\n"));
  assert_non_null(strstr(t, "managementbackup=\"d\"} 1\n"));
  free(t);
  metrics_free(m);
}

static int64_t utc(const char *iso) {
  time_t t;
  assert_int_equal(kd_time_parse(iso, &t), KD_OK);
  return (int64_t)t;
}

static int64_t gap(const char *spec, const char *iso) {
  cron_schedule *cs;
  assert_int_equal(cron_parse(spec, &cs), KD_OK);
  int64_t g = metrics_schedule_gap(cs, utc(iso));
  cron_free(cs);
  return g;
}

/* tried: the gap around a time for irregular schedules, where the gap between the next two
 * activations (what kcmdr_schedule_interval_seconds was before) is shorter than the one the
 * last success sits in, so KcmdrNoRecentBackup fired on a Saturday for a weekday schedule and
 * late in a 31-day month for a monthly one. Asserted: weekdays at 9: 72 h from a Friday success
 * and from the weekend, 24 h from a Tuesday; monthly: 31 days in January (28 from now would be
 * February's), 28 in February; an activation exactly at t starts the gap; CRON_TZ shifts it;
 * "@every 10m": 10 min; a yearly Feb 29 schedule from a non-leap year: the 4-year gap (the
 * search goes back far enough); a schedule that never fires: 0. */
static void schedule_gap_around_a_time(void **state) {
  (void)state;
  const int64_t h = 3600, d = 86400;
  assert_int_equal(gap("0 9 * * 1-5", "2026-12-04T09:05:00Z"), 72 * h); /* Friday */
  assert_int_equal(gap("0 9 * * 1-5", "2026-12-05T12:00:00Z"), 72 * h); /* Saturday */
  assert_int_equal(gap("0 9 * * 1-5", "2026-12-08T09:05:00Z"), 24 * h); /* Tuesday */
  assert_int_equal(gap("0 9 * * 1-5", "2026-12-07T09:00:00Z"), 24 * h); /* Monday, on the slot */
  assert_int_equal(gap("0 0 1 * *", "2027-01-20T00:00:00Z"), 31 * d);
  assert_int_equal(gap("0 0 1 * *", "2027-02-01T00:10:00Z"), 28 * d);
  assert_int_equal(gap("CRON_TZ=Europe/Berlin 0 9 * * 1-5", "2026-12-04T08:30:00Z"), 72 * h); /* 09:30 CET */
  assert_int_equal(gap("CRON_TZ=Europe/Berlin 0 9 * * 1-5", "2026-12-04T07:30:00Z"), 24 * h); /* 08:30 CET */
  assert_int_equal(gap("@every 10m", "2026-12-04T09:05:00Z"), 600);
  assert_int_equal(gap("0 0 29 2 *", "2029-03-01T00:00:00Z"), utc("2032-02-29T00:00:00Z") - utc("2028-02-29T00:00:00Z"));
  assert_int_equal(gap("0 0 30 2 *", "2026-12-04T09:05:00Z"), 0);
}

int test_metrics(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(labels_escaped_in_order),
      cmocka_unit_test(collector_rebuilds_state),
      cmocka_unit_test(series_cap_and_reset),
      cmocka_unit_test(room_and_dropped_counted),
      cmocka_unit_test(drop_label_exactly),
      cmocka_unit_test(schedule_gap_around_a_time),
  };
  return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
