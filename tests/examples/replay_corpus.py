#!/usr/bin/env python3
"""usage: replay_corpus.py PORT CORPUS_DIR PROBE EXPECT [PREAMBLE]

Send each file of a fuzz corpus to a server on 127.0.0.1:PORT over its own
connection, reading what comes back until the server closes or goes quiet;
meanwhile one other connection stays open, and after each file the PROBE
bytes sent on it must get a reply starting with EXPECT. So malformed input
of the protocol closes (at most) its own connection, never the server or a
neighbour. PREAMBLE, when given, is sent once on the other connection
first (a PROXY header, for a server that requires one). Exit 0 when all
holds."""
import os
import socket
import sys


def unescape(arg):
    """The bytes of an argument written with Python escapes (\\r, \\x01)."""
    return arg.encode().decode("unicode_escape").encode("latin-1")


def drain(s, quiet):
    s.settimeout(quiet)
    try:
        while s.recv(65536):
            pass
    except (socket.timeout, ConnectionResetError):
        pass


def main():
    port, corpus = int(sys.argv[1]), sys.argv[2]
    probe, expect = unescape(sys.argv[3]), unescape(sys.argv[4])
    bystander = socket.create_connection(("127.0.0.1", port), timeout=30)
    if len(sys.argv) > 5:
        bystander.sendall(unescape(sys.argv[5]))
    files = sorted(os.listdir(corpus))
    for name in files:
        with open(os.path.join(corpus, name), "rb") as f:
            data = f.read()
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # closed (or reset) before all was sent: its right
            pass
        drain(s, 2.0)
        s.close()
        bystander.sendall(probe)
        bystander.settimeout(30)
        got = bystander.recv(4096)
        if not got.startswith(expect):
            print("after %s the other connection got %r" % (name, got[:80]))
            return 1
    print("%d corpus files replayed; the other connection was served after each" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
