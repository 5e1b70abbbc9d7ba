#!/bin/sh
# Before/after of the visual encoder on the CPU: `infvsr run visual` of two builds on the same
# full-size fixture (random weights in the official layouts, a 90x160 frame), ROUNDS rounds that
# alternate the two binaries so that load from other processes on a shared machine hits both
# alike. Each run is one process: load (page cache warm after the first round) + DAPE merge +
# prepare + one encode + write. Prints per-run wall time and peak RSS, then the medians and
# the after/before ratios. With BENCH_A / BENCH_B set to bench_visual binaries (tests/visual),
# also alternates REPEATS timed encodes per process (encode only, no load), median of medians.
#
#   tests/bench/bench_visual_ab.sh BEFORE_INFVSR AFTER_INFVSR [FIXTURE_BUILD_DIR] [ROUNDS] [THREADS]
#
# FIXTURE_BUILD_DIR (default build) holds tests/visual/fixtures/full (ctest's visual.fixtures_full
# writes it; generated here otherwise).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
A=$1
B=$2
BUILD=${3:-$SRC/build}
ROUNDS=${4:-5}
THREADS=${5:-$(nproc)}
PY=${INFVSR_PYTHON:-/usr/bin/python3}
CFG=$SRC/config/models/infvsr-full.json
FIX=$BUILD/tests/visual/fixtures/full
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ ! -f "$FIX/case.safetensors" ]; then
    "$PY" "$SRC/tests/reference/visual_ref.py" "$BUILD/tests/visual/fixtures" --name full --config "$CFG"
fi
"$PY" -c "
import sys; sys.path.insert(0, '$SRC/tests/reference'); import st_io
st_io.save('$TMP/in.safetensors', {'frame': st_io.load('$FIX/case.safetensors')['frame']})"

run_one() { # label binary
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$2" run visual --ram "$FIX/ram.pth" --dape "$FIX/dape.pth" \
        --config "$CFG" --in "$TMP/in.safetensors" --out "$TMP/out_$1.safetensors" --threads "$THREADS" >/dev/null
    read -r wall rss < "$TMP/time"
    echo "$1 wall_s=$wall rss_kb=$rss"
}

LINES=""
r=0
while [ "$r" -lt "$ROUNDS" ]; do
    LINES="$LINES$(run_one before "$A")
$(run_one after "$B")
"
    if [ -n "${BENCH_A:-}" ] && [ -n "${BENCH_B:-}" ]; then
        LINES="$LINES$(echo "before_enc $("$BENCH_A" "$FIX/ram.pth" "$FIX/dape.pth" "$CFG" "$FIX/case.safetensors" "$THREADS" 3)")
$(echo "after_enc $("$BENCH_B" "$FIX/ram.pth" "$FIX/dape.pth" "$CFG" "$FIX/case.safetensors" "$THREADS" 3)")
"
    fi
    r=$((r + 1))
done
printf '%s' "$LINES"
printf '%s' "$LINES" | awk -v rounds="$ROUNDS" -v threads="$THREADS" '
    function med(a, k,   i, j, t) {
        for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    function val(s,   v) { v = s; sub(/^[a-z_]+=/, "", v); return v + 0 }
    $1 == "before"     { bw[++nb] = val($2); br[nb] = val($3) }
    $1 == "after"      { aw[++na] = val($2); ar[na] = val($3) }
    $1 == "before_enc" { be[++nbe] = val($3) }
    $1 == "after_enc"  { ae[++nae] = val($3) }
    END {
        printf "infvsr run visual (full, %d threads, %d rounds): median wall before %.3f s, after %.3f s (x%.3f); " \
               "median peak RSS before %.1f MB, after %.1f MB (x%.3f)\n", threads, rounds, med(bw, nb), med(aw, na),
               med(aw, na) / med(bw, nb), med(br, nb) / 1024, med(ar, na) / 1024, med(ar, na) / med(br, nb)
        if (nbe > 0)
            printf "encode only (bench_visual, median of per-process medians): before %.3f s, after %.3f s (x%.3f)\n",
                   med(be, nbe), med(ae, nae), med(ae, nae) / med(be, nbe)
    }'
