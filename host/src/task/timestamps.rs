//! Event time at a source: the timestamp assigner sets each record's
//! timestamp and generates bounded-out-of-orderness watermarks, and marks its
//! output idle when its source has nothing to say.

use super::operators::{read_number, record_error, Operator, Progress};
use super::{now_ms, TaskError};
use crate::checkpoint::OperatorState;
use crate::framing;
use crate::json::Number;
use crate::runtime::TimestampSpec;

/// A `timestamps` vertex, chained to its source.
///
/// The watermark, `max timestamp - out-of-orderness - 1`, is generated after
/// every batch that advances it. Sources batch at most 64 KiB, so this costs a
/// comparison per record and at most one watermark per batch; Flink's 200 ms
/// auto-watermark interval would only delay it. Idleness is the one thing
/// that needs the clock: `next_timer` asks for a call when the idle timeout
/// would pass.
pub(super) struct TimestampAssigner {
    name: String,
    spec: TimestampSpec,
    /// Largest timestamp seen (`i64::MIN` before the first record).
    max_timestamp: i64,
    /// The watermark last generated.
    generated: i64,
    /// Progress not yet taken by the chain.
    pending: Option<Progress>,
    /// Wall-clock time of the last batch, for the idle timeout.
    last_batch: i64,
    /// Whether the output is marked idle.
    idle: bool,
}

impl TimestampAssigner {
    pub(super) fn new(name: String, spec: TimestampSpec) -> Self {
        TimestampAssigner {
            name,
            spec,
            max_timestamp: i64::MIN,
            generated: i64::MIN,
            pending: None,
            last_batch: now_ms(),
            idle: false,
        }
    }

    fn timestamp(&self, record: &framing::Record) -> Result<i64, TaskError> {
        match &self.spec.field {
            None => record.timestamp.ok_or_else(|| record_error(&self.name, "record has no timestamp".into())),
            Some(field) => match read_number(&self.name, field, record.value)? {
                Number::Int(ms) => Ok(ms),
                Number::Float(ms) => Ok(ms as i64),
            },
        }
    }
}

impl Operator for TimestampAssigner {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::with_capacity(batch.len() + 64);
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: self.name.clone(), source })?;
            let ts = self.timestamp(&record)?;
            self.max_timestamp = self.max_timestamp.max(ts);
            framing::push_with_timestamp(&mut out, &record, ts);
        }
        if self.spec.idle_timeout_ms.is_some() {
            self.last_batch = now_ms();
        }
        self.idle = false;
        let watermark = self.max_timestamp.saturating_sub(self.spec.out_of_orderness_ms as i64).saturating_sub(1);
        if watermark > self.generated {
            self.generated = watermark;
            self.pending = Some(Progress::Watermark(watermark));
        }
        Ok(out)
    }

    fn take_progress(&mut self) -> Option<Progress> {
        self.pending.take()
    }

    fn next_timer(&self) -> Option<i64> {
        let timeout = self.spec.idle_timeout_ms?;
        (!self.idle).then(|| self.last_batch.saturating_add(timeout as i64))
    }

    fn on_processing_time(&mut self, now_ms: i64) -> Result<Vec<u8>, TaskError> {
        if self.next_timer().is_some_and(|due| due <= now_ms) {
            self.idle = true;
            self.pending = Some(Progress::Idle);
        }
        Ok(Vec::new())
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState { keyed: Vec::new(), items: vec![self.max_timestamp.to_le_bytes().to_vec()] })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        // After rescaling a subtask may get several subtasks' maxima: the
        // smallest makes no record late that was not late before.
        let maxima = state.items.iter().filter_map(|item| Some(i64::from_le_bytes(item.as_slice().try_into().ok()?)));
        self.max_timestamp = maxima.min().unwrap_or(i64::MIN);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FieldRef;

    fn assigner(field: Option<FieldRef>, idle: Option<u64>) -> TimestampAssigner {
        let spec = TimestampSpec { field, out_of_orderness_ms: 10, idle_timeout_ms: idle };
        TimestampAssigner::new("ts".into(), spec)
    }

    fn batch(values: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in values {
            framing::push(&mut b, None, v.as_bytes(), None);
        }
        b
    }

    #[test]
    fn sets_timestamps_and_generates_watermarks_when_they_advance() {
        let mut a = assigner(Some(FieldRef::Index(1)), None);
        let out = a.process(batch(&["[\"a\",100]", "[\"b\",50]"])).unwrap();
        let ts: Vec<_> = framing::records(&out).map(|r| r.unwrap().timestamp).collect();
        assert_eq!(ts, [Some(100), Some(50)]);
        assert_eq!(a.take_progress(), Some(Progress::Watermark(89)));
        assert_eq!(a.take_progress(), None);
        a.process(batch(&["[\"c\",60]"])).unwrap();
        assert_eq!(a.take_progress(), None, "an older record does not move the watermark");
        let err = a.process(batch(&["[\"d\"]"])).unwrap_err();
        assert_eq!(err.to_string(), "operator 'ts': value [\"d\"] has no element 1");
    }

    #[test]
    fn keeps_framing_timestamps_and_goes_idle() {
        let mut a = assigner(None, Some(100));
        let mut b = Vec::new();
        framing::push(&mut b, None, b"1", Some(40));
        a.process(b).unwrap();
        assert_eq!(a.take_progress(), Some(Progress::Watermark(29)));
        let due = a.next_timer().unwrap();
        a.on_processing_time(due - 1).unwrap();
        assert_eq!(a.take_progress(), None);
        a.on_processing_time(due).unwrap();
        assert_eq!(a.take_progress(), Some(Progress::Idle));
        assert_eq!(a.next_timer(), None, "idle until the next record");
        let err = a.process(batch(&["2"])).unwrap_err();
        assert_eq!(err.to_string(), "operator 'ts': record has no timestamp");
    }

    #[test]
    fn snapshot_keeps_the_largest_timestamp() {
        let mut a = assigner(Some(FieldRef::Whole), None);
        a.process(batch(&["500"])).unwrap();
        let state = a.snapshot(1).unwrap();
        let mut b = assigner(Some(FieldRef::Whole), None);
        b.restore(state).unwrap();
        b.process(batch(&["10"])).unwrap();
        assert_eq!(b.take_progress(), Some(Progress::Watermark(489)));
    }
}
