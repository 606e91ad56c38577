//! Credentials of Kafka connections, kept by the cluster's operator in a file
//! (`--secrets FILE` of the JobManager and of `eddy run`) and named by jobs:
//! a job says `secret = "prod"`, never a password, so no credential is in its
//! arguments, its graph or anything the API shows. A secret may be given to
//! one tenant; the JobManager resolves a job's secrets when it deploys it and
//! sends them to the TaskManagers with the deployment (over mutual TLS).
//!
//! ```toml
//! [kafka.prod]
//! tenant = "acme"                    # only acme's jobs may use it
//! security-protocol = "sasl-ssl"     # plaintext | ssl | sasl-plaintext | sasl-ssl
//! sasl-mechanism = "scram-sha-512"   # plain | scram-sha-256 | scram-sha-512
//! username = "acme-etl"
//! password = "..."
//! ca-file = "/etc/eddy/kafka-ca.pem" # read by the JobManager; TaskManagers get the PEM (or ca-pem = "…")
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How a connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityProtocol {
    /// Neither encrypted nor authenticated.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication, unencrypted.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaslMechanism {
    /// User name and password in the clear (use it over TLS).
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// One named secret: how to connect and as whom.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KafkaSecret {
    /// The tenant whose jobs may use it; none: jobs of no tenant (an admin's,
    /// or the embedded cluster's).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Plaintext, TLS, SASL or both.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    /// With SASL: the mechanism.
    #[serde(default)]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// With SASL: the user.
    #[serde(default)]
    pub username: Option<String>,
    /// With SASL: the password.
    #[serde(default)]
    pub password: Option<String>,
    /// With TLS: certificates (PEM) of the authorities that sign the brokers'
    /// certificates; none: the system's.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The file's way to give `ca_pem`: read into it when the file is loaded,
    /// so that TaskManagers need no copy; never sent.
    #[serde(default, skip_serializing)]
    ca_file: Option<PathBuf>,
}

/// Secrets never reach a log: a deployment or a task's settings may be printed.
impl fmt::Debug for KafkaSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSecret")
            .field("tenant", &self.tenant)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("username", &self.username.as_ref().map(|_| "…"))
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl KafkaSecret {
    /// Sets what it says on a client's configuration.
    pub(crate) fn apply(&self, c: &mut ClientConfig) {
        c.set("security.protocol", self.security_protocol.name());
        if let Some(m) = self.sasl_mechanism {
            c.set("sasl.mechanism", m.name());
        }
        if let Some(u) = &self.username {
            c.set("sasl.username", u);
        }
        if let Some(p) = &self.password {
            c.set("sasl.password", p);
        }
        if let Some(pem) = &self.ca_pem {
            c.set("ssl.ca.pem", pem);
        }
    }

    fn check(&self, name: &str) -> Result<(), SecretsError> {
        let bad = |why: &str| Err(SecretsError::Invalid { name: name.to_string(), why: why.to_string() });
        let sasl = self.security_protocol.sasl();
        if sasl && (self.sasl_mechanism.is_none() || self.username.is_none() || self.password.is_none()) {
            return bad("a SASL protocol needs sasl-mechanism, username and password");
        }
        if !sasl && (self.sasl_mechanism.is_some() || self.username.is_some() || self.password.is_some()) {
            return bad("sasl-mechanism, username and password need a SASL security-protocol");
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLayout {
    #[serde(default)]
    kafka: BTreeMap<String, KafkaSecret>,
}

/// The secrets a cluster knows, by name.
#[derive(Debug, Clone, Default)]
pub struct SecretsFile {
    kafka: BTreeMap<String, KafkaSecret>,
}

/// A secrets file that cannot be used, or a job's reference that cannot be resolved.
#[derive(Debug, Error)]
pub enum SecretsError {
    /// The file cannot be read.
    #[error("cannot read secrets file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error("secrets file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A secret's settings do not go together.
    #[error("kafka secret {name:?}: {why}")]
    Invalid {
        /// The secret.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A job names a secret that does not exist or is another tenant's (one
    /// message for both: a tenant learns nothing of others' names).
    #[error("unknown kafka secret {0:?}")]
    Unknown(String),
}

impl SecretsFile {
    /// Reads and checks a secrets file; CA files are read now.
    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read { path: path.into(), source })?;
        let layout: FileLayout =
            toml::from_str(&text).map_err(|e| SecretsError::Parse { path: path.into(), message: e.message().to_string() })?;
        let mut kafka = layout.kafka;
        for (name, secret) in &mut kafka {
            if let Some(ca) = secret.ca_file.take() {
                secret.ca_pem = Some(std::fs::read_to_string(&ca).map_err(|source| SecretsError::Read { path: ca, source })?);
            }
            secret.check(name)?;
        }
        Ok(SecretsFile { kafka })
    }

    /// The secrets `names` for a job of `tenant`.
    pub fn for_job<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        tenant: Option<&str>,
    ) -> Result<BTreeMap<String, KafkaSecret>, SecretsError> {
        let mut out = BTreeMap::new();
        for name in names {
            match self.kafka.get(name) {
                Some(s) if s.tenant.as_deref() == tenant => {
                    out.insert(name.to_string(), s.clone());
                }
                _ => return Err(SecretsError::Unknown(name.to_string())),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<SecretsFile, SecretsError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "PEM").unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text.replace("CA", &dir.path().join("ca.pem").display().to_string())).unwrap();
        SecretsFile::load(&path)
    }

    #[test]
    fn secrets_are_the_tenants_own_and_never_printed() {
        let f = file(
            "[kafka.a]\ntenant = \"acme\"\nsecurity-protocol = \"sasl-ssl\"\nsasl-mechanism = \"scram-sha-256\"\n\
             username = \"u\"\npassword = \"hunter2\"\nca-file = \"CA\"\n[kafka.open]\n",
        )
        .unwrap();
        let got = f.for_job(["a"], Some("acme")).unwrap();
        assert_eq!(got["a"].ca_pem.as_deref(), Some("PEM"));
        assert!(!serde_json::to_string(&got["a"]).unwrap().contains("ca-file"), "the JobManager's path is not sent");
        assert!(!format!("{got:?}").contains("hunter2"));
        assert_eq!(f.for_job(["a"], Some("other")).unwrap_err().to_string(), "unknown kafka secret \"a\"");
        assert_eq!(f.for_job(["a"], None).unwrap_err().to_string(), "unknown kafka secret \"a\"");
        assert!(f.for_job(["open"], None).is_ok());
        assert!(f.for_job(["nope"], None).is_err());
    }

    #[test]
    fn bad_secrets_are_refused_with_their_name() {
        let e = file("[kafka.x]\nsecurity-protocol = \"sasl-plaintext\"\n").unwrap_err();
        assert_eq!(e.to_string(), "kafka secret \"x\": a SASL protocol needs sasl-mechanism, username and password");
        assert!(file("[kafka.x]\npasword = \"p\"\n").unwrap_err().to_string().contains("unknown field"));
    }
}
