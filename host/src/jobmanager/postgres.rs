//! The JobManager's database on PostgreSQL, shared by a leader and its
//! standbys, with the leadership lease: what Flink keeps in ZooKeeper or
//! Kubernetes ConfigMaps (jobs, checkpoint pointers, id counters, leader
//! election), and Arroyo in PostgreSQL.
//!
//! - `eddy_kv (tbl, key, value)` holds the redb tables' entries as they are;
//! - `eddy_modules (digest, bytes)` the uploaded modules;
//! - `eddy_leader` one row: who leads (a random id per process), its address,
//!   and until when (PostgreSQL's clock, so JobManagers' clocks do not matter).
//!
//! Every JobManager started with `--database` waits until it holds the lease,
//! then loads everything and serves; it renews the lease every quarter of
//! `--leader-lease` and exits when it cannot (a standby has taken over, or
//! could). Every write is fenced: its transaction first locks the lease row
//! where this process still holds it, so a leader that lost the lease (paused,
//! partitioned) cannot write over its successor.
//!
//! tokio-postgres is async; the database API is blocking, so calls run on
//! `offload`'s runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::db::{Change, DbError, Table};

/// A connection to the shared database, as one JobManager process.
#[derive(Clone)]
pub struct Pg {
    /// The connection, made again when it closed (PostgreSQL restarted, a network blip).
    client: Arc<Mutex<Client>>,
    url: Arc<str>,
    /// This process's id in the lease row.
    holder: String,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS eddy_kv (tbl text NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY (tbl, key));
    CREATE TABLE IF NOT EXISTS eddy_modules (digest text PRIMARY KEY, bytes bytea NOT NULL);
    CREATE TABLE IF NOT EXISTS eddy_leader (id int PRIMARY KEY, holder text NOT NULL, address text NOT NULL, until timestamptz NOT NULL);
";

/// Takes or keeps the lease: a row is returned when this process holds it.
const TAKE_LEASE: &str = "
    INSERT INTO eddy_leader (id, holder, address, until) VALUES (1, $1, $2, clock_timestamp() + $3::float8 * interval '1 millisecond')
    ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, address = EXCLUDED.address, until = EXCLUDED.until
    WHERE eddy_leader.until < clock_timestamp() OR eddy_leader.holder = EXCLUDED.holder
    RETURNING holder";

/// Locks the lease row for the transaction, if this process holds the lease.
const FENCE: &str = "SELECT 1 FROM eddy_leader WHERE id = 1 AND holder = $1 AND until > clock_timestamp() FOR SHARE";

fn pg(e: impl std::fmt::Display) -> DbError {
    DbError::postgres(e)
}

/// Runs a query future from blocking code.
fn run<T: Send + 'static>(f: impl std::future::Future<Output = Result<T, DbError>> + Send + 'static) -> Result<T, DbError> {
    crate::offload::run(f).map_err(pg)?
}

impl Pg {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`) and creates the tables if they are missing.
    pub fn connect(url: &str) -> Result<Pg, DbError> {
        let owned = url.to_string();
        let client = run(async move { open(&owned).await })?;
        let holder = hex::encode(super::tenants::random::<12>());
        Ok(Pg { client: Arc::new(Mutex::new(client)), url: url.into(), holder })
    }

    /// The connection, opened again if it closed.
    async fn client<'a>(client: &'a Mutex<Client>, url: &str) -> Result<tokio::sync::MutexGuard<'a, Client>, DbError> {
        let mut guard = client.lock().await;
        if guard.is_closed() {
            tracing::warn!("the connection to PostgreSQL closed; connecting again");
            *guard = open(url).await?;
        }
        Ok(guard)
    }

    /// Takes the lease for `lease` (or renews it); whether this process holds it now.
    pub fn take_lease(&self, address: &str, lease: Duration) -> Result<bool, DbError> {
        let (client, url, holder, address) = (self.client.clone(), self.url.clone(), self.holder.clone(), address.to_string());
        let ms = lease.as_secs_f64() * 1e3;
        run(async move { Ok(!Self::client(&client, &url).await?.query(TAKE_LEASE, &[&holder, &address, &ms]).await.map_err(pg)?.is_empty()) })
    }

    /// Who holds the lease now and for how many more milliseconds, if anyone.
    pub fn leader(&self) -> Result<Option<(String, i64)>, DbError> {
        let (client, url) = (self.client.clone(), self.url.clone());
        run(async move {
            let q = "SELECT address, (extract(epoch FROM until - clock_timestamp()) * 1000)::bigint FROM eddy_leader WHERE id = 1";
            let rows = Self::client(&client, &url).await?.query(q, &[]).await.map_err(pg)?;
            Ok(rows.first().map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Waits until this process holds the lease, trying every `lease / 8`;
    /// says once whom it waits for.
    /// A standby outlives a database that is briefly away: failures are logged and tried again.
    pub fn wait_for_lease(&self, address: &str, lease: Duration) -> Result<(), DbError> {
        let mut said = false;
        loop {
            match self.take_lease(address, lease) {
                Ok(true) => return Ok(()),
                Ok(false) if !said => {
                    let (who, left) = self.leader()?.unwrap_or_default();
                    eprintln!("JobManager: standby; {who} leads (its lease ends in {left} ms unless renewed); waiting to take over");
                    said = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot reach the database for the leadership lease (trying again): {e}"),
            }
            std::thread::sleep(lease / 8);
        }
    }

    /// Renews the lease every `lease / 4` on a thread of its own; when a renewal
    /// finds it taken, or none succeeded for a whole lease, the process exits:
    /// another JobManager leads (or may), and this one must not act any more.
    pub fn keep_lease(&self, address: String, lease: Duration) {
        let me = self.clone();
        let _ = std::thread::Builder::new().name("leader-lease".into()).spawn(move || {
            let mut renewed = Instant::now();
            loop {
                std::thread::sleep(lease / 4);
                match me.take_lease(&address, lease) {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => leadership_lost("another JobManager holds the lease"),
                    Err(e) if renewed.elapsed() >= lease => leadership_lost(&format!("the lease could not be renewed for {lease:?}: {e}")),
                    Err(e) => tracing::warn!("cannot renew the leadership lease (trying again): {e}"),
                }
            }
        });
    }

    /// Applies changes in one transaction, fenced by the lease.
    pub fn write(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        let owned: Vec<(Table, String, Option<String>)> = changes
            .iter()
            .map(|c| match c {
                Change::Put(t, k, v) => (*t, k.to_string(), Some(v.clone())),
                Change::Delete(t, k) => (*t, k.to_string(), None),
            })
            .collect();
        let (client, url, holder) = (self.client.clone(), self.url.clone(), self.holder.clone());
        run(async move {
            let mut client = Self::client(&client, &url).await?;
            let txn = client.transaction().await.map_err(pg)?;
            if txn.query(FENCE, &[&holder]).await.map_err(pg)?.is_empty() {
                return Err(DbError::NotLeader);
            }
            for (table, key, value) in &owned {
                match value {
                    Some(v) => {
                        let q = "INSERT INTO eddy_kv (tbl, key, value) VALUES ($1, $2, $3) ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value";
                        txn.execute(q, &[&table.name(), key, v]).await.map_err(pg)?;
                    }
                    None => {
                        txn.execute("DELETE FROM eddy_kv WHERE tbl = $1 AND key = $2", &[&table.name(), key]).await.map_err(pg)?;
                    }
                }
            }
            txn.commit().await.map_err(pg)
        })
    }

    /// Entries of `table` whose key starts with `prefix`, in byte order of keys (as redb's).
    pub fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, String)>, DbError> {
        let (client, url, prefix) = (self.client.clone(), self.url.clone(), prefix.to_string());
        run(async move {
            let q = r#"SELECT key, value FROM eddy_kv WHERE tbl = $1 AND starts_with(key, $2) ORDER BY key COLLATE "C""#;
            let rows = Self::client(&client, &url).await?.query(q, &[&table.name(), &prefix]).await.map_err(pg)?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// One entry's value.
    pub fn get(&self, table: Table, key: &str) -> Result<Option<String>, DbError> {
        let (client, url, key) = (self.client.clone(), self.url.clone(), key.to_string());
        run(async move {
            let rows = Self::client(&client, &url).await?.query("SELECT value FROM eddy_kv WHERE tbl = $1 AND key = $2", &[&table.name(), &key]).await.map_err(pg)?;
            Ok(rows.first().map(|r| r.get(0)))
        })
    }

    /// Stores a module's bytes, fenced by the lease.
    pub fn put_module(&self, digest: &str, bytes: &[u8]) -> Result<(), DbError> {
        let (client, url, holder, digest, bytes) = (self.client.clone(), self.url.clone(), self.holder.clone(), digest.to_string(), bytes.to_vec());
        run(async move {
            let mut client = Self::client(&client, &url).await?;
            let txn = client.transaction().await.map_err(pg)?;
            if txn.query(FENCE, &[&holder]).await.map_err(pg)?.is_empty() {
                return Err(DbError::NotLeader);
            }
            txn.execute("INSERT INTO eddy_modules (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING", &[&digest, &bytes])
                .await
                .map_err(pg)?;
            txn.commit().await.map_err(pg)
        })
    }

    /// A module's bytes.
    pub fn module(&self, digest: &str) -> Result<Option<Vec<u8>>, DbError> {
        let (client, url, digest) = (self.client.clone(), self.url.clone(), digest.to_string());
        run(async move {
            let rows = Self::client(&client, &url).await?.query("SELECT bytes FROM eddy_modules WHERE digest = $1", &[&digest]).await.map_err(pg)?;
            Ok(rows.first().map(|r| r.get(0)))
        })
    }

    /// The digests of the stored modules.
    pub fn module_digests(&self) -> Result<Vec<String>, DbError> {
        let (client, url) = (self.client.clone(), self.url.clone());
        run(async move {
            let rows = Self::client(&client, &url).await?.query("SELECT digest FROM eddy_modules ORDER BY digest", &[]).await.map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

/// A new connection (its driver on the current runtime), with the tables created if missing.
async fn open(url: &str) -> Result<Client, DbError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!("the connection to PostgreSQL ended: {e}");
        }
    });
    // Two JobManagers starting at once must not both create the tables.
    client.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock(7316); {SCHEMA} COMMIT;")).await.map_err(pg)?;
    Ok(client)
}

/// Ends the process: a JobManager that may not lead must not act.
fn leadership_lost(why: &str) -> ! {
    tracing::error!("lost the leadership: {why}");
    eprintln!("error: this JobManager lost the leadership ({why}); exiting so that the leader acts alone");
    std::process::exit(1)
}
