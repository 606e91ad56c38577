//! From the planner's `JobGraph` to what runs: validated vertices, operator
//! chains (tasks), the edges between chains and the slots that hold them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use thiserror::Error;

use crate::keys::DEFAULT_MAX_PARALLELISM;
use crate::program::{JobSpec, Program};
use crate::runtime::{
    Aggregate, AggregateKind, FieldRef, Partitioning, TimeDomain, ValueCodec, Vertex, VertexKind, WindowAssigner, WindowFunction,
};

/// Largest parallelism of one operator.
pub const MAX_PARALLELISM_LIMIT: u32 = 32_768;
/// Largest graph a planner may return; bigger ones are refused, not run.
const MAX_VERTICES: usize = 10_000;

/// A job graph that cannot run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    /// No vertex at all.
    #[error("the job has no operators")]
    Empty,
    /// Too many vertices.
    #[error("the job has {0} operators, more than the limit of {MAX_VERTICES}")]
    TooLarge(usize),
    /// Two vertices with one id.
    #[error("two operators have id {0}")]
    DuplicateId(u32),
    /// An edge to or from nowhere.
    #[error("an edge refers to operator id {0}, which does not exist")]
    UnknownVertex(u32),
    /// The edges form a cycle.
    #[error("the job graph has a cycle through '{0}'")]
    Cycle(String),
    /// A source with an input.
    #[error("source '{0}' cannot have an input")]
    SourceWithInput(String),
    /// An operator that nothing feeds.
    #[error("operator '{0}' has no input")]
    NoInput(String),
    /// A sink with an output.
    #[error("sink '{0}' cannot have an output")]
    SinkWithOutput(String),
    /// A keyed operator whose input is not partitioned by key.
    #[error("operator '{0}' needs a keyed input (key_by before it)")]
    NotKeyed(String),
    /// Parallelism 0 or past the limits.
    #[error("operator '{name}' has parallelism {parallelism}; it must be between 1 and {max}")]
    BadParallelism {
        /// The operator.
        name: String,
        /// What it asked for.
        parallelism: u32,
        /// The bound (max parallelism of the job).
        max: u32,
    },
    /// The job's default parallelism (its own, else `-p`) 0 or past its max parallelism.
    #[error("job parallelism {parallelism} must be between 1 and the max parallelism {max}")]
    BadJobParallelism {
        /// What it asked for.
        parallelism: u32,
        /// The job's max parallelism.
        max: u32,
    },
    /// A non-parallel source asked for more than one subtask.
    #[error("'{0}' is not a parallel source; its parallelism must be 1")]
    NonParallelSource(String),
    /// A timestamp assigner that does not run in its source's task.
    #[error("timestamp assigner '{0}' must follow its source by forward edges at the same parallelism")]
    AssignerNotAtSource(String),
    /// A side-output edge from an operator that has none.
    #[error("operator '{0}' has no side output (only windows do)")]
    NoSideOutput(String),
    /// A Nexmark source whose event-time rate is 0 or past the generator's range.
    #[error("nexmark source '{0}' needs an event rate between 1 and {max} events per second", max = crate::connectors::nexmark::MAX_EVENT_RATE)]
    BadEventRate(String),
    /// An edge to an input other than the first or second.
    #[error("an edge feeds input {0}; operators have at most two inputs (0 and 1)")]
    BadInput(u8),
    /// A second input into an operator that has one input.
    #[error("operator '{0}' has one input; only user operators (connect) take a second")]
    NotTwoInput(String),
    /// A window with a zero size, slide or gap.
    #[error("window '{0}' needs a size, slide and gap above 0")]
    EmptyWindow(String),
    /// An operator entry's graph run on its own.
    #[error("the entry is an operator entry (its '{0}' vertex reads the records of an enclosing job); it runs only as a step of a job file (eddy run job.toml)")]
    OperatorEntry(String),
    /// Two operators claiming one uid would share their state in snapshots.
    #[error("two operators have uid '{0}'")]
    DuplicateUid(String),
    /// A Wasm vertex that no program runs.
    #[error("operator '{0}' runs user code, but the job names no component for it")]
    NoProgram(String),
    /// Max parallelism out of range.
    #[error("max parallelism {0} must be between 1 and {MAX_PARALLELISM_LIMIT}")]
    BadMaxParallelism(u32),
}

/// An edge between vertices while planning: source, target, partitioning, side output, input.
type PlanEdge = (usize, usize, Partitioning, bool, u8);

/// One task: operators chained by forward edges into one thread per subtask.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Vertex indices (into `ExecutionPlan::vertices`), head first.
    pub vertices: Vec<usize>,
    /// Subtasks of every vertex of the chain.
    pub parallelism: u32,
    /// Slot-sharing group.
    pub group: String,
    /// A partial aggregate run at the end of this chain, before the hash
    /// exchange into that aggregate (bounded jobs only): each subtask sends one
    /// record per key instead of one per input record.
    pub combine: Option<Aggregate>,
    /// The aggregate heading this chain receives partial aggregates.
    pub combined_input: bool,
}

/// A data edge between two chains.
#[derive(Debug, Clone)]
pub struct ChainEdge {
    /// Index of the upstream chain.
    pub source: usize,
    /// Index of the downstream chain.
    pub target: usize,
    /// How records are routed (forward only between equal parallelism).
    pub partitioning: Partitioning,
    /// Carries the upstream chain's side output (a window's late records).
    pub side_output: bool,
    /// The input of the downstream chain's head it feeds: 1 for a two-input operator's second.
    pub input: u8,
}

/// One slot and the subtasks it holds: `(chain, subtask)`.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Slot-sharing group the slot serves.
    pub group: String,
    /// Subtasks placed in it.
    pub subtasks: Vec<(usize, u32)>,
}

/// A validated job, ready to deploy.
#[derive(Debug, Clone)]
pub struct ExecutionPlan {
    /// The job's name.
    pub name: String,
    /// Every source ends, so the job ends; keyed aggregates then emit only
    /// final results (Flink's batch execution mode).
    pub bounded: bool,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// The planner's vertices in topological order.
    pub vertices: Vec<Vertex>,
    /// Parallelism of each vertex.
    pub parallelism: Vec<u32>,
    /// The tasks.
    pub chains: Vec<Chain>,
    /// Data edges between chains.
    pub edges: Vec<ChainEdge>,
    /// Where subtasks run.
    pub slots: Vec<Slot>,
    /// The programs Wasm vertices run (one unless a job file mixes components).
    pub programs: Vec<Program>,
    /// For each vertex, the index of its program (Wasm vertices only).
    pub program_of: Vec<Option<usize>>,
    /// What the host's Nexmark source makes: the graph's codec.
    pub codec: ValueCodec,
}

pub(crate) fn is_source(kind: &VertexKind) -> bool {
    matches!(
        kind,
        VertexKind::SocketSource(_)
            | VertexKind::FileSource(_)
            | VertexKind::JsonLinesSource(_)
            | VertexKind::NexmarkFileSource(_)
            | VertexKind::ElementsSource(_)
            | VertexKind::SequenceSource(_)
            | VertexKind::KafkaSource(_)
            | VertexKind::NexmarkSource(_)
    )
}

pub(crate) fn is_sink(kind: &VertexKind) -> bool {
    matches!(kind, VertexKind::PrintSink | VertexKind::FileSink(_) | VertexKind::KafkaSink(_) | VertexKind::DiscardSink)
}

/// The uid naming a vertex's state: its own, or one derived from its id.
pub fn vertex_uid(vertex: &Vertex) -> String {
    vertex.uid.clone().unwrap_or_else(|| format!("vertex-{}", vertex.id))
}

/// The slot-sharing group every operator is in unless it names another.
pub const DEFAULT_GROUP: &str = "default";

impl ExecutionPlan {
    /// Validates a job and plans it; `default_parallelism` is the client's `-p`.
    pub fn new(spec: JobSpec, default_parallelism: u32) -> Result<ExecutionPlan, PlanError> {
        let JobSpec { graph, programs, vertex_programs } = spec;
        let n = graph.vertices.len();
        if n == 0 {
            return Err(PlanError::Empty);
        }
        if n > MAX_VERTICES {
            return Err(PlanError::TooLarge(n));
        }
        let max_parallelism = graph.max_parallelism.unwrap_or(DEFAULT_MAX_PARALLELISM);
        if !(1..=MAX_PARALLELISM_LIMIT).contains(&max_parallelism) {
            return Err(PlanError::BadMaxParallelism(max_parallelism));
        }
        let mut index = HashMap::new();
        for (i, v) in graph.vertices.iter().enumerate() {
            if index.insert(v.id, i).is_some() {
                return Err(PlanError::DuplicateId(v.id));
            }
        }
        let mut uids = std::collections::HashSet::new();
        if let Some(v) = graph.vertices.iter().find(|v| !uids.insert(vertex_uid(v))) {
            return Err(PlanError::DuplicateUid(vertex_uid(v)));
        }
        let mut edges = Vec::new();
        for e in &graph.edges {
            let s = *index.get(&e.source).ok_or(PlanError::UnknownVertex(e.source))?;
            let t = *index.get(&e.target).ok_or(PlanError::UnknownVertex(e.target))?;
            if e.input > 1 {
                return Err(PlanError::BadInput(e.input));
            }
            edges.push((s, t, e.partitioning, e.side_output, e.input));
        }
        let order = topological_order(&graph.vertices, &edges)?;
        // Renumber vertices in topological order.
        let mut position = vec![0; n];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut slots: Vec<Option<Vertex>> = graph.vertices.into_iter().map(Some).collect();
        let vertices: Vec<Vertex> = order.iter().map(|&i| slots[i].take().unwrap()).collect();
        let edges: Vec<PlanEdge> = edges.into_iter().map(|(s, t, p, side, input)| (position[s], position[t], p, side, input)).collect();

        let job_default = graph.parallelism.unwrap_or(default_parallelism);
        if !(1..=max_parallelism).contains(&job_default) {
            return Err(PlanError::BadJobParallelism { parallelism: job_default, max: max_parallelism });
        }
        let mut parallelism = Vec::with_capacity(n);
        for v in &vertices {
            let non_parallel = matches!(v.kind, VertexKind::SocketSource(_) | VertexKind::ElementsSource(_));
            let p = match (v.parallelism, non_parallel) {
                (Some(p), true) if p != 1 => return Err(PlanError::NonParallelSource(v.name.clone())),
                (_, true) => 1,
                (Some(p), false) => p,
                (None, false) => job_default,
            };
            if p == 0 || p > max_parallelism {
                return Err(PlanError::BadParallelism { name: v.name.clone(), parallelism: p, max: max_parallelism });
            }
            parallelism.push(p);
        }

        let inputs = |i: usize| edges.iter().filter(move |e| e.1 == i);
        for (i, v) in vertices.iter().enumerate() {
            if matches!(v.kind, VertexKind::Input) {
                return Err(PlanError::OperatorEntry(v.name.clone()));
            }
            let has_input = inputs(i).next().is_some();
            if is_source(&v.kind) && has_input {
                return Err(PlanError::SourceWithInput(v.name.clone()));
            }
            if !is_source(&v.kind) && !has_input {
                return Err(PlanError::NoInput(v.name.clone()));
            }
            if is_sink(&v.kind) && edges.iter().any(|e| e.0 == i) {
                return Err(PlanError::SinkWithOutput(v.name.clone()));
            }
            let keyed = v.keyed || matches!(v.kind, VertexKind::Aggregate(_) | VertexKind::Window(_));
            // A keyed operator's second input may be broadcast instead (keyed broadcast state).
            if keyed && inputs(i).any(|e| e.2 != Partitioning::Hash && !(e.4 == 1 && e.2 == Partitioning::Broadcast)) {
                return Err(PlanError::NotKeyed(v.name.clone()));
            }
            if !matches!(v.kind, VertexKind::Wasm(_)) && inputs(i).any(|e| e.4 == 1) {
                return Err(PlanError::NotTwoInput(v.name.clone()));
            }
            if !matches!(v.kind, VertexKind::Window(_)) && edges.iter().any(|e| e.0 == i && e.3) {
                return Err(PlanError::NoSideOutput(v.name.clone()));
            }
            if let VertexKind::NexmarkSource(n) = &v.kind {
                if !(1..=crate::connectors::nexmark::MAX_EVENT_RATE).contains(&n.event_rate) {
                    return Err(PlanError::BadEventRate(v.name.clone()));
                }
            }
            if let VertexKind::Window(w) = &v.kind {
                let sizes = match w.assigner {
                    WindowAssigner::Tumbling(size) | WindowAssigner::Session(size) => [size, size],
                    WindowAssigner::Sliding(s) => [s.size_ms, s.slide_ms],
                };
                if sizes.contains(&0) {
                    return Err(PlanError::EmptyWindow(v.name.clone()));
                }
            }
        }

        let group = |v: &Vertex| v.slot_sharing_group.clone().unwrap_or_else(|| DEFAULT_GROUP.into());
        let out_degree = |i: usize| edges.iter().filter(|e| e.0 == i).count();
        let in_degree = |i: usize| edges.iter().filter(|e| e.1 == i).count();
        // A side output never chains: its records are told apart by the task's output.
        let chained = |&(s, t, p, side, input): &PlanEdge| {
            !side
                && input == 0
                && p == Partitioning::Forward
                && parallelism[s] == parallelism[t]
                && group(&vertices[s]) == group(&vertices[t])
                && out_degree(s) == 1
                && in_degree(t) == 1
        };
        let mut chain_of = vec![usize::MAX; n];
        let mut chains: Vec<Chain> = Vec::new();
        for i in 0..n {
            let upstream = edges.iter().find(|e| e.1 == i && chained(e));
            match upstream {
                Some(&(s, ..)) => {
                    let c = chain_of[s];
                    chains[c].vertices.push(i);
                    chain_of[i] = c;
                }
                None => {
                    chain_of[i] = chains.len();
                    chains.push(Chain {
                        vertices: vec![i],
                        parallelism: parallelism[i],
                        group: group(&vertices[i]),
                        combine: None,
                        combined_input: false,
                    });
                }
            }
        }
        let chain_edges: Vec<ChainEdge> = edges
            .iter()
            .filter(|e| !chained(e))
            .map(|&(s, t, p, side_output, input)| {
                let p = if p == Partitioning::Forward && parallelism[s] != parallelism[t] { Partitioning::Rebalance } else { p };
                ChainEdge { source: chain_of[s], target: chain_of[t], partitioning: p, side_output, input }
            })
            .collect();
        for (i, v) in vertices.iter().enumerate() {
            // Sources emit no watermarks of their own, so an assigner must see
            // its source's records without a shuffle in between.
            if matches!(v.kind, VertexKind::Timestamps(_)) && !is_source(&vertices[chains[chain_of[i]].vertices[0]].kind) {
                return Err(PlanError::AssignerNotAtSource(v.name.clone()));
            }
        }

        let unbounded = |k: &VertexKind| matches!(k, VertexKind::SocketSource(_)) || matches!(k, VertexKind::KafkaSource(s) if !s.bounded);
        let bounded = vertices.iter().filter(|v| is_source(&v.kind)).all(|v| !unbounded(&v.kind));
        if bounded {
            // A built-in aggregate fed by one chain whose only output it is: combine upstream.
            for t in 0..chains.len() {
                let VertexKind::Aggregate(aggregate) = &vertices[chains[t].vertices[0]].kind else { continue };
                let inputs: Vec<&ChainEdge> = chain_edges.iter().filter(|e| e.target == t).collect();
                let [input] = inputs[..] else { continue };
                if chain_edges.iter().filter(|e| e.source == input.source).count() == 1 {
                    chains[input.source].combine = Some(aggregate.clone());
                    chains[t].combined_input = true;
                }
            }
        }
        let mut program_of = Vec::with_capacity(n);
        for v in &vertices {
            let program = vertex_programs.get(&v.id).copied().filter(|&p| p < programs.len());
            if matches!(v.kind, VertexKind::Wasm(_)) && program.is_none() {
                return Err(PlanError::NoProgram(v.name.clone()));
            }
            program_of.push(program);
        }
        let slots = assign_slots(&chains);
        Ok(ExecutionPlan {
            name: graph.name,
            bounded,
            max_parallelism,
            vertices,
            parallelism,
            chains,
            edges: chain_edges,
            slots,
            programs,
            program_of,
            codec: graph.codec.of_values(),
        })
    }

    /// Every subtask of the job as `(chain, subtask)`.
    pub fn subtasks(&self) -> Vec<(usize, u32)> {
        self.chains.iter().enumerate().flat_map(|(c, ch)| (0..ch.parallelism).map(move |s| (c, s))).collect()
    }

    /// The name of a chain: its operators' names joined by arrows.
    pub fn chain_name(&self, chain: usize) -> String {
        let names: Vec<&str> = self.chains[chain].vertices.iter().map(|&v| self.vertices[v].name.as_str()).collect();
        names.join(" -> ")
    }
}

/// Slot sharing: each group gets as many slots as its widest chain, and slot
/// `s` of a group holds subtask `s` of every chain of the group.
fn assign_slots(chains: &[Chain]) -> Vec<Slot> {
    let mut groups: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (c, chain) in chains.iter().enumerate() {
        let order = *first_seen.entry(chain.group.as_str()).or_insert(c);
        groups.entry((order, chain.group.as_str())).or_default().push(c);
    }
    let mut slots = Vec::new();
    for ((_, group), members) in groups {
        let width = members.iter().map(|&c| chains[c].parallelism).max().unwrap_or(0);
        for s in 0..width {
            let subtasks = members.iter().filter(|&&c| s < chains[c].parallelism).map(|&c| (c, s)).collect();
            slots.push(Slot { group: group.to_string(), subtasks });
        }
    }
    slots
}

fn topological_order(vertices: &[Vertex], edges: &[PlanEdge]) -> Result<Vec<usize>, PlanError> {
    let n = vertices.len();
    let mut in_deg = vec![0usize; n];
    for e in edges {
        in_deg[e.1] += 1;
    }
    // Kahn's algorithm, lowest index first, so plans are stable.
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| in_deg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for e in edges.iter().filter(|e| e.0 == i) {
            in_deg[e.1] -= 1;
            if in_deg[e.1] == 0 {
                ready.insert(e.1);
            }
        }
    }
    match (0..n).find(|&i| in_deg[i] > 0) {
        Some(i) => Err(PlanError::Cycle(vertices[i].name.clone())),
        None => Ok(order),
    }
}

/// The name of a partitioning, as job files and the API spell it.
pub fn partitioning_name(p: Partitioning) -> &'static str {
    match p {
        Partitioning::Forward => "forward",
        Partitioning::Hash => "hash",
        Partitioning::Rebalance => "rebalance",
        Partitioning::Broadcast => "broadcast",
    }
}

fn aggregate_name(a: &Aggregate) -> String {
    let kind = match a.kind {
        AggregateKind::Sum => "sum",
        AggregateKind::Min => "min",
        AggregateKind::Max => "max",
        AggregateKind::Count => "count",
    };
    match &a.field {
        FieldRef::Whole => kind.to_string(),
        FieldRef::Index(i) => format!("{kind} of field {i}"),
        FieldRef::Name(n) => format!("{kind} of field '{n}'"),
    }
}

fn describe(kind: &VertexKind) -> String {
    match kind {
        VertexKind::SocketSource(s) => format!("socket source {}:{}", s.host, s.port),
        VertexKind::FileSource(p) => format!("file source {p}"),
        VertexKind::JsonLinesSource(p) => format!("JSON lines source {p}"),
        VertexKind::NexmarkFileSource(p) => format!("nexmark file source {p}"),
        VertexKind::ElementsSource(e) => format!("elements source ({} records)", e.len()),
        VertexKind::SequenceSource(s) => match s.per_second {
            Some(r) => format!("sequence source 0..{} at {r}/s", s.count),
            None => format!("sequence source 0..{}", s.count),
        },
        VertexKind::KafkaSource(k) => {
            let bounded = if k.bounded { ", bounded" } else { "" };
            format!("kafka source {} from {}{bounded}", k.topics.join(","), k.brokers)
        }
        VertexKind::NexmarkSource(n) => {
            let rate = n.per_second.map(|r| format!(" at {r}/s")).unwrap_or_default();
            format!("nexmark source of {} events{rate}, {} events per second of event time", n.events, n.event_rate)
        }
        VertexKind::Input => "input of an operator entry".into(),
        VertexKind::Wasm(i) => format!("wasm operator #{i}"),
        VertexKind::Aggregate(a) => format!("built-in keyed {}", aggregate_name(a)),
        VertexKind::Timestamps(t) => {
            let field = t.field.as_ref().map_or("record timestamps".into(), |f| format!("timestamps from {f:?}"));
            let idle = t.idle_timeout_ms.map(|ms| format!(", idle after {ms} ms")).unwrap_or_default();
            format!("{field}, watermarks {} ms behind{idle}", t.out_of_orderness_ms)
        }
        VertexKind::Window(w) => {
            let assigner = match w.assigner {
                WindowAssigner::Tumbling(size) => format!("tumbling {size} ms"),
                WindowAssigner::Sliding(s) => format!("sliding {} ms every {} ms", s.size_ms, s.slide_ms),
                WindowAssigner::Session(gap) => format!("session gap {gap} ms"),
            };
            let time = match w.time {
                TimeDomain::EventTime => "event time",
                TimeDomain::ProcessingTime => "processing time",
            };
            let function = match &w.function {
                WindowFunction::Aggregate(a) => aggregate_name(a),
                WindowFunction::Collect => "collect".into(),
            };
            format!("keyed window, {assigner} ({time}), lateness {} ms, {function}", w.allowed_lateness_ms)
        }
        VertexKind::PrintSink => "print sink".into(),
        VertexKind::DiscardSink => "discard sink".into(),
        VertexKind::FileSink(p) => format!("file sink {p}"),
        VertexKind::KafkaSink(k) => format!("kafka sink {} on {} ({:?})", k.topic, k.brokers, k.guarantee),
    }
}

impl fmt::Display for ExecutionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.bounded { "bounded" } else { "unbounded" };
        writeln!(f, "job '{}' ({mode}), max parallelism {}", self.name, self.max_parallelism)?;
        writeln!(f, "operators:")?;
        for (i, v) in self.vertices.iter().enumerate() {
            let uid = v.uid.as_deref().map(|u| format!(" uid={u}")).unwrap_or_default();
            // A job of several programs says which one runs each Wasm vertex.
            let program = match self.program_of[i] {
                Some(p) if self.programs.len() > 1 => format!(" of program {p}"),
                _ => String::new(),
            };
            writeln!(f, "  [{i}] {:<20} p={:<3} {}{program}{uid}", v.name, self.parallelism[i], describe(&v.kind))?;
        }
        if self.programs.len() > 1 {
            writeln!(f, "programs:")?;
            for (i, p) in self.programs.iter().enumerate() {
                let args = if p.args.is_empty() { String::new() } else { format!(" {}", p.args.join(" ")) };
                writeln!(f, "  [{i}] entry '{}'{args} of component {}", p.entry, &p.module[..p.module.len().min(12)])?;
            }
        }
        writeln!(f, "tasks (chains):")?;
        for (c, chain) in self.chains.iter().enumerate() {
            let combine = chain.combine.as_ref().map(|a| format!(" (+ partial {})", aggregate_name(a))).unwrap_or_default();
            writeln!(f, "  task {c}: {}{combine}  p={} group={}", self.chain_name(c), chain.parallelism, chain.group)?;
        }
        writeln!(f, "edges:")?;
        for e in &self.edges {
            let side = match (e.side_output, e.input) {
                (true, _) => " (side output)",
                (_, 1) => " (second input)",
                _ => "",
            };
            writeln!(f, "  task {} -> task {}: {}{side}", e.source, e.target, partitioning_name(e.partitioning))?;
        }
        writeln!(f, "slots: {}", self.slots.len())?;
        for (s, slot) in self.slots.iter().enumerate() {
            let held: Vec<String> = slot
                .subtasks
                .iter()
                .map(|&(c, i)| format!("task {c} [{}/{}]", i + 1, self.chains[c].parallelism))
                .collect();
            writeln!(f, "  slot {s} ({}): {}", slot.group, held.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Edge, JobGraph, Sequence, ValueCodec};

    fn vertex(id: u32, name: &str, kind: VertexKind) -> Vertex {
        Vertex { id, name: name.into(), uid: None, kind, parallelism: None, slot_sharing_group: None, keyed: false, per_key_updates: false }
    }

    /// Two sequences into `target` (the second by input 1), into a print sink.
    fn two_inputs_into(target: VertexKind, input: u8) -> Result<ExecutionPlan, PlanError> {
        partitioned_inputs_into(target, input, [Partitioning::Forward; 2], false)
    }

    /// Two sequences into `target`, partitioned as `into` says.
    fn partitioned_inputs_into(target: VertexKind, input: u8, into: [Partitioning; 2], keyed: bool) -> Result<ExecutionPlan, PlanError> {
        let source = || VertexKind::SequenceSource(Sequence { count: 10, per_second: None });
        let target = Vertex { keyed, ..vertex(2, "both", target) };
        let vertices = vec![vertex(0, "a", source()), vertex(1, "b", source()), target, vertex(3, "print", VertexKind::PrintSink)];
        let edge = |source, target, input, partitioning| Edge { source, target, partitioning, side_output: false, input };
        let edges = vec![edge(0, 2, 0, into[0]), edge(1, 2, input, into[1]), edge(2, 3, 0, Partitioning::Forward)];
        let graph = JobGraph { name: "j".into(), vertices, edges, parallelism: None, max_parallelism: None, codec: ValueCodec::Json };
        ExecutionPlan::new(JobSpec::single(graph, "m".into(), "e".into(), Vec::new()), 2)
    }

    #[test]
    fn a_second_input_feeds_only_a_user_operator_and_never_chains() {
        let plan = two_inputs_into(VertexKind::Wasm(0), 1).unwrap();
        let into: Vec<(u8, Partitioning)> = plan.edges.iter().filter(|e| e.target == 2).map(|e| (e.input, e.partitioning)).collect();
        assert_eq!(into, [(0, Partitioning::Forward), (1, Partitioning::Forward)]);
        assert!(plan.to_string().contains("task 1 -> task 2: forward (second input)"), "{plan}");
        assert_eq!(two_inputs_into(VertexKind::PrintSink, 1).unwrap_err(), PlanError::SinkWithOutput("both".into()));
        let aggregate = VertexKind::Aggregate(Aggregate { kind: AggregateKind::Count, field: FieldRef::Whole });
        assert!(matches!(two_inputs_into(aggregate, 1).unwrap_err(), PlanError::NotKeyed(_)));
        let err = two_inputs_into(VertexKind::Timestamps(crate::runtime::TimestampSpec { field: None, out_of_orderness_ms: 0, idle_timeout_ms: None }), 1);
        assert_eq!(err.unwrap_err().to_string(), "operator 'both' has one input; only user operators (connect) take a second");
        assert_eq!(two_inputs_into(VertexKind::Wasm(0), 2).unwrap_err().to_string(), "an edge feeds input 2; operators have at most two inputs (0 and 1)");
    }

    #[test]
    fn a_keyed_operator_takes_a_broadcast_second_input_only() {
        use Partitioning::{Broadcast, Hash};
        assert!(partitioned_inputs_into(VertexKind::Wasm(0), 1, [Hash, Broadcast], true).is_ok());
        assert!(matches!(partitioned_inputs_into(VertexKind::Wasm(0), 1, [Broadcast, Hash], true).unwrap_err(), PlanError::NotKeyed(_)));
        assert!(matches!(partitioned_inputs_into(VertexKind::Wasm(0), 0, [Hash, Broadcast], true).unwrap_err(), PlanError::NotKeyed(_)));
    }
}
