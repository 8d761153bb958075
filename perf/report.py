#!/usr/bin/env python3
"""Turn the runs of scripts/perf.sh into a table, a report and a chart.

usage: report.py OUT_DIR key=value...

Reads OUT_DIR/results.jsonl (one line per tao-loadgen run, labelled
"cell=C server=S rep=R") and writes OUT_DIR/summary.csv, OUT_DIR/report.md,
OUT_DIR/chart.dat and OUT_DIR/chart.gp (perf.sh runs gnuplot on it), and
prints the table. The key=value arguments describe the machine and the
method; they go into the report as given.

Every figure is a median over the repetitions. Ratios against the two
baselines (the hand-written epoll echo, and the bare liburing echo: the
ceiling) are paired: each run is divided by the baseline run of the same
cell and repetition (run next to it), and the median of those ratios is
reported, which cancels slow drifts of a shared machine.
"""
import csv
import datetime
import json
import os
import statistics
import sys

BASE = "epoll"
CEIL = "uring"
BASELINES = (BASE, CEIL)
SERVERS = ["tao-inline", "tao-workers", "tao-epoll", "epoll", "uring"]
CELL_TEXT = {
    "latency": "latency: 1 conn, 1 in flight, 64 B",
    "conns64": "64 conns, 1 in flight, 64 B",
    "pipelined": "pipelined: 64 conns, 16 in flight, 64 B",
    "mid": "mid: 256 conns, 4 in flight, 512 B",
    "large": "large: 64 conns, 4 in flight, 16 KiB",
    "conns1000": "1,000 conns, 1 in flight, 64 B",
    "storm": "connect storm: 16 at a time, one 64 B echo each",
    "idle": "idle connections: server memory",
}

# What a target compares: (text, server, other server, metric name). "memory"
# (bytes of server RSS per idle connection, Tao-C inline) has no pair.
COMPARE = {
    "cpu": ("server CPU/msg, Tao-C inline vs epoll", "tao-inline", BASE, "cpu"),
    "cpu_uring": ("server CPU/msg, Tao-C inline vs the bare liburing echo", "tao-inline", CEIL,
                  "cpu"),
    "tput": ("throughput, Tao-C inline vs epoll", "tao-inline", BASE, "tput"),
    "workers": ("server CPU/msg, workers vs inline", "tao-workers", "tao-inline", "cpu"),
    "workers_epoll": ("server CPU/msg, workers vs epoll", "tao-workers", BASE, "cpu"),
    "epollbe": ("server CPU/msg, Tao-C inline on its epoll backend vs epoll", "tao-epoll", BASE,
                "cpu"),
}
SMALL = ("conns64", "pipelined", "mid", "conns1000")
ALL = ("latency", "conns64", "pipelined", "mid", "large", "conns1000", "storm")
# (what, cell, comparison, limit): issue 17's targets, then the epoll
# backend's.
TARGETS = (
    [("cpu", c, "<=", 0.85) for c in SMALL] + [("cpu", "large", "<=", 1.0)]
    + [("cpu_uring", c, "<=", 0.95) for c in SMALL] + [("cpu_uring", "large", "<=", 1.0)]
    + [("tput", c, ">=", 1.0) for c in ALL]
    + [("workers", "pipelined", "<=", 1.25), ("workers_epoll", "conns64", "<=", 1.0),
       ("memory", "idle", "<=", 1024.0)]
    + [("epollbe", c, "<=", 1.15) for c in ALL]
)


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            tags = dict(kv.split("=", 1) for kv in r["label"].split())
            key = (tags["cell"], tags["server"])
            runs.setdefault(key, {})[int(tags["rep"])] = r
    return runs


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cpu_per_msg(r):
    v = r.get("server_cpu_us_per_msg", -1)
    return v if v is not None and v >= 0 and r.get("msgs") else None


def paired_all(runs, cell, server, other, metric):
    """metric(server run) / metric(other run), for each repetition."""
    a, b = runs.get((cell, server), {}), runs.get((cell, other), {})
    ratios = []
    for rep in sorted(set(a) & set(b)):
        x, y = metric(a[rep]), metric(b[rep])
        if x is not None and y:
            ratios.append(x / y)
    return ratios


def paired(runs, cell, server, other, metric):
    """The median over repetitions of the paired ratios."""
    return med(paired_all(runs, cell, server, other, metric))


def tput(r):
    return r.get("msgs_per_s") or None


def summarize(runs, cells):
    rows = []
    for cell in cells:
        for server in SERVERS:
            reps = runs.get((cell, server))
            if not reps:
                continue
            rs = list(reps.values())
            row = {
                "cell": cell,
                "server": server,
                "runs": len(rs),
                "errors": sum(r.get("errors", 0) for r in rs),
                "failed": sum(1 for r in rs if not r.get("ok")),
            }
            if cell == "idle":
                row["bytes_per_conn"] = med([r.get("bytes_per_idle_conn") for r in rs])
                row["idle_conns"] = med([r.get("idle_conns") for r in rs])
            else:
                for k in ("msgs_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us",
                          "client_cpu_us_per_msg"):
                    row[k] = med([r.get(k) for r in rs])
                row["server_cpu_us_per_msg"] = med([cpu_per_msg(r) for r in rs])
                for b in BASELINES:
                    if server not in BASELINES:
                        row[f"cpu_vs_{b}"] = paired(runs, cell, server, b, cpu_per_msg)
                        row[f"tput_vs_{b}"] = paired(runs, cell, server, b, tput)
            rows.append(row)
    return rows


def judge(runs, rows, idle_conns):
    """One line per target: (description, measured text, status text)."""
    by = {(r["cell"], r["server"]): r for r in rows}
    out = []
    for what, cell, cmp, limit in TARGETS:
        spread = []
        if what != "memory":
            text, server, other, metric = COMPARE[what]
            bound = "at most" if cmp == "<=" else "at least"
            desc = f"{cell}: {text}, {bound} {limit:.2f}x"
            spread = paired_all(runs, cell, server, other,
                                cpu_per_msg if metric == "cpu" else tput)
            v = med(spread)
        else:
            desc = f"idle memory: Tao-C inline, at most {limit:.0f} bytes per connection"
            v = by.get(("idle", "tao-inline"), {}).get("bytes_per_conn")
        if v is None:
            out.append((desc, "not measured", "not run"))
            continue
        shown = f"{v:.0f} B" if what == "memory" else f"{v:.3f}x"
        if len(spread) > 1:
            shown += f" ({min(spread):.2f}-{max(spread):.2f})"
        if what == "memory" and idle_conns < 10000:
            # Fixed costs spread over fewer connections: not comparable.
            out.append((desc, shown, f"not judged ({idle_conns} connections, not 10,000)"))
            continue
        ok = v <= limit if cmp == "<=" else v >= limit
        gap = abs(v - limit) / limit * 100
        g = f"{gap:.1f}" if gap < 10 else f"{gap:.0f}"
        status = f"met ({g}% margin)" if ok else f"MISSED by {g}%"
        out.append((desc, shown, status))
    return out


def other_load(runs):
    """Median and largest share of a core that other processes used during
    the measured windows, or None when the runs do not say."""
    shares = []
    for reps in runs.values():
        for r in reps.values():
            o, w = r.get("other_cpu_s", -1), r.get("window_s", 0)
            if o is not None and o >= 0 and w and r.get("mode") != "idle":
                shares.append(o / w)
    return (statistics.median(shares), max(shares)) if shares else None


def ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def table_lines(rows):
    head = (f"{'cell':<10} {'server':<11} {'msgs/s':>9} {'MB/s':>7} {'srv us/msg':>10} "
            f"{'lg us/msg':>9} {'p50 us':>8} {'p99 us':>8} {'cpu/epoll':>9} {'tput/epoll':>10} "
            f"{'cpu/uring':>9} {'tput/uring':>10} {'errors':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["cell"] == "idle":
            lines.append(f"{'idle':<10} {r['server']:<11} "
                         f"{fmt(r.get('bytes_per_conn'), '.0f'):>9} bytes of server RSS per idle "
                         f"connection ({fmt(r.get('idle_conns'), '.0f')} held)"
                         f"{'':>10} {r['errors']:>6}")
            continue
        lines.append(
            f"{r['cell']:<10} {r['server']:<11} {fmt(r['msgs_per_s'], '.0f'):>9} "
            f"{fmt(r['mb_per_s'], '.1f'):>7} {fmt(r['server_cpu_us_per_msg'], '.2f'):>10} "
            f"{fmt(r['client_cpu_us_per_msg'], '.2f'):>9} {fmt(r['p50_us'], '.1f'):>8} "
            f"{fmt(r['p99_us'], '.1f'):>8} {fmt(r.get('cpu_vs_epoll'), '.2f'):>9} "
            f"{fmt(r.get('tput_vs_epoll'), '.2f'):>10} {fmt(r.get('cpu_vs_uring'), '.2f'):>9} "
            f"{fmt(r.get('tput_vs_uring'), '.2f'):>10} {r['errors']:>6}")
    return lines


def write_csv(path, rows):
    keys = ["cell", "server", "runs", "msgs_per_s", "mb_per_s", "server_cpu_us_per_msg",
            "client_cpu_us_per_msg", "p50_us", "p99_us", "p999_us", "cpu_vs_epoll",
            "tput_vs_epoll", "cpu_vs_uring", "tput_vs_uring", "bytes_per_conn", "errors",
            "failed"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def write_chart(out, rows, cells):
    by = {(r["cell"], r["server"]): r for r in rows}
    with open(os.path.join(out, "chart.dat"), "w") as f:
        f.write("# cell inline_cpu workers_cpu epollbe_cpu inline_tput workers_tput "
                "epollbe_tput (ratios to epoll)\n")
        for c in cells:
            vals = []
            for k in ("cpu_vs_epoll", "tput_vs_epoll"):
                for s in ("tao-inline", "tao-workers", "tao-epoll"):
                    v = by.get((c, s), {}).get(k)
                    vals.append("NaN" if v is None else f"{v:.4f}")
            f.write(f"{c} {' '.join(vals)}\n")
    with open(os.path.join(out, "chart.gp"), "w") as f:
        f.write("""# Written by perf/report.py: gnuplot chart.gp -> chart.png
set terminal pngcairo size 1400,560 font ",11"
set output "chart.png"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set xtics rotate by -30
set key top left
set multiplot layout 1,2 title "Tao-C vs the epoll baseline (median of paired ratios; 1.0 = same as epoll)"
set title "server CPU per message (lower is better)"
plot "chart.dat" using 2:xtic(1) title "Tao-C inline" lc rgb "#1f77b4", \\
     "" using 3 title "Tao-C workers" lc rgb "#ff7f0e", \\
     "" using 4 title "Tao-C inline, epoll backend" lc rgb "#2ca02c", \\
     1 with lines lw 2 lc rgb "black" title "epoll"
set title "throughput (higher is better)"
plot "chart.dat" using 5:xtic(1) title "Tao-C inline" lc rgb "#1f77b4", \\
     "" using 6 title "Tao-C workers" lc rgb "#ff7f0e", \\
     "" using 7 title "Tao-C inline, epoll backend" lc rgb "#2ca02c", \\
     1 with lines lw 2 lc rgb "black" title "epoll"
unset multiplot
""")


def md_results(rows, meta):
    lines = ["| cell | server | msgs/s | MB/s | server µs/msg | loadgen µs/msg | p50 µs | p99 µs "
             "| p999 µs | CPU vs epoll | throughput vs epoll | CPU vs uring | throughput vs uring "
             "| errors |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        if r["cell"] == "idle":
            continue
        lines.append(
            f"| {r['cell']} | {r['server']} | {fmt(r['msgs_per_s'], ',.0f')} | "
            f"{fmt(r['mb_per_s'], '.1f')} | {fmt(r['server_cpu_us_per_msg'], '.2f')} | "
            f"{fmt(r['client_cpu_us_per_msg'], '.2f')} | {fmt(r['p50_us'], '.1f')} | "
            f"{fmt(r['p99_us'], '.1f')} | {fmt(r['p999_us'], '.1f')} | "
            f"{ratio(r.get('cpu_vs_epoll'))} | {ratio(r.get('tput_vs_epoll'))} | "
            f"{ratio(r.get('cpu_vs_uring'))} | {ratio(r.get('tput_vs_uring'))} | {r['errors']} |")
    return lines


def other_text(other):
    if other is None:
        return "unknown."
    med_, top = other
    text = (f"other processes used {med_ * 100:.0f}% of a core in the median measured window "
            f"(at most {top * 100:.0f}%).")
    if med_ > 0.1:
        text += (" **The machine was shared while this ran: the figures are noisy, and the "
                 "server CPU per message is inflated by competition for caches and cores; "
                 "run again on a quiet machine.**")
    return text


def md_report(out, rows, verdicts, meta, cells, other):
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cell_list = "\n".join(f"- **{c}** ({CELL_TEXT.get(c, c)}): `tao-loadgen "
                          f"{meta.get('args_' + c, '')}`" for c in cells)
    idle = [r for r in rows if r["cell"] == "idle"]
    L = [f"# Tao-C benchmark, {now}", "",
         f"Mode **{meta.get('mode')}**: {meta.get('reps')} repetition(s) of every cell, "
         f"{meta.get('duration')} s measured after {meta.get('warmup')} s of warmup per run, "
         f"servers interleaved and their order rotated each repetition; figures are medians, "
         f"ratios are medians of paired ratios (each run against the baseline's run of the "
         f"same cell and repetition). The run took {meta.get('seconds')} s.", "",
         f"- Machine: {meta.get('cpu_model')}, {meta.get('cpus')} CPU(s), Linux "
         f"{meta.get('kernel')}; commit {meta.get('commit')}.",
         f"- Pinning: {meta.get('pinning')}.",
         f"- Servers: **tao-inline** `{meta.get('cmd_tao-inline')}` (handlers on the I/O "
         f"loop); **tao-workers** `{meta.get('cmd_tao-workers')}` (handlers on one worker "
         f"thread, which shares the server's CPU with the loop: on two cores the other one belongs to "
         f"the load generator, so this measures the cost of the hop, not extra parallelism); "
         f"**tao-epoll** `{meta.get('cmd_tao-epoll')}` (handlers on the I/O loop, on the "
         f"engine's epoll backend, as where io_uring is refused); "
         f"**epoll** `{meta.get('cmd_epoll')}` (the hand-written baseline); "
         f"**uring** `{meta.get('cmd_uring')}` (the ceiling: a bare liburing echo, no "
         f"framework).",
         f"- Backends the Tao-C servers ran on, with the io_uring features each used "
         f"(`tao_server_features`): tao-inline "
         f"{meta.get('backend_tao-inline') or '?'}, tao-workers "
         f"{meta.get('backend_tao-workers') or '?'}, tao-epoll "
         f"{meta.get('backend_tao-epoll') or '?'}.",
         f"- Load generator: `tao-loadgen`, one client loop on Tao-C's client API, every "
         f"reply checked byte for byte.",
         f"- Other load on the machine: {other_text(other)} Load average (1/5/15 min) "
         f"{meta.get('load_before')} before, {meta.get('load_after')} after.",
         "", "## Cells", "", cell_list,
         f"- **idle**: `tao-loadgen --idle -c {meta.get('idle_conns')}`: open the connections, "
         f"echo once on each, then read the server's VmRSS growth per connection.", "",
         "## Results", ""]
    L += md_results(rows, meta)
    L += ["", "Server µs/msg is the server's CPU time (user + system, all threads, from "
          "/proc/PID/stat) over the measured window divided by the messages echoed in it; "
          "for the storm it is per connection (connect, one echo, close). When the load "
          "generator saturates its own core, msgs/s measures the load generator as much as the "
          "server, while server µs/msg still compares the servers.", ""]
    if idle:
        L += ["## Memory per idle connection", "", "| server | connections | bytes of RSS each |",
              "|---|--:|--:|"]
        L += [f"| {r['server']} | {fmt(r.get('idle_conns'), '.0f')} | "
              f"{fmt(r.get('bytes_per_conn'), ',.0f')} |" for r in idle]
        L.append("")
    L += ["## Targets", "", "Measured: the median of the paired ratios, and in parentheses the "
          "lowest and highest of them, which shows how far one repetition can be trusted.", "",
          "| target | measured | status |", "|---|--:|---|"]
    L += [f"| {d} | {m} | {s} |" for d, m, s in verdicts]
    peers = os.path.join(out, "peers.md")
    if os.path.exists(peers):
        with open(peers) as f:
            L += ["", f.read()]
    L += ["", "## Chart", "", "![Tao-C vs the epoll baseline](chart.png)", "",
          "## Files", "", "- `results.jsonl`: one line per run, as `tao-loadgen --json` wrote it",
          "- `summary.csv`: the medians above", "- `logs/`: each run's output",
          "", "How to read each cell: `perf/README.md`.", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(L))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    meta = dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a)
    cells = meta.get("cells", " ".join(CELL_TEXT)).split() + ["idle"]
    runs = load(os.path.join(out, "results.jsonl"))
    rows = summarize(runs, cells)
    verdicts = judge(runs, rows, int(meta.get("idle_conns", "10000")))
    write_csv(os.path.join(out, "summary.csv"), rows)
    write_chart(out, rows, [c for c in cells if c != "idle"])
    other = other_load(runs)
    md_report(out, rows, verdicts, meta, [c for c in cells if c != "idle"], other)
    print("\n".join(table_lines(rows)))
    print()
    print("Machine: " + other_text(other).replace("**", ""))
    print()
    for d, m, s in verdicts:
        print(f"  {s:<18} {m:>22}  {d}")
    peers = os.path.join(out, "peers.md")
    if os.path.exists(peers):
        print()
        with open(peers) as f:
            print(f.read())


if __name__ == "__main__":
    main()
