//! The operators of a chain as a task runs them: fused Wasm calls, built-in
//! keyed aggregates and sinks, each taking a packed batch and returning one.

use std::collections::BTreeMap;

// Keys are chosen by users, but a job only hurts itself with colliding keys: a fast
// non-keyed hash is the right trade for the per-record lookups here.
use rustc_hash::FxHashMap as HashMap;

use super::TaskError;
use crate::checkpoint::snapshot::TaskState;
use crate::checkpoint::{OperatorState, Restored};
use crate::connectors;
use crate::state::{BackendKind, Domain, KeyedState};
use crate::framing::{self, Record};
use crate::json::{self, Number};
use crate::keys;
use crate::plan::ExecutionPlan;
use crate::runtime::{Aggregate, AggregateKind, FieldRef, Instance, KeyScope, Module, SubtaskInfo, VertexKind};

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
}

/// The operators of one subtask of a chain, head first.
pub struct Chain {
    ops: Vec<Box<dyn Operator>>,
    /// Each operator's uid, naming its state in snapshots.
    uids: Vec<String>,
}

impl Chain {
    fn run_from(&mut self, start: usize, mut batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        for op in &mut self.ops[start..] {
            if batch.is_empty() {
                break;
            }
            batch = op.process(batch)?;
        }
        Ok(batch)
    }

    /// Runs a batch through the chain.
    pub fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        self.run_from(0, batch)
    }

    /// Tells every operator, in order, that event time advanced.
    pub fn watermark(&mut self, watermark: i64) -> Result<Vec<u8>, TaskError> {
        self.each_in_order(|op| op.watermark(watermark))
    }

    /// Ends every operator, in order, so each one's last records reach the next.
    pub fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        self.each_in_order(|op| op.finish())
    }

    fn each_in_order(
        &mut self,
        mut f: impl FnMut(&mut dyn Operator) -> Result<Vec<u8>, TaskError>,
    ) -> Result<Vec<u8>, TaskError> {
        let mut out = Vec::new();
        for i in 0..self.ops.len() {
            let emitted = f(self.ops[i].as_mut())?;
            out.extend(self.run_from(i + 1, emitted)?);
        }
        Ok(out)
    }

    /// The operators' states for checkpoint `checkpoint`, and the records to
    /// send before its barrier.
    pub fn snapshot(&mut self, checkpoint: u64) -> Result<(TaskState, Vec<u8>), TaskError> {
        let emitted = self.each_in_order(|op| op.prepare_snapshot())?;
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
    /// The job's component.
    pub module: &'a Module,
    /// The entry the job was planned from.
    pub entry: &'a str,
    /// The job arguments.
    pub args: &'a [String],
    /// The checkpoint or savepoint the job resumes from.
    pub restore: Option<&'a Restored>,
    /// Names this run's output files apart from other runs' (two-phase sinks).
    pub run_id: &'a str,
    /// Whether the job takes checkpoints (sinks then commit on them).
    pub checkpointing: bool,
    /// Where keyed state of Wasm operators lives.
    pub state_backend: &'a BackendKind,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The uid naming a vertex's state: its own, or one derived from its id.
pub fn vertex_uid(vertex: &crate::runtime::Vertex) -> String {
    vertex.uid.clone().unwrap_or_else(|| format!("vertex-{}", vertex.id))
}

/// Builds subtask `subtask` of chain `chain`, fusing consecutive Wasm
/// operators into one instance (one guest call per batch for all of them).
pub fn build_chain(ctx: &ChainContext, chain: usize, subtask: u32) -> Result<Chain, TaskError> {
    let plan = ctx.plan;
    let c = &plan.chains[chain];
    let info = SubtaskInfo { index: subtask, parallelism: c.parallelism, max_parallelism: plan.max_parallelism };
    let mut chain_ops = Chain { ops: Vec::new(), uids: Vec::new() };
    let mut fused: Vec<usize> = Vec::new();
    let mut add = |chain_ops: &mut Chain, uid: String, mut op: Box<dyn Operator>| -> Result<(), TaskError> {
        if let Some(r) = ctx.restore {
            op.restore(r.state_for(&uid, subtask, c.parallelism))?;
        }
        chain_ops.ops.push(op);
        chain_ops.uids.push(uid);
        Ok(())
    };
    let flush_fused = |fused: &mut Vec<usize>, chain_ops: &mut Chain, add: &mut dyn FnMut(&mut Chain, String, Box<dyn Operator>) -> Result<(), TaskError>| -> Result<(), TaskError> {
        if !fused.is_empty() {
            // The instance's keyed state belongs to its keyed operator.
            let owner = fused.iter().copied().find(|&v| plan.vertices[v].keyed).unwrap_or(fused[0]);
            add(chain_ops, vertex_uid(&plan.vertices[owner]), Box::new(WasmOperator::open(ctx, fused, info)?))?;
            fused.clear();
        }
        Ok(())
    };
    for &v in &c.vertices {
        let vertex = &plan.vertices[v];
        let uid = vertex_uid(vertex);
        match &vertex.kind {
            VertexKind::Wasm(_) => {
                fused.push(v);
                if vertex.per_key_updates && plan.bounded {
                    flush_fused(&mut fused, &mut chain_ops, &mut add)?;
                    add(&mut chain_ops, format!("{uid}/last"), Box::new(LastPerKey::default()))?;
                }
            }
            kind => {
                flush_fused(&mut fused, &mut chain_ops, &mut add)?;
                let op: Box<dyn Operator> = match kind {
                    VertexKind::Aggregate(a) => {
                        let input = if c.combined_input { Input::Partials } else { Input::Records };
                        Box::new(AggregateOp::new(vertex.name.clone(), a.clone(), !plan.bounded, input))
                    }
                    VertexKind::PrintSink => Box::new(connectors::PrintSink::new(info)),
                    VertexKind::FileSink(dir) => {
                        let run = ctx.checkpointing.then_some(ctx.run_id);
                        Box::new(connectors::FileSink::create(dir, info, run)?)
                    }
                    // Sources head their chain and are run by the task, not as operators.
                    _ => continue,
                };
                add(&mut chain_ops, uid, op)?;
            }
        }
    }
    flush_fused(&mut fused, &mut chain_ops, &mut add)?;
    if let Some(a) = &c.combine {
        let name = format!("partial {}", plan.chain_name(chain));
        let uid = format!("{}/combine", vertex_uid(&plan.vertices[*c.vertices.last().unwrap()]));
        let mut combiner = AggregateOp::new(name, a.clone(), false, Input::Records);
        combiner.combiner = true;
        add(&mut chain_ops, uid, Box::new(combiner))?;
    }
    Ok(chain_ops)
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
            instance: ctx.module.instantiate(&name, scope).map_err(|e| fail(&name, subtask, e))?,
            name,
            subtask,
        };
        if let Some(state) = keyed_state {
            op.instance.host().set_state(state);
        }
        op.instance.open(ctx.entry, ctx.args, &indices, subtask).map_err(|e| fail(&op.name, subtask, e))?;
        Ok(op)
    }

    fn check(&self, result: Result<Vec<u8>, crate::runtime::GuestError>) -> Result<Vec<u8>, TaskError> {
        let batch = result.map_err(|e| fail(&self.name, self.subtask, e))?;
        if let Some(Err(source)) = framing::records(&batch).find(Result::is_err) {
            return Err(TaskError::Framing { operator: self.name.clone(), source });
        }
        Ok(batch)
    }
}

fn fail(name: &str, subtask: SubtaskInfo, source: crate::runtime::GuestError) -> TaskError {
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

impl Operator for WasmOperator {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let mut out = match self.instance.host().timers.next_processing() {
            Some(t) if t <= now_ms() => self.fire_timers(Domain::Processing, now_ms())?,
            _ => Vec::new(),
        };
        let emitted = self.instance.process(&batch);
        out.extend(self.check(emitted)?);
        Ok(out)
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
        let host = self.instance.host();
        let mut keyed = host.state_mut().snapshot().map_err(|e| TaskError::Record { operator: self.name.clone(), message: e.to_string() })?;
        keyed.extend(host.timers.snapshot());
        Ok(OperatorState { keyed, items: Vec::new() })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        let host = self.instance.host();
        let entries: Vec<_> = state.keyed.into_iter().filter(|(k, v)| !host.timers.restore(k, v)).collect();
        host.state_mut().restore(entries).map_err(|message| TaskError::Record { operator: self.name.clone(), message })
    }
}

/// Keeps the last record of each key and emits them when the input ends: a
/// keyed reduce in a bounded job shows only final results.
#[derive(Default)]
struct LastPerKey {
    index: HashMap<Vec<u8>, usize>,
    records: Vec<Vec<u8>>,
}

impl Operator for LastPerKey {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: "reduce".into(), source })?;
            let key = record.key.unwrap_or_default();
            match self.index.get(key) {
                Some(&i) => self.records[i] = record.raw.to_vec(),
                None => {
                    self.index.insert(key.to_vec(), self.records.len());
                    self.records.push(record.raw.to_vec());
                }
            }
        }
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        self.index.clear();
        Ok(std::mem::take(&mut self.records).concat())
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        let keyed = self.index.iter().map(|(k, &i)| (k.clone(), self.records[i].clone())).collect();
        Ok(OperatorState { keyed, items: Vec::new() })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        for (key, record) in state.keyed {
            self.index.insert(key, self.records.len());
            self.records.push(record);
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
    index: HashMap<Vec<u8>, usize>,
    keys: Vec<(Vec<u8>, KeyAggregate)>,
}

impl AggregateOp {
    fn new(name: String, spec: Aggregate, emit_updates: bool, input: Input) -> Self {
        AggregateOp { name, spec, emit_updates, input, combiner: false, index: HashMap::default(), keys: Vec::new() }
    }

    fn error(&self, message: String) -> TaskError {
        TaskError::Record { operator: self.name.clone(), message }
    }

    fn field<'v>(&self, value: &'v [u8]) -> Result<Number, TaskError> {
        let text: std::borrow::Cow<'v, [u8]> = match &self.spec.field {
            FieldRef::Whole => value.into(),
            FieldRef::Index(i) => json::array_element(value, *i)
                .ok_or_else(|| self.error(format!("value {} has no element {i}", String::from_utf8_lossy(value))))?
                .into(),
            FieldRef::Name(n) => {
                let v: serde_json::Value = serde_json::from_slice(value)
                    .map_err(|e| self.error(format!("value is not JSON: {e}")))?;
                let f = v.get(n).ok_or_else(|| self.error(format!("value {v} has no field '{n}'")))?;
                f.to_string().into_bytes().into()
            }
        };
        Number::parse(&text).ok_or_else(|| {
            self.error(format!("field {:?} of {} is not a number", self.spec.field, String::from_utf8_lossy(value)))
        })
    }

    fn update(&mut self, record: Record) -> Result<usize, TaskError> {
        let key = record.key.ok_or_else(|| self.error("record has no key".into()))?;
        let n = match (self.spec.kind, self.input) {
            (AggregateKind::Count, Input::Records) => Number::Int(1),
            (AggregateKind::Count, Input::Partials) => json::array_element(record.value, 1)
                .and_then(Number::parse)
                .ok_or_else(|| self.error(format!("partial count {} is not [key, n]", String::from_utf8_lossy(record.value))))?,
            _ => self.field(record.value)?,
        };
        let slot = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let first = KeyAggregate { first: record.value.to_vec(), timestamp: record.timestamp, acc: n };
                self.index.insert(key.to_vec(), self.keys.len());
                self.keys.push((key.to_vec(), first));
                return Ok(self.keys.len() - 1);
            }
        };
        let agg = &mut self.keys[slot].1;
        agg.timestamp = record.timestamp.or(agg.timestamp);
        agg.acc = match self.spec.kind {
            AggregateKind::Sum | AggregateKind::Count => agg.acc.plus(n),
            AggregateKind::Min if n.as_f64() < agg.acc.as_f64() => n,
            AggregateKind::Max if n.as_f64() > agg.acc.as_f64() => n,
            _ => agg.acc,
        };
        Ok(slot)
    }

    fn emit(&self, slot: usize, out: &mut Vec<u8>) -> Result<(), TaskError> {
        let (key, agg) = &self.keys[slot];
        let value = match (&self.spec.kind, &self.spec.field) {
            (AggregateKind::Count, _) => {
                let mut v = Vec::with_capacity(key.len() + 24);
                v.push(b'[');
                v.extend_from_slice(key);
                v.push(b',');
                v.extend_from_slice(agg.acc.to_json().to_string().as_bytes());
                v.push(b']');
                v
            }
            (_, FieldRef::Whole) => agg.acc.to_json().to_string().into_bytes(),
            (_, FieldRef::Index(i)) => {
                // Splice the number into the first value's bytes.
                let old = json::array_element(&agg.first, *i).expect("field checked on update");
                let start = old.as_ptr() as usize - agg.first.as_ptr() as usize;
                let mut v = agg.first[..start].to_vec();
                v.extend_from_slice(agg.acc.to_json().to_string().as_bytes());
                v.extend_from_slice(&agg.first[start + old.len()..]);
                v
            }
            (_, FieldRef::Name(n)) => {
                let mut v: serde_json::Value = serde_json::from_slice(&agg.first).expect("checked on update");
                v[n.as_str()] = agg.acc.to_json();
                v.to_string().into_bytes()
            }
        };
        framing::push(out, Some(key), &value, agg.timestamp);
        Ok(())
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
        Ok(out)
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        let keyed = self
            .keys
            .iter()
            .map(|(key, agg)| {
                let acc = agg.acc.to_json().to_string();
                let mut v = Vec::with_capacity(agg.first.len() + acc.len() + 13);
                match agg.timestamp {
                    Some(ts) => {
                        v.push(1);
                        v.extend_from_slice(&ts.to_le_bytes());
                    }
                    None => v.push(0),
                }
                v.extend_from_slice(&(agg.first.len() as u32).to_le_bytes());
                v.extend_from_slice(&agg.first);
                v.extend_from_slice(acc.as_bytes());
                (key.clone(), v)
            })
            .collect();
        Ok(OperatorState { keyed, items: Vec::new() })
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
            self.index.insert(key.clone(), self.keys.len());
            self.keys.push((key, KeyAggregate { first, timestamp, acc }));
        }
        Ok(())
    }
}
