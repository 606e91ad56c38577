//! The file of one task's snapshot: for each of its operators (by uid) the
//! keyed entries and items, length-prefixed, written in one sequential pass.

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::OperatorState;

const MAGIC: &[u8; 8] = b"EDDYSNP1";

/// The operators' states of one task, by operator uid.
pub type TaskState = Vec<(String, OperatorState)>;

fn put(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "state entry over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)
}

/// Writes `state` to `path` and syncs it; returns the bytes written.
pub fn write(path: &Path, state: &TaskState) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(MAGIC)?;
    w.write_all(&(state.len() as u32).to_le_bytes())?;
    let mut bytes = 12u64;
    for (uid, op) in state {
        put(&mut w, uid.as_bytes())?;
        w.write_all(&(op.keyed.len() as u64).to_le_bytes())?;
        for (k, v) in &op.keyed {
            put(&mut w, k)?;
            put(&mut w, v)?;
            bytes += 8 + (k.len() + v.len()) as u64;
        }
        w.write_all(&(op.items.len() as u64).to_le_bytes())?;
        for item in &op.items {
            put(&mut w, item)?;
            bytes += 4 + item.len() as u64;
        }
        bytes += 20 + uid.len() as u64;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(bytes)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
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
}

/// Reads a file written by [`write`].
pub fn read(path: &Path) -> io::Result<TaskState> {
    let mut data = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut data)?;
    let mut r = Reader { bytes: &data, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not an Eddy snapshot file"));
    }
    let ops = r.u32()?;
    let mut state = Vec::with_capacity(ops as usize);
    for _ in 0..ops {
        let uid = String::from_utf8(r.bytes()?).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "uid is not UTF-8"))?;
        let n = r.u64()?;
        let mut op = OperatorState::default();
        for _ in 0..n {
            let k = r.bytes()?;
            op.keyed.push((k, r.bytes()?));
        }
        let n = r.u64()?;
        for _ in 0..n {
            op.items.push(r.bytes()?);
        }
        state.push((uid, op));
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
            ("a".to_string(), OperatorState { keyed: vec![(b"\"k\"".to_vec(), b"v".to_vec())], items: vec![b"i".to_vec()] }),
            ("b".to_string(), OperatorState::default()),
        ];
        write(&path, &state).unwrap();
        assert_eq!(read(&path).unwrap(), state);
        std::fs::write(&path, b"EDDYSNP1\x01\x00").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("truncated"));
    }
}
