//! Kafka topics as sources and sinks, run by the host (the guest opens no socket).
//!
//! ```
//! use eddy_sdk::prelude::*;
//! use eddy_sdk::kafka::{KafkaSink, KafkaSource, Start};
//!
//! fn job(env: &mut Env, _args: &Args) -> Result<(), String> {
//!     let lines: Stream<String> = env.read_kafka(KafkaSource::new("localhost:9092", ["input"]).start(Start::Earliest));
//!     lines.map(|l: String| l.to_uppercase()).write_kafka(KafkaSink::new("localhost:9092", "output").at_least_once());
//!     Ok(())
//! }
//! // Building the graph needs no host: it runs natively too.
//! job(&mut Env::new("upper"), &Args::parse(Vec::<String>::new())).unwrap();
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::bindings::eddy::stream::types::KafkaFormat as Format;
use crate::bindings::eddy::stream::types::{DeliveryGuarantee, KafkaSink as SinkSpec, KafkaSource as SourceSpec, KafkaStart};

/// Where partitions start that no checkpoint or savepoint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first record of each partition.
    Earliest,
    /// Records produced from the job's start on.
    Latest,
    /// Where the source's consumer group committed (the earliest where it did not).
    Committed,
    /// The first record at or after this time (epoch milliseconds).
    Timestamp(i64),
}

/// A Kafka source, like Flink's `KafkaSource.builder()`: the records of
/// topics, partitions spread over the source's subtasks, offsets in
/// checkpoints. Records carry the Kafka timestamp (for `assign_watermarks`).
#[derive(Debug, Clone)]
pub struct KafkaSource {
    pub(crate) spec: SourceSpec,
}

impl KafkaSource {
    /// Topics on brokers `host:port[,host:port…]`; a topic starting with `^`
    /// is a regular expression over the topic names. Values are text (JSON strings).
    pub fn new<I, S>(brokers: impl Into<String>, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KafkaSource {
            spec: SourceSpec {
                brokers: brokers.into(),
                topics: topics.into_iter().map(Into::into).collect(),
                start: KafkaStart::Earliest,
                bounded: false,
                group: None,
                format: Format::Text,
                secret: None,
            },
        }
    }

    /// Where to start (default: earliest).
    pub fn start(mut self, start: Start) -> Self {
        self.spec.start = match start {
            Start::Earliest => KafkaStart::Earliest,
            Start::Latest => KafkaStart::Latest,
            Start::Committed => KafkaStart::Committed,
            Start::Timestamp(ms) => KafkaStart::Timestamp(ms),
        };
        self
    }

    /// Stops at the ends the partitions have when the job starts (a backfill).
    pub fn bounded(mut self) -> Self {
        self.spec.bounded = true;
        self
    }

    /// The consumer group whose offsets `Start::Committed` reads and that
    /// completed checkpoints commit to (for monitoring).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.spec.group = Some(group.into());
        self
    }

    /// Values are JSON (read as the stream's type).
    pub fn json(mut self) -> Self {
        self.spec.format = Format::Json;
        self
    }

    /// Records are [`KafkaRecord`]s: key, value, headers, topic, partition, offset, timestamp.
    pub fn envelope(mut self) -> Self {
        self.spec.format = Format::Envelope;
        self
    }

    /// Credentials and TLS from the cluster's secret `name` (never in arguments).
    pub fn secret(mut self, name: impl Into<String>) -> Self {
        self.spec.secret = Some(name.into());
        self
    }
}

/// A Kafka record with its metadata (a source's `envelope()` format).
/// Keys, values and headers are text (bytes that are not UTF-8 become U+FFFD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRecord {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp (epoch ms), if it has one.
    pub timestamp: Option<i64>,
    /// Its key.
    pub key: Option<String>,
    /// Its value (none: a tombstone).
    pub value: Option<String>,
    /// Its headers.
    pub headers: BTreeMap<String, Option<String>>,
}

/// A record for a sink's `envelope()` format: the job chooses key,
/// partition and headers. A string is written as its text, anything else as its JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KafkaOut {
    /// The key; none: no key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Value>,
    /// The value; none: a tombstone.
    pub value: Option<serde_json::Value>,
    /// The partition; none: by the key's hash (as the Java client), or spread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A Kafka sink, like Flink's `KafkaSink.builder()`.
#[derive(Debug, Clone)]
pub struct KafkaSink {
    pub(crate) spec: SinkSpec,
}

impl KafkaSink {
    /// Values into `topic` on brokers `host:port[,host:port…]`: a string as
    /// its text, anything else as its JSON; no delivery guarantee.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaSink {
            spec: SinkSpec {
                brokers: brokers.into(),
                topic: topic.into(),
                guarantee: DeliveryGuarantee::None,
                format: Format::Text,
                secret: None,
            },
        }
    }

    /// Every checkpoint waits until the brokers acknowledged all records before it.
    pub fn at_least_once(mut self) -> Self {
        self.spec.guarantee = DeliveryGuarantee::AtLeastOnce;
        self
    }

    /// Values are written as JSON (strings too, quoted).
    pub fn json(mut self) -> Self {
        self.spec.format = Format::Json;
        self
    }

    /// Values are [`KafkaOut`] envelopes: key, value, partition, headers.
    pub fn envelope(mut self) -> Self {
        self.spec.format = Format::Envelope;
        self
    }

    /// Credentials and TLS from the cluster's secret `name`.
    pub fn secret(mut self, name: impl Into<String>) -> Self {
        self.spec.secret = Some(name.into());
        self
    }
}
