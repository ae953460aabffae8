# t_crypt.sh — encrypted and signed backups (src/crypt.c, issue 15 parts 1 and 2) through
# `kcmdr controller --engine=builtin` on a real API server, with the location's settings in its
# annotations and the keys in Secrets. Named test_backup_crypt_* so they also run on Velero's own
# CRD shape.

# cr_restore NAME BACKUP TARGET_NS: a Restore of namespace team mapped to TARGET_NS
cr_restore() {
  jq -n --arg n "$1" --arg b "$2" --arg t "$3" '{apiVersion:"velero.io/v1", kind:"Restore",
    metadata:{name:$n, namespace:"kcm-system"}, spec:{backupName:$b, includedNamespaces:["team"], namespaceMapping:{team:$t}}}' |
    kubectl create -f - >/dev/null
}
# cr_refused NAME BACKUP TARGET_NS WORDS: the restore ends FailedValidation (or Failed, for a
# tarball that fails its checksum while staged) saying WORDS, and TARGET_NS was never created
cr_refused() {
  cr_restore "$1" "$2" "$3"
  wait_until 60 sh -c "case \"\$(kubectl -n kcm-system get restore $1 -o jsonpath='{.status.phase}')\" in FailedValidation|Failed|Completed|PartiallyFailed) true;; *) false;; esac"
  local st; st=$(kubectl -n kcm-system get restore "$1" -o json | jq -c .status)
  case $(jq -r .phase <<<"$st") in FailedValidation|Failed) ;; *) fail "restore $1 of $2 was not refused: $st" ;; esac
  assert_contains "$st" "$4" "restore $1's reason"
  ! kubectl get namespace "$3" >/dev/null 2>&1 || fail "restore $1 created namespace $3 although it was refused"
}
cr_secret() { # cr_secret NAME KEY VALUE: create or replace a Secret in kcm-system
  kubectl -n kcm-system create secret generic "$1" --from-literal="$2=$3" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}
# cr_backup NAME LOCATION: a Backup of namespace team to LOCATION, Completed within 60 s
cr_backup() {
  kubectl create -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: Backup
metadata: {name: $1, namespace: kcm-system}
spec: {storageLocation: $2, includedNamespaces: [team]}
YAML
  bk_wait "$1" Completed 60
}
# cr_flip FILE OFFSET: the byte of FILE at OFFSET set to NUL
cr_flip() { printf '\x00' | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
# cr_rehash DIR: one byte of DIR/b1.tar.gz changed and DIR/b1-checksums.json rewritten (from
# orig/) to match the changed tarball
cr_rehash() {
  cr_flip "$1/b1.tar.gz" 300
  local sum size; sum=$(sha256sum "$1/b1.tar.gz" | cut -d' ' -f1); size=$(stat -c %s "$1/b1.tar.gz")
  jq -c --arg s "$sum" --argjson z "$size" '.files |= with_entries(if (.key | endswith(".tar.gz")) then .value = {sha256:$s, size:$z} else . end)' \
    orig/b1-checksums.json > "$1/b1-checksums.json"
}
# cr_tampered DIR RESTORE TARGET_NS WORDS CMD...: backup b1's folder DIR put back from orig/,
# then changed by CMD; restore RESTORE of b1 into TARGET_NS is refused saying WORDS (cr_refused)
cr_tampered() {
  local d=$1 r=$2 ns=$3 words=$4
  shift 4
  rm -rf "$d" && cp -a orig "$d"
  "$@"
  cr_refused "$r" b1 "$ns" "$words"
}

# Tried: a namespace holding a Secret with a known value backed up to a location annotated with an
# encryption Secret (key k1), a signing key and require-signature; restored into another namespace;
# keys rotated (k2 first, k1 kept) and a second backup made; the encryption Secret replaced by a
# wrong key under the same id, then removed; the backup's files tampered with one at a time.
# Asserted: Completed; no file of the backup holds the Secret's value, the tarball is not gzip,
# velero-backup.json is plain JSON naming the key id; describe says encrypted (k1) and signed/valid,
# verify passes and reports the signer, logs read; the restore brings the value back; after
# rotation the new backup uses k2 and the old one still restores; a wrong key and a missing key
# are FailedValidation with a message that says so and create nothing; each of: one byte changed
# in the tarball, one byte changed in the logs, the tarball changed with the checksums file
# rewritten to match, the signature deleted, is refused with nothing created.
test_backup_crypt_encrypted_signed_restore_and_tamper() {
  rs_up crypt
  mkdir -p store
  local value="plain-$RANDOM$RANDOM-secret-value" k1 k1bad k2
  k1=$(openssl rand -base64 32); k2=$(openssl rand -base64 32); k1bad=$(openssl rand -base64 32)
  openssl genpkey -algorithm ed25519 -out sign.pem 2>/dev/null
  openssl pkey -in sign.pem -pubout -out sign.pub 2>/dev/null
  kubectl create namespace team >/dev/null
  kubectl -n team create secret generic app --from-literal=password="$value" >/dev/null
  cr_secret enc keys "k1=$k1"
  kubectl -n kcm-system create secret generic sign --from-file=key=sign.pem >/dev/null
  kubectl -n kcm-system create secret generic verify --from-file=pub=sign.pub >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata:
  name: local
  namespace: kcm-system
  annotations: {kcmdr.io/encryption-secret: enc/keys, kcmdr.io/signing-secret: sign/key, kcmdr.io/verify-secret: verify/pub, kcmdr.io/require-signature: "true"}
spec: {provider: filesystem, default: true, objectStorage: {bucket: b}, config: {path: $PWD/store}, validationFrequency: 2s, backupSyncPeriod: 2s}
YAML
  start_controller ctl.log --engine=builtin
  cr_backup b1 local
  local d; d=$(dirname "$(find store -name velero-backup.json -path '*/b1/*')")
  [ -f "$d/b1.tar.gz" ] && [ -f "$d/b1-checksums.json.sig" ] || fail "files of b1: $(ls "$d")"
  ! grep -rqF "$value" "$d" || fail "a file of the backup holds the Secret's value in clear: $(grep -rlF "$value" "$d")"
  ! grep -rqF "$(printf %s "$value" | base64)" "$d" || fail "a file of the backup holds the Secret's base64 value"
  [ "$(head -c 2 "$d/b1.tar.gz" | od -An -tx1 | tr -d ' ')" != 1f8b ] || fail "the tarball is still gzip"
  jq -e '.metadata.annotations["kcmdr.io/encryption-key-id"] == "k1" and .status.phase == "Completed"' "$d/velero-backup.json" >/dev/null ||
    fail "velero-backup.json: $(head -c 400 "$d/velero-backup.json")"
  expect_exit 0 "$KCMDR" backup describe b1
  assert_contains "$OUT" "Encrypted:     yes (key id k1)" "describe"
  assert_contains "$OUT" "Signed:        yes, valid (key id" "describe"
  expect_exit 0 "$KCMDR" backup verify b1
  assert_contains "$OUT" "the signature is valid" "verify"
  assert_contains "$OUT" "every object parses as JSON" "verify read the encrypted tarball"
  expect_exit 0 "$KCMDR" backup logs b1
  assert_contains "$OUT" "Backed up a total of" "logs of an encrypted backup"
  cr_restore r1 b1 copy1
  rs_wait r1 Completed 60
  assert_eq "$value" "$(kubectl -n copy1 get secret app -o jsonpath='{.data.password}' | base64 -d)" "the restored Secret"

  # rotation: k2 is current, k1 kept for the old backup
  cr_secret enc keys "k2=$k2
k1=$k1"
  cr_backup b2 local
  expect_exit 0 "$KCMDR" backup describe b2
  assert_contains "$OUT" "Encrypted:     yes (key id k2)" "describe after rotation"
  cr_restore r2 b1 copy2
  rs_wait r2 Completed 60
  assert_eq "$value" "$(kubectl -n copy2 get secret app -o jsonpath='{.data.password}' | base64 -d)" "the old backup after rotation"

  # a wrong key under the same id, then no encryption Secret at all
  cr_secret enc keys "k1=$k1bad"
  cr_refused r3 b1 copy3 "does not unwrap"
  kubectl -n kcm-system annotate bsl local kcmdr.io/encryption-secret- >/dev/null
  cr_refused r4 b1 copy4 "names no encryption Secret"
  kubectl -n kcm-system annotate bsl local kcmdr.io/encryption-secret=enc/keys >/dev/null
  cr_secret enc keys "k1=$k1"

  # tampering, one at a time, each undone afterwards
  cp -a "$d" orig
  cr_tampered "$d" r5 copy5 "b1.tar.gz" cr_flip "$d/b1.tar.gz" 300
  cr_tampered "$d" r6 copy6 "b1-logs.gz" cr_flip "$d/b1-logs.gz" 100
  cr_tampered "$d" r7 copy7 "does not match the checksums file" cr_rehash "$d"
  cr_tampered "$d" r8 copy8 "not signed" rm "$d/b1-checksums.json.sig"
  expect_exit 1 "$KCMDR" backup verify b1
  assert_contains "$OUT" "not signed" "verify of an unsigned backup where signatures are required"
  rm -rf "$d" && cp -a orig "$d"
}

# Tried: a backup signed by another key (made through a second location with its own signing
# Secret), its folder copied into the location that requires signatures from the first key, the
# second location and the Backup object removed so that sync brings the copy in.
# Asserted: the copy syncs in, and its restore is FailedValidation naming the unknown signer,
# with nothing created.
test_backup_crypt_copied_backup_signed_by_another_key() {
  rs_up crypt-copy
  mkdir -p store other
  openssl genpkey -algorithm ed25519 -out a.pem 2>/dev/null
  openssl genpkey -algorithm ed25519 -out b.pem 2>/dev/null
  kubectl create namespace team >/dev/null
  kubectl -n team create configmap c --from-literal=a=b >/dev/null
  kubectl -n kcm-system create secret generic sign-a --from-file=key=a.pem >/dev/null
  kubectl -n kcm-system create secret generic sign-b --from-file=key=b.pem >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: other, namespace: kcm-system, annotations: {kcmdr.io/signing-secret: sign-b/key}}
spec: {provider: filesystem, objectStorage: {bucket: b}, config: {path: $PWD/other}, validationFrequency: 2s, backupSyncPeriod: 2s}
YAML
  start_controller ctl.log --engine=builtin
  cr_backup foreign other
  kubectl -n kcm-system delete bsl other >/dev/null
  kubectl -n kcm-system delete backup foreign >/dev/null
  mkdir -p store/backups && cp -a other/backups/foreign store/backups/
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: local, namespace: kcm-system, annotations: {kcmdr.io/signing-secret: sign-a/key, kcmdr.io/require-signature: "true"}}
spec: {provider: filesystem, default: true, objectStorage: {bucket: b}, config: {path: $PWD/store}, validationFrequency: 2s, backupSyncPeriod: 2s}
YAML
  wait_until 30 sh -c "[ \"\$(kubectl -n kcm-system get backup foreign -o jsonpath='{.spec.storageLocation}')\" = local ]"
  bk_wait foreign Completed 30
  cr_refused rf foreign copyf "which is not among the location's verification keys"
  expect_exit 1 "$KCMDR" backup verify foreign
  assert_contains "$OUT" "which is not among the location's verification keys" "verify of a backup signed by another key"
}
