#!/usr/bin/env bash
# Speed pass 5, device call 2: the MoE decode GEMVs on tensor cores (moe_gemv_mma.cu) and the
# GEMV tile shared with dg_linear (gemv_tile.cuh). Kernel tests (MoE, Linear, HeadMatmul, graph),
# moe_ffn kernel figures at n=1 and 8 (A/B DEEPGO_MOE_GEMV=simt), peer-7b decode A/B.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1 ) &
build/gpu/kernels.test -test.run 'TestMoE|TestLinear$|TestHeadMatmul|TestGraphCapture' -test.v > /tmp/k.log 2>&1
echo "kernel tests rc=$? pass=$(grep -c -- '--- PASS' /tmp/k.log) fail=$(grep -c -- '--- FAIL' /tmp/k.log) $(el) s"
grep -E -A4 -- "--- FAIL" /tmp/k.log | head -30
gzip -c /tmp/k.log > "$OUT/kernels.log.gz"
for v in mma simt; do
  if [ $v = simt ]; then export DEEPGO_MOE_GEMV=simt; else unset DEEPGO_MOE_GEMV; fi
  echo "== $v"; timeout 90 build/gpu/deepgo bench kernels --backend cuda --filter moe_ffn --m 1,8 -r 10 2>&1 | grep -E "^\| kernels|^\| moe|moe_ffn" | cut -c1-220
done > "$OUT/moe_kernels.txt" 2>&1
cat "$OUT/moe_kernels.txt"; echo "kernels bench $(el) s"
wait
for v in mma simt; do
  if [ $v = simt ]; then export DEEPGO_MOE_GEMV=simt; else unset DEEPGO_MOE_GEMV; fi
  for m in /tmp/peer7b /tmp/peer7b8; do echo "$v $(timeout 60 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1 -r 3 --no-ceilings 2>&1 | grep -E '^\| peer' | grep tg)"; done
done > "$OUT/ab.txt" 2>&1
cat "$OUT/ab.txt"; echo "end $(el) s"
