#!/usr/bin/env bash
# usage: run_http.sh TAO-HTTP-SERVER
#
# tao-http-server driven by curl and wrk over 127.0.0.1: the hello page and
# its headers, HEAD, 404 and 405, static files (and nothing beyond the
# root: "..", a symbolic link out), keep-alive reuse, pipelined requests
# over one socket, a chunked upload echoed back, every limit's status (413,
# 414, 431, 400), the metrics, and wrk with no socket error and no non-2xx.
# Exit 0 on success, 1 on failure, 77 (with the reason) without curl or wrk
# (scripts/setup.sh installs them).
set -u

srv=${1:?usage: run_http.sh TAO-HTTP-SERVER}
here=$(cd "$(dirname "$0")" && pwd)
for t in curl wrk python3; do
    if ! command -v "$t" >/dev/null; then
        echo "SKIP: $t is not installed (scripts/setup.sh installs it)" >&2
        exit 77
    fi
done
label=http
# shellcheck source=tests/examples/lib.sh
. "$here/lib.sh"

mkdir -p "$tmp/www/sub"
printf '<h1>index</h1>\n' >"$tmp/www/sub/index.html"
head -c 300000 /dev/urandom >"$tmp/www/blob.bin"
printf 'secret\n' >"$tmp/secret.txt"
ln -s "$tmp/secret.txt" "$tmp/www/out"

start_listening tao-http-server "$tmp/server.log" "$tmp/server.log" "$srv" --root "$tmp/www" --loops 2
pid=$started_pid
port=$started_port
url=http://127.0.0.1:$port

# code ARGS...: the status curl got.
code() {
    curl -s -o /dev/null -w '%{http_code}' "$@"
}

# The hello page, with the headers a browser and curl expect.
curl -si "$url/" >"$tmp/hello.log" || fail "curl $url/"
tr -d '\r' <"$tmp/hello.log" >"$tmp/hello.txt"
grep -q '^HTTP/1.1 200 OK$' "$tmp/hello.txt" || fail "no 200"
grep -q '^Content-Length: 13$' "$tmp/hello.txt" || fail "no Content-Length: 13"
grep -q '^Content-Type: text/plain' "$tmp/hello.txt" || fail "no Content-Type"
grep -qE '^Date: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$' "$tmp/hello.txt" ||
    fail "no Date in IMF-fixdate form"
[ "$(tail -n1 "$tmp/hello.txt")" = "Hello, world!" ] || fail "the body is not 'Hello, world!'"
[ -z "$(curl -s -I "$url/" | tr -d '\r' | sed -n '/^$/,$p' | tr -d '\n')" ] || fail "HEAD had a body"
curl -s -I "$url/" | tr -d '\r' | grep -q '^Content-Length: 13$' || fail "HEAD without the length"
[ "$(code "$url/nothing-here")" = 404 ] || fail "no 404"
[ "$(code -X DELETE "$url/")" = 405 ] || fail "no 405"

# Static files, and nothing outside the root.
curl -s "$url/blob.bin" | cmp -s - "$tmp/www/blob.bin" || fail "blob.bin differs"
[ "$(curl -s "$url/sub/")" = "<h1>index</h1>" ] || fail "no index.html for a directory"
[ "$(code "$url/out")" = 404 ] || fail "a symbolic link out of the root was followed"
[ "$(code --path-as-is "$url/../secret.txt")" = 404 ] || fail "'..' left the root"
[ "$(code --path-as-is "$url/sub/%2e%2e/%2e%2e/secret.txt")" = 404 ] || fail "'%2e%2e' left the root"

# Keep-alive: the second request reuses the first one's connection.
curl -sv "$url/" "$url/" >/dev/null 2>"$tmp/reuse.log"
grep -qi "re-using existing connection\|reusing existing connection" "$tmp/reuse.log" ||
    fail "curl did not reuse the connection"

# A chunked upload comes back whole.
seq 1 100000 >"$tmp/up.txt" # 589 KB, under the 1 MiB body limit
curl -s -H "Transfer-Encoding: chunked" --data-binary @"$tmp/up.txt" "$url/echo" |
    cmp -s - "$tmp/up.txt" || fail "the chunked upload did not come back whole"

# Every limit's status.
long=$(head -c 9000 /dev/zero | tr '\0' a)
[ "$(code "$url/$long")" = 414 ] || fail "no 414 for a 9,000-byte target"
[ "$(code -H "X-Big: $(head -c 17000 /dev/zero | tr '\0' a)" "$url/")" = 431 ] || fail "no 431"
head -c 2000000 /dev/zero >"$tmp/big.bin"
[ "$(code --data-binary @"$tmp/big.bin" "$url/echo")" = 413 ] || fail "no 413 for 2 MB"

# Pipelined requests over one socket, malformed ones, and another client
# unharmed: kv_compare's sibling in Python.
python3 - "$port" <<'EOF' || fail "pipelining or malformed requests"
import re, socket, sys
port = int(sys.argv[1])

def to_close(s):
    got = b""
    while True:
        c = s.recv(65536)
        if not c:
            return got
        got += c

s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"GET /nothing HTTP/1.1\r\n\r\n"
          + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
got = to_close(s)
codes = re.findall(rb"HTTP/1\.1 (\d{3}) ", got)  # bodies end without a newline
if codes != [b"200", b"200", b"200", b"404", b"200"]:
    sys.exit("pipelined: %r" % codes)
other = socket.create_connection(("127.0.0.1", port), timeout=30)
for bad in [b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n", b"BAD REQUEST LINE\r\n\r\n"]:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(bad)
    got = to_close(s)
    if not got.startswith(b"HTTP/1.1 400 "):
        sys.exit("malformed %r: %r" % (bad, got[:60]))
    other.sendall(b"GET / HTTP/1.1\r\n\r\n")
    if not other.recv(4096).startswith(b"HTTP/1.1 200 "):
        sys.exit("another connection was harmed")
EOF

python3 "$here/replay_corpus.py" "$port" "$here/../fuzz/corpus/http" 'GET / HTTP/1.1\r\n\r\n' \
    'HTTP/1.1 200 ' || fail "the HTTP fuzz corpus harmed another connection"

curl -s "$url/metrics" | grep -q '^tao_frames_in ' || fail "no tao_frames_in in /metrics"

# wrk: keep-alive load, no socket error, no non-2xx.
timeout -k 5 60 wrk -t1 -c32 -d1s "$url/" >"$tmp/wrk.log" 2>&1 || fail "wrk failed"
grep -q "requests in" "$tmp/wrk.log" || fail "wrk did not run"
if grep -q "Socket errors\|Non-2xx" "$tmp/wrk.log"; then
    fail "wrk saw errors: $(grep "Socket errors\|Non-2xx" "$tmp/wrk.log")"
fi
grep "Requests/sec" "$tmp/wrk.log"

kill -TERM "$pid"
until_ok 100 bash -c "! kill -0 $pid 2>/dev/null" || fail "tao-http-server ignored SIGTERM"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] || fail "tao-http-server exited $rc after SIGTERM"
echo "ok: http"
