# tests/fuzz/targets.sh - sourced by smoke.sh and run.sh: the fuzz targets (fuzz_<name>.c) and the
# libFuzzer flags each needs beyond the defaults.
# shellcheck shell=bash
FUZZ_TARGETS=(wire tokenizer safetensors config cfg import_prompts import_pairs import_evals ledger buscheck
              sampler_remote)

# -max_len: the seeds' size or a little more (libFuzzer's default, 4096, would cut the
# tokenizer.json and safetensors seeds)
fuzz_flags() {
    case "$1" in
    tokenizer | cfg) echo "-max_len=16384" ;;
    safetensors) echo "-max_len=16384" ;;
    ledger) echo "-max_len=4096 -timeout=10" ;;
    *) echo "-max_len=4096" ;;
    esac
}

# Configures (clang, -DOAIF_FUZZ=ON) build directory $1 and builds fuzz_<name> of each further
# argument (all targets when none); names the missing piece when clang or its fuzzer runtime is
# not there (deploy/setup.sh installs both).
fuzz_build() {
    local dir=$1 here t
    shift
    local names=("$@")
    [ ${#names[@]} -gt 0 ] || names=("${FUZZ_TARGETS[@]}")
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    if ! command -v clang >/dev/null; then
        echo "fuzz: clang is not installed (deploy/setup.sh --deps installs clang and libclang-rt-14-dev)" >&2
        return 1
    fi
    if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' |
        clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
        echo "fuzz: clang cannot link a libFuzzer target: the fuzzer runtime is missing (deploy/setup.sh --deps installs libclang-rt-14-dev)" >&2
        return 1
    fi
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        CC=clang cmake -S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DOAIF_FUZZ=ON >/dev/null || return 1
    fi
    local bins=()
    for t in "${names[@]}"; do bins+=("fuzz_$t"); done
    cmake --build "$dir" -j"$(nproc)" --target "${bins[@]}" >/dev/null || return 1
}
