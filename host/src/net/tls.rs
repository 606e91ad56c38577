//! The cluster's identity: a CA that only the JobManager holds, and a
//! certificate per node naming its role. Cluster-internal QUIC is mutually
//! authenticated; what a certificate may do is the role it names:
//!
//! - the JobManager's names `jobmanager.eddy-cluster`, which TaskManagers
//!   expect of the server they register with;
//! - a TaskManager's names `taskmanager.eddy-cluster` (what its peers expect of
//!   a data endpoint) and `ID.taskmanager.eddy-cluster`, its identity. It is
//!   signed by the JobManager from the TaskManager's CSR at enrolment
//!   (`jobmanager/enrolment.rs`) and lives for a bounded time.
//!
//! So a TaskManager's certificate cannot serve as the JobManager's (the name
//! does not match) nor the JobManager's register as a TaskManager (it names no
//! TaskManager identity).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

/// The name the JobManager's certificate carries and TaskManagers expect of it.
pub const JOBMANAGER_NAME: &str = "jobmanager.eddy-cluster";
/// The name every TaskManager's certificate carries and its peers expect.
pub const TASKMANAGER_NAME: &str = "taskmanager.eddy-cluster";
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
    /// A certificate signing request that is not one, or not signed by its key.
    #[error("bad certificate signing request: {0}")]
    BadCsr(String),
    /// A certificate or key file that cannot be used.
    #[error("{0}: {1}")]
    BadCert(PathBuf, String),
}

/// What a certificate of the cluster CA lets its holder be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The JobManager.
    JobManager,
    /// The TaskManager with this identity (`tm-7`).
    TaskManager(String),
}

/// Whether `id` may be a TaskManager identity: what enrolment gives (`tm-N`),
/// so that it is one DNS label and safe in logs and paths.
pub fn valid_identity(id: &str) -> bool {
    (1..=63).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The role a (CA-verified) certificate names; none if it names none, or both.
pub fn role_of(cert: &CertificateDer<'_>) -> Option<Role> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let names: Vec<&str> = parsed
        .subject_alternative_name()
        .ok()??
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    let jobmanager = names.contains(&JOBMANAGER_NAME);
    let identities: Vec<&str> = names.iter().filter_map(|n| n.strip_suffix(TASKMANAGER_NAME)?.strip_suffix('.')).collect();
    match (jobmanager, names.contains(&TASKMANAGER_NAME), identities.as_slice()) {
        (true, false, []) => Some(Role::JobManager),
        (false, true, [id]) if valid_identity(id) => Some(Role::TaskManager(id.to_string())),
        _ => None,
    }
}

/// The role of the peer of a connection, from the certificate the handshake verified.
pub fn peer_role(conn: &quinn::Connection) -> Option<Role> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    role_of(chain.first()?)
}

/// When a certificate (PEM) expires.
pub fn expiry(cert_pem: &str) -> Option<std::time::SystemTime> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der: CertificateDer = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let (_, parsed) = X509Certificate::from_der(der.as_ref()).ok()?;
    let secs = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// A new key and a certificate signing request for it (PEM): what a
/// TaskManager sends to enrol or renew. The key never leaves the TaskManager.
pub fn new_csr() -> Result<(KeyPair, String), TlsError> {
    let key = KeyPair::generate().map_err(setup)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup)?;
    // It asks for nothing: the JobManager decides every name.
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(setup)?;
    Ok((key, csr.pem().map_err(setup)?))
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
    /// The same, as in `ca.pem`.
    cert_pem: String,
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
    /// A new CA: its certificate and key, PEM.
    pub fn generate() -> Result<(String, String), TlsError> {
        let key = KeyPair::generate().map_err(setup)?;
        let cert = ca_params().self_signed(&key).map_err(setup)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The CA of these PEM texts.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Setup(format!("the cluster CA's key: {e}")))?;
        let cert = parse_cert(cert_pem).map_err(|e| TlsError::Setup(format!("the cluster CA's certificate: {e}")))?;
        Ok(ClusterCa { cert, cert_pem: cert_pem.to_string(), key })
    }

    /// Loads `ca.pem` and `ca.key` from `dir`, creating them (key readable
    /// by the owner only) if neither exists: the JobManager's first start.
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa, TlsError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if !cert_path.exists() && !key_path.exists() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let (cert, key) = Self::generate()?;
            write_private(&key_path, key.as_bytes()).map_err(io(&key_path))?;
            std::fs::write(&cert_path, cert).map_err(io(&cert_path))?;
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
        let cert = parse_cert(&cert_pem).map_err(|e| TlsError::BadCa(cert_path.clone(), e))?;
        Ok(ClusterCa { cert, cert_pem, key })
    }

    /// Signs a certificate for `key` with the CA.
    pub fn sign(&self, params: CertificateParams, key: &KeyPair) -> Result<CertificateDer<'static>, TlsError> {
        let issuer = Issuer::new(ca_params(), &self.key);
        Ok(params.signed_by(key, &issuer).map_err(setup)?.der().clone())
    }

    /// The CA's certificate, PEM: what a TaskManager's enrolment answer carries.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A fresh JobManager identity signed by this CA.
    pub fn issue_jobmanager(&self) -> Result<NodeIdentity, TlsError> {
        let key = KeyPair::generate().map_err(setup)?;
        let mut params = CertificateParams::new(vec![JOBMANAGER_NAME.to_string()]).map_err(setup)?;
        params.distinguished_name.push(DnType::CommonName, "Eddy JobManager");
        params.serial_number = Some(serial());
        let cert = self.sign(params, &key)?;
        Ok(NodeIdentity { chain: vec![cert], key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(), ca: self.cert.clone() })
    }

    /// A certificate for TaskManager `identity` valid for `lifetime`, for the
    /// key of `csr_pem` (whose signature proves the TaskManager holds it).
    /// Whatever names the request asks for are ignored: the CA decides them.
    pub fn sign_taskmanager(&self, csr_pem: &str, identity: &str, lifetime: std::time::Duration) -> Result<String, TlsError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| TlsError::BadCsr(e.to_string()))?;
        let names = vec![TASKMANAGER_NAME.to_string(), format!("{identity}.{TASKMANAGER_NAME}")];
        let mut params = CertificateParams::new(names).map_err(setup)?;
        params.distinguished_name.push(DnType::CommonName, identity);
        params.serial_number = Some(serial());
        let now = time::OffsetDateTime::now_utc();
        // A minute of slack for clocks a little apart.
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + lifetime;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = Issuer::new(ca_params(), &self.key);
        Ok(params.signed_by(&csr.public_key, &issuer).map_err(setup)?.pem())
    }
}

/// A random serial: no two certificates of the CA share one.
fn serial() -> SerialNumber {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the operating system gives random bytes");
    // Positive and without a leading zero byte, as DER integers want.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// Writes a new file only its owner can read (refusing one that exists).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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

/// Whether a server lets clients without a certificate in (to enrol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    /// Only clients with a certificate of the cluster CA.
    Certified,
    /// Also clients without one: the JobManager, for enrolment only (`rpc.rs`
    /// lets such a connection ask for nothing else).
    MayEnrol,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(setup)?;
    Ok(Arc::new(roots))
}

fn quic_client(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = tls;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(setup)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    Ok(config)
}

/// A client that trusts the CA in `ca_pem` and has no certificate yet: a
/// TaskManager enrolling.
pub fn anonymous_client_config(ca_pem: &str) -> Result<quinn::ClientConfig, TlsError> {
    let ca = parse_cert(ca_pem).map_err(|e| TlsError::Setup(format!("the cluster CA: {e}")))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(setup)?
        .with_root_certificates(roots(&ca)?)
        .with_no_client_auth();
    quic_client(tls)
}

fn parse_cert(pem: &str) -> Result<CertificateDer<'static>, String> {
    rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())
}

impl NodeIdentity {
    /// An identity from PEM texts: a certificate, its key, and the CA that signed it.
    pub fn from_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<NodeIdentity, String> {
        let cert = parse_cert(cert_pem).map_err(|e| format!("certificate: {e}"))?;
        let key = rustls::pki_types::pem::PemObject::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key: {e}"))?;
        let ca = parse_cert(ca_pem).map_err(|e| format!("CA: {e}"))?;
        Ok(NodeIdentity { chain: vec![cert], key, ca })
    }

    /// The role its certificate names.
    pub fn role(&self) -> Option<Role> {
        role_of(self.chain.first()?)
    }

    /// A server that accepts `clients`.
    pub fn server_config(&self, clients: Clients) -> Result<quinn::ServerConfig, TlsError> {
        let provider = provider();
        let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&self.ca)?, provider.clone());
        let builder = if clients == Clients::MayEnrol { builder.allow_unauthenticated() } else { builder };
        let verifier = builder.build().map_err(setup)?;
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
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup)?
            .with_root_certificates(roots(&self.ca)?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(setup)?;
        quic_client(tls)
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
