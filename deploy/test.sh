#!/usr/bin/env bash
# deploy/test.sh - the whole test suite, from nothing: installs packages, builds, and runs every
# test twice: a plain build, then one with -fsanitize=address,undefined. Then the fuzz smoke
# (tests/fuzz/smoke.sh: each libFuzzer target for 12 s, clang), a Release build
# (compiled only: at -O3 GCC warns where the -O2 builds do not), the demo and the study (quick),
# the deployment (the image and compose.yaml run for real, the Kubernetes manifests checked
# offline), and the static checks (layering, the format of the changed lines, cppcheck).
#   deploy/test.sh            everything
#   deploy/test.sh --quick    the plain build's tests only
#   FORMAT_BASE=origin/main deploy/test.sh    the format check covers every line changed since
#                             that commit (default: since HEAD~1; see deploy/format-check.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

echo "== set-up and plain build"
deploy/setup.sh
echo "== tests (plain)"
ctest --test-dir build --output-on-failure -j"$jobs"

[ "$quick" -eq 1 ] && exit 0

echo "== sanitizer build (address,undefined)"
BUILD_DIR=build-asan SANITIZE=address,undefined BUILD_TYPE=Debug deploy/setup.sh
echo "== tests (address,undefined)"
# OpenMP's runtime keeps thread pools alive at exit; LeakSanitizer reports those as leaks.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS=suppressions=$here/tests/lsan.supp:print_suppressions=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE slow

echo "== fuzz smoke (tests/fuzz/smoke.sh: clang's libFuzzer, every decoder of outside bytes)"
FUZZ_BUILD=$here/build-fuzz tests/fuzz/smoke.sh

echo "== Release build (compiled only)"
BUILD_DIR=build-release BUILD_TYPE=Release deploy/setup.sh

echo "== the demo, quick (a smoke test of the whole loop through real processes)"
deploy/demo.sh --quick
echo "== the study, quick (deploy/study.sh: 16 runs of 4 steps, import, compare, the chart; ~2 min)"
OAIF_BUILD=build deploy/study.sh --quick

echo "== Docker Compose, for real (deploy/compose-test.sh: skipped only where dockerd cannot start)"
deploy/compose-test.sh
echo "== Kubernetes manifests and compose.yaml's variables, offline (deploy/k8s-check.sh)"
deploy/k8s-check.sh

echo "== static checks (layers: the engine and the task include only oaif_ground's headers)"
# common/nn and common/task link oaif_ground alone (common/CMakeLists.txt): a header of theirs
# or of ground is fine, anything else from common/ would fail at link time or drag a library in.
bad_includes=$(grep -Hn '#include "' common/nn/*.[ch] common/task/*.[ch] | while IFS= read -r line; do
    h=${line#*#include \"}
    h=${h%%\"*}
    case " err.h log.h utf8.h sha256.h " in *" $h "*) continue ;; esac
    [ -f "$(dirname "${line%%:*}")/$h" ] || printf '%s\n' "$line"
done)
if [ -n "$bad_includes" ]; then
    printf '%s\n' "$bad_includes"
    echo "the lines above include a header the engine or the task does not link" >&2
    exit 1
fi

echo "== static checks (format of the changed lines)"
deploy/format-check.sh

echo "== static checks (cppcheck)"
if command -v cppcheck >/dev/null; then
    # Generated sources under build/ are not ours to check: the protobuf code, and the report's
    # assets (Chart.js as a C array, 200 kB), which alone kept cppcheck busy for over 10 minutes.
    cppcheck --quiet --project=build/compile_commands.json --error-exitcode=1 \
        --suppress='*:*/proto/gen/*' --suppress=missingIncludeSystem -i build \
        --inline-suppr 2>&1 | tail -20
fi
echo "== all tests passed"
