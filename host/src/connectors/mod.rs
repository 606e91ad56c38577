//! Sources and sinks. They run natively in the host: the host opens the
//! sockets and files, never the guest.

mod confine;
pub mod kafka;
mod sinks;
mod sources;

pub use confine::{ConfineError, Confinement, Files, PathRole};
pub use sinks::{FileSink, PrintSink};
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
    pub client_id: &'a str,
}

impl Reach<'_> {
    /// The secret `name`, when a connector names one.
    pub fn secret(&self, name: Option<&str>) -> Result<Option<kafka::KafkaSecret>, kafka::SecretsError> {
        match name {
            None => Ok(None),
            Some(n) => self.secrets.get(n).cloned().map(Some).ok_or_else(|| kafka::SecretsError::Unknown(n.to_string())),
        }
    }
}

/// Records per batch that a source aims for, in bytes.
pub(crate) const SOURCE_BATCH_BYTES: usize = 64 * 1024;

/// Longest line a text source accepts: a file or peer without line breaks must not
/// grow the host's memory without bound.
pub const MAX_LINE_BYTES: usize = 16 << 20;
