#!/bin/sh
# Layers point one way (src/README.md): a file in src/LAYER/ may include only
# headers of LAYER and of the layers it knows. Fails naming each offending line.
set -eu
src=${1:?usage: layering.sh SRC_DIR}
allowed() {
  case $1 in
    core) echo "core" ;;
    promise) echo "core promise" ;;
    cancel) echo "core promise cancel" ;;
    coro) echo "coro" ;;
    async) echo "core promise cancel coro async" ;;
    io) echo "core promise cancel coro async io" ;;
    *) echo "" ;;
  esac
}
bad=0
for dir in "$src"/*/; do
  layer=$(basename "$dir")
  ok=$(allowed "$layer")
  if [ -z "$ok" ]; then echo "layering: src/$layer/ is not a known layer (src/README.md)"; bad=1; continue; fi
  for f in "$dir"*.c "$dir"*.h; do
    [ -e "$f" ] || continue
    grep -n '^#include "' "$f" | while IFS= read -r line; do
      inc=$(printf '%s' "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
      [ "$inc" = vow.h ] && continue
      case $inc in
        */*) dep=${inc%%/*} ;;
        *) echo "layering: $f: '$inc' is not layer-qualified"; exit 1 ;;
      esac
      case " $ok " in
        *" $dep "*) ;;
        *) echo "layering: $f: the $layer layer includes '$inc' ($dep is above it)"; exit 1 ;;
      esac
    done || bad=1
  done
done
for f in "$src"/*.c "$src"/*.h; do
  [ -e "$f" ] && { echo "layering: $f lies outside every layer folder"; bad=1; }
done
[ "$bad" -eq 0 ] && echo "layering: every include points down"
exit "$bad"
