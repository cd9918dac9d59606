#!/usr/bin/env bash
# tests/fuzz/run.sh - a long fuzzing run of one target.
#
#   tests/fuzz/run.sh TARGET SECONDS [JOBS]     e.g. tests/fuzz/run.sh tokenizer 600 2
#   FUZZ_BUILD=build-fuzz (default) the clang build to use, configured and built when missing
#   FUZZ_WORK=DIR  where the run keeps its corpus, crashes and logs (default $FUZZ_BUILD/fuzz-work)
#
# The committed seeds (tests/fuzz/corpus/TARGET) are read, never written: new inputs go to
# $FUZZ_WORK/TARGET/corpus, which a later run starts from. JOBS libFuzzer processes run side by
# side (-jobs, -workers), each nice'd; crashes land in $FUZZ_WORK/TARGET/crashes/ (crash-*,
# leak-*, timeout-*, oom-*). At the end: the executions run and the crashes found. To keep a
# crash: fix it, copy the input to tests/fuzz/regressions/TARGET/ and commit it (the target's
# ctest test_fuzz_TARGET and tests/fuzz/smoke.sh replay it from then on).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/fuzz/targets.sh
. "$here/targets.sh"
if [ $# -lt 2 ]; then
    echo "usage: $0 TARGET SECONDS [JOBS]; targets: ${FUZZ_TARGETS[*]}" >&2
    exit 2
fi
target=$1 seconds=$2 jobs=${3:-1}
case " ${FUZZ_TARGETS[*]} " in *" $target "*) ;; *)
    echo "run.sh: no target '$target' (targets: ${FUZZ_TARGETS[*]})" >&2
    exit 2
    ;;
esac
build=${FUZZ_BUILD:-$root/build-fuzz}
fuzz_build "$build" "$target"
work=${FUZZ_WORK:-$build/fuzz-work}/$target
mkdir -p "$work/corpus" "$work/crashes" "$work/logs"
regressions=()
[ -d "$here/regressions/$target" ] && regressions=("$here/regressions/$target")
cd "$work/logs"
# shellcheck disable=SC2046  # fuzz_flags is a list of flags
nice -n 10 "$build/tests/fuzz_$target" $(fuzz_flags "$target") -max_total_time="$seconds" \
    -jobs="$jobs" -workers="$jobs" -artifact_prefix="$work/crashes/" -print_final_stats=1 \
    "$work/corpus" "$here/corpus/$target" "${regressions[@]}" >"$work/logs/run.log" 2>&1 || true
# one log per job with -jobs; the run's own output otherwise
logs=("$work/logs/run.log")
compgen -G "$work/logs/fuzz-*.log" >/dev/null && logs=("$work"/logs/fuzz-*.log)
execs=$(cat "${logs[@]}" | awk '/stat::number_of_executed_units/ {n += $2} END {print n + 0}')
crashes=$(find "$work/crashes" -type f | wc -l)
echo "fuzz_$target: $execs executions in ${seconds} s with $jobs job(s), $crashes crash(es)" \
    "in $work/crashes, corpus $(find "$work/corpus" -type f | wc -l) inputs"
[ "$crashes" -eq 0 ]
