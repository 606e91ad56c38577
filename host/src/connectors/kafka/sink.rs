//! The Kafka sink: values into a topic with librdkafka's producer.
//!
//! `at-least-once` is Flink's: a checkpoint barrier waits until the brokers
//! acknowledged every record written before it, so a restore from that
//! checkpoint replays only what may not have arrived. `none` awaits nothing.
//! There is no `exactly-once`: it needs Kafka transactions (KIP-98), and the
//! broker these tests can install (tansu) does not commit them; end-to-end
//! exactly-once goes through the file sink (see docs/kafka.md).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::{base_config, check_brokers, metadata, JobContext, KafkaConnectError, KafkaSecret, MAX_RECORD_BYTES};
use crate::checkpoint::OperatorState;
use crate::connectors::Confinement;
use crate::framing;
use crate::json;
use crate::runtime::{DeliveryGuarantee, KafkaFormat, KafkaSink};
use crate::task::{Operator, TaskError};

/// How long a record may wait for the brokers' acknowledgement before the
/// sink fails (and the restart strategy takes over): a dead broker must not hang the job.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The producer's context: the first failed delivery, which fails the task.
struct SinkContext {
    job: JobContext,
    failed: Mutex<Option<String>>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.job.log(level, fac, message)
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.job.error(error, reason)
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.lock().unwrap().get_or_insert_with(|| e.to_string());
        }
    }
}

/// One subtask's sink.
pub struct KafkaSinkOp {
    name: String,
    spec: KafkaSink,
    producer: BaseProducer<SinkContext>,
    written: u64,
    bytes: u64,
}

impl KafkaSinkOp {
    /// The sink of one subtask: checks the brokers and the topic now, so a
    /// job with a wrong one fails at once with a clear error.
    pub fn create(
        name: String,
        spec: &KafkaSink,
        client_id: &str,
        confinement: &Confinement,
        secret: Option<KafkaSecret>,
    ) -> Result<Self, TaskError> {
        let fail = |e: KafkaConnectError| TaskError::Kafka(format!("kafka sink: {e}"));
        check_brokers(confinement, &spec.brokers).map_err(fail)?;
        let mut c = base_config(&spec.brokers, client_id, secret.as_ref());
        c.set("acks", "all")
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            // At most 16 MiB waiting for the brokers; beyond it the task waits (back-pressure).
            .set("queue.buffering.max.kbytes", "16384")
            .set("queue.buffering.max.messages", "100000")
            .set("message.max.bytes", (MAX_RECORD_BYTES + 4096).to_string())
            .set("linger.ms", "5")
            // Keys land where the Java client puts them.
            .set("partitioner", "murmur2_random");
        let context = SinkContext { job: JobContext::new(), failed: Mutex::new(None) };
        let producer: BaseProducer<SinkContext> =
            c.create_with_context(context).map_err(|e| fail(KafkaConnectError::Client(e.to_string())))?;
        let m = metadata(producer.client(), Some(&spec.topic), &spec.brokers, confinement, &producer.context().job).map_err(fail)?;
        if !m.topics().first().is_some_and(|t| t.error().is_none() && !t.partitions().is_empty()) {
            return Err(fail(KafkaConnectError::UnknownTopic { topic: spec.topic.clone(), brokers: spec.brokers.clone() }));
        }
        Ok(KafkaSinkOp { name, spec: spec.clone(), producer, written: 0, bytes: 0 })
    }

    fn failed(&self) -> Result<(), TaskError> {
        match self.producer.context().failed.lock().unwrap().take() {
            Some(e) => Err(TaskError::Kafka(format!("kafka sink: delivery to topic {} failed: {e}", self.spec.topic))),
            None => Ok(()),
        }
    }

    fn bad_value(&self, why: &str) -> TaskError {
        TaskError::Record { operator: self.name.clone(), message: format!("kafka sink: {why}") }
    }

    /// Queues one record, waiting while the producer's queue is full.
    fn send(&mut self, record: BaseRecord<'_, [u8], [u8]>) -> Result<(), TaskError> {
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                    self.failed()?;
                }
                Err((e, _)) => return Err(TaskError::Kafka(format!("kafka sink: cannot write to topic {}: {e}", self.spec.topic))),
            }
        }
    }

    /// Waits until the brokers acknowledged everything sent.
    fn flush(&mut self) -> Result<(), TaskError> {
        let started = Instant::now();
        self.producer
            .flush(DELIVERY_TIMEOUT + Duration::from_secs(5))
            .map_err(|e| TaskError::Kafka(format!("kafka sink: flushing topic {} failed after {:?}: {e}", self.spec.topic, started.elapsed())))?;
        self.failed()
    }
}

/// A value as the bytes of a record's key or value: a JSON string as its
/// text, anything else as its JSON.
fn as_bytes(value: &serde_json::Value) -> Vec<u8> {
    match value {
        serde_json::Value::String(s) => s.as_bytes().to_vec(),
        v => v.to_string().into_bytes(),
    }
}

impl Operator for KafkaSinkOp {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        self.failed()?;
        let topic = self.spec.topic.clone();
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: self.name.clone(), source })?;
            match self.spec.format {
                KafkaFormat::Text | KafkaFormat::Json => {
                    // JSON goes as it is; text needs a copy only to drop a string's quotes.
                    let text;
                    let value = match self.spec.format {
                        KafkaFormat::Text => {
                            let mut t = Vec::with_capacity(record.value.len());
                            json::write_as_text(&mut t, record.value);
                            text = t;
                            &text[..]
                        }
                        _ => record.value,
                    };
                    self.bytes += value.len() as u64;
                    let mut r = BaseRecord::to(&topic).payload(value);
                    if let Some(ts) = record.timestamp {
                        r = r.timestamp(ts);
                    }
                    self.send(r)?;
                }
                KafkaFormat::Envelope => {
                    let envelope: serde_json::Value =
                        serde_json::from_slice(record.value).map_err(|e| self.bad_value(&format!("value is not JSON: {e}")))?;
                    let serde_json::Value::Object(mut fields) = envelope else {
                        return Err(self.bad_value("an envelope must be an object {\"key\",\"value\",\"partition\",\"headers\"}"));
                    };
                    let value = fields.remove("value").filter(|v| !v.is_null()).map(|v| as_bytes(&v));
                    let key = fields.remove("key").filter(|v| !v.is_null()).map(|v| as_bytes(&v));
                    let partition = match fields.remove("partition") {
                        None | Some(serde_json::Value::Null) => None,
                        Some(p) => Some(
                            p.as_u64()
                                .and_then(|p| i32::try_from(p).ok())
                                .ok_or_else(|| self.bad_value(&format!("partition {p} is not a partition number")))?,
                        ),
                    };
                    let mut headers = OwnedHeaders::new();
                    match fields.remove("headers") {
                        None | Some(serde_json::Value::Null) => {}
                        Some(serde_json::Value::Object(h)) => {
                            for (k, v) in h {
                                let v = (!v.is_null()).then(|| as_bytes(&v));
                                headers = headers.insert(Header { key: &k, value: v.as_deref() });
                            }
                        }
                        Some(_) => return Err(self.bad_value("headers must be an object of strings")),
                    }
                    if let Some(other) = fields.keys().next() {
                        return Err(self.bad_value(&format!("unknown envelope field {other:?} (key, value, partition, headers)")));
                    }
                    self.bytes += (value.as_ref().map_or(0, Vec::len) + key.as_ref().map_or(0, Vec::len)) as u64;
                    let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic).headers(headers);
                    if let Some(v) = &value {
                        r = r.payload(&v[..]);
                    }
                    if let Some(k) = &key {
                        r = r.key(&k[..]);
                    }
                    if let Some(p) = partition {
                        r = r.partition(p);
                    }
                    if let Some(ts) = record.timestamp {
                        r = r.timestamp(ts);
                    }
                    self.send(r)?;
                }
            }
            self.written += 1;
        }
        // Serves delivery reports (and frees what they held) without waiting.
        self.producer.poll(Duration::ZERO);
        Ok(Vec::new())
    }

    fn snapshot(&mut self, _checkpoint: u64) -> Result<OperatorState, TaskError> {
        if self.spec.guarantee == DeliveryGuarantee::AtLeastOnce {
            self.flush()?;
        }
        Ok(OperatorState::default())
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        self.flush()?;
        Ok(Vec::new())
    }

    fn records_written(&self) -> u64 {
        self.written
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_written_as_their_text() {
        assert_eq!(super::as_bytes(&serde_json::json!("a\"b")), b"a\"b");
        assert_eq!(super::as_bytes(&serde_json::json!({"n": 1})), br#"{"n":1}"#);
    }
}
