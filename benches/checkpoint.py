#!/usr/bin/env python3
"""The cost of checkpoints, measured with real `eddy` processes.

1. Word count over TEXT at parallelism 2 on the embedded cluster, runs
   alternating without and with `--checkpoint-interval 1s`: medians and ratio.
2. A job keeping ~1 GiB of keyed state (1 M keys x 1100-byte values),
   checkpointed every 2 s: how long its checkpoints take (trigger to completion),
   to a local directory and to an S3-compatible server on loopback (s3s-fs).
3. Recovery: a cluster of a JobManager and 3 TaskManagers (heartbeat timeout
   2 s) runs a checkpointed job on two of them; one is SIGKILLed; time until
   the job is RUNNING again (on the spare), as `GET /jobs/{id}` shows.
4. JobManager restart: the JobManager of a cluster running a checkpointed job
   on 2 TaskManagers is SIGKILLed and started again at once on the same state
   and addresses; time from the SIGKILL until the job is RUNNING again (the
   TaskManagers noticed, registered again, and the job resumed), 3 times.
5. Standby: two JobManagers share a PostgreSQL database (lease 2 s); the
   leader is SIGKILLed and the standby takes over; time from the SIGKILL until
   the job is RUNNING on the standby, 3 times (each killed leader comes back
   as the next standby).

usage: checkpoint.py EDDY WORDCOUNT.wasm STATEFUL.wasm TEXT [RUNS]
"""
import json, os, re, signal, statistics, subprocess, sys, tempfile, time, urllib.request

import cluster

eddy, wordcount, stateful, text = sys.argv[1:5]
runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3


def timed(args):
    start = time.time()
    p = subprocess.run([eddy] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"eddy {' '.join(args)} failed:\n{p.stderr}")
    return time.time() - start, p.stderr


print(f"==> word count with and without 1 s checkpoints, {runs} runs each")
plain, checked, completed = [], [], []
with tempfile.TemporaryDirectory() as tmp:
    for i in range(runs):
        for label, extra, times in (("without", [], plain), ("with", ["--checkpoint-interval", "1s", "--checkpoint-dir", f"{tmp}/chk"], checked)):
            t, err = timed(["run", "--local", "-p", "2"] + extra + ["-c", "word-count", wordcount, "--input", text, "--output", f"{tmp}/out-{label}-{i}"])
            times.append(t)
            m = re.search(r"checkpoints: (\d+) completed", err)
            if m:
                completed.append(int(m.group(1)))
            print(f"   run {i + 1} {label:7} checkpoints: {t:.3f} s" + (f" ({m.group(1)} completed)" if m else ""))
a, b = statistics.median(plain), statistics.median(checked)
print(f"word count: median {a:.3f} s without, {b:.3f} s with 1 s checkpoints: {b / a:.3f}x the time "
      f"(throughput {100 * (a / b - 1):+.1f}%), {statistics.median(completed) if completed else 0} checkpoints per run")

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def big_state(where, checkpoint_dir, env=None):
    """The ~1 GiB job checkpointing to `checkpoint_dir`: (MiB, ms, paused ms) of its 1 GiB checkpoints."""
    print(f"==> checkpoint of ~1 GiB of keyed state (1 M keys x 1100 bytes), every 2 s, to {where}")
    start = time.time()
    p = subprocess.run([eddy, "run", "--local", "--checkpoint-interval", "2s", "--checkpoint-dir", checkpoint_dir, "--memory-limit", "4096",
                        "-c", "big-state", stateful, "--n", "4000000", "--keys", "1000000", "--value-bytes", "1100", "--rate", "500000"],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"the big-state job failed:\n{p.stderr[-2000:]}")
    sizes = [(int(i), float(mib), int(ms), int(sync)) for i, mib, ms, sync in
             re.findall(r"checkpoint (\d+): ([\d.]+) MiB in (\d+) ms \(processing paused (\d+) ms\)", p.stderr)]
    for i, mib, ms, sync in sizes:
        print(f"   checkpoint {i}: {mib:.0f} MiB in {ms} ms, processing paused {sync} ms")
    big = [s for s in sizes if s[1] >= 1024]
    if not big:
        print("no checkpoint reached 1 GiB:\n" + p.stderr[-2000:])
        return None
    ms, mib, paused = statistics.median(s[2] for s in big), statistics.median(s[1] for s in big), statistics.median(s[3] for s in big)
    print(f"1 GiB checkpoint to {where}: median {ms} ms for {mib:.0f} MiB, of which processing paused {paused} ms")
    return ms


with tempfile.TemporaryDirectory() as tmp:
    local = big_state("a local directory", f"{tmp}/chk")

# The same to an S3-compatible server on loopback (s3s-fs, on a local disk too):
# what the object-store path costs over writing files.
s3s = os.environ.get("S3S_FS", os.path.join(os.path.dirname(eddy), "..", "tools", "bin", "s3s-fs"))
if os.path.exists(s3s):
    with tempfile.TemporaryDirectory() as root:
        os.mkdir(f"{root}/eddy")
        port = free_port()
        server = subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(port), "--access-key", "bench", "--secret-key", "bench-secret", root],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            env = dict(os.environ, AWS_ENDPOINT=f"http://127.0.0.1:{port}", AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="bench",
                       AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1")
            remote = big_state("S3 (s3s-fs on 127.0.0.1)", "s3://eddy/bench", env)
        finally:
            server.kill()
    if local and remote:
        print(f"1 GiB checkpoint: S3 {remote} ms vs local directory {local} ms: {remote / local:.2f}x")
else:
    print(f"(no {s3s}: tests/tools/install-s3s-fs.sh installs it; the S3 checkpoint benchmark is skipped)")


def get(http, path):
    # The JobManager wrote its admin key beside its addresses.
    key = open(KEY_FILE).read().strip()
    req = urllib.request.Request(f"http://{http}{path}", headers={"authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


print("==> recovery after SIGKILL of a TaskManager (heartbeat timeout 2 s)")
with tempfile.TemporaryDirectory() as tmp:
    jm = subprocess.Popen([eddy, "jobmanager", "--bind", "127.0.0.1:0", "--rpc-bind", "127.0.0.1:0", "--state-dir", tmp,
                           "--heartbeat-timeout", "2"], stderr=subprocess.DEVNULL)
    tms = []
    try:
        while not os.path.exists(f"{tmp}/jobmanager.json"):
            time.sleep(0.05)
        time.sleep(0.1)
        addrs = json.load(open(f"{tmp}/jobmanager.json"))
        KEY_FILE = f"{tmp}/admin.token"
        for _ in range(3):
            tms.append(cluster.taskmanager(eddy, addrs["rpc"], addrs["http"], tmp, 1, stderr=subprocess.DEVNULL))
            n = len(tms)
            while len(get(addrs["http"], "/taskmanagers")["taskmanagers"]) < n:
                time.sleep(0.05)
        out = subprocess.run([eddy, "run", "-m", addrs["http"], "--token-file", KEY_FILE, "-p", "2", "--checkpoint-interval", "500ms",
                              "--restart-strategy", "fixed-delay:3:100ms", "-c", "sequence-check", stateful,
                              "--n", "1000000", "--rate", "20000", "--output", f"{tmp}/out"],
                             capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired as e:
        out = e
    try:
        job = re.search(r"JobID (\S+)", out.stdout if isinstance(out.stdout, str) else out.stdout.decode()).group(1)
        while get(addrs["http"], f"/jobs/{job}")["checkpoints"]["completed"] < 2:
            time.sleep(0.05)
        details = get(addrs["http"], f"/jobs/{job}")
        victim = int(details["tasks"][0]["subtasks"][1]["taskmanager"].split("-")[1])
        tms[victim - 1].send_signal(signal.SIGKILL)
        killed = time.time()
        while True:
            j = get(addrs["http"], f"/jobs/{job}")
            if j["attempt"] >= 1 and j["status"] == "RUNNING":
                break
            time.sleep(0.01)
        print(f"recovery: RUNNING again {time.time() - killed:.2f} s after the SIGKILL of tm-{victim}")
    finally:
        for p in tms + [jm]:
            p.kill()



def post(http, path, body, content_type):
    key = open(KEY_FILE).read().strip()
    req = urllib.request.Request(f"http://{http}{path}", data=body, method="POST",
                                 headers={"authorization": f"Bearer {key}", "content-type": content_type})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def submit(http, wasm, run):
    jar = post(http, "/jars/upload?name=job.wasm", open(wasm, "rb").read(), "application/wasm")["id"]
    return post(http, f"/jars/{jar}/run", json.dumps(run).encode(), "application/json")["jobid"]


def get_retrying(http, path):
    while True:
        try:
            return get(http, path)
        except OSError:
            time.sleep(0.01)


print("==> JobManager SIGKILLed and started again on the same state (heartbeat timeout 2 s)")
with tempfile.TemporaryDirectory() as tmp:
    http, rpc = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    KEY_FILE = f"{tmp}/admin.token"

    def start_jm():
        if os.path.exists(f"{tmp}/jobmanager.json"):
            os.remove(f"{tmp}/jobmanager.json")
        p = subprocess.Popen([eddy, "jobmanager", "--bind", http, "--rpc-bind", rpc, "--state-dir", tmp, "--heartbeat-timeout", "2"],
                             stderr=subprocess.DEVNULL)
        while not os.path.exists(f"{tmp}/jobmanager.json"):
            time.sleep(0.01)
        return p

    jm = start_jm()
    tms = [cluster.taskmanager(eddy, rpc, http, tmp, 1, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        while len(get_retrying(http, "/taskmanagers")["taskmanagers"]) < 2:
            time.sleep(0.05)
        job = submit(http, stateful, {"entry": "sequence-check", "parallelism": 2, "checkpoint-interval-ms": 500,
                                      "args": ["--n", "10000000", "--rate", "20000", "--output", f"{tmp}/out"]})
        times = []
        for i in range(3):
            attempt = get_retrying(http, f"/jobs/{job}")["attempt"]
            while get_retrying(http, f"/jobs/{job}")["checkpoints"]["completed"] < 1:
                time.sleep(0.05)
            jm.send_signal(signal.SIGKILL)
            jm.wait()
            killed = time.time()
            jm = start_jm()
            while True:
                j = get_retrying(http, f"/jobs/{job}")
                if j["attempt"] > attempt and j["status"] == "RUNNING":
                    break
                time.sleep(0.01)
            times.append(time.time() - killed)
            print(f"   restart {i + 1}: RUNNING again {times[-1]:.2f} s after the SIGKILL")
        print(f"JobManager restart: RUNNING again after a median {statistics.median(times):.2f} s (target 5 s)")
    finally:
        for p in tms + [jm]:
            p.kill()


def start_postgres(root):
    """Debian's PostgreSQL on a free loopback port, data in `root` (as the postgres user when root)."""
    import glob, pwd
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    binary = lambda name: os.path.join(bins[-1], name) if bins else name
    data = os.path.join(root, "pg")
    os.mkdir(data)
    prefix = []
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
        pw = pwd.getpwnam("postgres")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(prefix + [binary("initdb"), "-A", "trust", "-U", "eddy", "--no-sync", "-D", data], check=True, capture_output=True)
    port = free_port()
    p = subprocess.Popen(prefix + [binary("postgres"), "-D", data, "-p", str(port), "-k", data, "-c", "listen_addresses=127.0.0.1",
                                   "-c", "fsync=off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        time.sleep(0.05)
    return p, f"postgres://eddy@127.0.0.1:{port}/postgres"


print("==> standby JobManager: the leader SIGKILLed, the standby takes over (PostgreSQL, lease 2 s, heartbeat timeout 2 s)")
with tempfile.TemporaryDirectory() as tmp:
    pg, url = start_postgres(tmp)
    sides = [(f"{tmp}/a", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"), (f"{tmp}/b", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")]
    for d, _, _ in sides:
        os.mkdir(d)

    def start_side(i):
        d, http, rpc = sides[i]
        if os.path.exists(f"{d}/jobmanager.json"):
            os.remove(f"{d}/jobmanager.json")
        return subprocess.Popen([eddy, "jobmanager", "--bind", http, "--rpc-bind", rpc, "--state-dir", d, "--database", url,
                                 "--leader-lease", "2s", "--heartbeat-timeout", "2"], stderr=subprocess.DEVNULL)

    jms = [start_side(0), None]
    while not os.path.exists(f"{sides[0][0]}/jobmanager.json"):
        time.sleep(0.01)
    jms[1] = start_side(1)
    KEY_FILE = f"{sides[0][0]}/admin.token"
    both = f"{sides[0][2]},{sides[1][2]}"
    tms = [cluster.taskmanager(eddy, both, sides[0][1], sides[0][0], 1, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        while len(get_retrying(sides[0][1], "/taskmanagers")["taskmanagers"]) < 2:
            time.sleep(0.05)
        job = submit(sides[0][1], stateful, {"entry": "sequence-check", "parallelism": 2, "checkpoint-interval-ms": 500,
                                              "args": ["--n", "10000000", "--rate", "20000", "--output", f"{tmp}/out"]})
        times, leader = [], 0
        for i in range(3):
            http = sides[leader][1]
            attempt = get_retrying(http, f"/jobs/{job}")["attempt"]
            while get_retrying(http, f"/jobs/{job}")["checkpoints"]["completed"] < 1 or get_retrying(http, f"/jobs/{job}")["status"] != "RUNNING":
                time.sleep(0.05)
            jms[leader].send_signal(signal.SIGKILL)
            jms[leader].wait()
            killed = time.time()
            standby = 1 - leader
            while True:
                try:
                    j = get(sides[standby][1], f"/jobs/{job}")
                    if j["attempt"] > attempt and j["status"] == "RUNNING":
                        break
                except OSError:
                    pass
                time.sleep(0.01)
            times.append(time.time() - killed)
            print(f"   takeover {i + 1}: RUNNING on the standby {times[-1]:.2f} s after the SIGKILL of the leader")
            jms[leader] = start_side(leader)  # the next standby
            leader = standby
        print(f"standby takeover: RUNNING again after a median {statistics.median(times):.2f} s (target 3 s)")
    finally:
        for p in tms + [j for j in jms if j]:
            p.kill()
        pg.terminate()
        pg.wait()
