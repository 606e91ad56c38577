// Joins of two streams, as Flink's DataStream API has them; mirrors guest-sdk/src/joins.rs,
// graph for graph.
//
// - Window joins (`a.join(b).whereKey(ka).equalTo(kb).window(w).apply(f)`) and co-groups
//   (`.coGroupApply(f)`): both streams, their values tagged with their side, are merged and
//   keyed alike; the host's window operator gathers each key's window of both, and a function
//   chained after it pairs them. Any window and allowed lateness work as for one stream.
// - Interval joins (`a.keyBy(ka).intervalJoin(b.keyBy(kb)).between(lo, hi).process(f)`): a
//   keyed two-input operator keeping each side's values in keyed map state by time.

import { Stream } from "./graph.js";
import { IntervalJoinOp } from "./ops.js";

// The tags of a window join's values, as serde writes the Rust SDK's `Side` enum.
const FIRST = "First";
const SECOND = "Second";

/** Splits a window's values into the first stream's and the second's, in arrival order. */
function sides(values) {
  const first = [];
  const second = [];
  for (const v of values) {
    if (FIRST in v) first.push(v[FIRST]);
    else second.push(v[SECOND]);
  }
  return [first, second];
}

/** Two streams to join in windows; name their keys with `whereKey` and `equalTo`. */
export class JoinedStreams {
  constructor(first, second) {
    this._first = first;
    this._second = second;
    this._firstKey = undefined;
  }

  /** The key of the first stream's values. */
  whereKey(firstKey) {
    this._firstKey = firstKey;
    return this;
  }

  /** The key of the second stream's values, equal to the first's for values that join. */
  equalTo(secondKey) {
    const firstKey = this._firstKey;
    if (typeof firstKey !== "function") this._first._g.errors.push("join: equalTo needs whereKey first");
    const first = this._first.map((a) => ({ [FIRST]: a })).name("Join: first side");
    const second = this._second.map((b) => ({ [SECOND]: b })).name("Join: second side");
    const keyed = first.union(second).keyBy((v) => (FIRST in v ? firstKey(v[FIRST]) : secondKey(v[SECOND])));
    return { window: (window) => new JoinedWindows(keyed.window(window)) };
  }
}

/** A window join with its windows: `apply` pairs values, `coGroupApply` sees both lists. */
export class JoinedWindows {
  constructor(windows) {
    this._windows = windows;
  }

  /** Values up to `latenessMs` behind the watermark still join (their window fires again). */
  allowedLateness(latenessMs) {
    this._windows.allowedLateness(latenessMs);
    return this;
  }

  /**
   * `f(a, b)` for every pair of a first-stream and a second-stream value of one key in one
   * window (Flink's JoinFunction); results carry the window's last millisecond.
   */
  apply(f) {
    return this._windows
      .process((ctx, _key, _window, values) => {
        const [first, second] = sides(values);
        for (const a of first) for (const b of second) ctx.collect(f(a, b));
      })
      .name("Window Join");
  }

  /** `f(ctx, key, window, firsts, seconds)` once per key and window (Flink's CoGroupFunction). */
  coGroupApply(f) {
    return this._windows
      .process((ctx, key, window, values) => {
        const [first, second] = sides(values);
        f(ctx, key, window, first, second);
      })
      .name("Window CoGroup");
  }
}

/** Two keyed streams joined on intervals of event time (see KeyedStream.intervalJoin). */
export class IntervalJoin {
  constructor(g, first, second) {
    this._g = g;
    this._first = first;
    this._second = second;
    this._bounds = [0, 0];
  }

  /**
   * The interval, in ms relative to the first stream's value's time (inclusive at both ends;
   * `lower <= upper`, either may be negative).
   */
  between(lowerMs, upperMs) {
    if (!Number.isSafeInteger(lowerMs) || !Number.isSafeInteger(upperMs)) {
      this._g.errors.push(`interval join: between(${lowerMs}, ${upperMs}): the bounds must be integers (ms)`);
    } else if (lowerMs > upperMs) {
      this._g.errors.push(`interval join: between(${lowerMs}, ${upperMs}): the lower bound is above the upper`);
    }
    this._bounds = [lowerMs, upperMs];
    return this;
  }

  /** `f(ctx, a, b)` for every pair (Flink's ProcessJoinFunction); outputs carry the later time. */
  process(f) {
    const g = this._g;
    const id = g.addOperatorFrom("Interval Join", new IntervalJoinOp(...this._bounds, f), this._first, this._second);
    g.vertices[id].keyed = true;
    return new Stream(g, id);
  }
}
