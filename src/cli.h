/* cli.h — the command-line verbs and what they share: global flags, exit codes. */
#ifndef KCMDR_CLI_H
#define KCMDR_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "kube.h"
#include "objstore.h"
#include "velero.h"

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

/* True when s is a valid namespace name (DNS-1123 label: at most 63 bytes of a-z, 0-9 and '-',
 * starting and ending with a letter or digit). Pure. */
bool cli_label_valid(const char *s);

/* Make s[0..n) safe to show on a terminal, in place: every control character (C0, newline and
 * tab included, as every field is shown on one line; DEL; the C1 code points U+0080..U+009F) and
 * every byte that is not part of valid UTF-8 becomes '?', as tables have always shown them.
 * Returns the new length (never more than n); s[result] is set to NUL (s has room for n + 1
 * bytes). Pure. */
size_t cli_text_clean(char *s, size_t n);
/* True when s[0..n) is all valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). */
bool cli_utf8_valid(const char *s, size_t n);
/* fprintf for human-readable output, where strings come from the server, a bucket or an
 * archive: every %s argument is printed as cli_text_clean makes it (its precision counts bytes
 * before cleaning; NULL prints "(null)"); the format's own text is printed as it is. Nothing is
 * printed of a %s when there is no memory for its copy but '?'. */
void cli_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_vprintf(FILE *f, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* -o/--output formats. */
enum cli_output { CLI_OUT_TABLE, CLI_OUT_WIDE, CLI_OUT_JSON, CLI_OUT_YAML };
/* Parse an -o value: "json", "yaml", "wide"; NULL or "" is the table. false for anything else. */
bool cli_output_parse(const char *s, enum cli_output *out);
/* Print obj to f as indented JSON, or as YAML (CLI_OUT_YAML; strings that would read back as
 * another type are quoted; NUL and control characters escaped), ending with a newline; like
 * kubectl, without metadata.managedFields (of obj and of every object nested in it: the items of
 * a List, the objects a describe carries; obj unchanged).
 * KD_ERR_IO when f cannot be written, KD_ERR_NOMEM. */
kd_rc cli_print_object(FILE *f, json_t *obj, enum cli_output fmt);

/* A verb's flags for cli_parse_opts. dst is a bool * (CLI_OPT_BOOL: "--wait", "--wait=true|false"),
 * a const char ** (CLI_OPT_STRING, borrows from argv) or a json_t ** (CLI_OPT_LIST: values split
 * at ',', the flag may repeat; the array is created on first use and owned by the caller; empty
 * items are dropped, but a value with no item at all, such as '' from an unset shell variable or
 * ',,', is a usage error, as is a value that is not UTF-8). */
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

/* ---- what the subcommands of backup and restore look up, check and print (cli.c) ---- */

/* metadata.k, spec.k, status.k of o as a string, borrowed from o; NULL when o, the section or
 * the field is absent or the field is not a string. Pure. */
const char *cli_meta_s(json_t *o, const char *k);
const char *cli_spec_s(json_t *o, const char *k);
const char *cli_status_s(json_t *o, const char *k);
/* s, or "<none>" for NULL or "". */
const char *cli_or_none(const char *s);
/* The phase of a Backup or Restore as shown: status.phase, "New" while the engine has set none. */
const char *cli_phase(json_t *o);
/* The object named name in arr (an array of objects; borrowed) or NULL. */
json_t *cli_by_name(json_t *arr, const char *name);

/* Every object of res in ns (NULL: cluster-scoped) that selector (NULL: all) selects, sorted by
 * name, into a new array *out (the caller's). optional: a resource the server does not serve (a
 * cluster without the CRD) lists as empty. The API's failure as it is (*out NULL), KD_ERR_NOMEM. */
kd_rc cli_list(kube_client *c, const struct kube_res *res, const char *ns, const char *selector, bool optional,
               json_t **out);

/* Checks of a subcommand's arguments, verb being "backup get" etc. Each returns -1 when the value
 * is fine, else prints "kcmdr VERB: ..." on stderr and returns CLI_USAGE. */
/* An -o value (see cli_output_parse) into *fmt; wide: the table may be wide (get), else only json
 * and yaml besides the default. */
int cli_check_output(const char *verb, const char *output, bool wide, enum cli_output *fmt);
/* A --timeout value (NULL: not given, *ms unchanged) into *ms (see cli_parse_timeout). */
int cli_check_timeout(const char *verb, const char *timeout, int64_t *ms);
/* At least one NAME was given (npos of them); else "which NAME?" and usage. */
int cli_check_names(const char *verb, const char *usage, int npos);
/* name is a valid object name (cli_name_valid) for an object to create. */
int cli_check_name(const char *verb, const char *name);

/* A subcommand of backup or restore: name, the function (argv[0] is the subcommand; the global
 * flags are parsed already, into g) and its --help text. */
struct cli_sub {
  const char *name;
  int (*fn)(const struct cli_globals *g, int argc, char **argv);
  const char *usage;
};
/* `kcmdr VERB SUBCOMMAND ...`: parse the global flags, then run the subcommand argv[1] from subs
 * (nsubs of them), or print its usage for --help. Without a subcommand: usage (on stdout with
 * --help, exit 0; else on stderr, CLI_USAGE); an unknown one is a usage error. Returns the exit
 * code. */
int cli_subcommand(int argc, char **argv, const char *verb, const char *usage, const struct cli_sub *subs,
                   size_t nsubs);

/* Called by cli_describe for the k-th NAME (k from 0): look name up in ns and describe it on
 * stdout as fmt (a table: the text, which a "---" line separates from the one before when k > 0;
 * json/yaml: the object), or say on stderr why not. Returns CLI_OK or CLI_FAIL. */
typedef int (*cli_describe_fn)(kube_client *c, const char *ns, const char *name, int k, enum cli_output fmt, void *ud);
/* `kcmdr VERB NAME... [-o json|yaml]` (verb: "backup describe"): parse argv (usage errors print
 * usage or a hint, CLI_USAGE), connect (CLI_FAIL after saying why) and call fn for every NAME in
 * turn. CLI_OK when every call returned CLI_OK, else CLI_FAIL. */
int cli_describe(const struct cli_globals *g, int argc, char **argv, const char *verb, const char *usage,
                 cli_describe_fn fn, void *ud);

/* The describe texts below print what the server holds with cli_printf (control characters
 * shown as '?'). */
/* Describe text on f: "Name:", "Namespace:" and "Labels:" (one a line) of obj. */
void cli_print_head(FILE *f, json_t *obj);
/* Describe text on f: the namespaces and resources a backup or restore includes and excludes
 * (spec: its spec), "Namespaces:" and "Resources:" each with an "Included:" and an "Excluded:"
 * line: "  Included:  a, b"; an empty list is "*" when included (Velero: no include list means
 * everything), else "<none>". */
void cli_print_scope(FILE *f, json_t *spec);
/* The errors or the warnings of a results file ({velero:[], cluster:[], namespaces:{ns:[]}}) as
 * "TITLE:" and a line for each, at most max, then "... and N more (kcmdr VERB -o json shows
 * all)"; "TITLE:  <none>" when there are none. */
void cli_print_results(FILE *f, const char *title, json_t *r, size_t max, const char *verb);
/* Why a backup or restore (status: its status object) did not complete, as create --wait says
 * it: "Failure reason: ..." when there is one, and a "Validation error: ..." line for each. */
void cli_print_failure(FILE *f, json_t *status);

/* What get prints for -o json|yaml (fmt): items[0] when one, else a v1 List of items (an array,
 * borrowed). KD_ERR_NOMEM, cli_print_object's failures. */
kd_rc cli_print_items(json_t *items, bool one, enum cli_output fmt);
/* The end of a get that prints a table: t on stdout, or "No WHAT found in namespace NS." on
 * stderr when it has no rows and no NAME was missing (then nothing). */
void cli_print_table(const cli_table *t, const char *what, const char *ns, bool missing);

/* Where the log of a backup or restore is, as a cli_log_find_fn fills it: obj (the Backup or
 * Restore: its name and phase are shown), st and bsl (its storage location), key (the log file in
 * st) and running (it has not ended, so a missing log is still to be written). cli_logs owns and
 * frees obj, bsl and st, also when the find function fails. */
struct cli_log_at {
  json_t *obj, *bsl;
  objstore *st;
  char key[VELERO_KEY_MAX];
  bool running;
};
/* Look name up in ns and fill at, or say on stderr why not; returns CLI_OK or CLI_FAIL. */
typedef int (*cli_log_find_fn)(kube_client *c, const char *ns, const char *name, struct cli_log_at *at);
/* `kcmdr KIND logs NAME` (kind: "backup" or "restore"): parse argv (usage errors: CLI_USAGE),
 * connect, find the log with find and print it, decompressed, on stdout. CLI_OK, or CLI_FAIL
 * after saying on stderr why (a missing log: "is written when it ends" while running, else "has
 * no log file"). */
int cli_logs(const struct cli_globals *g, int argc, char **argv, const char *kind, const char *usage, cli_log_find_fn find);

/* The end of create without --wait: out (the object created) on stdout as fmt when json or yaml,
 * and on f where to look next (`kcmdr NOUN describe NAME`, noun: "backup" or "restore").
 * cli_print_object's failures. */
kd_rc cli_created(FILE *f, json_t *out, enum cli_output fmt, const char *noun, const char *name);

/* The --wait of create: say on f that ctrl-c stops only the waiting for the NOUN ("backup" or
 * "restore") name, then cli_wait for the object name of res in ns with fn and ud, while p (which
 * fn updates; set up here as "Noun name", counting what is "counted") shows the progress on f;
 * the progress is ended on return. cli_wait's result. */
kd_rc cli_wait_shown(FILE *f, const char *noun, const char *counted, struct cli_progress *p, kube_client *c,
                     const struct kube_res *res, const char *ns, const char *name, int64_t timeout_ms, cli_wait_fn fn,
                     void *ud);

/* ---- what completion asks of the verbs, and the program's name (cli.c) ---- */

/* What a verb accepts, as it reports it when asked (cli_query_set). */
enum cli_word { CLI_WORD_FLAG, CLI_WORD_VALUE_FLAG, CLI_WORD_SUBCOMMAND };
typedef void (*cli_query_fn)(enum cli_word kind, const char *word, void *ud);
/* Ask the verbs instead of running them (completion only; fn NULL: run as always). While set,
 * a verb reports what it accepts to fn and returns CLI_OK having done nothing else: cli_start the
 * flags its usage text lists (the indented lines that start with '-': "  -l, --selector S   ...";
 * a flag followed by a word that is not a flag takes a value), cli_subcommand its subcommands
 * when argv has none (else it runs the one named, which reports), cli_parse_opts the flags of its
 * table; cli_client refuses (CLI_FAIL), so nothing reaches a cluster while a verb is only asked.
 * Process-wide state, not for threads. */
void cli_query_set(cli_query_fn fn, void *ud);
/* The i-th global flag cli_globals_parse takes (NULL past the last); *value: it takes a value. */
const char *cli_global_flag(size_t i, bool *value);
/* The name usage texts show for the program: "kcmdr" unless set, e.g. to "kubectl kcmdr" when run
 * as a kubectl plugin. verbs: the verb names (NULL-terminated, borrowed for the process's life);
 * "kcmdr " in a usage text is replaced where a verb name, '[' or an upper-case word follows it. */
void cli_set_prog(const char *prog, const char *const *verbs);
const char *cli_prog(void);
/* Print a usage text on f with the program's name as cli_set_prog says. */
void cli_put_usage(FILE *f, const char *usage);

/* The backup and restore verbs (cli_backup.c, cli_restore.c). */
int cli_backup(int argc, char **argv);
int cli_restore(int argc, char **argv);

#endif
