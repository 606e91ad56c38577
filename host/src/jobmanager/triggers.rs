//! Savepoints as asynchronous operations, as Flink's REST API has them (and
//! so Flink's own CLI): `POST /jobs/{id}/savepoints` or `/stop` answers a
//! trigger id at once, and `GET /jobs/{id}/savepoints/{trigger}` says whether
//! it completed and where the savepoint is.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Operations kept for their callers to read; past this the oldest finished go.
const KEPT: usize = 1000;
/// Savepoints of one job in progress at once: a caller cannot fill the store
/// (and starve other tenants' triggers) by firing requests at one job.
pub const PER_JOB: usize = 8;

/// How a triggered savepoint went: in progress, its location (as the caller is
/// shown it), or the refusal (status and one line).
pub type Outcome = Option<Result<String, (u16, String)>>;

/// The savepoint operations the API started, newest last.
#[derive(Default)]
pub struct Triggers {
    ops: Mutex<VecDeque<Op>>,
}

struct Op {
    job: String,
    trigger: String,
    outcome: Outcome,
}

impl Triggers {
    /// Records a new operation on `job`; answers its trigger id, or `None` when
    /// [`PER_JOB`] of the job's or [`KEPT`] in all are still in progress.
    pub fn start(&self, job: &str) -> Option<String> {
        let mut ops = self.ops.lock().unwrap();
        if ops.iter().filter(|o| o.job == job && o.outcome.is_none()).count() >= PER_JOB {
            return None;
        }
        if ops.len() >= KEPT {
            let finished = ops.iter().position(|o| o.outcome.is_some())?;
            ops.remove(finished);
        }
        let trigger = hex::encode(super::tenants::random::<16>());
        ops.push_back(Op { job: job.to_string(), trigger: trigger.clone(), outcome: None });
        Some(trigger)
    }

    /// Records how the operation ended.
    pub fn finish(&self, job: &str, trigger: &str, outcome: Result<String, (u16, String)>) {
        if let Some(op) = self.ops.lock().unwrap().iter_mut().find(|o| o.job == job && o.trigger == trigger) {
            op.outcome = Some(outcome);
        }
    }

    /// How operation `trigger` of `job` goes; `None` if there is no such operation.
    pub fn get(&self, job: &str, trigger: &str) -> Option<Outcome> {
        self.ops.lock().unwrap().iter().find(|o| o.job == job && o.trigger == trigger).map(|o| o.outcome.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_found_by_job_and_trigger_and_finished_ones_make_room() {
        let t = Triggers::default();
        let a = t.start("j1").unwrap();
        assert_eq!(t.get("j1", &a), Some(None));
        assert_eq!(t.get("j2", &a), None, "another job's trigger is unknown");
        t.finish("j1", &a, Ok("/s/1".into()));
        assert_eq!(t.get("j1", &a), Some(Some(Ok("/s/1".into()))));
        for _ in 0..PER_JOB {
            t.start("j1").unwrap();
        }
        assert!(t.start("j1").is_none(), "{PER_JOB} of one job in progress: no more of it");
        for i in PER_JOB + 1..KEPT {
            t.start(&format!("j{i}")).unwrap();
        }
        assert!(t.start("j-last").is_some(), "the finished one made room");
        assert_eq!(t.get("j1", &a), None);
        assert!(t.start("j-more").is_none(), "{KEPT} in progress: no more");
    }
}
