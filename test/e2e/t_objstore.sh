# t_objstore.sh — the object-store layer (objstore.c, s3.c, sigv4.c, fsstore.c) on the real Ceph
# RADOS Gateway, checked with an independent client (awscli/botocore): bytes round-trip exactly,
# multipart uploads complete and aborted ones leave nothing, listings page past 1,000 keys,
# awkward keys survive, and every failure says what went wrong without printing a secret.
OBJSTORE_E2E=${OBJSTORE_E2E:-$REPO/build/objstore-e2e}

# s3api ARGS...: awscli against the gateway (the testenv exports the AWS_* credentials)
s3api() { aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3api "$@"; }

# write_bsl FILE PREFIX [CONFIG-JSON]: a velero.io/v1 BSL for the test bucket, path style
write_bsl() {
  local config=${3:-'{}'}
  jq -n --arg b "$KCMDR_S3_BUCKET" --arg p "$2" --arg u "$KCMDR_S3_ENDPOINT" --argjson c "$config" \
    '{apiVersion: "velero.io/v1", kind: "BackupStorageLocation", metadata: {name: "default", namespace: "velero"},
      spec: {provider: "aws", objectStorage: {bucket: $b, prefix: $p},
             config: ({region: "us-east-1", s3Url: $u, s3ForcePathStyle: "true"} + $c)}}' > "$1"
}

# write_creds FILE [SECRET] [ACCESS-KEY]: an AWS shared-credentials file (CRLF, comments, spaces)
write_creds() {
  printf '# kcmdr e2e\r\n[default]\r\naws_access_key_id = %s\r\naws_secret_access_key=  %s\r\n' \
    "${3:-$AWS_ACCESS_KEY_ID}" "${2:-$AWS_SECRET_ACCESS_KEY}" > "$1"
}

# no_secret FILE...: none of the outputs holds the secret key (or the wrong one tried)
no_secret() {
  local f
  for f in "$@"; do
    if grep -qF -e "$AWS_SECRET_ACCESS_KEY" -e "wrong-secret-kcmdr-e2e" "$f"; then fail "a secret key is in $f"; fi
  done
}

test_objstore_round_trip_byte_exact_with_awkward_keys() {
  local p="e2e-objstore/rt-$$"
  write_bsl bsl.json "/$p/"  # the prefix is trimmed of '/'
  write_creds creds
  "$OBJSTORE_E2E" bsl.json creds check
  assert_eq "s3://$KCMDR_S3_BUCKET/$p at $KCMDR_S3_ENDPOINT" "$("$OBJSTORE_E2E" bsl.json creds describe)" "describe"
  head -c 3000000 /dev/urandom > blob
  # keys that break careless encoders: spaces, '+', '%', UTF-8, '~', '=', '&', '?', '#', ';', quotes
  local keys=("a b/c d.bin" "plus+sign" "percent%20literal" "utf8/é€ሴ" "tilde~and=eq&amp?q#h" "semi;colon 'q' \"dq\"" "x/y/z")
  local k
  for k in "${keys[@]}"; do "$OBJSTORE_E2E" bsl.json creds put "$k" < blob; done
  # what awscli sees: the same keys under the prefix, byte-exact content
  s3api list-objects-v2 --bucket "$KCMDR_S3_BUCKET" --prefix "$p/" | jq -r '.Contents[].Key' | LC_ALL=C sort > aws-keys
  printf '%s\n' "${keys[@]}" | sed "s#^#$p/#" | LC_ALL=C sort > want-keys
  diff want-keys aws-keys || fail "awscli lists other keys than we wrote"
  for k in "${keys[@]}"; do
    s3api get-object --bucket "$KCMDR_S3_BUCKET" --key "$p/$k" got >/dev/null
    cmp blob got || fail "object '$k' read by awscli differs"
    "$OBJSTORE_E2E" bsl.json creds get "$k" | cmp blob - || fail "object '$k' read by us differs"
    assert_eq 3000000 "$("$OBJSTORE_E2E" bsl.json creds head "$k")" "head '$k'"
  done
  # what awscli wrote, we read; our listing is byte-ordered and relative to the prefix
  printf 'from awscli\n' > small
  s3api put-object --bucket "$KCMDR_S3_BUCKET" --key "$p/from aws+cli/é" --body small >/dev/null
  "$OBJSTORE_E2E" bsl.json creds get "from aws+cli/é" | cmp small - || fail "awscli's object read by us differs"
  "$OBJSTORE_E2E" bsl.json creds list "" > ours
  cut -f1 ours > ours-keys
  LC_ALL=C sort ours-keys | cmp - ours-keys || fail "our listing is not in byte order"
  (printf '%s\n' "${keys[@]}"; echo "from aws+cli/é") | LC_ALL=C sort | cmp - ours-keys || fail "our listing differs"
  assert_eq "a b/ P|from aws+cli/ P|percent%20literal O|plus+sign O|semi;colon 'q' \"dq\" O|tilde~and=eq&amp?q#h O|utf8/ P|x/ P" \
    "$("$OBJSTORE_E2E" bsl.json creds list "" / | cut -f1,2 | tr '\t\n' ' |' | sed 's/|$//')" "listing with '/'"
  # delete: gone for awscli too; deleting again is fine; a missing key is a clear not-found
  "$OBJSTORE_E2E" bsl.json creds delete "plus+sign"
  "$OBJSTORE_E2E" bsl.json creds delete "plus+sign"
  expect_exit 255 s3api head-object --bucket "$KCMDR_S3_BUCKET" --key "$p/plus+sign"
  expect_exit 1 "$OBJSTORE_E2E" bsl.json creds get "plus+sign"
  assert_contains "$OUT" "NoSuchKey" "missing key"
  # tried: keys that would escape the location
  expect_exit 1 "$OBJSTORE_E2E" bsl.json creds put "../outside" < small
  assert_contains "$OUT" "not a valid key" "hostile key"
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 rm --recursive --quiet "s3://$KCMDR_S3_BUCKET/$p/"
}

test_objstore_multipart_upload_and_abort() {
  local p="e2e-objstore/mp-$$"
  write_bsl bsl.json "$p"
  write_creds creds
  head -c 20971520 /dev/urandom > big  # 20 MiB: parts of 8 + 8 + 4 MiB
  assert_eq 20971520 "$("$OBJSTORE_E2E" bsl.json creds writer backups/b/b.tar.gz < big)" "writer size"
  s3api get-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/b/b.tar.gz" got >/dev/null
  cmp big got || fail "the multipart object read by awscli differs"
  assert_contains "$(s3api head-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/b/b.tar.gz" | jq -r .ETag)" "-3\"" \
    "a 3-part upload"
  # a small writer is one PUT (no multipart ETag)
  head -c 1000 big | "$OBJSTORE_E2E" bsl.json creds writer small >/dev/null
  case $(s3api head-object --bucket "$KCMDR_S3_BUCKET" --key "$p/small" | jq -r .ETag) in *-*) fail "a small object went multipart";; esac
  # aborted after 12 MiB: while held, the upload is in progress and nothing is visible; after
  # the abort no upload is left and there is no object
  head -c 12582912 big > part
  # held 15 s: awscli starting under a loaded CI machine took longer than 4 s (seen: 0 uploads listed)
  OBJSTORE_E2E_HOLD_MS=15000 "$OBJSTORE_E2E" bsl.json creds writer-abort backups/c/c.tar.gz < part > abort.out &
  local pid=$!
  wait_until 30 grep -q holding abort.out
  assert_eq 1 "$(s3api list-multipart-uploads --bucket "$KCMDR_S3_BUCKET" --prefix "$p/backups/c/" | jq '.Uploads | length')" \
    "the upload in progress"
  expect_exit 255 s3api head-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/c/c.tar.gz"
  wait "$pid" || fail "writer-abort failed: $(cat abort.out)"
  assert_eq 0 "$(s3api list-multipart-uploads --bucket "$KCMDR_S3_BUCKET" --prefix "$p/" | jq '.Uploads // [] | length')" \
    "uploads left after abort"
  expect_exit 255 s3api head-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/c/c.tar.gz"
  # the same when the commit cannot happen: a writer into a bucket that does not exist fails and
  # leaves nothing
  write_bsl nob.json "$p" '{}'
  jq '.spec.objectStorage.bucket = "kcmdr-no-such-bucket"' nob.json > nob2.json
  expect_exit 1 "$OBJSTORE_E2E" nob2.json creds writer x < part
  assert_contains "$OUT" "NoSuchBucket: bucket kcmdr-no-such-bucket does not exist" "writer into a missing bucket"
  s3api delete-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/b/b.tar.gz" >/dev/null
  s3api delete-object --bucket "$KCMDR_S3_BUCKET" --key "$p/small" >/dev/null
}

# Debian's radosgw 16.2.15 honours "If-None-Match: *" on PutObject (412 PreconditionFailed when
# the key exists; checked here and, independently, with botocore), so put_new is exclusive there.
test_objstore_put_new_is_exclusive_on_rgw() {
  local p="e2e-objstore/new-$$"
  write_bsl bsl.json "$p"
  write_creds creds
  printf 'first' | "$OBJSTORE_E2E" bsl.json creds put-new backups/b/velero-backup.json
  assert_eq first "$(s3api get-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/b/velero-backup.json" /dev/stdout | head -c 5)" \
    "put_new wrote"
  # tried: the same key again -> conflict, the first bytes kept
  expect_exit 1 sh -c "printf second | '$OBJSTORE_E2E' bsl.json creds put-new backups/b/velero-backup.json"
  assert_contains "$OUT" "conflict" "second put_new"
  assert_contains "$OUT" "already exists" "second put_new says why"
  assert_eq first "$(s3api get-object --bucket "$KCMDR_S3_BUCKET" --key "$p/backups/b/velero-backup.json" /dev/stdout | head -c 5)" \
    "the first bytes stay"
  # independently: botocore's conditional PUT of the same key is refused by the gateway too
  python3 - "$KCMDR_S3_ENDPOINT" "$KCMDR_S3_BUCKET" "$p/backups/b/velero-backup.json" > boto.out 2>&1 <<'PY' || true
import sys, botocore.session
c = botocore.session.get_session().create_client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
c.meta.events.register("before-call.s3.PutObject", lambda params, **kw: params["headers"].update({"If-None-Match": "*"}))
try:
    c.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=b"boto")
    print("accepted")
except Exception as e:
    print("refused", e)
PY
  assert_contains "$(cat boto.out)" "refused" "botocore's conditional PUT"
  assert_contains "$(cat boto.out)" "PreconditionFailed" "botocore's conditional PUT"
  # the probe left nothing behind
  assert_eq "$p/backups/b/velero-backup.json" \
    "$(s3api list-objects-v2 --bucket "$KCMDR_S3_BUCKET" --prefix "$p/" | jq -r '.Contents[].Key')" "only the key is there"
  # tried: eight processes creating one key at once: exactly one wins, the object holds its bytes
  local i
  for i in 1 2 3 4 5 6 7 8; do
    (printf 'racer %s' "$i" | "$OBJSTORE_E2E" bsl.json creds put-new race/lock > "race.$i.out" 2>&1; echo $? > "race.$i.rc") &
  done
  wait
  assert_eq 1 "$(cat race.*.rc | grep -c '^0$')" "winners"
  assert_eq 7 "$(grep -l 'already exists' race.*.out | wc -l)" "losers told it exists"
  local winner
  winner=$(grep -l '^0$' race.*.rc | sed 's/race\.\(.*\)\.rc/\1/')
  assert_eq "racer $winner" "$(s3api get-object --bucket "$KCMDR_S3_BUCKET" --key "$p/race/lock" /dev/stdout | head -c 7)" \
    "the winner's bytes"
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 rm --recursive --quiet "s3://$KCMDR_S3_BUCKET/$p/"
}

# tried: a write guard that refuses (a deposed leader): put, put_new, delete and a multipart
# writer fail with its code and the gateway is unchanged; reads go on.
test_objstore_write_guard_on_rgw() {
  local p="e2e-objstore/guard-$$"
  write_bsl bsl.json "$p"
  write_creds creds
  printf 'kept' | "$OBJSTORE_E2E" bsl.json creds put keep
  expect_exit 1 sh -c "printf x | '$OBJSTORE_E2E' bsl.json creds guarded put k"
  assert_contains "$OUT" "deposed" "guarded put"
  assert_contains "$OUT" "cancelled" "guarded put code"
  expect_exit 1 sh -c "printf x | '$OBJSTORE_E2E' bsl.json creds guarded put-new k"
  assert_contains "$OUT" "deposed" "guarded put_new"
  expect_exit 1 "$OBJSTORE_E2E" bsl.json creds guarded delete keep
  assert_contains "$OUT" "deposed" "guarded delete"
  head -c 9000000 /dev/urandom > big
  expect_exit 1 sh -c "'$OBJSTORE_E2E' bsl.json creds guarded writer w < big"
  assert_contains "$OUT" "deposed" "guarded writer"
  assert_eq keep "$(s3api list-objects-v2 --bucket "$KCMDR_S3_BUCKET" --prefix "$p/" | jq -r '.Contents[].Key' | sed "s#^$p/##")" \
    "nothing written or deleted"
  assert_eq 0 "$(s3api list-multipart-uploads --bucket "$KCMDR_S3_BUCKET" --prefix "$p/" | jq '.Uploads // [] | length')" \
    "no upload started"
  assert_eq kept "$("$OBJSTORE_E2E" bsl.json creds guarded get keep)" "reads are not guarded"
  assert_eq keep "$("$OBJSTORE_E2E" bsl.json creds guarded list "" | cut -f1)" "listings are not guarded"
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 rm --recursive --quiet "s3://$KCMDR_S3_BUCKET/$p/"
}

test_objstore_listing_pages_past_1000_keys() {
  local p="e2e-objstore/pages-$$"
  write_bsl bsl.json "$p"
  write_creds creds
  "$OBJSTORE_E2E" bsl.json creds many k/ 2500
  "$OBJSTORE_E2E" bsl.json creds list k/ | cut -f1 > ours
  assert_eq 2500 "$(wc -l < ours)" "keys listed (3 pages)"
  assert_eq 2500 "$(sort -u ours | wc -l)" "each key once"
  s3api list-objects-v2 --bucket "$KCMDR_S3_BUCKET" --prefix "$p/k/" | jq -r '.Contents[].Key' | sed "s#^$p/##" > theirs
  diff theirs ours >/dev/null || fail "our listing differs from awscli's"
  # the common prefixes of a delimiter listing come once, in order with the objects
  printf x | "$OBJSTORE_E2E" bsl.json creds put d/b/1
  printf x | "$OBJSTORE_E2E" bsl.json creds put d/a/2
  printf x | "$OBJSTORE_E2E" bsl.json creds put d/a0
  printf x | "$OBJSTORE_E2E" bsl.json creds put d/a-
  assert_eq "d/a-	O	1|d/a/	P	0|d/a0	O	1|d/b/	P	0" \
    "$("$OBJSTORE_E2E" bsl.json creds list d/ / | tr '\n' '|' | sed 's/|$//')" "delimiter listing"
  assert_eq "d/a/2" "$("$OBJSTORE_E2E" bsl.json creds list d/a/ | cut -f1)" "a deeper prefix"
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 rm --recursive --quiet "s3://$KCMDR_S3_BUCKET/$p/"
}

test_objstore_failures_say_what_failed() {
  local p="e2e-objstore/fail-$$"
  write_bsl bsl.json "$p"
  # tried: the right access key with a wrong secret -> SignatureDoesNotMatch, named as such
  write_creds bad wrong-secret-kcmdr-e2e
  expect_exit 1 "$OBJSTORE_E2E" bsl.json bad check
  echo "$OUT" > out.1
  assert_contains "$OUT" "SignatureDoesNotMatch: the secret key is wrong" "wrong secret"
  assert_contains "$OUT" "unauthorized" "wrong secret code"
  expect_exit 1 "$OBJSTORE_E2E" bsl.json bad put k < /dev/null
  echo "$OUT" > out.2
  assert_contains "$OUT" "SignatureDoesNotMatch" "wrong secret on put"
  # tried: an access key the gateway does not know
  write_creds badkey "$AWS_SECRET_ACCESS_KEY" KCMDRNOSUCHKEY00000
  expect_exit 1 "$OBJSTORE_E2E" bsl.json badkey check
  echo "$OUT" > out.3
  assert_contains "$OUT" "InvalidAccessKeyId: the access key ID KCMDRNOSUCHKEY00000 is not known" "unknown key"
  # tried: a bucket that does not exist
  write_creds creds
  jq '.spec.objectStorage.bucket = "kcmdr-missing"' bsl.json > nob.json
  expect_exit 1 "$OBJSTORE_E2E" nob.json creds check
  echo "$OUT" > out.4
  assert_contains "$OUT" "NoSuchBucket: bucket kcmdr-missing does not exist" "missing bucket"
  # tried: an endpoint where nothing listens (a stopped gateway): connection refused, quickly
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  jq --arg u "http://127.0.0.1:$port" '.spec.config.s3Url = $u' bsl.json > closed.json
  local t0=$SECONDS
  expect_exit 1 "$OBJSTORE_E2E" closed.json creds check
  echo "$OUT" > out.5
  assert_contains "$OUT" "connection refused" "stopped endpoint"
  assert_contains "$OUT" "127.0.0.1:$port" "stopped endpoint names it"
  [ $((SECONDS - t0)) -lt 20 ] || fail "the check of a closed port took $((SECONDS - t0)) s"
  # tried: no credentials at all; an unknown provider
  expect_exit 1 "$OBJSTORE_E2E" bsl.json - check
  assert_contains "$OUT" "no credentials" "no credentials"
  jq '.spec.provider = "azure"' bsl.json > az.json
  expect_exit 1 "$OBJSTORE_E2E" az.json creds check
  assert_contains "$OUT" "spec.provider 'azure' is not supported" "unknown provider"
  no_secret out.1 out.2 out.3 out.4 out.5
}

test_objstore_virtual_hosted_addressing() {
  # the gateway serves bucket.localhost (rgw dns name = localhost); curl resolves *.localhost
  local p="e2e-objstore/vh-$$" port=${KCMDR_S3_ENDPOINT##*:}
  write_bsl bsl.json "$p" "{\"s3Url\": \"http://localhost:$port\", \"s3ForcePathStyle\": \"false\"}"
  write_creds creds
  printf 'virtual' | "$OBJSTORE_E2E" bsl.json creds put "v h/obj+1"
  assert_eq virtual "$(s3api get-object --bucket "$KCMDR_S3_BUCKET" --key "$p/v h/obj+1" /dev/stdout | head -c 7)" "virtual-hosted put"
  assert_eq "v h/obj+1" "$("$OBJSTORE_E2E" bsl.json creds list "" | cut -f1)" "virtual-hosted list"
  "$OBJSTORE_E2E" bsl.json creds delete "v h/obj+1"
}

# A TLS front for the gateway (Python's ssl), with a certificate from a CA of our own.
start_tls_front() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=kcmdr-e2e-ca" -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout srv.key -out srv.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > srv.ext
  openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile srv.ext -out srv.crt 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other-ca" -keyout other.key -out other.crt 2>/dev/null
  cat > front.py <<'PY'
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
up = int(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(32)
print(ls.getsockname()[1], flush=True)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def handle(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except (OSError, ssl.SSLError):
        c.close()
        return
    u = socket.create_connection(("127.0.0.1", up))
    threading.Thread(target=pipe, args=(t, u), daemon=True).start()
    pipe(u, t)
while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
  python3 front.py srv.crt srv.key "${KCMDR_S3_ENDPOINT##*:}" > front.port 2> front.log &
  FRONT_PID=$!
  trap 'kill $FRONT_PID 2>/dev/null || true' EXIT
  wait_until 10 test -s front.port
}

test_objstore_tls_ca_cert_and_verification() {
  local p="e2e-objstore/tls-$$"
  start_tls_front
  local url="https://127.0.0.1:$(cat front.port)"
  write_creds creds
  # objectStorage.caCert (base64 PEM) makes the gateway's certificate trusted
  write_bsl bsl.json "$p" "{\"s3Url\": \"$url\"}"
  jq --arg ca "$(base64 -w0 ca.crt)" '.spec.objectStorage.caCert = $ca' bsl.json > ca.json
  "$OBJSTORE_E2E" ca.json creds check
  printf 'over tls' | "$OBJSTORE_E2E" ca.json creds put t
  assert_eq "over tls" "$("$OBJSTORE_E2E" ca.json creds get t)" "get over TLS"
  # tried: no caCert (the system CAs do not know ours), and the caCert of another CA: refused
  expect_exit 1 "$OBJSTORE_E2E" bsl.json creds check
  echo "$OUT" > out.1
  assert_contains "$OUT" "certificate" "unknown CA"
  assert_contains "$OUT" "transport error" "unknown CA code"
  jq --arg ca "$(base64 -w0 other.crt)" '.spec.objectStorage.caCert = $ca' bsl.json > other.json
  expect_exit 1 "$OBJSTORE_E2E" other.json creds check
  assert_contains "$OUT" "certificate" "another CA"
  # tried: a caCert that is not a certificate
  jq '.spec.objectStorage.caCert = "bm90IGEgY2VydA=="' bsl.json > junk.json
  expect_exit 1 "$OBJSTORE_E2E" junk.json creds check
  assert_contains "$OUT" "objectStorage.caCert" "junk caCert"
  # insecureSkipTLSVerify=true accepts it without the CA
  jq '.spec.config.insecureSkipTLSVerify = "true"' bsl.json > insecure.json
  assert_eq "over tls" "$("$OBJSTORE_E2E" insecure.json creds get t)" "insecureSkipTLSVerify"
  "$OBJSTORE_E2E" ca.json creds delete t
  no_secret out.1
}

test_objstore_filesystem_location() {
  mkdir store
  jq -n --arg d "$PWD/store" '{apiVersion: "velero.io/v1", kind: "BackupStorageLocation", metadata: {name: "local"},
    spec: {provider: "filesystem", objectStorage: {bucket: "ignored", prefix: "pre"}, config: {path: $d}}}' > fs.json
  "$OBJSTORE_E2E" fs.json - check
  head -c 20971520 /dev/urandom > big
  "$OBJSTORE_E2E" fs.json - writer "backups/b/b.tar.gz" < big >/dev/null
  cmp big store/pre/backups/b/b.tar.gz || fail "the file differs"
  # backups hold Secrets: owner-only files and directories, whatever the umask
  (umask 000; printf x | "$OBJSTORE_E2E" fs.json - put "backups/c/velero-backup.json")
  assert_eq "600 700 700 700" "$(stat -c %a store/pre/backups/c/velero-backup.json store/pre/backups/c store/pre/backups store/pre | tr '\n' ' ' | sed 's/ $//')" \
    "modes under umask 000"
  assert_eq 600 "$(stat -c %a store/pre/backups/b/b.tar.gz)" "mode of a streamed file (umask 022)"
  printf y | "$OBJSTORE_E2E" fs.json - put-new "backups/c/lock"
  expect_exit 1 sh -c "printf z | '$OBJSTORE_E2E' fs.json - put-new backups/c/lock"
  assert_contains "$OUT" "already exists" "filesystem put_new twice"
  assert_eq y "$(cat store/pre/backups/c/lock)" "the first bytes stay"
  "$OBJSTORE_E2E" fs.json - delete "backups/c/velero-backup.json"
  "$OBJSTORE_E2E" fs.json - delete "backups/c/lock"
  "$OBJSTORE_E2E" fs.json - get "backups/b/b.tar.gz" | cmp big - || fail "read back differs"
  assert_eq "backups/	P	0" "$("$OBJSTORE_E2E" fs.json - list "" /)" "filesystem listing"
  [ -z "$(find store -name '.kcmdr-tmp-*')" ] || fail "a temporary file was left"
  "$OBJSTORE_E2E" fs.json - delete "backups/b/b.tar.gz"
  [ -z "$(find store/pre -mindepth 1)" ] || fail "directories left after delete: $(find store)"
  # tried: a directory that does not exist
  jq '.spec.config.path = "/nonexistent/kcmdr"' fs.json > missing.json
  expect_exit 1 "$OBJSTORE_E2E" missing.json - check
  assert_contains "$OUT" "/nonexistent/kcmdr does not exist" "missing directory"
}

# A TCP front for the gateway that cuts the first connection passing LIMIT bytes in one
# direction (down: answers, up: requests), like a network failure in the middle of a transfer.
start_cutter() {
  cat > cutter.py <<'PY'
import socket, sys, threading
mode, limit, up = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(32)
print(ls.getsockname()[1], flush=True)
state = {"cut": False}
lock = threading.Lock()
def pipe(a, b, counted, both):
    n = 0
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if counted:
                n += len(d)
                with lock:
                    cut = not state["cut"] and n > limit
                    if cut:
                        state["cut"] = True
                if cut:
                    print("cut after", n, flush=True)
                    break
            b.sendall(d)
    except OSError:
        pass
    for s in both:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def handle(c):
    u = socket.create_connection(("127.0.0.1", up))
    threading.Thread(target=pipe, args=(c, u, mode == "up", (c, u)), daemon=True).start()
    pipe(u, c, mode == "down", (c, u))
while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
  rm -f cutter.out
  python3 cutter.py "$1" "$2" "${KCMDR_S3_ENDPOINT##*:}" > cutter.out 2> cutter.log &
  CUTTER_PID=$!
  trap 'kill $CUTTER_PID 2>/dev/null || true' EXIT
  wait_until 10 test -s cutter.out
}

test_objstore_transfers_survive_a_cut_connection() {
  local p="e2e-objstore/cut-$$"
  write_creds creds
  write_bsl direct.json "$p"
  head -c 12582912 /dev/urandom > big
  "$OBJSTORE_E2E" direct.json creds writer obj < big >/dev/null
  # a download cut after 4 MB resumes where it broke (Range, pinned by If-Match) and is exact
  start_cutter down 4000000
  write_bsl cut.json "$p" "{\"s3Url\": \"http://127.0.0.1:$(head -1 cutter.out)\"}"
  "$OBJSTORE_E2E" cut.json creds get obj > got 2> get.log
  cmp big got || fail "the resumed download differs"
  grep -q "cut after" cutter.out || fail "the connection was never cut"
  assert_contains "$(cat get.log)" "resuming" "resume logged"
  kill "$CUTTER_PID"
  # an upload cut inside a part: the part is sent again and the object is whole
  start_cutter up 3000000
  write_bsl cut.json "$p" "{\"s3Url\": \"http://127.0.0.1:$(head -1 cutter.out)\"}"
  "$OBJSTORE_E2E" cut.json creds writer obj2 < big >/dev/null
  grep -q "cut after" cutter.out || fail "the upload connection was never cut"
  s3api get-object --bucket "$KCMDR_S3_BUCKET" --key "$p/obj2" got2 >/dev/null
  cmp big got2 || fail "the object uploaded through a cut differs"
  assert_eq 0 "$(s3api list-multipart-uploads --bucket "$KCMDR_S3_BUCKET" --prefix "$p/" | jq '.Uploads // [] | length')" \
    "uploads left"
  aws --endpoint-url "$KCMDR_S3_ENDPOINT" s3 rm --recursive --quiet "s3://$KCMDR_S3_BUCKET/$p/"
}
