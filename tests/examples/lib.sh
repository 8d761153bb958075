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
