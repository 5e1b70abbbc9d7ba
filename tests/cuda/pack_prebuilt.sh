#!/usr/bin/env bash
# Builds the CUDA test and benchmark programs HERE (a machine with nvcc and the Debian
# build dependencies) into a self-contained folder for a GPU machine that lacks those
# dependencies and cannot install anything (the device tool's machines have CUDA but no
# OpenBLAS/jansson and no package registry):
#
#     bash tests/cuda/pack_prebuilt.sh [OUT_DIR]        # default build-gpu-pack
#     # then, on the GPU machine (device tool: carry ["build-gpu-pack"]):
#     bash tests/cuda/run_gpu_checks.sh --prebuilt build-gpu-pack
#
# OUT_DIR holds the four programs and lib/ with the non-CUDA shared libraries they
# need (OpenBLAS and its Fortran runtime); CUDA's own libraries are taken from the GPU
# machine's toolkit. sm_90 only (CUDA_ARCH to change), Release. Stays under the device
# tool's 64 MiB carry limit (checked at the end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT_DIR="${1:-$ROOT/build-gpu-pack}"
BUILD="$ROOT/build-gpu-pack-cmake"
ARCH="${CUDA_ARCH:-90}"
export PATH="/usr/local/cuda/bin:$PATH"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DINFVSR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
      -DINFVSR_BUILD_TESTS=ON >"$BUILD.configure.log" 2>&1 || { tail -30 "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target test_backend_ops test_cuda_pool test_cuda_fault bench_cuda >"$BUILD.build.log" 2>&1 \
    || { grep -E "error" "$BUILD.build.log" | head -30; exit 1; }
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR/lib"
for p in tests/ops/test_backend_ops tests/cuda/test_cuda_pool tests/cuda/test_cuda_fault tests/cuda/bench_cuda; do
    cp "$BUILD/$p" "$OUT_DIR/"
    p=$(basename "$p")
    strip --strip-debug "$OUT_DIR/$p"
done
# Non-CUDA, non-glibc libraries the programs load (OpenBLAS, gfortran, quadmath, ...).
ldd "$OUT_DIR/test_backend_ops" | awk '/=>/ {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
        libcuda*|libcublas*|libcudart*|libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s*|libstdc++*) ;;
        *) cp -L "$lib" "$OUT_DIR/lib/" ;;
    esac
done
git -C "$ROOT" rev-parse HEAD > "$OUT_DIR/COMMIT"
du -sh "$OUT_DIR"
size=$(du -sb "$OUT_DIR" | cut -f1)
if [ "$size" -gt $((60 * 1024 * 1024)) ]; then echo "WARNING: $OUT_DIR is over 60 MiB"; fi
ls -la "$OUT_DIR" "$OUT_DIR/lib"
