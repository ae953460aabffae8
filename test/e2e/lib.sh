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
