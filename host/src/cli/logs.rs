//! `eddy logs`: what a job's operators logged lately on its TaskManagers.

use std::time::Duration;

use clap::Args;

use super::ConnectArgs;
use crate::api::LogLine;

/// How often `eddy logs --follow` asks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// `eddy logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job's id (as `eddy run` and `eddy list` print it).
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Keep printing new lines as they come, until the job ends (or Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
}

/// Prints the job's kept lines (and with `--follow` the new ones until it ends).
pub fn run(a: &LogsArgs) -> anyhow::Result<()> {
    let client = super::connect(&a.connect)?;
    let mut after = None;
    let mut dropped = 0;
    loop {
        let logs = client.logs(&a.job, after)?;
        for line in &logs.lines {
            outln!("{}", format_line(line));
        }
        if logs.dropped > dropped {
            eprintln!("({} lines dropped: over the job's log rate, or past the last {} kept)", logs.dropped - dropped, crate::jobmanager::JOB_LOG_LINES);
            dropped = logs.dropped;
        }
        after = logs.lines.last().map(|l| l.seq).or(after);
        if !a.follow {
            return Ok(());
        }
        let status = client.job(&a.job)?.status;
        if matches!(status.as_str(), "FINISHED" | "FAILED" | "CANCELED") && logs.lines.is_empty() {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// `2026-12-01 09:31:05.123 WARN  count (task 1, subtask 0 on tm-1): message`.
fn format_line(l: &LogLine) -> String {
    let at = format!("{}:{:02}.{:03}", super::tenancy::utc_minute(l.timestamp), l.timestamp / 1000 % 60, l.timestamp % 1000);
    // A guest's message may hold anything: no control characters reach the terminal.
    let message: String = l.message.chars().map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c }).collect();
    let operator: String = l.operator.chars().filter(|c| !c.is_control()).collect();
    format!("{at} {:<5} {operator} (task {}, subtask {} on {}): {message}", l.level.to_uppercase(), l.task, l.subtask, l.taskmanager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_prints_with_its_origin_and_no_control_characters() {
        let line = LogLine {
            seq: 0,
            timestamp: 1_796_117_465_123,
            level: "warn".into(),
            taskmanager: "tm-1".into(),
            task: 1,
            subtask: 0,
            operator: "count".into(),
            message: "bad\x1b[2Jrecord\n".into(),
        };
        assert_eq!(format_line(&line), "2026-12-01 09:31:05.123 WARN  count (task 1, subtask 0 on tm-1): bad\u{fffd}[2Jrecord\u{fffd}");
    }
}
