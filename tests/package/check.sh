#!/bin/sh
# Installs vow into a scratch prefix, then builds the lesson's example 06
# against it twice — with pkg-config and with CMake's find_package — and
# checks that both print what Node.js prints: 1 4 3 2.
set -eu
build=$1
src=$2
flags=${3:-}   # the build's sanitizer flags, which a consumer must share
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*/pkgconfig | head -n 1)
example="$src/examples/06_microtasks_vs_macrotasks.c"
expected=$(printf '1\n4\n3\n2')

PKG_CONFIG_PATH="$libdir" cc -std=c11 -Wall -Werror $flags -o "$work/by-pkg-config" "$example" \
  $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs vow)
[ "$("$work/by-pkg-config")" = "$expected" ] || { echo "pkg-config build printed the wrong thing"; exit 1; }

cmake -S "$src/tests/package" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DEXAMPLE="$example" -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$work/consumer" >/dev/null
[ "$("$work/consumer/consumer")" = "$expected" ] || { echo "find_package build printed the wrong thing"; exit 1; }
echo "installed vow works with pkg-config and find_package"
