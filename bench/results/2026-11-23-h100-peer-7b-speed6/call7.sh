#!/usr/bin/env bash
# Speed pass 6, device call 7: the state to land (call 6's library less the shared-memory GEMV
# pipeline, which lost; W8A8 stream-K only where whole tiles leave the last wave < 95% full):
# gpu_check, peer-7b bf16/fp8 pp512/tg128/b32, DeepSeek-V3 4 layers, the kernel figures of issue 5
# (W8A8 GEMM vs cuBLASLt fp8 at m=512, MLA decode b64 4k 128 heads, DeepSeek-V3 GEMVs at m=1).
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|panic|Error" | tail -10; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A8 -- "--- FAIL" /tmp/logs/kernels.log | head -40
grep -E "^--- (PASS|FAIL): (TestLinearW8A8|TestMLADecode|TestMoEFFN |TestLinear )" /tmp/logs/kernels.log
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
for M in /tmp/peer7b /tmp/peer7b8; do timeout 100 build/gpu/deepgo bench -m $M --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; done > "$OUT/bench.txt"
grep -E '^\| peer|^memory' "$OUT/bench.txt" | cut -c1-200; echo "bench $(el) s"
timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1,32 -r 3 --cache-dir /tmp/dsv3 > "$OUT/bench_dsv3_L4.txt" 2>&1
grep -E "^\| deep|^memory|^ceil" "$OUT/bench_dsv3_L4.txt" | cut -c1-250; echo "dsv3 $(el) s"
timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 512 -r 5 --filter 'fp8-w8a8 m=512|mla_decode' > "$OUT/kernels_w8a8_mla.txt" 2>&1
grep -E "^\| kernels|^ceil|^baseline" "$OUT/kernels_w8a8_mla.txt" | cut -d'|' -f3,4,5,8,9,10,12,15 | cut -c1-200
timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 1 -r 5 --filter 'bf16 m=1|fp8 m=1' > "$OUT/kernels_m1.txt" 2>&1
echo "## m=1"; grep -E "^\| kernels" "$OUT/kernels_m1.txt" | cut -d'|' -f4,5,7,9,10 | cut -c1-150
echo "end $(el) s"
