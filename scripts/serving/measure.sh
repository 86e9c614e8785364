#!/usr/bin/env bash
# The issue-19 measurements: `sdft distill` of 16 GSM8K rows (greedy) through
# llama-server serving the F32 GGUF of SmolLM2-135M-Instruct versus in-process, and
# `sdft generate` throughput through llama-server at --concurrency 1, 4, 16 versus
# in-process, on the same machine in the same run.
# Needs: `cargo xtask llama-server` (links $SDFT_HOME/bin/llama-server and writes
# $SDFT_HOME/models/SmolLM2-135M-Instruct.F32.gguf), SDFT_SHARED, a built sdft.
# Usage: scripts/serving/measure.sh OUT_DIR [SDFT_BINARY]
set -euo pipefail
OUT=${1:?OUT_DIR}; SDFT=${2:-target/debug/sdft}
HOME_=${SDFT_HOME:-$HOME/.cache/sdft}
SERVER=${SDFT_LLAMA_SERVER:-$HOME_/bin/llama-server}
M=$HOME_/models/SmolLM2-135M-Instruct.F32.gguf
DATA=${SDFT_SHARED:?}/data/sdft/gsm8k_train.json
NEW=${NEW_TOKENS:-128}; GEN_NEW=${GEN_NEW_TOKENS:-48}
mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" -m "$M" --host 127.0.0.1 --port "$PORT" --alias smollm2 -t 2 -np 16 -c 16384 --min-p 0 \
  > "$OUT/llama-server.log" 2>&1 &
SPID=$!
trap 'kill $SPID' EXIT
until curl -sf "http://127.0.0.1:$PORT/health" > /dev/null; do sleep 0.5; done
URL=openai:http://127.0.0.1:$PORT/v1
echo "load before: $(uptime)"
common=(distill --model "$M" --data "$DATA" --task gsm8k --limit 16 --greedy --max-new-tokens "$NEW")
/usr/bin/time -f "in-process distill: %e s" "$SDFT" "${common[@]}" --batch-size 16 --output "$OUT/local.parquet" > "$OUT/local.txt"
/usr/bin/time -f "served distill: %e s" "$SDFT" "${common[@]}" --generator "$URL" --served-model smollm2 --concurrency 16 --output "$OUT/served.parquet" > "$OUT/served.txt"
# 16 GSM8K questions as chat prompts for the throughput runs.
python3 - "$DATA" "$OUT/prompts.jsonl" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))[:16]
with open(sys.argv[2], "w") as f:
    for i, r in enumerate(rows):
        f.write(json.dumps({"id": f"q{i}", "prompt": r["question"]}) + "\n")
PY
gen=(generate --model "$M" --input "$OUT/prompts.jsonl" --chat --greedy --max-new-tokens "$GEN_NEW" --overwrite)
"$SDFT" "${gen[@]}" --batch-size 16 --output "$OUT/gen-local.jsonl" 2>&1 | grep wrote | sed 's/^/in-process batch 16: /'
for c in 1 4 16; do
  "$SDFT" "${gen[@]}" --generator "$URL" --served-model smollm2 --concurrency $c --output "$OUT/gen-c$c.jsonl" 2>&1 | grep wrote | sed "s/^/served concurrency $c: /"
done
echo "load after: $(uptime)"
