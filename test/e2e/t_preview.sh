# t_preview.sh — know before you restore (src/preview.c, the dry-run mode of src/restore.c):
# `kcmdr restore create --dry-run` and `kcmdr backup diff` on a real API server, in one
# environment (a kcm fixture, a filesystem location, one backup) to keep the run short. Uses
# t_restore.sh's helpers (rs_up, rs_fs_bsl, bk_wait, rs_wait) and t_controller.sh's
# start_controller.

# pv_snapshot: every object of every listable type (events aside) as kind|ns|name|resourceVersion
pv_snapshot() {
  kubectl get "$(kubectl api-resources --verbs=list -o name | grep -v '^events' | paste -sd, -)" -A -o json |
    jq -r '.items[] | "\(.kind)|\(.metadata.namespace // "")|\(.metadata.name)|\(.metadata.resourceVersion)"' | sort
}

# pv_norm: JSON (stdin) compact with sorted keys, lists of strings sorted (the results' messages
# come in the order the restore's workers finished)
pv_norm() {
  jq -cS 'walk(if type == "array" and all(.[]; type == "string") then sort else . end)'
}

# pv_yaml_json: YAML (stdin) as pv_norm's JSON (python3-yaml, scripts/deps)
pv_yaml_json() {
  python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)' | pv_norm
}

# pv_outcomes: a preview's -o json (stdin) as "action resource ns/name" lines, namespaces aside
pv_outcomes() {
  jq -r '.objects[] | select(.resource != "namespaces")
         | "\(.action) \(.resource) \(if .namespace == "" then .name else "\(.namespace)/\(.name)" end)"' | sort
}

# pv_log_outcomes: the same from a real restore's log (`kcmdr restore logs`, stdin): the line the
# engine writes for each object's outcome
pv_log_outcomes() {
  sed -n -e 's/.*msg="error restoring \([^ ]*\) \([^:]*\):.*/fail \1 \2/p' \
         -e 's/.*msg="\([^ ]*\) \([^ ]*\) created".*/create \1 \2/p' \
         -e 's/.*msg="\([^ ]*\) \([^ ]*\) updated".*/update \1 \2/p' \
         -e 's/.*msg="\([^ ]*\) \([^ ]*\) exists and equals the backed-up version: skipped".*/unchanged \1 \2/p' \
         -e 's/.*msg="\([^ ]*\) \([^ ]*\) not restored: .*/skip \1 \2/p' \
         -e 's/.*msg="\([^ ]*\) \([^ ]*\) exists and differs: left as it is (policy none)".*/conflict \1 \2/p' \
         -e 's/.*msg="patch attempt failed for \([^ ]*\) \([^:]*\):.*/conflict \1 \2/p' |
    grep -v '^[a-z]* namespaces ' | sort
}

# One environment, six questions:
# (e) backup diff: after a failed upgrade (the Management's release changed, a Credential and a
#     Gadget deleted, a ConfigMap the backup's selectors select added), `backup diff` names
#     exactly those objects as changed, removed and added, and --diff shows the release line;
# (a) the rollback's preview (policy update + the `replace /spec/release` modifier, as
#     t_restore.sh's rollback) says update for exactly the Management, create for the two deleted
#     objects, and --diff shows the release going back; exit 0; its table gives a skipped
#     object its reason (a service account's token Secret in the backup: the token controller
#     makes it);
# (b) a modifier that also sets the Gadgets' spec.size to 0, which the Gadget CRD's schema
#     refuses (minimum: 1), and removes a key of an immutable ConfigMap: the preview says fail
#     for both Gadgets with the API server's message (the deleted g1 and the present g2 alike:
#     the server validates a create before it looks for the object, so an invalid object never
#     reaches the patch), and conflict for the ConfigMap: the patch the server refuses
#     ("update refused: " and its message; the real restore warns and leaves it, as Velero);
#     exit 1; its -o yaml, and (e)'s, are the -o json documents;
# (c) neither preview wrote anything: every object's resourceVersion, the object count, no
#     Restore object, the location's files byte for byte (the controller is stopped meanwhile, so
#     nothing else writes);
# (d) the real restore with (b)'s modifier then agrees with (b)'s preview object by object (the
#     log line the engine writes for each outcome) and in its phase, errors and warnings;
# (f) under policy none (the release broken again): the preview says conflict for the Management
#     and the ConfigMap ("exists and differs"), fail for the Gadgets, exit 1, and the real
#     restore that follows agrees object by object.
test_restore_preview_rollback_failure_nothing_written_and_agreement() {
  rs_up preview
  "$REPO/scripts/fixture" --cluster-deployments 2 --extra 3 2>/dev/null
  mkdir -p store
  rs_fs_bsl local "$PWD/store"
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.preview.kcmdr.test, labels: {k0rdent.mirantis.com/component: kcm}}
spec:
  group: preview.kcmdr.test
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
YAML
  kubectl wait --for=condition=Established crd/gadgets.preview.kcmdr.test --timeout=20s >/dev/null
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: preview.kcmdr.test/v1
kind: Gadget
metadata: {name: g1, namespace: kcm-system, labels: {k0rdent.mirantis.com/component: kcm}}
spec: {size: 3}
---
apiVersion: preview.kcmdr.test/v1
kind: Gadget
metadata: {name: g2, namespace: kcm-system, labels: {k0rdent.mirantis.com/component: kcm}}
spec: {size: 3}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: frozen, namespace: kcm-system, labels: {k0rdent.mirantis.com/component: kcm}}
immutable: true
data: {a: "1"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa1, namespace: kcm-system, labels: {k0rdent.mirantis.com/component: kcm}}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: sa1-token-x
  namespace: kcm-system
  labels: {k0rdent.mirantis.com/component: kcm}
  annotations: {kubernetes.io/service-account.name: sa1}
YAML
  start_controller ctl.log --engine=builtin
  on_demand before-upgrade local
  bk_wait before-upgrade Completed 60
  local mgmt release cred
  mgmt=$(kubectl get managements.k0rdent.mirantis.com -o jsonpath='{.items[0].metadata.name}')
  release=$(kubectl get managements.k0rdent.mirantis.com "$mgmt" -o jsonpath='{.spec.release}')
  cred=$(kubectl -n kcm-system get credentials.k0rdent.mirantis.com -o jsonpath='{.items[0].metadata.name}')
  # the failed upgrade
  kubectl patch managements.k0rdent.mirantis.com "$mgmt" --type merge -p '{"spec":{"release":"kcm-9-9-9"}}' >/dev/null
  kubectl -n kcm-system delete credentials.k0rdent.mirantis.com "$cred" >/dev/null
  kubectl -n kcm-system delete gadgets.preview.kcmdr.test g1 >/dev/null
  kubectl -n kcm-system create configmap added-since >/dev/null
  kubectl -n kcm-system label configmap added-since k0rdent.mirantis.com/component=kcm >/dev/null

  # (e) backup diff: exactly what changed
  expect_exit 0 "$KCMDR" backup diff before-upgrade -o json
  assert_eq "added configmaps kcm-system/added-since
changed managements.k0rdent.mirantis.com $mgmt
removed credentials.k0rdent.mirantis.com kcm-system/$cred
removed gadgets.preview.kcmdr.test kcm-system/g1" \
    "$(jq -r '(.added[] | "added \(.resource) \(.namespace)/\(.name)"), (.changed[] | "changed \(.resource) \(if .namespace == "" then .name else "\(.namespace)/\(.name)" end)"),
              (.removed[] | "removed \(.resource) \(.namespace)/\(.name)")' <<<"$OUT" | sort)" "backup diff"
  local e=$OUT
  expect_exit 0 "$KCMDR" backup diff before-upgrade -o yaml
  assert_eq "$(pv_norm <<<"$e")" "$(pv_yaml_json <<<"$OUT")" "backup diff: -o yaml is the -o json document"
  expect_exit 0 "$KCMDR" backup diff before-upgrade --diff
  assert_contains "$OUT" "-    \"release\": \"$release\"" "backup diff --diff: the backed-up release"
  assert_contains "$OUT" "+    \"release\": \"kcm-9-9-9\"" "backup diff --diff: the release now"

  # the previews run without the controller: nothing else writes while they are watched
  ctl_stop_all
  kubectl -n kcm-system create configmap rollback --from-literal=m.yaml="version: v1
resourceModifierRules:
- conditions: {groupResource: managements.k0rdent.mirantis.com}
  patches: [{operation: replace, path: /spec/release, value: \"$release\"}]
" >/dev/null
  kubectl -n kcm-system create configmap bad --from-literal=m.yaml="version: v1
resourceModifierRules:
- conditions: {groupResource: managements.k0rdent.mirantis.com}
  patches: [{operation: replace, path: /spec/release, value: \"$release\"}]
- conditions: {groupResource: gadgets.preview.kcmdr.test}
  patches: [{operation: replace, path: /spec/size, value: \"0\"}]
- conditions: {groupResource: configmaps, resourceNameRegex: ^frozen$}
  patches: [{operation: remove, path: /data/a}]
" >/dev/null
  local before files_before; before=$(pv_snapshot); files_before=$(cd store && find . -type f -exec md5sum {} + | sort)

  # (a) the rollback's preview
  expect_exit 0 "$KCMDR" restore create --from-backup before-upgrade --existing-resource-policy update \
    --resource-modifier-configmap rollback --dry-run -o json
  local a=$OUT
  assert_eq "managements.k0rdent.mirantis.com $mgmt" "$(jq -r '.objects[] | select(.action == "update") | "\(.resource) \(.name)"' <<<"$a")" \
    "the rollback preview's updates"
  assert_eq "credentials.k0rdent.mirantis.com kcm-system/$cred
gadgets.preview.kcmdr.test kcm-system/g1" \
    "$(jq -r '.objects[] | select(.action == "create") | "\(.resource) \(.namespace)/\(.name)"' <<<"$a" | sort)" "the rollback preview's creates"
  jq -e '.clean and .phase == "Completed" and ([.objects[] | select(.action == "fail" or .action == "conflict")] | length == 0)
         and .summary.unchanged > 20' <<<"$a" >/dev/null || fail "rollback preview: $(jq -c '.summary, .phase' <<<"$a")"
  expect_exit 0 "$KCMDR" restore create --from-backup before-upgrade --existing-resource-policy update \
    --resource-modifier-configmap rollback --dry-run --diff
  grep -Eq "^update +managements.k0rdent.mirantis.com +$mgmt" <<<"$OUT" || fail "no table line for the Management: $OUT"
  grep -Eq "^skip +secrets +kcm-system +sa1-token-x +the token controller creates it for its service account$" <<<"$OUT" ||
    fail "no table line with its reason for the token Secret: $OUT"
  assert_contains "$OUT" "-    \"release\": \"kcm-9-9-9\"" "preview --diff: the release now"
  assert_contains "$OUT" "+    \"release\": \"$release\"" "preview --diff: the release restored"

  # (b) an object the CRD's schema refuses
  expect_exit 1 "$KCMDR" restore create pv-b --from-backup before-upgrade --existing-resource-policy update \
    --resource-modifier-configmap bad --dry-run -o json
  local b=$OUT
  assert_eq "conflict configmaps frozen
fail gadgets.preview.kcmdr.test g1
fail gadgets.preview.kcmdr.test g2" \
    "$(jq -r '.objects[] | select(.action == "conflict" or .action == "fail") | "\(.action) \(.resource) \(.name)"' <<<"$b" | sort)" \
    "the invalid Gadgets and the refused update"
  assert_contains "$(jq -r '.objects[] | select(.name == "g1") | .reason' <<<"$b")" "greater than or equal to 1" "g1: the API server's message"
  assert_contains "$(jq -r '.objects[] | select(.name == "g2") | .reason' <<<"$b")" "greater than or equal to 1" "g2: the API server's message"
  assert_contains "$(jq -r '.objects[] | select(.name == "frozen") | .reason' <<<"$b")" "update refused: " "frozen: refused, left as it is"
  assert_contains "$(jq -r '.objects[] | select(.name == "frozen") | .reason' <<<"$b")" "immutable" "frozen: the API server's message"
  assert_eq "PartiallyFailed" "$(jq -r .phase <<<"$b")" "the phase the failing restore would end in"
  expect_exit 1 "$KCMDR" restore create pv-b --from-backup before-upgrade --existing-resource-policy update \
    --resource-modifier-configmap bad --dry-run -o yaml
  assert_eq "$(pv_norm <<<"$b")" "$(pv_yaml_json <<<"$OUT")" "restore preview: -o yaml is the -o json document"

  # (c) nothing written
  assert_eq "$before" "$(pv_snapshot)" "objects and resourceVersions after the previews"
  assert_eq "$files_before" "$(cd store && find . -type f -exec md5sum {} + | sort)" "the location's files after the previews"
  assert_eq "" "$(kubectl -n kcm-system get restores -o name)" "Restore objects after the previews"
  kubectl get managements.k0rdent.mirantis.com "$mgmt" -o jsonpath='{.spec.release}' | grep -qx kcm-9-9-9 || fail "a preview changed the release"

  # (d) the real restore agrees with (b)'s preview
  start_controller ctl2.log --engine=builtin
  set +e
  "$KCMDR" restore create real --from-backup before-upgrade --existing-resource-policy update \
    --resource-modifier-configmap bad --wait >restore.out 2>&1
  set -e
  rs_wait real PartiallyFailed 60
  expect_exit 0 "$KCMDR" restore logs real
  local got; got=$(pv_log_outcomes <<<"$OUT")
  assert_eq "$(pv_outcomes <<<"$b")" "$got" "the preview's outcomes against the real restore's log"
  [ "$(wc -l <<<"$got")" -gt 20 ] || fail "too few outcomes compared: $got"
  local st; st=$(kubectl -n kcm-system get restore real -o json)
  assert_eq "$(jq -r '"\(.summary.errors) \(.summary.warnings)"' <<<"$b")" "$(jq -r '"\(.status.errors // 0) \(.status.warnings // 0)"' <<<"$st")" \
    "errors and warnings of the preview and of the restore"
  assert_eq "$release" "$(kubectl get managements.k0rdent.mirantis.com "$mgmt" -o jsonpath='{.spec.release}')" "the release after the restore"
  assert_eq 3 "$(kubectl -n kcm-system get gadgets.preview.kcmdr.test g2 -o jsonpath='{.spec.size}')" "g2 left as it was"
  assert_eq 1 "$(kubectl -n kcm-system get configmap frozen -o jsonpath='{.data.a}')" "frozen left as it was"

  # (f) policy none: the Management (the release broken again) and frozen are conflicts, the Gadgets fail
  kubectl patch managements.k0rdent.mirantis.com "$mgmt" --type merge -p '{"spec":{"release":"kcm-9-9-9"}}' >/dev/null
  expect_exit 1 "$KCMDR" restore create --from-backup before-upgrade --resource-modifier-configmap bad --dry-run -o json
  local f=$OUT
  assert_eq "conflict configmaps kcm-system/frozen exists and differs (policy none)
conflict managements.k0rdent.mirantis.com $mgmt exists and differs (policy none)
fail gadgets.preview.kcmdr.test kcm-system/g1
fail gadgets.preview.kcmdr.test kcm-system/g2" \
    "$(jq -r '.objects[] | select(.action == "conflict" or .action == "fail")
              | "\(.action) \(.resource) \(if .namespace == "" then .name else "\(.namespace)/\(.name)" end)\(if .action == "conflict" then " \(.reason)" else "" end)"' <<<"$f" | sort)" \
    "policy none: the conflicts and the failure"
  set +e
  "$KCMDR" restore create real-none --from-backup before-upgrade --resource-modifier-configmap bad --wait >restore2.out 2>&1
  set -e
  rs_wait real-none PartiallyFailed 60
  expect_exit 0 "$KCMDR" restore logs real-none
  got=$(pv_log_outcomes <<<"$OUT")
  assert_eq "$(pv_outcomes <<<"$f")" "$got" "policy none: the preview's outcomes against the real restore's log"
  st=$(kubectl -n kcm-system get restore real-none -o json)
  assert_eq "$(jq -r '"\(.summary.errors) \(.summary.warnings)"' <<<"$f")" "$(jq -r '"\(.status.errors // 0) \(.status.warnings // 0)"' <<<"$st")" \
    "policy none: errors and warnings of the preview and of the restore"
  assert_eq kcm-9-9-9 "$(kubectl get managements.k0rdent.mirantis.com "$mgmt" -o jsonpath='{.spec.release}')" "policy none: the release left"

  # (g) --pause-regions where no regional Backup of the ManagementBackup is listed: the regional
  # clusters to leave out are unknown, so it refuses and writes nothing (no ConfigMap, no Restore)
  expect_exit 1 "$KCMDR" restore create pr --from-backup before-upgrade --pause-regions --dry-run
  assert_contains "$OUT" "no regional Backup of ManagementBackup before-upgrade is listed" "--pause-regions without regional Backups"
  if kubectl -n kcm-system get configmap kcmdr-region-pause-before-upgrade >/dev/null 2>&1; then fail "a refused --pause-regions wrote its ConfigMap"; fi
  if kubectl -n kcm-system get restore pr >/dev/null 2>&1; then fail "a refused --pause-regions created a Restore"; fi
}
