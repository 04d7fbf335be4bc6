#!/usr/bin/env bash
# Prepared for the next device call (not run: no device was lent after call 1 of pass 3). Checks what
# pass 3 landed without a full gpu_check: gpu_check (kernel tests + reference fixtures), generate
# bf16/fp8, bench, an nsys timeline of decode (when nsys exists), the serve load benchmark.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
ARCHS=90a bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|pass=|panic|Error" | tail -40; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -B2 -A8 -- "--- FAIL" /tmp/logs/kernels.log | head -60
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(512)))")
gen() { local m=$1 tag=$2; shift 2; build/gpu/deepgo generate --model "$m" --ids "$IDS" --max-tokens 128 --temperature 0 --ignore-eos --print-ids --backend cuda "$@" 2>/tmp/gen_$tag.err >/tmp/ids_$tag.txt; echo "$tag: $(grep -E 'tok/s' /tmp/gen_$tag.err | tail -1)"; }
gen /tmp/peer7b bf16
gen /tmp/peer7b8 fp8
gen /tmp/peer7b bf16_2
gen /tmp/peer7b8 fp8_2
cat /tmp/gen_*.err > "$OUT/gen.txt"
{ timeout 100 build/gpu/deepgo bench -m /tmp/peer7b --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; echo "bench bf16 rc=$?"
  timeout 100 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; echo "bench fp8 rc=$?"; } >"$OUT/bench.txt"
grep -E "^\| peer|rc=" "$OUT/bench.txt"
if command -v nsys >/dev/null; then
  timeout 120 nsys profile -o /tmp/dec --force-overwrite true --cuda-graph-trace=node -t cuda build/gpu/deepgo generate --model /tmp/peer7b --ids "$IDS" --max-tokens 32 --temperature 0 --ignore-eos --backend cuda >/dev/null 2>/tmp/nsys.err
  nsys stats -q --report cuda_gpu_trace --format csv -o /tmp/trace /tmp/dec.nsys-rep >/dev/null 2>&1
  gzip -c /tmp/trace_cuda_gpu_trace.csv > "$OUT/nsys_trace.csv.gz" 2>/dev/null; ls -la "$OUT"/nsys_trace.csv.gz; tail -3 /tmp/nsys.err
else echo "no nsys"; fi
timeout 200 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1,32 -r 3 --cache-dir /tmp/dsv3 >"$OUT/bench_dsv3_L4.txt" 2>&1; echo "bench dsv3 rc=$?"; grep -E "^\| deep|^memory|^ceil" "$OUT/bench_dsv3_L4.txt"
build/gpu/deepgo serve --model /tmp/peer7b --backend cuda --parallel 128 --ctx-size 1024 --port 8080 >/tmp/serve.log 2>&1 &
SV=$!
for i in $(seq 1 120); do curl -sf http://127.0.0.1:8080/health >/dev/null && break; sleep 1; done
timeout 150 build/gpu/deepgo bench serve --url http://127.0.0.1:8080 -c 32,128 --requests 1 --prompt-tokens 512 --max-tokens 128 --json "$OUT/serve.json" >"$OUT/serve.md" 2>&1; echo "bench serve rc=$?"; cat "$OUT/serve.md"
kill $SV; wait $SV 2>/dev/null
echo "end $(el) s"
