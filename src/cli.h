/* cli.h — the command-line verbs and what they share: global flags, exit codes. */
#ifndef KCMDR_CLI_H
#define KCMDR_CLI_H

#include <stdbool.h>

#include "kube.h"

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

#endif
