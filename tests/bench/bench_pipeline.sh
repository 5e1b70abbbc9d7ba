#!/usr/bin/env bash
# Whole-pipeline benchmark on the CPU: `infvsr upscale` (decode -> scene detection -> resize ->
# VAE encode -> DiT -> VAE decode -> quantise -> H.264 encode) with random weights, reporting
# frames/s and the seconds spent per stage (from the --json "done" line).
#   1. tiny model (config/models/infvsr-tiny.json, `infvsr make-tiny-model`), LR 64x36 -> 256x144,
#      60 frames of testsrc2 with a hard cut in the middle;
#   2. full-size modules (config/models/infvsr-full.json: DiT 1536x30, VAE dim 96, Swin-L), random
#      weights written by `infvsr make-tiny-model --config` (about 4 GB, cached in $INFVSR_BENCH_CACHE,
#      default /tmp/infvsr-bench-full), LR 32x32 -> 128x128, 21 frames (one 9- and one 12-frame chunk).
# Random weights: the pictures are meaningless, the work per frame is the real model's.
#
#   bash tests/bench/bench_pipeline.sh [BUILD_DIR] [THREADS] [tiny|full|both]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-pipeline}
threads=${2:-$(nproc)}
which=${3:-both}
cache=${INFVSR_BENCH_CACHE:-/tmp/infvsr-bench-full}
work=$(mktemp -d /tmp/bench_pipeline.XXXXXX)
trap 'rm -rf "$work"' EXIT
infvsr="$build/infvsr"

report() { # $1 label, $2 json line
    /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
label, d = sys.argv[1], json.loads(sys.argv[2])
s = d["seconds"]
order = ["decode", "scene", "visual", "resize", "vae_encode", "dit", "vae_decode", "output", "encode"]
total = sum(s[k] for k in order)
print("%s: %d frames in %.2f s = %.3f frames/s (%d chunks, %d scenes, %d visual contexts, peak RSS %.0f MB)" % (
    label, d["frames"], d["elapsed_s"], d["fps"], d["chunks"], d["scenes"], d["references"], d["peak_rss_kb"] / 1024))
for k in order:
    print("  %-10s %8.3f s  %5.1f%%  %8.1f ms/frame" % (k, s[k], 100 * s[k] / total, 1000 * s[k] / d["frames"]))
EOF
}

echo "pipeline benchmark: $(nproc) cores, --threads $threads, $(date -u +%FT%TZ)"
if [ "$which" = tiny ] || [ "$which" = both ]; then
    "$infvsr" make-tiny-model "$work/tiny" > /dev/null
    ffmpeg -v error -f lavfi -i testsrc2=size=64x36:rate=25 -frames:v 30 -pix_fmt yuv420p "$work/a.y4m"
    ffmpeg -v error -f lavfi -i "mandelbrot=size=64x36:rate=25" -frames:v 30 -pix_fmt yuv420p "$work/b.y4m"
    ffmpeg -v error -i "$work/a.y4m" -i "$work/b.y4m" -filter_complex "[0:v][1:v]concat=n=2:v=1[v]" -map "[v]" \
        -pix_fmt yuv420p "$work/tiny_in.y4m"
    line=$("$infvsr" upscale "$work/tiny_in.y4m" "$work/tiny_out.mp4" --model-dir "$work/tiny" --threads "$threads" \
        --json | grep '"done"')
    report "tiny model, 64x36 -> 256x144" "$line"
fi
if [ "$which" = full ] || [ "$which" = both ]; then
    if [ ! -f "$cache/model.json" ]; then
        echo "writing full-size random weights to $cache (once) ..."
        t0=$(date +%s)
        "$infvsr" make-tiny-model "$cache" --config "$root/config/models/infvsr-full.json" > /dev/null
        echo "  $(( $(date +%s) - t0 )) s, $(du -sh "$cache" | cut -f1)"
    fi
    ffmpeg -v error -f lavfi -i testsrc2=size=32x32:rate=25 -frames:v 21 -pix_fmt yuv420p "$work/full_in.y4m"
    line=$("$infvsr" upscale "$work/full_in.y4m" "$work/full_out.mp4" --model-dir "$cache" --threads "$threads" \
        --json | grep '"done"')
    report "full-size modules, 32x32 -> 128x128" "$line"
fi
