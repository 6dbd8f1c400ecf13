#!/bin/sh
# fault_sites.sh — which allocation sites of src/ the fault-injection tests fail.
#
#   tools/coverage/fault_sites.sh [-b BUILD] [-r PATHS] [-q] [TEST ...]
#
# Runs each test binary (default: test_faults) of BUILD/tests (default:
# build) with VOW_FAULT_SITES set: tests/faults.h then writes the call stack
# of the allocation each run fails first (under FAULT_FROM every later one
# is the first of another run). Each stack is mapped to lines of src/ with
# addr2line, and every allocation site of src/ — a line that calls
# vow__malloc, vow__calloc, vow__realloc, vow__strdup, vow__malloc_huge,
# vow__pool_alloc or vow__pool_alloc_slow, the wrappers' own inner calls
# included — counts as failed in a mode (FAULT_ONCE, FAULT_FROM) when it is
# on one of that mode's stacks. Prints, per file, sites failed once / failed
# under sustained out-of-memory / total, then the sites never failed.
#
# -r PATHS  space-separated files or folders of src/ whose every site must be
#           failed in both modes: exits 1 if one is not (the ctest uses it).
# -q        prints only the sites never failed (and the verdict of -r).
#
# Build with -DCMAKE_BUILD_TYPE=Debug (-O0: nothing inlined, each call has
# its own line). Some sites only one kind of build can fail: a call of
# vow__pool_alloc takes memory of its own only under AddressSanitizer (else
# it carves a chunk), and pool.c/pool.h mark their lines "fault site: ASan
# only" or "fault site: not ASan". Such a site is counted under "n/a" in a
# build that cannot fail it, and not required by -r: run the script on a
# Debug and on an ASan build (-DVOW_SANITIZE=address,undefined) to see all.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
required=""
quiet=0
while getopts b:r:q opt; do
    case $opt in
        b) build=$OPTARG ;;
        r) required=$OPTARG ;;
        q) quiet=1 ;;
        *) echo "usage: $0 [-b BUILD] [-r PATHS] [-q] [TEST ...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- test_faults

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
: >"$tmp/hits"

for t in "$@"; do
    bin=$build/tests/$t
    [ -x "$bin" ] || { echo "fault_sites: no test binary $bin" >&2; exit 2; }
    if ! VOW_FAULT_SITES=$tmp/stacks.$t "$bin" --jobs 1 >"$tmp/out.$t" 2>&1; then
        cat "$tmp/out.$t" >&2
        echo "fault_sites: $t failed" >&2
        exit 1
    fi
    [ -s "$tmp/stacks.$t" ] || { echo "fault_sites: $t failed no allocation" >&2; continue; }
    link=$(nm "$bin" | awk '$3 == "fault_realloc" { print $1; exit }')
    [ -n "$link" ] || { echo "fault_sites: $bin has no fault_realloc" >&2; exit 2; }
    if nm "$bin" | grep -q __asan_init; then asan=1; else asan=0; fi
    # "mode offset" for every frame: offset = address - load address - 1 (a
    # return address points after its call; one byte back is inside it).
    awk -v link="$link" '
        function hex(s,   i, n, c) {
            n = 0; s = tolower(s)
            for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return n
        }
        { load = hex($2) - hex(link)
          for (i = 3; i <= NF; i++) printf "%s %x\n", $1, hex($i) - load - 1 }
    ' "$tmp/stacks.$t" | sort -u >"$tmp/frames.$t"
    awk '{ print "0x" $2 }' "$tmp/frames.$t" | addr2line -e "$bin" >"$tmp/lines.$t"
    # "mode src/file.c:line"
    paste -d' ' "$tmp/frames.$t" "$tmp/lines.$t" |
        awk -v root="$root/" '{ f = $3; sub(/ .*/, "", f); if (index(f, root) == 1) f = substr(f, length(root) + 1)
                                if (f ~ /^src\//) print $1, f }' >>"$tmp/hits"
done
sort -u "$tmp/hits" -o "$tmp/hits"

# The sites: calls of the allocation functions, not their declarations,
# definitions or mentions in comments.
(cd "$root" && grep -rnE '\<vow__(malloc|calloc|realloc|strdup|malloc_huge|pool_alloc|pool_alloc_slow)\(' src \
    --include='*.c' --include='*.h') |
    grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)' |
    grep -vE '^[^:]+:[0-9]+:(static inline )?(void|char) \*' >"$tmp/sites"

awk -v quiet="$quiet" -v required="$required" -v asan="${asan:-0}" '
    FNR == NR { hit[$1 " " $2] = 1; next }
    {
        split($0, p, ":"); file = p[1]; site = p[1] ":" p[2]
        code = substr($0, length(site) + 2); sub(/^[[:space:]]+/, "", code)
        if (!(file in total)) { order[n++] = file; total[file] = 0; na[file] = 0 }
        asan_only = code ~ /fault site: ASan only/ || (code ~ /vow__pool_alloc\(/ && file != "src/core/pool.h")
        if ((asan_only && !asan) || (code ~ /fault site: not ASan/ && asan)) { na[file]++; NA++; next }
        total[file]++
        o = (("once " site) in hit); f = (("from " site) in hit)
        once[file] += o; from[file] += f
        if (!o || !f) missed[++nm] = sprintf("%-28s %-9s %s", site, (o ? "" : "once") (o || f ? "" : ",") (f ? "" : "from"), code)
        if (!o || !f) missfile[nm] = file
    }
    END {
        if (!quiet) {
            printf "%s build: sites failed once, failed under sustained out-of-memory (from), sites; n/a: this build cannot fail them\n", asan ? "ASan" : "plain"
            printf "%-28s %5s %5s %5s %5s\n", "file", "once", "from", "sites", "n/a"
            for (i = 0; i < n; i++) {
                fl = order[i]; T += total[fl]; O += once[fl]; F += from[fl]
                printf "%-28s %5d %5d %5d %5d\n", fl, once[fl], from[fl], total[fl], na[fl]
            }
            printf "%-28s %5d %5d %5d %5d\n", "all", O, F, T, NA
            if (nm) print "\nnever failed (site, mode missing, code):"
        }
        for (i = 1; i <= nm; i++) print missed[i]
        bad = 0
        if (required != "") {
            np = split(required, req, " ")
            for (i = 1; i <= nm; i++)
                for (k = 1; k <= np; k++)
                    if (index(missfile[i], req[k]) == 1) { bad++; break }
            printf "\n%d site(s) of %s never failed in some mode\n", bad, required
        }
        exit bad ? 1 : 0
    }
' "$tmp/hits" "$tmp/sites"
