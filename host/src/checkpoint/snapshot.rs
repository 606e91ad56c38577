//! The file of one task's snapshot: for each of its operators (by uid) the
//! keyed entries and items, length-prefixed, written in one sequential pass,
//! then a CRC-32 of everything before it. A file that is cut short or changed
//! is refused with why; no length it claims is allocated before its bytes are there.
//!
//! Format 3 (`EDDYSNP3`): magic, `u32` operator count, per operator the uid,
//! `u64` keyed count, the `(key, value)` pairs, `u64` item count, the items,
//! `u64` broadcast count, the broadcast `(key, value)` pairs (each part
//! length-prefixed with a `u32`), and the `u32` CRC-32 (all little-endian).
//! Format 2 (`EDDYSNP2`: no broadcast section) and 1 (neither that nor a
//! checksum) are still read.

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::OperatorState;

const MAGIC_V1: &[u8; 8] = b"EDDYSNP1";
const MAGIC_V2: &[u8; 8] = b"EDDYSNP2";
const MAGIC: &[u8; 8] = b"EDDYSNP3";

/// The operators' states of one task, by operator uid.
pub type TaskState = Vec<(String, OperatorState)>;

/// A writer that keeps the CRC-32 of what went through it.
struct Summed<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "state entry over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)
}

/// Writes a count and the pairs; answers the bytes written.
fn put_pairs(w: &mut impl Write, pairs: &[(Vec<u8>, Vec<u8>)]) -> io::Result<u64> {
    w.write_all(&(pairs.len() as u64).to_le_bytes())?;
    for (k, v) in pairs {
        put(w, k)?;
        put(w, v)?;
    }
    Ok(8 + pairs.iter().map(|(k, v)| 8 + (k.len() + v.len()) as u64).sum::<u64>())
}

/// Writes `state` to `path` and syncs it; returns the bytes of state written.
pub fn write(path: &Path, state: &TaskState) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let (w, bytes) = encode_to(BufWriter::with_capacity(1 << 20, file), state)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(bytes)
}

/// The bytes of a snapshot file of `state` (for an object store), and the bytes of state in it.
pub fn encode(state: &TaskState) -> io::Result<(Vec<u8>, u64)> {
    encode_to(Vec::new(), state)
}

/// Writes a snapshot file of `state` to `w`; answers `w` and the bytes of state written.
fn encode_to<W: Write>(w: W, state: &TaskState) -> io::Result<(W, u64)> {
    let mut w = Summed { inner: w, crc: crc32fast::Hasher::new() };
    w.write_all(MAGIC)?;
    w.write_all(&(state.len() as u32).to_le_bytes())?;
    let mut bytes = 16u64;
    for (uid, op) in state {
        put(&mut w, uid.as_bytes())?;
        bytes += put_pairs(&mut w, &op.keyed)?;
        w.write_all(&(op.items.len() as u64).to_le_bytes())?;
        for item in &op.items {
            put(&mut w, item)?;
            bytes += 4 + item.len() as u64;
        }
        bytes += put_pairs(&mut w, &op.broadcast)?;
        bytes += 12 + uid.len() as u64;
    }
    let crc = w.crc.finalize();
    let mut w = w.inner;
    w.write_all(&crc.to_le_bytes())?;
    Ok((w, bytes))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "snapshot file is truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A count and that many `(key, value)` pairs.
    fn pairs(&mut self) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let n = self.u64()?;
        let n = self.count(n, 8)?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.bytes()?;
            pairs.push((k, self.bytes()?));
        }
        Ok(pairs)
    }
    /// A count of entries of at least `min` bytes each, no more than the bytes left could hold.
    fn count(&mut self, claimed: u64, min: usize) -> io::Result<usize> {
        let left = (self.bytes.len() - self.pos) / min;
        usize::try_from(claimed).ok().filter(|&n| n <= left).ok_or_else(|| invalid("snapshot file is truncated (it claims more entries than it holds)"))
    }
}

/// Reads a file written by [`write`].
pub fn read(path: &Path) -> io::Result<TaskState> {
    let mut data = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut data)?;
    decode(&data)
}

/// Decodes the bytes of a snapshot file.
pub fn decode(data: &[u8]) -> io::Result<TaskState> {
    let magic = data.get(..8);
    let has_broadcast = magic == Some(&MAGIC[..]);
    let body = match magic {
        Some(m) if m == MAGIC || m == MAGIC_V2 => {
            let split = data.len().checked_sub(4).filter(|&n| n >= 12).ok_or_else(|| invalid("snapshot file is truncated"))?;
            let (body, sum) = data.split_at(split);
            if crc32fast::hash(body).to_le_bytes() != sum {
                return Err(invalid("snapshot file is corrupt or truncated (checksum mismatch)"));
            }
            body
        }
        Some(m) if m == MAGIC_V1 => data,
        _ => return Err(invalid("not an Eddy snapshot file")),
    };
    let mut r = Reader { bytes: body, pos: 8 };
    let ops = r.u32()?;
    let ops = r.count(ops.into(), 20)?;
    let mut state = Vec::with_capacity(ops);
    for _ in 0..ops {
        let uid = String::from_utf8(r.bytes()?).map_err(|_| invalid("uid is not UTF-8"))?;
        let mut op = OperatorState { keyed: r.pairs()?, ..OperatorState::default() };
        let n = r.u64()?;
        let n = r.count(n, 4)?;
        op.items.reserve(n);
        for _ in 0..n {
            op.items.push(r.bytes()?);
        }
        if has_broadcast {
            op.broadcast = r.pairs()?;
        }
        state.push((uid, op));
    }
    if r.pos != body.len() {
        return Err(invalid("snapshot file has bytes after its last operator"));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let state = vec![
            ("a".to_string(), OperatorState { keyed: vec![(b"\"k\"".to_vec(), b"v".to_vec())], items: vec![b"i".to_vec()], broadcast: vec![(b"".to_vec(), b"r".to_vec())] }),
            ("b".to_string(), OperatorState::default()),
        ];
        write(&path, &state).unwrap();
        assert_eq!(read(&path).unwrap(), state);
        std::fs::write(&path, b"EDDYSNP1\x01\x00").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn a_cut_or_changed_file_is_refused_and_claimed_counts_are_not_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let state = vec![("a".to_string(), OperatorState { keyed: vec![(b"k".to_vec(), b"v".to_vec())], items: vec![b"i".to_vec()], ..OperatorState::default() })];
        write(&path, &state).unwrap();
        let good = std::fs::read(&path).unwrap();
        for cut in [good.len() - 1, good.len() / 2, 9] {
            let err = decode(&good[..cut]).unwrap_err().to_string();
            assert!(err.contains("truncated") || err.contains("corrupt"), "{cut}: {err}");
        }
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped).unwrap_err().to_string().contains("checksum mismatch"));
        // A version-1 file (no checksum) claiming 4 G operators of 2^64 entries.
        let mut v1 = b"EDDYSNP1".to_vec();
        v1.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&v1).unwrap_err().to_string().contains("claims more entries"));
    }
}
