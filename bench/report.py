#!/usr/bin/python3
"""bench/report.py: turns bench/run.sh's results into the table and chart of docs/performance.md.

Usage: report.py RESULTS OUT NS BIG_GIB STREAM_GIB RUNS
RESULTS has one line per figure: "metric relay run value". The table gives, for each figure,
fs-gateway's and nginx's min/median/max over the runs and the ratio of the medians. The chart
(gnuplot PNG next to OUT) plots memory per in-flight upload against N for both relays.
"""
import math
import os
import statistics
import subprocess
import sys
import time


def load(path):
    data = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 4:
                continue
            metric, relay, _run, value = parts
            try:
                v = float(value)
            except ValueError:
                continue
            if math.isnan(v):
                continue
            data.setdefault(metric, {}).setdefault(relay, []).append(v)
    return data


def triple(vals, fmt):
    if not vals:
        return "n/a"
    return "%s / %s / %s" % (fmt % min(vals), fmt % statistics.median(vals), fmt % max(vals))


def ratio(data, metric):
    g = data.get(metric, {}).get("gateway")
    n = data.get(metric, {}).get("nginx")
    if not g or not n:
        return "n/a"
    mg, mn = statistics.median(g), statistics.median(n)
    if mn == 0:
        return "n/a" if mg else "1.00"
    return "%.2f" % (mg / mn)


def row(data, metric, label, fmt):
    d = data.get(metric, {})
    return "| %s | %s | %s | %s |" % (label, triple(d.get("gateway", []), fmt),
                                     triple(d.get("nginx", []), fmt), ratio(data, metric))


def main():
    results, out, ns, big_gib, stream_gib, runs = sys.argv[1:7]
    ns = [int(x) for x in ns.split()]
    data = load(results)
    rows = []
    rows.append("| figure | fs-gateway (min / median / max) | nginx (min / median / max) "
                "| ratio (medians) |")
    rows.append("|---|---|---|---|")
    for up in ("plain", "tls"):
        for streams in (1, 4):
            rows.append(row(data, "cpu_%s_%d" % (up, streams),
                            "CPU-s per GiB, TLS 1.3 in, %s upstream, %d × %s GiB" %
                            (up, streams, stream_gib), "%.3f"))
    for n in ns:
        rows.append(row(data, "mem_%d" % n, "KiB per in-flight upload, N = %d" % n, "%.1f"))
    for n in ns:
        rows.append(row(data, "fail_%d" % n, "failures at N = %d (refused, reset, early "
                        "answer, 5xx)" % n, "%.0f"))
    rows.append(row(data, "lat50_0", "100 KiB job acknowledged, p50 ms, alone", "%.1f"))
    rows.append(row(data, "lat99_0", "100 KiB job acknowledged, p99 ms, alone", "%.1f"))
    for n in ns:
        rows.append(row(data, "lat50_%d" % n, "100 KiB job, p50 ms, with %d slow uploads" % n,
                        "%.1f"))
        rows.append(row(data, "lat99_%d" % n, "100 KiB job, p99 ms, with %d slow uploads" % n,
                        "%.1f"))
    rows.append(row(data, "big_growth", "RSS growth (KiB) during one %s GiB upload" % big_gib,
                    "%.0f"))
    rows.append(row(data, "big_failures", "failures of the %s GiB upload" % big_gib, "%.0f"))
    table = "\n".join(rows)
    print(table)

    chart = os.path.splitext(out)[0] + "-memory.png"
    dat = os.path.splitext(out)[0] + "-memory.dat"
    with open(dat, "w") as f:
        f.write("# N gateway_median gateway_min gateway_max nginx_median nginx_min nginx_max\n")
        for n in ns:
            g = data.get("mem_%d" % n, {}).get("gateway", [float("nan")])
            x = data.get("mem_%d" % n, {}).get("nginx", [float("nan")])
            f.write("%d %.2f %.2f %.2f %.2f %.2f %.2f\n" % (
                n, statistics.median(g), min(g), max(g), statistics.median(x), min(x), max(x)))
    script = """
set terminal pngcairo size 800,480
set output '%s'
set title 'Memory per in-flight slow TLS upload (RSS growth / N)'
set xlabel 'concurrent slow uploads (N)'
set ylabel 'KiB per upload'
set key top right
set grid
set yrange [0:*]
set offsets graph 0.05, graph 0.05, 0, 0
plot '%s' using 1:2:3:4 with yerrorlines title 'fs-gateway', \\
     '%s' using 1:5:6:7 with yerrorlines title 'nginx'
""" % (chart, dat, dat)
    try:
        subprocess.run(["gnuplot"], input=script.encode(), check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("report: gnuplot failed: %s" % e, file=sys.stderr)
    os.unlink(dat)

    reading_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reading.md")
    reading = open(reading_path).read() if os.path.exists(reading_path) else ""
    with open(out, "w") as f:
        f.write("# Performance: fs-gateway against nginx\n\n")
        f.write("Produced by `bench/run.sh` on %s (%d cores), %s UTC; %s runs, alternating which "
                "relay goes first. Both relays terminate TLS 1.3 with the same certificate and "
                "relay to the same upstream: fs-server with `bench_discard` (it reads and hashes "
                "every byte and answers only after the last one, storing nothing). nginx 1.22 "
                "runs with `proxy_request_buffering off` and 2 worker processes; fs-gateway with "
                "its default workers (two per CPU). CPU is user + system time of the relay's processes only "
                "(`/proc/PID/stat`); memory is the growth of their summed RSS.\n\n" % (
                    os.uname().nodename, os.cpu_count(),
                    time.strftime("%Y-%m-%d %H:%M", time.gmtime()), runs))
        f.write("Reproduce: `bench/run.sh` (environment: `FSG_BENCH_RUNS`, `FSG_BENCH_NS`, "
                "`FSG_BENCH_BIG_GIB`, `FSG_BENCH_STREAM_GIB`). Every figure of every run is in "
                "[%s](%s).\n\n" % ((os.path.basename(os.path.splitext(out)[0]) +
                                      "-results.txt",) * 2))
        f.write("## Figures\n\n")
        f.write("A ratio below 1.00 means fs-gateway needs less than nginx.\n\n")
        f.write(table + "\n\n")
        f.write("![memory per in-flight upload](%s)\n\n" % os.path.basename(chart))
        f.write(reading)


if __name__ == "__main__":
    main()
