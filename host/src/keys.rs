//! Key groups: how keyed records are routed to subtasks, as in Flink, so that
//! keyed state can later be rescaled by moving whole key groups.

/// A hash map over keys a job chose (keyed state, windows, aggregates): foldhash is as fast
/// as the unseeded hashes on short keys, and its seed, random per map, keeps a job from
/// sending keys that all collide to slow its own task's host work down.
pub type KeyMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

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
