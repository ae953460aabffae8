/* completion.h — shell completion: the scripts (`kcmdr completion bash|zsh|fish`) and the
 * callback they make (`kcmdr __complete WORDS... CUR`), answered from the verbs themselves. */
#ifndef KCMDR_COMPLETION_H
#define KCMDR_COMPLETION_H

#include <stddef.h>

#include "cli.h"

/* A verb as main.c's table lists it; summary NULL: a hidden verb (neither in --help nor
 * completed). */
struct cli_verb {
  const char *name;
  const char *summary;
  kd_verb_fn fn;
};

/* `kcmdr completion bash|zsh|fish`: print the script for that shell on stdout (--help says how
 * to load it). Returns the exit code (CLI_USAGE for another shell or none). */
int completion_main(int argc, char **argv);

/* `kcmdr __complete WORD... CUR` (argv[0] is the verb; argv[1..argc-1) the words after the
 * program's name; argv[argc-1] the word being completed, "" for a new one): print the candidates
 * that start with CUR, one a line, then a directive line as cobra's (and kubectl's plugin
 * completion) read it: ":4" for "these or nothing", ":0" for "file names when there are no
 * candidates". Verbs come from verbs (nverbs of them, hidden ones skipped); subcommands and flags
 * from the verb asked through cli_query_set; NAME arguments and some flags' values (Backups,
 * ManagementBackups, Restores, storage locations, namespaces) from the cluster the global flags
 * among the words name, with a short deadline on each request and on the whole run. Never
 * prints anything else: stderr is closed to /dev/null first, and a run that would pass its
 * deadline exits 0 having printed nothing. Returns CLI_OK. */
int completion_complete(int argc, char **argv, const struct cli_verb *verbs, size_t nverbs);

#endif
