//! Nexmark, the streaming benchmark of an online auction: its events as Rust types, and
//! the sources that make or read them ([`crate::Env::read_nexmark`],
//! [`crate::Env::read_nexmark_file`]).
//!
//! An event is the JSON object of the shared event files (`wit/README.md`):
//! `{"event_type":0|1|2,"person":{…}|null,"auction":{…}|null,"bid":{…}|null}`, with times
//! as UTC text `yyyy-MM-dd HH:mm:ss.SSS`; here they are epoch milliseconds.
//!
//! A query that reads a few fields decodes only those: [`Stream::project`] reads the
//! events as an [`Event`] of its own person, auction and bid types (structs of some of
//! the fields, or [`Skip`] for a kind it ignores), and the rest of each event is skipped
//! unread, as a SQL engine projects the columns of its source.

use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::bindings::eddy::stream::types::NexmarkSource as Spec;
use crate::Stream;

/// How far behind the largest event time the watermark of a Nexmark source stays, as in
/// the reference setup (`dateTime - INTERVAL '4' SECOND`).
pub const OUT_OF_ORDERNESS_MS: u64 = 4000;

/// Settings of a Nexmark source made by the host.
#[derive(Debug, Clone)]
pub struct NexmarkSource {
    pub(crate) spec: Spec,
}

impl NexmarkSource {
    /// `events` events, as fast as they go, at ten million events per second of event time
    /// (as the shared event files: ten million events share one second).
    pub fn new(events: u64) -> Self {
        NexmarkSource { spec: Spec { events, per_second: None, event_rate: 10_000_000 } }
    }

    /// At most `per_second` events per second over all subtasks.
    pub fn per_second(mut self, per_second: u64) -> Self {
        self.spec.per_second = Some(per_second);
        self
    }

    /// `rate` events per second of event time (the generator's `firstEventRate`).
    pub fn event_rate(mut self, rate: u64) -> Self {
        self.spec.event_rate = rate;
        self
    }
}

/// A person registering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Its id (persons from 1000, auctions from 1000).
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Email address.
    pub email_address: String,
    /// Credit card number, four groups of four digits.
    pub credit_card: String,
    /// City.
    pub city: String,
    /// US state, two capital letters.
    pub state: String,
    #[serde(with = "date_time")]
    /// When the event happened (epoch ms).
    pub date_time: i64,
    /// Padding towards the event's average size.
    pub extra: String,
}

/// An item put up for auction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auction {
    /// Its id (persons from 1000, auctions from 1000).
    pub id: i64,
    /// Name of the item.
    pub item_name: String,
    /// Its description.
    pub description: String,
    /// Opening price.
    pub initial_bid: i64,
    /// Lowest price that sells.
    pub reserve: i64,
    #[serde(with = "date_time")]
    /// When the event happened (epoch ms).
    pub date_time: i64,
    #[serde(with = "date_time")]
    /// When the auction ends (epoch ms).
    pub expires: i64,
    /// The seller's person id.
    pub seller: i64,
    /// Category id (10 to 14).
    pub category: i64,
    /// Padding towards the event's average size.
    pub extra: String,
}

/// A bid on an auction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    /// The auction's id.
    pub auction: i64,
    /// The bidder's person id.
    pub bidder: i64,
    /// Price offered.
    pub price: i64,
    /// Where the bid came from.
    pub channel: String,
    /// The page it was made on.
    pub url: String,
    #[serde(with = "date_time")]
    /// When the event happened (epoch ms).
    pub date_time: i64,
    /// Padding towards the event's average size.
    pub extra: String,
}

/// One Nexmark event: by default every field of it; [`Stream::project`] reads fewer.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<P = Person, A = Auction, B = Bid> {
    /// `event_type` 0.
    Person(P),
    /// `event_type` 1.
    Auction(A),
    /// `event_type` 2.
    Bid(B),
}

/// What a projected [`Event`] holds for a kind of event (or a field) its query does not
/// read: decoding skips its bytes without making anything of them; it encodes as `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d).map(|_| Skip)
    }
}

impl Serialize for Skip {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<P, A, B> Stream<Event<P, A, B>> {
    /// The same events, read as `Event<Q, C, D>`: the person, auction and bid types a
    /// query uses (any struct of some of their fields, or [`Skip`]), so that only those
    /// fields are decoded. Each event keeps its bytes, so later operators may project
    /// them differently again.
    pub fn project<Q, C, D>(self) -> Stream<Event<Q, C, D>> {
        self.retype()
    }
}

impl Event {
    /// The event's time (epoch milliseconds).
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

impl<P: Serialize, A: Serialize, B: Serialize> Serialize for Event<P, A, B> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("Event", 4)?;
        let none: Option<()> = None;
        match self {
            Event::Person(p) => {
                o.serialize_field("event_type", &0)?;
                o.serialize_field("person", p)?;
                o.serialize_field("auction", &none)?;
                o.serialize_field("bid", &none)?;
            }
            Event::Auction(a) => {
                o.serialize_field("event_type", &1)?;
                o.serialize_field("person", &none)?;
                o.serialize_field("auction", a)?;
                o.serialize_field("bid", &none)?;
            }
            Event::Bid(b) => {
                o.serialize_field("event_type", &2)?;
                o.serialize_field("person", &none)?;
                o.serialize_field("auction", &none)?;
                o.serialize_field("bid", b)?;
            }
        }
        o.end()
    }
}

impl<'de, P: Deserialize<'de>, A: Deserialize<'de>, B: Deserialize<'de>> Deserialize<'de> for Event<P, A, B> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw<P, A, B> {
            event_type: u8,
            person: Option<P>,
            auction: Option<A>,
            bid: Option<B>,
        }
        let raw = Raw::<P, A, B>::deserialize(d)?;
        let missing = |what| de::Error::custom(format!("a Nexmark event of type {} has no {what}", raw.event_type));
        match raw.event_type {
            0 => raw.person.map(Event::Person).ok_or_else(|| missing("person")),
            1 => raw.auction.map(Event::Auction).ok_or_else(|| missing("auction")),
            2 => raw.bid.map(Event::Bid).ok_or_else(|| missing("bid")),
            t => Err(de::Error::custom(format!("unknown Nexmark event_type {t} (0 person, 1 auction, 2 bid)"))),
        }
    }
}

/// Times as the shared event files write them: UTC `yyyy-MM-dd HH:mm:ss.SSS`.
pub mod date_time {
    use std::cell::Cell;

    use super::*;

    /// Writes epoch milliseconds as `yyyy-MM-dd HH:mm:ss.SSS`.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        let text = text(*ms);
        // SAFETY: `text` writes ASCII digits and separators only.
        s.serialize_str(unsafe { std::str::from_utf8_unchecked(&text) })
    }

    /// Reads `yyyy-MM-dd HH:mm:ss.SSS` (or a number of epoch milliseconds).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = i64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a time as \"yyyy-MM-dd HH:mm:ss.SSS\" or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                parse(v).ok_or_else(|| E::custom(format!("{v:?} is not a time as yyyy-MM-dd HH:mm:ss.SSS")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::custom("time out of range"))
            }
        }
        d.deserialize_any(Visitor)
    }

    /// `yyyy-MM-dd HH:mm:ss.SSS` (UTC; the milliseconds may be left out) as epoch milliseconds.
    pub fn parse(text: &str) -> Option<i64> {
        parse_bytes(text.as_bytes())
    }

    /// [`parse`] of bytes: anything but digits and separators fails it, UTF-8 or not.
    pub(crate) fn parse_bytes(b: &[u8]) -> Option<i64> {
        let ms = match b.len() {
            19 => 0,
            23 if b[19] == b'.' => digits(&b[20..23])?,
            _ => return None,
        };
        let second: [u8; 19] = b[..19].try_into().expect("19 bytes");
        // Events come in time order, so most share their second with the one before.
        let (last, at) = LAST_PARSED.get();
        if second == last {
            return Some(at + ms);
        }
        let at = parse_second(&second)?;
        LAST_PARSED.set((second, at));
        Some(at + ms)
    }

    thread_local! {
        /// The last `yyyy-MM-dd HH:mm:ss` parsed, and its epoch milliseconds.
        // Starts as a valid pair, so that only a valid text can ever match it.
        static LAST_PARSED: Cell<([u8; 19], i64)> = const { Cell::new((*b"1970-01-01 00:00:00", 0)) };
        /// The last second formatted, and its text (milliseconds aside).
        static LAST_TEXT: Cell<(i64, [u8; 23])> = const { Cell::new((i64::MIN, [0; 23])) };
    }

    fn digits(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    }

    /// `yyyy-MM-dd HH:mm:ss` as epoch milliseconds.
    fn parse_second(b: &[u8; 19]) -> Option<i64> {
        let seps = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
        if seps.iter().any(|&(i, c)| b[i] != c) {
            return None;
        }
        let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
        let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        Some(((days_from_civil(y, m, d) * 24 + h) * 60 + mi) * 60_000 + s * 1000)
    }

    /// Epoch milliseconds as `yyyy-MM-dd HH:mm:ss.SSS` (UTC).
    pub fn format(ms: i64) -> String {
        String::from_utf8(text(ms).to_vec()).expect("digits and separators")
    }

    /// The text of [`format`] without allocating: every output row of a query writes times
    /// (years 0 to 9999; others wrap, which no Nexmark time comes near).
    fn text(ms: i64) -> [u8; 23] {
        let (second, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        let (last, mut out) = LAST_TEXT.get();
        if second != last {
            out = second_text(second);
            LAST_TEXT.set((second, out));
        }
        out[20..23].copy_from_slice(&[b'0' + (milli / 100) as u8, b'0' + (milli / 10 % 10) as u8, b'0' + (milli % 10) as u8]);
        out
    }

    /// `yyyy-MM-dd HH:mm:ss.000` of a second since the epoch.
    fn second_text(second: i64) -> [u8; 23] {
        let (days, s) = (second.div_euclid(86_400), second.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let mut out = *b"0000-00-00 00:00:00.000";
        let mut put = |at: usize, width: usize, mut n: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + n.rem_euclid(10) as u8;
                n /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, s / 3600);
        put(14, 2, s / 60 % 60);
        put(17, 2, s % 60);
        out
    }

    // Howard Hinnant's conversions between days since 1970-01-01 and civil dates.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn civil_from_days(days: i64) -> (i64, i64, i64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_text() {
        for ms in [1_767_225_600_000, 1_767_225_600_123, 951_782_400_000 - 1, 0] {
            assert_eq!(date_time::parse(&date_time::format(ms)), Some(ms), "{ms}");
        }
        assert_eq!(date_time::format(1_767_225_600_007), "2026-01-01 00:00:00.007");
        assert_eq!(date_time::parse("2026-01-01 00:00:01"), Some(1_767_225_601_000));
        for bad in ["2026-01-01T00:00:00.000", "2026-13-01 00:00:00.000", "2026-01-01 00:00:00.0", "", "2026-01-01 0a:00:00.000"] {
            assert_eq!(date_time::parse(bad), None, "{bad}");
        }
        // Both directions keep the last second: neighbours in one second, across a second,
        // a day and back, and a bad millisecond after a good second.
        let times = [1_767_225_599_999, 1_767_225_600_000, 1_767_225_600_001, 1_767_225_600_999, 1_767_225_601_000, 1_767_225_600_500];
        for ms in times {
            assert_eq!(date_time::parse(&date_time::format(ms)), Some(ms), "{ms}");
        }
        assert_eq!(date_time::format(1_767_225_599_999), "2025-12-31 23:59:59.999");
        assert_eq!(date_time::format(1_767_225_599_001), "2025-12-31 23:59:59.001");
        assert_eq!(date_time::parse("2025-12-31 23:59:59.0a1"), None);
        assert_eq!(date_time::parse_bytes(&[0; 19]), None, "no text matches the cache but a valid one");
        assert_eq!(date_time::parse("1970-01-01 00:00:00.001"), Some(1));
        assert_eq!(date_time::parse("2025-12-31 23:59:59"), Some(1_767_225_599_000));
    }

    #[test]
    fn events_read_and_write_the_file_format() {
        let line = r#"{"event_type":2,"person":null,"auction":null,"bid":{"auction":1000,"bidder":1001,"price":42,"channel":"Google","url":"u","dateTime":"2026-01-01 00:00:00.005","extra":""}}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        assert_eq!(e.date_time(), 1_767_225_600_005);
        assert_eq!(serde_json::to_string(&e).unwrap(), line);
        let bad = r#"{"event_type":1,"person":null,"auction":null,"bid":null}"#;
        assert!(serde_json::from_str::<Event>(bad).unwrap_err().to_string().contains("has no auction"));
    }
}
