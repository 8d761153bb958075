#!/usr/bin/env bash
# Install a built Tao-C tree into a temporary prefix and build a small program
# against it the two ways users do: the CMake package (Tao::tao and
# Tao::tao_static) and tao.pc (shared and --static). Then move the prefix and
# build again, which proves that both the package and tao.pc are relocatable.
#
# usage: run.sh <build dir> [C compiler] [sanitizer: '' | address | thread]
# Exit 0 pass, 1 fail, 77 skipped (a tool this test needs is missing).
set -euo pipefail

build=${1:?usage: run.sh <build dir> [C compiler] [sanitizer]}
cc=${2:-cc}
sanitize=${3:-}
here=$(cd "$(dirname "$0")" && pwd)

# A sanitizer build's library calls into the sanitizer runtime, so its users
# must be built with the same -fsanitize flags.
case "$sanitize" in
"") sanflags="" ;;
address) sanflags="-fsanitize=address,undefined" ;;
thread) sanflags="-fsanitize=thread" ;;
*)
    echo "run.sh: unknown sanitizer '$sanitize'" >&2
    exit 1
    ;;
esac

for tool in cmake pkg-config readelf "$cc"; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: skipped: $tool not found" >&2
        exit 77
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tao-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() { echo "== $*"; }
die() {
    echo "run.sh: FAILED: $*" >&2
    exit 1
}

# needs <binary> <soname prefix>: does the binary's dynamic section NEED it?
# (Not readelf | grep -q: with pipefail, grep quitting early fails the pipe.)
needs() {
    local dyn
    dyn=$(readelf -d "$1") || die "readelf -d $1"
    grep -q "(NEEDED).*\[$2" <<<"$dyn"
}

# Build and run the CMake consumer against the prefix $1 in build dir $2.
cmake_consumer() {
    local prefix=$1 bdir=$2
    step "cmake consumer against $prefix"
    cmake -S "$here" -B "$bdir" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_C_FLAGS="$sanflags" -DCMAKE_EXE_LINKER_FLAGS="$sanflags" >"$bdir.log" 2>&1 ||
        { cat "$bdir.log"; die "configuring the CMake consumer"; }
    cmake --build "$bdir" >>"$bdir.log" 2>&1 ||
        { cat "$bdir.log"; die "building the CMake consumer"; }
    needs "$bdir/consumer_shared" libtao.so || die "consumer_shared does not NEED libtao.so"
    ! needs "$bdir/consumer_static" libtao.so || die "consumer_static NEEDs libtao.so"
    "$bdir/consumer_shared" || die "consumer_shared (Tao::tao) failed"
    "$bdir/consumer_static" || die "consumer_static (Tao::tao_static) failed"
}

# Build and run main.c with flags from the tao.pc under the prefix $1.
pc_consumer() {
    local prefix=$1 out=$2 pcdir libdir libs
    pcdir=$(echo "$prefix"/lib*/pkgconfig)
    [ -f "$pcdir/tao.pc" ] || die "no tao.pc under $prefix"
    export PKG_CONFIG_PATH=$pcdir
    libdir=$(pkg-config --variable=libdir tao)
    [ "$(cd "$libdir" && pwd -P)" = "$(cd "$pcdir/.." && pwd -P)" ] ||
        die "tao.pc libdir $libdir is not the prefix's $pcdir/.."

    step "pkg-config consumer (shared) against $prefix"
    # shellcheck disable=SC2046 # pkg-config output is meant to be split
    "$cc" $sanflags -o "$out-shared" "$here/main.c" $(pkg-config --cflags --libs tao) ||
        die "building with pkg-config --libs tao"
    needs "$out-shared" libtao.so || die "the pkg-config shared consumer does not NEED libtao.so"
    LD_LIBRARY_PATH=$libdir "$out-shared" || die "the pkg-config shared consumer failed"

    step "pkg-config consumer (--static) against $prefix"
    # -ltao would pick libtao.so; the static archive sits beside it.
    libs=$(pkg-config --static --libs tao)
    libs=${libs/-ltao/-Wl,-Bstatic -ltao -Wl,-Bdynamic}
    # shellcheck disable=SC2046,SC2086
    "$cc" $sanflags -o "$out-static" "$here/main.c" $(pkg-config --cflags tao) $libs ||
        die "building with pkg-config --static --libs tao ($libs)"
    ! needs "$out-static" libtao.so || die "the pkg-config static consumer NEEDs libtao.so"
    "$out-static" || die "the pkg-config static consumer failed"
    unset PKG_CONFIG_PATH
}

step "cmake --install $build --prefix $tmp/prefix"
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; die "cmake --install"; }
[ -f "$tmp/prefix/include/tao.h" ] || die "tao.h was not installed"

cmake_consumer "$tmp/prefix" "$tmp/cmake1"
pc_consumer "$tmp/prefix" "$tmp/pc1"

step "move the prefix to $tmp/elsewhere/tao"
mkdir -p "$tmp/elsewhere"
mv "$tmp/prefix" "$tmp/elsewhere/tao"
rm -rf "$tmp/cmake1" "$tmp"/pc1-*
pc_consumer "$tmp/elsewhere/tao" "$tmp/pc2"
cmake_consumer "$tmp/elsewhere/tao" "$tmp/cmake2"

echo "run.sh: install consumer passed"
