#!/usr/bin/env bash
# Speed pass 6, device call 3: GEMV split-K within one wave (gemv_tile_split) A/B against
# DEEPGO_GEMV_SPLIT=overfill; capture held on one OS thread; the wgmma fp8 W8A8 GEMM (helper-written,
# first run on hardware) through the kernel tests and against cuBLASLt fp8 at DeepSeek-V3 m=512;
# DeepSeek-V3 4 layers.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|panic|Error" | tail -12; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A8 -- "--- FAIL" /tmp/logs/kernels.log | head -40
grep -E "W8A8|wgmma" /tmp/logs/kernels.log | grep -E "^(--- |    --- )" | head -20
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
for m in /tmp/peer7b /tmp/peer7b8; do for s in overfill ""; do
  echo "## DEEPGO_GEMV_SPLIT=$s $m"
  DEEPGO_GEMV_SPLIT=$s timeout 100 build/gpu/deepgo bench -m $m --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1
done; done > "$OUT/bench.txt"
grep -E '^## |^\| peer' "$OUT/bench.txt"; echo "bench $(el) s"
timeout 150 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 512 -r 5 --filter 'fp8-w8a8 m=512' > "$OUT/kernels_w8a8_m512.txt" 2>&1; echo "kernels rc=$? $(el) s"
grep -E "^ceil|^\| kernels|cuBLASLt|cublasLt|w8a8" "$OUT/kernels_w8a8_m512.txt" | cut -c1-280 | head -30
timeout 110 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1,32 -r 3 --cache-dir /tmp/dsv3 >"$OUT/bench_dsv3_L4.txt" 2>&1; echo "bench dsv3 rc=$?"; grep -E "^\| deep|^ceil|^memory|copy" "$OUT/bench_dsv3_L4.txt" | cut -c1-250
echo "end $(el) s"
