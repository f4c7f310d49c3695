#!/usr/bin/env bash
# Fuzzes `tasklm serve` from its own OpenAPI document with Schemathesis: any 5xx fails.
#   scripts/serve/schemathesis_check.sh TASKLM_BINARY SCHEMATHESIS_BINARY [MAX_EXAMPLES]
# The server runs the committed tiny models on a free loopback port, with a small --max-tokens
# so that generated requests stay quick.
set -euo pipefail
cd "$(dirname "$0")/../.."
tasklm=$1
st=$2
examples=${3:-25}
log=$(mktemp)
"$tasklm" serve --port 0 --max-tokens 16 --max-body 65536 \
  --model gen=tests/fixtures/tiny_decoder --model emb=tests/fixtures/tiny_encoder 2>"$log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 600); do
  port=$(grep -oE 'listening on http://[0-9.]+:[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.2
done
[ -n "$port" ] || { cat "$log"; echo "tasklm serve did not start"; exit 1; }
echo "fuzzing http://127.0.0.1:$port/openapi.json ($examples examples per operation)"
"$st" run "http://127.0.0.1:$port/openapi.json" --checks not_a_server_error \
  --max-examples "$examples" --workers 1 --phases examples,coverage,fuzzing
