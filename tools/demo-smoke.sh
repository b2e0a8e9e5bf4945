#!/usr/bin/env bash
# Runs `edgecache demo` and pastes its printed curl commands, checking what the README promises:
# a Patient created through the edge, read back from the edge as a hit, updated at the origin,
# and served by the edge as version 2 within a second, without a miss.
#
#   tools/demo-smoke.sh [PATH-TO-edgecache]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/debug/edgecache}
work=$(mktemp -d)
out="$work/demo.out"
"$bin" demo --work-dir "$work/demo" >"$out" 2>"$work/demo.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

for _ in $(seq 1 150); do
    grep -q "^# 4\." "$out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "demo-smoke: the demo exited early:"; cat "$work/demo.err"; exit 1; }
    sleep 0.2
done
grep -q "^# 4\." "$out" || { echo "demo-smoke: no banner from the demo"; cat "$work/demo.err"; exit 1; }

# Each numbered step is a comment line followed by one curl command (with \ continuations).
step() {
    awk -v n="# $1." '
        index($0, n) == 1 { on = 1; next }
        on && /^curl/ { cmd = $0; while (cmd ~ /\\$/) { getline line; sub(/\\$/, "", cmd); cmd = cmd line } print cmd; exit }
    ' "$out"
}
run() { echo "+ step $1" >&2; bash -c "$(step "$1")" | tr -d '\r'; }

fail() { echo "demo-smoke: FAILED: $*"; exit 1; }

r1=$(run 1); echo "$r1" | head -1
echo "$r1" | grep -q "^HTTP/1.1 201" || fail "create through the edge: $r1"
r2=$(run 2); echo "$r2" | grep -i "^cache-status"
echo "$r2" | grep -qi '^cache-status: edgecache; hit' || fail "read back from the edge was not a hit: $r2"
r3=$(run 3); echo "$r3" | head -1
echo "$r3" | grep -q "^HTTP/1.1 200" || fail "update at the origin: $r3"
sleep 1
r4=$(run 4); echo "$r4" | grep -iE "^(etag|cache-status)"
echo "$r4" | grep -qi '^etag: W/"2"' || fail "the edge did not serve version 2 within a second: $r4"
echo "$r4" | grep -qi '^cache-status: edgecache; hit' || fail "version 2 was not a hit: $r4"
echo "demo-smoke: 4 passed, 0 failed"
