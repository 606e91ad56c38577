//! TLS for the JobManager's HTTP API: a certificate from the cluster CA (or the
//! admin's own), and a listener that hands axum only completed TLS connections.
//!
//! Handshakes run in their own tasks with a deadline, so a client that connects
//! and says nothing cannot hold up the accepting of others.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use super::tls::{ClusterCa, TlsError};

/// Longest TLS handshake a client gets.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Completed handshakes waiting for axum to take them.
const ACCEPTED_QUEUE: usize = 64;

fn setup<E: std::fmt::Display>(e: E) -> TlsError {
    TlsError::Setup(e.to_string())
}

/// A certificate and its key, for the HTTP API.
pub struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerCert {
    /// A certificate from the cluster CA for `names` (DNS names or IP addresses).
    pub fn from_ca(ca: &ClusterCa, names: &[String]) -> Result<ServerCert, TlsError> {
        let key = KeyPair::generate().map_err(setup)?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "Eddy JobManager HTTP API");
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.as_str().try_into().map(SanType::DnsName).map_err(setup),
            })
            .collect::<Result<_, _>>()?;
        let cert = ca.sign(params, &key)?;
        Ok(ServerCert { chain: vec![cert], key: PrivatePkcs8KeyDer::from(key.serialize_der()).into() })
    }

    /// The admin's certificate chain and key, PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<ServerCert, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e: rustls::pki_types::pem::Error| TlsError::Setup(format!("{}: {e}", p.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert).map_err(io(cert))?.collect::<Result<Vec<_>, _>>().map_err(io(cert))?;
        if chain.is_empty() {
            return Err(TlsError::Setup(format!("{}: no certificate in it", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(io(key))?;
        Ok(ServerCert { chain, key })
    }

    fn config(self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(setup)?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .map_err(setup)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A TCP listener whose connections come out as TLS streams.
pub struct TlsListener {
    local: SocketAddr,
    accepted: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Serves TLS with `cert` on `listener`.
    pub fn new(listener: TcpListener, cert: ServerCert) -> Result<TlsListener, TlsError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cert.config()?));
        let local = listener.local_addr().map_err(setup)?;
        let (tx, accepted) = tokio::sync::mpsc::channel(ACCEPTED_QUEUE);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!("accepting an HTTP connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, accepted })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(c) => c,
            // The accepting task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
