#!/usr/bin/env bash
# usage: loadgen_faults.sh <tao-loadgen> <tao-faulty-echo> <tao-echo-server>
#
# tao-loadgen must notice every fault tao-faulty-echo makes, name it with the
# right counter (and not with the others: they are counted apart), and exit
# non-zero; a stalled server too. With --allow-lost a closed connection is
# reported as lost and is not an error, while every other fault still is. Against the real Tao-C echo server it must
# report no error at all and exit 0. Exit 77 when io_uring is unavailable.
set -uo pipefail

loadgen=${1:?usage}
faulty=${2:?usage}
echo_server=${3:?usage}
label=loadgen_faults
# shellcheck source=tests/examples/lib.sh
. "$(dirname "$0")/../examples/lib.sh"

# Start a server on a free port: sets pid and port.
start() {
    start_listening "$1" "$tmp/srv.log" "$tmp/srv.log" "$@"
    pid=$started_pid
    port=$started_port
}

stop() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
}

# load <loadgen args...>: run against the current server; sets rc.
load() {
    timeout -k 5 60 "$loadgen" --connect "127.0.0.1:$port" "$@" >"$tmp/load.out" 2>&1
    rc=$?
    [ $rc -ne 77 ] || { echo "SKIP: io_uring is not available here" >&2; exit 77; }
    cat "$tmp/load.out"
}

# count <name>: the value the report gives for that error counter.
count() {
    sed -n "s/.*errors .* $1 \([0-9][0-9]*\).*/\1/p" "$tmp/load.out"
}

# fault <fault> <counter that must be > 0> <counters that must stay 0...>
fault() {
    local f=$1 hit=$2
    shift 2
    echo "== --fault $f"
    start "$faulty" --fault "$f" --nth 100
    load -c 4 -d 4 --duration 1 --warmup 0.2
    stop
    [ $rc -ne 0 ] || fail "$f: exit status 0 despite the fault"
    [ "$(count "$hit")" -gt 0 ] 2>/dev/null || fail "$f: '$hit' is not counted"
    for other in "$@"; do
        [ "$(count "$other")" = 0 ] || fail "$f: '$other' counted too"
    done
}

fault flip corrupted lost duplicated reordered closed stalled
fault drop lost corrupted duplicated reordered closed stalled
fault reorder reordered corrupted lost duplicated closed stalled
fault close closed corrupted duplicated reordered

# --allow-lost: the closed connection is reported as lost, not as an error,
# and the three others are still checked (a flipped byte still fails).
echo "== --fault close, --allow-lost"
start "$faulty" --fault close --nth 100
load -c 4 -d 4 --duration 1 --warmup 0.2 --allow-lost --json "$tmp/lost.json"
stop
[ $rc -eq 0 ] || fail "close, --allow-lost: exit status $rc"
[ "$(count closed)" = 0 ] || fail "close, --allow-lost: counted as closed"
grep -q "lost conns   1 closed by the server" "$tmp/load.out" || fail "close, --allow-lost: not 1 lost"
grep -q '"lost_conns":1,' "$tmp/lost.json" || fail "close, --allow-lost: JSON has no lost_conns 1"
grep -q '"ok":true' "$tmp/lost.json" || fail "close, --allow-lost: JSON says not ok"
start "$faulty" --fault flip --nth 100
load -c 4 -d 4 --duration 1 --warmup 0.2 --allow-lost
stop
[ $rc -ne 0 ] || fail "flip, --allow-lost: exit status 0 despite the fault"

echo "== a stalled server: a dropped reply with one frame in flight"
start "$faulty" --fault drop --nth 50
load -c 1 -d 1 --duration 5 --warmup 0 --stall 0.5
stop
[ $rc -ne 0 ] || fail "stall: exit status 0"
[ "$(count stalled)" -gt 0 ] 2>/dev/null || fail "stall: not reported"

echo "== the real Tao-C echo server: no error"
start "$echo_server" --workers 0 --loops 1
load -c 4 -d 4 --duration 1 --warmup 0.2 --server-pid "$pid"
stop
[ $rc -eq 0 ] || fail "tao-echo-server: exit status $rc"
for c in corrupted lost duplicated reordered closed stalled connect send; do
    [ "$(count "$c")" = 0 ] || fail "tao-echo-server: '$c' is not 0"
done
grep -q "server CPU .* us/msg" "$tmp/load.out" || fail "no server CPU per message"
echo "PASS"
