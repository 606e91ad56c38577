//! The DataStream builder: `Env`, `Stream`, `KeyedStream` and sinks.
//!
//! Running a job function against an [`Env`] records two things at once: the job graph that
//! the planner returns, and the registry of user operators (`wasm(n)` vertices) that
//! `operator.open` selects from. Because both come from the same deterministic run, registry
//! index `n` means the same function in the planner and in every operator instance. Building
//! never calls host imports, so graphs can be built and tested natively.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::eddy::stream::types::{
    Aggregate, AggregateKind, Edge, FieldRef, JobGraph, Partitioning, Sequence, SocketSource,
    TimestampSpec, Vertex, VertexKind,
};
use crate::ctx::{set_record_key, Ctx, KeyedCtx, Timer, ValueState};
use crate::windows::{Window, WindowedStream};
use crate::codec::{self, ValueCodec};
use crate::ops::{encode_json, encode_key, Emit, FnOp, Item, Operator, Value};

/// What a job function built: the graph and the operator registry.
pub(crate) struct Built {
    pub graph: JobGraph,
    pub registry: Vec<Box<dyn Operator>>,
}

#[derive(Default)]
pub(crate) struct State {
    name: String,
    vertices: Vec<Vertex>,
    edges: Vec<Edge>,
    parallelism: Option<u32>,
    max_parallelism: Option<u32>,
    /// What the job's values are written in; none: [`codec::DEFAULT`].
    codec: Option<ValueCodec>,
    registry: Vec<Box<dyn Operator>>,
    errors: Vec<String>,
}

pub(crate) type Shared = Rc<RefCell<State>>;

/// Where a new vertex takes its input from: `(vertex, partitioning, side output)`.
pub(crate) type Input = (u32, Partitioning, bool);

pub(crate) fn add_vertex(g: &Shared, name: &str, kind: VertexKind, input: Option<Input>) -> u32 {
    add_vertex_from(g, name, kind, input.as_slice(), &[])
}

/// Adds a vertex fed by `first` (its input 0) and `second` (input 1: only a two-input
/// operator has one, and the host marks the records that come by it).
pub(crate) fn add_vertex_from(g: &Shared, name: &str, kind: VertexKind, first: &[Input], second: &[Input]) -> u32 {
    let mut s = g.borrow_mut();
    let id = s.vertices.len() as u32;
    s.vertices.push(Vertex {
        id,
        name: name.to_string(),
        uid: None,
        kind,
        parallelism: None,
        slot_sharing_group: None,
        keyed: false,
        per_key_updates: false,
    });
    let inputs = first.iter().map(|i| (i, 0)).chain(second.iter().map(|i| (i, 1)));
    for (&(source, partitioning, side_output), input) in inputs {
        s.edges.push(Edge { source, target: id, partitioning, side_output, input });
    }
    id
}

/// Adds `op` to the registry; returns its index, which `wasm` vertices name.
pub(crate) fn register(g: &Shared, op: Box<dyn Operator>) -> u32 {
    let mut s = g.borrow_mut();
    s.registry.push(op);
    (s.registry.len() - 1) as u32
}

pub(crate) fn add_operator(g: &Shared, name: &str, op: Box<dyn Operator>, input: Input) -> u32 {
    add_operator_from(g, name, op, &[input], &[])
}

/// A user operator fed by `first` and, for a two-input operator, `second`.
pub(crate) fn add_operator_from(g: &Shared, name: &str, op: Box<dyn Operator>, first: &[Input], second: &[Input]) -> u32 {
    let index = register(g, op);
    add_vertex_from(g, name, VertexKind::Wasm(index), first, second)
}

pub(crate) fn with_vertex(g: &Shared, id: u32, f: impl FnOnce(&mut Vertex)) {
    f(&mut g.borrow_mut().vertices[id as usize]);
}

/// Gives vertex `to` the parallelism and slot-sharing group of `from`, so that a forward
/// edge between them is chained (one task, records in order).
pub(crate) fn place_with(g: &Shared, from: u32, to: u32) {
    let (parallelism, group) = {
        let g = g.borrow();
        let up = &g.vertices[from as usize];
        (up.parallelism, up.slot_sharing_group.clone())
    };
    with_vertex(g, to, |v| {
        v.parallelism = parallelism;
        v.slot_sharing_group = group;
    });
}

/// Records an error that `finish` reports (builder methods cannot fail).
pub(crate) fn builder_error(g: &Shared, message: String) {
    g.borrow_mut().errors.push(message);
}

/// Boxes a closure as an operator; the signature bound makes closures higher-ranked over
/// the record's lifetime.
pub(crate) fn op<F>(f: F) -> Box<dyn Operator>
where
    F: FnMut(Item<'_>, &mut dyn Emit) -> Result<(), String> + 'static,
{
    Box::new(FnOp(f))
}

/// The execution environment a job function builds its pipeline on, like Flink's
/// `StreamExecutionEnvironment`.
pub struct Env {
    g: Shared,
}

impl Env {
    /// A fresh environment for job `name` (the planner uses the entry name).
    pub fn new(name: impl Into<String>) -> Env {
        Env {
            g: Rc::new(RefCell::new(State {
                name: name.into(),
                ..State::default()
            })),
        }
    }

    fn source<T>(&mut self, name: &str, kind: VertexKind, parallelism: Option<u32>) -> Stream<T> {
        let id = add_vertex(&self.g, name, kind, None);
        with_vertex(&self.g, id, |v| v.parallelism = parallelism);
        Stream::new(self.g.clone(), id)
    }

    /// Lines of a text socket, as `String`s (parallelism 1, unbounded).
    pub fn socket_text_stream(&mut self, host: impl Into<String>, port: u16) -> Stream<String> {
        let kind = VertexKind::SocketSource(SocketSource {
            host: host.into(),
            port,
        });
        self.source("Socket Source", kind, Some(1))
    }

    /// The records of Kafka topics (see [`crate::kafka::KafkaSource`]): values
    /// as `T` (text: `String`; `json()`: any type; `envelope()`:
    /// [`crate::kafka::KafkaRecord`]). Partitions are spread over the
    /// source's subtasks; their offsets are checkpointed.
    pub fn read_kafka<T>(&mut self, source: crate::kafka::KafkaSource) -> Stream<T> {
        self.source("Kafka Source", VertexKind::KafkaSource(source.spec), None)
    }

    /// Nexmark events made by the host (see [`crate::nexmark`]), split across the
    /// source's subtasks, each with its event time and watermarks
    /// [`OUT_OF_ORDERNESS_MS`](crate::nexmark::OUT_OF_ORDERNESS_MS) behind.
    pub fn read_nexmark(&mut self, source: crate::nexmark::NexmarkSource) -> Stream<crate::nexmark::Event> {
        self.source("Nexmark Source", VertexKind::NexmarkSource(source.spec), None).assign_watermarks(crate::nexmark::OUT_OF_ORDERNESS_MS)
    }

    /// Nexmark events from a JSON-lines file of the shared format (one event object a
    /// line, as `nexmark_gen.py` writes), with event times and watermarks as
    /// [`Env::read_nexmark`] gives them. The host reads each event's time from its line,
    /// and (in a job of MessagePack values) parses the line once into MessagePack.
    pub fn read_nexmark_file(&mut self, path: impl Into<String>) -> Stream<crate::nexmark::Event> {
        self.source("Nexmark File Source", VertexKind::NexmarkFileSource(path.into()), None)
            .assign_watermarks(crate::nexmark::OUT_OF_ORDERNESS_MS)
    }

    /// The values of a JSON Lines file, one a line (bounded; split across subtasks by the
    /// host). In a job of MessagePack values (the default) the host parses each line once,
    /// natively, into MessagePack, and a line that is not JSON fails the source; in a job
    /// of JSON values it passes the line on unparsed. Either way a value is decoded where
    /// it is used, and one that is not a `T` fails the job there. Blank lines are skipped.
    pub fn read_json_lines<T>(&mut self, path: impl Into<String>) -> Stream<T> {
        self.source("JSON Lines Source", VertexKind::JsonLinesSource(path.into()), None)
    }

    /// Lines of a text file, as `String`s (bounded; split across subtasks by the host).
    pub fn read_text_file(&mut self, path: impl Into<String>) -> Stream<String> {
        self.source("File Source", VertexKind::FileSource(path.into()), None)
    }

    /// A fixed collection of values (parallelism 1, bounded).
    pub fn from_elements<T: Serialize>(&mut self, elements: Vec<T>) -> Stream<T> {
        let mut encoded = Vec::with_capacity(elements.len());
        for e in &elements {
            let mut buf = Vec::new();
            match encode_json(&mut buf, e) {
                Ok(()) => encoded.push(buf),
                Err(err) => self
                    .g
                    .borrow_mut()
                    .errors
                    .push(format!("from_elements: {err}")),
            }
        }
        self.source(
            "Elements Source",
            VertexKind::ElementsSource(encoded),
            Some(1),
        )
    }

    /// `f(0), f(1), …, f(n-1)`: a host-side sequence source of `0..n` (split across
    /// subtasks) followed by a chained map applying `f` in the guest.
    pub fn generate<T, F>(&mut self, n: u64, f: F) -> Stream<T>
    where
        T: Serialize + 'static,
        F: Fn(u64) -> T + 'static,
    {
        self.sequence(n, None).map(f)
    }

    /// Like [`Env::generate`], but emitting at most `per_second` records per
    /// second in all (for tests and demos of long-running jobs).
    pub fn generate_at_rate<T, F>(&mut self, n: u64, per_second: u64, f: F) -> Stream<T>
    where
        T: Serialize + 'static,
        F: Fn(u64) -> T + 'static,
    {
        self.sequence(n, Some(per_second)).map(f)
    }

    /// The records of the job that uses this entry as one of its parts: an entry built on
    /// `input` is an *operator entry*, which a job file (`eddy run job.toml`) splices into a
    /// job mixing components, possibly written in other languages. Such an entry cannot
    /// run as a job on its own.
    pub fn input<T>(&mut self) -> Stream<T> {
        self.source("Input", VertexKind::Input, None)
    }

    fn sequence(&mut self, count: u64, per_second: Option<u64>) -> Stream<u64> {
        let kind = VertexKind::SequenceSource(Sequence { count, per_second });
        self.source("Sequence Source", kind, None)
    }

    /// Default parallelism of the job's vertices.
    pub fn set_parallelism(&mut self, parallelism: u32) -> &mut Self {
        self.g.borrow_mut().parallelism = Some(parallelism);
        self
    }

    /// Number of key groups: the upper bound for rescaling keyed state.
    pub fn set_max_parallelism(&mut self, max_parallelism: u32) -> &mut Self {
        self.g.borrow_mut().max_parallelism = Some(max_parallelism);
        self
    }

    /// How the job's operators encode the values they write (and the host's Nexmark source
    /// the events it makes): MessagePack unless set, about twice as fast as JSON through a
    /// Rust operator. Either codec reads both, so this changes no result; JSON is for jobs
    /// whose values other tools read raw, e.g. from keyed state in a savepoint.
    /// (`PythonMarshal` is the Python SDK's, for batches CPython reads: refused here.)
    pub fn set_value_codec(&mut self, codec: ValueCodec) -> &mut Self {
        let mut g = self.g.borrow_mut();
        match codec {
            ValueCodec::PythonMarshal => g.errors.push("value codec python-marshal is for CPython components; a Rust job writes json or msgpack".into()),
            codec => g.codec = Some(codec),
        }
        drop(g);
        self
    }

    /// The job's name (defaults to the entry name).
    pub fn set_job_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.g.borrow_mut().name = name.into();
        self
    }

    /// Finishes building. Forward edges between vertices whose parallelisms are both known
    /// and differ become rebalance edges, as Flink does, because subtask `i` to subtask `i`
    /// cannot work there.
    pub(crate) fn finish(self) -> Result<Built, String> {
        let mut s = std::mem::take(&mut *self.g.borrow_mut());
        if let Some(e) = s.errors.first() {
            return Err(e.clone());
        }
        if s.vertices.is_empty() {
            return Err(format!("job '{}' defines no operators", s.name));
        }
        let default = s.parallelism;
        let effective = |v: &Vertex| v.parallelism.or(default);
        for i in 0..s.edges.len() {
            let e = &s.edges[i];
            if matches!(e.partitioning, Partitioning::Forward) {
                let (a, b) = (
                    effective(&s.vertices[e.source as usize]),
                    effective(&s.vertices[e.target as usize]),
                );
                if let (Some(a), Some(b)) = (a, b) {
                    if a != b {
                        s.edges[i].partitioning = Partitioning::Rebalance;
                    }
                }
            }
        }
        Ok(Built {
            graph: JobGraph {
                name: s.name,
                vertices: s.vertices,
                edges: s.edges,
                parallelism: s.parallelism,
                max_parallelism: s.max_parallelism,
                codec: s.codec.unwrap_or(codec::DEFAULT),
            },
            registry: s.registry,
        })
    }
}

/// Which part of a value a built-in aggregate (`sum`, `min`, `max`) reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The value itself is the number.
    Whole,
    /// Element `n` of a tuple (JSON array).
    Index(u32),
    /// Member `name` of a struct (JSON object).
    Name(String),
}

impl From<u32> for Field {
    fn from(i: u32) -> Field {
        Field::Index(i)
    }
}

impl From<usize> for Field {
    fn from(i: usize) -> Field {
        Field::Index(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

/// So that a bare literal such as `sum(1)` compiles (integer literals default to `i32`). A
/// negative index maps to `u32::MAX`, an element no tuple has, which the host reports.
impl From<i32> for Field {
    fn from(i: i32) -> Field {
        Field::Index(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

impl From<&str> for Field {
    fn from(name: &str) -> Field {
        Field::Name(name.to_string())
    }
}

impl From<String> for Field {
    fn from(name: String) -> Field {
        Field::Name(name)
    }
}

impl From<Field> for FieldRef {
    fn from(f: Field) -> FieldRef {
        match f {
            Field::Whole => FieldRef::Whole,
            Field::Index(i) => FieldRef::Index(i),
            Field::Name(n) => FieldRef::Name(n),
        }
    }
}

/// The settings every builder handle offers for its last vertex.
macro_rules! vertex_setters {
    () => {
        /// Names the last vertex (shown in plans, logs and errors).
        pub fn name(self, name: impl Into<String>) -> Self {
            let name = name.into();
            with_vertex(&self.g, self.vertex, |v| v.name = name);
            self
        }

        /// Gives the last vertex a stable identity for its state across job versions.
        pub fn uid(self, uid: impl Into<String>) -> Self {
            let uid = uid.into();
            with_vertex(&self.g, self.vertex, |v| v.uid = Some(uid));
            self
        }

        /// Overrides the job's parallelism for the last vertex.
        pub fn set_parallelism(self, parallelism: u32) -> Self {
            with_vertex(&self.g, self.vertex, |v| v.parallelism = Some(parallelism));
            self
        }

        /// Puts the last vertex into slot-sharing group `group` (default: "default").
        pub fn slot_sharing_group(self, group: impl Into<String>) -> Self {
            let group = group.into();
            with_vertex(&self.g, self.vertex, |v| v.slot_sharing_group = Some(group));
            self
        }
    };
}

pub(crate) use vertex_setters;

/// A stream of `T` values, each carried as JSON between operators.
pub struct Stream<T> {
    pub(crate) g: Shared,
    pub(crate) vertex: u32,
    /// How the next operator connects to this one.
    edge: Partitioning,
    /// Whether this is the vertex's side output (a window's late records).
    side_output: bool,
    /// The other streams merged into this one by `union`: the next operator reads them too.
    more: Vec<Input>,
    _t: PhantomData<fn() -> T>,
}

/// A stream may feed several operators: each clone starts another branch.
impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream { g: self.g.clone(), vertex: self.vertex, edge: self.edge, side_output: self.side_output, more: self.more.clone(), _t: PhantomData }
    }
}

impl<T> Stream<T> {
    pub(crate) fn new(g: Shared, vertex: u32) -> Self {
        Stream {
            g,
            vertex,
            edge: Partitioning::Forward,
            side_output: false,
            more: Vec::new(),
            _t: PhantomData,
        }
    }

    /// The side output of `vertex`.
    pub(crate) fn side_output(g: Shared, vertex: u32) -> Self {
        Stream {
            side_output: true,
            ..Stream::new(g, vertex)
        }
    }

    /// The same stream with its values read as `U` by the operators after it: for types
    /// whose encodings are the same values (`nexmark::Event` and its projections).
    pub(crate) fn retype<U>(self) -> Stream<U> {
        Stream { g: self.g, vertex: self.vertex, edge: self.edge, side_output: self.side_output, more: self.more, _t: PhantomData }
    }

    fn input(&self) -> Input {
        (self.vertex, self.edge, self.side_output)
    }

    /// Every stream the next operator reads: this one and those merged into it.
    pub(crate) fn inputs(&self) -> Vec<Input> {
        std::iter::once(self.input()).chain(self.more.iter().copied()).collect()
    }

    /// Merges `other`, a stream of the same type, into this one (Flink's `union`): the next
    /// operator reads the records of both, in no particular order between them, and its
    /// event time is the minimum of theirs.
    pub fn union(mut self, other: Stream<T>) -> Stream<T> {
        if !Rc::ptr_eq(&self.g, &other.g) {
            builder_error(&self.g, "union: the streams belong to different environments".into());
        }
        self.more.extend(other.inputs());
        self
    }

    /// Event time from field `field` of each value (epoch milliseconds), with watermarks
    /// `out_of_orderness_ms` behind the largest timestamp seen, like Flink's
    /// `WatermarkStrategy.forBoundedOutOfOrderness`. Runs in the host, chained to this
    /// stream's operator; call it right after the source (no shuffle in between).
    pub fn assign_timestamps(self, field: impl Into<Field>, out_of_orderness_ms: u64) -> Self {
        self.timestamps(Some(field.into().into()), out_of_orderness_ms)
    }

    /// Watermarks `out_of_orderness_ms` behind the largest timestamp the records already
    /// carry (set by a source or an upstream operator); a record without one fails the job.
    pub fn assign_watermarks(self, out_of_orderness_ms: u64) -> Self {
        self.timestamps(None, out_of_orderness_ms)
    }

    fn timestamps(self, field: Option<FieldRef>, out_of_orderness_ms: u64) -> Self {
        let spec = TimestampSpec {
            field,
            out_of_orderness_ms,
            idle_timeout_ms: None,
        };
        let id = add_vertex_from(&self.g, "Timestamps", VertexKind::Timestamps(spec), &self.inputs(), &[]);
        place_with(&self.g, self.vertex, id);
        Stream::new(self.g, id)
    }

    /// Marks the stream idle after `timeout_ms` without records, so that downstream
    /// watermarks stop waiting for it (Flink's `withIdleness`). Follows `assign_timestamps`.
    pub fn with_idleness(self, timeout_ms: u64) -> Self {
        with_vertex(&self.g, self.vertex, |v| {
            if let VertexKind::Timestamps(spec) = &mut v.kind {
                spec.idle_timeout_ms = Some(timeout_ms);
            }
        });
        if !matches!(kind_of(&self.g, self.vertex), VertexKind::Timestamps(_)) {
            builder_error(
                &self.g,
                "with_idleness must follow assign_timestamps or assign_watermarks".into(),
            );
        }
        self
    }

    vertex_setters!();

    /// Sends records round-robin to the next operator's subtasks (to even out skew).
    pub fn rebalance(self) -> Self {
        self.partitioned(Partitioning::Rebalance)
    }

    /// Sends every record to every subtask of the next operator.
    pub fn broadcast(self) -> Self {
        self.partitioned(Partitioning::Broadcast)
    }

    fn partitioned(mut self, partitioning: Partitioning) -> Self {
        self.edge = partitioning;
        for input in &mut self.more {
            input.1 = partitioning;
        }
        self
    }

    /// Prints each value to the task's stdout (strings raw, anything else as JSON).
    pub fn print(self) -> DataSink {
        let vertex = add_vertex_from(&self.g, "Print Sink", VertexKind::PrintSink, &self.inputs(), &[]);
        DataSink { g: self.g, vertex }
    }

    /// Writes each value as a line into part files under directory `path`.
    pub fn write_text_file(self, path: impl Into<String>) -> DataSink {
        let vertex = add_vertex_from(&self.g, "File Sink", VertexKind::FileSink(path.into()), &self.inputs(), &[]);
        DataSink { g: self.g, vertex }
    }

    /// Counts each value and drops it (a benchmark's sink, as Flink's `blackhole`).
    pub fn discard(self) -> DataSink {
        let vertex = add_vertex_from(&self.g, "Discard Sink", VertexKind::DiscardSink, &self.inputs(), &[]);
        DataSink { g: self.g, vertex }
    }

    /// Writes each value into a Kafka topic (see [`crate::kafka::KafkaSink`]).
    pub fn write_kafka(self, sink: crate::kafka::KafkaSink) -> DataSink {
        let vertex = add_vertex_from(&self.g, "Kafka Sink", VertexKind::KafkaSink(sink.spec), &self.inputs(), &[]);
        DataSink { g: self.g, vertex }
    }

    fn then<O>(self, name: &str, op: Box<dyn Operator>) -> Stream<O> {
        let vertex = add_operator_from(&self.g, name, op, &self.inputs(), &[]);
        Stream::new(self.g, vertex)
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Stream<T> {
    /// One output per input.
    pub fn map<O, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(T) -> O + 'static,
    {
        self.then(
            "Map",
            op(move |mut r, out| {
                let o = f(r.value.take()?);
                out.emit(r.with(Value::Typed(&mut Some(o))))
            }),
        )
    }

    /// Any number of outputs per input.
    pub fn flat_map<O, I, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        I: IntoIterator<Item = O>,
        F: Fn(T) -> I + 'static,
    {
        self.then(
            "FlatMap",
            op(move |mut r, out| {
                for o in f(r.value.take()?) {
                    out.emit(r.with(Value::Typed(&mut Some(o))))?;
                }
                Ok(())
            }),
        )
    }

    /// Keeps the values for which `f` holds (forwarding their bytes unchanged).
    pub fn filter<F>(self, f: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + 'static,
    {
        self.then(
            "Filter",
            op(move |mut r, out| {
                let v: T = r.value.take()?;
                if !f(&v) {
                    return Ok(());
                }
                match r.value {
                    // Unchanged bytes need no encoding, and what was read of them no decoding.
                    Value::Encoded(bytes) | Value::Both(bytes, _) => out.emit(r.with(Value::Both(bytes, &mut Some(v)))),
                    Value::Typed(_) => out.emit(r.with(Value::Typed(&mut Some(v)))),
                }
            }),
        )
    }

    /// A general function: emits through `ctx.collect`, may fail with an error message.
    pub fn process<O, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, T) -> Result<(), String> + 'static,
    {
        let mut ctx = Ctx::new();
        self.then(
            "Process",
            op(move |mut r, out| {
                let v = r.value.take()?;
                ctx.begin(r.timestamp);
                f(&mut ctx, v)?;
                ctx.flush(&r, out)
            }),
        )
    }

    /// Partitions by `f(value)`: sets each record's key to the key's JSON; the next
    /// operator is connected by a hash edge so that one subtask sees all of a key.
    pub fn key_by<K, F>(self, f: F) -> KeyedStream<T, K>
    where
        K: Serialize + 'static,
        F: Fn(&T) -> K + 'static,
    {
        let mut buf = Vec::new();
        let values_read = Rc::new(Cell::new(true));
        let read = Rc::clone(&values_read);
        let index = register(
            &self.g,
            op(move |mut r, out| {
                let v: T = r.value.take()?;
                encode_key(&mut buf, &f(&v))?;
                let timestamp = r.timestamp;
                let mut v = Some(v);
                let value = match r.value {
                    // The next operator reads only keys: an empty value is all it needs.
                    _ if !read.get() => Value::Encoded(&[]),
                    // Unchanged bytes need no encoding, and what was read of them no decoding.
                    Value::Encoded(bytes) | Value::Both(bytes, _) => Value::Both(bytes, &mut v),
                    Value::Typed(_) => Value::Typed(&mut v),
                };
                out.emit(Item { key: Some(&buf), timestamp, value, input: 0 })
            }),
        );
        // The key selector belongs with its input, as in Flink (where it runs in the input's
        // partitioner): same parallelism and group, so it is chained and per-key order holds.
        // A union has one per merged stream, all running the same registered function.
        let vertices: Vec<u32> = self
            .inputs()
            .into_iter()
            .map(|input| {
                let id = add_vertex(&self.g, "KeyBy", VertexKind::Wasm(index), Some(input));
                place_with(&self.g, input.0, id);
                id
            })
            .collect();
        KeyedStream { g: self.g, vertex: vertices[0], more: vertices[1..].to_vec(), values_read, _t: PhantomData }
    }
}

/// A stream partitioned by a key of type `K`; its operators may use keyed state.
pub struct KeyedStream<T, K> {
    pub(crate) g: Shared,
    /// The key selector (the first, for a union).
    pub(crate) vertex: u32,
    /// The key selectors of the other streams of a union.
    pub(crate) more: Vec<u32>,
    /// Cleared when the one operator after the key selectors reads keys only (a count), so
    /// that they send empty values: in word count the words' second copy, from the guest's
    /// encoding to the host's combiner, was 15 % of the time.
    values_read: Rc<Cell<bool>>,
    _t: PhantomData<fn() -> (T, K)>,
}

impl<T, K> KeyedStream<T, K> {
    vertex_setters!();

    /// The hash edges from its key selectors into the next operator.
    pub(crate) fn hashed(&self) -> Vec<Input> {
        std::iter::once(self.vertex).chain(self.more.iter().copied()).map(|v| (v, Partitioning::Hash, false)).collect()
    }

    /// Groups each key's records into windows (a host operator); pick the window function
    /// on the returned [`WindowedStream`].
    pub fn window(self, window: Window) -> WindowedStream<T, K> {
        WindowedStream::new(&self.g, &self.hashed(), window)
    }

    fn then_keyed<O>(self, name: &str, kind: VertexKind, per_key_updates: bool) -> Stream<O> {
        let id = add_vertex_from(&self.g, name, kind, &self.hashed(), &[]);
        let keyed = matches!(kind_of(&self.g, id), VertexKind::Wasm(_));
        with_vertex(&self.g, id, |v| {
            v.keyed = keyed;
            v.per_key_updates = per_key_updates;
        });
        Stream::new(self.g, id)
    }

    fn aggregate<O>(self, name: &str, kind: AggregateKind, field: Field) -> Stream<O> {
        self.then_keyed(
            name,
            VertexKind::Aggregate(Aggregate {
                kind,
                field: field.into(),
            }),
            false,
        )
    }

    /// Running sum of `field` per key (built into the host): emits the key's first record
    /// with the field replaced by the sum.
    pub fn sum(self, field: impl Into<Field>) -> Stream<T> {
        self.aggregate("Sum", AggregateKind::Sum, field.into())
    }

    /// Running minimum of `field` per key (built into the host).
    pub fn min(self, field: impl Into<Field>) -> Stream<T> {
        self.aggregate("Min", AggregateKind::Min, field.into())
    }

    /// Running maximum of `field` per key (built into the host).
    pub fn max(self, field: impl Into<Field>) -> Stream<T> {
        self.aggregate("Max", AggregateKind::Max, field.into())
    }

    /// Running count per key (built into the host): emits `(key, n)`.
    pub fn count(self) -> Stream<(K, u64)> {
        self.values_read.set(false);
        self.aggregate("Count", AggregateKind::Count, Field::Whole)
    }
}

pub(crate) fn kind_of(g: &Shared, id: u32) -> VertexKind {
    g.borrow().vertices[id as usize].kind.clone()
}

pub(crate) fn keyed_record_key<'a>(r: &Item<'a>) -> Result<&'a [u8], String> {
    r.key.ok_or_else(|| {
        "keyed operator received a record without a key (is its input a key_by?)".to_string()
    })
}

impl<T, K> KeyedStream<T, K>
where
    T: Serialize + DeserializeOwned + 'static,
    K: DeserializeOwned + 'static,
{
    fn keyed_operator<O>(
        self,
        name: &str,
        op: Box<dyn Operator>,
        per_key_updates: bool,
    ) -> Stream<O> {
        let index = register(&self.g, op);
        self.then_keyed(name, VertexKind::Wasm(index), per_key_updates)
    }

    /// A general keyed function: `ctx.key()`, keyed state, and `ctx.collect`. Outputs keep
    /// the input's key.
    pub fn process<O, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut KeyedCtx<K, O>, T) -> Result<(), String> + 'static,
    {
        let mut ctx = KeyedCtx {
            ctx: Ctx::new(),
            _key: PhantomData,
        };
        self.keyed_operator(
            "Process",
            op(move |mut r, out| {
                set_record_key(keyed_record_key(&r)?);
                let v = r.value.take()?;
                ctx.begin(r.timestamp);
                f(&mut ctx, v)?;
                ctx.flush(&r, out)
            }),
            false,
        )
    }

    /// Like [`KeyedStream::process`], plus `on_timer`, called when a timer
    /// the key registered (`ctx.register_event_time_timer`, …) fires, with
    /// that key current (as Flink's `KeyedProcessFunction.onTimer`). Its
    /// outputs carry the key, and for event-time timers the timer's time.
    pub fn process_with_timers<O, F, G>(self, f: F, on_timer: G) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut KeyedCtx<K, O>, T) -> Result<(), String> + 'static,
        G: Fn(&mut KeyedCtx<K, O>, Timer) -> Result<(), String> + 'static,
    {
        // A keyed co-process whose second input nothing feeds.
        let op = crate::connect::CoProcess::new(f, |_: &mut KeyedCtx<K, O>, _: ()| Ok(()), on_timer);
        self.keyed_operator("Process", Box::new(op), false)
    }

    /// Folds each key's values with `f` (state `__reduce`) and emits the running result for
    /// every input, as Flink's `reduce` does.
    pub fn reduce<F>(self, f: F) -> Stream<T>
    where
        F: Fn(T, T) -> T + 'static,
    {
        let state: ValueState<T> = KeyedCtx::<K, ()> {
            ctx: Ctx::new(),
            _key: PhantomData,
        }
        .value_state("__reduce");
        self.keyed_operator(
            "Reduce",
            op(move |mut r, out| {
                set_record_key(keyed_record_key(&r)?);
                let v: T = r.value.take()?;
                let next = match state.get()? {
                    Some(acc) => f(acc, v),
                    None => v,
                };
                state.set(&next)?;
                out.emit(r.with(Value::Typed(&mut Some(next))))
            }),
            true,
        )
    }
}

/// A sink vertex; only its settings can still be changed.
pub struct DataSink {
    g: Shared,
    vertex: u32,
}

impl DataSink {
    vertex_setters!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Record;
    use crate::frame;

    fn edges(b: &Built) -> Vec<(u32, u32, Partitioning)> {
        b.graph
            .edges
            .iter()
            .map(|e| (e.source, e.target, e.partitioning))
            .collect()
    }

    fn names(b: &Built) -> Vec<&str> {
        b.graph.vertices.iter().map(|v| v.name.as_str()).collect()
    }

    #[test]
    fn word_count_shape() {
        let mut env = Env::new("wc");
        let counts = env
            .read_text_file("in.txt")
            .flat_map(|line: String| {
                crate::text::words(&line)
                    .map(|w| (w, 1i64))
                    .collect::<Vec<_>>()
            })
            .name("tokenize")
            .key_by(|(w, _): &(String, i64)| w.clone())
            .sum(1)
            .name("count")
            .map(|(w, n): (String, i64)| format!("{w} {n}"));
        counts.print().set_parallelism(1);
        let b = env.finish().unwrap();
        assert_eq!(b.graph.name, "wc");
        assert_eq!(
            names(&b),
            [
                "File Source",
                "tokenize",
                "KeyBy",
                "count",
                "Map",
                "Print Sink"
            ]
        );
        use Partitioning::*;
        assert_eq!(
            edges(&b),
            [
                (0, 1, Forward),
                (1, 2, Forward),
                (2, 3, Hash),
                (3, 4, Forward),
                (4, 5, Forward)
            ]
        );
        let kinds: Vec<_> = b.graph.vertices.iter().map(|v| v.kind.clone()).collect();
        assert!(matches!(kinds[0], VertexKind::FileSource(ref p) if p == "in.txt"));
        assert!(matches!(kinds[1], VertexKind::Wasm(0)));
        assert!(matches!(kinds[2], VertexKind::Wasm(1)));
        assert!(matches!(
            kinds[3],
            VertexKind::Aggregate(Aggregate {
                kind: AggregateKind::Sum,
                field: FieldRef::Index(1)
            })
        ));
        assert!(matches!(kinds[4], VertexKind::Wasm(2)));
        assert!(matches!(kinds[5], VertexKind::PrintSink));
        assert_eq!(b.registry.len(), 3);
        assert!(
            !b.graph.vertices[3].keyed,
            "host aggregates read no guest state"
        );
        assert_eq!(b.graph.vertices[5].parallelism, Some(1));
        assert!(b.graph.ids_are_sequential());
    }

    #[test]
    fn sources_settings_and_keyed_ops() {
        let mut env = Env::new("x");
        env.set_parallelism(4)
            .set_max_parallelism(64)
            .set_job_name("named");
        env.socket_text_stream("h", 9)
            .map(|s: String| s.len() as u64)
            .uid("len")
            .slot_sharing_group("g")
            .rebalance()
            .filter(|n: &u64| *n > 0)
            .key_by(|n: &u64| n % 2)
            .reduce(|a: u64, b: u64| a + b)
            .write_text_file("/out");
        env.from_elements(vec![("a".to_string(), 1i64)])
            .key_by(|(k, _): &(String, i64)| k.clone())
            .process(
                |ctx: &mut KeyedCtx<String, String>, (_, v): (String, i64)| {
                    ctx.collect(v.to_string());
                    Ok(())
                },
            )
            .print();
        let b = env.finish().unwrap();
        let g = &b.graph;
        assert_eq!(
            (g.name.as_str(), g.parallelism, g.max_parallelism),
            ("named", Some(4), Some(64))
        );
        assert_eq!(
            names(&b),
            [
                "Socket Source",
                "Map",
                "Filter",
                "KeyBy",
                "Reduce",
                "File Sink",
                "Elements Source",
                "KeyBy",
                "Process",
                "Print Sink"
            ]
        );
        assert!(
            matches!(&g.vertices[0].kind, VertexKind::SocketSource(s) if s.host == "h" && s.port == 9)
        );
        assert_eq!(g.vertices[0].parallelism, Some(1));
        assert_eq!(g.vertices[1].uid.as_deref(), Some("len"));
        assert_eq!(g.vertices[1].slot_sharing_group.as_deref(), Some("g"));
        let reduce = &g.vertices[4];
        assert!(reduce.keyed && reduce.per_key_updates);
        let process = &g.vertices[8];
        assert!(process.keyed && !process.per_key_updates);
        assert!(
            matches!(&g.vertices[6].kind, VertexKind::ElementsSource(e) if e == &[b"[\"a\",1]".to_vec()])
        );
        use Partitioning::*;
        assert_eq!(
            edges(&b),
            [
                (0, 1, Rebalance), // parallelism 1 -> 4: forward is impossible
                (1, 2, Rebalance),
                (2, 3, Forward),
                (3, 4, Hash),
                (4, 5, Forward),
                (6, 7, Forward), // key_by takes its input's parallelism: chained
                (7, 8, Hash),
                (8, 9, Forward),
            ]
        );
    }

    #[test]
    fn generate_and_aggregates() {
        let mut env = Env::new("g");
        let keyed = env
            .generate(10, |i| (i % 3, i))
            .key_by(|(k, _): &(u64, u64)| *k);
        keyed.count().print();
        let b = env.finish().unwrap();
        assert_eq!(
            names(&b),
            ["Sequence Source", "Map", "KeyBy", "Count", "Print Sink"]
        );
        assert!(matches!(
            b.graph.vertices[0].kind,
            VertexKind::SequenceSource(Sequence { count: 10, per_second: None })
        ));
        assert!(matches!(
            b.graph.vertices[3].kind,
            VertexKind::Aggregate(Aggregate {
                kind: AggregateKind::Count,
                field: FieldRef::Whole
            })
        ));
        assert_eq!(Field::from("f"), Field::Name("f".into()));
        assert_eq!(Field::from(2usize), Field::Index(2));
        assert_eq!(Field::from(-1), Field::Index(u32::MAX));
    }

    #[test]
    fn empty_job_is_an_error() {
        assert!(Env::new("e")
            .finish()
            .err()
            .unwrap()
            .contains("no operators"));
    }

    #[test]
    fn operators_run_natively() {
        let mut env = Env::new("ops");
        env.generate(0, |i| i * 2)
            .flat_map(|x: u64| vec![x, x + 1])
            .filter(|x: &u64| x % 2 == 1)
            .key_by(|x: &u64| format!("k{x}"))
            .sum(Field::Whole);
        let mut b = env.finish().unwrap();
        let mut ops = std::mem::take(&mut b.registry);
        assert_eq!(ops.len(), 4);
        // The bytes expected below are JSON.
        crate::codec::set(crate::ValueCodec::Json);
        let input = frame::encode_all([Record {
            key: None,
            timestamp: Some(5),
            value: b"3",
        }]);
        let mut out = Vec::new();
        crate::ops::run_batch(&mut ops, &input, &mut out).unwrap();
        let recs: Vec<_> = frame::decode(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            recs,
            [Record {
                key: Some(b"\"k7\""),
                timestamp: Some(5),
                value: b"7"
            }]
        );
    }

    /// What the key selector of `keyed` sends for the value `"Word"`.
    fn sent_by_key_selector(then: impl FnOnce(KeyedStream<String, String>)) -> Vec<u8> {
        let mut env = Env::new("keys");
        then(env.from_elements(vec![String::new()]).key_by(|w: &String| w.to_lowercase()));
        let mut ops = std::mem::take(&mut env.finish().unwrap().registry);
        crate::codec::set(crate::ValueCodec::Json);
        let input = frame::encode_all([Record { key: None, timestamp: None, value: b"\"Word\"" }]);
        let mut out = Vec::new();
        crate::ops::run_batch(&mut ops[..1], &input, &mut out).unwrap();
        let recs: Vec<_> = frame::decode(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].key, Some(&b"\"word\""[..]));
        recs[0].value.to_vec()
    }

    #[test]
    fn key_selectors_send_values_only_to_operators_that_read_them() {
        assert_eq!(sent_by_key_selector(|k| drop(k.count())), b"");
        assert_eq!(sent_by_key_selector(|k| drop(k.reduce(|a: String, _| a))), b"\"Word\"");
        assert_eq!(sent_by_key_selector(|k| drop(k.max(Field::Whole))), b"\"Word\"");
        let windowed = |k: KeyedStream<String, String>| drop(k.window(Window::tumbling_event_time(10)).count());
        assert_eq!(sent_by_key_selector(windowed), b"\"Word\"");
    }

    impl JobGraph {
        fn ids_are_sequential(&self) -> bool {
            self.vertices
                .iter()
                .enumerate()
                .all(|(i, v)| v.id == i as u32)
        }
    }
}
