#!/bin/sh
# Installs the Debian packages vow needs, and only those that are missing.
# Run by `make run` and `make test`; safe to run again (it then does nothing).
# When it cannot install (not root, no apt-get), it prints the exact command to run.
set -eu

PACKAGES="cmake make gcc pkg-config libuv1-dev libcurl4-openssl-dev libhttp-parser-dev
libjansson-dev libcriterion-dev libxml2-utils openssl"
# Sanitizer builds in CI also use clang's runtime; only CI asks for it.
if [ "${CI:-}" = "true" ] || [ "${VOW_DEPS_EXTRA:-}" = "1" ]; then
    PACKAGES="$PACKAGES clang libclang-rt-14-dev valgrind"
fi

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: missing packages:$missing" >&2
    echo "deps: this is not a Debian machine; install their equivalents, then run make again" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "deps: missing packages:$missing" >&2
        echo "deps: run as root:  sudo sh -c '$cmd'" >&2
        exit 1
    fi
else
    SUDO=""
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; }; then
    echo "deps: installation failed; run:  sudo sh -c '$cmd'" >&2
    exit 1
fi
