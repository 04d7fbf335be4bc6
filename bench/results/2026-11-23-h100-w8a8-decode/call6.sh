#!/usr/bin/env bash
# W8A8 decode pass, device call 6: split-K counts other than powers of two for the W8A8 GEMVs
# (A/B: DEEPGO_W8A8_SPLIT=pow2), 16-warp blocks for one token, the embedding row copied in batches
# of 8 loads per thread. Tests; DeepSeek-V3 4 layers and peer-7b fp8 W8A8 decode, both splits;
# the DeepSeek-V3 W8A8 step under Nsight Compute.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/kernels.test -test.run 'W8A8Gemv|TestLinear$/mode=1|Embed' -test.v > "$OUT/ktests.log" 2>&1; echo "kernel tests rc=$? $(el) s"
grep -E "^(--- |    --- )(PASS|FAIL)" "$OUT/ktests.log" | awk '{print $2}' | sort | uniq -c; grep -E "^--- FAIL|^    --- FAIL" "$OUT/ktests.log" | head
for sp in pow2 ""; do
  echo "## DEEPGO_W8A8_SPLIT=$sp"
  DEEPGO_W8A8_SPLIT=$sp timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 --w8a8 2>&1
done > "$OUT/bench_dsv3_L4.txt"
grep -E "^## |^\| deep" "$OUT/bench_dsv3_L4.txt" | cut -c1-250; echo "dsv3 $(el) s"
wait $SP
for sp in pow2 ""; do
  echo "## DEEPGO_W8A8_SPLIT=$sp"
  DEEPGO_W8A8_SPLIT=$sp timeout 60 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings --w8a8 2>&1
done > "$OUT/bench.txt"
grep -E "^## |^\| peer" "$OUT/bench.txt" | cut -c1-190; echo "peer $(el) s"
D=$(dirname "$(find /tmp/dsv3 -name config.json | head -1)")
NCU="ncu --csv --print-units base --clock-control none --cache-control none --metrics gpu__time_duration.sum"
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(16)))")
timeout 150 $NCU build/gpu/deepgo generate --model "$D" --ids "$IDS" --max-tokens 3 --temperature 0 --ignore-eos --backend cuda --w8a8 >/tmp/ncu.csv 2>/tmp/ncu.err
python3 bench/results/2026-11-23-h100-peer-7b-speed5/ncu_step.py /tmp/ncu.csv > "$OUT/step_dsv3_w8a8.txt" 2>&1; head -22 "$OUT/step_dsv3_w8a8.txt"
echo "end $(el) s"
