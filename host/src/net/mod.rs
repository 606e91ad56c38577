//! Cluster networking: QUIC endpoints with mutual TLS, and the length-prefixed
//! JSON messages that the JobManager and TaskManagers exchange.

pub mod codec;
pub mod tls;

use std::net::SocketAddr;

pub use tls::{ClusterCa, NodeIdentity, TlsError};

/// A QUIC endpoint that both accepts and opens cluster connections.
pub fn endpoint(bind: SocketAddr, identity: &NodeIdentity) -> anyhow::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(bind).map_err(|e| anyhow::anyhow!("cannot bind QUIC endpoint {bind}: {e}"))?;
    let mut config = quinn::EndpointConfig::default();
    config.max_udp_payload_size(tls::MAX_UDP_PAYLOAD)?;
    let runtime = quinn::default_runtime().ok_or_else(|| anyhow::anyhow!("no async runtime"))?;
    let mut endpoint = quinn::Endpoint::new(config, Some(identity.server_config()?), socket, runtime)?;
    endpoint.set_default_client_config(identity.client_config()?);
    Ok(endpoint)
}

/// Connects to a cluster peer; the TLS handshake proves both are members.
pub async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr) -> anyhow::Result<quinn::Connection> {
    let connecting = endpoint.connect(addr, tls::CLUSTER_NAME)?;
    let connection = tokio::time::timeout(std::time::Duration::from_secs(10), connecting)
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {addr} timed out"))??;
    Ok(connection)
}
