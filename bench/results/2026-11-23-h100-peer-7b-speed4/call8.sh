#!/usr/bin/env bash
# Speed pass 4, device call 8: is the tensor-core GEMV slower than the SIMT one on DeepSeek-V3's big
# matrices (call 7: lm_head bf16 1031 us, dense gate/up bf16 134 us)? A/B with DEEPGO_GEMV=simt on
# the linear kernel figures at m=1 and on the 4-layer decode.
set -uo pipefail
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$PWD/build/cuda
for v in mma simt; do
  if [[ $v == simt ]]; then export DEEPGO_GEMV=simt; fi
  echo "== $v"
  timeout 120 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --filter linear --m 1 -r 10 2>&1 | grep -E "^\| kernels" | grep -v w8a8 | awk -F'|' '{print $4, $5, $8, $9}'
  timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 2>&1 | grep -E "^\| deep"
done > "$OUT/ab.txt" 2>&1
cat "$OUT/ab.txt"
