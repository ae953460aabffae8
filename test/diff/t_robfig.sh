#!/usr/bin/env bash
# t_robfig.sh — kcmdr's cron (src/cron.c, src/tz.c) against the real robfig/cron v3 (Debian's
# golang-github-robfig-cron-dev, built in GOPATH mode from /usr/share/gocode, no downloads): the
# same generated expressions (fields, names, ranges, steps up to 2^64, lists, descriptors,
# "@every" with valid and invalid Go durations, CRON_TZ=/TZ= with zones of every kind of DST, bad
# zones) from start times around DST changes, before 1970 and after 2037. Every expression must be
# accepted by both or refused by both with the same message, and give the same successive
# activations. test/diff/robfig/main.go generates and compares; driver.c is the C side, linked
# against the objects make built in $BUILD. ROBFIG_N / ROBFIG_SEED change the run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$here/../.." && pwd)}
BUILD=${BUILD:-$REPO/build}
DIFF_WORK=${DIFF_WORK:-$BUILD/diff}
src=/usr/share/gocode/src/github.com/robfig/cron
if [ ! -f "$src/parser.go" ]; then
  echo "robfig: $src is missing: install golang-github-robfig-cron-dev (scripts/deps)"
  exit 1
fi
for o in cron tz util; do
  [ -f "$BUILD/$o.o" ] || { echo "robfig: $BUILD/$o.o is missing: run make first"; exit 1; }
done
work=$DIFF_WORK/robfig
mkdir -p "$work"
export GO111MODULE=off GOFLAGS= GOPATH="${GOPATH:-$DIFF_WORK/gopath}:/usr/share/gocode"
export GOCACHE=${GOCACHE:-$HOME/.cache/kcmdr/go-build}
go build -o "$work/robfig-diff" "$here/robfig/main.go"
# the objects may come from a sanitizer build (make asan): link the driver the same way
san=
if nm "$BUILD/cron.o" | grep '__asan_\|__ubsan_' > /dev/null; then san="-fsanitize=address,undefined"; fi
${CC:-gcc} -std=c17 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE $san -I"$REPO/src" -o "$work/driver" \
  "$here/robfig/driver.c" "$BUILD/cron.o" "$BUILD/tz.o" "$BUILD/util.o" -pthread -lm
"$work/robfig-diff" -driver "$work/driver" -seed "${ROBFIG_SEED:-20250117}" -n "${ROBFIG_N:-5000}" -starts 6 -nexts 3
