//! The packed batch framing of `wit/README.md`.
//!
//! Records cross the component boundary as one `list<u8>` per call, so decoding walks that
//! buffer and hands out slices of it instead of copying every key and value.

/// Flag bit: the record has a key.
pub const FLAG_KEY: u8 = 0b01;
/// Flag bit: the record has a timestamp.
pub const FLAG_TIMESTAMP: u8 = 0b10;
/// Flag bit: the record came by the second input of a two-input operator (`connect`). Only
/// the host sets it, from the channel the record came on.
pub const FLAG_SECOND_INPUT: u8 = 0b1000;
/// Flag bit: the record is its operator's side output (a window's late records). Only the
/// host's window operator sets it, and the host clears it before records reach a guest, so
/// guests reject it like any unknown bit.
pub const FLAG_SIDE_OUTPUT: u8 = 0b100;

/// One record of a batch, borrowing its key and value from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The key (JSON of the `key_by` value), if the record has one.
    pub key: Option<&'a [u8]>,
    /// Event time in milliseconds, if the record has one.
    pub timestamp: Option<i64>,
    /// The value (JSON).
    pub value: &'a [u8],
}

impl<'a> Record<'a> {
    /// A record with only a value.
    pub fn value(value: &'a [u8]) -> Self {
        Record {
            key: None,
            timestamp: None,
            value,
        }
    }

    /// Bytes this record takes in a batch, to size output buffers up front.
    pub fn encoded_len(&self) -> usize {
        1 + self.timestamp.map_or(0, |_| 8)
            + self.key.map_or(0, |k| 4 + k.len())
            + 4
            + self.value.len()
    }
}

/// Appends one record to `out` in the batch framing.
#[inline]
pub fn encode(out: &mut Vec<u8>, record: &Record<'_>) {
    out.reserve(record.encoded_len());
    put_header(out, record.key, record.timestamp);
    put_bytes(out, record.value);
}

/// Flags, timestamp and key: everything of a record before its value.
#[inline]
fn put_header(out: &mut Vec<u8>, key: Option<&[u8]>, timestamp: Option<i64>) {
    let mut flags = 0u8;
    if key.is_some() {
        flags |= FLAG_KEY;
    }
    if timestamp.is_some() {
        flags |= FLAG_TIMESTAMP;
    }
    out.push(flags);
    if let Some(ts) = timestamp {
        out.extend_from_slice(&ts.to_le_bytes());
    }
    if let Some(key) = key {
        put_bytes(out, key);
    }
}

/// Appends one record whose value `write_value` appends to `out` directly (no copy).
pub fn encode_with(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    write_value: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    put_header(out, key, timestamp);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write_value(out)?;
    let len = u32::try_from(out.len() - at - 4).map_err(|_| "record value longer than 4 GiB".to_string())?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths above u32::MAX cannot be framed; the host's memory cap makes them impossible
    // in practice, and silently truncating would corrupt the batch, so fail loudly.
    let len = u32::try_from(bytes.len()).expect("record field longer than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes records into a fresh batch (convenient for tests and small outputs).
pub fn encode_all<'a>(records: impl IntoIterator<Item = Record<'a>>) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        encode(&mut out, &r);
    }
    out
}

/// Iterates the records of a batch without copying; yields `Err` once on malformed input
/// and then stops.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
    /// The input the last record came by: 0, or 1 for a two-input operator's second.
    input: u8,
}

/// Decodes a batch lazily; see [`Decoder`].
pub fn decode(batch: &[u8]) -> Decoder<'_> {
    Decoder {
        buf: batch,
        pos: 0,
        failed: false,
        input: 0,
    }
}

impl<'a> Decoder<'a> {
    #[inline]
    fn take(&mut self, n: usize, start: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!(
                "malformed batch: record at byte {start} ends inside its {what} (batch is {} bytes)",
                self.buf.len()
            )),
        }
    }

    #[inline]
    fn take_len_prefixed(&mut self, start: usize, what: &str) -> Result<&'a [u8], String> {
        let len = self.take(4, start, what)?;
        let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        self.take(n, start, what)
    }

    fn next_record(&mut self) -> Result<Record<'a>, String> {
        let start = self.pos;
        let flags = self.buf[self.pos];
        self.pos += 1;
        if flags & !(FLAG_KEY | FLAG_TIMESTAMP | FLAG_SECOND_INPUT) != 0 {
            return Err(format!(
                "malformed batch: record at byte {start} has unknown flag bits {flags:#04x}"
            ));
        }
        let timestamp = if flags & FLAG_TIMESTAMP != 0 {
            let b = self.take(8, start, "timestamp")?;
            Some(i64::from_le_bytes(b.try_into().expect("8 bytes")))
        } else {
            None
        };
        let key = if flags & FLAG_KEY != 0 {
            Some(self.take_len_prefixed(start, "key")?)
        } else {
            None
        };
        let value = self.take_len_prefixed(start, "value")?;
        self.input = u8::from(flags & FLAG_SECOND_INPUT != 0);
        Ok(Record {
            key,
            timestamp,
            value,
        })
    }
}

impl Decoder<'_> {
    /// The input the record last returned came by: 0, or 1 for the second input of a
    /// two-input operator.
    pub fn input(&self) -> u8 {
        self.input
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Result<Record<'a>, String>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_record();
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let recs = [
            Record::value(b"1"),
            Record {
                key: Some(b"\"k\""),
                timestamp: Some(-5),
                value: b"[1,2]",
            },
            Record {
                key: None,
                timestamp: Some(i64::MAX),
                value: b"",
            },
            Record {
                key: Some(b""),
                timestamp: None,
                value: b"\"x\"",
            },
        ];
        let batch = encode_all(recs);
        let back: Vec<_> = decode(&batch).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, recs);
        assert_eq!(
            batch.len(),
            recs.iter().map(Record::encoded_len).sum::<usize>()
        );
    }

    #[test]
    fn exact_bytes() {
        let batch = encode_all([Record {
            key: Some(b"k"),
            timestamp: Some(1),
            value: b"v",
        }]);
        assert_eq!(
            batch,
            [3, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']
        );
        assert_eq!(encode_all([Record::value(b"7")]), [0, 1, 0, 0, 0, b'7']);
    }

    #[test]
    fn decodes_without_copying() {
        let batch = encode_all([Record::value(b"hello")]);
        let r = decode(&batch).next().unwrap().unwrap();
        assert_eq!(r.value.as_ptr(), batch[5..].as_ptr());
    }

    #[test]
    fn empty_batch() {
        assert_eq!(decode(&[]).count(), 0);
    }

    #[test]
    fn malformed() {
        let batch = encode_all([
            Record::value(b"1"),
            Record {
                key: Some(b"kk"),
                timestamp: Some(3),
                value: b"22",
            },
        ]);
        for cut in 1..batch.len() {
            if cut == 6 {
                continue; // a record boundary: a valid, shorter batch
            }
            let r: Result<Vec<_>, _> = decode(&batch[..cut]).collect();
            assert!(r.unwrap_err().contains("malformed batch"), "cut at {cut}");
        }
        let err = decode(&[4, 0, 0, 0, 0]).next().unwrap().unwrap_err();
        assert!(err.contains("unknown flag bits"), "{err}");
        // Huge length must not overflow or panic.
        let err = decode(&[0, 255, 255, 255, 255])
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.contains("ends inside its value"), "{err}");
        // After an error the iterator stops.
        let mut d = decode(&[4]);
        assert!(d.next().unwrap().is_err());
        assert!(d.next().is_none());
    }
}
