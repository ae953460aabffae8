/* cli.c — global flags shared by every verb, and the small verbs: version, get. */
#include "cli.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const value_flags[] = {"--kubeconfig", "--context", "--namespace", "-n", "--server", "-v",
                                          "--log-format"};

bool cli_flag_takes_value(const char *arg) {
  for (size_t i = 0; i < KD_ARRAY_LEN(value_flags); i++)
    if (strcmp(arg, value_flags[i]) == 0) return true;
  return false;
}

const char *cli_flag_value(int argc, char **argv, int *i, const char *name, bool *matched) {
  size_t n = strlen(name);
  *matched = false;
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') {
    *matched = true;
    return argv[*i] + n + 1;
  }
  if (argv[*i][n] != '\0') return NULL;
  *matched = true;
  if (*i + 1 >= argc) return NULL;
  (*i)++;
  return argv[*i];
}

int cli_globals_parse(int *argc, char **argv, struct cli_globals *g) {
  memset(g, 0, sizeof *g);
  g->verbosity = 2;
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    bool m;
    const char *v;
    const char **dst = NULL;
    if (strcmp(argv[i], "--") == 0) {
      while (i < *argc) argv[out++] = argv[i++];
      break;
    }
    static const struct {
      const char *flag;
      size_t off;
    } strs[] = {
        {"--kubeconfig", offsetof(struct cli_globals, kubeconfig)},
        {"--context", offsetof(struct cli_globals, context)},
        {"--namespace", offsetof(struct cli_globals, namespace)},
        {"-n", offsetof(struct cli_globals, namespace)},
        {"--server", offsetof(struct cli_globals, server)},
    };
    for (size_t k = 0; k < KD_ARRAY_LEN(strs) && !dst; k++) {
      int j = i;
      v = cli_flag_value(*argc, argv, &j, strs[k].flag, &m);
      if (!m) continue;
      if (!v || !v[0]) {
        fprintf(stderr, "kcmdr: flag %s needs a value\n", strs[k].flag);
        return CLI_USAGE;
      }
      dst = (const char **)((char *)g + strs[k].off);
      *dst = v;
      i = j;
    }
    if (dst) continue;
    int j = i;
    if ((v = cli_flag_value(*argc, argv, &j, "-v", &m)) || m) {
      char *end;
      long lv = v ? strtol(v, &end, 10) : -1;
      if (!v || *end || lv < 0 || lv > 4) {
        fprintf(stderr, "kcmdr: -v needs a level from 0 to 4\n");
        return CLI_USAGE;
      }
      g->verbosity = (int)lv;
      i = j;
      continue;
    }
    if ((v = cli_flag_value(*argc, argv, &j, "--log-format", &m)) || m) {
      if (!v || (strcmp(v, "text") != 0 && strcmp(v, "json") != 0)) {
        fprintf(stderr, "kcmdr: --log-format is text or json\n");
        return CLI_USAGE;
      }
      g->log_json = strcmp(v, "json") == 0;
      i = j;
      continue;
    }
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      g->help = true;
      continue;
    }
    argv[out++] = argv[i];
  }
  argv[out] = NULL;
  *argc = out;
  kd_log_setup((kd_log_level)g->verbosity, g->log_json);
  return CLI_OK;
}

int cli_start(int *argc, char **argv, struct cli_globals *g, const char *usage) {
  int ret = cli_globals_parse(argc, argv, g);
  if (ret != CLI_OK) return ret;
  if (g->help) {
    fputs(usage, stdout);
    return CLI_OK;
  }
  return -1;
}

int cli_client(const struct cli_globals *g, kube_client **out) { return cli_client_with(g, NULL, out); }

int cli_client_with(const struct cli_globals *g, const struct kube_client_opts *opts, kube_client **out) {
  struct kubecfg_opts o = {g->kubeconfig, g->context, g->namespace, g->server};
  kd_rc rc = kube_client_from_opts(&o, opts, out);
  if (rc != KD_OK) {
    fprintf(stderr, "kcmdr: %s\n", kd_errmsg());
    return CLI_FAIL;
  }
  return CLI_OK;
}

int cli_version(int argc, char **argv) {
  struct cli_globals g;
  int rc = cli_start(&argc, argv, &g, "Usage: kcmdr version\n\nPrint the version of kcmdr and of the libraries it runs on.\n");
  if (rc >= 0) return rc;
  if (argc > 1) {
    fprintf(stderr, "kcmdr version: unexpected argument '%s'\n", argv[1]);
    return CLI_USAGE;
  }
  curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
  printf("kcmdr %s\n", KCMDR_VERSION);
  printf("  libcurl %s (%s%s), jansson %s\n", cv->version, cv->ssl_version ? cv->ssl_version : "no TLS",
         (cv->features & CURL_VERSION_HTTP2) ? ", HTTP/2" : "", jansson_version_str());
  printf("  Velero bucket format 1.1.0\n");
  return CLI_OK;
}

struct get_state {
  json_t *items;
  size_t count;
  bool nomem; /* never print a partial list as if it were whole */
};

static bool collect(json_t *item, void *ud) {
  struct get_state *s = ud;
  s->count++;
  if (json_array_append(s->items, item) == 0) return true;
  s->nomem = true;
  return false;
}

static const char get_usage[] =
    "Usage: kcmdr get RESOURCE [NAME] [-l SELECTOR] [-A] [--limit N] [--count]\n"
    "\n"
    "Print objects of RESOURCE (plural, Kind, resource.group or group/version/resource) as JSON:\n"
    "one object with NAME, else a List of every object (read page by page).\n"
    "\n"
    "  -l, --selector S   label selector (k=v, k!=v, k in (a,b), k, !k)\n"
    "  -A                 all namespaces\n"
    "  --limit N          page size for lists (default 500)\n"
    "  --count            print only the number of objects\n";

int cli_get(int argc, char **argv) {
  struct cli_globals g;
  int ret = cli_start(&argc, argv, &g, get_usage);
  if (ret >= 0) return ret;
  const char *resource = NULL, *name = NULL, *selector = NULL;
  bool all_ns = false, count_only = false;
  long limit = 0;
  for (int i = 1; i < argc; i++) {
    if ((strcmp(argv[i], "-l") == 0 || strcmp(argv[i], "--selector") == 0) && i + 1 < argc) selector = argv[++i];
    else if (strncmp(argv[i], "--selector=", 11) == 0) selector = argv[i] + 11;
    else if (strcmp(argv[i], "-A") == 0 || strcmp(argv[i], "--all-namespaces") == 0) all_ns = true;
    else if (strcmp(argv[i], "--count") == 0) count_only = true;
    else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
      char *end;
      limit = strtol(argv[++i], &end, 10);
      if (*end || limit <= 0) {
        fprintf(stderr, "kcmdr get: --limit needs a positive number\n");
        return CLI_USAGE;
      }
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "kcmdr get: unknown flag '%s'\n%s", argv[i], get_usage);
      return CLI_USAGE;
    } else if (!resource) resource = argv[i];
    else if (!name) name = argv[i];
    else {
      fprintf(stderr, "kcmdr get: unexpected argument '%s'\n", argv[i]);
      return CLI_USAGE;
    }
  }
  if (!resource) {
    fprintf(stderr, "kcmdr get: which resource?\n%s", get_usage);
    return CLI_USAGE;
  }
  kube_client *c = NULL;
  json_t *out = NULL;
  struct get_state st = {json_array(), 0, false};
  struct kube_res res;
  kd_rc rc;
  ret = CLI_FAIL;
  if (!st.items || cli_client(&g, &c) != CLI_OK) goto fail;
  if ((rc = kube_resolve(c, resource, &res)) != KD_OK) goto fail_msg;
  const char *ns = all_ns || !res.namespaced ? NULL : kube_client_namespace(c);
  if (name) {
    if ((rc = kube_get(c, &res, ns, name, &out)) != KD_OK) goto fail_msg;
  } else {
    struct kube_list_opts lo = {selector, NULL, limit, NULL};
    char *rv = NULL;
    if ((rc = kube_list(c, &res, ns, &lo, collect, &st, &rv)) != KD_OK) goto fail_msg;
    if (st.nomem) {
      free(rv);
      kd_fail(KD_ERR_NOMEM, "out of memory holding the list");
      goto fail_msg;
    }
    out = json_pack("{s:s,s:s,s:{s:s?},s:O}", "apiVersion", "v1", "kind", "List", "metadata", "resourceVersion", rv,
                    "items", st.items);
    free(rv);
  }
  if (count_only) printf("%zu\n", name ? (size_t)1 : st.count);
  else if (out) json_dumpf(out, stdout, JSON_INDENT(2)), fputc('\n', stdout);
  ret = CLI_OK;
  goto fail;
fail_msg:
  fprintf(stderr, "kcmdr get: %s\n", kd_errmsg());
fail:
  json_decref(out);
  json_decref(st.items);
  kube_client_free(c);
  return ret;
}

/* ---- install ---- */

extern const char manifest_crd_mb[], manifest_crd_velero[], manifest_controller[];

static const char install_usage[] =
    "Usage: kcmdr install [--namespace NS] [--image IMAGE] [--with-velero-crds]\n"
    "\n"
    "Print the manifests that install kcmdr: the ManagementBackup CRD, the controller's service\n"
    "account, least-privilege RBAC and Deployment. Apply them with:\n"
    "  kcmdr install | kubectl apply -f -\n"
    "\n"
    "  --namespace NS        system namespace (default kcm-system)\n"
    "  --image IMAGE         controller image (default kcmdr:" KCMDR_VERSION ")\n"
    "  --with-velero-crds    also the velero.io/v1 CRDs, for clusters without Velero installed\n";

/* Print text with every "kcm-system" replaced by ns and "kcmdr:latest" by image. */
static void print_substituted(const char *text, const char *ns, const char *image) {
  for (const char *p = text; *p;) {
    if (strncmp(p, "kcm-system", 10) == 0) {
      fputs(ns, stdout);
      p += 10;
    } else if (strncmp(p, "kcmdr:latest", 12) == 0) {
      fputs(image, stdout);
      p += 12;
    } else {
      fputc(*p++, stdout);
    }
  }
}

static bool dns_label(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-')) return false;
  return true;
}

int cli_install(int argc, char **argv) {
  struct cli_globals g;
  int ret = cli_start(&argc, argv, &g, install_usage);
  if (ret >= 0) return ret;
  const char *ns = g.namespace ? g.namespace : "kcm-system", *image = "kcmdr:" KCMDR_VERSION;
  bool velero = false;
  for (int i = 1; i < argc; i++) {
    bool m;
    const char *v = cli_flag_value(argc, argv, &i, "--image", &m);
    if (m && !v) {
      fprintf(stderr, "kcmdr install: --image needs a value\n");
      return CLI_USAGE;
    }
    if (m) image = v;
    else if (strcmp(argv[i], "--with-velero-crds") == 0) velero = true;
    else {
      fprintf(stderr, "kcmdr install: unknown argument '%s'\n%s", argv[i], install_usage);
      return CLI_USAGE;
    }
  }
  if (!dns_label(ns)) {
    fprintf(stderr, "kcmdr install: '%s' is not a valid namespace name\n", ns);
    return CLI_USAGE;
  }
  if (!image[0] || strpbrk(image, " \t\n\"'")) {
    fprintf(stderr, "kcmdr install: '%s' is not a valid image reference\n", image);
    return CLI_USAGE;
  }
  fputs(manifest_crd_mb, stdout);
  if (velero) {
    fputs("---\n", stdout);
    fputs(manifest_crd_velero, stdout);
  }
  fputs("---\n", stdout);
  print_substituted(manifest_controller, ns, image);
  return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}
