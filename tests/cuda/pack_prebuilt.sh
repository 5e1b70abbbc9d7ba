#!/usr/bin/env bash
# Builds the GPU check programs HERE (a machine with nvcc and the Debian build dependencies)
# into a self-contained folder for a GPU machine that lacks those dependencies and cannot
# install anything (the device tool's machines have CUDA but no OpenBLAS/jansson/FFmpeg and
# no package registry):
#
#     bash tests/cuda/pack_prebuilt.sh [OUT_DIR]        # default build-gpu-pack
#     # then, on the GPU machine (device tool: carry ["build-gpu-pack"]):
#     bash tests/cuda/run_gpu_checks.sh --prebuilt build-gpu-pack
#
# OUT_DIR holds COMMIT and pack.tar.xz: the programs run_gpu_checks.sh runs (the CUDA tests,
# the op table, the module parity, bench_cuda and `infvsr` itself), lib/ with the non-CUDA,
# non-glibc shared libraries they load (OpenBLAS, jansson, FFmpeg and its codecs, ...) and
# clips/ (the 180p and 270p test clips, H.264). CUDA's own libraries are taken from the GPU
# machine's toolkit (run_gpu_checks.sh records `ldd` of every program there first, so a
# library that does not resolve is the first row of its table). sm_90 only (CUDA_ARCH to
# change: H100 and H200 are both sm_90), Release. xz keeps it under the device tool's
# 64 MiB carry limit (checked at the end; the FFmpeg libraries are most of it).
# compute-sanitizer is not carried: the GPU machines' CUDA image has it (and this build
# machine's toolkit does not); run_gpu_checks.sh finds it there or says it is missing.
# BUILD_INFO records the commit, nvcc and the architectures of the pack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT_DIR="${1:-$ROOT/build-gpu-pack}"
BUILD="$ROOT/build-gpu-pack-cmake"
ARCH="${CUDA_ARCH:-90}"
export PATH="/usr/local/cuda/bin:$PATH"
PROGRAMS="tests/ops/test_backend_ops tests/cuda/test_cuda_pool tests/cuda/test_cuda_fault tests/cuda/bench_cuda
          tests/cuda/test_module_parity infvsr"
TARGETS=""
for p in $PROGRAMS; do TARGETS="$TARGETS $(basename "$p")"; done

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFVSR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
      -DINFVSR_BUILD_TESTS=ON >"$BUILD.configure.log" 2>&1 || { tail -30 "$BUILD.configure.log"; exit 1; }
# shellcheck disable=SC2086 # the target list is words
cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS >"$BUILD.build.log" 2>&1 \
    || { grep -E "error" "$BUILD.build.log" | head -30; exit 1; }

STAGE="$BUILD/stage"
rm -rf "$OUT_DIR" "$STAGE"
mkdir -p "$OUT_DIR" "$STAGE/lib" "$STAGE/clips"
for p in $PROGRAMS; do
    cp "$BUILD/$p" "$STAGE/"
    strip --strip-debug "$STAGE/$(basename "$p")"
done
# Non-CUDA, non-glibc libraries the programs load (OpenBLAS, gfortran, FFmpeg, codecs, ...).
for p in $PROGRAMS; do ldd "$STAGE/$(basename "$p")"; done | awk '/=>/ {print $3}' | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
        libcuda.*|libcublas*|libcudart*|libnvidia*) ;;                         # the GPU machine's driver/toolkit
        libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libresolv.so*|ld-linux*) ;; # glibc
        libgcc_s*|libstdc++*) ;;
        *) cp -L "$lib" "$STAGE/lib/" ;;
    esac
done
# The clips of the upscale step: 21 frames (a 9- and a 12-frame chunk) of a moving test
# pattern at 180p and 270p (720p and 1080p out).
for spec in "180p 320x180" "270p 480x270"; do
    read -r name size <<<"$spec"
    ffmpeg -v error -y -f lavfi -i "testsrc2=size=$size:rate=25" -frames:v 21 -c:v libx264 -pix_fmt yuv420p \
        "$STAGE/clips/$name.mp4"
done
XZ_OPT="-9 -T0" tar -cJf "$OUT_DIR/pack.tar.xz" -C "$STAGE" .
git -C "$ROOT" rev-parse HEAD > "$OUT_DIR/COMMIT"
{
    echo "commit: $(git -C "$ROOT" rev-parse HEAD)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "built:  $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -srm)"
    echo "nvcc:   $(nvcc --version | tail -1)"
    echo "arch:   sm_$ARCH, Release"
} > "$OUT_DIR/BUILD_INFO"
du -sh "$STAGE" "$OUT_DIR"
size=$(du -sb "$OUT_DIR" | cut -f1)
if [ "$size" -gt $((64 * 1024 * 1024)) ]; then echo "ERROR: $OUT_DIR is over the 64 MiB carry limit"; exit 1; fi
if [ "$size" -gt $((60 * 1024 * 1024)) ]; then echo "WARNING: $OUT_DIR is over 60 MiB (limit 64)"; fi
ls -la "$OUT_DIR"
