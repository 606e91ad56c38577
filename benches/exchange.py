#!/usr/bin/env python3
"""Exchange benchmark: 100-byte records over one channel between two TaskManager
processes (QUIC) and the same job with both ends in one TaskManager (in memory).

usage: benches/exchange.py EDDY BENCH_OPS_WASM [N]
Writes N lines of 100 bytes, starts its own cluster (one JobManager, two one-slot
TaskManagers) on 127.0.0.1, runs bench-ops' `exchange` job (file source -> rebalance
channel -> file sink) three times per path and prints medians."""
import json, statistics, subprocess, sys, tempfile, time, urllib.request, os

eddy, wasm = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 5_000_000
state = tempfile.mkdtemp(prefix="eddy-exchange-")
lines = os.path.join(state, "lines.txt")
with open(lines, "w") as f:
    for i in range(0, n, 10000):
        f.write("".join(f"{j:099d}\n" for j in range(i, min(i + 10000, n))))
procs = []

def http(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(base + path, data=body, method=method, headers={"content-type": ctype})
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
        procs.append(subprocess.Popen([eddy, "taskmanager", "--jobmanager", addrs["rpc"], "--slots", "1",
                                       "--cluster-dir", state], stdout=log, stderr=log))
    while len(http("GET", "/taskmanagers")["taskmanagers"]) < 2:
        time.sleep(0.05)
    jar = http("POST", "/jars/upload?name=bench_ops.wasm", open(wasm, "rb").read(), "application/wasm")["id"]

    def run(split):
        out = tempfile.mkdtemp(prefix="out-", dir=state)
        args = ["--input", lines, "--output", out] + (["--split"] if split else [])
        job = http("POST", f"/jars/{jar}/run", json.dumps({"entry": "exchange", "args": args, "parallelism": 1}).encode())["jobid"]
        while True:
            j = http("GET", f"/jobs/{job}")
            if j["status"] not in ("CREATED", "RUNNING"):
                break
            time.sleep(0.05)
        assert j["status"] == "FINISHED", j
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
finally:
    for p in procs:
        p.kill()
    subprocess.run(["rm", "-rf", state])
