//! Eddy: a distributed stream processor whose operators are WebAssembly
//! components. This crate is the host: the `eddy` binary and its parts.
//!
//! The map of the crate, from a job's bytes to its output:
//! - [`runtime`]: loads a component (validated against the `eddy:stream/job`
//!   world, compiled once per digest) and runs sandboxed instances of it;
//! - [`plan`]: validates the planner's job graph and turns it into chains,
//!   channels and slots;
//! - [`local`]: the embedded cluster that deploys a plan as task threads;
//! - [`task`]: the task loop, its operators and its channels;
//! - [`connectors`]: sources and sinks, run natively;
//! - [`framing`], [`json`], [`keys`], [`state`]: the record format, the JSON
//!   the host reads, key groups and keyed state.
#![deny(missing_docs)]

pub mod api;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod cluster_cmd;
pub mod connectors;
pub mod deploy;
pub mod framing;
pub mod jobfile;
pub mod jobmanager;
pub mod json;
pub mod keys;
pub mod local;
pub mod marshal;
pub mod msgpack;
pub mod net;
pub mod offload;
pub mod plan;
pub mod program;
pub mod prometheus;
pub mod protocol;
pub mod runtime;
pub mod state;
pub mod task;
pub mod taskmanager;
