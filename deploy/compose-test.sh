#!/usr/bin/env bash
# deploy/compose-test.sh - compose.yaml for real: a Docker engine of its own, the image built from
# deploy/Dockerfile, the whole deployment brought up with three annotator-proxies, an online run
# with the rules judge, the judge swapped to an OpenAI-compatible server (tests/fake_judge) by
# environment variables alone and the run extended, an annotator-proxy and the ledger killed
# (`docker kill`) while it trains; then `oaif audit` must be clean, the labels must come from both
# judges, and each of the three annotator-proxies must have served labels. Everything is torn
# down at the end, pass or fail; the images stay cached.
#
#   deploy/compose-test.sh          (as root; deploy/test.sh runs it)
#
# The engine: Debian's docker.io (installed when missing, with docker-compose 1.29 and
# debootstrap), started here as `dockerd --iptables=false --bridge=none` with its sockets under a
# scratch directory and its data root under OAIF_DOCKER_CACHE (default /var/cache/oaif-docker),
# kept between runs: the base image and the image's build stage (compilers, -dev packages) are
# made once per machine, so a later run only compiles the sources. The storage driver is the
# engine's choice (overlay2 where the kernel allows it, else vfs; OAIF_DOCKER_STORAGE_DRIVER
# forces one). The test stops the engine by its pid when done. Where the engine cannot start (not
# root, no packages, a kernel without namespaces), it says why and exits 0: SKIPPED.
#
# The network: the containers use the host's network namespace (deploy/compose.hostnet.yaml,
# `network_mode: host`, the ledger on 127.0.0.1) rather than a compose bridge network. The engine
# runs with --bridge=none --iptables=false so that it changes nothing on the machine, and then
# the only addresses the test's traffic can reach are the machine's loopback ones: services, the
# CLI and the fake judge (127.0.0.1) talk over 127.0.0.1 and nothing leaves the machine. The
# service name `ledger` resolves to 127.0.0.1 in every container, so compose.yaml's endpoints are
# used unchanged. Compose v1 refuses published ports with host networking, so the merged
# configuration (`docker-compose config`) is written out without the ledger's `ports:`; that and
# the network are the only differences from `docker compose up` on compose.yaml.
#
# The base image: where `debian:12-slim` is not in the engine (no registry is reached here), it is
# made with debootstrap from the machine's apt mirror and imported, once.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
t_start=$(date +%s)
cache=${OAIF_DOCKER_CACHE:-/var/cache/oaif-docker}
build_dir=${BUILD_DIR:-build}
image=oaif:compose-test
project=oaifct
steps1=6      # the run file's trainer.steps: the rules judge
steps2=200    # extended after the swap: the fake OpenAI-compatible judge
limit=${OAIF_COMPOSE_TEST_LIMIT:-180} # seconds for each phase of the run

say() { printf '== compose-test: %s (%ds)\n' "$*" $(($(date +%s) - t_start)); }
skip() {
    echo "compose-test: SKIPPED: $*" >&2
    exit 0
}
fail() {
    echo "compose-test: FAILED: $*" >&2
    exit 1
}

# ---- the engine ------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || skip "dockerd needs root (this runs as uid $(id -u))"
need=()
for p in docker.io docker-compose debootstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >/dev/null || skip "cannot install ${need[*]} with apt-get"
fi
# Debian's client, matched to its daemon (a newer client elsewhere on PATH also works).
docker() { /usr/bin/docker "$@"; }

scratch=$(mktemp -d /tmp/oaif-compose-test.XXXXXX)
export DOCKER_HOST=unix://$scratch/docker.sock
mkdir -p "$cache/data"
# One engine per data root: a second run on this machine waits for the first.
exec 9>"$cache/lock"
flock -w 900 9 || fail "another compose-test holds $cache/lock"
dockerd_pid=
fake_pid=
compose_file=$scratch/compose.yaml

cleanup() {
    local rc=$?
    set +e
    if [ -n "$dockerd_pid" ] && [ -s "$compose_file" ]; then
        if [ "$rc" -ne 0 ]; then
            for c in $(dc ps -a -q 2>/dev/null); do
                echo "---- $(docker inspect -f '{{.Name}} {{.State.Status}}' "$c"): last lines" >&2
                docker logs "$c" 2>&1 | grep -v ' cfg\.c:[0-9]* config ' | tail -8 >&2
            done
        fi
        dc down -v --remove-orphans >/dev/null 2>&1
        docker rm -f "${project}_restored" >/dev/null 2>&1
        docker volume rm "${project}_restored" >/dev/null 2>&1
    fi
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$dockerd_pid" 2>/dev/null && kill -9 "$dockerd_pid"
    fi
    # dockerd leaves its default network namespace mounted under the exec root
    umount "$scratch/exec/netns/default" 2>/dev/null
    rm -rf "$scratch"
    say "$([ "$rc" -eq 0 ] && echo "done" || echo "failed (exit $rc)")"
    exit "$rc"
}
trap cleanup EXIT

say "starting dockerd (data root $cache/data)"
driver=()
[ -n "${OAIF_DOCKER_STORAGE_DRIVER:-}" ] && driver=(--storage-driver "$OAIF_DOCKER_STORAGE_DRIVER")
dockerd "${driver[@]}" --iptables=false --ip6tables=false --bridge=none \
    --data-root "$cache/data" --exec-root "$scratch/exec" --pidfile "$scratch/dockerd.pid" \
    -H "$DOCKER_HOST" >"$scratch/dockerd.log" 2>&1 9>&- &
dockerd_pid=$!
for _ in $(seq 120); do
    docker version >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
done
if ! docker version >/dev/null 2>&1; then
    tail -5 "$scratch/dockerd.log" >&2
    skip "dockerd did not start (its log's last lines above)"
fi
say "dockerd up: storage driver $(docker info --format '{{.Driver}}')"

# ---- the images ------------------------------------------------------------------------------
if ! docker image inspect debian:12-slim >/dev/null 2>&1; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
        grep -oE '^(deb|URIs:) +https?://[^ ]+' | grep -v security | awk '{print $2; exit}' || true)
    [ -n "$mirror" ] || fail "no Debian mirror in /etc/apt/sources.list*"
    say "making debian:12-slim with debootstrap from $mirror"
    debootstrap --variant=minbase bookworm "$scratch/rootfs" "$mirror" >"$scratch/debootstrap.log" \
        2>&1 || { tail -5 "$scratch/debootstrap.log" >&2; fail "debootstrap"; }
    tar -C "$scratch/rootfs" -c . | docker import - debian:12-slim >/dev/null
    rm -rf "$scratch/rootfs"
fi
say "building $image"
t_build=$(date +%s)
# The build stage is tagged so that pruning the untagged images of earlier runs keeps its layers.
# BuildKit, for the Dockerfile's compiler cache (a cache mount kept in the data root): a run after a
# change compiles the changed files only. Images of earlier runs are pruned, and the build cache
# is held to a few GB.
DOCKER_BUILDKIT=1 docker build --network host -f deploy/Dockerfile -t "$image" . \
    >"$scratch/build.log" 2>&1 || { tail -30 "$scratch/build.log" >&2; fail "docker build"; }
docker image prune -f >/dev/null
docker builder prune -f --keep-storage 6GB >/dev/null
say "image built in $(($(date +%s) - t_build)) s"

# ---- the deployment ------------------------------------------------------------------------
export COMPOSE_PROJECT_NAME=$project OAIF_IMAGE=$image OMP_NUM_THREADS=1
export OAIF_RUN_FILE=./deploy/runs/compose-test.yaml
# CURVE on (deploy/compose.curve.yaml): the keys are made by the image's own `oaif keys`.
export OAIF_KEYS_DIR=$scratch/keys
mkdir -p "$OAIF_KEYS_DIR"
for k in ledger services; do
    docker run --rm --user 0 -v "$OAIF_KEYS_DIR:/keys" "$image" oaif keys "$k" --dir /keys \
        >/dev/null || fail "oaif keys $k"
done
chown 10001 "$OAIF_KEYS_DIR"/*.key # the containers' user reads them (Compose bind-mounts secrets)
docker-compose -f compose.yaml config -q || fail "compose.yaml is not valid for docker-compose"
# Writes the merged configuration that dc runs (see the network, above); the judge variables are
# read now, so a swap writes it again.
merge() {
    docker-compose -f compose.yaml -f deploy/compose.curve.yaml -f deploy/compose.hostnet.yaml \
        -f deploy/compose.test.yaml config >"$compose_file.tmp"
    /usr/bin/python3 - "$compose_file.tmp" <<'EOF'
import sys, yaml
path = sys.argv[1]
conf = yaml.safe_load(open(path))
conf["services"]["ledger"].pop("ports", None)
yaml.safe_dump(conf, open(path, "w"), sort_keys=False)
EOF
    mv "$compose_file.tmp" "$compose_file"
}
dc() { docker-compose -p "$project" --project-directory "$here" -f "$compose_file" "$@"; }
# The CLI of the image, in a container that stays up throughout (the sampler).
cli() { dc exec -T sampler oaif "$@"; }
cid() { dc ps -q "$1" | sed -n "${2:-1}p"; }
records() { # the count of records of kind $1 ("" while the ledger does not answer)
    cli status 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'
}
served() { # the ok judgements of annotator container $1 so far, from its /metrics (0: unknown)
    local port
    port=$(docker logs "$1" 2>&1 | sed -n 's/.*metrics on [0-9.]*:\([0-9]*\)$/\1/p' | tail -1)
    [ -n "$port" ] || { echo 0; return; }
    /usr/bin/python3 - "$port" <<'EOF'
import re, sys, urllib.request
try:
    url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
    text = urllib.request.urlopen(url, timeout=5).read().decode()
except OSError:
    text = ""
print(int(sum(float(m.group(1)) for m in re.finditer(
    r'^oaif_judge_judgements_total\{[^}]*result="ok"[^}]*\} (\S+)$', text, re.M))))
EOF
}
wait_exit() { # the trainer container $1 must exit 0 within the limit
    local t0
    t0=$(date +%s)
    while [ "$(docker inspect -f '{{.State.Status}}' "$1")" != exited ]; do
        [ $(($(date +%s) - t0)) -lt "$limit" ] || fail "the trainer still runs after $limit s"
        sleep 1
    done
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$1")
    [ "$code" -eq 0 ] || fail "the trainer exited with status $code"
}

say "up: every service, three annotator-proxies, the rules judge"
merge
dc up -d --no-build --scale annotator-proxy=3 >/dev/null 2>"$scratch/up.log" ||
    { cat "$scratch/up.log" >&2; fail "docker-compose up"; }
trainer=$(cid trainer)
[ -n "$trainer" ] || fail "no trainer container"
wait_exit "$trainer"
n=$(records steps)
[ "$n" = "$steps1" ] || fail "the ledger holds ${n:-no} steps after the first run, not $steps1"
rules_labels=$(cli export labels | grep -c '"judge":"rules' || true)
[ "$rules_labels" -gt 0 ] || fail "no label from the rules judge"
say "run 1: $n steps, $rules_labels labels from the rules judge"

# ---- the judge, swapped by environment variables alone --------------------------------------
fake_bin=$build_dir/tests/fake_judge
[ -x "$fake_bin" ] || cmake --build "$build_dir" --target fake_judge >/dev/null
"$fake_bin" 0 --logprobs --mode bias --latency 20 >"$scratch/fake_judge.out" 2>"$scratch/fake_judge.log" 9>&- &
fake_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^PORT //p' "$scratch/fake_judge.out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || fail "the fake judge did not start"
export OAIF_JUDGE=openai OAIF_JUDGE_BASE_URL=http://127.0.0.1:$port/v1 OAIF_JUDGE_MODEL=fake-judge
say "the judge swapped to openai at $OAIF_JUDGE_BASE_URL"
merge
dc up -d --no-build --no-deps --scale annotator-proxy=3 annotator-proxy annotator-eval \
    >/dev/null 2>"$scratch/up.log" || { cat "$scratch/up.log" >&2; fail "docker-compose up"; }

# Run 2 extends the run: the trainer resumes at step $steps1 and trains to $steps2 on the new
# judge's labels, while an annotator-proxy and then the ledger are killed.
run2=$(dc run -d --no-deps -e TRAINER_STEPS=$steps2 trainer 2>/dev/null | tail -1)
[ -n "$run2" ] || fail "docker-compose run trainer"
# Each annotator-proxy serves the new judge's labels (its /metrics) before one of them is killed.
t0=$(date +%s)
while :; do
    counts=$(for c in $(dc ps -q annotator-proxy); do served "$c"; done | tr '\n' ' ')
    case " $counts" in *" 0 "*) ;; *) break ;; esac
    [ "$(docker inspect -f '{{.State.Status}}' "$run2")" != exited ] ||
        fail "the run ended before each annotator-proxy served a label (judgements: $counts)"
    [ $(($(date +%s) - t0)) -lt "$limit" ] || fail "judgements after $limit s: $counts"
    sleep 1
done
say "each annotator-proxy served labels (judgements: $counts)"
victim=$(cid annotator-proxy 2)
say "docker kill $(docker inspect -f '{{.Name}}' "$victim")"
docker kill "$victim" >/dev/null
sleep 2
docker start "$victim" >/dev/null # `docker kill` is a stop by hand: no restart policy applies
[ "$(docker inspect -f '{{.State.Status}}' "$run2")" = running ] ||
    fail "the run ended before the ledger could be killed"
ledger=$(cid ledger)
say "docker kill the ledger at step $(records steps)"
docker kill "$ledger" >/dev/null
sleep 3
docker start "$ledger" >/dev/null
wait_exit "$run2"
n=$(records steps)
[ "$n" = "$steps2" ] || fail "the ledger holds ${n:-no} steps after the second run, not $steps2"

# ---- the checks ------------------------------------------------------------------------------
cli audit >"$scratch/audit.out" 2>&1 || { cat "$scratch/audit.out" >&2; fail "oaif audit"; }
fake_labels=$(cli export labels | grep -c '"judge":"openai/fake-judge' || true)
[ "$fake_labels" -gt 0 ] || fail "no label from the fake OpenAI-compatible judge"
say "run 2: $n steps, $fake_labels labels from openai/fake-judge; oaif audit clean"
# The three annotator-proxies are up (the killed one again) and stop cleanly on SIGTERM (through
# docker-init), each saying what it served since its last start.
[ "$(dc ps -q annotator-proxy | wc -l)" -eq 3 ] || fail "not three annotator-proxies"
dc stop -t 10 annotator-proxy >/dev/null 2>&1
for c in $(dc ps -q annotator-proxy); do
    name=$(docker inspect -f '{{.Name}}' "$c")
    [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" -eq 0 ] || fail "$name on SIGTERM"
    echo "  $name: $(docker logs "$c" 2>&1 | sed -n 's/.*totals: \([0-9]* judgements\).*/\1/p' |
        tail -1) since its last start"
done

# Backing up the ledger as the README says (stopped, its volume archived), then restoring the
# archive into a new volume: a ledger started on it must pass the audit too.
dc stop ledger >/dev/null 2>&1
docker run --rm --user "$(id -u):$(id -g)" -v "${project}_ledger-data:/data/ledger:ro" \
    -v "$scratch:/backup" "$image" tar -C /data -czf /backup/ledger.tgz ledger ||
    fail "the backup of the ledger's volume"
tar -tzf "$scratch/ledger.tgz" >"$scratch/ledger.list"
grep -q '^ledger/CURRENT$' "$scratch/ledger.list" || fail "the backup holds no RocksDB"
restored=${project}_restored
docker volume create "$restored" >/dev/null
chmod 755 "$scratch" # the image's user reads the archive (mktemp made the directory 0700)
docker run --rm -v "$restored:/data/ledger" -v "$scratch:/backup:ro" "$image" \
    tar -C /data -xzf /backup/ledger.tgz || fail "the restore"
docker run -d --name "$restored" --network host -v "$restored:/data/ledger" "$image" ledger \
    --db /data/ledger --clients tcp://127.0.0.1:15555 --workers tcp://127.0.0.1:15556 \
    --events "" >/dev/null
docker run --rm --network host "$image" oaif audit --clients tcp://127.0.0.1:15555 \
    >"$scratch/audit2.out" 2>&1 || { cat "$scratch/audit2.out" >&2; fail "oaif audit (restored)"; }
docker rm -f "$restored" >/dev/null
say "the ledger backed up ($(du -k "$scratch/ledger.tgz" | cut -f1) KiB), restored, audited"
say "passed"
