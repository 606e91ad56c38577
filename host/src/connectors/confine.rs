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

/// Why a job's graph reaches past its confinement.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// A socket source to a `host:port` not on the allow-list.
    #[error("socket source {0} is not on the tenant's allow-list")]
    Socket(String),
}

impl Confinement {
    /// Checks the socket sources of a graph against the allow-list.
    pub fn check_graph(&self, graph: &crate::runtime::JobGraph) -> Result<(), ConfineError> {
        for v in &graph.vertices {
            if let crate::runtime::VertexKind::SocketSource(s) = &v.kind {
                let addr = format!("{}:{}", s.host, s.port);
                if self.sockets.as_ref().is_some_and(|list| !list.contains(&addr)) {
                    return Err(ConfineError::Socket(addr));
                }
            }
        }
        Ok(())
    }
}
