/* cli.c — global flags shared by every verb, the small verbs (version, get, install), and what
 * the backup and restore verbs share: flags, waiting, progress, storage (printing: cli_print.c). */
#include "cli.h"
#include "crypt.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>
#include <zlib.h>

#include "cron.h"
#include "engine.h"

static const char *const value_flags[] = {"--kubeconfig", "--context", "--namespace", "-n", "--server", "-v",
                                          "--log-format"};

bool cli_flag_takes_value(const char *arg) {
  for (size_t i = 0; i < KD_ARRAY_LEN(value_flags); i++)
    if (strcmp(arg, value_flags[i]) == 0) return true;
  return false;
}

/* ---- completion's questions and the program's name (see cli.h) ---- */

static cli_query_fn query_fn;
static void *query_ud;
static const char *prog_name = "kcmdr";
static const char *const *prog_verbs;

void cli_query_set(cli_query_fn fn, void *ud) {
  query_fn = fn;
  query_ud = ud;
}

const char *cli_global_flag(size_t i, bool *value) {
  static const char *const bool_flags[] = {"-h", "--help"};
  *value = i < KD_ARRAY_LEN(value_flags);
  if (*value) return value_flags[i];
  i -= KD_ARRAY_LEN(value_flags);
  return i < KD_ARRAY_LEN(bool_flags) ? bool_flags[i] : NULL;
}

void cli_set_prog(const char *prog, const char *const *verbs) {
  prog_name = prog;
  prog_verbs = verbs;
}

const char *cli_prog(void) { return prog_name; }

/* True when p (just after "kcmdr ") starts with a verb name, '[' or an upper-case word. */
static bool prog_word_follows(const char *p) {
  if (*p == '[' || (*p >= 'A' && *p <= 'Z')) return true;
  for (size_t k = 0; prog_verbs && prog_verbs[k]; k++) {
    size_t n = strlen(prog_verbs[k]);
    if (strncmp(p, prog_verbs[k], n) == 0 && !isalnum((unsigned char)p[n]) && p[n] != '-') return true;
  }
  return false;
}

void cli_put_usage(FILE *f, const char *usage) {
  bool other = strcmp(prog_name, "kcmdr") != 0;
  for (const char *p = usage; *p;) {
    if (other && strncmp(p, "kcmdr ", 6) == 0 && prog_word_follows(p + 6) &&
        (p == usage || !(isalnum((unsigned char)p[-1]) || strchr("-_/.", p[-1])))) {
      fprintf(f, "%s ", prog_name);
      p += 6;
      continue;
    }
    const char *q = p + 1;
    while (*q && *q != 'k') q++;
    fwrite(p, 1, (size_t)(q - p), f);
    p = q;
  }
}

/* The flags of a usage text, reported to query_fn: every indented line that starts with '-' lists
 * its flags up to the first gap of two spaces ("  -l, --selector S   label selector"); a word that
 * is not a flag after a group of flags is their value ("S"), so they take one; a word that is not
 * a flag anywhere else is text ("  - every file ..."), and ends the line's flags. */
static void query_usage_flags(const char *usage) {
  for (const char *line = usage; *line;) {
    const char *end = strchr(line, '\n'), *p = line;
    if (!end) end = line + strlen(line);
    while (p < end && *p == ' ') p++;
    if (p > line && p < end && *p == '-') {
      const char *group[8];
      size_t glen[8], ng = 0;
      while (p < end) {
        const char *t = p;
        while (p < end && *p != ' ' && *p != ',') p++;
        size_t n = (size_t)(p - t);
        bool flag = n > 1 && t[0] == '-' && (isalnum((unsigned char)t[1]) || (t[1] == '-' && n > 2));
        if (flag && ng < KD_ARRAY_LEN(group)) {
          group[ng] = t;
          glen[ng++] = n;
        } else if (!flag) { /* a value: the group before it takes one; else the text has begun */
          if (!ng) break;
          for (size_t k = 0; k < ng; k++) {
            char w[64];
            snprintf(w, sizeof w, "%.*s", (int)glen[k], group[k]);
            query_fn(CLI_WORD_VALUE_FLAG, w, query_ud);
          }
          ng = 0;
        }
        if (p < end && *p == ',') p++;
        if (p + 1 < end && p[0] == ' ' && p[1] == ' ') break;
        if (p < end && *p == ' ') p++;
      }
      for (size_t k = 0; k < ng; k++) {
        char w[64];
        snprintf(w, sizeof w, "%.*s", (int)glen[k], group[k]);
        query_fn(CLI_WORD_FLAG, w, query_ud);
      }
    }
    line = *end ? end + 1 : end;
  }
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
  if (query_fn) {
    query_usage_flags(usage);
    return CLI_OK;
  }
  if (g->help) {
    cli_put_usage(stdout, usage);
    return CLI_OK;
  }
  return -1;
}

int cli_client(const struct cli_globals *g, kube_client **out) { return cli_client_with(g, NULL, out); }

int cli_client_with(const struct cli_globals *g, const struct kube_client_opts *opts, kube_client **out) {
  if (query_fn) return CLI_FAIL; /* a verb only asked what it accepts reaches no cluster */
  struct kubecfg_opts o = {g->kubeconfig, g->context, g->namespace, g->server};
  kd_rc rc = kube_client_from_opts(&o, opts, out);
  if (rc != KD_OK) {
    cli_printf(stderr, "kcmdr: %s\n", kd_errmsg());
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
    "  -l, --selector S        label selector (k=v, k!=v, k in (a,b), k, !k)\n"
    "  -A, --all-namespaces    all namespaces\n"
    "  --limit N               page size for lists (default 500)\n"
    "  --count                 print only the number of objects\n";

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
      fprintf(stderr, "kcmdr get: unknown flag '%s'\n", argv[i]);
      cli_put_usage(stderr, get_usage);
      return CLI_USAGE;
    } else if (!resource) resource = argv[i];
    else if (!name) name = argv[i];
    else {
      fprintf(stderr, "kcmdr get: unexpected argument '%s'\n", argv[i]);
      return CLI_USAGE;
    }
  }
  if (!resource) {
    fprintf(stderr, "kcmdr get: which resource?\n");
    cli_put_usage(stderr, get_usage);
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

bool cli_label_valid(const char *s) {
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
  if (!cli_label_valid(ns)) {
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

/* ---- what the backup and restore verbs share ---- */

const struct kube_res cli_res_backup = {"velero.io", "v1", "backups", "Backup", true};
const struct kube_res cli_res_restore = {"velero.io", "v1", "restores", "Restore", true};
const struct kube_res cli_res_bsl = {"velero.io", "v1", "backupstoragelocations", "BackupStorageLocation", true};
const struct kube_res cli_res_dbr = {"velero.io", "v1", "deletebackuprequests", "DeleteBackupRequest", true};
const struct kube_res cli_res_mb = {"k0rdent.mirantis.com", "v1beta1", "managementbackups", "ManagementBackup", false};
const struct kube_res cli_res_configmap = {"", "v1", "configmaps", "ConfigMap", true};

const char *cli_system_namespace(const struct cli_globals *g) {
  return g->namespace && g->namespace[0] ? g->namespace : CLI_SYSTEM_NAMESPACE;
}

static bool alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool cli_name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 253 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1])) return false;
  for (size_t i = 0; i < n; i++)
    if (!alnum_lower(s[i]) && s[i] != '-' && s[i] != '.') return false;
  return true;
}

bool cli_output_parse(const char *s, enum cli_output *out) {
  if (!s || !s[0]) *out = CLI_OUT_TABLE;
  else if (strcmp(s, "json") == 0) *out = CLI_OUT_JSON;
  else if (strcmp(s, "yaml") == 0) *out = CLI_OUT_YAML;
  else if (strcmp(s, "wide") == 0) *out = CLI_OUT_WIDE;
  else return false;
  return true;
}

/* ---- what the subcommands of backup and restore look up, check and print ---- */

static const char *field_s(json_t *o, const char *section, const char *k) {
  return json_string_value(json_object_get(json_object_get(o, section), k));
}
const char *cli_meta_s(json_t *o, const char *k) { return field_s(o, "metadata", k); }
const char *cli_spec_s(json_t *o, const char *k) { return field_s(o, "spec", k); }
const char *cli_status_s(json_t *o, const char *k) { return field_s(o, "status", k); }
const char *cli_or_none(const char *s) { return s && s[0] ? s : "<none>"; }

const char *cli_phase(json_t *o) {
  const char *p = cli_status_s(o, "phase");
  return p && p[0] ? p : "New";
}

json_t *cli_by_name(json_t *arr, const char *name) {
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o) {
    if (kd_streq(cli_meta_s(o, "name"), name)) return o;
  }
  return NULL;
}

struct list_ctx {
  json_t *items;
  bool nomem; /* never a partial list as if it were whole */
};

static bool list_item(json_t *item, void *ud) {
  struct list_ctx *l = ud;
  if (json_array_append(l->items, item) == 0) return true;
  l->nomem = true;
  return false;
}

static int cmp_name(const void *a, const void *b) {
  const char *x = cli_meta_s(*(json_t *const *)a, "name"), *y = cli_meta_s(*(json_t *const *)b, "name");
  return strcmp(x ? x : "", y ? y : "");
}

kd_rc cli_list(kube_client *c, const struct kube_res *res, const char *ns, const char *selector, bool optional,
               json_t **out) {
  struct kube_list_opts lo = {selector, NULL, 0, NULL};
  struct list_ctx l = {json_array(), false};
  json_t **v = NULL;
  size_t n;
  kd_rc rc;
  *out = NULL;
  if (!l.items) return kd_fail(KD_ERR_NOMEM, "out of memory");
  rc = kube_list(c, res, ns, &lo, list_item, &l, NULL);
  if (rc == KD_ERR_NOTFOUND && optional) rc = KD_OK;
  else if (rc == KD_OK && l.nomem) rc = kd_fail(KD_ERR_NOMEM, "out of memory holding the list");
  if (rc != KD_OK) goto fail;
  if ((n = json_array_size(l.items)) > 1) {
    if (!(v = calloc(n, sizeof *v))) {
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
      goto fail;
    }
    for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(l.items, i));
    qsort(v, n, sizeof *v, cmp_name);
    json_array_clear(l.items);
    for (size_t i = 0; i < n; i++) /* each reference is taken, also on failure */
      if (json_array_append_new(l.items, v[i])) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    if (rc != KD_OK) goto fail;
  }
  *out = l.items;
  l.items = NULL;
fail:
  free(v);
  json_decref(l.items);
  return rc;
}

int cli_check_output(const char *verb, const char *output, bool wide, enum cli_output *fmt) {
  if (cli_output_parse(output, fmt) && (wide || *fmt != CLI_OUT_WIDE)) return -1;
  fprintf(stderr, "kcmdr %s: -o takes %sjson or yaml\n", verb, wide ? "wide, " : "");
  return CLI_USAGE;
}

int cli_check_timeout(const char *verb, const char *timeout, int64_t *ms) {
  if (!timeout || cli_parse_timeout(timeout, ms)) return -1;
  fprintf(stderr, "kcmdr %s: --timeout takes a duration such as 90s or 10m, not '%s'\n", verb, timeout);
  return CLI_USAGE;
}

int cli_check_names(const char *verb, const char *usage, int npos) {
  if (npos > 0) return -1;
  fprintf(stderr, "kcmdr %s: which NAME?\n", verb);
  cli_put_usage(stderr, usage);
  return CLI_USAGE;
}

int cli_check_name(const char *verb, const char *name) {
  if (cli_name_valid(name)) return -1;
  fprintf(stderr, "kcmdr %s: \"%s\" is not a valid name (lower-case letters, digits, '-' and '.', at most 253)\n", verb,
          name);
  return CLI_USAGE;
}

int cli_subcommand(int argc, char **argv, const char *verb, const char *usage, const struct cli_sub *subs,
                   size_t nsubs) {
  struct cli_globals g;
  int ret = cli_globals_parse(&argc, argv, &g);
  if (ret != CLI_OK) return ret;
  if (query_fn && argc < 2) {
    for (size_t i = 0; i < nsubs; i++) query_fn(CLI_WORD_SUBCOMMAND, subs[i].name, query_ud);
    return CLI_OK;
  }
  if (argc < 2) {
    cli_put_usage(g.help ? stdout : stderr, usage);
    return g.help ? CLI_OK : CLI_USAGE;
  }
  for (size_t i = 0; i < nsubs; i++) {
    if (strcmp(argv[1], subs[i].name) != 0) continue;
    if (g.help) {
      cli_put_usage(stdout, subs[i].usage);
      return CLI_OK;
    }
    return subs[i].fn(&g, argc - 1, argv + 1);
  }
  fprintf(stderr, "kcmdr %s: unknown subcommand '%s'\n", verb, argv[1]);
  cli_put_usage(stderr, usage);
  return CLI_USAGE;
}

int cli_describe(const struct cli_globals *g, int argc, char **argv, const char *verb, const char *usage,
                 cli_describe_fn fn, void *ud) {
  const char *output = NULL, *pos[64];
  enum cli_output fmt = CLI_OUT_TABLE;
  int npos, ret;
  const struct cli_opt opts[] = {{"--output", "-o", CLI_OPT_STRING, &output}};
  if ((ret = cli_parse_opts(argc, argv, verb, opts, KD_ARRAY_LEN(opts), pos, 64, &npos)) >= 0 ||
      (ret = cli_check_output(verb, output, false, &fmt)) >= 0 || (ret = cli_check_names(verb, usage, npos)) >= 0)
    return ret;
  const char *ns = cli_system_namespace(g);
  kube_client *c = NULL;
  ret = CLI_FAIL;
  if (cli_client(g, &c) != CLI_OK) goto fail;
  ret = CLI_OK;
  for (int k = 0; k < npos; k++)
    if (fn(c, ns, pos[k], k, fmt, ud) != CLI_OK) ret = CLI_FAIL;
fail:
  kube_client_free(c);
  return ret;
}

/* ---- flags ---- */

static bool opt_is(const char *arg, const char *flag, const char **val) {
  size_t n = strlen(flag);
  *val = NULL;
  if (strncmp(arg, flag, n) != 0) return false;
  if (arg[n] == '\0') return true;
  if (arg[n] == '=') {
    *val = arg + n + 1;
    return true;
  }
  /* a one-letter alias takes its value attached: -ojson */
  if (flag[0] == '-' && flag[1] && flag[1] != '-' && !flag[2]) {
    *val = arg + n;
    return true;
  }
  return false;
}

/* The items of v (split at ',', empty ones dropped) appended to *dst (made on first use).
 * -1 when done; CLI_USAGE after saying why when v has no item (an unset shell variable: '',
 * ',,') or is not UTF-8; CLI_FAIL on no memory. */
static int list_add(json_t **dst, const char *v, const char *verb, const char *flag) {
  size_t added = 0;
  if (!*dst && !(*dst = json_array())) goto nomem;
  for (const char *p = v;;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n) {
      if (!cli_utf8_valid(p, n)) { /* jansson would refuse it too, as if out of memory */
        char shown[200];
        snprintf(shown, sizeof shown, "%s", v);
        cli_text_clean(shown, strlen(shown));
        fprintf(stderr, "kcmdr %s: %s '%s' is not valid UTF-8\n", verb, flag, shown);
        return CLI_USAGE;
      }
      if (json_array_append_new(*dst, json_stringn(p, n))) goto nomem;
      added++;
    }
    if (!end) break;
    p = end + 1;
  }
  if (added) return -1;
  fprintf(stderr, "kcmdr %s: %s '%s' names nothing (an unset shell variable?): give at least one value, or leave the "
                  "flag out\n", verb, flag, strlen(v) < 20 ? v : "...");
  return CLI_USAGE;
nomem:
  fprintf(stderr, "kcmdr %s: out of memory\n", verb);
  return CLI_FAIL;
}

int cli_parse_opts(int argc, char **argv, const char *verb, const struct cli_opt *opts, size_t nopts,
                   const char **pos, int max_pos, int *npos) {
  bool flags_done = false;
  *npos = 0;
  if (query_fn) {
    for (size_t k = 0; k < nopts; k++) {
      enum cli_word w = opts[k].kind == CLI_OPT_BOOL ? CLI_WORD_FLAG : CLI_WORD_VALUE_FLAG;
      query_fn(w, opts[k].name, query_ud);
      if (opts[k].alias) query_fn(w, opts[k].alias, query_ud);
    }
    return CLI_OK;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!flags_done && strcmp(a, "--") == 0) {
      flags_done = true;
      continue;
    }
    if (flags_done || a[0] != '-' || a[1] == '\0') {
      if (*npos >= max_pos) {
        fprintf(stderr, "kcmdr %s: unexpected argument '%s'; see kcmdr %s --help\n", verb, a, verb);
        return CLI_USAGE;
      }
      pos[(*npos)++] = a;
      continue;
    }
    const struct cli_opt *o = NULL;
    const char *val = NULL;
    for (size_t k = 0; k < nopts && !o; k++) {
      if (opt_is(a, opts[k].name, &val) || (opts[k].alias && opt_is(a, opts[k].alias, &val))) o = &opts[k];
    }
    if (!o) {
      fprintf(stderr, "kcmdr %s: unknown flag '%s'; see kcmdr %s --help\n", verb, a, verb);
      return CLI_USAGE;
    }
    if (o->kind == CLI_OPT_BOOL) {
      bool *b = o->dst;
      if (!val || strcmp(val, "true") == 0) *b = true;
      else if (strcmp(val, "false") == 0) *b = false;
      else {
        fprintf(stderr, "kcmdr %s: %s takes true or false, not '%s'\n", verb, o->name, val);
        return CLI_USAGE;
      }
      continue;
    }
    if (!val) {
      if (i + 1 >= argc) {
        fprintf(stderr, "kcmdr %s: %s needs a value; see kcmdr %s --help\n", verb, o->name, verb);
        return CLI_USAGE;
      }
      val = argv[++i];
    }
    if (o->kind == CLI_OPT_STRING) {
      *(const char **)o->dst = val;
    } else {
      int r = list_add(o->dst, val, verb, o->name);
      if (r != -1) return r;
    }
  }
  return -1;
}

bool cli_parse_timeout(const char *s, int64_t *ms) {
  int64_t ns;
  if (!s || cron_parse_go_duration(s, &ns) != KD_OK || ns < 0) return false;
  *ms = ns / 1000000 + (ns % 1000000 ? 1 : 0);
  return true;
}

/* ---- confirmation ---- */

bool cli_confirm(const char *question, bool *no_tty) {
  char line[64];
  *no_tty = !isatty(STDIN_FILENO);
  if (*no_tty) return false;
  fprintf(stderr, "%s [y/N]: ", question);
  fflush(stderr);
  if (!fgets(line, sizeof line, stdin)) return false;
  line[strcspn(line, "\r\n")] = '\0';
  return strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0;
}

/* ---- following one object ---- */

struct wait_ctx {
  const char *name;
  cli_wait_fn fn;
  void *ud;
  bool seen, done;
};

static bool wait_item(json_t *item, void *ud) {
  struct wait_ctx *w = ud;
  if (!kd_streq(cli_meta_s(item, "name"), w->name)) return true;
  w->seen = true;
  if (w->fn(item, w->ud)) w->done = true;
  return !w->done;
}

static bool wait_event(enum kube_event_type type, json_t *obj, void *ud) {
  struct wait_ctx *w = ud;
  if (type == KUBE_BOOKMARK || !kd_streq(cli_meta_s(obj, "name"), w->name)) return true;
  if (w->fn(type == KUBE_DELETED ? NULL : obj, w->ud)) w->done = true;
  return !w->done;
}

kd_rc cli_wait(kube_client *c, const struct kube_res *res, const char *ns, const char *name, int64_t timeout_ms,
               cli_wait_fn fn, void *ud) {
  char fs[600], *rv = NULL;
  struct wait_ctx w = {name, fn, ud, false, false};
  int64_t deadline = timeout_ms > 0 ? kd_now_ms() + timeout_ms : 0;
  int failures = 0;
  kd_rc rc = KD_OK;
  if (snprintf(fs, sizeof fs, "metadata.name=%s", name) >= (int)sizeof fs)
    return kd_fail(KD_ERR_INVALID, "name too long: %.80s...", name);
  for (;;) {
    if (!rv) {
      struct kube_list_opts lo = {NULL, fs, 0, NULL};
      w.seen = false;
      if ((rc = kube_list(c, res, ns, &lo, wait_item, &w, &rv)) != KD_OK) goto fail;
      if (w.done || (!w.seen && fn(NULL, ud))) goto fail; /* rc is KD_OK */
    }
    long secs = 60;
    if (deadline) {
      int64_t left = deadline - kd_now_ms();
      if (left <= 0) {
        rc = kd_fail(KD_ERR_TIMEOUT, "gave up waiting after %lld s", (long long)(timeout_ms / 1000));
        goto fail;
      }
      if (left / 1000 + 1 < secs) secs = (long)(left / 1000 + 1);
    }
    struct kube_watch_opts wo = {NULL, fs, rv, secs, NULL};
    char *last = NULL;
    rc = kube_watch(c, res, ns, &wo, wait_event, &w, &last);
    if (last) {
      free(rv);
      rv = last;
    }
    if (w.done) {
      rc = KD_OK;
      goto fail;
    }
    if (rc == KD_ERR_GONE) { /* history compacted: start over from a fresh list */
      free(rv);
      rv = NULL;
      continue;
    }
    if (rc == KD_OK) {
      failures = 0;
      continue;
    }
    if ((rc != KD_ERR_TRANSPORT && rc != KD_ERR_TIMEOUT && rc != KD_ERR_HTTP) || ++failures > 5) goto fail;
    kd_sleep_ms(kube_backoff_ms(failures - 1, 500, 8000, (unsigned)kd_now_ms()), NULL);
    free(rv); /* the object may have changed meanwhile: list again */
    rv = NULL;
  }
fail:
  free(rv);
  if (rc != KD_OK && rc != KD_ERR_TIMEOUT) kd_fail_wrap(rc, "following %s %s", res->kind, name);
  return rc;
}

/* ---- progress ---- */

void cli_progress_init(struct cli_progress *p, FILE *f, const char *what, const char *verb) {
  memset(p, 0, sizeof *p);
  p->f = f;
  p->tty = isatty(fileno(f));
  p->done = p->total = -1;
  snprintf(p->what, sizeof p->what, "%s", what);
  snprintf(p->verb, sizeof p->verb, "%s", verb);
}

static void progress_draw(struct cli_progress *p) {
  enum { BAR = 30 };
  long long done = p->done < 0 ? 0 : p->done, total = p->total < 0 ? 0 : p->total;
  if (p->tty) {
    int fill = total > 0 ? (int)(done * BAR / total) : 0;
    if (fill > BAR) fill = BAR;
    fprintf(p->f, "\r[");
    for (int i = 0; i < BAR; i++) fputc(i < fill ? '#' : '.', p->f);
    fprintf(p->f, "] %3d%%  %lld/%lld items %s  %-16s\033[K", total > 0 ? (int)(done * 100 / total) : 0, done, total,
            p->verb, p->phase[0] ? p->phase : "New");
    p->drawn = true;
  } else {
    fprintf(p->f, "%s: %s, %lld of %lld items %s\n", p->what, p->phase[0] ? p->phase : "New", done, total, p->verb);
  }
  fflush(p->f);
  p->printed = true;
  p->pending = false;
  p->last_ms = kd_now_ms();
}

void cli_progress_update(struct cli_progress *p, const char *phase, long long done, long long total) {
  bool phase_changed = strncmp(p->phase, phase ? phase : "", sizeof p->phase - 1) != 0;
  if (!phase_changed && done == p->done && total == p->total && p->printed) return;
  snprintf(p->phase, sizeof p->phase, "%s", phase ? phase : "");
  cli_text_clean(p->phase, strlen(p->phase)); /* the server's; compared above as it came */
  p->done = done;
  p->total = total;
  p->pending = true;
  /* a terminal redraws in place at every change; plain lines come at most once a second, and at
   * once when the phase changes */
  if (p->tty || phase_changed || kd_now_ms() - p->last_ms >= 1000) progress_draw(p);
}

void cli_progress_end(struct cli_progress *p) {
  if (p->pending) progress_draw(p);
  if (p->drawn) fputc('\n', p->f);
  p->drawn = false;
  fflush(p->f);
}

kd_rc cli_created(FILE *f, json_t *out, enum cli_output fmt, const char *noun, const char *name) {
  kd_rc rc = fmt != CLI_OUT_TABLE ? cli_print_object(stdout, out, fmt) : KD_OK;
  if (rc == KD_OK) fprintf(f, "Run `kcmdr %s describe %s` or `kcmdr %s logs %s` for more details.\n", noun, name, noun, name);
  return rc;
}

kd_rc cli_wait_shown(FILE *f, const char *noun, const char *counted, struct cli_progress *p, kube_client *c,
                     const struct kube_res *res, const char *ns, const char *name, int64_t timeout_ms, cli_wait_fn fn,
                     void *ud) {
  char what[sizeof p->what];
  fprintf(f, "Waiting for %s \"%s\" to end. You may safely press ctrl-c to stop waiting: the %s goes on.\n", noun, name, noun);
  snprintf(what, sizeof what, "%c%s %s", toupper((unsigned char)noun[0]), noun + 1, name);
  cli_progress_init(p, f, what, counted);
  kd_rc rc = cli_wait(c, res, ns, name, timeout_ms, fn, ud);
  cli_progress_end(p);
  return rc;
}

/* ---- storage of a backup ---- */

static bool list_default_bsl(json_t *item, void *ud) {
  json_t **best = ud;
  if (!json_is_true(json_object_get(json_object_get(item, "spec"), "default"))) return true;
  const char *n = cli_meta_s(item, "name");
  if (n && (!*best || strcmp(n, cli_meta_s(*best, "name")) < 0)) {
    json_decref(*best);
    *best = json_incref(item);
  }
  return true;
}

kd_rc cli_backup_store(kube_client *c, const char *ns, json_t *backup, objstore **st, json_t **bsl_out) {
  const char *want = json_string_value(json_object_get(json_object_get(backup, "spec"), "storageLocation"));
  json_t *bsl = NULL;
  kd_rc rc;
  *st = NULL;
  if (bsl_out) *bsl_out = NULL;
  if (!want || !want[0])
    want = json_string_value(
        json_object_get(json_object_get(json_object_get(backup, "metadata"), "labels"), "velero.io/storage-location"));
  if (want && want[0]) {
    rc = kube_get(c, &cli_res_bsl, ns, want, &bsl);
    if (rc == KD_ERR_NOTFOUND) rc = kd_fail(KD_ERR_NOTFOUND, "BackupStorageLocation %s not found in namespace %s", want, ns);
    if (rc != KD_OK) goto fail;
  } else {
    struct kube_list_opts lo = {0};
    if ((rc = kube_list(c, &cli_res_bsl, ns, &lo, list_default_bsl, &bsl, NULL)) != KD_OK) goto fail;
    if (!bsl) {
      rc = kd_fail(KD_ERR_NOTFOUND, "backup %s names no storage location and namespace %s has no default one",
                   cli_meta_s(backup, "name"), ns);
      goto fail;
    }
  }
  if ((rc = engine_open_store(c, ns, bsl, st)) != KD_OK) {
    kd_fail_wrap(rc, "storage location %s", cli_meta_s(bsl, "name"));
    goto fail;
  }
  if (bsl_out) *bsl_out = json_incref(bsl);
fail:
  json_decref(bsl);
  return rc;
}

/* ---- gzip files from a location ---- */

struct gunzip {
  z_stream z;
  bool ended;    /* the last member ended and nothing followed yet */
  bool any;      /* some input was seen */
  objstore_sink_fn fn;
  void *ud;
  unsigned char out[64 << 10];
};

static kd_rc gunzip_feed(const char *p, size_t n, void *ud) {
  struct gunzip *g = ud;
  kd_rc rc;
  if (n) g->any = true;
  while (n > 0) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : n;
    g->z.next_in = (unsigned char *)p;
    g->z.avail_in = (uInt)chunk;
    while (g->z.avail_in > 0) {
      if (g->ended) { /* another member follows (Go's reader reads them all) */
        if (inflateReset(&g->z) != Z_OK) return kd_fail(KD_ERR_PARSE, "gzip: cannot start the next member");
        g->ended = false;
      }
      g->z.next_out = g->out;
      g->z.avail_out = sizeof g->out;
      int zr = inflate(&g->z, Z_NO_FLUSH);
      if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
        return kd_fail(KD_ERR_PARSE, "not a valid gzip stream: %s", g->z.msg ? g->z.msg : "corrupt data");
      size_t got = sizeof g->out - g->z.avail_out;
      if (got && (rc = g->fn((const char *)g->out, got, g->ud)) != KD_OK) return rc;
      if (zr == Z_STREAM_END) g->ended = true;
      else if (zr == Z_BUF_ERROR && got == 0) return kd_fail(KD_ERR_PARSE, "not a valid gzip stream: no progress");
    }
    p += chunk;
    n -= chunk;
  }
  return KD_OK;
}

kd_rc cli_gunzip_get(objstore *st, const char *key, objstore_sink_fn fn, void *ud) {
  struct gunzip *g = calloc(1, sizeof *g);
  kd_rc rc;
  if (!g) return kd_fail(KD_ERR_NOMEM, "out of memory");
  g->fn = fn;
  g->ud = ud;
  if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) {
    free(g);
    return kd_fail(KD_ERR_NOMEM, "out of memory for zlib");
  }
  rc = crypt_get(st, key, gunzip_feed, g); /* an encrypted file decrypted with the keys attached to st */
  if (rc == KD_OK && (!g->any || !g->ended))
    rc = kd_fail(KD_ERR_PARSE, "%s: the gzip stream is truncated", key);
  else if (rc != KD_OK && rc != KD_ERR_NOTFOUND)
    kd_fail_wrap(rc, "%s", key);
  inflateEnd(&g->z);
  free(g);
  return rc;
}

kd_rc cli_stdout_sink(const char *p, size_t n, void *ud) {
  (void)ud;
  if (fwrite(p, 1, n, stdout) != n) return kd_fail(KD_ERR_IO, "writing to stdout: %s", strerror(errno));
  return KD_OK;
}

static kd_rc buf_sink(const char *p, size_t n, void *ud) { return kd_buf_add(ud, p, n); }

kd_rc cli_gunzip_get_all(objstore *st, const char *key, size_t max, char **out, size_t *len) {
  kd_buf b = KD_BUF_INIT(max);
  *out = NULL;
  *len = 0;
  kd_rc rc = cli_gunzip_get(st, key, buf_sink, &b);
  if (rc != KD_OK) goto fail;
  *len = b.len;
  *out = kd_buf_steal(&b);
  if (!*out) rc = kd_fail(KD_ERR_NOMEM, "out of memory");
fail:
  kd_buf_free(&b);
  return rc;
}

int cli_logs(const struct cli_globals *g, int argc, char **argv, const char *kind, const char *usage, cli_log_find_fn find) {
  const char *pos[1];
  char verb[32];
  int npos, ret;
  snprintf(verb, sizeof verb, "%s logs", kind);
  if ((ret = cli_parse_opts(argc, argv, verb, NULL, 0, pos, 1, &npos)) >= 0 || (ret = cli_check_names(verb, usage, npos)) >= 0)
    return ret;
  kube_client *c = NULL;
  struct cli_log_at at = {0};
  kd_rc rc;
  ret = CLI_FAIL;
  if (cli_client(g, &c) != CLI_OK || find(c, cli_system_namespace(g), pos[0], &at) != CLI_OK) goto fail;
  const char *name = cli_meta_s(at.obj, "name");
  rc = cli_gunzip_get(at.st, at.key, cli_stdout_sink, NULL);
  if (rc == KD_ERR_NOTFOUND) {
    if (at.running)
      cli_printf(stderr, "kcmdr %s: the log of %s %s is written when it ends (it is %s)\n", verb, kind, name, cli_phase(at.obj));
    else
      cli_printf(stderr, "kcmdr %s: %s %s has no log file (%s) in storage location %s\n", verb, kind, name, at.key,
                 cli_meta_s(at.bsl, "name"));
    goto fail;
  }
  if (rc == KD_OK && fflush(stdout) != 0) rc = kd_fail(KD_ERR_IO, "writing to stdout: %s", strerror(errno));
  if (rc == KD_OK) ret = CLI_OK;
  else cli_printf(stderr, "kcmdr %s: %s\n", verb, kd_errmsg());
fail:
  objstore_free(at.st);
  json_decref(at.obj);
  json_decref(at.bsl);
  kube_client_free(c);
  return ret;
}
