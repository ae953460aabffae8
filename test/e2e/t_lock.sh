# t_lock.sh — S3 Object Lock (BSL annotations kcmdr.io/object-lock, kcmdr.io/object-lock-days) on
# the real Ceph gateway: a bucket created with object lock enabled, a backup large enough for a
# multipart upload, every file locked until the backup's date, tampering with the location's own
# credentials, verify and restore afterwards, deletion refused before the date, and locations
# that cannot lock. (Uses eng_env, start_controller and on_demand of t_engine.sh/t_controller.sh, lock_bsl of lib.sh.)

s3api() { aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3api "$@"; }

bsl_is() { kubectl -n kcm-system get bsl "$1" -o json | jq -e --arg p "$2" --arg m "$3" '.status.phase == $p and ((.status.message // "") | contains($m))'; }

# head_lock KEY: "MODE RETAIN-UNTIL(seconds precision)" of the current version of KEY
head_lock() { s3api head-object --bucket "$LOCK_BUCKET" --key "$1" | jq -r '"\(.ObjectLockMode) \(.ObjectLockRetainUntilDate[0:19])"'; }

# tried: a location with object lock GOVERNANCE and 1 day on a bucket created with object lock;
# a 30-day backup big enough (~11 MB of random ConfigMap data) to go up in a multipart upload,
# and a 1-hour backup. Asserted: every file of both is locked GOVERNANCE until the later of its
# expiration and start + 1 day (the tarball too, although the gateway drops the lock headers of a
# multipart upload: kcmdr sets it again); with the location's own credentials, deleting the
# tarball's version is refused by the gateway; an overwrite of the tarball and a delete marker on
# the results file change nothing: `backup verify` still passes and a restore brings a deleted
# ConfigMap back byte for byte; `backup delete` before the date keeps the Backup Completed and
# its files, and the DeleteBackupRequest says until when. Two locations that cannot lock (a
# bucket without object lock; a lower-case mode) are Unavailable and say why.
# Also tried: a 1-minute backup on a location without days (its files locked for that minute),
# whose tarball's retention is then extended by one day with the location's own credentials
# (anyone may extend one), deleted after the minute. Asserted: the deletion is refused naming the
# tarball and its later date; the Backup stays Completed and velero-backup.json stays the current
# version (deleting it first, as deletion does, would have left a half-deleted backup: before
# the fix only velero-backup.json's retention was asked, and the rest went behind delete markers).
test_engine_lock_backup_written_once_survives_tampering() {
  CDS=2 eng_env lock
  LOCK_BUCKET=kcmdr-lock-$RANDOM$RANDOM
  s3api create-bucket --bucket "$LOCK_BUCKET" --object-lock-enabled-for-bucket >/dev/null
  for i in 1 2 3 4 5 6 7 8; do
    head -c 675000 /dev/urandom | base64 -w0 > blob$i
    kubectl -n kcm-system create configmap "blob$i" --from-file=blob="blob$i" >/dev/null
    kubectl -n kcm-system label configmap "blob$i" k0rdent.mirantis.com/component=kcm lock-test=blob >/dev/null
  done
  kubectl -n kcm-system label configmap blob1 lock-small=yes >/dev/null
  lock_bsl locked "$LOCK_BUCKET" "$PREFIX" GOVERNANCE 1 true
  lock_bsl nolock "$KCMDR_S3_BUCKET" "$PREFIX" COMPLIANCE
  lock_bsl badval "$LOCK_BUCKET" "$PREFIX" compliance
  lock_bsl minlock "$LOCK_BUCKET" "$PREFIX" GOVERNANCE
  start_controller ctl.log --engine=builtin
  wait_until 30 bsl_is nolock Unavailable "has no object lock (ObjectLockConfigurationNotFoundError)"
  wait_until 30 bsl_is badval Unavailable "annotation kcmdr.io/object-lock 'compliance' must be COMPLIANCE or GOVERNANCE"
  wait_until 30 bsl_is locked Available ""
  on_demand big locked
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: velero.io/v1
kind: Backup
metadata: {name: short, namespace: kcm-system}
spec: {storageLocation: locked, ttl: 1h0m0s, labelSelector: {matchLabels: {lock-small: "yes"}}}
YAML
  wait_until 30 bsl_is minlock Available ""
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: velero.io/v1
kind: Backup
metadata: {name: ext, namespace: kcm-system}
spec: {storageLocation: minlock, ttl: 1m0s, labelSelector: {matchLabels: {lock-small: "yes"}}}
YAML
  wait_phase ext Completed 60
  ext_start=$(date +%s)
  later=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%S)
  etar=$PREFIX/backups/ext/ext.tar.gz
  ev=$(s3api head-object --bucket "$LOCK_BUCKET" --key "$etar" | jq -r .VersionId)
  s3api put-object-retention --bucket "$LOCK_BUCKET" --key "$etar" --version-id "$ev" \
    --retention "{\"Mode\":\"GOVERNANCE\",\"RetainUntilDate\":\"${later}Z\"}"
  assert_eq "GOVERNANCE $later" "$(head_lock "$etar")" "the tarball's retention extended"
  wait_phase big Completed 90
  wait_phase short Completed 60

  # every file locked until the backup's date: 30-day expiration beats 1 day; 1 hour does not
  exp=$(kubectl -n kcm-system get backup big -o jsonpath='{.status.expiration}')
  start=$(kubectl -n kcm-system get backup short -o jsonpath='{.status.startTimestamp}')
  short_until=$(date -u -d "$start + 1 day" +%Y-%m-%dT%H:%M:%S)
  for b in big short; do
    want="GOVERNANCE ${exp:0:19}"; [ $b = short ] && want="GOVERNANCE $short_until"
    keys=$(s3api list-objects-v2 --bucket "$LOCK_BUCKET" --prefix "$PREFIX/backups/$b/" | jq -r '.Contents[].Key')
    assert_eq 7 "$(wc -l <<<"$keys")" "files of backup $b (claim, tarball, logs, list, results, checksums, metadata)"
    for k in $keys; do assert_eq "$want" "$(head_lock "$k")" "lock of $k"; done
  done
  tar=$PREFIX/backups/big/big.tar.gz
  etag=$(s3api head-object --bucket "$LOCK_BUCKET" --key "$tar" | jq -r .ETag)
  case $etag in *-[2-9]\"|*-[1-9][0-9]\") ;; *) fail "the tarball was not a multipart upload (ETag $etag)";; esac

  # tampering with the location's own credentials
  v=$(s3api head-object --bucket "$LOCK_BUCKET" --key "$tar" | jq -r .VersionId)
  expect_exit 255 s3api delete-object --bucket "$LOCK_BUCKET" --key "$tar" --version-id "$v"
  assert_contains "$OUT" "AccessDenied" "deleting a locked version"
  echo junk > junk
  s3api put-object --bucket "$LOCK_BUCKET" --key "$tar" --body junk >/dev/null
  s3api delete-object --bucket "$LOCK_BUCKET" --key "$PREFIX/backups/big/big-results.gz" >/dev/null
  assert_eq 5 "$(s3api head-object --bucket "$LOCK_BUCKET" --key "$tar" | jq -r .ContentLength)" "the overwrite is the current version"
  expect_exit 0 "$KCMDR" backup verify big
  assert_contains "$OUT" "Verified: every file of backup big matches its checksum" "verify after tampering"
  sum=$(kubectl -n kcm-system get configmap blob3 -o jsonpath='{.data.blob}' | sha256sum)
  kubectl -n kcm-system delete configmap blob3 >/dev/null
  expect_exit 0 timeout 120 "$KCMDR" restore create --from-backup big --wait
  assert_eq "$sum" "$(kubectl -n kcm-system get configmap blob3 -o jsonpath='{.data.blob}' | sha256sum)" "restored ConfigMap"

  # deletion before the date: refused, Backup and files kept whole
  expect_exit 0 "$KCMDR" backup delete short --confirm
  wait_until 30 sh -c "kubectl -n kcm-system get deletebackuprequests -o json | jq -e '[.items[] | select(.spec.backupName == \"short\" and .status.phase == \"Processed\")] | length == 1'"
  err=$(kubectl -n kcm-system get deletebackuprequests -o json | jq -r '.items[] | select(.spec.backupName == "short") | .status.errors[0]')
  assert_contains "$err" "backup short is protected by S3 Object Lock (GOVERNANCE) until ${short_until}Z" "DeleteBackupRequest error"
  assert_eq Completed "$(phase short)" "the Backup is kept as it was"
  assert_eq "GOVERNANCE $short_until" "$(head_lock "$PREFIX/backups/short/velero-backup.json")" "velero-backup.json still there"

  # one file retained longer than the others: the deletion waits for the latest date
  sleep $((ext_start + 65 - $(date +%s) > 0 ? ext_start + 65 - $(date +%s) : 0))
  expect_exit 0 "$KCMDR" backup delete ext --confirm
  want="backup ext is protected by S3 Object Lock (GOVERNANCE) until ${later}Z (backups/ext/ext.tar.gz)"
  wait_until 30 sh -c "kubectl -n kcm-system get deletebackuprequests -o json | jq -e --arg w '$want' '[.items[] | select(.spec.backupName == \"ext\" and .status.phase == \"Processed\" and ((.status.errors // [])[0] // \"\" | contains(\$w)))] | length >= 1'"
  assert_eq Completed "$(phase ext)" "the Backup with a longer-retained file is kept"
  expect_exit 0 s3api head-object --bucket "$LOCK_BUCKET" --key "$PREFIX/backups/ext/velero-backup.json"
  keys=$(s3api list-objects-v2 --bucket "$LOCK_BUCKET" --prefix "$PREFIX/backups/ext/" | jq -r '.Contents[].Key')
  assert_eq 7 "$(wc -l <<<"$keys")" "every file of backup ext is still current"
}
