// The DataStream builder: Env, Stream, KeyedStream, WindowedStream and sinks, mirroring
// guest-sdk/src/graph.rs and windows.rs so that the same program builds the same graph
// (vertex kinds, names, edges, flags and registry indices) in JS as in Rust.
//
// Running a job function against an Env records the job graph that the planner returns and
// the registry of user operators (`wasm(n)` vertices) that `operator.open` selects from.
// Both come from the same deterministic run, so index n means the same function in the
// planner and in every operator instance. Building never calls host imports.

import { toJson, utf8 } from "./frame.js";
import { IntervalJoin, JoinedStreams } from "./joins.js";
import {
  BroadcastProcessOp,
  CoFlatMapOp,
  CoMapOp,
  CoProcessOp,
  FilterOp,
  FlatMapOp,
  KeyedBroadcastProcessOp,
  KeyedCoProcessOp,
  KeyByOp,
  KeyedProcessOp,
  MapOp,
  ProcessOp,
  ReduceOp,
} from "./ops.js";

class Graph {
  constructor(name) {
    this.name = name;
    this.vertices = [];
    this.edges = [];
    this.parallelism = undefined;
    this.maxParallelism = undefined;
    this.registry = [];
    this.errors = [];
  }

  /** Adds a vertex, with an edge from `input` = [vertex, partitioning, sideOutput] if given. */
  addVertex(name, kind, input) {
    return this.addVertexFrom(name, kind, input ? [input] : []);
  }

  /**
   * Adds a vertex fed by `first` (its input 0) and `second` (input 1: only a two-input
   * operator has one; the host marks the records that come by it), lists of inputs.
   */
  addVertexFrom(name, kind, first, second = []) {
    const id = this.vertices.length;
    this.vertices.push({
      id,
      name,
      uid: undefined,
      kind,
      parallelism: undefined,
      slotSharingGroup: undefined,
      keyed: false,
      perKeyUpdates: false,
    });
    [first, second].forEach((inputs, n) => {
      for (const [source, partitioning, sideOutput] of inputs) {
        this.edges.push({ source, target: id, partitioning, sideOutput, input: n });
      }
    });
    return id;
  }

  /** Registers user operator `op`; returns the index `wasm` vertices name. */
  register(op) {
    this.registry.push(op);
    return this.registry.length - 1;
  }

  /** Registers user operator `op` and adds its `wasm(n)` vertex. */
  addOperator(name, op, input) {
    return this.addOperatorFrom(name, op, [input]);
  }

  /** The same, fed by `first` and, for a two-input operator, `second`. */
  addOperatorFrom(name, op, first, second = []) {
    const id = this.addVertexFrom(name, { tag: "wasm", val: this.register(op) }, first, second);
    op.vertex = this.vertices[id];
    return id;
  }

  /**
   * Gives vertex `to` the parallelism and slot-sharing group of `from`, so that a forward
   * edge between them is chained (one task, records in order).
   */
  placeWith(from, to) {
    this.vertices[to].parallelism = this.vertices[from].parallelism;
    this.vertices[to].slotSharingGroup = this.vertices[from].slotSharingGroup;
  }
}

function checkFn(g, what, f) {
  if (typeof f !== "function") g.errors.push(`${what} needs a function, got ${typeof f}`);
  return f;
}

/** A u64 argument: a non-negative integer Number or BigInt, as BigInt. */
function u64(g, what, x) {
  if (typeof x === "bigint" && x >= 0n) return x;
  if (Number.isSafeInteger(x) && x >= 0) return BigInt(x);
  g.errors.push(`${what} must be a non-negative integer, got ${String(x)}`);
  return 0n;
}

/** A u32 argument, as Number. */
function u32(g, what, x) {
  if (Number.isInteger(x) && x >= 0 && x <= 0xffffffff) return x;
  g.errors.push(`${what} must be a non-negative 32-bit integer, got ${String(x)}`);
  return 0;
}

/**
 * Which part of a value a built-in aggregate reads: `Field.whole`, `Field.index(n)` (element n
 * of an array), `Field.name(s)` (member s of an object). Aggregates also take a plain number
 * (index), a string (name) or nothing (the whole value).
 */
export const Field = Object.freeze({
  whole: Object.freeze({ tag: "whole" }),
  index: (n) => ({ tag: "index", val: n }),
  name: (s) => ({ tag: "name", val: s }),
});

function fieldRef(g, f) {
  if (f === undefined || f === null) return { tag: "whole" };
  if (typeof f === "number") return { tag: "index", val: Number.isInteger(f) && f >= 0 && f <= 0xffffffff ? f : 0xffffffff };
  if (typeof f === "string") return { tag: "name", val: f };
  if (f && (f.tag === "whole" || f.tag === "index" || f.tag === "name")) return f;
  g.errors.push(`not a field: ${String(f)} (use a number, a string or Field.whole)`);
  return { tag: "whole" };
}

// How far Nexmark events' watermarks stay behind their largest event time: the reference
// generator's out-of-orderness (the Rust SDK's `nexmark::OUT_OF_ORDERNESS_MS`).
const NEXMARK_OUT_OF_ORDERNESS_MS = 4000;

/**
 * The execution environment a job function builds its pipeline on, like Flink's
 * StreamExecutionEnvironment.
 */
export class Env {
  /** A fresh environment for job `name` (the planner uses the entry name). */
  constructor(name) {
    this._g = new Graph(name);
  }

  _source(name, kind, parallelism) {
    const id = this._g.addVertex(name, kind, null);
    this._g.vertices[id].parallelism = parallelism;
    return new Stream(this._g, id);
  }

  /** Lines of a text socket, as strings (parallelism 1, unbounded). */
  socketTextStream(host, port) {
    const p = Number.isInteger(port) && port >= 0 && port <= 65535 ? port : (this._g.errors.push(`invalid port ${port}`), 0);
    return this._source("Socket Source", { tag: "socket-source", val: { host: String(host), port: p } }, 1);
  }

  /**
   * The records of Kafka topics, like Flink's `KafkaSource`: partitions are spread
   * over the source's subtasks and their offsets are checkpointed.
   * `readKafka("host:9092", ["in"], { start, bounded, group, format, secret })`:
   * `start` is "earliest" (default), "latest", "committed" or `{ timestamp: ms }`;
   * `bounded` stops at the ends the partitions had at the start; `format` is
   * "text" (strings), "json" (parsed values) or "envelope" (objects with topic,
   * partition, offset, timestamp, key, value and headers); `secret` names
   * credentials the cluster keeps. Records carry the Kafka timestamp.
   */
  readKafka(brokers, topics, options = {}) {
    const o = kafkaOptions(this._g, "readKafka", options, ["start", "bounded", "group", "format", "secret"]);
    const start = o.start ?? "earliest";
    let s;
    if (typeof start === "object" && start !== null && Number.isInteger(start.timestamp)) {
      s = { tag: "timestamp", val: BigInt(start.timestamp) };
    } else if (["earliest", "latest", "committed"].includes(start)) {
      s = { tag: start };
    } else {
      this._g.errors.push(`readKafka: start ${JSON.stringify(start)} is not earliest, latest, committed or {timestamp: ms}`);
      s = { tag: "earliest" };
    }
    const val = {
      brokers: String(brokers),
      topics: (typeof topics === "string" ? [topics] : Array.from(topics)).map(String),
      start: s,
      bounded: Boolean(o.bounded),
      group: o.group == null ? undefined : String(o.group),
      format: kafkaFormat(this._g, "readKafka", o.format),
      secret: o.secret == null ? undefined : String(o.secret),
    };
    return this._source("Kafka Source", { tag: "kafka-source", val }, undefined);
  }

  /** Lines of a text file, as strings (bounded; split across subtasks by the host). */
  readTextFile(path) {
    return this._source("File Source", { tag: "file-source", val: String(path) }, undefined);
  }

  /**
   * The JSON values of a JSON Lines file, one a line (bounded; split across subtasks by the
   * host, which passes each line on unparsed: a line that is not JSON fails the operator
   * that reads it). Blank lines are skipped.
   */
  readJsonLines(path) {
    return this._source("JSON Lines Source", { tag: "json-lines-source", val: String(path) }, undefined);
  }

  /**
   * Nexmark events from a JSON Lines file of the shared format (one event object a line, as
   * `nexmark_gen.py` writes), as `readNexmark` gives them: objects, with each event's time
   * (its `dateTime`, read by the host) and watermarks 4 s behind.
   */
  readNexmarkFile(path) {
    const kind = { tag: "nexmark-file-source", val: String(path) };
    return this._source("Nexmark File Source", kind, undefined).assignWatermarks(NEXMARK_OUT_OF_ORDERNESS_MS);
  }

  /** A fixed collection of values (parallelism 1, bounded). */
  fromElements(elements) {
    const encoded = Array.from(elements, (e) => utf8(toJson(e)));
    return this._source("Elements Source", { tag: "elements-source", val: encoded }, 1);
  }

  /**
   * `f(0), f(1), …, f(n-1)`: a host-side sequence source of 0..n (split across subtasks)
   * followed by a chained map applying `f` in the guest.
   */
  generate(n, f) {
    return this._sequence(n, undefined).map(f);
  }

  /** Like `generate`, but emitting at most `perSecond` records per second in all. */
  generateAtRate(n, perSecond, f) {
    return this._sequence(n, perSecond).map(f);
  }

  /**
   * The records of the job that uses this entry as one of its parts: an entry built on
   * `input()` is an operator entry, which a job file (`eddy run job.toml`) splices into a job
   * mixing components. Such an entry cannot run as a job on its own.
   */
  input() {
    return this._source("Input", { tag: "input" }, undefined);
  }

  /**
   * Nexmark events made by the host (objects of the shared event files' format:
   * `{event_type, person, auction, bid}`), split across the source's subtasks, with event
   * time and watermarks 4 s behind: `readNexmark(events, { perSecond, eventRate })`.
   */
  readNexmark(events, options = {}) {
    const g = this._g;
    const val = {
      events: u64(g, "readNexmark: events", events),
      perSecond: options.perSecond === undefined ? undefined : u64(g, "readNexmark: perSecond", options.perSecond),
      eventRate: u64(g, "readNexmark: eventRate", options.eventRate ?? 10_000_000),
    };
    return this._source("Nexmark Source", { tag: "nexmark-source", val }, undefined).assignWatermarks(NEXMARK_OUT_OF_ORDERNESS_MS);
  }

  _sequence(count, perSecond) {
    const g = this._g;
    const val = {
      count: u64(g, "generate: n", count),
      perSecond: perSecond === undefined ? undefined : u64(g, "generateAtRate: perSecond", perSecond),
    };
    return this._source("Sequence Source", { tag: "sequence-source", val }, undefined);
  }

  /** Default parallelism of the job's vertices. */
  setParallelism(parallelism) {
    this._g.parallelism = u32(this._g, "setParallelism", parallelism);
    return this;
  }

  /** Number of key groups: the upper bound for rescaling keyed state. */
  setMaxParallelism(maxParallelism) {
    this._g.maxParallelism = u32(this._g, "setMaxParallelism", maxParallelism);
    return this;
  }

  /** The job's name (defaults to the entry name). */
  setJobName(name) {
    this._g.name = String(name);
    return this;
  }

  /**
   * Finishes building: `{ graph, registry }`. Forward edges between vertices whose
   * parallelisms are both known and differ become rebalance edges, as Flink does.
   */
  _finish() {
    const g = this._g;
    if (g.errors.length > 0) throw g.errors[0];
    if (g.vertices.length === 0) throw `job '${g.name}' defines no operators`;
    const effective = (v) => (v.parallelism === undefined ? g.parallelism : v.parallelism);
    for (const e of g.edges) {
      if (e.partitioning === "forward") {
        const a = effective(g.vertices[e.source]);
        const b = effective(g.vertices[e.target]);
        if (a !== undefined && b !== undefined && a !== b) e.partitioning = "rebalance";
      }
    }
    return {
      graph: {
        name: g.name,
        vertices: g.vertices,
        edges: g.edges,
        parallelism: g.parallelism,
        maxParallelism: g.maxParallelism,
        // Values are JSON, which JavaScript reads natively; the host turns MessagePack from
        // other components into JSON before this one's operators (wit/README.md, Values).
        codec: "json",
      },
      registry: g.registry,
    };
  }
}

/** The settings every builder handle offers for its last vertex. */
class VertexHandle {
  constructor(g, vertex) {
    this._g = g;
    this._vertex = vertex;
  }
  get _v() {
    return this._g.vertices[this._vertex];
  }
  /** Names the last vertex (shown in plans, logs and errors). */
  name(name) {
    this._v.name = String(name);
    return this;
  }
  /** Gives the last vertex a stable identity for its state across job versions. */
  uid(uid) {
    this._v.uid = String(uid);
    return this;
  }
  /** Overrides the job's parallelism for the last vertex. */
  setParallelism(parallelism) {
    this._v.parallelism = u32(this._g, "setParallelism", parallelism);
    return this;
  }
  /** Puts the last vertex into slot-sharing group `group` (default: "default"). */
  slotSharingGroup(group) {
    this._v.slotSharingGroup = String(group);
    return this;
  }
}

/** A stream of values, each carried as JSON between operators. */
export class Stream extends VertexHandle {
  constructor(g, vertex, edge = "forward", sideOutput = false, more = []) {
    super(g, vertex);
    this._edge = edge;
    this._side = sideOutput;
    // The other streams merged into this one by union: the next operator reads them too.
    this._more = more;
  }

  _input() {
    return [this._vertex, this._edge, this._side];
  }

  _inputs() {
    return [this._input(), ...this._more];
  }

  _then(name, op) {
    return new Stream(this._g, this._g.addOperatorFrom(name, op, this._inputs()));
  }

  /**
   * Merges streams into this one (Flink's `union`): the next operator reads the records of
   * all of them; its event time is the minimum of theirs.
   */
  union(...others) {
    const more = [...this._more];
    for (const o of others) more.push(...o._inputs());
    return new Stream(this._g, this._vertex, this._edge, this._side, more);
  }

  /**
   * Connects this stream with `other`: the next operator has two inputs, a function for
   * each (`map`, `flatMap`, `process`), or after `keyBy` one keyed state both share.
   */
  connect(other) {
    return new ConnectedStreams(this, other);
  }

  /**
   * Joins this stream with `other` in windows (Flink's join): pairs of values of the same
   * key in the same window; `.whereKey(ka).equalTo(kb).window(w).apply(f)`.
   */
  join(other) {
    return new JoinedStreams(this, other);
  }

  /** Groups this stream with `other` in windows (Flink's coGroup); `....window(w).coGroupApply(f)`. */
  coGroup(other) {
    return new JoinedStreams(this, other);
  }

  /**
   * This stream as the broadcast input of `connectBroadcast`: each of its records goes to
   * every subtask of the operator, to update broadcast state.
   */
  broadcastState() {
    return new BroadcastStream(this._inputs().map(([v, , side]) => [v, "broadcast", side]));
  }

  /**
   * Connects this stream with a broadcast stream; `process(element, broadcast)` on the
   * result takes a function per input (Flink's BroadcastProcessFunction).
   */
  connectBroadcast(rules) {
    return new BroadcastConnectedStreams(this._g, this._inputs(), rules._inputs, false);
  }

  /**
   * Event time from field `field` of each value (epoch ms: an array index, an object member
   * name or Field.whole), with watermarks `outOfOrdernessMs` behind the largest timestamp
   * seen. Runs in the host, chained to this stream's operator; call it right after the source.
   */
  assignTimestamps(field, outOfOrdernessMs) {
    return this._timestamps(fieldRef(this._g, field), outOfOrdernessMs);
  }

  /** Watermarks `outOfOrdernessMs` behind the largest timestamp the records already carry. */
  assignWatermarks(outOfOrdernessMs) {
    return this._timestamps(undefined, outOfOrdernessMs);
  }

  _timestamps(field, outOfOrdernessMs) {
    const spec = {
      field,
      outOfOrdernessMs: u64(this._g, "out-of-orderness", outOfOrdernessMs),
      idleTimeoutMs: undefined,
    };
    const id = this._g.addVertexFrom("Timestamps", { tag: "timestamps", val: spec }, this._inputs());
    this._g.placeWith(this._vertex, id);
    return new Stream(this._g, id);
  }

  /**
   * Marks the stream idle after `timeoutMs` without records, so that downstream watermarks
   * stop waiting for it (Flink's withIdleness). Follows assignTimestamps.
   */
  withIdleness(timeoutMs) {
    const kind = this._v.kind;
    if (kind.tag === "timestamps") {
      kind.val.idleTimeoutMs = u64(this._g, "withIdleness", timeoutMs);
    } else {
      this._g.errors.push("withIdleness must follow assignTimestamps or assignWatermarks");
    }
    return this;
  }

  /** Sends records round-robin to the next operator's subtasks (to even out skew). */
  rebalance() {
    return this._partitioned("rebalance");
  }

  /** Sends every record to every subtask of the next operator. */
  broadcast() {
    return this._partitioned("broadcast");
  }

  _partitioned(p) {
    const more = this._more.map(([v, _, side]) => [v, p, side]);
    return new Stream(this._g, this._vertex, p, this._side, more);
  }

  /** Prints each value to the task's stdout (strings raw, anything else as JSON). */
  print() {
    return new DataSink(this._g, this._g.addVertexFrom("Print Sink", { tag: "print-sink" }, this._inputs()));
  }

  /** Counts each value and drops it (a benchmark's sink, as Flink's `blackhole`). */
  discard() {
    return new DataSink(this._g, this._g.addVertexFrom("Discard Sink", { tag: "discard-sink" }, this._inputs()));
  }

  /** Writes each value as a line into part files under directory `path`. */
  writeTextFile(path) {
    const kind = { tag: "file-sink", val: String(path) };
    return new DataSink(this._g, this._g.addVertexFrom("File Sink", kind, this._inputs()));
  }

  /**
   * Writes each value into a Kafka topic, like Flink's `KafkaSink`:
   * `writeKafka("host:9092", "out", { guarantee, format, secret })`. `guarantee`:
   * "none" (default) or "at-least-once" (each checkpoint waits until the brokers
   * acknowledged every record before it); `format`: "text" (strings as their
   * text), "json", or "envelope" (`{ value, key, partition, headers }`).
   */
  writeKafka(brokers, topic, options = {}) {
    const o = kafkaOptions(this._g, "writeKafka", options, ["guarantee", "format", "secret"]);
    const guarantee = o.guarantee ?? "none";
    if (!["none", "at-least-once"].includes(guarantee)) {
      this._g.errors.push(`writeKafka: guarantee ${JSON.stringify(guarantee)} is not none or at-least-once`);
    }
    const val = {
      brokers: String(brokers),
      topic: String(topic),
      guarantee: guarantee === "at-least-once" ? "at-least-once" : "none",
      format: kafkaFormat(this._g, "writeKafka", o.format),
      secret: o.secret == null ? undefined : String(o.secret),
    };
    return new DataSink(this._g, this._g.addVertexFrom("Kafka Sink", { tag: "kafka-sink", val }, this._inputs()));
  }

  /** One output per input: `f(value)`. */
  map(f) {
    return this._then("Map", new MapOp(checkFn(this._g, "map", f)));
  }

  /** Any number of outputs per input: `f(value)` returns an array (or any iterable). */
  flatMap(f) {
    return this._then("FlatMap", new FlatMapOp(checkFn(this._g, "flatMap", f)));
  }

  /** Keeps the values for which `f(value)` is truthy. */
  filter(f) {
    return this._then("Filter", new FilterOp(checkFn(this._g, "filter", f)));
  }

  /** A general function `f(ctx, value)`: emits through `ctx.collect(v)`; throws to fail. */
  process(f) {
    return this._then("Process", new ProcessOp(checkFn(this._g, "process", f)));
  }

  /**
   * Windows over the whole stream, not per key (Flink's windowAll): each window's result is
   * computed in one subtask. `count`, `sum`, `min`, `max` and `reduce` over event-time
   * tumbling windows (or sliding ones whose size is a multiple of their slide) without
   * allowed lateness are computed in parallel first, and only the partials merged there.
   */
  windowAll(window) {
    return new AllWindowedStream(this, window);
  }

  /**
   * Partitions by `f(value)`: sets each record's key to the key's JSON; the next operator is
   * connected by a hash edge so that one subtask sees all of a key.
   */
  keyBy(f) {
    const g = this._g;
    const op = new KeyByOp(checkFn(g, "keyBy", f));
    const index = g.register(op);
    // The key selector belongs with its input, as in Flink: same parallelism and group, so
    // it is chained and per-key order holds. A union has one per merged stream, all running
    // the same registered function.
    const ids = this._inputs().map((input) => {
      const id = g.addVertex("KeyBy", { tag: "wasm", val: index }, input);
      g.placeWith(input[0], id);
      return id;
    });
    op.vertex = g.vertices[ids[0]];
    return new KeyedStream(g, ids[0], ids.slice(1));
  }
}

/** A stream partitioned by a key; its operators may use keyed state. */
export class KeyedStream extends VertexHandle {
  constructor(g, vertex, more = []) {
    super(g, vertex);
    // The key selectors of the other streams of a union.
    this._more = more;
  }

  _hashed() {
    return [this._vertex, ...this._more].map((v) => [v, "hash", false]);
  }

  /** Connects two keyed streams: one keyed operator whose state and timers both share. */
  connect(other) {
    return new KeyedConnectedStreams(this._g, this._hashed(), other._hashed());
  }

  /**
   * Joins this stream with `other` (keyed alike) on event time (Flink's intervalJoin): a
   * value at `ta` pairs with every value of the same key at `tb` where
   * `ta + lower <= tb <= ta + upper` (`between`). Values behind the watermark are late and
   * pair with nothing.
   */
  intervalJoin(other) {
    return new IntervalJoin(this._g, this._hashed(), other._hashed());
  }

  /**
   * Connects this keyed stream with a broadcast stream: keyed state and timers for this
   * stream's records, broadcast state for both (Flink's KeyedBroadcastProcessFunction).
   */
  connectBroadcast(rules) {
    return new BroadcastConnectedStreams(this._g, this._hashed(), rules._inputs, true);
  }

  /** Groups each key's records into windows (a host operator); pick the window function next. */
  window(window) {
    return new WindowedStream(this._g, this._hashed(), window);
  }

  _keyedOperator(name, op, perKeyUpdates) {
    const id = this._g.addOperatorFrom(name, op, this._hashed());
    const v = this._g.vertices[id];
    v.keyed = true;
    v.perKeyUpdates = perKeyUpdates;
    return new Stream(this._g, id);
  }

  _aggregate(name, kind, field) {
    const spec = { tag: "aggregate", val: { kind, field: fieldRef(this._g, field) } };
    return new Stream(this._g, this._g.addVertexFrom(name, spec, this._hashed()));
  }

  /** Running sum of `field` per key (built into the host): the key's first record with the field replaced. */
  sum(field) {
    return this._aggregate("Sum", "sum", field);
  }

  /** Running minimum of `field` per key (built into the host). */
  min(field) {
    return this._aggregate("Min", "min", field);
  }

  /** Running maximum of `field` per key (built into the host). */
  max(field) {
    return this._aggregate("Max", "max", field);
  }

  /** Running count per key (built into the host): emits `[key, n]`. */
  count() {
    return this._aggregate("Count", "count", undefined);
  }

  /**
   * A keyed function `f(ctx, value)`: `ctx.key()`, keyed state (`ctx.valueState(name)`, …),
   * timers (`ctx.registerEventTimeTimer(ts)`, …) and `ctx.collect(v)`. With `onTimer(ctx,
   * {timestamp, domain})`, called when a timer of the key fires, with that key current.
   * Outputs keep the input's key.
   */
  process(f, onTimer) {
    checkFn(this._g, "process", f);
    if (onTimer !== undefined) checkFn(this._g, "process: onTimer", onTimer);
    return this._keyedOperator("Process", new KeyedProcessOp(f, onTimer), false);
  }

  /** `process(f, onTimer)`, named as in the Rust SDK. */
  processWithTimers(f, onTimer) {
    return this.process(f, onTimer);
  }

  /**
   * Folds each key's values with `f(acc, value)` (state `__reduce`) and emits the running
   * result for every input, as Flink's reduce does.
   */
  reduce(f) {
    return this._keyedOperator("Reduce", new ReduceOp(checkFn(this._g, "reduce", f)), true);
  }
}

/** A sink vertex; only its settings can still be changed. */
export class DataSink extends VertexHandle {}

/** Two streams, possibly of different kinds of values, feeding one operator. */
export class ConnectedStreams {
  constructor(first, second) {
    this._first = first;
    this._second = second;
  }

  _then(name, op) {
    const g = this._first._g;
    return new Stream(g, g.addOperatorFrom(name, op, this._first._inputs(), this._second._inputs()));
  }

  /** One output per record: `first(value)` or `second(value)` (Flink's CoMapFunction). */
  map(first, second) {
    const g = this._first._g;
    return this._then("CoMap", new CoMapOp(checkFn(g, "map", first), checkFn(g, "map", second)));
  }

  /** Any number of outputs per record: each function returns an array (or iterable). */
  flatMap(first, second) {
    const g = this._first._g;
    return this._then("CoFlatMap", new CoFlatMapOp(checkFn(g, "flatMap", first), checkFn(g, "flatMap", second)));
  }

  /** `first(ctx, value)` or `second(ctx, value)`: emit with `ctx.collect(v)`. */
  process(first, second) {
    const g = this._first._g;
    return this._then("CoProcess", new CoProcessOp(checkFn(g, "process", first), checkFn(g, "process", second)));
  }

  /** Partitions both inputs by keys of one kind: one keyed state for both. */
  keyBy(firstKey, secondKey) {
    return this._first.keyBy(firstKey).connect(this._second.keyBy(secondKey));
  }
}

/** Two keyed streams feeding one keyed operator: state and timers shared by both inputs. */
export class KeyedConnectedStreams {
  constructor(g, first, second) {
    this._g = g;
    this._first = first;
    this._second = second;
  }

  /**
   * `first(ctx, value)` for the first stream's records, `second(ctx, value)` for the
   * other's, with the record's key current for keyed state (shared by both);
   * `onTimer(ctx, {timestamp, domain})` when a timer of the key fires.
   */
  process(first, second, onTimer) {
    const g = this._g;
    checkFn(g, "process", first);
    checkFn(g, "process", second);
    if (onTimer !== undefined) checkFn(g, "process: onTimer", onTimer);
    const id = g.addOperatorFrom("CoProcess", new KeyedCoProcessOp(first, second, onTimer), this._first, this._second);
    g.vertices[id].keyed = true;
    return new Stream(g, id);
  }
}

/** A stream whose records reach every subtask of the operator it is connected to. */
export class BroadcastStream {
  constructor(inputs) {
    this._inputs = inputs;
  }
}

/**
 * A stream, keyed or not, connected with a broadcast stream. The broadcast input's function
 * runs in every subtask and may change broadcast state (`ctx.broadcastState(name)`, a map of
 * JSON keys to JSON values); the other input's may only read it, so that every subtask's copy
 * stays the same. The host keeps each subtask's copy, saves it in snapshots and gives every
 * subtask of a rescaled job one copy.
 */
export class BroadcastConnectedStreams {
  constructor(g, first, second, keyed) {
    this._g = g;
    this._first = first;
    this._second = second;
    this._keyed = keyed;
  }

  /**
   * `element(ctx, value)` for the stream's records (with `ctx.key()`, keyed state and timers
   * on a keyed stream), `broadcast(ctx, value)` for the broadcast stream's;
   * `onTimer(ctx, {timestamp, domain})` (keyed only) when a timer of a key fires.
   */
  process(element, broadcast, onTimer) {
    const g = this._g;
    checkFn(g, "process", element);
    checkFn(g, "process", broadcast);
    let op;
    if (this._keyed) {
      if (onTimer !== undefined) checkFn(g, "process: onTimer", onTimer);
      op = new KeyedBroadcastProcessOp(element, broadcast, onTimer);
    } else {
      if (onTimer !== undefined) g.errors.push("connectBroadcast: timers need a keyed stream (keyBy before it)");
      op = new BroadcastProcessOp(element, broadcast);
    }
    const id = g.addOperatorFrom("BroadcastProcess", op, this._first, this._second);
    g.vertices[id].keyed = this._keyed;
    return new Stream(g, id);
  }
}

/** Which windows a record belongs to, and on which clock they fire. */
export class Window {
  constructor(assigner, time) {
    this.assigner = assigner;
    this.time = time;
  }
  /** Fixed windows of `sizeMs`, aligned to the epoch, on record timestamps. */
  static tumblingEventTime(sizeMs) {
    return new Window({ tag: "tumbling", val: sizeMs }, "event-time");
  }
  /** Windows of `sizeMs` starting every `slideMs`, on record timestamps. */
  static slidingEventTime(sizeMs, slideMs) {
    return new Window({ tag: "sliding", val: { sizeMs, slideMs } }, "event-time");
  }
  /** Per key, records less than `gapMs` apart share a window, on record timestamps. */
  static sessionEventTime(gapMs) {
    return new Window({ tag: "session", val: gapMs }, "event-time");
  }
  /** Fixed windows of `sizeMs` on the wall clock of the window's subtask. */
  static tumblingProcessingTime(sizeMs) {
    return new Window({ tag: "tumbling", val: sizeMs }, "processing-time");
  }
  /** Windows of `sizeMs` starting every `slideMs`, on the wall clock. */
  static slidingProcessingTime(sizeMs, slideMs) {
    return new Window({ tag: "sliding", val: { sizeMs, slideMs } }, "processing-time");
  }
  /** Sessions with gap `gapMs`, on the wall clock. */
  static sessionProcessingTime(gapMs) {
    return new Window({ tag: "session", val: gapMs }, "processing-time");
  }
}

function assigner(g, a) {
  if (a.tag === "sliding") {
    return { tag: "sliding", val: { sizeMs: u64(g, "window size", a.val.sizeMs), slideMs: u64(g, "window slide", a.val.slideMs) } };
  }
  return { tag: a.tag, val: u64(g, `${a.tag} window`, a.val) };
}

/**
 * A keyed stream grouped into windows; choose what each window computes. Results carry the
 * key and the timestamp `end - 1`.
 */
export class WindowedStream extends VertexHandle {
  constructor(g, keyed, window) {
    if (!(window instanceof Window)) {
      g.errors.push("window() needs a Window, e.g. Window.tumblingEventTime(60000)");
      window = Window.tumblingEventTime(1);
    }
    const spec = {
      assigner: assigner(g, window.assigner),
      time: window.time,
      allowedLatenessMs: 0n,
      function: { tag: "collect" },
    };
    super(g, g.addVertexFrom("Window", { tag: "window", val: spec }, keyed));
  }

  get _spec() {
    return this._v.kind.val;
  }

  /**
   * Records up to `latenessMs` behind the watermark still update their windows (each fires
   * again); later ones are dropped or go to lateData(). Event time only.
   */
  allowedLateness(latenessMs) {
    this._spec.allowedLatenessMs = u64(this._g, "allowedLateness", latenessMs);
    return this;
  }

  /** The records too late for any of their windows (Flink's sideOutputLateData). */
  lateData() {
    return new Stream(this._g, this._vertex, "forward", true);
  }

  _builtIn(name, kind, field) {
    this._spec.function = { tag: "aggregate", val: { kind, field: fieldRef(this._g, field) } };
    this._v.name = name;
    return new Stream(this._g, this._vertex);
  }

  /** Number of records per key and window (built into the host): emits `[key, n]`. */
  count() {
    return this._builtIn("Window Count", "count", undefined);
  }

  /** Sum of `field` per key and window (built into the host). */
  sum(field) {
    return this._builtIn("Window Sum", "sum", field);
  }

  /** Minimum of `field` per key and window (built into the host). */
  min(field) {
    return this._builtIn("Window Min", "min", field);
  }

  /** Maximum of `field` per key and window (built into the host). */
  max(field) {
    return this._builtIn("Window Max", "max", field);
  }

  /**
   * The Wasm vertex after the `collect` window: decodes each fired window's envelope
   * `{key, start, end, values}` and calls `f(ctx, key, {start, end}, values)`.
   */
  _then(name, f) {
    const op = new ProcessOp((ctx, e) => {
      if (e === null || typeof e !== "object" || !Array.isArray(e.values)) {
        throw `expected a window envelope {"key","start","end","values"}, got ${JSON.stringify(e)}`;
      }
      f(ctx, e.key, { start: e.start, end: e.end }, e.values);
    });
    const id = this._g.addOperator(name, op, [this._vertex, "forward", false]);
    this._g.placeWith(this._vertex, id);
    return new Stream(this._g, id);
  }

  /** Folds each window's values with `f(acc, value)` and emits the result. */
  reduce(f) {
    checkFn(this._g, "reduce", f);
    return this._then("Window Reduce", (ctx, _key, _window, values) => {
      if (values.length > 0) ctx.collect(values.reduce(f));
    });
  }

  /**
   * Flink's AggregateFunction: an accumulator from `create()`, each value folded in by
   * `add(acc, value)`, the result made by `result(acc)`.
   */
  aggregate(create, add, result) {
    checkFn(this._g, "aggregate: create", create);
    checkFn(this._g, "aggregate: add", add);
    checkFn(this._g, "aggregate: result", result);
    return this._then("Window Aggregate", (ctx, _key, _window, values) => {
      ctx.collect(result(values.reduce(add, create())));
    });
  }

  /**
   * A full window function `f(ctx, key, window, values)` with `window = {start, end}`; emits
   * through `ctx.collect` (Flink's ProcessWindowFunction).
   */
  process(f) {
    return this._then("Window Process", checkFn(this._g, "process", f));
  }
}

/** A Kafka connector's options, refusing names it does not know (a typo must not pass silently). */
function kafkaOptions(g, what, options, known) {
  const o = options ?? {};
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) g.errors.push(`${what}: unknown option ${k} (${known.join(", ")})`);
  }
  return o;
}

function kafkaFormat(g, what, format) {
  const f = format ?? "text";
  if (["text", "json", "envelope"].includes(f)) return f;
  g.errors.push(`${what}: format ${JSON.stringify(f)} is not text, json or envelope`);
  return "text";
}

// How many keys a pre-aggregating AllWindowedStream spreads records over (as in Rust).
const SPREAD = 64;

/**
 * A stream grouped into windows over all its records; choose what each window computes.
 * Results carry the timestamp `end - 1`. Mirrors the Rust SDK's AllWindowedStream, graph
 * for graph.
 */
export class AllWindowedStream {
  constructor(stream, window) {
    this._stream = stream;
    this._window = window;
    this._lateness = 0;
  }

  /** Records up to `latenessMs` behind the watermark still update their windows. */
  allowedLateness(latenessMs) {
    this._lateness = latenessMs;
    return this;
  }

  /**
   * The window that merges partial results, if they can be merged: each partial carries its
   * window's `end - 1`, which one tumbling window of the slide gathers.
   */
  _mergingWindow() {
    const a = this._window.assigner;
    if (this._lateness || this._window.time !== "event-time") return null;
    if (a.tag === "tumbling") return Window.tumblingEventTime(a.val);
    if (a.tag === "sliding" && a.val.slideMs > 0 && a.val.sizeMs % a.val.slideMs === 0) {
      return Window.tumblingEventTime(a.val.slideMs);
    }
    return null;
  }

  _partial() {
    let next = 0;
    return this._stream
      .keyBy(() => {
        const key = next;
        next = (key + 1) % SPREAD;
        return key;
      })
      .window(this._window);
  }

  static _single(stream, window, lateness) {
    return stream.keyBy(() => null).window(window).setParallelism(1).allowedLateness(lateness);
  }

  _builtIn(apply, merge, applyAll) {
    const merging = this._mergingWindow();
    if (merging !== null) return merge(AllWindowedStream._single(apply(this._partial()), merging, 0));
    return applyAll(AllWindowedStream._single(this._stream, this._window, this._lateness));
  }

  /** Number of records per window (built into the host). */
  count() {
    const counts = this._builtIn(
      (w) => w.count().map(([, n]) => n),
      (w) => w.sum(Field.whole),
      (w) => w.count().map(([, n]) => n),
    );
    return counts.setParallelism(1);
  }

  /** Sum of `field` per window (built into the host). */
  sum(field) {
    const f = (w) => w.sum(field);
    return this._builtIn(f, f, f);
  }

  /** Minimum of `field` per window (built into the host). */
  min(field) {
    const f = (w) => w.min(field);
    return this._builtIn(f, f, f);
  }

  /** Maximum of `field` per window (built into the host). */
  max(field) {
    const f = (w) => w.max(field);
    return this._builtIn(f, f, f);
  }

  /**
   * Folds each window's values with `f(a, b)`. Partials are computed in parallel and merged in
   * no particular order, so `f` must be associative and commutative.
   */
  reduce(f) {
    const r = (w) => w.reduce(f);
    return this._builtIn(r, r, r);
  }

  /** Flink's AggregateFunction over each window's values (in the one subtask). */
  aggregate(create, add, result) {
    return AllWindowedStream._single(this._stream, this._window, this._lateness).aggregate(create, add, result);
  }

  /** A full window function `f(ctx, {start, end}, values)`, in the one subtask. */
  process(f) {
    checkFn(this._stream._g, "process", f);
    return AllWindowedStream._single(this._stream, this._window, this._lateness).process((ctx, _key, w, values) => f(ctx, w, values));
  }
}
