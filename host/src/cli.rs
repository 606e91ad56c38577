//! The `eddy` command line.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::local::{JobOptions, LocalCluster};
use crate::runtime::{Runtime, SandboxConfig};
use crate::task::JobSignals;

/// Eddy runs stream processing jobs whose operators are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job: plan ENTRY of the component with the job arguments and
    /// execute it (on the embedded cluster). Bounded jobs end when their
    /// input does; unbounded ones run until Ctrl-C, which ends the sources
    /// and flushes the sinks.
    #[command(arg_required_else_help = true)]
    Run(RunArgs),
    /// Print the plan of a job: operators, parallelism, chains, edges, slots.
    #[command(arg_required_else_help = true)]
    Info(InfoArgs),
    /// List the entries (jobs) a component offers.
    #[command(arg_required_else_help = true)]
    Entries(EntriesArgs),
}

/// Which job: component, entry and arguments.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's entry in the component (like Flink's `-c MainClass`).
    #[arg(short = 'c', long = "entry", value_name = "ENTRY")]
    pub entry: String,
    /// Default parallelism of operators that do not set their own.
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32768))]
    pub parallelism: u32,
    /// The job component (`.wasm`).
    #[arg(value_name = "JOB.wasm")]
    pub component: PathBuf,
    /// Arguments for the job, passed to its planner (e.g. `--input FILE`).
    #[arg(value_name = "JOB ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    pub job_args: Vec<String>,
}

/// Limits and caches of the Wasm runtime.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Largest linear memory one operator instance may use, in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub memory_limit: u64,
    /// Longest time one call into an operator (one batch) may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub call_timeout: f64,
    /// Where compiled components are cached [default: $XDG_CACHE_HOME/eddy or ~/.cache/eddy].
    #[arg(long, value_name = "DIR", env = "EDDY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile components on every run instead of caching compiled code.
    #[arg(long)]
    pub no_cache: bool,
}

/// `eddy run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run on the embedded cluster in this process (the default while no
    /// cluster is configured).
    #[arg(long)]
    pub local: bool,
    /// Longest time a record waits in an output buffer before it is sent,
    /// in milliseconds: lower means lower latency, higher fuller batches.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub buffer_timeout: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

/// `eddy info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

/// `eddy entries`.
#[derive(Debug, Args)]
pub struct EntriesArgs {
    /// The job component (`.wasm`).
    #[arg(value_name = "JOB.wasm")]
    pub component: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

impl RuntimeArgs {
    fn runtime(&self) -> anyhow::Result<Runtime> {
        if !(self.call_timeout > 0.0 && self.call_timeout <= 86_400.0) {
            anyhow::bail!("--call-timeout must be between 0 and 86400 seconds, not {}", self.call_timeout);
        }
        let sandbox = SandboxConfig {
            memory_limit_bytes: self.memory_limit << 20,
            call_timeout: Duration::from_secs_f64(self.call_timeout),
        };
        let cache = if self.no_cache { None } else { self.cache_dir.clone().or_else(default_cache_dir) };
        Runtime::new(sandbox, cache)
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("eddy"))
}

fn read_component(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok((name, bytes))
}

/// Runs the command; errors reach `main`, which prints them on one line.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Entries(a) => {
            let (name, bytes) = read_component(&a.component)?;
            let module = a.runtime.runtime()?.load(&name, &bytes)?;
            for e in module.entries().map_err(|e| anyhow::anyhow!("listing entries of {name} failed: {e}"))? {
                println!("{e}");
            }
        }
        Command::Info(a) => {
            let (name, bytes) = read_component(&a.job.component)?;
            let cluster = LocalCluster::new(a.runtime.runtime()?);
            let (_, plan) = cluster.plan(&name, &bytes, &a.job.entry, &a.job.job_args, a.job.parallelism)?;
            print!("{plan}");
        }
        Command::Run(a) => {
            let (name, bytes) = read_component(&a.job.component)?;
            let cluster = LocalCluster::new(a.runtime.runtime()?);
            let job = &a.job;
            let (module, plan) = cluster.plan(&name, &bytes, &job.entry, &job.job_args, job.parallelism)?;
            let options = JobOptions {
                parallelism: job.parallelism,
                buffer_timeout: Duration::from_millis(a.buffer_timeout),
                ..JobOptions::default()
            };
            let signals = Arc::new(JobSignals::default());
            install_ctrl_c(&signals);
            eprintln!("Running job '{}' ({} tasks in {} slots) on the embedded cluster", plan.name, plan.chains.len(), plan.slots.len());
            let summary = cluster.execute(&module, &plan, &job.entry, &job.job_args, &options, signals)?;
            eprintln!(
                "Job '{}' finished in {:.3} s: {} records in, {} records out",
                summary.name,
                summary.duration.as_secs_f64(),
                summary.records_in,
                summary.records_out
            );
            for (k, v) in &summary.counters {
                eprintln!("  counter {k} = {v}");
            }
        }
    }
    Ok(())
}

/// First Ctrl-C: sources end and the job drains (sinks flushed). Second: exit now.
fn install_ctrl_c(signals: &Arc<JobSignals>) {
    let signals = signals.clone();
    let _ = ctrlc::set_handler(move || {
        if signals.stop.swap(true, Ordering::Relaxed) {
            eprintln!("second interrupt: exiting without draining");
            std::process::exit(130);
        }
        eprintln!("stopping: ending sources and flushing sinks (Ctrl-C again to exit now)");
    });
}
