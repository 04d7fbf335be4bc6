#!/usr/bin/env bash
# Speed pass 6, device call 9, after review: gemv_tile_split no longer lets S exceed the column
# iterations (call 7's build could leave warps with no columns). GEMV and MoE kernel tests, then
# peer-7b bf16/fp8 decode at b1/b32 (compare call 7).
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1 &
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; wait; echo "synth done $(el) s" ) &
SP=$!
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/kernels.test -test.run 'TestLinear$|TestHeadMatmul|TestMoEFFN$' > "$OUT/kernels.log" 2>&1; echo "kernel tests rc=$? $(el) s"; tail -2 "$OUT/kernels.log"
wait $SP
for M in /tmp/peer7b /tmp/peer7b8; do timeout 60 build/gpu/deepgo bench -m $M --backend cuda -p 0 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; done > "$OUT/bench.txt"
grep -E '^\| peer' "$OUT/bench.txt" | cut -c1-190
echo "end $(el) s"
