#!/usr/bin/env bash
# deploy/chaos.sh - online runs on a local deployment while services are SIGKILLed at random,
# then `oaif audit` must prove the run whole: every step taken once, every trained pair sampled,
# labeled and used in exactly one step.
#
# Each round starts `oaif up` (a ledger, a sampler, two annotator-proxies with the rules judge)
# and `oaif run` on the quick SFT model. Every 3 to 8 s, when every service is up, one of the
# ledger, the sampler, an annotator-proxy or the trainer gets SIGKILL. `oaif up` starts the
# first three again; a killed trainer is started again here with the same `oaif run`, and
# resumes from its last checkpoint.
#
#   deploy/chaos.sh [--rounds N] [--steps N] [--seed S] [--limit SECONDS]
#   BUILD_DIR=build-asan SANITIZE=address,undefined BUILD_TYPE=Debug deploy/chaos.sh
#                          the same on the sanitizer build: a report in any log fails the round
#
# Exit 0 when every round finished with a clean audit; 1 with the round's logs named otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rounds=3 steps=60 seed=1 limit=600
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    *) echo "usage: deploy/chaos.sh [--rounds N] [--steps N] [--seed S] [--limit SECONDS]" >&2
       exit 2 ;;
    esac
done
RANDOM=$seed

deploy/setup.sh >/dev/null
oaif=$here/${BUILD_DIR:-build}/services/oaif/oaif
sft_root=data/checkpoints-quick
$oaif sft --quick --out "$sft_root" >/dev/null
sft=$sft_root/sft-v000000
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# as deploy/test.sh: OpenMP's thread pools outlive main, which LeakSanitizer would report
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/lsan.supp:print_suppressions=0}
batch=8

up=
run=
cleanup() {
    [ -n "$run" ] && kill "$run" 2>/dev/null
    [ -n "$up" ] && kill -INT "$up" 2>/dev/null
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_run() { # the data dir; sets $run
    $oaif run deploy/runs/demo.yaml --data "$1" --run chaos --steps "$steps" --batch $batch \
        --prompts-per-request $batch --max-new-tokens 24 --checkpoint-every 3 \
        --reference "$sft" --checkpoints "$1/checkpoints" >>"$1/run.out" 2>&1 &
    run=$!
}

printf '%-6s %8s %7s %8s %10s %8s %8s  %s\n' round seconds steps ledger annotator sampler \
    trainer audit
failed=0
for r in $(seq 1 "$rounds"); do
    d=data/chaos/$r
    rm -rf "$d"
    mkdir -p "$d"
    $oaif up --data "$d" --config deploy/runs/demo.yaml --clients 'tcp://127.0.0.1:*' \
        --workers 'tcp://127.0.0.1:*' --events 'tcp://127.0.0.1:*' >"$d/up.log" 2>&1 &
    up=$!
    for _ in $(seq 200); do [ -s "$d/endpoints" ] && break; sleep 0.1; done
    BUS_CLIENTS_ENDPOINT=$(sed -n 's/^clients=//p' "$d/endpoints")
    export BUS_CLIENTS_ENDPOINT
    $oaif task prompts --split train --n 300 --seed 1 | $oaif import prompts - >/dev/null
    declare -A kills=([ledger]=0 [annotator-proxy]=0 [sampler]=0 [trainer]=0)
    t0=$(date +%s)
    start_run "$d"
    status=
    while [ -z "$status" ]; do
        sleep $((RANDOM % 6 + 3))
        if ! kill -0 "$run" 2>/dev/null; then
            if wait "$run"; then
                status=done
                break
            fi
            start_run "$d" # killed: resume from the last checkpoint
            continue
        fi
        if [ $(($(date +%s) - t0)) -gt "$limit" ]; then
            status="not finished after $limit s"
            break
        fi
        victims=$(pgrep -P "$up" || true)
        trainer=$(pgrep -P "$run" || true)
        [ "$(echo $victims | wc -w)" -lt 4 ] || [ -z "$trainer" ] && continue # not all up yet
        all=($victims $trainer)
        victim=${all[RANDOM % ${#all[@]}]}
        name=$(cat "/proc/$victim/comm" 2>/dev/null || true)
        [ "$name" = annotator-prox ] && name=annotator-proxy # comm keeps 15 characters
        if [ -n "$name" ] && kill -9 "$victim" 2>/dev/null; then
            kills[$name]=$((kills[$name] + 1))
        fi
    done
    secs=$(($(date +%s) - t0))
    audit=$status
    if [ "$status" = done ]; then
        # the ledger may have just been killed: the audit waits for it to be back
        for _ in 1 2 3 4 5 6 7 8; do
            if $oaif audit >"$d/audit.txt" 2>&1; then break; fi
            sleep 5
        done
        got_steps=$(sed -n 's/^steps *\([0-9]*\).*/\1/p' "$d/audit.txt")
        trained=$(sed -n 's/^pairs trained *\([0-9]*\).*/\1/p' "$d/audit.txt")
        twice=$(sed -n 's/^trained twice *\([0-9]*\).*/\1/p' "$d/audit.txt")
        if grep -q "audit: clean" "$d/audit.txt" && [ "$got_steps" = "$steps" ] &&
            [ "$trained" = $((steps * batch)) ] && [ "$twice" = 0 ]; then
            audit="clean: $got_steps steps, $trained pairs, none twice"
        else
            audit="FAILED (see $d/audit.txt)"
        fi
    fi
    if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$d"/logs/*.log "$d/run.out" \
        >"$d/sanitizer.txt" 2>/dev/null; then
        audit="FAILED: sanitizer reports in $(tr '\n' ' ' <"$d/sanitizer.txt")"
    fi
    printf '%-6s %8s %7s %8s %10s %8s %8s  %s\n' "$r" "$secs" "$steps" "${kills[ledger]}" \
        "${kills[annotator-proxy]}" "${kills[sampler]}" "${kills[trainer]}" "$audit"
    case $audit in clean:*) ;; *) failed=1; echo "   logs: $d/logs, $d/up.log, $d/run.out" ;; esac
    kill -INT "$up"
    wait "$up" || true
    up=
    run=
    unset kills
done
exit $failed
