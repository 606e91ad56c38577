//! Joins of two streams, as Flink's DataStream API has them:
//!
//! - **window joins** (`a.join(b).where_key(ka).equal_to(kb).window(w).apply(f)`) and
//!   **co-groups** (`.co_group(f)`): both streams, their values tagged with their side, are
//!   merged and keyed alike, the host's window operator gathers each key's window of both,
//!   and a function chained after it pairs them. Any window (tumbling, sliding, session; event
//!   or processing time) and allowed lateness work as for one stream, since it is one stream.
//! - **interval joins** (`a.interval_join(b).between(lower, upper).process(f)`): a keyed
//!   two-input operator that keeps each side's values in keyed map state by time, pairs a new
//!   value with the other side's values in its interval, and drops values once the watermark
//!   says nothing can pair with them any more.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connect::KeyedConnectedStreams;
use crate::ctx::{set_record_key, Ctx, KeyedCtx, MapState, Timer};
use crate::graph::{KeyedStream, Stream};
use crate::ops::{Emit, Item, Operator};
use crate::windows::{TimeWindow, Window, WindowedStream};

/// A value of either stream of a window join, as it travels through the shared window.
#[derive(Serialize, Deserialize)]
enum Side<A, B> {
    First(A),
    Second(B),
}

/// Splits a window's values into the first stream's and the second's, each in arrival order.
fn sides<A, B>(values: Vec<Side<A, B>>) -> (Vec<A>, Vec<B>) {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for v in values {
        match v {
            Side::First(a) => first.push(a),
            Side::Second(b) => second.push(b),
        }
    }
    (first, second)
}

/// Two streams to join in windows; name their keys with `where_key` and `equal_to`.
pub struct JoinedStreams<A, B> {
    first: Stream<A>,
    second: Stream<B>,
}

/// A window join whose first key is chosen.
pub struct JoinedWhere<A, B, K, F> {
    streams: JoinedStreams<A, B>,
    first_key: F,
    _k: PhantomData<fn() -> K>,
}

/// A window join keyed on both sides; choose its windows.
pub struct JoinedKeys<A, B, K> {
    keyed: KeyedStream<Side<A, B>, K>,
}

/// A window join with its windows; `apply` pairs values, `co_group` sees both lists.
pub struct JoinedWindows<A, B, K> {
    windows: WindowedStream<Side<A, B>, K>,
}

/// The same as [`JoinedWindows`], named as Flink's `coGroup` result is.
pub type CoGroupedWindows<A, B, K> = JoinedWindows<A, B, K>;

impl<A> Stream<A> {
    /// Joins this stream with `other` in windows (Flink's `join`): pairs of values of the
    /// same key in the same window.
    pub fn join<B>(self, other: Stream<B>) -> JoinedStreams<A, B> {
        JoinedStreams { first: self, second: other }
    }

    /// Groups this stream with `other` in windows (Flink's `coGroup`): per key and window,
    /// the values of both, also when one side has none.
    pub fn co_group<B>(self, other: Stream<B>) -> JoinedStreams<A, B> {
        self.join(other)
    }
}

impl<A, B> JoinedStreams<A, B> {
    /// The key of the first stream's values.
    pub fn where_key<K, F>(self, first_key: F) -> JoinedWhere<A, B, K, F>
    where
        F: Fn(&A) -> K + 'static,
    {
        JoinedWhere { streams: self, first_key, _k: PhantomData }
    }
}

impl<A, B, K, F> JoinedWhere<A, B, K, F>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
    K: Serialize + DeserializeOwned + 'static,
    F: Fn(&A) -> K + 'static,
{
    /// The key of the second stream's values, equal to the first's for values that join.
    pub fn equal_to<G>(self, second_key: G) -> JoinedKeys<A, B, K>
    where
        G: Fn(&B) -> K + 'static,
    {
        let JoinedWhere { streams, first_key, .. } = self;
        let first = streams.first.map(Side::<A, B>::First).name("Join: first side");
        let second = streams.second.map(Side::<A, B>::Second).name("Join: second side");
        let keyed = first.union(second).key_by(move |v: &Side<A, B>| match v {
            Side::First(a) => first_key(a),
            Side::Second(b) => second_key(b),
        });
        JoinedKeys { keyed }
    }
}

impl<A, B, K> JoinedKeys<A, B, K> {
    /// The windows values meet in.
    pub fn window(self, window: Window) -> JoinedWindows<A, B, K> {
        JoinedWindows { windows: self.keyed.window(window) }
    }
}

impl<A, B, K> JoinedWindows<A, B, K>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
    K: DeserializeOwned + 'static,
{
    /// Values up to `lateness_ms` behind the watermark still join (their window fires again).
    pub fn allowed_lateness(self, lateness_ms: u64) -> Self {
        JoinedWindows { windows: self.windows.allowed_lateness(lateness_ms) }
    }

    /// `f(a, b)` for every pair of a first-stream and a second-stream value of one key in one
    /// window (Flink's `JoinFunction`); results carry the window's last millisecond.
    pub fn apply<O, F>(self, f: F) -> Stream<O>
    where
        A: Clone,
        B: Clone,
        O: Serialize + 'static,
        F: Fn(A, B) -> O + 'static,
    {
        self.windows
            .process(move |ctx: &mut Ctx<O>, _key: K, _w: TimeWindow, values: Vec<Side<A, B>>| {
                let (first, second) = sides(values);
                for a in &first {
                    for b in &second {
                        ctx.collect(f(a.clone(), b.clone()));
                    }
                }
                Ok(())
            })
            .name("Window Join")
    }

    /// `f(ctx, key, window, firsts, seconds)` once per key and window that holds values of
    /// either stream (Flink's `CoGroupFunction`).
    pub fn co_group_apply<O, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, K, TimeWindow, Vec<A>, Vec<B>) -> Result<(), String> + 'static,
    {
        self.windows
            .process(move |ctx: &mut Ctx<O>, key: K, w: TimeWindow, values: Vec<Side<A, B>>| {
                let (first, second) = sides(values);
                f(ctx, key, w, first, second)
            })
            .name("Window CoGroup")
    }
}

/// Two keyed streams joined on intervals of event time: see [`KeyedStream::interval_join`].
pub struct IntervalJoin<A, B, K> {
    connected: KeyedConnectedStreams<A, B, K>,
    lower: i64,
    upper: i64,
}

impl<A, K> KeyedStream<A, K> {
    /// Joins this stream with `other` (keyed alike) on event time (Flink's `intervalJoin`):
    /// a value `a` at time `ta` pairs with every `b` of the same key at `tb` where
    /// `ta + lower <= tb <= ta + upper` (`between`). Values behind the watermark when they
    /// arrive are late and pair with nothing.
    pub fn interval_join<B>(self, other: KeyedStream<B, K>) -> IntervalJoin<A, B, K> {
        IntervalJoin { connected: self.connect(other), lower: 0, upper: 0 }
    }
}

impl<A, B, K> IntervalJoin<A, B, K>
where
    A: Serialize + DeserializeOwned + Clone + 'static,
    B: Serialize + DeserializeOwned + Clone + 'static,
    K: DeserializeOwned + 'static,
{
    /// The interval, in milliseconds relative to the first stream's value's time (inclusive
    /// at both ends; `lower <= upper`, either may be negative).
    pub fn between(mut self, lower_ms: i64, upper_ms: i64) -> Self {
        self.lower = lower_ms;
        self.upper = upper_ms;
        self
    }

    /// `f(ctx, a, b)` for every pair (Flink's `ProcessJoinFunction`); what it collects
    /// carries the later of the two times.
    pub fn process<O, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, A, B) -> Result<(), String> + 'static,
    {
        let (lower, upper) = (self.lower, self.upper);
        if lower > upper {
            crate::graph::builder_error(&self.connected.graph(), format!("interval join: between({lower}, {upper}): the lower bound is above the upper"));
        }
        let op = IntervalJoinOp { lower, upper, f, ctx: KeyedCtx::<K, O>::new(), _t: PhantomData::<fn(A, B)> };
        self.connected.keyed_operator("Interval Join", Box::new(op))
    }
}

/// The interval join's operator: each side's values in keyed map state, in buckets of time
/// as wide as the interval, so that a value's partners lie in at most two buckets of the
/// other side: four state calls a record (two reads, a read and a write), whatever the
/// state holds. A bucket goes, by one timer, once the watermark says none of its values can
/// pair any more.
struct IntervalJoinOp<K, A, B, O, F> {
    lower: i64,
    upper: i64,
    f: F,
    ctx: KeyedCtx<K, O>,
    _t: PhantomData<fn(A, B)>,
}

const FIRST: &str = "__interval_join_first";
const SECOND: &str = "__interval_join_second";

/// A bucket of one side: `(time, value)` in arrival order.
type Bucket<T> = Vec<(i64, T)>;

impl<K, A, B, O, F> IntervalJoinOp<K, A, B, O, F>
where
    A: Serialize + DeserializeOwned + Clone + 'static,
    B: Serialize + DeserializeOwned + Clone + 'static,
    O: Serialize + 'static,
    F: Fn(&mut Ctx<O>, A, B) -> Result<(), String>,
{
    fn first(&self) -> MapState<i64, Bucket<A>> {
        self.ctx.map_state(FIRST)
    }

    fn second(&self) -> MapState<i64, Bucket<B>> {
        self.ctx.map_state(SECOND)
    }

    /// The width of a bucket: the interval's (`between` ensured `lower <= upper`).
    fn width(&self) -> i64 {
        (self.upper - self.lower).saturating_add(1).max(1)
    }

    /// The last millisecond of bucket `b`.
    fn bucket_end(&self, b: i64) -> i64 {
        (b + 1).saturating_mul(self.width()) - 1
    }

    /// The values of `state` whose times lie in `[from, to]` (one or two buckets).
    fn within<T: Serialize + DeserializeOwned>(&self, state: &MapState<i64, Bucket<T>>, from: i64, to: i64) -> Result<Bucket<T>, String> {
        let mut found = Vec::new();
        for b in from.div_euclid(self.width())..=to.div_euclid(self.width()) {
            found.extend(state.get(&b)?.unwrap_or_default().into_iter().filter(|(t, _)| from <= *t && *t <= to));
        }
        Ok(found)
    }

    /// Keeps `value` at `time` in its bucket of `state`, which goes when the watermark
    /// reaches the bucket's end plus `after`.
    fn keep<T: Serialize + DeserializeOwned>(&self, state: &MapState<i64, Bucket<T>>, time: i64, value: T, after: i64) -> Result<(), String> {
        let b = time.div_euclid(self.width());
        let mut bucket = state.get(&b)?.unwrap_or_default();
        bucket.push((time, value));
        state.put(&b, &bucket)?;
        self.ctx.register_event_time_timer(self.bucket_end(b).saturating_add(after))
    }

    /// The bucket whose timer (its end plus `after`) is at `now`, if any.
    fn bucket_due(&self, now: i64, after: i64) -> Option<i64> {
        let next = now.checked_sub(after)?.checked_add(1)?;
        (next.rem_euclid(self.width()) == 0).then(|| next.div_euclid(self.width()) - 1)
    }
}

impl<K, A, B, O, F> Operator for IntervalJoinOp<K, A, B, O, F>
where
    A: Serialize + DeserializeOwned + Clone + 'static,
    B: Serialize + DeserializeOwned + Clone + 'static,
    O: Serialize + 'static,
    F: Fn(&mut Ctx<O>, A, B) -> Result<(), String>,
{
    fn process(&mut self, mut r: Item<'_>, out: &mut dyn Emit) -> Result<(), String> {
        let key = r.key.ok_or("interval join received a record without a key")?;
        let time = r.timestamp.ok_or("interval join needs event time: assign timestamps at the sources")?;
        set_record_key(key);
        if time < self.ctx.current_watermark() {
            return Ok(());
        }
        // Pairs as (first, second, the later time). A first value at `ta` pairs with second
        // values at `ta + lower ..= ta + upper`, and none after the watermark passes `ta + upper`.
        let mut pairs = Vec::new();
        if r.input == 0 {
            let a: A = r.value.take()?;
            for (tb, b) in self.within(&self.second(), time + self.lower, time + self.upper)? {
                pairs.push((a.clone(), b, time.max(tb)));
            }
            self.keep(&self.first(), time, a, self.upper)?;
        } else {
            let b: B = r.value.take()?;
            for (ta, a) in self.within(&self.first(), time - self.upper, time - self.lower)? {
                pairs.push((a, b.clone(), time.max(ta)));
            }
            self.keep(&self.second(), time, b, -self.lower)?;
        }
        for (a, b, at) in pairs {
            self.ctx.begin(Some(at));
            (self.f)(&mut self.ctx.ctx, a, b)?;
            self.ctx.flush_as(Some(key), Some(at), out)?;
        }
        Ok(())
    }

    /// The watermark reached `timer.timestamp`: the bucket of either side whose values could
    /// pair with nothing after it goes (found from the time, without a scan).
    fn on_timer(&mut self, key: &[u8], timer: Timer, _out: &mut dyn Emit) -> Result<(), String> {
        set_record_key(key);
        if let Some(b) = self.bucket_due(timer.timestamp, self.upper) {
            self.first().remove(&b)?;
        }
        if let Some(b) = self.bucket_due(timer.timestamp, -self.lower) {
            self.second().remove(&b)?;
        }
        Ok(())
    }
}
