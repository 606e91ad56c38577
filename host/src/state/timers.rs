//! Timers of keys, per time domain, in firing order. They are part of the
//! keyed state: snapshotted with their key and moved with its key group.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::ENTRY_OVERHEAD;
use crate::runtime::{Charge, JobBudget, QuotaError};

/// Timers of one operator subtask.
#[derive(Default)]
pub struct Timers {
    /// Event-time timers: `(timestamp, key)`.
    event: BTreeSet<(i64, Vec<u8>)>,
    /// Processing-time timers: `(timestamp, key)`.
    processing: BTreeSet<(i64, Vec<u8>)>,
    /// The most timers the subtask may keep; None: unbounded.
    limit: Option<u64>,
    /// What they cost the job's keyed state quota.
    charge: Charge,
}

/// What one timer is charged: its key, its time and the set's bookkeeping.
fn timer_bytes(key: &[u8]) -> u64 {
    key.len() as u64 + 8 + ENTRY_OVERHEAD
}

/// Which clock; mirrors the WIT `time-domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Watermarks.
    Event,
    /// The wall clock.
    Processing,
}

impl Timers {
    /// No timers yet, within `budget`'s timer and keyed state quotas.
    pub fn new(budget: Option<&Arc<JobBudget>>) -> Self {
        let limit = budget.and_then(|b| b.config().timers_per_subtask);
        Timers { limit, charge: Charge::new(budget), ..Timers::default() }
    }

    /// Timers kept now.
    pub fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set(&mut self, domain: Domain) -> &mut BTreeSet<(i64, Vec<u8>)> {
        match domain {
            Domain::Event => &mut self.event,
            Domain::Processing => &mut self.processing,
        }
    }

    /// Registers a timer (a second one at the same time and key is the same
    /// timer), unless a quota forbids another one.
    pub fn register(&mut self, domain: Domain, timestamp: i64, key: &[u8]) -> Result<(), QuotaError> {
        let timer = (timestamp, key.to_vec());
        if self.set(domain).contains(&timer) {
            return Ok(());
        }
        let asked = self.len() as u64 + 1;
        if let Some(limit) = self.limit.filter(|&l| asked > l) {
            return Err(QuotaError::Timers { limit, asked });
        }
        self.charge.resize(0, timer_bytes(key))?;
        self.set(domain).insert(timer);
        Ok(())
    }

    /// Deletes a timer.
    pub fn delete(&mut self, domain: Domain, timestamp: i64, key: &[u8]) {
        if self.set(domain).remove(&(timestamp, key.to_vec())) {
            self.charge.release(timer_bytes(key));
        }
    }

    /// Removes and returns the earliest timer due at `now`.
    pub fn pop_due(&mut self, domain: Domain, now: i64) -> Option<(i64, Vec<u8>)> {
        let set = self.set(domain);
        let due = if set.first().is_some_and(|(t, _)| *t <= now) { set.pop_first() } else { None };
        if let Some((_, key)) = &due {
            self.charge.release(timer_bytes(key));
        }
        due
    }

    /// The earliest processing-time timer.
    pub fn next_processing(&self) -> Option<i64> {
        self.processing.first().map(|(t, _)| *t)
    }

    /// Every timer as `(key, encoded timer)` snapshot entries.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let encode = |tag: u8, (t, k): &(i64, Vec<u8>)| {
            let mut v = TIMER_MARK.to_vec();
            v.push(tag);
            v.extend_from_slice(&t.to_le_bytes());
            (k.clone(), v)
        };
        self.event.iter().map(|t| encode(0, t)).chain(self.processing.iter().map(|t| encode(1, t))).collect()
    }

    /// Takes back a snapshot entry if it is a timer (restored timers count
    /// against the quotas too); returns false if it is not one.
    pub fn restore(&mut self, key: &[u8], entry: &[u8]) -> Result<bool, QuotaError> {
        let Some(rest) = entry.strip_prefix(&TIMER_MARK[..]) else { return Ok(false) };
        let (Some(&tag), Some(t)) = (rest.first(), rest.get(1..9)) else { return Ok(false) };
        let t = i64::from_le_bytes(t.try_into().unwrap());
        self.register(if tag == 0 { Domain::Event } else { Domain::Processing }, t, key)?;
        Ok(true)
    }
}

/// Starts a timer's snapshot entry; a state entry never starts so (it would
/// announce a state name of 4 GiB).
const TIMER_MARK: [u8; 4] = [0xff; 4];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_in_order_and_survive_a_snapshot() {
        let mut t = Timers::default();
        t.register(Domain::Event, 20, b"b").unwrap();
        t.register(Domain::Event, 10, b"a").unwrap();
        t.register(Domain::Event, 10, b"a").unwrap();
        t.register(Domain::Processing, 5, b"c").unwrap();
        t.delete(Domain::Event, 20, b"b");
        let mut copy = Timers::default();
        for (k, v) in t.snapshot() {
            assert!(copy.restore(&k, &v).unwrap());
        }
        assert_eq!(copy.pop_due(Domain::Event, 15), Some((10, b"a".to_vec())));
        assert_eq!(copy.pop_due(Domain::Event, 15), None);
        assert_eq!(copy.next_processing(), Some(5));
        assert!(!copy.restore(b"k", b"\x01\x00\x00\x00n").unwrap());
    }

    #[test]
    fn timers_count_against_both_quotas() {
        use crate::runtime::SandboxConfig;
        let config = SandboxConfig { timers_per_subtask: Some(2), state_bytes: Some(1000), ..SandboxConfig::default() };
        let budget = JobBudget::new(config, "j", None);
        let mut t = Timers::new(Some(&budget));
        t.register(Domain::Event, 1, b"k").unwrap();
        t.register(Domain::Processing, 1, b"k").unwrap();
        t.register(Domain::Event, 1, b"k").unwrap();
        assert_eq!(t.register(Domain::Event, 2, b"k"), Err(QuotaError::Timers { limit: 2, asked: 3 }));
        assert_eq!(budget.state_bytes(), 2 * timer_bytes(b"k"));
        t.pop_due(Domain::Event, 5);
        t.delete(Domain::Processing, 1, b"k");
        assert_eq!(budget.state_bytes(), 0);
    }
}
