//! The Nexmark source: the benchmark's auction events (persons, auctions, bids), made in
//! the host by the rules of the `nexmark` crate, RisingWave's port of the reference (Beam)
//! generator (`generator.rs`).
//!
//! That generator seeds event `n` with `n` alone, so a subtask needs no state to make
//! any event: subtask `i` of `p` makes events `i, i + p, i + 2p, …` (every subtask's
//! events keep step with event time, as the reference's parallel generators do), and
//! its position is the next event number of each split it reads.
//!
//! Values are the JSON objects of the shared JSON-lines files the Flink SQL queries read
//! (`../shared/bench/nexmark_gen.py`), so a query reads either alike: see wit/README.md.

mod file;
mod generator;

pub use file::EventTimes;

use std::io::Write;

use nexmark::config::NexmarkConfig;

use generator::Generator;

use super::sources::{decode_splits, encode_splits, Pacer, Source};
use super::{batch_buffer, SOURCE_BATCH_BYTES};
use crate::framing;
use crate::json;
use crate::msgpack;
use crate::runtime::{NexmarkSource, ValueCodec};
use crate::task::{SourceContext, TaskError};

/// Event time of event 0: 2026-01-01T00:00:00Z, as in the shared event files.
pub const BASE_TIME_MS: u64 = 1_767_225_600_000;

/// The fastest event-time rate accepted (events per second of event time): past it
/// the reference generator's arithmetic (f32 microseconds per event) says nothing.
pub const MAX_EVENT_RATE: u64 = 1_000_000_000;

/// Events per second of event time when a job does not say (the SDKs' default too).
pub const DEFAULT_EVENT_RATE: u64 = 10_000_000;

/// How far the watermarks of Nexmark events stay behind the largest event time: the
/// reference generator's out-of-orderness (as the SDKs' `read_nexmark` assigns them).
pub const OUT_OF_ORDERNESS_MS: u64 = 4000;

/// Events a batch holds at most, so that a rate-limited source keeps an even pace.
const MAX_BATCH_EVENTS: u64 = 4096;

/// Every `step`-th event number from `next` up to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Split {
    next: u64,
    end: u64,
    step: u64,
}

/// The generator's settings for a source: the reference's, but a fixed start time (so a
/// replay makes the same events) and the upper-case states of the queries' SQL.
pub fn config(event_rate: u64) -> NexmarkConfig {
    let rate = event_rate.clamp(1, MAX_EVENT_RATE) as usize;
    NexmarkConfig {
        base_time: BASE_TIME_MS,
        first_rate: rate,
        next_rate: rate,
        us_states: ["AZ", "CA", "ID", "OR", "WA", "WY"].map(String::from).to_vec(),
        ..NexmarkConfig::default()
    }
}

/// The source of one subtask.
pub struct NexmarkReader {
    generator: Generator,
    /// What is left to make; after a restore at a lower parallelism, several.
    splits: Vec<Split>,
    /// Events per second of this subtask, if limited.
    rate: Option<u64>,
    dates: DateCache,
    /// What values are made in: the job graph's codec.
    codec: ValueCodec,
}

impl NexmarkReader {
    /// Makes up to `per_batch` events into `batch`, until it is full; returns how many.
    fn fill(&mut self, batch: &mut Vec<u8>, per_batch: u64) -> u64 {
        let mut records = 0;
        while records < per_batch && batch.len() < SOURCE_BATCH_BYTES {
            // The split furthest behind goes first (the first of equals), so event time
            // advances evenly; it goes on until another is further behind. Its place is
            // kept in a local meanwhile: the splits are a few bytes on the heap, likely on
            // the cache line of another subtask's, and a write per event to them cost a
            // fifth of the generator's CPU at p=2 as the line went back and forth.
            let Some((s, others)) = self.furthest_behind() else { break };
            let Split { next, end, step } = self.splits[s];
            let mut n = next;
            while (n, s) < others && n < end && records < per_batch && batch.len() < SOURCE_BATCH_BYTES {
                push_event(batch, &mut self.generator, n, &mut self.dates, self.codec);
                records += 1;
                n = n.saturating_add(step);
            }
            self.splits[s].next = n;
            if n >= end {
                self.splits.remove(s);
            }
        }
        records
    }

    /// The split whose next event comes first (the first of equals), and the place of the
    /// next after it (`u64::MAX` past the last): the order in which events are made.
    fn furthest_behind(&self) -> Option<(usize, (u64, usize))> {
        let s = (0..self.splits.len()).min_by_key(|&s| self.splits[s].next)?;
        let others = (0..self.splits.len()).filter(|&t| t != s).map(|t| (self.splits[t].next, t)).min();
        Some((s, others.unwrap_or((u64::MAX, usize::MAX))))
    }

    /// Subtask `subtask` of `parallelism`.
    pub fn new(spec: &NexmarkSource, subtask: u32, parallelism: u32, codec: ValueCodec) -> Self {
        let (i, p) = (u64::from(subtask), u64::from(parallelism));
        let splits = if i < spec.events { vec![Split { next: i, end: spec.events, step: p }] } else { Vec::new() };
        let rate = spec.per_second.map(|r| (r / p).max(1));
        NexmarkReader { generator: Generator::new(config(spec.event_rate)), splits, rate, dates: DateCache::default(), codec }
    }
}

impl Source for NexmarkReader {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let per_batch = self.rate.map_or(MAX_BATCH_EVENTS, |r| (r / 20).clamp(1, MAX_BATCH_EVENTS));
        let mut pacer = Pacer::new(self.rate);
        let mut batch = batch_buffer();
        while !self.splits.is_empty() {
            let records = self.fill(&mut batch, per_batch);
            ctx.emit(std::mem::replace(&mut batch, batch_buffer()), records)?;
            if !ctx.checkpoint(|| encode_splits(&self.splits))? || ctx.should_stop() {
                break;
            }
            if !pacer.wait(records, ctx, || encode_splits(&self.splits))? {
                break;
            }
        }
        Ok(())
    }

    fn restore(&mut self, splits: Vec<Vec<u8>>) -> Result<(), String> {
        let splits: Vec<Split> = decode_splits(splits)?;
        if splits.iter().any(|s| s.step == 0) {
            return Err("corrupt source position in the checkpoint: a Nexmark split of step 0".into());
        }
        self.splits = splits.into_iter().filter(|s| s.next < s.end).collect();
        Ok(())
    }
}

/// Appends event `n` as a record: its value, and its event time as the timestamp.
fn push_event(batch: &mut Vec<u8>, generator: &mut Generator, n: u64, dates: &mut DateCache, codec: ValueCodec) {
    let time = generator.timestamp(n);
    framing::push_with(batch, None, Some(time as i64), |out| match codec {
        ValueCodec::Json | ValueCodec::PythonMarshal => generator.write(n, time, &mut Json(out), dates),
        ValueCodec::Msgpack => {
            msgpack::write::begin(out);
            generator.write(n, time, &mut Msgpack(out), dates)
        }
    });
}

/// What an event is written with: one object of named fields at a time.
trait Encoding {
    /// An object of `fields` members starts.
    fn object(&mut self, fields: u32);
    /// Member `name` follows.
    fn key(&mut self, name: &str);
    fn str(&mut self, text: &str);
    fn int(&mut self, n: usize);
    /// Times are text, `yyyy-MM-dd HH:mm:ss.SSS`, in either encoding, so that a value
    /// reads the same whichever it came in.
    fn date(&mut self, ms: u64, dates: &mut DateCache);
    fn null(&mut self);
    /// The object ends.
    fn end(&mut self);
}

/// The JSON objects of the shared event files.
struct Json<'a>(&'a mut Vec<u8>);

impl Encoding for Json<'_> {
    fn object(&mut self, _fields: u32) {
        self.0.push(b'{');
    }
    fn key(&mut self, name: &str) {
        if self.0.last() != Some(&b'{') {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
    }
    fn str(&mut self, text: &str) {
        json::write_str(self.0, text);
    }
    fn int(&mut self, n: usize) {
        self.0.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
    fn date(&mut self, ms: u64, dates: &mut DateCache) {
        self.0.push(b'"');
        dates.write(self.0, ms);
        self.0.push(b'"');
    }
    fn null(&mut self) {
        self.0.extend_from_slice(b"null");
    }
    fn end(&mut self) {
        self.0.push(b'}');
    }
}

/// The same objects in MessagePack (after the value's marker).
struct Msgpack<'a>(&'a mut Vec<u8>);

impl Encoding for Msgpack<'_> {
    fn object(&mut self, fields: u32) {
        msgpack::write::map(self.0, fields);
    }
    fn key(&mut self, name: &str) {
        msgpack::write::str(self.0, name);
    }
    fn str(&mut self, text: &str) {
        msgpack::write::str(self.0, text);
    }
    fn int(&mut self, n: usize) {
        msgpack::write::int(self.0, n as i64);
    }
    fn date(&mut self, ms: u64, dates: &mut DateCache) {
        // A fixstr (at most 31 bytes) whose length byte is set once the text is written.
        let at = self.0.len();
        self.0.push(0xa0);
        dates.write(self.0, ms);
        let len = self.0.len() - at - 1;
        debug_assert!(len < 32, "a date is 23 bytes");
        self.0[at] |= len as u8;
    }
    fn null(&mut self) {
        msgpack::write::nil(self.0);
    }
    fn end(&mut self) {}
}

/// Formats epoch milliseconds as `yyyy-MM-dd HH:mm:ss.SSS` (UTC), Flink's JSON form of a
/// `TIMESTAMP(3)`; consecutive events share their second, so its text is kept.
#[derive(Default)]
pub struct DateCache {
    second: Option<u64>,
    /// `yyyy-MM-dd HH:mm:ss.` of `second`.
    text: Vec<u8>,
}

impl DateCache {
    fn write(&mut self, out: &mut Vec<u8>, ms: u64) {
        let second = ms / 1000;
        if self.second != Some(second) {
            self.text.clear();
            let days = (second / 86_400) as i64;
            let (y, m, d) = civil_from_days(days);
            let s = second % 86_400;
            let _ = write!(self.text, "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.", s / 3600, s / 60 % 60, s % 60);
            self.second = Some(second);
        }
        out.extend_from_slice(&self.text);
        let milli = (ms % 1000) as u16;
        out.extend_from_slice(&[b'0' + (milli / 100) as u8, b'0' + (milli / 10 % 10) as u8, b'0' + (milli % 10) as u8]);
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_with_milliseconds() {
        let mut dates = DateCache::default();
        let mut out = Vec::new();
        dates.write(&mut out, BASE_TIME_MS);
        out.push(b'|');
        dates.write(&mut out, BASE_TIME_MS + 59 * 86_400_000 + 3_723_045);
        out.push(b'|');
        // 2028 is a leap year: 29 February exists.
        dates.write(&mut out, 1_835_481_599_999);
        assert_eq!(String::from_utf8(out).unwrap(), "2026-01-01 00:00:00.000|2026-03-01 01:02:03.045|2028-02-29 23:59:59.999");
    }

    #[test]
    fn fifty_events_hold_one_person_three_auctions_and_forty_six_bids() {
        let generator = Generator::new(config(10_000));
        let mut kinds = [0; 3];
        for n in 0..5000 {
            kinds[generator.kind(n) as usize] += 1;
        }
        assert_eq!(kinds, [100, 300, 4600]);
        // 10 000 events per second of event time: event 4999 is 499.9 ms after the start.
        assert_eq!(generator.timestamp(0), BASE_TIME_MS);
        assert_eq!(generator.timestamp(4999), BASE_TIME_MS + 500);
    }

    #[test]
    fn splits_make_every_event_once_in_any_parallelism() {
        let spec = NexmarkSource { events: 1000, per_second: None, event_rate: 1000 };
        for p in [1u32, 2, 3, 7] {
            let mut seen = vec![0; 1000];
            for i in 0..p {
                let reader = NexmarkReader::new(&spec, i, p, ValueCodec::Json);
                for split in &reader.splits {
                    for n in (split.next..split.end).step_by(split.step as usize) {
                        seen[n as usize] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&times| times == 1), "p={p}: {seen:?}");
        }
    }

    #[test]
    fn events_are_json_objects_of_the_shared_file_format() {
        let mut generator = Generator::new(config(10_000_000));
        let mut dates = DateCache::default();
        for n in 0..50 {
            let mut out = Vec::new();
            generator.write(n, generator.timestamp(n), &mut Json(&mut out), &mut dates);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let mut packed = Vec::new();
            msgpack::write::begin(&mut packed);
            generator.write(n, generator.timestamp(n), &mut Msgpack(&mut packed), &mut dates);
            let mut again = Vec::new();
            msgpack::to_json(&packed, &mut again).unwrap();
            assert_eq!(again, out, "the MessagePack event is the JSON one");
            let kind = v["event_type"].as_u64().unwrap();
            let body = ["person", "auction", "bid"][kind as usize];
            assert!(v[body].is_object(), "{v}");
            assert_eq!(v[body]["dateTime"], "2026-01-01 00:00:00.000");
            for other in ["person", "auction", "bid"].iter().filter(|&&o| o != body) {
                assert!(v[*other].is_null());
            }
            if kind == 0 {
                assert!(["AZ", "CA", "ID", "OR", "WA", "WY"].contains(&v["person"]["state"].as_str().unwrap()));
            }
        }
    }

    #[test]
    fn events_of_several_splits_come_furthest_behind_first() {
        // Three subtasks' splits restored into one, each at its own place; one ends early.
        let splits = vec![
            Split { next: 9, end: 50, step: 3 },
            Split { next: 1, end: 50, step: 3 },
            Split { next: 5, end: 20, step: 3 },
        ];
        let spec = NexmarkSource { events: 50, per_second: None, event_rate: 1000 };
        let mut reader = NexmarkReader::new(&spec, 0, 1, ValueCodec::Msgpack);
        reader.splits = splits.clone();
        // Independently: each event, the split with the least next (the first of equals).
        let mut expected = Vec::new();
        let (mut splits, mut generator, mut dates) = (splits, Generator::new(config(1000)), DateCache::default());
        let mut made = 0;
        while let Some(s) = (0..splits.len()).min_by_key(|&s| splits[s].next) {
            push_event(&mut expected, &mut generator, splits[s].next, &mut dates, ValueCodec::Msgpack);
            made += 1;
            splits[s].next += splits[s].step;
            if splits[s].next >= splits[s].end {
                splits.remove(s);
            }
        }
        let (mut batch, mut records) = (Vec::new(), 0);
        while !reader.splits.is_empty() {
            records += reader.fill(&mut batch, 7);
        }
        assert_eq!(records, made);
        assert!(batch == expected, "the events or their order differ");
    }

    #[test]
    fn a_restore_refuses_a_split_of_step_zero() {
        let spec = NexmarkSource { events: 10, per_second: None, event_rate: 1000 };
        let mut reader = NexmarkReader::new(&spec, 0, 1, ValueCodec::Json);
        let bad = serde_json::to_vec(&Split { next: 0, end: 10, step: 0 }).unwrap();
        assert!(reader.restore(vec![bad]).unwrap_err().contains("step 0"));
    }
}
