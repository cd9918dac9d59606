#!/usr/bin/env bash
# tests/fuzz/smoke.sh - the fuzz smoke test of CI (deploy/test.sh): builds the libFuzzer targets
# with clang (tests/fuzz/targets.sh: fuzz_build), replays every committed crash regression
# (tests/fuzz/regressions/<target>/), then fuzzes each target for FUZZ_SECONDS (default 12) from
# its committed seeds, in a scratch copy. Fails on any crash, and, clearly, when clang or its
# fuzzer runtime is missing (never a silent skip). Prints the executions of each target.
#   tests/fuzz/smoke.sh [TARGET...]       FUZZ_BUILD=build-fuzz FUZZ_SECONDS=12
# About 2.5 minutes on 2 cores once built (11 targets); a long run is tests/fuzz/run.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/fuzz/targets.sh
. "$here/targets.sh"
build=${FUZZ_BUILD:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-12}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${FUZZ_TARGETS[@]}")
echo "fuzz smoke: building the targets in $build"
fuzz_build "$build" "${targets[@]}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    bin=$build/tests/fuzz_$t
    if [ -d "$here/regressions/$t" ]; then
        # files given to a fuzzer are run once each, not fuzzed
        if ! "$bin" "$here/regressions/$t"/* >"$scratch/$t.replay.log" 2>&1; then
            tail -30 "$scratch/$t.replay.log" >&2
            echo "fuzz smoke: fuzz_$t: a committed regression fails again" >&2
            failed+=("$t")
            continue
        fi
    fi
    # the crashing input outlives the scratch directory: CI keeps the build directory
    crashes=$build/fuzz-smoke/$t
    rm -rf "$crashes"
    mkdir -p "$scratch/$t/corpus" "$crashes"
    # shellcheck disable=SC2046  # fuzz_flags is a list of flags
    if ! (cd "$scratch/$t" && "$bin" $(fuzz_flags "$t") -max_total_time="$seconds" \
        -artifact_prefix="$crashes/" -print_final_stats=1 \
        "$scratch/$t/corpus" "$here/corpus/$t" >"$scratch/$t.log" 2>&1); then
        tail -40 "$scratch/$t.log" >&2
        echo "fuzz smoke: fuzz_$t crashed; the input: $(find "$crashes" -type f) (replay:" \
            "$bin FILE)" >&2
        failed+=("$t")
        continue
    fi
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$scratch/$t.log")
    echo "fuzz smoke: fuzz_$t: ${execs:-?} executions in $seconds s, no crash"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz smoke: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets, no crash"
