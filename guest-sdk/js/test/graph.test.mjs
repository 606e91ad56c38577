// The graphs the JS builder makes, checked against the Rust SDK's own tests
// (guest-sdk/src/graph.rs and windows.rs): the same program must give the same graph.
import assert from "node:assert/strict";
import { test } from "node:test";
import { entry, Field, planner, Window, words } from "eddy";

const plan = (name, fn, args = []) => {
  entry(name, fn);
  return planner.plan(name, args);
};
const names = (g) => g.vertices.map((v) => v.name);
const edges = (g) => g.edges.map((e) => [e.source, e.target, e.partitioning]);

test("word count shape", () => {
  const g = plan("wc", (env) => {
    env
      .readTextFile("in.txt")
      .flatMap((line) => words(line).map((w) => [w, 1]))
      .name("tokenize")
      .keyBy(([w]) => w)
      .sum(1)
      .name("count")
      .map(([w, n]) => `${w} ${n}`)
      .print()
      .setParallelism(1);
  });
  assert.equal(g.name, "wc");
  assert.deepEqual(names(g), ["File Source", "tokenize", "KeyBy", "count", "Map", "Print Sink"]);
  assert.deepEqual(edges(g), [
    [0, 1, "forward"],
    [1, 2, "forward"],
    [2, 3, "hash"],
    [3, 4, "forward"],
    [4, 5, "forward"],
  ]);
  assert.deepEqual(g.vertices[0].kind, { tag: "file-source", val: "in.txt" });
  assert.deepEqual(g.vertices.map((v) => v.kind.tag === "wasm" && v.kind.val), [false, 0, 1, false, 2, false]);
  assert.deepEqual(g.vertices[3].kind, { tag: "aggregate", val: { kind: "sum", field: { tag: "index", val: 1 } } });
  assert.equal(g.vertices[3].keyed, false, "host aggregates read no guest state");
  assert.equal(g.vertices[5].parallelism, 1);
  assert.deepEqual(g.vertices.map((v) => v.id), [0, 1, 2, 3, 4, 5]);
});

test("sources, settings and keyed operators", () => {
  const g = plan("x", (env) => {
    env.setParallelism(4).setMaxParallelism(64).setJobName("named");
    env
      .socketTextStream("h", 9)
      .map((s) => s.length)
      .uid("len")
      .slotSharingGroup("g")
      .rebalance()
      .filter((n) => n > 0)
      .keyBy((n) => n % 2)
      .reduce((a, b) => a + b)
      .writeTextFile("/out");
    env
      .fromElements([["a", 1]])
      .keyBy(([k]) => k)
      .process((ctx, [, v]) => ctx.collect(String(v)))
      .print();
  });
  assert.deepEqual([g.name, g.parallelism, g.maxParallelism], ["named", 4, 64]);
  assert.deepEqual(names(g), [
    "Socket Source", "Map", "Filter", "KeyBy", "Reduce", "File Sink",
    "Elements Source", "KeyBy", "Process", "Print Sink",
  ]);
  assert.deepEqual(g.vertices[0].kind, { tag: "socket-source", val: { host: "h", port: 9 } });
  assert.equal(g.vertices[0].parallelism, 1);
  assert.equal(g.vertices[1].uid, "len");
  assert.equal(g.vertices[1].slotSharingGroup, "g");
  assert.ok(g.vertices[4].keyed && g.vertices[4].perKeyUpdates);
  assert.ok(g.vertices[8].keyed && !g.vertices[8].perKeyUpdates);
  assert.deepEqual(new TextDecoder().decode(g.vertices[6].kind.val[0]), '["a",1]');
  assert.deepEqual(edges(g), [
    [0, 1, "rebalance"],
    [1, 2, "rebalance"],
    [2, 3, "forward"],
    [3, 4, "hash"],
    [4, 5, "forward"],
    [6, 7, "forward"],
    [7, 8, "hash"],
    [8, 9, "forward"],
  ]);
});

test("generate and aggregates", () => {
  const g = plan("g", (env) => {
    env.generate(10, (i) => [i % 3, i]).keyBy(([k]) => k).count().print();
  });
  assert.deepEqual(names(g), ["Sequence Source", "Map", "KeyBy", "Count", "Print Sink"]);
  assert.deepEqual(g.vertices[0].kind, { tag: "sequence-source", val: { count: 10n, perSecond: undefined } });
  assert.deepEqual(g.vertices[3].kind, { tag: "aggregate", val: { kind: "count", field: { tag: "whole" } } });
  assert.deepEqual(Field.name("f"), { tag: "name", val: "f" });
});

test("windows with built-in functions and late data", () => {
  const g = plan("w", (env) => {
    const windowed = env
      .fromElements([["a", 5, 1]])
      .assignTimestamps(1, 100)
      .withIdleness(1000)
      .keyBy(([k]) => k)
      .window(Window.slidingEventTime(10, 5))
      .allowedLateness(20);
    const late = windowed.lateData();
    windowed.sum(2).print();
    late.print();
  });
  assert.deepEqual(names(g), ["Elements Source", "Timestamps", "KeyBy", "Window Sum", "Print Sink", "Print Sink"]);
  assert.deepEqual(g.vertices[1].kind.val, { field: { tag: "index", val: 1 }, outOfOrdernessMs: 100n, idleTimeoutMs: 1000n });
  assert.equal(g.vertices[1].parallelism, 1, "the assigner is placed with its source");
  assert.deepEqual(g.vertices[3].kind.val, {
    assigner: { tag: "sliding", val: { sizeMs: 10n, slideMs: 5n } },
    time: "event-time",
    allowedLatenessMs: 20n,
    function: { tag: "aggregate", val: { kind: "sum", field: { tag: "index", val: 2 } } },
  });
  assert.deepEqual(g.edges.map((e) => [e.source, e.target, e.partitioning, e.sideOutput]), [
    [0, 1, "forward", false],
    [1, 2, "forward", false],
    [2, 3, "hash", false],
    [3, 4, "forward", false],
    [3, 5, "forward", true],
  ]);
});

test("kafka source and sink", () => {
  const g = plan("kafka", (env) => {
    env
      .readKafka("b:9092", "in", { start: { timestamp: 5 }, bounded: true, group: "g", format: "json", secret: "s" })
      .map((v) => v)
      .writeKafka("b:9092", "out", { guarantee: "at-least-once", format: "envelope" });
  });
  assert.deepEqual(g.vertices[0].kind, {
    tag: "kafka-source",
    val: { brokers: "b:9092", topics: ["in"], start: { tag: "timestamp", val: 5n }, bounded: true, group: "g", format: "json", secret: "s" },
  });
  assert.deepEqual(g.vertices[2].kind, {
    tag: "kafka-sink",
    val: { brokers: "b:9092", topic: "out", guarantee: "at-least-once", format: "envelope", secret: undefined },
  });
  assert.throws(() => plan("kafka-typo", (env) => env.readKafka("b:1", "t", { fromat: "json" }).print()), (e) => /unknown option fromat/.test(e));
});

test("builder errors and unknown entries", () => {
  assert.throws(() => plan("idle", (env) => env.fromElements([1]).withIdleness(5).print()), (e) => /withIdleness must follow/.test(e));
  assert.throws(() => plan("empty", () => {}), (e) => /defines no operators/.test(e));
  assert.throws(() => planner.plan("nope", []), (e) => e.startsWith("unknown entry 'nope'; this component offers: wc, x, g, w"));
  assert.throws(() => plan("needs", (env, args) => args.required("input")), (e) => e === "missing required argument --input");
  assert.throws(() => plan("bad", () => null.x), (e) => /^TypeError: .* \(graph\.test\.mjs:\d+\)$/.test(e));
});

test("union keys every merged stream where it is; connect feeds a second input", () => {
  const g = plan("union-connect", (env) => {
    const [a, b, c] = [env.fromElements([1]), env.fromElements([2]), env.fromElements([3])];
    a.union(b, c).keyBy((x) => x % 2).count().print();
    const words_ = env.fromElements(["w"]);
    a.connect(words_)
      .keyBy((x) => x, (w) => w.length)
      .process((ctx, x) => ctx.collect(x), (ctx, w) => ctx.collect(w))
      .discard();
    env.readNexmark(1000, { eventRate: 100 }).discard();
  });
  const keyBys = g.vertices.filter((v) => v.name === "KeyBy").slice(0, 3);
  assert.deepEqual(keyBys.map((v) => v.kind), [{ tag: "wasm", val: 0 }, { tag: "wasm", val: 0 }, { tag: "wasm", val: 0 }]);
  const count = g.vertices.find((v) => v.name === "Count").id;
  assert.deepEqual(g.edges.filter((e) => e.target === count).map((e) => [e.partitioning, e.input]), [["hash", 0], ["hash", 0], ["hash", 0]]);
  const co = g.vertices.find((v) => v.name === "CoProcess");
  assert.equal(co.keyed, true);
  assert.deepEqual(g.edges.filter((e) => e.target === co.id).map((e) => [e.partitioning, e.input]), [["hash", 0], ["hash", 1]]);
  const nexmark = g.vertices.find((v) => v.name === "Nexmark Source");
  assert.deepEqual(nexmark.kind, { tag: "nexmark-source", val: { events: 1000n, perSecond: undefined, eventRate: 100n } });
});

test("windowAll pre-aggregates in parallel where it can", () => {
  const shape = (name, window, lateness = 0) => {
    const g = plan(name, (env) => {
      env.fromElements([1]).assignTimestamps(Field.whole, 0).windowAll(window).allowedLateness(lateness).count().print();
    });
    return g.vertices.filter((v) => v.kind.tag === "window").map((v) => [v.name, v.parallelism]);
  };
  const merged = [["Window Count", undefined], ["Window Sum", 1]];
  assert.deepEqual(shape("t", Window.tumblingEventTime(10)), merged);
  assert.deepEqual(shape("s", Window.slidingEventTime(10, 5)), merged);
  const single = [["Window Count", 1]];
  assert.deepEqual(shape("u", Window.slidingEventTime(10, 4)), single);
  assert.deepEqual(shape("e", Window.sessionEventTime(10)), single);
  assert.deepEqual(shape("p", Window.tumblingProcessingTime(10)), single);
  assert.deepEqual(shape("l", Window.tumblingEventTime(10), 5), single);
});

test("file sources of JSON Lines and of Nexmark events", () => {
  const g = plan("files", (env) => {
    env.readJsonLines("values.jsonl").print();
    env.readNexmarkFile("events.jsonl").print();
  });
  assert.deepEqual(names(g), ["JSON Lines Source", "Print Sink", "Nexmark File Source", "Timestamps", "Print Sink"]);
  assert.deepEqual(g.vertices[0].kind, { tag: "json-lines-source", val: "values.jsonl" });
  assert.deepEqual(g.vertices[2].kind, { tag: "nexmark-file-source", val: "events.jsonl" });
  assert.deepEqual(g.vertices[3].kind.val.outOfOrdernessMs, 4000n);
  assert.deepEqual(edges(g), [
    [0, 1, "forward"],
    [2, 3, "forward"],
    [3, 4, "forward"],
  ]);
});
