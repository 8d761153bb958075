#!/usr/bin/env bash
# usage: run_examples.sh CASE PROGRAM...
#
# Runs the example programs end to end over 127.0.0.1. CASE is help, echo,
# chat, chatflood, pingpong, timer, tls, proxy or seccomp; the PROGRAMs are the
# built examples (and, for seccomp, tao-no-io-uring and tao-loadgen), found
# here by their names. Servers listen on port 0 and print the port they got, so no
# port is guessed. Every server is stopped with SIGTERM and must exit 0.
# Exits 0 on success, 1 on failure, 77 when io_uring is unavailable.
set -u

case_name=${1:?usage: run_examples.sh CASE PROGRAM...}
shift
declare -A prog
for p in "$@"; do
    prog[$(basename "$p")]=$p
done

label=$case_name
proxy_client=$(dirname "$0")/proxy_client.py
# shellcheck source=tests/examples/lib.sh
. "$(dirname "$0")/lib.sh"
wrap=() # a command that servers and clients run under (seccomp)

# start_server NAME ARGS...: start it on a free port; sets server_pid, port.
start_server() {
    local name=$1
    shift
    start_listening "$name" "$tmp/server.out" "$tmp/server.err" "${wrap[@]}" "${prog[$name]}" "$@"
    server_pid=$started_pid
    port=$started_port
}

exited() {
    ! kill -0 "$1" 2>/dev/null
}

# SIGTERM is a graceful stop: the server must end by itself, with status 0.
stop_server() {
    kill -TERM "$server_pid"
    until_ok 100 exited "$server_pid" || fail "server ignored SIGTERM"
    wait "$server_pid"
    local rc=$?
    [ "$rc" -eq 0 ] || fail "server exited $rc after SIGTERM"
}

# run_client LOG ARGS...: run a client program with a time limit; sets rc.
run_client() {
    local log=$1
    shift
    timeout -k 5 60 "${wrap[@]}" "$@" >"$tmp/$log.out" 2>"$tmp/$log.err"
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "$log timed out"
    fi
}

case_help() {
    for name in tao-echo-server tao-echo-client tao-chat-server tao-chat-client \
        tao-pingpong-server tao-pingpong-client tao-timer; do
        [ -n "${prog[$name]:-}" ] || fail "$name was not given"
        "${prog[$name]}" --help >"$tmp/help.out" 2>&1 || fail "$name --help failed"
        grep -q -- "--help" "$tmp/help.out" || fail "$name --help says nothing"
        if "${prog[$name]}" --no-such-option >"$tmp/help.err" 2>&1; then
            fail "$name accepted --no-such-option"
        fi
    done
}

# Ten requests, ten replies, and a clear failure once nobody listens.
case_echo() {
    for workers in default 0; do
        if [ "$workers" = default ]; then
            start_server tao-echo-server
        else
            start_server tao-echo-server --workers 0
        fi
        run_client echo "${prog[tao-echo-client]}" --connect "127.0.0.1:$port" --count 10
        [ "$rc" -eq 0 ] || fail "tao-echo-client exited $rc (workers $workers)"
        local n
        n=$(grep -c "hello, world" "$tmp/echo.out")
        [ "$n" -eq 10 ] || fail "$n replies instead of 10 (workers $workers)"
        stop_server
    done
    run_client refused "${prog[tao-echo-client]}" --connect "127.0.0.1:$port" --count 1
    [ "$rc" -ne 0 ] || fail "tao-echo-client succeeded with no server"
    grep -qi "refused" "$tmp/refused.err" || fail "no 'refused' in the connect error"
}

all_lines_in() {
    for i in 1 2 3; do
        for j in 1 2; do
            grep -qxF "client $i says $j" "$1" || return 1
        done
    done
}

# Three clients, two lines each: everyone sees all six, their own included.
case_chat() {
    start_server tao-chat-server
    local cpid=()
    for i in 1 2 3; do
        mkfifo "$tmp/in$i"
        timeout -k 5 60 "${prog[tao-chat-client]}" --connect "127.0.0.1:$port" \
            <"$tmp/in$i" >"$tmp/chat$i.out" 2>"$tmp/chat$i.err" &
        cpid[i]=$!
        pids+=("${cpid[i]}")
    done
    # Writers open only now, so that no client inherits another's pipe and
    # keeps it from seeing end of input. Client i reads what fd i+2 writes.
    exec 3>"$tmp/in1" 4>"$tmp/in2" 5>"$tmp/in3"
    for i in 1 2 3; do
        until_ok 100 grep -q "connected to" "$tmp/chat$i.err" || fail "client $i did not connect"
    done
    for i in 1 2 3; do
        printf 'client %s says 1\nclient %s says 2\n' "$i" "$i" >&$((i + 2))
    done
    for i in 1 2 3; do
        until_ok 100 all_lines_in "$tmp/chat$i.out" || fail "client $i did not get all six lines"
    done
    echo bye >&3
    echo bye >&5
    exec 3>&- 4>&- 5>&- # for client 2, end of input is its "bye"
    for i in 1 2 3; do
        wait "${cpid[i]}"
        local rc=$?
        [ "$rc" -eq 0 ] || fail "client $i exited $rc"
        local n
        n=$(wc -l <"$tmp/chat$i.out")
        [ "$n" -eq 6 ] || fail "client $i printed $n lines, not 6"
    done
    stop_server
}

# 500 listeners that never read and one sender: the server's memory stays
# within its output budget, and it says that it drops messages.
case_chatflood() {
    local budget=$((64 << 20))
    # What the server holds, not what its allocator keeps cached for reuse:
    # jemalloc returns freed pages at once, ASan keeps a short quarantine.
    MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0 \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8" \
        start_server tao-chat-server --max-queued "$budget"
    ulimit -n 4096 2>/dev/null
    local overhead=1
    [ "${TAO_SANITIZE:-}" = address ] && overhead=2
    timeout -k 5 90 python3 "$(dirname "$0")/chat_flood.py" "$port" "$server_pid" "$budget" 6 \
        "$overhead" >"$tmp/flood.out" 2>&1
    local rc=$?
    cat "$tmp/flood.out"
    [ "$rc" -eq 0 ] || fail "chat flood failed ($rc)"
    grep -q "room busy" "$tmp/server.err" || fail "the server never refused a broadcast"
    stop_server
}

case_pingpong() {
    for workers in default 0; do
        if [ "$workers" = default ]; then
            start_server tao-pingpong-server
        else
            start_server tao-pingpong-server --workers 0
        fi
        run_client pingpong "${prog[tao-pingpong-client]}" --connect "127.0.0.1:$port" \
            --count 10000
        [ "$rc" -eq 0 ] || fail "tao-pingpong-client exited $rc (workers $workers)"
        grep -q "round trips/s" "$tmp/pingpong.out" || fail "no round trips/s line"
        cat "$tmp/pingpong.out"
        stop_server
    done
    start_server tao-pingpong-server
    run_client pingpong "${prog[tao-pingpong-client]}" --connect "127.0.0.1:$port" \
        --count 500 --conns 4 --loops 2
    [ "$rc" -eq 0 ] || fail "tao-pingpong-client --conns 4 exited $rc"
    stop_server
}

case_timer() {
    run_client timer "${prog[tao-timer]}"
    [ "$rc" -eq 0 ] || skip_if_no_uring "$tmp/timer.err"
    [ "$rc" -eq 0 ] || fail "tao-timer exited $rc"
    local delays
    delays=$(sed -n 's/.* fired *\(-\{0,1\}[0-9][0-9]*\) ms late$/\1/p' "$tmp/timer.out")
    [ "$(wc -w <<<"$delays")" -ge 8 ] || fail "fewer than 8 timers fired"
    for d in $delays; do
        [ "$d" -ge 0 ] || fail "a timer fired $d ms early"
    done
    grep -q "never fired" "$tmp/timer.out" || fail "the cancelled timer fired"
    cat "$tmp/timer.out"
}

# TLS: the echo pair with a throwaway CA; a client trusting another CA
# must fail. Skipped when the build has no TLS.
case_tls() {
    local certs=$tmp/certs
    bash "$(dirname "$0")/../../scripts/make-test-certs.sh" "$certs" >/dev/null ||
        fail "cannot make test certificates"
    start_server tao-echo-server --tls-cert "$certs/server.pem" --tls-key "$certs/server.key"
    if grep -q "not supported\|without it" "$tmp/server.err"; then
        echo "SKIP: built without TLS"
        exit 77
    fi
    run_client tls "${prog[tao-echo-client]}" --connect "127.0.0.1:$port" --count 5 --tls \
        --ca "$certs/ca.pem"
    [ "$rc" -eq 0 ] || fail "TLS tao-echo-client exited $rc: $(cat "$tmp/tls.err")"
    [ "$(grep -c "hello, world" "$tmp/tls.out")" -eq 5 ] || fail "not 5 replies over TLS"
    run_client wrongca "${prog[tao-echo-client]}" --connect "127.0.0.1:$port" --count 1 --tls \
        --ca "$certs/other-ca.pem"
    [ "$rc" -ne 0 ] || fail "a client trusting another CA connected"
    grep -q "verify" "$tmp/wrongca.err" || fail "no verification error: $(cat "$tmp/wrongca.err")"
    stop_server
}

# Behind a proxy: each header form over plain TCP and over TLS (the
# ClientHello after the header) is echoed, and --debug logs the client
# from the header and the proxy's own address; required refuses a
# connection without a header, optional serves it.
case_proxy() {
    local certs=$tmp/certs form local line tls=() client=${proxy_client:?}
    bash "$(dirname "$0")/../../scripts/make-test-certs.sh" "$certs" >/dev/null ||
        fail "cannot make test certificates"
    for mode in required tls; do
        tls=()
        if [ "$mode" = tls ]; then
            tls=(--tls-cert "$certs/server.pem" --tls-key "$certs/server.key")
        fi
        start_server tao-echo-server --proxy-protocol required --debug "${tls[@]}"
        if [ "$mode" = tls ] && grep -q "not supported\|without it" "$tmp/server.err"; then
            stop_server
            continue
        fi
        for form in v1 v1-6 v2 v2-6; do
            run_client proxy timeout 60 python3 "$client" "$port" "$form" \
                ${tls:+"$certs/ca.pem"}
            [ "$rc" -eq 0 ] || fail "$mode $form: $(cat "$tmp/proxy.err")"
            local=$(sed -n 's/^local //p' "$tmp/proxy.out")
            case $form in
            *-6) line="from \[2001:db8::7\]:4242 via $local\$" ;;
            *) line="from 192\.0\.2\.7:4242 via $local\$" ;;
            esac
            until_ok 100 grep -q "tao-echo-server: conn [0-9]* $line" "$tmp/server.err" ||
                fail "$mode $form: no log line naming the client via $local"
        done
        run_client noheader timeout 60 python3 "$client" "$port" none ${tls:+"$certs/ca.pem"}
        [ "$rc" -ne 0 ] || fail "$mode: required, a connection without a header was served"
        until_ok 100 grep -q "PROXY header: missing" "$tmp/server.err" ||
            fail "$mode: no error logged for the missing header"
        stop_server
    done
    # The fuzz corpus, each file on its own connection: only that one may
    # close; a neighbour behind a good header is answered after each.
    start_server tao-echo-server --proxy-protocol required
    local frame='\x01\x00\x00\x00\x02\x00\x00\x00hi'
    python3 "$(dirname "$0")/replay_corpus.py" "$port" "$(dirname "$0")/../fuzz/corpus/proxy" \
        "$frame" "$frame" 'PROXY TCP4 192.0.2.7 198.51.100.1 4242 443\r\n' >"$tmp/replay.log" ||
        fail "the PROXY fuzz corpus harmed another connection"
    stop_server

    start_server tao-echo-server --proxy-protocol optional --debug
    for form in none v2; do
        run_client proxy timeout 60 python3 "$client" "$port" "$form"
        [ "$rc" -eq 0 ] || fail "optional $form: $(cat "$tmp/proxy.err")"
    done
    local=$(sed -n 's/^local //p' "$tmp/proxy.out")
    grep -q "from 192\.0\.2\.7:4242 via $local\$" "$tmp/server.err" ||
        fail "optional: no log line naming the client via $local"
    stop_server
}

# Where io_uring is refused, as under Docker's (EPERM) and Podman's
# (ENOSYS) default seccomp profiles: the programs, with the default backend
# choice, say so in one line and run on epoll, and every byte still comes
# back: pipelined, 1,000 connections, TLS. Asked to run on io_uring there,
# the server refuses to start and says why.
case_seccomp() {
    local err lines certs=$tmp/certs
    unset TAO_BACKEND
    ulimit -n 4096 2>/dev/null
    bash "$(dirname "$0")/../../scripts/make-test-certs.sh" "$certs" >/dev/null ||
        fail "cannot make test certificates"
    no_skip=1 # a failure to start is what this case looks for
    for err in EPERM ENOSYS; do
        wrap=("${prog[tao-no-io-uring]}" "$err")
        start_server tao-echo-server --loops 2
        grep -q "backend: epoll" "$tmp/server.out" || fail "$err: the server is not on epoll"
        lines=$(grep -c "running on epoll: a seccomp filter blocks" "$tmp/server.err")
        [ "$lines" -eq 1 ] || fail "$err: $lines lines say why the server runs on epoll, not 1"
        run_client pipelined "${prog[tao-loadgen]}" --connect "127.0.0.1:$port" -c 64 -d 16 \
            -s 512 --warmup 0.2 --duration 1
        [ "$rc" -eq 0 ] || fail "$err: pipelined load: exit $rc"
        run_client conns1000 "${prog[tao-loadgen]}" --connect "127.0.0.1:$port" -c 1000 -d 1 \
            -s 64 --warmup 0.2 --duration 1
        [ "$rc" -eq 0 ] || fail "$err: 1,000 connections: exit $rc"
        stop_server

        start_server tao-echo-server --tls-cert "$certs/server.pem" --tls-key "$certs/server.key"
        if ! grep -q "not supported\|without it" "$tmp/server.err"; then
            run_client tls "${prog[tao-echo-client]}" --connect "127.0.0.1:$port" --count 50 \
                --tls --ca "$certs/ca.pem"
            [ "$rc" -eq 0 ] || fail "$err: TLS tao-echo-client exited $rc"
            [ "$(grep -c "hello, world" "$tmp/tls.out")" -eq 50 ] || fail "$err: not 50 TLS replies"
        fi
        stop_server

        TAO_BACKEND=io_uring timeout -k 5 30 "${wrap[@]}" "${prog[tao-echo-server]}" \
            --listen 127.0.0.1:0 >"$tmp/forced.out" 2>"$tmp/forced.err"
        rc=$?
        [ "$rc" -ne 0 ] || fail "$err: forced onto io_uring, the server started"
        grep -q "seccomp filter blocks io_uring_setup" "$tmp/forced.err" ||
            fail "$err: forced onto io_uring, the server did not say why"
    done
    wrap=()
    no_skip=0
}

case "$case_name" in
help | echo | chat | chatflood | pingpong | timer | tls | proxy | seccomp) "case_$case_name" ;;
*) fail "unknown case" ;;
esac
echo "ok: $case_name"
