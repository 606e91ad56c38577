//! Guest of the codec benchmark (`benches/codecs.rs`): Nexmark q1 over a packed batch of
//! bids whose values are in one of the candidate encodings, results in the same encoding.
//! The work per record is what a Rust operator does with any encoding: decode the value
//! into its type, compute, encode the result.

use serde::{Deserialize, Serialize};

wit_bindgen::generate!({ path: "../wit", world: "codecs" });

/// A bid. `date_time` is text in JSON (as the shared event files have it) and epoch
/// milliseconds in the binary encodings, each as that encoding carries times best.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid<T> {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    pub date_time: T,
    pub extra: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Q1<T> {
    pub auction: i64,
    pub bidder: i64,
    pub price: f64,
    pub date_time: T,
    pub extra: String,
}

fn q1<T>(b: Bid<T>) -> Q1<T> {
    Q1 { auction: b.auction, bidder: b.bidder, price: (b.price * 908) as f64 / 1000.0, date_time: b.date_time, extra: b.extra }
}

/// One record's value, decoded, mapped and encoded by `codec`.
fn map_value(codec: u8, value: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match codec {
        0 => serde_json::to_writer(out, &q1(serde_json::from_slice::<Bid<String>>(value).map_err(|x| e(&x))?)).map_err(|x| e(&x)),
        1 => rmp_serde::encode::write_named(out, &q1(rmp_serde::from_slice::<Bid<i64>>(value).map_err(|x| e(&x))?)).map_err(|x| e(&x)),
        2 => rmp_serde::encode::write(out, &q1(rmp_serde::from_slice::<Bid<i64>>(value).map_err(|x| e(&x))?)).map_err(|x| e(&x)),
        3 => ciborium::into_writer(&q1(ciborium::from_reader::<Bid<i64>, _>(value).map_err(|x| e(&x))?), out).map_err(|x| e(&x)),
        4 => {
            let bid: Bid<i64> = postcard::from_bytes(value).map_err(|x| e(&x))?;
            let encoded = postcard::to_extend(&q1(bid), std::mem::take(out)).map_err(|x| e(&x))?;
            *out = encoded;
            Ok(())
        }
        c => Err(format!("unknown codec {c}")),
    }
}

struct Codecs;

impl Guest for Codecs {
    fn q1(codec: u8, batch: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(batch.len());
        let mut value = Vec::new();
        let mut pos = 0;
        let truncated = || "truncated batch".to_string();
        while pos < batch.len() {
            let flags = batch[pos];
            if flags & !0b10 != 0 {
                return Err(format!("unexpected flags {flags:#04x} at byte {pos}"));
            }
            let mut p = pos + 1;
            let ts = if flags & 2 != 0 {
                p += 8;
                Some(batch.get(p - 8..p).ok_or_else(truncated)?)
            } else {
                None
            };
            let len = u32::from_le_bytes(batch.get(p..p + 4).ok_or_else(truncated)?.try_into().unwrap()) as usize;
            let v = batch.get(p + 4..p + 4 + len).ok_or_else(truncated)?;
            value.clear();
            map_value(codec, v, &mut value)?;
            out.push(flags);
            out.extend_from_slice(ts.unwrap_or(&[]));
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(&value);
            pos = p + 4 + len;
        }
        Ok(out)
    }
}

export!(Codecs);
