# t_secure_drill.sh — the disaster-recovery drill (t_restore.sh's
# test_restore_drill_lost_cluster_comes_back_on_another) once with every protection of issue 15
# on at the same time: encryption, signatures and S3 Object Lock on one location. (Uses rs_up,
# rs_restore, rs_wait, bk_wait, rs_dump, RS_TYPES of t_restore.sh, start_controller/ctl_stop_all
# of t_controller.sh, wait_phase of t_engine.sh, s3api of t_lock.sh, lock_bsl of lib.sh.)

# sd_bsl NAME BUCKET PREFIX SIGNING(yes|no): a default S3 BSL on the gateway, own credentials
# Secret, annotated with object lock GOVERNANCE, the encryption Secret enc/keys, the verify key
# Secret verify/pub and require-signature; with SIGNING=yes also the signing key Secret sign/key
# (the backing-up cluster has it; the restoring one only needs the public key)
sd_bsl() {
  local sign=""
  [ "$4" = yes ] && sign=", kcmdr.io/signing-secret: sign/key"
  lock_bsl "$1" "$2" "$3" GOVERNANCE "" true \
    "kcmdr.io/encryption-secret: enc/keys, kcmdr.io/verify-secret: verify/pub, kcmdr.io/require-signature: \"true\"$sign"
}

# Tried: control plane A with the kcm fixture (20 ClusterDeployments, ~280 objects, and 20 that
# are not kcm's) backs up on demand to a location on a bucket created with object lock, the
# location encrypting (key k1 from a Secret), signing (an Ed25519 key from a Secret), requiring
# signatures and locking GOVERNANCE; A is lost. Control plane B, a clean install, gets the same
# location with the same encryption Secret and only the public key, finds the backup by sync and
# restores it. Asserted: on A every file of the backup in the bucket is locked GOVERNANCE until
# the backup's expiration, the tarball starts with KDCRYPT1 (not the gzip magic) and
# <b>-checksums.json.sig exists naming the signer's key id (SHA-256 of the raw public key,
# computed here with openssl); on B `kcmdr backup verify` passes, says the backup is encrypted
# with k1 and signed by that key id with a valid signature; the restore is Completed with no
# errors, every backed-up object is in B and equal to A's copy (rs_dump, the drill's comparison)
# and nothing outside the backup appeared. (Named test_securedrill_*, not test_restore_*, so that
# it runs once: the [upstream] CRD shape of the drill is t_restore.sh's.)
test_securedrill_encrypted_signed_locked_cluster_comes_back() {
  local prefix=sdrill-$RANDOM$RANDOM bucket=kcmdr-sdrill-$RANDOM$RANDOM k1 kid bk=secure-drill t0
  k1=$(openssl rand -base64 32)
  openssl genpkey -algorithm ed25519 -out sign.pem 2>/dev/null
  openssl pkey -in sign.pem -pubout -out sign.pub 2>/dev/null
  kid=$(openssl pkey -pubin -in sign.pub -outform DER | tail -c 32 | sha256sum | cut -c1-16)
  s3api create-bucket --bucket "$bucket" --object-lock-enabled-for-bucket >/dev/null

  # --- control plane A: the management cluster and its protected location
  rs_up sdrill-a
  "$REPO/scripts/fixture" --cluster-deployments 20 --extra 20 2>/dev/null
  kubectl -n kcm-system create secret generic enc --from-literal=keys="k1=$k1" >/dev/null
  kubectl -n kcm-system create secret generic sign --from-file=key=sign.pem >/dev/null
  kubectl -n kcm-system create secret generic verify --from-file=pub=sign.pub >/dev/null
  sd_bsl s3 "$bucket" "$prefix" yes
  start_controller a.log --engine=builtin
  # an on-demand backup (no schedule: no wait for a cron minute); kcm's own objects, this
  # ManagementBackup among them, are in it and must come back
  kubectl apply -f - >/dev/null <<YAML
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: $bk, labels: {k0rdent.mirantis.com/component: kcm}, annotations: {kcmdr.test/in-backup: "true"}}
spec: {storageLocation: s3}
YAML
  wait_phase "$bk" Completed 90
  local items; items=$(kubectl -n kcm-system get backup "$bk" -o jsonpath='{.status.progress.itemsBackedUp}')
  [ "$items" -ge 200 ] || fail "the backup holds only $items objects; the drill wants at least 200"
  local exp; exp=$(kubectl -n kcm-system get backup "$bk" -o jsonpath='{.status.expiration}')
  ctl_stop_all  # A is lost (its API server stays up only to compare against)
  rs_dump $RS_TYPES > a.all
  awk -F'\t' '$2 ~ /"kcmdr.test\/in-backup":"true"/' a.all > a.in
  grep -c . a.in > /dev/null || fail "the fixture marked nothing for the backup"

  # --- what is in the bucket: locked, encrypted, signed
  local keys k
  keys=$(s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix/backups/$bk/" | jq -r '.Contents[].Key')
  for k in velero-backup.json $bk.tar.gz $bk-checksums.json $bk-checksums.json.sig $bk-resource-list.json.gz $bk-logs.gz; do
    grep -qx "$prefix/backups/$bk/$k" <<<"$keys" || fail "$k is not in the bucket: $keys"
  done
  for k in $keys; do
    assert_eq "GOVERNANCE ${exp:0:19}" \
      "$(s3api head-object --bucket "$bucket" --key "$k" | jq -r '"\(.ObjectLockMode) \(.ObjectLockRetainUntilDate[0:19])"')" "lock of $k"
  done
  s3api get-object --bucket "$bucket" --key "$prefix/backups/$bk/$bk.tar.gz" tar.bin >/dev/null
  assert_eq "KDCRYPT1" "$(head -c 8 tar.bin)" "the tarball's first bytes"
  ! gzip -t tar.bin 2>/dev/null || fail "the tarball is gzip: it was stored in clear"
  s3api get-object --bucket "$bucket" --key "$prefix/backups/$bk/$bk-checksums.json.sig" sig.json >/dev/null
  assert_eq "ed25519 $kid" "$(jq -r '"\(.algorithm) \(.keyId)"' sig.json)" "the signature file"

  # --- control plane B: a clean install, the same location, keys and public key only
  rs_up sdrill-b
  kubectl -n kcm-system create secret generic enc --from-literal=keys="k1=$k1" >/dev/null
  kubectl -n kcm-system create secret generic verify --from-file=pub=sign.pub >/dev/null
  sd_bsl s3 "$bucket" "$prefix" no
  start_controller b.log --engine=builtin
  bk_wait "$bk" Completed 30  # it appears by sync
  expect_exit 0 "$KCMDR" backup verify "$bk"
  assert_contains "$OUT" "encrypted with key id k1" "verify on B"
  assert_contains "$OUT" "signed by key $kid: the signature is valid" "verify on B"
  assert_contains "$OUT" "every object parses as JSON" "verify on B read the encrypted tarball"
  rs_dump $RS_TYPES | cut -f1 > b.pre  # what a clean install holds by itself
  t0=$SECONDS
  rs_restore drill "$bk" update
  rs_wait drill Completed 120
  echo "restore of $items objects took $((SECONDS - t0)) s"
  kubectl -n kcm-system get restore drill -o json | jq -e '.status.errors == 0 and
      .status.progress.itemsRestored == .status.progress.totalItems' >/dev/null \
    || fail "restore status: $(kubectl -n kcm-system get restore drill -o json | jq -c .status)"

  # every backed-up object is in B, equal; nothing else was created
  rs_dump $RS_TYPES > b.all
  local missing differing extra
  missing=$(join -t$'\t' -v1 <(cut -f1 a.in | sort) <(cut -f1 b.all | sort) | wc -l)
  differing=$(comm -23 <(sort a.in) <(sort b.all) | cut -f1 | sort | join -t$'\t' - <(cut -f1 b.all | sort) | wc -l)
  [ "$missing" = 0 ] || fail "$missing backed-up objects missing in B: $(join -t$'\t' -v1 <(cut -f1 a.in | sort) <(cut -f1 b.all | sort) | head -5)"
  [ "$differing" = 0 ] || fail "$differing objects differ; first: $(comm -23 <(sort a.in) <(sort b.all) | cut -f1 | head -1)"
  cut -f1 b.all | sort > b.keys
  sort -u <(cut -f1 a.in) b.pre > allowed.keys
  extra=$(comm -23 b.keys allowed.keys | grep -c . || true)
  [ "$extra" = 0 ] || fail "objects outside the backup appeared in B: $(comm -23 b.keys allowed.keys | head -5)"
  echo "secure drill: $(wc -l < a.in) objects backed up, $(($(wc -l < a.in) - missing)) restored, $missing missing, $differing differing"
}
