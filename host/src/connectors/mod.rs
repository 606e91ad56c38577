//! Sources and sinks. They run natively in the host: the host opens the
//! sockets and files, never the guest.

mod confine;
pub mod kafka;
pub mod nexmark;
mod sinks;
mod sources;

pub use confine::{ConfineError, Confinement, Files, PathRole};
pub use sinks::{DiscardSink, FileSink, PrintSink};
pub use sources::{create_source, Source};

/// What a job's connectors may use: where they may reach, the secrets the
/// cluster resolved for the job, and a name for the clients they open.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// Files and sockets of the job's tenant.
    pub confinement: &'a Confinement,
    /// The secrets the job names, resolved by the cluster for its tenant.
    pub secrets: &'a std::collections::BTreeMap<String, kafka::KafkaSecret>,
    /// Names the job's run (job and attempt) in clients' ids, as brokers log them.
    pub run_id: &'a str,
}

impl Reach<'_> {
    /// The secret `name`, when the Kafka `role` (source or sink) names one.
    pub fn kafka_secret(&self, name: Option<&str>, role: &str) -> Result<Option<kafka::KafkaSecret>, crate::task::TaskError> {
        let Some(n) = name else { return Ok(None) };
        match self.secrets.get(n) {
            Some(s) => Ok(Some(s.clone())),
            None => Err(crate::task::TaskError::Kafka(format!("kafka {role}: {}", kafka::SecretsError::Unknown(n.to_string())))),
        }
    }

    /// The id of the client a connector of `vertex` opens in `subtask`.
    pub fn client_id(&self, vertex: u32, subtask: u32) -> String {
        format!("eddy-{}-v{vertex}-{subtask}", self.run_id)
    }
}

/// Records per batch that a source aims for, in bytes.
pub(crate) const SOURCE_BATCH_BYTES: usize = 64 * 1024;

/// An empty batch with room for a whole one, so that filling it does not reallocate: each
/// emitted batch is replaced by one of these, as one grown from nothing again copied every
/// byte a second time on the way.
pub(crate) fn batch_buffer() -> Vec<u8> {
    Vec::with_capacity(SOURCE_BATCH_BYTES + 4096)
}

/// Longest line a text source accepts: a file or peer without line breaks must not
/// grow the host's memory without bound.
pub const MAX_LINE_BYTES: usize = 16 << 20;
