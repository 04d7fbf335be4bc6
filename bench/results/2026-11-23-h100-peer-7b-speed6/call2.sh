#!/usr/bin/env bash
# Speed pass 6, device call 2: W_kc transposed at load for decode's absorbed q (absorb.go; a trans 1
# head_matmul on the GEMV tile instead of trans 0), shared experts fused only up to 8 rows;
# gpu_check; A/B DEEPGO_WKC_T=0 on peer-7b bf16/fp8; Nsight Compute sections of the MoE and MLA
# decode kernels of one fp8 step.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
D=bench/results/2026-11-23-h100-peer-7b-speed6
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|panic|Error|SharedExperts|KcTransposed" | tail -16; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A6 -- "--- FAIL" /tmp/logs/kernels.log | head -30
grep -h "shared_experts_test\|absorb_test" /tmp/logs/fixtures_*.log
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
for m in /tmp/peer7b /tmp/peer7b8; do for s in 0 ""; do
  echo "## DEEPGO_WKC_T=$s $m"
  DEEPGO_WKC_T=$s timeout 100 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1
done; done > "$OUT/bench.txt"
grep -E '^## |^\| peer|^memory' "$OUT/bench.txt"; echo "bench $(el) s"
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(16)))")
timeout 150 ncu --clock-control none --kernel-name regex:"moe_gateup_mma|moe_down_mma|mla_decode_mma|head_matmul|gemv_mma" --launch-skip 200 --launch-count 8 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats --section SchedulerStats \
  build/gpu/deepgo generate --model /tmp/peer7b8 --ids "$IDS" --max-tokens 3 --temperature 0 --ignore-eos --backend cuda >"$OUT/ncu_sections.txt" 2>&1
echo "ncu rc=$? $(el) s"
grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Eligible Warps|Issued Warp|No Eligible|Warp Cycles Per Issued|Waves Per SM|Grid Size|Block Size" "$OUT/ncu_sections.txt" | head -150
echo "end $(el) s"
