//! Keyed windows: `keyed.window(Window::tumbling_event_time(60_000))` and a window function.
//!
//! The host runs the window itself (assignment, merging of sessions, firing on watermarks or
//! the wall clock, allowed lateness and the late side output). Built-in aggregates
//! (`count`, `sum`, `min`, `max`) are folded there as records arrive. For `reduce`,
//! `aggregate` and `process` the host buffers the window's values and, when it fires, hands
//! them to the user function in one record, in a Wasm vertex chained after the window:
//! functions see the window's values as a list, as in Flink's `ProcessWindowFunction`.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::eddy::stream::types::{
    Aggregate, AggregateKind, Partitioning, SlidingWindow, TimeDomain, VertexKind,
    WindowAssigner, WindowFunction, WindowSpec,
};
use crate::ctx::Ctx;
use crate::graph::{add_operator, add_vertex_from, op, place_with, vertex_setters, with_vertex, Field, Input, Shared, Stream};

/// Which windows a record belongs to, and on which clock they fire.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    assigner: WindowAssigner,
    time: TimeDomain,
}

impl Window {
    /// Fixed windows of `size_ms`, aligned to the epoch, on record timestamps.
    pub fn tumbling_event_time(size_ms: u64) -> Window {
        Window { assigner: WindowAssigner::Tumbling(size_ms), time: TimeDomain::EventTime }
    }

    /// Windows of `size_ms` starting every `slide_ms`, on record timestamps.
    pub fn sliding_event_time(size_ms: u64, slide_ms: u64) -> Window {
        let s = SlidingWindow { size_ms, slide_ms };
        Window { assigner: WindowAssigner::Sliding(s), time: TimeDomain::EventTime }
    }

    /// Per key, records less than `gap_ms` apart share a window, on record timestamps.
    pub fn session_event_time(gap_ms: u64) -> Window {
        Window { assigner: WindowAssigner::Session(gap_ms), time: TimeDomain::EventTime }
    }

    /// Fixed windows of `size_ms` on the wall clock of the window's subtask.
    pub fn tumbling_processing_time(size_ms: u64) -> Window {
        Window { time: TimeDomain::ProcessingTime, ..Window::tumbling_event_time(size_ms) }
    }

    /// Windows of `size_ms` starting every `slide_ms`, on the wall clock.
    pub fn sliding_processing_time(size_ms: u64, slide_ms: u64) -> Window {
        Window { time: TimeDomain::ProcessingTime, ..Window::sliding_event_time(size_ms, slide_ms) }
    }

    /// Sessions with gap `gap_ms`, on the wall clock.
    pub fn session_processing_time(gap_ms: u64) -> Window {
        Window { time: TimeDomain::ProcessingTime, ..Window::session_event_time(gap_ms) }
    }
}

/// The bounds of a fired window, `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

/// What the host emits when a `collect` window fires (see `wit/README.md`).
#[derive(Deserialize)]
struct Envelope<K, T> {
    key: K,
    start: i64,
    end: i64,
    values: Vec<T>,
}

/// A keyed stream grouped into windows; choose what each window computes. Results carry the
/// key and the timestamp `end - 1`.
pub struct WindowedStream<T, K> {
    g: Shared,
    vertex: u32,
    _t: PhantomData<fn() -> (T, K)>,
}

impl<T, K> WindowedStream<T, K> {
    pub(crate) fn new(g: &Shared, keyed: &[Input], window: Window) -> Self {
        let spec = WindowSpec {
            assigner: window.assigner,
            time: window.time,
            allowed_lateness_ms: 0,
            function: WindowFunction::Collect,
        };
        let vertex = add_vertex_from(g, "Window", VertexKind::Window(spec), keyed, &[]);
        WindowedStream { g: g.clone(), vertex, _t: PhantomData }
    }

    vertex_setters!();

    fn spec(&self, f: impl FnOnce(&mut WindowSpec)) {
        with_vertex(&self.g, self.vertex, |v| {
            if let VertexKind::Window(spec) = &mut v.kind {
                f(spec)
            }
        });
    }

    /// Records up to `lateness_ms` behind the watermark still update their windows (each
    /// fires again); later ones are dropped or go to [`late_data`](Self::late_data).
    /// Event time only.
    pub fn allowed_lateness(self, lateness_ms: u64) -> Self {
        self.spec(|s| s.allowed_lateness_ms = lateness_ms);
        self
    }

    /// The records too late for any of their windows (Flink's `sideOutputLateData`).
    pub fn late_data(&self) -> Stream<T> {
        Stream::side_output(self.g.clone(), self.vertex)
    }

    fn built_in<O>(self, name: &str, kind: AggregateKind, field: Field) -> Stream<O> {
        self.spec(|s| s.function = WindowFunction::Aggregate(Aggregate { kind, field: field.into() }));
        with_vertex(&self.g, self.vertex, |v| v.name = name.to_string());
        Stream::new(self.g, self.vertex)
    }

    /// Number of records per key and window (built into the host): emits `(key, n)`.
    pub fn count(self) -> Stream<(K, u64)> {
        self.built_in("Window Count", AggregateKind::Count, Field::Whole)
    }

    /// Sum of `field` per key and window (built into the host): emits the window's first
    /// record with the field replaced by the sum.
    pub fn sum(self, field: impl Into<Field>) -> Stream<T> {
        self.built_in("Window Sum", AggregateKind::Sum, field.into())
    }

    /// Minimum of `field` per key and window (built into the host).
    pub fn min(self, field: impl Into<Field>) -> Stream<T> {
        self.built_in("Window Min", AggregateKind::Min, field.into())
    }

    /// Maximum of `field` per key and window (built into the host).
    pub fn max(self, field: impl Into<Field>) -> Stream<T> {
        self.built_in("Window Max", AggregateKind::Max, field.into())
    }
}

impl<T, K> WindowedStream<T, K>
where
    T: DeserializeOwned + 'static,
    K: DeserializeOwned + 'static,
{
    /// The Wasm vertex after the window: decodes each fired window and applies `f`.
    fn then<O, F>(self, name: &str, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, K, TimeWindow, Vec<T>) -> Result<(), String> + 'static,
    {
        let mut ctx = Ctx::new();
        let id = add_operator(
            &self.g,
            name,
            op(move |mut r, out| {
                let e: Envelope<K, T> = r.value.take()?;
                ctx.begin(r.timestamp);
                f(&mut ctx, e.key, TimeWindow { start: e.start, end: e.end }, e.values)?;
                ctx.flush(&r, out)
            }),
            (self.vertex, Partitioning::Forward, false),
        );
        place_with(&self.g, self.vertex, id);
        Stream::new(self.g, id)
    }

    /// Folds each window's values with `f` and emits the result.
    pub fn reduce<F>(self, f: F) -> Stream<T>
    where
        T: Serialize,
        F: Fn(T, T) -> T + 'static,
    {
        self.then("Window Reduce", move |ctx, _, _, values: Vec<T>| {
            if let Some(v) = values.into_iter().reduce(&f) {
                ctx.collect(v);
            }
            Ok(())
        })
    }

    /// Flink's `AggregateFunction`: an accumulator from `create`, each value folded in by
    /// `add`, the result made by `result`.
    pub fn aggregate<A, O, C, F, R>(self, create: C, add: F, result: R) -> Stream<O>
    where
        O: Serialize + 'static,
        C: Fn() -> A + 'static,
        F: Fn(A, T) -> A + 'static,
        R: Fn(A) -> O + 'static,
    {
        self.then("Window Aggregate", move |ctx, _, _, values: Vec<T>| {
            ctx.collect(result(values.into_iter().fold(create(), &add)));
            Ok(())
        })
    }

    /// A full window function: the key, the window and all its values; emits through
    /// `ctx.collect` (Flink's `ProcessWindowFunction`).
    pub fn process<O, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, K, TimeWindow, Vec<T>) -> Result<(), String> + 'static,
    {
        self.then("Window Process", f)
    }
}

/// How many keys a pre-aggregating [`AllWindowedStream`] spreads records over upstream: enough
/// to use every subtask of a usual parallelism, few enough that the one subtask after merges
/// only a handful of partial results per window.
const SPREAD: u32 = 64;

impl<T: Serialize + DeserializeOwned + 'static> Stream<T> {
    /// Windows over the whole stream, not per key (Flink's `windowAll`): each window's result
    /// is computed in one subtask. Where the function allows (`count`, `sum`, `min`, `max`
    /// and `reduce`, over event-time tumbling windows, or sliding ones whose size is a
    /// multiple of their slide, without allowed lateness),
    /// partial results are computed first in parallel, each subtask's records spread over
    /// a few keys, and only those partials go to the one subtask, which merges them.
    pub fn window_all(self, window: Window) -> AllWindowedStream<T> {
        AllWindowedStream { stream: self, window, allowed_lateness_ms: 0 }
    }
}

/// A stream grouped into windows over all its records; choose what each window computes.
/// Results carry the timestamp `end - 1`.
pub struct AllWindowedStream<T> {
    stream: Stream<T>,
    window: Window,
    allowed_lateness_ms: u64,
}

impl<T: Serialize + DeserializeOwned + 'static> AllWindowedStream<T> {
    /// Records up to `lateness_ms` behind the watermark still update their windows (each
    /// fires again). Event time only; a window with lateness is not pre-aggregated.
    pub fn allowed_lateness(mut self, lateness_ms: u64) -> Self {
        self.allowed_lateness_ms = lateness_ms;
        self
    }

    /// The window that merges the partial results of `window`, if partials can be merged:
    /// each partial carries its window's `end - 1`, so one tumbling window of the slide
    /// gathers exactly the partials of one window (and gives them that end back). Session windows merge across partials,
    /// and processing-time partials would reach the merge in a later window.
    fn merging_window(&self) -> Option<Window> {
        if self.allowed_lateness_ms > 0 || self.window.time != TimeDomain::EventTime {
            return None;
        }
        match self.window.assigner {
            WindowAssigner::Tumbling(size) => Some(Window::tumbling_event_time(size)),
            // (Only where the size is a multiple of the slide do sliding windows end where
            // tumbling windows of the slide do.)
            WindowAssigner::Sliding(SlidingWindow { size_ms, slide_ms }) if slide_ms > 0 && size_ms % slide_ms == 0 => Some(Window::tumbling_event_time(slide_ms)),
            WindowAssigner::Sliding(_) => None,
            WindowAssigner::Session(_) => None,
        }
    }

    /// The stream's records spread over [`SPREAD`] keys, in windows computed in parallel.
    fn partial(stream: Stream<T>, window: Window) -> WindowedStream<T, u32> {
        let next = std::cell::Cell::new(0u32);
        stream
            .key_by(move |_: &T| {
                let key = next.get();
                next.set((key + 1) % SPREAD);
                key
            })
            .window(window)
    }

    /// `stream`'s records under one key, in windows computed in one subtask.
    fn single<S: Serialize + DeserializeOwned + 'static>(stream: Stream<S>, window: Window, allowed_lateness_ms: u64) -> WindowedStream<S, ()> {
        stream.key_by(|_: &S| ()).window(window).set_parallelism(1).allowed_lateness(allowed_lateness_ms)
    }

    /// A built-in aggregate, merged by `merge` (itself for `sum`, `min` and `max`).
    fn built_in<O: Serialize + DeserializeOwned + 'static>(
        self,
        apply: impl FnOnce(WindowedStream<T, u32>) -> Stream<O>,
        merge: impl FnOnce(WindowedStream<O, ()>) -> Stream<O>,
        apply_all: impl FnOnce(WindowedStream<T, ()>) -> Stream<O>,
    ) -> Stream<O> {
        match self.merging_window() {
            Some(merging) => merge(Self::single(apply(Self::partial(self.stream, self.window)), merging, 0)),
            None => apply_all(Self::single(self.stream, self.window, self.allowed_lateness_ms)),
        }
    }

    /// Number of records per window (built into the host).
    pub fn count(self) -> Stream<u64> {
        let counts = self.built_in(
            |w| w.count().map(|(_, n): (u32, u64)| n),
            |w| w.sum(Field::Whole),
            |w| w.count().map(|((), n): ((), u64)| n),
        );
        counts.set_parallelism(1)
    }

    /// Sum of `field` per window (built into the host): a record of the window with the
    /// field replaced by the sum.
    pub fn sum(self, field: impl Into<Field>) -> Stream<T> {
        let field = field.into();
        self.built_in(|w| w.sum(field.clone()), |w| w.sum(field.clone()), |w| w.sum(field.clone()))
    }

    /// Minimum of `field` per window (built into the host).
    pub fn min(self, field: impl Into<Field>) -> Stream<T> {
        let field = field.into();
        self.built_in(|w| w.min(field.clone()), |w| w.min(field.clone()), |w| w.min(field.clone()))
    }

    /// Maximum of `field` per window (built into the host).
    pub fn max(self, field: impl Into<Field>) -> Stream<T> {
        let field = field.into();
        self.built_in(|w| w.max(field.clone()), |w| w.max(field.clone()), |w| w.max(field.clone()))
    }

    /// Folds each window's values with `f`. Partials are computed in parallel and merged in
    /// no particular order, so `f` must be associative and commutative (a sum, a maximum).
    pub fn reduce<F>(self, f: F) -> Stream<T>
    where
        F: Fn(T, T) -> T + 'static,
    {
        let f = std::rc::Rc::new(f);
        let (g, h) = (f.clone(), f.clone());
        self.built_in(|w| w.reduce(move |a, b| g(a, b)), |w| w.reduce(move |a, b| h(a, b)), |w| w.reduce(move |a, b| f(a, b)))
    }

    /// Flink's `AggregateFunction` over each window's values (in the one subtask).
    pub fn aggregate<A, O, C, F, R>(self, create: C, add: F, result: R) -> Stream<O>
    where
        O: Serialize + 'static,
        C: Fn() -> A + 'static,
        F: Fn(A, T) -> A + 'static,
        R: Fn(A) -> O + 'static,
    {
        Self::single(self.stream, self.window, self.allowed_lateness_ms).aggregate(create, add, result)
    }

    /// A full window function: the window and all its values, in the one subtask (Flink's
    /// `ProcessAllWindowFunction`).
    pub fn process<O, F>(self, f: F) -> Stream<O>
    where
        O: Serialize + 'static,
        F: Fn(&mut Ctx<O>, TimeWindow, Vec<T>) -> Result<(), String> + 'static,
    {
        Self::single(self.stream, self.window, self.allowed_lateness_ms).process(move |ctx, (), w, values| f(ctx, w, values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, Record};
    use crate::graph::Env;
    use crate::bindings::eddy::stream::types::FieldRef;

    type Event = (String, i64, i64);

    fn events(env: &mut Env) -> crate::KeyedStream<Event, String> {
        env.from_elements(vec![("a".to_string(), 5i64, 1i64)])
            .assign_timestamps(1, 100)
            .with_idleness(1000)
            .key_by(|(k, _, _): &Event| k.clone())
    }

    #[test]
    fn windows_with_built_in_functions_and_late_data() {
        let mut env = Env::new("w");
        let windowed = events(&mut env)
            .window(Window::sliding_event_time(10, 5))
            .allowed_lateness(20);
        let late = windowed.late_data();
        windowed.sum(2).print();
        late.print();
        let b = env.finish().unwrap();
        let g = &b.graph;
        let names: Vec<&str> = g.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["Elements Source", "Timestamps", "KeyBy", "Window Sum", "Print Sink", "Print Sink"]
        );
        assert!(matches!(&g.vertices[1].kind, VertexKind::Timestamps(t)
            if matches!(t.field, Some(FieldRef::Index(1))) && t.out_of_orderness_ms == 100 && t.idle_timeout_ms == Some(1000)));
        assert_eq!(g.vertices[1].parallelism, Some(1), "the assigner is placed with its source");
        assert!(matches!(&g.vertices[3].kind, VertexKind::Window(WindowSpec {
            assigner: WindowAssigner::Sliding(SlidingWindow { size_ms: 10, slide_ms: 5 }),
            time: TimeDomain::EventTime,
            allowed_lateness_ms: 20,
            function: WindowFunction::Aggregate(Aggregate { kind: AggregateKind::Sum, field: FieldRef::Index(2) }),
        })));
        let edges: Vec<_> = g.edges.iter().map(|e| (e.source, e.target, e.partitioning, e.side_output)).collect();
        use Partitioning::*;
        assert_eq!(
            edges,
            [(0, 1, Forward, false), (1, 2, Forward, false), (2, 3, Hash, false), (3, 4, Forward, false), (3, 5, Forward, true)]
        );
        assert_eq!(b.registry.len(), 1, "only the key selector runs in the guest");
    }

    #[test]
    fn wasm_window_functions_read_the_envelope() {
        let mut env = Env::new("w");
        events(&mut env)
            .window(Window::session_processing_time(50))
            .process(|ctx: &mut Ctx<String>, key: String, w: TimeWindow, values: Vec<Event>| {
                ctx.collect(format!("{key} {}..{} {}", w.start, w.end, values.len()));
                Ok(())
            });
        events(&mut env).window(Window::tumbling_event_time(10)).reduce(|a: Event, b: Event| (a.0, a.1, a.2 + b.2));
        events(&mut env)
            .window(Window::tumbling_event_time(10))
            .aggregate(|| 0i64, |n, e: Event| n + e.2, |n| n * 10);
        let mut b = env.finish().unwrap();
        assert!(matches!(&b.graph.vertices[3].kind, VertexKind::Window(w)
            if w.time == TimeDomain::ProcessingTime && matches!(w.function, WindowFunction::Collect)));
        let envelope = br#"{"key":"a","start":0,"end":10,"values":[["a",1,2],["a",3,4]]}"#;
        // The bytes expected below are JSON.
        crate::codec::set(crate::ValueCodec::Json);
        let input = frame::encode_all([Record { key: Some(b"\"a\""), timestamp: Some(9), value: envelope }]);
        let mut registry = std::mem::take(&mut b.registry);
        let mut run = |i: usize| {
            let mut out = Vec::new();
            crate::ops::run_batch(&mut registry[i..=i], &input, &mut out).unwrap();
            let r = frame::decode(&out).next().unwrap().unwrap();
            assert_eq!((r.key, r.timestamp), (Some(&b"\"a\""[..]), Some(9)));
            String::from_utf8(r.value.to_vec()).unwrap()
        };
        // Registry: key selector, process, key selector, reduce, key selector, aggregate.
        assert_eq!(run(1), "\"a 0..10 2\"");
        assert_eq!(run(3), "[\"a\",1,6]");
        assert_eq!(run(5), "60");
    }

    #[test]
    fn idleness_needs_an_assigner() {
        let mut env = Env::new("w");
        env.from_elements(vec![1u64]).with_idleness(5).print();
        assert!(env.finish().err().unwrap().contains("with_idleness must follow"));
    }

    #[test]
    fn window_all_pre_aggregates_in_parallel_where_it_can() {
        let shape = |window: Window, lateness: u64| {
            let mut env = Env::new("all");
            env.from_elements(vec![1u64]).assign_timestamps(Field::Whole, 0).window_all(window).allowed_lateness(lateness).count().print();
            let g = env.finish().unwrap().graph;
            g.vertices.iter().filter(|v| matches!(v.kind, VertexKind::Window(_))).map(|v| (v.name.clone(), v.parallelism)).collect::<Vec<_>>()
        };
        let merged = vec![("Window Count".to_string(), None), ("Window Sum".to_string(), Some(1))];
        assert_eq!(shape(Window::tumbling_event_time(10), 0), merged, "counted in parallel, the counts summed in one subtask");
        assert_eq!(shape(Window::sliding_event_time(10, 5), 0), merged);
        let single = vec![("Window Count".to_string(), Some(1))];
        assert_eq!(shape(Window::sliding_event_time(10, 4), 0), single, "its windows end off the slide");
        assert_eq!(shape(Window::session_event_time(10), 0), single);
        assert_eq!(shape(Window::tumbling_processing_time(10), 0), single);
        assert_eq!(shape(Window::tumbling_event_time(10), 5), single, "a late firing would count twice");
    }
}
