//! Cluster networking: QUIC endpoints with mutual TLS, and the length-prefixed
//! JSON messages that the JobManager and TaskManagers exchange.

pub mod codec;
pub mod frame;
pub mod https;
pub mod tls;

use std::net::SocketAddr;

pub use tls::{peer_role, Clients, ClusterCa, NodeIdentity, Role, TlsError, JOBMANAGER_NAME, TASKMANAGER_NAME};

/// The async runtime of a cluster process: networking only (tasks run on their
/// own threads), so two workers are enough.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().worker_threads(2).build()
}

/// A QUIC endpoint that both accepts (`clients`) and opens cluster connections.
pub fn endpoint(bind: SocketAddr, identity: &NodeIdentity, clients: Clients) -> anyhow::Result<quinn::Endpoint> {
    let mut endpoint = quinn::Endpoint::server(identity.server_config(clients)?, bind)
        .map_err(|e| anyhow::anyhow!("cannot bind QUIC endpoint {bind}: {e}"))?;
    endpoint.set_default_client_config(identity.client_config()?);
    Ok(endpoint)
}

/// Connects to a cluster peer that must hold a certificate naming `name`
/// (`JOBMANAGER_NAME` or `TASKMANAGER_NAME`); the TLS handshake proves both are members.
pub async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr, name: &str) -> anyhow::Result<quinn::Connection> {
    connect_within(endpoint, addr, name, std::time::Duration::from_secs(10)).await
}

/// `connect`, giving up after `timeout`.
pub async fn connect_within(endpoint: &quinn::Endpoint, addr: SocketAddr, name: &str, timeout: std::time::Duration) -> anyhow::Result<quinn::Connection> {
    connect_with(endpoint, None, addr, name, timeout).await
}

/// `connect_within`, presenting the certificate of `config` (none: the endpoint's default).
pub async fn connect_with(
    endpoint: &quinn::Endpoint,
    config: Option<quinn::ClientConfig>,
    addr: SocketAddr,
    name: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<quinn::Connection> {
    let connecting = match config {
        Some(config) => endpoint.connect_with(config, addr, name)?,
        None => endpoint.connect(addr, name)?,
    };
    let connection = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {addr} timed out"))??;
    Ok(connection)
}
