#!/usr/bin/env bash
# W8A8 decode pass, device call 5: where the W8A8 decode step's time goes. Nsight Compute GPU time
# per kernel of one decode step (generate, 3 tokens): DeepSeek-V3 4 layers in W8A16 and W8A8,
# peer-7b fp8 in W8A8.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 --w8a8 --no-ceilings > "$OUT/bench_dsv3_L4.txt" 2>&1
grep -E "^\| deep" "$OUT/bench_dsv3_L4.txt" | cut -c1-250; echo "dsv3 $(el) s"
D=$(dirname "$(find /tmp/dsv3 -name config.json | head -1)"); echo "checkpoint $D"
NCU="ncu --csv --print-units base --clock-control none --cache-control none --metrics gpu__time_duration.sum"
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(16)))")
step() { # name model flags...
  local n=$1 m=$2; shift 2
  timeout 150 $NCU build/gpu/deepgo generate --model "$m" --ids "$IDS" --max-tokens 3 --temperature 0 --ignore-eos --backend cuda "$@" >/tmp/ncu_$n.csv 2>/tmp/ncu_$n.err
  echo "## $n rc=$? $(el) s"; python3 bench/results/2026-11-23-h100-peer-7b-speed5/ncu_step.py /tmp/ncu_$n.csv > "$OUT/step_$n.txt" 2>&1; head -24 "$OUT/step_$n.txt"
}
step dsv3_w8a16 "$D"
step dsv3_w8a8 "$D" --w8a8
wait $SP
step peer7b8_w8a8 /tmp/peer7b8 --w8a8
echo "end $(el) s"
