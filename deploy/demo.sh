#!/usr/bin/env bash
# End-to-end demo on a fresh Debian 12 machine: installs the dependencies, builds infvsr,
# writes a TINY model with RANDOM weights (the output is NOT a meaningful super-resolution:
# it exercises the real pipeline — scene detection, chunking, bicubic x4, VAE, DiT with the
# rolling KV cache, visual guidance — end to end), generates a short test clip with a scene
# cut and audio, upscales it with `infvsr upscale` and prints what came out.
#
# With the official model files, run instead:
#   build/demo/infvsr upscale in.mp4 out.mp4 --model-dir /path/to/models
# Usage: bash deploy/demo.sh [OUTPUT_DIR]   (default: ./out/demo)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out/demo}
build=$root/build/demo
mkdir -p "$out"

bash "$root/deploy/install-deps.sh"

echo "== building (Release) into $build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFVSR_BUILD_TESTS=OFF > "$out/cmake.log"
cmake --build "$build" -j "$(nproc)" --target infvsr >> "$out/cmake.log"

echo "== writing the tiny random-weight demo model to $out/tiny-model"
"$build/infvsr" make-tiny-model "$out/tiny-model" --seed 1

echo "== generating a 3 s, 64x48 test clip with a scene cut and a stereo tone"
ffmpeg -loglevel error -y \
    -f lavfi -i "testsrc2=size=64x48:rate=24:duration=1.5" \
    -f lavfi -i "smptebars=size=64x48:rate=24:duration=1.5" \
    -f lavfi -i "sine=frequency=440:duration=3:sample_rate=48000" \
    -filter_complex "[0:v][1:v]concat=n=2:v=1:a=0[v]" -map "[v]" -map 2:a \
    -c:v libx264 -pix_fmt yuv420p -c:a aac "$out/input.mp4"

echo "== upscaling x4"
"$build/infvsr" upscale "$out/input.mp4" "$out/output.mp4" --model-dir "$out/tiny-model" --force

echo "== result"
for f in input.mp4 output.mp4; do
    printf '%-11s ' "$f"
    ffprobe -v error -select_streams v:0 -count_frames \
        -show_entries stream=width,height,r_frame_rate,nb_read_frames -of csv=p=0 "$out/$f" |
        awk -F, '{ printf "%sx%s, %s fps, %s frames", $1, $2, $3, $4 }'
    printf ', audio streams: %s\n' "$(ffprobe -v error -select_streams a -show_entries stream=index -of csv=p=0 "$out/$f" | wc -l)"
done
echo "demo output: $out/output.mp4 (tiny random-weight model: not a meaningful picture)"
