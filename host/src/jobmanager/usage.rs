//! Usage metering: what each tenant's jobs used, per minute, kept in the database.
//!
//! TaskManagers report every subtask's cumulative usage (CPU time of its thread,
//! records and bytes in and out) with each heartbeat and once more when it ends;
//! the JobManager adds the increase since the last report to the minute it
//! arrived in. Slot time is counted here, from the slots a running job holds.
//! Pending minutes go to the database every second, so a restart loses at most
//! the last second of reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::db::{Change, Db, DbError, Table};
pub use crate::api::{Usage, UsageRow};
use crate::protocol::TaskUsage;

impl Usage {
    /// Adds another's figures.
    pub fn add(&mut self, other: &Usage) {
        self.cpu_ns += other.cpu_ns;
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.slot_ms += other.slot_ms;
        // A peak is not a sum: the minute's peak is the highest seen in it.
        self.peak_state_bytes = self.peak_state_bytes.max(other.peak_state_bytes);
    }

    /// The increase from `before` to `now` of cumulative task usage; a counter
    /// that went down (it cannot, from a sound TaskManager) counts as no increase.
    pub fn delta(before: &TaskUsage, now: &TaskUsage) -> Usage {
        Usage {
            cpu_ns: now.cpu_ns.saturating_sub(before.cpu_ns),
            records_in: now.records_in.saturating_sub(before.records_in),
            records_out: now.records_out.saturating_sub(before.records_out),
            bytes_in: now.bytes_in.saturating_sub(before.bytes_in),
            bytes_out: now.bytes_out.saturating_sub(before.bytes_out),
            slot_ms: 0,
            peak_state_bytes: 0,
        }
    }
}

/// Usage not yet in the database, by `TENANT/MINUTE/JOB`.
#[derive(Default)]
pub struct Meter {
    pending: Mutex<BTreeMap<String, Usage>>,
    /// Per tenant, everything added since the process started: `/metrics`
    /// counters, without reading the database on every scrape.
    totals: Mutex<BTreeMap<String, Usage>>,
}

/// Keys sort by tenant, then time: minutes as fixed-width numbers.
fn key(tenant: &str, minute: u64, job: &str) -> String {
    format!("{tenant}/{minute:016}/{job}")
}

fn this_minute() -> u64 {
    super::now_ms() / 60_000 * 60_000
}

impl Meter {
    /// Adds `usage` of `tenant`'s `job` to the current minute.
    pub fn add(&self, tenant: &str, job: &str, usage: Usage) {
        if usage == Usage::default() {
            return;
        }
        self.pending.lock().unwrap().entry(key(tenant, this_minute(), job)).or_default().add(&usage);
        self.totals.lock().unwrap().entry(tenant.to_string()).or_default().add(&usage);
    }

    /// Per tenant, what its jobs used since this process started.
    pub fn totals(&self) -> Vec<(String, Usage)> {
        self.totals.lock().unwrap().iter().map(|(t, u)| (t.clone(), *u)).collect()
    }

    /// Writes pending usage to the database, added to what is there.
    pub fn flush(&self, db: &Db) -> Result<(), DbError> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap());
        if pending.is_empty() {
            return Ok(());
        }
        let mut values = Vec::with_capacity(pending.len());
        for (k, u) in &pending {
            let mut total: Usage = db.get(Table::Usage, k)?.unwrap_or_default();
            total.add(u);
            values.push((k.clone(), super::db::json(&total)));
        }
        let changes: Vec<Change> = values.iter().map(|(k, v)| Change::Put(Table::Usage, k, v.clone())).collect();
        if let Err(e) = db.write(&changes) {
            // Kept for the next flush rather than lost.
            let mut p = self.pending.lock().unwrap();
            for (k, u) in pending {
                p.entry(k).or_default().add(&u);
            }
            return Err(e);
        }
        Ok(())
    }

    /// A tenant's usage per minute and job since `since` (ms), pending included.
    pub fn rows(&self, db: &Db, tenant: &str, since: u64) -> Result<Vec<UsageRow>, DbError> {
        let mut all: BTreeMap<String, Usage> = db.scan::<Usage>(Table::Usage, &format!("{tenant}/"))?.into_iter().collect();
        for (k, u) in self.pending.lock().unwrap().range(format!("{tenant}/")..) {
            if !k.starts_with(&format!("{tenant}/")) {
                break;
            }
            all.entry(k.clone()).or_default().add(u);
        }
        Ok(all
            .into_iter()
            .filter_map(|(k, usage)| {
                let mut parts = k.splitn(3, '/').skip(1);
                let minute: u64 = parts.next()?.parse().ok()?;
                let job = parts.next()?.to_string();
                (minute + 60_000 > since).then_some(UsageRow { minute, job, usage })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_flushed_usage_add_up_per_minute_and_job() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let meter = Meter::default();
        let one = Usage { cpu_ns: 5, records_in: 2, ..Usage::default() };
        meter.add("acme", "j1", one);
        meter.flush(&db).unwrap();
        meter.add("acme", "j1", one);
        meter.add("acme-two", "j2", one);
        let rows = meter.rows(&db, "acme", 0).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].job.as_str(), rows[0].usage.cpu_ns, rows[0].usage.records_in), ("j1", 10, 4));
        meter.flush(&db).unwrap();
        assert_eq!(meter.rows(&db, "acme", 0).unwrap(), rows);
    }

    #[test]
    fn a_counter_that_goes_down_adds_nothing() {
        let before = TaskUsage { records_in: 10, cpu_ns: 100, ..TaskUsage::default() };
        let now = TaskUsage { records_in: 4, cpu_ns: 150, ..TaskUsage::default() };
        let d = Usage::delta(&before, &now);
        assert_eq!((d.records_in, d.cpu_ns), (0, 50));
    }
}
