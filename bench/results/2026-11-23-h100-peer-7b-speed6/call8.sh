#!/usr/bin/env bash
# Speed pass 6, device call 8: after the device check of the two wgmma kernels became one helper
# (sm90a_kernel_ok), confirm both still take the wgmma path: their kernel tests and kernel figures.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
build/gpu/kernels.test -test.run 'TestLinearW8A8|TestMLADecode' > "$OUT/kernels.log" 2>&1; echo "kernel tests rc=$? $(el) s"; tail -3 "$OUT/kernels.log"
timeout 100 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3 --m 512 -r 5 --filter 'o_proj [7168x16384] fp8-w8a8 m=512|mla_decode' > "$OUT/kernels.txt" 2>&1
grep -E "^\| kernels" "$OUT/kernels.txt" | cut -d'|' -f3,4,5,7,8,12 | cut -c1-200
echo "end $(el) s"
