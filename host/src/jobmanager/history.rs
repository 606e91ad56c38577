//! Ended jobs, kept in the database so that `eddy list` and `GET /jobs/{id}` still
//! show them after a JobManager restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::db::{Change, Db, DbError, Table};
use super::JobStatus;

/// What is kept of an ended job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobRecord {
    /// Its id.
    #[serde(rename = "jid")]
    pub id: String,
    /// Its plan's name.
    pub name: String,
    /// The tenant that ran it; none: the admin.
    pub tenant: Option<String>,
    /// FINISHED, FAILED or CANCELED.
    pub status: JobStatus,
    /// When it started and ended (ms since the epoch).
    pub start_time: u64,
    /// When it ended.
    pub end_time: u64,
    /// How long it ran, in ms.
    pub duration: u64,
    /// Why it failed.
    pub failure: Option<String>,
    /// Records read by its sources.
    pub records_in: u64,
    /// Records written by its sinks.
    pub records_out: u64,
    /// How often it restarted.
    pub restarts: u32,
}

/// Ended jobs by id.
pub struct History {
    jobs: Mutex<BTreeMap<String, JobRecord>>,
}

impl History {
    /// The ended jobs in the database.
    pub fn load(db: &Db) -> Result<History, DbError> {
        let jobs = db.scan::<JobRecord>(Table::Jobs, "")?.into_iter().collect();
        Ok(History { jobs: Mutex::new(jobs) })
    }

    /// Records an ended job, durably, in the same write that removes it from
    /// the active jobs: a restart either resumes it or shows it ended.
    pub fn record(&self, db: &Db, record: JobRecord) -> Result<(), DbError> {
        let value = super::db::json(&record);
        db.write(&[Change::Put(Table::Jobs, &record.id, value), Change::Delete(Table::ActiveJobs, &record.id)])?;
        self.jobs.lock().unwrap().insert(record.id.clone(), record);
        Ok(())
    }

    /// An ended job.
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        self.jobs.lock().unwrap().get(id).cloned()
    }

    /// The ended jobs `tenant` sees (the admin, `None`, sees all).
    pub fn list(&self, tenant: Option<&str>) -> Vec<JobRecord> {
        let jobs = self.jobs.lock().unwrap();
        jobs.values().filter(|j| tenant.is_none() || j.tenant.as_deref() == tenant).cloned().collect()
    }
}
