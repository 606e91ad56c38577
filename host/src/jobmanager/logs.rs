//! The recent guest log lines of each job, as its TaskManagers send them with
//! their heartbeats and task ends, for `eddy logs` and the dashboard
//! (`GET /jobs/{id}/logs`). Bounded per job in lines and bytes; a TaskManager
//! is believed only for the subtasks it runs.

use std::collections::VecDeque;

use crate::api::{JobLogs, LogLine};
use crate::runtime::{cut_at_char, GuestLogs, KEPT_LOG_LINES, KEPT_LOG_MESSAGE};

/// Lines kept per job; older ones go.
pub const KEPT_LINES: usize = 1000;

/// Bytes of messages kept per job: with [`KEPT_LINES`] of the longest messages
/// a job would hold 4 MiB, and the JobManager holds every job's.
pub const KEPT_BYTES: usize = 1 << 20;

/// Longest operator name kept.
const MAX_OPERATOR: usize = 256;

/// A job's recent lines.
#[derive(Debug, Default)]
pub struct JobLog {
    lines: VecDeque<LogLine>,
    /// Message bytes in `lines`, held under [`KEPT_BYTES`].
    bytes: usize,
    /// The next line's `seq`.
    next: u64,
    /// Lines the TaskManagers dropped (over the job's log rate, or not sent in
    /// time) and lines that went here to keep the bounds.
    dropped: u64,
}

fn level(name: &str) -> &'static str {
    match name {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "error" => "error",
        _ => "info",
    }
}

impl JobLog {
    /// Adds what TaskManager `tm` says its subtasks logged; lines of subtasks
    /// `runs_on` denies are not believed. Answers how many were not believed.
    pub fn add(&mut self, tm: &str, logs: GuestLogs, runs_on: impl Fn(usize, u32) -> bool) -> usize {
        self.dropped = self.dropped.saturating_add(logs.dropped.min(u32::MAX as u64));
        // An honest TaskManager sends at most this many at once.
        let skip = logs.lines.len().saturating_sub(KEPT_LOG_LINES);
        self.dropped = self.dropped.saturating_add(skip as u64);
        let mut refused = 0;
        for line in logs.lines.into_iter().skip(skip) {
            if !runs_on(line.task, line.subtask) {
                refused += 1;
                continue;
            }
            let (mut operator, mut message) = (line.operator, line.message);
            cut_at_char(&mut operator, MAX_OPERATOR);
            cut_at_char(&mut message, KEPT_LOG_MESSAGE);
            self.bytes += message.len();
            self.lines.push_back(LogLine {
                seq: self.next,
                timestamp: line.at_ms,
                level: level(&line.level).to_string(),
                taskmanager: tm.to_string(),
                task: line.task,
                subtask: line.subtask,
                operator,
                message,
            });
            self.next += 1;
            while self.lines.len() > KEPT_LINES || self.bytes > KEPT_BYTES {
                let old = self.lines.pop_front().expect("over the bounds means not empty");
                self.bytes -= old.message.len();
                self.dropped = self.dropped.saturating_add(1);
            }
        }
        refused
    }

    /// The kept lines after `seq` (all with `None`), at most `limit` of the oldest of them.
    pub fn after(&self, seq: Option<u64>, limit: usize) -> JobLogs {
        let first = seq.map_or(0, |s| s.saturating_add(1));
        let lines = self.lines.iter().filter(|l| l.seq >= first).take(limit).cloned().collect();
        JobLogs { lines, dropped: self.dropped, next: self.next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::GuestLine;

    fn line(task: usize, subtask: u32, message: &str) -> GuestLine {
        GuestLine { at_ms: 1, level: "warn".into(), task, subtask, operator: "op".into(), message: message.into() }
    }

    #[test]
    fn keeps_only_lines_of_subtasks_the_sender_runs_and_stays_bounded() {
        let mut log = JobLog::default();
        let logs = GuestLogs { lines: vec![line(0, 0, "mine"), line(1, 0, "not mine")], dropped: 3 };
        assert_eq!(log.add("tm-1", logs, |t, s| (t, s) == (0, 0)), 1);
        let kept = log.after(None, 10);
        assert_eq!(kept.lines.len(), 1);
        let first = &kept.lines[0];
        assert_eq!((first.message.as_str(), first.taskmanager.as_str(), first.level.as_str()), ("mine", "tm-1", "warn"));
        assert_eq!(kept.dropped, 3);
        let big = "x".repeat(KEPT_LOG_MESSAGE * 2);
        for _ in 0..(KEPT_BYTES / KEPT_LOG_MESSAGE + 10) {
            log.add("tm-1", GuestLogs { lines: vec![line(0, 0, &big)], dropped: 0 }, |_, _| true);
        }
        assert!(log.bytes <= KEPT_BYTES, "{}", log.bytes);
        let all = log.after(None, usize::MAX);
        assert!(all.lines.iter().all(|l| l.message.len() == KEPT_LOG_MESSAGE));
        assert!(all.dropped > 3, "the lines that went are counted");
        let last = all.next - 1;
        assert!(log.after(Some(last), 10).lines.is_empty());
        assert_eq!(log.after(Some(last - 1), 10).lines.len(), 1);
    }
}
