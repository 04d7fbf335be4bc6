#!/usr/bin/env bash
# Speed pass 4, device call 9: the tensor-core GEMV prefetches only each row's first two iterations
# into L2 (whole rows over-asked L2 on lm_head). Linear/HeadMatmul kernel tests, the DeepSeek-V3
# linear figures at m=1 and the 4-layer decode (compare call 8), peer-7b decode.
set -uo pipefail
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$PWD/build/cuda
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1 ) &
build/gpu/kernels.test -test.run 'TestLinear$|TestHeadMatmul|TestGraphCapture' -test.v > /tmp/k.log 2>&1; echo "kernel tests rc=$? pass=$(grep -c -- '--- PASS' /tmp/k.log) fail=$(grep -c -- '--- FAIL' /tmp/k.log)"
{ timeout 120 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --filter linear --m 1 -r 10 2>&1 | grep -E "^\| kernels" | grep -v w8a8 | awk -F'|' '{print $4, $5, $8, $9}'
  timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 2>&1 | grep -E "^\| deep"
  wait
  for m in /tmp/peer7b /tmp/peer7b8; do timeout 60 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1 -r 3 --no-ceilings 2>&1 | grep -E "^\| peer"; done; } > "$OUT/ab.txt" 2>&1
cat "$OUT/ab.txt"
