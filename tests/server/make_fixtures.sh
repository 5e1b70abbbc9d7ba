#!/bin/bash
# Fixtures of the server tests, written into the build tree:
#   make_fixtures.sh INFVSR_CLI OUTDIR
#   OUTDIR/tiny/            tiny random-weight model (`infvsr make-tiny-model --seed 1`)
#   OUTDIR/clip.ts          64x48 24 fps 3 s (72 frames), H.264 + AAC sine, MPEG-TS
#   OUTDIR/clip.mkv         64x48 24 fps 2 s (48 frames), H.264 + AAC sine, Matroska
#   OUTDIR/clip.y4m         64x48 24 fps 2 s (48 frames), raw yuv420p, YUV4MPEG2
#   OUTDIR/small.ts         32x24 24 fps 2 s (48 frames), H.264 + AAC, MPEG-TS (8 concurrent jobs)
#   OUTDIR/long.ts          64x48 24 fps 8 s (192 frames), H.264 + AAC, MPEG-TS (drain, cancel)
#   OUTDIR/small.mkv        32x24 2 s (48 frames) Matroska;  OUTDIR/small.y4m  32x24 2 s y4m
#   OUTDIR/small_long.ts    32x24 24 fps 8 s (192 frames), H.264 + AAC, MPEG-TS (streaming, tus)
# (32x24 clips keep the tiny-model tests fast: about 4x less work per frame than 64x48.)
# Every clip is re-checked with ffprobe (frame count) so a broken ffmpeg fails here.
set -euo pipefail
cli=$1
out=$2
mkdir -p "$out"
if [[ ! -f "$out/tiny/model.json" ]]; then
    rm -rf "$out/tiny"
    "$cli" make-tiny-model "$out/tiny" --seed 1
fi
gen() { # name size seconds container [extra args...]
    local name=$1 size=$2 secs=$3 fmt=$4; shift 4
    [[ -s "$out/$name" ]] && return 0
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=$size:rate=24" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$secs" "$@" -f "$fmt" "$out/$name.tmp"
    mv "$out/$name.tmp" "$out/$name"
}
x264=(-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 24 -c:a aac -b:a 64k)
gen clip.ts 64x48 3 mpegts "${x264[@]}"
gen clip.mkv 64x48 2 matroska "${x264[@]}"
gen small.ts 32x24 2 mpegts "${x264[@]}"
gen long.ts 64x48 8 mpegts "${x264[@]}"
gen small.mkv 32x24 2 matroska "${x264[@]}"
gen small_long.ts 32x24 8 mpegts "${x264[@]}"
for s in clip:64x48 small:32x24; do
    if [[ ! -s "$out/${s%%:*}.y4m" ]]; then
        ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=${s#*:}:rate=24" -t 2 -pix_fmt yuv420p \
            -f yuv4mpegpipe "$out/${s%%:*}.y4m.tmp"
        mv "$out/${s%%:*}.y4m.tmp" "$out/${s%%:*}.y4m"
    fi
done
check() { # name frames
    local n
    n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
        -of default=nw=1:nk=1 "$out/$1" | awk "NR==1")
    [[ "$n" == "$2" ]] || { echo "fixture $1: $n frames, expected $2" >&2; rm -f "$out/$1"; exit 1; }
}
check clip.ts 72; check clip.mkv 48; check clip.y4m 48; check small.ts 48; check long.ts 192
check small.mkv 48; check small.y4m 48; check small_long.ts 192
ls -l "$out"
