#!/bin/sh
# Differential test: fresh random scenarios, expected output from Node.js, checked against RUNNER.
#
#   sh tools/oracle/differential.sh RUNNER [COUNT] [SEED]
#
# COUNT defaults to 300; SEED (letters, digits, _) defaults to one derived from the date and
# time, and is printed first, so a failure can be reproduced with the same SEED:
#   node tools/oracle/generate.js --seed SEED --count COUNT --out DIR --prefix diff
# Exits with check.sh's status (0 only when every case passes); 2 on a usage or generator error.
set -u
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: sh tools/oracle/differential.sh RUNNER [COUNT] [SEED]" >&2
    exit 2
fi
RUNNER=$1
COUNT=${2:-300}
SEED=${3:-$(date -u +%Y%m%d%H%M%S)}
here=$(cd "$(dirname "$0")" && pwd)
echo "differential seed: $SEED"
dir=$(mktemp -d "${TMPDIR:-/tmp}/vow-differential.XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
node "$here/generate.js" --seed "$SEED" --count "$COUNT" --out "$dir" --prefix diff --quiet || exit 2
sh "$here/check.sh" "$RUNNER" "$dir"
