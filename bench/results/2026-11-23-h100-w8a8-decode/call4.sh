#!/usr/bin/env bash
# W8A8 decode pass, device call 4: the W8A8 GEMV's split rule counts the warps per SM its
# registers allow (20 with one token) instead of the W8A16 tile's 16. Tests, DeepSeek-V3 4 layers
# W8A8 tg64 and its GEMVs at m=1, peer-7b fp8 W8A8 tg128.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/kernels.test -test.run 'W8A8Gemv|TestLinear$/mode=1' -test.v > "$OUT/kw8a8.log" 2>&1; echo "kernel tests rc=$? $(el) s"
grep -E "^(--- |    --- )(PASS|FAIL)" "$OUT/kw8a8.log" | awk '{print $2}' | sort | uniq -c
timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 --w8a8 > "$OUT/bench_dsv3_L4.txt" 2>&1
grep -E "^\| deep|^ceil" "$OUT/bench_dsv3_L4.txt" | cut -c1-250; echo "dsv3 $(el) s"
timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 1 -r 5 --filter 'fp8-w8a8 m=1' > "$OUT/kernels_m1.txt" 2>&1
grep -E "^\| kernels" "$OUT/kernels_m1.txt" | cut -d'|' -f4,5,7,9,10 | cut -c1-150
wait $SP
timeout 60 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings --w8a8 > "$OUT/bench.txt" 2>&1
grep -E '^\| peer' "$OUT/bench.txt" | cut -c1-190
echo "end $(el) s"
