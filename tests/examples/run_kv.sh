#!/usr/bin/env bash
# usage: run_kv.sh TAO-KV-SERVER
#
# tao-kv-server against the real Redis tools, over 127.0.0.1:
#   - redis-cli runs every supported command against tao-kv-server and
#     against a redis-server this script starts: the same output;
#   - the same requests, pipelined in one write (arrays and inline forms),
#     get byte-identical replies from both (kv_compare.py);
#   - malformed requests get Redis's protocol error and close only their
#     own connection;
#   - redis-benchmark (-t ping,set,get,incr,mset -n 200000 -P 16 -c 50)
#     completes without an error, with handlers inline and on workers.
# Exit 0 on success, 1 on failure, 77 (with the reason) when the Redis
# tools are not installed (scripts/setup.sh installs them).
set -u

kv=${1:?usage: run_kv.sh TAO-KV-SERVER}
here=$(cd "$(dirname "$0")" && pwd)
for t in redis-cli redis-server redis-benchmark python3; do
    if ! command -v "$t" >/dev/null; then
        echo "SKIP: $t is not installed (scripts/setup.sh installs it)" >&2
        exit 77
    fi
done

label=kv
# shellcheck source=tests/examples/lib.sh
. "$here/lib.sh"

# start_kv ARGS...: tao-kv-server on a free port; sets kv_pid and kv_port.
start_kv() {
    start_listening tao-kv-server "$tmp/kv.log" "$tmp/kv.log" "$kv" "$@"
    kv_pid=$started_pid
    kv_port=$started_port
}

stop_kv() {
    kill -TERM "$kv_pid"
    until_ok 100 bash -c "! kill -0 $kv_pid 2>/dev/null" || fail "tao-kv-server ignored SIGTERM"
    wait "$kv_pid"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "tao-kv-server exited $rc after SIGTERM"
}

# A redis-server of our own, on a port the kernel just said was free.
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
    --daemonize no >"$tmp/redis.log" 2>&1 &
pids+=($!)
until_ok 100 redis-cli -p "$redis_port" PING >/dev/null 2>&1 || fail "redis-server did not start"

# ---- redis-cli: what a user sees ------------------------------------------
start_kv --workers 0 --loops 1
cli_script=(
    "FLUSHALL" "PING" "PING hello" "ECHO 'two words'" "SET k v" "GET k" "GET missing"
    "SET k v2 XX" "SET k v3 NX" "SET n1 v NX" "SET e v EX 1000" "SET p v PX 5000000" "TTL k"
    "TTL missing" "SET bad v EX 0" "SET bad v EX x" "SET bad v FOO" "INCR c" "INCR c" "INCR k"
    "SET big 9223372036854775807" "INCR big" "MSET a 1 b 2 c 3" "MSET a" "MGET a b missing c"
    "EXISTS a b missing a" "DEL a missing b" "EXISTS a b" "EXPIRE c 100" "EXPIRE missing 100"
    "EXPIRE c x" "EXPIRE c -1" "EXISTS c" "DBSIZE" "GET" "SET k" "NOSUCH a b" "nosuch"
    "FLUSHALL" "DBSIZE" "FLUSHALL ASYNC" "FLUSHALL NOW"
)
for line in "${cli_script[@]}"; do
    eval "set -- $line"
    want=$(redis-cli -p "$redis_port" "$@" 2>&1)
    got=$(redis-cli -p "$kv_port" "$@" 2>&1)
    [ "$got" = "$want" ] || fail "redis-cli $line: tao-kv-server said '$got', redis-server '$want'"
done
echo "redis-cli: ${#cli_script[@]} commands, the same output from both servers"

# ---- the bytes, pipelined -------------------------------------------------
python3 "$here/kv_compare.py" "$kv_port" "$redis_port" || fail "replies differ (kv_compare.py)"
python3 "$here/replay_corpus.py" "$kv_port" "$here/../fuzz/corpus/resp" '*1\r\n$4\r\nPING\r\n' \
    '+PONG' || fail "the RESP fuzz corpus harmed another connection"
stop_kv

# ---- redis-benchmark, both handler modes ----------------------------------
for workers in 0 2; do
    start_kv --workers "$workers" --loops 2
    timeout -k 5 300 redis-benchmark -p "$kv_port" -t ping,set,get,incr,mset -n 200000 -P 16 \
        -c 50 -q >"$tmp/bench.log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || fail "redis-benchmark (workers $workers) exited $rc"
    if grep -qi "error\|warning" "$tmp/bench.log"; then
        fail "redis-benchmark (workers $workers) reported an error"
    fi
    # One line per test: PING_INLINE, PING_MBULK, SET, GET, INCR, MSET.
    [ "$(grep -c "requests per second" "$tmp/bench.log")" -eq 6 ] ||
        fail "redis-benchmark (workers $workers) did not finish every test"
    echo "redis-benchmark, workers $workers:"
    sed 's/^/  /' "$tmp/bench.log" | tr '\r' '\n' | grep "requests per second"
    stop_kv
done
echo "ok: kv"
