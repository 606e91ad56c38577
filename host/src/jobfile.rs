//! Job files: jobs whose operators come from several components, possibly written in
//! different languages (`eddy run job.toml`).
//!
//! A job file names components and lists steps: native sources and sinks, and
//! *operator entries* of the components (entries whose graph starts with `input`, see
//! `wit/eddy.wit`). Composing plans each operator entry in its own component and splices
//! its graph in place of the step, its `input` replaced by the steps that feed it; every
//! Wasm vertex keeps its registry index and runs its own program (`program.rs`).
//!
//! ```toml
//! name = "word lengths"
//!
//! [components]
//! tokenizer = "wordcount.wasm"   # relative to the job file; a sha256 when sent to a cluster
//! enrich = "enrich_py.wasm"
//!
//! [[step]]
//! source = { file = "input.txt" }
//!
//! [[step]]
//! component = "tokenizer"
//! entry = "tokenize"
//!
//! [[step]]
//! component = "enrich"
//! entry = "enrich"
//! parallelism = 2
//!
//! [[step]]
//! sink = "print"
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::program::{JobSpec, Program};
use crate::runtime::{Edge, GuestError, JobGraph, Module, Partitioning, Sequence, SocketSource, TimestampSpec, ValueCodec, Vertex, VertexKind};

/// A job file, as written (TOML) or as sent to a JobManager (JSON, components as digests).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobFile {
    /// The job's name (default: the file's name without extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default parallelism of the steps; beats `-p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Number of key groups (default: the largest an entry sets, else 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<u32>,
    /// Component name → its `.wasm` path (relative to the job file), or its sha256 on a cluster.
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    /// The steps, in order; a step reads the one before it unless it names its `inputs`.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

/// One step: exactly one of `source`, `component` (with `entry`) or `sink`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Step {
    /// Unique name (default: the entry, `source` or `sink`), used in `inputs` and in uids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A native source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStep>,
    /// The component whose operator entry this step runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The operator entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The entry's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// A native sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<SinkStep>,
    /// The steps it reads (default: the step before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// How records reach it from its inputs, where its entry does not say (default forward).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<StepPartitioning>,
    /// Parallelism of its operators that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
}

/// A native source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum SourceStep {
    /// Lines of a text file (bounded).
    File(String),
    /// The JSON values of a JSON Lines file, one a line (bounded).
    JsonLines(String),
    /// Nexmark events of a JSON Lines file of the shared format (bounded), with their
    /// event times and the generator's watermarks.
    NexmarkFile(String),
    /// Nexmark events of the host's generator (bounded), with their event times and
    /// watermarks: `source.nexmark = { events = N }`.
    Nexmark(NexmarkSourceStep),
    /// Lines of a text socket, `HOST:PORT` (unbounded).
    Socket(String),
    /// The numbers `0..n`.
    Sequence(u64),
    /// Fixed JSON values.
    Elements(Vec<serde_json::Value>),
    /// Records of Kafka topics.
    Kafka(KafkaSourceStep),
}

/// The host's Nexmark generator in a job file, with the SDKs' defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NexmarkSourceStep {
    /// How many events in all.
    pub events: u64,
    /// Events per second over all subtasks (default: as fast as they go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u64>,
    /// Events per second of event time (default 10 000 000).
    #[serde(default = "default_event_rate")]
    pub event_rate: u64,
}

fn default_event_rate() -> u64 {
    crate::connectors::nexmark::DEFAULT_EVENT_RATE
}

/// A Kafka source of a job file: `source.kafka = { brokers = "HOST:PORT", topics = ["in"] }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaSourceStep {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics (`^…`: a regular expression).
    pub topics: Vec<String>,
    /// `earliest` (default), `latest`, `committed`, or `{ timestamp = MS }`.
    #[serde(default)]
    pub start: KafkaStartStep,
    /// Stop at the ends the partitions have at the start.
    #[serde(default)]
    pub bounded: bool,
    /// The consumer group offsets are committed to.
    #[serde(default)]
    pub group: Option<String>,
    /// `text` (default), `json` or `envelope`.
    #[serde(default)]
    pub format: KafkaFormatStep,
    /// A cluster-side secret's name.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Where a job file's Kafka source starts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum KafkaStartStep {
    /// The first offset.
    #[default]
    Earliest,
    /// The end at the start.
    Latest,
    /// The group's committed offsets.
    Committed,
    /// The first record at or after this epoch time (ms).
    Timestamp(i64),
}

/// A job file's Kafka record format.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KafkaFormatStep {
    /// Values are text.
    #[default]
    Text,
    /// Values are JSON.
    Json,
    /// Values are envelopes with key, value, headers and metadata.
    Envelope,
}

impl KafkaFormatStep {
    fn kind(self) -> crate::runtime::KafkaFormat {
        match self {
            KafkaFormatStep::Text => crate::runtime::KafkaFormat::Text,
            KafkaFormatStep::Json => crate::runtime::KafkaFormat::Json,
            KafkaFormatStep::Envelope => crate::runtime::KafkaFormat::Envelope,
        }
    }
}

/// A Kafka sink of a job file: `sink.kafka = { brokers = "HOST:PORT", topic = "out" }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaSinkStep {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// `none` (default) or `at-least-once`.
    #[serde(default)]
    pub guarantee: GuaranteeStep,
    /// `text` (default), `json` or `envelope`.
    #[serde(default)]
    pub format: KafkaFormatStep,
    /// A cluster-side secret's name.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A job file's Kafka delivery guarantee.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuaranteeStep {
    /// Nothing awaited.
    #[default]
    None,
    /// Flushed on every checkpoint.
    AtLeastOnce,
}

impl SourceStep {
    /// How far the watermarks of the source's events stay behind the largest event time,
    /// for the sources whose records carry one: Nexmark's, as the SDKs' `read_nexmark`.
    fn watermark_delay_ms(&self) -> Option<u64> {
        match self {
            SourceStep::Nexmark(_) | SourceStep::NexmarkFile(_) => Some(crate::connectors::nexmark::OUT_OF_ORDERNESS_MS),
            _ => None,
        }
    }

    /// The host's source vertex; none for a socket that is not `HOST:PORT`.
    fn vertex_kind(&self) -> Option<VertexKind> {
        Some(match self {
            SourceStep::File(path) => VertexKind::FileSource(path.clone()),
            SourceStep::JsonLines(path) => VertexKind::JsonLinesSource(path.clone()),
            SourceStep::NexmarkFile(path) => VertexKind::NexmarkFileSource(path.clone()),
            SourceStep::Nexmark(n) => VertexKind::NexmarkSource(crate::runtime::NexmarkSource {
                events: n.events,
                per_second: n.per_second,
                event_rate: n.event_rate,
            }),
            SourceStep::Socket(addr) => {
                let (host, port) = addr.rsplit_once(':')?;
                VertexKind::SocketSource(SocketSource { host: host.into(), port: port.parse().ok()? })
            }
            SourceStep::Sequence(count) => VertexKind::SequenceSource(Sequence { count: *count, per_second: None }),
            SourceStep::Elements(values) => VertexKind::ElementsSource(values.iter().map(|v| v.to_string().into_bytes()).collect()),
            SourceStep::Kafka(k) => {
                use crate::runtime::KafkaStart;
                VertexKind::KafkaSource(crate::runtime::KafkaSource {
                    brokers: k.brokers.clone(),
                    topics: k.topics.clone(),
                    start: match k.start {
                        KafkaStartStep::Earliest => KafkaStart::Earliest,
                        KafkaStartStep::Latest => KafkaStart::Latest,
                        KafkaStartStep::Committed => KafkaStart::Committed,
                        KafkaStartStep::Timestamp(ms) => KafkaStart::Timestamp(ms),
                    },
                    bounded: k.bounded,
                    group: k.group.clone(),
                    format: k.format.kind(),
                    secret: k.secret.clone(),
                })
            }
        })
    }
}

/// A native sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum SinkStep {
    /// Standard output.
    Print,
    /// Part files under a directory.
    File(String),
    /// A Kafka topic.
    Kafka(KafkaSinkStep),
}

impl SinkStep {
    fn vertex_kind(&self) -> VertexKind {
        match self {
            SinkStep::Print => VertexKind::PrintSink,
            SinkStep::File(dir) => VertexKind::FileSink(dir.clone()),
            SinkStep::Kafka(k) => VertexKind::KafkaSink(crate::runtime::KafkaSink {
                brokers: k.brokers.clone(),
                topic: k.topic.clone(),
                guarantee: match k.guarantee {
                    GuaranteeStep::None => crate::runtime::DeliveryGuarantee::None,
                    GuaranteeStep::AtLeastOnce => crate::runtime::DeliveryGuarantee::AtLeastOnce,
                },
                format: k.format.kind(),
                secret: k.secret.clone(),
            }),
        }
    }
}

/// How a step's input is partitioned (a hash exchange comes from an entry's own `key_by`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepPartitioning {
    /// Subtask i to subtask i (chained when the parallelism is equal).
    Forward,
    /// Round robin.
    Rebalance,
    /// To every subtask.
    Broadcast,
}

/// Why a job file cannot become a job.
#[derive(Debug, Error)]
pub enum JobFileError {
    /// Unreadable file.
    #[error("cannot read job file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        cause: String,
    },
    /// Not TOML, or not a job file.
    #[error("job file {path} is invalid: {cause}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        cause: String,
    },
    /// No steps.
    #[error("the job file has no steps")]
    Empty,
    /// Two steps named alike.
    #[error("two steps are named '{0}'")]
    DuplicateStep(String),
    /// Not exactly one of source, component, sink.
    #[error("step '{0}' must have exactly one of `source`, `component` (with `entry`) or `sink`")]
    StepKind(String),
    /// A component step without entry.
    #[error("step '{0}' names a component but no `entry`")]
    NoEntry(String),
    /// An entry or arguments on a step that is not a component.
    #[error("step '{0}' has `entry` or `args` but no `component`")]
    EntryWithoutComponent(String),
    /// A component not in `[components]`.
    #[error("step '{step}' uses component '{component}', which [components] does not name")]
    UnknownComponent {
        /// The step.
        step: String,
        /// The name it used.
        component: String,
    },
    /// An input named twice.
    #[error("step '{step}' reads '{input}' twice")]
    RepeatedInput {
        /// The step.
        step: String,
        /// The name it repeated.
        input: String,
    },
    /// A planner that returned a graph that cannot be spliced.
    #[error("step '{step}': entry '{entry}' of component '{component}' returned a malformed graph: {why}")]
    BadFragment {
        /// The step.
        step: String,
        /// The entry.
        entry: String,
        /// The component.
        component: String,
        /// What is wrong.
        why: String,
    },
    /// An input that is no step.
    #[error("step '{step}' reads '{input}', which is not a step before it")]
    UnknownInput {
        /// The step.
        step: String,
        /// The name it used.
        input: String,
    },
    /// A step with nothing to read.
    #[error("step '{0}' has no input: only a source can come first")]
    NoInput(String),
    /// `inputs = []`.
    #[error("step '{0}' has empty `inputs`: name the steps it reads, or leave `inputs` out to read the step before")]
    EmptyInputs(String),
    /// A step whose records nobody reads.
    #[error("the records of step '{0}' go nowhere: end with a sink step, or name it in a later step's `inputs`")]
    UnreadOutput(String),
    /// An `elements` value that JSON cannot carry.
    #[error("step '{0}': `elements` holds a TOML date-time, nan or inf, which JSON cannot carry (quote it as a string)")]
    NotJson(String),
    /// A source with inputs or a partitioning.
    #[error("source step '{0}' reads no step: it takes no `inputs` or `partitioning`")]
    SourceReads(String),
    /// An input step whose records go nowhere further (a sink, or an entry ending in sinks).
    #[error("step '{step}' reads '{input}', which has no output (it ends in a sink)")]
    NoOutput {
        /// The step.
        step: String,
        /// Its input.
        input: String,
    },
    /// `socket` not `HOST:PORT`.
    #[error("step '{0}': a socket source is HOST:PORT")]
    BadSocket(String),
    /// The planner of an entry failed.
    #[error("step '{step}': planning entry '{entry}' of component '{component}' failed: {source}")]
    Plan {
        /// The step.
        step: String,
        /// The entry.
        entry: String,
        /// The component.
        component: String,
        /// Why.
        source: GuestError,
    },
    /// An entry that is a whole job, not an operator entry.
    #[error(
        "step '{step}': entry '{entry}' of component '{component}' is a job, not an operator entry \
         (an operator entry's graph starts with input())"
    )]
    NotOperatorEntry {
        /// The step.
        step: String,
        /// The entry.
        entry: String,
        /// The component.
        component: String,
    },
    /// An entry with more than one input.
    #[error("step '{step}': entry '{entry}' of component '{component}' has {n} inputs; an operator entry has one")]
    ManyInputs {
        /// The step.
        step: String,
        /// The entry.
        entry: String,
        /// The component.
        component: String,
        /// How many.
        n: usize,
    },
}

impl JobFile {
    /// Reads and parses a job file.
    pub fn read(path: &Path) -> Result<JobFile, JobFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| JobFileError::Read { path: path.into(), cause: e.to_string() })?;
        let mut file: JobFile = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let column = s.start - text[..s.start].rfind('\n').map_or(0, |n| n + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            JobFileError::Syntax { path: path.into(), cause: format!("{}{}", at.unwrap_or_default(), e.message().trim().replace('\n', " ")) }
        })?;
        if file.name.is_none() {
            file.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        // Only what steps use is read, loaded and uploaded.
        let used: HashSet<String> = file.steps.iter().filter_map(|s| s.component.clone()).collect();
        file.components.retain(|name, _| used.contains(name));
        // TOML has no null: a null here is a nan or inf that serde_json could not keep, and a
        // date-time arrives as toml's private object.
        for (step, name) in file.steps.iter().zip(file.step_names()?) {
            if let Some(SourceStep::Elements(values)) = &step.source {
                if !values.iter().all(toml_fits_json) {
                    return Err(JobFileError::NotJson(name));
                }
            }
        }
        Ok(file)
    }

    /// The step names: given ones, or the entry / `source` / `sink`, numbered from 2 when
    /// repeated (skipping names taken by other steps).
    fn step_names(&self) -> Result<Vec<String>, JobFileError> {
        let mut taken: HashSet<String> = HashSet::new();
        for step in self.steps.iter().filter_map(|s| s.name.clone()) {
            if !taken.insert(step.clone()) {
                return Err(JobFileError::DuplicateStep(step));
            }
        }
        let mut names: Vec<String> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let name = match &step.name {
                Some(n) => n.clone(),
                None => {
                    let base = match (&step.source, &step.entry, &step.sink) {
                        (Some(_), _, _) => "source",
                        (_, Some(e), _) => e.as_str(),
                        (_, _, Some(_)) => "sink",
                        _ => "step",
                    };
                    let name = std::iter::once(base.to_string())
                        .chain((2..).map(|n| format!("{base}-{n}")))
                        .find(|n| !taken.contains(n))
                        .expect("some number is free");
                    taken.insert(name.clone());
                    name
                }
            };
            names.push(name);
        }
        Ok(names)
    }
}

/// Whether a value parsed from TOML means in JSON what it meant in TOML.
fn toml_fits_json(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => false,
        Value::Array(items) => items.iter().all(toml_fits_json),
        Value::Object(fields) => !fields.contains_key("$__toml_private_datetime") && fields.values().all(toml_fits_json),
        _ => true,
    }
}

/// The vertices through which a composed step's records leave it.
type Outputs = Vec<u32>;

/// Composes a job file into one job. `components` maps each name of `[components]` to the
/// component's digest and loaded module; each operator entry is planned in its module.
pub fn compose(file: &JobFile, components: &BTreeMap<String, (String, Module)>) -> Result<JobSpec, JobFileError> {
    if file.steps.is_empty() {
        return Err(JobFileError::Empty);
    }
    let names = file.step_names()?;
    let mut graph = JobGraph {
        name: file.name.clone().unwrap_or_else(|| "job".into()),
        vertices: Vec::new(),
        edges: Vec::new(),
        parallelism: file.parallelism,
        max_parallelism: file.max_parallelism,
        // The file's own sources make JSON; each step's operators write their component's codec.
        codec: ValueCodec::Json,
    };
    let mut programs: Vec<Program> = Vec::new();
    let mut vertex_programs = BTreeMap::new();
    let mut outputs: HashMap<&str, Outputs> = HashMap::new();
    // Steps some later step reads; every other step must end in sinks.
    let mut read: HashSet<&str> = HashSet::new();
    let mut next_id = 0u32;
    let mut vertex = |name: &str, kind: VertexKind, parallelism: Option<u32>, uid: Option<String>| {
        next_id += 1;
        Vertex {
            id: next_id - 1,
            name: name.into(),
            uid,
            kind,
            parallelism,
            slot_sharing_group: None,
            keyed: false,
            per_key_updates: false,
        }
    };
    for (i, (step, name)) in file.steps.iter().zip(&names).enumerate() {
        let kinds = [step.source.is_some(), step.component.is_some(), step.sink.is_some()];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            return Err(JobFileError::StepKind(name.clone()));
        }
        if step.component.is_none() && (step.entry.is_some() || !step.args.is_empty()) {
            return Err(JobFileError::EntryWithoutComponent(name.clone()));
        }
        // The vertices feeding this step.
        let inputs: Vec<u32> = match (&step.source, &step.inputs) {
            (Some(_), Some(i)) if !i.is_empty() => return Err(JobFileError::SourceReads(name.clone())),
            (Some(_), _) if step.partitioning.is_some() => return Err(JobFileError::SourceReads(name.clone())),
            (Some(_), _) => Vec::new(),
            (None, Some(list)) if list.is_empty() => return Err(JobFileError::EmptyInputs(name.clone())),
            (None, Some(list)) => {
                let mut v = Vec::new();
                for (n, input) in list.iter().enumerate() {
                    if list[..n].contains(input) {
                        return Err(JobFileError::RepeatedInput { step: name.clone(), input: input.clone() });
                    }
                    let out = outputs
                        .get(input.as_str())
                        .ok_or_else(|| JobFileError::UnknownInput { step: name.clone(), input: input.clone() })?;
                    if out.is_empty() {
                        return Err(JobFileError::NoOutput { step: name.clone(), input: input.clone() });
                    }
                    read.insert(input.as_str());
                    v.extend(out);
                }
                v
            }
            (None, None) => {
                let previous = i.checked_sub(1).map(|p| names[p].as_str()).ok_or_else(|| JobFileError::NoInput(name.clone()))?;
                let out = &outputs[previous];
                if out.is_empty() {
                    return Err(JobFileError::NoOutput { step: name.clone(), input: previous.into() });
                }
                read.insert(previous);
                out.clone()
            }
        };
        let chosen = match step.partitioning {
            None | Some(StepPartitioning::Forward) => Partitioning::Forward,
            Some(StepPartitioning::Rebalance) => Partitioning::Rebalance,
            Some(StepPartitioning::Broadcast) => Partitioning::Broadcast,
        };
        let connect = |graph: &mut JobGraph, target: u32, partitioning: Partitioning, input: u8| {
            // The step's choice applies where the entry leaves it open.
            let partitioning = if partitioning == Partitioning::Forward { chosen } else { partitioning };
            for &source in &inputs {
                graph.edges.push(Edge { source, target, partitioning, side_output: false, input });
            }
        };
        let uid = Some(name.clone());
        let out: Outputs = if let Some(source) = &step.source {
            let kind = source.vertex_kind().ok_or_else(|| JobFileError::BadSocket(name.clone()))?;
            let v = vertex(name, kind, step.parallelism, uid);
            let mut id = v.id;
            graph.vertices.push(v);
            if let Some(delay) = source.watermark_delay_ms() {
                // Chained to the source (forward, same parallelism), as the SDKs place it.
                let spec = TimestampSpec { field: None, out_of_orderness_ms: delay, idle_timeout_ms: None };
                let w = vertex("Timestamps", VertexKind::Timestamps(spec), step.parallelism, Some(format!("{name}/watermarks")));
                graph.edges.push(Edge { source: id, target: w.id, partitioning: Partitioning::Forward, side_output: false, input: 0 });
                id = w.id;
                graph.vertices.push(w);
            }
            vec![id]
        } else if let Some(sink) = &step.sink {
            let v = vertex(name, sink.vertex_kind(), step.parallelism, uid);
            connect(&mut graph, v.id, Partitioning::Forward, 0);
            graph.vertices.push(v);
            Vec::new()
        } else {
            let component = step.component.as_deref().unwrap_or_default();
            let entry = step.entry.as_deref().ok_or_else(|| JobFileError::NoEntry(name.clone()))?;
            let (digest, module) = components
                .get(component)
                .ok_or_else(|| JobFileError::UnknownComponent { step: name.clone(), component: component.into() })?;
            let fragment = module.plan(entry, &step.args).map_err(|source| JobFileError::Plan {
                step: name.clone(),
                entry: entry.into(),
                component: component.into(),
                source,
            })?;
            let input_ids: Vec<u32> =
                fragment.vertices.iter().filter(|v| matches!(v.kind, VertexKind::Input)).map(|v| v.id).collect();
            let what = || (name.clone(), entry.to_string(), component.to_string());
            let input = match input_ids[..] {
                [one] => one,
                [] => {
                    let (step, entry, component) = what();
                    return Err(JobFileError::NotOperatorEntry { step, entry, component });
                }
                _ => {
                    let (step, entry, component) = what();
                    return Err(JobFileError::ManyInputs { step, entry, component, n: input_ids.len() });
                }
            };
            check_fragment(&fragment, input).map_err(|why| {
                let (step, entry, component) = what();
                JobFileError::BadFragment { step, entry, component, why }
            })?;
            // One program per step, even for a step repeating another's entry: each step's
            // functions run in instances of their own.
            programs.push(Program::new(digest.clone(), entry, step.args.clone(), fragment.codec));
            let program = programs.len() - 1;
            let mut ids = HashMap::new();
            let parallelism = step.parallelism.or(fragment.parallelism);
            // Without the file's own, the job takes the most key groups any entry asks for.
            if file.max_parallelism.is_none() {
                graph.max_parallelism = graph.max_parallelism.max(fragment.max_parallelism);
            }
            for v in fragment.vertices.iter().filter(|v| v.id != input) {
                // Uids are prefixed by the step, so two steps running one entry keep apart.
                let uid = format!("{name}/{}", crate::plan::vertex_uid(v));
                let new = vertex(&v.name, v.kind.clone(), v.parallelism.or(parallelism), Some(uid));
                ids.insert(v.id, new.id);
                if matches!(v.kind, VertexKind::Wasm(_)) {
                    vertex_programs.insert(new.id, program);
                }
                graph.vertices.push(Vertex { slot_sharing_group: v.slot_sharing_group.clone(), keyed: v.keyed, per_key_updates: v.per_key_updates, ..new });
            }
            for e in &fragment.edges {
                if e.source == input {
                    connect(&mut graph, ids[&e.target], e.partitioning, e.input);
                } else if let (Some(&source), Some(&target)) = (ids.get(&e.source), ids.get(&e.target)) {
                    graph.edges.push(Edge { source, target, partitioning: e.partitioning, side_output: e.side_output, input: e.input });
                }
            }
            // The step's output: its vertices whose main output feeds nothing further, sinks
            // aside (a window whose late records go on still outputs its results).
            fragment
                .vertices
                .iter()
                .filter(|v| v.id != input && !crate::plan::is_sink(&v.kind))
                .filter(|v| !fragment.edges.iter().any(|e| e.source == v.id && !e.side_output))
                .map(|v| ids[&v.id])
                .collect()
        };
        outputs.insert(name.as_str(), out);
    }
    if let Some(unread) = names.iter().find(|n| !outputs[n.as_str()].is_empty() && !read.contains(n.as_str())) {
        return Err(JobFileError::UnreadOutput(unread.clone()));
    }
    Ok(JobSpec { graph, programs, vertex_programs })
}

/// What splicing needs of an operator entry's graph: unique ids, edges between them, and
/// nothing flowing into its input. The rest is checked when the composed job is planned.
fn check_fragment(fragment: &JobGraph, input: u32) -> Result<(), String> {
    let mut ids = HashSet::new();
    for v in &fragment.vertices {
        if !ids.insert(v.id) {
            return Err(format!("two vertices have id {}", v.id));
        }
    }
    for e in &fragment.edges {
        if let Some(id) = [e.source, e.target].into_iter().find(|id| !ids.contains(id)) {
            return Err(format!("an edge refers to vertex {id}, which does not exist"));
        }
        if e.target == input {
            return Err("an edge leads into its input".into());
        }
    }
    Ok(())
}
