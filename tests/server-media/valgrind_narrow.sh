#!/usr/bin/env bash
# Regression: a frame whose RGB24 row is not a multiple of swscale's vector width (24x16)
# must not be read or written past its end by the media reader or writer. ASan cannot see
# this (the accesses happen inside uninstrumented libswscale); valgrind can.
# Usage: valgrind_narrow.sh MEDIA_TOOL WORKDIR
set -euo pipefail
tool=$1
work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work"
ffmpeg -loglevel error -f lavfi -i testsrc2=size=24x16:rate=10:duration=0.5 -pix_fmt yuv420p in.mp4
valgrind -q --error-exitcode=9 "$tool" transcode in.mp4 out.mp4 h264
frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=width,height,nb_read_frames -of csv=p=0 out.mp4)
echo "output: $frames"
[ "$frames" = "24,16,5" ] || { echo "unexpected output stream: $frames"; exit 1; }
echo "valgrind clean"
