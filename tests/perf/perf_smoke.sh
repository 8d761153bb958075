#!/usr/bin/env bash
# usage: perf_smoke.sh <source dir> <build dir>
#
# The benchmark script's smoke mode, on the programs of this build: it must
# finish, print the table and write the report, the raw results, the summary
# and (with gnuplot) the chart. Exit 77 when io_uring is unavailable.
set -uo pipefail

src=${1:?usage}
build=${2:?usage}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The peers group too, where Redis's tools are installed (setup.sh does).
peers=()
if command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null &&
    command -v nginx >/dev/null && command -v wrk >/dev/null; then
    peers=(--peers)
fi
timeout -k 5 170 "$src/scripts/perf.sh" --smoke "${peers[@]}" --no-setup --bin "$build" \
    --out "$out/r" >"$out/stdout" 2>"$out/stderr"
rc=$?
cat "$out/stdout"
if [ $rc -eq 77 ]; then
    echo "SKIP: io_uring is not available here" >&2
    exit 77
fi
fail() {
    echo "FAIL: $*" >&2
    tail -20 "$out/stderr" >&2
    exit 1
}
[ $rc -eq 0 ] || fail "perf.sh --smoke exited $rc"
grep -q "^cell .*srv us/msg" "$out/stdout" || fail "no table printed"
for s in tao-inline tao-workers tao-epoll epoll uring; do
    grep -q "^pipelined  *$s " "$out/stdout" || fail "no pipelined row for $s"
done
for f in report.md results.jsonl summary.csv chart.gp; do
    [ -s "$out/r/$f" ] || fail "$f missing or empty"
done
grep -q "^## Targets" "$out/r/report.md" || fail "report.md has no targets"
[ "$(wc -l <"$out/r/results.jsonl")" -ge 15 ] || fail "results.jsonl has fewer than 15 runs"
grep -q "tao-epoll epoll\." "$out/r/report.md" || fail "the report does not say tao-epoll ran on epoll"
grep -q "epoll backend vs epoll" "$out/r/report.md" || fail "no target for the epoll backend"
grep -q "Tao-C inline vs the bare liburing echo" "$out/r/report.md" || fail "no target against the liburing echo"
if [ ${#peers[@]} -gt 0 ]; then
    grep -q "^## Peers" "$out/r/report.md" || fail "no peers section in the report"
    [ "$(wc -l <"$out/r/peers.jsonl")" -eq 10 ] || fail "peers.jsonl has not 10 runs"
    grep -q "http-c64: requests/s, Tao-C vs nginx" "$out/r/report.md" || fail "no nginx target"
fi
if command -v gnuplot >/dev/null; then
    [ -s "$out/r/chart.png" ] || fail "chart.png missing"
fi
echo "PASS"
