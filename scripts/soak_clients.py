#!/usr/bin/env python3
"""Short-lived and misbehaving clients of a TLV echo server, for scripts/soak.sh.

    soak_clients.py --connect 127.0.0.1:PORT --seconds 60 \\
        --idle-timeout 2000 --read-timeout 1000

Several threads each run one connection at a time, drawing scenarios from a
shuffled deck so that every kind comes up early and keeps coming up:

  churn        a few pipelined frames, every echo checked, close
  half-close   frames, then shutdown(SHUT_WR): every echo, then the server's FIN
  rst          frames, some echoes read, then an RST (SO_LINGER 0) mid-stream
  unread       frames, then close at once with the echoes unread
  idle         one echo, then silence: the idle timeout must close it
  slowloris    one frame a byte at a time: the read timeout must close it
  partial      part of a frame, then silence: a timeout must close it
  oversized    a header announcing more than the server's limit: closed
  stuck        frames sent and no echo read until the server's output backs
               up: the idle timeout must abort it (RST), at most one at a time

The server's timeouts are given on the command line so that closes can be
told early, on time or missing. Only loopback addresses are accepted. Prints
what ran and any errors, then one JSON line; exits 1 on any error.
"""

import argparse
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time
from errno import ECONNRESET, EPIPE

MSG_TYPE = 1
HEADER = struct.Struct("<iI")  # Go Tao's TLV: type, then payload length, little-endian
MAX_FRAME = 8 * 1024 * 1024  # the server's default limit
SLACK = 3.0  # seconds a close may come after its timeout on a busy machine
EARLY = 0.9  # a close before this share of its timeout is early

# The quick kinds often, the slow ones (a timeout each) once per deck.
DECK = (["churn"] * 20 + ["half-close"] * 4 + ["rst"] * 6 + ["unread"] * 4 + ["oversized"] * 2 +
        ["idle", "slowloris", "partial", "stuck"])


class Failure(Exception):
    """A scenario saw something the server must not do."""


def frame(payload):
    return HEADER.pack(MSG_TYPE, len(payload)) + payload


def frames(count, max_size):
    """count frames of random sizes and bytes, as one byte string."""
    return b"".join(frame(os.urandom(random.randint(0, max_size))) for _ in range(count))


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise Failure(f"connection closed after {len(buf)} of {n} echoed bytes")
        buf += chunk
    return bytes(buf)


def expect_echo(s, sent):
    if recv_exact(s, len(sent)) != sent:
        raise Failure(f"echo of {len(sent)} bytes differs from what was sent")


def wait_closed(s, limit):
    """Read until the server closes (FIN or RST); returns seconds waited.
    Bytes arriving meanwhile are an error: nothing more is owed."""
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        data = s.recv(4096)
    except socket.timeout:
        raise Failure(f"not closed within {limit:.1f} s") from None
    except ConnectionResetError:
        return time.monotonic() - t0
    if data:
        raise Failure(f"{len(data)} unexpected bytes instead of a close")
    return time.monotonic() - t0


def check_on_time(waited, timeout_s, what):
    if waited < timeout_s * EARLY:
        raise Failure(f"closed after {waited:.2f} s, before its {what} of {timeout_s:.1f} s")


class Soak:
    def __init__(self, args):
        host, port = args.connect.rsplit(":", 1)
        self.addr = (host, int(port))
        self.idle_s = args.idle_timeout / 1000
        self.read_s = args.read_timeout / 1000
        self.deadline = time.monotonic() + args.seconds
        self.lock = threading.Lock()
        self.stuck_lock = threading.Lock()  # one stuck client's backlog at a time
        self.runs = {name: 0 for name in set(DECK)}
        self.errors = []

    def connect(self, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(self.addr)
        return s

    # ---- the scenarios: each opens one connection and closes it ------------------

    def churn(self, s):
        sent = frames(random.randint(1, 16), 4096)
        s.sendall(sent)
        expect_echo(s, sent)

    def half_close(self, s):
        sent = frames(random.randint(1, 32), 8192)
        s.sendall(sent)
        s.shutdown(socket.SHUT_WR)
        expect_echo(s, sent)  # every reply is flushed before the server's FIN
        wait_closed(s, SLACK)

    def rst(self, s):
        whole = frames(random.randint(10, 200), 8192)
        cut = frame(os.urandom(1000))[:500] if random.random() < 0.5 else b""
        s.sendall(whole + cut)  # half the time ending inside a frame
        expect_echo(s, whole[: random.randint(0, len(whole) // 2)])  # any prefix echoes
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def unread(self, s):
        s.sendall(frames(random.randint(1, 100), 4096))

    def idle(self, s):
        sent = frames(1, 256)
        s.sendall(sent)
        expect_echo(s, sent)
        check_on_time(wait_closed(s, self.idle_s + SLACK), self.idle_s, "idle timeout")

    def slowloris(self, s):
        # A byte every fifth of the read timeout keeps the idle timeout away,
        # so only the read timeout can end this.
        data = frame(os.urandom(4096))
        gap = min(self.read_s, self.idle_s) / 5
        t0 = time.monotonic()
        for i in range(len(data)):
            try:
                s.sendall(data[i : i + 1])
            except (ConnectionResetError, BrokenPipeError):
                break
            r, _, _ = select.select([s], [], [], gap)
            if r:
                break
            if time.monotonic() - t0 > self.read_s + SLACK:
                raise Failure(f"a frame trickling for {self.read_s + SLACK:.1f} s was not closed")
        waited = time.monotonic() - t0 + wait_closed(s, SLACK)
        check_on_time(waited, self.read_s, "read timeout")

    def partial(self, s):
        whole = frames(random.randint(0, 3), 1024)
        cut = frame(os.urandom(2000))
        s.sendall(whole + cut[: random.randint(1, len(cut) - 1)])
        expect_echo(s, whole)
        limit = max(self.idle_s, self.read_s) + SLACK
        check_on_time(wait_closed(s, limit), min(self.idle_s, self.read_s), "timeout")

    def oversized(self, s):
        s.sendall(HEADER.pack(MSG_TYPE, MAX_FRAME + random.randint(1, 1 << 20)))
        wait_closed(s, SLACK)

    def stuck(self, s):
        # Keep sending and never read: the server stops reading once its
        # output for us passes its high watermark, our send then blocks, and
        # the idle timeout finds replies owed, so it must abort (RST).
        chunk = frames(16, 4096)
        s.settimeout(0.5)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 20:
                s.sendall(chunk)
        except socket.timeout:
            pass
        except (ConnectionResetError, BrokenPipeError):
            # The server stopped reading a while ago and its idle clock ran
            # out while our send buffer was still filling: aborted already.
            return
        # No early check: the server's idle clock started when it last read
        # from us, which our own send buffer hides.
        p = select.poll()
        p.register(s, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
        if not p.poll((self.idle_s + SLACK) * 1000):
            raise Failure(f"a client not reading was not aborted within {self.idle_s + SLACK:.1f} s")
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != ECONNRESET:
            raise Failure(f"a client owed replies was closed without an RST ({os.strerror(err)})")

    # ---- running them -----------------------------------------------------------

    def run_one(self, name):
        if name == "stuck" and not self.stuck_lock.acquire(blocking=False):
            name = "churn"  # another thread holds the one stuck client
        elif name == "stuck":
            try:
                self.run_scenario(name, rcvbuf=65536)
            finally:
                self.stuck_lock.release()
            return
        self.run_scenario(name)

    def run_scenario(self, name, rcvbuf=None):
        try:
            s = self.connect(rcvbuf)
        except OSError as e:
            self.fail(name, f"connect: {e}")
            return
        try:
            getattr(self, name.replace("-", "_"))(s)
            with self.lock:
                self.runs[name] += 1
        except Failure as e:
            self.fail(name, str(e))
        except OSError as e:
            if isinstance(e, socket.timeout):
                self.fail(name, "no progress for 10 s")
            elif e.errno in (ECONNRESET, EPIPE) and name in ("rst", "unread", "oversized"):
                with self.lock:  # the server may answer bad input with an RST
                    self.runs[name] += 1
            else:
                self.fail(name, f"{e.__class__.__name__}: {e}")
        finally:
            s.close()

    def fail(self, name, why):
        with self.lock:
            self.errors.append(f"{name}: {why}")
            if len(self.errors) <= 10:
                print(f"soak-clients: error in {name}: {why}", file=sys.stderr, flush=True)

    def thread_main(self, seed):
        rng = random.Random(seed)
        while time.monotonic() < self.deadline:
            deck = list(DECK)
            rng.shuffle(deck)
            for name in deck:
                if time.monotonic() >= self.deadline:
                    return
                self.run_one(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connect", required=True, help="HOST:PORT of the server, loopback only")
    ap.add_argument("--seconds", type=float, required=True, help="start no scenario after this")
    ap.add_argument("--threads", type=int, default=6, help="connections at once (default 6)")
    ap.add_argument("--idle-timeout", type=int, required=True, help="the server's, in ms")
    ap.add_argument("--read-timeout", type=int, required=True, help="the server's, in ms")
    args = ap.parse_args()
    host = args.connect.rsplit(":", 1)[0]
    if not host.startswith("127."):
        ap.error("only 127.x.x.x addresses: this is a load test")

    soak = Soak(args)
    threads = [threading.Thread(target=soak.thread_main, args=(i,), daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    total = sum(soak.runs.values())
    print(f"soak-clients: {total} connections: " +
          ", ".join(f"{k} {v}" for k, v in sorted(soak.runs.items())))
    print(f"soak-clients: errors {len(soak.errors)}")
    print(json.dumps({"connections": total, "errors": len(soak.errors), "runs": soak.runs}))
    sys.exit(1 if soak.errors else 0)


if __name__ == "__main__":
    main()
