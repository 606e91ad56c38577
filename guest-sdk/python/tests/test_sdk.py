"""Native tests of the Python SDK (no component needed): argument parsing and word
splitting as in Rust, batches as the host gives and takes them, and graph building.

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import marshal
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import eddy  # noqa: E402
from eddy import ops  # noqa: E402
from eddy.text import words, words_of_lines  # noqa: E402


def host_batch(records):
    """What the host gives a call for ``(key JSON bytes or None, time or None, value[,
    second input])`` records: the marshal of ``(keys, timestamps, values, inputs)``."""
    keys = [r[0] for r in records]
    ts = [r[1] for r in records]
    inputs = [int(len(r) > 3 and r[3]) for r in records]
    return marshal.dumps((keys if any(k is not None for k in keys) else None,
                          ts if any(t is not None for t in ts) else None,
                          [r[2] for r in records], inputs if any(inputs) else None))


def emitted(out):
    """The ``(keys, timestamps, values)`` a call returned."""
    return marshal.loads(out) if out else (None, None, [])


class ArgsTest(unittest.TestCase):
    # The cases of guest-sdk/src/args.rs.
    def test_forms(self):
        a = eddy.Args(["pos", "--input", "in.txt", "--output=out", "--verbose", "--n", "-5",
                       "--x=a=b", "-p", "3"])
        self.assertEqual(a.get("input"), "in.txt")
        self.assertEqual(a.get("output"), "out")
        self.assertEqual(a.get("verbose"), "true")
        self.assertTrue(a.has("verbose"))
        self.assertEqual(a.parse_or("n", 0), -5)
        self.assertEqual(a.get("x"), "a=b")
        self.assertEqual(a.get("p"), "3")
        self.assertEqual(a.positional, ["pos"])

    def test_flags_errors_and_double_dash(self):
        a = eddy.Args(["--dry", "--port", "9", "--last"])
        self.assertEqual((a.get("dry"), a.parse_or("port", 1), a.get("last")), ("true", 9, "true"))
        a = eddy.Args(["--port", "seventy"])
        with self.assertRaisesRegex(eddy.EddyError, "missing required argument --input"):
            a.required("input")
        self.assertEqual(a.get_or("host", "localhost"), "localhost")
        with self.assertRaisesRegex(eddy.EddyError, "invalid value 'seventy' for --port"):
            a.parse_or("port", 7777)
        a = eddy.Args(["--k", "1", "--k", "2", "--", "--not-an-option"])
        self.assertEqual((a.get("k"), a.positional), ("2", ["--not-an-option"]))


class TextTest(unittest.TestCase):
    # The cases of guest-sdk/src/text.rs.
    def test_words(self):
        self.assertEqual(words("Hello, World! hello"), ["hello", "world", "hello"])
        self.assertEqual(words("  --  "), [])
        self.assertEqual(words("a1b2 x_y"), ["a1b2", "x", "y"])
        self.assertEqual(words("Café Über NAÏVE"), ["café", "über", "naïve"])
        self.assertEqual(words("«quoted»—dash…end"), ["quoted", "dash", "end"])
        self.assertEqual(words("ΣΑΣ"), ["σας"])
        self.assertEqual(words("日本語 テキスト"), ["日本語", "テキスト"])
        self.assertEqual(words("x\u00a0y"), ["x", "y"])
        lines = ["Hello, World", "ΣΑΣ x", "", "a1b2 x_y"]
        self.assertEqual(words_of_lines(lines), [w for line in lines for w in words(line)])


class BatchTest(unittest.TestCase):
    def test_round_trips(self):
        rnd = random.Random(1)
        for _ in range(200):
            mode = rnd.choice(["none", "key", "ts", "both", "mixed"])
            records = []
            for _ in range(rnd.choice([1, 2, 5, 50])):
                mixed = mode == "mixed"
                k = ops.encode_value("k%d" % rnd.randint(0, 300)) \
                    if mode in ("key", "both") or (mixed and rnd.random() < .5) else None
                t = rnd.randint(-2**63, 2**63 - 1) \
                    if mode in ("ts", "both") or (mixed and rnd.random() < .5) else None
                records.append((k, t, rnd.choice([1, "é\n", [1, {"a": None}], 2.5, 10**30])))
            b = ops.decode_batch(host_batch(records))
            out = emitted(ops.encode_batch(b))
            self.assertEqual(out, marshal.loads(host_batch(records))[:3])
            # Version 2: no object references, which the host refuses.
            self.assertEqual(ops.encode_batch(b), marshal.dumps(out, 2))
        self.assertEqual(ops.encode_batch(ops.decode_batch(b"")), b"")

    def test_values_marshal_cannot_write_go_through_json(self):
        import collections
        import enum
        Point = collections.namedtuple("Point", "x y")

        class Color(enum.IntEnum):
            RED = 1

        vals = [Point(1, 2), collections.OrderedDict(a=Color.RED), {"p": Point(3, [4])}]
        out = emitted(ops.encode_batch(ops.Batch(None, None, vals)))
        self.assertEqual(out, (None, None, [[1, 2], {"a": 1}, {"p": [3, [4]]}]))

        class Opaque:
            pass
        with self.assertRaisesRegex(eddy.EddyError, "cannot encode a Opaque as JSON"):
            ops.encode_batch(ops.Batch(None, None, [1, Opaque()]))
        loop = []
        loop.append(loop)
        with self.assertRaisesRegex(eddy.EddyError, "cannot encode a list as JSON: Circular reference"):
            ops.encode_batch(ops.Batch(None, None, [1, loop]))

    def test_event_times_reach_process_functions_as_ints(self):
        times = [5, -1, 2**40, -2**63]
        data = host_batch([(None, t, {"a": 1}) for t in times])
        mapped = ops.run_chain([ops.Map(lambda v: v["a"] + 1)], ops.decode_batch(data))
        self.assertEqual(emitted(ops.encode_batch(mapped)), (None, times, [2] * 4))
        seen = []

        def f(ctx, v):
            seen.append(ctx.timestamp)
            ctx.collect(v["a"])
        out = ops.run_chain([ops.Filter(lambda v: True), ops.Process(f)], ops.decode_batch(data))
        self.assertEqual(seen, times)
        self.assertEqual(emitted(ops.encode_batch(out)), (None, times, [1] * 4))

    def test_timers_of_two_operators_return_one_batch(self):
        class Timed(ops.Operator):
            def __init__(self, emit):
                self.emit = emit

            def on_timer(self, key, timer):
                return ops.Batch([key] * len(self.emit), None, list(self.emit))

            def process(self, b):
                return b
        out = ops.run_timer([Timed([1, 2]), ops.Map(lambda v: v * 10), Timed([3])], b'"k"', None)
        self.assertEqual(emitted(out), ([b'"k"'] * 3, None, [10, 20, 3]))
        self.assertEqual(ops.run_timer([ops.Map(abs)], b'"k"', None), b"")

    def test_keys_are_json(self):
        out = ops.run_chain([ops.KeyBy(lambda v: v)], ops.decode_batch(host_batch(
            [(None, None, v) for v in (1, "é", [1, "x"], None)])))
        self.assertEqual(emitted(ops.encode_batch(out))[0], ["1", '"é"', '[1,"x"]', "null"])
        self.assertEqual(ops.encode_value(["w", 1]), b'["w",1]')
        self.assertEqual(ops.encode_value({"word": "é", "length": 1}), '{"word":"é","length":1}'.encode())


class GraphTest(unittest.TestCase):
    def test_word_count_shape(self):
        env = eddy.Env("wc")
        (env.read_text_file("in.txt").flat_map(words).name("tokenize")
            .key_by(lambda w: w).sum(1).name("count")
            .map(lambda wc: f"{wc[0]} {wc[1]}").print().set_parallelism(1))
        g = env._finish()
        self.assertEqual([v.name for v in g.vertices],
                         ["File Source", "tokenize", "KeyBy", "count", "Map", "Print Sink"])
        self.assertEqual([(e.source, e.target, e.partitioning) for e in g.edges],
                         [(0, 1, "forward"), (1, 2, "forward"), (2, 3, "hash"), (3, 4, "forward"),
                          (4, 5, "forward")])
        self.assertEqual([v.kind[0] for v in g.vertices],
                         ["file-source", "wasm", "wasm", "aggregate", "wasm", "print-sink"])
        self.assertEqual(g.vertices[3].kind, ("aggregate", "sum", ("index", 1)))
        self.assertEqual(len(g.registry), 3)

    def test_file_sources_of_json_lines_and_of_nexmark_events(self):
        env = eddy.Env("files")
        env.read_json_lines("values.jsonl").print()
        env.read_nexmark_file("events.jsonl").print()
        g = env._finish()
        self.assertEqual([v.name for v in g.vertices],
                         ["JSON Lines Source", "Print Sink", "Nexmark File Source", "Timestamps",
                          "Print Sink"])
        self.assertEqual(g.vertices[0].kind, ("json-lines-source", "values.jsonl"))
        self.assertEqual(g.vertices[2].kind, ("nexmark-file-source", "events.jsonl"))
        self.assertEqual(g.vertices[3].kind[1]["out_of_orderness_ms"], 4000)
        self.assertEqual([(e.source, e.target, e.partitioning) for e in g.edges],
                         [(0, 1, "forward"), (2, 3, "forward"), (3, 4, "forward")])

    def test_counters_reach_the_host_once_per_name_and_call_summed(self):
        from eddy import ctx as ctx_mod

        class Host:
            def __init__(self):
                self.calls = []

            def counter_add(self, name, delta):
                self.calls.append((name, delta))

        def count(n):
            eddy.counter("records")
            eddy.counter("total", n)
            return n

        env = eddy.Env("counting")
        env.from_elements([]).map(count).print()
        g = env._finish()
        host = Host()
        saved, ctx_mod._host = ctx_mod._host, host
        try:
            ops.run_batch(g.registry, host_batch([(None, None, 1), (None, None, 2)]))
            self.assertEqual(host.calls, [], "nothing until the call ends")
            ctx_mod.flush_counters()
            self.assertEqual(host.calls, [("records", 2), ("total", 3)])
            with self.assertRaisesRegex(eddy.EddyError, "counter 'total': delta -1 is negative"):
                ops.run_batch(g.registry, host_batch([(None, None, -1)]))
            ctx_mod.flush_counters()
            self.assertEqual(host.calls[2:], [("records", 1)], "what was counted before the failure")
        finally:
            ctx_mod._pending_counters.clear()
            ctx_mod._host = saved

    def test_run_chain(self):
        env = eddy.Env("ops")
        (env.generate(0, lambda i: i * 2).flat_map(lambda x: [x, x + 1])
            .filter(lambda x: x % 2 == 1).key_by(lambda x: f"k{x}").sum())
        g = env._finish()
        out = ops.run_batch(g.registry, host_batch([(None, 5, 3)]))
        self.assertEqual(emitted(out), (['"k7"'], [5], [7]))

    def test_kafka_source_and_sink(self):
        env = eddy.Env("k")
        (env.read_kafka("b:9092", "in", start={"timestamp": 5}, bounded=True, group="g",
                        format="json", secret="s")
            .map(lambda v: v).write_kafka("b:9092", "out", guarantee="at-least-once",
                                          format="envelope"))
        g = env._finish()
        self.assertEqual(g.vertices[0].kind,
                         ("kafka-source", "b:9092", ["in"], ("timestamp", 5), True, "g", "json", "s"))
        self.assertEqual(g.vertices[2].kind,
                         ("kafka-sink", "b:9092", "out", "at-least-once", "envelope", None))
        with self.assertRaisesRegex(eddy.EddyError, "start 'first' is not earliest"):
            env.read_kafka("b:1", "t", start="first")
        with self.assertRaisesRegex(eddy.EddyError, "guarantee 'exactly-once' is not none"):
            env.read_kafka("b:1", "t").write_kafka("b:1", "o", guarantee="exactly-once")

    def test_union_and_connect(self):
        env = eddy.Env("two")
        a, b, c = (env.from_elements(1), env.from_elements(2), env.from_elements(3))
        a.union(b, c).key_by(lambda x: x % 2).count().print()
        g = env._finish()
        key_bys = [v for v in g.vertices if v.name == "KeyBy"]
        self.assertEqual(len(key_bys), 3)
        self.assertEqual({v.kind for v in key_bys}, {("wasm", 0)})
        count = next(v.id for v in g.vertices if v.name == "Count")
        self.assertEqual([(e.partitioning, e.input) for e in g.edges if e.target == count],
                         [("hash", 0)] * 3)

        env = eddy.Env("co")
        numbers, words_ = env.from_elements(1, 2), env.from_elements("a")
        numbers.connect(words_).map(lambda n: n * 10, lambda w: w.upper()).print()
        g = env._finish()
        co = next(v.id for v in g.vertices if v.name == "CoMap")
        self.assertEqual([(e.source, e.input) for e in g.edges if e.target == co], [(0, 0), (1, 1)])
        # The host says which records came by the second input.
        out = ops.run_batch(g.registry, host_batch([(None, None, 2), (None, None, "a", 1)]))
        self.assertEqual(emitted(out), (None, None, [20, "A"]))

    def test_keyed_connect_and_nexmark(self):
        env = eddy.Env("kco")
        a, b = env.from_elements([1, 5]), env.from_elements([1, "x"])
        (a.connect(b).key_by(lambda v: v[0], lambda v: v[0])
            .process(lambda ctx, v: ctx.collect(v[1]), lambda ctx, v: ctx.collect(v[1])).print())
        g = env._finish()
        co = next(v for v in g.vertices if v.name == "CoProcess")
        self.assertTrue(co.keyed)
        self.assertEqual([(e.partitioning, e.input) for e in g.edges if e.target == co.id],
                         [("hash", 0), ("hash", 1)])
        env = eddy.Env("nx")
        env.read_nexmark(1000, event_rate=100).discard()
        g = env._finish()
        self.assertEqual([v.kind[0] for v in g.vertices], ["nexmark-source", "timestamps", "discard-sink"])
        self.assertEqual(g.vertices[0].kind, ("nexmark-source", 1000, None, 100))

    def test_broadcast_state(self):
        from eddy import ctx as ctx_mod

        class Host:
            """The broadcast-* imports over a dict, as the host keeps them."""
            def __init__(self):
                self.maps = {}

            def broadcast_get(self, state, key):
                return self.maps.get(state, {}).get(key)

            def broadcast_put(self, state, key, value):
                self.maps.setdefault(state, {})[key] = value

            def broadcast_remove(self, state, key):
                self.maps.get(state, {}).pop(key, None)

            def broadcast_entries(self, state):
                return sorted(self.maps.get(state, {}).items())

        def element(ctx, v):
            with self.assertRaises(AttributeError, msg="read-only on this side"):
                ctx.broadcast_state("rules").put("x", 1)
            ctx.collect([v, ctx.broadcast_state("rules").get(v, "none")])

        def rule(ctx, r):
            rules = ctx.broadcast_state("rules")
            rules.put(r[0], r[1]) if r[1] else rules.remove(r[0])

        env = eddy.Env("bc")
        rules = env.from_elements(["a", 1]).broadcast_state()
        env.from_elements("a").connect_broadcast(rules).process(element, rule).print()
        g = env._finish()
        op = next(v for v in g.vertices if v.name == "BroadcastProcess")
        self.assertFalse(op.keyed)
        self.assertEqual([(e.partitioning, e.input) for e in g.edges if e.target == op.id],
                         [("forward", 0), ("broadcast", 1)])
        saved, ctx_mod._host = ctx_mod._host, Host()
        try:
            data = host_batch([(None, None, ["a", 7], 1), (None, None, "a"), (None, None, "b"),
                               (None, None, ["a", 0], 1), (None, None, "a")])
            out = ops.run_batch(g.registry, data)
            self.assertEqual(emitted(out), (None, None, [["a", 7], ["b", "none"], ["a", "none"]]))
        finally:
            ctx_mod._host = saved
        env = eddy.Env("kbc")
        rules = env.from_elements(["a", 1]).broadcast_state()
        env.from_elements("a").key_by(lambda v: v).connect_broadcast(rules).process(element, rule).print()
        g = env._finish()
        op = next(v for v in g.vertices if v.name == "BroadcastProcess")
        self.assertTrue(op.keyed)
        self.assertEqual([(e.partitioning, e.input) for e in g.edges if e.target == op.id],
                         [("hash", 0), ("broadcast", 1)])
        with self.assertRaisesRegex(eddy.EddyError, "timers need a keyed stream"):
            env = eddy.Env("t")
            env.from_elements(1).connect_broadcast(env.from_elements(2).broadcast_state()).process(
                element, rule, on_timer=lambda ctx, t: None)

    def test_window_all_pre_aggregates_where_it_can(self):
        W = eddy.Window

        def shape(window, lateness=0):
            env = eddy.Env("all")
            env.from_elements(1).assign_timestamps(None, 0).window_all(window).allowed_lateness(lateness).count().print()
            g = env._finish()
            return [(v.name, v.parallelism) for v in g.vertices if v.kind[0] == "window"]

        merged = [("Window Count", None), ("Window Sum", 1)]
        self.assertEqual(shape(W.tumbling_event_time(10)), merged)
        self.assertEqual(shape(W.sliding_event_time(10, 5)), merged)
        single = [("Window Count", 1)]
        self.assertEqual(shape(W.sliding_event_time(10, 4)), single)
        self.assertEqual(shape(W.session_event_time(10)), single)
        self.assertEqual(shape(W.tumbling_processing_time(10)), single)
        self.assertEqual(shape(W.tumbling_event_time(10), 5), single)

    def test_errors(self):
        with self.assertRaisesRegex(eddy.EddyError, "defines no operators"):
            eddy.Env("e")._finish()
        env = eddy.Env("w")
        env.from_elements(1).with_idleness(5).print()
        with self.assertRaisesRegex(eddy.EddyError, "with_idleness must follow"):
            env._finish()


if __name__ == "__main__":
    unittest.main()
