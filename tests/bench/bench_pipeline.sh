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
#
# Before/after: with BENCH_PIPELINE_BASE=/path/to/old/infvsr, each case runs
# BENCH_PIPELINE_ROUNDS (default 3) alternating rounds of the new and the old binary on the
# same input and model, and prints both medians (frames/s, peak RSS) and new/base ratios.
# Precision: with BENCH_PIPELINE_PRECISIONS="f32 bf16" each case runs BENCH_PIPELINE_ROUNDS
# alternating rounds of the new binary with each `--precision` and prints the medians
# (frames/s, peak RSS, session bytes) side by side (default: one run, --precision auto).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-pipeline}
threads=${2:-$(nproc)}
which=${3:-both}
cache=${INFVSR_BENCH_CACHE:-/tmp/infvsr-bench-full}
work=$(mktemp -d /tmp/bench_pipeline.XXXXXX)
trap 'rm -rf "$work"' EXIT
infvsr="$build/infvsr"
base=${BENCH_PIPELINE_BASE:-}
rounds=${BENCH_PIPELINE_ROUNDS:-3}
precisions=${BENCH_PIPELINE_PRECISIONS:-}

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

# $1 label, $2 input, $3 model dir: the new binary's report, then (with a base) the A/B rounds.
run_case() {
    local line
    if [ -n "$precisions" ]; then
        : > "$work/prec.txt"
        for r in $(seq "$rounds"); do
            for p in $precisions; do
                echo "$p $("$infvsr" upscale "$2" "$work/out.mp4" --model-dir "$3" --threads "$threads" --force --json \
                    --precision "$p" | grep '"done"')" >> "$work/prec.txt"
            done
        done
        /usr/bin/python3 - "$1" "$work/prec.txt" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[2]):
    p, js = line.split(" ", 1)
    runs.setdefault(p, []).append(json.loads(js))
for p, r in runs.items():
    s = {k: statistics.median(d["seconds"][k] for d in r) for k in r[0]["seconds"]}
    print("%s --precision %s, median of %d alternating rounds: %.3f frames/s, peak RSS %.0f MB, session %.1f MB "
          "(vae caches %.1f MB, dit %.1f MB); dit %.2f s, vae_encode %.2f s, vae_decode %.2f s, visual %.2f s"
          % (sys.argv[1], p, len(r), statistics.median(d["fps"] for d in r),
             statistics.median(d["peak_rss_kb"] for d in r) / 1024, r[0]["session_bytes"] / 2**20,
             r[0]["vae_cache_bytes"] / 2**20, r[0]["dit_bytes"] / 2**20, s["dit"], s["vae_encode"], s["vae_decode"],
             s["visual"]))
EOF
        return 0
    fi
    line=$("$infvsr" upscale "$2" "$work/out.mp4" --model-dir "$3" --threads "$threads" --force --json | grep '"done"')
    report "$1" "$line"
    [ -n "$base" ] || return 0
    : > "$work/ab.txt"
    for r in $(seq "$rounds"); do
        for who in new base; do
            local bin=$infvsr
            [ "$who" = base ] && bin=$base
            echo "$who $("$bin" upscale "$2" "$work/out.mp4" --model-dir "$3" --threads "$threads" --force --json |
                grep '"done"')" >> "$work/ab.txt"
        done
    done
    /usr/bin/python3 - "$1" "$work/ab.txt" <<'EOF'
import json, statistics, sys
runs = {"new": [], "base": []}
for line in open(sys.argv[2]):
    who, js = line.split(" ", 1)
    runs[who].append(json.loads(js))
m = {w: (statistics.median(d["fps"] for d in r), statistics.median(d["peak_rss_kb"] for d in r) / 1024)
     for w, r in runs.items()}
print("  A/B %s, %d alternating rounds: new %.3f frames/s, base %.3f frames/s, new/base %.3f; "
      "peak RSS new %.0f MB, base %.0f MB, new/base %.3f"
      % (sys.argv[1], len(runs["new"]), m["new"][0], m["base"][0], m["new"][0] / m["base"][0],
         m["new"][1], m["base"][1], m["new"][1] / m["base"][1]))
EOF
}

echo "pipeline benchmark: $(nproc) cores, --threads $threads, $(date -u +%FT%TZ)"
if [ "$which" = tiny ] || [ "$which" = both ]; then
    "$infvsr" make-tiny-model "$work/tiny" > /dev/null
    ffmpeg -v error -f lavfi -i testsrc2=size=64x36:rate=25 -frames:v 30 -pix_fmt yuv420p "$work/a.y4m"
    ffmpeg -v error -f lavfi -i "mandelbrot=size=64x36:rate=25" -frames:v 30 -pix_fmt yuv420p "$work/b.y4m"
    ffmpeg -v error -i "$work/a.y4m" -i "$work/b.y4m" -filter_complex "[0:v][1:v]concat=n=2:v=1[v]" -map "[v]" \
        -pix_fmt yuv420p "$work/tiny_in.y4m"
    run_case "tiny model, 64x36 -> 256x144" "$work/tiny_in.y4m" "$work/tiny"
fi
if [ "$which" = full ] || [ "$which" = both ]; then
    if [ ! -f "$cache/model.json" ]; then
        echo "writing full-size random weights to $cache (once) ..."
        t0=$(date +%s)
        "$infvsr" make-tiny-model "$cache" --config "$root/config/models/infvsr-full.json" > /dev/null
        echo "  $(( $(date +%s) - t0 )) s, $(du -sh "$cache" | cut -f1)"
    fi
    ffmpeg -v error -f lavfi -i testsrc2=size=32x32:rate=25 -frames:v 21 -pix_fmt yuv420p "$work/full_in.y4m"
    run_case "full-size modules, 32x32 -> 128x128" "$work/full_in.y4m" "$cache"
fi
