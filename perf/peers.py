#!/usr/bin/env python3
"""usage: peers.py OUT TAO_KV_SERVER TAO_HTTP_SERVER REPS SCALE [SERVER_CPU CLIENT_CPU]

Tao-C next to the servers people would otherwise pick: tao-kv-server
(inline, one loop) against redis-server (--save "" --appendonly no), both
driven by redis-benchmark with 50 connections, SET and GET, pipelined 16
and not pipelined; and tao-http-server (inline, one loop) against nginx
(one worker, no master, access_log off, the same 13-byte body), both
driven by wrk with 64 keep-alive connections. The servers run on SERVER_CPU and redis-benchmark on
CLIENT_CPU when given (taskset). Each repetition runs every cell on both
servers, fresh processes, in alternating order. Writes OUT/peers.jsonl
(one line per run) and OUT/peers.md (medians, paired ratios, targets:
Tao-C at least 1.0x the requests/s and at most 0.9x the server CPU per
request). SCALE multiplies the request counts (1 = quick)."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

CELLS = [("set", 1), ("set", 16), ("get", 1), ("get", 16)]
SERVERS = ["tao-kv", "redis"]
HTTP_SERVERS = ["tao-http", "nginx"]
HTTP_CONNS = 64
CONNS = 50
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    """User + system time of every thread of pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pinned(cpu, argv):
    return (["taskset", "-c", str(cpu)] if cpu is not None else []) + argv


NGINX_CONF = """worker_processes 1;
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "Hello, world!"; }}
    }}
}}
"""


def start(server, prog, cpu, tmpdir=None):
    port = free_port()
    if server in ("tao-kv", "tao-http"):
        argv = [prog, "--listen", f"127.0.0.1:{port}", "--workers", "0", "--loops", "1"]
    elif server == "nginx":
        conf = os.path.join(tmpdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=tmpdir, port=port))
        argv = ["nginx", "-c", conf, "-p", tmpdir, "-e", os.path.join(tmpdir, "error.log")]
    else:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
    p = subprocess.Popen(pinned(cpu, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            if p.poll() is not None:
                sys.exit(f"peers: {server} did not start")
            time.sleep(0.02)
    p.kill()
    sys.exit(f"peers: {server} is not listening")


def bench(port, test, depth, n, cpu):
    argv = pinned(cpu, ["redis-benchmark", "-p", str(port), "-c", str(CONNS), "-n", str(n),
                        "-P", str(depth), "-t", test, "--csv"])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 or "error" in (out.stdout + out.stderr).lower():
        sys.exit(f"peers: redis-benchmark failed: {out.stdout[-300:]} {out.stderr[-300:]}")
    for line in out.stdout.splitlines():
        cols = [c.strip('"') for c in line.split(",")]
        if cols and cols[0].upper() == test.upper():
            return float(cols[1])
    sys.exit(f"peers: no result in redis-benchmark's output: {out.stdout[-300:]}")


def run_one(server, test, depth, n, kv, cpus):
    p, port = start(server, kv, cpus[0])
    try:
        if test == "get":  # the key GET asks for, so replies carry a value
            bench(port, "set", 1, 1000, cpus[1])
        before = cpu_seconds(p.pid)
        rps = bench(port, test, depth, n, cpus[1])
        cpu = cpu_seconds(p.pid) - before
    finally:
        p.terminate()
        p.wait(timeout=30)
    return {"cell": f"{test}-p{depth}", "server": server, "rps": rps,
            "cpu_us_per_req": cpu * 1e6 / n, "requests": n}


def wrk(port, seconds, cpu):
    argv = pinned(cpu, ["wrk", "-t1", f"-c{HTTP_CONNS}", f"-d{seconds}s", "--latency",
                        f"http://127.0.0.1:{port}/"])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
    if "Socket errors" in out or "Non-2xx" in out:
        sys.exit(f"peers: wrk saw errors: {out}")
    total = rps = p99 = None
    for line in out.splitlines():
        w = line.split()
        if len(w) >= 3 and w[1] == "requests" and w[2] == "in":
            total = int(w[0])
        elif line.startswith("Requests/sec:"):
            rps = float(w[1])
        elif len(w) == 2 and w[0] == "99%":
            v = w[1]
            units = {"us": 1e-3, "ms": 1.0}
            p99 = float(v[:-2]) * units[v[-2:]] if v[-2:] in units else float(v[:-1]) * 1e3
    if not total or rps is None:
        sys.exit(f"peers: no result in wrk's output: {out[-300:]}")
    return total, rps, p99


def run_http(server, prog, seconds, cpus, tmpdir):
    p, port = start(server, prog, cpus[0], tmpdir)
    try:
        before = cpu_seconds(p.pid)
        total, rps, p99 = wrk(port, seconds, cpus[1])
        cpu = cpu_seconds(p.pid) - before
    finally:
        p.terminate()
        p.wait(timeout=30)
    return {"cell": f"http-c{HTTP_CONNS}", "server": server, "rps": rps, "p99_ms": p99,
            "cpu_us_per_req": cpu * 1e6 / total, "requests": total}


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def main():
    if len(sys.argv) not in (6, 8):
        sys.exit(__doc__)
    out, kv, http = sys.argv[1], sys.argv[2], sys.argv[3]
    reps, scale = int(sys.argv[4]), float(sys.argv[5])
    cpus = (sys.argv[6], sys.argv[7]) if len(sys.argv) == 8 else (None, None)
    tmpdir = os.path.join(out, "nginx")
    os.makedirs(tmpdir, exist_ok=True)
    runs = []
    with open(os.path.join(out, "peers.jsonl"), "w") as jl:
        for rep in range(reps):
            for test, depth in CELLS:
                n = int((100000 if depth == 1 else 400000) * scale)
                order = SERVERS if rep % 2 == 0 else SERVERS[::-1]
                for server in order:
                    print(f"peers: rep {rep + 1} {test}-p{depth} {server}", file=sys.stderr)
                    r = run_one(server, test, depth, n, kv, cpus)
                    r["rep"] = rep
                    jl.write(json.dumps(r) + "\n")
                    runs.append(r)
            order = HTTP_SERVERS if rep % 2 == 0 else HTTP_SERVERS[::-1]
            for server in order:
                print(f"peers: rep {rep + 1} http-c{HTTP_CONNS} {server}", file=sys.stderr)
                r = run_http(server, http, max(1, round(2 * scale)), cpus, tmpdir)
                r["rep"] = rep
                jl.write(json.dumps(r) + "\n")
                runs.append(r)

    by = {}
    for r in runs:
        by.setdefault((r["cell"], r["server"]), {})[r["rep"]] = r
    lines = ["## Peers: tao-kv-server and redis-server, tao-http-server and nginx", "",
             f"redis-benchmark, {CONNS} connections, SET and GET, pipelined 16 (p16) and not "
             f"(p1); tao-kv-server `--workers 0 --loops 1`, redis-server `--save \"\" "
             f"--appendonly no`; {reps} repetition(s), fresh servers, alternating order. Ratios "
             f"are medians of paired ratios (Tao-C / Redis, same cell and repetition).", "",
             "| cell | server | requests/s | server µs/request |", "|---|---|--:|--:|"]
    verdicts = []
    for test, depth in CELLS:
        cell = f"{test}-p{depth}"
        for s in SERVERS:
            rs = list(by.get((cell, s), {}).values())
            lines.append(f"| {cell} | {s} | {med([r['rps'] for r in rs]):,.0f} | "
                         f"{med([r['cpu_us_per_req'] for r in rs]):.2f} |")
        pairs = [(by[(cell, 'tao-kv')][k], by[(cell, 'redis')][k])
                 for k in by.get((cell, "tao-kv"), {}) if k in by.get((cell, "redis"), {})]
        tput = med([a["rps"] / b["rps"] for a, b in pairs if b["rps"]])
        cpu = med([a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in pairs
                   if b["cpu_us_per_req"]])
        for what, v, ok in ((f"{cell}: requests/s, Tao-C vs Redis, at least 1.00x", tput,
                             tput is not None and tput >= 1.0),
                            (f"{cell}: server CPU/request, Tao-C vs Redis, at most 0.90x", cpu,
                             cpu is not None and cpu <= 0.9)):
            status = "not measured" if v is None else ("met" if ok else "MISSED")
            verdicts.append((what, "-" if v is None else f"{v:.3f}x", status))
    cell = f"http-c{HTTP_CONNS}"
    lines += ["", f"wrk, {HTTP_CONNS} keep-alive connections, GET / (13 bytes): tao-http-server "
              f"`--workers 0 --loops 1` against nginx (one worker, no master process, "
              f"access_log off, `return 200 \"Hello, world!\"`).", "",
              "| cell | server | requests/s | p99 ms | server µs/request |", "|---|---|--:|--:|--:|"]
    for s in HTTP_SERVERS:
        rs = list(by.get((cell, s), {}).values())
        p99 = med([r.get("p99_ms") for r in rs])
        lines.append(f"| {cell} | {s} | {med([r['rps'] for r in rs]):,.0f} | "
                     f"{'-' if p99 is None else format(p99, '.2f')} | "
                     f"{med([r['cpu_us_per_req'] for r in rs]):.2f} |")
    pairs = [(by[(cell, "tao-http")][k], by[(cell, "nginx")][k])
             for k in by.get((cell, "tao-http"), {}) if k in by.get((cell, "nginx"), {})]
    tput = med([a["rps"] / b["rps"] for a, b in pairs if b["rps"]])
    cpu = med([a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in pairs
               if b["cpu_us_per_req"]])
    verdicts.append((f"{cell}: requests/s, Tao-C vs nginx, at least 1.00x",
                     "-" if tput is None else f"{tput:.3f}x",
                     "not measured" if tput is None else "met" if tput >= 1.0 else "MISSED"))
    verdicts.append((f"{cell}: server CPU/request, Tao-C vs nginx, at most 0.90x",
                     "-" if cpu is None else f"{cpu:.3f}x",
                     "not measured" if cpu is None else "met" if cpu <= 0.9 else "MISSED"))
    lines += ["", "| target | measured | status |", "|---|--:|---|"]
    lines += [f"| {d} | {m} | {s} |" for d, m, s in verdicts]
    lines.append("")
    with open(os.path.join(out, "peers.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
