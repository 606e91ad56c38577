"""The Python SDK's two-input operators, joins and ``window_all``, for ``tests/twoinput.rs``
and ``tests/windows.rs``: each entry is its Rust namesake in ``tests/components/twoinput``
or ``tests/components/windows``, with the same arguments and the same output, so the tests
hold it to the same expected output, computed there.
"""

import eddy
from eddy import Window

KEYS = 5


def timed(env, n, f):
    """``n`` values ``f(i)`` with event time from field 1."""
    return env.generate(n, f).assign_timestamps(1, 0)


def the_two_streams(env, args):
    n = args.parse_or("n", 1000)
    return timed(env, n, lambda i: [i % KEYS, 3 * i, i]), timed(env, n, lambda j: [j % KEYS, 5 * j, j])


@eddy.entry("window-join")
def window_join(env, args):
    a, b = the_two_streams(env, args)
    windows = {
        ("tumbling", False): Window.tumbling_event_time(50),
        ("sliding", False): Window.sliding_event_time(50, 20),
        ("session", False): Window.session_event_time(12),
        ("tumbling", True): Window.tumbling_processing_time(60_000),
    }
    window = windows[(args.get_or("window", "tumbling"), args.get("time") == "processing")]
    (a.join(b).where_key(lambda v: v[0]).equal_to(lambda v: v[0]).window(window)
        .apply(lambda x, y: f"{x[2]} {y[2]}").write_text_file(args.required("output")))


@eddy.entry("interval-join")
def interval_join(env, args):
    a, b = the_two_streams(env, args)
    (a.key_by(lambda v: v[0]).interval_join(b.key_by(lambda v: v[0])).between(-7, 11)
        .process(lambda ctx, x, y: ctx.collect(f"{x[2]} {y[2]}"))
        .write_text_file(args.required("output")))


@eddy.entry("broadcast-rules")
def broadcast_rules(env, args):
    n = args.parse_or("n", 1000)
    values = timed(env, n, lambda i: [i % KEYS, i, i])
    rules = env.from_elements([0, 0, 100], [1, 0, 3], [2, 0, 4], [3, 0, 5], [4, 0, 6], [0, 0, 2], [4, 0, 0])
    rules = rules.assign_timestamps(1, 0).broadcast_state()

    def element(ctx, v):
        total = ctx.value_state("sum")
        total.set(total.get(0) + v[2])
        ctx.register_event_time_timer(2**63 - 2)

    def rule(ctx, r):
        key, _, multiplier = r
        if multiplier:
            ctx.broadcast_state("rules").put(key, multiplier)
        else:
            ctx.broadcast_state("rules").remove(key)

    def on_timer(ctx, timer):
        multiplier = ctx.broadcast_state("rules").get(ctx.key, "none")
        ctx.collect(f"{ctx.key} {ctx.value_state('sum').get(0)} {multiplier}")

    (values.key_by(lambda v: v[0]).connect_broadcast(rules).process(element, rule, on_timer)
        .uid("rules").write_text_file(args.required("output")))


@eddy.entry("window-all")
def window_all(env, args):
    n = args.parse_or("n", 1000)
    window = {
        "tumbling": Window.tumbling_event_time(50),
        "sliding": Window.sliding_event_time(60, 20),
        "sliding-uneven": Window.sliding_event_time(50, 20),
        "session": Window.session_event_time(5),
        "processing": Window.tumbling_processing_time(50),
    }[args.get_or("window", "tumbling")]
    values = env.generate(n, lambda i: [i, i + 10 * (i // 100)]).assign_timestamps(1, 0).map(lambda v: v[0])
    windowed = values.window_all(window)

    def line(f):
        return lambda ctx, x: ctx.collect(f"{f} end={ctx.timestamp + 1} {x}")

    function = args.get_or("fn", "count")
    if function == "count":
        windowed.count().process(line("count")).print()
    elif function == "sum":
        windowed.sum().process(line("sum")).print()
    elif function == "reduce":
        windowed.reduce(lambda a, b: a + b).process(line("reduce")).print()
    else:
        windowed.process(lambda ctx, w, vs: ctx.collect(f"process {w.start}..{w.end} {len(vs)} {max(vs)}")).print()


@eddy.entry("broadcast-copies")
def broadcast_copies(env, args):
    n = args.parse_or("n", 1000)
    rules = env.from_elements("a", "b", "c").broadcast_state()

    def rule(ctx, r):
        seen = ctx.broadcast_state("seen")
        seen.put(r, True)
        ctx.collect(f"rule {r} {len(seen.entries())}")

    (env.generate(n, lambda i: i).connect_broadcast(rules)
        .process(lambda ctx, x: ctx.collect(f"n{x}"), rule)
        .write_text_file(args.required("output")))
