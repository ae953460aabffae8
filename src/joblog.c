/* joblog.c — the log, results and first failure of one Backup or Restore execution. */
#include "joblog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define JOBLOG_MSG_MAX 2048
#define JOBLOG_LOG_RESERVE (JOBLOG_MSG_MAX * 6 + 2048) /* room for the failure line past the cap */

json_t *joblog_json_text(const char *s) {
  json_t *j = json_string(s);
  if (j) return j;
  char *c = strdup(s);
  if (!c) return NULL;
  for (unsigned char *p = (unsigned char *)c; *p;) {
    int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
    bool ok = n > 0;
    for (int i = 1; ok && i < n; i++) ok = (p[i] & 0xc0) == 0x80;
    if (!ok) {
      *p++ = '?';
      continue;
    }
    p += n;
  }
  j = json_string(c);
  free(c);
  return j;
}

kd_rc joblog_init(joblog *j, const char *kind, const char *ns, const char *name, int gzip_level) {
  memset(j, 0, sizeof *j);
  j->kind = kind;
  snprintf(j->ref, sizeof j->ref, "%s/%s", ns, name);
  kd_rc rc = KD_ERR_NOMEM;
  for (int i = 0; i < 2; i++)
    if (!(j->results[i] = json_pack("{s:[],s:[],s:{}}", "velero", "cluster", "namespaces"))) goto fail;
  /* the compressed log is never larger than its cap uncompressed plus gzip's framing */
  if ((rc = archive_gz_init(&j->log, JOBLOG_LOG_MAX + (1u << 20), gzip_level))) goto fail;
  pthread_mutex_init(&j->mu, NULL);
  return KD_OK;
fail:
  json_decref(j->results[0]);
  json_decref(j->results[1]);
  memset(j, 0, sizeof *j);
  return rc == KD_ERR_NOMEM ? kd_fail(rc, "out of memory") : rc;
}

void joblog_free(joblog *j) {
  if (!j->kind) return;
  archive_gz_free(&j->log);
  json_decref(j->results[0]);
  json_decref(j->results[1]);
  pthread_mutex_destroy(&j->mu);
  memset(j, 0, sizeof *j);
}

/* called with j->mu held */
static void jl_log_line(joblog *j, const char *level, const char *msg) {
  /* the last JOBLOG_LOG_RESERVE bytes of the cap are kept for the line that ends the job */
  bool last = strcmp(level, "error") == 0 && strstr(msg, " failed: ") != NULL;
  if (j->log_closed || (j->log_full && !last)) return;
  char ts[21];
  kd_time_format(time(NULL), ts);
  kd_buf line = KD_BUF_INIT(JOBLOG_MSG_MAX * 6 + 1024);
  kd_rc rc = kd_buf_addf(&line, "time=\"%s\" level=%s msg=", ts, level);
  if (rc == KD_OK) rc = kd_buf_add_json_string(&line, msg, strlen(msg)); /* quoted like logrus' text format */
  if (rc == KD_OK) rc = kd_buf_addf(&line, " %s=%s\n", j->kind, j->ref);
  if (rc == KD_OK && !j->log_full && j->log.in_bytes + line.len > JOBLOG_LOG_MAX - JOBLOG_LOG_RESERVE) {
    kd_buf cut = KD_BUF_INIT(1024);
    kd_buf_addf(&cut, "time=\"%s\" level=warning msg=\"log truncated: it reached its size cap\" %s=%s\n", ts, j->kind, j->ref);
    archive_gz_add(&j->log, cut.data ? cut.data : "", cut.len);
    kd_buf_free(&cut);
    j->log_full = true;
    if (!last) rc = KD_ERR_TOOBIG;
  }
  if (rc == KD_OK && archive_gz_add(&j->log, line.data, line.len) != KD_OK) j->log_closed = true;
  kd_buf_free(&line);
}

/* called with j->mu held */
static kd_rc jl_result(joblog *j, bool error, const char *ns, const char *msg) {
  int k = error ? 1 : 0;
  j->count[k]++;
  if (j->kept[k] >= JOBLOG_RESULTS_MAX) return KD_OK;
  json_t *arr;
  if (!ns) arr = json_object_get(j->results[k], "velero");
  else if (!ns[0]) arr = json_object_get(j->results[k], "cluster");
  else {
    json_t *nss = json_object_get(j->results[k], "namespaces");
    if (!(arr = json_object_get(nss, ns))) {
      json_t *a = json_array();
      if (!a || json_object_set_new(nss, ns, a)) return kd_fail(KD_ERR_NOMEM, "out of memory");
      arr = a;
    }
  }
  json_t *s = joblog_json_text(msg);
  if (!s || json_array_append_new(arr, s)) return kd_fail(KD_ERR_NOMEM, "out of memory");
  j->kept[k]++;
  return KD_OK;
}

static void jl_vnote(joblog *j, enum joblog_level level, const char *ns, const char *fmt, va_list ap) {
  char msg[JOBLOG_MSG_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[kd_utf8_cut(msg, strlen(msg))] = '\0';
  pthread_mutex_lock(&j->mu);
  jl_log_line(j, level == JOBLOG_INFO ? "info" : level == JOBLOG_WARN ? "warning" : "error", msg);
  if (level != JOBLOG_INFO && jl_result(j, level == JOBLOG_ERROR, ns, msg) != KD_OK) {
    j->count[level == JOBLOG_ERROR]--; /* counted again below */
    jl_result(j, level == JOBLOG_ERROR, NULL, msg);
  }
  pthread_mutex_unlock(&j->mu);
  if (j->quiet && !kd_log_enabled(KD_LOG_DEBUG)) return;
  kd_log(level == JOBLOG_INFO ? KD_LOG_DEBUG : level == JOBLOG_WARN ? KD_LOG_WARN : KD_LOG_ERROR, "%s %s: %s", j->kind,
         j->ref, msg);
}

void joblog_note(joblog *j, enum joblog_level level, const char *ns, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  jl_vnote(j, level, ns, fmt, ap);
  va_end(ap);
}

bool joblog_fail(joblog *j, kd_rc rc, const char *fmt, ...) {
  char msg[sizeof j->fail_msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  msg[kd_utf8_cut(msg, strlen(msg))] = '\0';
  pthread_mutex_lock(&j->mu);
  bool first = !atomic_load(&j->failed);
  if (first) {
    j->fail_rc = rc;
    memcpy(j->fail_msg, msg, sizeof msg);
    atomic_store(&j->failed, 1);
  }
  pthread_mutex_unlock(&j->mu);
  if (first) joblog_note(j, JOBLOG_ERROR, NULL, "%s failed: %s", j->kind, msg);
  return first;
}

bool joblog_failed(const joblog *j) { return atomic_load(&j->failed); }

kd_rc joblog_fail_rc(const joblog *j) { return atomic_load(&j->failed) ? j->fail_rc : KD_OK; }

const char *joblog_fail_msg(const joblog *j) { return atomic_load(&j->failed) ? j->fail_msg : ""; }

long joblog_count(joblog *j, bool error) {
  pthread_mutex_lock(&j->mu);
  long n = j->count[error ? 1 : 0];
  pthread_mutex_unlock(&j->mu);
  return n;
}

kd_rc joblog_results_json(joblog *j, kd_buf *out) {
  pthread_mutex_lock(&j->mu);
  json_t *all = json_pack("{s:O,s:O}", "errors", j->results[1], "warnings", j->results[0]);
  char *s = all ? json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(all);
  pthread_mutex_unlock(&j->mu);
  kd_rc rc = s ? kd_buf_adds(out, s) : kd_fail(KD_ERR_NOMEM, "out of memory");
  free(s);
  return rc;
}

kd_rc joblog_close_log(joblog *j, const void **data, size_t *len) {
  pthread_mutex_lock(&j->mu);
  kd_rc rc = KD_OK;
  if (!j->log.finished) rc = archive_gz_finish(&j->log);
  j->log_closed = true;
  *data = j->log.out.data ? (const void *)j->log.out.data : "";
  *len = j->log.out.len;
  pthread_mutex_unlock(&j->mu);
  return rc;
}
