#!/usr/bin/env bash
# promote-retire.sh measures what promoting a new version and retiring the
# old one at once costs the clients of a node that must pull the new one.
#
# Two gateways on loopback: A bootstraps a cluster with the demo models, B
# joins it. A load generator sends unversioned requests for MODEL to B for
# the whole run while, every 1.5 s, a new version (the demo model drawn
# from another seed) is uploaded through A with --promote and the version
# it replaced is retired right after (DELETE /v1/models/MODEL/versions/N):
# B learns of both while it still pulls and loads the new version. The
# load generator's last lines give the failed requests by status.
#
#   make build && scripts/promote-retire.sh [BIN [MODEL [ROUNDS [PORT]]]]
#
# Defaults: bin/infergate, ranker, 6 rounds, ports 18320 and 18321 (HTTP)
# and 18420, 18421 (raft). Everything lives in a temporary directory that
# goes at the end, with the two servers.
set -euo pipefail

BIN="${1:-bin/infergate}"
MODEL="${2:-ranker}"
ROUNDS="${3:-6}"
PORT="${4:-18320}"
A=$PORT
B=$((PORT + 1))
export INFERGATE_ORT_LIB="${INFERGATE_ORT_LIB:-$PWD/lib/libonnxruntime.so.1}"
export INFERGATE_ADMIN_TOKEN="${INFERGATE_ADMIN_TOKEN:-promote-retire-token}"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

ready() {
  for _ in $(seq 300); do
    curl -sf "127.0.0.1:$1/v2/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "promote-retire: the gateway on port $1 did not become ready; its log:" >&2
  cat "$tmp/$1.log" >&2
  exit 1
}

"$BIN" demo-models --out "$tmp/models" >/dev/null 2>&1
mkdir -p "$tmp/empty"
for i in $(seq "$ROUNDS"); do
  "$BIN" demo-models --out "$tmp/seed$i" --seed $((100 + i)) >/dev/null 2>&1
done

setsid "$BIN" serve --http "127.0.0.1:$A" --cluster "127.0.0.1:$((A + 100))" --data "$tmp/a" \
  --models "$tmp/models" --register-local-models >"$tmp/$A.log" 2>&1 &
pids+=($!)
ready "$A"
setsid "$BIN" serve --http "127.0.0.1:$B" --cluster "127.0.0.1:$((B + 100))" --data "$tmp/b" \
  --models "$tmp/empty" --join "http://127.0.0.1:$A" >"$tmp/$B.log" 2>&1 &
pids+=($!)
ready "$B"

duration=$((ROUNDS * 3 / 2 + 4))
"$BIN" bench --target "http://127.0.0.1:$B" --model "$MODEL" --concurrency 16 \
  --duration "${duration}s" --warmup 0s >"$tmp/bench.txt" 2>&1 &
bench=$!
sleep 2
prev=1
for i in $(seq "$ROUNDS"); do
  v=$("$BIN" models upload "$MODEL" "$tmp/seed$i/$MODEL/1/model.onnx" --promote --addr "127.0.0.1:$A" |
    grep -o 'version [0-9]*' | head -1 | cut -d' ' -f2)
  curl -sf -X DELETE -H "Authorization: Bearer $INFERGATE_ADMIN_TOKEN" \
    "127.0.0.1:$A/v1/models/$MODEL/versions/$prev" >/dev/null ||
    echo "promote-retire: retiring version $prev failed" >&2
  prev=$v
  sleep 1.5
done
wait "$bench" || true
grep "gateway/$MODEL" "$tmp/bench.txt" | head -1
grep -E '^\[1\]' "$tmp/bench.txt" || true
