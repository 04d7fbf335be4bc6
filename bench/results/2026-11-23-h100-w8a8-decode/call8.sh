#!/usr/bin/env bash
# W8A8 decode pass, device call 8: the state to land (call 7 less the down kernel's register cap,
# which did not help; W8A8 m 9..32 on the wgmma GEMM instead of the emulation). gpu_check, then
# peer-7b bf16/fp8 (W8A16) pp512/tg128/b32 as before, peer-7b fp8 W8A8 tg128 b1/b32, DeepSeek-V3
# 4 layers fp8 W8A16 and W8A8.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|panic|Error" | tail -10; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A8 -- "--- FAIL" /tmp/logs/kernels.log | head -30
grep -E "^--- (PASS|FAIL): (TestLinearW8A8|TestMoEFFNW8A8|TestLinear |TestMoEFFN |TestEmbed)" /tmp/logs/kernels.log
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
for M in /tmp/peer7b /tmp/peer7b8; do timeout 100 build/gpu/deepgo bench -m $M --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; done > "$OUT/bench.txt"
{ timeout 60 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 0 -n 128 -b 1 -r 3 --no-ceilings --w8a8 2>&1
  timeout 90 build/gpu/deepgo bench -m /tmp/peer7b8 --backend cuda -p 0 -n 32 -b 32 -r 1 --no-ceilings --w8a8 2>&1; } > "$OUT/bench_w8a8.txt"
grep -E '^\| peer|^memory' "$OUT/bench.txt" "$OUT/bench_w8a8.txt" | cut -c1-200; echo "bench $(el) s"
{ timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 2>&1
  timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1 -r 3 --cache-dir /tmp/dsv3 --w8a8 2>&1
} > "$OUT/bench_dsv3_L4.txt"
grep -E "^\| deep|^memory|^ceil" "$OUT/bench_dsv3_L4.txt" | cut -c1-250; echo "dsv3 $(el) s"
echo "end $(el) s"
