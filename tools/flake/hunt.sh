#!/bin/sh
# Flake hunt: runs every ctest test of a build over and over and counts, per
# test, how many runs failed.
#
#   tools/flake/hunt.sh BUILD_DIR ROUNDS [REGEX] > counts.csv
#
# A round runs every test (matching REGEX) once, through ctest, HUNT_JOBS at a
# time (default: the number of CPUs). Rounds go on until ROUNDS are done or,
# when HUNT_SECONDS is set, until that many seconds have passed (the round
# under way is finished). Every test's result of every round is appended to
# BUILD_DIR/flake/results.csv ("round,test,result"), so an interrupted hunt
# still counts what it ran and a later hunt adds to it; a round with a failure
# keeps its whole output in BUILD_DIR/flake/round-K.log.
#
# Prints "test,runs,failures" for every test in results.csv, worst first, and
# exits non-zero when any run failed. Nothing here judges timing: a test that
# fails once in a thousand runs is a bug to find, not a margin to widen. Run it
# under `nice` on a shared machine.
set -eu
build=${1:?usage: hunt.sh BUILD_DIR ROUNDS [REGEX]}
rounds=${2:?usage: hunt.sh BUILD_DIR ROUNDS [REGEX]}
regex=${3:-.}
jobs=${HUNT_JOBS:-$(nproc 2>/dev/null || echo 2)}
budget=${HUNT_SECONDS:-0}
build=$(cd "$build" && pwd)
dir=$build/flake
mkdir -p "$dir"
results=$dir/results.csv
[ -f "$results" ] || echo "round,test,result" >"$results"

# Rounds are numbered on from the last one recorded.
first=$(awk -F, 'NR > 1 && $1 > m { m = $1 } END { print m + 0 }' "$results")
start=$(date +%s)
k=$first
while [ $((k - first)) -lt "$rounds" ]; do
  if [ "$budget" -gt 0 ] && [ $(($(date +%s) - start)) -ge "$budget" ]; then break; fi
  k=$((k + 1))
  log=$dir/round-$k.log
  (cd "$build" && ctest -j "$jobs" -R "$regex" --output-on-failure) >"$log" 2>&1 || true
  # ctest's summary lines: " 7/61 Test #26: test_server ....   Passed    1.25 sec"
  awk -v k="$k" '
    /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / {
      name = $4; result = ($0 ~ / Passed +[0-9.]+ sec/) ? "pass" : "fail"
      print k "," name "," result
    }' "$log" >"$dir/round.csv"
  if [ ! -s "$dir/round.csv" ]; then
    echo "hunt: round $k ran no test (see $log)" >&2
    exit 2
  fi
  cat "$dir/round.csv" >>"$results"
  grep -q ',fail$' "$dir/round.csv" || rm -f "$log"
done
rm -f "$dir/round.csv"

echo "test,runs,failures"
awk -F, 'NR > 1 { runs[$2]++; if ($3 == "fail") fails[$2]++ }
         END { for (t in runs) print t "," runs[t] "," fails[t] + 0 }' "$results" |
  sort -t, -k3,3nr -k1,1
! grep -q ',fail$' "$results"
