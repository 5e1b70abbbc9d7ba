#!/usr/bin/env bash
# The one command for a GPU machine (H100 / H200 through the device tool, from the repo root):
#
#     bash tests/cuda/pack_prebuilt.sh                           # here: programs + libraries
#     bash tests/cuda/run_gpu_checks.sh --prebuilt build-gpu-pack # there (carry build-gpu-pack)
#
# Built to get the most out of a GPU minute. Every step runs in its own process under its
# own time limit, so a fault, a hang or a crash in one family costs that step, not the
# rest; each limit is also cut to what is left of the total budget (BUDGET_S, default 300
# s from prebuilt programs), so the whole run ends inside it and a rerun fits in the same
# lease. In order (groups for --only in brackets):
#   env        nvidia-smi, driver, CUDA toolkit, compute-sanitizer, `ldd` of every program
#              (a library that does not resolve is a FAIL row, the run goes on);
#   probe      a usable GPU, or stop here: "FAIL: no usable GPU: <reason>";
#   [pool]     test_cuda_pool: no cudaMalloc and no new cuBLASLt plan / resize table in a
#              steady state;  [fault]  test_cuda_fault: a device fault -> unhealthy backend;
#   [ops]      the op-case table, CUDA vs CPU, one process per op family
#              (test_backend_ops -b cuda -o FAMILY, f32 and bf16), GPU_CHECK_JOBS at once;
#   [bench]    full-size probes (bench_cuda ITERS FAMILY): GEMMs at the DiT's 720p shapes; attention at
#              the 720p shape on the mma / WMMA kernels and mma vs SIMT on a 1k-query slice;
#              conv3d at a VAE stage once per INFVSR_CUDA_CONV=cudnn|implicit|im2col (a value
#              the build does not know is a SKIP row);
#   [torch]    the same shapes through PyTorch on the same GPU (SDPA, cuDNN conv3d bf16,
#              cuBLAS linear) as the ceiling, or "PyTorch ceiling: not available (reason)";
#   [memcheck] compute-sanitizer memcheck over every op family (one process each);
#   [racecheck] compute-sanitizer racecheck on attention and conv3d (bf16: the kernels with
#              shared memory) -- both only where compute-sanitizer exists on the machine;
#   [parity]   module parity CUDA (bf16) vs CPU on the tiny random model;
#   [upscale]  full-size random weights (make-tiny-model --config infvsr-full.json, ~4 GB):
#              module parity, then `infvsr upscale --device cuda` at 720p and 1080p output.
# What the budget leaves out is a "SKIP (budget ...)" row: rerun with --only GROUPS.
#
# Results: $OUT (the device tool's) or ./build-gpu/checks: summary.md (one table of every
# step: status, seconds, result; then the performance rows of bench_cuda and PyTorch),
# env.txt, logs.tar.gz (every step's full log). summary.md is also printed last.
#
# Options:
#   --prebuilt DIR    programs from tests/cuda/pack_prebuilt.sh (pack.tar.xz or unpacked)
#   --build-dir DIR   programs of an existing build folder (nothing is built)
#                     (neither: configure and build here in build-gpu, sm_$CUDA_ARCH, not
#                     counted in the budget; needs nvcc, cuBLAS, jansson, OpenBLAS, FFmpeg)
#   --only GROUPS     comma list of the groups above (env and probe always run)
#   --dry-run         print and tabulate the plan (steps, limits) without running anything
# Environment: BUDGET_S (300), GPU_CHECK_JOBS (4 parallel processes in ops / memcheck /
# racecheck), BENCH_ITERS (20), STEP_CAP_S (caps every step's limit: quick smoke runs and
# the script's own test), OUT, WORK (scratch; default a temporary folder, removed).
# Exit: 0 when no step failed (budget skips included: the summary says what they were),
# 1 on a failure or when no usable GPU was found, 2 on a usage error.
set -uo pipefail # not -e: a failing step is a row of the table, not the end of the run

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# ---- internal sub-steps (run as `bash run_gpu_checks.sh --step NAME ...` under timeout) ----
if [ "${1:-}" = "--step" ]; then
    shift
    case "$1" in
    make-model) # make-model BIN DIR [CONFIG]
        "$2/infvsr" make-tiny-model "$3" --seed 5 ${4:+--config "$4"} >/dev/null || exit 1
        echo "model written: $(du -sh "$3" | cut -f1)"
        exit 0 ;;
    upscale) # upscale BIN MODEL CLIP OUT_Y4M
        json="$(mktemp)"
        "$2/infvsr" upscale "$4" "$5" --model-dir "$3" --device cuda --json --no-scene-detection --force \
            >"$json" || { echo "FAIL: infvsr upscale exited $?"; exit 1; }
        done_line=$(grep '"event":"done"' "$json" || true)
        rm -f "$json"
        [ -n "$done_line" ] || { echo "FAIL: no done event"; exit 1; }
        jf() { grep -o "\"$1\":[0-9.e+-]*" <<<"$done_line" | head -1 | cut -d: -f2; }
        frames=$(jf frames)
        for st in decode scene visual resize vae_encode dit vae_decode output encode; do
            awk -v st="$st" -v s="$(jf "$st")" -v n="$frames" \
                'BEGIN { printf "  %-10s %9.1f ms  %8.1f ms/frame\n", st, 1000 * s, 1000 * s / n }'
        done
        echo "upscale: $frames frames, $(jf chunks) chunks, $(jf fps) frames/s, peak RSS $(jf peak_rss_kb) kB," \
             "session $(jf session_bytes) B on the GPU"
        [ "$frames" = 21 ] || { echo "FAIL: $frames frames out, want 21"; exit 1; }
        exit 0 ;;
    *) echo "unknown step $1" >&2; exit 2 ;;
    esac
fi

usage() { sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; }
PREBUILT="" BUILD_GIVEN="" ONLY="" DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
    --prebuilt) PREBUILT="${2:?--prebuilt needs a folder}"; shift 2 ;;
    --build-dir) BUILD_GIVEN="${2:?--build-dir needs a folder}"; shift 2 ;;
    --only) ONLY="${2:?--only needs a list}"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_gpu_checks.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
    esac
done
GROUPS_ALL="pool fault ops bench torch memcheck racecheck parity upscale"
for g in ${ONLY//,/ }; do
    case " $GROUPS_ALL " in *" $g "*) ;; *) echo "run_gpu_checks.sh: unknown group '$g' (known: $GROUPS_ALL)" >&2; exit 2 ;; esac
done
want() { [ -z "$ONLY" ] || case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

T0=$SECONDS # the budget counts from here (unpacking the pack included; a build here is not)
BUDGET_S="${BUDGET_S:-300}"
RESERVE_S=8   # kept back for the summary and the log archive
MIN_STEP_S=5  # a step with less than this left is skipped, not started
JOBS="${GPU_CHECK_JOBS:-4}"
ITERS="${BENCH_ITERS:-20}"
BUILD="${BUILD_DIR:-$ROOT/build-gpu}"
ARCH="${CUDA_ARCH:-90}"
OUT_DIR="${OUT:-$BUILD/checks}"
mkdir -p "$OUT_DIR"
WORK="${WORK:-}"
if [ -z "$WORK" ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/infvsr-gpu-checks.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
fi
LOGS="$WORK/logs" RES="$WORK/results"
rm -rf "$LOGS" "$RES"
mkdir -p "$LOGS" "$RES"
export PATH="$PATH:/usr/local/cuda/bin"

# ---- programs: built here, an existing build folder, or the prebuilt pack --------------------
PROGRAMS="test_backend_ops test_cuda_pool test_cuda_fault bench_cuda test_module_parity infvsr"
prog_rel() { # where a program lives in a build folder
    case "$1" in
    test_backend_ops) echo tests/ops/test_backend_ops ;;
    test_module_parity|test_cuda_pool|test_cuda_fault|bench_cuda) echo "tests/cuda/$1" ;;
    *) echo "$1" ;;
    esac
}
CLIPS="" BIN="$WORK/bin" COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
mkdir -p "$BIN"
if [ -n "$PREBUILT" ]; then
    PREBUILT="$(cd "$PREBUILT" && pwd)" || exit 2
    COMMIT="$(cat "$PREBUILT/COMMIT" 2>/dev/null || echo '?') (prebuilt)"
    if [ -f "$PREBUILT/pack.tar.xz" ]; then # programs + libraries + clips, xz to fit a carry
        echo "unpacking $PREBUILT/pack.tar.xz"
        tar -xJf "$PREBUILT/pack.tar.xz" -C "$BIN" || { echo "FAIL: cannot unpack $PREBUILT/pack.tar.xz"; exit 1; }
    else
        cp -a "$PREBUILT/." "$BIN/"
    fi
    export LD_LIBRARY_PATH="$BIN/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    [ -d "$BIN/clips" ] && CLIPS="$BIN/clips"
else
    if [ -n "$BUILD_GIVEN" ]; then
        BUILD="$(cd "$BUILD_GIVEN" && pwd)" || exit 2
    elif [ "$DRY" = 0 ]; then
        echo "build (sm_$ARCH) in $BUILD (not counted in the budget)"
        mkdir -p "$BUILD"
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DINFVSR_CUDA=ON \
              -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$LOGS/configure.log" 2>&1 \
            || { tail -40 "$LOGS/configure.log"; echo "FAIL: configure failed (no nvcc? see --prebuilt)"; exit 1; }
        # shellcheck disable=SC2086 # the target list is words
        cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 4)" --target $PROGRAMS >"$LOGS/build.log" 2>&1 \
            || { grep -E "error" "$LOGS/build.log" | head -40; echo "FAIL: build failed"; exit 1; }
        T0=$SECONDS
    fi
    for p in $PROGRAMS; do [ -x "$BUILD/$(prog_rel "$p")" ] && ln -sf "$BUILD/$(prog_rel "$p")" "$BIN/$p"; done
fi

# ---- the step machinery -----------------------------------------------------------------------
SEQ=0
GATE=""          # set to a reason once no GPU step can run
left() { echo $((BUDGET_S - RESERVE_S - (SECONDS - T0))); }
cell() { tr '|\n\t' '/  ' <<<"$1" | cut -c1-150; } # one markdown cell
record() {        # record SEQ NAME STATUS SECONDS NOTE
    printf '%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "$(cell "$5")" >"$RES/$(printf '%03d' "$1").tsv"
    printf '==== [%3d s] %-28s %-8s %4s s  %s\n' $((SECONDS - T0)) "$2" "$3" "$4" "$(cell "$5")"
}
# The note of a finished step: lines of its log matching RE (joined), else its last line.
note_of() {
    local log=$1 re=$2 n=""
    # (the first two lines of a step's log are its command and its limit)
    [ -n "$re" ] && n=$(tail -n +3 "$log" 2>/dev/null | grep -E -- "$re" | head -4 | paste -sd ';' -)
    [ -n "$n" ] || n=$(tail -n +3 "$log" 2>/dev/null | grep -v '^[[:space:]]*$' | tail -1)
    echo "${n:-(no output)}"
}
# run_step NAME LIMIT_S NOTE_RE CMD...: runs CMD under min(LIMIT_S, what is left), logs
# to $LOGS/NAME.log, records PASS / FAIL / TIMEOUT / CRASH / SKIP. Exit 77 (the programs'
# "no usable backend") is a FAIL once the probe found a GPU. SKIP_RE: a log line matching
# it turns a failure into SKIP (a value this build does not know); PASS_SKIP_RE: turns a
# success into SKIP (the step found nothing to measure, e.g. no PyTorch).
run_step() {
    local seq=$SEQ name=$1 lim=$2 re=$3
    shift 3
    if [ "$DRY" = 1 ]; then
        local cmd="$*"
        cmd=${cmd//$BIN\//} cmd=${cmd//$ROOT\//} cmd=${cmd//$WORK\//}
        record "$seq" "$name" PLANNED "$lim" "limit ${lim} s: $cmd"
        return 0
    fi
    if [ -n "$GATE" ]; then record "$seq" "$name" SKIP 0 "$GATE"; return 0; fi
    local l
    l=$(left)
    if [ "$l" -lt "$MIN_STEP_S" ]; then record "$seq" "$name" SKIP 0 "budget: ${l} s left of ${BUDGET_S} s"; return 0; fi
    [ -n "${STEP_CAP_S:-}" ] && [ "$STEP_CAP_S" -lt "$lim" ] && lim=$STEP_CAP_S
    [ "$l" -lt "$lim" ] && lim=$l
    local log="$LOGS/$name.log" t=$SECONDS rc=0
    { echo "\$ $*"; echo "(limit ${lim} s)"; } >"$log"
    timeout -k 5 "$lim" "$@" >>"$log" 2>&1 || rc=$?
    local dt=$((SECONDS - t)) st note
    note=$(note_of "$log" "$re")
    case $rc in
    0) if [ -n "${PASS_SKIP_RE:-}" ] && grep -qE -- "$PASS_SKIP_RE" "$log"; then st=SKIP; else st=PASS; fi ;;
    124|137) st=TIMEOUT; note="killed after ${lim} s; last: $note" ;;
    77) st=FAIL; note="skipped on a GPU machine: $note" ;;
    *) if [ -n "${SKIP_RE:-}" ] && grep -qiE -- "$SKIP_RE" "$log"; then st=SKIP; note="not in this build: $note"
       elif [ "$rc" -gt 128 ]; then st=CRASH; note="signal $((rc - 128)); $note"
       else st=FAIL; note="exit $rc; $note"; fi ;;
    esac
    record "$seq" "$name" "$st" "$dt" "$note"
}
step() { SEQ=$((SEQ + 1)); run_step "$@"; }
# The same, in the background, at most JOBS at once (wait_steps collects them).
pstep() {
    SEQ=$((SEQ + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    run_step "$@" &
}
wait_steps() { wait; }
group_skip() { SEQ=$((SEQ + 1)); record "$SEQ" "$1" SKIP 0 "$2"; }

# ---- env: the machine, its driver and toolkit, what the programs load -----------------------
SAN=""
for s in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/bin/compute-sanitizer \
         /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer; do
    [ -n "$s" ] && [ -x "$s" ] && { SAN=$s; break; }
done
GPU_LINE="(nvidia-smi not found)"
# cuDNN: the backend dlopen()s libcudnn.so.9 (kernels/cuda/conv3d_cudnn.cu). The GPU
# image lists cuDNN as a pip package of PyTorch (nvidia-cudnn-cu13), which may sit outside
# the loader's path; without this the cuDNN rows would quietly measure the im2col fallback.
if ! ldconfig -p 2>/dev/null | grep -q 'libcudnn.so.9'; then
    CUDNN_LIB=$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)
    if [ -n "$CUDNN_LIB" ] && [ -e "$CUDNN_LIB/libcudnn.so.9" ]; then
        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$CUDNN_LIB"
    fi
fi
{
    echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host:     $(uname -srm)"
    echo "commit:   $COMMIT"
    echo "programs: $BIN"
    if [ -n "$PREBUILT" ] && [ -f "$PREBUILT/BUILD_INFO" ]; then sed 's/^/pack /' "$PREBUILT/BUILD_INFO"; fi
    if command -v nvidia-smi >/dev/null; then
        GPU_LINE=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)
        echo "gpu:      $GPU_LINE"
        nvidia-smi 2>&1
        nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,persistence_mode \
            --format=csv 2>&1
    else
        echo "gpu:      nvidia-smi not found"
    fi
    if [ -r /proc/driver/nvidia/version ]; then echo "driver:   $(head -1 /proc/driver/nvidia/version)"
    else echo "driver:   (no /proc/driver/nvidia/version)"; fi
    echo "nvcc:     $(nvcc --version 2>/dev/null | tail -1 || echo '(no nvcc)')"
    echo "sanitizer: ${SAN:-not found} $([ -n "$SAN" ] && "$SAN" --version 2>/dev/null | grep -i version | head -1)"
    echo "python3:  $(command -v python3 || echo 'not found')"
    echo "cudnn:    $( (ldconfig -p 2>/dev/null | grep -m1 'libcudnn.so.9') || echo "${CUDNN_LIB:-not found}")"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
} >"$LOGS/env.log" 2>&1
cp "$LOGS/env.log" "$OUT_DIR/env.txt"
SEQ=$((SEQ + 1))
missing_libs="" missing_progs=""
for p in $PROGRAMS; do
    if [ ! -x "$BIN/$p" ]; then missing_progs="$missing_progs $p"; continue; fi
    { echo "== ldd $p"; ldd "$BIN/$p" 2>&1; } >>"$LOGS/ldd.log"
    nf=$(ldd "$BIN/$p" 2>/dev/null | awk '/not found/ {print $1}' | paste -sd, -)
    [ -n "$nf" ] && missing_libs="$missing_libs $p:$nf"
done
cat "$LOGS/ldd.log" >>"$OUT_DIR/env.txt" 2>/dev/null
if [ -n "$missing_libs" ]; then
    record "$SEQ" env FAIL 0 "GPU: $GPU_LINE; unresolved libraries:$missing_libs"
else
    record "$SEQ" env PASS 0 "GPU: $GPU_LINE; sanitizer: ${SAN:-none}${missing_progs:+; not built:$missing_progs}"
fi
have() { [ -x "$BIN/$1" ]; }

# ---- probe: a usable GPU through the CUDA backend itself --------------------------------------
SEQ=$((SEQ + 1))
if [ "$DRY" = 1 ]; then
    record "$SEQ" probe PLANNED 30 "limit 30 s: test_backend_ops -b cuda -o copy -p <no case>"
elif ! have test_backend_ops; then
    GATE="no usable GPU: test_backend_ops not built"
    record "$SEQ" probe FAIL 0 "$GATE"
else
    rc=0
    timeout -k 5 30 "$BIN/test_backend_ops" -b cuda -o copy -p '@@probe: matches no case@@' >"$LOGS/probe.log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        record "$SEQ" probe PASS 0 "$(grep -m1 '^backend ' "$LOGS/probe.log" || echo 'CUDA backend created')"
    else
        why=$(sed -n 's/^SKIP: //p' "$LOGS/probe.log" | head -1)
        [ -n "$why" ] || why="the probe exited $rc: $(note_of "$LOGS/probe.log" '')"
        GATE="no usable GPU: $why"
        echo "FAIL: $GATE"
        record "$SEQ" probe FAIL 0 "$GATE"
    fi
fi

# ---- the checks -------------------------------------------------------------------------------
FAMILIES=""
have test_backend_ops && FAMILIES=$("$BIN/test_backend_ops" -l 2>/dev/null | awk '!seen[$1]++ {print $1}' | paste -sd' ' -)
[ -z "$FAMILIES" ] && [ "$DRY" = 1 ] && FAMILIES="FAMILY" # dry run without programs: one row per family
ops_re='^pass (f32|bf16): [0-9]+ cases|^FAIL'
san_re='ERROR SUMMARY|^FAIL'
gpu_group() { # gpu_group GROUP: true when the group runs; a whole-group SKIP row otherwise
    want "$1" || return 1
    if [ -n "$GATE" ] && [ "$DRY" = 0 ]; then group_skip "$1" "$GATE"; return 1; fi
    return 0
}
need() { # need GROUP PROGRAM...: a FAIL row (not a silent gap) when a program is missing
    local g=$1 m=""
    shift
    for p in "$@"; do have "$p" || m="$m $p"; done
    if [ -z "$m" ] || [ "$DRY" = 1 ]; then return 0; fi
    SEQ=$((SEQ + 1)); record "$SEQ" "$g" FAIL 0 "program(s) not built:$m"
    return 1
}

if gpu_group pool && need pool test_cuda_pool; then
    step pool 60 '^pool:|^plans:|passed' "$BIN/test_cuda_pool"
fi
if gpu_group fault && need fault test_cuda_fault; then
    step fault 60 'passed' "$BIN/test_cuda_fault"
fi
if gpu_group ops && need ops test_backend_ops; then
    for f in $FAMILIES; do pstep "ops.$f" 90 "$ops_re" "$BIN/test_backend_ops" -b cuda -o "$f"; done
    wait_steps
fi
if gpu_group bench && need bench bench_cuda; then
    step bench.attention 120 '^device:|^pool:' "$BIN/bench_cuda" "$ITERS" attention
    step bench.gemm 60 '^device:|^pool:' "$BIN/bench_cuda" "$ITERS" gemm
    for v in cudnn implicit im2col; do
        SKIP_RE="unknown|not (supported|available|built)" \
            step "bench.conv.$v" 60 '^device:|^pool:' env INFVSR_CUDA_CONV="$v" "$BIN/bench_cuda" "$ITERS" conv
    done
fi
if gpu_group torch; then
    # The framework brings its own CUDA libraries: none of the pack's on its path.
    tl=$(($(left) < 150 ? $(left) : 150))
    PASS_SKIP_RE='^PyTorch ceiling: not available' \
        step torch 150 '^PyTorch ceiling' env -u LD_LIBRARY_PATH python3 "$ROOT/tests/cuda/torch_ceiling.py" \
        --iters "$ITERS" --deadline-s $((tl > 30 ? tl - 20 : 10))
fi
if gpu_group memcheck && need memcheck test_backend_ops; then
    if [ -z "$SAN" ] && [ "$DRY" = 0 ]; then
        group_skip memcheck "compute-sanitizer not found on this machine"
    else
        for f in $FAMILIES; do
            pstep "memcheck.$f" 150 "$san_re" "${SAN:-compute-sanitizer}" --tool memcheck --error-exitcode 99 \
                "$BIN/test_backend_ops" -b cuda -o "$f"
        done
        wait_steps
    fi
fi
if gpu_group racecheck && need racecheck test_backend_ops; then
    if [ -z "$SAN" ] && [ "$DRY" = 0 ]; then
        group_skip racecheck "compute-sanitizer not found on this machine"
    else
        for f in attention conv3d; do
            pstep "racecheck.$f" 200 "$san_re" "${SAN:-compute-sanitizer}" --tool racecheck --error-exitcode 99 \
                "$BIN/test_backend_ops" -b cuda -o "$f" --precision bf16
        done
        wait_steps
    fi
fi
MODELS="$WORK/models"
if gpu_group parity && need parity infvsr test_module_parity; then
    step parity.model 30 '' bash "$SELF" --step make-model "$BIN" "$MODELS/tiny"
    step parity.tiny 90 'passed|FAIL' "$BIN/test_module_parity" --backend cuda --model-dir "$MODELS/tiny"
fi
if gpu_group upscale && need upscale infvsr test_module_parity; then
    step upscale.model 90 '' bash "$SELF" --step make-model "$BIN" "$MODELS/full" "$ROOT/config/models/infvsr-full.json"
    step parity.full 150 'passed|FAIL' "$BIN/test_module_parity" --backend cuda --model-dir "$MODELS/full"
    for spec in "180p 320x180 720p" "270p 480x270 1080p"; do
        read -r name size outname <<<"$spec"
        clip="$CLIPS/$name.mp4"
        if [ ! -f "$clip" ] && [ "$DRY" = 0 ]; then
            clip="$WORK/$name.mp4"
            command -v ffmpeg >/dev/null && ffmpeg -v error -y -f lavfi -i "testsrc2=size=$size:rate=25" -frames:v 21 \
                -c:v libx264 -pix_fmt yuv420p "$clip" 2>/dev/null
        fi
        if [ -f "$clip" ] || [ "$DRY" = 1 ]; then
            step "upscale.$outname" 120 '^upscale:|FAIL' bash "$SELF" --step upscale "$BIN" "$MODELS/full" "$clip" \
                "$WORK/out_$outname.y4m"
        else
            SEQ=$((SEQ + 1)); record "$SEQ" "upscale.$outname" FAIL 0 "no $name clip: no prebuilt clips and no ffmpeg"
        fi
    done
fi

# ---- summary: one table of every step, then the performance rows ------------------------------
elapsed=$((SECONDS - T0))
n_fail=$(cat "$RES"/*.tsv | awk -F'\t' '$2 == "FAIL" || $2 == "TIMEOUT" || $2 == "CRASH"' | wc -l)
n_skip=$(cat "$RES"/*.tsv | awk -F'\t' '$2 == "SKIP"' | wc -l)
n_pass=$(cat "$RES"/*.tsv | awk -F'\t' '$2 == "PASS"' | wc -l)
if [ "$DRY" = 1 ]; then overall="DRY RUN (nothing ran)"
elif [ -n "$GATE" ]; then overall="FAIL (nothing ran on a GPU: $GATE)"
elif [ "$n_fail" -gt 0 ]; then overall="FAIL"
else overall="PASS"; fi
SUM="$OUT_DIR/summary.md"
{
    echo "# GPU checks: $overall"
    echo
    echo "- GPU: $GPU_LINE"
    echo "- commit: $COMMIT; compute-sanitizer: ${SAN:-not found}"
    echo "- steps: $n_pass passed, $n_fail failed, $n_skip skipped; elapsed ${elapsed} s of the ${BUDGET_S} s budget$([ "$elapsed" -le "$BUDGET_S" ] || echo ' (OVER BUDGET)')"
    echo
    echo "| # | step | status | s | result |"
    echo "|---|------|--------|---|--------|"
    i=0
    for f in "$RES"/*.tsv; do
        i=$((i + 1))
        IFS=$'\t' read -r name st secs note <"$f"
        echo "| $i | $name | $st | $secs | $note |"
    done
    # ours, then PyTorch's, per family: the ceiling right under the row it bounds
    rows() { cat "$@" 2>/dev/null | grep -E '^\| ' | grep -vE '^\| (op|-)'; }
    perf=$({ rows "$LOGS/bench.gemm.log"; rows "$LOGS/torch.log" | grep '^| torch linear'
             rows "$LOGS/bench.attention.log"; rows "$LOGS/torch.log" | grep '^| torch sdpa'
             rows "$LOGS"/bench.conv.*.log; rows "$LOGS/torch.log" | grep '^| torch conv3d'; } || true)
    if [ -n "$perf" ]; then
        echo
        echo "Performance (median ms of $ITERS calls, CUDA events; TFLOP/s from the counted FLOPs; \"torch\" rows: PyTorch on"
        echo "the same GPU, the ceiling):"
        echo
        echo "| op | shape | ms | TFLOP/s | cuBLASLt | ratio |"
        echo "|----|-------|----|---------|----------|-------|"
        echo "$perf"
    fi
    grep -h '^PyTorch ceiling' "$LOGS"/torch.log 2>/dev/null | sed 's/^/\n/'
    echo
    echo "Logs: logs.tar.gz (one log per step, env.log, ldd.log); env.txt (nvidia-smi, driver, ldd)."
} >"$SUM"
tar -czf "$OUT_DIR/logs.tar.gz" -C "$WORK" logs 2>/dev/null || echo "warning: could not archive the logs"
echo
cat "$SUM"
echo
echo "overall: $overall (elapsed ${elapsed} s, budget ${BUDGET_S} s; results in $OUT_DIR)"
[ "$DRY" = 1 ] && exit 0
[ -z "$GATE" ] && [ "$n_fail" -eq 0 ]
