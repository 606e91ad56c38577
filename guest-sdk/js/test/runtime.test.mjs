// Operators run natively against the fake host: fusion, keyed state, timers, window
// envelopes and error messages.
import assert from "node:assert/strict";
import { test } from "node:test";
import { counter, entry, operator, Window, words } from "eddy";
import { fake } from "./fake-host.mjs";
import { frame, unframe } from "./framing.mjs";

const SUBTASK = { index: 0, parallelism: 1, maxParallelism: 128 };
const run = (records) => unframe(operator.process(frame(records)));

entry("wc", (env) => {
  env
    .readTextFile("x")
    .flatMap((line) => words(line))
    .name("tokenize")
    .keyBy((w) => w)
    .count()
    .map(([w, n]) => `${w} ${n}`)
    .print();
});

test("a fused chain: tokenize and key by", () => {
  operator.open("wc", [], [0, 1], SUBTASK);
  assert.deepEqual(run([{ value: '"Hello, hello Wörld"' }, { value: '"x"', ts: 7 }]), [
    { key: '"hello"', value: '"hello"' },
    { key: '"hello"', value: '"hello"' },
    { key: '"wörld"', value: '"wörld"' },
    { key: '"x"', value: '"x"', ts: 7 },
  ]);
  operator.open("wc", [], [2], SUBTASK);
  assert.deepEqual(run([{ key: '"a"', value: '["a",3]' }]), [{ key: '"a"', value: '"a 3"' }]);
});

test("open refuses bad selections", () => {
  assert.throws(() => operator.open("wc", [], [3], SUBTASK), (e) => e === "operator 3 does not exist: entry 'wc' has 3 operators");
  assert.throws(() => operator.open("wc", [], [1, 1], SUBTASK), (e) => e === "operator 1 selected twice");
});

entry("stateful", (env) => {
  env
    .fromElements([])
    .keyBy((v) => v[0])
    .process(
      (ctx, [k, n]) => {
        const total = ctx.valueState("total");
        const t = (total.get() ?? 0) + n;
        total.set(t);
        ctx.listState("history").add(n);
        ctx.registerEventTimeTimer(100);
        ctx.collect(`${ctx.key()} ${t} ${ctx.listState("history").get().join(",")} @${ctx.timestamp}`);
      },
      (ctx, timer) => ctx.collect(`${ctx.key()} fired ${timer.timestamp} ${timer.domain} total ${ctx.valueState("total").get()}`),
    )
    .print();
  env.fromElements([]).keyBy((v) => v).window(Window.tumblingEventTime(10)).reduce((a, b) => a + b).print();
});

test("keyed state and timers", () => {
  fake.reset();
  operator.open("stateful", [], [1], SUBTASK);
  const out = run([
    { key: '"a"', value: '["a",1]', ts: 5 },
    { key: '"b"', value: '["b",10]', ts: 6 },
    { key: '"a"', value: '["a",2]', ts: 7 },
  ]);
  assert.deepEqual(out.map((r) => r.value), ['"a 1 1 @5"', '"b 10 10 @6"', '"a 3 1,2 @7"']);
  assert.deepEqual(out.map((r) => r.key), ['"a"', '"b"', '"a"']);
  assert.deepEqual(fake.timers, [['"a"', "event-time", 100n], ['"b"', "event-time", 100n], ['"a"', "event-time", 100n]]);
  const fired = unframe(operator.onTimer(new TextEncoder().encode('"a"'), 100n, "event-time"));
  assert.deepEqual(fired, [{ key: '"a"', ts: 100, value: '"a fired 100 event-time total 3"' }]);
  assert.throws(() => run([{ value: '["a",1]' }]), (e) => /Process: keyed operator received a record without a key/.test(e));
});

test("window functions read the host's envelope", () => {
  operator.open("stateful", [], [3], SUBTASK);
  const envelope = '{"key":"a","start":0,"end":10,"values":[1,2,3]}';
  assert.deepEqual(run([{ key: '"a"', ts: 9, value: envelope }]), [{ key: '"a"', ts: 9, value: "6" }]);
});

entry("fails", (env) => {
  env.generate(10, (i) => i).map((x) => {
    if (x === 5) throw new Error("five\nis not allowed");
    return x;
  }).name("picky").print();
});

test("user errors fail the call with one line naming the operator", () => {
  operator.open("fails", [], [0, 1], SUBTASK);
  assert.deepEqual(run([{ value: "1" }]), [{ value: "1" }]);
  assert.throws(() => run([{ value: "5" }]), (e) => /^picky: Error: five is not allowed \(runtime\.test\.mjs:\d+\)$/.test(e));
  assert.throws(() => operator.process(new Uint8Array([16])), (e) => /unknown flag bits/.test(e));
});

entry("co", (env) => {
  const numbers = env.fromElements([1, 2]);
  const words_ = env.fromElements(["a"]);
  numbers.connect(words_).map((n) => n * 10, (w) => w.toUpperCase()).print();
});

test("a co-map runs each input's function by the host's second-input mark", () => {
  operator.open("co", [], [0], SUBTASK);
  assert.deepEqual(run([{ value: "2" }, { value: '"a"', second: true }, { value: "3", ts: 5 }, { value: '"b"', ts: 6, second: true }]), [
    { value: "20" },
    { value: '"A"' },
    { value: "30", ts: 5 },
    { value: '"B"', ts: 6 },
  ]);
});

entry("rules", (env) => {
  const rules = env.fromElements([["a", 1]]).broadcastState();
  env
    .fromElements(["a"])
    .keyBy((w) => w)
    .connectBroadcast(rules)
    .process(
      (ctx, w) => {
        assert.equal(typeof ctx.broadcastState("rules").put, "undefined", "read-only on this side");
        ctx.valueState("seen").set((ctx.valueState("seen").get() ?? 0) + 1);
        ctx.collect([w, ctx.valueState("seen").get(), ctx.broadcastState("rules").get(w) ?? "none"]);
      },
      (ctx, [w, n]) => {
        const rules = ctx.broadcastState("rules");
        if (n === 0) rules.remove(w);
        else rules.put(w, n);
        ctx.collect(["rules", rules.entries().length]);
      },
    )
    .print();
});

test("a keyed broadcast process: keyed state for its keyed input, broadcast state for both", () => {
  fake.reset();
  operator.open("rules", [], [1], SUBTASK);
  const out = run([
    { key: '"a"', value: '"a"' },
    { value: '["a",7]', second: true },
    { value: '["b",8]', second: true },
    { key: '"a"', value: '"a"' },
    { key: '"b"', value: '"b"' },
    { value: '["a",0]', second: true },
    { key: '"a"', value: '"a"' },
  ]);
  assert.deepEqual(out, [
    { key: '"a"', value: '["a",1,"none"]' },
    { value: '["rules",1]' },
    { value: '["rules",2]' },
    { key: '"a"', value: '["a",2,7]' },
    { key: '"b"', value: '["b",1,8]' },
    { value: '["rules",1]' },
    { key: '"a"', value: '["a",3,"none"]' },
  ]);
});

entry("counting", (env) => {
  env
    .fromElements([])
    .map((n) => {
      counter("records");
      counter("total", n);
      return n;
    })
    .print();
});

test("counters reach the host once per name and call, summed", () => {
  fake.reset();
  operator.open("counting", [], [0], SUBTASK);
  run([{ value: "1" }, { value: "2" }, { value: "3" }]);
  assert.deepEqual([...fake.counters], [["records", 3n], ["total", 6n]]);
  assert.equal(fake.counterCalls, 2);
  run([{ value: "4" }]);
  assert.deepEqual([...fake.counters], [["records", 4n], ["total", 10n]]);
  assert.throws(() => run([{ value: "5" }, { value: "-1" }]), (e) => e === "Map: counter 'total': delta -1 is negative");
  // What was counted before the failure still reaches the host.
  assert.deepEqual([...fake.counters], [["records", 6n], ["total", 15n]]);
});
