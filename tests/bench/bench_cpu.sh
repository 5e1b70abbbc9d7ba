#!/bin/sh
# CPU backend benchmark (not a ctest): builds bench_cpu in BUILD_DIR and runs it.
#   tests/bench/bench_cpu.sh [build_dir] [n_threads] [repeats] [linear|dit|amx|attention|unary|resize|conv3d]
# With BENCH_CPU_TORCH_ROUNDS=N (families dit and conv3d) it runs N rounds, each bench_cpu
# then PyTorch's f32 and bf16 on the same shapes and threads (torch_linear_bf16.py,
# torch_conv3d_bf16.py), so that load from other processes hits both alike.
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target bench_cpu -j2 >/dev/null
rounds=${BENCH_CPU_TORCH_ROUNDS:-0}
case "${4:-}" in
dit) torch_py=$ROOT/tests/bench/torch_linear_bf16.py ;;
conv3d) torch_py=$ROOT/tests/bench/torch_conv3d_bf16.py ;;
*) rounds=0 ;;
esac
if [ "$rounds" -gt 0 ]; then
    threads=${2:-0}
    if [ "$threads" -le 0 ]; then threads=$(nproc); fi
    for r in $(seq "$rounds"); do
        echo "round $r ($(uptime | sed 's/.*load/load/'))"
        "$BUILD/tests/bench/bench_cpu" "$threads" "${3:-5}" "$4"
        /usr/bin/python3 "$torch_py" "$threads" "${3:-5}"
    done
    exit 0
fi
exec "$BUILD/tests/bench/bench_cpu" "${2:-0}" "${3:-5}" ${4:-}
