/* cli_region.c — the restore command's part of kcm regions (see region.h): one command per
 * cluster instead of hand-written resource modifiers, as kcm's documentation restores regions:
 *
 *   management cluster:  kcmdr restore create --from-backup B --pause-regions
 *       the Regions come back annotated k0rdent.mirantis.com/region-pause (their
 *       ClusterDeployments are not reconciled until an operator removes it), and what is
 *       labelled cluster.x-k8s.io/cluster-name of a regional ClusterDeployment stays out;
 *   each regional cluster: kcmdr restore create --from-backup MB --region R
 *       the region's newest finished Backup of ManagementBackup MB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "mgmtbackup.h"
#include "region.h"
#include "yamljson.h"

#define CAPI_CLUSTER_NAME "cluster.x-k8s.io/cluster-name"
#define RR_NAMES_MAX 5000 /* regional ClusterDeployment names put in one NotIn */

static const char *meta(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(o, "metadata"), k));
}
static const char *label_of(json_t *o, const char *k) {
  return json_string_value(json_object_get(json_object_get(json_object_get(o, "metadata"), "labels"), k));
}

#define RR_BACKUPS_MAX 100000 /* Backups listed for one command */

struct listed {
  json_t *a;
  bool over; /* more than RR_BACKUPS_MAX, or out of memory: the list is not whole */
};
static bool add_item(json_t *item, void *ud) {
  struct listed *l = ud;
  l->over = json_array_size(l->a) >= RR_BACKUPS_MAX || json_array_append(l->a, item) != 0;
  return !l->over;
}
/* list Backups in ns with label selector sel (new array, or NULL after saying why: a list that
 * is not whole is an error, never a silently short one) */
static json_t *list_backups(kube_client *c, const char *ns, const char *sel) {
  struct listed l = {json_array(), false};
  struct kube_list_opts lo = {sel, NULL, 0, NULL};
  kd_rc rc = l.a ? kube_list(c, &cli_res_backup, ns, &lo, add_item, &l, NULL) : KD_ERR_NOMEM;
  if (rc == KD_OK && l.over) rc = kd_fail(KD_ERR_TOOBIG, "more than %d Backups are labelled %s", RR_BACKUPS_MAX, sel);
  if (rc != KD_OK) {
    cli_printf(stderr, "kcmdr restore create: listing Backups: %s\n", rc == KD_ERR_NOMEM ? "out of memory" : kd_errmsg());
    json_decref(l.a);
    return NULL;
  }
  return l.a;
}

/* --region R: the Backup to restore on R's cluster */
static int pick_regional(kube_client *c, const char *ns, const char *region, char *backup, size_t n) {
  char sel[300];
  snprintf(sel, sizeof sel, "%s=%s", MB_LABEL_REGION, region);
  json_t *all = list_backups(c, ns, sel);
  if (!all) return CLI_FAIL;
  size_t i;
  json_t *b, *pick = NULL;
  json_array_foreach(all, i, b) if (kd_streq(meta(b, "name"), backup)) pick = b; /* a Backup of this region, by name */
  if (!pick) pick = mb_pick_region_backup(backup, region, true, true, all, time(NULL));
  if (!pick) pick = mb_pick_region_backup(backup, region, false, true, all, time(NULL));
  if (!pick) {
    cli_printf(stderr, "kcmdr restore create: no finished Backup of ManagementBackup \"%s\" for region %s in namespace %s "
               "(%zu Backups are labelled %s; after a disaster they appear once the storage location has been synced: "
               "kcmdr backup get -l %s)\n", backup, region, ns, json_array_size(all), sel, sel);
    json_decref(all);
    return CLI_FAIL;
  }
  cli_printf(stderr, "region %s: restoring Backup %s\n", region, meta(pick, "name"));
  snprintf(backup, n, "%s", meta(pick, "name"));
  json_decref(all);
  return CLI_OK;
}

/* add name to set; false when the set is full (RR_NAMES_MAX) or memory ran out */
static bool add_name(json_t *set, const char *name) {
  return (json_object_get(set, name) || json_object_size(set) < RR_NAMES_MAX) && json_object_set_new(set, name, json_true()) == 0;
}
/* the cluster names a regional Backup selects (its cluster.x-k8s.io/cluster-name selectors, in
 * kcm's matchLabels form or the compact In form) into set; false when they do not all fit */
static bool cluster_names(json_t *b, json_t *set) {
  size_t i, j, k;
  json_t *s, *e, *v;
  bool whole = true;
  json_array_foreach(json_object_get(json_object_get(b, "spec"), "orLabelSelectors"), i, s) {
    const char *ml = json_string_value(json_object_get(json_object_get(s, "matchLabels"), CAPI_CLUSTER_NAME));
    if (ml) whole = add_name(set, ml) && whole;
    json_array_foreach(json_object_get(s, "matchExpressions"), j, e) {
      if (!kd_streq(json_string_value(json_object_get(e, "key")), CAPI_CLUSTER_NAME) ||
          !kd_streq(json_string_value(json_object_get(e, "operator")), "In"))
        continue;
      json_array_foreach(json_object_get(e, "values"), k, v) {
        if (json_string_value(v)) whole = add_name(set, json_string_value(v)) && whole;
      }
    }
  }
  return whole;
}

/* Is regional Backup r of the same slot as the management Backup named mgmt? */
static bool same_slot(const char *mgmt, json_t *r) {
  const char *region = label_of(r, MB_LABEL_REGION), *name = meta(r, "name");
  char want[MB_NAME_MAX + 1], prefix[MB_NAME_MAX + 1];
  size_t l = strlen(mgmt);
  time_t t;
  if (!region || !name) return false;
  if (l > 15 && mgmt[l - 15] == '-') {
    snprintf(prefix, sizeof prefix, "%.*s", (int)(l - 15), mgmt);
    if (mb_parse_scheduled_name(prefix, mgmt, &t)) {
      mb_region_backup_name(prefix, region, true, t, want);
      if (strcmp(want, name) == 0) return true;
    }
  }
  mb_region_backup_name(mgmt, region, false, 0, want);
  return strcmp(want, name) == 0;
}

/* the rule that pauses every Region */
static json_t *pause_rule(void) {
  char patch[200];
  snprintf(patch, sizeof patch, "{\"metadata\":{\"annotations\":{\"%s\":\"true\"}}}", MB_ANNOTATION_REGION_PAUSE);
  return json_pack("{s:{s:s},s:[{s:s}]}", "conditions", "groupResource", "regions.k0rdent.mirantis.com", "mergePatches",
                   "patchData", patch);
}

/* Write the ConfigMap rr->cm: the user's rules (user_cm, if any) and the pause rule. */
static int write_modifiers(kube_client *c, const char *ns, struct region_restore *rr, const char *backup,
                           const char *user_cm) {
  json_t *doc = NULL, *cm = NULL, *out = NULL, *ucm = NULL;
  char *text = NULL;
  int ret = CLI_FAIL;
  if (user_cm) {
    if (kube_get(c, &cli_res_configmap, ns, user_cm, &ucm) != KD_OK) {
      cli_printf(stderr, "kcmdr restore create: ConfigMap \"%s\": %s\n", user_cm, kd_errmsg());
      goto done;
    }
    json_t *data = json_object_get(ucm, "data");
    const char *k;
    json_t *v;
    if (json_object_size(data) != 1) {
      cli_printf(stderr, "kcmdr restore create: ConfigMap \"%s\" must hold exactly one key (a resource-modifier document) "
                 "to be combined with --pause-regions\n", user_cm);
      ret = CLI_USAGE;
      goto done;
    }
    json_object_foreach(data, k, v) {
      if (yj_parse_one(json_string_value(v), json_string_length(v), &doc) != KD_OK || !json_is_object(doc) ||
          !json_is_array(json_object_get(doc, "resourceModifierRules"))) {
        cli_printf(stderr, "kcmdr restore create: ConfigMap \"%s\" key %s is no resource-modifier document\n", user_cm, k);
        ret = CLI_USAGE;
        goto done;
      }
    }
  } else {
    doc = json_pack("{s:s,s:[]}", "version", "v1", "resourceModifierRules");
  }
  json_t *rule = pause_rule();
  if (!doc || !rule || json_array_append_new(json_object_get(doc, "resourceModifierRules"), rule) ||
      !(text = json_dumps(doc, JSON_COMPACT))) {
    cli_printf(stderr, "kcmdr restore create: out of memory\n");
    goto done;
  }
  char full[600];
  snprintf(full, sizeof full, "kcmdr-region-pause-%s", backup);
  mb_bounded(full, 253, rr->cm);
  cm = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", rr->cm,
                 "namespace", ns, "labels", "app.kubernetes.io/managed-by", "kcmdr", "data", "region-pause.json", text);
  if (cm && rr->dry_run) { /* a preview writes nothing: the engine reads it from here */
    rr->cm_obj = cm;
    cm = NULL;
    ret = CLI_OK;
    goto done;
  }
  kd_rc rc = cm ? kube_create(c, &cli_res_configmap, ns, cm, &out) : KD_ERR_NOMEM;
  if (rc == KD_ERR_CONFLICT) { /* a command run again: the same name, the current rules; never someone else's */
    json_decref(out);
    out = NULL;
    if ((rc = kube_get(c, &cli_res_configmap, ns, rr->cm, &out)) == KD_OK &&
        !kd_streq(label_of(out, "app.kubernetes.io/managed-by"), "kcmdr")) {
      cli_printf(stderr, "kcmdr restore create: ConfigMap %s exists in namespace %s and is not kcmdr's (no label "
                 "app.kubernetes.io/managed-by=kcmdr); not overwritten: move it away or pass your rules with "
                 "--resource-modifier-configmap\n", rr->cm, ns);
      rr->cm[0] = '\0';
      goto done;
    }
    /* the update is conditional on the version checked: one swapped in meanwhile is refused */
    json_t *rv = rc == KD_OK ? json_object_get(json_object_get(out, "metadata"), "resourceVersion") : NULL;
    if (rc == KD_OK && (!rv || json_object_set(json_object_get(cm, "metadata"), "resourceVersion", rv)))
      rc = kd_fail(KD_ERR_NOMEM, "out of memory");
    json_decref(out);
    out = NULL;
    if (rc == KD_OK && (rc = kube_update(c, &cli_res_configmap, ns, cm, &out)) == KD_ERR_CONFLICT)
      kd_fail(KD_ERR_CONFLICT, "it changed while it was being checked; run the command again");
  }
  if (rc != KD_OK) {
    cli_printf(stderr, "kcmdr restore create: writing ConfigMap %s: %s\n", rr->cm, kd_errmsg());
    rr->cm[0] = '\0';
    goto done;
  }
  ret = CLI_OK;
done:
  free(text);
  json_decref(doc);
  json_decref(cm);
  json_decref(out);
  json_decref(ucm);
  return ret;
}

/* --pause-regions: the ConfigMap and the labelSelector */
static int pause_regions(kube_client *c, const char *ns, struct region_restore *rr, const char *from, const char *user_cm) {
  json_t *b = NULL, *all = NULL, *set = json_object(), *names = json_array();
  char backup[300];
  int ret = CLI_FAIL;
  snprintf(backup, sizeof backup, "%s", from);
  if (!set || !names) goto done;
  kd_rc rc = kube_get(c, &cli_res_backup, ns, backup, &b);
  if (rc == KD_ERR_NOTFOUND) { /* a ManagementBackup's name: its last backup (as restore create takes it) */
    json_t *mb = NULL;
    if (kube_get(c, &cli_res_mb, NULL, from, &mb) == KD_OK && cli_status_s(mb, "lastBackupName"))
      snprintf(backup, sizeof backup, "%s", cli_status_s(mb, "lastBackupName"));
    json_decref(mb);
    rc = kube_get(c, &cli_res_backup, ns, backup, &b);
  }
  if (rc != KD_OK) {
    cli_printf(stderr, "kcmdr restore create: --pause-regions: backup \"%s\": %s\n", backup, kd_errmsg());
    goto done;
  }
  const char *owner = label_of(b, MB_LABEL_BACKUP);
  if (!owner) {
    cli_printf(stderr, "kcmdr restore create: --pause-regions: Backup %s was not made for a ManagementBackup (no label %s)\n",
               backup, MB_LABEL_BACKUP);
    ret = CLI_USAGE;
    goto done;
  }
  if (!(all = list_backups(c, ns, MB_LABEL_REGION))) goto done;
  size_t i, slot = 0, ours = 0;
  json_t *r;
  bool whole = true;
  json_array_foreach(all, i, r) ours += kd_streq(label_of(r, MB_LABEL_BACKUP), owner);
  if (!ours) { /* nothing names the regional clusters: their objects would come back here */
    cli_printf(stderr, "kcmdr restore create: --pause-regions: no regional Backup of ManagementBackup %s is listed in "
               "namespace %s, so the regional ClusterDeployments to leave out are unknown (after a disaster the "
               "regional Backups appear once the storage location has been synced: kcmdr backup get -l %s; without "
               "regions, leave out --pause-regions)\n", owner, ns, MB_LABEL_REGION);
    goto done;
  }
  json_array_foreach(all, i, r) if (kd_streq(label_of(r, MB_LABEL_BACKUP), owner) && same_slot(backup, r)) {
      whole = cluster_names(r, set) && whole;
      slot++;
      cli_printf(stderr, "--pause-regions: region %s: Backup %s (restore it there with --region %s)\n",
                 label_of(r, MB_LABEL_REGION), meta(r, "name"), label_of(r, MB_LABEL_REGION));
    }
  if (!slot) { /* none of this slot: every regional Backup of this ManagementBackup names the clusters */
    json_array_foreach(all, i, r) if (kd_streq(label_of(r, MB_LABEL_BACKUP), owner)) whole = cluster_names(r, set) && whole;
    cli_printf(stderr, "--pause-regions: no regional Backup of the same time as %s is listed here; the regional "
               "ClusterDeployments are taken from all %s regional Backups of this ManagementBackup\n", backup, owner);
  }
  if (!whole) {
    cli_printf(stderr, "kcmdr restore create: --pause-regions: the regional Backups name more than %d ClusterDeployments, "
               "more than one NotIn selector is made to hold; restore with your own selectors\n", RR_NAMES_MAX);
    goto done;
  }
  const char *k;
  json_t *v;
  json_object_foreach(set, k, v) json_array_append_new(names, json_string(k));
  if ((ret = write_modifiers(c, ns, rr, backup, user_cm)) != CLI_OK) goto done;
  if (json_array_size(names)) {
    rr->selector = json_pack("{s:[{s:s,s:s,s:O}]}", "matchExpressions", "key", CAPI_CLUSTER_NAME, "operator", "NotIn",
                             "values", names);
    if (!rr->selector) {
      ret = CLI_FAIL;
      goto done;
    }
  }
  cli_printf(stderr, "--pause-regions: Regions restored with %s (ConfigMap %s%s); %zu regional ClusterDeployment(s) left "
             "out (%s NotIn)\n", MB_ANNOTATION_REGION_PAUSE, rr->cm, rr->dry_run ? ", not written: --dry-run" : "",
             json_array_size(names), CAPI_CLUSTER_NAME);
done:
  json_decref(b);
  json_decref(all);
  json_decref(set);
  json_decref(names);
  return ret;
}

int region_restore_prepare(kube_client *c, const char *ns, struct region_restore *rr, char *backup, size_t backup_size,
                           const char *user_cm) {
  if (rr->pause && rr->region) {
    fprintf(stderr, "kcmdr restore create: --pause-regions is for the management cluster, --region for a regional one: "
                    "give one of them\n");
    return CLI_USAGE;
  }
  if (rr->region) {
    if (!mb_label_value_valid(rr->region)) {
      cli_printf(stderr, "kcmdr restore create: \"%s\" is not a region name\n", rr->region);
      return CLI_USAGE;
    }
    return pick_regional(c, ns, rr->region, backup, backup_size);
  }
  if (rr->pause) return pause_regions(c, ns, rr, backup, user_cm);
  return CLI_OK;
}

void region_restore_free(struct region_restore *rr) {
  json_decref(rr->selector);
  json_decref(rr->cm_obj);
  rr->selector = rr->cm_obj = NULL;
}
