/* main.c — verb dispatch only. Each verb lives in its own file and has the signature of
 * kd_verb_fn: it gets argv from the verb on and returns the process exit code
 * (0 success, 1 failure, 2 usage error). The program's name decides how it runs: as
 * kubectl-kcmdr (a kubectl plugin, `kubectl kcmdr ...`) its usage texts say `kubectl kcmdr`; as
 * kubectl_complete-kcmdr (kubectl's plugin completion) it answers as `kcmdr __complete`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "completion.h"
#include "controller.h"

static int complete_verb(int argc, char **argv);

/* summary NULL: hidden (not in --help, not completed) */
static const struct cli_verb verbs[] = {
    {"controller", "reconcile ManagementBackups into Velero Backups (the kcm backup controller)", controller_main},
    {"install", "print the manifests that install kcmdr (kcmdr install | kubectl apply -f -)", cli_install},
    {"version", "print the version of this binary", cli_version},
    {"get", "print Kubernetes objects as JSON (client check: kcmdr get RESOURCE [NAME])", cli_get},
    {"backup", "create, list, describe, show logs of, delete and verify backups (kcmdr backup --help)", cli_backup},
    {"restore", "create, list, describe and show logs of restores (kcmdr restore --help)", cli_restore},
    {"completion", "print a shell completion script: bash, zsh or fish (kcmdr completion --help)", completion_main},
    {"__complete", NULL, complete_verb},
};

static int complete_verb(int argc, char **argv) { return completion_complete(argc, argv, verbs, KD_ARRAY_LEN(verbs)); }

static const char usage_head[] =
    "kcmdr — disaster recovery for k0rdent kcm management clusters\n"
    "\n"
    "Usage: kcmdr [global flags] VERB [flags] [args]\n"
    "\n"
    "Verbs:\n";
static const char usage_tail[] =
    "\n"
    "Global flags (before or after the verb):\n"
    "  --kubeconfig PATH       kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)\n"
    "  --context NAME          kubeconfig context to use (default: current-context)\n"
    "  -n, --namespace NS      namespace (default: the context's, else \"default\")\n"
    "  --server URL            the API server's address, instead of the kubeconfig cluster's\n"
    "  -v LEVEL                log verbosity 0-4 (default 2)\n"
    "  --log-format text|json  how log lines are written on stderr (default text)\n"
    "  -h, --help              this help; `kcmdr VERB --help` for a verb's own\n"
    "\n"
    "Shell completion: kcmdr completion --help. As a kubectl plugin: install this binary as\n"
    "kubectl-kcmdr on PATH (make install does), then `kubectl kcmdr VERB ...`.\n"
    "\n"
    "Exit codes: 0 success, 1 failure (the message says why), 2 usage error.\n";

static void usage(FILE *f) {
  cli_put_usage(f, usage_head);
  for (size_t i = 0; i < KD_ARRAY_LEN(verbs); i++)
    if (verbs[i].summary) fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
  cli_put_usage(f, usage_tail);
}

int main(int argc, char **argv) {
  static const char *verb_names[KD_ARRAY_LEN(verbs) + 1];
  for (size_t v = 0; v < KD_ARRAY_LEN(verbs); v++) verb_names[v] = verbs[v].name;
  const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
  base = base ? base + 1 : argc > 0 ? argv[0] : "kcmdr";
  if (strcmp(base, "kubectl_complete-kcmdr") == 0) return complete_verb(argc, argv);
  if (strcmp(base, "kubectl-kcmdr") == 0) cli_set_prog("kubectl kcmdr", verb_names);
  else cli_set_prog("kcmdr", verb_names);
  int i = 1;
  /* the verb is the first argument that is not a flag or a flag's value */
  while (i < argc && argv[i][0] == '-') {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--version") == 0) return cli_version(1, (char *[]){"version", NULL});
    if (!strchr(argv[i], '=') && i + 1 < argc && cli_flag_takes_value(argv[i])) i++;
    i++;
  }
  if (i >= argc) {
    usage(stderr);
    return 2;
  }
  for (size_t v = 0; v < KD_ARRAY_LEN(verbs); v++) {
    if (strcmp(argv[i], verbs[v].name) == 0) {
      /* hand the verb every argument except itself, so global flags work on either side */
      char *args[256];
      int n = 0;
      if (argc > (int)(sizeof args / sizeof args[0]) - 1) {
        fprintf(stderr, "kcmdr: too many arguments\n");
        return 2;
      }
      args[n++] = argv[i];
      for (int k = 1; k < argc; k++)
        if (k != i) args[n++] = argv[k];
      args[n] = NULL;
      return verbs[v].fn(n, args);
    }
  }
  fprintf(stderr, "kcmdr: unknown verb '%s'\n", argv[i]);
  cli_put_usage(stderr, "Usage: kcmdr [global flags] VERB [flags] [args]; see kcmdr --help\n");
  return 2;
}
