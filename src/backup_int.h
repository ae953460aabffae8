/* backup_int.h — what the three parts of one Backup execution share; private to them (never
 * installed, included only by backup.c, backup_select.c and backup_stream.c):
 *   backup.c         the commit path: setup, validation, the claim, the small files, the
 *                    checksums and velero-backup.json (last), discard, status;
 *   backup_select.c  what is selected: globs, label selectors, include/exclude filters, the
 *                    resource list, the namespace pass and the plan of LISTs;
 *   backup_stream.c  objects from the API server into the tarball: LIST workers, item actions
 *                    and related objects, the archive writer's output, progress. */
#ifndef KCMDR_BACKUP_INT_H
#define KCMDR_BACKUP_INT_H

#include "backup.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>

#include "archive.h"
#include "crypt.h"
#include "joblog.h"
#include "velero.h"

/* ---- one execution ---- */

#define BK_PAGE 500                          /* items per LIST page */
#define BK_ITEM_MAX ARCHIVE_MAX_ENTRY        /* larger objects are skipped with an error (restore's cap) */
#define BK_SMALL_MAX (256u << 20)            /* a compressed resource list or results file */
#define BK_SERVER_SEL_MAX 500                /* longest merged label selector sent to the server */
#define BK_MAX_KEYS 8                        /* distinct selector keys listed separately at most */
#define BK_LIST_NS_MAX 16                    /* namespaces listed one by one at most (else all at once) */
#define BK_GONE_RESTARTS 3

enum bk_special { T_OTHER, T_POD, T_PVC, T_PV, T_SA, T_CRB, T_CROLE, T_PCLASS, T_CRD, T_NS };

/* one resource type the server offers */
struct bk_type {
  struct kube_res res;
  char gr[300];
  char api_version[200];
  char rl_type[400]; /* resource-list key "<apiVersion>/<Kind>" */
  enum bk_special special;
  bool listed;
  atomic_long items;
};

/* one LIST to run: a type, in one namespace (or all), for one selector group */
struct bk_task {
  size_t type;
  const char *ns; /* NULL: all namespaces */
  size_t group;
};

/* selectors merged by key: one LIST each */
struct bk_group {
  char *server; /* label selector sent with the LIST, NULL for none */
};

struct bk_nsinfo {
  char *name;
  bool active, selected;
};

struct bk_rel { /* an object an item action adds */
  size_t type;
  char *ns, *name;
};

enum bk_file { F_TAR, F_RESLIST, F_RESULTS, F_LOGS, F_CHECKSUMS, F_SIG, F_META, F_COUNT };

struct bk {
  const struct backup_job *job;
  kube_client *c;
  const char *name, *ns, *bsl_name, *uid;
  char bsl_label[VELERO_LABEL_MAX + 1];
  char claim_key[VELERO_KEY_MAX];
  char start_ts[21], exp_ts[21];
  time_t start;
  int64_t ttl;
  int gz_level;

  json_t *disc;
  json_t *disc_skipped; /* group-versions discovery could not read: errors of this backup */
  backup_filter *filter;
  backup_selector **sels;
  size_t nsels;
  size_t *sel_group; /* group of each selector */
  json_t *sel_index;  /* "key=value" / "key" -> group, when every selector is one requirement */
  struct bk_group *groups;
  size_t ngroups;
  bool select_nothing;
  struct bk_type *types;
  size_t ntypes;
  struct bk_nsinfo *nsinfo;
  size_t nns;
  const char **list_ns; /* NULL: list all namespaces at once */
  size_t nlist_ns;
  struct bk_task *tasks;
  size_t ntasks;
  atomic_size_t next_task;

  pthread_mutex_t mu; /* everything below */
  archive_writer *aw;
  objstore_writer *tw;
  EVP_MD_CTX *tar_sha;
  /* encryption and signing (crypt.h): the location's settings, this backup's data key and the
   * tarball's encrypting writer between the archive writer and the store (NULL: plain) */
  struct crypt_location loc;
  crypt_dek *dek;
  crypt_writer *cw;
  uint64_t tar_bytes;
  backup_reslist *rl;
  joblog jl; /* log, results, the first fatal failure (its own lock) */
  json_t *tracked_ns, *written, *sa_set, *queued;
  struct bk_rel *rel;
  size_t nrel, caprel;

  atomic_long selected, backed_up;
  /* the store's first failure under the archive writer (set once, then store_failed) */
  atomic_int store_failed;
  kd_rc store_rc;
  char store_msg[900];

  char keys[F_COUNT][VELERO_KEY_MAX];
  bool committed[F_COUNT]; /* may exist in the store (written, or a write whose answer was lost) */
  bool claimed;             /* the claim is ours */
  char sums[F_COUNT][65];
  uint64_t sizes[F_COUNT];

  int64_t t0_ms; /* for the debug timings */
  pthread_t prog;
  bool prog_started;
  volatile int prog_stop;
};

typedef kd_rc (*bk_raw_fn)(const char *item, size_t len, void *ud);

/* ---- backup.c ---- */

/* Append the C string s to b as a JSON string literal; kd_buf_add's failures. */
kd_rc bk_json_cstr(kd_buf *b, const char *s);
/* a debug line with the time since the execution began */
void bk_mark(const struct bk *b, const char *what);
/* Has the job been cancelled? */
bool bk_cancelled(const struct bk *b);
/* Write the Backup's status as a compare-and-swap from one of the phases expect (vstatus.h),
 * under the job's fence and only on this very Backup (its uid); transient failures are retried
 * for patience_ms. */
kd_rc bk_status(struct bk *b, json_t *status, const char *const *expect, int patience_ms);
/* n bytes of d as lowercase hex into out (2n+1 bytes, NUL-terminated). */
void bk_hex(const unsigned char *d, unsigned n, char *out);

/* ---- backup_select.c ---- */

/* A string from JSON that is a real C string (no NUL inside); NULL otherwise. */
const char *bk_cstr(json_t *v);
/* Append a formatted validation error to errors (cut at 1 KiB); KD_ERR_NOMEM only. */
kd_rc bk_add_error(json_t *errors, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first look at namespaces (b->nsinfo); those labelled velero.io/exclude-from-backup=true
 * are appended to excluded. A failure to list them is returned. */
kd_rc bk_scan_namespaces(struct bk *b, json_t *excluded);
/* Merge the label selectors into b->groups (one LIST each) and b->sel_index; KD_ERR_NOMEM only. */
kd_rc bk_plan_groups(struct bk *b);
/* After the filter and the groups: b->types, the namespaces to list, b->tasks, and the
 * namespaces tracked from the start (nsTracker.init); KD_ERR_NOMEM only. */
kd_rc bk_plan_lists(struct bk *b);
/* Note an error for each included namespace that does not exist, as Velero does. */
void bk_note_missing_namespaces(struct bk *b);

/* ---- backup_stream.c ---- */

/* LIST res (ns NULL: all namespaces) page by page, handing each item's exact bytes to fn. */
kd_rc bk_list(struct bk *b, const struct kube_res *res, const char *ns, const char *label_sel, const char *field_sel,
              bk_raw_fn fn, void *ud);
/* Track namespace ns (its Namespace object is backed up at the end); KD_ERR_NOMEM only. */
kd_rc bk_track_ns(struct bk *b, const char *ns);
/* The tarball: every LIST on the job's workers, the objects the actions add, the CRDs, the
 * namespaces, then the archive closed and committed (checksum and size recorded) and progress
 * stopped. KD_OK: the tarball is stored; else the failure is in b->jl (or the job was cancelled)
 * and the caller discards what was written. */
kd_rc bk_stream(struct bk *b);
/* Stop the progress writer, if it runs, and wait for it. */
void bk_stop_progress(struct bk *b);

#endif
