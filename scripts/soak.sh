#!/usr/bin/env bash
# The soak test: one Tao-C echo server under mixed traffic for a long while,
# its memory and descriptors sampled all along. Not part of scripts/test.sh.
#
#   scripts/soak.sh                 ten minutes
#   scripts/soak.sh --minutes 60    longer (fractions work: --minutes 2.5)
#   scripts/soak.sh --seconds 30    a quick try
#
# All at once, against 127.0.0.1 only, each part bounded in connections:
#   - tao-loadgen, pipelined, in rounds whose connections, depth and payload
#     size change: every reply checked (lost, corrupt, duplicated, reordered);
#   - tao-loadgen --storm: connect, echo one frame, close, over and over;
#   - scripts/soak_clients.py: connections the server's idle and read
#     timeouts close, half-sent frames, RSTs mid-stream, oversized frames,
#     clients that never read and must be aborted, half-closes.
# Every few seconds it samples the server's VmRSS and open descriptors.
#
# It passes when every load generator run and every client scenario was
# clean, the server's RSS is flat (the highest sample of the last third of
# the run at most --rss-margin percent above the highest of the first
# third), its descriptors and connections are back to where they were once
# the clients are gone, and it stops with exit status 0.
#
# Options: --preset NAME (release or debug; default release), --build-dir DIR
# (or SOAK_BUILD_DIR: configure and build there instead of build/<preset>),
# --no-build (use the programs already built there), --no-setup (do not run
# scripts/setup.sh), --workers N (the server's handler threads; 0: inline),
# --interval SECS (between samples; default 2, less for short runs),
# --rss-margin PCT (default 10), --out DIR (logs; default a new directory
# under /tmp, kept).
# Exit status: 0 passed, 1 failed, 2 usage, 77 no io_uring here.
set -euo pipefail

cd "$(dirname "$0")/.."

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "$1"
}

minutes=10
seconds=
preset=release
build_dir=${SOAK_BUILD_DIR:-}
build=1
setup=1
workers=
interval=
rss_margin=10
out=
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=${2:?--minutes needs a number}; shift ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    --preset) preset=${2:?--preset needs a name}; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift ;;
    --no-build) build=0 ;;
    --no-setup) setup=0 ;;
    --workers) workers=${2:?--workers needs a number}; shift ;;
    --interval) interval=${2:?--interval needs seconds}; shift ;;
    --rss-margin) rss_margin=${2:?--rss-margin needs a percentage}; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h | --help) usage 0 ;;
    *) echo "soak: unknown option $1" >&2; usage 2 >&2 ;;
    esac
    shift
done

is_number() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
for v in "$minutes" "${seconds:-0}" "${interval:-1}" "$rss_margin"; do
    is_number "$v" || { echo "soak: not a number: $v" >&2; exit 2; }
done
case $preset in
release) build_type=Release ;;
debug) build_type=Debug ;;
*) echo "soak: --preset must be release or debug" >&2; exit 2 ;;
esac
# Whole seconds of load; at least 10, so that thirds of it mean something.
secs=$(awk -v m="$minutes" -v s="$seconds" 'BEGIN { t = s != "" ? s : m * 60;
    t = int(t + 0.5); print (t < 10 ? 10 : t) }')
# Often enough that each third's peak is seen (the load changes every
# round), and at least a dozen samples however short the run.
interval=${interval:-$(awk -v t="$secs" 'BEGIN { i = t / 12; printf "%.1f", (i > 2 ? 2 : i) }')}
# Load generator rounds: long enough to settle, short enough to vary.
round=$(awk -v t="$secs" 'BEGIN { r = int(t / 6); print (r < 5 ? 5 : r > 20 ? 20 : r) }')

# The server's timeouts, which soak_clients.py is told so that it can tell
# an early close from a late or missing one.
idle_ms=2000
read_ms=1000

# ---- build ---------------------------------------------------------------------
out=${out:-$(mktemp -d /tmp/tao-soak.XXXXXX)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
if [ $setup = 1 ]; then
    scripts/setup.sh
fi
if [ $build = 1 ]; then
    echo "soak: building $preset in ${build_dir:-build/$preset}" >&2
    {
        if [ -n "$build_dir" ]; then
            cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" &&
                cmake --build "$build_dir" -j2 --target tao-echo-server tao-loadgen
        else
            cmake --preset "$preset" &&
                cmake --build --preset "$preset" --target tao-echo-server tao-loadgen
        fi
    } >"$out/build.log" 2>&1 || {
        tail -30 "$out/build.log" >&2
        echo "soak: the build failed; see $out/build.log" >&2
        exit 1
    }
fi
bin=$(cd "${build_dir:-build/$preset}" && pwd)
echo_server=$bin/examples/tao-echo-server
loadgen=$bin/perf/tao-loadgen
for p in "$echo_server" "$loadgen"; do
    [ -x "$p" ] || { echo "soak: $p is missing" >&2; exit 1; }
done

# ---- everything started is stopped on the way out ----------------------------------
srv_pid=
lane_pids=()
clients_pid=
cleanup() {
    local p
    for p in "${lane_pids[@]}" $clients_pid; do
        kill -TERM "$p" 2>/dev/null || true
    done
    if [ -n "$srv_pid" ]; then
        kill -KILL "$srv_pid" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "soak: interrupted" >&2; exit 130' INT TERM

now() { date +%s; }

# ---- the server ------------------------------------------------------------------
srv_args=(--listen 127.0.0.1:0 --metrics 127.0.0.1:0
    --idle-timeout "$idle_ms" --read-timeout "$read_ms")
[ -n "$workers" ] && srv_args+=(--workers "$workers")
"$echo_server" "${srv_args[@]}" >"$out/server.log" 2>&1 &
srv_pid=$!
port=
for _ in $(seq 250); do
    port=$(sed -n 's/.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$out/server.log")
    [ -n "$port" ] && break
    if ! kill -0 "$srv_pid" 2>/dev/null; then
        tail -5 "$out/server.log" >&2
        grep -qi io_uring "$out/server.log" && exit 77 # nothing to soak here
        echo "soak: the server did not start" >&2
        exit 1
    fi
    sleep 0.02
done
[ -n "$port" ] || { echo "soak: the server is not listening after 5 s" >&2; exit 1; }
metrics_port=$(sed -n 's/.* metrics on .*:\([0-9][0-9]*\)$/\1/p' "$out/server.log")

# The server's statistics (Prometheus text), and one value of them.
metrics() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner shell
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET / HTTP/1.0\r\n\r\n" >&3 &&
        cat <&3' _ "$metrics_port"
}
metric() { awk -v k="tao_$1" '$1 == k { print $2 }' <<<"$2"; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$srv_pid/status"; }
# A glob reads the directory only: no stat of descriptors closing meanwhile.
fd_count() {
    local fds=("/proc/$srv_pid/fd/"*)
    echo "${#fds[@]}"
}

sleep 0.5 # let the loops and the metrics endpoint settle
fds_before=$(fd_count)
rss_before=$(rss_kb)

# ---- the load -----------------------------------------------------------------------
end_at=$(($(now) + secs))
failed=$out/failed # one line per failed run: the lanes' way to stop the soak
: >"$failed"

# lane NAME CONFIG...: run tao-loadgen with each config in turn, a round
# each, until the soak's time is up or a run fails.
lane() {
    local name=$1 i=0 left d rc child=
    shift
    local configs=("$@")
    # The run in progress stops with us, and is gone when we are.
    trap 'kill -TERM $child 2>/dev/null; wait $child; exit 143' TERM
    while :; do
        left=$((end_at - $(now)))
        [ "$left" -ge 3 ] || break
        d=$((left < round ? left : round))
        # shellcheck disable=SC2086 # a config is a list of words
        timeout -k 5 $((d + 60)) "$loadgen" --connect "127.0.0.1:$port" --warmup 0 \
            --duration "$d" --stall 10 --json "$out/loadgen.jsonl" --label "$name-$i" \
            ${configs[i % ${#configs[@]}]} >"$out/logs/$name-$i.log" 2>&1 &
        child=$!
        rc=0
        wait "$child" || rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "$name-$i exit $rc" >>"$failed"
            return
        fi
        i=$((i + 1))
    done
}

echo "soak: $secs s of load on tao-echo-server (pid $srv_pid, port $port), samples every" \
    "${interval}s; logs in $out" >&2
lane pipelined "-c 32 -d 16 -s 64" "-c 8 -d 4 -s 16384" "-c 64 -d 2 -s 512" \
    "-c 4 -d 64 -s 2048" &
lane_pids+=($!)
lane storm "--storm -c 8 -s 64" "--storm -c 4 -s 4096" &
lane_pids+=($!)
python3 scripts/soak_clients.py --connect "127.0.0.1:$port" --seconds "$secs" \
    --idle-timeout "$idle_ms" --read-timeout "$read_ms" >"$out/logs/clients.log" 2>&1 &
clients_pid=$!

# ---- sampling -----------------------------------------------------------------------
samples=$out/samples.tsv
printf 't\trss_kb\tfds\tconns_open\n' >"$samples"
t0=$(now)
sample() {
    local m open
    m=$(metrics || true)
    open=$(metric conns_open "$m")
    printf '%d\t%s\t%s\t%s\n' $(($(now) - t0)) "$(rss_kb)" "$(fd_count)" "${open:--}" >>"$samples"
}
# A problem seen early ends the soak early: nothing later would repair it.
trouble=
while [ "$(now)" -lt "$end_at" ]; do
    sleep "$interval"
    if ! kill -0 "$srv_pid" 2>/dev/null; then
        trouble="the server died"
        break
    fi
    sample
    if [ -s "$failed" ]; then
        trouble="a load generator run failed: $(head -1 "$failed")"
        break
    fi
    if grep -q "soak-clients: error" "$out/logs/clients.log"; then
        trouble="a client scenario failed"
        break
    fi
    if [ -t 2 ]; then
        printf '\rsoak: %4ds/%ds  %s' $(($(now) - t0)) "$secs" "$(tail -1 "$samples" |
            awk '{ printf "rss %.1f MiB, %d fds, %s connections open", $2 / 1024, $3, $4 }')" >&2
    fi
done
if [ -t 2 ]; then echo >&2; fi

# ---- winding down ----------------------------------------------------------------------
if [ -n "$trouble" ]; then
    kill -TERM "${lane_pids[@]}" "$clients_pid" 2>/dev/null || true
fi
# Every part stops starting work at the deadline; what is in flight is
# bounded (a load generator round, one scenario of each client thread).
for p in "${lane_pids[@]}" "$clients_pid"; do
    for _ in $(seq 600); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
        trouble=${trouble:-"a client did not finish within a minute of the deadline"}
        kill -TERM "$p" 2>/dev/null || true
    fi
done
clients_rc=0
wait "$clients_pid" || clients_rc=$?
wait "${lane_pids[@]}" 2>/dev/null || true
lane_pids=()
clients_pid=

# Clients gone: the server should come back to its descriptors at start.
# Give it the time of its slowest close (a timeout, or the 5 s close deadline).
for _ in $(seq 100); do
    m=$(metrics || true)
    [ "$(fd_count)" = "$fds_before" ] && [ "$(metric conns_open "$m")" = 0 ] && break
    sleep 0.1
done
fds_after=$(fd_count)
rss_after=$(rss_kb)
m=$(metrics || true)

# A graceful stop, as any user would: it must exit 0, promptly.
kill -TERM "$srv_pid"
srv_rc=
for _ in $(seq 100); do
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$srv_pid" 2>/dev/null; then
    kill -KILL "$srv_pid"
    srv_rc="killed: no exit within 10 s of SIGTERM"
fi
rc=0
wait "$srv_pid" || rc=$?
srv_pid=
srv_rc=${srv_rc:-$rc}

# ---- the verdict -----------------------------------------------------------------------
fail=0
verdict() { # verdict OK|FAIL TEXT
    echo "soak: $2${1:+ -> $1}"
    [ "$1" = OK ] || fail=1
}
if grep -q "exit 77$" "$failed"; then
    echo "soak: tao-loadgen found no io_uring here" >&2
    exit 77
fi

echo "soak: $(awk -v s="$(($(now) - t0))" 'BEGIN { printf "%.1f", s / 60 }') minutes" \
    "($secs s of load), logs in $out"
[ -z "$trouble" ] || verdict FAIL "stopped early: $trouble"

accepted=$(metric conns_accepted "$m")
clients_json=$(tail -1 "$out/logs/clients.log")
read -r lg_runs lg_replies lg_errors lg_storm <<<"$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(len(rows), sum(r["msgs"] for r in rows if r["mode"] == "echo"),
      sum(r["errors"] for r in rows), sum(r["msgs"] for r in rows if r["mode"] == "storm"))
' "$out/loadgen.jsonl" 2>/dev/null || echo "0 0 0 0")"
lg_started=$(find "$out/logs" -name 'pipelined-*.log' -o -name 'storm-*.log' | wc -l)
read -r cl_conns cl_errors cl_timed cl_oversized <<<"$(python3 -c '
import json, sys
d = json.loads(sys.argv[1]); r = d["runs"]
print(d["connections"], d["errors"], r["idle"] + r["slowloris"] + r["partial"] + r["stuck"],
      r["oversized"])
' "$clients_json" 2>/dev/null || echo "0 1 0 0")"

echo "soak: connections: ${accepted:-?} accepted by the server ($lg_storm storm cycles," \
    "$cl_conns from soak_clients.py, the rest pipelined)"
if [ "$lg_runs" -eq "$lg_started" ] && [ "$lg_errors" -eq 0 ] && [ ! -s "$failed" ]; then
    verdict OK "validation: $lg_runs tao-loadgen runs, $lg_replies pipelined replies checked, no error"
else
    verdict FAIL "validation: $lg_runs of $lg_started tao-loadgen runs reported, $lg_errors error(s)$(
        [ -s "$failed" ] && printf '; failed: %s' "$(paste -sd, "$failed")")"
fi
if [ "$clients_rc" -eq 0 ] && [ "$cl_errors" -eq 0 ]; then
    verdict OK "client scenarios: $(grep -m1 'connections:' "$out/logs/clients.log" | sed 's/^soak-clients: //')"
else
    verdict FAIL "client scenarios: $cl_errors error(s), exit $clients_rc; see $out/logs/clients.log"
fi
# Each idle, slowloris, partial and stuck client ended in a server timeout,
# each oversized one in a decode error: the server's counters must agree.
timeouts=$(metric timeouts "$m")
decode=$(metric decode_errors "$m")
if [ "${timeouts:-0}" -ge "$cl_timed" ] && [ "${decode:-0}" -ge "$cl_oversized" ]; then
    verdict OK "server counters: ${timeouts:-?} timeouts (>= $cl_timed expected), ${decode:-?} decode errors (>= $cl_oversized)"
else
    verdict FAIL "server counters: ${timeouts:-?} timeouts (expected >= $cl_timed), ${decode:-?} decode errors (expected >= $cl_oversized)"
fi

# RSS: flat when the last third's peak is within the margin of the first
# third's, which already holds the warm-up (allocator arenas, buffer rings).
read -r rss_min rss_max first_max last_max n <<<"$(awk -F'\t' 'NR > 1 { rss[++n] = $2 }
    END { if (!n) { print "0 0 0 0 0"; exit }
          k = int(n / 3); if (k < 1) k = 1
          min = max = rss[1]; fm = lm = 0
          for (i = 1; i <= n; i++) {
              if (rss[i] < min) min = rss[i]; if (rss[i] > max) max = rss[i]
              if (i <= k && rss[i] > fm) fm = rss[i]
              if (i > n - k && rss[i] > lm) lm = rss[i] }
          print min, max, fm, lm, n }' "$samples")"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
growth=$(awk -v f="$first_max" -v l="$last_max" 'BEGIN { printf "%+.1f", f ? 100 * (l - f) / f : 0 }')
rss_text="RSS $(mib "$rss_min") - $(mib "$rss_max") over $n samples ($(mib "$rss_before") before, $(mib "$rss_after") after); peak of the first third $(mib "$first_max"), of the last $(mib "$last_max") ($growth%, limit +$rss_margin%)"
if [ "$n" -ge 3 ] && awk -v f="$first_max" -v l="$last_max" -v m="$rss_margin" \
    'BEGIN { exit !(l <= f * (1 + m / 100)) }'; then
    verdict OK "$rss_text"
else
    verdict FAIL "$rss_text"
fi

read -r fd_min fd_max <<<"$(awk -F'\t' 'NR > 1 { if (min == "" || $3 < min) min = $3
    if ($3 > max) max = $3 } END { print min + 0, max + 0 }' "$samples")"
open_after=$(metric conns_open "$m")
fd_text="fds $fd_min - $fd_max under load, $fds_before before, $fds_after after; ${open_after:-?} connections open after"
if [ "$fds_after" = "$fds_before" ] && [ "$open_after" = 0 ]; then
    verdict OK "$fd_text"
else
    verdict FAIL "$fd_text"
fi
if [ "$srv_rc" = 0 ]; then
    verdict OK "server stopped on SIGTERM with exit status 0"
else
    verdict FAIL "server stop: $srv_rc; see $out/server.log"
fi

if [ "$fail" -eq 0 ]; then
    echo "soak: PASS"
else
    echo "soak: FAIL"
fi
exit "$fail"
