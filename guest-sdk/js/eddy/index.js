// eddy: Eddy jobs in JavaScript.
//
// An Eddy job is a WebAssembly component for the `eddy:stream/job` world (wit/eddy.wit). This
// module lets you write one the way you would write a Flink DataStream job, with the same
// builder and operators as the Rust SDK (guest-sdk/src), in camelCase:
//
//   import { entry, words } from "eddy";
//   entry("word-count", (env, args) => {
//     env.readTextFile(args.required("input"))
//       .flatMap((line) => words(line)).name("tokenize")
//       .keyBy((w) => w).count().name("count")
//       .map(([w, n]) => `${w} ${n}`).name("format")
//       .print();
//   });
//
// `guest-sdk/js/build.sh job.js job.wasm` turns such a module into a component; it exports
// `planner` and `operator` from here.

export { Args } from "./args.js";
export {
  BroadcastCtx,
  BroadcastState,
  Ctx,
  KeyedCtx,
  KeyedReadOnlyBroadcastCtx,
  Level,
  ListState,
  MapState,
  ReadOnlyBroadcastCtx,
  ReadOnlyBroadcastState,
  ValueState,
  counter,
  info,
  log,
} from "./ctx.js";
export {
  AllWindowedStream,
  BroadcastConnectedStreams,
  BroadcastStream,
  ConnectedStreams,
  DataSink,
  Env,
  Field,
  KeyedConnectedStreams,
  KeyedStream,
  Stream,
  Window,
  WindowedStream,
} from "./graph.js";
export { IntervalJoin, JoinedStreams, JoinedWindows } from "./joins.js";
export { entry, operator, planner, registerModule } from "./runtime.js";
export { isAlphanumeric, words } from "./text.js";
