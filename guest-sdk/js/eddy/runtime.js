// The component's exports, `planner` and `operator` (wit/eddy.wit), the JS counterpart of
// guest-sdk/src/runtime.rs.
//
// Job functions are registered by name with `entry(name, fn)`. The planner runs one against a
// fresh Env and returns its graph; `operator.open` re-runs it to rebuild the registry of user
// operators and selects the chain the host assigned to the instance.
//
// componentize-js turns a thrown string into the `err` of a `result<_, string>` (a thrown
// Error would trap the instance), so every export catches and rethrows one line of text.

import { Args } from "./args.js";
import { flushCounters, resetHostKey } from "./ctx.js";
import { decodeBatch, encodeBatch, text } from "./frame.js";
import { Env } from "./graph.js";
import { describeError, runChain, runHook } from "./ops.js";

const entries = new Map();

/**
 * Registers job function `job(env, args)` as entry `name`; it builds the pipeline on `env`
 * from the job arguments (an Args) and throws (a string or an Error) to refuse them.
 * It runs in the planner and again in every operator instance, so it must be deterministic.
 */
export function entry(name, job) {
  if (typeof job !== "function") throw new TypeError(`entry '${name}' needs a function (env, args) => {...}`);
  if (entries.has(name)) throw new TypeError(`entry '${name}' is registered twice`);
  entries.set(name, job);
}

/**
 * Registers the entries a job module exports as an object: `export const entries = {
 * "word-count": wordCount }` or `export default { ... }`. The build script calls it on the
 * user's module, so both styles work next to `entry(...)` calls.
 */
export function registerModule(module) {
  for (const table of [module.entries, module.default]) {
    if (table && typeof table === "object") {
      for (const [name, job] of Object.entries(table)) {
        if (typeof job === "function" && entries.get(name) !== job) entry(name, job);
      }
    }
  }
}

function build(entryName, args) {
  const job = entries.get(entryName);
  if (job === undefined) {
    throw `unknown entry '${entryName}'; this component offers: ${[...entries.keys()].join(", ")}`;
  }
  const env = new Env(entryName);
  job(env, Args.parse(args));
  return env._finish();
}

function fail(e) {
  // Thrown strings are messages already; anything else is described on one line.
  return typeof e === "string" ? e : describeError(e, null);
}

let instance = null;

function chain() {
  if (instance === null) throw "operator.open has not succeeded on this instance";
  resetHostKey();
  return instance.ops;
}

export const planner = {
  entries() {
    return [...entries.keys()];
  },

  plan(entryName, args) {
    try {
      return build(entryName, args).graph;
    } catch (e) {
      throw fail(e);
    }
  },
};

export const operator = {
  open(entryName, args, operators, subtask) {
    try {
      const { registry } = build(entryName, args);
      const taken = new Set();
      const ops = Array.from(operators, (i) => {
        if (i >= registry.length) {
          throw `operator ${i} does not exist: entry '${entryName}' has ${registry.length} operators`;
        }
        if (taken.has(i)) throw `operator ${i} selected twice`;
        taken.add(i);
        return registry[i];
      });
      instance = { ops, subtask };
    } catch (e) {
      throw fail(e);
    }
  },

  process(input) {
    try {
      const ops = chain();
      return encodeBatch(runChain(ops, 0, decodeBatch(input)));
    } catch (e) {
      throw fail(e);
    } finally {
      flushCounters();
    }
  },

  onWatermark(watermark) {
    try {
      const w = Number(watermark);
      return encodeBatch(runHook(chain(), (op) => op.onWatermark(w)));
    } catch (e) {
      throw fail(e);
    } finally {
      flushCounters();
    }
  },

  onTimer(key, timestamp, domain) {
    try {
      const k = text(key);
      const ts = Number(timestamp);
      return encodeBatch(runHook(chain(), (op) => op.onTimer(k, ts, domain)));
    } catch (e) {
      throw fail(e);
    } finally {
      flushCounters();
    }
  },

  close() {
    try {
      return encodeBatch(runHook(chain(), (op) => op.close()));
    } catch (e) {
      throw fail(e);
    } finally {
      flushCounters();
    }
  },
};
