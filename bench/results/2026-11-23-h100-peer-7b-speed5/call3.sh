#!/usr/bin/env bash
# Speed pass 5, device call 3: Nsight Compute kernel times of one fp8 decode step (batch 1) and one
# bf16 batch-32 decode step of peer-7b after the MoE tensor-core GEMVs; DeepSeek-V3 4-layer decode.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
D=bench/results/2026-11-23-h100-peer-7b-speed5
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1 &
build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1 &
wait; echo "synth $(el) s"
NCU="ncu --csv --print-units base --clock-control none --cache-control none --metrics gpu__time_duration.sum"
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(16)))")
timeout 200 $NCU build/gpu/deepgo generate --model /tmp/peer7b8 --ids "$IDS" --max-tokens 3 --temperature 0 --ignore-eos --backend cuda >/tmp/ncu_fp8.csv 2>/tmp/ncu_fp8.err
echo "ncu fp8 rc=$? $(el) s"; python3 $D/ncu_step.py /tmp/ncu_fp8.csv > "$OUT/step_fp8.txt" 2>&1; head -30 "$OUT/step_fp8.txt"
timeout 200 $NCU build/gpu/deepgo bench -m /tmp/peer7b --backend cuda -p 16 -n 2 -b 32 -r 1 --warmup 0 --no-ceilings >/tmp/ncu_b32.csv 2>/tmp/ncu_b32.err
echo "ncu b32 rc=$? $(el) s"; tail -2 /tmp/ncu_b32.err; python3 $D/ncu_step.py /tmp/ncu_b32.csv > "$OUT/step_b32_bf16.txt" 2>&1; head -40 "$OUT/step_b32_bf16.txt"
timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 0 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 2>&1 | grep -E "^\| deep|^ceil" | tee "$OUT/dsv3.txt"
echo "end $(el) s"
