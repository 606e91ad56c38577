//! The Nexmark benchmark's queries as Eddy jobs, one entry per query, following the
//! reference SQL (`../shared/bench/flink/nexmark/q*.sql`).
//!
//! Every entry reads its events from the host's generator (`--events N`, default 1 000 000;
//! `--event-rate R` events per second of event time, default 10 000 000 as the shared
//! event files; `--rate R` to hold the source to R events per second) or, with
//! `--input FILE`, from a JSON-lines file of the shared format (`nexmark_gen.py`). Results
//! go to part files under `--output DIR`, to standard output with `--print`, or, by
//! default, are counted and dropped, as the reference's `blackhole` sink does. Values
//! travel as MessagePack, or as JSON with `--codec json` (the results are the same).
//!
//! | entry | what it computes |
//! |---|---|
//! | `q0` | every bid (pass-through) |
//! | `q1` | every bid, its price in euros |
//! | `q2` | the bids on auctions whose id is a multiple of 123 |
//! | `q3` | auctions of category 10 with their sellers of OR, ID or CA (a join) |
//! | `q4` | per category the average winning price of its auctions (updates as auctions close) |
//! | `q5` | per sliding window (10 s every 2 s) the auctions with the most bids |
//! | `q7` | per tumbling 10 s window the bids at the window's highest price |
//! | `q8` | persons who registered and opened an auction in the same 10 s window |
//! | `q11` | per bidder, bids per session (closed by a 10 s gap) |
//! | `q12` | per bidder, bids per 10 s tumbling window of processing time |
//! | `events` | the events themselves |
//!
//! Each query reads only the fields it uses (`Stream::project` with its own person,
//! auction and bid types): the others are skipped undecoded, as Flink SQL projects the
//! columns of its source.

use eddy_sdk::nexmark::{date_time, Event, NexmarkSource, Skip};
use eddy_sdk::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Sliding and tumbling windows of the queries: 10 s.
const WINDOW_MS: u64 = 10_000;
/// q5's slide.
const SLIDE_MS: u64 = 2_000;

/// The events of a query: the generator's, or a file's (`--input`).
fn events(env: &mut Env, args: &Args) -> Result<Stream<Event>, String> {
    match args.get("codec") {
        None | Some("msgpack") => env.set_value_codec(ValueCodec::Msgpack),
        Some("json") => env.set_value_codec(ValueCodec::Json),
        Some(other) => return Err(format!("--codec must be json or msgpack, not '{other}'")),
    };
    if let Some(path) = args.get("input") {
        return Ok(env.read_nexmark_file(path));
    }
    let mut source = NexmarkSource::new(args.parse_or("events", 1_000_000u64)?);
    if args.has("event-rate") {
        source = source.event_rate(args.parse_required("event-rate")?);
    }
    if args.has("rate") {
        source = source.per_second(args.parse_required("rate")?);
    }
    Ok(env.read_nexmark(source))
}

/// Where a query's rows go: `--output DIR`, `--print`, or nowhere.
fn sink<T>(rows: Stream<T>, args: &Args) {
    match args.get("output") {
        Some(dir) => rows.write_text_file(dir),
        None if args.has("print") => rows.print(),
        None => rows.discard(),
    };
}

/// The bids, each read as a `B`: the fields of a bid the query uses.
fn bids<B>(events: Stream<Event>) -> Stream<B>
where
    B: Serialize + DeserializeOwned + 'static,
{
    events
        .project::<Skip, Skip, B>()
        .flat_map(|e: Event<Skip, Skip, B>| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .name("bids")
}

/// A bid as q0, q1 and q7 select it (all but its channel and URL).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BidRow {
    auction: i64,
    bidder: i64,
    price: i64,
    #[serde(with = "date_time")]
    date_time: i64,
    extra: String,
}

fn q0(env: &mut Env, args: &Args) -> Result<(), String> {
    sink(bids::<BidRow>(events(env, args)?).name("q0"), args);
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Q1 {
    auction: i64,
    bidder: i64,
    /// `0.908 * price`: exact to the thousandth, as the SQL's DECIMAL(23, 3).
    price: f64,
    #[serde(with = "date_time")]
    date_time: i64,
    extra: String,
}

fn q1(env: &mut Env, args: &Args) -> Result<(), String> {
    let rows = bids(events(env, args)?).map(|b: BidRow| Q1 {
        auction: b.auction,
        bidder: b.bidder,
        price: (b.price * 908) as f64 / 1000.0,
        date_time: b.date_time,
        extra: b.extra,
    });
    sink(rows.name("q1"), args);
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Q2 {
    auction: i64,
    price: i64,
}

fn q2(env: &mut Env, args: &Args) -> Result<(), String> {
    let rows = bids(events(env, args)?).filter(|b: &Q2| b.auction % 123 == 0).name("auction % 123 = 0");
    sink(rows.name("q2"), args);
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Q3 {
    name: String,
    city: String,
    state: String,
    id: i64,
}

/// A person as q3 reads it.
#[derive(Serialize, Deserialize)]
struct Seller {
    id: i64,
    name: String,
    city: String,
    state: String,
}

/// An auction as q3 and q8 read it.
#[derive(Serialize, Deserialize)]
struct Sold {
    id: i64,
    seller: i64,
    category: i64,
}

/// The events of q3.
type Q3Event = Event<Seller, Sold, Skip>;

/// q3 joins auctions to their sellers, unwindowed: whichever comes first waits in the
/// seller's keyed state for the other (a person arrives once, auctions any number of times).
fn q3(env: &mut Env, args: &Args) -> Result<(), String> {
    let rows = events(env, args)?
        .project()
        .filter(|e: &Q3Event| match e {
            Event::Person(p) => matches!(p.state.as_str(), "OR" | "ID" | "CA"),
            Event::Auction(a) => a.category == 10,
            Event::Bid(_) => false,
        })
        .name("sellers of OR, ID, CA; auctions of category 10")
        .key_by(|e: &Q3Event| match e {
            Event::Person(p) => p.id,
            Event::Auction(a) => a.seller,
            Event::Bid(_) => 0,
        })
        .process(|ctx: &mut KeyedCtx<i64, Q3>, e: Q3Event| {
            let person = ctx.value_state::<(String, String, String)>("person");
            let waiting = ctx.list_state::<i64>("auctions");
            match e {
                Event::Person(p) => {
                    for id in waiting.get()? {
                        ctx.collect(Q3 { name: p.name.clone(), city: p.city.clone(), state: p.state.clone(), id });
                    }
                    waiting.clear()?;
                    person.set(&(p.name, p.city, p.state))?;
                }
                Event::Auction(a) => match person.get()? {
                    Some((name, city, state)) => ctx.collect(Q3 { name, city, state, id: a.id }),
                    None => waiting.add(&a.id)?,
                },
                Event::Bid(_) => {}
            }
            Ok(())
        })
        .name("join auctions with sellers");
    sink(rows.name("q3"), args);
    Ok(())
}

/// An auction as q4 keeps it until it closes.
#[derive(Serialize, Deserialize)]
struct Open {
    category: i64,
    date_time: i64,
    expires: i64,
    /// Highest price among its bids between `date_time` and `expires`.
    best: Option<i64>,
    /// The timer fired: later bids are past `expires` and change nothing.
    closed: bool,
}

#[derive(Serialize, Deserialize)]
struct Q4 {
    id: i64,
    #[serde(rename = "final")]
    average: i64,
}

/// An auction as q4 reads it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Q4Auction {
    id: i64,
    category: i64,
    #[serde(with = "date_time")]
    date_time: i64,
    #[serde(with = "date_time")]
    expires: i64,
}

/// A bid as q4 reads it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Offer {
    auction: i64,
    price: i64,
    #[serde(with = "date_time")]
    date_time: i64,
}

/// The events of q4.
type Q4Event = Event<Skip, Q4Auction, Offer>;

/// q4: each auction's winning price (its highest bid between its start and its end) once
/// event time passes its end, then per category the running average of those (truncated,
/// as SQL's AVG of a BIGINT). Bids that come before their auction wait in its state.
fn q4(env: &mut Env, args: &Args) -> Result<(), String> {
    let winners = events(env, args)?
        .project()
        .filter(|e: &Q4Event| !matches!(e, Event::Person(_)))
        .name("auctions and bids")
        .key_by(|e: &Q4Event| match e {
            Event::Auction(a) => a.id,
            Event::Bid(b) => b.auction,
            Event::Person(_) => 0,
        })
        .process_with_timers(
            |ctx: &mut KeyedCtx<i64, (i64, i64)>, e: Q4Event| {
                let open = ctx.value_state::<Open>("auction");
                let early = ctx.list_state::<(i64, i64)>("early bids");
                match e {
                    Event::Auction(a) => {
                        let in_time = |&(_, t): &(i64, i64)| a.date_time <= t && t <= a.expires;
                        let best = early.get()?.into_iter().filter(in_time).map(|(price, _)| price).max();
                        early.clear()?;
                        ctx.register_event_time_timer(a.expires)?;
                        open.set(&Open { category: a.category, date_time: a.date_time, expires: a.expires, best, closed: false })
                    }
                    Event::Bid(b) => match open.get()? {
                        Some(mut o) if !o.closed && o.date_time <= b.date_time && b.date_time <= o.expires => {
                            if o.best.is_none_or(|best| b.price > best) {
                                o.best = Some(b.price);
                                open.set(&o)?;
                            }
                            Ok(())
                        }
                        Some(_) => Ok(()),
                        None => early.add(&(b.price, b.date_time)),
                    },
                    Event::Person(_) => Ok(()),
                }
            },
            |ctx: &mut KeyedCtx<i64, (i64, i64)>, _timer: Timer| {
                let open = ctx.value_state::<Open>("auction");
                if let Some(mut o) = open.get()? {
                    if let Some(best) = o.best {
                        ctx.collect((o.category, best));
                    }
                    o.closed = true;
                    open.set(&o)?;
                }
                Ok(())
            },
        )
        .name("winning bids");
    let rows = winners
        .key_by(|(category, _): &(i64, i64)| *category)
        .process(|ctx: &mut KeyedCtx<i64, Q4>, (category, price): (i64, i64)| {
            let totals = ctx.value_state::<(i64, i64)>("sum and count");
            let (sum, n) = totals.get()?.unwrap_or((0, 0));
            let (sum, n) = (sum + price, n + 1);
            totals.set(&(sum, n))?;
            ctx.collect(Q4 { id: category, average: sum / n });
            Ok(())
        })
        .name("average per category");
    sink(rows.name("q4"), args);
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Q5 {
    auction: i64,
    num: u64,
    #[serde(with = "date_time")]
    window_start: i64,
    #[serde(with = "date_time")]
    window_end: i64,
}

/// A bid as q5 reads it.
#[derive(Serialize, Deserialize)]
struct AuctionOf {
    auction: i64,
}

/// q5: bids per auction and sliding window (the host's windowed count), then per window the
/// highest count, keeping every auction that reaches it (ties too).
fn q5(env: &mut Env, args: &Args) -> Result<(), String> {
    let counts = bids(events(env, args)?)
        .map(|b: AuctionOf| b.auction)
        .key_by(|a: &i64| *a)
        .window(Window::sliding_event_time(WINDOW_MS, SLIDE_MS))
        .count()
        .name("bids per auction and window");
    let rows = counts
        // A window's results carry its last millisecond as their time.
        .process(|ctx: &mut Ctx<(i64, u64, i64)>, (auction, n): (i64, u64)| {
            let end = ctx.timestamp().ok_or("a window result without a time")? + 1;
            ctx.collect((auction, n, end));
            Ok(())
        })
        .key_by(|(_, _, end): &(i64, u64, i64)| *end)
        .process_with_timers(
            |ctx: &mut KeyedCtx<i64, Q5>, (auction, n, end): (i64, u64, i64)| {
                let best = ctx.value_state::<(u64, Vec<i64>)>("best");
                let next = match best.get()? {
                    None => {
                        ctx.register_event_time_timer(end - 1)?;
                        (n, vec![auction])
                    }
                    Some((max, auctions)) if n < max => (max, auctions),
                    Some((max, mut auctions)) if n == max => {
                        auctions.push(auction);
                        (max, auctions)
                    }
                    Some(_) => (n, vec![auction]),
                };
                best.set(&next)
            },
            |ctx: &mut KeyedCtx<i64, Q5>, timer: Timer| {
                let end = timer.timestamp + 1;
                let best = ctx.value_state::<(u64, Vec<i64>)>("best");
                if let Some((num, auctions)) = best.get()? {
                    for auction in auctions {
                        ctx.collect(Q5 { auction, num, window_start: end - WINDOW_MS as i64, window_end: end });
                    }
                }
                best.clear()
            },
        )
        .name("hottest auctions per window");
    sink(rows.name("q5"), args);
    Ok(())
}

/// q7: per tumbling window the bids at its highest price. Each window is one key, whose
/// state holds the highest price so far and the bids at it.
fn q7(env: &mut Env, args: &Args) -> Result<(), String> {
    let rows = bids(events(env, args)?)
        .key_by(|b: &BidRow| b.date_time - b.date_time.rem_euclid(WINDOW_MS as i64))
        .process_with_timers(
            |ctx: &mut KeyedCtx<i64, BidRow>, b: BidRow| {
                let best = ctx.value_state::<(i64, Vec<BidRow>)>("best");
                // Only a new highest price or a tie changes the state.
                let next = match best.get()? {
                    None => {
                        ctx.register_event_time_timer(ctx.key() + WINDOW_MS as i64 - 1)?;
                        (b.price, vec![b])
                    }
                    Some((max, _)) if b.price < max => return Ok(()),
                    Some((max, mut bids)) if b.price == max => {
                        bids.push(b);
                        (max, bids)
                    }
                    Some(_) => (b.price, vec![b]),
                };
                best.set(&next)
            },
            |ctx: &mut KeyedCtx<i64, BidRow>, _timer: Timer| {
                let best = ctx.value_state::<(i64, Vec<BidRow>)>("best");
                for row in best.get()?.map(|(_, bids)| bids).unwrap_or_default() {
                    ctx.collect(row);
                }
                best.clear()
            },
        )
        .name("highest bids per window");
    sink(rows.name("q7"), args);
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Q8 {
    id: i64,
    name: String,
    #[serde(with = "date_time")]
    stime: i64,
}

/// A person as q8 reads it.
#[derive(Serialize, Deserialize)]
struct Registered {
    id: i64,
    name: String,
}

/// The events of q8.
type Q8Event = Event<Registered, Sold, Skip>;

/// q8: persons and their auctions keyed by person, in tumbling windows; a window that
/// holds the person and at least one of their auctions names them.
fn q8(env: &mut Env, args: &Args) -> Result<(), String> {
    let rows = events(env, args)?
        .project()
        .filter(|e: &Q8Event| !matches!(e, Event::Bid(_)))
        .name("persons and auctions")
        .key_by(|e: &Q8Event| match e {
            Event::Person(p) => p.id,
            Event::Auction(a) => a.seller,
            Event::Bid(_) => 0,
        })
        .window(Window::tumbling_event_time(WINDOW_MS))
        .process(|ctx: &mut Ctx<Q8>, id: i64, window: TimeWindow, events: Vec<Q8Event>| {
            let sold = events.iter().any(|e| matches!(e, Event::Auction(_)));
            for e in events {
                if let (Event::Person(p), true) = (e, sold) {
                    ctx.collect(Q8 { id, name: p.name, stime: window.start });
                }
            }
            Ok(())
        })
        .name("new sellers per window");
    sink(rows.name("q8"), args);
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct BidsPerWindow {
    bidder: i64,
    bid_count: u64,
    #[serde(with = "date_time")]
    starttime: i64,
    #[serde(with = "date_time")]
    endtime: i64,
}

/// A bid as q11 and q12 read it.
#[derive(Serialize, Deserialize)]
struct BidderOf {
    bidder: i64,
}

/// Bids per bidder and window (q11).
fn bids_per_bidder(events: Stream<Event>, window: Window) -> Stream<BidsPerWindow> {
    bids(events)
        .map(|b: BidderOf| b.bidder)
        .key_by(|bidder: &i64| *bidder)
        .window(window)
        .process(|ctx: &mut Ctx<BidsPerWindow>, bidder: i64, w: TimeWindow, bids: Vec<i64>| {
            ctx.collect(BidsPerWindow { bidder, bid_count: bids.len() as u64, starttime: w.start, endtime: w.end });
            Ok(())
        })
}

fn q11(env: &mut Env, args: &Args) -> Result<(), String> {
    let rows = bids_per_bidder(events(env, args)?, Window::session_event_time(WINDOW_MS));
    sink(rows.name("q11"), args);
    Ok(())
}

/// As q11's rows, but a tumbling window's bounds follow from its end, so the host counts
/// (no values kept) and the end is the result's time plus one, as in q5.
fn q12(env: &mut Env, args: &Args) -> Result<(), String> {
    let rows = bids(events(env, args)?)
        .map(|b: BidderOf| b.bidder)
        .key_by(|bidder: &i64| *bidder)
        .window(Window::tumbling_processing_time(WINDOW_MS))
        .count()
        .name("bids per bidder and window")
        .process(|ctx: &mut Ctx<BidsPerWindow>, (bidder, bid_count): (i64, u64)| {
            let end = ctx.timestamp().ok_or("a window result without a time")? + 1;
            ctx.collect(BidsPerWindow { bidder, bid_count, starttime: end - WINDOW_MS as i64, endtime: end });
            Ok(())
        });
    sink(rows.name("q12"), args);
    Ok(())
}

/// The events as they are: the generator's, as JSON lines of the shared format.
fn all_events(env: &mut Env, args: &Args) -> Result<(), String> {
    sink(events(env, args)?, args);
    Ok(())
}

eddy_sdk::entries! {
    "q0" => q0,
    "q1" => q1,
    "q2" => q2,
    "q3" => q3,
    "q4" => q4,
    "q5" => q5,
    "q7" => q7,
    "q8" => q8,
    "q11" => q11,
    "q12" => q12,
    "events" => all_events,
}
