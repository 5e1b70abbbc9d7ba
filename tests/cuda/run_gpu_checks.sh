#!/usr/bin/env bash
# The one command for a GPU machine (e.g. through the device tool, from the repo root):
#
#     bash tests/cuda/run_gpu_checks.sh
#
# Configures and builds with the CUDA backend for sm_90 (override: CUDA_ARCH=80 ...),
# runs the CUDA tests (the op-case table on cuda vs the CPU backend, the pool's steady
# state, the device-fault test; they
# must PASS, not skip, here) and then the benchmark table. Logs go to $OUT when set
# (device tool). Needs: cmake >= 3.25, nvcc, cuBLAS, jansson and OpenBLAS dev packages.
#
# Machines without OpenBLAS/jansson (the device tool's: CUDA only, no registry) use
# programs built elsewhere by tests/cuda/pack_prebuilt.sh:
#     bash tests/cuda/run_gpu_checks.sh --prebuilt build-gpu-pack
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREBUILT=""
if [ "${1:-}" = "--prebuilt" ]; then PREBUILT="$(cd "${2:?--prebuilt needs a folder}" && pwd)"; fi
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
ARCH="${CUDA_ARCH:-90}"
LOG="${OUT:-$BUILD}"
mkdir -p "$LOG"
JOBS="$(nproc 2>/dev/null || echo 4)"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
export PATH="/usr/local/cuda/bin:$PATH"

if [ -n "$PREBUILT" ]; then
    BIN="$PREBUILT"
    export LD_LIBRARY_PATH="$PREBUILT/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "prebuilt programs from $PREBUILT (commit $(cat "$PREBUILT/COMMIT" 2>/dev/null || echo '?'))"
else
    mkdir -p "$BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DINFVSR_CUDA=ON \
          -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$LOG/configure.log" 2>&1 \
        || { tail -40 "$LOG/configure.log"; echo "configure failed: see --prebuilt above"; exit 1; }
    cmake --build "$BUILD" -j"$JOBS" --target test_backend_ops test_cuda_pool test_cuda_fault bench_cuda >"$LOG/build.log" 2>&1 \
        || { grep -E "error" "$LOG/build.log" | head -40; tail -20 "$LOG/build.log"; exit 1; }
    echo "build ok (sm_$ARCH)"
    BIN="$BUILD/tests/cuda"
    cp "$BUILD/tests/ops/test_backend_ops" "$BIN/" # the op-case table, next to the CUDA tests
fi

# Parity and fault tests. A SKIP (77) on a GPU machine means the GPU was not usable:
# that is a failure here.
status=0
for t in test_backend_ops test_cuda_pool test_cuda_fault; do
    rc=0
    args=(); [ "$t" = test_backend_ops ] && args=(-b cuda)
    "$BIN/$t" "${args[@]}" > "$LOG/$t.log" 2>&1 || rc=$?
    if [ "$t" = test_backend_ops ]; then cat "$LOG/$t.log"; else tail -5 "$LOG/$t.log"; fi
    if [ "$rc" -eq 77 ]; then echo "FAIL: $t skipped on a GPU machine"; status=1;
    elif [ "$rc" -ne 0 ]; then echo "FAIL: $t exited $rc"; status=1;
    else echo "PASS: $t"; fi
done

# Benchmark table (last, so it ends the device tool's output tail).
"$BIN/bench_cuda" "${BENCH_ITERS:-20}" 2>&1 | tee "$LOG/bench.log" || status=1
echo "overall: $([ "$status" -eq 0 ] && echo PASS || echo FAIL)"
exit "$status"
