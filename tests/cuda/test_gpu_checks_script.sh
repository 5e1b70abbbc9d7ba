#!/usr/bin/env bash
# The GPU check script without a GPU (ctest cuda.gpu_checks_script, every build):
#   - it and pack_prebuilt.sh parse (bash -n) and pass shellcheck where it is installed;
#   - --dry-run tabulates every step of the plan (probe, one op family per process, the
#     bench probes per INFVSR_CUDA_CONV value, the PyTorch ceiling, memcheck per family,
#     racecheck on attention and conv3d) and exits 0;
#   - with the GPUs hidden (CUDA_VISIBLE_DEVICES=""; on CI there is none anyway) a real run
#     stops at the probe with "FAIL: no usable GPU: <reason>", exits 1, and still writes
#     summary.md (one table, every later group a SKIP row), env.txt and logs.tar.gz;
#   - usage errors exit 2; torch_ceiling.py says "not available" instead of failing.
#
#   test_gpu_checks_script.sh BUILD_DIR SCRATCH_DIR
set -uo pipefail
BUILD="$(cd "${1:?build dir}" && pwd)"
SCRATCH="${2:?scratch dir}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT="$HERE/run_gpu_checks.sh"
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
has() { grep -qE -- "$2" "$1"; } # has FILE ERE

# ---- syntax and lint ----
check "bash -n run_gpu_checks.sh" "bash -n '$SCRIPT'"
check "bash -n pack_prebuilt.sh" "bash -n '$HERE/pack_prebuilt.sh'"
if command -v shellcheck >/dev/null; then
    check "shellcheck" "shellcheck '$SCRIPT' '$HERE/pack_prebuilt.sh' '$HERE/test_gpu_checks_script.sh'"
else
    echo "(shellcheck not installed: lint not checked)"
fi

# ---- usage errors ----
rc=0; bash "$SCRIPT" --only nosuchgroup >"$SCRATCH/usage.log" 2>&1 || rc=$?
check "--only with an unknown group exits 2" "[ $rc -eq 2 ] && has '$SCRATCH/usage.log' 'unknown group'"
rc=0; bash "$SCRIPT" --frobnicate >"$SCRATCH/usage2.log" 2>&1 || rc=$?
check "an unknown argument exits 2" "[ $rc -eq 2 ]"
rc=0; bash "$SCRIPT" --help >"$SCRATCH/help.log" 2>&1 || rc=$?
check "--help prints the usage" "[ $rc -eq 0 ] && has '$SCRATCH/help.log' '--dry-run'"

# ---- dry run: the plan as a table ----
rc=0
OUT="$SCRATCH/dry" WORK="$SCRATCH/dry-work" bash "$SCRIPT" --dry-run --build-dir "$BUILD" >"$SCRATCH/dry.log" 2>&1 || rc=$?
S="$SCRATCH/dry/summary.md"
check "dry run exits 0" "[ $rc -eq 0 ]"
check "dry run writes summary.md with the table header" "has '$S' '^\| # \| step \| status \| s \| result \|$'"
check "dry run: overall line says nothing ran" "has '$S' '^# GPU checks: DRY RUN'"
for row in probe pool fault ops.attention ops.conv3d ops.resize bench.attention bench.gemm bench.conv.cudnn \
           bench.conv.implicit bench.conv.im2col torch memcheck.attention memcheck.linear racecheck.attention \
           racecheck.conv3d parity.tiny upscale.720p upscale.1080p; do
    check "dry run plans $row" "has '$S' '^\| [0-9]+ \| $row \| PLANNED \| [0-9]+ \|'"
done
check "dry run: one op family per process (-o FAMILY)" "has '$S' 'ops.copy \| PLANNED .*-b cuda -o copy'"
check "dry run: racecheck only on bf16 attention/conv3d" \
      "[ \$(grep -c '| racecheck\.' '$S') -eq 2 ] && has '$S' 'racecheck.conv3d .*--precision bf16'"
check "dry run: conv bench once per INFVSR_CUDA_CONV value" "[ \$(grep -c 'INFVSR_CUDA_CONV=' '$S') -eq 3 ]"

# ---- a real run with no usable GPU ----
rc=0
t0=$SECONDS
CUDA_VISIBLE_DEVICES="" OUT="$SCRATCH/nogpu" WORK="$SCRATCH/nogpu-work" BUDGET_S=120 \
    bash "$SCRIPT" --build-dir "$BUILD" >"$SCRATCH/nogpu.log" 2>&1 || rc=$?
S="$SCRATCH/nogpu/summary.md"
check "no GPU: exits 1" "[ $rc -eq 1 ]"
check "no GPU: says 'FAIL: no usable GPU: <reason>'" "has '$SCRATCH/nogpu.log' '^FAIL: no usable GPU: .+'"
check "no GPU: summary.md says nothing ran on a GPU" "has '$S' '^# GPU checks: FAIL \(nothing ran on a GPU: no usable GPU'"
check "no GPU: env row first, probe row FAIL" "has '$S' '^\| 1 \| env \| (PASS|FAIL) ' && has '$S' '^\| 2 \| probe \| FAIL \| 0 \| no usable GPU'"
for g in pool fault ops bench torch memcheck racecheck parity upscale; do
    check "no GPU: group $g is one SKIP row" "has '$S' '^\| [0-9]+ \| $g \| SKIP \| 0 \| no usable GPU'"
done
check "no GPU: nothing was started after the probe" "! grep -qE '\| (PASS|TIMEOUT|CRASH) \|' <(grep -v '| env |' '$S')"
check "no GPU: env.txt records the machine" "has '$SCRATCH/nogpu/env.txt' '^gpu: ' && has '$SCRATCH/nogpu/env.txt' '^== ldd test_backend_ops'"
tar -tzf "$SCRATCH/nogpu/logs.tar.gz" >"$SCRATCH/nogpu-logs.txt" 2>&1
check "no GPU: logs.tar.gz holds the probe's log" "has '$SCRATCH/nogpu-logs.txt' 'logs/probe.log'"
check "no GPU: the run took under 60 s" "[ $((SECONDS - t0)) -lt 60 ]"
check "no GPU: at most 8 files in OUT (the device tool's limit)" "[ \$(find '$SCRATCH/nogpu' -type f | wc -l) -le 8 ]"

# ---- the machinery on stand-in programs: a "GPU" whose op families pass, hang, crash and
# fail, a bench that does not know one conv path, a sanitizer that reports nothing ----
FAKE="$SCRATCH/fake-pack"
mkdir -p "$FAKE/clips" "$SCRATCH/fake-path"
: >"$FAKE/clips/180p.mp4"
: >"$FAKE/clips/270p.mp4"
echo "0123abc" >"$FAKE/COMMIT"
cat >"$FAKE/test_backend_ops" <<'FAKE_EOF'
#!/usr/bin/env bash
ulimit -c 0
case " $* " in
*" -l "*) printf 'linear compare a\nattention compare b\nconv3d compare c\nresize compare d\n'; exit 0 ;;
*"-o copy -p"*) echo "backend cuda:0 (Fake GPU (sm_90)), bf16 activations"; exit 0 ;;
*"-o linear"*) echo "pass f32: 3 cases, 0 failed"; echo "pass bf16: 3 cases, 0 failed"; exit 0 ;;
*"-o attention"*) sleep 60; exit 0 ;;
*"-o conv3d"*) kill -SEGV $$ ;;
*"-o resize"*) echo "FAIL resize case 2: differs"; exit 1 ;;
esac
exit 3
FAKE_EOF
cat >"$FAKE/bench_cuda" <<'FAKE_EOF'
#!/usr/bin/env bash
[ "${INFVSR_CUDA_CONV:-}" = cudnn ] && { echo "bench_cuda: unknown INFVSR_CUDA_CONV value 'cudnn'"; exit 2; }
echo "| op | shape | ms | TFLOP/s | cuBLASLt | ratio |"
echo "| fake $2 ${INFVSR_CUDA_CONV:-} | s | 1.000 | 2.0 | - | - |"
FAKE_EOF
printf '#!/usr/bin/env bash\necho "1 passed, 0 failed"\n' >"$FAKE/test_cuda_pool"
cp "$FAKE/test_cuda_pool" "$FAKE/test_cuda_fault"
cp "$FAKE/test_cuda_pool" "$FAKE/test_module_parity"
cat >"$FAKE/infvsr" <<'FAKE_EOF'
#!/usr/bin/env bash
case "$1" in
make-tiny-model) mkdir -p "$2"; exit 0 ;;
upscale) echo '{"event":"done","frames":21,"chunks":2,"fps":3.5,"dit":1.5,"decode":0.1}'; exit 0 ;;
esac
exit 3
FAKE_EOF
cat >"$SCRATCH/fake-path/compute-sanitizer" <<'FAKE_EOF'
#!/usr/bin/env bash
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do case "$1" in --tool|--error-exitcode|--print-limit) shift 2 ;; *) shift ;; esac; done
"$@"
rc=$?
echo "========= ERROR SUMMARY: 0 errors"
exit $rc
FAKE_EOF
chmod +x "$FAKE"/* "$SCRATCH/fake-path/compute-sanitizer"
rc=0
t0=$SECONDS
CUDA_VISIBLE_DEVICES="" PATH="$SCRATCH/fake-path:$PATH" OUT="$SCRATCH/fake" WORK="$SCRATCH/fake-work" STEP_CAP_S=3 \
    BENCH_ITERS=2 \
    bash "$SCRIPT" --prebuilt "$FAKE" >"$SCRATCH/fake.log" 2>&1 || rc=$?
S="$SCRATCH/fake/summary.md"
row() { grep -E "^\| [0-9]+ \| $1 \| " "$S"; } # the table row of step $1
check "stand-ins: exits 1 (failures)" "[ $rc -eq 1 ]"
check "stand-ins: probe PASS names the device" "row probe | grep -q 'PASS .*Fake GPU'"
check "stand-ins: a passing family is PASS with its pass lines" "row ops.linear | grep -q 'PASS .*pass f32: 3 cases, 0 failed;pass bf16'"
check "stand-ins: a hanging family is TIMEOUT, the rest still run" "row ops.attention | grep -Eq '\\| TIMEOUT \\| [0-9]+ \\| killed after 3 s'" # elapsed: 3 s, more under load
check "stand-ins: a crashing family is CRASH (signal 11)" "row ops.conv3d | grep -q 'CRASH .*signal 11'"
check "stand-ins: a failing family is FAIL with its failure line" "row ops.resize | grep -q 'FAIL .*exit 1; FAIL resize case 2'"
check "stand-ins: an unknown INFVSR_CUDA_CONV value is SKIP" "row bench.conv.cudnn | grep -q '| SKIP |'"
check "stand-ins: known conv paths run" "row bench.conv.implicit | grep -q '| PASS |' && row bench.conv.im2col | grep -q '| PASS |'"
check "stand-ins: bench rows reach the performance table" \
      "has '$S' '^\| fake gemm' && has '$S' '^\| fake attention' && has '$S' '^\| fake conv implicit'"
check "stand-ins: no PyTorch ceiling is a SKIP row saying why" "row torch | grep -q 'SKIP .*PyTorch ceiling: not available ('"
check "stand-ins: memcheck per family, its ERROR SUMMARY in the row" "row memcheck.linear | grep -q 'PASS .*ERROR SUMMARY: 0 errors'"
check "stand-ins: racecheck on attention and conv3d only" \
      "[ \$(grep -c '| racecheck\.' '$S') -eq 2 ] && row racecheck.attention | grep -q TIMEOUT"
check "stand-ins: module parity and upscale run" "row parity.tiny | grep -q PASS && row upscale.720p | grep -q 'PASS .*upscale: 21 frames'"
check "stand-ins: the whole run stays inside its budget" "has '$S' 'elapsed [0-9]+ s of the 300 s budget$'"
check "stand-ins: the run took under 90 s" "[ $((SECONDS - t0)) -lt 90 ]"
check "stand-ins: at most 8 files in OUT" "[ \$(find '$SCRATCH/fake' -type f | wc -l) -le 8 ]"
tar -tzf "$SCRATCH/fake/logs.tar.gz" >"$SCRATCH/fake-logs.txt" 2>&1
check "stand-ins: logs.tar.gz holds one log per step" \
      "has '$SCRATCH/fake-logs.txt' 'logs/ops.conv3d.log' && has '$SCRATCH/fake-logs.txt' 'logs/memcheck.resize.log'"

# A budget that leaves nothing after the probe: every later step is a budget SKIP row.
rc=0
PATH="$SCRATCH/fake-path:$PATH" OUT="$SCRATCH/fake-budget" WORK="$SCRATCH/fake-budget-work" BUDGET_S=9 \
    bash "$SCRIPT" --prebuilt "$FAKE" >"$SCRATCH/fake-budget.log" 2>&1 || rc=$?
S="$SCRATCH/fake-budget/summary.md"
check "tiny budget: exits 0 (nothing failed), every step after the probe a budget SKIP" \
      "[ $rc -eq 0 ] && ! grep -E '^\| [0-9]+ \| ' '$S' | grep -vE '\| (env|probe) \|' | grep -qv 'SKIP \| 0 \| budget:'"
check "tiny budget: the summary says PASS with the skips counted" "has '$S' '^# GPU checks: PASS' && has '$S' '[0-9]+ skipped'"

# ---- the PyTorch ceiling without a GPU ----
rc=0
python3 "$HERE/torch_ceiling.py" --iters 2 >"$SCRATCH/torch.log" 2>&1 || rc=$?
check "torch_ceiling.py without a GPU: 'not available (reason)', exit 0" \
      "[ $rc -eq 0 ] && has '$SCRATCH/torch.log' '^PyTorch ceiling: not available \(.+\)$'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
