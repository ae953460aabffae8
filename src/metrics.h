/* metrics.h — Prometheus metrics (counters, gauges, one histogram shape) and the small HTTP
 * server (libmicrohttpd) that serves /metrics, /healthz and /readyz. */
#ifndef KCMDR_METRICS_H
#define KCMDR_METRICS_H

#include <stdbool.h>

#include "cron.h"
#include "util.h"

#define METRICS_MAX_SERIES 10000 /* label values beyond this are dropped (and counted) */

typedef struct metrics metrics;

/* A registry; thread-safe. KD_ERR_NOMEM. */
kd_rc metrics_new(metrics **out);
void metrics_free(metrics *m);

/* Add v to counter name{label_key="label_value"} (label_key NULL: no label). */
void metrics_counter_add(metrics *m, const char *name, const char *help, const char *label_key,
                         const char *label_value, double v);
/* Set gauge name{label_key="label_value"} to v. */
void metrics_gauge_set(metrics *m, const char *name, const char *help, const char *label_key,
                       const char *label_value, double v);
/* Labelled forms: lv is a NULL-terminated list of label key, value, key, value, ... (NULL: no
 * labels). Label values are escaped; at most 512 bytes of labels are kept per series. */
void metrics_counter_addv(metrics *m, const char *name, const char *help, const char *const *lv, double v);
void metrics_gauge_setv(metrics *m, const char *name, const char *help, const char *const *lv, double v);
/* Set counter name (no labels) to a total kept elsewhere (e.g. requests sent so far). */
void metrics_counter_set(metrics *m, const char *name, const char *help, double v);
/* Drop family name and all its series: for gauges recomputed from current state at each
 * scrape, so an object that is gone leaves no series behind. */
void metrics_reset(metrics *m, const char *name);
/* Drop the series of family name that have the label key="value" (the counters of an object
 * that is gone: they would stay until a restart and take the cap's room). */
void metrics_drop_label(metrics *m, const char *name, const char *key, const char *value);
/* A collector recomputes state-derived series; metrics_render calls it first. Collect and
 * render run under one lock, so two scrapes never see each other's half-built state. */
typedef void (*metrics_collect_fn)(metrics *m, void *ud);
void metrics_set_collector(metrics *m, metrics_collect_fn fn, void *ud);
/* How many more series the cap allows now (a collector checks that all of one object's series
 * fit before adding any, so an object is exported whole or not at all). Every series the cap
 * refused is counted in kcmdr_metrics_series_dropped_total, which is always rendered. */
long metrics_room(metrics *m);

/* The length (s) of the gap of schedule cs that holds time t: from its last activation at or
 * before t to its first after t (an "@every D" schedule: D). This, and not the gap after now,
 * is the interval a "no backup since t" alert must allow: for "0 9 * * 1-5" a success on Friday
 * is followed by a 72 h gap, though from a Saturday the next two activations are 24 h apart.
 * Activations more than 8 years before t are not searched (then: the time from t to the next
 * one). Returns 0 when the schedule does not fire after t (cron_next's 0). */
int64_t metrics_schedule_gap(const cron_schedule *cs, int64_t t);
/* Observe v (seconds) in histogram name, buckets 1 ms .. 10 s. */
void metrics_observe(metrics *m, const char *name, const char *help, double v);
/* The exposition text, after the collector ran (caller frees); NULL on no memory. */
char *metrics_render(metrics *m);

typedef struct httpserv httpserv;
typedef bool (*httpserv_check_fn)(void *ud);

/* Parse a bind address as controller-runtime takes it: "0" disables (*enabled false),
 * ":8080" is every interface, "127.0.0.1:8080" one. KD_ERR_INVALID with a message. */
kd_rc httpserv_parse_addr(const char *addr, bool *enabled, char host[64], int *port);
/* Serve on addr: /metrics from m (may be NULL), /healthz (200 while the process runs) and
 * /readyz (200 when ready(ud) says so, else 503), on libmicrohttpd's own thread. *out is NULL
 * when addr is "0" (disabled). KD_ERR_INVALID for a bad address, KD_ERR_IO when it cannot listen. */
kd_rc httpserv_start(const char *addr, metrics *m, httpserv_check_fn ready, void *ud, httpserv **out);
/* Stop serving and free. NULL is fine. */
void httpserv_stop(httpserv *s);

#endif
