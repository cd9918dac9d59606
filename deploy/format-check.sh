#!/usr/bin/env bash
# deploy/format-check.sh - are the changed lines of C formatted as .clang-format says?
#
# Only changed lines are checked (clang-format-diff), so old code is reformatted when someone
# touches it, not in one sweep. "Changed" means: the working tree (commits and uncommitted edits
# to tracked .c/.h files) against a base commit.
#
#   deploy/format-check.sh              base HEAD~1: the last commit and any uncommitted edits
#   FORMAT_BASE=origin/main deploy/format-check.sh    everything since that commit (a branch)
#   deploy/format-check.sh --fix        reformat those lines in place instead of failing
#
# Without FORMAT_BASE and with no HEAD~1 (a repository of one commit, or a clone made with
# --depth 1) only uncommitted edits are checked: CI should clone with a depth of 2 or more, or
# set FORMAT_BASE to the branch point (FORMAT_BASE=$(git merge-base origin/main HEAD)).
# Exits 0 when clean, 1 with the needed changes shown as a diff, 2 when it cannot check.
# Needs clang-format 14 (Debian: clang-format; deploy/setup.sh installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

fix=0
for a in "$@"; do
    case "$a" in
    --fix) fix=1 ;;
    *) echo "format-check.sh: unknown option '$a' (try --fix)" >&2; exit 2 ;;
    esac
done

cfd=""
for c in clang-format-diff-14 clang-format-diff; do
    if command -v "$c" >/dev/null; then cfd=$c; break; fi
done
if [ -z "$cfd" ] || ! command -v clang-format-14 >/dev/null; then
    echo "format-check: clang-format-diff-14 and clang-format-14 are needed" \
         "(apt-get install clang-format, or deploy/setup.sh --deps)" >&2
    exit 2
fi

if [ -n "${FORMAT_BASE:-}" ]; then
    if ! base=$(git rev-parse --verify -q "${FORMAT_BASE}^{commit}"); then
        echo "format-check: FORMAT_BASE=$FORMAT_BASE is not a commit here" \
             "(a shallow clone? fetch it first)" >&2
        exit 2
    fi
elif base=$(git rev-parse --verify -q "HEAD~1^{commit}"); then
    :
else
    echo "format-check: no HEAD~1 (one commit, or a shallow clone): checking uncommitted edits only"
    base=HEAD
fi

# -U0: only the changed lines; --diff-filter=d: a deleted file has nothing to format.
diff=$(git diff -U0 --no-color --no-ext-diff --diff-filter=d "$base" -- '*.c' '*.h')
if [ -z "$diff" ]; then
    echo "format-check: no C changed since $(git rev-parse --short "$base")"
    exit 0
fi
if [ "$fix" -eq 1 ]; then
    printf '%s\n' "$diff" | "$cfd" -p1 -i -binary clang-format-14
    echo "format-check: changed lines since $(git rev-parse --short "$base") reformatted"
    exit 0
fi
out=$(printf '%s\n' "$diff" | "$cfd" -p1 -binary clang-format-14)
if [ -n "$out" ]; then
    printf '%s\n' "$out"
    echo "format-check: the lines above, changed since $(git rev-parse --short "$base")," \
         "are not formatted as .clang-format says; fix them with: deploy/format-check.sh --fix" \
         "(with the same FORMAT_BASE)" >&2
    exit 1
fi
echo "format-check: changed lines since $(git rev-parse --short "$base") are formatted"
