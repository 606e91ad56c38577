//! Event times of the shared Nexmark event files (`../shared/bench/nexmark_gen.py`), read
//! by the host's `nexmark-file-source` so that every record leaves the source with its
//! time, as the generator's do: otherwise an operator in the component would decode each
//! event only to find it (a tenth of a query's CPU, and a second pass over the boundary).

/// The key of an event's time, with the opening quote of its text.
const FIELD: &[u8] = b"\"dateTime\":\"";

/// Reads the event time of lines, remembering the last second it parsed: events come in
/// time order, so most share their second with the one before.
#[derive(Debug)]
pub struct EventTimes {
    /// Finds [`FIELD`] (built once: a searcher's setup is not free).
    finder: memchr::memmem::Finder<'static>,
    /// The last `yyyy-MM-dd HH:mm:ss` parsed, and its epoch milliseconds. Starts as a valid
    /// pair, so that only a valid text can ever match it.
    last: ([u8; 19], i64),
}

impl Default for EventTimes {
    fn default() -> Self {
        EventTimes { finder: memchr::memmem::Finder::new(FIELD), last: (*b"1970-01-01 00:00:00", 0) }
    }
}

impl EventTimes {
    /// The event time of a line (epoch milliseconds): its first `"dateTime":"…"`, the
    /// event's own (an auction's `expires` comes after it), `yyyy-MM-dd HH:mm:ss.SSS` in
    /// UTC, the milliseconds optional. `None` if it has none. Inside a JSON string the
    /// pattern's quotes would be escaped, so what it finds is a key.
    pub fn of(&mut self, line: &[u8]) -> Option<i64> {
        let text = &line[self.finder.find(line)? + FIELD.len()..];
        let end = memchr::memchr(b'"', text)?;
        self.parse(&text[..end])
    }

    fn parse(&mut self, b: &[u8]) -> Option<i64> {
        let ms = match b.len() {
            19 => 0,
            23 if b[19] == b'.' => digits(&b[20..23])?,
            _ => return None,
        };
        let second: [u8; 19] = b[..19].try_into().expect("19 bytes");
        if second != self.last.0 {
            self.last = (second, parse_second(&second)?);
        }
        Some(self.last.1 + ms)
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

/// `yyyy-MM-dd HH:mm:ss` as epoch milliseconds.
fn parse_second(b: &[u8; 19]) -> Option<i64> {
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(((days_from_civil(y, m, d) * 24 + h) * 60 + mi) * 60_000 + s * 1000)
}

/// Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, the inverse of the generator's `civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_date_time_of_a_line() {
        let mut times = EventTimes::default();
        let line = br#"{"event_type":1,"person":null,"auction":{"id":1000,"dateTime":"2026-01-01 00:00:00.005","expires":"2026-01-01 00:00:09.000"},"bid":null}"#;
        assert_eq!(times.of(line), Some(1_767_225_600_005));
        // A pattern inside a string has its quotes escaped: not a key.
        assert_eq!(times.of(br#"{"a":"\"dateTime\":\"2020","dateTime":"2026-01-01 00:00:01.000"}"#), Some(1_767_225_601_000));
        assert_eq!(times.of(br#"{"dateTime":"2026-01-01 00:00:02"}"#), Some(1_767_225_602_000));
        assert_eq!(times.of(br#"{"dateTime":"2026-01-01 00:00:01.007"}"#), Some(1_767_225_601_007), "back a second");
        // 2028 is a leap year: 29 February exists.
        assert_eq!(times.of(br#"{"dateTime":"2028-02-29 12:00:00.000"}"#), Some(1_835_438_400_000));
        for bad in [
            &br#"{"event_type":2,"person":null}"#[..],
            br#"{"dateTime":"2026"}"#,
            br#"{"dateTime":"2026-13-01 00:00:00.000"}"#,
            br#"{"dateTime":"2026-01-01T00:00:00.000"}"#,
            br#"{"dateTime":"2026-01-01 0a:00:00.000"}"#,
            br#"{"dateTime":"2026-01-01 00:00:00.0"}"#,
            br#"{"dateTime":12}"#,
            br#"{"dateTime":"2026-01-01 00:00:00.000"#,
        ] {
            assert_eq!(times.of(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A bad text in the remembered second is still refused, and a good one after it read.
        assert_eq!(times.of(br#"{"dateTime":"2026-01-01 00:00:02.0x0"}"#), None);
        assert_eq!(times.of(br#"{"dateTime":"2026-01-01 00:00:02.010"}"#), Some(1_767_225_602_010));
    }

    #[test]
    fn reads_back_what_the_generator_writes() {
        let mut dates = super::super::DateCache::default();
        let mut times = EventTimes::default();
        for ms in [super::super::BASE_TIME_MS, 951_782_400_000 - 1, 0, 4_102_444_800_123] {
            let mut line = b"{\"dateTime\":\"".to_vec();
            dates.write(&mut line, ms);
            line.extend_from_slice(b"\"}");
            assert_eq!(times.of(&line), Some(ms as i64), "{}", String::from_utf8_lossy(&line));
        }
    }
}
