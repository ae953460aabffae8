/* cli_backup.c — `kcmdr backup create|get|describe|logs|delete|verify`: the operator's view of
 * ManagementBackups and the Velero Backups they make, in velero's and kubectl's habits.
 *
 * What NAME means: a Velero Backup name, or a ManagementBackup name. A Velero Backup name is
 * unambiguous and always wins. A ManagementBackup name (for which no Backup of that name exists:
 * a scheduled one, whose Backups are <name>-<timestamp>) stands for all its Backups in `get`,
 * for itself and its last backup in `describe`, and for its last backup (status.lastBackupName)
 * in `logs` and `verify`. `delete` deletes Backups only: a schedule is stopped with kubectl. */
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "backup.h"
#include "cli.h"
#include "preview.h"
#include "cron.h"
#include "mgmtbackup.h"
#include "velero.h"
#include "crypt.h"
#include "verify.h"

#define BK_SMALL_MAX (256u << 20)        /* decompressed resource list / results read back */
#define BK_META_MAX (16u << 20)          /* velero-backup.json */
#define BK_FILE_MAX ((uint64_t)1 << 42)  /* any file of a backup, checked while streamed */
#define BK_SHOW 10                       /* listed items of one kind of problem before "... N more" */

static long long int_at(json_t *o, const char *a, const char *b) {
  json_t *v = json_object_get(json_object_get(o, a), b);
  return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}
static const char *label_of(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(json_object_get(o, "metadata"), "labels"), k));
}

static void say_err(const char *verb) { cli_printf(stderr, "kcmdr backup %s: %s\n", verb, kd_errmsg()); }

/* ---- finding things ---- */

/* cli_list, with a message that names what was listed. */
static kd_rc list_all(kube_client *c, const struct kube_res *res, const char *ns, const char *selector, bool optional,
                      json_t **out) {
  kd_rc rc = cli_list(c, res, ns, selector, optional, out);
  return rc == KD_OK ? rc : kd_fail_wrap(rc, "listing %s", res->resource);
}

static bool mb_owns(json_t *mb, json_t *b) {
  char lbl[MB_LABEL_MAX + 1];
  const char *n = cli_meta_s(mb, "name");
  if (!n) return false;
  mb_bounded(n, MB_LABEL_MAX, lbl);
  return kd_streq(label_of(b, MB_LABEL_BACKUP), lbl);
}

/* The ManagementBackup that made Backup b (by its label), from mbs (array, borrowed) or NULL. */
static json_t *mb_of(json_t *mbs, json_t *b) {
  size_t i;
  json_t *m;
  if (!label_of(b, MB_LABEL_BACKUP)) return NULL;
  json_array_foreach(mbs, i, m) {
    if (mb_owns(m, b)) return m;
  }
  return NULL;
}

/* The ManagementBackup that made Backup b, asked of the server (a new reference), or NULL. */
static json_t *owner_mb(kube_client *c, json_t *b) {
  const char *lbl = label_of(b, MB_LABEL_BACKUP);
  json_t *m = NULL;
  if (lbl && kube_get(c, &cli_res_mb, NULL, lbl, &m) == KD_OK && !mb_owns(m, b)) {
    json_decref(m);
    m = NULL;
  }
  kd_clear_error();
  return m;
}

static bool scheduled(json_t *mb) {
  const char *s = cli_spec_s(mb, "schedule");
  return s && s[0];
}

/* NAME (see the file comment) as the Backup of that name (*backup, a new reference; *mb its
 * ManagementBackup, a new reference, or NULL), else as the ManagementBackup of that name (*backup
 * NULL, *mb a new reference). Prints the reason and returns CLI_FAIL when there is neither. */
static int find_named(kube_client *c, const char *ns, const char *verb, const char *name, json_t **backup, json_t **mb) {
  *backup = *mb = NULL;
  kd_rc rc = kube_get(c, &cli_res_backup, ns, name, backup);
  if (rc == KD_OK) {
    *mb = owner_mb(c, *backup);
    return CLI_OK;
  }
  if (rc == KD_ERR_NOTFOUND && (rc = kube_get(c, &cli_res_mb, NULL, name, mb)) == KD_ERR_NOTFOUND) {
    cli_printf(stderr, "kcmdr backup %s: backup \"%s\" not found: no Velero Backup in namespace %s and no ManagementBackup has that name\n",
            verb, name, ns);
    return CLI_FAIL;
  }
  if (rc == KD_OK) return CLI_OK;
  say_err(verb);
  return CLI_FAIL;
}

/* Resolve NAME to one Backup (see the file comment): *backup (new reference) and *mb (new
 * reference or NULL). Prints the reason and returns CLI_FAIL when there is none. */
static int resolve_one(kube_client *c, const char *ns, const char *verb, const char *name, json_t **backup, json_t **mb) {
  if (find_named(c, ns, verb, name, backup, mb) != CLI_OK) return CLI_FAIL;
  if (*backup) return CLI_OK;
  json_t *b = NULL, *m = *mb; /* NAME is a ManagementBackup: its last backup */
  *mb = NULL;
  const char *last = cli_status_s(m, "lastBackupName");
  if (!last || !last[0]) {
    cli_printf(stderr, "kcmdr backup %s: ManagementBackup \"%s\" has made no backup yet%s%s\n", verb, name,
            cli_status_s(m, "error") ? ": " : "", cli_status_s(m, "error") ? cli_status_s(m, "error") : "");
    goto fail;
  }
  kd_rc rc = kube_get(c, &cli_res_backup, ns, last, &b);
  if (rc == KD_ERR_NOTFOUND) {
    cli_printf(stderr, "kcmdr backup %s: the last backup of ManagementBackup \"%s\", %s, is not in namespace %s (deleted?)\n",
            verb, name, last, ns);
    goto fail;
  }
  if (rc != KD_OK) {
    say_err(verb);
    goto fail;
  }
  cli_printf(stderr, "ManagementBackup %s: its last backup is %s\n", name, last);
  *backup = b;
  *mb = m;
  return CLI_OK;
fail:
  json_decref(m);
  return CLI_FAIL;
}

/* ---- create ---- */

static const char create_usage[] =
    "Usage: kcmdr backup create NAME [--storage-location LOCATION] [--schedule CRON] [--wait] [--timeout DURATION] [-o json|yaml]\n"
    "\n"
    "Create a ManagementBackup (k0rdent.mirantis.com/v1beta1): without --schedule, one backup on demand,\n"
    "named NAME; with --schedule, a backup at every activation of the cron schedule, each named\n"
    "NAME-YYYYMMDDhhmmss (UTC). kcmdr controller (or kcm) turns it into Velero Backups.\n"
    "\n"
    "Flags:\n"
    "  --storage-location LOCATION  the BackupStorageLocation (in the system namespace) to write to;\n"
    "                               default: the one with spec.default: true. Checked before creating.\n"
    "  --schedule CRON              a cron schedule as kcm reads it (robfig/cron: 5 fields, @daily,\n"
    "                               @every 6h, CRON_TZ=Europe/Berlin prefix; UTC otherwise)\n"
    "  -w, --wait                   wait until the backup has ended (on-demand backups only); show its\n"
    "                               progress; exit 0 only when it is Completed\n"
    "  --timeout DURATION           with --wait: give up after this long (e.g. 10m; default: no limit)\n"
    "  -o, --output json|yaml       print the ManagementBackup (after --wait: as it ended)\n"
    "  -n, --namespace NS           system namespace of Velero's objects (default kcm-system)\n"
    "  --kubeconfig PATH, --context NAME   as kubectl\n"
    "\n"
    "Examples:\n"
    "  kcmdr backup create example-backup --storage-location my-location --wait\n"
    "  kcmdr backup create kcm --schedule \"0 */6 * * *\" --storage-location aws-s3\n"
    "\n"
    "Exit codes: 0 created (with --wait: Completed), 1 failure, 2 usage error.\n";

struct create_wait {
  const char *name;
  const char *uid; /* of the ManagementBackup created */
  struct cli_progress prog;
  char last_error[1024];
  json_t *final;
  bool deleted;
};

/* The ManagementBackup was created before the wait began, and list and watch are consistent
 * reads: one missing (NULL), or one of another uid (deleted and made again), was deleted. */
static int create_wait_fn(json_t *mb, void *ud) {
  struct create_wait *w = ud;
  if (!mb || (w->uid && !kd_streq(cli_meta_s(mb, "uid"), w->uid))) {
    w->deleted = true;
    return 1;
  }
  const char *err = cli_status_s(mb, "error");
  if (err && err[0] && strncmp(err, w->last_error, sizeof w->last_error - 1) != 0) {
    cli_progress_end(&w->prog);
    cli_printf(stderr, "ManagementBackup %s: %s (still waiting)\n", w->name, err);
    snprintf(w->last_error, sizeof w->last_error, "%s", err);
  }
  if (!kd_streq(cli_status_s(mb, "lastBackupName"), w->name)) return 0;
  json_t *last = json_object_get(json_object_get(mb, "status"), "lastBackup");
  const char *phase = json_string_value(json_object_get(last, "phase"));
  cli_progress_update(&w->prog, phase, int_at(last, "progress", "itemsBackedUp"), int_at(last, "progress", "totalItems"));
  if (!velero_phase_terminal(phase)) return 0;
  json_decref(w->final);
  w->final = json_incref(mb);
  return 1;
}

static bool find_default(json_t *item, void *ud) {
  if (!json_is_true(json_object_get(json_object_get(item, "spec"), "default"))) return true;
  *(bool *)ud = true;
  return false;
}

static int bk_create(const struct cli_globals *g, int argc, char **argv) {
  const char *location = NULL, *schedule = NULL, *output = NULL, *timeout = NULL, *pos[1];
  bool wait = false;
  int npos, ret;
  const struct cli_opt opts[] = {
      {"--storage-location", NULL, CLI_OPT_STRING, &location}, {"--schedule", NULL, CLI_OPT_STRING, &schedule},
      {"--wait", "-w", CLI_OPT_BOOL, &wait},                   {"--timeout", NULL, CLI_OPT_STRING, &timeout},
      {"--output", "-o", CLI_OPT_STRING, &output},
  };
  enum cli_output fmt;
  int64_t timeout_ms = 0;
  if ((ret = cli_parse_opts(argc, argv, "backup create", opts, KD_ARRAY_LEN(opts), pos, 1, &npos)) >= 0 ||
      (ret = cli_check_names("backup create", create_usage, npos)) >= 0 || (ret = cli_check_name("backup create", pos[0])) >= 0 ||
      (ret = cli_check_output("backup create", output, false, &fmt)) >= 0 ||
      (ret = cli_check_timeout("backup create", timeout, &timeout_ms)) >= 0)
    return ret;
  const char *name = pos[0];
  if (schedule) {
    cron_schedule *cs = NULL;
    if (!schedule[0] || cron_parse(schedule, &cs) != KD_OK) {
      cli_printf(stderr, "kcmdr backup create: --schedule \"%s\": %s\n", schedule, schedule[0] ? kd_errmsg() : "empty");
      return CLI_USAGE;
    }
    cron_free(cs);
    if (wait) {
      cli_printf(stderr, "kcmdr backup create: --wait is for backups on demand; a schedule's backups come later "
                      "(follow them with kcmdr backup get %s)\n", name);
      return CLI_USAGE;
    }
  }
  if (location && !location[0]) location = NULL;
  const char *ns = cli_system_namespace(g);
  kube_client *c = NULL;
  json_t *obj = NULL, *out = NULL, *tmp = NULL;
  struct create_wait w = {.name = name};
  kd_rc rc;
  ret = CLI_FAIL;
  if (cli_client(g, &c) != CLI_OK) goto fail;
  /* what kcm would only report later in status.error, said now */
  if (location) {
    rc = kube_get(c, &cli_res_bsl, ns, location, &tmp);
    if (rc == KD_ERR_NOTFOUND) {
      cli_printf(stderr, "kcmdr backup create: BackupStorageLocation \"%s\" not found in namespace %s (kubectl -n %s get backupstoragelocations)\n",
              location, ns, ns);
      goto fail;
    }
    if (rc != KD_OK) goto fail_msg;
  } else {
    bool found = false;
    struct kube_list_opts lo = {0};
    if ((rc = kube_list(c, &cli_res_bsl, ns, &lo, find_default, &found, NULL)) != KD_OK) goto fail_msg;
    if (!found) {
      cli_printf(stderr, "kcmdr backup create: no BackupStorageLocation in namespace %s has spec.default: true; name one with --storage-location\n", ns);
      goto fail;
    }
  }
  if (!schedule) {
    json_decref(tmp);
    tmp = NULL;
    rc = kube_get(c, &cli_res_backup, ns, name, &tmp);
    if (rc == KD_OK) {
      cli_printf(stderr, "kcmdr backup create: a Velero Backup named \"%s\" already exists in namespace %s; choose another name\n", name, ns);
      goto fail;
    }
    if (rc != KD_ERR_NOTFOUND) goto fail_msg;
    kd_clear_error();
  }
  obj = json_pack("{s:s,s:s,s:{s:s},s:{}}", "apiVersion", "k0rdent.mirantis.com/v1beta1", "kind", "ManagementBackup",
                  "metadata", "name", name, "spec");
  json_t *spec = json_object_get(obj, "spec");
  if (!obj || (location && json_object_set_new(spec, "storageLocation", json_string(location))) ||
      (schedule && json_object_set_new(spec, "schedule", json_string(schedule)))) {
    kd_fail(KD_ERR_NOMEM, "out of memory");
    goto fail_msg;
  }
  rc = kube_create(c, &cli_res_mb, NULL, obj, &out);
  if (rc == KD_ERR_CONFLICT) {
    cli_printf(stderr, "kcmdr backup create: ManagementBackup \"%s\" already exists\n", name);
    goto fail;
  }
  if (rc != KD_OK) goto fail_msg;
  FILE *human = fmt == CLI_OUT_TABLE ? stdout : stderr;
  if (schedule)
    cli_printf(human, "ManagementBackup \"%s\" created: a backup at every activation of \"%s\" to %s%s%s.\n", name, schedule,
            location ? "storage location " : "the default storage location", location ? location : "",
            strstr(schedule, "TZ=") ? "" : " (times in UTC)");
  else
    cli_printf(human, "ManagementBackup \"%s\" created: one backup, \"%s\", to %s%s.\n", name, name,
            location ? "storage location " : "the default storage location", location ? location : "");
  if (!wait) {
    if (cli_created(human, out, fmt, "backup", name) != KD_OK) goto fail_msg;
    ret = CLI_OK;
    goto fail;
  }
  /* the ManagementBackup is followed: its status mirrors its Backup's */
  w.uid = cli_meta_s(out, "uid");
  if ((rc = cli_wait_shown(human, "backup", "backed up", &w.prog, c, &cli_res_mb, NULL, name, timeout_ms, create_wait_fn, &w)))
    goto fail_msg;
  if (w.deleted || !w.final) {
    fprintf(stderr, "kcmdr backup create: backup %s was deleted while waiting (its ManagementBackup is gone)\n", name);
    goto fail;
  }
  json_t *last = json_object_get(json_object_get(w.final, "status"), "lastBackup");
  const char *phase = json_string_value(json_object_get(last, "phase"));
  cli_printf(human, "Backup %s ended: %s (%lld items, %lld warnings, %lld errors). Run `kcmdr backup describe %s` for details.\n",
          name, phase, int_at(last, "progress", "itemsBackedUp"), (long long)json_integer_value(json_object_get(last, "warnings")),
          (long long)json_integer_value(json_object_get(last, "errors")), name);
  if (!kd_streq(phase, VELERO_PHASE_COMPLETED)) cli_print_failure(human, last);
  if (fmt != CLI_OUT_TABLE && cli_print_object(stdout, w.final, fmt) != KD_OK) goto fail_msg;
  ret = kd_streq(phase, VELERO_PHASE_COMPLETED) ? CLI_OK : CLI_FAIL;
  goto fail;
fail_msg:
  say_err("create");
fail:
  json_decref(w.final);
  json_decref(obj);
  json_decref(out);
  json_decref(tmp);
  kube_client_free(c);
  return ret;
}

/* ---- get ---- */

static const char get_usage[] =
    "Usage: kcmdr backup get [NAME...] [-l SELECTOR] [-o wide|json|yaml]\n"
    "\n"
    "List Velero Backups (and ManagementBackups that have made none yet) as a table. NAME is a Backup\n"
    "or a ManagementBackup: the latter stands for all the Backups it made.\n"
    "\n"
    "Columns: NAME, STATUS (the Backup's phase; a ManagementBackup without Backups shows New,\n"
    "Scheduled or Error), ERRORS, WARNINGS, ITEMS (backed up; 'n/total' while running), CREATED,\n"
    "EXPIRES (time left), STORAGE LOCATION, SCHEDULE (of its ManagementBackup); -o wide adds\n"
    "MANAGEMENTBACKUP, STARTED and COMPLETED.\n"
    "\n"
    "Flags:\n"
    "  -l, --selector SELECTOR      only Backups with these labels (k=v, k!=v, k in (a,b))\n"
    "  -o, --output wide|json|yaml  wide table, or the Backup objects (one NAME of a Backup: that\n"
    "                               object; else a List)\n"
    "  -n, --namespace NS           system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Examples:\n"
    "  kcmdr backup get\n"
    "  kcmdr backup get kcm -o wide\n"
    "  kcmdr backup get example-backup -o yaml\n";

static kd_rc backup_row(cli_table *t, json_t *b, json_t *mb, bool wide, time_t now) {
  char items[64], created[64], expires[32], started[64], completed[64], errs[24], warns[24];
  const char *phase = cli_phase(b);
  json_t *st = json_object_get(b, "status");
  long long done = (long long)json_integer_value(json_object_get(json_object_get(st, "progress"), "itemsBackedUp"));
  long long total = (long long)json_integer_value(json_object_get(json_object_get(st, "progress"), "totalItems"));
  if (velero_phase_running(phase) && total > 0) snprintf(items, sizeof items, "%lld/%lld", done, total);
  else snprintf(items, sizeof items, "%lld", done);
  snprintf(errs, sizeof errs, "%lld", (long long)json_integer_value(json_object_get(st, "errors")));
  snprintf(warns, sizeof warns, "%lld", (long long)json_integer_value(json_object_get(st, "warnings")));
  cli_time_text(cli_meta_s(b, "creationTimestamp"), created, sizeof created);
  const char *exp = cli_status_s(b, "expiration");
  time_t et;
  if (exp && kd_time_parse(exp, &et) == KD_OK && et <= now) snprintf(expires, sizeof expires, "expired");
  else cli_time_span(exp, now, expires, sizeof expires);
  cli_time_text(cli_status_s(b, "startTimestamp"), started, sizeof started);
  cli_time_text(cli_status_s(b, "completionTimestamp"), completed, sizeof completed);
  const char *loc = cli_spec_s(b, "storageLocation");
  if (!loc || !loc[0]) loc = label_of(b, VELERO_LABEL_STORAGE_LOCATION);
  const char *cells[] = {cli_meta_s(b, "name"), phase, errs, warns, items, created, expires, cli_or_none(loc),
                         mb ? cli_or_none(cli_spec_s(mb, "schedule")) : "<none>", mb ? cli_meta_s(mb, "name") : "<none>", started,
                         completed};
  (void)wide;
  return cli_table_add(t, cells);
}

static kd_rc mb_row(cli_table *t, json_t *mb) {
  char created[64];
  const char *err = cli_status_s(mb, "error");
  const char *status = err && err[0] ? "Error" : scheduled(mb) ? "Scheduled" : "New";
  cli_time_text(cli_meta_s(mb, "creationTimestamp"), created, sizeof created);
  const char *loc = cli_spec_s(mb, "storageLocation");
  const char *cells[] = {cli_meta_s(mb, "name"), status, "", "", "", created, "", loc && loc[0] ? loc : "<default>",
                         cli_or_none(cli_spec_s(mb, "schedule")), cli_meta_s(mb, "name"), "<none>", "<none>"};
  return cli_table_add(t, cells);
}

static int bk_get(const struct cli_globals *g, int argc, char **argv) {
  const char *output = NULL, *selector = NULL, *pos[64];
  int npos, ret;
  const struct cli_opt opts[] = {{"--output", "-o", CLI_OPT_STRING, &output}, {"--selector", "-l", CLI_OPT_STRING, &selector}};
  enum cli_output fmt;
  if ((ret = cli_parse_opts(argc, argv, "backup get", opts, KD_ARRAY_LEN(opts), pos, 64, &npos)) >= 0 ||
      (ret = cli_check_output("backup get", output, true, &fmt)) >= 0)
    return ret;
  const char *ns = cli_system_namespace(g);
  kube_client *c = NULL;
  json_t *backups = NULL, *mbs = NULL, *shown = json_array(), *mb_rows = json_array();
  cli_table *t = NULL;
  bool missing = false;
  kd_rc rc;
  ret = CLI_FAIL;
  if (!shown || !mb_rows) goto fail;
  if (cli_client(g, &c) != CLI_OK) goto fail;
  if ((rc = list_all(c, &cli_res_backup, ns, selector, false, &backups)) || (rc = list_all(c, &cli_res_mb, NULL, NULL, true, &mbs)))
    goto fail_msg;
  size_t i;
  json_t *b, *m;
  if (npos == 0) {
    json_array_extend(shown, backups);
    if (!selector) {
      json_array_foreach(mbs, i, m) {
        bool any = false;
        size_t j;
        json_array_foreach(backups, j, b) any = any || mb_owns(m, b);
        if (!any) json_array_append(mb_rows, m);
      }
    }
  }
  for (int k = 0; k < npos; k++) {
    if ((b = cli_by_name(backups, pos[k]))) {
      if (!cli_by_name(shown, pos[k])) json_array_append(shown, b);
      continue;
    }
    if (!(m = cli_by_name(mbs, pos[k]))) {
      cli_printf(stderr, "kcmdr backup get: backup \"%s\" not found in namespace %s\n", pos[k], ns);
      missing = true;
      continue;
    }
    bool any = false;
    size_t j;
    json_array_foreach(backups, j, b) {
      if (!mb_owns(m, b)) continue;
      any = true;
      if (!cli_by_name(shown, cli_meta_s(b, "name"))) json_array_append(shown, b);
    }
    if (!any) json_array_append(mb_rows, m);
  }
  if (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML) {
    if ((rc = cli_print_items(shown, npos == 1 && json_array_size(shown) == 1 && cli_by_name(backups, pos[0]), fmt))) goto fail_msg;
    ret = missing ? CLI_FAIL : CLI_OK;
    goto fail;
  }
  static const char *const headers[] = {"NAME",     "STATUS",           "ERRORS",   "WARNINGS",         "ITEMS",   "CREATED",
                                        "EXPIRES",  "STORAGE LOCATION", "SCHEDULE", "MANAGEMENTBACKUP", "STARTED", "COMPLETED"};
  if (!(t = cli_table_new(fmt == CLI_OUT_WIDE ? 12 : 9, headers))) goto fail;
  time_t now = time(NULL);
  json_array_foreach(shown, i, b) {
    if ((rc = backup_row(t, b, mb_of(mbs, b), fmt == CLI_OUT_WIDE, now))) goto fail_msg;
  }
  json_array_foreach(mb_rows, i, m) {
    if ((rc = mb_row(t, m))) goto fail_msg;
  }
  cli_print_table(t, "backups", ns, missing);
  ret = missing ? CLI_FAIL : CLI_OK;
  goto fail;
fail_msg:
  say_err("get");
fail:
  cli_table_free(t);
  json_decref(backups);
  json_decref(mbs);
  json_decref(shown);
  json_decref(mb_rows);
  kube_client_free(c);
  return ret;
}

/* ---- describe ---- */

static const char describe_usage[] =
    "Usage: kcmdr backup describe NAME... [-o json|yaml]\n"
    "\n"
    "Describe a backup: its ManagementBackup, phase, times, items, what it selects (label selectors\n"
    "summarised by key), errors and warnings (from the results file in the storage location), its\n"
    "files and their sizes in the storage location, and whether it can be verified (a checksums\n"
    "file exists: kcmdr wrote it; Velero writes none). NAME is a Backup, or a ManagementBackup: then\n"
    "the ManagementBackup, the list of its Backups and its last backup are described.\n"
    "\n"
    "Flags:\n"
    "  -o, --output json|yaml   the same facts as one object: backup, managementBackup, storageLocation,\n"
    "                           files, checksums, results\n"
    "  -n, --namespace NS       system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr backup describe kcm-20250117180012\n";

/* One selector as text: "k=v,k2 in (a,b)". */
static void selector_text(json_t *sel, kd_buf *out) {
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(sel, "matchLabels"), k, v) {
    kd_buf_addf(out, "%s%s=%s", out->len ? "," : "", k, json_string_value(v) ? json_string_value(v) : "");
  }
  size_t i, j;
  json_t *e, *x;
  json_array_foreach(json_object_get(sel, "matchExpressions"), i, e) {
    const char *op = json_string_value(json_object_get(e, "operator"));
    kd_buf_addf(out, "%s%s %s", out->len ? "," : "", json_string_value(json_object_get(e, "key")) ? json_string_value(json_object_get(e, "key")) : "?",
                kd_streq(op, "In") ? "in" : kd_streq(op, "NotIn") ? "notin" : op ? op : "?");
    if (json_array_size(json_object_get(e, "values"))) {
      kd_buf_adds(out, " (");
      json_array_foreach(json_object_get(e, "values"), j, x) kd_buf_addf(out, "%s%s", j ? "," : "", json_string_value(x) ? json_string_value(x) : "");
      kd_buf_adds(out, ")");
    }
  }
}

/* orLabelSelectors summarised: per label key, the values selected (kcm's lists grow with the
 * number of ClusterDeployments, one selector per value). */
static void print_or_selectors(json_t *ors) {
  json_t *keys = json_object(), *others = json_array(); /* key -> [values]; selectors of other shapes */
  size_t i, j;
  json_t *sel, *x;
  if (!keys || !others) goto done;
  json_array_foreach(ors, i, sel) {
    json_t *mls = json_object_get(sel, "matchLabels"), *mes = json_object_get(sel, "matchExpressions");
    json_t *e = json_array_get(mes, 0), *vals = NULL;
    const char *key = NULL;
    if (json_object_size(mls) == 1 && json_array_size(mes) == 0) {
      key = json_object_iter_key(json_object_iter(mls));
      vals = json_pack("[O]", json_object_iter_value(json_object_iter(mls)));
    } else if (json_object_size(mls) == 0 && json_array_size(mes) == 1 &&
               kd_streq(json_string_value(json_object_get(e, "operator")), "In")) {
      key = json_string_value(json_object_get(e, "key"));
      vals = json_incref(json_object_get(e, "values"));
    }
    if (!key || !json_is_array(vals)) {
      kd_buf t = KD_BUF_INIT(1u << 16);
      selector_text(sel, &t);
      json_array_append_new(others, json_string(t.len ? t.data : "(everything)"));
      kd_buf_free(&t);
      json_decref(vals);
      continue;
    }
    json_t *all = json_object_get(keys, key);
    if (!all) json_object_set_new(keys, key, all = json_array());
    if (all) json_array_extend(all, vals);
    json_decref(vals);
  }
  cli_printf(stdout, "Or label selectors:  %zu selector%s over %zu label key%s\n", json_array_size(ors), json_array_size(ors) == 1 ? "" : "s",
         json_object_size(keys) + json_array_size(others), json_object_size(keys) + json_array_size(others) == 1 ? "" : "s");
  const char *k;
  json_t *vals;
  json_object_foreach(keys, k, vals) {
    size_t n = json_array_size(vals);
    cli_printf(stdout, "  %s: %zu value%s: ", k, n, n == 1 ? "" : "s");
    json_array_foreach(vals, j, x) {
      if (j == 5) {
        cli_printf(stdout, ", ... and %zu more", n - 5);
        break;
      }
      cli_printf(stdout, "%s%s", j ? ", " : "", json_string_value(x) ? json_string_value(x) : "?");
    }
    cli_printf(stdout, "\n");
  }
  json_array_foreach(others, j, x) cli_printf(stdout, "  %s\n", json_string_value(x));
done:
  json_decref(keys);
  json_decref(others);
}

struct files_ctx {
  json_t *files;
  uint64_t total;
};

static kd_rc collect_file(const char *key, bool is_prefix, uint64_t size, void *ud) {
  struct files_ctx *f = ud;
  if (is_prefix) return KD_OK;
  f->total += size;
  if (json_array_append_new(f->files, json_pack("{s:s,s:I}", "key", key, "size", (json_int_t)size)))
    return kd_fail(KD_ERR_NOMEM, "out of memory");
  return KD_OK;
}

/* ---- encryption and signatures (crypt.h) ----
 * The location's keys, loaded once per command and attached to its store so that every read
 * (cli_gunzip_get, verify_stage) decrypts transparently. */
static struct crypt_location cli_loc;
static objstore *cli_loc_st;

/* Load bsl's crypt settings and attach its keys to st. KD_ERR_CONFIG (message says why) when a
 * configured Secret cannot be used; the store is then read without keys. */
static kd_rc attach_keys(kube_client *c, const char *ns, json_t *bsl, objstore *st) {
  kd_rc rc = crypt_location_load(c, ns, bsl, &cli_loc);
  if (rc == KD_OK && cli_loc.keys && (rc = crypt_attach(st, cli_loc.keys)) == KD_OK) cli_loc_st = st;
  return rc;
}

static void release_keys(void) {
  if (cli_loc_st) crypt_detach(cli_loc_st);
  cli_loc_st = NULL;
  crypt_location_free(&cli_loc);
}

/* desc.encryption {encrypted, keyId} from the tarball's header; desc.signature {signed, valid,
 * keyId, message} under the location's keys */
static void describe_crypt(objstore *st, const char *name, json_t *desc) {
  char key[VELERO_KEY_MAX], id[CRYPT_ID_MAX + 1];
  bool enc = false;
  if (velero_backup_key(name, VELERO_BACKUP_TARBALL, key, sizeof key) == KD_OK && crypt_peek(st, key, &enc, id) == KD_OK)
    json_object_set_new(desc, "encryption", enc ? json_pack("{s:b,s:s}", "encrypted", 1, "keyId", id) : json_pack("{s:b}", "encrypted", 0));
  struct verify_sig vs;
  if (verify_signature(st, name, &cli_loc, &vs, NULL) == KD_OK)
    json_object_set_new(desc, "signature", json_pack("{s:b,s:b,s:s,s:s}", "signed", vs.present, "valid", vs.valid, "keyId", vs.key_id,
                                                     "message", vs.why));
}

/* What the storage location holds for backup b, into desc: storageLocation, location, files,
 * checksums ("present: N files listed", "missing", or the error), results. Failures are
 * recorded in desc as text ("filesError"), never fatal: the object is described anyway. */
static void describe_store(kube_client *c, const char *ns, json_t *b, json_t *desc) {
  objstore *st = NULL;
  json_t *bsl = NULL;
  const char *name = cli_meta_s(b, "name");
  struct files_ctx f = {json_array(), 0};
  verify_sums *sums = NULL;
  char prefix[VELERO_KEY_MAX], key[VELERO_KEY_MAX];
  kd_rc rc = cli_backup_store(c, ns, b, &st, &bsl);
  if (rc != KD_OK) {
    json_object_set_new(desc, "filesError", json_string(kd_errmsg()));
    goto done;
  }
  json_object_set_new(desc, "storageLocation", json_string(cli_meta_s(bsl, "name")));
  json_object_set_new(desc, "location", json_string(objstore_describe(st)));
  if (attach_keys(c, ns, bsl, st) != KD_OK) json_object_set_new(desc, "keysError", json_string(kd_errmsg()));
  describe_crypt(st, name, desc);
  snprintf(prefix, sizeof prefix, "backups/%s/", name);
  if (!f.files || (rc = objstore_list(st, prefix, '\0', collect_file, &f)) != KD_OK) {
    json_object_set_new(desc, "filesError", json_string(f.files ? kd_errmsg() : "out of memory"));
    goto done;
  }
  json_object_set(desc, "files", f.files);
  json_object_set_new(desc, "filesSize", json_integer((json_int_t)f.total));
  rc = verify_sums_load(st, name, &sums);
  if (rc == KD_OK) json_object_set_new(desc, "checksums", json_pack("{s:b,s:I}", "present", 1, "files", (json_int_t)verify_sums_count(sums)));
  else if (rc == KD_ERR_NOTFOUND) json_object_set_new(desc, "checksums", json_pack("{s:b}", "present", 0));
  else json_object_set_new(desc, "checksums", json_pack("{s:b,s:s}", "present", 1, "error", kd_errmsg()));
  if (velero_backup_key(name, VELERO_BACKUP_RESULTS, key, sizeof key) == KD_OK) {
    char *text = NULL;
    size_t len = 0;
    rc = cli_gunzip_get_all(st, key, BK_SMALL_MAX, &text, &len);
    json_t *r = rc == KD_OK ? json_loadb(text, len, JSON_ALLOW_NUL, NULL) : NULL;
    if (r) json_object_set_new(desc, "results", r);
    else if (rc != KD_ERR_NOTFOUND) json_object_set_new(desc, "resultsError", json_string(rc ? kd_errmsg() : "the results file is not JSON"));
    free(text);
  }
done:
  json_decref(f.files);
  verify_sums_free(sums);
  json_decref(bsl);
  release_keys();
  objstore_free(st);
}

static void print_mb(json_t *mb, json_t *own) {
  char t[64];
  cli_printf(stdout, "ManagementBackup:  %s\n", cli_meta_s(mb, "name"));
  cli_printf(stdout, "  Schedule:          %s\n", scheduled(mb) ? cli_spec_s(mb, "schedule") : "<none> (one backup on demand)");
  cli_printf(stdout, "  Storage location:  %s\n", cli_spec_s(mb, "storageLocation") && cli_spec_s(mb, "storageLocation")[0] ? cli_spec_s(mb, "storageLocation") : "<default>");
  cli_time_text(cli_status_s(mb, "lastBackupTime"), t, sizeof t);
  cli_printf(stdout, "  Last backup:       %s (%s)\n", cli_or_none(cli_status_s(mb, "lastBackupName")), t);
  if (scheduled(mb)) {
    cli_time_text(cli_status_s(mb, "nextAttempt"), t, sizeof t);
    cli_printf(stdout, "  Next attempt:      %s\n", t);
  }
  if (cli_status_s(mb, "error") && cli_status_s(mb, "error")[0]) cli_printf(stdout, "  Error:             %s\n", cli_status_s(mb, "error"));
  if (own) {
    size_t i;
    json_t *b;
    cli_printf(stdout, "  Backups:           %zu\n", json_array_size(own));
    json_array_foreach(own, i, b) cli_printf(stdout, "    %-50s %s\n", cli_meta_s(b, "name"), cli_phase(b));
  }
}

/* mb: the ManagementBackup that made b (NULL: none), shown unless show_mb is false. */
static void print_backup(json_t *b, json_t *mb, bool show_mb, json_t *desc, time_t now) {
  char t[64], span[32];
  json_t *v, *spec = json_object_get(b, "spec"), *st = json_object_get(b, "status");
  const char *name = cli_meta_s(b, "name");
  cli_print_head(stdout, b);
  cli_printf(stdout, "\n");
  if (mb && show_mb) print_mb(mb, NULL);
  else if (show_mb) cli_printf(stdout, "ManagementBackup:  <none>\n");
  if (show_mb) cli_printf(stdout, "\n");
  cli_printf(stdout, "Phase:  %s\n\n", cli_phase(b));
  cli_printf(stdout, "Errors:    %lld\nWarnings:  %lld\n\n", (long long)json_integer_value(json_object_get(st, "errors")),
         (long long)json_integer_value(json_object_get(st, "warnings")));
  if (json_array_size(json_object_get(st, "validationErrors"))) {
    size_t i;
    cli_printf(stdout, "Validation errors:\n");
    json_array_foreach(json_object_get(st, "validationErrors"), i, v) cli_printf(stdout, "  %s\n", json_string_value(v) ? json_string_value(v) : "?");
    cli_printf(stdout, "\n");
  }
  if (cli_status_s(b, "failureReason") && cli_status_s(b, "failureReason")[0]) cli_printf(stdout, "Failure reason:  %s\n\n", cli_status_s(b, "failureReason"));
  cli_print_scope(stdout, spec);
  json_t *icr = json_object_get(spec, "includeClusterResources");
  cli_printf(stdout, "  %-10s %s\n\n", "Cluster:", json_is_true(icr) ? "included" : json_is_false(icr) ? "excluded" : "auto");
  if (json_object_get(spec, "labelSelector") && !json_is_null(json_object_get(spec, "labelSelector"))) {
    kd_buf s = KD_BUF_INIT(1u << 20);
    selector_text(json_object_get(spec, "labelSelector"), &s);
    cli_printf(stdout, "Label selector:  %s\n", s.len ? s.data : "<none>");
    kd_buf_free(&s);
  } else {
    cli_printf(stdout, "Label selector:  <none>\n");
  }
  if (json_array_size(json_object_get(spec, "orLabelSelectors"))) print_or_selectors(json_object_get(spec, "orLabelSelectors"));
  else cli_printf(stdout, "Or label selectors:  <none>\n");
  const char *loc = cli_spec_s(b, "storageLocation");
  cli_printf(stdout, "\nStorage Location:  %s\n", cli_or_none(loc && loc[0] ? loc : label_of(b, VELERO_LABEL_STORAGE_LOCATION)));
  cli_printf(stdout, "TTL:               %s\n\n", cli_or_none(cli_spec_s(b, "ttl")));
  cli_time_text(cli_status_s(b, "startTimestamp"), t, sizeof t);
  cli_printf(stdout, "Started:     %s\n", t);
  cli_time_text(cli_status_s(b, "completionTimestamp"), t, sizeof t);
  cli_printf(stdout, "Completed:   %s\n", t);
  cli_time_text(cli_status_s(b, "expiration"), t, sizeof t);
  const char *exp = cli_status_s(b, "expiration");
  time_t et = 0;
  cli_time_span(exp, now, span, sizeof span);
  if (exp && kd_time_parse(exp, &et) == KD_OK) cli_printf(stdout, "Expiration:  %s (%s %s)\n\n", t, et > now ? "in" : "expired", span);
  else cli_printf(stdout, "Expiration:  %s\n\n", t);
  cli_printf(stdout, "Total items to be backed up:  %lld\n", int_at(st, "progress", "totalItems"));
  cli_printf(stdout, "Items backed up:              %lld\n\n", int_at(st, "progress", "itemsBackedUp"));
  const char *err = json_string_value(json_object_get(desc, "filesError"));
  if (err) {
    cli_printf(stdout, "Files:  cannot be listed: %s\n", err);
  } else {
    json_t *files = json_object_get(desc, "files");
    char sz[32];
    size_t i;
    json_t *f;
    cli_printf(stdout, "Files in storage location %s (%s):\n", json_string_value(json_object_get(desc, "storageLocation")),
           json_string_value(json_object_get(desc, "location")));
    json_array_foreach(files, i, f) {
      const char *key = json_string_value(json_object_get(f, "key"));
      size_t pl = strlen("backups/") + strlen(name) + 1;
      cli_size_text((uint64_t)json_integer_value(json_object_get(f, "size")), sz, sizeof sz);
      cli_printf(stdout, "  %-48s %12s\n", strlen(key) > pl ? key + pl : key, sz);
    }
    cli_size_text((uint64_t)json_integer_value(json_object_get(desc, "filesSize")), sz, sizeof sz);
    if (json_array_size(files)) cli_printf(stdout, "  %zu file%s, %s in all\n", json_array_size(files), json_array_size(files) == 1 ? "" : "s", sz);
    else cli_printf(stdout, "  <none>%s\n", velero_phase_running(cli_phase(b)) ? " (the backup is still running)" : "");
    json_t *sums = json_object_get(desc, "checksums");
    if (json_string_value(json_object_get(sums, "error")))
      cli_printf(stdout, "\nVerification:  the checksums file is damaged: %s\n", json_string_value(json_object_get(sums, "error")));
    else if (json_is_true(json_object_get(sums, "present")))
      cli_printf(stdout, "\nVerification:  checksums file present (%lld files listed); `kcmdr backup verify %s` checks them\n",
             (long long)json_integer_value(json_object_get(sums, "files")), name);
    else if (json_array_size(files))
      cli_printf(stdout, "\nVerification:  no checksums file (written by Velero?): this backup cannot be verified\n");
    json_t *enc = json_object_get(desc, "encryption"), *sig = json_object_get(desc, "signature");
    if (enc) {
      if (json_is_true(json_object_get(enc, "encrypted")))
        cli_printf(stdout, "Encrypted:     yes (key id %s)\n", json_string_value(json_object_get(enc, "keyId")));
      else cli_printf(stdout, "Encrypted:     no\n");
    }
    if (sig) {
      if (json_is_true(json_object_get(sig, "valid")))
        cli_printf(stdout, "Signed:        yes, valid (key id %s)\n", json_string_value(json_object_get(sig, "keyId")));
      else if (json_is_true(json_object_get(sig, "signed")))
        cli_printf(stdout, "Signed:        yes, NOT verified: %s\n", json_string_value(json_object_get(sig, "message")));
      else cli_printf(stdout, "Signed:        no\n");
    }
    if (json_string_value(json_object_get(desc, "keysError")))
      cli_printf(stdout, "Keys:          %s\n", json_string_value(json_object_get(desc, "keysError")));
  }
  json_t *r = json_object_get(desc, "results");
  if (r) {
    cli_printf(stdout, "\n");
    cli_print_results(stdout, "Errors", json_object_get(r, "errors"), 20, "backup describe");
    cli_print_results(stdout, "Warnings", json_object_get(r, "warnings"), 20, "backup describe");
  } else if (json_string_value(json_object_get(desc, "resultsError"))) {
    cli_printf(stdout, "\nResults:  cannot be read: %s\n", json_string_value(json_object_get(desc, "resultsError")));
  }
}

static int bk_describe_one(kube_client *c, const char *ns, const char *name, int k, enum cli_output fmt, void *ud) {
  time_t now = *(const time_t *)ud;
  json_t *b = NULL, *mb = NULL, *own = NULL, *all = NULL, *desc = json_object();
  int ret = CLI_FAIL;
  if (!desc) {
    cli_printf(stderr, "kcmdr backup describe: out of memory\n");
    goto out;
  }
  if (find_named(c, ns, "describe", name, &b, &mb) != CLI_OK) goto out;
  if (!b) { /* NAME is a ManagementBackup: it, its Backups and the last one */
    if (list_all(c, &cli_res_backup, ns, NULL, false, &all) != KD_OK) {
      say_err("describe");
      goto out;
    }
    own = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(all, i, x) if (mb_owns(mb, x)) json_array_append(own, x);
    const char *last = cli_status_s(mb, "lastBackupName");
    if (last && cli_by_name(own, last)) b = json_incref(cli_by_name(own, last));
  }
  if (b) describe_store(c, ns, b, desc);
  if (fmt != CLI_OUT_TABLE) {
    json_object_set(desc, "backup", b ? b : json_null());
    json_object_set(desc, "managementBackup", mb ? mb : json_null());
    if (own) json_object_set(desc, "backups", own);
    if (cli_print_object(stdout, desc, fmt) != KD_OK) say_err("describe");
    else ret = CLI_OK;
    goto out;
  }
  if (k) cli_printf(stdout, "\n---\n\n");
  if (own) { /* NAME was a ManagementBackup */
    print_mb(mb, own);
    if (b) {
      cli_printf(stdout, "\nIts last backup:\n\n");
      print_backup(b, NULL, false, desc, now);
    }
  } else {
    print_backup(b, mb, true, desc, now);
  }
  ret = CLI_OK;
out:
  json_decref(b);
  json_decref(mb);
  json_decref(own);
  json_decref(all);
  json_decref(desc);
  return ret;
}

static int bk_describe(const struct cli_globals *g, int argc, char **argv) {
  time_t now = time(NULL);
  return cli_describe(g, argc, argv, "backup describe", describe_usage, bk_describe_one, &now);
}

/* ---- logs ---- */

static const char logs_usage[] =
    "Usage: kcmdr backup logs NAME\n"
    "\n"
    "Print the log of a backup (backups/<b>/<b>-logs.gz in its storage location, decompressed) to\n"
    "stdout. The log exists once the backup has ended. NAME is a Backup, or a ManagementBackup\n"
    "(then its last backup).\n"
    "\n"
    "Flags:\n"
    "  -n, --namespace NS   system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr backup logs example-backup | grep -i error\n";

static int bk_log_find(kube_client *c, const char *ns, const char *name, struct cli_log_at *at) {
  json_t *mb = NULL;
  if (resolve_one(c, ns, "logs", name, &at->obj, &mb) != CLI_OK) return CLI_FAIL;
  json_decref(mb);
  at->running = velero_phase_running(cli_phase(at->obj));
  if (cli_backup_store(c, ns, at->obj, &at->st, &at->bsl) ||
      velero_backup_key(cli_meta_s(at->obj, "name"), VELERO_BACKUP_LOGS, at->key, sizeof at->key)) {
    say_err("logs");
    return CLI_FAIL;
  }
  /* the keys stay attached until the process ends (cli_logs owns the store) */
  if (attach_keys(c, ns, at->bsl, at->st) != KD_OK) {
    say_err("logs");
    return CLI_FAIL;
  }
  return CLI_OK;
}

static int bk_logs(const struct cli_globals *g, int argc, char **argv) {
  return cli_logs(g, argc, argv, "backup", logs_usage, bk_log_find);
}

/* ---- delete ---- */

static const char delete_usage[] =
    "Usage: kcmdr backup delete NAME... [--confirm] [--wait] [--timeout DURATION]\n"
    "\n"
    "Delete backups the way `velero backup delete` does: a DeleteBackupRequest per backup, which the\n"
    "engine (kcmdr controller, or Velero) serves by removing the backup's files from its storage\n"
    "location, then the Backup object. NAME is a Velero Backup. A backup made on demand goes with\n"
    "its ManagementBackup (which made only it); a scheduled ManagementBackup is not a backup: delete\n"
    "its backups by name (kcmdr backup get NAME lists them), stop the schedule with\n"
    "`kubectl delete managementbackup NAME`.\n"
    "\n"
    "Asks for confirmation on a terminal; without a terminal it deletes only with --confirm.\n"
    "\n"
    "Flags:\n"
    "  --confirm              delete without asking\n"
    "  -w, --wait             wait until the request was served; exit 1 if it reports errors\n"
    "  --timeout DURATION     with --wait: give up after this long (default: no limit)\n"
    "  -n, --namespace NS     system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr backup delete example-backup --confirm --wait\n"
    "\n"
    "Exit codes: 0 requested (with --wait: deleted), 1 failure, 2 usage error or no confirmation.\n";

struct dbr_wait {
  json_t *final;
};

static int dbr_wait_fn(json_t *dbr, void *ud) {
  struct dbr_wait *w = ud;
  if (!dbr) return 0; /* not visible yet, or removed with its backup: the Backup says */
  if (!kd_streq(cli_status_s(dbr, "phase"), "Processed")) return 0;
  w->final = json_incref(dbr);
  return 1;
}

static int bk_delete(const struct cli_globals *g, int argc, char **argv) {
  const char *timeout = NULL, *pos[64];
  bool confirm = false, wait = false;
  int npos, ret;
  const struct cli_opt opts[] = {{"--confirm", NULL, CLI_OPT_BOOL, &confirm},
                                 {"--wait", "-w", CLI_OPT_BOOL, &wait},
                                 {"--timeout", NULL, CLI_OPT_STRING, &timeout}};
  int64_t timeout_ms = 0;
  if ((ret = cli_parse_opts(argc, argv, "backup delete", opts, KD_ARRAY_LEN(opts), pos, 64, &npos)) >= 0 ||
      (ret = cli_check_names("backup delete", delete_usage, npos)) >= 0 ||
      (ret = cli_check_timeout("backup delete", timeout, &timeout_ms)) >= 0)
    return ret;
  const char *ns = cli_system_namespace(g);
  kube_client *c = NULL;
  json_t *found = json_array(), *mbs = json_array();
  kd_rc rc;
  ret = CLI_FAIL;
  if (!found || !mbs || cli_client(g, &c) != CLI_OK) goto fail;
  /* everything is looked up before anything is deleted */
  for (int k = 0; k < npos; k++) {
    json_t *b = NULL, *mb = NULL;
    rc = kube_get(c, &cli_res_backup, ns, pos[k], &b);
    if (rc == KD_ERR_NOTFOUND) {
      rc = kube_get(c, &cli_res_mb, NULL, pos[k], &mb);
      if (rc == KD_OK && scheduled(mb))
        cli_printf(stderr, "kcmdr backup delete: \"%s\" is a scheduled ManagementBackup, not a backup: delete its backups by name "
                        "(kcmdr backup get %s lists them); `kubectl delete managementbackup %s` stops the schedule\n",
                pos[k], pos[k], pos[k]);
      else if (rc == KD_OK)
        cli_printf(stderr, "kcmdr backup delete: ManagementBackup \"%s\" has no Backup named so in namespace %s; "
                        "`kubectl delete managementbackup %s` removes it\n", pos[k], ns, pos[k]);
      else if (rc == KD_ERR_NOTFOUND)
        cli_printf(stderr, "kcmdr backup delete: backup \"%s\" not found in namespace %s\n", pos[k], ns);
      else
        say_err("delete");
      json_decref(mb);
      goto fail;
    }
    if (rc != KD_OK) {
      say_err("delete");
      goto fail;
    }
    /* the ManagementBackup that made only this backup goes with it */
    const char *lbl = label_of(b, MB_LABEL_BACKUP);
    if (lbl && strcmp(lbl, pos[k]) == 0 && kube_get(c, &cli_res_mb, NULL, pos[k], &mb) == KD_OK && mb_owns(mb, b) && !scheduled(mb))
      json_array_append(mbs, mb);
    kd_clear_error();
    json_decref(mb);
    json_array_append_new(found, b);
  }
  if (!confirm) {
    kd_buf q = KD_BUF_INIT(1u << 16);
    kd_buf_addf(&q, "Delete %s ", npos == 1 ? "backup" : "backups");
    for (int k = 0; k < npos; k++) kd_buf_addf(&q, "%s%s", k ? ", " : "", pos[k]);
    kd_buf_adds(&q, " (files in the storage location and the object)?");
    bool no_tty;
    bool yes = cli_confirm(q.data ? q.data : "Delete?", &no_tty);
    kd_buf_free(&q);
    if (no_tty) {
      cli_printf(stderr, "kcmdr backup delete: not deleting without confirmation, and stdin is not a terminal to ask on: pass --confirm\n");
      ret = CLI_USAGE;
      goto fail;
    }
    if (!yes) { /* the operator's answer, not a failure (velero exits 0 too) */
      cli_printf(stderr, "Nothing deleted.\n");
      ret = CLI_OK;
      goto fail;
    }
  }
  ret = CLI_OK;
  size_t i;
  json_t *b;
  json_array_foreach(found, i, b) {
    const char *name = cli_meta_s(b, "name");
    json_t *dbr = backup_delete_request(ns, b), *made = NULL;
    rc = dbr ? kube_create(c, &cli_res_dbr, ns, dbr, &made) : kd_fail(KD_ERR_NOMEM, "out of memory");
    json_decref(dbr);
    if (rc != KD_OK) {
      say_err("delete");
      ret = CLI_FAIL;
      json_decref(made);
      continue;
    }
    char dname[300];
    snprintf(dname, sizeof dname, "%s", cli_meta_s(made, "name") ? cli_meta_s(made, "name") : "?");
    json_decref(made);
    cli_printf(stdout, "Request to delete backup \"%s\" submitted successfully (DeleteBackupRequest %s).\n", name, dname);
    json_t *mb = cli_by_name(mbs, name);
    if (mb) {
      json_t *o = NULL;
      rc = kube_delete(c, &cli_res_mb, NULL, name, NULL, &o);
      json_decref(o);
      if (rc == KD_OK || rc == KD_ERR_NOTFOUND) cli_printf(stdout, "ManagementBackup \"%s\", which made only this backup, deleted.\n", name);
      else {
        say_err("delete");
        ret = CLI_FAIL;
      }
    }
    if (!wait) {
      cli_printf(stdout, "The backup is deleted once its files are removed from the storage location (kcmdr backup get %s).\n", name);
      continue;
    }
    struct dbr_wait w = {NULL};
    rc = cli_wait(c, &cli_res_dbr, ns, dname, timeout_ms, dbr_wait_fn, &w);
    if (rc != KD_OK) {
      say_err("delete");
      ret = CLI_FAIL;
      continue;
    }
    json_t *errs = json_object_get(json_object_get(w.final, "status"), "errors"), *e, *left = NULL;
    size_t j;
    json_array_foreach(errs, j, e) cli_printf(stderr, "kcmdr backup delete: %s: %s\n", name, json_string_value(e) ? json_string_value(e) : "?");
    rc = kube_get(c, &cli_res_backup, ns, name, &left);
    json_decref(left);
    if (rc == KD_ERR_NOTFOUND && json_array_size(errs) == 0) {
      cli_printf(stdout, "Backup \"%s\" deleted (files and object).\n", name);
    } else {
      if (rc == KD_OK) cli_printf(stderr, "kcmdr backup delete: backup %s is still there\n", name);
      ret = CLI_FAIL;
    }
    kd_clear_error();
    json_decref(w.final);
  }
fail:
  json_decref(found);
  json_decref(mbs);
  kube_client_free(c);
  return ret;
}

/* ---- verify ---- */

static const char verify_usage[] =
    "Usage: kcmdr backup verify NAME [--require-checksums] [-o json|yaml]\n"
    "\n"
    "Check a backup in its storage location, reading every byte:\n"
    "  - every file against the SHA-256 and size the checksums file (<b>-checksums.json, written by\n"
    "    kcmdr) records, and none missing;\n"
    "  - the tarball read entry by entry: a valid gzip tar (no hostile paths), metadata/version,\n"
    "    every object parsed as JSON with the name and namespace of its path;\n"
    "  - the resource list (<b>-resource-list.json.gz) against the objects in the tarball, both ways;\n"
    "  - velero-backup.json, the results and the log readable.\n"
    "A backup Velero wrote has no checksums file: it cannot be verified, and that is said, but the\n"
    "rest is checked. NAME is a Backup, or a ManagementBackup (then its last backup).\n"
    "\n"
    "Flags:\n"
    "  --require-checksums      exit 1 for a backup without a checksums file too\n"
    "  -o, --output json|yaml   a report object instead of text\n"
    "  -n, --namespace NS       system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr backup verify kcm-20250117180012 && kcmdr restore create --from-backup kcm-20250117180012\n"
    "\n"
    "Exit codes: 0 every check passed, 1 a mismatch or an unreadable file (or no checksums with\n"
    "--require-checksums), 2 usage error.\n";

struct vfy {
  bool text;
  int problems, warnings;
  json_t *report;   /* {problems:[], warnings:[], checked:[], ...} */
  json_t *missing;  /* keys already reported missing: said once */
};

static void vfy_line(struct vfy *v, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void vfy_line(struct vfy *v, const char *kind, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (strcmp(kind, "problem") == 0) {
    v->problems++;
    json_array_append_new(json_object_get(v->report, "problems"), json_string(msg));
    if (v->text) cli_printf(stdout, "  FAIL  %s\n", msg);
  } else if (strcmp(kind, "warning") == 0) {
    v->warnings++;
    json_array_append_new(json_object_get(v->report, "warnings"), json_string(msg));
    if (v->text) cli_printf(stdout, "  warn  %s\n", msg);
  } else {
    json_array_append_new(json_object_get(v->report, "checked"), json_string(msg));
    if (v->text) cli_printf(stdout, "  ok    %s\n", msg);
  }
}

static kd_rc null_sink(const char *p, size_t n, void *ud) {
  (void)p;
  *(uint64_t *)ud += n;
  return KD_OK;
}

/* Objects of the archive, by "<apiVersion>/<Kind>" then "ns/name" (or "name"). */
struct vfy_archive {
  json_t *set;
  size_t entries, objects, preferred, bad_json;
  bool version_seen, complete;
};

static void set_add(json_t *set, const char *kind, const char *entry) {
  json_t *k = json_object_get(set, kind);
  if (!k) json_object_set_new(set, kind, k = json_object());
  if (k) json_object_set_new(k, entry, json_true());
}

static void vfy_archive(struct vfy *v, int fd, struct vfy_archive *a) {
  archive_reader *r = NULL;
  struct archive_item it;
  bool eof = false;
  kd_rc rc = archive_reader_open_fd(fd, 0, &r);
  while (rc == KD_OK && (rc = archive_reader_next(r, &it, &eof)) == KD_OK && !eof) {
    a->entries++;
    if (it.where.kind == ARCHIVE_PATH_VERSION) {
      a->version_seen = true;
      if (it.len < 5 || strncmp(it.data, VELERO_FORMAT_VERSION, 5) != 0) vfy_line(v, "warning", "metadata/version says \"%.20s\", not %s", it.data, VELERO_FORMAT_VERSION);
      continue;
    }
    if (it.where.kind != ARCHIVE_PATH_OBJECT) continue;
    json_error_t je;
    json_t *o = json_loadb(it.data, it.len, JSON_ALLOW_NUL, &je);
    const char *name = cli_meta_s(o, "name"), *ns = cli_meta_s(o, "namespace");
    if (!json_is_object(o)) {
      if (a->bad_json++ < BK_SHOW) vfy_line(v, "problem", "%s: not a JSON object: %s", it.path, o ? "another JSON value" : je.text);
    } else if (!kd_streq(name, it.where.name) || !kd_streq(it.where.ns[0] ? ns : NULL, it.where.ns[0] ? it.where.ns : NULL)) {
      if (a->bad_json++ < BK_SHOW)
        vfy_line(v, "problem", "%s holds %s%s%s, not the object its path names", it.path, ns ? ns : "", ns ? "/" : "", name ? name : "an object without a name");
    } else if (it.where.version[0]) {
      a->preferred++;
    } else {
      const char *av = json_string_value(json_object_get(o, "apiVersion")), *kind = json_string_value(json_object_get(o, "kind"));
      char k[700], e[600];
      snprintf(k, sizeof k, "%s/%s", av ? av : "?", kind ? kind : "?");
      snprintf(e, sizeof e, "%s%s%s", it.where.ns[0] ? it.where.ns : "", it.where.ns[0] ? "/" : "", it.where.name);
      set_add(a->set, k, e);
      a->objects++;
    }
    json_decref(o);
  }
  if (rc != KD_OK) vfy_line(v, "problem", "the tarball cannot be read to its end: %s", kd_errmsg());
  else a->complete = true;
  if (a->bad_json > BK_SHOW) vfy_line(v, "problem", "... and %zu more objects that do not parse or do not match their path", a->bad_json - BK_SHOW);
  archive_reader_free(r);
}

static void vfy_reslist(struct vfy *v, objstore *st, const char *name, struct vfy_archive *a) {
  char key[VELERO_KEY_MAX], *text = NULL;
  size_t len = 0, listed = 0, missing = 0, extra = 0;
  json_t *rl = NULL, *rlset = json_object();
  velero_backup_key(name, VELERO_BACKUP_RESOURCE_LIST, key, sizeof key);
  kd_rc rc = cli_gunzip_get_all(st, key, BK_SMALL_MAX, &text, &len);
  if (rc == KD_ERR_NOTFOUND) {
    if (!json_object_get(v->missing, key)) vfy_line(v, "problem", "%s is missing", key);
    goto done;
  }
  if (rc != KD_OK) {
    vfy_line(v, "problem", "%s cannot be read: %s", key, kd_errmsg());
    goto done;
  }
  json_error_t je;
  rl = json_loadb(text, len, JSON_ALLOW_NUL, &je); /* not inside json_is_object: a macro that evaluates twice */
  if (!json_is_object(rl)) {
    vfy_line(v, "problem", "%s is not a JSON object: %s", key, rl ? "another JSON value" : je.text);
    goto done;
  }
  const char *kind, *entry;
  json_t *entries, *e, *names;
  size_t i;
  json_object_foreach(rl, kind, entries) {
    json_array_foreach(entries, i, e) {
      listed++;
      set_add(rlset, kind, json_string_value(e) ? json_string_value(e) : "");
      if (!a->complete || json_object_get(json_object_get(a->set, kind), json_string_value(e) ? json_string_value(e) : "")) continue;
      if (missing++ < BK_SHOW)
        vfy_line(v, "problem", "the resource list names %s %s, which is not in the tarball", kind, json_string_value(e) ? json_string_value(e) : "?");
    }
  }
  if (!a->complete) {
    vfy_line(v, "checked", "%s parses (%zu objects listed; not compared: the tarball could not be read whole)", key, listed);
    goto done;
  }
  json_object_foreach(a->set, kind, names) {
    json_t *lk = json_object_get(rlset, kind);
    json_object_foreach(names, entry, e) {
      if (!json_object_get(lk, entry) && extra++ < BK_SHOW)
        vfy_line(v, "problem", "the tarball holds %s %s, which the resource list does not name", kind, entry);
    }
  }
  if (missing > BK_SHOW) vfy_line(v, "problem", "... and %zu more objects named by the resource list are not in the tarball", missing - BK_SHOW);
  if (extra > BK_SHOW) vfy_line(v, "problem", "... and %zu more objects of the tarball are not in the resource list", extra - BK_SHOW);
  if (!missing && !extra) vfy_line(v, "checked", "resource list: %zu objects of %zu kinds, exactly those in the tarball", listed, json_object_size(rl));
done:
  json_object_set_new(v->report, "resourceList", json_pack("{s:I,s:I,s:I}", "listed", (json_int_t)listed, "notInTarball",
                                                           (json_int_t)missing, "notInList", (json_int_t)extra));
  json_decref(rl);
  json_decref(rlset);
  free(text);
}

static int bk_verify(const struct cli_globals *g, int argc, char **argv) {
  const char *output = NULL, *pos[1];
  bool require = false;
  int npos, ret;
  const struct cli_opt opts[] = {{"--output", "-o", CLI_OPT_STRING, &output}, {"--require-checksums", NULL, CLI_OPT_BOOL, &require}};
  enum cli_output fmt;
  if ((ret = cli_parse_opts(argc, argv, "backup verify", opts, KD_ARRAY_LEN(opts), pos, 1, &npos)) >= 0 ||
      (ret = cli_check_output("backup verify", output, false, &fmt)) >= 0 ||
      (ret = cli_check_names("backup verify", verify_usage, npos)) >= 0)
    return ret;
  const char *ns = cli_system_namespace(g);
  kube_client *c = NULL;
  json_t *b = NULL, *mb = NULL, *bsl = NULL;
  objstore *st = NULL;
  verify_sums *sums = NULL;
  int fd = -1;
  struct vfy v = {fmt == CLI_OUT_TABLE, 0, 0, json_pack("{s:[],s:[],s:[]}", "problems", "warnings", "checked"), json_object()};
  struct vfy_archive a = {json_object(), 0, 0, 0, 0, false, false};
  struct files_ctx f = {json_array(), 0};
  char prefix[VELERO_KEY_MAX], tarkey[VELERO_KEY_MAX], metakey[VELERO_KEY_MAX], sumskey[VELERO_KEY_MAX], key[VELERO_KEY_MAX];
  kd_rc rc;
  ret = CLI_FAIL;
  if (!v.report || !v.missing || !a.set || !f.files) goto fail;
  if (cli_client(g, &c) != CLI_OK || resolve_one(c, ns, "verify", pos[0], &b, &mb) != CLI_OK) goto fail;
  const char *name = cli_meta_s(b, "name");
  if ((rc = cli_backup_store(c, ns, b, &st, &bsl))) goto fail_msg;
  snprintf(prefix, sizeof prefix, "backups/%s/", name);
  velero_backup_key(name, VELERO_BACKUP_TARBALL, tarkey, sizeof tarkey);
  velero_backup_key(name, VELERO_BACKUP_METADATA, metakey, sizeof metakey);
  velero_backup_key(name, VELERO_BACKUP_CHECKSUMS, sumskey, sizeof sumskey);
  if (v.text) cli_printf(stdout, "Verifying backup %s (%s) in storage location %s (%s)\n", name, cli_phase(b), cli_meta_s(bsl, "name"), objstore_describe(st));
  json_object_set_new(v.report, "backup", json_string(name));
  json_object_set_new(v.report, "storageLocation", json_string(cli_meta_s(bsl, "name")));
  if ((rc = objstore_list(st, prefix, '\0', collect_file, &f))) goto fail_msg;
  if (velero_phase_running(cli_phase(b))) vfy_line(&v, "warning", "the backup is %s: its files are written as it goes", cli_phase(b));
  /* 0. keys, encryption and the signature (crypt.h) */
  if (attach_keys(c, ns, bsl, st) != KD_OK) vfy_line(&v, "problem", "storage location keys: %s", kd_errmsg());
  {
    char id[CRYPT_ID_MAX + 1];
    bool enc = false;
    if (crypt_peek(st, tarkey, &enc, id) == KD_OK) {
      json_object_set_new(v.report, "encryption", enc ? json_pack("{s:b,s:s}", "encrypted", 1, "keyId", id) : json_pack("{s:b}", "encrypted", 0));
      if (enc) vfy_line(&v, "checked", "encrypted with key id %s%s", id, crypt_keyring_has(cli_loc.keys, id) ? "" : " (a key this location does not hold: its contents cannot be read)");
    }
    struct verify_sig vs;
    if ((rc = verify_signature(st, name, &cli_loc, &vs, NULL)) == KD_OK) {
      json_object_set_new(v.report, "signature", json_pack("{s:b,s:b,s:s}", "signed", vs.present, "valid", vs.valid, "keyId", vs.key_id));
      if (vs.valid) vfy_line(&v, "checked", "signed by key %s: the signature is valid", vs.key_id);
      else if (vs.refused) vfy_line(&v, "problem", "signature: %s%s", vs.why, cli_loc.require_signature ? " (the location requires a valid signature)" : "");
      else if (vs.present) vfy_line(&v, "warning", "signature: %s", vs.why);
      else if (v.text) cli_printf(stdout, "  ----  not signed\n");
    } else {
      vfy_line(&v, "problem", "signature: %s", kd_errmsg());
    }
  }
  /* 1. the checksums */
  rc = verify_sums_load(st, name, &sums);
  bool have_sums = rc == KD_OK;
  if (rc == KD_ERR_NOTFOUND) {
    if (v.text) cli_printf(stdout, "  ----  cannot be verified: no checksums file (written by Velero?); checking that every file reads and parses\n");
    json_object_set_new(v.report, "checksums", json_false());
  } else if (rc != KD_OK) {
    vfy_line(&v, "problem", "the checksums file cannot be used: %s", kd_errmsg());
    json_object_set_new(v.report, "checksums", json_false());
  } else {
    json_object_set_new(v.report, "checksums", json_true());
    for (size_t i = 0; i < verify_sums_count(sums); i++) {
      const char *k = verify_sums_key(sums, i);
      uint64_t size = 0;
      const char *hex = NULL;
      verify_sums_get(sums, k, &hex, &size);
      bool verified = false;
      if (strcmp(k, tarkey) == 0) { /* staged below, checked on the way */
        continue;
      }
      rc = verify_stage(st, k, sums, NULL, BK_FILE_MAX, NULL, &verified);
      if (rc == KD_OK) vfy_line(&v, "checked", "%s: %llu bytes, SHA-256 %.12s... as recorded", k, (unsigned long long)size, hex);
      else vfy_line(&v, "problem", "%s", kd_errmsg());
      if (rc == KD_ERR_NOTFOUND) json_object_set_new(v.missing, k, json_true());
    }
    size_t i;
    json_t *x;
    json_array_foreach(f.files, i, x) {
      const char *k = json_string_value(json_object_get(x, "key"));
      if (verify_sums_get(sums, k, NULL, NULL) || strcmp(k, sumskey) == 0 || strcmp(k, metakey) == 0) continue;
      vfy_line(&v, "warning", "%s is not listed in the checksums file", k);
    }
  }
  /* 2. the tarball, staged (and checked against its checksum on the way), read entry by entry */
  bool verified = false;
  rc = verify_stage(st, tarkey, have_sums ? sums : NULL, NULL, BK_FILE_MAX, &fd, &verified);
  if (rc == KD_ERR_NOTFOUND) json_object_set_new(v.missing, tarkey, json_true());
  if (rc == KD_ERR_INTEGRITY) {
    vfy_line(&v, "problem", "%s", kd_errmsg());
    rc = verify_stage(st, tarkey, NULL, NULL, BK_FILE_MAX, &fd, NULL); /* what else is wrong with it */
  } else if (rc == KD_OK && have_sums) {
    const char *hex = NULL;
    uint64_t size = 0;
    if (verify_sums_get(sums, tarkey, &hex, &size))
      vfy_line(&v, "checked", "%s: %llu bytes, SHA-256 %.12s... as recorded", tarkey, (unsigned long long)size, hex);
    else vfy_line(&v, "problem", "%s is not listed in the checksums file", tarkey);
  }
  if (rc != KD_OK) {
    vfy_line(&v, "problem", "%s", kd_errmsg());
  } else {
    vfy_archive(&v, fd, &a);
    if (a.complete) {
      if (!a.version_seen) vfy_line(&v, "problem", "the tarball has no metadata/version entry");
      vfy_line(&v, "checked", "tarball: %zu entries read, %zu objects (%zu preferred-version copies), every object parses as JSON", a.entries,
               a.objects, a.preferred);
      if (a.preferred != a.objects)
        vfy_line(&v, "warning", "%zu objects but %zu preferred-version copies (Velero writes one of each)", a.objects, a.preferred);
      long long items = int_at(json_object_get(b, "status"), "progress", "itemsBackedUp");
      if (!velero_phase_running(cli_phase(b)) && items != (long long)a.objects)
        vfy_line(&v, "warning", "the Backup says %lld items were backed up; the tarball holds %zu", items, a.objects);
    }
  }
  json_object_set_new(v.report, "tarball", json_pack("{s:I,s:I,s:I,s:b}", "entries", (json_int_t)a.entries, "objects", (json_int_t)a.objects,
                                                     "preferredCopies", (json_int_t)a.preferred, "readWhole", a.complete));
  /* 3. the resource list against the tarball */
  vfy_reslist(&v, st, name, &a);
  /* 4. the other files read and parse */
  char *text = NULL;
  size_t len = 0;
  rc = objstore_get_all(st, metakey, BK_META_MAX, &text, &len);
  if (rc != KD_OK) {
    vfy_line(&v, "problem", rc == KD_ERR_NOTFOUND ? "%s is missing: the backup is incomplete or being deleted" : "%s cannot be read", metakey);
  } else {
    json_t *o = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    if (!kd_streq(json_string_value(json_object_get(o, "kind")), "Backup") || !kd_streq(cli_meta_s(o, "name"), name))
      vfy_line(&v, "problem", "%s is not the Backup object of %s", metakey, name);
    else vfy_line(&v, "checked", "%s: the Backup object of %s", metakey, name);
    json_decref(o);
  }
  free(text);
  text = NULL;
  velero_backup_key(name, VELERO_BACKUP_RESULTS, key, sizeof key);
  rc = cli_gunzip_get_all(st, key, BK_SMALL_MAX, &text, &len);
  if (rc != KD_OK) {
    if (rc != KD_ERR_NOTFOUND || !json_object_get(v.missing, key))
      vfy_line(&v, "problem", rc == KD_ERR_NOTFOUND ? "%s is missing" : "%s cannot be read: %s", key, kd_errmsg());
  } else {
    json_t *o = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(o)) vfy_line(&v, "problem", "%s is not a JSON object", key);
    else vfy_line(&v, "checked", "%s parses", key);
    json_decref(o);
  }
  free(text);
  velero_backup_key(name, VELERO_BACKUP_LOGS, key, sizeof key);
  uint64_t logbytes = 0;
  rc = cli_gunzip_get(st, key, null_sink, &logbytes);
  if (rc != KD_OK) {
    if (rc != KD_ERR_NOTFOUND || !json_object_get(v.missing, key))
      vfy_line(&v, "problem", rc == KD_ERR_NOTFOUND ? "%s is missing" : "%s cannot be read: %s", key, kd_errmsg());
  } else {
    vfy_line(&v, "checked", "%s decompresses (%llu bytes of log)", key, (unsigned long long)logbytes);
  }
  /* the verdict */
  bool pass = v.problems == 0 && (have_sums || !require);
  json_object_set_new(v.report, "verified", json_boolean(v.problems == 0 && have_sums));
  if (!v.text) {
    if (cli_print_object(stdout, v.report, fmt) != KD_OK) goto fail_msg;
  } else if (v.problems) {
    cli_printf(stdout, "FAILED: backup %s has %d problem%s (see FAIL above); do not restore from it.\n", name, v.problems, v.problems == 1 ? "" : "s");
  } else if (!have_sums) {
    cli_printf(stdout, "Backup %s cannot be verified: no checksums file (written by Velero?). Every file reads and parses%s.\n", name,
           require ? "; --require-checksums makes this a failure" : "");
  } else {
    cli_printf(stdout, "Verified: every file of backup %s matches its checksum, the tarball reads whole and matches its resource list.\n", name);
  }
  ret = pass ? CLI_OK : CLI_FAIL;
  goto fail;
fail_msg:
  say_err("verify");
fail:
  release_keys();
  if (fd >= 0) close(fd);
  verify_sums_free(sums);
  objstore_free(st);
  json_decref(v.report);
  json_decref(v.missing);
  json_decref(a.set);
  json_decref(f.files);
  json_decref(b);
  json_decref(mb);
  json_decref(bsl);
  kube_client_free(c);
  return ret;
}

/* ---- the verb ---- */

/* ---- diff ---- */

static const char diff_usage[] =
    "Usage: kcmdr backup diff NAME [--diff] [-o json|yaml]\n"
    "\n"
    "Compare the objects of a backup (read from its storage location: checksums checked, decrypted\n"
    "with the location's keys) with the cluster now, one line per difference:\n"
    "  added     in the cluster and selected by the backup's own spec (its resource and namespace\n"
    "            filters and label selectors), not in the backup (namespaces themselves aside)\n"
    "  removed   in the backup, not in the cluster\n"
    "  changed   in both, different (status and the fields the API server sets aside)\n"
    "and a summary. Nothing is written anywhere.\n"
    "\n"
    "Flags:\n"
    "  --diff                   a unified diff of each changed object (backup, then cluster)\n"
    "  -o, --output json|yaml   the differences as one object (with --diff: each change's diff)\n"
    "  -n, --namespace NS       system namespace of Velero's objects (default kcm-system)\n"
    "\n"
    "Example:\n"
    "  kcmdr backup diff kcm-before-upgrade --diff\n"
    "\n"
    "Exit codes: 0 compared (differences or not), 1 failure, 2 usage error.\n";

static int bk_diff(const struct cli_globals *g, int argc, char **argv) {
  const char *output = NULL, *pos[1];
  bool diff = false;
  int npos, ret;
  const struct cli_opt opts[] = {{"--output", "-o", CLI_OPT_STRING, &output}, {"--diff", NULL, CLI_OPT_BOOL, &diff}};
  enum cli_output fmt;
  if ((ret = cli_parse_opts(argc, argv, "backup diff", opts, KD_ARRAY_LEN(opts), pos, 1, &npos)) >= 0 ||
      (ret = cli_check_output("backup diff", output, false, &fmt)) >= 0 ||
      (ret = cli_check_names("backup diff", diff_usage, npos)) >= 0)
    return ret;
  const char *ns = cli_system_namespace(g);
  kube_client *c = NULL;
  json_t *b = NULL, *mb = NULL;
  ret = CLI_FAIL;
  if (cli_client(g, &c) == CLI_OK && resolve_one(c, ns, "diff", pos[0], &b, &mb) == CLI_OK)
    ret = preview_backup_diff(c, ns, cli_meta_s(b, "name"), diff, fmt);
  json_decref(b);
  json_decref(mb);
  kube_client_free(c);
  return ret;
}

/* ---- the verb ---- */

static const char backup_usage[] =
    "Usage: kcmdr backup SUBCOMMAND [flags] [NAME...]\n"
    "\n"
    "Work with backups: ManagementBackups (what kcm backs up, when) and the Velero Backups they make.\n"
    "\n"
    "Subcommands:\n"
    "  create NAME     create a ManagementBackup: one backup now, or on a --schedule\n"
    "  get [NAME...]   list backups as a table\n"
    "  describe NAME   phase, times, items, selectors, errors, files in the storage location\n"
    "  logs NAME       print a backup's log from its storage location\n"
    "  delete NAME     delete a backup: its files, then its object\n"
    "  verify NAME     check every file of a backup against its checksums and read it all\n"
    "  diff NAME       what changed in the cluster since the backup: added, removed, changed\n"
    "\n"
    "NAME is a Velero Backup, or a ManagementBackup (for one made on demand they are the same name;\n"
    "a scheduled one stands for its Backups in get, for itself and its last backup in describe, and\n"
    "for its last backup in logs and verify).\n"
    "\n"
    "Global flags: --kubeconfig PATH, --context NAME, -n/--namespace NS (the system namespace of\n"
    "Velero's objects; default kcm-system, not the context's namespace), -v LEVEL.\n"
    "`kcmdr backup SUBCOMMAND --help` explains each one with an example.\n"
    "\n"
    "Exit codes: 0 success, 1 failure (the message says why), 2 usage error.\n";

static const struct cli_sub subs[] = {
    {"create", bk_create, create_usage}, {"get", bk_get, get_usage},          {"describe", bk_describe, describe_usage},
    {"logs", bk_logs, logs_usage},       {"delete", bk_delete, delete_usage}, {"verify", bk_verify, verify_usage},
    {"diff", bk_diff, diff_usage},
};

int cli_backup(int argc, char **argv) { return cli_subcommand(argc, argv, "backup", backup_usage, subs, KD_ARRAY_LEN(subs)); }
