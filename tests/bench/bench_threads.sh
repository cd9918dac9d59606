#!/usr/bin/env bash
# tests/bench/bench_threads.sh - thread budgets and idle threads on a shared machine (issue 21):
#
#   1. `oaif sft` tokens/s, quiet and beside one busy process (`yes >/dev/null`), for each
#      variant: today's default (2 spinning threads: OMP_WAIT_POLICY unset), the new default
#      (idle threads sleep), a short spin before sleeping (GOMP_SPINCOUNT=10000), one thread;
#   2. the online loop's pairs/s: the demo's run (deploy/runs/demo.yaml, its trainer settings,
#      stopped after --loop-seconds; a run on a busy machine may not finish a step, and today's
#      default once failed every sample request on its 30 s lease) on `oaif up` with one sampler
#      and two rules judges, pairs trained over the trainer's own seconds, for each
#      variant: today's, the new default (the trainer and the sampler each on every core, idle
#      threads sleeping), the cores divided between them (`oaif up --divide`: 1 + 1 on 2 cores),
#      and the demo's own work-around (OMP_NUM_THREADS=1, today's build).
#
# The variants run interleaved (A B C A B C ...) and each row is the median of --reps runs, so that
# whatever else runs on the machine weighs on all of them alike; the load average and the busiest
# other processes are printed before and after, since the machine may be shared.
#
#   tests/bench/bench_threads.sh [--new DIR] [--old DIR] [--reps 3] [--sft-steps 100]
#                                [--loop-seconds 120] [--only sft|loop]
#     --new DIR  the build to measure (default build/)
#     --old DIR  a build of today's default to compare with (default: the new build with
#                OMP_WAIT_POLICY unset and no thread budget, which is today's behaviour; give a
#                build from before the thread budgets to measure that binary itself)
# Not a test: several minutes, and the numbers depend on the machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
new=$here/build old='' reps=3 sft_steps=100 loop_seconds=120 only=
while [ $# -gt 0 ]; do
    case "$1" in
    --new) new=$(cd "$2" && pwd); shift 2 ;;
    --old) old=$(cd "$2" && pwd); shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --sft-steps) sft_steps=$2; shift 2 ;;
    --loop-seconds) loop_seconds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "bench_threads.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
old=${old:-$new}
ref=$here/data/checkpoints/sft-v000000
tmp=$(mktemp -d /tmp/bench-threads-XXXXXX)
busy=
up=
cleanup() {
    [ -n "$busy" ] && kill "$busy" 2>/dev/null
    [ -n "$up" ] && kill -INT "$up" 2>/dev/null && wait "$up" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
unset OMP_NUM_THREADS OMP_WAIT_POLICY GOMP_SPINCOUNT OPENBLAS_NUM_THREADS

machine() {
    echo "-- $1: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); busiest others:"
    ps -eo pcpu,comm --sort=-pcpu | awk 'NR > 1 && NR <= 6 { printf "     %5.1f%% %s\n", $1, $2 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) : "nan" }'; }

# A variant: "label|build|environment words|oaif up's words" (the environment via env(1); "-" for
# none).
# today: the old build, no thread environment: libgomp's default (every CPU, spinning waits).
# new: the new build as it comes: idle threads sleep (nn_threads.h), oaif up's budgets.
variants_sft=(
    "today (2 threads, spinning)|$old|OAIF_THREADS_REEXEC=1"
    "new default|$new|-"
    "spin 10000, then sleep|$new|OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=10000"
    "1 thread|$new|OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
)
# OAIF_THREADS_REEXEC=1 stops the new build from setting its environment (nn_threads.c): with
# --old left out, "today" is the new build behaving as before.

sft_once() { # build, env words, out: tok/s
    local b=$1 e=$2 envw=()
    [ "$e" != - ] && read -r -a envw <<<"$e"
    env "${envw[@]}" "$b/services/oaif/oaif" sft --steps "$sft_steps" --eval 0 --force \
        --no-progress --out "$tmp/sft" 2>&1 | sed -n 's/.*(\([0-9.]*\) tok\/s).*/\1/p' | tail -1
}

bench_sft() {
    echo "== oaif sft --steps $sft_steps: tokens/s, median of $reps (interleaved)"
    machine before
    declare -A res
    for cond in quiet busy; do
        if [ $cond = busy ]; then
            yes >/dev/null &
            busy=$!
        fi
        for ((r = 0; r < reps; r++)); do
            for v in "${variants_sft[@]}"; do
                IFS='|' read -r label b e <<<"$v"
                res[$cond/$label]+="$(sft_once "$b" "$e") "
            done
        done
        if [ $cond = busy ]; then
            kill "$busy"
            wait "$busy" 2>/dev/null || true
            busy=
        fi
    done
    machine after
    printf '%-30s %12s %14s %10s %12s\n' variant "quiet tok/s" "beside 1 busy" "busy/quiet" \
        "busy vs today"
    local base
    base=$(echo "${res[busy/${variants_sft[0]%%|*}]}" | tr ' ' '\n' | grep . | median)
    for v in "${variants_sft[@]}"; do
        local label=${v%%|*} q b
        q=$(echo "${res[quiet/$label]}" | tr ' ' '\n' | grep . | median)
        b=$(echo "${res[busy/$label]}" | tr ' ' '\n' | grep . | median)
        awk -v l="$label" -v q="$q" -v b="$b" -v t="$base" \
            'BEGIN { printf "%-30s %12.0f %14.0f %9.2fx %11.2fx\n", l, q, b, b / q, b / t }'
        echo "   runs: quiet ${res[quiet/$label]}; busy ${res[busy/$label]}"
    done
}

# The loop: a deployment (one sampler, two judges), the demo's run shortened; pairs/s from the
# trainer's summary line ("this process: N steps in S s, L pairs labeled, T trained").
variants_loop=(
    "today (no budget, spinning)|$old|OAIF_THREADS_REEXEC=1|-"
    "new default (every core, sleeping)|$new|-|-"
    "divided (oaif up --divide)|$new|-|--divide"
    "OMP_NUM_THREADS=1 (the demo's)|$old|OMP_NUM_THREADS=1 OAIF_THREADS_REEXEC=1|-"
)
loop_once() { # build, env words, up words, n: pairs/s
    local b=$1 e=$2 d=$tmp/loop-$4 envw=() upw=()
    [ "$e" != - ] && read -r -a envw <<<"$e"
    [ "$3" != - ] && read -r -a upw <<<"$3"
    mkdir -p "$d"
    local oaif=$b/services/oaif/oaif
    env "${envw[@]}" "$oaif" up --data "$d" --config "$here/deploy/runs/demo.yaml" \
        --clients 'tcp://127.0.0.1:*' --workers 'tcp://127.0.0.1:*' \
        --events 'tcp://127.0.0.1:*' "${upw[@]}" >"$d/up.log" 2>&1 &
    up=$!
    for _ in $(seq 200); do [ -s "$d/endpoints" ] && break; sleep 0.1; done
    local cep
    cep=$(sed -n 's/^clients=//p' "$d/endpoints")
    "$oaif" task prompts --split train --n 2000 --seed 1 |
        "$oaif" import prompts - --clients "$cep" >/dev/null
    env "${envw[@]}" "$oaif" run "$here/deploy/runs/demo.yaml" --data "$d" --run bench \
        --steps 100000 --reference "$ref" --checkpoints "$d/checkpoints" >/dev/null 2>&1 &
    local run=$!
    sleep "$loop_seconds"
    # oaif run leaves Ctrl-C to the trainer (its child), which stops at a clean point and sums up
    pkill -INT -P "$run" 2>/dev/null || true
    wait "$run" 2>/dev/null || true
    kill -INT "$up"
    wait "$up" 2>/dev/null || true
    up=
    sed -n 's/.*this process: [0-9]* steps in \([0-9.]*\) s, [0-9]* pairs labeled, \([0-9]*\) trained.*/\2 \1/p' \
        "$d/logs/trainer.log" | tail -1 | awk '{ printf "%.2f", ($2 > 0 ? $1 / $2 : 0) }'
    grep -h "threads: " "$d"/logs/*.log 2>/dev/null | sed 's/^.* INFO /     /' >"$d/threads.txt" || true
}

bench_loop() {
    [ -d "$ref" ] || { echo "no $ref: run oaif sft first (deploy/demo.sh makes it)" >&2; exit 1; }
    echo "== the online loop, deploy/runs/demo.yaml for $loop_seconds s: pairs/s, median of $reps"
    machine before
    declare -A res
    local n=0
    for ((r = 0; r < reps; r++)); do
        for v in "${variants_loop[@]}"; do
            IFS='|' read -r label b e u <<<"$v"
            res[$label]+="$(loop_once "$b" "$e" "$u" "$n") "
            n=$((n + 1))
        done
    done
    machine after
    printf '%-34s %10s %10s\n' variant "pairs/s" "vs today"
    local base
    base=$(echo "${res[${variants_loop[0]%%|*}]}" | tr ' ' '\n' | grep . | median)
    for v in "${variants_loop[@]}"; do
        local label=${v%%|*} p
        p=$(echo "${res[$label]}" | tr ' ' '\n' | grep . | median)
        awk -v l="$label" -v p="$p" -v t="$base" 'BEGIN { printf "%-34s %10.2f %9.2fx\n", l, p, p / t }'
        echo "   runs: ${res[$label]}"
    done
    echo "-- the new default's budgets (its services' startup lines, last run):"
    cat "$tmp/loop-$((n - 3))/threads.txt"
}

[ "$only" = loop ] || bench_sft
[ "$only" = sft ] || bench_loop
