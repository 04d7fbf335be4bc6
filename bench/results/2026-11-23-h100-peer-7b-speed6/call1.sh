#!/usr/bin/env bash
# Speed pass 6, device call 1: the shared experts inside the MoE launches (moe_gate n_shared,
# go/model/deepseek/shared_experts.go) through gpu_check, then A/B against DEEPGO_MOE_SHARED=apart
# on peer-7b bf16/fp8 b1/b32 in one call, and Nsight Compute kernel times of one fp8 decode step.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
D=bench/results/2026-11-23-h100-peer-7b-speed6
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|panic|Error|SharedExperts" | tail -14; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A6 -- "--- FAIL" /tmp/logs/kernels.log | head -30
grep -h "shared_experts_test" /tmp/logs/fixtures_*.log
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
for m in /tmp/peer7b /tmp/peer7b8; do for s in apart ""; do
  echo "## DEEPGO_MOE_SHARED=$s $m"
  DEEPGO_MOE_SHARED=$s timeout 100 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1
done; done > "$OUT/bench.txt"
grep -E '^## |^\| peer' "$OUT/bench.txt"; echo "bench $(el) s"
NCU="ncu --csv --print-units base --clock-control none --cache-control none --metrics gpu__time_duration.sum"
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(16)))")
timeout 150 $NCU build/gpu/deepgo generate --model /tmp/peer7b8 --ids "$IDS" --max-tokens 3 --temperature 0 --ignore-eos --backend cuda >/tmp/ncu_fp8.csv 2>/tmp/ncu_fp8.err
echo "ncu fp8 rc=$? $(el) s"; python3 bench/results/2026-11-23-h100-peer-7b-speed5/ncu_step.py /tmp/ncu_fp8.csv > "$OUT/step_fp8.txt" 2>&1; head -40 "$OUT/step_fp8.txt"
echo "end $(el) s"
