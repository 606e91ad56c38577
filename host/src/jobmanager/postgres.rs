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
//! `--leader-lease` on a connection of its own, and exits when it cannot (a
//! standby has taken over, or could), by a watchdog that does not wait for a
//! hanging query. Every write is fenced: its transaction first locks the lease
//! row where this process still holds it, so a leader that lost the lease
//! (paused, partitioned) cannot write over its successor; the server ends a
//! transaction left open for half a lease, so such a lock cannot hold up a
//! takeover either.
//!
//! tokio-postgres is async; the database API is blocking, so calls run on
//! `offload`'s runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::db::{Change, DbError, Store, Table};

/// A connection to the shared database, as one JobManager process.
#[derive(Clone)]
pub struct Pg {
    /// The connection, made again when it closed (PostgreSQL restarted, a network blip).
    client: Arc<Mutex<Client>>,
    url: Arc<str>,
    /// This process's id in the lease row.
    holder: String,
    /// What each (new) connection is told first: its timeouts.
    settings: Arc<str>,
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
    /// A transaction left open longer than half a `lease` (this process paused
    /// or cut off in the middle of a write) is ended by the server, so that its
    /// lock on the lease row cannot hold up a standby's takeover.
    pub fn connect(url: &str, lease: Duration) -> Result<Pg, DbError> {
        plain_allowed(url)?;
        let settings = format!("SET idle_in_transaction_session_timeout = {};", (lease / 2).as_millis().max(1));
        let holder = hex::encode(super::tenants::random::<12>());
        Pg::open_as(url, holder, settings)
    }

    fn open_as(url: &str, holder: String, settings: String) -> Result<Pg, DbError> {
        let (owned, set) = (url.to_string(), settings.clone());
        let client = run(async move { open(&owned, &set).await })?;
        Ok(Pg { client: Arc::new(Mutex::new(client)), url: url.into(), holder, settings: settings.into() })
    }

    /// The lease of this process, on a connection of its own: renewals never
    /// queue behind a module upload, and each gives up after a quarter of `lease`.
    pub fn lease(&self, address: &str, lease: Duration) -> Result<Lease, DbError> {
        let quarter = (lease / 4).as_millis().max(1);
        let settings = format!("SET statement_timeout = {quarter}; SET lock_timeout = {quarter};");
        let conn = Pg::open_as(&self.url, self.holder.clone(), settings)?;
        Ok(Lease { conn, address: address.to_string(), lease })
    }

    /// The connection, opened again if it closed.
    async fn connection(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, DbError> {
        let mut guard = self.client.lock().await;
        if guard.is_closed() {
            tracing::warn!("the connection to PostgreSQL closed; connecting again");
            *guard = open(&self.url, &self.settings).await?;
        }
        Ok(guard)
    }

    /// Runs `statements` in one transaction that first checks, and locks
    /// `FOR SHARE`, the lease row where this process still holds it.
    async fn fenced<F>(&self, statements: F) -> Result<(), DbError>
    where
        F: for<'t> FnOnce(&'t tokio_postgres::Transaction<'t>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DbError>> + Send + 't>>,
    {
        let mut client = self.connection().await?;
        let txn = client.transaction().await.map_err(pg)?;
        if txn.query(FENCE, &[&self.holder]).await.map_err(pg)?.is_empty() {
            return Err(DbError::NotLeader);
        }
        statements(&txn).await?;
        txn.commit().await.map_err(pg)
    }
}

/// The leadership lease of one JobManager process.
pub struct Lease {
    conn: Pg,
    /// Its cluster address, for the standbys' logs.
    address: String,
    lease: Duration,
}

impl Lease {
    /// Takes the lease (or renews it); whether this process holds it now.
    fn take(&self) -> Result<bool, DbError> {
        let (conn, address, ms) = (self.conn.clone(), self.address.clone(), self.lease.as_secs_f64() * 1e3);
        run(async move { Ok(!conn.connection().await?.query(TAKE_LEASE, &[&conn.holder, &address, &ms]).await.map_err(pg)?.is_empty()) })
    }

    /// Who holds the lease now and for how many more milliseconds, if anyone.
    fn leader(&self) -> Result<Option<(String, i64)>, DbError> {
        let conn = self.conn.clone();
        run(async move {
            let q = "SELECT address, (extract(epoch FROM until - clock_timestamp()) * 1000)::bigint FROM eddy_leader WHERE id = 1";
            let rows = conn.connection().await?.query(q, &[]).await.map_err(pg)?;
            Ok(rows.first().map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Waits until this process holds the lease, trying every `lease / 8`; says
    /// once whom it waits for. A standby outlives a database that is briefly
    /// away: failures are logged and tried again.
    pub fn wait(&self) {
        let mut said = false;
        loop {
            match self.take() {
                Ok(true) => return,
                Ok(false) if !said => {
                    let (who, left) = self.leader().ok().flatten().unwrap_or_default();
                    eprintln!("JobManager: standby; {who} leads (its lease ends in {left} ms unless renewed); waiting to take over");
                    said = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot reach the database for the leadership lease (trying again): {e}"),
            }
            std::thread::sleep(self.lease / 8);
        }
    }

    /// Renews the lease every `lease / 4`, and watches it on a second thread:
    /// when a renewal finds it taken, or none that was sent in the last three
    /// quarters of a lease succeeded (the database's lease, counted from when
    /// it was renewed, would run out soon), the process exits whether or not a
    /// query is still hanging: another JobManager leads (or may), and this one
    /// must not act any more.
    pub fn keep(self) {
        let renewed = Arc::new(std::sync::Mutex::new(Instant::now()));
        let lease = self.lease;
        let watched = renewed.clone();
        let _ = std::thread::Builder::new().name("leader-watchdog".into()).spawn(move || loop {
            std::thread::sleep(lease / 16);
            if watched.lock().unwrap().elapsed() > lease * 3 / 4 {
                leadership_lost(&format!("no renewal of the lease succeeded within {:?}", lease * 3 / 4));
            }
        });
        let _ = std::thread::Builder::new().name("leader-lease".into()).spawn(move || loop {
            std::thread::sleep(lease / 4);
            let sent = Instant::now();
            match self.take() {
                Ok(true) => *renewed.lock().unwrap() = sent,
                Ok(false) => leadership_lost("another JobManager holds the lease"),
                Err(e) => tracing::warn!("cannot renew the leadership lease (trying again): {e}"),
            }
        });
    }
}

/// The shared backend: every write fenced by the lease.
impl Store for Pg {
    /// Applies changes in one transaction, fenced by the lease.
    fn write(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        let owned: Vec<(Table, String, Option<String>)> = changes
            .iter()
            .map(|c| match c {
                Change::Put(t, k, v) => (*t, k.to_string(), Some(v.clone())),
                Change::Delete(t, k) => (*t, k.to_string(), None),
            })
            .collect();
        let me = self.clone();
        run(async move {
            me.fenced(|txn| {
                Box::pin(async move {
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
                    Ok(())
                })
            })
            .await
        })
    }

    /// Entries of `table` whose key starts with `prefix`, in byte order of keys (as redb's).
    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, String)>, DbError> {
        let (me, prefix) = (self.clone(), prefix.to_string());
        run(async move {
            let q = r#"SELECT key, value FROM eddy_kv WHERE tbl = $1 AND starts_with(key, $2) ORDER BY key COLLATE "C""#;
            let rows = me.connection().await?.query(q, &[&table.name(), &prefix]).await.map_err(pg)?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// One entry's value.
    fn get(&self, table: Table, key: &str) -> Result<Option<String>, DbError> {
        let (me, key) = (self.clone(), key.to_string());
        run(async move {
            let rows = me.connection().await?.query("SELECT value FROM eddy_kv WHERE tbl = $1 AND key = $2", &[&table.name(), &key]).await.map_err(pg)?;
            Ok(rows.first().map(|r| r.get(0)))
        })
    }

    /// Stores a module's bytes, fenced by the lease.
    fn put_module(&self, digest: &str, bytes: &[u8]) -> Result<(), DbError> {
        let (me, digest, bytes) = (self.clone(), digest.to_string(), bytes.to_vec());
        run(async move {
            me.fenced(|txn| {
                Box::pin(async move {
                    let q = "INSERT INTO eddy_modules (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING";
                    txn.execute(q, &[&digest, &bytes]).await.map_err(pg)?;
                    Ok(())
                })
            })
            .await
        })
    }

    /// A module's bytes.
    fn module(&self, digest: &str) -> Result<Option<Vec<u8>>, DbError> {
        let (me, digest) = (self.clone(), digest.to_string());
        run(async move {
            let rows = me.connection().await?.query("SELECT bytes FROM eddy_modules WHERE digest = $1", &[&digest]).await.map_err(pg)?;
            Ok(rows.first().map(|r| r.get(0)))
        })
    }

    /// The digests of the stored modules.
    fn modules(&self) -> Result<Vec<String>, DbError> {
        let me = self.clone();
        run(async move {
            let rows = me.connection().await?.query("SELECT digest FROM eddy_modules ORDER BY digest", &[]).await.map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

/// Connections go without TLS (`NoTls`), and carry the cluster CA's key: to a
/// loopback host, or to another only when the URL says `sslmode=disable`, as the
/// admin's statement that the network is private.
fn plain_allowed(url: &str) -> Result<(), DbError> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| DbError::postgres(format!("bad database URL: {e}")))?;
    let local = |h: &tokio_postgres::config::Host| match h {
        tokio_postgres::config::Host::Tcp(name) => name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        tokio_postgres::config::Host::Unix(_) => true,
    };
    if config.get_hosts().iter().all(local) || config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        return Ok(());
    }
    Err(DbError::postgres(
        "this JobManager reaches PostgreSQL without TLS, and the database holds the cluster CA's key: use a loopback host, or add sslmode=disable to the URL to say the network is private",
    ))
}

/// A new connection (its driver on the current runtime) with `settings` applied, and the tables created if missing.
async fn open(url: &str, settings: &str) -> Result<Client, DbError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!("the connection to PostgreSQL ended: {e}");
        }
    });
    client.batch_execute(settings).await.map_err(pg)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_connections_go_to_loopback_unless_the_url_says_the_network_is_private() {
        assert!(plain_allowed("postgres://eddy@127.0.0.1:5432/db").is_ok());
        assert!(plain_allowed("postgres://eddy@localhost/db").is_ok());
        let refused = plain_allowed("postgres://eddy@db.example.com/db").unwrap_err().to_string();
        assert!(refused.contains("without TLS") && refused.contains("sslmode=disable"), "{refused}");
        assert!(plain_allowed("postgres://eddy@db.example.com/db?sslmode=disable").is_ok());
        assert!(plain_allowed("not a url").unwrap_err().to_string().contains("bad database URL"));
    }
}
