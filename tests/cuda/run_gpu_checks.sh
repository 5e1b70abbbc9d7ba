#!/usr/bin/env bash
# The one command for a GPU machine (e.g. through the device tool, from the repo root):
#
#     bash tests/cuda/run_gpu_checks.sh
#
# Configures and builds with the CUDA backend for sm_90 (override: CUDA_ARCH=80 ...), then:
#   1. probe: a usable GPU, or stop here with "FAIL: no usable GPU: <reason>";
#   2. the CUDA tests: the op-case table on cuda vs the CPU backend, the pool's steady state,
#      the device-fault test (they must PASS, not skip, here);
#   3. module parity CUDA (bf16) vs CPU (f32) (tests/cuda/test_module_parity.c: DiT chunk
#      sequence with cache and reset, VAE stream with and without tiling, Swin), on the tiny
#      random model and on full-size random weights (`infvsr make-tiny-model --config
#      config/models/infvsr-full.json`, about 4 GB, written to $WORK);
#   4. `infvsr upscale --device cuda` with the full-size random weights on generated clips
#      (21 frames: a 9- and a 12-frame chunk) at 720p and 1080p output (180p / 270p in),
#      printing per-stage ms and frames/s;
#   5. the op benchmark table (last, so that it ends the device tool's output tail).
# Every step prints its wall time; the whole must stay under 5 minutes from prebuilt programs
# (the total is printed against that budget). Logs go to $OUT when set (device tool), else
# to the build folder; scratch (models, clips, outputs) to $WORK (default: a temporary folder
# under ${TMPDIR:-/tmp}, removed at the end).
#
# Machines without the build dependencies (the device tool's: CUDA only, no OpenBLAS/jansson/
# FFmpeg, no registry) use programs built elsewhere by tests/cuda/pack_prebuilt.sh:
#     bash tests/cuda/run_gpu_checks.sh --prebuilt build-gpu-pack
# Needs for a build here: cmake >= 3.25, nvcc, cuBLAS, jansson, OpenBLAS and FFmpeg dev packages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREBUILT=""
if [ "${1:-}" = "--prebuilt" ]; then PREBUILT="$(cd "${2:?--prebuilt needs a folder}" && pwd)"; fi
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
ARCH="${CUDA_ARCH:-90}"
LOG="${OUT:-$BUILD}"
mkdir -p "$LOG"
JOBS="$(nproc 2>/dev/null || echo 4)"
T0=$SECONDS
BUDGET_S=300
step() { echo "==== [$((SECONDS - T0)) s] $*"; }

WORK="${WORK:-}"
if [ -z "$WORK" ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/infvsr-gpu-checks.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"

if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; fi
export PATH="/usr/local/cuda/bin:$PATH"

# ---- 0. programs: built here, or unpacked from the prebuilt folder ----------------------------
PROGRAMS="test_backend_ops test_cuda_pool test_cuda_fault bench_cuda test_module_parity infvsr"
CLIPS=""
if [ -n "$PREBUILT" ]; then
    step "prebuilt programs from $PREBUILT (commit $(cat "$PREBUILT/COMMIT" 2>/dev/null || echo '?'))"
    BIN="$PREBUILT"
    if [ -f "$PREBUILT/pack.tar.xz" ]; then # programs + libraries + clips, compressed to fit a carry
        BIN="$WORK/pack"
        mkdir -p "$BIN"
        tar -xJf "$PREBUILT/pack.tar.xz" -C "$BIN" || { echo "FAIL: cannot unpack $PREBUILT/pack.tar.xz"; exit 1; }
    fi
    export LD_LIBRARY_PATH="$BIN/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    [ -d "$BIN/clips" ] && CLIPS="$BIN/clips"
else
    step "build (sm_$ARCH) in $BUILD"
    mkdir -p "$BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DINFVSR_CUDA=ON \
          -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$LOG/configure.log" 2>&1 \
        || { tail -40 "$LOG/configure.log"; echo "FAIL: configure failed (no nvcc? see --prebuilt above)"; exit 1; }
    # shellcheck disable=SC2086 # the target list is words
    cmake --build "$BUILD" -j"$JOBS" --target $PROGRAMS >"$LOG/build.log" 2>&1 \
        || { grep -E "error" "$LOG/build.log" | head -40; tail -20 "$LOG/build.log"; echo "FAIL: build failed"; exit 1; }
    BIN="$BUILD/bin"
    mkdir -p "$BIN"
    for p in tests/ops/test_backend_ops tests/cuda/test_cuda_pool tests/cuda/test_cuda_fault tests/cuda/bench_cuda \
             tests/cuda/test_module_parity infvsr; do
        cp "$BUILD/$p" "$BIN/"
    done
fi
missing=""
for p in $PROGRAMS; do
    [ -x "$BIN/$p" ] || { missing="$missing $p"; continue; }
    if command -v ldd >/dev/null && ldd "$BIN/$p" 2>/dev/null | grep -q "not found"; then
        echo "$p: missing libraries: $(ldd "$BIN/$p" | grep "not found" | awk '{print $1}' | tr '\n' ' ')"
        missing="$missing $p"
    fi
done
[ -z "$missing" ] || { echo "FAIL: programs missing or not loadable:$missing"; exit 1; }
echo "programs ok: $PROGRAMS"

# ---- 1. a usable GPU, or nothing below means anything -------------------------------------------
step "probe"
rc=0
"$BIN/test_cuda_pool" > "$LOG/probe.log" 2>&1 || rc=$?
if [ "$rc" -eq 77 ]; then
    echo "FAIL: no usable GPU: $(sed -n 's/^SKIP: //p' "$LOG/probe.log" | head -1)"
    echo "overall: FAIL (nothing ran on a GPU)"
    exit 1
fi
status=0
if [ "$rc" -ne 0 ]; then tail -5 "$LOG/probe.log"; echo "FAIL: test_cuda_pool exited $rc"; status=1;
else tail -3 "$LOG/probe.log"; echo "PASS: test_cuda_pool"; fi

# ---- 2. op table and fault tests (a SKIP here is a failure) -------------------------------------
for t in test_backend_ops test_cuda_fault; do
    step "$t"
    rc=0
    args=(); [ "$t" = test_backend_ops ] && args=(-b cuda)
    "$BIN/$t" "${args[@]}" > "$LOG/$t.log" 2>&1 || rc=$?
    if [ "$t" = test_backend_ops ]; then cat "$LOG/$t.log"; else tail -5 "$LOG/$t.log"; fi
    if [ "$rc" -eq 77 ]; then echo "FAIL: $t skipped on a GPU machine"; status=1;
    elif [ "$rc" -ne 0 ]; then echo "FAIL: $t exited $rc"; status=1;
    else echo "PASS: $t"; fi
done

# ---- 3. module parity, tiny and full size -------------------------------------------------------
FULL="$WORK/full-random"
step "random models"
"$BIN/infvsr" make-tiny-model "$WORK/tiny-random" --seed 5 > /dev/null || { echo "FAIL: make-tiny-model"; status=1; }
"$BIN/infvsr" make-tiny-model "$FULL" --config "$ROOT/config/models/infvsr-full.json" --seed 5 > /dev/null \
    || { echo "FAIL: make-tiny-model --config infvsr-full.json"; status=1; }
echo "models written ($(du -sh "$WORK" | cut -f1))"
for m in tiny-random full-random; do
    step "module parity, $m"
    rc=0
    "$BIN/test_module_parity" --backend cuda --model-dir "$WORK/$m" > "$LOG/module_parity_$m.log" 2>&1 || rc=$?
    cat "$LOG/module_parity_$m.log"
    if [ "$rc" -eq 0 ]; then echo "PASS: module parity ($m)"; else echo "FAIL: module parity ($m) exited $rc"; status=1; fi
done

# ---- 4. infvsr upscale --device cuda at 720p and 1080p ------------------------------------------
# A number field of the --json "done" line.
jfield() { grep -o "\"$2\":[0-9.e+-]*" <<<"$1" | head -1 | cut -d: -f2; }
clip() { # clip NAME WxH: from the pack, or generated by ffmpeg
    local name=$1 size=$2
    if [ -n "$CLIPS" ] && [ -f "$CLIPS/$name.mp4" ]; then echo "$CLIPS/$name.mp4"; return 0; fi
    command -v ffmpeg >/dev/null || { echo "no clip $name: no ffmpeg and no prebuilt clips" >&2; return 1; }
    ffmpeg -v error -y -f lavfi -i "testsrc2=size=$size:rate=25" -frames:v 21 -c:v libx264 -pix_fmt yuv420p \
        "$WORK/$name.mp4" && echo "$WORK/$name.mp4"
}
for spec in "180p 320x180 720p" "270p 480x270 1080p"; do
    read -r name size outname <<<"$spec"
    step "infvsr upscale --device cuda: $name -> $outname, full-size random weights"
    src=$(clip "$name" "$size") || { echo "FAIL: no $name clip"; status=1; continue; }
    rc=0
    "$BIN/infvsr" upscale "$src" "$WORK/out_$outname.y4m" --model-dir "$FULL" --device cuda --json \
        --no-scene-detection --force > "$LOG/upscale_$outname.json" 2> "$LOG/upscale_$outname.err" || rc=$?
    done_line=$(grep '"event":"done"' "$LOG/upscale_$outname.json" || true)
    if [ "$rc" -ne 0 ] || [ -z "$done_line" ]; then
        tail -5 "$LOG/upscale_$outname.err"; echo "FAIL: upscale $outname exited $rc"; status=1; continue
    fi
    frames=$(jfield "$done_line" frames)
    printf '%s: %s frames, %s chunks, %s frames/s, peak RSS %s kB; model %s B, session %s B on the GPU; moved %s B in, %s B out\n' \
        "$outname" "$frames" "$(jfield "$done_line" chunks)" "$(jfield "$done_line" fps)" \
        "$(jfield "$done_line" peak_rss_kb)" "$(jfield "$done_line" model_bytes)" "$(jfield "$done_line" session_bytes)" \
        "$(jfield "$done_line" bytes_to_device)" "$(jfield "$done_line" bytes_from_device)"
    for st in decode scene visual resize vae_encode dit vae_decode output encode; do
        s=$(jfield "$done_line" "$st")
        awk -v st="$st" -v s="$s" -v n="$frames" 'BEGIN { printf "  %-10s %9.1f ms  %8.1f ms/frame\n", st, 1000 * s, 1000 * s / n }'
    done
    [ "$frames" = 21 ] || { echo "FAIL: $outname: $frames frames out, want 21"; status=1; }
done

# ---- 5. benchmark table -----------------------------------------------------------------------
step "bench_cuda"
"$BIN/bench_cuda" "${BENCH_ITERS:-20}" 2>&1 | tee "$LOG/bench.log" || status=1
elapsed=$((SECONDS - T0))
echo "elapsed ${elapsed} s (budget ${BUDGET_S} s)$([ "$elapsed" -le "$BUDGET_S" ] || echo ': OVER BUDGET')"
echo "overall: $([ "$status" -eq 0 ] && echo PASS || echo FAIL)"
exit "$status"
