/// Out-of-order events `(key, timestamp ms, n)` in arrival order: the input of the
/// `windows` component and of the reference computed in `tests/windows.rs` (both `include!` this file).
const EVENTS: &[(&str, i64, i64)] = &[
    ("a", 1, 1), ("b", 2, 2), ("a", 4, 3), ("c", 3, 4), ("a", 12, 5), ("a", 8, 6), ("b", 15, 7),
    ("a", 3, 8), ("c", 11, 9), ("a", 25, 10), ("a", 5, 11), ("b", 18, 12), ("c", 22, 13),
    ("a", 31, 14), ("b", 13, 15), ("c", 20, 16), ("a", 33, 17), ("b", 40, 18), ("a", 36, 19),
    ("c", 29, 20), ("a", 38, 21), ("b", 37, 22), ("c", 45, 23), ("a", 27, 24), ("b", 52, 25),
    ("a", 60, 26), ("c", 47, 27), ("b", 49, 28),
];
