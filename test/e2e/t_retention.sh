# t_retention.sh — keep the last N (annotation kcmdr.io/keep-last on a ManagementBackup): the
# controller asks for the deletion of a schedule's older backups through DeleteBackupRequests.
# Uses start_controller / ctl_env / velero_sets of t_controller.sh and eng_env / s3_bsl of
# t_engine.sh (the runner sources every t_*.sh).

dbrs_for() { # the backup names that DeleteBackupRequests ask for, sorted, one per request
  kubectl -n kcm-system get deletebackuprequests -o json | jq -r '.items[].spec.backupName' | sort
}

# tried: a schedule of @every 5s with keep-last 2, the test playing Velero: six backups in turn,
# the 2nd Failed, the others Completed; a Restore (InProgress) reads the 1st. Then the restore
# ends. Asserted: requests exactly for the 2nd (failed, older than the newest success), 3rd and
# 4th; none for the newest two, none for the one being restored until its restore has ended;
# one request per backup however often the controller looks, named <backup>-<uid>; a bad
# annotation is a Warning Event and deletes nothing.
test_controller_keep_last_asks_for_the_right_deletions() {
  ctl_env
  # (--restore-hold 0: by default no slot starts while the Restore below runs, and this test needs
  # backups made while a Restore reads one, as after the hold's hour or with the rule off)
  start_controller ctl.log --restore-hold 0
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: tick, annotations: {kcmdr.io/keep-last: "two"}}
spec: {schedule: "@every 5s"}
YAML
  local names=() b i
  for i in 1 2 3 4 5 6; do
    wait_until 20 sh -c "[ \"\$(kubectl -n kcm-system get backups --no-headers 2>/dev/null | wc -l)\" -ge $i ]"
    b=$(backups | tail -1)
    names+=("$b")
    if [ "$i" = 1 ]; then
      kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: Restore
metadata: {name: reading, namespace: kcm-system}
spec: {backupName: $b}
YAML
      kubectl_status -n kcm-system patch restore reading --type=merge -p '{"status":{"phase":"InProgress"}}' >/dev/null
    fi
    if [ "$i" = 2 ]; then velero_sets "$b" Failed; else velero_sets "$b" Completed; fi
    if [ "$i" = 3 ]; then
      # a careless annotation: a Warning, nothing deleted; then the right one
      wait_until 15 sh -c "kubectl -n default get events --field-selector reason=InvalidKeepLast -o name | grep -q ."
      assert_eq "" "$(dbrs_for)" "requests under an invalid annotation"
      kubectl annotate --overwrite managementbackup tick kcmdr.io/keep-last=2 >/dev/null
    fi
  done
  local want
  want=$(printf '%s\n' "${names[1]}" "${names[2]}" "${names[3]}" | sort)
  wait_until 20 sh -c "[ \"\$(kubectl -n kcm-system get deletebackuprequests --no-headers 2>/dev/null | wc -l)\" -ge 3 ]"
  looked_at ctl.log tick
  looked_at ctl.log tick
  assert_eq "$want" "$(dbrs_for)" "backups asked for deletion (keep 2, 1st being restored)"
  kubectl -n kcm-system get deletebackuprequests -o json |
    jq -e --arg b "${names[2]}" '[.items[] | select(.spec.backupName == $b) | .metadata.labels["velero.io/backup-uid"]] | length == 1 and .[0] != null' >/dev/null ||
    fail "the request carries no uid label"
  # named after the Backup's uid, so that two askers (replicas, a deposed leader) make one request
  kubectl -n kcm-system get deletebackuprequests -o json |
    jq -e '[.items[] | select(.metadata.name != .spec.backupName + "-" + .metadata.labels["velero.io/backup-uid"])] | length == 0' >/dev/null ||
    fail "a request is not named <backup>-<uid>"
  # the restore ends: the 1st may go now
  kubectl_status -n kcm-system patch restore reading --type=merge -p '{"status":{"phase":"Completed"}}' >/dev/null
  looked_at ctl.log tick
  want=$(printf '%s\n' "${names[0]}" "${names[1]}" "${names[2]}" "${names[3]}" | sort)
  wait_until 15 sh -c "[ \"\$(kubectl -n kcm-system get deletebackuprequests --no-headers 2>/dev/null | wc -l)\" -ge 4 ]"
  assert_eq "$want" "$(dbrs_for)" "backups asked for deletion after the restore ended"
}

# tried: the same with kcmdr's builtin engine and a real bucket: @every 5s, keep-last 2.
# Asserted: the first backups go, objects
# and files, while the schedule keeps running; at most 2 successful ones (plus the one just
# finishing) remain; the newest Completed one verifies.
test_engine_keep_last_deletes_old_backups_and_files() {
  eng_env keep
  s3_bsl default
  start_controller ctl.log --engine=builtin
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: tick, annotations: {kcmdr.io/keep-last: "2"}}
spec: {schedule: "@every 5s", storageLocation: default}
YAML
  wait_until 60 sh -c "[ \"\$(kubectl -n kcm-system get backups -o json | jq '[.items[] | select(.status.phase == \"Completed\")] | length')\" -ge 1 ]"
  local first; first=$(backups | head -1)
  wait_until 120 sh -c "! kubectl -n kcm-system get backup $first >/dev/null 2>&1"
  assert_eq "" "$(s3 ls "s3://$KCMDR_S3_BUCKET/$PREFIX/backups/$first/" 2>/dev/null)" "files of $first after keep-last deleted it"
  local ok
  ok=$(kubectl -n kcm-system get backups -o json | jq '[.items[] | select(.status.phase == "Completed" or .status.phase == "PartiallyFailed")] | length')
  [ "$ok" -le 3 ] || fail "$ok successful backups remain with keep-last 2"
  local newest
  newest=$(kubectl -n kcm-system get backups -o json | jq -r '[.items[] | select(.status.phase == "Completed")] | sort_by(.metadata.name) | last | .metadata.name')
  "$KCMDR" backup verify "$newest" -n kcm-system >/dev/null || fail "$newest does not verify"
}
