#!/usr/bin/env python3
"""Exchange benchmark: 100-byte records over one channel between two TaskManager
processes (QUIC) and the same job with both ends in one TaskManager (in memory).

usage: benches/exchange.py EDDY BENCH_OPS_WASM [N] [--wordcount TEXT WORDCOUNT_WASM]
Writes N lines of 100 bytes, starts its own cluster (one JobManager, two one-slot
TaskManagers) on 127.0.0.1, runs bench-ops' `exchange` job (file source -> rebalance
channel -> file sink) three times per path and prints medians."""
import json, statistics, subprocess, sys, tempfile, time, urllib.request, os

import cluster

argv = sys.argv[1:]
wordcount = None
if "--wordcount" in argv:
    i = argv.index("--wordcount")
    wordcount = (argv[i + 1], argv[i + 2])
    del argv[i:i + 3]
eddy, wasm = argv[0], argv[1]
n = int(argv[2]) if len(argv) > 2 else 5_000_000
state = tempfile.mkdtemp(prefix="eddy-exchange-")
lines = os.path.join(state, "lines.txt")
with open(lines, "w") as f:
    for i in range(0, n, 10000):
        f.write("".join(f"{j:099d}\n" for j in range(i, min(i + 10000, n))))
procs = []

def http(method, path, body=None, ctype="application/json"):
    # The JobManager's admin key, written on its first start.
    key = open(os.path.join(state, "admin.token")).read().strip()
    headers = {"content-type": ctype, "authorization": f"Bearer {key}"}
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req) as r:
        return json.load(r)

try:
    jm_log = open(os.path.join(state, "jobmanager.log"), "w")
    procs.append(subprocess.Popen([eddy, "jobmanager", "--bind", "127.0.0.1:0", "--rpc-bind", "127.0.0.1:0",
                                   "--state-dir", state], stdout=jm_log, stderr=jm_log))
    addr_file = os.path.join(state, "jobmanager.json")
    while not os.path.exists(addr_file):
        time.sleep(0.05)
    time.sleep(0.1)
    addrs = json.load(open(addr_file))
    base = "http://" + addrs["http"]
    for i in range(2):
        log = open(os.path.join(state, f"taskmanager-{i}.log"), "w")
        procs.append(cluster.taskmanager(eddy, addrs["rpc"], addrs["http"], state, 1, stdout=log, stderr=log))
    while len(http("GET", "/taskmanagers")["taskmanagers"]) < 2:
        time.sleep(0.05)
    jar = http("POST", "/jars/upload?name=bench_ops.wasm", open(wasm, "rb").read(), "application/wasm")["id"]

    def wait(job):
        while True:
            j = http("GET", f"/jobs/{job}")
            if j["status"] not in ("CREATED", "RUNNING"):
                assert j["status"] == "FINISHED", j
                return j
            time.sleep(0.05)

    def run(split):
        out = tempfile.mkdtemp(prefix="out-", dir=state)
        args = ["--input", lines, "--output", out] + (["--split"] if split else [])
        job = http("POST", f"/jars/{jar}/run", json.dumps({"entry": "exchange", "args": args, "parallelism": 1}).encode())["jobid"]
        j = wait(job)
        places = {s["taskmanager"] for t in j["tasks"] for s in t["subtasks"]}
        assert len(places) == (2 if split else 1), places
        assert j["records-out"] == n, j
        subprocess.run(["rm", "-rf", out])
        return j["duration"] / 1000.0

    rows = {}
    for name, split in (("in-memory (one TaskManager)", False), ("QUIC (two TaskManagers)", True)):
        times = [run(split) for _ in range(3)]
        rows[name] = statistics.median(times)
    print(f"exchange benchmark: {n} records of 100 bytes over one channel, median of 3 job durations")
    for name, t in rows.items():
        print(f"  {name:<30} {t:7.3f} s  {n / t / 1e6:6.2f} M records/s  {n * 100 / t / 1e6:7.1f} MB/s")
    mem, quic = rows["in-memory (one TaskManager)"], rows["QUIC (two TaskManagers)"]
    print(f"  QUIC / in-memory throughput: {mem / quic:.2f}")

    if wordcount:
        # Word count at parallelism 2: one subtask per TaskManager vs the embedded cluster.
        text, wc_wasm = wordcount
        wc_jar = http("POST", "/jars/upload?name=wordcount.wasm", open(wc_wasm, "rb").read(), "application/wasm")["id"]
        cluster_times, local_times = [], []
        for _ in range(3):
            out = tempfile.mkdtemp(prefix="wc-", dir=state)
            body = {"entry": "word-count", "args": ["--input", text, "--output", out], "parallelism": 2}
            j = wait(http("POST", f"/jars/{wc_jar}/run", json.dumps(body).encode())["jobid"])
            cluster_times.append(j["duration"] / 1000.0)
            out = tempfile.mkdtemp(prefix="wc-local-", dir=state)
            started = time.time()
            subprocess.run([eddy, "run", "-p", "2", "-c", "word-count", wc_wasm, "--input", text, "--output", out],
                           check=True, stderr=subprocess.DEVNULL)
            local_times.append(time.time() - started)
        c, l = statistics.median(cluster_times), statistics.median(local_times)
        print(f"word count, parallelism 2: two TaskManagers {c:.3f} s, embedded {l:.3f} s, ratio {c / l:.2f}")
finally:
    for p in procs:
        p.kill()
    subprocess.run(["rm", "-rf", state])
