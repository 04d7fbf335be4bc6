#!/usr/bin/env bash
# Speed pass 3, device call 1: programmatic dependent launch (PDL) + L2 prefetch of GEMV weights.
# tests/gpu_check.sh (sm_90a library, kernel tests, reference fixtures on cuda), then generate
# bf16 (PDL on twice, off once) and fp8, bench batch 1/32, and the serve load benchmark.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >"$OUT/synth.log" 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >>"$OUT/synth.log" 2>&1; echo "synth done $(el) s" ) &
SP=$!
ARCHS=90a bash tests/gpu_check.sh "$OUT/logs" 2>&1 | grep -E "gpu_check|FAIL|pass=|panic" | tail -30; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(512)))")
gen() { local m=$1 tag=$2; shift 2; build/gpu/deepgo generate --model "$m" --ids "$IDS" --max-tokens 128 --temperature 0 --ignore-eos --print-ids --backend cuda "$@" 2>"$OUT/gen_$tag.err" >/tmp/ids_$tag.txt; echo "$tag: $(grep -E 'tok/s' "$OUT/gen_$tag.err" | tail -1)"; }
gen /tmp/peer7b bf16
DEEPGO_PDL=0 gen /tmp/peer7b bf16_nopdl
gen /tmp/peer7b bf16_2
cmp -s /tmp/ids_bf16.txt /tmp/ids_bf16_nopdl.txt && echo "ids pdl == nopdl" || echo "IDS DIFFER pdl vs nopdl"
gen /tmp/peer7b8 fp8
DEEPGO_PDL=0 gen /tmp/peer7b8 fp8_nopdl
timeout 100 build/gpu/deepgo bench -m /tmp/peer7b --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings >"$OUT/bench_bf16.txt" 2>&1; echo "bench bf16 rc=$?"; grep "^| peer" "$OUT/bench_bf16.txt"
timeout 60 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 512 -n 32 -b 1,32 -r 2 --no-ceilings >"$OUT/bench_fp8.txt" 2>&1; echo "bench fp8 rc=$?"; grep "^| peer" "$OUT/bench_fp8.txt"
# serve load: 32 and 128 concurrent streaming clients, 512-token prompts, 128 tokens each
build/gpu/deepgo serve --model /tmp/peer7b --backend cuda --parallel 128 --ctx-size 1024 --port 8080 >"$OUT/serve.log" 2>&1 &
SV=$!
for i in $(seq 1 120); do curl -sf http://127.0.0.1:8080/v1/models >/dev/null && break; sleep 1; done
timeout 150 build/gpu/deepgo bench serve --url http://127.0.0.1:8080 -c 32,128 --requests 1 --prompt-tokens 512 --max-tokens 128 --json "$OUT/serve.json" >"$OUT/serve.md" 2>&1; echo "bench serve rc=$?"; cat "$OUT/serve.md"
kill $SV; wait $SV 2>/dev/null
echo "end $(el) s"
