#!/usr/bin/env python3
"""The cost targets of a bench.sh run, each marked met or missed.

Reads the run's raw measurements (overhead.txt, loss.txt) and the scalar
figures bench.sh wrote (figures.txt: one `name value` a line), and prints a
Markdown table. A row whose measurement this run did not make (a loop or a
tool left out, the host kind not chosen) says so instead of a verdict.

Usage: targets.py RESULTS_DIR
"""
import statistics
import sys
from pathlib import Path


def read_rows(path):
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                rows.append(line.split())
    return rows


def median_of(rows, loop, tool, col):
    vals = [float(r[col]) for r in rows if r[0] == loop and r[1] == tool and r[col] != "-"]
    return statistics.median(vals) if vals else None


class Run:
    def __init__(self, d):
        self.over = read_rows(d / "overhead.txt")
        self.loss = read_rows(d / "loss.txt")
        self.fig = {}
        for r in read_rows(d / "figures.txt"):
            self.fig[r[0]] = r[1] if len(r) > 1 else ""
        self.secs = float(self.fig.get("seconds", "0") or 0)

    def slowdown(self, loop, tool):
        """Percent of the baseline's ops/s lost, or None."""
        base, ops = median_of(self.over, loop, "baseline", 3), median_of(self.over, loop, tool, 3)
        if not base or ops is None:
            return None
        return (1 - ops / base) * 100

    def added_ns(self, loop, tool):
        """CPU added per op: the workload's own (kernel side) and the tracer's."""
        bcpu, cpu = median_of(self.over, loop, "baseline", 4), median_of(self.over, loop, tool, 4)
        ops, tcpu = median_of(self.over, loop, tool, 3), median_of(self.over, loop, tool, 5)
        if bcpu is None or cpu is None or not ops or tcpu is None or not self.secs:
            return None
        return (cpu - bcpu) + tcpu * 1e9 / (ops * self.secs)

    def lost_in_loops(self):
        vals = [int(r[7]) for r in self.over if r[1] == "portghost" and r[7] != "-"]
        return sum(vals) if vals else None


def verdict(value, target, stretch=None, unit=""):
    if value is None:
        return "not measured in this run", "—"
    shown = f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"
    if stretch is not None and value <= stretch:
        return shown, "**met** (stretch too)"
    if value <= target:
        return shown, "**met**"
    if not target:
        return shown, "**missed**"
    ratio = value / target
    return shown, f"**missed** by {ratio:.2f}×" if ratio < 1.1 else f"**missed** by {ratio:.1f}×"


def rows(run):
    masq = run.fig.get("masquerade") == "1"
    out = []

    def add(measure, target, value, t, s=None, unit=""):
        shown, v = verdict(value, t, s, unit)
        out.append((measure, target, shown, v))

    for loop, name in (("bind", "bind(0) + close"), ("udp", "UDP autobind + close")):
        add(f"added CPU per short-lived port, {name}", "≤ 600 ns (stretch ≤ 400)", run.added_ns(loop, "portghost"), 600,
            400, " ns")
    add("added CPU per short-lived port, TCP connect + close", "≤ 800 ns (stretch ≤ 500)",
        run.added_ns("tcp", "portghost"), 800, 500, " ns")
    add("bind(0) loop slowdown", "≤ 15% (stretch ≤ 10%)", run.slowdown("bind", "portghost"), 15, 10, "%")
    add("UDP autobind loop slowdown", "≤ 12% (stretch ≤ 8%)", run.slowdown("udp", "portghost"), 12, 8, "%")
    add("TCP connect + RST loop slowdown", "≤ 8% (stretch ≤ 5%)", run.slowdown("tcp-rst", "portghost"), 8, 5, "%")
    replay = run.fig.get("replay_ns")
    add("consumer per record (replay, JSON to a file)", "≤ 150 ns (stretch ≤ 100)",
        float(replay) if replay not in (None, "", "nan") else None, 150, 100, " ns")
    if masq:
        add("redis -k 0, conntrack active, NAT followed", "≤ 2% (stretch ≤ 1%)", run.slowdown("redis-k0", "portghost"),
            2, 1, "%")
        add("redis -k 0, conntrack active, --no-nat", "≤ 1%", run.slowdown("redis-k0", "portghost-nonat"), 1, None, "%")
        add("redis -k 0, no conntrack", "≤ 1%", None, 1)
    else:
        # the same run's second pass with a masquerade rule (loop "redis-k0-masq")
        add("redis -k 0, no conntrack", "≤ 1%", run.slowdown("redis-k0", "portghost"), 1, None, "%")
        add("redis -k 0, conntrack active, NAT followed", "≤ 2% (stretch ≤ 1%)",
            run.slowdown("redis-k0-masq", "portghost"), 2, 1, "%")
        add("redis -k 0, conntrack active, --no-nat", "≤ 1%", run.slowdown("redis-k0-masq", "portghost-nonat"), 1, None,
            "%")
    # within noise: no worse than the A/A control's own distance, plus a point
    for loop, name in (("rw", "processes without sockets (rw)"), ("exec", "exec storm")):
        s, c = run.slowdown(loop, "portghost"), run.slowdown(loop, "control")
        bound = 1.0 if loop == "exec" else (abs(c) + 1 if c is not None else None)
        label = "≤ 1%" if loop == "exec" else "within noise (≤ the control's distance + 1 point)"
        add(name, label, s, bound if bound is not None else 0, None, "%")
    lost = run.lost_in_loops()
    add("records lost at the loops' full speed", "0", lost, 0)
    # the rate done, not the rate asked: a loop may not reach its pace
    paced = [(float(r[2]), float(r[1]), int(r[4])) for r in run.loss if r[0] != "unpaced"]
    long_runs = [(p, lost_n) for p, s, lost_n in paced if s >= 30]
    clean = [p for p, lost_n in long_runs if lost_n == 0]
    if not long_runs:
        shown, v = "no paced run of 30 s in this run", "—"
    elif clean:
        shown = f"0 lost up to {max(clean):,.0f} ports/s done (the highest of the runs paced for ≥ 30 s)"
        v = "**met**" if max(clean) >= 500000 else "**missed** (not paced that high)"
    else:
        shown, v = "records lost at every rate paced for ≥ 30 s", "**missed**"
    out.append(("records lost at ≥ 500k ports/s paced for 30 s", "0", shown, v))
    rss, held = run.fig.get("rss_kb"), run.fig.get("held")
    rss_mib = float(rss) / 1024 if rss else None
    maps, storage = run.fig.get("kernel_maps_bytes"), run.fig.get("storage_bytes_per_port")
    shown, v = verdict(rss_mib, 64, None, " MiB")
    if maps:
        shown += f" at {held} ports; kernel maps {int(maps) / 1048576:.1f} MiB, {storage} B a held port"
    out.append(("memory at 100k held ports: RSS, and the kernel's stated", "RSS ≤ 64 MiB", shown, v))
    p99 = run.fig.get("latency_p99_ms")
    add("latency, port taken to its line in the file (p99)", "≤ 1 s", float(p99) if p99 else None, 1000, None, " ms")
    return out


def main():
    if len(sys.argv) != 2:
        print("usage: targets.py RESULTS_DIR", file=sys.stderr)
        return 2
    run = Run(Path(sys.argv[1]))
    print("### The cost targets (issue 28)")
    print()
    print("| measure | target | this run | verdict |")
    print("|---|---|---|---|")
    for r in rows(run):
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
