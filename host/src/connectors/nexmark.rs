//! The Nexmark source: the benchmark's auction events (persons, auctions, bids), made in
//! the host by the `nexmark` crate, RisingWave's port of the reference (Beam) generator.
//!
//! That generator seeds event `n` with `n` alone, so a subtask needs no state to make
//! any event: subtask `i` of `p` makes events `i, i + p, i + 2p, …` (every subtask's
//! events keep step with event time, as the reference's parallel generators do), and
//! its position is the next event number of each split it reads.
//!
//! Values are the JSON objects of the shared JSON-lines files the Flink SQL queries read
//! (`../shared/bench/nexmark_gen.py`), so a query reads either alike: see wit/README.md.

use std::io::Write;

use nexmark::event::{Auction, Bid, Event, Person};
use nexmark::config::NexmarkConfig;
use nexmark::EventGenerator;

use super::sources::{decode_splits, encode_splits, Pacer, Source};
use super::SOURCE_BATCH_BYTES;
use crate::framing;
use crate::json;
use crate::runtime::NexmarkSource;
use crate::task::{SourceContext, TaskError};

/// Event time of event 0: 2026-01-01T00:00:00Z, as in the shared event files.
pub const BASE_TIME_MS: u64 = 1_767_225_600_000;

/// The fastest event-time rate accepted (events per second of event time): past it
/// the reference generator's arithmetic (f32 microseconds per event) says nothing.
pub const MAX_EVENT_RATE: u64 = 1_000_000_000;

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
    config: NexmarkConfig,
    /// What is left to make; after a restore at a lower parallelism, several.
    splits: Vec<Split>,
    /// Events per second of this subtask, if limited.
    rate: Option<u64>,
    dates: DateCache,
}

impl NexmarkReader {
    /// Subtask `subtask` of `parallelism`.
    pub fn new(spec: &NexmarkSource, subtask: u32, parallelism: u32) -> Self {
        let (i, p) = (u64::from(subtask), u64::from(parallelism));
        let splits = if i < spec.events { vec![Split { next: i, end: spec.events, step: p }] } else { Vec::new() };
        let rate = spec.per_second.map(|r| (r / p).max(1));
        NexmarkReader { config: config(spec.event_rate), splits, rate, dates: DateCache::default() }
    }

    fn generator(&self, split: &Split) -> EventGenerator {
        EventGenerator::new(self.config.clone()).with_offset(split.next).with_step(split.step)
    }
}

impl Source for NexmarkReader {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let per_batch = self.rate.map_or(MAX_BATCH_EVENTS, |r| (r / 20).clamp(1, MAX_BATCH_EVENTS));
        let mut generators: Vec<EventGenerator> = self.splits.iter().map(|s| self.generator(s)).collect();
        let mut pacer = Pacer::new(self.rate);
        let mut batch = Vec::with_capacity(SOURCE_BATCH_BYTES + 4096);
        while !self.splits.is_empty() {
            let mut records = 0;
            while records < per_batch && batch.len() < SOURCE_BATCH_BYTES {
                // The split furthest behind goes first, so event time advances evenly.
                let Some(s) = (0..self.splits.len()).min_by_key(|&s| self.splits[s].next) else { break };
                let event = generators[s].next().expect("the generator never ends");
                push_event(&mut batch, &event, &mut self.dates);
                records += 1;
                self.splits[s].next = self.splits[s].next.saturating_add(self.splits[s].step);
                if self.splits[s].next >= self.splits[s].end {
                    self.splits.remove(s);
                    generators.remove(s);
                }
            }
            ctx.emit(std::mem::take(&mut batch), records)?;
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

/// Appends one event as a record: its JSON value, and its event time as the timestamp.
fn push_event(batch: &mut Vec<u8>, event: &Event, dates: &mut DateCache) {
    framing::push_with(batch, None, Some(event.timestamp() as i64), |out| write_event(out, event, dates));
}

/// Writes an event as the JSON object of the shared event files:
/// `{"event_type":0|1|2,"person":{…}|null,"auction":{…}|null,"bid":{…}|null}`.
pub fn write_event(out: &mut Vec<u8>, event: &Event, dates: &mut DateCache) {
    match event {
        Event::Person(p) => {
            out.extend_from_slice(b"{\"event_type\":0,\"person\":");
            write_person(out, p, dates);
            out.extend_from_slice(b",\"auction\":null,\"bid\":null}");
        }
        Event::Auction(a) => {
            out.extend_from_slice(b"{\"event_type\":1,\"person\":null,\"auction\":");
            write_auction(out, a, dates);
            out.extend_from_slice(b",\"bid\":null}");
        }
        Event::Bid(b) => {
            out.extend_from_slice(b"{\"event_type\":2,\"person\":null,\"auction\":null,\"bid\":");
            write_bid(out, b, dates);
            out.push(b'}');
        }
    }
}

/// `"name":"text",` with the text escaped.
fn string_field(out: &mut Vec<u8>, name: &str, text: &str) {
    out.extend_from_slice(name.as_bytes());
    json::write_string(out, text.as_bytes());
}

fn number_field(out: &mut Vec<u8>, name: &str, n: usize) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn date_field(out: &mut Vec<u8>, name: &str, ms: u64, dates: &mut DateCache) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
    dates.write(out, ms);
    out.push(b'"');
}

fn write_person(out: &mut Vec<u8>, p: &Person, dates: &mut DateCache) {
    number_field(out, "{\"id\":", p.id);
    string_field(out, ",\"name\":", &p.name);
    string_field(out, ",\"emailAddress\":", &p.email_address);
    string_field(out, ",\"creditCard\":", &p.credit_card);
    string_field(out, ",\"city\":", &p.city);
    string_field(out, ",\"state\":", &p.state);
    date_field(out, ",\"dateTime\":", p.date_time, dates);
    string_field(out, ",\"extra\":", &p.extra);
    out.push(b'}');
}

fn write_auction(out: &mut Vec<u8>, a: &Auction, dates: &mut DateCache) {
    number_field(out, "{\"id\":", a.id);
    string_field(out, ",\"itemName\":", &a.item_name);
    string_field(out, ",\"description\":", &a.description);
    number_field(out, ",\"initialBid\":", a.initial_bid);
    number_field(out, ",\"reserve\":", a.reserve);
    date_field(out, ",\"dateTime\":", a.date_time, dates);
    date_field(out, ",\"expires\":", a.expires, dates);
    number_field(out, ",\"seller\":", a.seller);
    number_field(out, ",\"category\":", a.category);
    string_field(out, ",\"extra\":", &a.extra);
    out.push(b'}');
}

fn write_bid(out: &mut Vec<u8>, b: &Bid, dates: &mut DateCache) {
    number_field(out, "{\"auction\":", b.auction);
    number_field(out, ",\"bidder\":", b.bidder);
    number_field(out, ",\"price\":", b.price);
    string_field(out, ",\"channel\":", &b.channel);
    string_field(out, ",\"url\":", &b.url);
    date_field(out, ",\"dateTime\":", b.date_time, dates);
    string_field(out, ",\"extra\":", &b.extra);
    out.push(b'}');
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

    fn events(n: u64, rate: u64) -> Vec<Event> {
        EventGenerator::new(config(rate)).take(n as usize).collect()
    }

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
        let all = events(5000, 10_000);
        let persons = all.iter().filter(|e| matches!(e, Event::Person(_))).count();
        let auctions = all.iter().filter(|e| matches!(e, Event::Auction(_))).count();
        assert_eq!((persons, auctions, all.len() - persons - auctions), (100, 300, 4600));
        // 10 000 events per second of event time: event 4999 is 499.9 ms after the start.
        assert_eq!(all[0].timestamp(), BASE_TIME_MS);
        assert_eq!(all[4999].timestamp(), BASE_TIME_MS + 500);
    }

    #[test]
    fn splits_make_every_event_once_in_any_parallelism() {
        let spec = NexmarkSource { events: 1000, per_second: None, event_rate: 1000 };
        let whole: Vec<Event> = events(1000, 1000);
        for p in [1u32, 2, 3, 7] {
            let mut seen = vec![None; 1000];
            for i in 0..p {
                let reader = NexmarkReader::new(&spec, i, p);
                for split in &reader.splits {
                    let mut generator = reader.generator(split);
                    for n in (split.next..split.end).step_by(split.step as usize) {
                        assert!(seen[n as usize].is_none(), "event {n} twice at p={p}");
                        seen[n as usize] = generator.next();
                    }
                }
            }
            let seen: Vec<Event> = seen.into_iter().map(|e| e.expect("every event")).collect();
            assert_eq!(seen, whole, "p={p}");
        }
    }

    #[test]
    fn events_are_json_objects_of_the_shared_file_format() {
        let mut dates = DateCache::default();
        for event in events(50, 10_000_000) {
            let mut out = Vec::new();
            write_event(&mut out, &event, &mut dates);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
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
    fn a_restore_refuses_a_split_of_step_zero() {
        let spec = NexmarkSource { events: 10, per_second: None, event_rate: 1000 };
        let mut reader = NexmarkReader::new(&spec, 0, 1);
        let bad = serde_json::to_vec(&Split { next: 0, end: 10, step: 0 }).unwrap();
        assert!(reader.restore(vec![bad]).unwrap_err().contains("step 0"));
    }
}
