#!/usr/bin/env bash
# Speed pass 5, device call 1: where a decode step's GPU time goes now. Nsight Compute's kernel
# duration for every kernel of a peer-7b generate (16-token prompt, 3 tokens), bf16 and fp8; the
# last decode step summarised by ncu_step.py. ncu serialises kernels (no PDL overlap, no graph),
# so the sum is the step's GPU work without launch gaps.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
D=bench/results/2026-11-23-h100-peer-7b-speed5
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1 &
build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1 &
wait; echo "synth $(el) s"
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(16)))")
for t in bf16:/tmp/peer7b fp8:/tmp/peer7b8; do
  tag=${t%%:*}; m=${t#*:}
  timeout 240 ncu --csv --print-units base --clock-control none --cache-control none --metrics gpu__time_duration.sum \
    build/gpu/deepgo generate --model $m --ids "$IDS" --max-tokens 3 --temperature 0 --ignore-eos --backend cuda >/tmp/ncu_$tag.csv 2>/tmp/ncu_$tag.err
  echo "ncu $tag rc=$? $(el) s"; tail -3 /tmp/ncu_$tag.err
  python3 $D/ncu_step.py /tmp/ncu_$tag.csv > "$OUT/step_$tag.txt" 2>&1; head -40 "$OUT/step_$tag.txt"
done
gzip -c /tmp/ncu_bf16.csv > "$OUT/ncu_bf16.csv.gz"
echo "end $(el) s"
