/* cli_restore.c — `kcmdr restore create|get|describe|logs`: velero.io/v1 Restores as the seed's
 * disaster-recovery procedure writes them (its exclusion list, includedNamespaces ['*'],
 * hooks {}), followed with a progress display and an exit code that says whether it Completed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "preview.h"
#include "region.h"
#include "velero.h"

#define RS_SMALL_MAX (64u << 20) /* decompressed results file read back */

static long long status_i(json_t *o, const char *a, const char *b) {
  json_t *st = json_object_get(o, "status");
  json_t *v = b ? json_object_get(json_object_get(st, a), b) : json_object_get(st, a);
  return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}
static void say_err(const char *verb) { cli_printf(stderr, "kcmdr restore %s: %s\n", verb, kd_errmsg()); }

/* ---- create ---- */

static const char create_usage[] =
    "Usage: kcmdr restore create [NAME] --from-backup BACKUP [flags]\n"
    "\n"
    "Create a velero.io/v1 Restore of BACKUP, as k0rdent's disaster-recovery procedure does:\n"
    "includedNamespaces ['*'], hooks {}, and excludedResources with the resources that are never\n"
    "restored (nodes, events, events.events.k8s.io, backups.velero.io, restores.velero.io,\n"
    "resticrepositories.velero.io, csinodes.storage.k8s.io, volumeattachments.storage.k8s.io,\n"
    "backuprepositories.velero.io). The engine (kcmdr controller, or Velero) executes it.\n"
    "NAME defaults to BACKUP-YYYYMMDDhhmmss (UTC), as velero names restores.\n"
    "\n"
    "Flags:\n"
    "  --from-backup BACKUP                 the Velero Backup to restore (required); a ManagementBackup\n"
    "                                       name means its last backup\n"
    "  --existing-resource-policy none|update  what to do with an object that exists and differs:\n"
    "                                       none (default) leaves it and warns; update patches it\n"
    "  --resource-modifier-configmap CM     a ConfigMap in the system namespace with resource modifier\n"
    "                                       rules (version: v1, resourceModifierRules: ...) applied to\n"
    "                                       the objects before they are created\n"
    "  --include-namespaces NS,...          namespaces to restore (default '*': all)\n"
    "  --exclude-namespaces NS,...          namespaces not to restore\n"
    "  --include-resources R,...            resources to restore (resource.group; default: all)\n"
    "  --exclude-resources R,...            more resources not to restore (before the list above)\n"
    "  --namespace-mappings SRC:DST,...     restore the objects of namespace SRC into DST\n"
    "  -w, --wait                           follow the restore: a progress bar on a terminal, else a\n"
    "                                       line at most every second; exit 0 only when it is Completed\n"
    "  --timeout DURATION                   with --wait: give up after this long (default: no limit)\n"
    "  --dry-run                            create nothing: run the restore's own decisions on every object\n"
    "                                       (selection, order, actions, modifiers, mappings, policy) with\n"
    "                                       the API server's dry run, and print what it would do: create,\n"
    "                                       update, unchanged, conflict, skip or fail (with the server's\n"
    "                                       message) per object, and a summary; no Restore is created and\n"
    "                                       nothing is written to the storage location\n"
    "  --diff                               with --dry-run: a unified diff of each update and conflict\n"
    "                                       (server-set fields aside)\n"
    "  -o, --output json|yaml               print the Restore (after --wait: as it ended; with --dry-run:\n"
    "                                       the preview, one entry per object)\n"
    "  -n, --namespace NS                   system namespace of Velero's objects (default kcm-system)\n"
    "  --pause-regions                      (kcm regions, management cluster) Regions come back annotated\n"
    "                                       k0rdent.mirantis.com/region-pause, regional clusters' objects\n"
    "                                       (cluster.x-k8s.io/cluster-name NotIn ...) stay out\n"
    "  --region REGION                      (kcm regions, REGION's cluster) BACKUP names a ManagementBackup:\n"
    "                                       restore the region's newest finished Backup of it\n"
    "\n"
    "Examples:\n"
    "  kcmdr restore create --from-backup kcm-20250117180012 --existing-resource-policy update --wait\n"
    "  kcmdr restore create rollback --from-backup kcm-before-upgrade --existing-resource-policy update \\\n"
    "      --resource-modifier-configmap release-rollback --wait\n"
    "  kcmdr restore create --from-backup kcm-before-upgrade --existing-resource-policy update \\\n"
    "      --resource-modifier-configmap release-rollback --dry-run --diff\n"
    "\n"
    "Exit codes: 0 created (with --wait: Completed; with --dry-run: it would complete with no object\n"
    "failing or in conflict), 1 failure (with --wait: PartiallyFailed, Failed, FailedValidation; with\n"
    "--dry-run: any of those, or an object that would fail or conflict), 2 usage error.\n";

struct restore_wait {
  struct cli_progress prog;
  const char *uid; /* of the Restore created */
  json_t *final;
  bool deleted;
};

/* The Restore was created before the wait began, and the API server's list and watch are
 * consistent reads: a Restore missing (NULL), or one of another uid (deleted and made again),
 * was deleted while waiting. */
static int restore_wait_fn(json_t *r, void *ud) {
  struct restore_wait *w = ud;
  if (!r || (w->uid && !kd_streq(cli_meta_s(r, "uid"), w->uid))) {
    w->deleted = true;
    return 1;
  }
  const char *phase = cli_status_s(r, "phase");
  cli_progress_update(&w->prog, phase && phase[0] ? phase : "New", status_i(r, "progress", "itemsRestored"),
                      status_i(r, "progress", "totalItems"));
  if (!velero_phase_terminal(phase)) return 0;
  w->final = json_incref(r);
  return 1;
}

static kd_rc set_list(json_t *spec, const char *key, json_t *list) {
  if (!list || json_array_size(list) == 0) return KD_OK;
  return json_object_set(spec, key, list) ? kd_fail(KD_ERR_NOMEM, "out of memory") : KD_OK;
}

/* A namespace of --include-namespaces or --exclude-namespaces: a namespace name, or a pattern
 * with the globs the engine matches (Velero's: '*', '?', '[...]', '{a,b}' as in "team-*"); the
 * characters of names and globs only. */
static bool ns_pattern_valid(const char *s) {
  if (cli_label_valid(s)) return true;
  size_t n = strlen(s);
  if (n == 0 || n > 63 || !strpbrk(s, "*?[{")) return false;
  return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-*?[]{}!^") == n;
}

/* Every item of list (a --*-namespaces flag's, flag names it) a namespace or pattern; else a
 * message naming the first that is not. */
static bool check_namespaces(const char *flag, json_t *list) {
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) {
    if (ns_pattern_valid(json_string_value(v))) continue;
    cli_printf(stderr, "kcmdr restore create: %s: \"%.80s\" is not a namespace name (lower-case letters, digits and "
                       "'-', at most 63) nor a pattern such as '*' or 'team-*'\n", flag, json_string_value(v));
    return false;
  }
  return true;
}

/* "src:dst,src2:dst2" (already split at ',') into an object; false with a message when an entry
 * is not of that shape, either side is not a namespace name, or a SRC comes twice. */
static bool parse_mappings(json_t *list, json_t **out) {
  size_t i;
  json_t *v;
  *out = json_object();
  if (!*out) return false;
  json_array_foreach(list, i, v) {
    const char *s = json_string_value(v), *colon = strchr(s, ':');
    char src[64];
    if (!colon || colon == s || !colon[1] || strchr(colon + 1, ':')) {
      cli_printf(stderr, "kcmdr restore create: --namespace-mappings takes SRC:DST pairs, not '%.80s'\n", s);
      return false;
    }
    if ((size_t)(colon - s) >= sizeof src || (snprintf(src, sizeof src, "%.*s", (int)(colon - s), s), !cli_label_valid(src)) ||
        !cli_label_valid(colon + 1)) {
      cli_printf(stderr, "kcmdr restore create: --namespace-mappings '%.80s': SRC and DST must be namespace names "
                         "(lower-case letters, digits and '-', at most 63)\n", s);
      return false;
    }
    if (json_object_get(*out, src)) {
      fprintf(stderr, "kcmdr restore create: --namespace-mappings maps %s twice\n", src);
      return false;
    }
    if (json_object_set_new(*out, src, json_string(colon + 1))) {
      fprintf(stderr, "kcmdr restore create: out of memory\n");
      return false;
    }
  }
  return true;
}

/* The name velero gives a restore: BACKUP-YYYYMMDDhhmmss (UTC). */
#define RS_TS_LEN 15 /* "-" and the timestamp */

/* false after saying so when the default name of a restore of backup would be too long */
static bool default_name_fits(const char *backup) {
  if (strlen(backup) + RS_TS_LEN <= 253) return true;
  fprintf(stderr, "kcmdr restore create: give the restore a NAME: %.40s...-<YYYYMMDDhhmmss> would be longer than 253 "
                  "characters\n", backup);
  return false;
}

/* restore create's flags, as parsed */
struct create_opts {
  const char *from, *policy, *cm, *output, *timeout, *pos[1];
  json_t *inc_ns, *exc_ns, *inc_res, *exc_res, *maps, *mapping;
  bool wait, dry_run, diff;
  int npos;
  enum cli_output fmt;
  int64_t timeout_ms;
  struct region_restore rr; /* kcm regions: cli_region.c */
};

/* Check o's values (mapping parsed, fmt and timeout_ms set). Returns -1 when they are fine,
 * else CLI_USAGE after saying why. */
static int create_check(struct create_opts *o) {
  if (!o->from || !o->from[0]) {
    fprintf(stderr, "kcmdr restore create: --from-backup BACKUP is required\n");
    cli_put_usage(stderr, create_usage);
    return CLI_USAGE;
  }
  if (!cli_name_valid(o->from)) {
    cli_printf(stderr, "kcmdr restore create: \"%s\" is not a valid backup name\n", o->from);
    return CLI_USAGE;
  }
  if ((o->dry_run && (o->wait || o->timeout)) || (o->diff && !o->dry_run)) {
    fprintf(stderr, "kcmdr restore create: %s\n",
            o->diff && !o->dry_run ? "--diff goes with --dry-run" : "--dry-run creates no restore to --wait for");
    return CLI_USAGE;
  }
  if (o->policy && strcmp(o->policy, "none") != 0 && strcmp(o->policy, "update") != 0) {
    cli_printf(stderr, "kcmdr restore create: --existing-resource-policy takes none or update, not '%s'\n", o->policy);
    return CLI_USAGE;
  }
  if (o->cm && !cli_name_valid(o->cm)) {
    cli_printf(stderr, "kcmdr restore create: \"%s\" is not a valid ConfigMap name\n", o->cm);
    return CLI_USAGE;
  }
  /* the checks return -1 when the value is fine */
  if (cli_check_output("restore create", o->output, false, &o->fmt) >= 0 ||
      cli_check_timeout("restore create", o->timeout, &o->timeout_ms) >= 0 ||
      (o->maps && !parse_mappings(o->maps, &o->mapping)) || (o->npos == 1 && cli_check_name("restore create", o->pos[0]) >= 0) ||
      !check_namespaces("--include-namespaces", o->inc_ns) || !check_namespaces("--exclude-namespaces", o->exc_ns) ||
      (o->npos == 0 && !default_name_fits(o->from)))
    return CLI_USAGE;
  return -1;
}

/* The backup to restore (size n, in: o->from): it must exist here (after a disaster it comes
 * back by the location's sync first); a ManagementBackup's name means its last backup. The
 * modifier ConfigMap must exist too (unless it is a preview's unwritten one). Returns CLI_OK,
 * or a CLI exit code after saying why. */
static int create_find_backup(kube_client *c, const char *ns, const struct create_opts *o, char *backup, size_t n) {
  json_t *tmp = NULL;
  kd_rc rc = kube_get(c, &cli_res_backup, ns, backup, &tmp);
  if (rc == KD_ERR_NOTFOUND) {
    json_t *mb = NULL;
    kd_rc r2 = kube_get(c, &cli_res_mb, NULL, o->from, &mb);
    const char *last = r2 == KD_OK ? cli_status_s(mb, "lastBackupName") : NULL;
    if (last && last[0] && kube_get(c, &cli_res_backup, ns, last, &tmp) == KD_OK) {
      cli_printf(stderr, "ManagementBackup %s: restoring its last backup, %s\n", o->from, last);
      snprintf(backup, n, "%s", last);
      rc = KD_OK;
    }
    json_decref(mb);
    if (rc != KD_OK) {
      fprintf(stderr, "kcmdr restore create: backup \"%s\" not found in namespace %s (after a disaster, backups appear "
                      "once the storage location has been synced: kcmdr backup get)\n", o->from, ns);
      return CLI_FAIL;
    }
  }
  json_decref(tmp);
  tmp = NULL;
  if (rc != KD_OK) goto fail_msg;
  kd_clear_error();
  if (o->cm && !o->rr.cm_obj) { /* (a dry run's region-pause ConfigMap is not written) */
    rc = kube_get(c, &cli_res_configmap, ns, o->cm, &tmp);
    json_decref(tmp);
    if (rc == KD_ERR_NOTFOUND) {
      fprintf(stderr, "kcmdr restore create: ConfigMap \"%s\" not found in namespace %s\n", o->cm, ns);
      return CLI_FAIL;
    }
    if (rc != KD_OK) goto fail_msg;
  }
  return CLI_OK;
fail_msg:
  say_err("create");
  return CLI_FAIL;
}

/* The Restore to create (*obj, new) for backup under name: the seed's Restore, with what the
 * user excludes and then Velero's never-restored resources. KD_ERR_NOMEM. */
static kd_rc create_object(const struct create_opts *o, const char *ns, const char *backup, const char *name, json_t **obj) {
  json_t *excluded = o->exc_res ? json_copy(o->exc_res) : json_array();
  for (size_t i = 0; excluded && velero_restore_always_excluded[i]; i++) {
    bool have = false;
    size_t j;
    json_t *v;
    json_array_foreach(excluded, j, v) have = have || kd_streq(json_string_value(v), velero_restore_always_excluded[i]);
    if (!have) json_array_append_new(excluded, json_string(velero_restore_always_excluded[i]));
  }
  *obj = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:o,s:{}}}", "apiVersion", "velero.io/v1", "kind", "Restore", "metadata",
                   "name", name, "namespace", ns, "spec", "backupName", backup, "excludedResources", excluded, "hooks");
  json_t *spec = json_object_get(*obj, "spec");
  if (!*obj || (o->policy && json_object_set_new(spec, "existingResourcePolicy", json_string(o->policy))) ||
      json_object_set_new(spec, "includedNamespaces", o->inc_ns ? json_incref(o->inc_ns) : json_pack("[s]", "*")) ||
      set_list(spec, "excludedNamespaces", o->exc_ns) || set_list(spec, "includedResources", o->inc_res) ||
      (o->mapping && json_object_size(o->mapping) && json_object_set(spec, "namespaceMapping", o->mapping)) ||
      (o->cm && json_object_set_new(spec, "resourceModifier",
                                    json_pack("{s:s,s:s,s:s}", "apiGroup", "", "kind", "configmap", "name", o->cm))) ||
      (o->rr.selector && json_object_set(spec, "labelSelector", o->rr.selector))) { /* kcm regions */
    json_decref(*obj);
    *obj = NULL;
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  }
  return KD_OK;
}

/* Create the Restore obj and, with --wait, follow it to its end. Returns the exit code
 * (CLI_OK only for a created restore, with --wait only a Completed one). */
static int create_submit(kube_client *c, const char *ns, const struct create_opts *o, json_t *obj, const char *name,
                         const char *backup) {
  json_t *out = NULL;
  struct restore_wait w = {0};
  int ret = CLI_FAIL;
  kd_rc rc = kube_create(c, &cli_res_restore, ns, obj, &out);
  if (rc == KD_ERR_CONFLICT) {
    fprintf(stderr, "kcmdr restore create: a Restore named \"%s\" already exists in namespace %s\n", name, ns);
    goto fail;
  }
  if (rc != KD_OK) goto fail_msg;
  FILE *human = o->fmt == CLI_OUT_TABLE ? stdout : stderr;
  fprintf(human, "Restore request \"%s\" submitted successfully (backup %s%s%s).\n", name, backup,
          o->policy ? ", existing resource policy " : "", o->policy ? o->policy : "");
  if (!o->wait) {
    if (cli_created(human, out, o->fmt, "restore", name) != KD_OK) goto fail_msg;
    ret = CLI_OK;
    goto fail;
  }
  w.uid = cli_meta_s(out, "uid");
  if ((rc = cli_wait_shown(human, "restore", "restored", &w.prog, c, &cli_res_restore, ns, name, o->timeout_ms,
                           restore_wait_fn, &w)))
    goto fail_msg;
  if (w.deleted || !w.final) {
    fprintf(stderr, "kcmdr restore create: restore %s was deleted while waiting\n", name);
    goto fail;
  }
  const char *phase = cli_phase(w.final);
  cli_printf(human, "Restore %s ended: %s (%lld of %lld items restored, %lld warnings, %lld errors).\n", name, phase,
          status_i(w.final, "progress", "itemsRestored"), status_i(w.final, "progress", "totalItems"),
          status_i(w.final, "warnings", NULL), status_i(w.final, "errors", NULL));
  if (!kd_streq(phase, VELERO_PHASE_COMPLETED)) cli_print_failure(human, json_object_get(w.final, "status"));
  fprintf(human, "Run `kcmdr restore describe %s` and `kcmdr restore logs %s` for details.\n", name, name);
  if (o->fmt != CLI_OUT_TABLE && cli_print_object(stdout, w.final, o->fmt) != KD_OK) goto fail_msg;
  ret = kd_streq(phase, VELERO_PHASE_COMPLETED) ? CLI_OK : CLI_FAIL;
  goto fail;
fail_msg:
  say_err("create");
  ret = CLI_FAIL;
fail:
  json_decref(w.final);
  json_decref(out);
  return ret;
}

static int rs_create(const struct cli_globals *g, int argc, char **argv) {
  struct create_opts o = {0};
  const struct cli_opt opts[] = {
      {"--pause-regions", NULL, CLI_OPT_BOOL, &o.rr.pause},
      {"--region", NULL, CLI_OPT_STRING, &o.rr.region},
      {"--from-backup", NULL, CLI_OPT_STRING, &o.from},
      {"--existing-resource-policy", NULL, CLI_OPT_STRING, &o.policy},
      {"--resource-modifier-configmap", NULL, CLI_OPT_STRING, &o.cm},
      {"--include-namespaces", NULL, CLI_OPT_LIST, &o.inc_ns},
      {"--exclude-namespaces", NULL, CLI_OPT_LIST, &o.exc_ns},
      {"--include-resources", NULL, CLI_OPT_LIST, &o.inc_res},
      {"--exclude-resources", NULL, CLI_OPT_LIST, &o.exc_res},
      {"--namespace-mappings", NULL, CLI_OPT_LIST, &o.maps},
      {"--wait", "-w", CLI_OPT_BOOL, &o.wait},
      {"--dry-run", NULL, CLI_OPT_BOOL, &o.dry_run},
      {"--diff", NULL, CLI_OPT_BOOL, &o.diff},
      {"--timeout", NULL, CLI_OPT_STRING, &o.timeout},
      {"--output", "-o", CLI_OPT_STRING, &o.output},
  };
  kube_client *c = NULL;
  json_t *obj = NULL;
  char name[340], backup[300];
  int ret = cli_parse_opts(argc, argv, "restore create", opts, KD_ARRAY_LEN(opts), o.pos, 1, &o.npos);
  if (ret >= 0 || (ret = create_check(&o)) >= 0) goto fail;
  const char *ns = cli_system_namespace(g);
  snprintf(backup, sizeof backup, "%s", o.from);
  ret = CLI_FAIL;
  if (cli_client(g, &c) != CLI_OK) goto fail;
  /* kcm regions (cli_region.c): the region's Backup, or the pause modifiers */
  o.rr.dry_run = o.dry_run;
  if ((ret = region_restore_prepare(c, ns, &o.rr, backup, sizeof backup, o.cm)) != CLI_OK) goto fail;
  if (o.rr.cm[0]) o.cm = o.rr.cm;
  if ((ret = create_find_backup(c, ns, &o, backup, sizeof backup)) != CLI_OK) goto fail;
  if (o.npos == 1) {
    snprintf(name, sizeof name, "%s", o.pos[0]);
  } else if (!default_name_fits(backup)) { /* the last backup of a ManagementBackup */
    ret = CLI_USAGE;
    goto fail;
  } else {
    time_t now = time(NULL);
    struct tm tm;
    char ts[20];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
    snprintf(name, sizeof name, "%.300s-%s", backup, ts);
  }
  if (create_object(&o, ns, backup, name, &obj) != KD_OK) {
    say_err("create");
    ret = CLI_FAIL;
    goto fail;
  }
  ret = o.dry_run ? preview_restore(c, ns, obj, o.rr.cm_obj, o.diff, o.fmt) : create_submit(c, ns, &o, obj, name, backup);
fail:
  json_decref(obj);
  json_decref(o.inc_ns);
  json_decref(o.exc_ns);
  json_decref(o.inc_res);
  json_decref(o.exc_res);
  json_decref(o.maps);
  json_decref(o.mapping);
  region_restore_free(&o.rr);
  kube_client_free(c);
  return ret;
}

/* ---- get ---- */

static const char get_usage[] =
    "Usage: kcmdr restore get [NAME...] [-l SELECTOR] [-o wide|json|yaml]\n"
    "\n"
    "List Restores as a table: NAME, BACKUP, STATUS (phase), PROGRESS (items restored/total),\n"
    "ERRORS, WARNINGS, CREATED; -o wide adds STARTED, COMPLETED and POLICY (existing resource policy).\n"
    "\n"
    "Flags:\n"
    "  -l, --selector SELECTOR      only Restores with these labels\n"
    "  -o, --output wide|json|yaml  wide table, or the objects (one NAME: that object; else a List)\n"
    "  -n, --namespace NS           system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr restore get -o wide\n";

static int rs_get(const struct cli_globals *g, int argc, char **argv) {
  const char *output = NULL, *selector = NULL, *pos[64];
  enum cli_output fmt;
  int npos, ret;
  const struct cli_opt opts[] = {{"--output", "-o", CLI_OPT_STRING, &output}, {"--selector", "-l", CLI_OPT_STRING, &selector}};
  if ((ret = cli_parse_opts(argc, argv, "restore get", opts, KD_ARRAY_LEN(opts), pos, 64, &npos)) >= 0 ||
      (ret = cli_check_output("restore get", output, true, &fmt)) >= 0)
    return ret;
  const char *ns = cli_system_namespace(g);
  kube_client *c = NULL;
  json_t *all = NULL, *shown = json_array(), *r;
  cli_table *t = NULL;
  bool missing = false;
  size_t i;
  kd_rc rc;
  ret = CLI_FAIL;
  if (!shown || cli_client(g, &c) != CLI_OK) goto fail;
  if ((rc = cli_list(c, &cli_res_restore, ns, selector, false, &all)) != KD_OK) goto fail_msg;
  json_array_foreach(all, i, r) {
    bool want = npos == 0;
    for (int k = 0; k < npos && !want; k++) want = kd_streq(cli_meta_s(r, "name"), pos[k]);
    if (want) json_array_append(shown, r);
  }
  for (int k = 0; k < npos; k++) {
    if (cli_by_name(all, pos[k])) continue;
    fprintf(stderr, "kcmdr restore get: restore \"%s\" not found in namespace %s\n", pos[k], ns);
    missing = true;
  }
  if (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML) {
    if ((rc = cli_print_items(shown, npos == 1 && json_array_size(shown) == 1, fmt)) != KD_OK) goto fail_msg;
    ret = missing ? CLI_FAIL : CLI_OK;
    goto fail;
  }
  static const char *const headers[] = {"NAME",    "BACKUP",  "STATUS",    "PROGRESS", "ERRORS",
                                        "WARNINGS", "CREATED", "STARTED", "COMPLETED", "POLICY"};
  if (!(t = cli_table_new(fmt == CLI_OUT_WIDE ? 10 : 7, headers))) goto fail;
  json_array_foreach(shown, i, r) {
    char prog[64], errs[24], warns[24], created[64], started[64], completed[64];
    snprintf(prog, sizeof prog, "%lld/%lld", status_i(r, "progress", "itemsRestored"), status_i(r, "progress", "totalItems"));
    snprintf(errs, sizeof errs, "%lld", status_i(r, "errors", NULL));
    snprintf(warns, sizeof warns, "%lld", status_i(r, "warnings", NULL));
    cli_time_text(cli_meta_s(r, "creationTimestamp"), created, sizeof created);
    cli_time_text(cli_status_s(r, "startTimestamp"), started, sizeof started);
    cli_time_text(cli_status_s(r, "completionTimestamp"), completed, sizeof completed);
    const char *cells[] = {cli_meta_s(r, "name"), cli_or_none(cli_spec_s(r, "backupName")), cli_phase(r), prog, errs, warns, created,
                           started, completed, cli_spec_s(r, "existingResourcePolicy") ? cli_spec_s(r, "existingResourcePolicy") : "none"};
    if ((rc = cli_table_add(t, cells))) goto fail_msg;
  }
  cli_print_table(t, "restores", ns, missing);
  ret = missing ? CLI_FAIL : CLI_OK;
  goto fail;
fail_msg:
  say_err("get");
fail:
  cli_table_free(t);
  json_decref(all);
  json_decref(shown);
  kube_client_free(c);
  return ret;
}

/* ---- describe ---- */

static const char describe_usage[] =
    "Usage: kcmdr restore describe NAME... [-o json|yaml]\n"
    "\n"
    "Describe a restore: phase, backup, times, progress, warnings, errors, validation errors, failure\n"
    "reason, what it includes and excludes, and the warnings and errors of its results file\n"
    "(restores/<r>/restore-<r>-results.gz in the storage location of its backup).\n"
    "\n"
    "Flags:\n"
    "  -o, --output json|yaml   the Restore and its results as one object\n"
    "  -n, --namespace NS       system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr restore describe kcm-20250117180012-20250118093000\n";

/* The Restore named name into *r (a new reference), or say why not ("kcmdr restore VERB: ...").
 * Returns CLI_OK or CLI_FAIL. */
static int get_restore(kube_client *c, const char *ns, const char *verb, const char *name, json_t **r) {
  kd_rc rc = kube_get(c, &cli_res_restore, ns, name, r);
  if (rc == KD_OK) return CLI_OK;
  if (rc == KD_ERR_NOTFOUND) fprintf(stderr, "kcmdr restore %s: restore \"%s\" not found in namespace %s\n", verb, name, ns);
  else say_err(verb);
  return CLI_FAIL;
}

/* The storage location of restore r: its backup's. *st owned by the caller. */
static kd_rc restore_store(kube_client *c, const char *ns, json_t *r, objstore **st, json_t **bsl) {
  json_t *b = NULL;
  const char *bn = cli_spec_s(r, "backupName");
  *st = NULL;
  if (!bn || !bn[0]) return kd_fail(KD_ERR_NOTFOUND, "restore %s names no backup", cli_meta_s(r, "name"));
  kd_rc rc = kube_get(c, &cli_res_backup, ns, bn, &b);
  if (rc == KD_ERR_NOTFOUND)
    return kd_fail(rc, "backup %s of restore %s is not in namespace %s: its storage location is unknown", bn, cli_meta_s(r, "name"), ns);
  if (rc == KD_OK) rc = cli_backup_store(c, ns, b, st, bsl);
  json_decref(b);
  return rc;
}

static int rs_describe_one(kube_client *c, const char *ns, const char *name, int k, enum cli_output fmt, void *ud) {
  json_t *r = NULL, *results = NULL, *bsl = NULL, *desc = NULL;
  objstore *st = NULL;
  char key[VELERO_KEY_MAX], *text = NULL, results_err[1200] = "";
  size_t len = 0;
  kd_rc rc;
  int ret = CLI_FAIL;
  (void)ud;
  if (get_restore(c, ns, "describe", name, &r) != CLI_OK) goto out;
  if (velero_phase_terminal(cli_status_s(r, "phase"))) {
    if ((rc = restore_store(c, ns, r, &st, &bsl)) == KD_OK &&
        (rc = velero_restore_key(name, VELERO_RESTORE_RESULTS, key, sizeof key)) == KD_OK &&
        (rc = cli_gunzip_get_all(st, key, RS_SMALL_MAX, &text, &len)) == KD_OK &&
        !(results = json_loadb(text, len, JSON_ALLOW_NUL, NULL)))
      snprintf(results_err, sizeof results_err, "%s is not JSON", key);
    if (rc == KD_ERR_NOTFOUND && st) snprintf(results_err, sizeof results_err, "no results file (%s)", key);
    else if (rc != KD_OK) snprintf(results_err, sizeof results_err, "%s", kd_errmsg());
  }
  if (fmt != CLI_OUT_TABLE) {
    desc = json_pack("{s:O,s:O?,s:s?}", "restore", r, "results", results, "resultsError", results_err[0] ? results_err : NULL);
    if (!desc || cli_print_object(stdout, desc, fmt) != KD_OK) say_err("describe");
    else ret = CLI_OK;
    goto out;
  }
  if (k) cli_printf(stdout, "\n---\n\n");
  char t[64];
  const char *lk;
  json_t *v, *spec = json_object_get(r, "spec");
  size_t n = 0, i;
  cli_print_head(stdout, r);
  cli_printf(stdout, "\nPhase:                       %s\n", cli_phase(r));
  cli_printf(stdout, "Total items to be restored:  %lld\nItems restored:              %lld\n\n", status_i(r, "progress", "totalItems"),
         status_i(r, "progress", "itemsRestored"));
  cli_time_text(cli_status_s(r, "startTimestamp"), t, sizeof t);
  cli_printf(stdout, "Started:    %s\n", t);
  cli_time_text(cli_status_s(r, "completionTimestamp"), t, sizeof t);
  cli_printf(stdout, "Completed:  %s\n\n", t);
  cli_printf(stdout, "Warnings:  %lld\nErrors:    %lld\n", status_i(r, "warnings", NULL), status_i(r, "errors", NULL));
  if (json_array_size(json_object_get(json_object_get(r, "status"), "validationErrors"))) {
    cli_printf(stdout, "\nValidation errors:\n");
    json_array_foreach(json_object_get(json_object_get(r, "status"), "validationErrors"), i, v)
        cli_printf(stdout, "  %s\n", json_string_value(v) ? json_string_value(v) : "?");
  }
  if (cli_status_s(r, "failureReason") && cli_status_s(r, "failureReason")[0]) cli_printf(stdout, "\nFailure reason:  %s\n", cli_status_s(r, "failureReason"));
  cli_printf(stdout, "\nBackup:  %s\n\n", cli_or_none(cli_spec_s(r, "backupName")));
  cli_print_scope(stdout, spec);
  cli_printf(stdout, "\nNamespace mappings:  ");
  n = 0;
  json_object_foreach(json_object_get(spec, "namespaceMapping"), lk, v)
      cli_printf(stdout, "%s%s=%s", n++ ? ", " : "", lk, json_string_value(v) ? json_string_value(v) : "");
  cli_printf(stdout, "%s\n", n ? "" : "<none>");
  cli_printf(stdout, "Existing resource policy:  %s\n", cli_or_none(cli_spec_s(r, "existingResourcePolicy")));
  json_t *rm = json_object_get(spec, "resourceModifier");
  if (json_is_object(rm))
    cli_printf(stdout, "Resource modifier:  %s/%s\n", cli_or_none(json_string_value(json_object_get(rm, "kind"))),
           cli_or_none(json_string_value(json_object_get(rm, "name"))));
  else cli_printf(stdout, "Resource modifier:  <none>\n");
  if (results) {
    cli_printf(stdout, "\n");
    cli_print_results(stdout, "Warnings", json_object_get(results, "warnings"), 30, "restore describe");
    cli_print_results(stdout, "Errors", json_object_get(results, "errors"), 30, "restore describe");
  } else if (results_err[0]) {
    cli_printf(stdout, "\nResults:  cannot be read: %s\n", results_err);
  }
  ret = CLI_OK;
out:
  free(text);
  json_decref(desc);
  json_decref(results);
  json_decref(bsl);
  objstore_free(st);
  json_decref(r);
  return ret;
}

static int rs_describe(const struct cli_globals *g, int argc, char **argv) {
  return cli_describe(g, argc, argv, "restore describe", describe_usage, rs_describe_one, NULL);
}

/* ---- logs ---- */

static const char logs_usage[] =
    "Usage: kcmdr restore logs NAME\n"
    "\n"
    "Print the log of a restore (restores/<r>/restore-<r>-logs.gz in the storage location of its\n"
    "backup, decompressed) to stdout. The log exists once the restore has ended.\n"
    "\n"
    "Flags:\n"
    "  -n, --namespace NS   system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr restore logs kcm-20250117180012-20250118093000 | grep -i warn\n";

static int rs_log_find(kube_client *c, const char *ns, const char *name, struct cli_log_at *at) {
  if (get_restore(c, ns, "logs", name, &at->obj) != CLI_OK) return CLI_FAIL;
  at->running = !velero_phase_terminal(cli_status_s(at->obj, "phase"));
  if (restore_store(c, ns, at->obj, &at->st, &at->bsl) || velero_restore_key(name, VELERO_RESTORE_LOGS, at->key, sizeof at->key)) {
    say_err("logs");
    return CLI_FAIL;
  }
  return CLI_OK;
}

static int rs_logs(const struct cli_globals *g, int argc, char **argv) {
  return cli_logs(g, argc, argv, "restore", logs_usage, rs_log_find);
}

/* ---- the verb ---- */

static const char restore_usage[] =
    "Usage: kcmdr restore SUBCOMMAND [flags] [NAME...]\n"
    "\n"
    "Work with velero.io/v1 Restores: bring the objects of a backup back into this cluster.\n"
    "\n"
    "Subcommands:\n"
    "  create [NAME] --from-backup B   create a Restore (the seed's), optionally wait for it\n"
    "  get [NAME...]                   list restores as a table\n"
    "  describe NAME                   phase, backup, times, progress, warnings, errors\n"
    "  logs NAME                       print a restore's log from the storage location\n"
    "\n"
    "Global flags: --kubeconfig PATH, --context NAME, -n/--namespace NS (the system namespace of\n"
    "Velero's objects; default kcm-system, not the context's namespace), -v LEVEL.\n"
    "`kcmdr restore SUBCOMMAND --help` explains each one with an example.\n"
    "\n"
    "Exit codes: 0 success, 1 failure (the message says why), 2 usage error.\n";

static const struct cli_sub subs[] = {
    {"create", rs_create, create_usage},
    {"get", rs_get, get_usage},
    {"describe", rs_describe, describe_usage},
    {"logs", rs_logs, logs_usage},
};

int cli_restore(int argc, char **argv) { return cli_subcommand(argc, argv, "restore", restore_usage, subs, KD_ARRAY_LEN(subs)); }
