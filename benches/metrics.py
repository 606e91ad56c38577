#!/usr/bin/env python3
"""What the statistics and metrics cost (docs/metrics.md).

1. Word count over a text file at parallelism 2 on the embedded cluster with
   this build's eddy against BASELINE, an eddy built without the statistics
   (any earlier build: `git worktree add` a commit before them and build it),
   runs interleaved, medians and their ratio. Without BASELINE only this
   build's median is printed.
2. The JobManager's CPU while SUBTASKS subtasks (a `slow` job of the features
   component, two tasks at SUBTASKS/2 each, on two TaskManagers) report their
   statistics with every heartbeat, and a scrape of /metrics every second.

usage: metrics.py EDDY WORDCOUNT_WASM FEATURES_WASM TEXT [--baseline EDDY] [--runs N] [--subtasks N]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request



def word_count(eddy, wasm, text):
    out = tempfile.mkdtemp()
    start = time.time()
    subprocess.run([eddy, "run", "-p", "2", "-c", "word-count", wasm, "--input", text, "--output", os.path.join(out, "counts")],
                   check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    took = time.time() - start
    shutil.rmtree(out)
    return took


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


def api(http, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{http}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return raw if path == "/metrics" else json.loads(raw or b"{}")
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}")


def jobmanager_cpu(eddy, features, subtasks):
    state = tempfile.mkdtemp()
    procs = []
    try:
        jm = subprocess.Popen([eddy, "jobmanager", "--state-dir", state, "--bind", "127.0.0.1:0", "--rpc-bind", "127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, "jm.log"), "w"))
        procs.append(jm)
        addr_file = os.path.join(state, "jobmanager.json")
        while not os.path.exists(addr_file):
            time.sleep(0.05)
        time.sleep(0.1)
        addrs = json.load(open(addr_file))
        http, rpc = addrs["http"], addrs["rpc"]
        token = open(os.path.join(state, "admin.token")).read().strip()
        join = api(http, token, "POST", "/taskmanager-tokens", {"description": "bench"})["token"]
        half = subtasks // 2
        for i in range(2):
            env = dict(os.environ, EDDY_JOIN_TOKEN=join)
            procs.append(subprocess.Popen([eddy, "taskmanager", "--jobmanager", rpc, "--slots", str(half), "--ca", os.path.join(state, "ca.pem"),
                                           "--state-dir", os.path.join(state, f"tm-{i}")], env=env,
                                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, f"tm-{i}.log"), "w")))
        while len(api(http, token, "GET", "/taskmanagers")["taskmanagers"]) < 2:
            time.sleep(0.1)
        with open(features, "rb") as f:
            req = urllib.request.Request(f"http://{http}/jars/upload", data=f.read(), method="POST",
                                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/wasm"})
            jar = json.loads(urllib.request.urlopen(req).read())["id"]
        # Each record sleeps 5 ms (a batch stays within the call timeout): the subtasks run and report, costing little.
        job = api(http, token, "POST", f"/jars/{jar}/run", {"entry": "slow", "args": ["--delay-ms", "5", "--parallelism", str(half)]})["jobid"]
        deadline = time.time() + 300
        while True:
            j = api(http, token, "GET", f"/jobs/{job}")
            reported = sum(1 for t in j.get("tasks", []) for s in t["subtasks"] if s.get("metrics"))
            if j["status"] == "RUNNING" and reported == subtasks:
                break
            if time.time() > deadline or j["status"] in ("FAILED", "CANCELED"):
                sys.exit(f"the job did not run all {subtasks} subtasks: {j['status']} {j.get('failure')}, {reported} reported")
            time.sleep(0.5)
        time.sleep(2)
        window = 20
        before, t0 = cpu_seconds(jm.pid), time.time()
        scrape_bytes = 0
        while time.time() - t0 < window:
            scrape_bytes = len(api(http, token, "GET", "/metrics"))
            time.sleep(1)
        used = cpu_seconds(jm.pid) - before
        took = time.time() - t0
        print(f"JobManager with {subtasks} subtasks reporting every second and a scrape every second ({scrape_bytes / 1024:.0f} KiB):"
              f" {used / took * 100:.1f} % of one core over {took:.0f} s")
        api(http, token, "DELETE", f"/jobs/{job}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(state, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("eddy")
    ap.add_argument("wordcount")
    ap.add_argument("features")
    ap.add_argument("text")
    ap.add_argument("--baseline")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--subtasks", type=int, default=1000)
    a = ap.parse_args()
    mb = os.path.getsize(a.text) / 1e6
    print(f"==> the statistics' cost: word count, {mb:.0f} MB, parallelism 2, {a.runs} runs each" + (", interleaved with the baseline" if a.baseline else ""))
    this, base = [], []
    for i in range(a.runs):
        this.append(word_count(a.eddy, a.wordcount, a.text))
        line = f"   run {i + 1}: {this[-1]:.3f} s"
        if a.baseline:
            base.append(word_count(a.baseline, a.wordcount, a.text))
            line += f", baseline {base[-1]:.3f} s"
        print(line)
    m = statistics.median(this)
    if a.baseline:
        b = statistics.median(base)
        print(f"with statistics: median {m:.3f} s; baseline {b:.3f} s; {(m / b - 1) * 100:+.1f} %")
    else:
        print(f"with statistics: median {m:.3f} s (no --baseline to compare with)")
    print(f"==> the JobManager's CPU with {a.subtasks} subtasks reporting")
    jobmanager_cpu(a.eddy, a.features, a.subtasks)


if __name__ == "__main__":
    main()
