// The JavaScript SDK's two-input operators, joins and windowAll, for tests/twoinput.rs and
// tests/windows.rs: each entry is its Rust namesake in tests/components/twoinput or
// tests/components/windows, with the same arguments and the same output, so the tests hold
// it to the same expected output, computed there.

import { entry, Window } from "eddy";

const KEYS = 5;

/** `n` values `f(i)` with event time from field 1. */
const timed = (env, n, f) => env.generate(n, f).assignTimestamps(1, 0);

function theTwoStreams(env, args) {
  const n = args.parseOr("n", 1000);
  return [timed(env, n, (i) => [i % KEYS, 3 * i, i]), timed(env, n, (j) => [j % KEYS, 5 * j, j])];
}

entry("window-join", (env, args) => {
  const [a, b] = theTwoStreams(env, args);
  const processing = args.get("time") === "processing";
  const window = {
    tumbling: processing ? Window.tumblingProcessingTime(60000) : Window.tumblingEventTime(50),
    sliding: Window.slidingEventTime(50, 20),
    session: Window.sessionEventTime(12),
  }[args.getOr("window", "tumbling")];
  a.join(b)
    .whereKey((v) => v[0])
    .equalTo((v) => v[0])
    .window(window)
    .apply((x, y) => `${x[2]} ${y[2]}`)
    .writeTextFile(args.required("output"));
});

entry("interval-join", (env, args) => {
  const [a, b] = theTwoStreams(env, args);
  a.keyBy((v) => v[0])
    .intervalJoin(b.keyBy((v) => v[0]))
    .between(-7, 11)
    .process((ctx, x, y) => ctx.collect(`${x[2]} ${y[2]}`))
    .writeTextFile(args.required("output"));
});

entry("broadcast-rules", (env, args) => {
  const n = args.parseOr("n", 1000);
  const values = timed(env, n, (i) => [i % KEYS, i, i]);
  const rules = env
    .fromElements([[0, 0, 100], [1, 0, 3], [2, 0, 4], [3, 0, 5], [4, 0, 6], [0, 0, 2], [4, 0, 0]])
    .assignTimestamps(1, 0)
    .broadcastState();
  values
    .keyBy((v) => v[0])
    .connectBroadcast(rules)
    .process(
      (ctx, v) => {
        const sum = ctx.valueState("sum");
        sum.set((sum.get() ?? 0) + v[2]);
        ctx.registerEventTimeTimer(2n ** 63n - 2n);
      },
      (ctx, [key, , multiplier]) => {
        if (multiplier) ctx.broadcastState("rules").put(key, multiplier);
        else ctx.broadcastState("rules").remove(key);
      },
      (ctx) => {
        const multiplier = ctx.broadcastState("rules").get(ctx.key()) ?? "none";
        ctx.collect(`${ctx.key()} ${ctx.valueState("sum").get() ?? 0} ${multiplier}`);
      },
    )
    .uid("rules")
    .writeTextFile(args.required("output"));
});

entry("window-all", (env, args) => {
  const n = args.parseOr("n", 1000);
  const window = {
    tumbling: Window.tumblingEventTime(50),
    sliding: Window.slidingEventTime(60, 20),
    "sliding-uneven": Window.slidingEventTime(50, 20),
    session: Window.sessionEventTime(5),
    processing: Window.tumblingProcessingTime(50),
  }[args.getOr("window", "tumbling")];
  const values = env
    .generate(n, (i) => [i, i + 10 * Math.floor(i / 100)])
    .assignTimestamps(1, 0)
    .map((v) => v[0]);
  const windowed = values.windowAll(window);
  const line = (f) => (ctx, x) => ctx.collect(`${f} end=${ctx.timestamp + 1} ${x}`);
  const fn = args.getOr("fn", "count");
  if (fn === "count") windowed.count().process(line("count")).print();
  else if (fn === "sum") windowed.sum().process(line("sum")).print();
  else if (fn === "reduce") windowed.reduce((a, b) => a + b).process(line("reduce")).print();
  else windowed.process((ctx, w, vs) => ctx.collect(`process ${w.start}..${w.end} ${vs.length} ${Math.max(...vs)}`)).print();
});

entry("broadcast-copies", (env, args) => {
  const n = args.parseOr("n", 1000);
  const rules = env.fromElements(["a", "b", "c"]).broadcastState();
  env
    .generate(n, (i) => i)
    .connectBroadcast(rules)
    .process(
      (ctx, x) => ctx.collect(`n${x}`),
      (ctx, r) => {
        const seen = ctx.broadcastState("seen");
        seen.put(r, true);
        ctx.collect(`rule ${r} ${seen.entries().length}`);
      },
    )
    .writeTextFile(args.required("output"));
});
