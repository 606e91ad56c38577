//! Restart strategies: whether, and after how long, a failed job restarts
//! from its latest checkpoint (Flink's fixed-delay, exponential-delay,
//! failure-rate and none).

use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What to do when a task fails or a TaskManager is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "kebab-case")]
pub enum RestartStrategy {
    /// Fail the job.
    None,
    /// Restart up to `attempts` times, waiting `delay_ms` each time.
    FixedDelay {
        /// Restarts allowed in the job's life.
        attempts: u32,
        /// Wait before each restart.
        delay_ms: u64,
    },
    /// Restart without limit, waiting twice as long each time from
    /// `initial_ms` up to `max_ms`.
    ExponentialDelay {
        /// The first wait.
        initial_ms: u64,
        /// The longest wait.
        max_ms: u64,
    },
    /// Restart after `delay_ms` unless more than `max_failures` failures
    /// happened within the last `interval_ms`.
    FailureRate {
        /// Failures tolerated per interval.
        max_failures: u32,
        /// The sliding interval.
        interval_ms: u64,
        /// Wait before each restart.
        delay_ms: u64,
    },
}

impl RestartStrategy {
    /// The default of a job: exponential delay (1 s to 1 min) with
    /// checkpoints, as Flink; none without, since a restart would replay
    /// the job from its start.
    pub fn default_for(checkpointing: bool) -> Self {
        if checkpointing {
            RestartStrategy::ExponentialDelay { initial_ms: 1000, max_ms: 60_000 }
        } else {
            RestartStrategy::None
        }
    }

    /// How long to wait before the next restart, or none to fail the job;
    /// `restarts` is how many happened so far, `failures` when recent ones did (this one included).
    pub fn next_delay(&self, restarts: u32, failures: &[Instant]) -> Option<Duration> {
        match *self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay_ms } => (restarts < attempts).then(|| Duration::from_millis(delay_ms)),
            RestartStrategy::ExponentialDelay { initial_ms, max_ms } => {
                let factor = 1u64.checked_shl(restarts.min(62)).unwrap_or(u64::MAX);
                Some(Duration::from_millis(initial_ms.saturating_mul(factor).min(max_ms)))
            }
            RestartStrategy::FailureRate { max_failures, interval_ms, delay_ms } => {
                let window = Duration::from_millis(interval_ms);
                let recent = failures.iter().filter(|t| t.elapsed() <= window).count();
                (recent <= max_failures as usize).then(|| Duration::from_millis(delay_ms))
            }
        }
    }
}

/// Parses `none`, `fixed-delay:ATTEMPTS:DELAY`, `exponential-delay:INITIAL:MAX`
/// and `failure-rate:MAX_FAILURES:INTERVAL:DELAY`; durations like `500ms`, `2s`, `1m`.
impl FromStr for RestartStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let n = |i: usize| -> Result<u32, String> {
            parts[i].parse().map_err(|_| format!("'{}' is not a number of attempts or failures", parts[i]))
        };
        let d = |i: usize| -> Result<u64, String> { parse_duration(parts[i]).map(|d| d.as_millis() as u64) };
        match (parts[0], parts.len()) {
            ("none", 1) => Ok(RestartStrategy::None),
            ("fixed-delay", 3) => Ok(RestartStrategy::FixedDelay { attempts: n(1)?, delay_ms: d(2)? }),
            ("exponential-delay", 3) => Ok(RestartStrategy::ExponentialDelay { initial_ms: d(1)?, max_ms: d(2)? }),
            ("failure-rate", 4) => Ok(RestartStrategy::FailureRate { max_failures: n(1)?, interval_ms: d(2)?, delay_ms: d(3)? }),
            _ => Err(format!(
                "unknown restart strategy '{s}': use none, fixed-delay:ATTEMPTS:DELAY, exponential-delay:INITIAL:MAX or failure-rate:MAX_FAILURES:INTERVAL:DELAY"
            )),
        }
    }
}

/// Parses a duration: a number with `ms`, `s` or `m`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "ms"),
    };
    let value: f64 = number.parse().map_err(|_| format!("'{s}' is not a duration (like 500ms, 2s, 1m)"))?;
    let ms = match unit {
        "ms" => value,
        "s" => value * 1e3,
        "m" | "min" => value * 60e3,
        "h" => value * 3600e3,
        "d" => value * 86_400e3,
        _ => return Err(format!("'{s}' has unknown unit '{unit}' (use ms, s, m, h or d)")),
    };
    if !(0.0..1e12).contains(&ms) {
        return Err(format!("duration '{s}' is out of range"));
    }
    Ok(Duration::from_micros((ms * 1e3) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decides() {
        let f: RestartStrategy = "fixed-delay:2:500ms".parse().unwrap();
        assert_eq!(f, RestartStrategy::FixedDelay { attempts: 2, delay_ms: 500 });
        assert_eq!(f.next_delay(1, &[]), Some(Duration::from_millis(500)));
        assert_eq!(f.next_delay(2, &[]), None);
        let e: RestartStrategy = "exponential-delay:1s:3s".parse().unwrap();
        assert_eq!(e.next_delay(0, &[]), Some(Duration::from_secs(1)));
        assert_eq!(e.next_delay(1, &[]), Some(Duration::from_secs(2)));
        assert_eq!(e.next_delay(5, &[]), Some(Duration::from_secs(3)));
        let r: RestartStrategy = "failure-rate:1:1m:0".parse().unwrap();
        let now = Instant::now();
        assert!(r.next_delay(0, &[now]).is_some());
        assert!(r.next_delay(1, &[now, now]).is_none());
        assert!("sometimes".parse::<RestartStrategy>().unwrap_err().contains("unknown restart strategy"));
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    }
}
