/* joblog.h — what one Backup or Restore execution tells its user, as Velero writes it: the log
 * (logrus text lines "time=... level=... msg=\"...\" backup=ns/name", gzipped as they come, capped
 * at JOBLOG_LOG_MAX uncompressed bytes; past the cap a line says so, and only the failure line
 * that ends the job is still written), the results ({"errors":R,"warnings":R} with R =
 * {"velero":[],"cluster":[],"namespaces":{}}, at most JOBLOG_RESULTS_MAX messages kept per kind,
 * later ones only counted), and the first fatal failure. Every function is thread-safe. */
#ifndef KCMDR_JOBLOG_H
#define KCMDR_JOBLOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <jansson.h>

#include "archive.h"
#include "util.h"

#define JOBLOG_RESULTS_MAX 1000
#define JOBLOG_LOG_MAX (64u << 20)

enum joblog_level { JOBLOG_INFO, JOBLOG_WARN, JOBLOG_ERROR };

typedef struct joblog {
  pthread_mutex_t mu; /* everything below */
  const char *kind;   /* "backup" or "restore": the log lines' last field */
  char ref[2 * 254];  /* ns/name */
  archive_gz log;
  bool log_full, log_closed; /* past the cap: only the failure line; closed: nothing */
  json_t *results[2]; /* warnings, errors */
  long count[2], kept[2];
  atomic_int failed;
  kd_rc fail_rc;
  char fail_msg[1024];
  bool quiet;         /* set by the owner after init: per-object lines reach the process log only at
                       * debug verbosity (a preview reports them itself) */
} joblog;

/* Start j for the execution of kind ("backup"/"restore", static) ns/name; gzip_level 1..9.
 * KD_ERR_NOMEM; on failure j needs no joblog_free. */
kd_rc joblog_init(joblog *j, const char *kind, const char *ns, const char *name, int gzip_level);
/* A log line (msg cut at a UTF-8 boundary to 2 KiB); warnings and errors also go to the results
 * under ns (NULL: Velero's own, "": cluster-scoped, else the namespace; Velero's own when the
 * namespace cannot be added) and to the process log (info as debug). Never fails: a line that
 * does not fit is dropped and the log says once that it was cut. */
void joblog_note(joblog *j, enum joblog_level level, const char *ns, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Record a failure that ends the execution; only the first is kept (rc and message) and logged
 * as an error "<kind> failed: msg". Returns true when this was the first. */
bool joblog_fail(joblog *j, kd_rc rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether a failure was recorded. */
bool joblog_failed(const joblog *j);
/* The first failure's code (KD_OK if none) and message ("" if none; valid until joblog_free). */
kd_rc joblog_fail_rc(const joblog *j);
const char *joblog_fail_msg(const joblog *j);
/* Messages counted of a kind (kept or not). */
long joblog_count(joblog *j, bool error);
/* The results file's JSON text appended to out. KD_ERR_TOOBIG or KD_ERR_NOMEM. */
kd_rc joblog_results_json(joblog *j, kd_buf *out);
/* End the log's gzip stream (later lines are dropped) and return its bytes (owned by j).
 * KD_ERR_NOMEM or the cap's error. */
kd_rc joblog_close_log(joblog *j, const void **data, size_t *len);
/* A JSON string of s that jansson accepts (invalid UTF-8 bytes become '?'); NULL on no memory. */
json_t *joblog_json_text(const char *s);
/* Free what j holds (j itself is the caller's). NULL-safe after a zeroed init. */
void joblog_free(joblog *j);

#endif
