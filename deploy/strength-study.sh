#!/usr/bin/env bash
# deploy/strength-study.sh - the preference-strength numbers of issue 14 on the built-in task
# (MetaRM's rounds excepted), end to end:
#
#   1. set-up and build; the SFT model (oaif sft, cached in data/checkpoints once trained);
#   2. for each noise level (25% and 40%), the ensemble: on a deployment of its own (oaif up, the
#      rules judge at that noise, which records in each label whether its noise flipped it),
#      pairs sampled from the SFT model (offline mode) are labeled, exported and imported again
#      in the same ledger as dataset rmNN, and four members (seeds 1-4) are trained on it with
#      `oaif rm train` (two epochs at lr 3e-4, rm-study.sh's recipe); then
#      `oaif strength annotate` over the run's pairs, whose labels know their noise: the ROC AUC
#      of -mu for the flipped labels and the ten-group table, and `oaif rm eval`: the members'
#      and the ensemble's accuracy against the noise-free labels, and the AUC that accuracy
#      implies (below);
#   3. online DPO with and without strength-based denoising (deploy/runs/strength-study.yaml:
#      the strength estimator flips the bottom 10% by mu), at each noise level, for --seeds
#      paired seeds: the pair's two runs have the same trainer seed and judge noise seed, the same
#      steps and batch (the same number of trained pairs), and run side by side, each on its own
#      deployment; the denoised one with a reward-scorer and a strength-estimator, its level's
#      ensemble published in its ledger (the same pairs imported under the same name give the same
#      pair ids, so `oaif rm train` finds each member finished with these settings and data and
#      publishes it again: nothing is retrained). Each final policy is evaluated against SFT
#      (oaif eval: win rate by the noise-free rules judge, accuracy);
#   4. the tables: per level and seed the win rate and accuracy of both runs, and the mean
#      difference (denoised - plain) with its paired 95% t interval over seeds; the goal of
#      issue 14 checked (no worse at 25%, better at 40%).
#
# The AUC an ensemble of a given accuracy implies: if the label-oriented mu of a pair is
# X ~ N(m, s^2) when the label is right and -X when the noise flipped it, the ensemble's accuracy
# against the noise-free labels is a = Phi(m/s) and the AUC of -mu is P(X1 + X2 > 0) =
# Phi(sqrt(2) Phi^-1(a)): 0.85 needs a = 0.77.
#
#   deploy/strength-study.sh [--quick] [--seeds N] [--steps N] [--pairs-steps N] [--eval N]
#     --quick          a smoke test of the whole path (tiny SFT model, few pairs and steps,
#                      2 seeds); no claims. Not run by CI.
#     --seeds N        paired seeds per noise level (default 5);
#     --steps N        steps of 16 pairs of each online run (default 40: 640 trained pairs);
#     --pairs-steps N  steps of 32 pairs sampled for each level's ensemble (default 110);
#     --eval N         eval prompts per policy (default 350, the demo's);
#     --keep-data      reuse the ensembles of an earlier study (data/strength-study) and redo 3-4;
#     --tables         print the tables of an earlier study again (4 only).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
quick=0
keep=0
tables=0
seeds=5
steps=40
pair_steps=110
neval=350
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; seeds=2; steps=4; pair_steps=5; neval=40; shift ;;
    --seeds) seeds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --pairs-steps) pair_steps=$2; shift 2 ;;
    --eval) neval=$2; shift 2 ;;
    --keep-data) keep=1; shift ;;
    --tables) keep=1; tables=1; shift ;;
    *) echo "strength-study.sh: unknown option '$1' (try --quick, --seeds N, --steps N," \
        "--pairs-steps N, --eval N, --keep-data, --tables)" >&2; exit 2 ;;
    esac
done
if [ "$seeds" -lt 2 ] || [ "$seeds" -gt 10 ]; then
    echo "strength-study.sh: --seeds must be 2 to 10 (a t interval needs two)" >&2
    exit 2
fi
t0=$(date +%s)
say() { printf '== [%4ds] %s\n' $(($(date +%s) - t0)) "$*"; }

say "1. set-up, build and the SFT model"
deploy/setup.sh >/dev/null
oaif=$here/build/services/oaif/oaif
if [ "$quick" -eq 1 ]; then
    sft_root=data/checkpoints-quick
    $oaif sft --quick --out "$sft_root"
    d=data/strength-study-quick
else
    sft_root=data/checkpoints
    $oaif sft --out "$sft_root"
    d=data/strength-study
fi
sft=$sft_root/sft-v000000
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} # several processes share the cores
levels="25 40"
run_file=deploy/runs/strength-study.yaml
rmdir=$d/reward
export REWARD_SCORER_CHECKPOINT_DIR=$rmdir

if [ "$tables" -eq 1 ]; then
    [ -f "$d/res-40.txt" ] || { echo "strength-study.sh: no finished study in $d" >&2; exit 1; }
elif [ "$keep" -eq 1 ] && [ -f "$d/ensembles.done" ]; then
    rm -rf "$d"/runs "$d"/res-*.txt
else
    keep=0
    rm -rf "$d"
fi
mkdir -p "$d/logs" "$d/runs"
# One deployment serves one run: each has its own directory, and its `oaif up` pid in
# DIR/up.pid, so that the exit trap stops every deployment still up, those of the runs that go
# side by side in subshells included.
trap 'for f in "$d"/pairs-*/up.pid "$d"/runs/*/up.pid; do [ -f "$f" ] && kill -INT "$(cat "$f")" 2>/dev/null; done
    wait 2>/dev/null || true' EXIT
# up DIR NOISE NOISE_SEED [oaif up options...]: starts it, waits for its endpoints, points the
# commands that follow at its ledger and imports the train prompts.
up() {
    local dir=$1 noise=$2 nseed=$3
    shift 3
    mkdir -p "$dir"
    ANNOTATOR_RULES_NOISE=$noise ANNOTATOR_RULES_SEED=$nseed $oaif up --data "$dir" \
        --config "$run_file" --clients 'tcp://127.0.0.1:*' --workers 'tcp://127.0.0.1:*' \
        --events 'tcp://127.0.0.1:*' "$@" >"$dir/up.log" 2>&1 &
    echo $! >"$dir/up.pid"
    for _ in $(seq 300); do [ -s "$dir/endpoints" ] && break; sleep 0.1; done
    [ -s "$dir/endpoints" ] || { tail -20 "$dir/up.log"; return 1; }
    BUS_CLIENTS_ENDPOINT=$(sed -n 's/^clients=//p' "$dir/endpoints")
    export BUS_CLIENTS_ENDPOINT
    $oaif task prompts --split train --n 2000 --seed 1 | $oaif import prompts - >/dev/null
}
down() { # DIR
    local pid
    pid=$(cat "$1/up.pid")
    kill -INT "$pid"
    wait "$pid" || true # a child of this shell, or of the subshell of the run it serves
    rm -f "$1/up.pid"
}
# Two epochs at 3e-4, batch 16: rm-study.sh's recipe (its comment: why), from the SFT model.
rm_opts=(--epochs 2 --lr 3e-4 --init "$sft" --checkpoints "$rmdir")
member() { # level, member, log: trains it, or publishes it again where it is already trained
    $oaif rm train --dataset "rm$1" --ensemble "s$1" --member "$2" "${rm_opts[@]}" >"$3" 2>&1 ||
        { tail -20 "$3"; return 1; }
}
publish() { # level, log prefix: the level's pairs under their name, and its four members
    $oaif import pairs "$d/pairs-$1.jsonl" --format trl --dataset "rm$1" >/dev/null
    local m pids=()
    for m in 0 1 2 3; do
        member "$1" $m "$2-m$m.log" &
        pids+=($!)
    done
    for m in "${pids[@]}"; do wait "$m"; done
}

say "2. the ensembles: $pair_steps steps of 32 pairs from the SFT model per noise level"
if [ "$keep" -eq 1 ]; then
    say "   kept from the earlier study ($d)"
else
    for n in $levels; do
        dir=$d/pairs-$n
        up "$dir" "0.$n" 11
        $oaif run "$run_file" --data "$dir" --run "pairs-$n" --offline --reference "$sft" \
            --steps "$pair_steps" --batch 32 --prompts-per-request 32 \
            --checkpoints "$dir/policy" >"$d/logs/run-pairs-$n.log" 2>&1 ||
            { tail -20 "$d/logs/run-pairs-$n.log"; exit 1; }
        $oaif export pairs --format trl 2>/dev/null >"$d/pairs-$n.jsonl"
        say "   $n%: $(wc -l <"$d/pairs-$n.jsonl") labeled pairs (ties left out); 4 members training"
        # Two members at a time on two cores: publish's four at once would only share them.
        $oaif import pairs "$d/pairs-$n.jsonl" --format trl --dataset "rm$n" >/dev/null
        for m in 0 2; do
            member $n $m "$d/logs/rm-$n-m$m.log" &
            a=$!
            member $n $((m + 1)) "$d/logs/rm-$n-m$((m + 1)).log"
            wait $a
        done
        $oaif strength annotate --ensemble "s$n" --run "pairs-$n" --split all \
            --checkpoints "$rmdir" --flip-share 0.1 >"$d/strength-$n.txt"
        $oaif rm eval --ensemble "s$n" --run "pairs-$n" --split all --checkpoints "$rmdir" \
            >"$d/rm-eval-$n.txt"
        say "   $n%: $(sed -n 2p "$d/strength-$n.txt")"
        down "$dir"
    done
    touch "$d/ensembles.done"
fi

# arm LEVEL SEED NAME [--strength]: one run on its own deployment, its audit and evaluation;
# writes runs/NAME/result: "win_rate accuracy".
arm() {
    local n=$1 s=$2 name=$3 dir=$d/runs/$3
    shift 3
    local opts=()
    [ $# -eq 0 ] || opts=(--scorers 1 --estimators 1)
    export REWARD_SCORER_ENSEMBLE=s$n STRENGTH_ESTIMATOR_ENSEMBLE=s$n # a subshell's own
    up "$dir" "0.$n" $((100 + s)) "${opts[@]}"
    [ $# -eq 0 ] || publish "$n" "$dir/publish"
    $oaif run "$run_file" --data "$dir" --run "$name" --seed "$s" --steps "$steps" \
        --reference "$sft" --checkpoints "$dir/policy" "$@" >"$dir/run.log" 2>&1 ||
        { tail -20 "$dir/run.log"; return 1; }
    $oaif audit >"$dir/audit.txt" || { cat "$dir/audit.txt"; return 1; }
    down "$dir"
    local j
    j=$($oaif eval --policy "$(ls -d "$dir/policy"/policy-v* | sort | tail -1)" --sft "$sft" \
        --n "$neval" --json)
    j=${j%%,\"habit\"*}
    echo "$(echo "$j" | sed -n 's/.*"win_rate":\([0-9.]*\).*/\1/p')" \
        "$(echo "$j" | sed -n 's/.*"policy_accuracy":\([0-9.]*\).*/\1/p')" >"$dir/result"
}

say "3. online DPO, $steps steps of 16 pairs, with and without denoising: $seeds paired seeds"
levels_run=$levels
if [ "$tables" -eq 1 ]; then
    say "   kept from the earlier study ($d)"
    levels_run=
fi
for n in $levels_run; do
    for s in $(seq "$seeds"); do
        (arm "$n" "$s" "plain-$n-s$s") &
        a=$!
        (arm "$n" "$s" "strength-$n-s$s" --strength) &
        b=$!
        wait $a
        wait $b
        read -r pw pa <"$d/runs/plain-$n-s$s/result"
        read -r sw sa <"$d/runs/strength-$n-s$s/result"
        flips=$(awk '$1 == "strength" && $3 == "flip" { print $2 }' \
            "$d/runs/strength-$n-s$s/audit.txt")
        echo "$s $pw $pa $sw $sa ${flips:-0}" >>"$d/res-$n.txt"
        say "   $n% seed $s: win rate $pw / $sw, accuracy $pa / $sa (plain / denoised; ${flips:-0} flipped)"
    done
done

say "4. the tables"
# Phi by Abramowitz and Stegun 26.2.17 (error under 1e-7), its inverse by bisection.
phi_awk='function Phi(x,  t, p, y) { t = 1 / (1 + 0.2316419 * (x < 0 ? -x : x))
        p = t * (0.319381530 + t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + t * 1.330274429))))
        y = 1 - exp(-x * x / 2) / sqrt(2 * 3.141592653589793) * p
        return x < 0 ? 1 - y : y }
    function iPhi(p,  lo, hi, m, i) { lo = -10; hi = 10
        for (i = 0; i < 100; i++) { m = (lo + hi) / 2; if (Phi(m) < p) lo = m; else hi = m }
        return m }'
for n in $levels; do
    acc=$(awk '$1 ~ /\/mean$/ { print $4 }' "$d/rm-eval-$n.txt")
    best=$(awk 'NR > 1 && $1 !~ /\/mean$/ && $4 > b { b = $4 } END { print b + 0 }' "$d/rm-eval-$n.txt")
    echo
    echo "Strength of the $n%-noise pairs from the SFT model by their 4-member ensemble (oaif strength"
    echo "annotate over all of them, 90% the members' training pairs):"
    cat "$d/strength-$n.txt"
    awk -v a="$acc" -v b="$best" "$phi_awk"' BEGIN {
        printf "The ensemble mean against the noise-free labels: %.1f%% (best member %.1f%%); the AUC\n", 100 * a, 100 * b
        printf "that accuracy implies: %.3f; an AUC of 0.85 needs %.1f%%.\n", Phi(sqrt(2) * iPhi(a)), 100 * Phi(iPhi(0.85) / sqrt(2)) }' 
done
echo
echo "Online DPO against SFT ($neval eval prompts, greedy answers, the noise-free rules judge): the"
echo "plain run and the denoised one (the estimator flips the bottom 10% by mu), $steps steps of 16"
echo "pairs each, paired by seed; the difference denoised - plain with its 95% t interval."
# tq K: t quantile 0.975 for K - 1 degrees of freedom
tq='BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262", T, " ") }'
for n in $levels; do
    echo
    echo "$n% noise:"
    printf '%-5s %13s %13s %13s %13s %8s\n' seed "plain: win" "denoised: win" "plain: acc" \
        "denoised: acc" flipped
    awk '{ printf "%-5s %12.1f%% %12.1f%% %12.1f%% %12.1f%% %8d\n", $1, 100 * $2, 100 * $4, 100 * $3, 100 * $5, $6 }' \
        "$d/res-$n.txt"
    awk "$tq"' { k++; dw[k] = $4 - $2; da[k] = $5 - $3; sw += dw[k]; sa += da[k] }
        END { mw = sw / k; ma = sa / k
            for (i = 1; i <= k; i++) { vw += (dw[i] - mw) ^ 2; va += (da[i] - ma) ^ 2 }
            hw = T[k - 1] * sqrt(vw / (k - 1) / k); ha = T[k - 1] * sqrt(va / (k - 1) / k)
            printf "diff  win rate %+5.1f points [%+5.1f, %+5.1f]; accuracy %+5.1f points [%+5.1f, %+5.1f]\n",
                100 * mw, 100 * (mw - hw), 100 * (mw + hw), 100 * ma, 100 * (ma - ha), 100 * (ma + ha)
            print mw, mw - hw, mw + hw, ma, ma - ha, ma + ha > f }' f="$d/diff-$n.txt" "$d/res-$n.txt"
done
echo
if [ "$quick" -eq 1 ]; then
    say "done (quick: the checks below are for the full study only)"
    exit 0
fi
check() { # description, awk condition
    if awk "BEGIN { exit !($2) }"; then echo "PASS  $1"; else echo "FAIL  $1"; fi
}
auc=$(sed -n 's/.*ROC AUC of -mu for them: \([0-9.]*\).*/\1/p' "$d/strength-25.txt")
check "-mu separates the flipped labels at 25% noise with ROC AUC >= 0.85 (measured $auc)" \
    "$auc >= 0.85"
points() { awk -v m="$1" -v l="$2" -v h="$3" 'BEGIN { printf "%+.1f points, [%+.1f, %+.1f]", 100 * m, 100 * l, 100 * h }'; }
read -r mw lw hw _ <"$d/diff-25.txt"
check "denoising is no worse at 25%: the win rate's interval reaches 0 or above ($(points "$mw" "$lw" "$hw"))" \
    "$hw >= 0"
read -r mw lw hw _ <"$d/diff-40.txt"
check "denoising is better at 40%: the win rate's interval is above 0 ($(points "$mw" "$lw" "$hw"))" \
    "$lw > 0"
say "done (every log and table under $d)"
