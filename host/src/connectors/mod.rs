//! Sources and sinks. They run natively in the host: the host opens the
//! sockets and files, never the guest.

mod confine;
mod sinks;
mod sources;

pub use confine::{ConfineError, Confinement, Files, PathRole};
pub use sinks::{FileSink, PrintSink};
pub use sources::{create_source, Source};

/// Records per batch that a source aims for, in bytes.
pub(crate) const SOURCE_BATCH_BYTES: usize = 64 * 1024;

/// Longest line a text source accepts: a file or peer without line breaks must not
/// grow the host's memory without bound.
pub const MAX_LINE_BYTES: usize = 16 << 20;
