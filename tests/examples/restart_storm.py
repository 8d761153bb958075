#!/usr/bin/env python3
"""A storm of short connections for the restart test (run_restart.sh).

usage: restart_storm.py PORT STOP_FILE PROGRESS_FILE [THREADS]

Each thread connects to 127.0.0.1:PORT, sends one TLV frame (type 1, a
payload of its own), reads the echo, checks it byte for byte and closes;
again and again until STOP_FILE exists. Every outcome is counted: ok,
refused, reset (a reset, or the peer closing before the whole echo),
wrong (a different echo), timeout. PROGRESS_FILE holds the count of
validated echoes, rewritten as it grows, so the script can wait for
progress after each restart. Exits 0 only when nothing but ok was seen
and there was at least one.
"""
import os
import socket
import struct
import sys
import threading
import time

port, stop_file, progress_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
nthreads = int(sys.argv[4]) if len(sys.argv) > 4 else 4
counts = {"ok": 0, "refused": 0, "reset": 0, "wrong": 0, "timeout": 0}
errors = []
lock = threading.Lock()


def count(what, detail=None):
    with lock:
        counts[what] += 1
        if detail and len(errors) < 10:
            errors.append(detail)


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def one(tid, seq):
    payload = ("storm %d/%d " % (tid, seq)).encode() * 3
    frame = struct.pack("<iI", 1, len(payload)) + payload
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(frame)
        echo = read_exact(s, len(frame))
        if echo != frame:
            count("wrong", "%d/%d: %r" % (tid, seq, echo[:40]))
        else:
            count("ok")
    except ConnectionRefusedError as e:
        count("refused", "%d/%d: %s" % (tid, seq, e))
    except (ConnectionResetError, BrokenPipeError) as e:
        count("reset", "%d/%d: %s" % (tid, seq, e))
    except socket.timeout as e:
        count("timeout", "%d/%d: %s" % (tid, seq, e))
    finally:
        s.close()


def run(tid):
    seq = 0
    while not os.path.exists(stop_file):
        one(tid, seq)
        seq += 1


threads = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
for t in threads:
    t.start()
last = -1
while any(t.is_alive() for t in threads):
    with lock:
        ok = counts["ok"]
    if ok != last:
        with open(progress_file + ".tmp", "w") as f:
            f.write("%d\n" % ok)
        os.replace(progress_file + ".tmp", progress_file)
        last = ok
    time.sleep(0.05)
for t in threads:
    t.join()
print("storm: " + ", ".join("%s %d" % kv for kv in counts.items()))
for e in errors:
    print("  " + e)
bad = sum(v for k, v in counts.items() if k != "ok")
sys.exit(0 if bad == 0 and counts["ok"] > 0 else 1)
