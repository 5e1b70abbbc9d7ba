#!/bin/sh
# One full-size visual encode (RAM Swin-L + DAPE + image_proj, 384x384, random weights) in C
# (CPU backend) and in PyTorch f32 on the CPU, same thread count, median of REPEATS runs each.
#
#   tests/bench/bench_visual.sh [BUILD_DIR] [THREADS] [REPEATS]
#
# BUILD_DIR defaults to build (needs the bench_visual target); the full-size fixtures are
# generated there by tests/reference/visual_ref.py unless they already exist (ctest's
# visual.fixtures_full writes the same files).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
THREADS=${2:-$(nproc)}
REPEATS=${3:-3}
PY=${INFVSR_PYTHON:-/usr/bin/python3}
CFG=$SRC/config/models/infvsr-full.json
FIX=$BUILD/tests/visual/fixtures/full

if [ ! -f "$FIX/case.safetensors" ]; then
    "$PY" "$SRC/tests/reference/visual_ref.py" "$BUILD/tests/visual/fixtures" --name full --config "$CFG"
fi
C_LINE=$("$BUILD/tests/visual/bench_visual" "$FIX/ram.pth" "$FIX/dape.pth" "$CFG" "$FIX/case.safetensors" \
         "$THREADS" "$REPEATS")
T_LINE=$("$PY" "$SRC/tests/bench/bench_visual.py" "$FIX" "$CFG" "$THREADS" "$REPEATS")
echo "$C_LINE"
echo "$T_LINE"
C_MED=$(echo "$C_LINE" | sed 's/.*median=\([0-9.]*\).*/\1/')
T_MED=$(echo "$T_LINE" | sed 's/.*median=\([0-9.]*\).*/\1/')
awk -v c="$C_MED" -v t="$T_MED" -v n="$THREADS" 'BEGIN {
    printf "visual encode (full, 384x384, %d threads): C %.3f s, PyTorch %.3f s, C/PyTorch = %.2fx time\n", n, c, t, c / t }'
