//! Cluster networking: QUIC endpoints with mutual TLS, and the length-prefixed
//! JSON messages that the JobManager and TaskManagers exchange.

pub mod codec;
pub mod frame;
pub mod https;
pub mod tls;

use std::net::SocketAddr;

pub use tls::{ClusterCa, NodeIdentity, TlsError};

/// The async runtime of a cluster process: networking only (tasks run on their
/// own threads), so two workers are enough.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().worker_threads(2).build()
}

/// A QUIC endpoint that both accepts and opens cluster connections.
pub fn endpoint(bind: SocketAddr, identity: &NodeIdentity) -> anyhow::Result<quinn::Endpoint> {
    let mut endpoint = quinn::Endpoint::server(identity.server_config()?, bind)
        .map_err(|e| anyhow::anyhow!("cannot bind QUIC endpoint {bind}: {e}"))?;
    endpoint.set_default_client_config(identity.client_config()?);
    Ok(endpoint)
}

/// Connects to a cluster peer; the TLS handshake proves both are members.
pub async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr) -> anyhow::Result<quinn::Connection> {
    connect_within(endpoint, addr, std::time::Duration::from_secs(10)).await
}

/// Connects to a cluster peer, giving up after `timeout`.
pub async fn connect_within(endpoint: &quinn::Endpoint, addr: SocketAddr, timeout: std::time::Duration) -> anyhow::Result<quinn::Connection> {
    let connecting = endpoint.connect(addr, tls::CLUSTER_NAME)?;
    let connection = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {addr} timed out"))??;
    Ok(connection)
}
