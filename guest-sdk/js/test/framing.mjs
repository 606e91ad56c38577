// A straightforward reference implementation of the batch framing (wit/README.md), to check
// the SDK's optimised one against.
const te = new TextEncoder();
const td = new TextDecoder();

/** Records `{ value: jsonText, key?: jsonText, ts?: number }` to a batch. */
export function frame(records) {
  const bytes = [];
  const u32 = (n) => bytes.push(n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24);
  for (const r of records) {
    bytes.push((r.key !== undefined ? 1 : 0) | (r.ts !== undefined ? 2 : 0) | (r.second ? 8 : 0));
    if (r.ts !== undefined) {
      const dv = new DataView(new ArrayBuffer(8));
      dv.setBigInt64(0, BigInt(r.ts), true);
      bytes.push(...new Uint8Array(dv.buffer));
    }
    if (r.key !== undefined) {
      const k = te.encode(r.key);
      u32(k.length);
      bytes.push(...k);
    }
    const v = te.encode(r.value);
    u32(v.length);
    bytes.push(...v);
  }
  return new Uint8Array(bytes);
}

/** A batch back to records `{ value, key?, ts? }` (JSON text, ts as Number). */
export function unframe(batch) {
  const dv = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const out = [];
  let p = 0;
  while (p < batch.length) {
    const flags = batch[p++];
    const r = {};
    if (flags & 2) {
      r.ts = Number(dv.getBigInt64(p, true));
      p += 8;
    }
    if (flags & 1) {
      const n = dv.getUint32(p, true);
      r.key = td.decode(batch.subarray(p + 4, p + 4 + n));
      p += 4 + n;
    }
    const n = dv.getUint32(p, true);
    r.value = td.decode(batch.subarray(p + 4, p + 4 + n));
    p += 4 + n;
    out.push(r);
  }
  return out;
}
