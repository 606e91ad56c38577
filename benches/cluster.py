"""Starting TaskManagers for the cluster benchmarks: each enrols with a join
token that the JobManager's admin key creates, and trusts its ca.pem."""

import json, os, subprocess, urllib.request

_tokens = {}


def join_token(http, state):
    """A join token of the JobManager at `http` whose state is in `state` (made once)."""
    if state not in _tokens:
        key = open(os.path.join(state, "admin.token")).read().strip()
        req = urllib.request.Request(f"http://{http}/taskmanager-tokens", data=json.dumps({"description": "bench"}).encode(),
                                     method="POST", headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            _tokens[state] = json.loads(resp.read())["token"]
    return _tokens[state]


def taskmanager(eddy, rpc, http, state, slots, **popen):
    """`eddy taskmanager` with `slots` slots, enrolled with the cluster in `state`."""
    env = dict(os.environ, EDDY_JOIN_TOKEN=join_token(http, state))
    args = [eddy, "taskmanager", "--jobmanager", rpc, "--slots", str(slots), "--ca", os.path.join(state, "ca.pem")]
    return subprocess.Popen(args, env=env, **popen)
