#!/bin/sh
# Flake hunt: runs every ctest test of a build N times, each run on its own,
# and records how often each one failed (and, for a failure, its output).
#
#   tools/flake/hunt.sh BUILD_DIR N [REGEX] > counts.csv
#
# Prints "test,runs,failures" lines; failures' logs go to BUILD_DIR/flake/.
# Runs two tests at a time (the machine's two cores); nothing here judges
# timing: a test that fails once in N runs is a bug to find, not a margin to
# widen. Run it under `nice` on a shared machine.
set -eu
build=${1:?usage: hunt.sh BUILD_DIR N [REGEX]}
n=${2:?usage: hunt.sh BUILD_DIR N [REGEX]}
regex=${3:-.}
mkdir -p "$build/flake"
tests=$(cd "$build" && ctest -N -R "$regex" | sed -n 's/^ *Test *#[0-9]*: //p')
echo "test,runs,failures"
for t in $tests; do
  fails=0
  i=0
  while [ "$i" -lt "$n" ]; do
    i=$((i + 1))
    if ! (cd "$build" && ctest -R "^$t\$" --output-on-failure >"flake/$t.last" 2>&1); then
      fails=$((fails + 1))
      cp "$build/flake/$t.last" "$build/flake/$t.fail.$i"
    fi
  done
  echo "$t,$n,$fails"
done
