#!/bin/sh
# What `make bench` needs beyond `make test`'s packages (scripts/deps.sh):
#   - wrk, the HTTP load generator of workload 10 (a Debian package);
#   - Bun and Deno, the two JavaScript runtimes beside Node in the suite's
#     columns: the binaries npm ships (@oven/bun-linux-x64,
#     @deno/linux-x64-glibc), installed with npm into <build dir>/js, never
#     system-wide: `bench/deps.sh build-bench` (make bench does that).
# Node.js is used when present (the Node column is skipped otherwise); it is
# not installed from here: the comparison is against Node 20 as you have it.
# Nothing here fails `make bench`: whatever cannot be installed is skipped by
# the suite with a note.
set -eu

BUILD_DIR=${1:-build-bench}
BUN_VERSION=${BENCH_BUN_VERSION:-1.4}    # npm ranges: the newest 1.4.x, 2.9.x
DENO_VERSION=${BENCH_DENO_VERSION:-2.9}

install_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    cmd="apt-get update && apt-get install -y --no-install-recommends wrk"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "bench deps: wrk is missing and this is not a Debian machine: install wrk," >&2
        echo "bench deps: or workload 10 (HTTP server under wrk) is skipped" >&2
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO=sudo
        else
            echo "bench deps: wrk is missing; run as root:  sudo sh -c '$cmd'" >&2
            echo "bench deps: (workload 10 is skipped until then)" >&2
            return 0
        fi
    else
        SUDO=""
    fi
    echo "bench deps: installing wrk"
    export DEBIAN_FRONTEND=noninteractive
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends wrk; }; then
        echo "bench deps: installing wrk failed (workload 10 is skipped); run:  sudo sh -c '$cmd'" >&2
    fi
}

# Bun and Deno from npm, into $BUILD_DIR/js/node_modules, where bench_suite
# looks for them (js_default in bench_suite.c). Only where npm has a build.
install_js_runtimes() {
    dir="$BUILD_DIR/js"
    bun="$dir/node_modules/@oven/bun-linux-x64/bin/bun"
    deno="$dir/node_modules/@deno/linux-x64-glibc/deno"
    [ -x "$bun" ] && [ -x "$deno" ] && return 0
    if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ] || ! ldd --version 2>&1 | grep -qi 'glibc\|gnu libc'; then
        echo "bench deps: Bun and Deno come from npm builds for x86-64 glibc Linux only:" >&2
        echo "bench deps: their columns are skipped (BENCH_BUN / BENCH_DENO name your own)" >&2
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "bench deps: npm is missing: the Bun and Deno columns are skipped" >&2
        return 0
    fi
    mkdir -p "$dir"
    echo "bench deps: installing Bun $BUN_VERSION and Deno $DENO_VERSION with npm into $dir"
    # --ignore-scripts: the packages are the binaries; nothing needs to run.
    if ! npm install --prefix "$dir" --no-save --no-audit --no-fund --ignore-scripts \
            "@oven/bun-linux-x64@$BUN_VERSION" "@deno/linux-x64-glibc@$DENO_VERSION" >/dev/null; then
        echo "bench deps: npm install failed: the Bun and Deno columns are skipped" >&2
        return 0
    fi
    chmod +x "$bun" "$deno" 2>/dev/null || true
}

install_wrk
install_js_runtimes
exit 0
