"""Keyed state, event-time timers and windows in Python: entry ``features``.

Six events ``(user, amount, timestamp ms)`` with event time from field 2 (watermarks 0 ms
behind the largest timestamp). Three outputs, all printed:

- a keyed process function: value state ``seen`` counts each user's events
  (``event alice #2 at 2500``); map state ``sums`` adds the amounts per 5 s period, and an
  event-time timer at the period's last millisecond emits and clears that period's sum
  (``timer alice [0,5000) sum=4``);
- a built-in tumbling 5 s event-time window count (``count alice [0,5000) 2``; the window's
  result carries the timestamp ``end - 1``);
- a window process function over the same windows (``window alice [0,5000) amounts=[1, 3]``).

Run: ``target/release/eddy run -c features features.wasm | sort``. Entry ``fail`` shows how an
exception in an operator fails the job; entry ``churn`` passes ``--mib N`` MiB of records
(default 96) through keyed value state and out of an operator that keeps none of them in
its memory.
"""

import eddy
from eddy import Window

EVENTS = [
    ("alice", 1, 1000), ("bob", 2, 1500), ("alice", 3, 2500),
    ("bob", 4, 6000), ("alice", 5, 7000), ("carol", 6, 12000),
]
PERIOD = 5000


def on_event(ctx, event):
    _, amount, _ = event
    seen = ctx.value_state("seen")
    n = seen.get(0) + 1
    seen.set(n)
    ctx.collect(f"event {ctx.key} #{n} at {ctx.timestamp}")
    end = (ctx.timestamp // PERIOD + 1) * PERIOD
    sums = ctx.map_state("sums")
    sums.put(end, sums.get(end, 0) + amount)
    ctx.register_event_time_timer(end - 1)  # one timer per key and time, however often set


def on_timer(ctx, timer):
    end = timer.timestamp + 1
    sums = ctx.map_state("sums")
    ctx.collect(f"timer {ctx.key} [{end - PERIOD},{end}) sum={sums.get(end)}")
    sums.remove(end)


def window_line(ctx, user_count):
    user, n = user_count
    end = ctx.timestamp + 1
    ctx.collect(f"count {user} [{end - PERIOD},{end}) {n}")


def window_amounts(ctx, user, window, events):
    amounts = sorted(e[1] for e in events)
    ctx.collect(f"window {user} [{window.start},{window.end}) amounts={amounts}")


@eddy.entry("features")
def features(env, args):
    by_user = (env.from_elements(EVENTS)
               .assign_timestamps(2, 0)
               .key_by(lambda e: e[0]))
    by_user.process(on_event, on_timer).name("periods").print()
    by_user.window(Window.tumbling_event_time(PERIOD)).count().process(window_line).print()
    by_user.window(Window.tumbling_event_time(PERIOD)).process(window_amounts).print()


def picky(x):
    if x == 5:
        raise ValueError("five is not allowed")
    return x


@eddy.entry("fail")
def fail(env, args):
    """An operator that raises: the job fails with one line naming the exception."""
    env.generate(10, lambda i: i).map(picky).name("picky").print()


def keep_last(ctx, record):
    ctx.value_state("last").set(record)
    ctx.collect(record)


@eddy.entry("churn")
def churn(env, args):
    """Records of 256 bytes (as JSON) in ten keys: each is written to value state and
    emitted, then dropped by the host."""
    records = args.parse_or("mib", 96) * 4096
    (env.generate(records, lambda i: "%0254d" % i)
     .key_by(lambda r: r[-1])
     .process(keep_last).name("keep last")
     .discard())


def count(i):
    eddy.counter("seen")
    eddy.counter("total", i)
    return i


@eddy.entry("count")
def count_entry(env, args):
    """``--n N`` numbers (default 100 000) through an operator that counts them and adds
    them up in two counters, which the job's summary shows."""
    env.generate(args.parse_or("n", 100_000), lambda i: i).map(count).name("count").discard()


@eddy.entry("not-json")
def not_json(env, args):
    """Values that are not JSON: a ``set`` (``--value set``) or NaN (``--value nan``) from
    the fourth record of ``generate(5)``, which the host refuses by name."""
    bad = {"set": lambda: {"tags": {1, 2}}, "nan": lambda: {"x": float("nan")}}[args.get_or("value", "set")]
    (env.generate(5, lambda i: i).map(lambda i: bad() if i == 3 else {"tags": [i]}).name("tags")
     .print())
