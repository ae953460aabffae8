/* completion.c — shell completion. `kcmdr completion bash|zsh|fish` prints a script; the script
 * hands the command line back to `kcmdr __complete WORDS... CUR`, which answers from the verbs
 * themselves (their flag tables and usage texts, asked through cli_query_set, so completion and
 * --help cannot drift apart) and, for NAME arguments, from the cluster: quickly, and silently
 * when it cannot be reached. */
#include "completion.h"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* The whole of one __complete run, and each request to the API server within it. A shell waits
 * for the answer; a cluster that does not answer must not hold it for longer. */
#define COMPLETE_DEADLINE_S 3
#define COMPLETE_REQUEST_MS 1500
/* Caps: flags a verb reports, its subcommands, words of a command line looked at, candidates. */
#define COMPLETE_MAX_FLAGS 96
#define COMPLETE_MAX_SUBS 32
#define COMPLETE_MAX_WORDS 256
#define COMPLETE_MAX_CANDIDATES 5000

/* cobra's directives (kubectl reads them from a plugin's kubectl_complete-NAME too) */
#define DIRECTIVE_DEFAULT 0 /* no candidates: the shell completes file names */
#define DIRECTIVE_NO_FILES 4

/* What NAME arguments or a flag's value name, looked up in the cluster. */
enum names {
  NAMES_NONE,
  NAMES_BACKUPS,         /* Velero Backups */
  NAMES_BACKUPS_AND_MBS, /* Backups and ManagementBackups: NAME of backup get/describe/logs/verify/diff */
  NAMES_RESTORES,
  NAMES_LOCATIONS, /* BackupStorageLocations */
  NAMES_NAMESPACES,
  NAMES_SHELLS, /* not the cluster's: the shells `completion` knows */
  NAMES_FILES,  /* not the cluster's: file names (the shell's own completion) */
};

/* What the positional arguments of a subcommand name (sub NULL: of the verb itself). What each
 * argument means is not in the flag tables; it is here (backup delete takes only Backups: a
 * ManagementBackup is not deleted by it). */
static const struct {
  const char *verb, *sub;
  enum names names;
} positional[] = {
    {"backup", "get", NAMES_BACKUPS_AND_MBS},  {"backup", "describe", NAMES_BACKUPS_AND_MBS},
    {"backup", "logs", NAMES_BACKUPS_AND_MBS}, {"backup", "verify", NAMES_BACKUPS_AND_MBS},
    {"backup", "diff", NAMES_BACKUPS_AND_MBS},
    {"backup", "delete", NAMES_BACKUPS},       {"restore", "get", NAMES_RESTORES},
    {"restore", "describe", NAMES_RESTORES},   {"restore", "logs", NAMES_RESTORES},
    {"completion", NULL, NAMES_SHELLS},
};

/* What the value of a flag names (verb NULL: a global flag, any verb). */
static const struct {
  const char *verb, *flag;
  enum names names;
} flag_values[] = {
    {NULL, "--namespace", NAMES_NAMESPACES},      {NULL, "-n", NAMES_NAMESPACES},
    {NULL, "--kubeconfig", NAMES_FILES},          {"restore", "--from-backup", NAMES_BACKUPS},
    {"backup", "--storage-location", NAMES_LOCATIONS},
};

/* ---- the scripts ---- */

static const char script_bash[] =
    "# bash completion for kcmdr (printed by `kcmdr completion bash`; see kcmdr completion --help)\n"
    "_kcmdr_complete() {\n"
    "  local cur prog out line directive=0 cword\n"
    "  local -a words cands=()\n"
    "  # bash-completion, when loaded, keeps --flag=value and URLs whole (COMP_WORDBREAKS splits them)\n"
    "  if declare -F _get_comp_words_by_ref >/dev/null; then\n"
    "    _get_comp_words_by_ref -n =: cur words cword\n"
    "  else\n"
    "    words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD; cur=${COMP_WORDS[COMP_CWORD]}\n"
    "  fi\n"
    "  prog=${words[0]}\n"
    "  [[ $prog == '~/'* ]] && prog=$HOME/${prog#'~/'}\n"
    "  out=$(\"$prog\" __complete \"${words[@]:1:cword-1}\" \"$cur\" </dev/null 2>/dev/null)\n"
    "  while IFS= read -r line; do\n"
    "    case $line in\n"
    "      :*) directive=${line#:} ;;\n"
    "      '') ;;\n"
    "      *) cands+=(\"$line\") ;;\n"
    "    esac\n"
    "  done <<<\"$out\"\n"
    "  COMPREPLY=(\"${cands[@]}\")\n"
    "  if [[ ${#cands[@]} -eq 0 && $((directive & 4)) -eq 0 ]]; then\n"
    "    compopt -o filenames 2>/dev/null\n"
    "    mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n"
    "  fi\n"
    "  return 0\n"
    "}\n"
    "complete -F _kcmdr_complete kcmdr kubectl-kcmdr\n";

static const char script_zsh[] =
    "#compdef kcmdr kubectl-kcmdr\n"
    "# zsh completion for kcmdr (printed by `kcmdr completion zsh`; see kcmdr completion --help)\n"
    "_kcmdr() {\n"
    "  local prog=${words[1]} line directive=0\n"
    "  local -a cands\n"
    "  [[ $prog == '~/'* ]] && prog=$HOME/${prog#\\~/}\n"
    "  for line in \"${(@f)$(\"$prog\" __complete \"${(@)words[2,CURRENT]}\" </dev/null 2>/dev/null)}\"; do\n"
    "    case $line in\n"
    "      (:*) directive=${line#:} ;;\n"
    "      ('') ;;\n"
    "      (*) cands+=(\"$line\") ;;\n"
    "    esac\n"
    "  done\n"
    "  if (( ${#cands} )); then\n"
    "    compadd -- \"${cands[@]}\"\n"
    "  elif (( (directive & 4) == 0 )); then\n"
    "    _files\n"
    "  fi\n"
    "}\n"
    "if [[ ${funcstack[1]} == _kcmdr ]]; then\n"
    "  _kcmdr \"$@\"\n"
    "else\n"
    "  compdef _kcmdr kcmdr kubectl-kcmdr\n"
    "fi\n";

static const char script_fish[] =
    "# fish completion for kcmdr (printed by `kcmdr completion fish`; see kcmdr completion --help)\n"
    "function __kcmdr_complete\n"
    "    set -l tokens (commandline -opc)\n"
    "    set -l cur (commandline -ct)\n"
    "    set -l directive 0\n"
    "    set -l found 0\n"
    "    for line in ($tokens[1] __complete $tokens[2..-1] \"$cur\" </dev/null 2>/dev/null)\n"
    "        switch $line\n"
    "            case ':*'\n"
    "                set directive (string sub -s 2 -- $line)\n"
    "            case ''\n"
    "            case '*'\n"
    "                printf '%s\\n' $line  # not echo: a candidate -n or -e is its option\n"
    "                set found 1\n"
    "        end\n"
    "    end\n"
    "    if test $found = 0; and test (math \"bitand($directive, 4)\") = 0\n"
    "        __fish_complete_path \"$cur\"\n"
    "    end\n"
    "end\n"
    "complete -c kcmdr -f -a '(__kcmdr_complete)'\n"
    "complete -c kubectl-kcmdr -f -a '(__kcmdr_complete)'\n";

static const char completion_usage[] =
    "Usage: kcmdr completion bash|zsh|fish\n"
    "\n"
    "Print a shell completion script. Load it in the running shell, or install it for every one:\n"
    "  bash   source <(kcmdr completion bash)          in ~/.bashrc, or once:\n"
    "         kcmdr completion bash > /usr/share/bash-completion/completions/kcmdr\n"
    "  zsh    source <(kcmdr completion zsh)           in ~/.zshrc after compinit, or once:\n"
    "         kcmdr completion zsh > \"${fpath[1]}/_kcmdr\"\n"
    "  fish   kcmdr completion fish | source           or once:\n"
    "         kcmdr completion fish > ~/.config/fish/completions/kcmdr.fish\n"
    "\n"
    "It completes verbs, subcommands, flags, and names: of Backups and ManagementBackups (backup\n"
    "get, describe, logs, verify, diff, delete), Restores (restore get, describe, logs), backups for\n"
    "--from-backup, storage locations for --storage-location, namespaces for -n. Names come from\n"
    "the cluster the command line's --kubeconfig, --context and --server flags point at, in the\n"
    "namespace of -n/--namespace (default kcm-system); when it cannot be reached within "
    "3 seconds,\n"
    "nothing is completed and nothing is printed. The script also completes kubectl-kcmdr; `kubectl\n"
    "kcmdr` completes through kubectl 1.26 or later with kubectl_complete-kcmdr on PATH (make install).\n";

int completion_main(int argc, char **argv) {
  struct cli_globals g;
  int ret = cli_start(&argc, argv, &g, completion_usage);
  if (ret >= 0) return ret;
  const char *script = NULL;
  if (argc == 2 && strcmp(argv[1], "bash") == 0) script = script_bash;
  else if (argc == 2 && strcmp(argv[1], "zsh") == 0) script = script_zsh;
  else if (argc == 2 && strcmp(argv[1], "fish") == 0) script = script_fish;
  if (!script) {
    if (argc < 2) fprintf(stderr, "kcmdr completion: which shell?\n");
    else fprintf(stderr, "kcmdr completion: no script for '%s'%s\n", argv[1], argc > 2 ? " (one shell)" : "");
    cli_put_usage(stderr, completion_usage);
    return CLI_USAGE;
  }
  fputs(script, stdout);
  return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- __complete ---- */

/* What a verb (and its subcommand) reported when asked. */
struct asked {
  struct {
    char name[64];
    bool value;
  } flags[COMPLETE_MAX_FLAGS];
  size_t nflags;
  char subs[COMPLETE_MAX_SUBS][64];
  size_t nsubs;
};

static void on_word(enum cli_word kind, const char *word, void *ud) {
  struct asked *a = ud;
  if (kind == CLI_WORD_SUBCOMMAND) {
    if (a->nsubs < COMPLETE_MAX_SUBS) snprintf(a->subs[a->nsubs++], sizeof a->subs[0], "%s", word);
    return;
  }
  for (size_t i = 0; i < a->nflags; i++)
    if (strcmp(a->flags[i].name, word) == 0) {
      a->flags[i].value |= kind == CLI_WORD_VALUE_FLAG;
      return;
    }
  if (a->nflags >= COMPLETE_MAX_FLAGS) return;
  snprintf(a->flags[a->nflags].name, sizeof a->flags[0].name, "%s", word);
  a->flags[a->nflags++].value = kind == CLI_WORD_VALUE_FLAG;
}

/* Ask verb v (and its subcommand sub, may be NULL) what it accepts, into *a (emptied first).
 * Whatever the verb would print goes to /dev/null (devnull: an open descriptor of it). */
static void ask(const struct cli_verb *v, const char *sub, int devnull, struct asked *a) {
  char vname[64], sname[64];
  char *args[3] = {vname, sub ? sname : NULL, NULL};
  memset(a, 0, sizeof *a);
  snprintf(vname, sizeof vname, "%s", v->name);
  snprintf(sname, sizeof sname, "%s", sub ? sub : "");
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  if (saved < 0) return;
  dup2(devnull, STDOUT_FILENO);
  cli_query_set(on_word, a);
  v->fn(sub ? 2 : 1, args);
  cli_query_set(NULL, NULL);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
}

/* 1: flag w takes a value (as "w VALUE"), 0: it does not, -1: not a flag the verb or the globals
 * know. a may be NULL (no verb yet). */
static int flag_kind(const struct asked *a, const char *w) {
  bool value;
  const char *g;
  for (size_t i = 0; (g = cli_global_flag(i, &value)); i++)
    if (strcmp(g, w) == 0) return value;
  for (size_t i = 0; a && i < a->nflags; i++)
    if (strcmp(a->flags[i].name, w) == 0) return a->flags[i].value;
  return -1;
}

struct complete {
  const char *cur;
  json_t *set; /* candidates, in order, without repeats */
  struct cli_globals g;
  kube_client *c;
  bool no_client; /* tried and failed: do not try again */
  const char **given; /* positional words already on the line */
  int ngiven;
};

static void emit(struct complete *x, const char *word) {
  if (strncmp(word, x->cur, strlen(x->cur)) != 0 || json_object_size(x->set) >= COMPLETE_MAX_CANDIDATES) return;
  for (int i = 0; i < x->ngiven; i++)
    if (strcmp(x->given[i], word) == 0) return;
  json_object_set_new(x->set, word, json_true());
}

/* The names of every object of res (in the namespace of the command line when namespaced). */
static void emit_names(struct complete *x, const struct kube_res *res) {
  json_t *items = NULL, *it;
  size_t i;
  if (!x->c && !x->no_client) {
    struct kubecfg_opts o = {x->g.kubeconfig, x->g.context, x->g.namespace, x->g.server};
    struct kube_client_opts ko = {0, 0, -1, COMPLETE_REQUEST_MS, "kcmdr-completion"};
    if (kube_client_from_opts(&o, &ko, &x->c) != KD_OK) {
      x->c = NULL;
      x->no_client = true;
    }
  }
  if (!x->c) return;
  if (cli_list(x->c, res, res->namespaced ? cli_system_namespace(&x->g) : NULL, NULL, true, &items) != KD_OK) {
    x->no_client = true; /* an API server that failed once is not asked again in this run */
    kube_client_free(x->c);
    x->c = NULL;
    return;
  }
  json_array_foreach(items, i, it) {
    const char *n = cli_meta_s(it, "name");
    if (n) emit(x, n);
  }
  json_decref(items);
}

/* Candidates for names; returns the directive. */
static int emit_kind(struct complete *x, enum names names) {
  static const struct kube_res res_ns = {"", "v1", "namespaces", "Namespace", false};
  switch (names) {
  case NAMES_BACKUPS_AND_MBS:
    emit_names(x, &cli_res_backup);
    emit_names(x, &cli_res_mb);
    break;
  case NAMES_BACKUPS: emit_names(x, &cli_res_backup); break;
  case NAMES_RESTORES: emit_names(x, &cli_res_restore); break;
  case NAMES_LOCATIONS: emit_names(x, &cli_res_bsl); break;
  case NAMES_NAMESPACES: emit_names(x, &res_ns); break;
  case NAMES_SHELLS:
    emit(x, "bash");
    emit(x, "zsh");
    emit(x, "fish");
    break;
  case NAMES_FILES: return DIRECTIVE_DEFAULT;
  case NAMES_NONE: break;
  }
  return DIRECTIVE_NO_FILES;
}

static void on_deadline(int sig) {
  (void)sig;
  _exit(0); /* nothing was printed yet: candidates go out only at the end */
}

int completion_complete(int argc, char **argv, const struct cli_verb *verbs, size_t nverbs) {
  struct complete x = {0};
  struct asked *a = NULL;
  const struct cli_verb *verb = NULL;
  const char *sub = NULL, *value_of = NULL, *given[COMPLETE_MAX_WORDS];
  bool has_subs = false, dashdash = false;
  int directive = DIRECTIVE_NO_FILES, devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  signal(SIGALRM, on_deadline);
  alarm(COMPLETE_DEADLINE_S);
  if (devnull >= 0) dup2(devnull, STDERR_FILENO); /* a completing shell's terminal shows nothing of ours */
  kd_log_setup(KD_LOG_ERROR, false);
  x.given = given;
  x.cur = argc > 1 ? argv[argc - 1] : "";
  x.g.verbosity = 0;
  char **w = argv + 1;
  int nw = argc > 1 ? argc - 2 : 0;
  if (nw > COMPLETE_MAX_WORDS || !(x.set = json_object()) || !(a = calloc(1, sizeof *a)) || devnull < 0) goto out;
  /* walk the words before CUR as main.c and the verbs read them */
  for (int i = 0; i < nw; i++) {
    const char *word = w[i];
    if (!dashdash && strcmp(word, "--") == 0) {
      dashdash = true;
      continue;
    }
    if (!dashdash && word[0] == '-' && word[1]) {
      const char *eq = strchr(word, '=');
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)(eq ? eq - word : (long)strlen(word)), word);
      const char *val = eq ? eq + 1 : NULL;
      if (!eq && flag_kind(verb ? a : NULL, name) == 1) {
        if (i + 1 == nw) {
          value_of = word; /* CUR is this flag's value */
          break;
        }
        val = w[++i];
      }
      if (val && (strcmp(name, "--namespace") == 0 || strcmp(name, "-n") == 0)) x.g.namespace = val;
      else if (val && strcmp(name, "--kubeconfig") == 0) x.g.kubeconfig = val;
      else if (val && strcmp(name, "--context") == 0) x.g.context = val;
      else if (val && strcmp(name, "--server") == 0) x.g.server = val;
      continue;
    }
    if (!verb) {
      for (size_t v = 0; v < nverbs && !verb; v++)
        if (verbs[v].summary && strcmp(verbs[v].name, word) == 0) verb = &verbs[v];
      if (!verb) goto answer; /* not a verb of ours: nothing to say */
      ask(verb, NULL, devnull, a);
      has_subs = a->nsubs > 0;
      continue;
    }
    if (has_subs && !sub) {
      bool known = false;
      for (size_t k = 0; k < a->nsubs; k++) known |= strcmp(a->subs[k], word) == 0;
      if (!known) goto answer;
      sub = word;
      ask(verb, sub, devnull, a);
      continue;
    }
    if (x.ngiven < COMPLETE_MAX_WORDS) given[x.ngiven++] = word;
  }

  if (value_of) { /* the value of a flag: names when the flag names something we know */
    for (size_t k = 0; k < KD_ARRAY_LEN(flag_values); k++)
      if (strcmp(flag_values[k].flag, value_of) == 0 &&
          (!flag_values[k].verb || (verb && strcmp(flag_values[k].verb, verb->name) == 0))) {
        x.ngiven = 0;
        directive = emit_kind(&x, flag_values[k].names);
        break;
      }
  } else if (!dashdash && x.cur[0] == '-') { /* flags: the verb's, then the global ones */
    bool value;
    const char *gf;
    if (!strchr(x.cur, '=')) {
      x.ngiven = 0;
      for (size_t k = 0; verb && k < a->nflags; k++) emit(&x, a->flags[k].name);
      for (size_t k = 0; (gf = cli_global_flag(k, &value)); k++) emit(&x, gf);
    }
  } else if (!verb) {
    for (size_t v = 0; v < nverbs; v++)
      if (verbs[v].summary) emit(&x, verbs[v].name);
  } else if (has_subs && !sub) {
    for (size_t k = 0; k < a->nsubs; k++) emit(&x, a->subs[k]);
  } else {
    for (size_t k = 0; k < KD_ARRAY_LEN(positional); k++)
      if (strcmp(positional[k].verb, verb->name) == 0 && kd_streq(positional[k].sub, sub)) {
        directive = emit_kind(&x, positional[k].names);
        break;
      }
  }
answer:;
  const char *key;
  json_t *val;
  kd_buf out = KD_BUF_INIT((size_t)COMPLETE_MAX_CANDIDATES * 300);
  json_object_foreach(x.set, key, val) {
    if (kd_buf_addf(&out, "%s\n", key) != KD_OK) break;
  }
  kd_buf_addf(&out, ":%d\n", directive);
  alarm(0); /* all or nothing: the answer is written whole, after the last request */
  if (out.data) fwrite(out.data, 1, out.len, stdout);
  kd_buf_free(&out);
out:
  alarm(0);
  fflush(stdout);
  kube_client_free(x.c);
  json_decref(x.set);
  free(a);
  if (devnull >= 0) close(devnull);
  return CLI_OK;
}
