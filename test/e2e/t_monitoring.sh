# t_monitoring.sh — deploy/monitoring/ (alert rules, PrometheusRule, Grafana dashboard) against
# a real controller: its /metrics is scraped every second while real states are brought about
# (a standby behind another holder's Lease, a Completed backup and restore, an Unavailable
# location, FailedValidation and PartiallyFailed backups, a failed restore, the controller gone),
# and promtool tests every alert on exactly those scraped series. promtool comes from Debian's
# prometheus package (scripts/deps unpacks it into the cache).

# the promtool binary: on PATH, or where scripts/deps unpacked it
promtool_bin() {
  command -v promtool 2>/dev/null ||
    ls -1 "${KCMDR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kcmdr}"/promtool-*/promtool 2>/dev/null | tail -1
}

# mon_env: a fresh control plane with kcm-system and a small kcm fixture
mon_env() {
  MON_ENV=mon-${1:0:30}
  trap 'mon_scraper_stop; ctl_stop_all; "$REPO/scripts/testenv" down --name "$MON_ENV" >/dev/null 2>&1' EXIT
  eval "$("$REPO/scripts/testenv" up --name "$MON_ENV" 2>/dev/null)"
  kubectl create namespace kcm-system >/dev/null
  "$REPO/scripts/fixture" --cluster-deployments 3 --extra 5 2>/dev/null
}

# mon_scraper_start PORT: scrape 127.0.0.1:PORT/metrics every second into scrapes/<segment>/,
# one file per scrape named by its wall-clock time: T.prom, or T.down when the scrape failed.
# The segment is what the file `segment` names (mon_segment switches it).
MON_SCRAPER=
mon_scraper_start() {
  : > scraping
  (
    while [ -f scraping ]; do
      seg=$(cat segment); mkdir -p "scrapes/$seg"
      t=$(date +%s.%N)
      if curl -sf --max-time 1 "127.0.0.1:$1/metrics" > "scrapes/$seg/.tmp"; then
        mv "scrapes/$seg/.tmp" "scrapes/$seg/$t.prom"
      else
        rm -f "scrapes/$seg/.tmp"; : > "scrapes/$seg/$t.down"
      fi
      sleep 1
    done
  ) &
  MON_SCRAPER=$!
}
mon_scraper_stop() { rm -f scraping; [ -z "$MON_SCRAPER" ] || wait "$MON_SCRAPER" 2>/dev/null || true; }
mon_segment() { echo "$1" > segment; }
# mon_scrapes SEGMENT N: wait until SEGMENT holds N scrapes
mon_scrapes() { wait_until 30 sh -c "[ \$(ls scrapes/$1 2>/dev/null | grep -c '[0-9]\.') -ge $2 ]"; }
# mon_metric LINE: wait until a scrape (taken now) holds LINE exactly
mon_metric() { wait_until "${2:-30}" sh -c "curl -sf '127.0.0.1:$MON_PORT/metrics' | grep -qxF '$1'"; }

# Tried: the alert rules on series scraped from a real controller in six real states, each
# state held as it stands (what `for:` and the schedule-following threshold are about):
# - a standby whose Lease another (gone) holder keeps for an hour: KcmdrNoLeader fires after 5m;
# - a leader with a Completed on-demand backup, then given an hourly schedule, and a Completed
#   restore: nothing fires for 6 minutes; KcmdrNoRecentBackup stays quiet until 2 h (the 1 h
#   interval + a 1 h margin) after the last success and fires after it: the threshold follows
#   the schedule (a 10 s schedule below fires after 20 s);
# - a location made Unavailable (a foreign top-level folder), a 10 s schedule on it whose
#   backups fail validation, a backup made PartiallyFailed by an aggregated API that cannot be
#   served, a restore of a backup that does not exist: exactly KcmdrBackupFailed (that
#   ManagementBackup, FailedValidation), KcmdrBackupPartiallyFailed, KcmdrNoRecentBackup (the
#   10 s schedule only), KcmdrStorageLocationUnavailable (that location only), KcmdrRestoreFailed
#   fire, and nothing for the healthy ManagementBackup and location;
# - the controller killed: its series go stale; KcmdrNoLeader (absent) fires after 5m, pending
#   before; nothing else fires.
# Each alert made to never fire, or to always fire, and KcmdrNoRecentBackup without its margin:
# each such mutant fails the same promtool tests (so every case can fail).
# Asserted besides: the PodMonitor selects the Pods of `kcmdr install`'s Deployment and names
# its metrics port; promtool check rules on the rules file and on the PrometheusRule's spec (and
# that it is what deploy/monitoring/generate makes of the rules file); promtool check metrics on a
# real scrape; every kcmdr_ metric the rules and the dashboard's queries use exists in the scrapes;
# the schedule interval is the cron's (10 s, 3600 s), for an irregular one the gap that holds
# the ManagementBackup's creation; a ManagementBackup deleted leaves no series, counters included.
test_monitoring_alerts_from_real_scrapes() {
  mon_env alerts
  local promtool; promtool=$(promtool_bin)
  [ -n "$promtool" ] && [ -x "$promtool" ] || fail "promtool not found (scripts/deps unpacks it from Debian's prometheus package)"
  local mon=$REPO/deploy/monitoring
  "$promtool" check rules "$mon/kcmdr-rules.yaml" >/dev/null || fail "promtool check rules kcmdr-rules.yaml"
  "$mon/generate" > generated.yaml
  diff -u "$mon/prometheusrule.yaml" generated.yaml >&2 || fail "prometheusrule.yaml is not what deploy/monitoring/generate makes of kcmdr-rules.yaml"
  python3 -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); assert d["apiVersion"] == "monitoring.coreos.com/v1" and d["kind"] == "PrometheusRule", d; yaml.safe_dump(d["spec"], open("spec.yaml", "w"))' \
    "$mon/prometheusrule.yaml" || fail "prometheusrule.yaml is not a PrometheusRule"
  "$promtool" check rules spec.yaml >/dev/null || fail "promtool check rules on the PrometheusRule's spec"
  jq -e '.panels | length > 0' "$mon/kcmdr-dashboard.json" >/dev/null || fail "the dashboard is not JSON with panels"
  # the PodMonitor finds the Deployment's Pods (`kcmdr install`) and their metrics port by name
  "$KCMDR" install | python3 -c 'import sys, yaml, json; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "Deployment"][0]["spec"]["template"], sys.stdout)' > pod-template.json
  python3 -c 'import sys, yaml, json; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)' "$mon/podmonitor.yaml" > podmonitor.json
  jq -e --slurpfile t pod-template.json '.spec.selector.matchLabels | to_entries | length > 0 and
    all(.[]; $t[0].metadata.labels[.key] == .value)' podmonitor.json >/dev/null || fail "the PodMonitor's selector does not match the Deployment's Pods"
  jq -e --slurpfile t pod-template.json '[.spec.podMetricsEndpoints[].port] - [$t[0].spec.containers[].ports[].name] == []' podmonitor.json >/dev/null ||
    fail "the PodMonitor names a port the Deployment's container does not have"

  # S1: a standby: another holder (gone) keeps the Lease for an hour
  kubectl apply -f - >/dev/null <<YAML
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: kcmdr-controller-leader, namespace: kcm-system}
spec: {holderIdentity: gone-replica, leaseDurationSeconds: 3600, renewTime: "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"}
YAML
  MON_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  start_controller ctl.log --engine=builtin --leader-elect --metrics-bind-address "127.0.0.1:$MON_PORT"
  mon_segment standby
  mon_scraper_start "$MON_PORT"
  mon_scrapes standby 3
  mon_metric 'kcmdr_leader 0'

  # S2: the holder's Lease goes; this replica leads; a backup and a restore complete
  mon_segment healthy
  mon_scrapes healthy 1 # each segment begins with a scrape of the state before its changes
  kubectl -n kcm-system delete lease kcmdr-controller-leader >/dev/null
  mon_metric 'kcmdr_leader 1'
  mkdir -p store broken/junk && echo x > broken/junk/x
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: good, namespace: kcm-system}
spec: {provider: filesystem, default: true, objectStorage: {bucket: b}, config: {path: $PWD/store}, validationFrequency: 2s}
YAML
  on_demand ok
  wait_phase ok Completed 30
  rs_restore r-ok ok
  rs_wait r-ok Completed 60
  kubectl patch mgmtbackup ok --type=merge -p '{"spec":{"schedule":"@every 1h"}}' >/dev/null
  mon_metric 'kcmdr_schedule_interval_seconds{managementbackup="ok"} 3600'
  mon_metric 'kcmdr_storage_location_available{location="good"} 1'
  mon_metric 'kcmdr_last_backup_phase{managementbackup="ok",phase="Completed"} 1'
  mon_metric 'kcmdr_restores_finished_total{phase="Completed"} 1'
  sleep 2

  # S3: an Unavailable location with a 10 s schedule on it, a PartiallyFailed backup, a failed restore
  mon_segment failing
  mon_scrapes failing 1
  kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: broken, namespace: kcm-system}
spec: {provider: filesystem, objectStorage: {bucket: b}, config: {path: $PWD/broken}, validationFrequency: 2s}
---
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: broken}
spec: {storageLocation: broken, schedule: "@every 10s"}
YAML
  unservable_apiservice down.kcmdr.test
  rs_restore r-bad no-such-backup
  wait_until 30 sh -c "kubectl get --raw /apis | grep -q down.kcmdr.test"
  on_demand pf 2>/dev/null
  mon_metric 'kcmdr_storage_location_available{location="broken"} 0'
  mon_metric 'kcmdr_schedule_interval_seconds{managementbackup="broken"} 10'
  # an irregular schedule (Jan 1 and Feb 1): its interval is the gap that holds its creation
  # (no success yet), never the one after now (from February on, Jan 1 -> Feb 1, 31 days, would
  # make KcmdrNoRecentBackup fire 300 days early; in January the other way round)
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ManagementBackup
metadata: {name: calendar}
spec: {storageLocation: good, schedule: "0 0 1 1,2 *"}
YAML
  gap=$(kubectl get mgmtbackup calendar -o jsonpath='{.metadata.creationTimestamp}' | python3 -c '
import sys, datetime as d
t = d.datetime.strptime(sys.stdin.read().strip(), "%Y-%m-%dT%H:%M:%SZ")
j, f = d.datetime(t.year, 1, 1), d.datetime(t.year, 2, 1)
print(int(((f - j) if t < f else (d.datetime(t.year + 1, 1, 1) - f)).total_seconds()))')
  mon_metric "kcmdr_schedule_interval_seconds{managementbackup=\"calendar\"} $gap"
  # a ManagementBackup deleted takes its counters along (they stayed until a restart, taking the
  # series cap's room)
  mon_metric 'kcmdr_backups_finished_total{managementbackup="calendar",phase="Completed"} 0'
  kubectl delete mgmtbackup calendar >/dev/null
  wait_until 30 sh -c "curl -sf '127.0.0.1:$MON_PORT/metrics' > after-delete.prom && ! grep -qF 'managementbackup=\"calendar\"' after-delete.prom"
  mon_metric 'kcmdr_restores_finished_total{phase="FailedValidation"} 1'
  mon_metric 'kcmdr_last_backup_phase{managementbackup="pf",phase="PartiallyFailed"} 1' 60
  mon_metric 'kcmdr_last_backup_phase{managementbackup="broken",phase="FailedValidation"} 1'
  sleep 2
  curl -sf "127.0.0.1:$MON_PORT/metrics" > full.prom
  "$promtool" check metrics < full.prom || fail "promtool check metrics on the scrape: $(cat full.prom)"

  # S4: the controller is gone
  mon_segment gone
  mon_scrapes gone 2
  kill -9 "$CTL_PID"
  wait_until 30 sh -c "[ \$(ls scrapes/gone | grep -c 'down$') -ge 3 ]"
  mon_scraper_stop

  # every kcmdr_ metric the rules and the dashboard use is in the real scrapes
  cat scrapes/*/*.prom | sed -n 's/^\(kcmdr_[a-z0-9_]*\).*/\1/p' | sort -u > scraped-names
  { grep -o 'kcmdr_[a-z0-9_]*' "$mon/kcmdr-rules.yaml"; jq -r '..|.expr? // empty' "$mon/kcmdr-dashboard.json" | grep -o 'kcmdr_[a-z0-9_]*'; } |
    sort -u > used-names
  [ "$(wc -l < used-names)" -ge 10 ] || fail "too few metric names found in the rules and dashboard: $(cat used-names)"
  missing=$(comm -23 used-names scraped-names)
  [ -z "$missing" ] || fail "used by the rules or the dashboard but not in the controller's /metrics: $missing"

  # the promtool tests, from the scrapes
  jq -n --arg rules "$mon/kcmdr-rules.yaml" '
    def none(a): {alert: a, exp: []};
    def quiet(at): ["KcmdrBackupFailed","KcmdrBackupPartiallyFailed","KcmdrNoRecentBackup",
                    "KcmdrStorageLocationUnavailable","KcmdrRestoreFailed","KcmdrNoLeader"] | map(none(.) + {at: at});
    {rule_file: $rules, groups: [
      {name: "standby behind a Lease another holder keeps", dir: "scrapes/standby", hold: 400,
       evals: ([{at: "end+60", alert: "KcmdrNoLeader", exp: []}, {at: "end+360", alert: "KcmdrNoLeader", exp: [{}]}]
               + (quiet("end+360") | map(select(.alert != "KcmdrNoLeader"))))},
      {name: "a leader, a Completed backup on an hourly schedule, a Completed restore", dir: "scrapes/healthy", hold: 7400,
       evals: (quiet("end+360") + [
         {at: "val:kcmdr_last_successful_backup_timestamp_seconds{managementbackup=\"ok\"}+7140", alert: "KcmdrNoRecentBackup", exp: []},
         {at: "val:kcmdr_last_successful_backup_timestamp_seconds{managementbackup=\"ok\"}+7260", alert: "KcmdrNoRecentBackup",
          exp: [{managementbackup: "ok"}]}])},
      {name: "an Unavailable location, failed and partially failed backups, a failed restore", dir: "scrapes/failing", hold: 400,
       evals: [
         {at: "end+360", alert: "KcmdrBackupFailed", exp: [{managementbackup: "broken", phase: "FailedValidation"}]},
         {at: "end+360", alert: "KcmdrBackupPartiallyFailed", exp: [{managementbackup: "pf"}]},
         {at: "end+360", alert: "KcmdrNoRecentBackup", exp: [{managementbackup: "broken"}]},
         {at: "end+360", alert: "KcmdrStorageLocationUnavailable", exp: [{location: "broken"}]},
         {at: "end+360", alert: "KcmdrRestoreFailed", exp: [{phase: "FailedValidation"}]},
         {at: "end+360", alert: "KcmdrNoLeader", exp: []}]},
      {name: "the controller gone", dir: "scrapes/gone", hold: 0,
       evals: ([{at: "end+60", alert: "KcmdrNoLeader", exp: []}, {at: "end+360", alert: "KcmdrNoLeader", exp: [{}]}]
               + (quiet("end+360") | map(select(.alert != "KcmdrNoLeader"))))}]}' > spec.json
  python3 "$REPO/test/e2e/promtool_tests.py" spec.json > kcmdr-tests.yaml || fail "converting the scrapes"
  cp kcmdr-tests.yaml promtool-tests.out # test/e2e/run keeps *.out of a failed test
  "$promtool" test rules kcmdr-tests.yaml || fail "promtool test rules (the scrapes are in $PWD/scrapes)"

  # the tests have teeth: with any one alert made to never fire, or to always fire, or with
  # KcmdrNoRecentBackup's margin taken away, the same tests fail
  local m
  for m in $(jq -r '.groups[].rules[].alert' <(python3 -c 'import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)' "$mon/kcmdr-rules.yaml")); do
    for e in 'vector(1) < 0' 'vector(1)'; do
      mon_mutant "$mon/kcmdr-rules.yaml" "$m" "$e" > mutant.yaml
      sed "s#$mon/kcmdr-rules.yaml#$PWD/mutant.yaml#" kcmdr-tests.yaml > mutant-tests.yaml
      if "$promtool" test rules mutant-tests.yaml >/dev/null 2>&1; then fail "the tests pass with $m's expression replaced by: $e"; fi
    done
  done
  sed 's/+ clamp_max(max by (managementbackup) (kcmdr_schedule_interval_seconds), 3600)/+ 0/' "$mon/kcmdr-rules.yaml" > mutant.yaml
  ! cmp -s mutant.yaml "$mon/kcmdr-rules.yaml" || fail "the margin mutation changed nothing"
  sed "s#$mon/kcmdr-rules.yaml#$PWD/mutant.yaml#" kcmdr-tests.yaml > mutant-tests.yaml
  if "$promtool" test rules mutant-tests.yaml >/dev/null 2>&1; then fail "the tests pass without KcmdrNoRecentBackup's margin"; fi
}

# mon_mutant RULES ALERT EXPR: RULES with ALERT's expression replaced by EXPR
mon_mutant() {
  python3 - "$@" <<'PY2'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for g in d["groups"]:
    for r in g["rules"]:
        if r.get("alert") == sys.argv[2]:
            r["expr"] = sys.argv[3]
yaml.safe_dump(d, sys.stdout)
PY2
}
