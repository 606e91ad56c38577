//! TaskManager enrolment, as kubelet TLS bootstrapping does it: an admin
//! creates a join token (`eddy taskmanager-token create`, expiring, revocable);
//! a TaskManager that has only the cluster's `ca.pem` and the token sends a CSR
//! on a connection without a certificate, and gets a certificate naming a new
//! identity (`tm-N`, never given twice) and the TaskManager role, valid for
//! `--taskmanager-cert-lifetime`. It renews it on its registered connection
//! before it expires. Revoking an identity (`eddy revoke-taskmanager`) refuses
//! its certificates from then on: the CA key, which signs them, stays here.
//!
//! Tokens are `eddyjoin_ID_SECRET`; the database keeps the secret's sha256
//! only. Tokens and identities are kept in memory for the checks and in the
//! database for restarts, written there first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::db::{Db, DbError, Table};
use super::now_ms;
use super::tenants::{new_secret, random, secret_matches};
use crate::api::{CreateJoinToken, CreatedJoinToken, JoinTokenInfo, RevokedTaskManager};
use crate::net::tls::valid_identity;
use crate::net::{ClusterCa, TlsError};
use crate::protocol::Enrolled;

/// A join token lives a day unless told otherwise.
const DEFAULT_TTL: Duration = Duration::from_secs(86_400);
/// And a year at most.
const MAX_TTL: Duration = Duration::from_secs(365 * 86_400);

/// Why an enrolment, renewal or token operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// Not a token of this cluster (or not a token at all).
    #[error("unknown join token")]
    UnknownToken,
    /// A token past its expiry.
    #[error("join token {0} expired")]
    TokenExpired(String),
    /// A revoked token.
    #[error("join token {0} was revoked")]
    TokenRevoked(String),
    /// A revoked TaskManager asked for a certificate.
    #[error("TaskManager {0} was revoked")]
    Revoked(String),
    /// No such token or identity.
    #[error("no {kind} {name}")]
    NotFound {
        /// `join token` or `TaskManager`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A bad request: a description, a lifetime.
    #[error("{0}")]
    Invalid(String),
    /// The CSR, or signing.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A token as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredToken {
    info: JoinTokenInfo,
    /// sha256 of the secret, hex.
    hash: String,
}

/// An identity given at enrolment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Identity {
    /// When it was given (ms since the epoch).
    enrolled: u64,
    /// The join token it came with.
    token: String,
    /// When it was revoked, if it was.
    revoked: Option<u64>,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, StoredToken>,
    identities: HashMap<String, Identity>,
    /// The number of the next identity (`tm-N`): one more than any given.
    next: u64,
}

/// Join tokens, identities, and the CA that signs TaskManagers' certificates.
pub struct Enrolment {
    ca: ClusterCa,
    /// How long a TaskManager's certificate is valid.
    lifetime: Duration,
    inner: Mutex<Inner>,
}

impl Enrolment {
    /// Loads tokens and identities from the database.
    pub fn open(db: &Db, ca: ClusterCa, lifetime: Duration) -> Result<Enrolment, EnrolError> {
        let mut inner = Inner { next: 1, ..Inner::default() };
        for (id, t) in db.scan::<StoredToken>(Table::JoinTokens, "")? {
            inner.tokens.insert(id, t);
        }
        for (id, identity) in db.scan::<Identity>(Table::Identities, "")? {
            if let Some(n) = id.strip_prefix("tm-").and_then(|n| n.parse::<u64>().ok()) {
                inner.next = inner.next.max(n.saturating_add(1));
            }
            inner.identities.insert(id, identity);
        }
        Ok(Enrolment { ca, lifetime, inner: Mutex::new(inner) })
    }

    /// The CA (the HTTP API's certificate is signed by it too).
    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    /// Creates a join token; its secret is in the answer and nowhere else.
    pub fn create_token(&self, db: &Db, request: CreateJoinToken) -> Result<CreatedJoinToken, EnrolError> {
        if request.description.len() > 200 || request.description.contains(['\n', '\r']) {
            return Err(EnrolError::Invalid("a token's description is one line of at most 200 bytes".into()));
        }
        let ttl = request.ttl_seconds.map_or(DEFAULT_TTL, Duration::from_secs);
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(EnrolError::Invalid(format!("a join token lives 1 to {} seconds", MAX_TTL.as_secs())));
        }
        let id = hex::encode(random::<6>());
        let (secret, hash) = new_secret();
        let created = now_ms();
        let info = JoinTokenInfo {
            id: id.clone(),
            description: request.description,
            created,
            expires: created + ttl.as_millis() as u64,
            revoked: false,
            enrolled: 0,
        };
        let stored = StoredToken { info: info.clone(), hash };
        db.put(Table::JoinTokens, &id, &stored)?;
        self.inner.lock().unwrap().tokens.insert(id.clone(), stored);
        Ok(CreatedJoinToken { token: format!("eddyjoin_{id}_{secret}"), info })
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Vec<JoinTokenInfo> {
        let mut all: Vec<JoinTokenInfo> = self.inner.lock().unwrap().tokens.values().map(|t| t.info.clone()).collect();
        all.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        all
    }

    /// Revokes a token: no TaskManager enrols with it from now on (those that did keep their certificates).
    pub fn revoke_token(&self, db: &Db, id: &str) -> Result<JoinTokenInfo, EnrolError> {
        let mut stored = self.inner.lock().unwrap().tokens.get(id).cloned().ok_or_else(|| EnrolError::NotFound { kind: "join token", name: id.into() })?;
        stored.info.revoked = true;
        db.put(Table::JoinTokens, id, &stored)?;
        if let Some(t) = self.inner.lock().unwrap().tokens.get_mut(id) {
            t.info.revoked = true;
        }
        Ok(stored.info)
    }

    /// A TaskManager with `token` asks for a certificate for the key of `csr`:
    /// the token is checked, a new identity given and recorded, and signed.
    /// The lock is not held across the database write (a network round trip
    /// with PostgreSQL): admissions check revocations under it.
    pub fn enrol(&self, db: &Db, token: &str, csr: &str) -> Result<Enrolled, EnrolError> {
        let (id, secret) = token.strip_prefix("eddyjoin_").and_then(|t| t.split_once('_')).ok_or(EnrolError::UnknownToken)?;
        let identity = {
            let mut inner = self.inner.lock().unwrap();
            let stored = inner.tokens.get(id).filter(|t| secret_matches(secret, &t.hash)).ok_or(EnrolError::UnknownToken)?;
            if stored.info.revoked {
                return Err(EnrolError::TokenRevoked(id.into()));
            }
            if now_ms() >= stored.info.expires {
                return Err(EnrolError::TokenExpired(id.into()));
            }
            // Taken now, whatever happens next: an identity is never given twice.
            inner.next = inner.next.saturating_add(1);
            format!("tm-{}", inner.next - 1)
        };
        let certificate = self.ca.sign_taskmanager(csr, &identity, self.lifetime)?;
        let record = Identity { enrolled: now_ms(), token: id.to_string(), revoked: None };
        let mut used = self.inner.lock().unwrap().tokens.get(id).cloned().ok_or(EnrolError::UnknownToken)?;
        used.info.enrolled += 1;
        db.write(&[
            super::db::Change::Put(Table::Identities, &identity, super::db::json(&record)),
            super::db::Change::Put(Table::JoinTokens, id, super::db::json(&used)),
        ])?;
        let mut inner = self.inner.lock().unwrap();
        if let Some(t) = inner.tokens.get_mut(id) {
            t.info.enrolled += 1;
        }
        inner.identities.insert(identity.clone(), record);
        Ok(Enrolled { identity, certificate })
    }

    /// A new certificate for a registered TaskManager's new key, unless it was revoked.
    pub fn renew(&self, identity: &str, csr: &str) -> Result<Enrolled, EnrolError> {
        if self.revoked(identity) {
            return Err(EnrolError::Revoked(identity.into()));
        }
        let certificate = self.ca.sign_taskmanager(csr, identity, self.lifetime)?;
        Ok(Enrolled { identity: identity.to_string(), certificate })
    }

    /// Revokes an identity: its certificates are refused from now on.
    pub fn revoke_taskmanager(&self, db: &Db, id: &str) -> Result<RevokedTaskManager, EnrolError> {
        if !valid_identity(id) {
            return Err(EnrolError::NotFound { kind: "TaskManager", name: id.into() });
        }
        // An identity the database does not know (a certificate signed before
        // enrolment was recorded, or by an older JobManager) can be revoked too.
        let mut record = self.inner.lock().unwrap().identities.get(id).cloned().unwrap_or(Identity { enrolled: 0, token: String::new(), revoked: None });
        let revoked = *record.revoked.get_or_insert_with(now_ms);
        db.put(Table::Identities, id, &record)?;
        self.inner.lock().unwrap().identities.insert(id.to_string(), record);
        Ok(RevokedTaskManager { id: id.to_string(), revoked })
    }

    /// Whether TaskManager `id` was revoked.
    pub fn revoked(&self, id: &str) -> bool {
        self.inner.lock().unwrap().identities.get(id).is_some_and(|i| i.revoked.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tls::{new_csr, role_of, Role};

    fn enrolment() -> (tempfile::TempDir, Db, Enrolment) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let ca = ClusterCa::load_or_create(dir.path()).unwrap();
        let e = Enrolment::open(&db, ca, Duration::from_secs(60)).unwrap();
        (dir, db, e)
    }

    fn role(pem: &str) -> Option<Role> {
        let der: rustls::pki_types::CertificateDer = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
        role_of(&der)
    }

    #[test]
    fn a_token_gives_new_identities_and_its_revocation_or_expiry_ends_that() {
        let (dir, db, e) = enrolment();
        let made = e.create_token(&db, CreateJoinToken::default()).unwrap();
        let (_, csr) = new_csr().unwrap();
        let first = e.enrol(&db, &made.token, &csr).unwrap();
        let second = e.enrol(&db, &made.token, &csr).unwrap();
        assert_eq!((first.identity.as_str(), second.identity.as_str()), ("tm-1", "tm-2"));
        assert_eq!(role(&first.certificate), Some(Role::TaskManager("tm-1".into())));
        assert_eq!(e.tokens()[0].enrolled, 2);

        // The token with its last character changed (to another: one in sixteen ends in 0).
        let other = if made.token.ends_with('0') { '1' } else { '0' };
        let wrong = format!("{}{other}", &made.token[..made.token.len() - 1]);
        assert!(matches!(e.enrol(&db, &wrong, &csr), Err(EnrolError::UnknownToken)));
        assert!(matches!(e.enrol(&db, "garbage", &csr), Err(EnrolError::UnknownToken)));
        assert!(matches!(e.enrol(&db, &made.token, "not a csr"), Err(EnrolError::Tls(TlsError::BadCsr(_)))));

        e.revoke_token(&db, &made.info.id).unwrap();
        assert!(matches!(e.enrol(&db, &made.token, &csr), Err(EnrolError::TokenRevoked(_))));
        e.revoke_taskmanager(&db, "tm-1").unwrap();
        assert!(matches!(e.renew("tm-1", &csr), Err(EnrolError::Revoked(_))));
        assert!(e.renew("tm-2", &csr).is_ok());

        // A restart keeps all of it, and never gives an identity twice.
        drop(e);
        let ca = ClusterCa::load(dir.path()).unwrap();
        let e = Enrolment::open(&db, ca, Duration::from_secs(60)).unwrap();
        assert!(e.revoked("tm-1") && !e.revoked("tm-2"));
        let another = e.create_token(&db, CreateJoinToken { ttl_seconds: Some(1), ..Default::default() }).unwrap();
        assert_eq!(e.enrol(&db, &another.token, &csr).unwrap().identity, "tm-3");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(e.enrol(&db, &another.token, &csr), Err(EnrolError::TokenExpired(_))));
        assert!(e.create_token(&db, CreateJoinToken { ttl_seconds: Some(0), ..Default::default() }).is_err());
    }

    #[test]
    fn the_jobmanager_certificate_names_no_taskmanager() {
        let (dir, _db, _e) = enrolment();
        let jm = ClusterCa::load(dir.path()).unwrap().issue_jobmanager().unwrap();
        assert_eq!(jm.role(), Some(Role::JobManager));
    }
}
