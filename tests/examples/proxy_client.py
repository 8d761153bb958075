#!/usr/bin/env python3
"""One echo through a PROXY header, as a load balancer would send it.

usage: proxy_client.py PORT FORM [CA]

FORM is v1, v2 (the header names the client 192.0.2.7:4242, or
[2001:db8::7]:4242 with v1-6 and v2-6) or none. With CA, TLS starts after
the header, trusting CA for the name localhost. Sends one Go Tao TLV frame
(type 1), checks its echo byte for byte, and prints "local HOST:PORT", the
socket's own address, which the server sees as the proxy's. Exits 0, or 1
with the reason."""
import socket
import ssl
import struct
import sys

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def header(form):
    if form == "v1":
        return b"PROXY TCP4 192.0.2.7 198.51.100.1 4242 443\r\n"
    if form == "v1-6":
        return b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n"
    if form == "v2":
        addrs = socket.inet_aton("192.0.2.7") + socket.inet_aton("198.51.100.1")
        body = addrs + struct.pack(">HH", 4242, 443)
        return V2_SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body
    if form == "v2-6":
        addrs = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        addrs += socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        body = addrs + struct.pack(">HH", 4242, 443) + b"\x04\x00\x02zz"  # a NOOP TLV
        return V2_SIG + bytes([0x21, 0x21]) + struct.pack(">H", len(body)) + body
    if form == "none":
        return b""
    sys.exit(f"unknown form {form}")


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            sys.exit(f"the server closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def main():
    port, form = int(sys.argv[1]), sys.argv[2]
    ca = sys.argv[3] if len(sys.argv) > 3 else None
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    local = sock.getsockname()
    sock.sendall(header(form))
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    payload = f"through a {form} header".encode()
    sock.sendall(struct.pack("<iI", 1, len(payload)) + payload)
    typ, n = struct.unpack("<iI", read_exact(sock, 8))
    got = read_exact(sock, n)
    if typ != 1 or got != payload:
        sys.exit(f"wrong echo: type {typ}, {got!r}")
    print(f"local {local[0]}:{local[1]}")
    sock.close()


if __name__ == "__main__":
    main()
