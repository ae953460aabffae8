# t_kube.sh — kcmdr's Kubernetes client on the real API server: both auth users, paging,
# conflicts, a watch cache that survives API-server restarts and 410 Gone, events, leader election.
KUBE_E2E=${KUBE_E2E:-$REPO/build/kube-e2e}
TESTENV=$REPO/scripts/testenv

test_client_crud_with_token_and_client_certificate() {
  "$KUBE_E2E" crud
  KUBECONFIG=$KCMDR_TEST_KUBECONFIG_CERT "$KUBE_E2E" crud
  # the same read through the CLI with each user (one object: other tests run alongside)
  assert_eq "$("$KCMDR" get namespaces default | jq -r .metadata.uid)" \
    "$(KUBECONFIG=$KCMDR_TEST_KUBECONFIG_CERT "$KCMDR" get namespaces default | jq -r .metadata.uid)" "both users"
}

test_client_wrong_token_is_a_clear_401() {
  sed 's/^\(    token: \).*/\1not-the-token/' "$KUBECONFIG" > bad.kubeconfig
  # tried: a token the server does not know -> exit 1 and a message naming HTTP 401
  expect_exit 1 "$KCMDR" --kubeconfig bad.kubeconfig get namespaces
  assert_contains "$OUT" "HTTP 401" "401 message"
  assert_contains "$OUT" "credentials were not accepted" "401 hint"
  # tried: a kubeconfig that is not YAML -> exit 1 naming the file
  printf 'clusters: [\n' > broken.kubeconfig
  expect_exit 1 "$KCMDR" --kubeconfig broken.kubeconfig get namespaces
  assert_contains "$OUT" "broken.kubeconfig" "malformed kubeconfig"
  # tried: a server that is not listening -> exit 1 with the transport error, after retries
  sed "s#server: .*#server: https://127.0.0.1:1#" "$KUBECONFIG" > closed.kubeconfig
  expect_exit 1 timeout 60 "$KCMDR" --kubeconfig closed.kubeconfig get namespaces
  assert_contains "$OUT" "127.0.0.1:1" "connection refused message"
}

test_client_paging_returns_each_object_once() {
  "$KUBE_E2E" paging paging-e2e 2000
  # the same through the CLI with another page size (no controller-manager runs: nothing else is there)
  assert_eq 2000 "$("$KCMDR" -n paging-e2e get configmaps --limit 77 --count)" "CLI paging"
}

test_client_conflicting_updates_all_apply() {
  out=$("$KUBE_E2E" conflict conflict-e2e)
  echo "$out"
  assert_contains "$out" "80 of 80 updates applied" "no update lost"
}

test_client_keeps_nul_and_utf8_in_server_strings() {
  # tried: an annotation holding \u0000 (the API server accepts it, kubectl patch can set it)
  "$KUBE_E2E" nul nul-e2e
  # what the client wrote back (a PUT of the object as it parsed it) is what the server holds
  assert_eq '"a\u0000b"' "$(kubectl -n nul-e2e get configmap nul -o json | jq -c .metadata.annotations.evil)" "NUL kept"
  assert_eq '"é"' "$(kubectl -n nul-e2e get configmap nul -o json | jq -c .metadata.annotations.utf8)" "UTF-8 kept"
  assert_eq "v2" "$(kubectl -n nul-e2e get configmap nul -o jsonpath='{.data.k}')" "update applied"
  # and the CLI reads it too
  assert_eq '"a\u0000b"' "$("$KCMDR" -n nul-e2e get configmaps nul | jq -c .metadata.annotations.evil)" "CLI"
}

test_client_list_stream_hands_out_server_bytes() {
  local ns=liststream-e2e
  kubectl create namespace "$ns" >/dev/null
  for i in 1 2 3 4; do kubectl -n "$ns" create configmap "cm$i" --from-literal=v="$i" >/dev/null; done
  head -c 300000 /dev/zero | tr '\0' x > big.txt  # an item spanning many receive chunks
  kubectl -n "$ns" create configmap big --from-file=v=big.txt >/dev/null
  # tried: what the issue did to stop every backup: a \u0000 (and non-ASCII) in an annotation
  kubectl -n "$ns" create configmap evil --from-literal=v=1 >/dev/null
  kubectl -n "$ns" patch configmap evil -p '{"metadata":{"annotations":{"evil":"a\u0000b","utf8":"é ü 日本"}}}' >/dev/null
  kubectl get --raw "/api/v1/namespaces/$ns/configmaps" > raw.json
  "$KUBE_E2E" liststream "$ns" raw.json "$(jq '.items | length' raw.json)"
}

test_client_refuses_unsafe_kubeconfigs() {
  # tried: a CA together with insecure-skip-tls-verify: kubectl's refusal, and no request is made
  sed 's#^\(    certificate-authority: .*\)#\1\n    insecure-skip-tls-verify: true#' "$KUBECONFIG" > both.kubeconfig
  expect_exit 1 "$KCMDR" --kubeconfig both.kubeconfig get namespaces
  assert_contains "$OUT" "specifying a root certificates file with the insecure flag is not allowed" "insecure with CA"
  # tried: the bearer token sent to a clear-text http:// server (here: --server pointing at it)
  expect_exit 1 "$KCMDR" --server http://127.0.0.1:1 get namespaces
  assert_contains "$OUT" "refusing to send credentials" "token over http"
  assert_contains "$OUT" "http://127.0.0.1:1" "names the server"
  token=$(sed -n 's/^    token: //p' "$KUBECONFIG")
  case $OUT in *"$token"*) fail "the token is in the message";; esac
}

test_client_events_aggregate_repeats() {
  "$KUBE_E2E" events events-e2e
  evs=$(kubectl -n events-e2e get events -o json)
  assert_eq 3 "$(jq '[.items[] | select(.reason=="BadSchedule")][0].count' <<<"$evs")" "aggregated count"
  assert_eq 1 "$(jq '[.items[] | select(.reason=="BadSchedule")] | length' <<<"$evs")" "one Event for repeats"
  assert_eq "Warning" "$(jq -r '[.items[] | select(.reason=="BadSchedule")][0].type' <<<"$evs")" "type"
  assert_eq "evtarget" "$(jq -r '[.items[] | select(.reason=="BackupCreated")][0].involvedObject.name' <<<"$evs")" "involved object"
}

# informer_matches NS DUMP: ask the informer for a dump and compare it with the server's truth
informer_matches() {
  local ns=$1 dump=$2
  rm -f "$dump"; kill -USR1 "$INF_PID"
  for _ in $(seq 1 25); do [ -f "$dump" ] && break; sleep 0.2; done
  [ -f "$dump" ] || return 1
  local truth cache handlers
  truth=$(kubectl -n "$ns" get configmaps -o json | jq -c '[.items[] | {(.metadata.name): .metadata.resourceVersion}] | add // {}' | jq -S -c .)
  cache=$(jq -S -c '.cache' "$dump"); handlers=$(jq -S -c '.handlers' "$dump")
  [ "$truth" = "$cache" ] && [ "$truth" = "$handlers" ]
}

test_informer_survives_apiserver_restart_and_410() {
  local ns=informer-e2e dump=$PWD/dump.json
  INF_ENV=informer
  # a control plane of its own: this test stops its API server
  trap '"$TESTENV" down --name "$INF_ENV" >/dev/null 2>&1' EXIT
  eval "$("$TESTENV" up --name "$INF_ENV" 2>/dev/null)"
  kubectl create namespace "$ns" >/dev/null
  for i in 1 2 3; do kubectl -n "$ns" create configmap "cm$i" --from-literal=v=$i >/dev/null; done
  "$KUBE_E2E" informer "$ns" "$dump" 2> informer.log & INF_PID=$!
  trap 'kill $INF_PID 2>/dev/null || true; "$TESTENV" down --name "$INF_ENV" >/dev/null 2>&1' EXIT
  wait_until 10 grep -q ready informer.log
  wait_until 30 informer_matches "$ns" "$dump"
  # changes while connected
  kubectl -n "$ns" create configmap cm4 --from-literal=v=4 >/dev/null
  kubectl -n "$ns" patch configmap cm1 -p '{"data":{"v":"changed"}}' >/dev/null
  kubectl -n "$ns" delete configmap cm2 >/dev/null
  wait_until 30 informer_matches "$ns" "$dump"

  # outage 1: the informer's API server goes down; changes go through an HA peer on the same etcd
  "$TESTENV" apiserver start --name "$INF_ENV" --index 2 >/dev/null
  "$TESTENV" apiserver stop --name "$INF_ENV" --index 1
  peer="$KCMDR_TEST_DIR/kubeconfig2"
  kubectl --kubeconfig "$peer" -n "$ns" create configmap cm5 --from-literal=v=5 >/dev/null
  kubectl --kubeconfig "$peer" -n "$ns" patch configmap cm3 -p '{"data":{"v":"during-outage"}}' >/dev/null
  kubectl --kubeconfig "$peer" -n "$ns" delete configmap cm4 >/dev/null
  "$TESTENV" apiserver start --name "$INF_ENV" --index 1 >/dev/null
  wait_until 60 informer_matches "$ns" "$dump"

  # outage 2 with etcd compacted meanwhile: resuming is impossible (410 Gone), so it lists again
  lists_before=$(jq .lists "$dump")
  "$TESTENV" apiserver stop --name "$INF_ENV" --index 1
  for i in 6 7 8; do kubectl --kubeconfig "$peer" -n "$ns" create configmap "cm$i" --from-literal=v=$i >/dev/null; done
  kubectl --kubeconfig "$peer" -n "$ns" delete configmap cm5 >/dev/null
  "$TESTENV" compact --name "$INF_ENV" >/dev/null
  "$TESTENV" apiserver start --name "$INF_ENV" --index 1 >/dev/null
  wait_until 60 informer_matches "$ns" "$dump"
  lists_after=$(jq .lists "$dump")
  [ "$lists_after" -gt "$lists_before" ] || fail "no relist after 410 (lists $lists_before -> $lists_after)"
  # no handler saw an add twice, a delete of something absent, or an update of something unknown
  assert_eq 0 "$(jq .anomalies "$dump")" "duplicated or lost events"
  "$TESTENV" apiserver stop --name "$INF_ENV" --index 2
  kill -TERM "$INF_PID"; wait "$INF_PID" || fail "informer exited with an error: $(tail -5 informer.log)"
}

test_leader_election_one_leader_and_takeover() {
  "$KUBE_E2E" lease lease-e2e kcmdr-e2e-lock A > a.out 2>a.err & A=$!
  trap 'kill $A $B 2>/dev/null || true' EXIT
  wait_until 20 grep -q "leading A" a.out
  "$KUBE_E2E" lease lease-e2e kcmdr-e2e-lock B > b.out 2>b.err & B=$!
  # B campaigns while A renews: two renewals by A seen on the Lease (B retries every 2 s) prove
  # B has tried meanwhile, and it must not lead
  lease_renew() { kubectl -n lease-e2e get lease kcmdr-e2e-lock -o jsonpath='{.spec.renewTime}'; }
  renewed_since() { [ "$(lease_renew)" != "$1" ]; }
  r=$(lease_renew); wait_until 30 renewed_since "$r"
  r=$(lease_renew); wait_until 30 renewed_since "$r"
  grep -q "leading B" b.out && fail "two leaders at once"
  assert_eq "A" "$(kubectl -n lease-e2e get lease kcmdr-e2e-lock -o jsonpath='{.spec.holderIdentity}')" "holder"
  # the leader dies without releasing: B takes over, and not before A's last renewal plus the
  # lease duration (15 s), as the Lease itself records (renewTime, then B's acquireTime)
  kill -KILL "$A"
  last=$(lease_renew)
  wait_until 60 grep -q "leading B" b.out
  assert_eq "B" "$(kubectl -n lease-e2e get lease kcmdr-e2e-lock -o jsonpath='{.spec.holderIdentity}')" "new holder"
  acq=$(kubectl -n lease-e2e get lease kcmdr-e2e-lock -o jsonpath='{.spec.acquireTime}')
  gap_ms=$(( ($(date -d "$acq" +%s%N) - $(date -d "$last" +%s%N)) / 1000000 ))
  [ "$gap_ms" -ge 15000 ] || fail "B acquired ${gap_ms} ms after A's last renewal ($last -> $acq): the lease is 15 s"
  # a graceful stop releases the lease at once
  kill -TERM "$B"; wait "$B" || fail "lease holder exited with an error"
  assert_eq "" "$(kubectl -n lease-e2e get lease kcmdr-e2e-lock -o jsonpath='{.spec.holderIdentity}')" "released"
}

test_client_tls_server_name_and_verification() {
  # the serving certificate names kubernetes.default.svc, not the address we connect to
  sed 's#^\(    certificate-authority: .*\)#\1\n    tls-server-name: kubernetes.default.svc#' "$KUBECONFIG" > sni.kubeconfig
  assert_eq "$("$KCMDR" get namespaces default | jq -r .metadata.uid)" \
    "$("$KCMDR" --kubeconfig sni.kubeconfig get namespaces default | jq -r .metadata.uid)" "tls-server-name"
  # tried: a tls-server-name the certificate does not carry -> refused (verification is on)
  sed 's#^\(    certificate-authority: .*\)#\1\n    tls-server-name: not-the-server.example#' "$KUBECONFIG" > wrongsni.kubeconfig
  expect_exit 1 timeout 60 "$KCMDR" --kubeconfig wrongsni.kubeconfig get namespaces
  assert_contains "$OUT" "SSL" "certificate name mismatch"
  # tried: no CA at all -> the system CAs do not trust the test CA
  grep -v certificate-authority "$KUBECONFIG" > noca.kubeconfig
  expect_exit 1 timeout 60 "$KCMDR" --kubeconfig noca.kubeconfig get namespaces
  # insecure-skip-tls-verify is honoured when the user asks for it
  sed 's#^    certificate-authority: .*#    insecure-skip-tls-verify: true#' "$KUBECONFIG" > insecure.kubeconfig
  "$KCMDR" --kubeconfig insecure.kubeconfig get namespaces --count >/dev/null
}
