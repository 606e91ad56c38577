"""Native tests of the Python SDK (no component needed): argument parsing and word
splitting as in Rust, the batch framing's fast and slow paths, and graph building.

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import eddy  # noqa: E402
from eddy import ops  # noqa: E402
from eddy.text import words, words_of_lines  # noqa: E402


def frame(records):
    """The framing of wit/README.md, written out plainly."""
    out = b""
    for k, t, v in records:
        out += bytes([(1 if k is not None else 0) | (2 if t is not None else 0)])
        if t is not None:
            out += t.to_bytes(8, "little", signed=True)
        if k is not None:
            out += len(k).to_bytes(4, "little") + k
        out += len(v).to_bytes(4, "little") + v
    return out


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


class FramingTest(unittest.TestCase):
    def test_round_trips(self):
        rnd = random.Random(1)

        def value():
            c = rnd.random()
            if c < 0.3:
                return str(rnd.randint(-10**6, 10**20)).encode()
            if c < 0.6:
                n = rnd.choice([1, 5, 130, 300, 70000])
                return ops.encode_value("".join(rnd.choice('ab\u00e9\u4e2d\n"\\x') for _ in range(n)))
            return ops.encode_value([rnd.randint(0, 9), "x"])

        for _ in range(300):
            mode = rnd.choice(["none", "key", "ts", "both", "mixed"])
            records = []
            for _ in range(rnd.choice([0, 1, 2, 5, 50])):
                mixed = mode == "mixed"
                k = ops.encode_value("k%d" % rnd.randint(0, 300)) \
                    if mode in ("key", "both") or (mixed and rnd.random() < .5) else None
                t = rnd.randint(-2**63, 2**63 - 1) \
                    if mode in ("ts", "both") or (mixed and rnd.random() < .5) else None
                records.append((k, t, value()))
            data = frame(records)
            b = ops.decode_batch(data)
            self.assertEqual(ops.encode_batch(b), data)
            self.assertEqual(ops.encode_batch(ops.Batch(b.keys, b.ts, None, b.values())), data)

    def test_rows_encoded_as_one_batch_are_each_rows_json(self):
        rows = [
            [{"a": 1, "s": 'x\x00"y', "f": 1.5}, {"a": -2, "s": "", "f": 0.1}],
            [{"tags": ["p", "q"], "d": {"k": "v", "n": None}}, {"tags": [], "d": {}}],
            [{"list": [1, 2]}, {"list": [3]}],
            [{"list": [{"x": 1}, {"y": "\u00e9"}]}, {}],
            [{1: True, "\x00": "\x00"}, {"2": False}],
        ]
        for vals in rows * 2:  # the second time, batches with lists are known
            self.assertEqual(ops.json_texts(vals), [ops._dumps(v) for v in vals], vals)
            self.assertEqual(ops.encode_values(vals),
                             [ops._dumps(v).encode() for v in vals], vals)
        for bad in ([{"a": float("nan")}, {"a": 1}], [{"a": {1, 2}}, {}]):
            with self.assertRaisesRegex(eddy.EddyError, "cannot encode a"):
                ops.encode_values(bad)
        self.assertEqual(ops.encode_values([{"a": 1}, {"a": 2}]), [b'{"a":1}', b'{"a":2}'])

    def test_event_times_pass_on_unread_and_reach_process_functions_as_ints(self):
        times = [5, -1, 2**40, -2**63]
        data = frame([(None, t, b'{"a":1}') for t in times])
        mapped = ops.run_chain([ops.Map(lambda v: v["a"] + 1)], ops.decode_batch(data))
        self.assertEqual(ops.encode_batch(mapped), frame([(None, t, b"2") for t in times]))
        seen = []

        def f(ctx, v):
            seen.append(ctx.timestamp)
            ctx.collect(v["a"])
        out = ops.run_chain([ops.Filter(lambda v: True), ops.Process(f)], ops.decode_batch(data))
        self.assertEqual(seen, times)
        self.assertEqual(ops.encode_batch(out), frame([(None, t, b"1") for t in times]))

    def test_fast_unframing_agrees_with_the_general_loop(self):
        # Header bytes equal to flags, NULs and lengths of 256 and past 64 KiB: the split at
        # headers must give the loop's records, or leave the batch to it.
        rnd = random.Random(2)
        stamps = [0, -1, 2**63 - 1, -2**63, 0x0202020202020202, 0x0300000003000000]
        for _ in range(500):
            flags = rnd.choice([0, 1, 2, 3])
            records = []
            for _ in range(rnd.randint(1, 20)):
                k = ops.encode_value("k" * rnd.choice([1, 2, 255, 256, 258])) if flags & 1 else None
                t = rnd.choice(stamps + [rnd.getrandbits(63)]) if flags & 2 else None
                v = rnd.choice([b"1", b'"x"', ops.encode_value("a" * rnd.choice([0, 253, 254, 70000])),
                                b'{"a":[1,{"b":"\\u0002"}]}'])
                records.append((k, t, v))
            data = frame(records)
            fast, slow = ops.decode_batch(data), ops._decode_slow(data)
            self.assertEqual((fast.keys, fast.times(), fast.raw), (slow.keys, slow.ts, slow.raw))

    def test_a_value_that_holds_itself_is_named(self):
        loop = []
        loop.append(loop)
        with self.assertRaisesRegex(eddy.EddyError, "cannot encode a list as JSON: Circular reference"):
            ops.encode_batch(ops.Batch(None, None, None, [1, loop]))

    def test_value_encodings_match_serde(self):
        for vals in ([1, 22, 333], [10, 11], [-5, -50], [True, 1], [1.5, 2], ["a", "é\n\"x"],
                     [["w", 1], {"word": "naïve", "length": 5}, None], [10**30]):
            want = frame([(None, None, ops.encode_value(v)) for v in vals])
            self.assertEqual(ops.encode_batch(ops.Batch(None, None, None, list(vals))), want)
        self.assertEqual(ops.encode_value(["w", 1]), b'["w",1]')
        self.assertEqual(ops.encode_value({"word": "é", "length": 1}), '{"word":"é","length":1}'.encode())

    def test_malformed(self):
        for bad, msg in [(b"\x05\x00\x00\x00\x00", "unknown flag bits 0x05"),
                         (b"\x10\x00\x00\x00\x00", "unknown flag bits 0x10"),
                         (b"\x00\x05\x00\x00\x00ab", "ends inside its value"),
                         (b"\x01\x01", "ends inside its key")]:
            with self.assertRaisesRegex(eddy.EddyError, msg):
                ops.decode_batch(bad)


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
            ops.run_batch(g.registry, frame([(None, None, b"1"), (None, None, b"2")]))
            self.assertEqual(host.calls, [], "nothing until the call ends")
            ctx_mod.flush_counters()
            self.assertEqual(host.calls, [("records", 2), ("total", 3)])
            with self.assertRaisesRegex(eddy.EddyError, "counter 'total': delta -1 is negative"):
                ops.run_batch(g.registry, frame([(None, None, b"-1")]))
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
        out = ops.run_batch(g.registry, frame([(None, 5, b"3")]))
        self.assertEqual(out, frame([(b'"k7"', 5, b"7")]))

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
        # The host marks the second input's records with flag bit 3.
        second = bytearray(frame([(None, None, b'"a"')]))
        second[0] |= 8
        out = ops.run_batch(g.registry, frame([(None, None, b"2")]) + bytes(second))
        self.assertEqual(out, frame([(None, None, b"20"), (None, None, b'"A"')]))

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
            def second(v):
                r = bytearray(frame([(None, None, v)]))
                r[0] |= 8
                return bytes(r)
            data = second(b'["a",7]') + frame([(None, None, b'"a"'), (None, None, b'"b"')]) + second(b'["a",0]')
            data += frame([(None, None, b'"a"')])
            out = ops.run_batch(g.registry, data)
            self.assertEqual(out, frame([(None, None, b'["a",7]'), (None, None, b'["b","none"]'),
                                         (None, None, b'["a","none"]')]))
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
