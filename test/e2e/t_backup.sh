# t_backup.sh — the builtin engine's Backup execution (src/backup.c) on a real API server and the
# real Ceph gateway, driven by build/engine-e2e. Every test has a control plane of its own; the
# gateway is shared, so each test writes under a prefix of its own.
#
# The oracle: scripts/fixture marks every object it creates with kcmdr.test/in-backup; the Backup
# carries kcm's selectors computed here with kubectl and jq (not by kcmdr); kcm's spec excludes
# clusters.cluster.x-k8s.io. The archive, read with tar, aws s3 and jq, must hold exactly those
# objects (and the namespaces holding them), at both paths.

ENGINE_E2E=${ENGINE_E2E:-$REPO/build/engine-e2e}

# bk_up NAME: a control plane of its own, with the fixture and the kcm-system namespace
bk_up() {
  eval "$("$REPO/scripts/testenv" up --name "$1" --s3 2>/dev/null)"
  export KUBECONFIG
  printf '[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > creds
}

s3() { aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 "$@"; }

# bk_bsl_s3 NAME PREFIX [EXTRA_SPEC_JSON] [STATUS_PHASE]: a location file for the shared gateway
bk_bsl_s3() {
  jq -n --arg n "$1" --arg p "$2" --arg url "$KCMDR_S3_ENDPOINT" --arg b "$KCMDR_S3_BUCKET" \
    --argjson extra "${3:-{\}}" --arg phase "${4:-Available}" \
    '{apiVersion:"velero.io/v1",kind:"BackupStorageLocation",metadata:{name:$n,namespace:"kcm-system"},
      spec:({provider:"aws",objectStorage:{bucket:$b,prefix:$p},
             config:{region:"us-east-1",s3Url:$url,s3ForcePathStyle:"true"}} + $extra),
      status:{phase:$phase}}' > "$1.bsl.json"
}

# bk_bsl_fs NAME DIR
bk_bsl_fs() {
  jq -n --arg n "$1" --arg d "$2" '{apiVersion:"velero.io/v1",kind:"BackupStorageLocation",
    metadata:{name:$n,namespace:"kcm-system"},spec:{provider:"filesystem",objectStorage:{bucket:"b"},config:{path:$d}},
    status:{phase:"Available"}}' > "$1.bsl.json"
}

# bk_kcm_backup NAME BSL FORM: create a Backup with kcm's spec and selectors (FORM kcm: one
# matchLabels per value; compact: one In per key)
bk_kcm_backup() {
  local cds cts
  cds=$(kubectl get clusterdeployments.k0rdent.mirantis.com -A -o json)
  cts=$(kubectl get clustertemplates.k0rdent.mirantis.com -A -o json)
  jq -n --argjson cds "$cds" --argjson cts "$cts" --arg name "$1" --arg bsl "$2" --arg form "$3" '
    ([ ["k0rdent.mirantis.com/component","kcm"], ["controller.cert-manager.io/fao","true"],
       ["cluster.x-k8s.io/provider","cluster-api"] ]
     + [ $cds.items[] | . as $cd
         | (["helm.toolkit.fluxcd.io/name", $cd.metadata.name], ["cluster.x-k8s.io/cluster-name", $cd.metadata.name],
            ( $cts.items[] | select(.metadata.namespace == $cd.metadata.namespace and .metadata.name == $cd.spec.template)
              | .status.providers[] | ["cluster.x-k8s.io/provider", .])) ]
     | unique) as $pairs
    | {apiVersion:"velero.io/v1", kind:"Backup", metadata:{name:$name, namespace:"kcm-system"},
       spec:{includedNamespaces:["*"], excludedResources:["clusters.cluster.x-k8s.io"], ttl:"720h0m0s", storageLocation:$bsl,
             orLabelSelectors: (if $form == "compact"
               then ($pairs | group_by(.[0]) | map({matchExpressions:[{key:.[0][0], operator:"In", values:map(.[1])}]}))
               else ($pairs | map({matchLabels:{(.[0]):.[1]}})) end)}}' | kubectl create -f - >/dev/null
}

# bk_run NAME BSL [more engine-e2e flags]: execute; the result line in $RES
bk_run() {
  local name=$1 bsl=$2; shift 2
  RES=$("$ENGINE_E2E" backup --namespace kcm-system --backup "$name" --bsl-file "$bsl.bsl.json" --cred-file creds "$@")
}

bk_phase() { kubectl -n kcm-system get backup "$1" -o jsonpath='{.status.phase}'; }
bk_phase_is() { [ "$(bk_phase "$1")" = "$2" ]; }

# bk_load_blobs NS N KIB: N Secrets in namespace NS (created when missing) of KIB KiB of random
# bytes each: many bytes that gzip cannot shrink much, loaded in seconds (KIB <= 1000: etcd's
# request limit)
bk_load_blobs() {
  kubectl get namespace "$1" >/dev/null 2>&1 || kubectl create namespace "$1" >/dev/null
  python3 - "$1" "$2" "$3" <<'PY' | kubectl create -f - >/dev/null
import base64, json, os, sys
ns, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
items = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "blob-%03d" % i, "namespace": ns},
          "data": {"b": base64.b64encode(os.urandom(kib << 10)).decode()}} for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
}

# The objects the fixture says belong in kcm's backup, as "gr|ns|name" (cluster-scoped: "gr||name"),
# plus the namespaces that hold one of them.
BK_FIXTURE_TYPES="configmaps secrets serviceaccounts deployments.apps clusterroles.rbac.authorization.k8s.io
  managements.k0rdent.mirantis.com releases.k0rdent.mirantis.com providertemplates.k0rdent.mirantis.com
  clustertemplates.k0rdent.mirantis.com servicetemplates.k0rdent.mirantis.com clusterdeployments.k0rdent.mirantis.com
  credentials.k0rdent.mirantis.com clusters.cluster.x-k8s.io machinedeployments.cluster.x-k8s.io machines.cluster.x-k8s.io
  k0scontrolplanes.controlplane.cluster.x-k8s.io awsclusters.infrastructure.cluster.x-k8s.io
  helmreleases.helm.toolkit.fluxcd.io certificates.cert-manager.io issuers.cert-manager.io"
bk_oracle() {
  local t
  for t in $BK_FIXTURE_TYPES; do
    [ "$t" = clusters.cluster.x-k8s.io ] && continue # kcm's spec excludes them
    kubectl get "$t" -A -o json | jq -r --arg t "$t" \
      '.items[] | select(.metadata.annotations["kcmdr.test/in-backup"] == "true") | "\($t)|\(.metadata.namespace // "")|\(.metadata.name)"'
  done > oracle.objs
  { cat oracle.objs; awk -F'|' '$2 != "" {print "namespaces||" $2}' oracle.objs | sort -u; } | sort > oracle.txt
}

# bk_archive_objects TARBALL: "gr|ns|name" of every object at its plain path; checks the layout
bk_archive_objects() {
  local tgz=$1
  tar tzvf "$tgz" > tar.lst
  [ "$(head -1 tar.lst | awk '{print $NF}')" = metadata/version ] || fail "first entry is not metadata/version: $(head -1 tar.lst)"
  [ "$(tar xzf "$tgz" -O metadata/version)" = "1.1.0" ] || fail "metadata/version is not 1.1.0"
  awk '$1 != "-rwxr-xr-x" {print}' tar.lst | grep . && fail "entries that are not regular files with mode 0755"
  awk '{print $NF}' tar.lst > paths.txt
  grep '^resources/' paths.txt | grep -v -- '-preferredversion/' | sed -E \
    -e 's#^resources/([^/]+)/namespaces/([^/]+)/(.+)\.json$#\1|\2|\3#' \
    -e 's#^resources/([^/]+)/cluster/(.+)\.json$#\1||\2#' | sort > got.txt
  grep '^resources/' paths.txt | grep -- '-preferredversion/' | sed -E \
    -e 's#^resources/([^/]+)/v[^/]*-preferredversion/namespaces/([^/]+)/(.+)\.json$#\1|\2|\3#' \
    -e 's#^resources/([^/]+)/v[^/]*-preferredversion/cluster/(.+)\.json$#\1||\2#' | sort > got-pref.txt
  diff got.txt got-pref.txt >/dev/null || fail "the plain and -preferredversion copies differ: $(diff got.txt got-pref.txt | head -5)"
  [ "$(grep -vc '^metadata/version$' paths.txt)" = "$(($(wc -l < got.txt) * 2))" ] || fail "entries other than objects in the archive"
}

# bk_check_files DIR NAME: the six files of backup NAME downloaded into DIR; checks shapes,
# checksums, resource list against the archive's objects, and velero-backup.json
bk_check_files() {
  local d=$1 b=$2 f
  for f in "$b.tar.gz" "$b-logs.gz" "$b-resource-list.json.gz" "$b-results.gz" "$b-checksums.json" velero-backup.json; do
    [ -s "$d/$f" ] || fail "missing $f"
  done
  # checksums: every other file, sha256 and size as sha256sum and stat see them
  jq -r '.files | to_entries[] | "\(.key) \(.value.sha256) \(.value.size)"' "$d/$b-checksums.json" | sort > sums.txt
  [ "$(wc -l < sums.txt)" = 4 ] || fail "checksums.json lists $(wc -l < sums.txt) files, expected 4"
  while read -r key sum size; do
    f="$d/${key##*/}"
    [ "$key" = "backups/$b/${key##*/}" ] || fail "checksums key $key is not under backups/$b/"
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sum" ] || fail "sha256 of $key differs"
    [ "$(stat -c %s "$f")" = "$size" ] || fail "size of $key differs"
  done < sums.txt
  # velero-backup.json: the Backup with apiVersion, kind, label and final status
  jq -e --arg b "$b" '.apiVersion == "velero.io/v1" and .kind == "Backup" and .metadata.name == $b
      and .status.phase == "Completed" and .status.version == 1 and .status.formatVersion == "1.1.0"
      and (.status.completionTimestamp | length > 0) and (.status.startTimestamp | length > 0)
      and (.status.expiration | length > 0) and (.metadata.labels["velero.io/storage-location"] | length > 0)
      and .status.progress.itemsBackedUp == .status.progress.totalItems' "$d/velero-backup.json" >/dev/null \
    || fail "velero-backup.json: $(jq -c '{apiVersion,kind,status,labels:.metadata.labels}' "$d/velero-backup.json")"
  # results: Velero's shape, nothing wrong
  zcat "$d/$b-results.gz" | jq -e '(.errors|keys) == ["cluster","namespaces","velero"] and (.warnings|keys) == ["cluster","namespaces","velero"]
      and .errors.velero == [] and .errors.cluster == [] and .errors.namespaces == {}' >/dev/null \
    || fail "results: $(zcat "$d/$b-results.gz")"
  zcat "$d/$b-logs.gz" | grep "level=info msg=\"Backed up a total of" > /dev/null || fail "the log has no summary line"
  # the resource list names exactly the archive's objects, by the apiVersion/kind each file holds
  mkdir -p "$d/x" && tar xzf "$d/$b.tar.gz" -C "$d/x"
  (cd "$d/x" && find resources -path '*-preferredversion*' -prune -o -name '*.json' -print0 | xargs -0 jq -r \
    '"\(.apiVersion)/\(.kind)|\(if .metadata.namespace then .metadata.namespace + "/" else "" end)\(.metadata.name)"') | sort > rl-archive.txt
  zcat "$d/$b-resource-list.json.gz" | jq -r 'to_entries[] | .key as $k | .value[] | "\($k)|\(.)"' | sort > rl-file.txt
  diff rl-archive.txt rl-file.txt || fail "resource list and archive differ"
  zcat "$d/$b-resource-list.json.gz" | jq -e 'to_entries | all(.value == (.value | sort))' >/dev/null || fail "resource list not sorted"
}

test_backup_kcm_content_s3_and_filesystem() {
  bk_up bk-content
  "$REPO/scripts/fixture" --cluster-deployments 12 --extra 40 >/dev/null 2>&1
  # hostile strings, an excluded object, one being deleted, a ServiceAccount bound cluster-wide
  kubectl apply -f - >/dev/null <<'JSON'
{"apiVersion":"v1","kind":"List","items":[
 {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"hostile","namespace":"kcm-system",
   "labels":{"k0rdent.mirantis.com/component":"kcm"},
   "annotations":{"kcmdr.test/in-backup":"true","nul":"a\u0000b","text":"Grüße ✓ \"q\" \\ </script>"}},
   "data":{"n":"1.50e3","u":"\u00fc\u2713"}},
 {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"opted-out","namespace":"kcm-system",
   "labels":{"k0rdent.mirantis.com/component":"kcm","velero.io/exclude-from-backup":"true"},
   "annotations":{"kcmdr.test/in-backup":"false"}}},
 {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"going","namespace":"kcm-system","finalizers":["kcmdr.test/hold"],
   "labels":{"k0rdent.mirantis.com/component":"kcm"},"annotations":{"kcmdr.test/in-backup":"false"}}},
 {"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"kcm-sa","namespace":"kcm-system",
   "labels":{"k0rdent.mirantis.com/component":"kcm"},"annotations":{"kcmdr.test/in-backup":"true"}}},
 {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"kcm-sa-role",
   "annotations":{"kcmdr.test/in-backup":"true"}},"rules":[]},
 {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"kcm-sa-binding",
   "annotations":{"kcmdr.test/in-backup":"true"}},
   "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"kcm-sa-role"},
   "subjects":[{"kind":"ServiceAccount","name":"kcm-sa","namespace":"kcm-system"}]},
 {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"other-binding",
   "annotations":{"kcmdr.test/in-backup":"false"}},
   "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"kcm-sa-role"},
   "subjects":[{"kind":"ServiceAccount","name":"kcm-sa","namespace":"team-blue"}]}
]}
JSON
  kubectl -n kcm-system delete configmap going --wait=false >/dev/null
  # CRDs (backup_filter_adds_crds; Velero >= 1.11 BackupWithResolvers): under kcm's spec CRDs are
  # an included type, listed through the selectors like any other, and Velero adds no CRD for
  # the custom objects it backed up. CAPI labels its provider CRDs (cluster.x-k8s.io/provider):
  # one labelled for a selected provider is in; one labelled for a provider no template uses is
  # out; kcm's own CRDs carry no label (as kcm's chart installs them) and stay out although
  # their ClusterDeployments are in. (A careless reading adds clusterdeployments' CRD.)
  kubectl label crd machines.cluster.x-k8s.io cluster.x-k8s.io/provider=cluster-api >/dev/null
  kubectl label crd awsclusters.infrastructure.cluster.x-k8s.io cluster.x-k8s.io/provider=infrastructure-unused >/dev/null
  bk_oracle
  echo "clusterrolebindings.rbac.authorization.k8s.io||kcm-sa-binding" >> oracle.txt
  echo "customresourcedefinitions.apiextensions.k8s.io||machines.cluster.x-k8s.io" >> oracle.txt
  sort -o oracle.txt oracle.txt
  [ "$(wc -l < oracle.txt)" -gt 150 ] || fail "oracle too small: $(wc -l < oracle.txt)"

  # kcm's selector form into S3
  local p="t-content-$$"
  bk_bsl_s3 s3loc "$p"
  bk_kcm_backup kcm1 s3loc kcm
  bk_run kcm1 s3loc
  [ "$(jq -r .phase <<<"$RES")" = Completed ] || fail "kcm1: $RES"
  assert_eq Completed "$(bk_phase kcm1)" "phase in the cluster"
  assert_eq s3loc "$(kubectl -n kcm-system get backup kcm1 -o jsonpath='{.metadata.labels.velero\.io/storage-location}')" "label"
  mkdir -p s3 && s3 cp --recursive --quiet "s3://$KCMDR_S3_BUCKET/$p/backups/kcm1/" s3/
  bk_archive_objects s3/kcm1.tar.gz
  grep -q '^clusterdeployments.k0rdent.mirantis.com|' got.txt || fail "no ClusterDeployment in the archive"
  grep -q '^customresourcedefinitions.apiextensions.k8s.io||clusterdeployments.k0rdent.mirantis.com$' got.txt &&
    fail "the unlabelled ClusterDeployment CRD was added (Velero >= 1.11 lists CRDs through the selectors under kcm's spec)"
  grep -q '^customresourcedefinitions.apiextensions.k8s.io||machines.cluster.x-k8s.io$' got.txt ||
    fail "the CRD labelled cluster.x-k8s.io/provider=cluster-api is missing"
  diff oracle.txt got.txt || fail "archive (kcm form, S3) differs from the oracle"
  bk_check_files s3 kcm1
  [ "$(jq -r .items <<<"$RES")" = "$(wc -l < got.txt)" ] || fail "items $(jq -r .items <<<"$RES") vs $(wc -l < got.txt) in the archive"
  assert_eq "$(wc -l < got.txt)" "$(kubectl -n kcm-system get backup kcm1 -o jsonpath='{.status.progress.itemsBackedUp}')" "itemsBackedUp"
  # the object with NUL and non-ASCII strings: byte-exact against the server's own bytes
  kubectl get --raw /api/v1/namespaces/kcm-system/configmaps/hostile > raw.nl
  head -c -1 raw.nl > raw.json # the server ends a GET with a newline; a list item has none
  [ "$(tail -c 1 raw.nl | od -An -c | tr -d ' ')" = '\n' ] || fail "GET body does not end with a newline"
  local pre_raw='{"kind":"ConfigMap","apiVersion":"v1",' pre_tar='{"apiVersion":"v1","kind":"ConfigMap",'
  local f=s3/x/resources/configmaps/namespaces/kcm-system/hostile.json
  [ "$(head -c ${#pre_raw} raw.json)" = "$pre_raw" ] || fail "unexpected GET prefix: $(head -c 60 raw.json)"
  [ "$(head -c ${#pre_tar} "$f")" = "$pre_tar" ] || fail "archive object does not start with apiVersion, kind: $(head -c 60 "$f")"
  cmp <(tail -c +$((${#pre_raw} + 1)) raw.json) <(tail -c +$((${#pre_tar} + 1)) "$f") || fail "hostile object not byte-exact"
  grep -qF 'a\u0000b' "$f" || fail "NUL escape lost"
  grep -qF 'Grüße ✓' "$f" || fail "UTF-8 lost"
  cmp "$f" s3/x/resources/configmaps/v1-preferredversion/namespaces/kcm-system/hostile.json || fail "the two copies differ"

  # kcm's compact form into a local directory: the same objects
  mkdir -p fs && bk_bsl_fs fsloc "$PWD/fs"
  bk_kcm_backup kcm2 fsloc compact
  bk_run kcm2 fsloc --concurrency 2 --gzip 6
  [ "$(jq -r .phase <<<"$RES")" = Completed ] || fail "kcm2: $RES"
  bk_archive_objects fs/backups/kcm2/kcm2.tar.gz
  diff oracle.txt got.txt || fail "archive (compact form, filesystem) differs from the oracle"
  bk_check_files fs/backups/kcm2 kcm2
  [ -z "$(find fs -name '.*' -o -name '*.tmp*')" ] || fail "temporary files left: $(find fs -name '.*')"

  # a Backup named like one already in the bucket: FailedValidation, the old files untouched
  s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/backups/kcm1/" | awk '{print $3, $4}' | sort > before.txt
  local etag0; etag0=$(aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3api head-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/kcm1/velero-backup.json" --query ETag --output text)
  kubectl -n kcm-system delete backup kcm1 >/dev/null
  bk_kcm_backup kcm1 s3loc kcm
  bk_run kcm1 s3loc
  assert_eq FailedValidation "$(jq -r .phase <<<"$RES")" "existing name"
  assert_contains "$(kubectl -n kcm-system get backup kcm1 -o jsonpath='{.status.validationErrors}')" "already exists" "validation error"
  s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/backups/kcm1/" | awk '{print $3, $4}' | sort > after.txt
  diff before.txt after.txt || fail "the existing backup's files changed"
  assert_eq "$etag0" "$(aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3api head-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/kcm1/velero-backup.json" --query ETag --output text)" "velero-backup.json rewritten"
  # the same when only a stray file is there (no velero-backup.json)
  echo junk | s3 cp - "s3://$KCMDR_S3_BUCKET/$p/backups/kcm3/kcm3.tar.gz" --quiet
  bk_kcm_backup kcm3 s3loc kcm
  bk_run kcm3 s3loc
  assert_eq FailedValidation "$(jq -r .phase <<<"$RES")" "stray file under the name"
  assert_eq junk "$(s3 cp "s3://$KCMDR_S3_BUCKET/$p/backups/kcm3/kcm3.tar.gz" - )" "stray file kept"
}

test_backup_namespace_scope_crds_and_validation() {
  bk_up bk-scope
  "$REPO/scripts/fixture" --cluster-deployments 6 >/dev/null 2>&1
  local p="t-scope-$$"
  bk_bsl_s3 s3loc "$p"
  # one namespace, no selector: every object of team-blue, the namespace, and (Velero adds
  # them) the CRDs of the custom kinds in it; no other cluster-scoped object
  kubectl create -f - >/dev/null <<'JSON'
{"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"blue","namespace":"kcm-system"},
 "spec":{"includedNamespaces":["team-blue"],"storageLocation":"s3loc"}}
JSON
  bk_run blue s3loc
  [ "$(jq -r .phase <<<"$RES")" = Completed ] || fail "blue: $RES"
  mkdir -p s3 && s3 cp --recursive --quiet "s3://$KCMDR_S3_BUCKET/$p/backups/blue/" s3/
  bk_archive_objects s3/blue.tar.gz
  local want=() gr
  for gr in $(kubectl api-resources --namespaced=true --verbs=list,create,get,delete -o name); do
    case $gr in events|events.events.k8s.io) continue;; esac
    kubectl -n team-blue get "$gr" -o json | jq -r --arg t "$gr" '.items[] | select(.metadata.deletionTimestamp == null) | "\($t)|team-blue|\(.metadata.name)"'
  done > want.txt
  echo "namespaces||team-blue" >> want.txt
  cut -d'|' -f1 want.txt | grep '\.' | sort -u | while read -r gr; do
    if kubectl get crd "$gr" >/dev/null 2>&1; then echo "customresourcedefinitions.apiextensions.k8s.io||$gr"; fi
  done >> want.txt
  grep -v '^events' got.txt > got2.txt || true
  sort -o want.txt want.txt
  diff want.txt got2.txt || fail "namespace-scoped backup differs from kubectl's view"
  grep -q '^customresourcedefinitions.apiextensions.k8s.io||clusterdeployments.k0rdent.mirantis.com$' got.txt || fail "CRD not added"
  grep -q '^clusterroles' got.txt && fail "a cluster-scoped object beyond the CRDs and the namespace"
  bk_check_files s3 blue

  # FailedValidation: nothing is written for any of these
  local n
  kubectl create -f - >/dev/null <<'JSON'
{"apiVersion":"v1","kind":"List","items":[
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"both-selectors","namespace":"kcm-system"},
  "spec":{"storageLocation":"s3loc","labelSelector":{"matchLabels":{"a":"b"}},"orLabelSelectors":[{"matchLabels":{"c":"d"}}]}},
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"bad-ttl","namespace":"kcm-system"},
  "spec":{"storageLocation":"s3loc","ttl":"5 days"}},
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"bad-selector","namespace":"kcm-system"},
  "spec":{"storageLocation":"s3loc","labelSelector":{"matchExpressions":[{"key":"a","operator":"In"}]}}},
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"bad-lists","namespace":"kcm-system"},
  "spec":{"storageLocation":"s3loc","includedResources":["*"],"excludedResources":["*"]}},
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"read-only","namespace":"kcm-system"},
  "spec":{"storageLocation":"ro"}},
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"unavailable","namespace":"kcm-system"},
  "spec":{"storageLocation":"down"}},
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"no-location","namespace":"kcm-system"},
  "spec":{"storageLocation":"nowhere"}},
 {"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"store-gone","namespace":"kcm-system"},
  "spec":{"storageLocation":"gone"}}
]}
JSON
  bk_bsl_s3 ro "$p" '{"accessMode":"ReadOnly"}'
  bk_bsl_s3 down "$p" '{}' Unavailable
  for n in both-selectors bad-ttl bad-selector bad-lists; do
    bk_run "$n" s3loc
    assert_eq FailedValidation "$(jq -r .phase <<<"$RES")" "$n"
  done
  bk_run read-only ro
  assert_eq FailedValidation "$(jq -r .phase <<<"$RES")" read-only
  assert_contains "$(kubectl -n kcm-system get backup read-only -o jsonpath='{.status.validationErrors}')" "read-only mode" "read-only message"
  bk_run unavailable down
  assert_eq FailedValidation "$(jq -r .phase <<<"$RES")" unavailable
  RES=$("$ENGINE_E2E" backup --namespace kcm-system --backup no-location)
  assert_eq FailedValidation "$(jq -r .phase <<<"$RES")" no-location
  assert_contains "$(kubectl -n kcm-system get backup no-location -o jsonpath='{.status.validationErrors}')" "not found" "missing location"
  assert_contains "$(kubectl -n kcm-system get backup both-selectors -o jsonpath='{.status.validationErrors}')" "only one can be specified" "selectors message"
  # a location where nothing listens: Failed with the reason, nothing anywhere
  local port; port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  jq --arg u "http://127.0.0.1:$port" '.metadata.name="gone" | .spec.config.s3Url=$u' s3loc.bsl.json > gone.bsl.json
  bk_run store-gone gone
  assert_eq Failed "$(jq -r .phase <<<"$RES")" store-gone
  assert_contains "$(kubectl -n kcm-system get backup store-gone -o jsonpath='{.status.failureReason}')" "127.0.0.1:$port" "store-gone reason"
  for n in both-selectors bad-ttl bad-selector bad-lists read-only unavailable no-location store-gone; do
    [ -z "$(s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/backups/$n/")" ] || fail "$n wrote files"
    [ -z "$(kubectl -n kcm-system get backup "$n" -o jsonpath='{.status.startTimestamp}')" ] || fail "$n has a startTimestamp"
  done
  # a Backup that is not New is left alone
  expect_exit 1 "$ENGINE_E2E" backup --namespace kcm-system --backup blue --bsl-file s3loc.bsl.json --cred-file creds
  assert_contains "$OUT" "already Completed" "re-running a finished backup"
}

test_backup_failures_apiserver_killed_cancel_abandoned() {
  bk_up bk-fail
  local p="t-fail-$$"
  bk_bsl_s3 s3loc "$p"
  kubectl create namespace kcm-system >/dev/null
  # 3,000 small objects of four kinds and 16 Secrets of 960 KiB of random bytes: about 45 MB
  # for gzip -9 to work through, so each backup below takes seconds
  "$REPO/build/bench-backup" load big 3000 16 2>/dev/null
  bk_load_blobs big 16 960
  local spec='{"includedNamespaces":["big"],"storageLocation":"s3loc"}'
  mkb() { jq -n --arg n "$1" --argjson s "$spec" '{apiVersion:"velero.io/v1",kind:"Backup",metadata:{name:$n,namespace:"kcm-system"},spec:$s}' | kubectl create -f - >/dev/null; }

  # cancelled mid-way: Failed, nothing left in the bucket
  mkb cancelled
  bk_run cancelled s3loc --concurrency 1 --gzip 9 --cancel-after-ms 700
  assert_eq Failed "$(jq -r .phase <<<"$RES")" cancelled
  assert_contains "$(kubectl -n kcm-system get backup cancelled -o jsonpath='{.status.failureReason}')" "cancel" "reason"
  [ -z "$(s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/backups/cancelled/")" ] || fail "a cancelled backup left files"

  # the API server crashes (SIGKILL) while the backup lists: the backup fails (no
  # velero-backup.json, no file at all); the server comes back while the engine still tries to
  # record that, as a restarted server would, and the Backup is Failed with the reason
  mkb killed
  "$ENGINE_E2E" backup --namespace kcm-system --backup killed --bsl-file s3loc.bsl.json --cred-file creds \
    --concurrency 1 --gzip 9 > killed.out 2> killed.err &
  local pid=$!
  wait_until 30 bk_phase_is killed InProgress
  "$REPO/scripts/testenv" apiserver kill --name bk-fail
  wait_until 60 grep -q "backup failed" killed.err
  "$REPO/scripts/testenv" apiserver start --name bk-fail >/dev/null 2>&1
  wait "$pid" || fail "the outcome was not recorded once the API server was back: $(tail -3 killed.err)"
  RES=$(cat killed.out)
  assert_eq Failed "$(jq -r .phase <<<"$RES")" "phase with the API server killed"
  assert_eq Failed "$(bk_phase killed)" "phase in the cluster"
  local server; server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  assert_contains "$(kubectl -n kcm-system get backup killed -o jsonpath='{.status.failureReason}')" "${server#https://}" \
    "the reason names the API server"
  [ -z "$(s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/backups/killed/")" ] || fail "files of a backup whose API server died"

  # an engine that died mid-backup leaves the Backup InProgress with its claim and partial
  # files; its start-up path (abandon) marks it Failed with the reason and removes them
  mkb stuck
  kubectl_status -n kcm-system patch backup stuck --type=merge -p '{"status":{"phase":"InProgress"}}' >/dev/null
  local uid; uid=$(kubectl -n kcm-system get backup stuck -o jsonpath='{.metadata.uid}')
  printf '{"backup":"stuck","namespace":"kcm-system","uid":"%s"}\n' "$uid" | s3 cp - "s3://$KCMDR_S3_BUCKET/$p/backups/stuck/stuck-claim.json" --quiet
  echo partial | s3 cp - "s3://$KCMDR_S3_BUCKET/$p/backups/stuck/stuck.tar.gz" --quiet
  "$ENGINE_E2E" abandon --namespace kcm-system --backup stuck --bsl-file s3loc.bsl.json --cred-file creds --reason "engine restarted"
  assert_eq Failed "$(bk_phase stuck)" "abandoned backup"
  assert_contains "$(kubectl -n kcm-system get backup stuck -o jsonpath='{.status.failureReason}')" "engine restarted" "abandon reason"
  [ -z "$(s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/backups/stuck/")" ] || fail "partial files of an abandoned backup left"
  # tried: the same with a folder another Backup (another cluster, same name) claimed: Failed,
  # and not one of its files removed
  mkb other
  kubectl_status -n kcm-system patch backup other --type=merge -p '{"status":{"phase":"InProgress"}}' >/dev/null
  echo '{"backup":"other","namespace":"kcm-system","uid":"0000-another-cluster"}' | s3 cp - "s3://$KCMDR_S3_BUCKET/$p/backups/other/other-claim.json" --quiet
  echo theirs | s3 cp - "s3://$KCMDR_S3_BUCKET/$p/backups/other/other.tar.gz" --quiet
  "$ENGINE_E2E" abandon --namespace kcm-system --backup other --bsl-file s3loc.bsl.json --cred-file creds --reason "engine restarted"
  assert_eq Failed "$(bk_phase other)" "abandoned backup in a folder claimed by another"
  assert_eq 2 "$(s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/backups/other/" | wc -l)" "files of the other cluster's backup"

  # the next backup works and holds everything
  mkb after
  bk_run after s3loc
  assert_eq Completed "$(jq -r .phase <<<"$RES")" "the next backup"
  [ "$(jq -r .items <<<"$RES")" -ge 3017 ] || fail "next backup holds $(jq -r .items <<<"$RES") items"

  # a backup whose files were all written but whose last status update was lost comes back
  # Completed from velero-backup.json; nothing is removed
  kubectl_status -n kcm-system patch backup after --type=merge -p '{"status":{"phase":"InProgress"}}' >/dev/null
  "$ENGINE_E2E" abandon --namespace kcm-system --backup after --bsl-file s3loc.bsl.json --cred-file creds --reason restart
  assert_eq Completed "$(bk_phase after)" "recovered from velero-backup.json"
  s3 ls "s3://$KCMDR_S3_BUCKET/$p/backups/after/velero-backup.json" >/dev/null || fail "complete backup's files removed"
}

# The location's gateway dies during the upload: a radosgw of this test's own (scripts/testenv
# rgw) on the shared Ceph cluster serves the location; it is SIGKILLed as soon as the tarball's
# multipart upload exists (seen through the shared gateway), so the upload is surely under way.
# The Backup must end Failed with a reason naming the location and the gateway; nothing of it
# may be visible through the shared gateway (no object, no velero-backup.json); and the next
# backup to the location, served again (by the shared gateway), completes. Careless code this
# catches: treating the dead connection as the end of the stream (a Completed backup with a
# truncated tarball), a store failure counted as an error of one object while the listing goes
# on, retrying forever, or committing the files written before the failure.
# The multipart upload itself cannot be aborted while its gateway is dead (the abort is a request
# to it): it stays pending, invisible, and is listed here.
test_backup_gateway_killed_mid_upload() {
  bk_up bk-gw
  local p="t-gw-$$" gw id=2
  gw=$("$REPO/scripts/testenv" rgw start --id "$id")
  trap '"$REPO/scripts/testenv" rgw stop --id '"$id"' >/dev/null 2>&1 || true' EXIT
  bk_bsl_s3 s3loc "$p"
  jq --arg u "$gw" '.metadata.name="gw" | .spec.config.s3Url=$u' s3loc.bsl.json > gw.bsl.json
  kubectl create namespace kcm-system >/dev/null
  # 24 Secrets of 768 KiB of random bytes: about 2 x 24 MiB of base64 in the tarball (each
  # object is there twice), which gzip cannot shrink much: 4-5 parts of 8 MiB
  bk_load_blobs blob 24 768
  mkb() { jq -n --arg n "$1" --arg l "$2" '{apiVersion:"velero.io/v1",kind:"Backup",metadata:{name:$n,namespace:"kcm-system"},
            spec:{includedNamespaces:["blob"],storageLocation:$l}}' | kubectl create -f - >/dev/null; }
  mkb gwkill gw
  "$ENGINE_E2E" backup --namespace kcm-system --backup gwkill --bsl-file gw.bsl.json --cred-file creds \
    --concurrency 1 > gwkill.out 2> gwkill.err &
  local pid=$!
  # wait for the multipart upload through the shared gateway, then kill the location's gateway
  python3 - "$KCMDR_S3_ENDPOINT" "$KCMDR_S3_BUCKET" "$p/backups/gwkill/" > upload.txt <<'PY' || fail "no multipart upload seen"
import sys, time, boto3
ep, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=ep)
deadline = time.time() + 60
while time.time() < deadline:
    ups = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    if ups:
        print(ups[0]["Key"], ups[0]["UploadId"])
        sys.exit(0)
    time.sleep(0.02)
sys.exit(1)
PY
  "$REPO/scripts/testenv" rgw kill --id "$id"
  local t0=$SECONDS
  wait "$pid" || fail "engine-e2e did not record an outcome: $(cat gwkill.err)"
  RES=$(cat gwkill.out)
  assert_eq Failed "$(jq -r .phase <<<"$RES")" "phase with the gateway killed"
  assert_eq Failed "$(bk_phase gwkill)" "phase in the cluster"
  local reason; reason=$(kubectl -n kcm-system get backup gwkill -o jsonpath='{.status.failureReason}')
  assert_contains "$reason" "storage location gw: writing backups/gwkill/gwkill.tar.gz: " "the reason names the location and file"
  assert_contains "$reason" "${gw#http://}" "the reason names the dead gateway"
  echo "failed $((SECONDS - t0)) s after the kill: $reason"
  # nothing of it through the shared gateway but its claim (the gateway that could remove it is
  # dead; deleting the Backup removes it): no velero-backup.json, no partial file
  local left; left=$(s3 ls --recursive "s3://$KCMDR_S3_BUCKET/$p/" | awk '{print $4}')
  assert_eq "$p/backups/gwkill/gwkill-claim.json" "$left" "objects left"
  assert_eq "$(kubectl -n kcm-system get backup gwkill -o jsonpath='{.metadata.uid}')" \
    "$(s3 cp "s3://$KCMDR_S3_BUCKET/$p/backups/gwkill/gwkill-claim.json" - | jq -r .uid)" "the claim's uid"
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3api list-multipart-uploads --bucket "$KCMDR_S3_BUCKET" --prefix "$p/" \
    --query 'Uploads[].[Key,UploadId]' --output text > pending.txt
  echo "pending multipart uploads after the failure: $(cat pending.txt)"
  grep -q "^$p/backups/gwkill/gwkill.tar.gz" pending.txt || fail "no pending upload: was the gateway killed mid-upload?"
  # the next backup to the location, served again, completes and holds every object
  jq '.metadata.name="gw"' s3loc.bsl.json > gw.bsl.json
  mkb after gw
  bk_run after gw
  assert_eq Completed "$(jq -r .phase <<<"$RES")" "the next backup"
  [ "$(jq -r .items <<<"$RES")" -ge 25 ] || fail "the next backup holds $(jq -r .items <<<"$RES") items"
  s3 ls "s3://$KCMDR_S3_BUCKET/$p/backups/after/velero-backup.json" >/dev/null || fail "the next backup has no velero-backup.json"
}
