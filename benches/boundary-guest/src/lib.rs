//! Guest of the boundary benchmark (`cargo bench -p eddy --bench boundary`).
//!
//! Both exports run the same map, `x -> x * 3 + 1` over values that are ASCII
//! decimal `u64`s, so that the difference between them is the cost of moving
//! records across the component boundary, not of the map. Written against
//! the bindings directly, without the Eddy SDK, for the same reason: the
//! benchmark's `sdk` row measures the SDK on top of the packed encoding.

wit_bindgen::generate!({ path: "../wit", world: "boundary" });

/// Longest decimal `u64` (`18446744073709551615`).
const MAX_DIGITS: usize = 20;

struct Maps;

impl Guest for Maps {
    fn map_typed(mut batch: Vec<Rec>) -> Vec<Rec> {
        // The records already live in guest memory (the canonical ABI copied
        // each list in), so rewrite the values in place: the cheapest a typed
        // operator can be, which keeps the comparison fair to it.
        for rec in &mut batch {
            let y = map(parse(&rec.value));
            let mut digits = [0u8; MAX_DIGITS];
            let text = format(y, &mut digits);
            rec.value.clear();
            rec.value.extend_from_slice(text);
        }
        batch
    }

    fn map_packed(batch: Vec<u8>) -> Vec<u8> {
        // A value grows by at most one digit per record here (x*3+1 on values
        // of up to 19 digits), and a record is at least 5 bytes, so a quarter
        // of headroom means the output is almost never reallocated.
        let mut out = Vec::with_capacity(batch.len() + batch.len() / 4 + 64);
        let mut pos = 0;
        while pos < batch.len() {
            let flags = batch[pos];
            assert!(flags & !0b11 == 0, "unknown flag bits {flags:#04x} at byte {pos}");
            // Flags, timestamp and key are forwarded as they are: copy the
            // whole prefix up to the value length in one go.
            let mut head = 1;
            if flags & 0b10 != 0 {
                head += 8;
            }
            if flags & 0b01 != 0 {
                head += 4 + read_len(&batch, pos + head);
            }
            out.extend_from_slice(&batch[pos..pos + head]);
            pos += head;
            let len = read_len(&batch, pos);
            let value = batch.get(pos + 4..pos + 4 + len).expect("batch ends inside a value");
            pos += 4 + len;

            let mut digits = [0u8; MAX_DIGITS];
            let text = format(map(parse(value)), &mut digits);
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text);
        }
        out
    }
}

fn map(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

/// A `u32` little-endian length at `at`.
fn read_len(batch: &[u8], at: usize) -> usize {
    let bytes = batch.get(at..at + 4).expect("batch ends inside a length");
    u32::from_le_bytes(bytes.try_into().unwrap()) as usize
}

fn parse(text: &[u8]) -> u64 {
    assert!(!text.is_empty(), "empty value");
    text.iter().fold(0u64, |x, &c| {
        assert!(c.is_ascii_digit(), "value is not a decimal u64");
        x.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
    })
}

/// Writes `x` in decimal at the end of `buf` and returns the written part;
/// no allocation, no `fmt` machinery.
fn format(mut x: u64, buf: &mut [u8; MAX_DIGITS]) -> &[u8] {
    let mut at = MAX_DIGITS;
    loop {
        at -= 1;
        buf[at] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            return &buf[at..];
        }
    }
}

export!(Maps);
