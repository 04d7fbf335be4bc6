#!/usr/bin/env bash
# Speed pass 4, device call 10: the review mends (opt_in_smem for every kernel that opts in to more shared memory, the shared fast-tile A loader, the SIMT GEMV unroll knob gone).
# gpu_check, generate bf16/fp8, bench b1/b32, DeepSeek-V3 4 layers.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|pass=|panic|Error" | tail -40; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A6 -- "--- FAIL" /tmp/logs/kernels.log | head -40
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(512)))")
gen() { local m=$1 tag=$2; shift 2; build/gpu/deepgo generate --model "$m" --ids "$IDS" --max-tokens 128 --temperature 0 --ignore-eos --print-ids --backend cuda "$@" 2>/tmp/gen_$tag.err >/tmp/ids_$tag.txt; echo "$tag: $(grep -E 'tok/s' /tmp/gen_$tag.err | tail -1)"; }
gen /tmp/peer7b bf16
gen /tmp/peer7b8 fp8
gen /tmp/peer7b bf16_2
gen /tmp/peer7b8 fp8_2
for f in /tmp/gen_*.err /tmp/ids_*.txt; do echo "== $f"; cat $f; done > "$OUT/gen.txt"
{ timeout 100 build/gpu/deepgo bench -m /tmp/peer7b --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; echo "bench bf16 rc=$?"
  timeout 100 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; echo "bench fp8 rc=$?"; } >"$OUT/bench.txt"
grep -E "^\| peer|rc=" "$OUT/bench.txt"
timeout 200 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1,32 -r 3 --cache-dir /tmp/dsv3 >"$OUT/bench_dsv3_L4.txt" 2>&1; echo "bench dsv3 rc=$?"; grep -E "^\| deep|^ceil" "$OUT/bench_dsv3_L4.txt"
echo "end $(el) s"
