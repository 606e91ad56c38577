// Keyed state, event-time timers and windows in the JavaScript SDK, on a fixed list of
// events, so that the output is known: 25 lines, the same at any parallelism once sorted.
//
// - `features`: per user, a keyed process function counts events in value state, sums the
//   amounts of each 10 ms bucket in map state and emits the sum when an event-time timer
//   at the bucket's end fires; beside it a tumbling 10 ms window counts events per user,
//   and a window process function lists each window's amounts. Every output line starts
//   with its branch (state, timer, count, window); sort them to compare.
// - `fail`: a map that throws on the value 5, to show how user errors fail a job.
//
// Build: guest-sdk/js/build.sh examples/js/features.js target/js/features.wasm
// Run:   target/release/eddy run -c features target/js/features.wasm | sort

import { counter, entry, Window } from "eddy";

// [user, amount, timestamp ms]
const EVENTS = [
  ["alice", 3, 1000],
  ["bob", 5, 1002],
  ["alice", 4, 1005],
  ["bob", 1, 1011],
  ["alice", 2, 1012],
  ["carol", 7, 1019],
  ["alice", 1, 1025],
];

entry("features", (env) => {
  const events = env.fromElements(EVENTS).assignTimestamps(2, 0);
  const byUser = events.keyBy(([user]) => user);

  byUser
    .process(
      (ctx, [user, amount, ts]) => {
        const count = ctx.valueState("count");
        const n = (count.get() ?? 0) + 1;
        count.set(n);
        ctx.collect(`state: ${user} event #${n} amount ${amount}`);
        const bucket = ts - (ts % 10);
        const sums = ctx.mapState("bucket-sums");
        sums.put(bucket, (sums.get(bucket) ?? 0) + amount);
        ctx.registerEventTimeTimer(bucket + 9);
      },
      (ctx, timer) => {
        const bucket = timer.timestamp - 9;
        const sums = ctx.mapState("bucket-sums");
        ctx.collect(`timer: ${ctx.key()} [${bucket}, ${bucket + 10}) sum ${sums.get(bucket)} at ${ctx.timestamp}`);
        sums.remove(bucket);
      },
    )
    .name("buckets")
    .print();

  byUser
    .window(Window.tumblingEventTime(10))
    .count()
    .process((ctx, [user, n]) => ctx.collect(`count: ${user} ${n} in the window ending ${ctx.timestamp + 1}`))
    .name("describe")
    .print();

  events
    .keyBy(([user]) => user)
    .window(Window.tumblingEventTime(10))
    .process((ctx, user, w, values) => {
      ctx.collect(`window: ${user} [${w.start}, ${w.end}) ${values.map((v) => v[1]).join("+")}`);
    })
    .print();
});

entry("fail", (env) => {
  env
    .generate(10, (i) => i)
    .map((x) => {
      if (x === 5) throw new Error("five is not allowed");
      return x;
    })
    .name("picky")
    .print();
});

// `--n N` numbers (default 100 000) through an operator that counts them and adds them up
// in two counters, which the job's summary shows.
entry("count", (env, args) => {
  env
    .generate(args.parseOr("n", 100000), (i) => i)
    .map((i) => {
      counter("seen");
      counter("total", i);
      return i;
    })
    .name("count")
    .discard();
});
