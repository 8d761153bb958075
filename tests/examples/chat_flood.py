#!/usr/bin/env python3
"""A chat room whose listeners never read, and one sender that floods it.

usage: chat_flood.py PORT SERVER_PID BUDGET_BYTES SECONDS [OVERHEAD]

Opens 500 listener connections that never read (small receive buffers) and
one sender that writes 64 KiB chat messages as fast as the server takes
them for SECONDS, reading (and discarding) whatever comes back to it. The
server's resident memory is sampled throughout: its growth must stay under
the output budget plus a margin. OVERHEAD (default 1) is what the
allocator makes of one byte asked for: AddressSanitizer's redzones, size
classes and shadow nearly double it. Prints the figures; exits 1 on failure.
"""
import socket
import struct
import sys
import time

LISTENERS = 500
MSG = struct.pack("<iI", 1, 65536) + bytes(65536)
MARGIN = 64 << 20  # loops' receive buffers, allocator slack, the sender's frames


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main():
    port, pid, budget, seconds = (int(a) for a in sys.argv[1:5])
    overhead = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    listeners = []
    for _ in range(LISTENERS):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        listeners.append(s)
    sender = socket.create_connection(("127.0.0.1", port))
    sender.setblocking(False)
    time.sleep(0.5)  # every connection accepted
    base = peak = rss(pid)
    sent = 0
    off = 0
    end = time.monotonic() + seconds
    next_sample = 0.0
    while time.monotonic() < end:
        try:
            n = sender.send(MSG[off:])
            off += n
            if off == len(MSG):
                off = 0
                sent += 1
        except BlockingIOError:
            time.sleep(0.001)
        try:
            while sender.recv(1 << 20):
                pass
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now >= next_sample:
            peak = max(peak, rss(pid))
            next_sample = now + 0.05
    peak = max(peak, rss(pid))
    growth = peak - base
    print(f"chat flood: {sent} messages of 64 KiB to {LISTENERS} listeners in {seconds} s; "
          f"server RSS {base >> 20} MiB -> peak {peak >> 20} MiB "
          f"(growth {growth >> 20} MiB, budget {budget >> 20} MiB x {overhead} + margin "
          f"{MARGIN >> 20} MiB)")
    for s in listeners:
        s.close()
    sender.close()
    if sent < 10:
        print("chat flood: the server took almost nothing from the sender")
        return 1
    if growth > budget * overhead + MARGIN:
        print("chat flood: FAIL: memory grew past the budget")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
