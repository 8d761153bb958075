#!/usr/bin/env python3
"""Hold a listening socket as systemd does for a socket unit, and restart
the service on it as `systemctl restart` does: stop, then start.

usage: socket_holder.py DIR GENERATIONS SERVER [ARGS...]

Binds 127.0.0.1 on a free port (written to DIR/port) and listens. Then,
GENERATIONS + 1 times: starts SERVER ARGS with the socket as descriptor 3
and LISTEN_FDS=1, LISTEN_PID=its own pid (systemd's protocol), waits for
its "listening on" line (stdout in DIR/genN.out), waits until DIR/progress
(the storm's count of validated echoes) has grown by 50, and stops it with
SIGTERM: it must exit 0 by itself. Between one generation's exit and the
next one's start nobody accepts: new connections wait in the socket's
queue, which the holder keeps. The last generation runs until DIR/storm.done
exists. Exits 0, or 1 with the reason."""
import os
import signal
import socket
import subprocess
import sys
import time

LIMIT = 60  # seconds for any one step


def fail(why):
    print(f"socket_holder: {why}", flush=True)
    sys.exit(1)


def wait_for(cond, what):
    end = time.monotonic() + LIMIT
    while not cond():
        if time.monotonic() > end:
            fail(f"no {what} within {LIMIT} s")
        time.sleep(0.05)


def progress(d):
    try:
        with open(os.path.join(d, "progress")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def start(d, n, sock, argv):
    out = open(os.path.join(d, f"gen{n}.out"), "w")
    err = open(os.path.join(d, f"gen{n}.err"), "w")

    # LISTEN_PID must be the server's pid: a shell that knows its own sets
    # it and execs the server in its place. The socket becomes descriptor 3
    # (SD_LISTEN_FDS_START) in the child before exec; pass_fds keeps it.
    cmd = ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh"] + argv
    return subprocess.Popen(cmd, stdout=out, stderr=err, pass_fds=(3,),
                            preexec_fn=lambda: os.dup2(sock.fileno(), 3))


def main():
    d, generations, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(str(sock.getsockname()[1]))
    os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    for n in range(1, generations + 2):
        proc = start(d, n, sock, argv)
        out = os.path.join(d, f"gen{n}.out")
        wait_for(lambda: "listening on" in open(out).read() or proc.poll() is not None,
                 f"start of generation {n}")
        if proc.poll() is not None:
            fail(f"generation {n} exited {proc.returncode} at start")
        base = progress(d)
        wait_for(lambda: progress(d) >= base + 50, f"progress under generation {n}")
        print(f"generation {n} serves ({progress(d)} echoes so far)", flush=True)
        if n == generations + 1:
            wait_for(lambda: os.path.exists(os.path.join(d, "storm.done")), "end of the storm")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            fail(f"generation {n} ignored SIGTERM")
        if rc != 0:
            fail(f"generation {n} exited {rc} after SIGTERM")
    print("every generation started on the held socket and stopped cleanly", flush=True)


if __name__ == "__main__":
    main()
