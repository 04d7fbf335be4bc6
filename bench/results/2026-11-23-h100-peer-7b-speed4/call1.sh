#!/usr/bin/env bash
# Speed pass 4, device call 1: verify pass 3 (gpu_check with the library built here by `make gpu-lib`,
# reference fixtures on cuda incl. greedy-device), generate bf16/fp8, bench batch 1/32 with device
# greedy (memory report), serve load with per-token TTFT/ITL.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|pass=|panic|Error|greedy" | tail -40; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(512)))")
gen() { local m=$1 tag=$2; shift 2; build/gpu/deepgo generate --model "$m" --ids "$IDS" --max-tokens 128 --temperature 0 --ignore-eos --print-ids --backend cuda "$@" 2>/tmp/gen_$tag.err >/tmp/ids_$tag.txt; echo "$tag: $(grep -E 'tok/s' /tmp/gen_$tag.err | tail -1)"; }
gen /tmp/peer7b bf16
gen /tmp/peer7b8 fp8
gen /tmp/peer7b bf16_2
gen /tmp/peer7b8 fp8_2
for f in /tmp/gen_*.err; do echo "== $f"; cat $f; done > "$OUT/gen.txt"
for f in /tmp/ids_*.txt; do echo "== $f"; cat $f; done >> "$OUT/gen.txt"
echo "at $(el) s"
{ timeout 100 build/gpu/deepgo bench -m /tmp/peer7b --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; echo "bench bf16 rc=$?"
  timeout 100 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; echo "bench fp8 rc=$?"; } >"$OUT/bench.txt"
grep -E "^\| peer|rc=|^memory|weights|KV|peak" "$OUT/bench.txt"
echo "at $(el) s"
build/gpu/deepgo serve --model /tmp/peer7b --backend cuda --parallel 128 --ctx-size 1024 --port 8080 >/tmp/serve.log 2>&1 &
SV=$!
for i in $(seq 1 120); do curl -sf http://127.0.0.1:8080/health >/dev/null && break; sleep 1; done
timeout 120 build/gpu/deepgo bench serve --url http://127.0.0.1:8080 -c 32,128 --requests 1 --prompt-tokens 512 --max-tokens 128 --json "$OUT/serve.json" >"$OUT/serve.md" 2>&1; echo "bench serve rc=$?"; cat "$OUT/serve.md"
kill $SV; wait $SV 2>/dev/null
echo "end $(el) s"
