#!/usr/bin/env bash
# W8A8 decode pass, device call 3: each warp quantises its own iterations of x inside the tile loop (its
# loads issued with the weights) instead of a block-wide staging prologue; the emulation once.
# Kernel tests, then W8A16 vs W8A8 decode at batch 1: peer-7b fp8 tg128, DeepSeek-V3 4 layers tg64,
# and DeepSeek-V3's GEMVs at m=1.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/kernels.test -test.run 'W8A8Gemv|TestLinear$/mode=1|TestMoEFFN$/mode=1' -test.v > "$OUT/kw8a8.log" 2>&1; echo "kernel tests rc=$? $(el) s"
grep -E "^(--- |    --- )(PASS|FAIL)" "$OUT/kw8a8.log" | awk '{print $2}' | sort | uniq -c
grep -E -A3 "^    --- FAIL" "$OUT/kw8a8.log" | head -30
grep -E "w8a8_gemv_test.go:[0-9]+: y" "$OUT/kw8a8.log" | awk '{print $6}' | sort -t= -k2 -g | tail -3
wait $SP
M=/tmp/peer7b8
{ timeout 60 build/gpu/deepgo bench -m $M --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings 2>&1
  timeout 60 build/gpu/deepgo bench -m $M --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings --w8a8 2>&1
  DEEPGO_W8A8_GEMV=emulate timeout 60 build/gpu/deepgo bench -m $M --backend cuda -p 0 -n 32 -b 1 -r 1 --no-ceilings --w8a8 2>&1
} > "$OUT/bench.txt"
grep -E '^\| peer' "$OUT/bench.txt" | cut -c1-190; echo "bench $(el) s"
{ timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 2>&1
  timeout 100 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 --w8a8 2>&1
} > "$OUT/bench_dsv3_L4.txt"
grep -E "^\| deep|^ceil" "$OUT/bench_dsv3_L4.txt" | cut -c1-250; echo "dsv3 $(el) s"
timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 1 -r 5 --filter 'fp8 m=1|fp8-w8a8 m=1' > "$OUT/kernels_m1.txt" 2>&1
grep -E "^\| kernels" "$OUT/kernels_m1.txt" | cut -d'|' -f4,5,7,9,10 | cut -c1-150
echo "end $(el) s"
