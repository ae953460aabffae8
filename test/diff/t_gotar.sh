#!/usr/bin/env bash
# t_gotar.sh — kcmdr's backup tarball against Go's archive/tar + compress/gzip (how Velero reads
# and writes one): a tarball from our writer (src/archive.c) read by Go gives exactly the entries,
# types, modes and bytes we wrote; a tarball written by Go the way Velero writes it (PAX long
# names, the -preferredversion copies, encoding/json's escapes) read by our reader gives exactly
# the bytes Go wrote, and the escaped strings decode the same on both sides.
# Run by test/diff/run (REPO, BUILD, DIFF_WORK, GOPATH, GO111MODULE=off are set there).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$here/../.." && pwd)}
BUILD=${BUILD:-$REPO/build}
work=${DIFF_WORK:-$BUILD/diff}/gotar
mkdir -p "$work"
export GO111MODULE=off GOPATH=${GOPATH:-$work/gopath} GOCACHE=${GOCACHE:-$HOME/.cache/kcmdr/go-build} GOFLAGS=

# the Go side: standard library only, GOPATH mode, nothing downloaded
(cd "$here/gotar" && go build -o "$work/gotar" .)

# the C side: the driver linked against the objects of this build (sanitizers included if any)
objs=()
for o in "$BUILD"/*.o; do [ "$(basename "$o")" = main.o ] || objs+=("$o"); done
san=()
# not grep -q: under pipefail its early exit kills nm by SIGPIPE and the test reads "no sanitizer"
if nm "$BUILD/archive.o" 2>/dev/null | grep __asan > /dev/null; then san=(-fsanitize=address,undefined); fi
pkgs="libcurl openssl jansson yaml-0.1 libarchive zlib libmicrohttpd"
# shellcheck disable=SC2046
${CC:-gcc} -std=c17 -O1 -g -D_GNU_SOURCE -pthread "${san[@]}" -I"$REPO/src" $(pkg-config --cflags $pkgs) \
  -o "$work/driver" "$here/gotar/driver/driver.c" "${objs[@]}" $(pkg-config --libs $pkgs) -pthread -lm

same() { # same A B WHAT: the JSON lines of A and B are equal, entry by entry
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
b = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
what = sys.argv[3]
if len(a) != len(b):
    sys.exit(f"{what}: {len(a)} entries against {len(b)}")
for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
        sys.exit(f"{what}: entry {i} differs:\n  C:  {json.dumps(x)[:300]}\n  Go: {json.dumps(y)[:300]}")
print(f"{what}: {len(a)} entries identical")
PY
}

# 1. our writer -> Go's reader
"$work/driver" write "$work/ours.tar.gz" > "$work/ours.expected"
"$work/gotar" read "$work/ours.tar.gz" > "$work/ours.go"
same "$work/ours.expected" "$work/ours.go" "kcmdr writer read by Go"
grep -q '"probe"' "$work/ours.expected" || { echo "no probe compared"; exit 1; }

# 2. Go's writer (as Velero) -> our reader
"$work/gotar" write "$work/go.tar.gz" > "$work/go.expected"
"$work/driver" read "$work/go.tar.gz" > "$work/go.ours"
same "$work/go.expected" "$work/go.ours" "Velero-style Go tarball read by kcmdr"

# 3. the C side is not blind: a tarball cut short is an error for our reader
head -c $(( $(stat -c %s "$work/go.tar.gz") - 9 )) "$work/go.tar.gz" > "$work/cut.tar.gz"
if "$work/driver" read "$work/cut.tar.gz" > /dev/null 2> "$work/cut.err"; then echo "a truncated tarball was read"; exit 1; fi
grep -q truncated "$work/cut.err"
echo "gotar: $(wc -l < "$work/ours.expected") + $(wc -l < "$work/go.expected") entries identical both ways"
