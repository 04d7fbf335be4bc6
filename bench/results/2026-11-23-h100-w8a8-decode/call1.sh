#!/usr/bin/env bash
# W8A8 decode pass, device call 1: the e4m3 mma.sync GEMV and MoE GEMVs (gemv_w8a8.cu,
# moe_gemv_w8a8.cu). Kernel tests (U 4 and 8), then peer-7b fp8 decode b1 in the default mode
# (W8A16) and in W8A8 (U 4, U 8), then DeepSeek-V3 m=1 GEMVs fp8 vs fp8-w8a8.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/kernels.test -test.run 'W8A8Gemv' -test.v > "$OUT/kw8a8_u4.log" 2>&1; echo "W8A8Gemv U4 rc=$? $(el) s"
grep -E "^--- FAIL|^    --- FAIL" "$OUT/kw8a8_u4.log" | head -20; grep -A6 -m3 -- "--- FAIL" "$OUT/kw8a8_u4.log" | head -30
DEEPGO_W8A8_GEMV_U=8 build/gpu/kernels.test -test.run 'W8A8Gemv' > "$OUT/kw8a8_u8.log" 2>&1; echo "W8A8Gemv U8 rc=$? $(el) s"; tail -1 "$OUT/kw8a8_u8.log"
build/gpu/kernels.test -test.run 'TestLinear$|TestMoEFFN$' > "$OUT/klin.log" 2>&1; echo "Linear/MoEFFN rc=$? $(el) s"; tail -1 "$OUT/klin.log"
grep -E "^    --- FAIL" "$OUT/klin.log" | head -10
wait $SP
M=/tmp/peer7b8
{ timeout 60 build/gpu/deepgo bench -m $M --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings 2>&1
  timeout 60 build/gpu/deepgo bench -m $M --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings --w8a8 2>&1
  DEEPGO_W8A8_GEMV_U=8 timeout 60 build/gpu/deepgo bench -m $M --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings --w8a8 2>&1
} > "$OUT/bench.txt"
grep -E '^\| peer' "$OUT/bench.txt" | cut -c1-190; echo "bench $(el) s"
timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 1 -r 5 --filter 'fp8 m=1|fp8-w8a8 m=1' > "$OUT/kernels_m1.txt" 2>&1
grep -E "^\| kernels" "$OUT/kernels_m1.txt" | cut -d'|' -f4,5,7,9,10 | cut -c1-150
DEEPGO_W8A8_GEMV_U=8 timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 1 -r 5 --filter 'fp8-w8a8 m=1' --no-ceilings > "$OUT/kernels_m1_u8.txt" 2>&1
echo "## U=8"; grep -E "^\| kernels" "$OUT/kernels_m1_u8.txt" | cut -d'|' -f4,5,7,9,10 | cut -c1-150
echo "end $(el) s"
