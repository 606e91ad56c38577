// The packed batch framing of wit/README.md, decoded and encoded with as few interpreted
// steps per record as possible. StarlingMonkey has no JIT: every JS operation per record
// costs (about 10 ns each), while native calls over a whole batch (TextDecoder, JSON.parse,
// JSON.stringify, TextEncoder, String.prototype.replaceAll) are cheap. Regular expressions
// are interpreted too, and slow.
//
// Inside the SDK a batch is columnar: `{ v, k, t }` with `v` the values (parsed JSON), `k`
// the record keys as JSON text (or null when no record has one) and `t` the timestamps as
// BigInt ms (or null when none has one). Keys stay text so they cross a chain byte-exact;
// timestamps stay BigInt so they cross without conversions (contexts show them as Numbers).
//
// Decoding turns the batch into the text of one JSON array of its values, for one
// TextDecoder call and one JSON.parse. Encoding builds the whole output, headers included,
// as one string for one TextEncoder call (plus DataView writes for timestamps).

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Flag bit 3: the record came by a two-input operator's second input (set by the host). */
const SECOND_INPUT = 8;

export function emptyBatch() {
  return { v: [], k: null, t: null };
}

/** Decodes a batch (a Uint8Array the SDK may overwrite) into columns. */
export function decodeBatch(buf) {
  if (buf.length === 0) return emptyBatch();
  if (buf[0] === 0) {
    const v = decodePlain(buf);
    if (v !== null) return { v, k: null, t: null };
  }
  return decodeFraming(buf);
}

/**
 * The fast decoder for batches of plain records (no key, no timestamp, values shorter than
 * 256 bytes), with no JS per record: such a record's header, as text, is NUL, one character
 * for the length byte (U+FFFD from 0x80 on) and three NULs. Replacing each distinct header
 * by a comma (a native replaceAll per distinct length, a few per batch) leaves the text of
 * one JSON array for one JSON.parse. JSON text holds no raw NUL, so only headers match; any
 * other record leaves control characters behind, which JSON.parse rejects, and the caller
 * walks the framing instead. Returns the values, or null.
 */
function decodePlain(buf) {
  let text = decoder.decode(buf);
  const length = text.length;
  let rounds = 0;
  for (let z = 0; (z = text.indexOf("\0", z)) >= 0; ) {
    const h = text.substr(z, 5);
    if (++rounds > 64 || h.length < 5 || h.charCodeAt(2) !== 0 || h.charCodeAt(3) !== 0 || h.charCodeAt(4) !== 0) {
      return null;
    }
    text = text.replaceAll(h, ",");
  }
  let v;
  try {
    v = JSON.parse("[" + text.slice(1) + "]");
  } catch (_) {
    return null;
  }
  // Each header became one character of five: as many values as headers, or an empty
  // value (not JSON) hid among them.
  return length - text.length === 4 * v.length ? v : null;
}

function malformed(start, what, n) {
  return `malformed batch: record at byte ${start} ends inside its ${what} (batch is ${n} bytes)`;
}

/**
 * The general decoder: walks the framing, reads timestamps and keys, and overwrites each
 * header with `[`/`,` and spaces, so that the batch becomes the text of a JSON array of its
 * values. DataView reads and one `fill` per header: native calls beat byte-by-byte JS.
 */
function decodeFraming(buf) {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = buf.length;
  let k = null;
  let t = null;
  // Which input each record came by (1: a two-input operator's second), once one did.
  let s = null;
  let count = 0;
  let pos = 0;
  while (pos < n) {
    const start = pos;
    const flags = buf[pos];
    if (flags === 2 && pos + 13 <= n) {
      // A timestamp and a value: every record of event-time streams.
      if (s !== null) s[count] = 0;
      if (t === null) t = new Array(count);
      t[count++] = dv.getBigInt64(pos + 1, true);
      const len = dv.getUint32(pos + 9, true);
      buf.fill(32, pos, pos + 13);
      buf[pos] = 44;
      pos += 13 + len;
      if (len === 0) throw `record at byte ${start} has an empty value, which is not JSON`;
      continue;
    }
    let p = pos + 1;
    if (flags & ~(1 | 2 | SECOND_INPUT)) {
      throw `malformed batch: record at byte ${start} has unknown flag bits 0x${flags.toString(16).padStart(2, "0")}`;
    }
    if (flags & SECOND_INPUT && s === null) s = new Array(count).fill(0);
    if (s !== null) s[count] = flags & SECOND_INPUT ? 1 : 0;
    if (flags & 2) {
      if (p + 8 > n) throw malformed(start, "timestamp", n);
      if (t === null) t = new Array(count);
      t[count] = dv.getBigInt64(p, true);
      p += 8;
    }
    if (flags & 1) {
      if (p + 4 > n) throw malformed(start, "key", n);
      const len = dv.getUint32(p, true);
      p += 4;
      if (p + len > n) throw malformed(start, "key", n);
      if (k === null) k = new Array(count);
      k[count] = decoder.decode(buf.subarray(p, p + len));
      p += len;
    }
    if (p + 4 > n) throw malformed(start, "value", n);
    const len = dv.getUint32(p, true);
    buf.fill(32, start, p + 4);
    buf[start] = 44;
    pos = p + 4 + len;
    if (len === 0) throw `record at byte ${start} has an empty value, which is not JSON`;
    count++;
  }
  // Only the last record can end past the batch: every other one is followed by another.
  if (pos > n) throw `malformed batch: the last record ends inside its value (batch is ${n} bytes)`;
  buf[0] = 91; // '['
  const text = decoder.decode(buf) + "]";
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw `a record value is not valid JSON (${e.message}): ${snippet(text, e.message)}`;
  }
  if (k !== null && k.length < count) k.length = count;
  if (t !== null && t.length < count) t.length = count;
  return s === null ? { v, k, t } : { v, k, t, s };
}

// The text around the column a JSON.parse error names, so the bad value can be recognised.
function snippet(text, message) {
  const m = /column (\d+)/.exec(message);
  const at = m ? Number(m[1]) - 1 : 0;
  return JSON.stringify(text.slice(Math.max(0, at - 60), at + 60).trim());
}

/** The JSON text of a value, as the other SDKs write it (NaN and infinities become null). */
export function toJson(x) {
  switch (typeof x) {
    case "number":
      return x === x && x !== Infinity && x !== -Infinity ? "" + x : "null";
    case "string":
      return JSON.stringify(x);
    case "bigint":
      return x.toString();
    default: {
      const s = JSON.stringify(x, bigintReplacer);
      return s === undefined ? "null" : s;
    }
  }
}

function bigintReplacer(_key, value) {
  // JSON.stringify refuses BigInts; inside a larger value they become (double) numbers.
  return typeof value === "bigint" ? Number(value) : value;
}

/**
 * The JSON texts of values `v`: one native JSON.stringify of the whole array, split at its
 * commas, whenever no value's JSON holds a comma (numbers, most strings, flat values); value
 * by value otherwise.
 */
function jsonTexts(v) {
  const n = v.length;
  let all;
  try {
    all = JSON.stringify(v);
  } catch (_) {
    all = undefined; // a BigInt: toJson below handles it
  }
  if (all !== undefined) {
    const texts = all.slice(1, -1).split(",");
    if (texts.length === n) return texts;
  }
  const texts = new Array(n);
  for (let i = 0; i < n; i++) texts[i] = toJson(v[i]);
  return texts;
}

// Lengths below 128 as text: the length byte is one ASCII character, the other three 0.
// Headers with such lengths are written into the string itself and need no patching.
const LEN_TEXT = Array.from({ length: 128 }, (_, n) => String.fromCharCode(n) + "\0\0\0");
const PLAIN = LEN_TEXT.map((l) => "\0" + l);
const KEYED = LEN_TEXT.map((l) => "\x01" + l);
const STAMPED = "\x02\0\0\0\0\0\0\0\0";
const STAMPED_KEYED = "\x03\0\0\0\0\0\0\0\0";

/** Encodes a columnar batch into the framing. */
export function encodeBatch(b) {
  const n = b.v.length;
  if (n === 0) return EMPTY;
  const texts = jsonTexts(b.v);
  return encodeText(texts, b.k, b.t) || encodeBytes(texts, b.k, b.t);
}

/**
 * The fast encoder: the whole batch as one string (headers included) and one TextEncoder
 * call; timestamps are written into the bytes afterwards. Returns null when a key or value
 * is 128 bytes or longer or not ASCII, where string offsets and byte offsets part.
 */
function encodeText(texts, k, t) {
  const n = texts.length;
  let s = "";
  if (k === null && t === null) {
    for (let i = 0; i < n; i++) {
      const j = texts[i];
      s += PLAIN[j.length] + j;
    }
    // A length of 128 or more found no header ("undefined" went in instead): start over.
    if (s.length !== 5 * n + texts.join("").length) return null;
    const out = encoder.encode(s);
    return out.length === s.length ? out : null;
  }
  for (let i = 0; i < n; i++) {
    const j = texts[i];
    const lv = LEN_TEXT[j.length];
    const key = k === null ? undefined : k[i];
    if (lv === undefined) return null;
    if (t === null || t[i] === undefined) {
      if (key === undefined) {
        s += "\0" + lv + j;
      } else {
        const kh = KEYED[key.length];
        if (kh === undefined) return null;
        s += kh + key + lv + j;
      }
    } else if (key === undefined) {
      s += STAMPED + lv + j;
    } else {
      const lk = LEN_TEXT[key.length];
      if (lk === undefined) return null;
      s += STAMPED_KEYED + lk + key + lv + j;
    }
  }
  const out = encoder.encode(s);
  if (out.length !== s.length) return null;
  if (t !== null) {
    // Walk the records again for their offsets, and write the timestamps there.
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    let p = 0;
    for (let i = 0; i < n; i++) {
      const ts = t[i];
      const key = k === null ? undefined : k[i];
      if (ts !== undefined) {
        dv.setBigInt64(p + 1, typeof ts === "bigint" ? ts : BigInt(ts), true);
        p += 8;
      }
      p += key === undefined ? 5 + texts[i].length : 9 + key.length + texts[i].length;
    }
  }
  return out;
}

// The general encoder: record by record, any lengths, any text.
function encodeBytes(texts, k, t) {
  const n = texts.length;
  const parts = new Array(n);
  const keys = new Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const bytes = encoder.encode(texts[i]);
    parts[i] = bytes;
    total += 5 + bytes.length;
    if (t !== null && t[i] !== undefined) total += 8;
    if (k !== null && k[i] !== undefined) {
      keys[i] = encoder.encode(k[i]);
      total += 4 + keys[i].length;
    }
  }
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let p = 0;
  for (let i = 0; i < n; i++) {
    const ts = t === null ? undefined : t[i];
    const key = keys[i];
    out[p++] = (key !== undefined ? 1 : 0) | (ts !== undefined ? 2 : 0);
    if (ts !== undefined) {
      dv.setBigInt64(p, typeof ts === "bigint" ? ts : BigInt(ts), true);
      p += 8;
    }
    if (key !== undefined) {
      dv.setUint32(p, key.length, true);
      out.set(key, p + 4);
      p += 4 + key.length;
    }
    dv.setUint32(p, parts[i].length, true);
    out.set(parts[i], p + 4);
    p += 4 + parts[i].length;
  }
  return out;
}

export function utf8(s) {
  return encoder.encode(s);
}

export function text(bytes) {
  return decoder.decode(bytes);
}
