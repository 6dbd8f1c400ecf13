#!/bin/sh
# Runs a scenario runner over conformance cases and compares with the expected output.
#
#   sh tools/oracle/check.sh RUNNER DIR...
#
# For every *.json under the DIRs (sorted), runs `RUNNER FILE.json` (RUNNER is split into words,
# so "node tools/oracle/oracle.js" works) with a per-case timeout, and compares its stdout with
# the sibling FILE.expected. A case fails when the output differs, the runner exits non-zero or
# times out, or the .expected file is missing. Prints a unified diff (cut short) for each
# failure, then a last line "N passed, M failed". Exit status 0 only when M = 0 and N > 0.
#
# Environment: CHECK_JOBS (parallel cases; default 4 per CPU, 2 per CPU for a node runner),
# CHECK_TIMEOUT (seconds per case, default 20), CHECK_SHOW (failures shown in full, default 20),
# CHECK_LINES (diff lines shown per failure, default 40).
set -u

if [ $# -lt 2 ]; then
    echo "usage: sh tools/oracle/check.sh RUNNER DIR..." >&2
    exit 2
fi
RUNNER=$1
shift
for d in "$@"; do
    if [ ! -d "$d" ]; then
        echo "check: $d is not a directory" >&2
        exit 2
    fi
done

ncpu=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# Cases mostly sleep on their timers, so several run per CPU; but a Node.js runner costs ~0.1 s
# of CPU to start, and when starts pile up, timers fire late enough to reorder: two per CPU.
case ${RUNNER%% *} in
    node | */node | nodejs | */nodejs) default_jobs=$((ncpu * 2)) ;;
    *) default_jobs=$((ncpu * 4)) ;;
esac
JOBS=${CHECK_JOBS:-$default_jobs}
TIMEOUT=${CHECK_TIMEOUT:-20}
SHOW=${CHECK_SHOW:-20}
LINES=${CHECK_LINES:-40}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vow-check.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

find "$@" -type f -name '*.json' | LC_ALL=C sort >"$tmp/list"
total=$(wc -l <"$tmp/list")
if [ "$total" -eq 0 ]; then
    echo "check: no *.json cases under $*" >&2
    echo "0 passed, 0 failed"
    exit 1
fi

# One case: writes $tmp/r/NUM.pass, or $tmp/r/NUM.fail holding the report.
export RUNNER TIMEOUT LINES tmp
mkdir "$tmp/r"
# Numbered pairs "N FILE" (the paths hold no blanks), 16 cases per shell; the
# outputs of passing cases go with the tmp dir: no process per case but the
# runner, its timeout and cmp.
awk '{ print NR, $0 }' "$tmp/list" | xargs -P "$JOBS" -n 32 sh -c '
while [ $# -ge 2 ]; do
    n=$1 f=$2
    shift 2
    exp=${f%.json}.expected
    out=$tmp/r/$n.out
    err=$tmp/r/$n.err
    if [ ! -f "$exp" ]; then
        echo "FAIL $f: missing ${exp##*/}" >"$tmp/r/$n.fail"
        continue
    fi
    # RUNNER is split into words on purpose.
    timeout "$TIMEOUT" $RUNNER "$f" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$exp" "$out"; then
        : >"$tmp/r/$n.pass"
        continue
    fi
    {
        if [ "$rc" -eq 124 ]; then
            echo "FAIL $f: timed out after ${TIMEOUT}s"
        elif [ "$rc" -ne 0 ]; then
            echo "FAIL $f: runner exited with status $rc"
        else
            echo "FAIL $f: output differs"
        fi
        if [ -s "$err" ]; then
            echo "  stderr:"
            head -n 5 "$err" | sed "s/^/  | /"
        fi
        diff -u "$exp" "$out" | sed "1,2d" | head -n "$LINES"
    } >"$tmp/r/$n.fail"
done
' sh

passed=$(find "$tmp/r" -name '*.pass' | wc -l)
failed=$((total - passed))
if [ "$failed" -gt 0 ]; then
    shown=0
    for n in $(awk '{ print NR }' "$tmp/list"); do
        [ -f "$tmp/r/$n.pass" ] && continue
        shown=$((shown + 1))
        if [ "$shown" -le "$SHOW" ]; then
            if [ -f "$tmp/r/$n.fail" ]; then cat "$tmp/r/$n.fail"; else echo "FAIL $(sed -n "${n}p" "$tmp/list"): not run"; fi
        elif [ "$shown" -le $((SHOW + 100)) ]; then
            [ "$shown" -eq $((SHOW + 1)) ] && echo "... further failures (names only):"
            echo "FAIL $(sed -n "${n}p" "$tmp/list")"
        fi
    done
    [ "$shown" -gt $((SHOW + 100)) ] && echo "... and $((shown - SHOW - 100)) more failures"

fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
