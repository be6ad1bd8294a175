//! What a run logs beyond its loss: training throughput and the memory diagnostics of every memory layer
//! ([`crate::models::diagnostics`]), as extra fields of each `metrics.jsonl` line:
//!
//! ```json
//! {"step":10,"loss":3.1,…,"tokens_per_s":10234.5,"memory":[{"layer":"block0.memory","norm":{"m":0.8,"s":0.1},…}]}
//! ```
//!
//! `tokens_per_s` counts training tokens (batch × sequence length) over the time of the training steps since
//! the previous line (batch, forward, backward, clipping, update), excluding evaluation, checkpoints and the
//! time spent measuring diagnostics, so that it is the rate a run without logging would have.

use super::store::{MetricLine, RunDir};
use crate::models::diagnostics::LayerDiagnostics;
use crate::report::data::MemoryPoint;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// One `metrics.jsonl` line as written.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedLine<'a> {
    #[serde(flatten)]
    pub base: &'a MetricLine,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The fields a line has beyond [`MetricLine`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<LayerDiagnostics>,
}

#[derive(Debug, Clone, Deserialize)]
struct StepExtra {
    step: u64,
    #[serde(flatten)]
    extra: Extra,
}

/// Training throughput over the run and since the last logged line.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    tokens: f64,
    seconds: f64,
    window_tokens: f64,
    window_seconds: f64,
}

impl Clock {
    /// Adds one step: its tokens and the seconds it trained (measurement time already subtracted).
    pub fn add(&mut self, tokens: usize, seconds: f64) {
        let s = seconds.max(0.0);
        self.tokens += tokens as f64;
        self.seconds += s;
        self.window_tokens += tokens as f64;
        self.window_seconds += s;
    }

    /// Tokens per second since the previous call (None before any step), and starts a new window.
    pub fn window_rate(&mut self) -> Option<f64> {
        let r = (self.window_seconds > 0.0).then(|| self.window_tokens / self.window_seconds);
        self.window_tokens = 0.0;
        self.window_seconds = 0.0;
        r
    }

    /// Tokens per second over every step added.
    pub fn rate(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.tokens / self.seconds)
    }
}

/// The diagnostics of a run at each logged step, and the throughput of its last logged line.
pub fn memory_points(dir: &RunDir) -> Result<(Vec<MemoryPoint>, Option<f64>)> {
    let lines: Vec<StepExtra> = dir.metric_records()?;
    let rate = lines.iter().rev().find_map(|l| l.extra.tokens_per_s);
    let points = lines
        .into_iter()
        .filter(|l| !l.extra.memory.is_empty() || l.extra.tokens_per_s.is_some())
        .map(|l| MemoryPoint { step: l.step, tokens_per_s: l.extra.tokens_per_s, layers: l.extra.memory })
        .collect();
    Ok((points, rate))
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn clock_rates() {
        let mut c = Clock::default();
        assert_eq!(c.window_rate(), None);
        c.add(100, 0.5);
        c.add(100, 1.5);
        assert_eq!(c.window_rate(), Some(100.0));
        c.add(300, 1.0);
        assert_eq!(c.window_rate(), Some(300.0));
        assert_eq!(c.rate(), Some(500.0 / 3.0));
    }
}
