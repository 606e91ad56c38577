//! The operators of a chain as a task runs them: fused Wasm calls, built-in
//! keyed aggregates and sinks, each taking a packed batch and returning one.

use std::collections::BTreeMap;

use super::timestamps::TimestampAssigner;
use super::window::WindowOp;
use super::TaskError;
use crate::checkpoint::snapshot::TaskState;
use crate::checkpoint::{OperatorState, Restored};
use crate::connectors;
use crate::state::{BackendKind, Domain, KeyedState};
use crate::framing::{self, Record};
use crate::json::{self, Number};
use crate::keys::{self, KeyMap};
use crate::msgpack;
use crate::plan::{vertex_uid, ExecutionPlan};
use crate::runtime::{Aggregate, AggregateKind, Charge, FieldRef, GuestError, Instance, JobBudget, KeyScope, Module, SubtaskInfo, ValueCodec, VertexKind, WindowFunction};
use crate::state::ENTRY_OVERHEAD;

/// One operator of a chain.
pub trait Operator: Send {
    /// Processes a batch, returning what it emits.
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError>;
    /// Event time advanced; returns what it emits.
    fn watermark(&mut self, _watermark: i64) -> Result<Vec<u8>, TaskError> {
        Ok(Vec::new())
    }
    /// The input ended; returns the last records.
    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        Ok(Vec::new())
    }
    /// Records written out of the job, for sinks.
    fn records_written(&self) -> u64 {
        0
    }
    /// Bytes written out of the job, for sinks.
    fn bytes_written(&self) -> u64 {
        0
    }
    /// Counters of user code.
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// Records to send before a checkpoint barrier (a combiner's partials,
    /// which it then forgets, so that it keeps no state across barriers).
    fn prepare_snapshot(&mut self) -> Result<Vec<u8>, TaskError> {
        Ok(Vec::new())
    }
    /// Its state for checkpoint `checkpoint`, taken between two batches.
    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        Ok(OperatorState::default())
    }
    /// Takes back the state of a snapshot (only keys of its key groups), before any input.
    fn restore(&mut self, _state: OperatorState) -> Result<(), TaskError> {
        Ok(())
    }
    /// Checkpoint `checkpoint` completed on every task (two-phase sinks commit here).
    fn checkpoint_complete(&mut self, _checkpoint: u64) -> Result<(), TaskError> {
        Ok(())
    }
    /// Event-time progress this operator generated since last asked (timestamp
    /// assigners do). The chain asks after every `process` and
    /// `on_processing_time`, passes a watermark to the operators after this
    /// one, and the task sends it downstream after the records.
    fn take_progress(&mut self) -> Option<Progress> {
        None
    }
    /// The next batch holds records of this split of the source only (see
    /// [`crate::task::SourceContext::emit_split`]); told to the chain's head.
    fn input_split(&mut self, _split: u32) {}
    /// The splits the source still reads; told to the chain's head.
    fn active_splits(&mut self, _splits: &[u32]) {}
    /// When `on_processing_time` is next due, in wall-clock epoch milliseconds.
    fn next_timer(&self) -> Option<i64> {
        None
    }
    /// The wall clock reached `now_ms`, at or past `next_timer`; returns what it emits.
    fn on_processing_time(&mut self, _now_ms: i64) -> Result<Vec<u8>, TaskError> {
        Ok(Vec::new())
    }
}

/// Bytes of a batch turned into JSON at a time, before an operator that reads only JSON.
const JSON_PART: usize = 1 << 20;

/// Has `op` process `batch` with its MessagePack values turned into JSON, a part of at most
/// [`JSON_PART`] at a time: a value's JSON can be several times its MessagePack (a control
/// character takes six bytes of escape), so the host's transient copy stays within a few
/// MiB however large a batch a component returns.
fn process_as_json(op: &mut dyn Operator, operator: &str, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
    in_parts(batch, JSON_PART, |part| {
        let json = msgpack::batch_to_json(part)
            .map_err(|e| TaskError::Record { operator: operator.to_string(), message: e.to_string() })?;
        op.process(json)
    })
}

/// What `f` returns for `batch`, given whole, or past `max` bytes in parts cut at record
/// boundaries (a record longer than `max` is a part of its own), their outputs in order.
fn in_parts(batch: Vec<u8>, max: usize, mut f: impl FnMut(Vec<u8>) -> Result<Vec<u8>, TaskError>) -> Result<Vec<u8>, TaskError> {
    if batch.len() <= max {
        return f(batch);
    }
    let mut out = Vec::new();
    for part in framing::chunks(&batch, max) {
        out.extend(f(part.to_vec())?);
    }
    Ok(out)
}

/// Event-time progress generated inside a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Event time of the operator's output advanced to this watermark.
    Watermark(i64),
    /// The operator's output is idle (no records for its idle timeout).
    Idle,
}

/// The operators of one subtask of a chain, head first.
pub struct Chain {
    ops: Vec<Box<dyn Operator>>,
    /// Each operator's uid, naming its state in snapshots.
    uids: Vec<String>,
    /// For each operator that reads JSON only (the host's own aggregates, windows and
    /// sinks, and the user code of a `json` component), its name, for errors: MessagePack
    /// values are turned into JSON before it.
    json_input: Vec<Option<String>>,
    /// Progress generated inside the chain that the task has not sent yet.
    progress: Option<Progress>,
}

impl Chain {
    fn run_from(&mut self, start: usize, mut batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        for i in start..self.ops.len() {
            if batch.is_empty() {
                break;
            }
            batch = match &self.json_input[i] {
                Some(operator) => process_as_json(self.ops[i].as_mut(), operator, batch)?,
                None => self.ops[i].process(batch)?,
            };
            if let Some(progress) = self.ops[i].take_progress() {
                let mut out = self.run_from(i + 1, batch)?;
                out.extend(self.progress_from(i + 1, progress)?);
                return Ok(out);
            }
        }
        Ok(batch)
    }

    /// Progress generated by operator `start - 1`: the operators after it see
    /// the watermark, and the task sends it on.
    fn progress_from(&mut self, start: usize, progress: Progress) -> Result<Vec<u8>, TaskError> {
        self.progress = Some(progress);
        match progress {
            Progress::Watermark(wm) => self.each_in_order(start, |op| op.watermark(wm)),
            Progress::Idle => Ok(Vec::new()),
        }
    }

    /// Runs a batch through the chain.
    pub fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        self.run_from(0, batch)
    }

    /// Which split of the source the next batch is from (the first operator,
    /// a timestamp assigner if any, keeps a watermark per split).
    pub fn input_split(&mut self, split: u32) {
        if let Some(op) = self.ops.first_mut() {
            op.input_split(split);
        }
    }

    /// The splits the source still reads.
    pub fn active_splits(&mut self, splits: &[u32]) {
        if let Some(op) = self.ops.first_mut() {
            op.active_splits(splits);
        }
    }

    /// Tells every operator, in order, that event time advanced.
    pub fn watermark(&mut self, watermark: i64) -> Result<Vec<u8>, TaskError> {
        self.each_in_order(0, |op| op.watermark(watermark))
    }

    /// Ends every operator, in order, so each one's last records reach the next.
    pub fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        self.each_in_order(0, |op| op.finish())
    }

    /// When the earliest processing-time timer of the chain is due (epoch ms).
    pub fn next_timer(&self) -> Option<i64> {
        self.ops.iter().filter_map(|op| op.next_timer()).min()
    }

    /// Runs the processing-time hooks due at `now_ms`, in chain order.
    pub fn on_processing_time(&mut self, now_ms: i64) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::new();
        for i in 0..self.ops.len() {
            if self.ops[i].next_timer().is_some_and(|t| t <= now_ms) {
                let emitted = self.ops[i].on_processing_time(now_ms)?;
                out.extend(self.run_from(i + 1, emitted)?);
                if let Some(progress) = self.ops[i].take_progress() {
                    out.extend(self.progress_from(i + 1, progress)?);
                }
            }
        }
        Ok(out)
    }

    /// Progress the chain generated since the last call, for the task to send downstream.
    pub fn take_progress(&mut self) -> Option<Progress> {
        self.progress.take()
    }

    fn each_in_order(
        &mut self,
        start: usize,
        mut f: impl FnMut(&mut dyn Operator) -> Result<Vec<u8>, TaskError>,
    ) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::new();
        for i in start..self.ops.len() {
            let emitted = f(self.ops[i].as_mut())?;
            out.extend(self.run_from(i + 1, emitted)?);
        }
        Ok(out)
    }

    /// The operators' states for checkpoint `checkpoint`, and the records to
    /// send before its barrier.
    pub fn snapshot(&mut self, checkpoint: u64) -> Result<(TaskState, Vec<u8>), TaskError> {
        let emitted = self.each_in_order(0, |op| op.prepare_snapshot())?;
        let mut state = Vec::new();
        for (op, uid) in self.ops.iter_mut().zip(&self.uids) {
            let s = op.snapshot(checkpoint)?;
            if !s.is_empty() {
                state.push((uid.clone(), s));
            }
        }
        Ok((state, emitted))
    }

    /// Checkpoint `checkpoint` completed everywhere.
    pub fn checkpoint_complete(&mut self, checkpoint: u64) -> Result<(), TaskError> {
        self.ops.iter_mut().try_for_each(|op| op.checkpoint_complete(checkpoint))
    }

    /// Records the chain's sinks wrote.
    pub fn records_written(&self) -> u64 {
        self.ops.iter().map(|o| o.records_written()).sum()
    }

    /// Bytes the chain's sinks wrote.
    pub fn bytes_written(&self) -> u64 {
        self.ops.iter().map(|o| o.bytes_written()).sum()
    }

    /// User counters of the chain's Wasm operators.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for op in &self.ops {
            for (k, v) in op.counters() {
                *all.entry(k).or_insert(0) += v;
            }
        }
        all
    }
}

/// What building a chain's operators needs.
pub struct ChainContext<'a> {
    /// The job.
    pub plan: &'a ExecutionPlan,
    /// The component of each of the plan's programs (`plan.programs[i]` runs in `modules[i]`).
    pub modules: &'a [Module],
    /// The checkpoint or savepoint the job resumes from.
    pub restore: Option<&'a Restored>,
    /// Names this run's output files apart from other runs' (two-phase sinks).
    pub run_id: &'a str,
    /// Whether the job takes checkpoints (sinks then commit on them).
    pub checkpointing: bool,
    /// Where keyed state of Wasm operators lives.
    pub state_backend: &'a BackendKind,
    /// What its sinks may reach and use: files, sockets, secrets, a name for their clients.
    pub reach: connectors::Reach<'a>,
    /// The job's limits and quotas in this process, shared by all its instances here.
    pub budget: &'a std::sync::Arc<JobBudget>,
}


/// The uid of the state a bounded keyed reduce keeps after its Wasm call.
fn last_per_key_uid(vertex: &crate::runtime::Vertex) -> String {
    format!("{}/last", vertex_uid(vertex))
}

/// Every uid under which the plan's operators may keep state (what a savepoint can restore).
pub fn state_uids(plan: &ExecutionPlan) -> std::collections::BTreeSet<String> {
    let mut uids: std::collections::BTreeSet<String> = plan.vertices.iter().map(vertex_uid).collect();
    if plan.bounded {
        uids.extend(plan.vertices.iter().filter(|v| v.per_key_updates).map(last_per_key_uid));
    }
    uids
}

/// A chain being built: adds operators, restoring each one's state first.
struct ChainBuilder<'a> {
    chain: Chain,
    restore: Option<&'a Restored>,
    subtask: SubtaskInfo,
}

impl ChainBuilder<'_> {
    /// Adds `op`; `json_input` names it if it reads JSON only.
    fn add(&mut self, uid: String, mut op: Box<dyn Operator>, json_input: Option<String>) -> Result<(), TaskError> {
        if let Some(r) = self.restore {
            op.restore(r.state_for(&uid, self.subtask.index, self.subtask.parallelism))?;
        }
        self.chain.ops.push(op);
        self.chain.uids.push(uid);
        self.chain.json_input.push(json_input);
        Ok(())
    }

    /// Adds the Wasm vertices collected in `fused` as one instance.
    fn add_fused(&mut self, ctx: &ChainContext, fused: &mut Vec<usize>) -> Result<(), TaskError> {
        if fused.is_empty() {
            return Ok(());
        }
        // The instance's keyed state belongs to its keyed operator.
        let vertices = &ctx.plan.vertices;
        let owner = fused.iter().copied().find(|&v| vertices[v].keyed).unwrap_or(fused[0]);
        let op = WasmOperator::open(ctx, fused, self.subtask)?;
        let program = ctx.plan.program_of[fused[0]].expect("the plan gives every Wasm vertex a program");
        let json_input = (ctx.plan.programs[program].codec.of_values() == ValueCodec::Json).then(|| op.name.clone());
        fused.clear();
        self.add(vertex_uid(&vertices[owner]), Box::new(op), json_input)
    }
}

/// Builds subtask `subtask` of chain `chain`, fusing consecutive Wasm
/// operators into one instance (one guest call per batch for all of them).
pub fn build_chain(ctx: &ChainContext, chain: usize, subtask: u32) -> Result<Chain, TaskError> {
    let plan = ctx.plan;
    let c = &plan.chains[chain];
    let info = SubtaskInfo { index: subtask, parallelism: c.parallelism, max_parallelism: plan.max_parallelism };
    let mut b = ChainBuilder { chain: Chain { ops: Vec::new(), uids: Vec::new(), json_input: Vec::new(), progress: None }, restore: ctx.restore, subtask: info };
    let mut fused: Vec<usize> = Vec::new();
    for &v in &c.vertices {
        let vertex = &plan.vertices[v];
        match &vertex.kind {
            VertexKind::Wasm(_) => {
                // One instance runs one program: a job file may chain operators of several.
                if fused.last().is_some_and(|&f| plan.program_of[f] != plan.program_of[v]) {
                    b.add_fused(ctx, &mut fused)?;
                }
                fused.push(v);
                if vertex.per_key_updates && plan.bounded {
                    b.add_fused(ctx, &mut fused)?;
                    b.add(last_per_key_uid(vertex), Box::new(LastPerKey::new(ctx.budget)), None)?;
                }
            }
            kind => {
                b.add_fused(ctx, &mut fused)?;
                let op: Box<dyn Operator> = match kind {
                    VertexKind::Aggregate(a) => {
                        let input = if c.combined_input { Input::Partials } else { Input::Records };
                        Box::new(AggregateOp::new(vertex.name.clone(), a.clone(), !plan.bounded, input, ctx.budget))
                    }
                    VertexKind::PrintSink => Box::new(connectors::PrintSink::new(info)),
                    VertexKind::DiscardSink => Box::new(connectors::DiscardSink::default()),
                    VertexKind::FileSink(dir) => {
                        let run = ctx.checkpointing.then_some(ctx.run_id);
                        Box::new(connectors::FileSink::create(dir, info, run, ctx.reach.confinement)?)
                    }
                    VertexKind::KafkaSink(k) => {
                        let secret = ctx.reach.kafka_secret(k.secret.as_deref(), "sink")?;
                        let client_id = ctx.reach.client_id(vertex.id, subtask);
                        Box::new(connectors::kafka::KafkaSinkOp::create(vertex.name.clone(), k, &client_id, ctx.reach.confinement, secret)?)
                    }
                    VertexKind::Timestamps(spec) => Box::new(TimestampAssigner::new(vertex.name.clone(), spec.clone())),
                    VertexKind::Window(spec) => {
                        // Late records leave by a side-output edge, which always ends the chain.
                        let last = c.vertices.last() == Some(&v);
                        let late = last && plan.edges.iter().any(|e| e.source == chain && e.side_output);
                        Box::new(WindowOp::new(vertex.name.clone(), spec.clone(), late, Some(ctx.budget)))
                    }
                    // Sources head their chain and are run by the task, not as operators.
                    _ => continue,
                };
                // The host's operators read values as JSON, except where they do not read them.
                let reads_values = match kind {
                    VertexKind::DiscardSink => false,
                    VertexKind::Timestamps(spec) => spec.field.is_some(),
                    // A count reads no value: its partials are the combiner's own JSON.
                    VertexKind::Aggregate(a) => a.kind != AggregateKind::Count,
                    VertexKind::Window(w) => !matches!(&w.function, WindowFunction::Aggregate(a) if a.kind == AggregateKind::Count),
                    _ => true,
                };
                let json_input = reads_values.then(|| vertex.name.clone());
                b.add(vertex_uid(vertex), op, json_input)?;
            }
        }
    }
    b.add_fused(ctx, &mut fused)?;
    if let Some(a) = &c.combine {
        let name = format!("partial {}", plan.chain_name(chain));
        let uid = format!("{}/combine", vertex_uid(&plan.vertices[*c.vertices.last().unwrap()]));
        let mut combiner = AggregateOp::new(name.clone(), a.clone(), false, Input::Records, ctx.budget);
        combiner.combiner = true;
        let json_input = (a.kind != AggregateKind::Count).then_some(name);
        b.add(uid, Box::new(combiner), json_input)?;
    }
    Ok(b.chain)
}

/// Consecutive Wasm operators of a chain, in one sandboxed instance.
struct WasmOperator {
    name: String,
    subtask: SubtaskInfo,
    instance: Instance,
}

impl WasmOperator {
    fn open(ctx: &ChainContext, vertices: &[usize], subtask: SubtaskInfo) -> Result<Self, TaskError> {
        let plan = ctx.plan;
        let names: Vec<&str> = vertices.iter().map(|&v| plan.vertices[v].name.as_str()).collect();
        let name = names.join(" -> ");
        let indices: Vec<u32> = vertices
            .iter()
            .map(|&v| match plan.vertices[v].kind {
                VertexKind::Wasm(i) => i,
                _ => unreachable!("only wasm vertices are fused"),
            })
            .collect();
        let p = plan.program_of[vertices[0]].expect("the plan gives every Wasm vertex a program");
        let (program, module) = (&plan.programs[p], &ctx.modules[p]);
        let keyed = vertices.iter().any(|&v| plan.vertices[v].keyed);
        let scope = keyed.then(|| KeyScope {
            key_groups: keys::key_group_range(subtask.index, subtask.parallelism, subtask.max_parallelism),
            max_parallelism: subtask.max_parallelism,
        });
        let keyed_state = match keyed {
            true => Some(KeyedState::open(ctx.state_backend, &format!("{}-{}-{}", ctx.run_id, vertices[0], subtask.index)).map_err(|e| {
                TaskError::Record { operator: name.clone(), message: e.to_string() }
            })?),
            false => None,
        };
        let mut op = WasmOperator {
            instance: module.instantiate(&name, scope, ctx.budget).map_err(|e| fail(&name, subtask, e))?,
            name,
            subtask,
        };
        if let Some(state) = keyed_state {
            op.instance.host().set_state(state);
        }
        let task = plan.chains.iter().position(|c| c.vertices.contains(&vertices[0])).unwrap_or_default();
        op.instance.host().set_origin(task, subtask.index);
        op.instance.set_codec(program.codec);
        op.instance.open(&program.entry, &program.args, &indices, subtask).map_err(|e| fail(&op.name, subtask, e))?;
        Ok(op)
    }

    fn check(&self, result: Result<Vec<u8>, GuestError>) -> Result<Vec<u8>, TaskError> {
        let batch = result.map_err(|e| fail(&self.name, self.subtask, e))?;
        if let Some(Err(source)) = framing::records(&batch).find(Result::is_err) {
            return Err(TaskError::Framing { operator: self.name.clone(), source });
        }
        Ok(batch)
    }
}

fn fail(name: &str, subtask: SubtaskInfo, source: GuestError) -> TaskError {
    // A guest interrupted by its job's cancel is not a cause of its own.
    if matches!(source, GuestError::Cancelled) {
        return TaskError::Cancelled;
    }
    TaskError::Operator { operator: name.into(), subtask: subtask.index + 1, parallelism: subtask.parallelism, source }
}

impl WasmOperator {
    /// Calls `on-timer` for every timer of `domain` due at `now`, in time order.
    fn fire_timers(&mut self, domain: Domain, now: i64) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::new();
        while let Some((ts, key)) = self.instance.host().timers.pop_due(domain, now) {
            let emitted = self.instance.on_timer(key, ts, domain);
            out.extend(self.check(emitted)?);
        }
        Ok(out)
    }
}

/// Most bytes one `process` call hands a guest. Batches between tasks are far smaller, but a
/// host operator chained before a guest may emit any amount at once (a window firing for
/// every key at the end of the input): more than 128 MiB in or out of one call traps, and
/// the guest would hold it all in its memory.
const MAX_CALL_BATCH: usize = 4 << 20;

impl Operator for WasmOperator {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        in_parts(batch, MAX_CALL_BATCH, |part| {
            let emitted = self.instance.process(&part);
            self.check(emitted)
        })
    }

    fn next_timer(&self) -> Option<i64> {
        self.instance.host_ref().timers.next_processing()
    }

    fn on_processing_time(&mut self, now_ms: i64) -> Result<Vec<u8>, TaskError> {
        self.fire_timers(Domain::Processing, now_ms)
    }

    fn watermark(&mut self, watermark: i64) -> Result<Vec<u8>, TaskError> {
        self.instance.host().watermark = watermark;
        let mut out = self.fire_timers(Domain::Event, watermark)?;
        let emitted = self.instance.on_watermark(watermark);
        out.extend(self.check(emitted)?);
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        let out = self.instance.close();
        self.check(out)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.instance.counters().clone()
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        let error = |e: crate::state::StateError| TaskError::Record { operator: self.name.clone(), message: e.to_string() };
        let host = self.instance.host();
        let mut keyed = host.state_mut().snapshot().map_err(error)?;
        keyed.extend(host.timers.snapshot());
        let broadcast = host.broadcast_mut().snapshot().map_err(error)?;
        Ok(OperatorState { keyed, broadcast, ..OperatorState::default() })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        let error = |message: String| TaskError::Record { operator: self.name.clone(), message };
        let host = self.instance.host();
        let mut entries = Vec::with_capacity(state.keyed.len());
        for (key, value) in state.keyed {
            if !host.timers.restore(&key, &value).map_err(|q| error(q.to_string()))? {
                entries.push((key, value));
            }
        }
        host.state_mut().restore(entries).map_err(error)?;
        host.broadcast_mut().restore(state.broadcast).map_err(error)
    }
}

/// What a natively kept keyed entry is charged: its key, its bytes and the maps' bookkeeping.
fn native_entry_bytes(key: &[u8], bytes: usize) -> u64 {
    (key.len() + bytes) as u64 + ENTRY_OVERHEAD
}

/// A quota error of built-in operator `operator`.
fn quota_error(operator: &str, q: crate::runtime::QuotaError) -> TaskError {
    record_error(operator, q.to_string())
}

/// Keeps the last record of each key and emits them when the input ends: a
/// keyed reduce in a bounded job shows only final results. The records come
/// from the guest, so they count against the job's keyed state quota.
struct LastPerKey {
    index: KeyMap<Vec<u8>, usize>,
    records: Vec<Vec<u8>>,
    charge: Charge,
}

impl LastPerKey {
    fn new(budget: &std::sync::Arc<JobBudget>) -> Self {
        LastPerKey { index: KeyMap::default(), records: Vec::new(), charge: Charge::new(Some(budget)) }
    }

    fn keep(&mut self, key: &[u8], record: &[u8]) -> Result<(), TaskError> {
        let slot = self.index.get(key).copied();
        let old = slot.map_or(0, |i| native_entry_bytes(key, self.records[i].len()));
        self.charge.resize(old, native_entry_bytes(key, record.len())).map_err(|q| quota_error("reduce", q))?;
        match slot {
            Some(i) => self.records[i] = record.to_vec(),
            None => {
                self.index.insert(key.to_vec(), self.records.len());
                self.records.push(record.to_vec());
            }
        }
        Ok(())
    }
}

impl Operator for LastPerKey {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: "reduce".into(), source })?;
            self.keep(record.key.unwrap_or_default(), record.raw)?;
        }
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        self.index.clear();
        self.charge.clear();
        Ok(std::mem::take(&mut self.records).concat())
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        let keyed = self.index.iter().map(|(k, &i)| (k.clone(), self.records[i].clone())).collect();
        Ok(OperatorState { keyed, ..OperatorState::default() })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        for (key, record) in state.keyed {
            self.keep(&key, &record)?;
        }
        Ok(())
    }
}

/// The running aggregate of one key.
struct KeyAggregate {
    /// The first record's value, whose field the aggregate replaces.
    first: Vec<u8>,
    /// Latest timestamp seen.
    timestamp: Option<i64>,
    /// Sum, minimum, maximum or count so far.
    acc: Number,
}

/// What an aggregate's input records are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    /// The job's records.
    Records,
    /// Partial aggregates of upstream combiners: a count arrives as `[key, n]`.
    Partials,
}

/// A built-in keyed aggregate (sum, min, max, count), run natively.
struct AggregateOp {
    name: String,
    spec: Aggregate,
    /// Emit the updated result for every record (unbounded jobs) rather than
    /// only each key's final one.
    emit_updates: bool,
    input: Input,
    /// Pre-aggregates upstream of the exchange: its partials leave before
    /// each barrier, so it holds no state of its own in checkpoints.
    combiner: bool,
    /// Where each key is in `keys`.
    index: keys::KeySlots,
    keys: Vec<(Vec<u8>, KeyAggregate)>,
    /// Each key's first value comes from the guest: it counts against the job's keyed state quota.
    charge: Charge,
}

impl AggregateOp {
    fn new(name: String, spec: Aggregate, emit_updates: bool, input: Input, budget: &std::sync::Arc<JobBudget>) -> Self {
        let (index, charge) = (keys::KeySlots::default(), Charge::new(Some(budget)));
        AggregateOp { name, spec, emit_updates, input, combiner: false, index, keys: Vec::new(), charge }
    }

    /// Keeps a new key's aggregate, unless the quota forbids it.
    fn add_key(&mut self, key: Vec<u8>, agg: KeyAggregate) -> Result<usize, TaskError> {
        let bytes = native_entry_bytes(&key, agg.first.len());
        self.charge.resize(0, bytes).map_err(|q| quota_error(&self.name, q))?;
        let keys = &self.keys;
        self.index.insert(&key, keys.len(), |slot| &keys[slot].0);
        self.keys.push((key, agg));
        Ok(self.keys.len() - 1)
    }

    fn error(&self, message: String) -> TaskError {
        record_error(&self.name, message)
    }

    fn update(&mut self, record: Record) -> Result<usize, TaskError> {
        let key = record.key.ok_or_else(|| self.error("record has no key".into()))?;
        let n = match (self.spec.kind, self.input) {
            (AggregateKind::Count, Input::Records) => Number::Int(1),
            (AggregateKind::Count, Input::Partials) => json::array_element(record.value, 1)
                .and_then(Number::parse)
                .ok_or_else(|| self.error(format!("partial count {} is not [key, n]", String::from_utf8_lossy(record.value))))?,
            _ => read_number(&self.name, &self.spec.field, record.value)?,
        };
        let slot = match self.index.find(key, |slot| &self.keys[slot].0) {
            Some(i) => i,
            None => {
                let first = KeyAggregate { first: record.value.to_vec(), timestamp: record.timestamp, acc: n };
                return self.add_key(key.to_vec(), first);
            }
        };
        let agg = &mut self.keys[slot].1;
        agg.timestamp = record.timestamp.or(agg.timestamp);
        agg.acc = fold(self.spec.kind, agg.acc, n);
        Ok(slot)
    }

    fn emit(&self, slot: usize, out: &mut Vec<u8>) -> Result<(), TaskError> {
        let (key, agg) = &self.keys[slot];
        framing::push_with(out, Some(key), agg.timestamp, |out| write_aggregate_value(out, &self.spec, key, &agg.first, agg.acc));
        Ok(())
    }
}

/// The error of built-in operator `operator` about a record.
pub(super) fn record_error(operator: &str, message: String) -> TaskError {
    TaskError::Record { operator: operator.into(), message }
}

/// The number at `field` of `value`, read by built-in operator `operator`.
pub(super) fn read_number(operator: &str, field: &FieldRef, value: &[u8]) -> Result<Number, TaskError> {
    let error = |message| record_error(operator, message);
    let text: std::borrow::Cow<'_, [u8]> = match field {
        FieldRef::Whole => value.into(),
        FieldRef::Index(i) => json::array_element(value, *i)
            .ok_or_else(|| error(format!("value {} has no element {i}", String::from_utf8_lossy(value))))?
            .into(),
        FieldRef::Name(n) => {
            let v: serde_json::Value =
                serde_json::from_slice(value).map_err(|e| error(format!("value is not JSON: {e}")))?;
            let f = v.get(n).ok_or_else(|| error(format!("value {v} has no field '{n}'")))?;
            f.to_string().into_bytes().into()
        }
    };
    Number::parse(&text)
        .ok_or_else(|| error(format!("field {field:?} of {} is not a number", String::from_utf8_lossy(value))))
}

/// Folds `n` into an aggregate's `acc`; also merges two accumulators (counts add up).
pub(super) fn fold(kind: AggregateKind, acc: Number, n: Number) -> Number {
    match kind {
        AggregateKind::Sum | AggregateKind::Count => acc.plus(n),
        AggregateKind::Min if n.as_f64() < acc.as_f64() => n,
        AggregateKind::Max if n.as_f64() > acc.as_f64() => n,
        _ => acc,
    }
}

/// What a built-in aggregate emits: a count as `[key, n]`, the others as the
/// first value with the field replaced by the aggregate (Flink's semantics).
pub(super) fn write_aggregate_value(out: &mut Vec<u8>, spec: &Aggregate, key: &[u8], first: &[u8], acc: Number) {
    match (&spec.kind, &spec.field) {
        (AggregateKind::Count, _) => {
            out.push(b'[');
            out.extend_from_slice(key);
            out.push(b',');
            acc.write_json(out);
            out.push(b']');
        }
        (_, FieldRef::Whole) => acc.write_json(out),
        (_, FieldRef::Index(i)) => {
            // Splice the number into the first value's bytes.
            let old = json::array_element(first, *i).expect("field checked on update");
            let start = old.as_ptr() as usize - first.as_ptr() as usize;
            out.extend_from_slice(&first[..start]);
            acc.write_json(out);
            out.extend_from_slice(&first[start + old.len()..]);
        }
        (_, FieldRef::Name(n)) => {
            let mut v: serde_json::Value = serde_json::from_slice(first).expect("checked on update");
            v[n.as_str()] = acc.to_json();
            serde_json::to_writer(out, &v).expect("writing to a Vec cannot fail");
        }
    }
}

impl Operator for AggregateOp {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::new();
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: self.name.clone(), source })?;
            let slot = self.update(record)?;
            if self.emit_updates {
                self.emit(slot, &mut out)?;
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::new();
        if !self.emit_updates {
            for slot in 0..self.keys.len() {
                self.emit(slot, &mut out)?;
            }
        }
        Ok(out)
    }

    fn prepare_snapshot(&mut self) -> Result<Vec<u8>, TaskError> {
        if !self.combiner {
            return Ok(Vec::new());
        }
        let out = self.finish()?;
        self.index.clear();
        self.keys.clear();
        self.charge.clear();
        Ok(out)
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        let keyed = self
            .keys
            .iter()
            .map(|(key, agg)| {
                let mut v = Vec::with_capacity(agg.first.len() + 37);
                match agg.timestamp {
                    Some(ts) => {
                        v.push(1);
                        v.extend_from_slice(&ts.to_le_bytes());
                    }
                    None => v.push(0),
                }
                v.extend_from_slice(&(agg.first.len() as u32).to_le_bytes());
                v.extend_from_slice(&agg.first);
                agg.acc.write_json(&mut v);
                (key.clone(), v)
            })
            .collect();
        Ok(OperatorState { keyed, ..OperatorState::default() })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        for (key, v) in state.keyed {
            let corrupt = || self.error("corrupt aggregate state in the checkpoint".into());
            let (timestamp, rest) = match v.first() {
                Some(1) if v.len() >= 9 => (Some(i64::from_le_bytes(v[1..9].try_into().unwrap())), &v[9..]),
                Some(0) => (None, &v[1..]),
                _ => return Err(corrupt()),
            };
            let len = rest.get(..4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize).ok_or_else(corrupt)?;
            let first = rest.get(4..4 + len).ok_or_else(corrupt)?.to_vec();
            let acc = Number::parse(&rest[4 + len..]).ok_or_else(corrupt)?;
            self.add_key(key, KeyAggregate { first, timestamp, acc })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes its input on, and keeps the size of the largest batch it was given.
    struct Largest(usize);

    impl Operator for Largest {
        fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
            self.0 = self.0.max(batch.len());
            Ok(batch)
        }
    }

    #[test]
    fn a_large_batch_turns_into_json_a_part_at_a_time_with_every_record_in_order() {
        // 20 000 MessagePack strings of 200 control characters: 6 bytes of JSON each.
        let mut batch = Vec::new();
        let mut whole = Vec::new();
        for i in 0..20_000u32 {
            let text: String = std::iter::repeat_n('\u{1}', 199).chain(std::iter::once(char::from(b'a' + (i % 26) as u8))).collect();
            let mut value = Vec::new();
            msgpack::write::begin(&mut value);
            msgpack::write::str(&mut value, &text);
            framing::push(&mut batch, None, &value, Some(i64::from(i)));
            framing::push_with(&mut whole, None, Some(i64::from(i)), |out| crate::json::write_str(out, &text));
        }
        assert!(batch.len() > 4 * JSON_PART);
        let mut op = Largest(0);
        let out = process_as_json(&mut op, "sink", batch).unwrap();
        assert_eq!(out, whole);
        assert!(op.0 <= 7 * JSON_PART, "the largest part given was {} bytes", op.0);
        let bad = [0x00, 2, 0, 0, 0, 0xc1, 0xc1];
        let err = process_as_json(&mut Largest(0), "sink", bad.to_vec()).unwrap_err();
        assert!(err.to_string().contains("sink"), "{err}");
    }
}
