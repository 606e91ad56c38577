//! Key groups: how keyed records are routed to subtasks, as in Flink, so that
//! keyed state can later be rescaled by moving whole key groups.

/// A hash map over keys a job chose (keyed state, windows, aggregates): foldhash is as fast
/// as the unseeded hashes on short keys, and its seed, random per map, keeps a job from
/// sending keys that all collide to slow its own task's host work down.
pub type KeyMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Whether two keys are equal. Keys are a few bytes, which two overlapping word loads
/// compare faster than a call to `memcmp` (7 % of word count, one per word).
#[inline]
pub fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let u64_at = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("eight bytes"));
    let u32_at = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("four bytes"));
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => a == b,
    }
}

/// The slots of keys kept elsewhere (in a `Vec`, by slot): each key is stored once, where
/// its data is, and found by its hash and [`same_key`].
#[derive(Default)]
pub struct KeySlots {
    table: hashbrown::HashTable<usize>,
    /// Seeded per table, as [`KeyMap`]'s.
    hasher: foldhash::fast::RandomState,
}

impl KeySlots {
    /// The slot of `key`, given the key of each slot.
    pub fn find<'a>(&self, key: &[u8], key_of: impl Fn(usize) -> &'a [u8]) -> Option<usize> {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, key);
        self.table.find(hash, |&slot| same_key(key_of(slot), key)).copied()
    }

    /// Records that `key`, which has no slot yet, is at `slot`.
    pub fn insert<'a>(&mut self, key: &[u8], slot: usize, key_of: impl Fn(usize) -> &'a [u8]) {
        let hasher = &self.hasher;
        let hash = std::hash::BuildHasher::hash_one(hasher, key);
        self.table.insert_unique(hash, slot, |&s| std::hash::BuildHasher::hash_one(hasher, key_of(s)));
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.table.clear();
    }
}

/// Key groups of a job when the planner does not say (Flink's default too).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// FNV-1a (64 bit) of the key bytes: stable across hosts and versions, which
/// routing and state placement need; documented in `wit/README.md`.
pub fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The key group of a key.
pub fn key_group(key: &[u8], max_parallelism: u32) -> u32 {
    (hash(key) % u64::from(max_parallelism)) as u32
}

/// The subtask that owns a key group (Flink's `computeOperatorIndexForKeyGroup`).
pub fn subtask_for_key_group(key_group: u32, parallelism: u32, max_parallelism: u32) -> u32 {
    (u64::from(key_group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The contiguous key groups owned by `subtask` of `parallelism`.
pub fn key_group_range(subtask: u32, parallelism: u32, max_parallelism: u32) -> std::ops::Range<u32> {
    let (i, p, m) = (u64::from(subtask), u64::from(parallelism), u64::from(max_parallelism));
    let start = (i * m).div_ceil(p);
    let end = ((i + 1) * m).div_ceil(p);
    start as u32..end as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_same_exactly_when_their_bytes_are() {
        let keys: Vec<Vec<u8>> = (0..40).flat_map(|n| [vec![7u8; n], (0..n as u8).collect()]).collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(same_key(a, b), a == b, "{a:?} against {b:?}");
            }
            for at in 0..a.len() {
                let mut c = a.clone();
                c[at] ^= 1;
                assert!(!same_key(a, &c), "{a:?} against {c:?}");
            }
        }
        let mut keys = keys;
        keys.dedup();
        let mut slots = KeySlots::default();
        for (slot, key) in keys.iter().enumerate().filter(|(_, k)| k.len() % 3 == 0) {
            slots.insert(key, slot, |s| &keys[s]);
        }
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(slots.find(key, |s| &keys[s]), (key.len() % 3 == 0).then_some(slot), "{key:?}");
        }
    }

    #[test]
    fn ranges_partition_all_groups_and_agree_with_routing() {
        for m in [1, 7, 128, 1000] {
            for p in 1..=m.min(9) {
                let mut next = 0;
                for i in 0..p {
                    let r = key_group_range(i, p, m);
                    assert_eq!(r.start, next);
                    for g in r.clone() {
                        assert_eq!(subtask_for_key_group(g, p, m), i, "m={m} p={p} g={g}");
                    }
                    next = r.end;
                }
                assert_eq!(next, m);
            }
        }
    }

    #[test]
    fn hash_is_fnv1a() {
        assert_eq!(hash(b""), 0xcbf29ce484222325);
        assert_eq!(hash(b"a"), 0xaf63dc4c8601ec8c);
    }
}
