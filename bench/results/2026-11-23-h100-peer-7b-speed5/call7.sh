#!/usr/bin/env bash
# Speed pass 5, device call 7: the landed state (MoE tensor-core and sorted GEMVs, the 9..32-row
# GEMV, dg_mla_prep; the pipelined GEMV of call 6 reverted) through gpu_check, peer-7b b1/b32,
# the fp8 linear cases at m=512 against the new cuBLASLt fp8 baseline, DeepSeek-V3 4 layers.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|panic|Error" | tail -12; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A6 -- "--- FAIL" /tmp/logs/kernels.log | head -30
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
for m in /tmp/peer7b /tmp/peer7b8; do timeout 100 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; done > "$OUT/bench.txt"
grep -E '^\| peer' "$OUT/bench.txt"; echo "bench $(el) s"
timeout 130 build/gpu/deepgo bench kernels --backend cuda --filter "fp8 m=512" --m 512 -r 5 > "$OUT/kernels_fp8_m512.txt" 2>&1; echo "kernels rc=$? $(el) s"
grep -E "^ceil|^\| kernels|cuBLASLt|cublasLt" "$OUT/kernels_fp8_m512.txt" | cut -c1-260 | head -40
timeout 120 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1,32 -r 3 --cache-dir /tmp/dsv3 >"$OUT/bench_dsv3_L4.txt" 2>&1; echo "bench dsv3 rc=$?"; grep -E "^\| deep|^ceil|^memory" "$OUT/bench_dsv3_L4.txt"
echo "end $(el) s"
