#!/usr/bin/env bash
# Speed pass 6, device call 6. Library built from the working tree on 8e313b4: one row tile per GEMV
# block and fp8 GEMV/MoE chunks double-buffered in shared memory by cp.async (gemv_tile.cuh,
# gemv_mma.cu, moe_gemv_mma.cu), and two helpers' kernels: gemm_fp8_wgmma.cu with a stream-K schedule
# and a faster x quantisation, mla_decode_wgmma.cu (wgmma pass 1 of MLA decode for 64-head groups).
# gpu_check; A/B: DEEPGO_GEMV_PIPE=0 DEEPGO_GEMV_BLOCK=8 (before), DEEPGO_GEMV_PIPE=0 (blocks only),
# default (both) on peer-7b b1/b32; DeepSeek-V3 4 layers before (also DEEPGO_MLA_DECODE=mma) / after;
# W8A8 GEMM default vs nosplit and mla_decode default vs mma in bench kernels; DeepSeek-V3 GEMVs at m=1.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|panic|Error" | tail -10; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A8 -- "--- FAIL" /tmp/logs/kernels.log | head -40
grep -E "^--- (PASS|FAIL): (TestLinear|TestMoE|TestHead|TestMLA)" /tmp/logs/kernels.log
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
run() { echo "## $1 $M"; P=$2; shift 2; env "$@" timeout 100 build/gpu/deepgo bench -m $M --backend cuda -p $P -n 128 -b 1,32 -r 3 --no-ceilings 2>&1; }
for M in /tmp/peer7b /tmp/peer7b8; do
  run before 0 DEEPGO_GEMV_PIPE=0 DEEPGO_GEMV_BLOCK=8
  run blocks 0 DEEPGO_GEMV_PIPE=0
  run both 512 DEEPGO_X=1
done > "$OUT/bench.txt"
grep -E '^## |^\| peer' "$OUT/bench.txt" | cut -c1-190; echo "bench $(el) s"
for v in "before DEEPGO_GEMV_PIPE=0 DEEPGO_GEMV_BLOCK=8 DEEPGO_MLA_DECODE=mma" "mla-only DEEPGO_GEMV_PIPE=0 DEEPGO_GEMV_BLOCK=8" "all DEEPGO_X=1"; do set -- $v; n=$1; shift
  P="-p 0 -b 1"; [[ $n == all ]] && P="-p 512 -b 1,32"
  echo "## dsv3 $n"; env "$@" timeout 150 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda $P -n 64 -r 3 --cache-dir /tmp/dsv3 2>&1 | grep -E "^\| deep|^memory"
done | tee "$OUT/dsv3.txt"
for v in default nosplit; do
  DEEPGO_W8A8_GEMM=$([[ $v == nosplit ]] && echo nosplit) timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 512 -r 5 --filter 'fp8-w8a8 m=512' > "$OUT/kernels_w8a8_$v.txt" 2>&1
  echo "## w8a8 $v"; grep -E "^\| kernels" "$OUT/kernels_w8a8_$v.txt" | cut -d'|' -f4,5,8,10,15 | cut -c1-150
done
for v in default mma; do
  DEEPGO_MLA_DECODE=$([[ $v == mma ]] && echo mma) timeout 60 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 -r 5 --filter 'mla_decode' > "$OUT/kernels_mla_$v.txt" 2>&1
  echo "## mla $v"; grep -E "^\| kernels|^ceil" "$OUT/kernels_mla_$v.txt" | cut -c1-250
done
timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 1 -r 5 --filter 'bf16 m=1|fp8 m=1' > "$OUT/kernels_m1.txt" 2>&1
echo "## m=1"; grep -E "^\| kernels" "$OUT/kernels_m1.txt" | cut -d'|' -f4,5,7,9,10 | cut -c1-150
echo "end $(el) s"
