//! Keyed windows, run natively: tumbling, sliding and session windows on
//! event or processing time, with allowed lateness and a side output for the
//! records later than that (Flink's `WindowOperator` with its default triggers).
//!
//! A window `[start, end)` of a key fires when the watermark (event time) or
//! the wall clock (processing time) reaches `end - 1`. In event time a record
//! for a window that already fired, but not by more than the allowed lateness,
//! is added and fires the window again with the updated result; a record whose
//! windows are all past `end - 1 + lateness` is late and leaves on the side
//! output, if the vertex has one. A window's state is dropped once the
//! watermark passes `end - 1 + lateness`. Session windows merge when they
//! touch or overlap.
//!
//! The function is either a built-in aggregate, folded as records arrive, or
//! `collect`: the values are buffered and the firing emits one record per key
//! and window, `{"key":K,"start":S,"end":E,"values":[…]}`, for the Wasm
//! vertex chained after this one (the user's reduce, aggregate or process).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::operators::{fold, read_number, record_error, write_aggregate_value, Operator};
use super::{now_ms, TaskError};
use crate::checkpoint::OperatorState;
use crate::framing;
use crate::json::Number;
use crate::keys::KeyMap;
use crate::runtime::{AggregateKind, Charge, FieldRef, JobBudget, TimeDomain, WindowAssigner, WindowFunction, WindowSpec};
use crate::state::ENTRY_OVERHEAD;

/// A window `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Window {
    start: i64,
    end: i64,
}

impl Window {
    /// The last timestamp inside the window: it fires when time reaches it.
    fn max_timestamp(self) -> i64 {
        self.end - 1
    }

    /// Whether the two windows overlap or touch (session windows then merge).
    fn touches(self, other: Window) -> bool {
        self.start <= other.end && self.end >= other.start
    }
}

/// What a window holds for one key.
#[derive(Debug, Clone, PartialEq)]
enum Contents {
    /// A built-in aggregate: the first value (whose field the result replaces) and the accumulator.
    Aggregate { first: Vec<u8>, acc: Number },
    /// The JSON values so far, joined by commas: the inside of the envelope's array.
    Values(Vec<u8>),
}

/// One window of one key.
#[derive(Debug, Clone, PartialEq)]
struct Pane {
    window: Window,
    contents: Contents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// Emit the window's result (sorts first: a window fires before it is cleaned up).
    Fire,
    /// Drop the window's state.
    Cleanup,
}

/// A key as the window state shares it: its panes' map and each of its timers hold one
/// reference, so setting a timer does not copy the key.
type Key = Arc<[u8]>;

/// The timers due at one time of one kind: each key's window, in the order they were set
/// (sorted, and set twice only once, when they fire).
/// Windows that merged away leave their timers behind; a timer whose window no longer
/// exists is skipped when it fires.
type Timers = Vec<(Key, Window)>;

/// A `window` vertex.
pub(super) struct WindowOp {
    name: String,
    spec: WindowSpec,
    /// Whether late records go to a side output (else they are dropped).
    late_output: bool,
    panes: KeyMap<Key, Vec<Pane>>,
    /// Timers by time and kind. Windows share their ends (a tumbling or sliding window's
    /// is every key's; events share milliseconds), so setting one is a push onto its
    /// time's list, not an ordered insert comparing key bytes (a sixth of q5's CPU).
    timers: BTreeMap<(i64, TimerKind), Timers>,
    /// The current event time.
    watermark: i64,
    /// What the panes cost the job's keyed state quota: buffered values can
    /// grow without bound until their window fires.
    charge: Charge,
    /// The windows of the record being added, kept to spare an allocation per record.
    assigned: Vec<Window>,
}

/// What a pane is charged: its key, its contents and the maps' bookkeeping.
fn pane_bytes(key: &[u8], pane: &Pane) -> u64 {
    let contents = match &pane.contents {
        Contents::Aggregate { first, .. } => first.len(),
        Contents::Values(values) => values.len(),
    };
    (key.len() + contents) as u64 + ENTRY_OVERHEAD
}

/// Orders keys as their bytes do, comparing their first eight bytes as one integer:
/// firing sorts every key of a window, and most keys differ there.
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let head = |k: &[u8]| {
        let mut h = [0u8; 8];
        let n = k.len().min(8);
        h[..n].copy_from_slice(&k[..n]);
        u64::from_be_bytes(h)
    };
    head(a).cmp(&head(b)).then_with(|| a.cmp(b))
}

impl WindowOp {
    pub(super) fn new(name: String, spec: WindowSpec, late_output: bool, budget: Option<&std::sync::Arc<JobBudget>>) -> Self {
        let (panes, timers, charge) = (KeyMap::default(), BTreeMap::new(), Charge::new(budget));
        WindowOp { name, spec, late_output, panes, timers, watermark: i64::MIN, charge, assigned: Vec::new() }
    }

    /// Charges `bytes` more to the quota, failing the task past it.
    fn grow(&mut self, bytes: u64) -> Result<(), TaskError> {
        self.charge.resize(0, bytes).map_err(|q| record_error(&self.name, q.to_string()))
    }

    fn event_time(&self) -> bool {
        self.spec.time == TimeDomain::EventTime
    }

    fn lateness(&self) -> i64 {
        if self.event_time() {
            self.spec.allowed_lateness_ms.min(i64::MAX as u64) as i64
        } else {
            0
        }
    }

    /// Whether a window's state goes when it fires: in processing time, and in event time
    /// without allowed lateness, where its cleanup time is its firing time.
    fn done_once_fired(&self) -> bool {
        self.lateness() == 0
    }

    /// Past its cleanup time: records for it are late.
    fn is_late(&self, window: Window) -> bool {
        self.event_time() && window.max_timestamp().saturating_add(self.lateness()) <= self.watermark
    }

    /// The windows a record at `ts` belongs to (before session merging), into `all`.
    fn assign(&self, ts: i64, all: &mut Vec<Window>) {
        let window = |start: i64, size: u64| Window { start, end: start.saturating_add(size as i64) };
        all.clear();
        match self.spec.assigner {
            WindowAssigner::Tumbling(size) => all.push(window(ts - ts.rem_euclid(size as i64), size)),
            WindowAssigner::Sliding(s) => {
                let mut start = ts - ts.rem_euclid(s.slide_ms as i64);
                while start > ts.saturating_sub(s.size_ms as i64) {
                    all.push(window(start, s.size_ms));
                    start = start.saturating_sub(s.slide_ms as i64);
                }
            }
            WindowAssigner::Session(gap) => all.push(window(ts, gap)),
        }
    }

    fn number(&self, value: &[u8]) -> Result<Number, TaskError> {
        match &self.spec.function {
            WindowFunction::Aggregate(a) if a.kind == AggregateKind::Count => Ok(Number::Int(1)),
            WindowFunction::Aggregate(a) => read_number(&self.name, &a.field, value),
            WindowFunction::Collect => Ok(Number::Int(0)),
        }
    }

    /// The first value a new pane keeps: the record whose field the result replaces, or
    /// nothing for the aggregates whose result is the number alone.
    fn first_value(&self, value: &[u8]) -> Vec<u8> {
        match &self.spec.function {
            WindowFunction::Aggregate(a) if a.kind == AggregateKind::Count || matches!(a.field, FieldRef::Whole) => Vec::new(),
            _ => value.to_vec(),
        }
    }

    /// Merges `b` into `a` (session windows): `a` is the earlier window.
    fn merge_contents(&self, a: &mut Contents, b: Contents) {
        match (a, b) {
            (Contents::Aggregate { acc, .. }, Contents::Aggregate { acc: other, .. }) => {
                if let WindowFunction::Aggregate(spec) = &self.spec.function {
                    *acc = fold(spec.kind, *acc, other);
                }
            }
            (Contents::Values(values), Contents::Values(more)) => append_values(values, &more),
            _ => unreachable!("one window function per operator"),
        }
    }

    /// The shared key of `key`'s panes, which exist (or are made now, empty).
    fn shared_key(&mut self, key: &[u8]) -> Key {
        if let Some((shared, _)) = self.panes.get_key_value(key) {
            return shared.clone();
        }
        let shared: Key = key.into();
        self.panes.insert(shared.clone(), Vec::new());
        shared
    }

    /// The window `window` becomes in `key`'s panes once merged with the
    /// session windows it touches, which are merged into one pane now; none if
    /// the result is late (then nothing merged: a window that is not late
    /// would have made it not late either).
    fn merge_sessions(&mut self, key: &[u8], window: Window) -> Option<Window> {
        let Some(panes) = self.panes.get_mut(key) else {
            return (!self.is_late(window)).then_some(window);
        };
        let mut merged = window;
        for p in panes.iter().filter(|p| p.window.touches(window)) {
            merged = Window { start: merged.start.min(p.window.start), end: merged.end.max(p.window.end) };
        }
        // Moved out, not cloned: a session's buffered values grow with every record.
        let (mut touching, rest): (Vec<Pane>, Vec<Pane>) = std::mem::take(panes).into_iter().partition(|p| p.window.touches(window));
        *panes = rest;
        touching.sort_by_key(|p| p.window);
        let before: u64 = touching.iter().map(|p| pane_bytes(key, p)).sum();
        let mut parts = touching.into_iter();
        if let Some(mut first) = parts.next() {
            // A window that was already a pane has its timers (most records of a session
            // fall inside it): setting them again would only be undone when they fire.
            let known = first.window == merged || parts.as_slice().iter().any(|p| p.window == merged);
            for p in parts {
                self.merge_contents(&mut first.contents, p.contents);
            }
            first.window = merged;
            // One pane for several never costs more than they did, so this cannot fail.
            let _ = self.charge.resize(before, pane_bytes(key, &first));
            let key = self.shared_key(key);
            match known {
                true => self.panes.get_mut(&key).expect("made above").push(first),
                false => self.add_pane(&key, first, false),
            }
        }
        (!self.is_late(merged)).then_some(merged)
    }

    /// Adds a pane and the timers of its window (no firing one if it `fired` already).
    fn add_pane(&mut self, key: &Key, pane: Pane, fired: bool) {
        let window = pane.window;
        self.panes.entry(key.clone()).or_default().push(pane);
        let (event_time, lateness, done_once_fired) = (self.event_time(), self.lateness(), self.done_once_fired());
        let fire = !fired && (!event_time || window.max_timestamp() > self.watermark);
        let mut timer = |time, kind| self.timers.entry((time, kind)).or_default().push((key.clone(), window));
        if fire {
            timer(window.max_timestamp(), TimerKind::Fire);
        }
        // A window whose firing drops it needs no cleanup timer, unless it will not fire.
        if event_time && !(fire && done_once_fired) {
            timer(window.max_timestamp().saturating_add(lateness), TimerKind::Cleanup);
        }
    }

    /// Adds a record's value, whose number is `n`, to `key`'s `window`.
    fn add(&mut self, key: &[u8], window: Window, value: &[u8], n: Number) -> Result<(), TaskError> {
        let pane = self.panes.get_mut(key).and_then(|panes| panes.iter_mut().find(|p| p.window == window));
        match (pane, &self.spec.function) {
            (Some(p), WindowFunction::Aggregate(spec)) => {
                if let Contents::Aggregate { acc, .. } = &mut p.contents {
                    *acc = fold(spec.kind, *acc, n);
                }
            }
            (Some(_), WindowFunction::Collect) => {
                self.grow(value.len() as u64 + 1)?;
                let pane = self.panes.get_mut(key).and_then(|panes| panes.iter_mut().find(|p| p.window == window));
                if let Some(Pane { contents: Contents::Values(values), .. }) = pane {
                    append_values(values, value);
                }
            }
            (None, _) => {
                let contents = match &self.spec.function {
                    WindowFunction::Aggregate(_) => Contents::Aggregate { first: self.first_value(value), acc: n },
                    WindowFunction::Collect => Contents::Values(value.to_vec()),
                };
                let pane = Pane { window, contents };
                self.grow(pane_bytes(key, &pane))?;
                let key = self.shared_key(key);
                self.add_pane(&key, pane, false);
            }
        }
        Ok(())
    }

    /// Emits `key`'s result for `pane`.
    fn emit(&self, key: &[u8], pane: &Pane, out: &mut Vec<u8>) {
        let window = pane.window;
        let ts = Some(window.max_timestamp());
        match (&pane.contents, &self.spec.function) {
            (Contents::Aggregate { first, acc }, WindowFunction::Aggregate(spec)) => {
                framing::push_with(out, Some(key), ts, |out| write_aggregate_value(out, spec, key, first, *acc))
            }
            (Contents::Values(values), _) => framing::push_with(out, Some(key), ts, |buf| {
                buf.extend_from_slice(b"{\"key\":");
                buf.extend_from_slice(key);
                buf.extend_from_slice(format!(",\"start\":{},\"end\":{},\"values\":[", window.start, window.end).as_bytes());
                buf.extend_from_slice(values);
                buf.extend_from_slice(b"]}");
            }),
            _ => unreachable!("contents follow the window function"),
        }
    }

    /// Emits `key`'s result for `window`, if the window still exists.
    fn fire(&self, key: &[u8], window: Window, out: &mut Vec<u8>) {
        if let Some(pane) = self.panes.get(key).and_then(|panes| panes.iter().find(|p| p.window == window)) {
            self.emit(key, pane, out);
        }
    }

    /// Drops `key`'s `window`, first emitting its result if `fire`.
    fn remove(&mut self, key: &[u8], window: Window, fire: bool, out: &mut Vec<u8>) {
        let Some(panes) = self.panes.get_mut(key) else { return };
        let Some(at) = panes.iter().position(|p| p.window == window) else { return };
        let pane = panes.swap_remove(at);
        let empty = panes.is_empty();
        if fire {
            self.emit(key, &pane, out);
        }
        self.charge.release(pane_bytes(key, &pane));
        if empty {
            self.panes.remove(key);
        }
    }

    /// Runs the timers due at `time`, in time order (those of one time in key order).
    fn run_timers(&mut self, time: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let done_once_fired = self.done_once_fired();
        while let Some(due) = self.timers.first_entry().filter(|due| due.key().0 <= time) {
            let ((_, kind), mut due) = due.remove_entry();
            // A window may have been set a timer twice (a session record inside its
            // session's window): each fires once, in key order, as from an ordered set.
            due.sort_unstable_by(|(a, wa), (b, wb)| key_order(a, b).then(wa.cmp(wb)));
            due.dedup();
            for (key, window) in due {
                match kind {
                    TimerKind::Fire if done_once_fired => self.remove(&key, window, true, &mut out),
                    TimerKind::Fire => self.fire(&key, window, &mut out),
                    TimerKind::Cleanup => self.remove(&key, window, false, &mut out),
                }
            }
        }
        out
    }
}

fn append_values(values: &mut Vec<u8>, more: &[u8]) {
    if !values.is_empty() && !more.is_empty() {
        values.push(b',');
    }
    values.extend_from_slice(more);
}

impl Operator for WindowOp {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::new();
        let now = if self.event_time() { 0 } else { now_ms() };
        let session = matches!(self.spec.assigner, WindowAssigner::Session(_));
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: self.name.clone(), source })?;
            let key = record.key.ok_or_else(|| record_error(&self.name, "record has no key".into()))?;
            let ts = match (self.event_time(), record.timestamp) {
                (false, _) => now,
                (true, Some(ts)) => ts,
                (true, None) => {
                    return Err(record_error(&self.name, "record has no timestamp (assign timestamps at the source)".into()))
                }
            };
            let mut accepted = false;
            let n = self.number(record.value)?;
            let mut windows = std::mem::take(&mut self.assigned);
            self.assign(ts, &mut windows);
            for &window in &windows {
                let window = if session { self.merge_sessions(key, window) } else { Some(window) };
                let Some(window) = window.filter(|&w| !self.is_late(w)) else { continue };
                self.add(key, window, record.value, n)?;
                accepted = true;
                // A window that already fired takes a late record and fires again.
                if self.event_time() && window.max_timestamp() <= self.watermark {
                    self.fire(key, window, &mut out);
                }
            }
            self.assigned = windows;
            if !accepted && self.late_output {
                framing::push_flagged(&mut out, &record, true);
            }
        }
        Ok(out)
    }

    fn watermark(&mut self, watermark: i64) -> Result<Vec<u8>, TaskError> {
        if !self.event_time() || watermark <= self.watermark {
            return Ok(Vec::new());
        }
        self.watermark = watermark;
        Ok(self.run_timers(watermark))
    }

    fn next_timer(&self) -> Option<i64> {
        (!self.event_time()).then(|| self.timers.first_key_value().map(|(&(time, _), _)| time)).flatten()
    }

    fn on_processing_time(&mut self, now_ms: i64) -> Result<Vec<u8>, TaskError> {
        Ok(self.run_timers(now_ms))
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        // Event-time windows fired on the final watermark; processing-time
        // windows still open fire now rather than being lost.
        Ok(self.run_timers(i64::MAX))
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        let mut keyed = Vec::with_capacity(self.panes.len());
        for (key, panes) in &self.panes {
            let mut bytes = Vec::new();
            for p in panes {
                let fired = self.event_time() && p.window.max_timestamp() <= self.watermark;
                encode_pane(&mut bytes, p, fired);
            }
            keyed.push((key.to_vec(), bytes));
        }
        keyed.sort();
        Ok(OperatorState { keyed, ..OperatorState::default() })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        for (key, bytes) in state.keyed {
            let mut reader = Reader(&bytes);
            while !reader.0.is_empty() {
                let (pane, fired) =
                    decode_pane(&mut reader).ok_or_else(|| record_error(&self.name, "corrupt window state".into()))?;
                self.grow(pane_bytes(&key, &pane))?;
                // One that fired before the snapshot does not again, unless late records come.
                let key = self.shared_key(&key);
                self.add_pane(&key, pane, fired);
            }
        }
        Ok(())
    }
}

/// A pane in a snapshot: start, end, fired (u8), then the contents: tag 0 with
/// the first value and the accumulator (tag 0 i64 or 1 f64), or tag 1 with the values.
fn encode_pane(out: &mut Vec<u8>, pane: &Pane, fired: bool) {
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    out.extend_from_slice(&pane.window.start.to_le_bytes());
    out.extend_from_slice(&pane.window.end.to_le_bytes());
    out.push(fired as u8);
    match &pane.contents {
        Contents::Aggregate { first, acc } => {
            out.push(0);
            bytes(out, first);
            match acc {
                Number::Int(i) => {
                    out.push(0);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                Number::Float(f) => {
                    out.push(1);
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
        }
        Contents::Values(values) => {
            out.push(1);
            bytes(out, values);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, &self.0[n..]);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        Some(self.take(n)?.to_vec())
    }
}

fn decode_pane(r: &mut Reader) -> Option<(Pane, bool)> {
    let window = Window { start: r.i64()?, end: r.i64()? };
    let fired = r.u8()? != 0;
    let contents = match r.u8()? {
        0 => {
            let first = r.bytes()?;
            let acc = match r.u8()? {
                0 => Number::Int(r.i64()?),
                1 => Number::Float(f64::from_bits(r.i64()? as u64)),
                _ => return None,
            };
            Contents::Aggregate { first, acc }
        }
        1 => Contents::Values(r.bytes()?),
        _ => return None,
    };
    Some((Pane { window, contents }, fired))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Aggregate, FieldRef, SlidingWindow};

    fn spec(assigner: WindowAssigner, lateness: u64, function: WindowFunction) -> WindowSpec {
        WindowSpec { assigner, time: TimeDomain::EventTime, allowed_lateness_ms: lateness, function }
    }

    fn sum() -> WindowFunction {
        WindowFunction::Aggregate(Aggregate { kind: AggregateKind::Sum, field: FieldRef::Index(1) })
    }

    /// `(key, ts, n)` records as `[key, n]` values keyed by `key`.
    fn batch(records: &[(&str, i64, i64)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (k, ts, n) in records {
            let key = format!("\"{k}\"");
            framing::push(&mut b, Some(key.as_bytes()), format!("[{key},{n}]").as_bytes(), Some(*ts));
        }
        b
    }

    /// `value@timestamp`, with `late:` before side-output records.
    fn show(out: &[u8]) -> Vec<String> {
        framing::records(out)
            .map(|r| {
                let r = r.unwrap();
                let late = if r.side_output { "late:" } else { "" };
                format!("{late}{}@{}", String::from_utf8_lossy(r.value), r.timestamp.unwrap())
            })
            .collect()
    }

    #[test]
    fn tumbling_fires_refires_within_lateness_and_sends_later_records_aside() {
        let mut op = WindowOp::new("w".into(), spec(WindowAssigner::Tumbling(10), 5, sum()), true, None);
        assert!(op.process(batch(&[("a", 1, 1), ("a", 9, 2), ("b", 12, 7)])).unwrap().is_empty());
        assert_eq!(show(&op.watermark(9).unwrap()), ["[\"a\",3]@9"]);
        // Within lateness: fires again with the update.
        assert_eq!(show(&op.process(batch(&[("a", 3, 10)])).unwrap()), ["[\"a\",13]@9"]);
        // Watermark 14 = 9 + 5: the window is cleaned up; its records are late now.
        assert_eq!(show(&op.watermark(14).unwrap()), Vec::<String>::new());
        assert_eq!(show(&op.process(batch(&[("a", 4, 100)])).unwrap()), ["late:[\"a\",100]@4"]);
        assert_eq!(show(&op.watermark(i64::MAX).unwrap()), ["[\"b\",7]@19"]);
        assert!(op.panes.is_empty() && op.timers.is_empty());
    }

    #[test]
    fn buffered_values_count_against_the_state_quota() {
        use crate::runtime::SandboxConfig;
        let budget = JobBudget::new(SandboxConfig { state_bytes: Some(181), ..SandboxConfig::default() }, "j", None);
        let session = spec(WindowAssigner::Session(5), 0, WindowFunction::Collect);
        let mut op = WindowOp::new("w".into(), session, false, Some(&budget));
        // `"a"` and `["a",1]`: 3 + 7 bytes and the overhead, then 7 more and a comma.
        op.process(batch(&[("a", 1, 1), ("a", 4, 2)])).unwrap();
        assert_eq!(budget.state_bytes(), 10 + ENTRY_OVERHEAD + 8, "two merged sessions cost one pane");
        op.process(batch(&[("a", 20, 3)])).unwrap();
        assert_eq!(budget.state_bytes(), 2 * (10 + ENTRY_OVERHEAD) + 8);
        // 25 bytes and a comma would make it 156 + 26.
        let err = op.process(batch(&[("a", 5, 1_000_000_000_000_000_000)])).unwrap_err().to_string();
        assert!(err.contains("keyed state quota exceeded: the job keeps 181 bytes at most, and this write would make it 182"), "{err}");
        op.watermark(i64::MAX).unwrap();
        assert_eq!(budget.state_bytes(), 0, "a purged window gives its bytes back");
    }

    #[test]
    fn sliding_windows_and_collect_envelopes() {
        let sliding = WindowAssigner::Sliding(SlidingWindow { size_ms: 10, slide_ms: 5 });
        let mut op = WindowOp::new("w".into(), spec(sliding, 0, WindowFunction::Collect), false, None);
        op.process(batch(&[("a", 7, 1), ("a", 12, 2)])).unwrap();
        assert_eq!(
            show(&op.watermark(i64::MAX).unwrap()),
            [
                "{\"key\":\"a\",\"start\":0,\"end\":10,\"values\":[[\"a\",1]]}@9",
                "{\"key\":\"a\",\"start\":5,\"end\":15,\"values\":[[\"a\",1],[\"a\",2]]}@14",
                "{\"key\":\"a\",\"start\":10,\"end\":20,\"values\":[[\"a\",2]]}@19",
            ]
        );
    }

    #[test]
    fn sessions_merge() {
        let mut op = WindowOp::new("w".into(), spec(WindowAssigner::Session(5), 0, sum()), false, None);
        op.process(batch(&[("a", 0, 1), ("a", 10, 2), ("a", 20, 4)])).unwrap();
        // [5,10) touches [0,5) and [10,15): all three merge into [0,15).
        op.process(batch(&[("a", 5, 8)])).unwrap();
        assert_eq!(show(&op.watermark(i64::MAX).unwrap()), ["[\"a\",11]@14", "[\"a\",4]@24"]);
    }

    #[test]
    fn a_window_set_a_timer_twice_fires_once_in_key_order() {
        let mut op = WindowOp::new("w".into(), spec(WindowAssigner::Session(5), 0, sum()), false, None);
        // b's second record falls inside its session: the same window, its timers set again.
        op.process(batch(&[("b", 0, 1), ("a", 0, 2), ("b", 0, 4)])).unwrap();
        assert_eq!(show(&op.watermark(i64::MAX).unwrap()), ["[\"a\",2]@4", "[\"b\",5]@4"]);
        assert!(op.panes.is_empty() && op.timers.is_empty());
    }

    #[test]
    fn keys_fire_in_the_order_of_their_bytes() {
        let keys: [&[u8]; 9] =
            [b"", b"\0", b"a", b"a\0", b"abcdefgh", b"abcdefgh\0", b"abcdefghi", b"abcdefgi", b"\xff\xff\xff\xff\xff\xff\xff\xff\x01"];
        for a in keys {
            for b in keys {
                assert_eq!(key_order(a, b), a.cmp(b), "{a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn snapshot_and_restore_round_trip() {
        let mut op = WindowOp::new("w".into(), spec(WindowAssigner::Tumbling(10), 100, sum()), true, None);
        op.process(batch(&[("a", 1, 1), ("b", 2, 2), ("a", 15, 4)])).unwrap();
        op.watermark(9).unwrap();
        let state = op.snapshot(1).unwrap();
        assert_eq!(state.keyed.len(), 2);

        let mut restored = WindowOp::new("w".into(), spec(WindowAssigner::Tumbling(10), 100, sum()), true, None);
        restored.restore(state.clone()).unwrap();
        restored.watermark = op.watermark;
        assert_eq!(restored.snapshot(2).unwrap(), state);
        // The fired window [0,10) does not fire again on the next watermark; the open one does.
        for o in [&mut op, &mut restored] {
            assert_eq!(show(&o.watermark(20).unwrap()), ["[\"a\",4]@19"]);
            assert_eq!(show(&o.process(batch(&[("b", 5, 1)])).unwrap()), ["[\"b\",3]@9"]);
        }
        let collect = spec(WindowAssigner::Session(3), 0, WindowFunction::Collect);
        let mut op = WindowOp::new("w".into(), collect.clone(), false, None);
        op.process(batch(&[("a", 1, 1)])).unwrap();
        let mut restored = WindowOp::new("w".into(), collect, false, None);
        restored.restore(op.snapshot(1).unwrap()).unwrap();
        assert_eq!(restored.panes, op.panes);
    }
}
