import assert from "node:assert/strict";
import { test } from "node:test";
import { words } from "../eddy/text.js";

// The cases of guest-sdk/src/text.rs, plus final sigmas.
test("words split and lower-case like the Rust SDK", () => {
  const cases = [
    ["Hello, World! hello", ["hello", "world", "hello"]],
    ["  --  ", []],
    ["", []],
    ["a1b2 x_y", ["a1b2", "x", "y"]],
    ["line\r\n", ["line"]],
    ["Café Über NAÏVE", ["café", "über", "naïve"]],
    ["«quoted»—dash…end", ["quoted", "dash", "end"]],
    ["ΣΑΣ", ["σας"]],
    ["日本語 テキスト", ["日本語", "テキスト"]],
    ["x\u00a0y", ["x", "y"]],
    ["Café, Über-naïve DON'T 42", ["café", "über", "naïve", "don", "t", "42"]],
    ["ΟΔΥΣΣΕΥΣ Σ ΑΣ1 İstanbul ǅemal", ["οδυσσευς", "σ", "ας1", "i\u0307stanbul", "ǆemal"]],
  ];
  for (const [text, want] of cases) assert.deepEqual(words(text), want, JSON.stringify(text));
});
