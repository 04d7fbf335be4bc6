#!/usr/bin/env bash
# Speed pass 5, device call 5: the MoE GEMVs sorted by expert for 3..32 tokens (each chosen expert
# read once), the fused MLA prologue (dg_mla_prep: q_a norm, kv norm, k rope, cache store in one
# launch). gpu_check (kernel tests, fixtures, generate), peer-7b b1/b32 (A/B DEEPGO_MOE_GEMV=simt
# at b32), DeepSeek-V3 4 layers.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|pass=|panic|Error" | tail -30; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A6 -- "--- FAIL" /tmp/logs/kernels.log | head -40
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
{ for m in /tmp/peer7b /tmp/peer7b8; do timeout 100 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1 | grep -E '^\| peer'; done
  for m in /tmp/peer7b /tmp/peer7b8; do DEEPGO_MOE_GEMV=simt timeout 60 build/gpu/deepgo bench -m $m --backend cuda -p 0 -n 128 -b 32 -r 3 --no-ceilings 2>&1 | grep -E '^\| peer' | sed 's/^/moe-simt /'; done; } > "$OUT/bench.txt" 2>&1
cat "$OUT/bench.txt"; echo "bench $(el) s"
timeout 200 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1,32 -r 3 --cache-dir /tmp/dsv3 >"$OUT/bench_dsv3_L4.txt" 2>&1; echo "bench dsv3 rc=$?"; grep -E "^\| deep|^ceil|^memory" "$OUT/bench_dsv3_L4.txt"
echo "end $(el) s"
