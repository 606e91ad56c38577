// Word splitting equal to the Rust SDK's `eddy_sdk::text::words`: maximal runs of characters
// for which Rust's `char::is_alphanumeric` holds, each lower-cased as Rust's
// `str::to_lowercase` does.
//
// StarlingMonkey is built without ICU: `\p{...}` regexes do not compile and Unicode data is
// whatever its engine has, so non-ASCII text is classified and lowered with tables generated
// from Rust itself (text_tables.js). ASCII lines, nearly all text, take native regex paths.

import { ALNUM_ENDS, ALNUM_STARTS, LOWER } from "./text_tables.js";

const ASCII_ONLY = /^[\x00-\x7f]*$/;
const ASCII_WORD = /[a-z0-9]+/g;
const CAPITAL_SIGMA = 0x3a3;

/** Whether code point `cp` is alphanumeric in Rust's sense. */
export function isAlphanumeric(cp) {
  if (cp < 0x80) {
    return (cp >= 48 && cp <= 57) || (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122);
  }
  let lo = 0;
  let hi = ALNUM_STARTS.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ALNUM_STARTS[mid]) hi = mid - 1;
    else if (cp > ALNUM_ENDS[mid]) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Splits `text` into lower-cased words, as the Rust SDK does:
 * `words("Café, Über-naïve DON'T 42")` is `["café", "über", "naïve", "don", "t", "42"]`.
 */
export function words(text) {
  if (ASCII_ONLY.test(text)) {
    return text.toLowerCase().match(ASCII_WORD) || [];
  }
  const out = [];
  let word = [];
  for (const ch of text) {
    if (isAlphanumeric(ch.codePointAt(0))) {
      word.push(ch);
    } else if (word.length > 0) {
      out.push(lowerWord(word));
      word = [];
    }
  }
  if (word.length > 0) out.push(lowerWord(word));
  return out;
}

/** Rust's `str::to_lowercase` of a word given as an array of characters. */
function lowerWord(chars) {
  let s = "";
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    const cp = ch.codePointAt(0);
    if (cp < 0x80) {
      s += cp >= 65 && cp <= 90 ? String.fromCharCode(cp + 32) : ch;
    } else if (cp === CAPITAL_SIGMA) {
      s += finalSigma(chars, i) ? "\u03c2" : "\u03c3";
    } else {
      const l = LOWER.get(cp);
      s += l === undefined ? ch : l;
    }
  }
  return s;
}

// Unicode's Final_Sigma condition, as Rust's `to_lowercase` applies it: the sigma follows a
// cased letter (skipping case-ignorable characters) and no cased letter follows it.
function finalSigma(chars, i) {
  return casedAfterIgnorables(chars, i - 1, -1) && !casedAfterIgnorables(chars, i + 1, 1);
}

function casedAfterIgnorables(chars, i, step) {
  for (; i >= 0 && i < chars.length; i += step) {
    const ch = chars[i];
    if (!caseIgnorable(ch.codePointAt(0))) return cased(ch);
  }
  return false;
}

// Only alphanumeric characters occur inside a word, so these need to be right for those:
// a cased letter has a case mapping; the case-ignorable ones are marks and modifier letters.
function cased(ch) {
  const cp = ch.codePointAt(0);
  return LOWER.has(cp) || ch.toUpperCase() !== ch || ch.toLowerCase() !== ch;
}

function caseIgnorable(cp) {
  return (cp >= 0x2b0 && cp <= 0x36f) || (cp >= 0x483 && cp <= 0x489) || cp === 0x37a;
}
