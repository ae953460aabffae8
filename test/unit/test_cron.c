/* test_cron.c — cron with robfig/cron/v3 semantics, checked against robfig's own published test
 * tables (spec_test.go TestNext/TestActivation, parser_test.go; 6-field specs whose seconds are 0
 * written as the 5-field standard form), DST in two zones, and the TZif reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "tests.h"
#include "tz.h"

static int64_t T(const char *s) {
  time_t t;
  if (kd_time_parse(s, &t) != KD_OK) fail_msg("bad test time %s", s);
  return (int64_t)t;
}

static void expect_next(const char *now, const char *spec, const char *want) {
  cron_schedule *s = NULL;
  if (cron_parse(spec, &s) != KD_OK) fail_msg("parse '%s': %s", spec, kd_errmsg());
  int64_t got = cron_next(s, T(now));
  int64_t exp = want[0] ? T(want) : 0;
  if (got != exp) {
    char g[21] = "none";
    if (got) kd_time_format((time_t)got, g);
    fail_msg("next('%s', %s): got %s, want %s", spec, now, g, want[0] ? want : "none");
  }
  cron_free(s);
}

static void robfig_next_table(void **state) {
  (void)state;
  static const char *runs[][3] = {
      /* simple cases */
      {"2012-07-09T14:45:00Z", "0/15 * * * *", "2012-07-09T15:00:00Z"},
      {"2012-07-09T14:59:00Z", "0/15 * * * *", "2012-07-09T15:00:00Z"},
      {"2012-07-09T14:59:59Z", "0/15 * * * *", "2012-07-09T15:00:00Z"},
      /* wrap around hours and days */
      {"2012-07-09T15:45:00Z", "20-35/15 * * * *", "2012-07-09T16:20:00Z"},
      {"2012-07-09T23:46:00Z", "*/15 * * * *", "2012-07-10T00:00:00Z"},
      {"2012-07-09T23:45:00Z", "20-35/15 * * * *", "2012-07-10T00:20:00Z"},
      /* wrap around months */
      {"2012-07-09T23:35:00Z", "0 0 9 Apr-Oct ?", "2012-08-09T00:00:00Z"},
      {"2012-07-09T23:35:00Z", "0 0 */5 Apr,Aug,Oct Mon", "2012-08-01T00:00:00Z"},
      {"2012-07-09T23:35:00Z", "0 0 */5 Oct Mon", "2012-10-01T00:00:00Z"},
      /* wrap around years */
      {"2012-07-09T23:35:00Z", "0 0 * Feb Mon", "2013-02-04T00:00:00Z"},
      {"2012-07-09T23:35:00Z", "0 0 * Feb Mon/2", "2013-02-01T00:00:00Z"},
      /* wrap around minute, hour, day, month and year */
      {"2012-12-31T23:59:45Z", "* * * * *", "2013-01-01T00:00:00Z"},
      /* leap year */
      {"2012-07-09T23:35:00Z", "0 0 29 Feb ?", "2016-02-29T00:00:00Z"},
      /* DST 2am EST (-5) -> 3am EDT (-4) */
      {"2012-03-11T00:00:00-05:00", "TZ=America/New_York 30 2 11 Mar ?", "2013-03-11T02:30:00-04:00"},
      {"2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T01:00:00-05:00"},
      {"2012-03-11T01:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T03:00:00-04:00"},
      {"2012-03-11T03:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T04:00:00-04:00"},
      {"2012-03-11T04:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T05:00:00-04:00"},
      {"2012-03-11T00:00:00-05:00", "CRON_TZ=America/New_York 0 * * * ?", "2012-03-11T01:00:00-05:00"},
      {"2012-03-11T01:00:00-05:00", "CRON_TZ=America/New_York 0 * * * ?", "2012-03-11T03:00:00-04:00"},
      {"2012-03-11T03:00:00-04:00", "CRON_TZ=America/New_York 0 * * * ?", "2012-03-11T04:00:00-04:00"},
      {"2012-03-11T04:00:00-04:00", "CRON_TZ=America/New_York 0 * * * ?", "2012-03-11T05:00:00-04:00"},
      {"2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-03-11T01:00:00-05:00"},
      {"2012-03-11T01:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-03-12T01:00:00-04:00"},
      {"2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 2 * * ?", "2012-03-12T02:00:00-04:00"},
      /* DST 2am EDT (-4) -> 1am EST (-5) */
      {"2012-11-04T00:00:00-04:00", "TZ=America/New_York 30 2 04 Nov ?", "2012-11-04T02:30:00-05:00"},
      {"2012-11-04T01:45:00-04:00", "TZ=America/New_York 30 1 04 Nov ?", "2012-11-04T01:30:00-05:00"},
      {"2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-04:00"},
      {"2012-11-04T01:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-05:00"},
      {"2012-11-04T01:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T02:00:00-05:00"},
      {"2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-04:00"},
      {"2012-11-04T01:00:00-04:00", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-05:00"},
      {"2012-11-04T01:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-11-05T01:00:00-05:00"},
      {"2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 2 * * ?", "2012-11-04T02:00:00-05:00"},
      {"2012-11-04T02:00:00-05:00", "TZ=America/New_York 0 2 * * ?", "2012-11-05T02:00:00-05:00"},
      {"2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 3 * * ?", "2012-11-04T03:00:00-05:00"},
      {"2012-11-04T03:00:00-05:00", "TZ=America/New_York 0 3 * * ?", "2012-11-05T03:00:00-05:00"},
      /* unsatisfiable */
      {"2012-07-09T23:35:00Z", "0 0 30 Feb ?", ""},
      {"2012-07-09T23:35:00Z", "0 0 31 Apr ?", ""},
      /* monthly job */
      {"2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 3 3 * ?", "2012-12-03T03:00:00-05:00"},
      /* DST making midnight invalid (robfig issue 157) */
      {"2018-10-17T05:00:00-04:00", "TZ=America/Sao_Paulo 0 9 10 * ?", "2018-11-10T06:00:00-05:00"},
      {"2018-02-14T05:00:00-05:00", "TZ=America/Sao_Paulo 0 9 22 * ?", "2018-02-22T07:00:00-05:00"},
      /* parser_test.go TestStandardSpecSchedule */
      {"2025-01-01T18:00:00Z", "5 * * * *", "2025-01-01T18:05:00Z"},
      {"2025-01-01T18:02:00Z", "@every 5m", "2025-01-01T18:07:00Z"},
  };
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) expect_next(runs[i][0], runs[i][1], runs[i][2]);
}

static void robfig_activation_table(void **state) {
  (void)state;
  static const struct {
    const char *time, *spec;
    bool want;
  } tests[] = {
      {"2012-07-09T15:00:00Z", "0/15 * * * *", true},   {"2012-07-09T15:45:00Z", "0/15 * * * *", true},
      {"2012-07-09T15:40:00Z", "0/15 * * * *", false},  {"2012-07-09T15:05:00Z", "5/15 * * * *", true},
      {"2012-07-09T15:20:00Z", "5/15 * * * *", true},   {"2012-07-09T15:50:00Z", "5/15 * * * *", true},
      {"2012-07-15T15:00:00Z", "0/15 * * Jul *", true}, {"2012-07-15T15:00:00Z", "0/15 * * Jun *", false},
      {"2012-07-15T08:30:00Z", "30 08 ? Jul Sun", true}, {"2012-07-15T08:30:00Z", "30 08 15 Jul ?", true},
      {"2012-07-16T08:30:00Z", "30 08 ? Jul Sun", false}, {"2012-07-16T08:30:00Z", "30 08 15 Jul ?", false},
      {"2012-07-09T15:00:00Z", "@hourly", true},        {"2012-07-09T15:04:00Z", "@hourly", false},
      {"2012-07-09T15:00:00Z", "@daily", false},        {"2012-07-09T00:00:00Z", "@daily", true},
      {"2012-07-09T00:00:00Z", "@weekly", false},       {"2012-07-08T00:00:00Z", "@weekly", true},
      {"2012-07-08T01:00:00Z", "@weekly", false},       {"2012-07-08T00:00:00Z", "@monthly", false},
      {"2012-07-01T00:00:00Z", "@monthly", true},       {"2012-01-01T00:00:00Z", "@yearly", true},
      {"2012-01-01T00:00:00Z", "@annually", true},      {"2012-01-02T00:00:00Z", "@midnight", true},
      /* both day fields restricted: either matches (the OR rule) */
      {"2012-07-15T00:00:00Z", "* * 1,15 * Sun", true}, {"2012-06-15T00:00:00Z", "* * 1,15 * Sun", true},
      {"2012-08-01T00:00:00Z", "* * 1,15 * Sun", true},
      /* one is a star: both must match */
      {"2012-07-15T00:00:00Z", "* * * * Mon", false},   {"2012-07-09T00:00:00Z", "* * 1,15 * *", false},
      {"2012-07-15T00:00:00Z", "* * 1,15 * *", true},   {"2012-07-15T00:00:00Z", "* * */2 * Sun", true},
  };
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    cron_schedule *s = NULL;
    if (cron_parse(tests[i].spec, &s) != KD_OK) fail_msg("parse '%s': %s", tests[i].spec, kd_errmsg());
    int64_t t = T(tests[i].time);
    bool got = cron_next(s, t - 1) == t;
    if (got != tests[i].want) fail_msg("'%s' at %s: activation %d, want %d", tests[i].spec, tests[i].time, got, tests[i].want);
    cron_free(s);
  }
}

static void dst_europe_berlin(void **state) {
  (void)state;
  /* spring forward 2025-03-30 02:00 CET -> 03:00 CEST: 02:30 does not exist that day */
  expect_next("2025-03-30T00:00:00+01:00", "CRON_TZ=Europe/Berlin 30 2 * * *", "2025-03-31T02:30:00+02:00");
  expect_next("2025-03-30T00:00:00+01:00", "CRON_TZ=Europe/Berlin 0 * * * *", "2025-03-30T01:00:00+01:00");
  expect_next("2025-03-30T01:00:00+01:00", "CRON_TZ=Europe/Berlin 0 * * * *", "2025-03-30T03:00:00+02:00");
  /* fall back 2025-10-26 03:00 CEST -> 02:00 CET: 02:30 happens twice, and so does the job */
  expect_next("2025-10-26T00:00:00+02:00", "CRON_TZ=Europe/Berlin 30 2 * * *", "2025-10-26T02:30:00+02:00");
  expect_next("2025-10-26T02:30:00+02:00", "CRON_TZ=Europe/Berlin 30 2 * * *", "2025-10-26T02:30:00+01:00");
  expect_next("2025-10-26T02:30:00+01:00", "CRON_TZ=Europe/Berlin 30 2 * * *", "2025-10-27T02:30:00+01:00");
  /* past the file's last transition (2037) the footer rule CET-1CEST,M3.5.0,M10.5.0/3 applies */
  expect_next("2100-07-01T00:00:00Z", "TZ=Europe/Berlin 0 12 * * *", "2100-07-01T12:00:00+02:00");
  expect_next("2100-01-01T00:00:00Z", "TZ=Europe/Berlin 0 12 * * *", "2100-01-01T12:00:00+01:00");
  /* a zone without DST and a half-hour zone */
  expect_next("2025-06-01T00:00:00Z", "CRON_TZ=Asia/Tokyo 0 9 * * *", "2025-06-02T09:00:00+09:00");
  expect_next("2025-06-01T00:00:00Z", "CRON_TZ=Asia/Kolkata 0 9 * * *", "2025-06-01T09:00:00+05:30");
}

static void the_seed_schedule(void **state) {
  (void)state;
  // the seed: every 6 hours after a backup at 2025-01-17T18:00:12Z -> next attempt 2025-01-18T00:00:00Z
  expect_next("2025-01-17T18:00:12Z", "0 */6 * * *", "2025-01-18T00:00:00Z");
  expect_next("2025-01-17T18:00:12Z", "@every 5s", "2025-01-17T18:00:17Z");
  expect_next("2025-01-17T18:00:12Z", "@every 1h30m", "2025-01-17T19:30:12Z");
  expect_next("2025-01-17T18:00:12Z", "@every 500ms", "2025-01-17T18:00:13Z"); /* at least a second */
  expect_next("2025-01-17T18:00:12Z", "  0 0 * * *  ", "2025-01-18T00:00:00Z");
}

static void parse_errors(void **state) {
  (void)state;
  static const char *bad[][2] = {
      {"xyz", "expected exactly 5 fields"},
      {"60 0 * * *", "end of range (60) above maximum (59): 60"},
      {"0 60 * * *", "end of range (60) above maximum (23): 60"},
      {"0 0 * * XYZ", "failed to parse int from XYZ"},
      {"5 j * * *", "failed to parse int from"},
      {"* * * *", "expected exactly 5 fields, found 4"},
      {"* * * * * *", "expected exactly 5 fields, found 6"},
      {"0 0 0 * *", "beginning of range (0) below minimum (1): 0"},
      {"0 0 * 13 *", "end of range (13) above maximum (12): 13"},
      {"0 0 * * 7", "end of range (7) above maximum (6): 7"},
      {"5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"},
      {"1-2-3 * * * *", "too many hyphens: 1-2-3"},
      {"*/2/3 * * * *", "too many slashes: */2/3"},
      {"TZ=America/New_York 15/0 * * * *", "step of range should be a positive number: 15/0"},
      {"-1 * * * *", "failed to parse int from"},
      {"@unknown", "unrecognized descriptor: @unknown"},
      {"@every", "unrecognized descriptor: @every"},
      {"@every 5x", "failed to parse duration @every 5x"},
      {"@every ", "failed to parse duration"},
      {"", "empty spec string"},
      {"CRON_TZ=Mars/Olympus 0 * * * *", "provided bad location Mars/Olympus"},
      {"TZ=../../etc/passwd 0 * * * *", "invalid time zone name"},
      {"TZ=/etc/localtime 0 * * * *", "invalid time zone name"},
      {"CRON_TZ=UTC", "provided bad location"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cron_schedule *s = NULL;
    /* tried: each malformed spec above: an error with robfig's wording, nothing allocated */
    kd_rc rc = cron_parse(bad[i][0], &s);
    if (rc == KD_OK) fail_msg("'%s' parsed but should not", bad[i][0]);
    assert_null(s);
    if (!strstr(kd_errmsg(), bad[i][1])) fail_msg("'%s': message '%s' lacks '%s'", bad[i][0], kd_errmsg(), bad[i][1]);
  }
}

static void go_durations(void **state) {
  (void)state;
  int64_t ns;
  assert_int_equal(cron_parse_go_duration("1h30m", &ns), KD_OK);
  assert_true(ns == 5400LL * 1000000000LL);
  assert_int_equal(cron_parse_go_duration("1.5h", &ns), KD_OK);
  assert_true(ns == 5400LL * 1000000000LL);
  assert_int_equal(cron_parse_go_duration("300ms", &ns), KD_OK);
  assert_true(ns == 300000000LL);
  assert_int_equal(cron_parse_go_duration("2h45m10.5s", &ns), KD_OK);
  assert_true(ns == 9910500000000LL);
  assert_int_equal(cron_parse_go_duration("0", &ns), KD_OK);
  assert_true(ns == 0);
  assert_int_equal(cron_parse_go_duration("720h0m0s", &ns), KD_OK);
  assert_true(ns == 2592000LL * 1000000000LL);
  assert_int_equal(cron_parse_go_duration("5", &ns), KD_ERR_INVALID);
  assert_int_equal(cron_parse_go_duration("5d", &ns), KD_ERR_INVALID);
  assert_int_equal(cron_parse_go_duration(".", &ns), KD_ERR_INVALID);
  assert_int_equal(cron_parse_go_duration("", &ns), KD_ERR_INVALID);
}

static void tzif_reader(void **state) {
  (void)state;
  tz_zone *z = NULL;
  assert_int_equal(tz_load("America/New_York", &z), KD_OK);
  assert_int_equal(tz_lookup(z, T("2012-01-01T00:00:00Z"), NULL, NULL), -5 * 3600);
  assert_int_equal(tz_lookup(z, T("2012-07-01T00:00:00Z"), NULL, NULL), -4 * 3600);
  assert_int_equal(tz_lookup(z, T("2200-07-01T00:00:00Z"), NULL, NULL), -4 * 3600); /* footer rule */
  struct tz_civil c;
  tz_civil(z, T("2012-11-04T05:30:00Z"), &c);
  assert_true(c.year == 2012 && c.month == 11 && c.day == 4 && c.hour == 1 && c.minute == 30 && c.weekday == 0);
  /* a local time in the spring gap resolves as Go's time.Date does: it applies the offset in force
   * after the gap (EDT) to 02:30, which lands before the gap: 01:30 EST */
  assert_true(tz_date(z, 2012, 3, 11, 2, 30, 0) == T("2012-03-11T01:30:00-05:00"));
  /* in the autumn overlap Go keeps the first (daylight) offset */
  assert_true(tz_date(z, 2012, 11, 4, 1, 30, 0) == T("2012-11-04T01:30:00-04:00"));
  /* normalisation: month 13, day 0 */
  assert_true(tz_date(NULL, 2012, 13, 1, 0, 0, 0) == T("2013-01-01T00:00:00Z"));
  assert_true(tz_date(NULL, 2012, 3, 0, 0, 0, 0) == T("2012-02-29T00:00:00Z"));
  tz_free(z);
  /* tried: not TZif, truncated TZif, unknown zone */
  assert_int_equal(tz_parse((const unsigned char *)"hello", 5, "x", &z), KD_ERR_PARSE);
  char *data;
  size_t len;
  assert_int_equal(kd_read_file("/usr/share/zoneinfo/Europe/Berlin", TZ_MAX_FILE, &data, &len), KD_OK);
  for (size_t cut = 0; cut < len; cut += 97) {
    if (tz_parse((unsigned char *)data, cut, "cut", &z) == KD_OK) tz_free(z); /* must not crash or leak */
  }
  data[4] = '2';
  data[33] = 0x7f; /* absurd transition count */
  assert_int_equal(tz_parse((unsigned char *)data, len, "bad", &z), KD_ERR_PARSE);
  free(data);
  assert_int_equal(tz_load("Nowhere/Atlantis", &z), KD_ERR_NOTFOUND);
}

int test_cron(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(robfig_next_table), cmocka_unit_test(robfig_activation_table),
      cmocka_unit_test(dst_europe_berlin), cmocka_unit_test(the_seed_schedule),
      cmocka_unit_test(parse_errors),      cmocka_unit_test(go_durations),
      cmocka_unit_test(tzif_reader),
  };
  return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
