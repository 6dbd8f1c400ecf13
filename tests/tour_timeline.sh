#!/bin/sh
# The tour's timeline: section 1 drawn as SVG must be well-formed XML with a
# lane for every request (two sequential, two parallel) and a time axis.
set -eu
tour=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$tour" 1 --svg "$out/timeline.svg" --trace "$out/trace.json" >/dev/null
xmllint --noout "$out/timeline.svg"
xmllint --noout "$out/trace.json" 2>/dev/null && { echo "trace.json should be JSON, not XML"; exit 1; }
requests=$(grep -c '<title>/user\|<title>/posts' "$out/timeline.svg")
[ "$requests" -ge 4 ] || { echo "expected 4 request spans, found $requests"; exit 1; }
grep -q '>0 ms</text>' "$out/timeline.svg" || { echo "no time axis"; exit 1; }
echo "timeline.svg is well-formed, with $requests request spans"

# The whole tour reads in a terminal 80 columns wide.
"$tour" --svg "$out/all.svg" > "$out/tour.txt"
widest=$(awk '{ n = length($0); if (n > w) w = n } END { print w + 0 }' "$out/tour.txt")
[ "$widest" -le 80 ] || { echo "a line of the tour is $widest columns wide:"; awk 'length($0) > 80' "$out/tour.txt"; exit 1; }
echo "the tour's widest line is $widest columns"
