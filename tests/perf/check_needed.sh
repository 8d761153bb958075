#!/usr/bin/env bash
# usage: check_needed.sh <binary> <library>
# Pass when the binary's dynamic section NEEDs <library> (a soname prefix such
# as libjemalloc), so the program really runs on it rather than on the libc
# allocator. A linker with --as-needed drops libraries silently; this catches it.
set -euo pipefail

bin=${1:?usage: check_needed.sh <binary> <library>}
lib=${2:?usage: check_needed.sh <binary> <library>}

dyn=$(readelf -d "$bin")
if grep -q "(NEEDED).*\[$lib" <<<"$dyn"; then
    echo "$bin NEEDs $(grep -m1 -o "\[${lib}[^]]*\]" <<<"$dyn")"
    exit 0
fi
echo "check_needed.sh: $bin does not NEED $lib; it needs:" >&2
grep "(NEEDED)" <<<"$dyn" >&2 || true
exit 1
