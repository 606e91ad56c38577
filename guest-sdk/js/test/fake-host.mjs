// An in-memory stand-in for the Eddy host's `host` interface (wit/eddy.wit), enough to run
// operators natively in tests: keyed state per current key, timers and logs are recorded.
const td = new TextDecoder();
const key = (bytes) => td.decode(bytes);

export const fake = {
  logs: [],
  counters: new Map(),
  counterCalls: 0,
  currentKey: null,
  state: new Map(), // `${stateKey}\u0000${name}` -> value | array | Map
  broadcast: new Map(), // name -> Map(JSON key -> value bytes)
  timers: [],
  watermark: -(2n ** 63n),
  reset() {
    this.logs = [];
    this.counters = new Map();
    this.counterCalls = 0;
    this.currentKey = null;
    this.state = new Map();
    this.broadcast = new Map();
    this.timers = [];
  },
};

function slot(name) {
  if (fake.currentKey === null) throw new Error("no current key");
  return `${fake.currentKey}\u0000${name}`;
}

export function log(level, message) {
  fake.logs.push([level, message]);
}
export function counterAdd(name, delta) {
  fake.counterCalls++;
  fake.counters.set(name, (fake.counters.get(name) ?? 0n) + delta);
}
export function setCurrentKey(k) {
  fake.currentKey = key(k);
}
export function valueGet(name) {
  return fake.state.get(slot(name));
}
export function valueSet(name, value) {
  fake.state.set(slot(name), value.slice());
}
export function valueClear(name) {
  fake.state.delete(slot(name));
}
export function listGet(name) {
  return fake.state.get(slot(name)) ?? [];
}
export function listAdd(name, value) {
  const s = slot(name);
  fake.state.set(s, [...(fake.state.get(s) ?? []), value.slice()]);
}
export function listClear(name) {
  fake.state.delete(slot(name));
}
function map(name) {
  const s = slot(name);
  if (!fake.state.has(s)) fake.state.set(s, new Map());
  return fake.state.get(s);
}
export function mapGet(name, k) {
  return map(name).get(key(k))?.[1];
}
export function mapPut(name, k, v) {
  map(name).set(key(k), [k.slice(), v.slice()]);
}
export function mapRemove(name, k) {
  map(name).delete(key(k));
}
export function mapEntries(name) {
  return [...map(name).values()];
}
export function stateTtl(_name, _ttl) {}
export function registerTimer(domain, timestamp) {
  fake.timers.push([fake.currentKey, domain, timestamp]);
}
export function deleteTimer(domain, timestamp) {
  fake.timers = fake.timers.filter((t) => !(t[0] === fake.currentKey && t[1] === domain && t[2] === timestamp));
}
export function currentWatermark() {
  return fake.watermark;
}

function broadcastMap(name) {
  if (!fake.broadcast.has(name)) fake.broadcast.set(name, new Map());
  return fake.broadcast.get(name);
}
export function broadcastGet(name, k) {
  return broadcastMap(name).get(key(k));
}
export function broadcastPut(name, k, value) {
  broadcastMap(name).set(key(k), value.slice());
}
export function broadcastRemove(name, k) {
  broadcastMap(name).delete(key(k));
}
export function broadcastEntries(name) {
  const te = new TextEncoder();
  return [...broadcastMap(name).entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [te.encode(k), v]);
}
