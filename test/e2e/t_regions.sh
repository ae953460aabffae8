# t_regions.sh — kcm regions (kcm >= 1.4): a management control plane and one regional control
# plane sharing one location (as kcm's docs require), `kcmdr controller` with its builtin engine
# on both. One environment pair serves every assertion, in the order a region lives: on-demand
# and scheduled backups per region, a Region whose Secret is missing, the restore of both sides,
# and last the regional API server killed.

rg_backups() { kubectl -n kcm-system get backups -o json | jq -c "$1"; }

# tried: ManagementBackups "once" (on demand) and "sched" (@every 6s) on a management cluster
# whose ClusterDeployments are in regions east (a Region whose kubeconfig Secret points at the
# regional control plane) and west (its Secret missing), plus plain ones.
# asserted: in the regional cluster's kcm-system, Backups once-east and sched-east-<stamp>,
# labelled k0rdent.mirantis.com/region=east and with the management-backup label, the same
# storage location, selecting rcd-east-0 and no management ClusterDeployment, Completed, and
# holding the regional object of rcd-east-0 but not one of a management cluster; the management
# Backup leaves rcd-east-0 out; status.regions has east (lastBackup Completed, nextAttempt the
# top level's) and west with the missing Secret as its error, while the top level has none.
# Then the restore: on the management cluster `--pause-regions` brings a deleted Region back
# annotated k0rdent.mirantis.com/region-pause and leaves the regional cluster's Secret out
# (cluster.x-k8s.io/cluster-name NotIn) while restoring a deleted management object; on the
# regional cluster `--region east` picks sched's newest finished regional Backup and restores
# the deleted object. Region north (spec.clusterDeployment form) is backed up like east; south
# (ClusterDeployments naming no Region) has the error in its entry, the others go on; a
# ManagementBackup named once-north makes once's north entry refuse its names. ManagementBackup
# sched deleted and restored: east's entry is rebuilt (the region's newest finished Backup).
# Last the regional API server is SIGKILLed: east's entry shows the error
# and the management schedule goes on (two more management backups).
test_regions_backup_restore_and_dead_region() {
  local rg=reg-east-$$ mg=reg-mgmt-$$
  trap "ctl_stop_all; '$REPO/scripts/testenv' down --name $rg >/dev/null 2>&1; '$REPO/scripts/testenv' down --name $mg >/dev/null 2>&1" EXIT
  PREFIX=regions-$RANDOM$RANDOM
  # the regional control plane: its own kcm objects, one of its cluster and one of a management cluster
  eval "$("$REPO/scripts/testenv" up --name "$rg" 2>/dev/null)"
  local kr=$KUBECONFIG
  kubectl create namespace kcm-system >/dev/null
  s3_bsl default
  kubectl -n kcm-system create configmap east-cluster-obj --from-literal=a=b >/dev/null
  kubectl -n kcm-system label configmap east-cluster-obj cluster.x-k8s.io/cluster-name=rcd-east-0 >/dev/null
  kubectl -n kcm-system create configmap mgmt-cluster-obj --from-literal=a=b >/dev/null
  kubectl -n kcm-system label configmap mgmt-cluster-obj cluster.x-k8s.io/cluster-name=cd-00000 >/dev/null
  start_controller r.log --engine=builtin
  # the management control plane
  eval "$("$REPO/scripts/testenv" up --name "$mg" 2>/dev/null)"
  local km=$KUBECONFIG
  kubectl create namespace kcm-system >/dev/null
  # a kubeconfig in a Secret may name no file of the controller's: the "-data" forms only
  KUBECONFIG=$kr kubectl config view --raw --minify --flatten >kr.flat
  "$REPO/scripts/fixture" --cluster-deployments 2 --region "east=$PWD/kr.flat" --region west \
    --region-via-cd "north=$PWD/kr.flat" --region-missing south 2>/dev/null
  s3_bsl default
  start_controller m.log --engine=builtin
  on_demand once
  kubectl apply -f - >/dev/null <<YAML
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: sched}
spec: {schedule: "@every 6s"}
YAML

  # on demand: the regional Backup in the regional cluster
  KUBECONFIG=$kr wait_phase once-east Completed 60
  KUBECONFIG=$kr assert_eq '{"k0rdent.mirantis.com/management-backup":"once","k0rdent.mirantis.com/region":"east"}' \
    "$(KUBECONFIG=$kr kubectl -n kcm-system get backup once-east -o json | jq -c '.metadata.labels | with_entries(select(.key|startswith("k0rdent")))')" "labels of once-east"
  local sel
  sel=$(KUBECONFIG=$kr kubectl -n kcm-system get backup once-east -o json | jq -c '[.spec.storageLocation, ([.spec.orLabelSelectors[].matchLabels["cluster.x-k8s.io/cluster-name"] // empty])]')
  assert_eq '["default",["rcd-east-0"]]' "$sel" "storage location and cluster selectors of once-east"
  sel=$(kubectl -n kcm-system get backup once -o json | jq -c '[.spec.orLabelSelectors[].matchLabels["cluster.x-k8s.io/cluster-name"] // empty]')
  assert_eq '["cd-00000","cd-00001"]' "$sel" "cluster selectors of the management Backup (no regional one)"
  local rl
  rl=$(s3 cp "s3://$KCMDR_S3_BUCKET/$PREFIX/backups/once-east/once-east-resource-list.json.gz" - | gunzip | jq -c '.["v1/ConfigMap"]')
  assert_contains "$rl" "kcm-system/east-cluster-obj" "the regional backup's resource list"
  case $rl in *mgmt-cluster-obj*) fail "the regional backup holds an object of a management cluster: $rl" ;; esac
  wait_until 30 sh -c "kubectl get managementbackup once -o json | jq -e '.status.regions[] | select(.region==\"east\") | .lastBackup.phase == \"Completed\"'"
  local st
  st=$(kubectl get managementbackup once -o json | jq -c '.status')
  assert_eq "once-east" "$(jq -r '.regions[] | select(.region=="east") | .lastBackupName' <<<"$st")" "east's lastBackupName"
  assert_contains "$(jq -r '.regions[] | select(.region=="west") | .error' <<<"$st")" "kubeconfig Secret kcm-system/west-kubeconfig: not found" "west's error"
  assert_eq "null" "$(jq -c '.error' <<<"$st")" "the top level's error"
  # north: a Region of the spec.clusterDeployment form (Secret team-blue/north-host-kubeconfig,
  # here the same regional cluster); south: ClusterDeployments naming a Region that does not exist
  KUBECONFIG=$kr wait_phase once-north Completed 60
  sel=$(KUBECONFIG=$kr kubectl -n kcm-system get backup once-north -o json | jq -c '[.metadata.labels["k0rdent.mirantis.com/region"], ([.spec.orLabelSelectors[].matchLabels["cluster.x-k8s.io/cluster-name"] // empty])]')
  assert_eq '["north",["rcd-north-0"]]' "$sel" "region label and cluster selectors of once-north"
  wait_until 30 sh -c "kubectl get managementbackup once -o json | jq -e '.status.regions[] | select(.region==\"north\") | .lastBackup.phase == \"Completed\"'"
  st=$(kubectl get managementbackup once -o json | jq -c '.status')
  assert_eq "once-north" "$(jq -r '.regions[] | select(.region=="north") | .lastBackupName' <<<"$st")" "north's lastBackupName"
  assert_contains "$(jq -r '.regions[] | select(.region=="south") | .error' <<<"$st")" "Region south not found" "south's error"
  assert_eq "null" "$(jq -c '.regions[] | select(.region=="south") | .lastBackupName' <<<"$st")" "south's lastBackupName"

  # scheduled: "<mb>-<region>-<stamp>", labelled, Completed; the entry follows the top level
  KUBECONFIG=$kr wait_until 60 sh -c "kubectl -n kcm-system get backups -o json | jq -e '[.items[] | select((.metadata.name|test(\"^sched-east-[0-9]{14}\$\")) and .metadata.labels[\"k0rdent.mirantis.com/region\"]==\"east\" and .status.phase==\"Completed\")] | length >= 1'"
  wait_until 30 sh -c "kubectl get managementbackup sched -o json | jq -e '(.status.regions[] | select(.region==\"east\") | .nextAttempt) == .status.nextAttempt and (.status.regions[] | select(.region==\"east\") | .lastBackupName | test(\"^sched-east-\"))'"

  # restore, management side: Region east and the regional cluster's Secret deleted, one
  # management object too; the regional Backup of the same slot comes by sync
  wait_until 30 kubectl -n kcm-system get backup once-east
  wait_until 30 kubectl -n kcm-system get backup once-north

  # a ManagementBackup named like once's regional Backups of north (once-north): once's north
  # entry refuses with an error naming it and nothing new is made; the synced regional
  # once-north, not its, keeps the name
  kubectl apply -f - >/dev/null <<YAML
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: once-north}
spec: {}
YAML
  kubectl annotate managementbackup once kcmdr.test/poke=1 >/dev/null
  wait_until 30 sh -c "kubectl get managementbackup once -o json | jq -e '.status.regions[] | select(.region==\"north\") | .error | test(\"ManagementBackup once-north exists\")'"
  assert_eq "once" "$(kubectl -n kcm-system get backup once-north -o jsonpath='{.metadata.labels.k0rdent\.mirantis\.com/management-backup}')" "owner of Backup once-north"
  kubectl delete managementbackup once-north >/dev/null
  kubectl delete region east >/dev/null
  kubectl -n kcm-system delete secret rcd-east-0-kubeconfig cd-00000-identity >/dev/null
  # its preview first: the same decisions (the Region paused, the regional Secret left out),
  # yet neither the region-pause ConfigMap nor a Restore is written
  # (exit 1: Region west exists and differs by the pause annotation, a conflict under policy none)
  local prc=0
  "$KCMDR" restore create rs-mgmt --from-backup once --pause-regions --dry-run -o json >pv.json 2>pv.err || prc=$?
  [ "$prc" = 1 ] || { cat pv.err pv.json; fail "the preview of the management restore exited $prc, expected 1"; }
  OUT=$(cat pv.json)
  assert_eq "conflict" "$(jq -r '.objects[] | select(.resource=="regions.k0rdent.mirantis.com" and .name=="west") | .action' <<<"$OUT")" "preview of Region west"
  assert_eq "create" "$(jq -r '.objects[] | select(.resource=="regions.k0rdent.mirantis.com" and .name=="east") | .action' <<<"$OUT")" "preview of Region east"
  assert_eq "create" "$(jq -r '.objects[] | select(.resource=="secrets" and .name=="cd-00000-identity") | .action' <<<"$OUT")" "preview of the management Secret"
  assert_eq "" "$(jq -r '.objects[] | select(.name=="rcd-east-0-kubeconfig") | .action' <<<"$OUT")" "preview of the regional cluster's Secret (left out)"
  if kubectl -n kcm-system get configmap kcmdr-region-pause-once >/dev/null 2>&1; then fail "the preview wrote the region-pause ConfigMap"; fi
  if kubectl -n kcm-system get restore rs-mgmt >/dev/null 2>&1; then fail "the preview created a Restore"; fi
  # a ConfigMap of the name --pause-regions writes, but not kcmdr's: refused, left as it was
  kubectl -n kcm-system create configmap kcmdr-region-pause-once --from-literal=mine=yes >/dev/null
  expect_exit 1 "$KCMDR" restore create rs-mgmt --from-backup once --pause-regions --wait
  assert_contains "$OUT" "is not kcmdr's" "the refusal to overwrite another's ConfigMap"
  assert_eq "yes" "$(kubectl -n kcm-system get configmap kcmdr-region-pause-once -o jsonpath='{.data.mine}')" "the other's ConfigMap"
  if kubectl -n kcm-system get restore rs-mgmt >/dev/null 2>&1; then fail "a Restore was created after the refusal"; fi
  kubectl -n kcm-system delete configmap kcmdr-region-pause-once >/dev/null
  "$KCMDR" restore create rs-mgmt --from-backup once --pause-regions --wait >rs-mgmt.out 2>&1 || { cat rs-mgmt.out; fail "management restore"; }
  assert_eq "true" "$(kubectl get region east -o jsonpath='{.metadata.annotations.k0rdent\.mirantis\.com/region-pause}')" "region-pause of the restored Region"
  kubectl -n kcm-system get secret cd-00000-identity >/dev/null 2>&1 || fail "the management object was not restored"
  if kubectl -n kcm-system get secret rcd-east-0-kubeconfig >/dev/null 2>&1; then fail "the regional cluster's Secret was restored"; fi
  assert_eq '{"matchExpressions":[{"key":"cluster.x-k8s.io/cluster-name","operator":"NotIn","values":["rcd-east-0","rcd-north-0"]}]}' \
    "$(kubectl -n kcm-system get restore rs-mgmt -o json | jq -c '.spec.labelSelector | .matchExpressions[0].values |= sort')" "the management Restore's selector"

  # restore, regional side: the newest finished Backup of sched for east
  KUBECONFIG=$kr kubectl -n kcm-system delete configmap east-cluster-obj >/dev/null
  KUBECONFIG=$kr "$KCMDR" restore create rs-east --from-backup sched --region east --wait >rs-east.out 2>&1 || { cat rs-east.out; fail "regional restore"; }
  local picked
  picked=$(KUBECONFIG=$kr kubectl -n kcm-system get restore rs-east -o jsonpath='{.spec.backupName}')
  [[ $picked =~ ^sched-east-[0-9]{14}$ ]] || fail "the regional restore read $picked"
  assert_eq Completed "$(KUBECONFIG=$kr phase "$picked")" "phase of the Backup the regional restore read"
  KUBECONFIG=$kr kubectl -n kcm-system get configmap east-cluster-obj >/dev/null || fail "the regional object was not restored"

  # after a restore, regional entries are rebuilt like the top level: ManagementBackup sched
  # deleted and restored from its newest finished Backup; east's entry names the region's
  # newest finished sched-east-<stamp> soon after (the status itself is not restored)
  local snap
  snap=$(rg_backups '[.items[] | select((.metadata.name|test("^sched-[0-9]{14}$")) and .status.phase=="Completed") | .metadata.name] | sort | last' | tr -d '"')
  kubectl delete managementbackup sched >/dev/null
  "$KCMDR" restore create rs-sched --from-backup "$snap" --include-resources managementbackups.k0rdent.mirantis.com --wait \
    >rs-sched.out 2>&1 || { cat rs-sched.out; fail "restore of ManagementBackup sched"; }
  kubectl get managementbackup sched >/dev/null || fail "ManagementBackup sched was not restored"
  wait_until 60 sh -c "newest=\$(KUBECONFIG=$kr kubectl -n kcm-system get backups -o json | jq -r '[.items[] | select((.metadata.name|test(\"^sched-east-[0-9]{14}\$\")) and .status.phase==\"Completed\") | .metadata.name] | sort | last'); kubectl get managementbackup sched -o json | jq -e --arg n \"\$newest\" '(.metadata.labels[\"velero.io/restore-name\"] == null) and ((.status.regions[] | select(.region==\"east\") | .lastBackupName) == \$n)'"

  # the regional API server dies: east's entry says so, the management schedule goes on
  "$REPO/scripts/testenv" apiserver kill --name "$rg" >/dev/null 2>&1
  local t0 last
  t0=$(date +%s)
  wait_until 60 sh -c "kubectl get managementbackup sched -o json | jq -e '.status.regions[] | select(.region==\"east\") | .error | test(\"region east\")'"
  last=$(kubectl get managementbackup sched -o jsonpath='{.status.lastBackupName}')
  wait_until 60 sh -c "kubectl -n kcm-system get backups -o json | jq -e --arg l '$last' '[.items[] | select((.metadata.name|test(\"^sched-[0-9]{14}\$\")) and .metadata.name > \$l and .status.phase==\"Completed\")] | length >= 2'"
  echo "    regional API server dead: error shown and two management backups within $(( $(date +%s) - t0 )) s" >&2
}
