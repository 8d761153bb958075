#!/usr/bin/env bash
# usage: run_cluster.sh <tao-echo-server> <tao-loadgen>
#
# Several hosts in one machine: network namespaces joined by a bridge, each
# one a host.
#
#   sw        the switch: a bridge, one veth port per host
#   s1 s2 s3  tao-echo-server --proxy-protocol required, 10.99.0.11-13:7000
#   lb        HAProxy (tests/cluster/haproxy.cfg.in), 10.99.0.2:12345
#   cl        the client: tao-loadgen through HAProxy, 10.99.0.10
#
# Checks: every reply byte-checked, connections on all three servers; each
# server sees the client host's address, HAProxy's only as the proxy, and
# no data connection without a header; one server killed mid-run loses
# only its own connections (tao-loadgen --allow-lost reports them, checks
# the rest), and the connections after it go to the other two; everything
# is torn down even on failure, and no namespace of ours is left.
#
# Namespaces are named tao-cluster-<pid>-<host>: parallel runs never meet,
# and a run that was killed before its cleanup is cleaned up by the next.
# Nothing is created in the root namespace: veth pairs are made inside the
# hosts with their peers moved straight into the switch.
#
# Exit 0 pass, 1 fail, 77 skip: no ip or haproxy, or namespaces cannot be
# created here (no CAP_SYS_ADMIN, as in most containers).
set -u

echo_server=${1:?usage: run_cluster.sh ECHO_SERVER LOADGEN}
loadgen=${2:?usage: run_cluster.sh ECHO_SERVER LOADGEN}
here=$(cd "$(dirname "$0")" && pwd)

label=cluster
# shellcheck source=tests/examples/lib.sh
. "$here/../examples/lib.sh"

proxy_args=(--proxy-protocol required)

prefix=tao-cluster-$$-
net=10.99.0
ip_lb=$net.2
ip_cl=$net.10
ip_s=("" "$net.11" "$net.12" "$net.13")
port=7000
front=$ip_lb:12345
conns1=60 # the first run, during which s1 is killed
conns2=30 # the second, after it

skip() {
    echo "SKIP: $*"
    exit 77
}

ns() {
    echo "$prefix$1"
}

# Our namespaces: those whose names start with $1.
ns_list() {
    ip netns list 2>/dev/null | awk -v p="$1" 'index($1, p) == 1 { print $1 }'
}

# Kill whatever still runs in the namespaces named $1*, then delete them.
teardown() {
    local n pid
    for n in $(ns_list "$1"); do
        for pid in $(ip netns pids "$n" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
        ip netns del "$n" 2>/dev/null
    done
}

# Runs whose process is gone left their namespaces (a test killed by its
# timeout gets no chance to clean up): remove them, never a live run's.
teardown_stale() {
    local n owner
    for n in $(ns_list tao-cluster-); do
        owner=${n#tao-cluster-}
        owner=${owner%%-*}
        if [[ $owner =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null; then
            teardown "tao-cluster-$owner-"
        fi
    done
}

cluster_cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    cleanup # lib.sh: our processes and $tmp
    teardown "$prefix"
    local left
    left=$(ns_list "$prefix")
    if [ -n "$left" ]; then
        echo "FAIL (cluster): namespaces left behind: ${left//$'\n'/ }" >&2
        rc=1
    fi
    exit "$rc"
}
trap cluster_cleanup EXIT
trap 'exit 1' INT TERM HUP

# The README shows the configuration: it must be this one.
readme=$here/../../README.md
if [ -f "$readme" ]; then
    sed -n '/^```haproxy$/,/^```$/p' "$readme" | sed '1d;$d' >"$tmp/readme.cfg"
    cmp -s "$tmp/readme.cfg" "$here/haproxy.cfg.in" ||
        fail "README.md's HAProxy configuration differs from tests/cluster/haproxy.cfg.in"
fi

# ---- the network ---------------------------------------------------------

command -v ip >/dev/null || skip "ip (iproute2) is not installed"
command -v haproxy >/dev/null || skip "haproxy is not installed"
teardown_stale
if ! err=$(ip netns add "$(ns sw)" 2>&1); then
    skip "cannot create a network namespace here (CAP_SYS_ADMIN?): $err"
fi

# add_host NAME IP: a namespace with lo up and eth0 at IP, plugged into the
# switch as port NAME.
add_host() {
    local h=$1 addr=$2 n
    n=$(ns "$1")
    ip netns add "$n" || fail "ip netns add $n"
    ip -n "$n" link set lo up &&
        ip -n "$n" link add eth0 type veth peer name "$h" netns "$(ns sw)" &&
        ip -n "$(ns sw)" link set dev "$h" master br0 up &&
        ip -n "$n" addr add "$addr/24" dev eth0 &&
        ip -n "$n" link set eth0 up ||
        fail "cannot plug host $h into the switch"
}

ip -n "$(ns sw)" link set lo up &&
    ip -n "$(ns sw)" link add br0 type bridge &&
    ip -n "$(ns sw)" link set br0 up ||
    fail "cannot make the switch"
add_host lb "$ip_lb"
add_host cl "$ip_cl"
for i in 1 2 3; do
    add_host "s$i" "${ip_s[i]}"
done

# on HOST CMD...: run CMD on that host.
on() {
    local h=$1
    shift
    ip netns exec "$(ns "$h")" "$@"
}

# ---- the servers and HAProxy ---------------------------------------------

# Started with ip netns exec itself, not through on(), so that $! is the
# program (a function in the background would be a subshell).
spid=()
for i in 1 2 3; do
    ip netns exec "$(ns "s$i")" "$echo_server" --listen "${ip_s[i]}:$port" --metrics "${ip_s[i]}:9100" --loops 1 \
        --debug "${proxy_args[@]}" >"$tmp/s$i.out" 2>"$tmp/s$i.err" &
    spid[i]=$!
    pids+=("${spid[i]}")
done
for i in 1 2 3; do
    until_ok 200 grep -qs "listening on ${ip_s[i]}:$port" "$tmp/s$i.out" ||
        fail "s$i is not listening after 20 s"
done

sed -e "s/@FRONTEND@/$front/" -e "s/@SERVER1@/${ip_s[1]}:$port/" \
    -e "s/@SERVER2@/${ip_s[2]}:$port/" -e "s/@SERVER3@/${ip_s[3]}:$port/" \
    "$here/haproxy.cfg.in" >"$tmp/haproxy.cfg"
haproxy -c -q -f "$tmp/haproxy.cfg" >"$tmp/haproxy-check.log" 2>&1 ||
    fail "haproxy refuses its configuration"
ip netns exec "$(ns lb)" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.out" 2>"$tmp/haproxy.err" &
haproxy_pid=$!
pids+=("$haproxy_pid")

# conns HOST: one line per connection the server logged, "FROM VIA", the
# addresses without ports; VIA is "-" for a connection without a header
# naming a client (HAProxy's health checks send a LOCAL one).
conns() {
    sed -n -e 's/^tao-echo-server: conn [0-9]* from \(.*\):[0-9]* via \(.*\):[0-9]*$/\1 \2/p' \
        -e 's/^tao-echo-server: conn [0-9]* from \(.*\):[0-9]*$/\1 -/p' "$tmp/$1.err"
}

# vias HOST: how many connections came with a header naming a client.
vias() {
    conns "$1" | awk '$2 != "-"' | wc -l
}

checked_by_lb() {
    conns "$1" | grep -q "^$ip_lb -$"
}

lb_listening() {
    on lb ss -Hltn "sport = :${front##*:}" | grep -q LISTEN
}

# metric HOST NAME: a counter of the server's statistics, fetched from the
# client host over HTTP (which shows that the client reaches the server).
metric() {
    on cl timeout 5 bash -c "exec 3<>/dev/tcp/${ip_s[${1#s}]}/9100 &&
        printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null |
        sed -n "s/^tao_$2 \([0-9][0-9]*\).*/\1/p"
}

metric_above() {
    local v
    v=$(metric "$1" "$2")
    [ -n "$v" ] && [ "$v" -gt "$3" ]
}

until_ok 200 lb_listening || fail "haproxy is not listening after 20 s"
for i in 1 2 3; do
    # Its health checks (an echo each) reach every server...
    until_ok 200 checked_by_lb "s$i" || fail "no health check from haproxy reached s$i in 20 s"
    # ...and the client host reaches them too.
    until_ok 100 metric_above "s$i" conns_open -1 || fail "s$i's metrics unreachable from cl"
done

# ---- the first run: s1 is killed in the middle -----------------------------

# run_loadgen NAME ARGS...: tao-loadgen on the client host, in the
# background, with a time limit; sets lg_pid.
run_loadgen() {
    local name=$1
    shift
    ip netns exec "$(ns cl)" timeout -k 5 60 "$loadgen" --connect "$front" -s 512 --stall 10 --json \
        "$tmp/$name.json" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    lg_pid=$!
    pids+=("$lg_pid")
}

exited() {
    ! kill -0 "$1" 2>/dev/null
}

# finish NAME: wait for the loadgen started last; sets rc.
finish() {
    until_ok 600 exited "$lg_pid" || fail "$1 did not finish in 60 s"
    wait "$lg_pid"
    rc=$?
    cat "$tmp/$1.out"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "$1 timed out"
    fi
}

all_vias() {
    echo $(($(vias s1) + $(vias s2) + $(vias s3)))
}

vias_at_least() {
    [ "$(all_vias)" -ge "$1" ]
}

run_loadgen lg1 -c "$conns1" -d 4 --warmup 0.5 --duration 5 --allow-lost
# Every connection through, or the load generator gone (then say why).
connected_or_gone() {
    vias_at_least "$conns1" || exited "$lg_pid"
}
until_ok 300 connected_or_gone && vias_at_least "$conns1" ||
    fail "not all $conns1 connections reached a server: $(cat "$tmp/lg1.err")"
# Replies flow through every server before one goes.
for i in 1 2 3; do
    until_ok 300 metric_above "s$i" frames_out 1000 || fail "no traffic through s$i in 30 s"
done

# SIGKILL: a crash, the case health checks and redispatch are for. Nothing
# is flushed; the kernel closes the server's sockets and HAProxy closes the
# client connections that went through them. (SIGTERM would be a graceful
# stop, which the engine's own tests cover.)
lost=$(vias s1)
kill -KILL "${spid[1]}"
wait "${spid[1]}" 2>/dev/null
before2=$(metric s2 frames_out)
before3=$(metric s3 frames_out)
s1_down() {
    grep -q "echo_servers/s1 is DOWN" "$tmp/haproxy.err"
}
until_ok 150 s1_down || fail "haproxy did not mark s1 down in 15 s"

finish lg1
[ "$rc" -eq 0 ] || fail "tao-loadgen (s1 killed) exited $rc"
grep -q "errors       corrupted 0  lost 0  duplicated 0  reordered 0  closed 0  stalled 0  connect 0  send 0" \
    "$tmp/lg1.out" || fail "tao-loadgen (s1 killed) reports errors"
grep -q "lost conns   $lost closed by the server" "$tmp/lg1.out" ||
    fail "tao-loadgen lost other connections than s1's $lost"
grep -q "\"lost_conns\":$lost," "$tmp/lg1.json" || fail "the JSON line does not say $lost lost"
# The other two kept serving after the kill, every reply checked.
metric_above s2 frames_out "$before2" || fail "s2 served nothing after s1 was killed"
metric_above s3 frames_out "$before3" || fail "s3 served nothing after s1 was killed"

# ---- the second run: only s2 and s3 -----------------------------------------

v2=$(vias s2)
v3=$(vias s3)
run_loadgen lg2 -c "$conns2" -d 2 --warmup 0.2 --duration 1
finish lg2
[ "$rc" -eq 0 ] || fail "tao-loadgen (after the kill) exited $rc"
until_ok 100 vias_at_least $((conns1 + conns2)) || fail "not every connection was logged"
[ "$(vias s2)" -gt "$v2" ] || fail "s2 got no connection after s1 was killed"
[ "$(vias s3)" -gt "$v3" ] || fail "s3 got no connection after s1 was killed"
[ $(($(vias s2) - v2 + $(vias s3) - v3)) -eq "$conns2" ] ||
    fail "s2 and s3 got $(($(vias s2) - v2 + $(vias s3) - v3)) connections, not $conns2"

# ---- who the servers saw ---------------------------------------------------

# Every header named the client host, and HAProxy as the proxy; every
# connection without one came from HAProxy (its health checks); one header
# per client connection, no more, no fewer.
for i in 1 2 3; do
    [ "$(vias "s$i")" -gt 0 ] || fail "s$i got no client connection"
    bad=$(conns "s$i" | awk -v c="$ip_cl" -v l="$ip_lb" \
        '!(($1 == c && $2 == l) || ($1 == l && $2 == "-"))' | head -n 3)
    [ -z "$bad" ] || fail "s$i saw connections from neither the client nor haproxy: $bad"
done
[ "$(all_vias)" -eq $((conns1 + conns2)) ] ||
    fail "$(all_vias) connections with a header, for $((conns1 + conns2)) client connections"

# A connection straight from the client, without a header, is refused.
on cl timeout -k 5 30 "$loadgen" --connect "${ip_s[2]}:$port" -c 1 --warmup 0 --duration 0.3 \
    >"$tmp/direct.out" 2>&1
[ $? -eq 1 ] || fail "s2 served a connection without a PROXY header"

# The two that survived stop gracefully (SIGTERM), with status 0: under
# ASan, also without a leak or a memory error.
for i in 2 3; do
    kill -TERM "${spid[i]}"
    until_ok 300 exited "${spid[i]}" || fail "s$i ignored SIGTERM for 30 s"
    wait "${spid[i]}"
    rc=$?
    [ "$rc" -eq 0 ] || fail "s$i exited $rc after SIGTERM"
done

echo "s1 $lost connections (killed), s2 $(vias s2), s3 $(vias s3);" \
    "$(conns s1 | grep -c " -$") + $(conns s2 | grep -c " -$") + $(conns s3 | grep -c " -$") health checks"
echo "ok: cluster"
