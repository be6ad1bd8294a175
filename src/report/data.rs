//! What a study's report is made of: everything `repro run` stored, gathered so that `repro report`
//! can redraw plots and tables without retraining.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which plots a study asks for (experiment YAML `plots:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlotKind {
    /// training loss against step, one line per row (mean over seeds)
    TrainingCurves,
    /// bar chart of the final metric per row, mean ± std over seeds
    FinalMetric,
    /// accuracy against sequence length, one line per row (needle-in-a-haystack)
    AccuracyVsLength,
    /// recall against the number of stored pairs, one line per row (capacity)
    RecallVsPairs,
}

/// The metric the study reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricInfo {
    /// e.g. `accuracy`, `bits per character`, `recall`
    pub name: String,
    pub higher_is_better: bool,
    /// e.g. `%`, `bpc`, or empty
    pub unit: String,
}

/// The paper's own numbers for the table being reproduced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaperReference {
    /// e.g. `Table 5`
    pub source: String,
    /// what the paper's numbers measure and how they relate to ours (scale, task)
    pub note: String,
    /// row name → the paper's number (rows without a paper number are absent)
    pub values: BTreeMap<String, f64>,
    /// whether a higher paper number is better (may differ from ours, e.g. the paper reports perplexity)
    pub higher_is_better: bool,
}

/// One point of a training curve.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    pub step: u64,
    pub loss: f64,
    /// the evaluation metric at this step, when one was measured
    pub metric: Option<f64>,
}

/// One (row, seed) run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunData {
    pub seed: u64,
    pub curve: Vec<CurvePoint>,
    /// the study's metric at the end (None when the run failed or has not finished)
    pub final_metric: Option<f64>,
    /// (sequence length, accuracy) for needle-in-a-haystack
    #[serde(default)]
    pub by_length: Vec<(usize, f64)>,
    /// (number of pairs, recall) for capacity
    #[serde(default)]
    pub by_pairs: Vec<(usize, f64)>,
    /// `done`, `running`, or `failed: <why>`
    pub status: String,
    /// training throughput, tokens per second
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
    /// throughput and memory diagnostics at each logged step
    #[serde(default)]
    pub memory: Vec<MemoryPoint>,
}

/// The memory diagnostics of every memory layer at one logged step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemoryPoint {
    pub step: u64,
    /// training tokens/s since the previous logged line
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
    pub layers: Vec<crate::models::diagnostics::LayerDiagnostics>,
}

/// One ablation row with all its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowSummary {
    pub name: String,
    /// the row's overrides of the base configuration, as `path: value`
    pub overrides: BTreeMap<String, String>,
    pub runs: Vec<RunData>,
}

/// A whole study, as the report needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudySummary {
    pub name: String,
    /// paper key, e.g. `titans`
    pub paper: String,
    /// one-line description of the study
    pub description: String,
    pub metric: MetricInfo,
    pub paper_reference: Option<PaperReference>,
    pub rows: Vec<RowSummary>,
    /// the base configuration after --scale and --set overrides, as YAML
    pub config_yaml: String,
    pub scale: String,
    pub device: String,
    pub plots: Vec<PlotKind>,
}
