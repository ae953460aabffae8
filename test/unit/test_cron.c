/* test_cron.c — cron with robfig/cron/v3 semantics, checked against robfig's own published test
 * tables (spec_test.go TestNext/TestActivation, parser_test.go; 6-field specs whose seconds are 0
 * written as the 5-field standard form), DST in two zones, and the TZif reader. The tables for
 * overflow, Go durations and parser quirks hold what robfig v3.0.1 and Go's time.ParseDuration
 * answered for the same input (test/diff/t_robfig.sh compares thousands more against them). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
      {"CRON_TZ=Mars/Olympus 0 * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"},
      {"TZ=../../etc/passwd 0 * * * *", "provided bad location ../../etc/passwd: time: invalid location name"},
      {"TZ=/etc/localtime 0 * * * *", "provided bad location /etc/localtime: time: invalid location name"},
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
  /* tried: the file cut at every length. Before the footer ("\nCET-1CEST,...\n") starts, the
   * 64-bit data is incomplete and the parse must fail as PARSE; from there on the data is whole
   * and the zone must answer as the full file does up to its last transition. */
  tz_zone *full = NULL;
  assert_int_equal(tz_parse((unsigned char *)data, len, "full", &full), KD_OK);
  assert_true(len > 2 && data[len - 1] == '\n');
  size_t footer = (size_t)((char *)memrchr(data, '\n', len - 1) - data);
  size_t parsed = 0;
  for (size_t cut = 0; cut < len; cut++) {
    z = NULL;
    kd_rc rc = tz_parse((unsigned char *)data, cut, "cut", &z);
    if (cut < footer) {
      if (rc != KD_ERR_PARSE) fail_msg("TZif cut at %zu of %zu: %s, want a parse error", cut, len, kd_rc_name(rc));
      assert_null(z);
      continue;
    }
    if (rc != KD_OK) fail_msg("TZif cut at %zu (footer at %zu): %s", cut, footer, kd_errmsg());
    int64_t when[] = {T("1900-01-01T00:00:00Z"), T("1945-05-24T12:00:00Z"), T("2012-07-01T00:00:00Z"),
                      T("2025-10-26T00:59:59Z"), T("2025-10-26T01:00:00Z")};
    for (size_t i = 0; i < KD_ARRAY_LEN(when); i++)
      assert_int_equal(tz_lookup(z, when[i], NULL, NULL), tz_lookup(full, when[i], NULL, NULL));
    tz_free(z);
    parsed++;
  }
  assert_int_equal(parsed, len - footer);
  tz_free(full);
  data[4] = '2';
  data[33] = 0x7f; /* absurd transition count */
  assert_int_equal(tz_parse((unsigned char *)data, len, "bad", &z), KD_ERR_PARSE);
  free(data);
  assert_int_equal(tz_load("Nowhere/Atlantis", &z), KD_ERR_NOTFOUND);
}


/* Parse spec (len bytes) and expect failure with exactly robfig's message, or success when want
 * is NULL. */
static void expect_parse(const char *spec, size_t len, const char *want) {
  cron_schedule *s = NULL;
  kd_rc rc = cron_parse_n(spec, len, &s);
  if (!want) {
    if (rc != KD_OK) fail_msg("'%s' rejected: %s; robfig accepts it", spec, kd_errmsg());
    cron_free(s);
    return;
  }
  if (rc == KD_OK) fail_msg("'%s' accepted; robfig says: %s", spec, want);
  assert_null(s);
  if (strcmp(kd_errmsg(), want) != 0) fail_msg("'%s':\n got  %s\n want %s", spec, kd_errmsg(), want);
}

#define P(lit, want) expect_parse(lit, sizeof(lit) - 1, want)

/* Issue 7 item 6: steps and numbers anywhere in int64 are Go ints. Tried: a step past INT_MAX
 * that overflowed a C int (UBSan abort, and wrong times without it), steps that only fit 64
 * bits, numbers that do not fit, and the messages robfig gives for them. */
static void huge_steps_and_numbers(void **state) {
  (void)state;
  expect_next("2025-01-01T00:00:00Z", "59/2147483647 * * * *", "2025-01-01T00:59:00Z");
  expect_next("2025-01-01T00:59:00Z", "59/2147483647 * * * *", "2025-01-01T01:59:00Z");
  expect_next("2025-01-01T00:30:00Z", "0/9223372036854775807 0/4294967296 * * *", "2025-01-02T00:00:00Z");
  expect_next("2025-01-01T00:00:00Z", "44-55/2147483647 1 * 8 WED", "2025-08-06T01:44:00Z");
  expect_next("2025-01-01T00:00:00Z", "*/4294967296 * * * *", "2025-01-01T01:00:00Z");
  expect_next("2025-01-01T00:00:00Z", "5/000000000000000000030 * * * *", "2025-01-01T00:05:00Z");
  P("5-10/18446744073709551615 * * * *", "failed to parse int from 18446744073709551615: strconv.Atoi: parsing "
                                         "\"18446744073709551615\": value out of range");
  P("9223372036854775808 * * * *",
    "failed to parse int from 9223372036854775808: strconv.Atoi: parsing \"9223372036854775808\": value out of range");
  P("9223372036854775807 * * * *", "end of range (9223372036854775807) above maximum (59): 9223372036854775807");
  P("-9223372036854775808 * * * *", "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax");
  P("* * * * */-5", "negative number (-5) not allowed: -5");
  P("* * * * */-9223372036854775808",
    "negative number (-9223372036854775808) not allowed: -9223372036854775808");
  P("* * 1/99999999999999999999x * *", "failed to parse int from 99999999999999999999x: strconv.Atoi: parsing "
                                       "\"99999999999999999999x\": value out of range");
  P("* * 1/1844674407370955161x * *",
    "failed to parse int from 1844674407370955161x: strconv.Atoi: parsing \"1844674407370955161x\": invalid syntax");
}

/* Issue 7 item 6: "@every" takes exactly what Go's time.ParseDuration takes. Tried: C's strtod
 * syntax that Go refuses (exponents, hex), signs, bare dots, every unit spelling, int64
 * overflow by one nanosecond either way, fractions past 19 digits, and stray bytes. */
static void go_duration_table(void **state) {
  (void)state;
  static const struct {
    const char *in;
    int64_t ns;
    const char *err; /* NULL: valid */
  } cases[] = {
      {"1e3s", 0, "time: unknown unit \"e\" in duration \"1e3s\""},
      {"0x10s", 0, "time: unknown unit \"x\" in duration \"0x10s\""},
      {"1h-1m", 0, "time: unknown unit \"h-\" in duration \"1h-1m\""},
      {"1.5h", 5400000000000, NULL},
      {".5s", 500000000, NULL},
      {"5.s", 5000000000, NULL},
      {"-1s", -1000000000, NULL},
      {"+1s", 1000000000, NULL},
      {"-.5s", -500000000, NULL},
      {"0", 0, NULL},
      {"-0", 0, NULL},
      {"+0", 0, NULL},
      {"1ns", 1, NULL},
      {"1us", 1000, NULL},
      {"1\xc2\xb5s", 1000, NULL}, /* U+00B5 micro sign */
      {"1\xce\xbcs", 1000, NULL}, /* U+03BC Greek mu */
      {"1ms", 1000000, NULL},
      {"1s", 1000000000, NULL},
      {"1m", 60000000000, NULL},
      {"1h", 3600000000000, NULL},
      {"9223372036854775807ns", INT64_MAX, NULL},
      {"9223372036854775808ns", 0, "time: invalid duration \"9223372036854775808ns\""},
      {"-9223372036854775808ns", INT64_MIN, NULL},
      {"-9223372036854775809ns", 0, "time: invalid duration \"-9223372036854775809ns\""},
      {"2562047h47m16.854775807s", INT64_MAX, NULL},
      {"2562047h47m16.854775808s", 0, "time: invalid duration \"2562047h47m16.854775808s\""},
      {"2562048h", 0, "time: invalid duration \"2562048h\""},
      {"15552000000000000000000ns", 0, "time: invalid duration \"15552000000000000000000ns\""},
      {"1.00000000000000000000001s", 1000000000, NULL},
      {"0.0000000000000000000001h", 0, NULL},
      {"1.9999999999999999999999999999h", 7200000000000, NULL},
      {"0.3333333333333333333h", 1200000000000, NULL},
      {"59.9999999999s", 59999999999, NULL},
      {"0.1ns", 0, NULL},
      {"", 0, "time: invalid duration \"\""},
      {"-", 0, "time: invalid duration \"-\""},
      {" 5s", 0, "time: invalid duration \" 5s\""},
      {"5s ", 0, "time: unknown unit \"s \" in duration \"5s \""},
      {".s", 0, "time: invalid duration \".s\""},
      {"1_000s", 0, "time: unknown unit \"_\" in duration \"1_000s\""},
      {"00", 0, "time: missing unit in duration \"00\""},
      {"5", 0, "time: missing unit in duration \"5\""},
      {"1.2.3s", 0, "time: missing unit in duration \"1.2.3s\""},
      {"1h 30m", 0, "time: unknown unit \"h \" in duration \"1h 30m\""},
      {"1d", 0, "time: unknown unit \"d\" in duration \"1d\""},
      {"1H", 0, "time: unknown unit \"H\" in duration \"1H\""},
      {"1\xc2\xb5", 0, "time: unknown unit \"\\xc2\\xb5\" in duration \"1\\xc2\\xb5\""},
      {"\xd9\xa1s", 0, "time: invalid duration \"\\xd9\\xa1s\""}, /* an Arabic-Indic digit */
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(cases); i++) {
    int64_t ns = -42;
    kd_rc rc = cron_parse_go_duration(cases[i].in, &ns);
    if (!cases[i].err) {
      if (rc != KD_OK) fail_msg("duration '%s': %s; Go accepts it", cases[i].in, kd_errmsg());
      if (ns != cases[i].ns) fail_msg("duration '%s': %lld ns, Go says %lld", cases[i].in, (long long)ns, (long long)cases[i].ns);
    } else {
      if (rc != KD_ERR_INVALID) fail_msg("duration '%s' accepted (%lld ns); Go: %s", cases[i].in, (long long)ns, cases[i].err);
      if (strcmp(kd_errmsg(), cases[i].err) != 0) fail_msg("duration '%s':\n got  %s\n want %s", cases[i].in, kd_errmsg(), cases[i].err);
    }
  }
  /* through the parser: robfig's wrapping, and Every's rounding (at least 1 s, whole seconds) */
  P("@every 1e3s", "failed to parse duration @every 1e3s: time: unknown unit \"e\" in duration \"1e3s\"");
  P("@every 0x10s", "failed to parse duration @every 0x10s: time: unknown unit \"x\" in duration \"0x10s\"");
  P("@every  5m", "failed to parse duration @every  5m: time: invalid duration \" 5m\"");
  P("@every 5s\0", "failed to parse duration @every 5s\\x00: time: unknown unit \"s\\x00\" in duration \"5s\\x00\"");
  expect_next("2025-01-17T18:00:12Z", "@every -1s", "2025-01-17T18:00:13Z");
  expect_next("2025-01-17T18:00:12Z", "@every 1.999999999s", "2025-01-17T18:00:13Z");
  expect_next("2025-01-17T18:00:12Z", "@every .5h", "2025-01-17T18:30:12Z");
  expect_next("2025-01-17T18:00:12Z", "@every 2562047h47m16.854775807s", "2317-04-29T17:47:28Z");
}

/* What robfig accepts and refuses beyond its own tables, byte for byte. Tried: text after a '-'
 * following '*' (Go ignores it), the order in which Go reports a bad range, Unicode white space
 * between fields, Go's Unicode lower-casing of names, zone names Go takes as paths, NUL bytes
 * (a Kubernetes string may hold one), and robfig's panic on a zone without a following space. */
static void robfig_parser_quirks(void **state) {
  (void)state;
  P("*-5 * * * *", NULL);
  P("*-x-y * * * *", NULL);
  P("?-3/2 * * * *", NULL);
  expect_next("2025-01-01T00:00:30Z", "*-5 * * * *", "2025-01-01T00:01:00Z");
  P("x-1-2 * * * *", "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
  P("1-x-3 * * * *", "too many hyphens: 1-x-3");
  P("x/1/2 * * * *", "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
  P("1-2-3/4/5 * * * *", "too many hyphens: 1-2-3/4/5");
  P("// * * * *", "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax");
  P("*/ * * * *", "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax");
  P("0x1 * * * *", "failed to parse int from 0x1: strconv.Atoi: parsing \"0x1\": invalid syntax");
  P("007 +5 * * *", NULL);
  P("1,,2 * * * *", NULL);
  /* U+00A0, U+3000, U+2003 and a tab separate fields; U+200B is not white space in Go */
  P("*\xc2\xa0*\xe3\x80\x80*\xe2\x80\x83*\t*", NULL);
  P("\xc2\xa0" "0 0 * * *", NULL);
  P("* * * *\xe2\x80\x8b *", "failed to parse int from *\xe2\x80\x8b: strconv.Atoi: parsing \"*\\u200b\": invalid syntax");
  P("\xd9\xa3 * * * *", "failed to parse int from \xd9\xa3: strconv.Atoi: parsing \"\xd9\xa3\": invalid syntax");
  P("a  b\tc", "expected exactly 5 fields, found 3: [a b c]");
  P("0 0 * * * *", "expected exactly 5 fields, found 6: [0 0 * * * *]");
  /* strings.ToLower maps U+0130 to 'i': robfig reads FR<U+0130> as Friday; U+0131 is not 'i' */
  expect_next("2025-01-01T00:00:00Z", "0 0 * * FR\xc4\xb0", "2025-01-03T00:00:00Z");
  P("0 0 * * fr\xc4\xb1", "failed to parse int from fr\xc4\xb1: strconv.Atoi: parsing \"fr\xc4\xb1\": invalid syntax");
  P("@daily ", "unrecognized descriptor: @daily ");
  P("@daily\0", "unrecognized descriptor: @daily\\x00");
  P("5\0 * * * *", "failed to parse int from 5\\x00: strconv.Atoi: parsing \"5\\x00\": invalid syntax");
  /* zones: Go's LoadLocation rules */
  expect_next("2025-01-01T00:00:00Z", "TZ=Local 0 1 * * *", "2025-01-01T01:00:00Z");
  expect_next("2025-07-01T00:00:00Z", "TZ=Europe/./London 0 1 * * *", "2025-07-02T00:00:00Z");
  expect_next("2025-01-01T00:00:00Z", "TZ=  0 1 * * *", "2025-01-01T01:00:00Z");
  P("TZ=\\UTC 0 0 * * *", "provided bad location \\UTC: time: invalid location name");
  P("TZ=.. * * * * *", "provided bad location ..: time: invalid location name");
  P("TZ=Mars/Olympus 0 0 * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus");
  P("TZ=utc 0 0 * * *", "provided bad location utc: unknown time zone utc");
  /* no length limits of our own: a 3000-byte list (fixed 256-byte buffers refused it before) */
  char big[3200] = "0";
  for (int i = 0; i < 1000; i++) strcat(big, ",59");
  strcat(big, " 0 * * *");
  expect_parse(big, strlen(big), NULL);
  expect_next("2025-01-01T00:00:30Z", big, "2025-01-01T00:59:00Z");
  /* robfig panics here (no ASCII space after the zone: it slices with -1); we refuse */
  cron_schedule *s = NULL;
  assert_int_equal(cron_parse("TZ=UTC\t*\t*\t*\t*\t*", &s), KD_ERR_INVALID);
  assert_null(s);
  /* the zone ends at the first ASCII space, tab or not */
  P("TZ=UTC\t* * * * *", "provided bad location UTC\t*: unknown time zone UTC\t*");
}

/* Issue 7 item 6: a schedule that never fires gives 0 (robfig's zero time), so the controller
 * can say so in status.error, and gives it fast. Tried: days that no month has, a leap day with
 * no leap year within robfig's five years (2100 is not one), and empty lists, for which robfig
 * walks five years minute by minute (3.5 s per call in a zone past 2037; 0.36 s here before). */
static void impossible_schedules_are_fast(void **state) {
  (void)state;
  static const char *never[][2] = {
      {"2025-01-01T00:00:00Z", "0 0 30 2 *"},
      {"2025-01-01T00:00:00Z", "0 0 31 4,6,9,11 *"},
      {"2025-01-01T00:00:00Z", "TZ=Australia/Lord_Howe 0 0 30 2 *"},
      {"2096-03-01T00:00:00Z", "0 0 29 2 *"},
      {"2038-10-30T00:00:00Z", ", * * * *"},
      {"2038-10-30T00:00:00Z", "TZ=Antarctica/Troll , * * * *"},
      {"2038-10-30T00:00:00Z", "TZ=America/New_York 0 , * * *"},
      {"2038-10-30T00:00:00Z", "* * , * *"},
      {"2038-10-30T00:00:00Z", "* * * , *"},
      {"2038-10-30T00:00:00Z", "* * * * ,"},
      {"2038-10-30T00:00:00Z", "* * ,, * ,"},
  };
  for (size_t i = 0; i < KD_ARRAY_LEN(never); i++) {
    cron_schedule *s = NULL;
    if (cron_parse(never[i][1], &s) != KD_OK) fail_msg("parse '%s': %s", never[i][1], kd_errmsg());
    int64_t t0 = kd_now_ms(), got = cron_next(s, T(never[i][0])), ms = kd_now_ms() - t0;
    if (got != 0) fail_msg("'%s' from %s: %lld, robfig gives the zero time", never[i][1], never[i][0], (long long)got);
    if (ms > 50) fail_msg("'%s' from %s: %lld ms to find nothing", never[i][1], never[i][0], (long long)ms);
    cron_free(s);
  }
  /* the same leap day is found from a year that has one within reach */
  expect_next("2095-03-01T00:00:00Z", "0 0 29 2 *", "2096-02-29T00:00:00Z");
  /* OR rule: a weekday list makes an impossible day of month possible; an empty one does not */
  expect_next("2025-01-01T00:00:00Z", "0 0 30 2 MON", "2025-02-03T00:00:00Z");
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "test_cron: cron_next did not return (a day that does not exist)\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
  _exit(3);
}

/* A day that does not exist: Pacific/Apia went from -10 to +14 and had no 2011-12-30. Go's
 * time.Date gives back 2011-12-29 for it, and robfig's day loop (and ours, before) spins there
 * forever: one such schedule would hang a controller thread. Tried: schedules whose search walks
 * over the missing day; each must end, on the next day that exists. An alarm turns a hang into
 * a failure. */
static void skipped_day_terminates(void **state) {
  (void)state;
  signal(SIGALRM, on_alarm);
  alarm(60);
  expect_next("2011-12-01T00:00:00Z", "CRON_TZ=Pacific/Apia 0 0 31 12 *", "2011-12-31T00:00:00+14:00");
  expect_next("2011-12-28T00:00:00Z", "CRON_TZ=Pacific/Apia 0 0 30,31 * *", "2011-12-31T00:00:00+14:00");
  expect_next("2011-12-01T00:00:00Z", "CRON_TZ=Pacific/Apia 0 12 * * FRI,SAT", "2011-12-02T12:00:00-10:00");
  expect_next("2011-12-29T12:00:00-10:00", "CRON_TZ=Pacific/Apia 0 12 * * FRI,SAT", "2011-12-31T12:00:00+14:00");
  expect_next("1994-12-25T00:00:00Z", "CRON_TZ=Pacific/Kiritimati 0 0 1 1 *", "1995-01-01T00:00:00+14:00");
  /* robfig's own answers after the gap are unchanged */
  expect_next("2012-01-05T00:00:00Z", "CRON_TZ=Pacific/Apia 0 0 31 12 *", "2012-12-30T10:00:00Z");
  alarm(0);
  signal(SIGALRM, SIG_DFL);
}

/* DST with a 30-minute shift and a one-off 15-minute change, as robfig answers (checked against
 * robfig v3.0.1). Tried: a wall time that does not exist that day, one that happens twice, and a
 * midnight that was skipped. */
static void odd_offsets(void **state) {
  (void)state;
  expect_next("2025-10-04T12:00:00Z", "CRON_TZ=Australia/Lord_Howe 15 2 * * *", "2025-10-05T15:15:00Z");
  expect_next("2025-04-05T12:00:00Z", "CRON_TZ=Australia/Lord_Howe 45 1 * * *", "2025-04-05T14:45:00Z");
  expect_next("1985-12-31T00:00:00Z", "CRON_TZ=Asia/Kathmandu 0 0 * * *", "1986-01-01T18:15:00Z");
}

int test_cron(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(robfig_next_table), cmocka_unit_test(robfig_activation_table),
      cmocka_unit_test(dst_europe_berlin), cmocka_unit_test(the_seed_schedule),
      cmocka_unit_test(parse_errors),      cmocka_unit_test(go_durations),
      cmocka_unit_test(tzif_reader),       cmocka_unit_test(huge_steps_and_numbers),
      cmocka_unit_test(go_duration_table), cmocka_unit_test(robfig_parser_quirks),
      cmocka_unit_test(impossible_schedules_are_fast), cmocka_unit_test(skipped_day_terminates),
      cmocka_unit_test(odd_offsets),
  };
  return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
