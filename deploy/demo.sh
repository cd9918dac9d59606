#!/usr/bin/env bash
# deploy/demo.sh - the main job, end to end on this machine.
#
# Until the online loop (trainer) exists this runs the newest end-to-end path that works:
#   1. set-up and build (deploy/setup.sh);
#   2. a local deployment: the ledger and two annotator-proxy replicas with the built-in `rules`
#      judge at 20% label noise, logs under data/demo/logs;
#   3. the built-in task's prompts imported into the ledger (oaif task prompts | oaif import);
#   4. pairs of SFT-style answers labeled through the ledger (oaif annotate), twice: with the
#      default instruction and with "Prefer shorter responses." (OAIF's length control);
#   5. the ledger's status and what it stored.
#   deploy/demo.sh [--pairs N] [--keep]     (--keep leaves the processes running)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
pairs=400
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --pairs) pairs=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "demo.sh: unknown option '$1' (try --pairs N, --keep)" >&2; exit 2 ;;
    esac
done

echo "== 1. set-up and build"
deploy/setup.sh >/dev/null
bin=build/services
oaif=$bin/oaif/oaif

data=data/demo
rm -rf "$data"
mkdir -p "$data/logs"
pids=()
cleanup() {
    [ "$keep" -eq 1 ] && return
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== 2. local deployment: ledger + 2 annotator-proxy replicas (rules judge, 20% noise)"
$bin/ledger/ledger --db "$data/ledger" --clients tcp://127.0.0.1:* --workers tcp://127.0.0.1:* \
    --events tcp://127.0.0.1:* --metrics-port 0 --endpoints-file "$data/endpoints" \
    2>"$data/logs/ledger.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$data/endpoints" ] && break; sleep 0.1; done
clients=$(sed -n 's/^clients=//p' "$data/endpoints")
workers=$(sed -n 's/^workers=//p' "$data/endpoints")
mport=$(sed -n 's/^metrics_port=//p' "$data/endpoints")
export OAIF_LEDGER=$clients
for i in 1 2; do
    $bin/annotator-proxy/annotator-proxy --backend rules --noise 0.2 --noise-seed 7 \
        --clients "$clients" --workers "$workers" --worker-name "judge-$i" \
        2>"$data/logs/annotator-$i.log" &
    pids+=($!)
done
echo "   ledger at $clients (metrics: http://127.0.0.1:$mport/metrics), logs in $data/logs"

echo "== 3. import the built-in task's prompts"
$oaif task prompts --n "$pairs" --seed 1 >"$data/prompts.jsonl"
$oaif import prompts "$data/prompts.jsonl"

echo "== 4. label $pairs pairs of SFT-style answers through the ledger"
$oaif task pairs --n "$pairs" --seed 1 >"$data/pairs.jsonl"
$oaif annotate "$data/pairs.jsonl" --in-flight 32 >"$data/labels.jsonl"
echo "   the same pairs with the judge told to prefer shorter answers (OAIF's length control):"
$oaif annotate "$data/pairs.jsonl" --in-flight 32 --instruction "Prefer shorter responses." \
    >"$data/labels-short.jsonl"
echo "   (the rules judge ranks a correct answer first; equally correct answers tie by default,"
echo "    and with the brevity instruction the shorter one wins: compare the tie counts above)"

echo "== 5. what the ledger holds"
$oaif status
labels=$($oaif export labels 2>/dev/null | wc -l)
echo
echo "labels stored: $labels for $pairs pairs x 2 instructions"
flipped=$(grep -c '"noise_flipped":true' "$data/labels.jsonl" || true)
decided=$(grep -c '"winner":"WINNER_FIRST"\|"winner":"WINNER_SECOND"' "$data/labels.jsonl" || true)
echo "decided labels: $decided; flipped by the simulated 20% noise: $flipped (only evaluation sees this)"
[ "$labels" -eq $((2 * pairs)) ] || { echo "demo: expected $((2 * pairs)) labels, found $labels" >&2; exit 1; }
if [ "$keep" -eq 1 ]; then
    echo "processes left running (--keep): ${pids[*]}"
fi
