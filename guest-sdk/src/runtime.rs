//! The component's exports: the planner and the operator instance.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::args::Args;
use crate::bindings::eddy::stream::types::{JobGraph, SubtaskInfo, TimeDomain};
use crate::bindings::exports::eddy::stream::{operator, planner};
use crate::ctx::reset_host_key;
use crate::graph::{Built, Env};
use crate::ops::{self, Operator};

/// A job function: builds the pipeline of one entry on `env` from the job arguments.
pub type JobFn = fn(&mut Env, &Args) -> Result<(), String>;

/// The entries a component offers; implemented by [`entries!`](crate::entries).
pub trait JobEntries {
    /// `(entry name, job function)` pairs, in the order `planner.entries` lists them.
    const ENTRIES: &'static [(&'static str, JobFn)];
}

/// The type the component exports; `J` supplies the job functions.
pub struct Component<J>(PhantomData<J>);

/// Runs entry `entry` of `entries` against a fresh `Env`.
pub(crate) fn build(
    entries: &[(&'static str, JobFn)],
    entry: &str,
    args: &[String],
) -> Result<Built, String> {
    let Some((name, job)) = entries.iter().find(|(n, _)| *n == entry) else {
        let offered: Vec<&str> = entries.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown entry '{entry}'; this component offers: {}",
            offered.join(", ")
        ));
    };
    let mut env = Env::new(*name);
    job(&mut env, &Args::parse(args.iter().cloned()))?;
    let built = env.finish()?;
    crate::codec::set(built.graph.codec);
    Ok(built)
}

/// Picks `indices` out of the registry, in that order, to form the instance's chain.
pub(crate) fn select(
    mut registry: Vec<Box<dyn Operator>>,
    entry: &str,
    indices: &[u32],
) -> Result<Vec<Box<dyn Operator>>, String> {
    let available = registry.len();
    let mut slots: Vec<Option<Box<dyn Operator>>> = registry.drain(..).map(Some).collect();
    indices
        .iter()
        .map(|&i| match slots.get_mut(i as usize) {
            None => Err(format!(
                "operator {i} does not exist: entry '{entry}' has {available} operators"
            )),
            Some(slot) => slot
                .take()
                .ok_or_else(|| format!("operator {i} selected twice")),
        })
        .collect()
}

/// Reports panics as one line on stderr, which the host shows in the task's log, before
/// the panic (`panic = "abort"`) traps the instance.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                *s
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.as_str()
            } else {
                "Box<dyn Any>"
            };
            match info.location() {
                Some(l) => eprintln!(
                    "panicked at {}:{}:{}: {msg}",
                    l.file(),
                    l.line(),
                    l.column()
                ),
                None => eprintln!("panicked: {msg}"),
            }
        }));
    });
}

struct Instance {
    ops: Vec<Box<dyn Operator>>,
    #[allow(dead_code)] // kept for upcoming per-subtask APIs
    subtask: SubtaskInfo,
}

thread_local! {
    // Wasm is single-threaded: one instance per component instance.
    static INSTANCE: RefCell<Option<Instance>> = const { RefCell::new(None) };
}

fn with_instance(
    f: impl FnOnce(&mut Instance, &mut Vec<u8>) -> Result<(), String>,
    capacity: usize,
) -> Result<Vec<u8>, String> {
    INSTANCE.with(|cell| {
        let mut guard = cell.borrow_mut();
        let instance = guard
            .as_mut()
            .ok_or("operator.open has not succeeded on this instance")?;
        reset_host_key();
        let mut out = Vec::with_capacity(capacity);
        f(instance, &mut out)?;
        Ok(out)
    })
}

impl<J: JobEntries> planner::Guest for Component<J> {
    fn entries() -> Vec<String> {
        J::ENTRIES.iter().map(|(n, _)| n.to_string()).collect()
    }

    fn plan(entry: String, args: Vec<String>) -> Result<JobGraph, String> {
        install_panic_hook();
        build(J::ENTRIES, &entry, &args).map(|b| b.graph)
    }
}

impl<J: JobEntries> operator::Guest for Component<J> {
    fn open(
        entry: String,
        args: Vec<String>,
        operators: Vec<u32>,
        subtask: SubtaskInfo,
    ) -> Result<(), String> {
        install_panic_hook();
        let built = build(J::ENTRIES, &entry, &args)?;
        let ops = select(built.registry, &entry, &operators)?;
        INSTANCE.with(|cell| *cell.borrow_mut() = Some(Instance { ops, subtask }));
        Ok(())
    }

    fn process(input: Vec<u8>) -> Result<Vec<u8>, String> {
        // Most chains emit about as much as they read; one reservation avoids regrowth.
        let cap = input.len();
        with_instance(|i, out| ops::run_batch(&mut i.ops, &input, out), cap)
    }

    fn on_watermark(watermark: i64) -> Result<Vec<u8>, String> {
        with_instance(|i, out| ops::run_watermark(&mut i.ops, watermark, out), 0)
    }

    fn on_timer(key: Vec<u8>, timestamp: i64, domain: TimeDomain) -> Result<Vec<u8>, String> {
        let timer = crate::ctx::Timer { timestamp, domain };
        with_instance(|i, out| ops::run_timer(&mut i.ops, &key, timer, out), 0)
    }

    fn close() -> Result<Vec<u8>, String> {
        with_instance(|i, out| ops::run_close(&mut i.ops, out), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, Record};

    fn double(env: &mut Env, args: &Args) -> Result<(), String> {
        let factor: u64 = args.parse_or("factor", 2)?;
        env.generate(3, |i| i)
            .map(move |x: u64| x * factor)
            .map(|x: u64| format!("v{x}"))
            .print();
        Ok(())
    }

    fn needs_input(_: &mut Env, args: &Args) -> Result<(), String> {
        args.required("input")?;
        Ok(())
    }

    const ENTRIES: &[(&str, JobFn)] = &[("double", double), ("needs-input", needs_input)];

    #[test]
    fn unknown_entry() {
        let e = build(ENTRIES, "nope", &[]).err().unwrap();
        assert_eq!(
            e,
            "unknown entry 'nope'; this component offers: double, needs-input"
        );
    }

    #[test]
    fn job_errors_pass_through() {
        let e = build(ENTRIES, "needs-input", &[]).err().unwrap();
        assert_eq!(e, "missing required argument --input");
    }

    #[test]
    fn open_selects_and_fuses() {
        let args = vec!["--factor".to_string(), "5".to_string()];
        let b = build(ENTRIES, "double", &args).unwrap();
        assert_eq!(b.graph.name, "double");
        let mut ops = select(b.registry, "double", &[1, 2]).unwrap();
        assert_eq!(b.graph.codec, crate::ValueCodec::Msgpack, "the default");
        crate::codec::set(crate::ValueCodec::Json);
        let input = frame::encode_all([Record::value(b"2")]);
        let mut out = Vec::new();
        ops::run_batch(&mut ops, &input, &mut out).unwrap();
        assert_eq!(frame::encode_all([Record::value(b"\"v10\"")]), out);

        let reg = build(ENTRIES, "double", &args).unwrap().registry;
        assert!(select(reg, "double", &[3])
            .err()
            .unwrap()
            .contains("does not exist"));
        let reg = build(ENTRIES, "double", &args).unwrap().registry;
        assert!(select(reg, "double", &[1, 1])
            .err()
            .unwrap()
            .contains("twice"));
    }
}
