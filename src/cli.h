/* cli.h — the command-line verbs and what they share: global flags, exit codes. */
#ifndef KCMDR_CLI_H
#define KCMDR_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "kube.h"
#include "objstore.h"

/* A verb: argv[0] is the verb; returns the exit code (0 ok, 1 failure, 2 usage). */
typedef int (*kd_verb_fn)(int argc, char **argv);

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Flags every verb accepts. Strings borrow from argv. */
struct cli_globals {
  const char *kubeconfig;
  const char *context;
  const char *namespace;
  const char *server;
  int verbosity;     /* 0 errors .. 4 trace; default 2 (info) */
  bool log_json;
  bool help;
};

/* True if the global flag arg (e.g. "--context") consumes the next argument as its value. */
bool cli_flag_takes_value(const char *arg);

/* Take the global flags out of argv (argv is compacted in place, argv[0] kept; *argc updated)
 * and set up logging. Returns CLI_OK, or CLI_USAGE after printing which flag was wrong. */
int cli_globals_parse(int *argc, char **argv, struct cli_globals *g);

/* The start of every verb: take the global flags out of argv (see cli_globals_parse) and answer
 * --help with usage. Returns -1 when the verb should go on, else the exit code to return. */
int cli_start(int *argc, char **argv, struct cli_globals *g, const char *usage);

/* A verb's own flag with a value, as "--name value" or "--name=value", at argv[*i]. Returns the
 * value (advancing *i past it) or NULL; *matched says whether argv[*i] was this flag at all, so
 * matched with NULL means the value is missing. */
const char *cli_flag_value(int argc, char **argv, int *i, const char *name, bool *matched);

/* Connect with the global flags; prints the error and returns CLI_FAIL on failure. */
int cli_client(const struct cli_globals *g, kube_client **out);
/* The same with client options (timeouts, retries); opts NULL = defaults. */
int cli_client_with(const struct cli_globals *g, const struct kube_client_opts *opts, kube_client **out);

int cli_version(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_install(int argc, char **argv);

/* ---- what the backup and restore verbs share (cli.c) ---- */

#define CLI_SYSTEM_NAMESPACE "kcm-system"

/* The resources the backup and restore verbs use (velero.io/v1 and kcm's v1beta1). */
extern const struct kube_res cli_res_backup, cli_res_restore, cli_res_bsl, cli_res_dbr, cli_res_mb, cli_res_configmap;

/* The namespace of Velero's objects: -n/--namespace, else kcm-system. Never the kubeconfig
 * context's namespace: Velero's objects live in kcm's system namespace whatever namespace a
 * context points at (kcmdr controller has the same default). */
const char *cli_system_namespace(const struct cli_globals *g);

/* True when s is a valid object name (DNS-1123 subdomain: at most 253 bytes of a-z, 0-9, '-'
 * and '.', starting and ending with a letter or digit). Pure. */
bool cli_name_valid(const char *s);

/* -o/--output formats. */
enum cli_output { CLI_OUT_TABLE, CLI_OUT_WIDE, CLI_OUT_JSON, CLI_OUT_YAML };
/* Parse an -o value: "json", "yaml", "wide"; NULL or "" is the table. false for anything else. */
bool cli_output_parse(const char *s, enum cli_output *out);
/* Print obj to f as indented JSON, or as YAML (CLI_OUT_YAML; strings that would read back as
 * another type are quoted; NUL and control characters escaped), ending with a newline; like
 * kubectl, without metadata.managedFields (of obj and of the items of a List; obj unchanged).
 * KD_ERR_IO when f cannot be written, KD_ERR_NOMEM. */
kd_rc cli_print_object(FILE *f, json_t *obj, enum cli_output fmt);

/* A verb's flags for cli_parse_opts. dst is a bool * (CLI_OPT_BOOL: "--wait", "--wait=true|false"),
 * a const char ** (CLI_OPT_STRING, borrows from argv) or a json_t ** (CLI_OPT_LIST: values split
 * at ',', the flag may repeat; the array is created on first use and owned by the caller). */
enum cli_opt_kind { CLI_OPT_BOOL, CLI_OPT_STRING, CLI_OPT_LIST };
struct cli_opt {
  const char *name;  /* "--wait" */
  const char *alias; /* "-w", or NULL; a one-letter alias also takes its value attached: "-ojson" */
  enum cli_opt_kind kind;
  void *dst;
};
/* Parse argv[1..argc) (after cli_globals_parse) against opts; positional arguments go to pos
 * (at most max_pos; *npos counts them). "--" ends the flags. An unknown flag, a missing value,
 * a bad boolean or a surplus argument prints "kcmdr VERB: ..." and a hint to --help on stderr
 * and returns CLI_USAGE; -1 when the verb goes on; CLI_FAIL on no memory. */
int cli_parse_opts(int argc, char **argv, const char *verb, const struct cli_opt *opts, size_t nopts,
                   const char **pos, int max_pos, int *npos);

/* Parse a --timeout value (a Go duration: "90s", "10m", "1h30m"; "0" = no limit) into
 * milliseconds. false for anything else or a negative value. */
bool cli_parse_timeout(const char *s, int64_t *ms);

/* A text table printed with aligned columns (widths in characters, UTF-8 aware; control
 * characters in cells shown as '?'). Owns copies of its cells. */
typedef struct cli_table cli_table;
/* A table with ncols columns named by headers (borrowed; must outlive the table). NULL on no
 * memory. */
cli_table *cli_table_new(size_t ncols, const char *const *headers);
/* Add a row of ncols cells (NULL prints as ""). KD_ERR_NOMEM. */
kd_rc cli_table_add(cli_table *t, const char *const *cells);
/* Rows added so far. */
size_t cli_table_rows(const cli_table *t);
/* Print headers and rows to f, columns separated by three spaces. */
void cli_table_print(const cli_table *t, FILE *f);
/* Free. NULL is fine. */
void cli_table_free(cli_table *t);

/* A timestamp as velero prints it: "2025-01-17 18:00:12 +0000 UTC" (UTC); "<none>" for NULL or
 * ""; the input itself when it does not parse. out: at least 64 bytes. */
void cli_time_text(const char *rfc3339, char *out, size_t n);
/* How far a time is from now, as kubectl prints ages: "29d", "5h", "3m", "12s"; future and past
 * alike (the caller says which). "<none>" for NULL, "" or a time that does not parse. */
void cli_time_span(const char *rfc3339, time_t now, char *out, size_t n);
/* Bytes in human units: "812 B", "40.1 KiB", "3.2 MiB". */
void cli_size_text(uint64_t bytes, char *out, size_t n);

/* Ask question on the terminal (stdin) and read the answer: true only for "y" or "yes" (any
 * case). When stdin is not a terminal nothing is asked: *no_tty is set and the answer is no. */
bool cli_confirm(const char *question, bool *no_tty);

/* Called with the current state of the object cli_wait follows (borrowed; NULL while it does not
 * exist or after it was deleted). Return 1 when the wait is over, 0 to go on. */
typedef int (*cli_wait_fn)(json_t *obj, void *ud);
/* Follow one object by name (list, then watch from the list's resourceVersion; the watch is
 * renewed, a 410 relists, up to 5 connection failures in a row are retried with backoff) and call
 * fn with every state until it returns 1. KD_ERR_TIMEOUT after timeout_ms (0: no limit); the
 * API's failure otherwise (the message says what was followed). */
kd_rc cli_wait(kube_client *c, const struct kube_res *res, const char *ns, const char *name, int64_t timeout_ms,
               cli_wait_fn fn, void *ud);

/* Progress of a running backup or restore on f: a bar redrawn in place when f is a terminal,
 * else one plain line when something changed, at most once a second (the last state is always
 * printed by cli_progress_end). */
struct cli_progress {
  FILE *f;
  bool tty;
  bool drawn;           /* a bar is on the current line */
  int64_t last_ms;      /* when the last plain line was printed */
  long long done, total;
  char phase[40];
  char what[300];       /* "Restore r" */
  char verb[40];        /* "restored" */
  bool printed, pending;
};
/* Start: f is the stream (stdout), what names the object, verb says what the count counts. */
void cli_progress_init(struct cli_progress *p, FILE *f, const char *what, const char *verb);
/* A new state (phase may be NULL or ""). */
void cli_progress_update(struct cli_progress *p, const char *phase, long long done, long long total);
/* End the display: the last state shown, the bar's line ended. */
void cli_progress_end(struct cli_progress *p);

/* The BackupStorageLocation of a velero.io/v1 Backup (spec.storageLocation, else its
 * velero.io/storage-location label, else the location with spec.default: true in ns; *bsl_out
 * gets it, may be NULL) opened with the credentials its Secret holds (engine_open_store). *st
 * owned by the caller. KD_ERR_NOTFOUND / KD_ERR_CONFIG with a message naming the location. */
kd_rc cli_backup_store(kube_client *c, const char *ns, json_t *backup, objstore **st, json_t **bsl_out);

/* Stream the gzip file key of st, decompressed, into fn (several gzip members are read one
 * after another, as Go's gzip reader does). KD_ERR_NOTFOUND when the key does not exist,
 * KD_ERR_PARSE for a corrupt or truncated gzip stream, fn's failure, the store's. */
kd_rc cli_gunzip_get(objstore *st, const char *key, objstore_sink_fn fn, void *ud);
/* cli_gunzip_get into a buffer (capped at max decompressed bytes: KD_ERR_TOOBIG). *out (caller
 * frees, NUL-terminated) and *len. */
kd_rc cli_gunzip_get_all(objstore *st, const char *key, size_t max, char **out, size_t *len);

/* An objstore_sink_fn that writes the bytes to stdout (ud unused). KD_ERR_IO when it cannot. */
kd_rc cli_stdout_sink(const char *p, size_t n, void *ud);

/* The backup and restore verbs (cli_backup.c, cli_restore.c). */
int cli_backup(int argc, char **argv);
int cli_restore(int argc, char **argv);

#endif
