//! What user functions see at run time: contexts to emit records, keyed state, and the host's
//! log and counters.

use std::cell::RefCell;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::eddy::stream::host;
use crate::bindings::eddy::stream::types::Level as WitLevel;
pub use crate::bindings::eddy::stream::types::TimeDomain;
use crate::codec;
use crate::ops::{encode_json, Emit, Item, Value};

/// Severity of a log line written with [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very fine-grained detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected but recoverable.
    Warn,
    /// Something failed.
    Error,
}

impl From<Level> for WitLevel {
    fn from(l: Level) -> WitLevel {
        match l {
            Level::Trace => WitLevel::Trace,
            Level::Debug => WitLevel::Debug,
            Level::Info => WitLevel::Info,
            Level::Warn => WitLevel::Warn,
            Level::Error => WitLevel::Error,
        }
    }
}

/// Writes a line into the task's log (host import `log`). Usable from any user function,
/// including plain `map` closures that have no context.
pub fn log(level: Level, message: &str) {
    host::log(level.into(), message);
}

/// [`log`] at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Adds `delta` to this subtask's counter `name`, shown in the job's metrics.
pub fn counter(name: &str, delta: u64) {
    host::counter_add(name, delta);
}

/// Which key the host's state functions currently apply to, and which key the record being
/// processed has. Setting the host key costs a boundary crossing, so it happens lazily: only
/// when user code touches state and the record's key differs from the last one set.
#[derive(Default)]
struct KeyTracker {
    record: Option<Vec<u8>>,
    host: Option<Vec<u8>>,
}

thread_local! {
    static KEYS: RefCell<KeyTracker> = RefCell::new(KeyTracker::default());
}

/// Makes `key` the key of the record about to be processed by a keyed operator.
pub(crate) fn set_record_key(key: &[u8]) {
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        match &mut k.record {
            Some(buf) => {
                buf.clear();
                buf.extend_from_slice(key);
            }
            None => k.record = Some(key.to_vec()),
        }
    });
}

/// Forgets which key the host has, so the next state access sets it again. Called at the
/// start of every export call: the host owns its current key between calls.
pub(crate) fn reset_host_key() {
    KEYS.with(|k| k.borrow_mut().host = None);
}

fn with_record_key<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    KEYS.with(|k| {
        let k = k.borrow();
        f(k.record
            .as_deref()
            .expect("keyed state used outside a keyed operator"))
    })
}

/// Ensures the host's state functions apply to the current record's key.
fn ensure_host_key() -> Result<(), String> {
    set_host_key_or(host::set_current_key, || ())
}

/// `set_and(key)` if the host does not have the record's key yet (a host call that sets
/// it on the way), else `or()`.
fn set_host_key_or<R>(
    set_and: impl FnOnce(&[u8]) -> Result<R, String>,
    or: impl FnOnce() -> R,
) -> Result<R, String> {
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        let k = &mut *k;
        let Some(record) = k.record.as_deref() else {
            return Err(
                "keyed state is only available in a keyed operator (after key_by)".to_string(),
            );
        };
        if k.host.as_deref() == Some(record) {
            return Ok(or());
        }
        let r = set_and(record)?;
        match &mut k.host {
            Some(h) => {
                h.clear();
                h.extend_from_slice(record);
            }
            None => k.host = Some(record.to_vec()),
        }
        Ok(r)
    })
}

/// The context of a non-keyed `process` function: emit with [`Ctx::collect`].
///
/// Emitted values are buffered and sent downstream after the function returns, so they
/// keep the input record's key and timestamp.
pub struct Ctx<O> {
    pub(crate) out: Vec<O>,
    pub(crate) timestamp: Option<i64>,
}

impl<O> Ctx<O> {
    pub(crate) fn new() -> Self {
        Ctx {
            out: Vec::new(),
            timestamp: None,
        }
    }

    /// Emits `value` downstream.
    pub fn collect(&mut self, value: O) {
        self.out.push(value);
    }

    /// The event time of the record being processed, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Writes a line into the task's log.
    pub fn log(&self, level: Level, message: &str) {
        log(level, message);
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        info(message);
    }

    /// Adds `delta` to this subtask's counter `name`.
    pub fn counter(&self, name: &str, delta: u64) {
        counter(name, delta);
    }

    /// Readies the context for a call about a record (or timer) of time `timestamp`.
    pub(crate) fn begin(&mut self, timestamp: Option<i64>) {
        self.out.clear();
        self.timestamp = timestamp;
    }
}

impl<O: Serialize + 'static> Ctx<O> {
    /// Emits what the function collected, each with the key and time of record `r`.
    pub(crate) fn flush(&mut self, r: &Item<'_>, out: &mut dyn Emit) -> Result<(), String> {
        self.flush_as(r.key, r.timestamp, out)
    }

    /// Emits what the function collected, each with `key` and `timestamp`.
    pub(crate) fn flush_as(&mut self, key: Option<&[u8]>, timestamp: Option<i64>, out: &mut dyn Emit) -> Result<(), String> {
        for o in self.out.drain(..) {
            out.emit(Item { key, timestamp, value: Value::Typed(&mut Some(o)), input: 0 })?;
        }
        Ok(())
    }
}

/// The context of a keyed `process` function: a [`Ctx`] (through `Deref`) plus the record's
/// key and state scoped to that key.
pub struct KeyedCtx<K, O> {
    pub(crate) ctx: Ctx<O>,
    pub(crate) _key: PhantomData<fn() -> K>,
}

impl<K, O> std::ops::Deref for KeyedCtx<K, O> {
    type Target = Ctx<O>;
    fn deref(&self) -> &Ctx<O> {
        &self.ctx
    }
}

impl<K, O> std::ops::DerefMut for KeyedCtx<K, O> {
    fn deref_mut(&mut self) -> &mut Ctx<O> {
        &mut self.ctx
    }
}

impl<K, O> KeyedCtx<K, O> {
    pub(crate) fn new() -> Self {
        KeyedCtx { ctx: Ctx::new(), _key: PhantomData }
    }
}

impl<K: DeserializeOwned, O> KeyedCtx<K, O> {
    /// The key of the record being processed, decoded from the record key.
    ///
    /// # Panics
    /// If the record key is not the JSON of a `K`. `key_by` produced it from a `K`, so this
    /// only happens if the host delivers foreign keys; it traps with the decode error.
    pub fn key(&self) -> K {
        with_record_key(|k| codec::decode(k)).unwrap_or_else(|e| panic!("record key: {e}"))
    }
}

/// Registers or deletes (`f`) a timer of the current key.
fn timer(f: fn(TimeDomain, i64), domain: TimeDomain, timestamp: i64) -> Result<(), String> {
    ensure_host_key()?;
    f(domain, timestamp);
    Ok(())
}

/// A timer that fired, as an `on_timer` function sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// The time it was registered for, in ms.
    pub timestamp: i64,
    /// Whether event time (the watermark) or processing time (the wall clock) reached it.
    pub domain: TimeDomain,
}

impl Timer {
    /// The time of what its function emits: an event-time timer's own; none for the wall clock.
    pub(crate) fn output_time(&self) -> Option<i64> {
        (self.domain == TimeDomain::EventTime).then_some(self.timestamp)
    }
}

impl<K, O> KeyedCtx<K, O> {
    /// Calls `on_timer` (see [`crate::KeyedStream::process_with_timers`]) once
    /// the watermark reaches `timestamp`. Timers are per key and timestamp;
    /// they are checkpointed with the key's state.
    pub fn register_event_time_timer(&self, timestamp: i64) -> Result<(), String> {
        timer(host::register_timer, TimeDomain::EventTime, timestamp)
    }

    /// Calls `on_timer` once the wall clock reaches `timestamp` (ms since the Unix epoch).
    pub fn register_processing_time_timer(&self, timestamp: i64) -> Result<(), String> {
        timer(host::register_timer, TimeDomain::ProcessingTime, timestamp)
    }

    /// Deletes an event-time timer of the current key.
    pub fn delete_event_time_timer(&self, timestamp: i64) -> Result<(), String> {
        timer(host::delete_timer, TimeDomain::EventTime, timestamp)
    }

    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&self, timestamp: i64) -> Result<(), String> {
        timer(host::delete_timer, TimeDomain::ProcessingTime, timestamp)
    }

    /// The subtask's current watermark (`i64::MIN` before the first one).
    pub fn current_watermark(&self) -> i64 {
        host::current_watermark()
    }

    /// The wall clock, in ms since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }

    /// Value state `name` of the current key.
    pub fn value_state<S: Serialize + DeserializeOwned>(&self, name: &str) -> ValueState<S> {
        ValueState {
            name: name.to_string(),
            _s: PhantomData,
        }
    }

    /// List state `name` of the current key.
    pub fn list_state<S: Serialize + DeserializeOwned>(&self, name: &str) -> ListState<S> {
        ListState {
            name: name.to_string(),
            _s: PhantomData,
        }
    }

    /// Map state `name` of the current key.
    pub fn map_state<MK, MV>(&self, name: &str) -> MapState<MK, MV>
    where
        MK: Serialize + DeserializeOwned,
        MV: Serialize + DeserializeOwned,
    {
        MapState {
            name: name.to_string(),
            _s: PhantomData,
        }
    }
}

/// A map state's key: JSON, as record keys, so that a key reads the same entry whichever
/// codec wrote it.
pub(crate) fn state_key<T: Serialize + ?Sized>(key: &T) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    encode_json(&mut buf, key)?;
    Ok(buf)
}

/// A state's value, in the instance's codec.
pub(crate) fn state_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    codec::encode_into(&mut buf, value)?;
    Ok(buf)
}

pub(crate) fn state_decode<T: DeserializeOwned>(state: &str, bytes: &[u8]) -> Result<T, String> {
    codec::decode(bytes).map_err(|e| format!("state '{state}': {e}"))
}

/// One JSON value per key, kept by the host. Handles are cheap; the key they apply to is
/// the record's being processed when they are used.
#[derive(Debug, Clone)]
pub struct ValueState<S> {
    name: String,
    _s: PhantomData<fn() -> S>,
}

/// Time-to-live of a state: entries not written for `ttl` read as absent.
fn set_ttl(name: &str, ttl: std::time::Duration) {
    host::state_ttl(name, Some(ttl.as_millis() as u64));
}

impl<S: Serialize + DeserializeOwned> ValueState<S> {
    /// Lets the value expire `ttl` after it was last set (processing time, for every key).
    pub fn with_ttl(self, ttl: std::time::Duration) -> Self {
        set_ttl(&self.name, ttl);
        self
    }

    /// The value, or `None` if never set (or cleared).
    pub fn get(&self) -> Result<Option<S>, String> {
        set_host_key_or(
            |key| host::value_get_for(key, &self.name),
            || host::value_get(&self.name),
        )?
        .map(|b| state_decode(&self.name, &b))
        .transpose()
    }

    /// Replaces the value.
    pub fn set(&self, value: &S) -> Result<(), String> {
        ensure_host_key()?;
        host::value_set(&self.name, &state_value(value)?);
        Ok(())
    }

    /// Removes the value.
    pub fn clear(&self) -> Result<(), String> {
        ensure_host_key()?;
        host::value_clear(&self.name);
        Ok(())
    }
}

/// An append-only list of JSON values per key, kept by the host.
#[derive(Debug, Clone)]
pub struct ListState<S> {
    name: String,
    _s: PhantomData<fn() -> S>,
}

impl<S: Serialize + DeserializeOwned> ListState<S> {
    /// Lets the whole list expire `ttl` after it was last added to.
    pub fn with_ttl(self, ttl: std::time::Duration) -> Self {
        set_ttl(&self.name, ttl);
        self
    }

    /// All elements, oldest first.
    pub fn get(&self) -> Result<Vec<S>, String> {
        ensure_host_key()?;
        host::list_get(&self.name)
            .iter()
            .map(|b| state_decode(&self.name, b))
            .collect()
    }

    /// Appends an element.
    pub fn add(&self, value: &S) -> Result<(), String> {
        ensure_host_key()?;
        host::list_add(&self.name, &state_value(value)?);
        Ok(())
    }

    /// Removes all elements.
    pub fn clear(&self) -> Result<(), String> {
        ensure_host_key()?;
        host::list_clear(&self.name);
        Ok(())
    }
}

/// A map of JSON keys to JSON values per key, kept by the host.
#[derive(Debug, Clone)]
pub struct MapState<MK, MV> {
    name: String,
    _s: PhantomData<fn() -> (MK, MV)>,
}

impl<MK, MV> MapState<MK, MV>
where
    MK: Serialize + DeserializeOwned,
    MV: Serialize + DeserializeOwned,
{
    /// Lets each entry expire `ttl` after it was last put.
    pub fn with_ttl(self, ttl: std::time::Duration) -> Self {
        set_ttl(&self.name, ttl);
        self
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &MK) -> Result<Option<MV>, String> {
        ensure_host_key()?;
        host::map_get(&self.name, &state_key(key)?)
            .map(|b| state_decode(&self.name, &b))
            .transpose()
    }

    /// Sets the value under `key`.
    pub fn put(&self, key: &MK, value: &MV) -> Result<(), String> {
        ensure_host_key()?;
        host::map_put(&self.name, &state_key(key)?, &state_value(value)?);
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&self, key: &MK) -> Result<(), String> {
        ensure_host_key()?;
        host::map_remove(&self.name, &state_key(key)?);
        Ok(())
    }

    /// All entries, in the host's order.
    pub fn entries(&self) -> Result<Vec<(MK, MV)>, String> {
        ensure_host_key()?;
        host::map_entries(&self.name)
            .iter()
            .map(|(k, v)| Ok((state_decode(&self.name, k)?, state_decode(&self.name, v)?)))
            .collect()
    }
}
