//! The Kafka source: each subtask reads some partitions of the job's topics
//! with librdkafka's consumer, by explicit assignment (no group rebalancing:
//! the job's checkpoints, not the group, own the offsets, as in Flink's
//! `KafkaSource`).
//!
//! Its position, checkpointed, is one split per partition: the next offset to
//! read (and, bounded, where to stop). Splits are spread over subtasks
//! round robin on a restore, so a rescaled job reads every partition from
//! exactly where the checkpoint left it. A batch holds records of one
//! partition, and the chain is told which: a timestamp assigner after this
//! source keeps one watermark per partition and emits their minimum.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{base_config, check_brokers, metadata, JobContext, KafkaConnectError, KafkaSecret, MAX_RECORD_BYTES, REQUEST_TIMEOUT};
use crate::connectors::{batch_buffer, Confinement, SOURCE_BATCH_BYTES};
use crate::framing;
use crate::json;
use crate::runtime::{KafkaFormat, KafkaSource, KafkaStart};
use crate::task::{SourceContext, TaskError};

/// How often an idle source asks the brokers whether they are there (and
/// checks the brokers they advertise against the allow-list).
const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// How long the brokers may be unreachable before the source fails (and the
/// restart strategy takes over).
const UNREACHABLE_FOR: Duration = Duration::from_secs(15);

/// One partition's part of the position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartitionSplit {
    topic: String,
    partition: i32,
    /// The next offset to read.
    offset: i64,
    /// Bounded: the offset at which the partition is done.
    stop: Option<i64>,
    /// The offset it started from in this run, for progress.
    #[serde(skip)]
    first: i64,
}

impl PartitionSplit {
    fn done(&self) -> bool {
        self.stop.is_some_and(|stop| self.offset >= stop)
    }
}

/// The source of one subtask.
pub struct KafkaSourceReader {
    spec: KafkaSource,
    client_id: String,
    subtask: u32,
    parallelism: u32,
    confinement: Confinement,
    secret: Option<KafkaSecret>,
    /// What it reads; none until discovered at the start (or restored).
    splits: Option<Vec<PartitionSplit>>,
    /// Positions of checkpoints taken but not known to be complete: on
    /// completion they are committed to the group.
    uncommitted: VecDeque<(u64, Vec<PartitionSplit>)>,
}

/// Where a batch being built stands.
struct Pending {
    split: usize,
    batch: Vec<u8>,
    records: u64,
    /// The offset after its last record.
    next: i64,
}

impl KafkaSourceReader {
    /// The source of `subtask` of `parallelism`; `secret` is the one the spec names, resolved by the cluster.
    pub fn new(
        spec: &KafkaSource,
        client_id: String,
        subtask: u32,
        parallelism: u32,
        confinement: &Confinement,
        secret: Option<KafkaSecret>,
    ) -> Result<Self, TaskError> {
        check_brokers(confinement, &spec.brokers).map_err(connect)?;
        if spec.topics.is_empty() {
            return Err(connect(KafkaConnectError::Pattern { pattern: String::new(), reason: "no topic given".into() }));
        }
        Ok(KafkaSourceReader {
            spec: spec.clone(),
            client_id,
            subtask,
            parallelism,
            confinement: confinement.clone(),
            secret,
            splits: None,
            uncommitted: VecDeque::new(),
        })
    }

    fn consumer(&self) -> Result<BaseConsumer<JobContext>, TaskError> {
        let mut c = base_config(&self.spec.brokers, &self.client_id, self.secret.as_ref());
        // The group only names where offsets are committed: partitions are assigned, never subscribed.
        let group = self.spec.group.clone().unwrap_or_else(|| self.client_id.clone());
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // An offset that no longer exists (deleted by retention) reads on from the earliest one left.
            .set("auto.offset.reset", "earliest")
            // Kafka's Java client's and Flink's default. (librdkafka's is read_committed,
            // which also hides the records of a partition past the end offset a broker
            // reports: tansu 0.6 reports the base of its last batch + 1, so the rest of
            // that batch would wait for the next one.)
            .set("isolation.level", "read_uncommitted")
            // At most 8 MiB fetched ahead per partition, 16 MiB per response.
            .set("queued.max.messages.kbytes", "8192")
            .set("fetch.max.bytes", MAX_RECORD_BYTES.to_string())
            .set("enable.partition.eof", "false")
            // A broker answers a fetch when records arrive or after this wait. Kafka
            // answers at once; tansu waits it out, so there it bounds the latency:
            // 10 ms instead of librdkafka's 500 (p99 at 100 000 records/s: 74 ms
            // instead of 245; benches/kafka.rs). An idle source pays for it with
            // 100 empty fetches a second per broker.
            .set("fetch.wait.max.ms", "10");
        c.create_with_context(JobContext::new()).map_err(|e| connect(KafkaConnectError::Client(e.to_string())))
    }

    /// The partitions of this subtask (the `i`-th of every `p` of all the
    /// topics' partitions in order) with the offsets they start from.
    fn discover(&self, consumer: &BaseConsumer<JobContext>) -> Result<Vec<PartitionSplit>, KafkaConnectError> {
        let brokers = &self.spec.brokers;
        let context = consumer.context();
        let mut partitions: Vec<(String, i32)> = Vec::new();
        let mut all_topics = None;
        for topic in &self.spec.topics {
            if topic.starts_with('^') {
                let pattern = topic.as_str();
                let re = regex::Regex::new(pattern)
                    .map_err(|e| KafkaConnectError::Pattern { pattern: pattern.into(), reason: e.to_string() })?;
                let all = match &all_topics {
                    Some(all) => all,
                    None => all_topics.insert(metadata(consumer.client(), None, brokers, &self.confinement, context)?),
                };
                let before = partitions.len();
                for t in all.topics().iter().filter(|t| re.is_match(t.name()) && !t.name().starts_with("__")) {
                    partitions.extend(t.partitions().iter().map(|p| (t.name().to_string(), p.id())));
                }
                if partitions.len() == before {
                    return Err(KafkaConnectError::Pattern { pattern: pattern.into(), reason: "matches no topic".into() });
                }
            } else {
                let m = metadata(consumer.client(), Some(topic), brokers, &self.confinement, context)?;
                let t = m.topics().first().filter(|t| t.error().is_none() && !t.partitions().is_empty());
                let t = t.ok_or_else(|| KafkaConnectError::UnknownTopic { topic: topic.clone(), brokers: brokers.clone() })?;
                partitions.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())));
            }
        }
        partitions.sort();
        partitions.dedup();
        let mine: Vec<(String, i32)> =
            partitions.into_iter().enumerate().filter(|(i, _)| *i as u32 % self.parallelism == self.subtask).map(|(_, p)| p).collect();
        let request = |what: &str, e: rdkafka::error::KafkaError| KafkaConnectError::Request { what: what.into(), reason: e.to_string() };
        let mut committed = None;
        let mut by_time = None;
        let mut splits = Vec::with_capacity(mine.len());
        for (topic, partition) in mine {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, REQUEST_TIMEOUT).map_err(|e| request("offsets request", e))?;
            let offset = match self.spec.start {
                KafkaStart::Earliest => low,
                KafkaStart::Latest => high,
                KafkaStart::Committed => {
                    let c = match &committed {
                        Some(c) => c,
                        None => committed.insert(consumer.committed(REQUEST_TIMEOUT).map_err(|e| request("committed offsets request", e))?),
                    };
                    match c.find_partition(&topic, partition).map(|e| e.offset()) {
                        Some(Offset::Offset(n)) => n.max(low),
                        _ => low,
                    }
                }
                KafkaStart::Timestamp(ms) => {
                    let t = match &by_time {
                        Some(t) => t,
                        None => by_time.insert(
                            consumer.offsets_for_timestamp(ms, REQUEST_TIMEOUT).map_err(|e| request("offsets-for-times request", e))?,
                        ),
                    };
                    match t.find_partition(&topic, partition).map(|e| e.offset()) {
                        Some(Offset::Offset(n)) => n,
                        _ => high,
                    }
                }
            };
            splits.push(PartitionSplit { topic, partition, offset, stop: self.spec.bounded.then_some(high), first: offset });
        }
        Ok(splits)
    }

    /// The error of a record that the job's format refuses.
    fn bad_record(&self, split: &PartitionSplit, offset: i64, why: &str) -> TaskError {
        TaskError::Kafka(format!("kafka source: topic {} partition {} offset {offset}: {why}", split.topic, split.partition))
    }

    /// Appends one record in the job's format.
    fn push(&self, batch: &mut Vec<u8>, split: &PartitionSplit, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<(), TaskError> {
        let payload = m.payload();
        if payload.map_or(0, <[u8]>::len) > MAX_RECORD_BYTES || m.key().map_or(0, <[u8]>::len) > MAX_RECORD_BYTES {
            return Err(self.bad_record(split, m.offset(), "record is larger than 16 MiB"));
        }
        let timestamp = m.timestamp().to_millis();
        match self.spec.format {
            KafkaFormat::Text => {
                let Ok(text) = std::str::from_utf8(payload.unwrap_or_default()) else {
                    return Err(self.bad_record(split, m.offset(), "value is not UTF-8 text"));
                };
                framing::push_with(batch, None, timestamp, |b| json::write_str(b, text));
            }
            KafkaFormat::Json => {
                let value = payload.unwrap_or(b"null");
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(value) {
                    return Err(self.bad_record(split, m.offset(), &format!("value is not JSON: {e}")));
                }
                framing::push(batch, None, value, timestamp);
            }
            KafkaFormat::Envelope => framing::push_with(batch, None, timestamp, |b| {
                use std::io::Write as _;
                b.extend_from_slice(b"{\"topic\":");
                json::write_str(b, &split.topic);
                // Writing into a Vec cannot fail.
                let _ = write!(b, ",\"partition\":{},\"offset\":{},\"timestamp\":", split.partition, m.offset());
                let _ = match timestamp {
                    Some(t) => write!(b, "{t}"),
                    None => write!(b, "null"),
                };
                let bytes = |b: &mut Vec<u8>, v: Option<&[u8]>| match v {
                    Some(v) => json::write_string(b, v),
                    None => b.extend_from_slice(b"null"),
                };
                b.extend_from_slice(b",\"key\":");
                bytes(b, m.key());
                b.extend_from_slice(b",\"value\":");
                bytes(b, payload);
                b.extend_from_slice(b",\"headers\":{");
                if let Some(headers) = m.headers() {
                    for (i, h) in headers.iter().enumerate() {
                        if i > 0 {
                            b.push(b',');
                        }
                        json::write_str(b, h.key);
                        b.push(b':');
                        bytes(b, h.value);
                    }
                }
                b.extend_from_slice(b"}}");
            }),
        }
        Ok(())
    }

    /// Hands a batch to the chain and moves its partition's position past it.
    fn emit(&mut self, ctx: &mut SourceContext, pending: &mut Option<Pending>) -> Result<(), TaskError> {
        let Some(p) = pending.take() else { return Ok(()) };
        ctx.emit_split(p.batch, p.records, p.split as u32)?;
        let splits = self.splits.as_mut().expect("splits are known while running");
        splits[p.split].offset = p.next;
        if splits[p.split].done() {
            ctx.active_splits(&active(splits));
        }
        Ok(())
    }

    /// Takes a checkpoint if one is due, remembering the position for the
    /// group, and commits to the group what completed since. False when the
    /// source must end (stop with savepoint).
    fn checkpoint(&mut self, ctx: &mut SourceContext, consumer: &BaseConsumer<JobContext>) -> Result<bool, TaskError> {
        let splits = self.splits.as_ref().expect("splits are known while running");
        let mut taken = None;
        let go_on = ctx.checkpoint(|| {
            taken = Some(splits.clone());
            encode(splits)
        })?;
        if let Some(position) = taken {
            self.uncommitted.push_back((ctx.last_checkpoint(), position));
            // A group commit is for monitoring; an unbounded backlog of them is not worth memory.
            if self.uncommitted.len() > 64 {
                self.uncommitted.pop_front();
            }
        }
        self.commit_completed(ctx, consumer);
        Ok(go_on)
    }

    /// Commits to the group the position of the newest checkpoint that completed.
    fn commit_completed(&mut self, ctx: &SourceContext, consumer: &BaseConsumer<JobContext>) {
        let completed = ctx.completed_checkpoint();
        let mut newest = None;
        while self.uncommitted.front().is_some_and(|(id, _)| *id <= completed) {
            newest = self.uncommitted.pop_front();
        }
        let (Some((_, position)), Some(_)) = (newest, &self.spec.group) else { return };
        let mut tpl = TopicPartitionList::new();
        for s in &position {
            let _ = tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(s.offset));
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!("kafka source: committing offsets to group failed: {e}");
        }
    }

    fn report(&self, ctx: &SourceContext) {
        let Some(splits) = &self.splits else { return };
        if !self.spec.bounded {
            return;
        }
        let size: i64 = splits.iter().map(|s| s.stop.unwrap_or(s.offset) - s.first).sum();
        let read: i64 = splits.iter().map(|s| s.offset - s.first).sum();
        ctx.progress(read.max(0) as u64, size.max(0) as u64);
    }
}

/// A consumer error that says the brokers are out of reach for now.
fn transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(Code::AllBrokersDown | Code::BrokerTransportFailure | Code::OperationTimedOut | Code::RequestTimedOut | Code::NetworkException)
    )
}

fn connect(e: KafkaConnectError) -> TaskError {
    TaskError::Kafka(format!("kafka source: {e}"))
}

fn encode(splits: &[PartitionSplit]) -> Vec<Vec<u8>> {
    splits.iter().map(|s| serde_json::to_vec(s).expect("splits serialize")).collect()
}

/// The splits still being read, by index.
fn active(splits: &[PartitionSplit]) -> Vec<u32> {
    splits.iter().enumerate().filter(|(_, s)| !s.done()).map(|(i, _)| i as u32).collect()
}

impl crate::connectors::Source for KafkaSourceReader {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let consumer = self.consumer()?;
        if self.splits.is_none() {
            self.splits = Some(self.discover(&consumer).map_err(connect)?);
        }
        let splits = self.splits.as_ref().expect("just set");
        let mut tpl = TopicPartitionList::new();
        for s in splits.iter().filter(|s| !s.done()) {
            tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(s.offset))
                .map_err(|e| connect(KafkaConnectError::Client(e.to_string())))?;
        }
        consumer.assign(&tpl).map_err(|e| connect(KafkaConnectError::Client(e.to_string())))?;
        ctx.active_splits(&active(splits));
        self.report(ctx);
        let wait = ctx.buffer_timeout().clamp(Duration::from_millis(1), Duration::from_millis(100));
        let mut pending: Option<Pending> = None;
        let mut last_health = Instant::now();
        let mut unreachable_since: Option<Instant> = None;
        while !self.splits.as_ref().expect("known").iter().all(PartitionSplit::done) {
            if ctx.should_stop() {
                break;
            }
            // Nothing buffered: wait for records; otherwise take what is already fetched.
            let timeout = if pending.is_some() { Duration::ZERO } else { wait };
            match consumer.poll(timeout) {
                Some(Ok(m)) => {
                    let hint = pending.as_ref().map(|p| p.split);
                    let Some(i) = self.split_of(m.topic(), m.partition(), hint) else { continue };
                    let split = &self.splits.as_ref().expect("known")[i];
                    if split.stop.is_some_and(|stop| m.offset() >= stop) {
                        continue;
                    }
                    if pending.as_ref().is_some_and(|p| p.split != i || p.batch.len() >= SOURCE_BATCH_BYTES) {
                        self.emit(ctx, &mut pending)?;
                        if !self.checkpoint(ctx, &consumer)? {
                            return Ok(());
                        }
                    }
                    let p = pending.get_or_insert_with(|| Pending { split: i, batch: batch_buffer(), records: 0, next: 0 });
                    let split = &self.splits.as_ref().expect("known")[i];
                    self.push(&mut p.batch, split, &m)?;
                    p.records += 1;
                    p.next = m.offset() + 1;
                    unreachable_since = None;
                }
                Some(Err(e)) if transient(&e) => {
                    // The brokers may come back: the health check below decides when to give up.
                    unreachable_since.get_or_insert_with(Instant::now);
                    self.emit(ctx, &mut pending)?;
                    ctx.idle()?;
                }
                Some(Err(e)) => {
                    // Partition-level errors (a topic deleted, authorization) end the job's attempt.
                    let reason = e.rdkafka_error_code().map_or_else(|| e.to_string(), |c| c.to_string());
                    return Err(connect(KafkaConnectError::Request { what: "fetch".into(), reason }));
                }
                None => {
                    self.emit(ctx, &mut pending)?;
                    self.report(ctx);
                    ctx.idle()?;
                    if !self.checkpoint(ctx, &consumer)? {
                        return Ok(());
                    }
                    if self.spec.bounded {
                        self.skip_to_positions(&consumer, ctx)?;
                    }
                }
            }
            // Busy or idle, every few seconds: are the brokers there, and do they
            // advertise only brokers on the allow-list?
            if last_health.elapsed() >= HEALTH_EVERY {
                self.emit(ctx, &mut pending)?;
                let asked = Instant::now();
                match metadata(consumer.client(), None, &self.spec.brokers, &self.confinement, consumer.context()) {
                    Ok(_) => unreachable_since = None,
                    Err(e @ KafkaConnectError::NotAllowed { .. }) => return Err(connect(e)),
                    Err(e) => {
                        let since = *unreachable_since.get_or_insert(asked);
                        if since.elapsed() >= UNREACHABLE_FOR {
                            return Err(connect(e));
                        }
                    }
                }
                last_health = Instant::now();
            }
        }
        self.emit(ctx, &mut pending)?;
        self.report(ctx);
        self.checkpoint(ctx, &consumer)?;
        Ok(())
    }

    fn restore(&mut self, splits: Vec<Vec<u8>>) -> Result<(), String> {
        let splits: Vec<PartitionSplit> = splits
            .iter()
            .map(|s| serde_json::from_slice(s).map_err(|e| format!("corrupt kafka source position in the checkpoint: {e}")))
            .collect::<Result<_, _>>()?;
        self.splits = Some(splits.into_iter().map(|s| PartitionSplit { first: s.offset, ..s }).collect());
        Ok(())
    }
}

impl KafkaSourceReader {
    /// The index of the split of `topic`'s `partition`: `hint` first (records
    /// come in runs of one partition), without allocating per record.
    fn split_of(&self, topic: &str, partition: i32, hint: Option<usize>) -> Option<usize> {
        let splits = self.splits.as_ref()?;
        let is = |s: &PartitionSplit| s.partition == partition && s.topic == topic;
        match hint {
            Some(h) if is(&splits[h]) => Some(h),
            _ => splits.iter().position(is),
        }
    }

    /// Bounded: a partition whose consumer position reached its stop is done
    /// even if no record at the stop was read (transaction markers and
    /// compacted records take offsets but are never delivered).
    fn skip_to_positions(&mut self, consumer: &BaseConsumer<JobContext>, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let Ok(positions) = consumer.position() else { return Ok(()) };
        let splits = self.splits.as_mut().expect("known");
        let mut changed = false;
        for s in splits.iter_mut().filter(|s| !s.done()) {
            if let Some(Offset::Offset(n)) = positions.find_partition(&s.topic, s.partition).map(|e| e.offset()) {
                if s.stop.is_some_and(|stop| n >= stop) && n > s.offset {
                    s.offset = s.stop.expect("bounded");
                    changed = true;
                }
            }
        }
        if changed {
            ctx.active_splits(&active(splits));
        }
        Ok(())
    }
}
