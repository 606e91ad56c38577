//! Event time at a source: the timestamp assigner sets each record's
//! timestamp and generates bounded-out-of-orderness watermarks, and marks its
//! output idle when its source has nothing to say.

use std::collections::BTreeMap;

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
///
/// A source that reads several splits (Kafka partitions) says which split
/// each batch is from: the largest timestamp is then kept per split, and the
/// watermark is the smallest over the splits that are not idle, so a
/// partition behind the others holds event time back and one without data
/// (for the idle timeout) does not. Other sources are one split.
pub(super) struct TimestampAssigner {
    name: String,
    spec: TimestampSpec,
    /// Per split: its largest timestamp and when it last had a batch.
    splits: BTreeMap<u32, SplitClock>,
    /// The split of the next batch.
    current: u32,
    /// Where a split's clock starts: what a restored snapshot says event time had reached.
    floor: i64,
    /// When it started, for the idle timeout of a source that never emits.
    started: i64,
    /// The watermark last generated.
    generated: i64,
    /// Progress not yet taken by the chain.
    pending: Option<Progress>,
    /// Whether the output is marked idle.
    idle: bool,
}

/// Event time of one split.
struct SplitClock {
    /// Largest timestamp seen (the assigner's floor before the first record).
    max_timestamp: i64,
    /// Wall-clock time of its last batch (only kept with an idle timeout).
    last_batch: i64,
    /// No batch for the idle timeout: left out of the watermark.
    idle: bool,
}

impl TimestampAssigner {
    pub(super) fn new(name: String, spec: TimestampSpec) -> Self {
        TimestampAssigner {
            name,
            spec,
            splits: BTreeMap::new(),
            current: 0,
            floor: i64::MIN,
            started: now_ms(),
            generated: i64::MIN,
            pending: None,
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

    fn clock(&self) -> SplitClock {
        SplitClock { max_timestamp: self.floor, last_batch: now_ms(), idle: false }
    }

    /// The smallest largest-timestamp of the splits that are not idle.
    fn event_time(&self) -> Option<i64> {
        self.splits.values().filter(|c| !c.idle).map(|c| c.max_timestamp).min()
    }

    /// Generates the watermark if event time advanced.
    fn advance(&mut self) {
        let Some(time) = self.event_time() else { return };
        let watermark = time.saturating_sub(self.spec.out_of_orderness_ms as i64).saturating_sub(1);
        if watermark > self.generated {
            self.generated = watermark;
            self.pending = Some(Progress::Watermark(watermark));
        }
    }

    /// Marks the output idle when no split has anything to say.
    fn idle_if_all_are(&mut self) {
        if !self.idle && self.splits.values().all(|c| c.idle) {
            self.idle = true;
            self.pending = Some(Progress::Idle);
        }
    }
}

impl Operator for TimestampAssigner {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        // Without a field the timestamps are the source's own, already in the records, so
        // the batch goes on as it came; a field's are written into a copy.
        let mut stamped = self.spec.field.is_some().then(|| Vec::with_capacity(batch.len() + 64));
        let mut max = i64::MIN;
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: self.name.clone(), source })?;
            let ts = self.timestamp(&record)?;
            max = max.max(ts);
            if let Some(out) = &mut stamped {
                framing::push_with_timestamp(out, &record, ts);
            }
        }
        let timed = self.spec.idle_timeout_ms.is_some();
        let fresh = !self.splits.contains_key(&self.current);
        if fresh {
            let clock = self.clock();
            self.splits.insert(self.current, clock);
        }
        let clock = self.splits.get_mut(&self.current).expect("inserted");
        clock.max_timestamp = clock.max_timestamp.max(max);
        clock.idle = false;
        if timed {
            clock.last_batch = now_ms();
        }
        self.idle = false;
        self.advance();
        Ok(stamped.unwrap_or(batch))
    }

    fn input_split(&mut self, split: u32) {
        self.current = split;
    }

    fn active_splits(&mut self, splits: &[u32]) {
        self.splits.retain(|id, _| splits.contains(id));
        for &id in splits {
            if !self.splits.contains_key(&id) {
                let clock = self.clock();
                self.splits.insert(id, clock);
            }
        }
        // A subtask that reads no split (more subtasks than partitions) holds nobody back.
        if splits.is_empty() {
            self.idle_if_all_are();
        } else {
            self.advance();
        }
    }

    fn take_progress(&mut self) -> Option<Progress> {
        self.pending.take()
    }

    fn next_timer(&self) -> Option<i64> {
        let timeout = self.spec.idle_timeout_ms? as i64;
        if self.idle {
            return None;
        }
        if self.splits.is_empty() {
            return Some(self.started.saturating_add(timeout));
        }
        self.splits.values().filter(|c| !c.idle).map(|c| c.last_batch.saturating_add(timeout)).min()
    }

    fn on_processing_time(&mut self, now_ms: i64) -> Result<Vec<u8>, TaskError> {
        let Some(timeout) = self.spec.idle_timeout_ms.map(|t| t as i64) else { return Ok(Vec::new()) };
        if self.splits.is_empty() {
            if self.next_timer().is_some_and(|due| due <= now_ms) {
                self.idle = true;
                self.pending = Some(Progress::Idle);
            }
            return Ok(Vec::new());
        }
        for clock in self.splits.values_mut().filter(|c| !c.idle) {
            clock.idle = clock.last_batch.saturating_add(timeout) <= now_ms;
        }
        // The splits left may be ahead: event time moves on without the idle ones.
        self.advance();
        self.idle_if_all_are();
        Ok(Vec::new())
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        // What event time had reached: the smallest of the splits' largest
        // timestamps (one split: its largest).
        let time = self.event_time().unwrap_or(self.floor);
        Ok(OperatorState { items: vec![time.to_le_bytes().to_vec()], ..OperatorState::default() })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        // After rescaling a subtask may get several subtasks' times: the
        // smallest makes no record late that was not late before.
        let times = state.items.iter().filter_map(|item| Some(i64::from_le_bytes(item.as_slice().try_into().ok()?)));
        self.floor = times.min().unwrap_or(i64::MIN);
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

    fn at(split: u32, a: &mut TimestampAssigner, ts: i64) {
        let mut b = Vec::new();
        framing::push(&mut b, None, b"1", Some(ts));
        a.input_split(split);
        a.process(b).unwrap();
    }

    #[test]
    fn the_watermark_is_the_slowest_split_and_idle_splits_do_not_hold_it() {
        let mut a = assigner(None, Some(100));
        a.active_splits(&[0, 1]);
        at(0, &mut a, 1000);
        assert_eq!(a.take_progress(), None, "split 1 has not said anything yet");
        at(1, &mut a, 500);
        assert_eq!(a.take_progress(), Some(Progress::Watermark(489)));
        at(0, &mut a, 2000);
        assert_eq!(a.take_progress(), None, "split 1 holds it back");
        // Split 1 goes quiet: after the idle timeout only split 0 counts.
        std::thread::sleep(std::time::Duration::from_millis(150));
        at(0, &mut a, 2100);
        a.on_processing_time(now_ms()).unwrap();
        assert_eq!(a.take_progress(), Some(Progress::Watermark(2089)));
        at(1, &mut a, 3000);
        assert_eq!(a.take_progress(), None, "split 1 is back, at 3000: split 0 is the slowest");
        // A split that ends (a bounded partition) no longer counts.
        a.active_splits(&[1]);
        assert_eq!(a.take_progress(), Some(Progress::Watermark(2989)));
        a.active_splits(&[]);
        assert_eq!(a.take_progress(), Some(Progress::Idle), "no split left");
    }

    #[test]
    fn snapshots_keep_the_slowest_splits_time() {
        let mut a = assigner(None, None);
        a.active_splits(&[0, 1]);
        at(0, &mut a, 1000);
        at(1, &mut a, 400);
        let mut b = assigner(None, None);
        b.restore(a.snapshot(1).unwrap()).unwrap();
        b.active_splits(&[0, 1]);
        at(1, &mut b, 10);
        assert_eq!(b.take_progress(), Some(Progress::Watermark(389)), "split 1's 400 holds, not split 0's 1000");
    }
}
