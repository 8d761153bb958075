# Shared by the example test scripts (sourced): a temporary directory that
# goes away with every process the script started, failing with the tail
# of each log, and waiting for a condition.
#
# A script sets $label (what fail names) and appends the PIDs it starts to
# pids; logs go in $tmp as *.out, *.err or *.log.

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL (${label:-test}): $*" >&2
    for f in "$tmp"/*.out "$tmp"/*.err "$tmp"/*.log; do
        [ -s "$f" ] && { echo "--- $(basename "$f")"; tail -n 20 "$f"; } >&2
    done
    exit 1
}

# until_ok TENTHS CMD...: run CMD every 0.1 s until it succeeds, at most
# TENTHS times.
until_ok() {
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# start_listening NAME LOG ERR CMD...: start CMD with --listen 127.0.0.1:0,
# its stdout in LOG and its stderr in ERR (which may be LOG), and wait until
# it says where it listens: sets started_pid and started_port, and adds the
# PID to pids. One refused io_uring skips the test; one that exits, or is
# not listening after 10 s, fails it.
start_listening() {
    local name=$1 log=$2 err=$3 i
    shift 3
    : >"$log" # not the port of the previous server: the child truncates it only once it runs
    if [ "$err" = "$log" ]; then
        "$@" --listen 127.0.0.1:0 >"$log" 2>&1 &
    else
        "$@" --listen 127.0.0.1:0 >"$log" 2>"$err" &
    fi
    started_pid=$!
    pids+=("$started_pid")
    started_port=
    for ((i = 0; i < 100; i++)); do
        started_port=$(sed -n 's/.* listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log")
        [ -n "$started_port" ] && return 0
        if ! kill -0 "$started_pid" 2>/dev/null; then
            skip_if_no_uring "$err"
            fail "$name did not start"
        fi
        sleep 0.1
    done
    fail "$name is not listening after 10 s"
}

# A program that did not start because io_uring is refused here (its log
# says so): skip, with the reason. Not when the script is testing exactly
# that (no_skip=1).
skip_if_no_uring() {
    if [ "${no_skip:-0}" != 1 ] && grep -q "io_uring" "$1"; then
        echo "SKIP: io_uring is not available here:" >&2
        cat "$1" >&2
        exit 77
    fi
}
