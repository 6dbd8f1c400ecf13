#!/bin/sh
# What `make bench` needs beyond `make test`'s packages (scripts/deps.sh):
# wrk, the HTTP load generator of workload 10. Only `make bench` runs this;
# the tests never install it (CI's short round of the suite skips workload 10 without wrk).
# Node.js is used when present (the Node column is skipped otherwise); it is
# not installed from here: the comparison is against Node 20 as you have it.
set -eu

command -v wrk >/dev/null 2>&1 && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends wrk"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench deps: wrk is missing and this is not a Debian machine: install wrk," >&2
    echo "bench deps: or workload 10 (HTTP server under wrk) is skipped" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "bench deps: wrk is missing; run as root:  sudo sh -c '$cmd'" >&2
        echo "bench deps: (workload 10 is skipped until then)" >&2
        exit 0
    fi
else
    SUDO=""
fi
echo "bench deps: installing wrk"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends wrk; }; then
    echo "bench deps: installing wrk failed (workload 10 is skipped); run:  sudo sh -c '$cmd'" >&2
fi
exit 0
