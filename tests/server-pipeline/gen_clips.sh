#!/bin/bash
# Fixtures for the pipeline tests, generated at test time into the build directory:
# small ffmpeg test clips (64x48, 36 frames at 30 fps, most with an AAC audio track) and
# the tiny random-weight model.  usage: gen_clips.sh INFVSR_BINARY OUT_DIR
set -euo pipefail
infvsr=$1
out=$2
mkdir -p "$out"
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
src="testsrc2=size=64x48:rate=30:duration=1.2"
aud="sine=frequency=440:sample_rate=48000:duration=1.2"
ff -f lavfi -i "$src" -f lavfi -i "$aud" -c:v libx264 -pix_fmt yuv420p -g 12 -c:a aac -b:a 64k \
   -f mpegts "$out/a.ts"
ff -f lavfi -i "$src" -f lavfi -i "$aud" -c:v libx264 -pix_fmt yuv420p -g 12 -c:a aac -b:a 64k \
   -f matroska "$out/a.mkv"
ff -f lavfi -i "$src" -pix_fmt yuv420p -f yuv4mpegpipe "$out/a.y4m"
# longer, for streaming: 150 frames of FFV1 (big frames, so the upload takes many pieces)
ff -f lavfi -i "testsrc2=size=64x48:rate=30:duration=5" -c:v ffv1 -f matroska "$out/long.mkv"
# over the tests' max_frame_pixels (64x48*2)
ff -f lavfi -i "testsrc2=size=160x120:rate=30:duration=0.3" -c:v libx264 -f matroska "$out/big.mkv"
# MP4 with its index (moov) at the end: unreadable as a stream
ff -f lavfi -i "nullsrc=s=64x48:r=30:d=3,geq=lum=random(1)*255:cb=128:cr=128" -c:v libx264 -qp 0 \
   -pix_fmt yuv420p -f mp4 "$out/moov_end.mp4"
# fragmented MP4: readable as a stream
ff -f lavfi -i "$src" -f lavfi -i "$aud" -c:v libx264 -pix_fmt yuv420p -g 12 -c:a aac \
   -movflags frag_keyframe+empty_moov -f mp4 "$out/frag.mp4"
# an HLS playlist naming a local file: must be refused, never opened
printf '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n%s\n#EXT-X-ENDLIST\n' "$out/a.ts" > "$out/list.m3u8"
# 200 kB of bytes no demuxer claims. Fixed, not /dev/urandom: one random draw in a few
# hundred probed as raw H.263 and the test failed by chance.
python3 -c 'import random, sys; r = random.Random(20261207); sys.stdout.buffer.write(r.randbytes(200000))' \
    > "$out/garbage.bin"
rm -rf "$out/tiny"
"$infvsr" make-tiny-model "$out/tiny" --seed 1 > /dev/null
echo "fixtures in $out"
