//! Two-input operators: `a.connect(b)` with a co-map, co-flat-map or co-process function, and
//! on keyed streams a keyed co-process function whose keyed state and timers both inputs share
//! (Flink's `ConnectedStreams` and `KeyedCoProcessFunction`).
//!
//! The graph gives the operator two kinds of edges: those of its first input and those of its
//! second (`edge.input = 1`). The host marks every record that comes by the second input (flag
//! bit 3, set by the input gate from the channel, never by a sender), so one Wasm vertex tells
//! the two apart; its event time is the minimum over both inputs, as every operator's is over
//! its channels. Its state is the host's keyed state, so checkpoints, savepoints and rescaling
//! need nothing of their own.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::eddy::stream::types::VertexKind;
use crate::ctx::{set_record_key, Ctx, KeyedCtx, Timer};
use crate::graph::{add_operator_from, add_vertex_from, builder_error, keyed_record_key, op, register, Input, KeyedStream, Shared, Stream};
use crate::ops::{Emit, Item, Operator, Value};

/// Two streams, possibly of different types, feeding one operator (Flink's `connect`).
pub struct ConnectedStreams<A, B> {
    g: Shared,
    first: Stream<A>,
    second: Stream<B>,
}

impl<T> Stream<T> {
    /// Connects this stream with `other` (of any type): the next operator has two inputs,
    /// and a function for each (`map`, `flat_map`, `process`), or, after `key_by`, one keyed
    /// state both inputs share.
    pub fn connect<B>(self, other: Stream<B>) -> ConnectedStreams<T, B> {
        if !std::rc::Rc::ptr_eq(&self.g, &other.g) {
            builder_error(&self.g, "connect: the streams belong to different environments".into());
        }
        ConnectedStreams { g: self.g.clone(), first: self, second: other }
    }
}

/// Decodes the record as the type of the input it came by and runs that input's function.
fn on_input<C, A, B, R>(
    r: &mut Item<'_>,
    ctx: &mut C,
    first: impl FnOnce(&mut C, A) -> Result<R, String>,
    second: impl FnOnce(&mut C, B) -> Result<R, String>,
) -> Result<R, String>
where
    A: DeserializeOwned + 'static,
    B: DeserializeOwned + 'static,
{
    match r.input {
        0 => first(ctx, r.value.take()?),
        _ => second(ctx, r.value.take()?),
    }
}

impl<A, B> ConnectedStreams<A, B>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
{
    fn then<O>(self, name: &str, op: Box<dyn Operator>) -> Stream<O> {
        let id = add_operator_from(&self.g, name, op, &self.first.inputs(), &self.second.inputs());
        Stream::new(self.g, id)
    }

    /// One output per input record: `first` for the first stream's, `second` for the other's
    /// (Flink's `CoMapFunction`).
    pub fn map<O, F, G>(self, first: F, second: G) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(A) -> O + 'static,
        G: Fn(B) -> O + 'static,
    {
        self.then(
            "CoMap",
            op(move |mut r, out| {
                let o = on_input(&mut r, &mut (), |_, a| Ok(first(a)), |_, b| Ok(second(b)))?;
                out.emit(r.with(Value::Typed(&mut Some(o))))
            }),
        )
    }

    /// Any number of outputs per input record (Flink's `CoFlatMapFunction`).
    pub fn flat_map<O, I, J, F, G>(self, first: F, second: G) -> Stream<O>
    where
        O: Serialize + 'static,
        I: IntoIterator<Item = O>,
        J: IntoIterator<Item = O>,
        F: Fn(A) -> I + 'static,
        G: Fn(B) -> J + 'static,
    {
        self.then(
            "CoFlatMap",
            op(move |mut r, out| {
                let outputs: Vec<O> =
                    on_input(&mut r, &mut (), |_, a| Ok(first(a).into_iter().collect()), |_, b| Ok(second(b).into_iter().collect()))?;
                for o in outputs {
                    out.emit(r.with(Value::Typed(&mut Some(o))))?;
                }
                Ok(())
            }),
        )
    }

    /// A general function per input: emits through `ctx.collect`, may fail.
    pub fn process<O, F, G>(self, first: F, second: G) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, A) -> Result<(), String> + 'static,
        G: Fn(&mut Ctx<O>, B) -> Result<(), String> + 'static,
    {
        let mut ctx = Ctx::new();
        self.then(
            "CoProcess",
            op(move |mut r, out| {
                ctx.begin(r.timestamp);
                on_input(&mut r, &mut ctx, |c, a| first(c, a), |c, b| second(c, b))?;
                ctx.flush(&r, out)
            }),
        )
    }

    /// Partitions both inputs by a key of one type, `first_key` of the first stream's values
    /// and `second_key` of the other's: records of one key of both meet in one subtask.
    pub fn key_by<K, F, G>(self, first_key: F, second_key: G) -> KeyedConnectedStreams<A, B, K>
    where
        K: Serialize + DeserializeOwned + 'static,
        F: Fn(&A) -> K + 'static,
        G: Fn(&B) -> K + 'static,
    {
        self.first.key_by(first_key).connect(self.second.key_by(second_key))
    }
}

/// The types a builder handle carries without holding values of them.
type Types<A, B, K> = PhantomData<fn() -> (A, B, K)>;

/// Two keyed streams with one key type feeding one keyed operator: its keyed state and timers
/// are shared by both inputs (Flink's `KeyedCoProcessFunction`).
pub struct KeyedConnectedStreams<A, B, K> {
    g: Shared,
    first: Vec<Input>,
    second: Vec<Input>,
    _t: Types<A, B, K>,
}

impl<A, K> KeyedStream<A, K> {
    /// Connects two streams keyed alike (see [`KeyedConnectedStreams`]).
    pub fn connect<B>(self, other: KeyedStream<B, K>) -> KeyedConnectedStreams<A, B, K> {
        if !std::rc::Rc::ptr_eq(&self.g, &other.g) {
            builder_error(&self.g, "connect: the streams belong to different environments".into());
        }
        KeyedConnectedStreams { g: self.g.clone(), first: self.hashed(), second: other.hashed(), _t: PhantomData }
    }
}

/// A keyed co-process function: one function per input, one for timers, one context. (A
/// keyed process function of one input is one whose second input nothing feeds.)
pub(crate) struct CoProcess<K, A, B, O, F, G, H> {
    ctx: KeyedCtx<K, O>,
    first: F,
    second: G,
    on_timer: H,
    _t: PhantomData<fn(A, B)>,
}

impl<K, A, B, O, F, G, H> CoProcess<K, A, B, O, F, G, H> {
    pub(crate) fn new(first: F, second: G, on_timer: H) -> Self {
        CoProcess { ctx: KeyedCtx::new(), first, second, on_timer, _t: PhantomData }
    }
}

impl<K, A, B, O, F, G, H> Operator for CoProcess<K, A, B, O, F, G, H>
where
    A: DeserializeOwned + 'static,
    B: DeserializeOwned + 'static,
    O: Serialize + 'static,
    F: Fn(&mut KeyedCtx<K, O>, A) -> Result<(), String>,
    G: Fn(&mut KeyedCtx<K, O>, B) -> Result<(), String>,
    H: Fn(&mut KeyedCtx<K, O>, Timer) -> Result<(), String>,
{
    fn process(&mut self, mut r: Item<'_>, out: &mut dyn Emit) -> Result<(), String> {
        set_record_key(keyed_record_key(&r)?);
        self.ctx.begin(r.timestamp);
        on_input(&mut r, &mut self.ctx, |c, a| (self.first)(c, a), |c, b| (self.second)(c, b))?;
        self.ctx.flush(&r, out)
    }

    fn on_timer(&mut self, key: &[u8], timer: Timer, out: &mut dyn Emit) -> Result<(), String> {
        set_record_key(key);
        self.ctx.begin(timer.output_time());
        (self.on_timer)(&mut self.ctx, timer)?;
        self.ctx.flush_as(Some(key), timer.output_time(), out)
    }
}

impl<A, B, K> KeyedConnectedStreams<A, B, K>
where
    A: Serialize + DeserializeOwned + 'static,
    B: Serialize + DeserializeOwned + 'static,
    K: DeserializeOwned + 'static,
{
    pub(crate) fn graph(&self) -> Shared {
        self.g.clone()
    }

    pub(crate) fn keyed_operator<O>(self, name: &str, op: Box<dyn Operator>) -> Stream<O> {
        let index = register(&self.g, op);
        let id = add_vertex_from(&self.g, name, VertexKind::Wasm(index), &self.first, &self.second);
        crate::graph::with_vertex(&self.g, id, |v| v.keyed = true);
        Stream::new(self.g, id)
    }

    /// `first` for each record of the first stream, `second` for the other's, with the
    /// record's key current for keyed state (`ctx.key()`, `ctx.value_state(…)`, shared by
    /// both) and `ctx.collect` to emit. Outputs keep the input's key.
    pub fn process<O, F, G>(self, first: F, second: G) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut KeyedCtx<K, O>, A) -> Result<(), String> + 'static,
        G: Fn(&mut KeyedCtx<K, O>, B) -> Result<(), String> + 'static,
    {
        self.process_with_timers(first, second, |_: &mut KeyedCtx<K, O>, _| Ok(()))
    }

    /// Like [`KeyedConnectedStreams::process`], plus `on_timer`, called when a timer a key
    /// registered fires, with that key current.
    pub fn process_with_timers<O, F, G, H>(self, first: F, second: G, on_timer: H) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut KeyedCtx<K, O>, A) -> Result<(), String> + 'static,
        G: Fn(&mut KeyedCtx<K, O>, B) -> Result<(), String> + 'static,
        H: Fn(&mut KeyedCtx<K, O>, Timer) -> Result<(), String> + 'static,
    {
        self.keyed_operator("CoProcess", Box::new(CoProcess::new(first, second, on_timer)))
    }
}

#[cfg(test)]
mod tests {
    use crate::bindings::eddy::stream::types::Partitioning;
    use crate::graph::Env;

    #[test]
    fn connect_gives_the_operator_a_second_input() {
        let mut env = Env::new("connected");
        let numbers = env.from_elements(vec![1u64, 2]);
        let words = env.from_elements(vec!["a".to_string()]);
        numbers.connect(words).map(|n: u64| n.to_string(), |w: String| w).print();
        let g = env.finish().unwrap().graph;
        let edges: Vec<_> = g.edges.iter().map(|e| (e.source, e.target, e.input)).collect();
        assert_eq!(edges, [(0, 2, 0), (1, 2, 1), (2, 3, 0)]);
    }

    #[test]
    fn keyed_connect_hashes_both_inputs_into_one_keyed_vertex() {
        let mut env = Env::new("keyed");
        let a = env.from_elements(vec![(1u64, 2u64)]);
        let b = env.from_elements(vec![(1u64, "x".to_string())]);
        a.connect(b)
            .key_by(|(k, _): &(u64, u64)| *k, |(k, _): &(u64, String)| *k)
            .process(|_ctx: &mut crate::KeyedCtx<u64, u64>, _: (u64, u64)| Ok(()), |_ctx, _: (u64, String)| Ok(()))
            .print();
        let g = env.finish().unwrap().graph;
        let co = g.vertices.iter().find(|v| v.name == "CoProcess").unwrap();
        assert!(co.keyed);
        let into: Vec<_> = g.edges.iter().filter(|e| e.target == co.id).map(|e| (e.partitioning, e.input)).collect();
        assert!(matches!(into[..], [(Partitioning::Hash, 0), (Partitioning::Hash, 1)]), "{into:?}");
    }

    #[test]
    fn union_feeds_one_operator_from_every_stream_and_keys_each_where_it_is() {
        let mut env = Env::new("union");
        let a = env.from_elements(vec![1u64]);
        let b = env.from_elements(vec![2u64]);
        let c = env.from_elements(vec![3u64]);
        a.union(b).union(c).key_by(|n: &u64| n % 2).count().print();
        let g = env.finish().unwrap().graph;
        // One key selector per source (one registered function), three hash edges into the count.
        let key_bys: Vec<_> = g.vertices.iter().filter(|v| v.name == "KeyBy").collect();
        assert_eq!(key_bys.len(), 3);
        assert!(key_bys.windows(2).all(|w| format!("{:?}", w[0].kind) == format!("{:?}", w[1].kind)));
        let count = g.vertices.iter().find(|v| v.name == "Count").unwrap();
        assert_eq!(g.edges.iter().filter(|e| e.target == count.id && matches!(e.partitioning, Partitioning::Hash)).count(), 3);
    }

    #[test]
    fn a_timestamp_assigner_after_a_union_reads_every_merged_stream() {
        // (The host then refuses it: an assigner must be chained to its one source.)
        let mut env = Env::new("union-timestamps");
        let a = env.from_elements(vec![1u64]);
        let b = env.from_elements(vec![2u64]);
        a.union(b).assign_watermarks(0).print();
        let g = env.finish().unwrap().graph;
        let assigner = g.vertices.iter().find(|v| v.name == "Timestamps").unwrap();
        assert_eq!(g.edges.iter().filter(|e| e.target == assigner.id).count(), 2);
    }
}
