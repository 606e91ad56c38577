//! The cluster's identity: a CA created on first start (or given), and a
//! certificate per node signed by it. Cluster-internal QUIC is mutually
//! authenticated: a peer without a certificate of this CA is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

/// The name every node's certificate carries and every client expects: the
/// CA, not the address, is what identifies a cluster member.
pub const CLUSTER_NAME: &str = "eddy-cluster";
/// ALPN of Eddy's QUIC protocol.
const ALPN: &[u8] = b"eddy/1";

/// Why the cluster identity cannot be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// Reading or writing the CA files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No CA where one was expected.
    #[error("no cluster CA in {0} (ca.pem and ca.key): start the JobManager with this state directory first, or copy its CA files here")]
    NoCa(PathBuf),
    /// The CA files are not a usable CA.
    #[error("invalid cluster CA in {0}: {1}")]
    BadCa(PathBuf, String),
    /// Certificate generation or TLS configuration failed.
    #[error("tls setup: {0}")]
    Setup(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TlsError {
    let path = path.to_path_buf();
    move |source| TlsError::Io { path: path.clone(), source }
}

fn setup<E: std::fmt::Display>(e: E) -> TlsError {
    TlsError::Setup(e.to_string())
}

/// The cluster CA: its certificate (trusted by every node) and its key (to
/// sign node certificates).
pub struct ClusterCa {
    cert: CertificateDer<'static>,
    key: KeyPair,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Eddy cluster CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    params
}

impl ClusterCa {
    /// Loads `ca.pem` and `ca.key` from `dir`, creating them (key readable
    /// by the owner only) if neither exists: the JobManager's first start.
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa, TlsError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if !cert_path.exists() && !key_path.exists() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let key = KeyPair::generate().map_err(setup)?;
            let cert = ca_params().self_signed(&key).map_err(setup)?;
            write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
            std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
            tracing::info!(dir = %dir.display(), "created a new cluster CA");
        }
        Self::load(dir)
    }

    /// Loads `ca.pem` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<ClusterCa, TlsError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if !cert_path.exists() || !key_path.exists() {
            return Err(TlsError::NoCa(dir.to_path_buf()));
        }
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::BadCa(key_path.clone(), e.to_string()))?;
        let cert = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::BadCa(cert_path.clone(), e.to_string()))?;
        Ok(ClusterCa { cert, key })
    }

    /// Signs a certificate for `key` with the CA.
    pub fn sign(&self, params: CertificateParams, key: &KeyPair) -> Result<CertificateDer<'static>, TlsError> {
        let issuer = Issuer::new(ca_params(), &self.key);
        Ok(params.signed_by(key, &issuer).map_err(setup)?.der().clone())
    }

    /// A fresh node identity signed by this CA.
    pub fn issue(&self) -> Result<NodeIdentity, TlsError> {
        let key = KeyPair::generate().map_err(setup)?;
        let mut params = CertificateParams::new(vec![CLUSTER_NAME.to_string()]).map_err(setup)?;
        params.distinguished_name.push(DnType::CommonName, CLUSTER_NAME);
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(setup)?;
        Ok(NodeIdentity {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            ca: self.cert.clone(),
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

/// A node's certificate and key, and the CA it trusts.
pub struct NodeIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
}

impl NodeIdentity {
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(setup)?;
        Ok(Arc::new(roots))
    }

    /// Accepts only peers with a certificate of the cluster CA.
    pub fn server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let provider = Self::provider();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(setup)?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(setup)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(setup)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport()));
        Ok(config)
    }

    /// Presents this node's certificate and trusts only the cluster CA.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup)?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(setup)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(setup)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport()));
        Ok(config)
    }
}

/// Transport settings of cluster connections. The stream receive window is
/// what a slow consumer lets a producer send ahead, per channel: big enough
/// for a few 32 KiB buffers in flight on loopback, small enough that memory
/// stays bounded under back-pressure.
fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(1 << 20));
    t.receive_window(quinn::VarInt::from_u32(16 << 20));
    t.send_window(16 << 20);
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(4096));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1024));
    t.keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(30_000).into()));
    t
}
