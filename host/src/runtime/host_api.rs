//! The `host` imports of the `job` world: logging, counters and keyed state
//! of the current key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use super::bindings::eddy::stream::{host, types};
use super::budget::{JobBudget, QuotaError};
use crate::keys;
use crate::state::{Domain, KeyedState, StateError, Timers};

/// Which keys an instance may touch: those of its subtask's key groups.
#[derive(Debug, Clone)]
pub struct KeyScope {
    /// Key groups owned by the subtask.
    pub key_groups: Range<u32>,
    /// Number of key groups of the job.
    pub max_parallelism: u32,
}

/// The key broadcast state is kept under in its own [`KeyedState`]: it is tied to no key.
const BROADCAST_KEY: &[u8] = b"";

/// What the host imports of one instance act on.
pub struct HostState {
    /// Operator name, for log lines.
    operator: Arc<str>,
    /// `None` where keyed state is not allowed (planner, non-keyed chains).
    scope: Option<KeyScope>,
    /// The key that state calls apply to, set by `set-current-key`.
    current_key: Option<Vec<u8>>,
    /// The keyed state of this subtask.
    state: KeyedState,
    /// Its broadcast state: keyed state under the one key [`BROADCAST_KEY`], always in
    /// memory (it is small, and every subtask holds all of it), charged to the same quota.
    broadcast: KeyedState,
    /// The timers of its keys.
    pub(crate) timers: Timers,
    /// The subtask's event-time clock, for `current-watermark`.
    pub(crate) watermark: i64,
    /// Counters added to by the guest, reported with the job's metrics.
    pub(crate) counters: BTreeMap<String, u64>,
    /// The job's quotas.
    budget: Arc<JobBudget>,
    /// The task and subtask running this instance, once known: its log lines
    /// are kept for the JobManager with them (`eddy logs`).
    origin: Option<(usize, u32)>,
}

impl HostState {
    /// Host state for `operator`, with keyed state allowed in `scope`, within `budget`.
    pub fn new(operator: &str, scope: Option<KeyScope>, budget: Arc<JobBudget>) -> Self {
        HostState {
            operator: operator.into(),
            scope,
            current_key: None,
            state: KeyedState::default().with_budget(Some(&budget)),
            broadcast: KeyedState::default().with_budget(Some(&budget)),
            timers: Timers::new(Some(&budget)),
            watermark: i64::MIN,
            counters: BTreeMap::new(),
            budget,
            origin: None,
        }
    }

    /// Says which task and subtask the instance runs, so that its log lines are kept for the JobManager.
    pub fn set_origin(&mut self, task: usize, subtask: u32) {
        self.origin = Some((task, subtask));
    }

    /// The keyed state, for snapshots and restores.
    pub fn state_mut(&mut self) -> &mut KeyedState {
        &mut self.state
    }

    /// The broadcast state, for snapshots and restores.
    pub fn broadcast_mut(&mut self) -> &mut KeyedState {
        &mut self.broadcast
    }

    /// Replaces the (empty) keyed state by one in another backend.
    pub fn set_state(&mut self, state: KeyedState) {
        self.state = state.with_budget(Some(&self.budget));
    }

    /// Makes `key` the current key (a timer of it fires).
    pub(crate) fn set_key(&mut self, key: Vec<u8>) {
        self.current_key = Some(key);
    }

    fn key(&self) -> wasmtime::Result<&[u8]> {
        match &self.current_key {
            Some(k) => Ok(k),
            None => wasmtime::bail!("keyed state used before set-current-key"),
        }
    }

    /// The current key and the state to change, borrowed apart.
    fn key_and_state(&mut self) -> wasmtime::Result<(&[u8], &mut KeyedState)> {
        match &self.current_key {
            Some(k) => Ok((k, &mut self.state)),
            None => wasmtime::bail!("keyed state used before set-current-key"),
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
        let op = &*self.operator;
        // Info and above are kept for `eddy logs` even where this process does not print them.
        let keep = self.origin.filter(|_| !matches!(level, types::Level::Trace | types::Level::Debug));
        let print = guest_level_enabled(level);
        if !(print || keep.is_some()) || !self.budget.admit_log(message.len()) {
            return Ok(());
        }
        if let Some((task, subtask)) = keep {
            let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let level = match level {
                types::Level::Trace => "trace",
                types::Level::Debug => "debug",
                types::Level::Info => "info",
                types::Level::Warn => "warn",
                types::Level::Error => "error",
            }
            .to_string();
            self.budget.keep_log(super::GuestLine { at_ms, level, task, subtask, operator: op.to_string(), message: message.clone() });
        }
        if !print {
            return Ok(());
        }
        match level {
            types::Level::Trace => tracing::trace!(target: "eddy::guest", operator = op, "{message}"),
            types::Level::Debug => tracing::debug!(target: "eddy::guest", operator = op, "{message}"),
            types::Level::Info => tracing::info!(target: "eddy::guest", operator = op, "{message}"),
            types::Level::Warn => tracing::warn!(target: "eddy::guest", operator = op, "{message}"),
            types::Level::Error => tracing::error!(target: "eddy::guest", operator = op, "{message}"),
        }
        Ok(())
    }

    fn counter_add(&mut self, name: String, delta: u64) -> wasmtime::Result<()> {
        if !self.counters.contains_key(&name) {
            self.budget.admit_counter(&name)?;
        }
        let c = self.counters.entry(name).or_default();
        *c = c.saturating_add(delta);
        Ok(())
    }

    fn set_current_key(&mut self, key: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let Some(scope) = &self.scope else {
            return Ok(Err("keyed state is only available on a keyed stream (after key_by)".into()));
        };
        let group = keys::key_group(&key, scope.max_parallelism);
        if !scope.key_groups.contains(&group) {
            return Ok(Err(format!(
                "key {} is in key group {group}, not owned by this subtask (key groups {:?})",
                String::from_utf8_lossy(&key),
                scope.key_groups
            )));
        }
        self.current_key = Some(key);
        Ok(Ok(()))
    }

    fn value_get(&mut self, state: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let (key, store) = self.key_and_state()?;
        trap(store.value_get(key, &state))
    }

    fn value_get_for(&mut self, key: Vec<u8>, state: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        if let Err(refused) = self.set_current_key(key)? {
            return Ok(Err(refused));
        }
        self.value_get(state).map(Ok)
    }

    fn value_set(&mut self, state: String, value: Vec<u8>) -> wasmtime::Result<()> {
        let (key, store) = self.key_and_state()?;
        trap(store.value_set(key, &state, &value))
    }

    fn value_clear(&mut self, state: String) -> wasmtime::Result<()> {
        let (key, store) = self.key_and_state()?;
        trap(store.remove(key, &state))
    }

    fn list_get(&mut self, state: String) -> wasmtime::Result<Vec<Vec<u8>>> {
        let (key, store) = self.key_and_state()?;
        trap(store.list_get(key, &state))
    }

    fn list_add(&mut self, state: String, value: Vec<u8>) -> wasmtime::Result<()> {
        let (key, store) = self.key_and_state()?;
        trap(store.list_add(key, &state, &value))
    }

    fn list_clear(&mut self, state: String) -> wasmtime::Result<()> {
        let (key, store) = self.key_and_state()?;
        trap(store.remove(key, &state))
    }

    fn map_get(&mut self, state: String, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        let (current, store) = self.key_and_state()?;
        trap(store.map_get(current, &state, &key))
    }

    fn map_put(&mut self, state: String, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        let (current, store) = self.key_and_state()?;
        trap(store.map_put(current, &state, &key, &value))
    }

    fn map_remove(&mut self, state: String, key: Vec<u8>) -> wasmtime::Result<()> {
        let (current, store) = self.key_and_state()?;
        trap(store.map_remove(current, &state, &key))
    }

    fn map_entries(&mut self, state: String) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (current, store) = self.key_and_state()?;
        trap(store.map_entries(current, &state))
    }

    fn broadcast_get(&mut self, state: String, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        trap(self.broadcast.map_get(BROADCAST_KEY, &state, &key))
    }

    fn broadcast_put(&mut self, state: String, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        trap(self.broadcast.map_put(BROADCAST_KEY, &state, &key, &value))
    }

    fn broadcast_remove(&mut self, state: String, key: Vec<u8>) -> wasmtime::Result<()> {
        trap(self.broadcast.map_remove(BROADCAST_KEY, &state, &key))
    }

    fn broadcast_entries(&mut self, state: String) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        trap(self.broadcast.map_entries(BROADCAST_KEY, &state))
    }

    fn state_ttl(&mut self, state: String, ttl_ms: Option<u64>) -> wasmtime::Result<()> {
        self.state.set_ttl(&state, ttl_ms.map(std::time::Duration::from_millis));
        Ok(())
    }

    fn register_timer(&mut self, domain: types::TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.to_vec();
        Ok(self.timers.register(domain.into(), timestamp, &key)?)
    }

    fn delete_timer(&mut self, domain: types::TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.to_vec();
        self.timers.delete(domain.into(), timestamp, &key);
        Ok(())
    }

    fn current_watermark(&mut self) -> wasmtime::Result<i64> {
        Ok(self.watermark)
    }
}

/// A state store failure ends the guest call (and fails the task) with the
/// reason; a quota's error stays typed, so that the task's error is its own.
fn trap<T>(r: Result<T, StateError>) -> wasmtime::Result<T> {
    r.map_err(|e| match e {
        StateError::Quota(q) => wasmtime::Error::new::<QuotaError>(q),
        e => wasmtime::Error::msg(e.to_string()),
    })
}

/// Whether the host's log shows guest lines of `level`: lines it would not show cost no log rate.
fn guest_level_enabled(level: types::Level) -> bool {
    match level {
        types::Level::Trace => tracing::enabled!(target: "eddy::guest", tracing::Level::TRACE),
        types::Level::Debug => tracing::enabled!(target: "eddy::guest", tracing::Level::DEBUG),
        types::Level::Info => tracing::enabled!(target: "eddy::guest", tracing::Level::INFO),
        types::Level::Warn => tracing::enabled!(target: "eddy::guest", tracing::Level::WARN),
        types::Level::Error => tracing::enabled!(target: "eddy::guest", tracing::Level::ERROR),
    }
}

impl From<types::TimeDomain> for Domain {
    fn from(d: types::TimeDomain) -> Self {
        match d {
            types::TimeDomain::EventTime => Domain::Event,
            types::TimeDomain::ProcessingTime => Domain::Processing,
        }
    }
}

impl From<Domain> for types::TimeDomain {
    fn from(d: Domain) -> Self {
        match d {
            Domain::Event => types::TimeDomain::EventTime,
            Domain::Processing => types::TimeDomain::ProcessingTime,
        }
    }
}
