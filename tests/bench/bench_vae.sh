#!/usr/bin/env bash
# VAE benchmark: C engine (infvsr run vae-encode/vae-decode) vs PyTorch f32 CPU, same run,
# same thread count, full widths (base dim 96, random weights), one scene of a 9-frame then a
# 12-frame chunk at a small resolution. Prints per-chunk medians, the ratio torch/C (> 1 means
# C is faster) and the C-vs-torch parity of the outputs.
#
#   bash tests/bench/bench_vae.sh [BUILD_DIR] [HEIGHT] [WIDTH] [THREADS] [REPEAT]
#   (defaults: build-vae 64 64 $(nproc) 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-vae}
h=${2:-64}
w=${3:-64}
threads=${4:-$(nproc)}
repeat=${5:-3}
py=/usr/bin/python3
work=$(mktemp -d /tmp/bench_vae.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "VAE benchmark: ${h}x${w}, dim 96, threads $threads, repeat $repeat (medians)"
$py "$root/tests/bench/bench_vae.py" --work "$work" --height "$h" --width "$w" --threads "$threads" \
    --repeat "$repeat" | tee "$work/torch.txt"
"$build/infvsr" run vae-encode --model "$work/vae96.pth" --in "$work/frames.safetensors" \
    --out "$work/enc_c.safetensors" --threads "$threads" --repeat "$repeat" --timing | tee "$work/c_enc.txt"
"$build/infvsr" run vae-decode --model "$work/vae96.pth" --in "$work/latents.safetensors" \
    --out "$work/dec_c.safetensors" --threads "$threads" --repeat "$repeat" --timing | tee "$work/c_dec.txt"
$py "$root/tests/bench/bench_vae.py" --work "$work" --check "$work/enc_c.safetensors" "$work/dec_c.safetensors"

for what in encode decode; do
    for i in 0 1; do
        t=$(sed -n "s/^torch $what chunk $i: \([0-9.]*\) s$/\1/p" "$work/torch.txt")
        c=$(sed -n "s/^chunk $i: .*median \([0-9.]*\) s$/\1/p" "$work/c_${what:0:3}.txt")
        awk -v w="$what" -v i="$i" -v t="$t" -v c="$c" \
            'BEGIN { printf "%s chunk %d (%s frames in): torch %.3f s, C %.3f s, speedup %.2fx\n", w, i, (i ? "steady" : "first"), t, c, t / c }'
    done
done
