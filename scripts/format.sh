#!/usr/bin/env bash
# Apply .clang-format to every C file of the project, or with --check only
# report the files that differ (exit 1), as CI would.
#
#   scripts/format.sh [--check]
set -euo pipefail

cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
"") ;;
--check) check=1 ;;
*)
    echo "usage: scripts/format.sh [--check]" >&2
    exit 2
    ;;
esac

clang_format=
for c in clang-format clang-format-14 clang-format-15 clang-format-16; do
    if command -v "$c" >/dev/null; then
        clang_format=$c
        break
    fi
done
if [ -z "$clang_format" ]; then
    echo "format.sh: clang-format not found (apt-get install clang-format)" >&2
    exit 2
fi

dirs=()
for d in api engine codec examples tests perf; do
    [ -d "$d" ] && dirs+=("$d")
done
mapfile -d '' files < <(find "${dirs[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
if [ ${#files[@]} -eq 0 ]; then
    echo "format.sh: no C files"
    exit 0
fi

if [ $check -eq 1 ]; then
    if "$clang_format" --dry-run -Werror "${files[@]}"; then
        echo "format.sh: ${#files[@]} files formatted"
    else
        echo "format.sh: files above differ from .clang-format; run scripts/format.sh" >&2
        exit 1
    fi
else
    "$clang_format" -i "${files[@]}"
    echo "format.sh: formatted ${#files[@]} files"
fi
