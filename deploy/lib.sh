# shellcheck shell=bash
# deploy/lib.sh - what deploy/demo.sh and deploy/study.sh share; sourced, not run.
#
#   lib_start NAME         cd to the checkout, the clock for say, NAME for messages
#   say TEXT...            "== [  12s] TEXT" on stdout
#   lib_build              set-up and build (deploy/setup.sh into build/), or $OAIF_BUILD, a build
#                          directory already built, as it is; sets $oaif
#   dep_up DIR CONFIG [oaif up options...]
#                          a local deployment (oaif up --data DIR --config CONFIG on free ports),
#                          its pid in DIR/up.pid; waits for its endpoints, exports
#                          BUS_CLIENTS_ENDPOINT and imports the train prompts (2000, seed 1)
#   dep_down DIR           stops it (SIGINT, as Ctrl-C) and waits
#   dep_down_all DIR...    stops every deployment whose up.pid is under the DIRs (an exit trap)
#   check DESCRIPTION AWK_CONDITION
#                          "PASS  DESCRIPTION" or "FAIL  DESCRIPTION"
lib_start() {
    lib_name=$1
    here=$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)
    cd "$here" || exit 1
    t0=$(date +%s)
}

say() { printf '== [%4ds] %s\n' $(($(date +%s) - t0)) "$*"; }

lib_build() {
    if [ -z "${OAIF_BUILD:-}" ]; then
        deploy/setup.sh >/dev/null
        OAIF_BUILD=build
    fi
    case "$OAIF_BUILD" in /*) ;; *) OAIF_BUILD=$here/$OAIF_BUILD ;; esac
    oaif=$OAIF_BUILD/services/oaif/oaif
    [ -x "$oaif" ] || { echo "$lib_name: $oaif is not built" >&2; exit 1; }
}

dep_up() {
    local dir=$1 config=$2
    shift 2
    mkdir -p "$dir"
    rm -f "$dir/endpoints"
    $oaif up --data "$dir" --config "$config" --clients 'tcp://127.0.0.1:*' \
        --workers 'tcp://127.0.0.1:*' --events 'tcp://127.0.0.1:*' "$@" >"$dir/up.log" 2>&1 &
    echo $! >"$dir/up.pid"
    for _ in $(seq 300); do [ -s "$dir/endpoints" ] && break; sleep 0.1; done
    [ -s "$dir/endpoints" ] || { tail -20 "$dir/up.log" >&2; return 1; }
    BUS_CLIENTS_ENDPOINT=$(sed -n 's/^clients=//p' "$dir/endpoints")
    export BUS_CLIENTS_ENDPOINT
    $oaif task prompts --split train --n 2000 --seed 1 | $oaif import prompts - >/dev/null
}

dep_down() {
    local pid
    pid=$(cat "$1/up.pid")
    kill -INT "$pid" 2>/dev/null || true
    # a child of this shell, or of a subshell's (then wait cannot, and the pid is polled)
    wait "$pid" 2>/dev/null || while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$1/up.pid"
}

dep_down_all() {
    local f
    while read -r f; do
        kill -INT "$(cat "$f")" 2>/dev/null || true
    done < <(find "$@" -name up.pid 2>/dev/null)
    wait 2>/dev/null || true
}

check() {
    if awk "BEGIN { exit !($2) }"; then echo "PASS  $1"; else echo "FAIL  $1"; fi
}
