#!/usr/bin/env bash
# The benchmark: Tao-C's echo server, with handlers inline and on a worker,
# and inline on the epoll backend, against two baselines written by hand, an
# epoll echo server and a bare liburing one (the ceiling), over a matrix of
# loads.
#
#   scripts/perf.sh            quick: about two and a half minutes
#   scripts/perf.sh --full     longer runs, more repetitions
#   scripts/perf.sh --smoke    a few seconds, a tiny matrix (the test suite runs it)
#   scripts/perf.sh --peers    also tao-kv-server vs redis-server, tao-http-server vs nginx
#                              (--full has them)
#
# Other options: --no-setup (do not run scripts/setup.sh), --bin DIR (use the
# programs already built in build directory DIR instead of building
# build/release), --out DIR (instead of results/<date-time>).
#
# It installs what is missing, builds the release, then runs every cell for
# every server, servers interleaved and their order rotated each repetition,
# and writes under results/<date-time>/: report.md, results.jsonl (one line
# per run, from tao-loadgen), summary.csv and chart.png. With two or more
# CPUs the server runs on the first allowed CPU and the load generator on the
# second.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "$1"
}

mode=quick
peers=0
setup=1
bin=
out=
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --smoke) mode=smoke ;;
    --peers) peers=1 ;;
    --no-setup) setup=0 ;;
    --bin) bin=${2:?--bin needs a directory}; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h | --help) usage 0 ;;
    *) echo "perf.sh: unknown option $1" >&2; usage 2 >&2 ;;
    esac
    shift
done

# ---- the matrix --------------------------------------------------------------
# name and tao-loadgen arguments of each cell
declare -A cell_args=(
    [latency]="-c 1 -d 1 -s 64"
    [conns64]="-c 64 -d 1 -s 64"
    [pipelined]="-c 64 -d 16 -s 64"
    [mid]="-c 256 -d 4 -s 512"
    [large]="-c 64 -d 4 -s 16384"
    [conns1000]="-c 1000 -d 1 -s 64"
    [storm]="--storm -c 16 -s 64"
)
case $mode in
quick)
    cells=(latency conns64 pipelined mid large conns1000 storm)
    reps=3 warmup=0.3 duration=1.2 idle_conns=10000 idle_reps=1 idle_hold=0.5 ;;
full)
    cells=(latency conns64 pipelined mid large conns1000 storm)
    reps=5 warmup=1 duration=5 idle_conns=10000 idle_reps=3 idle_hold=2 peers=1 ;;
smoke)
    cells=(pipelined storm)
    reps=1 warmup=0.1 duration=0.3 idle_conns=200 idle_reps=1 idle_hold=0.2 ;;
esac
servers=(tao-inline tao-workers tao-epoll epoll uring)

# ---- setup and build -----------------------------------------------------------
if [ $setup = 1 ]; then
    scripts/setup.sh
fi
if [ -z "$bin" ]; then
    bin=build/release
    echo "perf: building the release in $bin" >&2
    cmake -S . -B "$bin" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$bin" -j2 --target tao-echo-server tao-epoll-echo tao-uring-echo tao-loadgen tao-kv-server \
        tao-http-server >/dev/null
fi
bin=$(cd "$bin" && pwd)
tao_echo=$bin/examples/tao-echo-server
tao_kv=$bin/examples/tao-kv-server
tao_http=$bin/examples/tao-http-server
epoll_echo=$bin/perf/tao-epoll-echo
uring_echo=$bin/perf/tao-uring-echo
loadgen=$bin/perf/tao-loadgen
for p in "$tao_echo" "$epoll_echo" "$uring_echo" "$loadgen"; do
    [ -x "$p" ] || { echo "perf: $p is missing" >&2; exit 1; }
done

out=${out:-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
: >"$out/results.jsonl"

# ---- the machine -------------------------------------------------------------------
# The CPUs this script may use (a container may allow only some).
read -r -a allowed <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
cpus=${#allowed[@]}
if [ "$cpus" -ge 2 ]; then
    pin_server=(taskset -c "${allowed[0]}")
    pin_loadgen=(taskset -c "${allowed[1]}")
    pinning="server on CPU ${allowed[0]}, load generator on CPU ${allowed[1]} (taskset); every server thread shares CPU ${allowed[0]}"
else
    pin_server=()
    pin_loadgen=()
    pinning="not pinned: this machine has one CPU, shared by server and load generator"
fi
# 10,000 idle connections need as many descriptors in each process.
hard=$(ulimit -Hn)
want=$((idle_conns + 1000))
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    want=$hard
fi
ulimit -n "$want" 2>/dev/null || true
if [ "$((idle_conns + 200))" -gt "$(ulimit -n)" ]; then
    idle_conns=$(($(ulimit -n) - 200))
    echo "perf: RLIMIT_NOFILE allows only $(ulimit -n) descriptors: idle cell uses $idle_conns" >&2
fi

# The command line of server $1, in srv_argv.
server_argv() {
    case $1 in
    tao-inline) srv_argv=("$tao_echo" --workers 0 --loops 1) ;;
    tao-workers) srv_argv=("$tao_echo" --workers 1 --loops 1) ;;
    tao-epoll) srv_argv=(env TAO_BACKEND=epoll "$tao_echo" --workers 0 --loops 1) ;;
    epoll) srv_argv=("$epoll_echo") ;;
    uring) srv_argv=("$uring_echo") ;;
    esac
}

# ---- running one server and one load ---------------------------------------------
srv_pid=
cleanup() {
    if [ -n "$srv_pid" ]; then
        kill -KILL "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'echo; echo "perf: interrupted" >&2; exit 130' INT TERM

declare -A backend=()
# Start server $1 on a free port, logging to $2: sets srv_pid and srv_port.
start_server() {
    local log=$2
    server_argv "$1"
    : >"$log" # exists before the server starts writing: polled below
    "${pin_server[@]}" "${srv_argv[@]}" --listen 127.0.0.1:0 >"$log" 2>&1 &
    srv_pid=$!
    for _ in $(seq 250); do
        srv_port=$(sed -n 's/.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$log" || true)
        if [ -n "$srv_port" ] && kill -0 "$srv_pid" 2>/dev/null; then
            # The backend each Tao-C server ran on, for the report.
            if [ -z "${backend[$1]:-}" ]; then
                backend[$1]=$(sed -n 's/.* backend: //p' "$log" | head -1)
            fi
            return 0
        fi
        if ! kill -0 "$srv_pid" 2>/dev/null; then
            break
        fi
        sleep 0.02
    done
    echo >&2
    echo "perf: server $1 did not start:" >&2
    tail -5 "$log" >&2
    if grep -qi "io_uring" "$log"; then
        exit 77 # no io_uring here: nothing to measure
    fi
    exit 1
}

stop_server() {
    kill -TERM "$srv_pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.02
    done
    kill -KILL "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=
}

failures=0
# run <cell> <server> <rep> <loadgen args...>
run() {
    local cell=$1 server=$2 rep=$3
    shift 3
    local log=$out/logs/$cell-$server-$rep.log
    start_server "$server" "$out/logs/$cell-$server-$rep.server.log"
    local limit
    limit=$(awk -v w="$warmup" -v d="$duration" 'BEGIN { printf "%d", w + d + 40 }')
    if ! timeout -k 5 "$limit" "${pin_loadgen[@]}" "$loadgen" --connect "127.0.0.1:$srv_port" \
        --server-pid "$srv_pid" --json "$out/results.jsonl" \
        --label "cell=$cell server=$server rep=$rep" "$@" >"$log" 2>&1; then
        failures=$((failures + 1))
        printf '\nperf: %s on %s (rep %s) failed; see %s\n' "$cell" "$server" "$rep" "$log" >&2
        tail -3 "$log" >&2
    fi
    stop_server
}

total=$(( (${#cells[@]} * reps + idle_reps) * ${#servers[@]} ))
done_runs=0
started=$SECONDS
progress() {
    done_runs=$((done_runs + 1))
    local line
    local spent=$((SECONDS - started)) eta=
    if [ "$done_runs" -gt 1 ]; then
        eta=$(printf '~%ds left' $((spent * (total - done_runs + 1) / (done_runs - 1))))
    fi
    line=$(printf '[%3d/%d] %3ds %-11s rep %d  %-10s %-11s' "$done_runs" "$total" "$spent" \
        "$eta" "$1" "$2" "$3")
    if [ -t 2 ]; then printf '\r%s' "$line" >&2; else echo "$line" >&2; fi
}

# Servers in a different order each repetition, so none always goes first.
rotated() {
    local k=$(( $1 % ${#servers[@]} )) i
    for i in "${!servers[@]}"; do
        echo "${servers[$(( (i + k) % ${#servers[@]} ))]}"
    done
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "perf: $mode mode, $reps repetition(s), ${duration}s measured after ${warmup}s warmup; $pinning" >&2
for rep in $(seq "$reps"); do
    for cell in "${cells[@]}"; do
        for server in $(rotated "$rep"); do
            progress "$rep" "$cell" "$server"
            # shellcheck disable=SC2086
            run "$cell" "$server" "$rep" ${cell_args[$cell]} --warmup "$warmup" --duration "$duration"
        done
    done
done
# Memory: a fresh server each time, so its RSS before is a clean start.
for rep in $(seq "$idle_reps"); do
    for server in $(rotated "$rep"); do
        progress "$rep" idle "$server"
        run idle "$server" "$rep" --idle -c "$idle_conns" --duration "$idle_hold"
    done
done
[ -t 2 ] && echo >&2

# The peers: tao-kv-server next to redis-server, both under redis-benchmark.
if [ "$peers" = 1 ]; then
    for t in redis-server redis-benchmark nginx wrk; do
        command -v "$t" >/dev/null || { echo "perf: $t is missing (scripts/setup.sh)" >&2; exit 1; }
    done
    for p in "$tao_kv" "$tao_http"; do
        [ -x "$p" ] || { echo "perf: $p is missing" >&2; exit 1; }
    done
    case $mode in smoke) peer_reps=1 scale=0.05 ;; quick) peer_reps=3 scale=1 ;; full) peer_reps=5 scale=3 ;; esac
    peer_cpus=()
    if [ "$cpus" -ge 2 ]; then
        peer_cpus=("${allowed[0]}" "${allowed[1]}")
    fi
    python3 perf/peers.py "$out" "$tao_kv" "$tao_http" "$peer_reps" "$scale" "${peer_cpus[@]}" \
        >"$out/logs/peers.log" || { echo "perf: the peers group failed" >&2; tail -5 "$out/logs/peers.log" >&2; exit 1; }
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ---------------------------------------------------------------------------
meta=()
for c in "${cells[@]}"; do
    meta+=("args_$c=${cell_args[$c]}")
done
python3 perf/report.py "$out" "${meta[@]}" \
    "mode=$mode" "reps=$reps" "warmup=$warmup" "duration=$duration" \
    "idle_conns=$idle_conns" "pinning=$pinning" "cpus=$cpus" \
    "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    "kernel=$(uname -r)" "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "load_before=$load_before" "load_after=$load_after" "seconds=$((SECONDS - started))" \
    "cells=${cells[*]}" "servers=${servers[*]}" \
    "cmd_tao-inline=tao-echo-server --workers 0 --loops 1" \
    "cmd_tao-workers=tao-echo-server --workers 1 --loops 1" \
    "cmd_tao-epoll=TAO_BACKEND=epoll tao-echo-server --workers 0 --loops 1" \
    "cmd_epoll=tao-epoll-echo" "cmd_uring=tao-uring-echo" \
    "backend_tao-inline=${backend[tao-inline]:-}" "backend_tao-workers=${backend[tao-workers]:-}" \
    "backend_tao-epoll=${backend[tao-epoll]:-}"
if command -v gnuplot >/dev/null; then
    (cd "$out" && gnuplot chart.gp) || echo "perf: gnuplot failed; no chart" >&2
else
    echo "perf: gnuplot not found (scripts/setup.sh installs gnuplot-nox); no chart" >&2
fi
echo "perf: report in ${out#"$root"/}/report.md ($((SECONDS - started)) s)" >&2
[ "$failures" -eq 0 ] || { echo "perf: $failures run(s) failed" >&2; exit 1; }
