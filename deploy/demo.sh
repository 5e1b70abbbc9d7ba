#!/usr/bin/env bash
# End-to-end demo on a fresh Debian 12 machine: installs the dependencies, builds infvsr and
# infvsrd, writes a TINY model with RANDOM weights (the output is NOT a meaningful
# super-resolution: it exercises the real pipeline — scene detection, chunking, bicubic x4,
# VAE, DiT with the rolling KV cache, visual guidance — end to end), generates a short test
# clip with a scene cut and audio, and
#   1. upscales it offline with `infvsr upscale`,
#   2. starts the daemon `infvsrd` on the same model, creates a job over HTTP, streams the
#      clip up with curl while a second curl reads the output as it is produced, and stops
#      the daemon with SIGTERM (it drains and exits 0).
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
cmake --build "$build" -j "$(nproc)" --target infvsr --target infvsrd >> "$out/cmake.log"

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

echo "== serving: infvsrd on the same model (loopback, free port, spool in $out/spool)"
rm -rf "$out/spool" "$out/daemon.log" "$out/served.mkv"
"$build/infvsrd" --listen 127.0.0.1:0 --model-dir "$out/tiny-model" --spool-dir "$out/spool" \
    --instance demo --log-format text > "$out/daemon.log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2> /dev/null || true' EXIT
port=""
for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening port=\([0-9]*\).*/\1/p' "$out/daemon.log" | head -n 1)
    [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && break
    kill -0 "$daemon" 2> /dev/null || { cat "$out/daemon.log"; echo "infvsrd exited"; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$out/daemon.log"; echo "infvsrd did not become ready"; exit 1; }
api=http://127.0.0.1:$port
echo "   ready on $api"
job=$(curl -fsS -X POST "$api/v1/jobs" -H 'Content-Type: application/json' \
    -d '{"output":{"container":"matroska","codec":"h264"}}')
id=$(printf '%s' "$job" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
echo "   created job $id"
# The upload is a stream (Matroska, chunked transfer encoding); the output is read at the same time.
ffmpeg -loglevel error -y -i "$out/input.mp4" -c copy -f matroska "$out/input.mkv"
curl -fsS "$api/v1/jobs/$id/output" -o "$out/served.mkv" &
reader=$!
curl -fsS -T - -H 'Content-Type: video/x-matroska' "$api/v1/jobs/$id/input" < "$out/input.mkv"
wait "$reader"
curl -fsS "$api/v1/jobs/$id" | sed 's/^/   status: /'
echo
kill -TERM "$daemon"
wait "$daemon" && echo "   infvsrd drained and exited 0" || { echo "infvsrd exit status $?"; exit 1; }
trap - EXIT

echo "== result"
for f in input.mp4 output.mp4 served.mkv; do
    printf '%-11s ' "$f"
    ffprobe -v error -select_streams v:0 -count_frames \
        -show_entries stream=width,height,r_frame_rate,nb_read_frames -of csv=p=0 "$out/$f" |
        awk -F, '{ printf "%sx%s, %s fps, %s frames", $1, $2, $3, $4 }'
    printf ', audio streams: %s\n' "$(ffprobe -v error -select_streams a -show_entries stream=index -of csv=p=0 "$out/$f" | wc -l)"
done
echo "demo outputs: $out/output.mp4 (infvsr upscale), $out/served.mkv (through infvsrd)"
echo "(tiny random-weight model: not a meaningful picture)"
