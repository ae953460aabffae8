# t_engine.sh — `kcmdr controller` with its builtin engine on real servers: a filesystem and an
# S3 (Ceph RGW) storage location, credentials from a Secret, validation, sync into a second
# control plane, expiry and DeleteBackupRequests, a controller killed mid-backup, and the refusal
# to run next to a Velero server. (What is inside an archive is t_backup.sh's subject.)

# eng_env NAME: a fresh control plane with kcm-system and a kcm fixture; S3 prefix unique to it
eng_env() {
  ENG_ENV=eng-${1:0:30}
  trap 'ctl_stop_all; "$REPO/scripts/testenv" down --name "$ENG_ENV" >/dev/null 2>&1' EXIT
  eval "$("$REPO/scripts/testenv" up --name "$ENG_ENV" 2>/dev/null)"
  kubectl create namespace kcm-system >/dev/null
  "$REPO/scripts/fixture" --cluster-deployments "${CDS:-5}" --extra 10 2>/dev/null
  PREFIX=$ENG_ENV-$RANDOM$RANDOM
}

# s3_bsl NAME [SECRET_KEY]: a default BSL on the shared RGW under this test's prefix
s3_bsl() { s3_location "$1" "$KCMDR_S3_BUCKET" "$PREFIX" true "" "${2:-}"; }

s3() { aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 "$@"; }
phase() { kubectl -n kcm-system get backup "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
wait_phase() { wait_until "${3:-60}" sh -c "[ \"\$(kubectl -n kcm-system get backup $1 -o jsonpath='{.status.phase}')\" = $2 ]"; }
on_demand() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: $1}
spec: {storageLocation: ${2:-}}
YAML
}
# scheduled NAME SCHEDULE: a ManagementBackup with that schedule (the default location)
scheduled() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: $1}
spec: {schedule: "$2"}
YAML
}

test_engine_filesystem_location_completes() {
  eng_env fs
  mkdir -p store
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: local, namespace: kcm-system}
spec: {provider: filesystem, default: true, objectStorage: {bucket: b}, config: {path: $PWD/store}, validationFrequency: 2s}
YAML
  start_controller ctl.log --engine=builtin
  on_demand fs-backup
  wait_phase fs-backup Completed
  wait_until 10 sh -c "kubectl get mgmtbackup fs-backup -o json | jq -e '.status.lastBackup.phase == \"Completed\"'"
  d=store/backups/fs-backup
  for f in velero-backup.json fs-backup.tar.gz fs-backup-logs.gz fs-backup-resource-list.json.gz fs-backup-results.gz fs-backup-checksums.json; do
    [ -s "$d/$f" ] || fail "$d/$f missing"
  done
  assert_eq "metadata/version" "$(tar -tzf $d/fs-backup.tar.gz | sed -n 1p)" "first entry"
  b=$(kubectl -n kcm-system get backup fs-backup -o json)
  assert_eq "local" "$(jq -r '.metadata.labels["velero.io/storage-location"]' <<<"$b")" "storage-location label"
  assert_eq "1.1.0" "$(jq -r .status.formatVersion <<<"$b")" "formatVersion"
  n=$(jq -r .status.progress.itemsBackedUp <<<"$b")
  [ "$n" -gt 100 ] || fail "only $n items backed up"
  # the objects count twice in the tarball (plain and preferred-version path), plus metadata/version
  assert_eq $((2 * n + 1)) "$(tar -tzf $d/fs-backup.tar.gz | grep -vc '/$')" "tarball entries"
  assert_eq "Available" "$(kubectl -n kcm-system get bsl local -o jsonpath='{.status.phase}')" "BSL validated"
  # tried: a stray top-level file is harmless (Velero checks folders only); a foreign top-level
  # folder makes the location Unavailable, naming it
  echo "notes" > store/README
  t0=$(kubectl -n kcm-system get bsl local -o jsonpath='{.status.lastValidationTime}')
  sleep 1 # lastValidationTime has whole seconds: the next validation is then surely newer
  wait_until 15 sh -c "[ \"\$(kubectl -n kcm-system get bsl local -o jsonpath='{.status.lastValidationTime}')\" \> '$t0' ]"
  assert_eq "Available" "$(kubectl -n kcm-system get bsl local -o jsonpath='{.status.phase}')" "a stray file"
  mkdir -p store/junk && echo x > store/junk/x
  wait_until 15 sh -c "kubectl -n kcm-system get bsl local -o json | jq -e '.status.phase == \"Unavailable\" and (.status.message | test(\"junk\"))'"
  rm -rf store/junk store/README
  wait_until 15 sh -c "kubectl -n kcm-system get bsl local -o json | jq -e '.status.phase == \"Available\"'"
  # tried: a second Backup with the same name in the bucket (its object deleted, files kept) is
  # refused, and the first one's files stay as they were
  sum=$(sha256sum $d/fs-backup.tar.gz)
  kubectl -n kcm-system delete backup fs-backup >/dev/null
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: velero.io/v1
kind: Backup
metadata: {name: fs-backup, namespace: kcm-system}
spec: {storageLocation: local, includedNamespaces: ["*"]}
YAML
  wait_phase fs-backup FailedValidation 30
  assert_eq "$sum" "$(sha256sum $d/fs-backup.tar.gz)" "the old backup is untouched"
}

test_engine_s3_location_wrong_key_then_fixed() {
  eng_env s3
  s3_bsl rgw not-the-secret
  start_controller ctl.log --engine=builtin
  # tried: a wrong secret key -> the location is Unavailable with a clear message, the backup
  # fails validation, and the secret never shows in status, Events or logs
  wait_until 30 sh -c "kubectl -n kcm-system get bsl rgw -o json | jq -e '.status.phase == \"Unavailable\"'"
  msg=$(kubectl -n kcm-system get bsl rgw -o jsonpath='{.status.message}')
  assert_contains "$msg" "SignatureDoesNotMatch" "BSL message"
  on_demand early
  wait_phase early FailedValidation 30
  grep -q "$AWS_SECRET_ACCESS_KEY" ctl.log && fail "the secret key is in the log"
  grep -q "not-the-secret" ctl.log && fail "the wrong secret key is in the log"
  # fixed: the next validation makes it Available; a new backup completes into the bucket
  s3_bsl rgw
  wait_until 30 sh -c "kubectl -n kcm-system get bsl rgw -o json | jq -e '.status.phase == \"Available\"'"
  on_demand later
  wait_phase later Completed
  s3 ls "s3://$KCMDR_S3_BUCKET/$PREFIX/backups/later/" > ls.txt
  for f in velero-backup.json later.tar.gz later-checksums.json; do assert_contains "$(cat ls.txt)" "$f" "object $f"; done
  if s3 ls "s3://$KCMDR_S3_BUCKET/$PREFIX/backups/early/" >/dev/null 2>&1; then fail "a failed validation wrote files"; fi
}

test_engine_sync_expiry_and_delete_requests() {
  eng_env sync
  s3_bsl rgw
  start_controller a.log --engine=builtin
  on_demand keep
  on_demand drop
  wait_phase keep Completed
  wait_phase drop Completed
  # a second control plane (the seed's clean install) with the same location: the backups
  # appear by sync, with the status the location recorded
  kill "$CTL_PID"
  A_KUBECONFIG=$KUBECONFIG
  eval "$("$REPO/scripts/testenv" up --name "$ENG_ENV-b" 2>/dev/null)"
  trap 'ctl_stop_all; "$REPO/scripts/testenv" down --name "$ENG_ENV" >/dev/null 2>&1; "$REPO/scripts/testenv" down --name "$ENG_ENV-b" >/dev/null 2>&1' EXIT
  kubectl create namespace kcm-system >/dev/null
  s3_bsl rgw
  start_controller b.log --engine=builtin
  wait_until 30 kubectl -n kcm-system get backup keep
  wait_until 10 sh -c "kubectl -n kcm-system get backup keep -o json | jq -e '.status.phase == \"Completed\" and .spec.storageLocation == \"rgw\"'"
  # a DeleteBackupRequest removes the files, then the object (here, in B)
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: velero.io/v1
kind: DeleteBackupRequest
metadata: {name: drop-now, namespace: kcm-system}
spec: {backupName: drop}
YAML
  wait_until 30 sh -c "kubectl -n kcm-system get deletebackuprequest drop-now -o json | jq -e '.status.phase == \"Processed\"'"
  if kubectl -n kcm-system get backup drop >/dev/null 2>&1; then fail "the deleted Backup object is still there"; fi
  [ -z "$(s3 ls "s3://$KCMDR_S3_BUCKET/$PREFIX/backups/drop/" 2>/dev/null)" ] || fail "files of the deleted backup remain"
  # back in A, whose object is still there: the sync removes a Backup whose files are gone
  export KUBECONFIG=$A_KUBECONFIG
  start_controller a2.log --engine=builtin
  wait_until 30 sh -c "! kubectl -n kcm-system get backup drop >/dev/null 2>&1"
  # expiry: a Backup past its expiration gets a DeleteBackupRequest and goes, files first
  kubectl_status -n kcm-system patch backup keep --type=merge -p '{"status":{"expiration":"2001-01-01T00:00:00Z"}}' >/dev/null
  wait_until 90 sh -c "! kubectl -n kcm-system get backup keep >/dev/null 2>&1"
  [ -z "$(s3 ls "s3://$KCMDR_S3_BUCKET/$PREFIX/backups/keep/" 2>/dev/null)" ] || fail "files of the expired backup remain"
}

test_engine_killed_mid_backup_is_failed_on_restart() {
  CDS=300 eng_env kill
  mkdir -p store
  rs_fs_bsl local "$PWD/store"
  scheduled tick "@every 10s"
  start_controller ctl.log --engine=builtin
  # tried: the controller is killed while a backup is InProgress
  wait_until 30 sh -c "kubectl -n kcm-system get backups -o json | jq -e '[.items[] | select(.status.phase == \"InProgress\")] | length > 0'"
  victim=$(kubectl -n kcm-system get backups -o json | jq -r '.items[] | select(.status.phase == "InProgress") | .metadata.name' | sed -n 1p)
  kill -9 "$CTL_PID"
  [ "$(phase "$victim")" = Completed ] && { echo "    (the backup finished before the kill; nothing to recover)"; return 0; }
  start_controller ctl2.log --engine=builtin
  wait_phase "$victim" Failed 30
  [ ! -e "store/backups/$victim/velero-backup.json" ] || fail "a killed backup looks complete"
  # the schedule goes on: the next backup completes
  wait_until 60 sh -c "kubectl -n kcm-system get backups -o json | jq -e '[.items[] | select(.status.phase == \"Completed\")] | length > 0'"
}

test_engine_refuses_to_race_a_velero_server() {
  eng_env velero
  kubectl -n kcm-system create deployment velero --image=velero/velero:v1.15.0 >/dev/null
  # tried: --engine=builtin next to a running Velero server -> exit 1 with the reason
  expect_exit 1 timeout 30 "$KCMDR" controller --engine=builtin
  assert_contains "$OUT" "Velero server" "refusal"
  # auto picks velero there: the Backup is left to Velero (stays without a phase)
  start_controller ctl.log --engine=auto
  grep -q "it executes the Backups" ctl.log || fail "auto did not choose velero: $(head -3 ctl.log)"
  expect_exit 2 "$KCMDR" controller --engine=nonsense
}
