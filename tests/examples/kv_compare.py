#!/usr/bin/env python3
"""usage: kv_compare.py KV_PORT REDIS_PORT

The same requests, pipelined in one write, to tao-kv-server and to
redis-server on 127.0.0.1: the replies must be the same bytes. Then
malformed requests: each gets a protocol error and only its own connection
closes. Exit 0 when all holds, 1 with the first difference."""
import socket
import sys


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


REQUESTS = [
    resp("FLUSHALL"), resp("PING"), resp("PING", "x"), resp("ECHO", b"\r\n\x00\xff"),
    resp("SET", "k", "v"), resp("GET", "k"), resp("GET", "nope"),
    resp("SET", "k", "w", "XX"), resp("SET", "k", "z", "NX"), resp("SET", "e", "v", "PX", 10000000),
    resp("SET", "k", "v", "EX", "-5"), resp("SET", "k", "v", "EX", "1.5"), resp("SET", "k", "v", "EX"),
    resp("INCR", "n"), resp("INCR", "n"), resp("INCR", "k"), resp("SET", "m", "-0"), resp("INCR", "m"),
    resp("SET", "m", "01"), resp("INCR", "m"), resp("SET", "m", "-9223372036854775808"), resp("INCR", "m"),
    resp("MSET", "a", "1", "b", b""), resp("MGET", "a", "b", "nope"), resp("MSET", "a", "1", "b"),
    resp("EXISTS", "a", "a", "nope"), resp("DEL", "a", "a", "b"), resp("TTL", "k"), resp("TTL", "nope"),
    resp("EXPIRE", "k", "0"), resp("GET", "k"), resp("EXPIRE", "nope", "5"), resp("EXPIRE", "n", "zz"),
    resp("DBSIZE"), resp("get"), resp("Get", "n"), resp("UNKNOWN", "a" * 200, "b"),
    resp("UNKNOWN", "line\r\nbreak"), resp("FLUSHALL", "NOW"), resp("FLUSHALL"), resp("DBSIZE"),
    b"PING\r\n", b"SET inline 'a b'\r\n", b"GET inline\r\n", b"\r\n", b"ECHO \"x y\"\n",
    resp("PING"),
]


def reply_len(buf, at=0):
    """Bytes of the complete RESP reply at buf[at:], or None when partial."""
    end = buf.find(b"\r\n", at)
    if end < 0:
        return None
    kind, head = buf[at:at + 1], buf[at + 1:end]
    n = end + 2 - at
    if kind in (b"+", b"-", b":"):
        return n
    count = int(head)
    if kind == b"$":
        if count < 0:
            return n
        return n + count + 2 if len(buf) - at >= n + count + 2 else None
    if kind == b"*":
        for _ in range(max(count, 0)):
            m = reply_len(buf, at + n)
            if m is None:
                return None
            n += m
        return n
    raise ValueError("not RESP: %r" % buf[at:at + 40])


def replies(port, data, count):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(data)
    buf, got = b"", []
    while len(got) < count:
        at = sum(len(g) for g in got)
        n = reply_len(buf, at) if len(buf) > at else None
        if n is None:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            continue
        got.append(buf[at:at + n])
    s.close()
    return got


def main():
    kv, redis = int(sys.argv[1]), int(sys.argv[2])
    data = b"".join(REQUESTS)
    want_n = len(REQUESTS) - 1  # the empty inline line gets no reply
    a, b = replies(kv, data, want_n), replies(redis, data, want_n)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            print("reply %d differs:\n  tao-kv-server %r\n  redis-server  %r" % (i, x, y))
            return 1
    if len(a) != want_n or len(b) != want_n:
        print("replies: tao-kv-server %d, redis-server %d, expected %d" % (len(a), len(b), want_n))
        return 1
    print("%d pipelined replies, byte for byte the same" % want_n)

    # Malformed input: a protocol error, that connection closed, another
    # connection unharmed.
    bystander = socket.create_connection(("127.0.0.1", kv), timeout=30)
    for bad in [b"*1\r\n$x\r\n", b"*2\r\n:1\r\n", b"*1\r\n$3\r\nabcde\r\n",
                b"*1\r\n$999999999999\r\n", b"*1\n"]:
        s = socket.create_connection(("127.0.0.1", kv), timeout=30)
        s.sendall(resp("PING") + bad)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        if not (got.startswith(b"+PONG\r\n-ERR Protocol error") and got.endswith(b"\r\n")):
            print("malformed %r: got %r, then the close" % (bad, got))
            return 1
        bystander.sendall(resp("PING"))
        if bystander.recv(64) != b"+PONG\r\n":
            print("another connection was harmed by %r" % bad)
            return 1
    bystander.close()
    print("malformed requests: each got a protocol error and only its connection closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
