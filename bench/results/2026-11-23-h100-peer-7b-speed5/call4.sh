#!/usr/bin/env bash
# Speed pass 5, device call 4: the tensor-core GEMV for 9..32 x rows (2 or 4 groups of 8 per weight
# fragment). Kernel tests (Linear, HeadMatmul, MoE, graph), peer-7b linear figures at m=32 and the
# batch-1/batch-32 decode, A/B DEEPGO_GEMV=simt (the fast bf16 tile / SIMT GEMV at 9..32 rows).
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1 ) &
build/gpu/kernels.test -test.run 'TestMoEFFN|TestLinear$|TestHeadMatmul|TestGraphCapture' -test.v > /tmp/k.log 2>&1
echo "kernel tests rc=$? pass=$(grep -c -- '--- PASS' /tmp/k.log) fail=$(grep -c -- '--- FAIL' /tmp/k.log) $(el) s"
grep -E -A4 -- "--- FAIL" /tmp/k.log | head -30
for v in mma simt; do
  if [ $v = simt ]; then export DEEPGO_GEMV=simt; else unset DEEPGO_GEMV; fi
  echo "== $v"; timeout 60 build/gpu/deepgo bench kernels --backend cuda --shapes peer-7b --filter linear --m 32 -r 10 2>&1 | grep -E "^\| kernels" | grep -v w8a8 | awk -F'|' '{print $4, $5, $8, $9}'
done > "$OUT/linear_m32.txt" 2>&1
cat "$OUT/linear_m32.txt"; echo "kernels bench $(el) s"
wait
for v in mma simt; do
  if [ $v = simt ]; then export DEEPGO_GEMV=simt; else unset DEEPGO_GEMV; fi
  for m in /tmp/peer7b /tmp/peer7b8; do timeout 90 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1 | grep -E '^\| peer' | grep tg | sed "s/^/$v /"; done
done > "$OUT/ab.txt" 2>&1
cat "$OUT/ab.txt"; echo "end $(el) s"
