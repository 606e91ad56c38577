// What user functions see at run time: contexts to emit records, keyed state, timers, and the
// host's log and counters (the `host` interface of wit/eddy.wit). Mirrors guest-sdk/src/ctx.rs.

import * as host from "eddy:stream/host@0.1.0";
import { text, toJson, utf8 } from "./frame.js";

/** Log levels of `log`. */
export const Level = Object.freeze({
  TRACE: "trace",
  DEBUG: "debug",
  INFO: "info",
  WARN: "warn",
  ERROR: "error",
});

/** Writes a line into the task's log; usable from any user function. */
export function log(level, message) {
  host.log(level, String(message));
}

/** `log` at info level. */
export function info(message) {
  host.log("info", String(message));
}

// Counter deltas of the current export call, summed by name and handed to the host when the
// call ends (`flushCounters`): a call into the host costs microseconds from JavaScript, and
// operators often count every record. The host shows counters once a second anyway.
const pendingCounters = new Map();
const U64_MAX = (1n << 64n) - 1n;

/** Adds `delta` (a non-negative integer) to this subtask's counter `name`, shown in the job's metrics. */
export function counter(name, delta = 1) {
  const d = BigInt(delta);
  if (d < 0n) throw `counter '${name}': delta ${delta} is negative`;
  const key = String(name);
  const sum = (pendingCounters.get(key) ?? 0n) + d;
  pendingCounters.set(key, sum > U64_MAX ? U64_MAX : sum);
}

/** Hands the counters' deltas of this export call to the host: called as each call ends. */
export function flushCounters() {
  if (pendingCounters.size === 0) return;
  for (const [name, delta] of pendingCounters) host.counterAdd(name, delta);
  pendingCounters.clear();
}

// Which key the host's state functions apply to, and the key (JSON text) of the record being
// processed. Setting the host key costs a boundary crossing, so it happens lazily: only when
// user code touches state and the record's key differs from the last one set.
let recordKey;
let hostKey = null;

/** Makes `key` (JSON text) the key of the record about to be processed by a keyed operator. */
export function setRecordKey(key) {
  recordKey = key;
}

/** Forgets which key the host has: called at the start of every export call. */
export function resetHostKey() {
  hostKey = null;
}

function ensureHostKey() {
  if (recordKey === undefined) {
    throw "keyed state is only available in a keyed operator (after keyBy)";
  }
  if (hostKey !== recordKey) {
    host.setCurrentKey(utf8(recordKey));
    hostKey = recordKey;
  }
}

function encode(value) {
  return utf8(toJson(value));
}

function decode(state, bytes) {
  const s = text(bytes);
  try {
    return JSON.parse(s);
  } catch (e) {
    throw `state '${state}': cannot decode ${JSON.stringify(s.slice(0, 200))}: ${e.message}`;
  }
}

function setTtl(name, ttlMs) {
  host.stateTtl(name, ttlMs === undefined || ttlMs === null ? undefined : BigInt(ttlMs));
}

/** One JSON value per key, kept by the host. */
export class ValueState {
  constructor(name) {
    this.name = name;
  }
  /** Lets the value expire `ttlMs` after it was last set (processing time, for every key). */
  withTtl(ttlMs) {
    setTtl(this.name, ttlMs);
    return this;
  }
  /** The value, or undefined if never set (or cleared, or expired). */
  get() {
    ensureHostKey();
    const b = host.valueGet(this.name);
    return b === undefined ? undefined : decode(this.name, b);
  }
  /** Replaces the value. */
  set(value) {
    ensureHostKey();
    host.valueSet(this.name, encode(value));
  }
  /** Removes the value. */
  clear() {
    ensureHostKey();
    host.valueClear(this.name);
  }
}

/** An append-only list of JSON values per key, kept by the host. */
export class ListState {
  constructor(name) {
    this.name = name;
  }
  /** Lets the whole list expire `ttlMs` after it was last added to. */
  withTtl(ttlMs) {
    setTtl(this.name, ttlMs);
    return this;
  }
  /** All elements, oldest first. */
  get() {
    ensureHostKey();
    return host.listGet(this.name).map((b) => decode(this.name, b));
  }
  /** Appends an element. */
  add(value) {
    ensureHostKey();
    host.listAdd(this.name, encode(value));
  }
  /** Removes all elements. */
  clear() {
    ensureHostKey();
    host.listClear(this.name);
  }
}

/** A map of JSON keys to JSON values per key, kept by the host. */
export class MapState {
  constructor(name) {
    this.name = name;
  }
  /** Lets each entry expire `ttlMs` after it was last put. */
  withTtl(ttlMs) {
    setTtl(this.name, ttlMs);
    return this;
  }
  /** The value under `key`, or undefined. */
  get(key) {
    ensureHostKey();
    const b = host.mapGet(this.name, encode(key));
    return b === undefined ? undefined : decode(this.name, b);
  }
  /** Sets the value under `key`. */
  put(key, value) {
    ensureHostKey();
    host.mapPut(this.name, encode(key), encode(value));
  }
  /** Removes `key`. */
  remove(key) {
    ensureHostKey();
    host.mapRemove(this.name, encode(key));
  }
  /** All entries as `[key, value]` pairs, in the host's order. */
  entries() {
    ensureHostKey();
    return host.mapEntries(this.name).map(([k, v]) => [decode(this.name, k), decode(this.name, v)]);
  }
}

/**
 * A broadcast map (JSON keys to JSON values) tied to no key, as the non-broadcast input's
 * function sees it: readable only, so that every subtask's copy stays the same.
 */
export class ReadOnlyBroadcastState {
  constructor(name) {
    this.name = name;
  }
  /** The value under `key`, or undefined. */
  get(key) {
    const b = host.broadcastGet(this.name, encode(key));
    return b === undefined ? undefined : decode(this.name, b);
  }
  /** Whether there is a value under `key`. */
  has(key) {
    return host.broadcastGet(this.name, encode(key)) !== undefined;
  }
  /** All entries as `[key, value]` pairs, in the order of the keys' JSON bytes. */
  entries() {
    return host.broadcastEntries(this.name).map(([k, v]) => [decode(this.name, k), decode(this.name, v)]);
  }
}

/** A broadcast map as the broadcast input's function sees it: it may change it. */
export class BroadcastState extends ReadOnlyBroadcastState {
  /** Sets the value under `key`. */
  put(key, value) {
    host.broadcastPut(this.name, encode(key), encode(value));
  }
  /** Removes `key`. */
  remove(key) {
    host.broadcastRemove(this.name, encode(key));
  }
}

/**
 * The context of a `process` function: `collect` emits a value downstream. Emitted values
 * keep the input record's key and timestamp.
 */
export class Ctx {
  constructor() {
    /** The event time (ms) of the record being processed, or undefined. */
    this.timestamp = undefined;
    this._key = undefined;
    this._out = null;
  }
  /** Emits `value` downstream. */
  collect(value) {
    const o = this._out;
    o.v.push(value);
    o.k.push(this._key);
    o.t.push(this.timestamp);
  }
  /** Writes a line into the task's log. */
  log(level, message) {
    log(level, message);
  }
  /** Logs at info level. */
  info(message) {
    info(message);
  }
  /** Adds `delta` to this subtask's counter `name`. */
  counter(name, delta = 1) {
    counter(name, delta);
  }
}

/** The context of a keyed `process` function: a Ctx plus the record's key, state and timers. */
export class KeyedCtx extends Ctx {
  /** The key of the record being processed (the value the key selector returned, via JSON). */
  key() {
    return JSON.parse(this._key);
  }
  /** Value state `name` of the current key. */
  valueState(name) {
    return new ValueState(name);
  }
  /** List state `name` of the current key. */
  listState(name) {
    return new ListState(name);
  }
  /** Map state `name` of the current key. */
  mapState(name) {
    return new MapState(name);
  }
  /** Calls the operator's onTimer once the watermark reaches `timestamp` (ms). */
  registerEventTimeTimer(timestamp) {
    ensureHostKey();
    host.registerTimer("event-time", BigInt(timestamp));
  }
  /** Calls onTimer once the wall clock reaches `timestamp` (ms since the Unix epoch). */
  registerProcessingTimeTimer(timestamp) {
    ensureHostKey();
    host.registerTimer("processing-time", BigInt(timestamp));
  }
  /** Deletes an event-time timer of the current key. */
  deleteEventTimeTimer(timestamp) {
    ensureHostKey();
    host.deleteTimer("event-time", BigInt(timestamp));
  }
  /** Deletes a processing-time timer of the current key. */
  deleteProcessingTimeTimer(timestamp) {
    ensureHostKey();
    host.deleteTimer("processing-time", BigInt(timestamp));
  }
  /** The subtask's current watermark in ms (-2^63 before the first one, as a Number). */
  currentWatermark() {
    // The binding hands an s64 over as its unsigned bits: -2^63 would read as 2^63.
    return Number(BigInt.asIntN(64, BigInt(host.currentWatermark())));
  }
  /** The wall clock, in ms since the Unix epoch. */
  currentProcessingTime() {
    return Date.now();
  }
}

/** The context of the broadcast input's function: broadcast state it may change. */
export class BroadcastCtx extends Ctx {
  /** Broadcast map state `name`. */
  broadcastState(name) {
    return new BroadcastState(name);
  }
}

/** The context of the other input's function: broadcast state to read. */
export class ReadOnlyBroadcastCtx extends Ctx {
  /** Broadcast map state `name`, to read. */
  broadcastState(name) {
    return new ReadOnlyBroadcastState(name);
  }
}

/** The context of a keyed input's function (and timers) beside a broadcast input. */
export class KeyedReadOnlyBroadcastCtx extends KeyedCtx {
  /** Broadcast map state `name`, to read. */
  broadcastState(name) {
    return new ReadOnlyBroadcastState(name);
  }
}
