import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeBatch, encodeBatch } from "../eddy/frame.js";
import { frame, unframe } from "./framing.mjs";

let seed = 12345;
const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
const text = (n) => Array.from({ length: n }, () => ["a", "é", '"', "\\", "\n", "😀", "x", "1", " ", "\0"][rand(10)]).join("");

test("random batches decode and encode back to the same bytes", () => {
  for (let iter = 0; iter < 2000; iter++) {
    const n = 1 + rand(20);
    const keyed = rand(3) === 0;
    const timed = rand(3) === 0;
    const values = [];
    const records = [];
    for (let i = 0; i < n; i++) {
      const kind = rand(4);
      const v = kind === 0 ? rand(1e9) : kind === 1 ? text([0, 5, 126, 127, 128, 200, 255, 256, 300][rand(9)]) : kind === 2 ? { a: text(3), b: [rand(10), null, true] } : -rand(100) / 8;
      values.push(v);
      const r = { value: JSON.stringify(v) };
      if (keyed && rand(4)) r.key = JSON.stringify(text(rand(5)));
      if (timed && rand(4)) r.ts = rand(2) ? rand(2e12) : -rand(1e6);
      records.push(r);
    }
    const batch = frame(records);
    const b = decodeBatch(batch.slice());
    assert.deepEqual(b.v, values);
    for (let i = 0; i < n; i++) {
      assert.equal(b.k === null ? undefined : b.k[i], records[i].key);
      assert.equal(b.t === null || b.t[i] === undefined ? undefined : Number(b.t[i]), records[i].ts);
    }
    assert.deepEqual(encodeBatch(b), batch);
  }
});

test("malformed batches are refused with a message", () => {
  const cases = [
    [[4, 0, 0, 0, 0], /unknown flag bits 0x04/],
    [[0, 255, 255, 255, 255], /ends inside its value/],
    [[0, 1, 0, 0], /ends inside its value/],
    [[2, 1, 2], /ends inside its timestamp/],
    [[1, 9, 0, 0, 0, 34], /ends inside its key/],
    [[0, 0, 0, 0, 0], /empty value/],
  ];
  for (const [bytes, want] of cases) assert.throws(() => decodeBatch(new Uint8Array(bytes)), (e) => want.test(e), String(bytes));
  const notJson = frame([{ value: "{}" }, { value: "abc" }]);
  assert.throws(() => decodeBatch(notJson), (e) => /not valid JSON/.test(e) && /abc/.test(e));
  assert.deepEqual(unframe(encodeBatch({ v: [1, "x"], k: null, t: null })), [{ value: "1" }, { value: '"x"' }]);
});
