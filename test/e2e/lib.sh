# lib.sh — helpers for e2e tests: assertions that say what was expected, and server setup.
# Tests are functions named test_*; each runs in its own subshell with `set -euo pipefail`.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KCMDR=${KCMDR_BIN:-$REPO/bin/kcmdr}

fail() { echo "    FAIL: $*" >&2; exit 1; }

# assert_eq EXPECTED ACTUAL WHAT
assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"; }

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() { case $1 in *"$2"*) ;; *) fail "$3: '$2' not found in: $1";; esac; }

# expect_exit CODE CMD...: run CMD, check its exit code; its stdout+stderr are in $OUT
expect_exit() {
  local want=$1; shift
  set +e
  OUT=$("$@" 2>&1)
  local got=$?
  set -e
  [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want; output: $OUT"
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds
wait_until() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for: $*"
    sleep 0.2
  done
}

# kubectl_status KUBECTL_ARGS...: `kubectl KUBECTL_ARGS --subresource=status`, as a test writes
# status the way an engine would; on the upstream velero.io CRDs ($KCMDR_VELERO_CRDS=upstream,
# from scripts/testenv's export lines) Backup, Restore, DeleteBackupRequest and
# BackupStorageLocation have no status subresource, so for those the main resource is written.
# The resource is the second word that is not an option (after the verb), e.g.
#   kubectl_status -n kcm-system patch backup b1 --type=merge -p '{"status":{"phase":"Failed"}}'
kubectl_status() {
  local a words=() skip=0 res
  for a in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case $a in
      -n|--namespace|--kubeconfig|--context|-p|--patch|--type|-o|--output|-f|--filename) skip=1 ;;
      -*) ;;
      *) words+=("$a") ;;
    esac
  done
  [ "${#words[@]}" -ge 2 ] || fail "kubectl_status: no resource in: $*"
  res=${words[1]%%/*}
  case ${KCMDR_VELERO_CRDS:-kcmdr}:$res in
    upstream:backup|upstream:backups|upstream:backup.velero.io|upstream:backups.velero.io|\
    upstream:restore|upstream:restores|upstream:restore.velero.io|upstream:restores.velero.io|\
    upstream:deletebackuprequest|upstream:deletebackuprequests|upstream:deletebackuprequest.velero.io|upstream:deletebackuprequests.velero.io|\
    upstream:backupstoragelocation|upstream:backupstoragelocations|upstream:backupstoragelocation.velero.io|upstream:backupstoragelocations.velero.io|upstream:bsl)
      kubectl "$@" ;;
    *) kubectl "$@" --subresource=status ;;
  esac
}

# s3_location NAME BUCKET PREFIX DEFAULT [ANNOTATIONS] [SECRET_KEY]: a BackupStorageLocation NAME
# on the test gateway with its credentials Secret NAME-creds (SECRET_KEY: another secret access
# key, e.g. a wrong one); ANNOTATIONS: "key: value, ..." or empty; DEFAULT true or false
s3_location() {
  kubectl -n kcm-system create secret generic "$1-creds" --from-literal=cloud="[default]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = ${6:-$AWS_SECRET_ACCESS_KEY}
" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata:
  name: $1
  namespace: kcm-system
  annotations: {${5:-}}
spec:
  provider: aws
  default: $4
  objectStorage: {bucket: $2, prefix: $3}
  config: {region: $AWS_DEFAULT_REGION, s3Url: $KCMDR_S3_ENDPOINT, s3ForcePathStyle: "true"}
  credential: {name: $1-creds, key: cloud}
  validationFrequency: 2s
  backupSyncPeriod: 2s
YAML
}

# rs_fs_bsl NAME DIR: a default filesystem BackupStorageLocation NAME at DIR (validated and synced every 2 s)
rs_fs_bsl() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: $1, namespace: kcm-system}
spec: {provider: filesystem, default: true, objectStorage: {bucket: b}, config: {path: $2}, validationFrequency: 2s, backupSyncPeriod: 2s}
YAML
}

# lock_bsl NAME BUCKET PREFIX MODE [DAYS] [DEFAULT] [MORE]: an S3 BSL NAME on the test gateway
# (path-style; validated and synced every 2 s) with its own credentials Secret NAME-creds,
# annotated kcmdr.io/object-lock: MODE, kcmdr.io/object-lock-days: DAYS when DAYS is given, and
# MORE (further "key: value, ..." annotations) when given; DEFAULT true or false (false).
lock_bsl() {
  local more="kcmdr.io/object-lock: \"$4\""
  [ -z "${5:-}" ] || more="$more, kcmdr.io/object-lock-days: '$5'"
  [ -z "${7:-}" ] || more="$more, $7"
  s3_location "$1" "$2" "$3" "${6:-false}" "$more"
}

# unservable_apiservice GROUP: an aggregated API v1beta1.GROUP whose Service (nothing-listens in
# kcm-system) has no endpoints, as a metrics-server that is down: discovery lists GROUP, its
# group-version answers 503.
unservable_apiservice() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.$1}
spec:
  group: $1
  version: v1beta1
  groupPriorityMinimum: 1000
  versionPriority: 15
  insecureSkipTLSVerify: true
  service: {name: nothing-listens, namespace: kcm-system}
YAML
}
