#!/bin/sh
# Checks that a scenario runner rejects malformed scenarios.
#
#   sh tools/oracle/check-invalid.sh RUNNER DIR...
#
# For every *.json under the DIRs, `RUNNER FILE.json` must exit with status 2 and print on stderr
# a message whose first line names the file (FORMAT.md: "a malformed file gets a message on
# stderr naming the file and the problem, and exit 2"). Its stdout is not looked at. Files named
# runtime-*.json are well-formed but go wrong while running (they print a value FORMAT gives no
# printing for, or use a name whose binding has not run yet); they are checked the same way.
# Ends with "N passed, M failed"; exit status 0 only when M = 0 and N > 0.
set -u
if [ $# -lt 2 ]; then
    echo "usage: sh tools/oracle/check-invalid.sh RUNNER DIR..." >&2
    exit 2
fi
RUNNER=$1
shift
TIMEOUT=${CHECK_TIMEOUT:-20}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vow-check-invalid.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
passed=0
failed=0
for f in $(find "$@" -type f -name '*.json' | LC_ALL=C sort); do
    # RUNNER is split into words on purpose.
    timeout "$TIMEOUT" $RUNNER "$f" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    first=$(head -n 1 "$tmp/err")
    if [ "$rc" -eq 2 ] && [ -n "$first" ] && case "$first" in *"$f"*) true ;; *) false ;; esac; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        if [ "$rc" -ne 2 ]; then
            echo "FAIL $f: exit status $rc, expected 2"
        else
            echo "FAIL $f: the first stderr line does not name the file: $first"
        fi
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
