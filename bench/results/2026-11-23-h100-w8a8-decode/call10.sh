#!/usr/bin/env bash
# W8A8 decode pass, device call 10, after the second review: one tile_warps_per_sm for both W8A8 kernels,
# pow2_split file-local, w8v_load8 f32 only. The W8A8 kernel tests (with TestLinear and TestMoEFFN whole:
# the mode=1 filter of calls 2-9 matched no subtests), then peer-7b fp8 and DeepSeek-V3 4
# layers W8A8 decode on this code.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/kernels.test -test.run 'W8A8|TestLinear$|TestMoEFFN$' -test.v > "$OUT/ktests.log" 2>&1; echo "kernel tests rc=$? $(el) s"
grep -E "^(--- |    --- )(PASS|FAIL)" "$OUT/ktests.log" | awk '{print $2}' | sort | uniq -c; grep -E "^--- (PASS|FAIL)" "$OUT/ktests.log"
timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 5 --cache-dir /tmp/dsv3 --w8a8 > "$OUT/bench_dsv3_L4.txt" 2>&1
grep -E "^\| deep|^ceil" "$OUT/bench_dsv3_L4.txt" | cut -c1-250; echo "dsv3 $(el) s"
wait $SP
timeout 60 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 0 -n 128 -b 1 -r 5 --no-ceilings --w8a8 > "$OUT/bench.txt" 2>&1
grep -E "^\| peer" "$OUT/bench.txt" | cut -c1-190
echo "end $(el) s"
