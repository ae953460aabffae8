# t_restore.sh — restores by the builtin engine (src/restore.c) through `kcmdr controller` on real
# servers: the disaster-recovery drill (a management cluster backed up on control plane A comes
# back on a fresh control plane B), rollback on A, policy none, a backup written the way Velero
# writes one, and tampered or hostile archives that must create nothing.

# rs_up NAME: a control plane of its own (CRDs installed by testenv, as a clean kcm install has
# them), the kcm-system namespace; sets KUBECONFIG for it. Remembered for the EXIT trap.
RS_ENVS=()
rs_up() {
  local name=rs-${1:0:30}
  RS_ENVS+=("$name")
  trap 'ctl_stop_all; for e in "${RS_ENVS[@]}"; do "$REPO/scripts/testenv" down --name "$e" >/dev/null 2>&1 || true; done' EXIT
  eval "$("$REPO/scripts/testenv" up --name "$name" 2>/dev/null)"
  export KUBECONFIG
  kubectl create namespace kcm-system >/dev/null
}

# rs_s3_bsl NAME PREFIX: a default BSL on the shared gateway with its Secret
rs_s3_bsl() { s3_location "$1" "$KCMDR_S3_BUCKET" "$2" true; }

# rs_restore NAME BACKUP [POLICY] [MODIFIER_CM]: the seed's Restore
rs_restore() {
  jq -n --arg n "$1" --arg b "$2" --arg p "${3:-}" --arg m "${4:-}" '
    {apiVersion:"velero.io/v1", kind:"Restore", metadata:{name:$n, namespace:"kcm-system"},
     spec:({backupName:$b, includedNamespaces:["*"], hooks:{},
            excludedResources:["nodes","events","events.events.k8s.io","backups.velero.io","restores.velero.io",
              "resticrepositories.velero.io","csinodes.storage.k8s.io","volumeattachments.storage.k8s.io",
              "backuprepositories.velero.io"]}
           + (if $p != "" then {existingResourcePolicy:$p} else {} end)
           + (if $m != "" then {resourceModifier:{kind:"ConfigMap", name:$m}} else {} end))}' | kubectl create -f - >/dev/null
}
rs_phase() { kubectl -n kcm-system get restore "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
rs_wait() { # rs_wait NAME PHASE [SECS]
  wait_until "${3:-120}" sh -c "case \"\$(kubectl -n kcm-system get restore $1 -o jsonpath='{.status.phase}')\" in Completed|PartiallyFailed|Failed|FailedValidation) true;; *) false;; esac"
  [ "$(rs_phase "$1")" = "$2" ] || fail "restore $1 is $(rs_phase "$1"), expected $2: $(kubectl -n kcm-system get restore "$1" -o json | jq -c .status)"
}
bk_wait() { # bk_wait NAME PHASE [SECS]
  wait_until "${3:-120}" sh -c "[ \"\$(kubectl -n kcm-system get backup $1 -o jsonpath='{.status.phase}')\" = $2 ]"
}

# rs_dump TYPES... : every object of these types as "gr|ns|name<TAB>canonical JSON" of what a
# restore must keep (spec, data, stringData, type, labels minus velero.io/*, annotations),
# sorted; the kcmdr.test/in-backup annotation tells which objects belong in kcm's backup.
rs_dump() {
  local t
  for t in "$@"; do
    kubectl get "$t" -A -o json | jq -r --arg t "$t" '.items[]
      | {k: "\($t)|\(.metadata.namespace // "")|\(.metadata.name)",
         v: {spec, data, type, labels: ((.metadata.labels // {}) | with_entries(select(.key | startswith("velero.io/") | not))),
             annotations: (.metadata.annotations // {})}}
      | "\(.k)\t\(.v | tojson)"'
  done | sort
}
RS_TYPES="configmaps secrets serviceaccounts deployments.apps clusterroles.rbac.authorization.k8s.io
  managements.k0rdent.mirantis.com releases.k0rdent.mirantis.com providertemplates.k0rdent.mirantis.com
  clustertemplates.k0rdent.mirantis.com servicetemplates.k0rdent.mirantis.com clusterdeployments.k0rdent.mirantis.com
  credentials.k0rdent.mirantis.com machinedeployments.cluster.x-k8s.io machines.cluster.x-k8s.io
  k0scontrolplanes.controlplane.cluster.x-k8s.io awsclusters.infrastructure.cluster.x-k8s.io
  helmreleases.helm.toolkit.fluxcd.io certificates.cert-manager.io issuers.cert-manager.io
  managementbackups.k0rdent.mirantis.com"

test_restore_drill_lost_cluster_comes_back_on_another() {
  local prefix=rs-drill-$RANDOM$RANDOM t0
  # --- control plane A: the management cluster, backed up on a schedule
  rs_up drill-a
  local KA=$KUBECONFIG
  "$REPO/scripts/fixture" --cluster-deployments 44 --extra 60 2>/dev/null
  rs_s3_bsl s3 "$prefix"
  # kcm labels what it manages k0rdent.mirantis.com/component=kcm; so is this schedule, so that
  # it is part of the backup and comes back with it
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: kcm, labels: {k0rdent.mirantis.com/component: kcm}, annotations: {kcmdr.test/in-backup: "true"}}
spec: {schedule: "* * * * *", storageLocation: s3}
YAML
  start_controller a.log --engine=builtin
  wait_until 100 sh -c "kubectl get mgmtbackup kcm -o json | jq -e '.status.lastBackup.phase == \"Completed\"'"
  local bk; bk=$(kubectl get mgmtbackup kcm -o json | jq -r .status.lastBackupName)
  [ -n "$bk" ] && [ "$bk" != null ] || fail "no lastBackupName: $(kubectl get mgmtbackup kcm -o json | jq -c .status)"
  local items; items=$(kubectl -n kcm-system get backup "$bk" -o jsonpath='{.status.progress.itemsBackedUp}')
  [ "$items" -ge 500 ] || fail "the backup holds only $items objects; the drill wants at least 500"
  ctl_stop_all  # A is lost (its API server stays up only to compare against)
  rs_dump $RS_TYPES > a.all
  awk -F'\t' '$2 ~ /"kcmdr.test\/in-backup":"true"/' a.all > a.in
  grep -c . a.in > /dev/null || fail "the fixture marked nothing for the backup"

  # --- control plane B: a clean install (CRDs only), the same location and Secret
  rs_up drill-b
  rs_s3_bsl s3 "$prefix"
  start_controller b.log --engine=builtin
  bk_wait "$bk" Completed 30  # it appears by sync
  rs_dump $RS_TYPES | cut -f1 > b.pre  # what a clean install holds by itself
  t0=$SECONDS
  rs_restore drill "$bk" update
  rs_wait drill Completed 300
  echo "restore of $items objects took $((SECONDS - t0)) s"
  local st; st=$(kubectl -n kcm-system get restore drill -o json)
  jq -e '.status.errors == 0 and .status.progress.itemsRestored == .status.progress.totalItems and
         (.status.startTimestamp | length > 0) and (.status.completionTimestamp | length > 0)' <<<"$st" >/dev/null \
    || fail "restore status: $(jq -c .status <<<"$st")"
  # its log and results are in the bucket, in Velero's shapes
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 cp "s3://$KCMDR_S3_BUCKET/$prefix/restores/drill/restore-drill-results.gz" res.gz >/dev/null
  zcat res.gz | jq -e '(.errors|keys) == ["cluster","namespaces","velero"] and .errors.velero == []' >/dev/null \
    || fail "results: $(zcat res.gz | head -c 600)"
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 cp "s3://$KCMDR_S3_BUCKET/$prefix/restores/drill/restore-drill-logs.gz" log.gz >/dev/null
  zcat log.gz | grep 'level=info msg="restore Completed' >/dev/null || fail "log: $(zcat log.gz | tail -3)"

  # every backed-up object is in B, equal; nothing else was created
  rs_dump $RS_TYPES > b.all
  local missing differing extra
  missing=$(join -t$'\t' -v1 <(cut -f1 a.in | sort) <(cut -f1 b.all | sort) | wc -l)
  differing=$(comm -23 <(sort a.in) <(sort b.all) | cut -f1 | sort | join -t$'\t' - <(cut -f1 b.all | sort) | wc -l)
  extra=$(join -t$'\t' -v2 <(cut -f1 a.in | sort) <(cut -f1 b.all | sort) | wc -l)
  [ "$missing" = 0 ] || fail "$missing backed-up objects missing in B: $(join -t$'\t' -v1 <(cut -f1 a.in | sort) <(cut -f1 b.all | sort) | head -5)"
  if [ "$differing" != 0 ]; then
    local k; k=$(comm -23 <(sort a.in) <(sort b.all) | cut -f1 | head -1)
    fail "$differing objects differ; first: $k
A: $(grep -F "$k	" a.in | cut -f2 | head -c 600)
B: $(grep -F "$k	" b.all | cut -f2 | head -c 600)"
  fi
  # nothing else appeared: every object of B is in the backup or was there before the restore
  cut -f1 b.all | sort > b.keys
  sort -u <(cut -f1 a.in) b.pre > allowed.keys
  extra=$(comm -23 b.keys allowed.keys | grep -c . || true)
  [ "$extra" = 0 ] || fail "objects outside the backup appeared in B: $(comm -23 b.keys allowed.keys | head -5)"
  assert_eq 0 "$(kubectl get clusters.cluster.x-k8s.io -A -o name | wc -l)" "Cluster API clusters created by the restore"
  echo "drill: $(wc -l < a.in) objects backed up, $(($(wc -l < a.in) - missing)) restored, $missing missing, $differing differing"

  # the schedule goes on in B: status rebuilt from the synced Backup (or already from a newer one:
  # the schedule fires every minute, and on a loaded machine the comparison above can outlast the
  # next slot; names are kcm-<UTC time>, so later sorts after), then a new scheduled backup
  wait_until 60 sh -c "kubectl get mgmtbackup kcm -o json | jq -e --arg b '$bk' '.status.lastBackupName >= \$b and (.status.nextAttempt | length > 0)'"
  wait_until 120 sh -c "kubectl get mgmtbackup kcm -o json | jq -e --arg b '$bk' '.status.lastBackupName != \$b and .status.lastBackup.phase == \"Completed\"'"
}

# What Velero's restore does beyond the selection, tried with a namespace restored on its own and
# mapped to another: the namespace is made from its own entry in the backup (its pod-security
# labels and annotations come back) though the Namespace object itself is not selected; a
# ServiceAccount's auto-created token Secret is not restored (the token controller makes a new
# one) and the ServiceAccount no longer names the old one; a hand-made token Secret comes back
# without the old cluster's token; a RoleBinding's subject follows the namespace mapping (else
# it would grant to whoever owns the source namespace on this cluster).
test_restore_namespace_copy_tokens_and_bindings_as_velero() {
  rs_up nsmap
  mkdir -p store
  rs_fs_bsl local "$PWD/store"
  kubectl create namespace team-a >/dev/null
  kubectl label namespace team-a pod-security.kubernetes.io/enforce=restricted >/dev/null
  kubectl annotate namespace team-a owner=team-a >/dev/null
  # the test servers run no token controller: the token Secrets are made here as it makes them
  kubectl -n team-a apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
secrets: [{name: app-token-old1}, {name: other}]
---
apiVersion: v1
kind: Secret
metadata: {name: app-token-old1, annotations: {kubernetes.io/service-account.name: app, kubernetes.io/service-account.uid: u-old}}
type: kubernetes.io/service-account-token
data: {token: b2xk, ca.crt: Y2E=, namespace: dGVhbS1h}
---
apiVersion: v1
kind: Secret
metadata: {name: manual, annotations: {kubernetes.io/service-account.name: app, kubernetes.io/service-account.uid: u-old}}
type: kubernetes.io/service-account-token
data: {token: b2xk, ca.crt: Y2E=, namespace: dGVhbS1h}
YAML
  kubectl -n team-a create rolebinding rb --clusterrole=view --serviceaccount=team-a:app >/dev/null
  start_controller ctl.log --engine=builtin
  kubectl create -f - >/dev/null <<'YAML'
apiVersion: velero.io/v1
kind: Backup
metadata: {name: team-a, namespace: kcm-system}
spec: {storageLocation: local, includedNamespaces: [team-a]}
YAML
  bk_wait team-a Completed 60
  jq -n '{apiVersion:"velero.io/v1", kind:"Restore", metadata:{name:"to-b", namespace:"kcm-system"},
          spec:{backupName:"team-a", includedNamespaces:["team-a"], namespaceMapping:{"team-a":"team-b"}}}' | kubectl create -f - >/dev/null
  rs_wait to-b Completed 60
  assert_eq "restricted" "$(kubectl get namespace team-b -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')" \
    "the mapped namespace lost its labels"
  assert_eq "team-a" "$(kubectl get namespace team-b -o jsonpath='{.metadata.annotations.owner}')" "the mapped namespace lost its annotations"
  ! kubectl -n team-b get secret app-token-old1 >/dev/null 2>&1 || fail "the auto-created token Secret was restored"
  assert_eq '["other"]' "$(kubectl -n team-b get serviceaccount app -o json | jq -c '[.secrets[]?.name]')" \
    "the ServiceAccount's token reference"
  assert_eq '{"namespace":"dGVhbS1h"}|null' "$(kubectl -n team-b get secret manual -o json |
    jq -c '"\(.data)|\(.metadata.annotations["kubernetes.io/service-account.uid"])"' -r)" \
    "the hand-made token Secret must come back without the old token, CA and uid"
  assert_eq "team-b" "$(kubectl -n team-b get rolebinding rb -o jsonpath='{.subjects[0].namespace}')" "the RoleBinding subject was not mapped"
  kubectl -n kcm-system get restore to-b -o json | jq -e '(.status.errors // 0) == 0' >/dev/null || fail "errors: $(kubectl -n kcm-system get restore to-b -o json | jq -c .status)"
}

test_restore_rollback_policy_none_and_update() {
  rs_up rollback
  "$REPO/scripts/fixture" --cluster-deployments 3 --extra 5 2>/dev/null
  mkdir -p store
  rs_fs_bsl local "$PWD/store"
  start_controller ctl.log --engine=builtin
  on_demand before-upgrade local
  bk_wait before-upgrade Completed 60
  local mgmt; mgmt=$(kubectl get managements.k0rdent.mirantis.com -o jsonpath='{.items[0].metadata.name}')
  local release; release=$(kubectl get managements.k0rdent.mirantis.com "$mgmt" -o jsonpath='{.spec.release}')
  [ -n "$release" ] || fail "the fixture's Management has no spec.release"
  # a failed upgrade: the release moved on, a ClusterDeployment's config changed, a Credential deleted
  kubectl patch managements.k0rdent.mirantis.com "$mgmt" --type merge -p '{"spec":{"release":"kcm-9-9-9"}}' >/dev/null
  local cd; cd=$(kubectl -n kcm-system get clusterdeployments.k0rdent.mirantis.com -o jsonpath='{.items[0].metadata.name}')
  local cd_spec; cd_spec=$(kubectl -n kcm-system get clusterdeployments.k0rdent.mirantis.com "$cd" -o json | jq -c .spec)
  kubectl -n kcm-system patch clusterdeployments.k0rdent.mirantis.com "$cd" --type merge -p '{"spec":{"config":{"upgraded":true}}}' >/dev/null
  local cred; cred=$(kubectl -n kcm-system get credentials.k0rdent.mirantis.com -o jsonpath='{.items[0].metadata.name}')
  kubectl -n kcm-system delete credentials.k0rdent.mirantis.com "$cred" >/dev/null

  # tried: policy none restores what is missing, and only warns about what differs
  rs_restore keep before-upgrade none
  rs_wait keep Completed 60
  assert_eq "kcm-9-9-9" "$(kubectl get managements.k0rdent.mirantis.com "$mgmt" -o jsonpath='{.spec.release}')" "none overwrote the Management"
  assert_eq "true" "$(kubectl -n kcm-system get clusterdeployments.k0rdent.mirantis.com "$cd" -o jsonpath='{.spec.config.upgraded}')" \
    "none overwrote the changed ClusterDeployment"
  kubectl -n kcm-system get credentials.k0rdent.mirantis.com "$cred" >/dev/null || fail "the deleted Credential was not restored"
  local w; w=$(kubectl -n kcm-system get restore keep -o jsonpath='{.status.warnings}')
  [ "${w:-0}" -ge 2 ] || fail "policy none: expected warnings for the changed objects, got '${w:-0}'"
  kubectl -n kcm-system get restore keep -o json | jq -e '.status.errors // 0 | . == 0' >/dev/null || fail "errors under none"

  # the rollback kcm documents: policy update plus a resourceModifier that sets the release back
  kubectl -n kcm-system create configmap rollback --from-literal=modifiers.yaml="version: v1
resourceModifierRules:
- conditions:
    groupResource: managements.k0rdent.mirantis.com
  patches:
  - operation: replace
    path: /spec/release
    value: \"$release\"
" >/dev/null
  rs_restore back before-upgrade update rollback
  rs_wait back Completed 60
  assert_eq "$release" "$(kubectl get managements.k0rdent.mirantis.com "$mgmt" -o jsonpath='{.spec.release}')" "release after rollback"
  assert_eq "$cd_spec" "$(kubectl -n kcm-system get clusterdeployments.k0rdent.mirantis.com "$cd" -o json | jq -c .spec)" "ClusterDeployment after rollback"
  assert_eq "back" "$(kubectl -n kcm-system get clusterdeployments.k0rdent.mirantis.com "$cd" -o json | jq -r '.metadata.labels["velero.io/restore-name"]')" "restore label"
  local u; u=$(kubectl -n kcm-system get restore back -o json)
  jq -e '(.status.errors // 0) == 0' <<<"$u" >/dev/null || fail "rollback errors: $(jq -c .status <<<"$u")"

  # tried: what validation must refuse, with nothing touched
  jq -n '{apiVersion:"velero.io/v1",kind:"Restore",metadata:{name:"bad-policy",namespace:"kcm-system"},
          spec:{backupName:"before-upgrade",existingResourcePolicy:"replace"}}' | kubectl create -f - >/dev/null
  rs_wait bad-policy FailedValidation 30
  kubectl -n kcm-system get restore bad-policy -o json | jq -e '.status.validationErrors | any(test("Invalid ExistingResourcePolicy"))' >/dev/null || fail "policy message"
  rs_restore no-backup does-not-exist
  rs_wait no-backup FailedValidation 30
  kubectl -n kcm-system create configmap strategic --from-literal=m.yaml='version: v1
resourceModifierRules:
- conditions: {groupResource: deployments.apps}
  strategicPatches:
  - patchData: "{}"
' >/dev/null
  rs_restore strat before-upgrade update strategic
  rs_wait strat FailedValidation 30
  kubectl -n kcm-system get restore strat -o json | jq -e '.status.validationErrors | any(test("strategic"; "i"))' >/dev/null \
    || fail "strategicPatches message: $(kubectl -n kcm-system get restore strat -o json | jq -c .status.validationErrors)"
  jq -n '{apiVersion:"velero.io/v1",kind:"Restore",metadata:{name:"nodes",namespace:"kcm-system"},
          spec:{backupName:"before-upgrade",includedResources:["nodes"]}}' | kubectl create -f - >/dev/null
  rs_wait nodes FailedValidation 30
}

# rs_plant DIR NAME TARBALL_BUILDER_ARGS...: put a backup into a filesystem location by hand:
# velero-backup.json (Completed) and a tarball made by test/e2e/mktar.py
rs_plant() {
  local dir=$1 name=$2; shift 2
  mkdir -p "$dir/backups/$name"
  python3 "$REPO/test/e2e/mktar.py" "$@" > "$dir/backups/$name/$name.tar.gz"
  jq -n --arg n "$name" '{apiVersion:"velero.io/v1",kind:"Backup",metadata:{name:$n,namespace:"kcm-system"},
    spec:{storageLocation:"local",includedNamespaces:["*"]},
    status:{phase:"Completed",version:1,formatVersion:"1.1.0",startTimestamp:"2026-01-01T00:00:00Z",
            completionTimestamp:"2026-01-01T00:00:05Z",expiration:"2099-01-01T00:00:00Z"}}' \
    > "$dir/backups/$name/velero-backup.json"
}

test_restore_velero_written_and_hostile_archives() {
  rs_up hostile
  mkdir -p store
  rs_fs_bsl local "$PWD/store"
  # a backup the way Velero's Go code writes it (sorted keys, \u003c escapes, PAX long names,
  # -preferredversion copies, pretty velero-backup.json, no checksums file)
  rs_plant store velero-made velero
  for kind in traversal absolute symlink device huge truncated badjson namemismatch; do
    rs_plant store "evil-$kind" "$kind"
  done
  start_controller ctl.log --engine=builtin
  bk_wait velero-made Completed 30
  rs_restore from-velero velero-made
  rs_wait from-velero Completed 60
  kubectl -n kcm-system get restore from-velero -o json | jq -e '.status.warnings >= 1' >/dev/null || fail "no unverified warning"
  assert_eq '<b>&"quoted"' "$(kubectl -n velero-ns get configmap escaped -o jsonpath='{.data.html}')" "escaped content"
  kubectl -n velero-ns get configmap "$(printf 'l%.0s' {1..120})" >/dev/null || fail "the PAX long name was not restored"
  local n_before; n_before=$(kubectl get configmaps,secrets -A -o name | wc -l)
  for kind in traversal absolute symlink device huge truncated badjson namemismatch; do
    bk_wait "evil-$kind" Completed 30
    rs_restore "r-$kind" "evil-$kind"
    rs_wait "r-$kind" Failed 60
    kubectl -n kcm-system get restore "r-$kind" -o json | jq -e '.status.failureReason | length > 10' >/dev/null \
      || fail "$kind: no failure reason: $(kubectl -n kcm-system get restore "r-$kind" -o json | jq -c .status)"
    echo "$kind: $(kubectl -n kcm-system get restore "r-$kind" -o jsonpath='{.status.failureReason}')"
  done
  assert_eq "$n_before" "$(kubectl get configmaps,secrets -A -o name | wc -l)" "objects created by hostile archives"
  kubectl get namespace evil-ns >/dev/null 2>&1 && fail "a hostile archive created a namespace"
  [ -e /tmp/kcmdr-evil-escape ] && fail "a hostile archive wrote outside its place"

  # a backup of our own, tampered by one byte: Failed before anything is created
  kubectl create namespace tamper-ns >/dev/null
  kubectl -n tamper-ns create configmap keepme --from-literal=a=b >/dev/null
  jq -n '{apiVersion:"velero.io/v1",kind:"Backup",metadata:{name:"ours",namespace:"kcm-system"},
          spec:{storageLocation:"local",includedNamespaces:["tamper-ns"]}}' | kubectl create -f - >/dev/null
  bk_wait ours Completed 60
  kubectl -n tamper-ns delete configmap keepme >/dev/null
  python3 - store/backups/ours/ours.tar.gz <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)
PY
  rs_restore tampered ours
  rs_wait tampered Failed 60
  kubectl -n kcm-system get restore tampered -o json | jq -e '.status.failureReason | test("SHA-256|checksum")' >/dev/null \
    || fail "tampered: $(kubectl -n kcm-system get restore tampered -o json | jq -c .status)"
  kubectl -n tamper-ns get configmap keepme >/dev/null 2>&1 && fail "the tampered backup created an object"
  true
}
