//! The Nexmark events, drawn by the rules of the `nexmark` crate (RisingWave's port of the
//! reference generator) with the same random draws, so ids, prices, times, names and
//! channels are the crate's, but written straight into a batch: no `String` per field,
//! no clone of a channel's URL.
//!
//! One rule differs, as in the reference's own Flink generator (nexmark-flink): the
//! `extra` padding. The crate draws each of its letters (about 70 per bid, most of the
//! cost of an event); nexmark-flink cuts it from one reusable random string at a random
//! offset, one draw per event. Its length is still the crate's draw, so an event's size
//! is the crate's too (see the test against the crate below).

use std::fmt::Write;
use std::sync::OnceLock;

use nexmark::config::NexmarkConfig;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{DateCache, Encoding};

/// Hot sellers, auctions and bidders are the first of each batch of this many.
const HOT_RATIO: usize = 100;
/// Random strings are at least this long (the reference's `MIN_STRING_LENGTH`).
const MIN_STRING_LENGTH: usize = 3;
/// Channels besides the hot ones, each with its URL (the crate's `CHANNEL_URL_MAP`).
const CHANNELS: usize = 10_000;
/// Length of the string `extra` paddings are cut from: 64 KiB, where nexmark-flink's is
/// 1 MiB, so that the pool stays in a core's cache (a miss per event cost 7 % of the
/// generator); it still holds 64 K different paddings of each length.
const EXTRA_POOL_BYTES: usize = 1 << 16;

/// What kind of event an event number makes: per `proportion_denominator` events, first
/// the persons, then the auctions, then the bids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Person,
    Auction,
    Bid,
}

/// Makes any event from its number alone.
pub struct Generator {
    config: NexmarkConfig,
    /// Persons + auctions + bids per cycle of kinds (50).
    proportion_denominator: usize,
    /// Microseconds of event time between events, in the reference's `f32` arithmetic.
    inter_event_delay: f32,
    /// Reused for the fields an event composes (names, addresses), so none allocates.
    scratch: [String; 3],
}

impl Generator {
    /// A generator at the constant rate `config.first_rate` (the only shape the source
    /// uses: its `next_rate` is the same).
    pub fn new(config: NexmarkConfig) -> Self {
        let proportion_denominator = config.person_proportion + config.auction_proportion + config.bid_proportion;
        let inter_event_delay = config.us_per_unit as f32 / config.first_rate as f32 * config.num_event_generators as f32;
        Generator { config, proportion_denominator, inter_event_delay, scratch: Default::default() }
    }

    /// Event time of event `n`, in milliseconds.
    pub fn timestamp(&self, n: u64) -> u64 {
        self.config.base_time + round((n as f32 * self.inter_event_delay) / 1000.0)
    }

    pub fn kind(&self, n: u64) -> Kind {
        let rem = n as usize % self.proportion_denominator;
        if rem < self.config.person_proportion {
            Kind::Person
        } else if rem < self.config.person_proportion + self.config.auction_proportion {
            Kind::Auction
        } else {
            Kind::Bid
        }
    }

    /// Writes event `n` as the object of the shared event files:
    /// `{"event_type":0|1|2,"person":{…}|null,"auction":{…}|null,"bid":{…}|null}`.
    /// `time` is [`Generator::timestamp`] of `n`, which the caller has already computed.
    pub fn write(&mut self, n: u64, time: u64, out: &mut impl Encoding, dates: &mut DateCache) {
        let kind = self.kind(n);
        out.object(4);
        out.key("event_type");
        out.int(kind as usize);
        out.key("person");
        if kind == Kind::Person {
            self.person(n, time, out, dates);
        } else {
            out.null();
        }
        out.key("auction");
        if kind == Kind::Auction {
            self.auction(n, time, out, dates);
        } else {
            out.null();
        }
        out.key("bid");
        if kind == Kind::Bid {
            self.bid(n, time, out, dates);
        } else {
            out.null();
        }
        out.end();
    }

    fn person(&mut self, n: u64, time: u64, out: &mut impl Encoding, dates: &mut DateCache) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let cfg = &self.config;
        let rng = &mut seeded(n);
        let [name, email, card] = &mut scratch;
        name.clear();
        name.push_str(cfg.first_names.choose(rng).expect("first names"));
        name.push(' ');
        name.push_str(cfg.last_names.choose(rng).expect("last names"));
        email.clear();
        push_letters(rng, email, 7);
        email.push('@');
        push_letters(rng, email, 5);
        email.push_str(".com");
        card.clear();
        for i in 0..4 {
            if i > 0 {
                card.push(' ');
            }
            // An `i32`, as the crate's unsuffixed literal: its draw depends on the type.
            let _ = write!(card, "{:04}", rng.gen_range(0..10_000i32));
        }
        let city = cfg.us_cities.choose(rng).expect("cities");
        let state = cfg.us_states.choose(rng).expect("states");
        let size = 8 + name.len() + email.len() + card.len() + city.len() + state.len();
        let extra = next_extra(rng, size, cfg.avg_person_byte_size);

        out.object(8);
        out.key("id");
        out.int(self.person_last_id(n as usize) + cfg.first_person_id);
        for (key, text) in [("name", &**name), ("emailAddress", email), ("creditCard", card), ("city", city), ("state", state)] {
            out.key(key);
            out.str(text);
        }
        out.key("dateTime");
        out.date(time, dates);
        out.key("extra");
        out.str(extra);
        out.end();
        self.scratch = scratch;
    }

    fn auction(&mut self, n: u64, time: u64, out: &mut impl Encoding, dates: &mut DateCache) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let event = n as usize;
        let rng = &mut seeded(n);
        let [item, description, _] = &mut scratch;
        item.clear();
        push_letters(rng, item, 20);
        description.clear();
        push_letters(rng, description, 100);
        let initial_bid = price(rng);
        let reserve = initial_bid + price(rng);
        let expires = time + self.auction_length(event, rng, time);
        let cfg = &self.config;
        let seller = if rng.gen_range(0..cfg.hot_seller_ratio) > 0 {
            (self.person_last_id(event) / HOT_RATIO) * HOT_RATIO
        } else {
            self.person_next_id(event, rng)
        } + cfg.first_person_id;
        let category = cfg.first_category_id + rng.gen_range(0..cfg.num_categories);
        let extra = next_extra(rng, 8 + item.len() + description.len() + 40, cfg.avg_auction_byte_size);

        out.object(10);
        out.key("id");
        out.int(self.auction_last_id(event) + cfg.first_auction_id);
        out.key("itemName");
        out.str(item);
        out.key("description");
        out.str(description);
        out.key("initialBid");
        out.int(initial_bid);
        out.key("reserve");
        out.int(reserve);
        out.key("dateTime");
        out.date(time, dates);
        out.key("expires");
        out.date(expires, dates);
        out.key("seller");
        out.int(seller);
        out.key("category");
        out.int(category);
        out.key("extra");
        out.str(extra);
        out.end();
        self.scratch = scratch;
    }

    fn bid(&mut self, n: u64, time: u64, out: &mut impl Encoding, dates: &mut DateCache) {
        let cfg = &self.config;
        let event = n as usize;
        let rng = &mut seeded(n);
        // Most bids are for a hot auction: the first of the last HOT_RATIO auctions.
        let auction = if rng.gen_range(0..cfg.hot_auction_ratio) > 0 {
            (self.auction_last_id(event) / HOT_RATIO) * HOT_RATIO
        } else {
            self.auction_next_id(event, rng)
        };
        // Most by a hot bidder: the second of the last HOT_RATIO persons (the first is
        // the hot seller).
        let bidder = if rng.gen_range(0..cfg.hot_bidder_ratio) > 0 {
            (self.person_last_id(event) / HOT_RATIO) * HOT_RATIO + 1
        } else {
            self.person_next_id(event, rng)
        };
        let price = price(rng);
        let [name, link, _] = &mut self.scratch;
        let (channel, url) = if rng.gen_range(0..cfg.hot_channel_ratio) > 0 {
            let i = rng.gen_range(0..cfg.hot_channels.len());
            (&*cfg.hot_channels[i], &*cfg.hot_urls[i])
        } else {
            // The draw of `choose` on a slice of CHANNELS.
            let i = rng.gen_range(0..CHANNELS as u32) as usize;
            channels().write(i, name, link);
            (&**name, &**link)
        };
        let extra = next_extra(rng, 32, cfg.avg_bid_byte_size);

        out.object(7);
        out.key("auction");
        out.int(auction + cfg.first_auction_id);
        out.key("bidder");
        out.int(bidder + cfg.first_person_id);
        out.key("price");
        out.int(price);
        out.key("channel");
        out.str(channel);
        out.key("url");
        out.str(url);
        out.key("dateTime");
        out.date(time, dates);
        out.key("extra");
        out.str(extra);
        out.end();
    }

    /// The newest person's id (from 0) at event `event`: its own if it makes a person.
    fn person_last_id(&self, event: usize) -> usize {
        let cfg = &self.config;
        let epoch = event / self.proportion_denominator;
        let offset = (event % self.proportion_denominator).min(cfg.person_proportion - 1);
        epoch * cfg.person_proportion + offset
    }

    /// A random person among the active ones, or a little past the newest.
    fn person_next_id(&self, event: usize, rng: &mut SmallRng) -> usize {
        let people = self.person_last_id(event) + 1;
        let active = people.min(self.config.active_people);
        people - active + rng.gen_range(0..active + self.config.person_id_lead)
    }

    /// The newest auction's id (from 0) at event `event`: its own if it makes an auction.
    fn auction_last_id(&self, event: usize) -> usize {
        let cfg = &self.config;
        let mut epoch = event / self.proportion_denominator;
        let mut offset = event % self.proportion_denominator;
        if offset < cfg.person_proportion {
            // Past the persons of a cycle whose auctions are still to come: the previous
            // cycle's last. (The crate underflows at event 0 the same way, harmlessly, as
            // an auction or a bid is never event 0.)
            epoch = epoch.wrapping_sub(1);
            offset = cfg.auction_proportion - 1;
        } else if cfg.person_proportion + cfg.auction_proportion <= offset {
            offset = cfg.auction_proportion - 1;
        } else {
            offset -= cfg.person_proportion;
        }
        epoch.wrapping_mul(cfg.auction_proportion).wrapping_add(offset)
    }

    /// A random auction among those in flight, or a little past the newest.
    fn auction_next_id(&self, event: usize, rng: &mut SmallRng) -> usize {
        let max = self.auction_last_id(event);
        let min = max.saturating_sub(self.config.in_flight_auctions);
        min + rng.gen_range(0..max - min + 1 + self.config.auction_id_lead)
    }

    /// How long an auction opened at `time` by event `event` runs, in milliseconds: up
    /// to twice the event time until as many auctions as are in flight have opened.
    fn auction_length(&self, event: usize, rng: &mut SmallRng, time: u64) -> u64 {
        let cfg = &self.config;
        let events_for_auctions = (cfg.in_flight_auctions * self.proportion_denominator) / cfg.auction_proportion;
        let horizon = self.timestamp((event + events_for_auctions) as u64) - time;
        1 + rng.gen_range(0..(horizon * 2).max(1))
    }
}

/// A price in cents, log-uniform from 1 dollar to 1 million.
fn price(rng: &mut SmallRng) -> usize {
    round(10.0_f32.powf(rng.gen::<f32>() * 6.0) * 100.0) as usize
}

/// `x.round() as u64` for `x` from 0 up (halves away from zero), without the call to libm's
/// `roundf` that `f32::round` is on x86-64 CPUs without SSE4.1: two per event otherwise.
#[inline]
fn round(x: f32) -> u64 {
    let whole = x as u64;
    // Exact: below 2^24 `whole` converts back exactly and the difference is exact; from
    // 2^23 up an `f32` has no fraction, so the difference is 0.
    if x - whole as f32 >= 0.5 {
        whole + 1
    } else {
        whole
    }
}

/// Appends `len` random lower-case letters, one draw each (the crate's exact strings).
fn push_letters(rng: &mut SmallRng, out: &mut String, len: usize) {
    out.extend((0..len).map(|_| char::from(rng.gen_range(b'a'..=b'z'))));
}

/// Padding that brings an event of `size` bytes to `average` bytes on average (±20 %):
/// the crate's draw of its length, then nexmark-flink's cut from the shared pool.
fn next_extra(rng: &mut SmallRng, size: usize, average: usize) -> &'static str {
    if size > average {
        return "";
    }
    let average = average - size;
    let delta = (average + 2) / 5;
    let len = average - delta + if delta == 0 { 0 } else { rng.gen_range(0..2 * delta) };
    let pool = extra_pool();
    let len = len.min(pool.len());
    let at = rng.gen_range(0..=pool.len() - len);
    &pool[at..at + len]
}

/// The random lower-case letters `extra` paddings are cut from, the same in every process.
fn extra_pool() -> &'static str {
    static POOL: OnceLock<String> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = String::with_capacity(EXTRA_POOL_BYTES);
        // Any fixed seed ("nexmark" in ASCII): a replay must cut the same paddings.
        push_letters(&mut seeded(0x006e_6578_6d61_726b), &mut pool, EXTRA_POOL_BYTES);
        pool
    })
}

/// The channels besides the hot ones, as the crate makes them, packed: the 10 000 of them
/// as `String` pairs were half a megabyte, and the pick of one by half the bids missed the
/// cache (8 % of `Generator::write`'s time). Channel `i` is named `channel-{i}`; its URL
/// is [`URL_HEAD`], its path, [`URL_TAIL`] and, for most, its id.
struct Channels {
    /// Every channel's three path segments of 3–4 letters or `_`, joined by `/`.
    paths: String,
    /// Per channel: where its path is in `paths`.
    list: Vec<Channel>,
}

#[derive(Clone, Copy)]
struct Channel {
    /// Where its path starts in `paths`, and how long it is.
    at: u32,
    len: u8,
    /// Whether the URL ends in `&channel_id=` and the channel's id.
    with_id: bool,
}

const URL_HEAD: &str = "https://www.nexmark.com/";
const URL_TAIL: &str = "/item.htm?query=1";

impl Channels {
    fn new() -> Self {
        let mut channels = Channels { paths: String::new(), list: Vec::with_capacity(CHANNELS) };
        for i in 0..CHANNELS as u64 {
            let at = channels.paths.len();
            let rng = &mut seeded(i);
            for segment in 0..3 {
                if segment > 0 {
                    channels.paths.push('/');
                }
                for _ in 0..rng.gen_range(MIN_STRING_LENGTH..5) {
                    channels.paths.push(if rng.gen_range(0..13i32) == 0 { '_' } else { char::from(rng.gen_range(b'a'..=b'z')) });
                }
            }
            let len = (channels.paths.len() - at) as u8;
            channels.list.push(Channel { at: at as u32, len, with_id: seeded(i).gen_range(0..10i32) > 0 });
        }
        channels
    }

    /// Writes channel `i`'s name and URL.
    fn write(&self, i: usize, name: &mut String, url: &mut String) {
        let Channel { at, len, with_id } = self.list[i];
        let mut digits = itoa::Buffer::new();
        name.clear();
        name.push_str("channel-");
        name.push_str(digits.format(i));
        url.clear();
        url.push_str(URL_HEAD);
        url.push_str(&self.paths[at as usize..at as usize + usize::from(len)]);
        url.push_str(URL_TAIL);
        if with_id {
            url.push_str("&channel_id=");
            url.push_str(digits.format(i64::from((i as i32).reverse_bits()).abs()));
        }
    }
}

fn channels() -> &'static Channels {
    static TABLE: OnceLock<Channels> = OnceLock::new();
    TABLE.get_or_init(Channels::new)
}

/// `SmallRng::seed_from_u64(n)`: the same state, from the same PCG32 words, but built in
/// registers. Its own version, not inlined, stores the words four bytes at a time and then
/// loads them eight at a time, which stalls (8 % of `Generator::write`'s time).
#[inline(always)]
fn seeded(mut n: u64) -> SmallRng {
    const MUL: u64 = 6364136223846793005;
    const INC: u64 = 11634580027462260723;
    let mut pcg32 = || {
        n = n.wrapping_mul(MUL).wrapping_add(INC);
        ((((n >> 18) ^ n) >> 27) as u32).rotate_right((n >> 59) as u32)
    };
    let mut seed = [0u8; 32];
    for word in seed.chunks_exact_mut(8) {
        let low = u64::from(pcg32());
        word.copy_from_slice(&(low | u64::from(pcg32()) << 32).to_le_bytes());
    }
    SmallRng::from_seed(seed)
}

#[cfg(test)]
mod tests {
    use nexmark::event::Event;
    use nexmark::EventGenerator;
    use serde_json::{json, Value};

    use super::super::{config, Json};
    use super::*;

    /// The crate's event as the object this generator writes, `extra` left out.
    fn crates(event: &Event) -> Value {
        let date = |ms: u64| {
            let mut text = Vec::new();
            DateCache::default().write(&mut text, ms);
            String::from_utf8(text).unwrap()
        };
        let (kind, body) = match event {
            Event::Person(p) => (0, json!({"id": p.id, "name": p.name, "emailAddress": p.email_address,
                "creditCard": p.credit_card, "city": p.city, "state": p.state, "dateTime": date(p.date_time),
                "extra": p.extra.len()})),
            Event::Auction(a) => (1, json!({"id": a.id, "itemName": a.item_name, "description": a.description,
                "initialBid": a.initial_bid, "reserve": a.reserve, "dateTime": date(a.date_time),
                "expires": date(a.expires), "seller": a.seller, "category": a.category, "extra": a.extra.len()})),
            Event::Bid(b) => (2, json!({"auction": b.auction, "bidder": b.bidder, "price": b.price,
                "channel": b.channel, "url": b.url, "dateTime": date(b.date_time), "extra": b.extra.len()})),
        };
        let mut v = json!({"event_type": kind, "person": null, "auction": null, "bid": null});
        v[["person", "auction", "bid"][kind]] = body;
        v
    }

    #[test]
    fn events_are_the_crates_but_for_the_letters_of_their_padding() {
        for rate in [1_000, 10_000_000] {
            let mut ours = Generator::new(config(rate));
            let mut dates = DateCache::default();
            // Far enough for every auction and person id to leave its first cycle, and for
            // both kinds of channel.
            for (n, event) in EventGenerator::new(config(rate)).take(20_000).enumerate() {
                let mut text = Vec::new();
                ours.write(n as u64, ours.timestamp(n as u64), &mut Json(&mut text), &mut dates);
                let mut v: Value = serde_json::from_slice(&text).unwrap();
                let body = &mut v[["person", "auction", "bid"][ours.kind(n as u64) as usize]];
                let extra = body["extra"].as_str().unwrap().to_string();
                assert!(extra.bytes().all(|b| b.is_ascii_lowercase()), "{extra}");
                body["extra"] = json!(extra.len());
                assert_eq!(v, crates(&event), "event {n} at {rate}/s");
                assert_eq!(ours.timestamp(n as u64), event.timestamp());
            }
        }
    }

    #[test]
    fn seeding_is_the_crates() {
        for n in [0, 1, 2, 49, 1 << 32, u64::MAX, 0x006e_6578_6d61_726b] {
            let (ours, theirs) = (&mut seeded(n), &mut SmallRng::seed_from_u64(n));
            for _ in 0..8 {
                assert_eq!(ours.gen::<u64>(), theirs.gen::<u64>(), "seed {n}");
            }
        }
    }

    #[test]
    fn every_channel_is_the_crates() {
        // The crate's way: its URL map, a `String` per channel.
        let url_of = |i: u64| {
            let rng = &mut SmallRng::seed_from_u64(i);
            let mut segment = || -> String {
                let len = rng.gen_range(MIN_STRING_LENGTH..5);
                (0..len).map(|_| if rng.gen_range(0..13i32) == 0 { '_' } else { char::from(rng.gen_range(b'a'..=b'z')) }).collect()
            };
            let (a, b, c) = (segment(), segment(), segment());
            let mut url = format!("https://www.nexmark.com/{a}/{b}/{c}/item.htm?query=1");
            if SmallRng::seed_from_u64(i).gen_range(0..10i32) > 0 {
                let _ = write!(url, "&channel_id={}", i64::from((i as i32).reverse_bits()).abs());
            }
            url
        };
        let (mut name, mut url) = (String::new(), String::new());
        for i in 0..CHANNELS {
            channels().write(i, &mut name, &mut url);
            assert_eq!((&*name, &*url), (&*format!("channel-{i}"), &*url_of(i as u64)));
        }
    }

    #[test]
    fn rounding_is_f32_round() {
        let mut xs = vec![0.0f32, 0.5, 1.5, 2.5, 0.499_999_97, 8_388_607.5, 8_388_608.0, 16_777_217.0, 1e12, 99.5];
        xs.extend((0..100_000).map(|i| i as f32 * 0.137));
        for x in xs {
            assert_eq!(round(x), x.round() as u64, "{x}");
        }
    }

    #[test]
    fn paddings_differ_between_events() {
        let mut ours = Generator::new(config(1000));
        let mut dates = DateCache::default();
        let extras: std::collections::HashSet<String> = (0..1000u64)
            .map(|n| {
                let mut text = Vec::new();
                ours.write(n, ours.timestamp(n), &mut Json(&mut text), &mut dates);
                let v: Value = serde_json::from_slice(&text).unwrap();
                v[["person", "auction", "bid"][ours.kind(n) as usize]]["extra"].as_str().unwrap().to_string()
            })
            .collect();
        assert!(extras.len() > 990, "{} distinct paddings of 1000", extras.len());
    }
}
