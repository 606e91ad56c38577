#!/usr/bin/env python3
"""Tenancy benchmark: what tenants, quotas, confinement and metering cost.

usage: benches/tenancy.py EDDY WORDCOUNT_WASM TEXT [RUNS]
Starts its own cluster (one JobManager, one TaskManager with 2 slots) on 127.0.0.1.
1. Word count over TEXT at parallelism 2, alternately as the admin (no tenant: no
   quotas, no confinement, no metering) and as a tenant (quotas on the TaskManager,
   paths through its data root, usage metered): the median job duration of RUNS each.
2. An authorised request against one that skips the key check: 3 x 2000 requests on
   one keep-alive connection, median latency of each kind."""
import http.client, json, os, statistics, subprocess, sys, tempfile, time

import cluster

eddy, wasm, text = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
state = tempfile.mkdtemp(prefix="eddy-tenancy-")
root = os.path.dirname(text)
procs = []


class Api:
    def __init__(self, addr, key):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port))
        self.key = key

    def call(self, method, path, body=None, ctype="application/json"):
        headers = {"content-type": ctype}
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data)


try:
    log = open(os.path.join(state, "jobmanager.log"), "w")
    procs.append(subprocess.Popen([eddy, "jobmanager", "--bind", "127.0.0.1:0", "--rpc-bind", "127.0.0.1:0",
                                   "--state-dir", state], stdout=log, stderr=log))
    while not os.path.exists(os.path.join(state, "jobmanager.json")):
        time.sleep(0.05)
    time.sleep(0.1)
    addrs = json.load(open(os.path.join(state, "jobmanager.json")))
    tm_log = open(os.path.join(state, "taskmanager.log"), "w")
    procs.append(cluster.taskmanager(eddy, addrs["rpc"], addrs["http"], state, 2, stdout=tm_log, stderr=tm_log))
    admin = Api(addrs["http"], open(os.path.join(state, "admin.token")).read().strip())
    while len(admin.call("GET", "/taskmanagers")["taskmanagers"]) < 1:
        time.sleep(0.05)
    admin.call("POST", "/tenants", json.dumps({"name": "bench", "data-root": root}).encode())
    key = admin.call("POST", "/tokens", json.dumps({"tenant": "bench", "role": "developer"}).encode())["token"]
    tenant = Api(addrs["http"], key)
    component = open(wasm, "rb").read()
    jar = admin.call("POST", "/jars/upload?name=wordcount.wasm", component, "application/wasm")["id"]
    tenant.call("POST", "/jars/upload?name=wordcount.wasm", component, "application/wasm")

    def run(api, output):
        body = {"entry": "word-count", "args": ["--input", text, "--output", output], "parallelism": 2}
        job = api.call("POST", f"/jars/{jar}/run", json.dumps(body).encode())["jobid"]
        while True:
            j = api.call("GET", f"/jobs/{job}")
            if j["status"] not in ("CREATED", "RUNNING"):
                assert j["status"] == "FINISHED", j
                return j["duration"] / 1000.0
            time.sleep(0.02)

    print(f"==> word count, {os.path.getsize(text) >> 20} MB, parallelism 2, one TaskManager: admin vs tenant, {runs} runs each")
    plain, tenanted = [], []
    for i in range(runs):
        plain.append(run(admin, tempfile.mkdtemp(prefix="admin-", dir=state)))
        out = tempfile.mkdtemp(prefix="eddy-tenancy-out-", dir=root)
        tenanted.append(run(tenant, os.path.basename(out)))
        subprocess.run(["rm", "-rf", out])
        print(f"   run {i + 1}: admin {plain[-1]:.3f} s, tenant {tenanted[-1]:.3f} s")
    p, t = statistics.median(plain), statistics.median(tenanted)
    print(f"tenancy: median admin {p:.3f} s, tenant {t:.3f} s: {t / p:.3f}x the time ({(t / p - 1) * 100:+.1f}%)")

    def latency(path, api):
        times = []
        for _ in range(2000):
            start = time.perf_counter()
            api.call("GET", path)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e6

    anonymous = Api(addrs["http"], None)
    pairs = [(latency("/health", anonymous), latency("/whoami", tenant), latency("/jobs", tenant)) for _ in range(3)]
    health, whoami, jobs = (statistics.median(x) for x in zip(*pairs))
    print(f"requests: /health (no key) {health:.0f} us, /whoami (key checked) {whoami:.0f} us, "
          f"/jobs as a tenant {jobs:.0f} us: the key check adds {whoami - health:.0f} us")
finally:
    for p in procs:
        p.kill()
    subprocess.run(["rm", "-rf", state])
