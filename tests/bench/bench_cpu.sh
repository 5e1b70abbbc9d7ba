#!/bin/sh
# CPU backend benchmark (not a ctest): builds bench_cpu in BUILD_DIR and runs it.
#   tests/bench/bench_cpu.sh [build_dir] [n_threads] [repeats] [linear|dit|amx|attention|unary|resize|conv3d]
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target bench_cpu -j2 >/dev/null
exec "$BUILD/tests/bench/bench_cpu" "${2:-0}" "${3:-5}" ${4:-}
