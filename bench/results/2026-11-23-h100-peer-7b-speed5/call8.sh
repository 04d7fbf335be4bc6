#!/usr/bin/env bash
# Speed pass 5, device call 8 (experiment): head_matmul trans 0 (the absorbed q_nope . W_uk) with
# its row loop unrolled 16 instead of 4 (all of a warp's rows in flight at peer-7b's 128-wide
# heads), A/B DEEPGO_HM_UNROLL=16: head_matmul tests, kernel figures at m=1, peer-7b decode.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1 ) &
for v in 4 16; do
  export DEEPGO_HM_UNROLL=$v
  build/gpu/kernels.test -test.run 'TestHeadMatmul' -test.v > /tmp/k$v.log 2>&1
  echo "unroll $v: TestHeadMatmul rc=$? pass=$(grep -c -- '--- PASS' /tmp/k$v.log) fail=$(grep -c -- '--- FAIL' /tmp/k$v.log) $(el) s"
  timeout 60 build/gpu/deepgo bench kernels --backend cuda --filter "q_nope.W_uk" --m 1 -r 10 2>&1 | grep -E "^\| kernels" | awk -F'|' -v v=$v '{print "unroll " v, $2, $4, $5, $8}'
done > "$OUT/hm.txt" 2>&1
cat "$OUT/hm.txt"; echo "kernels $(el) s"
wait
for v in 4 16; do
  export DEEPGO_HM_UNROLL=$v
  for m in /tmp/peer7b /tmp/peer7b8; do timeout 50 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1 -r 3 --no-ceilings 2>&1 | grep -E '^\| peer' | grep tg | sed "s/^/unroll $v /"; done
done > "$OUT/e2e.txt" 2>&1
cat "$OUT/e2e.txt"; echo "end $(el) s"
