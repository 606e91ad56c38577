//! What a job's connectors may reach on a hosted cluster: files beneath its
//! tenant's data root, sockets on its tenant's allow-list. The embedded cluster
//! (`eddy run --local`) runs unconfined: it is the user's own machine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The reach of one job's sources and sinks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// Files are resolved beneath this directory and cannot leave it; none: unconfined.
    pub data_root: Option<PathBuf>,
    /// `host:port` entries socket sources may connect to; none: any.
    pub sockets: Option<Vec<String>>,
}
