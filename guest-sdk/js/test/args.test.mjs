import assert from "node:assert/strict";
import { test } from "node:test";
import { Args } from "../eddy/args.js";

// The cases of guest-sdk/src/args.rs.
test("forms", () => {
  const a = Args.parse(["pos", "--input", "in.txt", "--output=out", "--verbose", "--n", "-5", "--x=a=b", "-p", "3"]);
  assert.equal(a.get("input"), "in.txt");
  assert.equal(a.get("output"), "out");
  assert.equal(a.get("verbose"), "true");
  assert.ok(a.has("verbose"));
  assert.equal(a.parseOr("n", 0), -5);
  assert.equal(a.get("x"), "a=b");
  assert.equal(a.get("p"), "3");
  assert.deepEqual(a.positional, ["pos"]);
});

test("flag before option and at end", () => {
  const a = Args.parse(["--dry", "--port", "9", "--last"]);
  assert.equal(a.get("dry"), "true");
  assert.equal(a.parseOr("port", 1), 9);
  assert.equal(a.get("last"), "true");
});

test("errors and defaults", () => {
  const a = Args.parse(["--port", "seventy", "--f", "2.5"]);
  assert.throws(() => a.required("input"), (e) => e === "missing required argument --input");
  assert.equal(a.getOr("host", "localhost"), "localhost");
  assert.throws(() => a.parseOr("port", 7777), (e) => e.startsWith("invalid value 'seventy' for --port"));
  assert.equal(Args.parse([]).parseOr("port", 7777), 7777);
  assert.equal(a.parseOr("f", 0.5), 2.5);
  assert.throws(() => a.parseOr("f", 1), (e) => e.startsWith("invalid value '2.5' for --f"));
});

test("double dash and override", () => {
  const a = Args.parse(["--k", "1", "--k", "2", "--", "--not-an-option"]);
  assert.equal(a.get("k"), "2");
  assert.deepEqual(a.positional, ["--not-an-option"]);
});
