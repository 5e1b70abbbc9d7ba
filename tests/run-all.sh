#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 checkout:
#   1. installs the Debian packages the build and tests need (deploy/install-deps.sh),
#   2. builds and runs every test (ctest) in an optimised build, with -Werror; the CUDA
#      backend is compiled when nvcc is present and its GPU tests report "skipped" without a GPU,
#   3. rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the tests again
#      (tests labelled "slow" are left to step 2 there: they only repeat big-tensor numerics;
#      "container", the Docker image build and run of tests/deploy, runs in step 2 only),
#   4. prints one summary line: "N passed, N failed, N skipped".
# Usage: bash tests/run-all.sh [--no-asan] [--no-install]
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
do_asan=1
do_install=1
for a in "$@"; do
    case "$a" in
        --no-asan) do_asan=0 ;;
        --no-install) do_install=0 ;;
        *) echo "usage: $0 [--no-asan] [--no-install]" >&2; exit 2 ;;
    esac
done

if [ "$do_install" = 1 ]; then
    bash deploy/install-deps.sh || { echo "dependency install failed"; exit 1; }
fi

total_pass=0
total_fail=0
total_skip=0
status=0

# run_suite NAME BUILD_DIR CTEST_ARGS... -- CMAKE_ARGS...
run_suite() {
    local name=$1 dir=$2
    shift 2
    local ctest_args=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do ctest_args+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    echo "==== [$name] configure"
    if ! cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DINFVSR_FATAL_WARNINGS=ON "$@" > "$dir.configure.log" 2>&1; then
        cat "$dir.configure.log"; echo "[$name] configure FAILED"; status=1; total_fail=$((total_fail + 1)); return
    fi
    echo "==== [$name] build"
    if ! cmake --build "$dir" -j "$jobs" > "$dir.build.log" 2>&1; then
        tail -n 80 "$dir.build.log"; echo "[$name] build FAILED"; status=1; total_fail=$((total_fail + 1)); return
    fi
    echo "==== [$name] test"
    local log="$dir.ctest.log"
    (cd "$dir" && ctest --output-on-failure -j "$jobs" "${ctest_args[@]}") 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "[$name] ctest printed no summary (rc=$rc)"; status=1; total_fail=$((total_fail + 1)); return
    fi
    local failed ran skipped
    failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
    ran=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
    skipped=$(grep -cE '\*\*\*Skipped|Not Run.*Disabled' "$log" || true)
    total_fail=$((total_fail + failed))
    total_skip=$((total_skip + skipped))
    total_pass=$((total_pass + ran - failed - skipped))
    [ "$rc" -eq 0 ] || status=1
}

mkdir -p "$root/build"
run_suite release "$root/build/ci-release" --

if [ "$do_asan" = 1 ]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_suite asan-ubsan "$root/build/ci-asan" -LE 'slow|container' -- \
        -DINFVSR_SANITIZE_ADDRESS=ON -DINFVSR_SANITIZE_UNDEFINED=ON -DINFVSR_CUDA=OFF
fi

echo "suite: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $status
