#!/usr/bin/env bash
# usage: run_restart.sh CASE TAO-ECHO-SERVER
#
# Restarts that refuse no connection: a storm of short connections
# (restart_storm.py: connect, echo one frame, check it, close) runs while
# the echo server is replaced GENERATIONS times, and must see nothing but
# validated echoes: no connection refused, reset or unanswered.
#
#   activate  systemd-socket-activate binds the port and starts the first
#             server with it as descriptor 3 (LISTEN_FDS) on the storm's
#             first connection; each later generation takes the socket
#             from its predecessor by hand-over (--handover).
#   systemd   the socket is held outside the server, as systemd holds a
#             socket unit's (socket_holder.py), and each generation is
#             stopped (SIGTERM, a graceful stop) before the next starts
#             with the socket as descriptor 3 (LISTEN_FDS), as `systemctl
#             restart` does: in between, connections wait in its queue.
#   handover  the first server binds its own sockets (two loops, two
#             SO_REUSEPORT sockets); each later generation takes them by
#             hand-over.
#
# Each old server must say it handed over and exit 0 by itself (a graceful
# stop), and each new one that it took over. Exits 0 on success, 1 on
# failure, 77 when a tool is missing or io_uring is unavailable.
set -u

case_name=${1:?usage: run_restart.sh CASE TAO-ECHO-SERVER}
server=${2:?usage: run_restart.sh CASE TAO-ECHO-SERVER}
generations=${GENERATIONS:-4}

label=restart-$case_name
# shellcheck source=tests/examples/lib.sh
. "$(dirname "$0")/lib.sh"
storm=$(dirname "$0")/restart_storm.py
sock=$tmp/handover.sock

command -v python3 >/dev/null || { echo "SKIP: python3 is not installed" >&2; exit 77; }

progress() {
    cat "$tmp/progress" 2>/dev/null || echo 0
}

progress_at_least() {
    [ "$(progress)" -ge "$1" ]
}

# wait_progress N: the storm has validated N more echoes (within 60 s).
wait_progress() {
    until_ok 600 progress_at_least $(($(progress) + $1))
}

exited() {
    ! kill -0 "$1" 2>/dev/null
}

# wait_line FILE TEXT: FILE says TEXT within 30 s; else the server that
# writes it died (skip where io_uring is refused) or hangs.
wait_line() {
    until_ok 300 grep -q "$2" "$1" && return 0
    skip_if_no_uring "${1%.out}.err"
    fail "no \"$2\" in $(basename "$1") after 30 s"
}

start_storm() {
    rm -f "$tmp/stop"
    python3 "$storm" "$1" "$tmp/stop" "$tmp/progress" 4 >"$tmp/storm.log" 2>&1 &
    storm_pid=$!
    pids+=("$storm_pid")
}

stop_storm() {
    touch "$tmp/stop"
    until_ok 600 exited "$storm_pid" || fail "the storm did not end"
    wait "$storm_pid"
    local rc=$?
    cat "$tmp/storm.log"
    [ "$rc" -eq 0 ] || fail "the storm saw failures"
}

# replace PID N: start generation N by hand-over, and see PID hand over
# and exit 0. Sets gen_pid.
replace() {
    local old=$1 n=$2
    "$server" --handover "$sock" --loops 2 >"$tmp/gen$n.out" 2>"$tmp/gen$n.err" &
    gen_pid=$!
    pids+=("$gen_pid")
    wait_line "$tmp/gen$n.out" "took over from its predecessor"
    until_ok 300 exited "$old" || fail "generation $((n - 1)) did not stop after the hand-over"
    wait "$old"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "generation $((n - 1)) exited $rc"
    wait_progress 50 || fail "no progress after generation $n took over"
    echo "generation $n serves ($(progress) echoes so far)"
}

run_generations() {
    local pid=$1
    wait_progress 50 || fail "no echo from the first generation"
    for ((n = 2; n <= generations + 1; n++)); do
        replace "$pid" "$n"
        grep -q "handed over to its successor" "$tmp/gen$((n - 1)).out" ||
            fail "generation $((n - 1)) did not say it handed over"
        pid=$gen_pid
    done
    stop_storm
    kill -TERM "$pid"
    until_ok 300 exited "$pid" || fail "the last generation ignored SIGTERM"
    wait "$pid" || fail "the last generation exited $?"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case_activate() {
    command -v systemd-socket-activate >/dev/null ||
        { echo "SKIP: systemd-socket-activate is not installed" >&2; exit 77; }
    local port pid
    # The tool takes no port 0: try free ports until one is still free.
    for ((try = 0; try < 10; try++)); do
        port=$(free_port)
        : >"$tmp/gen1.err"
        systemd-socket-activate -l "127.0.0.1:$port" "$server" --handover "$sock" --loops 2 \
            >"$tmp/gen1.out" 2>"$tmp/gen1.err" &
        pid=$!
        pids+=("$pid")
        until_ok 100 grep -q "Listening on" "$tmp/gen1.err" && break
        exited "$pid" || fail "systemd-socket-activate neither listens nor exits"
    done
    grep -q "Listening on 127.0.0.1:$port" "$tmp/gen1.err" || fail "systemd-socket-activate did not listen"
    # The storm's first connection makes the tool exec the server in place,
    # with the socket as descriptor 3: the first generation.
    start_storm "$port"
    wait_line "$tmp/gen1.out" "listening on 127.0.0.1:$port"
    run_generations "$pid"
}

case_handover() {
    "$server" --listen 127.0.0.1:0 --handover "$sock" --loops 2 >"$tmp/gen1.out" \
        2>"$tmp/gen1.err" &
    local pid=$!
    pids+=("$pid")
    wait_line "$tmp/gen1.out" "listening on"
    local port
    port=$(sed -n 's/.* listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/gen1.out")
    start_storm "$port"
    run_generations "$pid"
}

# holder_done PID TEXT: the holder's log says TEXT, or the holder is gone.
holder_done() {
    grep -q "$2" "$tmp/holder.log" || exited "$1"
}

case_systemd() {
    python3 "$(dirname "$0")/socket_holder.py" "$tmp" "$generations" "$server" --loops 2 \
        >"$tmp/holder.log" 2>&1 &
    local holder=$!
    pids+=("$holder")
    until_ok 300 test -s "$tmp/port" || fail "the holder does not listen"
    start_storm "$(cat "$tmp/port")"
    local last="generation $((generations + 1)) serves"
    until_ok 3000 holder_done "$holder" "$last" || fail "not every generation served"
    if ! grep -q "$last" "$tmp/holder.log"; then
        skip_if_no_uring "$tmp/gen1.err"
        fail "the holder failed"
    fi
    grep -q "listening on 127.0.0.1:$(cat "$tmp/port")\$" "$tmp/gen1.out" ||
        fail "the server did not listen on the socket it was given"
    stop_storm
    touch "$tmp/storm.done"
    until_ok 600 exited "$holder" || fail "the holder did not end"
    wait "$holder" || fail "the holder failed"
    cat "$tmp/holder.log"
}

case "$case_name" in
activate | handover | systemd) "case_$case_name" ;;
*) fail "unknown case" ;;
esac
echo "ok: restart $case_name"
