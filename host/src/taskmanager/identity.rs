//! A TaskManager's certificate: obtained by enrolling with a join token (or
//! kept in `--state-dir` from an earlier run), renewed on the registered
//! connection at two thirds of its life. Its key is made here and never sent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use crate::net::{self, codec, tls, NodeIdentity};
use crate::protocol::{Enrolled, ToJobManager};

/// What a TaskManager proves itself with.
#[derive(Clone)]
pub struct Credentials {
    /// The identity its certificate names (`tm-7`).
    pub identity: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    key_pem: String,
    /// The cluster CA (PEM), trusted for every peer.
    ca_pem: String,
}

/// The certificate and key files in a TaskManager's state directory.
fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("taskmanager.pem"), dir.join("taskmanager.key"))
}

impl Credentials {
    /// The TLS identity.
    pub fn node(&self) -> anyhow::Result<NodeIdentity> {
        NodeIdentity::from_pem(&self.cert_pem, &self.key_pem, &self.ca_pem).map_err(|e| anyhow::anyhow!("the TaskManager's {e}"))
    }

    /// The cluster CA it trusts (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// When the certificate expires.
    pub fn expires(&self) -> SystemTime {
        tls::expiry(&self.cert_pem).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// When to renew it: at two thirds of what is left of its life.
    pub fn renew_in(&self) -> Duration {
        self.expires().duration_since(SystemTime::now()).unwrap_or_default() * 2 / 3
    }

    fn from_enrolled(enrolled: Enrolled, key: rcgen::KeyPair, ca_pem: &str) -> anyhow::Result<Credentials> {
        let credentials = Credentials { identity: enrolled.identity, cert_pem: enrolled.certificate, key_pem: key.serialize_pem(), ca_pem: ca_pem.to_string() };
        // What the JobManager signed must be what a peer will check.
        match credentials.node()?.role() {
            Some(net::Role::TaskManager(id)) if id == credentials.identity => Ok(credentials),
            _ => bail!("the JobManager sent a certificate that does not name TaskManager {}", credentials.identity),
        }
    }

    /// Keeps the certificate and key in `dir` (the key readable by its owner only).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (cert, key) = files(dir);
        // Written aside and renamed: a crash leaves the old pair or the new one.
        let key_tmp = key.with_extension("key.tmp");
        let _ = std::fs::remove_file(&key_tmp);
        tls::write_private(&key_tmp, self.key_pem.as_bytes()).with_context(|| format!("cannot write {}", key_tmp.display()))?;
        let cert_tmp = cert.with_extension("pem.tmp");
        std::fs::write(&cert_tmp, &self.cert_pem).with_context(|| format!("cannot write {}", cert_tmp.display()))?;
        std::fs::rename(&key_tmp, &key).and_then(|_| std::fs::rename(&cert_tmp, &cert)).with_context(|| format!("cannot replace {}", cert.display()))?;
        Ok(())
    }

    /// The pair kept in `dir`, if there is one that is still valid.
    pub fn load(dir: &Path, ca_pem: &str) -> anyhow::Result<Option<Credentials>> {
        let (cert, key) = files(dir);
        if !cert.exists() {
            return Ok(None);
        }
        let cert_pem = std::fs::read_to_string(&cert).with_context(|| format!("cannot read {}", cert.display()))?;
        let key_pem = std::fs::read_to_string(&key).with_context(|| format!("cannot read {}", key.display()))?;
        let credentials = Credentials { identity: String::new(), cert_pem, key_pem, ca_pem: ca_pem.to_string() };
        let Some(net::Role::TaskManager(identity)) = credentials.node().with_context(|| format!("in {}", dir.display()))?.role() else {
            bail!("{} is not a TaskManager certificate", cert.display());
        };
        if credentials.expires() <= SystemTime::now() {
            return Ok(None);
        }
        // A key that is not the certificate's (a crash between the two renames of
        // `save`) is no identity: enrol again.
        if let Err(e) = credentials.node()?.client_config() {
            tracing::warn!("the certificate and key in {} do not go together ({e}); enrolling again", dir.display());
            return Ok(None);
        }
        Ok(Some(Credentials { identity, ..credentials }))
    }
}

/// Asks the JobManager at `jobmanager` for a certificate with a join token,
/// on a connection without one (trusting only `ca_pem` for the JobManager's).
pub async fn enrol(jobmanager: SocketAddr, ca_pem: &str, token: &str) -> anyhow::Result<Credentials> {
    let bind: SocketAddr = if jobmanager.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("an address");
    let mut endpoint = quinn::Endpoint::client(bind).with_context(|| format!("cannot bind a QUIC socket to {bind}"))?;
    endpoint.set_default_client_config(tls::anonymous_client_config(ca_pem)?);
    let connection = net::connect(&endpoint, jobmanager, net::JOBMANAGER_NAME).await?;
    let (key, csr) = tls::new_csr()?;
    let answer: Result<Enrolled, String> = codec::call(&connection, &ToJobManager::Enrol { token: token.trim().to_string(), csr }).await?;
    connection.close(0u32.into(), b"enrolled");
    let enrolled = answer.map_err(|e| anyhow::anyhow!("the JobManager refused the enrolment: {e}"))?;
    Credentials::from_enrolled(enrolled, key, ca_pem)
}

/// Asks for a new certificate of the same identity on the registered connection.
pub async fn renew(connection: &quinn::Connection, ca_pem: &str) -> anyhow::Result<Credentials> {
    let (key, csr) = tls::new_csr()?;
    let answer: Result<Enrolled, String> = codec::call(connection, &ToJobManager::Renew { csr }).await?;
    let enrolled = answer.map_err(|e| anyhow::anyhow!("the JobManager refused the renewal: {e}"))?;
    Credentials::from_enrolled(enrolled, key, ca_pem)
}
