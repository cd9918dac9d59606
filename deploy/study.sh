#!/usr/bin/env bash
# deploy/study.sh - the OAIF paper's claims on the built-in task as paired comparisons over seeds
# (issue 16), end to end on this machine:
#
#   1. set-up and build; the SFT model (oaif sft, cached in data/checkpoints once trained) and the
#      other model the paper's offline baseline samples from: the same recipe with seed 2
#      (data/checkpoints-seed2, cached too; README, "The OAIF paper's claims": why this one);
#   2. eight settings x --seeds seeds, each run on a deployment of its own (oaif up: a ledger, a
#      sampler, two annotator-proxies with the rules judge at 20% noise, deploy/runs/demo.yaml),
#      --steps steps of 32 pairs (the same label budget), the trainer evaluating every checkpoint
#      (one per 10 steps) against the SFT model on --eval held-out prompts (trainer.eval_n: greedy
#      answers, the noise-free rules judge with the run's instruction). Seed s: the trainer's seed
#      s and the judge's noise seed 100 + s in every setting, so settings pair seed by seed:
#        online           online DPO: demo.yaml's recipe (cDPO, eps 0.2, beta 0.1, RPO's NLL term)
#        offline          the pairs sampled from the SFT model itself (--offline)
#        offline-other    the pairs sampled from the other model (--offline --offline-from)
#        ipo, slic        online, the loss IPO or SLiC (--loss), the same beta and NLL term
#        short            online, the judge told "Prefer shorter responses."
#        beta-low         online, beta 0.05
#        beta-high        online, beta 0.2
#      --jobs runs at a time (the other model's SFT one of them), each in a session of its own
#      (setsid): where the kernel shares the CPU between sessions (autogroup), as on a machine
#      shared with other work, a run gets a session's share. Each run's EvalResults exported
#      after its audit;
#   3. one ledger for the study (data/study/ledger) into which every run's EvalResults are
#      imported (oaif import evals), `oaif compare` for each claim (B - A over the paired seeds:
#      the mean difference, its 95% paired t interval), and the table of claims: PASS when the
#      interval excludes 0 in the claimed direction (a claim of "no difference", =, passes when
#      it includes 0);
#   4. the report: oaif report --runs with online, offline and offline-other, win rate against SFT
#      over policy versions, mean over seeds and the seeds' range (data/study/report.html).
#
#   deploy/study.sh [--quick] [--seeds N] [--steps N] [--eval N] [--jobs N] [--tables]
#     --quick    CI's smoke test of the machinery (tiny SFT models, 4 steps of 8 pairs, 2 seeds,
#                40 eval prompts): the table is printed, its verdicts mean nothing;
#     --seeds N  paired seeds per setting (default 5);
#     --steps N  steps of 32 pairs per run (default 25: 800 labels, a third of the demo's; 40
#                runs of them and the other model's SFT are about 3,100 core-seconds);
#     --eval N   eval prompts per evaluation (default 350, the demo's);
#     --jobs N   runs at a time (default 4: a run waits on its sampler, judge and trainer in
#                turn, so two cores take more than two);
#     --tables   steps 3-4 again on the runs of an earlier study.
#   OAIF_BUILD=DIR: a build directory already built (default: deploy/setup.sh's build/).
set -euo pipefail
# shellcheck source=deploy/lib.sh
. "$(dirname "$0")/lib.sh"
lib_start study.sh

# study.sh --arm NAME SEED [trainer options...]: one run on its own deployment (what step 2 runs in
# a session of its own; the study's settings come in STUDY_*), audited, its EvalResults exported
# to runs/NAME/evals.jsonl.
if [ "${1:-}" = --arm ]; then
    name=$2 s=$3 dir=$STUDY_DIR/runs/$2
    shift 3
    t0=$STUDY_T0
    lib_build
    export ANNOTATOR_RULES_SEED=$((100 + s)) # the judge's noise: paired by seed too
    dep_up "$dir" deploy/runs/demo.yaml
    # shellcheck disable=SC2086 # STUDY_EXTRA: options, split on purpose
    $oaif run deploy/runs/demo.yaml --data "$dir" --run "$name" --seed "$s" \
        --steps "$STUDY_STEPS" --reference "$STUDY_SFT" --checkpoints "$dir/policy" \
        --eval-n "$STUDY_EVAL" $STUDY_EXTRA "$@" >"$dir/run.log" 2>&1 ||
        { tail -20 "$dir/run.log" >&2; dep_down "$dir"; exit 1; }
    $oaif audit >"$dir/audit.txt" || { cat "$dir/audit.txt" >&2; dep_down "$dir"; exit 1; }
    $oaif export evals >"$dir/evals.jsonl" 2>>"$dir/run.log"
    dep_down "$dir"
    rm -rf "$dir/policy" # its records are exported; 40 runs of checkpoints would fill a disk
    say "   $name done"
    exit 0
fi

quick=0
tables=0
seeds=5
steps=25
neval=350
jobs=4
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; seeds=2; steps=4; neval=40; shift ;;
    --seeds) seeds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --eval) neval=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --tables) tables=1; shift ;;
    *) echo "study.sh: unknown option '$1' (try --quick, --seeds N, --steps N, --eval N," \
        "--jobs N, --tables)" >&2; exit 2 ;;
    esac
done
if [ "$seeds" -lt 2 ]; then
    echo "study.sh: --seeds must be 2 or more (a paired interval needs two)" >&2
    exit 2
fi

say "1. set-up, build, the SFT model and the other model"
lib_build
extra=
pairs=32
if [ "$quick" -eq 1 ]; then
    d=data/study-quick
    sft_root=data/checkpoints-quick other_root=data/checkpoints-quick-seed2
    sft_opts=(--quick)
    pairs=8
    extra="--batch 8 --prompts-per-request 8 --checkpoint-every 2"
else
    d=data/study
    sft_root=data/checkpoints other_root=data/checkpoints-seed2
    sft_opts=()
fi
sft=$sft_root/sft-v000000
other=$other_root/sft-v000000
$oaif sft "${sft_opts[@]}" --out "$sft_root" >/dev/null
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} # several processes share the cores
trap 'dep_down_all "$d"' EXIT
if [ "$tables" -eq 0 ]; then
    rm -rf "$d"
    mkdir -p "$d/runs" "$d/logs"
    # The other model trains beside the first runs (one job); offline-other runs come last.
    setsid -w "$oaif" sft "${sft_opts[@]}" --seed 2 --out "$other_root" \
        >"$d/logs/sft-seed2.log" 2>&1 &
    other_pid=$!
else
    [ -d "$d/runs" ] || { echo "study.sh: no earlier study in $d" >&2; exit 1; }
fi

export STUDY_DIR=$d STUDY_SFT=$sft STUDY_STEPS=$steps STUDY_EVAL=$neval STUDY_EXTRA=$extra
export STUDY_T0=$t0 OAIF_BUILD

settings="online offline ipo slic short beta-low beta-high offline-other"
opts_of() { # SETTING: its trainer options, one a line
    case "$1" in
    online) ;;
    offline) echo --offline ;;
    offline-other) printf '%s\n' --offline --offline-from "$other" ;;
    ipo) printf '%s\n' --loss ipo ;;
    slic) printf '%s\n' --loss slic ;;
    short) printf '%s\n' --instruction "Prefer shorter responses." ;;
    beta-low) printf '%s\n' --beta 0.05 ;;
    beta-high) printf '%s\n' --beta 0.2 ;;
    esac
}

if [ "$tables" -eq 0 ]; then
    say "2. $(echo "$settings" | wc -w) settings x $seeds seeds, $steps steps of $pairs pairs each, $jobs at a time (logs in $d/runs)"
    running=1 # the other model's SFT, which takes a core
    failed=0
    for setting in $settings; do
        if [ "$setting" = offline-other ]; then
            while kill -0 "$other_pid" 2>/dev/null; do
                wait -n || failed=$((failed + 1))
                running=$((running - 1))
            done
            [ -f "$other/model.safetensors" ] || { tail -20 "$d/logs/sft-seed2.log" >&2; exit 1; }
            say "   the other model: $other ($(grep -o 'sha256 [0-9a-f]\{12\}' "$d/logs/sft-seed2.log" | head -1 || true))"
        fi
        for s in $(seq "$seeds"); do
            mapfile -t o < <(opts_of "$setting")
            setsid -w "$here/deploy/study.sh" --arm "$setting-s$s" "$s" "${o[@]}" &
            running=$((running + 1))
            if [ "$running" -ge "$jobs" ]; then
                wait -n || failed=$((failed + 1))
                running=$((running - 1))
            fi
        done
    done
    while [ "$running" -gt 0 ]; do
        wait -n || failed=$((failed + 1))
        running=$((running - 1))
    done
    [ "$failed" -eq 0 ] || { echo "study.sh: $failed runs failed (their logs: $d/runs)" >&2; exit 1; }
fi

say "3. the study's ledger, and the claims"
rm -rf "$d/ledger-all"
dep_up "$d/ledger-all" deploy/runs/demo.yaml --samplers 0 --annotators 0
cat "$d"/runs/*/evals.jsonl >"$d/evals.jsonl"
$oaif import evals "$d/evals.jsonl"
# claim SETTING_A SETTING_B METRIC DIRECTION TEXT: B - A over the paired seeds, one table row
claim() {
    local a=$1 b=$2 metric=$3 dir=$4 text=$5 j
    j=$($oaif compare "$a-s*" "$b-s*" --json)
    echo "$j" >>"$d/compare.jsonl"
    j=$(echo "$j" | sed "s/.*\"$metric\":{\([^}]*\)}.*/\1/")
    awk -v j="$j" -v dir="$dir" -v text="$text" -v m="$metric" -v n="$seeds" '
        function f(k,  r) { r = j; sub(".*\"" k "\":", "", r); sub(",.*", "", r); return r + 0 }
        BEGIN { mean = f("mean"); lo = f("t_lo"); hi = f("t_hi")
            ok = dir == ">" ? lo > 0 : dir == "<" ? hi < 0 : lo <= 0 && hi >= 0
            scale = m == "mean_length" ? 1 : 100
            unit = m == "mean_length" ? " bytes" : " pts"
            printf "%-58s %-11s %1s %+7.1f%-5s [%+6.1f, %+6.1f]  %s\n", text, m, dir,
                scale * mean, unit, scale * lo, scale * hi, ok ? "PASS" : "FAIL" }'
}
{
    echo "Claims of the OAIF paper on the built-in task: B - A over $seeds paired seeds (oaif compare:"
    echo "each run's last evaluation, $neval eval prompts against the SFT model; the mean difference"
    echo "and its 95% paired t interval; PASS when the interval excludes 0 in the claimed direction,"
    echo "for '=' when it includes 0). Runs of $steps steps of $pairs pairs."
    printf '%-58s %-11s %1s %12s %16s  %s\n' "claim (B against A)" metric "" "B - A" "95% interval" ""
    claim offline online win_rate ">" "online DPO beats offline DPO (SFT's own samples)"
    claim offline-other online win_rate ">" "online DPO beats offline DPO (another model's samples)"
    claim offline-other offline win_rate ">" "offline: SFT's own samples beat another model's"
    claim online ipo win_rate "=" "online IPO wins like online DPO"
    claim online slic win_rate "=" "online SLiC wins like online DPO"
    claim online short mean_length "<" "'Prefer shorter responses.' shortens the answers"
    claim online short accuracy "=" "'Prefer shorter responses.' keeps the accuracy"
    claim online beta-low win_rate ">" "beta 0.05 moves further than 0.1: wins more"
    claim online beta-high win_rate "<" "beta 0.2 moves less than 0.1: wins less"
} | tee "$d/claims.txt"

say "4. the report: win rate against SFT over policy versions, online and both offline baselines"
$oaif report --run online-s1 --runs 'online-s*,offline-s*,offline-other-s*' \
    --out "$d/report.html" >/dev/null
dep_down "$d/ledger-all"
say "   report: $here/$d/report.html"
if [ "$quick" -eq 1 ]; then
    say "done (quick: the machinery ran; the verdicts above mean nothing at this size)"
else
    say "done (every log and record under $d)"
fi
