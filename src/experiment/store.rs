//! The run store: `reports/<experiment>/runs/<row>/seed-<s>/` holds
//! * `manifest.json` — the configuration after overrides, seed, git revision, crate and libtorch versions, device;
//! * `metrics.jsonl` — one line per logged step;
//! * `checkpoint.safetensors` + `checkpoint.json` — model and optimizer state and the step they belong to;
//! * `result.json` — the final metrics and the status (`done` or `failed: …`).
//!
//! Every file is written atomically (temporary file + rename); metrics are rewritten whole, never appended in
//! place, so an interruption leaves the previous complete version.

use crate::fsutil::write_atomic;
use crate::report::data::{CurvePoint, RunData};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricLine {
    pub step: u64,
    pub loss: f64,
    /// training-batch accuracy at the scored positions
    pub accuracy: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// the evaluation metric, when evaluated at this step
    pub metric: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub experiment: String,
    pub row: String,
    pub seed: u64,
    pub scale: String,
    pub config: serde_yaml::Value,
    pub git_revision: String,
    pub crate_version: String,
    pub libtorch: String,
    pub device: String,
    pub started: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// `done` or `failed: <why>`
    pub status: String,
    pub final_metric: Option<f64>,
    #[serde(default)]
    pub by_length: Vec<(usize, f64)>,
    #[serde(default)]
    pub by_pairs: Vec<(usize, f64)>,
    pub steps: usize,
    pub seconds: f64,
}

/// Folder names: row names with anything but letters, digits, `-` and `_` replaced by `_`.
pub fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(study_dir: &Path, row: &str, seed: u64) -> Self {
        Self { path: study_dir.join("runs").join(slug(row)).join(format!("seed-{seed}")) }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn manifest(&self) -> Result<Option<Manifest>> {
        read_json(&self.file("manifest.json"))
    }

    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        write_atomic(&self.file("manifest.json"), serde_json::to_string_pretty(m)?.as_bytes())
    }

    pub fn result(&self) -> Result<Option<RunResult>> {
        read_json(&self.file("result.json"))
    }

    pub fn write_result(&self, r: &RunResult) -> Result<()> {
        write_atomic(&self.file("result.json"), serde_json::to_string_pretty(r)?.as_bytes())
    }

    pub fn metrics(&self) -> Result<Vec<MetricLine>> {
        let p = self.file("metrics.jsonl");
        if !p.exists() {
            return Ok(vec![]);
        }
        let text = std::fs::read_to_string(&p)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("{}:{}: bad metrics line", p.display(), i + 1))
            })
            .collect()
    }

    fn write_metrics(&self, lines: &[MetricLine]) -> Result<()> {
        let mut s = String::new();
        for l in lines {
            s.push_str(&serde_json::to_string(l)?);
            s.push('\n');
        }
        write_atomic(&self.file("metrics.jsonl"), s.as_bytes())
    }

    pub fn append_metric(&self, line: &MetricLine) -> Result<()> {
        let mut all = self.metrics()?;
        all.push(line.clone());
        self.write_metrics(&all)
    }

    /// Drops metric lines logged after `step` (they belong to work the resumed run will redo).
    pub fn truncate_metrics(&self, step: usize) -> Result<()> {
        let all: Vec<MetricLine> = self.metrics()?.into_iter().filter(|l| l.step <= step as u64).collect();
        self.write_metrics(&all)
    }

    pub fn save_checkpoint(&self, step: usize, tensors: &[(String, Tensor)]) -> Result<()> {
        std::fs::create_dir_all(&self.path)?;
        let tmp = self.file(".checkpoint.safetensors.tmp");
        Tensor::write_safetensors(tensors, &tmp).map_err(|e| anyhow::anyhow!("writing checkpoint: {e}"))?;
        std::fs::rename(&tmp, self.file("checkpoint.safetensors"))?;
        write_atomic(&self.file("checkpoint.json"), serde_json::json!({ "step": step }).to_string().as_bytes())
    }

    /// The last checkpoint, if any: its step and tensors (on the CPU).
    pub fn load_checkpoint(&self) -> Result<Option<(usize, BTreeMap<String, Tensor>)>> {
        let meta: Option<serde_json::Value> = read_json(&self.file("checkpoint.json"))?;
        let Some(meta) = meta else { return Ok(None) };
        let step = meta["step"].as_u64().context("checkpoint.json lacks step")? as usize;
        let tensors = Tensor::read_safetensors(self.file("checkpoint.safetensors"))
            .map_err(|e| anyhow::anyhow!("{}: unreadable checkpoint: {e}", self.path.display()))?;
        Ok(Some((step, tensors.into_iter().collect())))
    }

    /// What the report needs from this run.
    pub fn run_data(&self, seed: u64) -> Result<RunData> {
        let curve =
            self.metrics()?.iter().map(|l| CurvePoint { step: l.step, loss: l.loss, metric: l.metric }).collect();
        Ok(match self.result()? {
            Some(r) => RunData {
                seed,
                curve,
                final_metric: r.final_metric,
                by_length: r.by_length,
                by_pairs: r.by_pairs,
                status: r.status,
            },
            None => RunData {
                seed,
                curve,
                final_metric: None,
                by_length: vec![],
                by_pairs: vec![],
                status: "not finished".into(),
            },
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>> {
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(p)?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}: unreadable", p.display()))?))
}

/// The git revision of the working tree, or `unknown` outside a checkout.
pub fn git_revision() -> String {
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output();
    let rev = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => return "unknown".into(),
    };
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{rev}-dirty")
    } else {
        rev
    }
}
