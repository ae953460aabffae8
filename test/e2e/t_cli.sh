# t_cli.sh — the operator CLI (`kcmdr backup ...`, `kcmdr restore ...`) on real servers: backups
# made by `kcmdr controller --engine=builtin` into a filesystem location, their files checked with
# tar, zcat, stat and jq; Restores compared with the seed's; restore progress driven through the
# status subresource as an engine would write it (restore execution is t_restore.sh's subject).

# cli_env NAME: a control plane of its own with kcm-system and a default filesystem location
# "local" in ./store; sets KUBECONFIG for it.
cli_env() {
  CLI_ENV=cli-${1:0:30}
  trap 'ctl_stop_all; "$REPO/scripts/testenv" down --name "$CLI_ENV" >/dev/null 2>&1' EXIT
  eval "$("$REPO/scripts/testenv" up --name "$CLI_ENV" 2>/dev/null)"
  export KUBECONFIG
  kubectl create namespace kcm-system >/dev/null
  mkdir -p store
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: local, namespace: kcm-system}
spec: {provider: filesystem, default: true, objectStorage: {bucket: b}, config: {path: $PWD/store}, validationFrequency: 2s}
YAML
}

# cli_env_engine NAME CDS EXTRA: cli_env NAME with the fixture's objects (CDS ClusterDeployments,
# EXTRA more objects) and kcmdr controller --engine=builtin running (CTL_PID)
cli_env_engine() {
  cli_env "$1"
  "$REPO/scripts/fixture" --cluster-deployments "$2" --extra "$3" 2>/dev/null
  start_controller ctl.log --engine=builtin
}

# cli_backup_object NAME [BSL]: a Completed Velero Backup object as a sync would create it (no
# engine needed to restore "from" it)
cli_backup_object() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: Backup
metadata: {name: $1, namespace: kcm-system, labels: {velero.io/storage-location: ${2:-local}}}
spec: {storageLocation: ${2:-local}, includedNamespaces: ["*"], ttl: 720h0m0s}
YAML
  kubectl_status -n kcm-system patch backup "$1" --type=merge \
    -p '{"status":{"phase":"Completed","version":1,"formatVersion":"1.1.0","progress":{"totalItems":3,"itemsBackedUp":3}}}' >/dev/null
}

# cli_status KIND NAME JSON: write status as an engine does (merge patch on the subresource)
cli_status() { kubectl_status -n kcm-system patch "$1" "$2" --type=merge -p "{\"status\":$3}" >/dev/null; }

# the seed's Restore (disaster-recovery.md, "A Restore object"), spec only, as JSON
CLI_SEED_RESTORE_SPEC='{"backupName":"BACKUP","excludedResources":["nodes","events","events.events.k8s.io","backups.velero.io","restores.velero.io","resticrepositories.velero.io","csinodes.storage.k8s.io","volumeattachments.storage.k8s.io","backuprepositories.velero.io"],"existingResourcePolicy":"update","hooks":{},"includedNamespaces":["*"]}'

test_cli_backup_create_get_describe_logs() {
  cli_env_engine create 3 5
  # the seed's on-demand example, made by the CLI; --wait returns when it has ended
  expect_exit 0 "$KCMDR" backup create example-backup --storage-location local --wait
  assert_contains "$OUT" "Backup example-backup ended: Completed" "create --wait"
  assert_eq '{"storageLocation":"local"}' "$(kubectl get managementbackup example-backup -o json | jq -c .spec)" "ManagementBackup spec"
  b=$(kubectl -n kcm-system get backup example-backup -o json)
  assert_eq Completed "$(jq -r .status.phase <<<"$b")" "the Backup had ended when --wait returned"
  n=$(jq -r .status.progress.itemsBackedUp <<<"$b")
  [ "$n" -gt 50 ] || fail "only $n items"
  assert_contains "$OUT" "($n items, 0 warnings, 0 errors)" "create --wait summary"

  # get: the table, its header, and the row
  expect_exit 0 "$KCMDR" backup get
  assert_eq "NAME STATUS ERRORS WARNINGS ITEMS CREATED EXPIRES STORAGE LOCATION SCHEDULE" "$(sed -n 1p <<<"$OUT" | tr -s ' ')" "header"
  row=$(grep '^example-backup ' <<<"$OUT" | tr -s ' ')
  created=$(date -u -d "$(jq -r .metadata.creationTimestamp <<<"$b")" '+%Y-%m-%d %H:%M:%S +0000 UTC')
  # EXPIRES is the time left of the 720h ttl in whole days: 30d when get runs within the second
  # the backup started, 29d after that
  case $row in
    "example-backup Completed 0 0 $n $created 29d local <none>"|"example-backup Completed 0 0 $n $created 30d local <none>") ;;
    *) fail "get row: got '$row'" ;;
  esac
  expect_exit 0 "$KCMDR" backup get -o wide
  assert_contains "$(sed -n 1p <<<"$OUT")" "MANAGEMENTBACKUP" "wide header"
  # -o json is the object as the server has it (kubectl's view, managedFields aside)
  "$KCMDR" backup get example-backup -o json | jq -S . > got.json
  kubectl -n kcm-system get backup example-backup -o json | jq -S 'del(.metadata.managedFields)' > want.json
  cmp -s got.json want.json || fail "get -o json differs: $(diff got.json want.json | head)"
  # tried: strings YAML would read as another type or cannot write plainly; -o yaml must read
  # back (YAML 1.1, PyYAML) as exactly the JSON
  kubectl -n kcm-system patch backup example-backup --type=merge -p '{"metadata":{"annotations":{
    "a/bool":"true","a/no":"no","a/null":"null","a/num":"0755","a/float":"1e3","a/neg":"-1","a/colon":"a: b",
    "a/dash":"- x","a/hash":"#c","a/multi":"one\ntwo\n","a/quote":"it'"'"'s \"q\"","a/empty":"","a/utf8":"ünï ☃",
    "a/nul":"x\u0000y","a/tab":"\tt","a/star":"*","a/amp":"&a","a/brace":"{x}","a/tilde":"~","a/date":"2025-01-17"}}}' >/dev/null
  "$KCMDR" backup get example-backup -o yaml > got.yaml
  "$KCMDR" backup get example-backup -o json > got.json
  python3 - got.yaml got.json <<'PY' || fail "-o yaml does not read back as the JSON"
import json, sys, yaml
y = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
j = json.load(open(sys.argv[2], encoding="utf-8"))
if y != j:
    for k in j["metadata"].get("annotations", {}):
        if y["metadata"]["annotations"].get(k) != j["metadata"]["annotations"][k]:
            print("differs:", k, repr(y["metadata"]["annotations"].get(k)), repr(j["metadata"]["annotations"][k]))
    sys.exit(1)
PY

  # describe: phase, items, selectors summarised, files with their sizes as stored, verification
  expect_exit 0 "$KCMDR" backup describe example-backup
  assert_contains "$OUT" "Phase:  Completed" "describe phase"
  assert_contains "$OUT" "Items backed up:              $n" "describe items"
  sels=$(jq '.spec.orLabelSelectors | length' <<<"$b")
  assert_contains "$OUT" "Or label selectors:  $sels selectors over 5 label keys" "selectors summary"
  assert_contains "$OUT" "helm.toolkit.fluxcd.io/name: 3 values: cd-00000, cd-00001, cd-00002" "selector values"
  assert_contains "$OUT" "Verification:  checksums file present (4 files listed)" "verification state"
  for f in velero-backup.json example-backup.tar.gz example-backup-logs.gz example-backup-resource-list.json.gz \
    example-backup-results.gz example-backup-checksums.json; do
    assert_contains "$OUT" "  $f " "describe lists $f"
  done
  "$KCMDR" backup describe example-backup -o json | jq -r '.files[] | "\(.key) \(.size)"' > got.txt
  (cd store && find backups/example-backup -type f -printf '%p %s\n' | sort) > want.txt
  cmp -s got.txt want.txt || fail "describe's files and sizes differ from the directory: $(diff got.txt want.txt)"

  # logs: the log file, decompressed, byte for byte
  "$KCMDR" backup logs example-backup > got.log
  zcat store/backups/example-backup/example-backup-logs.gz > want.log
  cmp -s got.log want.log || fail "backup logs differs from the stored log"
  [ -s got.log ] || fail "empty log"

  # create refuses what kcm would only report later in status.error, and creates nothing
  expect_exit 1 "$KCMDR" backup create other --storage-location nowhere
  assert_contains "$OUT" 'BackupStorageLocation "nowhere" not found in namespace kcm-system' "unknown location"
  if kubectl get managementbackup other >/dev/null 2>&1; then fail "a ManagementBackup was created for an unknown location"; fi
  expect_exit 1 "$KCMDR" backup create example-backup
  assert_contains "$OUT" "already exists" "existing name"
  expect_exit 2 "$KCMDR" backup create Bad_Name
  expect_exit 2 "$KCMDR" backup create nightly --schedule "61 * * * *"
  assert_contains "$OUT" '--schedule "61 * * * *"' "bad cron"
  expect_exit 2 "$KCMDR" backup create nightly --schedule "@every 3s" --wait
  if kubectl get managementbackup nightly >/dev/null 2>&1; then fail "a usage error created an object"; fi

  # a scheduled ManagementBackup: its name stands for its Backups
  expect_exit 0 "$KCMDR" backup create nightly --schedule "@every 3s"
  assert_eq '{"schedule":"@every 3s"}' "$(kubectl get managementbackup nightly -o json | jq -c .spec)" "scheduled spec"
  wait_until 60 sh -c "[ \$(kubectl -n kcm-system get backups -l k0rdent.mirantis.com/management-backup=nightly -o json | jq '[.items[] | select(.status.phase == \"Completed\")] | length') -ge 2 ]"
  kill "$CTL_PID" # nothing changes from here on
  wait "$CTL_PID" 2>/dev/null || true
  names=$(kubectl -n kcm-system get backups -l k0rdent.mirantis.com/management-backup=nightly -o json | jq -r '.items[].metadata.name' | sort)
  expect_exit 0 "$KCMDR" backup get nightly
  assert_eq "$names" "$(tail -n +2 <<<"$OUT" | awk '{print $1}')" "get NAME of a schedule lists its Backups"
  assert_eq "@every 3s" "$(tail -n +2 <<<"$OUT" | sed -n 1p | sed 's/.*local *//')" "SCHEDULE column"
  last=$(kubectl get managementbackup nightly -o jsonpath='{.status.lastBackupName}')
  expect_exit 0 "$KCMDR" backup describe nightly
  assert_contains "$OUT" "Schedule:          @every 3s" "describe of a schedule"
  assert_contains "$OUT" "Backups:           $(wc -l <<<"$names")" "its backups counted"
  assert_contains "$OUT" "Name:         $last" "its last backup described"
  "$KCMDR" backup logs nightly > got.log 2> err.txt
  zcat "store/backups/$last/$last-logs.gz" > want.log
  cmp -s got.log want.log || fail "logs of a schedule are not its last backup's"
  assert_contains "$(cat err.txt)" "its last backup is $last" "says which backup"

  # a backup that fails: --wait exits 1 and says how it ended
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: gone, namespace: kcm-system}
spec: {provider: filesystem, objectStorage: {bucket: b}, config: {path: $PWD/no-such-dir}, validationFrequency: 2s}
YAML
  start_controller ctl2.log --engine=builtin
  wait_until 20 sh -c "kubectl -n kcm-system get bsl gone -o jsonpath='{.status.phase}' | grep -qx Unavailable"
  expect_exit 1 timeout 60 "$KCMDR" backup create broken --storage-location gone --wait
  assert_contains "$OUT" "Backup broken ended: FailedValidation" "failed backup"
}

test_cli_backup_verify_catches_tampering() {
  cli_env_engine verify 2 5
  expect_exit 0 "$KCMDR" backup create v1 --wait
  kill "$CTL_PID" # its sync must not react to the files changed below
  wait "$CTL_PID" 2>/dev/null || true
  d=store/backups/v1
  n=$(kubectl -n kcm-system get backup v1 -o jsonpath='{.status.progress.itemsBackedUp}')
  cp -a "$d" good

  expect_exit 0 "$KCMDR" backup verify v1
  for f in v1.tar.gz v1-logs.gz v1-resource-list.json.gz v1-results.gz; do
    assert_contains "$OUT" "ok    backups/v1/$f: $(stat -c %s "$d/$f") bytes, SHA-256 $(sha256sum "$d/$f" | cut -c1-12)... as recorded" "$f checked"
  done
  assert_contains "$OUT" "tarball: $((2 * n + 1)) entries read, $n objects ($n preferred-version copies)" "tarball read"
  assert_contains "$OUT" "resource list: $n objects" "resource list compared"
  assert_contains "$OUT" "Verified: every file of backup v1 matches its checksum" "verdict"
  "$KCMDR" backup verify v1 -o json > report.json
  jq -e '.verified == true and (.problems | length) == 0 and .tarball.objects == '"$n" report.json >/dev/null || fail "report: $(cat report.json)"

  # tried: one byte of the tarball flipped in the location
  python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=0x20; open(p,'wb').write(b)" "$d/v1.tar.gz"
  expect_exit 1 "$KCMDR" backup verify v1
  assert_contains "$OUT" "FAIL  backups/v1/v1.tar.gz has SHA-256 $(sha256sum "$d/v1.tar.gz" | cut -d' ' -f1) but the checksums file records $(sha256sum good/v1.tar.gz | cut -d' ' -f1)" "flipped byte"
  assert_contains "$OUT" "FAILED: backup v1 has" "verdict"
  cp good/v1.tar.gz "$d/"
  # tried: the tarball cut short
  head -c $(($(stat -c %s good/v1.tar.gz) / 2)) good/v1.tar.gz > "$d/v1.tar.gz"
  expect_exit 1 "$KCMDR" backup verify v1
  assert_contains "$OUT" "the file was changed or cut" "truncated"
  assert_contains "$OUT" "the tarball cannot be read to its end" "truncated archive read"
  cp good/v1.tar.gz "$d/"
  # tried: a file missing; then the resource list changed
  rm "$d/v1-logs.gz"
  expect_exit 1 "$KCMDR" backup verify v1
  assert_contains "$OUT" "backups/v1/v1-logs.gz is missing" "missing file"
  [ "$(grep -c 'v1-logs.gz is missing' <<<"$OUT")" = 1 ] || fail "a missing file is reported more than once: $OUT"
  cp good/v1-logs.gz "$d/"
  (zcat good/v1-resource-list.json.gz; echo) | gzip -9 > "$d/v1-resource-list.json.gz" # the same list, other bytes
  expect_exit 1 "$KCMDR" backup verify v1
  assert_contains "$OUT" "FAIL  backups/v1/v1-resource-list.json.gz" "changed resource list"
  cp good/v1-resource-list.json.gz "$d/"
  expect_exit 0 "$KCMDR" backup verify v1

  # a backup as Velero writes it has no checksums file: said, and the rest still checked
  rm "$d/v1-checksums.json"
  expect_exit 0 "$KCMDR" backup verify v1
  assert_contains "$OUT" "cannot be verified: no checksums file (written by Velero?)" "Velero-written backup"
  assert_contains "$OUT" "resource list: $n objects" "still compared"
  expect_exit 1 "$KCMDR" backup verify v1 --require-checksums
  # tried (no checksums to catch it): an object in the tarball that is not JSON, and a resource
  # list that misses one object of the tarball
  python3 - good/v1.tar.gz "$d/v1.tar.gz" <<'PY'
import gzip, io, sys, tarfile
src = tarfile.open(sys.argv[1], "r:gz")
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
    done = False
    for m in src.getmembers():
        data = src.extractfile(m).read() if m.isfile() else None
        if not done and m.name.startswith("resources/") and "/namespaces/" in m.name and "preferredversion" not in m.name:
            data, done = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":', True
            m.size = len(data)
        dst.addfile(m, io.BytesIO(data) if data is not None else None)
open(sys.argv[2], "wb").write(gzip.compress(out.getvalue()))
PY
  expect_exit 1 "$KCMDR" backup verify v1
  assert_contains "$OUT" "not a JSON object" "broken object"
  cp good/v1.tar.gz "$d/"
  zcat good/v1-resource-list.json.gz | jq -c 'to_entries | .[0].value |= .[1:] | from_entries' | gzip > "$d/v1-resource-list.json.gz"
  expect_exit 1 "$KCMDR" backup verify v1
  assert_contains "$OUT" "which the resource list does not name" "object missing from the list"
  expect_exit 1 "$KCMDR" backup verify nothing-like-it
  assert_contains "$OUT" 'backup "nothing-like-it" not found' "unknown backup"
}

test_cli_backup_delete_asks_first() {
  cli_env_engine delete 1 2
  expect_exit 0 "$KCMDR" backup create d1 --wait
  expect_exit 0 "$KCMDR" backup create d2 --wait
  uid=$(kubectl -n kcm-system get backup d2 -o jsonpath='{.metadata.uid}')
  # tried: no terminal and no --confirm -> refused, nothing deleted
  expect_exit 2 "$KCMDR" backup delete d1 </dev/null
  assert_contains "$OUT" "pass --confirm" "refusal"
  kubectl -n kcm-system get backup d1 >/dev/null || fail "d1 was deleted without confirmation"
  [ -z "$(kubectl -n kcm-system get deletebackuprequests -o name)" ] || fail "a DeleteBackupRequest was made without confirmation"
  if command -v script >/dev/null; then
    # on a terminal: "n" keeps it, "y" deletes it
    echo n | script -qec "'$KCMDR' backup delete d1" /dev/null > tty.txt
    assert_contains "$(cat tty.txt)" "Delete backup d1 (files in the storage location and the object)? [y/N]" "question"
    assert_contains "$(cat tty.txt)" "Nothing deleted." "answer n"
    kubectl -n kcm-system get backup d1 >/dev/null || fail "d1 was deleted after answering n"
    echo y | script -qec "'$KCMDR' backup delete d1 --wait --timeout 60s" /dev/null > tty.txt
    assert_contains "$(cat tty.txt)" 'Backup "d1" deleted (files and object).' "answer y"
    [ ! -e store/backups/d1 ] || fail "files of d1 remain"
  fi
  expect_exit 0 "$KCMDR" backup delete d2 --confirm --wait --timeout 60s
  assert_contains "$OUT" 'Backup "d2" deleted (files and object).' "delete --confirm --wait"
  assert_contains "$OUT" 'ManagementBackup "d2", which made only this backup, deleted.' "one-shot ManagementBackup"
  if kubectl -n kcm-system get backup d2 >/dev/null 2>&1; then fail "Backup d2 remains"; fi
  if kubectl get managementbackup d2 >/dev/null 2>&1; then fail "ManagementBackup d2 remains"; fi
  [ ! -e store/backups/d2 ] || fail "files of d2 remain: $(ls store/backups/d2)"
  # the request is velero's: generateName <backup>-, labels backup-name and backup-uid
  dbr=$(kubectl -n kcm-system get deletebackuprequests -o json | jq -c '.items[] | select(.spec.backupName == "d2")')
  assert_eq "d2 $uid" "$(jq -r '"\(.metadata.labels["velero.io/backup-name"]) \(.metadata.labels["velero.io/backup-uid"])"' <<<"$dbr")" "request labels"
  [[ $(jq -r .metadata.name <<<"$dbr") == d2-????? ]] || fail "request name: $(jq -r .metadata.name <<<"$dbr")"
  # tried: names that are not backups
  expect_exit 1 "$KCMDR" backup delete no-such --confirm
  scheduled yearly "0 0 1 1 *"
  expect_exit 1 "$KCMDR" backup delete yearly --confirm
  assert_contains "$OUT" "is a scheduled ManagementBackup, not a backup" "schedule refused"
  kubectl get managementbackup yearly >/dev/null || fail "the schedule was deleted"
}

test_cli_restore_create_writes_the_seeds_restore() {
  cli_env restore
  cli_backup_object b1
  # the seed's Restore, with velero's default name <backup>-<YYYYMMDDhhmmss>
  expect_exit 0 "$KCMDR" restore create --from-backup b1 --existing-resource-policy update
  name=$(kubectl -n kcm-system get restores -o json | jq -r '.items[0].metadata.name')
  [[ $name =~ ^b1-[0-9]{14}$ ]] || fail "default name: $name"
  assert_contains "$OUT" "Restore request \"$name\" submitted successfully" "create message"
  assert_eq "$(jq -cS . <<<"${CLI_SEED_RESTORE_SPEC/BACKUP/b1}")" "$(kubectl -n kcm-system get restore "$name" -o json | jq -cS .spec)" "the seed's Restore"
  # a name of our own, no policy: the same without existingResourcePolicy (the engine's default is none)
  expect_exit 0 "$KCMDR" restore create mine --from-backup b1
  assert_eq "$(jq -cS 'del(.existingResourcePolicy)' <<<"${CLI_SEED_RESTORE_SPEC/BACKUP/b1}")" "$(kubectl -n kcm-system get restore mine -o json | jq -cS .spec)" "without policy"
  # velero's flags: namespaces, resources (the user's exclusions first), mappings, the modifier
  expect_exit 1 "$KCMDR" restore create rb --from-backup b1 --resource-modifier-configmap rollback
  assert_contains "$OUT" 'ConfigMap "rollback" not found in namespace kcm-system' "missing ConfigMap"
  kubectl -n kcm-system create configmap rollback --from-literal=rules.yaml='version: v1' >/dev/null
  "$KCMDR" restore create rb --from-backup b1 --existing-resource-policy update --resource-modifier-configmap rollback \
    --include-namespaces kcm-system,team-a --include-namespaces team-b --exclude-resources secrets,configmaps \
    --namespace-mappings team-a:team-z -o json > rb.json 2> err.txt || fail "restore create rb: $(cat err.txt)"
  assert_eq rb "$(jq -r .metadata.name rb.json)" "-o json prints the Restore"
  assert_contains "$(cat err.txt)" 'Restore request "rb" submitted successfully' "messages go to stderr with -o"
  spec=$(kubectl -n kcm-system get restore rb -o json | jq -c .spec)
  assert_eq '{"apiGroup":"","kind":"configmap","name":"rollback"}' "$(jq -cS .resourceModifier <<<"$spec")" "resourceModifier as velero's CLI writes it"
  assert_eq '["kcm-system","team-a","team-b"]' "$(jq -c .includedNamespaces <<<"$spec")" "includedNamespaces"
  assert_eq "$(jq -c '["secrets","configmaps"] + .excludedResources' <<<"${CLI_SEED_RESTORE_SPEC}")" "$(jq -c .excludedResources <<<"$spec")" "excludedResources"
  assert_eq '{"team-a":"team-z"}' "$(jq -c .namespaceMapping <<<"$spec")" "namespaceMapping"
  # a ManagementBackup's name means its last backup
  scheduled kcm "0 */6 * * *"
  kubectl patch managementbackup kcm --subresource=status --type=merge -p '{"status":{"lastBackupName":"b1"}}' >/dev/null
  expect_exit 0 "$KCMDR" restore create from-mb --from-backup kcm
  assert_eq b1 "$(kubectl -n kcm-system get restore from-mb -o jsonpath='{.spec.backupName}')" "from a ManagementBackup"
  # tried: what velero refuses, and names that exist already
  expect_exit 1 "$KCMDR" restore create --from-backup no-such
  assert_contains "$OUT" 'backup "no-such" not found in namespace kcm-system' "missing backup"
  expect_exit 1 "$KCMDR" restore create mine --from-backup b1
  assert_contains "$OUT" 'a Restore named "mine" already exists' "existing restore"
  expect_exit 2 "$KCMDR" restore create x --from-backup b1 --existing-resource-policy merge
  expect_exit 2 "$KCMDR" restore create x
  assert_contains "$OUT" "--from-backup BACKUP is required" "no backup"
  expect_exit 2 "$KCMDR" restore create x --from-backup b1 --namespace-mappings team-a
  n=$(kubectl -n kcm-system get restores -o name | wc -l)
  assert_eq 4 "$n" "restores created (failures and usage errors created none)"

  # global flags: the namespace is kcm-system whatever the context says; -n and --kubeconfig,
  # --context as kubectl
  kubectl config set-context --current --namespace=default >/dev/null
  expect_exit 0 "$KCMDR" restore get
  assert_contains "$OUT" "mine " "default namespace kcm-system"
  expect_exit 0 "$KCMDR" -n default restore get
  assert_contains "$OUT" "No restores found in namespace default." "-n"
  expect_exit 0 "$KCMDR" backup get -n default
  assert_contains "$OUT" "kcm " "a ManagementBackup (cluster-scoped) with no Backup in that namespace"
  expect_exit 0 "$KCMDR" backup get -n default -l no-such-label
  assert_contains "$OUT" "No backups found in namespace default." "nothing at all"
  expect_exit 0 "$KCMDR" restore get --namespace=kcm-system mine -o json
  assert_eq mine "$(jq -r .metadata.name <<<"$OUT")" "--namespace= and NAME -o json"
  expect_exit 0 env -u KUBECONFIG "$KCMDR" backup get --kubeconfig "$KUBECONFIG"
  assert_contains "$OUT" "b1 " "--kubeconfig"
  expect_exit 1 "$KCMDR" backup get --context no-such-context
  assert_contains "$OUT" "no-such-context" "--context"
  expect_exit 1 "$KCMDR" --kubeconfig "$PWD/missing-kubeconfig" restore get
  assert_contains "$OUT" "missing-kubeconfig" "--kubeconfig missing"
}

test_cli_restore_wait_progress_describe_logs() {
  cli_env wait
  cli_backup_object b1
  # play the engine: wait for the Restore, then write its progress and end
  engine_plays() { # NAME FINAL_STATUS_JSON [STEPS]
    local i steps=${3:-12}
    until kubectl -n kcm-system get restore "$1" >/dev/null 2>&1; do sleep 0.1; done
    cli_status restore "$1" "{\"phase\":\"InProgress\",\"startTimestamp\":\"$(date -u +%FT%TZ)\",\"progress\":{\"totalItems\":$((steps * 10)),\"itemsRestored\":0}}"
    for i in $(seq 1 "$steps"); do
      cli_status restore "$1" "{\"progress\":{\"totalItems\":$((steps * 10)),\"itemsRestored\":$((i * 10))}}"
      sleep 0.1
    done
    cli_status restore "$1" "$2"
  }
  engine_plays ok '{"phase":"Completed","completionTimestamp":"'"$(date -u +%FT%TZ)"'","warnings":0,"errors":0}' &
  t0=$SECONDS
  expect_exit 0 "$KCMDR" restore create ok --from-backup b1 --wait
  took=$((SECONDS - t0 + 1))
  wait
  assert_contains "$OUT" "Restore ok ended: Completed (120 of 120 items restored, 0 warnings, 0 errors)." "final line"
  # without a terminal: plain lines, a progress line at most once a second (plus phase changes)
  lines=$(grep -c '^Restore ok: InProgress, ' <<<"$OUT" || true)
  [ "$lines" -ge 1 ] && [ "$lines" -le $((took + 1)) ] || fail "$lines progress lines in ${took}s: $OUT"
  grep -q $'\r' <<<"$OUT" && fail "a progress bar without a terminal"

  engine_plays partial '{"phase":"PartiallyFailed","warnings":2,"errors":1,"completionTimestamp":"'"$(date -u +%FT%TZ)"'"}' 3 &
  expect_exit 1 "$KCMDR" restore create partial --from-backup b1 --wait
  wait
  assert_contains "$OUT" "Restore partial ended: PartiallyFailed (30 of 30 items restored, 2 warnings, 1 errors)." "PartiallyFailed"
  engine_plays failed '{"phase":"Failed","failureReason":"the tarball does not match its checksum"}' 1 &
  expect_exit 1 "$KCMDR" restore create failed --from-backup b1 --wait
  wait
  assert_contains "$OUT" "Failure reason: the tarball does not match its checksum" "failure reason"
  ( until kubectl -n kcm-system get restore invalid >/dev/null 2>&1; do sleep 0.1; done
    cli_status restore invalid '{"phase":"FailedValidation","validationErrors":["existingResourcePolicy must be none or update"]}' ) &
  expect_exit 1 "$KCMDR" restore create invalid --from-backup b1 --wait
  wait
  assert_contains "$OUT" "Validation error: existingResourcePolicy must be none or update" "validation errors"
  # tried: nobody executes the restore -> --timeout ends the wait with exit 1
  expect_exit 1 "$KCMDR" restore create stuck --from-backup b1 --wait --timeout 2s
  assert_contains "$OUT" "gave up waiting after 2 s" "timeout"
  # on a terminal: a bar redrawn in place
  if command -v script >/dev/null; then
    engine_plays tty '{"phase":"Completed"}' 4 &
    script -qec "'$KCMDR' restore create tty --from-backup b1 --wait" /dev/null > tty.txt
    wait
    grep -q $'\r\\[##############################\\] 100%  40/40 items restored' tty.txt || fail "no progress bar: $(od -c tty.txt | head -20)"
  fi

  # describe and get show what the engine wrote
  expect_exit 0 "$KCMDR" restore describe partial failed invalid
  assert_contains "$OUT" "Phase:                       PartiallyFailed" "describe phase"
  assert_contains "$OUT" "Items restored:              30" "describe progress"
  assert_contains "$OUT" $'Warnings:  2\nErrors:    1' "describe counts"
  assert_contains "$OUT" "Backup:  b1" "describe backup"
  assert_contains "$OUT" "Failure reason:  the tarball does not match its checksum" "describe failure reason"
  assert_contains "$OUT" $'Validation errors:\n  existingResourcePolicy must be none or update' "describe validation errors"
  expect_exit 0 "$KCMDR" restore get
  assert_eq "partial b1 PartiallyFailed 30/30 1 2" "$(grep '^partial ' <<<"$OUT" | tr -s ' ' | cut -d' ' -f1-6)" "get row"
  # logs and results come from the storage location of the restore's backup
  mkdir -p store/restores/ok
  printf 'time="2025-01-17T18:00:12Z" level=info msg="restore line \\u00fc"\nsecond line\n' > want.log
  gzip -c want.log > store/restores/ok/restore-ok-logs.gz
  echo '{"warnings":{"velero":[],"cluster":["a cluster warning"],"namespaces":{"team-a":["differs from the backup"]}},"errors":{}}' |
    gzip -c > store/restores/ok/restore-ok-results.gz
  "$KCMDR" restore logs ok > got.log
  cmp -s got.log want.log || fail "restore logs differs"
  expect_exit 0 "$KCMDR" restore describe ok
  assert_contains "$OUT" "Cluster:  a cluster warning" "results warnings"
  assert_contains "$OUT" "Namespace team-a:  differs from the backup" "results namespaced warnings"
  expect_exit 1 "$KCMDR" restore logs partial
  assert_contains "$OUT" "has no log file" "no log file"
  expect_exit 1 "$KCMDR" restore logs no-such
}

test_cli_usage_and_help() {
  expect_exit 0 "$KCMDR" --help
  assert_contains "$OUT" "  backup " "verbs list backup"
  assert_contains "$OUT" "  restore " "verbs list restore"
  for v in backup restore; do
    expect_exit 0 "$KCMDR" $v --help
    assert_contains "$OUT" "Subcommands:" "$v --help"
    expect_exit 2 "$KCMDR" $v
    assert_contains "$OUT" "Usage: kcmdr $v" "$v without a subcommand"
    expect_exit 2 "$KCMDR" $v frobnicate
    assert_contains "$OUT" "unknown subcommand 'frobnicate'" "$v frobnicate"
  done
  # every subcommand: --help explains each of its flags and gives an example
  for sub in "backup create:--storage-location --schedule --wait --timeout --output" "backup get:--selector --output" \
    "backup describe:--output" "backup logs:" "backup delete:--confirm --wait --timeout" "backup verify:--require-checksums --output" \
    "restore create:--from-backup --existing-resource-policy --resource-modifier-configmap --include-namespaces --exclude-namespaces --include-resources --exclude-resources --namespace-mappings --wait --timeout --output" \
    "restore get:--selector --output" "restore describe:--output" "restore logs:"; do
    cmd=${sub%%:*}
    expect_exit 0 "$KCMDR" $cmd --help
    assert_contains "$OUT" "Usage: kcmdr $cmd" "$cmd --help"
    assert_contains "$OUT" "Example" "$cmd --help example"
    assert_contains "$OUT" "--namespace NS" "$cmd --help -n"
    for f in ${sub#*:}; do assert_contains "$OUT" " $f " "$cmd --help explains $f"; done
    expect_exit 0 "$KCMDR" $cmd -h
    # tried: a flag that does not exist
    expect_exit 2 "$KCMDR" $cmd --no-such-flag
    assert_contains "$OUT" "kcmdr $cmd: unknown flag '--no-such-flag'" "$cmd unknown flag"
  done
  # tried: missing arguments and bad values; none of these reaches the server
  expect_exit 2 "$KCMDR" backup create
  expect_exit 2 "$KCMDR" backup create a b
  assert_contains "$OUT" "unexpected argument 'b'" "surplus argument"
  expect_exit 2 "$KCMDR" backup create a --wait=maybe
  expect_exit 2 "$KCMDR" backup create a --wait --timeout soon
  expect_exit 2 "$KCMDR" backup create a --storage-location
  assert_contains "$OUT" "--storage-location needs a value" "missing value"
  expect_exit 2 "$KCMDR" backup get -o xml
  expect_exit 2 "$KCMDR" backup describe
  expect_exit 2 "$KCMDR" backup describe a -o wide
  expect_exit 2 "$KCMDR" backup logs
  expect_exit 2 "$KCMDR" backup logs a -o json
  expect_exit 2 "$KCMDR" backup delete
  expect_exit 2 "$KCMDR" backup verify
  expect_exit 2 "$KCMDR" restore create --from-backup b --include-namespaces
  expect_exit 2 "$KCMDR" restore create --from-backup 'B A D'
  expect_exit 2 "$KCMDR" restore describe
  expect_exit 2 "$KCMDR" restore logs
  expect_exit 2 "$KCMDR" -v 9 backup get
  expect_exit 2 "$KCMDR" backup get --kubeconfig
}

# With the builtin engine executing the Restore: what --wait, describe and logs show is what the
# engine did and wrote.
test_cli_restore_with_the_builtin_engine() {
  cli_env_engine engine 1 2
  expect_exit 0 "$KCMDR" backup create b1 --wait
  n=$(kubectl -n kcm-system get backup b1 -o jsonpath='{.status.progress.itemsBackedUp}')
  want=$(kubectl -n kcm-system get configmap kcm-settings -o json | jq -c .data)
  kubectl -n kcm-system delete configmap kcm-settings >/dev/null
  # velero's resource modifier reference ({kind: configmap}) as the engine reads it
  kubectl -n kcm-system create configmap mod --from-literal=rules.yaml='version: v1
resourceModifierRules:
- conditions: {groupResource: configmaps, resourceNameRegex: "^kcm-settings$"}
  mergePatches:
  - patchData: "{\"data\": {\"restoredBy\": \"kcmdr-cli\"}}"
' >/dev/null
  expect_exit 0 "$KCMDR" restore create r1 --from-backup b1 --existing-resource-policy update --resource-modifier-configmap mod --wait
  assert_contains "$OUT" "Restore r1 ended: Completed ($n of $n items restored, 0 warnings, 0 errors)." "restore --wait"
  assert_eq "$(jq -c '. + {restoredBy: "kcmdr-cli"}' <<<"$want")" "$(kubectl -n kcm-system get configmap kcm-settings -o json | jq -c .data)" "restored, with the modifier's change"
  assert_eq r1 "$(kubectl -n kcm-system get configmap kcm-settings -o jsonpath='{.metadata.labels.velero\.io/restore-name}')" "restore label"
  expect_exit 0 "$KCMDR" restore describe r1
  assert_contains "$OUT" "Phase:                       Completed" "describe"
  assert_contains "$OUT" "Items restored:              $n" "describe items"
  assert_contains "$OUT" "Resource modifier:  configmap/mod" "describe modifier"
  "$KCMDR" restore logs r1 > got.log
  zcat store/restores/r1/restore-r1-logs.gz > want.log
  cmp -s got.log want.log || fail "restore logs differs from the engine's log file"
  [ -s got.log ] || fail "empty restore log"
  # tried: a byte of the backup flipped -> the engine fails the restore; --wait exits 1 with the reason
  python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=0x01; open(p,'wb').write(b)" store/backups/b1/b1.tar.gz
  expect_exit 1 "$KCMDR" restore create r2 --from-backup b1 --wait --timeout 60s
  assert_contains "$OUT" "Restore r2 ended: Failed" "tampered backup"
  assert_contains "$OUT" "Failure reason: " "the engine's reason shown"
  expect_exit 1 "$KCMDR" backup verify b1
}

# cli_shows_safely FILE WHAT: FILE (what a terminal would get) holds no control character but
# newlines: no C0, DEL or C1 (U+0080..U+009F)
cli_shows_safely() {
  python3 - "$1" <<'PY' || fail "$2: a control character reaches the terminal: $(od -c "$1" | head -20)"
import sys
t = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
sys.exit(1 if [c for c in t if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f] else 0)
PY
}

# cli_blocked_stderr FILE CMD...: run CMD in the background (CLI_PID) with its stderr a pipe that
# is full, so that its first message stops it there; cli_unblock lets it go on and waits for it
# (CLI_RC; its stderr in FILE).
cli_blocked_stderr() {
  local file=$1
  shift
  rm -f errpipe
  mkfifo errpipe
  exec 7<>errpipe
  python3 -c '
import fcntl, os
fcntl.fcntl(7, fcntl.F_SETFL, fcntl.fcntl(7, fcntl.F_GETFL) | os.O_NONBLOCK)
for n in (4096, 1):
    try:
        while True: os.write(7, b"\0" * n)
    except BlockingIOError: pass'
  CLI_FILE=$file
  timeout 20 "$@" > /dev/null 2> errpipe 7>&- &
  CLI_PID=$!
}
cli_unblock() {
  exec 8< errpipe # a reader before the test's own end closes (else the CLI gets SIGPIPE)
  cat <&8 > "$CLI_FILE.raw" 7>&- 8<&- & # the last writer gone, it ends
  local cat_pid=$!
  exec 7>&- 8<&-
  set +e
  wait "$CLI_PID"
  CLI_RC=$?
  set -e
  wait "$cat_pid"
  tr -d '\0' < "$CLI_FILE.raw" > "$CLI_FILE"
}

# tried: strings a hostile archive or server puts where the CLI prints them (an object name
# "ESC]0;PWNED BEL ESC[31mRED" that sets the window title and turns the text red, C1 CSI as
# U+009B, a newline that forges a line) in failureReason, validation errors, results, a file
# name in the bucket; then objects deleted before --wait's first look at them (a wait forever)
test_cli_hostile_text_and_deleted_while_waiting() {
  cli_env hostile
  cli_backup_object b1
  hostile='\u001b]0;PWNED\u0007\u001b[31mRED'
  shown='?]0;PWNED??[31mRED'
  # restore create --wait: the engine fails it with a hostile reason
  ( until kubectl -n kcm-system get restore h1 >/dev/null 2>&1; do sleep 0.1; done
    cli_status restore h1 '{"phase":"Failed","failureReason":"object '"$hostile"' failed","validationErrors":["\u009b2J","a\nPhase:  Completed"]}' ) &
  expect_exit 1 "$KCMDR" restore create h1 --from-backup b1 --wait
  wait
  printf '%s' "$OUT" > out.txt
  cli_shows_safely out.txt "restore create --wait"
  assert_contains "$OUT" "Failure reason: object $shown failed" "failure reason shown cleaned"
  assert_contains "$OUT" "Validation error: ?2J" "C1 cleaned"
  assert_contains "$OUT" "Validation error: a?Phase:  Completed" "no forged line"
  # describe: the same, and the results file's object names
  mkdir -p store/restores/h1
  printf '{"warnings":{"velero":[],"cluster":["%s"],"namespaces":{"team\\u001b[0m":["%s"]}},"errors":{"velero":["%s"]}}' "$hostile" "$hostile" "$hostile" |
    gzip -c > store/restores/h1/restore-h1-results.gz
  expect_exit 0 "$KCMDR" restore describe h1
  printf '%s' "$OUT" > out.txt
  cli_shows_safely out.txt "restore describe"
  assert_contains "$OUT" "Failure reason:  object $shown failed" "describe failure reason"
  assert_contains "$OUT" "Cluster:  $shown" "results warning"
  assert_contains "$OUT" "Namespace team?[0m:  $shown" "results namespace"
  assert_contains "$OUT" "Velero:   $shown" "results error"
  # -o json keeps the text as it is, escaped by JSON
  "$KCMDR" restore describe h1 -o json > d.json
  assert_eq "$(printf 'object \033]0;PWNED\a\033[31mRED failed')" "$(jq -r .restore.status.failureReason d.json)" "-o json keeps the text"
  # backup describe: the Backup's reason and a file of the bucket named by the archive's writer
  cli_status backup b1 '{"phase":"PartiallyFailed","failureReason":"'"$hostile"'","validationErrors":["'"$hostile"'"]}'
  mkdir -p store/backups/b1
  printf x > "store/backups/b1/$(printf '\033]0;PWNED\a\033[31mRED')"
  expect_exit 0 "$KCMDR" backup describe b1
  printf '%s' "$OUT" > out.txt
  cli_shows_safely out.txt "backup describe"
  assert_contains "$OUT" "Failure reason:  $shown" "backup failure reason"
  assert_contains "$OUT" "  $shown" "file name cleaned"
  expect_exit 0 "$KCMDR" backup get
  printf '%s' "$OUT" > out.txt
  cli_shows_safely out.txt "backup get"

  # restore create --wait: the Restore deleted between create and the wait's first list
  cli_blocked_stderr gone.err "$KCMDR" restore create gone --from-backup b1 --wait -o json
  wait_until 15 kubectl -n kcm-system get restore gone
  kubectl -n kcm-system delete restore gone >/dev/null
  cli_unblock
  assert_eq 1 "$CLI_RC" "restore create --wait after the Restore was deleted: $(cat gone.err)"
  assert_contains "$(cat gone.err)" "restore gone was deleted while waiting" "says why"
  # backup create --wait: its ManagementBackup deleted the same way
  cli_blocked_stderr mbgone.err "$KCMDR" backup create mbgone --wait -o json
  wait_until 15 kubectl get managementbackup mbgone
  kubectl delete managementbackup mbgone >/dev/null
  cli_unblock
  assert_eq 1 "$CLI_RC" "backup create --wait after the ManagementBackup was deleted: $(cat mbgone.err)"
  assert_contains "$(cat mbgone.err)" "backup mbgone was deleted while waiting" "says why"
}

test_cli_backup_wait_counts_queued_as_running() {
  cli_env queued
  start_controller ctl.log # --engine=velero: the test plays Velero 1.18 and its backup queue
  ( set +e; "$KCMDR" backup create q1 --wait --timeout 60s >wait.out 2>&1; echo $? >wait.rc ) &
  wait_until 15 kubectl -n kcm-system get backup q1
  # tried (issue 13, item 1): Velero 1.18 queues the Backup. Before, the CRD refused the phase
  # (and queuePosition), and logs/describe took a Queued backup for one that had ended
  cli_status backup q1 '{"phase":"Queued","queuePosition":2}'
  wait_until 10 sh -c "kubectl get mgmtbackup q1 -o json | jq -e '.status.lastBackup.phase == \"Queued\" and .status.lastBackup.queuePosition == 2'"
  expect_exit 0 "$KCMDR" backup get q1
  assert_contains "$(grep '^q1 ' <<<"$OUT")" " Queued " "get shows the phase"
  expect_exit 1 "$KCMDR" backup logs q1
  assert_contains "$OUT" "is written when it ends (it is Queued)" "logs of a queued backup"
  expect_exit 0 "$KCMDR" backup describe q1
  assert_contains "$OUT" "<none> (the backup is still running)" "describe of a queued backup"
  sleep 1
  [ ! -f wait.rc ] || fail "--wait returned while the Backup was Queued: $(cat wait.out)"
  cli_status backup q1 '{"phase":"ReadyToStart","queuePosition":null}'
  wait_until 10 sh -c "kubectl get mgmtbackup q1 -o json | jq -e '.status.lastBackup.phase == \"ReadyToStart\"'"
  expect_exit 1 "$KCMDR" backup logs q1
  assert_contains "$OUT" "(it is ReadyToStart)" "logs of a backup about to start"
  sleep 1
  [ ! -f wait.rc ] || fail "--wait returned while the Backup was ReadyToStart: $(cat wait.out)"
  cli_status backup q1 "{\"phase\":\"Completed\",\"startTimestamp\":\"$(date -u +%FT%TZ)\",\"completionTimestamp\":\"$(date -u +%FT%TZ)\",\"progress\":{\"totalItems\":3,\"itemsBackedUp\":3}}"
  wait_until 15 test -f wait.rc
  assert_eq 0 "$(cat wait.rc)" "--wait exit code once Completed: $(cat wait.out)"
  assert_contains "$(cat wait.out)" "Backup q1 ended: Completed" "--wait final line"
}
