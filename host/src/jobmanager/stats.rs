//! Per-subtask statistics of a job's current attempt, as its TaskManagers
//! report them with heartbeats and task ends, with the rates derived from two
//! reports: what `GET /jobs/{id}` and `/metrics` show.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use crate::protocol::SubtaskStats;

/// Rates are measured over at least this long, so one heartbeat's jitter does not show.
const RATE_WINDOW_NS: u64 = 900_000_000;

/// One subtask's latest report and the rates up to it.
#[derive(Debug, Clone)]
pub struct SubtaskView {
    /// Its latest report.
    pub latest: SubtaskStats,
    /// The report rates are measured from.
    base: SubtaskStats,
    /// Rates between `base` and the report before `latest` moved it.
    pub rates: Rates,
    /// When `latest` arrived.
    pub at: Instant,
}

/// What a subtask did per second, and how it spent its time (shares sum to 1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Records in per second.
    pub records_in: f64,
    /// Records out per second.
    pub records_out: f64,
    /// Bytes in per second.
    pub bytes_in: f64,
    /// Bytes out per second.
    pub bytes_out: f64,
    /// Share of wall time spent working.
    pub busy: f64,
    /// Share of wall time blocked on a full output.
    pub backpressured: f64,
    /// Share of wall time waiting for input.
    pub idle: f64,
}

impl Rates {
    fn between(a: &SubtaskStats, b: &SubtaskStats) -> Rates {
        let wall = b.wall_ns.saturating_sub(a.wall_ns).max(1) as f64;
        let per_s = |x: u64, y: u64| y.saturating_sub(x) as f64 * 1e9 / wall;
        let share = |x: u64, y: u64| (y.saturating_sub(x) as f64 / wall).clamp(0.0, 1.0);
        let backpressured = share(a.backpressured_ns, b.backpressured_ns);
        let idle = share(a.idle_ns, b.idle_ns).min(1.0 - backpressured);
        Rates {
            records_in: per_s(a.records_in, b.records_in),
            records_out: per_s(a.records_out, b.records_out),
            bytes_in: per_s(a.bytes_in, b.bytes_in),
            bytes_out: per_s(a.bytes_out, b.bytes_out),
            busy: 1.0 - backpressured - idle,
            backpressured,
            idle,
        }
    }

    /// Flink's names for the level of back-pressure a share of time blocked means.
    pub fn level(&self) -> &'static str {
        match self.backpressured {
            b if b > 0.5 => "high",
            b if b > 0.1 => "low",
            _ => "ok",
        }
    }
}

/// The statistics of every subtask of one attempt, by (chain, subtask).
#[derive(Debug, Clone, Default)]
pub struct JobStats {
    subtasks: BTreeMap<(usize, u32), SubtaskView>,
    /// The operators' own counters of each subtask that has some, as last reported (bounded).
    counters: BTreeMap<(usize, u32), Vec<(String, u64)>>,
}

impl JobStats {
    /// Takes a report; one older than the latest (a heartbeat that crossed the task's end) is ignored.
    pub fn report(&mut self, chain: usize, subtask: u32, now: SubtaskStats) {
        let view = self.subtasks.entry((chain, subtask)).or_insert_with(|| SubtaskView {
            latest: SubtaskStats::default(),
            base: SubtaskStats::default(),
            rates: Rates::default(),
            at: Instant::now(),
        });
        if now.wall_ns < view.latest.wall_ns {
            return;
        }
        // The first report gives rates at once: a job shorter than the window has some.
        if view.base.wall_ns == 0 || now.wall_ns.saturating_sub(view.base.wall_ns) >= RATE_WINDOW_NS {
            view.rates = Rates::between(&view.base, &now);
            view.base = now;
        }
        view.latest = now;
        view.at = Instant::now();
    }

    /// Takes a subtask's counters, bounded as a TaskManager must bound them.
    pub fn report_counters(&mut self, chain: usize, subtask: u32, values: Vec<(String, u64)>) {
        if !values.is_empty() {
            self.counters.insert((chain, subtask), crate::task::live_counters(values));
        }
    }

    /// A subtask's counters, by name.
    pub fn counters(&self, chain: usize, subtask: u32) -> BTreeMap<&str, u64> {
        self.counters.get(&(chain, subtask)).map(|c| c.iter().map(|(n, v)| (n.as_str(), *v)).collect()).unwrap_or_default()
    }

    /// A chain's counters summed over its subtasks, by name: at most
    /// `LIVE_COUNTERS` names a subtask, so at most that times the parallelism.
    pub fn chain_counters(&self, chain: usize) -> BTreeMap<&str, u64> {
        let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, values) in self.counters.range((chain, 0)..=(chain, u32::MAX)) {
            for (n, v) in values {
                let sum = sums.entry(n.as_str()).or_default();
                *sum = sum.saturating_add(*v);
            }
        }
        sums
    }

    /// A subtask's view, if it reported.
    pub fn subtask(&self, chain: usize, subtask: u32) -> Option<&SubtaskView> {
        self.subtasks.get(&(chain, subtask))
    }

    /// Forgets everything: a new attempt's tasks start from zero.
    pub fn clear(&mut self) {
        self.subtasks.clear();
        self.counters.clear();
    }

    /// Bytes the subtasks of `source_chains` read of their inputs, and the inputs'
    /// size if every one of them reported a size (`eddy run -m`'s progress bar).
    pub fn input(&self, source_chains: impl IntoIterator<Item = (usize, u32)>) -> (u64, Option<u64>) {
        let (mut read, mut size) = (0u64, Some(0u64));
        for (chain, parallelism) in source_chains {
            for s in 0..parallelism {
                let latest = self.subtask(chain, s).map(|v| v.latest);
                read = read.saturating_add(latest.map_or(0, |l| l.input_read));
                size = size.zip(latest.and_then(|l| l.input_size)).map(|(a, b)| a.saturating_add(b));
            }
        }
        (read, size)
    }

    /// The sums over a chain's subtasks, its slowest watermark and its highest back-pressure.
    pub fn chain(&self, chain: usize, parallelism: u32) -> ChainTotals {
        let mut t = ChainTotals::default();
        let mut watermarks = Vec::new();
        for s in 0..parallelism {
            let Some(v) = self.subtask(chain, s) else {
                watermarks.push(None);
                continue;
            };
            // A TaskManager's figures are its word: sums saturate rather than wrap.
            t.records_in = t.records_in.saturating_add(v.latest.records_in);
            t.records_out = t.records_out.saturating_add(v.latest.records_out);
            t.bytes_in = t.bytes_in.saturating_add(v.latest.bytes_in);
            t.bytes_out = t.bytes_out.saturating_add(v.latest.bytes_out);
            t.records_in_per_s += v.rates.records_in;
            t.records_out_per_s += v.rates.records_out;
            t.backpressured = t.backpressured.max(v.rates.backpressured);
            t.busy = t.busy.max(v.rates.busy);
            watermarks.push(v.latest.watermark);
        }
        // Like Flink: a vertex's watermark is its subtasks' minimum, none until each has one.
        t.watermark = watermarks.iter().copied().collect::<Option<Vec<i64>>>().and_then(|w| w.into_iter().min());
        t
    }
}

/// What a chain (a vertex of the job graph) did, summed over its subtasks.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChainTotals {
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
    /// Records in per second.
    pub records_in_per_s: f64,
    /// Records out per second.
    pub records_out_per_s: f64,
    /// The highest share of time a subtask was back-pressured.
    pub backpressured: f64,
    /// The highest share of time a subtask was busy.
    pub busy: f64,
    /// The minimum watermark of its subtasks.
    pub watermark: Option<i64>,
}

impl ChainTotals {
    /// As `GET /jobs/{id}` shows it.
    pub fn json(&self) -> Value {
        json!({
            "records-in": self.records_in,
            "records-out": self.records_out,
            "bytes-in": self.bytes_in,
            "bytes-out": self.bytes_out,
            "records-in-per-second": round(self.records_in_per_s),
            "records-out-per-second": round(self.records_out_per_s),
            "busy-ratio": round3(self.busy),
            "backpressured-ratio": round3(self.backpressured),
            "backpressure-level": Rates { backpressured: self.backpressured, ..Default::default() }.level(),
            "watermark": self.watermark,
        })
    }
}

impl SubtaskView {
    /// As `GET /jobs/{id}` shows it.
    pub fn json(&self) -> Value {
        let (l, r) = (&self.latest, &self.rates);
        json!({
            "records-in": l.records_in,
            "records-out": l.records_out,
            "bytes-in": l.bytes_in,
            "bytes-out": l.bytes_out,
            "records-in-per-second": round(r.records_in),
            "records-out-per-second": round(r.records_out),
            "bytes-in-per-second": round(r.bytes_in),
            "bytes-out-per-second": round(r.bytes_out),
            "busy-ratio": round3(r.busy),
            "backpressured-ratio": round3(r.backpressured),
            "idle-ratio": round3(r.idle),
            "backpressure-level": r.level(),
            "watermark": l.watermark,
            "input-queue": l.queued,
            "input-queue-capacity": l.capacity,
            "reported-ms-ago": self.at.elapsed().as_millis() as u64,
        })
    }
}

fn round(x: f64) -> f64 {
    x.round()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_ms: u64, records: u64, bp_ms: u64, idle_ms: u64) -> SubtaskStats {
        SubtaskStats {
            records_in: records,
            records_out: records,
            wall_ns: wall_ms * 1_000_000,
            backpressured_ns: bp_ms * 1_000_000,
            idle_ns: idle_ms * 1_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn rates_come_from_reports_a_second_apart_and_late_ones_are_ignored() {
        let mut s = JobStats::default();
        s.report(0, 0, sample(1000, 500, 0, 0));
        s.report(0, 0, sample(1500, 900, 0, 0));
        assert_eq!(s.subtask(0, 0).unwrap().latest.records_in, 900);
        assert_eq!(s.subtask(0, 0).unwrap().rates.records_in, 500.0, "still the rate of the first second");
        s.report(0, 0, sample(2000, 1500, 600, 200));
        let v = s.subtask(0, 0).unwrap();
        assert_eq!(v.rates.records_in, 1000.0);
        assert_eq!((v.rates.backpressured, v.rates.idle), (0.6, 0.2));
        assert!((v.rates.busy - 0.2).abs() < 1e-9);
        assert_eq!(v.rates.level(), "high");
        s.report(0, 0, sample(1900, 10, 0, 0));
        assert_eq!(s.subtask(0, 0).unwrap().latest.records_in, 1500, "an older report changes nothing");
    }

    #[test]
    fn a_vertex_sums_its_subtasks_and_waits_for_every_watermark() {
        let mut s = JobStats::default();
        s.report(1, 0, SubtaskStats { records_in: 3, watermark: Some(10), ..Default::default() });
        assert_eq!(s.chain(1, 2).watermark, None, "subtask 1 has none yet");
        s.report(1, 1, SubtaskStats { records_in: 4, watermark: Some(7), ..Default::default() });
        let t = s.chain(1, 2);
        assert_eq!((t.records_in, t.watermark), (7, Some(7)));
    }
}
