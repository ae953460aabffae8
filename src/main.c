/* main.c — verb dispatch only. Each verb lives in its own file and has the signature of
 * kd_verb_fn: it gets argv from the verb on and returns the process exit code
 * (0 success, 1 failure, 2 usage error). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "controller.h"

struct verb {
  const char *name;
  const char *summary;
  kd_verb_fn fn;
};

static const struct verb verbs[] = {
    {"controller", "reconcile ManagementBackups into Velero Backups (the kcm backup controller)", controller_main},
    {"install", "print the manifests that install kcmdr (kcmdr install | kubectl apply -f -)", cli_install},
    {"version", "print the version of this binary", cli_version},
    {"get", "print Kubernetes objects as JSON (client check: kcmdr get RESOURCE [NAME])", cli_get},
    {"backup", "create, list, describe, show logs of, delete and verify backups (kcmdr backup --help)", cli_backup},
    {"restore", "create, list, describe and show logs of restores (kcmdr restore --help)", cli_restore},
};

static void usage(FILE *f) {
  fprintf(f,
          "kcmdr — disaster recovery for k0rdent kcm management clusters\n"
          "\n"
          "Usage: kcmdr [global flags] VERB [flags] [args]\n"
          "\n"
          "Verbs:\n");
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
  fprintf(f,
          "\n"
          "Global flags (before or after the verb):\n"
          "  --kubeconfig PATH   kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)\n"
          "  --context NAME      kubeconfig context to use (default: current-context)\n"
          "  -n, --namespace NS  namespace (default: the context's, else \"default\")\n"
          "  -v LEVEL            log verbosity 0-4 (default 2)\n"
          "  -h, --help          this help; `kcmdr VERB --help` for a verb's own\n"
          "\n"
          "Exit codes: 0 success, 1 failure (the message says why), 2 usage error.\n");
}

int main(int argc, char **argv) {
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
  for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++) {
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
  fprintf(stderr, "kcmdr: unknown verb '%s'\nUsage: kcmdr [global flags] VERB [flags] [args]; see kcmdr --help\n",
          argv[i]);
  return 2;
}
