#!/usr/bin/env bash
# VAE benchmark: C engine (infvsr run vae-encode/vae-decode) vs PyTorch f32 and PyTorch bf16 on
# the CPU, same run, same thread count, full widths (base dim 96, random weights), one scene of
# a 9-frame then a 12-frame chunk at a small resolution. PyTorch and C rounds alternate (REPEAT
# rounds each, so that load from other processes hits both alike); prints per-chunk medians,
# the speedups torch/C (> 1 means C is faster) and the C-vs-torch parity of the outputs.
# BENCH_VAE_PRECISION=bf16 runs the C side with --precision bf16 (default: the device's own).
#
#   bash tests/bench/bench_vae.sh [BUILD_DIR] [HEIGHT] [WIDTH] [THREADS] [REPEAT]
#   (defaults: build-vae 64 64 $(nproc) 3)
#
# Before/after comparisons: with BENCH_VAE_BASE=/path/to/old/infvsr every round also runs
# that binary (right after the new one, same inputs and threads), and the summary adds its
# medians, the ratio new/base (< 1 means the new build is faster) and both peak RSS values
# (the base runs with the same --device/--precision options).
# With BENCH_VAE_DEVICE=NAME the new binary runs with --device NAME (default: its own
# default, cpu).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-vae}
h=${2:-64}
w=${3:-64}
threads=${4:-$(nproc)}
repeat=${5:-3}
py=/usr/bin/python3
base=${BENCH_VAE_BASE:-}
dev=()
if [ -n "${BENCH_VAE_DEVICE:-}" ]; then dev=(--device "$BENCH_VAE_DEVICE"); fi
if [ -n "${BENCH_VAE_PRECISION:-}" ]; then dev+=(--precision "$BENCH_VAE_PRECISION"); fi
work=$(mktemp -d /tmp/bench_vae.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "VAE benchmark: ${h}x${w}, dim 96, threads $threads, $repeat alternating rounds (medians)"
for r in $(seq "$repeat"); do
    $py "$root/tests/bench/bench_vae.py" --work "$work" --height "$h" --width "$w" --threads "$threads" \
        --repeat 1 >> "$work/torch.txt"
    $py "$root/tests/bench/bench_vae.py" --work "$work" --height "$h" --width "$w" --threads "$threads" \
        --repeat 1 --bf16 >> "$work/torch.txt"
    "$build/infvsr" run vae-encode --model "$work/vae96.pth" --in "$work/frames.safetensors" \
        --out "$work/enc_c.safetensors" --threads "$threads" --timing "${dev[@]}" >> "$work/c_enc.txt"
    "$build/infvsr" run vae-decode --model "$work/vae96.pth" --in "$work/latents.safetensors" \
        --out "$work/dec_c.safetensors" --threads "$threads" --timing "${dev[@]}" >> "$work/c_dec.txt"
    if [ -n "$base" ]; then
        "$base" run vae-encode --model "$work/vae96.pth" --in "$work/frames.safetensors" \
            --out "$work/enc_b.safetensors" --threads "$threads" --timing "${dev[@]}" >> "$work/b_enc.txt"
        "$base" run vae-decode --model "$work/vae96.pth" --in "$work/latents.safetensors" \
            --out "$work/dec_b.safetensors" --threads "$threads" --timing "${dev[@]}" >> "$work/b_dec.txt"
    fi
done
grep -h "^vae-" "$work/c_enc.txt" "$work/c_dec.txt" | sort -u
$py "$root/tests/bench/bench_vae.py" --work "$work" --check "$work/enc_c.safetensors" "$work/dec_c.safetensors"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for what in encode decode; do
    for i in 0 1; do
        t=$(sed -n "s/^torch $what chunk $i: \([0-9.]*\) s$/\1/p" "$work/torch.txt" | median)
        tb=$(sed -n "s/^torch-bf16 $what chunk $i: \([0-9.]*\) s$/\1/p" "$work/torch.txt" | median)
        c=$(sed -n "s/^chunk $i: .*median \([0-9.]*\) s$/\1/p" "$work/c_${what:0:3}.txt" | median)
        awk -v w="$what" -v i="$i" -v t="$t" -v tb="$tb" -v c="$c" \
            'BEGIN { printf "%s chunk %d (%s): torch f32 %.3f s, torch bf16 %.3f s, C %.3f s, speedup vs f32 %.2fx, vs bf16 %.2fx\n",
                     w, i, (i ? "12 frames, steady" : "9 frames, scene start"), t, tb, c, t / c, tb / c }'
    done
done
if [ -n "$base" ]; then
    echo "baseline $base:"
    grep -h "^vae-" "$work/b_enc.txt" "$work/b_dec.txt" | sort -u
    for what in encode decode; do
        for i in 0 1; do
            c=$(sed -n "s/^chunk $i: .*median \([0-9.]*\) s$/\1/p" "$work/c_${what:0:3}.txt" | median)
            b=$(sed -n "s/^chunk $i: .*median \([0-9.]*\) s$/\1/p" "$work/b_${what:0:3}.txt" | median)
            awk -v w="$what" -v i="$i" -v b="$b" -v c="$c" \
                'BEGIN { printf "%s chunk %d: base %.3f s, new %.3f s, new/base %.3f\n", w, i, b, c, c / b }'
        done
        for f in c b; do
            sed -n "s/.*peak RSS \([0-9]*\) MiB$/\1/p" "$work/${f}_${what:0:3}.txt" | median |
                awk -v w="$what" -v f="$f" '{ printf "%s peak RSS (%s, median): %d MiB\n", w, f == "c" ? "new" : "base", $1 }'
        done
    done
fi
