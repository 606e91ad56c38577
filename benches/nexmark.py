#!/usr/bin/env python3
"""Nexmark on Eddy, and on Flink over the same events (part 9 of ./dev bench).

usage: nexmark.py EDDY NEXMARK.wasm [--events N] [--queries q0,q1,...] [--parallelism 1,2]
                  [--runs R] [--flink] [--no-file] [--json-values]

For every query and parallelism, Eddy runs the query over N events (default 10 000 000)
of the host's generator, unthrottled, into a discarding sink; and, unless --no-file, over
the same N events as a JSON-lines file of the shared format (../shared/bench/nexmark_gen.py,
made once under target/bench), which with --flink Flink SQL also runs
(../shared/bench/flink/sql.sh) in the same session. Each run is one process (the embedded
cluster; Flink's local mini cluster): its CPU time (user + system, from wait4, so
generator, parsing and every thread included) and its peak RSS are measured, and
events per CPU-second are events / CPU seconds. For Flink, wall and CPU are those of the
job as its runner reports them (`wall_ms`, `job_cpu_s`: JVM start-up excluded, as in
../shared/bench/flink/nexmark/README.md); Eddy's include its start. Medians of --runs runs
(default 1).
Prints a Markdown table. Then q0-q2 in Rust, Python and JavaScript (examples/python/nexmark.py,
examples/js/nexmark.js, components beside NEXMARK.wasm) over --language-events events
(default 1 000 000) of the generator at p=1, each language's events per CPU-second and its
ratio to Rust's.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "bench")
QUERIES = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11", "q12"]


def measure(cmd, env=None):
    """Runs cmd; returns (wall s, CPU s, peak RSS MB, stderr)."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, err


def event_file(target, events):
    path = os.path.join(target, "bench", f"nexmark-{events}.jsonl")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        print(f"==> writing {events} Nexmark events to {path} (nexmark_gen.py)", flush=True)
        subprocess.run([sys.executable, os.path.join(SHARED, "nexmark_gen.py"), str(events), path + ".tmp"], check=True)
        os.rename(path + ".tmp", path)
    return path


def row(system, source, query, p, events, runs):
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    rss = statistics.median(r[2] for r in runs)
    return (f"| {system} | {source} | {query} | {p} | {events:,} | {wall:.2f} | {events / wall:,.0f} | "
            f"{cpu:.2f} | {events / cpu:,.0f} | {rss:,.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eddy")
    ap.add_argument("wasm")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--parallelism", default="1,2")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--flink", action="store_true", help="also run Flink SQL over the same event file")
    ap.add_argument("--no-file", action="store_true", help="only the generator (no event file, no Flink)")
    ap.add_argument("--json-values", action="store_true",
                    help="also run the generator's events with JSON values (--codec json): the codec's effect")
    ap.add_argument("--language-events", type=int, default=1_000_000,
                    help="events for the Rust/Python/JavaScript comparison (0: none)")
    a = ap.parse_args()
    queries = a.queries.split(",")
    target = os.path.dirname(os.path.dirname(os.path.abspath(a.eddy)))
    path = None if a.no_file else event_file(target, a.events)
    env = dict(os.environ, EDDY_LOG="warn")
    table = ["| system | events from | query | p | events | wall s | events/s | CPU s | events per CPU-s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for query in queries:
        for p in a.parallelism.split(","):
            base = [a.eddy, "run", "--quiet", "-p", p, "-c", query, a.wasm]
            runs = [measure(base + ["--events", str(a.events)], env) for _ in range(a.runs)]
            table.append(row("Eddy", "generator", query, p, a.events, runs))
            print(table[-1], flush=True)
            if a.json_values:
                runs = [measure(base + ["--events", str(a.events), "--codec", "json"], env) for _ in range(a.runs)]
                table.append(row("Eddy, JSON values", "generator", query, p, a.events, runs))
                print(table[-1], flush=True)
            if path:
                runs = [measure(base + ["--input", path], env) for _ in range(a.runs)]
                table.append(row("Eddy", "file", query, p, a.events, runs))
                print(table[-1], flush=True)
            if path and a.flink:
                sql = os.path.join(SHARED, "flink", "nexmark", f"{query}.sql")
                cmd = [os.path.join(SHARED, "flink", "sql.sh"), sql, p, f"input={path}", f"events={a.events}"]
                runs = []
                for _ in range(a.runs):
                    wall, cpu, rss, err = measure(cmd)
                    # Flink's own line: the job's wall time and CPU, without the JVM's start.
                    m = re.search(r"wall_ms=(\d+)", err)
                    c = re.search(r"job_cpu_s=([\d.]+)", err)
                    runs.append((int(m.group(1)) / 1000 if m else wall, float(c.group(1)) if c else cpu, rss))
                table.append(row("Flink 2.3 SQL", "file", query, p, a.events, runs))
                print(table[-1], flush=True)
    print()
    print("\n".join(table))
    if a.language_events:
        languages(a, env)


def languages(a, env):
    """q0-q2 in each SDK's language over the same events at p=1, against Rust."""
    here = os.path.dirname(os.path.abspath(a.wasm))
    wasms = {"Rust": a.wasm, "Python": os.path.join(here, "nexmark_py.wasm"),
             "JavaScript": os.path.join(here, "nexmark_js.wasm")}
    n = a.language_events
    # A component's first run compiles it (seconds of CPU for Python and JavaScript);
    # later runs load it from the compile cache, so each is run once before it is measured.
    for wasm in wasms.values():
        if os.path.exists(wasm):
            measure([a.eddy, "run", "--quiet", "-c", "q0", wasm, "--events", "1"], env)
    print(f"\n| query | language | events | CPU s | events per CPU-s | of Rust's |")
    print("|---|---|---|---|---|---|")
    for query in ("q0", "q1", "q2"):
        rust = None
        for language, wasm in wasms.items():
            if not os.path.exists(wasm):
                print(f"| {query} | {language} | (no {wasm}) | | | |")
                continue
            cmd = [a.eddy, "run", "--quiet", "-p", "1", "-c", query, wasm, "--events", str(n)]
            cpu = statistics.median(measure(cmd, env)[1] for _ in range(a.runs))
            rust = rust or n / cpu
            print(f"| {query} | {language} | {n:,} | {cpu:.2f} | {n / cpu:,.0f} | 1/{rust / (n / cpu):.1f} |", flush=True)


if __name__ == "__main__":
    main()
