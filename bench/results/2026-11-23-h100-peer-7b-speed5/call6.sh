#!/usr/bin/env bash
# Speed pass 5, device call 6 (experiment): software-pipelined tensor-core GEMV. DEEPGO_GEMV_PIPE
# 0 = U 4 rounds per iteration, loads then mma (as before); 1 = U 4 with the next iteration's loads
# issued before this one's mma; 2 = U 2 pipelined (same registers as 0). Linear kernel figures at
# m=1 (both shape sets), peer-7b decode, per variant.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1 ) &
for v in 0 1 2; do
  export DEEPGO_GEMV_PIPE=$v
  build/gpu/kernels.test -test.run 'TestLinear$' > /tmp/k$v.log 2>&1; echo "pipe $v: TestLinear rc=$? $(el) s"
  echo "== pipe $v"; timeout 120 build/gpu/deepgo bench kernels --backend cuda --filter linear --m 1 -r 10 2>&1 | grep -E "^\| kernels" | grep -v w8a8 | awk -F'|' '{print $2, $4, $5, $8, $9}'
done > "$OUT/linear_m1.txt" 2>&1
cat "$OUT/linear_m1.txt" | grep -E "pipe|o_proj|down_proj|lm_head|q_b|gate_proj"; echo "kernels $(el) s"
wait
for v in 0 1 2; do
  export DEEPGO_GEMV_PIPE=$v
  for m in /tmp/peer7b /tmp/peer7b8; do timeout 60 build/gpu/deepgo bench -m $m --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings 2>&1 | grep -E '^\| peer' | sed "s/^/pipe $v /"; done
done > "$OUT/e2e.txt" 2>&1
cat "$OUT/e2e.txt"; echo "end $(el) s"
