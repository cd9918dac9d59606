#!/usr/bin/env bash
# deploy/setup.sh - install what oaif needs on Debian 12 and build it.
#
#   deploy/setup.sh            install packages (if missing), configure and build into build/
#   deploy/setup.sh --deps     install packages only
#   deploy/setup.sh --torch    also install python3-torch (fixtures and benchmarks only)
#   BUILD_DIR=build-asan SANITIZE=address,undefined deploy/setup.sh   a sanitizer build
#
# Idempotent: packages already installed are skipped; `apt-get update` runs once, and only
# when something is missing. Safe to run again after a pull: cmake rebuilds what changed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
PKGS=(build-essential cmake pkg-config git
      libzmq3-dev libprotobuf-c-dev protobuf-c-compiler librocksdb-dev
      libcurl4-openssl-dev libcmocka-dev libopenblas-openmp-dev libmicrohttpd-dev
      libpcre2-dev libjansson-dev libyaml-dev
      clang-format  # clang-format 14 and clang-format-diff-14: deploy/format-check.sh
      chromium libpng-dev  # tests: test_report_procs opens oaif report's page, decodes a screenshot
      prometheus   # tests: promtool check metrics on every service (test_metrics_procs)
      clang libclang-rt-14-dev libomp-dev)  # tests/fuzz/smoke.sh: libFuzzer targets (clang's
                                            # fuzzer runtime; OpenMP for the engine under clang)
# tests/test_nn_gguf reads exported GGUF files with an npm package (below); Debian's nodejs and
# npm unless a node is already there (NodeSource's bundles its own npm, which Debian's conflicts
# with)
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
deps_only=0
for a in "$@"; do
    case "$a" in
    --deps) deps_only=1 ;;
    --torch) PKGS+=(python3-torch python3-numpy) ;;
    *) echo "setup.sh: unknown option '$a' (try --deps, --torch)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$deps_only" -eq 1 ] && exit 0

BUILD_DIR=${BUILD_DIR:-build}
SANITIZE=${SANITIZE:-}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
# tests/test_nn_gguf's independent GGUF reader (Hugging Face's @huggingface/gguf) and llama.cpp
# itself (node-llama-cpp with its prebuilt x64 binary, 85 MB; the other platforms' optional
# packages left out), once per build directory; without them (offline) that test skips those
# parts and says so.
npm_dir="$here/$BUILD_DIR/npm"
if command -v npm >/dev/null 2>&1 &&
    { [ ! -f "$npm_dir/node_modules/@huggingface/gguf/package.json" ] ||
        [ ! -f "$npm_dir/node_modules/node-llama-cpp/package.json" ]; }; then
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --omit=optional --ignore-scripts \
        --prefix "$npm_dir" @huggingface/gguf@0.4.6 node-llama-cpp@3.22.1 \
        @node-llama-cpp/linux-x64@3.22.1 >/dev/null ||
        echo "setup: npm install failed: test_nn_gguf will skip the GGUF reader and llama.cpp" >&2
fi
cmake -S "$here" -B "$here/$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DSANITIZE="$SANITIZE" >/dev/null
cmake --build "$here/$BUILD_DIR" -j"$(nproc)"
