#!/usr/bin/env bash
# deploy/demo.sh - the main job: online AI feedback on the built-in task, end to end.
#
#   1. set-up and build (deploy/setup.sh);
#   2. SFT of the built-in policy (oaif sft; cached in data/checkpoints once trained);
#   3. three runs, each on its own local deployment (oaif up: a ledger, a sampler, two
#      annotator-proxies with the rules judge at 20% label noise, and an evaluator with its
#      noise-free evaluation judge, which evaluates every 2nd policy version on 64 held-out
#      prompts: demo.yaml's evaluator section) and with the same label budget:
#        online         online DPO, the judge's default instruction
#        offline        DPO on pairs sampled once from the SFT model (offline mode)
#        online-short   online DPO, the judge told "Prefer shorter responses."
#      each followed by `oaif audit` (no pair used twice);
#   4. evaluation of every policy against the SFT model on the eval split: task accuracy, win
#      rate judged by the noise-free rules judge (both orders), mean length; the same on the
#      questions where the SFT model has its habit and on the rest, each win rate with its 95%
#      interval; the table, and the claims checked: the SFT band, the bar (online DPO wins >= 65%
#      on the habit's questions and its interval on the rest reaches 50%: nothing lost), online
#      against offline, length control;
#   5. the online run's report (oaif report, its evaluations the evaluator's), its path printed.
#
#   deploy/demo.sh [--quick] [--steps N] [--eval N]
#     --quick   a short run for CI's smoke test (about 2 minutes on 2 cores): fewer steps, a
#               smaller evaluation, and no claims checked.
#   OAIF_BUILD=DIR: a build directory already built (default: deploy/setup.sh's build/).
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
lib_start demo.sh
quick=0
steps=75
neval=350
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick)
        quick=1; steps=4; neval=60; extra=(--batch 8 --prompts-per-request 8 --checkpoint-every 2)
        # the evaluator: both versions, on 16 held-out prompts (the environment beats the run file)
        export EVALUATOR_EVERY=1 EVALUATOR_PROMPTS=16
        shift ;;
    --steps) steps=$2; shift 2 ;;
    --eval) neval=$2; shift 2 ;;
    *) echo "demo.sh: unknown option '$1' (try --quick, --steps N, --eval N)" >&2; exit 2 ;;
    esac
done
say "1. set-up and build"
lib_build

say "2. SFT of the built-in policy (cached once trained)"
if [ "$quick" -eq 1 ]; then
    sft_root=data/checkpoints-quick
    $oaif sft --quick --out "$sft_root"
else
    sft_root=data/checkpoints
    $oaif sft --out "$sft_root"
fi
sft=$sft_root/sft-v000000
# From here several processes share the cores: `oaif up` gives each engine service its thread
# budget and idle threads sleep (README, thread budgets), so nothing is set here.

up_pid=
trap '[ -n "$up_pid" ] && kill -INT "$up_pid" 2>/dev/null; wait 2>/dev/null || true' EXIT

# evcfg KEY: the evaluator's setting (demo.yaml's evaluator section, or the environment's)
evcfg() {
    $oaif config show --service evaluator --config deploy/runs/demo.yaml |
        sed -n "s/^  $1: \([0-9]*\) .*/\1/p"
}
# wait_evals RUN: until the evaluator has recorded the EvalResult of the run's last version it
# evaluates (the highest multiple of evaluator.every among its policy versions); the training
# finishes before the evaluator does, and stopping the deployment would lose that evaluation.
wait_evals() {
    local run=$1 every last want t=$(date +%s)
    every=$(evcfg every)
    last=$($oaif export checkpoints | grep "\"run\":\"$run\"" | grep -o '"version":[0-9]*' |
        cut -d: -f2 | sort -n | tail -1)
    want=$(( ${last:-0} - ${last:-0} % every ))
    [ "$want" -gt 0 ] || return 0
    for _ in $(seq 600); do
        $oaif export evals | grep "\"run\":\"$run\"" | grep -q "\"version\":$want," && break
        sleep 0.5
    done
    say "   $run: evaluated: $($oaif export evals | grep -c "\"run\":\"$run\"") versions (waited $(( $(date +%s) - t )) s for v$want)"
}

run_one() { # name, extra trainer options...
    local name=$1
    shift
    local d=data/demo/$name
    rm -rf "$d"
    mkdir -p "$d"
    $oaif up --data "$d" --config deploy/runs/demo.yaml --evaluators 1 \
        --clients 'tcp://127.0.0.1:*' --workers 'tcp://127.0.0.1:*' --events 'tcp://127.0.0.1:*' \
        >"$d/up.log" 2>&1 &
    local up=$!
    up_pid=$up
    for _ in $(seq 200); do [ -s "$d/endpoints" ] && break; sleep 0.1; done
    export BUS_CLIENTS_ENDPOINT=$(sed -n 's/^clients=//p' "$d/endpoints")
    $oaif task prompts --split train --n 2000 --seed 1 | $oaif import prompts - >/dev/null
    # the evaluator's held-out prompts: the first evaluator.prompts of split eval in the ledger
    $oaif task prompts --split eval --n "$(evcfg prompts)" --seed 1 | $oaif import prompts - >/dev/null
    say "   $name: ${steps} steps (logs in $d)"
    $oaif run deploy/runs/demo.yaml --data "$d" --run "$name" --steps "$steps" \
        --reference "$sft" --checkpoints "$d/checkpoints" --progress "${extra[@]}" "$@"
    $oaif audit >"$d/audit.txt" || { cat "$d/audit.txt"; exit 1; }
    say "   $name: $(tail -1 "$d/audit.txt")"
    wait_evals "$name"
    kill -INT $up
    wait $up || true
    up_pid=
}

say "3. three runs at the same label budget"
run_one online
run_one offline --offline
run_one online-short --instruction "Prefer shorter responses."

say "4. evaluation against the SFT model ($neval eval prompts, greedy answers)"
newest() { ls -d "data/demo/$1/checkpoints"/policy-v* | sort | tail -1; }
# num JSON KEY [OBJECT]: a number from oaif eval --json, at the top level or in "habit"/"rest"
num() {
    local j=$1
    if [ -n "${3:-}" ]; then j=$(echo "$j" | sed "s/.*\"$3\":{\([^}]*\)}.*/\1/"); else j=${j%%,\"habit\"*}; fi
    echo "$j" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"
}
declare -A acc win len wtl hacc hwin hlo hhi racc rwin rlo rhi
for name in online offline online-short; do
    j=$($oaif eval --policy "$(newest $name)" --sft "$sft" --n "$neval" --json)
    acc[$name]=$(num "$j" policy_accuracy)
    win[$name]=$(num "$j" win_rate)
    len[$name]=$(num "$j" policy_length)
    wtl[$name]=$(num "$j" wins)-$(num "$j" ties)-$(num "$j" losses)
    hacc[$name]=$(num "$j" policy_accuracy habit)
    hwin[$name]=$(num "$j" win_rate habit)
    hlo[$name]=$(num "$j" win_rate_lo habit)
    hhi[$name]=$(num "$j" win_rate_hi habit)
    racc[$name]=$(num "$j" policy_accuracy rest)
    rwin[$name]=$(num "$j" win_rate rest)
    rlo[$name]=$(num "$j" win_rate_lo rest)
    rhi[$name]=$(num "$j" win_rate_hi rest)
    acc[sft]=$(num "$j" sft_accuracy)
    len[sft]=$(num "$j" sft_length)
    hacc[sft]=$(num "$j" sft_accuracy habit)
    racc[sft]=$(num "$j" sft_accuracy rest)
    nhabit=$(num "$j" n habit)
done
win[sft]=0.5
hwin[sft]=0.5
rwin[sft]=0.5
hlo[sft]=0.5 hhi[sft]=0.5 rlo[sft]=0.5 rhi[sft]=0.5
wtl[sft]=-
echo
printf '%-14s %10s %22s %18s %13s\n' policy accuracy "win rate against SFT" "wins-ties-losses" \
    "mean length"
for name in sft online offline online-short; do
    awk -v n="$name" -v a="${acc[$name]}" -v w="${win[$name]}" -v t="${wtl[$name]}" \
        -v l="${len[$name]}" \
        'BEGIN { printf "%-14s %9.1f%% %21.1f%% %18s %13.1f\n", n, 100 * a, 100 * w, t, l }'
done
echo
echo "Split by question: the SFT model's habit (compare smaller, sort descending, maxmin smallest:"
echo "$nhabit of $neval prompts), which imitation cannot fix and feedback can, and the rest; each"
echo "win rate with its 95% interval (ties count 1/2: the percentile bootstrap of the mean outcome"
echo "over prompts, evalstats' as the evaluator records it; most answers tie, so a binomial interval"
echo "on the wins alone would not be the win rate's)."
printf '%-14s %16s %24s %16s %24s\n' policy "habit: accuracy" "habit: win rate [95%]" \
    "rest: accuracy" "rest: win rate [95%]"
for name in sft online offline online-short; do
    awk -v n="$name" -v a="${hacc[$name]}" -v w="${hwin[$name]}" -v b="${racc[$name]}" \
        -v r="${rwin[$name]}" -v hl="${hlo[$name]}" -v hh="${hhi[$name]}" -v rl="${rlo[$name]}" \
        -v rh="${rhi[$name]}" 'BEGIN {
            printf "%-14s %15.1f%% %7.1f%% [%5.1f, %5.1f] %15.1f%% %7.1f%% [%5.1f, %5.1f]\n", n,
                100 * a, 100 * w, 100 * hl, 100 * hh, 100 * b, 100 * r, 100 * rl, 100 * rh }'
done
awk -v h="$nhabit" -v a="${hacc[sft]}" -v n="$neval" 'BEGIN {
    printf "A policy that fixed every habit prompt the SFT model gets wrong, and changed nothing\n"
    printf "else, would win %.1f%% on the whole split (50%% + %d / (2 x %d)).\n",
        100 * (0.5 + h * (1 - a) / (2 * n)), h * (1 - a) + 0.5, n }'
echo
# The online run's report: its ledger again (no workers), `oaif report`, its path.
report() {
    say "5. the report of the online run"
    local d=data/demo/online
    rm -f "$d/endpoints"
    $oaif up --data "$d" --samplers 0 --annotators 0 --clients 'tcp://127.0.0.1:*' \
        --workers 'tcp://127.0.0.1:*' --events 'tcp://127.0.0.1:*' >"$d/up-report.log" 2>&1 &
    up_pid=$!
    for _ in $(seq 200); do [ -s "$d/endpoints" ] && break; sleep 0.1; done
    BUS_CLIENTS_ENDPOINT=$(sed -n 's/^clients=//p' "$d/endpoints") \
        $oaif report --run online --out "$d/report.html" >/dev/null
    kill -INT $up_pid
    wait $up_pid || true
    up_pid=
    say "   report: $here/$d/report.html (opens offline in any browser)"
}
if [ "$quick" -eq 1 ]; then
    report
    say "done (quick: the claims below are checked by the full demo only)"
    exit 0
fi
pct() { awk -v w="$1" -v l="$2" -v h="$3" 'BEGIN { printf "%.1f%% [%.1f, %.1f]", 100 * w, 100 * l, 100 * h }'; }
check "the SFT policy is imperfect, in the intended band: 40% <= accuracy <= 75%" \
    "${acc[sft]} >= 0.40 && ${acc[sft]} <= 0.75"
# The bar (issue 16): the whole split's win rate is 50% + (wins - losses) / 2n under a judge that
# ties two right or two wrong answers, bounded by how the task is built; it is checked where the
# SFT model has the flaw feedback can fix, and on the rest nothing may be lost.
check "online DPO wins >= 65% against SFT on the habit's $nhabit questions: $(pct "${hwin[online]}" "${hlo[online]}" "${hhi[online]}")" \
    "${hwin[online]} >= 0.65"
check "online DPO loses nothing on the rest: its 95% interval reaches 50%: $(pct "${rwin[online]}" "${rlo[online]}" "${rhi[online]}")" \
    "${rhi[online]} >= 0.5"
check "online beats offline DPO at the same label budget (win rate against SFT)" \
    "${win[online]} > ${win[offline]}"
check "length control: 'Prefer shorter responses.' cuts mean length by >= 30% vs the default, accuracy >= SFT" \
    "${len[online-short]} <= 0.7 * ${len[online]} && ${acc[online-short]} >= ${acc[sft]}"
report
say "done"
