#!/usr/bin/env bash
# t_jsonpatch.sh — kcmdr's JSON Patch, merge patch and create-merge-patch (src/jsonpatch.c) and
# the glob and value rules of resource modifiers (src/resmod.c) against what Velero runs: Debian's
# golang-github-evanphx-json-patch-dev (v5 package: Patch.Apply, MergePatch, CreateMergePatch),
# golang-github-gobwas-glob-dev, and Go's strconv and encoding/json, built in GOPATH mode from
# /usr/share/gocode, no downloads. Cases: RFC 6902 and RFC 7386 Appendix A, then seeded random
# documents and patches, failing ones included (test/diff/jsonpatch/gen.py). main.go prints the
# inputs the way Go holds them and Go's results; driver.c runs the same canonical inputs through
# our code (JSON patches twice: as jansson values and as the text Velero builds); compare.py
# requires the same outcome, error class and JSON. JSONPATCH_SEED / JSONPATCH_N change the run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$here/../.." && pwd)}
BUILD=${BUILD:-$REPO/build}
DIFF_WORK=${DIFF_WORK:-$BUILD/diff}
for d in github.com/evanphx/json-patch/v5 github.com/gobwas/glob github.com/pkg/errors; do
  if [ ! -d "/usr/share/gocode/src/$d" ]; then
    echo "jsonpatch: /usr/share/gocode/src/$d is missing: install golang-github-evanphx-json-patch-dev and golang-github-gobwas-glob-dev (scripts/deps)"
    exit 1
  fi
done
for o in jsonpatch resmod util; do
  [ -f "$BUILD/$o.o" ] || { echo "jsonpatch: $BUILD/$o.o is missing: run make first"; exit 1; }
done
work=$DIFF_WORK/jsonpatch
mkdir -p "$work"
export GO111MODULE=off GOFLAGS= GOPATH="${GOPATH:-$DIFF_WORK/gopath}:/usr/share/gocode"
export GOCACHE=${GOCACHE:-$HOME/.cache/kcmdr/go-build}
(cd "$here/jsonpatch" && go build -o "$work/jsonpatch-diff" .)

# the C side: the driver linked against the objects of this build (sanitizers included if any)
objs=()
for o in "$BUILD"/*.o; do [ "$(basename "$o")" = main.o ] || objs+=("$o"); done
san=()
# not grep -q: under pipefail its early exit kills nm by SIGPIPE and the test reads "no sanitizer"
if nm "$BUILD/jsonpatch.o" 2>/dev/null | grep '__asan_\|__ubsan_' > /dev/null; then san=(-fsanitize=address,undefined); fi
pkgs="libcurl openssl jansson yaml-0.1 libarchive zlib libmicrohttpd"
# shellcheck disable=SC2046
${CC:-gcc} -std=c17 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread "${san[@]}" -I"$REPO/src" $(pkg-config --cflags $pkgs) \
  -o "$work/driver" "$here/jsonpatch/driver/driver.c" "${objs[@]}" $(pkg-config --libs $pkgs) -pthread -lm

python3 "$here/jsonpatch/gen.py" "${JSONPATCH_SEED:-20250117}" "${JSONPATCH_N:-3000}" > "$work/cases.jsonl"
"$work/jsonpatch-diff" -in "$work/cases.jsonl" -canon "$work/canon.jsonl" > "$work/go.out"
"$work/driver" "$work/canon.jsonl" > "$work/c.out"

# the comparison is not blind: one changed result must be seen
python3 - "$work/c.out" "$work/c.tampered" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
for i, l in enumerate(lines):
    r = json.loads(l)
    if isinstance(r.get("r"), dict) and r["r"]:
        k = next(iter(r["r"]))
        r["r"][k] = ["tampered"]
        lines[i] = json.dumps(r)
        break
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
if python3 "$here/jsonpatch/compare.py" "$work/canon.jsonl" "$work/go.out" "$work/c.tampered" > "$work/tampered.log" 2>&1; then
  echo "jsonpatch: the comparison did not see a changed result"; exit 1
fi
python3 "$here/jsonpatch/compare.py" "$work/canon.jsonl" "$work/go.out" "$work/c.out"
