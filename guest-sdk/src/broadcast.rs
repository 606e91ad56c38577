//! Broadcast state (Flink's broadcast state pattern): a small stream every subtask of an
//! operator sees whole, kept in maps tied to no key, read while processing a large stream,
//! keyed or not. `rules.broadcast_state()` makes the small stream; `events.connect_broadcast(rules)`
//! (events keyed or not) connects them; `process` takes one function per input.
//!
//! The broadcast input is the operator's second input, sent to every subtask (a broadcast
//! edge). Its function may change broadcast state; the other input's may only read it, so
//! that every subtask's copy stays the same, as Flink requires (its `ReadOnlyContext`). The
//! host keeps each subtask's copy: a snapshot saves it, a restore at any parallelism gives
//! each new subtask one old subtask's copy.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::eddy::stream::host;
use crate::bindings::eddy::stream::types::VertexKind;
use crate::ctx::{set_record_key, state_decode, state_key, state_value, Ctx, KeyedCtx, Timer};
use crate::graph::{add_operator_from, add_vertex_from, builder_error, keyed_record_key, register, with_vertex, Input, KeyedStream, Shared, Stream};
use crate::ops::{Emit, Item, Operator};

/// A stream whose records every subtask of the operator it is connected to receives, to
/// update broadcast state (Flink's `BroadcastStream`).
pub struct BroadcastStream<B> {
    g: Shared,
    inputs: Vec<Input>,
    _t: PhantomData<fn() -> B>,
}

impl<T> Stream<T> {
    /// This stream as the broadcast side of [`Stream::connect_broadcast`] or
    /// [`KeyedStream::connect_broadcast`]: each of its records goes to every subtask.
    pub fn broadcast_state(self) -> BroadcastStream<T> {
        let g = self.g.clone();
        BroadcastStream { g, inputs: self.broadcast().inputs(), _t: PhantomData }
    }

    /// Connects this stream with a broadcast stream: the next operator reads both, and may
    /// read in broadcast state what the broadcast side's function put there.
    pub fn connect_broadcast<B>(self, rules: BroadcastStream<B>) -> BroadcastConnectedStreams<T, B> {
        same_graph(&self.g, &rules.g);
        BroadcastConnectedStreams { g: self.g.clone(), first: self.inputs(), second: rules.inputs, _t: PhantomData }
    }
}

impl<T, K> KeyedStream<T, K> {
    /// Connects this keyed stream with a broadcast stream: the next operator has keyed state
    /// and timers for this stream's records and broadcast state for both.
    pub fn connect_broadcast<B>(self, rules: BroadcastStream<B>) -> KeyedBroadcastConnectedStreams<T, B, K> {
        same_graph(&self.g, &rules.g);
        KeyedBroadcastConnectedStreams { g: self.g.clone(), first: self.hashed(), second: rules.inputs, _t: PhantomData }
    }
}

fn same_graph(a: &Shared, b: &Shared) {
    if !std::rc::Rc::ptr_eq(a, b) {
        builder_error(a, "connect_broadcast: the streams belong to different environments".into());
    }
}

/// What the broadcast side's function may do with broadcast state: read and write it.
pub struct Broadcast(());

/// What the other input's function may do with broadcast state: read it.
pub struct ReadOnlyBroadcast(());

impl Broadcast {
    /// Broadcast map state `name`, with keys `MK` and values `MV` (JSON, as keyed state).
    pub fn map_state<MK, MV>(&self, name: &str) -> BroadcastState<MK, MV> {
        BroadcastState { name: name.to_string(), _t: PhantomData }
    }
}

impl ReadOnlyBroadcast {
    /// Broadcast map state `name`, to read.
    pub fn map_state<MK, MV>(&self, name: &str) -> ReadOnlyBroadcastState<MK, MV> {
        ReadOnlyBroadcastState(BroadcastState { name: name.to_string(), _t: PhantomData })
    }
}

/// A broadcast map, readable and writable (on the broadcast side).
#[derive(Debug, Clone)]
pub struct BroadcastState<MK, MV> {
    name: String,
    _t: PhantomData<fn() -> (MK, MV)>,
}

/// A broadcast map, readable only (on the other side).
#[derive(Debug, Clone)]
pub struct ReadOnlyBroadcastState<MK, MV>(BroadcastState<MK, MV>);

impl<MK: Serialize + DeserializeOwned, MV: Serialize + DeserializeOwned> BroadcastState<MK, MV> {
    /// The value under `key`, if any.
    pub fn get(&self, key: &MK) -> Result<Option<MV>, String> {
        host::broadcast_get(&self.name, &state_key(key)?).map(|b| state_decode(&self.name, &b)).transpose()
    }

    /// Whether there is a value under `key`.
    pub fn contains(&self, key: &MK) -> Result<bool, String> {
        Ok(host::broadcast_get(&self.name, &state_key(key)?).is_some())
    }

    /// Every entry, in the order of the keys' JSON bytes.
    pub fn entries(&self) -> Result<Vec<(MK, MV)>, String> {
        host::broadcast_entries(&self.name).iter().map(|(k, v)| Ok((state_decode(&self.name, k)?, state_decode(&self.name, v)?))).collect()
    }

    /// Sets the value under `key`.
    pub fn put(&self, key: &MK, value: &MV) -> Result<(), String> {
        host::broadcast_put(&self.name, &state_key(key)?, &state_value(value)?);
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&self, key: &MK) -> Result<(), String> {
        host::broadcast_remove(&self.name, &state_key(key)?);
        Ok(())
    }
}

impl<MK: Serialize + DeserializeOwned, MV: Serialize + DeserializeOwned> ReadOnlyBroadcastState<MK, MV> {
    /// The value under `key`, if any.
    pub fn get(&self, key: &MK) -> Result<Option<MV>, String> {
        self.0.get(key)
    }

    /// Whether there is a value under `key`.
    pub fn contains(&self, key: &MK) -> Result<bool, String> {
        self.0.contains(key)
    }

    /// Every entry, in the order of the keys' JSON bytes.
    pub fn entries(&self) -> Result<Vec<(MK, MV)>, String> {
        self.0.entries()
    }
}

/// The types a builder handle carries without holding values of them.
type Types<A, B, K> = PhantomData<fn() -> (A, B, K)>;

/// A stream connected with a broadcast stream (Flink's `BroadcastConnectedStream`).
pub struct BroadcastConnectedStreams<A, B> {
    g: Shared,
    first: Vec<Input>,
    second: Vec<Input>,
    _t: Types<A, B, ()>,
}

/// A keyed stream connected with a broadcast stream.
pub struct KeyedBroadcastConnectedStreams<A, B, K> {
    g: Shared,
    first: Vec<Input>,
    second: Vec<Input>,
    _t: Types<A, B, K>,
}

/// A broadcast process function: one function per input, the first reading broadcast state,
/// the second (the broadcast side's) changing it.
struct BroadcastProcess<A, B, O, F, G> {
    ctx: Ctx<O>,
    element: F,
    broadcast: G,
    _t: PhantomData<fn(A, B)>,
}

impl<A, B, O, F, G> Operator for BroadcastProcess<A, B, O, F, G>
where
    A: DeserializeOwned + 'static,
    B: DeserializeOwned + 'static,
    O: Serialize + 'static,
    F: Fn(&mut Ctx<O>, &ReadOnlyBroadcast, A) -> Result<(), String>,
    G: Fn(&mut Ctx<O>, &Broadcast, B) -> Result<(), String>,
{
    fn process(&mut self, mut r: Item<'_>, out: &mut dyn Emit) -> Result<(), String> {
        self.ctx.begin(r.timestamp);
        match r.input {
            0 => (self.element)(&mut self.ctx, &ReadOnlyBroadcast(()), r.value.take()?)?,
            _ => (self.broadcast)(&mut self.ctx, &Broadcast(()), r.value.take()?)?,
        }
        self.ctx.flush(&r, out)
    }
}

/// A keyed broadcast process function: keyed state and timers for the keyed input's records,
/// broadcast state read there and changed by the broadcast side's.
struct KeyedBroadcastProcess<K, A, B, O, F, G, H> {
    ctx: KeyedCtx<K, O>,
    element: F,
    broadcast: G,
    on_timer: H,
    _t: PhantomData<fn(A, B)>,
}

impl<K, A, B, O, F, G, H> Operator for KeyedBroadcastProcess<K, A, B, O, F, G, H>
where
    A: DeserializeOwned + 'static,
    B: DeserializeOwned + 'static,
    O: Serialize + 'static,
    F: Fn(&mut KeyedCtx<K, O>, &ReadOnlyBroadcast, A) -> Result<(), String>,
    G: Fn(&mut Ctx<O>, &Broadcast, B) -> Result<(), String>,
    H: Fn(&mut KeyedCtx<K, O>, &ReadOnlyBroadcast, Timer) -> Result<(), String>,
{
    fn process(&mut self, mut r: Item<'_>, out: &mut dyn Emit) -> Result<(), String> {
        self.ctx.begin(r.timestamp);
        if r.input == 0 {
            set_record_key(keyed_record_key(&r)?);
            (self.element)(&mut self.ctx, &ReadOnlyBroadcast(()), r.value.take()?)?;
        } else {
            // The broadcast side has no key: its function gets no keyed state.
            (self.broadcast)(&mut self.ctx.ctx, &Broadcast(()), r.value.take()?)?;
        }
        self.ctx.flush(&r, out)
    }

    fn on_timer(&mut self, key: &[u8], timer: Timer, out: &mut dyn Emit) -> Result<(), String> {
        set_record_key(key);
        self.ctx.begin(timer.output_time());
        (self.on_timer)(&mut self.ctx, &ReadOnlyBroadcast(()), timer)?;
        self.ctx.flush_as(Some(key), timer.output_time(), out)
    }
}

impl<A, B> BroadcastConnectedStreams<A, B>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
{
    /// `element` for each record of the stream, reading broadcast state; `broadcast` for
    /// each record of the broadcast stream (in every subtask), changing it. Both emit
    /// through `ctx.collect` (Flink's `BroadcastProcessFunction`).
    pub fn process<O, F, G>(self, element: F, broadcast: G) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, &ReadOnlyBroadcast, A) -> Result<(), String> + 'static,
        G: Fn(&mut Ctx<O>, &Broadcast, B) -> Result<(), String> + 'static,
    {
        let op = BroadcastProcess { ctx: Ctx::new(), element, broadcast, _t: PhantomData };
        let id = add_operator_from(&self.g, "BroadcastProcess", Box::new(op), &self.first, &self.second);
        Stream::new(self.g, id)
    }
}

impl<A, B, K> KeyedBroadcastConnectedStreams<A, B, K>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
    K: DeserializeOwned + 'static,
{
    /// `element` for each record of the keyed stream, with its key current for keyed state
    /// and broadcast state to read; `broadcast` for each record of the broadcast stream (in
    /// every subtask, with no key), changing broadcast state (Flink's
    /// `KeyedBroadcastProcessFunction`). Outputs keep the input's key.
    pub fn process<O, F, G>(self, element: F, broadcast: G) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut KeyedCtx<K, O>, &ReadOnlyBroadcast, A) -> Result<(), String> + 'static,
        G: Fn(&mut Ctx<O>, &Broadcast, B) -> Result<(), String> + 'static,
    {
        self.process_with_timers(element, broadcast, |_: &mut KeyedCtx<K, O>, _: &ReadOnlyBroadcast, _| Ok(()))
    }

    /// Like [`KeyedBroadcastConnectedStreams::process`], plus `on_timer`, called when a
    /// timer a key registered fires, with that key current.
    pub fn process_with_timers<O, F, G, H>(self, element: F, broadcast: G, on_timer: H) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut KeyedCtx<K, O>, &ReadOnlyBroadcast, A) -> Result<(), String> + 'static,
        G: Fn(&mut Ctx<O>, &Broadcast, B) -> Result<(), String> + 'static,
        H: Fn(&mut KeyedCtx<K, O>, &ReadOnlyBroadcast, Timer) -> Result<(), String> + 'static,
    {
        let op = KeyedBroadcastProcess { ctx: KeyedCtx::new(), element, broadcast, on_timer, _t: PhantomData };
        let index = register(&self.g, Box::new(op));
        let id = add_vertex_from(&self.g, "BroadcastProcess", VertexKind::Wasm(index), &self.first, &self.second);
        with_vertex(&self.g, id, |v| v.keyed = true);
        Stream::new(self.g, id)
    }
}

#[cfg(test)]
mod tests {
    use crate::bindings::eddy::stream::types::Partitioning;
    use crate::graph::Env;

    #[test]
    fn the_broadcast_side_is_a_broadcast_second_input() {
        let mut env = Env::new("rules");
        let events = env.from_elements(vec![(1u64, 2u64)]);
        let rules = env.from_elements(vec![(1u64, 10u64)]);
        events
            .key_by(|e: &(u64, u64)| e.0)
            .connect_broadcast(rules.broadcast_state())
            .process(|_: &mut crate::KeyedCtx<u64, u64>, _, _: (u64, u64)| Ok(()), |_, _, _: (u64, u64)| Ok(()))
            .print();
        let g = env.finish().unwrap().graph;
        let op = g.vertices.iter().find(|v| v.name == "BroadcastProcess").unwrap();
        assert!(op.keyed);
        let into: Vec<_> = g.edges.iter().filter(|e| e.target == op.id).map(|e| (e.partitioning, e.input)).collect();
        assert!(matches!(into[..], [(Partitioning::Hash, 0), (Partitioning::Broadcast, 1)]), "{into:?}");
    }
}
