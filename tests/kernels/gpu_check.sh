#!/usr/bin/env bash
# gpu_check.sh: on the GPU machine, from the repo root: build libdeepgo_cuda.so with CMake + nvcc
# into build/cuda, then run the kernel tests (build/gpu/kernels.test, built beforehand on the dev
# machine with `go test -c -o build/gpu/kernels.test ./tests/kernels`) and print a summary last.
#
#   tests/kernels/gpu_check.sh [LOGDIR] [extra test flags...]
#   ARCHS="90a" tests/kernels/gpu_check.sh "$OUT" -test.run 'Linear'
#   BENCH='Linear/impl=cuda' BENCHTIME=50x tests/kernels/gpu_check.sh "$OUT"   # also benchmarks
#   SANITIZE='TestMLA|TestMoEFFN' tests/kernels/gpu_check.sh "$OUT"            # also memcheck those
set -uo pipefail
logdir="${1:-build/gpu}"; shift || true
mkdir -p "$logdir"
archs="${ARCHS:-80;89;90a}"
t0=$(date +%s)
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; nvcc --version | tail -1; } | tee "$logdir/device.txt"
if [[ -f build/gpu/lib/libdeepgo_cuda.so ]]; then
    # built on the dev machine with the same nvcc (make gpu-lib) and carried: saves the device's build time
    mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
    echo "gpu_check: library carried in build/gpu/lib ($(cat build/gpu/lib/ARCHS 2>/dev/null || echo '?'))"
elif ! { cmake -S cuda -B build/cuda -G Ninja -DCMAKE_BUILD_TYPE=Release "-DDEEPGO_CUDA_ARCHS=$archs" >"$logdir/cmake.log" 2>&1 &&
       cmake --build build/cuda >>"$logdir/cmake.log" 2>&1; }; then
    tail -60 "$logdir/cmake.log"; echo "gpu_check: library build FAILED"; exit 1
else
    echo "gpu_check: library built in $(( $(date +%s) - t0 )) s ($archs)"
fi
t1=$(date +%s)
if [[ -x build/gpu/cuda.test ]]; then   # go/backend/cuda's own tests (library loading, New)
    build/gpu/cuda.test -test.v >"$logdir/cuda_pkg.log" 2>&1; echo "gpu_check: go/backend/cuda tests exit $?"
    grep -E "^--- |lib_test" "$logdir/cuda_pkg.log"
fi
build/gpu/kernels.test -test.v -test.timeout 8m "$@" >"$logdir/kernels.log" 2>&1
rc=$?
t2=$(date +%s)
echo "gpu_check: tests ran in $((t2 - t1)) s, exit $rc"
# summary: failures with their messages, then counts per top-level test
grep -E -- "--- FAIL|Error|panic|gpu: |cpu: " "$logdir/kernels.log" | head -80
echo "---- per test (pass/fail/skip subtests) ----"
awk '/^    --- (PASS|FAIL|SKIP)|^        --- (PASS|FAIL|SKIP)/ { split($3, p, "/"); k=p[1]; s=$2; c[k" "s]++ }
     /^--- (PASS|FAIL|SKIP)/ { top[$3]=$2 }
     END { for (t in top) { printf "%-16s %s  pass=%d fail=%d skip=%d\n", t, top[t], c[t" PASS:"], c[t" FAIL:"], c[t" SKIP:"] } }' "$logdir/kernels.log" | sort
tail -3 "$logdir/kernels.log"
if [[ -n "${BENCH:-}" ]]; then
    build/gpu/kernels.test -test.run '^$' -test.bench "$BENCH" -test.benchtime "${BENCHTIME:-50x}" >"$logdir/bench.txt" 2>&1
    echo "---- bench ($BENCH) ----"
    grep -E "^Benchmark|^ok|FAIL" "$logdir/bench.txt" | sed -E 's/ +/ /g' | cut -c1-150
fi
if [[ -n "${SANITIZE:-}" ]] && command -v compute-sanitizer >/dev/null; then
    echo "---- compute-sanitizer memcheck ($SANITIZE) ----"
    timeout "${SANITIZE_TIMEOUT:-200}" compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        build/gpu/kernels.test -test.run "$SANITIZE" >"$logdir/sanitizer.log" 2>&1
    echo "compute-sanitizer exit $? (0 clean, 9 errors found, 124 timeout)"
    grep -E "ERROR SUMMARY|Invalid|out of bounds|^(ok|PASS|FAIL)" "$logdir/sanitizer.log" | head -20
fi
exit $rc
