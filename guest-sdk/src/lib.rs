//! # eddy-sdk: Eddy jobs in Rust
//!
//! An Eddy job is a WebAssembly component for the `eddy:stream/job` world (`wit/eddy.wit`).
//! This crate lets you write one the way you would write a Flink DataStream job: a plain
//! function builds a pipeline on an [`Env`], and [`entries!`] exports it.
//!
//! ```
//! use eddy_sdk::prelude::*;
//!
//! fn lengths(env: &mut Env, args: &Args) -> Result<(), String> {
//!     env.read_text_file(args.required("input")?).map(|l: String| l.len()).print();
//!     Ok(())
//! }
//! eddy_sdk::entries! { "lengths" => lengths }
//! ```
//!
//! The same job function runs in two places, which is why it must be deterministic:
//! the planner runs it to return the graph, and every operator instance re-runs it to
//! rebuild the registry of user functions and pick the ones the host assigned to it (a
//! chain of `wasm(n)` vertices, fused into one call per batch).
#![deny(missing_docs)]

#[cfg(any(test, all(feature = "fast-alloc", target_family = "wasm", not(target_feature = "atomics"))))]
mod alloc;
pub mod args;
mod broadcast;
mod codec;
mod connect;
mod ctx;
mod joins;
mod msgpack;
pub mod frame;
mod graph;
mod ops;
mod runtime;
pub mod text;
mod windows;

/// Bindings generated from `wit/eddy.wit`; used by [`entries!`], not meant for job code.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "job",
        pub_export_macro: true,
        default_bindings_module: "eddy_sdk::bindings",
    });
}

/// The component's allocator (feature `fast-alloc`, on by default); single-threaded wasm only.
#[cfg(all(feature = "fast-alloc", target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: alloc::Recycling<talc::wasm::WasmDynamicTalc> = alloc::Recycling::new(talc::wasm::new_wasm_dynamic_allocator());

/// Kafka sources and sinks.
pub mod kafka;
pub mod nexmark;

pub use args::Args;
pub use codec::ValueCodec;
pub use ctx::{counter, info, log, Ctx, KeyedCtx, Level, ListState, MapState, TimeDomain, Timer, ValueState};
pub use broadcast::{Broadcast, BroadcastConnectedStreams, BroadcastState, BroadcastStream, KeyedBroadcastConnectedStreams, ReadOnlyBroadcast, ReadOnlyBroadcastState};
pub use connect::{ConnectedStreams, KeyedConnectedStreams};
pub use graph::{DataSink, Env, Field, KeyedStream, Stream};
pub use joins::{CoGroupedWindows, IntervalJoin, JoinedStreams, JoinedWindows};
pub use windows::{AllWindowedStream, TimeWindow, Window, WindowedStream};
pub use runtime::{Component, JobEntries, JobFn};

/// Everything a job function needs: `use eddy_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::args::Args;
    pub use crate::codec::ValueCodec;
    pub use crate::ctx::{
        counter, info, log, Ctx, KeyedCtx, Level, ListState, MapState, TimeDomain, Timer, ValueState,
    };
    pub use crate::broadcast::{Broadcast, BroadcastConnectedStreams, BroadcastState, BroadcastStream, KeyedBroadcastConnectedStreams, ReadOnlyBroadcast, ReadOnlyBroadcastState};
    pub use crate::connect::{ConnectedStreams, KeyedConnectedStreams};
    pub use crate::graph::{DataSink, Env, Field, KeyedStream, Stream};
    pub use crate::joins::{IntervalJoin, JoinedStreams, JoinedWindows};
    pub use crate::windows::{AllWindowedStream, TimeWindow, Window, WindowedStream};
}

/// Exports job functions as the component's entries, by name:
///
/// ```
/// # use eddy_sdk::prelude::*;
/// # fn word_count(_: &mut Env, _: &Args) -> Result<(), String> { Ok(()) }
/// # fn stream_word_count(_: &mut Env, _: &Args) -> Result<(), String> { Ok(()) }
/// eddy_sdk::entries! {
///     "word-count" => word_count,
///     "stream-word-count" => stream_word_count,
/// }
/// ```
///
/// Each function has the type [`JobFn`]. Use it once, in the root of a `cdylib` crate
/// built for `wasm32-wasip2`.
#[macro_export]
macro_rules! entries {
    ($($name:literal => $job:path),+ $(,)?) => {
        #[doc(hidden)]
        pub struct __EddyJob;

        impl $crate::JobEntries for __EddyJob {
            const ENTRIES: &'static [(&'static str, $crate::JobFn)] = &[$(($name, $job as $crate::JobFn)),+];
        }

        #[doc(hidden)]
        pub type __EddyComponent = $crate::Component<__EddyJob>;

        // Only wasm has the component exports; natively (e.g. `cargo test --workspace`) the
        // export names, which contain `:` and `/`, would break the shared-library link.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export!(__EddyComponent with_types_in $crate::bindings);
    };
}

/// The README's job example, compiled and checked by `cargo test` so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
