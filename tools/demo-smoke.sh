#!/usr/bin/env bash
# Runs `edgecache demo` and pastes its printed commands, checking what the README promises:
# a Patient created through the edge, read back from the edge as a hit, updated at the origin,
# and served by the edge as version 2 within a second, without a miss; then the outage: the
# link cut (`edgecache demo link down`), a read served from the cache labelled
# origin-unreachable, a write queued (202), read back pending, `edgecache status` showing the
# link down and one queued write, the link restored, the write at the origin once, and the
# edge converged. Then `edgecache demo --tour` runs the same steps itself and must pass.
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
    grep -q "^# 12\." "$out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "demo-smoke: the demo exited early:"; cat "$work/demo.err"; exit 1; }
    sleep 0.2
done
grep -q "^# 12\." "$out" || { echo "demo-smoke: no banner from the demo"; cat "$work/demo.err"; exit 1; }

# Each numbered step is a comment line followed by one command, curl or the edgecache binary's
# absolute path (with \ continuations).
step() {
    awk -v n="# $1." '
        index($0, n) == 1 { on = 1; next }
        on && /^(curl|\/)/ { cmd = $0; while (cmd ~ /\\$/) { getline line; sub(/\\$/, "", cmd); cmd = cmd line } print cmd; exit }
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

r5=$(run 5); echo "$r5"
echo "$r5" | grep -q "^link DOWN:" || fail "link down: $r5"
r6=$(run 6); echo "$r6" | grep -iE "^(HTTP|cache-status|age)"
echo "$r6" | grep -q "^HTTP/1.1 200" || fail "read during the outage: $r6"
echo "$r6" | grep -qi '^cache-status: edgecache; hit.*origin-unreachable' || fail "the read was not labelled origin-unreachable: $r6"
echo "$r6" | grep -qi '^age: [0-9]' || fail "the read had no Age: $r6"
r7=$(run 7); echo "$r7" | grep -iE "^(HTTP|edgecache-write-status)"
echo "$r7" | grep -q "^HTTP/1.1 202" || fail "write during the outage: $r7"
echo "$r7" | grep -qi '^edgecache-write-status: queued' || fail "the write was not queued: $r7"
r8=$(run 8); echo "$r8" | grep -iE "^(HTTP|cache-status)"
echo "$r8" | grep -qi 'pending-write' || fail "the queued write did not read back pending: $r8"
r9=$(run 9); echo "$r9" | grep -E "^(link|outbox)"
echo "$r9" | grep -q "^link *DOWN" || fail "status did not show the link down: $r9"
echo "$r9" | grep -q "^outbox *queued 1 " || fail "status did not show one queued write: $r9"
r10=$(run 10); echo "$r10"
echo "$r10" | grep -q "^link UP:" || fail "link up: $r10"
r11=$(run 11); echo "$r11" | grep -iE "^(HTTP|etag)"
echo "$r11" | grep -q "^HTTP/1.1 200" || fail "the queued write is not at the origin: $r11"
echo "$r11" | grep -qi '^etag: W/"1"' || fail "the queued write is not version 1 at the origin: $r11"
r12=$(run 12); echo "$r12" | grep -E "^(link|outbox|state)"
echo "$r12" | grep -q "^link *LIVE" || fail "status after the outage: $r12"
echo "$r12" | grep -q "^outbox *queued 0" || fail "status after the outage: $r12"
# Ctrl-C (SIGINT) must stop the demo cleanly: exit status 0, no crash at shutdown.
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" = 0 ] || { cat "$work/demo.err"; fail "the demo exited with status $status after SIGINT"; }
echo "demo-smoke: 12 steps pasted, 12 answered as expected; the demo stopped cleanly on SIGINT"

echo "+ edgecache demo --tour" >&2
"$bin" demo --tour --work-dir "$work/tour" >"$work/tour.out" 2>&1 || { cat "$work/tour.out"; fail "edgecache demo --tour"; }
cat "$work/tour.out"
echo "demo-smoke: the pasted steps and the tour both passed"
