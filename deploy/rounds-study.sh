#!/usr/bin/env bash
# deploy/rounds-study.sh - MetaRM against vanilla retraining over iterative rounds (issue 14) on
# the built-in task, one command:
#
#   1. set-up and build; the SFT model (oaif sft, cached in data/checkpoints once trained);
#   2. one local deployment (oaif up: a ledger, a sampler, two annotator-proxies with the rules
#      judge at 25% noise, which records in each label whether its noise flipped it);
#   3. `oaif run deploy/runs/rounds-study.yaml`: online DPO in 3 rounds of 25 steps (oaif.run.rounds).
#      Before each round after the first, the run's labeled pairs so far train two 2-member
#      ensembles from the SFT model: 'metarm' with MetaRM (the meta set sampled from the round's
#      policy) and 'vanilla' without, member m of each with seed m+1; the round's policy then
#      yields new pairs, on which both are scored against the noise-free labels (the pairs from
#      the current, shifted policy: none of them in either ensemble's training data);
#   4. the table `oaif run` prints, and per round each member's accuracy and the paired
#      difference (MetaRM - vanilla, same seed, same pairs).
#
#   deploy/rounds-study.sh [--quick]
#     --quick    a smoke test of the whole path (tiny SFT model, 2 rounds of 4 steps, 1 member).
#   OAIF_BUILD=DIR: a build directory already built (default: deploy/setup.sh's build/).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; shift ;;
    *) echo "rounds-study.sh: unknown option '$1' (try --quick)" >&2; exit 2 ;;
    esac
done
t0=$(date +%s)
say() { printf '== [%4ds] %s\n' $(($(date +%s) - t0)) "$*"; }

say "1. set-up, build and the SFT model"
if [ -z "${OAIF_BUILD:-}" ]; then
    deploy/setup.sh >/dev/null
    OAIF_BUILD=build
fi
oaif=$here/$OAIF_BUILD/services/oaif/oaif
d=data/rounds-study
extra=()
if [ "$quick" -eq 1 ]; then
    d=data/rounds-study-quick
    $oaif sft --quick --out data/checkpoints-quick
    sft=data/checkpoints-quick/sft-v000000
    # the run file's settings, smaller; RM_* and REWARD_SCORER_* are oaif rm train's and the
    # scorer's variables (the run file names data/rounds-study)
    export RM_INIT=$sft RM_CHECKPOINT_DIR=$d/reward RM_EVAL_CHECKPOINT_DIR=$d/reward RM_EPOCHS=1
    export REWARD_SCORER_CHECKPOINT_DIR=$d/reward
    extra=(--reference "$sft" --checkpoints "$d/policy" --steps 8 --rounds 2 --rounds-members 1)
else
    $oaif sft --out data/checkpoints
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} # several processes share the cores
rm -rf "$d"
mkdir -p "$d/logs"

say "2. the deployment ($d; logs in $d/logs)"
up_pid=
trap '[ -n "$up_pid" ] && kill -INT "$up_pid" 2>/dev/null; wait 2>/dev/null || true' EXIT
$oaif up --data "$d" --config deploy/runs/rounds-study.yaml --clients 'tcp://127.0.0.1:*' \
    --workers 'tcp://127.0.0.1:*' --events 'tcp://127.0.0.1:*' >"$d/logs/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 300); do [ -s "$d/endpoints" ] && break; sleep 0.1; done
BUS_CLIENTS_ENDPOINT=$(sed -n 's/^clients=//p' "$d/endpoints")
export BUS_CLIENTS_ENDPOINT
$oaif task prompts --split train --n 2000 --seed 1 | $oaif import prompts - >/dev/null

say "3. the rounds (oaif run; the members' logs: $d/logs/rounds-*)"
$oaif run deploy/runs/rounds-study.yaml --data "$d" "${extra[@]}" 2>&1 | tee "$d/run.txt" |
    sed -nu 's/^round \([0-9]\)/   round \1/p' || { tail -20 "$d/run.txt"; exit 1; }
kill -INT "$up_pid"
wait "$up_pid" || true
up_pid=

say "4. the tables"
echo
sed -n '/^Reward-model accuracy/,$p' "$d/run.txt"
echo
echo "Each member's accuracy on the round's pairs against the noise-free labels, and the paired"
echo "difference (MetaRM - vanilla: the same seed, data and pairs):"
python3 - "$d/rounds/rounds.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'round':<6}{'policy':<8}{'pairs':>6}  {'member':<8}{'MetaRM':>8}{'vanilla':>9}{'diff':>8}")
for r in rows:
    ens = {e["ensemble"]: e for e in r["ensembles"]}
    meta, van = ens.get("metarm"), ens.get("vanilla")
    if not meta or not van or meta.get("error") or van.get("error"):
        print(f"{r['round']:<6}v{r['policy_version']:<7}{'-':>6}  (no ensemble scored: the SFT policy's round)")
        continue
    pairs = [(a, b) for a, b in zip(meta["members"], van["members"])]
    pairs.append(({"model": "mean", "accuracy": meta["accuracy"]}, {"accuracy": van["accuracy"]}))
    for a, b in pairs:
        name = a["model"].split("/")[-1].split("@")[0] if a["model"] != "mean" else "mean"
        print(f"{r['round']:<6}v{r['policy_version']:<7}{meta['pairs']:>6}  {name:<8}"
              f"{100 * a['accuracy']:>7.1f}%{100 * b['accuracy']:>8.1f}%"
              f"{100 * (a['accuracy'] - b['accuracy']):>+7.1f}")
EOF
say "done (every log and record under $d)"
