#!/usr/bin/env bash
# Speed pass 6, device call 5: the GEMV tile prefetches its own weight chunks into L2 two of its
# iterations ahead (DG_GEMV_PREFETCH=2, build/gpu/lib) against the same source built with 0
# (build/gpu/lib_pf0.tar.xz): peer-7b b1/b32, DeepSeek-V3 4-layer decode and the DeepSeek-V3 GEMVs at
# m=1 on each. No gpu_check: a prefetch cannot change a result, and the test binaries would not fit
# the carry limit beside two libraries.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
tar xJf build/gpu/lib_pf0.tar.xz -C /tmp
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
wait $SP
for v in pf0 pf2; do
  L=$R/build/cuda; [[ $v == pf0 ]] && L=/tmp/lib_pf0
  export DEEPGO_LIB_DIR=$L
  for m in /tmp/peer7b /tmp/peer7b8; do echo "## $v $m"
    timeout 100 build/gpu/deepgo bench -m $m --backend cuda -p 0 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; done
  echo "## $v dsv3"
  timeout 100 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 2>&1
  timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 1 -r 5 --filter 'bf16 m=1|fp8 m=1' 2>&1 > "$OUT/kernels_m1_$v.txt"
done > "$OUT/bench.txt"
grep -E '^## |^\| peer|^\| deep|^ceil' "$OUT/bench.txt" | cut -c1-200; echo "bench $(el) s"
for v in pf0 pf2; do echo "## kernels $v"; grep -E "^\| kernels" "$OUT/kernels_m1_$v.txt" | cut -d'|' -f4,5,8,10 | head -30; done
echo "end $(el) s"
