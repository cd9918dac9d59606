#!/usr/bin/env bash
# deploy/test.sh - the whole test suite, from nothing: installs packages, builds, and runs every
# test twice: a plain build, then one with -fsanitize=address,undefined. Then the static checks.
#   deploy/test.sh            everything
#   deploy/test.sh --quick    the plain build's tests only
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

echo "== the demo, quick (a smoke test of the whole loop through real processes)"
deploy/demo.sh --quick

echo "== static checks (cppcheck)"
if command -v cppcheck >/dev/null; then
    cppcheck --quiet --project=build/compile_commands.json --error-exitcode=1 \
        --suppress='*:*/proto/gen/*' --suppress=missingIncludeSystem -i build/proto \
        --inline-suppr 2>&1 | tail -20
fi
echo "== all tests passed"
