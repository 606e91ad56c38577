//! What a job runs: its graph, and the programs behind its Wasm vertices.
//!
//! A job planned from one component has one program: that component, with the entry and
//! arguments it was planned from. A job file (`jobfile.rs`) splices operator entries of
//! several components into one graph, so its Wasm vertices run different programs; each
//! Wasm vertex names its program here, and its `wasm(n)` index stays an index into that
//! program's registry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::runtime::{JobGraph, ValueCodec, VertexKind};

/// User code behind Wasm vertices: a component and the entry and arguments that
/// rebuild its operator registry in every instance (`operator.open`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// The component's sha256 (how TaskManagers fetch and cache it).
    pub module: String,
    /// The entry whose registry the vertices index.
    pub entry: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// What its operators write (its graph's `codec`): a `json` program's operators are
    /// given JSON only. Jobs stored before the codec existed were all JSON.
    #[serde(default = "json")]
    pub codec: ValueCodec,
}

fn json() -> ValueCodec {
    ValueCodec::Json
}

impl Program {
    /// A program of `module`'s `entry`, whose planned graph says its `codec`.
    pub fn new(module: impl Into<String>, entry: impl Into<String>, args: Vec<String>, codec: ValueCodec) -> Program {
        Program { module: module.into(), entry: entry.into(), args, codec }
    }
}

/// A job's graph with the program each Wasm vertex runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// The graph, as a planner returns it (or as a job file composes it).
    pub graph: JobGraph,
    /// The distinct programs of the job.
    pub programs: Vec<Program>,
    /// Wasm vertex id → index into `programs`.
    pub vertex_programs: BTreeMap<u32, usize>,
}

impl JobSpec {
    /// A job planned from one program: every Wasm vertex runs it.
    pub fn single(graph: JobGraph, module: String, entry: String, args: Vec<String>) -> JobSpec {
        let program = Program::new(module, entry, args, graph.codec);
        let vertex_programs =
            graph.vertices.iter().filter(|v| matches!(v.kind, VertexKind::Wasm(_))).map(|v| (v.id, 0)).collect();
        JobSpec { graph, programs: vec![program], vertex_programs }
    }
}
