#!/bin/sh
# One full-size visual encode (RAM Swin-L + DAPE + image_proj, 384x384, random weights) in C
# (CPU backend; BENCH_VISUAL_PRECISION=bf16 runs it in bf16) and in PyTorch f32 and bf16 on the
# CPU, with the same thread count, REPEATS timed encodes
# per process. With ROUNDS > 1 the C and PyTorch processes alternate, so that load from other
# processes on a shared machine hits both sides alike; the summary uses the median over all rounds'
# medians and the overall minimum.
#
#   tests/bench/bench_visual.sh [BUILD_DIR] [THREADS] [REPEATS] [ROUNDS]
#
# BUILD_DIR defaults to build (needs the bench_visual target); the full-size fixtures are
# generated there by tests/reference/visual_ref.py unless they already exist (ctest's
# visual.fixtures_full writes the same files).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
THREADS=${2:-$(nproc)}
REPEATS=${3:-3}
ROUNDS=${4:-1}
PREC=${BENCH_VISUAL_PRECISION:-auto}
PY=${INFVSR_PYTHON:-/usr/bin/python3}
CFG=$SRC/config/models/infvsr-full.json
FIX=$BUILD/tests/visual/fixtures/full

if [ ! -f "$FIX/case.safetensors" ]; then
    "$PY" "$SRC/tests/reference/visual_ref.py" "$BUILD/tests/visual/fixtures" --name full --config "$CFG"
fi
LINES=""
r=0
while [ "$r" -lt "$ROUNDS" ]; do
    C_LINE=$("$BUILD/tests/visual/bench_visual" "$FIX/ram.pth" "$FIX/dape.pth" "$CFG" "$FIX/case.safetensors" \
             "$THREADS" "$REPEATS" cpu "$PREC")
    T_LINE=$("$PY" "$SRC/tests/bench/bench_visual.py" "$FIX" "$CFG" "$THREADS" "$REPEATS")
    B_LINE=$("$PY" "$SRC/tests/bench/bench_visual.py" "$FIX" "$CFG" "$THREADS" "$REPEATS" bf16)
    echo "$C_LINE"
    echo "$T_LINE"
    echo "$B_LINE"
    LINES="$LINES$C_LINE
$T_LINE
$B_LINE
"
    r=$((r + 1))
done
printf '%s' "$LINES" | awk -v n="$THREADS" '
    function med(a, k,   i, j, t) {
        for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    {
        m = $2; sub("median=", "", m); x = $3; sub("min=", "", x)
        if ($1 == "c_encode_s")               { cm[++nc] = m; if (nc == 1 || x < cmin) cmin = x }
        else if ($1 == "torch_bf16_encode_s") { bm[++nb] = m; if (nb == 1 || x < bmin) bmin = x }
        else                                  { tm[++nt] = m; if (nt == 1 || x < tmin) tmin = x }
    }
    END {
        c = med(cm, nc); t = med(tm, nt); b = med(bm, nb)
        printf "visual encode (full, 384x384, %d threads, %d round(s)): median C %.3f s, PyTorch f32 %.3f s, " \
               "PyTorch bf16 %.3f s, C/PyTorch f32 %.2fx, C/PyTorch bf16 %.2fx; min C %.3f s, PyTorch f32 %.3f s, " \
               "PyTorch bf16 %.3f s\n", n, nc, c, t, b, c / t, c / b, cmin, tmin, bmin
    }'
