//! The Kafka connector: a replayable source whose position is the offsets of
//! its partitions, and a sink that flushes on checkpoints. Both run
//! librdkafka's C client inside the TaskManager on a job's behalf, so what a
//! job may make it do is bounded here: the brokers it may reach (the
//! tenant's allow-list, checked for the bootstrap list and for every broker
//! the cluster advertises), the memory it may queue, and the settings it may
//! change (none but those of [`KafkaSource`] and [`KafkaSink`]: librdkafka
//! properties can read files and load libraries, so jobs never pass any).

mod secrets;
mod sink;
mod source;

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use thiserror::Error;

pub use secrets::{KafkaSecret, SaslMechanism, SecretsError, SecretsFile, SecurityProtocol};
pub use sink::KafkaSinkOp;
pub use source::KafkaSourceReader;

use super::Confinement;

/// How long a metadata or offset request may take before the connector gives up.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A Kafka connector that cannot start or go on.
#[derive(Debug, Error)]
pub enum KafkaConnectError {
    /// The broker list is not `host:port[,host:port…]`.
    #[error("kafka broker list {0:?} is not HOST:PORT[,HOST:PORT...]")]
    Brokers(String),
    /// A broker (given or advertised) is not on the tenant's allow-list.
    #[error("kafka broker {broker}{advertised} is not on the tenant's allow-list")]
    NotAllowed {
        /// `host:port`.
        broker: String,
        /// Empty, or where the address came from.
        advertised: String,
    },
    /// The job names a secret the cluster does not give it.
    #[error("unknown kafka secret {0:?}")]
    UnknownSecret(String),
    /// librdkafka refused the configuration or could not start.
    #[error("kafka client: {0}")]
    Client(String),
    /// No broker answered.
    #[error("cannot reach kafka brokers {brokers}: {reason}")]
    Unreachable {
        /// The bootstrap list.
        brokers: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// A topic the job reads or writes does not exist.
    #[error("kafka topic {topic:?} does not exist on brokers {brokers}")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// The bootstrap list.
        brokers: String,
    },
    /// A topic pattern is not a regular expression, or matches nothing.
    #[error("kafka topic pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// A request to the brokers failed.
    #[error("kafka {what}: {reason}")]
    Request {
        /// What the connector asked.
        what: String,
        /// librdkafka's reason.
        reason: String,
    },
}

/// The secrets the Kafka connectors of a graph's `vertices` name.
pub fn secret_names(vertices: &[crate::runtime::Vertex]) -> Vec<&str> {
    use crate::runtime::VertexKind;
    let mut names: Vec<&str> = vertices
        .iter()
        .filter_map(|v| match &v.kind {
            VertexKind::KafkaSource(k) => k.secret.as_deref(),
            VertexKind::KafkaSink(k) => k.secret.as_deref(),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// `host:port` pairs of a broker list.
pub(crate) fn parse_brokers(list: &str) -> Result<Vec<(String, u16)>, KafkaConnectError> {
    let bad = || KafkaConnectError::Brokers(list.to_string());
    let brokers: Vec<(String, u16)> = list
        .split(',')
        .map(str::trim)
        .map(|entry| {
            let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            let port = port.parse::<u16>().map_err(|_| bad())?;
            // A name or address only: librdkafka reads `host:port` lists, and
            // anything else (a scheme, a path, spaces) is a mistake or a probe.
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
            if host.is_empty() || !host.chars().all(plain) || port == 0 {
                return Err(bad());
            }
            Ok((host.to_string(), port))
        })
        .collect::<Result<_, _>>()?;
    if brokers.is_empty() {
        return Err(bad());
    }
    Ok(brokers)
}

/// Refuses a broker list with an entry not on the allow-list (lexically, before
/// any name resolution), as the socket source does.
pub(crate) fn check_brokers(confinement: &Confinement, list: &str) -> Result<(), KafkaConnectError> {
    for (host, port) in parse_brokers(list)? {
        if confinement.check_socket(&host, port).is_err() {
            return Err(KafkaConnectError::NotAllowed { broker: format!("{host}:{port}"), advertised: String::new() });
        }
    }
    Ok(())
}

/// The settings every client of a job gets, before those of its role.
///
/// Memory librdkafka keeps for a job is bounded here: fetched records waiting
/// for the source, records waiting for the brokers' acknowledgement, and the
/// size of one response.
pub(crate) fn base_config(brokers: &str, client_id: &str, secret: Option<&KafkaSecret>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        // A response bigger than this is refused (the default is 100 MB).
        .set("receive.message.max.bytes", (MAX_RECORD_BYTES + (1 << 20)).to_string())
        .set("socket.timeout.ms", "10000")
        .set("log.connection.close", "false")
        // A job's brokers never create topics because it named one.
        .set("allow.auto.create.topics", "false")
        .set_log_level(RDKafkaLogLevel::Warning);
    if let Some(s) = secret {
        s.apply(&mut c);
    }
    c
}

/// The largest record value or key a connector reads or writes.
pub(crate) const MAX_RECORD_BYTES: usize = super::MAX_LINE_BYTES;

/// The context of a job's clients: librdkafka's errors and logs go to the
/// task's log (inside its span), and the last error is kept for the
/// connector's own error message.
pub(crate) struct JobContext {
    /// The last global error librdkafka reported (a broker down, authentication failed).
    last_error: Mutex<Option<String>>,
}

impl JobContext {
    pub(crate) fn new() -> Self {
        JobContext { last_error: Mutex::new(None) }
    }

    /// The last error librdkafka reported, if any since the last call.
    pub(crate) fn take_error(&self) -> Option<String> {
        self.last_error.lock().unwrap().take()
    }
}

impl ClientContext for JobContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::warn!(facility = fac, "librdkafka: {message}")
            }
            _ => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
        *self.last_error.lock().unwrap() = Some(reason.to_string());
    }
}

impl rdkafka::consumer::ConsumerContext for JobContext {}

/// The cluster's metadata for `topic` (all topics when none), with every broker
/// it advertises checked against the allow-list: a broker on the list must not
/// lead the TaskManager to addresses that are not.
pub(crate) fn metadata<C: ClientContext>(
    client: &Client<C>,
    topic: Option<&str>,
    brokers: &str,
    confinement: &Confinement,
    context: &JobContext,
) -> Result<rdkafka::metadata::Metadata, KafkaConnectError> {
    let metadata = client.fetch_metadata(topic, REQUEST_TIMEOUT).map_err(|e| KafkaConnectError::Unreachable {
        brokers: brokers.to_string(),
        reason: context.take_error().unwrap_or_else(|| e.to_string()),
    })?;
    for b in metadata.brokers() {
        if confinement.check_socket(b.host(), b.port() as u16).is_err() {
            return Err(KafkaConnectError::NotAllowed {
                broker: format!("{}:{}", b.host(), b.port()),
                advertised: format!(" (advertised by {brokers})"),
            });
        }
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists_are_host_port_pairs() {
        assert_eq!(parse_brokers("a:9092, [::1]:9093").unwrap(), [("a".to_string(), 9092), ("::1".to_string(), 9093)]);
        for bad in ["", "a", "a:x", "a:0", "http://a:1", "a b:1", ":1", "a:1,"] {
            assert!(parse_brokers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn brokers_off_the_allow_list_are_refused() {
        let c = Confinement { sockets: Some(vec!["kafka:9092".into()]), ..Default::default() };
        check_brokers(&c, "KAFKA:9092").unwrap();
        let e = check_brokers(&c, "kafka:9092,10.0.0.1:9092").unwrap_err();
        assert_eq!(e.to_string(), "kafka broker 10.0.0.1:9092 is not on the tenant's allow-list");
    }
}
