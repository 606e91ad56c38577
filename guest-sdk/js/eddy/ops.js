// The user operators of the registry and their fusion into a chain, the JS counterpart of
// guest-sdk/src/ops.rs.
//
// An operator runs over a whole columnar batch `{ v, k, t }` (see frame.js) rather than one
// record at a time: a fused chain hands each operator the previous one's output batch, so
// values stay JS values inside the chain and pay for JSON once where they enter it and once
// where they leave it. Record order is the same as the Rust SDK's depth-first fusion, since
// every operator keeps the order of its input.

import {
  BroadcastCtx,
  Ctx,
  KeyedCtx,
  KeyedReadOnlyBroadcastCtx,
  ReadOnlyBroadcastCtx,
  ValueState,
  setRecordKey,
} from "./ctx.js";
import { emptyBatch, toJson } from "./frame.js";

/** Base class: an operator of the registry, named by its graph vertex for error messages. */
export class Operator {
  constructor() {
    this.vertex = null;
  }
  /** Runs over one batch; returns the batch it emits. */
  run(b) {
    return b;
  }
  /** A timer of `key` (JSON text) fired; only keyed process functions act on it. */
  onTimer(_key, _timestamp, _domain) {
    return null;
  }
  /** Event time advanced to `watermark`. */
  onWatermark(_watermark) {
    return null;
  }
  /** The input ended. */
  close() {
    return null;
  }
}

/** Record i's timestamp as a Number (the column holds BigInts), or undefined. */
function stamp(t, i) {
  const ts = t === null ? undefined : t[i];
  return ts === undefined ? undefined : Number(ts);
}

function collector() {
  return { v: [], k: [], t: [] };
}

export class MapOp extends Operator {
  constructor(f) {
    super();
    this.f = f;
  }
  run(b) {
    const f = this.f;
    const v = b.v;
    const n = v.length;
    // In place: the batch belongs to this chain, and a fresh array costs more.
    for (let i = 0; i < n; i++) v[i] = f(v[i]);
    return b;
  }
}

const concat = Array.prototype.concat;

export class FlatMapOp extends Operator {
  constructor(f) {
    super();
    this.f = f;
  }
  run(b) {
    const f = this.f;
    const v = b.v;
    const n = v.length;
    const results = new Array(n);
    for (let i = 0; i < n; i++) {
      const r = f(v[i]);
      results[i] = Array.isArray(r) ? r : r === undefined || r === null ? [] : Array.from(r);
    }
    // One native concat flattens the batch's results.
    const ov = concat.apply([], results);
    if (b.k === null && b.t === null) return { v: ov, k: null, t: null };
    const k = b.k;
    const t = b.t;
    const ok = k === null ? null : new Array(ov.length);
    const ot = t === null ? null : new Array(ov.length);
    let p = 0;
    for (let i = 0; i < n; i++) {
      const m = results[i].length;
      for (let j = 0; j < m; j++, p++) {
        if (ok !== null) ok[p] = k[i];
        if (ot !== null) ot[p] = t[i];
      }
    }
    return { v: ov, k: ok, t: ot };
  }
}

export class FilterOp extends Operator {
  constructor(f) {
    super();
    this.f = f;
  }
  run(b) {
    const f = this.f;
    const v = b.v;
    const k = b.k;
    const t = b.t;
    const n = v.length;
    const ov = [];
    const ok = k === null ? null : [];
    const ot = t === null ? null : [];
    for (let i = 0; i < n; i++) {
      if (f(v[i])) {
        ov.push(v[i]);
        if (ok !== null) ok.push(k[i]);
        if (ot !== null) ot.push(t[i]);
      }
    }
    return { v: ov, k: ok, t: ot };
  }
}

export class ProcessOp extends Operator {
  constructor(f) {
    super();
    this.f = f;
    this.ctx = new Ctx();
  }
  run(b) {
    const { f, ctx } = this;
    const v = b.v;
    const k = b.k;
    const t = b.t;
    const out = collector();
    ctx._out = out;
    for (let i = 0; i < v.length; i++) {
      ctx._key = k === null ? undefined : k[i];
      ctx.timestamp = stamp(t, i);
      f(ctx, v[i]);
    }
    // Outputs keep the input's keys: with none in, a column of undefined would only slow the
    // operators and the encoder downstream.
    if (k === null) out.k = null;
    return out;
  }
}

export class KeyByOp extends Operator {
  constructor(f) {
    super();
    this.f = f;
  }
  run(b) {
    const f = this.f;
    const v = b.v;
    const n = v.length;
    const keys = new Array(n);
    for (let i = 0; i < n; i++) {
      const key = f(v[i]);
      if (key === undefined) throw "the key selector returned undefined";
      keys[i] = typeof key === "string" ? JSON.stringify(key) : toJson(key);
    }
    return { v, k: keys, t: b.t };
  }
}

function recordKey(k, i) {
  const key = k === null ? undefined : k[i];
  if (key === undefined) {
    throw "keyed operator received a record without a key (is its input a keyBy?)";
  }
  return key;
}

/** A keyed `f(ctx, value)` with state and timers; a two-input one has a function per input. */
export class KeyedProcessOp extends Operator {
  constructor(f, onTimer, second, ctxs) {
    super();
    this.fs = [f, second];
    this.timerFn = onTimer;
    // The context per input; a keyed one's records need a key (a broadcast input's have none).
    const ctx = new KeyedCtx();
    this.ctxs = ctxs ?? [ctx, ctx];
    this.ctx = this.ctxs[0];
    this.keyed = this.ctxs.map((c) => c instanceof KeyedCtx);
  }
  run(b) {
    const { ctxs, keyed } = this;
    const v = b.v;
    const k = b.k;
    const t = b.t;
    const out = collector();
    ctxs[0]._out = ctxs[1]._out = out;
    for (let i = 0; i < v.length; i++) {
      const input = b.s === undefined ? 0 : b.s[i];
      const ctx = ctxs[input];
      if (keyed[input]) {
        const key = recordKey(k, i);
        setRecordKey(key);
        ctx._key = key;
      } else {
        ctx._key = k === null ? undefined : k[i];
      }
      ctx.timestamp = stamp(t, i);
      this.fs[input](ctx, v[i]);
    }
    return out;
  }
  onTimer(key, timestamp, domain) {
    if (!this.timerFn) return null;
    const ctx = this.ctx;
    const out = collector();
    ctx._out = out;
    setRecordKey(key);
    ctx._key = key;
    // Outputs of event-time timers carry the timer's time, as in the Rust SDK.
    ctx.timestamp = domain === "event-time" ? timestamp : undefined;
    this.timerFn(ctx, { timestamp, domain });
    return out;
  }
}

/** The function of the input record `i` came by: `fs[1]` for a two-input operator's second. */
function byInput(b, fs, i) {
  return fs[b.s === undefined ? 0 : b.s[i]];
}

/** `first(value)` or `second(value)` by the input a record came by (Flink's CoMapFunction). */
export class CoMapOp extends Operator {
  constructor(first, second) {
    super();
    this.fs = [first, second];
  }
  run(b) {
    const v = b.v;
    for (let i = 0; i < v.length; i++) v[i] = byInput(b, this.fs, i)(v[i]);
    return { v, k: b.k, t: b.t };
  }
}

/** Any number of outputs per record, by the function of its input. */
export class CoFlatMapOp extends Operator {
  constructor(first, second) {
    super();
    this.fs = [first, second];
  }
  run(b) {
    const out = collector();
    for (let i = 0; i < b.v.length; i++) {
      const r = byInput(b, this.fs, i)(b.v[i]);
      for (const o of r === undefined || r === null ? [] : r) {
        out.v.push(o);
        out.k.push(b.k === null ? undefined : b.k[i]);
        out.t.push(b.t === null ? undefined : b.t[i]);
      }
    }
    if (b.k === null) out.k = null;
    if (b.t === null) out.t = null;
    return out;
  }
}

/** `first(ctx, value)` or `second(ctx, value)` by the input a record came by. */
export class CoProcessOp extends Operator {
  constructor(first, second, ctxs) {
    super();
    this.fs = [first, second];
    const ctx = new Ctx();
    this.ctxs = ctxs ?? [ctx, ctx];
  }
  run(b) {
    const { ctxs } = this;
    const out = collector();
    ctxs[0]._out = ctxs[1]._out = out;
    for (let i = 0; i < b.v.length; i++) {
      const input = b.s === undefined ? 0 : b.s[i];
      const ctx = ctxs[input];
      ctx._key = b.k === null ? undefined : b.k[i];
      ctx.timestamp = stamp(b.t, i);
      this.fs[input](ctx, b.v[i]);
    }
    if (b.k === null) out.k = null;
    return out;
  }
}

/** A keyed co-process function: one keyed state and timers for both inputs. */
export class KeyedCoProcessOp extends KeyedProcessOp {
  constructor(first, second, onTimer) {
    super(first, onTimer, second);
  }
}

/** `element(ctx, value)` reading broadcast state; `broadcast(ctx, value)` (every subtask) changing it. */
export class BroadcastProcessOp extends CoProcessOp {
  constructor(element, broadcast) {
    super(element, broadcast, [new ReadOnlyBroadcastCtx(), new BroadcastCtx()]);
  }
}

/** A keyed `element(ctx, value)` with keyed state, timers and broadcast state to read. */
export class KeyedBroadcastProcessOp extends KeyedProcessOp {
  constructor(element, broadcast, onTimer) {
    super(element, onTimer, broadcast, [new KeyedReadOnlyBroadcastCtx(), new BroadcastCtx()]);
  }
}

/**
 * The interval join's operator (see joins.js): each side's values in keyed map state, in
 * buckets of time as wide as the interval, so that a value's partners lie in at most two
 * buckets of the other side (as in Rust). A bucket goes, by one timer, once the watermark
 * says none of its values can pair any more.
 */
export class IntervalJoinOp extends Operator {
  constructor(lower, upper, f) {
    super();
    this.lower = lower;
    this.upper = upper;
    this.width = Math.max(1, upper - lower + 1);
    this.f = f;
    this.ctx = new KeyedCtx();
  }
  /** `[time, value]` of `state` with times in `[lo, hi]` (one or two buckets). */
  _within(state, lo, hi) {
    const w = this.width;
    const found = [];
    for (let b = Math.floor(lo / w); b <= Math.floor(hi / w); b++) {
      for (const tv of state.get(b) ?? []) if (lo <= tv[0] && tv[0] <= hi) found.push(tv);
    }
    return found;
  }
  /** The pairs `[a, b, later time]` value `v` at `t` of `input` makes. */
  _pairs(input, t, v) {
    const { lower, upper } = this;
    const other = this.ctx.mapState(INTERVAL_STATES[1 - input]);
    if (input === 0) return this._within(other, t + lower, t + upper).map(([to, o]) => [v, o, Math.max(t, to)]);
    return this._within(other, t - upper, t - lower).map(([to, o]) => [o, v, Math.max(t, to)]);
  }
  run(b) {
    const { ctx, width } = this;
    const out = collector();
    ctx._out = out;
    for (let i = 0; i < b.v.length; i++) {
      const input = b.s === undefined ? 0 : b.s[i];
      const key = recordKey(b.k, i);
      const t = stamp(b.t, i);
      if (t === undefined) throw "interval join needs event time: assign timestamps at the sources";
      setRecordKey(key);
      ctx._key = key;
      if (t < ctx.currentWatermark()) continue; // late: nothing pairs with it
      const pairs = this._pairs(input, t, b.v[i]);
      const mine = ctx.mapState(INTERVAL_STATES[input]);
      const bucket = Math.floor(t / width);
      mine.put(bucket, [...(mine.get(bucket) ?? []), [t, b.v[i]]]);
      const after = input === 0 ? this.upper : -this.lower;
      ctx.registerEventTimeTimer((bucket + 1) * width - 1 + after);
      for (const [a, o, at] of pairs) {
        ctx.timestamp = at;
        this.f(ctx, a, o);
      }
    }
    return out;
  }
  /** The watermark reached the timer: the bucket of either side that can pair no more goes. */
  onTimer(key, now) {
    setRecordKey(key);
    [this.upper, -this.lower].forEach((after, side) => {
      const next = now - after + 1;
      if (next % this.width === 0) this.ctx.mapState(INTERVAL_STATES[side]).remove(next / this.width - 1);
    });
    return null;
  }
}

const INTERVAL_STATES = ["__interval_join_first", "__interval_join_second"];

export class ReduceOp extends Operator {
  constructor(f) {
    super();
    this.f = f;
    this.state = new ValueState("__reduce");
  }
  run(b) {
    const { f, state } = this;
    const v = b.v;
    const k = b.k;
    const n = v.length;
    const o = new Array(n);
    for (let i = 0; i < n; i++) {
      setRecordKey(recordKey(k, i));
      const acc = state.get();
      const next = acc === undefined ? v[i] : f(acc, v[i]);
      state.set(next);
      o[i] = next;
    }
    return { v: o, k, t: b.t };
  }
}

/** Appends batch `b` to batch `acc` (both columnar); returns the result. */
export function appendBatch(acc, b) {
  if (b === null || b.v.length === 0) return acc;
  if (acc.v.length === 0) return b;
  const n = acc.v.length;
  const m = b.v.length;
  const column = (x, y) => {
    if (x === null && y === null) return null;
    const c = x === null ? new Array(n) : x.slice();
    c.length = n;
    for (let i = 0; i < m; i++) c.push(y === null ? undefined : y[i]);
    return c;
  };
  return { v: acc.v.concat(b.v), k: column(acc.k, b.k), t: column(acc.t, b.t) };
}

// A stack frame's file and line: `fn@app/job.js:12:5` (SpiderMonkey) or
// `at fn (file:///x/job.js:12:5)` (V8, in native tests).
const FRAME = /([^\s(@]+):(\d+):\d+\)?$/;
const SDK_FILE = /(^|\/)eddy\/[a-z_]+\.js$/;

/** `job.js:12` of the first stack frame in user code (not the SDK, not the bindings). */
function userFrame(stack) {
  for (const line of stack.split("\n")) {
    const m = FRAME.exec(line.trim());
    if (m && !SDK_FILE.test(m[1]) && !m[1].endsWith("initializer.js")) {
      return `${m[1].split("/").pop()}:${m[2]}`;
    }
  }
  return null;
}

/** Why user code failed, on one line: `Vertex: TypeError: x is undefined (job.js:12)`. */
export function describeError(e, op) {
  let msg;
  if (e instanceof Error) {
    msg = `${e.name}: ${e.message}`;
    const at = userFrame(e.stack || "");
    if (at) msg += ` (${at})`;
  } else {
    msg = String(e);
  }
  msg = msg.replace(/\s*\n\s*/g, " ");
  return op && op.vertex ? `${op.vertex.name}: ${msg}` : msg;
}

/** Runs `b` through `ops[from..]`. */
export function runChain(ops, from, b) {
  for (let i = from; i < ops.length && b.v.length > 0; i++) {
    const op = ops[i];
    try {
      b = op.run(b);
    } catch (e) {
      throw describeError(e, op);
    }
  }
  return b;
}

/** Gives each operator, first to last, hook `call`; its output flows down the rest of the chain. */
export function runHook(ops, call) {
  let out = emptyBatch();
  for (let i = 0; i < ops.length; i++) {
    let b;
    try {
      b = call(ops[i]);
    } catch (e) {
      throw describeError(e, ops[i]);
    }
    if (b !== null && b.v.length > 0) out = appendBatch(out, runChain(ops, i + 1, b));
  }
  return out;
}
