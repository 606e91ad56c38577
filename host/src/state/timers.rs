//! Timers of keys, per time domain, in firing order. They are part of the
//! keyed state: snapshotted with their key and moved with its key group.

use std::collections::BTreeSet;

/// Timers of one operator subtask.
#[derive(Debug, Default)]
pub struct Timers {
    /// Event-time timers: `(timestamp, key)`.
    event: BTreeSet<(i64, Vec<u8>)>,
    /// Processing-time timers: `(timestamp, key)`.
    processing: BTreeSet<(i64, Vec<u8>)>,
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
    fn set(&mut self, domain: Domain) -> &mut BTreeSet<(i64, Vec<u8>)> {
        match domain {
            Domain::Event => &mut self.event,
            Domain::Processing => &mut self.processing,
        }
    }

    /// Registers a timer (a second one at the same time and key is the same timer).
    pub fn register(&mut self, domain: Domain, timestamp: i64, key: &[u8]) {
        self.set(domain).insert((timestamp, key.to_vec()));
    }

    /// Deletes a timer.
    pub fn delete(&mut self, domain: Domain, timestamp: i64, key: &[u8]) {
        self.set(domain).remove(&(timestamp, key.to_vec()));
    }

    /// Removes and returns the earliest timer due at `now`.
    pub fn pop_due(&mut self, domain: Domain, now: i64) -> Option<(i64, Vec<u8>)> {
        let set = self.set(domain);
        if set.first().is_some_and(|(t, _)| *t <= now) {
            set.pop_first()
        } else {
            None
        }
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

    /// Takes back a snapshot entry if it is a timer; returns false otherwise.
    pub fn restore(&mut self, key: &[u8], entry: &[u8]) -> bool {
        let Some(rest) = entry.strip_prefix(&TIMER_MARK[..]) else { return false };
        let (Some(&tag), Some(t)) = (rest.first(), rest.get(1..9)) else { return false };
        let t = i64::from_le_bytes(t.try_into().unwrap());
        self.register(if tag == 0 { Domain::Event } else { Domain::Processing }, t, key);
        true
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
        t.register(Domain::Event, 20, b"b");
        t.register(Domain::Event, 10, b"a");
        t.register(Domain::Event, 10, b"a");
        t.register(Domain::Processing, 5, b"c");
        t.delete(Domain::Event, 20, b"b");
        let mut copy = Timers::default();
        for (k, v) in t.snapshot() {
            assert!(copy.restore(&k, &v));
        }
        assert_eq!(copy.pop_due(Domain::Event, 15), Some((10, b"a".to_vec())));
        assert_eq!(copy.pop_due(Domain::Event, 15), None);
        assert_eq!(copy.next_processing(), Some(5));
        assert!(!copy.restore(b"k", b"\x01\x00\x00\x00n"));
    }
}
