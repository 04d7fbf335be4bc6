#!/usr/bin/env bash
# Speed pass 6, device call 4: Nsight Compute (full set) of the wgmma fp8 W8A8 GEMM and its x
# quantisation at DeepSeek-V3 q_b_proj and o_proj, m=512, to see what keeps it at ~60% of cuBLASLt.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
for c in 'q_b_proj [24576x1536] fp8-w8a8 m=512' 'o_proj [7168x16384] fp8-w8a8 m=512'; do
  n=$(echo "$c" | cut -d' ' -f1)
  timeout 200 ncu --clock-control none --kernel-name regex:"w8a8" --launch-skip 4 --launch-count 2 --set full \
    build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 512 -r 2 --filter "$c" >"$OUT/ncu_$n.txt" 2>&1
  echo "ncu $n rc=$? $(el) s"
  grep -E "^  [a-zA-Z_].*\(|Duration|Compute \(SM\) Th|Memory Throughput|DRAM Throughput|Registers Per|Achieved Occ|Eligible Warps|No Eligible|Warp Cycles Per Issued|L2 Hit|Stall|Tensor|Pipe" "$OUT/ncu_$n.txt" | head -60
done
echo "end $(el) s"
