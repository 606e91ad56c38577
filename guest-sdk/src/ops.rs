//! Type-erased operators and their fusion into a chain.
//!
//! The builder turns each typed user function into a `Box<dyn Operator>` over JSON bytes, so
//! the registry can hold operators of any types and `open` can fuse any selection of them.

use crate::frame::{self, Record};

/// Receives the records an operator emits.
pub(crate) trait Emit {
    fn emit(&mut self, record: Record<'_>) -> Result<(), String>;
}

/// One registry entry: a user function over records.
pub(crate) trait Operator {
    fn process(&mut self, record: Record<'_>, out: &mut dyn Emit) -> Result<(), String>;

    /// Event time advanced; operators without timers have nothing to emit.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut dyn Emit) -> Result<(), String> {
        Ok(())
    }

    /// The input ended; operators that buffer would flush here.
    fn close(&mut self, _out: &mut dyn Emit) -> Result<(), String> {
        Ok(())
    }
}

/// An operator made of a closure, which is all the current builder needs.
pub(crate) struct FnOp<F>(pub F);

impl<F> Operator for FnOp<F>
where
    F: FnMut(Record<'_>, &mut dyn Emit) -> Result<(), String>,
{
    #[inline]
    fn process(&mut self, record: Record<'_>, out: &mut dyn Emit) -> Result<(), String> {
        (self.0)(record, out)
    }
}

/// The rest of a fused chain: emitting into it runs the next operator directly (no batch in
/// between); past the last operator records are framed into the output batch.
pub(crate) struct Chain<'a> {
    pub rest: &'a mut [Box<dyn Operator>],
    pub out: &'a mut Vec<u8>,
}

impl Emit for Chain<'_> {
    #[inline]
    fn emit(&mut self, record: Record<'_>) -> Result<(), String> {
        match self.rest.split_first_mut() {
            None => {
                frame::encode(self.out, &record);
                Ok(())
            }
            Some((op, rest)) => op.process(
                record,
                &mut Chain {
                    rest,
                    out: self.out,
                },
            ),
        }
    }
}

/// Runs every record of `input` through the chain `ops`, appending emissions to `out`.
pub(crate) fn run_batch(
    ops: &mut [Box<dyn Operator>],
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    for record in frame::decode(input) {
        Chain { rest: ops, out }.emit(record?)?;
    }
    Ok(())
}

/// Gives each operator, first to last, its watermark hook; emissions flow downstream.
pub(crate) fn run_watermark(
    ops: &mut [Box<dyn Operator>],
    watermark: i64,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    for i in 0..ops.len() {
        let (head, rest) = ops[i..].split_first_mut().expect("non-empty");
        head.on_watermark(watermark, &mut Chain { rest, out })?;
    }
    Ok(())
}

/// Closes each operator, first to last, so an upstream flush still reaches the ones after it.
pub(crate) fn run_close(ops: &mut [Box<dyn Operator>], out: &mut Vec<u8>) -> Result<(), String> {
    for i in 0..ops.len() {
        let (head, rest) = ops[i..].split_first_mut().expect("non-empty");
        head.close(&mut Chain { rest, out })?;
    }
    Ok(())
}

/// Decodes a JSON value, naming the expected type in the error so a type mismatch between
/// vertices is diagnosable from the host's log.
#[inline]
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "cannot decode {} from {:?}: {e}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    })
}

/// Encodes a JSON value into `buf` (cleared first), reusing its allocation.
#[inline]
pub(crate) fn encode_json<T: serde::Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), String> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value)
        .map_err(|e| format!("cannot encode {} as JSON: {e}", std::any::type_name::<T>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(n: i64) -> Box<dyn Operator> {
        let mut buf = Vec::new();
        Box::new(FnOp(move |r: Record<'_>, out: &mut dyn Emit| {
            let v: i64 = decode_json(r.value)?;
            encode_json(&mut buf, &(v + n))?;
            out.emit(Record { value: &buf, ..r })
        }))
    }

    fn dup() -> Box<dyn Operator> {
        Box::new(FnOp(|r: Record<'_>, out: &mut dyn Emit| {
            out.emit(r)?;
            out.emit(r)
        }))
    }

    #[test]
    fn fuses_in_order() {
        let mut ops = vec![add(1), dup(), add(10)];
        let input = frame::encode_all([Record {
            key: Some(b"\"k\""),
            timestamp: Some(9),
            value: b"1",
        }]);
        let mut out = Vec::new();
        run_batch(&mut ops, &input, &mut out).unwrap();
        let recs: Vec<_> = frame::decode(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        for r in recs {
            assert_eq!(
                r,
                Record {
                    key: Some(b"\"k\""),
                    timestamp: Some(9),
                    value: b"12"
                }
            );
        }
    }

    #[test]
    fn errors_propagate() {
        let mut ops = vec![add(1)];
        let input = frame::encode_all([Record::value(b"\"x\"")]);
        let e = run_batch(&mut ops, &input, &mut Vec::new()).unwrap_err();
        assert!(e.starts_with("cannot decode i64"), "{e}");
        let e = run_batch(&mut ops, &[9], &mut Vec::new()).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }
}
