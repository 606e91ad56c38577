//! The codec benchmark (`cargo bench -p eddy --bench codecs`): Nexmark bids as record
//! values in each candidate encoding, through one call of a guest (`codec-guest`) per batch
//! of 1024 that decodes every value into a Rust struct, computes q1 (the price in euros) and
//! encodes the result in the same encoding: what any Rust operator pays per record for its
//! values. Also the bytes a value takes, which is what the exchange between TaskManagers
//! carries (its throughput is bytes-bound: `benches/exchange.py` measured 400-470 MB/s over
//! QUIC and 670-1070 MB/s in memory for 100-byte records).
//!
//! Candidates: JSON (what Eddy's values are today, times as text as in the shared event
//! files), MessagePack with field names (self-describing, so the host could still read a
//! named field for a built-in aggregate), MessagePack positional, CBOR with field names, and
//! postcard (positional with varints, a schema-based row: the reader must know the type).

use std::process::ExitCode;

use anyhow::{ensure, Context as _, Result};
use nexmark::event::Event;
use serde::Serialize;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

mod common;

use common::*;

mod bindings {
    wasmtime::component::bindgen!({ path: "../benches/wit", world: "codecs" });
}

const CODECS: [&str; 5] = ["JSON", "MessagePack, named", "MessagePack, positional", "CBOR, named", "postcard"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bid<T> {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: String,
    url: String,
    date_time: T,
    extra: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codec benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The first `n` bids of the generator (event time 10 M events a second, as the shared files).
fn bids(n: usize) -> Vec<nexmark::event::Bid> {
    let config = nexmark::config::NexmarkConfig { base_time: 1_767_225_600_000, first_rate: 10_000_000, next_rate: 10_000_000, ..Default::default() };
    nexmark::EventGenerator::new(config)
        .filter_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .take(n)
        .collect()
}

/// `bids` as a packed batch whose values are in encoding `codec`.
fn batch(codec: u8, bids: &[nexmark::event::Bid]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    fn to_bid<T>(b: &nexmark::event::Bid, time: T) -> Bid<T> {
        Bid { auction: b.auction as i64, bidder: b.bidder as i64, price: b.price as i64, channel: b.channel.clone(), url: b.url.clone(), date_time: time, extra: b.extra.clone() }
    }
    for b in bids {
        let ms = b.date_time as i64;
        let value = match codec {
            0 => serde_json::to_vec(&to_bid(b, format!("2026-01-01 00:00:{:02}.{:03}", (ms / 1000) % 60, ms % 1000)))?,
            1 => rmp_serde::to_vec_named(&to_bid(b, ms))?,
            2 => rmp_serde::to_vec(&to_bid(b, ms))?,
            3 => {
                let mut v = Vec::new();
                ciborium::into_writer(&to_bid(b, ms), &mut v)?;
                v
            }
            _ => postcard::to_allocvec(&to_bid(b, ms))?,
        };
        eddy::framing::push(&mut out, None, &value, Some(ms));
    }
    Ok(out)
}

fn run() -> Result<()> {
    let wasm = components_dir().join("codec_guest.wasm");
    if !wasm.exists() {
        eprintln!("missing component {}: build the components first (./dev build)", wasm.display());
        std::process::exit(2);
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    let engine = Engine::new(&config)?;
    let component = Component::new(&engine, std::fs::read(&wasm)?).map_err(anyhow::Error::from).context("compiling codec_guest.wasm")?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let mut store = Store::new(&engine, Ctx::default());
    let guest = bindings::Codecs::instantiate(&mut store, &component, &linker).map_err(anyhow::Error::from)?;

    let bids = bids(BATCH);
    println!("codec benchmark: Nexmark q1 over {BATCH} bids a call (decode, map, encode in the guest), {RUNS} runs of >= {RUN_TIME:?}, medians");
    println!();
    println!("| encoding | bytes per bid | bytes per q1 row | records/s through the guest | of JSON's | bids/s at 435 MB/s (QUIC) |");
    println!("|---|---|---|---|---|---|");
    let mut json = None;
    for (codec, name) in CODECS.iter().enumerate() {
        let input = batch(codec as u8, &bids)?;
        let out = guest.call_q1(&mut store, codec as u8, &input)?.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let rows = eddy::framing::records(&out).count();
        ensure!(rows == BATCH, "{name}: {rows} rows out of {BATCH}");
        let value_bytes = |b: &[u8]| eddy::framing::records(b).map(|r| r.unwrap().value.len()).sum::<usize>() as f64 / BATCH as f64;
        let m = measure(BATCH, input.len(), || guest.call_q1(&mut store, codec as u8, &input)?.map(drop).map_err(anyhow::Error::msg))?;
        let json_rate = *json.get_or_insert(m.records_per_s);
        // Framed: flags, timestamp, length; what the exchange moves per record.
        let framed = input.len() as f64 / BATCH as f64;
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} M | {:.2}x | {:.2} M |",
            value_bytes(&input),
            value_bytes(&out),
            m.records_per_s / 1e6,
            m.records_per_s / json_rate,
            435e6 / framed / 1e6
        );
    }
    Ok(())
}
