#!/usr/bin/env bash
# The one command for a GPU machine (e.g. through the device tool, from the repo root):
#
#     bash tests/cuda/run_gpu_checks.sh
#
# Configures and builds with the CUDA backend for sm_90 (override: CUDA_ARCH=80 ...),
# runs the cuda-labelled ctests (op-level parity CUDA vs CPU backend; must PASS, not
# skip, here) and then the benchmark table. Logs go to $OUT when set (device tool).
# Needs: cmake >= 3.25, nvcc, cuBLAS, jansson and OpenBLAS dev packages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
ARCH="${CUDA_ARCH:-90}"
LOG="${OUT:-$BUILD}"
mkdir -p "$BUILD" "$LOG"
JOBS="$(nproc 2>/dev/null || echo 4)"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

export PATH="/usr/local/cuda/bin:$PATH"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DINFVSR_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$LOG/configure.log" 2>&1 \
    || { tail -40 "$LOG/configure.log"; exit 1; }
cmake --build "$BUILD" -j"$JOBS" --target test_cuda_ops test_cuda_fault bench_cuda >"$LOG/build.log" 2>&1 \
    || { grep -E "error" "$LOG/build.log" | head -40; tail -20 "$LOG/build.log"; exit 1; }
echo "build ok (sm_$ARCH)"

# Parity tests. A SKIP here means the GPU was not usable: treat it as a failure.
status=0
"$BUILD/tests/cuda/test_cuda_ops" | tee "$LOG/test_cuda_ops.log" || status=$?
if [ "$status" -eq 77 ]; then echo "FAIL: the CUDA test skipped on a GPU machine"; exit 1; fi
(cd "$BUILD" && ctest -L cuda --output-on-failure >"$LOG/ctest.log" 2>&1) || status=1

# Benchmark table (last, so it ends the device tool's output tail).
"$BUILD/tests/cuda/bench_cuda" "${BENCH_ITERS:-20}" | tee "$LOG/bench.log" || status=1
tail -3 "$LOG/ctest.log" || true
exit "$status"
